#!/usr/bin/env bash
# A wrong-password flood against the local stack (issue: hardening, item 1): starts
# scripts/stack on free ports, then e2e/password_flood.py floods route-lookup's SOAP port
# from 48 source addresses and guesses IMAP passwords through the proxy with 16 clients,
# sampling route-lookup's resident memory, while users who never logged in before log in
# with their right passwords.
set -euo pipefail
cd "$(dirname "$0")/.."
source e2e/lib.sh
started=$SECONDS

work=$(mktemp -d)
chmod 755 "$work"
export ZPROXY_STACK_DIR=$work/stack STACK_PROFILE=${STACK_PROFILE:-debug}
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
eval "$(scripts/stack env)"
/usr/bin/python3 e2e/password_flood.py
echo "($((SECONDS - started)) s)"
