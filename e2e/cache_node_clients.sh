#!/usr/bin/env bash
# Real memcached clients against the cache-node binary: memccapable's ASCII conformance
# suite, pymemcache (single node and a two-node HashClient), and libmemcached's command
# line tools. Exits non-zero on the first failure.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=e2e/lib.sh
source "$root/e2e/lib.sh"
bin=${CACHE_NODE_BIN:-$root/target/debug/cache-node}
[[ -x $bin ]] || { echo "no cache-node binary at $bin (cargo build -p cache-node)" >&2; exit 1; }
logs=$(mktemp -d)

p1=$(free_port)
p2=$(free_port)
spawn "$bin" --listen "127.0.0.1:$p1" --admin-listen off --memory-limit-mb 64 2>"$logs/node1.log"
spawn "$bin" --listen "127.0.0.1:$p2" --admin-listen off --memory-limit-mb 64 2>"$logs/node2.log"
wait_port 127.0.0.1 "$p1"
wait_port 127.0.0.1 "$p2"

echo "--- memccapable -a (ASCII protocol conformance)"
memccapable -a -h 127.0.0.1 -p "$p1"

echo "--- pymemcache"
/usr/bin/python3 "$root/e2e/pymemcache_interop.py" "127.0.0.1:$p1" "127.0.0.1:$p2"

echo "--- libmemcached tools"
servers="127.0.0.1:$p1,127.0.0.1:$p2"
work=$(mktemp -d)
head -c 200000 /dev/urandom >"$work/blob.bin"
memcflush --servers="$servers"
(cd "$work" && memccp --servers="$servers" blob.bin)
memccat --servers="$servers" --file="$work/back.bin" blob.bin
cmp "$work/blob.bin" "$work/back.bin"
memcstat --servers="$servers" | grep -q "curr_items: 1"
memcrm --servers="$servers" blob.bin
if memccat --servers="$servers" blob.bin >/dev/null 2>&1; then
  echo "memccat found a removed item" >&2
  exit 1
fi
rm -rf "$work"
echo "libmemcached tools: memcflush, memccp, memccat, memcstat, memcrm ok"

echo "--- a binary-protocol client is refused cleanly and the node keeps serving"
if memccapable -b -h 127.0.0.1 -p "$p1" -t 2 >"$logs/binary.out" 2>&1; then
  echo "binary protocol unexpectedly accepted" >&2
  exit 1
fi
memccapable -a -h 127.0.0.1 -p "$p1" -T "ascii version" >/dev/null
grep -q "binary protocol request refused" "$logs/node1.log"
echo "binary refused, text still served"
echo "cache-node client interop: all passed"
