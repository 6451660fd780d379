#!/usr/bin/env python3
"""The demo's clock, a program served by ``websocket_exec`` (config.conf, /ws/clock).

It prints the time once a second: each line is a WebSocket text message.
Each message the browser sends arrives as a line on stdin; it answers it.
It exits when stdin closes (the socket closed; the server also kills it).
"""

import sys
import threading
import time

lock = threading.Lock()


def say(line: str) -> None:
    with lock:
        print(line, flush=True)


def tick() -> None:
    while True:
        say(time.strftime("time %H:%M:%S"))
        time.sleep(1.0 - time.time() % 1.0)


threading.Thread(target=tick, daemon=True).start()
for line in sys.stdin:
    say("echo " + line.rstrip("\n")[:200])
