//! The resumable IMAP command parser.
//!
//! A command is a line, or several lines joined by literals (`{n}` / `{n+}` at the end of
//! a line, then CRLF, then n raw bytes). [`Parser::parse`] first *frames* the command:
//! it walks the buffered bytes line by line and literal by literal, remembering how far
//! it got, so that each byte is looked at once however the input was split. Only a
//! complete frame is parsed into a [`Command`]. While a synchronizing literal's bytes are
//! missing it reports [`ParseError::NeedsLiteral`] once, so that the session sends the
//! `+` continuation the client waits for.

use std::borrow::Cow;

use memchr::memchr;
use thiserror::Error;

use super::command::{Arg, Command};

/// Bounds on what one command may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest line (one segment between literals), line end included.
    pub max_line: usize,
    /// Largest single literal.
    pub max_literal: usize,
    /// Largest whole command (lines and literals).
    pub max_command: usize,
    /// Deepest nesting of parenthesised lists.
    pub max_depth: usize,
    /// Most arguments in the whole command (list items included).
    pub max_args: usize,
    /// Longest tag.
    pub max_tag: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_line: 8192,
            max_literal: 16 * 1024 * 1024,
            max_command: 16 * 1024 * 1024 + 64 * 1024,
            max_depth: 8,
            max_args: 1024,
            max_tag: 64,
        }
    }
}

/// Why no command came out of the bytes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// Not a whole command yet; call again with more bytes.
    #[error("incomplete command")]
    Incomplete,
    /// A synchronizing literal of `size` bytes was announced: send a `+` continuation,
    /// then call again as bytes arrive (this is reported once per literal).
    #[error("literal of {size} bytes announced")]
    NeedsLiteral {
        /// The literal's size.
        size: usize,
    },
    /// A bad command: answer `<tag> BAD <message>` (or `* BAD` without a tag), drop
    /// `consumed` bytes and go on with the next command.
    #[error("bad command: {message}")]
    Bad {
        /// The command's tag, when it had a usable one.
        tag: Option<Vec<u8>>,
        /// What was wrong, fit for the client.
        message: &'static str,
        /// Bytes to drop from the buffer.
        consumed: usize,
    },
    /// The rest of an over-long line already answered with `Bad`: drop `consumed` bytes
    /// without replying.
    #[error("discarding the rest of a bad line")]
    Discard {
        /// Bytes to drop from the buffer.
        consumed: usize,
    },
    /// The stream cannot be resynchronised (a non-synchronizing literal over the limits
    /// is already on its way): answer `* BYE <message>` and close.
    #[error("fatal: {message}")]
    Fatal {
        /// The command's tag, when it had a usable one.
        tag: Option<Vec<u8>>,
        /// What was wrong.
        message: &'static str,
    },
}

/// A parser for one connection's stream of commands.
#[derive(Debug, Clone, Default)]
pub struct Parser {
    limits: Limits,
    /// Where framing continues: the start of the next line segment to examine.
    scanned: usize,
    /// End of a literal whose bytes have not all arrived.
    literal_end: Option<usize>,
    /// Whether the pending literal's continuation was already requested.
    announced: bool,
    /// Dropping an over-long line: skip input until the next LF.
    discarding: bool,
    /// An over-long line announced a LITERAL+: after its BAD, the stream is lost.
    fatal_next: bool,
    /// The last bytes of the line being discarded.
    tail: Vec<u8>,
}

fn is_atom_byte(b: u8) -> bool {
    b > b' ' && b != 0x7f && !matches!(b, b'(' | b')' | b'{' | b'"')
}

/// The tag at the start of `buf`, if it has a plausible one (for error replies).
fn tag_of(buf: &[u8], limits: &Limits) -> Option<Vec<u8>> {
    let end = buf.iter().position(|&b| !is_tag_byte(b))?;
    let tag = &buf[..end];
    (!tag.is_empty() && tag.len() <= limits.max_tag && buf[end] == b' ').then(|| tag.to_vec())
}

/// RFC 3501 `tag`: ASTRING-CHARs (atom characters or `]`) except `+`; list wildcards,
/// quotes and backslashes are not atom characters.
fn is_tag_byte(b: u8) -> bool {
    is_atom_byte(b) && !matches!(b, b'+' | b'%' | b'*' | b'\\' | b'[')
}

