#!/usr/bin/env python3
"""OAuth 2.0 logins end to end (driven by e2e/oauth.sh).

Two subcommands:

  token-server PORT TOKENS LOG
      A small RFC 7662 introspection endpoint on 127.0.0.1:PORT. TOKENS is a JSON file
      {token: username or null}; a token mapped to a name is active for it, one mapped to
      null is inactive (revoked), any other is unknown (inactive). Every POST to
      /<caller>/introspect appends "<caller> <label>" to LOG, where the label is the
      token's position in TOKENS (never the token), so the shell can tell who asked about
      which token.

  check --proxy-a IMAP,POP3 --proxy-b IMAP,POP3 --tokens FILE --labels FILE --log LOG
      The client side, with Python's imaplib, poplib and raw sockets. Prints "ok - ..." /
      "not ok - ..." per check and exits with the number of failures.
"""

import base64
import http.server
import imaplib
import json
import poplib
import socket
import sys
import time
import urllib.parse

T = 10  # seconds any one exchange may take


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def xoauth2(user: str, token: str) -> bytes:
    return f"user={user}\x01auth=Bearer {token}\x01\x01".encode()


def oauthbearer(user: str, token: str) -> bytes:
    return f"n,a={user},\x01host=localhost\x01port=143\x01auth=Bearer {token}\x01\x01".encode()


# ---- the token endpoint ----------------------------------------------------------------


def token_server(port: int, tokens_file: str, log: str) -> None:
    with open(tokens_file) as f:
        tokens = json.load(f)
    labels = {t: i for i, t in enumerate(tokens)}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            caller = self.path.strip("/").split("/")[0]
            length = int(self.headers.get("Content-Length", "0"))
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            token = form.get("token", [""])[0]
            with open(log, "a") as out:
                out.write(f"{caller} {labels.get(token, 'unknown')}\n")
            user = tokens.get(token)
            if user:
                answer = {"active": True, "username": user, "exp": int(time.time()) + 3600}
            else:
                answer = {"active": False}
            body = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


# ---- clients -------------------------------------------------------------------------------


class Line:
    """A raw line client (for what imaplib and poplib do not do: SASL-IR, challenges)."""

    def __init__(self, port: int):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=T)
        self.f = self.s.makefile("rb")

    def send(self, text: str) -> None:
        self.s.sendall(text.encode())

    def line(self) -> str:
        return self.f.readline().decode(errors="replace")

    def close(self) -> None:
        self.s.close()


def imap_ir(port: int, mechanism: str, message: bytes):
    """AUTHENTICATE with SASL-IR; on a challenge, answer it empty. Returns (challenge,
    tagged answer, client)."""
    c = Line(port)
    c.line()
    c.send(f"a AUTHENTICATE {mechanism} {b64(message)}\r\n")
    first = c.line()
    challenge = None
    if first.startswith("+ "):
        challenge = first[2:].strip()
        c.send("\r\n" if mechanism == "XOAUTH2" else "AQ==\r\n")
        first = c.line()
    return challenge, first, c


def challenge_json(challenge):
    try:
        return json.loads(base64.b64decode(challenge))
    except Exception:  # noqa: BLE001 (reported as the check's evidence)
        return None


class Checks:
    def __init__(self):
        self.failures = 0

    def check(self, desc: str, cond: bool, evidence: str = "") -> None:
        if cond:
            print(f"ok - {desc}")
        else:
            self.failures += 1
            print(f"not ok - {desc}")
            if evidence:
                print("  " + evidence.replace("\n", "\n  "))


