//! Folder commands: SELECT/EXAMINE, LIST/LSUB, STATUS, CREATE/DELETE/RENAME,
//! SUBSCRIBE/UNSUBSCRIBE, APPEND, CLOSE/UNSELECT and EXPUNGE.

use std::collections::BTreeSet;
use std::sync::Arc;

use codec::imap::{astring, untagged, SequenceSet};

use super::args::{Cmd, A};
use super::view::{flag_list, View};
use super::{Next, Session, State};
use crate::mail::parse_imap_date;
use crate::store::Mailbox;

const SYSTEM_FLAGS: &str = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";

/// Whether `name` matches a LIST pattern (`*` anything, `%` anything but `/`).
fn matches(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|i| matches(rest, &name[i..])),
        Some((b'%', rest)) => (0..=name.len())
            .take_while(|&i| i == 0 || name[i - 1] != b'/')
            .any(|i| matches(rest, &name[i..])),
        Some((c, rest)) => name
            .split_first()
            .is_some_and(|(n, nrest)| n.eq_ignore_ascii_case(c) && matches(rest, nrest)),
    }
}

/// Parses a flag list or a single flag.
pub(crate) fn flags_of(arg: &A) -> Option<BTreeSet<String>> {
    let items: Vec<&A> = match arg {
        A::List(l) => l.iter().collect(),
        other => vec![other],
    };
    let mut out = BTreeSet::new();
    for item in items {
        let A::Atom(f) = item else { return None };
        let canonical = match f.to_ascii_lowercase().as_str() {
            "\\seen" => "\\Seen".to_string(),
            "\\answered" => "\\Answered".to_string(),
            "\\flagged" => "\\Flagged".to_string(),
            "\\deleted" => "\\Deleted".to_string(),
            "\\draft" => "\\Draft".to_string(),
            "\\recent" => continue,
            _ if f.starts_with('\\') => return None,
            _ => f.clone(),
        };
        out.insert(canonical);
    }
    Some(out)
}

impl Session {
    fn account(&self) -> Option<(Arc<crate::store::Account>, String)> {
        match &self.state {
            State::Authenticated { account, name } | State::Selected { account, name, .. } => {
                Some((account.clone(), name.clone()))
            }
            State::NotAuthenticated => None,
        }
    }

    pub(crate) fn select(&mut self, cmd: &Cmd) -> Next {
        let tag = cmd.tag.clone();
        let Some((account, name)) = self.account() else {
            return self.bad_command(Some(&tag), "Log in first");
        };
        let Some(folder_name) = cmd
            .args
            .first()
            .and_then(A::text)
            .map(|f| Mailbox::canonical(&f))
        else {
            return self.bad_command(Some(&tag), "SELECT needs a folder");
        };
        let read_only = cmd.name == "EXAMINE";
        // Selecting (even failing to) leaves the selected state.
        self.state = State::Authenticated {
            account: account.clone(),
            name: name.clone(),
        };
        let view = {
            let mailbox = account.lock();
            let Some(folder) = mailbox.folders.get(&folder_name) else {
                return self.no(&tag, Some("NONEXISTENT"), "No such folder");
            };
            let view = View::of(&folder_name, folder, read_only);
            untagged(&mut self.out, &format!("{} EXISTS", view.messages.len()));
            untagged(&mut self.out, "0 RECENT");
            if let Some(i) = view
                .messages
                .iter()
                .position(|(_, f)| !f.contains("\\Seen"))
            {
                untagged(
                    &mut self.out,
                    &format!("OK [UNSEEN {}] First unseen", i + 1),
                );
            }
            untagged(
                &mut self.out,
                &format!("OK [UIDVALIDITY {}] UIDs valid", folder.uid_validity),
            );
            untagged(
                &mut self.out,
                &format!("OK [UIDNEXT {}] Predicted next UID", folder.uid_next),
            );
            untagged(&mut self.out, &format!("FLAGS ({SYSTEM_FLAGS})"));
            if read_only {
                untagged(&mut self.out, "OK [PERMANENTFLAGS ()] Read-only");
            } else {
                untagged(
                    &mut self.out,
                    &format!("OK [PERMANENTFLAGS ({SYSTEM_FLAGS} \\*)] Flags allowed"),
                );
            }
            view
        };
        self.state = State::Selected {
            account,
            name,
            view,
        };
        let code = if read_only { "READ-ONLY" } else { "READ-WRITE" };
        self.ok(&tag, Some(code), &format!("{} completed", cmd.name))
    }

