//! nginx's `auth_http` protocol, the parts both ends share: the value escaping nginx applies
//! to `Auth-User`/`Auth-Pass` (`NGX_ESCAPE_MAIL_AUTH`), its exact inverse, and the header
//! names and generic status texts of the route-lookup service.
//!
//! The escaping is narrow on purpose: only control bytes, space and `%` become `%XX`;
//! everything else (`+`, quotes, UTF-8) travels raw. Decoding is therefore `%XX` only, never
//! form decoding, which would turn a `+` in a password into a space.

use thiserror::Error;

/// Request header: the authentication method (`plain`, `apop`, `cram-md5`, `external`).
pub const AUTH_METHOD: &str = "Auth-Method";
/// Request header: the login, escaped. Response header: the account name to log in as.
pub const AUTH_USER: &str = "Auth-User";
/// Request header: the password, escaped.
pub const AUTH_PASS: &str = "Auth-Pass";
/// Request header: `imap`, `pop3`, `imapssl` or `pop3ssl`.
pub const AUTH_PROTOCOL: &str = "Auth-Protocol";
/// Request header: 1 for the first attempt of a session, one more for each retry.
pub const AUTH_LOGIN_ATTEMPT: &str = "Auth-Login-Attempt";
/// Request header: the mail client's address.
pub const CLIENT_IP: &str = "Client-IP";
/// Request header: the proxy's own interface address (picks a domain by virtual IP).
pub const X_PROXY_IP: &str = "X-Proxy-IP";
/// Request header: the shared secret a stock nginx sends with `auth_http_header`.
pub const X_LOOKUP_SECRET: &str = "X-Lookup-Secret";
/// Response header: `OK`, or the failure text shown to the client.
pub const AUTH_STATUS: &str = "Auth-Status";
/// Response header: the mailbox server, always an IP literal.
pub const AUTH_SERVER: &str = "Auth-Server";
/// Response header (ours; stock nginx ignores it): the mailbox server's host name, which
/// its certificate names, for a proxy that verifies upstream TLS by name as Dovecot does
/// (`Auth-Server` stays an IP literal, which nginx needs).
pub const AUTH_SERVER_NAME: &str = "Auth-Server-Name";
/// Response header: the mailbox server's port for the protocol.
pub const AUTH_PORT: &str = "Auth-Port";
/// Response header: seconds to wait before answering the client (and allowing a retry).
pub const AUTH_WAIT: &str = "Auth-Wait";
/// Response header (Zimbra): whether the login's alias may be cached (`TRUE`/`FALSE`).
pub const AUTH_CACHE_ALIAS: &str = "Auth-Cache-Alias";
/// Why route-lookup refused (`unknown_user`, …), for the proxy's failed-login line; never
/// shown to a client (stock nginx ignores it).
pub const X_LOOKUP_REASON: &str = "X-Lookup-Reason";

/// `Auth-Status` of a successful lookup.
pub const STATUS_OK: &str = "OK";
/// `Auth-Status` of every permanent failure: unknown user, wrong password, locked or
/// closed account, bad request. One text, so that it tells a prober nothing.
pub const STATUS_FAILED: &str = "Authentication failed";
/// `Auth-Status` of a failure that should go away by itself: account in maintenance,
/// database unreachable, mail host unresolvable.
pub const STATUS_TEMPORARY: &str = "Temporary authentication failure";

/// Whether nginx escapes this byte in `Auth-User`/`Auth-Pass` values.
fn needs_escape(byte: u8) -> bool {
    byte <= 0x20 || byte == b'%'
}

/// Escapes a value as our proxy sends it: what nginx escapes, plus DEL (0x7f), which HTTP
/// does not allow raw in a header value (route-lookup decodes `%7F` like any escape).
pub fn escape_for_http(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    for chunk in value.split_inclusive(|&b| b == 0x7f) {
        match chunk.split_last() {
            Some((0x7f, head)) => {
                out.extend_from_slice(&escape(head));
                out.extend_from_slice(b"%7F");
            }
            _ => out.extend_from_slice(&escape(chunk)),
        }
    }
    out
}

