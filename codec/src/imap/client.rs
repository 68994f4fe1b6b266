//! The client side of IMAP, for a proxy talking to a mailbox server: the commands a login
//! replay sends (ID with the client's address, LOGIN with literals, AUTHENTICATE PLAIN with
//! or without SASL-IR) and a resumable parser of server responses (greeting, tagged,
//! untagged with literals, continuation), bounded in size.

use thiserror::Error;

/// Size bounds on one server response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseLimits {
    /// Longest line of a response (between literals), line end included.
    pub max_line: usize,
    /// Largest response, literals included.
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
    /// PREAUTH (greeting only).
    Preauth,
    /// BYE.
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
    /// The response code inside `[...]`, e.g. `UNAVAILABLE` or `CAPABILITY IMAP4rev1 ...`.
    pub code: Option<&'a [u8]>,
    /// The rest of the first line (for data responses: everything after `* `).
    pub text: &'a [u8],
    /// The whole response as received, line ends and literals included (what a proxy
    /// passes on to its client).
    pub raw: &'a [u8],
}

impl<'a> ServerResponse<'a> {
    /// The capabilities of a `[CAPABILITY ...]` code (upper-case comparison is the
    /// caller's: names are case-insensitive).
    pub fn capabilities(&self) -> impl Iterator<Item = &'a [u8]> {
        let caps = self.code.and_then(|c| {
            let (word, rest) = split_word(c);
            word.eq_ignore_ascii_case(b"CAPABILITY").then_some(rest)
        });
        caps.unwrap_or_default()
            .split(|&b| b == b' ')
            .filter(|w| !w.is_empty())
    }

    /// Whether the `[CAPABILITY ...]` code lists `name`.
    pub fn has_capability(&self, name: &[u8]) -> bool {
        self.capabilities().any(|c| c.eq_ignore_ascii_case(name))
    }
}

/// Why no response came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ResponseError {
    /// Not a whole response yet; read more.
    #[error("incomplete response")]
    Incomplete,
    /// A line or the whole response over its bound.
    #[error("response too large")]
    TooLarge,
    /// Not an IMAP response.
    #[error("malformed response: {0}")]
    Malformed(&'static str),
}

fn split_word(s: &[u8]) -> (&[u8], &[u8]) {
    match s.iter().position(|&b| b == b' ') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, &[]),
    }
}

