"""A plain ``asyncio.Protocol`` served by localhost: ``protocol greet:Greet``.

It greets the peer by its address, answers each line with ``you said: ...``
and closes on ``bye``. Nothing here is specific to localhost: the same class
runs under ``asyncio`` (``loop.create_server(Greet, ...)``). See ``upper.py``
for the interface.
"""

from __future__ import annotations

import asyncio
from typing import Any


class Greet(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: Any = None
        self.buffer = b""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        host, port = transport.get_extra_info("peername")[:2]
        transport.write(f"hello {host}:{port}\n".encode())

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            if line.strip() == b"bye":
                self.transport.write(b"bye\n")
                self.transport.close()
                return
            self.transport.write(b"you said: " + line + b"\n")
