#!/usr/bin/env python3
"""Python's own mail clients (imaplib, poplib, plus a raw socket client for what they
cannot say) against a running mailbox-stub. Driven by e2e/mailbox_clients.sh, which
starts route-lookup and mailbox-stub, seeds the accounts with zmprov and passes the seed
file here, so account names and passwords have one source.

Groups (the last positional argument):
  imap       LOGIN (odd password, quoted; as sync literals; LITERAL+), AUTHENTICATE PLAIN
             (with and without SASL-IR), STARTTLS, IMAPS, pipelining, SELECT/EXAMINE,
             SEARCH, FETCH (every attribute the issue lists, \\Seen semantics), STORE,
             APPEND, COPY, EXPUNGE, CREATE/RENAME/DELETE (and a hierarchy), LIST/LSUB/
             STATUS, changes seen by another session, IDLE.
  pop3       USER/PASS, STLS, STAT/LIST/UIDL, RETR (dot-stuffing undone), TOP, DELE+QUIT
             persisting (also in the IMAP view), RSET, POP3S.
  refusals   wrong password, locked account, account of another mail host, unknown user,
             over IMAP and POP3, with the exact replies.
  prepare-sync USER      flags INBOX message 1 and puts one message in Trash.
  append-one USER        appends one more message to INBOX.
  maildir USER DIR       the Maildir mbsync wrote equals the server's folders, byte for byte.
  mda USER DIR           the files fetchmail's MDA wrote equal the server's INBOX.

Prints "ok - ..." / "not ok - ..." (with "#" evidence lines) per check; the exit status
is the number of failed checks (at most 100). Standard library only.
"""

import argparse
import base64
import imaplib
import os
import poplib
import re
import shlex
import socket
import ssl
import sys
import threading
import time
import traceback

TIMEOUT = 10  # seconds, for every socket operation
HOST = "127.0.0.1"
DOMAIN = "example.com"

opts = None  # the parsed command line
passwords = {}  # account -> password, from the zmprov seed file
failures = 0
passes = 0
notes = []  # extra lines a check prints after its result


# ---- reporting --------------------------------------------------------------------------


class CheckFailed(Exception):
    pass


def expect(cond, what, evidence=None):
    """Fails the running check with WHAT (and EVIDENCE) unless COND."""
    if not cond:
        msg = what
        if evidence is not None:
            msg += "\n" + (evidence if isinstance(evidence, str) else repr(evidence))
        raise CheckFailed(msg)


def note(text):
    """A line shown (as a comment) after the running check's result."""
    notes.append(text)


def run_check(fn):
    global failures, passes
    desc = LABELS[opts.group] + " ".join((fn.__doc__ or fn.__name__).split())
    del notes[:]
    try:
        fn()
    except CheckFailed as e:
        failures += 1
        print(f"not ok - {desc}")
        for line in str(e).splitlines()[:40]:
            print(f"#   {line}")
    except Exception as e:  # an exception from a client library is a failure too
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


GROUPS = {}
LABELS = {"imap": "IMAP: ", "pop3": "POP3: ", "refusals": "refusal: ", "maildir": "mbsync: ", "mda": "fetchmail: "}


def check(group):
    def register(fn):
        GROUPS.setdefault(group, []).append(fn)
        return fn

    return register


# ---- accounts and connections -------------------------------------------------------------


def load_seed(path):
    """Account -> password from the zmprov batch (`ca NAME PASSWORD ...` lines)."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            words = shlex.split(line, comments=True)
            if len(words) >= 3 and words[0] in ("ca", "createAccount"):
                passwords[words[1].lower()] = words[2]


def acct(local):
    return f"{local}@{DOMAIN}"


def pw(local):
    name = acct(local)
    if name not in passwords:
        raise CheckFailed(f"account {name} is not in the seed file {opts.seed}")
    return passwords[name]


def tls_context():
    ctx = ssl.create_default_context(cafile=opts.cafile)
    return ctx


def imap(local=None, tls=False):
    """An imaplib connection (logged in as LOCAL when given)."""
    if tls:
        m = imaplib.IMAP4_SSL(HOST, opts.imaps, ssl_context=tls_context(), timeout=TIMEOUT)
    else:
        m = imaplib.IMAP4(HOST, opts.imap, timeout=TIMEOUT)
    if local:
        typ, data = m.login(acct(local), pw(local))
        expect(typ == "OK", f"LOGIN {acct(local)} failed", data)
    return m


def close_imap(m):
    try:
        m.logout()
    except Exception:
        pass


def pop(local=None, tls=False):
    if tls:
        p = poplib.POP3_SSL(HOST, opts.pop3s, context=tls_context(), timeout=TIMEOUT)
    else:
        p = poplib.POP3(HOST, opts.pop3, timeout=TIMEOUT)
    if local:
        p.user(acct(local))
        p.pass_(pw(local))
    return p


def close_pop(p):
    try:
        p.quit()
    except Exception:
        try:
            p.close()
        except Exception:
            pass


def imap_quote(s):
    b = s.encode() if isinstance(s, str) else s
    return b'"' + b.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


class Raw:
    """A bare IMAP or POP3 connection: bytes in, lines out (IMAP literals in a reply are
    read into the line they belong to)."""

    def __init__(self, port, use_tls=False, imap_mode=True):
        sock = socket.create_connection((HOST, port), timeout=TIMEOUT)
        if use_tls:
            sock = tls_context().wrap_socket(sock, server_hostname="localhost")
        self.sock = sock
        self.file = sock.makefile("rb")
        self.imap_mode = imap_mode
        self.greeting = self.line()

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        raw = self.file.readline(1 << 20)
        if not raw:
            raise CheckFailed("the server closed the connection")
        text = raw.rstrip(b"\r\n")
        m = re.search(rb"\{(\d+)\}$", text) if self.imap_mode else None
        if m:
            text += b"\r\n" + self.file.read(int(m.group(1))) + self.line()
        return text

    def until_tagged(self, tag):
        """All lines up to and including the one tagged TAG."""
        lines = []
        while True:
            ln = self.line()
            lines.append(ln)
            if ln.startswith(tag + b" "):
                return lines

    def command(self, tag, text):
        self.send(tag + b" " + text + b"\r\n")
        return self.until_tagged(tag)

    def close(self):
        try:
            self.sock.close()
        except Exception:
            pass


def show(lines):
    return "\n".join(ln.decode("utf-8", "replace") if isinstance(ln, bytes) else str(ln) for ln in lines)


# ---- a small parser for IMAP FETCH data ---------------------------------------------------


def sexp(data):
    """Parses IMAP response data (atoms, numbers, "strings", {n} literals, NIL, lists; an atom
    like BODY[HEADER.FIELDS (SUBJECT)]<0> stays one atom) into Python lists, bytes, None."""
    pos = 0
    n = len(data)

    def skip():
        nonlocal pos
        while pos < n and data[pos : pos + 1] in (b" ", b"\r", b"\n"):
            pos += 1

    def value():
        nonlocal pos
        skip()
        c = data[pos : pos + 1]
        if c == b"(":
            pos += 1
            items = []
            while True:
                skip()
                if data[pos : pos + 1] == b")":
                    pos += 1
                    return items
                items.append(value())
        if c == b'"':
            pos += 1
            out = bytearray()
            while data[pos : pos + 1] != b'"':
                if data[pos : pos + 1] == b"\\":
                    pos += 1
                out += data[pos : pos + 1]
                pos += 1
            pos += 1
            return bytes(out)
        if c == b"{":
            end = data.index(b"}", pos)
            length = int(data[pos + 1 : end])
            pos = end + 1
            if data[pos : pos + 2] == b"\r\n":
                pos += 2
            out = data[pos : pos + length]
            pos += length
            return bytes(out)
        start = pos
        depth = 0
        while pos < n:
            ch = data[pos : pos + 1]
            if ch == b"[":
                depth += 1
            elif ch == b"]":
                depth -= 1
            elif depth == 0 and ch in (b" ", b"(", b")", b"\r", b"\n"):
                break
            pos += 1
        atom = bytes(data[start:pos])
        return None if atom.upper() == b"NIL" else atom

    out = []
    while True:
        skip()
        if pos >= n:
            return out
        out.append(value())


def join_imaplib(data):
    """imaplib's list of (head, literal) tuples and bytes back into one byte string."""
    out = b""
    for part in data:
        if isinstance(part, tuple):
            out += part[0] + b"\r\n" + part[1]
        elif part is not None:
            out += part + b"\r\n"
    return out


