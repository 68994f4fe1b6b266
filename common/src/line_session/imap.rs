//! IMAP's framing for the driver: commands through codec's resumable parser (literals
//! included), `+` go-aheads, tagged `BAD`, and `* BYE` last words.

use codec::imap::{continuation, tagged, untagged, Command, Limits, ParseError, Parser, Status};

use super::{Decoded, Dialect, Farewell};

/// IMAP commands, each made owned by `own` before the buffer moves on.
#[derive(Debug)]
pub struct Imap<C> {
    parser: Parser,
    limits: Limits,
    prompt: &'static str,
    own: fn(&Command<'_>) -> C,
}

impl<C> Imap<C> {
    /// A dialect parsing within `limits`, answering synchronizing literals with `+ prompt`
    /// and keeping each command as `own` makes it.
    pub fn new(limits: Limits, prompt: &'static str, own: fn(&Command<'_>) -> C) -> Self {
        Self {
            parser: Parser::new(limits),
            limits,
            prompt,
            own,
        }
    }
}

impl<C> Dialect for Imap<C> {
    type Command = C;

    fn decode(&mut self, buf: &[u8]) -> Decoded<C> {
        match self.parser.parse(buf) {
            Ok((command, consumed)) => Decoded::Command {
                command: (self.own)(&command),
                consumed,
            },
            Err(ParseError::Incomplete) => Decoded::Incomplete,
            Err(ParseError::NeedsLiteral { .. }) => Decoded::Prompt,
            Err(ParseError::Bad {
                tag,
                message,
                consumed,
            }) => Decoded::Bad {
                tag,
                message,
                consumed,
            },
            Err(ParseError::Discard { consumed }) => Decoded::Skip { consumed },
            Err(ParseError::Fatal { message, .. }) => Decoded::Fatal { message },
        }
    }

    fn prompt(&self, out: &mut Vec<u8>) {
        continuation(out, self.prompt);
    }

    fn bad(&self, out: &mut Vec<u8>, tag: Option<&[u8]>, message: &str) {
        match tag {
            Some(t) => tagged(out, t, Status::Bad, None, message),
            None => untagged(out, &format!("BAD {message}")),
        }
    }

    fn farewell(&self, out: &mut Vec<u8>, why: Farewell) {
        let text = match why {
            Farewell::TimedOut => "BYE Autologout; idle for too long",
            Farewell::Deadline => "BYE Autologout; login took too long",
            Farewell::ShuttingDown => "BYE Server shutting down",
            Farewell::TooManyBad => "BYE Too many invalid commands",
            Farewell::TooManyFailures => "BYE Too many failed logins",
            Farewell::Fatal(message) => return untagged(out, &format!("BYE {message}")),
        };
        untagged(out, text);
    }

    fn reset(&mut self) {
        self.parser = Parser::new(self.limits);
    }
}
