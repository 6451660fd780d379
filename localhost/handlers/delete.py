"""DELETE under a location's root (RFC 9110 §9.3.5).

DELETE removes one regular file inside the root (204); a folder, a hidden
(dot) name or anything resolving outside the root is 403, a missing file 404.
It acts only on a complete request: the body, if any, is read and dropped
first. Only where ``methods`` names DELETE explicitly.
"""

from __future__ import annotations

import logging
import os
import stat

from localhost.config.model import Location
from localhost.handlers.base import Exchange, HandlerSpec, function_handler
from localhost.handlers.static import FileCache, filesystem_path
from localhost.http.errors import HTTPError
from localhost.http.message import Request, Response

log = logging.getLogger("localhost")


def delete(request: Request, location: Location, files: FileCache) -> Response:
    """Remove the regular file the request path names (RFC 9110 §9.3.5) → 204.

    Raises ``HTTPError``: 404 when missing, 403 for a folder, a special
    file, a hidden name (a segment starting with ``.``: listings never show
    one and uploads never make one, so it belongs to the site, such as its
    ``.header.html`` or an upload in progress), or a path resolving outside
    the root.
    """
    root, real = filesystem_path(request, location, files)
    relative = request.path[len(location.prefix) :] if location.alias else request.path
    if "/." in "/" + request.path[len(location.prefix) :].lstrip("/"):
        raise HTTPError(403, f"{request.path}: hidden files are not deleted")
    path = os.path.join(root, relative.lstrip("/"))
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise HTTPError(404, f"{path} not found") from None
    if not stat.S_ISREG(st.st_mode) or path.rstrip("/") == root or request.path.endswith("/"):
        raise HTTPError(403, f"{path} is not a regular file")
    try:
        os.unlink(path)  # a symlink (inside the root) is removed, not its target
    except FileNotFoundError:
        raise HTTPError(404, f"{path} not found") from None
    except OSError as exc:
        raise HTTPError(403, f"cannot delete {path}: {exc.strerror}") from None
    log.info("deleted %s", path)
    return Response(204)


def _answer(exchange: Exchange) -> Response:
    location = exchange.location
    assert location is not None
    return delete(exchange.request, location, exchange.services.files)


_DELETE = frozenset({"DELETE"})


def _methods(location: Location) -> frozenset[str]:
    if location.root is not None and location.methods is not None and "DELETE" in location.methods:
        return _DELETE
    return frozenset()


SPEC = HandlerSpec(
    "delete", _methods, function_handler(_answer, name="DeleteHandler"), priority=600
)