/// The size of the literal announced at the end of `line` (`{n}` or `{n+}`), if any.
fn literal_at_end(line: &[u8]) -> Option<usize> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let digits = &inner[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The length of the response at the start of `buf`: its lines and the literals they
/// announce.
fn response_end(buf: &[u8], limits: &ResponseLimits) -> Result<usize, ResponseError> {
    let mut pos = 0;
    loop {
        let window_end = buf.len().min(pos + limits.max_line);
        let Some(nl) = memchr::memchr(b'\n', &buf[pos..window_end]) else {
            return Err(if buf.len() - pos >= limits.max_line {
                ResponseError::TooLarge
            } else {
                ResponseError::Incomplete
            });
        };
        let line_end = pos + nl;
        let line = &buf[pos..line_end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        pos = line_end + 1;
        match literal_at_end(line) {
            None => return Ok(pos),
            Some(n) => {
                if pos + n > limits.max_response {
                    return Err(ResponseError::TooLarge);
                }
                if buf.len() < pos + n {
                    return Err(ResponseError::Incomplete);
                }
                pos += n;
            }
        }
        if pos > limits.max_response {
            return Err(ResponseError::TooLarge);
        }
    }
}

fn condition(word: &[u8]) -> Option<Condition> {
    Some(match word.to_ascii_uppercase().as_slice() {
        b"OK" => Condition::Ok,
        b"NO" => Condition::No,
        b"BAD" => Condition::Bad,
        b"PREAUTH" => Condition::Preauth,
        b"BYE" => Condition::Bye,
        _ => return None,
    })
}

/// The optional `[code]` and the text after a status word.
fn code_and_text(rest: &[u8]) -> (Option<&[u8]>, &[u8]) {
    if let Some(inner) = rest.strip_prefix(b"[") {
        if let Some(close) = inner.iter().position(|&b| b == b']') {
            let text = &inner[close + 1..];
            return (
                Some(&inner[..close]),
                text.strip_prefix(b" ").unwrap_or(text),
            );
        }
    }
    (None, rest)
}

/// Parses the response at the start of `buf`; returns it and the bytes it used. Resumable:
/// call again with more bytes after [`ResponseError::Incomplete`].
pub fn parse_response<'a>(
    buf: &'a [u8],
    limits: &ResponseLimits,
) -> Result<(ServerResponse<'a>, usize), ResponseError> {
    let end = response_end(buf, limits)?;
    let raw = &buf[..end];
    let first_end = memchr::memchr(b'\n', raw).unwrap_or(raw.len());
    let first = &raw[..first_end];
    let first = first.strip_suffix(b"\r").unwrap_or(first);
    let (head, rest) = split_word(first);
    let response = match head {
        b"+" => ServerResponse {
            kind: Kind::Continuation,
            condition: None,
            code: None,
            text: rest,
            raw,
        },
        b"" => return Err(ResponseError::Malformed("empty line")),
        _ => {
            let kind = if head == b"*" {
                Kind::Untagged
            } else if head.iter().all(|&b| b.is_ascii_graphic() && b != b'+') {
                Kind::Tagged(head)
            } else {
                return Err(ResponseError::Malformed("bad tag"));
            };
            let (word, after) = split_word(rest);
            match (condition(word), kind) {
                (Some(c), _) => {
                    let (code, text) = code_and_text(after);
                    ServerResponse {
                        kind,
                        condition: Some(c),
                        code,
                        text,
                        raw,
                    }
                }
                (None, Kind::Untagged) => ServerResponse {
                    kind,
                    condition: None,
                    code: None,
                    text: rest,
                    raw,
                },
                (None, _) => {
                    return Err(ResponseError::Malformed("tagged response without a status"))
                }
            }
        }
    };
    Ok((response, end))
}

/// `TAG.id ID ("x-originating-ip" "IP" "X-ORIGINATING-IP" "IP")`: Dovecot's and Zimbra's
/// way for a trusted proxy to name the client (both spellings, as servers differ). Returns
/// the tag the answer will carry.
pub fn id_forward(out: &mut Vec<u8>, tag: &[u8], client: std::net::IpAddr) -> Vec<u8> {
    let id_tag = [tag, b".id"].concat();
    out.extend_from_slice(&id_tag);
    out.extend_from_slice(
        format!(" ID (\"x-originating-ip\" \"{client}\" \"X-ORIGINATING-IP\" \"{client}\")\r\n")
            .as_bytes(),
    );
    id_tag
}

/// `TAG LOGIN {u}\r\nUSER {p}\r\nPASS\r\n`: user and password always as literals, so no
/// byte of them is ever interpreted. With LITERAL+ (`{n+}`) the whole command is one send;
/// without, each literal waits for the server's `+`: the pieces come back in send order.
pub fn login(tag: &[u8], user: &[u8], pass: &[u8], literal_plus: bool) -> Vec<Vec<u8>> {
    let plus = if literal_plus { "+" } else { "" };
    let mut first = tag.to_vec();
    first.extend_from_slice(format!(" LOGIN {{{}{plus}}}\r\n", user.len()).as_bytes());
    let mut second = user.to_vec();
    second.extend_from_slice(format!(" {{{}{plus}}}\r\n", pass.len()).as_bytes());
    let mut third = pass.to_vec();
    third.extend_from_slice(b"\r\n");
    if literal_plus {
        vec![[first, second, third].concat()]
    } else {
        vec![first, second, third]
    }
}

/// `TAG AUTHENTICATE PLAIN` with `response` (base64): in the command with SASL-IR, else
/// after the server's `+` (two pieces in send order).
pub fn authenticate_plain(tag: &[u8], response: &[u8], sasl_ir: bool) -> Vec<Vec<u8>> {
    let mut command = tag.to_vec();
    command.extend_from_slice(b" AUTHENTICATE PLAIN");
    let mut answer = response.to_vec();
    answer.extend_from_slice(b"\r\n");
    if sasl_ir {
        command.push(b' ');
        command.extend_from_slice(&answer);
        vec![command]
    } else {
        command.extend_from_slice(b"\r\n");
        vec![command, answer]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> ServerResponse<'_> {
        let (r, used) = parse_response(s.as_bytes(), &ResponseLimits::default()).unwrap();
        assert_eq!(used, s.len(), "{s:?}");
        r
    }

    #[test]
    fn responses() {
        let g = one("* OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR ID] ready\r\n");
        assert_eq!((g.kind, g.condition), (Kind::Untagged, Some(Condition::Ok)));
        assert!(g.has_capability(b"literal+") && g.has_capability(b"SASL-IR"));
        assert!(!g.has_capability(b"STARTTLS"));
        assert_eq!(g.text, b"ready");
        let t = one("a1 NO [UNAVAILABLE] try later\r\n");
        assert_eq!(t.kind, Kind::Tagged(b"a1"));
        assert_eq!(t.condition, Some(Condition::No));
        assert_eq!(t.code, Some(&b"UNAVAILABLE"[..]));
        assert_eq!(t.text, b"try later");
        let d = one("* ID (\"name\" {5}\r\nhello \"x\" \"y\")\r\n");
        assert_eq!((d.kind, d.condition), (Kind::Untagged, None));
        let c = one("+ \r\n");
        assert_eq!(c.kind, Kind::Continuation);
        assert_eq!(one("* BYE shutting down\n").condition, Some(Condition::Bye));
        assert_eq!(one("* PREAUTH hi\r\n").condition, Some(Condition::Preauth));
        assert_eq!(
            parse_response(b"a1 WHATEVER x\r\n", &ResponseLimits::default()),
            Err(ResponseError::Malformed("tagged response without a status"))
        );
        assert_eq!(
            parse_response(b"\r\n", &ResponseLimits::default()),
            Err(ResponseError::Malformed("empty line"))
        );
    }

    #[test]
    fn bounds() {
        let limits = ResponseLimits {
            max_line: 16,
            max_response: 64,
        };
        assert_eq!(
            parse_response(b"* OK this line is too long\r\n", &limits),
            Err(ResponseError::TooLarge)
        );
        assert_eq!(
            parse_response(b"* OK short", &limits),
            Err(ResponseError::Incomplete)
        );
        assert_eq!(
            parse_response(b"* X {1000}\r\n", &limits),
            Err(ResponseError::TooLarge),
            "a huge literal is refused before it is read"
        );
        assert_eq!(
            parse_response(b"* X {10}\r\nabc", &limits),
            Err(ResponseError::Incomplete)
        );
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
        assert_eq!(
            login(b"a", b"ann", b"p w", true),
            vec![b"a LOGIN {3+}\r\nann {3+}\r\np w\r\n".to_vec()]
        );
        assert_eq!(
            login(b"a", b"ann", b"p w", false),
            vec![
                b"a LOGIN {3}\r\n".to_vec(),
                b"ann {3}\r\n".to_vec(),
                b"p w\r\n".to_vec()
            ]
        );
        assert_eq!(
            authenticate_plain(b"b", b"AGFubgBwdw==", true),
            vec![b"b AUTHENTICATE PLAIN AGFubgBwdw==\r\n".to_vec()]
        );
        assert_eq!(
            authenticate_plain(b"b", b"AGFubgBwdw==", false),
            vec![
                b"b AUTHENTICATE PLAIN\r\n".to_vec(),
                b"AGFubgBwdw==\r\n".to_vec()
            ]
        );
    }
}
