//! The login replay against scripted mailbox servers: the exact bytes the proxy sends for
//! LOGIN (LITERAL+ or synchronizing literals, after the ID exchange), for AUTHENTICATE
//! PLAIN with an authorization identity (with and without SASL-IR), for POP3 USER/PASS
//! (after XCLIENT) and AUTH PLAIN, for XOAUTH2 and OAUTHBEARER (the error challenge
//! acknowledged and kept); and what it makes of refusals and odd greetings.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use base64::Engine;
use codec::sasl::OAuthMechanism;
use proxy::backend::{imap_login, pop3_login, BackendError, Credentials, OAuthReplay};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// A mailbox server that writes `greeting`, then for each step reads exactly the bytes
/// expected and answers. Returns whatever it received after the script.
fn script(
    greeting: &str,
    steps: Vec<(Vec<u8>, &'static str)>,
) -> (DuplexStream, tokio::task::JoinHandle<()>) {
    let (proxy_side, mut server) = tokio::io::duplex(64 * 1024);
    let greeting = greeting.to_string();
    let task = tokio::spawn(async move {
        server.write_all(greeting.as_bytes()).await.unwrap();
        for (expect, answer) in steps {
            let mut got = vec![0u8; expect.len()];
            tokio::time::timeout(Duration::from_secs(5), server.read_exact(&mut got))
                .await
                .expect("the proxy sent too little")
                .unwrap();
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&expect),
                "the proxy sent something else"
            );
            server.write_all(answer.as_bytes()).await.unwrap();
        }
        // Nothing more may arrive before the proxy hands the session over.
        let mut extra = [0u8; 1];
        let more = tokio::time::timeout(Duration::from_millis(200), server.read(&mut extra)).await;
        assert!(
            !matches!(more, Ok(Ok(n)) if n > 0),
            "unexpected bytes after the login"
        );
    });
    (proxy_side, task)
}

fn creds<'a>(authzid: Option<&'a [u8]>, user: &'a [u8], pass: &'a [u8]) -> Credentials<'a> {
    Credentials {
        authzid,
        user,
        pass,
        oauth: None,
    }
}

fn oauth(mechanism: OAuthMechanism, message: &[u8]) -> OAuthReplay {
    OAuthReplay {
        mechanism,
        response: b64(message),
    }
}

fn with_oauth(o: &OAuthReplay) -> Credentials<'_> {
    Credentials {
        authzid: None,
        user: b"ann@example.com",
        pass: b"tok",
        oauth: Some(o),
    }
}

const XOAUTH2_MSG: &[u8] = b"user=ann@example.com\x01auth=Bearer tok\x01\x01";
const ERROR_CHALLENGE: &str = "eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIn0=";

#[tokio::test]
async fn imap_xoauth2_is_replayed_with_sasl_ir_and_without() {
    let o = oauth(OAuthMechanism::XOAuth2, XOAUTH2_MSG);
    let response = b64(XOAUTH2_MSG);
    let (mut s, server) = script(
        "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] ready\r\n",
        vec![(
            format!("o1 AUTHENTICATE XOAUTH2 {response}\r\n").into_bytes(),
            "o1 OK Logged in\r\n",
        )],
    );
    let reply = imap_login(&mut s, b"o1", with_oauth(&o), None, T)
        .await
        .unwrap();
    assert!(reply.ok);
    assert_eq!(reply.challenge, None);
    server.await.unwrap();

    let (mut s, server) = script(
        "* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2] ready\r\n",
        vec![
            (b"o2 AUTHENTICATE XOAUTH2\r\n".to_vec(), "+ \r\n"),
            (
                format!("{response}\r\n").into_bytes(),
                "o2 OK Logged in\r\n",
            ),
        ],
    );
    let reply = imap_login(&mut s, b"o2", with_oauth(&o), None, T)
        .await
        .unwrap();
    assert!(reply.ok);
    server.await.unwrap();
}

