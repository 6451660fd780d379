"""The HTTP/1.1 response writer: framing decisions and head bytes, sans-IO.

Everything here is a pure function of a response and the request it
answers; the protocol (``server/http1.py``) only moves the bytes.

Framing (RFC 9112 §6.1-§6.3, RFC 9110 §6.4.1):

- no body at all for a response to HEAD, a 1xx, 204 or 304; a 204 and a
  1xx carry no Content-Length either (RFC 9110 §8.6), a 304 may not (we send none);
- a known length goes out with ``Content-Length``;
- an unknown length is chunked on HTTP/1.1, and delimited by closing the
  connection on HTTP/1.0 (which has no chunked coding).

``Connection: close`` is written when the connection will close after the
response, ``Connection: keep-alive`` for a persistent HTTP/1.0 connection
(RFC 9112 §9.3), nothing otherwise.

A field a handler produced that holds CR, LF or NUL in its name or value
would split the head and let a value forge fields or a second response
(RFC 9110 §5.5: such octets are invalid). ``encode_fields`` refuses it with
``ValueError``; the protocol then answers 500 instead of the response.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from localhost.http.message import STATUS_LINES, Response, date_field, status_line

CHUNKED = b"Transfer-Encoding: chunked\r\n"
LAST_CHUNK = b"0\r\n\r\n"
_CLOSE = b"Connection: close\r\n\r\n"
_KEEP_ALIVE_10 = b"Connection: keep-alive\r\n\r\n"
_END = b"\r\n"

# The Date and Server lines of the current second, as date_field made them:
# a response in the same second reads them here without a call.
_date_second = -1
_date_lines = b""


def encode_fields(fields: Sequence[tuple[str, str]]) -> bytes:
    """``Name: value\\r\\n`` lines as bytes (Latin-1; characters outside it become ``?``).

    Raises ``ValueError`` when a name or value holds CR, LF or NUL, or a
    name is empty (RFC 9110 §5.1, §5.5).
    """
    if not fields:
        return b""
    text = "".join([f"{name}: {value}\r\n" for name, value in fields])
    count = len(fields)
    # Each line ends in exactly one CRLF: any other CR or LF came from a field.
    if text.count("\n") != count or text.count("\r") != count or "\0" in text:
        raise ValueError(f"CR, LF or NUL in a response field: {_culprit(fields)!r}")
    for name, _ in fields:
        if not name:
            raise ValueError("empty response field name")
    return text.encode("latin-1", "replace")


def _culprit(fields: Sequence[tuple[str, str]]) -> str:
    for name, value in fields:
        if any(c in name or c in value for c in "\r\n\0"):
            return name
    return ""


def has_body(status: int, method: str) -> bool:
    """Whether a response of ``status`` to ``method`` carries a body (RFC 9110 §6.4.1)."""
    return method != "HEAD" and status >= 200 and status != 204 and status != 304


def stream_framing(status: int, length: int | None, http10: bool) -> tuple[bytes, bool]:
    """The framing field of a response whose body follows the head, and whether it is chunked.

    ``length`` is the body's length in bytes, or None when unknown. Returns
    ``(field lines, chunked)``: ``Content-Length`` for a known length,
    nothing for a 1xx/204/304 or a close-delimited HTTP/1.0 body,
    ``Transfer-Encoding: chunked`` otherwise. A response to HEAD keeps the
    framing field a GET would get (RFC 9110 §9.3.2) and sends no body.
    """
    if status < 200 or status == 204 or status == 304:
        return b"", False
    if length is not None:
        return b"Content-Length: %d\r\n" % length, False
    if http10:
        return b"", False
    return CHUNKED, True


def response_head(
    response: Response,
    keep_alive: bool,
    http10: bool,
    framing: bytes | None = None,
    extra: Sequence[tuple[str, str]] | None = None,
) -> bytes:
    """The status line and header section of ``response``, ending in CRLF CRLF.

    Adds Date, Server, the framing field and the Connection field.
    ``framing`` is the framing field of a streamed body (from
    ``stream_framing``); by default it is the Content-Length of the whole
    ``response`` (none on 1xx, 204 and 304). ``extra`` fields follow the
    response's own (which are never modified: handlers may share them).
    ``response.raw_fields`` (already encoded, Content-Length included) is
    used as it is for a whole response. Raises ``ValueError`` for a field
    with CR, LF or NUL.
    """
    raw = response.raw_fields
    status = response.status
    if raw is not None and framing is None:
        fields = raw
    else:
        fields = encode_fields(response.headers)
        if framing is not None:
            fields += framing
        elif status >= 200 and status != 204 and status != 304:
            fields += b"Content-Length: %d\r\n" % response.content_length
    if extra:
        fields += encode_fields(extra)
    if not keep_alive:
        end = _CLOSE
    elif http10:
        end = _KEEP_ALIVE_10
    else:
        end = _END
    global _date_second, _date_lines
    now = int(time.time())
    if now != _date_second:
        _date_lines = date_field()
        _date_second = now
    return b"".join((STATUS_LINES.get(status) or status_line(status), _date_lines, fields, end))


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (RFC 9112 §7.1); ``data`` must not be empty."""
    return b"%x\r\n%b\r\n" % (len(data), data)
