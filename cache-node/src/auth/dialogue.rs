//! What a connection that has not authenticated may do, byte for byte as memcached 1.6
//! (`try_read_command_asciiauth` in `proto_text.c`): every command line is answered
//! `CLIENT_ERROR unauthenticated` (`quit` and `version` too, and the connection stays
//! open) except `set <key> <flags> <exptime> <bytes>`, whose data block `user password`
//! authenticates. Key, flags and exptime are ignored; `<bytes>` is read as C's `strtoul`
//! reads it, as memcached does.
//!
//! Pure: the caller owns the buffer and the socket. Two deliberate differences, both
//! refusals of what no memcached client sends: an HTTP request line closes the connection
//! (as it does once authenticated, so a cross-protocol POST cannot try passwords), and so
//! does a data block over [`MAX_AUTH_DATA`] (memcached resets such connections too, from
//! about 16 KiB).

use crate::connection::is_http_request_line;

/// memcached closes a connection that sends this much without a newline.
const MAX_LINE: usize = 2048;

/// Largest credentials block accepted: two 254-byte tokens fit many times over.
pub const MAX_AUTH_DATA: usize = 4096;

/// `CLIENT_ERROR unauthenticated`
pub const UNAUTHENTICATED: &[u8] = b"CLIENT_ERROR unauthenticated\r\n";
/// The data block does not end in CRLF.
pub const BAD_TERMINATION: &[u8] = b"CLIENT_ERROR bad command line termination\r\n";
/// The data block has fewer than two tokens.
pub const BAD_FORMAT: &[u8] = b"CLIENT_ERROR bad authentication token format\r\n";
/// The pair is in the auth file.
pub const STORED: &[u8] = b"STORED\r\n";
/// The pair is not in the auth file.
pub const FAILURE: &[u8] = b"CLIENT_ERROR authentication failure\r\n";

/// The next thing to do with the buffered bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    /// Nothing can be decided yet: read more.
    More,
    /// Drop `consumed` bytes and write `reply` (which may be empty: an accepted header).
    Reply {
        /// Bytes used.
        consumed: usize,
        /// The whole reply line.
        reply: &'static [u8],
    },
    /// Drop `consumed` bytes and check this pair; reply [`STORED`] or [`FAILURE`].
    Attempt {
        /// Bytes used.
        consumed: usize,
        /// The first token of the data block.
        user: &'a [u8],
        /// The second.
        password: &'a [u8],
    },
    /// Close the connection without a reply.
    Close,
    /// An HTTP request line: close without a reply.
    CrossProtocol,
}

/// A connection's progress: memcached's `sasl_started` and `rlbytes`.
#[derive(Debug, Default)]
pub struct PreAuth {
    /// The data block being awaited, CRLF included, once a `set` line was accepted.
    data_len: Option<usize>,
}

impl PreAuth {
    /// Decides what the start of `buf` is.
    pub fn step<'a>(&mut self, buf: &'a [u8]) -> Step<'a> {
        match self.data_len {
            None => self.command_line(buf),
            Some(len) => {
                if buf.len() < len {
                    return Step::More;
                }
                self.data_len = None;
                data_block(&buf[..len])
            }
        }
    }

    fn command_line<'a>(&mut self, buf: &'a [u8]) -> Step<'a> {
        // memcached: "impossible for the auth command to be this short".
        if buf.len() < 2 {
            return Step::More;
        }
        let Some(newline) = memchr::memchr(b'\n', buf) else {
            return if buf.len() > MAX_LINE {
                Step::Close
            } else {
                Step::More
            };
        };
        let consumed = newline + 1;
        // The CR stays in the line, as in memcached (its number parser stops at it).
        let line = &buf[..newline];
        if is_http_request_line(&buf[..consumed]) {
            return Step::CrossProtocol;
        }
        let tokens = c_tokens(line);
        let size = match (tokens.first(), tokens.get(4)) {
            (Some(&b"set"), Some(size)) => safe_strtoul(size),
            _ => None,
        };
        match size {
            None => Step::Reply {
                consumed,
                reply: UNAUTHENTICATED,
            },
            Some(size) if size as usize > MAX_AUTH_DATA => Step::Close,
            Some(size) => {
                self.data_len = Some(size as usize + 2);
                Step::Reply {
                    consumed,
                    reply: b"",
                }
            }
        }
    }
}

fn data_block(block: &[u8]) -> Step<'_> {
    let consumed = block.len();
    let Some(payload) = block.strip_suffix(b"\r\n") else {
        return Step::Reply {
            consumed,
            reply: BAD_TERMINATION,
        };
    };
    match c_tokens(payload)[..] {
        [user, password, ..] => Step::Attempt {
            consumed,
            user,
            password,
        },
        _ => Step::Reply {
            consumed,
            reply: BAD_FORMAT,
        },
    }
}

/// memcached's `tokenize_command` on a C string: the bytes up to the first NUL, split on
/// single spaces, empty tokens skipped.
fn c_tokens(s: &[u8]) -> Vec<&[u8]> {
    let s = &s[..memchr::memchr(0, s).unwrap_or(s.len())];
    s.split(|&b| b == b' ').filter(|t| !t.is_empty()).collect()
}

