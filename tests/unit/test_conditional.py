"""Preconditions and byte ranges as pure functions."""

from __future__ import annotations

import os

import pytest

from localhost.http.conditional import Unsatisfiable, byte_ranges, etag_for, precondition
from localhost.http.message import Headers

ETAG = '"1-2-3"'
MTIME = 1_700_000_000.5
LAST = "Tue, 14 Nov 2023 22:13:20 GMT"  # int(MTIME)
EARLIER = "Tue, 14 Nov 2023 22:13:19 GMT"


def h(**fields: str) -> Headers:
    return Headers([(name.replace("_", "-"), value) for name, value in fields.items()])


@pytest.mark.parametrize(
    ("fields", "method", "status"),
    [
        ({}, "GET", None),
        ({"if_none_match": ETAG}, "GET", 304),
        ({"if_none_match": ETAG}, "HEAD", 304),
        ({"if_none_match": ETAG}, "DELETE", 412),
        ({"if_none_match": f"W/{ETAG}"}, "GET", 304),
        ({"if_none_match": '"a", "b"'}, "GET", None),
        ({"if_none_match": "*"}, "GET", 304),
        ({"if_modified_since": LAST}, "GET", 304),
        ({"if_modified_since": EARLIER}, "GET", None),
        ({"if_modified_since": LAST}, "POST", None),
        ({"if_modified_since": "not a date"}, "GET", None),
        ({"if_none_match": '"x"', "if_modified_since": LAST}, "GET", None),
        ({"if_match": ETAG}, "GET", None),
        ({"if_match": "*"}, "GET", None),
        ({"if_match": '"x"'}, "GET", 412),
        ({"if_match": f"W/{ETAG}"}, "GET", 412),
        ({"if_unmodified_since": EARLIER}, "GET", 412),
        ({"if_unmodified_since": LAST}, "GET", None),
        ({"if_match": ETAG, "if_unmodified_since": EARLIER}, "GET", None),
    ],
)
def test_precondition(fields: dict[str, str], method: str, status: int | None) -> None:
    assert precondition(h(**fields), method, ETAG, MTIME) == status


@pytest.mark.parametrize(
    ("value", "ranges"),
    [
        ("bytes=0-0", [(0, 0)]),
        ("bytes=0-9", [(0, 9)]),
        ("bytes=5-", [(5, 9)]),
        ("bytes=-3", [(7, 9)]),
        ("bytes=-30", [(0, 9)]),
        ("bytes=8-100", [(8, 9)]),
        ("bytes=0-1, 4-5", [(0, 1), (4, 5)]),
        ("bytes=4-5,0-1", [(0, 1), (4, 5)]),
        ("bytes=0-4,3-6", [(0, 6)]),
        ("bytes=0-1,2-3", [(0, 3)]),
        ("bytes=0-1,50-60", [(0, 1)]),
        ("BYTES=1-2", [(1, 2)]),
        ("bytes=abc", None),
        ("bytes=5-2", None),
        ("bytes=", None),
        ("lines=1-2", None),
        ("bytes=1-2-3", None),
        ("bytes=--1", None),
    ],
)
def test_byte_ranges(value: str, ranges: list[tuple[int, int]] | None) -> None:
    assert byte_ranges(h(range=value), 10, ETAG, MTIME) == ranges


def test_more_than_16_ranges_give_the_whole_file() -> None:
    # README: several ranges are multipart/byteranges; more than 16 → the whole file.
    sixteen = [(2 * i, 2 * i) for i in range(16)]  # apart, so none merge
    value = "bytes=" + ",".join(f"{a}-{b}" for a, b in sixteen)
    assert byte_ranges(h(range=value), 100, ETAG, MTIME) == sixteen
    assert byte_ranges(h(range=value + ",40-40"), 100, ETAG, MTIME) is None
    # The ranges asked for are counted, before any merging.
    assert byte_ranges(h(range="bytes=" + ",".join(["0-0"] * 17)), 100, ETAG, MTIME) is None


@pytest.mark.parametrize("value", ["bytes=10-", "bytes=20-30", "bytes=-0", "bytes=10-20,30-"])
def test_unsatisfiable(value: str) -> None:
    with pytest.raises(Unsatisfiable):
        byte_ranges(h(range=value), 10, ETAG, MTIME)


def test_if_range() -> None:
    assert byte_ranges(h(range="bytes=0-1", if_range=ETAG), 10, ETAG, MTIME) == [(0, 1)]
    assert byte_ranges(h(range="bytes=0-1", if_range=LAST), 10, ETAG, MTIME) == [(0, 1)]
    assert byte_ranges(h(range="bytes=0-1", if_range='"old"'), 10, ETAG, MTIME) is None
    assert byte_ranges(h(range="bytes=0-1", if_range=f"W/{ETAG}"), 10, ETAG, MTIME) is None
    assert byte_ranges(h(range="bytes=0-1", if_range=EARLIER), 10, ETAG, MTIME) is None


def test_etag_changes_with_the_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "f"
    path.write_text("one")
    first = etag_for(os.stat(path))
    path.write_text("two!")
    assert etag_for(os.stat(path)) != first
    assert first.startswith('"') and first.endswith('"')
