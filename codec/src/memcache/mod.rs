//! The memcached 1.6 text protocol: classic storage/retrieval commands and meta commands.
//!
//! # Layout
//! - `request`: the [`Request`] enum (client → server) and its encoder.
//! - `auth`: memcached's ASCII authentication (`-Y`): the `user:password` file and the
//!   client's authenticating `set`.
//! - `parse`: the server-side request parser with its [`Limits`] and [`ParseError`];
//!   `parse_meta` parses the meta commands' lines, `tokens` splits a line as memcached does.
//! - `meta`: the flag tokens of meta commands (`mg`, `ms`, `md`, `ma`).
//! - `key`: a meta command's key, as sent or decoded from base64 (the `b` flag).
//! - `base64`: memcached's lenient base64 decoder and the padded encoder, for `b` keys.
//! - `response`: the [`Response`] enum (server → client), its encoder and a client-side parser.
//! - `ketama`: libmemcached-compatible consistent hashing of keys onto nodes.
//! - `number`: decimal numbers: strict reading of replies, memcached's `strtoul`-style
//!   reading of request tokens, formatting.
//!
//! The wire rules come from memcached's `protocol.txt` and from measuring memcached 1.6.18:
//! lines end in `\n` (an optional `\r` before it is dropped), tokens are separated by runs of
//! spaces, command names are case sensitive, keys are at most 250 bytes.

mod auth;
mod base64;
mod ketama;
mod key;
mod meta;
mod number;
mod parse;
mod parse_meta;
mod request;
mod response;
mod tokens;

pub use auth::{
    auth_reply, parse_auth_file, AuthFileError, AuthReply, Credentials, CredentialsError,
    MAX_AUTH_ENTRIES, MAX_AUTH_LINE,
};
pub use ketama::{Node as KetamaNode, Ring as KetamaRing};
pub use key::{MetaKey, MAX_BINARY_KEY_LEN};
pub use meta::{MetaFlag, MetaFlags, MetaMode};
pub use number::{parse_i64, parse_u32, parse_u64, push_u64, read_i32, read_u32, read_u64};
pub use parse::{item_size, parse_request, Limits, ParseError, Parsed};
pub use request::{Keys, Request, StoreCommand};
pub use response::{parse_response, Response, ResponseError};

/// Longest key memcached accepts (`KEY_MAX_LENGTH`).
pub const MAX_KEY_LEN: usize = 250;

/// Whether `key` is a key memcached would store: 1..=250 bytes, no spaces or control bytes.
pub fn valid_key(key: &[u8]) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY_LEN && key.iter().all(|&b| b > b' ' && b != 0x7f)
}
