//! Encoding IMAP responses: status lines, untagged data, continuations, and strings in
//! whichever form their bytes need (atom, quoted, literal).

/// A status response's condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `OK`.
    Ok,
    /// `NO`.
    No,
    /// `BAD`.
    Bad,
}

impl Status {
    fn as_bytes(self) -> &'static [u8] {
        match self {
            Self::Ok => b"OK",
            Self::No => b"NO",
            Self::Bad => b"BAD",
        }
    }
}

/// `<tag> <status> [<code>] <text>\r\n`. Control bytes in `text` are replaced, so a
/// caller can never end the line early.
pub fn tagged(out: &mut Vec<u8>, tag: &[u8], status: Status, code: Option<&str>, text: &str) {
    out.extend_from_slice(tag);
    out.push(b' ');
    out.extend_from_slice(status.as_bytes());
    out.push(b' ');
    if let Some(code) = code {
        out.push(b'[');
        push_text(out, code);
        out.extend_from_slice(b"] ");
    }
    push_text(out, text);
    out.extend_from_slice(b"\r\n");
}

/// `* <text>\r\n`.
pub fn untagged(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(b"* ");
    push_text(out, text);
    out.extend_from_slice(b"\r\n");
}

/// `+ <text>\r\n` (a continuation request).
pub fn continuation(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(b"+ ");
    push_text(out, text);
    out.extend_from_slice(b"\r\n");
}

fn push_text(out: &mut Vec<u8>, text: &str) {
    out.extend(text.bytes().map(|b| {
        if b == b'\r' || b == b'\n' || b == 0 {
            b' '
        } else {
            b
        }
    }));
}

/// A quoted string (`"` and `\` escaped); the bytes must hold no CR, LF or NUL.
pub fn quoted(out: &mut Vec<u8>, value: &[u8]) {
    out.push(b'"');
    for &b in value {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// A string: quoted when the bytes allow it, else a literal `{n}\r\n<bytes>`.
pub fn string(out: &mut Vec<u8>, value: &[u8]) {
    if value.len() <= 1024 && value.iter().all(|&b| (0x20..0x7f).contains(&b)) {
        quoted(out, value);
    } else {
        out.push(b'{');
        out.extend_from_slice(value.len().to_string().as_bytes());
        out.extend_from_slice(b"}\r\n");
        out.extend_from_slice(value);
    }
}

/// An nstring: `NIL` or a string.
pub fn nstring(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(v) => string(out, v),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// An astring: the bare atom when it is one (and not `NIL`), else a string.
pub fn astring(out: &mut Vec<u8>, value: &[u8]) {
    let atom = !value.is_empty()
        && !value.eq_ignore_ascii_case(b"NIL")
        && value.iter().all(|&b| {
            b > b' '
                && b < 0x7f
                && !matches!(
                    b,
                    b'(' | b')' | b'{' | b'"' | b'\\' | b'%' | b'*' | b'[' | b']'
                )
        });
    if atom {
        out.extend_from_slice(value);
    } else {
        string(out, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes() {
        let mut out = Vec::new();
        tagged(
            &mut out,
            b"a1",
            Status::No,
            Some("AUTHENTICATIONFAILED"),
            "bad\r\nx",
        );
        assert_eq!(out, b"a1 NO [AUTHENTICATIONFAILED] bad  x\r\n");
        out.clear();
        astring(&mut out, b"INBOX");
        out.push(b' ');
        astring(&mut out, b"My Folder");
        out.push(b' ');
        astring(&mut out, "Entw\u{fc}rfe".as_bytes());
        out.push(b' ');
        nstring(&mut out, None);
        assert_eq!(
            out,
            "INBOX \"My Folder\" {9}\r\nEntw\u{fc}rfe NIL".as_bytes()
        );
        out.clear();
        quoted(&mut out, b"a\"b\\c");
        assert_eq!(out, b"\"a\\\"b\\\\c\"");
    }
}
