"""Static files: map the request path under a location's root and send the file.

Safety (DESIGN: "nothing escapes a root"): the path arriving here is already
percent-decoded once and normalised by the router; the file's real path
(symlinks resolved) must still be inside the root's real path, or the answer
is 403. Bodies are sent with ``os.sendfile`` from an open descriptor.
Validators (ETag, Last-Modified), preconditions (304, 412) and byte ranges
(206, 416) follow RFC 9110 §13–14 (``localhost.http.conditional``).
"""

from __future__ import annotations

import errno
import mimetypes
import os
import stat
from email.utils import formatdate
from pathlib import Path
from urllib.parse import quote

from localhost.config.model import Location
from localhost.handlers import autoindex
from localhost.handlers.redirect import redirect
from localhost.http.conditional import Unsatisfiable, byte_ranges, etag_for, precondition
from localhost.http.errors import HTTPError
from localhost.http.message import FileBody, Request, Response, encode_fields

_TEXT_TYPES = frozenset(
    {
        "application/javascript",
        "application/json",
        "application/xml",
        "image/svg+xml",
        "application/xhtml+xml",
    }
)
_content_types: dict[str, str] = {}
_real_roots: dict[Path, str] = {}

# The open-file cache: (id(location), request path) -> what serving it needs.
# Every hit is validated with one stat of the path (inode, device, size and
# modification time), so a changed, replaced or removed file is never served
# stale; files up to CACHE_BODY_MAX bytes are kept in memory and answered
# without opening them, and larger ones keep an open descriptor (up to
# CACHE_FDS of them) that each response duplicates for its sendfile.
CACHE_ENTRIES = 4096
CACHE_FDS = 256
CACHE_BODY_MAX = 64 * 1024  # bytes of one file kept in memory
CACHE_BODY_BUDGET = 32 * 1024 * 1024  # bytes of all files kept in memory
_CONDITIONAL = frozenset(
    {"if-match", "if-none-match", "if-modified-since", "if-unmodified-since", "range"}
)


class _Entry:
    __slots__ = ("lexical", "real", "key", "headers", "raw", "body", "size", "fd")

    def __init__(
        self,
        lexical: str,
        real: str,
        key: tuple[int, int, int, int, int],
        headers: list[tuple[str, str]],
        body: bytes | None,
        size: int,
    ) -> None:
        self.lexical = lexical
        self.real = real
        self.key = key
        self.headers = headers
        self.raw = encode_fields(headers) + b"Content-Length: %d\r\n" % size
        self.body = body
        self.size = size
        self.fd = -1


_files: dict[tuple[int, str], _Entry] = {}
_cached_bytes = 0
_held_fds = 0


def clear_cache() -> None:
    """Forget every cached file and root (after a reload: locations change)."""
    global _cached_bytes, _held_fds
    for entry in _files.values():
        if entry.fd >= 0:
            os.close(entry.fd)
    _files.clear()
    _real_roots.clear()
    _cached_bytes = _held_fds = 0


def _forget(key: tuple[int, str]) -> None:
    global _held_fds, _cached_bytes
    entry = _files.pop(key)
    if entry.fd >= 0:
        os.close(entry.fd)
        _held_fds -= 1
    if entry.body is not None:
        _cached_bytes -= entry.size


