"""Compression: a 100 KiB HTML page gzip'd (the cached variant) against the same page as it is.

    python bench/compression.py [--duration 5] [--rounds 3] [--connections 64]
                                [--baseline CHECKOUT] [--output FILE]

One localhost process (``worker_processes 1``, access log off, ``gzip on``,
``brotli on``, ``zstd on``, ``gzip_vary on``) and one nginx process
(``master_process off``, ``gzip on``, ``gzip_comp_level 1``, ``gzip_vary
on``) serve the same 100 KiB HTML page; each is pinned to CPU 0 with
``taskset``, ``wrk -t1`` to CPU 1, keep-alive. For each server: the page
without Accept-Encoding (sent as it is: sendfile), and with ``gzip`` (and,
for localhost, ``br`` and ``zstd``), where localhost answers from the
encoded variant kept in its open-file cache; and both with ``gzip_static``
(a ``page.html.gz`` made with ``gzip -1`` next to the page). Each row is measured once per
round, the order alternating; medians over the rounds with [min–max], and
the server's CPU seconds per 10,000 requests.

The hot path: the same localhost serves a 1 KiB file in a location without
compression; with ``--baseline CHECKOUT`` (a checkout of the code before the
compression work, e.g. from ``git worktree add``) that checkout serves it
too, interleaved, so that the cost of compression being available but off
shows as a difference of the two.

Prints the "Compression (issue 15)" section for docs/benchmarks.md with the
load average of the machine (it is shared) at the start and the end.
Loopback only; installs nothing (needs ``wrk``, ``nginx``, ``taskset``).
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REPO, free_port  # noqa: E402

SERVER_CPU = "0"
LOAD_CPU = "1"
PAGE_BYTES = 100 * 1024
TARGET = 0.8  # the issue: gzip'd (cached) ≥ 0.8× the uncompressed rate
# A compression directive's line (left out of the baseline's configuration).
COMPRESSION = re.compile(r"\s*(gzip|brotli|zstd)\w*\s")

LOCALHOST_CONF = """
worker_processes 1
access_log off
error_log stderr warn
worker_connections 20000
server {{
    host 127.0.0.1
    port {port}
    root {root}
    location / {{
        gzip on
        brotli on
        zstd on
        gzip_vary on
    }}
    location /plain {{
        root {root}
    }}
    location /pre {{
        root {root}/pre
        gzip_static on
        gzip_vary on
    }}
}}
"""

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
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    gzip on;
    gzip_comp_level 1;
    gzip_vary on;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location /pre/ {{
            gzip_static on;
        }}
    }}
}}
"""

# fmt: off
WORDS = (
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "with", "was", "on",
    "be", "by", "at", "this", "are", "from", "or", "an", "which", "have", "not", "server",
    "request", "response", "header", "body", "file", "cache", "compression", "client",
    "connection", "loop", "event", "static", "page", "section", "paragraph", "list", "item",
    "link", "table", "row", "column", "value", "name", "type", "length",
)
# fmt: on


def page() -> bytes:
    """A 100 KiB HTML page of varied markup and text (about 4:1 with gzip -1)."""
    rng = random.Random(15)
    parts = ["<!doctype html>\n<html><head><title>Benchmark page</title></head><body>\n"]
    size = len(parts[0])
    index = 0
    while size < PAGE_BYTES - 40:
        index += 1
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 40)))
        tag = rng.choice(("p", "li", "h2", "td", "blockquote"))
        line = f'<{tag} id="n{index}" class="c{rng.randint(0, 9)}">{words}.</{tag}>\n'
        parts.append(line)
        size += len(line)
    text = "".join(parts) + "</body></html>\n"
    return text.encode().ljust(PAGE_BYTES, b" ")[:PAGE_BYTES]