def fetch_map(raw):
    """FETCH data, `n (k v ...)` as imaplib gives it (or `n FETCH (k v ...)`), ->
    {seq: {KEY: value}}; the pieces of one message's data are merged."""
    items = sexp(raw)
    result = {}
    i = 0
    while i + 1 < len(items):
        seq = items[i]
        if isinstance(items[i + 1], bytes) and items[i + 1].upper() == b"FETCH":
            i += 1
        attrs = items[i + 1] if i + 1 < len(items) else None
        if not (isinstance(seq, bytes) and seq.isdigit() and isinstance(attrs, list)):
            raise CheckFailed("cannot parse FETCH data:\n" + raw.decode("utf-8", "replace"))
        d = result.setdefault(int(seq), {})
        for k, v in zip(attrs[0::2], attrs[1::2]):
            d[k.decode().upper()] = v
        i += 2
    return result


def fetch(m, msgset, items, uid=False):
    if uid:
        typ, data = m.uid("FETCH", msgset, items)
    else:
        typ, data = m.fetch(msgset, items)
    expect(typ == "OK", f"FETCH {msgset} {items} failed", data)
    return fetch_map(join_imaplib(data))


def select(m, folder="INBOX", readonly=False):
    typ, data = m.select(imap_quote(folder).decode(), readonly=readonly)
    expect(typ == "OK", f"SELECT {folder} failed", data)
    return int(data[0])


def search(m, *criteria, uid=False):
    if uid:
        typ, data = m.uid("SEARCH", *criteria)
    else:
        typ, data = m.search(None, *criteria)
    expect(typ == "OK", f"SEARCH {criteria} failed", data)
    return [int(x) for x in data[0].split()]


def status(m, folder, items="(MESSAGES UIDNEXT UIDVALIDITY UNSEEN)"):
    typ, data = m.status(imap_quote(folder).decode(), items)
    expect(typ == "OK", f"STATUS {folder} failed", data)
    parsed = sexp(data[0])
    return {k.decode().upper(): int(v) for k, v in zip(parsed[-1][0::2], parsed[-1][1::2])}


def full_messages(local, folder="INBOX"):
    """{uid: bytes} of a folder, fetched with BODY.PEEK[] (flags untouched)."""
    m = imap(local)
    try:
        if select(m, folder, readonly=True) == 0:
            return {}
        got = fetch(m, "1:*", "(UID BODY.PEEK[])")
        return {int(d["UID"]): d["BODY[]"] for d in got.values()}
    finally:
        close_imap(m)


def flags_of(value):
    return {f.decode() for f in value}


def subject_line(local, n):
    return f"Subject: Message {n} for {acct(local)} on {opts.hostname}".encode()


# ---- IMAP ---------------------------------------------------------------------------------


@check("imap")
def imap_login_odd_password():
    """the greeting names the host; imaplib LOGIN with a password holding a space, '+', '"'
    and '\\' (a quoted string); the INBOX is the account's, on this host"""
    m = imap()
    try:
        expect(m.welcome.startswith(b"* OK [CAPABILITY IMAP4rev1 ")
               and m.welcome.endswith(f"] {opts.hostname} IMAP4rev1 ready".encode()), "greeting", m.welcome)
        expect("STARTTLS" in m.capabilities and "AUTH=PLAIN" in m.capabilities,
               "greeting capabilities lack STARTTLS / AUTH=PLAIN", m.capabilities)
        typ, data = m.login(acct("odd"), pw("odd"))
        expect(typ == "OK", "LOGIN refused", data)
        select(m, readonly=True)
        got = fetch(m, "1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT TO X-Mailbox-Host)])")
        header = got[1]["BODY[HEADER.FIELDS (SUBJECT TO X-MAILBOX-HOST)]"]
        expect(subject_line("odd", 1) in header and f"To: <{acct('odd')}>".encode() in header
               and f"X-Mailbox-Host: {opts.hostname}".encode() in header,
               "message 1 does not name the account and host", header)
    finally:
        close_imap(m)


@check("imap")
def imap_login_sync_literals():
    """raw LOGIN with user and password as synchronizing literals ({n}): a '+' continuation
    for each, then the tagged OK"""
    r = Raw(opts.imap)
    try:
        user, password = acct("odd").encode(), pw("odd").encode()
        r.send(b"L1 LOGIN {%d}\r\n" % len(user))
        first = r.line()
        expect(first.startswith(b"+ ") or first == b"+", "no continuation after the user literal's {n}", first)
        r.send(user + b" {%d}\r\n" % len(password))
        second = r.line()
        expect(second.startswith(b"+ ") or second == b"+", "no continuation after the password literal's {n}", second)
        r.send(password + b"\r\n")
        lines = r.until_tagged(b"L1")
        expect(lines[-1].startswith(b"L1 OK"), "LOGIN with literals refused", show(lines))
    finally:
        r.close()


@check("imap")
def imap_login_literal_plus():
    """raw LOGIN with LITERAL+ non-synchronizing literals ({n+}) in one write: no
    continuation, just the tagged OK"""
    r = Raw(opts.imap)
    try:
        user, password = acct("odd").encode(), pw("odd").encode()
        r.send(b"L1 LOGIN {%d+}\r\n%s {%d+}\r\n%s\r\n" % (len(user), user, len(password), password))
        lines = r.until_tagged(b"L1")
        expect(not any(ln.startswith(b"+") for ln in lines), "a continuation was sent for {n+}", show(lines))
        expect(lines[-1].startswith(b"L1 OK"), "LOGIN with LITERAL+ refused", show(lines))
    finally:
        r.close()


@check("imap")
def imap_pipelined():
    """raw: LOGIN, EXAMINE, FETCH and NOOP pipelined in one write are answered in order"""
    r = Raw(opts.imap)
    try:
        r.send(b"P1 LOGIN " + imap_quote(acct("odd")) + b" " + imap_quote(pw("odd")) + b"\r\n"
               b"P2 EXAMINE INBOX\r\nP3 FETCH 1:* (UID)\r\nP4 NOOP\r\n")
        lines = []
        for tag in (b"P1", b"P2", b"P3", b"P4"):
            lines += r.until_tagged(tag)
        tagged = [ln.split(b" ", 2)[:2] for ln in lines if not ln.startswith(b"*")]
        expect(tagged == [[b"P1", b"OK"], [b"P2", b"OK"], [b"P3", b"OK"], [b"P4", b"OK"]],
               "pipelined commands not all OK in order", show(lines))
        expect(b"* 3 EXISTS" in lines, "EXAMINE did not report 3 EXISTS", show(lines))
        fetched = [ln for ln in lines if b" FETCH (UID " in ln]
        expect(len(fetched) == 3, "FETCH 1:* (UID) did not return 3 messages", show(lines))
    finally:
        r.close()


@check("imap")
def imap_authenticate_plain():
    """imaplib AUTHENTICATE PLAIN (continuation, then the base64 response) with the odd
    password"""
    m = imap()
    try:
        creds = b"\0" + acct("odd").encode() + b"\0" + pw("odd").encode()
        typ, data = m.authenticate("PLAIN", lambda _challenge: creds)
        expect(typ == "OK", "AUTHENTICATE PLAIN refused", data)
        expect(select(m, readonly=True) == 3, "INBOX does not hold 3 messages")
    finally:
        close_imap(m)


