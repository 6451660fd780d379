"""limit_req and limit_conn without sockets: NGINX's leaky bucket with a fake
clock (rate, burst, nodelay, delay=N, several limits), the shared tables
(sizes, eviction, a forked process sharing them), key compilation, the
directives' errors and inheritance, and the steps on a stand-in exchange.

The expected numbers are NGINX's documented behaviour: a client gets
``1 + burst`` requests at once, then one per ``1/rate``; without ``nodelay``
the requests beyond ``delay`` wait ``(excess - delay) / rate``; a zone keeps
one state per 64 bytes (1 MB: about 16 thousand).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from localhost.config import ConfigError, loads
from localhost.config.model import Config, Location
from localhost.http.errors import HTTPError
from localhost.modules import ratelimit
from localhost.modules.base import Phase
from localhost.modules.ratelimit import (
    AGAIN,
    BUSY,
    DELAY,
    ERROR,
    OK,
    PASS,
    REJECT,
    ConnZone,
    Delay,
    LimitConn,
    LimitReq,
    ReqLimit,
    ReqZone,
    SharedTable,
    key_hash,
    limit_requests,
)
from localhost.variables import compile_template

KEY = compile_template("$binary_remote_addr")
PROBE = 8  # slots in the windows of the small tables below
MEGABYTE = 1024 * 1024


def req_zone(rate: int = 1000, size: int = MEGABYTE, key: str = "$binary_remote_addr") -> ReqZone:
    """A zone with ``rate`` milli-requests per second (1000: 1r/s)."""
    return ReqZone("z", size, compile_template(key), rate, f"{rate // 1000}r/s")


def run(limits: list[ReqLimit], key: str, now: int) -> tuple[int, int, int, int]:
    return limit_requests(limits, [key_hash(key)] * len(limits), now)


# -- the leaky bucket ------------------------------------------------------------------


def test_one_request_per_period_without_burst() -> None:
    limit = ReqLimit(req_zone(rate=1000))
    assert run([limit], "a", 0)[0] == PASS  # a new key starts empty
    verdict, _, excess, _ = run([limit], "a", 0)
    assert (verdict, excess) == (REJECT, 1000)
    assert run([limit], "a", 500)[:3] == (REJECT, 0, 500)  # half leaked, still above 0
    assert run([limit], "a", 1000)[0] == PASS  # a whole period later


def test_burst_nodelay_lets_one_plus_burst_through_at_once() -> None:
    limit = ReqLimit(req_zone(rate=1000), burst=5000, delay=ratelimit.NODELAY)
    verdicts = [run([limit], "a", 10)[0] for _ in range(8)]
    assert verdicts == [PASS] * 6 + [REJECT] * 2
    # one more per second once the bucket leaks
    assert run([limit], "a", 1010)[0] == PASS
    assert run([limit], "a", 1010)[0] == REJECT
    assert run([limit], "a", 2010)[0] == PASS


def test_a_refusal_is_not_counted() -> None:
    limit = ReqLimit(req_zone(rate=1000))
    run([limit], "a", 0)
    for _ in range(5):
        assert run([limit], "a", 100)[0] == REJECT
    assert run([limit], "a", 1000)[0] == PASS


def test_without_nodelay_the_excess_waits_at_the_rate() -> None:
    limit = ReqLimit(req_zone(rate=10_000), burst=5000)  # 10r/s burst=5
    results = [run([limit], "a", 0) for _ in range(7)]
    assert [(v, d) for v, d, _, _ in results] == [
        (PASS, 0),
        (DELAY, 100),
        (DELAY, 200),
        (DELAY, 300),
        (DELAY, 400),
        (DELAY, 500),
        (REJECT, 0),
    ]


def test_delay_n_lets_n_more_through_before_waiting() -> None:
    limit = ReqLimit(req_zone(rate=1000), burst=5000, delay=2000)  # 1r/s burst=5 delay=2
    results = [run([limit], "a", 0)[:2] for _ in range(7)]
    assert results == [
        (PASS, 0),
        (PASS, 0),
        (PASS, 0),
        (DELAY, 1000),
        (DELAY, 2000),
        (DELAY, 3000),
        (REJECT, 0),
    ]


def test_rate_per_minute_leaks_in_milli_requests() -> None:
    limit = ReqLimit(req_zone(rate=30 * 1000 // 60))  # 30r/m: one per 2 s
    assert run([limit], "a", 0)[0] == PASS
    assert run([limit], "a", 1999)[0] == REJECT
    assert run([limit], "a", 2000)[0] == PASS


def test_keys_have_their_own_buckets() -> None:
    limit = ReqLimit(req_zone())
    assert run([limit], "\x7f\x00\x00\x01", 0)[0] == PASS
    assert run([limit], "\x7f\x00\x00\x01", 0)[0] == REJECT
    assert run([limit], "\x7f\x00\x00\x02", 0)[0] == PASS


def test_an_empty_key_is_not_limited() -> None:
    limit = ReqLimit(req_zone())
    for _ in range(5):
        assert limit_requests([limit], [None], 0)[0] == PASS
    assert limit.zone.table.used() == 0


def test_a_clock_going_back_counts_as_no_time() -> None:
    limit = ReqLimit(req_zone(), burst=1000)
    run([limit], "a", 5000)
    assert run([limit], "a", 4000)[:3] == (DELAY, 1000, 1000)  # ms < 0 reads as 0
    assert run([limit], "a", 3000)[0] == REJECT


def test_several_limits_one_refusal_stores_nothing() -> None:
    wide = ReqLimit(req_zone(rate=1000), burst=10_000, delay=ratelimit.NODELAY)
    narrow = ReqLimit(req_zone(rate=1000))
    run([wide, narrow], "a", 0)
    stored = wide.zone.table.rows.tolist()
    for _ in range(3):
        assert run([wide, narrow], "a", 0)[0] == REJECT
    assert wide.zone.table.rows.tolist() == stored


def test_several_limits_the_longest_wait_wins() -> None:
    fast = ReqLimit(req_zone(rate=10_000), burst=5000)  # 100 ms per request
    slow = ReqLimit(req_zone(rate=1000), burst=5000)  # 1 s per request
    run([fast, slow], "a", 0)
    verdict, delay, excess, index = run([fast, slow], "a", 0)
    assert (verdict, delay, index) == (DELAY, 1000, 1)
    assert excess == 1000
    verdict, delay, _, index = run([slow, fast], "a", 0)
    assert (verdict, delay, index) == (DELAY, 2000, 0)


def test_a_new_key_of_an_earlier_limit_counts_one_as_nginx() -> None:
    # ngx_http_limit_req_account adds 1000 to the state the lookup made
    first = ReqLimit(req_zone(rate=10_000), burst=5000)
    last = ReqLimit(req_zone(rate=10_000), burst=5000)
    assert run([first, last], "a", 0)[:2] == (DELAY, 100)


def test_lookup_reports_nginx_codes() -> None:
    zone = req_zone()
    h = key_hash("k")
    assert zone.lookup(h, 0, 0, account=False) == (AGAIN, 0)
    assert zone.lookup(h, 0, 0, account=True) == (BUSY, 1000)
    assert zone.lookup(h, 1000, 0, account=True) == (OK, 0)


# -- tables and zone sizes ------------------------------------------------------------


def test_zone_size_gives_one_state_per_64_bytes() -> None:
    assert req_zone(size=MEGABYTE).table.capacity == 16384
    assert ConnZone("c", 32 * 1024, KEY).table.capacity == 512


def test_a_full_window_evicts_a_drained_state_first() -> None:
    zone = req_zone(rate=1000)
    zone.table = SharedTable(1, 2, "test", probe=PROBE)  # one window: PROBE keys
    for n in range(1, PROBE):  # 5 requests in excess at 0 ms: 1 left at 4000 ms
        for _ in range(6):
            zone.lookup(key_hash(f"k{n}"), 0, 100_000, account=True)
    zone.lookup(key_hash("k0"), 0, 100_000, account=True)
    zone.lookup(key_hash("k0"), 4000, 100_000, account=True)  # the latest, and empty
    zone.lookup(key_hash("new"), 4000, 100_000, account=True)
    assert zone.table.find(key_hash("new")) >= 0
    assert zone.table.find(key_hash("k0")) < 0
    assert all(zone.table.find(key_hash(f"k{n}")) >= 0 for n in range(1, PROBE))


def test_a_full_window_evicts_the_least_recent_when_none_drained() -> None:
    zone = req_zone(rate=1)  # leaks one milli-request per second: nothing drains
    zone.table = SharedTable(1, 2, "test", probe=PROBE)
    for n in range(PROBE):
        zone.lookup(key_hash(f"k{n}"), 100 + n, 100_000, account=True)
        zone.lookup(key_hash(f"k{n}"), 200 + n, 100_000, account=True)
    zone.lookup(key_hash("new"), 500, 100_000, account=True)
    assert zone.table.find(key_hash("k0")) < 0  # updated longest ago
    assert zone.table.find(key_hash("new")) >= 0


def test_conn_zone_counts_and_releases() -> None:
    zone = ConnZone("c", 32 * 1024, KEY)
    h = key_hash("client")
    assert zone.acquire(h, 2) == OK
    assert zone.acquire(h, 2) == OK
    assert zone.acquire(h, 2) == BUSY
    assert zone.count("client") == 2
    zone.release(h)
    assert zone.acquire(h, 2) == OK
    zone.release(h)
    zone.release(h)
    assert zone.count("client") == 0
    assert zone.table.used() == 0  # the state goes with its last request


def test_conn_zone_without_room_refuses() -> None:
    zone = ConnZone("c", 32 * 1024, KEY)
    zone.table = SharedTable(1, 1, "test", probe=PROBE)
    for n in range(PROBE):
        assert zone.acquire(key_hash(f"k{n}"), 1) == OK
    assert zone.acquire(key_hash("one too many"), 1) == ERROR
    zone.release(key_hash("k3"))
    assert zone.acquire(key_hash("one too many"), 1) == OK


def test_a_forked_process_counts_in_the_same_zone() -> None:
    zone = ConnZone("c", 32 * 1024, KEY)
    bucket = req_zone()
    h = key_hash("client")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: as a worker forked after the load
        try:
            ok = zone.acquire(h, 5) == OK and bucket.lookup(h, 0, 0, True)[0] == OK
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        assert pipe.read() == b"1"
    os.waitpid(pid, 0)
    assert zone.count("client") == 1
    assert bucket.lookup(h, 0, 0, True)[0] == BUSY


def test_key_hash_is_stable_and_never_zero() -> None:
    assert key_hash("\x7f\x00\x00\x01") == key_hash("\x7f\x00\x00\x01")
    assert key_hash("a") != key_hash("b")
    assert 0 < key_hash("") < 2**63


# -- the directives ------------------------------------------------------------------

SITE = """
limit_req_zone $binary_remote_addr zone=one:1m rate=10r/s
limit_req_zone $server_name zone=site:64k rate=30r/m
limit_conn_zone $binary_remote_addr zone=addr:32k
limit_req zone=one burst=5
limit_req_status 429
server {{
    port 8080
    root ./www
{body}
}}
"""


def site(tmp_path: Path, body: str, top: str = "") -> Config:
    (tmp_path / "www").mkdir(exist_ok=True)
    return loads(top + SITE.format(body=body), tmp_path / "test.conf")


def location(config: Config, prefix: str) -> Location:
    return next(loc for loc in config.servers[0].locations if loc.prefix == prefix)


def error(tmp_path: Path, body: str, top: str = "") -> str:
    with pytest.raises(ConfigError) as caught:
        site(tmp_path, body, top)
    return str(caught.value).splitlines()[0]


def test_zone_and_rate_are_read(tmp_path: Path) -> None:
    config = site(tmp_path, "location /a { limit_req zone=site }")
    zone = location(config, "/a").options["limit_req"].limits[0].zone
    assert (zone.name, zone.size, zone.rate) == ("site", 64 * 1024, 500)
    assert zone.key.text == "$server_name"
    assert repr(zone) == "limit_req_zone $server_name zone=site:64k rate=30r/m"
    top = location(config, "/").options["limit_req"].limits[0].zone
    assert (top.rate, top.table.capacity) == (10_000, 16384)


def test_limit_req_parameters(tmp_path: Path) -> None:
    config = site(
        tmp_path,
        "location /a { limit_req zone=one burst=20 nodelay }\n"
        "location /b { limit_req zone=one burst=12 delay=8; limit_req zone=site }\n",
    )
    (a,) = location(config, "/a").options["limit_req"].limits
    assert (a.burst, a.delay) == (20_000, ratelimit.NODELAY)
    first, second = location(config, "/b").options["limit_req"].limits
    assert (first.zone.name, first.burst, first.delay) == ("one", 12_000, 8000)
    assert (second.zone.name, second.burst, second.delay) == ("site", 0, 0)


def test_limit_req_is_inherited_only_by_a_level_without_any(tmp_path: Path) -> None:
    config = site(
        tmp_path,
        "location /own { limit_req zone=site }\n"
        "location /inherits { }\n"
        "location /outer { limit_req zone=site burst=2\n"
        "    location /outer/inner { }\n"
        "    location /outer/replaced { limit_req zone=one } }\n",
    )

    def zones(prefix: str) -> list[tuple[str, int]]:
        limits: LimitReq = location(config, prefix).options["limit_req"]
        return [(limit.zone.name, limit.burst) for limit in limits.limits]

    assert zones("/own") == [("site", 0)]
    assert zones("/inherits") == [("one", 5000)]
    assert zones("/outer/inner") == [("site", 2000)]
    assert zones("/outer/replaced") == [("one", 0)]


def test_status_log_level_and_dry_run_inherit_like_nginx(tmp_path: Path) -> None:
    config = site(
        tmp_path,
        "limit_req_log_level warn\n"
        "location /a { limit_req_status 503; limit_req_dry_run on }\n"
        "location /b { limit_conn addr 3; limit_conn_log_level info; limit_conn_status 429 }\n",
    )
    a: LimitReq = location(config, "/a").options["limit_req"]
    assert (a.status, a.dry_run, a.level, a.delay_level) == (
        503,
        True,
        logging.WARNING,
        logging.INFO,
    )
    b: LimitReq = location(config, "/b").options["limit_req"]
    assert (b.status, b.dry_run) == (429, False)
    conn: LimitConn = location(config, "/b").options["limit_conn"]
    assert (conn.status, conn.level, conn.limits[0].conn) == (429, logging.INFO, 3)
    assert location(config, "/a").options["limit_conn"] is None


def test_one_zone_object_is_shared_by_every_location(tmp_path: Path) -> None:
    config = site(tmp_path, "location /a { }\nlocation /b { }")
    zones = {id(location(config, p).options["limit_req"].limits[0].zone) for p in ("/a", "/b", "/")}
    assert len(zones) == 1


def test_steps_come_before_access_control(tmp_path: Path) -> None:
    from localhost.modules import base

    names = [spec.name for spec in base.modules()]
    assert names.index("ratelimit") < names.index("access")
    config = site(tmp_path, "location /a { limit_conn addr 1 }")
    steps = ratelimit.build(config.servers[0], location(config, "/a"))
    assert [step.__name__ for step in steps.phases[Phase.ACCESS]] == ["limit_req", "limit_conn"]


@pytest.mark.parametrize(
    ("top", "body", "expected"),
    [
        (
            "limit_req_zone $nope zone=x:1m\n",
            "",
            'test.conf:1:16: limit_req_zone key: unknown "nope" variable',
        ),
        ("limit_req_zone $remote_addr zone=x:31k\n", "", 'zone "x" is too small'),
        ("limit_req_zone $remote_addr zone=x\n", "", "invalid zone size"),
        ("limit_req_zone $remote_addr zone=x:1q\n", "", 'invalid zone size "1q"'),
        ("limit_req_zone $remote_addr rate=1r/s\n", "", 'must have the "zone" parameter'),
        ("limit_req_zone $remote_addr zone=x:1m rate=1r/h\n", "", 'invalid rate "1r/h"'),
        ("limit_req_zone $remote_addr zone=x:1m rate=0r/s\n", "", 'invalid rate "0r/s"'),
        ("limit_req_zone $remote_addr zone=x:1m sync\n", "", 'invalid parameter "sync"'),
        ("limit_req_zone $remote_addr zone=one:1m\n", "", 'limit_req_zone "one" is already bound'),
        ("limit_conn_zone $remote_addr zone=one:1m\n", "", "already declared for a different use"),
        (
            "",
            "location /a { limit_req zone=nope }",
            'unknown limit_req_zone "nope" (defined: one, site)',
        ),
        ("", "location /a { limit_req zone=addr }", 'unknown limit_req_zone "addr"'),
        ("", "location /a { limit_conn one 1 }", 'unknown limit_conn_zone "one" (defined: addr)'),
        ("", "location /a { limit_req burst=5 }", 'must have the "zone" parameter'),
        ("", "location /a { limit_req zone=one burst=0 }", 'invalid burst value "burst=0"'),
        ("", "location /a { limit_req zone=one delay=x }", 'invalid delay value "delay=x"'),
        ("", "location /a { limit_req zone=one delay=2 nodelay }", "exclude each other"),
        ("", "location /a { limit_req zone=one fast }", 'invalid parameter "fast"'),
        ("", "location /a { limit_req zone=one; limit_req zone=one }", 'zone "one" is duplicate'),
        ("", "location /a { limit_conn addr 0 }", "invalid number of connections"),
        ("", "location /a { limit_conn addr 65536 }", "less than 65536"),
        ("", "location /a { limit_req_status 302 }", "from 400 to 599"),
        ("", "location /a { limit_conn_log_level debug }", 'invalid level "debug"'),
        ("", "location /a { limit_req_dry_run yes }", 'expected "on" or "off"'),
        (
            "",
            "location /a { limit_req_zone $remote_addr zone=x:1m }",
            "allowed only at the top level",
        ),
    ],
)
def test_directive_errors(tmp_path: Path, top: str, body: str, expected: str) -> None:
    assert expected in error(tmp_path, body, top)


def test_errors_point_at_the_parameter(tmp_path: Path) -> None:
    message = error(tmp_path, "    location /a { limit_req zone=one burst=x }")
    assert message.startswith(f"{tmp_path / 'test.conf'}:10:38: ")
    message = error(tmp_path, "", "limit_req_zone x$hots zone=x:1m\n")
    assert message.startswith(f"{tmp_path / 'test.conf'}:1:17: ")
    assert 'did you mean "$host"' in message


def test_a_constant_key_is_one_bucket_for_everyone(tmp_path: Path) -> None:
    config = site(
        tmp_path, "location /a { limit_req zone=all }", "limit_req_zone all zone=all:1m\n"
    )
    zone = location(config, "/a").options["limit_req"].limits[0].zone
    assert zone.key.static == "all"


# -- the steps ---------------------------------------------------------------------------


class FakeExchange(SimpleNamespace):
    """What the steps read of an exchange: the client, the request, the clock."""

    def __init__(self, peer: str = "127.0.0.1", now: float = 100.0) -> None:
        request = SimpleNamespace(method="GET", target="/a", path="/a", headers={})
        super().__init__(
            request=request,
            peer=(peer, 5000),
            local=("127.0.0.1", 8080),
            loop=SimpleNamespace(now=now),
            cleanups=None,
            captures=None,
        )

    def end(self) -> None:
        for cleanup in self.cleanups or ():
            cleanup()
        self.cleanups = None


def req_step(limits: list[ReqLimit], **settings: Any) -> Any:
    return ratelimit.limit_req_step(LimitReq(tuple(limits), **settings))


def test_limit_req_step_refuses_with_the_status() -> None:
    step = req_step([ReqLimit(req_zone(), burst=1000, delay=ratelimit.NODELAY)], status=429)
    assert step(FakeExchange()) is None
    assert step(FakeExchange()) is None
    with pytest.raises(HTTPError) as caught:
        step(FakeExchange())
    assert caught.value.status == 429
    assert step(FakeExchange(peer="10.0.0.1")) is None  # another client


def test_limit_req_step_delays_in_seconds() -> None:
    step = req_step([ReqLimit(req_zone(rate=4000), burst=5000)])  # 4r/s
    assert step(FakeExchange()) is None
    assert step(FakeExchange()) == Delay(0.25)
    assert step(FakeExchange()) == Delay(0.5)


def test_limit_req_step_applies_once_per_request() -> None:
    step = req_step([ReqLimit(req_zone())])
    exchange = FakeExchange()
    assert step(exchange) is None
    # the same request again (a rewrite, try_files or error_page took it to
    # another location with the same limit): not counted twice
    assert step(exchange) is None
    with pytest.raises(HTTPError):
        step(FakeExchange())


def test_limit_req_dry_run_counts_but_lets_through(caplog: pytest.LogCaptureFixture) -> None:
    limit = ReqLimit(req_zone())
    step = req_step([limit], dry_run=True)
    with caplog.at_level(logging.INFO, logger="localhost"):
        for _ in range(3):
            assert step(FakeExchange()) is None
    assert "limiting requests, dry run, excess: 1.000 by zone" in caplog.text
    assert run([limit], "\x7f\x00\x00\x01", 100_000)[0] == REJECT  # it was counted


def test_limit_req_logs_at_its_levels(caplog: pytest.LogCaptureFixture) -> None:
    step = req_step(
        [ReqLimit(req_zone(), burst=1000)], level=logging.WARNING, delay_level=logging.INFO
    )
    with caplog.at_level(logging.INFO, logger="localhost"):
        step(FakeExchange())
        step(FakeExchange())
        with pytest.raises(HTTPError):
            step(FakeExchange())
    levels = [(record.levelno, record.getMessage().split(",")[0]) for record in caplog.records]
    assert levels == [
        (logging.INFO, "delaying request"),
        (logging.WARNING, "limiting requests"),
    ]
    assert 'by zone "z", client: 127.0.0.1, request: "GET /a"' in caplog.records[1].getMessage()


def test_limit_req_step_skips_an_empty_key() -> None:
    zone = req_zone(key="$http_x_client")
    step = req_step([ReqLimit(zone)])
    for _ in range(3):
        assert step(FakeExchange()) is None
    assert zone.table.used() == 0


def conn_step(zone: ConnZone, conn: int, **settings: Any) -> Any:
    return ratelimit.limit_conn_step(LimitConn((ratelimit.ConnLimit(zone, conn),), **settings))


def test_limit_conn_step_counts_until_the_request_ends() -> None:
    zone = ConnZone("addr", 32 * 1024, KEY)
    step = conn_step(zone, 2)
    first, second, third = FakeExchange(), FakeExchange(), FakeExchange()
    step(first)
    step(second)
    assert zone.count("\x7f\x00\x00\x01") == 2
    with pytest.raises(HTTPError) as caught:
        step(third)
    assert caught.value.status == 503
    first.end()
    assert zone.count("\x7f\x00\x00\x01") == 1
    step(third)
    second.end()
    third.end()
    assert zone.count("\x7f\x00\x00\x01") == 0


def test_limit_conn_step_applies_once_and_releases_once() -> None:
    zone = ConnZone("addr", 32 * 1024, KEY)
    step = conn_step(zone, 1)
    exchange = FakeExchange()
    step(exchange)
    step(exchange)  # after an internal redirect: not counted again
    assert zone.count("\x7f\x00\x00\x01") == 1
    exchange.end()
    assert zone.count("\x7f\x00\x00\x01") == 0


def test_limit_conn_refusal_takes_back_the_other_zones() -> None:
    wide = ConnZone("wide", 32 * 1024, compile_template("$server_port"))
    narrow = ConnZone("narrow", 32 * 1024, KEY)
    step = ratelimit.limit_conn_step(
        LimitConn((ratelimit.ConnLimit(wide, 10), ratelimit.ConnLimit(narrow, 1)))
    )
    held = FakeExchange()
    step(held)
    with pytest.raises(HTTPError):
        step(FakeExchange())
    assert wide.count("8080") == 1  # the refused request's count was taken back
    held.end()
    assert wide.count("8080") == 0


def test_limit_conn_dry_run_lets_through_uncounted() -> None:
    zone = ConnZone("addr", 32 * 1024, KEY)
    step = conn_step(zone, 1, dry_run=True)
    step(FakeExchange())
    extra = FakeExchange()
    step(extra)
    assert zone.count("\x7f\x00\x00\x01") == 1
    extra.end()
    assert zone.count("\x7f\x00\x00\x01") == 1
