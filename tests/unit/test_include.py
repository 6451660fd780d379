"""``include GLOB``: files spliced where the include stands, relative to the main
file's folder, globs in sorted order, errors and warnings naming the included
file's own path, line and column, and include cycles."""

from __future__ import annotations

from pathlib import Path

import pytest

from localhost.config import ConfigError, load
from localhost.config.effective import render
from localhost.config.loader import explain
from localhost.config.model import ServerBlock


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "www").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "sites").mkdir()
    (tmp_path / "snippets").mkdir()
    return tmp_path


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(path)
    return info.value


# -- what an include brings in ----------------------------------------------------


def test_nested_includes_are_spliced_where_they_stand(site: Path) -> None:
    main = write(site, "main.conf", "worker_connections 64\ninclude sites/a.conf\n")
    write(
        site,
        "sites/a.conf",
        "server {\n    port 80\n    include snippets/site.conf\n}\n",
    )
    write(site, "snippets/site.conf", "root ./www\nlocation /x {\n    include snippets/x.conf\n}\n")
    write(site, "snippets/x.conf", "root ./other\ndirectory_listing on\n")
    config = load(main)
    assert config.worker_connections == 64
    (server,) = config.servers
    x = next(loc for loc in server.locations if loc.prefix == "/x")
    # Paths in included files are relative to the main file's folder.
    assert x.root == site / "other" and x.directory_listing
    root = next(loc for loc in server.locations if loc.prefix == "/")
    assert root.root == site / "www"


def test_a_relative_glob_is_taken_from_the_main_files_folder(site: Path) -> None:
    # sites/a.conf names "snippets/*.conf": from the main folder, not from sites/.
    main = write(site, "main.conf", "include sites/*.conf\n")
    write(site, "sites/a.conf", "server {\n    port 80\n    include snippets/*.conf\n}\n")
    write(site, "snippets/root.conf", "root ./www\n")
    write(site, "sites/snippets/root.conf", "root ./other\n")
    (server,) = load(main).servers
    assert server.locations[0].root == site / "www"


def test_a_glob_includes_its_files_in_sorted_order(site: Path) -> None:
    main = write(site, "main.conf", "include sites/*.conf\n")
    # Written out of order; each is one server block named after its file.
    for name in ("c", "a", "b"):
        write(
            site, f"sites/{name}.conf", f"server {{\n    port 80\n    server_name {name}.test\n}}\n"
        )
    names = [server.server_names for server in load(main).servers]
    assert names == [("a.test",), ("b.test",), ("c.test",)]


def test_an_absolute_glob_and_a_glob_in_a_block(site: Path) -> None:
    write(site, "snippets/1-root.conf", "root ./www\n")
    write(site, "snippets/2-index.conf", "default_file home.html\n")
    main = write(
        site,
        "main.conf",
        f"server {{\n    port 80\n    include {site}/snippets/*.conf\n}}\n",
    )
    (server,) = load(main).servers
    assert server.locations[0].root == site / "www"
    assert server.locations[0].default_file == "home.html"


def test_a_glob_that_matches_nothing_is_fine(site: Path) -> None:
    main = write(site, "main.conf", "include conf.d/*.conf\nserver { port 80; root ./www }\n")
    assert len(load(main).servers) == 1


def test_the_same_file_may_be_included_twice(site: Path) -> None:
    write(site, "snippets/listing.conf", "directory_listing on\n")
    main = write(
        site,
        "main.conf",
        "server {\n    port 80\n    root ./www\n"
        "    location /a { include snippets/listing.conf }\n"
        "    location /b { include snippets/listing.conf }\n}\n",
    )
    (server,) = load(main).servers
    assert all(loc.directory_listing for loc in server.locations if loc.prefix in ("/a", "/b"))


# -- errors -----------------------------------------------------------------------


def test_a_missing_plain_file_is_an_error_at_the_include(site: Path) -> None:
    main = write(site, "main.conf", "server { port 80 }\ninclude  nope.conf\n")
    exc = error(main)
    assert (exc.path, exc.line, exc.column) == (str(main), 2, 10)
    assert exc.message == f'include "nope.conf" does not exist (resolved to {site}/nope.conf)'


def test_a_glob_matching_a_folder_is_an_error(site: Path) -> None:
    (site / "sites" / "old.conf").mkdir()
    main = write(site, "main.conf", "include sites/*.conf\nserver { port 80 }\n")
    exc = error(main)
    assert (exc.path, exc.line, exc.column) == (str(main), 1, 9)
    assert exc.message.startswith('include "sites/*.conf": ')
    assert exc.message.endswith("sites/old.conf is a directory")


