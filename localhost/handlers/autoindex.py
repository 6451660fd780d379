"""Directory listings (``directory_listing on``): an HTML page of a folder.

Dotfiles are hidden; folders come first; every name is HTML-escaped and every
link percent-encoded; sizes are in bytes and times in UTC.
"""

from __future__ import annotations

import html
import os
import time
from urllib.parse import quote

from localhost.http.message import Response


def _row(href: str, label: str, size: str, mtime: str) -> str:
    return f'<tr><td><a href="{href}">{label}</a></td><td>{size}</td><td>{mtime}</td></tr>\n'


def listing(directory: str, url_path: str) -> Response:
    """A 200 HTML listing of ``directory``, shown as ``url_path`` (ending in ``/``)."""
    dirs: list[tuple[str, str, str, str]] = []
    files: list[tuple[str, str, str, str]] = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                st = entry.stat()
                is_dir = entry.is_dir()
            except OSError:
                continue  # a dangling symlink, or a file removed meanwhile
            mtime = time.strftime("%Y-%m-%d %H:%M", time.gmtime(st.st_mtime))
            href = quote(entry.name, errors="surrogateescape")
            label = html.escape(
                entry.name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            )
            if is_dir:
                dirs.append((label + "/", href + "/", "-", mtime))
            else:
                files.append((label, href, str(st.st_size), mtime))
    title = html.escape(url_path.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
    rows = []
    if url_path != "/":
        rows.append(_row("../", "../", "-", ""))
    for label, href, size, mtime in sorted(dirs) + sorted(files):
        rows.append(_row(href, label, size, mtime))
    body = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>Index of {title}</title></head>\n<body><h1>Index of {title}</h1>\n"
        "<table>\n<tr><th>Name</th><th>Size (bytes)</th><th>Modified (UTC)</th></tr>\n"
        + "".join(rows)
        + "</table>\n</body></html>\n"
    ).encode()
    return Response(200, [("Content-Type", "text/html; charset=utf-8")], body)
