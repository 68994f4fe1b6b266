//! Property tests of the memcached codec: arbitrary bytes never make `parse_request` or
//! `parse_response` panic or over-consume, and generated requests and responses come back
//! unchanged through `encode` and the parser.

use codec::memcache::{
    parse_request, parse_response, Keys, Limits, MetaFlags, MetaKey, ParseError, Request, Response,
    ResponseError, StoreCommand, MAX_BINARY_KEY_LEN,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};

// ---------------------------------------------------------------------------------------
// Strategies.

/// A byte allowed in a key: printable ASCII without space, sometimes a high byte.
fn key_byte() -> impl Strategy<Value = u8> {
    prop_oneof![9 => 0x21u8..=0x7e, 1 => 0x80u8..=0xff]
}

/// A key of 1..=250 bytes; a few keys that look like other tokens are mixed in.
fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => vec(key_byte(), 1..=16),
        3 => vec(key_byte(), 1..=250),
        1 => vec(key_byte(), 250..=250),
        1 => select(vec![
            b"noreply".to_vec(),
            b"0".to_vec(),
            b"-1".to_vec(),
            b"get".to_vec(),
            b"VALUE".to_vec(),
            b"k".to_vec(),
        ]),
    ]
}

/// Space-separated keys, as a multi-get sends them.
fn keys() -> impl Strategy<Value = Vec<u8>> {
    vec(key(), 1..=20).prop_map(|keys| keys.join(&b' '))
}

/// Data blocks: arbitrary bytes, or bytes rich in line ends.
fn data() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..300),
        vec(select(b"\r\n a".to_vec()), 0..40),
    ]
}

/// An exptime or delay: any 32-bit value, often a small one.
fn exptime() -> impl Strategy<Value = i64> {
    prop_oneof![any::<i32>(), -2..=100i32].prop_map(i64::from)
}

fn store_command() -> impl Strategy<Value = StoreCommand> {
    select(vec![
        StoreCommand::Set,
        StoreCommand::Add,
        StoreCommand::Replace,
        StoreCommand::Append,
        StoreCommand::Prepend,
        StoreCommand::Cas,
    ])
}

/// A valid run of meta flags (no duplicates, known letters), in any order.
fn meta_flags() -> impl Strategy<Value = Vec<u8>> {
    (
        subsequence(b"vcfkstqhluxIPLS".to_vec(), 0..=5),
        // memcached echoes an opaque token of up to 32 bytes, its letter included.
        option::of(vec(0x21u8..=0x7e, 0..=31)),
        option::of(any::<i32>()),
        option::of(any::<i32>()),
        option::of(any::<u64>()),
        option::of(any::<u32>()),
        option::of(select(b"ESAPRI+D-".to_vec())),
        option::of(any::<u64>()),
        option::of(any::<u64>()),
    )
        .prop_map(
            |(letters, opaque, ttl, vivify, cas, client_flags, mode, delta, initial)| {
                let mut tokens: Vec<Vec<u8>> = letters.into_iter().map(|l| vec![l]).collect();
                if let Some(opaque) = opaque {
                    tokens.push([&b"O"[..], &opaque].concat());
                }
                if let Some(ttl) = ttl {
                    tokens.push(format!("T{ttl}").into_bytes());
                }
                if let Some(vivify) = vivify {
                    tokens.push(format!("N{vivify}").into_bytes());
                }
                if let Some(cas) = cas {
                    tokens.push(format!("C{cas}").into_bytes());
                }
                if let Some(client_flags) = client_flags {
                    tokens.push(format!("F{client_flags}").into_bytes());
                }
                if let Some(mode) = mode {
                    tokens.push(vec![b'M', mode]);
                }
                if let Some(delta) = delta {
                    tokens.push(format!("D{delta}").into_bytes());
                }
                if let Some(initial) = initial {
                    tokens.push(format!("J{initial}").into_bytes());
                }
                tokens
            },
        )
        .prop_shuffle()
        .prop_map(|tokens| tokens.join(&b' '))
}

