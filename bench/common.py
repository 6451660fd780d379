"""Helpers shared by the benchmark and soak scripts: start a server, read /proc."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU seconds used so far by the processes ``pids`` (gone ones count 0)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def family(pid: int) -> list[int]:
    """``pid`` and its children (a master and its workers)."""
    found = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


@contextmanager
def running(config: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``python -m localhost config`` until the block ends; yields once ``port`` accepts."""
    server = subprocess.Popen(
        [sys.executable, "-m", "localhost", str(config)], cwd=REPO, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.05)
        time.sleep(0.2)  # let the readiness probe's connection close
        yield server
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(10)


def measure_upload(port: int, pid: int, mib: int, name: str = "upload.bin") -> dict[str, float]:
    """POST one multipart upload of ``mib`` MiB to ``/uploads/`` on ``port``.

    Samples the resident memory of ``pid`` every 20 ms meanwhile. Returns the
    seconds taken, MiB/s, the RSS growth over the start in MiB, and whether the
    answer was 201.
    """
    baseline = peak = rss_kib(pid)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_kib(pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    opening = f'--B\r\nContent-Disposition: form-data; name="f"; filename="{name}"\r\n\r\n'.encode()
    closing = b"\r\n--B--\r\n"
    head = (
        f"POST /uploads/ HTTP/1.1\r\nHost: bench\r\nContent-Type: multipart/form-data; boundary=B\r\n"
        f"Content-Length: {len(opening) + mib * 1048576 + len(closing)}\r\nConnection: close\r\n\r\n"
    ).encode()
    block = random.Random(1).randbytes(1048576)
    start = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(head + opening)
            for _ in range(mib):
                sock.sendall(block)
            sock.sendall(closing)
            status = sock.recv(64)
    finally:
        done.set()
        sampler.join()
    seconds = time.monotonic() - start
    return {
        "seconds": seconds,
        "mib_per_s": mib / seconds,
        "rss_growth_mib": (peak - baseline) / 1024,
        "ok": status.startswith(b"HTTP/1.1 201"),
    }
