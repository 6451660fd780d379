"""Read a configuration file into a validated ``Config``.

Three steps: the Lark grammar (``grammar.lark``) turns text into a tree of
statements; a ``Transformer`` turns that tree into ``_Statement`` records that
keep every token's line and column; the ``_Validator`` walks the statements
against the directive table ``DIRECTIVES`` (which context, how many values,
which converter) and builds the frozen dataclasses of ``model.py``.

Every problem raises ``ConfigError``, whose text is
``PATH:LINE:COLUMN: message`` followed by the offending line and a caret.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import lark
from lark import Token, Transformer

from localhost.config.model import (
    DEFAULT_BODY_LIMIT,
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_CGI_TIMEOUT,
    DEFAULT_FILE,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_HOST,
    DEFAULT_KEEPALIVE_TIMEOUT,
    DEFAULT_SEND_TIMEOUT,
    DEFAULT_SESSION_STORE,
    DEFAULT_SESSION_TIMEOUT,
    DEFAULT_WORKER_CONNECTIONS,
    DEFAULT_WORKER_SHUTDOWN_TIMEOUT,
    IMPLEMENTED_METHODS,
    LOG_LEVELS,
    STDOUT,
    Config,
    Location,
    ServerBlock,
    Timeouts,
    server_name_regex,
)

MAIN, SERVER, LOCATION = "top level", "server", "location"


class ConfigError(Exception):
    """A configuration problem at ``path:line:column``.

    ``str(error)`` is ``PATH:LINE:COLUMN: message``, then the offending source
    line and a caret under the column when the line is known.
    """

    def __init__(self, path: str, line: int, column: int, message: str, source: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.line = line
        self.column = column
        self.message = message
        self.source = source

    def __str__(self) -> str:
        if not self.line:  # the file as a whole: it could not be opened
            return f"{self.path}: {self.message}"
        text = f"{self.path}:{self.line}:{self.column}: {self.message}"
        if self.source:
            shown = self.source.expandtabs(1)
            text += f"\n    {shown}\n    {' ' * (self.column - 1)}^"
        return text


@dataclass
class _Statement:
    """A directive (``body is None``) or a block, with its tokens' positions."""

    name: Token
    args: list[Token]
    body: list[_Statement] | None = None
    end: Token | None = None


class _ToStatements(Transformer[Token, list[_Statement]]):
    def start(self, items: list[Any]) -> list[_Statement]:
        return list(items)

    def directive(self, items: list[Token]) -> _Statement:
        return _Statement(items[0], items[1:])

    def block(self, items: list[Any]) -> _Statement:
        name = items[0]
        args = [i for i in items[1:] if isinstance(i, Token)]
        body = [i for i in items[1:] if isinstance(i, _Statement)]
        return _Statement(name, args, body)

    def STRING(self, token: Token) -> Token:  # noqa: N802 - Lark calls terminals by name
        inner = token[1:-1]
        quote = token[0]
        unescaped = inner.replace("\\" + quote, quote).replace("\\\\", "\\")
        return Token.new_borrow_pos("STRING", unescaped, token)


_PARSER: lark.Lark | None = None


def _parser() -> lark.Lark:
    global _PARSER
    if _PARSER is None:
        grammar = resources.files("localhost.config").joinpath("grammar.lark").read_text()
        _PARSER = lark.Lark(grammar, parser="lalr", propagate_positions=True)
    return _PARSER


# -- value converters: (validator, args) -> value; raise via validator.fail ------

Converter = Callable[["_Validator", list[Token]], Any]

_SIZE_UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3}
_TIME_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _size(v: _Validator, args: list[Token]) -> int:
    text = args[0].lower()
    unit = _SIZE_UNITS.get(text[-1:], 1)
    digits = text[:-1] if text[-1:] in _SIZE_UNITS else text
    if not digits.isdigit() or not digits.isascii():
        v.fail(args[0], f'invalid size "{args[0]}" (expected bytes, or a number with k, m or g)')
    return int(digits) * unit


def _time(v: _Validator, args: list[Token]) -> float:
    text = args[0].lower()
    number, unit = text, "s"
    for suffix in ("ms", "s", "m", "h", "d"):
        if text.endswith(suffix):
            number, unit = text[: -len(suffix)], suffix
            break
    try:
        seconds = float(number) * _TIME_UNITS[unit]
    except ValueError:
        seconds = -1.0
    if not number or not number.replace(".", "", 1).isdigit() or seconds <= 0:
        v.fail(args[0], f'invalid time "{args[0]}" (expected seconds, e.g. 30 or 30s, 500ms, 2m)')
    return seconds