#[tokio::test]
async fn imap_oauth_error_challenge_is_acknowledged_and_kept_for_the_client() {
    for (mechanism, message, ack) in [
        (OAuthMechanism::XOAuth2, XOAUTH2_MSG, "\r\n"),
        (
            OAuthMechanism::OAuthBearer,
            &b"n,a=ann@example.com,\x01auth=Bearer tok\x01\x01"[..],
            "AQ==\r\n",
        ),
    ] {
        let o = oauth(mechanism, message);
        let (mut s, server) = script(
            "* OK [CAPABILITY IMAP4rev1 SASL-IR] ready\r\n",
            vec![
                (
                    format!("e1 AUTHENTICATE {} {}\r\n", mechanism.name(), b64(message))
                        .into_bytes(),
                    Box::leak(format!("+ {ERROR_CHALLENGE}\r\n").into_boxed_str()),
                ),
                (
                    ack.as_bytes().to_vec(),
                    "e1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n",
                ),
            ],
        );
        let reply = imap_login(&mut s, b"e1", with_oauth(&o), None, T)
            .await
            .unwrap();
        assert!(!reply.ok && !reply.temporary);
        assert_eq!(reply.challenge.as_deref(), Some(ERROR_CHALLENGE.as_bytes()));
        assert_eq!(
            reply.lines,
            b"e1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
        );
        server.await.unwrap();
    }
}

#[tokio::test]
async fn pop3_oauth_in_the_auth_line_or_after_the_continuation_and_its_error_challenge() {
    let o = oauth(OAuthMechanism::XOAuth2, XOAUTH2_MSG);
    let (mut s, server) = script(
        "+OK ready\r\n",
        vec![(
            format!("AUTH XOAUTH2 {}\r\n", b64(XOAUTH2_MSG)).into_bytes(),
            "+OK Logged in.\r\n",
        )],
    );
    let reply = pop3_login(&mut s, with_oauth(&o), None, T).await.unwrap();
    assert!(reply.ok);
    server.await.unwrap();

    // A real token does not fit RFC 5034's 255-octet AUTH line: it follows the `+`.
    let long = [
        &b"user=ann@example.com\x01auth=Bearer "[..],
        &[b'x'; 400],
        b"\x01\x01",
    ]
    .concat();
    let o = oauth(OAuthMechanism::XOAuth2, &long);
    let (mut s, server) = script(
        "+OK ready\r\n",
        vec![
            (b"AUTH XOAUTH2\r\n".to_vec(), "+ \r\n"),
            (
                format!("{}\r\n", b64(&long)).into_bytes(),
                Box::leak(format!("+ {ERROR_CHALLENGE}\r\n").into_boxed_str()),
            ),
            (b"\r\n".to_vec(), "-ERR [AUTH] Authentication failed.\r\n"),
        ],
    );
    let reply = pop3_login(&mut s, with_oauth(&o), None, T).await.unwrap();
    assert!(!reply.ok);
    assert_eq!(reply.challenge.as_deref(), Some(ERROR_CHALLENGE.as_bytes()));
    assert_eq!(reply.lines, b"-ERR [AUTH] Authentication failed.\r\n");
    server.await.unwrap();
}

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
const T: Duration = Duration::from_secs(5);

fn b64(raw: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(raw)
}

#[tokio::test]
async fn imap_login_with_literal_plus_after_id() {
    // LITERAL+ is in the greeting, not in the ID answer: the proxy must remember it.
    let (mut s, server) = script(
        "* OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR ID] ready\r\n",
        vec![
            (
                b"a1.id ID (\"x-originating-ip\" \"192.0.2.7\" \"X-ORIGINATING-IP\" \"192.0.2.7\")\r\n".to_vec(),
                "* ID NIL\r\na1.id OK ID completed\r\n",
            ),
            (
                b"a1 LOGIN {15+}\r\nann@example.com {9+}\r\npa ss\"\\\xc3\xbc\r\n".to_vec(),
                "a1 OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n",
            ),
        ],
    );
    let reply = imap_login(
        &mut s,
        b"a1",
        creds(None, b"ann@example.com", "pa ss\"\\ü".as_bytes()),
        Some(CLIENT),
        T,
    )
    .await
    .unwrap();
    assert!(reply.ok);
    assert_eq!(
        reply.lines,
        b"a1 OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n"
    );
    server.await.unwrap();
}