def test_an_error_inside_an_included_file_names_that_file(site: Path) -> None:
    main = write(site, "main.conf", "server {\n    port 80\n    include sites/a.conf\n}\n")
    included = write(site, "sites/a.conf", "root ./www\n\n  colour blue\n")
    exc = error(main)
    assert (exc.path, exc.line, exc.column) == (str(included), 3, 3)
    assert exc.message.startswith('unknown directive "colour"')
    assert exc.source == "  colour blue"  # the excerpt is the included file's line
    text = str(exc)
    assert text.startswith(f"{included}:3:3: unknown directive")
    # A note points at the include that brought the file in.
    assert f"{main}:3:5: note: {included} is included from here" in text
    assert "        include sites/a.conf" in text


def test_an_error_two_includes_deep_names_the_chain_of_includes(site: Path) -> None:
    main = write(site, "main.conf", "include sites/a.conf\n")
    a = write(site, "sites/a.conf", "server {\n    port 80\n    include snippets/b.conf\n}\n")
    b = write(site, "snippets/b.conf", "root ./missing\n")
    exc = error(main)
    assert (exc.path, exc.line, exc.column) == (str(b), 1, 6)
    assert exc.message.startswith('root "./missing" does not exist')
    text = str(exc)
    assert f"{a}:3:5: note: {b} is included from here" in text
    assert f"{main}:1:1: note: {a} is included from here" in text
    assert text.index(f"{a}:3:5") < text.index(f"{main}:1:1")


def test_a_syntax_error_inside_an_included_file_names_that_file(site: Path) -> None:
    main = write(site, "main.conf", "server {\n    port 80\n    include sites/a.conf\n}\n")
    included = write(site, "sites/a.conf", "root ./www\nlocation /x {\n")
    exc = error(main)
    assert exc.path == str(included)
    assert exc.line == 2
    assert 'the "location /x" block opened at 2:1 is never closed' in exc.message


def test_invalid_utf8_in_an_included_file_names_that_file(site: Path) -> None:
    main = write(site, "main.conf", "server {\n    port 80\n    include a.conf\n}\n")
    (site / "a.conf").write_bytes(b"root ./caf\xe9\n")
    exc = error(main)
    assert (exc.path, exc.line, exc.column) == (str(site / "a.conf"), 1, 11)
    assert exc.message == "invalid UTF-8 (byte 0xe9)"


def test_a_duplicate_across_files_names_the_other_file(site: Path) -> None:
    main = write(
        site, "main.conf", "server {\n    port 80\n    include a.conf\n    root ./other\n}\n"
    )
    write(site, "a.conf", "root ./www\n")
    exc = error(main)
    assert (exc.path, exc.line, exc.column) == (str(main), 4, 5)
    assert exc.message == f'"root" directive is duplicate (first at {site}/a.conf:1)'


def test_a_warning_inside_an_included_file_names_that_file(site: Path) -> None:
    main = write(
        site, "main.conf", "server {\n    port 80\n    root ./www\n    include a.conf\n}\n"
    )
    write(site, "a.conf", "\nerror_page 404 ./www/missing.html\n")
    (warning,) = load(main).warnings
    assert (warning.path, warning.line, warning.column) == (str(site / "a.conf"), 2, 16)
    assert warning.source == "error_page 404 ./www/missing.html"


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("include", 1, 'invalid number of values in "include" (syntax: include FILE|GLOB)'),
        ("include a.conf b.conf", 16, 'invalid number of values in "include"'),
        ("include a.conf { }", 1, '"include" is a directive, not a block'),
    ],
)
def test_include_takes_one_file_or_glob(site: Path, text: str, column: int, message: str) -> None:
    write(site, "a.conf", "")
    main = write(site, "main.conf", f"{text}\nserver {{ port 80 }}\n")
    exc = error(main)
    assert (exc.line, exc.column) == (1, column)
    assert exc.message.startswith(message)


# -- cycles -----------------------------------------------------------------------


def test_an_include_cycle_is_an_error_naming_the_chain(site: Path) -> None:
    main = write(site, "main.conf", "include a.conf\nserver { port 80 }\n")
    write(site, "a.conf", "include b.conf\n")
    b = write(site, "b.conf", "\ninclude a.conf\n")
    exc = error(main)
    assert (exc.path, exc.line, exc.column) == (str(b), 2, 9)
    assert exc.message == (
        f"include cycle: {main} -> {site}/a.conf -> {site}/b.conf -> {site}/a.conf"
    )