@check("imap")
def imap_authenticate_sasl_ir():
    """raw AUTHENTICATE PLAIN with the initial response on the command line (SASL-IR)"""
    r = Raw(opts.imap)
    try:
        b64 = base64.b64encode(b"\0" + acct("odd").encode() + b"\0" + pw("odd").encode())
        lines = r.command(b"S1", b"AUTHENTICATE PLAIN " + b64)
        expect(lines[-1].startswith(b"S1 OK"), "AUTHENTICATE PLAIN with SASL-IR refused", show(lines))
    finally:
        r.close()


@check("imap")
def imap_starttls():
    """imaplib STARTTLS (certificate verified), capabilities re-read without STARTTLS,
    then LOGIN"""
    m = imap()
    try:
        typ, data = m.starttls(ssl_context=tls_context())
        expect(typ == "OK", "STARTTLS refused", data)
        expect(isinstance(m.sock, ssl.SSLSocket), "not encrypted after STARTTLS")
        expect("STARTTLS" not in m.capabilities, "STARTTLS still advertised after TLS", m.capabilities)
        typ, data = m.login(acct("odd"), pw("odd"))
        expect(typ == "OK", "LOGIN after STARTTLS refused", data)
        expect(select(m, readonly=True) == 3, "INBOX does not hold 3 messages")
    finally:
        close_imap(m)


@check("imap")
def imap_imaps():
    """imaplib IMAP4_SSL (implicit TLS): LOGIN, SELECT, message 1 names the account"""
    m = imap("odd", tls=True)
    try:
        select(m, readonly=True)
        got = fetch(m, "1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        expect(got[1]["BODY[HEADER.FIELDS (SUBJECT)]"].startswith(subject_line("odd", 1)),
               "wrong Subject over IMAPS", got)
    finally:
        close_imap(m)


@check("imap")
def imap_select():
    """SELECT INBOX: 3 EXISTS, RECENT, UIDVALIDITY, UIDNEXT 4, FLAGS, PERMANENTFLAGS,
    [READ-WRITE]; EXAMINE says [READ-ONLY]"""
    m = imap("odd")
    try:
        typ, data = m.select("INBOX")
        expect(typ == "OK" and data == [b"3"], "SELECT INBOX: not 3 EXISTS", data)
        resp = m.untagged_responses
        expect("UIDVALIDITY" in resp and int(resp["UIDVALIDITY"][-1]) > 0, "no UIDVALIDITY", resp)
        expect(resp.get("UIDNEXT", [b""])[-1] == b"4", "UIDNEXT is not 4", resp)
        expect("RECENT" in resp, "no RECENT", resp)
        flags = resp.get("FLAGS", [b""])[-1]
        expect(all(f in flags for f in (b"\\Seen", b"\\Deleted", b"\\Flagged", b"\\Answered", b"\\Draft")),
               "FLAGS incomplete", flags)
        expect("PERMANENTFLAGS" in resp, "no PERMANENTFLAGS", resp)
        expect("READ-WRITE" in resp, "SELECT not [READ-WRITE]", resp)
        typ, data = m.select("INBOX", readonly=True)
        expect(typ == "OK" and "READ-ONLY" in m.untagged_responses, "EXAMINE not [READ-ONLY]", m.untagged_responses)
        typ, data = m.select('"No such folder"')
        expect(typ == "NO", "SELECT of a missing folder not refused", data)
    finally:
        close_imap(m)


@check("imap")
def imap_search():
    """SEARCH ALL, UNSEEN (before and after \\Seen is set), SEEN, SUBJECT "Message 2",
    HEADER X-Mailbox-Host, TO, OR, and UID SEARCH"""
    m = imap("search")
    try:
        select(m)
        expect(search(m, "ALL") == [1, 2, 3], "SEARCH ALL", search(m, "ALL"))
        expect(search(m, "UNSEEN") == [1, 2, 3], "SEARCH UNSEEN at first", search(m, "UNSEEN"))
        expect(search(m, "SUBJECT", '"Message 2"') == [2], "SEARCH SUBJECT \"Message 2\"",
               search(m, "SUBJECT", '"Message 2"'))
        expect(search(m, "HEADER", "X-Mailbox-Host", imap_quote(opts.hostname).decode()) == [1, 2, 3],
               "SEARCH HEADER X-Mailbox-Host")
        expect(search(m, "TO", acct("search")) == [1, 2, 3], "SEARCH TO")
        expect(search(m, "OR", "SUBJECT", '"Message 1"', "SUBJECT", '"Message 3"') == [1, 3], "SEARCH OR")
        expect(search(m, "UID", "2:*", "SUBJECT", '"Message 3"', uid=True) == [3], "UID SEARCH")
        typ, data = m.store("1", "+FLAGS.SILENT", "(\\Seen)")
        expect(typ == "OK", "STORE failed", data)
        expect(search(m, "UNSEEN") == [2, 3], "SEARCH UNSEEN after \\Seen on 1", search(m, "UNSEEN"))
        expect(search(m, "SEEN") == [1], "SEARCH SEEN", search(m, "SEEN"))
        expect(search(m, "UNSEEN", uid=True) == [2, 3], "UID SEARCH UNSEEN", search(m, "UNSEEN", uid=True))
    finally:
        close_imap(m)


@check("imap")
def imap_fetch_basics():
    """FETCH FLAGS, UID, INTERNALDATE, RFC822.SIZE (= the length of BODY.PEEK[])"""
    m = imap("fetch")
    try:
        select(m)
        got = fetch(m, "1:3", "(FLAGS UID INTERNALDATE RFC822.SIZE BODY.PEEK[])")
        expect(sorted(got) == [1, 2, 3], "not 3 messages", got.keys())
        for seq, d in got.items():
            expect(flags_of(d["FLAGS"]) == set(), f"message {seq} has flags", d["FLAGS"])
            expect(int(d["UID"]) == seq, f"message {seq} has UID {d['UID']}")
            want_date = f"01-Jan-2024 {9 + seq:02d}:00:00 +0000".encode()
            expect(d["INTERNALDATE"] == want_date, f"INTERNALDATE of {seq}", d["INTERNALDATE"])
            expect(int(d["RFC822.SIZE"]) == len(d["BODY[]"]),
                   f"RFC822.SIZE {d['RFC822.SIZE']} != {len(d['BODY[]'])} bytes of message {seq}")
    finally:
        close_imap(m)


@check("imap")
def imap_fetch_envelope():
    """FETCH ENVELOPE: date, subject, from/sender/reply-to, to, message-id"""
    m = imap("fetch")
    try:
        select(m)
        env = fetch(m, "1", "(ENVELOPE)")[1]["ENVELOPE"]
        expect(env[0] == b"Mon, 01 Jan 2024 10:00:00 +0000", "envelope date", env)
        expect(env[1] == subject_line("fetch", 1)[len("Subject: "):], "envelope subject", env)
        stub = [[b"Mailbox Stub", None, b"postmaster", opts.hostname.encode()]]
        expect(env[2] == stub and env[3] == stub and env[4] == stub, "envelope from/sender/reply-to", env)
        expect(env[5] == [[None, None, b"fetch", DOMAIN.encode()]], "envelope to", env)
        expect(env[6] is None and env[7] is None and env[8] is None, "envelope cc/bcc/in-reply-to", env)
        expect(env[9] == f"<1.fetch.example.com@{opts.hostname}>".encode(), "envelope message-id", env)
    finally:
        close_imap(m)


