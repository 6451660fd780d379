"""A worker: one event loop serving every listen address of the config.

The worker accepts connections on its listening sockets and makes each a
``SocketTransport`` driving an ``HTTP1Protocol``, or the protocol of the
listen address's server block (``protocol echo`` / ``MODULE:CLASS``, with
``keepalive_timeout`` as its idle limit). Per-worker state (file cache,
session store, CGI processes, logs) is its ``Services``, made here, after
the fork, and rebuilt on reload. It runs alone (one process: it binds its own sockets, and
SIGHUP reloads the configuration in place) or under the prefork master
(``master.py``), which binds the sockets, forks the workers and watches
them; then every worker waits on the shared sockets with EPOLLEXCLUSIVE, so
that a connection wakes one worker, and a worker whose master is gone stops.

Stopping: SIGTERM and SIGINT (alone) stop accepting and let requests in
flight finish for up to ``SHUTDOWN_GRACE`` seconds; SIGQUIT does the same
for up to ``worker_shutdown_timeout``. Idle keep-alive connections get
``IDLE_GRACE`` seconds, in which a request that was already on its way is
still answered (with ``Connection: close``), rather than being cut at once.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import mmap
import os
import select
import signal
import socket
import struct
import time
from collections.abc import Callable
from typing import Any, cast

from localhost.accesslog import flush_error_log, reopen_error_log
from localhost.app.mount import connection_hooks, run_setup_hooks
from localhost.config import ConfigError, load
from localhost.config.model import Config, ServerBlock
from localhost.http.message import Request, Response
from localhost.http.writer import response_head
from localhost.io import SocketTransport, Transport
from localhost.io.loop import EPOLLIN, EventLoop
from localhost.io.tls import TLSTransport, probe_ktls
from localhost.limits import LIMITS
from localhost.routing import Router
from localhost.server.http1 import HTTP1Protocol
from localhost.server.listener import Address, ListenError, ListenSpec, bind_all
from localhost.server.pipeline import Pipeline, TLSHost, TLSPipeline
from localhost.server.protocols import plain_http_reply, protocol_factory, wrap_idle_timeout
from localhost.services import Services

log = logging.getLogger("localhost")

SHUTDOWN_GRACE = LIMITS.shutdown_grace_seconds  # for responses in flight after SIGTERM/SIGINT
ACCEPT_PAUSE = LIMITS.accept_pause_seconds  # without accepting after EMFILE/ENFILE
FLUSH_EVERY = LIMITS.flush_every_seconds  # between writes of the buffered logs
PARENT_CHECK_EVERY = LIMITS.parent_check_every_seconds  # between checks that the master lives
HEARTBEAT_EVERY = LIMITS.heartbeat_every_seconds  # between two heartbeats of a worker
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_BUSY_BODY = b"Service Unavailable\n"


_STAMP = struct.Struct("d")
RECV_SIZE = LIMITS.recv_size_bytes  # the worker's receive buffer, shared by its connections


class Heartbeat:
    """A worker's sign of life: a monotonic time its loop last ran, shared with the master.

    Made by the master before ``fork`` (anonymous shared memory, no file
    descriptor); the worker beats from a timer of its event loop, so a
    worker whose loop is stuck stops beating. ``CLOCK_MONOTONIC`` is the same
    clock in every process of the machine, so the master compares it with its own.
    """

    __slots__ = ("_page", "killed")

    def __init__(self) -> None:
        self._page = mmap.mmap(-1, _STAMP.size)
        self.killed = False
        self.beat()

    def beat(self) -> None:
        """Record that the worker's loop is running now."""
        _STAMP.pack_into(self._page, 0, time.monotonic())

    @property
    def last(self) -> float:
        """The ``time.monotonic()`` of the latest beat (seconds)."""
        return float(_STAMP.unpack_from(self._page, 0)[0])

    def close(self) -> None:
        """Unmap the shared page (the master, once the worker is reaped)."""
        self._page.close()


