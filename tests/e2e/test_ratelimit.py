"""limit_req and limit_conn on a live server: a burst from one client gets 503
(or ``limit_req_status``) past ``1 + burst``, under raw requests and under
``wrk``; requests beyond ``delay=N`` wait at the rate, their bodies kept;
``limit_conn`` against held WSGI requests, released when they end or their
client goes away; and, with two workers, one zone for both.

A WSGI application written by the tests (``gate.py``) holds a request until
the test creates its release file, so that "a request is in progress" is a
fact the test controls, not a sleep. Run on the event loop
(``wsgi_threads 0``) it blocks its whole worker, which sends the next
connections to the other worker.
"""

from __future__ import annotations

import hashlib
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import Server, read_all, recv_until, start_server
from tests.proc import wait_for

GATE = """
import hashlib
import os
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def app(environ, start_response):
    body = environ["wsgi.input"].read()
    name = environ["QUERY_STRING"]
    if name:  # hold the request until the test releases it
        open(os.path.join(HERE, name + ".started"), "w").close()
        deadline = time.monotonic() + 20
        while not os.path.exists(os.path.join(HERE, name + ".release")):
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
    text = "%d %s %s" % (len(body), hashlib.sha256(body).hexdigest(), name)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [text.encode()]
"""

CONFIG = """
limit_req_zone $binary_remote_addr zone=burst:1m rate=1r/m
limit_req_zone $binary_remote_addr zone=teapot:1m rate=1r/m
limit_req_zone $binary_remote_addr zone=wrk:1m rate=1r/m
limit_req_zone $binary_remote_addr zone=once:1m rate=1r/m
limit_req_zone $binary_remote_addr zone=pace:1m rate=1r/s
limit_req_zone $binary_remote_addr zone=stream:1m rate=5r/s
limit_req_zone $binary_remote_addr zone=spool:1m rate=5r/s
limit_req_zone $http_x_client zone=byheader:1m rate=1r/m
limit_conn_zone $binary_remote_addr zone=addr:1m
server {
    host 127.0.0.1
    port {port0}
    root ./www
    wsgi_path .
    location / { }
    location /burst { limit_req zone=burst burst=5 nodelay }
    location /teapot {
        limit_req zone=teapot burst=2 nodelay
        limit_req_status 429
    }
    location /wrk { limit_req zone=wrk burst=10 nodelay }
    location /once {
        limit_req zone=once burst=3 nodelay
        error_page 404 /once/not-found.html
    }
    location /pace { limit_req zone=pace burst=5 delay=2 }
    location /stream {
        limit_req zone=stream burst=5
        wsgi gate:app
    }
    location /spool {
        limit_req zone=spool burst=5
        wsgi gate:app
        wsgi_threads 0
    }
    location /header { limit_req zone=byheader nodelay }
    location /held {
        limit_conn addr 1
        wsgi gate:app
    }
}
"""


def build(root: Path) -> None:
    for folder in ("burst", "teapot", "wrk", "once", "pace", "header"):
        (root / "www" / folder).mkdir(parents=True)
        (root / "www" / folder / "a.txt").write_text(f"in {folder}\n")
    (root / "www" / "once" / "not-found.html").write_text("ONCE NOT FOUND\n")
    (root / "www" / "index.html").write_text("home\n")
    (root / "gate.py").write_text(GATE)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("ratelimit")
    build(root)
    server = start_server(CONFIG, root)
    yield server
    server.stop()


