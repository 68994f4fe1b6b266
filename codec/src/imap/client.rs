//! The client side of IMAP, for a proxy talking to a mailbox server: the commands a login
//! replay sends (ID with the client's address, LOGIN, AUTHENTICATE PLAIN with or without
//! SASL-IR) and a resumable parser of server responses (greeting, tagged, untagged with
//! literals, continuation), bounded in size.
//!
//! # Pieces
//! A command holding a synchronizing literal (`{n}`) cannot go out in one write: the
//! server must answer `+` before the literal's bytes may follow. The encoders therefore
//! return the command as *pieces* in send order: the first goes at once, each later one
//! only after a continuation (`+`) response. With LITERAL+ (`{n+}`, RFC 7888) or SASL-IR
//! there is a single piece.
//!
//! # Responses
//! [`parse_response`] keeps no state: given everything buffered it returns one whole
//! response and the bytes it used, or [`ResponseError::Incomplete`]. Only untagged data
//! (`* ID (...)`, `* LIST ...`) can carry literals; a status line ending in `{5}` is text,
//! so a stray brace in a server's message never makes the parser wait for bytes that will
//! not come. A literal is refused as soon as it is announced when it would take the
//! response past [`ResponseLimits::max_response`], before any of it is buffered.

use std::io::Write as _;

use thiserror::Error;

use super::response::quoted;

/// Size bounds on one server response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseLimits {
    /// Longest line of a response (between literals), line end included.
    pub max_line: usize,
    /// Largest response, lines and literals included: also the bound on one literal.
    pub max_response: usize,
}

impl Default for ResponseLimits {
    fn default() -> Self {
        Self {
            max_line: 64 * 1024,
            max_response: 256 * 1024,
        }
    }
}

/// Who a response line is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind<'a> {
    /// The completion of the command with this tag.
    Tagged(&'a [u8]),
    /// `*`: data or a status not tied to a command (the greeting, BYE).
    Untagged,
    /// `+`: the server waits for more of the command (a literal, a SASL answer).
    Continuation,
}

/// The status word of a status response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// OK.
    Ok,
    /// NO.
    No,
    /// BAD.
    Bad,
    /// PREAUTH (untagged only: a greeting that logs in already).
    Preauth,
    /// BYE (untagged only: the server closes).
    Bye,
}

/// One server response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerResponse<'a> {
    /// Tagged, untagged or continuation.
    pub kind: Kind<'a>,
    /// The status word, when it is a status response (`None` for data such as `* ID (...)`
    /// and for continuations).
    pub condition: Option<Condition>,
    /// The response code inside `[...]` of a status response, e.g. `UNAVAILABLE` or
    /// `CAPABILITY IMAP4rev1 ...`.
    pub code: Option<&'a [u8]>,
    /// The rest of the first line: for a status, the text after the code; for data,
    /// everything after `* `; for a continuation, everything after `+ `.
    pub text: &'a [u8],
    /// The whole response as received, line ends and literals included (what a proxy
    /// passes on to its client).
    pub raw: &'a [u8],
}

impl<'a> ServerResponse<'a> {
    /// The capabilities a `[CAPABILITY ...]` code or a `* CAPABILITY ...` data response
    /// lists, as sent (names are case-insensitive: see [`Self::has_capability`]).
    pub fn capabilities(&self) -> impl Iterator<Item = &'a [u8]> {
        let from_code = self.code.and_then(|c| {
            let (word, rest) = split_word(c);
            word.eq_ignore_ascii_case(b"CAPABILITY").then_some(rest)
        });
        let from_data = (self.kind == Kind::Untagged && self.condition.is_none())
            .then(|| split_word(self.text))
            .and_then(|(word, rest)| word.eq_ignore_ascii_case(b"CAPABILITY").then_some(rest));
        from_code
            .or(from_data)
            .unwrap_or_default()
            .split(|&b| b == b' ')
            .filter(|w| !w.is_empty())
    }

    /// Whether the capabilities (see [`Self::capabilities`]) list `name`, ignoring case.
    pub fn has_capability(&self, name: &[u8]) -> bool {
        self.capabilities().any(|c| c.eq_ignore_ascii_case(name))
    }

    /// Whether the response code's first word is `name`, ignoring case: `UNAVAILABLE`
    /// matches `[UNAVAILABLE]`, `CAPABILITY` matches `[CAPABILITY IMAP4rev1 ...]`.
    pub fn code_is(&self, name: &[u8]) -> bool {
        self.code
            .is_some_and(|c| split_word(c).0.eq_ignore_ascii_case(name))
    }
}

