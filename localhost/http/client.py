"""The client side of HTTP/1.1, sans-IO: a request writer and a response parser.

For a reverse proxy's upstream connections and for an HTTP client. Nothing
here touches a socket: the request writer returns bytes, the response parser
takes bytes and returns events, as ``localhost.http.parser`` does for
requests, with the same body readers (``LengthReader``, ``ChunkedReader``).

``ResponseParser`` events, one per ``next_event`` call:

- a ``ResponseHead`` for each response head: first any interim (1xx)
  responses, each directly followed by the next head, then the final one;
- ``Data`` for each piece of the body (de-chunked);
- ``END`` when the response is complete (right after a final head without a
  body), after which the next pipelined response may follow;
- ``NEED_DATA`` when it cannot go on without more bytes (never after
  ``feed_eof``).

Message body length of a response (RFC 9112 §6.3), in this order: none for
a response to HEAD, for 1xx, 204 and 304 (whatever its fields say), and for
a 2xx to CONNECT; chunked when Transfer-Encoding is ``chunked``; the
Content-Length; otherwise the body runs to the end of the connection
(``feed_eof``). A response can only be framed knowing the request's method:
each request sent is announced with ``expect_response(method)`` (or the
``method`` argument of the constructor), in order.

Errors: a response that cannot be framed safely raises ``HTTPError`` with
status 502 (Bad Gateway, RFC 9110 §15.6.3), the status a proxy answers for
an upstream's invalid response, whatever the cause (malformed status line
or fields, bad chunk framing, conflicting Content-Length, Content-Length
with Transfer-Encoding, a transfer coding other than chunked, a head over
the limits, the connection closed mid-response). ``detail`` says which.
After an error the connection's framing is lost: close it.

Leniency is the request parser's: CRLF or a bare LF ends a head line, a bare
CR is an error, chunked framing is strict. Limits (the request parser's
numbers): status line ``MAX_REQUEST_LINE`` bytes, header section
``MAX_FIELD_SECTION`` bytes and ``MAX_FIELDS`` lines, trailer sections and
chunk lines as for requests.
"""

from __future__ import annotations

from collections import deque

from localhost.http.errors import HTTPError
from localhost.http.message import Headers
from localhost.http.parser import (
    _HEAD_CTL,
    _TCHAR,
    END,
    MAX_FIELD_SECTION,
    MAX_FIELDS,
    MAX_REQUEST_LINE,
    MEMO_HEAD,
    NEED_DATA,
    ChunkedReader,
    Data,
    LengthReader,
    _Sentinel,
)
from localhost.http.writer import LAST_CHUNK as LAST_CHUNK  # re-exported for clients

BAD_GATEWAY = 502  # the status of every HTTPError the response parser raises
#: Response heads a memo remembers (each up to ``MEMO_HEAD`` bytes); it is
#: emptied when full. A backend's heads differ in Date every second.
MEMO_RESPONSES = 256

__all__ = [
    "BAD_GATEWAY",
    "END",
    "MEMO_RESPONSES",
    "LAST_CHUNK",
    "NEED_DATA",
    "CloseReader",
    "Data",
    "ResponseHead",
    "ResponseParser",
    "chunk",
    "request_head",
]


class ResponseHead:
    """A parsed response head (RFC 9112 §4).

    ``status`` is the three-digit code (100-599), ``reason`` the reason
    phrase (Latin-1 decoded, may be empty), ``version`` ``"HTTP/1.1"`` or
    ``"HTTP/1.0"``, ``headers`` the fields (names lower-case).
    ``keep_alive`` says whether the connection may carry another request
    after this response: HTTP/1.1 without ``Connection: close``, HTTP/1.0
    with ``Connection: keep-alive``, and never after a close-delimited body
    or a protocol switch (RFC 9112 §9.3). ``content_length`` is the
    Content-Length field's value (``None`` when absent), even where it
    frames no body (HEAD, 304); ``chunked`` is true for a chunked body.
    ``interim`` is true for a 1xx other than 101.
    """

    __slots__ = (
        "status",
        "reason",
        "version",
        "headers",
        "keep_alive",
        "content_length",
        "chunked",
        "interim",
    )

    def __init__(
        self,
        status: int,
        reason: str,
        version: str,
        headers: Headers,
        keep_alive: bool,
        content_length: int | None,
        chunked: bool,
    ) -> None:
        self.status = status
        self.reason = reason
        self.version = version
        self.headers = headers
        self.keep_alive = keep_alive
        self.content_length = content_length
        self.chunked = chunked
        #: Whether another head follows for the same request (1xx but 101).
        self.interim = status < 200 and status != 101

    def copy(self) -> ResponseHead:
        """A new head with the same values; ``headers`` is the same object."""
        return ResponseHead(
            self.status,
            self.reason,
            self.version,
            self.headers,
            self.keep_alive,
            self.content_length,
            self.chunked,
        )

    def __repr__(self) -> str:
        return f"<ResponseHead {self.version} {self.status} {self.reason}>"


