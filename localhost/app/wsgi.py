"""WSGI applications (PEP 3333) mounted from the configuration.

```
location /app {
    wsgi myproject.wsgi:application   # MODULE:CALLABLE, imported by each worker after fork
    wsgi_path ./src ./vendor          # sys.path entries, relative to the configuration
    wsgi_threads 8                    # the worker's pool for it (default 4; 0 = on the loop)
    wsgi_queue 1024                   # requests waiting for a thread, then 503
}
```

The master checks at load that the application imports (in a forked child,
``localhost.app.loading``), so a bad name or an import error is a
configuration error at the directive's position, also with ``-t``. Each
worker imports it again after the fork (``Applications``), so nothing of
the application is shared between workers; a reload starts new workers,
which import it anew.

The environ (PEP 3333, RFC 3875 §4.1) has ``SCRIPT_NAME`` = the location's
prefix (empty for ``/``), ``PATH_INFO`` the rest of the decoded path as
Latin-1 characters of its bytes, and the request fields as ``HTTP_*``
(``localhost.handlers.environ``, shared with CGI; repeated fields joined
with ``,``). ``wsgi.input`` streams the body (``runner.BodyStream``) in a
thread, or is the spooled body on the loop; ``CONTENT_LENGTH`` is absent
for a chunked body read by a thread (``wsgi.input_terminated`` is true:
read to the end). Running, streaming and framing: ``localhost.app.runner``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from lark import Token

from localhost import SERVER_SOFTWARE
from localhost.app.loading import AppImportError, check_import, resolve, split_target
from localhost.app.runner import (
    AppError,
    AppHandler,
    app_head,
    file_body,
    head_fields,
    url_scheme,
)
from localhost.config.loader import (
    LOCATION,
    MAIN,
    SERVER,
    Directive,
    Scope,
    Validator,
    path_problem,
    quote,
)
from localhost.config.model import (
    DEFAULT_WSGI_QUEUE,
    DEFAULT_WSGI_THREADS,
    MAX_WSGI_THREADS,
    AppMount,
    Location,
)
from localhost.handlers.base import Exchange, HandlerSpec
from localhost.handlers.environ import add_http_variables, server_name
from localhost.http.message import Response as HTTPResponse
from localhost.http.methods import IMPLEMENTED_METHODS
from localhost.http.parser import MEMO_ENTRIES

if TYPE_CHECKING:
    from localhost.app.pool import ThreadPool
    from localhost.config.model import Config

log = logging.getLogger("localhost")


ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], None]]


class FileWrapper:
    """``wsgi.file_wrapper``: a file the server sends with ``os.sendfile``
    (PEP 3333 "Optional Platform-Specific File Handling").

    Iterating it reads ``block_size`` bytes at a time, for a server or a
    middleware that cannot use the descriptor; ``close`` closes the file.
    """

    __slots__ = ("filelike", "block_size")

    def __init__(self, filelike: IO[bytes], block_size: int = 8192) -> None:
        self.filelike = filelike
        self.block_size = block_size

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        while True:
            data = read(self.block_size)
            if not data:
                return
            yield data

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


class ErrorStream:
    """``wsgi.errors``: text written by the application goes to the error log,
    a record per line, under the application's name.

    One stream serves every request of the application (its threads too): a
    line is logged once complete, or at ``flush``.
    """

    __slots__ = ("name", "_partial", "_lock")

    def __init__(self, name: str) -> None:
        self.name = name
        self._partial = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        """Log each complete line of ``text``; keep the rest for the next write."""
        if type(text) is not str:
            raise TypeError(f"write() takes str, not {type(text).__name__}")
        with self._lock:
            lines = (self._partial + text).split("\n")
            self._partial = lines.pop()
        for line in lines:
            if line.strip():
                log.error("%s: %s", self.name, line)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        """``write`` each of ``lines``."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Log what is left of an unfinished line."""
        with self._lock:
            partial, self._partial = self._partial, ""
        if partial.strip():
            log.error("%s: %s", self.name, partial)


