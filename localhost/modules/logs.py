"""log_format, and access_log's format, buffer and condition (ngx_http_log_module).

``log_format NAME [escape=default|json|none] STRING...`` (top level) names a
format: its strings, concatenated, with variables (``localhost.variables``)
compiled here once. ``combined`` is predefined (``accesslog.COMBINED_TEXT``)
and cannot be redefined; names are case-insensitive, as NGINX compares them
when ``access_log`` looks one up.

``access_log PATH|stdout|off [FORMAT [buffer=SIZE] [flush=TIME] [if=CONDITION]]``
(top level, server, location) is read by ``access_log_line`` (the loader's
converter hands it the line) into an ``AccessLogLine``; ``access_logs``
turns a location's (or server block's) levels into ``Location.access_log``:

- the innermost level with any ``access_log`` line gives them all (several
  lines in one level write to several logs); a level without one inherits;
  ``off`` in a level cancels every line of that level (NGINX);
- a FORMAT is looked up among every ``log_format`` of the file, wherever it
  is written (NGINX wants it defined before use); an unknown one is an error
  at its column;
- ``if=CONDITION`` (a string with variables): the request is not logged when
  it renders empty or ``"0"``;
- ``buffer=SIZE``: the log is written once this many bytes are collected (by
  default 64k); one path has one size in the whole file (NGINX: "conflicting
  parameters"). ``flush=TIME`` is accepted (it needs ``buffer=``, as in
  NGINX) and has no further effect: every log is written at least once a
  second anyway. ``gzip``, ``syslog:`` and variables in the path are refused.

The result is None (off), the path alone when it is one log in the
combined format without parameters (the fast path of ``combined_line``), or
a tuple of ``accesslog.AccessLogTarget``. Nothing here runs per request:
the loader calls these while reading the file; the protocol writes the lines
(``accesslog.write_access_logs``).
"""

from __future__ import annotations

import difflib
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from lark import Token

from localhost.accesslog import COMBINED, AccessLogTarget, LogFormat
from localhost.config.loader import MAIN, Directive, Scope, Validator, quote, time_value
from localhost.config.model import STDOUT
from localhost.modules.base import NO_STEPS, ModuleSpec, Steps
from localhost.variables import LOG_ESCAPES, Template, VariableError, compile_template

LOG_FORMAT_SYNTAX = "log_format NAME [escape=default|json|none] STRING..."
ACCESS_LOG_SYNTAX = "access_log PATH|stdout|off [FORMAT [buffer=SIZE] [flush=TIME] [if=CONDITION]]"

_SIZE_UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3}
_PARAMETERS = frozenset({"buffer", "flush", "if", "gzip"})


@dataclass(frozen=True, slots=True, eq=False)
class FormatDefinition:
    """One ``log_format`` line: its ``format`` and the ``token`` of its name."""

    format: LogFormat
    token: Token


@dataclass(frozen=True, slots=True, eq=False)
class AccessLogLine:
    """One ``access_log`` line as written.

    ``path``: absolute, ``STDOUT``, or None for ``off``; ``format_name``:
    lower-case (``combined`` when none is given) and ``format_token`` where
    it was written (None: not written); ``buffer``: bytes (0: none given);
    ``condition``: the compiled ``if=`` string, or None.
    """

    path: str | None
    format_name: str = COMBINED.name
    format_token: Token | None = None
    buffer: int = 0
    condition: Template | None = None


def _fail_in(v: Validator, token: Token, offset: int, message: str) -> NoReturn:
    """Fail at character ``offset`` of ``token``'s value (a quoted value's
    text starts one column after its quote)."""
    column = (token.column or 0) + offset + (1 if token.type == "STRING" else 0)
    v.fail(None, message, token.line or 0, column)


def _template(v: Validator, token: Token, text: str, offset: int, what: str) -> Template:
    try:
        return compile_template(text)
    except VariableError as exc:
        _fail_in(v, token, offset + exc.offset, f"{what}: {exc.message}")


def _shape(parts: tuple[Any, ...]) -> list[str | None]:
    """``parts`` with variables as None and adjacent literals joined."""
    shape: list[str | None] = []
    for part in parts:
        if isinstance(part, str) and shape and isinstance(shape[-1], str):
            shape[-1] += part
        else:
            shape.append(part if isinstance(part, str) else None)
    return shape


