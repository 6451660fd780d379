"""The README's limits on a request head, at their exact boundaries, end to end.

The numbers are the documented ones (README, Limits), never the code's constants.
"""

from __future__ import annotations

import pytest

from tests.conftest import Server

REQUEST_LINE = 8 * 1024  # bytes, without its line end → 414 beyond
HEADER_SECTION = 16 * 1024  # bytes of field lines, each with its CRLF → 431 beyond
FIELD_LINES = 100  # → 431 beyond


def status_of(data: bytes) -> int:
    assert data.startswith(b"HTTP/1.1 "), data[:80]
    return int(data[9:12])


def request_line_of(size: int) -> bytes:
    # The length is in the query, so that no file name gets long.
    line = b"GET /page.txt?" + b"q" * (size - len(b"GET /page.txt? HTTP/1.1")) + b" HTTP/1.1"
    assert len(line) == size
    return line


@pytest.mark.parametrize(("size", "status"), [(REQUEST_LINE, 200), (REQUEST_LINE + 1, 414)])
def test_request_line_limit(site: Server, size: int, status: int) -> None:
    data = site.raw(request_line_of(size) + b"\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(data) == status


def header_section_of(size: int) -> bytes:
    fields = b"Host: x\r\nConnection: close\r\nX-Fill: "
    section = fields + b"f" * (size - len(fields) - len(b"\r\n")) + b"\r\n"
    assert len(section) == size
    return section


@pytest.mark.parametrize(("size", "status"), [(HEADER_SECTION, 200), (HEADER_SECTION + 1, 431)])
def test_header_section_limit(site: Server, size: int, status: int) -> None:
    data = site.raw(b"GET /page.txt HTTP/1.1\r\n" + header_section_of(size) + b"\r\n")
    assert status_of(data) == status


@pytest.mark.parametrize(("count", "status"), [(FIELD_LINES, 200), (FIELD_LINES + 1, 431)])
def test_field_line_limit(site: Server, count: int, status: int) -> None:
    fields = b"Host: x\r\nConnection: close\r\n" + b"".join(
        b"X-F%d: v\r\n" % index for index in range(count - 2)
    )
    assert fields.count(b"\r\n") == count
    data = site.raw(b"GET /page.txt HTTP/1.1\r\n" + fields + b"\r\n")
    assert status_of(data) == status
