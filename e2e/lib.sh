# Shared helpers for the end-to-end scripts: free ports, waiting for a listener or a log
# line, cleaning up every process (and the scratch directory and database) a script made,
# whatever way it exits, and the "ok - ..." / "not ok - ..." reporting of the check scripts.
#
# Hooks: a script may define these functions; the helpers call them only if they exist.
#   log_tails   prints the tails of the script's logs, after a "not ok" line (not_ok) and
#               after a checker that reported failures (run_checks);
#   ok_detail   prints more after an "ok" line (for example what the check saw).
# shellcheck shell=bash

E2E_PIDS=()     # processes started by spawn, stopped at exit
E2E_TMP=""      # the scratch directory (scratch_dir), removed at exit unless KEEP_TMP=1
E2E_PG=""       # the PostgreSQL server URL (without a database) of E2E_DB
E2E_DB=""       # the database made by create_db, dropped at exit
E2E_PORTS=" "   # the ports handed out by port, space-separated

# ---- processes, ports and logs ------------------------------------------------------------

# The exit trap: stops every process spawn started, drops the database create_db made and
# removes the scratch directory (KEEP_TMP=1 keeps it and says where). The script's exit
# status is kept.
e2e_cleanup() {
  local pid
  for pid in "${E2E_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${E2E_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [[ -n $E2E_DB ]]; then
    timeout 30 psql "$E2E_PG/postgres" -qXc "DROP DATABASE IF EXISTS \"$E2E_DB\" WITH (FORCE)" >/dev/null 2>&1 ||
      echo "warning: could not drop database $E2E_DB" >&2
  fi
  if [[ -n $E2E_TMP ]]; then
    if [[ ${KEEP_TMP:-0} == 1 ]]; then
      echo "kept $E2E_TMP" >&2
    else
      rm -rf "$E2E_TMP"
    fi
  fi
}
trap e2e_cleanup EXIT

# Prints a port that was free a moment ago on 127.0.0.1.
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# port VAR: sets the variable named VAR to a free port on 127.0.0.1 not handed out before
# by port in this run.
port() {
  local -n port_var=$1
  local candidate
  while :; do
    candidate=$(free_port)
    if [[ $E2E_PORTS != *" $candidate "* ]]; then
      E2E_PORTS+="$candidate "
      port_var=$candidate
      return
    fi
  done
}

# Waits up to 10 s until HOST:PORT accepts connections.
wait_port() {
  local host=$1 port=$2 i
  for i in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
      return 0
    fi
    sleep 0.05
  done
  echo "nothing listens on $host:$port after 10 s" >&2
  return 1
}

# Runs a command in the background and remembers it for cleanup.
spawn() {
  "$@" &
  E2E_PIDS+=("$!")
}

# strip_ansi FILE...: the files without ANSI colour sequences.
strip_ansi() { sed 's/\x1b\[[0-9;]*m//g' "$@"; }

# log_has FILE TEXT: FILE, without ANSI colours, holds the fixed string TEXT. (No grep -q
# on a pipe: under pipefail its early exit would fail the writer with SIGPIPE.)
log_has() { strip_ansi "$1" | grep -F -- "$2" >/dev/null; }

# wait_log NAME PID FILE TEXT: TEXT (a fixed string) appears in FILE within 10 s while PID
# lives; otherwise "NAME started" fails and the script stops (die).
wait_log() {
  local name=$1 pid=$2 file=$3 text=$4 i
  for i in $(seq 1 200); do
    if [[ -f $file ]] && log_has "$file" "$text"; then
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || die "$name started" "$name (pid $pid) exited; $(tail -n 5 "$file")"
    sleep 0.05
  done
  die "$name started" "no '$text' in $file after 10 s"
}

# tail_logs LINES WIDTH FILE...: for each FILE that exists, a "--- tail of NAME" line and
# its last LINES lines without colours (cut to WIDTH characters, unless WIDTH is 0), all as
# "#   " comments.
tail_logs() {
  local lines=$1 width=$2 log
  shift 2
  for log in "$@"; do
    [[ -f $log ]] || continue
    echo "#   --- tail of ${log##*/}"
    if ((width > 0)); then
      strip_ansi "$log" | tail -n "$lines" | cut -c1-"$width" | sed 's/^/#   /'
    else
      strip_ansi "$log" | tail -n "$lines" | sed 's/^/#   /'
    fi
  done
}

# need_commands HINT COMMAND...: stops the script (exit 1) at the first COMMAND not on the
# PATH, saying which, followed by " (HINT)" unless HINT is empty.
need_commands() {
  local hint=$1 c
  shift
  for c in "$@"; do
    command -v "$c" >/dev/null || { echo "missing command: $c${hint:+ ($hint)}" >&2; exit 1; }
  done
}

