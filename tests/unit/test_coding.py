"""Content-coding negotiation (RFC 9110 §12.5.3), header helpers and encoders."""

from __future__ import annotations

import gzip
import zlib

import brotli
import pytest
import zstandard

from localhost.http.coding import (
    MEMO_SIZE,
    Encoder,
    Negotiator,
    encode,
    media_type,
    negotiate,
    no_transform,
    parse_accept_encoding,
    parse_qvalue,
    ranked,
    vary_with,
    weak_etag,
)

ALL = ("zstd", "br", "gzip")  # the server's preference, as the README says

# (Accept-Encoding, offered codings, expected coding or None)
TABLE = [
    # no field, an empty field: no coding
    (None, ALL, None),
    ("", ALL, None),
    ("   ", ALL, None),
    # a plain list: the server's preference at equal weight
    ("gzip", ALL, "gzip"),
    ("gzip, br", ALL, "br"),
    ("gzip, deflate, br, zstd", ALL, "zstd"),
    ("gzip, deflate, br", ("gzip",), "gzip"),
    ("deflate", ALL, None),
    # weights decide before preference
    ("gzip;q=1.0, br;q=0.5", ALL, "gzip"),
    ("zstd;q=0.1, br;q=0.2, gzip;q=0.3", ALL, "gzip"),
    ("br;q=0.9, gzip;q=0.9", ALL, "br"),
    ("gzip;q=0", ALL, None),
    ("gzip;q=0, br", ALL, "br"),
    ("gzip;q=0.001", ALL, "gzip"),
    # case-insensitive codings and parameter names, x-gzip, whitespace
    ("GZIP", ALL, "gzip"),
    ("Br;Q=0.5", ALL, "br"),
    ("x-gzip", ALL, "gzip"),
    ("  gzip  ;  q=0.5  ,\tbr ; q=0.4", ALL, "gzip"),
    # "*" stands for every coding not named
    ("*", ALL, "zstd"),
    ("*", ("gzip",), "gzip"),
    ("*;q=0.5, br;q=0.7", ALL, "br"),
    ("*;q=0.5, zstd;q=0", ALL, "br"),
    ("*;q=0", ALL, None),
    ("gzip, *;q=0", ALL, "gzip"),
    # identity weighed above every coding: none
    ("gzip;q=0.5, identity", ALL, None),
    ("gzip;q=0.5, identity;q=0.4", ALL, "gzip"),
    ("identity;q=0, gzip", ALL, "gzip"),
    ("identity;q=0", ALL, None),
    ("br;q=0.5, *", ("gzip",), "gzip"),
    # malformed parts are ignored, the rest is read
    ("gzip;q=2, br", ALL, "br"),
    ("gzip;q=abc", ALL, None),
    ("gzip;q=0.1234", ALL, None),
    ("gzip;q=-1", ALL, None),
    ("gzip;q=1.5", ALL, None),
    ("gzip;level=9, br", ALL, "br"),
    ("gz ip, br;q=0.3", ALL, "br"),
    (",,, gzip ,,", ALL, "gzip"),
    ("gzip;", ALL, "gzip"),
    ("gzip;q=", ALL, None),
    ("gzip;q=0.", ALL, None),
    ("gzip;q=1.", ALL, "gzip"),
    ("gzip;q=1.000", ALL, "gzip"),
    ("gzip;q=1.001", ALL, None),
    ("gzip;q=0.5;q=0.9", ALL, "gzip"),
    ("gzip;q=²", ALL, None),
    ("é, gzip", ALL, "gzip"),
    # a coding named twice keeps its first weight
    ("gzip;q=0, gzip", ALL, None),
    # offered nothing: nothing
    ("gzip, br, zstd", (), None),
]


@pytest.mark.parametrize(("value", "offered", "expected"), TABLE)
def test_negotiation_table(
    value: str | None, offered: tuple[str, ...], expected: str | None
) -> None:
    assert negotiate(value, offered) == expected
    # The memoising negotiator agrees, first time and remembered.
    negotiator = Negotiator(offered)
    assert negotiator(value) == expected
    assert negotiator(value) == expected


def test_ranked_orders_by_weight_then_preference() -> None:
    assert ranked("gzip;q=0.5, br;q=0.8, zstd;q=0.5", ALL) == ("br", "zstd", "gzip")
    assert ranked("gzip, br", ALL) == ("br", "gzip")
    assert ranked("identity", ALL) == ()
    assert ranked(None, ALL) == ()


@pytest.mark.parametrize(
    ("text", "weight"),
    [("0", 0.0), ("1", 1.0), ("0.5", 0.5), ("0.125", 0.125), ("1.0", 1.0), ("1.00", 1.0)]
    + [("0.", 0.0), ("1.", 1.0)],
)
def test_qvalues(text: str, weight: float) -> None:
    assert parse_qvalue(text) == weight


@pytest.mark.parametrize("text", ["", "2", "0.5555", "1.5", "-0", ".5", "0,5", "0x1", "1e0", " 1"])
def test_bad_qvalues(text: str) -> None:
    assert parse_qvalue(text) is None


def test_parse_accept_encoding_keeps_names_and_weights() -> None:
    assert parse_accept_encoding("GZip;q=0.5, x-gzip, *;q=0, identity") == {
        "gzip": 0.5,
        "*": 0.0,
        "identity": 1.0,
    }


def test_negotiator_memo_is_bounded() -> None:
    negotiator = Negotiator(ALL)
    for index in range(MEMO_SIZE * 3):
        assert negotiator(f"gzip;q=0.{index % 10}, x{index}") == ("gzip" if index % 10 else None)
    assert len(negotiator._memo) <= MEMO_SIZE


def test_header_helpers() -> None:
    assert media_type("Text/HTML; charset=utf-8") == "text/html"
    assert media_type("application/json") == "application/json"
    assert weak_etag('"abc"') == 'W/"abc"'
    assert weak_etag('W/"abc"') == 'W/"abc"'
    assert vary_with(None) == "Accept-Encoding"
    assert vary_with("Cookie") == "Cookie, Accept-Encoding"
    assert vary_with("cookie, accept-encoding") == "cookie, accept-encoding"
    assert vary_with("*") == "*"
    assert no_transform("public, No-Transform")
    assert not no_transform("public, max-age=60")


DATA = b"".join(b"line %d of some text to compress\n" % i for i in range(5000))


def _decode(coding: str, data: bytes) -> bytes:
    if coding == "gzip":
        return gzip.decompress(data)
    if coding == "br":
        return bytes(brotli.decompress(data))
    reader = zstandard.ZstdDecompressor().decompressobj()
    return bytes(reader.decompress(data))


@pytest.mark.parametrize("coding", ALL)
def test_encoders_round_trip_whole_and_streamed(coding: str) -> None:
    whole = encode(coding, 1, DATA)
    assert _decode(coding, whole) == DATA
    assert len(whole) < len(DATA) // 4
    encoder = Encoder(coding, 1)
    pieces = [encoder.compress(DATA[i : i + 1000]) for i in range(0, len(DATA), 1000)]
    streamed = b"".join(pieces) + encoder.finish()
    assert _decode(coding, streamed) == DATA


def test_gzip_is_a_gzip_member_not_a_zlib_stream() -> None:
    data = encode("gzip", 9, DATA)
    assert data[:2] == b"\x1f\x8b"
    assert zlib.decompress(data, 47) == DATA


def test_unknown_coding_is_refused() -> None:
    with pytest.raises(ValueError):
        Encoder("deflate", 1)
    with pytest.raises(ValueError):
        encode("compress", 1, b"x")