Event = ResponseHead | Data | _Sentinel


class CloseReader:
    """A body delimited by the end of the connection (RFC 9112 §6.3, item 8)."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = False

    def read(self, buf: bytearray) -> Data | _Sentinel:
        """All of ``buf`` as ``Data``, or ``NEED_DATA``: only ``eof`` ends the body."""
        if not buf:
            return NEED_DATA
        data = bytes(buf)
        buf.clear()
        return Data(data)

    def eof(self) -> _Sentinel:
        """``END``: the closed connection is the end of the body."""
        self.done = True
        return END


_HEAD, _END, _BODY, _SWITCHED = range(4)
# Methods whose 2xx response turns the connection into a tunnel (RFC 9110 §9.3.6).
_TUNNEL_METHODS = frozenset({"CONNECT"})


class ResponseParser:
    """Parse the responses arriving on one client connection, in order.

    ``method`` (optional) is the method of the first request; every further
    request is announced with ``expect_response``. After a 101 (Switching
    Protocols) or a 2xx to CONNECT, the connection no longer carries HTTP:
    the head is followed by ``END``, ``switched`` turns true and
    ``take_buffered`` hands over the bytes that came after it; ``next_event``
    then returns ``NEED_DATA`` whatever is fed.

    ``in_head and buffered == 0 and outstanding == 0`` says the connection is
    idle: every response announced has been read whole.

    ``memo``, shared by the parsers of the connections to one backend,
    remembers the head parsed from each recent response head of up to
    ``MEMO_HEAD`` bytes (at most ``MEMO_RESPONSES``), as the request parser's
    memo does: parsing is a pure function of those bytes, and a backend
    repeats its heads byte for byte within a second (only Date and the
    length change from one resource to the next). Each response still gets
    its own ``ResponseHead``, but a remembered head's ``headers`` object is
    shared: its consumers must not change it.
    """

    __slots__ = (
        "_buf",
        "_state",
        "_reader",
        "_length",
        "_methods",
        "_eof",
        "_scanned",
        "_switch",
        "_memo",
    )

    def __init__(
        self, method: str | None = None, memo: dict[bytes, ResponseHead] | None = None
    ) -> None:
        self._memo = memo
        self._buf = bytearray()
        self._state = _HEAD
        self._reader: LengthReader | ChunkedReader | CloseReader = LengthReader(0)
        self._length: LengthReader | None = None
        self._methods: deque[str] = deque()
        if method is not None:
            self._methods.append(method)
        self._eof = False
        self._scanned = 0
        self._switch = False

    def expect_response(self, method: str) -> None:
        """Announce a request of ``method`` sent on the connection (one call per request)."""
        self._methods.append(method)

    def feed(self, data: bytes | memoryview) -> None:
        """Append received bytes (copied: ``data`` may be reused afterwards)."""
        self._buf += data

    def feed_eof(self) -> None:
        """The peer closed its side: a close-delimited body ends here; anything
        else unfinished is an error at the next ``next_event``."""
        self._eof = True

    @property
    def buffered(self) -> int:
        """Bytes received and not yet turned into events."""
        return len(self._buf)

    @property
    def in_head(self) -> bool:
        """Whether the parser is between responses or inside a response head.

        With ``buffered == 0`` too, nothing of a next response has arrived: a
        client may then retry an idempotent request on another connection
        when this one closes (RFC 9110 §9.2.2).
        """
        return self._state == _HEAD

    @property
    def outstanding(self) -> int:
        """Requests announced whose final response head has not arrived."""
        return len(self._methods)

    @property
    def idle(self) -> bool:
        """``in_head and buffered == 0 and outstanding == 0``: every response
        announced has been read whole, and nothing more has come."""
        return self._state == _HEAD and not self._buf and not self._methods

    @property
    def switched(self) -> bool:
        """Whether a 101 or a 2xx to CONNECT ended HTTP on the connection."""
        return self._state == _SWITCHED

    def take_buffered(self) -> bytes:
        """The bytes received and not parsed (after a protocol switch: the new protocol's)."""
        data = bytes(self._buf)
        self._buf.clear()
        return data

    def next_event(self) -> Event:
        """The next event, or ``NEED_DATA``. Raises ``HTTPError(502)``, also
        when called after ``feed_eof`` with nothing left to report."""
        state = self._state
        try:
            if state == _HEAD:
                return self._head()
            if state == _END:
                self._state = _SWITCHED if self._switch else _HEAD
                return END
            if state == _SWITCHED:
                return NEED_DATA
            reader = self._reader
            event = reader.read(self._buf)
            if event is NEED_DATA and self._eof:
                event = reader.eof()
            if reader.done:
                self._state = _HEAD if event is END else _END
            return event
        except HTTPError as exc:
            if exc.status == BAD_GATEWAY:
                raise
            raise HTTPError(BAD_GATEWAY, f"invalid response: {exc.detail}") from exc

    def whole_body(self) -> bytes | None:
        """The rest of the current response's body, when all of it has arrived.

        Called after a final head (or some ``Data``): for a body delimited by
        Content-Length that is all buffered, the bytes (``b""`` for a response
        without a body), the response then being complete (no further ``Data``
        nor ``END`` for it); None otherwise, changing nothing (the events
        follow). A proxy sends such a response whole, head and body in one
        write.
        """
        state = self._state
        if state == _END:
            if self._switch:
                return None
            self._state = _HEAD
            return b""
        reader = self._reader
        if state != _BODY or type(reader) is not LengthReader:
            return None
        remaining = reader.remaining
        buf = self._buf
        size = len(buf)
        if size < remaining:
            return None
        if size == remaining:
            body = bytes(buf)
            buf.clear()
        else:
            body = bytes(buf[:remaining])
            del buf[:remaining]
        reader.remaining = 0
        reader.done = True
        self._state = _HEAD
        return body

    # -- head ---------------------------------------------------------------

    def _head(self) -> Event:
        buf = self._buf
        scan = self._scanned
        end = buf.find(b"\n\r\n", scan)
        lf = buf.find(b"\n\n", scan, end + 2 if end >= 0 else len(buf))
        if lf >= 0 and (end < 0 or lf < end):
            end, skip = lf, 2
        else:
            skip = 3
        if end < 0:
            self._check_incomplete_head()
            if self._eof:
                if buf:
                    raise HTTPError(BAD_GATEWAY, "connection closed inside a response head")
                raise HTTPError(BAD_GATEWAY, "connection closed before a response")
            self._scanned = max(0, len(buf) - 2)
            return NEED_DATA
        if not self._methods:
            raise HTTPError(BAD_GATEWAY, "response with no request outstanding")
        head_bytes = bytes(buf[: end + 1])
        del buf[: end + skip]
        self._scanned = 0
        memo = self._memo
        known = memo.get(head_bytes) if memo is not None else None
        if known is None:
            head = self._parse_head(head_bytes)
            if memo is not None and len(head_bytes) <= MEMO_HEAD:
                if len(memo) >= MEMO_RESPONSES:
                    memo.clear()
                # A copy: the one returned may yet lose keep_alive (below).
                memo[head_bytes] = head.copy()
        else:
            head = known.copy()
        status = head.status
        if head.interim:
            return head  # the request still waits for its final response
        method = self._methods.popleft()
        if status == 101 or (200 <= status < 300 and method in _TUNNEL_METHODS):
            head.keep_alive = False
            self._state = _END
            self._switch = True
            return head
        if method == "HEAD" or status == 204 or status == 304:
            self._state = _END
        elif head.chunked:
            self._reader = ChunkedReader()
            self._state = _BODY
        elif head.content_length is not None:
            if head.content_length:
                # One reader per connection for bodies of this kind, reset for each.
                reader = self._length
                if reader is None:
                    reader = self._length = LengthReader(head.content_length)
                else:
                    reader.remaining = head.content_length
                    reader.done = False
                self._reader = reader
                self._state = _BODY
            else:
                self._state = _END
        else:
            head.keep_alive = False
            self._reader = CloseReader()
            self._state = _BODY
        return head

    def _check_incomplete_head(self) -> None:
        # Fail as soon as the bytes cannot start a response (an upstream that
        # speaks something else), or the head outgrows the limits.
        buf = self._buf
        start = bytes(buf[:5])
        if start != b"HTTP/"[: len(start)]:
            raise HTTPError(BAD_GATEWAY, "not an HTTP response")
        newline = buf.find(b"\n")
        if newline < 0:
            if len(buf) > MAX_REQUEST_LINE + 1:
                raise HTTPError(BAD_GATEWAY, "status line too long")
        elif newline > MAX_REQUEST_LINE + 1:
            raise HTTPError(BAD_GATEWAY, "status line too long")
        elif len(buf) - newline > MAX_FIELD_SECTION + 2:
            raise HTTPError(BAD_GATEWAY, "header section too large")
        elif buf.count(b"\n") > MAX_FIELDS + 1:
            raise HTTPError(BAD_GATEWAY, "too many header fields")

    def _parse_head(self, head: bytes) -> ResponseHead:
        size = len(head)
        if len(head.translate(None, _HEAD_CTL)) != size:
            raise HTTPError(BAD_GATEWAY, "control character in the response head")
        if b"\r" in head:
            head = head.replace(b"\r\n", b"\n")
            if b"\r" in head:
                raise HTTPError(BAD_GATEWAY, "bare CR in the response head")
        lines = head.split(b"\n")
        lines.pop()
        if len(lines) > MAX_FIELDS + 1:
            raise HTTPError(BAD_GATEWAY, "too many header fields")
        line = lines[0]
        if len(line) > MAX_REQUEST_LINE:
            raise HTTPError(BAD_GATEWAY, "status line too long")
        if size - len(line) > MAX_FIELD_SECTION + 2:
            raise HTTPError(BAD_GATEWAY, "header section too large")
        status, reason, version = _status_line(line)

        fields: list[tuple[str, str]] = []
        index: dict[str, str] = {}
        for raw in lines[1:]:
            colon = raw.find(b":")
            if colon <= 0 or raw[:colon].translate(None, _TCHAR):
                # Also whitespace before the colon and obs-fold (RFC 9112 §5.1, §5.2).
                raise HTTPError(BAD_GATEWAY, "malformed header field line")
            key = raw[:colon].lower().decode("ascii")
            value = raw[colon + 1 :].strip(b" \t").decode("latin-1")
            fields.append((key, value))
            known = index.get(key)
            index[key] = value if known is None else f"{known}, {value}"
        http10 = version == "HTTP/1.0"

        connection = index.get("connection")
        if connection is None:
            keep_alive = not http10
        else:
            tokens = {token.strip(" \t") for token in connection.lower().split(",")}
            keep_alive = "keep-alive" in tokens if http10 else "close" not in tokens

        chunked = False
        content_length: int | None = None
        transfer_encoding = index.get("transfer-encoding")
        length_field = index.get("content-length")
        if transfer_encoding is not None and status >= 200 and status != 204:
            if length_field is not None:
                # RFC 9112 §6.3 item 3: a smuggling or splitting attempt; NGINX refuses it too.
                raise HTTPError(BAD_GATEWAY, "both Content-Length and Transfer-Encoding")
            if http10:
                raise HTTPError(BAD_GATEWAY, "Transfer-Encoding in an HTTP/1.0 response")
            codings = [c.strip(" \t").lower() for c in transfer_encoding.split(",")]
            if codings != ["chunked"]:
                # Another coding could not be removed before passing the body on.
                raise HTTPError(BAD_GATEWAY, f"transfer coding {transfer_encoding!r} not supported")
            chunked = True
        elif length_field is not None:
            values = {v.strip(" \t") for v in length_field.split(",")}
            if len(values) != 1:
                raise HTTPError(BAD_GATEWAY, "conflicting Content-Length values")
            (value,) = values
            if not value.isdigit() or not value.isascii() or len(value) > 18:
                raise HTTPError(BAD_GATEWAY, "invalid Content-Length")
            content_length = int(value)
        return ResponseHead(
            status,
            reason,
            version,
            Headers.parsed(fields, index),
            keep_alive,
            content_length,
            chunked,
        )


def _status_line(line: bytes) -> tuple[int, str, str]:
    """``(status, reason, version)`` of ``HTTP-version SP status-code SP [ reason ]``
    (RFC 9112 §4). The SP after the code may be missing, as with many servers
    (and as h11 and NGINX accept)."""
    version_bytes, _, rest = line.partition(b" ")
    if version_bytes == b"HTTP/1.1":
        version = "HTTP/1.1"
    elif version_bytes == b"HTTP/1.0":
        version = "HTTP/1.0"
    else:
        raise HTTPError(BAD_GATEWAY, "malformed or unsupported HTTP version in the status line")
    code, space, reason = rest[:3], rest[3:4], rest[4:]
    if not (len(code) == 3 and code.isdigit() and space in (b"", b" ")) or code[:1] == b"0":
        raise HTTPError(BAD_GATEWAY, "malformed status code")
    status = int(code)
    if status < 100 or status > 599:
        raise HTTPError(BAD_GATEWAY, f"status code {status} out of range")
    return status, reason.decode("latin-1"), version


# -- request writer -------------------------------------------------------------

# Methods that define no meaning for a request body (RFC 9110 §9.3): an empty
# body is sent without Content-Length (RFC 9110 §8.6).
_NO_BODY_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
# Fields the writer produces itself: given by a caller, they could contradict the framing.
_OWN_FIELDS = frozenset({"host", "content-length", "transfer-encoding"})
_TARGET_BAD = bytes(range(33)) + b"\x7f"


def request_head(
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    *,
    host: str,
    body_length: int | None,
) -> bytes:
    """The request line and header section of an HTTP/1.1 request, ending in CRLF CRLF.

    ``target`` is the request-target as sent (origin-form ``/path?query``,
    absolute-form, ``*`` or an authority for CONNECT: RFC 9112 §3.2), ASCII.
    Host comes first, from ``host`` (RFC 9112 §3.2), then ``headers`` in
    order, then the framing field: ``Content-Length`` for a ``body_length``
    in bytes (none for an empty body of a method that defines no body,
    such as GET: RFC 9110 §8.6), ``Transfer-Encoding: chunked`` when it is
    ``None`` (unknown; send the body with ``chunk`` and ``LAST_CHUNK``).

    Raises ``ValueError`` when the method or a field name is not a token
    (RFC 9110 §5.1, §9.1), the target is empty or holds a control
    character, space or non-ASCII, ``host`` or a value holds CR, LF or NUL
    (RFC 9110 §5.5) or a character outside Latin-1, ``headers`` has a Host,
    Content-Length or Transfer-Encoding field (the writer's own), or
    ``body_length`` is negative.
    """
    method_bytes = method.encode("ascii")  # UnicodeEncodeError is a ValueError
    if not method_bytes or method_bytes.translate(None, _TCHAR):
        raise ValueError(f"method is not a token: {method!r}")
    target_bytes = target.encode("ascii")
    if not target_bytes or target_bytes.translate(None, _TARGET_BAD) != target_bytes:
        raise ValueError(f"invalid request-target: {target!r}")
    lines = [b"%s %s HTTP/1.1\r\n" % (method_bytes, target_bytes), b"Host: %s\r\n" % _value(host)]
    for name, value in headers:
        name_bytes = name.encode("ascii")
        if not name_bytes or name_bytes.translate(None, _TCHAR):
            raise ValueError(f"field name is not a token: {name!r}")
        if name.lower() in _OWN_FIELDS:
            raise ValueError(f"the {name} field is written from the arguments")
        lines.append(b"%s: %s\r\n" % (name_bytes, _value(value)))
    if body_length is None:
        lines.append(b"Transfer-Encoding: chunked\r\n")
    elif body_length < 0:
        raise ValueError(f"negative body length: {body_length}")
    elif body_length or method not in _NO_BODY_METHODS:
        lines.append(b"Content-Length: %d\r\n" % body_length)
    lines.append(b"\r\n")
    return b"".join(lines)


def _value(value: str) -> bytes:
    if "\r" in value or "\n" in value or "\0" in value:
        raise ValueError(f"CR, LF or NUL in a field value: {value!r}")
    return value.encode("latin-1")


def chunk(data: bytes) -> bytes:
    """``data`` as one chunk of a chunked body (RFC 9112 §7.1); ``b""`` for
    empty ``data``, which as a chunk would be the last one (``LAST_CHUNK``)."""
    if not data:
        return b""
    return b"%x\r\n%b\r\n" % (len(data), data)
