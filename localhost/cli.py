"""The command line: ``python -m localhost [-t] [CONFIG]``."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from localhost import __version__
from localhost.config import ConfigError, load
from localhost.server.listener import ListenError
from localhost.server.worker import Worker

log = logging.getLogger("localhost")


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="localhost", description="A single-threaded, non-blocking HTTP/1.1 server."
    )
    parser.add_argument(
        "config",
        nargs="?",
        default="config.conf",
        help="configuration file (default: ./config.conf)",
    )
    parser.add_argument(
        "-t",
        "--test",
        action="store_true",
        help="check the configuration file and exit, like nginx -t",
    )
    parser.add_argument("--version", action="version", version=f"localhost {__version__}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the server; returns the exit status (0 ok, 1 bad config or listen error)."""
    args = _arguments(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s [%(levelname)s] %(message)s", stream=sys.stderr
    )
    try:
        config = load(args.config)
    except ConfigError as exc:
        print(f"localhost: {exc}", file=sys.stderr)
        return 1
    if args.test:
        print(f"{args.config}: syntax is ok")
        return 0
    worker = Worker(config)
    try:
        worker.listen()
    except ListenError as exc:
        print(f"localhost: {exc}", file=sys.stderr)
        return 1
    for listener in worker.listeners:
        host, port = listener.address
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        log.info("listening on http://%s/", shown)
    log.info("serving %s (pid %d)", os.path.abspath(args.config), os.getpid())
    worker.run()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
