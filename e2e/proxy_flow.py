#!/usr/bin/env python3
"""The client side of e2e/proxy_flow.sh: Python's imaplib and poplib and raw IMAP, POP3
and memcached sockets against a running `proxy` (and, for comparison, a mailbox-stub
directly). The shell script starts the processes, seeds the directory and passes the seed
file here, so account names, passwords, mail hosts and aliases have one source.

Groups of checks (print "ok - ..." / "not ok - ..." with "#" evidence; the exit status is
the number of failed checks, at most 100):
  clients    imaplib: STARTTLS + LOGIN (atom user, quoted password with spaces), IMAPS,
             AUTHENTICATE PLAIN without SASL-IR, an alias, an unqualified name (default
             domain); raw IMAP after STARTTLS: LOGIN as synchronizing literals, LITERAL+,
             AUTHENTICATE PLAIN with SASL-IR; raw IMAPS AUTHENTICATE PLAIN with an empty
             continuation; poplib: STLS + USER/PASS (password with a space), POP3S,
             raw POP3 AUTH PLAIN. Every login reads mail and checks X-Mailbox-Host and
             Subject name the account's own mail host and the account.
  security   STARTTLS/STLS injection; CR/LF/space/control bytes in a user name (IMAP
             literal, POP3 AUTH PLAIN) cannot touch the cache protocol; a user name with a
             DEL byte gets the generic refusal; LOGINDISABLED /
             PRIVACYREQUIRED / "Use STLS first" before TLS; CAPABILITY after STARTTLS;
             oversized lines; the bad-command cap; the pre-auth timeout.

Tools for the shell script (one result line each):
  [--source IP] login LISTENER USER PASSWORD [--how HOW]
        LISTENER: imap (STARTTLS), imaps, pop3 (STLS), pop3s, or imap-plain:PORT /
        pop3-plain:PORT (a mailbox-stub directly, no TLS). HOW for IMAP: quoted (default),
        literal, literal+, plain-ir; for POP3: user (default), plain.
        Prints "OK host=<X-Mailbox-Host> subject=<Subject> secs=<s>",
        "NO reply=<the login's answer, IMAP tag removed> secs=<s>" or
        "ERROR <what> secs=<s>".
  [--how verbatim] lookup PORT USER PASSWORD
        sends route-lookup's nginx-lookup the request the proxy would send (values escaped
        as the proxy escapes them, or verbatim) and prints its status line and Auth-Status.
  mc-get PORT KEY        prints the value (exit 0) or "(none)" (exit 1).
  mc-set PORT KEY VALUE TTL
Standard library only.
"""

import argparse
import base64
import imaplib
import poplib
import re
import shlex
import socket
import ssl
import sys
import time
import traceback

TIMEOUT = 10  # seconds, for every socket operation
HOST = "127.0.0.1"
DOMAIN = "example.com"

opts = None
accounts = {}  # account -> (password, mail host), from the zmprov seed file
aliases = {}  # alias -> account
failures = 0
passes = 0
notes = []


# ---- reporting --------------------------------------------------------------------------


class CheckFailed(Exception):
    pass


def expect(cond, what, evidence=None):
    if not cond:
        msg = what
        if evidence is not None:
            msg += "\n" + (evidence if isinstance(evidence, str) else repr(evidence))
        raise CheckFailed(msg)


def note(text):
    notes.append(text)


GROUPS = {}


def check(group):
    def register(fn):
        GROUPS.setdefault(group, []).append(fn)
        return fn

    return register


def run_check(fn):
    global failures, passes
    desc = " ".join((fn.__doc__ or fn.__name__).split())
    del notes[:]
    try:
        fn()
    except CheckFailed as e:
        failures += 1
        print(f"not ok - {desc}")
        for line in str(e).splitlines()[:40]:
            print(f"#   {line}")
    except Exception as e:  # a client library's exception is a failure too
        failures += 1
        print(f"not ok - {desc}")
        print(f"#   {type(e).__name__}: {e}")
        for line in traceback.format_exc().splitlines()[-6:]:
            print(f"#   {line}")
    else:
        passes += 1
        print(f"ok - {desc}")
    for line in notes:
        print(f"#   ({line})")
    sys.stdout.flush()


# ---- accounts ---------------------------------------------------------------------------


