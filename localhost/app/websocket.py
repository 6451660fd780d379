"""WebSocket endpoints of the App API: ``@app.websocket`` and ``app.group``.

Two styles (see ``App.websocket``):

- event style (the default): a class whose instance (one per connection)
  gets ``on_connect(ws, *params)``, ``on_message(ws, message)``,
  ``on_writable(ws)`` and ``on_close(ws, code, reason)`` on the event loop.
  Nothing may block; ``ws.send`` never does (it returns False above the
  high-water mark, and ``on_writable`` follows). It scales to thousands of
  sockets per worker.
- blocking style (``threaded=True``): a function ``fn(ws, *params)`` run in
  a thread of the worker's application pool for the life of the socket.
  ``for message in ws`` (or ``ws.receive()``) waits for messages and ends
  when the socket closes; ``ws.send`` waits while the client's buffer is
  full. Each open socket holds one pool thread: at most ``wsgi_threads``
  (``App(threads=...)``) such sockets are served at once per worker, and
  the handshake of one more is answered 503 when the pool's queue is full.

``ws`` (``localhost.server.websocket.WebSocket``, or ``BlockingWebSocket``
in a thread) has ``send``, ``ping``, ``close(code, reason)``, ``close_code``,
``close_reason``, ``subprotocol``, ``params`` (by name), ``request`` (the
handshake's ``localhost.http.message.Request``) and ``closed``.

Groups (``app.group(name)``) are per worker process: ``add``, ``discard``,
``broadcast(message)``, ``len``; a socket leaves its groups when it closes.
They belong to the event loop: use them from event-style endpoints.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from queue import SimpleQueue
from typing import TYPE_CHECKING, Any

from localhost.app.routes import NotAllowed, RouteTree
from localhost.handlers.websocket import settings_of
from localhost.http.errors import HTTPError
from localhost.limits import LIMITS
from localhost.server.websocket import (
    INTERNAL_ERROR,
    NORMAL,
    WebSocket,
    accept,
    is_websocket,
    refusal,
    upgrade_required,
)

if TYPE_CHECKING:
    from localhost.app.pool import ThreadPool
    from localhost.handlers.base import Exchange
    from localhost.io.loop import EventLoop

log = logging.getLogger("localhost")

#: Messages waiting for a blocking endpoint beyond which the client is not read.
QUEUE_MESSAGES = LIMITS.websocket_queue_messages


class WebSocketRoute:
    """A registered WebSocket endpoint: its target (a class, or a function
    when ``threaded``), the subprotocols it speaks (in preference order) and
    the names of its pattern's parameters."""

    __slots__ = ("target", "subprotocols", "threaded", "pattern", "names")

    def __init__(
        self, target: Any, subprotocols: tuple[str, ...], threaded: bool, pattern: str
    ) -> None:
        self.target = target
        self.subprotocols = subprotocols
        self.threaded = threaded
        self.pattern = pattern
        names = []
        for segment in pattern.split("/"):
            if segment.startswith(":"):
                names.append(segment[1:])
            elif segment in ("*", "**"):
                names.append(segment)
        self.names = tuple(names)


def check_target(target: Any, threaded: bool) -> None:
    """Raises ``ValueError`` for an endpoint that cannot serve in its style."""
    if threaded:
        if not callable(target) or isinstance(target, type):
            raise ValueError("a threaded WebSocket endpoint is a function fn(ws, *params)")
        return
    if not isinstance(target, type):
        raise ValueError(
            "an event-style WebSocket endpoint is a class with on_connect/on_message/"
            "on_close methods (or use threaded=True for a function)"
        )


