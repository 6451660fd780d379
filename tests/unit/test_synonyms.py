"""NGINX's names for localhost's directives (index, autoindex,
client_max_body_size, alias, listen), keepalive_requests, types { } and the
command line's overrides, as the loader reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from localhost.config import ConfigError, loads
from localhost.config.loader import Overrides
from localhost.config.model import Config, Location

SERVER = "server {{\n    port 80\n    root ./www\n{}}}\n"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "www" / "files").mkdir(parents=True)
    (tmp_path / "other").mkdir()
    return tmp_path


def load(site: Path, text: str, overrides: Overrides | None = None) -> Config:
    return loads(text, site / "test.conf", overrides)


def error(site: Path, text: str, overrides: Overrides | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(site, text, overrides)
    return info.value


def location(config: Config, prefix: str) -> Location:
    return next(loc for loc in config.servers[0].locations if loc.prefix == prefix)


# -- one model underneath -------------------------------------------------------------


def test_index_takes_several_names_in_order(site: Path) -> None:
    config = load(site, SERVER.format("    index home.html index.htm\n"))
    (root,) = config.servers[0].locations
    assert root.default_files == ("home.html", "index.htm")
    assert root.default_file == "home.html"


def test_default_file_is_one_name_and_the_default_is_index_html(site: Path) -> None:
    (root,) = load(site, SERVER.format("")).servers[0].locations
    assert root.default_files == ("index.html",)
    (root,) = load(site, SERVER.format("    default_file a.html\n")).servers[0].locations
    assert root.default_files == ("a.html",)


def test_index_is_inherited_like_default_file(site: Path) -> None:
    config = load(site, SERVER.format("    index a.html b.html\n    location /x { }\n"))
    assert location(config, "/x").default_files == ("a.html", "b.html")


@pytest.mark.parametrize("name", ["../up.html", "/abs.html", ""])
def test_index_names_stay_under_the_root(site: Path, name: str) -> None:
    exc = error(site, SERVER.format(f'    index a.html "{name}"\n'))
    assert (exc.line, exc.column) == (4, 18)
    assert exc.message.startswith(f'invalid index "{name}"')


def test_autoindex_is_directory_listing(site: Path) -> None:
    config = load(site, SERVER.format("    location /files { autoindex on }\n"))
    assert location(config, "/files").directory_listing
    config = load(site, SERVER.format("    autoindex on\n    location /files { autoindex off }\n"))
    assert not location(config, "/files").directory_listing
    assert location(config, "/").directory_listing


def test_client_max_body_size_is_body_limit(site: Path) -> None:
    config = load(site, "client_max_body_size 10m\n" + SERVER.format("    location /x { }\n"))
    assert location(config, "/x").body_limit == 10 * 1024 * 1024
    config = load(site, SERVER.format("    location /x { client_max_body_size 0 }\n"))
    assert location(config, "/x").body_limit == 0


def test_alias_is_a_locations_root_and_replaces_its_prefix(site: Path) -> None:
    config = load(site, SERVER.format("    location /f { alias ./www/files }\n"))
    f = location(config, "/f")
    assert f.root == site / "www" / "files" and f.alias
    # localhost's root in a location means the same.
    config = load(site, SERVER.format("    location /f { root ./www/files }\n"))
    assert location(config, "/f").alias


def test_alias_is_not_allowed_in_a_server_block(site: Path) -> None:
    exc = error(site, "server {\n    port 80\n    alias ./www\n}\n")
    assert (exc.line, exc.column) == (3, 5)
    assert exc.message == (
        '"alias" directive is not allowed in a "server" block (allowed only in "location" '
        "blocks; in a server block, root is the same)"
    )


@pytest.mark.parametrize("head", ["~ \\.txt$", "= /exact", "@named"])
def test_alias_needs_a_prefix_location(site: Path, head: str) -> None:
    exc = error(site, SERVER.format(f"    location {head} {{\n        alias ./other\n    }}\n"))
    assert (exc.line, exc.column) == (5, 9)
    assert exc.message.startswith('"alias" needs a prefix location')


# -- listen -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("8080", ("0.0.0.0", 8080)),
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("127.0.0.1", ("127.0.0.1", 80)),
        ("localhost:8081", ("127.0.0.1", 8081)),
        ("*:8082", ("0.0.0.0", 8082)),
        ("[::1]:8083", ("::1", 8083)),
        ("[::]:8084", ("::", 8084)),
        ("[::1]", ("::1", 80)),
    ],
)
def test_listen_forms(site: Path, value: str, address: tuple[str, int]) -> None:
    config = load(site, f"server {{\n    listen {value}\n    root ./www\n}}\n")
    assert config.servers[0].addresses == (address,)
    assert config.servers[0].default_server == frozenset()


def test_listen_may_be_repeated_with_one_address_each(site: Path) -> None:
    config = load(site, "server {\n    listen 127.0.0.1:81\n    listen 82\n}\n")
    assert config.servers[0].addresses == (("127.0.0.1", 81), ("0.0.0.0", 82))


def test_default_server_marks_the_default_block_of_its_address(site: Path) -> None:
    config = load(
        site,
        "server { listen 127.0.0.1:81; server_name a.test }\n"
        "server { listen 127.0.0.1:81 default_server; listen 82; server_name b.test }\n",
    )
    first, second = config.servers
    assert first.default_server == frozenset()
    assert second.default_server == frozenset({("127.0.0.1", 81)})


@pytest.mark.parametrize(
    ("value", "column", "message"),
    [
        ("80 ssl ssl", 19, '"ssl" is given twice'),
        ("80 http2 http2", 21, '"http2" is given twice'),
        ("80 quic", 15, 'listen parameter "quic" is not supported by localhost'),
        ("80 backlog=511", 15, 'listen parameter "backlog=511" is not supported by localhost'),
        ("80 fast", 15, 'unknown listen parameter "fast" (expected default_server, ssl or http2)'),
        ("80 default_server default", 30, '"default" is given twice'),
        ("unix:/run/x.sock", 12, "UNIX-domain sockets are not supported"),
        ("127.0.0.1:0", 12, 'invalid port in "127.0.0.1:0"'),
        ("127.0.0.1:http", 12, 'invalid port in "127.0.0.1:http"'),
        ("example.com:80", 12, 'invalid host "example.com"'),
        ("[::1:80", 12, 'invalid listen address "[::1:80"'),
    ],
)
def test_listen_errors(site: Path, value: str, column: int, message: str) -> None:
    exc = error(site, f"server {{\n    listen {value}\n}}\n")
    assert (exc.line, exc.column) == (2, column)
    assert exc.message.startswith(message)


def test_two_default_servers_on_one_address_is_an_error(site: Path) -> None:
    exc = error(
        site,
        "server { listen 81 default_server }\nserver { listen 82\n listen 81 default_server }\n",
    )
    assert (exc.line, exc.column) == (3, 9)
    assert exc.message == "a second default_server for 0.0.0.0:81 (the first at line 1)"


def test_a_listen_address_twice_in_one_block_is_an_error(site: Path) -> None:
    exc = error(site, "server {\n    listen 81\n    listen *:81\n}\n")
    assert (exc.line, exc.column) == (3, 12)
    assert exc.message == "duplicate listen address 0.0.0.0:81 in one server (first at line 2)"


# -- mixing both spellings in one block ---------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("default_file a.html", "index b.html"),
        ("directory_listing on", "autoindex on"),
        ("body_limit 1m", "client_max_body_size 1m"),
        ("root ./other", "alias ./other"),
    ],
)
@pytest.mark.parametrize("swap", [False, True], ids=["localhost first", "nginx first"])
def test_both_spellings_in_one_block_is_an_error(
    site: Path, first: str, second: str, swap: bool
) -> None:
    if swap:
        first, second = second, first
    exc = error(
        site, SERVER.format(f"    location /x {{\n        {first}\n        {second}\n    }}\n")
    )
    assert (exc.line, exc.column) == (6, 9)
    a, b = second.split()[0], first.split()[0]
    assert exc.message == (
        f'"{a}" and "{b}" set the same thing: use one spelling in a block ("{b}" at line 5)'
    )


@pytest.mark.parametrize(
    ("first", "second"),
    [("port 80", "listen 81"), ("host 127.0.0.1", "listen 81"), ("listen 81", "port 80")],
)
def test_listen_with_host_or_port_in_one_block_is_an_error(
    site: Path, first: str, second: str
) -> None:
    exc = error(site, f"server {{\n    {first}\n    {second}\n}}\n")
    assert (exc.line, exc.column) == (3, 5)
    assert exc.message.startswith(f'"{second.split()[0]}" and "{first.split()[0]}" set the same')


def test_the_two_spellings_in_different_blocks_are_fine(site: Path) -> None:
    config = load(
        site,
        "server {\n    port 80\n    root ./www\n    autoindex on\n"
        "    location /x { directory_listing off }\n}\n",
    )
    assert not location(config, "/x").directory_listing


# -- keepalive_requests -------------------------------------------------------------------


def test_keepalive_requests_defaults_to_1000_as_nginx(site: Path) -> None:
    assert load(site, SERVER.format("")).servers[0].keepalive_requests == 1000


def test_keepalive_requests_is_inherited_from_the_top_level(site: Path) -> None:
    config = load(
        site,
        "keepalive_requests 5\n" + SERVER.format("") + SERVER.format("    keepalive_requests 0\n"),
    )
    assert [s.keepalive_requests for s in config.servers] == [5, 0]


@pytest.mark.parametrize("value", ["-1", "many", "1e3", "10000000000"])
def test_keepalive_requests_takes_a_count(site: Path, value: str) -> None:
    exc = error(site, SERVER.format(f"    keepalive_requests {value}\n"))
    assert (exc.line, exc.column) == (4, 24)
    assert exc.message.startswith(f'invalid keepalive_requests "{value}"')


def test_keepalive_requests_is_not_allowed_in_a_location(site: Path) -> None:
    exc = error(site, SERVER.format("    location /x { keepalive_requests 5 }\n"))
    assert exc.message.startswith('"keepalive_requests" directive is not allowed in a "location"')


# -- types { } ----------------------------------------------------------------------------


def test_types_maps_extensions_for_the_location(site: Path) -> None:
    config = load(
        site,
        "types {\n    text/html html htm\n    image/svg+xml SVG\n}\n"
        + SERVER.format("    location /x {\n        types { text/plain txt; }\n    }\n"),
    )
    root = location(config, "/")
    assert dict(root.options["types"]) == {
        "html": "text/html",
        "htm": "text/html",
        "svg": "image/svg+xml",
    }
    # A level with its own types replaces the inherited ones (NGINX).
    assert dict(location(config, "/x").options["types"]) == {"txt": "text/plain"}


def test_no_types_anywhere_is_none(site: Path) -> None:
    (root,) = load(site, SERVER.format("")).servers[0].locations
    assert root.options["types"] is None


def test_types_blocks_of_one_level_add_up_and_a_repeated_extension_warns(site: Path) -> None:
    config = load(
        site,
        SERVER.format("    types { text/plain txt log }\n    types { text/x-log log }\n"),
    )
    (root,) = config.servers[0].locations
    assert dict(root.options["types"]) == {"txt": "text/plain", "log": "text/x-log"}
    (warning,) = config.warnings
    assert (warning.line, warning.column) == (5, 24)
    assert warning.message == 'duplicate extension "log": "text/x-log" replaces "text/plain"'


@pytest.mark.parametrize(
    ("body", "column", "message"),
    [
        ("text html", 13, 'invalid media type "text" (expected TYPE/SUBTYPE)'),
        ("text/ html", 13, 'invalid media type "text/"'),
        ("text/html", 13, 'no extension for "text/html"'),
        ("text/html { html }", 13, 'a "types" block holds "TYPE EXTENSION...;" lines'),
    ],
)
def test_types_errors(site: Path, body: str, column: int, message: str) -> None:
    exc = error(site, SERVER.format(f"    types {{ {body} }}\n"))
    assert (exc.line, exc.column) == (4, column)
    assert exc.message.startswith(message)


# -- command-line overrides -------------------------------------------------------------


def test_overrides_replace_the_files_values_in_every_server_block(site: Path) -> None:
    text = (
        "server {\n    listen 127.0.0.1:81\n    listen 82\n    root ./www\n"
        "    client_header_timeout 9s\n    location /f { root ./www/files }\n}\n"
        "server {\n    host 10.0.0.1\n    port 83\n    server_name b.test\n}\n"
    )
    overrides = Overrides(host="127.0.0.2", port=9000, root="other", listing=True, timeout_ms=250)
    first, second = load(site, text, overrides).servers
    assert first.addresses == (("127.0.0.2", 9000),)
    assert second.addresses == (("127.0.0.2", 9000),)
    assert first.timeouts.client_header == 0.25 and second.timeouts.send == 0.25
    root = next(loc for loc in first.locations if loc.prefix == "/")
    assert root.root == site / "other" and root.directory_listing
    f = next(loc for loc in first.locations if loc.prefix == "/f")
    assert f.root == site / "www" / "files" and f.directory_listing  # its own root stays
    assert second.locations[0].root == site / "other"  # a block without root gets one


def test_an_override_port_only_keeps_each_address(site: Path) -> None:
    text = "server {\n    host 127.0.0.1\n    port 81 82\n    root ./www\n}\n"
    (server,) = load(site, text, Overrides(port=9000)).servers
    assert server.addresses == (("127.0.0.1", 9000),)


@pytest.mark.parametrize(
    ("overrides", "column", "message"),
    [
        (Overrides(root="nowhere"), 8, 'root "nowhere" does not exist'),
        (Overrides(port=70000), 8, 'invalid port "70000"'),
        (Overrides(host="example.com"), 8, 'invalid host "example.com"'),
    ],
)
def test_a_bad_override_is_an_error_at_the_command_line(
    site: Path, overrides: Overrides, column: int, message: str
) -> None:
    exc = error(site, SERVER.format(""), overrides)
    assert (exc.path, exc.line, exc.column) == ("command line", 1, column)
    assert exc.message.startswith(message)
    assert exc.source.startswith("--")