/// C's `isspace` in the C locale.
fn c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// memcached's `safe_strtoul`: C `strtoul` (leading white space, a sign, decimal digits,
/// wrapping negation for `-`), then white space or the end; a value negative as a signed
/// long with a `-` is refused; the result is truncated to 32 bits, as memcached stores it.
fn safe_strtoul(token: &[u8]) -> Option<u32> {
    let mut i = token.iter().take_while(|&&b| c_space(b)).count();
    let negative = token.get(i) == Some(&b'-');
    if matches!(token.get(i), Some(b'+' | b'-')) {
        i += 1;
    }
    let digits = token[i..].iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let mut value: u64 = 0;
    for &d in &token[i..i + digits] {
        // Overflow is strtoul's ERANGE, which memcached refuses.
        value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    let end = i + digits;
    if end < token.len() && !c_space(token[end]) {
        return None;
    }
    let value = if negative {
        value.wrapping_neg()
    } else {
        value
    };
    if (value as i64) < 0 && token[..end].contains(&b'-') {
        return None;
    }
    Some(value as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the dialogue over `input` fed in `chunk`-byte pieces, as a connection would;
    /// returns what it wrote (attempts shown as `<user:password>`) and whether it closed.
    fn run(input: &[u8], chunk: usize) -> (Vec<u8>, bool) {
        let mut pre = PreAuth::default();
        let (mut buf, mut out) = (Vec::new(), Vec::new());
        for piece in input.chunks(chunk.max(1)) {
            buf.extend_from_slice(piece);
            loop {
                match pre.step(&buf) {
                    Step::More => break,
                    Step::Reply { consumed, reply } => {
                        out.extend_from_slice(reply);
                        buf.drain(..consumed);
                    }
                    Step::Attempt {
                        consumed,
                        user,
                        password,
                    } => {
                        out.extend_from_slice(&[b"<", user, b":", password, b">"].concat());
                        buf.drain(..consumed);
                    }
                    Step::Close | Step::CrossProtocol => return (out, true),
                }
            }
        }
        (out, false)
    }

    #[test]
    fn memcacheds_measured_answers() {
        // Each answer measured on memcached 1.6.18 started with -Y (the differential test
        // in tests/auth.rs compares the live server too).
        let u = "CLIENT_ERROR unauthenticated\r\n";
        for (input, want, closed) in [
            (
                &b"version\r\nquit\r\nget a\r\nmn\r\n\r\n"[..],
                u.repeat(5),
                false,
            ),
            (
                b"set a 0 0 12\r\nalice s3cret\r\n",
                "<alice:s3cret>".into(),
                false,
            ),
            (
                b"set a 0 0 12\nalice s3cret\r\n",
                "<alice:s3cret>".into(),
                false,
            ),
            (
                b" set  a b c +16 x y\r\n alice  s3cret x\r\n",
                "<alice:s3cret>".into(),
                false,
            ),
            (
                b"set a 0 0 14\r\nalice s3cret x\r\n",
                "<alice:s3cret>".into(),
                false,
            ),
            (
                b"set a 0 0 5\r\nalice\r\n",
                "CLIENT_ERROR bad authentication token format\r\n".into(),
                false,
            ),
            (
                b"set a 0 0 12\r\nalice\ts3cret\r\n",
                "CLIENT_ERROR bad authentication token format\r\n".into(),
                false,
            ),
            (
                b"set a 0 0 12\r\nalice s3cretXX",
                "CLIENT_ERROR bad command line termination\r\n".into(),
                false,
            ),
            (
                b"set a 0 0 1\r\n\r\n\r\n",
                "CLIENT_ERROR bad command line termination\r\n".into(),
                false,
            ),
            (
                b"set a 0 0\r\nset a 0 0 x\r\nset a 0 0 -1\r\nset a 0 0 12x\r\n",
                u.repeat(4),
                false,
            ),
            (b"set\ta 0 0 12\r\nadd a 0 0 12\r\n", u.repeat(2), false),
            (
                b"set a 0 0 0\r\n\r\n",
                "CLIENT_ERROR bad authentication token format\r\n".into(),
                false,
            ),
            (
                b"set a 0 0 12\r\nal\0ce s3cret\r\n",
                "CLIENT_ERROR bad authentication token format\r\n".into(),
                false,
            ),
            (&[b'x'; 2048], String::new(), false),
            (&[b'x'; 2049], String::new(), true),
            (b"set a 0 0 4097\r\n", String::new(), true),
            (b"POST / HTTP/1.1\r\n", String::new(), true),
        ] {
            for chunk in [1, 2, 3, 7, 64, 4096] {
                let (out, was_closed) = run(input, chunk);
                assert_eq!(
                    (String::from_utf8_lossy(&out).into_owned(), was_closed),
                    (want.clone(), closed),
                    "{} in {chunk}-byte pieces",
                    input.escape_ascii()
                );
            }
        }
    }

    #[test]
    fn strtoul_as_memcached_reads_it() {
        for (token, want) in [
            (&b"12"[..], Some(12)),
            (b"012", Some(12)),
            (b"+12", Some(12)),
            (b"12\r", Some(12)),
            (b"\t12", Some(12)),
            (b"-0", Some(0)),
            (b"4294967296", Some(0)),
            (b"-1", None),
            (b"-", None),
            (b"+", None),
            (b"", None),
            (b"12x", None),
            (b"18446744073709551616", None),
        ] {
            assert_eq!(safe_strtoul(token), want, "{}", token.escape_ascii());
        }
    }
}
