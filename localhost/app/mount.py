"""Serving a ``localhost.App``: its handler, the ``app`` directive, ``serve``.

``location /api { app myproject.web:app }`` mounts an App (imported by each
worker after the fork, like ``wsgi``; ``wsgi_path``, ``wsgi_threads`` and
``wsgi_queue`` apply). ``App.serve`` and ``python -m localhost MODULE:APP``
build a one-block configuration mounting the App on ``/`` and run it with
the same worker, master, signals and logs as a configuration file.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lark import Token

from localhost.app import websocket
from localhost.app.api import Action, App, MountedApp, Request, Response, Route
from localhost.app.routes import NotAllowed
from localhost.app.runner import (
    APP_ERRORS,
    EMPTY_BODY,
    AppError,
    AppHandler,
    ClientGone,
    app_head,
    head_fields,
)
from localhost.app.wsgi import _target, check_mount, mount_of
from localhost.config.loader import LOCATION, Directive, Scope, Validator
from localhost.config.model import (
    DEFAULT_HOST,
    STDOUT,
    AppMount,
    Config,
    Location,
    ServerBlock,
)
from localhost.handlers.base import BodyPolicy, Exchange, Handler, HandlerSpec
from localhost.handlers.error_pages import error_response
from localhost.handlers.static import inside
from localhost.http.errors import HTTPError
from localhost.http.message import FileBody
from localhost.http.message import Response as HTTPResponse
from localhost.http.methods import IMPLEMENTED_METHODS

if TYPE_CHECKING:
    from localhost.app.wsgi import Applications

log = logging.getLogger("localhost")

Hook = Callable[..., Any]

_OPTIONS = frozenset({"OPTIONS"})


#: ``AppRouteHandler.found`` of a handler that took over a route's answer.
_CARRIED = object()
#: The outcome of a route that raised (``AppRouteHandler.carry``).
_FAILED = object()
#: The outcome of an inline route already answered (``run_inline``).
_DONE = object()


class AppRouteHandler(AppHandler):
    """One request to an App: pre-routing hooks, the route, its handler.

    ``route_path`` and ``found`` (a ``RouteTree.match`` result), when given,
    are the request's route already looked up by ``app_handler``: the
    pre-routing hooks and WebSocket routes are then known to be absent.
    """

    __slots__ = ("mounted", "req", "route", "found", "route_path", "outcome")

    def __init__(
        self,
        exchange: Exchange,
        mounted: Any = None,
        route_path: str = "",
        found: Any = None,
    ) -> None:
        if mounted is None:
            location = exchange.location
            assert location is not None
            # Applications.get without the call (one per request).
            mounted = exchange.services.applications._by_location[id(location)]
        super().__init__(exchange, mounted.pool)
        self.mounted = mounted
        self.route: Route | None = None
        self.req: Request | None = None
        self.route_path = route_path
        self.found = found
        self.outcome: Any = None

    def on_head(self) -> BodyPolicy:
        exchange = self.exchange
        found = self.found
        if found is not None:
            if found is _CARRIED:
                self._carry_on()
                return BodyPolicy.IGNORE
            return self._routed(found, Request(exchange, self.route_path))
        served: MountedApp | None = self.mounted.obj
        if served is None:
            log.error(
                "application %s is not loaded: %s", self.mounted.mount.target, self.mounted.error
            )
            raise HTTPError(500, "the application is not loaded")
        app = served.app
        path = exchange.request.path
        prefix = served.prefix
        route_path = (path[len(prefix) :] or "/") if prefix else path
        req = self.req = Request(exchange, route_path)
        for hook in app.pre_routing_hooks:
            result = hook(req)
            if result is None or result is Action.PROCEED:
                continue
            if result is Action.DROP:
                exchange.abort("dropped")
                return BodyPolicy.IGNORE
            self.pool = None
            self.threaded = False
            self.answer(result)
            return BodyPolicy.IGNORE
        sockets = app.websocket_routes
        if sockets is not None and websocket.start(
            exchange, sockets, app.groups, route_path, self.mounted.pool
        ):
            return BodyPolicy.IGNORE  # switched to WebSocket (101)
        found = app.routes.match(exchange.request.method, route_path)
        if found is None:
            if sockets is not None:
                refusal = websocket.not_upgraded(sockets, route_path)
                if refusal is not None:
                    raise refusal  # 426: the path is a WebSocket endpoint
            route = app.fallback_route
            if route is None:
                raise HTTPError(404, f"no route for {route_path}")
            return self._run_route(route, req)
        return self._routed(found, req)

    def _routed(self, found: Any, req: Request) -> BodyPolicy:
        """Answer by the route ``found`` for ``req`` (405 when the path is
        another method's)."""
        exchange = self.exchange
        self.req = req
        if type(found) is NotAllowed:
            # OPTIONS is answered wherever a route matches (RFC 9110 §9.3.7),
            # as in the configuration's locations, unless a route takes it.
            allow = ", ".join(sorted(found.allow | _OPTIONS))
            if exchange.request.method == "OPTIONS":
                exchange.send(HTTPResponse(200, [("Allow", allow)]))
                return BodyPolicy.IGNORE
            location = exchange.location
            assert location is not None
            exchange.send(
                error_response(
                    405,
                    location.error_pages,
                    [("Allow", allow)],
                    cache=exchange.services.error_pages,
                )
            )
            return BodyPolicy.IGNORE
        req.params = found.params
        return self._run_route(found.target, req)

    def _run_route(self, route: Route, req: Request) -> BodyPolicy:
        self.route = route
        if route.inline:
            self.pool = None
            self.threaded = False
            request = self.exchange.request
            if not request.chunked and not request.content_length:
                self._run_inline(req, route)
                return BodyPolicy.IGNORE
        return super().on_head()

    def _run_inline(self, req: Request, route: Route) -> None:
        """Run an inline route for a request without a body, on the loop."""
        result = run_inline(self.exchange, route, req)
        if result is not _DONE:
            self.outcome = result
            self._carry_on()

    def carry(self, req: Request, route: Route, result: Any) -> AppRouteHandler:
        """Take over the ``result`` of an inline ``route`` that ``app_handler``
        ran for ``req`` (an answer other than the plain one, or ``_FAILED``);
        returns self. The answer starts in ``on_head``, once the protocol
        holds this handler: an error page it leads to (an internal redirect)
        then replaces it there, as for any handler."""
        self.req = req
        self.route = route
        self.found = _CARRIED
        self.outcome = result
        self.pool = None
        self.threaded = False
        return self

    def _carry_on(self) -> None:
        result = self.outcome
        self.outcome = None
        if result is _FAILED:
            self._internal_error()
            return
        try:
            self.answer(result)
        except ClientGone:
            pass
        except APP_ERRORS:
            log.exception("application error in %s", self.exchange.request)
            self._internal_error()

    def call(self, body: Any) -> None:
        req = self.req
        route = self.route
        assert req is not None and route is not None
        req._body = body
        self.answer(route.handler(req, *req.params))

    def answer(self, result: Any) -> None:
        """Carry a handler's return value to the client (from its thread)."""
        if isinstance(result, Response):
            status, headers, body = result.status, result.headers, result.body
            if result.path is not None:
                self._answer_file(result)
                return
        elif isinstance(result, (bytes, str)):
            status, headers = 200, [("Content-Type", "text/plain; charset=utf-8")]
            body = result.encode("utf-8") if isinstance(result, str) else result
        elif result is None:
            status, headers, body = 204, [], b""
        elif isinstance(result, (dict, list)):
            answer = Response.json(result)
            status, headers, body = answer.status, answer.headers, answer.body
        else:
            raise AppError(f"a handler returned {type(result).__name__}, not a Response")
        if type(status) is not int or not 200 <= status <= 599:
            # A final status (RFC 9110 §15: 1xx are interim, 600+ undefined).
            raise AppError(f"invalid status {status!r}: a final status is 200 to 599")
        fields, length, encoded = app_head(headers)
        if isinstance(body, str):
            body = body.encode("utf-8")
        if isinstance(body, bytes):
            self.answer_whole(status, fields, body, length, encoded)
        else:
            self.answer_stream(status, fields, length, body)

    def _answer_file(self, response: Response) -> None:
        assert response.path is not None and response.root is not None
        fields, _ = head_fields(response.headers)
        region = _open_inside(response.path, response.root)
        if region is None:
            self._post(self._not_found)
            return
        self.answer_file(response.status, fields, region)

    def _not_found(self) -> None:
        exchange = self.exchange
        if exchange.done:
            return
        location = exchange.location
        pages = location.error_pages if location is not None else exchange.server.error_pages
        exchange.send(error_response(404, pages, cache=exchange.services.error_pages))


class _Answered(Handler):
    """Stands for the handler of a request ``app_handler`` answered at once."""

    __slots__ = ()

    def __init__(self) -> None:
        pass


#: The handler ``app_handler`` returns for a request it answered itself.
ANSWERED = _Answered()


def app_handler(exchange: Exchange) -> Handler:
    """The handler of a request to a mounted App (the ``app`` spec's factory).

    The hot case, an ``inline`` route of a request without a body in an App
    without pre-routing hooks or WebSocket routes, runs here: a plain answer
    (see ``_send_plain``) goes to the exchange at once and no handler object
    is made (``ANSWERED`` is returned, for an exchange already done). Any
    other request or answer goes on in an ``AppRouteHandler``, with the
    route already looked up.
    """
    location = exchange.location
    assert location is not None
    mounted = exchange.services.applications._by_location[id(location)]
    served: MountedApp | None = mounted.obj
    request = exchange.request
    if served is None:
        return AppRouteHandler(exchange, mounted)
    app = served.app
    if app.pre_routing_hooks or app.websocket_routes is not None:
        return AppRouteHandler(exchange, mounted)
    path = request.path
    prefix = served.prefix
    route_path = (path[len(prefix) :] or "/") if prefix else path
    found = app.routes.match(request.method, route_path)
    if found is None:
        return AppRouteHandler(exchange, mounted)  # the fallback route, or 404
    if (
        type(found) is NotAllowed
        or request.chunked
        or request.content_length
        or not found.target.inline  # type: ignore[union-attr]
    ):
        return AppRouteHandler(exchange, mounted, route_path, found)
    route: Route = found.target  # type: ignore[union-attr]
    req = Request(exchange, route_path)
    req.params = found.params  # type: ignore[union-attr]
    result = run_inline(exchange, route, req)
    if result is _DONE:
        return ANSWERED
    return AppRouteHandler(exchange, mounted).carry(req, route, result)


def run_inline(exchange: Exchange, route: Route, req: Request) -> Any:
    """Call the inline ``route`` for ``req`` (a request without a body) on
    the loop, and send its answer if it is the plain one (``_send_plain``).

    Returns ``_DONE`` when nothing is left to do (sent, or the client went
    away), ``_FAILED`` when the route raised (logged with its traceback: a
    500 is the caller's to send, from a handler the protocol holds), else
    the route's result for ``AppRouteHandler.answer``.
    """
    req._body = EMPTY_BODY
    params = req.params
    try:
        result = route.handler(req, *params) if params else route.handler(req)
        if _send_plain(exchange, result, exchange.request.method):
            return _DONE
    except ClientGone:
        return _DONE
    except APP_ERRORS:
        log.exception("application error in %s", exchange.request)
        return _FAILED
    return result


def _send_plain(exchange: Exchange, result: Any, method: str) -> bool:
    """Send ``result`` if it is the common answer: a ``Response`` with a bytes
    body (of its Content-Length, if it gives one) and a final status that
    has a body, to a method other than HEAD. False: nothing was done."""
    if type(result) is not Response or result.path is not None:
        return False
    body = result.body
    status = result.status
    if (
        type(body) is not bytes
        or type(status) is not int
        or not 200 <= status <= 599
        or status == 204
        or status == 304
        or method == "HEAD"
    ):
        return False
    fields, length, encoded = app_head(result.given)
    size = len(body)
    if length is not None and length != size:
        return False
    line = _LENGTH_LINES.get(size)
    if line is None:
        if len(_LENGTH_LINES) >= 4096:
            _LENGTH_LINES.clear()
        line = _LENGTH_LINES[size] = b"Content-Length: %d\r\n" % size
    exchange.send(HTTPResponse(status, fields, body, None, False, None, encoded + line))
    return True


#: ``Content-Length: N`` lines by N: an App answers with the same few
#: lengths over and over.
_LENGTH_LINES: dict[int, bytes] = {}


def _open_inside(path: Path, root: Path) -> FileBody | None:
    """The whole regular file at ``path`` if it resolves inside ``root``, else None."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if not inside(real_root, real):
        return None
    try:
        fd = os.open(real, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        return None
    return FileBody(fd, 0, st.st_size)


# -- connection hooks -----------------------------------------------------------

ConnectionHooks = tuple[tuple[Hook, ...], tuple[Hook, ...]]


def connection_hooks(config: Config, applications: Applications) -> dict[int, ConnectionHooks]:
    """id(server block) → (setup hooks, teardown hooks) of the Apps mounted in
    any block sharing one of its listen addresses (a connection is accepted
    before its Host is known). Blocks without such Apps are absent."""
    by_address: dict[tuple[str, int], tuple[list[Hook], list[Hook]]] = {}
    for server in config.servers:
        for location in server.locations:
            if location.app is None:
                continue
            served = applications.get(location).obj
            if served is None:
                continue
            for address in server.addresses:
                setup, teardown = by_address.setdefault(address, ([], []))
                setup.extend(h for h in served.app.setup_hooks if h not in setup)
                teardown.extend(h for h in served.app.teardown_hooks if h not in teardown)
    found: dict[int, ConnectionHooks] = {}
    for server in config.servers:
        setup_all: list[Hook] = []
        teardown_all: list[Hook] = []
        for address in server.addresses:
            setup, teardown = by_address.get(address, ([], []))
            setup_all.extend(h for h in setup if h not in setup_all)
            teardown_all.extend(h for h in teardown if h not in teardown_all)
        if setup_all or teardown_all:
            found[id(server)] = (tuple(setup_all), tuple(teardown_all))
    return found


def run_setup_hooks(hooks: tuple[Hook, ...], peer: tuple[str, int], local: tuple[str, int]) -> bool:
    """Whether every setup hook lets the connection in (an exception: it does not)."""
    for hook in hooks:
        try:
            if hook(peer, local) is Action.DROP:
                return False
        except Exception:
            log.exception("connection setup hook failed: dropping %s:%d", *peer)
            return False
    return True


def run_teardown_hooks(hooks: tuple[Hook, ...], peer: tuple[str, int], reason: str | None) -> None:
    """Call every teardown hook; one that fails is logged and the others still run."""
    for hook in hooks:
        try:
            hook(peer, reason)
        except Exception:
            log.exception("connection teardown hook failed")


# -- configuration ----------------------------------------------------------------


def _is_app(obj: Any) -> str | None:
    return None if isinstance(obj, App) else f"{type(obj).__name__} object is not a localhost.App"


def _app(scopes: tuple[Scope, Scope, Scope]) -> AppMount | None:
    return mount_of("app", scopes)


def _app_target(v: Validator, args: list[Token]) -> str:
    return _target(v, args)


DIRECTIVES = {
    "app": Directive(
        (LOCATION,),
        1,
        1,
        _app_target,
        syntax="app MODULE:APP",
        derive=_app,
        check=check_mount("app", _is_app),
        rootless=True,
    ),
}


def _methods(location: Location) -> frozenset[str]:
    return IMPLEMENTED_METHODS if location.app is not None else frozenset()


def _exclusive(location: Location) -> bool:
    return location.app is not None


#: A location with ``app`` gives every request to its App.
SPEC = HandlerSpec(
    "app", _methods, app_handler, priority=160, exclusive=_exclusive, directives=DIRECTIVES
)


# -- serving an App directly --------------------------------------------------------


def _no_file(name: str) -> Path:
    """The ``Config.path`` of a configuration made in code: a name that is no
    file (a SIGHUP then has nothing to re-read, and says so in the log,
    instead of loading some ``app.conf`` of the working directory)."""
    return Path.cwd() / f"<{name}: no configuration file>"


def _catch_all(location: Location) -> bool:
    """Whether ``location`` is a ``location /`` that every path matches
    (a prefix one: ``location = /`` matches ``/`` alone)."""
    return location.prefix == "/" and location.modifier in ("", "^~")


def _implicit_root(server: ServerBlock, location: Location) -> bool:
    """Whether ``location`` is the ``location /`` a block's ``root`` implies
    (the loader makes it with the block's line and no settings of its own)."""
    return (
        location.modifier == ""
        and location.line == server.line
        and not location.alias
        and not location.nested
    )


def app_config(
    app: App, host: str, port: int, workers: int | None, access_log: bool = True
) -> Config:
    """The configuration ``App.serve`` runs.

    With ``from_config``: the App's file, with the App on ``/`` of every HTTP
    block that has no prefix ``location /`` of its own (in place of the
    implicit one a ``root`` gives; ``location = /`` is kept and the App
    answers the other paths); ``workers`` None keeps ``worker_processes``.
    Raises ``ConfigError`` for an invalid file. Otherwise one server block
    on ``host:port`` (``""``: every address) with the App on ``/`` and the
    App's ``body_limit``; ``workers`` None is 1.
    """
    mount = AppMount("app", f"<App {id(app):x}>", (), app.threads, app.queue, obj=app)
    if app.config_path is not None:
        from localhost.config import load

        config = load(app.config_path)
        servers = []
        for server in config.servers:
            if server.protocol is None:
                own = [loc for loc in server.locations if _catch_all(loc)]
                if not own:
                    root = Location(
                        "/",
                        app=mount,
                        access_log=server.access_log,
                        error_pages=server.error_pages,
                        body_limit=server.body_limit,
                    )
                    server = replace(server, locations=(*server.locations, root))
                elif _implicit_root(server, own[0]):
                    implicit = own[0]
                    server = replace(
                        server,
                        locations=tuple(
                            replace(loc, app=mount) if loc is implicit else loc
                            for loc in server.locations
                        ),
                    )
            servers.append(server)
        return replace(
            config,
            servers=tuple(servers),
            worker_processes=workers or config.worker_processes,
            rebuild=lambda: app_config(app, host, port, workers, access_log),
        )
    log_to = STDOUT if access_log else None
    location = Location("/", app=mount, access_log=log_to, body_limit=app.body_limit)
    server = ServerBlock(
        addresses=((host or DEFAULT_HOST, port),),
        locations=(location,),
        access_log=log_to,
        body_limit=app.body_limit,
    )
    return Config(
        path=_no_file("localhost.App"),
        servers=(server,),
        worker_processes=workers or 1,
        session_store=Path(os.devnull),
    )


def serve(
    app: App,
    host: str,
    port: int,
    workers: int | None,
    log_level: str | None,
    access_log: bool = True,
) -> int:
    """Run ``app`` until stopped (``App.serve``); returns the exit status.

    ``workers`` and ``log_level`` None: the configuration's (``from_config``),
    else 1 and ``info``.
    """
    from localhost.cli import run_config
    from localhost.config import ConfigError

    try:
        config = app_config(app, host, port, workers, access_log)
    except ConfigError as exc:
        print(f"localhost: {exc}", file=sys.stderr)
        return 1
    level = log_level or (config.error_log_level if app.config_path is not None else "info")
    return run_config(config, config.worker_processes, workers is not None, level)


def serve_wsgi(
    application: Any,
    name: str,
    host: str,
    port: int,
    workers: int,
    log_level: str,
    access_log: bool = True,
) -> int:
    """Run a WSGI callable on ``host:port`` until stopped (``python -m localhost MODULE:APP``)."""
    from localhost.cli import run_config

    mount = AppMount("wsgi", name, (), obj=application)
    log_to = STDOUT if access_log else None
    location = Location("/", wsgi=mount, access_log=log_to)
    server = ServerBlock(
        addresses=((host or DEFAULT_HOST, port),), locations=(location,), access_log=log_to
    )
    config = Config(
        path=_no_file(name),
        servers=(server,),
        worker_processes=workers,
        session_store=Path(os.devnull),
    )
    return run_config(config, workers, True, log_level)