class Mounted:
    """An application ready to serve a location in this worker: the object,
    its thread pool (None: inline) and the environ keys every request shares."""

    __slots__ = ("mount", "obj", "pool", "base", "prefix", "error", "environs")

    def __init__(
        self, mount: AppMount, location: Location, obj: Any, pool: ThreadPool | None, workers: int
    ) -> None:
        self.mount = mount
        self.obj = obj
        self.pool = pool
        self.prefix = "" if location.prefix == "/" else location.prefix
        self.error = ""
        self.base: dict[str, Any] = {
            "SERVER_SOFTWARE": SERVER_SOFTWARE,
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SCRIPT_NAME": self.prefix,
            "wsgi.version": (1, 0),
            "wsgi.errors": ErrorStream(mount.target),
            "wsgi.multithread": pool is not None,
            "wsgi.multiprocess": workers > 1,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
            "wsgi.file_wrapper": FileWrapper,
        }
        #: id(request) → (request, local address, its variables): ``wsgi_environ``'s.
        self.environs: dict[int, tuple[Any, tuple[str, int], dict[str, Any]]] = {}


class Applications:
    """The applications of a configuration in one worker, by location.

    ``load`` imports them (after the fork); ``get(location)`` is one
    dictionary lookup per request. An application that fails to import here
    (it imported in the master's check) answers 500 with the reason logged.
    """

    __slots__ = ("_by_location", "_pools")

    def __init__(self) -> None:
        self._by_location: dict[int, Mounted] = {}
        self._pools: list[ThreadPool] = []

    def load(self, config: Config, workers: int, fresh: bool = False) -> None:
        """Import every application ``config`` mounts (``fresh``: re-execute
        modules this process imported before, for a reload in place)."""
        from localhost.app.pool import ThreadPool

        old_pools = self._pools
        self._by_location = {}
        self._pools = []
        objects: dict[tuple[str, tuple[str, ...]], Any] = {}
        folder = str(config.path.parent.resolve())
        for server in config.servers:
            for location in server.locations:
                mount = location.wsgi or location.app
                if mount is None:
                    continue
                paths = import_paths(mount, folder)
                key = (mount.target, paths)
                obj = mount.obj
                error = ""
                if obj is None:
                    obj = objects.get(key)
                if obj is None:
                    try:
                        obj = objects[key] = resolve(mount.target, paths, fresh)
                    except AppImportError as exc:
                        error = str(exc)
                        log.error("application %s: %s", mount.target, error)
                pool = None
                if mount.threads:
                    pool = ThreadPool(mount.threads, mount.queue, name=f"app{location.prefix}")
                    self._pools.append(pool)
                mounted = Mounted(mount, location, obj, pool, workers)
                mounted.error = error
                if mount.kind == "app" and obj is not None and not error:
                    mounted.obj = obj.mounted(location)
                self._by_location[id(location)] = mounted
        for pool in old_pools:
            pool.close()

    def get(self, location: Location) -> Mounted:
        """The application of ``location`` (which mounts one)."""
        return self._by_location[id(location)]

    def close(self, timeout: float = 0.0) -> None:
        """Stop the thread pools (waiting up to ``timeout`` seconds for running requests)."""
        for pool in self._pools:
            pool.close(timeout)
        self._pools = []


