"""The sans-IO client side: the response parser (every case whole, byte by byte,
and followed by a second pipelined response) and the request writer."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from localhost.http.client import (
    END,
    LAST_CHUNK,
    NEED_DATA,
    Data,
    ResponseHead,
    ResponseParser,
    chunk,
    request_head,
)
from localhost.http.errors import HTTPError
from localhost.http.message import Request
from localhost.http.parser import RequestParser

NEXT = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext"
NEXT_EVENTS: list[object] = [("head", 200, "OK", "HTTP/1.1", True), b"next", END]
# Documented limits (README, "Limits"), the same for response heads: the
# first line 8 KiB, the header section 16 KiB and 100 field lines.
LINE_LIMIT = 8 * 1024
SECTION_LIMIT = 16 * 1024
FIELDS_LIMIT = 100
# What the response parser raises for anything malformed (documented in its module).
BAD_GATEWAY = 502


def drain(parser: ResponseParser, out: list[object]) -> None:
    while (event := parser.next_event()) is not NEED_DATA:
        out.append(event)


def parse(
    pieces: Iterable[bytes],
    methods: list[str],
    eof: bool = False,
    memo: dict[bytes, ResponseHead] | None = None,
) -> list[object]:
    """Summarised events: heads as tuples, the Data between two events merged."""
    parser = ResponseParser(methods[0], memo=memo)
    for method in methods[1:]:
        parser.expect_response(method)
    events: list[object] = []
    for piece in pieces:
        parser.feed(piece)
        drain(parser, events)
    if eof:
        parser.feed_eof()
        while not (parser.in_head and parser.buffered == 0 and parser.outstanding == 0):
            late = parser.next_event()
            assert late is not NEED_DATA  # never after feed_eof
            events.append(late)
    out: list[object] = []
    for event in events:
        if isinstance(event, ResponseHead):
            out.append(("head", event.status, event.reason, event.version, event.keep_alive))
        elif isinstance(event, Data):
            if out and isinstance(out[-1], bytes):
                out[-1] += event.data
            else:
                out.append(event.data)
        else:
            out.append(event)
    return out


def splits(raw: bytes) -> list[list[bytes]]:
    return [[raw], [raw[i : i + 1] for i in range(len(raw))]]


VALID: list[tuple[str, bytes, str, list[object]]] = [
    (
        "length",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
        "GET",
        [("head", 200, "OK", "HTTP/1.1", True), b"hello", END],
    ),
    (
        "empty length",
        b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
        "POST",
        [("head", 201, "Created", "HTTP/1.1", True), END],
    ),
    (
        "same length twice",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2, 2\r\n\r\nhi",
        "GET",
        [("head", 200, "OK", "HTTP/1.1", True), b"hi", END],
    ),
    (
        "100 then 200",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        "PUT",
        [
            ("head", 100, "Continue", "HTTP/1.1", True),
            ("head", 200, "OK", "HTTP/1.1", True),
            b"ok",
            END,
        ],
    ),
    (
        "103 and 100 then 200",
        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
        "POST",
        [
            ("head", 103, "Early Hints", "HTTP/1.1", True),
            ("head", 100, "Continue", "HTTP/1.1", True),
            ("head", 200, "OK", "HTTP/1.1", True),
            b"x",
            END,
        ],
    ),
    (
        "HEAD with a length",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
        "HEAD",
        [("head", 200, "OK", "HTTP/1.1", True), END],
    ),
    (
        "HEAD with chunked",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HEAD",
        [("head", 200, "OK", "HTTP/1.1", True), END],
    ),
    (
        "204 with a length",
        b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n",
        "DELETE",
        [("head", 204, "No Content", "HTTP/1.1", True), END],
    ),
    (
        "304 with a length",
        b'HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\nETag: "x"\r\n\r\n',
        "GET",
        [("head", 304, "Not Modified", "HTTP/1.1", True), END],
    ),
    (
        "chunked with extensions and trailers",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5;a=b\r\nhello\r\n6 ; q="x y"\r\n world\r\n0\r\nDigest: abc\r\nX-T: 1\r\n\r\n',
        "GET",
        [("head", 200, "OK", "HTTP/1.1", True), b"hello world", END],
    ),
    (
        "chunked, coding name in any case",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n",
        "GET",
        [("head", 200, "OK", "HTTP/1.1", True), b"ab", END],
    ),
    (
        "connection close",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nab",
        "GET",
        [("head", 200, "OK", "HTTP/1.1", False), b"ab", END],
    ),
    (
        "HTTP/1.0 keep-alive",
        b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nab",
        "GET",
        [("head", 200, "OK", "HTTP/1.0", True), b"ab", END],
    ),
    (
        "HTTP/1.0 without keep-alive",
        b"HTTP/1.0 404 Not Found\r\nContent-Length: 2\r\n\r\nno",
        "GET",
        [("head", 404, "Not Found", "HTTP/1.0", False), b"no", END],
    ),
    (
        "no reason phrase, no space",
        b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
        "GET",
        [("head", 200, "", "HTTP/1.1", True), END],
    ),
    (
        "empty reason phrase",
        b"HTTP/1.1 500 \r\nContent-Length: 0\r\n\r\n",
        "GET",
        [("head", 500, "", "HTTP/1.1", True), END],
    ),
    (
        "reason with spaces and obs-text",
        b"HTTP/1.1 200 Tout va tr\xe8s bien\r\nContent-Length: 0\r\n\r\n",
        "GET",
        [("head", 200, "Tout va tr\xe8s bien", "HTTP/1.1", True), END],
    ),
    (
        "bare LF line ends",
        b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
        "GET",
        [("head", 200, "OK", "HTTP/1.1", True), b"ok", END],
    ),
]


@pytest.mark.parametrize(
    ("raw", "method", "expected"), [c[1:] for c in VALID], ids=[c[0] for c in VALID]
)
def test_valid_responses_whole_and_byte_by_byte(
    raw: bytes, method: str, expected: list[object]
) -> None:
    for pieces in splits(raw):
        assert parse(pieces, [method]) == expected


@pytest.mark.parametrize(
    ("raw", "method", "expected"), [c[1:] for c in VALID], ids=[c[0] for c in VALID]
)
def test_valid_responses_followed_by_a_pipelined_response(
    raw: bytes, method: str, expected: list[object]
) -> None:
    for pieces in splits(raw + NEXT):
        assert parse(pieces, [method, "GET"]) == expected + NEXT_EVENTS


def test_a_memo_changes_no_event() -> None:
    # Every valid case twice through one memo: the second time from the memo,
    # after heads for other methods had been remembered too.
    memo: dict[bytes, ResponseHead] = {}
    for _ in range(2):
        for _name, raw, method, expected in VALID:
            assert parse([raw + NEXT], [method, "GET"], memo=memo) == expected + NEXT_EVENTS
    assert memo


def test_a_remembered_head_is_framed_for_each_method() -> None:
    # The same head is a close-delimited body for GET (the connection then
    # cannot be kept) and no body at all for HEAD (it can).
    memo: dict[bytes, ResponseHead] = {}
    raw = b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n"
    for method, keep_alive in [("HEAD", True), ("GET", False), ("HEAD", True)]:
        parser = ResponseParser(method, memo=memo)
        parser.feed(raw)
        head = parser.next_event()
        assert isinstance(head, ResponseHead) and head.keep_alive is keep_alive, method
    heads = []
    for _ in range(2):
        parser = ResponseParser("GET", memo=memo)
        parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-A: 1\r\n\r\n")
        head = parser.next_event()
        assert isinstance(head, ResponseHead)
        heads.append(head)
    assert heads[0] is not heads[1] and heads[0].headers is heads[1].headers


def test_a_memo_stays_bounded_and_skips_long_heads() -> None:
    memo: dict[bytes, ResponseHead] = {}
    parser = ResponseParser(memo=memo)
    for number in range(2000):
        parser.expect_response("GET")
        parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-N: %d\r\n\r\n" % number)
        assert isinstance(parser.next_event(), ResponseHead)
        assert parser.next_event() is END
    assert 0 < len(memo) < 2000
    memo.clear()
    parser.expect_response("GET")
    parser.feed(b"HTTP/1.1 204 No Content\r\nX-Long: " + b"v" * 8000 + b"\r\n\r\n")
    assert isinstance(parser.next_event(), ResponseHead)
    assert not memo  # a head of 8 KB is not remembered (README: heads up to 2 KiB)


def test_invalid_heads_are_never_remembered() -> None:
    memo: dict[bytes, ResponseHead] = {}
    for _ in range(2):
        parser = ResponseParser("GET", memo=memo)
        parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
        with pytest.raises(HTTPError) as caught:
            parser.next_event()
        assert caught.value.status == BAD_GATEWAY
    assert not memo


def test_whole_body_takes_a_body_that_has_all_arrived() -> None:
    parser = ResponseParser("GET")
    parser.expect_response("GET")
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" + NEXT)
    assert isinstance(parser.next_event(), ResponseHead)
    assert parser.whole_body() == b"hello"
    events: list[object] = []
    drain(parser, events)  # no Data nor END for the first one: the next response follows
    assert isinstance(events[0], ResponseHead) and events[1:] == [Data(b"next"), END]
    assert parser.in_head and parser.buffered == 0 and parser.outstanding == 0


def test_whole_body_changes_nothing_until_the_body_is_all_there() -> None:
    parser = ResponseParser("GET")
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")
    assert isinstance(parser.next_event(), ResponseHead)
    assert parser.whole_body() is None
    assert parser.next_event() == Data(b"hello")
    parser.feed(b"world")
    assert parser.whole_body() == b"world"  # the rest
    assert parser.next_event() is NEED_DATA and parser.in_head


@pytest.mark.parametrize(
    ("method", "raw", "expected"),
    [
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", b""),
        ("GET", b"HTTP/1.1 204 No Content\r\n\r\n", b""),
        ("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", b""),
        ("GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", None),
        ("GET", b"HTTP/1.0 200 OK\r\n\r\nto the end", None),
        ("GET", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", None),
    ],
)
def test_whole_body_by_framing(method: str, raw: bytes, expected: bytes | None) -> None:
    parser = ResponseParser(method)
    parser.feed(raw)
    assert isinstance(parser.next_event(), ResponseHead)
    assert parser.whole_body() == expected
    if expected is not None:
        assert parser.in_head and parser.next_event() is NEED_DATA


def test_head_fields_and_framing_values() -> None:
    parser = ResponseParser("GET")
    parser.feed(b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nX:  v \r\n")
    parser.feed(b"Content-Length: 3\r\n\r\nabc")
    head = parser.next_event()
    assert isinstance(head, ResponseHead)
    assert head.headers.get_all("set-cookie") == ["a=1", "b=2"]
    assert head.headers.get("x") == "v"
    assert (head.content_length, head.chunked, head.interim) == (3, False, False)


def test_a_head_response_reports_the_length_it_does_not_read() -> None:
    parser = ResponseParser("HEAD")
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n")
    head = parser.next_event()
    assert isinstance(head, ResponseHead) and head.content_length == 99
    assert parser.next_event() is END
    assert parser.next_event() is NEED_DATA


@pytest.mark.parametrize(
    ("raw", "body"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end", b"until the end"),
        (b"HTTP/1.0 200 OK\r\n\r\nold style", b"old style"),
        # A keep-alive wish cannot hold without a length: the close ends the body.
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\nx\r\n\r\n", b"x\r\n\r\n"),
        (b"HTTP/1.1 200 OK\r\n\r\n", b""),
        # What looks like a second response is body: only the close delimits it.
        (b"HTTP/1.1 200 OK\r\n\r\na" + NEXT, b"a" + NEXT),
    ],
)
def test_a_body_without_framing_ends_at_feed_eof(raw: bytes, body: bytes) -> None:
    for pieces in splits(raw):
        events = parse(pieces, ["GET"], eof=True)
        head = events[0]
        assert isinstance(head, tuple) and head[-1] is False  # not keep-alive
        assert events[1:] == ([body, END] if body else [END])


def test_without_feed_eof_a_close_delimited_body_needs_data() -> None:
    parser = ResponseParser("GET")
    parser.feed(b"HTTP/1.1 200 OK\r\n\r\nabc")
    assert isinstance(parser.next_event(), ResponseHead)
    assert parser.next_event() == Data(b"abc")
    assert parser.next_event() is NEED_DATA
    parser.feed_eof()
    assert parser.next_event() is END


def test_101_switches_protocols_and_hands_over_the_rest() -> None:
    for pieces in splits(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x00"):
        parser = ResponseParser("GET")
        events: list[object] = []
        for piece in pieces:
            parser.feed(piece)
            drain(parser, events)
        head = events[0]
        assert isinstance(head, ResponseHead) and head.status == 101 and not head.keep_alive
        assert events[1:] == [END]
        assert parser.switched
        assert parser.take_buffered() == b"\x81\x00"
        assert parser.next_event() is NEED_DATA


def invalid_cases() -> list[bytes]:
    ok = b"HTTP/1.1 200 OK\r\n"
    chunked = ok + b"Transfer-Encoding: chunked\r\n\r\n"
    return [
        # Status lines (RFC 9112 §4).
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"HTTP/1.1 20x OK\r\n\r\n",
        b"HTTP/1.1 099 Low\r\n\r\n",
        b"HTTP/1.1 600 High\r\n\r\n",
        b"HTTP/1.1  200 OK\r\n\r\n",
        b"HTTP/1.1 200OK\r\n\r\n",
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.2 200 OK\r\n\r\n",
        b"http/1.1 200 OK\r\n\r\n",
        b"ICY 200 OK\r\n\r\n",
        b"\r\nHTTP/1.1 200 OK\r\n\r\n",
        # Field lines (RFC 9112 §5).
        ok + b"Bad Name: x\r\n\r\n",
        ok + b"Name : x\r\n\r\n",
        ok + b": x\r\n\r\n",
        ok + b"A: b\r\n folded\r\n\r\n",
        ok + b"A: b\rc\r\n\r\n",
        ok + b"A: b\x00c\r\n\r\n",
        # Framing (RFC 9112 §6.3).
        ok + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        ok + b"Content-Length: 5, 6\r\n\r\nhello!",
        ok + b"Content-Length: -1\r\n\r\n",
        ok + b"Content-Length: 0x10\r\n\r\n",
        ok + b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ok + b"Transfer-Encoding: gzip\r\n\r\nabc",
        ok + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        # Chunked framing (RFC 9112 §7.1), strict as for requests.
        chunked + b"zz\r\nab\r\n0\r\n\r\n",
        chunked + b"2\r\nabX\r\n0\r\n\r\n",
        chunked + b"2\nab\r\n0\r\n\r\n",
        chunked + b"2\r\nab\n0\r\n\r\n",
        chunked + b"2;=x\r\nab\r\n0\r\n\r\n",
        chunked + b"2\r\nab\r\n0\r\nT: v\n\r\n",
        chunked + b"2\r\nab\r\n0\r\nBad T: v\r\n\r\n",
        chunked + b"1" * 17 + b"\r\n",
        # Sizes (README limits).
        b"HTTP/1.1 200 " + b"x" * (LINE_LIMIT - 12) + b"\r\n\r\n",
        ok + b"X: " + b"v" * SECTION_LIMIT + b"\r\n\r\n",
        ok + b"X: v\r\n" * (FIELDS_LIMIT + 1) + b"\r\n",
    ]


@pytest.mark.parametrize("raw", invalid_cases())
def test_invalid_responses_raise_502_whole_and_byte_by_byte(raw: bytes) -> None:
    for pieces in splits(raw):
        with pytest.raises(HTTPError) as info:
            parse(pieces, ["GET"])
        assert info.value.status == BAD_GATEWAY


LENGTH_0 = b"Content-Length: 0\r\n"  # 19 bytes


@pytest.mark.parametrize(
    ("fields", "status_line"),
    [
        # A status line of 8 KiB without its CRLF.
        (LENGTH_0, b"HTTP/1.1 200 " + b"x" * (LINE_LIMIT - 13)),
        # A header section of 16 KiB with the CRLFs of its lines.
        (b"X: " + b"v" * (SECTION_LIMIT - 5 - 19) + b"\r\n" + LENGTH_0, b"HTTP/1.1 200 OK"),
        # 100 field lines.
        (b"X: v\r\n" * (FIELDS_LIMIT - 1) + LENGTH_0, b"HTTP/1.1 200 OK"),
    ],
)
def test_heads_at_the_documented_limits_parse(fields: bytes, status_line: bytes) -> None:
    raw = status_line + b"\r\n" + fields + b"\r\n"
    for pieces in splits(raw):
        events = parse(pieces, ["GET"])
        assert len(events) == 2 and events[-1] is END
        assert events[0][1] == 200  # type: ignore[index]


def test_a_status_line_that_outgrows_the_limit_fails_before_it_ends() -> None:
    parser = ResponseParser("GET")
    parser.feed(b"HTTP/1.1 200 " + b"x" * (LINE_LIMIT + 10))
    with pytest.raises(HTTPError) as info:
        parser.next_event()
    assert info.value.status == BAD_GATEWAY


def test_a_non_http_answer_fails_at_its_first_bytes() -> None:
    parser = ResponseParser("GET")
    parser.feed(b"SSH-")
    with pytest.raises(HTTPError) as info:
        parser.next_event()
    assert info.value.status == BAD_GATEWAY


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"HTTP/1.1 200 OK\r\nContent-",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n",
    ],
)
def test_a_close_before_the_response_ends_is_502(raw: bytes) -> None:
    for pieces in splits(raw):
        with pytest.raises(HTTPError) as info:
            parse(pieces, ["GET"], eof=True)
        assert info.value.status == BAD_GATEWAY


def test_a_response_nobody_asked_for_is_502() -> None:
    parser = ResponseParser()
    parser.feed(NEXT)
    with pytest.raises(HTTPError) as info:
        parser.next_event()
    assert info.value.status == BAD_GATEWAY


def test_each_response_is_framed_by_its_own_request_method() -> None:
    # HEAD then GET on one connection: the same head bytes, one body.
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"
    for pieces in splits(raw + raw + b"abc"):
        assert parse(pieces, ["HEAD", "GET"]) == [
            ("head", 200, "OK", "HTTP/1.1", True),
            END,
            ("head", 200, "OK", "HTTP/1.1", True),
            b"abc",
            END,
        ]


# -- request writer --------------------------------------------------------------


def parse_request(raw: bytes) -> tuple[Request, bytes, list[object]]:
    """The request, its body and whatever followed, through the server's parser."""
    for pieces in splits(raw):
        parser = RequestParser()
        events: list[object] = []
        for piece in pieces:
            parser.feed(piece)
            while (event := parser.next_event()) is not NEED_DATA:
                events.append(event)
    request = events[0]
    assert isinstance(request, Request)
    end = events.index(END)
    body = b"".join(e.data for e in events[1:end] if isinstance(e, Data))
    return request, body, events[end + 1 :]


