"""A worker: one event loop serving every listen address of the config.

The worker accepts connections on its listening sockets and hands each to a
``Connection``. SIGINT and SIGTERM stop it gracefully: it stops accepting,
closes idle connections, lets requests in flight finish for up to
``SHUTDOWN_GRACE`` seconds, then returns.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import signal
import socket
import time

from localhost.config.model import Config, ServerBlock
from localhost.http.message import Response, response_head
from localhost.routing import Router
from localhost.server.connection import Connection
from localhost.server.listener import bind
from localhost.server.loop import EPOLLIN, EventLoop
from localhost.sessions import SessionStore

log = logging.getLogger("localhost")

SHUTDOWN_GRACE = 5.0  # seconds for responses in flight at shutdown
ACCEPT_PAUSE = 0.5  # seconds without accepting after EMFILE/ENFILE
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_BUSY_BODY = b"Service Unavailable\n"


class _Listener:
    __slots__ = ("sock", "address", "shared", "default_server", "paused")

    def __init__(
        self, sock: socket.socket, address: tuple[str, int], shared: bool, default: ServerBlock
    ):
        self.sock = sock
        self.address = address
        self.shared = shared
        self.default_server = default
        self.paused = False


class Worker:
    """Serve ``config`` from one process and one thread."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.router = Router(config)
        self.loop = EventLoop()
        self.listeners: list[_Listener] = []
        self.connections: dict[int, Connection] = {}
        self.stopping = False
        self._sessions: SessionStore | None = None
        self._refused = 0

    def session_store(self) -> SessionStore:
        """The session store, opened on first use."""
        if self._sessions is None:
            self._sessions = SessionStore(self.config.session_store, self.config.session_timeout)
        return self._sessions

    def listen(self) -> None:
        """Bind every listen address. Raises ``ListenError`` (and binds nothing)."""
        try:
            for host, port, shared in self.router.bind_addresses():
                sock = bind(host, port)
                default = self.router.select((host, port), "")
                self.listeners.append(_Listener(sock, (host, port), shared, default))
        except Exception:
            for listener in self.listeners:
                listener.sock.close()
            self.listeners.clear()
            raise

    def run(self) -> None:
        """Serve until SIGINT/SIGTERM; ``listen`` must have been called."""
        for listener in self.listeners:
            self._watch(listener)
        self.loop.add_signal_handler(signal.SIGINT, self.shutdown)
        self.loop.add_signal_handler(signal.SIGTERM, self.shutdown)
        try:
            self.loop.run()
        finally:
            for connection in list(self.connections.values()):
                connection.close()
            for listener in self.listeners:
                listener.sock.close()
            self.loop.close()
            if self._sessions is not None:
                self._sessions.close()

    def _watch(self, listener: _Listener) -> None:
        self.loop.register(listener.sock.fileno(), EPOLLIN, lambda _mask: self._accept(listener))

    def _accept(self, listener: _Listener) -> None:
        # Accept until the queue is empty (a bounded batch keeps the loop fair).
        for _ in range(128):
            try:
                sock, peer = listener.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:
                    self._pause(listener, exc)
                return  # ECONNABORTED and the like: the next event retries
            if len(self.connections) >= self.config.worker_connections:
                self._refuse(sock)
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if listener.shared:
                local = sock.getsockname()[:2]
                server = self.router.select(local, "")
            else:
                local, server = listener.address, listener.default_server
            connection = Connection(self, sock, peer, local, server)
            self.connections[connection.fd] = connection

    def _refuse(self, sock: socket.socket) -> None:
        """Past ``worker_connections``: answer 503 if the socket takes it at once, and close.

        Accepting and closing keeps the listen queue moving instead of letting
        it fill up and stall every client.
        """
        if not self._refused:
            log.warning("%d worker_connections are not enough", self.config.worker_connections)
        self._refused += 1
        with contextlib.suppress(OSError):
            sock.setblocking(False)
            busy = Response(503, [("Content-Type", "text/plain"), ("Retry-After", "1")], _BUSY_BODY)
            sock.send(response_head(busy, keep_alive=False, http10=False) + _BUSY_BODY)
        sock.close()

    def _pause(self, listener: _Listener, exc: OSError) -> None:
        """Out of descriptors: stop watching the listener for a moment instead of spinning."""
        if listener.paused:
            return
        log.error("accept() failed: %s; pausing accepts for %.1f s", exc.strerror, ACCEPT_PAUSE)
        listener.paused = True
        self.loop.unregister(listener.sock.fileno())

        def resume() -> None:
            listener.paused = False
            if not self.stopping:
                self._watch(listener)

        self.loop.call_at(time.monotonic() + ACCEPT_PAUSE, resume)

    def forget(self, connection: Connection) -> None:
        """Called by a connection once it is closed."""
        self.connections.pop(connection.fd, None)
        if self.stopping and not self.connections:
            self.loop.stop()

    def shutdown(self, signum: int = signal.SIGTERM) -> None:
        """Stop accepting, finish requests in flight (up to ``SHUTDOWN_GRACE``), then stop."""
        if self.stopping:
            return
        self.stopping = True
        log.info("received %s, shutting down", signal.Signals(signum).name)
        for listener in self.listeners:
            self.loop.unregister(listener.sock.fileno())
            listener.sock.close()
        self.listeners.clear()
        for connection in list(self.connections.values()):
            if connection.idle:
                connection.close()
        if not self.connections:
            self.loop.stop()
            return
        self.loop.call_at(time.monotonic() + SHUTDOWN_GRACE, self.loop.stop)
