"""add_header, expires, default_type, types and charset on a live server:
fields on static files, on errors only with always, variables in values,
Expires and Cache-Control against the response's Date, the Content-Type of
unknown extensions and the charset of HTML."""

from __future__ import annotations

from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
import requests

from tests.conftest import Server, start_server

CONFIG = """
add_header X-Main main
server {
    host 127.0.0.1
    port {port0}
    root ./www
    add_header X-Server server
    add_header X-Always "always on" always
    location / { }
    location /cached {
        expires 1h
        add_header X-Path $uri
        add_header X-Method "got $request_method" always
        add_header X-Status "s=$status" always
    }
    location /nocache { expires -1 }
    location /forever {
        expires max
        location /forever/not { expires off }
    }
    location /downloads { default_type text/plain }
    location /latin { charset iso-8859-1 }
    location /raw { charset off }
}
server {
    host 127.0.0.1
    port {port0}
    server_name other.test
    root ./other
}
"""

FILES = {
    "www/index.html": "<h1>home</h1>\n",
    "www/data.unknownext": "?\n",
    "www/cached/a.txt": "cached a\n",
    "www/cached/dir/b.txt": "b\n",
    "www/nocache/a.txt": "no cache\n",
    "www/forever/a.txt": "forever\n",
    "www/forever/not/a.txt": "not forever\n",
    "www/downloads/notes.unknownext": "notes\n",
    "www/downloads/blob": "no extension\n",
    "www/downloads/page.html": "<p>page</p>\n",
    "www/latin/page.html": "<p>caf\xe9</p>\n",
    "www/latin/style.css": "p { color: red }\n",
    "www/raw/page.html": "<p>raw</p>\n",
    "other/index.html": "<h1>other</h1>\n",
}


# Its own server: the types block is read by the loader (the include and
# synonyms part of the configuration language).
TYPES_CONFIG = """
server {
    host 127.0.0.1
    port {port0}
    root ./www
    location /typed {
        types {
            text/x-custom custom
        }
        default_type application/x-unlisted
    }
}
"""


def write_files(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="latin-1")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("headers")
    write_files(root, FILES)
    server = start_server(CONFIG, root)
    yield server
    server.stop()


def get(site: Server, path: str, **kwargs: object) -> requests.Response:
    return requests.get(site.url(path), timeout=10, allow_redirects=False, **kwargs)  # type: ignore[arg-type]


def seconds(value: str) -> float:
    return parsedate_to_datetime(value).timestamp()


# -- add_header ---------------------------------------------------------------------


def test_server_fields_on_a_static_file(site: Server) -> None:
    response = get(site, "/")
    assert response.status_code == 200
    assert response.headers["X-Server"] == "server"
    assert response.headers["X-Always"] == "always on"
    assert "X-Main" not in response.headers  # the server's list replaces the top level's
    assert "Expires" not in response.headers


def test_top_level_fields_reach_a_server_without_its_own(site: Server) -> None:
    response = get(site, "/", headers={"Host": "other.test"})
    assert response.text == "<h1>other</h1>\n"
    assert response.headers["X-Main"] == "main"
    assert "X-Server" not in response.headers


def test_errors_get_only_the_always_fields(site: Server) -> None:
    missing = get(site, "/missing.txt")
    assert missing.status_code == 404
    assert missing.headers["X-Always"] == "always on"
    assert "X-Server" not in missing.headers
    refused = requests.post(site.url("/index.html"), data=b"x", timeout=10)
    assert refused.status_code == 405
    assert refused.headers["X-Always"] == "always on"
    assert "X-Server" not in refused.headers


def test_a_location_list_replaces_the_server_list_and_renders_variables(site: Server) -> None:
    response = get(site, "/cached/a.txt")
    assert response.text == "cached a\n"
    assert response.headers["X-Path"] == "/cached/a.txt"
    assert response.headers["X-Method"] == "got GET"
    assert response.headers["X-Status"] == "s=200"
    assert "X-Server" not in response.headers
    assert "X-Always" not in response.headers
    head = requests.head(site.url("/cached/a.txt"), timeout=10)
    assert head.headers["X-Method"] == "got HEAD"
    # Again, from the open-file cache: the fields are added to every answer.
    again = get(site, "/cached/a.txt")
    assert again.headers["X-Path"] == "/cached/a.txt"