/// A meta command's key and, for a binary one (sent base64-encoded), a `b` among `flags`.
fn meta_key_and_flags() -> impl Strategy<Value = (Vec<u8>, bool, Vec<u8>)> {
    let key = prop_oneof![
        3 => key().prop_map(|k| (k, false)),
        1 => vec(any::<u8>(), 1..=MAX_BINARY_KEY_LEN).prop_map(|k| (k, true)),
    ];
    (key, meta_flags()).prop_map(|((key, binary), flags)| {
        let flags = match (binary, flags.is_empty()) {
            (false, _) => flags,
            (true, true) => b"b".to_vec(),
            (true, false) => [&flags[..], b" b"].concat(),
        };
        (key, binary, flags)
    })
}

fn meta_key(key: &[u8], binary: bool) -> MetaKey<'_> {
    if binary {
        MetaKey::binary(key).expect("binary key within bounds")
    } else {
        MetaKey::text(key)
    }
}

/// The meta commands that take a key and flags but no data.
#[derive(Debug, Clone, Copy)]
enum MetaCmd {
    Get,
    Delete,
    Arithmetic,
}

/// An owned request, from which a borrowing [`Request`] is made.
#[derive(Debug, Clone)]
enum OwnedRequest {
    Get {
        keys: Vec<u8>,
        with_cas: bool,
    },
    GetAndTouch {
        exptime: i64,
        keys: Vec<u8>,
        with_cas: bool,
    },
    Store {
        command: StoreCommand,
        key: Vec<u8>,
        flags: u32,
        exptime: i64,
        data: Vec<u8>,
        cas_unique: u64,
        noreply: bool,
    },
    Delete {
        key: Vec<u8>,
        noreply: bool,
    },
    Arithmetic {
        key: Vec<u8>,
        delta: u64,
        decrement: bool,
        noreply: bool,
    },
    Touch {
        key: Vec<u8>,
        exptime: i64,
        noreply: bool,
    },
    FlushAll {
        delay: i64,
        noreply: bool,
    },
    Verbosity {
        level: u32,
        noreply: bool,
    },
    Stats {
        group: Option<Vec<u8>>,
    },
    /// Boxed: a request is large (a binary meta key is held inline).
    Bare(Box<Request<'static>>),
    Meta {
        cmd: MetaCmd,
        key: Vec<u8>,
        binary: bool,
        flags: Vec<u8>,
    },
    MetaSet {
        key: Vec<u8>,
        binary: bool,
        data: Vec<u8>,
        flags: Vec<u8>,
    },
    MetaDebug {
        key: Vec<u8>,
        binary: bool,
    },
}

impl OwnedRequest {
    fn as_request(&self) -> Request<'_> {
        match self {
            Self::Get { keys, with_cas } => Request::Get {
                keys: Keys::new(keys),
                with_cas: *with_cas,
            },
            Self::GetAndTouch {
                exptime,
                keys,
                with_cas,
            } => Request::GetAndTouch {
                exptime: *exptime,
                keys: Keys::new(keys),
                with_cas: *with_cas,
            },
            Self::Store {
                command,
                key,
                flags,
                exptime,
                data,
                cas_unique,
                noreply,
            } => Request::Store {
                command: *command,
                key,
                flags: *flags,
                exptime: *exptime,
                data,
                cas_unique: *cas_unique,
                noreply: *noreply,
            },
            Self::Delete { key, noreply } => Request::Delete {
                key,
                noreply: *noreply,
            },
            Self::Arithmetic {
                key,
                delta,
                decrement,
                noreply,
            } => Request::Arithmetic {
                key,
                delta: *delta,
                decrement: *decrement,
                noreply: *noreply,
            },
            Self::Touch {
                key,
                exptime,
                noreply,
            } => Request::Touch {
                key,
                exptime: *exptime,
                noreply: *noreply,
            },
            Self::FlushAll { delay, noreply } => Request::FlushAll {
                delay: *delay,
                noreply: *noreply,
            },
            Self::Verbosity { level, noreply } => Request::Verbosity {
                level: *level,
                noreply: *noreply,
            },
            Self::Stats { group } => Request::Stats {
                group: group.as_deref(),
            },
            Self::Bare(request) => (**request).clone(),
            Self::Meta {
                cmd,
                key,
                binary,
                flags: raw,
            } => {
                let key = meta_key(key, *binary);
                let flags = MetaFlags::parse(raw).expect("valid flags");
                match cmd {
                    MetaCmd::Get => Request::MetaGet { key, flags },
                    MetaCmd::Delete => Request::MetaDelete { key, flags },
                    MetaCmd::Arithmetic => Request::MetaArithmetic { key, flags },
                }
            }
            Self::MetaSet {
                key,
                binary,
                data,
                flags: raw,
            } => Request::MetaSet {
                key: meta_key(key, *binary),
                data,
                flags: MetaFlags::parse(raw).expect("valid flags"),
            },
            Self::MetaDebug { key, binary } => Request::MetaDebug {
                key: meta_key(key, *binary),
            },
        }
    }
}

