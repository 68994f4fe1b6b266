#!/usr/bin/python3
"""The whole stack under faults: a bounded load of logins (several client threads, mixed
IMAP/POP3 over implicit TLS and STARTTLS, mixed users on both mailbox servers) runs while,
in turn, a cache node is killed, a cache node is added, route-lookup is restarted,
PostgreSQL is restarted, a mailbox-stub is killed and restarted, and the proxy gets
SIGTERM with sessions open. Each phase prints what it saw; any unexpected outcome fails.

Run by e2e/stack_faults.sh against a stack started with scripts/stack (private PostgreSQL),
whose variables it reads from the environment (scripts/stack env).

Outcomes of one login: ok (logged in, SELECT/STAT worked, logged out), temp (the proxy's
clean temporary failure: NO [UNAVAILABLE] / -ERR [SYS/TEMP]), refused (NO
[AUTHENTICATIONFAILED] / -ERR [AUTH]), dropped (logged in, then the connection closed: the
mailbox server behind it died) or error (anything else: reset, timeout, garbage).
"""
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STACK = os.path.join(ROOT, "scripts", "stack")
E = os.environ
IMAP, IMAPS = int(E["STACK_IMAP_PORT"]), int(E["STACK_IMAPS_PORT"])
POP3, POP3S = int(E["STACK_POP3_PORT"]), int(E["STACK_POP3S_PORT"])
ADMIN = int(E["STACK_ADMIN_PORT"])
DIR = E["STACK_DIR"]
TIMEOUT = 10

# Demo accounts (deploy/demo/seed.zmprov): the warm set logs in all along; each cold set
# logs in for the first time during one outage.
PASSWORDS = {
    "ann": "demo-ann", "bob": "demo-bob", "carol": "demo-carol", "dave": "demo-dave",
    "erin": "demo-erin", "frank": "demo-frank", "grace": "demo-grace", "heidi": "demo-heidi",
    "ivan": "demo-ivan", "judy": "demo-judy", "mallory": "demo-mallory", "trent": "demo trent+%",
}
MBX1 = {"ann", "carol", "erin", "grace", "ivan", "mallory"}
WARM = ["ann", "bob", "carol", "dave", "ivan", "judy"]
COLD_LOOKUP = ["erin", "frank"]
COLD_PG = ["grace", "heidi"]

failures = []


def report(ok, what, detail=""):
    print(("ok - " if ok else "not ok - ") + what, flush=True)
    if not ok:
        failures.append(what)
        for line in str(detail).splitlines()[:20]:
            print("#   " + line)


