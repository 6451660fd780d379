"""Memory while a large upload streams in: the server's RSS growth must stay small.

    python bench/upload_rss.py [MiB]      (default 1024: a 1 GiB upload)

Starts the server on a temporary site (loopback, free port), sends one
multipart upload of the given size over a raw socket, samples the server's
resident memory every 50 ms, and reports the peak growth over the idle
baseline, the throughput, and whether the stored file has the right size.
Exits 1 when the growth reaches 32 MiB or the upload fails.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from common import free_port, measure_upload, running

LIMIT_KIB = 32 * 1024

CONFIG = """
access_log off
server {{
    host 127.0.0.1
    port {port}
    root {root}
    location /uploads {{
        root {root}
        methods GET POST
        body_limit 0
    }}
}}
"""


def main() -> int:
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        config = Path(tmp) / "bench.conf"
        config.write_text(CONFIG.format(port=port, root=tmp))
        with running(config, port) as server:
            result = measure_upload(port, server.pid, mib, "big.bin")
        stored = Path(tmp) / "big.bin"
        stored_ok = stored.exists() and stored.stat().st_size == mib * 1048576
        growth = result["rss_growth_mib"] * 1024
        print(f"upload: {mib} MiB in {result['seconds']:.2f} s ({result['mib_per_s']:.0f} MiB/s)")
        print(f"answered 201: {result['ok']}; stored size ok: {stored_ok}")
        print(f"RSS growth {growth:.0f} KiB (limit {LIMIT_KIB})")
        ok = bool(result["ok"]) and stored_ok and growth < LIMIT_KIB
        print("ok" if ok else "FAILED")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
