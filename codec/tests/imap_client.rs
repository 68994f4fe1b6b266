//! The client side of IMAP: a stream of server responses (greeting with capabilities, ID
//! data with a literal, continuations, untagged and tagged status lines) parses to the same
//! sequence whatever the chunk sizes it arrives in, and arbitrary prefixes never panic.

use codec::imap::client::{parse_response, Condition, Kind, ResponseError, ResponseLimits};

const STREAM: &[u8] = b"* OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR ID] ready\r\n\
a.id OK ID done\r\n\
* ID (\"name\" {6}\r\nDove\r\n \"v\" \"2.3\")\r\n\
+ \r\n\
* CAPABILITY IMAP4rev1 IDLE\r\n\
a NO [AUTHENTICATIONFAILED] Authentication failed.\n\
* BYE later\r\n";

/// (kind, condition, code) of each response, parsing as bytes arrive `chunk` at a time.
fn parse_all(chunk: usize) -> Vec<(String, Option<Condition>, Option<String>, usize)> {
    let limits = ResponseLimits::default();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for piece in STREAM.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match parse_response(&buf, &limits) {
                Ok((r, used)) => {
                    let kind = match r.kind {
                        Kind::Tagged(t) => String::from_utf8_lossy(t).into_owned(),
                        Kind::Untagged => "*".into(),
                        Kind::Continuation => "+".into(),
                    };
                    let code = r.code.map(|c| String::from_utf8_lossy(c).into_owned());
                    out.push((kind, r.condition, code, used));
                    buf.drain(..used);
                }
                Err(ResponseError::Incomplete) => break,
                Err(e) => panic!("chunk {chunk}: {e}"),
            }
        }
    }
    assert!(buf.is_empty(), "chunk {chunk}: left over {buf:?}");
    out
}

#[test]
fn every_chunk_size_gives_the_same_responses() {
    let whole = parse_all(STREAM.len());
    assert_eq!(whole.len(), 7);
    assert_eq!(whole[0].1, Some(Condition::Ok));
    assert_eq!(whole[2].0, "*");
    assert_eq!(whole[2].1, None, "ID data is no status");
    assert_eq!(whole[3].0, "+");
    assert_eq!(
        (whole[5].0.as_str(), whole[5].1, whole[5].2.as_deref()),
        ("a", Some(Condition::No), Some("AUTHENTICATIONFAILED"))
    );
    assert_eq!(whole[6].1, Some(Condition::Bye));
    let total: usize = whole.iter().map(|r| r.3).sum();
    assert_eq!(total, STREAM.len());
    for chunk in 1..STREAM.len() {
        assert_eq!(parse_all(chunk), whole, "chunk size {chunk}");
    }
}

#[test]
fn prefixes_are_incomplete_or_whole() {
    let limits = ResponseLimits::default();
    for end in 0..STREAM.len() {
        match parse_response(&STREAM[..end], &limits) {
            Ok((_, used)) => assert!(used <= end),
            Err(ResponseError::Incomplete) => {}
            Err(e) => panic!("prefix {end}: {e}"),
        }
    }
}