class Group:
    """Sockets of one worker that messages go to together (a chat room)."""

    __slots__ = ("name", "members")

    def __init__(self, name: str) -> None:
        self.name = name
        self.members: dict[WebSocket, None] = {}  # insertion-ordered set

    def add(self, ws: WebSocket) -> None:
        """Add ``ws`` (a closed socket is not added)."""
        if not ws.closed:
            self.members[ws] = None

    def discard(self, ws: WebSocket) -> None:
        """Remove ``ws`` if it is a member."""
        self.members.pop(ws, None)

    def broadcast(self, message: str | bytes, exclude: WebSocket | None = None) -> int:
        """Send ``message`` to every open member but ``exclude``; how many got it
        queued. A member whose buffer is full still gets it queued (up to the
        hard limit, past which the server drops that client)."""
        sent = 0
        for ws in list(self.members):
            if ws.closed:
                self.members.pop(ws, None)
            elif ws is not exclude:
                ws.send(message)
                sent += 1
        return sent

    def __len__(self) -> int:
        return sum(1 for ws in self.members if not ws.closed)

    def __iter__(self) -> Iterator[WebSocket]:
        return iter([ws for ws in self.members if not ws.closed])

    def __contains__(self, ws: object) -> bool:
        return ws in self.members

    def __repr__(self) -> str:
        return f"<Group {self.name!r} {len(self)} sockets>"


def _ignore(*_args: Any) -> None:
    return None


class _EventEndpoint:
    """Calls an event-style endpoint's instance; drops the socket from the App's groups.

    ``on_message`` and ``on_writable`` are the instance's own bound methods
    (looked up once), so a message costs no extra call."""

    __slots__ = ("user", "params", "groups", "on_message", "on_writable")

    def __init__(self, user: Any, params: tuple[str, ...], groups: dict[str, Group]) -> None:
        self.user = user
        self.params = params
        self.groups = groups
        self.on_message: Callable[[WebSocket, str | bytes], Any] = getattr(
            user, "on_message", _ignore
        )
        self.on_writable: Callable[[WebSocket], Any] = getattr(user, "on_writable", _ignore)

    def on_connect(self, ws: WebSocket) -> None:
        on_connect = getattr(self.user, "on_connect", None)
        if on_connect is not None:
            on_connect(ws, *self.params)

    def on_close(self, ws: WebSocket, code: int, reason: str) -> None:
        for group in self.groups.values():
            group.members.pop(ws, None)
        on_close = getattr(self.user, "on_close", None)
        if on_close is not None:
            on_close(ws, code, reason)


_CLOSED = object()


class BlockingWebSocket:
    """The ``ws`` of a threaded endpoint: the same API, blocking, for one thread.

    ``receive()`` returns the next message (``str`` or ``bytes``), or None
    once the socket is closed; iterating gives the messages until then.
    ``send`` waits while the client's buffer is above the high-water mark.
    Every call goes to the event loop through ``call_soon_threadsafe``.
    """

    def __init__(self, loop: EventLoop) -> None:
        self._loop = loop
        self.ws: WebSocket  # set once made, before any callback
        self._messages: SimpleQueue[Any] = SimpleQueue()
        self._queued = 0  # messages not yet taken (read by the loop: a hint only)
        self._writable = threading.Event()
        self._writable.set()
        self._paused = False

    # -- what the thread sees ---------------------------------------------------

    @property
    def request(self) -> Any:
        return self.ws.request

    @property
    def params(self) -> dict[str, str]:
        return self.ws.params

    @property
    def subprotocol(self) -> str | None:
        return self.ws.subprotocol

    @property
    def close_code(self) -> int | None:
        return self.ws.close_code

    @property
    def close_reason(self) -> str | None:
        return self.ws.close_reason

    @property
    def closed(self) -> bool:
        return self.ws.closed

    def receive(self, timeout: float | None = None) -> str | bytes | None:
        """The next message; None when the socket closed (or ``timeout`` passed)."""
        try:
            message = self._messages.get(timeout=timeout)
        except Exception:  # queue.Empty
            return None
        if message is _CLOSED:
            self._messages.put(_CLOSED)  # every later receive() says closed too
            return None
        self._queued -= 1
        if self._paused and self._queued < QUEUE_MESSAGES // 2:
            self._loop.call_soon_threadsafe(self._resume)
        return message  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[str | bytes]:
        while True:
            message = self.receive()
            if message is None:
                return
            yield message

    def send(self, message: str | bytes) -> bool:
        """Send a message, waiting while the client's buffer is full; False
        once the socket is closed."""
        while not self._writable.wait(1.0):
            if self.ws.closed:
                return False
        if self.ws.closed:
            return False
        self._writable.clear()
        self._loop.call_soon_threadsafe(lambda: self._send(message))
        return True

    def ping(self, data: bytes = b"") -> None:
        self._loop.call_soon_threadsafe(lambda: self.ws.ping(data))

    def close(self, code: int = NORMAL, reason: str = "") -> None:
        self._loop.call_soon_threadsafe(lambda: self.ws.close(code, reason))

    # -- on the loop --------------------------------------------------------------

    def _send(self, message: str | bytes) -> None:
        if self.ws.send(message) or self.ws.closed:
            self._writable.set()
        # else: on_writable sets it

    def _resume(self) -> None:
        transport = self.ws.transport
        if self._paused and transport is not None:
            self._paused = False
            transport.resume_reading()

    def on_message(self, ws: WebSocket, message: str | bytes) -> None:
        self._queued += 1
        self._messages.put(message)
        if self._queued >= QUEUE_MESSAGES and not self._paused and ws.transport is not None:
            self._paused = True  # the thread is behind: stop reading the client
            ws.transport.pause_reading()

    def on_writable(self, ws: WebSocket) -> None:
        self._writable.set()

    def on_close(self, ws: WebSocket, code: int, reason: str) -> None:
        self._messages.put(_CLOSED)
        self._writable.set()