# stack_ports: exports free ports for the local stack's proxy (scripts/stack reads
# STACK_IMAP_PORT and the others), so a test stack never needs the fixed defaults.
stack_ports() {
  local v
  for v in STACK_IMAP_PORT STACK_IMAPS_PORT STACK_POP3_PORT STACK_POP3S_PORT STACK_ADMIN_PORT; do
    port "$v"
    export "${v?}"
  done
}

# ---- a scratch directory, a database, a certificate, route-lookup ------------------------

# scratch_dir PREFIX: sets tmp to a new directory /tmp/PREFIX.XXXXXX, removed at exit
# (KEEP_TMP=1 keeps it), and makes an interrupt (INT, TERM) exit 130 through that cleanup.
scratch_dir() {
  tmp=$(mktemp -d "/tmp/$1.XXXXXX")
  E2E_TMP=$tmp
  trap 'echo "interrupted; cleaning up" >&2; exit 130' INT TERM
}

# create_db PG NAME: creates the database NAME on the PostgreSQL server at the URL PG
# (without a database), to be dropped at exit; a failure stops the script (die).
create_db() {
  capture timeout 30 psql "$1/postgres" -qXc "CREATE DATABASE \"$2\""
  ((rc == 0)) || die "create database $2" "$out"
  E2E_PG=$1
  E2E_DB=$2
}

# throwaway_cert DIR OPENSSL_ARGS...: a fresh EC (P-256) key and a self-signed certificate
# valid for 2 days in DIR/key.pem and DIR/cert.pem, with OPENSSL_ARGS (-subj, -addext) for
# `openssl req`; a failure stops the script (die).
throwaway_cert() {
  local dir=$1
  shift
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "$@" \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" >/dev/null 2>&1 || die "generate a throwaway certificate"
}

# spawn_route_lookup BIN LOG LEVEL FLAGS...: starts route-lookup (the binary BIN) on the
# database create_db made, HTTP on 127.0.0.1:$rl_http and gRPC on 127.0.0.1:$rl_grpc,
# with --db-wait 10 --grace-period 1 and FLAGS, logging at RUST_LOG=LEVEL without colours,
# appended to LOG (a restart keeps the earlier lines); sets rl_pid.
spawn_route_lookup() {
  local bin=$1 log=$2 level=$3
  shift 3
  NO_COLOR=1 RUST_LOG=$level spawn "$bin" --database-url "$E2E_PG/$E2E_DB" \
    --http-listen "127.0.0.1:$rl_http" --grpc-listen "127.0.0.1:$rl_grpc" \
    --db-wait 10 --grace-period 1 "$@" 2>>"$log" >&2
  rl_pid=${E2E_PIDS[-1]}
}

# wait_route_lookup NAME LOG: the route-lookup spawn_route_lookup started says in LOG that
# both its listeners are up, within 10 s each; otherwise "NAME started" fails (die).
wait_route_lookup() {
  wait_log "$1" "$rl_pid" "$2" "listening listener=\"http\" addr=127.0.0.1:$rl_http"
  wait_log "$1" "$rl_pid" "$2" "listening listener=\"grpc\" addr=127.0.0.1:$rl_grpc"
}

# write_dovecot_conf NAME MECHANISMS PASSDB [EXTRA]: a private Dovecot's configuration in
# $tmp/dovecot.conf: IMAP on 127.0.0.1:$dv_imap and POP3 on $dv_pop3, no TLS, mail in
# $tmp/mail/USER/Maildir, auth_mechanisms MECHANISMS, the PASSDB block, and EXTRA lines as
# they are. Sets mail_uid and mail_gid, whom the mail must belong to. Dovecot refuses to
# run mail as root, so as root it runs as Debian's mail, dovenull and dovecot users; anyone
# else runs it as themselves, without the chroots they cannot make.
write_dovecot_conf() {
  local name=$1 mechanisms=$2 passdb=$3 extra=${4:-}
  local mail_user login_user internal_user internal_group nonroot_conf=""
  if ((EUID == 0)); then
    mail_user=mail login_user=dovenull internal_user=dovecot internal_group=dovecot
  else
    mail_user=$(id -un) login_user=$(id -un) internal_user=$(id -un) internal_group=$(id -gn)
    nonroot_conf=$'service anvil {\n  chroot =\n}\nservice imap-login {\n  chroot =\n}\nservice pop3-login {\n  chroot =\n}'
  fi
  mail_uid=$(id -u "$mail_user")
  mail_gid=$(id -g "$mail_user")
  mkdir -p "$tmp/dovecot-run" "$tmp/dovecot-state"
  cat >"$tmp/dovecot.conf" <<EOF
# A private Dovecot for $name: IMAP and POP3 on 127.0.0.1, no TLS.
protocols = imap pop3
listen = 127.0.0.1
base_dir = $tmp/dovecot-run
state_dir = $tmp/dovecot-state
instance_name = e2e-$name-$$
log_path = $tmp/dovecot.log
auth_verbose = yes
ssl = no
disable_plaintext_auth = no
auth_mechanisms = $mechanisms
auth_failure_delay = 0
# The proxies run on 127.0.0.1: their IMAP ID x-originating-ip / POP3 XCLIENT is believed,
# so Dovecot logs the real client (rip=) as it would behind any trusted proxy.
login_trusted_networks = 127.0.0.1/32
# Every login reaches Dovecot from the proxy's address, so its per-IP auth penalty (2 s, 4 s,
# ... up to 15 s before *any* login from that IP after failures) would slow every user
# behind the proxy; without this socket the auth process runs with the penalty off.
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
default_login_user = $login_user
default_internal_user = $internal_user
default_internal_group = $internal_group
first_valid_uid = $mail_uid
first_valid_gid = $mail_gid
$passdb
userdb {
  driver = static
  args = uid=$mail_uid gid=$mail_gid home=$tmp/mail/%u
}
mail_location = maildir:~/Maildir
$extra
$nonroot_conf
service imap-login {
  inet_listener imap {
    port = $dv_imap
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    port = $dv_pop3
  }
  inet_listener pop3s {
    port = 0
  }
}
EOF
}

