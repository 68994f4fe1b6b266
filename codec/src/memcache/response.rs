//! Replies a server sends: the [`Response`] enum, its encoder, and the client-side parser.

use thiserror::Error;

use super::number::{parse_u32, parse_u64, push_u64};

/// One reply line (with its data block, for values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response<'a> {
    /// `STORED`
    Stored,
    /// `NOT_STORED`
    NotStored,
    /// `EXISTS`
    Exists,
    /// `NOT_FOUND`
    NotFound,
    /// `DELETED`
    Deleted,
    /// `TOUCHED`
    Touched,
    /// `OK`
    Ok,
    /// `END`: the end of a retrieval or of a stats listing.
    End,
    /// `RESET`: the answer to `stats reset`.
    Reset,
    /// `VALUE <key> <flags> <bytes> [<cas>]` and the data block.
    Value {
        /// The key.
        key: &'a [u8],
        /// Client flags.
        flags: u32,
        /// The value.
        data: &'a [u8],
        /// The cas unique, for `gets`/`gats`.
        cas: Option<u64>,
    },
    /// The new value after `incr`/`decr`.
    Number(u64),
    /// `VERSION <text>`
    Version(&'a [u8]),
    /// `STAT <name> <value>`
    Stat {
        /// Counter name.
        name: &'a [u8],
        /// Its value as text.
        value: &'a [u8],
    },
    /// `ERROR`: unknown command.
    Error,
    /// `CLIENT_ERROR <message>`
    ClientError(&'a [u8]),
    /// `SERVER_ERROR <message>`
    ServerError(&'a [u8]),
    /// A meta status line without a value: `HD`, `NF`, `NS`, `EX`, `EN`, `MN`, with flags.
    Meta {
        /// The two-letter code.
        code: [u8; 2],
        /// The return flags as a raw space-separated run (may be empty).
        flags: &'a [u8],
    },
    /// `VA <len> <flags>*` and the data block.
    MetaValue {
        /// The value.
        data: &'a [u8],
        /// The return flags.
        flags: &'a [u8],
    },
    /// `ME <key> <info>`: the debug dump of `me`.
    MetaDebug(&'a [u8]),
}

/// Why no response came out of the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ResponseError {
    /// Not a whole response yet.
    #[error("incomplete response")]
    Incomplete,
    /// Bytes that are no memcached response.
    #[error("malformed response")]
    Malformed,
}

impl Response<'_> {
    /// Appends the wire form to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let simple: &[u8] = match self {
            Self::Stored => b"STORED",
            Self::NotStored => b"NOT_STORED",
            Self::Exists => b"EXISTS",
            Self::NotFound => b"NOT_FOUND",
            Self::Deleted => b"DELETED",
            Self::Touched => b"TOUCHED",
            Self::Ok => b"OK",
            Self::End => b"END",
            Self::Reset => b"RESET",
            Self::Error => b"ERROR",
            Self::Value {
                key,
                flags,
                data,
                cas,
            } => {
                out.extend_from_slice(b"VALUE ");
                out.extend_from_slice(key);
                out.push(b' ');
                push_u64(out, u64::from(*flags));
                out.push(b' ');
                push_u64(out, data.len() as u64);
                if let Some(cas) = cas {
                    out.push(b' ');
                    push_u64(out, *cas);
                }
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(data);
                b""
            }
            Self::Number(n) => {
                push_u64(out, *n);
                b""
            }
            Self::Version(v) => {
                out.extend_from_slice(b"VERSION ");
                out.extend_from_slice(v);
                b""
            }
            Self::Stat { name, value } => {
                out.extend_from_slice(b"STAT ");
                out.extend_from_slice(name);
                out.push(b' ');
                out.extend_from_slice(value);
                b""
            }
            Self::ClientError(m) => {
                out.extend_from_slice(b"CLIENT_ERROR ");
                out.extend_from_slice(m);
                b""
            }
            Self::ServerError(m) => {
                out.extend_from_slice(b"SERVER_ERROR ");
                out.extend_from_slice(m);
                b""
            }
            Self::Meta { code, flags } => {
                out.extend_from_slice(code);
                if !flags.is_empty() {
                    out.push(b' ');
                    out.extend_from_slice(flags);
                }
                b""
            }
            Self::MetaValue { data, flags } => {
                out.extend_from_slice(b"VA ");
                push_u64(out, data.len() as u64);
                if !flags.is_empty() {
                    out.push(b' ');
                    out.extend_from_slice(flags);
                }
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(data);
                b""
            }
            Self::MetaDebug(info) => {
                out.extend_from_slice(b"ME ");
                out.extend_from_slice(info);
                b""
            }
        };
        out.extend_from_slice(simple);
        out.extend_from_slice(b"\r\n");
    }
}

