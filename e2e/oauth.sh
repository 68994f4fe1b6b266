#!/usr/bin/env bash
# OAuth 2.0 logins (SASL XOAUTH2 and OAUTHBEARER) through the proxy, end to end.
#
# Starts a small RFC 7662 token endpoint (e2e/oauth.py token-server), a private Dovecot 2.3
# with an oauth2 passdb introspecting there, a mailbox-stub introspecting there too, two
# route-lookups on one fresh database (A only routes; B has --oauth-introspection-url) and
# two proxies (--sasl-mechanisms plain,login,xoauth2,oauthbearer), proxy A on route-lookup
# A and proxy B on route-lookup B. Accounts: ann and bob on Dovecot, carol on the stub,
# annie an alias of ann. Then e2e/oauth.py checks, with imaplib, poplib and raw sockets:
#   - through A: IMAP XOAUTH2 with SASL-IR and without, OAUTHBEARER, POP3 AUTH XOAUTH2
#     (initial response, and after the `+`) reach Dovecot and the mailbox; a revoked
#     token and another user's token get Dovecot's error challenge, then NO / -ERR; the
#     same against mailbox-stub, with a token of several kilobytes;
#   - through B: route-lookup refuses another user's token with the error challenge and
#     NO before any mailbox server is asked (Dovecot never introspects it), lets the
#     right one through, and an alias logs in as its account;
# and this script: no token in any of our logs (proxies, route-lookups, mailbox-stub);
# one `login failed` line per refusal with mechanism xoauth2/oauthbearer and the right
# reason (backend_refused behind A, bad_credentials behind B); the introspection counter.
# Prints "ok - ..." / "not ok - ..." per check and exits non-zero if any failed.
# Needs: dovecot-imapd dovecot-pop3d python3 psql, PostgreSQL on 127.0.0.1:5432 (PGURL),
# and the binaries (cargo build -p proxy -p mailbox-stub -p route-lookup -p zmprov).
# KEEP_TMP=1 keeps the temporary directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=e2e/lib.sh
source "$root/e2e/lib.sh"
BIN=${BIN:-$root/target/debug}
pg_base=${PGURL:-postgres://postgres@127.0.0.1:5432}
py=/usr/bin/python3
[[ -x $py ]] || py=$(command -v python3)
pyfile=$root/e2e/oauth.py

for b in proxy mailbox-stub route-lookup zmprov; do
  [[ -x $BIN/$b ]] || { echo "no binary at $BIN/$b (cargo build -p proxy -p mailbox-stub -p route-lookup -p zmprov)" >&2; exit 1; }
done
need_commands "apt-get install -y dovecot-imapd dovecot-pop3d postgresql-client" dovecot psql timeout

export PGCONNECT_TIMEOUT=10
scratch_dir oauth # $tmp, removed at exit (lib.sh)
chmod 755 "$tmp" # Dovecot's login and mail processes run unprivileged below it
db="e2e_oauth_$(date +%s)_$$"
log_tails() { tail_logs 10 0 "$tmp"/proxy-*.log "$tmp"/route-lookup-*.log "$tmp"/stub.log "$tmp"/dovecot.log "$tmp"/tokens.log; }

echo "--- setup (temporary directory $tmp, database $db)"
create_db "$pg_base" "$db"
for v in tp rl_a_http rl_a_grpc rl_b_http rl_b_grpc dv_imap dv_pop3 st_imap st_pop3 a_imap a_pop3 a_admin b_imap b_pop3 b_admin; do
  port "$v"
done
token=e2e-oauth-$$

# The tokens: random, one of several kilobytes (a JWT with many claims is that long).
rand() { head -c "$1" /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '='; }
ann_tok=$(rand 30) bob_tok=$(rand 30) carol_tok=$(rand 30) revoked_tok=$(rand 30)
carol_long=$(rand 6000)
cat >"$tmp/tokens.json" <<EOF
{"$ann_tok": "ann@example.com", "$bob_tok": "bob@example.com", "$carol_tok": "carol@example.com",
 "$carol_long": "carol@example.com", "$revoked_tok": null}
EOF
cat >"$tmp/labels.json" <<EOF
{"ann": "$ann_tok", "bob": "$bob_tok", "carol": "$carol_tok", "carol_long": "$carol_long", "revoked": "$revoked_tok"}
EOF
: >"$tmp/tokens.log"
spawn "$py" "$pyfile" token-server "$tp" "$tmp/tokens.json" "$tmp/tokens.log"
wait_port 127.0.0.1 "$tp" || die "token-endpoint started"

rl_http=$rl_a_http rl_grpc=$rl_a_grpc
spawn_route_lookup "$BIN/route-lookup" "$tmp/route-lookup-a.log" info --admin-token "$token" --auth-wait 0
wait_route_lookup route-lookup-a "$tmp/route-lookup-a.log"
rl_http=$rl_b_http rl_grpc=$rl_b_grpc
spawn_route_lookup "$BIN/route-lookup" "$tmp/route-lookup-b.log" info --admin-token "$token" --auth-wait 0 \
  --oauth-introspection-url "http://127.0.0.1:$tp/route-lookup/introspect"
wait_route_lookup route-lookup-b "$tmp/route-lookup-b.log"

zmprov() { timeout 30 "$BIN/zmprov" -s "http://127.0.0.1:$rl_a_grpc" --admin-token "$token" "$@"; }
{
  echo "cd example.com"
  echo "cs dovecot1.example.com zimbraServiceEnabled mailbox serviceAddress 127.0.0.1 zimbraImapBindPort $dv_imap zimbraPop3BindPort $dv_pop3"
  echo "cs stub1.example.com zimbraServiceEnabled mailbox serviceAddress 127.0.0.1 zimbraImapBindPort $st_imap zimbraPop3BindPort $st_pop3"
  echo "ca ann@example.com 'not-the-token-1' zimbraMailHost dovecot1.example.com"
  echo "ca bob@example.com 'not-the-token-2' zimbraMailHost dovecot1.example.com"
  echo "ca carol@example.com 'not-the-token-3' zimbraMailHost stub1.example.com"
  echo "aaa ann@example.com annie@example.com"
} >"$tmp/seed.zmp"
capture zmprov -f "$tmp/seed.zmp"
((rc == 0)) || die "seed the directory with zmprov" "$out"

echo "--- Dovecot with an oauth2 passdb"
cat >"$tmp/dovecot-oauth2.conf.ext" <<EOF
introspection_mode = post
introspection_url = http://127.0.0.1:$tp/dovecot/introspect
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
EOF
chmod 644 "$tmp/dovecot-oauth2.conf.ext"
# Tokens are checked by introspection (RFC 7662) at the test's endpoint.
write_dovecot_conf oauth "xoauth2 oauthbearer" "passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = $tmp/dovecot-oauth2.conf.ext
}"
for u in ann@example.com bob@example.com; do
  md="$tmp/mail/$u/Maildir"
  mkdir -p "$md/new" "$md/cur" "$md/tmp"
  printf 'From: Postmaster <postmaster@example.com>\nTo: %s\nSubject: OAuth e2e\nDate: Fri, 04 Dec 2026 09:00:00 +0000\n\nPut here by e2e/oauth.sh.\n' "$u" >"$md/new/1700000000.M1P1.e2e"
