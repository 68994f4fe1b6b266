//! Chunk sweep of the memcached codec: a long, varied pipeline of requests (and one of
//! responses) parsed from the whole buffer must give exactly the same sequence when the bytes
//! arrive in pieces of every size from 1 to 512 and the parser is called after each piece.

use codec::memcache::{
    parse_request, parse_response, Keys, Limits, MetaFlags, MetaKey, ParseError, Request, Response,
    ResponseError, StoreCommand,
};

/// The item limit is lowered so the refused blocks in the pipeline stay small (the sweep runs
/// 513 times); everything else is the default.
const LIMITS: Limits = Limits {
    max_line: 2048,
    max_get_line: 1 << 20,
    max_item_size: 4096,
};

/// One outcome of `parse_request`, owned so that runs can be compared.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    /// A request, by its encoding (which keeps every field), and the framing numbers.
    Request {
        wire: Vec<u8>,
        consumed: usize,
        swallow: usize,
    },
    /// Anything but `Incomplete`.
    Error(ParseError),
}

fn encode(request: &Request<'_>) -> Vec<u8> {
    let mut wire = Vec::new();
    request.encode(&mut wire);
    wire
}

/// Feeds `input` to the parser `chunk` bytes at a time, the way a server's read loop does:
/// parse until `Incomplete`, skip refused data blocks (`swallow`) as they arrive, keep the
/// unparsed rest and append the next read.
fn requests_in_chunks(input: &[u8], chunk: usize) -> Vec<Event> {
    let mut buf: Vec<u8> = Vec::new();
    let mut start = 0;
    let mut swallow = 0;
    let mut fed = 0;
    let mut events = Vec::new();
    loop {
        let skip = swallow.min(buf.len() - start);
        start += skip;
        swallow -= skip;
        if swallow == 0 {
            match parse_request(&buf[start..], &LIMITS) {
                Ok(parsed) => {
                    assert!(parsed.consumed > 0 && parsed.consumed <= buf.len() - start);
                    events.push(Event::Request {
                        wire: encode(&parsed.request),
                        consumed: parsed.consumed,
                        swallow: parsed.swallow,
                    });
                    start += parsed.consumed;
                    swallow = parsed.swallow;
                    continue;
                }
                Err(ParseError::Incomplete { needed }) => {
                    if let Some(needed) = needed {
                        assert!(
                            needed > buf.len() - start,
                            "needed {needed} is already here"
                        );
                    }
                }
                Err(
                    e @ ParseError::Invalid {
                        consumed,
                        swallow: skip,
                        ..
                    },
                ) => {
                    assert!(consumed > 0 && consumed <= buf.len() - start);
                    events.push(Event::Error(e));
                    start += consumed;
                    swallow = skip;
                    continue;
                }
                Err(e) => {
                    // Fatal: the connection would be closed.
                    events.push(Event::Error(e));
                    return events;
                }
            }
        }
        if fed == input.len() {
            break;
        }
        buf.drain(..start);
        start = 0;
        let end = (fed + chunk).min(input.len());
        buf.extend_from_slice(&input[fed..end]);
        fed = end;
    }
    assert_eq!(start, buf.len(), "unparsed bytes left at the end");
    assert_eq!(swallow, 0, "a refused block was cut short");
    events
}

/// The request pipeline and the events it must give.
#[derive(Default)]
struct Pipeline {
    bytes: Vec<u8>,
    events: Vec<Event>,
}

impl Pipeline {
    /// A request in its canonical encoding.
    fn request(&mut self, request: Request<'_>) {
        let wire = encode(&request);
        self.bytes.extend_from_slice(&wire);
        self.events.push(Event::Request {
            consumed: wire.len(),
            wire,
            swallow: 0,
        });
    }

    /// A request written some other way (spacing, line ends, legacy forms).
    fn raw(&mut self, raw: &[u8], same_as: Request<'_>) {
        self.bytes.extend_from_slice(raw);
        self.events.push(Event::Request {
            wire: encode(&same_as),
            consumed: raw.len(),
            swallow: 0,
        });
    }

    /// An over-limit storage command: its line, then a data block that must be skipped.
    fn too_large(&mut self, line: &[u8], data: &[u8], same_as: Request<'_>) {
        self.bytes.extend_from_slice(line);
        self.bytes.extend_from_slice(data);
        self.bytes.extend_from_slice(b"\r\n");
        self.events.push(Event::Request {
            wire: encode(&same_as),
            consumed: line.len(),
            swallow: data.len() + 2,
        });
    }