fn request() -> impl Strategy<Value = OwnedRequest> {
    prop_oneof![
        (keys(), any::<bool>()).prop_map(|(keys, with_cas)| OwnedRequest::Get { keys, with_cas }),
        (exptime(), keys(), any::<bool>()).prop_map(|(exptime, keys, with_cas)| {
            OwnedRequest::GetAndTouch {
                exptime,
                keys,
                with_cas,
            }
        }),
        (
            store_command(),
            key(),
            any::<u32>(),
            exptime(),
            data(),
            any::<u64>(),
            any::<bool>(),
        )
            .prop_map(|(command, key, flags, exptime, data, cas, noreply)| {
                OwnedRequest::Store {
                    command,
                    key,
                    flags,
                    exptime,
                    data,
                    cas_unique: if command == StoreCommand::Cas { cas } else { 0 },
                    noreply,
                }
            }),
        (key(), any::<bool>()).prop_map(|(key, noreply)| OwnedRequest::Delete { key, noreply }),
        (key(), any::<u64>(), any::<bool>(), any::<bool>()).prop_map(
            |(key, delta, decrement, noreply)| OwnedRequest::Arithmetic {
                key,
                delta,
                decrement,
                noreply,
            }
        ),
        (key(), exptime(), any::<bool>()).prop_map(|(key, exptime, noreply)| {
            OwnedRequest::Touch {
                key,
                exptime,
                noreply,
            }
        }),
        (exptime(), any::<bool>())
            .prop_map(|(delay, noreply)| OwnedRequest::FlushAll { delay, noreply }),
        (any::<u32>(), any::<bool>())
            .prop_map(|(level, noreply)| OwnedRequest::Verbosity { level, noreply }),
        option::of(vec(vec(0x21u8..=0x7e, 1..=12), 1..=3).prop_map(|words| words.join(&b' ')))
            .prop_map(|group| OwnedRequest::Stats { group }),
        select(vec![
            Request::Version,
            Request::Quit,
            Request::Shutdown,
            Request::MetaNoop,
        ])
        .prop_map(|request| OwnedRequest::Bare(Box::new(request))),
        (
            select(vec![MetaCmd::Get, MetaCmd::Delete, MetaCmd::Arithmetic]),
            meta_key_and_flags()
        )
            .prop_map(|(cmd, (key, binary, flags))| OwnedRequest::Meta {
                cmd,
                key,
                binary,
                flags
            }),
        (
            meta_key_and_flags().prop_filter("ms takes a storage mode", |(_, _, flags)| {
                MetaFlags::parse(flags).is_ok_and(|f| f.set_mode().is_ok())
            }),
            data()
        )
            .prop_map(|((key, binary, flags), data)| OwnedRequest::MetaSet {
                key,
                binary,
                data,
                flags
            }),
        (key(), any::<bool>()).prop_map(|(key, binary)| OwnedRequest::MetaDebug {
            binary: binary && key.len() <= MAX_BINARY_KEY_LEN,
            key,
        }),
    ]
}

/// An owned response, from which a borrowing [`Response`] is made.
#[derive(Debug, Clone)]
enum OwnedResponse {
    Bare(Response<'static>),
    Value {
        key: Vec<u8>,
        flags: u32,
        data: Vec<u8>,
        cas: Option<u64>,
    },
    Number(u64),
    Version(Vec<u8>),
    Stat {
        name: Vec<u8>,
        value: Vec<u8>,
    },
    ClientError(Vec<u8>),
    ServerError(Vec<u8>),
    Meta {
        code: [u8; 2],
        flags: Vec<u8>,
    },
    MetaValue {
        data: Vec<u8>,
        flags: Vec<u8>,
    },
    MetaDebug(Vec<u8>),
}

impl OwnedResponse {
    fn as_response(&self) -> Response<'_> {
        match self {
            Self::Bare(response) => response.clone(),
            Self::Value {
                key,
                flags,
                data,
                cas,
            } => Response::Value {
                key,
                flags: *flags,
                data,
                cas: *cas,
            },
            Self::Number(n) => Response::Number(*n),
            Self::Version(text) => Response::Version(text),
            Self::Stat { name, value } => Response::Stat { name, value },
            Self::ClientError(text) => Response::ClientError(text),
            Self::ServerError(text) => Response::ServerError(text),
            Self::Meta { code, flags } => Response::Meta { code: *code, flags },
            Self::MetaValue { data, flags } => Response::MetaValue { data, flags },
            Self::MetaDebug(text) => Response::MetaDebug(text),
        }
    }
}

