"""Availability and resource soak: siege against the demo site, bounded.

Starts the server on the bundled demo site (on a free loopback port), records
its resident memory and open descriptors, runs ``siege -b -c 25 -r 200``
against ``/`` (ROUNDS times), and checks that availability is 100% and that
memory and descriptors are back to their baseline afterwards.

    python bench/soak.py [ROUNDS]

Needs ``siege`` (Debian package ``siege``). Exits 1 when a check fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, free_port, rss_kib, running


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    if shutil.which("siege") is None:
        print("needs siege: apt-get install siege", file=sys.stderr)
        return 2
    port = free_port()
    text = (REPO / "config.conf").read_text()
    text = text.replace("port 8080 8081", f"port {port}").replace("port 8080", f"port {port}")
    text = text.replace("./", f"{REPO}/")
    # Its own run must not take over the demo's pid file.
    text = "\n".join(line for line in text.splitlines() if not line.startswith("pid "))
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "soak.conf"
        config.write_text(text)
        with running(config, port) as server:
            base_rss, base_fds = rss_kib(server.pid), fds(server.pid)
            print(f"baseline: RSS {base_rss} KiB, {base_fds} descriptors")
            ok = True
            count = base_fds
            for index in range(rounds):
                result = subprocess.run(
                    ["siege", "-b", "-c", "25", "-r", "200", "-j", f"http://127.0.0.1:{port}/"],
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
                report = json.loads(result.stdout[result.stdout.index("{") :])
                time.sleep(0.5)
                rss, count = rss_kib(server.pid), fds(server.pid)
                print(
                    f"round {index + 1}: {report['transactions']} transactions, "
                    f"availability {report['availability']}%, "
                    f"{report['transaction_rate']} trans/s, RSS {rss} KiB, {count} descriptors"
                )
                ok &= report["availability"] == 100 and report["failed_transactions"] == 0
            ok &= count == base_fds and rss - base_rss < 2048
            print(
                "ok" if ok else "FAILED: availability below 100% or resources not back to baseline"
            )
            return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
