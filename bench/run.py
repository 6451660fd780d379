"""The benchmark suite: localhost against the Python servers a user would pick instead.

    python bench/run.py [--duration SECONDS] [--rounds N] [--quick] [--only NAMES]
    python bench/run.py --apps [--duration SECONDS] [--rounds N] [--only KEYS]
    python bench/run.py --tls | --gzip | --proxy | --websocket | --http2 [--duration S] [--rounds N]

Loopback only and bounded in time (about 10 minutes by default, 2 with
``--quick``). It installs nothing: it checks for what it needs and names what
is missing (``wrk`` and ``siege`` and ``nginx`` from Debian packages;
``tornado``, ``aiohttp``, ``uvicorn[standard]``, ``gunicorn`` and
``matplotlib`` from the ``bench`` extra: ``pip install '.[bench]'``).

Every server serves the same three files (1 KiB, 100 KiB, 10 MiB of random
bytes) and runs pinned to CPU 0 with ``taskset``; the load generator is
pinned to CPU 1. For each scenario, every server is measured once per round,
the order alternating from round to round, and the medians and ranges over
the rounds are reported, with each server's CPU seconds per 10,000 requests
and wrk's p50/p99 latency. Results go to ``docs/benchmarks.md``,
``docs/benchmarks.json`` and the chart ``docs/benchmarks.png``.

Peers: nginx (one process, ``master_process off``), uvicorn with uvloop and
httptools (an ASGI app answering the file's bytes from memory), aiohttp
``web.static``, tornado ``StaticFileHandler``, gunicorn (sync worker, a WSGI
app answering from memory) and ``python -m http.server``. Access logs are off
everywhere.

``--apps`` runs the applications section instead (issue 13), with the apps
and configurations of ``bench/apps/``: a WSGI app answering 1 KiB under
localhost (``wsgi_threads 0`` and ``4``), the same through localhost's App API
(an inline route), granian, waitress, gunicorn (sync and gthread) and bjoern
(when ``pip install bjoern`` could build it: it needs ``libev-dev``); a Flask
app answering 1 KiB under localhost, gunicorn and waitress; and the resident
memory of each server while it streams 50 MiB from a generator to a slow
reader. It writes only the "Applications (issue 13)" section of the page
(which a later run of the static suite keeps), and prints the issue's targets.
``--only`` then takes row keys: localhost-t0, localhost-t4, localhost-app,
granian, waitress, gunicorn-sync, gunicorn-gthread, bjoern.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import REPO, free_port, measure_upload, rss_kib

SERVER_CPU = "0"
LOAD_CPU = "1"
FILES = {"1k.bin": 1024, "100k.bin": 100 * 1024, "10m.bin": 10 * 1024 * 1024}
DOCS = REPO / "docs"


# -- the servers --------------------------------------------------------------


@dataclass
class Server:
    name: str
    command: list[str]
    port: int
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, *self.command],
            cwd=self.cwd,
            env={**os.environ, **self.env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"GET /1k.bin HTTP/1.0\r\n\r\n")
                    if sock.recv(16).startswith(b"HTTP/1."):
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def cpu_seconds(self) -> float:
        """CPU time of the server's process group (user + system)."""
        assert self.process is not None
        total = 0
        tick = os.sysconf("SC_CLK_TCK")
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == self.process.pid:  # process group
                total += int(fields[11]) + int(fields[12])
        return total / tick


APPS = {
    "asgi_app.py": """
        import os
        ROOT = os.environ["BENCH_ROOT"]
        FILES = {"/" + n: open(os.path.join(ROOT, n), "rb").read() for n in os.listdir(ROOT)}
        HEADERS = {p: [(b"content-type", b"application/octet-stream"),
                       (b"content-length", str(len(b)).encode())] for p, b in FILES.items()}
        async def app(scope, receive, send):
            body = FILES.get(scope["path"])
            if body is None:
                await send({"type": "http.response.start", "status": 404,
                            "headers": [(b"content-length", b"0")]})
                await send({"type": "http.response.body", "body": b""})
                return
            await send({"type": "http.response.start", "status": 200, "headers": HEADERS[scope["path"]]})
            await send({"type": "http.response.body", "body": body})
    """,
    "wsgi_app.py": """
        import os
        ROOT = os.environ["BENCH_ROOT"]
        FILES = {"/" + n: open(os.path.join(ROOT, n), "rb").read() for n in os.listdir(ROOT)}
        def app(environ, start_response):
            body = FILES.get(environ["PATH_INFO"])
            if body is None:
                start_response("404 Not Found", [("Content-Length", "0")])
                return [b""]
            start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                      ("Content-Length", str(len(body)))])
            return [body]
    """,
    "aiohttp_app.py": """
        import os, sys
        from aiohttp import web
        app = web.Application()
        app.router.add_static("/", os.environ["BENCH_ROOT"])
        web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
    """,
    "tornado_app.py": """
        import asyncio, os, sys
        import tornado.web
        async def main():
            app = tornado.web.Application(
                [(r"/(.*)", tornado.web.StaticFileHandler, {"path": os.environ["BENCH_ROOT"]})],
                log_function=lambda handler: None,
            )
            app.listen(int(sys.argv[1]), address="127.0.0.1")
            await asyncio.Event().wait()
        asyncio.run(main())
    """,
}

NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""

LOCALHOST_CONF = """
access_log off
error_log stderr warn
worker_connections 20000
server {{
    host 127.0.0.1
    port {port}
    root {root}
    location /cgi-bin {{
        root {cgi}
        cgi .py {python}
        methods GET
    }}
    location /uploads {{
        root {uploads}
        methods GET POST
        body_limit 0
    }}
}}
"""


