"""allow, deny, auth_basic (ngx_http_access_module, ngx_http_auth_basic_module)."""

from __future__ import annotations

from typing import Any

from localhost.modules.base import NO_STEPS, ModuleSpec, Steps

DIRECTIVES: dict[str, Any] = {}


def build(server: Any, location: Any) -> Steps:
    """The steps of this module for ``location`` (None: the server block's)."""
    return NO_STEPS


SPEC = ModuleSpec("access", DIRECTIVES, build, order=20)
