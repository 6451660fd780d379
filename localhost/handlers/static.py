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
from collections.abc import Mapping
from email.utils import formatdate
from pathlib import Path
from urllib.parse import quote

from localhost.config.model import Location
from localhost.handlers import autoindex
from localhost.handlers.base import BodyPolicy, Exchange, HandlerSpec, function_handler
from localhost.handlers.redirect import redirect
from localhost.handlers.smallfiles import SmallFiles
from localhost.http.conditional import Unsatisfiable, byte_ranges, etag_for, precondition
from localhost.http.errors import HTTPError
from localhost.http.message import FileBody, Request, Response, encode_fields
from localhost.limits import LIMITS, Limits

_TEXT_TYPES = frozenset(
    {
        "application/javascript",
        "application/json",
        "application/xml",
        "image/svg+xml",
        "application/xhtml+xml",
    }
)
_CONDITIONAL = frozenset(
    {"if-match", "if-none-match", "if-modified-since", "if-unmodified-since", "range"}
)


class Variants:
    """The encoded variants of one cached file (``localhost.modules.compression``):
    ``items`` by key → ``(fields, body, raw fields)``, ``masks`` (what the
    compression filter found out about the file, by key), and ``nbytes``,
    their bytes counted against the cache's budget. They live and die with
    their cache entry."""

    __slots__ = ("items", "masks", "nbytes")

    def __init__(self) -> None:
        self.items: dict[object, tuple[list[tuple[str, str]], bytes, bytes]] = {}
        self.masks: dict[object, int] = {}
        self.nbytes = 0


class _Entry:
    __slots__ = ("lexical", "real", "key", "headers", "raw", "body", "size", "fd", "variants")

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
        self.variants = Variants()


