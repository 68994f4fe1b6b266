#!/usr/bin/python3
"""Logins through faults (issue: logins through faults, item 5): continuous login load from
several clients (mixed IMAP/POP3, implicit TLS and STARTTLS, users on both mailbox
servers) runs through one phase after another, each a single fault of one component:

  warm; a cache node SIGKILLed; the node started again; route-lookup restarted (SIGTERM,
  start); route-lookup SIGKILLed and started 2 s later; PostgreSQL restarted; a mailbox
  server SIGKILLed and started again.

For each phase it prints the logins that finished in its window (ok, failed with their
reasons) and the rate of successful logins, and fails on any failed login the phase does
not make inevitable (only the killed mailbox server's own users, only while it is down,
may fail), or on a rate below half the warm one.

Run by `e2e/stack_faults.sh e2e/login_faults.py` against the local stack (private
PostgreSQL); shares its login clients with e2e/stack_faults.py.
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stack_faults as sf  # noqa: E402  (the login clients and stack control)

CLIENTS = 6
USERS = sf.WARM
failures = []


def report(ok, what, detail=""):
    print("%s - %s" % ("ok" if ok else "not ok", what))
    if detail and not ok:
        print("\n".join("#   " + line for line in detail.splitlines()))
    if not ok:
        failures.append(what)


class Continuous:
    """CLIENTS threads logging in without pause until stopped; each result is stamped
    with the time it finished."""

    def __init__(self, users, clients):
        self.users = users
        self.results = []
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(clients)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def run(self, k):
        i = k
        while not self.stopped.is_set():
            r = sf.login(self.users[i % len(self.users)], i + i // len(self.users))
            with self.lock:
                self.results.append((time.monotonic(),) + r)
            i += len(self.threads)

    def stop(self):
        self.stopped.set()
        for t in self.threads:
            t.join(30)

    def window(self, t0, t1):
        with self.lock:
            return [r for r in self.results if t0 <= r[0] < t1]


def describe(rs, seconds):
    counts = {}
    for r in rs:
        counts[r[1]] = counts.get(r[1], 0) + 1
    ok = counts.get("ok", 0)
    slowest = max((r[4] for r in rs), default=0.0)
    text = "%d logins in %.1f s: %s; %.0f ok/s; slowest %.2f s" % (
        len(rs), seconds, ", ".join("%d %s" % (v, k) for k, v in sorted(counts.items())),
        ok / seconds, slowest)
    return text, ok / seconds


def failed_detail(rs, t0):
    return "\n".join("+%.2f s: %s %s %s (%.2f s): %s" % (r[0] - t0, r[1], r[2], r[3], r[4], r[5])
                     for r in rs[:10])


def phase(load, title, fault, warm_rate, before=1.5, after=3.0, excused=lambda r, marks: False):
    """Runs `fault` inside a window of load; `excused(result, marks)` says whether a failed
    login was inevitable (marks: the times `fault` returned)."""
    print("--- " + title, flush=True)
    t0 = time.monotonic()
    time.sleep(before)
    marks = fault()
    marks = marks if isinstance(marks, dict) else {}
    time.sleep(after)
    t1 = time.monotonic()
    rs = load.window(t0, t1)
    text, rate = describe(rs, t1 - t0)
    unexcused = [r for r in rs if r[1] != "ok" and not excused(r, marks)]
    when = "; ".join("%s at +%.2f s" % (k, v - t0) for k, v in sorted(marks.items(), key=lambda kv: kv[1]))
    report(not unexcused, "%s: %s" % (title, text),
           (when + "\n" if when else "") + failed_detail(unexcused, t0))
    if warm_rate:
        report(rate >= warm_rate / 2, "%s: rate %.0f ok/s is at least half the warm %.0f ok/s"
               % (title, rate, warm_rate))
    return rate


def timed(*steps):
    """Runs steps (callables or pauses in seconds), returning when each named one began
    (NAME) and ended (NAME done)."""
    marks = {}
    for step in steps:
        if isinstance(step, (int, float)):
            time.sleep(step)
        else:
            name, fn = step
            marks[name] = time.monotonic()
            fn()
            marks[name + " done"] = time.monotonic()
    return marks


def main():
    # Every user logs in once on every listener first: routes cached, mailbox auth caches
    # fresh (the PostgreSQL phase relies on them for its duration).
    rs = sf.warm(USERS)
    report(not sf.bad(rs), "warm-up: " + sf.summary(rs), sf.show(sf.bad(rs)))
    load = Continuous(USERS, CLIENTS).start()
    try:
        warm = phase(load, "warm", lambda: None, None, before=4.0, after=0.0)
        phase(load, "a cache node SIGKILLed", lambda: sf.stack("kill", "cache-1"), warm)
        phase(load, "the cache node started again", lambda: sf.stack("start", "cache-1"), warm, after=4.0)
        phase(load, "route-lookup restarted (SIGTERM, start)",
              lambda: timed(("stopped", lambda: sf.stack("stop", "route-lookup")),
                            ("started", lambda: sf.stack("start", "route-lookup"))), warm)
        phase(load, "route-lookup SIGKILLed, started 2 s later",
              lambda: timed(("killed", lambda: sf.stack("kill", "route-lookup")), 2.0,
                            ("started", lambda: sf.stack("start", "route-lookup"))), warm)
        rs = sf.warm(USERS)  # fresh mailbox auth caches for the whole database outage
        phase(load, "PostgreSQL restarted",
              lambda: timed(("stopped", lambda: sf.stack("stop", "postgres")),
                            ("started", lambda: sf.stack("start", "postgres"))), warm)

        def mailbox_down(r, marks):
            # Only mbx1's own users, only while it is down (a session cut by the kill
            # counts as "dropped"; a login meanwhile gets the clean temporary failure).
            return (r[3] in sf.MBX1 and r[1] in ("temp", "dropped")
                    and marks["killed"] <= r[0] <= marks["started done"] + 2.0)
        phase(load, "a mailbox server (mbx1) SIGKILLed, started 1.5 s later",
              lambda: timed(("killed", lambda: sf.stack("kill", "mbx1")), 1.5,
                            ("started", lambda: sf.stack("start", "mbx1"))), warm,
              after=4.0, excused=mailbox_down)
    finally:
        load.stop()

    print()
    if failures:
        print("FAIL: logins through faults, %d checks failed:" % len(failures))
        for f in failures:
            print("  - " + f)
        sys.exit(1)
    print("PASS: logins through faults")


if __name__ == "__main__":
    main()
