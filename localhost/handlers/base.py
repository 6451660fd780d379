"""The handler interface and the registry of handlers.

A *handler* produces the answer to one request. The pipeline
(``localhost.server.pipeline``) finds the request's location, runs the checks
every request gets (413, 404, 405, sessions), then asks the registry which
handler answers, and the protocol drives that handler object:

1. ``on_head() -> BodyPolicy``: the head is known; say what to do with the
   body (and, for an answer that does not depend on it, answer at once);
2. ``on_body(data) -> bool`` for each piece of a ``STREAM``ed body (False
   pauses the client until ``exchange.resume_body()``);
3. ``on_body_end()``: the body is complete (or ignored): answer through the
   exchange (``send``, or ``start`` + ``write`` + ``finish``);
4. ``on_writable()``: a producer paused by ``exchange.write() -> False`` may go on;
5. ``on_abort(reason)``: the client went away, a timeout, the worker stops:
   release everything (idempotent; may come after the answer too).

``HTTPError`` raised from any callback becomes the error page
(``Pipeline.error_response``); any other exception a 500.

The registry
------------
Each handler registers one ``HandlerSpec``: its ``name``, the ``methods`` it
answers in a location, an optional per-request ``select``, its ``factory``
(usually the handler class) and a ``priority`` (lower is asked first). From
the registry come the methods a location can answer (405 and ``Allow``,
RFC 9110 §10.2.1) and the dispatch table the pipeline uses: for every
location and method, the specs to ask in order. Adding a handler touches its
own module (the class and its ``SPEC``) and one ``register`` line in
``localhost/handlers/__init__.py``.

A whole-response handler is a function ``fn(exchange) -> Response``;
``function_handler(fn)`` makes the handler class for it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from localhost.config.model import Location
from localhost.http.methods import IMPLEMENTED_METHODS, SAFE_METHODS

if TYPE_CHECKING:
    from localhost.config.model import ServerBlock
    from localhost.http.message import Request, Response
    from localhost.io.loop import EventLoop
    from localhost.services import Services

#: Methods whose answer never depends on a body (RFC 9110 §9.2.1).
ALL_METHODS: frozenset[str] = IMPLEMENTED_METHODS


class BodyPolicy(enum.IntEnum):
    """What the protocol does with a request body, as ``on_head`` asks."""

    #: The answer does not depend on the body: ``on_body_end`` may come as soon
    #: as what has already arrived is consumed; if body bytes are still to come,
    #: the answer closes the connection (lingering). Body bytes are dropped.
    IGNORE = 0
    #: Read and drop the whole body, then ``on_body_end`` (DELETE acts only on a
    #: complete request).
    DISCARD = 1
    #: ``on_body(data)`` for each piece of the decoded body, then ``on_body_end``.
    STREAM = 2
    #: The protocol stores the body (memory, then a temporary file) and sets
    #: ``exchange.body`` (a binary file at position 0) before ``on_body_end``.
    SPOOL = 3


class Exchange(Protocol):
    """What a handler sees of its request: the request and the response API.

    ``localhost.server.exchange.Exchange`` implements it; handlers depend on
    this interface only (they never import from ``localhost.server``). After
    ``send``, ``finish`` or ``abort`` the exchange is inert (``done``): later
    calls are ignored, so a late call cannot touch the next request.
    """

    request: Request
    server: ServerBlock
    location: Location | None
    peer: tuple[str, int]
    local: tuple[str, int]
    scheme: str
    session: str | None
    extra_headers: list[tuple[str, str]]
    services: Services
    loop: EventLoop
    body: BinaryIO | None
    #: The match of the location's regex, when a regex location chose it.
    captures: re.Match[str] | None
    #: Internal redirects and rewrites so far (``internal`` locations need one).
    redirects: int
    #: A rewrite asked the pipeline to choose the location again.
    rewritten: bool
    #: The location's response header filter (``localhost.modules``), if any.
    header_filter: Any
    #: Callables run once when the exchange ends (None until a module adds one).
    cleanups: list[Any] | None
    done: bool
    #: A streamed response's head went out (``start``): the status is decided.
    started: bool

    def send(self, response: Response) -> None:
        """Send a whole response."""

    def start(self, response: Response, length: int | None) -> None:
        """Send the head; the body (``length`` bytes, or unknown: chunked or
        close-delimited) follows through ``write``."""

    def write(self, data: bytes) -> bool:
        """Queue body bytes; False: above the high watermark, wait for ``on_writable``."""

    def finish(self) -> None:
        """End a started response."""

    def abort(self, reason: str = "aborted") -> None:
        """Drop the connection mid-response (``reason``: for the teardown hooks)."""

    def internal_redirect(self, target: str) -> None:
        """Serve ``target`` as a GET in place of this request (too many in a row: 500)."""

    def resume_body(self) -> None:
        """Read the body again after ``on_body`` returned False."""

    def upgrade(self, response: Response, protocol: Callable[[], Any]) -> bool:
        """Answer 101 and hand the connection to ``protocol()`` (WebSocket);
        False when it is too late (RFC 9110 §7.8)."""
        return False


class Handler:
    """Base of every handler, with the default callbacks; one object per request."""

    __slots__ = ("exchange",)

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange

    def on_head(self) -> BodyPolicy:
        """The head is known; the body policy (may answer at once through the exchange)."""
        return BodyPolicy.IGNORE

    def on_body(self, data: bytes) -> bool:
        """A piece of a ``STREAM``ed body; False pauses the client until ``resume_body``."""
        return True

    def on_body_end(self) -> None:
        """The body is complete (or ignored): answer."""

    def on_writable(self) -> None:
        """What was written drained below the low watermark: a paused producer may go on."""

    def on_abort(self, reason: str) -> None:
        """The exchange ends without this handler's answer: release everything."""


