"""The App API: routes, handlers and hooks written in Python, served by localhost.

```python
from localhost import App, Response, Action

app = App()

@app.route("GET", "/user/:id")
def user(req, id):
    return Response(200, {"content-type": "text/plain"}, id.encode())

@app.route("POST", "/upper")
def upper(req):
    return Response(200, body=req.body().read().upper())

app.serve(host="127.0.0.1", port=8080, workers=1)
```

Routes match by path segments (``localhost.app.routes``): ``:name`` and
``*`` take one segment, ``**`` the rest; literal > ``:param`` > ``*`` >
``**``. A handler gets the request and the captured segments (decoded) as
positional arguments, and returns a ``Response`` (or ``bytes``/``str`` for a
200 text answer, a ``dict``/``list`` for JSON). Handlers run in the worker's
thread pool (they may block); ``inline=True`` runs one on the event loop
(it must not block). A body may be bytes, an iterable or generator of bytes
(streamed as the client takes it), or a file (``Response.file``: sent with
``os.sendfile``).

Hooks run on the event loop and must not block:

- ``connection_setup_hook(fn)``: ``fn(peer, local) -> Action`` right after a
  connection is accepted (``Action.DROP`` closes it at once, before any byte
  is read; such a connection never started, so no teardown hook is called
  for it; a hook that raises is logged and drops the connection);
- ``pre_routing_hook(fn)``: ``fn(req) -> None | Response | Action`` before
  routing (a ``Response`` answers, ``Action.DROP`` closes the connection; a
  hook that raises is logged and the answer is 500);
- ``connection_teardown_hook(fn)``: ``fn(peer, reason)`` once per connection
  when it ends; ``reason`` is None for a clean end (the client closed between
  requests, a closing answer was sent, the keep-alive timeout), else why
  (``"timeout"``, ``"client went away"``, ``"dropped"``, ``"bad request
  (400)"``, ...). A hook that raises is logged; the others still run.

OPTIONS on a routed path is answered 200 with ``Allow`` unless a route takes
OPTIONS (RFC 9110 §9.3.7); another method gets 405 with ``Allow``.

Mounted from a configuration (``location /api { app myproject.web:app }``),
route patterns are matched below the location's prefix, as WSGI's
SCRIPT_NAME, and the connection hooks apply to the connections of the
server blocks that mount it.
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from localhost.app.routes import RouteTree
from localhost.app.runner import url_scheme
from localhost.app.websocket import Group, WebSocketRoute, check_target
from localhost.config.model import DEFAULT_BODY_LIMIT

if TYPE_CHECKING:
    from localhost.config.model import Location
    from localhost.handlers.base import Exchange
    from localhost.http.message import Headers

Handler = Callable[..., Any]
Body = bytes | str | Iterable[bytes]


class Action(enum.Enum):
    """What a hook decides about a connection or a request."""

    PROCEED = "proceed"
    DROP = "drop"


class Response:
    """An answer from an App handler.

    ``status`` is the final status code, 200 to 599 (RFC 9110 §15; another
    value is a 500 when the answer is sent); ``headers`` a mapping or an
    iterable of ``(name, value)`` pairs (both made ``str``); ``body`` bytes,
    a ``str`` (sent as UTF-8), or an iterable of bytes (streamed as the
    client takes it; a ``Content-Length`` header, when given, frames it,
    else chunked on HTTP/1.1 and close-delimited on HTTP/1.0). The server
    adds Date, Server, Content-Length or chunked framing, and Connection;
    hop-by-hop fields (RFC 9110 §7.6.1: Connection, Transfer-Encoding, ...)
    are the server's and give a 500.
    """

    __slots__ = ("status", "given", "body", "path", "root")

    def __init__(
        self,
        status: int = 200,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        body: Body = b"",
    ) -> None:
        self.status = status
        #: The headers: a copy of a dict given (made a list when ``headers``
        #: is first read: the server reads a dict of str as it is), else a list.
        self.given: list[tuple[str, str]] | dict[Any, Any]
        if headers is None:
            self.given = []
        elif type(headers) is dict:
            self.given = headers.copy()  # what the handler changes later is not sent
        elif isinstance(headers, Mapping):
            self.given = [(str(k), str(v)) for k, v in headers.items()]
        else:
            self.given = [(str(k), str(v)) for k, v in headers]
        self.body: Body = body.encode("utf-8") if isinstance(body, str) else body
        self.path: Path | None = None
        self.root: Path | None = None

    @property
    def headers(self) -> list[tuple[str, str]]:
        """The header fields, as ``(name, value)`` pairs of ``str`` (a list the
        handler may change)."""
        given = self.given
        if type(given) is dict:
            given = self.given = [(str(k), str(v)) for k, v in given.items()]
        return given  # type: ignore[return-value]

    @headers.setter
    def headers(self, value: Mapping[str, str] | Iterable[tuple[str, str]]) -> None:
        items = value.items() if isinstance(value, Mapping) else value
        self.given = [(str(k), str(v)) for k, v in items]

    @classmethod
    def file(
        cls,
        path: str | os.PathLike[str],
        root: str | os.PathLike[str] | None = None,
        status: int = 200,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    ) -> Response:
        """The whole content of the regular file ``path``, sent with ``os.sendfile``.

        With ``root``, a relative ``path`` is taken below it
        (``Response.file(rest, root=STATIC)``); otherwise a relative ``path``
        is taken from the server's working directory. Content-Type comes from
        the name, as for static files (``mimetypes``; ``; charset=utf-8`` for
        text), unless ``headers`` give one.

        The file's real path (symlinks resolved) must stay inside ``root``,
        else the answer is a 404, as for a missing file or a directory. By
        default ``root`` is the first folder of a relative ``path``
        (``static`` for ``Path("static") / rest``), or the folder holding
        the file for an absolute one. Give ``root`` whenever part of the path
        comes from the request other than through a route's params (a query
        argument, a header): ``Path("static") / "/etc/passwd"`` is
        ``/etc/passwd`` by ``pathlib``'s rules, and only an explicit root
        keeps such a path out.
        """
        response = cls(status, headers)
        file = Path(path)
        if root is not None:
            response.root = Path(root)
            file = response.root / file
        elif file.is_absolute():
            response.root = file.parent
        else:
            parts = file.parts
            response.root = Path(parts[0]) if len(parts) > 1 else Path(".")
        response.path = file
        if not any(name.lower() == "content-type" for name, _ in response.headers):
            from localhost.handlers.static import content_type

            response.headers.append(("Content-Type", content_type(file.name)))
        return response

    @classmethod
    def json(cls, value: Any, status: int = 200) -> Response:
        """``value`` as JSON (``application/json``)."""
        return cls(
            status, [("Content-Type", "application/json")], json.dumps(value).encode("utf-8")
        )

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> Response:
        """A redirect to ``location``."""
        return cls(status, [("Location", location)])

    def __repr__(self) -> str:
        return f"<Response {self.status}>"


class Request:
    """A request as an App handler sees it.

    ``method``; ``path`` (decoded, normalised, the whole path) and
    ``route_path`` (below the mount's prefix, what routes match); ``query``
    (raw) and ``args`` (parsed: name → list of values); ``headers`` (lower-
    case names: ``headers.get("user-agent")``); ``peer`` and ``local``
    (``(host, port)``); ``scheme`` (``"http"``, ``"https"`` on TLS); ``params``
    (the captured segments).
    ``body()`` is the request body as a binary stream (``read``, ``readline``,
    iteration), streamed as it arrives when the handler runs in a thread.
    """

    __slots__ = (
        "method",
        "path",
        "route_path",
        "query",
        "headers",
        "peer",
        "local",
        "params",
        "_body",
        "_args",
        "exchange",
    )

    def __init__(self, exchange: Exchange, route_path: str) -> None:
        request = exchange.request
        self.exchange = exchange
        self.method = request.method
        self.path = request.path
        self.route_path = route_path
        self.query = request.query
        self.headers: Headers = request.headers
        self.peer = exchange.peer
        self.local = exchange.local
        self.params: tuple[str, ...] = ()
        self._body: Any = None
        self._args: dict[str, list[str]] | None = None

    @property
    def scheme(self) -> str:
        """``"https"`` on a TLS connection, else ``"http"`` (its transport's)."""
        return url_scheme(self.exchange)

    @property
    def args(self) -> dict[str, list[str]]:
        """The query's parameters, decoded (``?a=1&a=2`` → ``{"a": ["1", "2"]}``)."""
        if self._args is None:
            self._args = parse_qs(self.query, keep_blank_values=True)
        return self._args

    def body(self) -> Any:
        """The request body as a binary stream: ``read(n)``, ``read()``,
        ``readline``, ``readlines``, iteration; ``b""`` at its end, and for a
        request without a body. In a thread it is read as it arrives (a read
        waits for the client; one after the client left raises ``OSError``);
        on the loop (``inline=True``) the whole body has arrived first. None
        in a ``pre_routing_hook``: the body is not read before routing."""
        return self._body

    def json(self) -> Any:
        """The body parsed as JSON. Raises ``ValueError`` when it is not JSON."""
        return json.loads(self._body.read() or b"null")

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path}>"


class Route:
    """A registered route: its handler and whether it runs on the loop."""

    __slots__ = ("handler", "inline", "pattern")

    def __init__(self, handler: Handler, inline: bool, pattern: str) -> None:
        self.handler = handler
        self.inline = inline
        self.pattern = pattern


class App:
    """Routes, a fallback and hooks; served by ``serve`` or mounted by a configuration.

    ``threads`` and ``queue`` size the worker's pool for handlers when the
    App is served by ``serve`` (a configuration's ``wsgi_threads`` and
    ``wsgi_queue`` size it when mounted): handlers run in ``threads``
    threads (0: all on the event loop) and past ``queue`` waiting requests
    the answer is 503. ``body_limit`` is the largest request body in bytes
    under ``serve`` (0: no limit; a larger one gets 413), like the
    configuration's ``body_limit``, whose default it shares (1 MiB).
    """

    def __init__(
        self, threads: int = 4, queue: int = 1024, body_limit: int = DEFAULT_BODY_LIMIT
    ) -> None:
        if threads < 0 or queue < 0 or body_limit < 0:
            raise ValueError("threads, queue and body_limit cannot be negative")
        self.threads = threads
        self.queue = queue
        self.body_limit = body_limit
        self.routes = RouteTree[Route]()
        self.fallback_route: Route | None = None
        self.setup_hooks: list[Callable[[tuple[str, int], tuple[str, int]], Any]] = []
        self.pre_routing_hooks: list[Callable[[Request], Any]] = []
        self.teardown_hooks: list[Callable[[tuple[str, int], str | None], Any]] = []
        self.config_path: Path | None = None
        #: WebSocket endpoints (``websocket``); None until one is added, so
        #: that an App without any pays nothing per request.
        self.websocket_routes: RouteTree[WebSocketRoute] | None = None
        self.groups: dict[str, Group] = {}

    def route(
        self, method: str, pattern: str, *, inline: bool = False
    ) -> Callable[[Handler], Handler]:
        """Decorate ``fn(req, *params)`` as the handler of ``method`` on ``pattern``.

        ``method`` may be ``"*"`` (any). Raises ``ValueError`` for an invalid
        or duplicate pattern.
        """

        def decorate(fn: Handler) -> Handler:
            self.routes.add(
                method.upper() if method != "*" else method, pattern, Route(fn, inline, pattern)
            )
            return fn

        return decorate

    def websocket(
        self, pattern: str, *, subprotocols: Iterable[str] = (), threaded: bool = False
    ) -> Callable[[Any], Any]:
        """Decorate a WebSocket endpoint on ``pattern`` (RFC 6455; see
        ``localhost.app.websocket``).

        Event style (default): a class; one instance per connection gets
        ``on_connect(ws, *params)``, ``on_message(ws, message)``,
        ``on_writable(ws)``, ``on_close(ws, code, reason)`` on the loop.
        ``threaded=True``: a function ``fn(ws, *params)`` run in a pool thread
        for the socket's life (blocking ``for message in ws`` and ``send``).
        ``subprotocols``: those spoken, in preference order, negotiated with
        the client's ``Sec-WebSocket-Protocol``. A plain request to the
        pattern gets 426. Raises ``ValueError`` for a bad pattern or target.
        """

        def decorate(target: Any) -> Any:
            check_target(target, threaded)
            if self.websocket_routes is None:
                self.websocket_routes = RouteTree[WebSocketRoute]()
            route = WebSocketRoute(target, tuple(subprotocols), threaded, pattern)
            self.websocket_routes.add("GET", pattern, route)
            return target

        return decorate

    def group(self, name: str) -> Group:
        """The worker's group of sockets called ``name`` (made on first use)."""
        found = self.groups.get(name)
        if found is None:
            found = self.groups[name] = Group(name)
        return found

    def fallback(self, fn: Handler | None = None, *, inline: bool = False) -> Any:
        """Decorate ``fn(req)`` as the answer when no route matches (else 404)."""

        def decorate(handler: Handler) -> Handler:
            self.fallback_route = Route(handler, inline, "")
            return handler

        return decorate(fn) if fn is not None else decorate

    def connection_setup_hook(
        self, fn: Callable[[tuple[str, int], tuple[str, int]], Any]
    ) -> Callable[..., Any]:
        """``fn(peer, local) -> Action`` after each accept (``Action.DROP`` closes it)."""
        self.setup_hooks.append(fn)
        return fn

    def pre_routing_hook(self, fn: Callable[[Request], Any]) -> Callable[..., Any]:
        """``fn(req) -> None | Response | Action.DROP`` before routing each request."""
        self.pre_routing_hooks.append(fn)
        return fn

    def connection_teardown_hook(
        self, fn: Callable[[tuple[str, int], str | None], Any]
    ) -> Callable[..., Any]:
        """``fn(peer, reason)`` once per connection as it ends (``reason`` None: clean)."""
        self.teardown_hooks.append(fn)
        return fn

    @classmethod
    def from_config(cls, path: str | os.PathLike[str], threads: int = 4, queue: int = 1024) -> App:
        """An App served with the configuration file ``path`` (relative to the
        current directory): the file's locations answer as written, and the
        App answers what none of them matches. It is mounted on ``/`` in every
        HTTP server block without a ``location /`` of its own (it replaces
        the implicit one that a block's ``root`` gives), with that block's
        ``body_limit``, ``error_page`` and ``access_log``. The file is read
        at ``serve``, which prints its ``ConfigError`` and returns 1."""
        app = cls(threads, queue)
        app.config_path = Path(path).absolute()
        return app

    def mounted(self, location: Location) -> MountedApp:
        """The App as served on ``location``: routes match the path below the
        location's path (``location /api``, ``^~ /api``, ``= /api``), as WSGI's
        SCRIPT_NAME; below a regex location (``~``, ``~*``) they match the
        whole path, since a pattern is no prefix of it."""
        path_like = location.modifier in ("", "^~", "=") and location.prefix.startswith("/")
        prefix = location.prefix if path_like and location.prefix != "/" else ""
        return MountedApp(self, prefix)

    def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 8080,
        workers: int | None = None,
        log_level: str | None = None,
        access_log: bool = True,
    ) -> int:
        """Serve the App with localhost's loop, workers, signals and logs until stopped.

        ``workers`` processes (default 1, or the configuration's
        ``worker_processes`` with ``from_config``); ``log_level`` of the
        error log on standard error (default ``info``, or the configuration's
        ``error_log`` level); ``access_log``: one line per request on
        standard output. With ``from_config`` the configuration's addresses
        and logs are used and ``host``, ``port`` and ``access_log`` ignored.
        Returns the exit status: 0 after a normal stop (SIGTERM, SIGINT,
        SIGQUIT), 1 when an address cannot be bound or the configuration is
        invalid.
        """
        from localhost.app.mount import serve

        return serve(self, host, port, workers, log_level, access_log)


class MountedApp:
    """An App on one location: the prefix routes are matched below."""

    __slots__ = ("app", "prefix")

    def __init__(self, app: App, prefix: str) -> None:
        self.app = app
        self.prefix = prefix
