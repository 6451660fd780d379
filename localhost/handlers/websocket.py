"""WebSocket from the configuration: ``websocket_exec`` and the ``websocket_*`` limits.

``websocket_exec PROGRAM [ARG...]`` makes a location a WebSocket endpoint
served by a program, one process per connection (like ``websocketd``): each
message from the client is written to its stdin as one line (text as UTF-8,
a newline added), and each line it prints goes to the client as one text
message. The process gets the CGI meta-variables of the handshake request
(RFC 3875: ``REQUEST_URI``, ``QUERY_STRING``, ``REMOTE_ADDR``, ``HTTP_*``...);
what it writes to stderr goes to the error log. When the socket closes the
process group is killed and reaped; when the program exits, the socket closes
with 1000 (status 0) or 1011 (any other status) once its output is sent.

A plain request to such a location is answered 426 Upgrade Required; a bad
handshake 400 (with the reason), a version other than 13 426, an Origin not
allowed 403 (see ``localhost.server.websocket.accept``).

The limits apply to every WebSocket endpoint of a location (App API routes
too): ``websocket_max_message SIZE`` (1m), ``websocket_idle_timeout TIME``
(60s), ``websocket_origins ORIGIN...`` (default: the request's own host;
``*`` allows any), ``websocket_deflate on|off`` (off).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from lark import Token

from localhost.config.loader import (
    LOCATION,
    MAIN,
    SERVER,
    Directive,
    Scope,
    Validator,
    inherit,
    on_off,
    path_problem,
    quote,
    resolved_note,
    size_value,
    time_value,
)
from localhost.config.model import Location
from localhost.handlers.base import BodyPolicy, Exchange, Handler, HandlerSpec
from localhost.handlers.cgi import Script, _Pipe, cgi_environ
from localhost.http.errors import HTTPError
from localhost.io import PipeTransport
from localhost.server.websocket import (
    DEFAULT_SETTINGS,
    HIGH_WATER,
    INTERNAL_ERROR,
    NORMAL,
    Accepted,
    Settings,
    WebSocket,
    accept,
    is_websocket,
    refusal,
    upgrade_required,
)

if TYPE_CHECKING:
    from localhost.io.loop import EventLoop

log = logging.getLogger("localhost")

_GET = frozenset({"GET"})


def settings_of(location: Location | None) -> Settings:
    """The WebSocket limits of ``location`` (the defaults outside one)."""
    if location is None:
        return DEFAULT_SETTINGS
    options = location.options
    return Settings(
        max_message=options.get("websocket_max_message", DEFAULT_SETTINGS.max_message),
        idle_timeout=options.get("websocket_idle_timeout", DEFAULT_SETTINGS.idle_timeout),
        origins=options.get("websocket_origins"),
        deflate=options.get("websocket_deflate", False),
    )


class ExecEndpoint:
    """The endpoint of one ``websocket_exec`` connection: a process and its pipes."""

    def __init__(self, loop: EventLoop, argv: tuple[str, ...], env: dict[str, str]) -> None:
        self.loop = loop
        self.argv = argv
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.stdin: PipeTransport | None = None
        self.stdout: PipeTransport | None = None
        self.stderr: PipeTransport | None = None
        self.ws: WebSocket | None = None
        self.pending = b""  # stdout bytes of a line not ended yet
        self.status: int | None = None
        self.output_done = False

    def on_connect(self, ws: WebSocket) -> None:
        self.ws = ws
        program = self.argv[0]
        try:
            process = self.process = subprocess.Popen(
                list(self.argv),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=os.path.dirname(program) or None,
                env=self.env,
                close_fds=True,
                process_group=0,
            )
        except OSError as exc:
            log.error("websocket_exec %s could not start: %s", program, exc)
            ws.close(INTERNAL_ERROR, "program could not start")
            return
        assert process.stdin and process.stdout and process.stderr
        loop = self.loop
        self.stdout = PipeTransport(
            loop, process.stdout, _Pipe(self._on_stdout, self._on_stdout_end), mode="r"
        )
        self.stderr = PipeTransport(loop, process.stderr, _Pipe(self._on_stderr), mode="r")
        self.stdin = PipeTransport(
            loop,
            process.stdin,
            _Pipe(on_lost=self._stdin_lost, on_resume=self._stdin_drained),
            mode="w",
        )
        loop.watch_child(process, self._on_exit)

    def on_message(self, ws: WebSocket, message: str | bytes) -> None:
        stdin = self.stdin
        if stdin is None or stdin.is_closing():
            return
        data = message.encode("utf-8", "surrogateescape") if isinstance(message, str) else message
        stdin.write(data + b"\n")
        if stdin.get_write_buffer_size() > HIGH_WATER and ws.transport is not None:
            # The program reads slower than the client sends: hold the client.
            ws.transport.pause_reading()

    def on_writable(self, ws: WebSocket) -> None:
        if self.stdout is not None:
            self.stdout.resume_reading()

    def on_close(self, ws: WebSocket, code: int, reason: str) -> None:
        process = self.process
        if process is not None:
            # The whole group, even when the program itself has exited: a child
            # of it may hold its output open.
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            except PermissionError:
                if process.returncode is None:
                    process.kill()
        for pipe in (self.stdin, self.stdout, self.stderr):
            if pipe is not None:
                pipe.abort()
        self.stdin = self.stdout = self.stderr = None

    # -- the process's side -------------------------------------------------

    def _on_stdout(self, data: bytes) -> None:
        ws = self.ws
        if ws is None or ws.closed:
            return
        buffered = self.pending + data
        lines = buffered.split(b"\n")
        self.pending = lines.pop()
        writable = True
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            writable = ws.send(line.decode("utf-8", "replace"))
        if not writable and self.stdout is not None:
            self.stdout.pause_reading()  # on_writable resumes

    def _on_stdout_end(self) -> None:
        ws = self.ws
        if self.pending and ws is not None:
            ws.send(self.pending.decode("utf-8", "replace"))
            self.pending = b""
        self.output_done = True
        self._maybe_close()

    def _on_stderr(self, data: bytes) -> None:
        text = data.decode("utf-8", "replace").rstrip()
        if text:
            log.warning("websocket_exec %s: %s", self.argv[0], text)

    def _stdin_lost(self) -> None:
        self.stdin = None

    def _stdin_drained(self) -> None:
        ws = self.ws
        if ws is not None and ws.transport is not None and not ws.closed:
            ws.transport.resume_reading()

    def _on_exit(self, status: int) -> None:
        self.status = status
        if status != 0 and not (self.ws is not None and self.ws.closed):
            log.warning("websocket_exec %s exited with status %d", self.argv[0], status)
        self._maybe_close()

    def _maybe_close(self) -> None:
        ws = self.ws
        if ws is None or self.status is None or not self.output_done:
            return
        ws.close(NORMAL if self.status == 0 else INTERNAL_ERROR, "program exited")


class ExecHandler(Handler):
    """A ``websocket_exec`` location: the handshake, then a process per connection."""

    __slots__ = ("accepted", "settings")

    def __init__(self, exchange: Exchange) -> None:
        super().__init__(exchange)
        self.accepted: Accepted | None = None
        self.settings = DEFAULT_SETTINGS

    def on_head(self) -> BodyPolicy:
        exchange = self.exchange
        request = exchange.request
        if not is_websocket(request):
            raise upgrade_required()
        self.settings = settings_of(exchange.location)
        try:
            self.accepted = accept(request, self.settings, (), exchange.scheme)
        except HTTPError as exc:
            exchange.send(refusal(exc))
        return BodyPolicy.IGNORE

    def on_body_end(self) -> None:
        exchange = self.exchange
        location = exchange.location
        accepted = self.accepted
        if location is None or accepted is None or exchange.done:
            return  # refused in on_head
        argv: tuple[str, ...] = location.options["websocket_exec"]
        request = exchange.request
        root = os.path.dirname(argv[0])
        script = Script(argv[0], request.path, "", argv[0], root)
        env = cgi_environ(
            request,
            script,
            exchange.local,
            exchange.peer,
            None,
            exchange.session,
            exchange.server.server_names,
            exchange.scheme,
        )
        endpoint = ExecEndpoint(exchange.loop, argv, env)
        ws = WebSocket(exchange.loop, endpoint, request, accepted, self.settings, {}, exchange.peer)
        exchange.upgrade(accepted.response, lambda: ws)


# -- configuration ----------------------------------------------------------


def _exec(v: Validator, args: list[Token]) -> tuple[str, ...]:
    """``websocket_exec PROGRAM [ARG...]``: an executable file, relative to the config."""
    program = args[0]
    path = v.path_of(program)
    problem = path_problem(path, "file")
    if not problem and not os.access(path, os.X_OK):
        problem = "is not executable (chmod +x, and a #! line)"
    if problem:
        v.fail(
            program,
            f"websocket_exec program {quote(program)} {problem}{resolved_note(program, path)}",
        )
    # Absolute: the program runs in its own folder, where a path relative to
    # the server's working directory (a relative config path) would not resolve.
    return (os.path.abspath(path), *(str(arg) for arg in args[1:]))


def _origins(v: Validator, args: list[Token]) -> tuple[str, ...]:
    """``websocket_origins ORIGIN...``: ``scheme://host[:port]`` or ``*``."""
    origins = []
    for arg in args:
        text = str(arg).lower().rstrip("/")
        if text != "*":
            scheme, sep, rest = text.partition("://")
            if not sep or scheme not in ("http", "https") or not rest or "/" in rest:
                v.fail(arg, f"invalid origin {quote(arg)} (expected e.g. https://example.com or *)")
        origins.append(text)
    return tuple(origins)


