"""HTTP/1.1 framing, persistence, limits and path safety, over raw sockets."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import pytest
import requests

from tests.conftest import Server, read_all, start_server

GET_CLOSE = b"GET /page.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """One response with a Content-Length body: (head, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed mid-head: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk
        rest += chunk
    assert len(rest) == length, "unexpected bytes after the response"
    return head, rest


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"garbage\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (b"GET / HTTP/1.2\r\nHost: x\r\n\r\n", 505),
        (b"GET / HTTX/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 101 + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 17000 + b"\r\n\r\n", 431),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (b"GET /a%00b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n", 400),
        # Heads that can never become a request are answered before they end,
        # not left hanging until the header timeout.
        (b"GET /\r\n", 400),  # HTTP/0.9
        (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", 400),  # TLS on the plain port
    ],
)
def test_bad_requests_get_their_status_and_close(
    site: Server, request_bytes: bytes, status: int
) -> None:
    response = site.raw(request_bytes)
    assert status_of(response) == status
    assert b"\r\nConnection: close\r\n" in response
    # The server goes on serving everyone else.
    assert status_of(site.raw(GET_CLOSE)) == 200


def test_keep_alive_serves_several_requests_on_one_connection(site: Server) -> None:
    with site.connect() as sock:
        for _ in range(3):
            sock.sendall(b"GET /page.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            head, body = read_response(sock)
            assert head.startswith(b"HTTP/1.1 200 ")
            assert body == b"plain text\n"


def test_http10_closes_unless_keep_alive(site: Server) -> None:
    response = site.raw(b"GET /page.txt HTTP/1.0\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 200 ")
    assert b"Connection: close" in response
    with site.connect() as sock:
        for _ in range(2):
            sock.sendall(b"GET /page.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            head, body = read_response(sock)
            assert b"Connection: keep-alive" in head
            assert body == b"plain text\n"


def test_connection_close_is_honoured(site: Server) -> None:
    with site.connect() as sock:
        sock.sendall(GET_CLOSE)
        data = read_all(sock)
    assert data.count(b"HTTP/1.1 200") == 1
    assert data.endswith(b"plain text\n")


def test_pipelined_requests_are_answered_in_order(site: Server) -> None:
    batch = (
        b"GET /page.txt HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /files/a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    data = site.raw(batch)
    statuses = [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]
    assert statuses == [200, 404, 200]
    assert data.endswith(b"file a\n")


def test_chunked_request_body_is_decoded_and_connection_reused(site: Server) -> None:
    batch = (
        b"GET /page.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: yes\r\n\r\n"
        b"GET /files/a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    data = site.raw(batch)
    assert data.count(b"HTTP/1.1 200 OK") == 2
    assert data.endswith(b"file a\n")


def test_bad_chunk_size_is_400(site: Server) -> None:
    data = site.raw(b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    assert status_of(data) == 400


def test_leading_empty_lines_and_bare_lf_are_accepted(site: Server) -> None:
    data = site.raw(b"\r\n\r\nGET /page.txt HTTP/1.1\nHost: x\nConnection: close\n\n")
    assert status_of(data) == 200


def test_body_over_limit_is_413_before_the_body_is_read(site: Server) -> None:
    with site.connect() as sock:
        sock.sendall(b"POST /small/ok.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
        data = read_all(sock)  # answered without sending a byte of the body
    assert status_of(data) == 413
    assert b"Connection: close" in data


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"DELETE /page.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", 405),
        (b"POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n", 405),
        (b"PUT /old-path HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 301),
        (b"OPTIONS /page.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n", 200),
        (b"GET /page.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n", 200),
        (b"HEAD /page.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 200),
        (b"GET /nope.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n", 404),
    ],
)
def test_an_answer_that_needs_no_body_does_not_wait_for_it(
    site: Server, head: bytes, status: int
) -> None:
    # The body never comes: the answer must not wait for it (as in NGINX),
    # and the connection closes since the unread body makes it unusable.
    with site.connect(timeout=5) as sock:
        sock.sendall(head)
        data = read_all(sock)
    assert data, "no answer before the body"
    assert status_of(data) == status
    assert b"Connection: close" in data


def test_an_unused_body_already_sent_is_read_and_the_connection_kept(site: Server) -> None:
    with site.connect() as sock:
        sock.sendall(b"DELETE /page.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        head, _ = read_response(sock)
        assert head.startswith(b"HTTP/1.1 405 ") and b"Connection: close" not in head
        sock.sendall(b"GET /page.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body = read_response(sock)
    assert head.startswith(b"HTTP/1.1 200 ") and body == b"plain text\n"


def test_chunked_body_over_limit_is_413(site: Server) -> None:
    data = site.raw(
        b"POST /small/ok.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"8\r\n12345678\r\n8\r\n12345678\r\n"
    )
    assert status_of(data) == 413


def test_body_within_limit_is_accepted_then_handled(site: Server) -> None:
    r = requests.get(site.url("/small/ok.txt"), data=b"0123456789")
    assert r.status_code == 200
    assert r.text == "ok\n"


def test_expect_100_continue(site: Server) -> None:
    with site.connect() as sock:
        sock.sendall(
            b"GET /small/ok.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = sock.recv(1024)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"abcd")
        head, body = read_response(sock)
        assert head.startswith(b"HTTP/1.1 200 ")
        assert body == b"ok\n"
    # A request that will be refused gets its final status without 100.
    with site.connect() as sock:
        sock.sendall(
            b"POST /small/ok.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 99\r\nExpect: 100-continue\r\n\r\n"
        )
        data = read_all(sock)
    assert status_of(data) == 413
    assert b"100 Continue" not in data


@pytest.mark.parametrize(
    "target",
    [
        b"/../outside/secret.txt",
        b"/../../../../etc/passwd",
        b"/%2e%2e/outside/secret.txt",
        b"/%2E%2E/%2e%2e/etc/passwd",
        b"/files/..%2f..%2foutside/secret.txt",
        b"/files/..%2f..%2f..%2foutside%2fsecret.txt",
        b"/files/escape/secret.txt",
        b"/link.txt",
        b"/files/./../../outside/secret.txt",
        b"//..//outside/secret.txt",
        b"/files/%2e%2e%2f%2e%2e%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
    ],
)
def test_nothing_outside_the_root_is_served(site: Server, target: bytes) -> None:
    data = site.raw(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(data) in (400, 403, 404)
    assert b"TOP SECRET" not in data
    assert b"root:" not in data


def test_dot_segments_inside_the_root_are_resolved(site: Server) -> None:
    data = site.raw(b"GET /files/sub/../a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(data) == 200
    assert data.endswith(b"file a\n")
    data = site.raw(b"GET /files/%73ub/inner.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert data.endswith(b"inner\n")


def test_absolute_form_target_selects_the_host(site: Server) -> None:
    data = site.raw(
        b"GET http://other.local/ HTTP/1.1\r\nHost: other.local\r\nConnection: close\r\n\r\n"
    )
    assert status_of(data) == 200
    assert b"other site" in data


def test_raw_utf8_in_the_target_finds_the_file(site: Server) -> None:
    # curl sends /files/ünï.txt as raw UTF-8 bytes; NGINX serves the file, so do we.
    raw = "/files/ünï.txt".encode()
    data = site.raw(b"GET " + raw + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(data) == 200
    assert data.endswith(b"\r\n\r\nunicode\n")
    # Raw bytes and their percent-encoding name the same file; ".." stays refused.
    assert (
        status_of(
            site.raw(
                b"GET /files/%C3%BCn%C3%AF.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
        )
        == 200
    )
    assert status_of(site.raw(b"GET /\xc3\xa9/../../x HTTP/1.1\r\nHost: x\r\n\r\n")) == 400


# -- strict chunked framing (RFC 9112 §7.1) ------------------------------------

CHUNKED_GET = b"GET /page.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
# Documented limits (README, "Limits").
CHUNK_LINE_LIMIT = 4 * 1024  # chunk-size line with extensions → 400
TRAILER_LIMIT = 16 * 1024  # trailer section → 431
TRAILER_FIELDS = 100  # trailer field lines → 431


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"2\nab\r\n0\r\n\r\n", 400),  # bare LF after the chunk size
        (b"2;x=y\nab\r\n0\r\n\r\n", 400),
        (b"2\r\nab\n0\r\n\r\n", 400),  # bare LF after the chunk data
        (b"2\r\nab\r\n0\n\n", 400),  # bare LFs after the last chunk
        (b"2\r\nab\r\n0\r\nT: v\n\r\n", 400),  # a trailer line in a bare LF
        (b"2;\r\nab\r\n0\r\n\r\n", 400),  # ";" without a chunk-ext-name
        (b"2 \r\nab\r\n0\r\n\r\n", 400),  # whitespace without an extension
        (b'2;a="b\r\nab\r\n0\r\n\r\n', 400),  # an open quoted-string
        (b"00000000000000002\r\nab\r\n0\r\n\r\n", 400),  # 17 hex digits
        (b"0x2\r\nab\r\n0\r\n\r\n", 400),
        (b"2;a=" + b"b" * (CHUNK_LINE_LIMIT + 100) + b"\r\nab\r\n0\r\n\r\n", 400),
        (b"0\r\n" + b"T: v\r\n" * (TRAILER_FIELDS + 1) + b"\r\n", 431),
        (b"0\r\nT: " + b"v" * (TRAILER_LIMIT + 100) + b"\r\n\r\n", 431),
        (b"0\r\nT: a\r\n folded\r\n\r\n", 400),  # obs-fold in the trailer
    ],
)
def test_bad_chunked_framing_is_answered_once_and_closes(
    site: Server, body: bytes, status: int
) -> None:
    # The pipelined request after the bad framing must never be answered:
    # reading it from bytes whose framing a front-end may see otherwise is
    # how requests are smuggled.
    data = site.raw(CHUNKED_GET + body + GET_CLOSE)
    assert status_of(data) == status
    assert data.count(b"HTTP/1.1 ") == 1
    assert b"\r\nConnection: close\r\n" in data


def chunk_line_of(size: int) -> bytes:
    """A chunk-size line of ``size`` bytes without its CRLF (size 2, extensions)."""
    prefix = b'2 ; q="x \\" y";a='
    return prefix + b"b" * (size - len(prefix))


def trailer_of(size: int) -> bytes:
    """One trailer field line of ``size`` bytes with its CRLF."""
    return b"T: " + b"v" * (size - 5) + b"\r\n"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (chunk_line_of(CHUNK_LINE_LIMIT) + b"\r\nab\r\n0\r\n\r\n", 200),
        (chunk_line_of(CHUNK_LINE_LIMIT + 1) + b"\r\nab\r\n0\r\n\r\n", 400),
        (b"2\r\nab\r\n0\r\n" + trailer_of(TRAILER_LIMIT) + b"\r\n", 200),
        (b"2\r\nab\r\n0\r\n" + trailer_of(TRAILER_LIMIT + 1) + b"\r\n", 431),
        (b"2\r\nab\r\n0\r\n" + b"T: v\r\n" * TRAILER_FIELDS + b"\r\n", 200),
        (b"2\r\nab\r\n0\r\n" + b"T: v\r\n" * (TRAILER_FIELDS + 1) + b"\r\n", 431),
    ],
)
def test_chunked_limits_at_their_documented_boundaries(
    site: Server, body: bytes, status: int
) -> None:
    assert len(chunk_line_of(CHUNK_LINE_LIMIT)) == CHUNK_LINE_LIMIT
    assert len(trailer_of(TRAILER_LIMIT)) == TRAILER_LIMIT
    data = site.raw(CHUNKED_GET + body + GET_CLOSE)
    statuses = [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]
    # Within the limits the connection goes on to the pipelined request;
    # past them the error is the only answer.
    assert statuses == ([200, 200] if status == 200 else [status])


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"2;a=" + b"b" * (CHUNK_LINE_LIMIT + 100), 400),
        (b"2\r\nab\r\n0\r\nT: " + b"v" * (TRAILER_LIMIT + 100), 431),
    ],
)
def test_an_endless_chunk_line_or_trailer_is_refused_before_it_ends(
    site: Server, body: bytes, status: int
) -> None:
    # No line end ever comes: the limit answers at once, not the body timeout
    # (60 s on this site; the socket gives up after 5).
    with site.connect(timeout=5) as sock:
        sock.sendall(CHUNKED_GET + body)
        data = read_all(sock)
    assert data, "no answer before the timeout"
    assert status_of(data) == status
    assert b"\r\nConnection: close\r\n" in data


# -- absolute-form with an empty path (RFC 9112 §3.2.2) ------------------------


def test_absolute_form_with_an_empty_path_is_the_root(site: Server) -> None:
    for target, host in [
        (b"http://x?y=1", b"x"),
        (b"http://127.0.0.1:%d" % site.port, b"127.0.0.1:%d" % site.port),
    ]:
        data = site.raw(
            b"GET " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n"
        )
        assert status_of(data) == 200, target
        assert data.endswith(b"<h1>home</h1>\n")


# -- reason phrases (RFC 9110 §15) ---------------------------------------------


def test_status_lines_use_the_rfc9110_reason_phrases(site: Server) -> None:
    data = site.raw(b"POST /small/ok.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 413 Content Too Large\r\n")
    data = site.raw(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 414 URI Too Long\r\n")
    data = site.raw(
        b"GET /page.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=5000-\r\nConnection: close\r\n\r\n"
    )
    assert data.startswith(b"HTTP/1.1 416 Range Not Satisfiable\r\n")


# -- which answers keep the connection -----------------------------------------

HANDLERS_CONFIG = """
session_store ./broken.db
server {
    host 127.0.0.1
    port {port0}
    root ./www
    location / {
        methods GET
    }
    location /up {
        root ./up
        methods GET POST DELETE
    }
    location /run {
        root ./up/scripts
        cgi .py python3
    }
    location /session {
        session on
    }
}
"""
BOUNDARY = b"b0undary"


def multipart(disposition: bytes, content: bytes = b"data") -> bytes:
    return (
        b"--"
        + BOUNDARY
        + b"\r\nContent-Disposition: form-data; "
        + disposition
        + b"\r\n\r\n"
        + content
        + b"\r\n--"
        + BOUNDARY
        + b"--\r\n"
    )


def post(
    target: bytes, body: bytes, content_type: bytes = b"text/plain", method: bytes = b"POST"
) -> bytes:
    return (
        method
        + b" "
        + target
        + b" HTTP/1.1\r\nHost: x\r\nContent-Type: "
        + content_type
        + b"\r\nContent-Length: %d\r\n\r\n" % len(body)
        + body
    )


FORM = b"multipart/form-data; boundary=" + BOUNDARY


@pytest.fixture(scope="module")
def handlers_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("handlers")
    (root / "www").mkdir()
    (root / "www" / "page.txt").write_text("plain text\n")
    (root / "up" / "scripts").mkdir(parents=True)
    (root / "up" / "present.txt").write_text("here\n")
    # Not a database: opening the session store fails, so /session is a 500.
    (root / "broken.db").write_bytes(b"this is not an SQLite database\n" * 100)
    server = start_server(HANDLERS_CONFIG, root)
    yield server
    server.stop()


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        # Decided before the body (check, or the upload's target), body read in full.
        (post(b"/page.txt", b"hello"), 405),
        (post(b"/up/nowhere/x.txt", b"hello"), 404),
        (post(b"/up/", b"hello"), 400),  # no file name for a non-multipart upload
        (post(b"/up/scripts/evil.py", b"print(1)"), 403),  # a file a cgi location would run
        # Decided inside the body: an unusable file name.
        (post(b"/up/", multipart(b'name="f"; filename=". ."'), FORM), 400),
        # Decided at the end of the body.
        (post(b"/up/", multipart(b'name="note"'), FORM), 400),  # no file in the upload
        (post(b"/up/missing.txt", b"hello", method=b"DELETE"), 404),
        (post(b"/up/scripts", b"hello", method=b"DELETE"), 403),
    ],
)
def test_a_handler_4xx_after_the_whole_body_keeps_the_connection(
    handlers_site: Server, request_bytes: bytes, status: int
) -> None:
    with handlers_site.connect() as sock:
        sock.sendall(request_bytes)
        head, _ = read_response(sock)
        assert status_of(head) == status
        assert b"Connection: close" not in head
        sock.sendall(b"GET /page.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body = read_response(sock)
    assert head.startswith(b"HTTP/1.1 200 ") and body == b"plain text\n"


def test_an_internal_error_closes_the_connection(handlers_site: Server) -> None:
    # As NGINX: after a 500 nothing more is read from the connection.
    with handlers_site.connect(timeout=5) as sock:
        sock.sendall(b"GET /session HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _ = read_response(sock)
        assert status_of(head) == 500
        assert b"\r\nConnection: close" in head
        sock.sendall(b"GET /page.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_all(sock) == b""