@check("imap")
def imap_fetch_bodystructure():
    """FETCH BODYSTRUCTURE: text/plain for message 1, multipart/alternative (text/plain +
    text/html, boundary) for message 2, part sizes matching BODY.PEEK[TEXT] / [1] / [2]"""
    m = imap("fetch")
    try:
        select(m)
        got = fetch(m, "1:2", "(BODYSTRUCTURE BODY.PEEK[TEXT] BODY.PEEK[1] BODY.PEEK[2])")
        bs1 = got[1]["BODYSTRUCTURE"]
        expect([x.upper() if isinstance(x, bytes) else x for x in bs1[:2]] == [b"TEXT", b"PLAIN"],
               "message 1 is not TEXT/PLAIN", bs1)
        expect(int(bs1[6]) == len(got[1]["BODY[TEXT]"]), "message 1 body size", (bs1, len(got[1]["BODY[TEXT]"])))
        expect(int(bs1[7]) == got[1]["BODY[TEXT]"].count(b"\n"), "message 1 line count", bs1)
        bs2 = got[2]["BODYSTRUCTURE"]
        expect(isinstance(bs2[0], list) and isinstance(bs2[1], list), "message 2 is not multipart", bs2)
        expect(bs2[2].upper() == b"ALTERNATIVE", "message 2 is not multipart/alternative", bs2)
        expect(bs2[3] == [b"BOUNDARY", b"=_stub_2"] or bs2[3] == [b"boundary", b"=_stub_2"], "boundary", bs2)
        p1, p2 = bs2[0], bs2[1]
        expect([p1[0].upper(), p1[1].upper()] == [b"TEXT", b"PLAIN"], "part 1 type", p1)
        expect([p2[0].upper(), p2[1].upper()] == [b"TEXT", b"HTML"], "part 2 type", p2)
        expect(int(p1[6]) == len(got[2]["BODY[1]"]) and int(p2[6]) == len(got[2]["BODY[2]"]),
               "part sizes differ from BODY[1] / BODY[2]", (p1, p2, len(got[2]["BODY[1]"]), len(got[2]["BODY[2]"])))
    finally:
        close_imap(m)


@check("imap")
def imap_fetch_peek_keeps_unseen():
    """FETCH BODY.PEEK[] does not set \\Seen (FLAGS, SEARCH UNSEEN, and another session's
    STATUS agree)"""
    m = imap("seen")
    try:
        select(m)
        typ, data = m.fetch("1", "(BODY.PEEK[])")
        expect(typ == "OK", "FETCH failed", data)
        expect(b"\\Seen" not in join_imaplib(data), "the PEEK fetch reported \\Seen", data)
        expect(flags_of(fetch(m, "1", "(FLAGS)")[1]["FLAGS"]) == set(), "message 1 got flags from a PEEK")
        expect(search(m, "UNSEEN") == [1, 2, 3], "SEARCH UNSEEN after PEEK", search(m, "UNSEEN"))
        other = imap("seen")
        try:
            expect(status(other, "INBOX")["UNSEEN"] == 3, "another session's STATUS UNSEEN is not 3")
        finally:
            close_imap(other)
    finally:
        close_imap(m)


@check("imap")
def imap_fetch_body_sets_seen():
    """FETCH BODY[] sets \\Seen: reported in the FETCH reply, kept, visible to another
    session"""
    m = imap("seen")
    try:
        select(m)
        got = fetch(m, "3", "(BODY[])")
        expect(subject_line("seen", 3) in got[3]["BODY[]"], "wrong message", got)
        expect("FLAGS" in got[3] and "\\Seen" in flags_of(got[3]["FLAGS"]),
               "the FETCH BODY[] reply does not report FLAGS (\\Seen)", got[3].keys())
        expect(flags_of(fetch(m, "3", "(FLAGS)")[3]["FLAGS"]) == {"\\Seen"}, "\\Seen not kept")
        other = imap("seen")
        try:
            select(other, readonly=True)
            expect(search(other, "SEEN") == [3], "another session does not see \\Seen on 3", search(other, "SEEN"))
        finally:
            close_imap(other)
    finally:
        close_imap(m)


@check("imap")
def imap_fetch_header_fields():
    """FETCH BODY[HEADER.FIELDS (SUBJECT)]: exactly the Subject line and the blank line"""
    m = imap("fetch")
    try:
        select(m)
        got = fetch(m, "1", "(BODY[HEADER.FIELDS (SUBJECT)])")
        value = got[1].get("BODY[HEADER.FIELDS (SUBJECT)]")
        expect(value == subject_line("fetch", 1) + b"\r\n\r\n", "wrong HEADER.FIELDS (SUBJECT)", value)
    finally:
        close_imap(m)


@check("imap")
def imap_fetch_text_and_header():
    """FETCH BODY[TEXT] and BODY[HEADER] split BODY[] at the blank line; the '.'-line is
    not stuffed in IMAP"""
    m = imap("fetch")
    try:
        select(m)
        got = fetch(m, "1", "(BODY.PEEK[] BODY[HEADER] BODY[TEXT])")[1]
        full = got["BODY[]"]
        cut = full.index(b"\r\n\r\n") + 4
        expect(got["BODY[HEADER]"] == full[:cut], "BODY[HEADER] differs", got["BODY[HEADER]"])
        expect(got["BODY[TEXT]"] == full[cut:], "BODY[TEXT] differs", got["BODY[TEXT]"])
        expect(b"\r\n.a line that starts with a dot" in got["BODY[TEXT]"], "the dot line is altered", got["BODY[TEXT]"])
    finally:
        close_imap(m)


@check("imap")
def imap_fetch_partial():
    """FETCH BODY[]<0.20> and BODY.PEEK[]<10.20>: the right bytes, labelled BODY[]<0> /
    BODY[]<10>"""
    m = imap("fetch")
    try:
        select(m)
        full = fetch(m, "2", "(BODY.PEEK[])")[2]["BODY[]"]
        got = fetch(m, "2", "(BODY[]<0.20>)")[2]
        expect(got.get("BODY[]<0>") == full[:20], "BODY[]<0.20>", got)
        got = fetch(m, "2", "(BODY.PEEK[]<10.20>)")[2]
        expect(got.get("BODY[]<10>") == full[10:30], "BODY.PEEK[]<10.20>", got)
    finally:
        close_imap(m)


@check("imap")
def imap_fetch_mime_parts():
    """FETCH BODY[1] / BODY[2] of the multipart message: the text/plain and text/html parts,
    without their MIME headers or boundaries"""
    m = imap("fetch")
    try:
        select(m)
        got = fetch(m, "2", "(BODY[1] BODY[2])")[2]
        p1, p2 = got.get("BODY[1]", b""), got.get("BODY[2]", b"")
        want1 = (f"Hello {acct('fetch')},\r\n\r\nthis is message 2, the plain-text part, "
                 f"served by {opts.hostname}.").encode()
        expect(p1 == want1, "BODY[1] is not the text/plain part", p1)
        expect(p2.startswith(b"<html>") and p2.endswith(b"</html>") and b"--" not in p2,
               "BODY[2] is not the text/html part", p2)
    finally:
        close_imap(m)


@check("imap")
def imap_store():
    """STORE +FLAGS (\\Flagged) / -FLAGS, +FLAGS.SILENT (no FETCH reply, flag kept), UID
    STORE of a keyword (reply carries the UID)"""
    m = imap("store")
    try:
        select(m)
        typ, data = m.store("1", "+FLAGS", "(\\Flagged)")
        expect(typ == "OK" and data and data[0] and b"\\Flagged" in data[0], "+FLAGS reply", data)
        expect(flags_of(fetch(m, "1", "(FLAGS)")[1]["FLAGS"]) == {"\\Flagged"}, "\\Flagged not kept")
        typ, data = m.store("1", "-FLAGS", "(\\Flagged)")
        expect(typ == "OK" and data and data[0] and b"\\Flagged" not in data[0], "-FLAGS reply", data)
        expect(flags_of(fetch(m, "1", "(FLAGS)")[1]["FLAGS"]) == set(), "\\Flagged not removed")
        typ, data = m.store("2", "+FLAGS.SILENT", "(\\Answered)")
        expect(typ == "OK", "+FLAGS.SILENT failed", data)
        expect(data == [None] and "FETCH" not in m.untagged_responses,
               "+FLAGS.SILENT sent a FETCH reply", (data, m.untagged_responses.get("FETCH")))
        expect(flags_of(fetch(m, "2", "(FLAGS)")[2]["FLAGS"]) == {"\\Answered"}, "silent flag not kept")
        typ, data = m.uid("STORE", "3", "+FLAGS", "($Label1)")
        expect(typ == "OK" and data and data[0] and b"UID 3" in data[0] and b"$Label1" in data[0],
               "UID STORE reply", data)
        expect(search(m, "ANSWERED") == [2], "SEARCH ANSWERED", search(m, "ANSWERED"))
    finally:
        close_imap(m)