def get(path: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode()


class Client:
    """One keep-alive connection: send a request, read its whole response."""

    def __init__(self, server: Server) -> None:
        self.sock = server.connect(timeout=10)
        self.buffer = b""

    def ask(self, request: bytes) -> tuple[int, bytes]:
        self.sock.sendall(request)
        return self.answer()

    def answer(self) -> tuple[int, bytes]:
        data = self.buffer + recv_until(self.sock, b"\r\n\r\n", limit=10)
        head, _, rest = data.partition(b"\r\n\r\n")
        match = re.search(rb"\r\ncontent-length: (\d+)", head, re.IGNORECASE)
        assert match is not None, head
        length = int(match.group(1))
        while len(rest) < length:
            rest += self._more()
        self.buffer = rest[length:]
        return int(head.split()[1]), rest[:length]

    def _more(self) -> bytes:
        chunk = self.sock.recv(65536)
        assert chunk, "closed in the middle of a response"
        return chunk

    def close(self) -> None:
        self.sock.close()


def statuses(server: Server, path: str, count: int) -> list[int]:
    client = Client(server)
    try:
        return [client.ask(get(path))[0] for _ in range(count)]
    finally:
        client.close()


# -- limit_req: refusals ---------------------------------------------------------


def test_a_burst_gets_503_past_one_plus_burst(site: Server) -> None:
    # rate=1r/m: no request leaks out of the bucket during the test
    assert statuses(site, "/burst/a.txt", 10) == [200] * 6 + [503] * 4
    # a new connection is the same client: still refused, and the 503 keeps the connection
    assert statuses(site, "/burst/a.txt", 2) == [503, 503]
    assert requests.get(site.url("/"), timeout=5).status_code == 200  # other locations are free


def test_limit_req_status_and_body(site: Server) -> None:
    client = Client(site)
    try:
        answers = [client.ask(get("/teapot/a.txt")) for _ in range(4)]
    finally:
        client.close()
    assert [status for status, _ in answers] == [200, 200, 200, 429]
    assert answers[0][1] == b"in teapot\n"


def test_a_wrk_burst_gets_one_plus_burst_through(site: Server) -> None:
    done = subprocess.run(
        ["wrk", "-t1", "-c4", "-d1s", site.url("/wrk/a.txt")],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    total = int(re.search(r"(\d+) requests in", done.stdout).group(1))  # type: ignore[union-attr]
    refused = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    assert refused is not None, done.stdout
    assert total > 11
    assert total - int(refused.group(1)) == 11  # 1 + burst=10


def test_an_empty_key_is_not_limited(site: Server) -> None:
    assert statuses(site, "/header/a.txt", 5) == [200] * 5
    client = Client(site)
    try:
        named = [client.ask(get("/header/a.txt", "X-Client: one\r\n"))[0] for _ in range(2)]
        other = client.ask(get("/header/a.txt", "X-Client: two\r\n"))[0]
    finally:
        client.close()
    assert named == [200, 503]
    assert other == 200


def test_a_request_is_limited_once_across_an_error_page_redirect(site: Server) -> None:
    # each 404 goes on to /once/not-found.html, in the same limited location
    client = Client(site)
    try:
        answers = [client.ask(get("/once/missing")) for _ in range(5)]
    finally:
        client.close()
    assert [status for status, _ in answers] == [404, 404, 404, 404, 503]
    assert answers[0][1] == b"ONCE NOT FOUND\n"


# -- limit_req: delays ---------------------------------------------------------------


def test_requests_past_delay_wait_at_the_rate(site: Server) -> None:
    # rate=1r/s burst=5 delay=2: three at once, then one a second (the
    # bucket leaks while they are answered, so the 4th is due 1 s after the 1st)
    client = Client(site)
    try:
        start = time.monotonic()
        quick = [client.ask(get("/pace/a.txt")) for _ in range(3)]
        quick_time = time.monotonic() - start
        status, body = client.ask(get("/pace/a.txt"))
        waited = time.monotonic() - start
    finally:
        client.close()
    assert [status for status, _ in quick] == [200, 200, 200]
    assert quick_time < 0.9
    assert (status, body) == (200, b"in pace\n")
    assert waited >= 0.95


def post(path: str, body: bytes) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def chunked(path: str, body: bytes) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    middle = len(body) // 2
    parts = [body[:middle], body[middle:]]
    return head + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


def digest(body: bytes) -> bytes:
    return f"{len(body)} {hashlib.sha256(body).hexdigest()} ".encode()


@pytest.mark.parametrize("path", ["/stream", "/spool"])
def test_a_delayed_request_keeps_its_body(site: Server, path: str) -> None:
    # rate=5r/s burst=5: one after another, each request after the first is
    # due 200 ms after the one before it
    big = bytes(range(256)) * 800  # 200 KiB: several reads, the first held back
    client = Client(site)
    try:
        start = time.monotonic()
        assert client.ask(post(path, b"first")) == (200, digest(b"first"))
        assert client.ask(post(path, big)) == (200, digest(big))
        assert client.ask(chunked(path, big)) == (200, digest(big))
        waited = time.monotonic() - start
    finally:
        client.close()
    assert waited >= 0.38


def test_a_client_gone_during_a_delay_is_forgotten(site: Server) -> None:
    with site.connect() as sock:  # uses the bucket: the next one waits 200 ms
        sock.sendall(post("/stream", b"x"))
        recv_until(sock, b"\r\n\r\n")
    with site.connect() as sock:
        sock.sendall(post("/stream", b"y" * 100))
    # the server is unharmed, and answers the next delayed request
    client = Client(site)
    try:
        assert client.ask(post("/stream", b"z")) == (200, digest(b"z"))
    finally:
        client.close()
    assert "Traceback" not in site.log()


# -- limit_conn ----------------------------------------------------------------------


def started(server: Server, name: str) -> None:
    marker = server.config.parent / f"{name}.started"
    assert wait_for(marker.exists, 10), f"{name} did not start"


def release(server: Server, name: str) -> None:
    (server.config.parent / f"{name}.release").touch()


def test_limit_conn_refuses_while_a_request_is_held(site: Server) -> None:
    holder = Client(site)
    try:
        holder.sock.sendall(get("/held?one"))
        started(site, "one")
        assert requests.get(site.url("/held"), timeout=5).status_code == 503
        release(site, "one")
        assert holder.answer() == (200, digest(b"") + b"one")
    finally:
        holder.close()
    # the count went with the request
    assert requests.get(site.url("/held"), timeout=5).status_code == 200


def test_limit_conn_releases_a_request_whose_client_left(site: Server) -> None:
    sock = site.connect()
    try:
        sock.sendall(get("/held?two"))
        started(site, "two")
        assert requests.get(site.url("/held"), timeout=5).status_code == 503
    finally:
        sock.close()
    try:
        assert wait_for(lambda: requests.get(site.url("/held"), timeout=5).status_code == 200, 10)
    finally:
        release(site, "two")


# -- two workers, one zone ----------------------------------------------------------

SHARED = """
worker_processes 2
limit_req_zone $binary_remote_addr zone=shared:1m rate=1r/m
limit_conn_zone $binary_remote_addr zone=conns:1m
server {
    host 127.0.0.1
    port {port0}
    root ./www
    wsgi_path .
    location / { }
    location /block {
        wsgi gate:app
        wsgi_threads 0
    }
    location /req { limit_req zone=shared burst=2 nodelay }
    location /conn {
        limit_conn conns 1
        wsgi gate:app
        wsgi_threads 0
    }
}
"""


def pid_of(data: bytes) -> str:
    match = re.search(rb"X-Worker-PID: (\d+)", data)
    assert match is not None, data[:300]
    return match.group(1).decode()


def once(server: Server, path: str) -> tuple[int, str]:
    """Status and worker of one request on a new connection."""
    data = server.raw(get(path, "Connection: close\r\n"), timeout=10)
    return int(data.split()[1]), pid_of(data)


def hold(server: Server, name: str, path: str = "/block") -> socket.socket:
    """A request the gate holds on the event loop: its worker takes no other."""
    sock = server.connect(timeout=10)
    sock.sendall(get(f"{path}?{name}", "Connection: close\r\n"))
    started(server, name)
    return sock


def let_go(server: Server, name: str, sock: socket.socket) -> tuple[int, str]:
    release(server, name)
    with sock:
        data = read_all(sock)
    return int(data.split()[1]), pid_of(data)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Server]:
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "req").mkdir()
    (tmp_path / "www" / "req" / "a.txt").write_text("shared\n")
    (tmp_path / "gate.py").write_text(GATE)
    server = start_server(SHARED, tmp_path, env={"LOCALHOST_DEBUG_PID": "1"})
    yield server
    for name in ("a", "b", "c"):
        release(server, name)
    server.stop()


def test_two_workers_share_a_limit_req_zone(workers: Server) -> None:
    first = hold(workers, "a")  # one worker busy: the other answers the next ones
    answers = [once(workers, "/req/a.txt") for _ in range(4)]
    assert [status for status, _ in answers] == [200, 200, 200, 503]
    other = {pid for _, pid in answers}
    assert len(other) == 1
    second = hold(workers, "b")  # now the other worker is busy
    status, held_pid = let_go(workers, "a", first)
    assert status == 200
    assert {held_pid} != other
    # the first worker has not answered /req yet: its bucket is the shared one
    assert once(workers, "/req/a.txt") == (503, held_pid)
    assert let_go(workers, "b", second)[0] == 200


def test_two_workers_share_a_limit_conn_zone(workers: Server) -> None:
    first = hold(workers, "c", "/conn")  # counted in the zone, its worker blocked
    status, pid = once(workers, "/conn")
    assert status == 503
    held_status, held_pid = let_go(workers, "c", first)
    assert held_status == 200
    assert held_pid != pid
    assert once(workers, "/conn")[0] == 200
