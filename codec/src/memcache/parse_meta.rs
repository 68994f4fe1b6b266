//! The meta commands' request lines (`mg ms md ma me mn`), refused in memcached 1.6.18's
//! order with its texts (`proto_text.c`, `process_m*_command`):
//!
//! 1. fewer than two tokens: `ERROR` (`me`: a format error);
//! 2. a key over 250 bytes (or with control bytes, refused here by design): a format error;
//! 3. 20 tokens or more: `options flags are too long` (`mg`) or `options flags too long`;
//! 4. `ms`: the data length, then flags, mode and opaque, each refusal after the length
//!    skipping the data block (length + 2 bytes, whatever they hold);
//! 5. the flags ([`MetaFlags::parse_checked`]), with a `b` key decoded from base64 where
//!    the `b` token stands; `md` and `ma` answer every flag error `invalid or duplicate flag`.
//!
//! A too-long opaque is refused here for `md` (before it acts) and `ms`; `mg` and `ma`
//! refuse it while answering, after memcached's side effects (see cache-node).

use super::key::MetaKey;
use super::meta::MetaFlags;
use super::parse::{data_block, data_len, item_size, Limits, ParseError, Parsed, BAD_FORMAT};
use super::request::Request;
use super::tokens::Tokens;
use super::valid_key;

/// Token count (command and key included) from which memcached refuses a meta command.
const MAX_META_TOKENS: usize = 20;
const MD_MA_FLAG_ERROR: &str = "CLIENT_ERROR invalid or duplicate flag";
const OPAQUE_TOO_LONG: &str = "CLIENT_ERROR opaque token too long";

/// Parses a meta command whose line (of `line_len` bytes, newline included) is `tokens`.
pub(super) fn parse<'a>(
    buf: &'a [u8],
    line_len: usize,
    tokens: &Tokens<'a>,
    limits: &Limits,
) -> Result<Parsed<'a>, ParseError> {
    let refuse = |reply, swallow| ParseError::Invalid {
        reply,
        consumed: line_len,
        swallow,
        noreply: false,
    };
    let done = |request| {
        Ok(Parsed {
            request,
            consumed: line_len,
            swallow: 0,
        })
    };
    let cmd = tokens.get(0);
    if cmd == b"mn" {
        return done(Request::MetaNoop);
    }
    if tokens.len < 2 {
        return Err(refuse(if cmd == b"me" { BAD_FORMAT } else { "ERROR" }, 0));
    }
    let text = tokens.get(1);
    if !valid_key(text) {
        return Err(refuse(BAD_FORMAT, 0));
    }
    if cmd == b"me" {
        // Only a `b` right after the key counts; anything else after it is ignored.
        let key = if tokens.get(2) == b"b" {
            MetaKey::decode(text).ok_or(refuse(BAD_FORMAT, 0))?
        } else {
            MetaKey::text(text)
        };
        return done(Request::MetaDebug { key });
    }
    if cmd == b"ms" && tokens.len == 2 {
        return Err(refuse(BAD_FORMAT, 0));
    }
    if tokens.len >= MAX_META_TOKENS {
        let reply = if cmd == b"mg" {
            "CLIENT_ERROR options flags are too long"
        } else {
            "CLIENT_ERROR options flags too long"
        };
        return Err(refuse(reply, 0));
    }
    let mut key = MetaKey::text(text);
    let decode = || match MetaKey::decode(text) {
        Some(decoded) => {
            key = decoded;
            true
        }
        None => false,
    };
    if cmd == b"ms" {
        let vlen = data_len(tokens.get(2)).ok_or(refuse(BAD_FORMAT, 0))?;
        let swallow = vlen + 2;
        let flags =
            MetaFlags::parse_checked(tokens.rest(3), decode).map_err(|e| refuse(e, swallow))?;
        // memcached looks at the mode after the opaque, but names the mode first.
        flags.set_mode().map_err(|e| refuse(e, swallow))?;
        if flags.iter().any(|f| f.opaque_too_long()) {
            return Err(refuse(OPAQUE_TOO_LONG, swallow));
        }
        if item_size(key.as_bytes().len(), vlen) > limits.max_item_size {
            return Ok(Parsed {
                request: Request::MetaSetTooLarge { key, flags },
                consumed: line_len,
                swallow,
            });
        }
        let (data, consumed) = data_block(buf, line_len, vlen)?;
        return Ok(Parsed {
            request: Request::MetaSet { key, data, flags },
            consumed,
            swallow: 0,
        });
    }
    let flags = MetaFlags::parse_checked(tokens.rest(2), decode)
        .map_err(|e| refuse(if cmd == b"mg" { e } else { MD_MA_FLAG_ERROR }, 0))?;
    match cmd {
        b"mg" => done(Request::MetaGet { key, flags }),
        b"md" => {
            if flags.iter().any(|f| f.opaque_too_long()) {
                return Err(refuse(OPAQUE_TOO_LONG, 0));
            }
            done(Request::MetaDelete { key, flags })
        }
        _ => done(Request::MetaArithmetic { key, flags }),
    }
}
