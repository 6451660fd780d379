"""Conditional and range requests (RFC 9110 §13 and §14), as pure functions.

``etag_for`` makes a strong validator from a file's inode, size and
modification time. ``precondition`` evaluates If-Match, If-Unmodified-Since,
If-None-Match and If-Modified-Since in the order of RFC 9110 §13.2.2 and
says whether to answer 304 or 412. ``byte_ranges`` reads a Range field
(with If-Range) against a representation's size.
"""

from __future__ import annotations

import os
from email.utils import parsedate_to_datetime

from localhost.http.message import Headers

MAX_RANGES = 16  # more ranges than this in one request: the whole file is sent instead


def etag_for(st: os.stat_result) -> str:
    """A strong entity tag for a file's current content (RFC 9110 §8.8.3)."""
    return f'"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"'


def _http_date(value: str) -> float | None:
    """Seconds since the epoch of an HTTP-date, or ``None`` if it is not one."""
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None or parsed.tzinfo is None:
        return None
    return parsed.timestamp()


def _tags(value: str) -> list[str]:
    """Entity tags of an If-Match / If-None-Match list (``*`` kept as is)."""
    return [tag.strip() for tag in value.split(",") if tag.strip()]


def _weak_match(tags: list[str], etag: str) -> bool:
    bare = etag.removeprefix("W/")
    return any(tag == "*" or tag.removeprefix("W/") == bare for tag in tags)


def _strong_match(tags: list[str], etag: str) -> bool:
    if etag.startswith("W/"):
        return False
    return any(tag == "*" or tag == etag for tag in tags)


def precondition(headers: Headers, method: str, etag: str, mtime: float) -> int | None:
    """304 or 412 when a precondition decides the response, else ``None``.

    ``mtime`` is the representation's modification time in seconds; HTTP
    dates have a resolution of one second, so it is compared truncated.
    """
    seconds = int(mtime)
    if_match = headers.get("if-match")
    if if_match is not None:
        if not _strong_match(_tags(if_match), etag):
            return 412
    else:
        since = headers.get("if-unmodified-since")
        date = _http_date(since) if since is not None else None
        if date is not None and seconds > date:
            return 412
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        if _weak_match(_tags(if_none_match), etag):
            return 304 if method in ("GET", "HEAD") else 412
    elif method in ("GET", "HEAD"):
        since = headers.get("if-modified-since")
        date = _http_date(since) if since is not None else None
        if date is not None and seconds <= date:
            return 304
    return None


class Unsatisfiable(Exception):
    """No range of the Range field overlaps the representation (→ 416)."""


def byte_ranges(
    headers: Headers, size: int, etag: str, mtime: float
) -> list[tuple[int, int]] | None:
    """The ``(first, last)`` byte positions to send (inclusive), or ``None`` for
    the whole representation.

    ``None`` also when there is no Range field, when it is not a valid
    ``bytes=`` range set (a server may ignore it: RFC 9110 §14.2), when
    If-Range does not match, or when there are more than ``MAX_RANGES``.
    Overlapping and adjacent ranges are merged. Raises ``Unsatisfiable``.
    """
    value = headers.get("range")
    if value is None:
        return None
    if_range = headers.get("if-range")
    if if_range is not None:
        if if_range.startswith('"') or if_range.startswith("W/"):
            if not _strong_match([if_range.strip()], etag):
                return None
        else:
            date = _http_date(if_range)
            if date is None or int(mtime) != date:
                return None
    unit, _, ranges = value.partition("=")
    if unit.strip().lower() != "bytes" or not ranges.strip():
        return None
    wanted: list[tuple[int, int]] = []
    specs = ranges.split(",")
    if len(specs) > MAX_RANGES:
        return None
    for spec in specs:
        spec = spec.strip()
        first_text, dash, last_text = spec.partition("-")
        if not dash or not (first_text.isdigit() or (not first_text and last_text.isdigit())):
            return None
        if last_text and not last_text.isdigit():
            return None
        if not first_text:  # suffix range: the last N bytes
            suffix = int(last_text)
            if suffix == 0:
                continue
            wanted.append((max(size - suffix, 0), size - 1))
            continue
        first = int(first_text)
        if last_text and int(last_text) < first:
            return None  # invalid syntax (RFC 9110 §14.1.1): ignore the field
        if first >= size:
            continue
        last = int(last_text) if last_text else size - 1
        wanted.append((first, min(last, size - 1)))
    if not wanted:
        raise Unsatisfiable
    wanted.sort()
    merged = [wanted[0]]
    for first, last in wanted[1:]:
        if first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged
