#!/usr/bin/env bash
# Real mail clients against mailbox-stub (IMAP4rev1 + POP3, in-memory mail), with passwords
# checked by route-lookup over gRPC.
#
# Starts route-lookup on a fresh PostgreSQL database, seeds it with zmprov (domain, this
# mailbox server and another one, one account per group of checks so that each starts from
# the generated 3-message INBOX, an alias, a locked account, an account of the other mail
# host), and mailbox-stub with IMAP, POP3 (STARTTLS/STLS) and IMAPS, POP3S listeners on a
# throwaway certificate. Then checks:
#   - curl: imap:// LIST, fetch INBOX/;UID=2 and INBOX/;MAILINDEX=1, SEARCH, IMAP with
#     STARTTLS (--ssl-reqd --cacert), imaps://, the odd password (AUTHENTICATE PLAIN), an
#     alias; pop3:// LIST and RETR 1 (dot-stuffing undone, byte-identical to the IMAP fetch),
#     pop3:// with STLS, pop3s://; Subject/To/X-Mailbox-Host name the account and host;
#     wrong password / other mail host refused (with the server's text in curl -v);
#   - Python imaplib and raw sockets (e2e/mailbox_clients.py imap): LOGIN with a password
#     holding ' ', '+', '"' and '\', sync literals, LITERAL+, pipelining, AUTHENTICATE PLAIN
#     (also SASL-IR), STARTTLS, IMAPS, SELECT/EXAMINE, SEARCH, FETCH (FLAGS UID INTERNALDATE
#     RFC822.SIZE ENVELOPE BODYSTRUCTURE, BODY.PEEK[] keeps and BODY[] sets \Seen,
#     HEADER.FIELDS, TEXT, partial, BODY[1] of the multipart message), STORE (+/-FLAGS,
#     .SILENT, UID STORE), APPEND (APPENDUID, flags, date), COPY (COPYUID), EXPUNGE,
#     CREATE/RENAME/DELETE (also of a folder with a subfolder, and LIST % of a nested one),
#     LIST/LSUB/STATUS, a flag change seen by a second session, IDLE woken by another
#     session's APPEND;
#   - Python poplib (mailbox_clients.py pop3): USER/PASS, STLS, STAT/LIST/UIDL, RETR
#     (byte-identical to IMAP), TOP 1 0 / TOP 1 2, DELE+QUIT persisting (POP3 and IMAP
#     view), RSET, POP3S;
#   - refusals (mailbox_clients.py refusals): wrong password, locked account, account of the
#     other mail host ("not on mbx1.example.com"), unknown user, IMAP and POP3, exact replies;
#   - mbsync (isync) over STARTTLS, Patterns *, Pull: every folder and message lands in a
#     Maildir byte-identical to IMAP BODY.PEEK[], flags mapped, nothing marked \Seen; a
#     second run picks up exactly one newly appended message;
#   - fetchmail over POP3 with STLS and --keep into an MDA: every message delivered
#     byte-identical (but for its Received: line), the dot line unstuffed, all kept.
# Prints "ok - ..." / "not ok - ..." per check (with evidence and log tails on failure) and
# exits non-zero if any failed. Needs: curl openssl postgresql-client python3 isync
# fetchmail, PostgreSQL on 127.0.0.1:5432 with trust auth (see PGURL), and the binaries
# (cargo build -p mailbox-stub -p route-lookup -p zmprov). KEEP_TMP=1 keeps the temporary
# directory (configs, logs, Maildir) for inspection.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=e2e/lib.sh
source "$root/e2e/lib.sh"
mbx_bin=${MAILBOX_STUB_BIN:-$root/target/debug/mailbox-stub}
rl_bin=${ROUTE_LOOKUP_BIN:-$root/target/debug/route-lookup}
zmprov_bin=${ZMPROV_BIN:-$root/target/debug/zmprov}
pg_base=${PGURL:-postgres://postgres@127.0.0.1:5432}
py=/usr/bin/python3
[[ -x $py ]] || py=$(command -v python3)
clients=$root/e2e/mailbox_clients.py
host=mbx1.example.com

for b in "$mbx_bin" "$rl_bin" "$zmprov_bin"; do
  [[ -x $b ]] || { echo "no binary at $b (cargo build -p mailbox-stub -p route-lookup -p zmprov)" >&2; exit 1; }
done
need_commands "apt-get install -y curl openssl postgresql-client isync fetchmail" curl openssl psql mbsync fetchmail timeout

export PGCONNECT_TIMEOUT=10
scratch_dir mailbox-clients # $tmp, removed at exit (lib.sh)
db="e2e_mailbox_$(date +%s)_$$"

# ---- reporting (ok, not_ok, die, capture, expect_ok, expect_fail, check: lib.sh) ---------

# log_tails (a hook of lib.sh's not_ok and run_checks): the tails of the logs.
log_tails() { tail_logs 12 0 "$tmp"/route-lookup.log "$tmp"/mailbox-stub.log; }

# py_clients ARGS: e2e/mailbox_clients.py against this run's servers, bounded.
py_clients() {
  timeout 120 "$py" "$clients" --seed "$tmp/seed.zmp" --cafile "$tmp/cert.pem" --hostname "$host" \
    --imap "$imap" --imaps "$imaps" --pop3 "$pop3" --pop3s "$pop3s" "$@"
}
# run_py GROUP [ARGS]: runs a group of checks of mailbox_clients.py, shows and counts them.
run_py() { run_checks "mailbox_clients.py $1" py_clients "$@"; }

# ---- helpers ----------------------------------------------------------------------------

# curl with a bound, trusting the throwaway certificate.
c() { curl -sS --max-time 10 --cacert "$tmp/cert.pem" "$@"; }

# ---- setup ------------------------------------------------------------------------------

echo "--- setup (temporary directory $tmp, database $db)"
throwaway_cert "$tmp" -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1"
create_db "$pg_base" "$db"

token=e2e-mailbox-$$
port rl_http
port rl_grpc
spawn_route_lookup "$rl_bin" "$tmp/route-lookup.log" info --admin-token "$token"
wait_route_lookup route-lookup "$tmp/route-lookup.log"

# One account per group of checks, so each starts from the generated INBOX. The Python
# side reads the passwords from this file.
odd_pw='o d+"q\z'
cat >"$tmp/seed.zmp" <<SEED
cd example.com
cs $host zimbraServiceEnabled mailbox serviceAddress 127.0.0.1
cs mbx2.example.com zimbraServiceEnabled mailbox serviceAddress 127.0.0.1
ca curl@example.com "curl pw+1" zimbraMailHost $host
aaa curl@example.com curlalias@example.com
ca odd@example.com "o d+\\"q\\\\z" zimbraMailHost $host
ca search@example.com pw-search zimbraMailHost $host
ca fetch@example.com pw-fetch zimbraMailHost $host
ca seen@example.com pw-seen zimbraMailHost $host
ca store@example.com pw-store zimbraMailHost $host
ca append@example.com pw-append zimbraMailHost $host
ca copy@example.com pw-copy zimbraMailHost $host
ca expunge@example.com pw-expunge zimbraMailHost $host
ca folders@example.com pw-folders zimbraMailHost $host
ca tree@example.com pw-tree zimbraMailHost $host
ca tree2@example.com pw-tree2 zimbraMailHost $host
ca idle@example.com pw-idle zimbraMailHost $host
ca pop@example.com pw-pop zimbraMailHost $host
ca popdele@example.com pw-popdele zimbraMailHost $host
ca poprset@example.com pw-poprset zimbraMailHost $host
ca sync@example.com pw-sync zimbraMailHost $host
ca fm@example.com pw-fm zimbraMailHost $host
ca locked@example.com pw-locked zimbraMailHost $host zimbraAccountStatus locked
ca far@example.com pw-far zimbraMailHost mbx2.example.com
SEED
capture timeout 60 "$zmprov_bin" -s "http://127.0.0.1:$rl_grpc" --admin-token "$token" -f "$tmp/seed.zmp"
((rc == 0)) || die "seed the directory with zmprov" "$out"

port imap
port imaps
port pop3
port pop3s
NO_COLOR=1 RUST_LOG=info spawn "$mbx_bin" --hostname "$host" \
  --imap-listen "127.0.0.1:$imap" --pop3-listen "127.0.0.1:$pop3" \
  --imaps-listen "127.0.0.1:$imaps" --pop3s-listen "127.0.0.1:$pop3s" \
  --tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem" \
  --directory "http://127.0.0.1:$rl_grpc" --admin-token "$token" --messages 3 \
  --grace-period 1 2>"$tmp/mailbox-stub.log" >&2
mbx_pid=${E2E_PIDS[-1]}
wait_log mailbox-stub "$mbx_pid" "$tmp/mailbox-stub.log" "mailbox-stub ready"
for p in "$imap" "$imaps" "$pop3" "$pop3s"; do
  wait_port 127.0.0.1 "$p" || die "mailbox-stub listens on $p"
done
echo "(route-lookup grpc $rl_grpc; mailbox-stub imap $imap, imaps $imaps, pop3 $pop3, pop3s $pop3s)"

# ---- curl -------------------------------------------------------------------------------

echo "--- curl"
cu=(-u "curl@example.com:curl pw+1")
subj="Subject: Message %s for curl@example.com on $host"
capture c "${cu[@]}" "imap://127.0.0.1:$imap/"
if ((rc == 0)) && grep -qE '^\* LIST \([^)]*\) "/" INBOX' <<<"$out" &&
  grep -qE '^\* LIST \([^)]*\) "/" Sent' <<<"$out" && grep -qE '^\* LIST \([^)]*\) "/" Trash' <<<"$out"; then
  ok "curl imap:// LIST shows INBOX, Sent and Trash"
else
  not_ok "curl imap:// LIST shows INBOX, Sent and Trash" "exit $rc: $out"
fi
capture c "${cu[@]}" "imap://127.0.0.1:$imap/INBOX/;UID=2"
if ((rc == 0)) && grep -qx "$(printf "$subj" 2)"$'\r' <<<"$out" &&
  grep -qx $'To: <curl@example.com>\r' <<<"$out" && grep -qx "X-Mailbox-Host: $host"$'\r' <<<"$out" &&
  grep -q 'multipart/alternative' <<<"$out" && grep -q '^--=_stub_2--' <<<"$out"; then
  ok "curl imap:// INBOX/;UID=2: the multipart message 2 of curl@example.com on $host, whole"
else
  not_ok "curl imap:// INBOX/;UID=2: the multipart message 2 of curl@example.com on $host, whole" "exit $rc: $out"
fi
c "${cu[@]}" "imap://127.0.0.1:$imap/INBOX/;MAILINDEX=1" >"$tmp/imap-1.eml" 2>"$tmp/curl.err" || true
if grep -qx "$(printf "$subj" 1)"$'\r' "$tmp/imap-1.eml"; then
  ok "curl imap:// INBOX/;MAILINDEX=1 (by sequence number) is message 1"
else
  not_ok "curl imap:// INBOX/;MAILINDEX=1 (by sequence number) is message 1" "$(cat "$tmp/curl.err" "$tmp/imap-1.eml")"
fi
expect_ok "curl imap:// SEARCH SUBJECT \"Message 2\" (custom request) finds message 2" '^\* SEARCH 2[[:space:]]*$' \
  c "${cu[@]}" -X 'SEARCH SUBJECT "Message 2"' "imap://127.0.0.1:$imap/INBOX"
capture c -v --ssl-reqd "${cu[@]}" "imap://127.0.0.1:$imap/INBOX/;UID=3"
if ((rc == 0)) && grep -q '^> A[0-9]* STARTTLS' <<<"$out" && grep -qx "$(printf "$subj" 3)"$'\r' <<<"$out"; then
  ok "curl imap:// with STARTTLS (--ssl-reqd, certificate verified): message 3"
else
  not_ok "curl imap:// with STARTTLS (--ssl-reqd, certificate verified): message 3" "exit $rc: $out"
fi
capture c "${cu[@]}" "imaps://127.0.0.1:$imaps/INBOX/;UID=1"
if ((rc == 0)) && grep -qx "$(printf "$subj" 1)"$'\r' <<<"$out"; then
  ok "curl imaps:// (implicit TLS, certificate verified): message 1"
else
  not_ok "curl imaps:// (implicit TLS, certificate verified): message 1" "exit $rc: $out"
fi
expect_ok "curl imap:// with STARTTLS, the odd password (' ', '+', '\"', '\\') via AUTHENTICATE PLAIN" \
  '^Subject: Message 1 for odd@example.com on ' c --ssl-reqd -u "odd@example.com:$odd_pw" "imap://127.0.0.1:$imap/INBOX/;UID=1"
expect_ok "curl imap:// as the alias curlalias@example.com reaches curl@example.com's mailbox" \
  "^$(printf "$subj" 1)" c -u "curlalias@example.com:curl pw+1" "imap://127.0.0.1:$imap/INBOX/;UID=1"

capture c "${cu[@]}" "pop3://127.0.0.1:$pop3/"
list=$out
if ((rc == 0)) && [[ $(tr -d '\r' <<<"$list" | awk '{print $1}' | paste -sd' ') == "1 2 3" ]] &&
  [[ $(awk '$1 == 1 {print $2}' <<<"$(tr -d '\r' <<<"$list")") == "$(wc -c <"$tmp/imap-1.eml")" ]]; then
  ok "curl pop3:// LIST: 3 messages, message 1's size equals the IMAP fetch's bytes"
else
  not_ok "curl pop3:// LIST: 3 messages, message 1's size equals the IMAP fetch's bytes" "exit $rc: $list
(IMAP message 1: $(wc -c <"$tmp/imap-1.eml") bytes)"
fi
c "${cu[@]}" "pop3://127.0.0.1:$pop3/1" >"$tmp/pop3-1.eml" 2>"$tmp/curl.err" || true
if cmp -s "$tmp/pop3-1.eml" "$tmp/imap-1.eml" && grep -q '^\.a line that starts with a dot' "$tmp/pop3-1.eml" &&
  ! grep -q '^\.\.a line' "$tmp/pop3-1.eml"; then
  ok "curl pop3:// RETR 1: byte-identical to the IMAP fetch, the '.'-line unstuffed to one dot"
else
  not_ok "curl pop3:// RETR 1: byte-identical to the IMAP fetch, the '.'-line unstuffed to one dot" \
    "$(cat "$tmp/curl.err"; diff <(cat -A "$tmp/imap-1.eml") <(cat -A "$tmp/pop3-1.eml"))"
fi
capture c -v --ssl-reqd "${cu[@]}" "pop3://127.0.0.1:$pop3/2"
if ((rc == 0)) && grep -q '^> STLS' <<<"$out" && grep -qx "$(printf "$subj" 2)"$'\r' <<<"$out" &&
  grep -qx "X-Mailbox-Host: $host"$'\r' <<<"$out"; then
  ok "curl pop3:// with STLS (--ssl-reqd, certificate verified): RETR 2"
else
  not_ok "curl pop3:// with STLS (--ssl-reqd, certificate verified): RETR 2" "exit $rc: $out"
fi
capture c "${cu[@]}" "pop3s://127.0.0.1:$pop3s/3"
if ((rc == 0)) && grep -qx "$(printf "$subj" 3)"$'\r' <<<"$out" && grep -qx $'To: <curl@example.com>\r' <<<"$out"; then
  ok "curl pop3s:// (implicit TLS): RETR 3"
else
  not_ok "curl pop3s:// (implicit TLS): RETR 3" "exit $rc: $out"
fi
expect_ok "curl pop3:// with the odd password (AUTH PLAIN)" '^Subject: Message 1 for odd@example.com on ' \
  c -u "odd@example.com:$odd_pw" "pop3://127.0.0.1:$pop3/1"
expect_fail "curl imap:// with a wrong password: Login denied, the server said NO [AUTHENTICATIONFAILED]" \
  'NO \[AUTHENTICATIONFAILED\] Authentication failed' c -v -u "curl@example.com:wrong" "imap://127.0.0.1:$imap/"
expect_fail "curl pop3:// with a wrong password: Login denied, the server said -ERR [AUTH]" \
  '^< -ERR \[AUTH\] Authentication failed' c -v -u "curl@example.com:wrong" "pop3://127.0.0.1:$pop3/"
expect_fail "curl imap:// as far@example.com (mail host mbx2): refused, 'not on $host'" \
  "NO \[AUTHENTICATIONFAILED\] Account far@example.com is not on $host \(its mail host is mbx2.example.com\)" \
  c -v -u "far@example.com:pw-far" "imap://127.0.0.1:$imap/"
expect_fail "curl pop3:// as far@example.com (mail host mbx2): refused, 'not on $host'" \
  "^< -ERR \[SYS/PERM\] Account far@example.com is not on $host \(its mail host is mbx2.example.com\)" \
  c -v -u "far@example.com:pw-far" "pop3://127.0.0.1:$pop3/"

# ---- Python: imaplib, poplib, raw sockets -------------------------------------------------

echo "--- Python imaplib and raw IMAP"
run_py imap
echo "--- Python poplib"
run_py pop3
echo "--- refusals (raw IMAP and POP3)"
run_py refusals

# ---- mbsync -----------------------------------------------------------------------------

echo "--- mbsync (isync $(mbsync --version 2>/dev/null | awk '{print $2}'))"
if py_clients prepare-sync sync >"$tmp/prepare.out" 2>&1; then
  ok "prepared sync@example.com's mailbox (message 1 \\Flagged, one message in Trash)"
else
  not_ok "prepared sync@example.com's mailbox (message 1 \\Flagged, one message in Trash)" "$(cat "$tmp/prepare.out")"
fi
mkdir -p "$tmp/maildir" "$tmp/mbsync-home"
# SSLType is isync 1.4's name (1.5 calls it TLSType and still reads SSLType).
cat >"$tmp/mbsyncrc" <<EOF
IMAPAccount stub
Host localhost
Port $imap
User sync@example.com
Pass pw-sync
SSLType STARTTLS
CertificateFile $tmp/cert.pem

IMAPStore stub-far
Account stub

MaildirStore stub-near
Path $tmp/maildir/
Inbox $tmp/maildir/INBOX
SubFolders Verbatim

Channel stub
Far :stub-far:
Near :stub-near:
Patterns *
Sync Pull
Create Near
SyncState *
EOF
mbsync_run() { HOME=$tmp/mbsync-home timeout 60 mbsync -c "$tmp/mbsyncrc" -a; }
capture mbsync_run
if ((rc == 0)); then
  ok "mbsync -a (STARTTLS, certificate verified, Patterns *, Pull) completed"
else
  not_ok "mbsync -a (STARTTLS, certificate verified, Patterns *, Pull) completed" "exit $rc: $out"
fi
run_py maildir sync "$tmp/maildir"
if py_clients append-one sync >"$tmp/append.out" 2>&1; then
  capture mbsync_run
  new_files=$(find "$tmp/maildir/INBOX/new" "$tmp/maildir/INBOX/cur" -type f | wc -l)
  if ((rc == 0)) && ((new_files == 4)); then
    ok "a second mbsync run after one APPEND: exactly one more file in INBOX (4)"
  else
    not_ok "a second mbsync run after one APPEND: exactly one more file in INBOX (4)" "exit $rc, $new_files files: $out"
  fi
  run_py maildir sync "$tmp/maildir"
else
  not_ok "appended one message for the second mbsync run" "$(cat "$tmp/append.out")"
fi

# ---- fetchmail --------------------------------------------------------------------------

echo "--- fetchmail ($(fetchmail --version 2>/dev/null | sed -n 's/^This is fetchmail release \([^+ ]*\).*/\1/p'))"
mkdir -p "$tmp/fetchmail-out" "$tmp/fetchmail-home"
cat >"$tmp/fetchmailrc" <<EOF
set no syslog
poll localhost with proto POP3 and port $pop3
  user "fm@example.com" there with password "pw-fm" is "$(id -un)" here
  options keep fetchall sslproto 'TLS1.2+' sslcertck sslcertfile "$tmp/cert.pem"
  mda "/bin/sh -c 'cat > \$(mktemp $tmp/fetchmail-out/msg.XXXXXX)'"
EOF
chmod 600 "$tmp/fetchmailrc"
capture env HOME="$tmp/fetchmail-home" timeout 60 fetchmail -f "$tmp/fetchmailrc" -N -v \
  --idfile "$tmp/fetchmail-home/ids" --pidfile "$tmp/fetchmail-home/pid"
if ((rc == 0)) && grep -q 'POP3> STLS' <<<"$out" && grep -q '3 messages for fm@example.com' <<<"$out"; then
  ok "fetchmail (POP3, STLS, certificate verified, --keep) fetched 3 messages into the MDA"
else
  not_ok "fetchmail (POP3, STLS, certificate verified, --keep) fetched 3 messages into the MDA" "exit $rc: $out"
fi
run_py mda fm "$tmp/fetchmail-out"

# ---- the server, afterwards ---------------------------------------------------------------

echo "--- afterwards"
check "mailbox-stub is still running" kill -0 "$mbx_pid"
if sed 's/\x1b\[[0-9;]*m//g' "$tmp/mailbox-stub.log" | grep -E ' (ERROR|WARN) |panicked' |
  grep -v 'login for an account of another mail host' >"$tmp/warnings"; then
  not_ok "mailbox-stub logged no unexpected warning or error" "$(cat "$tmp/warnings")"
else
  ok "mailbox-stub logged no unexpected warning or error"
fi

summary "mailbox-stub with real clients"
