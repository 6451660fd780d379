"""Read a configuration file into a validated ``Config``.

Three steps: the Lark grammar (``grammar.lark``) turns text into a tree of
statements; a ``Transformer`` turns that tree into ``_Statement`` records that
keep every token's line and column; the ``_Validator`` walks the statements
against the directive table (which context, how many values, which
converter) and builds the frozen dataclasses of ``model.py``. The table is
``DIRECTIVES`` plus the rows each registered handler owns
(``HandlerSpec.directives``, e.g. ``cgi`` in ``localhost.handlers.cgi``),
merged at each ``loads``.

Every problem raises ``ConfigError``, whose text is
``PATH:LINE:COLUMN: message`` followed by the offending line and a caret
(``diagnostics.py``). Problems that do not stop the server (an ``error_page``
file that is missing) become ``ConfigWarning``s in ``Config.warnings``.

``include GLOB`` (any context) is expanded as the validator walks: the files'
statements stand where the include stood. Each token remembers its file
(``_Validator.origins``, by the token's id), so that a message names the
included file, its line and column and shows its line, with a note for each
include on the way; a file that includes itself, directly or not, is an
error naming the chain. NGINX's names for localhost's directives
(``SYNONYMS``, and ``listen`` for ``host`` + ``port``) set the same value; a
block that uses both spellings is an error. ``Overrides`` are the command
line's values over the file's; ``explain`` also returns the ``Trace`` that
``localhost -T`` prints (``effective.py``).

Lines are counted at LF only, everywhere: the grammar does, and so does every
excerpt (``str.splitlines`` would also break at form feed, U+2028 and others,
and show the wrong line). A CR before the LF belongs to no value, so CRLF
files read as LF files. A UTF-8 byte-order mark at the start is skipped.
"""

from __future__ import annotations

import difflib
import glob
import importlib
import inspect
import ipaddress
import math
import os
import re
import stat
import sys
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields, replace
from http import HTTPStatus
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn
from urllib.parse import urlsplit

import lark
from lark import Token
from lark.visitors import Transformer_NonRecursive

from localhost.config.diagnostics import ConfigError, ConfigWarning, Note
from localhost.config.model import (
    DEFAULT_BODY_LIMIT,
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_FILE,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_HOST,
    DEFAULT_KEEPALIVE_REQUESTS,
    DEFAULT_KEEPALIVE_TIMEOUT,
    DEFAULT_SEND_TIMEOUT,
    DEFAULT_SESSION_STORE,
    DEFAULT_SESSION_TIMEOUT,
    DEFAULT_TLS_PROTOCOLS,
    DEFAULT_WORKER_CONNECTIONS,
    DEFAULT_WORKER_SHUTDOWN_TIMEOUT,
    DEFAULT_WORKER_TIMEOUT,
    LOG_LEVELS,
    STDOUT,
    Config,
    ErrorPages,
    ErrorTarget,
    Location,
    ServerBlock,
    Timeouts,
    TLSSettings,
    server_name_regex,
)
from localhost.http.methods import IMPLEMENTED_METHODS
from localhost.sessions import is_redis_url

__all__ = [
    "DIRECTIVES",
    "NGINX_EQUIVALENTS",
    "SYNONYMS",
    "ConfigError",
    "ConfigWarning",
    "Overrides",
    "Trace",
    "explain",
    "explains",
    "load",
    "loads",
]

MAIN, SERVER, LOCATION = "top level", "server", "location"

BOM = "\ufeff"

#: NGINX directive names that localhost spells differently, with the localhost
#: equivalent: 'unknown directive "autoindex"; localhost calls it
#: directory_listing'. A row goes away when localhost implements the NGINX
#: name itself.
NGINX_EQUIVALENTS: dict[str, str] = {
    "limit_except": "methods",
}

#: NGINX's names that localhost accepts for its own directives: NGINX name ->
#: localhost name. Both spellings set one value; writing both in one block is
#: an error. (``listen`` is the NGINX spelling of ``host`` + ``port``: see
#: ``_Validator.addresses``.)
SYNONYMS: dict[str, str] = {
    "index": "default_file",
    "autoindex": "directory_listing",
    "client_max_body_size": "body_limit",
    "alias": "root",
}

#: NGINX's wrapper blocks at the top level, read as the top level itself
#: (``Loader.main_statements``): an NGINX-style file with ``http { server
#: {...} }`` and ``events { worker_connections N; }`` loads as written.
WRAPPERS = ("http", "events")

#: Top-level directives that NGINX takes only outside ``http`` (the process
#: and its workers): written inside ``http``, they are an error, as there.
PROCESS_DIRECTIVES = frozenset(
    {
        "worker_processes",
        "worker_connections",
        "worker_shutdown_timeout",
        "worker_timeout",
        "pid",
    }
)

# Longest token text quoted in a message; a longer one is cut.
_MAX_QUOTED = 200
# Longest run of digits read as a number: int() refuses very long strings
# (sys.int_info.str_digits_check_threshold), and no setting needs more.
_MAX_DIGITS = 18


def _printable(text: str) -> str:
    """``text`` with invisible characters (NUL, CR, U+2028...) as escapes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _q(text: str) -> str:
    """``text`` in double quotes for a message: printable, and cut when long."""
    if len(text) > _MAX_QUOTED:
        text = text[: _MAX_QUOTED - 3] + "..."
    return f'"{_printable(text)}"'


def _number(text: str) -> int | None:
    """The value of a run of ASCII digits, or None."""
    if text.isascii() and text.isdigit() and len(text) <= _MAX_DIGITS:
        return int(text)
    return None


@dataclass
class _Statement:
    """A directive (``body is None``) or a block, with its tokens' positions."""

    name: Token
    args: list[Token]
    body: list[_Statement] | None = None
    end: Token | None = None


@dataclass(eq=False)
class _Source:
    """One file of the configuration: the main one, an included one, or the
    command line's flags (``Overrides``).

    ``path`` is the file as messages name it; ``lines`` its text split at LF;
    ``real`` its resolved path (for include cycles); ``parent`` the file that
    included it and ``include`` the ``include`` directive's name token there
    (None for the main file); ``order`` counts files as they are read.
    """

    path: str
    lines: list[str]
    real: str = ""
    parent: _Source | None = None
    include: Token | None = None
    order: int = 0

    def line(self, number: int) -> str:
        """Line ``number`` (from 1) as shown under a message, without its CR."""
        if not 0 < number <= len(self.lines):
            return ""
        text = self.lines[number - 1]
        return text[:-1] if text.endswith("\r") else text

    def chain(self) -> list[_Source]:
        """This file and the files that included it, the main file last."""
        chain = []
        source: _Source | None = self
        while source is not None:
            chain.append(source)
            source = source.parent
        return chain


class _ToStatements(Transformer_NonRecursive[Token, list[_Statement]]):
    # Non-recursive: blocks nested thousands deep must give a ConfigError
    # (the validator refuses a third level), not a RecursionError.

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


class _Continuation:
    """Lark post-lexer: newlines before a quoted string continue the directive.

    No statement starts with a quoted string, so a line that does is the
    rest of the directive above it, as in NGINX's usual multi-line
    ``log_format main '$remote_addr ...'`` / ``'$status ...';``.
    """

    always_accept = ()

    def process(self, stream: Iterable[Token]) -> Iterable[Token]:
        held: list[Token] = []
        for token in stream:
            if token.type == "_NL":
                held.append(token)
                continue
            if held and token.type != "STRING":
                yield from held
            held = []
            yield token
        yield from held


def _parser() -> lark.Lark:
    global _PARSER
    if _PARSER is None:
        grammar = resources.files("localhost.config").joinpath("grammar.lark").read_text()
        _PARSER = lark.Lark(
            grammar, parser="lalr", propagate_positions=True, postlex=_Continuation()
        )
    return _PARSER


# -- paths ------------------------------------------------------------------


def _resolved(path: Path) -> str:
    """The absolute path the kernel would use for ``path`` (symbolic links followed)."""
    try:
        return str(path.resolve())
    except (OSError, RuntimeError, ValueError):  # a symbolic link loop, an odd name
        return os.path.abspath(path)


