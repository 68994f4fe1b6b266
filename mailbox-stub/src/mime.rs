//! Just enough RFC 5322 / MIME to answer FETCH: header fields, ENVELOPE, BODYSTRUCTURE
//! for single-part and one-level multipart messages, and the body sections
//! (`HEADER`, `HEADER.FIELDS`, `TEXT`, `n`, `n.MIME`).

use codec::imap::{nstring, string};

/// Where the header ends: the offset of the body (after the blank line).
fn split(msg: &[u8]) -> (usize, usize) {
    if let Some(i) = find(msg, b"\r\n\r\n") {
        return (i + 2, i + 4);
    }
    if let Some(i) = find(msg, b"\n\n") {
        return (i + 1, i + 2);
    }
    (msg.len(), msg.len())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The header block (with its terminating blank line).
pub fn header(msg: &[u8]) -> &[u8] {
    let (_, body) = split(msg);
    &msg[..body]
}

/// The body (after the blank line).
pub fn text(msg: &[u8]) -> &[u8] {
    let (_, body) = split(msg);
    &msg[body..]
}

/// Header fields, unfolded: (name, value).
pub fn fields(msg: &[u8]) -> Vec<(String, String)> {
    let (end, _) = split(msg);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in msg[..end].split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let line = String::from_utf8_lossy(line);
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            out.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    out
}

/// The first value of field `name`.
pub fn field(msg: &[u8], name: &str) -> Option<String> {
    fields(msg)
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// The raw lines of the header fields named in `names` (or not named, with `not`),
/// followed by the blank line, as BODY[HEADER.FIELDS (…)] returns them.
pub fn header_fields(msg: &[u8], names: &[String], not: bool) -> Vec<u8> {
    let (end, _) = split(msg);
    let mut out = Vec::new();
    let mut keep = false;
    for line in msg[..end].split_inclusive(|&b| b == b'\n') {
        if !line.starts_with(b" ") && !line.starts_with(b"\t") {
            let name = line.split(|&b| b == b':').next().unwrap_or_default();
            let name = String::from_utf8_lossy(name);
            let listed = names.iter().any(|n| n.eq_ignore_ascii_case(name.trim()));
            keep = listed != not;
        }
        if keep {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Content-Type as (type, subtype, parameters), defaulting to text/plain.
fn content_type(msg: &[u8]) -> (String, String, Vec<(String, String)>) {
    let Some(value) = field(msg, "Content-Type") else {
        return (
            "text".into(),
            "plain".into(),
            vec![("charset".into(), "us-ascii".into())],
        );
    };
    let mut parts = value.split(';');
    let kind = parts
        .next()
        .unwrap_or("text/plain")
        .trim()
        .to_ascii_lowercase();
    let (t, s) = kind.split_once('/').unwrap_or(("text", "plain"));
    let params = parts
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_string(),
            )
        })
        .collect();
    (t.to_string(), s.to_string(), params)
}

/// The parts of a multipart message (each with its own header), if it is one.
pub fn parts(msg: &[u8]) -> Option<Vec<&[u8]>> {
    let (t, _, params) = content_type(msg);
    if t != "multipart" {
        return None;
    }
    let boundary = params.iter().find(|(k, _)| k == "boundary")?.1.clone();
    let delimiter = format!("--{boundary}");
    let body = text(msg);
    let mut out = Vec::new();
    let mut rest = body;
    let mut start: Option<usize> = None;
    let mut offset = 0;
    while let Some(i) = find(rest, delimiter.as_bytes()) {
        let at = offset + i;
        let at_line_start = at == 0 || body[at - 1] == b'\n';
        let after = at + delimiter.len();
        if at_line_start {
            if let Some(s) = start {
                // The CRLF before the delimiter belongs to the delimiter.
                let mut end = at;
                if end > s && body[end - 1] == b'\n' {
                    end -= 1;
                }
                if end > s && body[end - 1] == b'\r' {
                    end -= 1;
                }
                out.push(&body[s..end]);
            }
            if body[after..].starts_with(b"--") {
                return Some(out);
            }
            let line_end = body[after..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(body.len(), |p| after + p + 1);
            start = Some(line_end);
        }
        offset = after;
        rest = &body[after..];
    }
    Some(out)
}

/// The bytes of section `path` (`1`, `2.1`): the part's body, or with `mime` its header.
pub fn part_section<'a>(msg: &'a [u8], path: &[usize], mime: bool) -> Option<&'a [u8]> {
    let mut current = msg;
    for (depth, &n) in path.iter().enumerate() {
        match parts(current) {
            Some(p) => current = p.get(n.checked_sub(1)?)?,
            // A non-multipart message has exactly one part: itself (its text).
            None if n == 1 && depth + 1 == path.len() => {
                return Some(if mime { header(current) } else { text(current) });
            }
            None => return None,
        }
    }
    Some(if mime { header(current) } else { text(current) })
}

fn count_lines(b: &[u8]) -> usize {
    b.iter().filter(|&&c| c == b'\n').count()
}

/// BODYSTRUCTURE (with `extended`) or BODY of `msg`.
pub fn bodystructure(out: &mut Vec<u8>, msg: &[u8], extended: bool) {
    if let Some(parts) = parts(msg) {
        let (_, sub, params) = content_type(msg);
        out.push(b'(');
        for p in &parts {
            bodystructure(out, p, extended);
        }
        out.push(b' ');
        string(out, sub.to_ascii_uppercase().as_bytes());
        if extended {
            out.push(b' ');
            params_list(out, &params);
            out.extend_from_slice(b" NIL NIL NIL");
        }
        out.push(b')');
        return;
    }
    let (t, sub, params) = content_type(msg);
    let encoding = field(msg, "Content-Transfer-Encoding").unwrap_or_else(|| "7BIT".into());
    let body = text(msg);
    out.push(b'(');
    string(out, t.to_ascii_uppercase().as_bytes());
    out.push(b' ');
    string(out, sub.to_ascii_uppercase().as_bytes());
    out.push(b' ');
    params_list(out, &params);
    out.push(b' ');
    nstring(out, field(msg, "Content-ID").as_deref().map(str::as_bytes));
    out.push(b' ');
    nstring(
        out,
        field(msg, "Content-Description")
            .as_deref()
            .map(str::as_bytes),
    );
    out.push(b' ');
    string(out, encoding.to_ascii_uppercase().as_bytes());
    out.extend_from_slice(format!(" {}", body.len()).as_bytes());
    if t == "text" {
        out.extend_from_slice(format!(" {}", count_lines(body)).as_bytes());
    }
    if extended {
        out.extend_from_slice(b" NIL NIL NIL NIL");
    }
    out.push(b')');
}

fn params_list(out: &mut Vec<u8>, params: &[(String, String)]) {
    if params.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        string(out, k.to_ascii_uppercase().as_bytes());
        out.push(b' ');
        string(out, v.as_bytes());
    }
    out.push(b')');
}

