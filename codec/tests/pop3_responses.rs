//! Byte-exact tests of the POP3 response side: the status and continuation writers (and
//! how they neutralise line ends in their text), multi-line lines and bodies with
//! dot-stuffing and line-end normalisation, `TOP` bodies, and the client-side parsers of
//! status lines and multi-line blocks with their limits.

use codec::pop3::{
    continuation, dot_stuff, dot_stuff_top, err, multiline_end, multiline_line, multiline_start,
    ok, parse_multiline, parse_status_line, Limits, ResponseError, Status,
};

fn written(write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = b"previous ".to_vec();
    write(&mut out);
    // Writers append: what was there stays.
    assert_eq!(&out[..9], b"previous ");
    out.split_off(9)
}

fn show(bytes: &[u8]) -> String {
    format!("\"{}\"", bytes.escape_ascii())
}

#[test]
fn status_lines() {
    assert_eq!(written(|o| ok(o, "POP3 ready")), b"+OK POP3 ready\r\n");
    assert_eq!(written(|o| ok(o, b"")), b"+OK\r\n");
    assert_eq!(written(|o| ok(o, " x ")), b"+OK  x \r\n");
    assert_eq!(
        written(|o| err(o, "no such message")),
        b"-ERR no such message\r\n"
    );
    assert_eq!(written(|o| err(o, "")), b"-ERR\r\n");
    assert_eq!(
        written(|o| err(o, "[IN-USE] mailbox locked")),
        b"-ERR [IN-USE] mailbox locked\r\n"
    );
    assert_eq!(written(|o| continuation(o, "")), b"+ \r\n");
    assert_eq!(
        written(|o| continuation(o, "VXNlcm5hbWU6")),
        b"+ VXNlcm5hbWU6\r\n"
    );
    assert_eq!(
        written(|o| multiline_start(o, "2 messages")),
        b"+OK 2 messages\r\n"
    );
    assert_eq!(written(|o| multiline_start(o, "")), b"+OK\r\n");
    assert_eq!(written(multiline_end), b".\r\n");
}

#[test]
fn line_ends_in_text_become_spaces() {
    // A backend's or a client's text must not be able to end the line and forge another.
    assert_eq!(
        written(|o| err(o, "bad\r\n+OK forged")),
        b"-ERR bad  +OK forged\r\n"
    );
    assert_eq!(written(|o| ok(o, "a\nb\rc")), b"+OK a b c\r\n");
    assert_eq!(written(|o| continuation(o, "x\r\n")), b"+ x  \r\n");
    assert_eq!(written(|o| multiline_line(o, "a\r\n.\r\n")), b"a  .  \r\n");
    // Other bytes, UTF-8 included, pass unchanged.
    assert_eq!(
        written(|o| err(o, b"\x00\t\xc3\xa9")),
        b"-ERR \x00\t\xc3\xa9\r\n"
    );
}

#[test]
fn multiline_lines_are_stuffed() {
    assert_eq!(written(|o| multiline_line(o, "TOP")), b"TOP\r\n");
    assert_eq!(written(|o| multiline_line(o, "")), b"\r\n");
    assert_eq!(written(|o| multiline_line(o, ".")), b"..\r\n");
    assert_eq!(written(|o| multiline_line(o, "..x")), b"...x\r\n");
    assert_eq!(written(|o| multiline_line(o, " .")), b" .\r\n");
    assert_eq!(written(|o| multiline_line(o, "1 a.b")), b"1 a.b\r\n");
}

#[test]
fn bodies_are_stuffed_and_normalised() {
    let cases: Vec<(&[u8], &[u8])> = vec![
        (b"", b""),
        (b"\r\n", b"\r\n"),
        (b"\n", b"\r\n"),
        (b"a", b"a\r\n"),
        (b"a\r", b"a\r\n"),
        (b"a\r\nb\r\n", b"a\r\nb\r\n"),
        (b"a\nb\n", b"a\r\nb\r\n"),
        (b"a\nb", b"a\r\nb\r\n"),
        (b"a\r\n\r\n\r\nb", b"a\r\n\r\n\r\nb\r\n"),
        (b".\r\n", b"..\r\n"),
        (b".", b"..\r\n"),
        (b"..\n", b"...\r\n"),
        (b"x\r\n.\r\ny\r\n", b"x\r\n..\r\ny\r\n"),
        (b".a\n.b\r\n .c\n", b"..a\r\n..b\r\n .c\r\n"),
        // Only the CR of a CRLF is a line end; other CRs are data.
        (b"a\rb\r\n", b"a\rb\r\n"),
        (b"a\r\r\n", b"a\r\r\n"),
        (b"\r", b"\r\n"),
        (b"\r\r", b"\r\r\n"),
        (b"\n\n", b"\r\n\r\n"),
    ];
    for (body, wire) in cases {
        assert_eq!(written(|o| dot_stuff(o, body)), wire, "{}", show(body));
    }
}

