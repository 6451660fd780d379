"""The App API's route tree: (method, decoded path) -> target, sans-IO.

```python
tree: RouteTree[Handler] = RouteTree()
tree.add("GET", "/user/:id", show_user)     # :name  one segment, captured
tree.add("GET", "/api/v1/*", api)           # *      one segment, captured
tree.add("GET", "/static/**", files)        # **     the rest (zero or more segments)
tree.match("GET", "/user/42")               # RouteMatch(show_user, ("42",))
tree.match("DELETE", "/user/42")            # NotAllowed(allow=frozenset({"GET", "HEAD"}))
tree.match("GET", "/nothing")               # None
```

Theory. Patterns are compiled at ``add`` into a tree with one node per
segment position. A node has a dict of literal children and at most one
``:param``, one ``*`` and one ``**`` child; the names of ``:param`` segments
do not shape the tree, so ``/u/:a`` and ``/u/:b`` are the same node. A node
that ends a pattern holds the targets by method.

``match`` splits the path on ``/`` (the leading ``/`` is not a segment, so
``/`` is one empty segment and ``/a/`` is ``a`` then an empty segment) and
walks the tree depth first, trying at each segment the literal child, then
``:param``, then ``*``, then ``**``; the first node that both ends the path
and holds a target for the method wins. Because every child but ``**``
consumes exactly one segment, each node sits at one fixed segment index and
is visited at most once per lookup: a miss costs at most the size of the
tree, never an exponential search, and the recursion is no deeper than the
longest pattern whatever the path's length. A path made only of literals is
first looked up whole in a dict, which is the answer whenever its node has
the method (the depth-first walk would reach that node first anyway).

Each end node knows at build time at which segment indices its captures sit,
so a lookup keeps no capture state while it searches: the params tuple is
built once, from the split path, when a match is found. No regex runs per
request.
"""

from __future__ import annotations

import enum
import string
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import Generic, NamedTuple, TypeVar, cast

T = TypeVar("T")

#: ``tchar`` of RFC 9110 §5.6.2; a method is a token (RFC 9110 §9.1).
_TCHAR = frozenset("!#$%&'*+-.^_`|~" + string.digits + string.ascii_letters)

#: The method that stands for any method in ``RouteTree.add``.
ANY_METHOD = "*"

_Capture = Callable[[list[str]], tuple[str, ...]]


class RouteMatch(NamedTuple, Generic[T]):
    """A found route: its ``target`` and the captured ``params``.

    ``params`` holds one string per ``:name``, ``*`` and ``**`` segment of
    the pattern, in the order they appear in it. They are the segments of
    the decoded path as given to ``RouteTree.match`` (no further decoding);
    a ``**`` capture is the remaining segments joined with ``/``, ``""``
    when there are none. A named tuple: ``target, params = found`` works,
    and ``isinstance`` tells it from ``NotAllowed`` (and narrows for mypy).
    """

    target: T
    params: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NotAllowed:
    """The path is routed, but not for the request's method (a 405).

    ``allow`` is the set of methods with a route matching the path, with
    ``HEAD`` wherever ``GET`` is: the value of the ``Allow`` field
    (RFC 9110 §10.2.1, §15.5.6). It is never empty.
    """

    allow: frozenset[str]


class _Endpoint(Generic[T]):
    """A target registered under one method at one node."""

    __slots__ = ("target", "pattern", "found")

    def __init__(self, target: T, pattern: str) -> None:
        self.target = target
        self.pattern = pattern
        #: The match of a pattern without captures (immutable: shared by its requests).
        self.found = RouteMatch(target, ())


def _no_params(segments: list[str]) -> tuple[str, ...]:
    return ()


def _capturer(singles: tuple[int, ...], rest_at: int) -> _Capture:
    """Build the function that takes a node's params out of the split path.

    ``singles`` are the segment indices of ``:name`` and ``*`` captures,
    ``rest_at`` the index where ``**`` starts, or -1. Built once per node, so
    that a match allocates the params tuple and the ``**`` join only.
    """
    if rest_at < 0:
        if not singles:
            return _no_params
        if len(singles) == 1:
            (only,) = singles
            return lambda segments: (segments[only],)
        many = itemgetter(*singles)
        return lambda segments: cast(tuple[str, ...], many(segments))
    if not singles:
        return lambda segments: ("/".join(segments[rest_at:]),)
    if len(singles) == 1:
        (only,) = singles
        return lambda segments: (segments[only], "/".join(segments[rest_at:]))
    many = itemgetter(*singles)
    return lambda segments: (
        *cast(tuple[str, ...], many(segments)),
        "/".join(segments[rest_at:]),
    )


