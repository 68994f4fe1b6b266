#!/usr/bin/env bash
# route-lookup across a PostgreSQL restart, on a private PostgreSQL cluster (initdb in a
# temporary directory, so the machine's own server is never touched):
#   1. lookups succeed;
#   2. PostgreSQL stops: lookups fail fast and cleanly (Auth-Status "Temporary
#      authentication failure" with Auth-Wait, within the --db-timeout-ms bound), /healthz
#      says 503, zmprov gets a one-line "database unavailable", route-lookup keeps running;
#   3. PostgreSQL starts again: lookups succeed again without restarting route-lookup.
set -euo pipefail
cd "$(dirname "$0")/.."
source e2e/lib.sh
export RUST_LOG=${RUST_LOG:-warn}

BIN=${BIN:-target/debug}
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
work=$(mktemp -d)
pgdata=$work/pgdata
mkdir -p "$pgdata"
failures=0
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
[ "$(id -u)" = 0 ] && chown -R postgres "$work"
pg_port=$(free_port)
http_port=$(free_port)
grpc_port=$(free_port)

pg_start() {
  as_pg "$pg_bin/pg_ctl" -D "$pgdata" -l "$work/pg.log" -w -t 30 \
    -o "-p $pg_port -k $work -c listen_addresses=127.0.0.1" start >/dev/null
}
pg_stop() {
  as_pg "$pg_bin/pg_ctl" -D "$pgdata" -m fast -w -t 30 stop >/dev/null
}
cleanup() {
  e2e_cleanup
  pg_stop 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

check() {
  local what=$1; shift
  if "$@"; then echo "ok - $what"; else echo "not ok - $what"; failures=$((failures + 1)); fi
}

as_pg "$pg_bin/initdb" -D "$pgdata" -A trust -U postgres >/dev/null
pg_start

token=e2e-token
spawn "$BIN/route-lookup" --database-url "postgres://postgres@127.0.0.1:$pg_port/postgres" \
  --http-listen "127.0.0.1:$http_port" --grpc-listen "127.0.0.1:$grpc_port" \
  --admin-token "$token" --db-timeout-ms 1000 --auth-wait 2
lookup_pid=${E2E_PIDS[-1]}
wait_port 127.0.0.1 "$http_port"
wait_port 127.0.0.1 "$grpc_port"

zmprov() { "$BIN/zmprov" --server "http://127.0.0.1:$grpc_port" --admin-token "$token" "$@"; }
zmprov -f - >/dev/null <<'SEED'
cd example.com
cs mbx1.example.com serviceAddress 127.0.0.1 zimbraServiceEnabled mailbox
ca ann@example.com secret zimbraMailHost mbx1.example.com
SEED

# Prints "<Auth-Status>|<Auth-Wait>|<seconds>" for one lookup of ann.
lookup() {
  local out
  out=$(curl -s -D - -o /dev/null -w 'time=%{time_total}\n' --max-time 10 \
    -H 'Auth-Method: plain' -H 'Auth-User: ann@example.com' -H 'Auth-Pass: secret' \
    -H 'Auth-Protocol: imap' -H 'Auth-Login-Attempt: 1' -H 'Client-IP: 192.0.2.1' \
    "http://127.0.0.1:$http_port/service/extension/nginx-lookup" | tr -d '\r')
  printf '%s|%s|%s\n' \
    "$(sed -n 's/^auth-status: //Ip' <<<"$out")" \
    "$(sed -n 's/^auth-wait: //Ip' <<<"$out")" \
    "$(sed -n 's/^time=//p' <<<"$out")"
}
healthz() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$http_port/healthz"; }
status_is() { [[ "$(lookup)" == "$1|"* ]]; }

check "lookup succeeds with PostgreSQL up" status_is "OK|"
check "/healthz is 200 with PostgreSQL up" test "$(healthz)" = 200

pg_stop
echo "# PostgreSQL stopped"
slowest=0
all_clean=true
for _ in 1 2 3 4 5; do
  r=$(lookup)
  IFS='|' read -r status wait secs <<<"$r"
  [ "$status" = "Temporary authentication failure" ] && [ "$wait" = 2 ] || { all_clean=false; echo "# got: $r"; }
  slowest=$(awk -v a="$slowest" -v b="$secs" 'BEGIN { print (b > a) ? b : a }')
done
check "lookups during the outage fail cleanly (temporary failure + Auth-Wait)" $all_clean
check "lookups during the outage fail fast (slowest ${slowest}s, bound 3s)" awk -v s="$slowest" 'BEGIN { exit !(s < 3) }'
check "/healthz is 503 during the outage" test "$(healthz)" = 503
zmprov_out=$(zmprov gad 2>&1 || true)
check "zmprov reports the outage in one line" test "$zmprov_out" = "ERROR: service.UNAVAILABLE (database unavailable)"
check "route-lookup is still running" kill -0 "$lookup_pid"

pg_start
echo "# PostgreSQL started again"
recovered=false
for _ in $(seq 1 40); do
  if status_is "OK|"; then recovered=true; break; fi
  sleep 0.25
done
check "lookups succeed again without restarting route-lookup" $recovered
check "/healthz is 200 again" test "$(healthz)" = 200
check "zmprov works again" test "$(zmprov gaa)" = "ann@example.com"
check "it is the same route-lookup process" kill -0 "$lookup_pid"

if ((failures)); then
  echo "FAIL: $failures check(s) failed; route-lookup's log is above"
  exit 1
fi
echo "PASS: route-lookup rode out a PostgreSQL restart"
