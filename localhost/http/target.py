"""Request-target normalisation (RFC 9112 §3.2, RFC 3986 §5.2.4): sans-IO.

``normalize_target`` turns a request-target into the decoded, normalised
path that routing and the file handlers use, and its query.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from localhost.http.errors import HTTPError

_HEX = frozenset("0123456789abcdefABCDEF")


def _check_escapes(path: str) -> None:
    """Every ``%`` must start a ``%XX`` escape (RFC 3986 §2.1)."""
    index = path.find("%")
    while index >= 0:
        pair = path[index + 1 : index + 3]
        if len(pair) != 2 or pair[0] not in _HEX or pair[1] not in _HEX:
            raise HTTPError(400, "invalid percent-encoding in the request-target")
        index = path.find("%", index + 3)


def _remove_dot_segments(path: str) -> str:
    """Resolve ``.``, ``..`` and empty segments; ``..`` above ``/`` is a 400."""
    segments: list[str] = []
    parts = path.split("/")
    for segment in parts[1:]:
        if segment == "..":
            if not segments:
                raise HTTPError(400, "request path goes above the root")
            segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    trailing = parts[-1] in ("", ".", "..") and bool(segments)
    return "/" + "/".join(segments) + ("/" if trailing else "")


def normalize_target(target: str) -> tuple[str, str]:
    """Split an origin- or absolute-form target into ``(path, query)``.

    ``path`` is percent-decoded once (bytes that are not UTF-8 are kept as
    surrogate escapes, like ``os.fsdecode``), with dot segments resolved and
    repeated slashes merged, as NGINX does. ``query`` is left encoded. An
    absolute-form target with an empty path has the path ``/``.
    Raises ``HTTPError(400)`` for a bad escape, a NUL byte, or a path that
    climbs above ``/``.
    """
    if target[0] != "/":
        if target == "*":
            return "*", ""
        # Absolute-form: the path starts after the authority, which ends at
        # "/", "?" or "#"; an empty path is "/" (RFC 9112 §3.2.2, RFC 3986
        # §3.3 path-abempty), so http://h?x=1 is /?x=1.
        start = target.find("//") + 2
        end = len(target)
        for stop in "/?#":
            index = target.find(stop, start, end)
            if index >= 0:
                end = index
        target = target[end:]
        if target[:1] != "/":
            target = "/" + target
    path, _, query = target.partition("?")
    path = path.partition("#")[0]
    if "%" in path:
        _check_escapes(path)
        path = unquote_to_bytes(path).decode("utf-8", "surrogateescape")
        if "\0" in path:
            raise HTTPError(400, "NUL byte in the request path")
    if "/." in path or "//" in path or path[0] != "/":
        path = _remove_dot_segments(path if path[0] == "/" else "/" + path)
    return path, query