def wsgi_environ(
    exchange: Exchange, mounted: Mounted, body: Any, length: int | None, scheme: str = "http"
) -> dict[str, Any]:
    """The PEP 3333 environ of ``exchange``'s request for ``mounted``: a new dict.

    ``length`` is the body's length in bytes when known (CONTENT_LENGTH);
    ``scheme`` is ``wsgi.url_scheme`` (``url_scheme``). What depends on the
    request head alone is built once per parsed head (the parser hands the
    same ``Request`` back for a repeated head, and it never changes), so a
    request costs a dict copy and the connection's variables.
    """
    request = exchange.request
    local = exchange.local
    cache = mounted.environs
    entry = cache.get(id(request))
    if entry is None or entry[0] is not request or entry[1] != local:
        entry = (request, local, _request_environ(exchange, mounted))
        # As many as the parser remembers heads (about 1 KiB each); then cleared.
        if len(cache) >= MEMO_ENTRIES:
            cache.clear()
        # The entry holds the request: its id is not reused while it is here.
        cache[id(request)] = entry
    env = entry[2].copy()
    peer = exchange.peer
    env["REMOTE_ADDR"] = peer[0]
    env["REMOTE_PORT"] = str(peer[1])
    env["wsgi.input"] = body
    env["wsgi.url_scheme"] = scheme
    if length is not None:
        env["CONTENT_LENGTH"] = str(length)
    return env


def _request_environ(exchange: Exchange, mounted: Mounted) -> dict[str, Any]:
    """The variables of ``wsgi_environ`` that depend on the request head and
    the local address only."""
    request = exchange.request
    path = request.path
    prefix = mounted.prefix
    path_info = path[len(prefix) :] if prefix else path
    if not path_info.isascii():
        # PEP 3333: the bytes of the path, each as one Latin-1 character.
        path_info = path_info.encode("utf-8", "surrogateescape").decode("latin-1")
    local = exchange.local
    env = {
        **mounted.base,
        "REQUEST_METHOD": request.method,
        "PATH_INFO": path_info,
        "QUERY_STRING": request.query,
        "REQUEST_URI": request.target,
        "SERVER_NAME": server_name(request, local, exchange.server.server_names),
        "SERVER_PORT": str(local[1]),
        "SERVER_PROTOCOL": request.version,
    }
    headers = request.headers
    content_type = headers.get("content-type")
    if content_type is not None:
        env["CONTENT_TYPE"] = content_type
    add_http_variables(env, headers, ",")
    return env


_STATUS_CODES: dict[str, int] = {}


def status_code(status: Any) -> int:
    """The code of a WSGI status string (``"200 OK"``). Raises ``AppError``."""
    code = _STATUS_CODES.get(status)
    if code is not None:
        return code
    if (
        type(status) is not str
        or len(status) < 4
        or not status[:3].isdigit()
        or not status[:3].isascii()
        or status[3] != " "
        or not 100 <= int(status[:3]) <= 999
        or any(c in status for c in "\r\n\0")
    ):
        raise AppError(f"invalid status {status!r} (expected e.g. '200 OK')")
    code = int(status[:3])
    if len(_STATUS_CODES) < 1024:
        _STATUS_CODES[status] = code
    return code


