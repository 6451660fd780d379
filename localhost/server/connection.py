"""One client connection: the request/response state machine and write queue.

States (DESIGN.md): ``HEAD`` (waiting for or reading a request head) →
route and check → ``BODY`` (reading the body, if any) → handle → ``WRITE``
(the response is queued and being sent) → ``IDLE`` (keep-alive) or
``LINGER`` (half-closed, draining what the client still sends) → ``CLOSED``.

The connection watches EPOLLIN while it reads and EPOLLOUT only while output
is pending; a response that is written at once costs no ``epoll.modify``.
Requests are taken one at a time: a pipelined request is parsed only when
the previous response has left the queue, which also bounds the memory one
connection can hold. One ``Timer`` per connection enforces the deadline of
its current state:

- ``HEAD``: ``client_header_timeout`` from the first byte of the request
  (absolute: trickling bytes does not extend it) → 408, close;
- ``BODY``: ``client_body_timeout`` between two reads → 408, close;
- ``WRITE``: ``send_timeout`` between two writes that make progress → close;
- ``IDLE``: ``keepalive_timeout`` → close;
- ``LINGER``: ``LINGER_TIMEOUT`` → close.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import deque
from enum import IntEnum
from typing import TYPE_CHECKING

from localhost.config.model import IMPLEMENTED_METHODS, Location, ServerBlock, Timeouts
from localhost.handlers import check, error_for, handle
from localhost.handlers.error_pages import error_response
from localhost.http.errors import HTTPError
from localhost.http.message import FileBody, Request, Response, response_head
from localhost.http.parser import END, NEED_DATA, Data, RequestParser
from localhost.routing import normalize_target
from localhost.server.loop import EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, Timer

if TYPE_CHECKING:
    from localhost.server.worker import Worker

log = logging.getLogger("localhost")

RECV_SIZE = 64 * 1024  # bytes per recv
SENDFILE_CHUNK = 8 * 1024 * 1024  # bytes per sendfile call, so one client cannot hog the loop
LINGER_TIMEOUT = 5.0  # seconds to drain a half-closed connection (NGINX lingering_timeout)
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
OPTIONS_STAR_ALLOW = ", ".join(sorted(IMPLEMENTED_METHODS))


class State(IntEnum):
    HEAD = 1
    BODY = 2
    WRITE = 3
    IDLE = 4
    LINGER = 5
    CLOSED = 6


class Connection:
    """A client socket driven by the worker's event loop."""

    __slots__ = (
        "worker",
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
        "body_seen",
        "out",
        "writing",
        "responding",
        "keep_alive",
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
        self.sock = sock
        self.fd = sock.fileno()
        self.peer = peer
        self.local = local
        self.parser = RequestParser()
        self.state = State.HEAD
        # Until a request names its virtual host, the address's default
        # server block decides the timeouts (as in NGINX).
        self.timeouts: Timeouts = default_server.timeouts
        self.server: ServerBlock = default_server
        self.request: Request | None = None
        self.location: Location | None = None
        self.pending: Response | None = None
        self.body_seen = 0
        self.out: deque[bytes | memoryview | FileBody] = deque()
        self.writing = False
        self.responding = False
        self.keep_alive = True
        loop = worker.loop
        self.timer: Timer = loop.call_at(
            time.monotonic() + self.timeouts.client_header, self._on_timeout
        )
        loop.register(self.fd, EPOLLIN, self._on_event)

    # -- events -------------------------------------------------------------

    def _on_event(self, mask: int) -> None:
        try:
            if mask & EPOLLOUT or (self.writing and mask & (EPOLLERR | EPOLLHUP)):
                self._on_writable()
            elif self.state == State.LINGER:
                self._drain()
            else:
                self._on_readable()
        except Exception:
            # A bug must cost one connection, never the worker; closing also
            # stops a level-triggered fd from firing again forever.
            log.exception("%s:%d: unexpected error; closing the connection", *self.peer[:2])
            self.close()

    def _on_readable(self) -> None:
        try:
            data = self.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        if not data:
            self.close()
            return
        state = self.state
        if state == State.IDLE:
            self.state = State.HEAD
            self._deadline(self.timeouts.client_header)
        elif state == State.BODY:
            self._deadline(self.timeouts.client_body)
        self.parser.feed(data)
        self._process()

    def _on_writable(self) -> None:
        self._deadline(self.timeouts.send)
        self._flush()
        if self.state == State.HEAD or self.state == State.IDLE or self.state == State.BODY:
            self._process()

    def _on_timeout(self) -> None:
        state = self.state
        if state == State.BODY or (state == State.HEAD and self.parser.buffered):
            log.info("%s:%d: request timed out (408)", *self.peer[:2])
            self._send(error_response(408, self.server.error_pages))
        else:
            self.close()

    def _deadline(self, seconds: float) -> None:
        self.worker.loop.reschedule(self.timer, time.monotonic() + seconds)

    # -- requests -----------------------------------------------------------

    def _process(self) -> None:
        """Turn buffered bytes into requests while no output is pending."""
        parser = self.parser
        while not self.out and self.state <= State.BODY:
            try:
                event = parser.next_event()
            except HTTPError as exc:
                log.info("%s:%d: bad request (%d): %s", *self.peer[:2], exc.status, exc.detail)
                self._send(error_for(exc, None, self.server))
                return
            if event is NEED_DATA:
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
        self.state = State.BODY
        self.body_seen = 0
        self.location = None
        try:
            request.path, request.query = normalize_target(request.target)
        except HTTPError as exc:
            self._send(error_for(exc, None, self.server))
            return
        router = self.worker.router
        server = self.server = router.select(self.local, request.host)
        self.timeouts = server.timeouts
        if request.path == "*":
            # OPTIONS * asks about the server as a whole (RFC 9110 §9.3.7).
            self.pending = Response(200, [("Allow", OPTIONS_STAR_ALLOW)])
        else:
            location = self.location = router.match(server, request.path)
            self.pending = check(request, server, location)
        if not request.has_body:
            return
        response = self.pending
        if response is not None and (response.status == 413 or request.expect_continue):
            # Answer without reading the body; the connection cannot be reused.
            response.close = True
            self._send(response)
            return
        if request.expect_continue:
            self.out.append(CONTINUE)
            self._flush()
        self._deadline(self.timeouts.client_body)

    def _on_data(self, data: bytes) -> None:
        self.body_seen += len(data)
        # A chunked body is counted as it arrives (RFC 9110 §15.5.14).
        owner = self.location if self.location is not None else self.server
        if owner.body_limit and self.body_seen > owner.body_limit:
            if self.pending is not None and self.pending.file is not None:
                self.pending.file.close()
            self.pending = None
            self._send(error_response(413, owner.error_pages))

    def _on_end(self) -> None:
        request = self.request
        assert request is not None
        response = self.pending
        self.pending = None
        if response is None:
            location = self.location
            assert location is not None
            try:
                response = handle(request, location)
            except HTTPError as exc:
                response = error_for(exc, location, self.server)
            except Exception:
                log.exception("error handling %s %s", request.method, request.target)
                response = error_response(500, location.error_pages)
        self._send(response)

    # -- responses ----------------------------------------------------------

    def _send(self, response: Response) -> None:
        """Queue ``response`` (the final one for the current request) and start writing."""
        request = self.request
        keep_alive = (
            request is not None
            and request.keep_alive
            and not response.close
            and self.state == State.BODY
            and not self.worker.stopping
        )
        if keep_alive and self.state == State.BODY and not self.parser.in_head:
            keep_alive = False  # the body was not read to its end
        self.keep_alive = keep_alive
        head = response_head(
            response, keep_alive, request is not None and request.version == "HTTP/1.0"
        )
        body = response.file
        if request is not None and request.method == "HEAD":
            if body is not None:
                body.close()
            self.out.append(head)
        elif body is not None:
            self.out.append(head)
            self.out.append(body)
        elif response.body:
            self.out.append(head + response.body)
        else:
            self.out.append(head)
        self.state = State.WRITE
        self.responding = True
        self._deadline(self.timeouts.send)
        self._flush()

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
                    sent = self.sock.send(item)  # type: ignore[arg-type]
                    if sent == len(item):  # type: ignore[arg-type]
                        out.popleft()
                    else:
                        out[0] = memoryview(item)[sent:]  # type: ignore[arg-type]
                        break
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            log.debug("%s:%d: send failed: %s", *self.peer[:2], exc)
            self.close()
            return
        if out:
            if not self.writing:
                self.writing = True
                self.worker.loop.modify(self.fd, EPOLLOUT)
            return
        if self.writing:
            self.writing = False
            self.worker.loop.modify(self.fd, EPOLLIN)
        if self.responding:
            self._response_done()

    def _response_done(self) -> None:
        self.responding = False
        self.request = None
        if not self.keep_alive:
            self._linger()
        elif self.parser.buffered:
            self.state = State.HEAD
            self._deadline(self.timeouts.client_header)
        else:
            self.state = State.IDLE
            self._deadline(self.timeouts.keepalive)

    # -- closing ------------------------------------------------------------

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

    @property
    def idle(self) -> bool:
        """True when no request is in progress (nothing to lose by closing)."""
        return self.state == State.IDLE or (self.state == State.HEAD and not self.parser.buffered)

    def close(self) -> None:
        """Close the socket and free everything the connection holds; idempotent."""
        if self.state == State.CLOSED:
            return
        self.state = State.CLOSED
        self.worker.loop.cancel(self.timer, forget=True)
        self.worker.loop.unregister(self.fd)
        for item in self.out:
            if type(item) is FileBody:
                item.close()
        self.out.clear()
        if self.pending is not None and self.pending.file is not None:
            self.pending.file.close()
        self.sock.close()
        self.worker.forget(self)
