"""Location selection in NGINX's order: exact, longest prefix (``^~`` stops),
regexes in file order (nested ones first), else the longest prefix."""

from __future__ import annotations

from pathlib import Path

import pytest

from localhost.config import ConfigError, loads
from localhost.config.model import Config
from localhost.routing import Router

# The example of NGINX's documentation (ngx_http_core_module, "location"),
# one body per configuration so the chosen one can be told apart.
NGINX_EXAMPLE = """
server {{
    port 8080
    root {root}
    location = / {{ default_file A }}
    location / {{ default_file B }}
    location /documents/ {{ default_file C }}
    location ^~ /images/ {{ default_file D }}
    location ~* \\.(gif|jpg|jpeg)$ {{ default_file E }}
}}
"""


def load(tmp_path: Path, text: str) -> Config:
    return loads(text.format(root=tmp_path), tmp_path / "t.conf")


def chosen(config: Config, path: str) -> str | None:
    location = Router(config).match(config.servers[0], path)
    return None if location is None else location.default_file


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", "A"),
        ("/index.html", "B"),
        ("/documents/document.html", "C"),
        ("/images/1.gif", "D"),
        ("/documents/1.jpg", "E"),
        ("/documents/1.JPG", "E"),
        ("/x.jpeg", "E"),
        ("/documentsx/1.txt", "B"),  # prefixes end on a segment boundary
    ],
)
def test_nginx_documentation_example(tmp_path: Path, path: str, expected: str) -> None:
    assert chosen(load(tmp_path, NGINX_EXAMPLE), path) == expected


def test_regexes_in_file_order_and_case(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
server {{
    port 8080
    root {root}
    location / {{ default_file prefix }}
    location ~ \\.php$ {{ default_file first }}
    location ~ /a/.*\\.php$ {{ default_file second }}
    location ~ \\.TXT$ {{ default_file sensitive }}
}}
""",
    )
    assert chosen(config, "/a/b.php") == "first"
    assert chosen(config, "/a/b.TXT") == "sensitive"
    assert chosen(config, "/a/b.txt") == "prefix"


def test_nested_regex_comes_before_the_servers(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
server {{
    port 8080
    root {root}
    location ~ \\.png$ {{ default_file outer }}
    location /static {{
        default_file static
        location ~ \\.png$ {{ default_file inner }}
        location /static/deep {{ default_file deep }}
    }}
}}
""",
    )
    assert chosen(config, "/static/a.png") == "inner"
    assert chosen(config, "/other/a.png") == "outer"
    assert chosen(config, "/static/a.css") == "static"
    assert chosen(config, "/static/deep/x") == "deep"


def test_captures_come_with_the_regex_location(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
server {{
    port 8080
    root {root}
    location ~ ^/user/(?P<name>\\w+)/(\\d+)$ {{ default_file u }}
}}
""",
    )
    location, match = Router(config).find(config.servers[0], "/user/ada/42")
    assert location is not None and match is not None
    assert match.group("name") == "ada" and match.group(2) == "42"


def test_named_locations_are_not_matched_by_path(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
server {{
    port 8080
    root {root}
    location @fallback {{ default_file named }}
}}
""",
    )
    router = Router(config)
    found = router.match(config.servers[0], "/@fallback")
    assert found is not None and found.modifier != "@"  # the server root's "/"
    named = router.named(config.servers[0], "@fallback")
    assert named is not None and named.default_file == "named"


def test_nested_prefix_inherits_and_keeps_the_folder(tmp_path: Path) -> None:
    (tmp_path / "files" / "img").mkdir(parents=True)
    config = load(
        tmp_path,
        """
server {{
    port 8080
    location /files {{
        root {root}/files
        directory_listing on
        location /files/img {{ default_file pic }}
    }}
}}
""",
    )
    inner = Router(config).match(config.servers[0], "/files/img/a.png")
    assert inner is not None
    assert inner.directory_listing  # inherited from the parent
    assert inner.root == tmp_path / "files" / "img"  # the parent's folder, below its prefix
    assert inner.alias


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("location ~ ( { }", "invalid regular expression"),
        ("location @ { }", "invalid named location"),
        ("location /a { location /b { } }", 'location "/b" is outside the location "/a"'),
        ("location = /a { }\n    location = /a { }", 'duplicate location "/a"'),
        ("location /a { }\n    location ^~ /a { }", 'duplicate location "/a"'),
        ("location ~ x { location /y { } }", "only prefix locations may hold others"),
        ("location @n { }\n    location /n { location @m { } }", "named location cannot be nested"),
        ("location ?? /a { }", 'unknown location modifier "??"'),
    ],
)
def test_location_errors(tmp_path: Path, body: str, message: str) -> None:
    text = "server {\n    port 8080\n    root ROOT\n    " + body + "\n}\n"
    with pytest.raises(ConfigError) as info:
        loads(text.replace("ROOT", str(tmp_path)), tmp_path / "t.conf")
    assert message in info.value.message


def test_nested_prefix_without_any_root_uses_the_servers(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
server {{
    port 8080
    root {root}
    location /app {{
        default_file app
        location /app/assets {{ default_file assets }}
    }}
}}
""",
    )
    inner = Router(config).match(config.servers[0], "/app/assets/app.js")
    assert inner is not None and inner.default_file == "assets"
    assert inner.root == tmp_path and not inner.alias  # /app/assets/app.js under the root


def test_listen_default_server_picks_the_address_default(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
server {{
    listen 127.0.0.1:8080
    server_name a.test
    root {root}
}}
server {{
    listen 127.0.0.1:8080 default_server
    server_name b.test
    root {root}
}}
server {{
    listen 127.0.0.1:8080
    server_name c.test
    root {root}
}}
""",
    )
    router = Router(config)
    assert router.select(("127.0.0.1", 8080), "unknown.test") is config.servers[1]
    assert router.select(("127.0.0.1", 8080), "c.test") is config.servers[2]


def test_a_location_regexs_named_groups_are_variables_in_its_strings(tmp_path: Path) -> None:
    # NGINX's (?<name>...) spelling; $name in return, try_files and redirect strings.
    config = load(
        tmp_path,
        """
server {{
    port 8080
    root {root}
    location ~ ^/u/(?<name>\\w+)$ {{
        return 200 "hi $name"
    }}
    location ~ ^/f/(?<file>\\w+)$ {{
        try_files /$file.txt =404
    }}
}}
""",
    )
    location, match = Router(config).find(config.servers[0], "/u/ada")
    assert location is not None and match is not None and match.group("name") == "ada"
    with pytest.raises(ConfigError) as info:
        load(
            tmp_path,
            "server {{\n    port 8080\n    root {root}\n"
            "    location ~ ^/u/(?<name>\\w+)$ {{ return 200 $nmae }}\n}}\n",
        )
    assert "$nmae" in info.value.message or "nmae" in info.value.message