def test_round_trip_with_a_length() -> None:
    head = request_head(
        "POST",
        "/up?x=1",
        [("Content-Type", "text/plain"), ("X-Tag", "a b")],
        host="example.org:8080",
        body_length=5,
    )
    assert head.startswith(b"POST /up?x=1 HTTP/1.1\r\nHost: example.org:8080\r\n")
    request, body, rest = parse_request(head + b"hello")
    assert (request.method, request.target, request.host) == ("POST", "/up?x=1", "example.org:8080")
    assert request.content_length == 5 and not request.chunked
    assert request.headers.get("x-tag") == "a b"
    assert body == b"hello" and rest == []


def test_round_trip_chunked_then_a_pipelined_request() -> None:
    head = request_head("PUT", "/f", [], host="h", body_length=None)
    assert b"Transfer-Encoding: chunked\r\n" in head and b"Content-Length" not in head
    raw = head + chunk(b"hello ") + chunk(b"") + chunk(b"world") + LAST_CHUNK
    second = request_head("GET", "/next", [("Accept", "*/*")], host="h", body_length=0)
    request, body, rest = parse_request(raw + second)
    assert request.chunked and body == b"hello world"
    assert isinstance(rest[0], Request) and rest[0].target == "/next" and rest[1:] == [END]


@pytest.mark.parametrize(
    ("method", "length", "field"),
    [
        ("GET", 0, None),
        ("HEAD", 0, None),
        ("DELETE", 0, None),
        ("POST", 0, b"Content-Length: 0\r\n"),
        ("PUT", 3, b"Content-Length: 3\r\n"),
        ("GET", 2, b"Content-Length: 2\r\n"),
    ],
)
def test_the_framing_field_by_method_and_length(
    method: str, length: int, field: bytes | None
) -> None:
    head = request_head(method, "/", [], host="h", body_length=length)
    assert head.endswith(b"\r\n\r\n")
    if field is None:
        assert b"Content-Length" not in head and b"Transfer-Encoding" not in head
    else:
        assert field in head


