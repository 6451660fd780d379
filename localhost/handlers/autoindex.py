"""Directory listings (``directory_listing on``): an HTML page of a folder.

The page is a real ``<table>`` (column headers with ``scope="col"``) of plain
relative links, so that screen readers and ``wget -r`` read it as well as a
browser: the ``../`` parent first (except at ``/``), then folders, then files,
dotfiles hidden. Every name is HTML-escaped and every link percent-encoded;
bytes that are not UTF-8 are shown as U+FFFD and linked by their own
percent-encoding. Sizes are human-readable (``1.2 KiB``) and right-aligned,
with the exact byte count in a ``title``; modification times are ISO 8601 in
UTC.

The look: a small inline style makes the page decent on any site. A site
gives its listings its own header by placing ``.header.html`` (``HEADER_FILE``,
a fragment inserted at the top of the body, like Apache's ``HeaderName``) in
the listed folder or one of its parents, at most as many levels up as the URL
path has segments; the demo site's fragment links ``/style.css`` and holds its
navigation bar. Without one, a plain header with a link to ``/`` is used.

Nothing needs JavaScript to be read. A small inline script adds what only a
script can do: a notice naming the files of ``?uploaded=NAME&...`` or
``?deleted=NAME`` (where an upload form's Post/Redirect/Get lands), and a
Delete button per file, shown only when an ``OPTIONS`` request for the folder
lists ``DELETE`` in ``Allow``; the button sends ``DELETE`` with ``fetch`` and
reloads the listing. Rows of files have ``id="f-NAME"`` (``NAME``
percent-encoded, as in their link), so ``#f-NAME`` highlights one without a
script.

Generating a listing costs one ``scandir`` with a ``stat`` per entry and one
``stat`` per folder searched for the header (read only when it changed).
"""

from __future__ import annotations

import html
import os
import time
from urllib.parse import quote

from localhost.handlers.smallfiles import SmallFiles
from localhost.http.message import Response
from localhost.limits import LIMITS

HTML = "text/html; charset=utf-8"
HEADER_FILE = ".header.html"

# Enough style to read well on a site without a stylesheet; a site's own
# stylesheet (linked from its header fragment) comes later and wins.
STYLE = """<style>
body{margin:0;font:16px/1.5 system-ui,sans-serif;color:#1d2433;background:#fdfdfc}
body>header{background:#1d2433;color:#fff;padding:1rem 2rem}
body>header a{color:#fff;margin-right:1rem}
main{max-width:60rem;margin:1.5rem auto;padding:0 1rem}
h1{font-size:1.5rem;overflow-wrap:anywhere}
table.listing{border-collapse:collapse;width:100%}
.listing th,.listing td{padding:.3rem .6rem;border-bottom:1px solid #ddd;text-align:left}
.listing td:first-child{overflow-wrap:anywhere}
.listing .size{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
.listing .time{white-space:nowrap;font-variant-numeric:tabular-nums}
.listing tr:target,.listing tr.new{background:#fff3c4}
.notice{background:#e6f4ea;border-left:4px solid #2e7d32;padding:.5rem 1rem}
.reason{background:#fdecea;border-left:4px solid #b3261e;padding:.5rem 1rem;overflow-wrap:anywhere}
</style>
"""

SCRIPT = """<script>
(function () {
  "use strict";
  var notice = document.getElementById("notice");
  function say(text) { notice.textContent = text; notice.hidden = false; }
  function row(encoded) { return document.getElementById("f-" + encoded); }
  function label(encoded) {
    var found = row(encoded);
    if (found) return found.querySelector("a").textContent;
    try { return decodeURIComponent(encoded); } catch (e) { return encoded; }
  }
  var uploaded = [], deleted = [];
  location.search.slice(1).split("&").forEach(function (pair) {
    var eq = pair.indexOf("="), key = pair.slice(0, eq), value = pair.slice(eq + 1);
    if (eq < 0 || !value) return;
    if (key === "uploaded") uploaded.push(value);
    if (key === "deleted") deleted.push(value);
  });
  if (uploaded.length) {
    uploaded.forEach(function (encoded) { var r = row(encoded); if (r) r.className = "new"; });
    say("Uploaded: " + uploaded.map(label).join(", ") + ".");
  } else if (deleted.length) {
    say("Deleted: " + deleted.map(label).join(", ") + ".");
  }
  if (!window.fetch) return;
  fetch(location.pathname, {method: "OPTIONS"}).then(function (response) {
    var allow = (response.headers.get("Allow") || "").split(/\\s*,\\s*/);
    if (allow.indexOf("DELETE") < 0) return;
    var head = document.createElement("th");
    head.scope = "col";
    head.textContent = "Delete";
    document.querySelector(".listing thead tr").appendChild(head);
    document.querySelectorAll(".listing tbody tr").forEach(function (tr) {
      var cell = tr.insertCell(-1);
      if (tr.id.slice(0, 2) !== "f-") return;
      var link = tr.querySelector("a"), name = link.textContent;
      var button = document.createElement("button");
      button.type = "button";
      button.className = "danger";
      button.textContent = "Delete";
      button.setAttribute("aria-label", "Delete " + name);
      button.addEventListener("click", function () {
        if (!confirm("Delete " + name + "?")) return;
        fetch(link.href, {method: "DELETE"}).then(function (answer) {
          if (answer.ok) {
            location.replace(location.pathname + "?deleted=" + tr.id.slice(2));
          } else {
            say("Could not delete " + name + ": " + answer.status + " " + answer.statusText);
          }
        }, function () { say("Could not delete " + name + ": the server did not answer."); });
      });
      cell.appendChild(button);
    });
  }, function () {});
})();
</script>
"""

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")


