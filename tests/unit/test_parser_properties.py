"""Property-based tests of the parser (Hypothesis)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localhost.http.errors import HTTPError
from localhost.http.message import Request
from localhost.http.parser import END, NEED_DATA, Data, RequestParser

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def feed(pieces: list[bytes]) -> list[object]:
    parser = RequestParser()
    events: list[object] = []
    for piece in pieces:
        parser.feed(piece)
        for _ in range(10_000):
            event = parser.next_event()
            if event is NEED_DATA:
                break
            events.append(event)
    return events


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for point in points:
        pieces.append(data[last:point])
        last = point
    pieces.append(data[last:])
    return pieces


# Bytes biased towards the parser's syntax, so that deep states are reached.
TOKENS = st.sampled_from(
    [
        b"GET ",
        b"POST ",
        b"/",
        b" HTTP/1.1",
        b" HTTP/1.0",
        b"\r\n",
        b"\n",
        b"\r",
        b":",
        b" ",
        b"Host: a",
        b"Content-Length: ",
        b"Transfer-Encoding: chunked",
        b"0",
        b"5",
        b"ff",
        b";x=y",
        b"hello",
        b"\x00",
        b"\xff",
        b"\t",
        b"Expect: 100-continue",
        b"Connection: close",
    ]
)
MESSY = st.one_of(st.binary(max_size=300), st.lists(TOKENS, max_size=40).map(b"".join))


@SETTINGS
@given(data=MESSY, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=6))
def test_any_bytes_give_events_or_an_http_error(data: bytes, cuts: list[int]) -> None:
    try:
        feed(split(data, cuts))
    except HTTPError as exc:
        assert 400 <= exc.status <= 599


TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"
NAMES = st.text(TOKEN_CHARS, min_size=1, max_size=12).filter(
    lambda n: (
        n.lower() not in {"host", "content-length", "transfer-encoding", "connection", "expect"}
    )
)
VALUES = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20)
PATHS = st.lists(st.text("abcxyz019._~-", min_size=1, max_size=8), max_size=4).map(
    lambda s: "/" + "/".join(s)
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, str, str, list[tuple[str, str]], bytes]:
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"]))
    target = draw(PATHS)
    fields = draw(st.lists(st.tuples(NAMES, VALUES), max_size=8))
    body = draw(st.binary(max_size=200))
    chunked = draw(st.booleans())
    eol = draw(st.sampled_from([b"\r\n", b"\n"]))
    lines = [f"{method} {target} HTTP/1.1".encode(), b"Host: example.test"]
    lines += [f"{name}: {value}".encode() for name, value in fields]
    if chunked:
        lines.append(b"Transfer-Encoding: chunked")
        sizes = draw(st.lists(st.integers(min_value=1, max_value=50), max_size=5))
        encoded, rest = b"", body
        for size in sizes:
            piece, rest = rest[:size], rest[size:]
            if piece:
                encoded += b"%x\r\n%s\r\n" % (len(piece), piece)
        if rest:
            encoded += b"%x\r\n%s\r\n" % (len(rest), rest)
        encoded += b"0\r\n\r\n"
    else:
        lines.append(b"Content-Length: %d" % len(body))
        encoded = body
    raw = eol.join(lines) + eol + eol + encoded
    return raw, method, target, fields, body


def summary(events: list[object]) -> tuple[object, ...]:
    head = events[0]
    assert isinstance(head, Request)
    body = b"".join(e.data for e in events if isinstance(e, Data))
    return head.method, head.target, list(head.headers), body, events[-1] is END


@SETTINGS
@given(request=requests(), cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=8))
def test_valid_requests_parse_the_same_in_any_split(
    request: tuple[bytes, str, str, list[tuple[str, str]], bytes], cuts: list[int]
) -> None:
    raw, method, target, fields, body = request
    whole = summary(feed([raw]))
    assert whole[0] == method and whole[1] == target and whole[3] == body and whole[4]
    sent = [(n.lower(), v.strip(" \t")) for n, v in fields]
    assert [
        f for f in whole[2] if f[0] not in ("host", "content-length", "transfer-encoding")
    ] == sent
    assert summary(feed(split(raw, cuts))) == whole
    assert summary(feed([raw[i : i + 1] for i in range(len(raw))])) == whole


# Chunked framing (RFC 9112 §7.1): chunk extensions by their grammar, and the
# rule that every line of the framing ends in CRLF.
BWS = st.sampled_from([b"", b" ", b"\t", b" \t "])
TOKEN = st.text(TOKEN_CHARS + "!#$%&'*+.^_`|~", min_size=1, max_size=6).map(str.encode)
QDTEXT = st.sampled_from([b"a", b" ", b"\t", b"!", b"#", b"[", b"]", b"~", b"\x80", b"\xff"])
QUOTED_PAIR = st.sampled_from([b'\\"', b"\\\\", b"\\a", b"\\ ", b"\\\xe9"])
QUOTED = st.lists(st.one_of(QDTEXT, QUOTED_PAIR), max_size=6).map(
    lambda p: b'"' + b"".join(p) + b'"'
)


@st.composite
def chunk_extensions(draw: st.DrawFn) -> bytes:
    out = b""
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        out += draw(BWS) + b";" + draw(BWS) + draw(TOKEN)
        if draw(st.booleans()):
            out += draw(BWS) + b"=" + draw(BWS) + draw(st.one_of(TOKEN, QUOTED))
    return out


@st.composite
def chunked_messages(draw: st.DrawFn) -> tuple[bytes, bytes, list[int]]:
    """``(raw request, decoded body, offsets of every CRLF of the framing)``."""
    raw = b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    crlfs: list[int] = []
    body = b""
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        data = draw(st.binary(min_size=1, max_size=20))
        size = b"%x" % len(data)
        if draw(st.booleans()):
            size = size.upper()
        raw += b"0" * draw(st.integers(min_value=0, max_value=2)) + size
        raw += draw(chunk_extensions())
        crlfs.append(len(raw))
        raw += b"\r\n" + data
        crlfs.append(len(raw))
        raw += b"\r\n"
        body += data
    raw += b"0" + draw(chunk_extensions())
    crlfs.append(len(raw))
    raw += b"\r\n"
    for name, value in draw(st.lists(st.tuples(NAMES, VALUES), max_size=3)):
        raw += f"{name}: {value}".encode()
        crlfs.append(len(raw))
        raw += b"\r\n"
    crlfs.append(len(raw))
    raw += b"\r\n"
    return raw, body, crlfs


@SETTINGS
@given(
    message=chunked_messages(), cuts=st.lists(st.integers(min_value=0, max_value=500), max_size=8)
)
def test_chunk_extensions_by_the_grammar_parse_in_any_split(
    message: tuple[bytes, bytes, list[int]], cuts: list[int]
) -> None:
    raw, body, _ = message
    for pieces in ([raw], split(raw, cuts), [raw[i : i + 1] for i in range(len(raw))]):
        events = feed(pieces)
        assert summary(events)[3:] == (body, True)


@SETTINGS
@given(
    message=chunked_messages(),
    which=st.integers(min_value=0),
    cuts=st.lists(st.integers(min_value=0, max_value=500), max_size=8),
)
def test_a_bare_lf_anywhere_in_chunked_framing_is_400(
    message: tuple[bytes, bytes, list[int]], which: int, cuts: list[int]
) -> None:
    raw, _, crlfs = message
    at = crlfs[which % len(crlfs)]
    assert raw[at : at + 2] == b"\r\n"
    broken = raw[:at] + raw[at + 1 :]
    for pieces in ([broken], split(broken, cuts)):
        try:
            feed(pieces)
        except HTTPError as exc:
            assert exc.status == 400
        else:
            raise AssertionError(f"accepted a bare LF at {at}: {broken!r}")
