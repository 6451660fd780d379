"""Stress and smuggling end to end: many connections, slowloris, framing attacks.

Loopback only, bounded in count and time; each test checks that the
server's descriptors are back to their baseline afterwards.
"""

from __future__ import annotations

import os
import re
import resource
import selectors
import socket
import statistics
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import Server, read_all
from tests.proc import open_fds, wait_for

CONFIG = """
worker_connections 4096
client_header_timeout 30
keepalive_timeout 30
server {
    host 127.0.0.1
    port {port0}
    root ./www
    location /secret {
        root ./secret
    }
}
"""


@pytest.fixture
def server(server_factory, tmp_path: Path) -> Server:  # type: ignore[no-untyped-def]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 16384)
    assert wanted >= 4500, f"these tests need 4,500 descriptors; the hard limit here is {hard}"
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))  # inherited by the server
    (tmp_path / "www").mkdir()
    (tmp_path / "secret").mkdir()
    (tmp_path / "www" / "index.html").write_text("home\n")
    (tmp_path / "secret" / "index.html").write_text("SMUGGLED\n")
    started: Server = server_factory(CONFIG)
    requests.get(started.url("/"), headers={"Connection": "close"})
    time.sleep(0.3)  # the readiness probes close
    return started


@pytest.mark.parametrize(
    "attack",
    [
        # CL.TE: a front end using Content-Length would pass the smuggled request on.
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 35\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /secret/ HTTP/1.1\r\nHost: a\r\n\r\n",
        # TE.CL with an obfuscated coding.
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked \x0b\r\nContent-Length: 4\r\n\r\n"
        b"5c\r\nGET /secret/ HTTP/1.1\r\nHost: a\r\n\r\n0\r\n\r\n",
        # Two differing Content-Lengths.
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 37\r\n\r\n"
        b"GET /secret/ HTTP/1.1\r\nHost: a\r\n\r\n",
        # chunked not last.
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n"
        b"0\r\n\r\nGET /secret/ HTTP/1.1\r\nHost: a\r\n\r\n",
        # Transfer-Encoding on HTTP/1.0.
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
        b"0\r\n\r\nGET /secret/ HTTP/1.1\r\nHost: a\r\n\r\n",
        # A bare CR hiding a field.
        b"GET / HTTP/1.1\r\nHost: a\r\nX: y\rContent-Length: 37\r\n\r\nGET /secret/ HTTP/1.1\r\nHost: a\r\n\r\n",
        # A chunk size with a bad line end.
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxxGET /secret/ HTTP/1.1\r\nHost: a\r\n\r\n",
    ],
)
def test_smuggled_requests_are_never_processed(server: Server, attack: bytes) -> None:
    data = server.raw(attack)
    assert len(re.findall(rb"HTTP/1\.1 \d{3} ", data)) == 1, data
    # Each is a framing error (RFC 9112 §6.1, §6.3, §2.2; a CTL in a field value, RFC 9110
    # §5.5): 400 and the connection closes.
    assert data.startswith(b"HTTP/1.1 400 ")
    assert b"\r\nConnection: close\r\n" in data
    assert b"SMUGGLED" not in data


def test_slowloris_does_not_starve_a_normal_client(server: Server) -> None:
    pid = server.process.pid
    baseline = open_fds(pid)
    slow = []
    for _ in range(500):
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ")
        slow.append(sock)
    latencies = []
    with requests.Session() as client:
        for _ in range(10):
            for sock in slow[::50]:
                sock.sendall(b"a")  # keep trickling
            start = time.monotonic()
            assert client.get(server.url("/")).text == "home\n"
            latencies.append(time.monotonic() - start)
    assert statistics.median(latencies) < 0.1
    for sock in slow:
        sock.close()
    assert wait_for(lambda: open_fds(pid) == baseline, 10), (open_fds(pid), baseline)


def test_two_thousand_concurrent_keep_alive_connections(server: Server) -> None:
    pid = server.process.pid
    baseline = open_fds(pid)
    count = 2000
    selector = selectors.DefaultSelector()
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", server.port))
        socks.append(sock)
    request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    for round_ in range(2):  # twice on every connection: they are kept alive
        for sock in socks:
            sock.sendall(request)
        pending: dict[socket.socket, bytes] = {}
        for sock in socks:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
            pending[sock] = b""
        deadline = time.monotonic() + 60
        done = 0
        while done < count and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=1):
                sock = key.fileobj  # type: ignore[assignment]
                chunk = sock.recv(65536)
                assert chunk, f"connection closed in round {round_}"
                pending[sock] += chunk
                if pending[sock].endswith(b"home\n"):
                    assert pending[sock].startswith(b"HTTP/1.1 200 ")
                    selector.unregister(sock)
                    sock.setblocking(True)
                    done += 1
        assert done == count
    for sock in socks:
        sock.close()
    selector.close()
    assert wait_for(lambda: open_fds(pid) == baseline, 10), (open_fds(pid), baseline)


def test_a_flood_of_garbage_connections_leaves_nothing(server: Server) -> None:
    pid = server.process.pid
    baseline = open_fds(pid)
    for index in range(300):
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(os.urandom(64) + b"\r\n\r\n")
            if index % 3 == 0:
                read_all(sock)
    assert requests.get(server.url("/")).text == "home\n"
    assert wait_for(lambda: open_fds(pid) == baseline, 10), (open_fds(pid), baseline)