    /// Bytes that give one `Invalid`: `consumed` of them, then the rest is swallowed.
    fn invalid(&mut self, raw: &[u8], reply: &'static str, consumed: usize, noreply: bool) {
        self.bytes.extend_from_slice(raw);
        self.events.push(Event::Error(ParseError::Invalid {
            reply,
            consumed,
            swallow: raw.len() - consumed,
            noreply,
        }));
    }

    /// Bytes whose events are given separately (for sequences of errors).
    fn bytes_only(&mut self, raw: &[u8]) {
        self.bytes.extend_from_slice(raw);
    }

    fn error(&mut self, reply: &'static str, consumed: usize, noreply: bool) {
        self.events.push(Event::Error(ParseError::Invalid {
            reply,
            consumed,
            swallow: 0,
            noreply,
        }));
    }
}

fn store<'a>(
    command: StoreCommand,
    key: &'a [u8],
    flags: u32,
    data: &'a [u8],
    noreply: bool,
) -> Request<'a> {
    Request::Store {
        command,
        key,
        flags,
        exptime: 0,
        data,
        cas_unique: if command == StoreCommand::Cas { 99 } else { 0 },
        noreply,
    }
}

fn meta(raw: &[u8]) -> MetaFlags<'_> {
    MetaFlags::parse(raw).expect("valid test flags")
}

