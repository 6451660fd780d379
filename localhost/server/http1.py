"""HTTP/1.1 as a protocol over a transport: the request/response state machine.

The transport (``localhost.io``) moves the bytes: it reads, sends, sends
files, watches for a client that hangs up while a handler works, and closes
with a lingering half-close. This module decides what the bytes mean.

States: ``HEAD`` (waiting for or reading a request head) → the pipeline
picks a handler → ``BODY`` (reading the body, if any) → ``HANDLE`` (the body
is read or not needed; the handler is producing the response) → ``WRITE``
(the whole response is queued) → ``IDLE`` (keep-alive) or ``LINGER`` (the
transport closes, draining what the client still sends) → ``CLOSED``. A
handler that answers 101 (``Exchange.upgrade``) ends in ``UPGRADED``: the
transport then belongs to the new protocol (WebSocket), with the bytes the
client sent after the request.

Reading is paused while a handler works (``HANDLE``: the transport watches
for a hang-up instead) and while a response waits for its client, so a
pipelined request is taken only after the previous response has left, which
also bounds what one connection holds in memory. The transport's write
buffer limits are both 0: ``pause_writing`` means "something is queued" and
``resume_writing`` "the queue is empty", which ends a response that did not
leave at once and resumes a streaming handler (``on_writable``); a response
that leaves at once (the common case) costs no callback at all.

One deadline per connection (``transport.set_timeout``), for its state:

- ``HEAD``: ``client_header_timeout`` from the first byte of the request
  (absolute: trickling bytes does not extend it) → 408, close;
- ``BODY``: ``client_body_timeout`` between two reads → 408, close;
- ``WRITE`` (and a streamed response waiting on its client):
  ``send_timeout`` without progress in sending → close;
- ``IDLE``: ``keepalive_timeout`` → close.

While a handler works (``HANDLE``) with nothing queued, the handler keeps its
own deadline (``cgi_timeout``).

The body is given to the handler as its ``on_head`` asked (``BodyPolicy``):
ignored (the answer may go out before the body has arrived), discarded,
streamed to ``on_body`` (False pauses the client until
``exchange.resume_body()``), or spooled to a file set as ``exchange.body``.

Which answers close the connection is decided here, by where the answer comes
from, not by its status alone:

- a protocol error found by the parser or in the request-target (400, 414,
  431, 501, 505), and 408, always close: the framing of what follows can no
  longer be trusted (RFC 9112 §9.5 lets a server close at any time);
- 413 closes: the body is left unread;
- any answer that goes out while body bytes are still to come (an error
  decided before or during the body, a redirect, a safe method) closes
  (lingering, so that the answer arrives); one that goes out after the whole
  body was read keeps the connection;
- so a handler's 4xx after the body was read in full (400 for an unusable
  upload, 403, 404, 405, 409, 412, 416) keeps the connection, since the
  request itself was framed correctly; NGINX closes after any 400, but there
  it stands for a malformed request;
- a 500 (an exception, a failed handler, a field with CR/LF/NUL) closes, as
  in NGINX's ``ngx_http_special_response_handler``: nothing said after an
  internal error is trusted; a 502, 504 or 507 from a handler keeps it.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable
from enum import IntEnum
from typing import TYPE_CHECKING, Any
from typing import Protocol as TypingProtocol

from localhost.accesslog import combined_line, write_access_logs
from localhost.config.model import ServerBlock, Timeouts
from localhost.handlers.error_pages import (
    ErrorPageRequest,
    ErrorResponse,
    error_page_answer,
    error_response,
    refusal_response,
)
from localhost.http.errors import HTTPError
from localhost.http.message import Headers, Request, Response
from localhost.http.methods import OPTIONS_STAR_ALLOW
from localhost.http.parser import END, NEED_DATA, Data, RequestParser
from localhost.http.target import normalize_target
from localhost.http.writer import LAST_CHUNK, chunk, response_head, stream_framing
from localhost.io import Protocol
from localhost.limits import LIMITS
from localhost.routing import Router
from localhost.server.error_page import error_page, redirected
from localhost.server.exchange import Exchange, filtered

if TYPE_CHECKING:
    from localhost.io import Transport
    from localhost.io.loop import EventLoop
    from localhost.server.pipeline import Pipeline
    from localhost.services import Services

log = logging.getLogger("localhost")

HIGH_WATER = LIMITS.high_water_bytes  # queued above this, exchange.write asks its producer to pause
MAX_INTERNAL_REDIRECTS = LIMITS.max_internal_redirects
MAX_REWRITES = LIMITS.max_rewrites
# Reads of a file encoded as it goes before other connections run: what a
# connection may hold queued, so one client cannot hog the loop.
PUMP_READS_PER_TURN = max(1, LIMITS.high_water_bytes // LIMITS.file_chunk_bytes)
SPOOL_MEMORY = LIMITS.body_spool_memory_bytes  # of a spooled body, then a temporary file
IDLE_GRACE = LIMITS.idle_grace_seconds  # an idle connection stays open once the worker stops
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# BodyPolicy values (localhost.handlers.base): compared as ints on the hot path.
_IGNORE, _DISCARD, _STREAM, _SPOOL = 0, 1, 2, 3
# Debugging aid for the process model: which worker answered.
_DEBUG_PID = os.environ.get("LOCALHOST_DEBUG_PID") == "1"


class State(IntEnum):
    """Where a connection is in its request/response cycle (see the module docstring)."""

    HEAD = 1
    BODY = 2
    HANDLE = 3
    WRITE = 4
    IDLE = 5
    LINGER = 6
    CLOSED = 7
    UPGRADED = 8  # the connection went to another protocol (a 101)


_HEAD, _BODY, _HANDLE, _WRITE, _IDLE, _LINGER, _CLOSED, _UPGRADED = (
    State.HEAD,
    State.BODY,
    State.HANDLE,
    State.WRITE,
    State.IDLE,
    State.LINGER,
    State.CLOSED,
    State.UPGRADED,
)


class HTTPHost(TypingProtocol):
    """What the protocol needs of its worker (read per request: a reload replaces them)."""

    router: Router
    pipeline: Pipeline
    services: Services
    loop: EventLoop
    parse_memo: dict[bytes, Request]
    stopping: bool


class HTTP1Protocol(Protocol):
    """One HTTP/1.1 client connection. ``host`` is the worker; ``default_server``
    the server block of the listen address until a request names its host."""

    __slots__ = (
        "host",
        "loop",
        "peer",
        "local",
        "parser",
        "state",
        "timeouts",
        "server",
        "exchange",
        "handler",
        "policy",
        "pending",
        "body_seen",
        "body_limit",
        "body_left",
        "body_paused",
        "spool",
        "paused",
        "write_blocked",
        "progress",
        "in_process",
        "teardown",
        "close_reason",
        "requests",
        "number",
        "pump",
        "_timeout_cb",
        "_host_of",
        "_router_of",
    )

    accepts_memoryview = True

    def __init__(self, host: HTTPHost, default_server: ServerBlock) -> None:
        self.transport: Transport | None = None
        self.host = host
        self.loop = host.loop
        self.peer: tuple[str, int] = ("", 0)
        self.local: tuple[str, int] = ("", 0)
        self.parser = RequestParser(host.parse_memo)
        self.state = _HEAD
        # Until a request names its virtual host, the address's default
        # server block decides the timeouts (as in NGINX).
        self.timeouts: Timeouts = default_server.timeouts
        self.server: ServerBlock = default_server
        self.exchange: Exchange | None = None
        self.handler: Any = None
        self.policy = _IGNORE
        self.pending: Response | None = None
        self.body_seen = 0
        self.body_limit = 0
        self.body_left = False  # body bytes of the current request are still to come
        self.body_paused = False  # on_body returned False
        self.spool: Any = None
        self.paused = False  # reading paused while a handler works or a response waits
        self.write_blocked = False  # the transport holds unsent bytes
        self.progress = 0
        self.in_process = False
        #: An App's connection_teardown_hooks for this connection (set by the worker).
        self.teardown: tuple[Any, ...] = ()
        self.close_reason: str | None = None  # why it ended, when not cleanly
        self.requests = 0  # request heads so far (keepalive_requests, $connection_requests)
        self.number = 0  # the connection's serial number in the worker ($connection)
        #: A file being encoded as the client takes it (compression's ``FilePump``).
        self.pump: Any = None
        self._timeout_cb = self._on_timeout
        # The Host of the last request, for which self.server was chosen: a
        # connection mostly repeats it (the same str, from the parser's memo).
        self._host_of: str | None = None
        self._router_of: Any = None

    # -- transport callbacks --------------------------------------------------

    def connection_made(self, transport: Transport) -> None:
        self.transport = transport
        # Both marks 0: pause_writing = something is queued, resume_writing = all sent.
        transport.set_write_buffer_limits(0, 0)
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        if isinstance(peer, tuple):
            self.peer = peer[:2]
        if isinstance(local, tuple):
            self.local = local[:2]
        transport.set_timeout(self.timeouts.client_header, self._timeout_cb)

    def data_received(self, data: bytes) -> None:
        state = self.state
        if state == _IDLE:
            # A request on a kept-alive connection: its header deadline counts
            # from now, but is set only if the head is still incomplete after
            # this read. Most requests arrive whole and are answered at once,
            # and their answer sets the next deadline (no timer moved twice).
            self.state = _HEAD
            request = self.parser.whole_head(data)
            if request is not None:
                self.in_process = True
                try:
                    self._on_head(request)
                    if self.state == _BODY:
                        self._on_end(False)
                finally:
                    self.in_process = False
            else:
                self.parser.feed(data)
                self._process()
            if self.state == _HEAD and self.transport is not None:
                self.transport.set_timeout(self.timeouts.client_header, self._timeout_cb)
            return
        if state == _BODY:
            self.transport.set_timeout(self.timeouts.client_body, self._timeout_cb)  # type: ignore[union-attr]
        self.parser.feed(data)
        if state <= _BODY:
            self._process()

    def eof_received(self) -> bool | None:
        # The client half-closed while we read: an unfinished request can never
        # complete, and an idle connection is over. (While a handler works the
        # transport watches for a hang-up instead.)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        state = self.state
        if state == _CLOSED:
            return
        self.state = _CLOSED
        if self.teardown:
            self._teardown(state, exc)
        exchange = self.exchange
        if log.isEnabledFor(logging.DEBUG):
            # A reset may come as an error or as a bare hang-up, by timing.
            sending = exchange is not None and (exchange.started or exchange.done)
            if exc is not None or sending:
                why = exc if exc is not None else "the client closed the connection"
                log.debug("%s:%d: %s: %s", *self.peer, "send failed" if sending else "lost", why)
        if exchange is not None:
            self.exchange = None
            if exchange.started or exchange.done:
                self._log(exchange)
            exchange.done = True
            if exchange.cleanups is not None:
                _run_cleanups(exchange)
        self._drop_handler("connection closed")
        self._drop_spool()
        if self.pump is not None:
            self.pump.close()
            self.pump = None
        if exchange is not None and exchange.body is not None:
            _close_body(exchange)
        self.transport = None
        self._timeout_cb = _nothing

    def _teardown(self, state: State, exc: Exception | None) -> None:
        """Tell the teardown hooks how the connection ended (None: cleanly,
        between requests or after a closing response)."""
        from localhost.app.mount import run_teardown_hooks

        reason = self.close_reason
        if reason is None and exc is not None:
            reason = f"connection error: {exc}"
        if reason is None and (
            state in (_BODY, _HANDLE, _WRITE) or (state == _HEAD and self.parser.buffered)
        ):
            reason = "client went away"
        run_teardown_hooks(self.teardown, self.peer, reason)

    def pause_writing(self) -> None:
        self.write_blocked = True
        transport = self.transport
        assert transport is not None
        self.progress = transport.get_write_buffer_size()
        transport.set_timeout(self.timeouts.send, self._timeout_cb)
        if not self.paused:
            # Take no pipelined request while the client is not reading ours.
            self.paused = True
            transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_blocked = False
        state = self.state
        if state == _WRITE:
            if self.pump is not None:
                self._pump()
            else:
                self._response_done()
        elif state == _HANDLE:
            handler = self.handler
            exchange = self.exchange
            if handler is not None and exchange is not None and exchange.started:
                self.transport.set_timeout(None)  # type: ignore[union-attr]
                self._call(handler.on_writable)
        elif self.paused and state <= _BODY:
            self.paused = False
            self.transport.resume_reading()  # type: ignore[union-attr]

    def hangup_received(self) -> None:
        exchange = self.exchange
        if exchange is None:
            # Between requests (the watch ends a loop iteration after the
            # response): an ordinary close of an idle connection.
            if self.transport is not None:
                self.transport.abort()
            return
        self.close_reason = self.close_reason or "client went away"
        log.info(
            "%s:%d: client went away during %s",
            *self.peer,
            exchange.request if exchange is not None else None,
        )
        self._drop_handler("client went away")
        if self.transport is not None:
            self.transport.abort()

    def is_idle(self) -> bool:
        state = self.state
        return state == _IDLE or (state == _HEAD and not self.parser.buffered)

    def shutdown(self) -> None:
        """The worker stops: an idle connection closes after ``IDLE_GRACE`` seconds
        (a request already on its way is still answered, with ``Connection:
        close``); a busy one closes once its response is out."""
        if self.is_idle() and self.transport is not None:
            self.transport.set_timeout(IDLE_GRACE, self._timeout_cb)

    # -- requests -----------------------------------------------------------

    def _process(self) -> None:
        """Turn buffered bytes into requests, one at a time."""
        parser = self.parser
        self.in_process = True
        try:
            while self.state <= _BODY and not self.body_paused:
                try:
                    event = parser.next_event()
                except HTTPError as exc:
                    log.info("%s:%d: bad request (%d): %s", *self.peer, exc.status, exc.detail)
                    self._protocol_error(exc)
                    return
                if event is NEED_DATA:
                    if self.state == _BODY and self.exchange is not None:
                        self._need_body()
                    return
                if event is END:
                    self._on_end(False)
                elif type(event) is Data:
                    self._on_data(event.data)
                else:
                    self._on_head(event)  # type: ignore[arg-type]
        finally:
            self.in_process = False

    def _on_head(self, request: Request) -> None:
        self.state = _BODY
        self.requests += 1
        if not request.path:  # a remembered request has them already
            try:
                request.path, request.query = normalize_target(request.target)
            except HTTPError as exc:
                self._protocol_error(exc)
                return
        host = self.host
        router = host.router
        if request.host is not self._host_of or router is not self._router_of:
            server = self.server = router.select(self.local, request.host)
            self._host_of = request.host
            self._router_of = router  # a reload brings another
            self.timeouts = server.timeouts
        else:
            server = self.server
        exchange = self.exchange = Exchange(
            self, request, server, host.services, self.loop, self.loop.now
        )
        exchange.head_bytes = self.parser.head_size
        has_body = self.body_left = request.chunked or bool(request.content_length)
        self.pending = None
        if request.path == "*":
            # OPTIONS * asks about the server as a whole (RFC 9110 §9.3.7).
            self.pending = Response(200, [("Allow", OPTIONS_STAR_ALLOW)])
            self.handler = None
            self.policy = _IGNORE
        else:
            handler = host.pipeline.start(exchange)
            if exchange.done:
                return  # answered by the pipeline itself (an inline App route)
            self.handler = handler
            try:
                self.policy = handler.on_head()
            except HTTPError as exc:
                self.policy = _IGNORE
                self._drop_handler("error")
                self.pending = self._error(exchange, exc)
            except Exception:
                log.exception("error starting %s %s", request.method, request.target)
                self.policy = _IGNORE
                self._drop_handler("error")
                self.pending = self._internal_error(exchange)
            if exchange.done:
                return  # answered at once (413 by Content-Length, ...)
        if not has_body:
            return
        self.body_seen = 0
        self.body_limit = host.pipeline.body_limit(exchange) if self.handler is not None else 0
        if request.expect_continue:
            if self.pending is not None:
                # Refused before the body: answer without it (RFC 9110 §10.1.1).
                self._answer(exchange, self.pending, close=True)
                return
            self.transport.write(CONTINUE)  # type: ignore[union-attr]
        if self.policy == _SPOOL:
            # Closed when its request ends (_response_done, connection_lost).
            self.spool = tempfile.SpooledTemporaryFile(SPOOL_MEMORY)  # noqa: SIM115
        self.transport.set_timeout(self.timeouts.client_body, self._timeout_cb)  # type: ignore[union-attr]

    def _on_data(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None or exchange.done:
            return
        self.body_seen += len(data)
        # A chunked body is counted as it arrives (RFC 9110 §15.5.14).
        if self.body_limit and self.body_seen > self.body_limit:
            self._drop_handler("body too large")
            self.pending = None
            # The rest of the body is left unread: the connection closes.
            self._answer(exchange, self.host.pipeline.too_large(exchange), close=True)
            return
        if self.pending is not None:
            return
        policy = self.policy
        if policy == _STREAM:
            handler = self.handler
            try:
                more = handler.on_body(data)
            except HTTPError as exc:
                # Answered like an error found before the body: the rest of the
                # body is read if it is already here (then the connection is
                # kept), else the answer goes out at once and it closes.
                self._drop_handler("error")
                self.pending = self._error(exchange, exc)
                return
            except Exception:
                log.exception("error handling the body of %s", exchange.request)
                self._drop_handler("error")
                self.pending = self._internal_error(exchange)
                return
            if more is False and not exchange.done and self.handler is handler:
                self.body_paused = True
                transport = self.transport
                assert transport is not None
                transport.pause_reading()
                # The server paused the client: its body deadline waits too.
                transport.set_timeout(None)
        elif policy == _SPOOL:
            self.spool.write(data)

    def _need_body(self) -> None:
        """All that has arrived is consumed, and more of the body is to come.

        An answer decided without the body (an error, or a handler that
        ignores it) goes out now, as in NGINX, rather than waiting for a body
        the client sends slowly or never; the connection then closes. A
        request that was promised its body with 100 Continue waits for it.
        """
        if self.pending is not None:
            self._on_end(True)
        elif self.policy == _IGNORE:
            exchange = self.exchange
            if exchange is not None and not exchange.request.expect_continue:
                self._on_end(True)

    def _on_end(self, early: bool) -> None:
        """The request is complete, or (``early``) its answer needs no more of it."""
        exchange = self.exchange
        if exchange is None or exchange.done:
            return  # answered before its end (the END event of a body-less request)
        if not early:
            self.body_left = False
        pending = self.pending
        if pending is not None:
            self.pending = None
            self._answer(exchange, pending)
            return
        self.state = _HANDLE
        spool = self.spool
        if spool is not None:
            self.spool = None
            spool.seek(0)
            exchange.body = spool
        handler = self.handler
        try:
            handler.on_body_end()
        except HTTPError as exc:
            self._drop_handler("error")
            self._answer(exchange, self._error(exchange, exc))
            return
        except Exception:
            log.exception("error handling %s", exchange.request)
            self._drop_handler("error")
            self._answer(exchange, self._internal_error(exchange))
            return
        if self.exchange is exchange and self.state == _HANDLE and not self.paused:
            # The handler works on (CGI): no more reading until it answers,
            # but notice a client that goes away.
            self.paused = True
            transport = self.transport
            assert transport is not None
            transport.pause_reading()
            transport.watch_hangup(True)

    def _call(self, callback: Any, *args: Any) -> None:
        """A handler callback outside the hot path, its errors answered."""
        exchange = self.exchange
        try:
            callback(*args)
        except HTTPError as exc:
            if exchange is not None:
                self._drop_handler("error")
                self._answer(exchange, self._error(exchange, exc))
        except Exception:
            log.exception("handler failed")
            if exchange is not None:
                self._drop_handler("error")
                self._answer(exchange, self._internal_error(exchange))

    def internal_redirect(self, exchange: Exchange, target: str) -> None:
        """Serve ``target`` as a GET in place of ``exchange``'s request (a CGI
        local redirect); more than ``MAX_INTERNAL_REDIRECTS`` in a row give 500."""
        if exchange is not self.exchange:
            return
        self._drop_handler("internal redirect")
        exchange.redirects += 1
        if exchange.redirects > MAX_INTERNAL_REDIRECTS:
            log.error("internal redirect cycle at %s", target)
            self._answer(exchange, self._internal_error(exchange))
            return
        new, exc = redirected(exchange.request, target)
        if exc is not None:
            exchange.request = new
            self._answer(exchange, self._error(exchange, exc))
            return
        self._restart(exchange, new)

    def _restart(self, exchange: Exchange, request: Request, named: str | None = None) -> None:
        """Handle ``exchange`` again as ``request`` (an internal redirect): from
        the start of the pipeline, or at the named location ``named``.

        The new request has no body. When this happens before the original
        body was read (an error found in the head, a 413), what is left of it
        is not read: the request is handled from here (reading paused, as for
        any handler at work), and the answer closes the connection.
        """
        exchange.request = request
        exchange.location = None
        exchange.captures = None
        exchange.header_filter = None
        if exchange.body is not None:
            _close_body(exchange)
        self.policy = _IGNORE
        if self.state < _HANDLE:
            self.state = _HANDLE
            self.pending = None
            self.body_limit = 0
            self._drop_spool()
            transport = self.transport
            if not self.paused and transport is not None:
                self.paused = True
                transport.pause_reading()
                transport.watch_hangup(True)
        pipeline = self.host.pipeline
        if named is None:
            handler = pipeline.start(exchange)
        else:
            from localhost.modules.rewrite import start_named

            handler = start_named(pipeline, exchange, named)
        if exchange.done:
            return  # answered by the pipeline itself (an inline App route)
        self.handler = handler
        self._call(handler.on_head)
        if not exchange.done and self.handler is handler:
            self._call(handler.on_body_end)

    def _error_page(self, exchange: Exchange, response: Response) -> Response | None:
        """``error_page`` for the server-made error ``response``
        (``localhost.server.error_page``): the response to send, or None
        when the page is served by an internal redirect instead."""
        found = error_page(exchange, response, exchange.request is _NO_REQUEST)
        if type(found) is tuple:
            self.handler = None  # it answered: the error page replaces its answer
            self._restart(exchange, *found)
            return None
        return found  # type: ignore[return-value]

    def resume_body(self, exchange: Exchange) -> None:
        """The handler takes body bytes again."""
        if exchange is not self.exchange or not self.body_paused:
            return
        self.body_paused = False
        transport = self.transport
        if transport is not None:
            transport.resume_reading()
            transport.set_timeout(self.timeouts.client_body, self._timeout_cb)
            self.loop.call_soon(self._resume)

    # -- responses ----------------------------------------------------------

    def _error(self, exchange: Exchange, exc: HTTPError) -> Response:
        """The answer to an ``HTTPError`` raised while handling a well-framed
        request: it closes the connection only for a 500 (as NGINX does);
        otherwise whether the body was read decides."""
        response = self.host.pipeline.error_response(exchange, exc)
        response.close = response.close or exc.status == 500
        return response

    def _internal_error(self, exchange: Exchange | None) -> Response:
        """A 500 for a failed handler; it closes the connection (as NGINX does)."""
        location = exchange.location if exchange is not None else None
        pages = location.error_pages if location is not None else self.server.error_pages
        response = error_response(500, pages, cache=self.host.services.error_pages)
        response.close = True
        return response

    def _protocol_error(self, exc: HTTPError) -> None:
        """The answer to a malformed request: it always closes the connection."""
        self.close_reason = self.close_reason or f"bad request ({exc.status})"
        response = refusal_response(exc, self.server.error_pages, None)
        exchange = self.exchange
        if exchange is not None and not exchange.done:
            self._drop_handler("bad request")
            self._answer(exchange, response, close=True)
        else:
            self._answer_bare(response)

    def _answer(self, exchange: Exchange, response: Response, close: bool = False) -> None:
        """Answer ``exchange`` for it (an error found by the protocol or the pipeline)."""
        if close:
            response.close = True
        if exchange.done or exchange.started:
            response.release()
            if not exchange.done:
                exchange.done = True
                self.abort(exchange)  # a head is out already: the answer cannot change
            return
        exchange.done = True
        self.send(exchange, response)

    def _answer_bare(self, response: Response) -> None:
        """A closing answer outside any request (a malformed or timed-out head)."""
        start = self.loop.now
        exchange = self.exchange = Exchange(
            self, _NO_REQUEST, self.server, self.host.services, self.loop, start
        )
        exchange.done = True
        response.close = True
        self.send(exchange, response)

    def send(self, exchange: Exchange, response: Response) -> None:
        """Queue the whole ``response`` of ``exchange`` (called by ``Exchange.send``)."""
        transport = self.transport
        if exchange is not self.exchange or transport is None:
            response.release()
            return
        if response.status >= 400 and type(response) is ErrorResponse:
            found = self._error_page(exchange, response)
            if found is None:
                return  # served by the error page's own request
            response = found
        self.handler = None
        request = exchange.request
        if type(request) is ErrorPageRequest:
            response = error_page_answer(request, response, self.host.services.error_pages)
        keep_alive = exchange.keep_alive = (
            request.keep_alive
            and not response.close
            and not self.body_left
            and not self.host.stopping
            and self.requests < self.server.keepalive_requests
        )
        extra = exchange.extra_headers
        header_filter = exchange.header_filter
        http10 = request.version == "HTTP/1.0"
        framing = pump = None
        if header_filter is not None:
            response, extra, pump, failed = filtered(
                exchange, response, extra, self._internal_error
            )
            if failed:
                keep_alive = exchange.keep_alive = False
            if pump is not None:
                # A file encoded as it goes: its length is unknown.
                framing, exchange.chunked = stream_framing(response.status, None, http10)
                if http10:
                    keep_alive = exchange.keep_alive = False
        if _DEBUG_PID:
            extra = [*extra, ("X-Worker-PID", str(os.getpid()))]
        try:
            head = response_head(response, keep_alive, http10, framing, extra)
        except ValueError as exc:
            log.error("%s: %s", request, exc)
            response.release()
            if pump is not None:
                pump.close()
                pump = None
            response = self._internal_error(exchange)
            keep_alive = exchange.keep_alive = False
            head = response_head(response, False, http10, None, None)
        status = exchange.log_status = response.status
        exchange.head_sent = len(head)
        exchange.response_headers = [*response.headers, *extra] if extra else response.headers
        if request.method == "HEAD":
            response.release()
            if pump is not None:
                pump.close()
            transport.write(head)
        elif pump is not None:
            transport.write(head)
            self.pump = pump
            self.state = _WRITE
            self._pump()
            return
        elif response.file is not None:
            exchange.log_bytes = response.file.count
            transport.write(head)
            transport.write(response.file)
        elif response.parts is not None:
            exchange.log_bytes = response.content_length if status != 304 else 0
            transport.writelines([head, *response.parts])
        else:
            body = response.body
            if body:
                exchange.log_bytes = len(body)
                transport.write(head + body)
            else:
                transport.write(head)
        self.state = _WRITE
        # A write that failed (the client reset) is not a response done:
        # connection_lost, which follows, logs it as a failed send.
        if not self.write_blocked and not transport.is_closing():
            self._response_done()

    def _pump(self) -> None:
        """Send more of a file encoded as it goes (``self.pump``): until the
        client stops taking it (``resume_writing`` calls again), or for at most
        ``PUMP_READS_PER_TURN`` reads before other connections get their turn;
        then the last chunk and the end of the response."""
        pump = self.pump
        exchange = self.exchange
        transport = self.transport
        if pump is None or exchange is None or transport is None:
            return
        chunked = exchange.chunked
        for _ in range(PUMP_READS_PER_TURN):
            try:
                data = pump.read()
            except OSError as exc:
                log.error("%s: reading the file failed: %s", exchange.request, exc)
                transport.abort()  # the body cannot be completed
                return
            if data is None:
                break
            if data:
                exchange.log_bytes += len(data)
                transport.write(chunk(data) if chunked else data)
                if self.write_blocked or transport.is_closing():
                    return
        else:
            self.loop.call_soon(self._pump)
            return
        self.pump = None
        if chunked:
            transport.write(LAST_CHUNK)
        if not self.write_blocked and not transport.is_closing():
            self._response_done()

    def start(self, exchange: Exchange, response: Response, length: int | None) -> None:
        """Send the head of a streamed response (called by ``Exchange.start``)."""
        transport = self.transport
        if exchange is not self.exchange or transport is None:
            return
        request = exchange.request
        if type(request) is ErrorPageRequest:
            response = error_page_answer(request, response)
        http10 = request.version == "HTTP/1.0"
        status = response.status
        extra = exchange.extra_headers
        header_filter = exchange.header_filter
        encoder = None
        if header_filter is not None:
            exchange.response_headers = response.headers  # what the filter may look at
            extra = header_filter(exchange, status, extra)
            compression = exchange.compression
            if compression is not None:
                # The location encodes responses (localhost.modules.compression).
                exchange.compression = None
                response, length, encoder = compression.start(exchange, response, length)
        framing, chunked = stream_framing(status, length, http10)
        exchange.head_only = head_only = (
            request.method == "HEAD" or status < 200 or status == 204 or status == 304
        )
        if encoder is not None and not head_only:
            exchange.encoder = encoder
        exchange.chunked = chunked and not head_only
        exchange.keep_alive = keep_alive = (
            request.keep_alive
            and not response.close
            and not self.body_left
            and not self.host.stopping
            and self.requests < self.server.keepalive_requests
            and (length is not None or not http10)
        )
        if _DEBUG_PID:
            extra = [*extra, ("X-Worker-PID", str(os.getpid()))]
        try:
            head = response_head(response, keep_alive, http10, framing, extra)
        except ValueError as exc:
            log.error("%s: %s", request, exc)
            exchange.started = False
            self._drop_handler("invalid response")
            self._answer(exchange, self._internal_error(exchange))
            return
        exchange.log_status = status
        exchange.head_sent = len(head)
        exchange.response_headers = [*response.headers, *extra] if extra else response.headers
        transport.write(head)

    def write(self, exchange: Exchange, data: bytes) -> bool:
        """Queue body bytes of a streamed response (called by ``Exchange.write``)."""
        transport = self.transport
        if exchange is not self.exchange or transport is None:
            return False
        if data and not exchange.head_only:
            encoder = exchange.encoder
            if encoder is not None:
                data = encoder.compress(data)
            if data:
                exchange.log_bytes += len(data)
                transport.write(chunk(data) if exchange.chunked else data)
        return transport.get_write_buffer_size() < HIGH_WATER and not transport.is_closing()

    def finish(self, exchange: Exchange) -> None:
        """End a streamed response (called by ``Exchange.finish``)."""
        transport = self.transport
        if exchange is not self.exchange or transport is None:
            return
        self.handler = None
        encoder = exchange.encoder
        if encoder is not None:
            exchange.encoder = None
            tail = encoder.finish()
            if tail:
                exchange.log_bytes += len(tail)
                transport.write(chunk(tail) if exchange.chunked else tail)
        if exchange.chunked:
            transport.write(LAST_CHUNK)
        self.state = _WRITE
        # A write that failed (the client reset) is not a response done:
        # connection_lost, which follows, logs it as a failed send.
        if not self.write_blocked and not transport.is_closing():
            self._response_done()

    def abort(self, exchange: Exchange, reason: str = "aborted") -> None:
        """Drop the connection (called by ``Exchange.abort``)."""
        if exchange is not self.exchange:
            return
        self.close_reason = self.close_reason or reason
        self.handler = None  # the handler gave up by itself
        if self.transport is not None:
            self.transport.abort()

    def upgrade(self, exchange: Exchange, response: Response, protocol: Callable[[], Any]) -> bool:
        """Answer ``exchange`` with the 101 ``response`` and hand the connection
        to ``protocol()`` (called by ``Exchange.upgrade``; RFC 9110 §7.8)."""
        transport = self.transport
        if exchange is not self.exchange or transport is None or self.body_left:
            return False
        try:
            head = response_head(response, True, False, None, exchange.extra_headers)
        except ValueError as exc:
            log.error("%s: %s", exchange.request, exc)
            return False
        exchange.done = True
        exchange.log_status = response.status
        exchange.head_sent = len(head)
        exchange.response_headers = response.headers
        self.exchange = None
        self.handler = None
        self.state = _UPGRADED
        transport.set_timeout(None)
        transport.write(head)
        self._log(exchange)
        if exchange.cleanups is not None:
            _run_cleanups(exchange)
        if self.paused or self.body_paused:
            self.paused = self.body_paused = False
            transport.resume_reading()
            transport.watch_hangup(False)
        rest = self.parser.take_buffered()
        successor = protocol()
        transport.set_protocol(successor)
        successor.connection_made(transport)
        if rest and not transport.is_closing():
            successor.data_received(rest)
        if self.host.stopping:
            # Switched after the worker told its connections to stop: this
            # one gets the same word (WebSocket: close 1001 going away).
            transport.shutdown()
        return True

    def _response_done(self) -> None:
        exchange = self.exchange
        assert exchange is not None
        self.exchange = None
        self.handler = None
        self._log(exchange)
        if exchange.cleanups is not None:
            _run_cleanups(exchange)
        if exchange.body is not None:
            _close_body(exchange)
        transport = self.transport
        assert transport is not None
        if self.paused or self.body_paused:
            self.paused = self.body_paused = False
            transport.resume_reading()
            transport.watch_hangup(False)
        if not exchange.keep_alive:
            self.state = _LINGER
            transport.close()
            return
        if self.parser.buffered:
            self.state = _HEAD
            transport.set_timeout(self.timeouts.client_header, self._timeout_cb)
            if not self.in_process:
                # Finished from a handler's event (CGI) or a flush: the
                # pipelined request waits for the end of this loop iteration.
                self.loop.call_soon(self._resume)
        else:
            self.state = _IDLE
            transport.set_timeout(self.timeouts.keepalive, self._timeout_cb)

    def _resume(self) -> None:
        if self.state <= _BODY and not self.body_paused and self.transport is not None:
            self._process()

    def _log(self, exchange: Exchange) -> None:
        """The access log lines for the request just answered (if its log is on),
        in the location where its processing ended."""
        owner = exchange.location if exchange.location is not None else exchange.server
        target = owner.access_log
        if target is None:
            return
        request = exchange.request
        if isinstance(target, str):  # one log in the combined format: nearly every request
            line = combined_line(
                self.peer[0],
                None if request is _NO_REQUEST else request,
                exchange.log_status,
                exchange.log_bytes,
                time.monotonic() - exchange.start_time,
            )
            self.host.services.access_logs.get(target).write(line)
        else:
            bare = request is _NO_REQUEST
            write_access_logs(target, exchange, bare, self.host.services.access_logs)

    # -- deadlines and the end ---------------------------------------------

    def _on_timeout(self) -> None:
        state = self.state
        transport = self.transport
        if transport is None:
            return
        if state != _IDLE and state != _HANDLE:
            self.close_reason = self.close_reason or "timeout"
        if state == _BODY or (state == _HEAD and self.parser.buffered):
            log.info("%s:%d: request timed out (408)", *self.peer)
            pages = self.server.error_pages
            response = error_response(408, pages, cache=self.host.services.error_pages)
            exchange = self.exchange
            if exchange is not None and not exchange.done:
                self._drop_handler("timeout")
                self._answer(exchange, response, close=True)
            elif exchange is None:
                self._answer_bare(response)
        elif self.pump is not None and not self.write_blocked:
            # An encoded file on its way to a client that takes it: not stalled.
            transport.set_timeout(self.timeouts.send, self._timeout_cb)
        elif self.write_blocked and state in (_WRITE, _HANDLE):
            size = transport.get_write_buffer_size()
            if size and size < self.progress:
                # Some went out since the deadline was set: allow another send_timeout.
                self.progress = size
                transport.set_timeout(self.timeouts.send, self._timeout_cb)
                return
            log.info("%s:%d: send timed out", *self.peer)
            self._drop_handler("send timeout")
            transport.abort()
        elif state == _HANDLE:
            pass  # the handler keeps its own deadline
        else:
            transport.abort()  # idle: nothing to send, nothing to linger for

    def _drop_handler(self, reason: str) -> None:
        handler = self.handler
        if handler is not None:
            self.handler = None
            try:
                handler.on_abort(reason)
            except Exception:
                log.exception("handler failed to abort")
        if self.body_paused:
            self.body_paused = False
            if self.transport is not None:
                self.transport.resume_reading()

    def _drop_spool(self) -> None:
        spool = self.spool
        if spool is not None:
            self.spool = None
            spool.close()


_NO_REQUEST = Request("-", "-", "HTTP/1.1", Headers(), "", False, None, False, False)


def _nothing() -> None:
    pass


def _run_cleanups(exchange: Exchange) -> None:
    """Run the exchange's cleanups once (a failing one is logged)."""
    cleanups = exchange.cleanups or ()
    exchange.cleanups = None
    for cleanup in cleanups:
        try:
            cleanup()
        except Exception:
            log.exception("request cleanup failed")


def _close_body(exchange: Exchange) -> None:
    """Close the spooled body of a request that has ended (the handler had it to read)."""
    body = exchange.body
    exchange.body = None
    if body is not None:
        body.close()
