"""A region of an open file, queued on a transport like bytes and sent without copying.

``FileBody`` is the one body type the transports know besides bytes: a socket
transport hands it to ``os.sendfile``; a transport that cannot (TLS, a pipe)
reads it in chunks itself. Ownership of ``fd`` passes to whoever queues the
body: the transport closes it once the region is sent or the connection is
gone.
"""

from __future__ import annotations

import os
from typing import final


@final  # transports test ``type(item) is FileBody``
class FileBody:
    """``count`` bytes of the open file ``fd`` from byte ``offset``.

    ``fd`` belongs to the body: whoever sends it closes it (``close``).
    ``offset`` and ``count`` are in bytes and advance as the region is sent.
    """

    __slots__ = ("fd", "offset", "count")

    def __init__(self, fd: int, offset: int, count: int) -> None:
        self.fd = fd
        self.offset = offset
        self.count = count

    def close(self) -> None:
        """Close the file; safe to call twice."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
