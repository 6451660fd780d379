"""return, rewrite, try_files, internal (NGINX's ngx_http_rewrite_module and
the ``try_files`` and ``internal`` directives of ngx_http_core_module).

``return`` and ``rewrite`` run in the order they are written: those of a
server block in the SERVER_REWRITE phase (before a location is chosen),
those of a location in its REWRITE phase; ``try_files`` runs in PRECONTENT,
after access control. Everything is compiled at load (regexes, strings with
variables); a request pays for the regex searches and the strings it renders.

``return CODE [TEXT|URL]``, ``return URL``
    301, 302, 303, 307 and 308 take a URL, sent as ``Location``; a path is
    made absolute with the request's scheme, host and the port it came in on
    (NGINX's ``absolute_redirect on``, ``port_in_redirect on``). ``return
    URL`` (``http://``, ``https://`` or ``$scheme...``) is a 302. Another code
    with TEXT answers TEXT (``text/plain; charset=utf-8``); a 4xx or 5xx
    without TEXT is the error page of that code (``error_page`` applies);
    ``444`` closes the connection without an answer, as NGINX.

``rewrite REGEX REPLACEMENT [last|break|redirect|permanent]``
    REGEX is searched in the decoded path (``$uri``); on a match its
    captures (``$1``..``$9``, named groups) are what later strings see, and
    the path becomes REPLACEMENT. Flags as NGINX: none goes on with the next
    directive (the location is chosen again at the end), ``last`` stops and
    chooses the location again, ``break`` stops and stays, ``redirect`` (302)
    and ``permanent`` (301) answer with a redirect, as does a REPLACEMENT that
    starts with ``http://``, ``https://`` or ``$scheme`` (302 unless
    ``permanent``). Query string: REPLACEMENT's own ``?args`` replace it,
    followed by the request's (``&``) unless REPLACEMENT ends with ``?``,
    which drops them; without ``?`` the request's are kept (a redirect
    carries them). Past ``Limits.max_rewrites`` (10) rewrites and internal
    redirects the answer is 500 (NGINX).

``try_files FILE... URI|=CODE|@name``
    Each FILE (with variables, ``$uri`` mostly) is looked for under the
    location's root with the static handler's mapping and root check; a
    FILE written with a trailing ``/`` must be a directory, any other must
    not. The first found becomes the URI served by this location (its query
    kept); else the last value decides: a URI is an internal redirect (with
    its own query, none without ``?``), ``=CODE`` answers CODE (with the
    error page), ``@name`` goes to that named location. In a server block,
    it applies to the block's implicit ``location /`` (a block with ``root``
    and no ``location /``), as NGINX applies it where no location matches.

``internal``
    The location answers internal redirects only (``error_page``,
    ``try_files``, ``rewrite``, a CGI local redirect); a request for it
    from a client gets 404.

None of these is inherited: a nested location has only its own (as NGINX).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from lark import Token

from localhost.config.loader import (
    LOCATION,
    SERVER,
    Directive,
    Scope,
    Validator,
    quote,
)
from localhost.config.model import Location, ServerBlock
from localhost.handlers import session as sessions
from localhost.handlers.base import Answer, Exchange, Handler
from localhost.handlers.error_pages import clean_path, error_response
from localhost.handlers.redirect import (
    absolute_url,
    compile_value,
    location_value,
    redirect,
    render,
)
from localhost.handlers.static import inside
from localhost.http.errors import HTTPError
from localhost.http.message import Response
from localhost.modules.base import NO_STEPS, ModuleSpec, Phase, Rewrite, Step, Steps
from localhost.variables import Template, VariableError, compile_template, named_captures

if TYPE_CHECKING:
    from localhost.server.pipeline import Pipeline

log = logging.getLogger("localhost")

#: Statuses whose second value is a URL (``Location``).
REDIRECTS = frozenset({301, 302, 303, 307, 308})
TEXT = "text/plain; charset=utf-8"
_SCHEMES = "http://", "https://", "$scheme"
_FLAGS = frozenset({"last", "break", "redirect", "permanent"})

# The order directives were read in (load time): return and rewrite are two
# directives in one sequence, and token positions would not do (an included
# file has positions of its own).
_SERIAL = itertools.count()


@dataclass(frozen=True, slots=True)
class _Seen:
    """Which location derivations saw a value (load time only): a nested
    location's scope also holds its parent's values, which it must not
    take (NGINX does not inherit these directives)."""

    by: list[bool] = field(default_factory=list, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ReturnRule:
    """``return``: ``status`` (444: close); ``value`` the TEXT or URL compiled
    (None: none); ``redirect`` whether ``value`` is a Location; ``text`` the
    values as written; ``serial`` the reading order."""

    status: int
    value: Template | None
    redirect: bool
    text: str
    serial: int
    seen: _Seen = field(default_factory=_Seen, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class RewriteRule:
    """``rewrite``: ``pattern``; the replacement's path part and ``args`` part
    (None: no ``?``) compiled; ``add_args`` whether the request's query
    follows (no final ``?``); ``flag`` as written (``""``: none);
    ``redirect`` its status (0: an internal rewrite); ``text`` as written."""

    pattern: re.Pattern[str]
    path: Template
    args: Template | None
    add_args: bool
    flag: str
    redirect: int
    text: str
    serial: int
    seen: _Seen = field(default_factory=_Seen, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class TryFiles:
    """``try_files``: ``files`` compiled, each with whether it must be a
    directory (written with a final ``/``, removed here); then the fallback:
    ``uri`` (compiled), or ``code``, or ``named`` (``@name``)."""

    files: tuple[tuple[Template, bool], ...]
    uri: Template | None
    code: int
    named: str
    text: str
    seen: _Seen = field(default_factory=_Seen, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class _Internal:
    seen: _Seen = field(default_factory=_Seen, compare=False, repr=False)


# -- converters --------------------------------------------------------------------


def _status(v: Validator, token: Token, low: int = 200) -> int | None:
    text = str(token)
    if not (text.isascii() and text.isdigit() and len(text) == 3):
        return None
    number = int(text)
    if number != 444 and not low <= number <= 599:
        v.fail(token, f"invalid return code {quote(token)} (expected {low} to 599, or 444)")
    return number


def _return(v: Validator, args: list[Token]) -> ReturnRule:
    first = args[0]
    text = " ".join(str(a) for a in args)
    status = _status(v, first)
    if status is None:
        if len(args) == 1 and first.startswith(_SCHEMES):
            return ReturnRule(302, compile_value(v, first, "return URL"), True, text, next(_SERIAL))
        hint = f" (a path needs a code: return 302 {first})" if first.startswith("/") else ""
        v.fail(first, f"invalid return code {quote(first)}{hint}")
    if len(args) == 1:
        return ReturnRule(status, None, False, text, next(_SERIAL))
    value = args[1]
    if status == 444:  # NGINX's: close the connection without an answer
        v.fail(value, "return 444 closes the connection: it takes no text")
    if status in (204, 304):
        v.fail(value, f"a {status} answer has no body: return {status} takes no text")
    is_url = status in REDIRECTS
    template = compile_value(v, value, "return URL" if is_url else "return text")
    return ReturnRule(status, template, is_url, text, next(_SERIAL))


_PCRE_NAMED = re.compile(r"(?<!\\)\(\?(?:<(?=[A-Za-z_])|'([A-Za-z_]\w*)')")


def python_regex(text: str) -> str:
    """``text`` with PCRE's named groups ``(?<name>...)`` and ``(?'name'...)``,
    which NGINX configurations use, in Python's spelling ``(?P<name>...)``."""
    if "(?" not in text:
        return text
    return _PCRE_NAMED.sub(lambda m: f"(?P<{m.group(1)}>" if m.group(1) else "(?P<", text)


