"""add_header and expires (ngx_http_headers_module); default_type, types,
charset and charset_types (the Content-Type of static files).

add_header
----------
``add_header NAME VALUE [always]`` (top level, server, location) adds the
field ``NAME: VALUE`` to responses whose status is one of ``SAFE_STATUSES``
(200, 201, 204, 206, 301, 302, 303, 304, 307, 308), or to every response
with ``always``. VALUE may hold variables (``localhost.variables``), compiled
at load; a value that renders empty adds nothing (NGINX). A level with any
``add_header`` replaces the list it would inherit, as NGINX does: a location
with one ``add_header`` loses all of its server's. The fields follow the
response's own, in configuration order; a value rendered from a variable
loses any CR, LF or NUL (a decoded ``$uri`` may hold them). Differences from
NGINX: a field the response has already (``ETag``, ``Last-Modified``) is
added again rather than replaced, and ``Content-Length``,
``Transfer-Encoding`` and ``Connection`` are refused at load (the server
writes the message's framing).

expires
-------
``expires [modified] TIME``, ``expires @TIME``, ``expires epoch|max|off``
adds ``Expires`` (an HTTP-date, RFC 9110 §5.6.7; RFC 9111 §5.3) and
``Cache-Control`` (RFC 9111 §5.2.2) to responses with one of
``SAFE_STATUSES``, before the ``add_header`` fields, with NGINX's arithmetic
(``expires_fields``):

- ``TIME`` (NGINX's time syntax, ``parse_time``: ``30d``, ``1h30m``, ``1y``,
  ``-1``; units y=365d, M=30d, w, d, h, m, s): Expires is now + TIME and
  ``max-age=TIME``; a negative TIME gives ``no-cache``; ``0`` gives Expires
  now and ``max-age=0``.
- ``modified TIME``: Expires is the response's Last-Modified + TIME,
  max-age the seconds from now to then (``no-cache`` when that is past or
  TIME is negative); a response without Last-Modified counts from now.
- ``@TIME``: the next time of day TIME (local time, at most 24h): Expires
  then, max-age the seconds until then.
- ``epoch``: ``Thu, 01 Jan 1970 00:00:01 GMT`` and ``no-cache``; ``max``:
  ``Thu, 31 Dec 2037 23:55:55 GMT`` and ``max-age=315360000`` (ten years);
  ``off`` (the default) adds nothing and cancels an outer level's.

Times are seconds of the wall clock; the fields of ``TIME`` and ``@TIME``
are made once per second per location. A response that carries its own
``Expires`` or ``Cache-Control`` (a CGI script's, an application's) keeps
them and gets none from ``expires`` (NGINX replaces them). TIME is at most
2^31 - 1 seconds (68 years). A variable as the value (NGINX 1.7.9) is not
supported.

Both are one *header filter* per location (``Steps.header_filter``), built
at load: a location whose fields are all literal adds a pre-built list, one
with variables renders only those.

Content types
-------------
``default_type MIME`` (default ``application/octet-stream``), ``types { }``
blocks (read by the loader into ``options["types"]``; a block replaces the
built-in table, Python's ``mimetypes``, for its level and those inside, as
NGINX's replace its ``mime.types``), ``charset NAME|off`` and
``charset_types MIME...|*`` make one ``ContentTypes`` per location
(``localhost.handlers.static.content_types``), stored in
``options["default_type"]`` and read by the static handler for the files it
serves. Without ``charset``, localhost labels every ``text/*`` type and
JSON, JavaScript, XML, SVG and XHTML ``; charset=utf-8`` (NGINX's default is
``charset off``); ``charset NAME`` labels ``text/html`` and the types of
``charset_types`` (NGINX's list, plus ``text/javascript``) with NAME, and
``charset off`` labels nothing. No text is recoded (NGINX's
``source_charset`` is not supported).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import formatdate, mktime_tz, parsedate_tz
from typing import TYPE_CHECKING, Any, cast

from lark import Token

from localhost.config.loader import (
    LOCATION,
    MAIN,
    SERVER,
    Directive,
    Scope,
    Validator,
    inherit,
    quote,
)
from localhost.handlers.static import (
    CHARSET_TYPES,
    DEFAULT_TYPE,
    ContentTypes,
    content_types,
)
from localhost.modules.base import NO_STEPS, HeaderFilter, ModuleSpec, Steps
from localhost.variables import Template, VariableContext, VariableError, compile_template

if TYPE_CHECKING:
    from localhost.config.model import Location, ServerBlock
    from localhost.handlers.base import Exchange

#: The statuses ``add_header`` (without ``always``) and ``expires`` apply to (NGINX 1.22).
SAFE_STATUSES = frozenset({200, 201, 204, 206, 301, 302, 303, 304, 307, 308})
#: ``expires epoch``: NGINX's Expires value (one second after the epoch).
EPOCH_EXPIRES = "Thu, 01 Jan 1970 00:00:01 GMT"
#: ``expires max``: NGINX's Expires value and Cache-Control (ten years of 365 days).
MAX_EXPIRES = "Thu, 31 Dec 2037 23:55:55 GMT"
MAX_CACHE_CONTROL = "max-age=315360000"

# NGINX's time units in seconds, largest first: each may appear once, in
# this order (a year is 365 days, a month 30).
_TIME_UNITS: dict[str, tuple[int, int]] = {
    unit: (rank, scale)
    for rank, (unit, scale) in enumerate(
        (("y", 31_536_000), ("M", 2_592_000), ("w", 604_800), ("d", 86_400), ("h", 3600))
        + (("m", 60), ("s", 1))
    )
}
# An RFC 9110 token (§5.6.2): a field name, a charset, a media type's parts.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Fields the server writes itself: a second one would break the framing.
_FRAMING = frozenset({"content-length", "transfer-encoding", "connection"})
# CR, LF and NUL, removed from rendered values (a field cannot hold them).
_BREAKS = {ord("\r"): None, ord("\n"): None, 0: None}

Fields = tuple[tuple[str, str], ...]


# -- expires -------------------------------------------------------------------


def parse_time(text: str, most: int = 2**31 - 1) -> int | None:
    """Seconds of an NGINX time (``ngx_parse_time`` in seconds): numbers with
    units ``y`` (365 days), ``M`` (30 days), ``w``, ``d``, ``h``, ``m``, ``s``,
    each at most once and largest first, optionally separated by spaces; a
    last number without a unit is seconds (``1h30m``, ``1d 12h``, ``90``).

    Returns None for anything else (``ms``, fractions, a sign, an empty
    string) or a total above ``most`` (by default 2^31 - 1: 68 years, the
    largest max-age a 32-bit cache holds, RFC 9111 §1.2.2).
    """
    total = value = 0
    digits = valid = False
    rank = -1
    index, size = 0, len(text)
    while index < size:
        char = text[index]
        if "0" <= char <= "9":
            value = value * 10 + ord(char) - 48
            digits = valid = True
            index += 1
            continue
        if char == "m" and text[index + 1 : index + 2] == "s":
            return None  # milliseconds: not a number of seconds
        unit = _TIME_UNITS.get(char)
        if unit is None or not digits or unit[0] <= rank:
            return None
        rank = unit[0]
        total += value * unit[1]
        if total > most:
            return None
        value = 0
        digits = False
        index += 1
        while index < size and text[index] == " ":
            index += 1
    if not valid:
        return None
    total += value
    return total if total <= most else None


@dataclass(frozen=True, slots=True)
class Expires:
    """One ``expires`` setting.

    ``kind``: ``"access"`` (TIME after the response), ``"modified"`` (TIME
    after its Last-Modified), ``"daily"`` (``@TIME``: the next such time of
    day, local time), ``"epoch"``, ``"max"`` or ``"off"``. ``seconds``: the
    TIME, negative allowed for ``access`` and ``modified``; for ``daily`` the
    seconds after midnight (0 to 86400).
    """

    kind: str
    seconds: int = 0


def http_date(seconds: float) -> str:
    """An IMF-fixdate (RFC 9110 §5.6.7) for ``seconds`` since the epoch, e.g.
    ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    return formatdate(seconds, usegmt=True)