def servers(
    tmp: Path, root: Path, only: set[str] | None, baseline: Path | None = None
) -> list[Server]:
    for name, text in APPS.items():
        (tmp / name).write_text(textwrap.dedent(text))
    env = {"BENCH_ROOT": str(root), "PYTHONPATH": f"{tmp}{os.pathsep}{REPO}"}
    cgi = tmp / "cgi-bin"
    cgi.mkdir()
    (cgi / "hello.py").write_text(
        'print("Content-Type: text/plain")\nprint()\nprint("Hello from CGI")\n'
    )
    (tmp / "uploads").mkdir()
    ports = {
        name: free_port()
        for name in (
            "localhost",
            "nginx",
            "uvicorn",
            "aiohttp",
            "tornado",
            "gunicorn",
            "http.server",
            "baseline",
        )
    }
    conf = tmp / "localhost.conf"
    conf.write_text(
        LOCALHOST_CONF.format(
            port=ports["localhost"],
            root=root,
            cgi=cgi,
            uploads=tmp / "uploads",
            python=sys.executable,
        )
    )
    if baseline is not None:
        # Another checkout of localhost (e.g. the main branch before a change),
        # measured in the same rounds as this one.
        (tmp / "baseline.conf").write_text(
            LOCALHOST_CONF.format(
                port=ports["baseline"],
                root=root,
                cgi=cgi,
                uploads=tmp / "uploads",
                python=sys.executable,
            )
        )
    nginx_conf = tmp / "nginx.conf"
    nginx_conf.write_text(NGINX_CONF.format(tmp=tmp, port=ports["nginx"], root=root))
    py = sys.executable
    all_servers = [
        Server("localhost", [py, "-m", "localhost", str(conf)], ports["localhost"], REPO, env),
        Server("nginx", ["nginx", "-p", str(tmp), "-c", str(nginx_conf)], ports["nginx"], tmp),
        Server(
            "uvicorn",
            [
                py,
                "-m",
                "uvicorn",
                "asgi_app:app",
                "--port",
                str(ports["uvicorn"]),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            ports["uvicorn"],
            tmp,
            env,
        ),
        Server(
            "aiohttp",
            [py, str(tmp / "aiohttp_app.py"), str(ports["aiohttp"])],
            ports["aiohttp"],
            tmp,
            env,
        ),
        Server(
            "tornado",
            [py, str(tmp / "tornado_app.py"), str(ports["tornado"])],
            ports["tornado"],
            tmp,
            env,
        ),
        Server(
            "gunicorn",
            [
                py,
                "-m",
                "gunicorn",
                "-w",
                "1",
                "-k",
                "sync",
                "-b",
                f"127.0.0.1:{ports['gunicorn']}",
                "--log-level",
                "warning",
                "wsgi_app:app",
            ],
            ports["gunicorn"],
            tmp,
            env,
        ),
        Server(
            "http.server",
            [
                py,
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                "--directory",
                str(root),
                str(ports["http.server"]),
            ],
            ports["http.server"],
            tmp,
        ),
    ]
    if baseline is not None:
        baseline_env = {**env, "PYTHONPATH": f"{tmp}{os.pathsep}{baseline}"}
        all_servers.insert(
            1,
            Server(
                "baseline",
                [py, "-m", "localhost", str(tmp / "baseline.conf")],
                ports["baseline"],
                baseline,
                baseline_env,
            ),
        )
    return [s for s in all_servers if only is None or s.name in only or s.name == "baseline"]


# -- measuring ----------------------------------------------------------------


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_per_10k: float


def _ms(text: str) -> float:
    """A wrk duration (``850.00us``, ``1.20ms``, ``2.00s``, ``1.00m``) in milliseconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        return float("nan")
    value, unit = match.groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(server: Server, path: str, seconds: float, connections: int, close: bool) -> Run:
    command = [
        "taskset",
        "-c",
        LOAD_CPU,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{int(seconds)}s",
        "--latency",
    ]
    if close:
        command += ["-H", "Connection: close"]
    before = server.cpu_seconds()
    out = subprocess.run(
        [*command, server.url(path)], capture_output=True, text=True, timeout=seconds + 60
    ).stdout
    cpu = server.cpu_seconds() - before
    rps_match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total_match = re.search(r"(\d+) requests in", out)
    if rps_match is None or total_match is None:
        print(f"unreadable wrk output for {server.name}:\n{out}", file=sys.stderr)
        return Run(0.0, float("nan"), float("nan"), 1, float("nan"))
    rps = float(rps_match.group(1))
    total = int(total_match.group(1))
    # The "Latency Distribution" lines; the thread stats have percentages too.
    p50_match = re.search(r"^\s+50%\s+(\S+)$", out, re.M)
    p99_match = re.search(r"^\s+99%\s+(\S+)$", out, re.M)
    p50 = _ms(p50_match.group(1)) if p50_match else float("nan")
    p99 = _ms(p99_match.group(1)) if p99_match else float("nan")
    errors = 0
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(g) for g in m.groups())
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(m.group(1))
    return Run(rps, p50, p99, errors, cpu / max(total, 1) * 10_000)


SCENARIOS = [
    # (key, title, path, connections, close)
    ("1k", "1 KiB, keep-alive", "/1k.bin", 64, False),
    ("1k-close", "1 KiB, Connection: close", "/1k.bin", 64, True),
    ("100k", "100 KiB, keep-alive", "/100k.bin", 64, False),
    ("10m", "10 MiB, keep-alive", "/10m.bin", 16, False),
]


def summarize(runs: list[Run]) -> dict[str, float]:
    rps = [r.rps for r in runs]
    return {
        "rps": statistics.median(rps),
        "rps_min": min(rps),
        "rps_max": max(rps),
        "p50_ms": statistics.median(r.p50_ms for r in runs),
        "p99_ms": statistics.median(r.p99_ms for r in runs),
        "errors": sum(r.errors for r in runs),
        "cpu_per_10k": statistics.median(r.cpu_per_10k for r in runs),
    }


def siege(server: Server) -> dict[str, float]:
    out = subprocess.run(
        [
            "taskset",
            "-c",
            LOAD_CPU,
            "siege",
            "-b",
            "-c",
            "25",
            "-r",
            "100",
            "-j",
            server.url("/1k.bin"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    report = json.loads(out[out.index("{") :])
    return {
        "availability": report["availability"],
        "transactions": report["transactions"],
        "rate": report["transaction_rate"],
    }


def upload(server: Server, mib: int) -> dict[str, float]:
    """One multipart upload of ``mib`` MiB: seconds and the server's RSS growth."""
    assert server.process is not None
    return measure_upload(server.port, server.process.pid, mib)


def idle_connections(server: Server, count: int) -> dict[str, float]:
    """RSS of the idle server, then with ``count`` idle keep-alive connections."""
    assert server.process is not None
    pid = server.process.pid
    idle = rss_kib(pid)
    socks = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.sendall(b"GET /1k.bin HTTP/1.1\r\nHost: b\r\n\r\n")
            socks.append(sock)
        for sock in socks:
            received = 0
            while received < 1024:
                received += len(sock.recv(65536))
        time.sleep(0.5)
        loaded = rss_kib(pid)
    finally:
        for sock in socks:
            sock.close()
    return {"idle_rss_mib": idle / 1024, "connections": count, "extra_mib": (loaded - idle) / 1024}


# -- reporting ----------------------------------------------------------------


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for module in ("uvicorn", "uvloop", "httptools", "aiohttp", "tornado", "gunicorn"):
        try:
            imported = __import__(module)
            found[module] = getattr(imported, "__version__", None) or imported.version
        except (ImportError, AttributeError):
            found[module] = "?"
    found["nginx"] = (
        subprocess.run(["nginx", "-v"], capture_output=True, text=True)
        .stderr.strip()
        .split("/")[-1]
    )
    found["wrk"] = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split()[1]
    siege_version = subprocess.run(["siege", "--version"], capture_output=True, text=True)
    found["siege"] = (siege_version.stdout + siege_version.stderr).split()[1]
    from localhost import __version__

    found["localhost"] = __version__
    return found


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return f"{os.cpu_count()} × {cpu}, Linux {platform.release()}"


def chart(results: dict[str, dict[str, dict[str, float]]], names: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(SCENARIOS), figsize=(4 * len(SCENARIOS), 4.2))
    for axis, (key, title, *_rest) in zip(axes, SCENARIOS, strict=True):
        values = [results[key][n]["rps"] if n in results[key] else 0 for n in names]
        lows = [
            values[i] - results[key][n]["rps_min"] if n in results[key] else 0
            for i, n in enumerate(names)
        ]
        highs = [
            results[key][n]["rps_max"] - values[i] if n in results[key] else 0
            for i, n in enumerate(names)
        ]
        colours = ["#2a6f97" if n == "localhost" else "#9aa5b1" for n in names]
        axis.bar(names, values, color=colours, yerr=[lows, highs], capsize=3)
        axis.set_title(title)
        axis.set_ylabel("requests/s (this machine, one core)")
        axis.tick_params(axis="x", rotation=60)
    fig.suptitle("localhost and peers: median requests per second over the rounds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def targets(data: dict) -> list[str]:  # type: ignore[type-arg]
    """The performance targets, each with this run's value and whether it is met."""
    r = data["results"]

    def ratio(key: str, peer: str) -> float | None:
        ours, theirs = r[key].get("localhost"), r[key].get(peer)
        return ours["rps"] / theirs["rps"] if ours and theirs else None

    rows = []

    def row(
        name: str, value: float | None, goal: float, unit: str = "×", higher: bool = True
    ) -> None:
        if value is None:
            rows.append(f"| {name} | not measured | {goal}{unit} | — |")
            return
        met = value >= goal if higher else value <= goal
        rows.append(
            f"| {name} | {value:.2f}{unit} | {'≥' if higher else '≤'} {goal}{unit} | {'met' if met else 'missed'} |"
        )

    row("1 KiB keep-alive ÷ uvicorn", ratio("1k", "uvicorn"), 1.2)
    row("1 KiB keep-alive ÷ tornado", ratio("1k", "tornado"), 10)
    p99 = r["1k"].get("localhost", {}).get("p99_ms")
    peer_p99 = r["1k"].get("uvicorn", {}).get("p99_ms")
    row(
        "1 KiB keep-alive p99, ms (uvicorn's is the goal)",
        p99,
        round(peer_p99, 2) if peer_p99 else 0,
        " ms",
        higher=False,
    )
    row("1 KiB Connection: close ÷ uvicorn", ratio("1k-close", "uvicorn"), 1.0)
    row("100 KiB keep-alive ÷ uvicorn", ratio("100k", "uvicorn"), 1.0)
    row("10 MiB keep-alive ÷ nginx", ratio("10m", "nginx"), 0.9)
    if "upload" in data:
        row(
            "100 MiB upload: server RSS growth",
            data["upload"]["rss_growth_mib"],
            32,
            " MiB",
            higher=False,
        )
        row("100 MiB upload: throughput", data["upload"]["mib_per_s"], 200, " MiB/s")
    if "memory" in data:
        row("idle RSS", data["memory"]["idle_rss_mib"], 30, " MiB", higher=False)
        row(
            "10,000 idle keep-alive connections: extra RSS",
            data["memory"]["extra_mib"],
            50,
            " MiB",
            higher=False,
        )
    return ["## Targets", "", "| target | this run | goal | |", "|---|---|---|---|", *rows, ""]


def report(data: dict, path: Path) -> None:  # type: ignore[type-arg]
    results = data["results"]
    names = data["servers"]
    lines = [
        "# Benchmarks",
        "",
        f"Run of {data['date']} on this machine: {data['machine']}. Absolute numbers are this machine's;",
        "the ratios compare servers measured in the same run. Reproduce with `python bench/run.py`",
        "(needs `pip install '.[bench]'` and Debian's `wrk`, `siege` and `nginx`).",
        "",
        f"Versions: {', '.join(f'{k} {v}' for k, v in data['versions'].items())}.",
        "",
        f"Method: each server pinned to CPU {SERVER_CPU}, wrk pinned to CPU {LOAD_CPU} (`taskset`); "
        f"{data['rounds']} rounds of {data['duration']} s per scenario and server, the order alternating "
        "between rounds; medians with [min–max]; p50/p99 latency from `wrk --latency`; CPU seconds of the "
        "server per 10,000 requests. Access logs off everywhere. uvicorn and gunicorn run an app that "
        "answers the file's bytes from memory; the others serve the files from disk.",
        "",
        "![requests per second](benchmarks.png)",
        "",
    ]
    lines += targets(data)
    for key, title, path_, connections, close in SCENARIOS:
        command = (
            f"wrk -t1 -c{connections} -d{data['duration']}s --latency"
            + (" -H 'Connection: close'" if close else "")
            + f" URL{path_}"
        )
        lines += [
            f"## {title}",
            "",
            f"`{command}`",
            "",
            "| server | requests/s | range | p50 ms | p99 ms | CPU s / 10k req | errors | localhost ÷ server |",
            "|---|---|---|---|---|---|---|---|",
        ]
        ours = results[key].get("localhost", {}).get("rps")
        for name in names:
            r = results[key].get(name)
            if r is None:
                continue
            ratio = f"{ours / r['rps']:.2f}×" if ours and name != "localhost" else "—"
            lines.append(
                f"| {name} | {r['rps']:,.0f} | {r['rps_min']:,.0f}–{r['rps_max']:,.0f} | {r['p50_ms']:.2f} | "
                f"{r['p99_ms']:.2f} | {r['cpu_per_10k']:.2f} | {r['errors']} | {ratio} |"
            )
        lines.append("")
    if "cgi" in data:
        c = data["cgi"]
        lines += [
            "## CGI hello (localhost only)",
            "",
            "`wrk -t1 -c8 --latency URL/cgi-bin/hello.py`",
            "",
            f"{c['rps']:,.0f} requests/s [{c['rps_min']:,.0f}–{c['rps_max']:,.0f}], p50 {c['p50_ms']:.1f} ms, "
            f"p99 {c['p99_ms']:.1f} ms, {c['cpu_per_10k']:.2f} CPU s of the server per 10k requests "
            "(the scripts' own CPU is not counted). Each request starts a Python interpreter.",
            "",
        ]
    if "upload" in data:
        u = data["upload"]
        lines += [
            "## 100 MiB multipart upload (localhost only)",
            "",
            f"{u['seconds']:.2f} s ({u['mib_per_s']:.0f} MiB/s); server RSS growth {u['rss_growth_mib']:.1f} MiB; "
            f"stored: {u['ok']}.",
            "",
        ]
    if "memory" in data:
        m = data["memory"]
        lines += [
            "## Memory (localhost)",
            "",
            f"Idle RSS {m['idle_rss_mib']:.1f} MiB; {m['connections']:,} idle keep-alive connections add "
            f"{m['extra_mib']:.1f} MiB.",
            "",
        ]
    if "siege" in data:
        lines += [
            "## siege -b availability",
            "",
            "`siege -b -c 25 -r 100 URL/1k.bin`",
            "",
            "| server | availability | transactions | transactions/s |",
            "|---|---|---|---|",
        ]
        for name, s in data["siege"].items():
            lines.append(f"| {name} | {s['availability']}% | {s['transactions']} | {s['rate']} |")
        lines.append("")
    # Every other section of the page (--apps, --tls, --gzip, --proxy,
    # --websocket, --http2 and the hand-written notes) is kept, in its order.
    if path.exists():
        written = {line for line in lines if line.startswith("## ")}
        for section in _sections(path.read_text()):
            if section.split("\n", 1)[0] not in written:
                lines.append(section.rstrip("\n") + "\n")
    path.write_text("\n".join(lines))


def _sections(text: str) -> list[str]:
    """The ``## `` sections of a page, each from its heading to the next."""
    parts = ("\n" + text).split("\n## ")
    return ["## " + part for part in parts[1:]]


# -- applications (issue 13) ----------------------------------------------------

APPS_DIR = Path(__file__).resolve().parent / "apps"
APPS_HEADING = "## Applications (issue 13)"
APPS_NOTES = "### Notes"
#: The slow reader of the memory measurement: 800 chunks of 64 KiB (50 MiB),
#: one 64 KiB read every 10 ms, so about 8 s per server.
STREAM_CHUNKS = 800
SLOW_READ_BYTES = 65536
SLOW_READ_PAUSE = 0.01
SLOW_READ_DEADLINE = 60.0
SLOW_READ_RCVBUF = 256 * 1024


@dataclass
class AppRow:
    """One server of the applications section, or why it is not measured."""

    key: str
    label: str
    server: Server | None
    skipped: str = ""


def _localhost_conf(tmp: Path, name: str, port: int) -> Path:
    """A copy of ``bench/apps/NAME.conf`` in ``tmp`` listening on ``port``.

    The copy's ``wsgi_path .`` becomes the absolute ``bench/apps`` so that it
    still names the folder of the original.
    """
    text = (APPS_DIR / f"{name}.conf").read_text()
    text, ports = re.subn(r"^(\s*port\s+)\d+", rf"\g<1>{port}", text, flags=re.M)
    text, paths = re.subn(
        r"^(\s*wsgi_path\s+)\.(?=\s)", lambda m: f'{m.group(1)}"{APPS_DIR}"', text, flags=re.M
    )
    if ports != 1 or paths != 1:
        raise RuntimeError(f"{name}.conf: expected one port and one wsgi_path line")
    copy = tmp / f"{name}.conf"
    copy.write_text(text)
    return copy


def app_rows(tmp: Path, group: str, only: set[str] | None) -> list[AppRow]:
    """The servers of one group: ``hello`` (the 1 KiB WSGI app), ``flask`` or ``stream``.

    Each row is a ``Server`` (not started) pinned like the static suite's, run
    from ``bench/apps`` with it on ``PYTHONPATH``; rows whose software is not
    installed carry the reason in ``skipped`` instead.
    """
    py = sys.executable
    env = {"PYTHONPATH": f"{APPS_DIR}{os.pathsep}{REPO}"}
    module = {"hello": "hello:app", "flask": "flask_hello:app", "stream": "stream:app"}[group]
    rows: list[AppRow] = []

    def add(key: str, label: str, command: list[str], needs: str = "") -> None:
        if only is not None and key not in only:
            return
        if needs and importlib.util.find_spec(needs) is None:
            rows.append(AppRow(key, label, None, f"{needs} is not installed"))
            return
        port = free_port()
        command = [part.replace("{port}", str(port)) for part in command]
        rows.append(AppRow(key, label, Server(label, command, port, APPS_DIR, env)))

    for threads in (0, 4):
        port = free_port()
        if only is None or f"localhost-t{threads}" in only:
            conf = _localhost_conf(tmp, f"{group}-threads{threads}", port)
            rows.append(
                AppRow(
                    f"localhost-t{threads}",
                    f"localhost wsgi_threads {threads}",
                    Server(
                        f"localhost wsgi_threads {threads}",
                        [py, "-m", "localhost", str(conf)],
                        port,
                        APPS_DIR,
                        env,
                    ),
                )
            )
    if group == "hello":
        add(
            "localhost-app",
            "localhost App API inline",
            [
                py,
                "-m",
                "localhost",
                "hello_app:app",
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
                "-w",
                "1",
                "--no-access-log",
            ],
        )
    if group != "flask":
        add(
            "granian",
            "granian",
            [
                py,
                "-m",
                "granian",
                "--interface",
                "wsgi",
                "--workers",
                "1",
                "--no-ws",
                "--log-level",
                "warning",
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
                module,
            ],
            "granian",
        )
    add(
        "waitress",
        "waitress (4 threads)",
        [py, "-m", "waitress", "--host=127.0.0.1", "--port={port}", "--threads=4", module],
        "waitress",
    )
    gunicorn = [py, "-m", "gunicorn", "-w", "1", "-b", "127.0.0.1:{port}", "--log-level", "warning"]
    add("gunicorn-sync", "gunicorn sync", [*gunicorn, "-k", "sync", module], "gunicorn")
    add(
        "gunicorn-gthread",
        "gunicorn gthread (4 threads)",
        [*gunicorn, "-k", "gthread", "--threads", "4", module],
        "gunicorn",
    )
    if group == "hello":
        add("bjoern", "bjoern", [py, str(APPS_DIR / "bjoern_serve.py"), module, "{port}"], "bjoern")
    return rows


def group_rss_kib(pgid: int) -> int:
    """Resident memory of every process in process group ``pgid``, in KiB."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[2]) == pgid:
                total += rss_kib(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    return total


def _get(port: int, path: str, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
    return sock


def _read_head(sock: socket.socket) -> tuple[bytes, int]:
    """The status line and how many body bytes came with the head."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            raise RuntimeError(f"the connection closed in the head: {data[:200]!r}")
        data += more
    head, _, rest = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n", 1)[0], len(rest)


def slow_stream(server: Server) -> dict[str, float]:
    """Fetch 50 MiB from ``stream.py`` with a slow reader; the server's RSS growth.

    The reader asks for ``/?chunks=800`` (800 × 64 KiB) with a 256 KiB receive
    buffer and reads 64 KiB every 10 ms; the resident memory of the server's
    process group (``/proc/PID/status`` VmRSS, summed) is sampled every 10 ms
    from just before the request to the end. Returns the growth of the peak
    over that start in MiB, the seconds taken and whether every byte came.
    Raises ``RuntimeError`` past 60 s or on a malformed answer.
    """
    assert server.process is not None
    pgid = server.process.pid
    with _get(server.port, "/?chunks=1") as warm:  # imports and first-request work
        while warm.recv(65536):
            pass
    baseline = peak = group_rss_kib(pgid)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.01):
            peak = max(peak, group_rss_kib(pgid))

    sampler = threading.Thread(target=sample)
    sampler.start()
    expected = STREAM_CHUNKS * 65536
    start = time.monotonic()
    try:
        with _get(server.port, f"/?chunks={STREAM_CHUNKS}", SLOW_READ_RCVBUF) as sock:
            status, received = _read_head(sock)
            if not status.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"{server.name}: {status!r}")
            while received < expected:
                if time.monotonic() - start > SLOW_READ_DEADLINE:
                    raise RuntimeError(f"{server.name}: the 50 MiB took over a minute")
                chunk = sock.recv(SLOW_READ_BYTES, socket.MSG_WAITALL)
                if not chunk:
                    break
                received += len(chunk)
                time.sleep(SLOW_READ_PAUSE)
    finally:
        done.set()
        sampler.join()
    return {
        "seconds": time.monotonic() - start,
        "rss_before_mib": baseline / 1024,
        "rss_growth_mib": (peak - baseline) / 1024,
        "complete": received == expected,
    }