/// Free text for a reply line: printable, with spaces, sometimes any byte but `\n`.
fn text() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => vec(0x20u8..=0x7e, 0..60),
        1 => vec(any::<u8>().prop_filter("no newline", |&b| b != b'\n'), 0..60),
    ]
}

/// Return flags of a meta reply: a run of space-separated tokens (possibly none).
fn return_flags() -> impl Strategy<Value = Vec<u8>> {
    vec(vec(0x21u8..=0x7e, 1..=12), 0..=5).prop_map(|tokens| tokens.join(&b' '))
}

fn response() -> impl Strategy<Value = OwnedResponse> {
    prop_oneof![
        select(vec![
            Response::Stored,
            Response::NotStored,
            Response::Exists,
            Response::NotFound,
            Response::Deleted,
            Response::Touched,
            Response::Ok,
            Response::End,
            Response::Reset,
            Response::Error,
        ])
        .prop_map(OwnedResponse::Bare),
        (key(), any::<u32>(), data(), option::of(any::<u64>())).prop_map(
            |(key, flags, data, cas)| OwnedResponse::Value {
                key,
                flags,
                data,
                cas,
            }
        ),
        any::<u64>().prop_map(OwnedResponse::Number),
        text().prop_map(OwnedResponse::Version),
        (vec(0x21u8..=0x7e, 1..=30), text())
            .prop_map(|(name, value)| OwnedResponse::Stat { name, value }),
        text().prop_map(OwnedResponse::ClientError),
        text().prop_map(OwnedResponse::ServerError),
        (
            select(vec![*b"HD", *b"NF", *b"NS", *b"EX", *b"EN", *b"MN"]),
            return_flags()
        )
            .prop_map(|(code, flags)| OwnedResponse::Meta { code, flags }),
        (data(), return_flags()).prop_map(|(data, flags)| OwnedResponse::MetaValue { data, flags }),
        text().prop_map(OwnedResponse::MetaDebug),
    ]
}

/// Byte soup made of protocol fragments, to reach deeper than uniform random bytes do.
fn soup() -> impl Strategy<Value = Vec<u8>> {
    let pieces: Vec<&'static [u8]> = vec![
        b"get ",
        b"gets ",
        b"gat ",
        b"set ",
        b"add ",
        b"cas ",
        b"delete ",
        b"incr ",
        b"decr ",
        b"touch ",
        b"flush_all",
        b"version",
        b"verbosity ",
        b"stats",
        b"quit",
        b"ms ",
        b"mg ",
        b"md ",
        b"ma ",
        b"me ",
        b"mn",
        b"noreply",
        b"k ",
        b"key ",
        b"0 ",
        b"1 ",
        b"2 ",
        b"-1 ",
        b"4294967296 ",
        b"99999999999999999999999 ",
        b"\r\n",
        b"\n",
        b"\r",
        b" ",
        b"   ",
        b"hi",
        b"v ",
        b"T60 ",
        b"O123 ",
        b"MA ",
        b"q ",
        b"VALUE ",
        b"VA ",
        b"STAT ",
        b"END",
        b"STORED",
        b"HD ",
        b"EN",
        b"CLIENT_ERROR ",
        b"\x80",
        b"\x00",
        b"\xff",
    ];
    vec(select(pieces), 0..200).prop_map(|pieces| pieces.concat())
}

// ---------------------------------------------------------------------------------------
// Drivers.