def next_time(of_day: int, now: int) -> int:
    """The next moment after ``now`` (seconds since the epoch) whose local
    time of day is ``of_day`` seconds after midnight (NGINX's ``ngx_next_time``;
    ``mktime`` takes care of month ends and daylight saving)."""
    tm = time.localtime(now)
    hour, rest = divmod(of_day, 3600)
    minute, second = divmod(rest, 60)
    day = (tm.tm_year, tm.tm_mon, tm.tm_mday)
    today = int(time.mktime((*day, hour, minute, second, 0, 0, -1)))
    if today > now:
        return today
    tomorrow = (tm.tm_year, tm.tm_mon, tm.tm_mday + 1)
    return int(time.mktime((*tomorrow, hour, minute, second, 0, 0, -1)))


def expires_fields(expires: Expires, now: float, last_modified: float | None = None) -> Fields:
    """The ``Expires`` and ``Cache-Control`` fields of ``expires`` for a response
    sent at ``now`` (seconds since the epoch) whose Last-Modified is
    ``last_modified`` (None: it has none), as NGINX's ``ngx_http_set_expires``
    computes them (see the module docstring). ``expires.kind`` must not be
    ``"off"``.
    """
    kind = expires.kind
    if kind == "epoch":
        return (("Expires", EPOCH_EXPIRES), ("Cache-Control", "no-cache"))
    if kind == "max":
        return (("Expires", MAX_EXPIRES), ("Cache-Control", MAX_CACHE_CONTROL))
    seconds = expires.seconds
    second = int(now)
    if seconds == 0 and kind != "daily":
        return (("Expires", http_date(second)), ("Cache-Control", "max-age=0"))
    if kind == "daily":
        at = next_time(seconds, second)
        max_age = at - second
    elif kind == "access" or last_modified is None:
        at = second + seconds
        max_age = seconds
    else:
        at = int(last_modified) + seconds
        max_age = at - second
    control = "no-cache" if seconds < 0 or max_age < 0 else f"max-age={max_age}"
    return (("Expires", http_date(at)), ("Cache-Control", control))


