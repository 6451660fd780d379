"""Logs: the access logs (NGINX's ``log_format`` and ``access_log``) and the
error log, all buffered.

Log writes must never hold up the event loop: lines are collected in memory
and written at most once a second (by the worker's timer), when a buffer
passes its size (``FLUSH_BYTES``, or ``access_log ... buffer=SIZE``), and on
shutdown. Error records of level ERROR and above are written at once, so
that a crash never loses its reason. SIGUSR1 reopens every log file, for
logrotate.

The access log's default format, ``combined``, is NGINX's combined format
plus the request time in seconds::

    127.0.0.1 - alice [21/Nov/2026:19:49:25 +0000] "GET / HTTP/1.1" 200 954 "-" "curl/8.5" 0.001

that is ``COMBINED_TEXT`` (``$remote_addr - $remote_user [$time_local]
"$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"
$request_time``), written by ``combined_line`` without going through the
variables, because it is what nearly every request logs. Other formats are
``LogFormat``s: strings with variables compiled once at load
(``localhost.variables``), the variables' values escaped as ``escape=`` says
and the literals written as they are (ngx_http_log_module).

What a location logs (``Location.access_log``) is None (``access_log off``),
a path or ``STDOUT`` (one log in the combined format), or a tuple of
``AccessLogTarget``: each a destination, a format, a condition (``if=``)
and a buffer size.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, TextIO

from localhost.config.model import STDOUT
from localhost.variables import (
    LOG_ESCAPES,
    RequestView,
    Template,
    VariableContext,
    compile_template,
    escape_default,
    format_time_local,
)

FLUSH_BYTES = 64 * 1024  # a buffer this large is written at once (default of buffer=)
LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "crit": logging.CRITICAL,
}
ERROR_FORMAT = "%(asctime)s [%(levelname)s] %(process)d: %(message)s"

#: The ``combined`` format (predefined, cannot be redefined): NGINX's, plus
#: ``$request_time``.
COMBINED_TEXT = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent" $request_time'
)

_clock_second = -1
_clock_text = ""
_monotonic = time.monotonic


def _local_time() -> str:
    """``21/Nov/2026:19:49:25 +0000`` (``$time_local``), formatted once per second."""
    global _clock_second, _clock_text
    now = int(time.time())
    if now != _clock_second:
        _clock_second = now
        _clock_text = format_time_local(now)
    return _clock_text


def _basic_user(value: str) -> str:
    """``$remote_user`` of an Authorization value: the user of ``Basic``
    credentials (RFC 7617 §2), escaped; ``-`` when there is none."""
    if value[:6].lower() != "basic ":
        return "-"
    try:
        decoded = base64.b64decode(value[6:].lstrip(" ").encode("latin-1"), validate=True)
    except (binascii.Error, ValueError):
        return "-"
    user, colon, _ = decoded.partition(b":")
    if not colon or not user:
        return "-"
    return escape_default(user.decode("latin-1"), False)


def combined_line(
    peer: str, request: RequestView | None, status: int, size: int, seconds: float
) -> str:
    """One line of the ``combined`` format, ending in a newline.

    ``peer``: the client's address; ``request``: None when no request line
    was read (a 400 or 408 before it: the request shows as ``-``);
    ``status``: the response's; ``size``: body bytes sent; ``seconds``: from
    the head's arrival to now. Header values and the request line are escaped
    as ``escape=default`` does (``"``, ``\\`` and bytes outside 0x20-0x7E as
    ``\\xHH``), so that a line can never be forged or broken.
    """
    if request is None:
        line, user, referer, agent = "-", "-", "-", "-"
    else:
        line = escape_default(f"{request.method} {request.target} {request.version}", False)
        headers = request.headers
        value = headers.get("referer")
        referer = "-" if value is None else escape_default(value, False)
        value = headers.get("user-agent")
        agent = "-" if value is None else escape_default(value, False)
        value = headers.get("authorization")
        user = "-" if value is None else _basic_user(value)
    ms = max(round(seconds * 1_000_000), 0) // 1000  # truncated, as $request_time
    return (
        f'{peer} - {user} [{_local_time()}] "{line}" {status} {size} "{referer}" "{agent}" '
        f"{ms // 1000}.{ms % 1000:03d}\n"
    )


class LogFormat:
    """A ``log_format``: its ``name`` (lower-case), ``escape`` (``"default"``,
    ``"json"`` or ``"none"``) and its strings compiled (``templates``: one
    ``Template`` when the strings could be joined, else one per string).

    ``line(ctx, bare)`` renders one line for a request: every variable's
    value escaped (a variable that is not found is ``-`` with
    ``escape=default``, nothing with json and none), literals as written, and
    a newline. ``bare``: no request line was read (only ``combined`` tells).
    """

    __slots__ = ("name", "escape", "templates", "_escape", "_missing", "_one")

    def __init__(self, name: str, escape: str, templates: Sequence[Template]) -> None:
        self.name = name
        self.escape = escape
        self.templates = tuple(templates)
        self._escape, self._missing = LOG_ESCAPES[escape]
        self._one = self.templates[0] if len(self.templates) == 1 else None

    def line(self, ctx: VariableContext, bare: bool = False) -> str:
        """The log line for ``ctx`` (a request's exchange), ending in a newline."""
        one = self._one
        if one is not None:
            return one.render_escaped(ctx, self._escape, self._missing) + "\n"
        escape, missing = self._escape, self._missing
        return "".join([t.render_escaped(ctx, escape, missing) for t in self.templates]) + "\n"

    def __repr__(self) -> str:
        return f"LogFormat({self.name!r}, escape={self.escape!r})"


class _Combined(LogFormat):
    """The predefined ``combined`` format, through ``combined_line``."""

    __slots__ = ()

    def line(self, ctx: VariableContext, bare: bool = False) -> str:
        return combined_line(
            ctx.peer[0],
            None if bare else ctx.request,
            ctx.log_status,
            ctx.log_bytes,
            _monotonic() - ctx.start_time,
        )


#: The predefined ``combined`` format.
COMBINED: LogFormat = _Combined("combined", "default", (compile_template(COMBINED_TEXT),))


@dataclass(frozen=True, slots=True, eq=False)
class AccessLogTarget:
    """One ``access_log PATH FORMAT [buffer=SIZE] [if=CONDITION]`` line.

    ``path``: a file (absolute) or ``STDOUT``; ``format``: its ``LogFormat``;
    ``condition``: the ``if=`` string (the line is skipped when it renders
    empty or ``"0"``), or None; ``buffer``: bytes collected before a write
    (0: the default, ``FLUSH_BYTES``).
    """

    path: str
    format: LogFormat
    condition: Template | None = None
    buffer: int = 0

    def __repr__(self) -> str:
        parts = [self.path, self.format.name]
        if self.buffer:
            parts.append(f"buffer={self.buffer}")
        if self.condition is not None:
            parts.append(f"if={self.condition.text}")
        return f"AccessLogTarget({' '.join(parts)})"


def write_access_logs(
    targets: tuple[AccessLogTarget, ...], ctx: VariableContext, bare: bool, logs: AccessLogs
) -> None:
    """Log one request to each of ``targets`` whose condition holds.

    ``ctx``: the request's exchange; ``bare``: no request line was read;
    ``logs``: the process's open logs.
    """
    for target in targets:
        condition = target.condition
        if condition is not None:
            value = condition.render(ctx)
            if not value or value == "0":
                continue
        logs.get(target.path, target.buffer).write(target.format.line(ctx, bare))


class AccessLog:
    """One access log destination: a file (appended to) or standard output.

    ``limit``: buffered characters that make ``write`` flush at once (the
    worker's timer flushes the rest once a second).
    """

    def __init__(self, target: str, limit: int = FLUSH_BYTES) -> None:
        self.target = target
        self.limit = limit
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
        if self.size >= self.limit:
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

    def get(self, target: str, buffer: int = 0) -> AccessLog:
        """The log for ``target`` (a path or ``STDOUT``), opened on first use.

        ``buffer``: an ``access_log ... buffer=SIZE`` in bytes (0: none); the
        configuration gives one path one size at most, which then applies.
        """
        log = self.logs.get(target)
        if log is None:
            log = self.logs[target] = AccessLog(target, buffer or FLUSH_BYTES)
        elif buffer and log.limit != buffer:
            log.limit = buffer
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