/// What parsing a buffer the way a server does (honouring `swallow`) gives, owned.
fn request_events(input: &[u8], cut: usize) -> Vec<String> {
    let limits = Limits::default();
    let mut events = Vec::new();
    let mut start = 0;
    let mut swallow = 0;
    // First only `input[..cut]` has arrived, then the rest.
    for end in [cut, input.len()] {
        loop {
            let skip = swallow.min(end - start);
            start += skip;
            swallow -= skip;
            if swallow > 0 {
                break;
            }
            let buf = &input[start..end];
            match parse_request(buf, &limits) {
                Ok(parsed) => {
                    assert!(parsed.consumed > 0 && parsed.consumed <= buf.len());
                    events.push(format!("{parsed:?}"));
                    start += parsed.consumed;
                    swallow = parsed.swallow;
                }
                Err(ParseError::Incomplete { needed }) => {
                    if let Some(needed) = needed {
                        assert!(needed > buf.len());
                    }
                    break;
                }
                Err(e @ ParseError::Invalid { consumed, .. }) => {
                    assert!(consumed > 0 && consumed <= buf.len());
                    events.push(format!("{e:?}"));
                    start += consumed;
                    if let ParseError::Invalid { swallow: s, .. } = e {
                        swallow = s;
                    }
                }
                Err(e) => {
                    events.push(format!("{e:?}"));
                    return events;
                }
            }
        }
    }
    events
}

/// Every response in `input`, in order, until the first error.
fn response_events(input: &[u8]) -> Vec<String> {
    let mut events = Vec::new();
    let mut rest = input;
    loop {
        match parse_response(rest) {
            Ok((response, used)) => {
                assert!(used > 0 && used <= rest.len());
                events.push(format!("{response:?}"));
                rest = &rest[used..];
            }
            Err(e) => {
                events.push(format!("{e:?}"));
                return events;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Properties.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random bytes: no panic, and every result stays within the buffer.
    #[test]
    fn random_bytes_never_panic(input in vec(any::<u8>(), 0..4096)) {
        let _ = request_events(&input, input.len());
        let _ = response_events(&input);
    }

    /// Protocol-like soup: no panic, and the outcome does not depend on where the bytes
    /// were split between two reads.
    #[test]
    fn soup_never_panics_and_splits_do_not_matter(input in soup(), cut in any::<prop::sample::Index>()) {
        let whole = request_events(&input, input.len());
        let split = request_events(&input, cut.index(input.len() + 1));
        prop_assert_eq!(whole, split);
        let _ = response_events(&input);
    }

    /// Requests survive encode and parse, one after another in a pipeline.
    #[test]
    fn requests_round_trip(owned in vec(request(), 1..=4)) {
        let requests: Vec<Request<'_>> = owned.iter().map(OwnedRequest::as_request).collect();
        let mut wire = Vec::new();
        let mut lengths = Vec::new();
        for request in &requests {
            let before = wire.len();
            request.encode(&mut wire);
            lengths.push(wire.len() - before);
        }
        let limits = Limits::default();
        let mut rest = &wire[..];
        for (request, length) in requests.iter().zip(lengths) {
            let parsed = parse_request(rest, &limits);
            let parsed = match parsed {
                Ok(parsed) => parsed,
                Err(e) => {
                    return Err(TestCaseError::fail(format!(
                        "{e:?} for {:?}",
                        rest[..length].escape_ascii().to_string()
                    )))
                }
            };
            prop_assert_eq!(&parsed.request, request);
            prop_assert_eq!(parsed.consumed, length);
            prop_assert_eq!(parsed.swallow, 0);
            rest = &rest[length..];
        }
        prop_assert!(rest.is_empty());
        prop_assert_eq!(
            parse_request(rest, &limits),
            Err(ParseError::Incomplete { needed: None })
        );
    }

    /// Responses survive encode and parse, one after another.
    #[test]
    fn responses_round_trip(owned in vec(response(), 1..=4)) {
        let responses: Vec<Response<'_>> = owned.iter().map(OwnedResponse::as_response).collect();
        let mut wire = Vec::new();
        let mut lengths = Vec::new();
        for response in &responses {
            let before = wire.len();
            response.encode(&mut wire);
            lengths.push(wire.len() - before);
        }
        let mut rest = &wire[..];
        for (response, length) in responses.iter().zip(lengths) {
            let (parsed, used) = match parse_response(rest) {
                Ok(ok) => ok,
                Err(e) => {
                    return Err(TestCaseError::fail(format!(
                        "{e:?} for {:?}",
                        rest[..length].escape_ascii().to_string()
                    )))
                }
            };
            prop_assert_eq!(&parsed, response);
            prop_assert_eq!(used, length);
            rest = &rest[used..];
        }
        prop_assert_eq!(parse_response(rest), Err(ResponseError::Incomplete));
    }
}
