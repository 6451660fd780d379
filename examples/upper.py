"""A line protocol for ``protocol upper:Upper``: every line comes back in upper case.

How to write a protocol for localhost
-------------------------------------

A server block speaks HTTP unless it says otherwise::

    server {
        host 127.0.0.1
        port 7008
        protocol upper:Upper        # MODULE:CLASS
        keepalive_timeout 30s       # the idle limit of a connection
    }

``MODULE`` is imported when the server starts, with the configuration file's
folder first on the module path (then ``PYTHONPATH``); ``CLASS`` is any
class that can be called with no arguments. A missing module or class, or a
class that needs arguments, stops the server at start with the
``file:line:column`` of the directive. One object is made per connection.

The class implements asyncio's ``Protocol`` interface, which the server's
transports call:

- ``connection_made(transport)``: the connection is up; keep the transport.
- ``data_received(data)``: bytes from the peer (never empty).
- ``eof_received()``: the peer has half-closed; return True to go on
  writing (then close yourself), anything else closes once what was
  written has been sent.
- ``pause_writing()`` / ``resume_writing()``: the transport holds more than
  its high-water mark (256 KiB) of unsent data / has drained to 64 KiB. A
  protocol that answers what it reads should stop reading in between
  (``transport.pause_reading()`` / ``resume_reading()``), so that a peer that
  sends without reading cannot make the server hold its data.
- ``connection_lost(exc)``: the connection is closed (always called once).

and uses ``transport.write(data)``, ``write_eof()``, ``close()`` (send what
is queued, then close), ``abort()``, ``pause_reading()``,
``resume_reading()``, ``get_write_buffer_size()`` and
``get_extra_info("peername" | "sockname" | "socket")``. So an
``asyncio.Protocol`` subclass runs unchanged (see ``greet.py``), and
``localhost.Protocol`` gives every method a default, plus what a stopping
worker asks: ``is_idle()`` (True: nothing would be lost by closing now) and
``shutdown()`` (finish and close; the default closes).

An exception raised in any of these methods is logged with its traceback
and closes that connection only. A connection is closed once no byte has
gone either way for the block's ``keepalive_timeout`` (75 s by default); the
transport's ``set_timeout`` is used for that and is not the protocol's.
Everything runs in the worker's single thread: a method that blocks stops
every other connection of that worker.
"""

from __future__ import annotations

import localhost
from localhost.io import Transport

MAX_LINE = 64 * 1024  # bytes; a longer line without a newline closes the connection


class Upper(localhost.Protocol):
    """Answers each line (ended by LF) with the line in upper case."""

    __slots__ = ("pending",)

    def __init__(self) -> None:
        super().__init__()
        self.pending = bytearray()

    def connection_made(self, transport: Transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.pending += data
        end = self.pending.rfind(b"\n") + 1
        if end:
            self.transport.write(bytes(self.pending[:end]).upper())
            del self.pending[:end]
        if len(self.pending) > MAX_LINE:
            self.transport.write(b"ERROR line too long\n")
            self.transport.close()

    def pause_writing(self) -> None:
        assert self.transport is not None
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        assert self.transport is not None
        self.transport.resume_reading()

    def is_idle(self) -> bool:
        return not self.pending
