"""Shared test helpers: start a real server process on free loopback ports."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A server process started by a test, and how to reach it."""

    process: subprocess.Popen[bytes]
    ports: list[int]
    config: Path
    log_path: Path
    _stopped: bool = field(default=False)

    @property
    def port(self) -> int:
        return self.ports[0]

    def url(self, path: str = "/", port: int | None = None) -> str:
        return f"http://127.0.0.1:{port or self.port}{path}"

    def connect(self, port: int | None = None, timeout: float = 5.0) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port or self.port), timeout=timeout)
        return sock

    def raw(self, data: bytes, port: int | None = None, timeout: float = 5.0) -> bytes:
        """Send ``data`` and read until the server closes (or ``timeout``)."""
        with self.connect(port, timeout) as sock:
            sock.sendall(data)
            return read_all(sock)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def slow_download(server: Server) -> tuple[socket.socket, bytes]:
    """Start ``GET /big.bin`` with a small receive buffer; return the socket and the first bytes.

    The response then stays in flight until the caller reads the rest.
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    first = sock.recv(65536)
    assert first.startswith(b"HTTP/1.1 200 ")
    return sock, first


def read_all(sock: socket.socket) -> bytes:
    """Read from ``sock`` until EOF, a reset, or its timeout."""
    chunks = []
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    except (TimeoutError, ConnectionResetError):
        pass
    return b"".join(chunks)


def recv_until(sock: socket.socket, marker: bytes, limit: float = 5.0) -> bytes:
    """Read from ``sock`` until ``marker`` has arrived; return everything read.

    Fails the test if the server closes first or ``limit`` seconds pass.
    """
    deadline = time.monotonic() + limit
    data = b""
    while marker not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{marker!r} did not arrive in {limit} s; got {data[-200:]!r}")
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            raise AssertionError(f"closed before {marker!r} arrived; got {data[-200:]!r}")
        data += chunk
    return data


def run_cli(
    args: list[str], cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m localhost ARGS`` to completion; ``env`` adds to the environment."""
    return subprocess.run(
        [sys.executable, "-m", "localhost", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_server(
    config_text: str,
    directory: Path,
    nports: int = 1,
    env: dict[str, str] | None = None,
    ready_timeout: float = 15.0,
    max_fds: int | None = None,
    args: list[str] | None = None,
) -> Server:
    """Write ``config_text`` (``{port0}``, ``{port1}``... filled in) and run it.

    Returns once every port accepts connections; fails the test if the
    process exits first. ``max_fds`` lowers the child's descriptor limit;
    ``args`` are command-line options put before the config path.
    """
    ports = [free_port() for _ in range(nports)]
    text = config_text
    for index, port in enumerate(ports):
        text = text.replace(f"{{port{index}}}", str(port))
    config = directory / "test.conf"
    config.write_text(text)
    log_path = directory / "server.log"
    log_file = open(log_path, "wb")  # noqa: SIM115 - the child keeps its own copy
    process_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}

    def limit() -> None:
        if max_fds is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max_fds, max_fds))

    process = subprocess.Popen(
        [sys.executable, "-m", "localhost", *(args or []), str(config)],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        cwd=directory,
        env=process_env,
        preexec_fn=limit if max_fds is not None else None,
    )
    log_file.close()
    server = Server(process, ports, config, log_path)
    deadline = time.monotonic() + ready_timeout
    pending = list(ports)
    while pending:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}:\n{server.log()}")
        try:
            socket.create_connection(("127.0.0.1", pending[0]), timeout=1).close()
            pending.pop(0)
        except OSError:
            if time.monotonic() > deadline:
                server.stop(signal.SIGKILL)
                raise AssertionError(f"server did not listen in time:\n{server.log()}") from None
            time.sleep(0.02)
    return server


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[callable]:  # type: ignore[valid-type]
    """Start servers for one test; every one is stopped afterwards."""
    started: list[Server] = []

    def factory(
        config_text: str,
        nports: int = 1,
        env: dict[str, str] | None = None,
        max_fds: int | None = None,
        args: list[str] | None = None,
    ) -> Server:
        server = start_server(config_text, tmp_path, nports, env, max_fds=max_fds, args=args)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()
