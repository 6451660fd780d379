"""log_format, and access_log's format and conditions (ngx_http_log_module)."""

from __future__ import annotations

from typing import Any

from localhost.modules.base import NO_STEPS, ModuleSpec, Steps

DIRECTIVES: dict[str, Any] = {}


def build(server: Any, location: Any) -> Steps:
    """The steps of this module for ``location`` (None: the server block's)."""
    return NO_STEPS


SPEC = ModuleSpec("logs", DIRECTIVES, build, order=90)