class _Listener:
    __slots__ = (
        "sock",
        "spec",
        "address",
        "shared",
        "default_server",
        "paused",
        "factory",
        "http2",
        "tls",
    )

    def __init__(self, sock: socket.socket, spec: ListenSpec, default: ServerBlock) -> None:
        self.sock = sock
        self.spec = spec
        self.address = spec.address
        self.shared = spec.shared
        self.default_server = default
        self.paused = False
        # None for HTTP; every block of an address speaks the same protocol.
        self.factory: Callable[[], Any] | None = protocol_factory(default)
        #: ``http2 on``: a clear-text client may open with the HTTP/2 preface.
        self.http2 = default.speaks_http2(spec.address)
        #: The TLS context handshakes start with (None: plain TCP).
        self.tls = spec.ssl


def _sniffer(host: Any, server: ServerBlock, http: HTTP1Protocol) -> Any:
    """HTTP/1.1 or, when the client opens with the preface, HTTP/2 (``http2 on``)."""
    # Imported where HTTP/2 is configured (see _tls_setup): h2 and its HPACK
    # tables cost every worker about 4 MiB otherwise.
    from localhost.server.http2 import HTTP2Protocol, PrefaceSniffer

    return PrefaceSniffer(
        lambda: http,
        lambda: HTTP2Protocol(host, server, number=http.number),
        server.timeouts.client_header,
    )


