#!/usr/bin/env bash
# A stock nginx mail proxy in front of a real Dovecot, routed by route-lookup.
#
# Starts route-lookup on a fresh PostgreSQL database (with --lookup-secret), seeds it with
# zmprov (domain, the Dovecot server entry, a lookup target so that `zmprov garpu` prints
# route-lookup's URL, two accounts, an alias, the default domain), a private Dovecot
# (IMAP + POP3, passwd-file with the same users) and nginx configured from the shipped
# deploy/nginx/nginx-mail.conf, with only ports, paths, the auth_http URL (taken from
# `zmprov garpu`), the secret and a throwaway certificate substituted. Then checks, with
# curl and a raw Python client, through nginx:
#   - IMAP (STARTTLS and implicit TLS): login, LIST, fetch a message, its Subject;
#   - POP3 (STLS and implicit TLS): login, LIST, RETR, its Subject;
#   - a password holding '+', ' ', '%41' and UTF-8 works over IMAP (AUTHENTICATE PLAIN,
#     AUTHENTICATE LOGIN, the LOGIN command) and POP3 (AUTH PLAIN, USER/PASS);
#   - an alias, an unqualified login (default domain) and a login in capitals reach the
#     right mailbox;
#   - a wrong password is refused by Dovecot and its NO / -ERR reaches the client
#     promptly (proxy_pass_error_message on); an unknown user is refused by route-lookup
#     after Auth-Wait; past --auth-wait-max-attempts nginx closes the connection;
#   - cleartext login before STARTTLS is refused (starttls only);
#   - route-lookup itself: no / wrong X-Lookup-Secret, apop, Auth-Wait capping;
#   - a second route-lookup with --verify-passwords (and a second nginx on it): the odd
#     password survives nginx's Auth-Pass escaping and verifies against the argon2 hash,
#     and a wrong password is refused at the lookup, never reaching Dovecot.
#   - our own proxy in front of the same Dovecot: STARTTLS, IMAPS, POP3 STLS, POP3S, the odd
#     password, the alias, a wrong password, LOGIN before STARTTLS refused;
#   - our proxy behind HAProxy (send-proxy, send-proxy-v2) and nginx's stream module
#     (proxy_protocol on): Dovecot logs the real client (rip=), the per-IP limit counts the
#     client and not the balancer, PROXY headers from unlisted addresses are refused, and a
#     malformed or missing header from the balancer closes the connection.
# Prints "ok - ..." / "not ok - ..." per check (with log tails on failure) and exits
# non-zero if any failed. Needs: nginx-full libnginx-mod-mail dovecot-imapd dovecot-pop3d
# haproxy curl openssl postgresql-client python3, and PostgreSQL on 127.0.0.1:5432 (see PGURL).
# KEEP_TMP=1 keeps the temporary directory (configs, logs) for inspection; E2E_VERBOSE=1
# also shows what each passing check saw.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=e2e/lib.sh
source "$root/e2e/lib.sh"
rl_bin=${ROUTE_LOOKUP_BIN:-$root/target/debug/route-lookup}
zmprov_bin=${ZMPROV_BIN:-$root/target/debug/zmprov}
example_conf=$root/deploy/nginx/nginx-mail.conf
pg_base=${PGURL:-postgres://postgres@127.0.0.1:5432}
py=/usr/bin/python3
[[ -x $py ]] || py=$(command -v python3)

for b in "$rl_bin" "$zmprov_bin"; do
  [[ -x $b ]] || { echo "no binary at $b (cargo build -p route-lookup -p zmprov)" >&2; exit 1; }
done
need_commands "" nginx dovecot haproxy curl openssl psql timeout
nginx_mail_module=/usr/lib/nginx/modules/ngx_mail_module.so
[[ -f $nginx_mail_module ]] || { echo "missing $nginx_mail_module (libnginx-mod-mail)" >&2; exit 1; }

scratch_dir nginx-interop # $tmp, removed at exit (lib.sh)
chmod 755 "$tmp" # Dovecot's login and mail processes run unprivileged below it
db="e2e_nginx_$(date +%s)_$$"

# ---- reporting (ok, not_ok, die, capture, expect_ok, expect_fail: lib.sh) ----------------

# ok_detail (a hook of lib.sh's ok): with E2E_VERBOSE=1, what the passing check saw.
ok_detail() {
  if [[ ${E2E_VERBOSE:-0} == 1 && -n $out ]]; then
    printf '%s\n' "$out" | tail -n 12 | sed 's/^/#   /'
  fi
}

# log_tails (a hook of lib.sh's not_ok): the tails of every log.
log_tails() { tail_logs 12 0 "$tmp"/route-lookup-*.log "$tmp"/nginx-*-error.log "$tmp"/dovecot.log; }

# ---- helpers ----------------------------------------------------------------------------

# wait_up NAME PID HOST PORT: PORT accepts connections and PID is still alive (a process
# that failed to bind exits, and someone else's listener must not be mistaken for ours).
wait_up() {
  local name=$1 pid=$2 host=$3 p=$4 i
  for i in $(seq 1 200); do
    kill -0 "$pid" 2>/dev/null || die "$name started" "$name (pid $pid) exited before listening on $host:$p"
    if (exec 3<>"/dev/tcp/$host/$p") 2>/dev/null; then
      kill -0 "$pid" 2>/dev/null || die "$name started" "$name (pid $pid) exited"
      return 0
    fi
    sleep 0.05
  done
  die "$name started" "nothing listens on $host:$p after 10 s"
}

# start_route_lookup NAME FLAGS...: starts an instance on fresh ports; sets rl_http, rl_grpc.
start_route_lookup() {
  local name=$1 log="$tmp/route-lookup-$1.log"
  shift
  port rl_http
  port rl_grpc
  spawn_route_lookup "$rl_bin" "$log" info,route_lookup=debug \
    --admin-token "$admin_token" --lookup-secret "$lookup_secret" \
    --auth-wait "$auth_wait" --auth-wait-max-attempts "$auth_wait_max" "$@"
  wait_route_lookup "route-lookup $name" "$log"
}

# Replaces the one occurrence of $2 in the variable named $1 by $3; dies when $2 does not
# occur exactly once (the example changed: update the substitutions here).
subst_once() {
  local -n text=$1
  local from=$2 to=$3 rest
  if [[ $text != *"$from"* ]]; then
    die "render nginx config" "'$from' not found in $example_conf"
  fi
  rest=${text#*"$from"}
  if [[ $rest == *"$from"* ]]; then
    die "render nginx config" "'$from' occurs more than once in $example_conf"
  fi
  text=${text/"$from"/"$to"}
}

# render_nginx NAME AUTH_URL: writes $tmp/nginx-NAME.conf from the shipped example, on
# fresh ports; sets ng_imap ng_imaps ng_pop3 ng_pop3s.
render_nginx() {
  local name=$1 url=$2 conf
  port ng_imap
  port ng_imaps
  port ng_pop3
  port ng_pop3s
  conf=$(<"$example_conf")
  subst_once conf "pid /run/nginx-mail.pid;" "pid $tmp/nginx-$name.pid;"
  subst_once conf "error_log /var/log/nginx/mail-error.log info;" "error_log $tmp/nginx-$name-error.log info;"
  subst_once conf "auth_http http://127.0.0.1:7072/service/extension/nginx-lookup;" "auth_http $url;"
  subst_once conf '"change-me-to-a-long-random-string"' "\"$lookup_secret\""
  subst_once conf "/etc/ssl/certs/mail.example.com.crt;" "$tmp/cert.pem;"
  subst_once conf "/etc/ssl/private/mail.example.com.key;" "$tmp/key.pem;"
  subst_once conf "listen 143;" "listen 127.0.0.1:$ng_imap;"
  subst_once conf "listen 993 ssl;" "listen 127.0.0.1:$ng_imaps ssl;"
  subst_once conf "listen 110;" "listen 127.0.0.1:$ng_pop3;"
  subst_once conf "listen 995 ssl;" "listen 127.0.0.1:$ng_pop3s ssl;"
  if ((EUID != 0)); then
    subst_once conf "user www-data;" "" # the user directive needs root
  fi
  printf '%s\n' "$conf" >"$tmp/nginx-$name.conf"
}

# start_nginx NAME: nginx in the foreground on $tmp/nginx-NAME.conf.
start_nginx() {
  local name=$1
  spawn nginx -c "$tmp/nginx-$name.conf" -p "$tmp/" -e "$tmp/nginx-$name-error.log" \
    -g 'daemon off;' 2>>"$tmp/nginx-$name-error.log"
  local pid=${E2E_PIDS[-1]} p
  for p in "$ng_imap" "$ng_imaps" "$ng_pop3" "$ng_pop3s"; do
    wait_up "nginx $name" "$pid" 127.0.0.1 "$p"
  done
}

# ---- the raw client -----------------------------------------------------------------------

# mc PROTO MODE PORT USER PASS [ATTEMPTS]: one connection to nginx (MODE plain, starttls or
# ssl); tries to log in up to ATTEMPTS times (IMAP LOGIN with the password as a literal,
# POP3 USER/PASS), prints each reply with its delay and whether the server then closed the
# connection (it then stops); after a success prints the INBOX size and the first
# message's Subject. Exit 0 logged in, 1 refused, 2 timeout, 3 closed without a reply.
cat >"$tmp/mc.py" <<'PY'
import os, select, socket, ssl, sys, time

proto, mode, host, port, user, pw = sys.argv[1:7]
attempts = int(sys.argv[7]) if len(sys.argv) > 7 else 1
user, pw = os.fsencode(user), os.fsencode(pw)


class Closed(Exception):
    pass


def tls(sock):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx.wrap_socket(sock)


sock = socket.create_connection((host, int(port)), timeout=10)
if mode == "ssl":
    sock = tls(sock)
rfile = sock.makefile("rb")


def send(data):
    sock.sendall(data)


def line():
    raw = rfile.readline(65536)
    if not raw:
        raise Closed()
    text = raw.rstrip(b"\r\n")
    # an IMAP literal: the line goes on after it
    if proto == "imap" and text.endswith(b"}") and b"{" in text:
        n = int(text[text.rindex(b"{") + 1 : -1])
        text += b"\n" + rfile.read(n) + b"\n" + line()
    return text


def closed_soon():
    """Whether the server closes the connection within half a second (without sending
    anything more on it, which would make nginx log a failed SSL_shutdown)."""
    if not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
        if not select.select([sock], [], [], 0.5)[0]:
            return False
    return rfile.peek(1) == b""


def refused(i):
    if closed_soon():
        print(f"connection closed by the server after attempt {i}")
        return True
    return False


def show(label, text):
    print(f"{label}: {text.decode('utf-8', 'replace')}", flush=True)


def imap_cmd(tag, cmd):
    send(tag + b" " + cmd + b"\r\n")
    lines = []
    while True:
        ln = line()
        lines.append(ln)
        if ln.startswith(tag + b" "):
            return ln, lines


def imap_login(tag):
    send(tag + b' LOGIN "' + user + b'" {' + str(len(pw)).encode() + b"}\r\n")
    ln = line()
    if not ln.startswith(b"+"):
        return ln
    send(pw + b"\r\n")
    while True:
        ln = line()
        if ln.startswith(tag + b" "):
            return ln


def imap():
    global sock, rfile
    show("greeting", line())
    if mode == "starttls":
        ln, _ = imap_cmd(b"s1", b"STARTTLS")
        show("starttls", ln)
        sock = tls(sock)
        rfile = sock.makefile("rb")
    ln, lines = imap_cmd(b"c1", b"CAPABILITY")
    show("capability", lines[0])
    for i in range(1, attempts + 1):
        t = time.monotonic()
        try:
            ln = imap_login(b"a%d" % i)
        except Closed:
            print(f"attempt {i}: connection closed ({time.monotonic() - t:.1f}s)")
            return 3
        show(f"attempt {i} ({time.monotonic() - t:.1f}s)", ln)
        ok = ln.split(b" ", 2)[1:2] == [b"OK"]
        if ok or refused(i):
            break
    if not ok:
        return 1
    _, lines = imap_cmd(b"s2", b"SELECT INBOX")
    for ln in lines:
        if ln.endswith(b" EXISTS"):
            show("inbox", ln)
    _, lines = imap_cmd(b"f1", b"FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    for ln in lines:
        for part in ln.split(b"\n"):
            if part.lower().startswith(b"subject:"):
                show("message 1", part.strip())
    imap_cmd(b"z1", b"LOGOUT")
    return 0


def pop3_cmd(cmd):
    send(cmd + b"\r\n")
    return line()


def pop3():
    global sock, rfile
    show("greeting", line())
    if mode == "starttls":
        show("stls", pop3_cmd(b"STLS"))
        sock = tls(sock)
        rfile = sock.makefile("rb")
    for i in range(1, attempts + 1):
        t = time.monotonic()
        try:
            ln = pop3_cmd(b"USER " + user)
            if ln.startswith(b"+OK"):
                ln = pop3_cmd(b"PASS " + pw)
        except Closed:
            print(f"attempt {i}: connection closed ({time.monotonic() - t:.1f}s)")
            return 3
        show(f"attempt {i} ({time.monotonic() - t:.1f}s)", ln)
        ok = ln.startswith(b"+OK")
        if ok or refused(i):
            break
    if not ok:
        return 1
    show("stat", pop3_cmd(b"STAT"))
    send(b"TOP 1 0\r\n")
    while True:
        ln = line()
        if ln == b"." or ln.startswith(b"-ERR"):
            break
        if ln.lower().startswith(b"subject:"):
            show("message 1", ln)
    pop3_cmd(b"QUIT")
    return 0


try:
    sys.exit(imap() if proto == "imap" else pop3())
except socket.timeout:
    print("timeout: no answer within 10 s")
    sys.exit(2)
except Closed:
    print("connection closed")
    sys.exit(3)
PY
mc() { timeout 60 "$py" "$tmp/mc.py" "$1" "$2" 127.0.0.1 "$3" "${@:4}"; }

# curl with a bound, trusting the throwaway certificate.
c() { curl -sS --max-time 10 -k "$@"; }

# lookup PORT HEADER...: a bare auth_http request to route-lookup; prints the reply head.
lookup() {
  local p=$1
  shift
  local args=() h
  for h in "$@"; do args+=(-H "$h"); done
  curl -sS --max-time 10 -o /dev/null -D - "${args[@]}" "http://127.0.0.1:$p/service/extension/nginx-lookup" | tr -d '\r'
}

# ---- the world --------------------------------------------------------------------------

admin_token="e2e-admin-$$-$RANDOM"
lookup_secret="e2e-lookup-secret-$RANDOM$RANDOM"
auth_wait=1
auth_wait_max=2
alice_pw='alice-secret-1'
carol_pw='p+ss w%41rd-ü€' # '+', a space, a %XX that must not be decoded twice, UTF-8
alice_subject='Hello Alice from the nginx interop test'
carol_subject='A note for Carol'

echo "--- starting route-lookup (database $db)"
create_db "$pg_base" "$db"
start_route_lookup main
rl_main_http=$rl_http
rl_main_grpc=$rl_grpc
expect_ok "route-lookup /healthz answers" "ok" curl -sS --max-time 5 "http://127.0.0.1:$rl_main_http/healthz"

echo "--- starting Dovecot"
port dv_imap
port dv_pop3
printf '%s:{PLAIN}%s::::::\n' "alice@example.com" "$alice_pw" "carol@example.com" "$carol_pw" >"$tmp/passwd"
chmod 644 "$tmp/passwd"
write_dovecot_conf nginx-interop "plain login" "passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $tmp/passwd
}" "pop3_uidl_format = %08Xu%08Xv"
# put_message USER SUBJECT: one message in USER's INBOX (Maildir new/).
put_message() {
  local md="$tmp/mail/$1/Maildir"
  mkdir -p "$md/new" "$md/cur" "$md/tmp"
  printf 'From: Postmaster <postmaster@example.com>\nTo: %s\nSubject: %s\nDate: Sun, 29 Nov 2026 09:00:00 +0000\nMessage-ID: <%s@e2e.example.com>\n\nThis message was put in the Maildir by e2e/nginx_interop.sh.\n' \
    "$1" "$2" "${1%@*}" >"$md/new/1700000000.M1P1.e2e"
}
put_message alice@example.com "$alice_subject"
put_message carol@example.com "$carol_subject"
chown -R "$mail_uid:$mail_gid" "$tmp/mail"
spawn dovecot -F -c "$tmp/dovecot.conf" 2>>"$tmp/dovecot.log"
dv_pid=${E2E_PIDS[-1]}
wait_up dovecot "$dv_pid" 127.0.0.1 "$dv_imap"
wait_up dovecot "$dv_pid" 127.0.0.1 "$dv_pop3"

echo "--- seeding with zmprov"
cat >"$tmp/seed.zmp" <<EOF
# e2e/nginx_interop.sh
cd example.com
mcf zimbraDefaultDomainName example.com
# the Dovecot instance, as a Zimbra mailbox server
cs dovecot1.example.com zimbraServiceEnabled mailbox serviceAddress 127.0.0.1 zimbraImapBindPort $dv_imap zimbraPop3BindPort $dv_pop3
# route-lookup itself, as the lookup target garpu lists for nginx
cs 127.0.0.1 zimbraExtensionBindPort $rl_main_http zimbraReverseProxyLookupTarget TRUE
ca alice@example.com '$alice_pw' zimbraMailHost dovecot1.example.com
ca carol@example.com '$carol_pw' zimbraMailHost dovecot1.example.com
aaa alice@example.com ally@example.com
EOF
zmp() { timeout 30 "$zmprov_bin" -s "http://127.0.0.1:$rl_main_grpc" --admin-token "$admin_token" "$@"; }
capture zmp -f "$tmp/seed.zmp"
((rc == 0)) || die "zmprov seeds the directory" "$out"
ok "zmprov seeds the directory (domain, 2 servers, 2 accounts, alias, default domain)"

capture zmp garpu
garpu=$out
read -r first_url _ <<<"$garpu" || true
want_url="127.0.0.1:$rl_main_http/service/extension/nginx-lookup"
if ((rc == 0)) && [[ $first_url == "$want_url" && $garpu == *"$want_url " ]]; then
  ok "zmprov garpu lists route-lookup's URL ($first_url)"
else
  die "zmprov garpu lists route-lookup's URL" "exit $rc, wanted '$want_url ', got '$garpu'"
fi
auth_url="http://$first_url"

echo "--- route-lookup's auth_http endpoint, directly"
capture lookup "$rl_main_http"
if grep -qi '^auth-status: Authentication failed$' <<<"$out"; then
  ok "a bare GET of the lookup URL (no headers, no secret) gets Auth-Status: Authentication failed"
else
  not_ok "a bare GET of the lookup URL (no headers, no secret) gets Auth-Status: Authentication failed" "$out"
fi
common=("Auth-Method: plain" "Auth-User: alice@example.com" "Auth-Pass: x" "Auth-Protocol: imap" "Auth-Login-Attempt: 1" "Client-IP: 127.0.0.1")
capture lookup "$rl_main_http" "${common[@]}"
if grep -qi '^auth-status: Authentication failed$' <<<"$out" && ! grep -qi '^auth-server:' <<<"$out"; then
  ok "a lookup without X-Lookup-Secret gets Auth-Status: Authentication failed"
else
  not_ok "a lookup without X-Lookup-Secret gets Auth-Status: Authentication failed" "$out"
fi
capture lookup "$rl_main_http" "${common[@]}" "X-Lookup-Secret: not-$lookup_secret"
if grep -qi '^auth-status: Authentication failed$' <<<"$out" && grep -qi "^auth-wait: $auth_wait$" <<<"$out"; then
  ok "a lookup with a wrong X-Lookup-Secret is refused, with Auth-Wait: $auth_wait"
else
  not_ok "a lookup with a wrong X-Lookup-Secret is refused, with Auth-Wait: $auth_wait" "$out"
fi
capture lookup "$rl_main_http" "${common[@]}" "X-Lookup-Secret: $lookup_secret"
if grep -qi '^auth-status: OK$' <<<"$out" && grep -qi '^auth-server: 127.0.0.1$' <<<"$out" &&
  grep -qi "^auth-port: $dv_imap$" <<<"$out" && grep -qi '^auth-user: alice@example.com$' <<<"$out"; then
  ok "with the secret, imap for alice routes to Dovecot 127.0.0.1:$dv_imap"
else
  not_ok "with the secret, imap for alice routes to Dovecot 127.0.0.1:$dv_imap" "$out"
fi
capture lookup "$rl_main_http" "Auth-Method: plain" "Auth-User: ally@example.com" "Auth-Pass: x" \
  "Auth-Protocol: pop3" "Auth-Login-Attempt: 1" "Client-IP: 127.0.0.1" "X-Lookup-Secret: $lookup_secret"
if grep -qi '^auth-status: OK$' <<<"$out" && grep -qi "^auth-port: $dv_pop3$" <<<"$out" &&
  grep -qi '^auth-user: alice@example.com$' <<<"$out"; then
  ok "pop3 for the alias ally@ routes to Dovecot :$dv_pop3 as Auth-User alice@example.com"
else
  not_ok "pop3 for the alias ally@ routes to Dovecot :$dv_pop3 as Auth-User alice@example.com" "$out"
fi
capture lookup "$rl_main_http" "Auth-Method: apop" "Auth-User: alice@example.com" "Auth-Salt: <1.2@x>" \
  "Auth-Pass: 0123456789abcdef0123456789abcdef" "Auth-Protocol: pop3" "Auth-Login-Attempt: 1" \
  "Client-IP: 127.0.0.1" "X-Lookup-Secret: $lookup_secret"
if grep -qi '^auth-status: Authentication failed$' <<<"$out"; then
  ok "Auth-Method apop is refused (no cleartext password to replay)"
else
  not_ok "Auth-Method apop is refused (no cleartext password to replay)" "$out"
fi
capture lookup "$rl_main_http" "Auth-Method: plain" "Auth-User: nobody@example.com" "Auth-Pass: x" \
  "Auth-Protocol: imap" "Auth-Login-Attempt: $((auth_wait_max + 1))" "Client-IP: 127.0.0.1" "X-Lookup-Secret: $lookup_secret"
if grep -qi '^auth-status: Authentication failed$' <<<"$out" && ! grep -qi '^auth-wait:' <<<"$out"; then
  ok "past --auth-wait-max-attempts ($auth_wait_max) a failure carries no Auth-Wait"
else
  not_ok "past --auth-wait-max-attempts ($auth_wait_max) a failure carries no Auth-Wait" "$out"
fi

echo "--- nginx from deploy/nginx/nginx-mail.conf"
throwaway_cert "$tmp" -subj /CN=mail.example.com
render_nginx a "$auth_url"
capture nginx -t -c "$tmp/nginx-a.conf" -p "$tmp/" -e "$tmp/nginx-a-error.log"
if ((rc == 0)); then
  ok "nginx -t accepts the shipped nginx-mail.conf (ports, paths, URL, secret, cert substituted)"
else
  die "nginx -t accepts the shipped nginx-mail.conf" "$out"
fi
start_nginx a
imap=$ng_imap imaps=$ng_imaps pop3=$ng_pop3 pop3s=$ng_pop3s
echo "(nginx: imap $imap, imaps $imaps, pop3 $pop3, pop3s $pop3s; Dovecot: imap $dv_imap, pop3 $dv_pop3)"

echo "--- IMAP through nginx"
alice=(-u "alice@example.com:$alice_pw")
expect_ok "IMAP STARTTLS: alice logs in and lists her mailboxes" 'LIST .*INBOX' \
  c --ssl-reqd "${alice[@]}" "imap://127.0.0.1:$imap/"
expect_ok "IMAP STARTTLS: fetch INBOX;UID=1 has alice's Subject" "^Subject: $alice_subject" \
  c --ssl-reqd "${alice[@]}" "imap://127.0.0.1:$imap/INBOX;UID=1"
expect_ok "IMAPS (implicit TLS): fetch INBOX;UID=1 has alice's Subject" "^Subject: $alice_subject" \
  c "${alice[@]}" "imaps://127.0.0.1:$imaps/INBOX;UID=1"
expect_ok "IMAP: the odd password ('+', ' ', '%41', UTF-8) works with AUTHENTICATE PLAIN" "^Subject: $carol_subject" \
  c --ssl-reqd -u "carol@example.com:$carol_pw" "imap://127.0.0.1:$imap/INBOX;UID=1"
expect_ok "IMAP: the odd password works with AUTHENTICATE LOGIN" "^Subject: $carol_subject" \
  c --ssl-reqd --login-options 'AUTH=LOGIN' -u "carol@example.com:$carol_pw" "imap://127.0.0.1:$imap/INBOX;UID=1"
expect_ok "IMAP raw: the odd password as a LOGIN literal reaches carol's INBOX" "message 1: Subject: $carol_subject" \
  mc imap starttls "$imap" carol@example.com "$carol_pw"
expect_ok "IMAP: the alias ally@example.com reaches alice's mailbox" "^Subject: $alice_subject" \
  c --ssl-reqd -u "ally@example.com:$alice_pw" "imap://127.0.0.1:$imap/INBOX;UID=1"
expect_ok "IMAP: the unqualified login 'alice' reaches alice's mailbox (default domain)" "^Subject: $alice_subject" \
  c --ssl-reqd -u "alice:$alice_pw" "imap://127.0.0.1:$imap/INBOX;UID=1"
expect_ok "IMAP: a login in capitals (ALICE@Example.COM) reaches alice's mailbox" "^Subject: $alice_subject" \
  c --ssl-reqd -u "ALICE@Example.COM:$alice_pw" "imap://127.0.0.1:$imap/INBOX;UID=1"
expect_fail "IMAP: a wrong password is refused (curl fails)" "Login denied|denied|failed" \
  c --ssl-reqd -u "alice@example.com:wrong-$alice_pw" "imap://127.0.0.1:$imap/"
capture mc imap starttls "$imap" alice@example.com "wrong-$alice_pw"
if ((rc == 1)) && grep -qE '^attempt 1 \([01]\.[0-9]s\): a1 NO \[AUTHENTICATIONFAILED\]' <<<"$out" &&
  grep -qx 'connection closed by the server after attempt 1' <<<"$out"; then
  ok "IMAP raw: a wrong password gets Dovecot's 'NO [AUTHENTICATIONFAILED]', then nginx closes (proxy_pass_error_message)"
else
  not_ok "IMAP raw: a wrong password gets Dovecot's 'NO [AUTHENTICATIONFAILED]', then nginx closes (proxy_pass_error_message)" "exit $rc: $out"
fi
capture mc imap starttls "$imap" nobody@example.com "whatever"
if ((rc == 1)) && grep -qE '^attempt 1 \([1-9][0-9.]*s\): a1 NO Authentication failed' <<<"$out"; then
  ok "IMAP raw: an unknown user gets 'NO Authentication failed' after Auth-Wait (${auth_wait}s)"
else
  not_ok "IMAP raw: an unknown user gets 'NO Authentication failed' after Auth-Wait (${auth_wait}s)" "exit $rc: $out"
fi
expect_fail "IMAP: an unknown user is refused (curl fails)" "denied|failed" \
  c --ssl-reqd -u "nobody@example.com:whatever" "imap://127.0.0.1:$imap/"
capture mc imap starttls "$imap" nobody@example.com "whatever" $((auth_wait_max + 2))
if ((rc == 1)) && [[ $(grep -cE '^attempt [0-9]+ \([1-9][0-9.]*s\): a[0-9]+ NO Authentication failed' <<<"$out") == "$auth_wait_max" ]] &&
  grep -qE "^attempt $((auth_wait_max + 1)) \([0-9.]+s\): a$((auth_wait_max + 1)) NO Authentication failed" <<<"$out" &&
  grep -qx "connection closed by the server after attempt $((auth_wait_max + 1))" <<<"$out"; then
  ok "IMAP raw: after $auth_wait_max delayed retries on one connection the next failure closes it"
else
  not_ok "IMAP raw: after $auth_wait_max delayed retries on one connection the next failure closes it" "exit $rc: $out"
fi
capture mc imap plain "$imap" alice@example.com "$alice_pw"
if ((rc != 0)) && grep -q 'LOGINDISABLED' <<<"$out" && ! grep -q '^message 1' <<<"$out"; then
  ok "IMAP: cleartext LOGIN before STARTTLS is refused (starttls only, LOGINDISABLED)"
else
  not_ok "IMAP: cleartext LOGIN before STARTTLS is refused (starttls only, LOGINDISABLED)" "exit $rc: $out"
fi

echo "--- POP3 through nginx"
expect_ok "POP3 STLS: alice logs in, LIST shows one message" '^1 [0-9]+' \
  c --ssl-reqd "${alice[@]}" "pop3://127.0.0.1:$pop3/"
expect_ok "POP3 STLS: RETR 1 has alice's Subject" "^Subject: $alice_subject" \
  c --ssl-reqd "${alice[@]}" "pop3://127.0.0.1:$pop3/1"
expect_ok "POP3S (implicit TLS): RETR 1 has alice's Subject" "^Subject: $alice_subject" \
  c "${alice[@]}" "pop3s://127.0.0.1:$pop3s/1"
expect_ok "POP3: the odd password works with AUTH PLAIN" "^Subject: $carol_subject" \
  c --ssl-reqd -u "carol@example.com:$carol_pw" "pop3://127.0.0.1:$pop3/1"
expect_ok "POP3 raw: the odd password works with USER/PASS" "message 1: Subject: $carol_subject" \
  mc pop3 starttls "$pop3" carol@example.com "$carol_pw"
expect_ok "POP3: the alias ally@example.com reaches alice's mailbox" "^Subject: $alice_subject" \
  c --ssl-reqd -u "ally@example.com:$alice_pw" "pop3://127.0.0.1:$pop3/1"
expect_fail "POP3: a wrong password is refused (curl fails)" "denied|failed" \
  c --ssl-reqd -u "alice@example.com:wrong-$alice_pw" "pop3://127.0.0.1:$pop3/1"
capture mc pop3 starttls "$pop3" alice@example.com "wrong-$alice_pw"
if ((rc == 1)) && grep -qE '^attempt 1 \([01]\.[0-9]s\): -ERR \[AUTH\]' <<<"$out" &&
  grep -qx 'connection closed by the server after attempt 1' <<<"$out"; then
  ok "POP3 raw: a wrong password gets Dovecot's '-ERR [AUTH] ...', then nginx closes"
else
  not_ok "POP3 raw: a wrong password gets Dovecot's '-ERR [AUTH] ...', then nginx closes" "exit $rc: $out"
fi
capture mc pop3 ssl "$pop3s" nobody@example.com "whatever"
if ((rc == 1)) && grep -qE '^attempt 1 \([1-9][0-9.]*s\): -ERR Authentication failed' <<<"$out"; then
  ok "POP3 raw: an unknown user gets '-ERR Authentication failed' after Auth-Wait"
else
  not_ok "POP3 raw: an unknown user gets '-ERR Authentication failed' after Auth-Wait" "exit $rc: $out"
fi

echo "--- a second route-lookup with --verify-passwords, and a second nginx on it"
start_route_lookup verify --verify-passwords
rl_verify_http=$rl_http
render_nginx b "http://127.0.0.1:$rl_verify_http/service/extension/nginx-lookup"
start_nginx b
expect_ok "verified IMAP: the odd password survives nginx's Auth-Pass escaping and matches the argon2 hash" \
  "^Subject: $carol_subject" c --ssl-reqd -u "carol@example.com:$carol_pw" "imap://127.0.0.1:$ng_imap/INBOX;UID=1"
expect_ok "verified POP3 USER/PASS: the odd password matches too" "message 1: Subject: $carol_subject" \
  mc pop3 ssl "$ng_pop3s" carol@example.com "$carol_pw"
expect_ok "verified IMAP: the alias logs in with alice's password" "message 1: Subject: $alice_subject" \
  mc imap ssl "$ng_imaps" ally@example.com "$alice_pw"
mismatches_before=$(grep -c 'Password mismatch' "$tmp/dovecot.log" || true)
capture mc imap starttls "$ng_imap" carol@example.com "${carol_pw/ /}"
sleep 0.2 # let Dovecot's log process write anything it was going to
mismatches_after=$(grep -c 'Password mismatch' "$tmp/dovecot.log" || true)
if ((rc == 1)) && grep -qE '^attempt 1 \([1-9][0-9.]*s\): a1 NO Authentication failed' <<<"$out" &&
  log_has "$tmp/route-lookup-verify.log" 'lookup failed reason="bad_password"' &&
  ((mismatches_after == mismatches_before)); then
  ok "verified IMAP: a wrong password is refused by route-lookup (bad_password), Dovecot never asked"
else
  not_ok "verified IMAP: a wrong password is refused by route-lookup (bad_password), Dovecot never asked" \
    "exit $rc: $out
Dovecot password mismatches before $mismatches_before, after $mismatches_after"
fi
# A wrong password differing only in how it would be decoded: %41 read as "A".
capture mc imap ssl "$ng_imaps" carol@example.com "${carol_pw/\%41/A}"
if ((rc == 1)) && grep -q 'NO Authentication failed' <<<"$out"; then
  ok "verified IMAP: the password with '%41' replaced by 'A' is refused (no double decoding)"
else
  not_ok "verified IMAP: the password with '%41' replaced by 'A' is refused (no double decoding)" "exit $rc: $out"
fi

echo "--- our proxy in front of the same Dovecot (the mailbox server may be a real Dovecot)"
proxy_bin=${PROXY_BIN:-$root/target/debug/proxy}
if [[ -x $proxy_bin ]]; then
  port px_imap
  port px_imaps
  port px_pop3
  port px_pop3s
  port px_admin
  port px_cache
  spawn "$(dirname "$proxy_bin")/cache-node" --listen "127.0.0.1:$px_cache" --admin-listen off 2>"$tmp/cache-node.log"
  wait_up "cache-node" "${E2E_PIDS[-1]}" 127.0.0.1 "$px_cache"
  NO_COLOR=1 RUST_LOG=info spawn "$proxy_bin" --imap-listen "127.0.0.1:$px_imap" --imaps-listen "127.0.0.1:$px_imaps" \
    --pop3-listen "127.0.0.1:$px_pop3" --pop3s-listen "127.0.0.1:$px_pop3s" \
    --tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem" --lookup-url "$auth_url" --lookup-secret "$lookup_secret" \
    --memcached "127.0.0.1:$px_cache" --admin-listen "127.0.0.1:$px_admin" >"$tmp/proxy.log" 2>&1
  wait_up "our proxy" "${E2E_PIDS[-1]}" 127.0.0.1 "$px_pop3s"
  expect_ok "zproxy IMAP STARTTLS: alice's message from Dovecot" "^Subject: $alice_subject" \
    c --ssl-reqd "${alice[@]}" "imap://127.0.0.1:$px_imap/INBOX;UID=1"
  expect_ok "zproxy IMAPS: alice's message from Dovecot" "^Subject: $alice_subject" \
    c "${alice[@]}" "imaps://127.0.0.1:$px_imaps/INBOX;UID=1"
  expect_ok "zproxy IMAP: the odd password through AUTHENTICATE PLAIN reaches carol's Dovecot INBOX" "^Subject: $carol_subject" \
    c --ssl-reqd -u "carol@example.com:$carol_pw" "imap://127.0.0.1:$px_imap/INBOX;UID=1"
  expect_ok "zproxy IMAP: the alias ally@example.com reaches alice's Dovecot mailbox" "^Subject: $alice_subject" \
    c --ssl-reqd -u "ally@example.com:$alice_pw" "imap://127.0.0.1:$px_imap/INBOX;UID=1"
  expect_ok "zproxy POP3 STLS: RETR 1 from Dovecot" "^Subject: $alice_subject" \
    c --ssl-reqd "${alice[@]}" "pop3://127.0.0.1:$px_pop3/1"
  expect_ok "zproxy POP3S: RETR 1 from Dovecot" "^Subject: $alice_subject" \
    c "${alice[@]}" "pop3s://127.0.0.1:$px_pop3s/1"
  expect_fail "zproxy IMAP: a wrong password is refused by Dovecot (curl fails)" "denied|failed" \
    c --ssl-reqd -u "alice@example.com:wrong-$alice_pw" "imap://127.0.0.1:$px_imap/"
  expect_fail "zproxy IMAP: LOGIN before STARTTLS is refused (starttls only)" "denied|failed|STARTTLS|PRIVACY" \
    c -u "alice@example.com:$alice_pw" "imap://127.0.0.1:$px_imap/"
  # Every LOGIN string form and AUTHENTICATE PLAIN, raw over IMAPS, each reading alice's
  # message from Dovecot; then her route read back from the cache node, and a login served
  # from it (the proxy's cache counter grows).
  cat >"$tmp/forms.py" <<'PY'
import socket, ssl, sys, base64
port, user, pw, want = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3].encode(), sys.argv[4].encode()
def q(b): return b'"' + b.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
forms = {
    "quoted": [b"a LOGIN " + q(user) + b" " + q(pw) + b"\r\n"],
    "synchronizing literals": [b"a LOGIN {%d}\r\n" % len(user), user + b" {%d}\r\n" % len(pw), pw + b"\r\n"],
    "LITERAL+": [b"a LOGIN {%d+}\r\n" % len(user) + user + b" {%d+}\r\n" % len(pw) + pw + b"\r\n"],
    "AUTHENTICATE PLAIN with SASL-IR": [b"a AUTHENTICATE PLAIN " + base64.b64encode(b"\0" + user + b"\0" + pw) + b"\r\n"],
}
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
bad = 0
for name, writes in forms.items():
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="localhost")
    f = s.makefile("rb")
    f.readline()
    for i, w in enumerate(writes):
        s.sendall(w)
        if i < len(writes) - 1:
            cont = f.readline()
            assert cont.startswith(b"+"), cont
    while True:
        line = f.readline()
        if line.startswith(b"a ") or not line:
            break
    s.sendall(b"b SELECT INBOX\r\nc FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]\r\nd LOGOUT\r\n")
    rest = f.read()
    ok = line.startswith(b"a OK") and want in rest
    bad += not ok
    print(("ok " if ok else "FAILED ") + name + ": " + line.decode().strip())