def _path_problem(path: Path, kind: str) -> str | None:
    """Why ``path`` is not an existing ``kind`` (``"directory"`` or ``"file"``), or None."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return "is a broken symbolic link" if os.path.islink(path) else "does not exist"
    except NotADirectoryError:
        return "does not exist (a folder on its way is a file)"
    except PermissionError:
        return "cannot be reached (permission denied)"
    except OSError as exc:  # ENAMETOOLONG, ELOOP...
        return f"cannot be checked ({exc.strerror or exc})"
    except ValueError:  # refused before the system call (e.g. a NUL byte)
        return "cannot exist"
    if kind == "directory" and not stat.S_ISDIR(info.st_mode):
        return "is not a directory"
    if kind == "file" and stat.S_ISDIR(info.st_mode):
        return "is a directory"
    if kind == "file" and not stat.S_ISREG(info.st_mode):
        return "is not a regular file"
    return None


def _resolved_note(token: Token, path: Path) -> str:
    """`` (resolved to /abs/path)``, unless the value already was that path."""
    shown = _resolved(path)
    return "" if shown == token else f" (resolved to {_printable(shown)})"


def _directory(v: _Validator, token: Token) -> Path:
    path = v.path_of(token)
    problem = _path_problem(path, "directory")
    if problem:
        v.fail(token, f"{v.name} {_q(token)} {problem}{_resolved_note(token, path)}")
    return path


def _new_file(v: _Validator, token: Token) -> Path:
    """A file the server writes (pid, logs, session store): its folder must exist."""
    path = v.path_of(token)
    problem = _path_problem(path.parent, "directory")
    if problem:
        folder = _printable(_resolved(path.parent))
        v.fail(token, f"{v.name} {_q(token)}: folder {folder} {problem}")
    if os.path.isdir(path):
        v.fail(token, f"{v.name} {_q(token)} is a directory{_resolved_note(token, path)}")
    return path


# -- value converters: (validator, args) -> value; raise via validator.fail ------

Converter = Callable[["_Validator", list[Token]], Any]

_SIZE_UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3}
_TIME_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _size(v: _Validator, args: list[Token]) -> int:
    text = args[0].lower()
    unit = _SIZE_UNITS.get(text[-1:], 1)
    number = _number(text[:-1] if text[-1:] in _SIZE_UNITS else text)
    if number is None:
        v.fail(args[0], f"invalid size {_q(args[0])} (expected bytes, or a number with k, m or g)")
    return number * unit


def _time(v: _Validator, args: list[Token]) -> float:
    text = args[0].lower()
    number, unit = text, "s"
    for suffix in ("ms", "s", "m", "h", "d"):
        if text.endswith(suffix):
            number, unit = text[: -len(suffix)], suffix
            break
    seconds = -1.0
    if number.isascii() and number.replace(".", "", 1).isdigit():
        seconds = float(number) * _TIME_UNITS[unit]
    if not 0 < seconds < math.inf:
        v.fail(args[0], f"invalid time {_q(args[0])} (expected seconds, e.g. 30 or 30s, 500ms, 2m)")
    return seconds


def _time_or_off(v: _Validator, args: list[Token]) -> float:
    """A TIME, or ``0``/``off`` for "never" (0.0)."""
    if args[0].lower() in ("0", "off"):
        return 0.0
    return _time(v, args)


def _host(v: _Validator, args: list[Token]) -> str:
    text = args[0]
    if text == "localhost":
        return "127.0.0.1"
    if text == "*":
        return DEFAULT_HOST
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        v.fail(args[0], f'invalid host {_q(text)} (expected an IP address, "localhost" or "*")')


def _ports(v: _Validator, args: list[Token]) -> list[tuple[int, Token]]:
    ports = []
    for arg in args:
        port = _number(arg)
        if port is None or not 1 <= port <= 65535:
            v.fail(arg, f"invalid port {_q(arg)} (expected a number from 1 to 65535)")
        ports.append((port, arg))
    return ports


def _port_list(v: _Validator, args: list[Token]) -> list[tuple[int, Token, bool]]:
    """``port PORT [ssl] [http2] PORT...``: ``(port, token, ssl)``; a flag
    applies to the port before it (``port 8080 8443 ssl``: 8443 is TLS). An
    ``http2`` flag (kept in ``Validator.http2_ports``) means ``http2 on``."""
    ports: list[tuple[int, Token, bool]] = []
    for arg in args:
        if arg == "http2":
            if not ports or id(ports[-1][1]) in v.http2_ports:
                v.fail(arg, '"http2" applies to the port before it (port 8443 ssl http2)')
            v.http2_ports.add(id(ports[-1][1]))
            continue
        if arg == "ssl":
            if not ports or ports[-1][2]:
                v.fail(arg, '"ssl" applies to the port before it (port 8080 8443 ssl)')
            port, token, _ = ports[-1]
            ports[-1] = (port, token, True)
            continue
        ports.extend((port, token, False) for port, token in _ports(v, [arg]))
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
            except (re.error, OverflowError, RecursionError, ValueError) as exc:
                v.fail(arg, f"invalid server_name regex {_q(arg[1:])}: {_printable(str(exc))}")
            names.append((str(arg), arg))
            continue
        name = arg.lower().rstrip(".") if arg != "." else "."
        if any(c in name for c in "/\\@?#") or not name.isprintable() or name == ".":
            v.fail(arg, f"invalid server name {_q(arg)}")
        core = name[2:] if name.startswith("*.") else name[:-2] if name.endswith(".*") else name
        if "*" in core or (name != core and not core) or ".." in arg:
            v.fail(
                arg,
                f'invalid server name or wildcard {_q(arg)} (a "*" may only be a whole first '
                'or last label: "*.example.com", "www.example.*")',
            )
        names.append((name, arg))
    return names


def _error_page(v: _Validator, args: list[Token]) -> list[tuple[int, Any]]:
    """``error_page CODE... [=[NEW]] TARGET``: ``[(code, Path | ErrorTarget)]``.

    TARGET naming an existing file (relative to the config's folder, or
    absolute) is that page (a ``Path``; an ``ErrorTarget`` of kind "file"
    with ``=NEW``). Otherwise ``/...`` is a URI, ``@name`` a named location,
    ``http://``, ``https://`` or ``$scheme...`` a redirect; any other value
    is a relative file that is missing: a warning, the built-in page is
    served (as NGINX, ``=NEW`` changes the status; ``=`` alone takes the
    target's).
    """
    # Imported here: only this converter needs them.
    from localhost.variables import VariableError, compile_template

    *codes, target = args
    status: int | None = None
    if codes and codes[-1].startswith("="):
        sign = codes.pop()
        status = 0
        if len(sign) > 1:
            number = _number(sign[1:]) or 0
            if not 200 <= number <= 599 or number not in HTTPStatus._value2member_map_:
                v.fail(
                    sign,
                    f"invalid status {_q(sign)} (expected = alone, or =CODE with an HTTP "
                    "status from 200 to 599)",
                )
            status = number
        if not codes:
            v.fail(
                sign,
                'invalid number of values in "error_page" '
                "(syntax: error_page CODE... [=[NEW]] TARGET)",
            )
    numbers = []
    for code in codes:
        if code.startswith("="):
            v.fail(code, f"{_q(code)} goes just before the target (error_page 404 =200 /empty)")
        number = _number(code) or 0
        if not 400 <= number <= 599 or number not in HTTPStatus._value2member_map_:
            v.fail(code, f"unknown error code {_q(code)} (expected an HTTP status from 400 to 599)")
        numbers.append(number)
    text = str(target)

    def compiled() -> Any:
        try:
            return compile_template(text, captures=True)
        except VariableError as exc:
            column = (target.column or 0) + exc.offset + (1 if target.type == "STRING" else 0)
            v.fail(None, f"error_page {_q(text)}: {exc.message}", target.line or 0, column)

    kind = ""
    if text.startswith("@"):
        if len(text) < 2 or "/" in text or not text.isprintable() or " " in text:
            v.fail(target, f"invalid named location {_q(text)} (e.g. @fallback)")
        kind = "named"
    elif text.startswith(("http://", "https://", "$scheme")):
        if status not in (None, 0, 301, 302, 303, 307, 308):
            v.fail(
                target,
                f"error_page {_q(text)} answers with a redirect: the status after "
                '"=" must be 301, 302, 303, 307 or 308',
            )
        kind = "url"
    path = v.path_of(target) if not kind else None
    # An existing file stays a page file, as before; any other absolute
    # value is a URI (NGINX's meaning).
    if (
        path is not None
        and text.startswith("/")
        and ("$" in text or "?" in text or _path_problem(path, "file") is not None)
    ):
        kind = "uri"
        path = None
    if kind:
        found = ErrorTarget(kind, text, status, compiled() if kind != "named" else None)
        return [(number, found) for number in numbers]
    assert path is not None
    # The file is read at request time (and may appear later): a missing one
    # only costs the custom page, so the server still starts.
    problem = _path_problem(path, "file")
    if problem is None and not os.access(path, os.R_OK):
        problem = "cannot be read (permission denied)"
    if problem:
        v.warn(
            target,
            f"error_page file {_q(target)} {problem}{_resolved_note(target, path)}; "
            "the built-in page is served instead",
        )
    if status is not None:
        page = ErrorTarget("file", text, status, path=path)
        return [(number, page) for number in numbers]
    return [(number, path) for number in numbers]


def _methods(v: _Validator, args: list[Token]) -> frozenset[str]:
    for arg in args:
        if arg not in IMPLEMENTED_METHODS:
            known = ", ".join(sorted(IMPLEMENTED_METHODS))
            v.fail(arg, f"unknown method {_q(arg)} (expected some of {known})")
    return frozenset(args)


def _root(v: _Validator, args: list[Token]) -> Path:
    return _directory(v, args[0])


def _default_file(v: _Validator, args: list[Token]) -> tuple[str, ...]:
    """``default_file NAME`` or ``index NAME...``: the names, first existing wins."""
    for name in args:
        if not name or name.startswith("/") or ".." in name.split("/") or "\0" in name:
            v.fail(name, f"invalid {v.name} {_q(name)} (expected a file name relative to root)")
    return tuple(str(name) for name in args)


def _root_in_location(v: _Validator, args: list[Token]) -> Path:
    """``alias PATH``: a location's ``root`` (it replaces the location's prefix)."""
    return _directory(v, args[0])


def _keepalive_requests(v: _Validator, args: list[Token]) -> int:
    number = _number(args[0])
    if number is None or number > 1_000_000_000:
        v.fail(
            args[0],
            f"invalid keepalive_requests {_q(args[0])} (expected a number of requests; "
            "0 closes every connection after its first response)",
        )
    return number


#: ``listen`` parameters of NGINX that localhost does not have.
_LISTEN_UNSUPPORTED = (
    "quic",
    "proxy_protocol",
    "reuseport",
    "deferred",
    "bind",
    "ipv6only=",
    "backlog=",
    "rcvbuf=",
    "sndbuf=",
    "so_keepalive=",
    "fastopen=",
    "accept_filter=",
    "setfib=",
)


def _listen(v: _Validator, args: list[Token]) -> tuple[str, int, bool, Token, bool]:
    """``listen [ADDRESS:]PORT [default_server] [ssl] [http2]``: ``(host, port,
    default, token, ssl)``, the flags in any order (``http2``: ``http2 on``,
    kept in ``Validator.http2_ports``).

    As NGINX: ``ADDRESS`` alone listens on port 80, ``PORT`` alone on every
    address (``*``); ``[IPv6]:PORT``, ``localhost:PORT`` and ``*:PORT`` work;
    ``default`` is the old spelling of ``default_server``; ``ssl`` makes the
    address speak TLS.
    """
    token, *flags = args
    default = tls = http2 = False
    for flag in flags:
        if flag in ("default_server", "default") and not default:
            default = True
            continue
        if flag == "ssl" and not tls:
            tls = True
            continue
        if flag == "http2" and not http2:
            http2 = True
            v.http2_ports.add(id(token))
            continue
        if flag in ("default_server", "default", "ssl", "http2"):
            v.fail(flag, f"{_q(flag)} is given twice")
        known = flag.split("=", 1)[0] + ("=" if "=" in flag else "")
        if flag in _LISTEN_UNSUPPORTED or known in _LISTEN_UNSUPPORTED:
            v.fail(flag, f"listen parameter {_q(flag)} is not supported by localhost")
        expected = "expected default_server, ssl or http2"
        v.fail(flag, f"unknown listen parameter {_q(flag)} ({expected})")
    text = str(token)
    if text.startswith("unix:"):
        v.fail(token, "UNIX-domain sockets are not supported (expected [ADDRESS:]PORT)")
    address, port_text = "", text
    if text.startswith("["):
        close = text.find("]")
        address, rest = text[: close + 1], text[close + 1 :]
        if close < 0 or (rest and not rest.startswith(":")):
            v.fail(token, f"invalid listen address {_q(text)} (expected [IPv6]:PORT)")
        port_text = rest[1:] if rest else "80"
    elif ":" in text:
        address, _, port_text = text.rpartition(":")
    elif _number(text) is None:
        address, port_text = text, "80"
    port = _number(port_text)
    if port is None or not 1 <= port <= 65535:
        v.fail(token, f"invalid port in {_q(text)} (expected a number from 1 to 65535)")
    host = DEFAULT_HOST
    if address:
        host = _host(v, [Token.new_borrow_pos(token.type, address, token)])
    return host, port, default, token, tls


def _tls_file(v: _Validator, args: list[Token]) -> Path:
    """``ssl_certificate``/``ssl_certificate_key``: an existing file, relative
    to the configuration's folder (read and checked with the other TLS
    settings, ``_Validator.tls``)."""
    path = v.path_of(args[0])
    problem = _path_problem(path, "file")
    if problem:
        v.fail(args[0], f"{v.name} {_q(args[0])} {problem}{_resolved_note(args[0], path)}")
    return Path(_resolved(path))


def _tls_protocols(v: _Validator, args: list[Token]) -> tuple[str, ...]:
    from localhost.io.tls import OBSOLETE_PROTOCOLS, PROTOCOLS

    for arg in args:
        if arg in OBSOLETE_PROTOCOLS:
            v.fail(
                arg,
                f"ssl_protocols {_q(arg)} is not allowed (insecure, RFC 8996): "
                "use TLSv1.2 and TLSv1.3",
            )
        if arg not in PROTOCOLS:
            v.fail(arg, f"unknown TLS protocol {_q(arg)} (expected TLSv1.2 or TLSv1.3)")
    return tuple(dict.fromkeys(str(arg) for arg in args))


def _tls_ciphers(v: _Validator, args: list[Token]) -> str:
    """``ssl_ciphers``: checked by OpenSSL when the context is built (``_Validator.tls``)."""
    return str(args[0])


def _never(v: _Validator, args: list[Token]) -> None:
    """A directive the validator reads itself, before the table (``include``)."""
    raise AssertionError("read by the validator")


def _on_off(v: _Validator, args: list[Token]) -> bool:
    if args[0] not in ("on", "off"):
        v.fail(args[0], f'invalid value {_q(args[0])} (expected "on" or "off")')
    return str(args[0]) == "on"


def _count(v: _Validator, args: list[Token]) -> int:
    number = _number(args[0])
    if number is None or not 1 <= number <= 1_000_000:
        v.fail(args[0], f"invalid number {_q(args[0])} (expected 1 to 1000000)")
    return number


def _processes(v: _Validator, args: list[Token]) -> int:
    if args[0] == "auto":
        return os.cpu_count() or 1
    number = _number(args[0])
    if number is None or not 1 <= number <= 1024:
        v.fail(args[0], f"invalid worker_processes {_q(args[0])} (expected 1 to 1024, or auto)")
    return number


def _file(v: _Validator, args: list[Token]) -> Path:
    return _new_file(v, args[0])


def _log_path(v: _Validator, token: Token, standard: str) -> str:
    if token in (standard, STDOUT):
        return STDOUT
    return str(_new_file(v, token))


def _error_log(v: _Validator, args: list[Token]) -> tuple[str, str]:
    level = str(args[1]) if len(args) > 1 else "info"
    if level not in LOG_LEVELS:
        v.fail(args[1], f"invalid log level {_q(level)} (expected one of {', '.join(LOG_LEVELS)})")
    return _log_path(v, args[0], "stderr"), level


def _access_log(v: _Validator, args: list[Token]) -> Any:
    # The logs module reads the line (its FORMAT, buffer=, if=); imported
    # here because it imports this module.
    from localhost.modules.logs import access_log_line

    return access_log_line(v, args, lambda token: _log_path(v, token, "stdout"))


def _access_logs(v: _Validator, *scopes: _Scope) -> Any:
    """``access_log`` of a location or server block from its levels,
    innermost first (``localhost.modules.logs.access_logs``)."""
    from localhost.modules.logs import access_logs

    return access_logs(v, *scopes)


def _store(v: _Validator, args: list[Token]) -> Path | str:
    """``session_store PATH`` (a SQLite file) or a Redis URL: ``redis://HOST[:PORT][/DB]``,
    ``rediss://`` (TLS) or ``unix:///PATH[?db=DB]``, checked here and needing the
    ``redis`` package (the ``redis`` extra)."""
    token = args[0]
    if not is_redis_url(token):
        return _new_file(v, token)
    try:
        from redis.connection import parse_url
    except ImportError:
        extra = "pip install 'localhost[redis]'"
        v.fail(token, f"session_store {_q(token)} needs the redis package: {extra}")
    try:
        parts = parse_url(str(token))  # type: ignore[no-untyped-call]
    except ValueError as exc:
        v.fail(token, f"invalid Redis URL {_q(token)}: {_printable(str(exc))}")
    database = urlsplit(str(token)).path.lstrip("/") if not token.startswith("unix:") else ""
    if database and not database.isdigit():
        v.fail(token, f"invalid Redis URL {_q(token)}: the database must be a number")
    if "host" not in parts and "path" not in parts:
        v.fail(token, f"invalid Redis URL {_q(token)}: no host or socket path")
    return str(token)


# -- the protocol directive (non-HTTP server blocks) ---------------------------
#
# ``protocol http|echo|MODULE:CLASS``. A user's class is imported here, at
# load, so that a missing module or class stops the server at start with
# the directive's position; the class is kept in ``ServerBlock.protocol_class``
# (``localhost.server.protocols`` turns it into a connection factory).

#: What a server block with a protocol other than HTTP may contain; every other
#: directive, and any location block, is about HTTP and is an error there.
PROTOCOL_DIRECTIVES = frozenset({"host", "port", "listen", "protocol", "keepalive_timeout"})

#: The asyncio.Protocol methods a transport calls; a protocol class needs them all
#: (subclassing ``localhost.Protocol`` or ``asyncio.Protocol`` gives them defaults).
PROTOCOL_METHODS = (
    "connection_made",
    "data_received",
    "eof_received",
    "connection_lost",
    "pause_writing",
    "resume_writing",
)


def _dotted(text: str) -> bool:
    return all(part.isidentifier() for part in text.split("."))


def _protocol(v: _Validator, args: list[Token]) -> tuple[str | None, Any]:
    """``(protocol, class)``: ``(None, None)`` for http, ``("echo", None)``, or
    ``("MODULE:CLASS", the class)``, imported with the config's folder first on
    ``sys.path`` (then ``PYTHONPATH`` and the rest, as Python has them)."""
    token = args[0]
    text = str(token)
    if text == "http":
        return None, None
    if text == "echo":
        return "echo", None
    module_name, colon, attribute = text.partition(":")
    if not colon or not _dotted(module_name) or not _dotted(attribute):
        v.fail(
            token,
            f"unknown protocol {_q(token)} "
            "(expected http, echo or MODULE:CLASS, e.g. protocol upper:Upper)",
        )
    folder = _resolved(v.base)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    shown = _q(text)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if module_name == missing or module_name.startswith(missing + "."):
            v.fail(
                token,
                f'protocol {shown}: no module named "{_printable(missing)}" '
                f"(searched {_printable(folder)} and the Python path)",
            )
        v.fail(token, f'protocol {shown}: importing "{module_name}" failed: {exc}')
    except (Exception, SystemExit) as exc:
        v.fail(
            token,
            f'protocol {shown}: importing "{module_name}" failed: {type(exc).__name__}: {exc}',
        )
    found: Any = module
    for part in attribute.split("."):
        if not hasattr(found, part):
            where = getattr(module, "__file__", None) or module_name
            known = [name for name in dir(found) if not name.startswith("_")]
            close = difflib.get_close_matches(part, known, n=1)
            hint = f'; did you mean "{close[0]}"?' if close else ""
            v.fail(
                token,
                f'protocol {shown}: "{part}" not found in {_printable(str(where))}{hint}',
            )
        found = getattr(found, part)
    if not isinstance(found, type):
        v.fail(token, f'protocol {shown}: "{attribute}" is a {type(found).__name__}, not a class')
    try:
        inspect.signature(found).bind()
    except TypeError as exc:
        v.fail(
            token,
            f"protocol {shown}: the class must be callable with no arguments "
            f"(one object per connection): {exc}",
        )
    except ValueError:  # no signature to inspect (a class made in C): trust it
        pass
    missing_methods = [
        name for name in PROTOCOL_METHODS if not callable(getattr(found, name, None))
    ]
    if missing_methods:
        v.fail(
            token,
            f"protocol {shown}: the class has no {', '.join(missing_methods)} "
            "(subclass localhost.Protocol or asyncio.Protocol)",
        )
    return text, found


@dataclass(frozen=True)
class Directive:
    """One row of the directive table.

    ``derive``, for a directive a handler owns (``HandlerSpec.directives``),
    gives the value of the ``Location`` field of the same name from the
    location's scopes ``(location, server, top level)``, innermost first
    (``inherit`` for the usual rule); the loader's own directives are read by
    ``_Validator.make_location``. ``check``, when given, is called with the
    validator and the location's scopes once the location is complete (a
    check that needs several directives, such as importing an application
    with its ``wsgi_path``); it fails through ``Validator.fail``. A location
    holding a ``rootless`` directive (it answers by itself: a redirect, an
    application) needs no ``root``.
    """

    contexts: tuple[str, ...]
    min_args: int
    max_args: int | None
    convert: Converter
    repeatable: bool = False
    syntax: str = ""
    derive: Callable[[tuple[_Scope, _Scope, _Scope]], Any] | None = None
    check: Callable[[_Validator, tuple[_Scope, _Scope, _Scope]], None] | None = None
    rootless: bool = False
    derive_server: Callable[[tuple[_Scope, _Scope]], Any] | None = None


#: The loader's own directives. Handlers add theirs through the registry
#: (``HandlerSpec.directives``, merged at each ``loads``): ``cgi`` and
#: ``cgi_timeout`` live in ``localhost.handlers.cgi``, ``redirect`` in
#: ``localhost.handlers.redirect``.
DIRECTIVES: dict[str, Directive] = {
    "host": Directive((SERVER,), 1, 1, _host, syntax="host ADDRESS"),
    "port": Directive(
        (SERVER,), 1, None, _port_list, repeatable=True, syntax="port PORT [ssl] [http2]..."
    ),
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
    "session": Directive((SERVER, LOCATION), 1, 1, _on_off, syntax="session on|off"),
    "session_store": Directive((MAIN,), 1, 1, _store, syntax="session_store PATH|URL"),
    "session_timeout": Directive((MAIN,), 1, 1, _time, syntax="session_timeout TIME"),
    "worker_connections": Directive((MAIN,), 1, 1, _count, syntax="worker_connections NUMBER"),
    "worker_processes": Directive((MAIN,), 1, 1, _processes, syntax="worker_processes NUMBER|auto"),
    "worker_shutdown_timeout": Directive(
        (MAIN,), 1, 1, _time, syntax="worker_shutdown_timeout TIME"
    ),
    "worker_timeout": Directive((MAIN,), 1, 1, _time_or_off, syntax="worker_timeout TIME|off"),
    "pid": Directive((MAIN,), 1, 1, _file, syntax="pid PATH"),
    "error_log": Directive((MAIN,), 1, 2, _error_log, syntax="error_log PATH|stderr [LEVEL]"),
    "access_log": Directive(
        (MAIN, SERVER, LOCATION),
        1,
        None,
        _access_log,
        repeatable=True,
        syntax="access_log PATH|stdout|off [FORMAT [buffer=SIZE] [flush=TIME] [if=CONDITION]]",
    ),
    "client_header_timeout": Directive(
        (MAIN, SERVER), 1, 1, _time, syntax="client_header_timeout TIME"
    ),
    "client_body_timeout": Directive(
        (MAIN, SERVER), 1, 1, _time, syntax="client_body_timeout TIME"
    ),
    "keepalive_timeout": Directive((MAIN, SERVER), 1, 1, _time, syntax="keepalive_timeout TIME"),
    "keepalive_requests": Directive(
        (MAIN, SERVER), 1, 1, _keepalive_requests, syntax="keepalive_requests NUMBER"
    ),
    # NGINX's spellings (SYNONYMS, and listen for host + port).
    "listen": Directive(
        (SERVER,),
        1,
        None,
        _listen,
        repeatable=True,
        syntax="listen [ADDRESS:]PORT [default_server] [ssl] [http2]",
    ),
    # TLS (localhost.io.tls), NGINX's names and inheritance.
    "ssl_certificate": Directive((MAIN, SERVER), 1, 1, _tls_file, syntax="ssl_certificate FILE"),
    "ssl_certificate_key": Directive(
        (MAIN, SERVER), 1, 1, _tls_file, syntax="ssl_certificate_key FILE"
    ),
    "ssl_protocols": Directive(
        (MAIN, SERVER), 1, None, _tls_protocols, syntax="ssl_protocols TLSv1.2|TLSv1.3..."
    ),
    "ssl_ciphers": Directive((MAIN, SERVER), 1, 1, _tls_ciphers, syntax="ssl_ciphers CIPHERS"),
    "index": Directive((SERVER, LOCATION), 1, None, _default_file, syntax="index NAME..."),
    "autoindex": Directive((SERVER, LOCATION), 1, 1, _on_off, syntax="autoindex on|off"),
    "client_max_body_size": Directive(
        (MAIN, SERVER, LOCATION), 1, 1, _size, syntax="client_max_body_size SIZE"
    ),
    "alias": Directive((LOCATION,), 1, 1, _root_in_location, syntax="alias PATH"),
    # Read by the validator as it walks (_Validator.expand), in any context.
    "include": Directive((MAIN, SERVER, LOCATION), 1, 1, _never, syntax="include FILE|GLOB"),
    "send_timeout": Directive((MAIN, SERVER), 1, 1, _time, syntax="send_timeout TIME"),
    "protocol": Directive((SERVER,), 1, 1, _protocol, syntax="protocol http|echo|MODULE:CLASS"),
}


def _epoll(v: _Validator, args: list[Token]) -> str:
    if args[0] != "epoll":
        v.fail(args[0], f"invalid event method {_q(args[0])} (localhost uses epoll)")
    return "epoll"


#: NGINX tuning directives that localhost accepts so that NGINX files load,
#: and that change nothing here: it always sends files with ``sendfile``
#: where it can and sets TCP_NODELAY, has no hash tables to size, and lets
#: OpenSSL order the ciphers. Their values are still checked.
NO_EFFECT: dict[str, Directive] = {
    "sendfile": Directive((MAIN, SERVER, LOCATION), 1, 1, _on_off, syntax="sendfile on|off"),
    "tcp_nopush": Directive((MAIN, SERVER, LOCATION), 1, 1, _on_off, syntax="tcp_nopush on|off"),
    "tcp_nodelay": Directive((MAIN, SERVER, LOCATION), 1, 1, _on_off, syntax="tcp_nodelay on|off"),
    "types_hash_max_size": Directive(
        (MAIN, SERVER, LOCATION), 1, 1, _size, syntax="types_hash_max_size SIZE"
    ),
    "types_hash_bucket_size": Directive(
        (MAIN, SERVER, LOCATION), 1, 1, _size, syntax="types_hash_bucket_size SIZE"
    ),
    "server_names_hash_max_size": Directive(
        (MAIN,), 1, 1, _size, syntax="server_names_hash_max_size SIZE"
    ),
    "server_names_hash_bucket_size": Directive(
        (MAIN,), 1, 1, _size, syntax="server_names_hash_bucket_size SIZE"
    ),
    "ssl_prefer_server_ciphers": Directive(
        (MAIN, SERVER), 1, 1, _on_off, syntax="ssl_prefer_server_ciphers on|off"
    ),
    # In "events" (read at the top level: Loader.main_statements).
    "multi_accept": Directive((MAIN,), 1, 1, _on_off, syntax="multi_accept on|off"),
    "accept_mutex": Directive((MAIN,), 1, 1, _on_off, syntax="accept_mutex on|off"),
    "use": Directive((MAIN,), 1, 1, _epoll, syntax="use epoll"),
}
DIRECTIVES.update(NO_EFFECT)

#: What an ``events`` block may hold (only worker_connections does anything).
EVENTS_DIRECTIVES = frozenset({"worker_connections", "multi_accept", "accept_mutex", "use"})

BLOCKS: dict[str, tuple[str, ...]] = {
    "server": (MAIN,),
    "location": (SERVER, LOCATION),
    "types": (MAIN, SERVER, LOCATION),
    "upstream": (MAIN,),
}

#: NGINX's location modifiers (``location MODIFIER PATH``).
LOCATION_MODIFIERS = ("=", "^~", "~", "~*")

#: Other names a directive may not share a block with, beyond its synonym:
#: ``listen`` is NGINX's spelling of ``host`` + ``port``.
_SPELLINGS: dict[str, tuple[str, ...]] = {
    "listen": ("host", "port"),
    "host": ("listen",),
    "port": ("listen",),
}

#: An RFC 9110 token (a media type's type and subtype in a ``types`` block).
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


@dataclass(frozen=True)
class Overrides:
    """Settings the command line forces over the file's (``localhost --root
    DIR --port 8000 ...``), in every server block.

    ``host`` and ``port`` replace the address and port of every listen
    address (``host``/``port``/``listen``); ``root`` replaces each server
    block's ``root`` (a location with its own ``root`` or ``alias`` keeps
    it); ``listing`` turns ``directory_listing`` on everywhere;
    ``timeout_ms`` (milliseconds) sets ``client_header_timeout``,
    ``client_body_timeout``, ``keepalive_timeout`` and ``send_timeout``.
    A bad value is a ``ConfigError`` at ``command line:1:COLUMN``, the flag
    and its value shown as the line.
    """

    host: str | None = None
    port: int | None = None
    root: str | None = None
    listing: bool = False
    timeout_ms: int | None = None

    def tokens(self, validator: _Validator) -> dict[str, Token]:
        """Each given value as a token of the flags' own source (for messages)."""
        tokens: dict[str, Token] = {}
        for name, value in (("host", self.host), ("port", self.port), ("root", self.root)):
            if value is None:
                continue
            flag = f"--{name} "
            token = tokens[name] = Token("WORD", str(value), line=1, column=len(flag) + 1)
            validator.origins[id(token)] = _Source("command line", [flag + str(value)])
        return tokens