const MESSAGE: &[u8] =
    b"From: a@example.com\r\nSubject: hi\r\n\r\nline 1\r\n.line 2\r\n\r\nline 4\r\n";

#[test]
fn top_sends_the_header_and_some_body_lines() {
    let header: &[u8] = b"From: a@example.com\r\nSubject: hi\r\n\r\n";
    let cases: Vec<(u32, &[u8])> = vec![
        (0, b""),
        (1, b"line 1\r\n"),
        (2, b"line 1\r\n..line 2\r\n"),
        (3, b"line 1\r\n..line 2\r\n\r\n"),
        (4, b"line 1\r\n..line 2\r\n\r\nline 4\r\n"),
        (5, b"line 1\r\n..line 2\r\n\r\nline 4\r\n"),
        (u32::MAX, b"line 1\r\n..line 2\r\n\r\nline 4\r\n"),
    ];
    for (n, body) in cases {
        let wire = written(|o| dot_stuff_top(o, MESSAGE, n));
        assert_eq!(wire, [header, body].concat(), "TOP {n}");
    }
    assert_eq!(
        written(|o| dot_stuff_top(o, MESSAGE, u32::MAX)),
        written(|o| dot_stuff(o, MESSAGE))
    );
    // Bare LFs, a header that is all there is, an empty header, an empty message.
    assert_eq!(
        written(|o| dot_stuff_top(o, b"A: 1\n\nb1\nb2\n", 1)),
        b"A: 1\r\n\r\nb1\r\n"
    );
    assert_eq!(
        written(|o| dot_stuff_top(o, b"A: 1\r\nB: 2", 0)),
        b"A: 1\r\nB: 2\r\n"
    );
    assert_eq!(
        written(|o| dot_stuff_top(o, b"\r\n.body\r\nmore\r\n", 1)),
        b"\r\n..body\r\n"
    );
    assert_eq!(written(|o| dot_stuff_top(o, b"", 3)), b"");
}

#[test]
fn status_lines_parse() {
    let limits = Limits::default();
    let cases: Vec<(&[u8], Status<'_>)> = vec![
        (b"+OK\r\n", Status::Ok(b"")),
        (
            b"+OK POP3 ready <1.2@host>\r\n",
            Status::Ok(b"POP3 ready <1.2@host>"),
        ),
        (b"+OK \r\n", Status::Ok(b"")),
        (b"+OK  two\r\n", Status::Ok(b" two")),
        (b"+OK bare LF\n", Status::Ok(b"bare LF")),
        (b"-ERR\r\n", Status::Err(b"")),
        (b"-ERR [AUTH] no\r\n", Status::Err(b"[AUTH] no")),
        (b"-ERR\n", Status::Err(b"")),
        (b"+\r\n", Status::Continuation(b"")),
        (b"+ \r\n", Status::Continuation(b"")),
        (b"+ VXNlcm5hbWU6\r\n", Status::Continuation(b"VXNlcm5hbWU6")),
        (b"+ OK\r\n", Status::Continuation(b"OK")),
        (b"+OK a\rb\r\r\n", Status::Ok(b"a\rb\r")),
    ];
    for (input, status) in cases {
        assert_eq!(
            parse_status_line(input, &limits),
            Ok((status, input.len())),
            "{}",
            show(input)
        );
        let followed = [input, b"+OK next\r\n"].concat();
        assert_eq!(
            parse_status_line(&followed, &limits),
            Ok((status, input.len()))
        );
        for cut in 0..input.len() {
            assert_eq!(
                parse_status_line(&input[..cut], &limits),
                Err(ResponseError::Incomplete),
                "{} cut at {cut}",
                show(input)
            );
        }
    }
    for bad in [
        &b"+OKAY\r\n"[..],
        b"-ERROR\r\n",
        b"OK\r\n",
        b"* OK IMAP4 ready\r\n",
        b"+ok\r\n",
        b"-err\r\n",
        b"\r\n",
        b" +OK\r\n",
        b"+\t\r\n",
        b"-\r\n",
    ] {
        assert_eq!(
            parse_status_line(bad, &limits),
            Err(ResponseError::Malformed),
            "{}",
            show(bad)
        );
    }
    let small = Limits { max_line: 8 };
    assert_eq!(
        parse_status_line(b"+OK abc\n", &small),
        Ok((Status::Ok(b"abc"), 8))
    );
    assert_eq!(
        parse_status_line(b"+OK abcd\n", &small),
        Err(ResponseError::TooLarge)
    );
    assert_eq!(
        parse_status_line(b"+OK abc\r", &small),
        Err(ResponseError::TooLarge)
    );
    assert_eq!(
        parse_status_line(b"+OK abc", &small),
        Err(ResponseError::Incomplete)
    );
}

