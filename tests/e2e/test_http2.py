"""HTTP/2 end to end over clear text (prior knowledge): the ``h2`` library as a
raw client (so that a test can send what a polite client never would), curl
and h2load; every handler through the same exchange as HTTP/1.1."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import pytest
import requests

from tests.conftest import Server
from tests.proc import wait_for

CONFIG = """
server {
    host 127.0.0.1
    port {port0}
    root ./www
    http2 on
    http2_max_concurrent_streams 8
    http2_recv_timeout 2s
    send_timeout 3s
    error_page 404 /missing.html
    location / { directory_listing on }
    location /cgi-bin {
        root ./cgi-bin
        cgi .py python3
    }
    location /uploads {
        methods GET POST
        root ./uploads
        body_limit 1m
    }
    location /old { redirect /new/ }
    location /app {
        wsgi probe:app
        wsgi_path .
        wsgi_threads 0
    }
    location /session { session on }
    location /api {
        app api:app
        wsgi_path .
        error_page 500 /cgi-bin/env.py
    }
    location /gz {
        root ./www/gz
        gzip on
        gzip_types text/plain
    }
}
"""

CGI = (
    "import os, sys, time\n"
    "if os.environ.get('QUERY_STRING') == 'slow':\n"
    "    time.sleep(1.0)\n"
    'print("Content-Type: text/plain")\n'
    "print()\n"
    "print(os.environ['SERVER_PROTOCOL'], os.environ.get('CONTENT_LENGTH', '-'))\n"
    "print(len(sys.stdin.buffer.read()))\n"
)

WSGI = """
def app(environ, start_response):
    body = environ["SERVER_PROTOCOL"].encode() + b" " + environ["wsgi.url_scheme"].encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
"""


API = """
from localhost import App, Response

app = App()


@app.route("GET", "/hello", inline=True)
def hello(req):
    return Response(200, {"content-type": "text/plain"}, b"hello " + req.method.encode())


@app.route("GET", "/parts", inline=True)
def parts(req):
    return Response(200, {}, (piece for piece in (b"a" * 40000, b"b" * 40000)))


@app.route("GET", "/threaded")
def threaded(req):
    return "from a thread"


@app.route("GET", "/boom", inline=True)
def boom(req):
    raise RuntimeError("boom")