/// Why no response came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ResponseError {
    /// Not a whole response yet; read more.
    #[error("incomplete response")]
    Incomplete,
    /// A line over [`ResponseLimits::max_line`].
    #[error("response line too long")]
    LineTooLong,
    /// The response, or a literal it announces, over [`ResponseLimits::max_response`].
    #[error("response too large")]
    TooLarge,
    /// Not an IMAP response.
    #[error("malformed response: {0}")]
    Malformed(&'static str),
}

fn split_word(s: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(b' ', s) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, &[]),
    }
}

/// The size of the literal announced at the end of `line` (`{n}`, or `{n+}` which a
/// server has no business sending but costs nothing to read); an absurd size saturates
/// so that it fails the bound.
fn literal_at_end(line: &[u8]) -> Option<usize> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let digits = &inner[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0usize, |n, &d| {
        n.saturating_mul(10).saturating_add(usize::from(d - b'0'))
    }))
}

/// The end (after its LF) of the line starting at `pos`.
fn line_end(buf: &[u8], pos: usize, limits: &ResponseLimits) -> Result<usize, ResponseError> {
    // A line may take neither more than max_line nor the response past max_response,
    // whichever comes first; so at most max_response bytes are ever buffered.
    let line_bound = pos.saturating_add(limits.max_line);
    let bound = line_bound.min(limits.max_response);
    let window = &buf[pos.min(buf.len())..buf.len().min(bound)];
    match memchr::memchr(b'\n', window) {
        Some(nl) => Ok(pos + nl + 1),
        None if buf.len() < bound => Err(ResponseError::Incomplete),
        None if bound == line_bound => Err(ResponseError::LineTooLong),
        None => Err(ResponseError::TooLarge),
    }
}

fn without_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn condition(word: &[u8]) -> Option<Condition> {
    [
        (&b"OK"[..], Condition::Ok),
        (b"NO", Condition::No),
        (b"BAD", Condition::Bad),
        (b"PREAUTH", Condition::Preauth),
        (b"BYE", Condition::Bye),
    ]
    .into_iter()
    .find(|(w, _)| w.eq_ignore_ascii_case(word))
    .map(|(_, c)| c)
}

/// The optional `[code]` and the text after a status word.
fn code_and_text(rest: &[u8]) -> (Option<&[u8]>, &[u8]) {
    if let Some(inner) = rest.strip_prefix(b"[") {
        if let Some(close) = memchr::memchr(b']', inner) {
            let text = &inner[close + 1..];
            return (
                Some(&inner[..close]),
                text.strip_prefix(b" ").unwrap_or(text),
            );
        }
    }
    (None, rest)
}

/// The response a first line (line end stripped) opens; its `raw` is left empty.
fn classify(first: &[u8]) -> Result<ServerResponse<'_>, ResponseError> {
    let (head, rest) = split_word(first);
    let mut response = ServerResponse {
        kind: Kind::Continuation,
        condition: None,
        code: None,
        text: rest,
        raw: &[],
    };
    match head {
        _ if first.is_empty() => return Err(ResponseError::Malformed("empty line")),
        b"+" => return Ok(response),
        b"*" => response.kind = Kind::Untagged,
        _ if !head.is_empty() && head.iter().all(|&b| b.is_ascii_graphic() && b != b'+') => {
            response.kind = Kind::Tagged(head);
        }
        _ => return Err(ResponseError::Malformed("bad tag")),
    }
    let (word, after) = split_word(rest);
    match (condition(word), response.kind) {
        (Some(Condition::Preauth | Condition::Bye), Kind::Tagged(_)) => {
            return Err(ResponseError::Malformed("PREAUTH or BYE with a tag"))
        }
        (Some(c), _) => {
            let (code, text) = code_and_text(after);
            response.condition = Some(c);
            response.code = code;
            response.text = text;
        }
        (None, Kind::Untagged) if !rest.is_empty() => {}
        (None, Kind::Untagged) => return Err(ResponseError::Malformed("empty untagged response")),
        (None, _) => {
            return Err(ResponseError::Malformed("tagged response without a status"));
        }
    }
    Ok(response)
}

