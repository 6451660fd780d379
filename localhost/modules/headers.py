"""add_header, expires, default_type, types, charset (response header fields)."""

from __future__ import annotations

from typing import Any

from localhost.modules.base import NO_STEPS, ModuleSpec, Steps

DIRECTIVES: dict[str, Any] = {}


def build(server: Any, location: Any) -> Steps:
    """The steps of this module for ``location`` (None: the server block's)."""
    return NO_STEPS


SPEC = ModuleSpec("headers", DIRECTIVES, build, order=50)
