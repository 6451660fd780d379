"""Compression: gzip, brotli and zstd on the fly, and precompressed files
(NGINX's ngx_http_gzip_module and ngx_http_gzip_static_module, and the
ngx_brotli and zstd-nginx-module modules).

Directives (top level, server, location; an inner level's setting replaces
an outer one's, as in NGINX):

- ``gzip on|off``, ``brotli on|off``, ``zstd on|off`` (default off): encode
  responses on the fly. ``brotli``/``zstd`` need the ``brotli``/``zstandard``
  packages (``pip install 'localhost[compression]'``); ``on`` without them
  is a configuration error.
- ``gzip_types``, ``brotli_types``, ``zstd_types MIME...|*``: the media
  types encoded (compared without parameters, case-insensitively);
  ``text/html`` always is. Default for gzip: text/html, text/css,
  text/plain, application/javascript, application/json, image/svg+xml,
  application/xml (and text/javascript, the type localhost gives ``.js``);
  brotli and zstd default to the gzip list of the same location.
- ``gzip_comp_level 1..9`` (default 1), ``brotli_comp_level 0..11``
  (default 6), ``zstd_comp_level 1..22`` (default 1).
- ``gzip_min_length SIZE`` (default 256 bytes): a response whose length is
  known and smaller goes out as it is; it applies to every coding.
- ``gzip_vary on|off`` (default off): ``Vary: Accept-Encoding`` on every
  response that could be encoded (merged with the response's own Vary),
  whether or not this client's was.
- ``gzip_static``, ``brotli_static``, ``zstd_static on|off|always``: serve
  ``FILE.gz``, ``FILE.br``, ``FILE.zst`` next to ``FILE`` when the client
  accepts the coding (``always``: whether or not it does), with FILE's
  Content-Type, the variant's own ETag and Last-Modified, and ``sendfile``;
  otherwise ``FILE`` itself (encoded on the fly if the location says so).
  Each coding has its own switch, as the NGINX modules do; ``FILE`` itself
  need not exist.
- NGINX's ``gzip_proxied`` (default ``off``: a request with a Via field is
  not answered encoded; ``any``: it is; ``expired``, ``no-cache``,
  ``no-store``, ``private``, ``no_last_modified``, ``no_etag``, ``auth``: it
  is when the response or request says so), ``gzip_http_version 1.0|1.1``
  (default 1.1: HTTP/1.0 requests are not answered encoded),
  ``gzip_disable REGEX...`` (User-Agent patterns, case-insensitive;
  ``msie6`` is MSIE 4 to 6 without SV1), and ``gzip_buffers`` (accepted for
  NGINX configurations; it has no effect here). They apply to every coding.

Which coding: the client's Accept-Encoding (``localhost.http.coding``),
among the codings on for the location whose types list the response's,
zstd before br before gzip at equal weight. Never encoded: 1xx, 204, 206,
304, a response with a Content-Encoding, one with ``Cache-Control:
no-transform``, a type not listed, a known length below the minimum. A
response to HEAD gets the fields the GET would. An encoded response loses
its Content-Length unless the encoded length is known before the head (a
whole body in memory, a cached variant), is chunked otherwise (closed at its
end on HTTP/1.0), and a strong ETag becomes weak (RFC 9110 §8.8.1).

Encoded variants of files in the open-file cache are kept with the cache
entry (``localhost.handlers.static.Variants``) and sent with their
Content-Length; larger files are read and encoded in chunks as the client
takes them (``FilePump``).

The module gives each location with compression a header filter
(``Compression.header_filter``) that marks the exchange; the HTTP/1.1
protocol then asks ``Compression.whole`` or ``Compression.start``. A
location without compression has no filter: its responses pay nothing.
Precompressed files are answered by a content handler of their own
(``PRECOMPRESSED_SPEC``, before the static handler), only in locations with
a ``*_static`` on.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

from lark import Token

from localhost.config.loader import (
    LOCATION,
    MAIN,
    SERVER,
    Directive,
    Scope,
    Validator,
    inherit,
    on_off,
    quote,
    size_value,
)
from localhost.handlers.base import BodyPolicy, HandlerSpec
from localhost.handlers.static import (
    FileCache,
    NotModified,
    StaticHandler,
    Variants,
    filesystem_path,
    inside,
    location_types,
    serve,
)
from localhost.http.coding import (
    BR,
    EXTENSIONS,
    GZIP,
    LEVELS,
    MEMO_SIZE,
    PACKAGES,
    PREFERENCE,
    ZSTD,
    Encoder,
    Negotiator,
    available,
    encode,
    media_type,
    ranked,
    vary_with,
    weak_etag,
)
from localhost.http.conditional import etag_for, precondition
from localhost.http.errors import HTTPError
from localhost.http.message import FileBody, Request, Response, encode_fields
from localhost.limits import LIMITS
from localhost.modules.base import NO_STEPS, ModuleSpec, Steps

if TYPE_CHECKING:
    from localhost.config.model import Location, ServerBlock
    from localhost.handlers.base import Exchange

#: ``gzip_types`` default (the issue's list; text/javascript is what localhost calls .js).
DEFAULT_TYPES = frozenset(
    {
        "text/html",
        "text/css",
        "text/plain",
        "text/javascript",
        "application/javascript",
        "application/json",
        "image/svg+xml",
        "application/xml",
    }
)
#: The defaults of the directives that take a number (NGINX's, and ngx_brotli's
#: brotli_comp_level 6, zstd-nginx-module's zstd_comp_level 1).
DEFAULTS: dict[str, int] = {
    "gzip_min_length": 256,
    "gzip_comp_level": 1,
    "brotli_comp_level": 6,
    "zstd_comp_level": 1,
}
#: A cached file is read whole to make an encoded variant when it is at most
#: this large (what one connection may hold queued anyway); larger files are
#: encoded as they are sent.
VARIANT_SOURCE_MAX_BYTES = LIMITS.high_water_bytes
#: An encoded variant is kept when it is at most this large (as a plain file
#: kept in memory by the open-file cache).
VARIANT_MAX_BYTES = LIMITS.cache_body_max_bytes
#: Bytes read from a file per step when it is encoded as the client takes it.
PUMP_READ_BYTES = LIMITS.file_chunk_bytes
# NGINX's "msie6": MSIE 4 to 6, except those with SV1 (XP SP2, which can).
_MSIE6 = r"MSIE [4-6]\.(?!.*SV1)"
_PROXIED = frozenset(
    {"off", "any", "expired", "no-cache", "no-store", "private", "no_last_modified", "no_etag",
     "auth"}
)  # fmt: skip
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_NEVER = frozenset({204, 206, 304})
# Request fields that make a response depend on more than the path (as the static handler's).
_CONDITIONAL = frozenset(
    {"if-match", "if-none-match", "if-modified-since", "if-unmodified-since", "range"}
)


# -- directives ------------------------------------------------------------------------


def _switch(coding: str) -> Any:
    def convert(v: Validator, args: list[Token]) -> bool:
        on = on_off(v, args)
        if on and not available(coding):
            v.fail(
                args[0],
                f"{coding} needs the {PACKAGES[coding]!r} package, which is not installed "
                "(pip install 'localhost[compression]')",
            )
        return on

    return convert


def _level(coding: str) -> Any:
    low, high = LEVELS[coding]

    def convert(v: Validator, args: list[Token]) -> int:
        text = str(args[0])
        if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
            v.fail(args[0], f"invalid level {quote(text)} (expected {low} to {high})")
        return int(text)

    return convert


def _types(v: Validator, args: list[Token]) -> frozenset[str]:
    found = set()
    for token in args:
        text = str(token).lower()
        if text != "*":
            main, slash, sub = text.partition("/")
            if not slash or not _TOKEN.fullmatch(main) or not _TOKEN.fullmatch(sub):
                v.fail(token, f"invalid media type {quote(token)} (expected TYPE/SUBTYPE or *)")
        found.add(text)
    return frozenset(found)


def _static(v: Validator, args: list[Token]) -> str:
    if args[0] not in ("on", "off", "always"):
        v.fail(args[0], f'invalid value {quote(args[0])} (expected "on", "off" or "always")')
    return str(args[0])


def _proxied(v: Validator, args: list[Token]) -> frozenset[str]:
    for token in args:
        if token not in _PROXIED:
            v.fail(
                token,
                f"invalid value {quote(token)} (expected off, any, expired, no-cache, no-store, "
                "private, no_last_modified, no_etag or auth)",
            )
    found = frozenset(str(token) for token in args)
    if "off" in found and len(found) > 1:
        v.fail(args[1], '"off" cannot be combined with other values')
    return found


def _http_version(v: Validator, args: list[Token]) -> bool:
    """True for ``1.0`` (HTTP/1.0 requests too)."""
    if args[0] not in ("1.0", "1.1"):
        v.fail(args[0], f'invalid value {quote(args[0])} (expected "1.0" or "1.1")')
    return str(args[0]) == "1.0"


def _disable(v: Validator, args: list[Token]) -> tuple[str, ...]:
    patterns = []
    for token in args:
        text = str(token)
        if text == "msie6":
            patterns.append(_MSIE6)
            continue
        try:
            re.compile(text, re.IGNORECASE)
        except re.error as exc:
            v.fail(token, f"invalid regular expression {quote(text)}: {exc.msg}")
        patterns.append(text)
    return tuple(patterns)


def _buffers(v: Validator, args: list[Token]) -> None:
    text = str(args[0])
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        v.fail(args[0], f"invalid number {quote(text)} (expected a count of buffers)")
    size_value(v, args[1:])


def _min_length(v: Validator, args: list[Token]) -> int:
    return size_value(v, args)


def _derive(scopes: tuple[Scope, Scope, Scope]) -> Compression | None:
    """The location's ``Compression`` (None when nothing is on)."""
    on = {c: bool(inherit(_prefix(c), False, *scopes)) for c in PREFERENCE}
    statics = {c: inherit(f"{_prefix(c)}_static", "off", *scopes) for c in PREFERENCE}
    if not any(on.values()) and all(s == "off" for s in statics.values()):
        return None
    gzip_types = inherit("gzip_types", DEFAULT_TYPES, *scopes) | {"text/html"}
    types = {GZIP: gzip_types}
    for coding in (BR, ZSTD):
        own = inherit(f"{_prefix(coding)}_types", None, *scopes)
        types[coding] = gzip_types if own is None else own | {"text/html"}
    levels = {}
    for coding in PREFERENCE:
        name = f"{_prefix(coding)}_comp_level"
        levels[coding] = inherit(name, DEFAULTS[name], *scopes)
    disable: tuple[str, ...] = inherit("gzip_disable", (), *scopes)
    return Compression(
        offered=tuple(c for c in PREFERENCE if on[c]),
        levels=levels,
        types=types,
        min_length=inherit("gzip_min_length", DEFAULTS["gzip_min_length"], *scopes),
        vary=inherit("gzip_vary", False, *scopes),
        http10=inherit("gzip_http_version", False, *scopes),
        proxied=inherit("gzip_proxied", frozenset({"off"}), *scopes),
        disable="|".join(f"(?:{p})" for p in disable) or None,
        statics=tuple(c for c in PREFERENCE if statics[c] != "off"),
        always=frozenset(c for c in PREFERENCE if statics[c] == "always"),
    )