class _Node(Generic[T]):
    """One segment position of the tree."""

    __slots__ = ("literals", "param", "star", "rest", "routes", "handlers", "capture")

    def __init__(self, singles: tuple[int, ...], rest_at: int = -1) -> None:
        self.literals: dict[str, _Node[T]] = {}
        self.param: _Node[T] | None = None
        self.star: _Node[T] | None = None
        self.rest: _Node[T] | None = None
        # routes: as registered; handlers: the same plus HEAD answered by GET.
        self.routes: dict[str, _Endpoint[T]] = {}
        self.handlers: dict[str, _Endpoint[T]] = {}
        self.capture = _capturer(singles, rest_at)


def _find(node: _Node[T], segments: list[str], index: int, method: str) -> RouteMatch[T] | None:
    """Depth-first search below ``node`` for the first complete match."""
    if index == len(segments):
        handlers = node.handlers
        endpoint = handlers.get(method) or handlers.get(ANY_METHOD)
        if endpoint is not None:
            return RouteMatch(endpoint.target, node.capture(segments))
    else:
        segment = segments[index]
        child = node.literals.get(segment)
        if child is not None:
            found = _find(child, segments, index + 1, method)
            if found is not None:
                return found
        # :name and * never capture an empty segment (a trailing slash).
        if segment:
            if node.param is not None:
                found = _find(node.param, segments, index + 1, method)
                if found is not None:
                    return found
            if node.star is not None:
                found = _find(node.star, segments, index + 1, method)
                if found is not None:
                    return found
    rest = node.rest
    if rest is not None:
        handlers = rest.handlers
        endpoint = handlers.get(method) or handlers.get(ANY_METHOD)
        if endpoint is not None:
            return RouteMatch(endpoint.target, rest.capture(segments))
    return None


def _collect(node: _Node[T], segments: list[str], index: int, allow: set[str]) -> None:
    """Add to ``allow`` the methods of every node below ``node`` that matches."""
    if index == len(segments):
        allow.update(node.handlers)
    else:
        segment = segments[index]
        child = node.literals.get(segment)
        if child is not None:
            _collect(child, segments, index + 1, allow)
        if segment:
            if node.param is not None:
                _collect(node.param, segments, index + 1, allow)
            if node.star is not None:
                _collect(node.star, segments, index + 1, allow)
    if node.rest is not None:
        allow.update(node.rest.handlers)


class _Wild(enum.Enum):
    """A pattern segment that is not a literal."""

    PARAM = ":name"
    STAR = "*"
    REST = "**"


def _parse(pattern: str) -> list[str | _Wild]:
    """Check ``pattern`` and return its segments: literals and ``_Wild``.

    The names of ``:name`` segments only serve the checks. Raises
    ``ValueError`` as described in ``RouteTree.add``.
    """
    if not pattern.startswith("/"):
        raise ValueError(f"route pattern {pattern!r} must start with '/'")
    parts: list[str | _Wild] = []
    segments = pattern[1:].split("/")
    last = len(segments) - 1
    names: set[str] = set()
    for position, part in enumerate(segments):
        if part == "**":
            if position != last:
                raise ValueError(f"route pattern {pattern!r}: '**' must be the last segment")
            parts.append(_Wild.REST)
        elif part == "*":
            parts.append(_Wild.STAR)
        elif part.startswith(":"):
            name = part[1:]
            if not name:
                raise ValueError(f"route pattern {pattern!r}: ':' without a param name")
            if not name.isidentifier():
                raise ValueError(
                    f"route pattern {pattern!r}: param name {name!r} is not an identifier"
                )
            if name in names:
                raise ValueError(f"route pattern {pattern!r}: param name {name!r} is repeated")
            names.add(name)
            parts.append(_Wild.PARAM)
        elif "*" in part:
            raise ValueError(
                f"route pattern {pattern!r}: '*' and '**' must be a whole segment, not {part!r}"
            )
        elif not part and position != last:
            raise ValueError(f"route pattern {pattern!r} has an empty segment ('//')")
        else:
            parts.append(part)
    return parts