/// Whether a line ends in a non-synchronizing literal marker, whose bytes the client is
/// sending whatever we answer.
fn ends_in_nonsync_literal(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let tail = &line[line.len().saturating_sub(32)..];
    matches!(literal_marker(tail), Some(Ok((_, false))))
}

/// A literal marker `{n}` or `{n+}` at the end of `line` (line end already stripped).
fn literal_marker(line: &[u8]) -> Option<Result<(usize, bool), ()>> {
    let body = line.strip_suffix(b"}")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    let inner = &body[open + 1..];
    let (digits, sync) = match inner.strip_suffix(b"+") {
        Some(d) => (d, false),
        None => (inner, true),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        // Not a marker: `}` is an atom byte (`"{" x}`); the command parser judges the line.
        return None;
    }
    if digits.len() > 19 {
        return Some(Err(()));
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(usize::try_from(n).map(|n| (n, sync)).map_err(|_| ()))
}

impl Parser {
    /// A parser with `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn remember_tail(&mut self, bytes: &[u8]) {
        const KEEP: usize = 32;
        self.tail
            .extend_from_slice(&bytes[bytes.len().saturating_sub(KEEP)..]);
        let excess = self.tail.len().saturating_sub(KEEP);
        self.tail.drain(..excess);
    }

    fn reset(&mut self) {
        self.scanned = 0;
        self.literal_end = None;
        self.announced = false;
    }

    /// Parses the first command in `buf` (everything the connection has buffered and not
    /// yet consumed). Returns it with the number of bytes it used. After an error other
    /// than `Incomplete`/`NeedsLiteral`, the caller drops `consumed` bytes (for `Bad`).
    pub fn parse<'a>(&mut self, buf: &'a [u8]) -> Result<(Command<'a>, usize), ParseError> {
        if self.fatal_next {
            return Err(ParseError::Fatal {
                tag: None,
                message: "line too long",
            });
        }
        if self.discarding {
            // The rest of a line already answered with BAD: drop it silently, keeping its
            // last bytes to see whether it announced a LITERAL+.
            return match memchr(b'\n', buf) {
                Some(lf) => {
                    self.remember_tail(&buf[..lf]);
                    let nonsync = ends_in_nonsync_literal(&self.tail);
                    self.discarding = false;
                    self.tail.clear();
                    self.reset();
                    if nonsync {
                        // The literal's bytes are on their way and would be read as
                        // commands: the stream cannot be resynchronised.
                        return Err(ParseError::Fatal {
                            tag: None,
                            message: "line too long",
                        });
                    }
                    Err(ParseError::Discard { consumed: lf + 1 })
                }
                None if buf.is_empty() => Err(ParseError::Incomplete),
                None => {
                    self.remember_tail(buf);
                    Err(ParseError::Discard {
                        consumed: buf.len(),
                    })
                }
            };
        }
        loop {
            if let Some(end) = self.literal_end {
                if buf.len() < end {
                    return Err(ParseError::Incomplete);
                }
                self.scanned = end;
                self.literal_end = None;
                self.announced = false;
            }
            let start = self.scanned;
            let Some(rel) = memchr(b'\n', &buf[start..]) else {
                if buf.len() - start > self.limits.max_line {
                    // Drop what we have and the rest of this line when it comes. The
                    // buffer starts with the command, so the tag is there even when the
                    // line follows a literal (the client waits for that tag).
                    let tag = tag_of(buf, &self.limits);
                    self.reset();
                    self.discarding = true;
                    self.tail.clear();
                    self.remember_tail(buf);
                    return Err(ParseError::Bad {
                        tag,
                        message: "line too long",
                        consumed: buf.len(),
                    });
                }
                return Err(ParseError::Incomplete);
            };
            let lf = start + rel;
            if lf + 1 - start > self.limits.max_line {
                let tag = tag_of(buf, &self.limits);
                self.reset();
                // Answer BAD in any case; when the line announced a LITERAL+ the stream is
                // lost, and the next call says so (as it does when the line came in pieces).
                self.fatal_next = ends_in_nonsync_literal(&buf[start..lf]);
                return Err(ParseError::Bad {
                    tag,
                    message: "line too long",
                    consumed: lf + 1,
                });
            }
            let line = &buf[start..lf];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            match literal_marker(line) {
                None => {
                    self.reset();
                    return parse_frame(&buf[..lf + 1], &self.limits).map(|c| (c, lf + 1));
                }
                Some(Err(())) => {
                    let tag = tag_of(buf, &self.limits);
                    self.reset();
                    return Err(ParseError::Bad {
                        tag,
                        message: "invalid literal",
                        consumed: lf + 1,
                    });
                }
                Some(Ok((size, sync))) => {
                    let end = lf + 1 + size;
                    if size > self.limits.max_literal || end > self.limits.max_command {
                        let tag = tag_of(buf, &self.limits);
                        self.reset();
                        return Err(if sync {
                            // The client waits for our "+": refusing is enough.
                            ParseError::Bad {
                                tag,
                                message: "literal too big",
                                consumed: lf + 1,
                            }
                        } else {
                            ParseError::Fatal {
                                tag,
                                message: "literal too big",
                            }
                        });
                    }
                    self.literal_end = Some(end);
                    // An empty synchronizing literal still needs its `+`: the client
                    // waits for it before sending the rest of the command.
                    if buf.len() < end || (size == 0 && buf.len() == end) {
                        if sync && !self.announced {
                            self.announced = true;
                            return Err(ParseError::NeedsLiteral { size });
                        }
                        return Err(ParseError::Incomplete);
                    }
                }
            }
        }
    }
}

