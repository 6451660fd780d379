"""The command line: ``python -m localhost [options] [CONFIG]``.

``-t`` checks the configuration (like ``nginx -t``); ``-s SIGNAL`` sends
reload/quit/stop/reopen to the running server through its pid file (like
``nginx -s``); ``-w N`` overrides ``worker_processes``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

from localhost import __version__
from localhost.accesslog import LEVELS, flush_error_log, setup_error_log
from localhost.config import Config, ConfigError, load
from localhost.server.listener import ListenError
from localhost.server.master import Master
from localhost.server.worker import Worker

log = logging.getLogger("localhost")

SIGNALS = {
    "reload": signal.SIGHUP,
    "quit": signal.SIGQUIT,
    "stop": signal.SIGTERM,
    "reopen": signal.SIGUSR1,
}


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
        "-t", "--test", action="store_true", help="check the configuration file and exit"
    )
    parser.add_argument(
        "-s",
        "--signal",
        choices=sorted(SIGNALS),
        help="send a signal to the running server named by the pid file, and exit",
    )
    parser.add_argument(
        "-w", "--workers", type=_positive, help="worker processes (overrides worker_processes)"
    )
    parser.add_argument(
        "--log-level", choices=sorted(LEVELS), help="error log level (overrides error_log)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="log errors only")
    parser.add_argument("--version", action="version", version=f"localhost {__version__}")
    return parser.parse_args(argv)


def _positive(text: str) -> int:
    if text == "auto":
        return os.cpu_count() or 1
    if not text.isdigit() or not 1 <= int(text) <= 1024:
        raise argparse.ArgumentTypeError("expected a number from 1 to 1024, or auto")
    return int(text)


def _send_signal(config: Config, name: str) -> int:
    if config.pid is None:
        print(
            f"localhost: {config.path} has no pid directive: cannot find the server",
            file=sys.stderr,
        )
        return 1
    try:
        text = config.pid.read_text().strip()
    except OSError as exc:
        print(f"localhost: cannot read {config.pid}: {exc.strerror}", file=sys.stderr)
        return 1
    if not text.isdigit() or int(text) < 1:
        print(f"localhost: {config.pid} holds no process id ({text[:40]!r})", file=sys.stderr)
        return 1
    pid = int(text)
    try:
        os.kill(pid, SIGNALS[name])
    except ProcessLookupError:
        print(
            f"localhost: no process {pid} (from {config.pid}): is the server running?",
            file=sys.stderr,
        )
        return 1
    except OSError as exc:
        print(
            f"localhost: cannot signal process {pid} (from {config.pid}): {exc.strerror}",
            file=sys.stderr,
        )
        return 1
    return 0


def _write_pid(path: Path | None) -> None:
    """Write our PID atomically (a new file renamed over the old), so that
    ``-s`` never reads a pid file that exists but is still empty."""
    if path is not None:
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_text(f"{os.getpid()}\n")
        os.replace(partial, path)


def _remove_pid(path: Path | None) -> None:
    if path is None:
        return
    with contextlib.suppress(OSError, ValueError):
        if int(path.read_text().strip()) == os.getpid():
            path.unlink()


def main(argv: list[str] | None = None) -> int:
    """Run the server; returns the exit status (0 ok, 1 bad config, listen error or failure)."""
    args = _arguments(argv)
    try:
        config = load(args.config)
    except ConfigError as exc:
        print(f"localhost: {exc}", file=sys.stderr)
        return 1
    if args.signal:
        return _send_signal(config, args.signal)
    if args.test:
        # Warnings do not fail the check (the server would start), as with nginx -t.
        for warning in config.warnings:
            print(f"localhost: {warning}", file=sys.stderr)
        print(f"{args.config}: syntax is ok")
        return 0
    level = args.log_level or ("error" if args.quiet else config.error_log_level)
    try:
        setup_error_log(config.error_log, level)
    except OSError as exc:
        print(f"localhost: cannot open the error log: {exc}", file=sys.stderr)
        return 1
    for warning in config.warnings:
        log.warning("%s", warning)
    workers = args.workers or config.worker_processes
    server: Worker | Master = (
        Worker(config) if workers == 1 else Master(config, workers, bool(args.workers))
    )
    try:
        server.listen()
    except ListenError as exc:
        print(f"localhost: {exc}", file=sys.stderr)
        return 1
    for host, port in server.sockets:
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        log.info("listening on http://%s/", shown)
    log.info(
        "serving %s with %d worker process%s (pid %d)",
        os.path.abspath(args.config),
        workers,
        "" if workers == 1 else "es",
        os.getpid(),
    )
    _write_pid(config.pid)
    status = 0
    try:
        if isinstance(server, Master):
            status = server.run()
        else:
            server.run()
    finally:
        _remove_pid(config.pid)
    log.info("stopped")
    flush_error_log()
    return status


if __name__ == "__main__":
    sys.exit(main())
