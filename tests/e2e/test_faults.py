"""Clients that reset the connection at every stage leave nothing behind."""

from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path

import requests

from tests.conftest import Server
from tests.proc import children_of, cpu_seconds, open_fds, rss_kib, wait_for

CONFIG = """
keepalive_timeout 30
server {
    host 127.0.0.1
    port {port0}
    root ./www
    location /uploads {
        root ./uploads
        methods GET POST
        body_limit 0
    }
    location /cgi-bin {
        root ./cgi-bin
        cgi .py python3
        cgi_timeout 30
    }
}
"""


def reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_resets_at_every_stage_leak_nothing(server_factory, tmp_path: Path) -> None:
    (tmp_path / "www").mkdir()
    (tmp_path / "uploads").mkdir()
    (tmp_path / "cgi-bin").mkdir()
    (tmp_path / "www" / "index.html").write_text("home\n")
    (tmp_path / "www" / "big.bin").write_bytes(os.urandom(8 * 1024 * 1024))
    (tmp_path / "cgi-bin" / "sleep.py").write_text("import time\ntime.sleep(60)\n")
    (tmp_path / "cgi-bin" / "flood.py").write_text(
        "import sys\nsys.stdout.write('Content-Type: text/plain\\n\\n')\n"
        "while True:\n    sys.stdout.write('x' * 65536)\n"
    )
    server: Server = server_factory(CONFIG)
    pid = server.process.pid
    requests.get(server.url("/"), headers={"Connection": "close"})
    # The open-file cache keeps one descriptor for a large file: part of the baseline.
    assert (
        len(requests.get(server.url("/big.bin"), headers={"Connection": "close"}).content)
        == 8 * 1024 * 1024
    )
    time.sleep(0.3)  # the probe connections close
    baseline = open_fds(pid)

    for _ in range(3):
        # Mid-head.
        sock = server.connect()
        sock.sendall(b"GET / HTTP/1.1\r\nHo")
        reset(sock)
        # Mid-body of an upload: its temporary file appears, then must go.
        sock = server.connect()
        sock.sendall(
            b"POST /uploads/ HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=B\r\n"
            b'Content-Length: 10000000\r\n\r\n--B\r\nContent-Disposition: form-data; name="f"; '
            b'filename="f.bin"\r\n\r\n' + b"z" * 200000
        )
        assert wait_for(
            lambda: any(p.name.startswith(".upload-") for p in (tmp_path / "uploads").iterdir())
        )
        reset(sock)
        # Mid-response (sendfile of a large file).
        sock = server.connect()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.recv(4096)
        reset(sock)
        # While a CGI script runs, and while one floods its output.
        for script in ("sleep.py", "flood.py"):
            sock = server.connect()
            sock.sendall(f"GET /cgi-bin/{script} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert wait_for(lambda: bool(children_of(pid)))
            time.sleep(0.1)
            reset(sock)

    assert wait_for(lambda: not children_of(pid)), children_of(pid)
    assert wait_for(lambda: not list((tmp_path / "uploads").iterdir())), list(
        (tmp_path / "uploads").iterdir()
    )
    assert wait_for(lambda: open_fds(pid) == baseline), (open_fds(pid), baseline)
    assert requests.get(server.url("/")).text == "home\n"


def test_out_of_descriptors_does_not_spin_and_recovers(server_factory, tmp_path: Path) -> None:
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "index.html").write_text("home\n")
    server: Server = server_factory(
        "server {\n host 127.0.0.1\n port {port0}\n root ./www\n}\n", max_fds=32
    )
    pid = server.process.pid
    held = []
    for _ in range(60):  # more than the server can hold
        try:
            held.append(socket.create_connection(("127.0.0.1", server.port), timeout=2))
        except OSError:
            break
    time.sleep(0.3)
    before = cpu_seconds(pid)
    time.sleep(1.0)  # a spinning accept loop would burn this whole second
    assert cpu_seconds(pid) - before < 0.3
    for sock in held:
        sock.close()
    assert wait_for(lambda: _served(server), 10)
    assert "pausing accepts" in server.log()


def _served(server: Server) -> bool:
    try:
        return requests.get(server.url("/"), timeout=2).text == "home\n"
    except requests.RequestException:
        return False


def test_slow_reader_of_a_fast_cgi_is_bounded_in_memory(server_factory, tmp_path: Path) -> None:
    (tmp_path / "www").mkdir()
    (tmp_path / "uploads").mkdir()
    (tmp_path / "cgi-bin").mkdir()
    (tmp_path / "cgi-bin" / "flood.py").write_text(
        "import sys\nsys.stdout.write('Content-Type: text/plain\\n\\n')\n"
        "for _ in range(2000):\n    sys.stdout.write('x' * 65536)\n"
    )
    server: Server = server_factory(CONFIG)
    pid = server.process.pid
    requests.get(server.url("/"))
    baseline = rss_kib(pid)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    with sock:
        sock.sendall(b"GET /cgi-bin/flood.py HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(1.5)  # the script could write 125 MiB meanwhile; the client reads nothing
        assert rss_kib(pid) - baseline < 8 * 1024
        received = 0
        sock.settimeout(10)
        while received < 4 * 1024 * 1024:  # the stream goes on once the client reads
            chunk = sock.recv(65536)
            assert chunk
            received += len(chunk)