def _max_message(v: Validator, args: list[Token]) -> int:
    size = int(size_value(v, args))
    if size < 1:
        v.fail(args[0], "websocket_max_message must be at least 1 byte")
    return size


def _idle(v: Validator, args: list[Token]) -> float:
    seconds = float(time_value(v, args))
    if seconds <= 0:
        v.fail(args[0], "websocket_idle_timeout must be more than 0")
    return seconds


def _derive(name: str, default: Any) -> Any:
    def derive(scopes: tuple[Scope, Scope, Scope]) -> Any:
        return inherit(name, default, *scopes)

    return derive


def _derive_exec(scopes: tuple[Scope, Scope, Scope]) -> Any:
    location = scopes[0]
    found = location.values.get("websocket_exec")
    return found[0] if found is not None else None


DIRECTIVES = MappingProxyType(
    {
        "websocket_exec": Directive(
            (LOCATION,),
            1,
            None,
            _exec,
            syntax="websocket_exec PROGRAM [ARG...]",
            derive=_derive_exec,
            rootless=True,
        ),
        "websocket_max_message": Directive(
            (MAIN, SERVER, LOCATION),
            1,
            1,
            _max_message,
            syntax="websocket_max_message SIZE",
            derive=_derive("websocket_max_message", DEFAULT_SETTINGS.max_message),
        ),
        "websocket_idle_timeout": Directive(
            (MAIN, SERVER, LOCATION),
            1,
            1,
            _idle,
            syntax="websocket_idle_timeout TIME",
            derive=_derive("websocket_idle_timeout", DEFAULT_SETTINGS.idle_timeout),
        ),
        "websocket_origins": Directive(
            (MAIN, SERVER, LOCATION),
            1,
            None,
            _origins,
            syntax="websocket_origins ORIGIN...",
            derive=_derive("websocket_origins", None),
        ),
        "websocket_deflate": Directive(
            (MAIN, SERVER, LOCATION),
            1,
            1,
            on_off,
            syntax="websocket_deflate on|off",
            derive=_derive("websocket_deflate", False),
        ),
    }
)


def _is_exec(location: Location) -> bool:
    return location.options.get("websocket_exec") is not None


def _methods(location: Location) -> frozenset[str]:
    return _GET if _is_exec(location) else frozenset()


#: ``websocket_exec`` answers every request of its location (426 when not a handshake).
SPEC = HandlerSpec(
    "websocket",
    _methods,
    ExecHandler,
    priority=120,
    exclusive=_is_exec,
    directives=DIRECTIVES,
)
