"""Request and response objects, and the bytes of a response head.

``Request`` is what the parser produces for a request head. ``Response`` is
what handlers return: a status, header fields, and a body that is either
bytes in memory or a ``FileBody`` region sent with ``os.sendfile``.
``localhost.http.writer`` turns a response into the bytes of its status
line and header section (RFC 9112 §4, §5), with the ``Date`` (RFC 9110
§6.6.1) and ``Server`` fields made here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

from localhost import SERVER_SOFTWARE
from localhost.io.body import FileBody as FileBody  # re-exported: handlers build bodies


class Headers:
    """Header fields, case-insensitive and multi-valued, in arrival order.

    Names are stored lower-case. ``get`` returns repeated fields joined with
    ``", "`` (RFC 9110 §5.3); ``get_all`` returns each value.
    """

    __slots__ = ("_fields", "_index")

    def __init__(self, fields: list[tuple[str, str]] | None = None) -> None:
        self._fields: list[tuple[str, str]] = []
        self._index: dict[str, str] = {}
        for name, value in fields or ():
            self.add(name, value)

    @classmethod
    def parsed(cls, fields: list[tuple[str, str]], index: dict[str, str]) -> Headers:
        """Headers from the parser's lists: ``fields`` with lower-case names, and
        ``index`` of combined values (taken as they are, not copied)."""
        headers = cls.__new__(cls)
        headers._fields = fields
        headers._index = index
        return headers

    def add(self, name: str, value: str) -> None:
        """Append a field; ``name`` may be in any case."""
        name = name.lower()
        self._fields.append((name, value))
        known = self._index.get(name)
        self._index[name] = value if known is None else f"{known}, {value}"

    def get(self, name: str, default: str | None = None) -> str | None:
        """The combined value of ``name`` (lower-case), or ``default``."""
        return self._index.get(name, default)

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name`` (lower-case), in order."""
        return [value for field, value in self._fields if field == name]

    def has_any(self, names: frozenset[str]) -> bool:
        """Whether any of ``names`` (lower-case) is present."""
        return not names.isdisjoint(self._index)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"Headers({self._fields!r})"


class Request:
    """A parsed request head (RFC 9112 §3, §5).

    ``target`` is the request-target as sent (``str``, ASCII); ``host`` is the
    authority from an absolute-form target or the Host field, without
    validation of the port; ``content_length`` is ``None`` unless the body is
    delimited by Content-Length; ``chunked`` is true for a chunked body.
    ``path`` and ``query`` are filled in by the router from ``target``.
    ``located`` is the pipeline's memo of where the request went last time
    (``Pipeline._start``): a remembered head comes back often.
    """

    __slots__ = (
        "method",
        "target",
        "version",
        "headers",
        "host",
        "keep_alive",
        "content_length",
        "chunked",
        "expect_continue",
        "path",
        "query",
        "located",
    )

    def __init__(
        self,
        method: str,
        target: str,
        version: str,
        headers: Headers,
        host: str,
        keep_alive: bool,
        content_length: int | None,
        chunked: bool,
        expect_continue: bool,
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.host = host
        self.keep_alive = keep_alive
        self.content_length = content_length
        self.chunked = chunked
        self.expect_continue = expect_continue
        self.path = ""
        self.query = ""
        self.located: Any = None

    @property
    def has_body(self) -> bool:
        """Whether a message body follows the head (RFC 9112 §6.3)."""
        return self.chunked or bool(self.content_length)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target} {self.version}>"


class Response:
    """A response from a handler: status, fields and a body.

    ``body`` holds the bytes of an in-memory body; ``file`` (when set) is the
    body instead; ``parts`` (when set) is a body made of bytes and file
    regions in order (multipart/byteranges). ``close`` asks for the
    connection to close after it. ``raw_fields``, when set, is ``headers``
    already encoded, Content-Length included (for cached responses).
    ``variants``, when set, is where the open-file cache keeps the encoded
    variants of the cached file this response sends (content codings,
    ``localhost.modules.compression``).
    """

    __slots__ = ("status", "headers", "body", "file", "parts", "close", "raw_fields", "variants")

    def __init__(
        self,
        status: int,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        file: FileBody | None = None,
        close: bool = False,
        parts: list[bytes | FileBody] | None = None,
        raw_fields: bytes | None = None,
        variants: Any = None,
    ) -> None:
        self.status = status
        self.raw_fields = raw_fields
        self.variants = variants
        self.headers = headers if headers is not None else []
        self.body = body
        self.file = file
        self.parts = parts
        self.close = close

    @property
    def content_length(self) -> int:
        """Length of the body in bytes."""
        if self.file is not None:
            return self.file.count
        if self.parts is not None:
            return sum(p.count if isinstance(p, FileBody) else len(p) for p in self.parts)
        return len(self.body)

    def release(self) -> None:
        """Close the files of a body that will not be sent."""
        if self.file is not None:
            self.file.close()
        for part in self.parts or ():
            if isinstance(part, FileBody):
                part.close()


# Reason phrases of RFC 9110 §15. Python before 3.13 still has the RFC 7231
# names of these four (413 "Request Entity Too Large", 414 "Request-URI Too
# Long", 416 "Requested Range Not Satisfiable", 422 "Unprocessable Entity");
# codes RFC 9110 does not define keep Python's phrase.
_RFC9110_PHRASES = {
    413: "Content Too Large",
    414: "URI Too Long",
    416: "Range Not Satisfiable",
    422: "Unprocessable Content",
}
REASONS: dict[int, str] = {status.value: status.phrase for status in HTTPStatus}
REASONS.update(_RFC9110_PHRASES)

# Status lines are precomputed once; unknown codes get an empty reason phrase
# (RFC 9112 §4 allows it).
STATUS_LINES: dict[int, bytes] = {
    code: f"HTTP/1.1 {code} {phrase}\r\n".encode("latin-1") for code, phrase in REASONS.items()
}


def status_line(status: int) -> bytes:
    """``HTTP/1.1 CODE REASON\\r\\n`` for ``status`` (RFC 9112 §4; RFC 9110 §15 phrases)."""
    line = STATUS_LINES.get(status)
    if line is None:
        line = f"HTTP/1.1 {status} \r\n".encode("latin-1")
    return line


def reason(status: int) -> str:
    """The RFC 9110 reason phrase of ``status`` (``""`` when unknown)."""
    return REASONS.get(status, "")


_date_second = -1
_date_field = b""


def date_field() -> bytes:
    """``Date: <IMF-fixdate>\\r\\nServer: ...\\r\\n``, formatted once per second."""
    global _date_second, _date_field
    now = int(time.time())
    if now != _date_second:
        _date_second = now
        _date_field = (
            f"Date: {formatdate(now, usegmt=True)}\r\nServer: {SERVER_SOFTWARE}\r\n".encode(
                "latin-1"
            )
        )
    return _date_field


def encode_fields(fields: list[tuple[str, str]]) -> bytes:
    """Field lines ``Name: value\r\n`` as bytes (Latin-1, others replaced)."""
    return "".join([f"{name}: {value}\r\n" for name, value in fields]).encode("latin-1", "replace")