def load_seed(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            words = shlex.split(line, comments=True)
            if len(words) >= 3 and words[0] == "ca":
                attrs = dict(zip(words[3::2], words[4::2]))
                accounts[words[1].lower()] = (words[2], attrs.get("zimbraMailHost"))
            elif len(words) == 3 and words[0] == "aaa":
                aliases[words[2].lower()] = words[1].lower()


def acct(local):
    return f"{local}@{DOMAIN}"


def pw(name):
    name = aliases.get(name, name)
    expect(name in accounts, f"{name} is not in the seed file")
    return accounts[name][0]


def home(name):
    return accounts[aliases.get(name, name)][1]


def ctx():
    return ssl.create_default_context(cafile=opts.cafile)


def mail_facts(text):
    """(X-Mailbox-Host, Subject) of a header block."""
    host = re.search(r"^X-Mailbox-Host: *(\S+)", text, re.M | re.I)
    subj = re.search(r"^Subject: *(.*?)\r?$", text, re.M | re.I)
    return (host.group(1) if host else None, subj.group(1) if subj else None)


def expect_mail_of(name, facts):
    """The mail read belongs to NAME's account on its own mail host."""
    account = aliases.get(name, name)
    host, subj = facts
    want_host = home(account)
    expect(host == want_host, f"X-Mailbox-Host is {host!r}, wanted {want_host!r}", facts)
    expect(subj is not None and f"for {account} on {want_host}" in subj,
           f"Subject does not name {account} on {want_host}", facts)
    note(f"{name}: X-Mailbox-Host {host}; Subject: {subj}")


# ---- raw connections --------------------------------------------------------------------


class Conn:
    """A bare TCP (optionally TLS) connection with line reads and IMAP literals."""

    def __init__(self, port, tls=False):
        source = (opts.source, 0) if opts.source else None
        self.sock = socket.create_connection((HOST, port), timeout=TIMEOUT, source_address=source)
        if tls:
            self.sock = ctx().wrap_socket(self.sock, server_hostname="localhost")
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def _more(self):
        d = self.sock.recv(65536)
        if not d:
            return False
        self.buf += d
        return True

    def line(self):
        """One line without its CRLF; None at end of stream (after any partial line)."""
        while b"\n" not in self.buf:
            if not self._more():
                if self.buf:
                    rest, self.buf = self.buf, b""
                    return rest
                return None
        i = self.buf.index(b"\n")
        out, self.buf = self.buf[: i + 1], self.buf[i + 1 :]
        return out.rstrip(b"\r\n")

    def exact(self, n):
        while len(self.buf) < n:
            if not self._more():
                raise EOFError("connection closed inside a literal")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def imap_line(self):
        """One IMAP response line with its literals inlined."""
        line = self.line()
        if line is None:
            return None
        while True:
            m = re.search(rb"\{(\d+)\}$", line)
            if not m:
                return line
            lit = self.exact(int(m.group(1)))
            rest = self.line() or b""
            line = line + b"\r\n" + lit + rest

    def imap_until(self, tag):
        lines = []
        while True:
            line = self.imap_line()
            if line is None:
                raise EOFError(f"connection closed before {tag!r}'s answer; got {lines!r}")
            lines.append(line)
            if line.startswith(tag + b" "):
                return lines

    def starttls(self):
        leftover = self.buf
        self.buf = b""
        self.sock = ctx().wrap_socket(self.sock, server_hostname="localhost")
        return leftover

    def eof_within(self, secs):
        """Reads until end of stream; returns (everything read, seconds) or raises."""
        self.sock.settimeout(secs)
        start = time.monotonic()
        got = self.buf
        self.buf = b""
        while True:
            d = self.sock.recv(65536)
            if not d:
                return got, time.monotonic() - start
            got += d

    def close(self):
        try:
            self.sock.close()
        except Exception:
            pass


def b64_plain(user, password, authz=""):
    raw = authz.encode() + b"\0" + as_bytes(user) + b"\0" + as_bytes(password)
    return base64.b64encode(raw)


def as_bytes(s):
    return s if isinstance(s, bytes) else s.encode()


def quote(s):
    b = as_bytes(s)
    return b'"' + b.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def imap_open(listener):
    """A raw IMAP connection past the greeting (and STARTTLS for `imap`)."""
    if listener == "imaps":
        c = Conn(opts.imaps, tls=True)
    elif listener == "imap":
        c = Conn(opts.imap)
    else:
        c = Conn(int(listener.split(":", 1)[1]))
    greeting = c.line()
    expect(greeting and greeting.startswith(b"* OK"), "no IMAP greeting", greeting)
    if listener == "imap":
        c.send(b"s STARTTLS\r\n")
        r = c.imap_until(b"s")
        expect(r[-1].startswith(b"s OK"), "STARTTLS refused", r)
        c.starttls()
    return c


def imap_login(c, user, password, how="quoted"):
    """Logs in on raw connection C; returns the answer lines."""
    tag = b"l"
    u, p = as_bytes(user), as_bytes(password)
    if how == "quoted":
        c.send(tag + b" LOGIN " + quote(u) + b" " + quote(p) + b"\r\n")
    elif how == "literal":
        c.send(tag + b" LOGIN {%d}\r\n" % len(u))
        cont = c.line()
        expect(cont is not None and cont.startswith(b"+"), "no continuation for the user literal", cont)
        c.send(u + b" {%d}\r\n" % len(p))
        cont = c.line()
        expect(cont is not None and cont.startswith(b"+"), "no continuation for the password literal", cont)
        c.send(p + b"\r\n")
    elif how == "literal+":
        c.send(tag + b" LOGIN {%d+}\r\n" % len(u) + u + b" {%d+}\r\n" % len(p) + p + b"\r\n")
    elif how == "plain-ir":
        c.send(tag + b" AUTHENTICATE PLAIN " + b64_plain(u, p) + b"\r\n")
    elif how == "plain":
        c.send(tag + b" AUTHENTICATE PLAIN\r\n")
        cont = c.line()
        expect(cont is not None and cont.startswith(b"+"), "no empty continuation for AUTHENTICATE PLAIN", cont)
        c.send(b64_plain(u, p) + b"\r\n")
    else:
        raise ValueError(how)
    return c.imap_until(tag)


def imap_read_mail(c):
    c.send(b"s SELECT INBOX\r\n")
    r = c.imap_until(b"s")
    expect(r[-1].startswith(b"s OK"), "SELECT INBOX failed", r)
    c.send(b"f FETCH 1 (BODY.PEEK[HEADER.FIELDS (X-MAILBOX-HOST SUBJECT)])\r\n")
    r = c.imap_until(b"f")
    expect(r[-1].startswith(b"f OK"), "FETCH failed", r)
    facts = mail_facts(b"\n".join(r).decode("utf-8", "replace"))
    c.send(b"z LOGOUT\r\n")
    try:
        c.imap_until(b"z")
    except Exception:
        pass
    return facts


def pop3_open(listener):
    if listener == "pop3s":
        c = Conn(opts.pop3s, tls=True)
    elif listener == "pop3":
        c = Conn(opts.pop3)
    else:
        c = Conn(int(listener.split(":", 1)[1]))
    greeting = c.line()
    expect(greeting and greeting.startswith(b"+OK"), "no POP3 greeting", greeting)
    if listener == "pop3":
        c.send(b"STLS\r\n")
        r = c.line()
        expect(r and r.startswith(b"+OK"), "STLS refused", r)
        c.starttls()
    return c


def pop3_login(c, user, password, how="user"):
    """Logs in on raw POP3 connection C; returns the answer line that decided."""
    if how == "user":
        c.send(b"USER " + as_bytes(user) + b"\r\n")
        r = c.line()
        if not (r and r.startswith(b"+OK")):
            return r
        c.send(b"PASS " + as_bytes(password) + b"\r\n")
        return c.line()
    if how == "plain":
        c.send(b"AUTH PLAIN " + b64_plain(user, password) + b"\r\n")
        return c.line()
    raise ValueError(how)


def pop3_read_mail(c):
    c.send(b"TOP 1 0\r\n")
    first = c.line()
    expect(first and first.startswith(b"+OK"), "TOP 1 0 failed", first)
    lines = []
    while True:
        line = c.line()
        expect(line is not None, "connection closed inside TOP", lines)
        if line == b".":
            break
        lines.append(line)
    c.send(b"QUIT\r\n")
    c.line()
    return mail_facts(b"\n".join(lines).decode("utf-8", "replace"))


# ---- tools for the shell script -----------------------------------------------------------


def tool_login(listener, user, password, how):
    start = time.monotonic()
    secs = lambda: f"secs={time.monotonic() - start:.2f}"  # noqa: E731
    c = None
    try:
        if listener.startswith("imap"):
            c = imap_open(listener)
            r = imap_login(c, user, password, how or "quoted")
            last = r[-1]
            if last.startswith(b"l OK"):
                host, subj = imap_read_mail(c)
                print(f"OK host={host} subject={subj} {secs()}")
            else:
                reply = b" | ".join(x for x in r if not x.startswith(b"* CAPABILITY"))
                reply = re.sub(rb"^l ", b"", reply)
                print(f"NO reply={reply.decode('utf-8', 'replace')} {secs()}")
        else:
            c = pop3_open(listener)
            r = pop3_login(c, user, password, how or "user")
            if r and r.startswith(b"+OK"):
                host, subj = pop3_read_mail(c)
                print(f"OK host={host} subject={subj} {secs()}")
            else:
                print(f"NO reply={(r or b'(connection closed)').decode('utf-8', 'replace')} {secs()}")
    except Exception as e:
        print(f"ERROR {type(e).__name__}: {e} {secs()}")
    finally:
        if c:
            c.close()
    return 0


def mc(port, request):
    s = socket.create_connection((HOST, int(port)), timeout=TIMEOUT)
    s.sendall(request)
    data = b""
    while not re.search(rb"(END|STORED|NOT_STORED|DELETED|NOT_FOUND|ERROR[^\n]*|VERSION [^\n]*)\r\n$", data):
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    return data


def mc_get(port, key):
    """The value of KEY on the node at PORT, or None."""
    data = mc(port, b"get " + as_bytes(key) + b"\r\n")
    m = re.match(rb"VALUE \S+ \d+ (\d+)\r\n", data)
    if not m:
        if data != b"END\r\n":
            raise RuntimeError(f"odd answer to get: {data!r}")
        return None
    n = int(m.group(1))
    return data[m.end() : m.end() + n]


def proxy_escape(value):
    """The proxy's (and nginx's) escaping of Auth-User/Auth-Pass: bytes <= 0x20 and '%'."""
    return b"".join(b"%%%02X" % b if b <= 0x20 or b == 0x25 else bytes([b]) for b in value)


def lookup_raw(port, user, password, escape=True):
    """Sends route-lookup the request the proxy sends (values escaped as the proxy escapes
    them, or verbatim); returns its status line and Auth-Status/Server/Port."""
    if escape:
        user, password = proxy_escape(user), proxy_escape(password)
    s = socket.create_connection((HOST, port), timeout=TIMEOUT)
    s.sendall(b"GET /service/extension/nginx-lookup HTTP/1.1\r\nHost: 127.0.0.1\r\nAuth-Method: plain\r\n"
              b"Auth-User: " + user + b"\r\nAuth-Pass: " + password +
              b"\r\nAuth-Protocol: imap\r\nAuth-Login-Attempt: 1\r\nClient-IP: 127.0.0.1\r\n"
              b"X-Proxy-IP: 127.0.0.1\r\nConnection: close\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    head = data.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    status = [h for h in head[1:] if h.lower().startswith(("auth-status:", "auth-server:", "auth-port:"))]
    return " | ".join([head[0]] + status)


# ---- clients ------------------------------------------------------------------------------


@check("clients")
def imaplib_starttls_login():
    """imaplib: STARTTLS (certificate verified), LOGIN with an atom user and a quoted
    password holding spaces (ann, mbx1): the mail is ann's on mbx1"""
    m = imaplib.IMAP4(HOST, opts.imap, timeout=TIMEOUT)
    try:
        expect("LOGINDISABLED" in m.capabilities and "STARTTLS" in m.capabilities,
               "the greeting does not say STARTTLS and LOGINDISABLED", m.capabilities)
        m.starttls(ssl_context=ctx())
        expect("AUTH=PLAIN" in m.capabilities and "LOGINDISABLED" not in m.capabilities,
               "after STARTTLS the capabilities still refuse login", m.capabilities)
        name = acct("ann")
        expect(" " in pw(name), "ann's password should hold a space")
        typ, data = m.login(name, pw(name))
        expect(typ == "OK", "LOGIN failed", data)
        m.select("INBOX", readonly=True)
        typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (X-MAILBOX-HOST SUBJECT)])")
        expect_mail_of(name, mail_facts(data[0][1].decode()))
    finally:
        try:
            m.logout()
        except Exception:
            pass