def _key(st: os.stat_result) -> tuple[int, int, int, int, int]:
    # ctime too: a chmod or chown changes nothing else, and must reach the
    # full path, which answers 403 for a file the server may no longer read.
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class FileCache:
    """The open-file cache of one worker (``Services.files``), and its real roots.

    Keys are ``(id(location), request path)``: the cache is emptied when the
    configuration changes (``clear``), so a key never outlives its location.
    Every hit is validated with one stat of the path (inode, device, size,
    modification and change times), so a changed, replaced or removed file is
    never served stale; files up to ``limits.cache_body_max_bytes`` are kept in
    memory and answered without opening them, and larger ones keep an open
    descriptor (up to ``limits.cache_fds``) that each response duplicates for
    its sendfile. Past ``limits.cache_entries`` entries the cache starts over.
    """

    __slots__ = ("entries", "roots", "cached_bytes", "held_fds", "limits")

    def __init__(self, limits: Limits = LIMITS) -> None:
        self.limits = limits
        self.entries: dict[tuple[int, str], _Entry] = {}
        self.roots: dict[Path, str] = {}
        self.cached_bytes = 0
        self.held_fds = 0

    def clear(self) -> None:
        """Forget every cached file and root (after a reload: locations change)."""
        for entry in self.entries.values():
            if entry.fd >= 0:
                os.close(entry.fd)
        self.entries.clear()
        self.roots.clear()
        self.cached_bytes = self.held_fds = 0

    def real_root(self, root: Path) -> str:
        """The real path of a root directory (remembered until ``clear``)."""
        real = self.roots.get(root)
        if real is None:
            real = self.roots[root] = os.path.realpath(root)
        return real

    def forget(self, key: tuple[int, str]) -> None:
        """Drop one entry (closing its descriptor)."""
        entry = self.entries.pop(key)
        if entry.fd >= 0:
            os.close(entry.fd)
            self.held_fds -= 1
        if entry.body is not None:
            self.cached_bytes -= entry.size
        self.cached_bytes -= entry.variants.nbytes

    def keep_variant(
        self,
        variants: Variants,
        key: object,
        variant: tuple[list[tuple[str, str]], bytes, bytes],
        nbytes: int,
    ) -> bool:
        """Keep an encoded ``variant`` of a cached file (``nbytes`` against the
        budget of files kept in memory); False (not kept) when the budget is spent."""
        if self.cached_bytes + nbytes > self.limits.cache_body_budget_bytes:
            return False
        variants.items[key] = variant
        variants.nbytes += nbytes
        self.cached_bytes += nbytes
        return True

    def remember(
        self,
        location: Location,
        request: Request,
        real: str,
        st: os.stat_result,
        headers: list[tuple[str, str]],
        fd: int,
        suffix: str = "",
    ) -> bytes | None:
        """Cache a file just served in full; returns its bytes when they are kept in memory.

        ``suffix`` is the extension of a precompressed variant served in the
        request path's place (``.gz``: ``cached_variant``)."""
        limits = self.limits
        if len(self.entries) >= limits.cache_entries:
            self.clear()
        body = None
        if (
            st.st_size <= limits.cache_body_max_bytes
            and self.cached_bytes + st.st_size <= limits.cache_body_budget_bytes
        ):
            body = os.pread(fd, st.st_size, 0)
            if len(body) != st.st_size:
                return None  # changing under our feet: do not cache
            self.cached_bytes += st.st_size
        root = self.real_root(location.root) if location.root is not None else ""
        relative = request.path[len(location.prefix) :] if location.alias else request.path
        lexical = os.path.join(root, relative.lstrip("/")) + suffix
        if lexical != real and request.path.endswith("/"):
            lexical = real  # a default file: validate the file itself
        key = (id(location), request.path + suffix)
        if key in self.entries:
            self.forget(key)
        entry = self.entries[key] = _Entry(lexical, real, _key(st), headers, body, st.st_size)
        if body is None and self.held_fds < limits.cache_fds:
            entry.fd = os.dup(fd)
            self.held_fds += 1
        return body

    def cached(self, request: Request, location: Location) -> Response | None:
        """The response for a cached file, or ``None`` to take the full path."""
        entry = self.entries.get((id(location), request.path))
        if entry is None:
            return None
        try:
            st = os.stat(entry.lexical)
        except OSError:
            st = None
        if st is None or _key(st) != entry.key:
            self.forget((id(location), request.path))
            return None
        if request.headers.has_any(_CONDITIONAL):
            return None
        if entry.body is not None:
            body, raw = entry.body, entry.raw
            return Response(200, entry.headers, body, None, False, None, raw, entry.variants)
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
        file = FileBody(fd, 0, entry.size)
        return Response(200, entry.headers, b"", file, False, None, entry.raw, entry.variants)

    def cached_variant(self, request: Request, location: Location, suffix: str) -> Response | None:
        """The response for the cached precompressed variant (``suffix``: ``.gz``,
        ``.br``, ``.zst``) of the request's file, or ``None`` to take the full
        path; validated as ``cached`` is (its fields are the variant's own)."""
        key = (id(location), request.path + suffix)
        entry = self.entries.get(key)
        if entry is None:
            return None
        try:
            st = os.stat(entry.lexical)
        except OSError:
            st = None
        if st is None or _key(st) != entry.key:
            self.forget(key)
            return None
        if request.headers.has_any(_CONDITIONAL):
            return None
        if entry.body is not None:
            return Response(200, entry.headers, entry.body, raw_fields=entry.raw)
        if entry.fd < 0:
            return None
        file = FileBody(os.dup(entry.fd), 0, entry.size)
        return Response(200, entry.headers, file=file, raw_fields=entry.raw)


#: NGINX's ``default_type``: the type of a file whose extension no table knows.
DEFAULT_TYPE = "application/octet-stream"
#: NGINX's ``charset_types`` default: the types ``charset NAME`` labels
#: (``text/html`` is always one of them), and ``text/javascript``, the type
#: ``mimetypes`` gives ``.js`` (RFC 9239), where NGINX 1.22's table has
#: ``application/javascript``.
CHARSET_TYPES = frozenset(
    {
        "text/html",
        "text/xml",
        "text/plain",
        "text/vnd.wap.wml",
        "application/javascript",
        "text/javascript",
        "application/rss+xml",
    }
)


def _media(ext: str) -> str | None:
    return mimetypes.guess_type("x" + ext, strict=False)[0]


def _known_types() -> dict[str, str]:
    if not mimetypes.inited:
        mimetypes.init()  # the system's mime.types too, as guess_type would read
    known = (
        mimetypes.types_map,
        mimetypes.common_types,
        mimetypes.suffix_map,
        mimetypes.encodings_map,
    )
    table: dict[str, str] = {}
    for ext in {e.lower() for found in known for e in found}:
        media = _media(ext)
        if media is not None:
            table[ext] = media
    return table