def app_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("granian", "waitress", "gunicorn", "bjoern", "flask", "werkzeug"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "not installed"
    found["wrk"] = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split()[1]
    from localhost import __version__

    # The servers run the working tree: its commit, and whether it had edits.
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    edited = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no", "localhost"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    found["localhost"] = (
        f"{__version__} (git {commit or '?'}{', with local edits' if edited else ''})"
    )
    return found


def measure_group(rows: list[AppRow], seconds: int, rounds: int) -> dict[str, dict[str, float]]:
    """Start the group's servers, run wrk on ``/`` against each, round by round.

    ``wrk -t1 -c64 --latency``, keep-alive, the order alternating between
    rounds as in the static suite. A server that does not start is marked
    skipped in its row. Returns ``summarize`` per row key.
    """
    started: list[AppRow] = []
    try:
        for row in rows:
            if row.server is None:
                continue
            print(f"starting {row.label}", flush=True)
            try:
                row.server.start()
            except RuntimeError as error:
                row.skipped = str(error)
                row.server.stop()
                continue
            started.append(row)
        runs: dict[str, list[Run]] = {row.key: [] for row in started}
        for index in range(rounds):
            for row in started if index % 2 == 0 else list(reversed(started)):
                assert row.server is not None
                run = wrk(row.server, "/", seconds, 64, False)
                runs[row.key].append(run)
                print(
                    f"round {index + 1} {row.label:32} {run.rps:10,.0f} req/s  p99 {run.p99_ms:.2f} ms  {run.cpu_per_10k:.3f} CPU s/10k",
                    flush=True,
                )
    finally:
        for row in started:
            assert row.server is not None
            row.server.stop()
    return {key: summarize(r) for key, r in runs.items() if r}