def _template(
    v: Validator, token: Token, text: str, offset: int, named: frozenset[str]
) -> Template:
    try:
        return compile_template(text, captures=True, named=named | v.location_names)
    except VariableError as exc:
        column = (token.column or 0) + offset + exc.offset + (1 if token.type == "STRING" else 0)
        v.fail(None, f"rewrite {quote(token)}: {exc.message}", token.line or 0, column)


def _rewrite(v: Validator, args: list[Token]) -> RewriteRule:
    regex, replacement = args[0], args[1]
    try:
        pattern = re.compile(python_regex(str(regex)))
    except re.error as exc:
        column = (regex.column or 0) + (exc.pos or 0) + (1 if regex.type == "STRING" else 0)
        v.fail(None, f'invalid regular expression "{regex}": {exc.msg}', regex.line or 0, column)
    try:
        named = named_captures(pattern)
    except ValueError as exc:
        v.fail(regex, f"rewrite regex {quote(regex)}: {exc}")
    flag = ""
    if len(args) == 3:
        flag = str(args[2])
        if flag not in _FLAGS:
            v.fail(
                args[2],
                f"invalid rewrite flag {quote(flag)} (expected last, break, redirect or permanent)",
            )
    text = str(replacement)
    if not text:
        v.fail(replacement, "empty rewrite replacement")
    add_args = not text.endswith("?")
    body = text if add_args else text[:-1]
    path_text, mark, args_text = body.partition("?")
    is_url = text.startswith(_SCHEMES)
    if not is_url and not path_text.startswith(("/", "$")):
        v.fail(
            replacement,
            f"rewrite replacement {quote(text)} must start with / (a path), "
            "http://, https:// or $scheme (a redirect)",
        )
    path = _template(v, replacement, path_text, 0, named)
    arguments = _template(v, replacement, args_text, len(path_text) + 1, named) if mark else None
    status = 301 if flag == "permanent" else 302 if flag == "redirect" or is_url else 0
    shown = " ".join(str(a) for a in args)
    return RewriteRule(pattern, path, arguments, add_args, flag, status, shown, next(_SERIAL))


