"""The request meta-variables of CGI (RFC 3875 §4.1) and WSGI (PEP 3333): pure functions.

CGI scripts (``handlers/cgi.py``) and WSGI applications (``app/wsgi.py``) see
a request the same way: ``SERVER_NAME`` from the Host (else the server
block's first plain name), and every request field as ``HTTP_NAME``. Both
builders use these.
"""

from __future__ import annotations

from typing import Any

from localhost.http.message import Headers, Request
from localhost.limits import LIMITS
from localhost.routing import split_host

# Fields that never become HTTP_* variables: httpoxy (CVE-2016-5385), and the
# body fields, which are CONTENT_LENGTH and CONTENT_TYPE instead.
SKIPPED_FIELDS = frozenset({"proxy", "content-length", "content-type"})

# Field name → variable name, filled as names are seen (bounded: a client
# cannot grow it past _KEYS_MAX with made-up names).
_KEYS: dict[str, str] = {}
_KEYS_MAX = LIMITS.env_key_cache_entries


def server_name(request: Request, local: tuple[str, int], server_names: tuple[str, ...]) -> str:
    """SERVER_NAME: the request's host without its port and brackets; without a
    Host, the first plain name of the block (not a wildcard or regex), else
    the local address."""
    host = split_host(request.host) if request.host else ""
    if not host:
        plain = (n for n in server_names if n and "*" not in n and n[0] not in ".~")
        host = next(plain, local[0])
    return host.strip("[]")


def scheme_variables(env: dict[str, Any], scheme: str) -> None:
    """Add ``REQUEST_SCHEME`` (``"http"`` or ``"https"``) and, on TLS,
    ``HTTPS=on`` to ``env``: what NGINX's fastcgi_params and Apache's CGI
    give scripts (not in RFC 3875, which predates TLS in CGI)."""
    env["REQUEST_SCHEME"] = scheme
    if scheme == "https":
        env["HTTPS"] = "on"


def add_http_variables(env: dict[str, Any], headers: Headers, join: str = ", ") -> None:
    """Add every field of ``headers`` to ``env`` as ``HTTP_NAME`` (RFC 3875 §4.1.18).

    Repeated fields are joined with ``join`` (Cookie with ``"; "``, RFC 9113
    §8.2.3). Skipped: ``SKIPPED_FIELDS``, and names holding ``_``, which
    would be confused with ``-`` (NGINX refuses them too). ``env`` must hold
    no ``HTTP_*`` variable before.
    """
    keys = _KEYS
    for name, value in headers:
        key = keys.get(name)
        if key is None:
            if name in SKIPPED_FIELDS or "_" in name:
                continue
            key = "HTTP_" + name.upper().replace("-", "_")
            if len(keys) < _KEYS_MAX:
                keys[name] = key
        if key in env:
            env[key] = f"{env[key]}{'; ' if name == 'cookie' else join}{value}"
        else:
            env[key] = value