@check("clients")
def imaplib_imaps():
    """imaplib: IMAPS (implicit TLS), LOGIN as bob (mbx2): the mail is bob's on mbx2"""
    m = imaplib.IMAP4_SSL(HOST, opts.imaps, ssl_context=ctx(), timeout=TIMEOUT)
    try:
        name = acct("bob")
        typ, data = m.login(name, pw(name))
        expect(typ == "OK", "LOGIN failed", data)
        m.select("INBOX", readonly=True)
        typ, data = m.fetch("2", "(BODY.PEEK[HEADER.FIELDS (X-MAILBOX-HOST SUBJECT)])")
        expect_mail_of(name, mail_facts(data[0][1].decode()))
    finally:
        try:
            m.logout()
        except Exception:
            pass


@check("clients")
def imaplib_authenticate_plain():
    """imaplib: STARTTLS, AUTHENTICATE PLAIN without SASL-IR (empty continuation) as dora
    (mbx2)"""
    m = imaplib.IMAP4(HOST, opts.imap, timeout=TIMEOUT)
    try:
        m.starttls(ssl_context=ctx())
        name = acct("dora")
        typ, data = m.authenticate("PLAIN", lambda _: b"\0" + name.encode() + b"\0" + pw(name).encode())
        expect(typ == "OK", "AUTHENTICATE PLAIN failed", data)
        m.select("INBOX", readonly=True)
        typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (X-MAILBOX-HOST SUBJECT)])")
        expect_mail_of(name, mail_facts(data[0][1].decode()))
    finally:
        try:
            m.logout()
        except Exception:
            pass


