//! The server side of POP3: line framing, bytes in, one [`Command`] (or a precise error)
//! out, and raw lines for SASL exchanges.
//!
//! Like the memcached parser this keeps no state between calls: given the bytes buffered so
//! far it returns one complete command and how many bytes it used, or
//! [`ParseError::Incomplete`]. Re-scanning is bounded because a line end is only looked for
//! within the first [`Limits::max_line`] bytes.

use thiserror::Error;

use super::command::Command;

/// Size bounds on what one line may make the server buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest line, its CRLF (or LF) included. The default is 1024: RFC 2449 caps commands
    /// at 255 octets, but `AUTH` initial responses, SASL continuation lines and `XCLIENT`
    /// run longer. XOAUTH2/OAUTHBEARER tokens can exceed it; a session offering those passes
    /// larger limits to [`parse_line`] for the continuation lines.
    pub max_line: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_line: 1024 }
    }
}

/// A complete line's value and the bytes it occupied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed<T> {
    /// The command (for [`parse_line`]: the raw line without its line end), borrowing from
    /// the input.
    pub command: T,
    /// Bytes of input used, line end included.
    pub consumed: usize,
}

/// Why no command came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ParseError {
    /// No line end yet; keep the bytes and read more.
    #[error("incomplete line")]
    Incomplete,
    /// [`Limits::max_line`] bytes are buffered without a line end. Answer, then discard input
    /// up to and including the next LF (see [`skip_line`]).
    #[error("line too long")]
    LineTooLong,
    /// A complete line that is no valid command: drop `consumed` bytes, answer `-ERR
    /// <reason>` and go on with the next line. The reasons are short fixed texts: `empty
    /// command`, `unknown command`, `invalid character in command`, `missing argument`,
    /// `too many arguments`, `invalid message number`, `invalid line count`,
    /// `invalid APOP digest`.
    #[error("{reason}")]
    Invalid {
        /// Bytes to drop: the whole line, line end included.
        consumed: usize,
        /// What was wrong, fit to follow `-ERR `.
        reason: &'static str,
    },
}

const EMPTY: &str = "empty command";
const UNKNOWN: &str = "unknown command";
const BAD_CHAR: &str = "invalid character in command";
const MISSING: &str = "missing argument";
const TOO_MANY: &str = "too many arguments";
const BAD_MSG: &str = "invalid message number";
const BAD_COUNT: &str = "invalid line count";
const BAD_DIGEST: &str = "invalid APOP digest";

/// How many bytes to drop to get past the current line (through its LF), or `None` when
/// no LF is buffered yet: then drop everything and call again after the next read. This is
/// how a session discards the rest of a line after [`ParseError::LineTooLong`].
pub fn skip_line(buf: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', buf).map(|nl| nl + 1)
}

/// The first line of `buf` without its line end, and its length with it.
fn next_line<'a>(buf: &'a [u8], limits: &Limits) -> Result<(&'a [u8], usize), ParseError> {
    if buf.is_empty() {
        return Err(ParseError::Incomplete);
    }
    let window = &buf[..buf.len().min(limits.max_line)];
    match memchr::memchr(b'\n', window) {
        Some(nl) => {
            let line = &buf[..nl];
            Ok((line.strip_suffix(b"\r").unwrap_or(line), nl + 1))
        }
        None if buf.len() >= limits.max_line => Err(ParseError::LineTooLong),
        None => Err(ParseError::Incomplete),
    }
}

/// Returns the first line of `buf` as it is, without its line end: a SASL continuation
/// line (base64, or `*` to cancel) during `AUTH`. Never [`ParseError::Invalid`]; decoding
/// is the caller's job.
pub fn parse_line<'a>(buf: &'a [u8], limits: &Limits) -> Result<Parsed<&'a [u8]>, ParseError> {
    let (line, consumed) = next_line(buf, limits)?;
    Ok(Parsed {
        command: line,
        consumed,
    })
}

/// Parses the first command line in `buf`.
pub fn parse_command<'a>(
    buf: &'a [u8],
    limits: &Limits,
) -> Result<Parsed<Command<'a>>, ParseError> {
    let (line, consumed) = next_line(buf, limits)?;
    match command(line) {
        Ok(command) => Ok(Parsed { command, consumed }),
        Err(reason) => Err(ParseError::Invalid { consumed, reason }),
    }
}

/// The longest keyword (`XCLIENT`); anything longer is unknown without looking further.
const MAX_KEYWORD: usize = 7;