#[tokio::test]
async fn imap_login_with_synchronizing_literals() {
    let (mut s, server) = script(
        "* OK ready\r\n",
        vec![
            (b"x LOGIN {3}\r\n".to_vec(), "+ go\r\n"),
            (b"ann {2}\r\n".to_vec(), "+ go\r\n"),
            (
                b"pw\r\n".to_vec(),
                "* CAPABILITY IMAP4rev1\r\nx OK done\r\n",
            ),
        ],
    );
    let reply = imap_login(&mut s, b"x", creds(None, b"ann", b"pw"), None, T)
        .await
        .unwrap();
    assert!(reply.ok);
    assert_eq!(reply.lines, b"* CAPABILITY IMAP4rev1\r\nx OK done\r\n");
    server.await.unwrap();
}

#[tokio::test]
async fn imap_authzid_is_replayed_as_authenticate_plain_with_sasl_ir() {
    let response = b64(b"boss@example.com\0ann@example.com\0pw");
    let expect = format!("t7 AUTHENTICATE PLAIN {response}\r\n").into_bytes();
    let (mut s, server) = script(
        "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready\r\n",
        vec![(expect, "t7 OK Logged in\r\n")],
    );
    let reply = imap_login(
        &mut s,
        b"t7",
        creds(Some(b"boss@example.com"), b"ann@example.com", b"pw"),
        None,
        T,
    )
    .await
    .unwrap();
    assert!(reply.ok);
    server.await.unwrap();
}

#[tokio::test]
async fn imap_authzid_without_sasl_ir_waits_for_the_continuation() {
    let response = b64(b"boss\0ann\0pw");
    let (mut s, server) = script(
        "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n",
        vec![
            (b"t8 AUTHENTICATE PLAIN\r\n".to_vec(), "+ \r\n"),
            (
                format!("{response}\r\n").into_bytes(),
                "t8 NO [AUTHORIZATIONFAILED] not a master user\r\n",
            ),
        ],
    );
    let reply = imap_login(&mut s, b"t8", creds(Some(b"boss"), b"ann", b"pw"), None, T)
        .await
        .unwrap();
    assert!(!reply.ok, "the backend's refusal is a refusal");
    assert_eq!(
        reply.lines,
        b"t8 NO [AUTHORIZATIONFAILED] not a master user\r\n"
    );
    server.await.unwrap();
}

#[tokio::test]
async fn imap_refusals_and_odd_greetings() {
    let (mut s, _server) = script(
        "* OK ready\r\n",
        vec![(
            b"a LOGIN {3}\r\n".to_vec(),
            "a NO [AUTHENTICATIONFAILED] Authentication failed.\r\n",
        )],
    );
    let reply = imap_login(&mut s, b"a", creds(None, b"ann", b"pw"), None, T)
        .await
        .unwrap();
    assert!(!reply.ok);
    assert_eq!(
        reply.lines,
        b"a NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
    );

    for greeting in [
        "* PREAUTH logged in already\r\n",
        "* BYE busy\r\n",
        "HTTP/1.1 200 OK\r\n",
    ] {
        let (mut s, _server) = script(greeting, vec![]);
        let err = imap_login(&mut s, b"a", creds(None, b"ann", b"pw"), None, T)
            .await
            .unwrap_err();
        assert!(
            matches!(err, BackendError::Greeting(_)),
            "{greeting:?} gave {err:?}"
        );
    }

    // A backend that says nothing: the login times out instead of hanging.
    let (mut s, _keep) = tokio::io::duplex(1024);
    let err = imap_login(
        &mut s,
        b"a",
        creds(None, b"ann", b"pw"),
        None,
        Duration::from_millis(200),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, BackendError::Protocol(_)), "{err:?}");
}

