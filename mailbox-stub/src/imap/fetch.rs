//! FETCH, STORE and COPY (and their UID forms): resolving sequence sets against the
//! session's view, rendering fetch attributes, setting `\Seen` on non-PEEK body fetches.

use std::sync::Arc;

use codec::imap::{nstring, untagged, SequenceSet};

use super::args::{Cmd, A};
use super::folders::{fetch_flags, flags_of};
use super::{Next, Session, State};
use crate::mail::imap_date;
use crate::mime;
use crate::store::{Mailbox, Message};

/// One requested fetch attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Flags,
    Uid,
    InternalDate,
    Size,
    Envelope,
    Body,
    BodyStructure,
    Rfc822,
    Rfc822Header,
    Rfc822Text,
    Section {
        peek: bool,
        /// Section text as requested (for the reply), e.g. `HEADER.FIELDS (SUBJECT)`.
        spec: String,
        partial: Option<(usize, usize)>,
    },
}

fn parse_items(args: &[A]) -> Option<Vec<Item>> {
    let list: Vec<&A> = match args {
        [A::List(items)] => items.iter().collect(),
        [single] => vec![single],
        _ => return None,
    };
    let mut out = Vec::new();
    for a in list {
        let A::Atom(raw) = a else { return None };
        let upper = raw.to_ascii_uppercase();
        match upper.as_str() {
            "ALL" => out.extend([Item::Flags, Item::InternalDate, Item::Size, Item::Envelope]),
            "FAST" => out.extend([Item::Flags, Item::InternalDate, Item::Size]),
            "FULL" => out.extend([
                Item::Flags,
                Item::InternalDate,
                Item::Size,
                Item::Envelope,
                Item::Body,
            ]),
            "FLAGS" => out.push(Item::Flags),
            "UID" => out.push(Item::Uid),
            "INTERNALDATE" => out.push(Item::InternalDate),
            "RFC822.SIZE" => out.push(Item::Size),
            "ENVELOPE" => out.push(Item::Envelope),
            "BODY" => out.push(Item::Body),
            "BODYSTRUCTURE" => out.push(Item::BodyStructure),
            "RFC822" => out.push(Item::Rfc822),
            "RFC822.HEADER" => out.push(Item::Rfc822Header),
            "RFC822.TEXT" => out.push(Item::Rfc822Text),
            _ => {
                let (peek, rest) = if let Some(r) = upper.strip_prefix("BODY.PEEK[") {
                    (true, r)
                } else if let Some(r) = upper.strip_prefix("BODY[") {
                    (false, r)
                } else {
                    return None;
                };
                let close = rest.find(']')?;
                // Keep the client's spelling of the section for the reply.
                let start = raw.len() - rest.len();
                let spec = raw[start..start + close].to_string();
                let tail = &rest[close + 1..];
                let partial = if tail.is_empty() {
                    None
                } else {
                    let inner = tail.strip_prefix('<')?.strip_suffix('>')?;
                    let (o, n) = inner.split_once('.')?;
                    Some((o.parse().ok()?, n.parse().ok()?))
                };
                out.push(Item::Section {
                    peek,
                    spec,
                    partial,
                });
            }
        }
    }
    Some(out)
}

/// The bytes of a BODY[spec] section, or None if the spec is invalid.
fn section(msg: &[u8], spec: &str) -> Option<Vec<u8>> {
    let upper = spec.to_ascii_uppercase();
    if upper.is_empty() {
        return Some(msg.to_vec());
    }
    // A part path (1.2) optionally followed by .HEADER/.TEXT/.MIME/.HEADER.FIELDS.
    let mut path = Vec::new();
    let mut rest = upper.as_str();
    let mut original_rest = spec;
    loop {
        let end = rest.find('.').unwrap_or(rest.len());
        match rest[..end].parse::<usize>() {
            Ok(n) if n > 0 => {
                path.push(n);
                rest = rest.get(end + 1..).unwrap_or("");
                original_rest = original_rest.get(end + 1..).unwrap_or("");
            }
            _ => break,
        }
        if rest.is_empty() {
            break;
        }
    }
    let target: &[u8] = if path.is_empty() {
        msg
    } else if rest.is_empty() {
        return mime::part_section(msg, &path, false).map(<[u8]>::to_vec);
    } else if rest == "MIME" {
        return mime::part_section(msg, &path, true).map(<[u8]>::to_vec);
    } else {
        // HEADER/TEXT of a message/rfc822 part: treat the part as a message.
        let p = mime::part_section(msg, &path, false)?;
        return section_of_message(p, rest, original_rest);
    };
    section_of_message(target, rest, original_rest)
}

