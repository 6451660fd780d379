"""The sans-IO parts of the proxy: balancing, passive health, the pool, the
``upstream`` block and ``proxy_pass`` in the configuration, the target rewrite."""

from __future__ import annotations

from collections import Counter

import pytest

from localhost.config.loader import ConfigError, loads
from localhost.config.model import Location
from localhost.handlers.proxy import ProxySettings, upstream_target
from localhost.upstream import Balancer, Peer, Upstream, UpstreamServer, parse_address


def group(*servers: UpstreamServer, method: str = "round_robin", keepalive: int = 0) -> Balancer:
    return Balancer(Upstream("app", servers, method, keepalive))


def server(port: int, **options: object) -> UpstreamServer:
    return UpstreamServer("127.0.0.1", port, f"127.0.0.1:{port}", **options)  # type: ignore[arg-type]


def picks(balancer: Balancer, count: int, client: str = "10.0.0.1", now: float = 0.0) -> list[int]:
    chosen = []
    for _ in range(count):
        peer = balancer.select(client, now)
        assert peer is not None
        chosen.append(peer.server.port)
        balancer.release(peer, False, now)
    return chosen


def test_smooth_weighted_round_robin_is_nginx_sequence() -> None:
    # NGINX's own example (ngx_http_upstream_round_robin.c): weights 5, 1, 1.
    balancer = group(server(1, weight=5), server(2), server(3))
    assert picks(balancer, 7) == [1, 1, 2, 1, 3, 1, 1]


def test_weights_share_traffic() -> None:
    balancer = group(server(1), server(2, weight=2), server(3))
    assert Counter(picks(balancer, 400)) == {1: 100, 2: 200, 3: 100}


def test_max_fails_marks_down_for_fail_timeout() -> None:
    balancer = group(server(1, max_fails=2, fail_timeout=10.0), server(2))
    peer = next(p for p in balancer.primary if p.server.port == 1)
    for now in (0.0, 1.0):
        balancer.select("c", now)  # counted as in use, as a request would be
        balancer.release(peer, True, now)
    # Down from t=1 for 10 s: every pick is server 2.
    assert set(picks(balancer, 10, now=5.0)) == {2}
    # Back after fail_timeout.
    assert 1 in picks(balancer, 4, now=11.5)


def test_failures_outside_the_window_do_not_add_up() -> None:
    balancer = group(server(1, max_fails=2, fail_timeout=10.0), server(2))
    peer = balancer.primary[0]
    balancer.release(peer, True, 0.0)
    balancer.release(peer, True, 20.0)  # the first is too old
    assert peer.available(21.0)


def test_max_fails_zero_never_marks_down() -> None:
    balancer = group(server(1, max_fails=0), server(2))
    peer = balancer.primary[0]
    for now in range(10):
        balancer.release(peer, True, float(now))
    assert peer.available(10.0)


def test_single_server_is_never_marked_down() -> None:
    balancer = group(server(1))
    peer = balancer.primary[0]
    balancer.release(peer, True, 0.0)
    assert balancer.select("c", 1.0) is peer


def test_backup_only_when_primaries_are_down_and_none_when_all_are() -> None:
    balancer = group(server(1, fail_timeout=5.0), server(2, backup=True), server(3, down=True))
    assert set(picks(balancer, 4)) == {1}
    balancer.release(balancer.primary[0], True, 0.0)
    assert set(picks(balancer, 4, now=1.0)) == {2}
    balancer.release(balancer.backup[0], True, 1.0)
    assert balancer.select("c", 2.0) is None  # "no live upstreams": 502


def test_tried_servers_are_not_chosen_again() -> None:
    balancer = group(server(1), server(2))
    first = balancer.select("c", 0.0)
    assert first is not None
    second = balancer.select("c", 0.0, frozenset({first}))
    assert second is not None and second is not first
    assert balancer.select("c", 0.0, frozenset({first, second})) is None


