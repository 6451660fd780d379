"""HTTP/2 request fields and response frames end to end: the RFC 9113 §8.2
and §8.3 checks (a malformed request is a stream error, the connection goes
on), split cookies, requests whose HPACK blocks are served from the decoded
cache while the table moves, response heads and bodies under the peer's
windows, frame size and table size, stream bookkeeping over many streams,
and $bytes_sent. Clients: the ``h2`` library over a socket."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import hyperframe.frame
import pytest

from tests.conftest import Server
from tests.proc import wait_for

CONFIG = """
log_format sizes '$request_uri $status $bytes_sent $body_bytes_sent'
log_format conn '$request_uri $connection $connection_requests'
server {
    host 127.0.0.1
    port {port0}
    root ./www
    http2 on
    http2_max_concurrent_streams 8
    access_log ./sizes.log sizes
    access_log ./conn.log conn
    location / { }
    location /app {
        wsgi echo:app
        wsgi_path .
        wsgi_threads 0
    }
}
"""

ECHO = """
def app(environ, start_response):
    if environ["PATH_INFO"] == "/big-head":
        start_response("200 OK", [("X-Big", "b" * 40000), ("Content-Type", "text/plain")])
        return [b"big head"]
    if environ["PATH_INFO"] == "/host":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ.get("HTTP_HOST", "-").encode()]
    names = ("PATH_INFO", "HTTP_COOKIE", "HTTP_X_N", "HTTP_X_EXTRA")
    body = "|".join(environ.get(name, "-") for name in names)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
"""

KIB = bytes(range(256)) * 4


@pytest.fixture
def server(server_factory: Any, tmp_path: Path) -> Server:
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "1k.bin").write_bytes(KIB)
    (tmp_path / "www" / "index.html").write_text("<p>home</p>\n")
    (tmp_path / "echo.py").write_text(ECHO)
    started: Server = server_factory(CONFIG)
    return started


class Client:
    """An HTTP/2 client (``h2``) that may send what h2's checks would refuse."""

    def __init__(
        self, port: int, settings: dict[h2.settings.SettingCodes, int] | None = None
    ) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        config = h2.config.H2Configuration(
            client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False
        )
        self.conn = h2.connection.H2Connection(config)
        if settings:
            self.conn.local_settings = h2.settings.Settings(client=True, initial_values=settings)
        self.conn.initiate_connection()
        self.flush()
        self.responses: dict[int, dict[str, Any]] = {}
        self.events: list[Any] = []

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, fields: list[tuple[bytes, bytes]]) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream_id, fields, end_stream=True)
        self.flush()
        self.responses[stream_id] = {"headers": None, "body": bytearray(), "ended": False}
        return stream_id

    def get(self, path: str, extra: list[tuple[bytes, bytes]] | None = None) -> int:
        base = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", path.encode()),
                (b":authority", b"t")]  # fmt: skip
        return self.request(base + (extra or []))

    def done(self, stream_id: int) -> bool:
        entry = self.responses[stream_id]
        return bool(entry["ended"]) or "reset" in entry

    def pump(self, until: Any, limit: float = 10.0) -> None:
        deadline = time.monotonic() + limit
        while not until():
            if time.monotonic() > deadline:
                raise TimeoutError("no answer in time")
            self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed the connection")
            for event in self.conn.receive_data(data):
                self.events.append(event)
                entry = self.responses.get(getattr(event, "stream_id", 0))
                if entry is None:
                    continue
                if isinstance(event, h2.events.ResponseReceived):
                    entry["headers"] = {k.decode(): v.decode() for k, v in event.headers}
                elif isinstance(event, h2.events.DataReceived):
                    entry["body"] += event.data
                    self.conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                elif isinstance(event, h2.events.StreamEnded):
                    entry["ended"] = True
                elif isinstance(event, h2.events.StreamReset):
                    entry["reset"] = event.error_code
            self.flush()

    def close(self) -> None:
        self.sock.close()


BASE = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/index.html"),
        (b":authority", b"t")]  # fmt: skip