def human_size(size: int) -> str:
    """``size`` bytes in binary units: ``"512 B"``, ``"1.2 KiB"``, ``"36 MiB"``.

    One decimal below 10 units, none above (as ``ls -h``).
    """
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in _UNITS:
        value /= 1024
        if value < 1024 or unit == _UNITS[-1]:
            break
    return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"


def iso_time(seconds: float) -> str:
    """A POSIX time as ISO 8601 in UTC, to the second: ``2026-12-04T06:16:05Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def text(name: str) -> str:
    """``name`` (a decoded path or file name, maybe with surrogate escapes) as
    text: bytes that are not UTF-8 become U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def shown(name: str) -> str:
    """``name`` as escaped HTML text (see ``text``)."""
    return html.escape(text(name))


def _read_header(path: str, headers: SmallFiles) -> str | None:
    try:
        return headers.read(path).decode("utf-8", "replace")
    except (OSError, ValueError):  # missing, unreadable, or too large: ignored
        return None


def site_header(directory: str, url_path: str, headers: SmallFiles | None = None) -> str:
    """The header for a page about folder ``directory``, shown at ``url_path``.

    The ``HEADER_FILE`` fragment found in ``directory`` or its parents (at
    most as many levels up as ``url_path`` has segments), else a plain
    header with a link home. ``headers`` is the worker's cache of fragments
    (``Services.listing_headers``; None: read without keeping them).
    """
    if headers is None:
        headers = SmallFiles(LIMITS.listing_header_max_bytes)
    levels = max(url_path.count("/") - 1, 0)
    folder = directory
    for _ in range(levels + 1):
        fragment = _read_header(os.path.join(folder, HEADER_FILE), headers)
        if fragment is not None:
            return fragment
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return '<header><nav aria-label="Site"><a href="/">Home</a></nav></header>\n'


def page(
    title: str,
    content: str,
    directory: str,
    url_path: str,
    script: str = "",
    headers: SmallFiles | None = None,
) -> bytes:
    """A whole HTML page: ``title`` (plain text, escaped here) and ``content``
    (HTML) framed by the site's header for ``directory`` shown at ``url_path``
    (``headers``: see ``site_header``)."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n{STYLE}</head>\n<body>\n"
        f"{site_header(directory, url_path, headers)}<main>\n{content}</main>\n"
        f"{script}</body>\n</html>\n"
    ).encode()


def _breadcrumbs(url_path: str) -> str:
    """``url_path`` with a relative link on every folder above the current one."""
    segments = url_path.strip("/").split("/") if url_path != "/" else []
    depth = len(segments)
    parts = [f'<a href="{"../" * depth}">/</a>' if depth else "/"]
    for index, segment in enumerate(segments):
        up = depth - index - 1
        label = shown(segment) + "/"
        parts.append(f'<a href="{"../" * up}">{label}</a>' if up else label)
    return "".join(parts)


def _row(href: str, label: str, size: str, mtime: str, row_id: str = "") -> str:
    attributes = f' id="{row_id}"' if row_id else ""
    return (
        f'<tr{attributes}><td><a href="{href}">{label}</a></td>{size}<td class="time">{mtime}</td>'
        "</tr>\n"
    )


def listing(directory: str, url_path: str, headers: SmallFiles | None = None) -> Response:
    """A 200 HTML listing of ``directory``, shown as ``url_path`` (ending in ``/``),
    with the site's header (``headers``: see ``site_header``).

    Raises ``OSError`` when the folder cannot be read.
    """
    dirs: list[tuple[str, str, str, str, str]] = []
    files: list[tuple[str, str, str, str, str]] = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                st = entry.stat()
                is_dir = entry.is_dir()
            except OSError:
                continue  # a dangling symlink, or a file removed meanwhile
            stamp = iso_time(st.st_mtime)
            mtime = f'<time datetime="{stamp}">{stamp}</time>'
            href = quote(entry.name, errors="surrogateescape")
            label = shown(entry.name)
            if is_dir:
                dirs.append((label + "/", href + "/", '<td class="size">-</td>', mtime, ""))
            else:
                size = (
                    f'<td class="size" title="{st.st_size} bytes">'
                    f'<data value="{st.st_size}">{human_size(st.st_size)}</data></td>'
                )
                files.append((label, href, size, mtime, "f-" + href))
    rows = []
    if url_path != "/":
        rows.append(_row("../", "../", '<td class="size"></td>', ""))
    for label, href, size, mtime, row_id in sorted(dirs) + sorted(files):
        rows.append(_row(href, label, size, mtime, row_id))
    content = (
        f"<h1>Index of {_breadcrumbs(url_path)}</h1>\n"
        '<p id="notice" class="notice" role="status" hidden></p>\n'
        '<table class="listing">\n<thead><tr><th scope="col">Name</th>'
        '<th scope="col" class="size">Size</th><th scope="col">Modified (UTC)</th></tr></thead>\n'
        "<tbody>\n" + "".join(rows) + "</tbody>\n</table>\n"
    )
    body = page(f"Index of {text(url_path)}", content, directory, url_path, SCRIPT, headers)
    return Response(200, [("Content-Type", HTML), ("Cache-Control", "no-cache")], body)
