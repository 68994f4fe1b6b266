//! Property tests of the IMAP codec: arbitrary bytes (random, and protocol-like soup under
//! tight limits) never make the parser panic or over-consume, `Bad`/`Discard` always
//! consume something, a continuation is asked for once, and the outcome does not depend on
//! how the bytes were split; generated commands (random tag, name, and atoms, sections,
//! quoted strings, literals of both kinds and nested lists) encoded by a small encoder
//! here parse back to the same tree, also when fed in two parts; and the output of
//! `string`/`astring`/`nstring`/`quoted`, embedded in a command, parses back to the same
//! bytes.

use codec::imap::{astring, nstring, quoted, string, Arg, Limits, ParseError, Parser};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

// ---------------------------------------------------------------------------------------
// Driving the parser.

/// An argument, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owned {
    Atom(Vec<u8>),
    Quoted(Vec<u8>),
    Literal(Vec<u8>),
    List(Vec<Owned>),
}

fn own(arg: &Arg<'_>) -> Owned {
    match arg {
        Arg::Atom(a) => Owned::Atom(a.to_vec()),
        Arg::Quoted(q) => Owned::Quoted(q.to_vec()),
        Arg::Literal(l) => Owned::Literal(l.to_vec()),
        Arg::List(items) => Owned::List(items.iter().map(own).collect()),
    }
}

/// What a session acts on; `Discard` and `NeedsLiteral` depend on the split and are only
/// checked for their invariants.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Command {
        tag: Vec<u8>,
        name: Vec<u8>,
        args: Vec<Owned>,
        end: usize,
    },
    Bad {
        tag: Option<Vec<u8>>,
        message: &'static str,
    },
    Fatal {
        tag: Option<Vec<u8>>,
        message: &'static str,
    },
}

/// Feeds `input` `chunk` bytes at a time, parsing until `Incomplete`, and checks what
/// every result claims.
fn events(input: &[u8], chunk: usize, limits: Limits) -> Result<Vec<Event>, TestCaseError> {
    let mut parser = Parser::new(limits);
    let mut buf: Vec<u8> = Vec::new();
    let mut base = 0;
    let mut fed = 0;
    let mut out = Vec::new();
    loop {
        loop {
            let used = match parser.parse(&buf) {
                Ok((c, used)) => {
                    prop_assert!(used > 0 && used <= buf.len());
                    out.push(Event::Command {
                        tag: c.tag.to_vec(),
                        name: c.name.to_vec(),
                        args: c.args.iter().map(own).collect(),
                        end: base + used,
                    });
                    used
                }
                Err(ParseError::Incomplete) => break,
                Err(ParseError::NeedsLiteral { size }) => {
                    prop_assert!(size <= limits.max_literal);
                    // Asked once: the same bytes again are just incomplete.
                    prop_assert_eq!(parser.parse(&buf), Err(ParseError::Incomplete));
                    break;
                }
                Err(ParseError::Bad {
                    tag,
                    message,
                    consumed,
                }) => {
                    prop_assert!(consumed > 0 && consumed <= buf.len());
                    if let Some(tag) = &tag {
                        prop_assert!(buf.starts_with(tag) && !tag.is_empty());
                    }
                    out.push(Event::Bad { tag, message });
                    consumed
                }
                Err(ParseError::Discard { consumed }) => {
                    prop_assert!(consumed > 0 && consumed <= buf.len());
                    consumed
                }
                Err(ParseError::Fatal { tag, message }) => {
                    out.push(Event::Fatal { tag, message });
                    return Ok(out);
                }
            };
            buf.drain(..used);
            base += used;
        }
        if fed == input.len() {
            return Ok(out);
        }
        let end = (fed + chunk).min(input.len());
        buf.extend_from_slice(&input[fed..end]);
        fed = end;
    }
}

/// Tight limits, so that every limit is reached by short inputs. The tag limit stays
/// below the line limit: a tag is only looked for in the bytes at hand.
fn limits() -> impl Strategy<Value = Limits> {
    (
        16usize..80,
        0usize..24,
        16usize..160,
        0usize..5,
        1usize..24,
        1usize..12,
    )
        .prop_map(
            |(max_line, max_literal, max_command, max_depth, max_args, max_tag)| Limits {
                max_line,
                max_literal,
                max_command,
                max_depth,
                max_args,
                max_tag,
            },
        )
}

