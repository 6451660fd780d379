#!/bin/sh
# Bounded stress run on loopback: siege and wrk against the demo site.
#
#   sh bench/stress.sh            (about a minute; needs siege and wrk)
#
# Starts the server on the bundled demo site on a free port, runs each load
# for a fixed time or count, and prints a summary with the server's open
# descriptors and resident memory before and after. Kills only the server it
# started.
set -eu
cd "$(dirname "$0")/.."
for tool in siege wrk python3; do
    command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install siege wrk)" >&2; exit 2; }
done
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
sed -e "/^pid /d" -e "s|port 8080 8081|port $port|" -e "s|port 8080|port $port|" -e "s|\./|$PWD/|g" \
    -e "s|^client_header_timeout.*|worker_connections 4096|" config.conf > "$dir/stress.conf"
python3 -m localhost "$dir/stress.conf" >"$dir/access.log" 2>"$dir/server.log" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
i=0
until python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null; do
    i=$((i + 1)); [ "$i" -lt 100 ] || { echo "server did not start" >&2; exit 1; }; sleep 0.1
done
base="http://127.0.0.1:$port"
state() { echo "descriptors $(ls /proc/$pid/fd | wc -l), RSS $(awk '/VmRSS/ {print $2 " " $3}' /proc/$pid/status)"; }
siege_summary() {
    python3 -c '
import json, sys
text = sys.stdin.read()
r = json.loads(text[text.index("{"):])
print("  transactions %(transactions)s, availability %(availability)s%%, failed %(failed_transactions)s, "
      "%(transaction_rate)s trans/s, longest %(longest_transaction)s s" % r)'
}
# siege 4.0.x can deadlock at the end of a timed (-t) run (JoeDog/siege#4):
# counted runs (-r) only, each with a hard bound.
siege_bounded() { timeout -s KILL 120 siege "$@"; }
wrk_summary() { awk '/Requests\/sec|Non-2xx|Socket errors|Latency/ {$1=$1; print "  " $0}'; }

echo "server: pid $pid on $base; before: $(state)"
echo "\$ siege -b -c 25 -r 200 $base/"
siege_bounded -b -c 25 -r 200 "$base/" 2>&1 | siege_summary
echo "\$ siege -b -c 100 -r 400 $base/files/readme.txt"
siege_bounded -b -c 100 -r 400 "$base/files/readme.txt" 2>&1 | siege_summary
echo "\$ siege -b -c 10 -r 50 $base/cgi-bin/hello.py"
siege_bounded -b -c 10 -r 50 "$base/cgi-bin/hello.py" 2>&1 | siege_summary
echo "\$ wrk -t2 -c256 -d10s $base/"
wrk -t2 -c256 -d10s "$base/" | wrk_summary
echo "\$ wrk -t2 -c64 -d10s -H 'Connection: close' $base/"
wrk -t2 -c64 -d10s -H 'Connection: close' "$base/" | wrk_summary
echo "\$ wrk -t2 -c1000 -d10s $base/nope"
wrk -t2 -c1000 -d10s "$base/nope" | wrk_summary
sleep 1
echo "after: $(state)"
