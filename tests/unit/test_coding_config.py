"""The compression directives: values, defaults, inheritance, errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from localhost.config import ConfigError, loads
from localhost.config.model import Config, Location
from localhost.handlers.base import route
from localhost.modules.base import plan
from localhost.modules.compression import Compression

REPO = Path(__file__).resolve().parents[2]


def load(text: str, directory: Path) -> Config:
    (directory / "www").mkdir(exist_ok=True)
    return loads(text, directory / "test.conf")


def location(config: Config, prefix: str) -> Location:
    return next(loc for loc in config.servers[0].locations if loc.prefix == prefix)


def settings(config: Config, prefix: str) -> Compression | None:
    found = location(config, prefix).options.get("gzip")
    assert found is None or isinstance(found, Compression)
    return found


def error(text: str, directory: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(text, directory)
    return caught.value


SITE = """
gzip_comp_level 5
server {{
    host 127.0.0.1
    port 8080
    root ./www
    {server}
    location / {{ }}
    location /inner {{
        {inner}
    }}
}}
"""


def test_off_by_default_and_no_filter(tmp_path: Path) -> None:
    config = load(SITE.format(server="", inner=""), tmp_path)
    assert settings(config, "/") is None
    loc = location(config, "/")
    # Zero cost when off: no header filter for the location, the plain static handler.
    assert plan(config.servers[0], loc).header_filter is None
    assert [spec.name for spec in route(loc).table["GET"]] == ["static"]


def test_defaults_as_documented(tmp_path: Path) -> None:
    config = load(SITE.format(server="gzip on", inner=""), tmp_path)
    found = settings(config, "/")
    assert found is not None
    assert found.offered == ("gzip",)
    assert found.min_length == 256
    assert found.levels["gzip"] == 5  # from the top level
    assert found.vary is False
    assert found.http10 is False
    assert found.statics == ()
    assert found.types["gzip"] >= {
        "text/html",
        "text/css",
        "text/plain",
        "application/javascript",
        "application/json",
        "image/svg+xml",
        "application/xml",
    }
    assert plan(config.servers[0], location(config, "/")).header_filter is not None


def test_inner_levels_replace_outer_ones(tmp_path: Path) -> None:
    text = SITE.format(
        server="gzip on\n    gzip_types text/css\n    brotli on\n    zstd on",
        inner="gzip off\n        brotli_types application/wasm\n        zstd off\n"
        "        gzip_min_length 1k\n        gzip_vary on",
    )
    config = load(text, tmp_path)
    outer = settings(config, "/")
    inner = settings(config, "/inner")
    assert outer is not None and inner is not None
    assert outer.offered == ("zstd", "br", "gzip")
    # text/html is always listed; brotli and zstd take gzip's list by default.
    assert outer.types["gzip"] == {"text/css", "text/html"}
    assert outer.types["br"] == {"text/css", "text/html"}
    assert inner.offered == ("br",)
    assert inner.types["br"] == {"application/wasm", "text/html"}
    assert inner.min_length == 1024
    assert inner.vary is True


def test_static_only_location_gets_the_handler_and_no_filter(tmp_path: Path) -> None:
    config = load(
        SITE.format(server="", inner="gzip_static on\n        brotli_static always"), tmp_path
    )
    inner = settings(config, "/inner")
    assert inner is not None
    assert inner.statics == ("br", "gzip")
    assert inner.always == {"br"}
    loc = location(config, "/inner")
    assert plan(config.servers[0], loc).header_filter is None
    assert [spec.name for spec in route(loc).table["GET"]][:2] == ["precompressed", "static"]


def test_nginx_only_directives_are_accepted(tmp_path: Path) -> None:
    text = SITE.format(
        server="gzip on\n    gzip_buffers 16 8k\n    gzip_proxied expired no-cache auth\n"
        '    gzip_http_version 1.0\n    gzip_disable msie6 "^curl/"',
        inner="",
    )
    found = settings(load(text, tmp_path), "/")
    assert found is not None
    assert found.proxied == {"expired", "no-cache", "auth"}
    assert found.http10 is True
    assert found.disable is not None
    assert found.disable.search("Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)")
    assert not found.disable.search("Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)")
    assert found.disable.search("CURL/8.0")  # case-insensitive, as NGINX
    assert not found.disable.search("Mozilla/5.0 Firefox/120")


@pytest.mark.parametrize(
    ("directive", "column", "message"),
    [
        ("gzip yes", 10, 'invalid value "yes"'),
        ("gzip_comp_level 10", 21, "expected 1 to 9"),
        ("gzip_comp_level 0", 21, "expected 1 to 9"),
        ("brotli_comp_level 12", 23, "expected 0 to 11"),
        ("zstd_comp_level 23", 21, "expected 1 to 22"),
        ("gzip_types text", 16, "invalid media type"),
        ("gzip_min_length lots", 21, "invalid size"),
        ("gzip_static sometimes", 17, 'expected "on", "off" or "always"'),
        ("gzip_proxied sometimes", 18, "invalid value"),
        ("gzip_proxied off any", 22, '"off" cannot be combined'),
        ("gzip_http_version 2.0", 23, 'expected "1.0" or "1.1"'),
        ("gzip_disable (unclosed", 18, "invalid regular expression"),
        ("gzip_buffers x 8k", 18, "invalid number"),
        ("gzip_buffers 4 8q", 20, "invalid size"),
    ],
)
def test_bad_values_point_at_the_value(
    tmp_path: Path, directive: str, column: int, message: str
) -> None:
    exc = error(SITE.format(server=directive, inner=""), tmp_path)
    assert (exc.line, exc.column) == (7, column)
    assert message in exc.message
    assert str(exc).startswith(f"{tmp_path / 'test.conf'}:7:{column}:")


def test_brotli_without_its_package_names_the_extra(tmp_path: Path) -> None:
    # A directory first on the path where "import brotli" and "import zstandard" fail.
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    for name in ("brotli", "zstandard"):
        (blocker / f"{name}.py").write_text("raise ImportError('not installed')\n")
    (tmp_path / "www").mkdir()
    for directive, package in (("brotli on", "brotli"), ("zstd on", "zstandard")):
        (tmp_path / "test.conf").write_text(SITE.format(server=directive, inner=""))
        done = subprocess.run(
            [sys.executable, "-m", "localhost", "-t", str(tmp_path / "test.conf")],
            env={"PYTHONPATH": f"{blocker}:{REPO}", "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode != 0
        assert "test.conf:7:" in done.stderr
        assert package in done.stderr
        assert "localhost[compression]" in done.stderr
    # gzip needs nothing more, and brotli_static needs no package either.
    (tmp_path / "test.conf").write_text(
        SITE.format(server="gzip on\n    brotli_static on", inner="")
    )
    done = subprocess.run(
        [sys.executable, "-m", "localhost", "-t", str(tmp_path / "test.conf")],
        env={"PYTHONPATH": f"{blocker}:{REPO}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