class RouteTree(Generic[T]):
    """Routes from (method, pattern) to targets of type ``T``.

    A pattern is ``/`` followed by segments separated by ``/``:

    - ``name`` (a literal, not starting with ``:``) matches that exact segment;
    - ``:name`` matches one non-empty segment and captures it (``name`` is a
      Python identifier, unique within the pattern, and documents the
      param; captures are positional);
    - ``*`` matches one non-empty segment and captures it;
    - ``**``, only as the last segment, matches zero or more segments and
      captures them joined with ``/`` (``/static/**`` matches ``/static``,
      ``/static/`` and ``/static/a/b``, capturing ``""``, ``""`` and ``a/b``).

    A trailing slash is a final empty segment: ``/a/`` does not match the
    path ``/a``, nor ``/a`` the path ``/a/``; ``/`` matches only ``/``.

    At each segment a literal beats ``:name``, which beats ``*``, which beats
    ``**``, with backtracking: given ``/a/b/d`` and ``/a/:x/c``, the path
    ``/a/b/c`` matches the second. The method takes part in the match: the
    first route in that order whose path matches and which has the method
    wins, so with ``GET /a/b`` and ``POST /a/:x``, ``POST /a/b`` matches
    ``/a/:x``.

    On one node, a route for the exact method comes first; then, for
    ``HEAD``, the ``GET`` route (when the node has no ``HEAD`` route); then
    the route for ``ANY_METHOD`` (``"*"``).
    """

    __slots__ = ("_root", "_static")

    def __init__(self) -> None:
        self._root: _Node[T] = _Node(())
        # Paths made of literals only -> their node, for a lookup without a split.
        self._static: dict[str, _Node[T]] = {}

    def add(self, method: str, pattern: str, target: T) -> None:
        """Route ``method`` requests whose path matches ``pattern`` to ``target``.

        ``method`` is a method token (RFC 9110 §9.1; case-sensitive, so
        ``"get"`` is not ``"GET"``) or ``"*"`` for any method.
        Raises ``ValueError`` when ``method`` is not a token; when
        ``pattern`` does not start with ``/``, has an empty segment before
        its last one (``//``), has ``**`` anywhere but last, has ``*`` inside
        a segment (``a*``, ``***``), has a ``:`` without a name, a name that
        is not an identifier or a name used twice; and when ``method`` is
        already routed for the same pattern (params at the same positions
        are the same pattern whatever their names: ``/u/:a`` and ``/u/:b``).
        """
        if not method or not _TCHAR.issuperset(method):
            raise ValueError(f"route method {method!r} is not an HTTP method token (RFC 9110)")
        parts = _parse(pattern)
        node = self._root
        singles: tuple[int, ...] = ()
        for position, part in enumerate(parts):
            if isinstance(part, str):
                child = node.literals.get(part)
                if child is None:
                    child = node.literals[part] = _Node(singles)
                node = child
            elif part is _Wild.PARAM:
                singles += (position,)
                if node.param is None:
                    node.param = _Node(singles)
                node = node.param
            elif part is _Wild.STAR:
                singles += (position,)
                if node.star is None:
                    node.star = _Node(singles)
                node = node.star
            else:
                if node.rest is None:
                    node.rest = _Node(singles, position)
                node = node.rest
        existing = node.routes.get(method)
        if existing is not None:
            raise ValueError(
                f"route {method} {pattern} is already defined (as {method} {existing.pattern})"
            )
        node.routes[method] = _Endpoint(target, pattern)
        handlers = dict(node.routes)
        if "GET" in handlers and "HEAD" not in handlers:
            handlers["HEAD"] = handlers["GET"]
        node.handlers = handlers
        if not singles and _Wild.REST not in parts:
            self._static[pattern] = node

    def match(self, method: str, path: str) -> RouteMatch[T] | NotAllowed | None:
        """Find the route for a request.

        ``path`` is the request's path as the server hands it on: already
        percent-decoded and dot-normalised (``localhost.http.target.
        normalize_target``), without the query. Params are taken from it as
        they are, so they hold decoded text (``"Jürgen"``, ``"a b"``) and an
        encoded ``%2F`` has already become a segment separator.
        Returns a ``RouteMatch``; ``NotAllowed`` when routes match the path
        but none has the method (a 405 with ``Allow``); ``None`` when no
        route matches the path (a 404, or the caller's fallback), as for
        a path not starting with ``/`` (``*``).
        """
        node = self._static.get(path)
        if node is not None:
            handlers = node.handlers
            endpoint = handlers.get(method) or handlers.get(ANY_METHOD)
            if endpoint is not None:
                return endpoint.found
        if path[:1] != "/":
            return None
        segments = path[1:].split("/")
        found = _find(self._root, segments, 0, method)
        if found is not None:
            return found
        allow: set[str] = set()
        _collect(self._root, segments, 0, allow)
        return NotAllowed(frozenset(allow)) if allow else None
