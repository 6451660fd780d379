"""What /proc says about a server process: descriptors, memory, CPU, children."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path


def open_fds(pid: int) -> int:
    """How many descriptors ``pid`` has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User and system CPU time used by ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_of(pid: int) -> list[tuple[int, str]]:
    """``(pid, state)`` of every process whose parent is ``pid`` (zombies included)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append((int(entry), fields[0]))
    return found


def wait_for(condition: Callable[[], object], limit: float = 5.0) -> bool:
    """Poll ``condition`` every 50 ms until it holds (True) or ``limit`` seconds pass (False)."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def live_children(pid: int) -> list[int]:
    """The PIDs of ``pid``'s children that are not zombies, sorted."""
    return sorted(child for child, state in children_of(pid) if state != "Z")


def wait_children(pid: int, count: int, limit: float = 10.0) -> list[int]:
    """``live_children(pid)`` once there are exactly ``count``; AssertionError after ``limit`` s.

    A master forks its workers after it listens, so right after start-up
    (or a reload) the list may still be short: read it only through this.
    """
    found: list[int] = []

    def complete() -> bool:
        nonlocal found
        found = live_children(pid)
        return len(found) == count

    assert wait_for(complete, limit), f"{count} children of {pid} expected, found {found}"
    return found
