"""Request-processing modules (NGINX's phases around the content handler),
registered by name (see ``localhost.modules.base``). A new module adds its
file and one ``register`` line below."""

from __future__ import annotations

from localhost.modules import access, headers, logs, ratelimit, rewrite
from localhost.modules.base import ModuleSpec, Phase, Rewrite, Steps, register

register(rewrite.SPEC)
register(access.SPEC)
register(ratelimit.SPEC)
register(headers.SPEC)
register(logs.SPEC)

__all__ = ["ModuleSpec", "Phase", "Rewrite", "Steps", "register"]