def _expires(v: Validator, args: list[Token]) -> Expires:
    """``expires [modified] TIME``, ``expires @TIME``, ``expires epoch|max|off``."""
    kind = "access"
    token = args[0]
    if len(args) == 2:
        if token != "modified":
            v.fail(token, f'invalid value {quote(token)} (expected "modified" before the TIME)')
        kind = "modified"
        token = args[1]
    text = str(token)
    if text in ("epoch", "max", "off"):
        return Expires(text)  # NGINX lets these stand after "modified" too
    if text.startswith("$"):
        v.fail(token, "expires takes no variables (a TIME, @TIME, epoch, max or off)")
    sign = 1
    if text.startswith("@"):
        if kind == "modified":
            v.fail(token, 'a time of day (@TIME) cannot be used with "modified"')
        kind = "daily"
        text = text[1:]
    elif text[:1] in ("+", "-"):
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    seconds = parse_time(text)
    if seconds is None:
        v.fail(
            token,
            f"invalid time {quote(token)} in expires (expected e.g. 30d, 1h30m, -1, @15h30m, "
            "epoch, max or off; units y M w d h m s; at most 68 years)",
        )
    if kind == "daily" and seconds > 86_400:
        v.fail(token, f"the time of day {quote(token)} is more than 24h")
    return Expires(kind, sign * seconds)


def _derive_expires(scopes: tuple[Scope, Scope, Scope]) -> Expires | None:
    found: Expires | None = inherit("expires", None, *scopes)
    return None if found is None or found.kind == "off" else found


# -- add_header -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AddHeader:
    """One ``add_header``: the field ``name`` as written, its ``value``
    (compiled), and ``always`` (any status, not only ``SAFE_STATUSES``)."""

    name: str
    value: Template
    always: bool = False


