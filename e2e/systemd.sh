#!/usr/bin/env bash
# deploy/systemd's units pass `systemd-analyze verify` (syntax, known directives, the
# hardening options, executables present): each unit is checked with ExecStart pointing at
# the binaries this checkout built, as they would be installed in /usr/local/bin.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$root/target/debug}
command -v systemd-analyze >/dev/null || { echo "missing systemd-analyze (package systemd)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
for unit in "$root"/deploy/systemd/*.service; do
  name=$(basename "$unit")
  program=$(sed -n 's|^ExecStart=/usr/local/bin/\([a-z-]*\).*|\1|p' "$unit")
  [[ -x $BIN/$program ]] || { echo "not ok - $name: no $BIN/$program (cargo build)"; failed=1; continue; }
  sed "s|^ExecStart=/usr/local/bin/$program|ExecStart=$BIN/$program|" "$unit" >"$tmp/$name"
  if out=$(systemd-analyze verify --man=no "$tmp/$name" 2>&1) && [[ -z $out ]]; then
    echo "ok - $name passes systemd-analyze verify"
  else
    echo "not ok - $name: systemd-analyze verify says:"
    sed 's/^/#   /' <<<"$out"
    failed=1
  fi
  for key in ExecReload=/bin/kill Restart=on-failure LimitNOFILE= User=zproxy EnvironmentFile=/etc/zproxy/ NoNewPrivileges=yes; do
    grep -q "^$key" "$unit" || { echo "not ok - $name lacks $key"; failed=1; }
  done
done
# Secrets come from root-only files through systemd credentials, never the command line.
for unit in zproxy-route-lookup zproxy-mailbox-stub zproxy-proxy zproxy-cache-node; do
  grep -q '^LoadCredential=' "$root/deploy/systemd/$unit.service" && grep -q '_FILE=%d/' "$root/deploy/systemd/$unit.service" ||
    { echo "not ok - $unit.service does not load its secrets as credentials"; failed=1; }
done
if grep -n -- '--admin-token \|--lookup-secret \|_ADMIN_TOKEN=\|_LOOKUP_SECRET=' "$root"/deploy/systemd/*; then
  echo "not ok - a unit or example puts a secret on a command line or in an environment file"; failed=1
fi
# The cache is closed: the node and both of its clients load the same entry.
for unit in zproxy-cache-node zproxy-proxy zproxy-route-lookup; do
  grep -q '^LoadCredential=cache-auth:/etc/zproxy/cache-auth' "$root/deploy/systemd/$unit.service" ||
    { echo "not ok - $unit.service does not load the cache credentials"; failed=1; }
done
grep -q '^AmbientCapabilities=CAP_NET_BIND_SERVICE' "$root/deploy/systemd/zproxy-proxy.service" ||
  { echo "not ok - the proxy's unit cannot bind ports below 1024"; failed=1; }
((failed == 0)) && echo "PASS: systemd units" || { echo "FAIL: systemd units"; exit 1; }
