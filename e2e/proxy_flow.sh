#!/usr/bin/env bash
# The whole flow through `proxy`: clients -> proxy -> route cache / route-lookup -> mailbox.
#
# Topology: a fresh PostgreSQL database, route-lookup (--auth-wait 1), two cache-nodes
# (also registered in the directory as memcached servers "localhost" and "127.0.0.1", so
# that route-lookup's purge reaches them), two mailbox-stubs mbx1/mbx2 (plaintext IMAP and
# POP3, --trusted-proxies 127.0.0.1), accounts on both (ann, carl, fay, hal, del on mbx1;
# bob, dora, eve, ivy on mbx2; the alias bobby for bob), and the proxy on IMAP (STARTTLS
# only), IMAPS, POP3 (STLS only), POP3S with a throwaway certificate, --forward-client-ip
# id, --preauth-timeout 2, --retry-interval 1. Then checks:
#   1. every process is up;
#   2. curl on all four listeners (imap:// with STARTTLS --ssl-reqd, imaps://, pop3:// with
#      STLS, pop3s://, an alias) and e2e/proxy_flow.py clients: imaplib (STARTTLS, LOGIN
#      atom + quoted password with spaces, IMAPS, AUTHENTICATE PLAIN, alias, bare name),
#      raw sync literals, LITERAL+, SASL-IR, poplib (STLS, POP3S), POP3 AUTH PLAIN; every
#      mail read carries the account's own X-Mailbox-Host (mbx1 vs mbx2); a password with
#      a DEL byte (0x7f) works through the proxy as it does directly on the mailbox;
#   3. after a first login the route is on exactly one cache node (raw memcached get on
#      both, value 127.0.0.1:<backend port>; IMAP and POP3 keys; the alias key), and the
#      second login does not ask route-lookup (route_lookup_lookups_total{outcome="ok"}
#      stays, proxy_routes_total{source="cache"} grows);
#   4. e2e/proxy_flow.py security: greetings, PRIVACYREQUIRED / LOGINDISABLED / "Use STLS
#      first" before TLS, STARTTLS and STLS command injection, CR/LF/control bytes in user
#      names never reach the cache protocol, a user name with a DEL byte gets the generic
#      refusal, oversized lines, the bad-command cap, the pre-auth timeout;
#   5. failures: a wrong password (the mailbox's own refusal, byte-identical to what the
#      mailbox says directly, reaches the client; the cached route is deleted), an unknown
#      user (route-lookup's generic refusal after its Auth-Wait), route-lookup stopped (a
#      cached user logs in, an uncached one gets the temporary failure promptly; after a
#      restart it logs in), a mailbox-stub stopped (its user gets NO [UNAVAILABLE] /
#      -ERR [SYS/TEMP] promptly) and restarted (it logs in again); after 6.: a cache node
#      killed (users cached on the other node still come from the cache, others and new
#      users log in via route-lookup) and restarted (once the retry interval is over, the
#      proxy caches routes on it again);
#   6. moving: zmprov ma bob -> mbx1 purges bob's routes on both cache nodes and bob's next
#      logins (IMAP, POP3, alias) reach mbx1; eve is moved too, then a stale route to mbx2
#      is put back on her cache node (as if it had missed the purge): within two logins eve
#      reaches mbx1 and no login lands on mbx2 (what each login got is printed);
#   7. client address: both stubs log "client address forwarded" with client=127.0.0.1 for
#      IMAP (ID) and POP3 (XCLIENT), every login through the proxy says forwarded=true, and
#      a client connecting from 127.0.0.2 shows up as client=127.0.0.2 (proxy=127.0.0.1).
# Note: mailbox-stub remembers a good password check (and the account's mail host) for
# --auth-cache-ttl (60 s); that is what lets a cached user log in while route-lookup is
# down, and the reason mbx2 is restarted before the moves (a restart forgets it).
#
# Prints "ok - ..." / "not ok - ..." per check (evidence and log tails on failure) and exits
# non-zero if any failed. Needs: curl openssl psql python3 (stdlib), PostgreSQL on
# 127.0.0.1:5432 with trust auth (PGURL), and the binaries (cargo build -p proxy
# -p mailbox-stub -p route-lookup -p zmprov -p cache-node). KEEP_TMP=1 keeps the temporary
# directory (logs, seed, certificate).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=e2e/lib.sh
source "$root/e2e/lib.sh"
BIN=${BIN:-$root/target/debug}
pg_base=${PGURL:-postgres://postgres@127.0.0.1:5432}
py=/usr/bin/python3
[[ -x $py ]] || py=$(command -v python3)
pyfile=$root/e2e/proxy_flow.py

for b in proxy mailbox-stub route-lookup zmprov cache-node; do
  [[ -x $BIN/$b ]] || {
    echo "no binary at $BIN/$b (cargo build -p proxy -p mailbox-stub -p route-lookup -p zmprov -p cache-node)" >&2
    exit 1
  }
done
need_commands "apt-get install -y curl openssl postgresql-client" curl openssl psql timeout

export PGCONNECT_TIMEOUT=10
scratch_dir proxy-flow # $tmp, removed at exit (lib.sh)
db="e2e_proxy_flow_$(date +%s)_$$"
started=$SECONDS

# ---- reporting (ok, not_ok, die, capture, expect_ok, check: lib.sh) ----------------------

# log_tails (a hook of lib.sh's not_ok and run_checks): the tails of the logs.
log_tails() { tail_logs 8 300 "$tmp"/proxy.log "$tmp"/route-lookup.log "$tmp"/mbx1.log "$tmp"/mbx2.log; }

# that DESCRIPTION EVIDENCE CONDITION...: the condition (a command) holds.
that() {
  local desc=$1 evidence=$2
  shift 2
  if "$@"; then ok "$desc"; else not_ok "$desc" "$evidence"; fi
}

# ---- helpers ----------------------------------------------------------------------------

# stop PID: SIGTERM to one process this script started, wait (bounded), forget it.
stop() {
  local pid=$1 i keep=()
  kill "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for i in "${E2E_PIDS[@]}"; do [[ $i == "$pid" ]] || keep+=("$i"); done
  E2E_PIDS=("${keep[@]}")
}
# port_closed PORT: nothing accepts on 127.0.0.1:PORT.
port_closed() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

c() { curl -sS --max-time 10 --cacert "$tmp/cert.pem" "$@"; }
pyf() {
  timeout 60 "$py" "$pyfile" --imap "$p_imap" --imaps "$p_imaps" --pop3 "$p_pop3" --pop3s "$p_pop3s" \
    --cafile "$tmp/cert.pem" --seed "$tmp/seed.zmp" --memcached "$m1,$m2" "$@"
}
# login LISTENER LOCAL [PASSWORD]: one login through the proxy (or imap-plain:PORT...),
# prints the tool's line ("OK host=... subject=... secs=..." / "NO reply=... secs=..." /
# "ERROR ...").
login() {
  local listener=$1 user=$2
  local pass=${3-${pw[${user%@*}]}}
  [[ $user == *@* ]] || user=$user@example.com
  pyf ${HOW:+--how "$HOW"} ${SRC:+--source "$SRC"} login "$listener" "$user" "$pass" || true
}
# The field of a login line.
host_of() { sed -n 's/^OK host=\([^ ]*\) .*/\1/p' <<<"$1"; }
reply_of() { sed -n 's/^NO reply=\(.*\) secs=[0-9.]*$/\1/p' <<<"$1"; }
secs_of() { sed -n 's/.* secs=\([0-9.]*\)$/\1/p' <<<"$1"; }
# expect_login DESCRIPTION HOST LISTENER LOCAL: the login reads mail on HOST.
expect_login() {
  local desc=$1 want=$2
  shift 2
  local r
  r=$(login "$@")
  if [[ $(host_of "$r") == "$want" ]] && grep -q "subject=Message 1 for .* on $want " <<<"$r"; then
    ok "$desc"
  else
    not_ok "$desc" "wanted mail on $want, got: $r"
  fi
}
# mc_nodes KEY: "<port>=<value>" for each cache node holding KEY (none: empty).
mc_nodes() {
  local key=$1 p v res=()
  for p in "$m1" "$m2"; do
    if [[ -n ${dead_node:-} && $p == "$dead_node" ]]; then continue; fi
    if v=$(pyf mc-get "$p" "$key"); then res+=("$p=$v"); fi
  done
  echo "${res[*]}"
}
metric() {
  curl -s --max-time 5 "$1" | awk -v n="$2" '$1 == n { print $2; found = 1 } END { if (!found) print "missing" }'
}
rl_ok() { metric "http://127.0.0.1:$rl_http/metrics" 'route_lookup_lookups_total{outcome="ok"}'; }
px() { metric "http://127.0.0.1:$p_admin/metrics" "$1"; }
px_cache() { px 'proxy_routes_total{source="cache"}'; }

# ---- setup ------------------------------------------------------------------------------

echo "--- setup (temporary directory $tmp, database $db)"
throwaway_cert "$tmp" -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1"
create_db "$pg_base" "$db"

token=e2e-proxy-$$
for v in rl_http rl_grpc m1 m2 x1_imap x1_pop3 x2_imap x2_pop3 p_imap p_imaps p_pop3 p_pop3s p_admin; do
  port "$v"
done

# start_route_lookup: route-lookup on $rl_http and $rl_grpc (also for its restart); sets rl_pid.
start_route_lookup() {
  spawn_route_lookup "$BIN/route-lookup" "$tmp/route-lookup.log" info --admin-token "$token" --auth-wait 1
}
start_route_lookup
wait_route_lookup route-lookup "$tmp/route-lookup.log"

declare -A pw=(
  [ann]="ann pw 1" [carl]="carl-pw" [fay]="fay pw" [hal]="hal-pw" [del]=$'del\x7fpw'
  [bob]="b0b pass" [dora]="dora pw+" [eve]="eve-pw" [ivy]="ivy pw"
)
declare -A home=(
  [ann]=mbx1 [carl]=mbx1 [fay]=mbx1 [hal]=mbx1 [del]=mbx1 [bob]=mbx2 [dora]=mbx2 [eve]=mbx2 [ivy]=mbx2
)
{
  echo "cd example.com"
  echo "mcf zimbraDefaultDomainName example.com"
  echo "cs mbx1.example.com zimbraServiceEnabled mailbox serviceAddress 127.0.0.1 zimbraImapBindPort $x1_imap zimbraPop3BindPort $x1_pop3"
  echo "cs mbx2.example.com zimbraServiceEnabled mailbox serviceAddress 127.0.0.1 zimbraImapBindPort $x2_imap zimbraPop3BindPort $x2_pop3"
  echo "cs localhost zimbraServiceEnabled memcached zimbraMemcachedBindPort $m1"
  echo "cs 127.0.0.1 zimbraServiceEnabled memcached zimbraMemcachedBindPort $m2"
  for u in ann carl fay hal del bob dora eve ivy; do
    echo "ca $u@example.com \"${pw[$u]}\" zimbraMailHost ${home[$u]}.example.com"
  done
  echo "aaa bob@example.com bobby@example.com"
} >"$tmp/seed.zmp"
zmprov() { timeout 30 "$BIN/zmprov" -s "http://127.0.0.1:$rl_grpc" --admin-token "$token" "$@"; }
capture zmprov -f "$tmp/seed.zmp"
((rc == 0)) || die "seed the directory with zmprov" "$out"
capture zmprov gamcs
[[ $out == *"localhost:$m1"* && $out == *"127.0.0.1:$m2"* ]] || die "zmprov gamcs lists both cache nodes" "$out"

start_cache() { # N PORT
  NO_COLOR=1 spawn "$BIN/cache-node" --listen "127.0.0.1:$2" --admin-listen off 2>>"$tmp/cache$1.log" >&2
  cache_pid[$1]=${E2E_PIDS[-1]}
}
declare -A cache_pid
start_cache 1 "$m1"
start_cache 2 "$m2"

start_stub() { # N
  local n=$1 imap pop3
  if ((n == 1)); then imap=$x1_imap pop3=$x1_pop3; else imap=$x2_imap pop3=$x2_pop3; fi
  NO_COLOR=1 RUST_LOG=info spawn "$BIN/mailbox-stub" --hostname "mbx$n.example.com" \
    --imap-listen "127.0.0.1:$imap" --pop3-listen "127.0.0.1:$pop3" \
    --imaps-listen off --pop3s-listen off --directory "http://127.0.0.1:$rl_grpc" \
    --admin-token "$token" --trusted-proxies 127.0.0.1 --grace-period 1 2>>"$tmp/mbx$n.log" >&2
  stub_pid[$n]=${E2E_PIDS[-1]}
}
declare -A stub_pid
start_stub 1
start_stub 2

RUST_LOG=info spawn "$BIN/proxy" --imap-listen "127.0.0.1:$p_imap" --imaps-listen "127.0.0.1:$p_imaps" \
  --pop3-listen "127.0.0.1:$p_pop3" --pop3s-listen "127.0.0.1:$p_pop3s" \
  --tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem" \
  --lookup-url "http://127.0.0.1:$rl_http/service/extension/nginx-lookup" \
  --memcached "127.0.0.1:$m1,127.0.0.1:$m2" --route-ttl 3600 --admin-listen "127.0.0.1:$p_admin" \
  --forward-client-ip id --preauth-timeout 2 --retry-interval 1 --grace-period 1 2>>"$tmp/proxy.log" >&2
proxy_pid=${E2E_PIDS[-1]}

for p in "$m1" "$m2" "$x1_imap" "$x1_pop3" "$x2_imap" "$x2_pop3" "$p_imap" "$p_imaps" "$p_pop3" "$p_pop3s" "$p_admin"; do
  wait_port 127.0.0.1 "$p" || die "something listens on $p"
done
ok "topology up: PostgreSQL db $db, route-lookup (http $rl_http, grpc $rl_grpc), cache-nodes $m1 $m2, mbx1 (imap $x1_imap, pop3 $x1_pop3), mbx2 (imap $x2_imap, pop3 $x2_pop3), proxy (imap $p_imap, imaps $p_imaps, pop3 $p_pop3, pop3s $p_pop3s, admin $p_admin)"

# ---- 2. clients ---------------------------------------------------------------------------

echo "--- 2. clients through the proxy"
subj() { echo "Subject: Message $1 for $2@example.com on $3.example.com"; }
capture c -v --ssl-reqd -u "ann@example.com:${pw[ann]}" "imap://127.0.0.1:$p_imap/INBOX/;UID=1"
if ((rc == 0)) && grep -q '^> A[0-9]* STARTTLS' <<<"$out" && grep -qx "$(subj 1 ann mbx1)"$'\r' <<<"$out" &&
  grep -qx $'X-Mailbox-Host: mbx1.example.com\r' <<<"$out"; then
  ok "curl imap:// with STARTTLS (--ssl-reqd, certificate verified) as ann: message 1 on mbx1"
else
  not_ok "curl imap:// with STARTTLS (--ssl-reqd, certificate verified) as ann: message 1 on mbx1" "exit $rc: $out"
fi
capture c -u "bob@example.com:${pw[bob]}" "imaps://127.0.0.1:$p_imaps/INBOX/;UID=2"
if ((rc == 0)) && grep -qx "$(subj 2 bob mbx2)"$'\r' <<<"$out" && grep -qx $'X-Mailbox-Host: mbx2.example.com\r' <<<"$out"; then
  ok "curl imaps:// as bob: message 2 on mbx2"
else
  not_ok "curl imaps:// as bob: message 2 on mbx2" "exit $rc: $out"
fi
capture c -v --ssl-reqd -u "dora@example.com:${pw[dora]}" "pop3://127.0.0.1:$p_pop3/1"
if ((rc == 0)) && grep -q '^> STLS' <<<"$out" && grep -qx "$(subj 1 dora mbx2)"$'\r' <<<"$out" &&
  grep -qx $'X-Mailbox-Host: mbx2.example.com\r' <<<"$out"; then
  ok "curl pop3:// with STLS (--ssl-reqd) as dora: RETR 1 on mbx2"
else
  not_ok "curl pop3:// with STLS (--ssl-reqd) as dora: RETR 1 on mbx2" "exit $rc: $out"
fi
capture c -u "ann@example.com:${pw[ann]}" "pop3s://127.0.0.1:$p_pop3s/3"
if ((rc == 0)) && grep -qx "$(subj 3 ann mbx1)"$'\r' <<<"$out" && grep -qx $'X-Mailbox-Host: mbx1.example.com\r' <<<"$out"; then
  ok "curl pop3s:// as ann: RETR 3 on mbx1"
else
  not_ok "curl pop3s:// as ann: RETR 3 on mbx1" "exit $rc: $out"
fi
capture c --ssl-reqd -u "bobby@example.com:${pw[bob]}" "imap://127.0.0.1:$p_imap/INBOX/;UID=1"
if ((rc == 0)) && grep -qx "$(subj 1 bob mbx2)"$'\r' <<<"$out"; then
  ok "curl imap:// with STARTTLS as the alias bobby: bob's message 1 on mbx2"
else
  not_ok "curl imap:// with STARTTLS as the alias bobby: bob's message 1 on mbx2" "exit $rc: $out"
fi

# run_py GROUP [ARGS]: runs a group of checks of proxy_flow.py, shows and counts them.
run_py() { run_checks "proxy_flow.py $1" pyf "$@"; }
run_py clients
direct=$(SRC=127.0.0.3 HOW=literal login "imap-plain:$x1_imap" del)
r_imap=$(HOW=literal login imap del)
r_pop3=$(login pop3s del)
that "a password holding a DEL byte (0x7f, del@example.com): mbx1 itself accepts it ($(host_of "$direct")), and so does the proxy (IMAP LOGIN literals after STARTTLS, POP3S USER/PASS)" \
  "directly to mbx1 (IMAP LOGIN literals): $direct
through the proxy, IMAP LOGIN literals after STARTTLS: $r_imap
through the proxy, POP3S USER/PASS: $r_pop3
the proxy escapes only bytes <= 0x20 and '%' (as nginx does), so Auth-Pass carries a raw 0x7f byte;
route-lookup answers that request (sent by hand) with: $(pyf lookup "$rl_http" del@example.com "${pw[del]}")
and the same request with the byte escaped as %7F: $(pyf --how verbatim lookup "$rl_http" del@example.com "del%7Fpw" 2>&1)" \
  test "$(host_of "$direct")" = mbx1.example.com -a "$(host_of "$r_imap")" = mbx1.example.com -a "$(host_of "$r_pop3")" = mbx1.example.com

# ---- 3. route cache -------------------------------------------------------------------------

echo "--- 3. route cache"
# one_node KEY VALUE DESCRIPTION: exactly one node holds KEY, with VALUE.
one_node() {
  local held
  held=$(mc_nodes "$1")
  if [[ $held =~ ^[0-9]+=(.*)$ ]] && [[ ${BASH_REMATCH[1]} == "$2" ]]; then
    ok "$3 (node $m1 or $m2: ${held%%=*})"
  else
    not_ok "$3" "key $1: wanted exactly one node with '$2', got: '${held:-none}'"
  fi
}
rl_before=$(rl_ok)
r=$(login imap carl)
rl_after=$(rl_ok)
that "carl's first login (IMAP, STARTTLS) reaches mbx1 and asks route-lookup (lookups ok $rl_before -> $rl_after)" "$r" \
  test "$(host_of "$r")" = mbx1.example.com -a "$rl_after" -gt "$rl_before"
one_node "route:proto=imap;user=carl@example.com" "127.0.0.1:$x1_imap" \
  "carl's IMAP route is on exactly one cache node: 127.0.0.1:$x1_imap"
rl_before=$(rl_ok)
hits_before=$(px_cache)
r=$(login imaps carl)
rl_after=$(rl_ok)
hits_after=$(px_cache)
that "carl's second login (IMAPS) reaches mbx1 from the cache: route-lookup ok $rl_before -> $rl_after, proxy source=cache $hits_before -> $hits_after" "$r" \
  test "$(host_of "$r")" = mbx1.example.com -a "$rl_after" = "$rl_before" -a "$hits_after" -eq $((hits_before + 1))
r=$(login pop3 carl)
one_node "route:proto=pop3;user=carl@example.com" "127.0.0.1:$x1_pop3" \
  "after carl's first POP3 login ($(host_of "$r")) his POP3 route is on exactly one node: 127.0.0.1:$x1_pop3"
rl_before=$(rl_ok)
hits_before=$(px_cache)
r=$(login pop3s carl)
rl_after=$(rl_ok)
hits_after=$(px_cache)
that "carl's second POP3 login (POP3S) reaches mbx1 from the cache: route-lookup ok $rl_before -> $rl_after, proxy source=cache $hits_before -> $hits_after" "$r" \
  test "$(host_of "$r")" = mbx1.example.com -a "$rl_after" = "$rl_before" -a "$hits_after" -eq $((hits_before + 1))
one_node "alias:user=bobby@example.com;ip=127.0.0.1" "bob@example.com" \
  "the alias login cached alias:user=bobby@example.com;ip=127.0.0.1 -> bob@example.com on exactly one node"
one_node "route:proto=imap;user=bob@example.com" "127.0.0.1:$x2_imap" \
  "bob's IMAP route is on exactly one node: 127.0.0.1:$x2_imap (mbx2)"
r=$(login imap eve)
that "eve's first login (IMAP) reaches mbx2 (her route is cached for the move in 6.)" "$r" \
  test "$(host_of "$r")" = mbx2.example.com
eve_node=$(mc_nodes "route:proto=imap;user=eve@example.com")
eve_node=${eve_node%%=*}

# ---- 4. security ----------------------------------------------------------------------------

echo "--- 4. security"
run_py security

# ---- 5. failures ----------------------------------------------------------------------------

echo "--- 5. failures"
# Wrong password: what the mailbox itself says, then the same through the proxy.
direct=$(SRC=127.0.0.3 login "imap-plain:$x1_imap" ann "wrong password")
held_before=$(mc_nodes "route:proto=imap;user=ann@example.com")
refused_before=$(px 'proxy_logins_total{outcome="refused"}')
r=$(login imap ann "wrong password")
held_after=$(mc_nodes "route:proto=imap;user=ann@example.com")
refused_after=$(px 'proxy_logins_total{outcome="refused"}')
that "IMAP wrong password for ann: the client gets mbx1's own refusal ($(reply_of "$direct"))" \
  "direct to mbx1: $direct
through the proxy: $r" test -n "$(reply_of "$direct")" -a "$(reply_of "$r")" = "$(reply_of "$direct")"
that "... and ann's cached IMAP route is deleted (before: '${held_before}', after: '${held_after:-none}'), refused $refused_before -> $refused_after" \
  "before: $held_before; after: $held_after" test -n "$held_before" -a -z "$held_after" -a "$refused_after" -eq $((refused_before + 1))
direct=$(SRC=127.0.0.3 login "pop3-plain:$x1_pop3" ann "wrong password")
held_before=$(mc_nodes "route:proto=pop3;user=ann@example.com")
r=$(login pop3s ann "wrong password")
held_after=$(mc_nodes "route:proto=pop3;user=ann@example.com")
that "POP3S wrong password for ann: the client gets mbx1's own refusal ($(reply_of "$direct")), the cached POP3 route is deleted (before: '$held_before', after: '${held_after:-none}')" \
  "direct to mbx1: $direct
through the proxy: $r
route before: $held_before; after: $held_after" \
  test -n "$(reply_of "$direct")" -a "$(reply_of "$r")" = "$(reply_of "$direct")" -a -n "$held_before" -a -z "$held_after"
expect_login "ann logs in again with the right password (route looked up again)" mbx1.example.com imap ann

r=$(login imap nobody "whatever")
that "IMAP unknown user: \"NO [AUTHENTICATIONFAILED] Authentication failed\" after route-lookup's Auth-Wait (secs $(secs_of "$r"))" "$r" \
  bash -c '[[ $1 == "NO reply=NO [AUTHENTICATIONFAILED] Authentication failed secs="* ]] && awk -v s="$2" "BEGIN { exit !(s >= 0.9 && s < 5) }"' _ "$r" "$(secs_of "$r")"
r=$(login pop3 nobody "whatever")
that "POP3 unknown user: \"-ERR [AUTH] Authentication failed\" (secs $(secs_of "$r"))" "$r" \
  test "$(reply_of "$r")" = "-ERR [AUTH] Authentication failed"

# route-lookup stopped.
expect_login "fay logs in (IMAP) while route-lookup is up: her route is now cached" mbx1.example.com imap fay
stop "$rl_pid"
that "route-lookup stopped" "" port_closed "$rl_http"
r=$(login imap fay)
that "route-lookup down: fay (route cached) still logs in: $(host_of "$r") in $(secs_of "$r")s" "$r" \
  test "$(host_of "$r")" = mbx1.example.com
r=$(login imap hal)
that "route-lookup down: hal (not cached) gets \"NO [UNAVAILABLE] Temporary failure, try again later\" promptly ($(secs_of "$r")s)" "$r" \
  bash -c '[[ $1 == "NO reply=NO [UNAVAILABLE] Temporary failure, try again later secs="* ]] && awk -v s="$2" "BEGIN { exit !(s < 3) }"' _ "$r" "$(secs_of "$r")"
r=$(login pop3s hal)
that "route-lookup down: hal over POP3S gets \"-ERR [SYS/TEMP] Temporary failure, try again later\" promptly ($(secs_of "$r")s)" "$r" \
  bash -c '[[ $1 == "NO reply=-ERR [SYS/TEMP] Temporary failure, try again later secs="* ]] && awk -v s="$2" "BEGIN { exit !(s < 3) }"' _ "$r" "$(secs_of "$r")"
start_route_lookup
wait_port 127.0.0.1 "$rl_http" || die "route-lookup restarted"
wait_port 127.0.0.1 "$rl_grpc" || die "route-lookup restarted (grpc)"
r=""
for _ in $(seq 1 10); do
  r=$(login imap hal)
  [[ $(host_of "$r") == mbx1.example.com ]] && break
  sleep 0.5
done
that "route-lookup restarted: hal logs in (IMAP) on mbx1" "$r" test "$(host_of "$r")" = mbx1.example.com

# A mailbox-stub stopped and restarted.
expect_login "dora logs in (IMAP) before mbx2 stops" mbx2.example.com imap dora
stop "${stub_pid[2]}"
that "mbx2 stopped" "" port_closed "$x2_imap"
r=$(login imap dora)
that "mbx2 down: dora (IMAP, route cached) gets \"NO [UNAVAILABLE] Temporary failure, try again later\" promptly ($(secs_of "$r")s)" "$r" \
  bash -c '[[ $1 == "NO reply=NO [UNAVAILABLE] Temporary failure, try again later secs="* ]] && awk -v s="$2" "BEGIN { exit !(s < 5) }"' _ "$r" "$(secs_of "$r")"
r=$(login pop3 dora)
that "mbx2 down: dora (POP3 with STLS) gets \"-ERR [SYS/TEMP] Temporary failure, try again later\" promptly ($(secs_of "$r")s)" "$r" \
  bash -c '[[ $1 == "NO reply=-ERR [SYS/TEMP] Temporary failure, try again later secs="* ]] && awk -v s="$2" "BEGIN { exit !(s < 5) }"' _ "$r" "$(secs_of "$r")"
start_stub 2
wait_port 127.0.0.1 "$x2_imap" || die "mbx2 restarted"
wait_port 127.0.0.1 "$x2_pop3" || die "mbx2 restarted (pop3)"
expect_login "mbx2 restarted: dora logs in again (IMAP)" mbx2.example.com imap dora
expect_login "mbx2 restarted: dora logs in again (POP3S)" mbx2.example.com pop3s dora

# ---- 6. moving --------------------------------------------------------------------------------

echo "--- 6. moving accounts"
mbx2_lines=$(wc -l <"$tmp/mbx2.log")
keys_of() { # LOCAL: every cached route key of LOCAL, with its node
  local proto res=()
  for proto in imap imapssl pop3 pop3ssl; do
    h=$(mc_nodes "route:proto=$proto;user=$1@example.com")
    [[ -z $h ]] || res+=("$proto:$h")
  done
  echo "${res[*]}"
}
bob_before=$(keys_of bob)
capture zmprov ma bob@example.com zimbraMailHost mbx1.example.com
((rc == 0)) || not_ok "zmprov ma bob@example.com zimbraMailHost mbx1.example.com" "$out"
bob_after=$(keys_of bob)
purge=$(sed 's/\x1b\[[0-9;]*m//g' "$tmp/route-lookup.log" | grep 'purged cached routes' | grep 'bob@example.com' | tail -n 1 || true)
that "zmprov ma bob -> mbx1: route-lookup purged bob's routes on both nodes (before: '${bob_before:-none}', after: '${bob_after:-none}')" \
  "before: $bob_before
after: $bob_after
route-lookup: $purge" \
  test -n "$bob_before" -a -z "$bob_after" -a -n "$purge"
[[ -z $purge ]] || echo "#   (${purge#*INFO })"
home[bob]=mbx1 home[eve]=mbx1
expect_login "bob's next IMAP login reaches mbx1" mbx1.example.com imap bob
expect_login "bob's next POP3 login (STLS) reaches mbx1" mbx1.example.com pop3 bob
r=$(login imaps bobby "${pw[bob]}")
that "the alias bobby now reaches bob's mailbox on mbx1" "$r" \
  bash -c '[[ $1 == "OK host=mbx1.example.com subject=Message 1 for bob@example.com on mbx1.example.com "* ]]' _ "$r"

capture zmprov ma eve@example.com zimbraMailHost mbx1.example.com
((rc == 0)) || not_ok "zmprov ma eve@example.com zimbraMailHost mbx1.example.com" "$out"
eve_after=$(keys_of eve)
planted=$(pyf mc-set "${eve_node:-none}" "route:proto=imap;user=eve@example.com" "127.0.0.1:$x2_imap" 3600 2>&1 || true)
that "the move's purge deleted eve's route (left: '${eve_after:-none}'); a stale one (-> mbx2, 127.0.0.1:$x2_imap) is put back on her node $eve_node, as if that node had missed the purge" \
  "set on node ${eve_node:-none}: $planted" test -z "$eve_after" -a "$planted" = STORED
eve_logins=()
reached=0
wrong=0
for i in 1 2; do
  r=$(login imap eve)
  eve_logins+=("login $i: $r")
  echo "#   eve's login $i after the move: $r"
  case $(host_of "$r") in
    mbx1.example.com) reached=$i; break ;;
    "") ;;
    *) wrong=1 ;;
  esac