#[tokio::test]
async fn pop3_user_pass_after_xclient() {
    let (mut s, server) = script(
        "+OK ready\r\n",
        vec![
            (b"XCLIENT ADDR=192.0.2.7\r\n".to_vec(), "+OK\r\n"),
            (b"USER ann@example.com\r\n".to_vec(), "+OK\r\n"),
            (b"PASS pa ss\r\n".to_vec(), "+OK Logged in.\r\n"),
        ],
    );
    let reply = pop3_login(
        &mut s,
        creds(None, b"ann@example.com", b"pa ss"),
        Some(CLIENT),
        T,
    )
    .await
    .unwrap();
    assert!(reply.ok);
    assert_eq!(reply.lines, b"+OK Logged in.\r\n");
    server.await.unwrap();
}

#[tokio::test]
async fn pop3_authzid_is_replayed_as_auth_plain() {
    let response = b64(b"boss\0ann\0pw");
    let (mut s, server) = script(
        "+OK ready\r\n",
        vec![(
            format!("AUTH PLAIN {response}\r\n").into_bytes(),
            "-ERR [AUTH] Authentication failed.\r\n",
        )],
    );
    let reply = pop3_login(&mut s, creds(Some(b"boss"), b"ann", b"pw"), None, T)
        .await
        .unwrap();
    assert!(!reply.ok);
    assert_eq!(reply.lines, b"-ERR [AUTH] Authentication failed.\r\n");
    server.await.unwrap();

    // Line breaks can never reach a POP3 command line.
    let (mut s, _server) = script("+OK ready\r\n", vec![]);
    assert!(
        pop3_login(&mut s, creds(None, b"ann\r\nDELE 1", b"pw"), None, T)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn temporary_refusals_and_a_bye_during_login() {
    let (mut s, _server) = script(
        "* OK [CAPABILITY IMAP4rev1 LITERAL+] ready\r\n",
        vec![(
            b"a LOGIN {3+}\r\nann {2+}\r\npw\r\n".to_vec(),
            "a NO [UNAVAILABLE] Try again later\r\n",
        )],
    );
    let reply = imap_login(&mut s, b"a", creds(None, b"ann", b"pw"), None, T)
        .await
        .unwrap();
    assert!(!reply.ok && reply.temporary);
    let (mut s, _server) = script(
        "* OK [CAPABILITY IMAP4rev1 LITERAL+] ready\r\n",
        vec![(
            b"a LOGIN {3+}\r\nann {2+}\r\npw\r\n".to_vec(),
            "a NO [AUTHENTICATIONFAILED] Authentication failed.\r\n",
        )],
    );
    let reply = imap_login(&mut s, b"a", creds(None, b"ann", b"pw"), None, T)
        .await
        .unwrap();
    assert!(!reply.ok && !reply.temporary);
    // A BYE instead of an answer is no refusal to pass on: the login failed.
    let (mut s, _server) = script(
        "* OK [CAPABILITY IMAP4rev1 LITERAL+] ready\r\n",
        vec![(
            b"a LOGIN {3+}\r\nann {2+}\r\npw\r\n".to_vec(),
            "* BYE Server shutting down\r\n",
        )],
    );
    let err = imap_login(&mut s, b"a", creds(None, b"ann", b"pw"), None, T)
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::Protocol(_)), "{err:?}");
    let (mut s, _server) = script(
        "+OK ready\r\n",
        vec![
            (b"USER ann\r\n".to_vec(), "+OK\r\n"),
            (
                b"PASS pw\r\n".to_vec(),
                "-ERR [SYS/TEMP] Try again later\r\n",
            ),
        ],
    );
    let reply = pop3_login(&mut s, creds(None, b"ann", b"pw"), None, T)
        .await
        .unwrap();
    assert!(!reply.ok && reply.temporary);
    assert_eq!(reply.lines, b"-ERR [SYS/TEMP] Try again later\r\n");
}

