"""The prefork master: bind, fork N workers, supervise them, act on signals.

NGINX's process model. The master binds every listen address, then forks
``worker_processes`` workers that each run their own event loop on the
shared sockets (EPOLLEXCLUSIVE: one worker is woken per connection). The
master never accepts a connection. It blocks its signals and takes them one
at a time with ``sigtimedwait`` in its loop, so no work happens in signal
context:

======== ==============================================================
SIGHUP   reload: read and check the configuration; if it is invalid, log
         ``file:line:column: message`` and keep serving; else start a new
         generation of workers on it, then ask the old ones to finish their
         requests and exit (SIGQUIT)
SIGQUIT  graceful stop: workers finish their requests, then exit
SIGTERM  fast stop (SIGINT too): workers get ``worker_shutdown_timeout``,
         then SIGKILL
SIGUSR1  reopen the log files (logrotate), in the master and every worker
SIGCHLD  reap; a worker that died is replaced at once, and one that keeps
         dying within ``QUICK_DEATH`` seconds of starting is retried with a
         growing delay, ``MAX_QUICK_DEATHS`` times, before the master gives up
======== ==============================================================

A worker can also hang without dying (a handler stuck in a loop, a stopped
process). Each worker stamps the monotonic clock into a page of memory it
shares with the master (its heartbeat) from its own event loop; a worker
whose stamp is older than ``worker_timeout`` is killed (SIGKILL) and
replaced, as gunicorn's arbiter does with its ``timeout``.

Listen sockets kept across a reload are never closed; new ones are bound
before the new workers start; removed ones close when the last worker
holding them exits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass, field

from localhost.accesslog import flush_error_log, reopen_error_log
from localhost.config import ConfigError, load
from localhost.config.model import Config
from localhost.limits import LIMITS
from localhost.routing import Router
from localhost.server.listener import Address, ListenError, bind_all
from localhost.server.worker import FLUSH_EVERY, Heartbeat, Worker

log = logging.getLogger("localhost")

SIGNALS = {
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGUSR1,
    signal.SIGCHLD,
}
QUICK_DEATH = LIMITS.quick_death_seconds  # a worker dying sooner after its start: a failed start
MAX_QUICK_DEATHS = LIMITS.max_quick_deaths  # failed starts in a row before the master gives up
TICK = LIMITS.master_tick_seconds  # between looks at the workers when no signal comes


@dataclass
class _Generation:
    """The workers started on one configuration."""

    number: int
    config: Config
    sockets: dict[Address, socket.socket]
    size: int
    workers: dict[int, float] = field(default_factory=dict)  # pid -> start time
    heartbeats: dict[int, Heartbeat] = field(default_factory=dict)  # pid -> its heartbeat
    quick_deaths: int = 0
    next_start: float = 0.0


class Master:
    """Run ``config`` with ``workers`` worker processes (``workers`` ≥ 2)."""

    def __init__(self, config: Config, workers: int, fixed_workers: bool = False) -> None:
        self.config = config
        self.workers = workers
        self.fixed_workers = fixed_workers  # -w on the command line wins over the file
        self.generations: list[_Generation] = []
        self.sockets: dict[Address, socket.socket] = {}
        self.stopping: int | None = None  # the signal that stops us
        self.stop_deadline = 0.0
        self.exit_status = 0

    def listen(self) -> None:
        """Bind every listen address. Raises ``ListenError``.

        Signals are blocked first, so that one sent as soon as a socket
        accepts waits for the loop in ``run`` instead of killing the master.
        """
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        self.sockets = bind_all(Router(self.config).bind_addresses(), {})

    def run(self) -> int:
        """Fork the workers and supervise them until stopped; the exit status."""
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        self._new_generation(self.config, self.sockets, self.workers)
        next_flush = time.monotonic() + FLUSH_EVERY
        try:
            while True:
                info = signal.sigtimedwait(SIGNALS, TICK)
                if info is not None:
                    self._on_signal(info.si_signo)
                if time.monotonic() >= next_flush:
                    # The master's own lines (started, reloaded, reopened) reach
                    # the error log within a second, as the workers' do.
                    flush_error_log()
                    next_flush = time.monotonic() + FLUSH_EVERY
                self._reap()
                if self.stopping is not None:
                    if not any(g.workers for g in self.generations):
                        break
                    if time.monotonic() >= self.stop_deadline:
                        self._signal_all(signal.SIGKILL)
                else:
                    self._maintain()
                self._check_heartbeats()
        finally:
            for sock in self.sockets.values():
                sock.close()
            flush_error_log()
        return self.exit_status

    # -- workers ------------------------------------------------------------

    def _new_generation(
        self, config: Config, sockets: dict[Address, socket.socket], size: int
    ) -> _Generation:
        number = self.generations[-1].number + 1 if self.generations else 1
        generation = _Generation(number, config, sockets, size)
        self.generations.append(generation)
        for _ in range(size):
            self._spawn(generation)
        return generation

    def _spawn(self, generation: _Generation) -> None:
        master = os.getpid()
        heartbeat = Heartbeat()
        flush_error_log()
        pid = os.fork()
        if pid == 0:  # the worker
            status = 1
            try:
                # Sockets of other generations (removed by a reload) must not
                # stay open here, or they would keep accepting connections.
                mine = {id(sock) for sock in generation.sockets.values()}
                for other in self.generations:
                    for sock in other.sockets.values():
                        if id(sock) not in mine:
                            sock.close()
                status = _worker_main(generation.config, generation.sockets, master, heartbeat)
            finally:
                os._exit(status)
        generation.workers[pid] = time.monotonic()
        generation.heartbeats[pid] = heartbeat
        log.info("started worker %d (generation %d)", pid, generation.number)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self._on_exit(pid, status)

    def _on_exit(self, pid: int, status: int) -> None:
        for generation in self.generations:
            started = generation.workers.pop(pid, None)
            if started is None:
                continue
            heartbeat = generation.heartbeats.pop(pid, None)
            if heartbeat is not None:
                heartbeat.close()
            description = _describe(status)
            current = generation is self.generations[-1]
            if self.stopping is not None or not current:
                log.info("worker %d exited (%s)", pid, description)
            else:
                log.error("worker %d exited unexpectedly (%s)", pid, description)
                if time.monotonic() - started < QUICK_DEATH:
                    generation.quick_deaths += 1
                    delay = 0.1 * 2**generation.quick_deaths
                    generation.next_start = time.monotonic() + delay
                    if generation.quick_deaths >= MAX_QUICK_DEATHS:
                        log.critical(
                            "workers keep dying within %.0f s of starting (%d times, last: %s); "
                            "giving up",
                            QUICK_DEATH,
                            generation.quick_deaths,
                            description,
                        )
                        self.exit_status = 1
                        self._stop(signal.SIGTERM)
                else:
                    generation.quick_deaths = 0
            if not current and not generation.workers:
                self._retire(generation)
            return

    def _maintain(self) -> None:
        """Replace dead workers of the current generation."""
        generation = self.generations[-1]
        now = time.monotonic()
        while len(generation.workers) < generation.size and now >= generation.next_start:
            self._spawn(generation)

    def _check_heartbeats(self) -> None:
        """Kill (SIGKILL) every worker whose heartbeat is older than ``worker_timeout``.

        Reaping it then starts a replacement, as for any dead worker.
        """
        limit = self.config.worker_timeout
        if not limit:
            return
        now = time.monotonic()
        for generation in self.generations:
            for pid, heartbeat in generation.heartbeats.items():
                last = heartbeat.last
                if now - last > limit and not heartbeat.killed:
                    heartbeat.killed = True
                    log.error(
                        "worker %d did not answer its heartbeat for %.1f s "
                        "(worker_timeout %.1f s); killing it",
                        pid,
                        now - last,
                        limit,
                    )
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)

    def _retire(self, generation: _Generation) -> None:
        """Close the sockets only an exited generation used."""
        self.generations.remove(generation)
        kept = {id(sock) for g in self.generations for sock in g.sockets.values()}
        for sock in generation.sockets.values():
            if id(sock) not in kept:
                sock.close()

    def _signal_all(self, signum: int, generations: list[_Generation] | None = None) -> None:
        for generation in self.generations if generations is None else generations:
            for pid in generation.workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signum)

    # -- signals ------------------------------------------------------------

    def _on_signal(self, signum: int) -> None:
        if signum == signal.SIGCHLD:
            return  # reaped right after
        if signum == signal.SIGHUP and self.stopping is None:
            self._reload()
        elif signum == signal.SIGUSR1:
            reopen_error_log()
            log.info("log files reopened")
            self._signal_all(signal.SIGUSR1)
        elif signum in (signal.SIGQUIT, signal.SIGTERM, signal.SIGINT):
            self._stop(signum)

    def _stop(self, signum: int) -> None:
        if self.stopping is not None:
            if signum != signal.SIGQUIT:
                self._signal_all(signal.SIGTERM)  # a second, faster stop
            return
        log.info("received %s, stopping the workers", signal.Signals(signum).name)
        self.stopping = signum
        self.stop_deadline = time.monotonic() + self.config.worker_shutdown_timeout
        self._signal_all(signal.SIGQUIT if signum == signal.SIGQUIT else signal.SIGTERM)

    def _reload(self) -> None:
        log.info("received SIGHUP, reloading %s", self.config.path)
        try:
            rebuild = self.config.rebuild
            config = rebuild() if rebuild is not None else load(self.config.path)
            sockets = bind_all(Router(config).bind_addresses(), self.sockets)
        except (ConfigError, ListenError) as exc:
            log.error("reload failed, keeping the old configuration: %s", exc)
            return
        for warning in config.warnings:
            log.warning("%s", warning)
        size = self.workers if self.fixed_workers else config.worker_processes
        if size < 2:
            log.warning("worker_processes 1 needs a restart to leave the master; keeping 2")
            size = max(size, 2)
        old = list(self.generations)
        self.config, self.workers, self.sockets = config, size, sockets
        self._new_generation(config, sockets, size)
        self._signal_all(signal.SIGQUIT, old)
        for generation in old:
            if not generation.workers:
                self._retire(generation)
        log.info("reloaded: generation %d", self.generations[-1].number)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


def _worker_main(
    config: Config, sockets: dict[Address, socket.socket], master: int, heartbeat: Heartbeat
) -> int:
    """The body of a forked worker; returns its exit status."""
    for signum in (signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM, signal.SIGUSR1, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    try:
        worker = Worker(config, sockets, master_pid=master, heartbeat=heartbeat)
        # Handlers before unblocking: a signal the master sent early is then
        # obeyed through the loop rather than by the default action.
        worker.install_signals()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
        worker.run()
    except Exception:
        log.exception("worker %d failed", os.getpid())
        flush_error_log()
        return 1
    return 0