def _joined(templates: list[Template]) -> list[Template]:
    """One template for ``templates``' strings concatenated, when it reads
    the same (it does not when a string ends in ``$name`` and the next starts
    with a name character: NGINX compiles each string alone); else them."""
    if len(templates) == 1:
        return templates
    try:
        whole = compile_template("".join(t.text for t in templates))
    except VariableError:  # "$uri" "x" reads $urix
        return templates
    if _shape(whole.parts) == _shape(tuple(p for t in templates for p in t.parts)):
        return [whole]
    return templates


def _log_format(v: Validator, args: list[Token]) -> FormatDefinition:
    name = str(args[0]).lower()
    if name == COMBINED.name:
        v.fail(args[0], 'log_format: "combined" is predefined and cannot be redefined')
    if not name or "=" in name:
        v.fail(args[0], f"log_format: invalid name {quote(args[0])} (syntax: {LOG_FORMAT_SYNTAX})")
    escape = "default"
    strings = args[1:]
    if strings and strings[0].startswith("escape="):
        escape = strings[0][len("escape=") :]
        if escape not in LOG_ESCAPES:
            v.fail(
                strings[0],
                f"log_format: unknown escaping {quote(escape)} (expected default, json or none)",
            )
        strings = strings[1:]
    if not strings:
        v.fail(args[0], f'log_format "{name}" has no string (syntax: {LOG_FORMAT_SYNTAX})')
    templates = [_template(v, token, str(token), 0, f'log_format "{name}"') for token in strings]
    return FormatDefinition(LogFormat(name, escape, _joined(templates)), args[0])


def _formats(v: Validator, main: Scope) -> dict[str, LogFormat]:
    """Every format by name (``combined`` too); a name twice is an error at
    the second."""
    found: dict[str, LogFormat] = {COMBINED.name: COMBINED}
    first: dict[str, Token] = {}
    for definition, _ in main.lists.get("log_format", []):
        name = definition.format.name
        if name in first:
            at = v.at(first[name], definition.token)
            v.fail(definition.token, f'duplicate log_format name "{name}" (first at {at})')
        first[name] = definition.token
        found[name] = definition.format
    return found


# Per load: each path's buffer= and where it was set, for the conflict check.
_BUFFERS: weakref.WeakKeyDictionary[Validator, dict[str, tuple[int, Token]]] = (
    weakref.WeakKeyDictionary()
)


def _size(v: Validator, token: Token, text: str, offset: int) -> int:
    lowered = text.lower()
    unit = _SIZE_UNITS.get(lowered[-1:], 1)
    digits = lowered[:-1] if unit != 1 else lowered
    if not (digits.isascii() and digits.isdigit() and 0 < int(digits) * unit < 2**31):
        _fail_in(
            v,
            token,
            offset,
            f"access_log: invalid buffer size {quote(text)} (expected bytes, or a number "
            "with k, m or g, e.g. buffer=32k)",
        )
    return int(digits) * unit


