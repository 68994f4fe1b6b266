//! The POP3 commands a client sends: the [`Command`] enum, its wire encoding, and the
//! splitter for `XCLIENT` parameters.

use std::fmt;
use std::io::Write as _;

/// One command line, its arguments borrowed from the input buffer.
///
/// Arguments that [`parse_command`](super::parse_command) returns never contain CR, LF or
/// NUL, so re-encoding them cannot inject a line. [`Command::encode`] writes what it is given:
/// a caller that builds a command from other data (a login from a lookup answer, say) must
/// check that data for CR and LF itself.
///
/// `Debug` leaves out secrets (the password, the APOP digest and the SASL initial response
/// show only their length), so a command can be logged with `?command`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    /// `USER <name>`: the rest of the line after the one space that follows the keyword, inner
    /// and trailing spaces kept (as nginx and Dovecot do). Never empty.
    User(&'a [u8]),
    /// `PASS <password>`: the rest of the line after one space, spaces kept; empty for a bare
    /// `PASS`.
    Pass(&'a [u8]),
    /// `APOP <name> <digest>`.
    Apop {
        /// The mailbox name (one token).
        name: &'a [u8],
        /// 32 hexadecimal digits, in the case the client sent.
        digest: &'a [u8],
    },
    /// `AUTH [<mechanism> [<initial-response>]]`.
    Auth {
        /// The SASL mechanism as sent (compare it case-insensitively); `None` for a bare
        /// `AUTH`, which asks for the list of mechanisms.
        mechanism: Option<&'a [u8]>,
        /// The RFC 5034 initial response, still base64 (`=` stands for an empty one). Only
        /// present with a mechanism; [`Command::encode`] ignores it otherwise.
        initial: Option<&'a [u8]>,
    },
    /// `CAPA`
    Capa,
    /// `STLS`
    Stls,
    /// `STAT`
    Stat,
    /// `LIST [<msg>]`
    List(Option<u32>),
    /// `UIDL [<msg>]`
    Uidl(Option<u32>),
    /// `RETR <msg>`
    Retr(u32),
    /// `TOP <msg> <lines>`
    Top {
        /// Message number, 1 or more.
        msg: u32,
        /// Body lines to send after the header; 0 is valid (the header only).
        lines: u32,
    },
    /// `DELE <msg>`
    Dele(u32),
    /// `RSET`
    Rset,
    /// `NOOP`
    Noop,
    /// `QUIT`
    Quit,
    /// `XCLIENT <NAME=VALUE …>` (Dovecot's proxy forwarding): the rest of the line after one
    /// space, never empty; split it with [`xclient_params`].
    Xclient(&'a [u8]),
    /// `XOIP <address>` (Zimbra's proxy tells the mailbox server the client's IP): one token.
    Xoip(&'a [u8]),
}

impl Command<'_> {
    /// The keyword in upper case: safe to log, unlike the arguments.
    pub fn keyword(&self) -> &'static str {
        match self {
            Self::User(_) => "USER",
            Self::Pass(_) => "PASS",
            Self::Apop { .. } => "APOP",
            Self::Auth { .. } => "AUTH",
            Self::Capa => "CAPA",
            Self::Stls => "STLS",
            Self::Stat => "STAT",
            Self::List(_) => "LIST",
            Self::Uidl(_) => "UIDL",
            Self::Retr(_) => "RETR",
            Self::Top { .. } => "TOP",
            Self::Dele(_) => "DELE",
            Self::Rset => "RSET",
            Self::Noop => "NOOP",
            Self::Quit => "QUIT",
            Self::Xclient(_) => "XCLIENT",
            Self::Xoip(_) => "XOIP",
        }
    }

    /// Appends the command line, CRLF included, in canonical form: upper-case keyword, one
    /// space before each argument, numbers without leading zeros.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.keyword().as_bytes());
        let arg = |out: &mut Vec<u8>, arg: &[u8]| {
            out.push(b' ');
            out.extend_from_slice(arg);
        };
        let num = |out: &mut Vec<u8>, n: u32| {
            // Writing to a Vec cannot fail.
            let _ = write!(out, " {n}");
        };
        match *self {
            Self::User(a) | Self::Pass(a) | Self::Xclient(a) | Self::Xoip(a) => arg(out, a),
            Self::Apop { name, digest } => {
                arg(out, name);
                arg(out, digest);
            }
            Self::Auth { mechanism, initial } => {
                if let Some(mechanism) = mechanism {
                    arg(out, mechanism);
                    if let Some(initial) = initial {
                        arg(out, initial);
                    }
                }
            }
            Self::List(n) | Self::Uidl(n) => {
                if let Some(n) = n {
                    num(out, n);
                }
            }
            Self::Retr(n) | Self::Dele(n) => num(out, n),
            Self::Top { msg, lines } => {
                num(out, msg);
                num(out, lines);
            }
            Self::Capa | Self::Stls | Self::Stat | Self::Rset | Self::Noop | Self::Quit => {}
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// Bytes shown escaped and quoted.
struct Shown<'a>(&'a [u8]);

impl fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}

/// A secret, shown by its length only.
struct Redacted(usize);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes redacted>", self.0)
    }
}