#: Media type by lower-case extension (with its dot) for every extension
#: ``mimetypes`` knows a type for, made once at import (its tables do not
#: change afterwards). Extensions it knows only as an encoding (``.gz``) are
#: not here: their files get ``default_type``.
MEDIA_TYPES = _known_types()


def _utf8_label(media: str) -> str:
    # localhost's own rule when no charset directive applies: text is UTF-8.
    if media.startswith("text/") or media in _TEXT_TYPES:
        return media + "; charset=utf-8"
    return media


def _labelled(media: str, charset: str | None, charset_types: frozenset[str]) -> str:
    if charset is None:
        return media if "charset=" in media.lower() else _utf8_label(media)
    if not charset or "charset=" in media.lower():
        return media
    bare = media.partition(";")[0].strip().lower()
    if bare == "text/html" or bare in charset_types or "*" in charset_types:
        return f"{media}; charset={charset}"
    return media


class ContentTypes:
    """The Content-Type of a file by its name, under one location's settings.

    ``table`` maps a lower-case extension with its dot (``".html"``) to the
    whole field value, charset included; ``fallback`` is the value for any
    other name (``default_type``, labelled likewise). Calling it costs one
    ``splitext`` and one dictionary lookup.
    """

    __slots__ = ("table", "fallback")

    def __init__(self, table: Mapping[str, str], fallback: str) -> None:
        self.table = table
        self.fallback = fallback

    def __call__(self, name: str) -> str:
        """The Content-Type value for the file ``name`` (a path or a file name)."""
        known = self.table.get(os.path.splitext(name)[1].lower())
        return known if known is not None else self.fallback

    def __repr__(self) -> str:
        return f"ContentTypes({len(self.table)} extensions, default {self.fallback!r})"


def content_types(
    types: Mapping[str, str] | None = None,
    default_type: str = DEFAULT_TYPE,
    charset: str | None = None,
    charset_types: frozenset[str] = CHARSET_TYPES,
) -> ContentTypes:
    """The ``ContentTypes`` of a location's settings (NGINX's ``types``,
    ``default_type``, ``charset`` and ``charset_types``), built at load.

    ``types`` maps lower-case extensions without their dot to media types (a
    ``types { }`` block, which replaces the built-in table as in NGINX);
    None is the built-in table (Python's ``mimetypes``). ``charset`` None is
    localhost's default, ``; charset=utf-8`` on every ``text/*`` type and on
    JSON, JavaScript, XML, SVG and XHTML; ``""`` is ``charset off``; a name
    labels ``text/html`` and the types of ``charset_types`` (``"*"``: every
    type) that have no charset of their own. Locations with the same
    settings share one object.
    """
    # Keyed by content: a reload with the same settings finds its tables.
    table_key = None if types is None else frozenset(types.items())
    key = (table_key, default_type, charset, charset_types)
    found = _SHARED.get(key)
    if found is not None:
        return found
    if types is None:
        base: Mapping[str, str] = MEDIA_TYPES
    else:
        base = {"." + ext: media for ext, media in types.items()}
    table = {ext: _labelled(media, charset, charset_types) for ext, media in base.items()}
    made = _SHARED[key] = ContentTypes(table, _labelled(default_type, charset, charset_types))
    return made


# Every table made, by its settings: one per distinct set of settings ever
# loaded (a handful; a reload with the same settings adds none).
_SHARED: dict[
    tuple[frozenset[tuple[str, str]] | None, str, str | None, frozenset[str]], ContentTypes
] = {}

#: The Content-Types of a location without types, default_type or charset.
DEFAULT_CONTENT_TYPES = content_types()


def content_type(name: str) -> str:
    """Content-Type for a file name, from ``mimetypes`` (``application/octet-stream``
    when it knows none); text gets ``charset=utf-8``."""
    return DEFAULT_CONTENT_TYPES(name)


def location_types(location: Location) -> ContentTypes:
    """The Content-Types of ``location``: ``options["default_type"]``, which the
    headers module derives at load from ``types``, ``default_type``,
    ``charset`` and ``charset_types`` (the default for a location made
    elsewhere, e.g. by an application)."""
    found = location.options.get("default_type")
    return found if isinstance(found, ContentTypes) else DEFAULT_CONTENT_TYPES


def inside(root: str, path: str) -> bool:
    """Whether real ``path`` is ``root`` or below it (both real, absolute paths)."""
    return path == root or path.startswith(root if root.endswith(os.sep) else root + os.sep)