def measure_streams(rows: list[AppRow]) -> dict[str, dict[str, float]]:
    """``slow_stream`` for each row's server, one server running at a time."""
    results: dict[str, dict[str, float]] = {}
    for row in rows:
        if row.server is None:
            continue
        print(f"slow reader of 50 MiB from {row.label}", flush=True)
        try:
            row.server.start()
            results[row.key] = slow_stream(row.server)
        except (RuntimeError, OSError) as error:
            row.skipped = str(error)
        finally:
            row.server.stop()
        if row.key in results:
            r = results[row.key]
            print(
                f"  RSS {r['rss_before_mib']:.1f} MiB + {r['rss_growth_mib']:.1f} MiB, "
                f"{r['seconds']:.1f} s, complete: {r['complete']}",
                flush=True,
            )
    return results


APP_TARGETS = [
    # (label, group, ours, peers (the best of them counts), goal)
    ("hello, wsgi_threads 0 ÷ granian", "hello", "localhost-t0", ("granian",), 0.8),
    ("hello, wsgi_threads 0 ÷ waitress", "hello", "localhost-t0", ("waitress",), 3.0),
    ("hello, wsgi_threads 4 ÷ waitress", "hello", "localhost-t4", ("waitress",), 2.0),
    ("hello, App API inline ÷ granian", "hello", "localhost-app", ("granian",), 1.0),
    (
        "Flask, wsgi_threads 0 ÷ best of gunicorn and waitress",
        "flask",
        "localhost-t0",
        ("gunicorn-sync", "gunicorn-gthread", "waitress"),
        1.1,
    ),
    (
        "Flask, wsgi_threads 4 ÷ best of gunicorn and waitress",
        "flask",
        "localhost-t4",
        ("gunicorn-sync", "gunicorn-gthread", "waitress"),
        1.1,
    ),
]
STREAM_RSS_GOAL_MIB = 16


