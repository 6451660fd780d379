"""The WSGI "hello" of the applications benchmark: a 1 KiB text body for any request.

Served by localhost (``wsgi hello:app``), granian, waitress, gunicorn and bjoern
in ``bench/run.py --apps``; the body is built once, at import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

BODY = b"x" * 1024
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", "1024")]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """PEP 3333 application: ``200 OK`` with ``BODY`` (1024 bytes)."""
    start_response("200 OK", HEADERS)
    return [BODY]