/// Reads one raw line (an AUTHENTICATE response, `DONE` after IDLE): the line without
/// its line end, and the bytes it used. Over `max` bytes without a line end is an error.
pub fn parse_line(buf: &[u8], max: usize) -> Result<(&[u8], usize), ParseError> {
    match memchr(b'\n', buf) {
        Some(lf) if lf < max => {
            let line = &buf[..lf];
            Ok((line.strip_suffix(b"\r").unwrap_or(line), lf + 1))
        }
        Some(lf) => Err(ParseError::Bad {
            tag: None,
            message: "line too long",
            consumed: lf + 1,
        }),
        None if buf.len() >= max => Err(ParseError::Fatal {
            tag: None,
            message: "line too long",
        }),
        None => Err(ParseError::Incomplete),
    }
}

/// Parses one complete frame (ending in LF, literals included).
fn parse_frame<'a>(frame: &'a [u8], limits: &Limits) -> Result<Command<'a>, ParseError> {
    let mut c = Cursor {
        buf: frame,
        pos: 0,
        args: 0,
        limits,
    };
    let bad = |tag: Option<&[u8]>, message| ParseError::Bad {
        tag: tag.map(<[u8]>::to_vec),
        message,
        consumed: frame.len(),
    };
    let tag = c.tag();
    // A tag that runs into a byte tags may not hold (`+`, `*`, `%`, …) is invalid; one
    // that simply ends (space, tab, line end) is judged by what follows.
    let runs_on = c.peek().is_some_and(is_atom_byte);
    if tag.is_empty() {
        return Err(bad(
            None,
            if runs_on {
                "invalid tag"
            } else {
                "missing tag"
            },
        ));
    }
    if tag.len() > limits.max_tag || runs_on {
        return Err(bad(None, "invalid tag"));
    }
    if !c.eat(b' ') {
        return Err(bad(Some(tag), "missing command"));
    }
    let name = c.atom_plain();
    if name.is_empty() || !name.iter().all(u8::is_ascii_alphanumeric) {
        return Err(bad(Some(tag), "invalid command name"));
    }
    let mut args = Vec::new();
    while c.eat(b' ') {
        match c.arg(0) {
            Ok(a) => args.push(a),
            Err(message) => return Err(bad(Some(tag), message)),
        }
    }
    if !c.at_line_end() {
        return Err(bad(Some(tag), "invalid arguments"));
    }
    Ok(Command { tag, name, args })
}

struct Cursor<'a, 'l> {
    buf: &'a [u8],
    pos: usize,
    args: usize,
    limits: &'l Limits,
}

