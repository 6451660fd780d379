"""Uploads (POST) and DELETE under a location's root.

POST ``multipart/form-data`` to a folder stores every file part in it; the
body streams through ``python-multipart``'s incremental parser straight to
disk as it arrives, never held whole in memory. A POST with any other body
type to ``/PREFIX/NAME`` stores the body as ``NAME``. Each file is written to
a hidden temporary name in the target folder and given its final name only
when the whole request has arrived, with ``os.link`` so that an existing
file is never overwritten (``name-1.ext``, ``name-2.ext``, ... instead);
a cut or refused upload leaves no file.

DELETE removes one regular file inside the root (204); a folder or anything
resolving outside the root is 403, a missing file 404.
"""

from __future__ import annotations

import contextlib
import errno
import html
import json
import logging
import os
import stat
from typing import TYPE_CHECKING
from urllib.parse import quote

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from localhost.config.model import Location
from localhost.handlers.static import filesystem_path, inside
from localhost.http.errors import HTTPError
from localhost.http.message import Request, Response

if TYPE_CHECKING:
    from localhost.handlers import Exchange

log = logging.getLogger("localhost")

MAX_NAME_BYTES = 255  # a file name's length in UTF-8 bytes (the usual file-system limit)
MAX_SUFFIX = 10000  # name-1 ... name-9999 before giving up
MAX_PART_HEADER = 8 * 1024  # bytes of one part's header section
MAX_FILES = 100  # file parts in one request


def safe_name(raw: str) -> str:
    """A file name that is safe to create in a folder.

    The base name only (after the last ``/`` or ``\\``); no NUL or control
    characters; leading dots and spaces removed, so never ``.``, ``..`` or
    a dotfile; at most ``MAX_NAME_BYTES`` bytes, keeping the extension.
    Raises ``HTTPError(400)`` when nothing usable is left.
    """
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise HTTPError(400, f"control character in file name {raw!r}")
    name = name.lstrip(". ").rstrip(" ")
    if not name:
        raise HTTPError(400, f"unusable file name {raw!r}")
    encoded = name.encode("utf-8", "surrogateescape")
    if len(encoded) > MAX_NAME_BYTES:
        stem, dot, ext = name.rpartition(".")
        ext_bytes = (
            (dot + ext).encode("utf-8", "surrogateescape") if stem and len(ext) <= 16 else b""
        )
        keep = encoded[: MAX_NAME_BYTES - len(ext_bytes)]
        name = (keep + ext_bytes).decode("utf-8", "ignore")
    return name


def check_not_executable(location: Location, directory: str, name: str) -> None:
    """Refuse to store ``name`` in real ``directory`` where a CGI location would run it.

    An upload that became a script would let any client run code on the
    server. Raises ``HTTPError(403)``.
    """
    ext = os.path.splitext(name)[1].lower()
    for root, extensions in location.cgi_roots:
        if ext in extensions and inside(root, directory):
            raise HTTPError(403, f"{name}: a CGI location runs {ext} files in {directory}")


def _temporary(directory: str) -> tuple[int, str]:
    path = os.path.join(directory, f".upload-{os.urandom(8).hex()}.part")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    return fd, path


def _commit(temporary: str, directory: str, name: str) -> str:
    """Give ``temporary`` its final name without replacing anything; return the name."""
    stem, dot, ext = name.rpartition(".")
    if not stem:
        stem, dot, ext = name, "", ""
    for index in range(MAX_SUFFIX):
        candidate = name if index == 0 else f"{stem}-{index}{dot}{ext}"
        try:
            os.link(temporary, os.path.join(directory, candidate))
        except FileExistsError:
            continue
        os.unlink(temporary)
        return candidate
    raise HTTPError(409, f"no free name for {name}")