def _try_files(v: Validator, args: list[Token]) -> TryFiles:
    *names, last = args
    files = []
    for token in names:
        name = str(token)
        directory = name.endswith("/") and len(name) > 1
        if directory:
            name = name[:-1]
        try:
            files.append((compile_template(name, captures=True, named=v.location_names), directory))
        except VariableError as exc:
            column = (token.column or 0) + exc.offset + (1 if token.type == "STRING" else 0)
            v.fail(None, f"try_files {quote(token)}: {exc.message}", token.line or 0, column)
    text = " ".join(str(a) for a in args)
    fallback = str(last)
    if fallback.startswith("="):
        number = fallback[1:]
        code = int(number) if number.isascii() and number.isdigit() and len(number) == 3 else 0
        if not 200 <= code <= 599:
            v.fail(last, f"invalid try_files code {quote(last)} (expected =CODE, 200 to 599)")
        return TryFiles(tuple(files), None, code, "", text)
    if fallback.startswith("@"):
        if len(fallback) < 2 or "/" in fallback:
            v.fail(last, f"invalid named location {quote(last)} (e.g. @fallback)")
        return TryFiles(tuple(files), None, 0, fallback, text)
    if not fallback.startswith(("/", "$")):
        v.fail(
            last,
            f"the last try_files value {quote(last)} must be a URI (/...), =CODE or @name",
        )
    return TryFiles(tuple(files), compile_value(v, last, "try_files URI"), 0, "", text)


def _flag(v: Validator, args: list[Token]) -> _Internal:
    return _Internal()


# -- derivation: a level's own values ----------------------------------------------------


def _fresh(value: Any) -> bool:
    """Whether ``value`` (a converter's, or None) is the deriving location's
    own: the loader derives a location after reading its directives and
    before its nested ones, so a value no derivation has seen is its own."""
    if value is None:
        return False
    seen: list[bool] = value.seen.by
    if seen:
        return False
    seen.append(True)
    return True


def _own_program(scope: Scope, fresh: Callable[[Any], bool]) -> tuple[Any, ...]:
    """The level's ``return`` and ``rewrite`` rules in reading order."""
    rules: list[Any] = [rule for rule, _ in scope.lists.get("rewrite", []) if fresh(rule)]
    found = scope.get("return")
    if fresh(found):
        rules.append(found)
    rules.sort(key=lambda rule: rule.serial)
    return tuple(rules)


def _location_program(scopes: tuple[Scope, Scope, Scope]) -> tuple[Any, ...]:
    return _own_program(scopes[0], _fresh)


def _server_program(scopes: tuple[Scope, Scope]) -> tuple[Any, ...]:
    return _own_program(scopes[0], lambda value: value is not None)


def _location_try(scopes: tuple[Scope, Scope, Scope]) -> TryFiles | None:
    found: TryFiles | None = scopes[0].get("try_files")
    return found if _fresh(found) else None


def _server_try(scopes: tuple[Scope, Scope]) -> TryFiles | None:
    found: TryFiles | None = scopes[0].get("try_files")
    return found


def _location_internal(scopes: tuple[Scope, Scope, Scope]) -> bool:
    return _fresh(scopes[0].get("internal"))


def _nothing(scopes: tuple[Scope, Scope, Scope]) -> None:
    return None


_BOTH = SERVER, LOCATION

