"""The parsed configuration: frozen dataclasses with their defaults.

A ``Config`` holds ``ServerBlock``s; each holds ``Location``s. Inheritable
settings (``body_limit``, ``error_page``, ``methods``, ``root``, ...) are
already resolved here: a ``Location`` carries the effective value, whether it
was written in the location, its server block or the top level. The loader
(``loader.py``) is the only producer of these objects.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from localhost.config.diagnostics import ConfigWarning

if TYPE_CHECKING:
    from localhost.accesslog import AccessLogTarget


def server_name_regex(name: str) -> re.Pattern[str]:
    """The compiled pattern of a ``~regex`` server name (case-insensitive).

    Raises ``re.error`` for an invalid pattern.
    """
    return re.compile(name[1:], re.IGNORECASE)


# NGINX defaults: client_max_body_size 1m; client_header_timeout 60s;
# client_body_timeout 60s; keepalive_timeout 75s; send_timeout 60s.
DEFAULT_BODY_LIMIT = 1024 * 1024
DEFAULT_HEADER_TIMEOUT = 60.0
DEFAULT_BODY_TIMEOUT = 60.0
DEFAULT_KEEPALIVE_TIMEOUT = 75.0
DEFAULT_SEND_TIMEOUT = 60.0
DEFAULT_CGI_TIMEOUT = 30.0
DEFAULT_SESSION_TIMEOUT = 3600.0
DEFAULT_SESSION_STORE = "sessions.db"  # next to the configuration file
DEFAULT_WORKER_CONNECTIONS = 1024  # NGINX's default
DEFAULT_WORKER_SHUTDOWN_TIMEOUT = 10.0
DEFAULT_WORKER_TIMEOUT = 30.0  # seconds without a heartbeat before a worker is replaced
STDOUT = "-"  # access_log / error_log value meaning standard output / standard error
LOG_LEVELS = ("debug", "info", "notice", "warn", "error", "crit")
DEFAULT_WSGI_THREADS = 4  # an application's threads per worker (0: on the event loop)
DEFAULT_WSGI_QUEUE = 1024  # requests waiting for an application thread, then 503
MAX_WSGI_THREADS = 1024
DEFAULT_HOST = "0.0.0.0"
DEFAULT_FILE = "index.html"
DEFAULT_KEEPALIVE_REQUESTS = 1000  # NGINX's default (since 1.19.10)


def _empty() -> Mapping[Any, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ErrorTarget:
    """Where ``error_page`` sends an error when the target is not just a file.

    ``kind``: ``"uri"`` (an internal redirect to ``template``'s path and
    query; the method becomes GET, except HEAD), ``"named"`` (the named
    location ``text``, method kept), ``"url"`` (a redirect to ``template``:
    302, or ``status`` when given), or ``"file"`` (the file ``path`` served
    as the page, as without a target, but with ``status`` changed).
    ``status`` is NGINX's ``=NEW``: None keeps the original status, 0 (a
    bare ``=``) takes the status of the target's answer, else that status.
    ``text`` is the target as written; ``template`` its compiled form
    (``localhost.variables.Template``) for ``uri`` and ``url``.
    """

    kind: str
    text: str
    status: int | None = None
    template: Any = field(default=None, compare=False, repr=False)
    path: Path | None = None


class ErrorPages(Mapping[int, Path]):
    """A level's ``error_page`` settings.

    As a mapping: the page *file* of each status (what
    ``handlers.error_pages.error_response`` serves). ``targets`` holds, by
    status, the settings that do more than serve a file (a URI, a named
    location, a redirect, a status change: ``ErrorTarget``).
    """

    __slots__ = ("_files", "targets")

    def __init__(
        self,
        files: Mapping[int, Path] | None = None,
        targets: Mapping[int, ErrorTarget] | None = None,
    ) -> None:
        self._files: Mapping[int, Path] = MappingProxyType(dict(files or {}))
        self.targets: Mapping[int, ErrorTarget] = MappingProxyType(dict(targets or {}))

    def __getitem__(self, status: int) -> Path:
        return self._files[status]

    def __iter__(self) -> Iterator[int]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)

    def __bool__(self) -> bool:
        return bool(self._files) or bool(self.targets)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ErrorPages):
            return self._files == other._files and self.targets == other.targets
        if isinstance(other, Mapping):
            return dict(self._files) == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ErrorPages({dict(self._files)!r}, {dict(self.targets)!r})"


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per-connection deadlines, in seconds (NGINX directive names)."""

    client_header: float = DEFAULT_HEADER_TIMEOUT
    client_body: float = DEFAULT_BODY_TIMEOUT
    keepalive: float = DEFAULT_KEEPALIVE_TIMEOUT
    send: float = DEFAULT_SEND_TIMEOUT