/// Escapes a value as nginx does: control bytes, space and `%` become `%XX` (uppercase hex).
pub fn escape(value: &[u8]) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(value.len());
    for &b in value {
        if needs_escape(b) {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
        } else {
            out.push(b);
        }
    }
    out
}

/// A header value that is not a valid escaped value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UnescapeError {
    /// A `%` not followed by two hex digits.
    #[error("bad %-escape at byte {0}")]
    BadEscape(usize),
    /// A raw control byte, which nginx would have escaped.
    #[error("raw control byte at byte {0}")]
    RawControl(usize),
}

/// Reverses [`escape`]: `%XX` (either case) becomes the byte; `+` stays `+`.
pub fn unescape(value: &[u8]) -> Result<Vec<u8>, UnescapeError> {
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        match value[i] {
            b'%' => {
                let hi = value.get(i + 1).and_then(|&c| hex_digit(c));
                let lo = value.get(i + 2).and_then(|&c| hex_digit(c));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => return Err(UnescapeError::BadEscape(i)),
                }
                i += 3;
            }
            b if b < 0x20 => return Err(UnescapeError::RawControl(i)),
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_only_controls_space_and_percent() {
        assert_eq!(escape(b"a b%c+d\r\n"), b"a%20b%25c+d%0D%0A");
        assert_eq!(escape("pässwörd\"\\".as_bytes()), "pässwörd\"\\".as_bytes());
        assert_eq!(escape(b"\x00\x1f\x7f"), b"%00%1F\x7f");
    }

    #[test]
    fn unescape_is_percent_only() {
        assert_eq!(unescape(b"a%20b+c%2b%2B").unwrap(), b"a b+c++");
        assert_eq!(unescape(b"%25%0d%0A").unwrap(), b"%\r\n");
        assert_eq!(unescape(b"50%"), Err(UnescapeError::BadEscape(2)));
        assert_eq!(unescape(b"%g0"), Err(UnescapeError::BadEscape(0)));
        assert_eq!(unescape(b"a\tb"), Err(UnescapeError::RawControl(1)));
    }

    #[test]
    fn http_escaping_also_covers_del() {
        assert_eq!(escape_for_http(b"a\x7fb c\x7f"), b"a%7Fb%20c%7F");
        let all: Vec<u8> = (0..=255).collect();
        let e = escape_for_http(&all);
        assert!(!e.contains(&0x7f));
        assert_eq!(unescape(&e).unwrap(), all);
    }

    #[test]
    fn round_trips_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(unescape(&escape(&all)).unwrap(), all);
    }
}

/// route-lookup's (or any auth_http server's) answer, from its response header fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Where to go.
    Route {
        /// The mailbox server (always an IP literal in this protocol).
        server: std::net::IpAddr,
        /// Its host name (`Auth-Server-Name`), when the server gave a usable one.
        server_name: Option<String>,
        /// Its port.
        port: u16,
        /// The account name to log in as (empty: the login as given).
        user: String,
        /// The password to log in with upstream (`Auth-Pass`, taken as it is, as nginx
        /// does), when the server gave one.
        pass: Option<Vec<u8>>,
        /// Zimbra's `Auth-Cache-Alias: TRUE`.
        cache_alias: bool,
    },
    /// A refusal with its text and the wait before answering the client.
    Failed {
        /// `Auth-Status` text.
        status: String,
        /// `Auth-Wait` seconds, when given.
        wait: Option<u32>,
        /// `X-Lookup-Reason`, when given as one lowercase word.
        reason: Option<String>,
    },
}

/// An answer nginx would call invalid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AnswerError {
    /// No `Auth-Status` at all: never taken as success.
    #[error("no Auth-Status")]
    NoStatus,
    /// `OK` without a usable `Auth-Server`.
    #[error("Auth-Server {0:?} is not an IP literal")]
    Server(String),
    /// `OK` without a usable `Auth-Port`.
    #[error("no valid Auth-Port")]
    Port,
}