def check(args) -> int:
    with open(args.tokens) as f:
        tokens = json.load(f)
    with open(args.labels) as f:
        tok = json.load(f)  # name -> token
    a_imap, a_pop3 = (int(p) for p in args.proxy_a.split(","))
    b_imap, b_pop3 = (int(p) for p in args.proxy_b.split(","))
    k = Checks()

    def asked(caller: str, name: str) -> int:
        label = str(list(tokens).index(tok[name]))
        with open(args.log) as f:
            return sum(1 for line in f if line.split() == [caller, label])

    # -- Proxy A: route-lookup only routes; Dovecot and mailbox-stub check the token.
    challenge, answer, c = imap_ir(a_imap, "XOAUTH2", xoauth2("ann@example.com", tok["ann"]))
    k.check("A: IMAP XOAUTH2 with SASL-IR logs ann in at Dovecot",
            challenge is None and answer.startswith("a OK"), f"{challenge} {answer}")
    c.send("b SELECT INBOX\r\n")
    lines = []
    while True:
        line = c.line()
        lines.append(line)
        if not line or line.startswith("b "):
            break
    k.check("A: ann's INBOX at Dovecot holds her message",
            any(" 1 EXISTS" in x for x in lines) and lines[-1].startswith("b OK"), "".join(lines))
    c.close()

    try:
        m = imaplib.IMAP4("127.0.0.1", a_imap, timeout=T)
        typ, _ = m.authenticate("XOAUTH2", lambda _: xoauth2("ann@example.com", tok["ann"]))
        typ2, data = m.select("INBOX")
        k.check("A: imaplib AUTHENTICATE XOAUTH2 (no SASL-IR) and SELECT", typ == "OK" and typ2 == "OK",
                f"{typ} {typ2} {data}")
        m.logout()
    except Exception as e:  # noqa: BLE001
        k.check("A: imaplib AUTHENTICATE XOAUTH2 (no SASL-IR) and SELECT", False, repr(e))

    try:
        m = imaplib.IMAP4("127.0.0.1", a_imap, timeout=T)
        typ, _ = m.authenticate("OAUTHBEARER", lambda _: oauthbearer("bob@example.com", tok["bob"]))
        k.check("A: imaplib AUTHENTICATE OAUTHBEARER logs bob in at Dovecot", typ == "OK", typ)
        m.logout()
    except Exception as e:  # noqa: BLE001
        k.check("A: imaplib AUTHENTICATE OAUTHBEARER logs bob in at Dovecot", False, repr(e))

    c = Line(a_pop3)
    c.line()
    c.send(f"AUTH XOAUTH2 {b64(xoauth2('ann@example.com', tok['ann']))}\r\n")
    auth = c.line()
    c.send("STAT\r\n")
    stat = c.line()
    k.check("A: POP3 AUTH XOAUTH2 and STAT at Dovecot", auth.startswith("+OK") and stat.startswith("+OK 1 "),
            auth + stat)
    c.close()

    try:
        p = poplib.POP3("127.0.0.1", a_pop3, timeout=T)
        # poplib has no AUTH helper: its command layer, as a client library would use it.
        cont = p._shortcmd("AUTH XOAUTH2")  # noqa: SLF001
        p._putcmd(b64(xoauth2("ann@example.com", tok["ann"])))  # noqa: SLF001
        resp = p._getresp()  # noqa: SLF001
        count, _size = p.stat()
        k.check("A: poplib AUTH XOAUTH2 after the continuation, then STAT",
                cont.startswith(b"+") and resp.startswith(b"+OK") and count == 1, f"{cont!r} {resp!r} {count}")
        p.quit()
    except Exception as e:  # noqa: BLE001
        k.check("A: poplib AUTH XOAUTH2 after the continuation, then STAT", False, repr(e))

    before = asked("dovecot", "revoked")
    challenge, answer, c = imap_ir(a_imap, "XOAUTH2", xoauth2("ann@example.com", tok["revoked"]))
    k.check("A: a revoked token gets Dovecot's error challenge, then NO",
            challenge is not None and challenge_json(challenge) is not None and answer.startswith("a NO"),
            f"{challenge} {answer}")
    k.check("A: ... which Dovecot itself judged (it asked the endpoint)",
            asked("dovecot", "revoked") > before, f"{before}")
    c.close()

    challenge, answer, c = imap_ir(a_imap, "OAUTHBEARER", oauthbearer("ann@example.com", tok["bob"]))
    k.check("A: bob's token for ann: refused by Dovecot with a challenge and NO",
            challenge is not None and answer.startswith("a NO"), f"{challenge} {answer}")
    c.close()

    c = Line(a_pop3)
    c.line()
    c.send(f"AUTH XOAUTH2 {b64(xoauth2('ann@example.com', tok['revoked']))}\r\n")
    first = c.line()
    ok = first.startswith("+ ")
    if ok:
        c.send("\r\n")
        first += c.line()
    k.check("A: POP3: a revoked token gets the challenge, then -ERR",
            ok and first.splitlines()[-1].startswith("-ERR"), first)
    c.close()

    # mailbox-stub behind the same proxy, with a kilobytes-long token.
    challenge, answer, c = imap_ir(a_imap, "XOAUTH2", xoauth2("carol@example.com", tok["carol"]))
    k.check("A: carol logs in at mailbox-stub with XOAUTH2", answer.startswith("a OK"), f"{challenge} {answer}")
    c.close()
    challenge, answer, c = imap_ir(a_imap, "OAUTHBEARER", oauthbearer("carol@example.com", tok["carol_long"]))
    k.check(f"A: carol with a {len(tok['carol_long'])}-byte token (OAUTHBEARER) at mailbox-stub",
            answer.startswith("a OK"), f"{challenge} {answer}")
    c.close()
    c = Line(a_pop3)
    c.line()
    c.send("AUTH XOAUTH2\r\n")
    cont = c.line()
    c.send(b64(xoauth2("carol@example.com", tok["carol_long"])) + "\r\n")
    auth = c.line()
    k.check("A: POP3 AUTH XOAUTH2 with the long token after the `+` at mailbox-stub",
            cont.startswith("+") and auth.startswith("+OK"), cont + auth)
    c.close()
    challenge, answer, c = imap_ir(a_imap, "XOAUTH2", xoauth2("carol@example.com", tok["ann"]))
    k.check("A: ann's token for carol: mailbox-stub's challenge, then NO",
            challenge is not None and challenge_json(challenge) is not None and answer.startswith("a NO"),
            f"{challenge} {answer}")
    c.close()

    # -- Proxy B: route-lookup introspects before any mailbox server is asked.
    dovecot_before = asked("dovecot", "bob")
    challenge, answer, c = imap_ir(b_imap, "XOAUTH2", xoauth2("ann@example.com", tok["bob"]))
    js = challenge_json(challenge) if challenge else None
    k.check("B: bob's token for ann is refused by route-lookup: our challenge, then NO",
            js is not None and js.get("status") == "invalid_token" and answer.startswith("a NO [AUTHENTICATIONFAILED]"),
            f"{challenge} {answer}")
    k.check("B: ... before any mailbox server was asked (Dovecot never saw the token)",
            asked("dovecot", "bob") == dovecot_before and asked("route-lookup", "bob") >= 1,
            f"dovecot {dovecot_before} -> {asked('dovecot', 'bob')}, route-lookup {asked('route-lookup', 'bob')}")
    c.close()

    challenge, answer, c = imap_ir(b_imap, "XOAUTH2", xoauth2("ann@example.com", tok["ann"]))
    k.check("B: ann's own token is let through and Dovecot logs her in", answer.startswith("a OK"),
            f"{challenge} {answer}")
    c.close()
    challenge, answer, c = imap_ir(b_imap, "OAUTHBEARER", oauthbearer("annie@example.com", tok["ann"]))
    k.check("B: her alias with her token: routed, replayed as her account, logged in", answer.startswith("a OK"),
            f"{challenge} {answer}")
    c.close()
    c = Line(b_pop3)
    c.line()
    c.send(f"AUTH XOAUTH2 {b64(xoauth2('ann@example.com', tok['revoked']))}\r\n")
    first = c.line()
    ok = first.startswith("+ ")
    if ok:
        c.send("\r\n")
        first += c.line()
    k.check("B: POP3: a revoked token refused by route-lookup with the challenge, then -ERR [AUTH]",
            ok and first.splitlines()[-1].startswith("-ERR [AUTH]"), first)
    c.close()
    return k.failures


def main() -> int:
    if len(sys.argv) >= 2 and sys.argv[1] == "token-server":
        token_server(int(sys.argv[2]), sys.argv[3], sys.argv[4])
        return 0
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["check"])
    ap.add_argument("--proxy-a", required=True)
    ap.add_argument("--proxy-b", required=True)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--labels", required=True)
    ap.add_argument("--log", required=True)
    return check(ap.parse_args())


if __name__ == "__main__":
    sys.exit(main())