DIRECTIVES: dict[str, Any] = {
    # The "rewrite" option holds the whole ordered program (return and rewrite).
    "rewrite": Directive(
        _BOTH,
        2,
        3,
        _rewrite,
        repeatable=True,
        syntax="rewrite REGEX REPLACEMENT [last|break|redirect|permanent]",
        derive=_location_program,
        derive_server=_server_program,
        rootless=True,
    ),
    "return": Directive(
        _BOTH,
        1,
        2,
        _return,
        syntax="return CODE [TEXT|URL] or return URL",
        derive=_nothing,
        rootless=True,
    ),
    "try_files": Directive(
        _BOTH,
        2,
        None,
        _try_files,
        syntax="try_files FILE... URI|=CODE|@name",
        derive=_location_try,
        derive_server=_server_try,
    ),
    "internal": Directive((LOCATION,), 0, 0, _flag, syntax="internal", derive=_location_internal),
}


# -- steps ----------------------------------------------------------------------------


def _pages(exchange: Exchange) -> Any:
    location = exchange.location
    return location.error_pages if location is not None else exchange.server.error_pages


def return_step(rule: ReturnRule) -> Step:
    """The step of a ``return``: its answer (see the module docstring)."""
    status = rule.status
    value = rule.value
    if status == 444:  # NGINX's: close the connection without an answer

        def close(exchange: Exchange) -> Response:
            cast(Any, exchange).log_status = status  # logged as 444, as NGINX does
            exchange.abort("return 444")
            return Response(status)

        return close
    if value is not None and rule.redirect:

        def moved(exchange: Exchange) -> Response:
            url = absolute_url(exchange, render(value, exchange))
            return redirect(location_value(url), status)

        return moved
    if value is not None:
        static = value.static

        def text(exchange: Exchange) -> Response:
            body = static if static is not None else render(value, exchange)
            return Response(
                status, [("Content-Type", TEXT)], body.encode("utf-8", "surrogateescape")
            )

        return text
    if status >= 400:

        def error(exchange: Exchange) -> Response:
            return error_response(status, _pages(exchange), cache=exchange.services.error_pages)

        return error

    def empty(exchange: Exchange) -> Response:
        return Response(status)

    return empty


def _query(rule: RewriteRule, exchange: Exchange, query: str) -> str | None:
    """The query after ``rule`` (None: unchanged), as NGINX's
    ``ngx_http_script_regex_end_code``."""
    if rule.args is not None:
        own = render(rule.args, exchange)
        if rule.add_args and query:
            return f"{own}&{query}" if own else query
        return own
    return None if rule.add_args else ""


def rewrite_step(rule: RewriteRule) -> Step:
    """The step of a ``rewrite``: None when REGEX does not match the path, a
    ``Rewrite`` with the flag, or the redirect ``Response``."""
    search = rule.pattern.search
    flag = rule.flag if rule.flag in ("last", "break") else ""
    status = rule.redirect
    path = rule.path
    if status:

        def moved(exchange: Exchange) -> Response | None:
            request = exchange.request
            match = search(request.path)
            if match is None:
                return None
            exchange.captures = match
            url = render(path, exchange)
            args = render(rule.args, exchange) if rule.args is not None else None
            if args is not None:
                url = f"{url}?{args}"
            if rule.add_args and request.query:
                url = f"{url}{'&' if args is not None else '?'}{request.query}"
            return redirect(location_value(absolute_url(exchange, url)), status)

        return moved

    def rewrite(exchange: Exchange) -> Rewrite | None:
        request = exchange.request
        match = search(request.path)
        if match is None:
            return None
        exchange.captures = match
        query = _query(rule, exchange, request.query)
        return Rewrite(clean_path(render(path, exchange)), query, flag)

    return rewrite


def _under(path: str, prefix: str) -> bool:
    return prefix == "/" or path == prefix or path.startswith(prefix + "/")