    pub(crate) fn folder_command(&mut self, cmd: &Cmd) -> Next {
        let tag = cmd.tag.clone();
        let Some((account, _)) = self.account() else {
            return self.bad_command(Some(&tag), "Log in first");
        };
        let arg = |i: usize| cmd.args.get(i).and_then(A::text);
        let next = match cmd.name.as_str() {
            "LIST" | "LSUB" => {
                let (Some(reference), Some(pattern)) = (arg(0), arg(1)) else {
                    return self.bad_command(Some(&tag), "LIST needs a reference and a pattern");
                };
                if pattern.is_empty() {
                    untagged(
                        &mut self.out,
                        &format!("{} (\\Noselect) \"/\" \"\"", cmd.name),
                    );
                    return self.ok(&tag, None, &format!("{} completed", cmd.name));
                }
                let full = format!("{reference}{pattern}");
                let mailbox = account.lock();
                let mut lines = Vec::new();
                for (name, folder) in &mailbox.folders {
                    if cmd.name == "LSUB" && !folder.subscribed {
                        continue;
                    }
                    let inbox_match = name == "INBOX" && matches(full.as_bytes(), b"inbox");
                    if inbox_match || matches(full.as_bytes(), name.as_bytes()) {
                        let children = mailbox
                            .folders
                            .keys()
                            .any(|k| k.starts_with(&format!("{name}/")));
                        let attr = if children {
                            "\\HasChildren"
                        } else {
                            "\\HasNoChildren"
                        };
                        let mut line = format!("{} ({attr}) \"/\" ", cmd.name).into_bytes();
                        astring(&mut line, name.as_bytes());
                        lines.push(line);
                    }
                }
                drop(mailbox);
                for line in lines {
                    self.out.extend_from_slice(b"* ");
                    self.out.extend_from_slice(&line);
                    self.out.extend_from_slice(b"\r\n");
                }
                self.ok(&tag, None, &format!("{} completed", cmd.name))
            }
            "STATUS" => {
                let (Some(name), Some(A::List(items))) = (arg(0), cmd.args.get(1)) else {
                    return self.bad_command(Some(&tag), "STATUS needs a folder and a list");
                };
                let name = Mailbox::canonical(&name);
                let mailbox = account.lock();
                let Some(folder) = mailbox.folders.get(&name) else {
                    drop(mailbox);
                    return self.no(&tag, Some("NONEXISTENT"), "No such folder");
                };
                let mut parts = Vec::new();
                for item in items {
                    let value = match item.upper().as_deref() {
                        Some("MESSAGES") => folder.messages.len() as u64,
                        Some("RECENT") => 0,
                        Some("UIDNEXT") => u64::from(folder.uid_next),
                        Some("UIDVALIDITY") => u64::from(folder.uid_validity),
                        Some("UNSEEN") => folder
                            .messages
                            .iter()
                            .filter(|m| !m.flags.contains("\\Seen"))
                            .count() as u64,
                        _ => {
                            drop(mailbox);
                            return self.bad_command(Some(&tag), "Unknown STATUS item");
                        }
                    };
                    parts.push(format!("{} {value}", item.upper().unwrap_or_default()));
                }
                drop(mailbox);
                let mut line = b"STATUS ".to_vec();
                astring(&mut line, name.as_bytes());
                line.extend_from_slice(format!(" ({})", parts.join(" ")).as_bytes());
                self.out.extend_from_slice(b"* ");
                self.out.extend_from_slice(&line);
                self.out.extend_from_slice(b"\r\n");
                self.ok(&tag, None, "STATUS completed")
            }
            "CREATE" => {
                let Some(name) = arg(0) else {
                    return self.bad_command(Some(&tag), "CREATE needs a folder");
                };
                let name = name.trim_end_matches('/').to_string();
                if name.is_empty()
                    || name.len() > 255
                    || name.chars().any(char::is_control)
                    || name.contains("//")
                {
                    return self.no(&tag, Some("CANNOT"), "Invalid folder name");
                }
                let created = {
                    let mut mailbox = account.lock();
                    // Superior names are created too (RFC 3501 6.3.3), so LIST with `%`
                    // can walk down to the new folder.
                    let mut parent = String::new();
                    for part in name.split('/').take(name.split('/').count() - 1) {
                        if !parent.is_empty() {
                            parent.push('/');
                        }
                        parent.push_str(part);
                        mailbox.create(&parent);
                    }
                    mailbox.create(&name)
                };
                if created {
                    account.notify();
                    self.ok(&tag, None, "CREATE completed")
                } else {
                    self.no(&tag, Some("ALREADYEXISTS"), "Folder already exists")
                }
            }
            "DELETE" => {
                let Some(name) = arg(0).map(|n| Mailbox::canonical(&n)) else {
                    return self.bad_command(Some(&tag), "DELETE needs a folder");
                };
                if name == "INBOX" {
                    return self.no(&tag, Some("CANNOT"), "INBOX cannot be deleted");
                }
                let removed = account.lock().folders.remove(&name).is_some();
                if removed {
                    account.notify();
                    self.ok(&tag, None, "DELETE completed")
                } else {
                    self.no(&tag, Some("NONEXISTENT"), "No such folder")
                }
            }
            "RENAME" => {
                let (Some(from), Some(to)) = (arg(0).map(|n| Mailbox::canonical(&n)), arg(1))
                else {
                    return self.bad_command(Some(&tag), "RENAME needs two folders");
                };
                let to = Mailbox::canonical(&to);
                let mut mailbox = account.lock();
                if from == "INBOX" || to == "INBOX" {
                    drop(mailbox);
                    return self.no(&tag, Some("CANNOT"), "INBOX cannot be renamed here");
                }
                if mailbox.folders.contains_key(&to) {
                    drop(mailbox);
                    return self.no(&tag, Some("ALREADYEXISTS"), "Target folder exists");
                }
                if !mailbox.folders.contains_key(&from) {
                    drop(mailbox);
                    return self.no(&tag, Some("NONEXISTENT"), "No such folder");
                }
                if to.starts_with(&format!("{from}/")) {
                    drop(mailbox);
                    return self.no(&tag, Some("CANNOT"), "Cannot move a folder into itself");
                }
                // Inferior names move with it (RFC 3501 6.3.5).
                let prefix = format!("{from}/");
                let moving: Vec<String> = mailbox
                    .folders
                    .keys()
                    .filter(|k| **k == from || k.starts_with(&prefix))
                    .cloned()
                    .collect();
                for old in moving {
                    let new = format!("{to}{}", &old[from.len()..]);
                    if let Some(folder) = mailbox.folders.remove(&old) {
                        mailbox.folders.insert(new, folder);
                    }
                }
                drop(mailbox);
                account.notify();
                self.ok(&tag, None, "RENAME completed")
            }
            "SUBSCRIBE" | "UNSUBSCRIBE" => {
                let Some(name) = arg(0).map(|n| Mailbox::canonical(&n)) else {
                    return self.bad_command(Some(&tag), "needs a folder");
                };
                let mut mailbox = account.lock();
                match mailbox.folders.get_mut(&name) {
                    Some(f) => {
                        f.subscribed = cmd.name == "SUBSCRIBE";
                        drop(mailbox);
                        self.ok(&tag, None, &format!("{} completed", cmd.name))
                    }
                    None => {
                        drop(mailbox);
                        self.no(&tag, Some("NONEXISTENT"), "No such folder")
                    }
                }
            }
            "APPEND" => self.append(cmd, account),
            _ => self.bad_command(Some(&tag), "Unknown command"),
        };
        if !matches!(cmd.name.as_str(), "LIST" | "LSUB" | "STATUS") {
            self.sync_before_tagged(true);
        }
        next
    }

