//! SEARCH and UID SEARCH: flags, sequence and UID sets, header and body text, sizes,
//! NOT / OR / parenthesised groups, an optional CHARSET.

use super::args::{Cmd, A};
use super::{Next, Session, State};
use crate::mime;
use crate::store::Message;
use codec::imap::SequenceSet;

/// One search key.
#[derive(Debug, Clone)]
enum Key {
    All,
    Flag(&'static str, bool),
    Seq(SequenceSet),
    Uid(SequenceSet),
    Header(String, String),
    Body(String),
    Text(String),
    Larger(usize),
    Smaller(usize),
    Not(Box<Key>),
    Or(Box<Key>, Box<Key>),
    And(Vec<Key>),
}

fn parse_keys(args: &[A]) -> Option<Vec<Key>> {
    let mut it = args.iter().peekable();
    let mut keys = Vec::new();
    while it.peek().is_some() {
        keys.push(parse_key(&mut it)?);
    }
    Some(keys)
}

fn parse_key<'a, I: Iterator<Item = &'a A>>(it: &mut std::iter::Peekable<I>) -> Option<Key> {
    let arg = it.next()?;
    if let A::List(items) = arg {
        return Some(Key::And(parse_keys(items)?));
    }
    let word = arg.text()?;
    let text = |it: &mut std::iter::Peekable<I>| it.next().and_then(A::text);
    Some(match word.to_ascii_uppercase().as_str() {
        "ALL" => Key::All,
        "SEEN" => Key::Flag("\\Seen", true),
        "UNSEEN" => Key::Flag("\\Seen", false),
        "DELETED" => Key::Flag("\\Deleted", true),
        "UNDELETED" => Key::Flag("\\Deleted", false),
        "FLAGGED" => Key::Flag("\\Flagged", true),
        "UNFLAGGED" => Key::Flag("\\Flagged", false),
        "ANSWERED" => Key::Flag("\\Answered", true),
        "UNANSWERED" => Key::Flag("\\Answered", false),
        "DRAFT" => Key::Flag("\\Draft", true),
        "UNDRAFT" => Key::Flag("\\Draft", false),
        "NEW" | "RECENT" => Key::Not(Box::new(Key::All)),
        "OLD" => Key::All,
        "UID" => Key::Uid(SequenceSet::parse(text(it)?.as_bytes())?),
        "HEADER" => {
            let field = text(it)?;
            Key::Header(field, text(it)?)
        }
        f @ ("SUBJECT" | "FROM" | "TO" | "CC" | "BCC") => Key::Header(f.to_string(), text(it)?),
        "BODY" => Key::Body(text(it)?),
        "TEXT" => Key::Text(text(it)?),
        "LARGER" => Key::Larger(text(it)?.parse().ok()?),
        "SMALLER" => Key::Smaller(text(it)?.parse().ok()?),
        "NOT" => Key::Not(Box::new(parse_key(it)?)),
        "OR" => {
            let a = parse_key(it)?;
            Key::Or(Box::new(a), Box::new(parse_key(it)?))
        }
        _ => Key::Seq(SequenceSet::parse(word.as_bytes())?),
    })
}

fn contains_ci(hay: &str, needle: &str) -> bool {
    hay.to_lowercase().contains(&needle.to_lowercase())
}

fn matches(key: &Key, m: &Message, seq: u32, count: u32, max_uid: u32) -> bool {
    match key {
        Key::All => true,
        Key::Flag(f, want) => m.flags.contains(*f) == *want,
        Key::Seq(s) => s.contains(seq, count),
        Key::Uid(s) => s.contains(m.uid, max_uid),
        Key::Header(f, v) => mime::fields(&m.data)
            .iter()
            .any(|(n, value)| n.eq_ignore_ascii_case(f) && contains_ci(value, v)),
        Key::Body(s) => contains_ci(&String::from_utf8_lossy(mime::text(&m.data)), s),
        Key::Text(s) => contains_ci(&String::from_utf8_lossy(&m.data), s),
        Key::Larger(n) => m.data.len() > *n,
        Key::Smaller(n) => m.data.len() < *n,
        Key::Not(k) => !matches(k, m, seq, count, max_uid),
        Key::Or(a, b) => matches(a, m, seq, count, max_uid) || matches(b, m, seq, count, max_uid),
        Key::And(keys) => keys.iter().all(|k| matches(k, m, seq, count, max_uid)),
    }
}

impl Session {
    pub(crate) fn search(&mut self, cmd: &Cmd, uid: bool) -> Next {
        let tag = cmd.tag.clone();
        let mut args = &cmd.args[..];
        if args.first().and_then(A::upper).as_deref() == Some("CHARSET") {
            match args
                .get(1)
                .and_then(A::text)
                .map(|c| c.to_ascii_uppercase())
            {
                Some(c) if c == "UTF-8" || c == "US-ASCII" => args = &args[2..],
                _ => {
                    return self.no(
                        &tag,
                        Some("BADCHARSET (UTF-8 US-ASCII)"),
                        "Unsupported charset",
                    )
                }
            }
        }
        let Some(keys) = parse_keys(args).filter(|k| !k.is_empty()) else {
            return self.bad_command(Some(&tag), "Invalid search criteria");
        };
        let key = Key::And(keys);
        let State::Selected { account, view, .. } = &self.state else {
            return Next::Continue;
        };
        let mailbox = account.lock();
        let mut hits = Vec::new();
        if let Some(folder) = mailbox.folders.get(&view.folder) {
            let count = view.messages.len() as u32;
            let max_uid = view.messages.last().map_or(0, |(u, _)| *u);
            for (i, (u, _)) in view.messages.iter().enumerate() {
                if let Some(m) = folder.messages.iter().find(|m| m.uid == *u) {
                    if matches(&key, m, i as u32 + 1, count, max_uid) {
                        hits.push(if uid { *u } else { i as u32 + 1 });
                    }
                }
            }
        }
        drop(mailbox);
        let mut line = String::from("SEARCH");
        for h in hits {
            line.push(' ');
            line.push_str(&h.to_string());
        }
        codec::imap::untagged(&mut self.out, &line);
        self.sync(uid);
        let label = if uid {
            "UID SEARCH completed"
        } else {
            "SEARCH completed"
        };
        self.ok(&tag, None, label)
    }
}
