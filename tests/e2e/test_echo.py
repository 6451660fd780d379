"""``protocol echo`` (RFC 862) on a real server: round trips, back-pressure, the idle limit,
and HTTP next to it in one configuration."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests

from tests.conftest import Server, read_all, recv_until, run_cli
from tests.proc import rss_kib, wait_for

ECHO = """
server {{
    host 127.0.0.1
    port {{port0}}
    protocol echo
    keepalive_timeout {keepalive}
}}
"""

MIB = 1024 * 1024
TOTAL = 100 * MIB
# README: a peer that sends without reading holds at most about 320 KiB of the
# worker's memory (the 256 KiB high-water mark plus one 64 KiB read). RSS also
# moves with the allocator and the interpreter: the bound is a few MiB, far
# below the 100 MiB sent.
RSS_GROWTH_LIMIT_KIB = 16 * 1024


def echo_server(server_factory: Callable[..., Server], keepalive: str = "30s") -> Server:
    return server_factory(ECHO.format(keepalive=keepalive))


def test_every_byte_comes_back_in_order(server_factory: Callable[..., Server]) -> None:
    server = echo_server(server_factory)
    with server.connect() as sock:
        for message in (b"hello\n", bytes(range(256)) + b"<end>", b"\r\n\0" * 1000 + b"<end>"):
            sock.sendall(message)
            assert recv_until(sock, message[-5:]) == message
        sock.sendall(b"last")
        sock.shutdown(socket.SHUT_WR)
        rest = read_all(sock)
    # What was sent before the half-close came back, then the server closed.
    assert rest == b"last"


def test_a_round_trip_matches_exactly(server_factory: Callable[..., Server]) -> None:
    server = echo_server(server_factory)
    payload = bytes(range(256)) * 4096 + b"end"  # 1 MiB and a bit, every byte value
    with server.connect() as sock:
        sender = threading.Thread(target=lambda: (sock.sendall(payload), sock.shutdown(1)))
        sender.start()
        received = read_all(sock)
        sender.join(10)
    assert received == payload


def chunk(index: int) -> bytes:
    """64 KiB whose content says where it belongs in the stream."""
    return index.to_bytes(8, "big") * 8192


def test_a_client_that_does_not_read_keeps_the_worker_memory_bounded(
    server_factory: Callable[..., Server],
) -> None:
    server = echo_server(server_factory)
    pid = server.process.pid  # worker_processes 1: the server process is the worker
    with server.connect() as warm:
        warm.sendall(b"x" * 65536)
        recv_until(warm, b"x" * 100)
    before = rss_kib(pid)

    sock = server.connect(timeout=20)
    sent = 0
    failure: list[BaseException] = []

    def send_all() -> None:
        nonlocal sent
        try:
            for index in range(TOTAL // 65536):
                sock.sendall(chunk(index))
                sent += 65536
            sock.shutdown(socket.SHUT_WR)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failure.append(exc)

    sender = threading.Thread(target=send_all, daemon=True)
    sender.start()
    # The client reads nothing: the server must stop reading, so the sender stalls
    # after the kernel buffers and the worker's bounded queue are full.
    last = [-1]

    def stalled() -> bool:
        time.sleep(0.3)
        if sent == last[0]:
            return True
        last[0] = sent
        return False

    assert wait_for(stalled, 10), f"the sender never stalled ({sent} bytes sent)"
    assert sent < TOTAL / 4, f"{sent} bytes went out without the client reading"
    grown = rss_kib(pid) - before
    assert grown < RSS_GROWTH_LIMIT_KIB, f"worker RSS grew by {grown} KiB"

    # Now the client reads: every byte comes back, in order, then the server closes.
    received = 0
    pending = b""
    sock.settimeout(10)
    while True:
        data = sock.recv(1 << 20)
        if not data:
            break
        pending += data
        whole = len(pending) // 65536
        for i in range(whole):
            expected = chunk(received // 65536 + i)
            got = pending[i * 65536 : (i + 1) * 65536]
            assert got == expected, f"chunk {received // 65536 + i} out of order"
        received += whole * 65536
        pending = pending[whole * 65536 :]
    sender.join(10)
    sock.close()
    assert not failure, failure
    assert received == TOTAL and not pending
    assert rss_kib(pid) - before < RSS_GROWTH_LIMIT_KIB


def test_a_silent_connection_is_closed_after_keepalive_timeout(
    server_factory: Callable[..., Server],
) -> None:
    server = echo_server(server_factory, keepalive="1s")
    with server.connect() as sock:
        sock.sendall(b"ping")
        recv_until(sock, b"ping")
        start = time.monotonic()
        sock.settimeout(10)
        assert sock.recv(10) == b""  # closed by the server
        waited = time.monotonic() - start
    assert 0.8 < waited < 5, waited


def test_traffic_keeps_a_connection_open_past_keepalive_timeout(
    server_factory: Callable[..., Server],
) -> None:
    server = echo_server(server_factory, keepalive="1s")
    with server.connect() as sock:
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            sock.sendall(b"tick")
            recv_until(sock, b"tick", limit=2)  # fails if the server closed
            time.sleep(0.4)


def test_http_and_echo_on_two_ports_of_one_config(server_factory: Callable[..., Server]) -> None:
    config = """
server {
    host 127.0.0.1
    port {port0}
    root ./www
}
server {
    host 127.0.0.1
    port {port1}
    protocol echo
}
"""
    server = server_factory(config.replace("./www", "."), nports=2)
    (server.config.parent / "index.html").write_text("<h1>http side</h1>\n")
    assert requests.get(server.url("/"), timeout=5).text == "<h1>http side</h1>\n"
    with server.connect(server.ports[1]) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert recv_until(sock, b"\r\n\r\n") == b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    assert requests.get(server.url("/"), timeout=5).status_code == 200


def test_http_directives_in_an_echo_block_stop_the_server(tmp_path: Path) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text("server {\n    port 7007\n    protocol echo\n    root .\n}\n")
    result = run_cli([str(conf)])
    assert result.returncode == 1
    assert f"{conf}:4:5: " in result.stderr
    assert '"root" directive is not allowed' in result.stderr


def test_a_wildcard_echo_and_a_specific_http_address_share_a_port(
    server_factory: Callable[..., Server],
) -> None:
    # One socket (0.0.0.0) serves both; the local address picks the block, and its protocol.
    config = """
server {
    host 0.0.0.0
    port {port0}
    protocol echo
}
server {
    host 127.0.0.1
    port {port0}
    root .
}
"""
    server = server_factory(config)
    (server.config.parent / "index.html").write_text("<h1>http side</h1>\n")
    assert requests.get(server.url("/"), timeout=5).text == "<h1>http side</h1>\n"
    with socket.create_connection(("127.0.0.2", server.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert recv_until(sock, b"\r\n\r\n") == b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
