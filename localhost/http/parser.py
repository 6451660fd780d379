"""Incremental HTTP/1.1 request parser (RFC 9112), sans-IO.

Bytes go in with ``feed``; ``next_event`` returns, one at a time:

- a ``Request`` when a whole request head has arrived,
- ``Data`` for each piece of the message body (de-chunked),
- ``END`` when the message is complete (immediately after a head without a
  body), after which the parser is ready for the next pipelined request,
- ``NEED_DATA`` when it cannot go on without more bytes.

Malformed input raises ``HTTPError`` with the status to answer (400, 414,
431, 501, 505); after that the connection's framing is lost and it must be
closed. The parser never touches a socket.

Line ends: in the request line and header fields, CRLF or a bare LF, as
NGINX accepts (RFC 9112 §2.2 allows it); a bare CR anywhere in the head is an
error. Leading empty lines before a request line are skipped (RFC 9112 §2.2).

Chunked framing is strict (RFC 9112 §7.1): every chunk-size line, the CRLF
after chunk data, and every trailer line must end in CRLF, and a chunk line
must follow ``chunk-size [ chunk-ext ] CRLF`` exactly. Where a chunked body
ends decides where the next request starts, so any leniency there that a
front-end does not share is a request-smuggling vector; §2.2's leniency is a
MAY, and is kept to the head, where hand-typed requests need it.

The body readers (``LengthReader``, ``ChunkedReader``) are shared with the
response parser of ``localhost.http.client``.
"""

from __future__ import annotations

import re

from localhost.http.errors import HTTPError
from localhost.http.message import Headers, Request
from localhost.http.methods import IMPLEMENTED_METHODS

MAX_REQUEST_LINE = 8 * 1024  # bytes, without the line end → 414
MAX_FIELD_SECTION = 16 * 1024  # bytes of header (or trailer) field lines with their CRLFs → 431
MAX_FIELDS = 100  # header (or trailer) field lines → 431
MAX_CHUNK_LINE = 4 * 1024  # chunk-size line with extensions, without its CRLF → 400
MAX_CHUNK_SIZE_DIGITS = 16  # hex digits: at most 2**64 - 1 → 400 beyond
MEMO_HEAD = 2048  # bytes: longer heads are not remembered
MEMO_ENTRIES = 1024  # remembered heads per memo


class _Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NEED_DATA = _Sentinel("NEED_DATA")
END = _Sentinel("END")


