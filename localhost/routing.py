"""Virtual-host selection and location matching.

``Router`` is built once from a ``Config``. For each request it picks the
server block by the address the connection came in on and the request's
host (RFC 9110 §7.2), then the location with the longest prefix that ends on
a path-segment boundary. ``normalize_target`` turns a request-target into
the decoded, normalised path that routing and the file handlers use.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from localhost.config.model import Config, Location, ServerBlock, server_name_regex
from localhost.http.errors import HTTPError

_HEX = frozenset("0123456789abcdefABCDEF")
WILDCARDS = {"0.0.0.0", "::"}
MEMO_HOSTS = 1024  # wildcard-matched host names remembered per listen address


def _check_escapes(path: str) -> None:
    """Every ``%`` must start a ``%XX`` escape (RFC 3986 §2.1)."""
    index = path.find("%")
    while index >= 0:
        pair = path[index + 1 : index + 3]
        if len(pair) != 2 or pair[0] not in _HEX or pair[1] not in _HEX:
            raise HTTPError(400, "invalid percent-encoding in the request-target")
        index = path.find("%", index + 3)


def _remove_dot_segments(path: str) -> str:
    """Resolve ``.``, ``..`` and empty segments; ``..`` above ``/`` is a 400."""
    segments: list[str] = []
    parts = path.split("/")
    for segment in parts[1:]:
        if segment == "..":
            if not segments:
                raise HTTPError(400, "request path goes above the root")
            segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    trailing = parts[-1] in ("", ".", "..") and bool(segments)
    return "/" + "/".join(segments) + ("/" if trailing else "")


def normalize_target(target: str) -> tuple[str, str]:
    """Split an origin- or absolute-form target into ``(path, query)``.

    ``path`` is percent-decoded once (bytes that are not UTF-8 are kept as
    surrogate escapes, like ``os.fsdecode``), with dot segments resolved and
    repeated slashes merged, as NGINX does. ``query`` is left encoded. An
    absolute-form target with an empty path has the path ``/``.
    Raises ``HTTPError(400)`` for a bad escape, a NUL byte, or a path that
    climbs above ``/``.
    """
    if target[0] != "/":
        if target == "*":
            return "*", ""
        # Absolute-form: the path starts after the authority, which ends at
        # "/", "?" or "#"; an empty path is "/" (RFC 9112 §3.2.2, RFC 3986
        # §3.3 path-abempty), so http://h?x=1 is /?x=1.
        start = target.find("//") + 2
        end = len(target)
        for stop in "/?#":
            index = target.find(stop, start, end)
            if index >= 0:
                end = index
        target = target[end:]
        if target[:1] != "/":
            target = "/" + target
    path, _, query = target.partition("?")
    path = path.partition("#")[0]
    if "%" in path:
        _check_escapes(path)
        path = unquote_to_bytes(path).decode("utf-8", "surrogateescape")
        if "\0" in path:
            raise HTTPError(400, "NUL byte in the request path")
    if "/." in path or "//" in path or path[0] != "/":
        path = _remove_dot_segments(path if path[0] == "/" else "/" + path)
    return path, query


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


class Router:
    """Maps ``(listen address, Host)`` to a server block, and a path to a location."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._table: dict[tuple[str, int], _VirtualHosts] = {}
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

    @staticmethod
    def match(server: ServerBlock, path: str) -> Location | None:
        """The location with the longest prefix matching ``path`` on a segment boundary."""
        for location in server.locations:
            prefix = location.prefix
            if path.startswith(prefix) and (
                len(path) == len(prefix) or path[len(prefix)] == "/" or prefix == "/"
            ):
                return location
        return None
