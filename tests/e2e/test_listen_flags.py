"""Listen flags belong to their port: ``port A B http2`` is HTTP/2 on B only (as NGINX's
``listen ... http2``), while ``http2 on`` is HTTP/2 on every port of the block."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, Server, start_server

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"

CONFIG = """
server {
    host 127.0.0.1
    port {port0} {port1} http2
    root ./www
}
server {
    host 127.0.0.1
    port {port2}
    http2 on
    root ./www
}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("flags")
    (folder / "www").mkdir()
    (folder / "www" / "index.html").write_text("hello\n")
    started = start_server(CONFIG, folder, nports=3)
    yield started
    started.stop()


def first_bytes(port: int) -> bytes:
    """What the server answers to a client that opens with the HTTP/2 preface."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(PREFACE + EMPTY_SETTINGS)
        return sock.recv(9)


def test_the_http2_flag_applies_to_its_port_only(server: Server) -> None:
    plain, flagged, block = server.ports
    # A server's first frame is SETTINGS (type 4) on HTTP/2 ports ...
    assert first_bytes(flagged)[3] == 0x04
    assert first_bytes(block)[3] == 0x04
    # ... and the port listed without the flag stays HTTP/1.1.
    assert first_bytes(plain).startswith(b"HTTP/1.1 ")


def test_the_effective_configuration_shows_the_flag_on_its_port(server: Server) -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "localhost", "-T", str(server.config)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=Path(server.config).parent,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        check=True,
    ).stdout
    plain, flagged, _ = server.ports
    assert f"listen 127.0.0.1:{flagged} http2;" in shown
    assert f"listen 127.0.0.1:{plain};" in shown