def app_targets(data: dict) -> list[str]:  # type: ignore[type-arg]
    """The issue's targets as table rows: this run's value, the goal, met or missed."""
    rows = []
    for label, group, ours, peers, goal in APP_TARGETS:
        results = data["results"][group]
        theirs = [results[p] for p in peers if p in results]
        if ours not in results or not theirs:
            rows.append(f"| {label} | not measured | — | ≥ {goal}× | — |")
            continue
        best = max(theirs, key=lambda r: r["rps"])
        value = results[ours]["rps"] / best["rps"]
        # The same ratio from CPU time per request: less sensitive to a shared machine.
        by_cpu = best["cpu_per_10k"] / max(results[ours]["cpu_per_10k"], 1e-9)
        rows.append(
            f"| {label} | {value:.2f}× | {by_cpu:.2f}× | ≥ {goal}× | "
            f"{'met' if value >= goal else 'missed'} |"
        )
    for key, label in (("localhost-t0", "wsgi_threads 0"), ("localhost-t4", "wsgi_threads 4")):
        stream = data["stream"].get(key)
        if stream is None:
            rows.append(
                f"| 50 MiB stream to a slow reader, {label}: RSS growth | not measured | — | ≤ {STREAM_RSS_GOAL_MIB} MiB | — |"
            )
            continue
        growth = stream["rss_growth_mib"]
        met = growth <= STREAM_RSS_GOAL_MIB and stream["complete"]
        rows.append(
            f"| 50 MiB stream to a slow reader, {label}: RSS growth | {growth:.1f} MiB | — | "
            f"≤ {STREAM_RSS_GOAL_MIB} MiB | {'met' if met else 'missed'} |"
        )
    return [
        "| target | this run | by CPU s / 10k req | goal | |",
        "|---|---|---|---|---|",
        *rows,
    ]