class WSGIHandler(AppHandler):
    """One request to a WSGI application."""

    __slots__ = ("mounted", "status", "headers", "head", "writes")

    def __init__(self, exchange: Exchange) -> None:
        location = exchange.location
        assert location is not None
        # Applications.get without the call (one per request).
        mounted = exchange.services.applications._by_location[id(location)]
        super().__init__(exchange, mounted.pool)
        self.mounted = mounted
        self.status: Any = None
        self.headers: Any = None
        #: (code, fields, Content-Length) of the head ``write()`` sent.
        self.head: tuple[int, list[tuple[str, str]], int | None] | None = None
        self.writes = 0

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], None]:
        """PEP 3333 ``start_response``: record the head; returns ``write``."""
        if exc_info is not None:
            try:
                if self.started:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # no reference cycle through the frame
        elif self.status is not None:
            raise AppError("start_response called a second time without exc_info")
        self.status = status
        self.headers = headers
        return self.write

    def write(self, data: bytes) -> None:
        """PEP 3333 ``write()``: body bytes sent before the iterable's.

        Raises ``AppError`` before ``start_response`` or for data that is not
        bytes, ``ClientGone`` once the client has left.
        """
        if self.status is None:
            raise AppError("write() before start_response")
        if type(data) is not bytes:
            raise AppError(f"write() takes bytes, not {type(data).__name__}")
        self.writes += 1
        if not data:
            return
        head = self.head
        if head is None or not self.started:
            fields, length = head_fields(self.headers)
            head = self.head = (status_code(self.status), fields, length)
        self.write_now(head[0], head[1], head[2], data)

    def call(self, body: Any) -> None:
        mounted = self.mounted
        app = mounted.obj
        if app is None:
            raise AppError(f"the application {mounted.mount.target} is not loaded: {mounted.error}")
        exchange = self.exchange
        request = exchange.request
        length = request.content_length
        if body is not None and not self.threaded and request.chunked:
            spool = exchange.body
            if spool is not None:
                length = spool.seek(0, 2)
                spool.seek(0)
        environ = wsgi_environ(exchange, mounted, body, length, url_scheme(exchange))
        result = app(environ, self.start_response)
        try:
            if self.status is None:
                # start_response may come with the first item (PEP 3333).
                iterator = iter(result)
                first = b""
                for first in iterator:
                    if first or self.status is not None:
                        break
                if self.status is None:
                    raise AppError("the application did not call start_response")
                result = _Chained(first, iterator, result)
            status = self.status
            code = _STATUS_CODES.get(status) or status_code(status)
            fields, length, encoded = app_head(self.headers)
            kind = type(result)
            if not self.writes and (kind is list or kind is tuple):
                body_bytes = result[0] if len(result) == 1 else b"".join(result)
                if type(body_bytes) is not bytes:
                    raise AppError(f"the body must be bytes, not {type(body_bytes).__name__}")
                if (
                    not self.threaded
                    and (length is None or length == len(body_bytes))
                    and code >= 200
                    and code != 204
                    and code != 304
                    and request.method != "HEAD"
                ):
                    # The inline hot path: straight to the exchange.
                    self.started = True
                    raw = encoded + b"Content-Length: %d\r\n" % len(body_bytes)
                    exchange.send(HTTPResponse(code, fields, body_bytes, raw_fields=raw))
                    return
                self.answer_whole(code, fields, body_bytes, length, encoded)
                return
            if not self.writes and kind is FileWrapper:
                region = file_body(result.filelike, length)
                if region is not None:
                    if length is not None and region.count < length:
                        region.close()
                        raise AppError(
                            f"the file has {region.count} bytes, Content-Length says {length}"
                        )
                    self.answer_file(code, fields, region)
                    _close(result)  # the region has a descriptor of its own
                    return
        except BaseException:
            _close(result)
            raise
        # From here on the body's close() is the streamer's to call.
        self.answer_stream(code, fields, length, result)


def _close(result: Any) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        close()


class _Chained:
    """An iterable's first item put back in front of the rest, keeping its ``close``."""

    __slots__ = ("first", "rest", "original")

    def __init__(self, first: bytes, rest: Iterator[bytes], original: Any) -> None:
        self.first = first
        self.rest = rest
        self.original = original

    def __iter__(self) -> Iterator[bytes]:
        if self.first:
            yield self.first
        yield from self.rest

    def close(self) -> None:
        close = getattr(self.original, "close", None)
        if close is not None:
            close()


# -- configuration ------------------------------------------------------------


def _target(v: Validator, args: list[Token]) -> str:
    """``MODULE:CALLABLE`` checked for its form (the import is ``_check``'s)."""
    token = args[0]
    try:
        split_target(str(token))
    except AppImportError as exc:
        v.fail(token, f"{v.name}: {exc}")
    return str(token)


def _paths(v: Validator, args: list[Token]) -> list[str]:
    found = []
    for token in args:
        path = v.path_of(token)
        problem = path_problem(path, "directory")
        if problem:
            v.fail(token, f"wsgi_path {quote(token)} {problem}")
        found.append(str(path))
    return found