def _host(v: _Validator, args: list[Token]) -> str:
    text = args[0]
    if text == "localhost":
        return "127.0.0.1"
    if text == "*":
        return DEFAULT_HOST
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        v.fail(args[0], f'invalid host "{text}" (expected an IP address, "localhost" or "*")')
    raise AssertionError  # unreachable: fail raises


def _ports(v: _Validator, args: list[Token]) -> list[tuple[int, Token]]:
    ports = []
    for arg in args:
        if not arg.isdigit() or not arg.isascii() or not 1 <= int(arg) <= 65535:
            v.fail(arg, f'invalid port "{arg}" (expected a number from 1 to 65535)')
        ports.append((int(arg), arg))
    return ports


def _names(v: _Validator, args: list[Token]) -> list[tuple[str, Token]]:
    """Server names as NGINX takes them: exact, ``*.suffix``, ``.suffix``
    (the name and its subdomains), ``prefix.*``, ``~regex``, or ``""``
    (requests without a Host)."""
    names = []
    for arg in args:
        if arg.startswith("~"):
            try:
                server_name_regex(arg)
            except re.error as exc:
                v.fail(arg, f'invalid server_name regex "{arg[1:]}": {exc}')
            names.append((str(arg), arg))
            continue
        name = arg.lower().rstrip(".") if arg != "." else "."
        if any(c in name for c in "/\\@?#") or not name.isprintable() or name == ".":
            v.fail(arg, f'invalid server name "{arg}"')
        core = name[2:] if name.startswith("*.") else name[:-2] if name.endswith(".*") else name
        if "*" in core or (name != core and not core) or ".." in arg:
            v.fail(
                arg,
                f'invalid server name or wildcard "{arg}" (a "*" may only be a whole first '
                'or last label: "*.example.com", "www.example.*")',
            )
        names.append((name, arg))
    return names


def _error_page(v: _Validator, args: list[Token]) -> list[tuple[int, Path]]:
    *codes, target = args
    path = v.path_of(target)
    pages = []
    for code in codes:
        number = int(code) if code.isdigit() and code.isascii() else 0
        if not 400 <= number <= 599 or number not in HTTPStatus._value2member_map_:
            v.fail(code, f'unknown error code "{code}" (expected an HTTP status from 400 to 599)')
        pages.append((number, path))
    return pages


def _methods(v: _Validator, args: list[Token]) -> frozenset[str]:
    for arg in args:
        if arg not in IMPLEMENTED_METHODS:
            known = ", ".join(sorted(IMPLEMENTED_METHODS))
            v.fail(arg, f'unknown method "{arg}" (expected some of {known})')
    return frozenset(args)


def _root(v: _Validator, args: list[Token]) -> Path:
    path = v.path_of(args[0])
    if not path.is_dir():
        v.fail(args[0], f'root "{args[0]}" is not a directory ({path})')
    return path


def _default_file(v: _Validator, args: list[Token]) -> str:
    name = args[0]
    if name.startswith("/") or ".." in name.split("/") or "\0" in name:
        v.fail(name, f'invalid default_file "{name}" (expected a file name relative to root)')
    return str(name)


def _on_off(v: _Validator, args: list[Token]) -> bool:
    if args[0] not in ("on", "off"):
        v.fail(args[0], f'invalid value "{args[0]}" (expected "on" or "off")')
    return str(args[0]) == "on"


def _cgi(v: _Validator, args: list[Token]) -> tuple[str, str]:
    extension, interpreter = args
    if not extension.startswith(".") or len(extension) < 2 or "/" in extension:
        v.fail(extension, f'invalid CGI extension "{extension}" (expected e.g. ".py")')
    if "/" in interpreter:
        found = str(v.path_of(interpreter))
        if not Path(found).is_file():
            v.fail(interpreter, f'CGI interpreter "{interpreter}" not found')
    else:
        found = shutil.which(interpreter) or ""
        if not found:
            v.fail(interpreter, f'CGI interpreter "{interpreter}" not found in PATH')
    return str(extension), found


def _count(v: _Validator, args: list[Token]) -> int:
    if not args[0].isdigit() or not args[0].isascii() or not 1 <= int(args[0]) <= 1_000_000:
        v.fail(args[0], f'invalid number "{args[0]}" (expected 1 to 1000000)')
    return int(args[0])


