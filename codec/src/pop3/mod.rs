//! POP3 (RFC 1939, with CAPA from RFC 2449, STLS from RFC 2595 and AUTH from RFC 5034),
//! both sides: a server parses [`Command`]s and writes responses, a client (the proxy's
//! backend leg, test clients) encodes commands and parses status lines and multi-line
//! blocks. Zimbra's `XOIP` and Dovecot's `XCLIENT` are parsed too, so a backend can learn
//! the real client address from a proxy.
//!
//! # Layout
//! - `command`: the [`Command`] enum, its encoder and [`xclient_params`].
//! - `parser`: the server-side line framing and command parser with its [`Limits`],
//!   [`Parsed`] and [`ParseError`], plus [`parse_line`] for SASL continuation lines.
//! - `response`: the response writers (`+OK`, `-ERR`, `+ ` continuations, dot-stuffed
//!   multi-line blocks) and the client-side [`parse_status_line`] and [`parse_multiline`].
//! - [`client`]: the client side a proxy needs toward a mailbox server: checked encoders
//!   for `USER`, `PASS`, `AUTH PLAIN` and `XCLIENT`, and a response parser that reads the
//!   RFC 2449/3206 code (`-ERR [SYS/TEMP]`) of a status line.
//!
//! # Framing rules
//! - A line ends in CRLF; a bare LF is accepted as well (one CR before it is dropped), so
//!   `telnet`-style clients work. A CR anywhere else in a command line, or a NUL anywhere,
//!   makes it invalid: some servers end a line at a bare CR or a C string at a NUL, so letting
//!   one through would let a client smuggle a second command past a proxy that replays its
//!   arguments. [`parse_line`] (SASL data) returns such bytes raw; its caller decodes them.
//! - [`Limits::max_line`] counts the whole line including its line end (as RFC 2449's 255
//!   octets do) and defaults to 1024: room for long `AUTH` initial responses and `XCLIENT`
//!   lines, and a bound on how much a silent client can make the server buffer.
//! - **Discard contract.** [`ParseError::LineTooLong`] is returned as soon as `max_line`
//!   bytes are buffered without a line end. The caller answers (`-ERR line too long`, or
//!   closes), then drops input up to and including the next LF: [`skip_line`] says how many
//!   bytes that is, or `None` when no LF has arrived yet, in which case the caller drops
//!   everything buffered and keeps discarding after each read until [`skip_line`] finds one.
//!   The same applies to [`parse_line`].
//! - Keywords are case-insensitive; arguments are raw bytes, never decoded or case-folded.

pub mod client;
mod command;
mod parser;
mod response;

pub use command::{xclient_params, Command};
pub use parser::{parse_command, parse_line, skip_line, Limits, ParseError, Parsed};
pub use response::{
    continuation, dot_stuff, dot_stuff_top, err, multiline_end, multiline_line, multiline_start,
    ok, parse_multiline, parse_status_line, response_code, ResponseError, Status,
};