@dataclass
class Peer:
    name: str
    command: list[str]
    port: int
    cwd: Path
    env: dict[str, str]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def head(port: int, path: str, accept: str | None) -> dict[str, str]:
    """The response fields of one GET (to check what each row measures)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        extra = f"Accept-Encoding: {accept}\r\n" if accept else ""
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: b\r\n{extra}Connection: close\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            more = sock.recv(65536)
            if not more:
                break
            data += more
    lines = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
    return {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}


def start(peer: Peer) -> subprocess.Popen[bytes]:
    log = peer.cwd / f"{peer.name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, *peer.command],
            cwd=peer.cwd,
            env={**os.environ, **peer.env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", peer.port), timeout=1).close()
            return process
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                process.wait()
                text = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{peer.name} did not start:\n{text}") from None
            time.sleep(0.05)


def wrk(
    port: int, pid: int, path: str, accept: str | None, args: argparse.Namespace
) -> dict[str, float]:
    command = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{args.connections}"]
    command += [f"-d{int(args.duration)}s"]
    if accept:
        command += ["-H", f"Accept-Encoding: {accept}"]
    before = cpu_seconds(pid)
    out = subprocess.run(
        [*command, f"http://127.0.0.1:{port}{path}"],
        capture_output=True,
        text=True,
        timeout=args.duration + 60,
    ).stdout
    used = cpu_seconds(pid) - before
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if rps is None or total is None:
        raise RuntimeError(f"unreadable wrk output:\n{out}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors is not None:
        raise RuntimeError(f"{errors.group(1)} errors:\n{out}")
    return {"rps": float(rps.group(1)), "cpu": used / max(int(total.group(1)), 1) * 10_000}


# (row name, peer, path, Accept-Encoding)
Row = tuple[str, str, str, str | None]


def rows(has_baseline: bool) -> list[Row]:
    found: list[Row] = [
        ("localhost, 100 KiB as it is", "localhost", "/page.html", None),
        ("localhost, 100 KiB gzip (cached)", "localhost", "/page.html", "gzip"),
        ("localhost, 100 KiB br (cached)", "localhost", "/page.html", "br"),
        ("localhost, 100 KiB zstd (cached)", "localhost", "/page.html", "zstd"),
        ("nginx, 100 KiB as it is", "nginx", "/page.html", None),
        ("nginx, 100 KiB gzip -1 (each request)", "nginx", "/page.html", "gzip"),
        ("localhost, gzip_static (page.html.gz)", "localhost", "/pre/page.html", "gzip"),
        ("nginx, gzip_static (page.html.gz)", "nginx", "/pre/page.html", "gzip"),
        ("localhost, 1 KiB, compression off", "localhost", "/plain/1k.bin", None),
    ]
    if has_baseline:
        found.append(("baseline, 1 KiB (before compression)", "baseline", "/1k.bin", None))
    return found


def report(
    results: dict[str, list[dict[str, float]]],
    sizes: dict[str, str],
    args: argparse.Namespace,
    loads: tuple[float, float],
) -> str:
    med = {name: statistics.median(r["rps"] for r in runs) for name, runs in results.items()}
    command = f"python bench/compression.py --duration {args.duration:g} --rounds {args.rounds}"
    if args.baseline:
        command += " --baseline CHECKOUT"
    lines = [
        "## Compression (issue 15)",
        "",
        f"Run of {time.strftime('%Y-%m-%d')}: `{command}`; load average (1 min) {loads[0]:.2f} "
        f"at the start, {loads[1]:.2f} at the end (the machine is shared).",
        "",
        f"A 100 KiB HTML page, wrk -t1 -c{args.connections} keep-alive on CPU {LOAD_CPU}, each "
        f"server one process on CPU {SERVER_CPU}; medians of {args.rounds} rounds of "
        f"{args.duration:g} s with [min–max]. localhost answers an encoded request from the "
        "variant kept in its open-file cache (encoded once); nginx's gzip module encodes every "
        "response (it has no cache of encoded variants; `gzip_static` would be its equivalent).",
        "",
        "| row | bytes sent | requests/s | range | CPU s / 10k |",
        "|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        rates = [r["rps"] for r in runs]
        cpu = statistics.median(r["cpu"] for r in runs)
        lines.append(
            f"| {name} | {sizes[name]} | {med[name]:,.0f} | {min(rates):,.0f}–{max(rates):,.0f} "
            f"| {cpu:.2f} |"
        )
    lines.append("")
    if "localhost, 100 KiB as it is" in med:
        plain = med["localhost, 100 KiB as it is"]
        gz = med["localhost, 100 KiB gzip (cached)"]
        ratio = gz / plain if plain else 0.0
        verdict = "met" if ratio >= TARGET else "missed"
        lines.append(
            f"Target: cached gzip'd 100 KiB ≥ {TARGET}× the uncompressed rate: {ratio:.2f}× ({verdict})."
        )
        nginx_gz = med["nginx, 100 KiB gzip -1 (each request)"]
        if nginx_gz:
            lines.append(f"localhost gzip (cached) / nginx gzip: {gz / nginx_gz:.2f}×.")
    if "baseline, 1 KiB (before compression)" in med:
        base = med["baseline, 1 KiB (before compression)"]
        now = med["localhost, 1 KiB, compression off"]
        base_cpu = statistics.median(
            r["cpu"] for r in results["baseline, 1 KiB (before compression)"]
        )
        now_cpu = statistics.median(r["cpu"] for r in results["localhost, 1 KiB, compression off"])
        lines.append(
            f"Hot path, 1 KiB keep-alive in a location without compression: {now:,.0f}/s and "
            f"{now_cpu:.2f} CPU s / 10k, against {base:,.0f}/s and {base_cpu:.2f} before "
            f"({(now / base - 1) * 100:+.1f} % requests/s, {(now_cpu / base_cpu - 1) * 100:+.1f} % CPU)."
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--baseline", type=Path, help="a checkout to compare the 1 KiB hot path with"
    )
    parser.add_argument(
        "--hot-path", action="store_true", help="only the 1 KiB rows (with --baseline)"
    )
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    missing = [tool for tool in ("wrk", "nginx", "taskset") if shutil.which(tool) is None]
    if missing:
        print(f"needs {', '.join(missing)} (Debian packages)", file=sys.stderr)
        return 1
    start_load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        root = tmp / "www"
        (root / "plain").mkdir(parents=True)
        data = page()
        (root / "page.html").write_bytes(data)
        (root / "pre").mkdir()
        (root / "pre" / "page.html").write_bytes(data)
        (root / "pre" / "page.html.gz").write_bytes(gzip.compress(data, 1))
        one_k = random.Random(1).randbytes(1024)
        (root / "1k.bin").write_bytes(one_k)
        (root / "plain" / "1k.bin").write_bytes(one_k)
        peers: dict[str, Peer] = {}
        port = free_port()
        (tmp / "localhost.conf").write_text(LOCALHOST_CONF.format(port=port, root=root))
        peers["localhost"] = Peer(
            "localhost",
            [sys.executable, "-m", "localhost", str(tmp / "localhost.conf")],
            port,
            tmp,
            {"PYTHONPATH": str(REPO)},
        )
        port = free_port()
        (tmp / "nginx.conf").write_text(NGINX_CONF.format(port=port, root=root, tmp=tmp))
        peers["nginx"] = Peer("nginx", ["nginx", "-c", str(tmp / "nginx.conf")], port, tmp, {})
        if args.baseline:
            port = free_port()
            conf = tmp / "baseline.conf"
            # The same configuration without the directives it does not know.
            text = LOCALHOST_CONF.format(port=port, root=root)
            kept = [line for line in text.split("\n") if not COMPRESSION.match(line)]
            conf.write_text("\n".join(kept))
            peers["baseline"] = Peer(
                "baseline",
                [sys.executable, "-m", "localhost", str(conf)],
                port,
                tmp,
                {"PYTHONPATH": str(args.baseline.resolve())},
            )
        processes: dict[str, subprocess.Popen[bytes]] = {}
        try:
            for name, peer in peers.items():
                processes[name] = start(peer)
            table = rows(bool(args.baseline))
            if args.hot_path:
                table = [row for row in table if "1 KiB" in row[0]]
            sizes = {}
            for name, who, path, accept in table:
                fields = head(peers[who].port, path, accept)
                coding = fields.get("content-encoding")
                if coding != accept:
                    raise RuntimeError(f"{name}: Content-Encoding {coding!r}, expected {accept!r}")
                length = fields.get("content-length")
                sizes[name] = f"{int(length):,}" if length else "chunked"
            print(f"gzip -1 of the page: {len(zlib.compress(data, 1)):,} bytes", file=sys.stderr)
            results: dict[str, list[dict[str, float]]] = {name: [] for name, *_ in table}
            for index in range(args.rounds):
                order = table if index % 2 == 0 else list(reversed(table))
                for name, who, path, accept in order:
                    found = wrk(peers[who].port, processes[who].pid, path, accept, args)
                    results[name].append(found)
                    print(f"{name}: {found['rps']:,.0f}/s", file=sys.stderr)
        finally:
            for process in processes.values():
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
    text = report(results, sizes, args, (start_load, os.getloadavg()[0]))
    print(text)
    if args.output is not None:
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
