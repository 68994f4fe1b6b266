//! A parsed IMAP command: tag, name and a tree of arguments, borrowed from the input
//! buffer (quoted strings with escapes are the only values that need a copy).

use std::borrow::Cow;

/// One command as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command<'a> {
    /// The tag, as sent.
    pub tag: &'a [u8],
    /// The command name, as sent (compare case-insensitively).
    pub name: &'a [u8],
    /// The arguments after the name.
    pub args: Vec<Arg<'a>>,
}

impl Command<'_> {
    /// Whether the name is `name`, ignoring ASCII case.
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }
}

/// One argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg<'a> {
    /// An atom (this includes `NIL`, numbers, sequence sets, flags like `\Seen`, and fetch
    /// attributes with their `[section]<partial>` suffix, which may hold spaces).
    Atom(&'a [u8]),
    /// A quoted string, unescaped.
    Quoted(Cow<'a, [u8]>),
    /// A literal's bytes.
    Literal(&'a [u8]),
    /// A parenthesised list.
    List(Vec<Arg<'a>>),
}

impl<'a> Arg<'a> {
    /// The value of an astring (atom, quoted or literal); `None` for a list.
    pub fn as_astring(&self) -> Option<&[u8]> {
        match self {
            Arg::Atom(a) | Arg::Literal(a) => Some(a),
            Arg::Quoted(q) => Some(q),
            Arg::List(_) => None,
        }
    }

    /// The atom's bytes, if this is an atom.
    pub fn as_atom(&self) -> Option<&'a [u8]> {
        match self {
            Arg::Atom(a) => Some(a),
            _ => None,
        }
    }

    /// The list's items, if this is a list.
    pub fn as_list(&self) -> Option<&[Arg<'a>]> {
        match self {
            Arg::List(l) => Some(l),
            _ => None,
        }
    }

    /// Whether this is the atom `NIL`.
    pub fn is_nil(&self) -> bool {
        matches!(self, Arg::Atom(a) if a.eq_ignore_ascii_case(b"NIL"))
    }
}

/// One range of a sequence set; `u32::MAX` stands for `*` (the largest number in use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqRange {
    /// Low end (inclusive).
    pub from: u32,
    /// High end (inclusive).
    pub to: u32,
}

/// A sequence set (`1,3:5,7:*`) of message sequence numbers or UIDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceSet(pub Vec<SeqRange>);

impl SequenceSet {
    /// Parses a sequence set; `None` if it is not one (zero is not a valid number).
    pub fn parse(text: &[u8]) -> Option<Self> {
        if text.is_empty() {
            return None;
        }
        let number = |t: &[u8]| -> Option<u32> {
            if t == b"*" {
                return Some(u32::MAX);
            }
            if t.is_empty() || t.len() > 10 || !t.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let n: u64 = std::str::from_utf8(t).ok()?.parse().ok()?;
            u32::try_from(n).ok().filter(|&n| n > 0 && n < u32::MAX)
        };
        let mut ranges = Vec::new();
        for part in text.split(|&b| b == b',') {
            let range = match part.iter().position(|&b| b == b':') {
                Some(colon) => {
                    let a = number(&part[..colon])?;
                    let b = number(&part[colon + 1..])?;
                    SeqRange {
                        from: a.min(b),
                        to: a.max(b),
                    }
                }
                None => {
                    let a = number(part)?;
                    SeqRange { from: a, to: a }
                }
            };
            ranges.push(range);
        }
        Some(Self(ranges))
    }

    /// Whether `n` is in the set when `*` means `largest`.
    pub fn contains(&self, n: u32, largest: u32) -> bool {
        self.0.iter().any(|r| {
            let star = |v: u32| if v == u32::MAX { largest } else { v };
            let (a, b) = (star(r.from), star(r.to));
            (a.min(b)..=a.max(b)).contains(&n)
        })
    }
}
