"""The reverse-proxy benchmark: localhost and nginx in front of the same backend.

    python bench/proxy.py [--duration SECONDS] [--rounds N] [--connections N]

Three rows, ``wrk -t1 -c64`` each (loopback only, about a minute by default):

- **backend alone**: nginx (one process, ``master_process off``) answering a
  1 KiB body from a file, pinned to CPU 1;
- **localhost → backend**: localhost (one worker, access log off) with
  ``proxy_pass`` to an ``upstream`` with ``keepalive 64``, pinned to CPU 0;
- **nginx → backend**: a second nginx (one process) with ``proxy_pass``,
  ``proxy_http_version 1.1``, ``Connection ""`` and ``keepalive 64``, pinned to CPU 0.

wrk runs on CPU 1 beside the backend (two cores: the proxy gets one of its
own). Each row is measured once per round, the order alternating, and the
median requests/s is reported with wrk's p50/p99 latency, the error
count (non-2xx and socket errors) and the CPU the row's server process used
(user + system seconds per 10,000 requests, from ``/proc``: much less
sensitive to other load on the machine than requests/s; for the backend
row, the backend's). The issue's target: localhost ≥ 0.6 ×
nginx as a proxy, zero errors. Needs ``wrk`` and ``/usr/sbin/nginx``;
installs nothing, writes nothing outside a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import cpu_seconds, family  # noqa: E402

NGINX = "/usr/sbin/nginx"
BODY_SIZE = 1024

BACKEND_CONF = """
daemon off; master_process off; worker_processes 1; pid {dir}/backend.pid;
error_log {dir}/backend-error.log; events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{port} backlog=4096; root {dir}/www; }} }}
"""
NGINX_PROXY_CONF = """
daemon off; master_process off; worker_processes 1; pid {dir}/front.pid;
error_log {dir}/front-error.log; events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  upstream backend {{ server 127.0.0.1:{backend}; keepalive 64; }}
  server {{ listen 127.0.0.1:{port} backlog=4096;
    location / {{ proxy_pass http://backend; proxy_http_version 1.1;
      proxy_set_header Connection ""; }} }} }}
"""
LOCALHOST_CONF = """
worker_processes 1
error_log {dir}/localhost-error.log warn
upstream backend {{
    server 127.0.0.1:{backend}
    keepalive 64
}}
server {{
    host 127.0.0.1
    port {port}
    access_log off
    location / {{ proxy_pass http://backend }}
}}
"""


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def process(args: list[str], port: int, cpu: int) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``args`` pinned to ``cpu`` until the block ends; yields once ``port`` accepts."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        ["taskset", "-c", str(cpu), *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"{args[0]} did not start") from None
                time.sleep(0.05)
        time.sleep(0.2)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wrk(port: int, duration: float, connections: int, pid: int = 0) -> dict[str, float]:
    """One ``wrk -t1`` run on CPU 1: requests/s, p50/p99 in ms, errors, and
    the CPU seconds per 10,000 requests of ``pid`` and its children."""
    pids = family(pid) if pid else []
    before = cpu_seconds(pids)
    out = subprocess.run(
        [
            "taskset",
            "-c",
            "1",
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration:g}s",
            "--latency",
            f"http://127.0.0.1:{port}/1k.bin",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    used = cpu_seconds(pids) - before
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    count = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = 0
    found = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if found:
        errors += int(found.group(1))
    found = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if found:
        errors += sum(int(g) for g in found.groups())
    return {
        "rps": rps,
        "p50": _latency(out, "50%"),
        "p99": _latency(out, "99%"),
        "errors": float(errors),
        "cpu": used / count * 10_000 if count and pids else float("nan"),
    }


def _latency(out: str, which: str) -> float:
    found = re.search(rf"{which}\s+([\d.]+)(us|ms|s)", out)
    if not found:
        return float("nan")
    value, unit = float(found.group(1)), found.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    missing = [tool for tool in ("wrk", "taskset") if shutil.which(tool) is None]
    if not os.path.exists(NGINX):
        missing.append(NGINX)
    if missing:
        print(f"missing: {', '.join(missing)}", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        (work / "www").mkdir()
        (work / "www" / "1k.bin").write_bytes(os.urandom(BODY_SIZE))
        ports = {name: free_port() for name in ("backend", "localhost", "nginx")}
        backend_conf = work / "backend.conf"
        backend_conf.write_text(BACKEND_CONF.format(dir=work, port=ports["backend"]))
        front_conf = work / "front.conf"
        front_conf.write_text(
            NGINX_PROXY_CONF.format(dir=work, port=ports["nginx"], backend=ports["backend"])
        )
        ours = work / "localhost.conf"
        ours.write_text(
            LOCALHOST_CONF.format(dir=work, port=ports["localhost"], backend=ports["backend"])
        )
        rows: dict[str, list[dict[str, float]]] = {"backend": [], "localhost": [], "nginx": []}
        commands = {
            "localhost": [sys.executable, "-m", "localhost", str(ours)],
            "nginx": [NGINX, "-c", str(front_conf), "-p", str(work)],
        }
        with process(
            [NGINX, "-c", str(backend_conf), "-p", str(work)], ports["backend"], 1
        ) as backend:
            for round_number in range(args.rounds):
                order = ["backend", "localhost", "nginx"]
                if round_number % 2:
                    order.reverse()
                for name in order:
                    if name == "backend":
                        result = wrk(ports[name], args.duration, args.connections, backend.pid)
                    else:
                        with process(commands[name], ports[name], 0) as proc:
                            wrk(ports[name], 1.0, args.connections)  # warm the pools
                            result = wrk(ports[name], args.duration, args.connections, proc.pid)
                    rows[name].append(result)
                    print(
                        f"round {round_number + 1} {name:9} {result['rps']:9.0f} req/s "
                        f"p50 {result['p50']:.2f} ms p99 {result['p99']:.2f} ms "
                        f"errors {result['errors']:.0f} "
                        f"cpu {result['cpu']:.2f} s/10k",
                        flush=True,
                    )

    medians = {
        name: {key: statistics.median(r[key] for r in results) for key in results[0]}
        for name, results in rows.items()
    }
    labels = {
        "backend": "backend alone (nginx, 1 KiB file)",
        "localhost": "localhost → backend (keepalive 64)",
        "nginx": "nginx → backend (keepalive 64)",
    }
    print()
    print("| Path | Requests/s (median) | p50 ms | p99 ms | Errors | CPU s / 10k requests |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in ("backend", "localhost", "nginx"):
        m = medians[name]
        print(
            f"| {labels[name]} | {m['rps']:,.0f} | {m['p50']:.2f} | {m['p99']:.2f} "
            f"| {sum(r['errors'] for r in rows[name]):.0f} | {m['cpu']:.2f} |"
        )
    ratio = medians["localhost"]["rps"] / medians["nginx"]["rps"]
    cpu_ratio = medians["nginx"]["cpu"] / medians["localhost"]["cpu"]
    errors = sum(r["errors"] for r in rows["localhost"])
    met = ratio >= 0.6 and errors == 0
    print(
        f"\nlocalhost / nginx as a proxy: {ratio:.2f}× (target ≥ 0.6×, zero errors): "
        f"{'met' if met else 'missed'}"
    )
    print(
        f"CPU per request: localhost {medians['localhost']['cpu'] * 100:.1f} µs, "
        f"nginx {medians['nginx']['cpu'] * 100:.1f} µs (nginx / localhost {cpu_ratio:.2f}×)"
    )
    one, five, fifteen = os.getloadavg()
    print(f"load average at the end: {one:.2f} {five:.2f} {fifteen:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
