"""Uploads (POST) and DELETE under a location's root.

POST ``multipart/form-data`` to a folder stores every file part in it; the
body streams through ``python-multipart``'s incremental parser straight to
disk as it arrives, never held whole in memory. A POST with any other body
type to ``/PREFIX/NAME`` stores the body as ``NAME``. Each file is written to
a hidden temporary name in the target folder and given its final name only
when the whole request has arrived, with ``os.link`` so that an existing
file is never overwritten (``name-1.ext``, ``name-2.ext``, ... instead);
a cut or refused upload leaves no file.

The answer to a stored upload depends on who asked (RFC 9110 §12.5.1,
``Accept``): a browser submitting a form (``text/html`` named, preferred to
JSON) gets ``303 See Other`` to a result page, so that reloading it does not
upload again (Post/Redirect/Get): the folder's listing with
``?uploaded=NAME&...`` (the listing names and highlights them) when the
location lists folders, else the first stored file. Other clients (curl's
``*/*``, no Accept, JSON) get ``201 Created`` with ``Location`` of the first
file and the stored names and sizes, as JSON when they prefer it.

Every refusal says why: a ``Refusal`` whose reason ("no file in the upload",
"file name ... not allowed", ...) is in the error page (escaped), in
``{"error": ...}`` for a client preferring JSON, and in the error log at info
level. A refusal found in the body (a part's name, the 101st file, malformed
multipart) removes every file of the request at once, then the rest of the
body is read and discarded (within ``body_limit``) before the answer goes
out: a browser reads an answer only once it has sent its whole request.
Refusals found before the body (no boundary, a missing folder, an unusable
name in the path) are answered at once.
"""

from __future__ import annotations

import contextlib
import errno
import html
import json
import logging
import os
from typing import TYPE_CHECKING
from urllib.parse import quote

from localhost.config.model import Location
from localhost.handlers.autoindex import HTML, human_size, page, shown, text
from localhost.handlers.base import BodyPolicy, Exchange, Handler, HandlerSpec
from localhost.handlers.error_pages import Refusal, prefers_html, prefers_json, refusal_response
from localhost.handlers.static import filesystem_path, inside
from localhost.http.errors import HTTPError
from localhost.http.message import Response
from localhost.limits import LIMITS

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartParser

log = logging.getLogger("localhost")

MAX_NAME_BYTES = LIMITS.upload_max_name_bytes  # a file name in UTF-8 bytes
MAX_SUFFIX = LIMITS.upload_max_suffix  # name-1 ... name-9999 before giving up
MAX_PART_HEADER = LIMITS.upload_max_part_header_bytes
MAX_FILES = LIMITS.upload_max_files
MAX_NOTICE = LIMITS.upload_max_notice  # stored names named in a result page's query


def _quoted(name: str) -> str:
    """``name`` for a refusal's reason: in double quotes, control characters as ``\\xHH``."""
    return '"' + "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text(name)) + '"'


