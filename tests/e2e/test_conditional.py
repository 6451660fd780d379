"""Validators, conditional requests and byte ranges on static files (RFC 9110 §13–14)."""

from __future__ import annotations

import email.utils
import re
import time

import pytest
import requests

from tests.conftest import Server
from tests.e2e.conftest import BIG_SIZE


def test_validators_on_every_file_response(site: Server) -> None:
    r = requests.get(site.url("/page.txt"))
    assert re.fullmatch(r'"[0-9a-f]+-[0-9a-f]+-[0-9a-f]+"', r.headers["ETag"])
    assert r.headers["Accept-Ranges"] == "bytes"
    assert r.headers["Last-Modified"]
    head = requests.head(site.url("/page.txt"))
    assert head.headers["ETag"] == r.headers["ETag"]


def test_if_none_match_gives_304_without_a_body(site: Server) -> None:
    etag = requests.get(site.url("/page.txt")).headers["ETag"]
    for value in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        r = requests.get(site.url("/page.txt"), headers={"If-None-Match": value})
        assert r.status_code == 304, value
        assert r.content == b""
        assert "Content-Length" not in r.headers
        assert r.headers["ETag"] == etag
    assert (
        requests.get(site.url("/page.txt"), headers={"If-None-Match": '"nope"'}).status_code == 200
    )


def test_if_modified_since(site: Server) -> None:
    last = requests.get(site.url("/page.txt")).headers["Last-Modified"]
    assert (
        requests.get(site.url("/page.txt"), headers={"If-Modified-Since": last}).status_code == 304
    )
    earlier = email.utils.formatdate(time.time() - 10 * 365 * 86400, usegmt=True)
    assert (
        requests.get(site.url("/page.txt"), headers={"If-Modified-Since": earlier}).status_code
        == 200
    )
    assert (
        requests.get(site.url("/page.txt"), headers={"If-Modified-Since": "garbage"}).status_code
        == 200
    )
    # If-None-Match takes precedence over If-Modified-Since.
    r = requests.get(
        site.url("/page.txt"), headers={"If-Modified-Since": last, "If-None-Match": '"x"'}
    )
    assert r.status_code == 200


def test_if_match_and_if_unmodified_since_give_412(site: Server) -> None:
    etag = requests.get(site.url("/page.txt")).headers["ETag"]
    assert requests.get(site.url("/page.txt"), headers={"If-Match": etag}).status_code == 200
    assert requests.get(site.url("/page.txt"), headers={"If-Match": '"other"'}).status_code == 412
    assert requests.get(site.url("/page.txt"), headers={"If-Match": f"W/{etag}"}).status_code == 412
    old = email.utils.formatdate(time.time() - 10 * 365 * 86400, usegmt=True)
    assert (
        requests.get(site.url("/page.txt"), headers={"If-Unmodified-Since": old}).status_code == 412
    )
    future = email.utils.formatdate(time.time() + 86400, usegmt=True)
    assert (
        requests.get(site.url("/page.txt"), headers={"If-Unmodified-Since": future}).status_code
        == 200
    )


def test_single_range(site: Server) -> None:
    full = requests.get(site.url("/big.bin")).content
    r = requests.get(site.url("/big.bin"), headers={"Range": "bytes=100-199"})
    assert r.status_code == 206
    assert r.headers["Content-Range"] == f"bytes 100-199/{BIG_SIZE}"
    assert r.headers["Content-Length"] == "100"
    assert r.content == full[100:200]
    r = requests.get(site.url("/big.bin"), headers={"Range": "bytes=-10"})
    assert r.content == full[-10:]
    r = requests.get(site.url("/big.bin"), headers={"Range": f"bytes={BIG_SIZE - 5}-"})
    assert r.content == full[-5:]
    r = requests.get(site.url("/big.bin"), headers={"Range": "bytes=0-99999999999"})
    assert r.status_code == 206 and len(r.content) == BIG_SIZE


def test_several_ranges_are_multipart_byteranges(site: Server) -> None:
    full = requests.get(site.url("/page.txt")).content
    r = requests.get(site.url("/page.txt"), headers={"Range": "bytes=0-1,4-6"})
    assert r.status_code == 206
    kind = r.headers["Content-Type"]
    assert kind.startswith("multipart/byteranges; boundary=")
    boundary = kind.split("boundary=")[1].encode()
    assert int(r.headers["Content-Length"]) == len(r.content)
    parts = r.content.split(b"--" + boundary)
    assert parts[-1].strip() == b"--"
    bodies = [part.split(b"\r\n\r\n", 1)[1][:-2] for part in parts[1:-1]]
    assert bodies == [full[0:2], full[4:7]]
    assert b"Content-Range: bytes 0-1/" in parts[1] and b"Content-Type: text/plain" in parts[1]


def test_unsatisfiable_range_is_416(site: Server) -> None:
    r = requests.get(site.url("/page.txt"), headers={"Range": "bytes=1000-2000"})
    assert r.status_code == 416
    size = len(requests.get(site.url("/page.txt")).content)
    assert r.headers["Content-Range"] == f"bytes */{size}"


def test_invalid_range_is_ignored(site: Server) -> None:
    for value in ("bytes=abc", "items=0-1", "bytes=5-2", "bytes="):
        r = requests.get(site.url("/page.txt"), headers={"Range": value})
        assert r.status_code == 200, value


def test_if_range(site: Server) -> None:
    first = requests.get(site.url("/page.txt"))
    etag, last = first.headers["ETag"], first.headers["Last-Modified"]
    assert (
        requests.get(
            site.url("/page.txt"), headers={"Range": "bytes=0-1", "If-Range": etag}
        ).status_code
        == 206
    )
    assert (
        requests.get(
            site.url("/page.txt"), headers={"Range": "bytes=0-1", "If-Range": last}
        ).status_code
        == 206
    )
    r = requests.get(site.url("/page.txt"), headers={"Range": "bytes=0-1", "If-Range": '"stale"'})
    assert r.status_code == 200 and r.content == first.content


@pytest.mark.parametrize(
    ("value", "get_status"), [("bytes=0-1", 206), ("bytes=0-1,4-6", 206), ("bytes=1000-2000", 416)]
)
def test_head_ignores_range_and_answers_the_whole_file_without_a_body(
    site: Server, value: str, get_status: int
) -> None:
    # RFC 9110 §14.2: "A server MUST ignore a Range header field received with a
    # request method that is unrecognized or for which range handling is not
    # defined"; GET is the only method it defines range handling for. (NGINX
    # answers 206 to HEAD here; the RFC's MUST is followed instead.)
    whole = requests.get(site.url("/page.txt"))
    assert requests.get(site.url("/page.txt"), headers={"Range": value}).status_code == get_status
    raw = site.raw(
        b"HEAD /page.txt HTTP/1.1\r\nHost: x\r\nRange: "
        + value.encode()
        + b"\r\nConnection: close\r\n\r\n"
    )
    head, _, body = raw.partition(b"\r\n\r\n")
    fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
    assert head.startswith(b"HTTP/1.1 200 ")
    assert body == b""
    assert b"Content-Range" not in fields
    assert fields[b"Content-Length"] == str(len(whole.content)).encode()
    assert fields[b"Content-Type"] == b"text/plain; charset=utf-8"
    assert fields[b"ETag"] == whole.headers["ETag"].encode()
    assert fields[b"Accept-Ranges"] == b"bytes"


def test_head_with_a_matching_validator_is_304(site: Server) -> None:
    r = requests.head(site.url("/page.txt"), headers={"If-None-Match": "*"})
    assert r.status_code == 304
    assert r.content == b""