def stack(*args):
    r = subprocess.run([STACK] + list(args), capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError("scripts/stack %s failed: %s%s" % (" ".join(args), r.stdout, r.stderr))
    return r.stdout


def pid_of(name):
    with open(os.path.join(DIR, name + ".pid")) as f:
        return int(f.read().strip())


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


class Conn:
    """A line-oriented client connection (TLS at once, or after STARTTLS/STLS)."""

    def __init__(self, port, implicit):
        s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.s = ctx().wrap_socket(s, server_hostname="localhost") if implicit else s
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the server")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def send(self, text):
        self.s.sendall(text.encode())

    def until_tag(self, tag):
        while True:
            line = self.line()
            if line.startswith(tag + " "):
                return line

    def starttls(self, command, ok_prefix):
        self.send(command)
        line = self.until_tag("s") if command.startswith("s ") else self.line()
        if not line.startswith(ok_prefix):
            raise ConnectionError("STARTTLS refused: " + line)
        self.s = ctx().wrap_socket(self.s, server_hostname="localhost")
        self.buf = b""

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def imap_login(user, implicit):
    c = Conn(IMAPS if implicit else IMAP, implicit)
    try:
        greeting = c.line()
        if not greeting.startswith("* OK"):
            return "error", greeting
        if not implicit:
            c.starttls("s STARTTLS\r\n", "s OK")
        c.send("a LOGIN %s %s\r\n" % (quote(user + "@example.com"), quote(PASSWORDS[user])))
        r = c.until_tag("a")
        if r.startswith("a NO [UNAVAILABLE]"):
            return "temp", r
        if r.startswith("a NO [AUTHENTICATIONFAILED]"):
            return "refused", r
        if not r.startswith("a OK"):
            return "error", r
        try:
            c.send("b SELECT INBOX\r\n")
            r = c.until_tag("b")
            if not r.startswith("b OK"):
                return "error", "SELECT: " + r
            c.send("c LOGOUT\r\n")
            c.until_tag("c")
        except (OSError, ConnectionError, ssl.SSLError) as e:
            return "dropped", "after login: %s: %s" % (type(e).__name__, e)
        return "ok", ""
    except (OSError, ConnectionError, ssl.SSLError) as e:
        return "error", "%s: %s" % (type(e).__name__, e)
    finally:
        c.close()


def pop3_login(user, implicit):
    c = Conn(POP3S if implicit else POP3, implicit)
    try:
        greeting = c.line()
        if not greeting.startswith("+OK"):
            return "error", greeting
        if not implicit:
            c.starttls("STLS\r\n", "+OK")
        c.send("USER %s@example.com\r\n" % user)
        r = c.line()
        if r.startswith("+OK"):
            c.send("PASS %s\r\n" % PASSWORDS[user])
            r = c.line()
        if r.startswith("-ERR [SYS/TEMP]"):
            return "temp", r
        if r.startswith("-ERR [AUTH]"):
            return "refused", r
        if not r.startswith("+OK"):
            return "error", r
        try:
            c.send("STAT\r\n")
            r = c.line()
            if not r.startswith("+OK"):
                return "error", "STAT: " + r
            c.send("QUIT\r\n")
            c.line()
        except (OSError, ConnectionError, ssl.SSLError) as e:
            return "dropped", "after login: %s: %s" % (type(e).__name__, e)
        return "ok", ""
    except (OSError, ConnectionError, ssl.SSLError) as e:
        return "error", "%s: %s" % (type(e).__name__, e)
    finally:
        c.close()


WAYS = [("imaps", lambda u: imap_login(u, True)), ("imap+starttls", lambda u: imap_login(u, False)),
        ("pop3s", lambda u: pop3_login(u, True)), ("pop3+stls", lambda u: pop3_login(u, False))]


def login(user, i):
    way, fn = WAYS[i % len(WAYS)]
    t = time.monotonic()
    outcome, detail = fn(user)
    return outcome, way, user, time.monotonic() - t, detail


class Load:
    """CLIENTS threads doing COUNT logins in all, round-robin over USERS and protocols."""

    def __init__(self, users, count, clients=4):
        self.users, self.count, self.clients = users, count, clients
        self.results = []
        self.lock = threading.Lock()
        self.next = 0
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(clients)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def take(self):
        with self.lock:
            if self.next >= self.count:
                return None
            self.next += 1
            return self.next - 1

    def run(self):
        while True:
            i = self.take()
            if i is None:
                return
            r = login(self.users[i % len(self.users)], i + i // len(self.users))
            with self.lock:
                self.results.append(r)

    def done_count(self):
        with self.lock:
            return len(self.results)

    def wait_for(self, n, limit=60):
        deadline = time.monotonic() + limit
        while self.done_count() < n and time.monotonic() < deadline:
            time.sleep(0.05)

    def join(self, limit=120):
        for t in self.threads:
            t.join(limit)
        return self.results


def summary(results):
    counts = {}
    for outcome, *_ in results:
        counts[outcome] = counts.get(outcome, 0) + 1
    slowest = max((r[3] for r in results), default=0)
    return "%d logins: %s; slowest %.2f s" % (
        len(results), ", ".join("%d %s" % (v, k) for k, v in sorted(counts.items())), slowest)


def bad(results, allowed=("ok",)):
    return [r for r in results if r[0] not in allowed]


def show(rs):
    return "\n".join("%s %s %s (%.2f s): %s" % (o, w, u, t, d) for o, w, u, t, d in rs[:10])


def metrics():
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % ADMIN, timeout=5) as r:
        return r.read().decode()


def proxy_nodes():
    return sorted(set(re.findall(r'proxy_cache_requests_total\{node="([^"]+)"', metrics())))


def registered_nodes():
    r = subprocess.run([E["STACK_BIN"] + "/zmprov", "gamcs"], capture_output=True, text=True, timeout=30)
    return sorted(r.stdout.split())


def wait_until(what, probe, limit=20):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if probe():
            return True
        time.sleep(0.2)
    return False


def warm(users):
    """One login per user and protocol, all of which must succeed."""
    rs = [login(u, i) for u in users for i in range(len(WAYS))]
    return rs


def phase(title):
    print("--- " + title, flush=True)


def main():
    phase("baseline: the warm users log in on all four listeners")
    rs = warm(WARM)
    report(not bad(rs), "baseline: " + summary(rs), show(bad(rs)))
    load = Load(WARM, 120).start()
    rs = load.join()
    report(not bad(rs), "baseline load (4 clients): " + summary(rs), show(bad(rs)))

    phase("a cache node is killed (SIGKILL) under load")
    before = proxy_nodes()
    load = Load(WARM, 160).start()
    load.wait_for(30)
    stack("kill", "cache-1")
    rs = load.join()
    report(not bad(rs), "cache-1 killed during the load: %s (zero failed logins expected)" % summary(rs),
           show(bad(rs)))
    left = wait_until("leaves", lambda: len(proxy_nodes()) == len(before) - 1, 20)
    report(left, "the proxy's ring lost the dead node once its lease ran out: %s -> %s"
           % (len(before), len(proxy_nodes())))

    phase("a cache node is added under load")
    load = Load(WARM, 160).start()
    load.wait_for(30)
    out = stack("add-cache-node")
    grown = wait_until("joins", lambda: len(proxy_nodes()) == len(before), 20)
    rs = load.join()
    report(grown, "%s; the proxy's ring grew back to %d nodes (registered: %s)"
           % (out.strip(), len(proxy_nodes()), " ".join(registered_nodes())))
    report(not bad(rs), "logins while the node joined: " + summary(rs), show(bad(rs)))

    phase("route-lookup is restarted")
    rs = warm(WARM)  # fresh auth caches on the mailboxes for the whole outage
    report(not bad(rs), "warm-up: " + summary(rs), show(bad(rs)))
    rl_pid = pid_of("route-lookup")
    load = Load(WARM, 100).start()
    load.wait_for(10)
    stack("stop", "route-lookup")
    cold = [login(u, i) for i, u in enumerate(COLD_LOOKUP * 2)]
    stack("start", "route-lookup")
    rs = load.join()
    report(not bad(rs), "cached users while route-lookup was down and back: " + summary(rs), show(bad(rs)))
    report(not bad(cold, ("temp",)) and max(r[3] for r in cold) < 5,
           "uncached users while it was down get the clean temporary failure, promptly: " + summary(cold),
           show(bad(cold, ("temp",))))
    after = [login(u, i) for i, u in enumerate(COLD_LOOKUP * 2)]
    report(not bad(after), "the same users once it is back (pid %d -> %d): %s"
           % (rl_pid, pid_of("route-lookup"), summary(after)), show(bad(after)))

    phase("PostgreSQL is restarted")
    rs = warm(WARM)
    report(not bad(rs), "warm-up: " + summary(rs), show(bad(rs)))
    rl_pid = pid_of("route-lookup")
    load = Load(WARM, 100).start()
    load.wait_for(10)
    stack("stop", "postgres")
    cold = [login(u, i) for i, u in enumerate(COLD_PG * 2)]
    stack("start", "postgres")
    rs = load.join()
    report(not bad(rs), "cached users while PostgreSQL was down and back: " + summary(rs), show(bad(rs)))
    report(not bad(cold, ("temp",)), "uncached users while it was down get the clean temporary failure: "
           + summary(cold), show(bad(cold, ("temp",))))
    back = wait_until("recovers", lambda: all(login(u, i)[0] == "ok" for i, u in enumerate(COLD_PG)), 30)
    after = [login(u, i) for i, u in enumerate(COLD_PG * 2)]
    report(back and not bad(after) and alive(rl_pid) and pid_of("route-lookup") == rl_pid,
           "route-lookup recovered without a restart (same pid %d): %s" % (rl_pid, summary(after)),
           show(bad(after)))

    phase("a mailbox-stub (mbx1) is killed and restarted")
    load = Load(WARM, 120).start()
    load.wait_for(20)
    stack("kill", "mbx1")
    down_at = load.done_count()
    time.sleep(1.5)
    stack("start", "mbx1")
    up_at = load.done_count()
    rs = load.join()
    during = rs[down_at:up_at]
    others = [r for r in rs if r[2] not in MBX1]
    mine = [r for r in rs if r[2] in MBX1]
    report(not bad(others), "mbx2's users never noticed: " + summary(others), show(bad(others)))
    # A session already relayed to mbx1 when it died is cut ("dropped"); a login that was
    # still in progress gets the clean temporary failure.
    report(not bad(mine, ("ok", "temp", "dropped")), "mbx1's users got only clean errors while it was down "
           "(or, already logged in, lost their session): " + summary(mine), show(bad(mine, ("ok", "temp", "dropped"))))
    report(any(r[0] == "temp" for r in during) or not [r for r in during if r[2] in MBX1],
           "(%d logins ran while mbx1 was down)" % len(during))
    after = warm([u for u in WARM if u in MBX1])
    report(not bad(after), "mbx1's users log in again after the restart: " + summary(after), show(bad(after)))

    phase("the proxy gets SIGTERM with sessions open")
    relayed = []
    for u in WARM[:4]:
        c = Conn(IMAPS, True)
        c.line()
        c.send("a LOGIN %s %s\r\n" % (quote(u + "@example.com"), quote(PASSWORDS[u])))
        r = c.until_tag("a")
        c.send("b SELECT INBOX\r\n")
        r2 = c.until_tag("b")
        report(r.startswith("a OK") and r2.startswith("b OK"), "%s has a relayed session open" % u, r + "\n" + r2)
        relayed.append(c)
    preauth = Conn(IMAPS, True)
    preauth.line()
    proxy_pid = pid_of("proxy")
    os.kill(proxy_pid, 15)
    t0 = time.monotonic()
    try:
        bye = preauth.line()
    except (OSError, ConnectionError) as e:
        bye = "%s" % e
    report(bye.startswith("* BYE"), "a session still logging in gets BYE: %r" % bye)
    refused = wait_until("closed", lambda: not can_connect(IMAPS), 5)
    report(refused, "no new connections are accepted (%.2f s after SIGTERM)" % (time.monotonic() - t0))
    ok_noop = 0
    for c in relayed:
        c.send("n NOOP\r\n")
        if c.until_tag("n").startswith("n OK"):
            ok_noop += 1
    report(ok_noop == len(relayed), "%d of %d relayed sessions still work inside the grace period"
           % (ok_noop, len(relayed)))
    report(alive(proxy_pid), "the proxy waits for them")
    for c in relayed:
        c.send("z LOGOUT\r\n")
        c.until_tag("z")
        c.close()
    gone = wait_until("exits", lambda: not alive(proxy_pid), 9)
    report(gone, "once they logged out the proxy exited (%.2f s after SIGTERM; grace period 10 s)"
           % (time.monotonic() - t0))
    log = open(os.path.join(DIR, "proxy.log"), errors="replace").read()
    log = re.sub(r"\x1b\[[0-9;]*m", "", log)
    report(" drained" in log, "the proxy logged that it drained")

    print()
    if failures:
        print("FAIL: whole stack under faults, %d checks failed:" % len(failures))
        for f in failures:
            print("  - " + f)
        sys.exit(1)
    print("PASS: whole stack under faults")


def can_connect(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


if __name__ == "__main__":
    main()
