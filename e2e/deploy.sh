#!/usr/bin/env bash
# What CI can check of the deployment without a Docker engine:
#   - docker-compose.yml is valid (`docker-compose config`), with and without the nginx
#     profile, and has the services and ports the README promises;
#   - the Dockerfile's build command, run as is (a plain `cargo build --release`), builds
#     the five programs the image ships;
#   - with those release binaries, the local stack (scripts/stack) starts, loads the demo
#     seed file, and the README's curl command logs in through the proxy;
#   - the image's scripts work: the HEALTHCHECK (deploy/docker/healthcheck) passes for
#     each running program and fails for a dead port, the seed job (deploy/docker/seed) is
#     idempotent, the proxy entrypoint makes a demo certificate when none is mounted, and
#     the nginx profile's config (deploy/nginx/start-nginx) passes `nginx -t`.
set -euo pipefail
cd "$(dirname "$0")/.."
source e2e/lib.sh
started=$SECONDS
need_commands "apt-get install docker-compose nginx-full curl openssl" docker-compose curl openssl nginx

echo "--- docker-compose.yml"
check "docker-compose config accepts docker-compose.yml" docker-compose -f docker-compose.yml config -q
check "docker-compose config accepts the nginx profile" docker-compose -f docker-compose.yml --profile nginx config -q
services=$(docker-compose -f docker-compose.yml --profile nginx config --services | sort | tr '\n' ' ')
expect_services="cache-node mbx1 mbx2 nginx postgres proxy route-lookup seed "
if [[ $services == "$expect_services" ]]; then
  ok "the services are: $services"
else
  not_ok "the services are: $expect_services" "got: $services"
fi
config=$(docker-compose -f docker-compose.yml config)
for p in 143 993 110 995; do
  if grep -Eq "published: \"?$p\"?$|- \"?$p:$p\"?$|target: $p$" <<<"$config"; then
    ok "the proxy publishes port $p"
  else
    not_ok "the proxy publishes port $p" "$(grep -n -A3 'ports:' <<<"$config" | head -20)"
  fi
done
if grep -q "replicas: 3" <<<"$config"; then ok "cache-node runs 3 replicas"; else not_ok "cache-node runs 3 replicas" ""; fi

echo "--- the Dockerfile's build, as a plain cargo build"
build=$(grep -m1 -o 'cargo build --release --locked -p [-a-z ]*' Dockerfile)
echo "# $build"
capture bash -c "$build"
if ((rc == 0)); then ok "the Dockerfile's cargo command builds"; else die "the Dockerfile's cargo command builds" "$out"; fi
for b in $(grep -A2 'cp target/release/proxy' Dockerfile | grep -o 'target/release/[-a-z]*'); do
  check "$b runs (--help)" "$b" --help
done

missing=""
for b in proxy route-lookup cache-node mailbox-stub zmprov; do
  for f in $("target/release/$b" --help | grep -oE '^ +(-[a-z], )?--[a-z0-9-]+' | grep -oE -- '--[a-z0-9-]+' | grep -vE -- '--(help|version)$'); do
    grep -qF -- "\`$f\`" README.md || missing+=" $b $f;"
  done
done
if [[ -z $missing ]]; then ok "README.md documents every flag of the five programs"; else not_ok "README.md documents every flag of the five programs" "missing:$missing"; fi