#: ``ssl_protocols`` when none is given: what NGINX 1.23.4+ allows by default,
#: and all that localhost ever allows (older versions are a config error).
DEFAULT_TLS_PROTOCOLS: tuple[str, ...] = ("TLSv1.2", "TLSv1.3")


@dataclass(frozen=True, slots=True)
class TLSSettings:
    """A server block's TLS settings (``ssl_certificate``, ``ssl_certificate_key``,
    ``ssl_protocols``, ``ssl_ciphers``).

    ``certificate`` and ``key`` are absolute PEM paths (the certificate file
    may hold the chain after the leaf); ``protocols`` names the TLS versions
    allowed (``"TLSv1.2"``, ``"TLSv1.3"``); ``ciphers`` is an OpenSSL cipher
    string for TLS 1.2 (None: OpenSSL's default). Blocks with equal settings
    share one ``context`` (an ``ssl.SSLContext``, built when the
    configuration is loaded: ``localhost.io.tls.make_context``).
    """

    certificate: Path
    key: Path
    protocols: tuple[str, ...] = DEFAULT_TLS_PROTOCOLS
    ciphers: str | None = None
    context: Any = field(default=None, compare=False, repr=False)
    #: ``h2`` is in the context's ALPN list (``http2 on``, or an ``http2`` flag
    #: on one of the block's TLS addresses).
    http2: bool = False


@dataclass(frozen=True, slots=True)
class AppMount:
    """A Python application mounted on a location (``wsgi`` or ``app``).

    ``kind`` is ``"wsgi"`` (a PEP 3333 callable) or ``"app"`` (a
    ``localhost.App``); ``target`` is ``MODULE:ATTRIBUTE`` as written;
    ``paths`` are the absolute ``sys.path`` entries to import it with
    (``wsgi_path``, then the configuration's folder); ``threads`` is the
    size of the worker's thread pool for it (0: called on the event loop)
    and ``queue`` the most requests waiting for a thread (then 503).
    ``obj``, when set, is the application itself (an ``App.serve`` call
    that already holds it); otherwise each worker imports ``target``.
    """

    kind: str
    target: str
    paths: tuple[str, ...] = ()
    threads: int = DEFAULT_WSGI_THREADS
    queue: int = DEFAULT_WSGI_QUEUE
    obj: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Location:
    """One ``location PREFIX { }`` block with its effective settings.

    ``prefix`` has no trailing slash (except the root prefix ``/``). When
    ``alias`` is true, ``root`` replaces the prefix (``/files/a`` under
    ``root ./www/files`` is ``./www/files/a``); otherwise ``root`` is the
    server's and the whole request path is appended to it.

    ``cgi_roots`` lists, for a location that takes uploads, every CGI
    location's real root with its (lower-case) extensions, across all server
    blocks: an upload must never store a file that a CGI location would run.
    """

    prefix: str
    root: Path | None = None
    alias: bool = False
    methods: frozenset[str] | None = None
    default_file: str | None = DEFAULT_FILE
    #: ``index``/``default_file``: the names tried in order for a directory
    #: request, the first existing file wins (``default_file`` is the first).
    default_files: tuple[str, ...] = (DEFAULT_FILE,)
    directory_listing: bool = False
    cgi: Mapping[str, str] = field(default_factory=_empty)
    redirect: str | None = None
    body_limit: int = DEFAULT_BODY_LIMIT
    error_pages: Mapping[int, Path] = field(default_factory=_empty)
    cgi_timeout: float = DEFAULT_CGI_TIMEOUT
    #: None (off), a path or ``STDOUT`` (one log in the combined format), or
    #: the ``access_log`` lines that apply (``localhost.accesslog``).
    access_log: str | tuple[AccessLogTarget, ...] | None = STDOUT
    session: bool = False
    session_handler: bool = False
    cgi_roots: tuple[tuple[str, frozenset[str]], ...] = ()
    #: How ``prefix`` matches (NGINX's location modifiers): ``""`` a prefix on
    #: a segment boundary, ``"^~"`` a prefix that stops the regex search,
    #: ``"="`` the exact path, ``"~"``/``"~*"`` the regex ``pattern``
    #: (case-sensitive/insensitive; ``prefix`` is then its text), ``"@"`` a
    #: named location (``prefix`` is ``@name``), reached only internally.
    modifier: str = ""
    pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)
    #: Regex locations nested in this prefix location, in file order: asked
    #: before the server's own regex locations when this prefix matches.
    nested: tuple[Location, ...] = field(default=(), compare=False, repr=False)
    #: ``internal``: only internal redirects reach it (others get 404).
    internal: bool = False
    #: Values of the directives of request-processing modules
    #: (``localhost.modules``), by directive name, as their ``derive`` made them.
    options: Mapping[str, Any] = field(default_factory=_empty, compare=False)
    wsgi: AppMount | None = None
    app: AppMount | None = None
    line: int = 0

    def allows(self, method: str) -> bool:
        """Whether ``methods`` admits ``method``.

        HEAD goes wherever GET goes; OPTIONS, which only reveals ``Allow``, is
        always admitted.
        """
        if self.methods is None or method == "OPTIONS":
            return True
        return method in self.methods or (method == "HEAD" and "GET" in self.methods)


