//! IMAP4rev1 (RFC 3501) with LITERAL+ (RFC 7888), both sides of the wire.
//!
//! # Layout
//! - `parser`: the resumable command parser. It frames a command across any split of the
//!   input (literals included), says when a synchronizing literal needs a `+`
//!   continuation, enforces [`Limits`], and keeps the tag in every error so the reply can
//!   be a tagged `BAD`.
//! - `command`: the parsed [`Command`] and its [`Arg`] tree, plus sequence sets.
//! - `response`: encoders for tagged/untagged/continuation responses and for strings
//!   (atom, quoted or literal, whichever the bytes need).
//! - [`client`]: the client side a proxy needs toward a mailbox server: ID forwarding,
//!   LOGIN (atoms, quoted strings or literals, synchronizing or LITERAL+; the pieces say
//!   where the server's `+` is awaited), AUTHENTICATE PLAIN with or without SASL-IR, and a
//!   resumable, bounded server-response parser (greeting capabilities, tagged and untagged
//!   status with codes, data with literals, continuations).

pub mod client;
mod command;
mod parser;
mod response;

pub use command::{Arg, Command, SeqRange, SequenceSet};
pub use parser::{parse_line, Limits, ParseError, Parser};
pub use response::{astring, continuation, nstring, quoted, string, tagged, untagged, Status};
