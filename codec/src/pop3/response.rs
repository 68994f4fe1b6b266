//! POP3 responses: the writers a server uses (`+OK`, `-ERR`, SASL `+ ` continuations and
//! dot-stuffed multi-line blocks) and the client-side parsers of status lines and multi-line
//! blocks.

use thiserror::Error;

use super::parser::Limits;

/// Appends `text` with every CR and LF turned into a space: a status text often carries
/// data from elsewhere (a backend's error, a login), and a line end inside it would end the
/// response early and let the rest pose as another response.
fn push_text(out: &mut Vec<u8>, text: &[u8]) {
    out.extend(
        text.iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
}

fn status(out: &mut Vec<u8>, indicator: &[u8], text: &[u8]) {
    out.extend_from_slice(indicator);
    if !text.is_empty() {
        out.push(b' ');
        push_text(out, text);
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends `+OK <text>` (just `+OK` when `text` is empty). CR and LF in `text` become
/// spaces.
pub fn ok(out: &mut Vec<u8>, text: impl AsRef<[u8]>) {
    status(out, b"+OK", text.as_ref());
}

/// Appends `-ERR <text>` (just `-ERR` when `text` is empty). CR and LF in `text` become
/// spaces.
pub fn err(out: &mut Vec<u8>, text: impl AsRef<[u8]>) {
    status(out, b"-ERR", text.as_ref());
}

/// Appends a SASL continuation `+ <base64>`; RFC 5034 keeps the space even when the
/// challenge is empty.
pub fn continuation(out: &mut Vec<u8>, base64: impl AsRef<[u8]>) {
    out.extend_from_slice(b"+ ");
    push_text(out, base64.as_ref());
    out.extend_from_slice(b"\r\n");
}

/// Appends the `+OK <text>` that opens a multi-line response; follow it with
/// [`multiline_line`]s or [`dot_stuff`], then [`multiline_end`].
pub fn multiline_start(out: &mut Vec<u8>, text: impl AsRef<[u8]>) {
    ok(out, text);
}

/// Appends one line of a multi-line response with its CRLF, dot-stuffed (a leading `.` is
/// doubled). The line must not contain its own line end: CR and LF become spaces, so a
/// line can never end the block early. Send text that has line structure with
/// [`dot_stuff`].
pub fn multiline_line(out: &mut Vec<u8>, line: impl AsRef<[u8]>) {
    let line = line.as_ref();
    if line.first() == Some(&b'.') {
        out.push(b'.');
    }
    push_text(out, line);
    out.extend_from_slice(b"\r\n");
}

/// Appends the `.` line that ends a multi-line response.
pub fn multiline_end(out: &mut Vec<u8>) {
    out.extend_from_slice(b".\r\n");
}

/// The lines of `body`: split at LF, one CR before it dropped, a last line without a line
/// end included, nothing at all for an empty body.
fn lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let trimmed = body.strip_suffix(b"\n").unwrap_or(body);
    trimmed
        .split(|&b| b == b'\n')
        .take(if body.is_empty() { 0 } else { usize::MAX })
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
}

/// Appends one stuffed line; unlike [`multiline_line`] a CR inside is kept, as it was in
/// the message.
fn push_stuffed(out: &mut Vec<u8>, line: &[u8]) {
    if line.first() == Some(&b'.') {
        out.push(b'.');
    }
    out.extend_from_slice(line);
    out.extend_from_slice(b"\r\n");
}

/// Appends a whole message (or any text) as the lines of a multi-line response: line ends
/// become CRLF (a bare LF is normalised), lines starting with `.` are stuffed, and a last
/// line without a line end gets one, so [`multiline_end`] can follow directly. Does not
/// write the status line or the terminating `.` line. An empty body writes nothing.
pub fn dot_stuff(out: &mut Vec<u8>, body: &[u8]) {
    for line in lines(body) {
        push_stuffed(out, line);
    }
}

/// Like [`dot_stuff`], for `TOP`: the header, the empty line that ends it, then at most
/// `body_lines` lines of the body. A message without an empty line is all header and is
/// sent whole.
pub fn dot_stuff_top(out: &mut Vec<u8>, message: &[u8], body_lines: u32) {
    let mut in_header = true;
    let mut left = body_lines;
    for line in lines(message) {
        if in_header {
            in_header = !line.is_empty();
        } else if left == 0 {
            break;
        } else {
            left -= 1;
        }
        push_stuffed(out, line);
    }
}

/// A server's status line, text without the indicator and its space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<'a> {
    /// `+OK [text]`
    Ok(&'a [u8]),
    /// `-ERR [text]`, which may start with an RFC 2449 `[CODE]`.
    Err(&'a [u8]),
    /// `+ [base64]`: a SASL challenge during `AUTH`.
    Continuation(&'a [u8]),
}

/// Why no response came out of the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ResponseError {
    /// Not a whole status line or multi-line block yet; read more.
    #[error("incomplete response")]
    Incomplete,
    /// A status line longer than the limit, or a multi-line block larger than the bound.
    #[error("response too large")]
    TooLarge,
    /// A line that is no POP3 status line: the server speaks something else.
    #[error("malformed response")]
    Malformed,
}

/// Parses the status line at the start of `buf`: `+OK`, `-ERR` or a `+` continuation, each
/// alone or followed by a space and text. The indicators are matched in upper case, as RFC
/// 1939 writes them. A bare LF ends a line as CRLF does; `limits.max_line` bounds the line.
pub fn parse_status_line<'a>(
    buf: &'a [u8],
    limits: &Limits,
) -> Result<(Status<'a>, usize), ResponseError> {
    if buf.is_empty() {
        return Err(ResponseError::Incomplete);
    }
    let window = &buf[..buf.len().min(limits.max_line)];
    let Some(nl) = memchr::memchr(b'\n', window) else {
        return Err(if buf.len() >= limits.max_line {
            ResponseError::TooLarge
        } else {
            ResponseError::Incomplete
        });
    };
    let line = &buf[..nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text_after = |indicator: &[u8]| match line.strip_prefix(indicator)? {
        [] => Some(&line[line.len()..]),
        [b' ', text @ ..] => Some(text),
        _ => None,
    };
    let status = if let Some(text) = text_after(b"+OK") {
        Status::Ok(text)
    } else if let Some(text) = text_after(b"-ERR") {
        Status::Err(text)
    } else if let Some(text) = text_after(b"+") {
        Status::Continuation(text)
    } else {
        return Err(ResponseError::Malformed);
    };
    Ok((status, nl + 1))
}

/// The RFC 2449/3206 response code at the start of a status line's text (`SYS/TEMP` of
/// `-ERR [SYS/TEMP] try later`), if any: what a client reads to tell a temporary refusal
/// from a permanent one.
pub fn response_code(text: &[u8]) -> Option<&[u8]> {
    let inner = text.strip_prefix(b"[")?;
    let close = inner.iter().position(|&b| b == b']')?;
    Some(&inner[..close]).filter(|c| !c.is_empty() && !c.contains(&b' '))
}

/// Parses the body of a multi-line response (what follows its `+OK` line) up to and
/// including the `.` line, and returns it unstuffed, every line ending in CRLF (bare LFs
/// normalised), with the bytes used. The block, `.` line included, may take at most
/// `max_size` bytes of input; beyond that it is [`ResponseError::TooLarge`]. Each call
/// scans from the start of `buf` again, so read in large pieces when the block is big.
pub fn parse_multiline(buf: &[u8], max_size: usize) -> Result<(Vec<u8>, usize), ResponseError> {
    let window = &buf[..buf.len().min(max_size)];
    let Some((end, consumed)) = block_end(window) else {
        return Err(if buf.len() >= max_size {
            ResponseError::TooLarge
        } else {
            ResponseError::Incomplete
        });
    };
    let mut body = Vec::with_capacity(end);
    for line in lines(&buf[..end]) {
        let line = line.strip_prefix(b".").unwrap_or(line);
        body.extend_from_slice(line);
        body.extend_from_slice(b"\r\n");
    }
    Ok((body, consumed))
}

/// Where the first `.` line in `window` starts and ends (after its LF). A whole-buffer
/// search for the two possible terminators rather than a walk over the lines, because a
/// client with small reads calls this once per read on a growing block.
fn block_end(window: &[u8]) -> Option<(usize, usize)> {
    if window.starts_with(b".\n") {
        return Some((0, 2));
    }
    if window.starts_with(b".\r\n") {
        return Some((0, 3));
    }
    let lf = memchr::memmem::find(window, b"\n.\n").map(|i| (i + 1, i + 3));
    let crlf = memchr::memmem::find(window, b"\n.\r\n").map(|i| (i + 1, i + 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_a_body() {
        let all = |body: &[u8]| lines(body).map(<[u8]>::to_vec).collect::<Vec<_>>();
        assert!(all(b"").is_empty());
        assert_eq!(all(b"\n"), [b"".to_vec()]);
        assert_eq!(all(b"a\r\nb"), [b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(all(b"a\r\r\n\r"), [b"a\r".to_vec(), b"".to_vec()]);
    }
}

#[cfg(test)]
mod code_tests {
    use super::response_code;

    #[test]
    fn response_codes() {
        assert_eq!(
            response_code(b"[SYS/TEMP] try later"),
            Some(&b"SYS/TEMP"[..])
        );
        assert_eq!(response_code(b"[AUTH] no"), Some(&b"AUTH"[..]));
        assert_eq!(response_code(b"no code"), None);
        assert_eq!(response_code(b"[not a code] x"), None);
        assert_eq!(response_code(b"[unclosed"), None);
    }
}
