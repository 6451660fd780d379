"""The CGI response parser (RFC 3875 §6), sans-IO.

A script writes header fields, an empty line, then the body. ``feed`` takes
bytes from the script's stdout and returns the body bytes that follow the
header; once the header is complete, ``head`` holds it. Lines end in LF or
CRLF. A malformed header raises ``CGIError`` (the server answers 502).

Response kinds (§6.2): a *document* (Content-Type, optional
``Status: NNN reason``), a *local redirect* (only ``Location: /path``: the
server serves that path itself), a *client redirect* (``Location`` with an
absolute URI: 302 unless Status says otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from localhost.limits import LIMITS

MAX_HEADER = LIMITS.cgi_max_header_bytes  # of the header section → CGIError beyond
_TCHAR = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_VALUE_CTL = bytes(c for c in range(32) if c != 9) + b"\x7f"
# Hop-by-hop and framing fields are the server's business, not the script's.
_DROPPED = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "status",
        "upgrade",
        "te",
        "trailer",
        "proxy-connection",
    }
)


class CGIError(ValueError):
    """The script's output is not a valid CGI response header."""


@dataclass
class CGIHead:
    """A parsed CGI response header.

    ``status`` is the HTTP status to send; ``fields`` are the fields to pass
    on (framing and hop-by-hop fields removed); ``content_length`` is the
    script's Content-Length, if it gave one; ``local_redirect`` is the path
    of a local redirect.
    """

    status: int = 200
    fields: list[tuple[str, str]] = field(default_factory=list)
    content_length: int | None = None
    local_redirect: str | None = None


class CGIResponseParser:
    """Incremental parser of a script's stdout."""

    __slots__ = ("_buf", "_scanned", "head")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._scanned = 0
        self.head: CGIHead | None = None

    def feed(self, data: bytes) -> bytes:
        """Take stdout bytes; return the body bytes available (``b""`` until the
        header is complete). Raises ``CGIError``."""
        if self.head is not None:
            return data
        buf = self._buf
        buf += data
        end, skip = self._find_end()
        if end < 0:
            if len(buf) > MAX_HEADER:
                raise CGIError("header section too large")
            return b""
        if end > MAX_HEADER:
            raise CGIError("header section too large")
        self.head = _parse(bytes(buf[:end]))
        body = bytes(buf[end + skip :])
        buf.clear()
        return body

    def _find_end(self) -> tuple[int, int]:
        """Index where the empty line starts, and its length; (-1, 0) if not yet."""
        buf = self._buf
        if buf[:1] == b"\n":
            return 0, 1
        if buf[:2] == b"\r\n":
            return 0, 2
        index = buf.find(b"\n", self._scanned)
        while index >= 0:
            rest = buf[index + 1 : index + 3]
            if rest[:1] == b"\n":
                return index + 1, 1
            if rest == b"\r\n":
                return index + 1, 2
            if rest == b"" or rest == b"\r":
                self._scanned = index  # look at this line end again with more bytes
                return -1, 0
            index = buf.find(b"\n", index + 1)
        self._scanned = len(buf)
        return -1, 0


def _parse(header: bytes) -> CGIHead:
    head = CGIHead()
    status: int | None = None
    location: str | None = None
    content_type = False
    other = False
    for raw in header.split(b"\n"):
        line = raw[:-1] if raw[-1:] == b"\r" else raw
        if not line:
            continue
        colon = line.find(b":")
        if colon <= 0 or line[:colon].translate(None, _TCHAR):
            raise CGIError(f"malformed header line {line[:80]!r}")
        value_bytes = line[colon + 1 :].strip(b" \t")
        if len(value_bytes.translate(None, _VALUE_CTL)) != len(value_bytes):
            raise CGIError("control character in a header value")
        name = line[:colon].decode("ascii").lower()
        value = value_bytes.decode("latin-1")
        if name == "status":
            code = value[:3]
            if not code.isdigit() or not 100 <= int(code) <= 599 or value[3:4] not in ("", " "):
                raise CGIError(f"invalid Status {value!r}")
            status = int(code)
        elif name == "content-length":
            if not value.isdigit() or not value.isascii():
                raise CGIError(f"invalid Content-Length {value!r}")
            head.content_length = int(value)
        elif name == "location":
            location = value
        else:
            if name == "content-type":
                content_type = True
            else:
                other = True
        if name not in _DROPPED:
            head.fields.append((line[:colon].decode("ascii"), value))
    if location is not None:
        if location.startswith("/") and status is None and not content_type and not other:
            head.local_redirect = location
            return head
        # A client redirect; with other fields a local path is sent on as such.
        head.status = status if status is not None else 302
        return head
    if status is None and not content_type:
        raise CGIError("no Content-Type, Status or Location field")
    head.status = status if status is not None else 200
    return head