@check("clients")
def imaplib_alias():
    """imaplib: IMAPS LOGIN as the alias bobby@example.com reaches bob's mailbox on mbx2"""
    m = imaplib.IMAP4_SSL(HOST, opts.imaps, ssl_context=ctx(), timeout=TIMEOUT)
    try:
        name = "bobby@example.com"
        expect(aliases.get(name) == acct("bob"), "the seed has no alias bobby for bob", aliases)
        typ, data = m.login(name, pw(name))
        expect(typ == "OK", "LOGIN failed", data)
        m.select("INBOX", readonly=True)
        typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (X-MAILBOX-HOST SUBJECT)])")
        expect_mail_of(name, mail_facts(data[0][1].decode()))
    finally:
        try:
            m.logout()
        except Exception:
            pass


@check("clients")
def imaplib_unqualified():
    """imaplib: IMAPS LOGIN as the bare name "ann" (zimbraDefaultDomainName) reaches
    ann@example.com on mbx1"""
    m = imaplib.IMAP4_SSL(HOST, opts.imaps, ssl_context=ctx(), timeout=TIMEOUT)
    try:
        typ, data = m.login("ann", pw(acct("ann")))
        expect(typ == "OK", "LOGIN failed", data)
        m.select("INBOX", readonly=True)
        typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (X-MAILBOX-HOST SUBJECT)])")
        expect_mail_of(acct("ann"), mail_facts(data[0][1].decode()))
    finally:
        try:
            m.logout()
        except Exception:
            pass


