"""The sans-IO request parser: every case whole, byte by byte, and followed by
the next pipelined request."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from localhost.http.errors import HTTPError
from localhost.http.message import Request
from localhost.http.parser import (
    END,
    MAX_REQUEST_LINE,
    NEED_DATA,
    Data,
    RequestParser,
)

NEXT = b"GET /next HTTP/1.1\r\nHost: n\r\n\r\n"
CHUNKED = b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
# Documented limits (README, "Limits"): chunk-size line 4 KiB → 400; trailer
# section 16 KiB and 100 field lines → 431.
CHUNK_LINE_LIMIT = 4 * 1024
TRAILER_LIMIT = 16 * 1024
TRAILER_FIELDS = 100


def events(parser: RequestParser) -> list[object]:
    out: list[object] = []
    while True:
        event = parser.next_event()
        if event is NEED_DATA:
            return out
        out.append(event)
        if event is END:
            return out


def feed_in(pieces: Iterable[bytes]) -> tuple[list[object], RequestParser]:
    """Events of one message fed in ``pieces``; body data merged into one Data."""
    parser = RequestParser()
    collected: list[object] = []
    for piece in pieces:
        parser.feed(piece)
        collected.extend(events(parser))
        if collected and collected[-1] is END:
            break
    merged: list[object] = []
    for event in collected:
        if isinstance(event, Data) and merged and isinstance(merged[-1], Data):
            merged[-1] = Data(merged[-1].data + event.data)
        else:
            merged.append(event)
    return merged, parser


def summary(evs: list[object]) -> tuple[object, ...]:
    head = evs[0]
    assert isinstance(head, Request)
    body = b"".join(e.data for e in evs if isinstance(e, Data))
    return (
        head.method,
        head.target,
        head.version,
        head.host,
        head.keep_alive,
        body,
        evs[-1] is END,
    )


def split_ways(raw: bytes) -> list[list[bytes]]:
    return [
        [raw],
        [raw[i : i + 1] for i in range(len(raw))],
        [raw[: len(raw) // 2], raw[len(raw) // 2 :]],
    ]


VALID = [
    # (raw, method, target, version, host, keep_alive, body)
    (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET", "/", "HTTP/1.1", "a", True, b""),
    (
        b"GET /x?y=1 HTTP/1.1\r\nHost: a:80\r\nConnection: close\r\n\r\n",
        "GET",
        "/x?y=1",
        "HTTP/1.1",
        "a:80",
        False,
        b"",
    ),
    (b"GET / HTTP/1.0\r\n\r\n", "GET", "/", "HTTP/1.0", "", False, b""),
    (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", "GET", "/", "HTTP/1.0", "", True, b""),
    (b"HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n", "HEAD", "/h", "HTTP/1.1", "a", True, b""),
    (
        b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        "POST",
        "/p",
        "HTTP/1.1",
        "a",
        True,
        b"hello",
    ),
    (
        b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
        "POST",
        "/p",
        "HTTP/1.1",
        "a",
        True,
        b"",
    ),
    (
        b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc",
        "POST",
        "/p",
        "HTTP/1.1",
        "a",
        True,
        b"abc",
    ),
    (
        b'POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext="q"\r\n world\r\n0\r\n\r\n',
        "POST",
        "/c",
        "HTTP/1.1",
        "a",
        True,
        b"hello world",
    ),
    (
        b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\nY: 2\r\n\r\n",
        "POST",
        "/c",
        "HTTP/1.1",
        "a",
        True,
        b"0123456789",
    ),
    (b"\r\n\r\nGET /lead HTTP/1.1\r\nHost: a\r\n\r\n", "GET", "/lead", "HTTP/1.1", "a", True, b""),
    (b"GET /lf HTTP/1.1\nHost: a\n\n", "GET", "/lf", "HTTP/1.1", "a", True, b""),
    (b"GET /mix HTTP/1.1\r\nHost: a\n\r\n", "GET", "/mix", "HTTP/1.1", "a", True, b""),
    (
        b"GET http://h.example/p HTTP/1.1\r\nHost: h.example\r\n\r\n",
        "GET",
        "http://h.example/p",
        "HTTP/1.1",
        "h.example",
        True,
        b"",
    ),
    # HTTP/1.0 needs no Host: an absolute-form target supplies it.
    (
        b"GET http://h.example/p HTTP/1.0\r\n\r\n",
        "GET",
        "http://h.example/p",
        "HTTP/1.0",
        "h.example",
        False,
        b"",
    ),
    (b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", "OPTIONS", "*", "HTTP/1.1", "a", True, b""),
    # The same authority written two ways (RFC 3986 §6.2.3): the default port, any case.
    (
        b"GET http://A.example:80/p HTTP/1.1\r\nHost: a.EXAMPLE\r\n\r\n",
        "GET",
        "http://A.example:80/p",
        "HTTP/1.1",
        "A.example:80",
        True,
        b"",
    ),
    (
        b"GET https://a/p HTTP/1.1\r\nHost: a:443\r\n\r\n",
        "GET",
        "https://a/p",
        "HTTP/1.1",
        "a",
        True,
        b"",
    ),
    (
        b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
        "GET",
        "/",
        "HTTP/1.1",
        "[::1]:8080",
        True,
        b"",
    ),
    (b"GET / HTTP/1.1\r\nHost: a:\r\n\r\n", "GET", "/", "HTTP/1.1", "a:", True, b""),
    # Raw non-ASCII in the target (curl sends /café as is): its percent-encoding, as in NGINX.
    (
        b"GET /caf\xc3\xa9?q=\xff HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET",
        "/caf%C3%A9?q=%FF",
        "HTTP/1.1",
        "a",
        True,
        b"",
    ),
    (
        b"DELETE /d HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Tab:\tv\t\r\n\r\n",
        "DELETE",
        "/d",
        "HTTP/1.1",
        "a",
        True,
        b"",
    ),
    (
        b"GET /o HTTP/1.1\r\nHost: a\r\nX-Obs: caf\xe9\r\n\r\n",
        "GET",
        "/o",
        "HTTP/1.1",
        "a",
        True,
        b"",
    ),
    # Chunk extensions by RFC 9112 §7.1.1: BWS around ";" and "=", token or
    # quoted-string values (with quoted-pairs), names without values.
    (
        CHUNKED + b'5 ;a = b\t;c;d="q \\" ;x"\r\nhello\r\n0 ; last\r\n\r\n',
        "POST",
        "/c",
        "HTTP/1.1",
        "a",
        True,
        b"hello",
    ),
    # 16 hex digits (README: "at most 16 hex digits"), leading zeros included.
    (
        CHUNKED + b"0000000000000005\r\nhello\r\n0000000000000000\r\n\r\n",
        "POST",
        "/c",
        "HTTP/1.1",
        "a",
        True,
        b"hello",
    ),
    # Absolute-form with an empty path (RFC 9112 §3.2.2, RFC 3986 §3.3).
    (
        b"GET http://example.com?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n",
        "GET",
        "http://example.com?x=1",
        "HTTP/1.1",
        "example.com",
        True,
        b"",
    ),
    (
        b"GET http://example.com:8080 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
        "GET",
        "http://example.com:8080",
        "HTTP/1.1",
        "example.com:8080",
        True,
        b"",
    ),
]


@pytest.mark.parametrize(("raw", "method", "target", "version", "host", "keep", "body"), VALID)
def test_valid_requests_in_every_split(
    raw: bytes, method: str, target: str, version: str, host: str, keep: bool, body: bytes
) -> None:
    for pieces in split_ways(raw):
        evs, _ = feed_in(pieces)
        assert summary(evs) == (method, target, version, host, keep, body, True)


@pytest.mark.parametrize("raw", [case[0] for case in VALID])
def test_valid_requests_followed_by_the_next_request(raw: bytes) -> None:
    parser = RequestParser()
    parser.feed(raw + NEXT)
    first = events(parser)
    assert first[-1] is END
    second = events(parser)
    assert isinstance(second[0], Request) and second[0].target == "/next"
    assert second[-1] is END
    assert parser.next_event() is NEED_DATA


def test_fields_are_case_insensitive_and_repeated_fields_join() -> None:
    parser = RequestParser()
    parser.feed(b"GET / HTTP/1.1\r\nHOST: a\r\nAccept: x\r\naccept: y\r\nX-Sp:   v  \r\n\r\n")
    head = parser.next_event()
    assert isinstance(head, Request)
    assert head.headers.get("host") == "a"
    assert head.headers.get("accept") == "x, y"
    assert head.headers.get_all("accept") == ["x", "y"]
    assert head.headers.get("x-sp") == "v"


def test_expect_continue_flag() -> None:
    parser = RequestParser()
    parser.feed(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n")
    head = parser.next_event()
    assert isinstance(head, Request) and head.expect_continue and head.content_length == 1


def test_need_data_until_the_head_is_complete() -> None:
    parser = RequestParser()
    parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\n")
    assert parser.next_event() is NEED_DATA
    parser.feed(b"\r\n")
    assert isinstance(parser.next_event(), Request)


INVALID = [
    (b"garbage\r\n\r\n", 400),
    (b"GET /\r\nHost: a\r\n\r\n", 400),  # HTTP/0.9 form
    (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400),
    (b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET / http/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET / HTTP/1\r\nHost: a\r\n\r\n", 400),
    (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    (b"GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505),
    (b"GET / HTTP/1.1\r\n\r\n", 400),
    # HTTP/1.1 needs Host even with an absolute-form target (RFC 9112 §3.2).
    (b"GET http://h.example/p HTTP/1.1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
    (b"BREW / HTTP/1.1\r\nHost: a\r\n\r\n", 501),
    (b"PROPFIND / HTTP/1.1\r\nHost: a\r\n\r\n", 501),
    (b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET foo HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n", 400),
    (b"GET http://a:81/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),  # not the default port
    (b"GET https://a/ HTTP/1.1\r\nHost: a:80\r\n\r\n", 400),
    (b"GET http://a:b:c/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a:b:c\r\n\r\n", 400),  # uri-host [ ":" port ] only
    (b"GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: :80\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nNo-Colon\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\n: empty-name\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nName : v\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n  folded\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX\x7f: v\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 501),
    (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        400,
    ),
    (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", 400),
    (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n", 400),
    (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nbad trailer\r\n\r\n",
        400,
    ),
    # Chunked framing takes CRLF only (RFC 9112 §7.1): a bare LF after the
    # chunk size, after chunk data, after the last chunk or in the trailer.
    (CHUNKED + b"2\nab\r\n0\r\n\r\n", 400),
    (CHUNKED + b"2;x=y\nab\r\n0\r\n\r\n", 400),
    (CHUNKED + b"2\r\nab\n0\r\n\r\n", 400),
    (CHUNKED + b"2\r\nab\r0\r\n\r\n", 400),
    (CHUNKED + b"2\r\nab\r\n0\n\r\n", 400),
    (CHUNKED + b"2\r\nab\r\n0\r\n\n", 400),
    (CHUNKED + b"2\r\nab\r\n0\r\nX: y\n\r\n", 400),
    (CHUNKED + b"2\r\r\nab\r\n0\r\n\r\n", 400),
    # Chunk-line grammar: chunk-size [ chunk-ext ] CRLF.
    (CHUNKED + b"2;\r\nab\r\n0\r\n\r\n", 400),
    (CHUNKED + b"2 \r\nab\r\n0\r\n\r\n", 400),
    (CHUNKED + b"2\t\r\nab\r\n0\r\n\r\n", 400),
    (CHUNKED + b"2;a=\r\nab\r\n0\r\n\r\n", 400),
    (CHUNKED + b"2;=b\r\nab\r\n0\r\n\r\n", 400),
    (CHUNKED + b"2;a b\r\nab\r\n0\r\n\r\n", 400),
    (CHUNKED + b"2;a;\r\nab\r\n0\r\n\r\n", 400),
    (CHUNKED + b'2;a="b\r\nab\r\n0\r\n\r\n', 400),
    (CHUNKED + b'2;a="b"c\r\nab\r\n0\r\n\r\n', 400),
    (CHUNKED + b'2;a="\x01"\r\nab\r\n0\r\n\r\n', 400),
    (CHUNKED + b"2;a@b\r\nab\r\n0\r\n\r\n", 400),
    (CHUNKED + b"2,3\r\nab\r\n0\r\n\r\n", 400),
    (CHUNKED + b"0;\r\n\r\n", 400),
    # Hostile sizes: a sign, a 0x prefix, 17 digits even when they are zeros.
    (CHUNKED + b"+2\r\nab\r\n0\r\n\r\n", 400),
    (CHUNKED + b"0x2\r\nab\r\n0\r\n\r\n", 400),
    (CHUNKED + b"00000000000000002\r\nab\r\n0\r\n\r\n", 400),
    (CHUNKED + b"f" * 40 + b"\r\n", 400),
    # Trailer fields: obs-fold, whitespace before the colon, no colon.
    (CHUNKED + b"0\r\nX: a\r\n folded\r\n\r\n", 400),
    (CHUNKED + b"0\r\nX : a\r\n\r\n", 400),
    (CHUNKED + b"0\r\nX\r\n\r\n", 400),
    # The absolute-form authority ends at "?": a query is not part of it.
    (b"GET http://a?x=1 HTTP/1.1\r\nHost: b\r\n\r\n", 400),
    (b"GET http://?x=1 HTTP/1.1\r\nHost: b\r\n\r\n", 400),
    # The documented limits: chunk-size line over 4 KiB → 400, trailer
    # section over 16 KiB or 100 field lines → 431.
    (CHUNKED + b"1;" + b"a" * (CHUNK_LINE_LIMIT + 100) + b"\r\nx\r\n0\r\n\r\n", 400),
    (CHUNKED + b"0\r\n" + b"T: v\r\n" * (TRAILER_FIELDS + 1) + b"\r\n", 431),
    (CHUNKED + b"0\r\nT: " + b"v" * (TRAILER_LIMIT + 100) + b"\r\n\r\n", 431),
    (CHUNKED + b"0\r\n" + (b"T: " + b"v" * 1000 + b"\r\n") * 17 + b"\r\n", 431),
    (b"GET /" + b"a" * MAX_REQUEST_LINE + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X: y\r\n" * 101 + b"\r\n", 431),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"y" * 16500 + b"\r\n\r\n", 431),
]


@pytest.mark.parametrize(("raw", "status"), INVALID)
def test_invalid_requests_raise_their_status_in_every_split(raw: bytes, status: int) -> None:
    for pieces in split_ways(raw):
        with pytest.raises(HTTPError) as info:
            feed_in(pieces)
        assert info.value.status == status, pieces[:1]


def test_overlong_request_line_is_414_before_it_ends() -> None:
    parser = RequestParser()
    parser.feed(b"GET /" + b"a" * (MAX_REQUEST_LINE + 10))
    with pytest.raises(HTTPError) as info:
        parser.next_event()
    assert info.value.status == 414


@pytest.mark.parametrize(
    "start",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello on the plain port
        b"GET /\r\n",  # HTTP/0.9: a complete line without a version
        b"GET / HTTP/1.1 extra\r\n",
        b"G\x00ET / HTTP/1.1",
    ],
)
def test_a_head_that_cannot_become_a_request_fails_before_it_ends(start: bytes) -> None:
    parser = RequestParser()
    parser.feed(start)
    with pytest.raises(HTTPError) as info:
        parser.next_event()
    assert info.value.status == 400


def test_a_chunk_size_that_cannot_be_hex_fails_before_its_line_ends() -> None:
    parser = RequestParser()
    parser.feed(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nhello")
    assert isinstance(parser.next_event(), Request)
    with pytest.raises(HTTPError) as info:
        parser.next_event()
    assert info.value.status == 400
    parser = RequestParser()
    parser.feed(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1a")
    assert isinstance(parser.next_event(), Request)
    assert parser.next_event() is NEED_DATA  # may still be "1a\r\n"


def test_a_partial_request_line_that_may_still_be_valid_needs_data() -> None:
    for start in (b"\r", b"\r\n\r", b"GE", b"GET ", b"GET /a HTTP/1.", b"GET / HTTP/1.1\r"):
        parser = RequestParser()
        parser.feed(start)
        assert parser.next_event() is NEED_DATA, start


def test_endless_header_section_is_431_before_it_ends() -> None:
    parser = RequestParser()
    parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"y" * 20000)
    with pytest.raises(HTTPError) as info:
        parser.next_event()
    assert info.value.status == 431


def test_large_body_arrives_in_pieces_without_copy_of_the_whole() -> None:
    parser = RequestParser()
    parser.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n")
    assert isinstance(parser.next_event(), Request)
    total = 0
    for _ in range(10):
        parser.feed(b"x" * 10000)
        event = parser.next_event()
        assert isinstance(event, Data)
        total += len(event.data)
        assert parser.buffered == 0
    assert total == 100000
    assert parser.next_event() is END


def test_memo_returns_the_same_request_for_the_same_head() -> None:
    memo: dict[bytes, Request] = {}
    first, second = RequestParser(memo), RequestParser(memo)
    raw = b"GET /m HTTP/1.1\r\nHost: a\r\n\r\n"
    first.feed(raw)
    second.feed(raw + raw)
    a = first.next_event()
    assert second.next_event() is a and second.next_event() is END
    assert second.next_event() is a
    assert len(memo) == 1
    # Bodies still flow through the parser itself.
    body = b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"
    for parser in (RequestParser(memo), RequestParser(memo)):
        parser.feed(body)
        assert isinstance(parser.next_event(), Request)
        assert parser.next_event() == Data(b"hi")
        assert parser.next_event() is END


HEAD = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n"


def test_whole_head_takes_a_remembered_head_without_a_body() -> None:
    memo: dict[bytes, Request] = {}
    first = RequestParser(memo)
    first.feed(HEAD)
    request = first.next_event()
    assert first.next_event() is END
    parser = RequestParser(memo)
    # Received in a reusable buffer (the transport's): the head is copied.
    assert parser.whole_head(memoryview(bytearray(HEAD))) is request
    assert parser.head_size == len(HEAD)
    # Nothing was consumed or left behind: the next request parses as usual,
    # also after a body-less request whose END was still to be taken.
    parser.feed(NEXT)
    assert [getattr(e, "target", e) for e in events(parser)] == ["/next", END]
    first.feed(NEXT[:5])
    assert first.next_event() is NEED_DATA


def remember(memo: dict[bytes, Request], *heads: bytes) -> None:
    for head in heads:
        parser = RequestParser(memo)
        parser.feed(head)
        parser.next_event()


POST_EMPTY = b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"
POST_BODY = b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"GET /unknown HTTP/1.1\r\nHost: a\r\n\r\n", id="not remembered"),
        pytest.param(HEAD[:-1], id="incomplete"),
        pytest.param(HEAD + NEXT, id="followed by a request"),
        pytest.param(HEAD + b"G", id="followed by a byte"),
        pytest.param(POST_BODY, id="a body follows"),
        pytest.param(CHUNKED, id="chunked"),
    ],
)
def test_whole_head_leaves_anything_else_to_the_parse(data: bytes) -> None:
    memo: dict[bytes, Request] = {}
    remember(memo, HEAD, POST_BODY, CHUNKED, NEXT)
    parser = RequestParser(memo)
    assert parser.whole_head(data) is None
    assert parser.buffered == 0 and parser.head_size == 0  # nothing taken


def test_whole_head_takes_an_empty_body_as_none() -> None:
    memo: dict[bytes, Request] = {}
    remember(memo, POST_EMPTY)
    request = RequestParser(memo).whole_head(POST_EMPTY)
    assert request is not None and request.method == "POST" and request.content_length == 0


def test_whole_head_waits_for_buffered_bytes_and_a_body() -> None:
    memo: dict[bytes, Request] = {}
    parser = RequestParser(memo)
    parser.feed(HEAD)
    parser.next_event()
    parser.next_event()
    parser.feed(b"GET")  # the start of a request: what follows is not a whole head
    assert parser.whole_head(HEAD) is None
    post = RequestParser(memo)
    post.feed(b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nab")
    post.next_event()
    post.next_event()  # Data: half of the body
    assert post.whole_head(HEAD) is None  # the rest of the body comes first
    assert post.buffered == 0


def chunk_line_of(size: int) -> bytes:
    """A chunk-size line of ``size`` bytes without its CRLF (size 2, extensions)."""
    line = b"2;a=" + b"b" * (size - 4)
    assert len(line) == size
    return line


def trailer_of(size: int) -> bytes:
    """One trailer field line of ``size`` bytes with its CRLF."""
    line = b"T: " + b"v" * (size - 5) + b"\r\n"
    assert len(line) == size
    return line


@pytest.mark.parametrize(
    ("body", "status"),
    [
        # README: chunk-size line (with extensions) 4 KiB → 400.
        (chunk_line_of(CHUNK_LINE_LIMIT) + b"\r\nab\r\n0\r\n\r\n", None),
        (chunk_line_of(CHUNK_LINE_LIMIT + 1) + b"\r\nab\r\n0\r\n\r\n", 400),
        # README: trailer section 16 KiB (field lines with their CRLFs) → 431.
        (b"2\r\nab\r\n0\r\n" + trailer_of(TRAILER_LIMIT) + b"\r\n", None),
        (b"2\r\nab\r\n0\r\n" + trailer_of(TRAILER_LIMIT + 1) + b"\r\n", 431),
        # README: trailer section 100 field lines → 431.
        (b"2\r\nab\r\n0\r\n" + b"T: v\r\n" * TRAILER_FIELDS + b"\r\n", None),
        (b"2\r\nab\r\n0\r\n" + b"T: v\r\n" * (TRAILER_FIELDS + 1) + b"\r\n", 431),
    ],
)
def test_chunked_limits_at_their_documented_boundaries(body: bytes, status: int | None) -> None:
    raw = CHUNKED + body
    for pieces in split_ways(raw):
        if status is None:
            evs, _ = feed_in(pieces)
            assert summary(evs) == ("POST", "/c", "HTTP/1.1", "a", True, b"ab", True)
        else:
            with pytest.raises(HTTPError) as info:
                feed_in(pieces)
            assert info.value.status == status


def test_an_endless_chunk_line_is_400_before_it_ends() -> None:
    parser = RequestParser()
    parser.feed(CHUNKED + b"1;" + b"a" * (CHUNK_LINE_LIMIT + 10))
    assert isinstance(parser.next_event(), Request)
    with pytest.raises(HTTPError) as info:
        parser.next_event()
    assert info.value.status == 400


def test_an_endless_trailer_section_is_431_before_it_ends() -> None:
    parser = RequestParser()
    parser.feed(CHUNKED + b"0\r\n" + b"T: v\r\n" * 50 + b"U: " + b"v" * TRAILER_LIMIT)
    assert isinstance(parser.next_event(), Request)
    with pytest.raises(HTTPError) as info:
        while parser.next_event() is not NEED_DATA:
            pass
    assert info.value.status == 431


@pytest.mark.parametrize(
    "partial",
    [
        b"2",
        b"2;",
        b"2;a",
        b"2;a=",
        b'2;a="x',
        b"2 ",
        b"2\r",
        b"2\r\nab",
        b"2\r\nab\r",
        b"0\r\nX: y\r",
    ],
)
def test_a_chunk_line_cut_anywhere_needs_data(partial: bytes) -> None:
    # Strictness must not turn a line still arriving into an error.
    parser = RequestParser()
    parser.feed(CHUNKED + partial)
    assert isinstance(parser.next_event(), Request)
    while (event := parser.next_event()) is not NEED_DATA:
        assert isinstance(event, Data)


def test_a_bare_lf_in_chunked_framing_does_not_let_a_second_request_through() -> None:
    # A front-end that reads "2\nab..." differently must not make us parse
    # the bytes after it as a request: the error comes first.
    parser = RequestParser()
    parser.feed(CHUNKED + b"2\nab\r\n0\r\n\r\n" + NEXT)
    assert isinstance(parser.next_event(), Request)
    with pytest.raises(HTTPError) as info:
        parser.next_event()
    assert info.value.status == 400