def apps_section(data: dict) -> str:  # type: ignore[type-arg]
    """The "Applications (issue 13)" section of ``docs/benchmarks.md`` for one run."""
    duration, rounds = data["duration"], data["rounds"]
    lines = [
        APPS_HEADING,
        "",
        f"Run of {data['date']} on this machine: {data['machine']}. Reproduce with "
        f"`{data['command']}` (needs `pip install '.[bench]'`, Debian's `wrk`, and for the bjoern row "
        "`libev-dev` before `pip install bjoern`).",
        "",
        f"Versions: {', '.join(f'{k} {v}' for k, v in data['versions'].items())}.",
        "",
        f"Load average (1 min) {data['load_before']:.2f} at the start and {data['load_after']:.2f} at the end "
        "of the run: above about 1, other work shared the CPUs and the figures vary more between rounds.",
        "",
        "Method: as above, each server in one process (or one master and one worker) pinned to CPU "
        f"{SERVER_CPU}, wrk pinned to CPU {LOAD_CPU}; `wrk -t1 -c64 -d{duration}s --latency URL/`, "
        f"keep-alive; {rounds} rounds, the order alternating between rounds; medians with "
        "[min–max]. The apps and configurations are in `bench/apps/`: `hello.py` (WSGI, a 1 KiB "
        "body from a list), `hello_app.py` (the App API, an inline route), `flask_hello.py` (Flask, "
        "a 1 KiB body). localhost runs `worker_processes 1` with `access_log off`; every peer "
        "logs no access either. gunicorn's sync worker closes the connection after every response "
        "(it has no keep-alive).",
        "",
        "### Targets",
        "",
        *app_targets(data),
        "",
    ]
    titles = {"hello": "WSGI hello, 1 KiB", "flask": "Flask hello, 1 KiB"}
    for group, title in titles.items():
        results = data["results"][group]
        lines += [
            f"### {title}",
            "",
            "| server | requests/s | range | p50 ms | p99 ms | CPU s / 10k req | errors |",
            "|---|---|---|---|---|---|---|",
        ]
        for key, label, skipped in data["rows"][group]:
            r = results.get(key)
            if r is None:
                lines.append(f"| {label} | not measured: {skipped or 'no result'} | | | | | |")
                continue
            lines.append(
                f"| {label} | {r['rps']:,.0f} | {r['rps_min']:,.0f}–{r['rps_max']:,.0f} | "
                f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['cpu_per_10k']:.3f} | {r['errors']} |"
            )
        lines.append("")
    lines += [
        "### Streaming 50 MiB to a slow reader",
        "",
        f"`stream.py` answers `GET /?chunks={STREAM_CHUNKS}` with {STREAM_CHUNKS} chunks of 64 KiB "
        "(50 MiB, with a Content-Length) pulled from a generator. The reader (a raw socket with a "
        f"{SLOW_READ_RCVBUF // 1024} KiB receive buffer) reads {SLOW_READ_BYTES // 1024} KiB every "
        f"{SLOW_READ_PAUSE * 1000:.0f} ms; the server's resident memory (VmRSS of its processes, "
        "summed) is sampled every 10 ms from just before the request, after one warm-up request. "
        "The peers are there for comparison; the target is localhost's.",
        "",
        "| server | RSS before, MiB | peak growth, MiB | seconds | all bytes |",
        "|---|---|---|---|---|",
    ]
    for key, label, skipped in data["rows"]["stream"]:
        s = data["stream"].get(key)
        if s is None:
            lines.append(f"| {label} | not measured: {skipped or 'no result'} | | | |")
            continue
        lines.append(
            f"| {label} | {s['rss_before_mib']:.1f} | {s['rss_growth_mib']:.1f} | "
            f"{s['seconds']:.1f} | {'yes' if s['complete'] else 'no'} |"
        )
    lines.append("")
    return "\n".join(lines)


