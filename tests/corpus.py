"""The request corpus in tests/requests/: one raw request per .http file.

A file starts with ``# `` lines: a description, ``# parser: ok|STATUS`` (what
the sans-IO parser makes of it) and ``# status: STATUS`` (what the live test
site answers). The rest is the request, written with Python escapes
(``\\r\\n``, ``\\x00``); the file's own line breaks are only for reading.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "requests"


@dataclass(frozen=True)
class Case:
    name: str
    description: str
    parser: int | None  # None: parses without error
    status: int
    raw: bytes


def load_case(path: Path) -> Case:
    meta: dict[str, str] = {}
    description = ""
    body_lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not body_lines and line.startswith("# "):
            key, sep, value = line[2:].partition(": ")
            if sep and key in ("parser", "status"):
                meta[key] = value.strip()
            else:
                description = line[2:]
            continue
        body_lines.append(line)
    raw = codecs.escape_decode("".join(body_lines).encode("latin-1"))[0]
    parser = None if meta["parser"] == "ok" else int(meta["parser"])
    return Case(path.stem, description, parser, int(meta["status"]), raw)


def cases() -> list[Case]:
    return [load_case(path) for path in sorted(CORPUS.glob("*.http"))]