fn command(line: &[u8]) -> Result<Command<'_>, &'static str> {
    if line.is_empty() {
        return Err(EMPTY);
    }
    if memchr::memchr2(b'\0', b'\r', line).is_some() {
        return Err(BAD_CHAR);
    }
    let (keyword, rest) = match memchr::memchr(b' ', line) {
        Some(sp) => (&line[..sp], Some(&line[sp + 1..])),
        None => (line, None),
    };
    if keyword.len() > MAX_KEYWORD {
        return Err(UNKNOWN);
    }
    let mut upper = [0u8; MAX_KEYWORD];
    let upper = &mut upper[..keyword.len()];
    upper.copy_from_slice(keyword);
    upper.make_ascii_uppercase();
    let args = rest.unwrap_or_default();
    // USER, PASS and XCLIENT take the line as it is after the keyword's one space; the other
    // commands take space-separated tokens.
    let whole = || rest.filter(|r| !r.is_empty()).ok_or(MISSING);
    Ok(match &*upper {
        b"USER" => Command::User(whole()?),
        b"PASS" => Command::Pass(args),
        b"XCLIENT" => Command::Xclient(whole()?),
        b"XOIP" => Command::Xoip(tokens::<1>(args)?[0]),
        b"APOP" => {
            let [name, digest] = tokens::<2>(args)?;
            if digest.len() != 32 || !digest.iter().all(u8::is_ascii_hexdigit) {
                return Err(BAD_DIGEST);
            }
            Command::Apop { name, digest }
        }
        b"AUTH" => {
            let (t, n) = tokens_upto::<2>(args)?;
            Command::Auth {
                mechanism: (n > 0).then_some(t[0]),
                initial: (n > 1).then_some(t[1]),
            }
        }
        b"CAPA" => none(args, Command::Capa)?,
        b"STLS" => none(args, Command::Stls)?,
        b"STAT" => none(args, Command::Stat)?,
        b"RSET" => none(args, Command::Rset)?,
        b"NOOP" => none(args, Command::Noop)?,
        b"QUIT" => none(args, Command::Quit)?,
        b"LIST" => Command::List(optional_msg(args)?),
        b"UIDL" => Command::Uidl(optional_msg(args)?),
        b"RETR" => Command::Retr(msg(tokens::<1>(args)?[0])?),
        b"DELE" => Command::Dele(msg(tokens::<1>(args)?[0])?),
        b"TOP" => {
            let [m, l] = tokens::<2>(args)?;
            Command::Top {
                msg: msg(m)?,
                lines: number(l).ok_or(BAD_COUNT)?,
            }
        }
        _ => return Err(UNKNOWN),
    })
}

/// At most `N` tokens separated by runs of spaces (leading and trailing spaces ignored),
/// and how many there were.
fn tokens_upto<const N: usize>(args: &[u8]) -> Result<([&[u8]; N], usize), &'static str> {
    let mut out = [&args[..0]; N];
    let mut n = 0;
    for token in args.split(|&b| b == b' ').filter(|t| !t.is_empty()) {
        if n == N {
            return Err(TOO_MANY);
        }
        out[n] = token;
        n += 1;
    }
    Ok((out, n))
}

/// Exactly `N` tokens.
fn tokens<const N: usize>(args: &[u8]) -> Result<[&[u8]; N], &'static str> {
    let (out, n) = tokens_upto::<N>(args)?;
    if n < N {
        return Err(MISSING);
    }
    Ok(out)
}

fn none<'a>(args: &[u8], command: Command<'a>) -> Result<Command<'a>, &'static str> {
    tokens_upto::<0>(args)?;
    Ok(command)
}

fn optional_msg(args: &[u8]) -> Result<Option<u32>, &'static str> {
    let ([token], n) = tokens_upto::<1>(args)?;
    if n == 0 {
        Ok(None)
    } else {
        msg(token).map(Some)
    }
}

/// A message number: decimal digits only (leading zeros allowed), 1..=u32::MAX.
fn msg(token: &[u8]) -> Result<u32, &'static str> {
    number(token).filter(|&n| n > 0).ok_or(BAD_MSG)
}

/// Decimal digits only, no sign, any number of leading zeros, no overflow.
fn number(token: &[u8]) -> Option<u32> {
    if token.is_empty() {
        return None;
    }
    token.iter().try_fold(0u32, |v, &b| {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v.checked_mul(10)?.checked_add(u32::from(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(number(b"0"), Some(0));
        assert_eq!(number(b"0004294967295"), Some(u32::MAX));
        assert_eq!(number(b"4294967296"), None);
        assert_eq!(number(b"99999999999999999999"), None);
        assert_eq!(number(b"+1"), None);
        assert_eq!(number(b"-1"), None);
        assert_eq!(number(b""), None);
        assert_eq!(number(b"1x"), None);
        assert_eq!(msg(b"0"), Err(BAD_MSG));
        assert_eq!(msg(b"000"), Err(BAD_MSG));
        assert_eq!(msg(b"01"), Ok(1));
    }

    #[test]
    fn line_window_is_exact() {
        let limits = Limits { max_line: 6 };
        // Six bytes with the LF as the sixth fit; six without an LF cannot.
        assert_eq!(next_line(b"NOOP\r\n", &limits), Ok((&b"NOOP"[..], 6)));
        assert_eq!(next_line(b"NOOP\r", &limits), Err(ParseError::Incomplete));
        assert_eq!(next_line(b"NOOPS\r", &limits), Err(ParseError::LineTooLong));
        assert_eq!(
            next_line(b"NOOPS\r\n", &limits),
            Err(ParseError::LineTooLong)
        );
        assert_eq!(next_line(b"", &limits), Err(ParseError::Incomplete));
        let zero = Limits { max_line: 0 };
        assert_eq!(next_line(b"", &zero), Err(ParseError::Incomplete));
        assert_eq!(next_line(b"\n", &zero), Err(ParseError::LineTooLong));
    }
}
