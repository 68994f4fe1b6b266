//! Owned copies of parsed commands, so a handler can keep reading from the connection
//! (AUTHENTICATE, IDLE) while it works on the command.

use codec::imap::{Arg, Command};

/// An owned argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum A {
    /// Atom.
    Atom(String),
    /// Quoted string or literal (raw bytes).
    Str(Vec<u8>),
    /// List.
    List(Vec<A>),
}

impl A {
    fn from(arg: &Arg<'_>) -> Self {
        match arg {
            Arg::Atom(a) => A::Atom(String::from_utf8_lossy(a).into_owned()),
            Arg::Quoted(q) => A::Str(q.to_vec()),
            Arg::Literal(l) => A::Str(l.to_vec()),
            Arg::List(items) => A::List(items.iter().map(A::from).collect()),
        }
    }

    /// An astring's text (atom, quoted or literal).
    pub(crate) fn text(&self) -> Option<String> {
        match self {
            A::Atom(a) => Some(a.clone()),
            A::Str(s) => Some(String::from_utf8_lossy(s).into_owned()),
            A::List(_) => None,
        }
    }

    /// An astring's bytes.
    pub(crate) fn bytes(&self) -> Option<&[u8]> {
        match self {
            A::Atom(a) => Some(a.as_bytes()),
            A::Str(s) => Some(s),
            A::List(_) => None,
        }
    }

    /// The atom, uppercased.
    pub(crate) fn upper(&self) -> Option<String> {
        match self {
            A::Atom(a) => Some(a.to_ascii_uppercase()),
            _ => None,
        }
    }
}

/// An owned command.
#[derive(Debug, Clone)]
pub(crate) struct Cmd {
    /// The tag.
    pub(crate) tag: Vec<u8>,
    /// The name, uppercased.
    pub(crate) name: String,
    /// The arguments.
    pub(crate) args: Vec<A>,
}

impl Cmd {
    pub(crate) fn from(c: &Command<'_>) -> Self {
        Self {
            tag: c.tag.to_vec(),
            name: String::from_utf8_lossy(c.name).to_ascii_uppercase(),
            args: c.args.iter().map(A::from).collect(),
        }
    }
}