impl fmt::Debug for Command<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::User(a) => f.debug_tuple("User").field(&Shown(a)).finish(),
            Self::Pass(a) => f.debug_tuple("Pass").field(&Redacted(a.len())).finish(),
            Self::Apop { name, digest } => f
                .debug_struct("Apop")
                .field("name", &Shown(name))
                .field("digest", &Redacted(digest.len()))
                .finish(),
            Self::Auth { mechanism, initial } => f
                .debug_struct("Auth")
                .field("mechanism", &mechanism.map(Shown))
                .field("initial", &initial.map(|i| Redacted(i.len())))
                .finish(),
            Self::List(n) => f.debug_tuple("List").field(&n).finish(),
            Self::Uidl(n) => f.debug_tuple("Uidl").field(&n).finish(),
            Self::Retr(n) => f.debug_tuple("Retr").field(&n).finish(),
            Self::Dele(n) => f.debug_tuple("Dele").field(&n).finish(),
            Self::Top { msg, lines } => f
                .debug_struct("Top")
                .field("msg", &msg)
                .field("lines", &lines)
                .finish(),
            Self::Xclient(a) => f.debug_tuple("Xclient").field(&Shown(a)).finish(),
            Self::Xoip(a) => f.debug_tuple("Xoip").field(&Shown(a)).finish(),
            Self::Capa => f.write_str("Capa"),
            Self::Stls => f.write_str("Stls"),
            Self::Stat => f.write_str("Stat"),
            Self::Rset => f.write_str("Rset"),
            Self::Noop => f.write_str("Noop"),
            Self::Quit => f.write_str("Quit"),
        }
    }
}

/// Splits the argument of [`Command::Xclient`] into `(NAME, VALUE)` pairs at runs of
/// spaces and at the first `=` of each pair. Names keep their case and values stay encoded
/// (Dovecot's `FORWARD` is base64); a parameter without `=` comes out with an empty value, so
/// the caller decides whether that is an error.
pub fn xclient_params<'a>(args: &'a [u8]) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
    args.split(|&b| b == b' ')
        .filter(|param| !param.is_empty())
        .map(|param| match memchr::memchr(b'=', param) {
            Some(eq) => (&param[..eq], &param[eq + 1..]),
            None => (param, &param[param.len()..]),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let shown = format!(
            "{:?} {:?} {:?}",
            Command::Pass(b"hunter2"),
            Command::Apop {
                name: b"bob",
                digest: b"c4c9334bac560ecc979e58001b3e22fb",
            },
            Command::Auth {
                mechanism: Some(b"PLAIN"),
                initial: Some(b"AGJvYgBodW50ZXIy"),
            },
        );
        assert_eq!(
            shown,
            "Pass(<7 bytes redacted>) Apop { name: \"bob\", digest: <32 bytes redacted> } \
             Auth { mechanism: Some(\"PLAIN\"), initial: Some(<16 bytes redacted>) }"
        );
        assert_eq!(format!("{:?}", Command::User(b"a\x01")), "User(\"a\\x01\")");
    }
}
