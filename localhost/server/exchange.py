"""One request and the API its handler answers through.

An ``Exchange`` is made by the protocol for each request head and handed to
the pipeline, which picks the handler. The handler answers with ``send`` (a
whole response) or ``start`` + ``write``... + ``finish`` (a streamed one),
or gives up with ``abort``. After ``send``, ``finish`` or ``abort`` the
exchange is *done* and inert: every later call is ignored (a ``Response``
given to ``send`` then has its files closed), so a handler that acts late
(a CGI pipe event after the client went away, a timer) can never touch the
next request on the same connection.

The per-response state (framing, log figures) lives here rather than in the
connection; the protocol reads it directly.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, BinaryIO

from localhost.http.message import Request, Response

if TYPE_CHECKING:
    from localhost.config.model import Location, ServerBlock
    from localhost.io.loop import EventLoop
    from localhost.server.http1 import HTTP1Protocol


class Exchange:
    """One request and its response API. Inert after ``finish``/``abort``/``send``.

    Attributes: ``request`` (the parsed head; replaced by ``internal_redirect``),
    ``server`` (the virtual host), ``location`` (set by the pipeline), ``peer``
    and ``local`` (``(host, port)``), ``scheme`` (``"http"``), ``session``
    (the session id, set by the pipeline), ``extra_headers`` (fields added to
    the response, e.g. Set-Cookie), ``services`` (the worker's ``Services``),
    ``loop`` (the worker's ``EventLoop``), ``body`` (the spooled body under
    ``BodyPolicy.SPOOL``: a binary file at position 0), ``done``.
    """

    __slots__ = (
        "request",
        "server",
        "location",
        "peer",
        "local",
        "scheme",
        "session",
        "extra_headers",
        "services",
        "loop",
        "body",
        "captures",
        "header_filter",
        "compression",
        "encoder",
        "rewritten",
        "cleanups",
        "request_id",
        "head_bytes",
        "head_sent",
        "response_headers",
        "done",
        "redirects",
        "started",
        "chunked",
        "head_only",
        "keep_alive",
        "log_status",
        "log_bytes",
        "start_time",
        "_protocol",
    )

    def __init__(
        self,
        protocol: HTTP1Protocol,
        request: Request,
        server: ServerBlock,
        services: Any,
        loop: EventLoop,
        start_time: float,
    ) -> None:
        self._protocol = protocol
        self.request = request
        self.server = server
        self.location: Location | None = None
        self.peer: tuple[str, int] = protocol.peer
        self.local: tuple[str, int] = protocol.local
        self.scheme = "http"
        self.session: str | None = None
        self.extra_headers: list[tuple[str, str]] = []
        self.services = services
        self.loop = loop
        self.body: BinaryIO | None = None
        #: The match of the location's regex (``$1``..., named groups), if one chose it.
        self.captures: re.Match[str] | None = None
        #: The location's response header filter (add_header, expires), if any.
        self.header_filter: Any = None
        #: Set by the compression module's header filter for the response
        #: being sent (``localhost.modules.compression.Compression``).
        self.compression: Any = None
        #: The encoder of a streamed response's body (a content coding), if any.
        self.encoder: Any = None
        self.rewritten = False  # a rewrite asked to choose the location again
        #: Callables run once when the exchange ends, answered or not (a
        #: module's release of what it holds for the request: limit_conn).
        self.cleanups: list[Any] | None = None
        # For the variables (localhost.variables) and the logs:
        self.request_id: str | None = None  # $request_id, made on first use
        self.head_bytes = 0  # of the request head as received ($request_length)
        self.head_sent = 0  # of the response head ($bytes_sent)
        #: The response's fields as sent ($sent_http_NAME); None before the head.
        self.response_headers: list[tuple[str, str]] | None = None
        self.done = False
        self.redirects = 0
        self.started = False  # a streamed response's head is out
        self.chunked = False
        self.head_only = False  # no body bytes go out (HEAD, 204, 304)
        self.keep_alive = False
        self.log_status = 0
        self.log_bytes = 0
        self.start_time = start_time

    @property
    def uri(self) -> str | None:
        """``$uri``: the request's current path (rewrites give a new request)."""
        return None

    @property
    def sent_bytes(self) -> int:
        """``$bytes_sent``: bytes of the response sent so far, head and body."""
        return self.head_sent + self.log_bytes

    @property
    def connection_id(self) -> int:
        """``$connection``: the connection's serial number in this worker."""
        return int(getattr(self._protocol, "number", 0))

    @property
    def connection_requests(self) -> int:
        """``$connection_requests``: requests on this connection so far, this one included."""
        return int(getattr(self._protocol, "requests", 1))

    def send(self, response: Response) -> None:
        """Send ``response`` whole (its body: ``body``, ``file`` or ``parts``)."""
        if self.done or self.started:
            response.release()
            return
        self.done = True
        self._protocol.send(self, response)

    def start(self, response: Response, length: int | None) -> None:
        """Send the head of ``response``; its body follows through ``write``.

        ``length`` is the body's length in bytes when known (Content-Length);
        otherwise the body is chunked on HTTP/1.1 and delimited by closing the
        connection on HTTP/1.0 (RFC 9112 §6.3).
        """
        if self.done or self.started:
            return
        self.started = True
        self._protocol.start(self, response, length)

    def write(self, data: bytes) -> bool:
        """Queue body bytes of a started response.

        Returns False when the connection holds more than its high-water mark
        (or the exchange is done): stop producing until the handler's
        ``on_writable``.
        """
        if self.done or not self.started:
            return False
        return self._protocol.write(self, data)

    def finish(self) -> None:
        """End a started response."""
        if self.done or not self.started:
            return
        self.done = True
        self._protocol.finish(self)

    def abort(self, reason: str = "aborted") -> None:
        """Drop the connection: the response cannot be completed (``reason``
        is what the connection's teardown hooks are told)."""
        if self.done:
            return
        self.done = True
        self._protocol.abort(self, reason)

    def internal_redirect(self, target: str) -> None:
        """Serve ``target`` as a GET in place of this request (a CGI local redirect).

        More than five in a row answer 500, as a cycle.
        """
        if self.done or self.started:
            return
        self._protocol.internal_redirect(self, target)

    def upgrade(self, response: Response, protocol: Callable[[], Any]) -> bool:
        """Switch the connection to another protocol (RFC 9110 §7.8, a 101).

        ``response`` is the 101 (its fields: Upgrade, Connection, and the new
        protocol's own, e.g. Sec-WebSocket-Accept); once it is queued the
        connection belongs to ``protocol()``, which gets ``connection_made``
        with the transport and then, through ``data_received``, any bytes the
        client sent after the request. The exchange is logged (status 101)
        and ends. False (nothing sent) when the exchange is over, its head is
        out, or the request still has a body to come.
        """
        if self.done or self.started:
            return False
        return self._protocol.upgrade(self, response, protocol)

    def resume_body(self) -> None:
        """Deliver the body again after the handler's ``on_body`` returned False."""
        if not self.done:
            self._protocol.resume_body(self)

    def __repr__(self) -> str:
        return f"<Exchange {self.request!r}{' done' if self.done else ''}>"


def filtered(
    exchange: Exchange,
    response: Response,
    extra: list[tuple[str, str]],
    internal_error: Callable[[Exchange], Response],
) -> tuple[Response, list[tuple[str, str]], Any, bool]:
    """``response`` through the location's header filter (``exchange.header_filter``,
    not None) and, when the filter asked for it, its content coding.

    Returns ``(response, extra, pump, failed)``: the response to send (a new
    one when encoded whole), its extra fields, the encoder of a file encoded
    as it goes (None otherwise), and whether encoding failed (the response is
    then ``internal_error(exchange)`` and the connection should not be kept).
    Shared by HTTP/1.1 and HTTP/2.
    """
    exchange.response_headers = response.headers  # what the filter may look at
    extra = exchange.header_filter(exchange, response.status, extra)
    compression = exchange.compression
    if compression is None:
        return response, extra, None, False
    # The location encodes responses (localhost.modules.compression).
    exchange.compression = None
    try:
        response, extra, pump = compression.whole(exchange, response, extra)
    except Exception:
        logging.getLogger("localhost").exception(
            "%s: encoding the response failed", exchange.request
        )
        response.release()
        return internal_error(exchange), extra, None, True
    return response, extra, pump, False
