"""Content handlers, registered by name (see ``localhost.handlers.base``).

The order of the registry is each spec's ``priority``: redirect (100),
``websocket_exec`` (120), ``proxy_pass`` (140), a
WSGI application (150), an App (160), CGI (200), OPTIONS (300), the session handler (400),
upload (500), DELETE (600), static files and listings (900). A new handler
adds its module and one line below.
"""

from __future__ import annotations

from localhost.handlers import (
    cgi,
    delete,
    options,
    proxy,
    redirect,
    session,
    static,
    upload,
    websocket,
)
from localhost.handlers.base import (
    BodyPolicy,
    Exchange,
    Handler,
    HandlerSpec,
    allow_header,
    function_handler,
    methods,
    register,
)

register(redirect.SPEC)
register(proxy.SPEC)
register(websocket.SPEC)
register(cgi.SPEC)
register(options.SPEC)
register(session.SPEC)
register(upload.SPEC)
register(delete.SPEC)
register(static.SPEC)

# Application handlers live in localhost.app (imported after the base above).
from localhost.app import mount, wsgi  # noqa: E402

register(wsgi.SPEC)
register(mount.SPEC)

__all__ = [
    "BodyPolicy",
    "Exchange",
    "Handler",
    "HandlerSpec",
    "allow_header",
    "function_handler",
    "methods",
    "register",
]