/// The answer in `fields` (name, value), names compared without case, as nginx reads it:
/// any `Auth-Status` other than `OK` makes a failure that a later `OK` does not clear (the
/// last failure text is the one shown); for the other fields the last of a name wins. Unlike
/// nginx, an answer without any `Auth-Status` is invalid rather than a success.
pub fn answer<'a>(
    fields: impl IntoIterator<Item = (&'a str, &'a [u8])> + Clone,
) -> Result<Answer, AnswerError> {
    let all = |n: &'static str| {
        fields
            .clone()
            .into_iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v)
    };
    let get = |n: &'static str| all(n).last();
    let text = |v: &[u8]| String::from_utf8_lossy(v).trim().to_string();
    let mut statuses = all(AUTH_STATUS).map(text).peekable();
    statuses.peek().ok_or(AnswerError::NoStatus)?;
    if let Some(status) = statuses.filter(|s| s != STATUS_OK).last() {
        return Ok(Answer::Failed {
            status,
            wait: get(AUTH_WAIT).and_then(|w| text(w).parse().ok()),
            reason: get(X_LOOKUP_REASON).map(text).filter(|r| {
                (1..=32).contains(&r.len())
                    && r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            }),
        });
    }
    let server = get(AUTH_SERVER).map(text).unwrap_or_default();
    let server = server.parse().map_err(|_| AnswerError::Server(server))?;
    let port = get(AUTH_PORT)
        .and_then(|p| text(p).parse::<u16>().ok())
        .filter(|&p| p > 0)
        .ok_or(AnswerError::Port)?;
    Ok(Answer::Route {
        server,
        server_name: get(AUTH_SERVER_NAME).map(text).filter(|n| host_name(n)),
        port,
        user: get(AUTH_USER).map(text).unwrap_or_default(),
        pass: get(AUTH_PASS).map(<[u8]>::to_vec),
        cache_alias: get(AUTH_CACHE_ALIAS).is_some_and(|v| text(v) == "TRUE"),
    })
}