/// Protocol-like soup: fragments of commands, literal markers and specials, mixed with
/// random bytes.
fn soup() -> impl Strategy<Value = Vec<u8>> {
    let fragment = prop_oneof![
        3 => vec(any::<u8>(), 0..6),
        1 => vec(select(b"aA1 ".to_vec()), 1..40),
        6 => select(vec![
            &b"a1 "[..], b"A2 ", b"+ ", b"LOGIN ", b"FETCH ", b"NOOP", b"NIL", b"x", b" ",
            b"{3}\r\n", b"{0}\r\n", b"{2+}\r\n", b"{0+}\n", b"{99}\r\n", b"{99+}\r\n",
            b"{x}\r\n", b"{99999999999999999999}\r\n", b"{1}", b"}", b"{", b"\"", b"\\",
            b"\\\"", b"(", b")", b"((", b"))", b"[", b"]", b"BODY[", b"<0.1>", b"\r\n",
            b"\n", b"\r", b"\0", b"*", b"%", b"\xff",
        ])
        .prop_map(<[u8]>::to_vec),
    ];
    vec(fragment, 0..64).prop_map(|parts| parts.concat())
}

// ---------------------------------------------------------------------------------------
// Generating commands.

fn is_atom_byte(b: u8) -> bool {
    b > b' ' && b != 0x7f && !matches!(b, b'(' | b')' | b'{' | b'"')
}

fn bytes_where(keep: impl Fn(u8) -> bool) -> Vec<u8> {
    (0..=255u8).filter(|&b| keep(b)).collect()
}

/// An atom byte other than `[` (which opens a section), often one that is special
/// elsewhere in IMAP.
fn atom_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        4 => select(bytes_where(|b| is_atom_byte(b) && b != b'[')),
        1 => select(b"}]%*\\+<>.:,".to_vec()),
    ]
}

fn atom() -> impl Strategy<Value = Vec<u8>> {
    vec(atom_byte(), 1..10)
}

/// An atom with a `[section]`, which may hold spaces, quotes, parentheses and braces.
fn section_atom() -> impl Strategy<Value = Vec<u8>> {
    let section_byte = prop_oneof![
        2 => select(bytes_where(|b| (0x20..0x7f).contains(&b) && b != b']')),
        1 => select(b" ()\"{}[".to_vec()),
    ];
    (
        vec(atom_byte(), 1..8),
        vec(section_byte, 0..16),
        vec(atom_byte(), 0..6),
    )
        .prop_map(|(head, section, tail)| [&head[..], b"[", &section, b"]", &tail].concat())
}

/// The bytes of a quoted string: anything but CR, LF and NUL, often a special.
fn quoted_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        2 => select(bytes_where(|b| !matches!(b, 0 | b'\r' | b'\n'))),
        1 => select(b"\"\\{}()[] %*".to_vec()),
    ];
    vec(byte, 0..16)
}

fn literal_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        2 => any::<u8>(),
        1 => select(b"\r\n{}\"( ".to_vec()),
    ];
    vec(byte, 0..32)
}

/// A generated argument; `Literal`'s flag says synchronizing.
#[derive(Debug, Clone)]
enum Gen {
    Atom(Vec<u8>),
    Quoted(Vec<u8>),
    Literal(Vec<u8>, bool),
    List(Vec<Gen>),
}

impl Gen {
    fn expected(&self) -> Owned {
        match self {
            Gen::Atom(a) => Owned::Atom(a.clone()),
            Gen::Quoted(q) => Owned::Quoted(q.clone()),
            Gen::Literal(l, _) => Owned::Literal(l.clone()),
            Gen::List(items) => Owned::List(items.iter().map(Gen::expected).collect()),
        }
    }
}

fn arg() -> impl Strategy<Value = Gen> {
    let leaf = prop_oneof![
        4 => atom().prop_map(Gen::Atom),
        1 => section_atom().prop_map(Gen::Atom),
        3 => quoted_bytes().prop_map(Gen::Quoted),
        2 => (literal_bytes(), any::<bool>()).prop_map(|(l, sync)| Gen::Literal(l, sync)),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| vec(inner, 0..5).prop_map(Gen::List))
}