def _key(st: os.stat_result) -> tuple[int, int, int, int, int]:
    # ctime too: a chmod or chown changes nothing else, and must reach the
    # full path, which answers 403 for a file the server may no longer read.
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _remember(
    location: Location,
    request: Request,
    real: str,
    st: os.stat_result,
    headers: list[tuple[str, str]],
    fd: int,
) -> bytes | None:
    """Cache a file just served in full; returns its bytes when they are kept in memory."""
    global _cached_bytes, _held_fds
    if len(_files) >= CACHE_ENTRIES:
        clear_cache()
    body = None
    if st.st_size <= CACHE_BODY_MAX and _cached_bytes + st.st_size <= CACHE_BODY_BUDGET:
        body = os.pread(fd, st.st_size, 0)
        if len(body) != st.st_size:
            return None  # changing under our feet: do not cache
        _cached_bytes += st.st_size
    root = real_root(location.root) if location.root is not None else ""
    relative = request.path[len(location.prefix) :] if location.alias else request.path
    lexical = os.path.join(root, relative.lstrip("/"))
    if lexical != real and request.path.endswith("/"):
        lexical = real  # a default file: validate the file itself
    key = (id(location), request.path)
    if key in _files:
        _forget(key)
    entry = _files[key] = _Entry(lexical, real, _key(st), headers, body, st.st_size)
    if body is None and _held_fds < CACHE_FDS:
        entry.fd = os.dup(fd)
        _held_fds += 1
    return body


