"""The HTTP/2 directives (NGINX's ngx_http_v2_module names): ``http2 on|off`` and its limits.

``http2 on`` in a server block (or at the top level) serves HTTP/2 on that
block's addresses: over TLS when ALPN chooses ``h2``, in clear text when a
client opens with the connection preface (``localhost.server.http2``). The
address's default block decides, as the protocol is chosen before any Host.
``port 8443 ssl http2`` and ``listen 8443 ssl http2`` say the same per port.

Limits, in server and top-level context: ``http2_max_concurrent_streams``
(128), ``http2_max_field_size`` (16k: the decoded header list of a request),
``http2_recv_timeout`` (30s: a request's head and body), ``http2_idle_timeout``
(3m: a connection without streams). Values land in ``ServerBlock.options``
under the directives' names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lark import Token

from localhost.config.loader import (
    MAIN,
    SERVER,
    Directive,
    Scope,
    Validator,
    inherit,
    on_off,
    size_value,
    time_value,
)
from localhost.config.model import Location, ServerBlock
from localhost.modules.base import NO_STEPS, ModuleSpec, Steps


@dataclass(frozen=True, slots=True)
class Limits2:
    """A server block's HTTP/2 limits (NGINX's ``http2_*`` directives):
    streams, bytes and seconds."""

    max_concurrent_streams: int = 128
    max_field_size: int = 16 * 1024
    recv_timeout: float = 30.0
    idle_timeout: float = 180.0


DEFAULT_LIMITS = Limits2()


def _streams(v: Validator, args: list[Token]) -> int:
    text = str(args[0])
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        v.fail(args[0], f"invalid number of streams {text!r} (expected 1 to 65535)")
    return int(text)


def _field_size(v: Validator, args: list[Token]) -> int:
    size = int(size_value(v, args))
    if size < 1024:
        v.fail(args[0], "http2_max_field_size must be at least 1k")
    return size


def _seconds(v: Validator, args: list[Token]) -> float:
    seconds = float(time_value(v, args))
    if seconds <= 0:
        v.fail(args[0], f"{v.name} must be more than 0")
    return seconds


def _derive(name: str, default: Any) -> Any:
    def derive(scopes: tuple[Scope, Scope]) -> Any:
        return inherit(name, default, *scopes)

    return derive


DIRECTIVES = {
    "http2": Directive(
        (MAIN, SERVER), 1, 1, on_off, syntax="http2 on|off", derive_server=_derive("http2", False)
    ),
    "http2_max_concurrent_streams": Directive(
        (MAIN, SERVER),
        1,
        1,
        _streams,
        syntax="http2_max_concurrent_streams NUMBER",
        derive_server=_derive(
            "http2_max_concurrent_streams", DEFAULT_LIMITS.max_concurrent_streams
        ),
    ),
    "http2_max_field_size": Directive(
        (MAIN, SERVER),
        1,
        1,
        _field_size,
        syntax="http2_max_field_size SIZE",
        derive_server=_derive("http2_max_field_size", DEFAULT_LIMITS.max_field_size),
    ),
    "http2_recv_timeout": Directive(
        (MAIN, SERVER),
        1,
        1,
        _seconds,
        syntax="http2_recv_timeout TIME",
        derive_server=_derive("http2_recv_timeout", DEFAULT_LIMITS.recv_timeout),
    ),
    "http2_idle_timeout": Directive(
        (MAIN, SERVER),
        1,
        1,
        _seconds,
        syntax="http2_idle_timeout TIME",
        derive_server=_derive("http2_idle_timeout", DEFAULT_LIMITS.idle_timeout),
    ),
}


def _build(server: ServerBlock, location: Location | None) -> Steps:
    return NO_STEPS  # connection-level settings: nothing per request


SPEC = ModuleSpec("http2", DIRECTIVES, _build)