def _add_header(v: Validator, args: list[Token]) -> AddHeader:
    """``add_header NAME VALUE [always]``."""
    name, value = args[0], args[1]
    if not _TOKEN.fullmatch(name):
        v.fail(name, f"invalid field name {quote(name)} (expected a token, e.g. X-Frame-Options)")
    if name.lower() in _FRAMING:
        v.fail(name, f"add_header cannot set {name}: the server writes the message's framing")
    if len(args) == 3 and args[2] != "always":
        v.fail(args[2], f'invalid parameter {quote(args[2])} (expected "always")')
    text = str(value)
    if any(char < " " and char != "\t" or char == "\x7f" for char in text):
        v.fail(value, f"add_header {name}: the value holds a control character")
    try:
        template = compile_template(text, captures=True)
    except VariableError as exc:
        column = (value.column or 0) + exc.offset + (1 if value.type == "STRING" else 0)
        v.fail(None, f"add_header {name}: {exc.message}", value.line or 0, column)
    return AddHeader(str(name), template, len(args) == 3)


def _derive_add_header(scopes: tuple[Scope, Scope, Scope]) -> tuple[AddHeader, ...]:
    # The innermost level with any add_header gives the whole list (NGINX);
    # a nested location's scope already holds its parent's list unless it
    # has its own.
    for scope in scopes:
        entries = scope.lists.get("add_header")
        if entries:
            return tuple(value for value, _ in entries)
    return ()


# -- the filter ---------------------------------------------------------------------


def _own_caching(fields: Sequence[tuple[str, str]]) -> bool:
    for name, _ in fields:
        lower = name.lower()
        if lower == "expires" or lower == "cache-control":
            return True
    return False


def _last_modified(fields: Sequence[tuple[str, str]] | None) -> float | None:
    """The response's Last-Modified in seconds since the epoch, or None."""
    if fields is None:
        return None
    for name, value in fields:
        if name.lower() == "last-modified":
            parsed = parsedate_tz(value)
            return None if parsed is None else float(mktime_tz(parsed))
    return None


def _expires_source(expires: Expires) -> Callable[[Sequence[tuple[str, str]] | None], Fields]:
    """``fields(own) -> Expires and Cache-Control`` for a response whose own
    fields are ``own``; the clock-bound ones are made once per second."""
    if expires.kind in ("epoch", "max"):
        fixed = expires_fields(expires, 0.0)
        return lambda own: fixed
    if expires.kind == "modified":

        def modified(own: Sequence[tuple[str, str]] | None) -> Fields:
            return expires_fields(expires, time.time(), _last_modified(own))

        return modified
    made: list[Any] = [-1, ()]

    def per_second(own: Sequence[tuple[str, str]] | None) -> Fields:
        second = int(time.time())
        if made[0] != second:
            made[1] = expires_fields(expires, second)
            made[0] = second
        fields: Fields = made[1]
        return fields

    return per_second


def make_filter(headers: Sequence[AddHeader], expires: Expires | None) -> HeaderFilter | None:
    """The header filter of a location's ``add_header`` list and ``expires``
    (None when neither adds anything): ``filter(exchange, status, fields)``
    returns ``fields`` followed by the Expires and Cache-Control of
    ``expires`` and the ``add_header`` fields that apply to ``status``.

    ``exchange.response_headers``, when set, are the response's own fields:
    ``expires modified`` reads their Last-Modified, and a response with its
    own Expires or Cache-Control gets none from ``expires``.
    """
    if not headers and expires is None:
        return None
    always = tuple(entry for entry in headers if entry.always)
    if expires is None and all(entry.value.static is not None for entry in headers):
        # Literal values only: two pre-built lists, one per kind of status.
        safe_fields = tuple((e.name, e.value.static) for e in headers if e.value.static)
        always_fields = tuple((e.name, e.value.static) for e in always if e.value.static)

        def literal(exchange: Exchange, status: int, fields: list[tuple[str, str]]) -> list[Any]:
            added = safe_fields if status in SAFE_STATUSES else always_fields
            return [*fields, *added] if added else fields

        return literal

    entries = tuple(headers)
    source = _expires_source(expires) if expires is not None else None
    needs_status = any("status" in entry.value.names for entry in entries)

    def header_filter(
        exchange: Exchange, status: int, fields: list[tuple[str, str]]
    ) -> list[tuple[str, str]]:
        safe = status in SAFE_STATUSES
        out = list(fields)
        # The server's exchange is what variables read (handlers see less of it).
        context = cast(VariableContext, exchange)
        if needs_status:
            # $status is the response's from its head on (NGINX); the server
            # records it for the log once the head is written, after this.
            cast(Any, exchange).log_status = status
        if source is not None and safe:
            own = context.response_headers
            if own is None or not _own_caching(own):
                out.extend(source(own))
        for entry in entries if safe else always:
            template = entry.value
            value = template.static
            if value is None:
                value = template.render(context)
                if "\r" in value or "\n" in value or "\0" in value:
                    value = value.translate(_BREAKS)
            if value:
                out.append((entry.name, value))
        return out

    return header_filter