def test_least_conn_prefers_fewest_active_per_weight() -> None:
    balancer = group(server(1), server(2, weight=2), method="least_conn")
    a = balancer.select("c", 0.0)
    b = balancer.select("c", 0.0)
    assert a is not None and b is not None and {a.server.port, b.server.port} == {1, 2}
    # Server 2 holds 1 of weight 2, server 1 holds 1 of weight 1: server 2 next.
    third = balancer.select("c", 0.0)
    assert third is not None and third.server.port == 2
    balancer.release(a, False, 0.0)


def test_ip_hash_is_sticky_and_moves_only_when_down() -> None:
    balancer = group(server(1), server(2), server(3), method="ip_hash")
    for client in ("192.0.2.10", "198.51.100.7", "203.0.113.200"):
        assert len(set(picks(balancer, 10, client))) == 1
    # Same /24: same server (NGINX hashes three octets).
    assert picks(balancer, 1, "192.0.2.10") == picks(balancer, 1, "192.0.2.99")
    home = picks(balancer, 1, "192.0.2.10")[0]
    peer = next(p for p in balancer.primary if p.server.port == home)
    peer.down_until = 100.0
    moved = picks(balancer, 5, "192.0.2.10", now=1.0)
    assert home not in moved and len(set(moved)) == 1


class FakeIdle:
    """An idle connection that records being closed (no socket needed for the pool's rules)."""

    def __init__(self) -> None:
        self.closed = False

    def close_idle(self) -> None:
        self.closed = True


def test_pool_keeps_at_most_keepalive_and_closes_the_oldest() -> None:
    balancer = group(server(1), server(2), keepalive=2)
    one, two = balancer.primary
    conns = [FakeIdle() for _ in range(3)]
    assert balancer.put(one, conns[0]) and balancer.put(two, conns[1])
    balancer.put(one, conns[2])
    assert conns[0].closed and not conns[1].closed and not conns[2].closed
    assert balancer.take(two) is conns[1]
    assert balancer.take(two) is None
    assert balancer.take(one) is conns[2]


def test_no_pool_without_keepalive() -> None:
    balancer = group(server(1))
    assert not balancer.put(balancer.primary[0], FakeIdle())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("backend", ("backend", 80)),
        ("[::1]:9000", ("::1", 9000)),
        ("[::1]", ("::1", 80)),
    ],
)
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["", ":80", "host:", "host:0", "host:70000", "[::1"])
def test_parse_address_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_address(text)


@pytest.mark.parametrize(
    ("prefix", "uri", "target", "expected"),
    [
        ("/api", "/", "/api/users?id=1", "/users?id=1"),
        ("/api", "/", "/api", "/"),
        ("/api", "/v2/", "/api/x/y", "/v2/x/y"),
        ("/api", "/v2", "/api/x", "/v2/x"),
        ("/api", None, "/api/x?q", "/api/x?q"),
        ("/", "/base/", "/a/b", "/base/a/b"),
        ("/api", "/", "http://example.com/api/x?q=1", "/x?q=1"),
    ],
)
def test_upstream_target(prefix: str, uri: str | None, target: str, expected: str) -> None:
    path = target.split("?")[0]
    if "://" in path:
        path = "/" + path.split("://", 1)[1].split("/", 1)[1]
    assert upstream_target(target, path, Location(prefix=prefix), uri) == expected


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        # Dot segments and an encoded slash that would climb out of /public/
        # upstream: the normalized path goes (as NGINX sends it).
        ("/pub/a%2Fb/../../secret", "/public/secret"),
        ("/pub/./x", "/public/x"),
        ("/pub/x/%2e%2e/y?q=1", "/public/y?q=1"),
        ("/pub/a%20b/caf%C3%A9?x=%2F", "/public/a%20b/caf%C3%A9?x=%2F"),
        ("/pub/100%25", "/public/100%25"),
        ("/pub/what%3F", "/public/what%3F"),
    ],
)
def test_upstream_target_sends_the_normalized_path(target: str, expected: str) -> None:
    from localhost.http.target import normalize_target

    path, _ = normalize_target(target)
    assert upstream_target(target, path, Location(prefix="/pub"), "/public/") == expected


