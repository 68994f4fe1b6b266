#!/usr/bin/python3
"""A wrong-password flood against the whole stack (issue: hardening, item 1).

For FLOOD_SECONDS, 48 threads post SOAP AuthRequests with wrong passwords for real
accounts to route-lookup's HTTP port, each from its own loopback address (127.0.1.N, so
the per-address SOAP limit does not stop them: this is the distributed flood only the
password-check bound can absorb), and 16 threads guess IMAP passwords through the proxy
(every guess is a real argon2 check: proxy -> mailbox-stub -> route-lookup Authenticate).
Meanwhile route-lookup's resident memory is sampled every 100 ms, and at 3 s, 8 s and 13 s
a user who has never logged in logs in with the right password through the proxy.

Passes when: resident memory never exceeds RSS_BOUND_MIB; each correct login succeeds
(OK, then SELECT) within 10 s; the flood really ran (the password-check counters show
thousands of checks, some refused as busy or none needed); no flood request got anything
but a clean answer (a fault, 429, or a NO / temporary NO).

Before the bound existed, the same flood grew route-lookup to gigabytes (one ~19 MiB
hash per request, unbounded) and real logins failed.
"""
import os
import socket
import ssl
import sys
import threading
import time
import urllib.request

E = os.environ
IMAP = int(E["STACK_IMAP_PORT"])
HTTP = int(E["STACK_HTTP_PORT"])
DIR = E["STACK_DIR"]
FLOOD_SECONDS = float(E.get("FLOOD_SECONDS", "18"))
RSS_BOUND_MIB = int(E.get("RSS_BOUND_MIB", "160"))
SOAP_THREADS, IMAP_THREADS = 48, 16
VICTIMS = ["ann", "bob", "carol", "dave", "erin", "frank"]
COLD = [("grace", "demo-grace", 3), ("heidi", "demo-heidi", 8), ("ivan", "demo-ivan", 13)]

failures = []
stop = threading.Event()
counts = {"soap_fault": 0, "soap_429": 0, "soap_temp": 0, "soap_other": 0,
          "imap_no": 0, "imap_temp": 0, "imap_other": 0}
lock = threading.Lock()


def count(key):
    with lock:
        counts[key] += 1


def report(ok, what, detail=""):
    print("%s - %s%s" % ("ok" if ok else "not ok", what, (": " + detail) if detail else ""))
    if not ok:
        failures.append(what)


def soap_body(user, password):
    return ("<?xml version=\"1.0\"?><soap:Envelope xmlns:soap=\"http://www.w3.org/2003/05/soap-envelope\">"
            "<soap:Body><AuthRequest xmlns=\"urn:zimbraAdmin\"><account by=\"name\">%s@example.com</account>"
            "<password>%s</password></AuthRequest></soap:Body></soap:Envelope>" % (user, password)).encode()