# -- content types ------------------------------------------------------------------


def _media_type(v: Validator, token: Token, what: str, params: bool = False) -> str:
    text = str(token)
    media, _, rest = text.partition(";") if params else (text, "", "")
    main_type, slash, sub_type = media.strip().partition("/")
    if (
        not slash
        or not _TOKEN.fullmatch(main_type)
        or not _TOKEN.fullmatch(sub_type)
        or not rest.isprintable()
    ):
        v.fail(token, f"invalid media type {quote(token)} in {what} (expected TYPE/SUBTYPE)")
    return text


def _default_type(v: Validator, args: list[Token]) -> str:
    """``default_type TYPE/SUBTYPE[; PARAMETERS]``."""
    return _media_type(v, args[0], "default_type", params=True)


def _charset(v: Validator, args: list[Token]) -> str:
    """``charset NAME|off``: the name as written, ``""`` for off."""
    text = str(args[0])
    if text == "off":
        return ""
    if not _TOKEN.fullmatch(text):
        v.fail(args[0], f"invalid charset {quote(text)} (expected a name such as utf-8, or off)")
    return text


def _charset_types(v: Validator, args: list[Token]) -> frozenset[str]:
    """``charset_types TYPE/SUBTYPE...|*``: lower-case media types."""
    found = set()
    for token in args:
        if token == "*":
            found.add("*")
            continue
        found.add(_media_type(v, token, "charset_types").lower())
    return frozenset(found)


def _derive_types(scopes: tuple[Scope, Scope, Scope]) -> ContentTypes:
    """The location's ``ContentTypes`` (shared by locations with the same settings)."""
    return content_types(
        inherit("types", None, *scopes),
        inherit("default_type", DEFAULT_TYPE, *scopes),
        inherit("charset", None, *scopes),
        inherit("charset_types", CHARSET_TYPES, *scopes),
    )


# -- the module ---------------------------------------------------------------------

DIRECTIVES: dict[str, Any] = {
    "add_header": Directive(
        (MAIN, SERVER, LOCATION),
        2,
        3,
        _add_header,
        repeatable=True,
        syntax="add_header NAME VALUE [always]",
        derive=_derive_add_header,
    ),
    "expires": Directive(
        (MAIN, SERVER, LOCATION),
        1,
        2,
        _expires,
        syntax="expires [modified] TIME | @TIME | epoch | max | off",
        derive=_derive_expires,
    ),
    # Its derived value is the location's whole ContentTypes (with types,
    # charset and charset_types), read by the static handler.
    "default_type": Directive(
        (MAIN, SERVER, LOCATION),
        1,
        1,
        _default_type,
        syntax="default_type TYPE/SUBTYPE",
        derive=_derive_types,
    ),
    "charset": Directive((MAIN, SERVER, LOCATION), 1, 1, _charset, syntax="charset NAME|off"),
    "charset_types": Directive(
        (MAIN, SERVER, LOCATION), 1, None, _charset_types, syntax="charset_types TYPE/SUBTYPE...|*"
    ),
}


def build(server: ServerBlock, location: Location | None) -> Steps:
    """The header filter of ``location`` (add_header and expires), or no steps
    (None: the server block's, which has none)."""
    if location is None:
        return NO_STEPS
    header_filter = make_filter(
        location.options.get("add_header") or (), location.options.get("expires")
    )
    return NO_STEPS if header_filter is None else Steps(header_filter=header_filter)


SPEC = ModuleSpec("headers", DIRECTIVES, build, order=50)
