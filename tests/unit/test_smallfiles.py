"""Per-worker caches of small files: configured error pages and listing headers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from localhost.config import loads
from localhost.handlers import autoindex, error_pages
from localhost.handlers.smallfiles import SmallFiles, TooLarge
from localhost.services import Services


def _same_stat_rewrite(path: Path, data: bytes) -> None:
    """Replace ``path``'s bytes keeping its size and modification time."""
    st = path.stat()
    path.write_bytes(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_a_cache_keeps_a_file_until_it_changes(tmp_path: Path) -> None:
    page = tmp_path / "404.html"
    page.write_bytes(b"first")
    cache = SmallFiles(10)
    assert cache.read(page) == b"first"
    _same_stat_rewrite(page, b"other")
    assert cache.read(page) == b"first"  # same size and time: kept
    assert SmallFiles(10).read(page) == b"other"  # another worker's cache: its own
    page.write_bytes(b"longer text")
    with pytest.raises(TooLarge):
        cache.read(page)
    page.unlink()
    with pytest.raises(FileNotFoundError):
        cache.read(page)


def test_error_pages_and_listing_headers_live_in_services(tmp_path: Path) -> None:
    (tmp_path / "www").mkdir()
    page = tmp_path / "404.html"
    page.write_bytes(b"<p>gone</p>")
    header = tmp_path / "www" / ".header.html"
    header.write_bytes(b"<header>mine</header>")
    config = loads("server {\n port 80\n root ./www\n}\n", tmp_path / "t.conf")
    one = Services(config, None)  # type: ignore[arg-type]
    two = Services(config, None)  # type: ignore[arg-type]
    try:
        pages = {404: page}
        assert error_pages.error_response(404, pages, cache=one.error_pages).body == b"<p>gone</p>"
        folder = str(tmp_path / "www")
        assert "mine" in autoindex.listing(folder, "/", one.listing_headers).body.decode()
        _same_stat_rewrite(page, b"<p>GONE</p>")
        _same_stat_rewrite(header, b"<header>MINE</header>")
        assert error_pages.error_response(404, pages, cache=one.error_pages).body == b"<p>gone</p>"
        assert "mine" in autoindex.listing(folder, "/", one.listing_headers).body.decode()
        # Nothing is shared through the modules: another worker reads the files anew.
        assert error_pages.error_response(404, pages, cache=two.error_pages).body == b"<p>GONE</p>"
        assert "MINE" in autoindex.listing(folder, "/", two.listing_headers).body.decode()
        one.reload(config)
        assert error_pages.error_response(404, pages, cache=one.error_pages).body == b"<p>GONE</p>"
    finally:
        one.close()
        two.close()


def test_no_handler_module_keeps_a_cache() -> None:
    assert not hasattr(error_pages, "_cache")
    assert not hasattr(autoindex, "_headers")