fn section_of_message(msg: &[u8], upper: &str, original: &str) -> Option<Vec<u8>> {
    match upper {
        "HEADER" => Some(mime::header(msg).to_vec()),
        "TEXT" => Some(mime::text(msg).to_vec()),
        _ => {
            let (not, fields) = if let Some(f) = upper.strip_prefix("HEADER.FIELDS.NOT") {
                (true, f)
            } else if let Some(f) = upper.strip_prefix("HEADER.FIELDS") {
                (false, f)
            } else {
                return None;
            };
            let _ = original;
            let names: Vec<String> = fields
                .trim()
                .trim_start_matches('(')
                .trim_end_matches(')')
                .split_whitespace()
                .map(|n| n.trim_matches('"').to_string())
                .collect();
            if names.is_empty() {
                return None;
            }
            Some(mime::header_fields(msg, &names, not))
        }
    }
}

impl Session {
    /// The UIDs a set names: sequence numbers against the view, or UIDs (`uid`).
    pub(crate) fn resolve(&self, set: &SequenceSet, uid: bool) -> Vec<(u32, u32)> {
        let State::Selected { view, .. } = &self.state else {
            return Vec::new();
        };
        let count = view.messages.len() as u32;
        let max_uid = view.messages.last().map_or(0, |(u, _)| *u);
        view.messages
            .iter()
            .enumerate()
            .filter(|(i, (u, _))| {
                if uid {
                    set.contains(*u, max_uid)
                } else {
                    set.contains(*i as u32 + 1, count)
                }
            })
            .map(|(i, (u, _))| (i as u32 + 1, *u))
            .collect()
    }

    pub(crate) fn message_command(&mut self, cmd: &Cmd, uid: bool) -> Next {
        if cmd.name == "SEARCH" {
            return self.search(cmd, uid);
        }
        let tag = cmd.tag.clone();
        let Some(set) = cmd
            .args
            .first()
            .and_then(A::bytes)
            .and_then(SequenceSet::parse)
        else {
            return self.bad_command(Some(&tag), "Invalid sequence set");
        };
        let targets = self.resolve(&set, uid);
        let label = if uid {
            format!("UID {}", cmd.name)
        } else {
            cmd.name.clone()
        };
        let next = match cmd.name.as_str() {
            "FETCH" => {
                let Some(mut items) = parse_items(&cmd.args[1..]) else {
                    return self.bad_command(Some(&tag), "Invalid fetch attributes");
                };
                if uid && !items.contains(&Item::Uid) {
                    items.insert(0, Item::Uid);
                }
                self.fetch(&targets, &items);
                self.ok(&tag, None, &format!("{label} completed"))
            }
            "STORE" => self.store(&tag, cmd, &targets, uid, &label),
            "COPY" => self.copy(&tag, cmd, &targets, &label),
            _ => self.bad_command(Some(&tag), "Unknown command"),
        };
        // UID commands may report expunges; sequence-number commands may not.
        self.sync_before_tagged(uid);
        next
    }

