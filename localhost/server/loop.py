"""The event loop: one ``select.epoll``, a timer heap and signal wake-ups.

``poll`` is the only blocking call of the process; its timeout is the nearest
timer deadline. Each registered file descriptor has one callback that gets
the epoll event mask. Timers are kept lazily: moving a deadline later only
updates the ``Timer``; the heap entry is re-queued when it comes due.
Signals are written by Python's C-level handler to a wake-up socket
(``signal.set_wakeup_fd``) and dispatched from the loop, never from signal
context.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import select
import signal
import socket
import time
from collections.abc import Callable

log = logging.getLogger("localhost")

EPOLLIN = select.EPOLLIN
EPOLLOUT = select.EPOLLOUT
EPOLLERR = select.EPOLLERR
EPOLLHUP = select.EPOLLHUP


class Timer:
    """A callback due at ``when`` (``time.monotonic`` seconds)."""

    __slots__ = ("when", "callback", "cancelled", "_queued")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False
        self._queued = when


class EventLoop:
    """epoll registry, timer heap and signal dispatch for one process."""

    def __init__(self) -> None:
        self.epoll = select.epoll()
        self._callbacks: dict[int, Callable[[int], None]] = {}
        self._timers: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._signals: dict[int, Callable[[int], None]] = {}
        self._wakeup_r: socket.socket | None = None
        self._wakeup_w: socket.socket | None = None
        self.running = False

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
        """Move ``timer`` to ``when`` (later is O(1); earlier pushes a new entry)."""
        timer.cancelled = False
        timer.when = when
        if when < timer._queued:
            timer._queued = when
            heapq.heappush(self._timers, (when, next(self._seq), timer))

    def _run_timers(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            queued, _, timer = heapq.heappop(timers)
            if queued != timer._queued:
                continue  # a stale entry of a timer that was moved earlier
            if timer.cancelled:
                timer._queued = float("inf")
                continue
            if timer.when > now:
                timer._queued = timer.when
                heapq.heappush(timers, (timer.when, next(self._seq), timer))
                continue
            timer.cancelled = True
            timer._queued = float("inf")
            timer.callback()

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

    # -- running ------------------------------------------------------------

    def run(self) -> None:
        """Poll and dispatch until ``stop`` is called."""
        self.running = True
        poll = self.epoll.poll
        callbacks = self._callbacks
        monotonic = time.monotonic
        while self.running:
            timers = self._timers
            timeout = max(0.0, timers[0][0] - monotonic()) if timers else -1
            try:
                events = poll(timeout)
            except InterruptedError:
                events = []
            for fd, mask in events:
                callback = callbacks.get(fd)
                if callback is None:
                    continue
                try:
                    callback(mask)
                except Exception:
                    log.exception("unexpected error handling fd %d", fd)
            if timers:
                self._run_timers(monotonic())

    def stop(self) -> None:
        """Make ``run`` return after the current iteration."""
        self.running = False

    def close(self) -> None:
        """Release the epoll object and the wake-up sockets."""
        if self._wakeup_r is not None:
            signal.set_wakeup_fd(-1)
            self._wakeup_r.close()
            assert self._wakeup_w is not None
            self._wakeup_w.close()
            self._wakeup_r = self._wakeup_w = None
        self.epoll.close()