"""


@pytest.fixture
def server(server_factory, tmp_path: Path) -> Server:
    www = tmp_path / "www"
    (www / "dir").mkdir(parents=True)
    (www / "gz").mkdir()
    (www / "index.html").write_text("<p>home</p>\n")
    (www / "missing.html").write_text("custom not found\n")
    (www / "dir" / "a.txt").write_text("a\n")
    (www / "big.bin").write_bytes(os.urandom(10 * 1024 * 1024))
    for index in range(20):
        (www / f"f{index}.txt").write_text(f"file {index}\n" * (index + 1))
    (tmp_path / "cgi-bin").mkdir()
    (tmp_path / "cgi-bin" / "env.py").write_text(CGI)
    (tmp_path / "uploads").mkdir()
    (tmp_path / "probe.py").write_text(WSGI)
    (tmp_path / "api.py").write_text(API)
    return server_factory(CONFIG)


class Client:
    """A raw HTTP/2 client over one socket (h2 does the frames)."""

    def __init__(self, port: int, window: int | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        if window is not None:
            self.conn.local_settings = h2.settings.Settings(
                client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window}
            )
        self.conn.initiate_connection()
        self.flush()
        self.responses: dict[int, dict[str, Any]] = {}
        self.events: list[Any] = []
        self.auto_ack = True

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(
        self,
        path: str,
        method: str = "GET",
        headers: list[tuple[str, str]] | None = None,
        body: bytes | None = None,
        end: bool = True,
    ) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        fields = [(":method", method), (":path", path), (":scheme", "http"), (":authority", "t")]
        self.conn.send_headers(stream_id, fields + (headers or []), end_stream=end and body is None)
        if body is not None:
            self.conn.send_data(stream_id, body, end_stream=end)
        self.flush()
        self.responses[stream_id] = {"headers": None, "body": bytearray(), "ended": False}
        return stream_id

    def pump(self, until: Any, limit: float = 10.0) -> None:
        deadline = time.monotonic() + limit
        while not until():
            if time.monotonic() > deadline:
                raise TimeoutError("no answer in time")
            self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            data = self.sock.recv(65536)
            if not data:
                self.events.append("closed")
                return
            for event in self.conn.receive_data(data):
                self.events.append(event)
                entry = self.responses.get(getattr(event, "stream_id", 0))
                if isinstance(event, h2.events.ResponseReceived) and entry is not None:
                    entry["headers"] = {k.decode(): v.decode() for k, v in event.headers}
                elif isinstance(event, h2.events.DataReceived) and entry is not None:
                    entry["body"] += event.data
                    if self.auto_ack:
                        self.conn.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                elif isinstance(event, h2.events.StreamEnded) and entry is not None:
                    entry["ended"] = True
                elif isinstance(event, h2.events.StreamReset) and entry is not None:
                    entry["reset"] = event.error_code
            self.flush()

    def get(self, path: str, **kwargs: Any) -> dict[str, Any]:
        stream_id = self.request(path, **kwargs)
        entry = self.responses[stream_id]
        self.pump(lambda: entry["ended"] or "reset" in entry)
        return entry

    def goaway(self) -> h2.events.ConnectionTerminated | None:
        for event in self.events:
            if isinstance(event, h2.events.ConnectionTerminated):
                return event
        return None

    def close(self) -> None:
        self.sock.close()


def test_static_listing_redirect_and_error_page(server: Server) -> None:
    client = Client(server.port)
    try:
        home = client.get("/index.html")
        assert home["headers"][":status"] == "200"
        assert bytes(home["body"]) == b"<p>home</p>\n"
        assert home["headers"]["content-length"] == "12"
        assert "connection" not in home["headers"]
        listing = client.get("/dir/")
        assert listing["headers"][":status"] == "200" and b"a.txt" in listing["body"]
        moved = client.get("/old")
        assert moved["headers"][":status"] == "301"
        assert moved["headers"]["location"].endswith("/new/")
        missing = client.get("/nope")
        assert missing["headers"][":status"] == "404"
        assert bytes(missing["body"]) == b"custom not found\n"
        head = client.get("/index.html", method="HEAD")
        assert head["headers"]["content-length"] == "12" and head["body"] == b""
    finally:
        client.close()


def test_many_concurrent_streams_on_one_connection(server: Server) -> None:
    client = Client(server.port)
    try:
        ids = {client.request(f"/f{index}.txt"): index for index in range(8)}
        client.pump(lambda: all(client.responses[i]["ended"] for i in ids))
        for stream_id, index in ids.items():
            assert bytes(client.responses[stream_id]["body"]) == f"file {index}\n".encode() * (
                index + 1
            )
    finally:
        client.close()


def test_ten_mib_download_with_a_small_window(server: Server, tmp_path: Path) -> None:
    expected = hashlib.sha256((tmp_path / "www" / "big.bin").read_bytes()).hexdigest()
    client = Client(server.port, window=16 * 1024)
    try:
        entry = client.get("/big.bin")
        assert hashlib.sha256(entry["body"]).hexdigest() == expected
    finally:
        client.close()


def test_zero_window_holds_the_stream_and_others_are_served(server: Server) -> None:
    client = Client(server.port, window=16 * 1024)
    client.auto_ack = False  # never give the window back
    try:
        stalled = client.request("/big.bin")
        client.pump(lambda: len(client.responses[stalled]["body"]) >= 16 * 1024)
        assert not client.responses[stalled]["ended"]
        # Another client on its own connection is served meanwhile.
        assert requests.get(server.url("/index.html"), timeout=5).text == "<p>home</p>\n"
    finally:
        client.close()


def test_cgi_uploads_and_wsgi_see_http2(server: Server, tmp_path: Path) -> None:
    client = Client(server.port)
    try:
        cgi = client.get("/cgi-bin/env.py", method="POST", body=b"x" * 5000)
        assert bytes(cgi["body"]).split() == [b"HTTP/2", b"5000", b"5000"]
        # A body without Content-Length (DATA frames only).
        unknown = client.get("/cgi-bin/env.py", method="POST", body=b"y" * 300)
        assert bytes(unknown["body"]).split()[-1] == b"300"
        app = client.get("/app/")
        assert bytes(app["body"]) == b"HTTP/2 http"
        boundary = "XyZ"
        form = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="f"; filename="up.txt"\r\n'
            f"Content-Type: text/plain\r\n\r\nuploaded over h2\r\n--{boundary}--\r\n"
        ).encode()
        upload = client.get(
            "/uploads/",
            method="POST",
            headers=[("content-type", f"multipart/form-data; boundary={boundary}")],
            body=form,
        )
        assert upload["headers"][":status"] in ("201", "303")
        assert (tmp_path / "uploads" / "up.txt").read_bytes() == b"uploaded over h2"
        # Refused by its Content-Length, before the body (then the stream is reset).
        announced = str(2 * 1024 * 1024)
        too_big = client.get(
            "/uploads/",
            method="POST",
            headers=[("content-length", announced)],
            body=b"z",
            end=False,
        )
        assert too_big["headers"][":status"] == "413"
        # Refused as the DATA frames pass the limit (no Content-Length).
        stream_id = client.request("/uploads/", method="POST", end=False)
        for _ in range(80):
            if client.responses[stream_id]["headers"] is not None:
                break
            client.conn.send_data(stream_id, b"z" * 16384)
            client.flush()
            client.pump(lambda: client.conn.local_flow_control_window(stream_id) > 16384, 5)
        client.pump(lambda: client.responses[stream_id]["headers"] is not None)
        assert client.responses[stream_id]["headers"][":status"] == "413"
        session = client.get("/session")
        assert "LOCALHOST_SESSION=" in session["headers"]["set-cookie"]
    finally:
        client.close()


def test_app_routes_over_http2(server: Server) -> None:
    """Inline App routes answer from the pipeline itself (no handler object):
    over HTTP/2 too, repeatedly on one connection, next to a stream and a
    threaded route."""
    client = Client(server.port)
    try:
        for _ in range(3):
            hello = client.get("/api/hello")
            assert hello["headers"][":status"] == "200"
            assert bytes(hello["body"]) == b"hello GET"
        head = client.get("/api/hello", method="HEAD")
        assert head["headers"][":status"] == "200" and bytes(head["body"]) == b""
        assert head["headers"]["content-length"] == "10"  # "hello HEAD"
        parts = client.get("/api/parts")
        assert bytes(parts["body"]) == b"a" * 40000 + b"b" * 40000
        assert bytes(client.get("/api/threaded")["body"]) == b"from a thread"
        assert client.get("/api/nothing")["headers"][":status"] == "404"
        missing = client.get("/api/hello", method="DELETE")
        assert missing["headers"][":status"] == "405"
        # An inline route that raises: its error page, served by a CGI script
        # (which answers later, from its own request), is what the client gets.
        failed = client.get("/api/boom")
        assert failed["headers"][":status"] == "500"
        assert bytes(failed["body"]).split()[0] == b"HTTP/2"
    finally:
        client.close()


def test_http1_still_works_on_the_port(server: Server) -> None:
    reply = requests.get(server.url("/index.html"), timeout=5)
    assert reply.status_code == 200 and reply.raw.version == 11


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is missing")
def test_curl_prior_knowledge(server: Server) -> None:
    result = subprocess.run(
        [
            "curl",
            "-s",
            "--http2-prior-knowledge",
            "-w",
            "%{http_version}",
            server.url("/index.html"),
        ],
        capture_output=True,
        timeout=30,
        check=True,
    )
    assert result.stdout == b"<p>home</p>\n2"


def test_max_concurrent_streams(server: Server) -> None:
    client = Client(server.port)
    try:
        client.pump(lambda: client.conn.remote_settings.max_concurrent_streams == 8)
        # Streams whose request never ends stay open on the server.
        ids = [client.request("/uploads/", method="POST", body=b"x", end=False) for _ in range(8)]
        client.flush()
        # The client library itself refuses a ninth; send one more by hand.
        client.conn.remote_settings.acknowledge()
        client.conn.remote_settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = 100
        client.conn.remote_settings.acknowledge()
        extra = client.request("/index.html")
        client.pump(lambda: "reset" in client.responses[extra])
        assert client.responses[extra]["reset"] == h2.errors.ErrorCodes.REFUSED_STREAM
        assert len(ids) == 8
    finally:
        client.close()


def test_rapid_reset_is_stopped(server: Server) -> None:
    client = Client(server.port)
    try:
        for _ in range(400):
            stream_id = client.conn.get_next_available_stream_id()
            client.conn.send_headers(
                stream_id,
                [
                    (":method", "GET"),
                    (":path", "/big.bin"),
                    (":scheme", "http"),
                    (":authority", "t"),
                ],
            )
            client.conn.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
        client.flush()
        client.pump(lambda: client.goaway() is not None or "closed" in client.events)
        goaway = client.goaway()
        assert goaway is not None
        assert goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    finally:
        client.close()
    assert requests.get(server.url("/index.html"), timeout=5).status_code == 200


def test_ping_flood_is_stopped(server: Server) -> None:
    client = Client(server.port)
    try:
        for index in range(400):
            client.conn.ping(index.to_bytes(8, "big"))
        client.flush()
        client.pump(lambda: client.goaway() is not None or "closed" in client.events)
        goaway = client.goaway()
        assert goaway is not None
        assert goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    finally:
        client.close()


def _raw_headers_frame(stream_id: int, fields: list[tuple[bytes, bytes]]) -> bytes:
    """A HEADERS frame (END_STREAM, END_HEADERS) encoded without h2's checks."""
    import hpack

    block = hpack.Encoder().encode(fields)
    head = len(block).to_bytes(3, "big") + b"\x01\x05" + stream_id.to_bytes(4, "big")
    return head + block


