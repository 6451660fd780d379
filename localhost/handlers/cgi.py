"""CGI/1.1 (RFC 3875) inside the event loop.

A location with ``cgi .EXT INTERPRETER`` runs files with that extension as
``INTERPRETER SCRIPT`` in the script's folder and in a process group of its
own. The request body is taken as it arrives into a spool (memory, then a
temporary file past ``SPOOL_MEMORY`` bytes), so that CONTENT_LENGTH is the
decoded length even for a chunked body; when the body is complete the script
starts and the spool is written to its stdin through a ``PipeTransport``
(paused above its high watermark), then stdin is closed. stdout is read
through another ``PipeTransport`` into the sans-IO ``CGIResponseParser`` and
streamed to the client as it arrives (its reading paused while the client is
slower than the script); stderr goes to the error log under the script's
name. No descriptor is registered with the loop by this module.

At most ``Limits.cgi_max_running`` scripts run at once in a worker (the
``CGIPool`` of its ``Services``); a request past that waits in a queue (in
arrival order) for a running script to exit, so a burst of clients makes a
queue rather than thousands of interpreters.

Failures: no complete header, or a malformed one → 502; ``cgi_timeout``
→ SIGKILL to the process group and 504 (or a dropped connection once the
response has started); the client going away → SIGKILL, logged at info
level (a normal event, not a fault of the script). Every child is reaped by
the loop on SIGCHLD.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from lark import Token

from localhost import SERVER_SOFTWARE
from localhost.config.loader import (
    LOCATION,
    MAIN,
    SERVER,
    Directive,
    Scope,
    Validator,
    inherit,
    path_problem,
    quote,
    resolved_note,
    time_value,
)
from localhost.config.model import DEFAULT_CGI_TIMEOUT, Location
from localhost.handlers.base import BodyPolicy, Exchange, Handler, HandlerSpec
from localhost.handlers.cgi_response import CGIError, CGIResponseParser
from localhost.handlers.environ import add_http_variables, scheme_variables, server_name
from localhost.handlers.error_pages import error_response
from localhost.handlers.static import inside
from localhost.http.errors import HTTPError
from localhost.http.message import Request, Response
from localhost.http.methods import IMPLEMENTED_METHODS
from localhost.io import PipeTransport, Protocol, Transport
from localhost.limits import LIMITS, Limits

if TYPE_CHECKING:
    from localhost.io.loop import EventLoop, Timer

log = logging.getLogger("localhost")


class CGIPool:
    """The scripts of one worker (``Services.cgi``): how many run, and the
    complete requests waiting for a slot, in arrival order."""

    __slots__ = ("limits", "running", "waiting")

    def __init__(self, limits: Limits = LIMITS) -> None:
        self.limits = limits
        self.running = 0  # started and not yet reaped
        self.waiting: deque[CGIHandler] = deque()

    @property
    def full(self) -> bool:
        """Whether a new script must wait for a running one to exit."""
        return self.running >= self.limits.cgi_max_running

    def exited(self) -> None:
        """A script was reaped: start queued ones while there are free slots
        (their clients may have gone)."""
        self.running -= 1
        while self.waiting and not self.full:
            handler = self.waiting.popleft()
            if handler.finished:
                continue
            try:
                handler._spawn()
            except HTTPError as exc:
                handler.finished = True
                exchange = handler.exchange
                exchange.send(
                    error_response(
                        exc.status,
                        handler.location.error_pages,
                        cache=exchange.services.error_pages,
                    )
                )


@dataclass(frozen=True)
class Script:
    """A CGI script found under a location's root.

    ``filename`` is its real path, ``name`` its URL path (SCRIPT_NAME),
    ``path_info`` the rest of the request path, ``interpreter`` the program
    that runs it and ``root`` the location's real root (DOCUMENT_ROOT).
    """

    filename: str
    name: str
    path_info: str
    interpreter: str
    root: str


def find_script(request: Request, location: Location) -> Script | None:
    """The script named by the request path, walking its segments, or ``None``.

    ``/cgi-bin/a.py/x/y`` finds ``a.py`` with PATH_INFO ``/x/y``. Raises
    ``HTTPError(403)`` when the script resolves outside the root.
    """
    assert location.root is not None
    root = os.path.realpath(location.root)
    path = request.path
    base = len(location.prefix) if location.alias and location.prefix != "/" else 0
    current = root
    index = base
    while index < len(path):
        if path[index] == "/":
            index += 1
            continue
        end = path.find("/", index)
        end = len(path) if end < 0 else end
        segment = path[index:end]
        current = os.path.join(current, segment)
        try:
            st = os.stat(current)
        except OSError:
            return None
        if stat.S_ISREG(st.st_mode):
            interpreter = location.cgi.get(os.path.splitext(segment)[1])
            if interpreter is None:
                return None
            real = os.path.realpath(current)
            if not inside(root, real):
                raise HTTPError(403, f"CGI script {current} resolves outside the root")
            return Script(real, path[:end], path[end:], interpreter, root)
        if not stat.S_ISDIR(st.st_mode):
            return None
        index = end
    return None


def _origin_form(target: str) -> str:
    """The path and query of a request-target: an absolute-form target
    (``http://host/p?q``) without its scheme and authority, as NGINX's
    ``$request_uri``; an empty path is ``/`` (RFC 9112 §3.2.2)."""
    if target.startswith("/") or "://" not in target:
        return target
    rest = target.split("://", 1)[1]
    for index, char in enumerate(rest):
        if char in "/?#":
            rest = rest[index:]
            break
    else:
        return "/"
    return rest if rest.startswith("/") else "/" + rest


def cgi_environ(
    request: Request,
    script: Script,
    local: tuple[str, int],
    peer: tuple[str, int],
    content_length: int | None,
    session_id: str | None = None,
    server_names: tuple[str, ...] = (),
    scheme: str = "http",
) -> dict[str, str]:
    """The environment of a CGI script (RFC 3875 §4.1): a pure function.

    ``content_length`` is the decoded body length (``None`` without a body).
    Of the server's own environment only PATH is passed on. Every request
    field becomes ``HTTP_NAME`` (repeated fields joined with ``", "``,
    Cookie with ``"; "``) except Proxy (httpoxy), the body fields, and names
    with ``_`` (which would be confused with ``-``, as NGINX refuses them).
    """
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_SOFTWARE": SERVER_SOFTWARE,
        "SERVER_PROTOCOL": request.version,
        "SERVER_NAME": server_name(request, local, server_names),
        "SERVER_PORT": str(local[1]),
        "REQUEST_METHOD": request.method,
        "REQUEST_URI": _origin_form(request.target),
        "SCRIPT_NAME": script.name,
        "SCRIPT_FILENAME": script.filename,
        "PATH_INFO": script.path_info,
        "QUERY_STRING": request.query,
        "DOCUMENT_ROOT": script.root,
        "REMOTE_ADDR": peer[0],
        "REMOTE_PORT": str(peer[1]),
        "REDIRECT_STATUS": "200",
    }
    if script.path_info:
        env["PATH_TRANSLATED"] = os.path.join(script.root, script.path_info.lstrip("/"))
    if content_length is not None:
        env["CONTENT_LENGTH"] = str(content_length)
        content_type = request.headers.get("content-type")
        if content_type is not None:
            env["CONTENT_TYPE"] = content_type
    if session_id is not None:
        env["SESSION_ID"] = session_id
    scheme_variables(env, scheme)
    add_http_variables(env, request.headers)
    return env


class _Pipe(Protocol):
    """The protocol of one of a script's pipes: calls back into its handler."""

    __slots__ = ("on_data", "on_eof", "on_lost", "on_resume")

    def __init__(
        self,
        on_data: Callable[[bytes], None] | None = None,
        on_eof: Callable[[], None] | None = None,
        on_lost: Callable[[], None] | None = None,
        on_resume: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.on_data = on_data
        self.on_eof = on_eof
        self.on_lost = on_lost
        self.on_resume = on_resume

    def data_received(self, data: bytes) -> None:
        if self.on_data is not None:
            self.on_data(data)

    def eof_received(self) -> None:
        if self.on_eof is not None:
            self.on_eof()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        on_lost, self.on_lost = self.on_lost, None
        self.on_data = self.on_eof = self.on_resume = None
        if on_lost is not None:
            on_lost()

    def resume_writing(self) -> None:
        if self.on_resume is not None:
            self.on_resume()


class CGIHandler(Handler):
    """One CGI run: spool the body, start the script, stream its answer."""

    __slots__ = (
        "request",
        "location",
        "script",
        "loop",
        "pool",
        "limits",
        "spool",
        "body_length",
        "process",
        "stdin",
        "stdout",
        "stderr",
        "parser",
        "started",
        "finished",
        "paused",
        "sent",
        "stderr_logged",
        "timer",
        "kill_reason",
    )

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        request = self.request = exchange.request
        location = exchange.location
        assert location is not None
        self.location = location
        script = find_script(request, location)
        if script is None:
            # Never an upload where scripts run: the file could be one.
            raise HTTPError(404, f"no CGI script at {request.path}")
        self.script = script
        self.loop: EventLoop = exchange.loop
        services = exchange.services
        self.pool = services.cgi
        self.limits = services.limits
        self.spool = tempfile.SpooledTemporaryFile(self.limits.cgi_spool_memory_bytes)  # noqa: SIM115
        self.body_length = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.stdin: Transport | None = None
        self.stdout: Transport | None = None
        self.stderr: Transport | None = None
        self.parser = CGIResponseParser()
        self.started = False  # the response head went out
        self.finished = False  # the exchange is done with (answered or dropped)
        self.paused = False
        self.sent = 0
        self.stderr_logged = 0
        self.timer: Timer | None = None
        # Why the server killed the script, if it did: its exit is then expected.
        self.kill_reason = ""

    # -- request body -------------------------------------------------------

    def on_head(self) -> BodyPolicy:
        return BodyPolicy.STREAM

    def on_body(self, data: bytes) -> bool:
        self.spool.write(data)
        self.body_length += len(data)
        return True

    def on_body_end(self) -> None:
        """Start the script, or queue it while the pool is full.

        Raises ``HTTPError(502)`` if it cannot be started.
        """
        if self.pool.full:
            # Waiting counts against cgi_timeout too: a queue behind hung
            # scripts ends in 504, not in a connection held forever.
            self.pool.waiting.append(self)
            self.timer = self.loop.call_at(
                time.monotonic() + self.location.cgi_timeout, self._on_timeout
            )
            return
        self._spawn()

    def _spawn(self) -> None:
        if self.timer is not None:  # the wait in the queue is over
            self.loop.cancel(self.timer, forget=True)
            self.timer = None
        exchange = self.exchange
        env = cgi_environ(
            self.request,
            self.script,
            exchange.local,
            exchange.peer,
            self.body_length if self.request.has_body else None,
            exchange.session,
            exchange.server.server_names,
            exchange.scheme,
        )
        try:
            self.process = subprocess.Popen(
                [self.script.interpreter, self.script.filename],
                stdin=subprocess.PIPE if self.body_length else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=os.path.dirname(self.script.filename),
                env=env,
                close_fds=True,
                process_group=0,
            )
        except OSError as exc:
            log.error("CGI %s could not start: %s", self.script.name, exc)
            raise HTTPError(502, f"CGI could not start: {exc}") from None
        self.pool.running += 1
        process = self.process
        assert process.stdout is not None and process.stderr is not None
        loop = self.loop
        self.stdout = PipeTransport(
            loop,
            process.stdout,
            _Pipe(self._on_stdout, self._on_stdout_end, self._stdout_lost),
            mode="r",
        )
        self.stderr = PipeTransport(
            loop, process.stderr, _Pipe(self._on_stderr, None, self._stderr_lost), mode="r"
        )
        if process.stdin is not None:
            self.spool.seek(0)
            self.stdin = PipeTransport(
                loop,
                process.stdin,
                _Pipe(on_lost=self._stdin_lost, on_resume=self._feed_stdin),
                mode="w",
            )
            self._feed_stdin()
        else:
            self.spool.close()
        self.timer = loop.call_at(time.monotonic() + self.location.cgi_timeout, self._on_timeout)
        loop.watch_child(process, self._on_exit)

    # -- pipes --------------------------------------------------------------

    def _feed_stdin(self) -> None:
        """Write the spooled body to stdin until the pipe's buffer is full (its
        ``resume_writing`` calls this again), then close it: EOF for the script."""
        stdin = self.stdin
        chunk = self.limits.cgi_pipe_chunk_bytes
        while stdin is not None and not stdin.is_closing():
            if stdin.get_write_buffer_size() > stdin.get_write_buffer_limits()[1]:
                return
            data = self.spool.read(chunk)
            if not data:
                stdin.close()  # once what is queued is written
                self.spool.close()
                return
            stdin.write(data)

    def _stdin_lost(self) -> None:
        # The script read everything, or exited or closed stdin without reading it all.
        self.stdin = None
        self.spool.close()

    def _on_stdout(self, data: bytes) -> None:
        if self.finished:
            return
        if self.started:
            self._write(data)
            return
        try:
            body = self.parser.feed(data)
        except CGIError as exc:
            self._fail(502, f"malformed header: {exc}")
            return
        head = self.parser.head
        if head is None:
            return
        if head.local_redirect is not None:
            log.info("CGI %s: local redirect to %s", self.script.name, head.local_redirect)
            self._release()
            self.finished = True
            self.exchange.internal_redirect(head.local_redirect)
            return
        self.started = True
        self.exchange.start(Response(head.status, head.fields), head.content_length)
        if body:
            self._write(body)

    def _write(self, data: bytes) -> None:
        limit = self.parser.head.content_length if self.parser.head else None
        if limit is not None:
            data = data[: max(limit - self.sent, 0)]
        self.sent += len(data)
        if not self.exchange.write(data) and not self.paused and self.stdout is not None:
            self.paused = True
            self.stdout.pause_reading()

    def on_writable(self) -> None:
        if self.paused:
            self.paused = False
            if self.stdout is not None:
                self.stdout.resume_reading()

    def _on_stdout_end(self) -> None:
        if self.finished:
            return
        head = self.parser.head
        if head is None:
            status = self.process.poll() if self.process else None
            self._fail(502, f"no complete header (exit status {status})")
            return
        if head.content_length is not None and self.sent < head.content_length:
            log.error(
                "CGI %s: wrote %d of %d body bytes",
                self.script.name,
                self.sent,
                head.content_length,
            )
            self.finished = True
            self.exchange.abort()
            return
        self.finished = True
        self.exchange.finish()

    def _stdout_lost(self) -> None:
        self.stdout = None
        self._maybe_done()

    def _on_stderr(self, data: bytes) -> None:
        if self.stderr_logged < self.limits.cgi_max_stderr_log_bytes:
            self.stderr_logged += len(data)
            for line in data.decode("utf-8", "replace").splitlines():
                if line.strip():
                    log.warning("CGI %s: %s", self.script.name, line)

    def _stderr_lost(self) -> None:
        self.stderr = None
        self._maybe_done()

    # -- ending -------------------------------------------------------------

    def _on_exit(self, returncode: int) -> None:
        if self.kill_reason:
            # Not a fault of the script: a client leaving mid-run is ordinary
            # (a siege run ends with dozens), and a timeout was logged already.
            log.info("CGI %s stopped (%s)", self.script.name, self.kill_reason)
        elif returncode != 0:
            log.warning("CGI %s exited with status %d", self.script.name, returncode)
        self._maybe_done()
        self.pool.exited()

    def _maybe_done(self) -> None:
        """Once the answer is out and the process and its pipes are gone, stop the timer."""
        process = self.process
        if (
            self.finished
            and self.stdout is None
            and self.stderr is None
            and (process is None or process.returncode is not None)
            and self.timer is not None
        ):
            self.loop.cancel(self.timer, forget=True)
            self.timer = None

    def _on_timeout(self) -> None:
        self.timer = None
        what = "timed out" if self.process is not None else "found no free slot"
        log.error("CGI %s %s in %.1f s", self.script.name, what, self.location.cgi_timeout)
        self._kill("timed out")
        if not self.finished:
            if self.started:
                self.finished = True
                self.exchange.abort()
            else:
                self._fail(504, "timed out")
        self._release()

    def _fail(self, status: int, reason: str) -> None:
        log.error("CGI %s: %s → %d", self.script.name, reason, status)
        self._kill(reason)
        self._release()
        if not self.finished:
            self.finished = True
            exchange = self.exchange
            exchange.send(
                error_response(
                    status, self.location.error_pages, cache=exchange.services.error_pages
                )
            )

    def _kill(self, reason: str) -> None:
        """SIGKILL the script's process group if it runs; ``reason`` is logged at its exit."""
        process = self.process
        if process is not None and process.returncode is None:
            self.kill_reason = reason
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            except PermissionError:
                process.kill()

    def _release(self) -> None:
        """Drop the pipes (their protocols report back) and the spool."""
        for transport in (self.stdin, self.stdout, self.stderr):
            if transport is not None:
                transport.abort()
        self.stdin = self.stdout = self.stderr = None
        self.spool.close()
        self._maybe_done()

    def on_abort(self, reason: str) -> None:
        """The exchange ends without this run's answer (or after it): stop the script."""
        if not self.finished:
            self.finished = True
            self._kill("its connection closed before the answer was complete")
        self._release()
        if self.timer is not None and (self.process is None or self.process.returncode is not None):
            self.loop.cancel(self.timer, forget=True)
            self.timer = None


def _select(request: Request, location: Location) -> bool:
    """CGI answers a path naming a script, and every POST (404 without a script:
    never an upload where scripts run)."""
    return request.method == "POST" or find_script(request, location) is not None


def _methods(location: Location) -> frozenset[str]:
    return IMPLEMENTED_METHODS if location.cgi else frozenset()


#: Scripts with a ``cgi`` extension under the location's root, any method.
# -- configuration ----------------------------------------------------------


def _cgi(v: Validator, args: list[Token]) -> tuple[str, str]:
    """``cgi .EXT INTERPRETER``: the extension and the interpreter's path
    (found in ``PATH`` when it has no slash)."""
    extension, interpreter = args
    if not extension.startswith(".") or len(extension) < 2 or "/" in extension:
        v.fail(extension, f'invalid CGI extension {quote(extension)} (expected e.g. ".py")')
    if "/" in interpreter:
        path = v.path_of(interpreter)
        problem = path_problem(path, "file")
        if not problem and not os.access(path, os.X_OK):
            # Caught here rather than as a 502 on every request.
            problem = "is not executable"
        if problem:
            where = resolved_note(interpreter, path)
            v.fail(interpreter, f"CGI interpreter {quote(interpreter)} {problem}{where}")
        found = str(path)
    else:
        found = ("\0" not in interpreter and shutil.which(interpreter)) or ""
        if not found:
            v.fail(interpreter, f"CGI interpreter {quote(interpreter)} not found in PATH")
    return str(extension), found


def _cgi_map(scopes: tuple[Scope, Scope, Scope]) -> Any:
    # A location's own cgi lines replace the server's (they do not add to them).
    location, server, _ = scopes
    entries = location.lists.get("cgi") or server.lists.get("cgi") or []
    return MappingProxyType(dict(value for value, _ in entries))


def _cgi_timeout(scopes: tuple[Scope, Scope, Scope]) -> Any:
    return inherit("cgi_timeout", DEFAULT_CGI_TIMEOUT, *scopes)


DIRECTIVES = {
    "cgi": Directive(
        (SERVER, LOCATION),
        2,
        2,
        _cgi,
        repeatable=True,
        syntax="cgi .EXT INTERPRETER",
        derive=_cgi_map,
    ),
    "cgi_timeout": Directive(
        (MAIN, SERVER, LOCATION),
        1,
        1,
        time_value,
        syntax="cgi_timeout TIME",
        derive=_cgi_timeout,
    ),
}

SPEC = HandlerSpec("cgi", _methods, CGIHandler, priority=200, select=_select, directives=DIRECTIVES)