/// Data with line ends and protocol text inside, `len` bytes long.
fn tricky_data(len: usize) -> Vec<u8> {
    b"get x\r\nEND\r\n\n\r\0\xff set a 0 0 1\r\n"
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

fn request_pipeline(keys5000: &[u8]) -> Pipeline {
    use StoreCommand::{Add, Append, Cas, Prepend, Replace, Set};
    let data3000 = tricky_data(3000);
    let data5000 = tricky_data(5000);
    let crlf_data: &[u8] = b"a\r\nb\r\n\r\nc";
    let key250 = [b'K'; 250];
    let mut p = Pipeline::default();

    // Retrieval.
    p.request(Request::Get {
        keys: Keys::new(b"k1"),
        with_cas: false,
    });
    p.request(Request::Get {
        keys: Keys::new(b"k1 k2 k3"),
        with_cas: true,
    });
    p.request(Request::GetAndTouch {
        exptime: 10,
        keys: Keys::new(b"a"),
        with_cas: false,
    });
    p.request(Request::GetAndTouch {
        exptime: -1,
        keys: Keys::new(b"a b"),
        with_cas: true,
    });
    p.request(Request::Get {
        keys: Keys::new(&key250),
        with_cas: false,
    });
    p.request(Request::Get {
        keys: Keys::new(keys5000),
        with_cas: false,
    });
    p.raw(
        b"get a\n",
        Request::Get {
            keys: Keys::new(b"a"),
            with_cas: false,
        },
    );
    p.raw(
        b"gets   a   b\r\n",
        Request::Get {
            keys: Keys::new(b"a   b"),
            with_cas: true,
        },
    );

    // Storage, with data blocks holding line ends.
    p.request(store(Set, b"s1", 5, crlf_data, false));
    p.request(store(Add, b"s2", 0, b"", true));
    p.request(store(Replace, b"s3", 1, b"\r\n", false));
    p.request(store(Append, b"s4", 0, b"\n", true));
    p.request(store(Prepend, b"s5", 0, b"\r", false));
    p.request(store(Cas, b"s6", 7, crlf_data, false));
    p.request(store(Cas, b"s7", 7, b"x", true));
    p.request(store(Set, b"big3000", 0, &data3000, false));
    p.request(store(Set, &key250, u32::MAX, b"v", false));
    p.raw(
        b"set   sp  0  0   2  noreply \r\nhi\r\n",
        store(Set, b"sp", 0, b"hi", true),
    );
    p.raw(b"set lf 0 0 2\nhi\r\n", store(Set, b"lf", 0, b"hi", false));
    p.too_large(
        b"set huge 0 0 5000\r\n",
        &data5000,
        Request::StoreTooLarge {
            command: Set,
            key: b"huge",
            noreply: false,
        },
    );
    p.too_large(
        b"cas huge 0 0 5000 1 noreply\r\n",
        &data5000,
        Request::StoreTooLarge {
            command: Cas,
            key: b"huge",
            noreply: true,
        },
    );

    // Other keyed commands.
    p.request(Request::Delete {
        key: b"d",
        noreply: false,
    });
    p.request(Request::Delete {
        key: b"d",
        noreply: true,
    });
    p.raw(
        b"delete d 0\r\n",
        Request::Delete {
            key: b"d",
            noreply: false,
        },
    );
    p.raw(
        b"delete d 0 noreply\r\n",
        Request::Delete {
            key: b"d",
            noreply: true,
        },
    );
    p.request(Request::Arithmetic {
        key: b"n",
        delta: 1,
        decrement: false,
        noreply: false,
    });
    p.request(Request::Arithmetic {
        key: b"n",
        delta: u64::MAX,
        decrement: true,
        noreply: true,
    });
    p.request(Request::Touch {
        key: b"t",
        exptime: 60,
        noreply: false,
    });
    p.request(Request::Touch {
        key: b"t",
        exptime: -1,
        noreply: true,
    });

    // Non-keyed commands.
    p.raw(
        b"flush_all\r\n",
        Request::FlushAll {
            delay: 0,
            noreply: false,
        },
    );
    p.request(Request::FlushAll {
        delay: 30,
        noreply: true,
    });
    p.raw(
        b"flush_all noreply\n",
        Request::FlushAll {
            delay: 0,
            noreply: true,
        },
    );
    p.request(Request::Version);
    p.raw(b"version 1 2 3\r\n", Request::Version);
    p.request(Request::Verbosity {
        level: 1,
        noreply: false,
    });
    p.request(Request::Verbosity {
        level: 0,
        noreply: true,
    });
    p.request(Request::Stats { group: None });
    p.request(Request::Stats {
        group: Some(b"slabs"),
    });
    p.request(Request::Shutdown);

    // Meta commands.
    p.request(Request::MetaNoop);
    p.request(Request::MetaGet {
        key: MetaKey::text(b"mk"),
        flags: meta(b"v f t k s c"),
    });
    p.request(Request::MetaGet {
        key: MetaKey::text(b"mk"),
        flags: meta(b""),
    });
    p.request(Request::MetaSet {
        key: MetaKey::text(b"mk"),
        data: crlf_data,
        flags: meta(b"T60 F7 c"),
    });
    p.request(Request::MetaSet {
        key: MetaKey::text(b"mk"),
        data: &data3000,
        flags: meta(b"MA q O12345"),
    });
    p.too_large(
        b"ms mhuge 5000 T0\r\n",
        &data5000,
        Request::MetaSetTooLarge {
            key: MetaKey::text(b"mhuge"),
            flags: meta(b"T0"),
        },
    );
    p.request(Request::MetaDelete {
        key: MetaKey::text(b"mk"),
        flags: meta(b"q"),
    });
    p.request(Request::MetaArithmetic {
        key: MetaKey::text(b"cnt"),
        flags: meta(b"N0 J10 v"),
    });
    p.request(Request::MetaArithmetic {
        key: MetaKey::text(b"cnt"),
        flags: meta(b"MD D100 v"),
    });
    p.request(Request::MetaDebug {
        key: MetaKey::text(b"mk"),
    });
    // Base64 keys (`b`): binary bytes, re-encoded canonically.
    p.request(Request::MetaSet {
        key: MetaKey::binary(b"\x00 \r\n\xff").expect("short key"),
        data: b"bin",
        flags: meta(b"b k c"),
    });
    p.request(Request::MetaGet {
        key: MetaKey::binary(b"foo").expect("short key"),
        flags: meta(b"v b k"),
    });
    p.raw(
        b"md !!Zm9v!! q b\r\n",
        Request::MetaDelete {
            key: MetaKey::binary(b"foo").expect("short key"),
            flags: meta(b"q b"),
        },
    );
    p.request(Request::MetaArithmetic {
        key: MetaKey::binary(b"cnt").expect("short key"),
        flags: meta(b"b N0 J+1"),
    });
    p.request(Request::MetaDebug {
        key: MetaKey::binary(b"\x01\x02").expect("short key"),
    });
    p.raw(
        b"mg  mk   v  \n",
        Request::MetaGet {
            key: MetaKey::text(b"mk"),
            flags: meta(b"v  "),
        },
    );
    p.request(Request::MetaNoop);

    // Errors, each followed by recovery at the next request.
    p.invalid(b"bogus\r\n", "ERROR", 7, false);
    p.invalid(b"\r\n", "ERROR", 2, false);
    p.invalid(b"\n", "ERROR", 1, false);
    p.invalid(b"GET foo\r\n", "ERROR", 9, false);
    p.invalid(b"get\r\n", "ERROR", 5, false);
    p.invalid(
        b"verbosity noreply\r\n",
        "CLIENT_ERROR bad command line format",
        19,
        true,
    );
    p.invalid(
        b"incr n x\r\n",
        "CLIENT_ERROR invalid numeric delta argument",
        10,
        false,
    );
    p.invalid(
        b"touch t x noreply\r\n",
        "CLIENT_ERROR invalid exptime argument",
        19,
        true,
    );
    p.invalid(
        b"delete d 5\r\n",
        "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]",
        12,
        false,
    );
    p.invalid(
        b"ms k\r\n",
        "CLIENT_ERROR bad command line format",
        6,
        false,
    );
    p.invalid(
        b"ms a 4 z\r\n\r\n\r\n\r\n",
        "CLIENT_ERROR invalid flag",
        10,
        false,
    );
    p.invalid(b"mg a v v\r\n", "CLIENT_ERROR duplicate flag", 10, false);
    p.invalid(
        b"mg abc b\r\n",
        "CLIENT_ERROR error decoding key",
        10,
        false,
    );
    // A refused ms mode skips the announced block unread: "xy\r", leaving "\n".
    p.invalid(
        b"ms a 1 MX\r\nxy\r",
        "CLIENT_ERROR invalid mode for ms M token",
        11,
        false,
    );
    p.bytes_only(b"\n");
    p.error("ERROR", 1, false);
    // A wrong data length: the stray "\n" is read as an empty command.
    p.bytes_only(b"set a 0 0 3\r\nabcd\r\n");
    p.error("CLIENT_ERROR bad data chunk", 18, false);
    p.error("ERROR", 1, false);
    // An invalid key: the data block is read as a command.
    p.bytes_only(&[&b"set "[..], &[b'k'; 251], b" 0 0 2 noreply\r\nhi\r\n"].concat());
    p.error("CLIENT_ERROR bad command line format", 4 + 251 + 16, true);
    p.error("ERROR", 4, false);

    p.request(Request::Quit);
    p.request(Request::MetaNoop);
    p
}

/// 5000 distinct keys of 1 to 3 bytes (base 36), space separated. The keys are short because
/// the parser keeps no state: every piece of a line still arriving makes it scan the line
/// again, so the sweep costs the square of the line length.
fn keys5000() -> Vec<u8> {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    for i in 0..5000usize {
        if i > 0 {
            out.push(b' ');
        }
        let mut key = Vec::new();
        let mut n = i;
        loop {
            key.push(DIGITS[n % 36]);
            n /= 36;
            if n == 0 {
                break;
            }
        }
        key.reverse();
        out.extend_from_slice(&key);
    }
    out
}

#[test]
fn requests_whole_buffer() {
    let keys = keys5000();
    let distinct: std::collections::HashSet<&[u8]> = Keys::new(&keys).iter().collect();
    assert_eq!(distinct.len(), 5000);
    let p = request_pipeline(&keys);
    let events = requests_in_chunks(&p.bytes, p.bytes.len());
    assert_eq!(events.len(), p.events.len());
    for (i, (got, want)) in events.iter().zip(&p.events).enumerate() {
        assert_eq!(got, want, "event {i}");
    }
}

#[test]
fn requests_every_chunk_size() {
    let keys = keys5000();
    let p = request_pipeline(&keys);
    let whole = requests_in_chunks(&p.bytes, p.bytes.len());
    for chunk in 1..=512 {
        let events = requests_in_chunks(&p.bytes, chunk);
        if events != whole {
            let first = events
                .iter()
                .zip(&whole)
                .position(|(a, b)| a != b)
                .unwrap_or(events.len().min(whole.len()));
            panic!(
                "chunk size {chunk}: {} events instead of {}; first difference at {first}: \
                 {:?} instead of {:?}",
                events.len(),
                whole.len(),
                events.get(first),
                whole.get(first)
            );
        }
    }
}

#[test]
fn fatal_errors_end_the_sweep_at_the_same_place() {
    for (tail, fatal) in [
        (&b"\x80\x00\x00\x00"[..], ParseError::Binary),
        (&[b'x'; 3000][..], ParseError::LineTooLong),
    ] {
        let input = [
            &b"get a\r\nset b 0 0 1\r\nx\r\n"[..],
            tail,
            b"\r\nget c\r\n",
        ]
        .concat();
        let whole = requests_in_chunks(&input, input.len());
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[2], Event::Error(fatal));
        for chunk in 1..=512 {
            assert_eq!(
                requests_in_chunks(&input, chunk),
                whole,
                "chunk size {chunk}"
            );
        }
    }
}

