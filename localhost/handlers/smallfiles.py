"""Small files read whole and kept by path: configured error pages, listing headers.

A ``SmallFiles`` belongs to a worker's ``Services`` (one per kind of file),
so that no handler module keeps a cache of its own. An entry is valid while
the file's size and modification time (ns) are those it was read with: an
edited page shows at the next request, for one ``stat`` per use.
"""

from __future__ import annotations

import os


class TooLarge(ValueError):
    """The file is larger than the cache takes (``SmallFiles.max_bytes``)."""


class SmallFiles:
    """Files of at most ``max_bytes`` bytes, by path: ``(size, mtime_ns, bytes)``."""

    __slots__ = ("max_bytes", "_files")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._files: dict[str, tuple[int, int, bytes]] = {}

    def read(self, path: str | os.PathLike[str]) -> bytes:
        """The bytes of the file at ``path``, from the cache while it is unchanged.

        Raises ``OSError`` when it cannot be read and ``TooLarge`` when it is
        larger than ``max_bytes``.
        """
        key = os.fspath(path)
        st = os.stat(key)
        cached = self._files.get(key)
        if cached is not None and cached[0] == st.st_size and cached[1] == st.st_mtime_ns:
            return cached[2]
        if st.st_size > self.max_bytes:
            raise TooLarge(f"{key} is larger than {self.max_bytes} bytes")
        with open(key, "rb") as f:
            data = f.read(self.max_bytes)
        self._files[key] = (st.st_size, st.st_mtime_ns, data)
        return data

    def clear(self) -> None:
        """Forget every file."""
        self._files.clear()