@pytest.mark.parametrize(
    "fields",
    [
        [*BASE, (b"x-upper", b"ok"), (b"X-Upper", b"1")],  # RFC 9113 §8.2.1
        [*BASE, (b"x", b" leading space")],
        [*BASE, (b"keep-alive", b"5")],  # §8.2.2
        [*BASE, (b"te", b"gzip")],
        [(b"accept", b"*/*"), *BASE],  # §8.3: pseudo-header fields first
        [*BASE, (b":status", b"200")],
        [*BASE, (b":method", b"POST")],
        [BASE[0], BASE[1], BASE[3]],  # no :path
        [BASE[0], BASE[1], (b":path", b""), BASE[3]],
        [*BASE, (b"host", b"elsewhere")],
        [BASE[0], BASE[1], (b":path", b"http://t/index.html"), BASE[3]],  # §8.3.1
        [BASE[0], BASE[1], (b":path", b"*"), BASE[3]],  # * is for OPTIONS only
    ],
)
def test_a_malformed_request_is_a_stream_error(
    server: Server, fields: list[tuple[bytes, bytes]]
) -> None:
    client = Client(server.port)
    try:
        bad = client.request(fields)
        good = client.get("/index.html")
        client.pump(lambda: client.done(bad) and client.done(good))
        # RFC 9113 §8.1.1: a stream error of type PROTOCOL_ERROR; the
        # connection serves the next request.
        assert client.responses[bad]["reset"] == h2.errors.ErrorCodes.PROTOCOL_ERROR
        assert client.responses[bad]["headers"] is None
        assert bytes(client.responses[good]["body"]) == b"<p>home</p>\n"
    finally:
        client.close()


def test_malformed_requests_count_as_resets(server: Server) -> None:
    """A client that makes the server reset streams (malformed requests, the
    MadeYouReset pattern) is stopped as a rapid-reset client would be."""
    client = Client(server.port)

    def stopped() -> bool:
        return any(isinstance(e, h2.events.ConnectionTerminated) for e in client.events)

    try:
        client.pump(lambda: client.conn.remote_settings.max_concurrent_streams == 8)
        # Waves of 8 (the concurrency limit), each sent as soon as the last is reset.
        for _ in range(50):
            ids = [client.request([*BASE, (b"te", b"gzip")]) for _ in range(8)]
            client.pump(lambda ids=ids: stopped() or all(client.done(i) for i in ids))
            if stopped():
                break
        goaway = next(e for e in client.events if isinstance(e, h2.events.ConnectionTerminated))
        assert goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    except ConnectionError:
        pytest.fail("closed without GOAWAY ENHANCE_YOUR_CALM")
    finally:
        client.close()


def test_options_star_asks_about_the_server(server: Server) -> None:
    client = Client(server.port)
    try:
        star = client.request([(b":method", b"OPTIONS"), (b":scheme", b"http"),
                               (b":path", b"*"), (b":authority", b"t")])  # fmt: skip
        client.pump(lambda: client.done(star))
        # RFC 9113 §8.3.1 and RFC 9110 §9.3.7, as over HTTP/1.1.
        headers = client.responses[star]["headers"]
        assert headers[":status"] == "200"
        assert {m.strip() for m in headers["allow"].split(",")} >= {"GET", "HEAD", "OPTIONS"}
    finally:
        client.close()


def test_the_authority_is_the_host_field_of_applications(server: Server) -> None:
    client = Client(server.port)
    try:
        # Browsers send :authority and no Host (RFC 9113 §8.3.1).
        stream_id = client.request([(b":method", b"GET"), (b":scheme", b"http"),
                                    (b":path", b"/app/host"), (b":authority", b"example.test:8443")])  # fmt: skip
        client.pump(lambda: client.done(stream_id))
        assert bytes(client.responses[stream_id]["body"]) == b"example.test:8443"
    finally:
        client.close()


def test_split_cookies_are_joined(server: Server) -> None:
    client = Client(server.port)
    try:
        stream_id = client.get("/app/x", [(b"cookie", b"a=1"), (b"x-n", b"7"),
                                          (b"cookie", b"b=2")])  # fmt: skip
        client.pump(lambda: client.done(stream_id))
        # RFC 9113 §8.2.3: one Cookie again, the parts joined with "; ".
        assert bytes(client.responses[stream_id]["body"]) == b"/x|a=1; b=2|7|-"
    finally:
        client.close()


def test_each_request_is_read_as_sent_while_the_hpack_table_moves(server: Server) -> None:
    """Repeated requests are blocks of references to the client's HPACK table
    (decoded once, then from the cache); requests with new fields insert and
    evict entries, after which the same references mean other fields."""
    client = Client(server.port)
    try:
        expected = {}
        for index in range(120):
            if index % 3 == 2:
                extra = [(b"x-n", b"%d" % index), (b"x-extra", b"e" * (index * 20 % 900))]
            else:
                extra = [(b"x-n", b"%d" % (index % 2))]
            stream_id = client.get(f"/app/{index % 2}", extra)
            values = dict(extra)
            expected[stream_id] = (
                f"/{index % 2}|-|{values[b'x-n'].decode()}|"
                f"{values.get(b'x-extra', b'-').decode() or '-'}"
            ).encode()
            client.pump(lambda stream_id=stream_id: client.done(stream_id))
        for stream_id, body in expected.items():
            assert bytes(client.responses[stream_id]["body"]) == body
    finally:
        client.close()


