"""The benchmark suite: localhost against the Python servers a user would pick instead.

    python bench/run.py [--duration SECONDS] [--rounds N] [--quick] [--only NAMES]

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
"""

from __future__ import annotations

import argparse
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
    return [
        s for s in all_servers if only is None or s.name in only or s.name == "baseline"
    ]


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
    # The hand-written profile notes at the end of the page are kept.
    if path.exists() and "\n## Profile" in path.read_text():
        lines.append(path.read_text()[path.read_text().index("\n## Profile") + 1 :])
    path.write_text("\n".join(lines))


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 s runs, 2 rounds")
    parser.add_argument("--only", help="comma-separated server names")
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