done
chown -R "$mail_uid:$mail_gid" "$tmp/mail"
spawn dovecot -F -c "$tmp/dovecot.conf" 2>>"$tmp/dovecot.log"
dv_pid=${E2E_PIDS[-1]}
wait_port 127.0.0.1 "$dv_imap" || die "dovecot started"
wait_port 127.0.0.1 "$dv_pop3" || die "dovecot started"

echo "--- mailbox-stub and the proxies"
NO_COLOR=1 RUST_LOG=info spawn "$BIN/mailbox-stub" --hostname stub1.example.com \
  --imap-listen "127.0.0.1:$st_imap" --pop3-listen "127.0.0.1:$st_pop3" \
  --imaps-listen off --pop3s-listen off --directory "http://127.0.0.1:$rl_a_grpc" \
  --admin-token "$token" --trusted-proxies 127.0.0.1 --grace-period 1 \
  --oauth-introspection-url "http://127.0.0.1:$tp/stub/introspect" 2>>"$tmp/stub.log" >&2
wait_port 127.0.0.1 "$st_imap" || die "mailbox-stub started"
start_proxy() { # NAME IMAP POP3 ADMIN ROUTE-LOOKUP-HTTP
  NO_COLOR=1 RUST_LOG=info spawn "$BIN/proxy" --imap-listen "127.0.0.1:$2" --pop3-listen "127.0.0.1:$3" \
    --imaps-listen off --pop3s-listen off --starttls off --admin-listen "127.0.0.1:$4" \
    --lookup-url "http://127.0.0.1:$5/service/extension/nginx-lookup" \
    --sasl-mechanisms plain,login,xoauth2,oauthbearer --forward-client-ip id \
    --max-bad-commands 20 --grace-period 1 2>>"$tmp/proxy-$1.log" >&2
  wait_port 127.0.0.1 "$2" || die "proxy $1 started"
}
start_proxy a "$a_imap" "$a_pop3" "$a_admin" "$rl_a_http"
start_proxy b "$b_imap" "$b_pop3" "$b_admin" "$rl_b_http"