def _processes(v: _Validator, args: list[Token]) -> int:
    if args[0] == "auto":
        return os.cpu_count() or 1
    if not args[0].isdigit() or not args[0].isascii() or not 1 <= int(args[0]) <= 1024:
        v.fail(args[0], f'invalid worker_processes "{args[0]}" (expected 1 to 1024, or auto)')
    return int(args[0])


def _file(v: _Validator, args: list[Token]) -> Path:
    path = v.path_of(args[0])
    if not path.parent.is_dir():
        v.fail(args[0], f'"{args[0]}": folder {path.parent} does not exist')
    return path


def _log_path(v: _Validator, token: Token, standard: str) -> str:
    if token in (standard, STDOUT):
        return STDOUT
    return str(_file(v, [token]))


def _error_log(v: _Validator, args: list[Token]) -> tuple[str, str]:
    level = str(args[1]) if len(args) > 1 else "info"
    if level not in LOG_LEVELS:
        v.fail(args[1], f'invalid log level "{level}" (expected one of {", ".join(LOG_LEVELS)})')
    return _log_path(v, args[0], "stderr"), level


def _access_log(v: _Validator, args: list[Token]) -> str | None:
    if args[0] == "off":
        return None
    return _log_path(v, args[0], "stdout")


def _store(v: _Validator, args: list[Token]) -> Path:
    path = v.path_of(args[0])
    if not path.parent.is_dir():
        v.fail(args[0], f'session_store "{args[0]}": folder {path.parent} does not exist')
    return path


def _url(v: _Validator, args: list[Token]) -> str:
    url = args[0]
    if not url.isprintable() or not url.isascii() or " " in url:
        v.fail(url, f'invalid redirect URL "{url}"')
    return str(url)


@dataclass(frozen=True)
class Directive:
    """One row of the directive table."""

    contexts: tuple[str, ...]
    min_args: int
    max_args: int | None
    convert: Converter
    repeatable: bool = False
    syntax: str = ""


DIRECTIVES: dict[str, Directive] = {
    "host": Directive((SERVER,), 1, 1, _host, syntax="host ADDRESS"),
    "port": Directive((SERVER,), 1, None, _ports, repeatable=True, syntax="port PORT..."),
    "server_name": Directive(
        (SERVER,), 1, None, _names, repeatable=True, syntax="server_name NAME..."
    ),
    "body_limit": Directive((MAIN, SERVER, LOCATION), 1, 1, _size, syntax="body_limit SIZE"),
    "error_page": Directive(
        (MAIN, SERVER, LOCATION),
        2,
        None,
        _error_page,
        repeatable=True,
        syntax="error_page CODE... PATH",
    ),
    "methods": Directive((SERVER, LOCATION), 1, None, _methods, syntax="methods METHOD..."),
    "root": Directive((SERVER, LOCATION), 1, 1, _root, syntax="root PATH"),
    "default_file": Directive((SERVER, LOCATION), 1, 1, _default_file, syntax="default_file NAME"),
    "directory_listing": Directive(
        (SERVER, LOCATION), 1, 1, _on_off, syntax="directory_listing on|off"
    ),
    "cgi": Directive(
        (SERVER, LOCATION), 2, 2, _cgi, repeatable=True, syntax="cgi .EXT INTERPRETER"
    ),
    "redirect": Directive((LOCATION,), 1, 1, _url, syntax="redirect URL"),
    "cgi_timeout": Directive((MAIN, SERVER, LOCATION), 1, 1, _time, syntax="cgi_timeout TIME"),
    "session": Directive((SERVER, LOCATION), 1, 1, _on_off, syntax="session on|off"),
    "session_store": Directive((MAIN,), 1, 1, _store, syntax="session_store PATH"),
    "session_timeout": Directive((MAIN,), 1, 1, _time, syntax="session_timeout TIME"),
    "worker_connections": Directive((MAIN,), 1, 1, _count, syntax="worker_connections NUMBER"),
    "worker_processes": Directive((MAIN,), 1, 1, _processes, syntax="worker_processes NUMBER|auto"),
    "worker_shutdown_timeout": Directive(
        (MAIN,), 1, 1, _time, syntax="worker_shutdown_timeout TIME"
    ),
    "pid": Directive((MAIN,), 1, 1, _file, syntax="pid PATH"),
    "error_log": Directive((MAIN,), 1, 2, _error_log, syntax="error_log PATH|stderr [LEVEL]"),
    "access_log": Directive(
        (MAIN, SERVER, LOCATION), 1, 1, _access_log, syntax="access_log PATH|off"
    ),
    "client_header_timeout": Directive(
        (MAIN, SERVER), 1, 1, _time, syntax="client_header_timeout TIME"
    ),
    "client_body_timeout": Directive(
        (MAIN, SERVER), 1, 1, _time, syntax="client_body_timeout TIME"
    ),
    "keepalive_timeout": Directive((MAIN, SERVER), 1, 1, _time, syntax="keepalive_timeout TIME"),
    "send_timeout": Directive((MAIN, SERVER), 1, 1, _time, syntax="send_timeout TIME"),
}

