"""The request corpus against the live test site: each gets its status, and the
server keeps serving."""

from __future__ import annotations

import pytest

from tests.conftest import Server
from tests.corpus import Case, cases


def first_status(site: Server, raw: bytes) -> int:
    with site.connect() as sock:
        sock.sendall(raw)
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 "), data[:100]
    return int(data[9:12])


@pytest.mark.parametrize("case", cases(), ids=lambda case: case.name)
def test_case_against_the_server(site: Server, case: Case) -> None:
    assert first_status(site, case.raw) == case.status, case.description
    assert (
        first_status(site, b"GET /page.txt HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n") == 200
    )
