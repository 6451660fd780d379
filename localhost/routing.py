"""Virtual-host selection and location matching.

``Router`` is built once from a ``Config``. For each request it picks the
server block by the address the connection came in on and the request's
host (RFC 9110 §7.2), then the location with the longest prefix that ends on
a path-segment boundary. (The request-target is normalised before, by
``localhost.http.target.normalize_target``.)
"""

from __future__ import annotations

import re
from typing import Any

from localhost.config.model import Config, Location, ServerBlock, server_name_regex

WILDCARDS = {"0.0.0.0", "::"}
MEMO_HOSTS = 1024  # wildcard-matched host names remembered per listen address


def split_host(host: str) -> str:
    """The host name of a Host value: port removed, lower-case, no final dot."""
    if host.startswith("["):
        name = host[: host.find("]") + 1]
    else:
        name = host.rpartition(":")[0] if ":" in host else host
    return name.lower().rstrip(".")


class _VirtualHosts:
    """The server blocks of one listen address, by name (NGINX's four kinds).

    ``names`` holds exact names; ``leading`` maps the suffix of ``*.suffix``
    (and of ``.suffix``, which also matches ``suffix`` itself: ``bare``) and
    ``trailing`` the prefix of ``prefix.*``; ``regexes`` keep config order.
    """

    __slots__ = ("bare", "default", "leading", "memo", "named", "names", "regexes", "trailing")

    def __init__(self, default: ServerBlock) -> None:
        self.default = default
        self.named = False
        self.names: dict[str, ServerBlock] = {}
        self.leading: dict[str, ServerBlock] = {}
        self.bare: dict[str, ServerBlock] = {}
        self.trailing: dict[str, ServerBlock] = {}
        self.regexes: list[tuple[re.Pattern[str], ServerBlock]] = []
        # Host -> block for hosts only a wildcard or regex decides: those
        # are matched once, not on every request.
        self.memo: dict[str, ServerBlock] = {}

    def add(self, name: str, server: ServerBlock) -> None:
        self.named = True
        if name.startswith("~"):
            self.regexes.append((server_name_regex(name), server))
        elif name.startswith("*."):
            self.leading.setdefault(name[2:], server)
        elif name.startswith("."):
            self.leading.setdefault(name[1:], server)
            self.bare.setdefault(name[1:], server)
        elif name.endswith(".*"):
            self.trailing.setdefault(name[:-2], server)
        else:
            self.names.setdefault(name, server)

    def find(self, name: str) -> ServerBlock:
        """The block for a lower-case host name: exact, then the longest
        leading wildcard, the longest trailing wildcard, the first regex,
        else the default."""
        server = self.names.get(name)
        if server is not None:
            return server
        if not (self.leading or self.trailing or self.regexes):
            return self.default
        server = self.memo.get(name)
        if server is None:
            server = self._wildcard(name) or self.default
            if len(self.memo) >= MEMO_HOSTS:
                self.memo.clear()
            self.memo[name] = server
        return server

    def _wildcard(self, name: str) -> ServerBlock | None:
        if self.leading:
            server = self.bare.get(name)
            if server is not None:
                return server
            dot = name.find(".")
            while dot >= 0:
                server = self.leading.get(name[dot + 1 :])
                if server is not None:
                    return server
                dot = name.find(".", dot + 1)
        if self.trailing:
            dot = name.rfind(".")
            while dot > 0:
                server = self.trailing.get(name[:dot])
                if server is not None:
                    return server
                dot = name.rfind(".", 0, dot)
        for pattern, server in self.regexes:
            if pattern.search(name):
                return server
        return None


class _Locations:
    """A server block's locations arranged for NGINX's search order.

    ``exact`` (``=``) by path; ``prefixes`` (plain and ``^~``) longest first;
    ``regexes`` (``~``, ``~*``) of the server level in file order (those
    nested in a prefix location are its ``nested``); ``named`` (``@name``).
    """

    __slots__ = ("exact", "prefixes", "regexes", "named", "simple")

    def __init__(self, server: ServerBlock) -> None:
        self.exact: dict[str, Location] = {}
        self.named: dict[str, Location] = {}
        prefixes: list[Location] = []
        regexes: list[Location] = []
        nested: set[int] = set()
        for location in server.locations:
            nested.update(id(child) for child in location.nested)
        for location in server.locations:
            modifier = location.modifier
            if modifier == "=":
                self.exact.setdefault(location.prefix, location)
            elif modifier == "@":
                self.named.setdefault(location.prefix, location)
            elif modifier in ("~", "~*"):
                if id(location) not in nested:
                    regexes.append(location)
            else:
                prefixes.append(location)
        prefixes.sort(key=lambda loc: len(loc.prefix), reverse=True)
        self.prefixes = tuple(prefixes)
        self.regexes = tuple(regexes)
        # Only prefix locations: the search is the plain longest-prefix loop.
        self.simple = not self.exact and not regexes and not any(p.nested for p in prefixes)

    def find(self, path: str) -> tuple[Location | None, re.Match[str] | None]:
        """NGINX's order: the exact match; else the longest prefix, kept if it
        is ``^~``; else the first regex that matches (those nested in that
        prefix first, then the server's, in file order); else that prefix."""
        if self.exact:
            found = self.exact.get(path)
            if found is not None:
                return found, None
        longest = None
        for location in self.prefixes:
            prefix = location.prefix
            if path.startswith(prefix) and (
                len(path) == len(prefix) or path[len(prefix)] == "/" or prefix == "/"
            ):
                longest = location
                break
        if self.simple or (longest is not None and longest.modifier == "^~"):
            return longest, None
        if longest is not None:
            for location in longest.nested:
                assert location.pattern is not None
                match = location.pattern.search(path)
                if match is not None:
                    return location, match
        for location in self.regexes:
            assert location.pattern is not None
            match = location.pattern.search(path)
            if match is not None:
                return location, match
        return longest, None