BLOCKS = {"server": (MAIN,), "location": (SERVER,)}


@dataclass
class _Scope:
    """Directive values seen in one context: name -> (value, first token)."""

    values: dict[str, tuple[Any, Token]] = field(default_factory=dict)
    lists: dict[str, list[tuple[Any, Token]]] = field(default_factory=dict)

    def get(self, name: str, default: Any = None) -> Any:
        entry = self.values.get(name)
        return default if entry is None else entry[0]


class _Validator:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.base = path.parent
        self.lines = text.splitlines()

    def fail(self, token: Token | None, message: str, line: int = 0, column: int = 0) -> None:
        if token is not None:
            line, column = token.line or 0, token.column or 0
        source = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        raise ConfigError(str(self.path), line, column, message, source)

    def path_of(self, token: Token) -> Path:
        path = Path(token).expanduser()
        return path if path.is_absolute() else (self.base / path)

    # -- walking ------------------------------------------------------------

    def scope(
        self, statements: Iterable[_Statement], context: str
    ) -> tuple[_Scope, list[_Statement]]:
        """Collect the directives of one context; return them and its child blocks."""
        scope = _Scope()
        blocks = []
        for st in statements:
            if st.body is not None:
                allowed = BLOCKS.get(st.name)
                if allowed is None:
                    self.fail(st.name, f'unknown block "{st.name}"')
                elif context not in allowed:
                    self.fail(st.name, f'"{st.name}" block is not allowed in {_where(context)}')
                blocks.append(st)
                continue
            self.directive(st, context, scope)
        return scope, blocks

    def directive(self, st: _Statement, context: str, scope: _Scope) -> None:
        name = str(st.name)
        spec = DIRECTIVES.get(name)
        if spec is None:
            if name in BLOCKS:
                self.fail(st.name, f'"{name}" must be followed by a block in braces')
            self.fail(st.name, f'unknown directive "{name}"')
            return
        if context not in spec.contexts:
            self.fail(st.name, f'"{name}" directive is not allowed in {_where(context)}')
        count = len(st.args)
        if count < spec.min_args or (spec.max_args is not None and count > spec.max_args):
            where = (
                st.args[spec.max_args]
                if spec.max_args is not None and count > spec.max_args
                else st.name
            )
            self.fail(where, f'invalid number of values in "{name}" (syntax: {spec.syntax})')
        if not spec.repeatable and name in scope.values:
            first = scope.values[name][1]
            self.fail(st.name, f'"{name}" directive is duplicate (first at line {first.line})')
        value = spec.convert(self, st.args)
        if spec.repeatable:
            scope.lists.setdefault(name, []).append((value, st.name))
        else:
            scope.values[name] = (value, st.name)

    def config(self, statements: list[_Statement]) -> Config:
        main, blocks = self.scope(statements, MAIN)
        servers = [self.server(block, main) for block in blocks]
        if not servers:
            self.fail(None, 'no "server" block (at least one is required)', 1, 1)
        self.check_names(servers)
        return Config(
            self.path,
            _with_cgi_roots(tuple(server for server, _ in servers)),
            session_store=main.get("session_store", self.base / DEFAULT_SESSION_STORE),
            session_timeout=main.get("session_timeout", DEFAULT_SESSION_TIMEOUT),
            worker_connections=main.get("worker_connections", DEFAULT_WORKER_CONNECTIONS),
            worker_processes=main.get("worker_processes", 1),
            worker_shutdown_timeout=main.get(
                "worker_shutdown_timeout", DEFAULT_WORKER_SHUTDOWN_TIMEOUT
            ),
            pid=main.get("pid"),
            error_log=main.get("error_log", (STDOUT, "info"))[0],
            error_log_level=main.get("error_log", (STDOUT, "info"))[1],
        )

    def server(self, block: _Statement, main: _Scope) -> tuple[ServerBlock, list[Token]]:
        if block.args:
            self.fail(block.args[0], '"server" block takes no values')
        scope, children = self.scope(block.body or [], SERVER)
        host = scope.get("host", DEFAULT_HOST)
        if "port" not in scope.lists:
            self.fail(block.name, 'server block has no "port" directive (required)')
        addresses: dict[tuple[str, int], Token] = {}
        for ports, _ in scope.lists["port"]:
            for port, token in ports:
                if (host, port) in addresses:
                    first = addresses[(host, port)]
                    self.fail(
                        token,
                        f"duplicate listen address {_addr(host, port)} in one server "
                        f"(first at line {first.line})",
                    )
                addresses[(host, port)] = token
        names = [pair for names, _ in scope.lists.get("server_name", []) for pair in names]
        body_limit = _inherit("body_limit", DEFAULT_BODY_LIMIT, scope, main)
        error_pages = _pages(main, scope)
        locations = []
        seen: dict[str, Token] = {}
        for child in children:
            location = self.location(child, scope, main)
            if location.prefix in seen:
                line = seen[location.prefix].line
                message = f'duplicate location "{location.prefix}" (first at line {line})'
                self.fail(child.args[0], message)
            seen[location.prefix] = child.args[0]
            locations.append(location)
        if "/" not in seen and scope.get("root") is not None:
            locations.append(self.make_location("/", _Scope(), scope, main, block.name.line or 0))
        locations.sort(key=lambda loc: len(loc.prefix), reverse=True)
        timeouts = Timeouts(
            client_header=_inherit("client_header_timeout", DEFAULT_HEADER_TIMEOUT, scope, main),
            client_body=_inherit("client_body_timeout", DEFAULT_BODY_TIMEOUT, scope, main),
            keepalive=_inherit("keepalive_timeout", DEFAULT_KEEPALIVE_TIMEOUT, scope, main),
            send=_inherit("send_timeout", DEFAULT_SEND_TIMEOUT, scope, main),
        )
        server = ServerBlock(
            addresses=tuple(addresses),
            server_names=tuple(dict.fromkeys(name for name, _ in names)),
            locations=tuple(locations),
            timeouts=timeouts,
            body_limit=body_limit,
            error_pages=error_pages,
            access_log=_inherit("access_log", STDOUT, scope, main),
            line=block.name.line or 0,
        )
        return server, [token for _, token in names]

    def location(self, block: _Statement, server: _Scope, main: _Scope) -> Location:
        if len(block.args) != 1:
            where = block.args[1] if len(block.args) > 1 else block.name
            self.fail(
                where, '"location" block takes exactly one path (syntax: location PATH { ... })'
            )
        prefix_token = block.args[0]
        if not prefix_token.startswith("/"):
            self.fail(prefix_token, f'location path "{prefix_token}" must start with "/"')
        prefix = prefix_token.rstrip("/") or "/"
        scope, _ = self.scope(block.body or [], LOCATION)
        own_root = scope.get("root")
        redirect = scope.get("redirect")
        session = scope.get("session")
        if own_root is None and server.get("root") is None and redirect is None and not session:
            self.fail(
                prefix_token,
                f'location "{prefix}" has no "root" (required unless the server has one or the '
                f'location has "redirect" or "session on")',
            )
        return self.make_location(prefix, scope, server, main, prefix_token.line or 0)

    def make_location(
        self, prefix: str, scope: _Scope, server: _Scope, main: _Scope, line: int
    ) -> Location:
        own_root = scope.get("root")
        cgi_entries = scope.lists.get("cgi") or server.lists.get("cgi") or []
        return Location(
            prefix=prefix,
            root=own_root if own_root is not None else server.get("root"),
            alias=own_root is not None,
            methods=_inherit("methods", None, scope, server),
            default_file=_inherit("default_file", DEFAULT_FILE, scope, server),
            directory_listing=_inherit("directory_listing", False, scope, server),
            cgi=MappingProxyType(dict(value for value, _ in cgi_entries)),
            redirect=scope.get("redirect"),
            body_limit=_inherit("body_limit", DEFAULT_BODY_LIMIT, scope, server, main),
            error_pages=_pages(main, server, scope),
            cgi_timeout=_inherit("cgi_timeout", DEFAULT_CGI_TIMEOUT, scope, server, main),
            access_log=_inherit("access_log", STDOUT, scope, server, main),
            session=_inherit("session", False, scope, server),
            session_handler=bool(scope.get("session")) and own_root is None and not cgi_entries,
            line=line,
        )

    def check_names(self, servers: list[tuple[ServerBlock, list[Token]]]) -> None:
        """The same server_name twice on one listen address is an error naming both lines."""
        owners: dict[tuple[str, int, str], Token] = {}
        for server, tokens in servers:
            for name_token in tokens:
                name = name_token.lower().rstrip(".")
                for host, port in server.addresses:
                    key = (host, port, name)
                    first = owners.get(key)
                    if first is not None and first is not name_token:
                        self.fail(
                            name_token,
                            f'duplicate server_name "{name}" on {_addr(host, port)} '
                            f"(first at line {first.line})",
                        )
                    owners.setdefault(key, name_token)