def refused(received: bytes) -> bool:
    """An RST_STREAM (length 4, type 0x3) or a GOAWAY (type 0x7) frame is in ``received``."""
    return b"\x00\x00\x04\x03" in received or b"\x07\x00\x00\x00\x00\x00" in received


@pytest.mark.parametrize(
    "bad",
    [
        (b"X-Upper", b"1"),  # uppercase field name (RFC 9113 §8.2.1)
        (b"connection", b"keep-alive"),  # connection-specific (§8.2.2)
        (b"te", b"gzip"),  # TE other than trailers
        (b"transfer-encoding", b"chunked"),
    ],
)
def test_malformed_requests_are_refused(server: Server, bad: tuple[bytes, bytes]) -> None:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    with sock:
        base = [(b":method", b"GET"), (b":path", b"/index.html"), (b":scheme", b"http"),
                (b":authority", b"t")]  # fmt: skip
        sock.sendall(
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
            + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # empty SETTINGS
            + _raw_headers_frame(1, [*base, bad])
        )
        received = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except OSError:
                break
            if not data:
                break
            received += data
            if b"home" in received or refused(received):
                break
        # Never answered: a stream or connection error instead (RST_STREAM 0x3 or GOAWAY 0x7).
        assert b"home" not in received
        assert refused(received)
    assert requests.get(server.url("/index.html"), timeout=5).status_code == 200