Factory = Callable[[Exchange], Handler]
Select = Callable[["Request", Location], bool]
MethodsOf = Callable[[Location], frozenset[str]]


def _never(_location: Location) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class HandlerSpec:
    """How the pipeline finds and makes a handler.

    - ``methods(location)``: the methods this handler answers in ``location``
      (empty: it does not serve there). Called at load time, never per request.
    - ``select(request, location)``: when given, asked per request among the
      specs that answer its method, in ``priority`` order; the first that says
      yes answers (None: always yes). May raise ``HTTPError``.
    - ``exclusive(location)``: the handler answers every request of the
      location (``redirect``, the session handler): specs after it are not asked
      and add no methods.
    - ``directives``: configuration directives the handler owns, as
      ``localhost.config.loader.Directive`` rows (name → row), for the loader.
    - ``factory(exchange)``: the handler of one request. It may also answer
      the request itself, through the exchange (the App's inline routes):
      the protocols then leave the handler it returns aside.
    """

    name: str
    methods: MethodsOf
    factory: Factory
    priority: int = 100
    select: Select | None = None
    exclusive: Callable[[Location], bool] = _never
    directives: Mapping[str, Any] | None = None


_REGISTRY: list[HandlerSpec] = []


def register(spec: HandlerSpec) -> HandlerSpec:
    """Add ``spec`` (or replace the spec of the same name); returns it.

    Raises ``ValueError`` when a directive it owns is already owned by another.
    """
    owned = set(spec.directives or ())
    for other in _REGISTRY:
        both = owned & set(other.directives or ())
        if other.name != spec.name and both:
            raise ValueError(f"{spec.name}: directives {sorted(both)} belong to {other.name}")
    _REGISTRY[:] = [s for s in _REGISTRY if s.name != spec.name]
    _REGISTRY.append(spec)
    _REGISTRY.sort(key=lambda s: s.priority)
    return spec


def unregister(name: str) -> None:
    """Remove the spec called ``name`` (tests)."""
    _REGISTRY[:] = [s for s in _REGISTRY if s.name != name]


def specs() -> tuple[HandlerSpec, ...]:
    """Every registered spec, in the order they are asked."""
    return tuple(_REGISTRY)


def directives() -> dict[str, Any]:
    """Every directive owned by a handler: name → ``Directive`` row."""
    table: dict[str, Any] = {}
    for spec in _REGISTRY:
        table.update(spec.directives or {})
    return table


@dataclass(frozen=True, slots=True)
class Route:
    """A location's dispatch: method → specs to ask in order (only methods the
    location both allows and can answer), and its ``Allow`` value."""

    table: Mapping[str, tuple[HandlerSpec, ...]]
    allow: str


def route(location: Location) -> Route:
    """The dispatch table of ``location`` from the registry (computed, not cached)."""
    table: dict[str, list[HandlerSpec]] = {}
    for spec in _REGISTRY:
        for method in spec.methods(location):
            if location.allows(method):
                table.setdefault(method, []).append(spec)
        if spec.exclusive(location):
            break
    allow = ", ".join(sorted(table))
    return Route({m: tuple(s) for m, s in table.items()}, allow)


def methods(location: Location) -> frozenset[str]:
    """Methods some registered handler can answer in ``location`` (allowed or not)."""
    found: set[str] = set()
    for spec in _REGISTRY:
        found |= spec.methods(location)
        if spec.exclusive(location):
            break
    return frozenset(found)


def allow_header(location: Location) -> str:
    """The ``Allow`` value for ``location`` (RFC 9110 §10.2.1): allowed and answerable."""
    return route(location).allow


def function_handler(
    fn: Callable[[Exchange], Response], *, ignore_body: bool = False, name: str = ""
) -> type[Handler]:
    """The handler class for a whole-response function ``fn(exchange) -> Response``.

    The body is ignored for a safe method (or always, with ``ignore_body``:
    a redirect) and the answer goes out at once when the request has no body;
    otherwise the body is read and dropped first (DELETE acts on a complete
    request), and so it is for a request promised its body with
    ``Expect: 100-continue``. ``fn`` may raise ``HTTPError``.
    """

    class FunctionHandler(Handler):
        __slots__ = ()

        def on_head(self) -> BodyPolicy:
            exchange = self.exchange
            request = exchange.request
            if ignore_body or request.method in SAFE_METHODS:
                if not request.has_body:
                    exchange.send(fn(exchange))
                    return BodyPolicy.IGNORE
                if not request.expect_continue:
                    return BodyPolicy.IGNORE
            return BodyPolicy.DISCARD

        def on_body_end(self) -> None:
            exchange = self.exchange
            if not exchange.done:
                exchange.send(fn(exchange))

    FunctionHandler.__name__ = FunctionHandler.__qualname__ = (
        name or f"{getattr(fn, '__name__', 'function')}_handler"
    )
    return FunctionHandler


class Answer(Handler):
    """A handler that answers a response decided before it (an error of the pipeline).

    It ignores the body; a 413, or an answer to a request waiting for
    ``100 Continue``, goes out at once in ``on_head`` and closes the connection
    (the body is left unread).
    """

    __slots__ = ("response",)

    def __init__(self, exchange: Exchange, response: Response) -> None:
        self.exchange = exchange
        self.response = response

    def on_head(self) -> BodyPolicy:
        request = self.exchange.request
        response = self.response
        if response.status == 413 or (request.has_body and request.expect_continue):
            response.close = True
            self.exchange.send(response)
        return BodyPolicy.IGNORE

    def on_body_end(self) -> None:
        if not self.exchange.done:
            self.exchange.send(self.response)

    def on_abort(self, reason: str) -> None:
        self.response.release()