@dataclass(frozen=True, slots=True)
class ServerBlock:
    """One ``server { }`` block.

    ``addresses`` are the ``(host, port)`` pairs it listens on;
    ``server_names`` are lower-case, compared with the request's Host.
    ``locations`` are sorted longest prefix first, ready for matching.
    A block with a ``protocol`` other than HTTP has no locations and no
    server names: its connections go to ``protocol`` (see
    ``localhost.server.protocols``).
    """

    addresses: tuple[tuple[str, int], ...]
    server_names: tuple[str, ...] = ()
    locations: tuple[Location, ...] = ()
    timeouts: Timeouts = Timeouts()
    body_limit: int = DEFAULT_BODY_LIMIT
    error_pages: Mapping[int, Path] = field(default_factory=_empty)
    #: None (off), a path or ``STDOUT`` (one log in the combined format), or
    #: the ``access_log`` lines that apply (``localhost.accesslog``).
    access_log: str | tuple[AccessLogTarget, ...] | None = STDOUT
    line: int = 0
    # -- the protocol directive (None = HTTP/1.1) --
    #: ``"echo"`` (RFC 862) or ``"MODULE:CLASS"`` as written; None for HTTP.
    protocol: str | None = None
    #: For ``MODULE:CLASS``: the class (any zero-argument callable returning a
    #: protocol), imported when the configuration was loaded.
    protocol_class: Callable[[], Any] | None = field(default=None, compare=False, repr=False)
    #: Values of module directives at the server level (``Directive.derive_server``).
    options: Mapping[str, Any] = field(default_factory=_empty, compare=False)
    #: ``keepalive_requests``: responses on one connection, the last of them
    #: with ``Connection: close`` (0: every response closes).
    keepalive_requests: int = DEFAULT_KEEPALIVE_REQUESTS
    #: The addresses this block is the default of (``listen ... default_server``):
    #: it answers requests whose Host no block of the address names.
    default_server: frozenset[tuple[str, int]] = frozenset()
    #: ``ssl_certificate`` and the rest (None: none set here or at the top level).
    tls: TLSSettings | None = None
    #: The addresses this block lists with ``ssl`` (``port 8443 ssl``,
    #: ``listen 8443 ssl``). An address is TLS when any block lists it so;
    #: every block on it then needs ``tls`` (``Router.tls_addresses``).
    ssl_addresses: frozenset[tuple[str, int]] = frozenset()
    #: The addresses this block lists with ``http2`` (``port 8080 http2``,
    #: ``listen 8443 ssl http2``): HTTP/2 there only, as NGINX's listen flag.
    #: ``http2 on`` (``options["http2"]``) is HTTP/2 on all of them.
    http2_addresses: frozenset[tuple[str, int]] = frozenset()

    def speaks_http2(self, *addresses: tuple[str, int]) -> bool:
        """Whether a connection to any of ``addresses`` may speak HTTP/2
        (clear-text prior knowledge, or ``h2`` by ALPN over TLS)."""
        if self.options.get("http2"):
            return True
        return any(address in self.http2_addresses for address in addresses)


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration file: where it came from, its server blocks,
    the session store (a SQLite file) with its session lifetime in seconds,
    the most client connections one worker keeps open at once, the process
    model (worker count, seconds a stopping worker gets, pid file), the
    error log (a path or ``STDOUT`` for standard error, and its level), and
    the ``warnings`` found while loading (problems that do not stop the
    server, such as a missing ``error_page`` file), in file order."""

    path: Path
    servers: tuple[ServerBlock, ...]
    session_store: Path | str = Path(DEFAULT_SESSION_STORE)  # str: a Redis URL
    session_timeout: float = DEFAULT_SESSION_TIMEOUT
    worker_connections: int = DEFAULT_WORKER_CONNECTIONS
    worker_processes: int = 1
    worker_shutdown_timeout: float = DEFAULT_WORKER_SHUTDOWN_TIMEOUT
    worker_timeout: float = DEFAULT_WORKER_TIMEOUT
    pid: Path | None = None
    error_log: str = STDOUT
    error_log_level: str = "info"
    warnings: tuple[ConfigWarning, ...] = ()
    #: How a reload (SIGHUP) makes the new configuration when it is not just
    #: the file read again (``App.from_config``: the file plus the App).
    rebuild: Callable[[], Config] | None = field(default=None, compare=False, repr=False)