class Data:
    """A piece of the message body, after transfer decoding."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"Data({self.data!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Data) and other.data == self.data


Event = Request | Data | _Sentinel

# RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-"
# / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
_TCHAR = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Bytes never allowed anywhere in a request head: CTLs but HTAB, CR and LF, and DEL.
_HEAD_CTL = bytes(c for c in range(32) if c not in (9, 10, 13)) + b"\x7f"
# Bytes never allowed in a field value: CTLs but HTAB, and DEL (RFC 9110 §5.5).
_VALUE_CTL = bytes(c for c in range(32) if c != 9) + b"\x7f"
# Bytes never allowed in a request-target: CTLs, SP and DEL (non-ASCII is percent-encoded).
_TARGET_BAD = bytes(range(33)) + b"\x7f"
_HEX = b"0123456789abcdefABCDEF"
_HOST_BAD = frozenset(" /\\@\t,")
_KNOWN_METHODS = {m.encode(): m for m in IMPLEMENTED_METHODS}
# Where the authority of an absolute-form target ends (RFC 3986 §3.2).
_AUTHORITY_END = "/?#"

# A whole chunk line without its LF (RFC 9112 §7.1.1, RFC 9110 §5.6):
#   chunk-size [ chunk-ext ] CR
#   chunk-ext     = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
#   chunk-ext-val = token / quoted-string
# The pieces' character sets are disjoint (a token never holds whitespace,
# ";", "=" or a quote), so there is one way to match a line at most, and
# every quantifier is possessive: a line that does not match fails without
# backtracking, in time linear in its length (at most MAX_CHUNK_LINE).
_TOKEN_RE = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]++"
_QUOTED_RE = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*+"'
_CHUNK_LINE = re.compile(
    rb"([0-9A-Fa-f]{1,%d}+)(?:[ \t]*+;[ \t]*+%s(?:[ \t]*+=[ \t]*+(?:%s|%s))?+)*+\r"
    % (MAX_CHUNK_SIZE_DIGITS, _TOKEN_RE, _TOKEN_RE, _QUOTED_RE)
)

_HEAD, _END, _BODY = range(3)
_CHUNK_SIZE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILER = range(4)


def _authority(value: str, default_port: str) -> tuple[str, str] | None:
    """``(host, port)`` of a Host value or an absolute-form authority,
    lower-case, a missing or empty port given as ``default_port``; ``None``
    when it is not ``uri-host [ ":" port ]`` (RFC 9110 §7.2, RFC 3986 §3.2)."""
    if value.startswith("["):
        close = value.find("]")
        if close < 0:
            return None
        name, rest = value[: close + 1], value[close + 1 :]
        if rest and rest[0] != ":":
            return None
        port = rest[1:]
    else:
        name, _, port = value.partition(":")
        if ":" in port:
            return None
    if not name or name[0] == "." or not _HOST_BAD.isdisjoint(name):
        return None
    if port and not (port.isdigit() and port.isascii()):
        return None
    return name.lower(), port or default_port


def _is_token(value: bytes) -> bool:
    return bool(value) and not value.translate(None, _TCHAR)


def _chunk_line_error(line: bytes) -> HTTPError:
    """The 400 for a chunk line (without its LF) that ``_CHUNK_LINE`` refused."""
    if line[-1:] != b"\r":
        return HTTPError(400, "chunk-size line not ending in CRLF")
    digits = len(line) - len(line.lstrip(_HEX))
    if not digits or digits > MAX_CHUNK_SIZE_DIGITS:
        return HTTPError(400, "invalid chunk size")
    return HTTPError(400, "malformed chunk extension")


# -- body readers --------------------------------------------------------------
#
# One per message body, shared by the request parser and the response parser
# (``localhost.http.client``), on the model of h11's readers. ``read(buf)``
# takes what it can from the front of the connection's buffer and returns one
# event: ``Data``, ``END`` once the body is complete (and nothing of the next
# message has been consumed), or ``NEED_DATA``. ``done`` turns true once the
# body is complete: either with the ``END`` returned, or with the last
# ``Data``, when the END is due without another byte (so that the parser can
# report it without calling the reader again). ``eof()`` is called when the
# peer closed the connection mid-body instead. Errors are ``HTTPError`` with
# the status a server answers to a request (400, 431); the response parser
# turns them into its own.


class LengthReader:
    """A body of ``length`` bytes (> 0) delimited by Content-Length (RFC 9112 §6.2)."""

    __slots__ = ("remaining", "done")

    def __init__(self, length: int) -> None:
        self.remaining = length
        self.done = not length

    def read(self, buf: bytearray) -> Data | _Sentinel:
        """Up to ``remaining`` bytes of ``buf`` as ``Data``; ``END`` when none remain."""
        remaining = self.remaining
        if not remaining:
            return END
        if not buf:
            return NEED_DATA
        if len(buf) <= remaining:
            data = bytes(buf)
            buf.clear()
        else:
            data = bytes(buf[:remaining])
            del buf[:remaining]
        remaining -= len(data)
        self.remaining = remaining
        if not remaining:
            self.done = True
        return Data(data)

    def eof(self) -> _Sentinel:
        """Raises ``HTTPError(400)``: the connection closed before the body ended."""
        if not self.remaining:
            return END
        raise HTTPError(400, f"connection closed with {self.remaining} body bytes missing")


class ChunkedReader:
    """A chunked body (RFC 9112 §7.1), de-chunked, strictly framed.

    Every chunk-size line, the CRLF after chunk data and every trailer line
    must end in CRLF; a chunk line must match ``chunk-size [ chunk-ext ]``
    with at most ``MAX_CHUNK_SIZE_DIGITS`` hex digits and ``MAX_CHUNK_LINE``
    bytes (400). Trailer fields are checked (token name, no CTL in the value)
    and dropped; the trailer section is bounded like a header section:
    ``MAX_FIELD_SECTION`` bytes and ``MAX_FIELDS`` lines (431).
    """

    __slots__ = ("_state", "_remaining", "_trailer_bytes", "_trailer_count", "done")

    def __init__(self) -> None:
        self.done = False
        self._state = _CHUNK_SIZE
        self._remaining = 0
        self._trailer_bytes = 0
        self._trailer_count = 0

    def eof(self) -> _Sentinel:
        """Raises ``HTTPError(400)``: the connection closed before the last chunk."""
        raise HTTPError(400, "connection closed inside a chunked body")

    def read(self, buf: bytearray) -> Data | _Sentinel:
        """The next piece of chunk data, ``END`` after the trailer section, or ``NEED_DATA``."""
        state = self._state
        while True:
            if state == _CHUNK_SIZE:
                newline = buf.find(b"\n")
                if newline < 0:
                    if len(buf) > MAX_CHUNK_LINE + 1:  # the line and its CR
                        raise HTTPError(400, "chunk-size line too long")
                    if buf and buf[0] not in _HEX:
                        # Cannot become a chunk size: fail now, not at the timeout.
                        raise HTTPError(400, "invalid chunk size")
                    return NEED_DATA
                if newline > MAX_CHUNK_LINE + 1:
                    raise HTTPError(400, "chunk-size line too long")
                match = _CHUNK_LINE.fullmatch(buf, 0, newline)
                if match is None:
                    raise _chunk_line_error(bytes(buf[:newline]))
                size = int(match.group(1), 16)
                del buf[: newline + 1]
                if size == 0:
                    state = self._state = _TRAILER
                    continue
                self._remaining = size
                state = self._state = _CHUNK_DATA
            elif state == _CHUNK_DATA:
                if not buf:
                    return NEED_DATA
                remaining = self._remaining
                if len(buf) <= remaining:
                    data = bytes(buf)
                    buf.clear()
                else:
                    data = bytes(buf[:remaining])
                    del buf[:remaining]
                self._remaining = remaining - len(data)
                if self._remaining == 0:
                    self._state = _CHUNK_CRLF
                return Data(data)
            elif state == _CHUNK_CRLF:
                if buf[:2] == b"\r\n":
                    del buf[:2]
                elif not buf or buf == b"\r":
                    return NEED_DATA
                else:
                    raise HTTPError(400, "chunk data not followed by CRLF")
                state = self._state = _CHUNK_SIZE
            else:  # _TRAILER: field lines ending in CRLF, bounded, then an empty line
                newline = buf.find(b"\n")
                if newline < 0:
                    # A field line (longer than the empty line's CR) that
                    # cannot fit any more, even with just its LF still to come.
                    if len(buf) > 1 and self._trailer_bytes + len(buf) >= MAX_FIELD_SECTION:
                        raise HTTPError(431, "trailer section too large")
                    return NEED_DATA
                line = bytes(buf[:newline])
                del buf[: newline + 1]
                if line[-1:] != b"\r":
                    raise HTTPError(400, "trailer line not ending in CRLF")
                line = line[:-1]
                if not line:
                    self.done = True
                    return END
                self._trailer_bytes += newline + 1
                self._trailer_count += 1
                if self._trailer_bytes > MAX_FIELD_SECTION or self._trailer_count > MAX_FIELDS:
                    raise HTTPError(431, "trailer section too large")
                colon = line.find(b":")
                if colon <= 0 or line[:colon].translate(None, _TCHAR):
                    # Also obs-fold: a line starting with whitespace.
                    raise HTTPError(400, "malformed trailer field")
                value = line[colon + 1 :]
                if len(value.translate(None, _VALUE_CTL)) != len(value):
                    raise HTTPError(400, "invalid byte in a trailer field value")


# The reader of a parser between bodies (never read from, never changed).
_NO_BODY = LengthReader(0)


class RequestParser:
    """Parse a stream of pipelined requests on one connection.

    Limits (bytes): request line ``MAX_REQUEST_LINE`` (414), field section
    ``MAX_FIELD_SECTION`` and ``MAX_FIELDS`` lines (431), the same for the
    trailer section (431), chunk-size line ``MAX_CHUNK_LINE`` and
    ``MAX_CHUNK_SIZE_DIGITS`` hex digits (400).

    ``memo``, shared by the parsers of a worker, remembers the ``Request``
    parsed from each recent head of up to ``MEMO_HEAD`` bytes: parsing is a
    pure function of those bytes, and clients repeat the same head again and
    again (a browser fetching assets, a load balancer's health check). A
    remembered ``Request`` is shared, so its consumers must not change it
    beyond setting ``path`` and ``query`` (which are the same every time).
    """

    __slots__ = ("_buf", "_state", "_reader", "_length", "_scanned", "_memo", "head_size")

    def __init__(self, memo: dict[bytes, Request] | None = None) -> None:
        #: Bytes of the latest request head as received, empty lines before it excluded.
        self.head_size = 0
        self._memo = memo
        self._buf = bytearray()
        self._state = _HEAD
        # The Content-Length reader is made at the first such body and reused
        # from message to message: request bodies are mostly of this kind,
        # and resetting it costs no call (nor does a connection without one).
        self._length: LengthReader | None = None
        self._reader: LengthReader | ChunkedReader = _NO_BODY
        self._scanned = 0

    def feed(self, data: bytes | memoryview) -> None:
        """Append received bytes (copied: ``data`` may be reused afterwards)."""
        self._buf += data

    def whole_head(self, data: bytes | memoryview) -> Request | None:
        """The remembered ``Request`` when ``data`` is exactly one whole head
        seen before, of a request without a body, and nothing else is
        buffered: the parse (``feed`` + ``next_event`` until its ``END``) is
        skipped, with the same outcome. None otherwise (nothing consumed:
        ``feed`` it). A keep-alive client repeating its request in one read
        is the common case this serves."""
        memo = self._memo
        # _END: the END event of the previous request (without a body) is
        # still to be taken; it changes nothing.
        if memo is None or self._buf or self._state == _BODY or data[-4:] != b"\r\n\r\n":
            return None
        request = memo.get(bytes(data[:-2]))
        if request is None or request.chunked or request.content_length:
            return None
        self._state = _HEAD
        self.head_size = len(data)
        return request

    @property
    def buffered(self) -> int:
        """Bytes received and not yet turned into events."""
        return len(self._buf)

    def take_buffered(self) -> bytes:
        """Remove and return the bytes received after the last complete message:
        what the client sent after a request that switched protocols
        (RFC 9110 §7.8, e.g. WebSocket frames right behind the handshake)."""
        data = bytes(self._buf)
        self._buf.clear()
        return data

    @property
    def in_head(self) -> bool:
        """Whether the parser is between messages or inside a request head."""
        return self._state == _HEAD

    def next_event(self) -> Event:
        """The next event, or ``NEED_DATA``. Raises ``HTTPError``."""
        state = self._state
        if state == _HEAD:
            return self._head()
        if state == _END:
            self._state = _HEAD
            return END
        reader = self._reader
        event = reader.read(self._buf)
        if reader.done:
            self._state = _HEAD if event is END else _END
        return event

    # -- head ---------------------------------------------------------------

    def _head(self) -> Event:
        buf = self._buf
        if buf and buf[0] in (13, 10):  # CR or LF
            # Empty lines before the request line are ignored (RFC 9112 §2.2).
            start = 0
            while buf[start : start + 2] == b"\r\n" or buf[start : start + 1] == b"\n":
                start += 2 if buf[start] == 13 else 1
            del buf[:start]
            self._scanned = 0
            if buf[:1] == b"\r" and len(buf) >= 2:
                raise HTTPError(400, "bare CR before the request line")
        scan = self._scanned
        end = buf.find(b"\n\r\n", scan)
        lf = buf.find(b"\n\n", scan, end + 2 if end >= 0 else len(buf))
        if lf >= 0 and (end < 0 or lf < end):
            end, skip = lf, 2
        else:
            skip = 3
        if end < 0:
            self._check_incomplete_head()
            self._scanned = max(0, len(buf) - 2)
            return NEED_DATA
        head = bytes(buf[: end + 1])
        self.head_size = end + skip  # bytes of this head as received ($request_length)
        del buf[: end + skip]
        self._scanned = 0
        memo = self._memo
        request = memo.get(head) if memo is not None else None
        if request is None:
            request = self._parse_head(head)
            if memo is not None and len(head) <= MEMO_HEAD:
                if len(memo) >= MEMO_ENTRIES:
                    memo.clear()
                memo[head] = request
        if request.chunked:
            self._state = _BODY
            self._reader = ChunkedReader()
        elif request.content_length:
            self._state = _BODY
            reader = self._length
            if reader is None:
                reader = self._length = LengthReader(request.content_length)
            else:
                reader.remaining = request.content_length
                reader.done = False
            self._reader = reader
        else:
            self._state = _END
        return request

    def _check_incomplete_head(self) -> None:
        # Fail as soon as the bytes so far cannot start a request, as NGINX
        # does: a TLS handshake or an HTTP/0.9 line gets its 400 at once
        # instead of holding the connection until the header timeout.
        buf = self._buf
        newline = buf.find(b"\n")
        end = newline if newline >= 0 else len(buf)
        space = buf.find(b" ", 0, end)
        method = bytes(buf[: space if space >= 0 else end])
        if method.translate(None, _TCHAR) not in (b"", b"\r"):  # "\r": a CRLF half-received
            raise HTTPError(400, "malformed method")
        if newline < 0:
            if len(buf) > MAX_REQUEST_LINE + 1:
                raise HTTPError(414, "request line too long")
        elif newline > MAX_REQUEST_LINE + 1:
            raise HTTPError(414, "request line too long")
        elif len(buf) - newline > MAX_FIELD_SECTION + 2:
            raise HTTPError(431, "header section too large")
        elif buf.count(b"\n") > MAX_FIELDS + 1:
            raise HTTPError(431, "too many header fields")
        if newline >= 0:
            line = bytes(buf[:newline]).rstrip(b"\r")
            if line.count(b" ") != 2 or not line.endswith((b" HTTP/1.1", b" HTTP/1.0")):
                self._request_line(line)  # raises the status a full parse would give

    def _parse_head(self, head: bytes) -> Request:
        size = len(head)
        # One pass over the whole head for the bytes no line may hold: CTLs
        # but HTAB, CR and LF, and DEL (RFC 9110 §5.5, RFC 9112 §2.2).
        if len(head.translate(None, _HEAD_CTL)) != size:
            raise HTTPError(400, "control character in the request head")
        if b"\r" in head:
            head = head.replace(b"\r\n", b"\n")
            if b"\r" in head:
                raise HTTPError(400, "bare CR in the request head")
        lines = head.split(b"\n")
        lines.pop()  # head ends with "\n": the last item is empty
        if len(lines) > MAX_FIELDS + 1:
            raise HTTPError(431, "too many header fields")
        line = lines[0]
        if len(line) > MAX_REQUEST_LINE:
            raise HTTPError(414, "request line too long")
        if size - len(line) > MAX_FIELD_SECTION + 2:
            raise HTTPError(431, "header section too large")
        method, target, version, http10 = self._request_line(line)

        fields: list[tuple[str, str]] = []
        index: dict[str, str] = {}
        for raw in lines[1:]:
            colon = raw.find(b":")
            if colon <= 0:
                raise HTTPError(400, "malformed header field line")
            name = raw[:colon]
            if name.translate(None, _TCHAR):
                # Whitespace before the colon, obs-fold, or a non-token byte.
                raise HTTPError(400, "invalid header field name")
            key = name.lower().decode("ascii")
            value = raw[colon + 1 :].strip(b" \t").decode("latin-1")
            fields.append((key, value))
            known = index.get(key)
            index[key] = value if known is None else f"{known}, {value}"
        return self._request(method, target, version, http10, Headers.parsed(fields, index), index)

    @staticmethod
    def _request_line(line: bytes) -> tuple[str, str, str, bool]:
        parts = line.split(b" ")
        if len(parts) != 3 or not parts[0] or not parts[1]:
            raise HTTPError(400, "malformed request line")
        method_bytes, target_bytes, version_bytes = parts
        if version_bytes == b"HTTP/1.1":
            http10 = False
        elif version_bytes == b"HTTP/1.0":
            http10 = True
        elif (
            len(version_bytes) == 8
            and version_bytes[:5] == b"HTTP/"
            and version_bytes[5:6].isdigit()
            and version_bytes[6:7] == b"."
            and version_bytes[7:8].isdigit()
        ):
            raise HTTPError(505, "HTTP version not supported")
        else:
            raise HTTPError(400, "malformed HTTP version")
        if len(target_bytes.translate(None, _TARGET_BAD)) != len(target_bytes):
            raise HTTPError(400, "invalid byte in the request-target")
        if not target_bytes.isascii():
            # Raw UTF-8 (curl sends /café as is): taken as its percent-encoding,
            # as NGINX takes it, rather than refused.
            target_bytes = b"".join(
                b"%%%02X" % byte if byte > 127 else bytes((byte,)) for byte in target_bytes
            )
        method = _KNOWN_METHODS.get(method_bytes)
        if method is None:
            if not _is_token(method_bytes):
                raise HTTPError(400, "malformed method")
            raise HTTPError(501, f"method {method_bytes.decode('ascii')} not implemented")
        return method, target_bytes.decode("ascii"), version_bytes.decode("ascii"), http10

    @staticmethod
    def _request(
        method: str,
        target: str,
        version: str,
        http10: bool,
        headers: Headers,
        index: dict[str, str],
    ) -> Request:
        get = index.get
        host = get("host")
        if host is None:
            if not http10:
                # Even with an absolute-form target (RFC 9112 §3.2; NGINX too).
                raise HTTPError(400, "missing Host")
        elif "," in host and len(headers.get_all("host")) > 1:
            raise HTTPError(400, "duplicate Host")
        if target[0] != "/":
            if target[:7].lower() == "http://" or target[:8].lower() == "https://":
                # The authority ends at the path, the query or a fragment: the
                # path may be empty (RFC 9112 §3.2.2, RFC 3986 §3.3).
                authority = target[target.index("//") + 2 :]
                for stop in _AUTHORITY_END:
                    authority = authority.partition(stop)[0]
                default_port = "80" if target[4] == ":" else "443"
                target_key = _authority(authority, default_port)
                if target_key is None:
                    raise HTTPError(400, "invalid authority in absolute-form target")
                if host is not None and _authority(host, default_port) != target_key:
                    raise HTTPError(400, "Host does not match the absolute-form target")
                host = authority
            elif target != "*" or method != "OPTIONS":
                raise HTTPError(400, "invalid request-target form")
        if host is None:
            host = ""  # HTTP/1.0 without Host: the default server block
        elif host and _authority(host, "") is None:
            raise HTTPError(400, "invalid Host")

        connection = get("connection")
        if connection is None:
            keep_alive = not http10
        else:
            tokens = {token.strip(" \t") for token in connection.lower().split(",")}
            keep_alive = "keep-alive" in tokens if http10 else "close" not in tokens

        content_length: int | None = None
        chunked = False
        transfer_encoding = get("transfer-encoding")
        length_field = get("content-length")
        if transfer_encoding is not None:
            if length_field is not None:
                raise HTTPError(400, "both Content-Length and Transfer-Encoding")
            if http10:
                raise HTTPError(400, "Transfer-Encoding in an HTTP/1.0 request")
            codings = [c.strip(" \t").lower() for c in transfer_encoding.split(",")]
            if codings != ["chunked"]:
                if not all(_is_token(c.encode("latin-1")) for c in codings):
                    raise HTTPError(400, "malformed Transfer-Encoding")
                if "chunked" in codings:
                    # chunked not last, or twice (RFC 9112 §6.1).
                    raise HTTPError(400, "chunked must be the final and only chunked coding")
                raise HTTPError(501, f"transfer coding {transfer_encoding!r} not implemented")
            chunked = True
        elif length_field is not None:
            values = {v.strip(" \t") for v in length_field.split(",")}
            if len(values) != 1:
                raise HTTPError(400, "conflicting Content-Length values")
            (value,) = values
            if not value.isdigit() or not value.isascii() or len(value) > 18:
                raise HTTPError(400, "invalid Content-Length")
            content_length = int(value)

        expect = get("expect")
        expect_continue = expect is not None and expect.lower() == "100-continue" and not http10
        return Request(
            method,
            target,
            version,
            headers,
            host,
            keep_alive,
            content_length,
            chunked,
            expect_continue,
        )