/// Parses the first response in `buf`, returning it and the bytes it used.
pub fn parse_response(buf: &[u8]) -> Result<(Response<'_>, usize), ResponseError> {
    let nl = memchr::memchr(b'\n', buf).ok_or(ResponseError::Incomplete)?;
    let line = buf[..nl]
        .strip_suffix(b"\r")
        .ok_or(ResponseError::Malformed)?;
    let line_len = nl + 1;
    let (word, rest) = match memchr::memchr(b' ', line) {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &b""[..]),
    };
    let simple = |r| Ok((r, line_len));
    match word {
        b"STORED" => simple(Response::Stored),
        b"NOT_STORED" => simple(Response::NotStored),
        b"EXISTS" => simple(Response::Exists),
        b"NOT_FOUND" => simple(Response::NotFound),
        b"DELETED" => simple(Response::Deleted),
        b"TOUCHED" => simple(Response::Touched),
        b"OK" => simple(Response::Ok),
        b"END" => simple(Response::End),
        b"RESET" => simple(Response::Reset),
        b"ERROR" => simple(Response::Error),
        b"VERSION" => simple(Response::Version(rest)),
        b"CLIENT_ERROR" => simple(Response::ClientError(rest)),
        b"SERVER_ERROR" => simple(Response::ServerError(rest)),
        b"ME" => simple(Response::MetaDebug(rest)),
        b"STAT" => {
            let i = memchr::memchr(b' ', rest).ok_or(ResponseError::Malformed)?;
            simple(Response::Stat {
                name: &rest[..i],
                value: &rest[i + 1..],
            })
        }
        b"HD" | b"NF" | b"NS" | b"EX" | b"EN" | b"MN" => simple(Response::Meta {
            code: [word[0], word[1]],
            flags: rest,
        }),
        b"VALUE" => {
            let mut parts = rest.split(|&b| b == b' ');
            let key = parts.next().ok_or(ResponseError::Malformed)?;
            let flags = parts.next().and_then(parse_u32);
            let len = parts.next().and_then(parse_u64);
            let cas = parts.next().map(parse_u64);
            let (Some(flags), Some(len)) = (flags, len) else {
                return Err(ResponseError::Malformed);
            };
            let cas = match cas {
                None => None,
                Some(Some(c)) => Some(c),
                Some(None) => return Err(ResponseError::Malformed),
            };
            let (data, used) = value_block(buf, line_len, len)?;
            Ok((
                Response::Value {
                    key,
                    flags,
                    data,
                    cas,
                },
                used,
            ))
        }
        b"VA" => {
            let (len, flags) = match memchr::memchr(b' ', rest) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &b""[..]),
            };
            let len = parse_u64(len).ok_or(ResponseError::Malformed)?;
            let (data, used) = value_block(buf, line_len, len)?;
            Ok((Response::MetaValue { data, flags }, used))
        }
        _ if !word.is_empty() && word.iter().all(u8::is_ascii_digit) && rest.is_empty() => {
            let n = parse_u64(word).ok_or(ResponseError::Malformed)?;
            simple(Response::Number(n))
        }
        _ => Err(ResponseError::Malformed),
    }
}

fn value_block(buf: &[u8], line_len: usize, len: u64) -> Result<(&[u8], usize), ResponseError> {
    let len = usize::try_from(len).map_err(|_| ResponseError::Malformed)?;
    let total = line_len
        .checked_add(len)
        .and_then(|t| t.checked_add(2))
        .ok_or(ResponseError::Malformed)?;
    if buf.len() < total {
        return Err(ResponseError::Incomplete);
    }
    if &buf[total - 2..total] != b"\r\n" {
        return Err(ResponseError::Malformed);
    }
    Ok((&buf[line_len..line_len + len], total))
}
