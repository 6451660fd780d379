"""A small blocking HTTP/1.1 client for scripts: ``localhost.client.request``.

The same request writer and sans-IO response parser as the reverse proxy
(``localhost.http.client``), over a plain blocking socket::

    from localhost import client

    with client.request("GET", "http://127.0.0.1:8080/big.bin") as response:
        print(response.status, response.headers.get("content-type"))
        for piece in response.iter_bytes():     # streamed, never all in memory
            sink.write(piece)

    response = client.request("POST", "http://127.0.0.1:8080/api", body=b"{}",
                              headers=[("Content-Type", "application/json")])
    data = response.read()                      # the whole body, then closed

One connection per request (``Connection: close``), no redirects followed,
no cookies, no proxy; ``https://`` URLs use the system's certificates
(``ssl.create_default_context``). The body of a response is de-chunked;
for a response to HEAD, and for 1xx, 204 and 304, it is empty
(RFC 9112 §6.3).

Errors: ``ValueError`` for a URL that is not ``http://`` or ``https://``
or a field the writer refuses (CR, LF, NUL; Host, Content-Length or
Transfer-Encoding given by the caller); ``OSError`` for connection
failures (``TimeoutError`` after ``timeout`` seconds without progress on
any one socket operation); ``ResponseError`` (an ``OSError``) for a
response that cannot be parsed or ends early.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import BinaryIO, Protocol, runtime_checkable
from urllib.parse import urlsplit

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
from localhost.http.message import Headers

__all__ = ["Response", "ResponseError", "request"]

#: Bytes read from the socket at a time (and the largest piece ``iter_bytes`` yields).
READ_SIZE = 64 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}

Body = bytes | bytearray | memoryview | Iterable[bytes] | BinaryIO | None


class ResponseError(OSError):
    """The response could not be read: malformed, or the connection ended early."""


class Response:
    """A response whose body is read from the connection on demand.

    ``status`` (int), ``reason`` (str), ``version`` (``"HTTP/1.1"`` or
    ``"HTTP/1.0"``), ``headers`` (``Headers``: case-insensitive, ``get``,
    ``get_all``). Read the body once, with ``read()`` or ``iter_bytes()``;
    either closes the connection at its end. Use it as a context manager (or
    call ``close``) when you may stop early.
    """

    def __init__(self, sock: socket.socket, parser: ResponseParser, head: ResponseHead) -> None:
        self._sock: socket.socket | None = sock
        self._parser = parser
        self.status = head.status
        self.reason = head.reason
        self.version = head.version
        self.headers: Headers = head.headers
        self._done = False

    def iter_bytes(self) -> Iterator[bytes]:
        """The body in pieces as they arrive (at most ``READ_SIZE`` bytes each).

        Raises ``ResponseError`` when the body is malformed or cut short.
        """
        try:
            while not self._done:
                event = _next(self._parser)
                if event is NEED_DATA:
                    _receive(self._sock, self._parser)
                elif event is END:
                    self._done = True
                elif isinstance(event, Data):
                    yield event.data
        finally:
            self.close()

    def __iter__(self) -> Iterator[bytes]:
        return self.iter_bytes()

    def read(self) -> bytes:
        """The whole (remaining) body."""
        return b"".join(self.iter_bytes())

    def close(self) -> None:
        """Close the connection (what is left of the body is not read)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


def request(
    method: str,
    url: str,
    *,
    headers: Iterable[tuple[str, str]] | dict[str, str] | None = None,
    body: Body = None,
    timeout: float = 30.0,
    context: ssl.SSLContext | None = None,
) -> Response:
    """Send one request and return its response once the head has arrived.

    ``url``: ``http://HOST[:PORT]/PATH?QUERY`` (or ``https://``; ``context``
    overrides the default TLS context). ``headers``: extra fields, in
    order. ``body``: bytes (sent with Content-Length), a binary file or an
    iterable of bytes (sent chunked, streamed as produced), or None.
    ``timeout``: seconds for connecting and for each read or write.

    Interim (1xx) responses are skipped. Raises ``ValueError``, ``OSError``
    or ``ResponseError`` (see the module).
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an http:// or https:// URL: {url!r}")
    port = parts.port or _DEFAULT_PORTS[scheme]
    host = parts.hostname
    authority = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        authority += f":{parts.port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    fields = list(headers.items()) if isinstance(headers, dict) else list(headers or ())
    fields.append(("Connection", "close"))
    data: bytes | None = None
    length: int | None = 0
    pieces: Iterable[bytes] = ()
    if isinstance(body, bytes | bytearray | memoryview):
        data = bytes(body)
        length = len(data)
    elif body is not None:
        length = None
        pieces = _file_pieces(body) if isinstance(body, _Readable) else body
    head = request_head(method, target, fields, host=authority, body_length=length)

    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        if scheme == "https":
            sock = (context or ssl.create_default_context()).wrap_socket(sock, server_hostname=host)
        sock.settimeout(timeout)
        if data is not None:
            sock.sendall(head + data)
        else:
            sock.sendall(head)
            if length is None:
                for piece in pieces:
                    if piece:
                        sock.sendall(chunk(bytes(piece)))
                sock.sendall(LAST_CHUNK)
        parser = ResponseParser(method)
        while True:
            event = _next(parser)
            if event is NEED_DATA:
                _receive(sock, parser)
            elif isinstance(event, ResponseHead) and not event.interim:
                return Response(sock, parser, event)
    except BaseException:
        sock.close()
        raise


@runtime_checkable
class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def _file_pieces(file: _Readable) -> Iterator[bytes]:
    while piece := file.read(READ_SIZE):
        yield piece


def _next(parser: ResponseParser) -> object:
    try:
        return parser.next_event()
    except HTTPError as exc:
        raise ResponseError(exc.detail) from None


def _receive(sock: socket.socket | None, parser: ResponseParser) -> None:
    if sock is None:
        raise ResponseError("the response was closed")
    data = sock.recv(READ_SIZE)
    if data:
        parser.feed(data)
    else:
        parser.feed_eof()