done
that "eve (stale cached route to mbx2) reaches mbx1 within two logins (reached on login ${reached/0/never})" \
  "$(printf '%s\n' "${eve_logins[@]}")" test "$reached" -gt 0
that "no login of eve landed on mbx2 after the move" "$(printf '%s\n' "${eve_logins[@]}")" test "$wrong" = 0
held=$(mc_nodes "route:proto=imap;user=eve@example.com")
that "eve's IMAP route is now 127.0.0.1:$x1_imap (mbx1) on her node only (${held:-none})" "$held" test "$held" = "$eve_node=127.0.0.1:$x1_imap"
wrong_host=$(tail -n +"$((mbx2_lines + 1))" "$tmp/mbx2.log" | sed 's/\x1b\[[0-9;]*m//g' |
  grep -E 'logged in account=(bob|eve)@example.com' || true)
that "mbx2's log shows no session of bob or eve after the moves" "$wrong_host" test -z "$wrong_host"
refusal=$(tail -n +"$((mbx2_lines + 1))" "$tmp/mbx2.log" | sed 's/\x1b\[[0-9;]*m//g' |
  grep -E 'login for an account of another mail host' | tail -n 1 || true)
[[ -z $refusal ]] || echo "#   (mbx2: ${refusal#*INFO })"

