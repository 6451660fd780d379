"""The event loop: one ``select.epoll``, a timer heap and signal wake-ups.

``poll`` is the only blocking call of the process; its timeout is the nearest
timer deadline. Each registered file descriptor has one callback that gets
the epoll event mask. Timers are kept lazily: moving a deadline later only
updates the ``Timer``; the heap entry is re-queued when it comes due.
Signals are written by Python's C-level handler to a wake-up socket
(``signal.set_wakeup_fd``) and dispatched from the loop, never from signal
context.

``call_soon`` queues a callback for the end of the current iteration (after
the events and timers); ``call_soon_threadsafe`` does the same from another
thread and wakes a blocked ``poll`` through an eventfd of its own, distinct
from the signal wake-up socket, so that a thread pool's results never
compete with signals.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import select
import signal
import socket
import subprocess
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger("localhost")

EPOLLIN = select.EPOLLIN
EPOLLOUT = select.EPOLLOUT
EPOLLERR = select.EPOLLERR
EPOLLHUP = select.EPOLLHUP
EPOLLRDHUP = select.EPOLLRDHUP


def _nothing() -> None:
    pass


class Timer:
    """A callback due at ``when`` (``time.monotonic`` seconds).

    A heap entry ``(queued, seq, timer)`` is live only while ``queued`` equals
    ``timer._queued``; every other entry of the timer is dead and skipped.
    """

    __slots__ = ("when", "callback", "_queued")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self._queued = when

    @property
    def active(self) -> bool:
        """Whether the timer will fire."""
        return self._queued != _NEVER


_NEVER = float("inf")
#: Rebuild the heap when more than this many entries, and half of it, are dead.
_COMPACT_AFTER = 256


class EventLoop:
    """epoll registry, timer heap and signal dispatch for one process."""

    def __init__(self) -> None:
        self.epoll = select.epoll()
        self._callbacks: dict[int, Callable[[int], None]] = {}
        self._timers: list[tuple[float, int, Timer]] = []
        self._dead = 0  # heap entries that will be skipped when popped
        self._seq = itertools.count()
        self._signals: dict[int, Callable[[int], None]] = {}
        self._wakeup_r: socket.socket | None = None
        self._wakeup_w: socket.socket | None = None
        self._children: dict[int, tuple[subprocess.Popen[bytes], Callable[[int], None]]] = {}
        # Callbacks for the end of this iteration; deque.append is atomic, so
        # other threads may add to it (then write the eventfd to wake poll).
        self._ready: deque[Callable[[], None]] = deque()
        self._eventfd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.register(self._eventfd, EPOLLIN, self._on_eventfd)
        self.running = False
        # The time of the latest wake-up, for deadlines: read once per poll
        # rather than once per request (as NGINX caches its time).
        self.now = time.monotonic()

    # -- file descriptors -------------------------------------------------

    def register(self, fd: int, mask: int, callback: Callable[[int], None]) -> None:
        """Watch ``fd`` for ``mask`` (EPOLLIN/EPOLLOUT); ``callback(events)`` runs on readiness."""
        self.epoll.register(fd, mask)
        self._callbacks[fd] = callback

    def modify(self, fd: int, mask: int) -> None:
        """Change the events watched on ``fd``."""
        self.epoll.modify(fd, mask)

    def unregister(self, fd: int) -> None:
        """Stop watching ``fd``; safe if it was never registered."""
        if self._callbacks.pop(fd, None) is not None:
            with contextlib.suppress(OSError, ValueError):
                self.epoll.unregister(fd)

    # -- timers -------------------------------------------------------------

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` at monotonic time ``when``; returns the ``Timer``."""
        timer = Timer(when, callback)
        heapq.heappush(self._timers, (when, next(self._seq), timer))
        return timer

    def reschedule(self, timer: Timer, when: float) -> None:
        """Make ``timer`` fire at ``when``: later is O(1), earlier pushes a new entry."""
        timer.when = when
        if when < timer._queued:
            if timer._queued != _NEVER:
                self._dead += 1
            timer._queued = when
            heapq.heappush(self._timers, (when, next(self._seq), timer))

    def cancel(self, timer: Timer, forget: bool = False) -> None:
        """Stop ``timer`` from firing (it may be rescheduled later).

        With ``forget``, also drop its callback, so that whatever the callback
        holds is freed now rather than when the dead heap entry comes due.
        """
        if timer._queued != _NEVER:
            timer._queued = _NEVER
            self._dead += 1
            if self._dead > _COMPACT_AFTER and self._dead * 2 > len(self._timers):
                self._compact()
        if forget:
            timer.callback = _nothing

    def _compact(self) -> None:
        self._timers = [entry for entry in self._timers if entry[0] == entry[2]._queued]
        heapq.heapify(self._timers)
        self._dead = 0

    def _run_timers(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            queued, _, timer = heapq.heappop(timers)
            if queued != timer._queued:
                self._dead -= 1
                continue
            if timer.when > now:  # moved later since it was queued
                timer._queued = timer.when
                heapq.heappush(timers, (timer.when, next(self._seq), timer))
                continue
            timer._queued = _NEVER
            timer.callback()

    # -- callbacks soon ------------------------------------------------------

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run ``callback()`` once, from the loop, after the events and timers of this
        iteration (the next iteration if called from one of these callbacks).

        Callbacks run in the order they were queued. Not thread-safe: other
        threads use ``call_soon_threadsafe``.
        """
        self._ready.append(callback)

    def call_soon_threadsafe(self, callback: Callable[[], None]) -> None:
        """``call_soon`` from any thread: queue ``callback`` and wake the loop's ``poll``.

        Raises ``RuntimeError`` once the loop is closed: threads that call it
        must be stopped before ``close``.
        """
        fd = self._eventfd
        if fd < 0:
            raise RuntimeError("the event loop is closed")
        self._ready.append(callback)
        # BlockingIOError: the counter is saturated, so the loop is awake anyway.
        with contextlib.suppress(BlockingIOError):
            os.eventfd_write(fd, 1)

    def _on_eventfd(self, _events: int) -> None:
        # Only resets the counter: the queued callbacks run at the end of the iteration.
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self._eventfd)

    def run_pending(self) -> None:
        """Run what ``call_soon`` has queued now, outside ``run`` (a stopping worker,
        so that the connections it aborted see their ``connection_lost``)."""
        self._run_ready()

    def _run_ready(self) -> None:
        ready = self._ready
        # Only what is queued now: a callback that queues another must not
        # keep the loop from polling.
        for _ in range(len(ready)):
            callback = ready.popleft()
            try:
                callback()
            except Exception:
                log.exception("unexpected error in a callback")

    # -- signals ------------------------------------------------------------

    def add_signal_handler(self, signum: int, callback: Callable[[int], None]) -> None:
        """Run ``callback(signum)`` from the loop when ``signum`` arrives."""
        if self._wakeup_r is None:
            self._wakeup_r, self._wakeup_w = socket.socketpair()
            self._wakeup_r.setblocking(False)
            self._wakeup_w.setblocking(False)
            signal.set_wakeup_fd(self._wakeup_w.fileno(), warn_on_full_buffer=False)
            self.register(self._wakeup_r.fileno(), EPOLLIN, self._on_wakeup)
        self._signals[signum] = callback
        # A Python-level handler must exist, or the default action would run;
        # the real work happens in _on_wakeup, inside the loop.
        signal.signal(signum, lambda *_: None)

    def _on_wakeup(self, _events: int) -> None:
        assert self._wakeup_r is not None
        try:
            data = self._wakeup_r.recv(512)
        except BlockingIOError:
            return
        for signum in data:
            callback = self._signals.get(signum)
            if callback is not None:
                callback(signum)

    # -- child processes ----------------------------------------------------

    def watch_child(
        self, process: subprocess.Popen[bytes], callback: Callable[[int], None]
    ) -> None:
        """Reap ``process`` when it exits (SIGCHLD) and call ``callback(returncode)``.

        Only watched processes are waited for (``Popen.poll``), so that no
        other code's children are reaped behind its back.
        """
        if signal.SIGCHLD not in self._signals:
            self.add_signal_handler(signal.SIGCHLD, self._reap)
        self._children[process.pid] = (process, callback)
        if process.poll() is not None:
            # It exited before it was watched, and its SIGCHLD may be gone:
            # reap from the loop, never inside the caller (which may itself
            # be a reap callback starting the next child).
            self.call_at(0.0, lambda: self._reap(signal.SIGCHLD))

    def _reap(self, _signum: int) -> None:
        # Callbacks may watch new children (or reap): look each pid up afresh.
        for pid in list(self._children):
            entry = self._children.get(pid)
            if entry is None or entry[0].poll() is None:
                continue
            del self._children[pid]
            process, callback = entry
            try:
                callback(process.returncode)
            except Exception:
                # One failing callback must not leave the other exits unhandled.
                log.exception("error after child %d exited", pid)

    @property
    def children(self) -> int:
        """How many watched child processes have not been reaped yet."""
        return len(self._children)

    # -- running ------------------------------------------------------------

    def run(self) -> None:
        """Poll and dispatch until ``stop`` is called."""
        self.running = True
        poll = self.epoll.poll
        callbacks = self._callbacks
        monotonic = time.monotonic
        ready = self._ready
        while self.running:
            timers = self._timers
            if ready:
                timeout = 0.0
            elif timers:
                timeout = max(0.0, timers[0][0] - monotonic())
            else:
                timeout = -1
            try:
                events = poll(timeout)
            except InterruptedError:
                events = []
            self.now = monotonic()
            for fd, mask in events:
                callback = callbacks.get(fd)
                if callback is None:
                    continue
                try:
                    callback(mask)
                except Exception:
                    log.exception("unexpected error handling fd %d", fd)
            if self._timers:
                self._run_timers(self.now)
            if ready:
                self._run_ready()

    def stop(self) -> None:
        """Make ``run`` return after the current iteration."""
        self.running = False

    def close(self) -> None:
        """Release the epoll object, the wake-up sockets and the eventfd.

        Callbacks still queued by ``call_soon`` are dropped.
        """
        if self._wakeup_r is not None:
            signal.set_wakeup_fd(-1)
            self._wakeup_r.close()
            assert self._wakeup_w is not None
            self._wakeup_w.close()
            self._wakeup_r = self._wakeup_w = None
        fd = self._eventfd
        if fd >= 0:
            # Forget the number before closing it: a late call_soon_threadsafe
            # must fail, not write to a descriptor that reuses the number.
            self._eventfd = -1
            self.unregister(fd)
            os.close(fd)
        self._ready.clear()
        self.epoll.close()