/// An IMAP login of `ann`/`pw` with LITERAL+, answered `answer`.
async fn imap_answered(answer: &'static str) -> proxy::backend::LoginReply {
    let (mut s, server) = script(
        "* OK [CAPABILITY IMAP4rev1 LITERAL+] ready\r\n",
        vec![(b"a LOGIN {3+}\r\nann {2+}\r\npw\r\n".to_vec(), answer)],
    );
    let reply = imap_login(&mut s, b"a", creds(None, b"ann", b"pw"), None, T)
        .await
        .unwrap();
    server.await.unwrap();
    reply
}

#[tokio::test]
async fn imap_temporary_only_from_the_tagged_answers_code() {
    // The code of an untagged response before the answer is not the answer's.
    let reply = imap_answered(
        "* NO [UNAVAILABLE] replica lagging\r\na NO [AUTHENTICATIONFAILED] Authentication failed.\r\n",
    )
    .await;
    assert!(!reply.ok && !reply.temporary);
    assert_eq!(
        reply.lines,
        b"* NO [UNAVAILABLE] replica lagging\r\na NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
    );
    // The word in the text is no code.
    let reply = imap_answered("a NO Authentication failed [UNAVAILABLE]\r\n").await;
    assert!(!reply.ok && !reply.temporary);
    // Codes are case-insensitive, and a success is never temporary.
    let reply = imap_answered("a no [unavailable] later\r\n").await;
    assert!(!reply.ok && reply.temporary);
    let reply = imap_answered("a OK [UNAVAILABLE] odd but fine\r\n").await;
    assert!(reply.ok && !reply.temporary);
}

#[tokio::test]
async fn imap_refused_go_ahead_is_temporary_by_its_code() {
    let (mut s, server) = script(
        "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n",
        vec![(
            b"t9 AUTHENTICATE PLAIN\r\n".to_vec(),
            "t9 NO [UNAVAILABLE] Try again later\r\n",
        )],
    );
    let reply = imap_login(&mut s, b"t9", creds(Some(b"boss"), b"ann", b"pw"), None, T)
        .await
        .unwrap();
    assert!(!reply.ok && reply.temporary);
    assert_eq!(reply.lines, b"t9 NO [UNAVAILABLE] Try again later\r\n");
    server.await.unwrap();
}

#[tokio::test]
async fn imap_untagged_data_while_waiting_for_the_go_ahead() {
    // Untagged responses may come at any time, a literal included; they are passed on.
    let (mut s, server) = script(
        "* OK ready\r\n",
        vec![
            (
                b"x LOGIN {3}\r\n".to_vec(),
                "* OK [ALERT] {5} is no literal here\r\n* 1 EXISTS\r\n+ go\r\n",
            ),
            (b"ann {2}\r\n".to_vec(), "* X {4}\r\nab\r\n\r\n+ go\r\n"),
            (b"pw\r\n".to_vec(), "x OK done\r\n"),
        ],
    );
    let reply = imap_login(&mut s, b"x", creds(None, b"ann", b"pw"), None, T)
        .await
        .unwrap();
    assert!(reply.ok && !reply.temporary);
    assert_eq!(
        reply.lines,
        b"* OK [ALERT] {5} is no literal here\r\n* 1 EXISTS\r\n* X {4}\r\nab\r\n\r\nx OK done\r\n"
    );
    server.await.unwrap();
}

#[tokio::test]
async fn imap_answers_over_the_bounds_fail_the_login() {
    // A literal announced far over the bound fails at once, without waiting for it.
    let (mut s, _server) = script(
        "* OK [CAPABILITY IMAP4rev1 LITERAL+] ready\r\n",
        vec![(
            b"a LOGIN {3+}\r\nann {2+}\r\npw\r\n".to_vec(),
            "* 1 FETCH (BODY[] {99999999999})\r\n",
        )],
    );
    let err = imap_login(&mut s, b"a", creds(None, b"ann", b"pw"), None, T)
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::Protocol(_)), "{err:?}");
    // A line that never ends fails at the line bound, well before the timeout.
    let (mut s, mut server) = tokio::io::duplex(1 << 20);
    let writer = tokio::spawn(async move {
        server
            .write_all(b"* OK [CAPABILITY IMAP4rev1 LITERAL+] ready\r\n")
            .await
            .unwrap();
        let mut sent = [0u8; 28];
        server.read_exact(&mut sent).await.unwrap();
        let _ = server.write_all(&vec![b'x'; 200 * 1024]).await;
        server
    });
    let err = imap_login(&mut s, b"a", creds(None, b"ann", b"pw"), None, T)
        .await
        .unwrap_err();
    assert!(
        matches!(err, BackendError::Protocol(ref m) if m.contains("too long")),
        "{err:?}"
    );
    drop(writer);
}