/// One address list field as IMAP addresses, or NIL.
fn addresses(out: &mut Vec<u8>, value: Option<&str>) {
    let list: Vec<(Option<String>, String)> = value.map(parse_addresses).unwrap_or_default();
    if list.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (name, addr) in list {
        let (local, domain) = addr.rsplit_once('@').unwrap_or((&addr, ""));
        out.push(b'(');
        nstring(out, name.as_deref().map(str::as_bytes));
        out.extend_from_slice(b" NIL ");
        string(out, local.as_bytes());
        out.push(b' ');
        nstring(out, (!domain.is_empty()).then_some(domain.as_bytes()));
        out.push(b')');
    }
    out.push(b')');
}

/// `"Name" <a@b>, c@d` → [(Some(Name), a@b), (None, c@d)].
fn parse_addresses(value: &str) -> Vec<(Option<String>, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut items = Vec::new();
    for c in value.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => items.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    items.push(current);
    for item in items {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        match (item.rfind('<'), item.rfind('>')) {
            (Some(a), Some(b)) if a < b => {
                let name = item[..a].trim().trim_matches('"').trim();
                out.push((
                    (!name.is_empty()).then(|| name.to_string()),
                    item[a + 1..b].trim().to_string(),
                ));
            }
            _ => out.push((None, item.to_string())),
        }
    }
    out
}

/// ENVELOPE of `msg`.
pub fn envelope(out: &mut Vec<u8>, msg: &[u8]) {
    let get = |n: &str| field(msg, n);
    let from = get("From");
    out.push(b'(');
    nstring(out, get("Date").as_deref().map(str::as_bytes));
    out.push(b' ');
    nstring(out, get("Subject").as_deref().map(str::as_bytes));
    out.push(b' ');
    addresses(out, from.as_deref());
    out.push(b' ');
    addresses(out, get("Sender").or_else(|| from.clone()).as_deref());
    out.push(b' ');
    addresses(out, get("Reply-To").or_else(|| from.clone()).as_deref());
    for f in ["To", "Cc", "Bcc"] {
        out.push(b' ');
        addresses(out, get(f).as_deref());
    }
    out.push(b' ');
    nstring(out, get("In-Reply-To").as_deref().map(str::as_bytes));
    out.push(b' ');
    nstring(out, get("Message-ID").as_deref().map(str::as_bytes));
    out.push(b')');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::generated;

    #[test]
    fn multipart_parts_and_sections() {
        let (m, _) = generated("ann@example.com", "mbx1", 2);
        let p = parts(&m).unwrap();
        assert_eq!(p.len(), 2);
        assert!(field(p[0], "Content-Type")
            .unwrap()
            .starts_with("text/plain"));
        let one = part_section(&m, &[1], false).unwrap();
        assert!(one.starts_with(b"Hello ann@example.com"));
        assert!(one.ends_with(b"served by mbx1."));
        assert!(part_section(&m, &[2], true)
            .unwrap()
            .starts_with(b"Content-Type: text/html"));
        assert!(part_section(&m, &[3], false).is_none());
        let mut bs = Vec::new();
        bodystructure(&mut bs, &m, false);
        let bs = String::from_utf8(bs).unwrap();
        assert!(
            bs.starts_with("((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" "),
            "{bs}"
        );
        assert!(bs.ends_with(" \"ALTERNATIVE\")"), "{bs}");
    }

    #[test]
    fn single_part_envelope_and_fields() {
        let (m, _) = generated("ann@example.com", "mbx1", 1);
        assert!(parts(&m).is_none());
        assert_eq!(part_section(&m, &[1], false), Some(text(&m)));
        let mut env = Vec::new();
        envelope(&mut env, &m);
        let env = String::from_utf8(env).unwrap();
        assert!(
            env.contains("((\"Mailbox Stub\" NIL \"postmaster\" \"mbx1\"))"),
            "{env}"
        );
        assert!(env.contains("((NIL NIL \"ann\" \"example.com\"))"), "{env}");
        let hf = header_fields(&m, &["subject".into(), "TO".into()], false);
        assert_eq!(
            String::from_utf8(hf).unwrap(),
            "To: <ann@example.com>\r\nSubject: Message 1 for ann@example.com on mbx1\r\n\r\n"
        );
    }
}
