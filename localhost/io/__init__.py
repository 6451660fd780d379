"""The event loop and byte transports, with no knowledge of HTTP.

``EventLoop`` is the worker's one ``select.epoll`` with its timers, signal
wake-ups and child reaping. ``Protocol`` is what a connection's logic
subclasses (asyncio's interface plus the worker's extras);
``SocketTransport``, ``PipeTransport`` and ``connect`` move bytes and
``FileBody`` regions between a descriptor and a protocol; ``TLSTransport``
(``localhost.io.tls``) is a socket transport that speaks TLS.
"""

from localhost.io.body import FileBody
from localhost.io.loop import EventLoop, Timer
from localhost.io.protocol import Protocol
from localhost.io.tls import TLSTransport
from localhost.io.transport import (
    FileShrankError,
    PipeTransport,
    SocketTransport,
    Transport,
    connect,
)

__all__ = [
    "EventLoop",
    "FileBody",
    "Timer",
    "FileShrankError",
    "PipeTransport",
    "Protocol",
    "SocketTransport",
    "TLSTransport",
    "Transport",
    "connect",
]