@check("imap")
def imap_flags_seen_by_other_session():
    """a flag change in one session is reported to another session with the folder selected
    (untagged FETCH FLAGS at its next NOOP)"""
    a, b = imap("store"), imap("store")
    try:
        select(a)
        select(b)
        typ, data = b.store("3", "+FLAGS", "(\\Flagged)")
        expect(typ == "OK", "STORE failed", data)
        typ, data = a.noop()
        fetched = a.untagged_responses.get("FETCH", [])
        expect(any(f.startswith(b"3 (") and b"\\Flagged" in f for f in fetched if isinstance(f, bytes)),
               "no FETCH FLAGS for message 3 at NOOP", (typ, data, fetched))
    finally:
        close_imap(a)
        close_imap(b)


@check("imap")
def imap_append():
    """APPEND with flags and a date: [APPENDUID validity uid], SELECT shows one more, the
    stored message has the flags, the date and the same bytes; APPEND to a missing folder
    gets [TRYCREATE]"""
    m = imap("append")
    try:
        before = select(m)
        validity = int(m.untagged_responses["UIDVALIDITY"][-1])
        uidnext = int(m.untagged_responses["UIDNEXT"][-1])
        body = (b"From: Tester <tester@example.org>\r\nTo: <append@example.com>\r\n"
                b"Subject: appended by imaplib\r\nMessage-ID: <appended@example.org>\r\n\r\n"
                b"first line\r\n.starts with a dot\r\n\r\nlast line\r\n")
        when = 1700000000
        typ, data = m.append("INBOX", "(\\Flagged $Label1)", imaplib.Time2Internaldate(when), body)
        expect(typ == "OK", "APPEND failed", data)
        code = re.search(rb"\[APPENDUID (\d+) (\d+)\]", data[0])
        expect(code is not None, "no APPENDUID", data)
        expect(int(code.group(1)) == validity and int(code.group(2)) == uidnext,
               f"APPENDUID is not {validity} {uidnext}", data)
        after = select(m)
        expect(after == before + 1, f"SELECT shows {after} messages, not {before + 1}")
        got = fetch(m, str(uidnext), "(FLAGS INTERNALDATE BODY.PEEK[])", uid=True)
        d = list(got.values())[0]
        expect(flags_of(d["FLAGS"]) == {"\\Flagged", "$Label1"}, "flags of the appended message", d["FLAGS"])
        stamp = time.mktime(imaplib.Internaldate2tuple(b'INTERNALDATE "' + d["INTERNALDATE"] + b'"'))
        expect(int(stamp) == when, "INTERNALDATE of the appended message", d["INTERNALDATE"])
        expect(d["BODY[]"] == body, "appended bytes differ", d["BODY[]"])
        typ, data = m.append('"No such folder"', None, None, body)
        expect(typ == "NO" and b"[TRYCREATE]" in data[0], "APPEND to a missing folder", (typ, data))
    finally:
        close_imap(m)


@check("imap")
def imap_copy():
    """COPY 1:2 to Trash: [COPYUID validity 1:2 new-uids], Trash holds the same bytes and
    flags, INBOX unchanged; COPY to a missing folder gets [TRYCREATE]"""
    m = imap("copy")
    try:
        select(m)
        m.store("1", "+FLAGS.SILENT", "(\\Flagged)")
        originals = fetch(m, "1:2", "(FLAGS BODY.PEEK[])")
        trash = status(m, "Trash")
        typ, data = m.copy("1:2", "Trash")
        expect(typ == "OK", "COPY failed", data)
        code = re.search(rb"\[COPYUID (\d+) (\S+) (\S+)\]", data[0])
        expect(code is not None, "no COPYUID", data)
        expect(int(code.group(1)) == trash["UIDVALIDITY"], "COPYUID validity is not Trash's", (data, trash))
        expect(code.group(2) in (b"1:2", b"1,2"), "COPYUID source set", data)
        expect(code.group(3) in (b"1:2", b"1,2"), "COPYUID destination set (Trash was empty)", data)
        expect(status(m, "Trash")["MESSAGES"] == 2, "Trash does not hold 2 messages")
        expect(status(m, "INBOX")["MESSAGES"] == 3, "INBOX changed")
        select(m, "Trash")
        copies = fetch(m, "1:2", "(FLAGS BODY.PEEK[])")
        for n in (1, 2):
            expect(copies[n]["BODY[]"] == originals[n]["BODY[]"], f"copy {n} differs")
            expect(flags_of(copies[n]["FLAGS"]) == flags_of(originals[n]["FLAGS"]), f"copy {n} flags",
                   (copies[n]["FLAGS"], originals[n]["FLAGS"]))
        typ, data = m.copy("1", '"No such folder"')
        expect(typ == "NO" and b"[TRYCREATE]" in data[0], "COPY to a missing folder", (typ, data))
    finally:
        close_imap(m)


@check("imap")
def imap_expunge():
    """STORE +FLAGS (\\Deleted) then EXPUNGE: '* 2 EXPUNGE', then 2 EXISTS on SELECT and the
    right messages left"""
    m = imap("expunge")
    try:
        select(m)
        m.store("2", "+FLAGS.SILENT", "(\\Deleted)")
        typ, data = m.expunge()
        expect(typ == "OK" and data == [b"2"], "EXPUNGE did not report message 2", (typ, data))
        expect(select(m) == 2, "SELECT after EXPUNGE does not show 2 EXISTS", m.untagged_responses)
        expect(search(m, "ALL", uid=True) == [1, 3], "UIDs left are not 1 and 3", search(m, "ALL", uid=True))
        subjects = fetch(m, "1:2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        expect(subjects[1]["BODY[HEADER.FIELDS (SUBJECT)]"].startswith(subject_line("expunge", 1))
               and subjects[2]["BODY[HEADER.FIELDS (SUBJECT)]"].startswith(subject_line("expunge", 3)),
               "wrong messages left", subjects)
    finally:
        close_imap(m)


def list_names(m, ref='""', pattern="*", cmd="LIST"):
    typ, data = m.list(ref, pattern) if cmd == "LIST" else m.lsub(ref, pattern)
    expect(typ == "OK", f"{cmd} failed", data)
    out = {}
    for item in data:
        if item is None:
            continue
        parsed = sexp(join_imaplib([item]) if isinstance(item, tuple) else item)
        out[parsed[2].decode()] = ({a.decode() for a in parsed[0]}, parsed[1])
    return out


@check("imap")
def imap_create_rename_delete():
    """CREATE, RENAME (to a name with a space), SELECT, DELETE a folder; CREATE of an
    existing one and DELETE/RENAME of INBOX are refused"""
    m = imap("folders")
    try:
        typ, data = m.create("Work")
        expect(typ == "OK", "CREATE Work", data)
        expect("Work" in list_names(m), "LIST lacks Work", list_names(m))
        typ, data = m.rename("Work", '"Old Work"')
        expect(typ == "OK", "RENAME Work to Old Work", data)
        names = list_names(m)
        expect("Old Work" in names and "Work" not in names, "LIST after RENAME", names)
        expect(select(m, "Old Work") == 0, "the renamed folder is not selectable and empty")
        m.close()
        typ, data = m.delete('"Old Work"')
        expect(typ == "OK", "DELETE Old Work", data)
        expect("Old Work" not in list_names(m), "LIST still shows Old Work", list_names(m))
        typ, data = m.create("Sent")
        expect(typ == "NO", "CREATE of an existing folder not refused", data)
        typ, data = m.delete("INBOX")
        expect(typ == "NO", "DELETE INBOX not refused", data)
        typ, data = m.delete("Nothing")
        expect(typ == "NO", "DELETE of a missing folder not refused", data)
    finally:
        close_imap(m)


