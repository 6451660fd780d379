"""Listening sockets: one non-blocking socket per ``host:port``."""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from typing import Any

from localhost.limits import LIMITS

BACKLOG = LIMITS.listen_backlog  # connections the kernel queues before accept


@dataclass(frozen=True, slots=True)
class ListenSpec:
    """What one listening socket serves.

    ``host``/``port`` are its address; ``shared`` is true for a wildcard
    socket (``0.0.0.0``, ``::``) that also serves the specific addresses of
    its port, whose blocks are then chosen per connection by the local
    address; ``protocol`` is its default block's ``protocol`` directive
    (``None``: HTTP/1.1); ``ssl`` is the TLS context (``None``: plain TCP).
    """

    host: str
    port: int
    shared: bool = False
    protocol: str | None = None
    ssl: Any = None

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``."""
        return (self.host, self.port)


class ListenError(Exception):
    """A listen address could not be bound; the message names it and why."""


def bind(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A non-blocking listening TCP socket on ``host:port`` (SO_REUSEADDR).

    IPv6 sockets are IPv6-only so that ``::`` and ``0.0.0.0`` can coexist.
    Raises ``ListenError`` when the address is in use or cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        shown = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            raise ListenError(f"cannot listen on {shown}: address already in use") from None
        raise ListenError(f"cannot listen on {shown}: {exc.strerror or exc}") from None
    return sock


Address = tuple[str, int]


def bind_all(
    addresses: list[tuple[str, int, bool]], existing: dict[Address, socket.socket]
) -> dict[Address, socket.socket]:
    """Sockets for every ``(host, port, shared)`` address, reusing ``existing`` ones.

    Only the sockets it creates are closed when one address fails (raising
    ``ListenError``); ``existing`` ones are never closed here.
    """
    sockets: dict[Address, socket.socket] = {}
    created: list[socket.socket] = []
    try:
        for host, port, _shared in addresses:
            sock = existing.get((host, port))
            if sock is None:
                sock = bind(host, port)
                created.append(sock)
            sockets[(host, port)] = sock
    except ListenError:
        for sock in created:
            sock.close()
        raise
    return sockets
