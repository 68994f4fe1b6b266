//! The client side of POP3, for a proxy talking to a mailbox server: the commands a login
//! replay sends (`USER`, `PASS`, `AUTH PLAIN` with an initial response, `XCLIENT`) and a
//! parser of single-line responses that reads their RFC 2449 / RFC 3206 response code
//! (`-ERR [SYS/TEMP] ...`), bounded by [`Limits::max_line`].
//!
//! The encoders check their arguments before writing anything: a CR, LF or NUL would end
//! the line early at some server and let the rest of a credential pose as a command of
//! its own, so such an argument is an [`EncodeError`] and `out` is left as it was.

use std::net::IpAddr;

use thiserror::Error;

use super::command::Command;
use super::parser::Limits;
use super::response::{parse_status_line, response_code, ResponseError, Status};

/// Why a command was not encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// An argument holds a CR, LF or NUL.
    #[error("line break or NUL in a command argument")]
    LineBreak,
    /// An argument that may not be empty is (a `USER` name, an `XCLIENT` name).
    #[error("empty command argument")]
    Empty,
    /// A space in what must be one token (an `AUTH` initial response, an `XCLIENT` name
    /// or value), or a `=` in an `XCLIENT` name: the server would split the line
    /// differently.
    #[error("space inside a one-token argument, or '=' in an XCLIENT name")]
    NotAToken,
}

fn check_line(arg: &[u8]) -> Result<(), EncodeError> {
    match memchr::memchr3(b'\r', b'\n', 0, arg) {
        Some(_) => Err(EncodeError::LineBreak),
        None => Ok(()),
    }
}

/// Appends `USER <name>\r\n`.
pub fn user(out: &mut Vec<u8>, name: &[u8]) -> Result<(), EncodeError> {
    check_line(name)?;
    if name.is_empty() {
        return Err(EncodeError::Empty);
    }
    Command::User(name).encode(out);
    Ok(())
}

/// Appends `PASS <password>\r\n`; the password goes as it is, spaces included (RFC 1939
/// servers take the rest of the line).
pub fn pass(out: &mut Vec<u8>, password: &[u8]) -> Result<(), EncodeError> {
    check_line(password)?;
    Command::Pass(password).encode(out);
    Ok(())
}

/// Appends `AUTH PLAIN <initial response>\r\n` (RFC 5034). `initial` is the base64 PLAIN
/// response (see [`crate::sasl`]); an empty one is sent as `=`, as the RFC spells it.
pub fn auth_plain(out: &mut Vec<u8>, initial: &[u8]) -> Result<(), EncodeError> {
    auth(out, b"PLAIN", Some(initial))
}

/// Longest `AUTH` command line with its initial response (RFC 5034 section 4: a longer
/// response goes on its own line after the server's empty `+`).
pub const MAX_AUTH_LINE: usize = 255;

/// Appends `AUTH MECHANISM [<initial response>]\r\n` (RFC 5034): an empty response is
/// sent as `=`; without one, the server answers `+` and the response follows on its own
/// line ([`sasl_response`]).
pub fn auth(
    out: &mut Vec<u8>,
    mechanism: &[u8],
    initial: Option<&[u8]>,
) -> Result<(), EncodeError> {
    check_line(mechanism)?;
    if mechanism.is_empty() {
        return Err(EncodeError::Empty);
    }
    if mechanism.contains(&b' ') {
        return Err(EncodeError::NotAToken);
    }
    let initial = match initial {
        Some(i) => {
            check_line(i)?;
            if i.contains(&b' ') {
                return Err(EncodeError::NotAToken);
            }
            Some(if i.is_empty() { &b"="[..] } else { i })
        }
        None => None,
    };
    Command::Auth {
        mechanism: Some(mechanism),
        initial,
    }
    .encode(out);
    Ok(())
}

/// Appends a SASL response line (base64) sent after a `+` continuation.
pub fn sasl_response(out: &mut Vec<u8>, response: &[u8]) -> Result<(), EncodeError> {
    check_line(response)?;
    out.extend_from_slice(response);
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// Appends the line that cancels a SASL exchange at a `+` continuation (`*`, RFC 5034):
/// the server then answers `-ERR`.
pub fn cancel_auth(out: &mut Vec<u8>) {
    out.extend_from_slice(b"*\r\n");
}

/// Appends `XCLIENT NAME=VALUE ...\r\n` (Dovecot's proxy forwarding), the parameters in
/// the order given, so that [`super::xclient_params`] splits the line back into them.
/// Values go as given: encoding them (Dovecot's `FORWARD` is base64) is the caller's.
pub fn xclient<'p>(
    out: &mut Vec<u8>,
    params: impl IntoIterator<Item = (&'p [u8], &'p [u8])>,
) -> Result<(), EncodeError> {
    let mut line = Vec::new();
    for (name, value) in params {
        check_line(name)?;
        check_line(value)?;
        if name.is_empty() {
            return Err(EncodeError::Empty);
        }
        if name.contains(&b'=') || name.contains(&b' ') || value.contains(&b' ') {
            return Err(EncodeError::NotAToken);
        }
        if !line.is_empty() {
            line.push(b' ');
        }
        line.extend_from_slice(name);
        line.push(b'=');
        line.extend_from_slice(value);
    }
    if line.is_empty() {
        return Err(EncodeError::Empty);
    }
    Command::Xclient(&line).encode(out);
    Ok(())
}