/// Parses the response at the start of `buf`; returns it and the bytes it used (at least
/// one, at most `limits.max_response`). Resumable: after [`ResponseError::Incomplete`]
/// call again with the same bytes and more. The other errors are final for the stream: it
/// cannot be resynchronised.
pub fn parse_response<'a>(
    buf: &'a [u8],
    limits: &ResponseLimits,
) -> Result<(ServerResponse<'a>, usize), ResponseError> {
    let mut end = line_end(buf, 0, limits)?;
    let first = without_line_end(&buf[..end]);
    let mut response = classify(first)?;
    if response.kind == Kind::Untagged && response.condition.is_none() {
        let mut line = first;
        while let Some(size) = literal_at_end(line) {
            let literal_end = end.saturating_add(size);
            if literal_end > limits.max_response {
                return Err(ResponseError::TooLarge);
            }
            if buf.len() < literal_end {
                return Err(ResponseError::Incomplete);
            }
            let next = line_end(buf, literal_end, limits)?;
            line = without_line_end(&buf[literal_end..next]);
            end = next;
        }
    }
    response.raw = &buf[..end];
    Ok((response, end))
}

/// `TAG.id ID ("x-originating-ip" "IP" "X-ORIGINATING-IP" "IP")`: Dovecot's and Zimbra's
/// way for a trusted proxy to name the client (both spellings, as servers differ). Appends
/// the command to `out` and returns the tag its answer will carry.
pub fn id_forward(out: &mut Vec<u8>, tag: &[u8], client: std::net::IpAddr) -> Vec<u8> {
    let id_tag = [tag, b".id"].concat();
    out.extend_from_slice(&id_tag);
    // Writing to a Vec cannot fail.
    let _ = write!(
        out,
        " ID (\"x-originating-ip\" \"{client}\" \"X-ORIGINATING-IP\" \"{client}\")\r\n"
    );
    id_tag
}

/// How [`login`] writes the user name and password.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoginStyle {
    /// The server announced LITERAL+ (RFC 7888): literals go as `{n+}` within the one
    /// piece instead of waiting for a `+` each.
    pub literal_plus: bool,
    /// Every string as a literal, even one that would do as an atom, as nginx and Zimbra
    /// send it: no byte of a credential is then ever read by the server's string parser,
    /// whose quirks (escapes, 8-bit bytes in quoted strings) differ between servers.
    pub always_literal: bool,
}

/// How an astring's bytes go on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Atom,
    Quoted,
    Literal,
}

/// Longest value sent as a quoted string: longer ones go as literals, which no server
/// line-length limit applies to.
const MAX_QUOTED: usize = 1024;

fn form(value: &[u8], always_literal: bool) -> Form {
    let printable = |b: &u8| (0x20..0x7f).contains(b);
    if always_literal || value.len() > MAX_QUOTED || !value.iter().all(printable) {
        return Form::Literal;
    }
    // Strict ATOM-CHARs: brackets, wildcards and quoted-specials are quoted, since
    // servers read `[` in an atom as a section and some treat `%`/`*` specially.
    let atom_byte = |b: &u8| {
        !matches!(
            b,
            b' ' | b'(' | b')' | b'{' | b'"' | b'\\' | b'%' | b'*' | b'[' | b']'
        )
    };
    if value.is_empty() || value.eq_ignore_ascii_case(b"NIL") || !value.iter().all(atom_byte) {
        Form::Quoted
    } else {
        Form::Atom
    }
}

