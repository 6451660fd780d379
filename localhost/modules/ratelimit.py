"""limit_req, limit_conn and their zones (ngx_http_limit_req_module, ngx_http_limit_conn_module)."""

from __future__ import annotations

from typing import Any

from localhost.modules.base import NO_STEPS, ModuleSpec, Steps

DIRECTIVES: dict[str, Any] = {}


def build(server: Any, location: Any) -> Steps:
    """The steps of this module for ``location`` (None: the server block's)."""
    return NO_STEPS


SPEC = ModuleSpec("ratelimit", DIRECTIVES, build, order=30)