/// Appends `XCLIENT ADDR=<client>\r\n`: the client's address for the mailbox server's
/// logs and rate limits. Cannot fail: an address holds no space or line break.
pub fn xclient_addr(out: &mut Vec<u8>, client: IpAddr) {
    Command::Xclient(format!("ADDR={client}").as_bytes()).encode(out);
}

/// The status indicator of a response line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Indicator {
    /// `+OK`.
    Ok,
    /// `-ERR`.
    Err,
    /// `+`: a SASL challenge during `AUTH`.
    Continuation,
}

/// One single-line server response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerResponse<'a> {
    /// `+OK`, `-ERR` or `+`.
    pub indicator: Indicator,
    /// The RFC 2449 response code of a `+OK` or `-ERR`, without its brackets (`SYS/TEMP`,
    /// `AUTH`, `IN-USE`, `LOGIN-DELAY`); never for a continuation, whose text is base64.
    pub code: Option<&'a [u8]>,
    /// The text after the indicator and the code, each with its one space; for a
    /// continuation, the base64 challenge.
    pub text: &'a [u8],
    /// The line as received, line end included (what a proxy passes on to its client).
    pub raw: &'a [u8],
}

impl ServerResponse<'_> {
    /// Whether it is `+OK`.
    pub fn is_ok(&self) -> bool {
        self.indicator == Indicator::Ok
    }

    /// Whether the response code is `code`, ignoring case. Codes are hierarchical: `SYS`
    /// matches `[SYS]` only, not `[SYS/TEMP]` (see [`Self::code_levels`]).
    pub fn code_is(&self, code: &[u8]) -> bool {
        self.code.is_some_and(|c| c.eq_ignore_ascii_case(code))
    }

    /// The levels of the response code, outermost first: `SYS`, `TEMP` for `[SYS/TEMP]`.
    pub fn code_levels(&self) -> impl Iterator<Item = &[u8]> {
        self.code.into_iter().flat_map(|c| c.split(|&b| b == b'/'))
    }
}