class _File:
    __slots__ = ("name", "fd", "temporary", "size", "final")

    def __init__(self, name: str, directory: str) -> None:
        self.name = name
        self.fd, self.temporary = _temporary(directory)
        self.size = 0
        self.final = ""

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
        self.size += len(data)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class UploadHandler:
    """Stream a POST body into files under the location's root."""

    def __init__(self, request: Request, location: Location, exchange: Exchange) -> None:
        self.request = request
        self.location = location
        self.exchange = exchange
        self.files: list[_File] = []
        self.current: _File | None = None
        self.done = False
        root, real = filesystem_path(request, location)
        self.root = root
        content_type, params = parse_options_header(request.headers.get("content-type"))
        self.multipart: MultipartParser | None = None
        if content_type == b"multipart/form-data":
            boundary = params.get(b"boundary")
            if not boundary:
                raise HTTPError(400, "multipart/form-data without a boundary")
            if not os.path.isdir(real):
                raise HTTPError(404, f"upload folder {real} does not exist")
            self.directory = real
            self.url_folder = request.path if request.path.endswith("/") else request.path + "/"
            self._header_name = b""
            self._header_value = b""
            self._headers: dict[bytes, bytes] = {}
            try:
                self.multipart = MultipartParser(
                    boundary,
                    {
                        "on_part_begin": self._part_begin,
                        "on_header_field": self._header_field,
                        "on_header_value": self._header_value_data,
                        "on_header_end": self._header_end,
                        "on_headers_finished": self._headers_finished,
                        "on_part_data": self._part_data,
                        "on_part_end": self._part_end,
                    },
                    max_header_size=MAX_PART_HEADER,
                )
            except ValueError as exc:
                raise HTTPError(400, f"bad multipart boundary: {exc}") from None
        else:
            if os.path.isdir(real) or request.path.endswith("/"):
                raise HTTPError(400, "a non-multipart upload needs a file name: POST /PATH/NAME")
            directory, raw_name = os.path.split(real)
            if not os.path.isdir(directory) or not inside(root, directory):
                raise HTTPError(404, f"upload folder {directory} does not exist")
            self.directory = directory
            self.url_folder = request.path.rsplit("/", 1)[0] + "/"
            name = request.path.rsplit("/", 1)[1]
            self.current = self._open(safe_name(name))

    def _open(self, name: str) -> _File:
        if len(self.files) >= MAX_FILES:
            raise HTTPError(400, f"more than {MAX_FILES} files in one upload")
        check_not_executable(self.location, self.directory, name)
        try:
            file = _File(name, self.directory)
        except OSError as exc:
            raise _storage_error(exc) from None
        self.files.append(file)
        return file

    # -- multipart callbacks ------------------------------------------------

    def _part_begin(self) -> None:
        self._headers = {}
        self.current = None

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_name.lower()] = self._header_value
        self._header_name = self._header_value = b""

    def _headers_finished(self) -> None:
        disposition = self._headers.get(b"content-disposition", b"")
        _, params = parse_options_header(disposition)
        filename = params.get(b"filename")
        if filename:  # a file part; other form fields are ignored
            self.current = self._open(safe_name(filename.decode("utf-8", "surrogateescape")))

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self.current is not None:
            self._write(data[start:end])

    def _part_end(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None

    # -- Streaming ----------------------------------------------------------

    def _write(self, data: bytes) -> None:
        assert self.current is not None
        try:
            self.current.write(data)
        except OSError as exc:
            raise _storage_error(exc) from None

    def body_data(self, data: bytes) -> None:
        if self.multipart is not None:
            try:
                self.multipart.write(data)
            except MultipartParseError as exc:
                raise HTTPError(400, f"malformed multipart body: {exc}") from None
        else:
            self._write(data)

    def body_end(self) -> None:
        """Give every file its name and answer 201. Raises ``HTTPError``."""
        if self.multipart is not None:
            try:
                self.multipart.finalize()
            except MultipartParseError as exc:
                raise HTTPError(400, f"malformed multipart body: {exc}") from None
            if self.current is not None:
                raise HTTPError(400, "multipart body ended inside a part")
        if not self.files:
            raise HTTPError(400, "no file in the upload")
        for file in self.files:
            file.close()
            file.final = _commit(file.temporary, self.directory, file.name)
            log.info(
                "stored upload %s (%d bytes)", os.path.join(self.directory, file.final), file.size
            )
        self.done = True
        self.exchange.send(self._created())

    def _created(self) -> Response:
        links = [
            (self.url_folder + quote(f.final, errors="surrogateescape"), f) for f in self.files
        ]
        accept = self.request.headers.get("accept") or ""
        if "application/json" in accept:
            body = json.dumps(
                {"files": [{"name": f.final, "size": f.size, "url": url} for url, f in links]}
            ).encode()
            content_type = "application/json"
        else:
            items = "".join(
                f'<li><a href="{html.escape(url, quote=True)}">{html.escape(f.final)}</a>'
                f" ({f.size} bytes)</li>\n"
                for url, f in links
            )
            body = (
                '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Uploaded</title>'
                f"</head>\n<body><h1>Uploaded</h1>\n<ul>\n{items}</ul></body></html>\n"
            ).encode()
            content_type = "text/html; charset=utf-8"
        headers = [("Location", links[0][0]), ("Content-Type", content_type)]
        return Response(201, headers, body)

    def output_drained(self) -> None:
        pass

    def close(self) -> None:
        """Remove every file not yet given its final name (a cut or refused upload)."""
        for file in self.files:
            file.close()
            if not file.final:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(file.temporary)
        self.files = [] if not self.done else self.files


def _storage_error(exc: OSError) -> HTTPError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return HTTPError(507, f"no space left: {exc}")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return HTTPError(403, f"cannot write: {exc}")
    return HTTPError(500, f"cannot write: {exc}")


def delete(request: Request, location: Location) -> Response:
    """Remove the regular file the request path names (RFC 9110 §9.3.5) → 204.

    Raises ``HTTPError``: 404 when missing, 403 for a folder, a special
    file, or a path resolving outside the root.
    """
    root, real = filesystem_path(request, location)
    relative = request.path[len(location.prefix) :] if location.alias else request.path
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