def safe_name(raw: str) -> str:
    """A file name that is safe to create in a folder.

    The base name only (after the last ``/`` or ``\\``); no NUL or control
    characters; leading dots and spaces removed, so never ``.``, ``..`` or
    a dotfile; at most ``MAX_NAME_BYTES`` bytes, keeping the extension.
    Raises ``Refusal(400)`` for control characters or when nothing usable is left.
    """
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise Refusal(400, f"file name {_quoted(raw)} not allowed: it has control characters")
    name = name.lstrip(". ").rstrip(" ")
    if not name:
        raise Refusal(
            400, f"file name {_quoted(raw)} not allowed: no name is left without dots and spaces"
        )
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
    server. Raises ``Refusal(403)``.
    """
    ext = os.path.splitext(name)[1].lower()
    for root, extensions in location.cgi_roots:
        if ext in extensions and inside(root, directory):
            raise Refusal(
                403,
                f"file name {_quoted(name)} not allowed here: {ext} files in this folder"
                " would run as CGI scripts",
                f"{name}: a CGI location runs {ext} files in {directory}",
            )


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
    raise Refusal(409, f"no free name for {_quoted(name)}: {MAX_SUFFIX} copies exist")


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


class UploadHandler(Handler):
    """Stream a POST body into files under the location's root.

    Raises ``HTTPError`` (a ``Refusal`` with its reason) when the request
    cannot be an upload, before any body byte is read.
    """

    __slots__ = (
        "request",
        "location",
        "files",
        "current",
        "done",
        "refused",
        "multipart",
        "root",
        "directory",
        "url_folder",
        "_header_name",
        "_header_value",
        "_headers",
    )

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        self.request = exchange.request
        location = exchange.location
        assert location is not None
        self.location = location
        self.files: list[_File] = []
        self.current: _File | None = None
        self.done = False
        self.refused: HTTPError | None = None
        self.multipart: MultipartParser | None = None
        try:
            self._begin()
        except HTTPError as exc:
            self._log_refusal(exc)
            self._discard()
            raise

    def _begin(self) -> None:
        # On first use: python-multipart costs 1 MiB of memory.
        from python_multipart.multipart import MultipartParser, parse_options_header

        request = self.request
        root, real = filesystem_path(request, self.location, self.exchange.services.files)
        self.root = root
        content_type, params = parse_options_header(request.headers.get("content-type"))
        if content_type == b"multipart/form-data":
            boundary = params.get(b"boundary")
            if not boundary:
                raise Refusal(400, "multipart/form-data without a boundary")
            if not os.path.isdir(real):
                raise Refusal(404, "no such upload folder", f"upload folder {real} does not exist")
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
                raise Refusal(400, f"bad multipart boundary: {exc}") from None
        else:
            if os.path.isdir(real) or request.path.endswith("/"):
                raise Refusal(400, "a non-multipart upload needs a file name: POST /PATH/NAME")
            directory, raw_name = os.path.split(real)
            if not os.path.isdir(directory) or not inside(root, directory):
                raise Refusal(
                    404, "no such upload folder", f"upload folder {directory} does not exist"
                )
            self.directory = directory
            self.url_folder = request.path.rsplit("/", 1)[0] + "/"
            name = request.path.rsplit("/", 1)[1]
            self.current = self._open(safe_name(name))

    def _open(self, name: str) -> _File:
        if len(self.files) >= MAX_FILES:
            raise Refusal(400, f"more than {MAX_FILES} files in one upload")
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
        from python_multipart.multipart import parse_options_header

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

    def on_head(self) -> BodyPolicy:
        return BodyPolicy.STREAM

    def on_body(self, data: bytes) -> bool:
        """Store a piece of the body; after a refusal, discard it."""
        if self.refused is None:
            self._store(data)
        return True

    def _store(self, data: bytes) -> None:
        from python_multipart.exceptions import MultipartParseError

        try:
            if self.multipart is not None:
                try:
                    self.multipart.write(data)
                except MultipartParseError as exc:
                    raise Refusal(400, f"malformed multipart body: {exc}") from None
            else:
                self._write(data)
        except HTTPError as exc:
            self._refuse(exc)

    def on_body_end(self) -> None:
        """Give every file its name and answer (303 or 201), or answer the refusal."""
        from python_multipart.exceptions import MultipartParseError

        try:
            if self.refused is not None:
                raise self.refused
            if self.multipart is not None:
                try:
                    self.multipart.finalize()
                except MultipartParseError as exc:
                    raise Refusal(400, f"malformed multipart body: {exc}") from None
                if self.current is not None:
                    raise Refusal(400, "the multipart body ended inside a part")
            if not self.files:
                raise Refusal(400, "no file in the upload")
            for file in self.files:
                file.close()
                file.final = _commit(file.temporary, self.directory, file.name)
                log.info(
                    "stored upload %s (%d bytes)",
                    os.path.join(self.directory, file.final),
                    file.size,
                )
        except HTTPError as exc:
            if exc is not self.refused:
                self._refuse(exc)
            response = refusal_response(
                exc,
                self.location.error_pages,
                self.request.headers.get("accept"),
                self.exchange.services.error_pages,
            )
            # The whole request was read: only a 500 closes (as in NGINX).
            response.close = exc.status == 500
            self.exchange.send(response)
            return
        self.done = True
        self.exchange.send(self._stored())

    def _refuse(self, exc: HTTPError) -> None:
        """Stop storing: remove every file of the request; the answer waits for the body end."""
        self._log_refusal(exc)
        self.refused = exc
        self.multipart = None
        self._discard()

    def _log_refusal(self, exc: HTTPError) -> None:
        log.info("upload to %s refused (%d): %s", self.request.path, exc.status, exc.detail)

    def _stored(self) -> Response:
        """303 to the result page for a browser, else 201 with the stored files."""
        folder = quote(self.url_folder, errors="surrogateescape")
        names = [quote(f.final, safe="", errors="surrogateescape") for f in self.files]
        first = folder + names[0]
        accept = self.request.headers.get("accept")
        if prefers_html(accept):
            # Post/Redirect/Get (RFC 9110 §15.4.4): reloading shows the result,
            # it does not upload again.
            if self.location.directory_listing:
                query = "&".join("uploaded=" + name for name in names[:MAX_NOTICE])
                target = f"{folder}?{query}#f-{names[0]}"
            else:
                target = first
            body = (
                f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
                f"<title>See Other</title></head>\n<body><p>Stored. See "
                f'<a href="{html.escape(target)}">the result</a>.</p></body></html>\n'
            ).encode()
            return Response(303, [("Location", target), ("Content-Type", HTML)], body)
        if prefers_json(accept):
            body = json.dumps(
                {
                    "files": [
                        {"name": text(f.final), "size": f.size, "url": folder + name}
                        for f, name in zip(self.files, names, strict=True)
                    ]
                },
                ensure_ascii=False,
            ).encode()
            content_type = "application/json"
        else:
            items = "".join(
                f'<tr><td><a href="{html.escape(folder + name)}">{shown(f.final)}</a></td>'
                f'<td class="size" title="{f.size} bytes">{human_size(f.size)}</td></tr>\n'
                for f, name in zip(self.files, names, strict=True)
            )
            content = (
                f"<h1>Uploaded to {shown(self.url_folder)}</h1>\n"
                '<table class="listing">\n<thead><tr><th scope="col">Name</th>'
                '<th scope="col" class="size">Size</th></tr></thead>\n'
                f'<tbody>\n{items}</tbody>\n</table>\n<p>Back to <a href="{html.escape(folder)}">'
                f"{shown(self.url_folder)}</a></p>\n"
            )
            headers = self.exchange.services.listing_headers
            body = page("Uploaded", content, self.directory, self.url_folder, headers=headers)
            content_type = HTML
        return Response(201, [("Location", first), ("Content-Type", content_type)], body)

    def _discard(self) -> None:
        """Close every file and remove those not yet given their final name."""
        for file in self.files:
            file.close()
            if not file.final:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(file.temporary)
        self.current = None

    def on_abort(self, reason: str) -> None:
        """Remove every file not yet given its final name (a cut or refused upload)."""
        self._discard()
        self.files = [] if not self.done else self.files


def _storage_error(exc: OSError) -> Refusal:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return Refusal(507, "no space left on the server", f"no space left: {exc}")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return Refusal(403, "the server may not write in this folder", f"cannot write: {exc}")
    return Refusal(500, "the file could not be stored", f"cannot write: {exc}")


_POST = frozenset({"POST"})


def _methods(location: Location) -> frozenset[str]:
    # Only where ``methods`` names POST explicitly.
    if location.root is not None and location.methods is not None and "POST" in location.methods:
        return _POST
    return frozenset()


#: POST under a root where ``methods`` names it.
SPEC = HandlerSpec("upload", _methods, UploadHandler, priority=500)