def raw_imap_check(listener, name, how):
    c = imap_open(listener)
    try:
        r = imap_login(c, name, pw(name), how)
        expect(r[-1].startswith(b"l OK"), f"{how} login refused", r)
        expect_mail_of(name, imap_read_mail(c))
    finally:
        c.close()


@check("clients")
def raw_sync_literals():
    """raw IMAP after STARTTLS: LOGIN {n} {m} as synchronizing literals (waiting for each
    "+") as ann (mbx1)"""
    raw_imap_check("imap", acct("ann"), "literal")


@check("clients")
def raw_literal_plus():
    """raw IMAP after STARTTLS: LOGIN {n+} {m+} (LITERAL+, one write) as dora (mbx2)"""
    raw_imap_check("imap", acct("dora"), "literal+")


@check("clients")
def raw_sasl_ir():
    """raw IMAP after STARTTLS: AUTHENTICATE PLAIN with SASL-IR as bob (mbx2)"""
    raw_imap_check("imap", acct("bob"), "plain-ir")


@check("clients")
def raw_authzid_replayed():
    """raw IMAP after STARTTLS: AUTHENTICATE PLAIN with an authorization identity (admin
    acting as bob) is replayed to bob's mailbox (mbx2) as AUTHENTICATE PLAIN with the
    authzid, and the mailbox's own refusal comes back (the stub has no master users);
    then a plain login on the same connection still works"""
    name = acct("bob")
    c = imap_open("imap")
    try:
        c.send(b"z AUTHENTICATE PLAIN " + b64_plain(name, pw(name), authz="admin@example.com") + b"\r\n")
        r = c.imap_until(b"z")
        expect(r[-1].rstrip() == b"z NO [AUTHORIZATIONFAILED] Authorization identity not allowed",
               "the mailbox's refusal of the authzid should be relayed", r)
        r = imap_login(c, name, pw(name), "plain-ir")
        expect(r[-1].startswith(b"l OK"), "a plain login after the refusal failed", r)
        expect_mail_of(name, imap_read_mail(c))
    finally:
        c.close()


@check("clients")
def raw_imaps_plain():
    """raw IMAPS: AUTHENTICATE PLAIN, response after the continuation, as ann (mbx1)"""
    raw_imap_check("imaps", acct("ann"), "plain")


@check("clients")
def poplib_stls():
    """poplib: STLS (certificate verified), USER/PASS with a password holding a space as
    ann (mbx1): RETR 1 is ann's on mbx1"""
    p = poplib.POP3(HOST, opts.pop3, timeout=TIMEOUT)
    try:
        caps = p.capa()
        expect("STLS" in caps and "USER" not in caps, "CAPA before STLS should offer STLS and not USER", caps)
        p.stls(context=ctx())
        name = acct("ann")
        p.user(name)
        p.pass_(pw(name))
        _, lines, _ = p.retr(1)
        expect_mail_of(name, mail_facts(b"\r\n".join(lines).decode()))
    finally:
        try:
            p.quit()
        except Exception:
            p.close()