/// Appends `value` as an astring to the last piece; a synchronizing literal's bytes open
/// a new piece, sent after the server's `+`.
fn push_astring(pieces: &mut Vec<Vec<u8>>, value: &[u8], style: LoginStyle) {
    let Some(current) = pieces.last_mut() else {
        return;
    };
    match form(value, style.always_literal) {
        Form::Atom => current.extend_from_slice(value),
        Form::Quoted => quoted(current, value),
        Form::Literal => {
            let plus = if style.literal_plus { "+" } else { "" };
            // Writing to a Vec cannot fail.
            let _ = write!(current, "{{{}{plus}}}\r\n", value.len());
            if style.literal_plus {
                current.extend_from_slice(value);
            } else {
                pieces.push(value.to_vec());
            }
        }
    }
}

/// `TAG LOGIN user password`, each string an atom, a quoted string or a literal as its
/// bytes need (always a literal with [`LoginStyle::always_literal`]). Returns the pieces in
/// send order: the first at once, each later one after a `+` (see the module docs). The
/// bytes are sent as they are; a NUL, which IMAP4rev1 strings cannot carry, goes in a
/// literal and the server decides.
pub fn login(tag: &[u8], user: &[u8], pass: &[u8], style: LoginStyle) -> Vec<Vec<u8>> {
    let mut first = Vec::with_capacity(tag.len() + user.len() + pass.len() + 32);
    first.extend_from_slice(tag);
    first.extend_from_slice(b" LOGIN ");
    let mut pieces = vec![first];
    push_astring(&mut pieces, user, style);
    if let Some(last) = pieces.last_mut() {
        last.push(b' ');
    }
    push_astring(&mut pieces, pass, style);
    if let Some(last) = pieces.last_mut() {
        last.extend_from_slice(b"\r\n");
    }
    pieces
}

/// `TAG AUTHENTICATE PLAIN` with `response` (base64, see [`crate::sasl`]): in the command
/// with SASL-IR (RFC 4959; an empty response is sent as `=`), else after the server's `+`
/// (two pieces in send order).
pub fn authenticate_plain(tag: &[u8], response: &[u8], sasl_ir: bool) -> Vec<Vec<u8>> {
    authenticate(tag, b"PLAIN", response, sasl_ir)
}

/// `TAG AUTHENTICATE MECHANISM` with a one-message `response` (base64): in the command with
/// SASL-IR, else after the server's `+`, as [`authenticate_plain`].
pub fn authenticate(tag: &[u8], mechanism: &[u8], response: &[u8], sasl_ir: bool) -> Vec<Vec<u8>> {
    let mut command = tag.to_vec();
    command.extend_from_slice(b" AUTHENTICATE ");
    command.extend_from_slice(mechanism);
    let mut answer = response.to_vec();
    answer.extend_from_slice(b"\r\n");
    if sasl_ir {
        command.push(b' ');
        if response.is_empty() {
            command.push(b'=');
        }
        command.extend_from_slice(&answer);
        vec![command]
    } else {
        command.extend_from_slice(b"\r\n");
        vec![command, answer]
    }
}

