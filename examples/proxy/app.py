"""A WSGI application for gunicorn, served behind localhost's reverse proxy.

    gunicorn -b 127.0.0.1:9001 -w 2 app:application      # in examples/proxy/
    gunicorn -b 127.0.0.1:9002 -w 2 app:application
    python -m localhost examples/proxy/proxy.conf          # from the repository

Then http://127.0.0.1:8080/app/ answers from either gunicorn (round-robin),
and every other path is a static file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any


def application(
    environ: dict[str, Any], start_response: Callable[[str, list[tuple[str, str]]], Any]
) -> Iterable[bytes]:
    """Say which process answered, and what the proxy told it about the client."""
    lines = [
        f"pid {os.getpid()}",
        f"{environ['REQUEST_METHOD']} {environ.get('PATH_INFO', '')}",
        f"client {environ.get('HTTP_X_FORWARDED_FOR', '-')}",
        f"scheme {environ.get('HTTP_X_FORWARDED_PROTO', '-')}",
    ]
    body = ("\n".join(lines) + "\n").encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