class Worker:
    """Serve ``config`` from one process and one thread.

    ``sockets`` are listening sockets bound by the master (by address);
    ``master_pid`` is set when the worker runs under a master.
    """

    def __init__(
        self,
        config: Config,
        sockets: dict[Address, socket.socket] | None = None,
        master_pid: int | None = None,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self.config = config
        self.router = Router(config)
        self.loop = EventLoop()
        self.sockets: dict[Address, socket.socket] = dict(sockets or {})
        self.master_pid = master_pid
        self.heartbeat = heartbeat
        self.listeners: list[_Listener] = []
        self.connections: set[Transport] = set()
        self.stopping = False
        self.parse_memo: dict[bytes, Request] = {}
        self.recv_buffer = bytearray(RECV_SIZE)
        # Made in the worker process (after the master's fork), closed by run().
        self.services = Services(config, self.loop)
        self.pipeline = Pipeline(self.router, self.services)
        self._tls_setup()
        # id(server block) → an App's connection hooks on its addresses.
        self.hooks = connection_hooks(config, self.services.applications)
        self._refused = 0
        self.accepted = 0  # connections so far: their serial numbers ($connection)
        self._signals_installed = False
        if self.sockets:
            self._make_listeners()

    def _tls_setup(self) -> None:
        """The TLS pipeline (421, https) and the view of this worker that TLS
        connections get; kernel TLS as probed at start (``probe_ktls``)."""
        self.tls_pipeline = TLSPipeline(self.router, self.services)
        self.tls_host = TLSHost(self)
        self.ktls = bool(self.router.tls_addresses) and probe_ktls()[0]
        if any(
            server.options.get("http2") or server.http2_addresses
            for server in self.router.config.servers
        ):
            # Loaded now rather than at the first HTTP/2 connection.
            import localhost.server.http2  # noqa: F401

    def _sni(self, local: Address, name: str | None) -> Any:
        """The context for the SNI ``name`` on ``local`` (the router's choice)."""
        return self.router.tls_context(local, name)

    def listen(self) -> None:
        """Bind every listen address. Raises ``ListenError`` (and binds nothing)."""
        self.install_signals()
        self.sockets = bind_all(self.router.bind_addresses(), {})
        self._make_listeners()

    def _make_listeners(self) -> None:
        self.listeners = []
        for host, port, shared in self.router.bind_addresses():
            default = self.router.select((host, port), "")
            context = None if shared else self.router.address_context((host, port))
            spec = ListenSpec(host, port, shared, default.protocol, context)
            self.listeners.append(_Listener(self.sockets[(host, port)], spec, default))

    def install_signals(self) -> None:
        """Route the signals this worker obeys into its loop (idempotent).

        Done before the sockets listen: a client that can connect can also
        see its SIGINT/SIGTERM obeyed, never the default action.
        """
        if self._signals_installed:
            return
        self._signals_installed = True
        loop = self.loop
        if self.master_pid is None:
            loop.add_signal_handler(signal.SIGINT, self.shutdown)
            loop.add_signal_handler(signal.SIGHUP, lambda _signum: self.reload())
        else:
            # Ctrl-C reaches the whole process group: the master decides.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            loop.call_at(time.monotonic() + PARENT_CHECK_EVERY, self._check_parent)
        loop.add_signal_handler(signal.SIGTERM, self.shutdown)
        loop.add_signal_handler(signal.SIGQUIT, self.shutdown)
        loop.add_signal_handler(signal.SIGUSR1, lambda _signum: self.reopen_logs())

    def run(self) -> None:
        """Serve until stopped by a signal; the sockets must be bound."""
        loop = self.loop
        self.install_signals()
        for listener in self.listeners:
            self._watch(listener)
        loop.call_at(time.monotonic() + FLUSH_EVERY, self._flush_logs)
        if self.heartbeat is not None:
            self._beat()
        try:
            loop.run()
        finally:
            for transport in list(self.connections):
                transport.abort()
            # Their connection_lost (handlers release what they hold), before the loop goes.
            loop.run_pending()
            for listener in self.listeners:
                listener.sock.close()
            self.services.close()
            loop.close()
            flush_error_log()

    def _watch(self, listener: _Listener) -> None:
        # Under a master every worker waits on the same sockets: EPOLLEXCLUSIVE
        # wakes one of them per connection instead of all (no thundering herd).
        mask = EPOLLIN | select.EPOLLEXCLUSIVE if self.master_pid is not None else EPOLLIN
        self.loop.register(listener.sock.fileno(), mask, lambda _mask: self._accept(listener))

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
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if listener.shared:
                # A wildcard socket: the local address picks the block, and its protocol.
                local = sock.getsockname()[:2]
                server = self.router.select(local, "")
                factory = protocol_factory(server)
                http2 = server.speaks_http2(local, listener.address)
                tls = self.router.address_context(local)
            else:
                local, server = listener.address, listener.default_server
                factory = listener.factory
                http2 = listener.http2
                tls = listener.tls
            hooks = self.hooks.get(id(server)) if self.hooks else None
            if hooks is not None and not run_setup_hooks(hooks[0], peer[:2], local):
                sock.close()  # an App's connection_setup_hook said DROP
                continue
            try:
                if tls is not None:
                    transport = self._tls(sock, peer, local, server, tls)
                elif factory is None:
                    http = HTTP1Protocol(self, server)
                    self.accepted += 1
                    http.number = self.accepted
                    if hooks is not None:
                        http.teardown = hooks[1]
                    first: Any = http
                    if http2:
                        first = _sniffer(self, server, http)
                    transport = SocketTransport(
                        self.loop,
                        sock,
                        first,
                        recv_buffer=self.recv_buffer,
                        peername=peer,
                        sockname=local,
                        on_lost=self._forget,
                    )
                else:
                    protocol = factory()
                    transport = SocketTransport(
                        self.loop,
                        sock,
                        protocol,
                        recv_buffer=self.recv_buffer,
                        peername=peer,
                        sockname=local,
                        on_lost=self._forget,
                    )
                    if not transport.is_closing():
                        wrap_idle_timeout(transport, protocol, server.timeouts.keepalive)
            except OSError as exc:  # epoll registration failed (ENOMEM, ENOSPC)
                log.error("cannot watch a new connection: %s", exc)
                sock.close()
                continue
            self.connections.add(transport)

    def _tls(
        self, sock: socket.socket, peer: Any, local: Address, server: ServerBlock, context: Any
    ) -> Transport:
        """A TLS connection: the handshake (deadline ``client_header_timeout``),
        then HTTP/1.1 through the TLS pipeline, or HTTP/2 when the block has
        ``http2 on`` and ALPN chose ``h2``."""
        # TLSHost is the worker with another pipeline (read-only: mypy cannot tell).
        http = HTTP1Protocol(cast(Any, self.tls_host), server)
        self.accepted += 1
        http.number = self.accepted
        hooks = self.hooks.get(id(server)) if self.hooks else None
        if hooks is not None:
            http.teardown = hooks[1]
        first: Any = http
        if server.tls is not None and server.tls.http2:  # h2 is in its ALPN list
            tls_host = cast(Any, self.tls_host)
            from localhost.server.http2 import ALPNChooser, HTTP2Protocol

            first = ALPNChooser(
                lambda: http, lambda: HTTP2Protocol(tls_host, server, "https", http.number)
            )
        return TLSTransport(
            self.loop,
            sock,
            first,
            context=context,
            handshake_timeout=server.timeouts.client_header,
            select_context=self._sni,
            plain_reply=plain_http_reply,
            recv_buffer=self.recv_buffer,
            peername=peer,
            sockname=local,
            on_lost=self._forget,
            ktls=self.ktls,
        )

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
            if not self.stopping and listener in self.listeners:
                self._watch(listener)

        self.loop.call_at(time.monotonic() + ACCEPT_PAUSE, resume)

    def _forget(self, transport: Transport) -> None:
        """A connection is over (its transport's ``on_lost``)."""
        self.connections.discard(transport)
        if self.stopping and not self.connections:
            self.loop.stop()

    def shutdown(self, signum: int = signal.SIGTERM) -> None:
        """Stop accepting, finish the requests in flight, then stop the loop.

        SIGQUIT waits up to ``worker_shutdown_timeout``; SIGTERM and SIGINT up
        to ``SHUTDOWN_GRACE`` seconds (or the former, if shorter).
        """
        if self.stopping:
            return
        self.stopping = True
        log.info("received %s, shutting down", signal.Signals(signum).name)
        for listener in self.listeners:
            self.loop.unregister(listener.sock.fileno())
            listener.sock.close()
        self.listeners.clear()
        self.sockets.clear()
        for transport in list(self.connections):
            # Idle ones close after IDLE_GRACE, busy ones once their answer is out.
            transport.shutdown()
        if not self.connections:
            self.loop.stop()
            return
        grace = self.config.worker_shutdown_timeout
        if signum != signal.SIGQUIT:
            grace = min(grace, SHUTDOWN_GRACE)
        self.loop.call_at(time.monotonic() + grace, self.loop.stop)

    def reload(self) -> None:
        """SIGHUP without a master: read the configuration again and switch to it.

        An invalid file is logged (``file:line:column: message``) and the old
        configuration kept. Listen addresses that appear are bound, those that
        disappear are closed, those kept are never closed. Requests already
        being handled finish under the old configuration.
        """
        try:
            rebuild = self.config.rebuild
            config = rebuild() if rebuild is not None else load(self.config.path)
            router = Router(config)
            sockets = bind_all(router.bind_addresses(), self.sockets)
        except (ConfigError, ListenError) as exc:
            log.error("reload failed, keeping the old configuration: %s", exc)
            return
        for warning in config.warnings:
            log.warning("%s", warning)
        if config.worker_processes != 1:
            log.warning("worker_processes changes take effect at the next start")
        for listener in self.listeners:
            self.loop.unregister(listener.sock.fileno())
        for address, sock in self.sockets.items():
            if sockets.get(address) is not sock:
                sock.close()
        self.config, self.router, self.sockets = config, router, sockets
        # Remembered heads carry where the old configuration routed them.
        self.parse_memo.clear()
        self.services.reload(config)
        self.pipeline = Pipeline(router, self.services)
        self._tls_setup()
        self.hooks = connection_hooks(config, self.services.applications)
        self._make_listeners()
        for listener in self.listeners:
            self._watch(listener)
        log.info("configuration reloaded from %s", config.path)

    def reopen_logs(self) -> None:
        """SIGUSR1: reopen the access and error logs (after logrotate moved them)."""
        self.services.access_logs.reopen()
        reopen_error_log()
        log.info("log files reopened")

    def _flush_logs(self) -> None:
        self.services.access_logs.flush()
        flush_error_log()
        self.loop.call_at(time.monotonic() + FLUSH_EVERY, self._flush_logs)

    def _beat(self) -> None:
        assert self.heartbeat is not None
        self.heartbeat.beat()
        # Several beats per worker_timeout, so that a late timer is not a death.
        interval = min(HEARTBEAT_EVERY, (self.config.worker_timeout or HEARTBEAT_EVERY) / 4)
        self.loop.call_at(time.monotonic() + interval, self._beat)

    def _check_parent(self) -> None:
        if os.getppid() != self.master_pid:
            log.error("the master process is gone; stopping")
            self.shutdown(signal.SIGQUIT)
            return
        self.loop.call_at(time.monotonic() + PARENT_CHECK_EVERY, self._check_parent)