@pytest.mark.parametrize(
    ("method", "target", "headers", "host", "length"),
    [
        ("GET", "/", [("X", "a\r\nInjected: 1")], "h", 0),
        ("GET", "/", [("X", "a\nb")], "h", 0),
        ("GET", "/", [("X", "a\rb")], "h", 0),
        ("GET", "/", [("X", "a\0b")], "h", 0),
        ("GET", "/", [("X\r\nY", "v")], "h", 0),
        ("GET", "/", [("Bad Name", "v")], "h", 0),
        ("GET", "/", [("", "v")], "h", 0),
        ("GET", "/", [("Na:me", "v")], "h", 0),
        ("GET", "/", [("X", "\u20ac")], "h", 0),
        ("GET", "/", [], "h\r\nX: y", 0),
        ("GET", "/", [], "h\0", 0),
        ("GET", "/a b", [], "h", 0),
        ("GET", "/a\r\n", [], "h", 0),
        ("GET", "", [], "h", 0),
        ("G T", "/", [], "h", 0),
        ("GET\r\n", "/", [], "h", 0),
        ("", "/", [], "h", 0),
        ("GET", "/", [("Host", "other")], "h", 0),
        ("POST", "/", [("content-length", "3")], "h", 3),
        ("POST", "/", [("Transfer-Encoding", "chunked")], "h", None),
        ("POST", "/", [], "h", -1),
    ],
)
def test_the_request_writer_refuses_what_would_split_or_contradict_the_head(
    method: str, target: str, headers: list[tuple[str, str]], host: str, length: int | None
) -> None:
    with pytest.raises(ValueError):
        request_head(method, target, headers, host=host, body_length=length)


def test_chunk_framing() -> None:
    assert chunk(b"a" * 26) == b"1a\r\n" + b"a" * 26 + b"\r\n"
    assert chunk(b"") == b""  # never a premature last chunk
    assert LAST_CHUNK == b"0\r\n\r\n"
