"""Limits: the tunables in one place, and the transport's own constants equal to them."""

from __future__ import annotations

import re
from pathlib import Path

from localhost.io import transport
from localhost.limits import LIMITS

PACKAGE = Path(__file__).resolve().parents[2] / "localhost"


def test_the_transport_constants_are_the_limits() -> None:
    assert LIMITS.recv_size_bytes == transport.RECV_SIZE
    assert LIMITS.sendfile_chunk_bytes == transport.SENDFILE_CHUNK
    assert LIMITS.file_chunk_bytes == transport.FILE_CHUNK
    assert LIMITS.linger_timeout_seconds == transport.LINGER_TIMEOUT
    assert LIMITS.high_water_bytes == transport.HIGH_WATER
    assert LIMITS.low_water_bytes == transport.LOW_WATER


def test_no_numeric_tunable_outside_limits_in_handlers_and_server() -> None:
    literal = re.compile(r"^_?[A-Z][A-Z0-9_]*(: \w+)? = [0-9(]", re.MULTILINE)
    found = [
        f"{path.relative_to(PACKAGE)}: {match.group(0)}"
        for folder in ("handlers", "server", "app", "modules")
        for path in sorted((PACKAGE / folder).glob("*.py"))
        for match in literal.finditer(path.read_text())
        if not match.group(0).startswith("_UNITS")
    ]
    assert found == []