/// The line that cancels a SASL exchange at a continuation (`*`, RFC 3501 6.2.2): the
/// server then answers the AUTHENTICATE with a tagged BAD.
pub fn cancel_authenticate(out: &mut Vec<u8>) {
    out.extend_from_slice(b"*\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> ServerResponse<'_> {
        let (r, used) = parse_response(s.as_bytes(), &ResponseLimits::default()).unwrap();
        assert_eq!(used, s.len(), "{s:?}");
        assert_eq!(r.raw, s.as_bytes());
        r
    }

    fn err(s: &[u8], limits: &ResponseLimits) -> ResponseError {
        parse_response(s, limits).unwrap_err()
    }

    #[test]
    fn responses() {
        let g = one("* OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR ID] ready\r\n");
        assert_eq!((g.kind, g.condition), (Kind::Untagged, Some(Condition::Ok)));
        assert!(g.has_capability(b"literal+") && g.has_capability(b"SASL-IR"));
        assert!(!g.has_capability(b"STARTTLS"));
        assert!(g.code_is(b"capability"));
        assert_eq!(g.text, b"ready");
        let t = one("a1 NO [UNAVAILABLE] try later\r\n");
        assert_eq!(t.kind, Kind::Tagged(b"a1"));
        assert_eq!(t.condition, Some(Condition::No));
        assert_eq!(t.code, Some(&b"UNAVAILABLE"[..]));
        assert!(t.code_is(b"unavailable") && !t.code_is(b"UNAVAIL"));
        assert_eq!(t.text, b"try later");
        let d = one("* ID (\"name\" {5}\r\nhello \"x\" \"y\")\r\n");
        assert_eq!((d.kind, d.condition, d.code), (Kind::Untagged, None, None));
        assert_eq!(d.text, b"ID (\"name\" {5}");
        let caps = one("* CAPABILITY IMAP4rev1 IDLE\r\n");
        assert_eq!(
            caps.capabilities().collect::<Vec<_>>(),
            [&b"IMAP4rev1"[..], b"IDLE"]
        );
        let c = one("+ \r\n");
        assert_eq!((c.kind, c.text), (Kind::Continuation, &b""[..]));
        assert_eq!(one("+\r\n").kind, Kind::Continuation);
        assert_eq!(one("+ VXNlcg==\r\n").text, b"VXNlcg==");
        assert_eq!(one("* BYE shutting down\n").condition, Some(Condition::Bye));
        assert_eq!(one("* PREAUTH hi\r\n").condition, Some(Condition::Preauth));
        assert_eq!(one("a ok done\r\n").condition, Some(Condition::Ok));
        let bare = one("a NO\r\n");
        assert_eq!((bare.code, bare.text), (None, &b""[..]));
        let unclosed = one("a NO [ALERT oops\r\n");
        assert_eq!((unclosed.code, unclosed.text), (None, &b"[ALERT oops"[..]));
    }

    #[test]
    fn a_brace_in_status_text_is_no_literal() {
        let t = one("a OK done {5}\r\n");
        assert_eq!(t.text, b"done {5}");
        assert_eq!(one("* OK see {2}\r\n").condition, Some(Condition::Ok));
    }

    #[test]
    fn malformed() {
        let limits = ResponseLimits::default();
        for (input, why) in [
            (
                &b"a1 WHATEVER x\r\n"[..],
                "tagged response without a status",
            ),
            (b"a1\r\n", "tagged response without a status"),
            (b"\r\n", "empty line"),
            (b" OK\r\n", "bad tag"),
            (b"*\r\n", "empty untagged response"),
            (b"+x\r\n", "bad tag"),
            (b"a+ OK\r\n", "bad tag"),
            (b"a\x01 OK\r\n", "bad tag"),
            (b"a BYE\r\n", "PREAUTH or BYE with a tag"),
        ] {
            assert_eq!(
                err(input, &limits),
                ResponseError::Malformed(why),
                "{input:?}"
            );
        }
    }

    #[test]
    fn bounds() {
        let limits = ResponseLimits {
            max_line: 16,
            max_response: 40,
        };
        assert_eq!(
            err(b"* OK this line is too long\r\n", &limits),
            ResponseError::LineTooLong
        );
        assert_eq!(err(b"* OK short", &limits), ResponseError::Incomplete);
        assert_eq!(
            err(b"* X {1000}\r\n", &limits),
            ResponseError::TooLarge,
            "a huge literal is refused before it is read"
        );
        assert_eq!(
            err(
                b"* X {99999999999999999999999}\r\n",
                &ResponseLimits::default()
            ),
            ResponseError::TooLarge
        );
        assert_eq!(err(b"* X {10}\r\nabc", &limits), ResponseError::Incomplete);
        // Lines within max_line each, but together over max_response.
        assert_eq!(
            err(
                b"* X {8}\r\n12345678 more {8}\r\n12345678 and more\r\n",
                &limits
            ),
            ResponseError::TooLarge
        );
        let fits = b"* X {8}\r\n12345678 {3}\r\nabc)\r\n";
        assert_eq!(parse_response(fits, &limits).unwrap().1, fits.len());
        // Exactly max_line bytes, line end included, is still a line.
        let exact = b"* OK 0123456789\r\n";
        assert_eq!(exact.len(), 17);
        let limits17 = ResponseLimits {
            max_line: 17,
            ..limits
        };
        assert_eq!(parse_response(exact, &limits17).unwrap().1, 17);
        assert_eq!(err(exact, &limits), ResponseError::LineTooLong);
    }

    #[test]
    fn commands() {
        let mut out = Vec::new();
        let tag = id_forward(&mut out, b"a7", "192.0.2.1".parse().unwrap());
        assert_eq!(tag, b"a7.id");
        assert_eq!(
            out,
            b"a7.id ID (\"x-originating-ip\" \"192.0.2.1\" \"X-ORIGINATING-IP\" \"192.0.2.1\")\r\n"
        );
        let literal = |literal_plus| LoginStyle {
            literal_plus,
            always_literal: true,
        };
        assert_eq!(
            login(b"a", b"ann", b"p w", literal(true)),
            vec![b"a LOGIN {3+}\r\nann {3+}\r\np w\r\n".to_vec()]
        );
        assert_eq!(
            login(b"a", b"ann", b"p w", literal(false)),
            vec![
                b"a LOGIN {3}\r\n".to_vec(),
                b"ann {3}\r\n".to_vec(),
                b"p w\r\n".to_vec()
            ]
        );
        let shortest = LoginStyle::default();
        assert_eq!(
            login(b"a", b"ann@example.com", b"pw", shortest),
            vec![b"a LOGIN ann@example.com pw\r\n".to_vec()]
        );
        assert_eq!(
            login(b"a", b"nil", b"p \"w\\", shortest),
            vec![b"a LOGIN \"nil\" \"p \\\"w\\\\\"\r\n".to_vec()]
        );
        assert_eq!(
            login(b"a", b"", "\u{fc}".as_bytes(), shortest),
            vec![
                b"a LOGIN \"\" {2}\r\n".to_vec(),
                "\u{fc}\r\n".as_bytes().to_vec()
            ]
        );
        assert_eq!(
            login(b"a", "\u{fc}".as_bytes(), b"x]", shortest),
            vec![
                b"a LOGIN {2}\r\n".to_vec(),
                "\u{fc} \"x]\"\r\n".as_bytes().to_vec()
            ]
        );
        let long = vec![b'x'; MAX_QUOTED + 1];
        assert_eq!(
            login(
                b"a",
                b"ann",
                &long,
                LoginStyle {
                    literal_plus: true,
                    ..shortest
                }
            ),
            vec![[&b"a LOGIN ann {1025+}\r\n"[..], &long, b"\r\n"].concat()]
        );
        assert_eq!(
            authenticate_plain(b"b", b"AGFubgBwdw==", true),
            vec![b"b AUTHENTICATE PLAIN AGFubgBwdw==\r\n".to_vec()]
        );
        assert_eq!(
            authenticate_plain(b"b", b"", true),
            vec![b"b AUTHENTICATE PLAIN =\r\n".to_vec()]
        );
        assert_eq!(
            authenticate_plain(b"b", b"AGFubgBwdw==", false),
            vec![
                b"b AUTHENTICATE PLAIN\r\n".to_vec(),
                b"AGFubgBwdw==\r\n".to_vec()
            ]
        );
        assert_eq!(
            authenticate(b"c", b"XOAUTH2", b"dXNlcj1h", false),
            vec![
                b"c AUTHENTICATE XOAUTH2\r\n".to_vec(),
                b"dXNlcj1h\r\n".to_vec()
            ]
        );
        out.clear();
        cancel_authenticate(&mut out);
        assert_eq!(out, b"*\r\n");
    }
}
