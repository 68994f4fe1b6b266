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
//!   LOGIN with literals, AUTHENTICATE PLAIN, and a resumable server-response parser.

pub mod client;
mod command;
mod parser;
mod response;

pub use command::{Arg, Command, SeqRange, SequenceSet};
pub use parser::{parse_line, Limits, ParseError, Parser};
pub use response::{astring, continuation, nstring, quoted, string, tagged, untagged, Status};