def try_files_step(rule: TryFiles, server: ServerBlock, location: Location) -> Step:
    """The PRECONTENT step of ``try_files`` in ``location``: None (the
    request's own path exists), a ``Rewrite`` (``break``: the file found;
    ``last``: the fallback URI; a named location), or the fallback's answer."""
    root = location.root
    prefix = location.prefix
    alias = location.alias
    files = rule.files

    def found(exchange: Exchange) -> str | None:
        if root is None:
            return None
        real_root = exchange.services.files.real_root(root)
        for template, directory in files:
            name = render(template, exchange)
            if not name:
                continue
            try:
                name = clean_path(name)
            except HTTPError:
                continue
            if alias:
                if not _under(name, prefix):
                    continue  # outside what this location's root stands for
                relative = name[len(prefix) :]
            else:
                relative = name
            real = os.path.realpath(os.path.join(real_root, relative.lstrip("/")))
            if not inside(real_root, real):
                continue
            try:
                mode = os.stat(real).st_mode
            except (OSError, ValueError):
                continue
            if stat.S_ISDIR(mode) == directory:
                return name
        return None

    if rule.uri is not None:
        uri = rule.uri

        def fallback(exchange: Exchange) -> Rewrite | Response:
            target = render(uri, exchange)
            path, _, query = target.partition("?")
            return Rewrite(clean_path(path), query, "last")

    elif rule.named:
        named = rule.named
        known = any(loc.modifier == "@" and loc.prefix == named for loc in server.locations)
        if not known:
            log.error('try_files: no location "%s" in the server of line %d', named, server.line)

        def fallback(exchange: Exchange) -> Rewrite | Response:
            if not known:
                raise HTTPError(500, f"try_files: no location {named}")
            return Rewrite(exchange.request.path, None, "last", named)

    else:
        code = rule.code

        def fallback(exchange: Exchange) -> Rewrite | Response:
            if code >= 400:
                return error_response(code, _pages(exchange), cache=exchange.services.error_pages)
            return Response(code)

    def try_files(exchange: Exchange) -> Rewrite | Response | None:
        name = found(exchange)
        if name is None:
            return fallback(exchange)
        if name == exchange.request.path:
            return None
        return Rewrite(name, None, "break")

    return try_files


def _step(rule: Any) -> Step:
    return return_step(rule) if isinstance(rule, ReturnRule) else rewrite_step(rule)


def _implicit_root(server: ServerBlock, location: Location) -> bool:
    """Whether ``location`` is the ``location /`` a block's ``root`` implies
    (the loader makes it with the block's line and no settings of its own)."""
    return (
        location.prefix == "/"
        and location.modifier == ""
        and location.line == server.line
        and not location.alias
        and not location.nested
    )


def build(server: ServerBlock, location: Location | None) -> Steps:
    """The steps of this module for ``location`` (None: the server block's own,
    for SERVER_REWRITE)."""
    if location is None:
        program = server.options.get("rewrite") or ()
        if not program:
            return NO_STEPS
        return Steps({Phase.SERVER_REWRITE: tuple(_step(rule) for rule in program)})
    phases: dict[Phase, tuple[Step, ...]] = {}
    program = location.options.get("rewrite") or ()
    if program:
        phases[Phase.REWRITE] = tuple(_step(rule) for rule in program)
    try_files = location.options.get("try_files")
    if try_files is None and _implicit_root(server, location):
        try_files = server.options.get("try_files")
    if try_files is not None:
        phases[Phase.PRECONTENT] = (try_files_step(try_files, server, location),)
    return Steps(phases) if phases else NO_STEPS


def start_named(pipeline: Pipeline, exchange: Exchange, name: str) -> Handler:
    """The handler for ``exchange`` at its server's named location ``name``
    (an ``error_page @name``): the location's rewrite, access and try_files
    steps, then its content handler, as ``Pipeline.start`` does once it has
    chosen a location (NGINX's ``ngx_http_named_location`` skips the
    server's rewrites too). Never raises: an error is an ``Answer``."""
    try:
        location = pipeline.router.named(exchange.server, name)
        if location is None:
            raise HTTPError(500, f"no location {name} in this server")
        exchange.location = location
        exchange.captures = None
        plan = pipeline._plans.get(id(location))
        if plan is not None:
            found = pipeline._location_phases(exchange, plan)
            if found is not None:
                return found
            location = exchange.location
            if location is None:
                raise HTTPError(404, "no location")
        request = exchange.request
        dispatch = pipeline.route(location)
        for spec in dispatch.table.get(request.method, ()):
            if spec.select is None or spec.select(request, location):
                if location.session:
                    store = pipeline.services.session_store()
                    exchange.session = sessions.begin(store, request, location, exchange)
                return spec.factory(exchange)
        allow = [("Allow", dispatch.allow)]
        pages = exchange.services.error_pages
        return Answer(exchange, error_response(405, location.error_pages, allow, cache=pages))
    except HTTPError as exc:
        return Answer(exchange, pipeline.error_response(exchange, exc))
    except Exception:
        log.exception("error starting %s at %s", exchange.request, name)
        return Answer(exchange, pipeline.internal_error(exchange))


SPEC = ModuleSpec("rewrite", DIRECTIVES, build, order=10)
