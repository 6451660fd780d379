"""Content codings: Accept-Encoding negotiation and the encoders, sans-IO.

Negotiation follows RFC 9110 §12.5.3. The request's ``Accept-Encoding`` is
a list of codings with optional weights (``gzip;q=0.8``, RFC 9110 §12.4.2);
``*`` stands for every coding not named; ``identity`` is the absence of a
coding. Codings compare case-insensitively, ``x-gzip`` is ``gzip``
(RFC 9110 §8.4.1.3), and a part that does not parse (a bad weight, an empty
or odd name) is ignored, as a part nobody sent. The server picks, among the
codings it offers, the one with the highest weight above 0; at equal weight
the offer's order decides (localhost offers zstd, then br, then gzip). A
coding is not chosen when the client weighs ``identity`` above it. No
Accept-Encoding at all, or an empty one, chooses no coding: a client that
does not ask gets the representation as it is (as NGINX).

A client that refuses ``identity`` (``identity;q=0``, or ``*;q=0`` without
``identity``) and accepts none of the offered codings still gets the
uncompressed representation: RFC 9110 §12.5.3 lets a server send it rather
than a 415/406, and so do NGINX and the common servers.

The encoders (``Encoder``) wrap zlib (gzip), ``brotli`` and ``zstandard``;
the last two are optional packages (the ``compression`` extra), reported by
``available``.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

GZIP = "gzip"
BR = "br"
ZSTD = "zstd"
#: Every coding localhost can produce, most preferred first (at equal weight).
PREFERENCE: tuple[str, ...] = (ZSTD, BR, GZIP)
#: The file name extension of each coding's precompressed files (``gzip_static``).
EXTENSIONS: dict[str, str] = {GZIP: ".gz", BR: ".br", ZSTD: ".zst"}
#: The Python package each coding needs (gzip: the standard library's zlib).
PACKAGES: dict[str, str] = {GZIP: "zlib", BR: "brotli", ZSTD: "zstandard"}
#: Parsed Accept-Encoding values a ``Negotiator`` remembers; past it the memo starts over.
MEMO_SIZE = 512

_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz")
_ALIASES = {"x-gzip": GZIP}


def parse_qvalue(text: str) -> float | None:
    """The weight of ``text`` (RFC 9110 §12.4.2: ``0``, ``0.5``, ``1.000``; at
    most three decimals, from 0 to 1), or None when it is not one."""
    if not text or len(text) > 5:
        return None
    head, _, tail = text.partition(".")
    if head not in ("0", "1") or len(tail) > 3:
        return None
    if tail and not (tail.isascii() and tail.isdigit()):
        return None
    if head == "1":
        return 1.0 if not tail or tail.strip("0") == "" else None
    return float("0." + tail) if tail else 0.0


def parse_accept_encoding(value: str) -> dict[str, float]:
    """The codings of an Accept-Encoding value with their weights: lower-case
    names (``x-gzip`` as ``gzip``, ``*`` and ``identity`` as they are) →
    weight from 0 to 1 (1 when none is given).

    Malformed parts are left out; a coding named twice keeps its first
    weight. Never raises.
    """
    found: dict[str, float] = {}
    for part in value.split(","):
        name, _, params = part.partition(";")
        name = name.strip(" \t").lower()
        if not name or not _TOKEN_CHARS.issuperset(name):
            continue
        weight: float | None = 1.0
        if params:
            for param in params.split(";"):
                key, equals, text = param.partition("=")
                key = key.strip(" \t").lower()
                if not key and not equals:
                    continue  # an empty parameter: "gzip;"
                if key != "q" or not equals:
                    weight = None  # Accept-Encoding codings take no other parameter
                    break
                weight = parse_qvalue(text.strip(" \t"))
                if weight is None:
                    break
        if weight is None:
            continue
        name = _ALIASES.get(name, name)
        if name not in found:
            found[name] = weight
    return found


def ranked(value: str | None, offered: Sequence[str]) -> tuple[str, ...]:
    """The codings of ``offered`` (most preferred first) that a request whose
    Accept-Encoding is ``value`` (None: absent) takes, best first: by weight,
    then by the offer's order; none weighted 0 or below ``identity``."""
    if not value:
        return ()
    weights = parse_accept_encoding(value)
    if not weights:
        return ()
    star = weights.get("*")
    identity = weights.get("identity", star)
    floor = identity if identity is not None else 0.0
    taken = []
    for order, coding in enumerate(offered):
        weight = weights.get(coding, star)
        if weight is not None and weight > 0 and weight >= floor:
            taken.append((-weight, order, coding))
    taken.sort()
    return tuple(coding for _, _, coding in taken)


def negotiate(value: str | None, offered: Sequence[str]) -> str | None:
    """The coding of ``offered`` (most preferred first) to answer a request
    whose Accept-Encoding is ``value`` (None: absent), or None for none
    (the representation as it is). See the module docstring for the rules."""
    found = ranked(value, offered)
    return found[0] if found else None


