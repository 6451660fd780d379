"""Byte transport for the event loop, with no knowledge of HTTP.

``Protocol`` is what a connection's logic subclasses (asyncio's interface
plus the worker's extras); ``SocketTransport``, ``PipeTransport`` and
``connect`` move bytes and ``FileBody`` regions between a descriptor and a
protocol.
"""

from localhost.io.body import FileBody
from localhost.io.protocol import Protocol
from localhost.io.transport import (
    FileShrankError,
    PipeTransport,
    SocketTransport,
    Transport,
    connect,
)

__all__ = [
    "FileBody",
    "FileShrankError",
    "PipeTransport",
    "Protocol",
    "SocketTransport",
    "Transport",
    "connect",
]