/// Parses the single-line response at the start of `buf` (a greeting, the answer to a
/// command, a SASL challenge) and returns it with the bytes it used. Resumable: after
/// [`ResponseError::Incomplete`] call again with the same bytes and more. A line of
/// `limits.max_line` bytes or more without a line end is [`ResponseError::TooLarge`].
/// Multi-line bodies that follow a `+OK` are [`super::parse_multiline`]'s.
pub fn parse_response<'a>(
    buf: &'a [u8],
    limits: &Limits,
) -> Result<(ServerResponse<'a>, usize), ResponseError> {
    let (status, used) = parse_status_line(buf, limits)?;
    let (indicator, text) = match status {
        Status::Ok(text) => (Indicator::Ok, text),
        Status::Err(text) => (Indicator::Err, text),
        Status::Continuation(text) => (Indicator::Continuation, text),
    };
    let code = match indicator {
        Indicator::Continuation => None,
        _ => response_code(text),
    };
    let text = match code {
        // `[` + code + `]`, then the space before the text if there is one.
        Some(c) => {
            let after = &text[c.len() + 2..];
            after.strip_prefix(b" ").unwrap_or(after)
        }
        None => text,
    };
    Ok((
        ServerResponse {
            indicator,
            code,
            text,
            raw: &buf[..used],
        },
        used,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(f: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>) -> Vec<u8> {
        let mut out = b"x".to_vec();
        f(&mut out).unwrap();
        out.split_off(1)
    }

    fn refused(f: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>) -> EncodeError {
        let mut out = b"x".to_vec();
        let e = f(&mut out).unwrap_err();
        assert_eq!(out, b"x", "nothing written on error");
        e
    }

    #[test]
    fn commands() {
        assert_eq!(
            encoded(|o| user(o, b"ann@example.com")),
            b"USER ann@example.com\r\n"
        );
        assert_eq!(encoded(|o| pass(o, b"pa ss ")), b"PASS pa ss \r\n");
        assert_eq!(encoded(|o| pass(o, b"")), b"PASS \r\n");
        assert_eq!(
            encoded(|o| auth_plain(o, b"AGFubgBwdw==")),
            b"AUTH PLAIN AGFubgBwdw==\r\n"
        );
        assert_eq!(encoded(|o| auth_plain(o, b"")), b"AUTH PLAIN =\r\n");
        assert_eq!(
            encoded(|o| auth(o, b"XOAUTH2", Some(b"dXNlcj1h"))),
            b"AUTH XOAUTH2 dXNlcj1h\r\n"
        );
        assert_eq!(encoded(|o| auth(o, b"XOAUTH2", None)), b"AUTH XOAUTH2\r\n");
        assert_eq!(encoded(|o| sasl_response(o, b"AQ==")), b"AQ==\r\n");
        assert_eq!(
            encoded(|o| xclient(o, [(&b"ADDR"[..], &b"192.0.2.7"[..]), (b"PORT", b"143")])),
            b"XCLIENT ADDR=192.0.2.7 PORT=143\r\n"
        );
        assert_eq!(
            encoded(|o| {
                xclient_addr(o, "2001:db8::1".parse().unwrap());
                Ok(())
            }),
            b"XCLIENT ADDR=2001:db8::1\r\n"
        );
        let mut out = Vec::new();
        cancel_auth(&mut out);
        assert_eq!(out, b"*\r\n");
    }

    #[test]
    fn unsafe_arguments() {
        assert_eq!(
            refused(|o| user(o, b"ann\r\nDELE 1")),
            EncodeError::LineBreak
        );
        assert_eq!(refused(|o| user(o, b"")), EncodeError::Empty);
        assert_eq!(refused(|o| pass(o, b"p\nw")), EncodeError::LineBreak);
        assert_eq!(refused(|o| pass(o, b"p\0w")), EncodeError::LineBreak);
        assert_eq!(refused(|o| auth_plain(o, b"AA\r")), EncodeError::LineBreak);
        assert_eq!(refused(|o| auth_plain(o, b"AA BB")), EncodeError::NotAToken);
        assert_eq!(refused(|o| auth(o, b"X Y", None)), EncodeError::NotAToken);
        assert_eq!(refused(|o| auth(o, b"", None)), EncodeError::Empty);
        assert_eq!(
            refused(|o| sasl_response(o, b"AA\nQUIT")),
            EncodeError::LineBreak
        );
        assert_eq!(
            refused(|o| xclient(o, [(&b"ADDR"[..], &b"1 2"[..])])),
            EncodeError::NotAToken
        );
        assert_eq!(
            refused(|o| xclient(o, [(&b"A=B"[..], &b"1"[..])])),
            EncodeError::NotAToken
        );
        assert_eq!(
            refused(|o| xclient(o, [(&b""[..], &b"1"[..])])),
            EncodeError::Empty
        );
        assert_eq!(refused(|o| xclient(o, [])), EncodeError::Empty);
        assert_eq!(
            refused(|o| xclient(o, [(&b"ADDR"[..], &b"1"[..]), (b"X", b"\n")])),
            EncodeError::LineBreak
        );
    }

    #[test]
    fn responses() {
        let limits = Limits::default();
        let one = |s: &'static [u8]| {
            let (r, used) = parse_response(s, &limits).unwrap();
            assert_eq!((used, r.raw), (s.len(), s));
            r
        };
        let r = one(b"-ERR [SYS/TEMP] try later\r\n");
        assert_eq!(
            (r.indicator, r.code, r.text),
            (Indicator::Err, Some(&b"SYS/TEMP"[..]), &b"try later"[..])
        );
        assert!(r.code_is(b"sys/temp") && !r.code_is(b"SYS"));
        assert_eq!(r.code_levels().collect::<Vec<_>>(), [&b"SYS"[..], b"TEMP"]);
        let r = one(b"-ERR [AUTH]\r\n");
        assert_eq!((r.code, r.text), (Some(&b"AUTH"[..]), &b""[..]));
        let r = one(b"+OK [IN-USE]x\n");
        assert_eq!((r.code, r.text), (Some(&b"IN-USE"[..]), &b"x"[..]));
        assert!(r.is_ok());
        let r = one(b"-ERR try later [SYS/TEMP]\r\n");
        assert_eq!((r.code, r.text), (None, &b"try later [SYS/TEMP]"[..]));
        let r = one(b"-ERR [not a code] x\r\n");
        assert_eq!(r.code, None);
        let r = one(b"+ [AUTH]\r\n");
        assert_eq!(
            (r.indicator, r.code, r.text),
            (Indicator::Continuation, None, &b"[AUTH]"[..])
        );
        let r = one(b"+OK\r\n");
        assert_eq!((r.indicator, r.text), (Indicator::Ok, &b""[..]));
        assert_eq!(
            parse_response(b"* OK imap\r\n", &limits),
            Err(ResponseError::Malformed)
        );
        assert_eq!(
            parse_response(b"+OK no end", &limits),
            Err(ResponseError::Incomplete)
        );
        assert_eq!(
            parse_response(b"-ERR way too long\r\n", &Limits { max_line: 8 }),
            Err(ResponseError::TooLarge)
        );
    }
}