echo "--- the local stack with those binaries, and the README's login"
work=$(mktemp -d)
chmod 755 "$work"
export ZPROXY_STACK_DIR=$work/stack STACK_PROFILE=release STACK_NO_BUILD=1
stack_ports
cleanup() {
  e2e_cleanup
  scripts/stack down >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
capture scripts/stack up
if ((rc == 0)); then ok "scripts/stack up (demo seed applied)"; else die "scripts/stack up" "$out"; fi
login_cmd=$(grep -m1 -o "curl -k --ssl-reqd -u ann@example.com:demo-ann 'imap://[^']*'" <<<"$out")
expect_ok "the login command scripts/stack prints works: $login_cmd" '^X-Mailbox-Host: mbx1.example.com' \
  bash -c "$login_cmd"
readme_cmd=$(grep -m1 -o "curl -k --ssl-reqd 'imap://localhost:143/INBOX;UID=1' -u ann@example.com:demo-ann" README.md || true)
if [[ -n $readme_cmd ]]; then
  expect_ok "the README's curl command, on the stack's port, reads ann's mail" '^Subject: Message 1 for ann@example.com' \
    bash -c "${readme_cmd/localhost:143/127.0.0.1:$STACK_IMAP_PORT}"
else
  not_ok "the README shows the curl login command" "not found in README.md"
fi
eval "$(scripts/stack env)"
expect_ok "the alias domain and an alias work (sales@example.net is ann)" '^To: <ann@example.com>' \
  curl -sk --ssl-reqd -u 'sales@example.net:demo-ann' "imap://127.0.0.1:$STACK_IMAP_PORT/INBOX;UID=1"
expect_ok "the odd demo password works (trent, POP3S)" '^X-Mailbox-Host: mbx2.example.com' \
  curl -sk -u 'trent@example.com:demo trent+%' "pop3s://127.0.0.1:$STACK_POP3S_PORT/1"
expect_ok "zmprov garpu lists the running route-lookup" "127.0.0.1:$STACK_HTTP_PORT/service/extension/nginx-lookup" \
  "$STACK_BIN/zmprov" garpu
modes=$(stat -c '%a' "$ZPROXY_STACK_DIR/admin-token" "$ZPROXY_STACK_DIR/lookup-secret" "$ZPROXY_STACK_DIR/cache-auth" | tr '\n' ' ')
if [[ $modes == "600 600 600 " ]]; then ok "the stack's secret files are 0600"; else not_ok "the stack's secret files are 0600" "modes: $modes"; fi
leaks=""
for f in "$ZPROXY_STACK_DIR"/*.pid; do
  cmdline=$(tr '\0' ' ' <"/proc/$(cat "$f")/cmdline" 2>/dev/null || true)
  environ=$(tr '\0' '\n' <"/proc/$(cat "$f")/environ" 2>/dev/null || true)
  for secret in "$(cat "$ZPROXY_STACK_DIR/admin-token")" "$(cat "$ZPROXY_STACK_DIR/lookup-secret")" "$(cut -d: -f2- "$ZPROXY_STACK_DIR/cache-auth")"; do
    [[ $cmdline == *"$secret"* || $environ == *"$secret"* ]] && leaks+=" $(basename "$f" .pid)"
  done
done
if [[ -z $leaks ]]; then ok "no stack process has a secret on its command line or in its environment"; else not_ok "no secret on a command line" "in:$leaks"; fi
# The stack's cache is closed: a command before authenticating is refused.
cache1=$("$STACK_BIN/zmprov" gamcs | tr -s " " "\n" | grep -m 1 .)
expect_ok "the stack's cache nodes refuse commands before authentication ($cache1)" '^CLIENT_ERROR unauthenticated' \
  python3 -c 'import socket,sys; h,p=sys.argv[1].rsplit(":",1); s=socket.create_connection((h,int(p)),timeout=5); s.sendall(b"get x\r\n"); print(s.recv(100).decode())' "$cache1"
n=$("$STACK_BIN/zmprov" gaa | wc -l)
if ((n == 12)); then ok "the demo seed made 12 accounts"; else not_ok "the demo seed made 12 accounts" "got $n"; fi

echo "--- the image's scripts"
pid_of() { cat "$ZPROXY_STACK_DIR/$1.pid"; }
hc() { HEALTHCHECK_PID=$1 deploy/docker/healthcheck; }
check "healthcheck passes for route-lookup" env LOOKUP_HTTP_LISTEN="0.0.0.0:$STACK_HTTP_PORT" bash -c "HEALTHCHECK_PID=$(pid_of route-lookup) deploy/docker/healthcheck"
check "healthcheck passes for the proxy" env PROXY_ADMIN_LISTEN="127.0.0.1:$STACK_ADMIN_PORT" bash -c "HEALTHCHECK_PID=$(pid_of proxy) deploy/docker/healthcheck"
mbx1_imap=$(grep '^MBX1_IMAP=' "$ZPROXY_STACK_DIR/stack.env" | cut -d= -f2)
check "healthcheck passes for a mailbox-stub" env MAILBOX_IMAP_LISTEN="0.0.0.0:$mbx1_imap" bash -c "HEALTHCHECK_PID=$(pid_of mbx1) deploy/docker/healthcheck"
port cn_admin
spawn "$STACK_BIN/cache-node" --listen 127.0.0.1:0 --admin-listen "127.0.0.1:$cn_admin" 2>"$work/cache-node.log"
cn_pid=${E2E_PIDS[-1]}
wait_port 127.0.0.1 "$cn_admin"
check "healthcheck passes for a cache-node" env CACHE_ADMIN_LISTEN="127.0.0.1:$cn_admin" bash -c "HEALTHCHECK_PID=$cn_pid deploy/docker/healthcheck"
port dead
expect_fail "healthcheck fails when the program does not answer" '' \
  env CACHE_ADMIN_LISTEN="127.0.0.1:$dead" bash -c "HEALTHCHECK_PID=$cn_pid deploy/docker/healthcheck"
expect_ok "the seed job is idempotent (the stack is seeded already)" 'nothing to do' \
  env PATH="$STACK_BIN:$PATH" deploy/docker/seed deploy/demo/seed.zmprov

# The proxy entrypoint without a mounted certificate: it must make one and start the proxy.
certs=$work/demo-certs
port ep_imaps
port ep_admin
PROXY_TLS_CERT=/nonexistent/cert.pem PROXY_TLS_KEY=/nonexistent/key.pem PROXY_DEMO_CERT_DIR=$certs \
  PATH="$STACK_BIN:$PATH" spawn deploy/docker/proxy-entrypoint --imap-listen off --pop3-listen off \
  --pop3s-listen off --imaps-listen "127.0.0.1:$ep_imaps" --admin-listen "127.0.0.1:$ep_admin" \
  --lookup-url "http://127.0.0.1:$STACK_HTTP_PORT/service/extension/nginx-lookup" --lookup-secret-file "$STACK_LOOKUP_SECRET_FILE" \
  2>"$work/entrypoint.log"
wait_port 127.0.0.1 "$ep_imaps"
expect_ok "proxy-entrypoint made a demo certificate and the proxy serves IMAPS with it" '^X-Mailbox-Host: mbx2.example.com' \
  curl -sk --cacert "$certs/cert.pem" -u bob@example.com:demo-bob "imaps://127.0.0.1:$ep_imaps/INBOX;UID=1"
expect_ok "the demo certificate is for localhost" 'CN *= *localhost' openssl x509 -in "$certs/cert.pem" -noout -subject

# The nginx profile's config, rendered from the shipped nginx-mail.conf.
ZPROXY_LOOKUP_URL="http://127.0.0.1:$STACK_HTTP_PORT/service/extension/nginx-lookup" \
  ZPROXY_LOOKUP_SECRET_FILE="$STACK_LOOKUP_SECRET_FILE" ZPROXY_CERT_DIR=$certs ZPROXY_NGINX_CONF=$work/nginx.conf \
  ZPROXY_RENDER_ONLY=1 sh deploy/nginx/start-nginx
check "nginx -t accepts the nginx profile's rendered config" nginx -t -c "$work/nginx.conf"

summary "deployment" "($((SECONDS - started)) s)"