sys.exit(bad)
PY
  expect_ok "zproxy IMAPS to Dovecot: LOGIN quoted, with synchronizing literals, with LITERAL+, and AUTHENTICATE PLAIN all read alice's message" \
    "^ok AUTHENTICATE" "$py" "$tmp/forms.py" "$px_imaps" alice@example.com "$alice_pw" "Subject: $alice_subject"
  cached=$(printf 'get route:proto=imap;user=alice@example.com\r\nquit\r\n' | timeout 5 "$py" -c 'import socket,sys; s=socket.create_connection(("127.0.0.1",int(sys.argv[1]))); s.sendall(sys.stdin.buffer.read()); print(s.makefile("rb").read().decode())' "$px_cache")
  if grep -q "^127.0.0.1:$dv_imap" <<<"$cached"; then
    ok "zproxy cached alice's route to Dovecot (127.0.0.1:$dv_imap) on the cache node"
  else
    not_ok "zproxy cached alice's route to Dovecot (127.0.0.1:$dv_imap) on the cache node" "$cached"
  fi
  px_cache_hits() { curl -s --max-time 5 "http://127.0.0.1:$px_admin/metrics" | awk '$1 == "proxy_routes_total{source=\"cache\"}" { print $2 }'; }
  before=$(px_cache_hits)
  c --ssl-reqd "${alice[@]}" "imap://127.0.0.1:$px_imap/INBOX;UID=1" >/dev/null || true
  after=$(px_cache_hits)
  if [[ -n $before && -n $after ]] && ((after == before + 1)); then
    ok "zproxy: alice's next login to Dovecot came from the cache (routes from cache $before -> $after)"
  else
    not_ok "zproxy: alice's next login to Dovecot came from the cache" "routes from cache: $before -> $after"
  fi

  echo "--- behind a load balancer: HAProxy (send-proxy, send-proxy-v2) and nginx stream (proxy_protocol on) in front of our proxy"
  port lb_imap
  port lb_admin
  # Our second proxy trusts PROXY headers from 127.0.0.1 only and throttles per client IP
  # (2 connections per minute), so a count against the balancer would show at once.
  RUST_LOG=info spawn "$proxy_bin" --imap-listen "127.0.0.1:$lb_imap" --imaps-listen off \
    --pop3-listen off --pop3s-listen off --starttls off --lookup-url "$auth_url" --lookup-secret "$lookup_secret" \
    --memcached "127.0.0.1:$px_cache" --admin-listen "127.0.0.1:$lb_admin" \
    --proxy-protocol-from 127.0.0.1 --ip-login-limit 2 --ip-login-limit-time 60 --preauth-timeout 2 \
    2>"$tmp/proxy-lb.log"
  wait_up "our proxy behind the balancers" "${E2E_PIDS[-1]}" 127.0.0.1 "$lb_imap"
  port hp_v1
  port hp_v2
  cat >"$tmp/haproxy.cfg" <<HAP
