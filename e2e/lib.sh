# Shared helpers for the end-to-end scripts: free ports, waiting for a listener, and
# cleaning up every process a script started, whatever way it exits.
# shellcheck shell=bash

E2E_PIDS=()

e2e_cleanup() {
  local pid
  for pid in "${E2E_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${E2E_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}
trap e2e_cleanup EXIT

# Prints a port that was free a moment ago on 127.0.0.1.
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
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