@dataclass
class TracedLocation:
    """A location as ``-T`` shows it: the model, the scopes it was made from
    (its own, merged with the locations it is nested in; its server's; the
    top level's), how deep it is nested (0: in the server block), and the
    name token of its block (None for the implicit ``location /``)."""

    location: Location
    scopes: tuple[_Scope, _Scope, _Scope]
    depth: int
    token: Token | None
    #: What the block itself sets (``scopes[0]`` includes what it inherits
    #: from the locations it is nested in).
    own: _Scope = field(default_factory=lambda: _Scope())


@dataclass
class TracedServer:
    """A server block as ``-T`` shows it: the model, its scope, its block's
    name token, and its locations in file order (a parent before the
    locations nested in it, the implicit ``location /`` last)."""

    server: ServerBlock
    scope: _Scope
    token: Token
    locations: list[TracedLocation]


@dataclass
class Trace:
    """What ``-T`` shows beside the model, gathered while loading (``explain``).

    ``sources``: every file read, the main one first, as ``(path, text)``;
    ``main``: the top level's scope; ``servers`` in file order;
    ``statements``: each directive's statement by the id of its name token
    (``scope.values[name][1]``); ``files``: the file of each token, by id.
    """

    sources: list[tuple[str, str]] = field(default_factory=list)
    main: _Scope | None = None
    servers: list[TracedServer] = field(default_factory=list)
    statements: dict[int, _Statement] = field(default_factory=dict)
    files: dict[int, str] = field(default_factory=dict)


