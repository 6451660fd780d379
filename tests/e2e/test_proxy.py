"""The reverse proxy end to end: real backends (``test_proxy_backend.py``) behind a real server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import Server, free_port, read_all, recv_until

BACKEND = Path(__file__).with_name("test_proxy_backend.py")


class Backend:
    """A backend process: its port, name and the file noting each request."""

    def __init__(self, port: int, name: str, log: Path, process: subprocess.Popen[bytes]) -> None:
        self.port = port
        self.name = name
        self.log = log
        self.process = process

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def targets(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def backends(tmp_path: Path) -> Iterator[Callable[[int], list[Backend]]]:
    started: list[Backend] = []

    def start(count: int) -> list[Backend]:
        made = []
        for _ in range(count):
            port = free_port()
            name = f"b{len(started)}"
            log = tmp_path / f"{name}.log"
            process = subprocess.Popen([sys.executable, str(BACKEND), str(port), name, str(log)])
            backend = Backend(port, name, log, process)
            started.append(backend)
            made.append(backend)
        for backend in made:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", backend.port), timeout=1).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, "backend did not start"
                    time.sleep(0.02)
        return made

    yield start
    for backend in started:
        backend.kill()


def echo(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def fields(data: dict[str, Any]) -> dict[str, str]:
    return {name.lower(): value for name, value in data["headers"]}


def test_uri_rewriting_table(server_factory: Any, backends: Any) -> None:
    (app,) = backends(1)
    server: Server = server_factory(
        f"""
        upstream app {{ server {app.address} }}
        server {{
            host 127.0.0.1
            port {{port0}}
            location /api/ {{ proxy_pass http://app/ }}
            location /v1/ {{ proxy_pass http://app/v2/ }}
            location /plain {{ proxy_pass http://{app.address} }}
            location /exact/ {{ proxy_pass http://app/inner }}
        }}
        """
    )
    table = [
        ("/api/echo?x=1&y=2", "/echo?x=1&y=2"),
        ("/api/", "/"),
        ("/v1/echo/deep/er", "/v2/echo/deep/er"),
        ("/plain/echo?q", "/plain/echo?q"),
        ("/exact/echo", "/inner/echo"),
        ("/api/a%20b", "/a%20b"),
    ]
    for sent, expected in table:
        data = echo(requests.get(server.url(sent), timeout=5))
        assert data["target"] == expected, sent


def test_headers_forwarded_and_hop_by_hop_removed(server_factory: Any, backends: Any) -> None:
    (app,) = backends(1)
    server: Server = server_factory(
        f"""
        upstream app {{ server {app.address} }}
        server {{
            host 127.0.0.1
            port {{port0}}
            location / {{
                proxy_pass http://app
                proxy_set_header X-Real-IP $remote_addr
                proxy_set_header X-Original-URI $request_uri
            }}
        }}
        """
    )
    response = requests.get(
        server.url("/echo?a=b"),
        headers={
            "Connection": "keep-alive, X-Secret-Hop",
            "X-Secret-Hop": "must not pass",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
            "Proxy-Authorization": "Basic eDp5",
            "X-Forwarded-For": "203.0.113.7",
            "X-Custom": "kept",
        },
        timeout=5,
    )
    got = fields(echo(response))
    for hop in ("x-secret-hop", "keep-alive", "te", "proxy-authorization", "upgrade"):
        assert hop not in got
    assert got["connection"] == "close"  # no keepalive in the group
    assert got["host"] == "app"  # $proxy_host
    assert got["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
    assert got["x-forwarded-proto"] == "http"
    assert got["x-real-ip"] == "127.0.0.1"
    assert got["x-original-uri"] == "/echo?a=b"
    assert got["x-custom"] == "kept"
    # The backend's hop-by-hop fields stay behind; its Server is replaced by ours.
    assert "x-hop" not in response.headers
    assert "keep-alive" not in {k.lower() for k in response.headers}
    assert response.headers["Server"].startswith("localhost")
    assert response.headers["X-Backend"] == app.name


def test_request_bodies_content_length_and_chunked(server_factory: Any, backends: Any) -> None:
    (app,) = backends(1)
    server: Server = server_factory(
        f"server {{ host 127.0.0.1\n port {{port0}}\n location / {{ proxy_pass http://{app.address} }} }}"
    )
    body = os.urandom(300_000).hex()  # 600 kB, more than one read
    data = echo(requests.post(server.url("/echo"), data=body, timeout=10))
    assert data["body"] == body
    assert fields(data)["content-length"] == str(len(body))

    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        for piece in (b"hello ", b"chunked ", b"world"):
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            time.sleep(0.05)  # pieces arrive apart and are streamed apart
        sock.sendall(b"0\r\n\r\n")
        raw = read_all(sock)
    head, _, payload = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    data = json.loads(payload)
    assert data["body"] == "hello chunked world"
    got = fields(data)
    assert got["transfer-encoding"] == "chunked"  # re-framed, as decoded
    assert "content-length" not in got


def test_response_framings_reframed(server_factory: Any, backends: Any) -> None:
    (app,) = backends(1)
    server: Server = server_factory(
        f"server {{ host 127.0.0.1\n port {{port0}}\n location / {{ proxy_pass http://{app.address} }} }}"
    )
    chunked = requests.get(server.url("/chunked"), timeout=5)
    assert chunked.text == "hello world"
    closed = requests.get(server.url("/close"), timeout=5)
    assert closed.text == "until the end"
    assert closed.headers["Transfer-Encoding"] == "chunked"  # HTTP/1.1 client: re-framed
    head = requests.head(server.url("/echo"), timeout=5)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["Content-Length"]) > 0
    assert requests.get(server.url("/status/204"), timeout=5).status_code == 204


def test_pooled_connections_are_reused(server_factory: Any, backends: Any) -> None:
    pooled, fresh = backends(2)
    server: Server = server_factory(
        f"""
        upstream pooled {{ server {pooled.address}
            keepalive 4 }}
        upstream fresh {{ server {fresh.address} }}
        server {{
            host 127.0.0.1
            port {{port0}}
            location /p/ {{ proxy_pass http://pooled/ }}
            location /f/ {{ proxy_pass http://fresh/ }}
        }}
        """
    )
    pooled_conns = {echo(requests.get(server.url("/p/echo"), timeout=5))["conn"] for _ in range(6)}
    fresh_conns = {echo(requests.get(server.url("/f/echo"), timeout=5))["conn"] for _ in range(6)}
    assert len(pooled_conns) == 1  # one upstream accept for six requests
    assert len(fresh_conns) == 6


def test_pooled_connection_closed_by_backend_is_not_used(
    server_factory: Any, backends: Any
) -> None:
    (app,) = backends(1)
    server: Server = server_factory(
        f"""
        upstream app {{ server {app.address}
            keepalive 4 }}
        server {{ host 127.0.0.1
            port {{port0}}
            location / {{ proxy_pass http://app }} }}
        """
    )
    first = echo(requests.get(server.url("/echo"), timeout=5))["conn"]
    response = requests.get(server.url("/echo"), headers={"X-Any": "1"}, timeout=5)
    assert echo(response)["conn"] == first
    app.kill()
    app.process = subprocess.Popen(  # same port, new process
        [sys.executable, str(BACKEND), str(app.port), "again", str(app.log)]
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", app.port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    # The pooled connection died with the old process: a POST must not be
    # lost on it; it goes on a new connection.
    data = echo(requests.post(server.url("/echo"), data=b"once", timeout=5))
    assert data["backend"] == "again" and data["body"] == "once"


def distribution(server: Server, count: int, path: str = "/echo") -> Counter[str]:
    with requests.Session() as session:
        return Counter(
            session.get(server.url(path), timeout=5).headers["X-Backend"] for _ in range(count)
        )


def test_round_robin_with_weights(server_factory: Any, backends: Any) -> None:
    a, b, c = backends(3)
    server: Server = server_factory(
        f"""
        upstream app {{
            server {a.address}
            server {b.address} weight=2
            server {c.address}
        }}
        server {{ host 127.0.0.1
            port {{port0}}
            location / {{ proxy_pass http://app }} }}
        """
    )
    assert distribution(server, 40) == {a.name: 10, b.name: 20, c.name: 10}


def test_least_conn_avoids_the_busy_server(server_factory: Any, backends: Any) -> None:
    a, b = backends(2)
    server: Server = server_factory(
        f"""
        upstream app {{
            least_conn
            server {a.address}
            server {b.address}
        }}
        server {{ host 127.0.0.1
            port {{port0}}
            location / {{ proxy_pass http://app
                proxy_read_timeout 20s }} }}
        """
    )
    hung = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    hung.sendall(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
    deadline = time.monotonic() + 5
    while not any("/hang" in t for t in a.targets() + b.targets()):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    busy = a if any("/hang" in t for t in a.targets()) else b
    counts = distribution(server, 6)
    hung.close()
    assert busy.name not in counts and sum(counts.values()) == 6


def test_ip_hash_is_sticky(server_factory: Any, backends: Any) -> None:
    servers = backends(3)
    lines = "\n".join(f"server {b.address}" for b in servers)
    server: Server = server_factory(
        f"""
        upstream app {{ ip_hash
            {lines} }}
        server {{ host 127.0.0.1
            port {{port0}}
            location / {{ proxy_pass http://app }} }}
        """
    )
    counts = distribution(server, 12)
    assert len(counts) == 1 and sum(counts.values()) == 12


def test_killed_backend_fails_over_and_is_marked_down(server_factory: Any, backends: Any) -> None:
    a, b = backends(2)
    server: Server = server_factory(
        f"""
        log_format up "$request_uri $status $upstream_addr $upstream_status"
        upstream app {{
            server {a.address} max_fails=1 fail_timeout=30s
            server {b.address}
        }}
        server {{ host 127.0.0.1
            port {{port0}}
            access_log ./access.log up
            location / {{ proxy_pass http://app }} }}
        """
    )
    a.kill()
    counts = distribution(server, 6)
    assert counts == {b.name: 6}  # every request answered, by the live server
    log = server.config.parent / "access.log"
    deadline = time.monotonic() + 5
    while len(log.read_text().splitlines()) < 6 if log.exists() else True:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    lines = log.read_text().splitlines()
    # The first request tried the dead server, then the live one (502 is NGINX's
    # "-" for no response: no status); afterwards the dead one is skipped.
    assert lines[0] == f"/echo 200 {a.address}, {b.address} -, 200"
    assert all(line == f"/echo 200 {b.address} 200" for line in lines[1:])


def test_all_servers_down_gives_502(server_factory: Any, backends: Any) -> None:
    dead = free_port()
    server: Server = server_factory(
        f"server {{ host 127.0.0.1\n port {{port0}}\n location / {{ proxy_pass http://127.0.0.1:{dead} }} }}"
    )
    assert requests.get(server.url("/x"), timeout=5).status_code == 502
    assert f"127.0.0.1:{dead}" in server.log()


def test_backup_used_only_when_primaries_are_down(server_factory: Any, backends: Any) -> None:
    primary, backup = backends(2)
    server: Server = server_factory(
        f"""
        upstream app {{
            server {primary.address}
            server {backup.address} backup
        }}
        server {{ host 127.0.0.1
            port {{port0}}
            location / {{ proxy_pass http://app }} }}
        """
    )
    assert distribution(server, 4) == {primary.name: 4}
    primary.kill()
    assert distribution(server, 4) == {backup.name: 4}


def test_malformed_response_gives_502(server_factory: Any, backends: Any) -> None:
    (app,) = backends(1)
    server: Server = server_factory(
        f"server {{ host 127.0.0.1\n port {{port0}}\n location / {{ proxy_pass http://{app.address} }} }}"
    )
    assert requests.get(server.url("/bad"), timeout=5).status_code == 502
    assert "malformed status code" in server.log()


def test_hung_backend_gives_504_and_others_are_served(server_factory: Any, backends: Any) -> None:
    (app,) = backends(1)
    server: Server = server_factory(
        f"""
        server {{ host 127.0.0.1
            port {{port0}}
            location / {{ proxy_pass http://{app.address}
                proxy_read_timeout 1500ms }} }}
        """
    )
    start = time.monotonic()
    hung = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    hung.sendall(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
    # Meanwhile every other client is answered at once.
    for _ in range(10):
        before = time.monotonic()
        echo(requests.get(server.url("/echo"), timeout=5))
        assert time.monotonic() - before < 0.5
    answer = recv_until(hung, b"\r\n\r\n", limit=10)
    elapsed = time.monotonic() - start
    hung.close()
    assert answer.startswith(b"HTTP/1.1 504")
    assert 1.4 <= elapsed < 5
    assert "timed out" in server.log()


def test_large_response_streams_with_bounded_memory(server_factory: Any, backends: Any) -> None:
    (app,) = backends(1)
    server: Server = server_factory(
        f"server {{ host 127.0.0.1\n port {{port0}}\n location / {{ proxy_pass http://{app.address} }} }}"
    )
    size = 10 * 1024 * 1024
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
    sock.connect(("127.0.0.1", server.port))
    sock.settimeout(10)
    sock.sendall(b"GET /big?size=%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % size)
    received = 0
    peak = 0
    while True:
        piece = sock.recv(16384)
        if not piece:
            break
        received += len(piece)
        if received % (1024 * 1024) < 16384:
            peak = max(peak, rss_kib(server.process.pid))
            time.sleep(0.05)  # a slow reader
    sock.close()
    assert received > size
    baseline = rss_kib(server.process.pid)
    # The worker never holds the body: its memory stays within a few MiB.
    assert peak - baseline < 8 * 1024, (peak, baseline)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_websocket_upgrade_is_tunnelled(server_factory: Any, backends: Any) -> None:
    (app,) = backends(1)
    server: Server = server_factory(
        f"""
        server {{ host 127.0.0.1
            port {{port0}}
            location / {{ proxy_pass http://{app.address}
                proxy_read_timeout 2s }} }}
        """
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        head = recv_until(sock, b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101")
        assert b"upgrade: websocket" in head.lower()
        for message in (b"\x81\x05hello", bytes(range(256)) * 100):
            sock.sendall(message)
            got = b""
            while len(got) < len(message):
                got += sock.recv(65536)
            assert got == message
        # Idle past proxy_read_timeout: the tunnel closes.
        start = time.monotonic()
        assert read_all(sock) == b""
        assert 1.5 < time.monotonic() - start < 5


@pytest.mark.parametrize(
    "attack",
    [
        # CL.TE: both framings; the strict parser refuses the message.
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        # TE.CL, the other order.
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
        b"5c\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n0\r\n\r\n",
        # TE.TE: an obfuscated second coding.
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n"
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:  chunked, identity\r\n\r\n"
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
)
def test_smuggling_shapes_never_reach_the_backend(
    server_factory: Any, backends: Any, attack: bytes
) -> None:
    (app,) = backends(1)
    server: Server = server_factory(
        f"""
        upstream app {{ server {app.address}
            keepalive 4 }}
        server {{ host 127.0.0.1
            port {{port0}}
            location / {{ proxy_pass http://app }} }}
        """
    )
    echo(requests.get(server.url("/echo"), timeout=5))  # a pooled connection exists
    reply = server.raw(attack)
    assert reply.startswith((b"HTTP/1.1 400", b"HTTP/1.1 501")), reply[:100]
    echo(requests.get(server.url("/echo"), timeout=5))
    targets = app.targets()
    assert not any("smuggled" in t for t in targets), targets
    assert targets == ["GET /echo 0", "GET /echo 0"]


def test_chunked_body_is_reframed_not_copied(server_factory: Any, backends: Any) -> None:
    (app,) = backends(1)
    server: Server = server_factory(
        f"server {{ host 127.0.0.1\n port {{port0}}\n location / {{ proxy_pass http://{app.address} }} }}"
    )
    # Chunk extensions and a trailer are accepted by the parser and not passed on.
    reply = server.raw(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"3;ext=1\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    data = json.loads(reply.partition(b"\r\n\r\n")[2])
    assert data["body"] == "abc"
    assert "x-trailer" not in fields(data)


def test_upstream_log_variables(server_factory: Any, backends: Any) -> None:
    (app,) = backends(1)
    server: Server = server_factory(
        f"""
        log_format up "$upstream_addr|$upstream_status|$upstream_response_time|$proxy_host"
        server {{ host 127.0.0.1
            port {{port0}}
            access_log ./access.log up
            location / {{ proxy_pass http://{app.address} }}
            location /static {{ return 200 "x" }} }}
        """
    )
    requests.get(server.url("/status/404"), timeout=5)
    requests.get(server.url("/static"), timeout=5)
    log = server.config.parent / "access.log"
    deadline = time.monotonic() + 5
    while not log.exists() or len(log.read_text().splitlines()) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proxied, other = log.read_text().splitlines()
    addr, status, seconds, host = proxied.split("|")
    assert (addr, status, host) == (app.address, "404", app.address)
    assert 0 <= float(seconds) < 5 and len(seconds.split(".")[1]) == 3
    assert other == "-|-|-|-"


def test_gunicorn_backend(server_factory: Any, tmp_path: Path) -> None:
    pytest.importorskip("gunicorn")
    app = tmp_path / "wsgiapp.py"
    app.write_text(
        "def application(environ, start_response):\n"
        "    body = environ['wsgi.input'].read()\n"
        "    text = f\"{environ['REQUEST_METHOD']} {environ['PATH_INFO']} \"\n"
        "    text += f\"{environ.get('HTTP_X_FORWARDED_FOR')} {len(body)}\"\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [text.encode()]\n"
    )
    port = free_port()
    gunicorn = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            "1",
            "wsgiapp:application",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.05)
        server: Server = server_factory(
            f"""
            upstream gunicorn {{ server 127.0.0.1:{port}
                keepalive 8 }}
            server {{ host 127.0.0.1
                port {{port0}}
                location /app/ {{ proxy_pass http://gunicorn/ }} }}
            """
        )
        response = requests.post(server.url("/app/hello"), data=b"x" * 1000, timeout=10)
        assert response.status_code == 200
        assert response.text == "POST /hello 127.0.0.1 1000"
        assert requests.get(server.url("/app/again"), timeout=10).text.startswith("GET /again")
    finally:
        gunicorn.send_signal(signal.SIGTERM)
        gunicorn.wait(10)


def _data_segments_in(sock: socket.socket) -> int | None:
    """``tcpi_data_segs_in`` of ``sock``: TCP segments with payload received (Linux 4.6+)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, getattr(socket, "TCP_INFO", 11), 256)
    if len(info) < 156:
        return None
    return int.from_bytes(info[152:156], sys.byteorder)


def _read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """The head and the body of one response with a Content-Length."""
    data = recv_until(sock, b"\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        piece = sock.recv(65536)
        assert piece, "closed mid-body"
        body += piece
    assert len(body) == length
    return head, body


def test_a_small_response_reaches_the_client_in_one_write(
    server_factory: Any, backends: Any
) -> None:
    # The backend writes each answer's head and body at once; through the
    # proxy they go on together in one segment, not a head and then a body.
    (app,) = backends(1)
    server: Server = server_factory(
        f"""
        upstream app {{ server {app.address}
            keepalive 4 }}
        server {{ host 127.0.0.1
            port {{port0}}
            location / {{ proxy_pass http://app }} }}
        """
    )
    with server.connect() as sock:
        if not sys.platform.startswith("linux") or _data_segments_in(sock) is None:
            pytest.skip("needs TCP_INFO's tcpi_data_segs_in (Linux 4.6+)")
        for _ in range(3):
            before = _data_segments_in(sock)
            assert before is not None
            sock.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
            head, body = _read_response(sock)
            assert head.startswith(b"HTTP/1.1 200 ") and json.loads(body)["target"] == "/echo"
            assert _data_segments_in(sock) == before + 1
        # A body that does not come whole with its head is still streamed.
        sock.sendall(b"GET /big?size=3000000 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_response(sock)[1] == b"x" * 3000000


def test_remembered_upstream_heads_keep_per_client_values(
    server_factory: Any, backends: Any
) -> None:
    # The same request head from two addresses, twice each: every forwarded
    # head names its own client, and a per-request variable ($request_id)
    # is never taken from an earlier request.
    (app,) = backends(1)
    server: Server = server_factory(
        f"""
        upstream app {{ server {app.address}
            keepalive 4 }}
        server {{ host 127.0.0.1
            port {{port0}}
            location /same/ {{ proxy_pass http://app/ }}
            location /id/ {{
                proxy_pass http://app/
                proxy_set_header X-Id $request_id
            }} }}
        """
    )

    def forwarded(source: str, target: str) -> dict[str, str]:
        with socket.create_connection(("127.0.0.1", server.port), 5, (source, 0)) as sock:
            sock.sendall(
                b"GET %s HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 198.51.100.1\r\n\r\n"
                % target.encode()
            )
            return fields(json.loads(_read_response(sock)[1]))

    for source in ("127.0.0.1", "127.0.0.2", "127.0.0.1", "127.0.0.2"):
        got = forwarded(source, "/same/echo")
        assert got["x-forwarded-for"] == f"198.51.100.1, {source}"
        assert got["x-forwarded-proto"] == "http"
    ids = {forwarded("127.0.0.1", "/id/echo")["x-id"] for _ in range(3)}
    assert len(ids) == 3


def test_the_last_servers_answer_is_relayed_when_next_upstream_runs_out(
    server_factory: Any, backends: Any
) -> None:
    first, second = backends(2)
    server: Server = server_factory(
        f"""
        upstream pair {{ server {first.address}; server {second.address} }}
        upstream one {{ server {first.address} }}
        server {{
            host 127.0.0.1
            port {{port0}}
            location /pair/ {{
                proxy_pass http://pair/
                proxy_next_upstream error timeout http_503
            }}
            location /one/ {{
                proxy_pass http://one/
                proxy_next_upstream error timeout http_404
            }}
        }}
        """
    )
    # Both servers answer 503: the second one's answer goes to the client
    # (as NGINX relays the last), not a 502.
    answer = requests.get(server.url("/pair/status/503"), timeout=5)
    assert (answer.status_code, answer.content) == (503, b"s!")
    assert len(first.targets() + second.targets()) == 2  # each tried once
    # The last server was not counted as failed: the group still answers.
    assert echo(requests.get(server.url("/pair/echo"), timeout=5))["target"] == "/echo"
    # One server and nothing to move on to: its 404 is the answer.
    answer = requests.get(server.url("/one/status/404"), timeout=5)
    assert (answer.status_code, answer.content) == (404, b"s!")
    assert "no live upstreams" not in server.log()


def test_a_uri_part_gets_the_normalized_path(server_factory: Any, backends: Any) -> None:
    (app,) = backends(1)
    server: Server = server_factory(
        f"""
        server {{
            host 127.0.0.1
            port {{port0}}
            location /pub/ {{ proxy_pass http://{app.address}/public/ }}
        }}
        """
    )
    for sent, expected in (
        ("/pub/a%2Fb/../../echo", "/public/echo"),
        ("/pub/./x/%2e%2e/echo?q=1", "/public/echo?q=1"),
    ):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(f"GET {sent} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
            reply = read_all(sock)
        assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]
        assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["target"] == expected