class Router:
    """Maps ``(listen address, Host)`` to a server block, and a path to a location."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._table: dict[tuple[str, int], _VirtualHosts] = {}
        self._locations: dict[int, _Locations] = {
            id(server): _Locations(server) for server in config.servers
        }
        for server in config.servers:
            for address in server.addresses:
                hosts = self._table.get(address)
                if hosts is None:
                    hosts = self._table[address] = _VirtualHosts(server)
                elif not server.server_names and hosts.default.server_names:
                    # The first block without server_name is the default.
                    hosts.default = server
                for name in server.server_names:
                    hosts.add(name, server)
        # listen ... default_server: that block is its address's default (NGINX).
        for server in config.servers:
            for address in server.default_server:
                self._table[address].default = server
        #: The addresses that speak TLS: those any block lists with ``ssl``.
        self.tls_addresses: frozenset[tuple[str, int]] = frozenset(
            address for server in config.servers for address in server.ssl_addresses
        )

    def address_context(self, address: tuple[str, int]) -> Any:
        """The ``ssl.SSLContext`` a connection to ``address`` starts its handshake
        with (its default block's), or None when the address speaks plain TCP."""
        if address not in self._table:
            address = ("::" if ":" in address[0] else "0.0.0.0", address[1])
        if address not in self.tls_addresses:
            return None
        tls = self._table[address].default.tls
        return None if tls is None else tls.context

    def tls_context(self, address: tuple[str, int], name: str | None) -> Any:
        """The ``ssl.SSLContext`` for a TLS handshake on ``address`` asking for
        the SNI ``name``: that of the block ``select`` picks for it as a Host
        (None when that block has no TLS settings)."""
        tls = self.select(address, name or "").tls
        return None if tls is None else tls.context

    def bind_addresses(self) -> list[tuple[str, int, bool]]:
        """The ``(host, port, shared)`` addresses to listen on.

        A specific address whose port also has a wildcard listener in the same
        family is served by the wildcard socket (binding both would fail);
        ``shared`` marks those wildcard sockets, whose connections must be
        routed by their local address (``getsockname``).
        """
        wildcard_ports = {(host, port) for host, port in self._table if host in WILDCARDS}
        result = []
        shared = set()
        for host, port in self._table:
            if host in WILDCARDS:
                continue
            family_wildcard = "::" if ":" in host else "0.0.0.0"
            if (family_wildcard, port) in wildcard_ports:
                shared.add((family_wildcard, port))
            else:
                result.append((host, port, False))
        for host, port in sorted(wildcard_ports):
            result.append((host, port, (host, port) in shared))
        return result

    def select(self, address: tuple[str, int], host: str) -> ServerBlock:
        """The server block for a request to ``address`` with Host ``host``."""
        hosts = self._table.get(address)
        if hosts is None:
            family_wildcard = "::" if ":" in address[0] else "0.0.0.0"
            hosts = self._table[(family_wildcard, address[1])]
        if not hosts.named:
            return hosts.default
        return hosts.find(split_host(host) if host else "")

    def find(self, server: ServerBlock, path: str) -> tuple[Location | None, re.Match[str] | None]:
        """The location for ``path`` in ``server`` by NGINX's rules, and the
        match of its regex (captures) when a regex location won.

        Prefixes end on a path-segment boundary (``/files`` is not a prefix
        of ``/filesystem``), unlike NGINX's plain string prefixes.
        """
        index = self._locations.get(id(server))
        if index is None:  # a block from outside the configuration (tests)
            index = self._locations[id(server)] = _Locations(server)
        return index.find(path)

    def match(self, server: ServerBlock, path: str) -> Location | None:
        """The location for ``path`` in ``server`` (``find`` without the captures)."""
        return self.find(server, path)[0]

    def named(self, server: ServerBlock, name: str) -> Location | None:
        """The named location ``@name`` of ``server`` (``name`` includes the ``@``)."""
        index = self._locations.get(id(server))
        if index is None:
            index = self._locations[id(server)] = _Locations(server)
        return index.named.get(name)