global
  maxconn 200
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
listen imap-v1
  bind 127.0.0.1:$hp_v1
  server zproxy 127.0.0.1:$lb_imap send-proxy
listen imap-v2
  bind 127.0.0.1:$hp_v2
  server zproxy 127.0.0.1:$lb_imap send-proxy-v2
HAP
  spawn haproxy -db -f "$tmp/haproxy.cfg" >"$tmp/haproxy.log" 2>&1
  wait_up haproxy "${E2E_PIDS[-1]}" 127.0.0.1 "$hp_v2"
  port ns_imap
  cat >"$tmp/nginx-stream.conf" <<NGX
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1;
pid $tmp/nginx-stream.pid;
events { worker_connections 64; }
stream {
  server {
    listen 127.0.0.1:$ns_imap;
    proxy_pass 127.0.0.1:$lb_imap;
    proxy_protocol on;
  }
}
NGX
  spawn nginx -c "$tmp/nginx-stream.conf" -p "$tmp/" -e "$tmp/nginx-stream-error.log" -g 'daemon off;' \
    2>>"$tmp/nginx-stream-error.log"
  wait_up "nginx stream" "${E2E_PIDS[-1]}" 127.0.0.1 "$ns_imap"
  rips_before=$(grep -c 'rip=127\.0\.0\.9,' "$tmp/dovecot.log" || true)
  expect_ok "HAProxy send-proxy (v1) from 127.0.0.9: alice's message from Dovecot" "^Subject: $alice_subject" \
    c --interface 127.0.0.9 "${alice[@]}" "imap://127.0.0.1:$hp_v1/INBOX;UID=1"
  expect_ok "HAProxy send-proxy-v2 from 127.0.0.9: alice's message from Dovecot" "^Subject: $alice_subject" \
    c --interface 127.0.0.9 "${alice[@]}" "imap://127.0.0.1:$hp_v2/INBOX;UID=1"
  sleep 0.3
  rips=$(($(grep -c 'rip=127\.0\.0\.9,' "$tmp/dovecot.log" || true) - rips_before))
  if ((rips == 2)); then
    ok "Dovecot logged both logins with the client's address (rip=127.0.0.9), not the balancer's"
  else
    not_ok "Dovecot logged both logins with the client's address (rip=127.0.0.9)" "$(grep 'imap-login: Login' "$tmp/dovecot.log" | tail -n 3)"
  fi
  expect_fail "the per-IP limit counts 127.0.0.9 (its third connection in a minute is refused)" "rejected|denied|failed|BYE" \
    c -v --interface 127.0.0.9 "${alice[@]}" "imap://127.0.0.1:$hp_v1/INBOX;UID=1"
  expect_ok "... and not the balancer: 127.0.0.10 through the same HAProxy still logs in" "^Subject: $alice_subject" \
    c --interface 127.0.0.10 "${alice[@]}" "imap://127.0.0.1:$hp_v1/INBOX;UID=1"
  expect_ok "nginx stream proxy_protocol on, from 127.0.0.11: alice's message from Dovecot" "^Subject: $alice_subject" \
    c --interface 127.0.0.11 "${alice[@]}" "imap://127.0.0.1:$ns_imap/INBOX;UID=1"
  sleep 0.3
  if grep -q 'rip=127\.0\.0\.11,' "$tmp/dovecot.log"; then
    ok "Dovecot saw nginx stream's client as rip=127.0.0.11"
  else
    not_ok "Dovecot saw nginx stream's client as rip=127.0.0.11" "$(grep 'imap-login: Login' "$tmp/dovecot.log" | tail -n 3)"
  fi
  # From an address not in --proxy-protocol-from (127.0.0.12 is not 127.0.0.1), a PROXY
  # header is refused and nothing reaches route-lookup.
  lookups_before=$(grep -c 'lookup' "$tmp/route-lookup-main.log" || true)
  refused=$(printf 'PROXY TCP4 203.0.113.9 127.0.0.1 1 143\r\na LOGIN alice@example.com x\r\n' |
    timeout 5 "$py" -c 'import socket,sys; s=socket.create_connection(("127.0.0.1",int(sys.argv[1])),source_address=("127.0.0.12",0)); s.sendall(sys.stdin.buffer.read()); print(s.makefile("rb").read().decode(errors="replace"))' "$lb_imap" || true)
  if grep -q 'PROXY protocol header not accepted' <<<"$refused"; then
    ok "a PROXY header from an unlisted address (127.0.0.12) is refused"
  else
    not_ok "a PROXY header from an unlisted address (127.0.0.12) is refused" "$refused"
  fi
  # A listed peer whose header is malformed or absent is closed; nothing is looked up.
  # (wait_up's probe connection already counted one.)
  header_errors() { curl -s --max-time 5 "http://127.0.0.1:$lb_admin/metrics" | awk '$1 == "proxy_protocol_header_errors_total" { print $2 }'; }
  errors_before=$(header_errors)
  junk=$(printf 'PROXY TCP4 not-an-address\r\n' |
    timeout 5 "$py" -c 'import socket,sys; s=socket.create_connection(("127.0.0.1",int(sys.argv[1]))); s.sendall(sys.stdin.buffer.read())
try: print(repr(s.recv(100)))
except OSError as e: print("closed", e)' "$lb_imap" || true)
  silent=$(timeout 8 "$py" -c 'import socket,sys,time; s=socket.create_connection(("127.0.0.1",int(sys.argv[1]))); t=time.time(); d=s.recv(100); print(repr(d), round(time.time()-t,1))' "$lb_imap" || true)
  lookups_after=$(grep -c 'lookup' "$tmp/route-lookup-main.log" || true)
  errors=$(($(header_errors) - errors_before))
  if [[ $junk == "b''" || $junk == closed* ]] && [[ $silent == "b'' "* ]] && ((errors == 2)) &&
    [[ $lookups_before == "$lookups_after" ]]; then
    ok "from the balancer's address a malformed header and a missing one (after --preauth-timeout: ${silent#b\'\' } s) close the connection, are counted ($errors) and reach no route-lookup"
  else
    not_ok "from the balancer's address a malformed or missing header closes the connection" "junk: $junk; silent: $silent; errors: $errors; lookups $lookups_before -> $lookups_after"
  fi
else
  not_ok "our proxy's binary is at $proxy_bin (cargo build -p proxy)"
fi

echo "--- the logs"
if log_has "$tmp/route-lookup-main.log" 'lookup failed reason="bad_secret"'; then
  ok "route-lookup logged the secret-less lookups as bad_secret"
else
  not_ok "route-lookup logged the secret-less lookups as bad_secret"
fi
# (nginx 1.22 logs a client writing after nginx closed the TLS session as crit
# "SSL_shutdown() failed"; that is the client's doing, not a fault.)
if grep -hE '\[(alert|emerg|crit)\]' "$tmp"/nginx-*-error.log | grep -v 'SSL_shutdown() failed' >/dev/null; then
  not_ok "nginx logged no alert/crit/emerg" "$(grep -E '\[(alert|emerg|crit)\]' "$tmp"/nginx-*-error.log)"
else
  ok "nginx logged no alert/crit/emerg"
fi

summary "nginx interop"
