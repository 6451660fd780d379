"""Unit tests build many configurations in one process: start each with an empty file cache
(its keys are location ids, which Python reuses once a configuration is gone)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localhost.handlers import static


@pytest.fixture(autouse=True)
def empty_file_cache() -> Iterator[None]:
    static.clear_cache()
    yield
    static.clear_cache()