@check("clients")
def poplib_pop3s():
    """poplib: POP3S (implicit TLS), USER/PASS as bob (mbx2)"""
    p = poplib.POP3_SSL(HOST, opts.pop3s, context=ctx(), timeout=TIMEOUT)
    try:
        name = acct("bob")
        p.user(name)
        p.pass_(pw(name))
        _, lines, _ = p.retr(1)
        expect_mail_of(name, mail_facts(b"\r\n".join(lines).decode()))
    finally:
        try:
            p.quit()
        except Exception:
            p.close()


@check("clients")
def raw_pop3_auth_plain():
    """raw POP3 after STLS: AUTH PLAIN with an initial response as dora (mbx2)"""
    c = pop3_open("pop3")
    try:
        name = acct("dora")
        r = pop3_login(c, name, pw(name), "plain")
        expect(r and r.startswith(b"+OK"), "AUTH PLAIN refused", r)
        expect_mail_of(name, pop3_read_mail(c))
    finally:
        c.close()


# ---- security -----------------------------------------------------------------------------


def plain_imap():
    c = Conn(opts.imap)
    greeting = c.line()
    expect(greeting and greeting.startswith(b"* OK"), "no greeting", greeting)
    return c, greeting


def plain_pop3():
    c = Conn(opts.pop3)
    greeting = c.line()
    expect(greeting and greeting.startswith(b"+OK"), "no greeting", greeting)
    return c, greeting


@check("security")
def greeting_text():
    """IMAP greeting is "* OK [CAPABILITY IMAP4rev1 ID LITERAL+ SASL-IR ... STARTTLS
    LOGINDISABLED] zproxy IMAP4rev1 proxy ready"; POP3 "+OK zproxy POP3 proxy ready\""""
    c, g = plain_imap()
    c.close()
    m = re.match(rb"^\* OK \[CAPABILITY ([^\]]*)\] zproxy IMAP4rev1 proxy ready$", g)
    expect(m, "IMAP greeting", g)
    caps = m.group(1).split()
    for want in (b"IMAP4rev1", b"ID", b"LITERAL+", b"SASL-IR", b"STARTTLS", b"LOGINDISABLED"):
        expect(want in caps, f"{want!r} missing from the greeting", g)
    expect(b"AUTH=PLAIN" not in caps, "AUTH=PLAIN offered before STARTTLS", g)
    c, g = plain_pop3()
    c.close()
    expect(g == b"+OK zproxy POP3 proxy ready", "POP3 greeting", g)


@check("security")
def privacy_required():
    """before STARTTLS (--starttls only): LOGIN and AUTHENTICATE PLAIN get NO
    [PRIVACYREQUIRED]; POP3 USER and AUTH PLAIN get -ERR [AUTH] Use STLS first"""
    c, _ = plain_imap()
    try:
        c.send(b"a LOGIN ann@example.com secret\r\n")
        r = c.imap_until(b"a")
        expect(r == [b"a NO [PRIVACYREQUIRED] Use STARTTLS first"], "LOGIN before STARTTLS", r)
        c.send(b"b AUTHENTICATE PLAIN " + b64_plain("ann@example.com", "secret") + b"\r\n")
        r = c.imap_until(b"b")
        expect(len(r) == 1 and r[0].startswith(b"b NO [PRIVACYREQUIRED]"), "AUTHENTICATE before STARTTLS", r)
        c.send(b"c CAPABILITY\r\n")
        r = c.imap_until(b"c")
        expect(b"LOGINDISABLED" in r[0] and b"AUTH=PLAIN" not in r[0], "CAPABILITY before STARTTLS", r)
    finally:
        c.close()
    c, _ = plain_pop3()
    try:
        c.send(b"USER ann@example.com\r\n")
        r = c.line()
        expect(r == b"-ERR [AUTH] Use STLS first", "USER before STLS", r)
        c.send(b"AUTH PLAIN " + b64_plain("ann@example.com", "secret") + b"\r\n")
        r = c.line()
        expect(r == b"-ERR [AUTH] Use STLS first", "AUTH PLAIN before STLS", r)
    finally:
        c.close()


@check("security")
def starttls_injection_imap():
    """IMAP STARTTLS injection: "a STARTTLS\\r\\nb CAPABILITY\\r\\n" in one write: only a's
    OK in plaintext, and after the handshake "c NOOP" is answered first (b never runs);
    CAPABILITY over TLS drops STARTTLS/LOGINDISABLED and offers AUTH=PLAIN"""
    c, _ = plain_imap()
    try:
        c.send(b"a STARTTLS\r\nb CAPABILITY\r\n")
        r = c.line()
        expect(r == b"a OK Begin TLS negotiation now", "answer to a STARTTLS", r)
        leftover = c.starttls()
        expect(leftover == b"", "the proxy sent more plaintext after a's OK", leftover)
        c.send(b"c NOOP\r\n")
        first = c.line()
        expect(first is not None and first.startswith(b"c OK"), "the first line over TLS is not c's OK", first)
        c.send(b"d CAPABILITY\r\n")
        r = c.imap_until(b"d")
        caps = r[0].split()
        expect(b"STARTTLS" not in caps and b"LOGINDISABLED" not in caps and b"AUTH=PLAIN" in caps,
               "CAPABILITY over TLS", r)
    finally:
        c.close()


