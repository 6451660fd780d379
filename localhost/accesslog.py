"""Logs: the access log (combined format) and the error log, both buffered.

Log writes must never hold up the event loop: lines are collected in memory
and written at most once a second (by the worker's timer), when a buffer
passes ``FLUSH_BYTES``, and on shutdown. Error records of level ERROR and
above are written at once, so that a crash never loses its reason.
SIGUSR1 reopens every log file, for logrotate.

Access log line (NGINX's "combined" format plus the request time in
seconds)::

    127.0.0.1 - - [21/Nov/2026:19:49:25 +0000] "GET / HTTP/1.1" 200 954 "-" "curl/8.5" 0.001
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from typing import IO, TextIO

from localhost.config.model import STDOUT
from localhost.http.message import Request

FLUSH_BYTES = 64 * 1024  # a buffer this large is written at once
LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "crit": logging.CRITICAL,
}
ERROR_FORMAT = "%(asctime)s [%(levelname)s] %(process)d: %(message)s"

# Printable ASCII but '"' and '\\' passes as is; anything else is escaped as
# \xHH, as NGINX does, so that a log line can never be forged or broken.
_PLAIN = frozenset(chr(c) for c in range(0x20, 0x7F)) - {'"', "\\"}

_clock_second = -1
_clock_text = ""


def _local_time() -> str:
    """``21/Nov/2026:19:49:25 +0000``, formatted once per second."""
    global _clock_second, _clock_text
    now = int(time.time())
    if now != _clock_second:
        _clock_second = now
        _clock_text = time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(now))
    return _clock_text


def escape(value: str) -> str:
    """``value`` with quotes, backslashes and non-printable characters as ``\\xHH``."""
    if all(c in _PLAIN for c in value):
        return value
    return "".join(c if c in _PLAIN else "".join(f"\\x{b:02X}" for b in c.encode()) for c in value)


def combined_line(
    peer: str, request: Request | None, status: int, size: int, seconds: float
) -> str:
    """One access log line (ending in a newline)."""
    if request is None:
        line, referer, agent = "-", "-", "-"
    else:
        line = escape(f"{request.method} {request.target} {request.version}")
        headers = request.headers
        referer = escape(headers.get("referer") or "-")
        agent = escape(headers.get("user-agent") or "-")
    return (
        f'{peer} - - [{_local_time()}] "{line}" {status} {size} "{referer}" "{agent}" '
        f"{seconds:.3f}\n"
    )


class AccessLog:
    """One access log destination: a file (appended to) or standard output."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.buffer: list[str] = []
        self.size = 0
        self.stream: IO[str] | None = None
        self._open()

    def _open(self) -> None:
        if self.target == STDOUT:
            self.stream = sys.stdout
        else:
            self.stream = open(self.target, "a", encoding="utf-8", errors="replace")  # noqa: SIM115

    def write(self, line: str) -> None:
        """Buffer one line."""
        self.buffer.append(line)
        self.size += len(line)
        if self.size >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write the buffered lines."""
        if not self.buffer or self.stream is None:
            return
        text = "".join(self.buffer)
        self.buffer.clear()
        self.size = 0
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a full disk or a closed stdout must not stop the server

    def reopen(self) -> None:
        """Write what is buffered, then reopen the file (after a log rotation)."""
        self.flush()
        if self.target != STDOUT and self.stream is not None:
            self.stream.close()
            self._open()

    def close(self) -> None:
        """Write what is buffered and close the file."""
        self.flush()
        if self.target != STDOUT and self.stream is not None:
            self.stream.close()
        self.stream = None


class AccessLogs:
    """Every access log of a process, by destination."""

    def __init__(self) -> None:
        self.logs: dict[str, AccessLog] = {}

    def get(self, target: str) -> AccessLog:
        """The log for ``target`` (a path or ``STDOUT``), opened on first use."""
        log = self.logs.get(target)
        if log is None:
            log = self.logs[target] = AccessLog(target)
        return log

    def flush(self) -> None:
        """Write every log's buffered lines."""
        for log in self.logs.values():
            log.flush()

    def reopen(self) -> None:
        """Reopen every log file (SIGUSR1, after logrotate)."""
        for log in self.logs.values():
            log.reopen()

    def close(self) -> None:
        """Write and close every log (at shutdown)."""
        for log in self.logs.values():
            log.close()
        self.logs.clear()


class BufferedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A logging handler that writes at most on ``flush`` (or at once for errors).

    The target is a file (appended to) or ``STDOUT`` (standard error).
    """

    def __init__(self, target: str) -> None:
        self.target = target
        super().__init__(self._stream())
        self.pending: list[str] = []

    def _stream(self) -> TextIO:
        if self.target == STDOUT:
            return sys.stderr
        return open(self.target, "a", encoding="utf-8", errors="replace")  # noqa: SIM115

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.pending.append(self.format(record) + "\n")
        except Exception:
            self.handleError(record)
            return
        if record.levelno >= logging.ERROR or len(self.pending) > 256:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        # Under the handler's lock: application threads log too (wsgi.errors).
        with self.lock or contextlib.nullcontext():
            text = "".join(self.pending)
            self.pending.clear()
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def reopen(self) -> None:
        """Reopen the file after a log rotation."""
        self.flush()
        if self.target != STDOUT:
            self.stream.close()
            self.setStream(self._stream())

    def close(self) -> None:
        self.flush()
        if self.target != STDOUT:
            self.stream.close()
        super().close()


def setup_error_log(target: str, level: str) -> BufferedHandler:
    """Send the ``localhost`` logger to ``target`` at ``level`` (a name from ``LEVELS``)."""
    logger = logging.getLogger("localhost")
    for old in list(logger.handlers):
        logger.removeHandler(old)
        old.close()
    handler = BufferedHandler(target)
    handler.setFormatter(logging.Formatter(ERROR_FORMAT))
    logger.addHandler(handler)
    logger.setLevel(LEVELS[level])
    logger.propagate = False
    return handler


def error_log_handlers() -> list[BufferedHandler]:
    """The buffered handlers of the ``localhost`` logger."""
    return [h for h in logging.getLogger("localhost").handlers if isinstance(h, BufferedHandler)]


def flush_error_log() -> None:
    """Write the error log's buffered records."""
    for handler in error_log_handlers():
        handler.flush()


def reopen_error_log() -> None:
    """Reopen the error log file (SIGUSR1, after logrotate)."""
    for handler in error_log_handlers():
        handler.reopen()
