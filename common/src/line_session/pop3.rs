//! POP3's framing for the driver: one command a line (an over-long line is answered once
//! and the rest of it dropped), `-ERR` answers and last words.

use codec::pop3::{err, parse_command, skip_line, Command, Limits, ParseError};

use super::{Decoded, Dialect, Farewell};

/// POP3 commands, each made owned by `own` before the buffer moves on.
#[derive(Debug)]
pub struct Pop3<C> {
    limits: Limits,
    own: fn(&Command<'_>) -> C,
    /// The rest of an over-long line is being dropped.
    discarding: bool,
}

impl<C> Pop3<C> {
    /// A dialect parsing within `limits`, keeping each command as `own` makes it.
    pub fn new(limits: Limits, own: fn(&Command<'_>) -> C) -> Self {
        Self {
            limits,
            own,
            discarding: false,
        }
    }
}

impl<C> Dialect for Pop3<C> {
    type Command = C;

    fn decode(&mut self, buf: &[u8]) -> Decoded<C> {
        if self.discarding {
            return match skip_line(buf) {
                Some(consumed) => {
                    self.discarding = false;
                    Decoded::Skip { consumed }
                }
                None if buf.is_empty() => Decoded::Incomplete,
                None => Decoded::Skip {
                    consumed: buf.len(),
                },
            };
        }
        match parse_command(buf, &self.limits) {
            Ok(parsed) => Decoded::Command {
                command: (self.own)(&parsed.command),
                consumed: parsed.consumed,
            },
            Err(ParseError::Incomplete) => Decoded::Incomplete,
            Err(ParseError::LineTooLong) => {
                self.discarding = true;
                Decoded::Bad {
                    tag: None,
                    message: "line too long",
                    consumed: 0,
                }
            }
            Err(ParseError::Invalid { consumed, reason }) => Decoded::Bad {
                tag: None,
                message: reason,
                consumed,
            },
        }
    }

    fn prompt(&self, out: &mut Vec<u8>) {
        // POP3 has no literals; a go-ahead is never asked for.
        codec::pop3::continuation(out, "");
    }

    fn bad(&self, out: &mut Vec<u8>, _tag: Option<&[u8]>, message: &str) {
        err(out, message);
    }

    fn farewell(&self, out: &mut Vec<u8>, why: Farewell) {
        let text = match why {
            Farewell::TimedOut => "Timeout, closing connection",
            Farewell::Deadline => "Login took too long, closing connection",
            Farewell::ShuttingDown => "Server shutting down",
            Farewell::TooManyBad => "Too many invalid commands, closing connection",
            Farewell::TooManyFailures => "Too many failed logins, closing connection",
            Farewell::Fatal(message) => message,
        };
        err(out, text);
    }

    fn reset(&mut self) {
        self.discarding = false;
    }
}