# ---- reporting ------------------------------------------------------------------------------

passes=0        # checks passed
failures=0      # checks failed
failed_names=() # the descriptions of the failed checks
out=""          # the output of the last capture
rc=0            # the exit status of the last capture

# ok DESCRIPTION: a passed check.
ok() {
  echo "ok - $1"
  passes=$((passes + 1))
  if declare -F ok_detail >/dev/null; then ok_detail; fi
}

# not_ok DESCRIPTION [EVIDENCE]: a failed check, with the last 40 lines of the evidence and
# the tails of the logs (the log_tails hook).
not_ok() {
  echo "not ok - $1"
  failures=$((failures + 1))
  failed_names+=("$1")
  if [[ -n ${2:-} ]]; then
    printf '%s\n' "$2" | tail -n 40 | sed 's/^/#   /'
  fi
  if declare -F log_tails >/dev/null; then log_tails; fi
}

# die DESCRIPTION [EVIDENCE]: a failed setup step: reports it and stops the script
# (cleanup runs from the exit trap).
die() {
  not_ok "$@"
  echo "FAIL: setup failed; $passes passed, $failures failed"
  exit 1
}

# capture CMD...: runs CMD with stdout and stderr in $out and its status in $rc.
capture() {
  set +e
  out=$("$@" 2>&1)
  rc=$?
  set -e
}

# expect_ok DESCRIPTION REGEX CMD...: passes when CMD succeeds and its output matches REGEX.
expect_ok() {
  local desc=$1 re=$2
  shift 2
  capture "$@"
  if ((rc == 0)) && grep -qE -- "$re" <<<"$out"; then
    ok "$desc"
  else
    not_ok "$desc" "exit $rc, wanted /$re/ in:
$out"
  fi
}

# expect_fail DESCRIPTION REGEX CMD...: passes when CMD fails and its output matches REGEX.
expect_fail() {
  local desc=$1 re=$2
  shift 2
  capture "$@"
  if ((rc != 0)) && grep -qE -- "$re" <<<"$out"; then
    ok "$desc"
  else
    not_ok "$desc" "exit $rc (wanted non-zero), wanted /$re/ in:
$out"
  fi
}

# check DESCRIPTION CMD...: passes when CMD succeeds (its output is the evidence otherwise).
check() {
  local desc=$1
  shift
  capture "$@"
  if ((rc == 0)); then ok "$desc"; else not_ok "$desc" "$out"; fi
}

# run_checks LABEL CMD...: runs CMD, a checker that prints its own "ok - ..." / "not ok - ..."
# lines and exits with the number of its failures; shows its output and counts its checks
# (with the log tails after failures). A checker that did not run to the end (another exit
# status, or no check at all) fails "LABEL ran to the end".
run_checks() {
  local label=$1 line p f
  shift
  capture "$@"
  printf '%s\n' "$out"
  p=$(grep -c '^ok - ' <<<"$out" || true)
  f=$(grep -c '^not ok - ' <<<"$out" || true)
  passes=$((passes + p))
  failures=$((failures + f))
  while IFS= read -r line; do
    failed_names+=("${line#not ok - }")
  done < <(grep '^not ok - ' <<<"$out" || true)
  if ((f > 0)) && declare -F log_tails >/dev/null; then
    log_tails
  fi
  if ((rc != f)) || ((p + f == 0)); then
    not_ok "$label ran to the end (exit $rc, $f failure(s) reported)"
  fi
}

# summary TITLE [NOTE]: the closing lines: "PASS: TITLE, all N checks passed NOTE", or
# "FAIL: TITLE, F of N checks failed NOTE:" with the failed checks, and exit 1.
summary() {
  local title=$1 note=${2:+ $2}
  echo
  if ((failures == 0)); then
    echo "PASS: $title, all $passes checks passed$note"
  else
    echo "FAIL: $title, $failures of $((passes + failures)) checks failed$note:"
    printf '  - %s\n' "${failed_names[@]}"
    exit 1
  fi
}
