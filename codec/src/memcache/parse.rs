//! The server side of the text protocol: bytes in, one [`Request`] (or a precise error) out.
//!
//! The parser is resumable by construction: it never keeps state between calls. Given the
//! bytes buffered so far it returns a complete request and how many bytes it used, or
//! [`ParseError::Incomplete`]; the caller keeps the bytes and calls again after the next
//! read. Re-scanning is bounded because a command line is at most [`Limits::max_line`]
//! bytes (a data block is located by its announced length, never scanned).

use thiserror::Error;

use super::number::{read_i32, read_u32, read_u64};
use super::parse_meta;
use super::request::{Keys, Request, StoreCommand};
use super::tokens::Tokens;
use super::valid_key;

/// Size bounds on what one request may make the server buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest command line of anything but a retrieval, newline included.
    pub max_line: usize,
    /// Longest `get`/`gets`/`gat`/`gats` line: multi-gets of thousands of keys are normal.
    pub max_get_line: usize,
    /// Largest item, counted as memcached counts it (see [`item_size`]).
    pub max_item_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_line: 2048,
            max_get_line: 1 << 20,
            max_item_size: 1 << 20,
        }
    }
}

/// memcached's per-item header (48 bytes plus the 8-byte cas), which its `-I` limit counts.
const ITEM_HEADER: usize = 56;

/// The size memcached 1.6 charges an item against its item size limit: header, key and its
/// terminator, value and its CRLF. A 1,048,476-byte value under a 3-byte key fits in 1 MiB;
/// a 1,048,576-byte value does not, exactly as measured on memcached 1.6.18.
pub fn item_size(key_len: usize, value_len: usize) -> usize {
    ITEM_HEADER + key_len + 1 + value_len + 2
}

/// A complete request and the bytes it occupied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// The request, borrowing from the input.
    pub request: Request<'a>,
    /// Bytes of input used (command line plus data block).
    pub consumed: usize,
    /// Bytes after `consumed` that belong to a refused data block and must be skipped,
    /// possibly before they have arrived (the too-large case).
    pub swallow: usize,
}

/// Why no request came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ParseError {
    /// Not a whole request yet; read more. `needed` is the total byte count the request will
    /// occupy when that is already known (a storage command waiting for its data block).
    #[error("incomplete request")]
    Incomplete {
        /// Total bytes needed from the start of the buffer, when known.
        needed: Option<usize>,
    },
    /// A malformed request: answer with `reply` (unless `noreply`), drop `consumed` bytes,
    /// then skip `swallow` more, and go on with the next request.
    #[error("{reply}")]
    Invalid {
        /// The full reply line, without CRLF (`ERROR`, `CLIENT_ERROR …`).
        reply: &'static str,
        /// Bytes to drop.
        consumed: usize,
        /// Bytes of a data block to skip after them.
        swallow: usize,
        /// The command asked for no reply, and memcached honours that even for errors.
        noreply: bool,
    },
    /// A command line longer than the limits allow: answer and close the connection.
    #[error("line too long")]
    LineTooLong,
    /// The binary protocol's request magic: not spoken here, close the connection.
    #[error("binary protocol request")]
    Binary,
}

pub(super) const BAD_FORMAT: &str = "CLIENT_ERROR bad command line format";
const BAD_CHUNK: &str = "CLIENT_ERROR bad data chunk";
const BAD_EXPTIME: &str = "CLIENT_ERROR invalid exptime argument";

/// Largest data length memcached takes (`INT_MAX - 2`, leaving room for the CRLF); a
/// larger or negative one is a format error, the data block then read as commands.
const MAX_DATA_LEN: i32 = i32::MAX - 2;

/// A data length token as memcached reads it, within `0..=MAX_DATA_LEN`.
pub(super) fn data_len(token: &[u8]) -> Option<usize> {
    read_i32(token)
        .filter(|v| (0..=MAX_DATA_LEN).contains(v))
        .map(|v| v as usize)
}