/// Feeds `input` to the response parser `chunk` bytes at a time; each response by its
/// encoding and the bytes it used.
fn responses_in_chunks(input: &[u8], chunk: usize) -> Vec<(Vec<u8>, usize)> {
    let mut buf: Vec<u8> = Vec::new();
    let mut start = 0;
    let mut fed = 0;
    let mut out = Vec::new();
    loop {
        match parse_response(&buf[start..]) {
            Ok((response, used)) => {
                assert!(used > 0 && used <= buf.len() - start);
                let mut wire = Vec::new();
                response.encode(&mut wire);
                out.push((wire, used));
                start += used;
                continue;
            }
            Err(ResponseError::Incomplete) => {}
            Err(ResponseError::Malformed) => panic!(
                "malformed at chunk size {chunk}: {:?}",
                buf[start..].escape_ascii().to_string()
            ),
        }
        if fed == input.len() {
            break;
        }
        buf.drain(..start);
        start = 0;
        let end = (fed + chunk).min(input.len());
        buf.extend_from_slice(&input[fed..end]);
        fed = end;
    }
    assert_eq!(start, buf.len(), "unparsed bytes left at the end");
    out
}

fn response_pipeline() -> (Vec<u8>, Vec<(Vec<u8>, usize)>) {
    let data3000 = tricky_data(3000);
    let names: Vec<String> = (0..300).map(|i| format!("key:{i}")).collect();
    let mut responses = vec![
        Response::Value {
            key: b"a",
            flags: 0,
            data: b"hello",
            cas: None,
        },
        Response::Value {
            key: b"b",
            flags: u32::MAX,
            data: b"x\r\ny\r\n",
            cas: Some(276),
        },
        Response::Value {
            key: b"c",
            flags: 1,
            data: b"",
            cas: Some(u64::MAX),
        },
        Response::Value {
            key: b"d",
            flags: 2,
            data: &data3000,
            cas: None,
        },
        Response::End,
    ];
    for (i, name) in names.iter().enumerate() {
        responses.push(Response::Value {
            key: name.as_bytes(),
            flags: i as u32,
            data: name.as_bytes(),
            cas: (i % 2 == 0).then_some(i as u64),
        });
    }
    responses.extend([
        Response::End,
        Response::Stored,
        Response::NotStored,
        Response::Exists,
        Response::NotFound,
        Response::Deleted,
        Response::Touched,
        Response::Ok,
        Response::Reset,
        Response::Number(0),
        Response::Number(42),
        Response::Number(u64::MAX),
        Response::Version(b"1.6.18"),
        Response::Stat {
            name: b"pid",
            value: b"1234",
        },
        Response::Stat {
            name: b"version",
            value: b"1.6.18 with spaces",
        },
        Response::Stat {
            name: b"empty",
            value: b"",
        },
        Response::End,
        Response::MetaValue {
            data: b"hi",
            flags: b"f7 t60 kmk s2 c276",
        },
        Response::MetaValue {
            data: b"\r\n",
            flags: b"",
        },
        Response::MetaValue {
            data: &data3000,
            flags: b"O123",
        },
        Response::MetaValue {
            data: b"",
            flags: b"b",
        },
        Response::Meta {
            code: *b"HD",
            flags: b"",
        },
        Response::Meta {
            code: *b"HD",
            flags: b"c277 O9 kmk",
        },
        Response::Meta {
            code: *b"EN",
            flags: b"",
        },
        Response::Meta {
            code: *b"NF",
            flags: b"O1",
        },
        Response::Meta {
            code: *b"NS",
            flags: b"",
        },
        Response::Meta {
            code: *b"EX",
            flags: b"",
        },
        Response::MetaDebug(b"mk exp=-1 la=3 cas=276 fetch=no cls=1 size=63"),
        Response::Meta {
            code: *b"MN",
            flags: b"",
        },
        Response::Error,
        Response::ClientError(b"bad data chunk"),
        Response::ServerError(b"object too large for cache"),
        Response::Meta {
            code: *b"MN",
            flags: b"",
        },
    ]);
    let mut bytes = Vec::new();
    let mut want = Vec::new();
    for response in &responses {
        let mut wire = Vec::new();
        response.encode(&mut wire);
        bytes.extend_from_slice(&wire);
        want.push((wire.clone(), wire.len()));
    }
    (bytes, want)
}

#[test]
fn responses_whole_buffer() {
    let (bytes, want) = response_pipeline();
    assert_eq!(responses_in_chunks(&bytes, bytes.len()), want);
}

#[test]
fn responses_every_chunk_size() {
    let (bytes, want) = response_pipeline();
    for chunk in 1..=512 {
        let got = responses_in_chunks(&bytes, chunk);
        if got != want {
            let first = got.iter().zip(&want).position(|(a, b)| a != b);
            panic!(
                "chunk size {chunk}: {} responses instead of {}, first difference at {first:?}",
                got.len(),
                want.len()
            );
        }
    }
}
