"""A worker's bounded thread pool for application code.

The event loop never runs a blocking application: a request for one goes to
its pool, whose threads take jobs in arrival order. The pool is bounded both
ways: ``threads`` threads (started on first use), and at most ``queue`` jobs
waiting for one; ``submit`` refuses past that, and the caller answers 503.
Results come back to the loop through ``EventLoop.call_soon_threadsafe``
(the loop's own eventfd), never through shared state read by the loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from queue import SimpleQueue

log = logging.getLogger("localhost")

Job = Callable[[], None]


class ThreadPool:
    """``threads`` daemon threads running jobs in order; at most ``queue`` waiting.

    A job waits when every thread is busy; ``submit`` refuses one that would
    make more than ``queue`` wait (``queue`` 0: run at once or refuse).
    ``name`` names the threads (``name-1``...) in tracebacks and ``ps``.
    """

    __slots__ = ("threads", "queue", "name", "_jobs", "_started", "_closed", "_idle", "_lock")

    def __init__(self, threads: int, queue: int, name: str = "app") -> None:
        self.threads = threads
        self.queue = queue
        self.name = name
        self._jobs: SimpleQueue[Job | None] = SimpleQueue()
        self._started: list[threading.Thread] = []
        self._closed = False
        self._idle = 0  # threads without a job (waiting for one, or about to)
        self._lock = threading.Lock()

    @property
    def waiting(self) -> int:
        """Jobs submitted that no thread is free to take (approximate)."""
        return max(self._jobs.qsize() - self._idle, 0)

    def submit(self, job: Job) -> bool:
        """Queue ``job``; False when ``queue`` jobs already wait for a thread
        (or the pool is closed)."""
        if self._closed:
            return False
        if not self._started:
            self._start()
        # A queued job that an idle thread is about to take does not wait.
        # (At the instant a thread takes or ends a job the count is off by
        # one: the bound is kept to within one job, never drifts.)
        if self._jobs.qsize() - self._idle >= self.queue:
            return False
        self._jobs.put(job)
        return True

    def _start(self) -> None:
        self._idle = self.threads  # each counts itself busy once it has a job
        for number in range(1, self.threads + 1):
            thread = threading.Thread(target=self._run, name=f"{self.name}-{number}", daemon=True)
            self._started.append(thread)
            thread.start()

    def _run(self) -> None:
        jobs = self._jobs
        lock = self._lock
        while True:
            job = jobs.get()
            with lock:
                self._idle -= 1
            if job is None:
                return
            try:
                job()
            except BaseException:  # noqa: BLE001 - a job's failure must not end the thread
                log.exception("application thread: unexpected error")
            job = None  # the request's objects go now, not with the next job
            with lock:
                self._idle += 1

    def close(self, timeout: float = 0.0) -> None:
        """Take no more jobs; threads end after the jobs already queued.

        Waits up to ``timeout`` seconds in total for them (the threads are
        daemons: one stuck in application code does not keep the process).
        """
        if self._closed:
            return
        self._closed = True
        for _ in self._started:
            self._jobs.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._started:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            thread.join(left)
