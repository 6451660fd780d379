"""Memory while a large upload streams in: the server's RSS growth must stay small.

    python bench/upload_rss.py [MiB]      (default 1024: a 1 GiB upload)

Starts the server on a temporary site (loopback, free port), sends one
multipart upload of the given size over a raw socket, samples the server's
resident memory every 50 ms, and reports the peak growth over the idle
baseline, the throughput, and whether the stored file has the right size.
Exits 1 when the growth reaches 32 MiB or the upload fails.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import free_port, rss_kib, running

LIMIT_KIB = 32 * 1024

CONFIG = """
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
            baseline = rss_kib(server.pid)
            peak = baseline
            done = threading.Event()

            def sample() -> None:
                nonlocal peak
                while not done.is_set():
                    peak = max(peak, rss_kib(server.pid))
                    time.sleep(0.05)

            sampler = threading.Thread(target=sample)
            sampler.start()
            size = mib * 1024 * 1024
            opening = (
                b'--BOUNDARY\r\nContent-Disposition: form-data; name="f"; filename="big.bin"\r\n'
                b"Content-Type: application/octet-stream\r\n\r\n"
            )
            closing = b"\r\n--BOUNDARY--\r\n"
            head = (
                f"POST /uploads/ HTTP/1.1\r\nHost: bench\r\n"
                f"Content-Type: multipart/form-data; boundary=BOUNDARY\r\n"
                f"Content-Length: {len(opening) + size + len(closing)}\r\nConnection: close\r\n\r\n"
            ).encode()
            block = os.urandom(1024 * 1024)
            start = time.monotonic()
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(head + opening)
                for _ in range(mib):
                    sock.sendall(block)
                sock.sendall(closing)
                response = sock.recv(4096)
            elapsed = time.monotonic() - start
            done.set()
            sampler.join()
            stored = Path(tmp) / "big.bin"
            ok_file = stored.exists() and stored.stat().st_size == size
            growth = peak - baseline
            print(f"upload: {mib} MiB in {elapsed:.2f} s ({mib / elapsed:.0f} MiB/s)")
            status = response.split(b"\r\n", 1)[0].decode()
            print(f"status: {status}; stored size ok: {ok_file}")
            print(
                f"RSS: baseline {baseline} KiB, peak {peak} KiB, "
                f"growth {growth} KiB (limit {LIMIT_KIB})"
            )
            ok = ok_file and growth < LIMIT_KIB and response.startswith(b"HTTP/1.1 201")
            print("ok" if ok else "FAILED")
            return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