def filesystem_path(request: Request, location: Location, files: FileCache) -> tuple[str, str]:
    """``(real root, real file path)`` for the request path under ``location``.

    Raises ``HTTPError(403)`` when the resolved path leaves the root, and
    ``HTTPError(404)`` when the location has no root.
    """
    if location.root is None:
        raise HTTPError(404, "location has no root")
    root = files.real_root(location.root)
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


def _open_file(path: str, request: Request, location: Location, files: FileCache) -> Response:
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
        return _file_response(fd, st, path, request, location, files)
    except BaseException:
        os.close(fd)
        raise


class NotModified(Response):
    """A 304 for a file, knowing the Content-Type and length (bytes) its 200
    would have had: a module that changes the 200 by those (a content
    coding) gives the 304 the same validators and Vary (RFC 9110 §15.4.5).
    """

    __slots__ = ("media", "length")

    def __init__(self, validators: list[tuple[str, str]], media: str, length: int) -> None:
        super().__init__(304, validators)
        self.media = media
        self.length = length


def _file_response(
    fd: int,
    st: os.stat_result,
    path: str,
    request: Request,
    location: Location,
    files: FileCache,
) -> Response:
    """200, 206, 304 for the open file ``fd``; raises HTTPError 412 or 416."""
    etag = etag_for(st)
    validators = [("ETag", etag), ("Last-Modified", formatdate(st.st_mtime, usegmt=True))]
    status = precondition(request.headers, request.method, etag, st.st_mtime)
    if status == 304:
        os.close(fd)
        return NotModified(validators, location_types(location)(path), st.st_size)
    if status == 412:
        raise HTTPError(412, f"precondition failed for {path}")
    size = st.st_size
    # One lookup of the location's table, built at load (only a file that
    # is not in the open-file cache gets here: a cached one keeps its fields).
    kind = location_types(location)(path)
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
            body = files.remember(location, request, path, st, headers, fd)
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


def serve(
    request: Request,
    location: Location,
    files: FileCache,
    headers: SmallFiles | None = None,
) -> Response:
    """GET/HEAD of a file or directory under ``location``'s root.

    A directory without its trailing slash gets 301 to the slash form; then
    the first existing of ``default_files`` (``index``), else a listing when
    ``directory_listing`` is on (with the listing header fragments of
    ``headers``), else 403. Raises
    ``HTTPError`` (403, 404) for the error cases.
    """
    if files.entries:
        response = files.cached(request, location)
        if response is not None:
            return response
    root, path = filesystem_path(request, location, files)
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise HTTPError(404, f"{path} not found") from None
    except OSError as exc:
        raise _stat_error(path, exc) from None
    if not stat.S_ISDIR(st.st_mode):
        if request.path.endswith("/"):
            raise HTTPError(404, f"{path} is not a directory")
        return _open_file(path, request, location, files)
    if not request.path.endswith("/"):
        target = quote(request.path, safe="/", errors="surrogateescape") + "/"
        if request.query:
            target += "?" + request.query
        return redirect(target)
    for name in location.default_files:
        index = os.path.realpath(os.path.join(path, name))
        if inside(root, index) and os.path.isfile(index):
            return _open_file(index, request, location, files)
    if location.directory_listing:
        return autoindex.listing(path, request.path, headers)
    raise HTTPError(403, f"{request.path}: directory listing is off")


def _serve(exchange: Exchange) -> Response:
    location = exchange.location
    assert location is not None
    services = exchange.services
    return serve(exchange.request, location, services.files, services.listing_headers)


class StaticHandler(function_handler(_serve)):  # type: ignore[misc]
    """GET/HEAD of a file or folder: answered in ``on_head`` when the request has
    no body (the hot path: no call beyond ``serve``), else after the body."""

    __slots__ = ()

    def on_head(self) -> BodyPolicy:
        exchange = self.exchange
        request = exchange.request
        if not request.content_length and not request.chunked:
            location = exchange.location
            assert location is not None
            services = exchange.services
            exchange.send(serve(request, location, services.files, services.listing_headers))
            return BodyPolicy.IGNORE
        return BodyPolicy.DISCARD if request.expect_continue else BodyPolicy.IGNORE


_GET_HEAD = frozenset({"GET", "HEAD"})


def _methods(_location: Location) -> frozenset[str]:
    return _GET_HEAD


#: GET and HEAD of files and folders under the root, everywhere.
SPEC = HandlerSpec("static", _methods, StaticHandler, priority=900)