def _section_span(text: str, heading: str) -> tuple[int, int] | None:
    """Where the ``## heading`` section of a page starts and ends (the next ``## ``)."""
    start = text.find(f"\n{heading}\n")
    if start < 0:
        return None
    end = text.find("\n## ", start + 1)
    return start + 1, len(text) if end < 0 else end + 1


def splice_section(text: str, heading: str, section: str) -> str:
    """``text`` with its ``heading`` section replaced by ``section``.

    A page without that section gets it before ``## Profile``, else at the end.
    """
    section = section.rstrip("\n") + "\n\n"
    span = _section_span(text, heading)
    if span is not None:
        return text[: span[0]] + section + text[span[1] :]
    profile = text.find("\n## Profile\n")
    if profile >= 0:
        return text[: profile + 1] + section + text[profile + 1 :]
    return text.rstrip("\n") + "\n\n" + section


def with_notes(page: str, section: str) -> str:
    """``section`` followed by the ``### Notes`` of the page's applications section, if any.

    Hand-written remarks on a run end the section and outlive the next run.
    """
    span = _section_span(page, APPS_HEADING)
    if span is None:
        return section
    notes = page.find(f"\n{APPS_NOTES}\n", span[0], span[1])
    if notes < 0:
        return section
    return section.rstrip("\n") + "\n\n" + page[notes + 1 : span[1]]


def run_apps(args: argparse.Namespace) -> int:
    """The applications section: measure, print the targets, write the section."""
    needs = [
        f"{tool} (apt-get install {package})"
        for tool, package in (("wrk", "wrk"), ("taskset", "util-linux"))
        if shutil.which(tool) is None
    ]
    needs += [
        f"{module} (pip install '.[bench]')"
        for module in ("granian", "waitress", "gunicorn", "flask")
        if importlib.util.find_spec(module) is None
    ]
    if (os.cpu_count() or 1) < 2:
        needs.append("two CPUs (the servers and the load generator get one each)")
    if needs:
        print("bench/run.py --apps needs:\n  " + "\n  ".join(needs), file=sys.stderr)
        return 2
    only = set(args.only.split(",")) if args.only else None
    data: dict = {  # type: ignore[type-arg]
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "versions": app_versions(),
        "command": f"python bench/run.py --apps --duration {args.duration} --rounds {args.rounds}"
        + (f" --only {args.only}" if args.only else ""),
        "duration": args.duration,
        "rounds": args.rounds,
        "results": {},
        "rows": {},
        # Other work on the machine shows in the figures; the load says how much.
        "load_before": os.getloadavg()[0],
    }
    with tempfile.TemporaryDirectory(prefix="localhost-bench-apps-") as tmp_name:
        tmp = Path(tmp_name)
        for group in ("hello", "flask"):
            rows = app_rows(tmp, group, only)
            data["results"][group] = measure_group(rows, args.duration, args.rounds)
            data["rows"][group] = [(r.key, r.label, r.skipped) for r in rows]
        rows = app_rows(tmp, "stream", only)
        data["stream"] = measure_streams(rows)
        data["rows"]["stream"] = [(r.key, r.label, r.skipped) for r in rows]
    data["load_after"] = os.getloadavg()[0]
    print("\n".join(app_targets(data)))
    section = apps_section(data)
    if args.output.exists():
        page = args.output.read_text()
        args.output.write_text(splice_section(page, APPS_HEADING, with_notes(page, section)))
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text("# Benchmarks\n\n" + section)
    print(f"wrote the {APPS_HEADING[3:]} section of {args.output}")
    return 0


# -- main -----------------------------------------------------------------------