def test_responses_keep_to_small_windows_and_no_table(server: Server) -> None:
    """A client with a 100-byte stream window and no HPACK table (both in its
    SETTINGS): h2 on the client side fails the connection on any DATA past a
    window or a header block without the table size update."""
    settings = {
        h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 100,
        h2.settings.SettingCodes.HEADER_TABLE_SIZE: 0,
    }
    client = Client(server.port, settings)
    try:
        ids = [client.get("/1k.bin") for _ in range(4)]
        client.pump(lambda: all(client.done(i) for i in ids))
        for stream_id in ids:
            assert client.responses[stream_id]["headers"][":status"] == "200"
            assert bytes(client.responses[stream_id]["body"]) == KIB
        frames = [e for e in client.events if isinstance(e, h2.events.DataReceived)]
        assert max(len(e.data) for e in frames) <= 100
    finally:
        client.close()


def test_a_head_larger_than_a_frame_goes_on_in_continuation_frames(server: Server) -> None:
    client = Client(server.port)
    try:
        stream_id = client.get("/app/big-head")
        client.pump(lambda: client.done(stream_id))
        entry = client.responses[stream_id]
        # 40,000 bytes of field value: over the 16,384-byte frame (RFC 9113 §6.10).
        assert entry["headers"]["x-big"] == "b" * 40000
        assert bytes(entry["body"]) == b"big head"
    finally:
        client.close()


def test_many_more_streams_than_the_concurrency_limit(server: Server) -> None:
    """Streams that ended leave room for new ones: 400 requests, 8 at a time
    (http2_max_concurrent_streams 8), none refused."""
    client = Client(server.port)
    try:
        client.pump(lambda: client.conn.remote_settings.max_concurrent_streams == 8)
        for _ in range(50):
            ids = [client.get("/1k.bin") for _ in range(8)]
            client.pump(lambda ids=ids: all(client.done(i) for i in ids))
            for stream_id in ids:
                assert "reset" not in client.responses[stream_id]
                assert bytes(client.responses[stream_id]["body"]) == KIB
    finally:
        client.close()


def test_bytes_sent_counts_the_head_frames(server: Server, tmp_path: Path) -> None:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.send_headers(1, [(":method", "GET"), (":path", "/1k.bin"), (":scheme", "http"),
                          (":authority", "t")], end_stream=True)  # fmt: skip
    sock.sendall(conn.data_to_send())
    received = b""
    head_bytes = body_bytes = 0
    ended = False
    with sock:
        while not ended:
            data = sock.recv(65536)
            assert data, "closed before the response ended"
            received += data
            while len(received) >= 9:
                frame, length = hyperframe.frame.Frame.parse_frame_header(memoryview(received[:9]))
                if len(received) < 9 + length:
                    break
                if frame.stream_id == 1:
                    if isinstance(frame, hyperframe.frame.HeadersFrame):
                        head_bytes += 9 + length
                    elif isinstance(frame, hyperframe.frame.DataFrame):
                        body_bytes += length
                    frame.parse_body(memoryview(received[9 : 9 + length]))
                    ended = ended or "END_STREAM" in frame.flags
                received = received[9 + length :]
    assert body_bytes == 1024 and head_bytes > 9
    log = tmp_path / "sizes.log"
    assert wait_for(lambda: log.exists() and "/1k.bin" in log.read_text(), 5)
    line = log.read_text().splitlines()[-1]
    # $bytes_sent: the HEADERS frame as sent and the body (as NGINX counts).
    assert line == f"/1k.bin 200 {head_bytes + 1024} 1024"


def test_connection_variables_name_the_connection_and_count_its_requests(
    server: Server, tmp_path: Path
) -> None:
    first, second = Client(server.port), Client(server.port)
    try:
        for client, paths in ((first, ["/a1", "/a2", "/a3"]), (second, ["/b1"])):
            for path in paths:
                stream_id = client.get(path)
                client.pump(lambda stream_id=stream_id, c=client: c.done(stream_id))
    finally:
        first.close()
        second.close()
    log = tmp_path / "conn.log"
    assert wait_for(lambda: log.exists() and "/b1" in log.read_text(), 5)
    rows = {
        uri: (int(n), int(r)) for uri, n, r in (x.split() for x in log.read_text().splitlines())
    }
    # $connection: one serial number per connection; $connection_requests: 1, 2, 3.
    assert rows["/a1"][0] == rows["/a2"][0] == rows["/a3"][0] > 0
    assert rows["/b1"][0] not in (0, rows["/a1"][0])
    assert [rows[p][1] for p in ("/a1", "/a2", "/a3", "/b1")] == [1, 2, 3, 1]
