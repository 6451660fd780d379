"""The event loop's timers (ordering, moving, cancelling, a small heap) and child reaping."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

import pytest

from localhost.io.loop import EventLoop


def run_due(loop: EventLoop, now: float) -> None:
    loop._run_timers(now)


def test_timers_fire_in_deadline_order() -> None:
    loop = EventLoop()
    fired: list[str] = []
    loop.call_at(3.0, lambda: fired.append("c"))
    loop.call_at(1.0, lambda: fired.append("a"))
    loop.call_at(2.0, lambda: fired.append("b"))
    run_due(loop, 2.5)
    assert fired == ["a", "b"]
    run_due(loop, 10.0)
    assert fired == ["a", "b", "c"]
    loop.close()


def test_moving_later_and_earlier() -> None:
    loop = EventLoop()
    fired: list[float] = []
    timer = loop.call_at(1.0, lambda: fired.append(1))
    loop.reschedule(timer, 5.0)
    run_due(loop, 2.0)
    assert fired == []  # moved later: the old entry is re-queued, not fired
    loop.reschedule(timer, 3.0)
    run_due(loop, 3.5)
    assert fired == [1]
    run_due(loop, 10.0)
    assert fired == [1]  # fired once, not again for the stale entry
    loop.close()


def test_cancelled_timer_does_not_fire_and_can_be_rescheduled() -> None:
    loop = EventLoop()
    fired: list[int] = []
    timer = loop.call_at(1.0, lambda: fired.append(1))
    loop.cancel(timer)
    assert not timer.active
    run_due(loop, 2.0)
    assert fired == []
    loop.reschedule(timer, 3.0)
    assert timer.active
    run_due(loop, 4.0)
    assert fired == [1]
    loop.close()


def test_forgotten_callbacks_are_released_and_the_heap_is_compacted() -> None:
    loop = EventLoop()
    now = time.monotonic()
    timers = [loop.call_at(now + 100 + i, lambda: None) for i in range(2000)]
    for timer in timers:
        loop.reschedule(timer, now + 1)  # earlier: a second entry each
    for timer in timers:
        loop.cancel(timer, forget=True)
    # Connections that closed long before their deadline do not pile up.
    assert len(loop._timers) < 600
    keeper = loop.call_at(now + 50, lambda: None)
    assert keeper.active
    loop.close()


def test_a_reap_callback_may_start_and_watch_the_next_child(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # As the CGI queue does: a child's exit starts the next child. Two exits
    # handled in one reap, the first starting a child that is already gone
    # when it is watched: each callback runs once, and nothing fails.
    loop = EventLoop()
    calls: list[str] = []

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-c", "pass"])

    def exited_first(_code: int) -> None:
        calls.append("first")
        third = spawn()
        os.waitid(os.P_PID, third.pid, os.WEXITED | os.WNOWAIT)  # gone before it is watched
        loop.watch_child(third, lambda _code: (calls.append("third"), loop.stop()))

    try:
        first, second = spawn(), spawn()
        loop.watch_child(first, exited_first)
        loop.watch_child(second, lambda _code: calls.append("second"))
        for child in (first, second):
            os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # both exited, none reaped
        loop.call_at(time.monotonic() + 10, loop.stop)  # a bound, should it hang
        with caplog.at_level(logging.ERROR, logger="localhost"):
            loop.run()
        assert sorted(calls) == ["first", "second", "third"]
        assert loop.children == 0
        assert not caplog.records
    finally:
        loop.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