def test_content_length_that_disagrees_with_data(server: Server) -> None:
    client = Client(server.port)
    try:
        stream_id = client.conn.get_next_available_stream_id()
        fields = [(":method", "POST"), (":path", "/cgi-bin/env.py"), (":scheme", "http"),
                  (":authority", "t"), ("content-length", "10")]  # fmt: skip
        client.conn.send_headers(stream_id, fields)
        client.conn.send_data(stream_id, b"12345", end_stream=True)
        client.flush()
        client.responses[stream_id] = {"headers": None, "body": bytearray(), "ended": False}
        client.pump(
            lambda: (
                "reset" in client.responses[stream_id]
                or client.goaway() is not None
                or "closed" in client.events
            )
        )
        assert client.responses[stream_id]["headers"] is None
    finally:
        client.close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is missing")
def test_graceful_stop_sends_goaway_and_finishes_streams(server: Server) -> None:
    idle = Client(server.port)
    idle.get("/index.html")
    # A stream in flight (a CGI that takes a second), from curl, which
    # finishes a stream that a GOAWAY's last stream id still covers.
    slow = subprocess.Popen(
        ["curl", "-s", "--http2-prior-knowledge", "-w", " %{http_code}",
         server.url("/cgi-bin/env.py?slow")],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        time.sleep(0.3)  # curl's request is in the CGI's hands
        server.process.send_signal(signal.SIGQUIT)
        idle.pump(lambda: idle.goaway() is not None or "closed" in idle.events)
        goaway = idle.goaway()
        assert goaway is not None and goaway.error_code == h2.errors.ErrorCodes.NO_ERROR
        assert goaway.last_stream_id == 1
        out, _ = slow.communicate(timeout=10)
        assert out.split() == [b"HTTP/2", b"-", b"0", b"200"]
    finally:
        idle.close()
        if slow.poll() is None:
            slow.kill()
    assert wait_for(lambda: server.process.poll() is not None, 10)


@pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load (nghttp2-client) is missing")
def test_h2load_without_errors(server: Server) -> None:
    result = subprocess.run(
        ["h2load", "-n", "2000", "-c", "4", "-m", "8", server.url("/f3.txt")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "2000 succeeded, 0 failed, 0 errored" in result.stdout, result.stdout


def test_a_request_that_stalls_is_reset_at_the_recv_timeout(server: Server) -> None:
    client = Client(server.port)
    try:
        started = time.monotonic()
        stalled = client.request("/cgi-bin/env.py", method="POST", body=b"part", end=False)
        served = client.get("/index.html")  # the connection serves others meanwhile
        assert served["headers"][":status"] == "200"
        client.pump(lambda: "reset" in client.responses[stalled], limit=10)
        assert client.responses[stalled]["reset"] == h2.errors.ErrorCodes.CANCEL
        assert 1.5 < time.monotonic() - started < 6
    finally:
        client.close()


# -- over TLS (ALPN) ----------------------------------------------------------

TLS_CONFIG = """
ssl_certificate ./a.pem
ssl_certificate_key ./a.key
server {
    host 127.0.0.1
    port {port0} ssl http2
    server_name a.test
    root ./www
}
server {
    host 127.0.0.1
    port {port0} ssl http2
    server_name b.test
    ssl_certificate ./b.pem
    ssl_certificate_key ./b.key
    root ./www
}
server {
    listen 127.0.0.1:{port1} http2
    root ./www
}
"""


@pytest.fixture
def tls_server(server_factory, tmp_path: Path) -> tuple[Server, Path]:
    import trustme

    ca = trustme.CA()
    for name in ("a", "b"):
        cert = ca.issue_cert(f"{name}.test")
        cert.private_key_pem.write_to_path(str(tmp_path / f"{name}.key"))
        cert.cert_chain_pems[0].write_to_path(str(tmp_path / f"{name}.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "index.html").write_text("<p>secure</p>\n")
    return server_factory(TLS_CONFIG, nports=2), tmp_path / "ca.pem"


def tls_client(port: int, ca: Path, name: str, alpn: list[str]) -> tuple[Any, str | None]:
    import ssl

    context = ssl.create_default_context(cafile=str(ca))
    context.set_alpn_protocols(alpn)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock = context.wrap_socket(raw, server_hostname=name)
    return sock, sock.selected_alpn_protocol()


def test_alpn_h2_over_tls(tls_server: tuple[Server, Path]) -> None:
    server, ca = tls_server
    sock, chosen = tls_client(server.port, ca, "a.test", ["h2", "http/1.1"])
    assert chosen == "h2"
    client = Client.__new__(Client)
    client.sock = sock
    client.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.conn.initiate_connection()
    client.flush()
    client.responses, client.events, client.auto_ack = {}, [], True
    try:
        stream_id = client.conn.get_next_available_stream_id()
        fields = [(":method", "GET"), (":path", "/index.html"), (":scheme", "https"),
                  (":authority", "a.test")]  # fmt: skip
        client.conn.send_headers(stream_id, fields, end_stream=True)
        client.flush()
        client.responses[stream_id] = {"headers": None, "body": bytearray(), "ended": False}
        client.pump(lambda: client.responses[stream_id]["ended"])
        assert bytes(client.responses[stream_id]["body"]) == b"<p>secure</p>\n"
        # A Host of the block with the other certificate: 421 (RFC 9110 §15.5.20).
        stream_id = client.conn.get_next_available_stream_id()
        fields[3] = (":authority", "b.test")
        client.conn.send_headers(stream_id, fields, end_stream=True)
        client.flush()
        client.responses[stream_id] = {"headers": None, "body": bytearray(), "ended": False}
        client.pump(lambda: client.responses[stream_id]["ended"])
        assert client.responses[stream_id]["headers"][":status"] == "421"
    finally:
        sock.close()
    # A client that offers only HTTP/1.1 gets it.
    sock, chosen = tls_client(server.port, ca, "b.test", ["http/1.1"])
    with sock:
        assert chosen == "http/1.1"
        sock.sendall(b"GET /index.html HTTP/1.1\r\nHost: b.test\r\nConnection: close\r\n\r\n")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"<p>secure</p>\n")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is missing")
def test_curl_negotiates_h2_and_listen_flag(tls_server: tuple[Server, Path]) -> None:
    server, ca = tls_server
    result = subprocess.run(
        ["curl", "-s", "--http2", "--cacert", str(ca), "--resolve",
         f"a.test:{server.port}:127.0.0.1", "-w", "%{http_version}",
         f"https://a.test:{server.port}/index.html"],
        capture_output=True, timeout=30, check=True,
    )  # fmt: skip
    assert result.stdout == b"<p>secure</p>\n2"
    # listen ... http2 on a clear-text address: prior knowledge.
    plain = subprocess.run(
        ["curl", "-s", "--http2-prior-knowledge", "-w", "%{http_version}",
         server.url("/index.html", port=server.ports[1])],
        capture_output=True, timeout=30, check=True,
    )  # fmt: skip
    assert plain.stdout == b"<p>secure</p>\n2"


def test_http2_flag_errors_and_dash_big_t(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    conf = tmp_path / "h2.conf"
    conf.write_text("server {\n    port 8080 http2 http2\n}\n")
    result = run_cli(["-t", str(conf)])
    assert result.returncode != 0
    assert (
        f"{conf}:2:21:" in result.stderr
        and '"http2" applies to the port before it' in result.stderr
    )
    conf.write_text("server {\n    listen 8080 http2\n    http2_max_concurrent_streams 0\n}\n")
    result = run_cli(["-t", str(conf)])
    assert result.returncode != 0 and f"{conf}:3:34:" in result.stderr
    conf.write_text("server {\n    listen 127.0.0.1:8080 http2\n}\n")
    result = run_cli(["-T", str(conf)])
    assert result.returncode == 0, result.stderr
    assert "listen 127.0.0.1:8080 http2;" in result.stdout  # the flag stays on its port


def test_header_list_over_the_limit_is_431(server: Server) -> None:
    client = Client(server.port)
    try:
        big = client.get("/index.html", headers=[("x-big", "a" * 20000)])
        assert big["headers"][":status"] == "431"
        small = client.get("/index.html", headers=[("x-small", "a" * 1000)])
        assert small["headers"][":status"] == "200"  # the connection goes on
    finally:
        client.close()


def test_compressed_responses(server: Server, tmp_path: Path) -> None:
    import gzip

    gz = tmp_path / "www" / "gz"
    small = b"compress me, " * 100
    large = os.urandom(200 * 1024).hex().encode()  # 400 KiB of text: encoded as it goes
    (gz / "small.txt").write_bytes(small)
    (gz / "large.txt").write_bytes(large)
    client = Client(server.port)
    try:
        for name, body in (("small.txt", small), ("large.txt", large)):
            entry = client.get(f"/gz/{name}", headers=[("accept-encoding", "gzip")])
            assert entry["headers"][":status"] == "200"
            assert entry["headers"]["content-encoding"] == "gzip"
            assert gzip.decompress(bytes(entry["body"])) == body
        plain = client.get("/gz/small.txt")
        assert "content-encoding" not in plain["headers"] and bytes(plain["body"]) == small
    finally:
        client.close()