@check("security")
def starttls_injection_pop3():
    """POP3 STLS injection: "STLS\\r\\nCAPA\\r\\n" in one write: after the handshake NOOP's
    bare +OK is the first line (CAPA never runs)"""
    c, _ = plain_pop3()
    try:
        c.send(b"STLS\r\nCAPA\r\n")
        r = c.line()
        expect(r is not None and r.startswith(b"+OK"), "answer to STLS", r)
        leftover = c.starttls()
        expect(leftover == b"", "the proxy sent more plaintext after STLS's +OK", leftover)
        c.send(b"NOOP\r\n")
        first = c.line()
        expect(first is not None and first.strip() == b"+OK", "the first line over TLS is not NOOP's +OK", first)
    finally:
        c.close()


INJECT = b"set route:proto=imap;user=victim 0 0 14\r\n127.0.0.1:9999\r\n"
VICTIM_KEYS = [b"route:proto=imap;user=victim", b"route:proto=pop3;user=victim",
               b"route:proto=imap;user=victim@example.com"]


def victim_keys_absent():
    found = []
    for port in opts.memcached:
        for key in VICTIM_KEYS:
            v = mc_get(port, key)
            if v is not None:
                found.append((port, key, v))
        # and the node still speaks the protocol normally
        version = mc(port, b"version\r\n")
        expect(version.startswith(b"VERSION"), f"cache node {port} answers oddly", version)
    expect(not found, "an injected key exists", found)


@check("security")
def user_name_injection_imap():
    """CR/LF/space/control bytes in an IMAP user name (LOGIN {n} literal "x\\r\\nset
    route:proto=imap;user=victim 0 0 14\\r\\n127.0.0.1:9999\\r\\n\\x01\\t y", over
    STARTTLS and IMAPS): refused, no key route:proto=imap;user=victim on either cache node"""
    user = b"x\r\n" + INJECT + b"\x01\t y"
    for listener in ("imap", "imaps"):
        c = imap_open(listener)
        try:
            r = imap_login(c, user, "pw", "literal")
            expect(r[-1].startswith(b"l NO") or r[-1].startswith(b"l BAD"), f"{listener}: the login was not refused", r)
            note(f"{listener}: {r[-1].decode('utf-8', 'replace')}")
        finally:
            c.close()
    victim_keys_absent()


@check("security")
def user_name_injection_pop3():
    """CR/LF in a POP3 AUTH PLAIN identity (base64 of "\\0x\\r\\nset ...victim...\\0pw"):
    refused, no victim key on either cache node"""
    c = pop3_open("pop3")
    try:
        r = pop3_login(c, b"x\r\n" + INJECT.replace(b"imap", b"pop3") + b"\x01 y", "pw", "plain")
        expect(r is not None and r.startswith(b"-ERR"), "the login was not refused", r)
        note(f"pop3: {r.decode('utf-8', 'replace')}")
    finally:
        c.close()
    victim_keys_absent()


@check("security")
def user_name_with_del():
    """a user name holding a DEL byte (0x7f) that no account has is refused like any
    unknown user: "NO [AUTHENTICATIONFAILED] Authentication failed" (IMAP) and "-ERR [AUTH]
    Authentication failed" (POP3), not a temporary failure"""
    got = []
    c = imap_open("imap")
    try:
        user = b"del\x7fuser@example.com"
        r = imap_login(c, user, "pw", "literal")
        got.append(f"IMAP LOGIN {{{len(user)}}} 'del\\x7fuser@example.com' -> {r[-1].decode('utf-8', 'replace')}")
    finally:
        c.close()
    c = pop3_open("pop3")
    try:
        r = pop3_login(c, b"del\x7fuser@example.com", "pw", "user")
        got.append(f"POP3 USER 'del\\x7fuser@example.com' / PASS pw -> {(r or b'(closed)').decode('utf-8', 'replace')}")
    finally:
        c.close()
    for g in got:
        note(g)
    expect(got[0].endswith("-> l NO [AUTHENTICATIONFAILED] Authentication failed")
           and got[1].endswith("-> -ERR [AUTH] Authentication failed"),
           "wanted the generic refusal of an unknown user", "\n".join(got))