def _cached(request: Request, location: Location) -> Response | None:
    """The response for a cached file, or ``None`` to take the full path."""
    entry = _files.get((id(location), request.path))
    if entry is None:
        return None
    try:
        st = os.stat(entry.lexical)
    except OSError:
        st = None
    if st is None or _key(st) != entry.key:
        _forget((id(location), request.path))
        return None
    if request.headers.has_any(_CONDITIONAL):
        return None
    if entry.body is not None:
        return Response(200, entry.headers, entry.body, raw_fields=entry.raw)
    if entry.fd >= 0:
        # The held descriptor is the validated inode; each response gets its
        # own duplicate, so that closing one never affects another.
        fd = os.dup(entry.fd)
    else:
        try:
            fd = os.open(entry.real, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            return None
        if _key(os.fstat(fd)) != entry.key:
            os.close(fd)
            return None
    return Response(200, entry.headers, file=FileBody(fd, 0, entry.size), raw_fields=entry.raw)


def content_type(name: str) -> str:
    """Content-Type for a file name, from ``mimetypes``; text gets ``charset=utf-8``."""
    ext = os.path.splitext(name)[1].lower()
    known = _content_types.get(ext)
    if known is None:
        guessed = mimetypes.guess_type("x" + ext, strict=False)[0] or "application/octet-stream"
        if guessed.startswith("text/") or guessed in _TEXT_TYPES:
            guessed += "; charset=utf-8"
        known = _content_types[ext] = guessed
    return known


def real_root(root: Path) -> str:
    """The real path of a root directory (cached; roots are fixed by the config)."""
    real = _real_roots.get(root)
    if real is None:
        real = _real_roots[root] = os.path.realpath(root)
    return real


def inside(root: str, path: str) -> bool:
    """Whether real ``path`` is ``root`` or below it (both real, absolute paths)."""
    return path == root or path.startswith(root if root.endswith(os.sep) else root + os.sep)


def filesystem_path(request: Request, location: Location) -> tuple[str, str]:
    """``(real root, real file path)`` for the request path under ``location``.

    Raises ``HTTPError(403)`` when the resolved path leaves the root, and
    ``HTTPError(404)`` when the location has no root.
    """
    if location.root is None:
        raise HTTPError(404, "location has no root")
    root = real_root(location.root)
    relative = request.path[len(location.prefix) :] if location.alias else request.path
    joined = os.path.join(root, relative.lstrip("/"))
    real = os.path.realpath(joined)
    if not inside(root, real):
        raise HTTPError(403, f"{request.path} resolves outside the root")
    return root, real


def _stat_error(path: str, exc: OSError) -> HTTPError:
    """404 for a name no file can have (ENAMETOOLONG, as NGINX), else 403 (EACCES, ELOOP)."""
    status = 404 if exc.errno == errno.ENAMETOOLONG else 403
    return HTTPError(status, f"{path}: {exc.strerror}")


def _open_file(path: str, request: Request, location: Location) -> Response:
    if location.cgi and os.path.splitext(path)[1] in location.cgi:
        # Never send a script's source as a static file.
        raise HTTPError(403, f"{path} is a CGI script")
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (it is then
        # refused below); on a regular file the flag changes nothing.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise HTTPError(404, f"{path} not found") from None
    except OSError as exc:
        raise _stat_error(path, exc) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise HTTPError(403, f"{path} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    try:
        return _file_response(fd, st, path, request, location)
    except BaseException:
        os.close(fd)
        raise


def _file_response(
    fd: int, st: os.stat_result, path: str, request: Request, location: Location
) -> Response:
    """200, 206, 304 for the open file ``fd``; raises HTTPError 412 or 416."""
    etag = etag_for(st)
    validators = [("ETag", etag), ("Last-Modified", formatdate(st.st_mtime, usegmt=True))]
    status = precondition(request.headers, request.method, etag, st.st_mtime)
    if status == 304:
        os.close(fd)
        return Response(304, validators)
    if status == 412:
        raise HTTPError(412, f"precondition failed for {path}")
    size = st.st_size
    kind = content_type(path)
    headers = [("Content-Type", kind), ("Accept-Ranges", "bytes"), *validators]
    ranges = None
    if request.method == "GET":
        try:
            ranges = byte_ranges(request.headers, size, etag, st.st_mtime)
        except Unsatisfiable:
            raise HTTPError(
                416, f"no satisfiable range of {path}", [("Content-Range", f"bytes */{size}")]
            ) from None
    if ranges is None:
        if not request.headers.has_any(_CONDITIONAL):
            body = _remember(location, request, path, st, headers, fd)
            if body is not None:
                os.close(fd)
                return Response(200, headers, body)
        return Response(200, headers, file=FileBody(fd, 0, size))
    if len(ranges) == 1:
        first, last = ranges[0]
        headers.append(("Content-Range", f"bytes {first}-{last}/{size}"))
        return Response(206, headers, file=FileBody(fd, first, last - first + 1))
    # Several ranges: multipart/byteranges (RFC 9110 §14.6), each part sent
    # with sendfile from its own duplicate of the descriptor.
    boundary = os.urandom(12).hex()
    parts: list[bytes | FileBody] = []
    for first, last in ranges:
        parts.append(
            f"\r\n--{boundary}\r\nContent-Type: {kind}\r\n"
            f"Content-Range: bytes {first}-{last}/{size}\r\n\r\n".encode("latin-1")
        )
        parts.append(FileBody(os.dup(fd), first, last - first + 1))
    parts.append(f"\r\n--{boundary}--\r\n".encode("latin-1"))
    os.close(fd)
    headers[0] = ("Content-Type", f"multipart/byteranges; boundary={boundary}")
    return Response(206, headers, parts=parts)


def serve(request: Request, location: Location) -> Response:
    """GET/HEAD of a file or directory under ``location``'s root.

    A directory without its trailing slash gets 301 to the slash form; then
    ``default_file``, else a listing when ``directory_listing`` is on, else
    403. Raises ``HTTPError`` (403, 404) for the error cases.
    """
    if _files:
        response = _cached(request, location)
        if response is not None:
            return response
    root, path = filesystem_path(request, location)
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise HTTPError(404, f"{path} not found") from None
    except OSError as exc:
        raise _stat_error(path, exc) from None
    if not stat.S_ISDIR(st.st_mode):
        if request.path.endswith("/"):
            raise HTTPError(404, f"{path} is not a directory")
        return _open_file(path, request, location)
    if not request.path.endswith("/"):
        target = quote(request.path, safe="/", errors="surrogateescape") + "/"
        if request.query:
            target += "?" + request.query
        return redirect(target)
    if location.default_file:
        index = os.path.realpath(os.path.join(path, location.default_file))
        if inside(root, index) and os.path.isfile(index):
            return _open_file(index, request, location)
    if location.directory_listing:
        return autoindex.listing(path, request.path)
    raise HTTPError(403, f"{request.path}: directory listing is off")
