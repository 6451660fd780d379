"""One client connection: the request/response state machine and write queue.

States (DESIGN.md): ``HEAD`` (waiting for or reading a request head) →
route and check → ``BODY`` (reading the body, if any) → ``HANDLE`` (the body
is read; a handler such as CGI is producing the response) → ``WRITE`` (the
whole response is queued) → ``IDLE`` (keep-alive) or ``LINGER`` (half-closed,
draining what the client still sends) → ``CLOSED``.

The epoll interest is derived from the state after every event
(``_update_interest``): EPOLLIN while a request is read, EPOLLOUT only while
output is pending, EPOLLRDHUP while a handler works (to notice a client that
went away); ``epoll.modify`` runs only when the mask changes, so a response
written at once costs none. A pipelined request is taken only after the
previous response has left the queue, which also bounds what one connection
holds in memory; a streamed response (CGI) pauses its producer above
``HIGH_WATER`` bytes queued and resumes it once the queue is empty.

One ``Timer`` per connection enforces the deadline of its current state:

- ``HEAD``: ``client_header_timeout`` from the first byte of the request
  (absolute: trickling bytes does not extend it) → 408, close;
- ``BODY``: ``client_body_timeout`` between two reads → 408, close;
- ``WRITE`` (and a streamed response waiting on its client):
  ``send_timeout`` between two writes that make progress → close;
- ``IDLE``: ``keepalive_timeout`` → close;
- ``LINGER``: ``LINGER_TIMEOUT`` → close.

While a handler works (``HANDLE``), the handler keeps its own deadline
(``cgi_timeout``).

Which answers close the connection is decided here, by where the answer comes
from, not by its status alone:

- a protocol error found by the parser or in the request-target (400, 414,
  431, 501, 505), and 408, always close: the framing of what follows can no
  longer be trusted (RFC 9112 §9.5 lets a server close at any time);
- 413 closes: the body is left unread;
- an answer decided before or during the body (a ``check`` error, a handler
  error, a redirect, a safe method) keeps the connection only when the whole
  body has been read by the time it goes out; if more of it is still to
  come, it goes out at once with ``Connection: close`` (``_body_unused``);
- a handler's 4xx after the body was read in full (400 for an unusable
  upload, 403, 404, 405, 409, 412, 416) keeps the connection, since the
  request itself was framed correctly; NGINX closes after any 400, but there
  it stands for a malformed request;
- a 500 (an exception or a failed handler) closes, as in NGINX's
  ``ngx_http_special_response_handler``: nothing said after an internal error
  is trusted; a 502, 504 or 507 from a handler keeps it, as in NGINX.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import deque
from enum import IntEnum
from typing import TYPE_CHECKING

from localhost import handlers
from localhost.accesslog import combined_line
from localhost.config.model import IMPLEMENTED_METHODS, Location, ServerBlock, Timeouts
from localhost.handlers import session as sessions
from localhost.handlers.error_pages import error_response
from localhost.http.errors import HTTPError
from localhost.http.message import FileBody, Headers, Request, Response, response_head
from localhost.http.parser import END, NEED_DATA, Data, RequestParser
from localhost.routing import normalize_target
from localhost.server.loop import EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLRDHUP, Timer

if TYPE_CHECKING:
    from localhost.server.worker import Worker
    from localhost.sessions import SessionStore

log = logging.getLogger("localhost")

RECV_SIZE = 64 * 1024  # bytes per recv
SENDFILE_CHUNK = 8 * 1024 * 1024  # bytes per sendfile call, so one client cannot hog the loop
LINGER_TIMEOUT = 5.0  # seconds to drain a half-closed connection (NGINX lingering_timeout)
HIGH_WATER = 256 * 1024  # bytes queued before a streaming producer is paused
MAX_INTERNAL_REDIRECTS = 5
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})  # RFC 9110 §9.2.1
OPTIONS_STAR_ALLOW = ", ".join(sorted(IMPLEMENTED_METHODS))
_CHUNKED = b"Transfer-Encoding: chunked\r\n"
# One receive buffer for every connection of the worker: the parser copies
# what it needs, so no 64 KiB object is allocated per recv.
_RECV_BUFFER = bytearray(RECV_SIZE)
_RECV_VIEW = memoryview(_RECV_BUFFER)
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


class Connection:
    """A client socket driven by the worker's event loop.

    It is also the ``handlers.Exchange`` of the request in progress: the
    object through which a streaming handler answers.
    """

    __slots__ = (
        "worker",
        "loop",
        "sock",
        "fd",
        "peer",
        "local",
        "parser",
        "state",
        "timeouts",
        "timer",
        "request",
        "server",
        "location",
        "pending",
        "handler",
        "body_seen",
        "out",
        "out_bytes",
        "mask",
        "responding",
        "streaming",
        "chunked",
        "keep_alive",
        "redirects",
        "session",
        "extra_headers",
        "in_event",
        "request_start",
        "log_status",
        "log_bytes",
        "log_pending",
    )

    def __init__(
        self,
        worker: Worker,
        sock: socket.socket,
        peer: tuple[str, int],
        local: tuple[str, int],
        default_server: ServerBlock,
    ) -> None:
        self.worker = worker
        self.loop = worker.loop
        self.sock = sock
        self.fd = sock.fileno()
        self.peer = peer
        self.local = local
        self.parser = RequestParser(worker.parse_memo)
        self.state = State.HEAD
        # Until a request names its virtual host, the address's default
        # server block decides the timeouts (as in NGINX).
        self.timeouts: Timeouts = default_server.timeouts
        self.server: ServerBlock = default_server
        self.request: Request | None = None
        self.location: Location | None = None
        self.pending: Response | None = None
        self.handler: handlers.Streaming | None = None
        self.body_seen = 0
        self.out: deque[bytes | memoryview | FileBody] = deque()
        self.out_bytes = 0  # bytes (not file regions) queued in ``out``
        self.mask = EPOLLIN
        self.responding = False  # the final response is wholly queued
        self.streaming = False  # a streamed response has started
        self.chunked = False
        self.keep_alive = True
        self.redirects = 0
        self.session: str | None = None
        self.extra_headers: list[tuple[str, str]] = []
        self.in_event = False
        self.request_start = time.monotonic()
        self.log_status = 0
        self.log_bytes = 0
        self.log_pending = False
        self.timer: Timer = self.loop.call_at(
            time.monotonic() + self.timeouts.client_header, self._on_timeout
        )
        self.loop.register(self.fd, EPOLLIN, self._on_event)

    # -- events -------------------------------------------------------------

    def _on_event(self, mask: int) -> None:
        self.in_event = True
        try:
            if mask & EPOLLOUT or (self.out and mask & (EPOLLHUP | EPOLLERR)):
                self._deadline(self.timeouts.send)
                self._flush()
            if self.state == State.CLOSED:
                return
            if self.mask & EPOLLIN and mask & (EPOLLIN | EPOLLHUP | EPOLLERR):
                if self.state == State.LINGER:
                    self._drain()
                else:
                    self._on_readable()
            elif mask & (EPOLLHUP | EPOLLERR) and not self.out:
                self.close()
            elif mask & EPOLLRDHUP:
                self._check_gone()
            if self.state <= State.BODY and not self.out:
                self._process()
            self._update_interest()
        except Exception:
            # A bug must cost one connection, never the worker; closing also
            # stops a level-triggered fd from firing again forever.
            log.exception("%s:%d: unexpected error; closing the connection", *self.peer[:2])
            self.close()
        finally:
            self.in_event = False

    def _update_interest(self) -> None:
        state = self.state
        if state == State.CLOSED:
            return
        mask = EPOLLOUT if self.out else 0
        if state <= State.BODY or state == State.IDLE or state == State.LINGER:
            mask |= EPOLLIN
        elif state == State.HANDLE:
            mask |= EPOLLRDHUP
        if mask != self.mask:
            self.mask = mask
            self.loop.modify(self.fd, mask)

    def _on_readable(self) -> None:
        try:
            received = self.sock.recv_into(_RECV_BUFFER)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        if not received:
            self.close()
            return
        state = self.state
        if state == State.IDLE:
            self.state = State.HEAD
            self._deadline(self.timeouts.client_header)
        elif state == State.BODY:
            self._deadline(self.timeouts.client_body)
        self.parser.feed(_RECV_VIEW[:received])

    def _check_gone(self) -> None:
        """The client half-closed while a handler works: gone, unless it sent more."""
        try:
            peek = self.sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            peek = b""
        if not peek:
            log.info("%s:%d: client went away during %s", *self.peer[:2], self.request)
            self.close()
        else:
            # Pipelined bytes and a half-close: wait for the handler; stop
            # watching RDHUP, which would fire again and again.
            self.mask &= ~EPOLLRDHUP
            self.loop.modify(self.fd, self.mask)

    def _on_timeout(self) -> None:
        state = self.state
        if state == State.BODY or (state == State.HEAD and self.parser.buffered):
            log.info("%s:%d: request timed out (408)", *self.peer[:2])
            response = error_response(408, self.server.error_pages)
            response.close = True
            self.send(response)
            self._update_interest()
        elif state == State.HANDLE and not self.out:
            pass  # the handler keeps its own deadline
        else:
            self.close()

    def _deadline(self, seconds: float) -> None:
        self.loop.reschedule(self.timer, self.loop.now + seconds)

    # -- requests -----------------------------------------------------------

    def _process(self) -> None:
        """Turn buffered bytes into requests, one at a time."""
        parser = self.parser
        while self.state <= State.BODY:
            try:
                event = parser.next_event()
            except HTTPError as exc:
                log.info("%s:%d: bad request (%d): %s", *self.peer[:2], exc.status, exc.detail)
                self.send(self._protocol_error(exc))
                return
            if event is NEED_DATA:
                if self.state == State.BODY and self._body_unused():
                    self._on_end(early=True)
                return
            if event is END:
                self._on_end()
            elif type(event) is Data:
                self._on_data(event.data)
            else:
                assert isinstance(event, Request)
                self._on_head(event)

    def _on_head(self, request: Request) -> None:
        self.request = request
        self.request_start = self.loop.now
        self.state = State.BODY
        self.body_seen = 0
        self.location = None
        self.redirects = 0
        self.session = None
        self.extra_headers = []
        if not request.path:  # a remembered request has them already
            try:
                request.path, request.query = normalize_target(request.target)
            except HTTPError as exc:
                self.send(self._protocol_error(exc))
                return
        router = self.worker.router
        server = self.server = router.select(self.local, request.host)
        self.timeouts = server.timeouts
        if request.path == "*":
            # OPTIONS * asks about the server as a whole (RFC 9110 §9.3.7).
            self.pending = Response(200, [("Allow", OPTIONS_STAR_ALLOW)])
        else:
            self._route()
        if not request.has_body:
            return
        response = self.pending
        if response is not None and (response.status == 413 or request.expect_continue):
            # Answer without reading the body; the connection cannot be reused.
            response.close = True
            self.send(response)
            return
        if request.expect_continue:
            self.out.append(CONTINUE)
            self.out_bytes += len(CONTINUE)
            self._flush()
        self._deadline(self.timeouts.client_body)

    def _body_unused(self) -> bool:
        """Whether the answer is decided without the rest of the body.

        So it is for an error found before the body (404, 405, ...) or raised
        by a streaming handler while it takes the body, and for a safe method
        or a redirect, whose content phase ignores the body.
        DELETE still waits for its whole request before acting, and so does
        a request that was promised its body with 100 Continue.
        """
        if self.pending is not None:
            return True
        location = self.location
        request = self.request
        return (
            self.handler is None
            and location is not None
            and request is not None
            and not request.expect_continue
            and (location.redirect is not None or request.method in SAFE_METHODS)
        )

    def _route(self) -> None:
        """Find the location, run the checks, and start a streaming handler if any."""
        request = self.request
        assert request is not None
        location = self.location = self.worker.router.match(self.server, request.path)
        self.pending = handlers.check(request, self.server, location)
        if self.pending is not None or location is None:
            return
        try:
            if location.session:
                self.session = sessions.begin(self.session_store(), request, location, self)
            self.handler = handlers.start(request, location, self)
        except HTTPError as exc:
            self.pending = self._handler_error(exc, location)
        except Exception:
            log.exception("error starting %s %s", request.method, request.target)
            self.pending = self._internal_error(location)

    def _on_data(self, data: bytes) -> None:
        self.body_seen += len(data)
        # A chunked body is counted as it arrives (RFC 9110 §15.5.14).
        owner = self.location if self.location is not None else self.server
        if owner.body_limit and self.body_seen > owner.body_limit:
            self.pending = None
            assert self.request is not None
            response = handlers.too_large(owner.body_limit, owner, self.request)
            response.close = True  # the rest of the body is left unread
            self.send(response)
            return
        handler = self.handler
        if handler is not None and self.pending is None:
            try:
                handler.body_data(data)
            except HTTPError as exc:
                # Answered like an error found before the body: the rest of
                # the body is read if it is already here (then the connection
                # is kept), else the answer goes out at once and it closes.
                self._drop_handler()
                self.pending = self._handler_error(exc, self.location)
            except Exception:
                log.exception("error handling the body of %s", self.request)
                self._drop_handler()
                self.pending = self._internal_error(self.location)

    def _on_end(self, early: bool = False) -> None:
        """The request is complete, or (``early``) its answer needs no more of it.

        An early answer does not wait for a body the client sends slowly or
        never, as in NGINX; with the body unread the connection cannot be
        reused, so it closes (lingering, so that the answer arrives).
        """
        request = self.request
        assert request is not None
        response = self.pending
        self.pending = None
        if response is not None:
            response.close = response.close or early
            self.send(response)
            return
        location = self.location
        assert location is not None
        handler = self.handler
        try:
            if handler is not None:
                self.state = State.HANDLE
                handler.body_end()
                return
            response = handlers.handle(request, location, self)
        except HTTPError as exc:
            response = self._handler_error(exc, location)
        except Exception:
            log.exception("error handling %s %s", request.method, request.target)
            response = self._internal_error(location)
        if self.state != State.CLOSED and not self.responding:
            response.close = response.close or early
            self.send(response)

    def internal_redirect(self, target: str) -> None:
        """Serve ``target`` as a GET in place of the current request (CGI local redirect).

        More than ``MAX_INTERNAL_REDIRECTS`` in a row give 500, as a cycle.
        """
        request = self.request
        assert request is not None
        self._drop_handler()
        self.redirects += 1
        if self.redirects > MAX_INTERNAL_REDIRECTS:
            log.error("internal redirect cycle at %s", target)
            self.send(self._internal_error(None))
            return
        headers = Headers([(n, v) for n, v in request.headers if n not in _BODY_FIELDS])
        redirected = Request(
            "GET",
            target,
            request.version,
            headers,
            request.host,
            request.keep_alive,
            None,
            False,
            False,
        )
        self.request = redirected
        try:
            redirected.path, redirected.query = normalize_target(target)
        except HTTPError as exc:
            self.send(self._handler_error(exc, None))
            return
        self._route()
        self.state = State.BODY
        self._on_end()

    def session_store(self) -> SessionStore:
        """The worker's session store (opened on first use)."""
        return self.worker.session_store()

    # -- responses ----------------------------------------------------------

    def _protocol_error(self, exc: HTTPError) -> Response:
        """The answer to a malformed request: it always closes the connection."""
        response = handlers.error_for(exc, None, self.server)
        response.close = True
        return response

    def _handler_error(self, exc: HTTPError, location: Location | None) -> Response:
        """The answer to an ``HTTPError`` raised while handling a well-framed
        request: it closes the connection only for a 500 (as NGINX does);
        otherwise ``_keep_alive`` decides by whether the body was read."""
        response = handlers.error_for(exc, location, self.server, self.request)
        response.close = exc.status == 500
        return response

    def _internal_error(self, location: Location | None) -> Response:
        """A 500 for a failed handler; it closes the connection (as NGINX does)."""
        pages = location.error_pages if location is not None else self.server.error_pages
        response = error_response(500, pages)
        response.close = True
        return response

    def _keep_alive(self, response: Response) -> bool:
        request = self.request
        return (
            request is not None
            and request.keep_alive
            and not response.close
            and not self.worker.stopping
            # The request body must have been read to its end.
            and (self.state == State.HANDLE or (self.state == State.BODY and self.parser.in_head))
        )

    def _head(self, response: Response, framing: bytes | None) -> bytes:
        extra = self.extra_headers
        if _DEBUG_PID:
            extra = [*extra, ("X-Worker-PID", str(os.getpid()))]
        if self.extra_headers:
            self.extra_headers = []
        request = self.request
        http10 = request is not None and request.version == "HTTP/1.0"
        return response_head(response, self.keep_alive, http10, framing, extra)

    def send(self, response: Response) -> None:
        """Queue the whole final ``response`` for the current request and write it."""
        if self.state == State.CLOSED:
            response.release()
            return
        if self.handler is not None:
            self._drop_handler()
        self.keep_alive = self._keep_alive(response)
        head = self._head(response, None)
        body = response.file
        out = self.out
        self.log_status = response.status
        self.log_pending = True
        self.log_bytes = response.content_length if response.status not in (204, 304) else 0
        if self.request is not None and self.request.method == "HEAD":
            self.log_bytes = 0
            response.release()
            out.append(head)
            self.out_bytes += len(head)
        elif body is not None:
            out.append(head)
            out.append(body)
            self.out_bytes += len(head)
        elif response.parts is not None:
            out.append(head)
            self.out_bytes += len(head)
            for part in response.parts:
                out.append(part)
                if not isinstance(part, FileBody):
                    self.out_bytes += len(part)
        else:
            data = head + response.body if response.body else head
            out.append(data)
            self.out_bytes += len(data)
        self.state = State.WRITE
        self.responding = True
        self._flush()
        if self.out:
            self._deadline(self.timeouts.send)
        if not self.in_event:
            self._update_interest()

    def start_response(self, response: Response, length: int | None) -> None:
        """Send the head of a response whose body follows through ``write``.

        ``length`` is the body's length in bytes when known (Content-Length);
        otherwise the body is chunked on HTTP/1.1 and delimited by closing the
        connection on HTTP/1.0 (RFC 9112 §6.3).
        """
        request = self.request
        assert request is not None
        http10 = request.version == "HTTP/1.0"
        self.keep_alive = self._keep_alive(response) and (length is not None or not http10)
        no_body = request.method == "HEAD" or response.status in (204, 304)
        if length is not None:
            framing = b"Content-Length: %d\r\n" % length
        elif http10 or response.status in (204, 304):
            framing = b""
        else:
            framing = _CHUNKED
        self.chunked = framing is _CHUNKED and not no_body
        self.streaming = True
        self.log_status = response.status
        self.log_bytes = 0
        self.log_pending = True
        head = self._head(response, framing)
        self.out.append(head)
        self.out_bytes += len(head)
        self._flush()
        self._update_interest()

    def write(self, data: bytes) -> bool:
        """Queue body bytes of a streamed response; False asks the producer to pause.

        The producer is resumed through its ``output_drained``.
        """
        if self.state == State.CLOSED:
            return False
        request = self.request
        if data and request is not None and request.method != "HEAD":
            self.log_bytes += len(data)
            if self.chunked:
                data = b"%x\r\n%b\r\n" % (len(data), data)
            self.out.append(data)
            self.out_bytes += len(data)
            if len(self.out) == 1:
                self._deadline(self.timeouts.send)
                self._flush()
                self._update_interest()
        return self.out_bytes < HIGH_WATER

    def finish(self) -> None:
        """End a streamed response."""
        if self.state == State.CLOSED:
            return
        self.handler = None
        if self.chunked:
            self.out.append(b"0\r\n\r\n")
            self.out_bytes += 5
        self.state = State.WRITE
        self.responding = True
        self._deadline(self.timeouts.send)
        self._flush()
        self._update_interest()

    def abort(self) -> None:
        """Drop the connection: a streamed response cannot be completed."""
        self.close()

    def _flush(self) -> None:
        out = self.out
        try:
            while out:
                item = out[0]
                if type(item) is FileBody:
                    if item.count:
                        sent = os.sendfile(
                            self.fd, item.fd, item.offset, min(item.count, SENDFILE_CHUNK)
                        )
                        if sent == 0:
                            raise ConnectionError("file shrank while being sent")
                        item.offset += sent
                        item.count -= sent
                        continue
                    item.close()
                    out.popleft()
                else:
                    sent = self.sock.send(item)
                    self.out_bytes -= sent
                    if sent == len(item):
                        out.popleft()
                    else:
                        out[0] = memoryview(item)[sent:]
                        break
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            log.debug("%s:%d: send failed: %s", *self.peer[:2], exc)
            self.close()
            return
        if out:
            return
        if self.responding:
            self._response_done()
        elif self.handler is not None and self.streaming:
            self.handler.output_drained()

    def _log(self) -> None:
        """One access log line for the request just answered (if its log is on)."""
        self.log_pending = False
        owner = self.location if self.location is not None else self.server
        target = owner.access_log
        if target is not None:
            line = combined_line(
                self.peer[0],
                self.request,
                self.log_status,
                self.log_bytes,
                time.monotonic() - self.request_start,
            )
            self.worker.access_logs.get(target).write(line)

    def _response_done(self) -> None:
        self._log()
        self.request_start = time.monotonic()
        self.responding = False
        self.streaming = False
        self.chunked = False
        self.request = None
        if not self.keep_alive:
            self._linger()
        elif self.parser.buffered:
            self.state = State.HEAD
            self._deadline(self.timeouts.client_header)
            if not self.in_event:
                # Finished from a handler's event (CGI): the pipelined request
                # waits for the next loop iteration, not for a socket event.
                self.loop.call_at(0.0, self._resume)
        else:
            self.state = State.IDLE
            self._deadline(self.timeouts.keepalive)

    def _resume(self) -> None:
        if self.state == State.HEAD:
            self._on_event(0)

    # -- closing ------------------------------------------------------------

    def _drop_handler(self) -> None:
        handler = self.handler
        if handler is not None:
            self.handler = None
            handler.close()

    def _linger(self) -> None:
        """Half-close and drain what the client still sends, so that it reads
        the response instead of a reset (NGINX's lingering close)."""
        self.state = State.LINGER
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close()
            return
        self._deadline(LINGER_TIMEOUT)

    def _drain(self) -> None:
        try:
            while self.sock.recv(RECV_SIZE):
                pass
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self.close()

    def expire(self, seconds: float) -> None:
        """Close this idle connection in ``seconds`` (the worker is stopping)."""
        self._deadline(seconds)

    @property
    def idle(self) -> bool:
        """True when no request is in progress (nothing to lose by closing)."""
        return self.state == State.IDLE or (self.state == State.HEAD and not self.parser.buffered)

    def close(self) -> None:
        """Close the socket and free everything the connection holds; idempotent."""
        if self.state == State.CLOSED:
            return
        self.state = State.CLOSED
        if self.log_pending:
            self._log()
        self._drop_handler()
        self.loop.cancel(self.timer, forget=True)
        self.loop.unregister(self.fd)
        for item in self.out:
            if type(item) is FileBody:
                item.close()
        self.out.clear()
        self.sock.close()
        self.worker.forget(self)


_BODY_FIELDS = frozenset({"content-length", "transfer-encoding", "content-type", "expect"})
