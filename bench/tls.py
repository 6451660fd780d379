"""HTTPS: localhost vs nginx vs uvicorn over TLS (issue 15).

    python bench/tls.py [--duration 5] [--rounds 3] [--output docs/benchmarks.md]
    python bench/run.py --tls ...            (the same)

Three rows per server, each a ``wrk`` run pinned to CPU 1 against a server of
one process pinned to CPU 0, all with the same certificate (ECDSA P-256, made
at run time with ``trustme``) and the same protocols (TLS 1.2 and 1.3, so
that ``wrk`` negotiates 1.3 with each; the report names what each chose):

- *1 KiB keep-alive*: ``wrk -t1 -c32`` on a 1 KiB file (requests/s);
- *new connection per request*: the same with ``Connection: close``, so that
  every request pays a full handshake (handshakes/s);
- *10 MiB download*: ``wrk -t1 -c4`` on a 10 MiB file (MiB/s).

localhost serves the files (no access log); nginx 1 worker with ``sendfile``
and no access log; uvicorn (``--ssl-keyfile/--ssl-certfile``) an ASGI app
that answers the same bytes from memory. Reported: medians of the rounds
with [min–max], and the server's CPU seconds per 1,000 requests. The
machine is shared: the load average is printed, and the ratios compare
servers within one run (rounds alternate the order of the servers).
``--output`` rewrites only the "HTTPS (issue 15)" section of that file.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import ssl
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
SECTION = "## HTTPS (issue 15)"
MIB = 1024 * 1024

LOCALHOST_CONF = """
worker_processes 1
error_log stderr warn
server {{
    listen 127.0.0.1:{port} ssl
    ssl_certificate {tmp}/cert.pem
    ssl_certificate_key {tmp}/key.pem
    root {root}
    access_log off
    keepalive_requests 100000000
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
    sendfile on;
    keepalive_requests 100000000;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {tmp}/cert.pem;
        ssl_certificate_key {tmp}/key.pem;
        # The protocols localhost accepts: nginx before 1.23.4 leaves
        # TLS 1.3 out by default, and a TLS 1.2 handshake is cheaper.
        ssl_protocols TLSv1.2 TLSv1.3;
        root {root};
    }}
}}
"""

ASGI_APP = """
SMALL = b"x" * 1024
BIG = open("www/10m.bin", "rb").read()

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = BIG if scope["path"] == "/10m.bin" else SMALL
    headers = [(b"content-type", b"application/octet-stream"),
               (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
"""

#: (row, path, connections, extra wrk arguments)
ROWS: list[tuple[str, str, int, list[str]]] = [
    ("1 KiB keep-alive", "/1k.bin", 32, []),
    ("new connection per request", "/1k.bin", 32, ["-H", "Connection: close"]),
    ("10 MiB download", "/10m.bin", 4, []),
]


@dataclass
class Peer:
    name: str
    command: list[str]
    port: int


def make_site(tmp: Path) -> None:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(tmp / "key.pem"))
    (tmp / "cert.pem").write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    root = tmp / "www"
    root.mkdir()
    (root / "1k.bin").write_bytes(b"x" * 1024)
    (root / "10m.bin").write_bytes(os.urandom(10 * MIB))
    (tmp / "asgitls.py").write_text(ASGI_APP)


def peers(tmp: Path) -> list[Peer]:
    root = tmp / "www"
    found = []
    port = free_port()
    (tmp / "tls.conf").write_text(LOCALHOST_CONF.format(port=port, root=root, tmp=tmp))
    found.append(
        Peer("localhost", [sys.executable, "-m", "localhost", str(tmp / "tls.conf")], port)
    )
    if shutil.which("nginx") or Path("/usr/sbin/nginx").exists():
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        port = free_port()
        (tmp / "nginx.conf").write_text(NGINX_CONF.format(port=port, root=root, tmp=tmp))
        found.append(Peer("nginx", [nginx, "-c", str(tmp / "nginx.conf"), "-p", str(tmp)], port))
    port = free_port()
    uvicorn = [
        sys.executable, "-m", "uvicorn", "asgitls:app", "--port", str(port),
        "--ssl-keyfile", str(tmp / "key.pem"), "--ssl-certfile", str(tmp / "cert.pem"),
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    found.append(Peer("uvicorn", uvicorn, port))
    return found


def wrk(
    port: int, path: str, connections: int, extra: list[str], duration: int
) -> tuple[float, int]:
    """Requests per second and errors of one wrk run."""
    result = subprocess.run(
        ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{duration}s", *extra,
         f"https://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, timeout=duration + 60, check=False,
    )  # fmt: skip
    rate = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", result.stdout))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", result.stdout)
    errors += int(non2xx.group(1)) if non2xx else 0
    return (float(rate.group(1)) if rate else 0.0), errors


#: The TLS version each server chose for a client offering 1.2 and 1.3.
NEGOTIATED: dict[str, str] = {}


def negotiated(port: int) -> str:
    """The protocol version a server picks for a client that offers TLS 1.2 and 1.3."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw) as tls,
    ):
        return tls.version() or "?"


def measure(peer: Peer, tmp: Path, duration: int) -> dict[str, tuple[float, int, float]]:
    """For each row: (rate, errors, CPU seconds per 1,000 requests)."""
    process = subprocess.Popen(
        ["taskset", "-c", SERVER_CPU, *peer.command],
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", peer.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"{peer.name} did not start") from None
                time.sleep(0.1)
        time.sleep(0.5)
        NEGOTIATED[peer.name] = negotiated(peer.port)
        pids = family(process.pid)
        found = {}
        for row, path, connections, extra in ROWS:
            before = cpu_seconds(pids)
            rate, errors = wrk(peer.port, path, connections, extra, duration)
            used = cpu_seconds(pids) - before
            requests = rate * duration
            found[row] = (rate, errors, used / requests * 1000 if requests else 0.0)
        return found
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def report(
    results: dict[str, list[dict[str, tuple[float, int, float]]]], args: argparse.Namespace
) -> str:
    load = os.getloadavg()
    lines = [
        SECTION,
        "",
        f"Run of {time.strftime('%Y-%m-%d')}: `python bench/run.py --tls --duration {args.duration} "
        f"--rounds {args.rounds}`; load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} "
        f"(1/5/15 min) at the end, on {os.cpu_count()} CPUs shared with other work: compare the "
        "ratios, which come from one run.",
        "",
        f"Each server one process pinned to CPU {SERVER_CPU}, `wrk -t1` pinned to CPU {LOAD_CPU}, "
        f"{args.duration} s per run, the same ECDSA P-256 certificate, each server accepting "
        "TLS 1.2 and 1.3 (negotiated with a client offering both: "
        + ", ".join(f"{name} {version}" for name, version in NEGOTIATED.items())
        + "); medians of "
        f"{args.rounds} rounds with [min–max]. Keep-alive: `-c32` on a 1 KiB file; new connection "
        "per request: the same with `Connection: close` (a full handshake per request: "
        "handshakes/s); 10 MiB: `-c4`, in MiB/s. localhost reads files in 64 KiB chunks "
        "(no kernel TLS here, see the error log line), nginx uses `sendfile` into OpenSSL, "
        "uvicorn answers from memory.",
        "",
        "| row | server | rate | range | errors | CPU s / 1k requests |",
        "|---|---|---|---|---|---|",
    ]
    medians: dict[tuple[str, str], float] = {}
    for row, _, _, _ in ROWS:
        scale = 10.0 if row.startswith("10 MiB") else 1.0
        unit = " MiB/s" if scale != 1.0 else "/s"
        for name, runs in results.items():
            rates = [run[row][0] * scale for run in runs]
            medians[(row, name)] = statistics.median(rates)
            cpu = statistics.median(run[row][2] for run in runs)
            errors = max(run[row][1] for run in runs)
            lines.append(
                f"| {row} | {name} | {medians[(row, name)]:,.0f}{unit} | "
                f"{min(rates):,.0f}–{max(rates):,.0f} | {errors} | {cpu:.3f} |"
            )
    lines.append("")
    goals = (
        ("1 KiB keep-alive", "uvicorn", 1.2),
        ("1 KiB keep-alive", "nginx", 0.5),
        ("new connection per request", "nginx", 0.7),
        ("new connection per request", "uvicorn", 1.0),
        ("10 MiB download", "nginx", 0.0),
        ("10 MiB download", "uvicorn", 0.0),
    )
    for row, peer, goal in goals:
        ours, theirs = medians.get((row, "localhost"), 0.0), medians.get((row, peer), 0.0)
        if theirs:
            ratio = ours / theirs
            target = f" (target ≥ {goal}×: {'met' if ratio >= goal else 'missed'})" if goal else ""
            lines.append(f"- {row}: localhost ÷ {peer} = {ratio:.2f}×{target}")
    lines.append("")
    return "\n".join(lines)


def write_section(path: Path, text: str) -> None:
    """Replace the ``SECTION`` of ``path`` (up to the next ``## ``) with ``text``, or append it."""
    old = path.read_text() if path.exists() else ""
    start = old.find(SECTION + "\n")
    if start < 0:
        path.write_text(old.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n")
        return
    end = old.find("\n## ", start + len(SECTION))
    rest = old[end + 1 :] if end >= 0 else ""
    path.write_text(old[:start] + text.rstrip("\n") + "\n" + ("\n" + rest if rest else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--output", type=Path, help="rewrite its HTTPS section (docs/benchmarks.md)"
    )
    args = parser.parse_args(argv)
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            print(f"needs {tool}", file=sys.stderr)
            return 1
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        tmp.chmod(0o755)  # nginx's worker (another user) reads the files below it
        make_site(tmp)
        found = peers(tmp)
        results: dict[str, list[dict[str, tuple[float, int, float]]]] = {p.name: [] for p in found}
        for round_index in range(args.rounds):
            order = found if round_index % 2 == 0 else list(reversed(found))
            for peer in order:
                result = measure(peer, tmp, args.duration)
                results[peer.name].append(result)
                shown = ", ".join(f"{row}: {rate:,.0f}" for row, (rate, _, _) in result.items())
                print(f"{peer.name}: {shown}", file=sys.stderr)
    text = report(results, args)
    print(text)
    if args.output is not None:
        write_section(args.output, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