def soap_flooder(i):
    source = "127.0.1.%d" % (i + 1)
    n = 0
    while not stop.is_set():
        body = soap_body(VICTIMS[n % len(VICTIMS)], "wrong-%d-%d" % (i, n))
        n += 1
        req = ("POST /service/admin/soap/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/soap+xml\r\n"
               "Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)).encode() + body
        try:
            s = socket.create_connection(("127.0.0.1", HTTP), timeout=30, source_address=(source, 0))
            s.sendall(req)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            s.close()
        except OSError as e:
            count("soap_other")
            print("soap flooder %d: %s" % (i, e), file=sys.stderr)
            time.sleep(0.1)
            continue
        if data.startswith(b"HTTP/1.1 429"):
            count("soap_429")
        elif b"account.AUTH_FAILED" in data:
            count("soap_fault")
        elif b"service.TEMPORARILY_UNAVAILABLE" in data:
            count("soap_temp")
        else:
            count("soap_other")
            print("soap flooder %d: unexpected answer %r" % (i, data[:200]), file=sys.stderr)


class Imap:
    def __init__(self):
        self.s = socket.create_connection(("127.0.0.1", IMAP), timeout=30)
        self.buf = b""
        greeting = self.line()
        if not greeting.startswith("* OK"):
            raise ConnectionError("greeting " + greeting)
        self.tag = 0
        self.cmd("STARTTLS")
        c = ssl.create_default_context()
        c.check_hostname = False
        c.verify_mode = ssl.CERT_NONE
        self.s = c.wrap_socket(self.s, server_hostname="localhost")
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the server")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def cmd(self, text):
        self.tag += 1
        tag = "t%d" % self.tag
        self.s.sendall(("%s %s\r\n" % (tag, text)).encode())
        while True:
            line = self.line()
            if line.startswith(tag + " "):
                return line[len(tag) + 1:]

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def imap_guesser(i):
    n = 0
    while not stop.is_set():
        try:
            c = Imap()
        except (OSError, ConnectionError) as e:
            count("imap_other")
            print("imap guesser %d: %s" % (i, e), file=sys.stderr)
            time.sleep(0.1)
            continue
        try:
            while not stop.is_set():
                r = c.cmd('LOGIN %s@example.com "guess-%d-%d"' % (VICTIMS[(i + n) % len(VICTIMS)], i, n))
                n += 1
                if r.startswith("NO [UNAVAILABLE]"):
                    count("imap_temp")
                elif r.startswith("NO"):
                    count("imap_no")
                else:
                    count("imap_other")
                    print("imap guesser %d: %s" % (i, r), file=sys.stderr)
        except (OSError, ConnectionError):
            pass  # closed after too many failures: reconnect, as a real guesser would
        finally:
            c.close()


def rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def sampler(pid, samples):
    while not stop.is_set():
        samples.append(rss_mib(pid))
        time.sleep(0.1)


def correct_login(user, password, results):
    t = time.monotonic()
    deadline = t + 10
    last = ""
    # A client may meet a temporary NO while the checks are saturated; a mail client
    # retries those. Within 10 s in all the login must succeed.
    while time.monotonic() < deadline:
        try:
            c = Imap()
            try:
                r = c.cmd('LOGIN %s@example.com "%s"' % (user, password))
                last = r
                if r.startswith("OK"):
                    sel = c.cmd("SELECT INBOX")
                    if sel.startswith("OK"):
                        results.append((user, True, time.monotonic() - t, "attempts ok"))
                        return
                    last = "SELECT: " + sel
                elif not r.startswith("NO [UNAVAILABLE]"):
                    break
            finally:
                c.close()
        except (OSError, ConnectionError) as e:
            last = str(e)
        time.sleep(0.5)
    results.append((user, False, time.monotonic() - t, last))


def metric(name, labels):
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % HTTP, timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(name + labels + " "):
            return float(line.split()[-1])
    return 0.0


def main():
    pid = int(open(os.path.join(DIR, "route-lookup.pid")).read())
    baseline = rss_mib(pid)
    computed0 = metric("route_lookup_password_checks_total", '{outcome="computed"}')
    samples = []
    threads = [threading.Thread(target=sampler, args=(pid, samples))]
    threads += [threading.Thread(target=soap_flooder, args=(i,)) for i in range(SOAP_THREADS)]
    threads += [threading.Thread(target=imap_guesser, args=(i,)) for i in range(IMAP_THREADS)]
    for t in threads:
        t.daemon = True
        t.start()
    started = time.monotonic()
    results = []
    logins = []
    for user, password, at in COLD:
        time.sleep(max(0.0, started + at - time.monotonic()))
        t = threading.Thread(target=correct_login, args=(user, password, results))
        t.start()
        logins.append(t)
    time.sleep(max(0.0, started + FLOOD_SECONDS - time.monotonic()))
    for t in logins:
        t.join(15)
    stop.set()
    for t in threads:
        t.join(35)
    took = time.monotonic() - started
    computed = metric("route_lookup_password_checks_total", '{outcome="computed"}') - computed0
    busy = metric("route_lookup_password_checks_total", '{outcome="busy"}')
    workers = metric("route_lookup_password_check_workers", "")
    peak = max(samples) if samples else 0.0
    print("flood: %.0f s, %d SOAP threads (one source address each) + %d IMAP guessers" % (
        took, SOAP_THREADS, IMAP_THREADS))
    print("  SOAP answers: %d AUTH_FAILED, %d temporary, %d 429, %d other" % (
        counts["soap_fault"], counts["soap_temp"], counts["soap_429"], counts["soap_other"]))
    print("  IMAP guesses: %d NO, %d NO [UNAVAILABLE], %d other" % (
        counts["imap_no"], counts["imap_temp"], counts["imap_other"]))
    print("  route-lookup: %d password checks computed (%.0f/s) on %d workers, %d refused as busy" % (
        computed, computed / took, workers, busy))
    print("  route-lookup resident memory: %.0f MiB before, peak %.0f MiB during (bound %d MiB), %d samples" % (
        baseline, peak, RSS_BOUND_MIB, len(samples)))
    for user, ok, secs, detail in results:
        report(ok, "a correct login (%s, never logged in before) during the flood" % user,
               "%.2f s%s" % (secs, "" if ok else ", last answer: " + detail))
    report(len(results) == len(COLD), "every correct login finished")
    report(peak <= RSS_BOUND_MIB, "route-lookup's resident memory stayed under %d MiB" % RSS_BOUND_MIB,
           "peak %.0f MiB" % peak)
    report(computed >= 200, "the flood really hashed", "%d checks" % computed)
    report(counts["soap_other"] == 0 and counts["imap_other"] == 0,
           "every flood request got a clean answer",
           "soap other %d, imap other %d" % (counts["soap_other"], counts["imap_other"]))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