def missing() -> list[str]:
    needs = []
    for tool, package in (
        ("wrk", "wrk"),
        ("siege", "siege"),
        ("nginx", "nginx"),
        ("taskset", "util-linux"),
    ):
        if shutil.which(tool) is None:
            needs.append(f"{tool} (apt-get install {package})")
    for module in (
        "tornado",
        "aiohttp",
        "uvicorn",
        "uvloop",
        "httptools",
        "gunicorn",
        "matplotlib",
    ):
        if importlib.util.find_spec(module) is None:
            needs.append(f"{module} (pip install '.[bench]')")
    if (os.cpu_count() or 1) < 2:
        needs.append("two CPUs (the servers and the load generator get one each)")
    return needs


#: The sections measured by their own scripts (next to this one): flag →
#: (script, heading). Each script prints its section (or writes it to
#: ``--output``); ``run_section`` puts it in the page in place of the old one.
SECTIONS = {
    "gzip": ("compression.py", "## Compression (issue 15)"),
    "proxy": ("proxy.py", "## Reverse proxy (issue 16)"),
    "websocket": ("websocket.py", "## WebSocket (issue 17)"),
    "http2": ("http2.py", "## HTTP/2 (issue 18)"),
}


def run_section(flag: str, args: argparse.Namespace) -> int:
    """Run ``bench/SCRIPT`` for the ``flag`` section and splice what it reports
    into ``args.output`` (the other sections are kept)."""
    script, heading = SECTIONS[flag]
    command = [sys.executable, str(Path(__file__).resolve().parent / script)]
    command += ["--rounds", str(args.rounds)]
    if flag != "http2":  # h2load runs a number of requests, not a duration
        command += ["--duration", str(args.duration)]
    with tempfile.TemporaryDirectory(prefix="localhost-bench-") as tmp_name:
        written = Path(tmp_name) / "section.md"
        if flag != "proxy":
            command += ["--output", str(written)]
        result = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
        if result.returncode != 0:
            return result.returncode
        text = written.read_text() if written.exists() else result.stdout
    if not text.lstrip().startswith(heading):
        text = f"{heading}\n\n{time.strftime('%Y-%m-%d')}: `python bench/{script}`.\n{text}"
    page = args.output.read_text() if args.output.exists() else "# Benchmarks\n"
    args.output.write_text(splice_section(page, heading, text))
    print(f"{heading[3:]}: written to {args.output}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 s runs, 2 rounds")
    parser.add_argument(
        "--only",
        help="comma-separated server names; with --apps, row keys: localhost-t0, "
        "localhost-t4, localhost-app, granian, waitress, gunicorn-sync, gunicorn-gthread, bjoern",
    )
    parser.add_argument(
        "--apps",
        action="store_true",
        help="the applications section (WSGI, App API, Flask, streaming memory) instead of "
        "the static files; rewrites only that section of --output",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="the HTTPS section (bench/tls.py: localhost vs nginx vs uvicorn over TLS); "
        "rewrites only that section of --output",
    )
    for flag, (script, _heading) in SECTIONS.items():
        parser.add_argument(
            f"--{flag}",
            action="store_true",
            help=f"the {_heading[3:]} section (bench/{script}); rewrites only that section",
        )
    parser.add_argument("--output", type=Path, default=DOCS / "benchmarks.md")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout of localhost to measure in the same rounds (before/after)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite the page and chart from the JSON of the last run",
    )
    args = parser.parse_args()
    if args.report_only:
        data = json.loads(args.output.with_suffix(".json").read_text())
        chart(data["results"], data["servers"], args.output.with_suffix(".png"))
        report(data, args.output)
        return 0
    if args.quick:
        args.duration, args.rounds = 2, 2
    if args.apps:
        return run_apps(args)
    if args.tls:
        # bench/ is this script's folder: tls.py sits next to it.
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import tls

        return tls.main(
            ["--duration", str(args.duration), "--rounds", str(args.rounds),
             "--output", str(args.output)]
        )  # fmt: skip
    for flag in SECTIONS:
        if getattr(args, flag):
            return run_section(flag, args)
    needs = missing()
    if needs:
        print("bench/run.py needs:\n  " + "\n  ".join(needs), file=sys.stderr)
        return 2
    only = set(args.only.split(",")) | {"localhost"} if args.only else None
    with tempfile.TemporaryDirectory(prefix="localhost-bench-") as tmp_name:
        tmp = Path(tmp_name)
        root = tmp / "www"
        root.mkdir()
        rng = random.Random(42)
        for name, size in FILES.items():
            (root / name).write_bytes(rng.randbytes(size))
        started = servers(tmp, root, only, args.baseline)
        for server in started:
            print(f"starting {server.name}", flush=True)
            server.start()
        try:
            names = [s.name for s in started]
            results: dict[str, dict[str, dict[str, float]]] = {}
            for key, title, path, connections, close in SCENARIOS:
                runs: dict[str, list[Run]] = {n: [] for n in names}
                for index in range(args.rounds):
                    order = started if index % 2 == 0 else list(reversed(started))
                    for server in order:
                        run = wrk(server, path, args.duration, connections, close)
                        runs[server.name].append(run)
                        print(
                            f"{title:28} round {index + 1} {server.name:12} {run.rps:10,.0f} req/s",
                            flush=True,
                        )
                results[key] = {n: summarize(r) for n, r in runs.items() if r}
            data = {
                "date": time.strftime("%Y-%m-%d"),
                "machine": machine(),
                "versions": versions(),
                "duration": args.duration,
                "rounds": args.rounds,
                "servers": names,
                "results": results,
            }
            ours = started[0]
            cgi_runs = [
                wrk(ours, "/cgi-bin/hello.py", args.duration, 8, False) for _ in range(args.rounds)
            ]
            data["cgi"] = summarize(cgi_runs)
            data["upload"] = upload(ours, 100)
            data["memory"] = idle_connections(ours, 10_000)
            data["siege"] = {s.name: siege(s) for s in started}
        finally:
            for server in started:
                server.stop()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".json").write_text(json.dumps(data, indent=2))
    chart(results, names, args.output.with_suffix(".png"))
    report(data, args.output)
    print(
        f"wrote {args.output}, {args.output.with_suffix('.json')} and {args.output.with_suffix('.png')}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
