"""The event loop's call_soon and call_soon_threadsafe (the eventfd wake-up)."""

from __future__ import annotations

import logging
import signal
import threading
import time

import pytest

from localhost.io.loop import EventLoop


def test_call_soon_runs_in_order_after_the_events_of_the_iteration() -> None:
    loop = EventLoop()
    order: list[str] = []

    def first() -> None:
        order.append("first")
        loop.call_soon(lambda: order.append("queued by first"))

    loop.call_soon(first)
    loop.call_soon(lambda: order.append("second"))
    loop.call_at(0.0, lambda: order.append("timer"))
    loop.call_at(time.monotonic() + 5, loop.stop)  # a safety net, never reached
    loop.call_soon(lambda: loop.call_soon(lambda: loop.call_soon(loop.stop)))
    loop.run()
    # Due timers run before the queue; a callback queued by a queued callback
    # waits for the next iteration.
    assert order == ["timer", "first", "second", "queued by first"]
    loop.close()


def test_a_callback_that_requeues_itself_does_not_starve_polling() -> None:
    loop = EventLoop()
    spins = 0

    def spin() -> None:
        nonlocal spins
        spins += 1
        loop.call_soon(spin)

    fired: list[float] = []
    loop.call_soon(spin)
    loop.call_at(time.monotonic() + 0.05, lambda: (fired.append(1), loop.stop()))
    loop.call_at(time.monotonic() + 10, loop.stop)
    started = time.monotonic()
    loop.run()
    assert fired == [1]
    assert time.monotonic() - started < 5
    assert spins > 1
    loop.close()


def test_a_failing_callback_is_logged_and_the_others_run(caplog: pytest.LogCaptureFixture) -> None:
    loop = EventLoop()
    ran: list[int] = []

    def boom() -> None:
        raise RuntimeError("boom")

    loop.call_soon(boom)
    loop.call_soon(lambda: ran.append(1))
    loop.call_soon(loop.stop)
    with caplog.at_level(logging.ERROR, logger="localhost"):
        loop.run()
    assert ran == [1]
    assert any("boom" in (r.exc_text or "") or r.exc_info for r in caplog.records)
    loop.close()


def test_call_soon_threadsafe_wakes_a_blocked_poll() -> None:
    loop = EventLoop()
    ran_in: list[int] = []

    def from_thread() -> None:
        deadline = time.monotonic() + 5
        while not loop.running and time.monotonic() < deadline:
            time.sleep(0.001)
        loop.call_soon_threadsafe(lambda: (ran_in.append(threading.get_ident()), loop.stop()))

    # Nothing else is due for 30 s: only the wake-up can end the poll early.
    loop.call_at(time.monotonic() + 30, loop.stop)
    thread = threading.Thread(target=from_thread)
    started = time.monotonic()
    thread.start()
    loop.run()
    thread.join()
    assert ran_in == [threading.get_ident()]  # ran on the loop's thread
    assert time.monotonic() - started < 5
    loop.close()


def test_many_thread_wakeups_do_not_crowd_out_a_signal() -> None:
    # The signal wake-up socket drops bytes when full (and with them, signals):
    # thread wake-ups go through their own eventfd, a counter that never fills.
    loop = EventLoop()
    got: list[int] = []
    counted = 0

    def count() -> None:
        nonlocal counted
        counted += 1

    loop.add_signal_handler(signal.SIGUSR2, lambda signum: (got.append(signum), loop.stop()))
    try:

        def burst() -> None:
            for _ in range(100_000):
                loop.call_soon_threadsafe(count)

        thread = threading.Thread(target=burst)
        thread.start()
        thread.join()
        signal.raise_signal(signal.SIGUSR2)
        loop.call_at(time.monotonic() + 10, loop.stop)
        loop.run()
        assert got == [signal.SIGUSR2]
        assert counted == 100_000
    finally:
        signal.signal(signal.SIGUSR2, signal.SIG_DFL)
        loop.close()


def test_call_soon_threadsafe_after_close_raises() -> None:
    loop = EventLoop()
    loop.close()
    with pytest.raises(RuntimeError):
        loop.call_soon_threadsafe(lambda: None)


def test_timers_and_descriptors_still_work_with_the_eventfd_registered() -> None:
    loop = EventLoop()
    fired: list[int] = []
    loop.call_at(time.monotonic() + 0.01, lambda: (fired.append(1), loop.stop()))
    loop.call_at(time.monotonic() + 10, loop.stop)
    loop.run()
    assert fired == [1]
    loop.unregister(12345)  # never registered: still harmless
    loop.close()