def _run_threaded(
    target: Callable[..., Any], blocking: BlockingWebSocket, params: tuple[str, ...]
) -> None:
    try:
        target(blocking, *params)
    except Exception:
        log.exception("WebSocket endpoint %s failed", getattr(target, "__name__", target))
        blocking.close(INTERNAL_ERROR, "")
        return
    blocking.close(NORMAL, "")


def start(
    exchange: Exchange,
    routes: RouteTree[WebSocketRoute],
    groups: dict[str, Group],
    route_path: str,
    pool: ThreadPool | None,
) -> bool:
    """Serve a WebSocket handshake to an App: True when ``exchange`` is one
    (it is then answered: 101 and the switch, or an error raised).

    Raises ``HTTPError``: 404 when no WebSocket route matches, the
    handshake's errors (``localhost.server.websocket.accept``), 503 when a
    threaded endpoint finds the pool's queue full.
    """
    request = exchange.request
    if not is_websocket(request):
        return False
    found = routes.match("GET", route_path)
    if found is None or isinstance(found, NotAllowed):
        raise HTTPError(404, f"no WebSocket endpoint for {route_path}")
    route = found.target
    settings = settings_of(exchange.location)
    try:
        accepted = accept(request, settings, route.subprotocols, exchange.scheme)
    except HTTPError as exc:
        exchange.send(refusal(exc))
        return True
    params = found.params
    named = dict(zip(route.names, params, strict=False))
    loop = exchange.loop
    if route.threaded:
        if pool is None:
            raise HTTPError(500, "a threaded WebSocket endpoint needs application threads")
        blocking = BlockingWebSocket(loop)
        ws = blocking.ws = WebSocket(
            loop, blocking, request, accepted, settings, named, exchange.peer
        )
        if not pool.submit(lambda: _run_threaded(route.target, blocking, params)):
            raise HTTPError(503, "every application thread is busy", [("Retry-After", "1")])
    else:
        endpoint = _EventEndpoint(route.target(), params, groups)
        ws = WebSocket(loop, endpoint, request, accepted, settings, named, exchange.peer)
    if not exchange.upgrade(accepted.response, lambda: ws):
        ws.connection_lost(None)  # too late to switch: a blocking endpoint ends
    return True


def not_upgraded(routes: RouteTree[WebSocketRoute], route_path: str) -> HTTPError | None:
    """426 for a plain request to a WebSocket route (None when it is none)."""
    found = routes.match("GET", route_path)
    if found is None or isinstance(found, NotAllowed):
        return None
    return upgrade_required()