@check("imap")
def imap_rename_with_inferiors():
    """RENAME of a folder with a subfolder renames the subfolder (and its mail) too (RFC 3501
    6.3.5: 'the inferior hierarchical names MUST also be renamed')"""
    m = imap("tree")
    try:
        for name in ("Proj", "Proj/Sub"):
            typ, data = m.create(name)
            expect(typ == "OK", f"CREATE {name}", data)
        typ, data = m.append("Proj/Sub", None, None, b"Subject: in Proj/Sub\r\n\r\nhello\r\n")
        expect(typ == "OK", "APPEND to Proj/Sub", data)
        typ, data = m.rename("Proj", "Archive")
        expect(typ == "OK", "RENAME Proj Archive", data)
        names = list_names(m)
        expect("Archive/Sub" in names and "Proj/Sub" not in names,
               'after "RENAME Proj Archive", LIST "" * shows ' + repr(sorted(names))
               + ' (want Archive/Sub, no Proj/Sub)')
        expect(status(m, "Archive/Sub", "(MESSAGES)") == {"MESSAGES": 1}, "Archive/Sub lost its message")
    finally:
        close_imap(m)


@check("imap")
def imap_list_percent_parent():
    """LIST "" % shows the top level of a nested folder created as a/b/c, as \\Noselect
    (RFC 3501 6.3.8: levels of hierarchy matching % are also returned)"""
    m = imap("tree2")
    try:
        typ, data = m.create("Deep/er/est")
        expect(typ == "OK", "CREATE Deep/er/est", data)
        expect("Deep/er/est" in list_names(m), 'LIST "" * lacks Deep/er/est', list_names(m))
        top = list_names(m, pattern="%")
        expect("Deep" in top, 'after "CREATE Deep/er/est", LIST "" % shows ' + repr(sorted(top))
               + " (want Deep among them, \\Noselect if it is not a folder)")
    finally:
        close_imap(m)


@check("imap")
def imap_list_lsub_status():
    """LIST "" * / % / "" (delimiter '/'), LSUB, SUBSCRIBE/UNSUBSCRIBE, STATUS (MESSAGES
    UIDNEXT UIDVALIDITY UNSEEN RECENT)"""
    m = imap("folders")
    try:
        names = list_names(m)
        expect({"INBOX", "Sent", "Trash"} <= set(names), 'LIST "" *', names)
        expect(all(delim == b"/" for _, delim in names.values()), "delimiter is not /", names)
        expect({"INBOX", "Sent", "Trash"} <= set(list_names(m, pattern="%")), 'LIST "" %')
        typ, data = m.list('""', '""')
        expect(typ == "OK" and data and data[0] and b"\\Noselect" in data[0] and b'"/"' in data[0],
               'LIST "" "" does not give the delimiter', data)
        subscribed = list_names(m, cmd="LSUB")
        expect({"INBOX", "Sent", "Trash"} <= set(subscribed), "LSUB", subscribed)
        typ, data = m.unsubscribe("Trash")
        expect(typ == "OK" and "Trash" not in list_names(m, cmd="LSUB"), "UNSUBSCRIBE Trash", data)
        typ, data = m.subscribe("Trash")
        expect(typ == "OK" and "Trash" in list_names(m, cmd="LSUB"), "SUBSCRIBE Trash", data)
        st = status(m, "INBOX", "(MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)")
        expect(st["MESSAGES"] == 3 and st["UIDNEXT"] == 4 and st["UNSEEN"] == 3 and st["UIDVALIDITY"] > 0
               and "RECENT" in st, "STATUS INBOX", st)
        st = status(m, "Trash", "(MESSAGES)")
        expect(st == {"MESSAGES": 0}, "STATUS Trash", st)
    finally:
        close_imap(m)


@check("imap")
def imap_idle():
    """IDLE: session A idles on INBOX, session B APPENDs, A gets '* 4 EXISTS' within 5 s,
    then DONE gets the tagged OK"""
    a = Raw(opts.imap)
    try:
        lines = a.command(b"I1", b"LOGIN " + imap_quote(acct("idle")) + b" " + imap_quote(pw("idle")))
        expect(lines[-1].startswith(b"I1 OK"), "LOGIN", show(lines))
        lines = a.command(b"I2", b"SELECT INBOX")
        expect(lines[-1].startswith(b"I2 OK") and b"* 3 EXISTS" in lines, "SELECT", show(lines))
        a.send(b"I3 IDLE\r\n")
        cont = a.line()
        expect(cont.startswith(b"+"), "no continuation for IDLE", cont)
        result = {}

        def appender():
            try:
                b = imap("idle")
                try:
                    result["append"] = b.append("INBOX", None, None, b"Subject: while idling\r\n\r\nhi\r\n")
                finally:
                    close_imap(b)
            except Exception as e:  # reported below
                result["error"] = e

        t = threading.Thread(target=appender, daemon=True)
        started = time.monotonic()
        t.start()
        a.sock.settimeout(5)
        seen = []
        try:
            while True:
                ln = a.line()
                seen.append(ln)
                if ln == b"* 4 EXISTS":
                    break
        except (socket.timeout, TimeoutError):
            raise CheckFailed("no '* 4 EXISTS' within 5 s of the APPEND; got:\n" + show(seen))
        waited = time.monotonic() - started
        t.join(TIMEOUT)
        expect("error" not in result and result.get("append", ("",))[0] == "OK",
               "session B's APPEND failed", result)
        a.sock.settimeout(TIMEOUT)
        a.send(b"DONE\r\n")
        lines = a.until_tagged(b"I3")
        expect(lines[-1].startswith(b"I3 OK"), "DONE did not end IDLE with OK", show(lines))
        lines = a.command(b"I4", b"NOOP")
        expect(lines[-1].startswith(b"I4 OK"), "the session is not usable after IDLE", show(lines))
        note(f"EXISTS arrived {waited:.2f}s after the APPEND started")
    finally:
        a.close()


# ---- POP3 ---------------------------------------------------------------------------------


def crlf_message(lines):
    """poplib's lines (dot-unstuffed, without line ends) -> the message bytes."""
    return b"".join(ln + b"\r\n" for ln in lines)


@check("pop3")
def pop3_user_pass_odd_password():
    """poplib USER/PASS with the odd password (space, '+', '"', '\\'); STAT shows 3 messages"""
    p = pop()
    try:
        expect(p.getwelcome() == f"+OK {opts.hostname} POP3 ready".encode(), "greeting", p.getwelcome())
        expect(p.user(acct("odd")).startswith(b"+OK"), "USER")
        expect(p.pass_(pw("odd")).startswith(b"+OK"), "PASS")
        expect(p.stat()[0] == 3, "STAT", p.stat())
    finally:
        close_pop(p)


@check("pop3")
def pop3_stls():
    """poplib STLS (certificate verified): CAPA listed STLS before and not after; USER/PASS
    then works"""
    p = pop()
    try:
        expect("STLS" in p.capa(), "CAPA lacks STLS", p.capa())
        resp = p.stls(tls_context())
        expect(resp.startswith(b"+OK") and isinstance(p.sock, ssl.SSLSocket), "STLS", resp)
        expect("STLS" not in p.capa(), "STLS still in CAPA after TLS", p.capa())
        p.user(acct("pop"))
        p.pass_(pw("pop"))
        expect(p.stat()[0] == 3, "STAT after STLS", p.stat())
    finally:
        close_pop(p)


@check("pop3")
def pop3_stat_list_uidl():
    """STAT, LIST (and LIST n), UIDL: 3 messages, sizes equal to IMAP RFC822.SIZE, unique
    UIDs stable across sessions"""
    m = imap("pop")
    try:
        select(m, readonly=True)
        sizes = {seq: int(d["RFC822.SIZE"]) for seq, d in fetch(m, "1:*", "(RFC822.SIZE)").items()}
    finally:
        close_imap(m)
    p = pop("pop")
    try:
        count, octets = p.stat()
        expect(count == 3 and octets == sum(sizes.values()), "STAT", ((count, octets), sizes))
        resp, lines, _ = p.list()
        listed = {int(a): int(b) for a, b in (ln.split() for ln in lines)}
        expect(listed == sizes, "LIST sizes differ from IMAP RFC822.SIZE", (listed, sizes))
        expect(p.list(2) == b"+OK 2 %d" % sizes[2], "LIST 2", p.list(2))
        uidl1 = p.uidl()[1]
    finally:
        close_pop(p)
    p = pop("pop")
    try:
        uidl2 = p.uidl()[1]
    finally:
        close_pop(p)
    ids = [ln.split()[1] for ln in uidl1]
    expect(len(ids) == 3 and len(set(ids)) == 3, "UIDL ids not unique", uidl1)
    expect(uidl1 == uidl2, "UIDL changed between sessions", (uidl1, uidl2))


