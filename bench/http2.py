"""HTTP/2 requests per second on a 1 KiB file: localhost vs nginx vs hypercorn.

    python bench/http2.py [--requests 100000] [--rounds 3] [--output FILE]

Each server runs one process pinned to CPU 0 (``taskset``) and serves a 1 KiB
file over clear-text HTTP/2 (prior knowledge, as h2load speaks it): localhost
with ``http2 on`` and no access log, nginx (``listen ... http2``, one worker,
``keepalive_requests`` raised so that no connection ends mid-run), and
hypercorn running an ASGI app that answers the same 1 KiB (its
``keep_alive_max_requests`` raised as nginx's is: at its default of 1,000 it
ends each connection mid-run and h2load counts the streams in flight then
as failed). The load is ``h2load -c 16 -m 32`` (16 connections, 32 streams
in flight on each), pinned to CPU 1. Reported: requests per second (median of the rounds, with the
range), failures, and the server's CPU seconds per 10,000 requests.
Loopback only; needs Debian's ``nghttp2-client`` (h2load) and ``nginx``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cpu_seconds, family, free_port  # noqa: E402

SERVER_CPU = "0"
LOAD_CPU = "1"

LOCALHOST_CONF = """
worker_processes 1
error_log stderr warn
server {{
    host 127.0.0.1
    port {port}
    root {root}
    http2 on
    access_log off
    location / {{ }}
}}
"""

NGINX_CONF = """
worker_processes 1;
daemon off;
error_log {tmp}/nginx-error.log;
pid {tmp}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    server {{
        listen 127.0.0.1:{port} http2;
        root {root};
    }}
}}
"""

ASGI_APP = """
BODY = b"x" * 1024
HEADERS = [(b"content-type", b"application/octet-stream"), (b"content-length", b"1024")]

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
"""


@dataclass
class Peer:
    name: str
    command: list[str]
    port: int
    path: str


def peers(tmp: Path) -> list[Peer]:
    root = tmp / "www"
    root.mkdir()
    (root / "1k.bin").write_bytes(b"x" * 1024)
    (tmp / "asgi1k.py").write_text(ASGI_APP)
    found = []
    port = free_port()
    (tmp / "h2.conf").write_text(LOCALHOST_CONF.format(port=port, root=root))
    found.append(
        Peer(
            "localhost", [sys.executable, "-m", "localhost", str(tmp / "h2.conf")], port, "/1k.bin"
        )
    )
    if shutil.which("nginx"):
        port = free_port()
        (tmp / "nginx.conf").write_text(NGINX_CONF.format(port=port, root=root, tmp=tmp))
        found.append(
            Peer("nginx", ["nginx", "-c", str(tmp / "nginx.conf"), "-p", str(tmp)], port, "/1k.bin")
        )
    (tmp / "hypercorn.toml").write_text("keep_alive_max_requests = 100000000\n")
    port = free_port()
    found.append(
        Peer(
            "hypercorn",
            [sys.executable, "-m", "hypercorn", "-c", str(tmp / "hypercorn.toml")]
            + ["asgi1k:app", "-b", f"127.0.0.1:{port}", "-w", "1"],
            port,
            "/",
        )
    )
    return found


def measure(peer: Peer, tmp: Path, requests: int) -> dict[str, float]:
    process = subprocess.Popen(
        ["taskset", "-c", SERVER_CPU, *peer.command],
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", peer.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"{peer.name} did not start") from None
                time.sleep(0.1)
        time.sleep(0.5)
        pids = family(process.pid)
        before = cpu_seconds(pids)
        url = f"http://127.0.0.1:{peer.port}{peer.path}"
        result = subprocess.run(
            ["taskset", "-c", LOAD_CPU, "h2load", "-n", str(requests), "-c", "16", "-m", "32", url],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        used = cpu_seconds(pids) - before
        rate = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", result.stdout)
        done = re.search(r"(\d+) succeeded, (\d+) failed", result.stdout)
        succeeded = int(done.group(1)) if done else 0
        return {
            "per_s": float(rate.group(1)) if rate else 0.0,
            "failed": float(done.group(2)) if done else float(requests),
            "cpu_per_10k": used / succeeded * 10_000 if succeeded else 0.0,
        }
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def report(results: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> str:
    load = os.getloadavg()[0]
    lines = [
        "## HTTP/2 (issue 18)",
        "",
        f"Run of {time.strftime('%Y-%m-%d')}: `python bench/http2.py --requests {args.requests} "
        f"--rounds {args.rounds}`; load average (1 min) {load:.2f} at the end.",
        "",
        f"`h2load -c 16 -m 32 -n {args.requests}` on a 1 KiB file over clear-text HTTP/2; each "
        f"server one process pinned to CPU {SERVER_CPU}, h2load on CPU {LOAD_CPU}; medians of "
        f"{args.rounds} rounds with [min–max].",
        "",
        "| server | requests/s | range | failed | CPU s / 10k |",
        "|---|---|---|---|---|",
    ]
    medians = {}
    for name, runs in results.items():
        rates = [run["per_s"] for run in runs]
        medians[name] = statistics.median(rates)
        cpu = statistics.median(run["cpu_per_10k"] for run in runs)
        failed = int(max(run["failed"] for run in runs))
        lines.append(
            f"| {name} | {medians[name]:,.0f} | {min(rates):,.0f}–{max(rates):,.0f} | "
            f"{failed} | {cpu:.2f} |"
        )
    lines.append("")
    ours = medians.get("localhost", 0.0)
    for peer, goal in (("nginx", 0.3), ("hypercorn", 3.0)):
        if medians.get(peer):
            ratio = ours / medians[peer]
            verdict = "met" if ratio >= goal else "missed"
            lines.append(f"- localhost ÷ {peer}: {ratio:.2f}× (goal ≥ {goal}×: {verdict})")
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    for tool in ("h2load", "taskset"):
        if shutil.which(tool) is None:
            print(f"needs {tool}", file=sys.stderr)
            return 1
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        tmp.chmod(0o755)  # nginx's worker (another user) reads the file below it
        found = peers(tmp)
        results: dict[str, list[dict[str, float]]] = {peer.name: [] for peer in found}
        for round_index in range(args.rounds):
            order = found if round_index % 2 == 0 else list(reversed(found))
            for peer in order:
                result = measure(peer, tmp, args.requests)
                results[peer.name].append(result)
                print(f"{peer.name}: {result['per_s']:,.0f}/s", file=sys.stderr)
    text = report(results, args)
    print(text)
    if args.output is not None:
        args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
