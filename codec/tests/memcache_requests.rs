//! Table-driven tests of `codec::memcache::parse_request` with the default limits: every
//! classic and meta command, memcached 1.6's exact error strings and `noreply` handling, and
//! the framing rules (line endings, spaces, line and item limits, the binary magic byte).

use codec::memcache::{
    item_size, parse_request, Keys, Limits, MetaFlags, MetaKey, ParseError, Parsed, Request,
    StoreCommand, MAX_KEY_LEN,
};

const BAD_FORMAT: &str = "CLIENT_ERROR bad command line format";
const BAD_CHUNK: &str = "CLIENT_ERROR bad data chunk";
const BAD_EXPTIME: &str = "CLIENT_ERROR invalid exptime argument";
const BAD_DELTA: &str = "CLIENT_ERROR invalid numeric delta argument";
const MA_BAD_FLAG: &str = "CLIENT_ERROR invalid or duplicate flag";
const DELETE_USAGE: &str = "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]";

/// What one input must parse to.
enum Want<'a> {
    /// The request, using the whole input.
    Req(Request<'a>),
    /// The request, using the first line only, then skipping `swallow` bytes.
    ReqLine(Request<'a>, usize),
    /// The request, using the first `consumed` bytes.
    ReqAt(Request<'a>, usize),
    /// `Invalid { reply, noreply }`, consuming the whole input without swallowing.
    Err(&'static str, bool),
    /// `Invalid { reply, noreply }`, consuming the first line, then skipping `swallow` bytes.
    ErrLine(&'static str, usize, bool),
    /// `Invalid { reply, noreply }`, consuming the first `consumed` bytes.
    ErrAt(&'static str, usize, bool),
    /// Any other error, exactly.
    Fail(ParseError),
}

/// Builds a `Vec<(&[u8], Want)>` from `input => want` rows.
macro_rules! table {
    ($($input:expr => $want:expr),* $(,)?) => {
        vec![$((&$input[..], $want)),*]
    };
}

/// Length of the first line of `input`, newline included.
fn line_len(input: &[u8]) -> usize {
    input.iter().position(|&b| b == b'\n').expect("a line") + 1
}

fn show(input: &[u8]) -> String {
    let shown = &input[..input.len().min(120)];
    let more = if input.len() > shown.len() { "…" } else { "" };
    format!("\"{}\"{more} ({} bytes)", shown.escape_ascii(), input.len())
}

fn expected<'a>(input: &[u8], want: Want<'a>) -> Result<Parsed<'a>, ParseError> {
    let ok = |request, consumed, swallow| {
        Ok(Parsed {
            request,
            consumed,
            swallow,
        })
    };
    let invalid = |reply, consumed, swallow, noreply| {
        Err(ParseError::Invalid {
            reply,
            consumed,
            swallow,
            noreply,
        })
    };
    match want {
        Want::Req(request) => ok(request, input.len(), 0),
        Want::ReqLine(request, swallow) => ok(request, line_len(input), swallow),
        Want::ReqAt(request, consumed) => ok(request, consumed, 0),
        Want::Err(reply, noreply) => invalid(reply, input.len(), 0, noreply),
        Want::ErrLine(reply, swallow, noreply) => invalid(reply, line_len(input), swallow, noreply),
        Want::ErrAt(reply, consumed, noreply) => invalid(reply, consumed, 0, noreply),
        Want::Fail(e) => Err(e),
    }
}

/// Parses every row and reports all mismatches at once.
fn run(rows: Vec<(&[u8], Want<'_>)>) {
    let limits = Limits::default();
    let mut failures = Vec::new();
    for (input, want) in rows {
        let got = parse_request(input, &limits);
        let want = expected(input, want);
        if got != want {
            failures.push(format!(
                "input {}\n   got: {got:?}\n  want: {want:?}",
                show(input)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} row(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn get(keys: &[u8], with_cas: bool) -> Request<'_> {
    Request::Get {
        keys: Keys::new(keys),
        with_cas,
    }
}

fn gat(exptime: i64, keys: &[u8], with_cas: bool) -> Request<'_> {
    Request::GetAndTouch {
        exptime,
        keys: Keys::new(keys),
        with_cas,
    }
}

/// A storage request with flags, exptime and cas unique 0.
fn store<'a>(command: StoreCommand, key: &'a [u8], data: &'a [u8], noreply: bool) -> Request<'a> {
    Request::Store {
        command,
        key,
        flags: 0,
        exptime: 0,
        data,
        cas_unique: 0,
        noreply,
    }
}

fn delete(key: &[u8], noreply: bool) -> Request<'_> {
    Request::Delete { key, noreply }
}

fn arith(key: &[u8], delta: u64, decrement: bool, noreply: bool) -> Request<'_> {
    Request::Arithmetic {
        key,
        delta,
        decrement,
        noreply,
    }
}

fn touch(key: &[u8], exptime: i64, noreply: bool) -> Request<'_> {
    Request::Touch {
        key,
        exptime,
        noreply,
    }
}

fn flags(raw: &[u8]) -> MetaFlags<'_> {
    MetaFlags::parse(raw).expect("valid test flags")
}

fn too_large(command: StoreCommand, key: &[u8], noreply: bool) -> Request<'_> {
    Request::StoreTooLarge {
        command,
        key,
        noreply,
    }
}

#[test]
fn retrieval_commands() {
    let k250 = vec![b'k'; MAX_KEY_LEN];
    let k251 = vec![b'k'; MAX_KEY_LEN + 1];
    let get250 = [b"get ", &k250[..], b"\r\n"].concat();
    let get251 = [b"get ", &k251[..], b"\r\n"].concat();
    let get_ok_then_251 = [b"get a ", &k251[..], b" b\r\n"].concat();
    let gats250 = [b"gats 0 ", &k250[..], b"\r\n"].concat();
    let gat251 = [b"gat 0 ", &k251[..], b"\r\n"].concat();
    run(table![
        b"get a\r\n" => Want::Req(get(b"a", false)),
        b"gets a\r\n" => Want::Req(get(b"a", true)),
        b"get a b c\r\n" => Want::Req(get(b"a b c", false)),
        b"gets a b c\r\n" => Want::Req(get(b"a b c", true)),
        b"get a\n" => Want::Req(get(b"a", false)),
        b"get   a    b  \r\n" => Want::Req(get(b"a    b  ", false)),
        b"  get a\r\n" => Want::Req(get(b"a", false)),
        b"get a\r\nget b\r\n" => Want::ReqAt(get(b"a", false), 7),
        b"get !#$%&'()*+,-./:;<=>?@[\\]^_`{|}~\r\n"
            => Want::Req(get(b"!#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", false)),
        b"get caf\xc3\xa9\r\n" => Want::Req(get(b"caf\xc3\xa9", false)),
        b"gat 10 a b\r\n" => Want::Req(gat(10, b"a b", false)),
        b"gats 10 a b\r\n" => Want::Req(gat(10, b"a b", true)),
        b"gat -1 a\r\n" => Want::Req(gat(-1, b"a", false)),
        b"gat 0 a\n" => Want::Req(gat(0, b"a", false)),
        b"gats  2147483647  a\r\n" => Want::Req(gat(2_147_483_647, b"a", true)),
        b"gat -2147483648 a\r\n" => Want::Req(gat(-2_147_483_648, b"a", false)),
        get250 => Want::Req(get(&k250, false)),
        gats250 => Want::Req(gat(0, &k250, true)),
        // Errors.
        b"get\r\n" => Want::Err("ERROR", false),
        b"get    \r\n" => Want::Err("ERROR", false),
        b"gets\r\n" => Want::Err("ERROR", false),
        b"gat\r\n" => Want::Err("ERROR", false),
        b"gat 10\r\n" => Want::Req(gat(10, b"", false)),
        b"gats 10\r\n" => Want::Req(gat(10, b"", true)),
        b"GET foo\r\n" => Want::Err("ERROR", false),
        b"Get foo\r\n" => Want::Err("ERROR", false),
        b"getx foo\r\n" => Want::Err("ERROR", false),
        get251 => Want::Err(BAD_FORMAT, false),
        get_ok_then_251 => Want::Err(BAD_FORMAT, false),
        gat251 => Want::Err(BAD_FORMAT, false),
        b"get a\x01b\r\n" => Want::Err(BAD_FORMAT, false),
        b"get a\tb\r\n" => Want::Err(BAD_FORMAT, false),
        b"get a\x7f\r\n" => Want::Err(BAD_FORMAT, false),
        b"get a\x00\r\n" => Want::Err(BAD_FORMAT, false),
        b"get a\rb\r\n" => Want::Err(BAD_FORMAT, false),
        b"gat abc a\r\n" => Want::Err(BAD_EXPTIME, false),
        b"gat 1.5 a\r\n" => Want::Err(BAD_EXPTIME, false),
        b"gats 2147483648 a\r\n" => Want::Err(BAD_EXPTIME, false),
        b"gat 99999999999999999999999 a\r\n" => Want::Err(BAD_EXPTIME, false),
        b"gat -2147483649 a\r\n" => Want::Err(BAD_EXPTIME, false),
        b"gat noreply a\r\n" => Want::Err(BAD_EXPTIME, false),
    ]);
}

#[test]
fn storage_commands() {
    use StoreCommand::{Add, Append, Cas, Prepend, Replace, Set};
    let k250 = vec![b'k'; MAX_KEY_LEN];
    let k251 = vec![b'k'; MAX_KEY_LEN + 1];
    let set250 = [b"set ", &k250[..], b" 0 0 1\r\nx\r\n"].concat();
    let set251 = [b"set ", &k251[..], b" 0 0 1\r\nx\r\n"].concat();
    let set251_noreply = [b"set ", &k251[..], b" 0 0 1 noreply\r\nx\r\n"].concat();
    run(table![
        b"set a 0 0 3\r\nabc\r\n" => Want::Req(store(Set, b"a", b"abc", false)),
        b"add a 0 0 3\r\nabc\r\n" => Want::Req(store(Add, b"a", b"abc", false)),
        b"replace a 0 0 3\r\nabc\r\n" => Want::Req(store(Replace, b"a", b"abc", false)),
        b"append a 0 0 3\r\nabc\r\n" => Want::Req(store(Append, b"a", b"abc", false)),
        b"prepend a 0 0 3\r\nabc\r\n" => Want::Req(store(Prepend, b"a", b"abc", false)),
        b"set a 0 0 3 noreply\r\nabc\r\n" => Want::Req(store(Set, b"a", b"abc", true)),
        b"add a 0 0 3 noreply\r\nabc\r\n" => Want::Req(store(Add, b"a", b"abc", true)),
        b"replace a 0 0 3 noreply\r\nabc\r\n" => Want::Req(store(Replace, b"a", b"abc", true)),
        b"append a 0 0 3 noreply\r\nabc\r\n" => Want::Req(store(Append, b"a", b"abc", true)),
        b"prepend a 0 0 3 noreply\r\nabc\r\n" => Want::Req(store(Prepend, b"a", b"abc", true)),
        b"set a 0 0 0\r\n\r\n" => Want::Req(store(Set, b"a", b"", false)),
        b"set a 0 0 6\r\n\r\nab\r\n\r\n" => Want::Req(store(Set, b"a", b"\r\nab\r\n", false)),
        b"set a 0 0 2\r\n\x00\xff\r\n" => Want::Req(store(Set, b"a", b"\x00\xff", false)),
        b"set a 0 0 1\nx\r\n" => Want::Req(store(Set, b"a", b"x", false)),
        b"set   a  0   0  1   \r\nx\r\n" => Want::Req(store(Set, b"a", b"x", false)),
        b"set a 0 0 1 noreply\nx\r\n" => Want::Req(store(Set, b"a", b"x", true)),
        // memcached only honours `noreply` as the last token; anything else there is ignored.
        b"set a 0 0 1 whatever\r\nx\r\n" => Want::Req(store(Set, b"a", b"x", false)),
        b"set noreply 0 0 1\r\nx\r\n" => Want::Req(store(Set, b"noreply", b"x", false)),
        b"set a 0 0 1\r\nx\r\nget a\r\n" => Want::ReqAt(store(Set, b"a", b"x", false), 16),
        set250 => Want::Req(store(Set, &k250, b"x", false)),
        b"set a 4294967295 2147483647 1\r\nx\r\n" => Want::Req(Request::Store {
            command: Set,
            key: b"a",
            flags: u32::MAX,
            exptime: 2_147_483_647,
            data: b"x",
            cas_unique: 0,
            noreply: false,
        }),
        b"set neg 7 -1 1\r\nx\r\n" => Want::Req(Request::Store {
            command: Set,
            key: b"neg",
            flags: 7,
            exptime: -1,
            data: b"x",
            cas_unique: 0,
            noreply: false,
        }),
        b"cas a 3 60 2 77\r\nhi\r\n" => Want::Req(Request::Store {
            command: Cas,
            key: b"a",
            flags: 3,
            exptime: 60,
            data: b"hi",
            cas_unique: 77,
            noreply: false,
        }),
        b"cas a 0 0 2 18446744073709551615 noreply\r\nhi\r\n" => Want::Req(Request::Store {
            command: Cas,
            key: b"a",
            flags: 0,
            exptime: 0,
            data: b"hi",
            cas_unique: u64::MAX,
            noreply: true,
        }),
        // Wrong token counts: the command is not recognised at all.
        b"set\r\n" => Want::Err("ERROR", false),
        b"set a 0 0\r\n" => Want::Err("ERROR", false),
        b"set a 0 0 1 noreply x\r\n" => Want::Err("ERROR", false),
        b"cas a 0 0 1\r\n" => Want::Err("ERROR", false),
        b"cas a 0 0 1 1 noreply x\r\n" => Want::Err("ERROR", false),
        b"SET a 0 0 1\r\n" => Want::Err("ERROR", false),
        // Bad numbers: the data block is not swallowed (memcached reads it as commands).
        b"set a 0 0 -1\r\n" => Want::Err(BAD_FORMAT, false),
        b"set a 0 0 -1 noreply\r\n" => Want::Err(BAD_FORMAT, true),
        b"set a 0 0 abc\r\n" => Want::Err(BAD_FORMAT, false),
        // Numbers are read as memcached's strtol/strtoul read them: a sign, leading white
        // space and anything after trailing white space are fine.
        b"set a +0 -0 +1\r\nx\r\n" => Want::Req(store(Set, b"a", b"x", false)),
        b"set a 0 0 1\r\r\nx\r\n" => Want::Req(store(Set, b"a", b"x", false)),
        b"set a 0 \t0 1\tjunk\r\nx\r\n" => Want::Req(store(Set, b"a", b"x", false)),
        b"set a 0 0 1x\r\n" => Want::Err(BAD_FORMAT, false),
        b"set a 0 0 4294967295\r\n" => Want::Err(BAD_FORMAT, false),
        b"set a 0 0 2147483646\r\n" => Want::Err(BAD_FORMAT, false),
        b"cas a 0 0 1 -1\r\n" => Want::Err(BAD_FORMAT, false),
        // memcached truncates these to 32 bits and stores; refused here.
        b"set a 4294967296 0 1\r\n" => Want::Err(BAD_FORMAT, false),
        b"set a 0 4294967296 1\r\n" => Want::Err(BAD_FORMAT, false),
        b"set a 0 0 4294967297\r\n" => Want::Err(BAD_FORMAT, false),
        b"set a 0 0 99999999999999999999999\r\n" => Want::Err(BAD_FORMAT, false),
        b"set a 0 0 4294967296\r\n" => Want::Err(BAD_FORMAT, false),
        b"set a x 0 1\r\n" => Want::Err(BAD_FORMAT, false),
        b"set a -1 0 1\r\n" => Want::Err(BAD_FORMAT, false),
        b"set a 4294967296 0 1\r\n" => Want::Err(BAD_FORMAT, false),
        b"set a 0 x 1\r\n" => Want::Err(BAD_FORMAT, false),
        b"set a 0 2147483648 1\r\n" => Want::Err(BAD_FORMAT, false),
        b"set a 0 99999999999999999999999 1\r\n" => Want::Err(BAD_FORMAT, false),
        b"set a 0 0 noreply\r\n" => Want::Err(BAD_FORMAT, true),
        b"cas a 0 0 1 abc\r\n" => Want::Err(BAD_FORMAT, false),
        b"cas a 0 0 1 -1\r\n" => Want::Err(BAD_FORMAT, false),
        b"cas a 0 0 1 18446744073709551616\r\n" => Want::Err(BAD_FORMAT, false),
        b"cas a 0 0 1 noreply\r\n" => Want::Err(BAD_FORMAT, true),
        set251 => Want::ErrLine(BAD_FORMAT, 0, false),
        set251_noreply => Want::ErrLine(BAD_FORMAT, 0, true),
        b"set a\x01b 0 0 1\r\nx\r\n" => Want::ErrLine(BAD_FORMAT, 0, false),
        b"set a\x7f 0 0 1 noreply\r\nx\r\n" => Want::ErrLine(BAD_FORMAT, 0, true),
        // A data block of the wrong length: the announced length plus two bytes are consumed.
        b"set a 0 0 3\r\nabcd\r\n" => Want::ErrAt(BAD_CHUNK, 13 + 5, false),
        b"set a 0 0 3 noreply\r\nabcd\r\n" => Want::ErrAt(BAD_CHUNK, 21 + 5, true),
        b"set a 0 0 3\r\nab\r\n\r\n" => Want::ErrAt(BAD_CHUNK, 13 + 5, false),
        b"set a 0 0 3\r\nabc\n\r" => Want::ErrAt(BAD_CHUNK, 13 + 5, false),
        b"set a 0 0 0\r\nx\r\n" => Want::ErrAt(BAD_CHUNK, 13 + 2, false),
        // Not all there yet.
        b"set a 0 0 3" => Want::Fail(ParseError::Incomplete { needed: None }),
        b"set a 0 0 3\r" => Want::Fail(ParseError::Incomplete { needed: None }),
        b"set a 0 0 3\r\n" => Want::Fail(ParseError::Incomplete { needed: Some(18) }),
        b"set a 0 0 3\r\nabc" => Want::Fail(ParseError::Incomplete { needed: Some(18) }),
        b"set a 0 0 3\r\nabc\r" => Want::Fail(ParseError::Incomplete { needed: Some(18) }),
        b"set a 0 0 3\r\nabcd" => Want::Fail(ParseError::Incomplete { needed: Some(18) }),
    ]);
}

#[test]
fn bad_data_chunk_leaves_the_newline_to_be_read_as_an_empty_command() {
    // memcached answers `CLIENT_ERROR bad data chunk` and then `ERROR` for the stray "\n".
    let input = b"set a 0 0 3\r\nabcd\r\nget a\r\n";
    let limits = Limits::default();
    let first = parse_request(input, &limits);
    assert_eq!(
        first,
        Err(ParseError::Invalid {
            reply: BAD_CHUNK,
            consumed: 13 + 5,
            swallow: 0,
            noreply: false,
        })
    );
    let rest = &input[18..];
    assert_eq!(rest, b"\nget a\r\n");
    assert_eq!(
        parse_request(rest, &limits),
        Err(ParseError::Invalid {
            reply: "ERROR",
            consumed: 1,
            swallow: 0,
            noreply: false,
        })
    );
    assert_eq!(
        parse_request(&rest[1..], &limits),
        Ok(Parsed {
            request: get(b"a", false),
            consumed: 7,
            swallow: 0,
        })
    );
}

#[test]
fn invalid_key_leaves_the_data_block_to_be_read_as_a_command() {
    // memcached: `set <251-byte key> 0 0 1` + data gives CLIENT_ERROR, then ERROR for the data.
    let input = [b"set ", &[b'k'; 251][..], b" 0 0 1\r\nx\r\n"].concat();
    let limits = Limits::default();
    let Err(ParseError::Invalid {
        reply, consumed, ..
    }) = parse_request(&input, &limits)
    else {
        panic!("expected an error");
    };
    assert_eq!(reply, BAD_FORMAT);
    assert_eq!(&input[consumed..], b"x\r\n");
    assert_eq!(
        parse_request(&input[consumed..], &limits),
        Err(ParseError::Invalid {
            reply: "ERROR",
            consumed: 3,
            swallow: 0,
            noreply: false,
        })
    );
}

#[test]
fn item_size_limit() {
    use StoreCommand::{Cas, Set};
    let limits = Limits::default();
    let data_ok = vec![b'v'; 1_048_476];
    let set_ok = [b"set big 0 0 1048476\r\n", &data_ok[..], b"\r\n"].concat();
    // The largest value that still fits under a 3-byte key, and one byte more.
    let max = (1..=limits.max_item_size)
        .rev()
        .find(|&n| item_size(3, n) <= limits.max_item_size)
        .expect("some value fits");
    assert!((1_048_476..1_048_576).contains(&max));
    let data_max = vec![b'v'; max];
    let set_max = [
        format!("set big 0 0 {max}\r\n").as_bytes(),
        &data_max,
        b"\r\n",
    ]
    .concat();
    let set_over = format!("set big 0 0 {}\r\n", max + 1).into_bytes();
    // The default limit is 1 MiB.
    assert_eq!(limits.max_item_size, 1 << 20);
    run(table![
        set_ok => Want::Req(store(Set, b"big", &data_ok, false)),
        set_max => Want::Req(store(Set, b"big", &data_max, false)),
        set_over => Want::ReqLine(too_large(Set, b"big", false), max + 1 + 2),
        b"set big 0 0 1048576\r\n" => Want::ReqLine(too_large(Set, b"big", false), 1_048_578),
        // The data need not have arrived: the whole block is to be skipped.
        b"set big 0 0 1048576\r\nsome" => Want::ReqLine(too_large(Set, b"big", false), 1_048_578),
        b"set big 0 0 2000000 noreply\r\n"
            => Want::ReqLine(too_large(Set, b"big", true), 2_000_002),
        b"cas big 0 0 2000000 5\r\n" => Want::ReqLine(too_large(Cas, b"big", false), 2_000_002),
        b"set big 0 0 2147483645\r\n"
            => Want::ReqLine(too_large(Set, b"big", false), 2_147_483_647),
        // memcached's limit for a data length is INT_MAX - 2.
        b"set big 0 0 2147483646\r\n" => Want::Err(BAD_FORMAT, false),
        b"set big 0 0 2147483647\r\n" => Want::Err(BAD_FORMAT, false),
        b"set big 0 0 2147483648\r\n" => Want::Err(BAD_FORMAT, false),
    ]);
}

#[test]
fn delete_command() {
    let k251 = vec![b'k'; MAX_KEY_LEN + 1];
    let del251 = [b"delete ", &k251[..], b"\r\n"].concat();
    let del251_noreply = [b"delete ", &k251[..], b" noreply\r\n"].concat();
    let del251_usage = [b"delete ", &k251[..], b" 5\r\n"].concat();
    run(table![
        b"delete a\r\n" => Want::Req(delete(b"a", false)),
        b"delete a\n" => Want::Req(delete(b"a", false)),
        b"delete a noreply\r\n" => Want::Req(delete(b"a", true)),
        b"delete   a   noreply  \r\n" => Want::Req(delete(b"a", true)),
        // The legacy hold time, accepted only when it is 0.
        b"delete a 0\r\n" => Want::Req(delete(b"a", false)),
        b"delete a 0 noreply\r\n" => Want::Req(delete(b"a", true)),
        // A lone `noreply` after `delete` is the key, as in memcached (no `noreply` here).
        b"delete noreply\r\n" => Want::Req(delete(b"noreply", false)),
        b"delete noreply noreply\r\n" => Want::Req(delete(b"noreply", true)),
        b"delete 0\r\n" => Want::Req(delete(b"0", false)),
        // Errors.
        b"delete\r\n" => Want::Err("ERROR", false),
        b"delete a b c d e\r\n" => Want::Err("ERROR", false),
        b"delete a 0 noreply x\r\n" => Want::Err("ERROR", false),
        b"DELETE a\r\n" => Want::Err("ERROR", false),
        b"delete a 1\r\n" => Want::Err(DELETE_USAGE, false),
        b"delete a x\r\n" => Want::Err(DELETE_USAGE, false),
        b"delete a 00\r\n" => Want::Err(DELETE_USAGE, false),
        b"delete a 0 x\r\n" => Want::Err(DELETE_USAGE, false),
        b"delete a 1 noreply\r\n" => Want::Err(DELETE_USAGE, true),
        b"delete a noreply noreply\r\n" => Want::Err(DELETE_USAGE, true),
        b"delete a noreply 0\r\n" => Want::Err(DELETE_USAGE, false),
        del251 => Want::Err(BAD_FORMAT, false),
        del251_noreply => Want::Err(BAD_FORMAT, true),
        // memcached checks the usage before the key.
        del251_usage => Want::Err(DELETE_USAGE, false),
        b"delete a\x02\r\n" => Want::Err(BAD_FORMAT, false),
    ]);
}

#[test]
fn arithmetic_commands() {
    let k251 = vec![b'k'; MAX_KEY_LEN + 1];
    let incr251 = [b"incr ", &k251[..], b" 1\r\n"].concat();
    run(table![
        b"incr a 1\r\n" => Want::Req(arith(b"a", 1, false, false)),
        b"decr a 1\r\n" => Want::Req(arith(b"a", 1, true, false)),
        b"incr a 5 noreply\r\n" => Want::Req(arith(b"a", 5, false, true)),
        b"decr a 5 noreply\r\n" => Want::Req(arith(b"a", 5, true, true)),
        b"incr a 0\r\n" => Want::Req(arith(b"a", 0, false, false)),
        b"incr a 18446744073709551615\r\n" => Want::Req(arith(b"a", u64::MAX, false, false)),
        b"decr  a  7\n" => Want::Req(arith(b"a", 7, true, false)),
        b"incr noreply 2\r\n" => Want::Req(arith(b"noreply", 2, false, false)),
        // memcached ignores a last token that is not `noreply`.
        b"incr a 1 whatever\r\n" => Want::Req(arith(b"a", 1, false, false)),
        // Errors.
        b"incr\r\n" => Want::Err("ERROR", false),
        b"incr a\r\n" => Want::Err("ERROR", false),
        b"decr a 1 noreply x\r\n" => Want::Err("ERROR", false),
        b"INCR a 1\r\n" => Want::Err("ERROR", false),
        b"incr a abc\r\n" => Want::Err(BAD_DELTA, false),
        b"decr a abc\r\n" => Want::Err(BAD_DELTA, false),
        b"incr a -1\r\n" => Want::Err(BAD_DELTA, false),
        b"incr a +1\r\n" => Want::Req(arith(b"a", 1, false, false)),
        b"incr a -0\r\n" => Want::Req(arith(b"a", 0, false, false)),
        b"incr a -18446744073709551616\r\n" => Want::Err(BAD_DELTA, false),
        // memcached reads this as 1 (negation modulo 2^64); refused here.
        b"incr a -18446744073709551615\r\n" => Want::Err(BAD_DELTA, false),
        b"incr a +\r\n" => Want::Err(BAD_DELTA, false),
        b"incr a 1.5\r\n" => Want::Err(BAD_DELTA, false),
        b"incr a 18446744073709551616\r\n" => Want::Err(BAD_DELTA, false),
        b"incr a 99999999999999999999999\r\n" => Want::Err(BAD_DELTA, false),
        b"incr a abc noreply\r\n" => Want::Err(BAD_DELTA, true),
        b"incr a noreply\r\n" => Want::Err(BAD_DELTA, true),
        incr251 => Want::Err(BAD_FORMAT, false),
        b"incr a\x01 1 noreply\r\n" => Want::Err(BAD_FORMAT, true),
    ]);
}

#[test]
fn touch_command() {
    let k251 = vec![b'k'; MAX_KEY_LEN + 1];
    let touch251 = [b"touch ", &k251[..], b" 1\r\n"].concat();
    run(table![
        b"touch a 10\r\n" => Want::Req(touch(b"a", 10, false)),
        b"touch a 10 noreply\r\n" => Want::Req(touch(b"a", 10, true)),
        b"touch a -1\r\n" => Want::Req(touch(b"a", -1, false)),
        b"touch a 0\n" => Want::Req(touch(b"a", 0, false)),
        b"touch a 2592001\r\n" => Want::Req(touch(b"a", 2_592_001, false)),
        // Errors.
        b"touch\r\n" => Want::Err("ERROR", false),
        b"touch a\r\n" => Want::Err("ERROR", false),
        b"touch a 1 noreply x\r\n" => Want::Err("ERROR", false),
        b"touch a abc\r\n" => Want::Err(BAD_EXPTIME, false),
        b"touch a 2147483648\r\n" => Want::Err(BAD_EXPTIME, false),
        b"touch a 99999999999999999999999\r\n" => Want::Err(BAD_EXPTIME, false),
        b"touch a abc noreply\r\n" => Want::Err(BAD_EXPTIME, true),
        b"touch a noreply\r\n" => Want::Err(BAD_EXPTIME, true),
        touch251 => Want::Err(BAD_FORMAT, false),
    ]);
}

#[test]
fn non_keyed_commands() {
    let flush = |delay, noreply| Request::FlushAll { delay, noreply };
    let verbosity = |level, noreply| Request::Verbosity { level, noreply };
    let stats = |group| Request::Stats { group };
    run(table![
        b"flush_all\r\n" => Want::Req(flush(0, false)),
        b"flush_all\n" => Want::Req(flush(0, false)),
        b"flush_all 0\r\n" => Want::Req(flush(0, false)),
        b"flush_all 10\r\n" => Want::Req(flush(10, false)),
        b"flush_all -1\r\n" => Want::Req(flush(-1, false)),
        b"flush_all noreply\r\n" => Want::Req(flush(0, true)),
        b"flush_all 10 noreply\r\n" => Want::Req(flush(10, true)),
        b"flush_all  10  noreply \r\n" => Want::Req(flush(10, true)),
        b"flush_all abc\r\n" => Want::Err(BAD_EXPTIME, false),
        b"flush_all 2147483648\r\n" => Want::Err(BAD_EXPTIME, false),
        b"flush_all abc noreply\r\n" => Want::Err(BAD_EXPTIME, true),
        b"flush_all 1 2 3\r\n" => Want::Err("ERROR", false),
        b"version\r\n" => Want::Req(Request::Version),
        b"version\n" => Want::Req(Request::Version),
        b"version with extra args\r\n" => Want::Req(Request::Version),
        b"VERSION\r\n" => Want::Err("ERROR", false),
        b"verbosity 1\r\n" => Want::Req(verbosity(1, false)),
        b"verbosity 0 noreply\r\n" => Want::Req(verbosity(0, true)),
        b"verbosity 4294967295\r\n" => Want::Req(verbosity(u32::MAX, false)),
        b"verbosity noreply\r\n" => Want::Err(BAD_FORMAT, true),
        b"verbosity abc\r\n" => Want::Err(BAD_FORMAT, false),
        b"verbosity -1\r\n" => Want::Err(BAD_FORMAT, false),
        b"verbosity 4294967296\r\n" => Want::Err(BAD_FORMAT, false),
        b"verbosity\r\n" => Want::Err("ERROR", false),
        b"verbosity 1 noreply x\r\n" => Want::Err("ERROR", false),
        b"stats\r\n" => Want::Req(stats(None)),
        b"stats\n" => Want::Req(stats(None)),
        b"stats   \r\n" => Want::Req(stats(None)),
        b"stats slabs\r\n" => Want::Req(stats(Some(&b"slabs"[..]))),
        b"stats settings\n" => Want::Req(stats(Some(&b"settings"[..]))),
        b"stats detail dump\r\n" => Want::Req(stats(Some(&b"detail dump"[..]))),
        b"stats  items\r\n" => Want::Req(stats(Some(&b"items"[..]))),
        b"quit\r\n" => Want::Req(Request::Quit),
        b"quit\n" => Want::Req(Request::Quit),
        b"shutdown\r\n" => Want::Req(Request::Shutdown),
        b"mn\r\n" => Want::Req(Request::MetaNoop),
        b"mn\n" => Want::Req(Request::MetaNoop),
    ]);
}

#[test]
fn meta_commands() {
    let k250 = vec![b'k'; MAX_KEY_LEN];
    let k251 = vec![b'k'; MAX_KEY_LEN + 1];
    let mg250 = [b"mg ", &k250[..], b" v\r\n"].concat();
    let mg251 = [b"mg ", &k251[..], b" v\r\n"].concat();
    let ms251 = [b"ms ", &k251[..], b" 2\r\nhi\r\n"].concat();
    let md251 = [b"md ", &k251[..], b"\r\n"].concat();
    let ma251 = [b"ma ", &k251[..], b"\r\n"].concat();
    let me251 = [b"me ", &k251[..], b"\r\n"].concat();
    let o32 = [b"O", &[b'x'; 32][..]].concat();
    let mg_o32 = [b"mg a ", &o32[..], b"\r\n"].concat();
    let ma_o32 = [b"ma a ", &o32[..], b"\r\n"].concat();
    let md_o32 = [b"md a q ", &o32[..], b"\r\n"].concat();
    let ms_o32 = [b"ms a 2 ", &o32[..], b"\r\nhi\r\n"].concat();
    let ms_o32_mx = [b"ms a 2 MX ", &o32[..], b"\r\nhi\r\n"].concat();
    // 20 tokens (command, key, an ms length and flags) are too many; 19 are not.
    let flags16 = b"v k c f s t h l O1 q u T1 N1 R1 P L";
    let flags17 = [&flags16[..], b" I"].concat();
    let mg17 = [b"mg a ", &flags17[..], b"\r\n"].concat();
    let mg18 = [b"mg a ", &flags17[..], b" MS\r\n"].concat();
    let ms16 = [b"ms a 1 ", &flags16[..], b"\r\nx\r\n"].concat();
    let ms17 = [b"ms a 1 ", &flags17[..], b"\r\nx\r\n"].concat();
    let md18 = [b"md a ", &flags17[..], b" MS\r\n"].concat();
    let ma18 = [b"ma a ", &flags17[..], b" MS\r\n"].concat();
    let mg_many = [b"mg a".as_slice(), &b" v".repeat(30), b"\r\n"].concat();
    let text = MetaKey::text;
    let bin = |key| MetaKey::binary(key).expect("short binary key");
    let mg = |key, raw| Request::MetaGet {
        key,
        flags: flags(raw),
    };
    let ms = |key, data, raw| Request::MetaSet {
        key,
        data,
        flags: flags(raw),
    };
    let md = |key, raw| Request::MetaDelete {
        key,
        flags: flags(raw),
    };
    let ma = |key, raw| Request::MetaArithmetic {
        key,
        flags: flags(raw),
    };
    let me = |key| Request::MetaDebug { key };
    run(table![
        // mg
        b"mg a\r\n" => Want::Req(mg(text(b"a"), b"")),
        b"mg a v\r\n" => Want::Req(mg(text(b"a"), b"v")),
        b"mg mk v f t k s c\r\n" => Want::Req(mg(text(b"mk"), b"v f t k s c")),
        b"mg mk v O123 q\r\n" => Want::Req(mg(text(b"mk"), b"v O123 q")),
        b"mg a v N30 R10 T60 E99 u h l\n" => Want::Req(mg(text(b"a"), b"v N30 R10 T60 E99 u h l")),
        b"mg  a   v  k \r\n" => Want::Req(mg(text(b"a"), b"v  k ")),
        b"mg a P L\r\n" => Want::Req(mg(text(b"a"), b"P L")),
        mg250 => Want::Req(mg(text(&k250), b"v")),
        b"mg\r\n" => Want::Err("ERROR", false),
        b"MG a\r\n" => Want::Err("ERROR", false),
        mg251 => Want::Err(BAD_FORMAT, false),
        b"mg a\x01 v\r\n" => Want::Err(BAD_FORMAT, false),
        b"mg a z\r\n" => Want::Err("CLIENT_ERROR invalid flag", false),
        b"mg a b\r\n" => Want::Err("CLIENT_ERROR error decoding key", false),
        b"mg a Tx b\r\n" => Want::Err("CLIENT_ERROR error decoding key", false),
        b"mg a b Tx\r\n" => Want::Err("CLIENT_ERROR bad token in command line format", false),
        b"mg Zm9v b k\r\n" => Want::Req(mg(bin(b"foo"), b"b k")),
        b"mg !Zm9v! k bx\r\n" => Want::Req(mg(bin(b"foo"), b"k bx")),
        b"mg Zm9v b b\r\n" => Want::Err("CLIENT_ERROR duplicate flag", false),
        b"mg a \x80\r\n" => Want::Err("CLIENT_ERROR duplicate flag", false),
        b"mg a 1\r\n" => Want::Err("CLIENT_ERROR invalid flag", false),
        b"mg a Jx\r\n" => Want::Err("CLIENT_ERROR invalid numeric initial value", false),
        b"mg a Dx\r\n" => Want::Err("CLIENT_ERROR invalid numeric delta value", false),
        b"mg a Fx\r\n" => Want::Err(BAD_FORMAT, false),
        b"mg a T+5 N-0 R\t5\r\n" => Want::Req(mg(text(b"a"), b"T+5 N-0 R\t5")),
        b"mg a v v\r\n" => Want::Err("CLIENT_ERROR duplicate flag", false),
        b"mg a Tabc\r\n" => Want::Err("CLIENT_ERROR bad token in command line format", false),
        b"mg a T\r\n" => Want::Err("CLIENT_ERROR bad token in command line format", false),
        b"mg a T2147483648\r\n"
            => Want::Err("CLIENT_ERROR bad token in command line format", false),
        // mg refuses a long opaque while answering (after its side effects).
        mg_o32 => Want::Req(mg(text(b"a"), &o32)),
        mg17 => Want::Req(mg(text(b"a"), &flags17)),
        mg18 => Want::Err("CLIENT_ERROR options flags are too long", false),
        mg_many => Want::Err("CLIENT_ERROR options flags are too long", false),
        // ms
        b"ms mk 2 T60 F7\r\nhi\r\n" => Want::Req(ms(text(b"mk"), b"hi", b"T60 F7")),
        b"ms a 2\r\nhi\r\n" => Want::Req(ms(text(b"a"), b"hi", b"")),
        b"ms a 0\r\n\r\n" => Want::Req(ms(text(b"a"), b"", b"")),
        b"ms a 2\nhi\r\n" => Want::Req(ms(text(b"a"), b"hi", b"")),
        b"ms a 4 MA q\r\n\r\n\r\n\r\n" => Want::Req(ms(text(b"a"), b"\r\n\r\n", b"MA q")),
        b"ms mk2 2 ME c k O1 C5 I\r\nhi\r\n" => Want::Req(ms(text(b"mk2"), b"hi", b"ME c k O1 C5 I")),
        b"ms  a  2  T0 \r\nhi\r\n" => Want::Req(ms(text(b"a"), b"hi", b"T0 ")),
        b"ms a 2\r\nhi\r\nmn\r\n" => Want::ReqAt(ms(text(b"a"), b"hi", b""), 12),
        b"ms\r\n" => Want::Err("ERROR", false),
        b"ms k\r\n" => Want::Err(BAD_FORMAT, false),
        b"ms k\n" => Want::Err(BAD_FORMAT, false),
        ms251 => Want::ErrLine(BAD_FORMAT, 0, false),
        b"ms a abc\r\n" => Want::Err(BAD_FORMAT, false),
        b"ms a -1\r\n" => Want::Err(BAD_FORMAT, false),
        b"ms a 99999999999\r\n" => Want::Err(BAD_FORMAT, false),
        b"ms a 2147483646\r\n" => Want::Err(BAD_FORMAT, false),
        // memcached truncates this to 1: refused here.
        b"ms a 4294967297\r\n" => Want::Err(BAD_FORMAT, false),
        b"ms a +2\r\nhi\r\n" => Want::Req(ms(text(b"a"), b"hi", b"")),
        b"ms a -0\r\n\r\n" => Want::Req(ms(text(b"a"), b"", b"")),
        ms16 => Want::Req(ms(text(b"a"), b"x", flags16)),
        ms17 => Want::ErrLine("CLIENT_ERROR options flags too long", 0, false),
        b"ms Zm9vMQ== 2 b T0\r\nhi\r\n" => Want::Req(ms(bin(b"foo1"), b"hi", b"b T0")),
        b"ms abc 2 b\r\nhi\r\n" => Want::ErrLine("CLIENT_ERROR error decoding key", 4, false),
        // A refused mode or opaque skips the block unread, so "xy\r" here, leaving "\n".
        b"ms a 1 MX\r\nxy\r\n" => Want::ErrLine("CLIENT_ERROR invalid mode for ms M token", 3, false),
        ms_o32 => Want::ErrLine("CLIENT_ERROR opaque token too long", 4, false),
        ms_o32_mx => Want::ErrLine("CLIENT_ERROR invalid mode for ms M token", 4, false),
        b"ms a T60 2\r\n" => Want::Err(BAD_FORMAT, false),
        // Bad flags: the announced data block (and its CRLF) is skipped.
        b"ms a 2 z\r\nhi\r\n" => Want::ErrLine("CLIENT_ERROR invalid flag", 4, false),
        b"ms a 2 T1 T2\r\nhi\r\n" => Want::ErrLine("CLIENT_ERROR duplicate flag", 4, false),
        b"ms a 5 Fx\r\n" => Want::ErrLine(BAD_FORMAT, 7, false),
        b"ms a 5 F1x\r\n" => Want::ErrLine(BAD_FORMAT, 7, false),
        b"ms a 5 F-1\r\n" => Want::ErrLine(BAD_FORMAT, 7, false),
        b"ms a 5 Cx\r\n" => Want::ErrLine("CLIENT_ERROR bad token in command line format", 7, false),
        b"ms a 0 MEE\r\n" => Want::ErrLine("CLIENT_ERROR incorrect length for M token", 2, false),
        b"ms a 2\r\nhix\r\n" => Want::ErrAt(BAD_CHUNK, 8 + 4, false),
        b"ms a 2\r\n" => Want::Fail(ParseError::Incomplete { needed: Some(12) }),
        b"ms a 2\r\nh" => Want::Fail(ParseError::Incomplete { needed: Some(12) }),
        b"ms a 2 T60" => Want::Fail(ParseError::Incomplete { needed: None }),
        b"ms big 1048576 T0\r\n" => Want::ReqLine(
            Request::MetaSetTooLarge {
                key: text(b"big"),
                flags: flags(b"T0"),
            },
            1_048_578,
        ),
        // md
        b"md a\r\n" => Want::Req(md(text(b"a"), b"")),
        b"md mk q\r\n" => Want::Req(md(text(b"mk"), b"q")),
        b"md a I T30 C9 k O77\n" => Want::Req(md(text(b"a"), b"I T30 C9 k O77")),
        b"md\r\n" => Want::Err("ERROR", false),
        md251 => Want::Err(BAD_FORMAT, false),
        // memcached answers every flag problem of `md` with one text.
        b"md a q q\r\n" => Want::Err(MA_BAD_FLAG, false),
        b"md a z\r\n" => Want::Err(MA_BAD_FLAG, false),
        b"md a Cx\r\n" => Want::Err(MA_BAD_FLAG, false),
        b"md abc b\r\n" => Want::Err(MA_BAD_FLAG, false),
        b"md Zm9v b k\r\n" => Want::Req(md(bin(b"foo"), b"b k")),
        md_o32 => Want::Err("CLIENT_ERROR opaque token too long", false),
        md18 => Want::Err("CLIENT_ERROR options flags too long", false),
        // ma
        b"ma cnt\r\n" => Want::Req(ma(text(b"cnt"), b"")),
        b"ma cnt N0 J10 v\r\n" => Want::Req(ma(text(b"cnt"), b"N0 J10 v")),
        b"ma cnt D5 v\r\n" => Want::Req(ma(text(b"cnt"), b"D5 v")),
        b"ma cnt MD D100 v\r\n" => Want::Req(ma(text(b"cnt"), b"MD D100 v")),
        b"ma cnt M+ q t c k O1\r\n" => Want::Req(ma(text(b"cnt"), b"M+ q t c k O1")),
        b"ma\r\n" => Want::Err("ERROR", false),
        ma251 => Want::Err(BAD_FORMAT, false),
        // memcached answers every flag problem of `ma` with one text.
        b"ma cnt D-1\r\n" => Want::Err(MA_BAD_FLAG, false),
        b"ma cnt Dx\r\n" => Want::Err(MA_BAD_FLAG, false),
        b"ma cnt z\r\n" => Want::Err(MA_BAD_FLAG, false),
        b"ma cnt v v\r\n" => Want::Err(MA_BAD_FLAG, false),
        b"ma abc b\r\n" => Want::Err(MA_BAD_FLAG, false),
        b"ma Y250 b N0 J+5\r\n" => Want::Req(ma(bin(b"cnt"), b"b N0 J+5")),
        // ma refuses a long opaque after counting, as memcached does.
        ma_o32 => Want::Req(ma(text(b"a"), &o32)),
        ma18 => Want::Err("CLIENT_ERROR options flags too long", false),
        // me
        b"me a\r\n" => Want::Req(me(text(b"a"))),
        b"me a b\r\n" => Want::Err(BAD_FORMAT, false),
        b"me a c d\r\n" => Want::Req(me(text(b"a"))),
        b"me Zm9v b\r\n" => Want::Req(me(bin(b"foo"))),
        b"me Zm9v c b\r\n" => Want::Req(me(text(b"Zm9v"))),
        b"me\r\n" => Want::Err(BAD_FORMAT, false),
        me251 => Want::Err(BAD_FORMAT, false),
        // Unknown two-letter commands.
        b"mz a\r\n" => Want::Err("ERROR", false),
        b"m\r\n" => Want::Err("ERROR", false),
    ]);
}

#[test]
fn framing_and_unknown_commands() {
    let incomplete = ParseError::Incomplete { needed: None };
    let x2047 = vec![b'x'; 2047];
    let x2048 = vec![b'x'; 2048];
    let x2047_nl = [&x2047[..], b"\n"].concat();
    let x2048_nl = [&x2048[..], b"\n"].concat();
    let set_huge_key = [b"set ", &[b'k'; 3000][..]].concat();
    let set_huge_key_nl = [&set_huge_key[..], b" 0 0 1\r\nx\r\n"].concat();
    let spaces = [&[b' '; 1990][..], b"version\r\n"].concat();
    run(table![
        b"" => Want::Fail(incomplete),
        b"g" => Want::Fail(incomplete),
        b"get a" => Want::Fail(incomplete),
        b"get a\r" => Want::Fail(incomplete),
        b"\r\n" => Want::Err("ERROR", false),
        b"\n" => Want::Err("ERROR", false),
        b"   \r\n" => Want::Err("ERROR", false),
        b"\r\nget a\r\n" => Want::ErrAt("ERROR", 2, false),
        b"bogus\r\n" => Want::Err("ERROR", false),
        b"bogus with args\n" => Want::Err("ERROR", false),
        b"\x00\r\n" => Want::Err("ERROR", false),
        b"\r\r\n" => Want::Err("ERROR", false),
        b"\tget a\r\n" => Want::Err("ERROR", false),
        b"get\ta\r\n" => Want::Err("ERROR", false),
        b"\x80" => Want::Fail(ParseError::Binary),
        b"\x80\x00\x00\x05\x00\x00\x00\x00" => Want::Fail(ParseError::Binary),
        b"\x80get a\r\n" => Want::Fail(ParseError::Binary),
        b"\x81\r\n" => Want::Err("ERROR", false),
        spaces => Want::Req(Request::Version),
        // Lines without a newline: waiting below 2048 bytes, too long from 2048 on.
        x2047 => Want::Fail(incomplete),
        x2048 => Want::Fail(ParseError::LineTooLong),
        set_huge_key => Want::Fail(ParseError::LineTooLong),
        // Complete lines: 2048 bytes with the newline is still allowed.
        x2047_nl => Want::Err("ERROR", false),
        x2048_nl => Want::Fail(ParseError::LineTooLong),
        set_huge_key_nl => Want::Fail(ParseError::LineTooLong),
    ]);
}

#[test]
fn long_multi_get_lines() {
    let limits = Limits::default();
    // About 200 KB of keys (t/getset.t sends a 128 KB get line).
    let mut line = b"get".to_vec();
    let mut count = 0;
    while line.len() < 200_000 {
        line.extend_from_slice(format!(" key:{count:06}").as_bytes());
        count += 1;
    }
    let keys = line[4..].to_vec();
    let complete = [&line[..], b"\r\n"].concat();
    let parsed = parse_request(&complete, &limits).expect("a long get line is fine");
    assert_eq!(parsed.consumed, complete.len());
    assert_eq!(parsed.request, get(&keys, false));
    let Request::Get { keys: got, .. } = parsed.request else {
        unreachable!()
    };
    assert_eq!(got.iter().count(), count);
    assert_eq!(
        got.iter().last(),
        Some(format!("key:{:06}", count - 1).as_bytes())
    );

    // While it is still arriving it is only incomplete.
    for cut in [5, 2047, 2048, 4096, 100_000, line.len()] {
        assert_eq!(
            parse_request(&line[..cut], &limits),
            Err(ParseError::Incomplete { needed: None }),
            "cut at {cut}"
        );
    }

    // gets, gat and gats get the same allowance.
    for prefix in [&b"gets"[..], b"gat 10", b"gats 10"] {
        let input = [prefix, &line[3..], b"\r\n"].concat();
        let parsed = parse_request(&input, &limits).expect("a long retrieval line is fine");
        assert_eq!(parsed.consumed, input.len());
    }

    // Past the retrieval limit (1 MiB) it is too long, with or without its newline.
    let mut huge = b"get".to_vec();
    while huge.len() <= limits.max_get_line {
        huge.extend_from_slice(b" some-key");
    }
    assert_eq!(parse_request(&huge, &limits), Err(ParseError::LineTooLong));
    huge.extend_from_slice(b"\r\n");
    assert_eq!(parse_request(&huge, &limits), Err(ParseError::LineTooLong));

    // The allowance is for retrievals only: a long non-retrieval line is refused.
    let long_version = [b"version ", &keys[..], b"\r\n"].concat();
    assert_eq!(
        parse_request(&long_version, &limits),
        Err(ParseError::LineTooLong)
    );
}

#[test]
fn pipelined_requests_parse_one_after_another() {
    let input: &[u8] =
        b"set a 0 0 1\r\nx\r\nget a b\r\ndelete a noreply\r\nbogus\r\nmg a v\nmn\r\nincr n 1\r\n";
    let limits = Limits::default();
    let mut rest = input;
    let mut seen = Vec::new();
    while !rest.is_empty() {
        let (what, used) = match parse_request(rest, &limits) {
            Ok(p) => (format!("{:?}", p.request), p.consumed),
            Err(ParseError::Invalid {
                reply, consumed, ..
            }) => (reply.to_string(), consumed),
            Err(e) => panic!("unexpected {e:?}"),
        };
        seen.push(what);
        rest = &rest[used..];
    }
    let expect = [
        format!("{:?}", store(StoreCommand::Set, b"a", b"x", false)),
        format!("{:?}", get(b"a b", false)),
        format!("{:?}", delete(b"a", true)),
        "ERROR".to_string(),
        format!(
            "{:?}",
            Request::MetaGet {
                key: MetaKey::text(b"a"),
                flags: flags(b"v")
            }
        ),
        format!("{:?}", Request::MetaNoop),
        format!("{:?}", arith(b"n", 1, false, false)),
    ];
    assert_eq!(seen, expect);
}

#[test]
fn error_display_is_the_reply_line() {
    let err = parse_request(b"bogus\r\n", &Limits::default()).unwrap_err();
    assert_eq!(err.to_string(), "ERROR");
    let err = parse_request(b"incr a x\r\n", &Limits::default()).unwrap_err();
    assert_eq!(err.to_string(), BAD_DELTA);
}
