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
#     (zmprov is a command that runs and exits; there is no process to signal);
#   - the control plane on TLS: route-lookup with --tls-cert/--tls-key (a private CA) serves
#     gRPC and --https-listen over TLS, --http-listen stays plaintext; zmprov, cache-node
#     (--register), mailbox-stub (--directory) and the proxy (--lookup-url https://,
#     --directory) work with --ca, and with another CA each fails with one line naming the
#     certificate problem; SIGHUP reloads route-lookup's certificate on both listeners, a
#     truncated key keeps the previous one.
# Prints "ok - ..." / "not ok - ..." and exits non-zero if any check failed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=e2e/lib.sh
source "$root/e2e/lib.sh"
BIN=${BIN:-$root/target/debug}
started=$SECONDS
need_commands "" openssl curl psql timeout
for b in proxy route-lookup cache-node mailbox-stub zmprov; do
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

# ---- The control plane on TLS -------------------------------------------------------------
# ca NAME: a throwaway CA in $tmp/NAME.{crt,key}.
ca() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=e2e $1" -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
    -keyout "$tmp/$1.key" -out "$tmp/$1.crt" >/dev/null 2>&1 || die "openssl req for the CA $1"
}
# issue: a new key and certificate for localhost and 127.0.0.1, signed by $tmp/ca, in
# $tmp/lookup.{crt,key}, both replaced at once as a renewal hook does.
issue() {
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=localhost" \
    -keyout "$tmp/lookup.key.new" -out "$tmp/lookup.csr" >/dev/null 2>&1 || die "openssl req for route-lookup"
  openssl x509 -req -in "$tmp/lookup.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" -CAcreateserial -days 2 \
    -extfile <(printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n') \
    -out "$tmp/lookup.crt.new" >/dev/null 2>&1 || die "openssl x509 -req for route-lookup"
  mv "$tmp/lookup.key.new" "$tmp/lookup.key"
  mv "$tmp/lookup.crt.new" "$tmp/lookup.crt"
}
# one_line TEXT PATTERN: TEXT is one line and holds the fixed string PATTERN.
one_line() { [[ $(wc -l <<<"$1") == 1 && $1 == *"$2"* ]]; }
ca ca
ca wrong-ca
issue
install -m 600 /dev/null "$tmp/admin-token" && openssl rand -hex 16 >"$tmp/admin-token"
port rl_http
port rl_grpc
port rl_https
spawn_route_lookup "$BIN/route-lookup" "$tmp/route-lookup-tls.log" info --admin-token-file "$tmp/admin-token" \
  --advertise off --tls-cert "$tmp/lookup.crt" --tls-key "$tmp/lookup.key" --https-listen "127.0.0.1:$rl_https"
tls_pid=$rl_pid
wait_route_lookup "route-lookup on TLS" "$tmp/route-lookup-tls.log"
wait_log "route-lookup on TLS" "$tls_pid" "$tmp/route-lookup-tls.log" "listening listener=\"https\" addr=127.0.0.1:$rl_https"
grpc="https://localhost:$rl_grpc"
lookup_url="https://localhost:$rl_https/service/extension/nginx-lookup"
# zm [--ca FILE] ARGS...: zmprov against the TLS gRPC listener, trusting $tmp/ca.crt unless told.
zm() {
  local ca_file=$tmp/ca.crt
  if [[ $1 == --ca ]]; then ca_file=$2; shift 2; fi
  timeout 20 "$BIN/zmprov" --server "$grpc" --ca "$ca_file" --admin-token-file "$tmp/admin-token" "$@"
}
port m2_imap
printf '%s\n' "cd tls.example" \
  "cs mbx9.tls.example serviceAddress 127.0.0.1 zimbraServiceEnabled mailbox zimbraImapBindPort $m2_imap" \
  "ca tia@tls.example tls-pass zimbraMailHost mbx9.tls.example" >"$tmp/seed.zmprov"
capture zm -f "$tmp/seed.zmprov"
that "zmprov --server https:// --ca provisions over TLS (a domain, a server, an account)" "exit $rc: $out" \
  test "$rc" = 0
capture zm --ca "$tmp/wrong-ca.crt" gad
that "zmprov with another CA fails (exit $rc) with one line naming the certificate problem: $out" "$out" \
  bash -c '[[ $1 != 0 ]] && [[ $(wc -l <<<"$2") == 1 && $2 == "ERROR: cannot reach route-lookup at https://"*"invalid peer certificate"* ]]' _ "$rc" "$out"
code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$rl_http/healthz" || true)
that "the plaintext --http-listen still answers /healthz ($code), for stock nginx" "$code" test "$code" = 200
code=$(curl -s --max-time 5 --cacert "$tmp/ca.crt" -o /dev/null -w '%{http_code}' "https://localhost:$rl_https/healthz" || true)
that "--https-listen answers /healthz over TLS, verified against the CA ($code)" "$code" test "$code" = 200

# cache-node --register https://
port c2_port
RUST_LOG=info NO_COLOR=1 spawn "$BIN/cache-node" --listen "127.0.0.1:$c2_port" --admin-listen off \
  --register "$grpc" --ca "$tmp/ca.crt" --admin-token-file "$tmp/admin-token" --advertise "127.0.0.1:$c2_port" 2>"$tmp/cache-node-tls.log"
port c3_port
RUST_LOG=info NO_COLOR=1 spawn "$BIN/cache-node" --listen "127.0.0.1:$c3_port" --admin-listen off \
  --register "$grpc" --ca "$tmp/wrong-ca.crt" --admin-token-file "$tmp/admin-token" --advertise "127.0.0.1:$c3_port" 2>"$tmp/cache-node-wrong.log"
c3_pid=${E2E_PIDS[-1]}
listed=""
for _ in $(seq 1 100); do
  listed=$(zm gamcs 2>&1 || true)
  [[ $listed == *"127.0.0.1:$c2_port"* ]] && break
  sleep 0.1
done
that "cache-node --register https:// --ca registers over TLS (gamcs: $listed)" "$listed" \
  bash -c '[[ $1 == *"127.0.0.1:$2"* && $1 != *"127.0.0.1:$3"* ]]' _ "$listed" "$c2_port" "$c3_port"
wait_log "cache-node with another CA" "$c3_pid" "$tmp/cache-node-wrong.log" "registration failed"
err=$(grep -m1 'registration failed' "$tmp/cache-node-wrong.log")
that "cache-node with another CA logs one line naming the certificate problem (${err##*error=})" "$err" \
  one_line "$err" "invalid peer certificate"

# mailbox-stub --directory https://
RUST_LOG=info NO_COLOR=1 spawn "$BIN/mailbox-stub" --hostname mbx9.tls.example --imap-listen "127.0.0.1:$m2_imap" \
  --pop3-listen off --imaps-listen off --pop3s-listen off --directory "$grpc" --ca "$tmp/ca.crt" \
  --admin-token-file "$tmp/admin-token" --trusted-proxies 127.0.0.1 2>"$tmp/mailbox-stub-tls.log"
port m3_imap
RUST_LOG=info NO_COLOR=1 spawn "$BIN/mailbox-stub" --hostname mbx9.tls.example --imap-listen "127.0.0.1:$m3_imap" \
  --pop3-listen off --imaps-listen off --pop3s-listen off --directory "$grpc" --ca "$tmp/wrong-ca.crt" \
  --admin-token-file "$tmp/admin-token" 2>"$tmp/mailbox-stub-wrong.log"
m3_pid=${E2E_PIDS[-1]}
wait_port 127.0.0.1 "$m2_imap" || die "mailbox-stub on TLS starts"
wait_port 127.0.0.1 "$m3_imap" || die "mailbox-stub with another CA starts"
capture curl -s --max-time 10 -u tia@tls.example:tls-pass "imap://127.0.0.1:$m2_imap/INBOX;UID=1"
that "mailbox-stub --directory https:// --ca checks the password over TLS (login and fetch)" "exit $rc: $out" \
  bash -c '[[ $1 == 0 && $2 == *mbx9.tls.example* ]]' _ "$rc" "$out"
capture curl -s --max-time 10 -u tia@tls.example:tls-pass "imap://127.0.0.1:$m3_imap/INBOX;UID=1"
wait_log "mailbox-stub with another CA" "$m3_pid" "$tmp/mailbox-stub-wrong.log" "directory unavailable"
err=$(grep -m1 'directory unavailable' "$tmp/mailbox-stub-wrong.log")
that "mailbox-stub with another CA refuses the login (curl exit $rc) and logs one line naming the certificate problem (${err##*error=})" "$err" \
  bash -c '[[ $1 != 0 ]] && [[ $(wc -l <<<"$2") == 1 && $2 == *"invalid peer certificate"* ]]' _ "$rc" "$err"

# The proxy: --lookup-url https:// and --directory https:// with --ca.
# tls_proxy NAME CA: a proxy on TLS to route-lookup trusting CA; sets tp_imap and tp_pid.
tls_proxy() {
  port tp_imap
  RUST_LOG=info NO_COLOR=1 spawn "$BIN/proxy" --imap-listen "127.0.0.1:$tp_imap" --imaps-listen off --pop3-listen off \
    --pop3s-listen off --admin-listen off --starttls off --lookup-url "$lookup_url" --directory "$grpc" --ca "$2" \
    --admin-token-file "$tmp/admin-token" --lookup-retry-ms 0 2>"$tmp/$1.log"
  tp_pid=${E2E_PIDS[-1]}
  wait_port 127.0.0.1 "$tp_imap" || die "the $1 proxy starts"
}
tls_proxy proxy-tls "$tmp/ca.crt"
wait_log "the proxy on TLS" "$tp_pid" "$tmp/proxy-tls.log" "membership revision="
ok "the proxy follows the membership watch over --directory https:// with --ca"
capture curl -s --max-time 10 -u tia@tls.example:tls-pass "imap://127.0.0.1:$tp_imap/INBOX;UID=1"
that "a login through the proxy, looked up over --lookup-url https://, reaches mbx9" "exit $rc: $out" \
  bash -c '[[ $1 == 0 && $2 == *mbx9.tls.example* ]]' _ "$rc" "$out"
tls_proxy proxy-wrong "$tmp/wrong-ca.crt"
capture curl -s --max-time 10 -u tia@tls.example:tls-pass "imap://127.0.0.1:$tp_imap/INBOX;UID=1"
wait_log "the proxy with another CA" "$tp_pid" "$tmp/proxy-wrong.log" "membership watch failed"
lerr=$(grep -m1 'lookup handler failed' "$tmp/proxy-wrong.log" || true)
werr=$(grep -m1 'membership watch failed' "$tmp/proxy-wrong.log")
that "the proxy with another CA refuses the login (curl exit $rc) and logs one line each naming the certificate problem (lookup: ${lerr##*error=}; watch: ${werr##*error=})" "$lerr
$werr" bash -c '[[ $1 != 0 ]] && [[ $2 == *"invalid peer certificate"* && $3 == *"invalid peer certificate"* ]]' _ "$rc" "$lerr" "$werr"

# SIGHUP reloads route-lookup's certificate on both TLS listeners.
before=$(fingerprint "$tmp/lookup.crt")
a=$(presented "$rl_https" localhost)
b=$(presented "$rl_grpc" localhost)
that "route-lookup presents its certificate on --https-listen and gRPC" "https=$a grpc=$b want=$before" \
  test "$a" = "$before" -a "$b" = "$before"
issue
renewed=$(fingerprint "$tmp/lookup.crt")
kill -HUP "$tls_pid"
wait_log "route-lookup reloads" "$tls_pid" "$tmp/route-lookup-tls.log" "certificates reloaded"
a=$(presented "$rl_https" localhost)
b=$(presented "$rl_grpc" localhost)
that "after SIGHUP route-lookup presents the renewed certificate on both" "https=$a grpc=$b want=$renewed (was $before)" \
  test "$a" = "$renewed" -a "$b" = "$renewed" -a "$renewed" != "$before"
capture zm gad
that "zmprov still works over TLS after the reload" "exit $rc: $out" bash -c '[[ $1 == 0 && $2 == *tls.example* ]]' _ "$rc" "$out"
printf -- '-----BEGIN PRIVATE KEY-----\nMIIE\n' >"$tmp/lookup.key"
kill -HUP "$tls_pid"
wait_log "route-lookup refuses the broken key" "$tls_pid" "$tmp/route-lookup-tls.log" "certificate reload failed"
a=$(presented "$rl_https" localhost)
b=$(presented "$rl_grpc" localhost)
err=$(grep 'certificate reload failed' "$tmp/route-lookup-tls.log" | tail -n 1)
that "a truncated key: route-lookup keeps the renewed certificate and logs one line naming the file (${err##*error=})" \
  "https=$a grpc=$b want=$renewed; $err" \
  bash -c '[[ $1 == "$3" && $2 == "$3" && $(grep -c "certificate reload failed" "$5") == 1 && $4 == *lookup.key* ]]' _ "$a" "$b" "$renewed" "$err" "$tmp/route-lookup-tls.log"
metrics=$(curl -s --max-time 5 --cacert "$tmp/ca.crt" "https://localhost:$rl_https/metrics" || true)
that "route-lookup's /metrics counts the reloads (1 ok, 1 failed) and shows the certificate's expiry" "$(grep route_lookup_tls <<<"$metrics")" \
  bash -c 'grep -q "^route_lookup_tls_reloads_total{result=\"ok\"} 1$" <<<"$1" && grep -q "^route_lookup_tls_reloads_total{result=\"failed\"} 1$" <<<"$1" &&
    grep -q "^route_lookup_tls_certificate_expiry_seconds{cert=" <<<"$1"' _ "$metrics"

summary "certificates and SIGHUP" "($((SECONDS - started)) s)"