#[test]
fn multiline_blocks_parse() {
    let cases: Vec<(&[u8], &[u8])> = vec![
        (b".\r\n", b""),
        (b".\n", b""),
        (b"TOP\r\nUSER\r\n.\r\n", b"TOP\r\nUSER\r\n"),
        (b"a\nb\n.\n", b"a\r\nb\r\n"),
        (b"a\nb\n.\r\n", b"a\r\nb\r\n"),
        (b"..\r\n.\r\n", b".\r\n"),
        (b"...\r\n.x\r\n.\r\n", b"..\r\nx\r\n"),
        (b"\r\n\r\n.\r\n", b"\r\n\r\n"),
        // Lines that look like the end but are not.
        (b" .\r\n.\r\n", b" .\r\n"),
        (b". \r\n.\r\n", b" \r\n"),
        (b".\r\r\n.\r\n", b"\r\r\n"),
        (b"x.\r\n.\r\n", b"x.\r\n"),
        (b"a\r\n.\r\n", b"a\r\n"),
    ];
    for (input, body) in cases {
        assert_eq!(
            parse_multiline(input, 1 << 20),
            Ok((body.to_vec(), input.len())),
            "{}",
            show(input)
        );
        let followed = [input, b"+OK\r\n.\r\n"].concat();
        assert_eq!(
            parse_multiline(&followed, 1 << 20),
            Ok((body.to_vec(), input.len()))
        );
        for cut in 0..input.len() {
            assert_eq!(
                parse_multiline(&input[..cut], 1 << 20),
                Err(ResponseError::Incomplete),
                "{} cut at {cut}",
                show(input)
            );
        }
    }
}

#[test]
fn multiline_size_bound_counts_the_terminator() {
    let block = b"line\r\n.\r\n";
    assert_eq!(
        parse_multiline(block, block.len()),
        Ok((b"line\r\n".to_vec(), block.len()))
    );
    assert_eq!(
        parse_multiline(block, block.len() - 1),
        Err(ResponseError::TooLarge)
    );
    // Too large as soon as the bound is reached without an end, not only at the end.
    assert_eq!(
        parse_multiline(&[b'x'; 100], 100),
        Err(ResponseError::TooLarge)
    );
    assert_eq!(
        parse_multiline(&[b'x'; 99], 100),
        Err(ResponseError::Incomplete)
    );
    assert_eq!(parse_multiline(b"", 0), Err(ResponseError::TooLarge));
    assert_eq!(parse_multiline(b"", 1), Err(ResponseError::Incomplete));
}

#[test]
fn a_written_response_reads_back() {
    let mut wire = Vec::new();
    multiline_start(&mut wire, "message follows");
    dot_stuff(&mut wire, MESSAGE);
    multiline_end(&mut wire);
    let limits = Limits::default();
    let (status, used) = parse_status_line(&wire, &limits).unwrap();
    assert_eq!(status, Status::Ok(b"message follows"));
    let (body, rest) = parse_multiline(&wire[used..], 1 << 20).unwrap();
    assert_eq!(body, MESSAGE);
    assert_eq!(used + rest, wire.len());
}