fn is_retrieval(line: &[u8]) -> bool {
    let start = line.iter().take(100).take_while(|&&b| b == b' ').count();
    let s = &line[start..];
    s.starts_with(b"get ")
        || s.starts_with(b"gets ")
        || s.starts_with(b"gat ")
        || s.starts_with(b"gats ")
}

/// Parses the first request in `buf`.
pub fn parse_request<'a>(buf: &'a [u8], limits: &Limits) -> Result<Parsed<'a>, ParseError> {
    let Some(&first) = buf.first() else {
        return Err(ParseError::Incomplete { needed: None });
    };
    if first == 0x80 {
        return Err(ParseError::Binary);
    }
    let Some(nl) = memchr::memchr(b'\n', buf) else {
        let limit = if is_retrieval(buf) {
            limits.max_get_line
        } else {
            limits.max_line
        };
        return if buf.len() >= limit {
            Err(ParseError::LineTooLong)
        } else {
            Err(ParseError::Incomplete { needed: None })
        };
    };
    let line_len = nl + 1;
    let line = &buf[..nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line_len > limits.max_line && (line_len > limits.max_get_line || !is_retrieval(line)) {
        return Err(ParseError::LineTooLong);
    }
    let tokens = Tokens::new(line);
    let invalid = |reply, noreply| ParseError::Invalid {
        reply,
        consumed: line_len,
        swallow: 0,
        noreply,
    };
    let error = invalid("ERROR", false);
    if tokens.len == 0 {
        return Err(error);
    }
    let done = |request| {
        Ok(Parsed {
            request,
            consumed: line_len,
            swallow: 0,
        })
    };
    let n = tokens.len;
    let noreply = tokens.last() == b"noreply";
    match tokens.get(0) {
        cmd @ (b"get" | b"gets" | b"gat" | b"gats") => {
            let touch = cmd.starts_with(b"gat");
            let first_key = if touch { 2 } else { 1 };
            // `get` without keys is an unknown command to memcached, while `gat <exptime>`
            // without keys is an empty retrieval (`END`).
            if n < 2 || (!touch && n <= first_key) {
                return Err(error);
            }
            let exptime = if touch {
                read_i32(tokens.get(1)).ok_or(invalid(BAD_EXPTIME, false))?
            } else {
                0
            };
            let keys = Keys::new(tokens.rest(first_key));
            if !keys.iter().all(valid_key) {
                return Err(invalid(BAD_FORMAT, false));
            }
            let with_cas = cmd.ends_with(b"s");
            done(if touch {
                Request::GetAndTouch {
                    exptime: i64::from(exptime),
                    keys,
                    with_cas,
                }
            } else {
                Request::Get { keys, with_cas }
            })
        }
        name @ (b"set" | b"add" | b"replace" | b"append" | b"prepend" | b"cas") => {
            let command = StoreCommand::from_name(name).expect("matched above");
            let base = if command == StoreCommand::Cas { 6 } else { 5 };
            if tokens.overflow || (n != base && n != base + 1) {
                return Err(error);
            }
            let key = tokens.get(1);
            // A refused line is all memcached reads: the data block that follows is
            // then read as commands (usually `ERROR`).
            let fields = (
                read_u32(tokens.get(2)),
                read_i32(tokens.get(3)),
                data_len(tokens.get(4)),
            );
            let (Some(flags), Some(exptime), Some(vlen)) = fields else {
                return Err(invalid(BAD_FORMAT, noreply));
            };
            let exptime = i64::from(exptime);
            let cas_unique = if command == StoreCommand::Cas {
                read_u64(tokens.get(5)).ok_or(invalid(BAD_FORMAT, noreply))?
            } else {
                0
            };
            if !valid_key(key) {
                return Err(invalid(BAD_FORMAT, noreply));
            }
            if item_size(key.len(), vlen) > limits.max_item_size {
                return Ok(Parsed {
                    request: Request::StoreTooLarge {
                        command,
                        key,
                        noreply,
                    },
                    consumed: line_len,
                    swallow: vlen + 2,
                });
            }
            let (data, consumed) = data_block(buf, line_len, vlen).map_err(|e| match e {
                ParseError::Invalid { consumed, .. } => ParseError::Invalid {
                    reply: BAD_CHUNK,
                    consumed,
                    swallow: 0,
                    noreply,
                },
                e => e,
            })?;
            Ok(Parsed {
                request: Request::Store {
                    command,
                    key,
                    flags,
                    exptime,
                    data,
                    cas_unique,
                    noreply,
                },
                consumed,
                swallow: 0,
            })
        }
        b"delete" => {
            if !(2..=4).contains(&n) {
                return Err(error);
            }
            // As in memcached, `noreply` (and the legacy hold time) is only looked for after
            // the key: a lone `delete noreply` deletes the key "noreply" and is answered. The
            // usage check also comes before the key check, as there.
            let noreply = n > 2 && noreply;
            let hold_zero = n > 2 && tokens.get(2) == b"0";
            let valid =
                n == 2 || (n == 3 && (hold_zero || noreply)) || (n == 4 && hold_zero && noreply);
            if !valid {
                return Err(invalid(
                    "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]",
                    noreply,
                ));
            }
            let key = tokens.get(1);
            if !valid_key(key) {
                return Err(invalid(BAD_FORMAT, noreply));
            }
            done(Request::Delete { key, noreply })
        }
        cmd @ (b"incr" | b"decr") => {
            if n != 3 && n != 4 {
                return Err(error);
            }
            let key = tokens.get(1);
            if !valid_key(key) {
                return Err(invalid(BAD_FORMAT, noreply));
            }
            let delta = read_u64(tokens.get(2)).ok_or(invalid(
                "CLIENT_ERROR invalid numeric delta argument",
                noreply,
            ))?;
            done(Request::Arithmetic {
                key,
                delta,
                decrement: cmd == b"decr",
                noreply,
            })
        }
        b"touch" => {
            if n != 3 && n != 4 {
                return Err(error);
            }
            let key = tokens.get(1);
            if !valid_key(key) {
                return Err(invalid(BAD_FORMAT, noreply));
            }
            let exptime = read_i32(tokens.get(2)).ok_or(invalid(BAD_EXPTIME, noreply))?;
            done(Request::Touch {
                key,
                exptime: i64::from(exptime),
                noreply,
            })
        }
        b"flush_all" => {
            if n > 3 {
                return Err(error);
            }
            let delay = if n == if noreply { 2 } else { 1 } {
                0
            } else {
                read_i32(tokens.get(1)).ok_or(invalid(BAD_EXPTIME, noreply))?
            };
            done(Request::FlushAll {
                delay: i64::from(delay),
                noreply,
            })
        }
        b"version" => done(Request::Version),
        b"verbosity" => {
            if n != 2 && n != 3 {
                return Err(error);
            }
            let level = read_u32(tokens.get(1)).ok_or(invalid(BAD_FORMAT, noreply))?;
            done(Request::Verbosity { level, noreply })
        }
        b"stats" => done(Request::Stats {
            group: (n > 1).then(|| tokens.rest(1)),
        }),
        b"quit" => done(Request::Quit),
        b"shutdown" => done(Request::Shutdown),
        b"mn" | b"mg" | b"ms" | b"md" | b"ma" | b"me" => {
            parse_meta::parse(buf, line_len, &tokens, limits)
        }
        _ => Err(error),
    }
}

/// Locates the `vlen`-byte data block after the command line and checks its CRLF.
pub(super) fn data_block(
    buf: &[u8],
    line_len: usize,
    vlen: usize,
) -> Result<(&[u8], usize), ParseError> {
    let total = line_len + vlen + 2;
    if buf.len() < total {
        return Err(ParseError::Incomplete {
            needed: Some(total),
        });
    }
    if &buf[line_len + vlen..total] != b"\r\n" {
        return Err(ParseError::Invalid {
            reply: BAD_CHUNK,
            consumed: total,
            swallow: 0,
            noreply: false,
        });
    }
    Ok((&buf[line_len..line_len + vlen], total))
}