impl<'a> Cursor<'a, '_> {
    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn at_line_end(&self) -> bool {
        matches!(&self.buf[self.pos..], b"\r\n" | b"\n")
    }

    /// A tag.
    fn tag(&mut self) -> &'a [u8] {
        let start = self.pos;
        while self.peek().is_some_and(is_tag_byte) {
            self.pos += 1;
        }
        &self.buf[start..self.pos]
    }

    /// An atom without brackets (command names).
    fn atom_plain(&mut self) -> &'a [u8] {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|b| is_atom_byte(b) && b != b'[' && b != b']')
        {
            self.pos += 1;
        }
        &self.buf[start..self.pos]
    }

    fn arg(&mut self, depth: usize) -> Result<Arg<'a>, &'static str> {
        self.args += 1;
        if self.args > self.limits.max_args {
            return Err("too many arguments");
        }
        match self.peek() {
            Some(b'(') => {
                if depth >= self.limits.max_depth {
                    return Err("lists nested too deeply");
                }
                self.pos += 1;
                let mut items = Vec::new();
                if self.eat(b')') {
                    return Ok(Arg::List(items));
                }
                loop {
                    items.push(self.arg(depth + 1)?);
                    if self.eat(b')') {
                        return Ok(Arg::List(items));
                    }
                    if !self.eat(b' ') {
                        return Err("unterminated list");
                    }
                }
            }
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal(),
            Some(b) if is_atom_byte(b) => self.atom(),
            _ => Err("invalid argument"),
        }
    }

    /// An atom; a `[` opens a section that runs to its `]` and may hold spaces, lists
    /// and quotes (`BODY[HEADER.FIELDS (SUBJECT FROM)]<0.100>`).
    fn atom(&mut self) -> Result<Arg<'a>, &'static str> {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if b == b'[' {
                let close = self.buf[self.pos..]
                    .iter()
                    .position(|&c| c == b']' || c == b'\r' || c == b'\n')
                    .map(|i| self.pos + i);
                match close {
                    Some(i) if self.buf[i] == b']' => self.pos = i + 1,
                    _ => return Err("unterminated section"),
                }
            } else if is_atom_byte(b) {
                self.pos += 1;
            } else {
                break;
            }
        }
        Ok(Arg::Atom(&self.buf[start..self.pos]))
    }

    fn quoted(&mut self) -> Result<Arg<'a>, &'static str> {
        self.pos += 1;
        let start = self.pos;
        let mut owned: Option<Vec<u8>> = None;
        loop {
            match self.peek() {
                None | Some(b'\r' | b'\n') => return Err("unterminated quoted string"),
                Some(0) => return Err("NUL in quoted string"),
                Some(b'"') => {
                    let value = match owned {
                        Some(v) => Cow::Owned(v),
                        None => Cow::Borrowed(&self.buf[start..self.pos]),
                    };
                    self.pos += 1;
                    return Ok(Arg::Quoted(value));
                }
                Some(b'\\') => {
                    let escaped = match self.buf.get(self.pos + 1) {
                        Some(&c @ (b'"' | b'\\')) => c,
                        _ => return Err("invalid escape in quoted string"),
                    };
                    owned
                        .get_or_insert_with(|| self.buf[start..self.pos].to_vec())
                        .push(escaped);
                    self.pos += 2;
                }
                Some(b) => {
                    if let Some(v) = owned.as_mut() {
                        v.push(b);
                    }
                    self.pos += 1;
                }
            }
        }
    }

    fn literal(&mut self) -> Result<Arg<'a>, &'static str> {
        let close = self.buf[self.pos..]
            .iter()
            .position(|&b| b == b'}')
            .ok_or("invalid literal")?;
        let inner = &self.buf[self.pos + 1..self.pos + close];
        let digits = inner.strip_suffix(b"+").unwrap_or(inner);
        let size: usize = std::str::from_utf8(digits)
            .ok()
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse().ok())
            .ok_or("invalid literal")?;
        self.pos += close + 1;
        // The framer only accepts a marker at a line end, so CRLF follows.
        if !self.eat(b'\r') && self.peek() != Some(b'\n') {
            return Err("literal not at end of line");
        }
        if !self.eat(b'\n') {
            return Err("literal not at end of line");
        }
        let end = self.pos + size;
        if end > self.buf.len() {
            return Err("literal truncated");
        }
        let value = &self.buf[self.pos..end];
        self.pos = end;
        Ok(Arg::Literal(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(input: &[u8]) -> Command<'_> {
        let mut p = Parser::default();
        let (c, used) = p.parse(input).expect("a command");
        assert_eq!(used, input.len());
        c
    }

    #[test]
    fn atoms_quoted_literals_lists() {
        let c = one(b"a1 LOGIN \"j\\\"o\\\\e\" {3}\r\np w\r\n");
        assert_eq!(c.tag, b"a1");
        assert!(c.is("login"));
        assert_eq!(c.args[0].as_astring(), Some(&b"j\"o\\e"[..]));
        assert_eq!(c.args[1], Arg::Literal(b"p w"));
        let c = one(b"t FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)]<0.100>)\r\n");
        let items = c.args[1].as_list().unwrap();
        assert_eq!(
            items[1],
            Arg::Atom(b"BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)]<0.100>")
        );
        let c = one(b"t STORE 1 +FLAGS.SILENT (\\Seen \\Deleted)\n");
        assert_eq!(c.args[2].as_list().unwrap().len(), 2);
        let c = one(b"x LIST \"\" *\r\n");
        assert_eq!(c.args[1], Arg::Atom(b"*"));
    }

    #[test]
    fn synchronizing_literals_ask_once() {
        let mut p = Parser::default();
        let input = b"a LOGIN {4}\r\njohn {6+}\r\nsecret\r\n";
        assert_eq!(
            p.parse(&input[..13]),
            Err(ParseError::NeedsLiteral { size: 4 })
        );
        assert_eq!(p.parse(&input[..15]), Err(ParseError::Incomplete));
        assert_eq!(p.parse(&input[..24]), Err(ParseError::Incomplete));
        let (c, used) = p.parse(input).unwrap();
        assert_eq!(used, input.len());
        assert_eq!(c.args[1], Arg::Literal(b"secret"));
    }

    #[test]
    fn errors_keep_the_tag_and_resync() {
        let mut p = Parser::new(Limits {
            max_literal: 10,
            ..Limits::default()
        });
        let input = b"a7 APPEND INBOX {11}\r\nb1 NOOP\r\n";
        match p.parse(input) {
            Err(ParseError::Bad {
                tag,
                message,
                consumed,
            }) => {
                assert_eq!(tag.as_deref(), Some(&b"a7"[..]));
                assert_eq!(message, "literal too big");
                assert_eq!(consumed, 22);
                let (c, _) = p.parse(&input[consumed..]).unwrap();
                assert_eq!(c.tag, b"b1");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            p.parse(b"a8 APPEND INBOX {11+}\r\n"),
            Err(ParseError::Fatal { .. })
        ));
        assert!(
            matches!(p.parse(b"a9 LOGIN \"x\r\n"), Err(ParseError::Bad { tag: Some(t), .. }) if t == b"a9")
        );
        assert!(matches!(
            p.parse(b"+ NOOP\r\n"),
            Err(ParseError::Bad { tag: None, .. })
        ));
    }

    #[test]
    fn over_long_lines_are_dropped_to_the_next_line_end() {
        let mut p = Parser::new(Limits {
            max_line: 16,
            ..Limits::default()
        });
        let long = b"a1 NOOP xxxxxxxxxxxxxxxxxxxxxxxx";
        match p.parse(long) {
            Err(ParseError::Bad { tag, consumed, .. }) => {
                assert_eq!(tag.as_deref(), Some(&b"a1"[..]));
                assert_eq!(consumed, long.len());
            }
            other => panic!("{other:?}"),
        }
        match p.parse(b"yyyy\r\nb2 NOOP\r\n") {
            Err(ParseError::Discard { consumed: 6 }) => {}
            other => panic!("{other:?}"),
        }
        let (c, _) = p.parse(b"b2 NOOP\r\n").unwrap();
        assert_eq!(c.tag, b"b2");
    }
}