class Negotiator:
    """``negotiate`` for one offer, with a bounded memo of the values seen
    (browsers send a handful of distinct Accept-Encoding values)."""

    __slots__ = ("offered", "_memo")

    def __init__(self, offered: Sequence[str]) -> None:
        self.offered = tuple(offered)
        self._memo: dict[str, str | None] = {}

    def __call__(self, value: str | None) -> str | None:
        """The coding to use for Accept-Encoding ``value`` (None: absent), or None."""
        if value is None:
            return None
        memo = self._memo
        try:
            return memo[value]
        except KeyError:
            pass
        chosen = negotiate(value, self.offered)
        if len(memo) >= MEMO_SIZE:
            memo.clear()
        memo[value] = chosen
        return chosen


# -- header values -------------------------------------------------------------


def media_type(content_type: str) -> str:
    """The lower-case media type of a Content-Type value, without parameters
    (``Text/HTML; charset=utf-8`` → ``text/html``; RFC 9110 §8.3.1)."""
    return content_type.partition(";")[0].strip(" \t").lower()


def weak_etag(etag: str) -> str:
    """``etag`` as a weak validator (``"x"`` → ``W/"x"``; a weak one stays).

    A compressed variant is not byte-identical to the representation the
    strong tag names (RFC 9110 §8.8.1, §8.8.3)."""
    return etag if etag.startswith("W/") else "W/" + etag


def vary_with(value: str | None, name: str = "Accept-Encoding") -> str:
    """A Vary value that also names ``name`` (RFC 9110 §12.5.5): ``value``
    unchanged when it names it (any case) or is ``*``."""
    if not value:
        return name
    lower = name.lower()
    for part in value.split(","):
        part = part.strip(" \t").lower()
        if part == lower or part == "*":
            return value
    return f"{value}, {name}"


def no_transform(cache_control: str) -> bool:
    """Whether a Cache-Control value holds ``no-transform`` (RFC 9111 §5.2.2.6)."""
    return "no-transform" in cache_control.lower()


# -- encoders ------------------------------------------------------------------


def _module(coding: str) -> Any:
    if coding == BR:
        import brotli  # type: ignore[import-untyped]

        return brotli
    if coding == ZSTD:
        import zstandard

        return zstandard
    return zlib


def available(coding: str) -> bool:
    """Whether ``coding`` can be produced here (its package imports)."""
    if coding not in PACKAGES:
        return False
    try:
        _module(coding)
    except ImportError:
        return False
    return True


#: The levels each coding takes: (lowest, highest).
LEVELS: dict[str, tuple[int, int]] = {GZIP: (1, 9), BR: (0, 11), ZSTD: (1, 22)}


class Encoder:
    """A streaming encoder of one coding and level: ``compress(data)`` returns
    what is ready (often ``b""``: the coding keeps a window), ``finish()``
    the rest, once. ``coding`` must be ``available``; ``level`` within
    ``LEVELS[coding]`` (the caller checks both at load)."""

    __slots__ = ("coding", "_compress", "_finish")

    def __init__(self, coding: str, level: int) -> None:
        self.coding = coding
        if coding == GZIP:
            # wbits 16 + 15: a gzip member (RFC 1952), not a bare zlib stream.
            gz = zlib.compressobj(level, zlib.DEFLATED, 31, 8)
            self._compress = gz.compress
            self._finish = gz.flush
        elif coding == BR:
            brotli = _module(BR)
            compressor = brotli.Compressor(quality=level)
            self._compress = compressor.process
            self._finish = compressor.finish
        elif coding == ZSTD:
            zstd = _module(ZSTD)
            cobj = zstd.ZstdCompressor(level=level).compressobj()
            self._compress = cobj.compress
            self._finish = cobj.flush
        else:
            raise ValueError(f"unknown content coding {coding!r}")

    def compress(self, data: bytes) -> bytes:
        """The encoded bytes ready after ``data`` (possibly none)."""
        return bytes(self._compress(data))

    def finish(self) -> bytes:
        """The encoded bytes that end the stream."""
        return bytes(self._finish())


def encode(coding: str, level: int, data: bytes) -> bytes:
    """``data`` encoded whole with ``coding`` at ``level`` (a complete gzip
    member, brotli stream or zstd frame with its content size)."""
    if coding == GZIP:
        gz = zlib.compressobj(level, zlib.DEFLATED, 31, 8)
        return gz.compress(data) + gz.flush()
    if coding == BR:
        return bytes(_module(BR).compress(data, quality=level))
    if coding == ZSTD:
        return bytes(_module(ZSTD).ZstdCompressor(level=level).compress(data))
    raise ValueError(f"unknown content coding {coding!r}")
