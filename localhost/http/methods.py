"""The request methods the server implements (RFC 9110 §9): sans-IO constants."""

from __future__ import annotations

#: Methods the server implements; any other well-formed method gets 501.
IMPLEMENTED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

#: Methods whose semantics are read-only (RFC 9110 §9.2.1).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

#: The Allow field of ``OPTIONS *``: the server as a whole (RFC 9110 §9.3.7).
OPTIONS_STAR_ALLOW = ", ".join(sorted(IMPLEMENTED_METHODS))