@check("pop3")
def pop3_retr():
    """RETR 1 and RETR 2 are byte-identical to IMAP BODY.PEEK[]; the '.'-line comes back with
    one dot (dot-stuffing undone); '+OK n octets' is right"""
    imap_view = full_messages("pop")
    p = pop("pop")
    try:
        for n in (1, 2):
            resp, lines, _ = p.retr(n)
            body = crlf_message(lines)
            expect(resp == b"+OK %d octets" % len(imap_view[n]), f"RETR {n} status line", resp)
            expect(body == imap_view[n], f"RETR {n} differs from IMAP BODY[]", (body, imap_view[n]))
        resp, lines, _ = p.retr(1)
        expect(b".a line that starts with a dot, for POP3 dot-stuffing" in lines, "the dot line", lines)
        expect(not any(ln.startswith(b"..") for ln in lines), "a line still dot-stuffed", lines)
    finally:
        close_pop(p)


@check("pop3")
def pop3_top():
    """TOP 1 0 is the header and the blank line; TOP 1 2 adds the first two body lines"""
    full = full_messages("pop")[1]
    header, body = full.split(b"\r\n\r\n", 1)
    want0 = header.split(b"\r\n") + [b""]
    p = pop("pop")
    try:
        resp, lines, _ = p.top(1, 0)
        expect(lines == want0, "TOP 1 0", lines)
        resp, lines, _ = p.top(1, 2)
        expect(lines == want0 + body.split(b"\r\n")[:2], "TOP 1 2", lines)
        expect(lines[-2] == f"Hello {acct('pop')},".encode() and lines[-1] == b"", "TOP 1 2 body lines", lines)
    finally:
        close_pop(p)


@check("pop3")
def pop3_dele_quit():
    """DELE 2 hides it at once (STAT, LIST, RETR -ERR); after QUIT a new POP3 session and the
    IMAP view of INBOX have one message fewer"""
    p = pop("popdele")
    try:
        expect(p.dele(2).startswith(b"+OK"), "DELE 2")
        expect(p.stat()[0] == 2, "STAT after DELE", p.stat())
        expect([ln.split()[0] for ln in p.list()[1]] == [b"1", b"3"], "LIST after DELE", p.list())
        try:
            p.retr(2)
            raise CheckFailed("RETR of a deleted message succeeded")
        except poplib.error_proto as e:
            expect(str(e).startswith("b'-ERR"), "RETR 2", e)
        expect(p.quit().startswith(b"+OK"), "QUIT")
    except Exception:
        close_pop(p)
        raise
    p = pop("popdele")
    try:
        expect(p.stat()[0] == 2, "a new POP3 session does not see 2 messages", p.stat())
        resp, lines, _ = p.top(2, 0)
        expect(subject_line("popdele", 3) in lines, "message 2 is not the old message 3 now", lines)
    finally:
        close_pop(p)
    m = imap("popdele")
    try:
        expect(select(m, readonly=True) == 2, "IMAP SELECT INBOX does not show 2 EXISTS")
        expect(search(m, "ALL", uid=True) == [1, 3], "IMAP UIDs are not 1 and 3", search(m, "ALL", uid=True))
    finally:
        close_imap(m)


@check("pop3")
def pop3_rset():
    """DELE 1 and 3, RSET undoes both, QUIT removes nothing (POP3 and IMAP still see 3)"""
    p = pop("poprset")
    try:
        p.dele(1)
        p.dele(3)
        expect(p.stat()[0] == 1, "STAT after two DELEs", p.stat())
        expect(p.rset().startswith(b"+OK"), "RSET")
        expect(p.stat()[0] == 3, "STAT after RSET", p.stat())
        expect(p.quit().startswith(b"+OK"), "QUIT")
    except Exception:
        close_pop(p)
        raise
    p = pop("poprset")
    try:
        expect(p.stat()[0] == 3, "a new session does not see 3 messages", p.stat())
    finally:
        close_pop(p)
    m = imap("poprset")
    try:
        expect(select(m, readonly=True) == 3, "IMAP does not see 3 messages")
    finally:
        close_imap(m)


@check("pop3")
def pop3_pop3s():
    """poplib POP3_SSL (implicit TLS): USER/PASS, STAT, RETR 3 names the account and host"""
    p = pop("pop", tls=True)
    try:
        expect(isinstance(p.sock, ssl.SSLSocket), "not TLS")
        expect(p.stat()[0] == 3, "STAT", p.stat())
        resp, lines, _ = p.retr(3)
        expect(subject_line("pop", 3) in lines and f"X-Mailbox-Host: {opts.hostname}".encode() in lines,
               "RETR 3 over POP3S", lines)
    finally:
        close_pop(p)


# ---- refusals -----------------------------------------------------------------------------


def imap_login_reply(user, password, port=None, use_tls=False):
    """The tagged reply to a raw LOGIN (and the connection, still open)."""
    r = Raw(port or opts.imap, use_tls=use_tls)
    lines = r.command(b"R1", b"LOGIN " + imap_quote(user) + b" " + imap_quote(password))
    return r, lines[-1]


def pop3_pass_reply(user, password):
    r = Raw(opts.pop3, imap_mode=False)
    r.send(b"USER " + user.encode() + b"\r\n")
    first = r.line()
    expect(first.startswith(b"+OK"), "USER not accepted", first)
    r.send(b"PASS " + password.encode() + b"\r\n")
    return r, r.line()


@check("refusals")
def refuse_wrong_password_imap():
    """IMAP wrong password: 'NO [AUTHENTICATIONFAILED] Authentication failed' (LOGIN and
    AUTHENTICATE PLAIN); the right one then works on the same connection"""
    r, reply = imap_login_reply(acct("odd"), pw("odd") + "x")
    try:
        expect(reply == b"R1 NO [AUTHENTICATIONFAILED] Authentication failed", "LOGIN reply", reply)
        b64 = base64.b64encode(b"\0" + acct("odd").encode() + b"\0wrong")
        lines = r.command(b"R2", b"AUTHENTICATE PLAIN " + b64)
        expect(lines[-1] == b"R2 NO [AUTHENTICATIONFAILED] Authentication failed", "AUTHENTICATE reply", show(lines))
        lines = r.command(b"R3", b"LOGIN " + imap_quote(acct("odd")) + b" " + imap_quote(pw("odd")))
        expect(lines[-1].startswith(b"R3 OK"), "the right password after a wrong one", show(lines))
    finally:
        r.close()


@check("refusals")
def refuse_wrong_password_pop3():
    """POP3 wrong password: '-ERR [AUTH] Authentication failed'; USER/PASS with the right one
    then works on the same connection"""
    r, reply = pop3_pass_reply(acct("pop"), pw("pop") + "x")
    try:
        expect(reply == b"-ERR [AUTH] Authentication failed", "PASS reply", reply)
        r.send(b"USER " + acct("pop").encode() + b"\r\nPASS " + pw("pop").encode() + b"\r\n")
        r.line()
        second = r.line()
        expect(second.startswith(b"+OK"), "the right password after a wrong one", second)
    finally:
        r.close()


@check("refusals")
def refuse_locked():
    """a locked account (right password) is refused: IMAP 'NO [AUTHENTICATIONFAILED] ...',
    POP3 '-ERR [AUTH] ...'"""
    r, reply = imap_login_reply(acct("locked"), pw("locked"))
    r.close()
    expect(reply == b"R1 NO [AUTHENTICATIONFAILED] Authentication failed", "IMAP LOGIN reply", reply)
    r, reply = pop3_pass_reply(acct("locked"), pw("locked"))
    r.close()
    expect(reply == b"-ERR [AUTH] Authentication failed", "POP3 PASS reply", reply)


