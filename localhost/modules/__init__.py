"""Request-processing modules (NGINX's phases around the content handler),
registered by name (see ``localhost.modules.base``). A new module adds its
file and one ``register`` line below."""

from __future__ import annotations

from localhost.handlers.base import register as register_handler
from localhost.modules import access, compression, headers, http2, logs, ratelimit, rewrite
from localhost.modules.base import ModuleSpec, Phase, Rewrite, Steps, register

register(rewrite.SPEC)
register(access.SPEC)
register(ratelimit.SPEC)
register(headers.SPEC)
register(logs.SPEC)
register(compression.SPEC)
# gzip_static and its kin answer with a content handler of their own.
register_handler(compression.PRECOMPRESSED_SPEC)
register(http2.SPEC)

__all__ = ["ModuleSpec", "Phase", "Rewrite", "Steps", "register"]
