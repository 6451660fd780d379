"""Upstream groups: the servers a ``proxy_pass`` reaches, how one is chosen, and idle connections.

The configuration model (``UpstreamServer``, ``Upstream``) is frozen and made
at load time, hostnames resolved then (as NGINX does: never per request).
The state that changes while serving (``Balancer``: current weights, failure
counts, connections in use, idle keep-alive connections) belongs to one
worker, as in NGINX without a shared ``zone``: each worker balances and
counts failures on its own. ``Balancer`` is sans-IO apart from closing the
idle connections it is given: ``select`` and ``release`` take the time as an
argument, so they are unit-tested without a clock or a socket.

Choosing a server (``Balancer.select``), as ``ngx_http_upstream_round_robin.c``,
``ngx_http_upstream_least_conn_module.c`` and ``ngx_http_upstream_ip_hash_module.c``:

- *smooth weighted round-robin* (default): each available server's
  ``current`` grows by its ``effective`` weight; the largest wins and loses
  the sum of the weights. Weights 5, 1, 1 give ``a a b a c a a``, never five
  in a row. A failure lowers ``effective`` by ``weight / max_fails``; each
  selection raises it by one back to ``weight``, so a flapping server gets
  less traffic while it recovers.
- ``least_conn``: the server with the fewest active connections relative to
  its weight (``conns / weight``); ties go to smooth round-robin among them.
- ``ip_hash``: the first three octets of an IPv4 client address (the whole
  address for IPv6) hashed as NGINX does (start 89, ``h = (h * 113 + byte) %
  6271``), then taken modulo the total weight over the servers in order; an
  unavailable server makes it hash again (up to 20 times), then round-robin.
  A client keeps its server while that server is up.

Passive health (``max_fails``, ``fail_timeout``): ``release(peer, failed=True)``
counts a failure; ``max_fails`` failures within ``fail_timeout`` seconds of the
first make the server unavailable for ``fail_timeout`` seconds, after which
it gets requests again (a success clears the count). ``max_fails=0`` turns
counting off; a group of one server never marks it unavailable (NGINX
neither). ``backup`` servers are chosen only while no primary server is
available; ``down`` servers never. When nothing is available ``select``
returns None: the proxy answers 502 ("no live upstreams").

Keep-alive (``keepalive N``): at most N idle connections per group and
worker, the least recently used closed first when one more comes back.
``take(peer)`` hands out the most recent idle connection to that server.
"""

from __future__ import annotations

import ipaddress
import socket
from collections import deque
from dataclasses import dataclass
from typing import Any
from typing import Protocol as TypingProtocol

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_FAIL_TIMEOUT",
    "DEFAULT_KEEPALIVE_TIMEOUT",
    "DEFAULT_MAX_FAILS",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_SEND_TIMEOUT",
    "METHODS",
    "PROXY_BUFFER",
    "UPSTREAM_HIGH_WATER",
    "Balancer",
    "Idle",
    "Peer",
    "Upstream",
    "UpstreamRecord",
    "UpstreamServer",
    "Upstreams",
    "parse_address",
    "resolve",
]

#: NGINX's defaults for ``server ... max_fails=`` and ``fail_timeout=`` (seconds).
DEFAULT_MAX_FAILS = 1
DEFAULT_FAIL_TIMEOUT = 10.0
#: Seconds an idle upstream connection is kept (NGINX's upstream ``keepalive_timeout``).
DEFAULT_KEEPALIVE_TIMEOUT = 60.0
#: NGINX's defaults: proxy_connect_timeout, proxy_read_timeout, proxy_send_timeout (seconds).
DEFAULT_CONNECT_TIMEOUT = 60.0
DEFAULT_READ_TIMEOUT = 60.0
DEFAULT_SEND_TIMEOUT = 60.0
#: Bytes queued on an upstream socket above which the client's body is paused
#: (the transport's default high-water mark).
UPSTREAM_HIGH_WATER = 256 * 1024
#: With ``proxy_buffering on``: bytes let through to a client past its
#: high-water mark before the upstream socket is paused (per request).
PROXY_BUFFER = 1024 * 1024
#: Balancing methods: the default and the directives that choose the others.
METHODS = ("round_robin", "least_conn", "ip_hash")