def test_a_file_including_itself_is_a_cycle(site: Path) -> None:
    main = write(
        site, "main.conf", "server {\n    port 80\n    location / { include loc.conf }\n}\n"
    )
    write(site, "loc.conf", "root ./www\nlocation /a { include loc.conf }\n")
    exc = error(main)
    assert exc.message == f"include cycle: {main} -> {site}/loc.conf -> {site}/loc.conf"


def test_a_glob_matching_the_main_file_is_a_cycle(site: Path) -> None:
    main = write(site, "main.conf", "server { port 80 }\ninclude *.conf\n")
    exc = error(main)
    assert exc.message == f"include cycle: {main} -> {main}"


# -- -T ---------------------------------------------------------------------------


def test_the_effective_configuration_shows_every_file_and_the_expanded_blocks(
    site: Path,
) -> None:
    main = write(site, "main.conf", "include sites/*.conf\n")
    write(
        site,
        "sites/a.conf",
        "server {\n    listen 127.0.0.1:8080\n    include snippets/r.conf\n}\n",
    )
    write(site, "snippets/r.conf", "root ./www\n")
    config, trace = explain(main)
    text = render(config, trace)
    # Every file read, whole, in the order read (as nginx -T).
    first = text.index(f"# configuration file {main}:\ninclude sites/*.conf\n")
    second = text.index(f"# configuration file {site}/sites/a.conf:\nserver {{")
    third = text.index(f"# configuration file {site}/snippets/r.conf:\nroot ./www\n")
    assert first < second < third
    effective = text[text.index("# The effective configuration") :]
    assert f"server {{  # {site}/sites/a.conf:1" in effective
    assert "    listen 127.0.0.1:8080;" in effective
    assert f"    root {site}/www;" in effective  # the server block's
    assert f"        # root {site}/www: inherited; the request path is appended" in effective


def test_the_effective_configuration_reads_back_as_the_same_configuration(site: Path) -> None:
    (site / "www" / "docs").mkdir()
    (site / "www" / "404.html").write_text("missing\n")
    write(site, "snippets/types.conf", "types {\n    text/html html\n    text/css css\n}\n")
    main = write(
        site,
        "main.conf",
        "include snippets/types.conf\nkeepalive_requests 50\n"
        "server {\n    listen 127.0.0.1:8080 default_server\n    server_name a.test\n"
        "    root ./www\n    error_page 404 ./www/404.html\n    client_max_body_size 10m\n"
        "    location /docs {\n        alias ./www/docs\n        autoindex on\n"
        "        index a.html b.html\n        location /docs/deep { methods GET }\n"
        "        location ~ \\.txt$ { default_file x }\n    }\n"
        "    location = /exact { }\n"
        "    location /other { types { text/plain txt } }\n}\n",
    )
    config, trace = explain(main)
    text = render(config, trace)
    dump = write(site, "dump.conf", text[text.index("# The effective configuration") :])

    def shape(servers: tuple[ServerBlock, ...]) -> list[object]:
        return [
            (
                s.addresses,
                s.default_server,
                s.server_names,
                s.timeouts,
                s.keepalive_requests,
                [
                    (
                        loc.prefix,
                        loc.modifier,
                        loc.root,
                        loc.alias,
                        loc.default_files,
                        loc.directory_listing,
                        loc.methods,
                        loc.body_limit,
                        dict(loc.error_pages),
                        loc.options["types"],
                    )
                    for loc in s.locations
                ],
            )
            for s in servers
        ]

    assert shape(load(dump).servers) == shape(config.servers)


def test_nginx_mime_types_file_included_at_the_top_level(site: Path) -> None:
    # NGINX's usual layout: "include mime.types" where that file is a types block.
    write(site, "mime.types", "types {\n    text/html  html htm shtml;\n    image/png  png;\n}\n")
    write(site, "extra.types", "application/x-demo demo;\n")
    main = write(
        site,
        "main.conf",
        "include mime.types\nserver {\n    port 80\n    root ./www\n"
        "    location /x {\n        types { include extra.types; }\n    }\n}\n",
    )
    (server,) = load(main).servers
    root = next(loc for loc in server.locations if loc.prefix == "/")
    x = next(loc for loc in server.locations if loc.prefix == "/x")
    assert dict(root.options["types"]) == {
        "html": "text/html",
        "htm": "text/html",
        "shtml": "text/html",
        "png": "image/png",
    }
    assert dict(x.options["types"]) == {"demo": "application/x-demo"}