@check("refusals")
def refuse_other_host():
    """an account whose mail host is another server: IMAP 'NO [AUTHENTICATIONFAILED] Account ... is
    not on <host> (its mail host is ...)', POP3 '-ERR [SYS/PERM] ...'; with a wrong password
    it is a plain authentication failure"""
    want = (f"Account {acct('far')} is not on {opts.hostname} "
            f"(its mail host is {opts.other_host})").encode()
    r, reply = imap_login_reply(acct("far"), pw("far"))
    r.close()
    expect(reply == b"R1 NO [AUTHENTICATIONFAILED] " + want, "IMAP LOGIN reply", reply)
    r, reply = imap_login_reply(acct("far"), pw("far"), port=opts.imaps, use_tls=True)
    r.close()
    expect(reply == b"R1 NO [AUTHENTICATIONFAILED] " + want, "IMAPS LOGIN reply", reply)
    r, reply = pop3_pass_reply(acct("far"), pw("far"))
    r.close()
    expect(reply == b"-ERR [SYS/PERM] " + want, "POP3 PASS reply", reply)
    r, reply = imap_login_reply(acct("far"), "wrong")
    r.close()
    expect(reply == b"R1 NO [AUTHENTICATIONFAILED] Authentication failed", "IMAP wrong password reply", reply)


@check("refusals")
def refuse_unknown_user():
    """an unknown user: IMAP 'NO [AUTHENTICATIONFAILED] ...', POP3 '-ERR [AUTH] ...'"""
    r, reply = imap_login_reply(acct("nobody"), "whatever")
    r.close()
    expect(reply == b"R1 NO [AUTHENTICATIONFAILED] Authentication failed", "IMAP LOGIN reply", reply)
    r, reply = pop3_pass_reply(acct("nobody"), "whatever")
    r.close()
    expect(reply == b"-ERR [AUTH] Authentication failed", "POP3 PASS reply", reply)


# ---- helpers for the sync clients ---------------------------------------------------------


def prepare_sync(local):
    m = imap(local)
    try:
        select(m)
        typ, data = m.store("1", "+FLAGS.SILENT", "(\\Flagged)")
        expect(typ == "OK", "STORE", data)
        typ, data = m.append("Trash", None, None,
                             f"Subject: in the Trash of {acct(local)}\r\n\r\ndeleted\r\n".encode())
        expect(typ == "OK", "APPEND to Trash", data)
    finally:
        close_imap(m)


def append_one(local):
    m = imap(local)
    try:
        typ, data = m.append("INBOX", None, None,
                             f"Subject: one more for {acct(local)}\r\n\r\n.dot\r\nmore\r\n".encode())
        expect(typ == "OK", "APPEND", data)
    finally:
        close_imap(m)


def server_state(local):
    """{folder: {uid: (flags, bytes)}} of every folder, without touching flags."""
    m = imap(local)
    try:
        out = {}
        for name in list_names(m):
            out[name] = {}
            if select(m, name, readonly=True):
                for d in fetch(m, "1:*", "(UID FLAGS BODY.PEEK[])").values():
                    out[name][int(d["UID"])] = (flags_of(d["FLAGS"]), d["BODY[]"])
        return out
    finally:
        close_imap(m)


MAILDIR_FLAGS = {"F": "\\Flagged", "S": "\\Seen", "R": "\\Answered", "T": "\\Deleted", "D": "\\Draft"}


@check("maildir")
def maildir_matches_server():
    """the Maildir mbsync wrote has one directory per server folder and one file per
    message, each byte-identical to a message's IMAP BODY.PEEK[] (once the LF line ends
    and the X-TUID header mbsync adds are undone), with its flags mapped; and the sync set
    no \\Seen on the server"""
    local, root = opts.args
    state = server_state(local)
    for folder, messages in state.items():
        path = os.path.join(root, folder)
        expect(os.path.isdir(path), f"no Maildir folder {path}")
        files = [os.path.join(path, sub, f) for sub in ("cur", "new") for f in os.listdir(os.path.join(path, sub))]
        expect(len(files) == len(messages), f"{folder}: {len(files)} files, server has {len(messages)} messages",
               "\n".join(files))
        unmatched = dict(messages)
        for f in files:
            with open(f, "rb") as fh:
                got = fh.read()
            got = re.sub(rb"(?m)^X-TUID: [^\n]*\n", b"", got, count=1).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            hit = [u for u, (_, want) in unmatched.items() if want == got]
            expect(hit, f"{f} matches no message of {folder} on the server",
                   (got, [want for _, want in unmatched.values()]))
            flags, _ = unmatched.pop(hit[0])
            info = os.path.basename(f).split(":2,", 1)
            letters = info[1] if len(info) == 2 else ""
            mapped = {MAILDIR_FLAGS[c] for c in letters if c in MAILDIR_FLAGS}
            expect(mapped == flags & set(MAILDIR_FLAGS.values()),
                   f"{f}: Maildir flags {letters!r}, server flags {sorted(flags)} (UID {hit[0]})")
    seen = [u for u, (flags, _) in state["INBOX"].items() if "\\Seen" in flags]
    expect(not seen, "the sync set \\Seen on the server (UIDs)", seen)
    note(", ".join(f"{k}: {len(v)}" for k, v in sorted(state.items())) + " messages compared")


@check("mda")
def mda_files_match_server():
    """the files fetchmail's MDA wrote: one per INBOX message, each (without fetchmail's Received:
    header, LF->CRLF) byte-identical to IMAP BODY.PEEK[]; the dot line has one dot; --keep
    left every message on the server"""
    local, root = opts.args
    server = full_messages(local)
    files = sorted(os.listdir(root))
    expect(len(files) == len(server), f"{len(files)} files, the server has {len(server)} messages", files)
    unmatched = dict(server)
    for name in files:
        with open(os.path.join(root, name), "rb") as fh:
            got = fh.read()
        expect(got.startswith(b"Received: "), f"{name} does not start with fetchmail's Received:", got[:200])
        got = re.sub(rb"\AReceived: [^\n]*\n(?:[ \t][^\n]*\n)*", b"", got).replace(b"\r\n", b"\n")
        got = got.replace(b"\n", b"\r\n")
        hit = [u for u, want in unmatched.items() if want == got]
        expect(hit, f"{name} matches no message on the server", (got, list(unmatched.values())))
        del unmatched[hit[0]]
        if b"\r\n.a line" in got:
            expect(b"\r\n..a line" not in got, f"{name}: dot-stuffing left in")
    p = pop(local)
    try:
        expect(p.stat()[0] == len(server), "messages left on the server (--keep)", p.stat())
    finally:
        close_pop(p)


# ---- main ---------------------------------------------------------------------------------


def main():
    global opts
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", required=True, help="the zmprov batch file that created the accounts")
    ap.add_argument("--cafile", required=True, help="the server's certificate")
    ap.add_argument("--imap", type=int, required=True)
    ap.add_argument("--imaps", type=int, required=True)
    ap.add_argument("--pop3", type=int, required=True)
    ap.add_argument("--pop3s", type=int, required=True)
    ap.add_argument("--hostname", default="mbx1.example.com")
    ap.add_argument("--other-host", default="mbx2.example.com")
    ap.add_argument("group", choices=["imap", "pop3", "refusals", "prepare-sync", "append-one", "maildir", "mda"])
    ap.add_argument("args", nargs="*")
    opts = ap.parse_args()
    socket.setdefaulttimeout(TIMEOUT)
    load_seed(opts.seed)
    if opts.group in ("prepare-sync", "append-one"):
        local = opts.args[0]
        try:
            (prepare_sync if opts.group == "prepare-sync" else append_one)(local)
        except Exception as e:
            print(f"{opts.group} {local}: {e}", file=sys.stderr)
            return 1
        return 0
    for fn in GROUPS[opts.group]:
        run_check(fn)
    return min(failures, 100)


if __name__ == "__main__":
    sys.exit(main())