echo "--- clients"
run_checks "e2e/oauth.py" timeout 120 "$py" "$pyfile" check --proxy-a "$a_imap,$a_pop3" \
  --proxy-b "$b_imap,$b_pop3" --tokens "$tmp/tokens.json" --labels "$tmp/labels.json" --log "$tmp/tokens.log"

echo "--- logs"
ours=("$tmp"/proxy-a.log "$tmp"/proxy-b.log "$tmp"/route-lookup-a.log "$tmp"/route-lookup-b.log "$tmp"/stub.log)
leaked=""
for t in "$ann_tok" "$bob_tok" "$carol_tok" "$revoked_tok" "$carol_long"; do
  if grep -lF -- "$t" "${ours[@]}" >/dev/null 2>&1; then leaked+=" $(grep -lF -- "$t" "${ours[@]}" | xargs -n1 basename | tr '\n' ' ')"; fi
  if grep -F -- "${t:0:20}" "${ours[@]}" >/dev/null 2>&1; then leaked+=" (a token's first 20 characters)"; fi
done
if [[ -z $leaked ]]; then ok "no token appears in any of our logs"; else not_ok "no token appears in any of our logs" "found in:$leaked"; fi
failed_a=$(strip_ansi "$tmp/proxy-a.log" | grep 'login failed' || true)
failed_b=$(strip_ansi "$tmp/proxy-b.log" | grep 'login failed' || true)
if grep -q 'mechanism="xoauth2" reason="backend_refused"' <<<"$failed_a" &&
  grep -q 'mechanism="oauthbearer" reason="backend_refused"' <<<"$failed_a" &&
  (($(grep -c . <<<"$failed_a") == 4)); then
  ok "proxy A: one 'login failed' line per refusal, mechanism and backend_refused"
else
  not_ok "proxy A: one 'login failed' line per refusal, mechanism and backend_refused" "$failed_a"
fi
if (($(grep -c 'reason="bad_credentials"' <<<"$failed_b") == 2)) && (($(grep -c . <<<"$failed_b") == 2)); then
  ok "proxy B: route-lookup's refusals are bad_credentials lines"
else
  not_ok "proxy B: route-lookup's refusals are bad_credentials lines" "$failed_b"
fi
m=$(curl -s --max-time 5 "http://127.0.0.1:$rl_b_http/metrics" | grep '^route_lookup_oauth_introspections_total' || true)
if grep -q 'outcome="wrong_user"} 1' <<<"$m" && grep -q 'outcome="inactive"} 1' <<<"$m"; then
  ok "route-lookup B counts its introspections by outcome"
else
  not_ok "route-lookup B counts its introspections by outcome" "$m"
fi
m=$(curl -s --max-time 5 "http://127.0.0.1:$a_admin/metrics" | grep '^proxy_login_failures_total' || true)
if grep -q 'reason="backend_refused"} 4' <<<"$m"; then
  ok "proxy A counts the refusals in proxy_login_failures_total"
else
  not_ok "proxy A counts the refusals in proxy_login_failures_total" "$m"
fi

summary "OAuth logins through the proxy to Dovecot and mailbox-stub"