#[derive(Debug, Clone)]
struct GenCommand {
    tag: Vec<u8>,
    name: Vec<u8>,
    args: Vec<Gen>,
    /// Bare LF line ends instead of CRLF.
    lf: bool,
}

fn command() -> impl Strategy<Value = GenCommand> {
    let tag_byte = select(bytes_where(|b| {
        is_atom_byte(b) && !matches!(b, b'+' | b'[' | b']' | b'%' | b'*' | b'\\')
    }));
    let name_byte = select(bytes_where(|b| b.is_ascii_alphanumeric()));
    (
        vec(tag_byte, 1..10),
        vec(name_byte, 1..12),
        vec(arg(), 0..6),
        any::<bool>(),
    )
        .prop_map(|(tag, name, args, lf)| GenCommand {
            tag,
            name,
            args,
            lf,
        })
}

/// The encoding, and each synchronizing literal's marker end and size (offsets from the
/// start of `out` as it was).
struct Encoded {
    bytes: Vec<u8>,
    sync: Vec<(usize, usize)>,
}

fn encode(c: &GenCommand) -> Encoded {
    fn arg(a: &Gen, eol: &[u8], e: &mut Encoded) {
        match a {
            Gen::Atom(v) => e.bytes.extend_from_slice(v),
            Gen::Quoted(v) => {
                e.bytes.push(b'"');
                for &b in v {
                    if b == b'"' || b == b'\\' {
                        e.bytes.push(b'\\');
                    }
                    e.bytes.push(b);
                }
                e.bytes.push(b'"');
            }
            Gen::Literal(v, sync) => {
                let plus = if *sync { "" } else { "+" };
                e.bytes
                    .extend_from_slice(format!("{{{}{plus}}}", v.len()).as_bytes());
                e.bytes.extend_from_slice(eol);
                if *sync {
                    e.sync.push((e.bytes.len(), v.len()));
                }
                e.bytes.extend_from_slice(v);
            }
            Gen::List(items) => {
                e.bytes.push(b'(');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        e.bytes.push(b' ');
                    }
                    arg(item, eol, e);
                }
                e.bytes.push(b')');
            }
        }
    }
    let eol: &[u8] = if c.lf { b"\n" } else { b"\r\n" };
    let mut e = Encoded {
        bytes: [&c.tag[..], b" ", &c.name].concat(),
        sync: Vec::new(),
    };
    for a in &c.args {
        e.bytes.push(b' ');
        arg(a, eol, &mut e);
    }
    e.bytes.extend_from_slice(eol);
    e
}

fn expected(c: &GenCommand, end: usize) -> Event {
    Event::Command {
        tag: c.tag.clone(),
        name: c.name.clone(),
        args: c.args.iter().map(Gen::expected).collect(),
        end,
    }
}

/// Parses one whole command with `parser` into an event.
fn parse_whole(parser: &mut Parser, bytes: &[u8]) -> Result<Event, TestCaseError> {
    match parser.parse(bytes) {
        Ok((c, used)) => Ok(Event::Command {
            tag: c.tag.to_vec(),
            name: c.name.to_vec(),
            args: c.args.iter().map(own).collect(),
            end: used,
        }),
        Err(e) => Err(TestCaseError::fail(format!(
            "{:?}: {e:?}",
            bytes.escape_ascii().to_string()
        ))),
    }
}

/// A value for the string encoders: arbitrary bytes, specials, or long printable runs
/// around the 1024-byte switch to a literal.
fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => vec(any::<u8>(), 0..24),
        3 => vec(select(b"NIL nil[](){}\"\\%*+ab\r\n\0\x7f\x80".to_vec()), 0..10),
        1 => select(vec![&b"NIL"[..], b"nil", b"", b"}", b"a}", b"[", b"a[b", b"]"])
            .prop_map(<[u8]>::to_vec),
        1 => vec(0x20u8..0x7f, 1000..1100),
    ]
}

