"""HTTP/2 request header lists: the cache of decoded HPACK blocks (it must
decode exactly as hpack does, whatever the dynamic table went through) and
the RFC 9113 §8.2/§8.3 checks the server makes instead of h2's."""

from __future__ import annotations

import random

import hpack
import pytest

from localhost.server.http2 import _check_fields, _DecodeCache, _Head, _parse_head

BASE = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/a"), (b":authority", b"t")]


def _lists(rng: random.Random) -> list[list[tuple[bytes, bytes]]]:
    """Request header lists a client would send: repeats (blocks of table
    references) among new values (insertions that move and evict entries)."""
    shapes = [
        [*BASE, (b"user-agent", b"bench"), (b"accept", b"*/*")],
        [*BASE[:2], (b":path", b"/b"), BASE[3], (b"cookie", b"a=1")],
        [*BASE, (b"x-n", b"1")],
    ]
    lists = []
    for index in range(400):
        if rng.random() < 0.7:
            lists.append(rng.choice(shapes))
        else:
            value = str(rng.randrange(1000)).encode() * rng.randrange(1, 40)
            lists.append([*BASE, (b"x-new", value), (b"x-i", str(index).encode())])
    return lists


@pytest.mark.parametrize("seed", range(5))
def test_cached_decoding_is_hpack_decoding(seed: int) -> None:
    rng = random.Random(seed)
    encoder = hpack.Encoder()
    plain = hpack.Decoder()
    cached = _DecodeCache(plain.max_header_list_size)
    hits = 0
    for index, fields in enumerate(_lists(rng)):
        if index % 97 == 50:
            # A table size change (the peer's SETTINGS), signalled in the next block.
            size = rng.choice([0, 256, 4096])
            encoder.header_table_size = size
        block = encoder.encode(fields)
        hits += block in cached.blocks
        assert cached.decode(block, raw=True) == plain.decode(block, raw=True)
        assert list(cached.header_table.dynamic_entries) == list(plain.header_table.dynamic_entries)
    assert hits > 30  # repeats were served from the cache between insertions


def test_a_block_means_something_else_once_the_table_moved() -> None:
    encoder = hpack.Encoder()
    cached = _DecodeCache(65536)
    first = [*BASE, (b"x-a", b"1")]
    cached.decode(encoder.encode(first), raw=True)
    again = encoder.encode(first)  # every field a reference now
    assert cached.decode(again, raw=True) == first
    assert again in cached.blocks
    # A new entry goes in front: the same references name other fields.
    cached.decode(encoder.encode([*BASE, (b"x-b", b"2")]), raw=True)
    assert cached.decode(again, raw=True) != first


def test_limits_still_hold_for_cached_blocks() -> None:
    encoder = hpack.Encoder()
    cached = _DecodeCache(65536)
    fields = [*BASE, (b"x-a", b"v" * 100)]
    cached.decode(encoder.encode(fields), raw=True)
    block = encoder.encode(fields)
    cached.decode(block, raw=True)
    assert block in cached.blocks
    cached.max_header_list_size = 100
    with pytest.raises(hpack.OversizedHeaderListError):
        cached.decode(block, raw=True)


@pytest.mark.parametrize(
    "fields",
    [
        [*BASE, (b"X-Upper", b"1")],  # RFC 9113 §8.2.1
        [*BASE, (b"", b"1")],
        [*BASE, (b"a b", b"1")],
        [*BASE, (b"a:b", b"1")],
        [*BASE, (b"x", b"a\r\nb: c")],
        [*BASE, (b"x", b"a\0")],
        [*BASE, (b"x", b" padded")],
        [*BASE, (b"x", b"padded\t")],
        [*BASE, (b"connection", b"close")],  # §8.2.2
        [*BASE, (b"keep-alive", b"5")],
        [*BASE, (b"proxy-connection", b"x")],
        [*BASE, (b"upgrade", b"h2c")],
        [*BASE, (b"transfer-encoding", b"chunked")],
        [*BASE, (b"te", b"gzip")],
        [(b"x", b"1"), *BASE],  # §8.3: pseudo-header fields first
        [*BASE, (b":status", b"200")],
        [*BASE, (b":method", b"GET")],
        [*BASE, (b":custom", b"1")],
    ],
)
def test_malformed_fields(fields: list[tuple[bytes, bytes]]) -> None:
    assert isinstance(_check_fields(fields), str)
    assert isinstance(_parse_head(fields), str)


@pytest.mark.parametrize(
    "fields",
    [
        BASE[1:],  # no :method
        [BASE[0], BASE[2], BASE[3]],  # no :scheme
        [BASE[0], BASE[1], BASE[3]],  # no :path
        [BASE[0], BASE[1], (b":path", b""), BASE[3]],
        BASE[:3],  # neither :authority nor Host
        [*BASE[:3], (b"host", b"a"), (b"host", b"b")],
        [*BASE, (b"host", b"other")],
        [(b":method", b"CONNECT"), (b":authority", b"t:1"), (b":path", b"/")],
        [*BASE, (b":protocol", b"websocket")],
        [*BASE, (b":status", b"200")],
    ],
)
def test_malformed_requests(fields: list[tuple[bytes, bytes]]) -> None:
    assert isinstance(_parse_head(fields), str)


def test_trailers_carry_no_pseudo_header_fields() -> None:
    assert _check_fields([(b"x-sum", b"1")], trailers=True) is None
    assert isinstance(_check_fields([(b":path", b"/")], trailers=True), str)


def test_a_request_head() -> None:
    head = _parse_head(
        [
            (b":method", b"POST"),
            (b":scheme", b"https"),
            (b":path", b"/a/../b%20c?q=1"),
            (b":authority", b"example.test"),
            (b"cookie", b"a=1"),
            (b"accept", b"*/*"),
            (b"cookie", b"b=2"),
            (b"te", b"Trailers"),
            (b"content-length", b"5"),
            (b"host", b"example.test"),
            (b"x-empty", b""),
        ]
    )
    assert isinstance(head, _Head)
    assert (head.method, head.target, head.scheme, head.host) == (
        "POST",
        "/a/../b%20c?q=1",
        "https",
        "example.test",
    )
    assert (head.path, head.query, head.length) == ("/b c", "q=1", 5)
    # Split Cookie fields are one again (RFC 9113 §8.2.3).
    assert head.index["cookie"] == "a=1; b=2"
    assert [name for name, _ in head.fields].count("cookie") == 1
    assert head.size == sum(len(n) + len(v) + 32 for n, v in [
        (b":method", b"POST"), (b":scheme", b"https"), (b":path", b"/a/../b%20c?q=1"),
        (b":authority", b"example.test"), (b"cookie", b"a=1"), (b"accept", b"*/*"),
        (b"cookie", b"b=2"), (b"te", b"Trailers"), (b"content-length", b"5"),
        (b"host", b"example.test"), (b"x-empty", b""),
    ])  # fmt: skip


def test_host_without_authority_and_connect() -> None:
    head = _parse_head([BASE[0], BASE[1], BASE[2], (b"host", b"h.test")])
    assert isinstance(head, _Head) and head.host == "h.test"
    connect = _parse_head([(b":method", b"CONNECT"), (b":authority", b"h.test:443")])
    assert isinstance(connect, _Head) and connect.method == "CONNECT" and connect.target == ""
    bad = _parse_head([*BASE, (b"content-length", b"1, 2")])
    assert isinstance(bad, _Head) and bad.length == -1
    climbing = _parse_head([BASE[0], BASE[1], (b":path", b"/../x"), BASE[3]])
    assert isinstance(climbing, _Head) and climbing.error is not None
