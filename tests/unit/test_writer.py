"""The sans-IO response writer: framing decisions and field validation."""

from __future__ import annotations

import pytest

from localhost.http.message import Response
from localhost.http.writer import (
    CHUNKED,
    chunk,
    encode_fields,
    has_body,
    response_head,
    stream_framing,
)


def fields_of(head: bytes) -> list[bytes]:
    assert head.endswith(b"\r\n\r\n")
    return head[:-4].split(b"\r\n")[1:]


def test_whole_response_gets_content_length_date_and_server() -> None:
    head = response_head(Response(200, [("Content-Type", "text/plain")], b"hello"), True, False)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    names = [line.split(b":")[0] for line in fields_of(head)]
    assert names == [b"Date", b"Server", b"Content-Type", b"Content-Length"]
    assert b"Content-Length: 5\r\n" in head


@pytest.mark.parametrize("status", [204, 304, 101])
def test_no_content_length_on_1xx_204_304(status: int) -> None:
    head = response_head(Response(status), True, False)
    assert b"Content-Length" not in head


def test_connection_field_by_persistence_and_version() -> None:
    response = Response(200, [], b"x")
    assert response_head(response, False, False).endswith(b"\r\nConnection: close\r\n\r\n")
    assert response_head(response, True, True).endswith(b"\r\nConnection: keep-alive\r\n\r\n")
    assert b"Connection" not in response_head(response, True, False)


def test_stream_framing() -> None:
    assert stream_framing(200, 10, False) == (b"Content-Length: 10\r\n", False)
    assert stream_framing(200, None, False) == (CHUNKED, True)
    assert stream_framing(200, None, True) == (b"", False)  # HTTP/1.0: close-delimited
    assert stream_framing(204, None, False) == (b"", False)
    assert stream_framing(304, 10, False) == (b"", False)


def test_has_body() -> None:
    assert has_body(200, "GET") and not has_body(200, "HEAD")
    assert not has_body(204, "GET") and not has_body(304, "GET") and not has_body(100, "GET")


@pytest.mark.parametrize(
    "field",
    [
        ("X-Note", "a\r\nSet-Cookie: evil=1"),
        ("X-Note", "a\nb"),
        ("X-Note", "a\rb"),
        ("X-Note", "a\0b"),
        ("X\r\nEvil", "1"),
        ("", "value"),
    ],
)
def test_cr_lf_nul_or_empty_name_is_refused(field: tuple[str, str]) -> None:
    with pytest.raises(ValueError):
        encode_fields([("Content-Type", "text/plain"), field])
    with pytest.raises(ValueError):
        response_head(Response(200, [field]), True, False)
    with pytest.raises(ValueError):
        response_head(Response(200), True, False, None, [field])


def test_values_outside_latin1_are_replaced() -> None:
    assert encode_fields([("X-Name", "caf\u00e9 \u2603")]) == b"X-Name: caf\xe9 ?\r\n"


def test_chunk() -> None:
    assert chunk(b"hello world, 17 b") == b"11\r\nhello world, 17 b\r\n"