// ---------------------------------------------------------------------------------------
// Properties.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random bytes under the default limits: no panic, consumption within the buffer.
    #[test]
    fn random_bytes(input in vec(any::<u8>(), 0..2048), chunk in 1usize..64) {
        let whole = events(&input, input.len().max(1), Limits::default())?;
        let pieces = events(&input, chunk, Limits::default())?;
        prop_assert_eq!(whole, pieces);
    }

    /// Protocol-like soup under tight limits: the same, and the outcome does not depend
    /// on how the bytes were split.
    #[test]
    fn soup_under_tight_limits(input in soup(), limits in limits(), chunk in 1usize..24) {
        let whole = events(&input, input.len().max(1), limits)?;
        let pieces = events(&input, chunk, limits)?;
        prop_assert_eq!(&whole, &pieces);
        let bytewise = events(&input, 1, limits)?;
        prop_assert_eq!(&whole, &bytewise);
    }

    /// A generated command parses back to its tree; fed in two parts, the first part
    /// asks for a synchronizing literal exactly when it ends where that literal's bytes
    /// are due.
    #[test]
    fn generated_commands_round_trip(c in command(), split in any::<prop::sample::Index>()) {
        let e = encode(&c);
        let want = expected(&c, e.bytes.len());
        let mut parser = Parser::default();
        prop_assert_eq!(parse_whole(&mut parser, &e.bytes)?, want.clone());

        let at = split.index(e.bytes.len());
        let asked = e
            .sync
            .iter()
            .find(|&&(marker_end, size)| {
                at >= marker_end && (at < marker_end + size || at == marker_end)
            })
            .map(|&(_, size)| size);
        let mut parser = Parser::default();
        let first = parser.parse(&e.bytes[..at]).map(|_| ());
        match asked {
            Some(size) => prop_assert_eq!(first, Err(ParseError::NeedsLiteral { size })),
            None => prop_assert_eq!(first, Err(ParseError::Incomplete)),
        }
        prop_assert_eq!(parse_whole(&mut parser, &e.bytes)?, want);
    }

    /// Generated commands back to back come out in order, whatever the reads.
    #[test]
    fn generated_pipelines(cs in vec(command(), 1..6), chunk in 1usize..48) {
        let mut bytes = Vec::new();
        let mut want = Vec::new();
        for c in &cs {
            bytes.extend_from_slice(&encode(c).bytes);
            want.push(expected(c, bytes.len()));
        }
        prop_assert_eq!(events(&bytes, bytes.len(), Limits::default())?, want.clone());
        prop_assert_eq!(events(&bytes, chunk, Limits::default())?, want);
    }

    /// Whatever form the encoders choose, the parser reads back the same bytes, also
    /// when the value ends the line.
    #[test]
    fn encoded_strings_parse_back(v in value(), w in value()) {
        let mut line = b"t1 X ".to_vec();
        astring(&mut line, &v);
        line.push(b' ');
        string(&mut line, &v);
        line.push(b' ');
        nstring(&mut line, Some(&v));
        line.push(b' ');
        nstring(&mut line, None);
        let quotable = !v.iter().any(|&b| matches!(b, 0 | b'\r' | b'\n'));
        if quotable {
            line.push(b' ');
            quoted(&mut line, &v);
        }
        line.push(b' ');
        string(&mut line, &w);
        line.push(b' ');
        astring(&mut line, &w);
        line.extend_from_slice(b"\r\n");

        let mut parser = Parser::default();
        let (c, used) = parser.parse(&line).map_err(|e| {
            TestCaseError::fail(format!("{:?}: {e:?}", line.escape_ascii().to_string()))
        })?;
        prop_assert_eq!(used, line.len());
        let n = if quotable { 7 } else { 6 };
        prop_assert_eq!(c.args.len(), n);
        prop_assert_eq!(c.args[0].as_astring(), Some(&v[..]));
        prop_assert!(!c.args[0].is_nil());
        prop_assert_eq!(c.args[1].as_astring(), Some(&v[..]));
        prop_assert!(!matches!(c.args[1], Arg::Atom(_)));
        prop_assert_eq!(c.args[2].as_astring(), Some(&v[..]));
        prop_assert!(!c.args[2].is_nil());
        prop_assert!(c.args[3].is_nil());
        if quotable {
            prop_assert_eq!(&c.args[4], &Arg::Quoted(v.as_slice().into()));
        }
        prop_assert_eq!(c.args[n - 2].as_astring(), Some(&w[..]));
        prop_assert_eq!(c.args[n - 1].as_astring(), Some(&w[..]));
    }
}