def _prefix(coding: str) -> str:
    return {GZIP: "gzip", BR: "brotli", ZSTD: "zstd"}[coding]


# -- the location's settings and the response filter -------------------------------------


class Compression:
    """One location's compression settings (built at load) and the filter
    that applies them. See the module docstring for the meaning of each."""

    def __init__(
        self,
        offered: tuple[str, ...],
        levels: dict[str, int],
        types: dict[str, frozenset[str]],
        min_length: int,
        vary: bool,
        http10: bool,
        proxied: frozenset[str],
        disable: str | None,
        statics: tuple[str, ...],
        always: frozenset[str],
    ) -> None:
        self.offered = offered
        self.levels = levels
        self.types = types
        self.min_length = min_length
        self.vary = vary
        self.http10 = http10
        self.proxied = proxied
        self.disable = re.compile(disable, re.IGNORECASE) if disable else None
        self.statics = statics
        self.always = always
        # Offers by mask of codings (bit i: PREFERENCE[i]); made as met.
        self._negotiators: dict[int, Negotiator] = {}
        self._masks: dict[str, int] = {}  # media type -> mask of codings that take it
        self._agents: dict[str, bool] = {}  # User-Agent -> disabled
        self._ranked: dict[str, tuple[str, ...]] = {}  # Accept-Encoding -> precompressed codings
        self._keys = {coding: (id(self), coding) for coding in PREFERENCE}
        self._plain_key = (id(self), "")

    def __repr__(self) -> str:
        return f"Compression(offered={self.offered}, statics={self.statics})"

    # -- decisions --

    def header_filter(
        self, exchange: Exchange, status: int, fields: list[tuple[str, str]]
    ) -> list[tuple[str, str]]:
        """Mark ``exchange`` for the protocol (``whole``/``start`` follow)."""
        exchange.compression = self  # type: ignore[attr-defined]
        return fields

    def mask(self, media: str) -> int:
        """The codings (bit mask over ``PREFERENCE``) whose types list ``media``."""
        found = self._masks.get(media)
        if found is None:
            found = 0
            for bit, coding in enumerate(PREFERENCE):
                if coding in self.offered:
                    types = self.types[coding]
                    if media in types or "*" in types:
                        found |= 1 << bit
            if len(self._masks) >= MEMO_SIZE:
                self._masks.clear()
            self._masks[media] = found
        return found

    def choose(self, request: Request, mask: int, fields: Sequence[tuple[str, str]]) -> str | None:
        """The coding for ``request`` among ``mask``'s, or None: HTTP/1.0, a
        proxied request (``gzip_proxied``), a disabled User-Agent, or an
        Accept-Encoding that takes none of them."""
        accept = request.headers.get("accept-encoding")
        if accept is None or not self._client_ok(request, fields):
            return None
        negotiator = self._negotiators.get(mask)
        if negotiator is None:
            offer = [c for bit, c in enumerate(PREFERENCE) if mask & (1 << bit)]
            negotiator = self._negotiators[mask] = Negotiator(offer)
        return negotiator(accept)

    def _client_ok(self, request: Request, fields: Sequence[tuple[str, str]]) -> bool:
        """Whether the request may be answered encoded at all (gzip_http_version,
        gzip_proxied, gzip_disable)."""
        if request.version == "HTTP/1.0" and not self.http10:
            return False
        headers = request.headers
        if "via" in headers and not self._proxied_ok(request, fields):
            return False
        if self.disable is not None:
            agent = headers.get("user-agent")
            if agent is not None and self._disabled(agent):
                return False
        return True

    def _disabled(self, agent: str) -> bool:
        found = self._agents.get(agent)
        if found is None:
            assert self.disable is not None
            found = self.disable.search(agent) is not None
            if len(self._agents) >= MEMO_SIZE:
                self._agents.clear()
            self._agents[agent] = found
        return found

    def _proxied_ok(self, request: Request, fields: Sequence[tuple[str, str]]) -> bool:
        """NGINX's gzip_proxied for a request with Via."""
        proxied = self.proxied
        if "any" in proxied:
            return True
        if "off" in proxied:
            return False
        if "auth" in proxied and "authorization" in request.headers:
            return True
        own = {name.lower(): value.lower() for name, value in fields}
        control = own.get("cache-control", "")
        for flag in ("no-cache", "no-store", "private"):
            if flag in proxied and flag in control:
                return True
        if "expired" in proxied and "expires" in own:
            return True
        if "no_last_modified" in proxied and "last-modified" not in own:
            return True
        return "no_etag" in proxied and "etag" not in own

    def eligible(self, status: int, fields: Sequence[tuple[str, str]], length: int | None) -> int:
        """The mask of codings that may encode a response of ``status`` with
        ``fields`` and a body of ``length`` bytes (None: unknown); 0 for none."""
        if status < 200 or status in _NEVER:
            return 0
        if length is not None and length < self.min_length:
            return 0
        media = None
        for name, value in fields:
            lower = name.lower()
            if lower == "content-type":
                media = value
            elif lower == "content-encoding":
                if value.strip().lower() != "identity":
                    return 0
            elif lower == "cache-control" and "no-transform" in value.lower():
                return 0
        if media is None:
            return 0
        return self.mask(media_type(media))

    # -- responses --

    def fields(
        self,
        headers: Sequence[tuple[str, str]],
        extra: list[tuple[str, str]],
        coding: str | None,
    ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """The response's fields and the extra fields for ``coding`` (None:
        only the Vary of ``gzip_vary``): Content-Encoding added, a strong
        ETag made weak, Vary merged (in the response's own, else in the
        extra fields' Vary, else added)."""
        out: list[tuple[str, str]] = []
        vary = self.vary
        for name, value in headers:
            lower = name.lower()
            if lower == "etag" and coding is not None:
                value = weak_etag(value)
            elif lower == "vary" and vary:
                value = vary_with(value)
                vary = False
            elif lower == "content-encoding":
                continue  # "identity": replaced, or dropped (RFC 9110 §8.4.1)
            elif lower == "accept-ranges" and coding is not None:
                continue  # a Range request gets the file as it is (as NGINX's gzip filter)
            out.append((name, value))
        if vary:
            for index, (name, value) in enumerate(extra):
                if name.lower() == "vary":
                    extra = list(extra)
                    extra[index] = (name, vary_with(value))
                    vary = False
                    break
            if vary:
                out.append(("Vary", "Accept-Encoding"))
        if coding is not None:
            out.append(("Content-Encoding", coding))
        return out, extra

    def whole(
        self, exchange: Exchange, response: Response, extra: list[tuple[str, str]]
    ) -> tuple[Response, list[tuple[str, str]], FilePump | None]:
        """A whole response as it goes out: encoded (bytes: encoded at once,
        with their length; a file: a ``FilePump`` that encodes it as it is
        sent, the length unknown), with the Vary of ``gzip_vary`` only, or
        unchanged."""
        status = response.status
        if response.parts is not None:
            return response, extra, None
        variants: Variants | None = response.variants
        if variants is not None and status == 200:
            return self._cached(exchange, response, extra, variants)
        if type(response) is NotModified:
            not_modified, extra = self._not_modified(exchange, response, extra)
            return not_modified, extra, None
        mask = self.eligible(status, response.headers, response.content_length)
        if not mask:
            return response, extra, None
        coding = self.choose(exchange.request, mask, response.headers)
        if coding is None and not self.vary:
            return response, extra, None
        fields, extra = self.fields(response.headers, extra, coding)
        if coding is None:
            plain = Response(status, fields, response.body, response.file, response.close)
            return plain, extra, None
        level = self.levels[coding]
        file = response.file
        if file is None:
            body = encode(coding, level, response.body)
            return Response(status, fields, body, close=response.close), extra, None
        out = Response(status, fields, close=response.close)
        return out, extra, FilePump(file, Encoder(coding, level))

    def _not_modified(
        self, exchange: Exchange, response: NotModified, extra: list[tuple[str, str]]
    ) -> tuple[Response, list[tuple[str, str]]]:
        """A 304 with the ETag and Vary the 200 would have had for this
        request (RFC 9110 §15.4.5): weak when it would have been encoded,
        Vary when ``gzip_vary`` is on and the 200 could have been."""
        mask = self.eligible(200, [("Content-Type", response.media)], response.length)
        if not mask:
            return response, extra
        coding = self.choose(exchange.request, mask, response.headers)
        if coding is None and not self.vary:
            return response, extra
        fields, extra = self.fields(response.headers, extra, coding)
        # Representation metadata other than those stays out of a 304.
        kept = [(name, value) for name, value in fields if name.lower() != "content-encoding"]
        return Response(304, kept, close=response.close), extra

    def _cached(
        self,
        exchange: Exchange,
        response: Response,
        extra: list[tuple[str, str]],
        variants: Variants,
    ) -> tuple[Response, list[tuple[str, str]], FilePump | None]:
        """A response of the open-file cache: its variant for the chosen
        coding, made once and kept with the cache entry."""
        headers = response.headers
        mask = variants.masks.get(self._plain_key)
        if mask is None:
            mask = variants.masks[self._plain_key] = self.eligible(
                200, headers, response.content_length
            )
        if not mask:
            return response, extra, None
        coding = self.choose(exchange.request, mask, headers)
        if coding is None and not self.vary:
            return response, extra, None
        key = self._plain_key if coding is None else self._keys[coding]
        found = variants.items.get(key)
        if found is not None and not extra:
            response.release()
            return Response(200, found[0], found[1], raw_fields=found[2]), extra, None
        fields, extra = self.fields(headers, extra, coding)
        if found is not None:
            response.release()
            return Response(200, fields, found[1]), extra, None
        file = response.file
        if coding is None:
            body = response.body
        elif file is None:
            body = encode(coding, self.levels[coding], response.body)
        elif file.count <= VARIANT_SOURCE_MAX_BYTES:
            data = os.pread(file.fd, file.count, file.offset)
            if len(data) != file.count:  # changed under our feet: not kept
                out = Response(200, fields, close=response.close)
                return out, extra, FilePump(file, Encoder(coding, self.levels[coding]))
            response.release()
            body = encode(coding, self.levels[coding], data)
        else:
            out = Response(200, fields, close=response.close)
            return out, extra, FilePump(file, Encoder(coding, self.levels[coding]))
        if coding is None and file is not None:
            # The plain file with Vary: sent from its descriptor as before.
            return Response(200, fields, file=file), extra, None
        if coding is None or len(body) <= VARIANT_MAX_BYTES:
            own, _ = self.fields(headers, [], coding)
            raw = encode_fields(own) + b"Content-Length: %d\r\n" % len(body)
            # The plain variant shares the entry's bytes: it costs the budget nothing.
            cost = 0 if coding is None else len(body)
            exchange.services.files.keep_variant(variants, key, (own, body, raw), cost)
        return Response(200, fields, body), extra, None

    def start(
        self, exchange: Exchange, response: Response, length: int | None
    ) -> tuple[Response, int | None, Encoder | None]:
        """A streamed response's head as it goes out, its length (None once
        encoded) and the encoder of its body (None: sent as it is)."""
        status = response.status
        mask = self.eligible(status, response.headers, length)
        if not mask:
            return response, length, None
        coding = self.choose(exchange.request, mask, response.headers)
        if coding is None and not self.vary:
            return response, length, None
        fields, extra = self.fields(response.headers, [], coding)
        out = Response(status, fields + extra, close=response.close)
        if coding is None:
            return out, length, None
        return out, None, Encoder(coding, self.levels[coding])

    # -- precompressed files --

    def precompressed(self, exchange: Exchange) -> Response | None:
        """``FILE.gz`` (.br, .zst) for the request, or None to serve ``FILE``."""
        request = exchange.request
        location = exchange.location
        assert location is not None
        statics = self.statics
        accept = request.headers.get("accept-encoding")
        wanted: tuple[str, ...] = ()
        if accept is not None and self._client_ok(request, ()):
            wanted = self._ranked.get(accept) or ()
            if accept not in self._ranked:
                wanted = ranked(accept, statics)
                if len(self._ranked) >= MEMO_SIZE:
                    self._ranked.clear()
                self._ranked[accept] = wanted
        if self.always:
            wanted += tuple(c for c in statics if c in self.always and c not in wanted)
        if not wanted and not self.vary:
            return None
        files = exchange.services.files
        if files.entries:
            for coding in wanted:
                hit = files.cached_variant(request, location, EXTENSIONS[coding])
                if hit is not None:
                    return hit
        try:
            root, path = filesystem_path(request, location, files)
        except HTTPError:
            return None
        if request.path.endswith("/") or (
            location.cgi and os.path.splitext(path)[1] in location.cgi
        ):
            return None
        found = False
        for coding in wanted or statics:
            variant = os.path.realpath(path + EXTENSIONS[coding])
            if not inside(root, variant):
                continue
            try:
                fd = os.open(variant, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
            except OSError:
                continue
            found = True
            if coding not in wanted:
                os.close(fd)
                break
            try:
                return self._variant_file(fd, request, location, path, variant, coding, files)
            except BaseException:
                os.close(fd)
                raise
        if found and self.vary:
            # A plain answer where a variant exists varies with Accept-Encoding too.
            plain = serve(request, location, files, exchange.services.listing_headers)
            fields, _ = self.fields(plain.headers, [], None)
            return Response(plain.status, fields, plain.body, plain.file, plain.close, plain.parts)
        return None

    def _variant_file(
        self,
        fd: int,
        request: Request,
        location: Location,
        path: str,
        variant: str,
        coding: str,
        files: FileCache,
    ) -> Response | None:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            return None
        etag = etag_for(st)
        validators = [("ETag", etag), ("Last-Modified", formatdate(st.st_mtime, usegmt=True))]
        vary = [("Vary", "Accept-Encoding")] if self.vary and coding not in self.always else []
        status = precondition(request.headers, request.method, etag, st.st_mtime)
        if status == 304:
            os.close(fd)
            return Response(304, [*validators, *vary])
        if status == 412:
            raise HTTPError(412, f"precondition failed for {path}")
        headers = [
            ("Content-Type", location_types(location)(path)),
            ("Content-Encoding", coding),
            *vary,
            *validators,
        ]
        if not request.headers.has_any(_CONDITIONAL):
            ext = EXTENSIONS[coding]
            body = files.remember(location, request, variant, st, headers, fd, ext)
            if body is not None:
                os.close(fd)
                return Response(200, headers, body)
        return Response(200, headers, file=FileBody(fd, 0, st.st_size))


class FilePump:
    """A file region read and encoded as the client takes it: ``read()``
    returns the next encoded bytes (possibly empty), None once all is out;
    ``close()`` releases the file (also when the client went away)."""

    __slots__ = ("file", "encoder", "ended")

    def __init__(self, file: FileBody, encoder: Encoder) -> None:
        self.file = file
        self.encoder = encoder
        self.ended = False

    def read(self) -> bytes | None:
        """The encoded bytes of the next ``PUMP_READ_BYTES`` of the file."""
        if self.ended:
            return None
        file = self.file
        if file.count <= 0:
            self.ended = True
            file.close()
            return self.encoder.finish()
        data = os.pread(file.fd, min(PUMP_READ_BYTES, file.count), file.offset)
        if not data:
            # The file shrank: end the body here (its framing is chunked or
            # close-delimited, so what was sent stays well-formed).
            file.count = 0
            return b""
        file.offset += len(data)
        file.count -= len(data)
        return self.encoder.compress(data)

    def close(self) -> None:
        """Release the file."""
        self.ended = True
        self.file.close()


# -- the precompressed files' handler ----------------------------------------------------


class PrecompressedHandler(StaticHandler):
    """GET/HEAD in a location with ``gzip_static`` (``brotli_static``,
    ``zstd_static``): the precompressed variant when there is one to send,
    else the static handler's answer."""

    __slots__ = ()

    def on_head(self) -> BodyPolicy:
        exchange = self.exchange
        request = exchange.request
        if not request.content_length and not request.chunked:
            location = exchange.location
            assert location is not None
            compression: Compression = location.options["gzip"]
            found = compression.precompressed(exchange)
            if found is not None:
                exchange.send(found)
                return BodyPolicy.IGNORE
        return super().on_head()


_GET_HEAD = frozenset({"GET", "HEAD"})


def _static_methods(location: Location) -> frozenset[str]:
    found = location.options.get("gzip")
    return _GET_HEAD if isinstance(found, Compression) and found.statics else frozenset()


#: Answers GET and HEAD before the static handler where a ``*_static`` is on.
PRECOMPRESSED_SPEC = HandlerSpec(
    "precompressed", _static_methods, PrecompressedHandler, priority=890
)


# -- the module ----------------------------------------------------------------------------


def _row(convert: Any, syntax: str, least: int = 1, most: int | None = 1, **more: Any) -> Directive:
    """A directive of the top level, server blocks and locations."""
    return Directive((MAIN, SERVER, LOCATION), least, most, convert, syntax=syntax, **more)


DIRECTIVES: dict[str, Any] = {
    # Its derived value is the location's whole Compression (or None).
    "gzip": _row(_switch(GZIP), "gzip on|off", derive=_derive),
    "gzip_types": _row(_types, "gzip_types MIME...|*", most=None),
    "gzip_min_length": _row(_min_length, "gzip_min_length SIZE"),
    "gzip_comp_level": _row(_level(GZIP), "gzip_comp_level 1..9"),
    "gzip_vary": _row(on_off, "gzip_vary on|off"),
    "gzip_static": _row(_static, "gzip_static on|off|always"),
    "gzip_proxied": _row(_proxied, "gzip_proxied off|any|expired|no-cache|...", most=None),
    "gzip_http_version": _row(_http_version, "gzip_http_version 1.0|1.1"),
    "gzip_disable": _row(_disable, "gzip_disable REGEX...|msie6", most=None),
    "gzip_buffers": _row(_buffers, "gzip_buffers NUMBER SIZE", least=2, most=2),
    "brotli": _row(_switch(BR), "brotli on|off"),
    "brotli_types": _row(_types, "brotli_types MIME...|*", most=None),
    "brotli_comp_level": _row(_level(BR), "brotli_comp_level 0..11"),
    "brotli_static": _row(_static, "brotli_static on|off|always"),
    "zstd": _row(_switch(ZSTD), "zstd on|off"),
    "zstd_types": _row(_types, "zstd_types MIME...|*", most=None),
    "zstd_comp_level": _row(_level(ZSTD), "zstd_comp_level 1..22"),
    "zstd_static": _row(_static, "zstd_static on|off|always"),
}


def build(server: ServerBlock, location: Location | None) -> Steps:
    """The header filter of a location that encodes on the fly; no steps otherwise."""
    if location is None:
        return NO_STEPS
    found = location.options.get("gzip")
    if not isinstance(found, Compression) or not found.offered:
        return NO_STEPS
    return Steps(header_filter=found.header_filter)


SPEC = ModuleSpec("compression", DIRECTIVES, build, order=60)