def _with_cgi_roots(servers: tuple[ServerBlock, ...]) -> tuple[ServerBlock, ...]:
    """Give every location that may take uploads the roots CGI runs scripts from."""
    cgi_roots = tuple(
        sorted(
            {
                (os.path.realpath(location.root), frozenset(ext.lower() for ext in location.cgi))
                for server in servers
                for location in server.locations
                if location.cgi and location.root is not None
            },
            key=lambda pair: pair[0],
        )
    )
    if not cgi_roots:
        return servers
    return tuple(
        replace(
            server,
            locations=tuple(
                replace(location, cgi_roots=cgi_roots)
                if location.root is not None and "POST" in (location.methods or ())
                else location
                for location in server.locations
            ),
        )
        for server in servers
    )


def _where(context: str) -> str:
    return "the top level" if context == MAIN else f'a "{context}" block'


def _addr(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _inherit(name: str, default: Any, *scopes: _Scope) -> Any:
    for scope in scopes:
        if name in scope.values:
            return scope.values[name][0]
    return default


def _pages(*scopes: _Scope) -> MappingProxyType[int, Path]:
    """error_page settings, outer scopes first so that inner ones override per code."""
    pages: dict[int, Path] = {}
    for scope in scopes:
        for entries, _ in scope.lists.get("error_page", []):
            pages.update(entries)
    return MappingProxyType(pages)


def _syntax_error(exc: lark.exceptions.UnexpectedInput, validator: _Validator) -> None:
    line, column = exc.line, exc.column
    if isinstance(exc, lark.exceptions.UnexpectedCharacters):
        char = validator.lines[line - 1][column - 1] if 0 < line <= len(validator.lines) else "?"
        message = f"unexpected character {char!r}"
        if char in "\"'":
            message = f"unterminated string (missing closing {char})"
    elif isinstance(exc, lark.exceptions.UnexpectedToken) and exc.token.type != "$END":
        message = f'unexpected "{exc.token}"'
    else:
        message = 'unexpected end of file, expecting "}"'
        line = max(len(validator.lines), 1)
        column = len(validator.lines[-1]) + 1 if validator.lines else 1
    if not isinstance(line, int) or line < 1:
        line, column = max(len(validator.lines), 1), 1
    validator.fail(None, message, line, column)


def load(path: str | Path) -> Config:
    """Parse and validate the configuration file at ``path``.

    Relative paths inside the file are taken relative to the file's folder.
    Raises ``ConfigError`` (``PATH:LINE:COLUMN: message``) for every problem,
    including a file that cannot be read (line 0).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            str(path), 0, 0, f"cannot read the configuration file: {exc.strerror or exc}"
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        start = before.rfind(b"\n") + 1
        column = len(before[start:].decode("utf-8", "replace")) + 1
        source = data[start:].split(b"\n", 1)[0].decode("utf-8", "replace")
        message = f"invalid UTF-8 (byte 0x{data[exc.start]:02x})"
        raise ConfigError(str(path), line, column, message, source) from None
    return loads(text, path)


def loads(text: str, path: str | Path = "<string>") -> Config:
    """Parse and validate configuration ``text`` as if read from ``path``.

    Raises ``ConfigError``.
    """
    validator = _Validator(Path(path), text)
    try:
        tree = _parser().parse(text)
    except lark.exceptions.UnexpectedInput as exc:
        _syntax_error(exc, validator)
        raise AssertionError from None  # unreachable: _syntax_error raises
    statements = _ToStatements().transform(tree)
    return validator.config(statements)