    fn fetch(&mut self, targets: &[(u32, u32)], items: &[Item]) {
        let State::Selected { account, view, .. } = &mut self.state else {
            return;
        };
        let mut mailbox = account.lock();
        let Some(folder) = mailbox.folders.get_mut(&view.folder) else {
            return;
        };
        let sets_seen = !view.read_only
            && items.iter().any(|i| {
                matches!(
                    i,
                    Item::Rfc822 | Item::Rfc822Text | Item::Section { peek: false, .. }
                )
            });
        let mut changed = false;
        for &(seq, uid) in targets {
            let Some(m) = folder.messages.iter_mut().find(|m| m.uid == uid) else {
                continue;
            };
            let mut seen_now = false;
            if sets_seen && !m.flags.contains("\\Seen") {
                m.flags.insert("\\Seen".into());
                seen_now = true;
                changed = true;
            }
            let data = Arc::clone(&m.data);
            let mut line = format!("* {seq} FETCH (").into_bytes();
            let mut first = true;
            let mut sep = |line: &mut Vec<u8>| {
                if !first {
                    line.push(b' ');
                }
                first = false;
            };
            let mut wrote_flags = false;
            for item in items {
                sep(&mut line);
                match item {
                    Item::Flags => {
                        line.extend_from_slice(
                            format!("FLAGS {}", fetch_flags(&m.flags)).as_bytes(),
                        );
                        wrote_flags = true;
                    }
                    Item::Uid => line.extend_from_slice(format!("UID {uid}").as_bytes()),
                    Item::InternalDate => line.extend_from_slice(
                        format!("INTERNALDATE \"{}\"", imap_date(m.internal_date)).as_bytes(),
                    ),
                    Item::Size => {
                        line.extend_from_slice(format!("RFC822.SIZE {}", data.len()).as_bytes())
                    }
                    Item::Envelope => {
                        line.extend_from_slice(b"ENVELOPE ");
                        mime::envelope(&mut line, &data);
                    }
                    Item::Body => {
                        line.extend_from_slice(b"BODY ");
                        mime::bodystructure(&mut line, &data, false);
                    }
                    Item::BodyStructure => {
                        line.extend_from_slice(b"BODYSTRUCTURE ");
                        mime::bodystructure(&mut line, &data, true);
                    }
                    Item::Rfc822 => {
                        line.extend_from_slice(b"RFC822 ");
                        literal(&mut line, &data);
                    }
                    Item::Rfc822Header => {
                        line.extend_from_slice(b"RFC822.HEADER ");
                        literal(&mut line, mime::header(&data));
                    }
                    Item::Rfc822Text => {
                        line.extend_from_slice(b"RFC822.TEXT ");
                        literal(&mut line, mime::text(&data));
                    }
                    Item::Section { spec, partial, .. } => {
                        let content = section(&data, spec);
                        line.extend_from_slice(format!("BODY[{spec}]").as_bytes());
                        let content = match (content, partial) {
                            (Some(c), Some((offset, len))) => {
                                line.extend_from_slice(format!("<{offset}>").as_bytes());
                                let start = (*offset).min(c.len());
                                let end = start.saturating_add(*len).min(c.len());
                                Some(c[start..end].to_vec())
                            }
                            (c, _) => c,
                        };
                        line.push(b' ');
                        match content {
                            Some(c) => literal(&mut line, &c),
                            None => nstring(&mut line, None),
                        }
                    }
                }
            }
            if seen_now && !wrote_flags {
                sep(&mut line);
                line.extend_from_slice(format!("FLAGS {}", fetch_flags(&m.flags)).as_bytes());
            }
            line.extend_from_slice(b")\r\n");
            self.out.extend_from_slice(&line);
            if let Some(entry) = view.messages.get_mut(seq as usize - 1) {
                entry.1 = m.flags.clone();
            }
        }
        drop(mailbox);
        if changed {
            account.notify();
        }
    }

