"""Serve a WSGI application with bjoern: ``python bjoern_serve.py MODULE:CALLABLE PORT``.

bjoern has no command line of its own; it listens on 127.0.0.1 in one process.
"""

from __future__ import annotations

import importlib
import sys

import bjoern  # type: ignore[import-untyped,import-not-found,unused-ignore]


def main() -> None:
    target, port = sys.argv[1], int(sys.argv[2])
    module, _, name = target.partition(":")
    bjoern.run(getattr(importlib.import_module(module), name), "127.0.0.1", port)


if __name__ == "__main__":
    main()