def _count(low: int, high: int) -> Callable[[Validator, list[Token]], int]:
    def convert(v: Validator, args: list[Token]) -> int:
        token = args[0]
        if not token.isdigit() or not low <= int(token) <= high:
            v.fail(token, f"{v.name}: expected a number from {low} to {high}, got {quote(token)}")
        return int(token)

    return convert


def mount_of(kind: str, scopes: tuple[Scope, Scope, Scope]) -> AppMount | None:
    """The ``AppMount`` of a location's ``wsgi`` or ``app`` (None without).

    Its ``paths`` are the ``wsgi_path`` entries of the location, then of its
    server, then of the top level; the configuration's folder comes after
    them when the application is imported.
    """
    target = scopes[0].get(kind)
    if target is None:
        return None
    paths: list[str] = []
    for scope in scopes:
        for entries, _ in scope.lists.get("wsgi_path", []):
            paths.extend(p for p in entries if p not in paths)
    threads = next(
        (s.get("wsgi_threads") for s in scopes if "wsgi_threads" in s.values), DEFAULT_WSGI_THREADS
    )
    queue = next(
        (s.get("wsgi_queue") for s in scopes if "wsgi_queue" in s.values), DEFAULT_WSGI_QUEUE
    )
    return AppMount(kind, target, tuple(paths), threads, queue)


def import_paths(mount: AppMount, folder: str) -> tuple[str, ...]:
    """Where ``mount`` is imported from: its ``paths``, then ``folder`` (the configuration's)."""
    return mount.paths if folder in mount.paths else (*mount.paths, folder)


def check_mount(
    kind: str, accept: Callable[[Any], str | None]
) -> Callable[[Validator, tuple[Scope, Scope, Scope]], None]:
    """The ``check`` of the ``wsgi``/``app`` directive: import it in a child."""

    def check(v: Validator, scopes: tuple[Scope, Scope, Scope]) -> None:
        location = scopes[0]
        entry = location.values.get(kind)
        if entry is None:
            return
        target, token = entry
        for other in ("wsgi", "app", "redirect", "cgi"):
            if other != kind and (other in location.values or other in location.lists):
                v.fail(token, f'"{kind}" and "{other}" cannot share a location: one answers it')
        mount = mount_of(kind, scopes)
        assert mount is not None
        problem = check_import(target, import_paths(mount, str(v.base.resolve())), accept)
        if problem:
            v.fail(token, f'{kind} "{target}": {problem}')

    return check


def _callable(obj: Any) -> str | None:
    return None if callable(obj) else f"{type(obj).__name__} object is not callable"


def _wsgi(scopes: tuple[Scope, Scope, Scope]) -> AppMount | None:
    return mount_of("wsgi", scopes)


DIRECTIVES = {
    "wsgi": Directive(
        (LOCATION,),
        1,
        1,
        _target,
        syntax="wsgi MODULE:CALLABLE",
        derive=_wsgi,
        check=check_mount("wsgi", _callable),
        rootless=True,
    ),
    "wsgi_path": Directive(
        (MAIN, SERVER, LOCATION), 1, None, _paths, repeatable=True, syntax="wsgi_path PATH..."
    ),
    "wsgi_threads": Directive(
        (MAIN, SERVER, LOCATION), 1, 1, _count(0, MAX_WSGI_THREADS), syntax="wsgi_threads NUMBER"
    ),
    "wsgi_queue": Directive(
        (MAIN, SERVER, LOCATION), 1, 1, _count(0, 1_000_000), syntax="wsgi_queue NUMBER"
    ),
}


def _methods(location: Location) -> frozenset[str]:
    return IMPLEMENTED_METHODS if location.wsgi is not None else frozenset()


def _exclusive(location: Location) -> bool:
    return location.wsgi is not None


#: A location with ``wsgi`` gives every request to its application.
SPEC = HandlerSpec(
    "wsgi", _methods, WSGIHandler, priority=150, exclusive=_exclusive, directives=DIRECTIVES
)

__all__ = ["SPEC", "Applications", "ErrorStream", "FileWrapper", "WSGIHandler"]