@dataclass
class _Scope:
    """Directive values seen in one context: name -> (value, first token)."""

    values: dict[str, tuple[Any, Token]] = field(default_factory=dict)
    lists: dict[str, list[tuple[Any, Token]]] = field(default_factory=dict)

    def get(self, name: str, default: Any = None) -> Any:
        entry = self.values.get(name)
        return default if entry is None else entry[0]


class _Validator:
    def __init__(
        self,
        path: Path,
        text: str,
        directives: dict[str, Directive],
        overrides: Overrides | None = None,
    ) -> None:
        self.path = path
        self.directives = directives
        self.base = path.parent
        # At LF only, as the grammar counts lines (see the module docstring).
        self.main = _Source(str(path), text.split("\n"), _resolved(path))
        self.lines = self.main.lines
        #: The file of each token (by id: tokens live as long as their
        #: statements, which outlive the validation), and the file that
        #: messages without a token of their own are about.
        self.origins: dict[int, _Source] = {}
        self.current = self.main
        self.files = 1
        self.sources = [self.main]
        self.warnings: list[ConfigWarning] = []
        self.warning_order: list[tuple[int, int, int]] = []
        self.name = ""  # the directive being converted, for messages
        # The protocol directive: (host, port) -> (protocol, where it was set).
        self.listen_protocols: dict[tuple[str, int], tuple[str | None, Token]] = {}
        #: Named groups of the regex of the location being read: its strings
        #: (return, rewrite, try_files, add_header...) may use them as $NAME.
        self.location_names: frozenset[str] = frozenset()
        # listen ... default_server: (host, port) -> where it was set.
        self.default_servers: dict[tuple[str, int], Token] = {}
        #: id() of the port and listen tokens given the ``http2`` flag.
        self.http2_ports: set[int] = set()
        # id(server block) -> its listen addresses with the tokens that set them.
        self.address_tokens: dict[int, dict[tuple[str, int], Token]] = {}
        # One TLSSettings (and SSLContext) per distinct set of TLS settings.
        self.tls_settings: dict[tuple[Any, ...], TLSSettings] = {}
        self.overrides = overrides or Overrides()
        self.flags = self.overrides.tokens(self)
        #: For -T: the statement of each directive's name token, and what each
        #: server block and location was made from (``trace``).
        self.statements: dict[int, _Statement] = {}
        self.trace: Trace | None = None
        self.traced: list[TracedLocation] = []
        self.nesting = 0
        self.forced: dict[str, Any] = {}

    def source(self, line: int) -> str:
        """Line ``line`` (from 1) of the current file as shown under a message."""
        return self.current.line(line)

    def source_of(self, token: Token) -> _Source:
        """The file ``token`` comes from (the current one for a token made later)."""
        return self.origins.get(id(token), self.current)

    def register(self, statements: list[_Statement], source: _Source) -> None:
        """Remember ``source`` as the file of every token in ``statements``."""
        stack = list(statements)  # not recursive: blocks may nest thousands deep
        while stack:
            st = stack.pop()
            self.origins[id(st.name)] = source
            for arg in st.args:
                self.origins[id(arg)] = source
            if st.body:
                stack.extend(st.body)

    def included_from(self, source: _Source) -> tuple[Note, ...]:
        """A note per ``include`` that brought ``source`` in, innermost first."""
        notes = []
        while source.parent is not None and source.include is not None:
            token, parent = source.include, source.parent
            notes.append(
                Note(
                    token.line or 0,
                    token.column or 0,
                    f"{_printable(source.path)} is included from here",
                    parent.line(token.line or 0),
                    parent.path,
                )
            )
            source = parent
        return tuple(notes)

    def fail(
        self,
        token: Token | None,
        message: str,
        line: int = 0,
        column: int = 0,
        notes: tuple[Note, ...] = (),
    ) -> NoReturn:
        source = self.current if token is None else self.source_of(token)
        if token is not None:
            line, column = token.line or 0, token.column or 0
        notes += self.included_from(source)
        raise ConfigError(source.path, line, column, message, source.line(line), notes)

    def warn(self, token: Token, message: str) -> None:
        source = self.source_of(token)
        line, column = token.line or 0, token.column or 0
        self.warnings.append(ConfigWarning(source.path, line, column, message, source.line(line)))
        self.warning_order.append((source.order, line, column))

    def note(self, token: Token, message: str) -> Note:
        source = self.source_of(token)
        line, column = token.line or 0, token.column or 0
        path = source.path if source is not self.current else None
        return Note(line, column, message, source.line(line), path)

    def at(self, token: Token, here: Token) -> str:
        """Where ``token`` is, for a message about ``here``: ``line 3``, or
        ``sites/a.conf:3`` when the two are in different files."""
        source = self.source_of(token)
        if source is self.source_of(here):
            return f"line {token.line}"
        return f"{_printable(source.path)}:{token.line}"

    def path_of(self, token: Token) -> Path:
        if "\0" in token:
            self.fail(token, f"{self.name} {_q(token)}: a path cannot contain a NUL character")
        try:
            path = Path(token).expanduser()
        except RuntimeError:  # "~user" naming no user
            self.fail(token, f"{self.name} {_q(token)}: cannot find the home folder it names")
        return path if path.is_absolute() else (self.base / path)

    # -- include ------------------------------------------------------------

    def expand(self, statements: Iterable[_Statement]) -> Iterator[_Statement]:
        """``statements`` with every ``include`` replaced by the statements of
        the files it names (themselves expanded), in place."""
        for st in statements:
            if st.name == "include" and st.body is None:
                yield from self.expand(self.include(st))
            else:
                yield st

    def main_statements(self, statements: Iterable[_Statement]) -> Iterator[_Statement]:
        """The top level's statements (``expand``ed), with the body of an
        ``http { }`` or ``events { }`` block in place of the block, as NGINX
        users write them. Each may appear once and takes no values; ``http``
        holds what the top level holds but the process directives
        (``PROCESS_DIRECTIVES``) and those of ``events``, as in NGINX;
        ``events`` holds ``EVENTS_DIRECTIVES`` (only ``worker_connections``
        does anything: ``NO_EFFECT``).
        """
        seen: dict[str, Token] = {}
        for st in self.expand(statements):
            name = str(st.name)
            if st.body is None or name not in WRAPPERS:
                yield st
                continue
            self.current = self.source_of(st.name)
            self.name = name
            if st.args:
                self.fail(st.args[0], f'"{name}" block takes no values')
            first = seen.get(name)
            if first is not None:
                self.fail(
                    st.name, f'"{name}" block is duplicate (first at {self.at(first, st.name)})'
                )
            seen[name] = st.name
            for inner in self.expand(st.body):
                inner_name = str(inner.name)
                self.current = self.source_of(inner.name)
                if name == "events":
                    if inner_name not in EVENTS_DIRECTIVES or inner.body is not None:
                        self.fail(
                            inner.name,
                            f'{_q(inner_name)} is not supported in the "events" block '
                            "(worker_connections, multi_accept, accept_mutex, use epoll)",
                        )
                elif inner.body is not None and inner_name in WRAPPERS:
                    self.fail(inner.name, f'"{inner_name}" block is not allowed in "http"')
                elif inner.body is None and (
                    inner_name in PROCESS_DIRECTIVES or inner_name in EVENTS_DIRECTIVES
                ):
                    goes = '"events" or the top level' if inner_name in EVENTS_DIRECTIVES else ""
                    self.fail(
                        inner.name,
                        f'"{inner_name}" directive is not allowed in "http" '
                        f"(it goes in {goes or 'the top level'}, as in NGINX)",
                    )
                yield inner

    def include(self, st: _Statement) -> list[_Statement]:
        """The statements of the files ``include GLOB`` names, in sorted order.

        A relative GLOB is taken from the main file's folder (as NGINX takes it
        from its prefix), whichever file the include is in. A GLOB with
        wildcards may match nothing; a plain name must be an existing file.
        """
        including = self.current = self.source_of(st.name)
        self.name = "include"
        if len(st.args) != 1:
            where = st.args[1] if len(st.args) > 1 else st.name
            self.fail(where, 'invalid number of values in "include" (syntax: include FILE|GLOB)')
        token = st.args[0]
        path = self.path_of(token)
        if any(char in token for char in "*?["):
            written = Path(token).expanduser()
            if written.is_absolute():
                found = glob.glob(str(written))
            else:
                matches = glob.glob(str(written), root_dir=self.base)
                found = [str(self.base / match) for match in matches]
            files = [Path(match) for match in sorted(found)]
        else:
            files = [path]
        statements: list[_Statement] = []
        for file in files:
            problem = _path_problem(file, "file")
            if problem and file == path:
                self.fail(token, f"include {_q(token)} {problem}{_resolved_note(token, file)}")
            if problem:  # a match of the glob: its path says where it is
                self.fail(token, f"include {_q(token)}: {_printable(str(file))} {problem}")
            real = _resolved(file)
            chain = including.chain()
            if any(source.real == real for source in chain):
                trail = " -> ".join(_printable(s.path) for s in reversed(chain))
                self.fail(token, f"include cycle: {trail} -> {_printable(str(file))}")
            try:
                data = file.read_bytes()
            except OSError as exc:
                self.fail(token, f"include {_q(token)}: cannot read {file}: {exc.strerror or exc}")
            self.files += 1
            source = _Source(str(file), [], real, including, st.name, self.files)
            self.sources.append(source)
            self.current = source
            text = _decode(data, source.path, self.included_from(source))
            source.lines = text.split("\n")
            try:
                tree = _parser().parse(text)
            except lark.exceptions.UnexpectedInput as exc:
                _syntax_error(exc, text, self)
            parsed = _ToStatements().transform(tree)
            self.register(parsed, source)
            statements += parsed
            self.current = including
        return statements

    # -- walking ------------------------------------------------------------

    def scope(
        self, statements: Iterable[_Statement], context: str
    ) -> tuple[_Scope, list[_Statement]]:
        """Collect the directives of one context; return them and its child blocks."""
        scope = _Scope()
        blocks = []
        walked = self.main_statements(statements) if context == MAIN else self.expand(statements)
        for st in walked:
            if st.body is not None:
                self.current = self.source_of(st.name)
                allowed = BLOCKS.get(st.name)
                if allowed is None:
                    self.unknown(st, context)
                if context not in allowed:
                    self.fail(
                        st.name,
                        f'"{st.name}" block is not allowed in {_where(context)} '
                        f"({_allowed(allowed)})",
                    )
                if st.name == "types":
                    self.types(st, scope)
                    continue
                if st.name == "upstream":
                    self.upstream(st, scope)
                    continue
                blocks.append(st)
                continue
            self.directive(st, context, scope)
        return scope, blocks

    def types(self, block: _Statement, scope: _Scope) -> None:
        """``types { TYPE EXTENSION...; ... }``: extension (lower case, no dot)
        -> media type, into ``scope.values["types"]``. Several blocks in one
        context add up (``include mime.types`` beside a block of one's own); a
        later extension replaces an earlier one with a warning, as NGINX."""
        if block.args:
            self.fail(block.args[0], '"types" block takes no values')
        entry = scope.values.get("types")
        table: dict[str, str] = dict(entry[0]) if entry is not None else {}
        where: dict[str, Token] = {}
        for st in self.expand(block.body or []):
            self.current = self.source_of(st.name)
            media = str(st.name)
            if st.body is not None:
                self.fail(st.name, 'a "types" block holds "TYPE EXTENSION...;" lines, not blocks')
            main_type, slash, sub_type = media.partition("/")
            if not slash or not _TOKEN.fullmatch(main_type) or not _TOKEN.fullmatch(sub_type):
                self.fail(st.name, f"invalid media type {_q(media)} (expected TYPE/SUBTYPE)")
            if not st.args:
                self.fail(st.name, f"no extension for {_q(media)} (syntax: TYPE EXTENSION...)")
            for arg in st.args:
                extension = arg.lower()
                if not extension or "/" in extension or not extension.isprintable():
                    self.fail(arg, f"invalid extension {_q(arg)}")
                old = table.get(extension)
                if old is not None and old != media:
                    self.warn(
                        arg,
                        f"duplicate extension {_q(extension)}: {_q(media)} replaces {_q(old)}",
                    )
                table[extension] = media
                where.setdefault(extension, arg)
        scope.values["types"] = (MappingProxyType(table), block.name)

    # -- upstream groups (localhost.upstream; read by proxy_pass) -------------

    def upstream(self, block: _Statement, scope: _Scope) -> None:
        """``upstream NAME { server ADDRESS [weight=N] [max_fails=N]
        [fail_timeout=TIME] [backup] [down]; least_conn; ip_hash; keepalive N;
        keepalive_timeout TIME; }`` into ``scope.values["upstream"]`` (name ->
        ``Upstream``). Hostnames are resolved here, each address a server."""
        from localhost.upstream import Upstream, UpstreamServer, parse_address, resolve

        if len(block.args) != 1:
            where = block.args[1] if len(block.args) > 1 else block.name
            self.fail(
                where, 'invalid number of values in "upstream" (syntax: upstream NAME { ... })'
            )
        name_token = block.args[0]
        entry = scope.values.get("upstream")
        groups: dict[str, Any] = dict(entry[0]) if entry is not None else {}
        if str(name_token) in groups:
            first = groups[str(name_token)][1]
            self.fail(
                name_token,
                f"duplicate upstream {_q(name_token)} (first at {self.at(first, name_token)})",
            )
        servers: list[Any] = []
        method, method_token = "round_robin", None
        settings: dict[str, Any] = {}
        for st in self.expand(block.body or []):
            self.current = self.source_of(st.name)
            self.name = name = str(st.name)
            if st.body is not None:
                self.fail(st.name, f'"{name}" block is not allowed in an upstream block')
            if name == "server":
                if not st.args:
                    self.fail(
                        st.name,
                        'invalid number of values in "server" '
                        "(syntax: server ADDRESS [weight=N] ...)",
                    )
                address = st.args[0]
                if address.startswith("unix:"):
                    self.fail(
                        address, f"upstream server {_q(address)}: Unix sockets are not supported"
                    )
                try:
                    host, port = parse_address(str(address))
                except ValueError as exc:
                    self.fail(address, f"invalid upstream server address {_q(address)}: {exc}")
                options: dict[str, Any] = {}
                for arg in st.args[1:]:
                    key, equals, value = str(arg).partition("=")
                    if not equals and key in ("backup", "down"):
                        options[key] = True
                    elif key in ("weight", "max_fails") and equals:
                        number = _number(value)
                        if number is None or (key == "weight" and number == 0):
                            self.fail(
                                arg,
                                f"invalid {key} {_q(value)} (expected a whole number"
                                f"{' above 0' if key == 'weight' else ''})",
                            )
                        options[key] = number
                    elif key == "fail_timeout" and equals:
                        options[key] = _time(self, [Token.new_borrow_pos("WORD", value, arg)])
                    else:
                        self.fail(
                            arg,
                            f"invalid parameter {_q(arg)} "
                            "(weight=N, max_fails=N, fail_timeout=TIME, backup, down)",
                        )
                try:
                    addresses = resolve(host, port)
                except OSError as exc:
                    self.fail(address, f"host not found in upstream {_q(address)}: {exc}")
                for ip in addresses:
                    servers.append(UpstreamServer(ip, port, f"{host}:{port}", **options))
            elif name in ("least_conn", "ip_hash"):
                if st.args:
                    self.fail(st.args[0], f'"{name}" takes no values')
                if method_token is not None:
                    self.fail(
                        st.name,
                        f'"{name}": the balancing method is set already '
                        f"(at {self.at(method_token, st.name)})",
                    )
                method, method_token = name, st.name
            elif name in ("keepalive", "keepalive_timeout"):
                if len(st.args) != 1:
                    self.fail(
                        st.name,
                        f'invalid number of values in "{name}" '
                        f"(syntax: {name} {'NUMBER' if name == 'keepalive' else 'TIME'})",
                    )
                if name in settings:
                    self.fail(st.name, f'"{name}" directive is duplicate')
                settings[name] = (
                    _count(self, st.args) if name == "keepalive" else _time(self, st.args)
                )
            else:
                self.fail(
                    st.name,
                    f"unknown directive {_q(name)} in an upstream block "
                    "(server, least_conn, ip_hash, keepalive, keepalive_timeout)",
                )
        if not servers:
            self.fail(name_token, f'no "server" in upstream {_q(name_token)}')
        if method == "ip_hash" and any(s.backup for s in servers):
            self.fail(
                method_token or name_token,
                '"ip_hash" cannot be used with "backup" servers (as in NGINX)',
            )
        group = Upstream(str(name_token), tuple(servers), method, **settings)
        groups[str(name_token)] = (group, name_token)
        scope.values["upstream"] = (groups, block.name)

    def unknown(self, st: _Statement, context: str) -> NoReturn:
        """Fail on a name that is neither a directive nor a block, with a hint if one helps."""
        name = str(st.name)
        is_block = st.body is not None
        if is_block and name in self.directives:
            self.fail(st.name, f'"{name}" is a directive, not a block (it takes no "{{ }}")')
        message = f"unknown {'block' if is_block else 'directive'} {_q(name)}"
        if name in NGINX_EQUIVALENTS:
            message += f"; localhost calls it {NGINX_EQUIVALENTS[name]}"
        elif is_block and name in WRAPPERS:
            message += f'; "{name}" is read only at the top level'
        else:
            known = BLOCKS if is_block else {n: d.contexts for n, d in self.directives.items()}
            message += _did_you_mean(name, context, known)
        self.fail(st.name, message)

    def directive(self, st: _Statement, context: str, scope: _Scope) -> None:
        self.current = self.source_of(st.name)
        name = str(st.name)
        spec = self.directives.get(name)
        if spec is None:
            if name in BLOCKS:
                self.fail(st.name, f'"{name}" must be followed by a block in braces')
            self.unknown(st, context)
        if context not in spec.contexts:
            hint = ""
            if name == "alias":
                hint = "; in a server block, root is the same"
            self.fail(
                st.name,
                f'"{name}" directive is not allowed in {_where(context)} '
                f"({_allowed(spec.contexts)}{hint})",
            )
        count = len(st.args)
        if count < spec.min_args or (spec.max_args is not None and count > spec.max_args):
            where = (
                st.args[spec.max_args]
                if spec.max_args is not None and count > spec.max_args
                else st.name
            )
            self.fail(where, f'invalid number of values in "{name}" (syntax: {spec.syntax})')
        key = SYNONYMS.get(name, name)
        self.spelling(st.name, key, scope)
        if not spec.repeatable and key in scope.values:
            first = scope.values[key][1]
            self.fail(
                st.name, f'"{name}" directive is duplicate (first at {self.at(first, st.name)})'
            )
        self.name = name
        value = spec.convert(self, st.args)
        self.statements[id(st.name)] = st
        if spec.repeatable:
            scope.lists.setdefault(key, []).append((value, st.name))
        else:
            scope.values[key] = (value, st.name)

    def spelling(self, name: Token, key: str, scope: _Scope) -> None:
        """Fail when ``name`` is the other spelling of a setting already made in
        this block (``index`` after ``default_file``, ``listen`` after ``port``)."""
        others = _SPELLINGS.get(str(name), ())
        for other in (key, *others):
            entry = scope.values.get(other)
            first = entry[1] if entry is not None else None
            if first is None and scope.lists.get(other):
                first = scope.lists[other][0][1]
            if first is not None and str(first) != str(name):
                self.fail(
                    name,
                    f'"{name}" and "{first}" set the same thing: use one spelling in a block '
                    f'("{first}" at {self.at(first, name)})',
                )

    def config(self, statements: list[_Statement]) -> Config:
        self.forced = self.forced_values()
        main, blocks = self.scope(statements, MAIN)
        if self.trace is not None:
            self.trace.main = main
        servers = [self.server(block, main) for block in blocks]
        if not servers:
            self.current = self.main
            self.fail(None, 'no "server" block (at least one is required)', 1, 1)
        self.check_names(servers)
        self.check_tls([server for server, _ in servers])
        if self.trace is not None:
            self.trace.statements = self.statements
            self.trace.sources = [(s.path, "\n".join(s.lines)) for s in self.sources]
            self.trace.files = {key: source.path for key, source in self.origins.items()}
        order = dict(zip(map(id, self.warnings), self.warning_order, strict=True))
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
            worker_timeout=main.get("worker_timeout", DEFAULT_WORKER_TIMEOUT),
            pid=main.get("pid"),
            error_log=main.get("error_log", (STDOUT, "info"))[0],
            error_log_level=main.get("error_log", (STDOUT, "info"))[1],
            warnings=tuple(sorted(self.warnings, key=lambda w: order[id(w)])),
        )

    def forced_values(self) -> dict[str, Any]:
        """The command line's values (``Overrides``), converted and checked."""
        flags = self.flags
        forced: dict[str, Any] = {}
        self.name = "root"
        if "root" in flags:
            forced["root"] = (_directory(self, flags["root"]), flags["root"])
        if "host" in flags:
            forced["host"] = _host(self, [flags["host"]])
        if "port" in flags:
            forced["port"] = _ports(self, [flags["port"]])[0][0]
        return forced

    def server(self, block: _Statement, main: _Scope) -> tuple[ServerBlock, list[Token]]:
        if block.args:
            self.fail(block.args[0], '"server" block takes no values')
        scope, children = self.scope(block.body or [], SERVER)
        self.current = self.source_of(block.name)
        addresses, defaults, secure = self.addresses(block, scope)
        protocol, protocol_class = self.server_protocol(block, scope, children, addresses)
        if protocol is None and "root" in self.forced:
            scope.values["root"] = self.forced["root"]
        traced = self.traced = []
        names = [pair for names, _ in scope.lists.get("server_name", []) for pair in names]
        body_limit = _inherit("body_limit", DEFAULT_BODY_LIMIT, scope, main)
        error_pages = _pages(main, scope)
        locations: list[Location] = []
        seen: dict[tuple[str, str], Token] = {}
        for child in children:
            self.locations(child, scope, main, None, locations, seen)
        if ("", "/") not in seen and scope.get("root") is not None:
            implicit = self.make_location("/", _Scope(), scope, main, block.name.line or 0)
            locations.append(implicit)
            traced.append(TracedLocation(implicit, (_Scope(), scope, main), 0, None))
        locations.sort(key=lambda loc: len(loc.prefix), reverse=True)
        timeouts = Timeouts(
            client_header=_inherit("client_header_timeout", DEFAULT_HEADER_TIMEOUT, scope, main),
            client_body=_inherit("client_body_timeout", DEFAULT_BODY_TIMEOUT, scope, main),
            keepalive=_inherit("keepalive_timeout", DEFAULT_KEEPALIVE_TIMEOUT, scope, main),
            send=_inherit("send_timeout", DEFAULT_SEND_TIMEOUT, scope, main),
        )
        if self.overrides.timeout_ms is not None:
            seconds = self.overrides.timeout_ms / 1000
            timeouts = Timeouts(seconds, seconds, seconds, seconds)
        server_options = {
            name: row.derive_server((scope, main))
            for name, row in self.directives.items()
            if row.derive_server is not None
        }
        # port ... http2, listen ... http2: that address only.
        http2_addresses = frozenset(
            address for address, token in addresses.items() if id(token) in self.http2_ports
        )
        server = ServerBlock(
            options=MappingProxyType(server_options),
            addresses=tuple(addresses),
            server_names=tuple(dict.fromkeys(name for name, _ in names)),
            locations=tuple(locations),
            timeouts=timeouts,
            body_limit=body_limit,
            error_pages=error_pages,
            access_log=_access_logs(self, scope, main),
            line=block.name.line or 0,
            protocol=protocol,
            protocol_class=protocol_class,
            keepalive_requests=_inherit(
                "keepalive_requests", DEFAULT_KEEPALIVE_REQUESTS, scope, main
            ),
            default_server=frozenset(defaults),
            # ALPN's list is the certificate context's, shared by the block's
            # TLS addresses: an http2 flag on one of them offers h2 on all.
            tls=self.tls(
                scope, main, bool(server_options.get("http2")) or bool(http2_addresses & secure)
            ),
            ssl_addresses=frozenset(secure),
            http2_addresses=http2_addresses,
        )
        self.address_tokens[id(server)] = addresses
        if self.trace is not None:
            self.trace.servers.append(TracedServer(server, scope, block.name, traced))
        return server, [token for _, token in names]

    def addresses(
        self, block: _Statement, scope: _Scope
    ) -> tuple[dict[tuple[str, int], Token], list[tuple[str, int]], set[tuple[str, int]]]:
        """A server block's listen addresses, each with the token that set it,
        those it is the ``default_server`` of, and those it lists with ``ssl``.

        ``host`` + ``port`` (one host, several ports) or NGINX's ``listen``
        (one address each); the command line's ``--host``/``--port`` replace
        the address and the port of every one.
        """
        listens = scope.lists.get("listen")
        entries: list[tuple[str, int, bool, Token, bool]] = []
        if listens:
            entries = [entry for entry, _ in listens]
        elif "port" in scope.lists:
            host = scope.get("host", DEFAULT_HOST)
            entries = [
                (host, port, False, token, tls)
                for ports, _ in scope.lists["port"]
                for port, token, tls in ports
            ]
        elif "port" not in self.forced:
            self.fail(block.name, 'server block has no "port" directive (required; or "listen")')
        forced = self.forced
        if not entries:
            token = self.flags["port"]
            entries = [(scope.get("host", DEFAULT_HOST), forced["port"], False, token, False)]
        if "host" in forced or "port" in forced:
            entries = [
                (forced.get("host", host), forced.get("port", port), default, token, tls)
                for host, port, default, token, tls in entries
            ]
        addresses: dict[tuple[str, int], Token] = {}
        defaults: list[tuple[str, int]] = []
        secure: set[tuple[str, int]] = set()
        for host, port, default, token, tls in entries:
            if tls:
                secure.add((host, port))
            first = addresses.get((host, port))
            if first is not None and not forced:
                self.fail(
                    token,
                    f"duplicate listen address {_addr(host, port)} in one server "
                    f"(first at {self.at(first, token)})",
                )
            addresses.setdefault((host, port), token)
            if not default:
                continue
            other = self.default_servers.get((host, port))
            if other is not None:
                self.fail(
                    token,
                    f"a second default_server for {_addr(host, port)} "
                    f"(the first at {self.at(other, token)})",
                    notes=(self.note(other, "the first default_server"),),
                )
            self.default_servers[(host, port)] = token
            defaults.append((host, port))
        return addresses, defaults, secure

    # -- TLS ------------------------------------------------------------------

    def tls(self, scope: _Scope, main: _Scope, http2: bool = False) -> TLSSettings | None:
        """A block's TLS settings, each inherited from the top level when not
        set here (NGINX's http → server), with its context built once per
        distinct settings; None without ``ssl_certificate``. A file that
        cannot be read, is not PEM, a key that does not match the
        certificate, a cipher string OpenSSL rejects: an error at the
        directive. An expired certificate: a warning."""
        from localhost.io.tls import TLSConfigError, certificate_expiry, make_context, probe_ktls

        def setting(name: str) -> tuple[Any, Token | None]:
            for level in (scope, main):
                entry = level.values.get(name)
                if entry is not None:
                    return entry
            return None, None

        certificate, certificate_token = setting("ssl_certificate")
        if certificate is None:
            return None
        assert certificate_token is not None
        key, key_token = setting("ssl_certificate_key")
        if key is None:
            self.fail(
                certificate_token,
                'no "ssl_certificate_key" is defined for the certificate '
                + _printable(str(certificate)),
            )
        assert key_token is not None
        protocols, _ = setting("ssl_protocols")
        ciphers, ciphers_token = setting("ssl_ciphers")
        protocols = protocols or DEFAULT_TLS_PROTOCOLS
        identity = (certificate, key, protocols, ciphers, http2)
        found = self.tls_settings.get(identity)
        if found is not None:
            return found
        ktls = probe_ktls()[0]
        try:
            context = make_context(certificate, key, protocols, ciphers, ktls=ktls, http2=http2)
        except TLSConfigError as exc:
            where = {"ssl_certificate": certificate_token, "ssl_ciphers": ciphers_token}
            self.fail(where.get(exc.setting) or key_token, _printable(str(exc)))
        expiry = certificate_expiry(certificate)
        if expiry is not None and expiry < time.time():
            day = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(expiry))
            self.warn(certificate_token, f"the certificate {certificate} expired on {day}")
        found = self.tls_settings[identity] = TLSSettings(
            certificate, key, protocols, ciphers, context, http2=http2
        )
        return found

    def check_tls(self, servers: list[ServerBlock]) -> None:
        """Every block on a TLS address (one that any block lists with ``ssl``)
        has a certificate, and speaks HTTP."""
        secure = {address for server in servers for address in server.ssl_addresses}
        if not secure:
            return
        for server in servers:
            tokens = self.address_tokens.get(id(server), {})
            for address in server.addresses:
                if address not in secure:
                    continue
                token = tokens.get(address)
                if server.protocol is not None:
                    self.fail(
                        token,
                        f"{_addr(*address)} is a TLS address (ssl), which serves HTTP only, "
                        f'not "protocol {_printable(server.protocol)}"',
                    )
                if server.tls is None:
                    self.fail(
                        token,
                        f'no "ssl_certificate" is defined for the TLS address '
                        f"{_addr(*address)} (ssl): set ssl_certificate and ssl_certificate_key "
                        "in this server block or at the top level",
                    )

    # -- the protocol directive ---------------------------------------------

    def server_protocol(
        self,
        block: _Statement,
        scope: _Scope,
        children: list[_Statement],
        addresses: dict[tuple[str, int], Token],
    ) -> tuple[str | None, Any]:
        """A server block's ``(protocol, class)`` (None for HTTP), checked.

        A non-HTTP block holds only ``PROTOCOL_DIRECTIVES``: the first other
        directive or block in it is an error. Every listen address speaks one
        protocol: a block that disagrees with an earlier one on the same
        address is an error naming both, and so is a second non-HTTP block
        on one address (it would never be used: there is no Host to choose by).
        """
        entry = scope.values.get("protocol")
        protocol, protocol_class = entry[0] if entry is not None else (None, None)
        if protocol is not None:
            assert entry is not None
            stray = [
                token
                for name, (_, token) in scope.values.items()
                if name not in PROTOCOL_DIRECTIVES
            ]
            stray += [
                token
                for name, items in scope.lists.items()
                if name not in PROTOCOL_DIRECTIVES
                for _, token in items
            ]
            stray += [child.name for child in children]
            if stray:
                first = min(stray, key=lambda t: (t.line or 0, t.column or 0))
                kind = "block" if any(first is child.name for child in children) else "directive"
                self.fail(
                    first,
                    f'"{first}" {kind} is not allowed in a server block with '
                    f'"protocol {_printable(protocol)}" (line {entry[1].line}): it applies to '
                    f"HTTP only",
                    notes=(self.note(entry[1], "the protocol is set here"),),
                )
        for address, port_token in addresses.items():
            where = entry[1] if entry is not None else port_token
            earlier = self.listen_protocols.get(address)
            if earlier is None:
                self.listen_protocols[address] = (protocol, where)
                continue
            other, other_token = earlier
            shown = _addr(*address)
            if other != protocol:
                mine = "HTTP" if protocol is None else f'"{_printable(protocol)}"'
                theirs = "HTTP" if other is None else f'"{_printable(other)}"'
                self.fail(
                    where,
                    f"server blocks on {shown} disagree on the protocol: {mine} here, "
                    f"{theirs} at line {other_token.line} (one listen address speaks one "
                    "protocol)",
                    notes=(self.note(other_token, f"{theirs} on {shown} here"),),
                )
            if protocol is not None:
                self.fail(
                    where,
                    f'a second server block with "protocol {_printable(protocol)}" on {shown} '
                    f"(first at line {other_token.line}): it would never be used, a non-HTTP "
                    "address has one server block",
                    notes=(self.note(other_token, "the first one"),),
                )
        return protocol, protocol_class

    def locations(
        self,
        block: _Statement,
        server: _Scope,
        main: _Scope,
        parent: tuple[Location, _Scope] | None,
        out: list[Location],
        seen: dict[tuple[str, str], Token],
    ) -> Location:
        """Read one ``location`` block and the ones nested in it into ``out``
        (nested ones first, then it); returns it.

        ``location [=|^~|~|~*] PATH { }`` or ``location @NAME { }``. A nested
        location inherits its parent's settings (its own win); a prefix or
        exact one must lie under the parent's prefix; a regex one is asked
        before the server's regexes when the parent's prefix matched.
        """
        args = block.args
        self.current = self.source_of(block.name)
        # For -T, in file order: this location before those nested in it.
        slot, depth = len(self.traced), self.nesting
        self.traced.append(TracedLocation(Location("/"), (server, server, main), depth, None))
        syntax = "location [=|^~|~|~*] PATH { ... } or location @NAME { ... }"
        if not args or len(args) > 2:
            where = args[2] if len(args) > 2 else block.name
            self.fail(where, f'"location" takes a path, with an optional modifier ({syntax})')
        if len(args) == 2:
            modifier_token, path_token = args
            modifier = str(modifier_token)
            if modifier not in LOCATION_MODIFIERS:
                self.fail(
                    modifier_token,
                    f'unknown location modifier "{_printable(modifier)}" '
                    f"(expected =, ^~, ~ or ~*: {syntax})",
                )
        else:
            path_token = args[0]
            modifier = ""
            text = str(path_token)
            # NGINX also reads "=/path" as one word.
            if text.startswith("=") and len(text) > 1:
                modifier = "="
            elif text.startswith("@"):
                modifier = "@"
        text = str(path_token)
        if modifier == "=" and len(args) == 1:
            text = text[1:]
        pattern = None
        if modifier in ("~", "~*"):
            try:
                from localhost.modules.rewrite import python_regex  # NGINX's (?<name>...)

                pattern = re.compile(python_regex(text), re.IGNORECASE if modifier == "~*" else 0)
            except re.error as exc:
                column = (path_token.column or 0) + (exc.pos or 0)
                self.fail(
                    None,
                    f'invalid regular expression "{_printable(text)}": {exc.msg}',
                    path_token.line or 0,
                    column,
                )
            prefix = "/"
        elif modifier == "@":
            if len(text) < 2 or "/" in text:
                self.fail(
                    path_token, f'invalid named location "{_printable(text)}" (e.g. @fallback)'
                )
            if parent is not None:
                self.fail(path_token, "a named location cannot be nested in another location")
            prefix = text
        else:
            if not text.startswith("/"):
                self.fail(path_token, f'location path "{_printable(text)}" must start with "/"')
            prefix = text if modifier == "=" else (text.rstrip("/") or "/")
        # Plain and ^~ prefixes share one namespace, as in NGINX; the same
        # regex may appear again at another nesting level.
        key = (modifier if modifier not in ("", "^~") else "", text if pattern else prefix)
        if pattern is not None and parent is not None:
            key = (key[0], f"{parent[0].prefix} {key[1]}")
        if key in seen:
            first_at = self.at(seen[key], path_token)
            shown = _printable(text if pattern else prefix)
            self.fail(path_token, f'duplicate location "{shown}" (first at {first_at})')
        seen[key] = path_token
        outer_names = self.location_names
        if pattern is not None:
            self.location_names = frozenset(name.lower() for name in pattern.groupindex)
        own, nested_blocks = self.scope(block.body or [], LOCATION)
        self.location_names = outer_names
        self.current = self.source_of(block.name)
        root_entry = own.values.get("root")
        if root_entry is not None and root_entry[1] == "alias" and modifier not in ("", "^~"):
            self.fail(
                root_entry[1],
                '"alias" needs a prefix location (location /path or location ^~ /path); here, '
                "use root: the whole request path is appended to it",
            )
        parent_location = parent[0] if parent is not None else None
        if parent_location is not None:
            if parent_location.modifier not in ("", "^~"):
                self.fail(
                    block.name,
                    f'a location nested in "{parent_location.prefix}" (a '
                    f"{'regex' if parent_location.pattern else 'named or exact'} location): "
                    "only prefix locations may hold others",
                )
            if pattern is None and not _under(prefix, parent_location.prefix):
                self.fail(
                    path_token,
                    f'location "{prefix}" is outside the location "{parent_location.prefix}" it '
                    "is nested in",
                )
        scope = own if parent is None else _merged(parent[1], own)
        own_root = own.get("root")
        session = scope.get("session")
        rootless = [name for name, row in self.directives.items() if row.rootless]
        if (
            scope.get("root") is None
            and server.get("root") is None
            and not session
            and not any(name in scope.values for name in rootless)
        ):
            answers = " or ".join(f'"{name}"' for name in sorted(rootless))
            self.fail(
                path_token,
                f'location "{_printable(text)}" has no "root" (required unless the server has '
                f'one or the location has {answers} or "session on")',
            )
        alias = modifier in ("", "^~")
        if own_root is None and parent_location is not None and parent_location.alias:
            # The parent's root stands for its prefix: below it, the same folder.
            assert parent_location.root is not None
            if alias:
                rest = prefix[len(parent_location.prefix) :].lstrip("/")
                scope = _merged(scope, _Scope({"root": (parent_location.root / rest, path_token)}))
            else:
                prefix = parent_location.prefix
                alias = True
        elif own_root is None or modifier not in ("", "^~"):
            # The server's root (no location up the chain has one of its own),
            # or an =/regex location's root: the whole path is appended.
            alias = False
        location = replace(
            self.make_location(prefix, scope, server, main, path_token.line or 0, alias=alias),
            modifier=modifier,
            pattern=pattern,
        )
        children: list[Location] = []
        self.nesting += 1
        for child in nested_blocks:
            children.append(self.locations(child, server, main, (location, scope), out, seen))
        self.nesting -= 1
        location = replace(location, nested=tuple(c for c in children if c.pattern is not None))
        out.append(location)
        self.traced[slot] = TracedLocation(location, (scope, server, main), depth, block.name, own)
        return location

    def make_location(
        self,
        prefix: str,
        scope: _Scope,
        server: _Scope,
        main: _Scope,
        line: int,
        alias: bool | None = None,
    ) -> Location:
        own_root = scope.get("root")
        scopes = (scope, server, main)
        for row in self.directives.values():
            if row.check is not None:
                row.check(self, scopes)
        derived: dict[str, Any] = {}
        options: dict[str, Any] = {}
        for name, row in self.directives.items():
            if row.derive is not None:
                value = row.derive(scopes)
                (derived if name in _LOCATION_FIELDS else options)[name] = value
        # The session handler answers a location with its own "session on" and
        # nothing to serve: no root of its own, no CGI (the session is then
        # middleware in front of them).
        cgi_entries = scope.lists.get("cgi") or server.lists.get("cgi")
        options["types"] = _inherit("types", None, scope, server, main)
        default_files = _inherit("default_file", (DEFAULT_FILE,), scope, server)
        listing = self.overrides.listing or _inherit("directory_listing", False, scope, server)
        return Location(
            prefix=prefix,
            root=own_root if own_root is not None else server.get("root"),
            alias=own_root is not None if alias is None else alias,
            methods=_inherit("methods", None, scope, server),
            default_file=default_files[0],
            default_files=default_files,
            directory_listing=listing,
            body_limit=_inherit("body_limit", DEFAULT_BODY_LIMIT, scope, server, main),
            error_pages=_pages(main, server, scope),
            access_log=_access_logs(self, scope, server, main),
            session=_inherit("session", False, scope, server),
            session_handler=bool(scope.get("session")) and own_root is None and not cgi_entries,
            line=line,
            options=MappingProxyType(options),
            **derived,
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
                            f"(first at {self.at(first, name_token)})",
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


def _allowed(contexts: Iterable[str]) -> str:
    """Where a directive or block may appear: 'allowed only in "server" blocks'."""
    contexts = tuple(contexts)
    parts = ["at the top level"] if MAIN in contexts else []
    blocks = [f'"{c}"' for c in contexts if c != MAIN]
    if blocks:
        parts.append(f"in {' and '.join(blocks)} blocks")
    return f"allowed only {' and '.join(parts)}"


def _did_you_mean(name: str, context: str, known: dict[str, tuple[str, ...]]) -> str:
    """'; did you mean "port"?' for a name close to known ones, or "".

    The closest names win (``difflib`` ratio), those valid in ``context`` first
    on a tie; a name valid only elsewhere says where it is allowed, since it
    is the better guess even though it will not work here. Equally close
    names are all offered: "prot" is as close to "port" as to "root".
    """
    lowered = name.lower()
    matches = difflib.get_close_matches(lowered, list(known), n=3)
    if not matches:
        return ""
    score = {m: difflib.SequenceMatcher(None, lowered, m).ratio() for m in matches}
    best = max(score.values())
    matches.sort(key=lambda m: (context not in known[m], m))
    shown = [
        _q(m) if context in known[m] else f"{_q(m)} ({_allowed(known[m])})"
        for m in matches
        if score[m] == best
    ]
    return f"; did you mean {' or '.join(shown)}?"


def _addr(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


_LOCATION_FIELDS = frozenset(f.name for f in fields(Location))


def _under(path: str, prefix: str) -> bool:
    """Whether ``path`` is ``prefix`` or below it on a segment boundary."""
    return prefix == "/" or path == prefix or path.startswith(prefix + "/")


def _merged(outer: _Scope, inner: _Scope) -> _Scope:
    """A nested block's settings: ``inner``'s, else ``outer``'s (NGINX inheritance:
    a repeated directive set inside replaces the whole outer list)."""
    return _Scope({**outer.values, **inner.values}, {**outer.lists, **inner.lists})


def _inherit(name: str, default: Any, *scopes: _Scope) -> Any:
    for scope in scopes:
        if name in scope.values:
            return scope.values[name][0]
    return default


def _pages(*scopes: _Scope) -> ErrorPages:
    """error_page settings, outer scopes first so that inner ones override per
    code: an ``ErrorPages`` (the files by status, and the other targets)."""
    files: dict[int, Path] = {}
    targets: dict[int, ErrorTarget] = {}
    for scope in scopes:
        for entries, _ in scope.lists.get("error_page", []):
            for code, target in entries:
                if isinstance(target, ErrorTarget):
                    targets[code] = target
                    if target.path is not None:
                        files[code] = target.path
                    else:
                        files.pop(code, None)
                else:
                    files[code] = target
                    targets.pop(code, None)
    return ErrorPages(files, targets)


def _position(text: str, offset: int) -> tuple[int, int]:
    """Line and column (from 1) of character ``offset``, lines counted at LF."""
    offset = max(0, min(offset, len(text)))
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _indent(line: str) -> int:
    """The width of ``line``'s leading blanks, tabs to 8 columns."""
    return len(line[: len(line) - len(line.lstrip(" \t"))].expandtabs(8))


@dataclass
class _Open:
    """A "{" with the statement that opened it: its name and first value, if any."""

    brace: Token
    words: list[Token]

    def label(self) -> str:
        return " ".join(_printable(w) for w in self.words[:2])[:_MAX_QUOTED]


def _braces(text: str) -> tuple[list[_Open], list[tuple[_Open, Token]]]:
    """The blocks still open at the end of ``text`` (innermost last), and every
    block closed on the way with its "}". ``text`` must lex without error."""
    opened: list[_Open] = []
    closed: list[tuple[_Open, Token]] = []
    words: list[Token] = []
    for token in _parser().lex(text):
        if token.type in ("WORD", "STRING"):
            words.append(token)
        elif token.type == "LBRACE":
            opened.append(_Open(token, words))
            words = []
        else:
            if token.type == "RBRACE" and opened:
                closed.append((opened.pop(), token))
            words = []
    return opened, closed


def _unclosed(text: str, validator: _Validator) -> NoReturn:
    """Fail at the end of ``text``, naming the block left open.

    The block named is the innermost one still open, where the parser was.
    When a "}" inside it is indented unlike the line that opened the block it
    closes, that block probably lost its own "}" (every later "}" then closes
    the block around the one it was written for): a note points there too.
    """
    line, column = _position(text, len(text.rstrip(" \t\r\n\f")))
    try:
        opened, closed = _braces(text)
    except lark.exceptions.LarkError:  # not expected: the parser lexed it all
        opened, closed = [], []
    if not opened:  # not expected: the parser wanted a "}"
        validator.fail(None, 'unexpected end of file, expecting "}"', line, column)
    block = opened[-1]
    name = block.words[0] if block.words else block.brace
    label = block.label() or "{"
    message = (
        f'unexpected end of file: the "{label}" block opened at {name.line}:{name.column} '
        "is never closed"
    )
    notes = [validator.note(name, f'the "{label}" block opened here')]
    for inner, end in sorted(closed, key=lambda pair: pair[0].brace.start_pos or 0):
        if (inner.brace.start_pos or 0) < (block.brace.start_pos or 0):
            continue
        end_line = validator.source(end.line or 0)
        if end_line[: (end.column or 1) - 1].strip(" \t"):
            continue  # the "}" follows something on its line: no indentation to go by
        if _indent(end_line) != _indent(validator.source(inner.brace.line or 0)):
            first = inner.words[0] if inner.words else inner.brace
            notes.append(
                validator.note(
                    first,
                    f'the "{inner.label() or "{"}" block opened here may be the one missing '
                    f'its "}}": the "}}" at {end.line}:{end.column} that closes it is indented '
                    "differently",
                )
            )
            break
    validator.fail(None, message, line, column, tuple(notes))


def _character(char: str) -> str:
    """A character as a message shows it: "x", or U+2028 (LINE SEPARATOR)."""
    if char.isprintable() and not char.isspace():
        return f'"{char}"'
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" ({name})" if name else "")


def _syntax_error(
    exc: lark.exceptions.UnexpectedInput, text: str, validator: _Validator
) -> NoReturn:
    if isinstance(exc, lark.exceptions.UnexpectedCharacters):
        offset = exc.pos_in_stream if isinstance(exc.pos_in_stream, int) else len(text)
        line, column = _position(text, offset)
        char = text[offset : offset + 1]
        if char and char in "\"'":
            message = f"unterminated string (missing closing {char} on this line)"
        elif char:
            message = f"unexpected character {_character(char)}"
            if char.isspace():
                message += ": only spaces and tabs separate values"
        else:
            message = "unexpected end of file"
        validator.fail(None, message, line, column)
    if isinstance(exc, lark.exceptions.UnexpectedToken) and exc.token.type != "$END":
        token = exc.token
        offset = token.start_pos if isinstance(token.start_pos, int) else len(text)
        line, column = _position(text, offset)
        if token.type == "RBRACE":
            message = 'unexpected "}": no block is open here'
        elif token.type == "LBRACE":
            before = validator.source(line)[: column - 1]
            message = (
                'unexpected "{": a block\'s "{" goes on the line of its name (server {)'
                if not before.strip(" \t\f")
                else 'unexpected "{": a block needs a name first (server {)'
            )
        elif token.type == "STRING":
            message = (
                f"unexpected quoted {_q(token[1:-1])}: a directive or block name is not quoted"
            )
        else:
            message = f"unexpected {_q(token)}"
        validator.fail(None, message, line, column)
    _unclosed(text, validator)


# -- for the directive rows of handler modules (``HandlerSpec.directives``) ------

#: What a converter receives: ``fail(token, message)``, ``warn``,
#: ``path_of(token)`` and ``name`` (the directive being converted).
Validator = _Validator
#: The directives seen in one context (``get(name)``, ``lists[name]``).
Scope = _Scope
quote = _q
printable = _printable
path_problem = _path_problem
resolved_note = _resolved_note
time_value = _time
size_value = _size
on_off = _on_off
inherit = _inherit


def _directive_table() -> dict[str, Directive]:
    """``DIRECTIVES`` with every registered handler's own rows.

    Raises ``ValueError`` when a handler claims a directive of the loader.
    """
    # Imported here: the handler modules import this one (for ``Directive``)
    # and config.model, so a module-level import would be a cycle.
    from localhost.handlers.base import directives
    from localhost.modules.base import directives as module_directives

    table = dict(DIRECTIVES)
    for name, row in [*directives().items(), *module_directives().items()]:
        if name in table:
            raise ValueError(f"directive {name!r} is already owned; a module cannot own it")
        table[name] = row
    return table


def _decode(data: bytes, path: str, notes: tuple[Note, ...] = ()) -> str:
    """The text of a configuration file's bytes: UTF-8, a leading byte-order
    mark skipped. Raises ``ConfigError`` at the first invalid byte."""
    data = data.removeprefix(BOM.encode())
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        start = before.rfind(b"\n") + 1
        column = len(before[start:].decode("utf-8", "replace")) + 1
        source = data[start:].split(b"\n", 1)[0].removesuffix(b"\r").decode("utf-8", "replace")
        message = f"invalid UTF-8 (byte 0x{data[exc.start]:02x})"
        raise ConfigError(path, line, column, message, source, notes) from None


def _read(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            str(path), 0, 0, f"cannot read the configuration file: {exc.strerror or exc}"
        ) from None
    return _decode(data, str(path))


def load(path: str | Path, overrides: Overrides | None = None) -> Config:
    """Parse and validate the configuration file at ``path`` (UTF-8, an
    optional byte-order mark, LF or CRLF line ends), with the command line's
    ``overrides`` applied.

    Relative paths inside the file, and in the files it includes, are taken
    relative to the file's folder. Raises ``ConfigError``
    (``PATH:LINE:COLUMN: message``, naming the included file when the
    problem is in one) for every problem, including a file that cannot be
    read (line 0). Problems that do not stop the server are in the result's
    ``warnings``.
    """
    path = Path(path)
    return loads(_read(path), path, overrides)


def loads(text: str, path: str | Path = "<string>", overrides: Overrides | None = None) -> Config:
    """Parse and validate configuration ``text`` as if read from ``path``.

    A leading byte-order mark (U+FEFF) is skipped. Raises ``ConfigError``.
    """
    return _validate(text, Path(path), overrides, None)


def explain(path: str | Path, overrides: Overrides | None = None) -> tuple[Config, Trace]:
    """``load`` plus what ``-T`` shows beside the model (``Trace``): every
    file read, and the scopes each server block and location was made from."""
    path = Path(path)
    trace = Trace()
    return _validate(_read(path), path, overrides, trace), trace


def explains(
    text: str, path: str | Path = "<string>", overrides: Overrides | None = None
) -> tuple[Config, Trace]:
    """``explain`` of ``text`` as if read from ``path``."""
    trace = Trace()
    return _validate(text, Path(path), overrides, trace), trace


def _validate(text: str, path: Path, overrides: Overrides | None, trace: Trace | None) -> Config:
    text = text.removeprefix(BOM)
    validator = _Validator(path, text, _directive_table(), overrides)
    validator.trace = trace
    try:
        tree = _parser().parse(text)
    except lark.exceptions.UnexpectedInput as exc:
        _syntax_error(exc, text, validator)
    statements = _ToStatements().transform(tree)
    validator.register(statements, validator.main)
    return validator.config(statements)