# ---- 5 (continued). a cache node killed and restarted -------------------------------------

echo "--- 5 (continued). a cache node killed and restarted"
# A cache node killed. Pick the node so that the other one still holds some cached route.
declare -A on_node=()
for u in ann bob carl dora eve fay hal; do
  for proto in imap pop3; do
    h=$(mc_nodes "route:proto=$proto;user=$u@example.com")
    [[ -n $h ]] && on_node[${h%%=*}]+=" $proto:$u"
  done
done
echo "# cached routes: node $m1:${on_node[$m1]:- none}; node $m2:${on_node[$m2]:- none}"
if [[ -n ${on_node[$m2]:-} ]]; then kill_n=1 dead_node=$m1 live_node=$m2; else kill_n=2 dead_node=$m2 live_node=$m1; fi
stop "${cache_pid[$kill_n]}"
that "cache node $dead_node killed" "" port_closed "$dead_node"
read -r first_live _ <<<"${on_node[$live_node]:-}"
proto=${first_live%%:*} u=${first_live#*:}
rl_before=$(rl_ok)
hits_before=$(px_cache)
r=$(login "$proto" "$u")
rl_after=$(rl_ok)
hits_after=$(px_cache)
that "with $dead_node dead, $u ($proto, cached on $live_node) logs in from the cache: $(host_of "$r") in $(secs_of "$r")s, route-lookup ok $rl_before -> $rl_after, source=cache $hits_before -> $hits_after" "$r" \
  bash -c '[[ $(sed -n "s/^OK host=\([^ ]*\) .*/\1/p" <<<"$1") == "$2".example.com ]] && [[ $3 == "$4" ]] && (($6 == $5 + 1))' \
  _ "$r" "${home[$u]}" "$rl_before" "$rl_after" "$hits_before" "$hits_after"
read -r first_dead _ <<<"${on_node[$dead_node]:-}"
if [[ -n $first_dead ]]; then
  proto=${first_dead%%:*} u=${first_dead#*:}
else
  proto=imap u=fay
fi
r=$(login "$proto" "$u")
that "with $dead_node dead, $u ($proto, route was cached on the dead node) logs in via route-lookup: $(host_of "$r") in $(secs_of "$r")s" "$r" \
  bash -c '[[ $1 == "OK host=$2.example.com "* ]] && awk -v s="$3" "BEGIN { exit !(s < 3) }"' _ "$r" "${home[$u]}" "$(secs_of "$r")"
r=$(login pop3s ivy)
that "with $dead_node dead, a new user (ivy, POP3S) logs in: $(host_of "$r") in $(secs_of "$r")s" "$r" \
  bash -c '[[ $1 == "OK host=mbx2.example.com "* ]] && awk -v s="$2" "BEGIN { exit !(s < 3) }"' _ "$r" "$(secs_of "$r")"
errors=$(px "proxy_cache_requests_total{node=\"127.0.0.1:$dead_node\",result=\"error\"}")
that "the proxy counted errors for the dead node (proxy_cache_requests_total{...,result=\"error\"} $errors)" "$errors" \
  test "$errors" != missing -a "${errors/missing/0}" -gt 0
start_cache "$kill_n" "$dead_node"
restart_time=$(date -u +%H:%M:%S.%N)
wait_port 127.0.0.1 "$dead_node" || die "cache node $dead_node restarted"
restarted=$dead_node
dead_node=""
ok "cache node $restarted restarted (empty) on the same port"
# Once the node is back and the retry interval (1 s) is over, the proxy should cache on it
# again: the next login of a user whose route belongs there stores the route there.
if [[ -n $first_dead ]]; then
  sleep 1.5
  proto=${first_dead%%:*} u=${first_dead#*:}
  err_metric="proxy_cache_requests_total{node=\"127.0.0.1:$restarted\",result=\"error\"}"
  errs_before=$(px "$err_metric")
  r=$(login "$proto" "$u")
  held=$(mc_nodes "route:proto=$proto;user=$u@example.com")
  errs_after=$(px "$err_metric")
  that "1.5 s after node $restarted restarted (retry interval 1 s), $u's $proto login ($(host_of "$r")) caches the route on it again (holder: '${held:-none}'; its error count $errs_before -> $errs_after)" \
    "login: $r
route:proto=$proto;user=$u@example.com held by: '${held:-none}' (wanted node $restarted)
$err_metric: $errs_before -> $errs_after
node restarted at $restart_time; the proxy's ejections of it:
$(sed 's/\x1b\[[0-9;]*m//g' "$tmp/proxy.log" | grep "cache node ejected node=127.0.0.1:$restarted" | sed 's/ conn{[^}]*}//')" \
    test "${held%%=*}" = "$restarted" -a "$errs_after" = "$errs_before"
else
  echo "# (no cached route was on node $restarted; the check of its reuse is skipped)"
fi

# ---- 7. client address ------------------------------------------------------------------------

echo "--- 7. client address forwarding (--forward-client-ip id)"
# Clients of the proxy connect from 127.0.0.1, and here also from 127.0.0.2; the proxy
# itself connects to the stubs from 127.0.0.1 (trusted); the direct logins to mbx1 above
# came from 127.0.0.3.
r_imap=$(SRC=127.0.0.2 login imap carl)
r_pop3=$(SRC=127.0.0.2 login pop3s dora)
for n in 1 2; do
  log=$(sed 's/\x1b\[[0-9;]*m//g' "$tmp/mbx$n.log")
  that "mbx$n logged \"client address forwarded (IMAP ID) client=127.0.0.1 proxy=127.0.0.1\"" "$(grep -i forwarded <<<"$log" | tail -n 5)" \
    grep -qF 'client address forwarded (IMAP ID) client=127.0.0.1 proxy=127.0.0.1' <<<"$log"
  that "mbx$n logged \"client address forwarded client=127.0.0.1 proxy=127.0.0.1 how=\"XCLIENT\"\" (POP3)" "$(grep -i forwarded <<<"$log" | tail -n 5)" \
    grep -qF 'client address forwarded client=127.0.0.1 proxy=127.0.0.1 how="XCLIENT"' <<<"$log"
  unforwarded=$(grep -E 'logged in account=' <<<"$log" | grep -v 'client=127.0.0.3 forwarded=false' | grep -v 'forwarded=true' || true)
  that "every login on mbx$n through the proxy says forwarded=true" "$unforwarded" test -z "$unforwarded"
done
log=$(sed 's/\x1b\[[0-9;]*m//g' "$tmp/mbx1.log")
that "a client at 127.0.0.2 (IMAP, carl: $(host_of "$r_imap")): mbx1 logged \"client address forwarded (IMAP ID) client=127.0.0.2 proxy=127.0.0.1\" and the login with client=127.0.0.2 forwarded=true" \
  "$r_imap
$(grep -E 'forwarded|logged in account=carl' <<<"$log" | tail -n 4)" \
  bash -c 'grep -qF "client address forwarded (IMAP ID) client=127.0.0.2 proxy=127.0.0.1" <<<"$1" && grep -qF "logged in account=carl@example.com client=127.0.0.2 forwarded=true" <<<"$1"' _ "$log"
log=$(sed 's/\x1b\[[0-9;]*m//g' "$tmp/mbx2.log")
that "a client at 127.0.0.2 (POP3S, dora: $(host_of "$r_pop3")): mbx2 logged \"client address forwarded client=127.0.0.2 proxy=127.0.0.1 how=\"XCLIENT\"\" and the login with client=127.0.0.2 forwarded=true" \
  "$r_pop3
$(grep -E 'forwarded|logged in account=dora' <<<"$log" | tail -n 4)" \
  bash -c 'grep -qF "client address forwarded client=127.0.0.2 proxy=127.0.0.1 how=\"XCLIENT\"" <<<"$1" && grep -qF "logged in account=dora@example.com client=127.0.0.2 forwarded=true" <<<"$1"' _ "$log"

# ---- afterwards -------------------------------------------------------------------------------

echo "--- afterwards"
check "the proxy is still running" kill -0 "$proxy_pid"
if sed 's/\x1b\[[0-9;]*m//g' "$tmp/proxy.log" | grep -E 'panicked| ERROR ' >"$tmp/errors"; then
  not_ok "the proxy logged no panic or error" "$(cat "$tmp/errors")"
else
  ok "the proxy logged no panic or error"
fi
plain_log=$(strip_ansi "$tmp/proxy.log")
if grep -Eq 'session\{tls=true tls_cipher=TLS_[A-Z0-9_]+ user=[a-z]+@example\.com backend=127\.0\.0\.1:[0-9]+\}' <<<"$plain_log"; then
  ok "each session's log lines carry its span: listener, client, id, TLS, user, backend"
else
  not_ok "each session's log lines carry its span: listener, client, id, TLS, user, backend" "$(grep -m3 relaying <<<"$plain_log")"
fi
leaked=""
for u in "${!pw[@]}"; do
  for log in "$tmp"/*.log; do
    if grep -qF -- "${pw[$u]}" "$log"; then leaked+=" $u's in $(basename "$log");"; fi
  done
done
if [[ -z $leaked ]]; then
  ok "no password appears in any log (proxy, route-lookup, cache nodes, mailboxes)"
else
  not_ok "no password appears in any log" "found:$leaked"
fi
positive() { [[ "$1" =~ ^[0-9]+$ && "$1" -gt 0 ]]; }
for l in imap imaps pop3 pop3s; do
  n=$(px "proxy_connections_total{listener=\"$l\",result=\"accepted\"}")
  check "the proxy counts connections on its $l listener ($n accepted)" positive "$n"
done
n=$(px proxy_lookup_duration_seconds_count)
check "the proxy times its route lookups ($n in its histogram)" positive "$n"
n=$(px proxy_backend_connect_duration_seconds_count)
check "the proxy times its backend connects ($n in its histogram)" positive "$n"
echo "# proxy metrics: $(curl -s --max-time 5 "http://127.0.0.1:$p_admin/metrics" | grep -E '^proxy_(logins_total|routes_total|connections_active|sessions_relaying)' | tr '\n' ' ')"

# ---- failed logins for fail2ban ------------------------------------------------------------

echo "--- failed logins: one 'login failed' line each, matched by deploy/fail2ban's filter"
filter="$root/deploy/fail2ban/filter.d/zproxy.conf"
SRC=127.0.0.7 login imap ann "guess one" >/dev/null
SRC=127.0.0.7 login pop3s ann "guess two" >/dev/null
SRC=127.0.0.7 login imaps nobody-here "guess three" >/dev/null
sleep 0.3
if grep -q $'\x1b\[' "$tmp/proxy.log"; then
  not_ok "the proxy's log file carries no colour escapes (stderr is no terminal; NO_COLOR not set)" "$(grep -m2 $'\x1b\[' "$tmp/proxy.log" | cat -v)"
else
  ok "the proxy's log file carries no colour escapes (stderr is no terminal; NO_COLOR not set)"
fi
guesses=$(grep -E ' login failed .* client=127\.0\.0\.7 .* reason="(bad_credentials|unknown_user|backend_refused)"' "$tmp/proxy.log" | grep -c 'user=' || true)
that "three wrong logins from 127.0.0.7 wrote three 'login failed' lines naming that client ($guesses)" \
  "$(grep ' login failed ' "$tmp/proxy.log" | tail -n 5)" test "$guesses" = 3
that "the unknown user's line says reason=\"unknown_user\" (route-lookup's X-Lookup-Reason), the known user's guesses do not" \
  "$(grep ' login failed .* client=127\.0\.0\.7' "$tmp/proxy.log" | tail -n 3)" \
  bash -c 'grep -q "login failed user=\"nobody-here@example.com\" client=127.0.0.7 .* reason=\"unknown_user\"" "$1" && ! grep -q "login failed user=\"ann@example.com\" client=127.0.0.7 .* reason=\"unknown_user\"" "$1"' _ "$tmp/proxy.log"
f2b_matched() { fail2ban-regex "$1" "$filter" | sed -n 's/^Lines: .* \([0-9]*\) matched.*/\1/p'; }
want=$(grep -cE ' login failed .* reason="(bad_credentials|unknown_user|backend_refused)"' "$tmp/proxy.log" || true)
got=$(f2b_matched "$tmp/proxy.log")
that "fail2ban-regex with the shipped filter matches exactly the client-caused 'login failed' lines of the text log ($got of $want)" \
  "$(fail2ban-regex "$tmp/proxy.log" "$filter" | grep -E '^(Lines|Failregex)')" test "$got" = "$want" -a "$want" -ge 3
if grep -E ' login failed ' "$tmp/proxy.log" | grep -qiE 'guess (one|two|three)'; then
  not_ok "no 'login failed' line carries the password"
else
  ok "no 'login failed' line carries the password"
fi
# The same with JSON logs, from a second proxy on the same route source.
port p_json
RUST_LOG=info spawn "$BIN/proxy" --imap-listen "127.0.0.1:$p_json" --imaps-listen off --pop3-listen off \
  --pop3s-listen off --starttls off --admin-listen off --log-format json \
  --lookup-url "http://127.0.0.1:$rl_http/service/extension/nginx-lookup" 2>>"$tmp/proxy-json.log" >&2
wait_port 127.0.0.1 "$p_json" || not_ok "the JSON-logging proxy listens on $p_json"
SRC=127.0.0.8 login "imap-plain:$p_json" ann "json guess one" >/dev/null
SRC=127.0.0.8 login "imap-plain:$p_json" bob "json guess two" >/dev/null
sleep 0.3
got=$(f2b_matched "$tmp/proxy-json.log")
json_lines=$(grep -c '"message":"login failed".*"client":"127.0.0.8"' "$tmp/proxy-json.log" || true)
that "JSON log: two wrong logins from 127.0.0.8 are two 'login failed' objects ($json_lines), both matched by the filter ($got)" \
  "$(grep 'login failed' "$tmp/proxy-json.log" | head -n 3)" test "$json_lines" = 2 -a "$got" = 2
n=$(px 'proxy_login_failures_total{reason="backend_refused"}')
check "the proxy counts failed logins by reason ($n backend_refused)" positive "$n"

summary "proxy whole flow" "($((SECONDS - started)) s)"