def test_fields_follow_the_response_own_in_configuration_order(site: Server) -> None:
    with site.connect() as sock:
        sock.sendall(b"GET /cached/a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
    lines = data.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    names = [line.split(":", 1)[0] for line in lines[1:]]
    added = ["Expires", "Cache-Control", "X-Path", "X-Method", "X-Status"]
    assert [name for name in names if name in added] == added
    assert names.index("Content-Length") < names.index("Expires")
    assert names.count("X-Path") == 1


def test_errors_in_a_location_get_its_always_fields_only(site: Server) -> None:
    response = get(site, "/cached/missing.txt")
    assert response.status_code == 404
    assert response.headers["X-Method"] == "got GET"
    assert response.headers["X-Status"] == "s=404"
    assert "X-Path" not in response.headers
    assert "Expires" not in response.headers
    assert "Cache-Control" not in response.headers


# -- expires ------------------------------------------------------------------------


def test_expires_time_is_an_hour_after_the_date(site: Server) -> None:
    response = get(site, "/cached/a.txt")
    assert response.headers["Cache-Control"] == "max-age=3600"
    ahead = seconds(response.headers["Expires"]) - seconds(response.headers["Date"])
    assert 3599 <= ahead <= 3601


def test_redirects_and_not_modified_get_the_fields(site: Server) -> None:
    moved = get(site, "/cached/dir")
    assert moved.status_code == 301
    assert moved.headers["Cache-Control"] == "max-age=3600"
    assert moved.headers["X-Path"] == "/cached/dir"
    etag = get(site, "/cached/a.txt").headers["ETag"]
    unchanged = get(site, "/cached/a.txt", headers={"If-None-Match": etag})
    assert unchanged.status_code == 304
    assert unchanged.headers["Cache-Control"] == "max-age=3600"
    assert unchanged.headers["X-Path"] == "/cached/a.txt"


def test_negative_expires_is_no_cache_in_the_past(site: Server) -> None:
    response = get(site, "/nocache/a.txt")
    assert response.headers["Cache-Control"] == "no-cache"
    behind = seconds(response.headers["Date"]) - seconds(response.headers["Expires"])
    assert 0 <= behind <= 2
    # No add_header of its own: the server's list.
    assert response.headers["X-Server"] == "server"


def test_expires_max_and_a_nested_off(site: Server) -> None:
    response = get(site, "/forever/a.txt")
    assert response.headers["Expires"] == "Thu, 31 Dec 2037 23:55:55 GMT"
    assert response.headers["Cache-Control"] == "max-age=315360000"
    inner = get(site, "/forever/not/a.txt")
    assert inner.text == "not forever\n"
    assert "Expires" not in inner.headers
    assert "Cache-Control" not in inner.headers


# -- content types ------------------------------------------------------------------


def test_default_type_for_unknown_extensions(site: Server) -> None:
    assert get(site, "/data.unknownext").headers["Content-Type"] == "application/octet-stream"
    notes = get(site, "/downloads/notes.unknownext")
    assert notes.text == "notes\n"
    assert notes.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert get(site, "/downloads/blob").headers["Content-Type"] == "text/plain; charset=utf-8"
    # A known extension keeps its type.
    page = get(site, "/downloads/page.html")
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"


def test_charset_on_html(site: Server) -> None:
    page = get(site, "/latin/page.html")
    assert page.headers["Content-Type"] == "text/html; charset=iso-8859-1"
    assert page.text == "<p>caf\xe9</p>\n"  # requests decodes with the charset sent
    assert get(site, "/latin/style.css").headers["Content-Type"] == "text/css"
    assert get(site, "/raw/page.html").headers["Content-Type"] == "text/html"
    assert get(site, "/").headers["Content-Type"] == "text/html; charset=utf-8"


def test_a_types_block_replaces_the_table(tmp_path: Path) -> None:
    write_files(tmp_path, {"www/typed/a.custom": "custom\n", "www/typed/page.html": "<p>t</p>\n"})
    server = start_server(TYPES_CONFIG, tmp_path)
    try:
        custom = get(server, "/typed/a.custom")
        assert custom.text == "custom\n"
        assert custom.headers["Content-Type"] == "text/x-custom; charset=utf-8"
        page = get(server, "/typed/page.html")
        assert page.headers["Content-Type"] == "application/x-unlisted"
    finally:
        server.stop()


def test_a_range_carries_the_location_type(site: Server) -> None:
    response = get(site, "/downloads/notes.unknownext", headers={"Range": "bytes=0-1"})
    assert response.status_code == 206
    assert response.content == b"no"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
