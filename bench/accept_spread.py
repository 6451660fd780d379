"""How evenly do workers share incoming connections? EPOLLEXCLUSIVE vs SO_REUSEPORT.

    python bench/accept_spread.py [WORKERS] [CONNECTIONS]

Forks WORKERS minimal accept loops (each: epoll, accept, answer a fixed
response, close) in two modes — one shared listening socket watched with
EPOLLEXCLUSIVE (what the master does), and one SO_REUSEPORT socket per
worker — then opens CONNECTIONS connections, first one at a time and then
32 at once, and prints how many each worker accepted. Loopback only.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import statistics
import sys
import threading
import time

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def serve(listener: socket.socket, exclusive: bool, out: int) -> None:
    epoll = select.epoll()
    epoll.register(listener.fileno(), select.EPOLLIN | (select.EPOLLEXCLUSIVE if exclusive else 0))
    accepted = 0
    signal.signal(signal.SIGTERM, lambda *_: (os.write(out, b"%d\n" % accepted), os._exit(0)))
    while True:
        for _fd, _mask in epoll.poll():
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                continue
            accepted += 1
            conn.setblocking(True)
            conn.recv(4096)
            conn.sendall(RESPONSE)
            conn.close()


def listener(port: int, reuseport: bool) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuseport:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(511)
    sock.setblocking(False)
    return sock


def client(port: int, count: int) -> None:
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            while sock.recv(4096):
                pass


def run(mode: str, workers: int, connections: int, concurrency: int) -> list[int]:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    shared = listener(port, False) if mode == "exclusive" else None
    pids, pipes = [], []
    for _ in range(workers):
        sock = shared if shared is not None else listener(port, True)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            serve(sock, mode == "exclusive", write)
        pids.append(pid)
        pipes.append(read)
        if shared is None:
            sock.close()
    time.sleep(0.3)
    threads = [
        threading.Thread(target=client, args=(port, connections // concurrency))
        for _ in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts = []
    for pid, read in zip(pids, pipes, strict=True):
        os.kill(pid, signal.SIGTERM)
        counts.append(int(os.read(read, 64) or b"0"))
        os.waitpid(pid, 0)
    if shared is not None:
        shared.close()
    return counts


def main() -> None:
    workers = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    connections = int(sys.argv[2]) if len(sys.argv) > 2 else 4000
    for mode in ("exclusive", "reuseport"):
        for concurrency in (1, 32):
            counts = run(mode, workers, connections, concurrency)
            spread = statistics.pstdev(counts) / statistics.mean(counts) if any(counts) else 0
            print(
                f"{mode:9} concurrency {concurrency:2}: per worker {counts}, "
                f"coefficient of variation {spread:.2f}"
            )


if __name__ == "__main__":
    main()