/// Whether `name` can be a DNS host name: 1 to 253 bytes of letters, digits, `-`, `_` and
/// dots, no empty label. Anything else in `Auth-Server-Name` is ignored, as if absent.
fn host_name(name: &str) -> bool {
    (1..=253).contains(&name.len())
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod answer_tests {
    use super::*;

    fn route(server: &str, port: u16, user: &str, pass: Option<&str>, alias: bool) -> Answer {
        Answer::Route {
            server: server.parse().unwrap(),
            server_name: None,
            port,
            user: user.into(),
            pass: pass.map(|p| p.as_bytes().to_vec()),
            cache_alias: alias,
        }
    }

    fn failed(status: &str, wait: Option<u32>) -> Answer {
        Answer::Failed {
            status: status.into(),
            wait,
            reason: None,
        }
    }

    #[test]
    fn answers() {
        type Row = (
            &'static [(&'static str, &'static str)],
            Result<Answer, AnswerError>,
        );
        let table: Vec<Row> = vec![
            (
                &[
                    ("Auth-Status", "Authentication failed"),
                    ("X-Lookup-Reason", "unknown_user"),
                ],
                Ok(Answer::Failed {
                    status: "Authentication failed".into(),
                    wait: None,
                    reason: Some("unknown_user".into()),
                }),
            ),
            (
                // Not one lowercase word: ignored.
                &[
                    ("Auth-Status", "Authentication failed"),
                    ("X-Lookup-Reason", "Unknown User\r\nX: y"),
                ],
                Ok(failed("Authentication failed", None)),
            ),
            (
                &[
                    ("auth-status", "OK"),
                    ("Auth-Server", "10.0.0.5"),
                    ("auth-port", "7143"),
                    ("auth-user", "a@b"),
                    ("auth-pass", "s%20cret"),
                    ("Auth-Cache-Alias", "TRUE"),
                ],
                // Auth-Pass verbatim, as nginx takes it.
                Ok(route("10.0.0.5", 7143, "a@b", Some("s%20cret"), true)),
            ),
            (
                &[
                    ("Auth-Status", " OK "),
                    ("Auth-Server", "::1"),
                    ("Auth-Port", "7993"),
                    ("Auth-Cache-Alias", "FALSE"),
                    ("Date", "Thu, 01 Jan 1970 00:00:00 GMT"),
                ],
                Ok(route("::1", 7993, "", None, false)),
            ),
            (
                &[
                    ("Auth-Status", "OK"),
                    ("Auth-Server", "10.0.0.1"),
                    ("Auth-Server", "10.0.0.2"),
                    ("Auth-Port", "1"),
                    ("Auth-Port", "2"),
                ],
                Ok(route("10.0.0.2", 2, "", None, false)),
            ),
            (
                &[
                    ("Auth-Status", "Authentication failed"),
                    ("Auth-Wait", "10"),
                ],
                Ok(failed(STATUS_FAILED, Some(10))),
            ),
            (
                &[("Auth-Status", "Authentication failed"), ("Auth-Wait", "x")],
                Ok(failed(STATUS_FAILED, None)),
            ),
            (
                &[
                    ("Auth-Status", "OK"),
                    ("Auth-Status", "Temporary authentication failure"),
                ],
                Ok(failed(STATUS_TEMPORARY, None)),
            ),
            (
                // A failure is never cleared by a later OK (nginx keeps its error text).
                &[
                    ("Auth-Status", "Authentication failed"),
                    ("Auth-Server", "10.0.0.5"),
                    ("Auth-Port", "7143"),
                    ("Auth-Status", "OK"),
                ],
                Ok(failed(STATUS_FAILED, None)),
            ),
            (
                &[
                    ("Auth-Status", "Authentication failed"),
                    ("Auth-Status", "Temporary authentication failure"),
                ],
                Ok(failed(STATUS_TEMPORARY, None)),
            ),
            (
                // OK is case-sensitive, as in nginx.
                &[
                    ("Auth-Status", "ok"),
                    ("Auth-Server", "10.0.0.5"),
                    ("Auth-Port", "7143"),
                ],
                Ok(failed("ok", None)),
            ),
            (
                &[("Auth-Server", "10.0.0.5"), ("Auth-Port", "1")],
                Err(AnswerError::NoStatus),
            ),
            (&[], Err(AnswerError::NoStatus)),
            (
                &[
                    ("Auth-Status", "OK"),
                    ("Auth-Server", "mbx1"),
                    ("Auth-Port", "1"),
                ],
                Err(AnswerError::Server("mbx1".into())),
            ),
            (
                &[("Auth-Status", "OK"), ("Auth-Port", "1")],
                Err(AnswerError::Server(String::new())),
            ),
            (
                &[
                    ("Auth-Status", "OK"),
                    ("Auth-Server", "[::1]"),
                    ("Auth-Port", "1"),
                ],
                Err(AnswerError::Server("[::1]".into())),
            ),
            (
                &[
                    ("Auth-Status", "OK"),
                    ("Auth-Server", "::1"),
                    ("Auth-Port", "0"),
                ],
                Err(AnswerError::Port),
            ),
            (
                &[
                    ("Auth-Status", "OK"),
                    ("Auth-Server", "::1"),
                    ("Auth-Port", "65536"),
                ],
                Err(AnswerError::Port),
            ),
            (
                &[("Auth-Status", "OK"), ("Auth-Server", "::1")],
                Err(AnswerError::Port),
            ),
        ];
        for (fields, expected) in table {
            assert_eq!(
                answer(fields.iter().map(|(k, v)| (*k, v.as_bytes()))),
                expected,
                "{fields:?}"
            );
        }
    }

    #[test]
    fn server_names() {
        let name = |value: &str| {
            let fields = [
                ("Auth-Status", "OK"),
                ("Auth-Server", "10.0.0.5"),
                ("Auth-Port", "7993"),
                ("auth-server-name", value),
            ];
            match answer(fields.iter().map(|(k, v)| (*k, v.as_bytes()))) {
                Ok(Answer::Route { server_name, .. }) => server_name,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(
            name(" mbx1.example.com ").as_deref(),
            Some("mbx1.example.com")
        );
        assert_eq!(name("mbx_2").as_deref(), Some("mbx_2"));
        for unusable in ["", "a..b", ".a", "a b", "a/b", "a:1", &"x".repeat(64)] {
            assert_eq!(name(unusable), None, "{unusable:?}");
        }
        let no_header = [
            ("Auth-Status", "OK"),
            ("Auth-Server", "::1"),
            ("Auth-Port", "1"),
        ];
        assert!(matches!(
            answer(no_header.iter().map(|(k, v)| (*k, v.as_bytes()))),
            Ok(Answer::Route {
                server_name: None,
                ..
            })
        ));
    }
}
