#!/usr/bin/env bash
# The whole stack under faults (issue: full stack, part 4). Starts the local stack
# (scripts/stack, the compose topology as processes) on a private PostgreSQL cluster and
# free ports, then e2e/stack_faults.py runs a bounded login load through each fault in
# turn: cache node killed, cache node added, route-lookup restarted, PostgreSQL restarted,
# mailbox-stub killed and restarted, proxy SIGTERM with sessions open.
#
#   e2e/stack_faults.sh [SCRIPT]   runs SCRIPT (default e2e/stack_faults.py) against the
#                                  stack instead, e.g. e2e/login_faults.py
set -euo pipefail
cd "$(dirname "$0")/.."
source e2e/lib.sh
started=$SECONDS

work=$(mktemp -d)
chmod 755 "$work" # the private PostgreSQL runs as postgres and must reach its directory
export ZPROXY_STACK_DIR=$work/stack STACK_PG=private STACK_PROFILE=${STACK_PROFILE:-debug}
stack_ports
cleanup() {
  local rc=$?
  if ((rc != 0)) && [[ -d $ZPROXY_STACK_DIR ]]; then
    tail_logs 15 200 "$ZPROXY_STACK_DIR"/*.log
  fi
  scripts/stack down >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

scripts/stack up >"$work/up.out" 2>&1 || {
  cat "$work/up.out"
  die "scripts/stack up" "the stack did not start"
}
sed -n '/^zproxy local stack/,/^$/p' "$work/up.out"
eval "$(scripts/stack env)"
/usr/bin/python3 "${1:-e2e/stack_faults.py}"
echo "($((SECONDS - started)) s)"