    fn store(
        &mut self,
        tag: &[u8],
        cmd: &Cmd,
        targets: &[(u32, u32)],
        uid: bool,
        label: &str,
    ) -> Next {
        let (Some(op), Some(flags_arg)) = (cmd.args.get(1).and_then(A::upper), cmd.args.get(2))
        else {
            return self.bad_command(Some(tag), "STORE needs an operation and flags");
        };
        let flags_arg = if cmd.args.len() > 3 {
            A::List(cmd.args[2..].to_vec())
        } else {
            flags_arg.clone()
        };
        let Some(flags) = flags_of(&flags_arg) else {
            return self.bad_command(Some(tag), "Invalid flags");
        };
        let silent = op.ends_with(".SILENT");
        let op = op.trim_end_matches(".SILENT");
        if !matches!(op, "FLAGS" | "+FLAGS" | "-FLAGS") {
            return self.bad_command(Some(tag), "Invalid STORE operation");
        }
        let State::Selected { account, view, .. } = &mut self.state else {
            return Next::Continue;
        };
        if view.read_only {
            return self.no(tag, Some("READ-ONLY"), "Folder is read-only");
        }
        let account = account.clone();
        let mut mailbox = account.lock();
        let Some(folder) = mailbox.folders.get_mut(&view.folder) else {
            drop(mailbox);
            return self.no(tag, None, "Folder vanished");
        };
        let mut lines = Vec::new();
        for &(seq, u) in targets {
            let Some(m) = folder.messages.iter_mut().find(|m| m.uid == u) else {
                continue;
            };
            match op {
                "FLAGS" => m.flags = flags.clone(),
                "+FLAGS" => m.flags.extend(flags.iter().cloned()),
                _ => m.flags.retain(|f| !flags.contains(f)),
            }
            if let Some(entry) = view.messages.get_mut(seq as usize - 1) {
                entry.1 = m.flags.clone();
            }
            if !silent {
                let uid_part = if uid {
                    format!("UID {u} ")
                } else {
                    String::new()
                };
                lines.push(format!(
                    "{seq} FETCH ({uid_part}FLAGS {})",
                    fetch_flags(&m.flags)
                ));
            }
        }
        drop(mailbox);
        account.notify();
        for l in lines {
            untagged(&mut self.out, &l);
        }
        self.ok(tag, None, &format!("{label} completed"))
    }

    fn copy(&mut self, tag: &[u8], cmd: &Cmd, targets: &[(u32, u32)], label: &str) -> Next {
        let Some(dest) = cmd
            .args
            .get(1)
            .and_then(A::text)
            .map(|d| Mailbox::canonical(&d))
        else {
            return self.bad_command(Some(tag), "COPY needs a folder");
        };
        let State::Selected { account, view, .. } = &self.state else {
            return Next::Continue;
        };
        let account = account.clone();
        let source = view.folder.clone();
        let mut mailbox = account.lock();
        if !mailbox.folders.contains_key(&dest) {
            drop(mailbox);
            return self.no(tag, Some("TRYCREATE"), "No such folder");
        }
        let copies: Vec<Message> = mailbox
            .folders
            .get(&source)
            .map(|f| {
                targets
                    .iter()
                    .filter_map(|&(_, u)| f.messages.iter().find(|m| m.uid == u))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let folder = mailbox.folders.get_mut(&dest).expect("checked above");
        let mut src = Vec::new();
        let mut dst = Vec::new();
        for m in copies {
            src.push(m.uid.to_string());
            dst.push(folder.append(m.data, m.flags, m.internal_date).to_string());
        }
        let validity = folder.uid_validity;
        drop(mailbox);
        account.notify();
        if src.is_empty() {
            return self.ok(tag, None, &format!("{label} completed"));
        }
        let code = format!("COPYUID {validity} {} {}", src.join(","), dst.join(","));
        self.ok(tag, Some(&code), &format!("{label} completed"))
    }
}

fn literal(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::generated;

    #[test]
    fn items_and_sections() {
        let items = parse_items(&[A::List(vec![
            A::Atom("UID".into()),
            A::Atom("BODY.PEEK[HEADER.FIELDS (Subject From)]<0.10>".into()),
        ])])
        .unwrap();
        assert_eq!(
            items[1],
            Item::Section {
                peek: true,
                spec: "HEADER.FIELDS (Subject From)".into(),
                partial: Some((0, 10))
            }
        );
        assert!(parse_items(&[A::Atom("BODY[".into())]).is_none());
        let (m, _) = generated("a@b.c", "h", 2);
        assert_eq!(section(&m, "").unwrap(), m);
        assert!(section(&m, "1").unwrap().starts_with(b"Hello a@b.c"));
        assert!(section(&m, "2.MIME")
            .unwrap()
            .starts_with(b"Content-Type: text/html"));
        assert!(section(&m, "TEXT")
            .unwrap()
            .starts_with(b"This is a MIME message."));
        assert_eq!(section(&m, "HEADER").unwrap(), mime::header(&m));
        assert!(section(&m, "BOGUS").is_none());
    }
}
