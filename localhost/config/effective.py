"""The effective configuration, as ``localhost -T`` prints it (like ``nginx -T``).

First every file read, whole, each under ``# configuration file PATH:`` (the
main file, then each included one in the order it was read); then the
configuration as the server runs it: includes expanded, defaults filled in,
relative paths resolved, the command line's overrides applied. Each server
block shows its listen addresses (``listen``, with ``default_server``), names,
timeouts and ``keepalive_requests``; each location its effective ``root``
(and whether it replaces the prefix or has the path appended), ``index``,
``directory_listing``, ``methods``, ``body_limit``, ``error_page`` targets
(a file, a URI, a named location or a redirect), which handler answers each
method, and the other directives that apply to it as written, those
inherited from an outer level marked so.

The text is in the configuration syntax, with ``#`` comments for what is not
a setting, and is made by ``render(config, trace)`` from what
``loader.explain`` returns. Nothing here runs on a request.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from localhost.config.loader import (
    LOCATION,
    MAIN,
    SERVER,
    SYNONYMS,
    Directive,
    Trace,
    TracedLocation,
    TracedServer,
    _directive_table,
    _Scope,
    _Statement,
)
from localhost.config.model import STDOUT, Config, Location

INDENT = "    "

#: Directives shown from the model (their effective values), not as written.
MODEL_DIRECTIVES = frozenset(
    {
        "host",
        "port",
        "listen",
        "server_name",
        "root",
        "default_file",
        "directory_listing",
        "methods",
        "body_limit",
        "error_page",
        "session",
        "session_store",
        "session_timeout",
        "worker_connections",
        "worker_processes",
        "worker_shutdown_timeout",
        "worker_timeout",
        "pid",
        "error_log",
        "client_header_timeout",
        "client_body_timeout",
        "keepalive_timeout",
        "send_timeout",
        "ssl_certificate",
        "ssl_certificate_key",
        "ssl_protocols",
        "ssl_ciphers",
        "keepalive_requests",
        "protocol",
        "include",
        *SYNONYMS,
    }
)

#: Directives that make one list together: the innermost level that sets any
#: of them gives them all (NGINX's access rules; the rewrite module's program).
GROUPS = (("allow", "deny"), ("rewrite", "return"))

_UNITS = (("h", 3600), ("m", 60), ("s", 1))
_SIZES = (("g", 1024**3), ("m", 1024**2), ("k", 1024))


def time_text(seconds: float) -> str:
    """``75s``, ``2m``, ``1h``, ``500ms``: a time as the configuration writes it."""
    if seconds <= 0 or math.isinf(seconds):
        return "off"
    for unit, size in _UNITS:
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1000)}ms"


def size_text(size: int) -> str:
    """``1m``, ``10k``, ``1500``: a size in bytes as the configuration writes it."""
    for unit, scale in _SIZES:
        if size and size % scale == 0:
            return f"{size // scale}{unit}"
    return str(size)


def quoted(value: str) -> str:
    """``value`` as one configuration word: quoted when it would not read back as one."""
    if value and not any(c.isspace() or c in ";{}#\"'" for c in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _line(depth: int, words: Iterable[str], comment: str = "") -> str:
    text = INDENT * depth + " ".join(words) + ";"
    return f"{text}  # {comment}" if comment else text


def _path(path: str | Path) -> str:
    """An absolute path, quoted when it needs it."""
    return quoted(os.path.abspath(path))


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Renderer:
    def __init__(self, config: Config, trace: Trace) -> None:
        self.config = config
        self.trace = trace
        self.table: dict[str, Directive] = _directive_table()
        self.out: list[str] = []

    def where(self, token: Any) -> str:
        """``FILE:LINE`` of a token the trace knows."""
        return "{}:{}".format(*self.position(token)[:2])

    def position(self, token: Any) -> tuple[str, int, int]:
        """The file, line and column of a token the trace knows."""
        path = self.trace.files.get(id(token), str(self.config.path))
        return os.path.abspath(path), token.line or 0, token.column or 0

    def statement(self, token: Any) -> _Statement | None:
        return self.trace.statements.get(id(token))

    def written(self, depth: int, token: Any, comment: str = "") -> None:
        """The directive of ``token`` as written (NGINX's name when it used one)."""
        st = self.statement(token)
        if st is None:
            return
        self.out.append(_line(depth, [str(st.name), *(quoted(str(a)) for a in st.args)], comment))

    def entries(self, scope: _Scope, name: str) -> list[Any]:
        """The name tokens of ``name`` in ``scope``, in file order."""
        if name in scope.values:
            return [scope.values[name][1]]
        return [token for _, token in scope.lists.get(name, [])]

    def others(
        self, depth: int, context: str, levels: list[tuple[_Scope, str]], own_only: bool = False
    ) -> None:
        """The directives of the table that apply in ``context`` and are not
        shown from the model, each from the innermost of ``levels`` that sets
        it (``(scope, label)``, innermost first; the label, when not empty,
        says where an inherited one comes from).

        A directive with a server phase of its own (``derive_server``: the
        server block's rewrites, try_files) is not inherited: it shows in the
        server block, and a location shows only its own.
        """
        done: set[str] = set()
        for name, row in self.table.items():
            if name in MODEL_DIRECTIVES or name in done or context not in row.contexts:
                continue
            if context == MAIN and (SERVER in row.contexts or LOCATION in row.contexts):
                continue
            group = next((g for g in GROUPS if name in g), (name,))
            rows = [self.table[member] for member in group if member in self.table]
            server_phase = any(r.derive_server is not None for r in rows)
            if context == SERVER and LOCATION in row.contexts and not server_phase:
                continue
            done.update(group)
            usable = levels[:1] if own_only or server_phase else levels
            for scope, label in usable:
                tokens = sorted(
                    (t for member in group for t in self.entries(scope, member)),
                    key=self.position,
                )
                if tokens:
                    for token in tokens:
                        self.written(depth, token, f"inherited from {label}" if label else "")
                    break

    # -- levels -------------------------------------------------------------

    def render(self) -> str:
        out = self.out
        for path, text in self.trace.sources:
            out.append(f"# configuration file {os.path.abspath(path)}:")
            out.append(text.rstrip("\n"))
            out.append("")
        if not self.trace.sources:
            out.append("# no configuration file: served as the command line says")
        out.append("# The effective configuration: includes expanded, defaults filled in,")
        out.append("# paths resolved, command-line overrides applied.")
        self.top()
        for traced in self.trace.servers:
            out.append("")
            self.server(traced)
        return "\n".join(out) + "\n"

    def top(self) -> None:
        config, out = self.config, self.out
        out.append(_line(0, ["worker_processes", str(config.worker_processes)]))
        out.append(_line(0, ["worker_connections", str(config.worker_connections)]))
        out.append(_line(0, ["worker_shutdown_timeout", time_text(config.worker_shutdown_timeout)]))
        out.append(_line(0, ["worker_timeout", time_text(config.worker_timeout)]))
        log = "stderr" if config.error_log == STDOUT else _path(config.error_log)
        out.append(_line(0, ["error_log", log, config.error_log_level]))
        if config.pid is not None:
            out.append(_line(0, ["pid", _path(config.pid)]))
        store = config.session_store
        shown = quoted(store) if isinstance(store, str) else _path(store)
        out.append(_line(0, ["session_store", shown]))
        out.append(_line(0, ["session_timeout", time_text(config.session_timeout)]))
        main = self.trace.main
        if main is not None:
            self.types(0, main, [])
            self.others(0, MAIN, [(main, "")])

    def server(self, traced: TracedServer) -> None:
        server, scope, out = traced.server, traced.scope, self.out
        main = self.trace.main or _Scope()
        out.append(f"server {{  # {self.where(traced.token)}")
        for host, port in server.addresses:
            words = ["listen", _address(host, port)]
            if (host, port) in server.default_server:
                words.append("default_server")
            if (host, port) in server.ssl_addresses:
                words.append("ssl")
            if (host, port) in server.http2_addresses:
                words.append("http2")
            out.append(_line(1, words))
        tls = server.tls
        if tls is not None:
            out.append(_line(1, ["ssl_certificate", _path(tls.certificate)]))
            out.append(_line(1, ["ssl_certificate_key", _path(tls.key)]))
            out.append(_line(1, ["ssl_protocols", *tls.protocols]))
            if tls.ciphers is not None:
                out.append(_line(1, ["ssl_ciphers", quoted(tls.ciphers)]))
        if server.server_names:
            out.append(_line(1, ["server_name", *(quoted(n) for n in server.server_names)]))
        if server.protocol is not None:
            out.append(_line(1, ["protocol", quoted(server.protocol)]))
            out.append(_line(1, ["keepalive_timeout", time_text(server.timeouts.keepalive)]))
            out.append("}")
            return
        timeouts = server.timeouts
        out.append(_line(1, ["client_header_timeout", time_text(timeouts.client_header)]))
        out.append(_line(1, ["client_body_timeout", time_text(timeouts.client_body)]))
        out.append(_line(1, ["keepalive_timeout", time_text(timeouts.keepalive)]))
        out.append(_line(1, ["send_timeout", time_text(timeouts.send)]))
        out.append(_line(1, ["keepalive_requests", str(server.keepalive_requests)]))
        root = scope.get("root")
        if root is not None:
            out.append(_line(1, ["root", _path(root)]))
        self.types(1, scope, [])
        self.others(1, SERVER, [(scope, ""), (main, "the top level")])
        open_depths: list[int] = []  # the locations whose "}" is still to come
        for entry in traced.locations:
            while open_depths and open_depths[-1] >= entry.depth:
                out.append(INDENT * (open_depths.pop() + 1) + "}")
            self.location(entry)
            open_depths.append(entry.depth)
        while open_depths:
            out.append(INDENT * (open_depths.pop() + 1) + "}")
        out.append("}")

    def location(self, traced: TracedLocation) -> None:
        location, (own, server_scope, main) = traced.location, traced.scopes
        depth = traced.depth + 1
        indent = INDENT * depth
        if location.modifier in ("~", "~*") and location.pattern is not None:
            head = f"location {location.modifier} {quoted(location.pattern.pattern)}"
        elif location.modifier in ("=", "^~"):
            head = f"location {location.modifier} {quoted(location.prefix)}"
        else:
            head = f"location {quoted(location.prefix)}"
        where = (
            self.where(traced.token)
            if traced.token is not None
            else "implicit: the server's root at /"
        )
        self.out.append(f"{indent}{head} {{  # {where}")
        inner = depth + 1
        self.out.append(INDENT * inner + f"# handlers: {self.handlers(location)}")
        if location.internal:
            self.out.append(_line(inner, ["internal"]))
        self.root(inner, traced)
        self.out.append(_line(inner, ["index", *(quoted(n) for n in location.default_files)]))
        listing = "on" if location.directory_listing else "off"
        self.out.append(_line(inner, ["directory_listing", listing]))
        if location.methods is not None:
            self.out.append(_line(inner, ["methods", *sorted(location.methods)]))
        else:
            self.out.append(INDENT * inner + "# methods: all")
        self.out.append(_line(inner, ["body_limit", size_text(location.body_limit)]))
        self.error_pages(inner, location)
        self.out.append(_line(inner, ["session", "on" if location.session else "off"]))
        outer = [(server_scope, "the server block"), (main, "the top level")]
        if location.options.get("types") is not None:
            self.types(inner, own, outer)
        self.others(inner, LOCATION, [(own, ""), *outer])

    def root(self, depth: int, traced: TracedLocation) -> None:
        """The location's root, and what becomes of the request path.

        Only a root the block sets itself is a directive here; an inherited
        one is a comment, so that the dump reads back the same (``root``
        written in a prefix location replaces the prefix).
        """
        location = traced.location
        if location.alias:
            why = f'replaces the prefix "{location.prefix}" (NGINX\'s alias)'
        else:
            why = "the request path is appended to it (NGINX's root)"
        if location.root is None:
            self.out.append(INDENT * depth + "# no root")
        elif "root" in traced.own.values:
            self.out.append(_line(depth, ["root", _path(location.root)], why))
        else:
            self.out.append(INDENT * depth + f"# root {_path(location.root)}: inherited; {why}")

    def error_pages(self, depth: int, location: Location) -> None:
        pages = location.error_pages
        targets = getattr(pages, "targets", {})
        shown: dict[tuple[str, ...], list[int]] = {}
        for code in sorted({*pages, *targets}):
            target = targets.get(code)
            if target is None:
                words: tuple[str, ...] = (_path(pages[code]), "a file")
            else:
                status = getattr(target, "status", None)
                sign = () if status is None else ("=" if status == 0 else f"={status}",)
                kind = {
                    "file": "a file",
                    "uri": "a URI: an internal redirect",
                    "named": "a named location",
                    "url": "a redirect",
                }.get(getattr(target, "kind", ""), "")
                words = (*sign, quoted(str(getattr(target, "text", target))), kind)
            shown.setdefault(words, []).append(code)
        for words, codes in shown.items():
            *values, kind = words
            self.out.append(_line(depth, ["error_page", *map(str, codes), *values], kind))

    def types(self, depth: int, scope: _Scope, outer: list[tuple[_Scope, str]]) -> None:
        """A ``types`` block set at this level, or where an inherited one comes from."""
        entry = scope.values.get("types")
        if entry is None:
            for other, label in outer:
                inherited = other.values.get("types")
                if inherited is not None:
                    count = len(inherited[0])
                    self.out.append(
                        INDENT * depth + f"# types: inherited from {label} ({count} extensions)"
                    )
                    return
            return
        by_type: dict[str, list[str]] = {}
        for extension, media in entry[0].items():
            by_type.setdefault(media, []).append(extension)
        self.out.append(INDENT * depth + "types {")
        for media, extensions in by_type.items():
            self.out.append(_line(depth + 1, [media, *(quoted(e) for e in extensions)]))
        self.out.append(INDENT * depth + "}")

    def handlers(self, location: Location) -> str:
        """Which handler answers each method: ``GET HEAD -> static; POST -> upload``."""
        from localhost.handlers.base import route

        by_specs: dict[tuple[str, ...], list[str]] = {}
        for method, specs in route(location).table.items():
            by_specs.setdefault(tuple(spec.name for spec in specs), []).append(method)
        if not by_specs:
            return "nothing (every method gets 405)"
        parts = [
            f"{' '.join(sorted(methods))} -> {', then '.join(names)}"
            for names, methods in sorted(by_specs.items(), key=lambda item: sorted(item[1]))
        ]
        return "; ".join(parts)


def render(config: Config, trace: Trace) -> str:
    """The text ``-T`` prints for ``config`` (see the module docstring)."""
    return _Renderer(config, trace).render()


def describe(path: str | Path, overrides: Any = None) -> str:
    """``render`` of the configuration file at ``path``. Raises ``ConfigError``."""
    from localhost.config.loader import explain

    config, trace = explain(path, overrides)
    return render(config, trace)