@check("security")
def oversized_lines():
    """an oversized line (9000 bytes) gets "a BAD line too long" (POP3: -ERR line too long,
    2000 bytes) and the session goes on"""
    c, _ = plain_imap()
    try:
        c.send(b"a NOOP " + b"x" * 9000 + b"\r\n")
        r = c.line()
        expect(r is not None and r.startswith(b"a BAD"), "answer to the long line", r)
        note(f"imap: {r.decode()}")
        c.send(b"b NOOP\r\n")
        r = c.line()
        expect(r is not None and r.startswith(b"b OK"), "the session did not go on", r)
    finally:
        c.close()
    c, _ = plain_pop3()
    try:
        c.send(b"NOOP " + b"x" * 2000 + b"\r\n")
        r = c.line()
        expect(r is not None and r.startswith(b"-ERR"), "answer to the long POP3 line", r)
        note(f"pop3: {r.decode()}")
        c.send(b"NOOP\r\n")
        r = c.line()
        expect(r is not None and r.startswith(b"+OK"), "the POP3 session did not go on", r)
    finally:
        c.close()


@check("security")
def bad_command_cap():
    """five invalid commands: five BADs, then "* BYE Too many invalid commands" and the
    connection closes (POP3: five -ERR, a closing -ERR, end of stream)"""
    c, _ = plain_imap()
    try:
        for i in range(5):
            c.send(b"t%d FROBNICATE\r\n" % i)
            r = c.line()
            expect(r is not None and r.startswith(b"t%d BAD" % i), f"answer to invalid command {i + 1}", r)
        rest, secs = c.eof_within(5)
        expect(rest.startswith(b"* BYE"), "no BYE after the fifth", rest)
        note(f"imap: {rest.decode().strip()}")
    finally:
        c.close()
    c, _ = plain_pop3()
    try:
        for i in range(5):
            c.send(b"FROB\r\n")
            r = c.line()
            expect(r is not None and r.startswith(b"-ERR"), f"answer to invalid POP3 command {i + 1}", r)
        rest, secs = c.eof_within(5)
        expect(rest.startswith(b"-ERR"), "no closing -ERR after the fifth", rest)
        note(f"pop3: {rest.decode().strip()}")
    finally:
        c.close()


@check("security")
def preauth_timeout():
    """pre-auth timeout (--preauth-timeout 2): a silent IMAP client gets "* BYE ..." and the
    connection closes after about 2 s; POP3 gets -ERR and the close"""
    for opener, want in ((plain_imap, b"* BYE"), (plain_pop3, b"-ERR")):
        c, _ = opener()
        try:
            rest, secs = c.eof_within(8)
            expect(rest.startswith(want), f"wanted {want!r} before the close", rest)
            expect(1.5 <= secs <= 4, f"closed after {secs:.1f}s, wanted about 2", rest)
            note(f"{rest.decode().strip()} after {secs:.1f}s")
        except socket.timeout:
            raise CheckFailed("still open after 8 s of silence")
        finally:
            c.close()


# ---- main ---------------------------------------------------------------------------------


def main():
    global opts
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--imap", type=int)
    ap.add_argument("--imaps", type=int)
    ap.add_argument("--pop3", type=int)
    ap.add_argument("--pop3s", type=int)
    ap.add_argument("--cafile")
    ap.add_argument("--seed")
    ap.add_argument("--memcached", default="", help="cache node ports, comma-separated")
    ap.add_argument("--how")
    ap.add_argument("--source", help="local address for the raw connections (login)")
    ap.add_argument("group")
    ap.add_argument("args", nargs="*")
    opts = ap.parse_args()
    opts.memcached = [int(p) for p in opts.memcached.split(",") if p]
    if opts.seed:
        load_seed(opts.seed)
    if opts.group == "login":
        listener, user, password = opts.args
        return tool_login(listener, user, password, opts.how)
    if opts.group == "mc-get":
        port, key = opts.args
        v = mc_get(port, key.encode())
        print("(none)" if v is None else v.decode("utf-8", "replace"))
        return 0 if v is not None else 1
    if opts.group == "lookup":
        port, user, password = opts.args
        print(lookup_raw(int(port), user.encode("utf-8", "surrogateescape"),
                         password.encode("utf-8", "surrogateescape"), escape=opts.how != "verbatim"))
        return 0
    if opts.group == "mc-set":
        port, key, value, ttl = opts.args
        data = mc(port, b"set %s 0 %d %d\r\n%s\r\n" % (key.encode(), int(ttl), len(value), value.encode()))
        print(data.decode().strip())
        return 0 if data == b"STORED\r\n" else 1
    if opts.group not in GROUPS:
        ap.error(f"unknown group {opts.group}")
    for fn in GROUPS[opts.group]:
        run_check(fn)
    return min(failures, 100)


if __name__ == "__main__":
    sys.exit(main())