def access_log_line(
    v: Validator, args: list[Token], path_of: Callable[[Token], str]
) -> AccessLogLine:
    """The ``access_log`` line ``args``; ``path_of(token)`` is the loader's
    reading of the path (``STDOUT`` for ``stdout``, else absolute; it fails
    on a folder that does not exist).

    Fails (``v.fail``) on ``off`` with more values, ``syslog:``, a path with
    ``$``, a parameter in the FORMAT's place, an unknown parameter, ``gzip``,
    a bad size or time, ``flush=`` without ``buffer=``, an empty or faulty
    ``if=``, and a path given two buffer sizes.
    """
    first = args[0]
    if first == "off":
        if len(args) > 1:
            v.fail(args[1], 'access_log: "off" takes no other value')
        return AccessLogLine(None)
    if first.startswith("syslog:"):
        v.fail(first, "access_log: syslog is not supported (log to a file or stdout)")
    if "$" in first:
        _fail_in(v, first, first.index("$"), "access_log: variables in the path are not supported")
    path = path_of(first)
    if len(args) == 1:
        return AccessLogLine(path)
    name_token = args[1]
    if name_token.partition("=")[0] in _PARAMETERS:
        v.fail(
            name_token,
            f"access_log: the format comes before {quote(name_token)}: "
            f"access_log {first} combined {name_token}",
        )
    buffer = 0
    flush: Token | None = None
    condition: Template | None = None
    for token in args[2:]:
        key, equals, value = str(token).partition("=")
        if key == "buffer" and equals:
            buffer = _size(v, token, value, len("buffer="))
        elif key == "flush" and equals:
            time_value(v, [Token.new_borrow_pos(token.type, value, token)])
            flush = token
        elif key == "if" and equals:
            if not value:
                v.fail(token, "access_log: if= needs a condition, e.g. if=$loggable")
            condition = _template(v, token, value, len("if="), "access_log if=")
        elif key == "gzip":
            v.fail(token, "access_log: gzip is not supported (compress rotated files instead)")
        else:
            v.fail(
                token,
                f"access_log: invalid parameter {quote(token)} "
                f"(expected buffer=SIZE, flush=TIME or if=CONDITION; syntax: {ACCESS_LOG_SYNTAX})",
            )
    if flush is not None and not buffer:
        v.fail(flush, "access_log: flush= needs buffer=SIZE")
    if buffer:
        seen = _BUFFERS.setdefault(v, {})
        earlier = seen.get(path)
        if earlier is not None and earlier[0] != buffer:
            v.fail(
                args[0],
                f"access_log {quote(first)} already has another buffer size "
                f"(at {v.at(earlier[1], args[0])}): one file has one buffer",
            )
        seen[path] = (buffer, args[0])
    return AccessLogLine(path, str(name_token).lower(), name_token, buffer, condition)


def _unknown(v: Validator, line: AccessLogLine, formats: Mapping[str, LogFormat]) -> NoReturn:
    assert line.format_token is not None
    names = sorted(formats)
    close = difflib.get_close_matches(line.format_name, names, n=1, cutoff=0.7)
    if close:
        hint = f'; did you mean "{close[0]}"?'
    elif len(names) > 1:
        hint = f" (defined: {', '.join(names)})"
    else:
        hint = f" (define it at the top level: log_format {line.format_name} STRING...)"
    v.fail(line.format_token, f'access_log: unknown log format "{line.format_name}"{hint}')


def access_logs(v: Validator, *scopes: Scope) -> str | tuple[AccessLogTarget, ...] | None:
    """``Location.access_log`` (or ``ServerBlock.access_log``) from the
    levels ``scopes``, innermost first, the top level last (see the module
    docstring). Fails on a FORMAT no ``log_format`` defines, and on a
    ``log_format`` name defined twice."""
    formats = _formats(v, scopes[-1])
    lines: list[tuple[AccessLogLine, Token]] = []
    for scope in scopes:
        own = scope.lists.get("access_log", [])
        for line, _ in own:  # an overridden level's names are checked too
            if line.path is not None and line.format_name not in formats:
                _unknown(v, line, formats)
        if own and not lines:
            lines = own
    if not lines:
        return STDOUT
    if any(line.path is None for line, _ in lines):
        return None
    targets: list[AccessLogTarget] = []
    for line, _ in lines:
        assert line.path is not None
        found = formats[line.format_name]
        targets.append(AccessLogTarget(line.path, found, line.condition, line.buffer))
    if len(targets) == 1:
        only = targets[0]
        if only.format is COMBINED and only.condition is None and not only.buffer:
            return only.path
    return tuple(targets)


DIRECTIVES: dict[str, Any] = {
    "log_format": Directive(
        (MAIN,), 2, None, _log_format, repeatable=True, syntax=LOG_FORMAT_SYNTAX
    ),
}


def build(server: Any, location: Any) -> Steps:
    """No steps: logging is the protocol's, once the response is sent."""
    return NO_STEPS


SPEC = ModuleSpec("logs", DIRECTIVES, build, order=90)

__all__ = [
    "ACCESS_LOG_SYNTAX",
    "LOG_FORMAT_SYNTAX",
    "AccessLogLine",
    "FormatDefinition",
    "access_log_line",
    "access_logs",
]