CONFIG = """
upstream app {
    server 127.0.0.1:9001
    server 127.0.0.1:9002 weight=2 max_fails=3 fail_timeout=10s
    server 127.0.0.1:9003 backup
    least_conn
    keepalive 32
}
server {
    port 8080
    location /api/ {
        proxy_pass http://app/
        proxy_set_header X-Real-IP $remote_addr
        proxy_connect_timeout 5s
        proxy_read_timeout 60s
        proxy_send_timeout 60s
        proxy_next_upstream error timeout
        proxy_buffering off
    }
}
"""


def proxy_of(text: str, index: int = 0) -> ProxySettings:
    config = loads(text)
    location = next(loc for loc in config.servers[0].locations if "proxy_pass" in loc.options)
    settings: ProxySettings = location.options["proxy_pass"]
    return settings


def test_the_issue_config_loads() -> None:
    settings = proxy_of(CONFIG)
    upstream = settings.upstream
    assert upstream.method == "least_conn" and upstream.keepalive == 32
    assert [
        (s.port, s.weight, s.max_fails, s.fail_timeout, s.backup) for s in upstream.servers
    ] == [
        (9001, 1, 1, 10.0, False),
        (9002, 2, 3, 10.0, False),
        (9003, 1, 1, 10.0, True),
    ]
    assert settings.uri == "/" and settings.proxy_host == "app"
    assert settings.connect_timeout == 5.0 and not settings.buffering
    assert settings.next_upstream == {"error", "timeout"}
    assert [name for name, _ in settings.headers] == [
        "X-Forwarded-For",
        "X-Forwarded-Proto",
        "X-Real-IP",
    ]


def test_direct_address_makes_a_group_of_one() -> None:
    settings = proxy_of("server {\n port 8080\n location / { proxy_pass http://127.0.0.1:9000 } }")
    assert settings.upstream.implicit and settings.uri is None
    assert settings.proxy_host == "127.0.0.1:9000"


def test_an_empty_proxy_set_header_removes_the_field() -> None:
    settings = proxy_of(
        "server {\n port 8080\n location / { proxy_pass http://127.0.0.1:9000\n"
        ' proxy_set_header X-Forwarded-For "" } }'
    )
    assert [name for name, _ in settings.headers] == ["X-Forwarded-Proto"]


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        (
            "server {\n port 8080\n location / { proxy_pass http://nosuchupstream.invalid } }",
            (3, 26),
            "host not found",
        ),
        (
            "upstream a {\n server 127.0.0.1:1 weight=0\n}\n" + "server { port 80 }",
            (2, 21),
            "weight",
        ),
        ("upstream a {\n server 127.0.0.1:99999\n}\nserver { port 80 }", (2, 9), "port"),
        ("upstream a {\n least_conn\n}\nserver { port 80 }", (1, 10), 'no "server"'),
        ("upstream a {\n server 127.0.0.1:1 slow\n}\nserver { port 80 }", (2, 21), "parameter"),
        (
            "upstream a { server 127.0.0.1:1 }\nupstream a { server 127.0.0.1:2 }\nserver { port 80 }",
            (2, 10),
            "duplicate",
        ),
        (
            "server {\n port 8080\n location / { proxy_pass https://x }\n}",
            (3, 26),
            "https",
        ),
        (
            "server {\n port 8080\n location / { proxy_pass http://127.0.0.1:1\n cgi .py python3 }\n}",
            (3, 26),
            "cgi",
        ),
        (
            "server {\n port 8080\n location / { proxy_pass http://127.0.0.1:1\n proxy_next_upstream sometimes } }",
            (4, 22),
            "invalid value",
        ),
    ],
)
def test_config_errors_point_at_the_value(text: str, where: tuple[int, int], words: str) -> None:
    with pytest.raises(ConfigError) as info:
        loads(text)
    error = info.value
    assert words in str(error)
    assert (error.line, error.column) == where, str(error)


def test_peer_repr_names_the_address() -> None:
    assert "127.0.0.1:5" in repr(Peer(server(5)))


def test_upstream_target_with_a_prefix_that_encoding_would_change() -> None:
    from localhost.http.target import normalize_target

    target = "/caf%C3%A9/a%2Fb/../../x%20y"
    path, _ = normalize_target(target)
    location = Location(prefix=path[: len("/café")])
    assert upstream_target(target, path, location, "/public/") == "/public/x%20y"