    fn append(&mut self, cmd: &Cmd, account: Arc<crate::store::Account>) -> Next {
        let tag = cmd.tag.clone();
        let Some(name) = cmd
            .args
            .first()
            .and_then(A::text)
            .map(|n| Mailbox::canonical(&n))
        else {
            return self.bad_command(Some(&tag), "APPEND needs a folder");
        };
        let mut flags = BTreeSet::new();
        let mut date = None;
        let mut message = None;
        for arg in &cmd.args[1..] {
            match arg {
                A::List(_) if message.is_none() => match flags_of(arg) {
                    Some(f) => flags = f,
                    None => return self.bad_command(Some(&tag), "Invalid flags"),
                },
                A::Str(s)
                    if message.is_none()
                        && date.is_none()
                        && s.len() < 40
                        && parse_imap_date(&String::from_utf8_lossy(s)).is_some() =>
                {
                    date = parse_imap_date(&String::from_utf8_lossy(s));
                }
                A::Str(s) if message.is_none() => message = Some(s.clone()),
                _ => return self.bad_command(Some(&tag), "Invalid APPEND arguments"),
            }
        }
        let Some(message) = message else {
            return self.bad_command(Some(&tag), "APPEND needs a message literal");
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let mut mailbox = account.lock();
        let Some(folder) = mailbox.folders.get_mut(&name) else {
            drop(mailbox);
            return self.no(&tag, Some("TRYCREATE"), "No such folder");
        };
        let uid = folder.append(message.into(), flags, date.unwrap_or(now));
        let validity = folder.uid_validity;
        drop(mailbox);
        account.notify();
        self.ok(
            &tag,
            Some(&format!("APPENDUID {validity} {uid}")),
            "APPEND completed",
        )
    }

    pub(crate) fn close(&mut self, cmd: &Cmd) -> Next {
        let State::Selected {
            account,
            name,
            view,
        } = &self.state
        else {
            return self.bad_command(Some(&cmd.tag), "No folder selected");
        };
        let (account, name) = (account.clone(), name.clone());
        if cmd.name == "CLOSE" && !view.read_only {
            // CLOSE expunges silently.
            let folder_name = view.folder.clone();
            let mut mailbox = account.lock();
            if let Some(folder) = mailbox.folders.get_mut(&folder_name) {
                folder.messages.retain(|m| !m.flags.contains("\\Deleted"));
            }
            drop(mailbox);
            account.notify();
        }
        self.state = State::Authenticated { account, name };
        self.ok(&cmd.tag, None, &format!("{} completed", cmd.name))
    }

    pub(crate) fn expunge(&mut self, tag: &[u8], uids: Option<SequenceSet>) -> Next {
        let State::Selected { account, view, .. } = &self.state else {
            return self.bad_command(Some(tag), "No folder selected");
        };
        if view.read_only {
            return self.no(tag, Some("READ-ONLY"), "Folder is read-only");
        }
        let account = account.clone();
        let folder_name = view.folder.clone();
        {
            let mut mailbox = account.lock();
            if let Some(folder) = mailbox.folders.get_mut(&folder_name) {
                let max = folder.messages.last().map_or(0, |m| m.uid);
                folder.messages.retain(|m| {
                    !(m.flags.contains("\\Deleted")
                        && uids.as_ref().is_none_or(|s| s.contains(m.uid, max)))
                });
            }
        }
        account.notify();
        self.sync(true);
        self.ok(tag, None, "EXPUNGE completed")
    }
}

/// The flags of a message as FETCH shows them.
pub(crate) fn fetch_flags(flags: &BTreeSet<String>) -> String {
    flag_list(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_patterns() {
        assert!(matches(b"*", b"INBOX"));
        assert!(matches(b"*", b"a/b"));
        assert!(matches(b"%", b"Sent"));
        assert!(!matches(b"%", b"a/b"));
        assert!(matches(b"a/%", b"a/b"));
        assert!(matches(b"In*", b"INBOX"));
        assert!(!matches(b"Sent", b"Trash"));
    }
}