/// A POP3 login of `ann`/`pw` whose PASS is answered `answer`.
async fn pop3_answered(answer: &'static str) -> proxy::backend::LoginReply {
    let (mut s, server) = script(
        "+OK ready\r\n",
        vec![
            (b"USER ann\r\n".to_vec(), "+OK\r\n"),
            (b"PASS pw\r\n".to_vec(), answer),
        ],
    );
    let reply = pop3_login(&mut s, creds(None, b"ann", b"pw"), None, T)
        .await
        .unwrap();
    server.await.unwrap();
    reply
}

#[tokio::test]
async fn pop3_temporary_only_from_the_sys_temp_code() {
    for (answer, temporary) in [
        ("-ERR [SYS/TEMP] Try again later\r\n", true),
        ("-ERR [sys/temp] later\r\n", true),
        ("-ERR [AUTH] Authentication failed.\r\n", false),
        ("-ERR [SYS/PERM] Account disabled\r\n", false),
        ("-ERR [IN-USE] Mailbox locked\r\n", false),
        ("-ERR Try again later [SYS/TEMP]\r\n", false),
        ("-ERR\r\n", false),
    ] {
        let reply = pop3_answered(answer).await;
        assert!(!reply.ok, "{answer:?}");
        assert_eq!(reply.temporary, temporary, "{answer:?}");
        assert_eq!(reply.lines, answer.as_bytes());
    }
    let reply = pop3_answered("+OK [SYS/TEMP] fine after all\r\n").await;
    assert!(reply.ok && !reply.temporary);

    // A refused USER is the answer: PASS is never sent.
    let (mut s, server) = script(
        "+OK ready\r\n",
        vec![(
            b"USER ann\r\n".to_vec(),
            "-ERR [SYS/TEMP] Try again later\r\n",
        )],
    );
    let reply = pop3_login(&mut s, creds(None, b"ann", b"pw"), None, T)
        .await
        .unwrap();
    assert!(!reply.ok && reply.temporary);
    server.await.unwrap();
}

#[tokio::test]
async fn pop3_auth_continuation_is_cancelled_and_odd_greetings_refused() {
    let response = b64(b"boss\0ann\0pw");
    let (mut s, server) = script(
        "+OK ready\r\n",
        vec![
            (format!("AUTH PLAIN {response}\r\n").into_bytes(), "+ \r\n"),
            (b"*\r\n".to_vec(), "-ERR [AUTH] Cancelled\r\n"),
        ],
    );
    let reply = pop3_login(&mut s, creds(Some(b"boss"), b"ann", b"pw"), None, T)
        .await
        .unwrap();
    assert!(!reply.ok && !reply.temporary);
    assert_eq!(reply.lines, b"-ERR [AUTH] Cancelled\r\n");
    server.await.unwrap();

    for greeting in [
        "-ERR [SYS/TEMP] busy\r\n",
        "* OK IMAP4rev1 ready\r\n",
        "HTTP/1.1 200 OK\r\n",
    ] {
        let (mut s, _server) = script(greeting, vec![]);
        let err = pop3_login(&mut s, creds(None, b"ann", b"pw"), None, T)
            .await
            .unwrap_err();
        assert!(
            matches!(err, BackendError::Greeting(_)),
            "{greeting:?} gave {err:?}"
        );
    }

    // A NUL can never reach a POP3 command line either.
    let (mut s, _server) = script("+OK ready\r\n", vec![]);
    let err = pop3_login(&mut s, creds(None, b"ann", b"p\0w"), None, T)
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::Protocol(_)), "{err:?}");
}
