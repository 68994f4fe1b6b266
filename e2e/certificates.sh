#!/usr/bin/env bash
# Certificates and SIGHUP, with real binaries and openssl s_client:
#   - the proxy with two --tls-cert/--tls-key pairs: `openssl s_client -servername` gets
#     each pair's certificate on IMAPS and after STARTTLS (IMAP) and STLS (POP3); no SNI and
#     an unknown name get the first;
#   - reload: with a TLS session open, the second pair's files are replaced and the proxy
#     gets SIGHUP: a new handshake shows the new certificate, the open session still answers;
#     a truncated key keeps the previous certificate and logs one clear error; the reload
#     counters and the certificates' expiry are in /metrics;
#   - SIGHUP to route-lookup, cache-node and mailbox-stub leaves each running and serving
#     (zmprov is a command that runs and exits; there is no process to signal).
# Prints "ok - ..." / "not ok - ..." and exits non-zero if any check failed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=e2e/lib.sh
source "$root/e2e/lib.sh"
BIN=${BIN:-$root/target/debug}
started=$SECONDS
need_commands "" openssl curl psql timeout
for b in proxy route-lookup cache-node mailbox-stub; do
  [[ -x $BIN/$b ]] || die "the $b binary" "no $BIN/$b (cargo build)"
done
scratch_dir e2e-certificates
log_tails() { tail_logs 10 0 "$tmp"/*.log; }
# that DESCRIPTION EVIDENCE COMMAND...: ok when COMMAND succeeds, else not ok with EVIDENCE.
that() {
  local desc=$1 evidence=$2
  shift 2
  if "$@"; then ok "$desc"; else not_ok "$desc" "$evidence"; fi
}

# cert NAME HOST: a throwaway P-256 pair for HOST in $tmp/NAME.{crt,key}.
cert() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=$2" -addext "subjectAltName=DNS:$2" -keyout "$tmp/$1.key.new" -out "$tmp/$1.crt.new" \
    >/dev/null 2>&1 || die "openssl req for $2"
  # Replace both files at once, as a renewal hook does (rename is atomic).
  mv "$tmp/$1.key.new" "$tmp/$1.key"
  mv "$tmp/$1.crt.new" "$tmp/$1.crt"
}
fingerprint() { openssl x509 -noout -fingerprint -sha256 -in "$1" | cut -d= -f2; }
# presented PORT [SERVERNAME] [STARTTLS-PROTO]: the fingerprint of what the server presents.
presented() {
  local args=(-connect "127.0.0.1:$1")
  [[ -n ${2:-} ]] && args+=(-servername "$2") || args+=(-noservername)
  [[ -n ${3:-} ]] && args+=(-starttls "$3")
  timeout 10 openssl s_client "${args[@]}" </dev/null 2>/dev/null |
    openssl x509 -noout -fingerprint -sha256 2>/dev/null | cut -d= -f2
}

cert first mail.example.com
cert second imap.example.net
port p_imap
port p_imaps
port p_pop3
port p_admin
port dead
RUST_LOG=info spawn "$BIN/proxy" --imap-listen "127.0.0.1:$p_imap" --imaps-listen "127.0.0.1:$p_imaps" \
  --pop3-listen "127.0.0.1:$p_pop3" --pop3s-listen off --admin-listen "127.0.0.1:$p_admin" \
  --tls-cert "$tmp/first.crt" --tls-key "$tmp/first.key" --tls-cert "$tmp/second.crt" --tls-key "$tmp/second.key" \
  --starttls on --lookup-url "http://127.0.0.1:$dead/" 2>"$tmp/proxy.log"
proxy_pid=${E2E_PIDS[-1]}
wait_port 127.0.0.1 "$p_admin" || die "the proxy starts" "$(tail -n 5 "$tmp/proxy.log")"

first=$(fingerprint "$tmp/first.crt")
second=$(fingerprint "$tmp/second.crt")
for l in "imaps:$p_imaps:" "imap STARTTLS:$p_imap:imap" "pop3 STLS:$p_pop3:pop3"; do
  IFS=: read -r name p proto <<<"$l"
  a=$(presented "$p" mail.example.com "$proto")
  b=$(presented "$p" imap.example.net "$proto")
  none=$(presented "$p" "" "$proto")
  other=$(presented "$p" other.example.org "$proto")
  that "$name: SNI mail.example.com gets the first certificate, imap.example.net the second, no SNI and an unknown name the first" \
    "a=$a b=$b none=$none other=$other (first=$first second=$second)" \
    test "$a" = "$first" -a "$b" = "$second" -a "$none" = "$first" -a "$other" = "$first"
done

# An open TLS session across the reload: a pre-auth IMAPS session that answers NOOP.
coproc SESSION { timeout 60 openssl s_client -quiet -connect "127.0.0.1:$p_imaps" -servername imap.example.net 2>/dev/null; }
read -r -t 10 greeting <&"${SESSION[0]}" || greeting=""
cert second imap.example.net
renewed=$(fingerprint "$tmp/second.crt")
kill -HUP "$proxy_pid"
wait_log "the proxy reloads" "$proxy_pid" "$tmp/proxy.log" "certificates reloaded"
now=$(presented "$p_imaps" imap.example.net)
that "after SIGHUP a new handshake for imap.example.net shows the renewed certificate" "$now vs $renewed (was $second)" \
  test -n "$renewed" -a "$now" = "$renewed" -a "$renewed" != "$second"
echo "a NOOP" >&"${SESSION[1]}"
read -r -t 10 answer <&"${SESSION[0]}" || answer=""
that "the session opened before the reload still answers (greeting: ${greeting%$'\r'}; NOOP: ${answer%$'\r'})" "$answer" \
  bash -c '[[ $1 == "a OK NOOP completed"* ]]' _ "$answer"
echo "b LOGOUT" >&"${SESSION[1]}" || true

printf -- '-----BEGIN PRIVATE KEY-----\nMIIE\n' >"$tmp/second.key"
kill -HUP "$proxy_pid"
wait_log "the proxy refuses the broken key" "$proxy_pid" "$tmp/proxy.log" "certificate reload failed"
now=$(presented "$p_imaps" imap.example.net)
that "a truncated key: the proxy keeps serving the renewed certificate" "$now" test "$now" = "$renewed"
err=$(grep 'certificate reload failed' "$tmp/proxy.log" | tail -n 1)
that "the failed reload logs one line naming the file (${err##*error=})" "$err" \
  bash -c '[[ $(grep -c "certificate reload failed" "$2") == 1 && $1 == *second.key* ]]' _ "$err" "$tmp/proxy.log"
metrics=$(curl -s --max-time 5 "http://127.0.0.1:$p_admin/metrics")
that "/metrics counts the reloads (1 ok, 1 failed) and shows both certificates' expiry" "$(grep proxy_tls <<<"$metrics")" \
  bash -c 'grep -q "^proxy_tls_reloads_total{result=\"ok\"} 1$" <<<"$1" && grep -q "^proxy_tls_reloads_total{result=\"failed\"} 1$" <<<"$1" &&
    (( $(grep -c "^proxy_tls_certificate_expiry_seconds{" <<<"$1") == 2 ))' _ "$metrics"
kill -0 "$proxy_pid" 2>/dev/null && ok "the proxy is still running after two SIGHUPs" || not_ok "the proxy is still running after two SIGHUPs"

# SIGHUP to the other servers.
db="e2e_certs_$(date +%s)_$$"
create_db "${PGURL:-postgres://postgres@127.0.0.1:5432}" "$db"
port rl_http
port rl_grpc
spawn_route_lookup "$BIN/route-lookup" "$tmp/route-lookup.log" info --insecure-admin --advertise off
wait_route_lookup "route-lookup" "$tmp/route-lookup.log"
port c_port
RUST_LOG=info spawn "$BIN/cache-node" --listen "127.0.0.1:$c_port" --admin-listen off 2>"$tmp/cache-node.log"
cache_pid=${E2E_PIDS[-1]}
port m_imap
RUST_LOG=info spawn "$BIN/mailbox-stub" --hostname mbx1.example.com --imap-listen "127.0.0.1:$m_imap" \
  --pop3-listen off --imaps-listen off --pop3s-listen off --directory "http://127.0.0.1:$rl_grpc" 2>"$tmp/mailbox-stub.log"
mbx_pid=${E2E_PIDS[-1]}
wait_port 127.0.0.1 "$c_port" || die "cache-node starts"
wait_port 127.0.0.1 "$m_imap" || die "mailbox-stub starts"
for pid in "$rl_pid" "$cache_pid" "$mbx_pid"; do kill -HUP "$pid"; done
sleep 1
healthz=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$rl_http/healthz" || true)
that "route-lookup survives SIGHUP and still answers /healthz ($healthz)" "$healthz" \
  bash -c 'kill -0 "$1" && [[ $2 == 200 ]]' _ "$rl_pid" "$healthz"
stats=$(printf 'version\r\nquit\r\n' | timeout 5 /usr/bin/python3 -c 'import socket,sys; s=socket.create_connection(("127.0.0.1",int(sys.argv[1]))); s.sendall(sys.stdin.buffer.read()); print(s.makefile("rb").read().decode())' "$c_port" || true)
that "cache-node survives SIGHUP and still answers (${stats%%$'\r'*})" "$stats" \
  bash -c 'kill -0 "$1" && [[ $2 == VERSION* ]]' _ "$cache_pid" "$stats"
greet=$(timeout 5 /usr/bin/python3 -c 'import socket,sys; s=socket.create_connection(("127.0.0.1",int(sys.argv[1]))); print(s.makefile("rb").readline().decode())' "$m_imap" || true)
that "mailbox-stub survives SIGHUP and still greets (${greet%%$'\r'*})" "$greet" \
  bash -c 'kill -0 "$1" && [[ $2 == "* OK"* ]]' _ "$mbx_pid" "$greet"

summary "certificates and SIGHUP" "($((SECONDS - started)) s)"
