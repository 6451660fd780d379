"""Helpers shared by the benchmark and soak scripts: start a server, read /proc."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
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