_IP_HASH_TRIES = 20  # rehashes before ip_hash falls back to round-robin (NGINX's number)


@dataclass(frozen=True, slots=True)
class UpstreamServer:
    """One server of a group: an address (``host`` an IP literal, resolved at
    load) and ``port``; ``name`` is the ``HOST:PORT`` written in the
    configuration (``$upstream_addr`` shows ``address``). ``fail_timeout``
    is in seconds."""

    host: str
    port: int
    name: str
    weight: int = 1
    max_fails: int = DEFAULT_MAX_FAILS
    fail_timeout: float = DEFAULT_FAIL_TIMEOUT
    backup: bool = False
    down: bool = False

    @property
    def address(self) -> str:
        """``IP:PORT`` (``[IPv6]:PORT``), as ``$upstream_addr`` shows it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Upstream:
    """An ``upstream NAME { ... }`` group (or the group of one address that a
    ``proxy_pass http://HOST:PORT`` makes, ``implicit``). ``method`` is one of
    ``METHODS``; ``keepalive`` the idle connections kept per worker (0: a
    connection per request, sent ``Connection: close``)."""

    name: str
    servers: tuple[UpstreamServer, ...]
    method: str = "round_robin"
    keepalive: int = 0
    keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT
    implicit: bool = False


def parse_address(text: str, default_port: int = 80) -> tuple[str, int]:
    """``HOST[:PORT]`` or ``[IPv6][:PORT]`` as ``(host, port)``.

    Raises ``ValueError`` with a message for an empty host or a port that is
    not a number in 1-65535.
    """
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError("unclosed [ in an IPv6 address")
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError("expected :PORT after the IPv6 address")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if not host:
        raise ValueError("no host")
    if port_text == "" and ":" in text and not text.startswith("["):
        raise ValueError("empty port")
    if port_text:
        if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"invalid port {port_text!r}")
        return host, int(port_text)
    return host, default_port


def resolve(host: str, port: int) -> list[str]:
    """The IP addresses of ``host`` (a literal stays as it is), in the
    resolver's order without repeats. Blocks for a name: call at load only.
    Raises ``OSError`` (``socket.gaierror``) when it does not resolve."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    found: list[str] = []
    for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = str(info[4][0])
        if address not in found:
            found.append(address)
    return found


class Idle(TypingProtocol):
    """What the pool needs of an idle connection: a way to close it."""

    def close_idle(self) -> None: ...


class Peer:
    """The worker's state of one server: weights, connections in use, failures."""

    __slots__ = (
        "server",
        "address",
        "current",
        "effective",
        "conns",
        "fails",
        "first_fail",
        "down_until",
    )

    def __init__(self, server: UpstreamServer) -> None:
        self.server = server
        #: ``server.address``, made once (``$upstream_addr``, log lines).
        self.address = server.address
        self.current = 0
        self.effective = server.weight
        self.conns = 0  # requests using this server now (least_conn)
        self.fails = 0
        self.first_fail = 0.0  # when the failures being counted began
        self.down_until = 0.0

    def available(self, now: float) -> bool:
        """Not ``down`` and not marked failed at ``now``."""
        return not self.server.down and now >= self.down_until

    def __repr__(self) -> str:
        return f"<Peer {self.address} w={self.server.weight} fails={self.fails}>"


class Balancer:
    """The per-worker state of one ``Upstream``: choose, count, pool.

    ``select(client, now, tried)`` → a ``Peer`` or None; each selection is
    paired with one ``release(peer, failed, now)``. ``tried`` are peers this
    request already failed on (``proxy_next_upstream``): not chosen again.
    """

    __slots__ = (
        "upstream",
        "primary",
        "backup",
        "single",
        "idle",
        "head_memo",
        "request_memo",
        "fields_memo",
        "_select",
    )

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        #: The response heads recently parsed on this group's connections
        #: (``localhost.http.client.ResponseParser``'s ``memo``).
        self.head_memo: dict[bytes, Any] = {}
        #: Request heads recently sent to this group, by what they were made of
        #: (``localhost.handlers.proxy``).
        self.request_memo: dict[Any, tuple[Any, bytes]] = {}
        #: What the proxy passes on of each recently parsed response head.
        self.fields_memo: dict[int, Any] = {}
        self.primary = [Peer(s) for s in upstream.servers if not s.backup]
        self.backup = [Peer(s) for s in upstream.servers if s.backup]
        # One server in all: never marked unavailable (NGINX's single peer).
        self.single = len(upstream.servers) == 1
        #: Idle keep-alive connections, least recently used first.
        self.idle: deque[tuple[Peer, Idle]] = deque()
        self._select = {
            "round_robin": self._round_robin,
            "least_conn": self._least_conn,
            "ip_hash": self._ip_hash,
        }[upstream.method]

    # -- choosing -------------------------------------------------------------

    def select(self, client: str, now: float, tried: frozenset[Peer] = frozenset()) -> Peer | None:
        """The server for a request from ``client`` (an IP address) at ``now``
        (seconds, monotonic), never one of ``tried``; None when none is available."""
        if self.single and not tried:
            # One server: never marked unavailable, so it is the answer unless down.
            only = (self.primary or self.backup)[0]
            if only.server.down:
                return None
            only.conns += 1
            return only
        peer = self._select(self.primary, client, now, tried)
        if peer is None and self.backup:
            peer = self._round_robin(self.backup, client, now, tried)
        if peer is not None:
            peer.conns += 1
        return peer

    def has_other(self, now: float, tried: frozenset[Peer]) -> bool:
        """Whether ``select`` would find a server outside ``tried`` at ``now``
        (choosing none: no counter moves)."""
        return bool(
            self._candidates(self.primary, now, tried) or self._candidates(self.backup, now, tried)
        )

    def _candidates(self, peers: list[Peer], now: float, tried: frozenset[Peer]) -> list[Peer]:
        if self.single:
            return [p for p in peers if not p.server.down and p not in tried]
        return [p for p in peers if p.available(now) and p not in tried]

    def _round_robin(
        self, peers: list[Peer], client: str, now: float, tried: frozenset[Peer]
    ) -> Peer | None:
        return _smooth(self._candidates(peers, now, tried))

    def _least_conn(
        self, peers: list[Peer], client: str, now: float, tried: frozenset[Peer]
    ) -> Peer | None:
        candidates = self._candidates(peers, now, tried)
        if not candidates:
            return None
        # Compared as conns_a * weight_b < conns_b * weight_a (NGINX): no division.
        best = candidates[0]
        for peer in candidates[1:]:
            if peer.conns * best.server.weight < best.conns * peer.server.weight:
                best = peer
        ties = [
            p for p in candidates if p.conns * best.server.weight == best.conns * p.server.weight
        ]
        return _smooth(ties)

    def _ip_hash(
        self, peers: list[Peer], client: str, now: float, tried: frozenset[Peer]
    ) -> Peer | None:
        total = sum(p.server.weight for p in peers)
        if not total:
            return None
        key = _hash_key(client)
        value = 89
        for _ in range(_IP_HASH_TRIES):
            for byte in key:
                value = (value * 113 + byte) % 6271
            point = value % total
            for peer in peers:
                point -= peer.server.weight
                if point < 0:
                    break
            usable = (self.single and not peer.server.down) or peer.available(now)
            if usable and peer not in tried:
                return peer
        return self._round_robin(peers, client, now, tried)

    # -- results --------------------------------------------------------------

    def release(self, peer: Peer, failed: bool, now: float) -> None:
        """The request that ``select`` gave ``peer`` is done with it; ``failed``
        counts a failure (connect error, timeout, invalid response) at ``now``."""
        peer.conns -= 1
        server = peer.server
        if not failed:
            if peer.fails and now >= peer.down_until:
                peer.fails = 0
            return
        if server.max_fails == 0 or self.single:
            return
        if now - peer.first_fail > server.fail_timeout:
            peer.fails = 0
        if peer.fails == 0:
            peer.first_fail = now
        peer.fails += 1
        peer.effective = max(peer.effective - max(server.weight // server.max_fails, 1), 0)
        if peer.fails >= server.max_fails:
            peer.down_until = now + server.fail_timeout

    # -- keep-alive pool ------------------------------------------------------

    def take(self, peer: Peer) -> Idle | None:
        """The most recently pooled idle connection to ``peer`` (removed), or None."""
        idle = self.idle
        if idle and idle[-1][0] is peer:
            return idle.pop()[1]
        for index in range(len(idle) - 1, -1, -1):
            if idle[index][0] is peer:
                connection = idle[index][1]
                del idle[index]
                return connection
        return None

    def put(self, peer: Peer, connection: Idle) -> bool:
        """Keep ``connection`` (to ``peer``) idle; False when the group keeps none.
        Past ``keepalive`` the least recently used one is closed."""
        limit = self.upstream.keepalive
        if limit <= 0:
            return False
        idle = self.idle
        idle.append((peer, connection))
        while len(idle) > limit:
            idle.popleft()[1].close_idle()
        return True

    def forget(self, connection: Idle) -> None:
        """Remove ``connection`` from the pool (the server closed it while idle)."""
        idle = self.idle
        for index, (_, other) in enumerate(idle):
            if other is connection:
                del idle[index]
                return

    def close(self) -> None:
        """Close every idle connection."""
        while self.idle:
            self.idle.popleft()[1].close_idle()


def _smooth(peers: list[Peer]) -> Peer | None:
    """Smooth weighted round-robin over ``peers`` (NGINX's ``get_peer``)."""
    if not peers:
        return None
    if len(peers) == 1:
        return peers[0]
    total = 0
    best: Peer | None = None
    for peer in peers:
        peer.current += peer.effective
        total += peer.effective
        if peer.effective < peer.server.weight:
            peer.effective += 1
        if best is None or peer.current > best.current:
            best = peer
    assert best is not None
    best.current -= total
    return best


def _hash_key(client: str) -> bytes:
    """The bytes ``ip_hash`` hashes: three octets of IPv4, all of IPv6."""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return client.encode("latin-1", "replace")
    packed = address.packed
    return packed[:3] if address.version == 4 else packed


class UpstreamRecord:
    """What a proxied request did upstream, for ``$upstream_addr``,
    ``$upstream_status`` and ``$upstream_response_time`` (one entry per
    server tried, in order; status 0 when no response head came). The proxy
    puts it among the exchange's cleanups (calling it does nothing), where
    the variables find it while the access log line is written."""

    __slots__ = ("addresses", "statuses", "times")

    def __init__(self) -> None:
        self.addresses: list[str] = []
        self.statuses: list[int] = []
        self.times: list[float] = []  # seconds from connecting to the end of the response

    def __call__(self) -> None:
        """A cleanup that has nothing to release."""


class Upstreams:
    """A worker's balancers, one per ``Upstream`` of the configuration it serves."""

    __slots__ = ("_balancers",)

    def __init__(self) -> None:
        self._balancers: dict[int, tuple[Upstream, Balancer]] = {}

    def balancer(self, upstream: Upstream) -> Balancer:
        """The balancer of ``upstream`` (made on first use)."""
        entry = self._balancers.get(id(upstream))
        if entry is None or entry[0] is not upstream:
            entry = self._balancers[id(upstream)] = (upstream, Balancer(upstream))
        return entry[1]

    def close(self) -> None:
        """Close every idle connection and forget the balancers (a reload, the end)."""
        for _, balancer in self._balancers.values():
            balancer.close()
        self._balancers.clear()


#: The balancers of this process. A worker is a process: its own copy after
#: fork, which is NGINX's "each worker keeps its own state".
WORKER = Upstreams()
