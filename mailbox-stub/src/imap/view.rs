//! A selected folder as one session sees it: the UIDs in sequence-number order and the
//! flags last reported. [`Session::sync`] compares it with the shared folder and reports
//! what other sessions changed (EXPUNGE, EXISTS, FETCH FLAGS).

use std::collections::BTreeSet;

use codec::imap::untagged;

use super::{Session, State};
use crate::store::Folder;

/// The session's picture of the selected folder.
#[derive(Debug, Clone, Default)]
pub(crate) struct View {
    /// Folder name.
    pub(crate) folder: String,
    /// EXAMINE (or SELECT of a folder that cannot be written).
    pub(crate) read_only: bool,
    /// (UID, flags) in sequence order; sequence number = index + 1.
    pub(crate) messages: Vec<(u32, BTreeSet<String>)>,
}

impl View {
    pub(crate) fn of(folder_name: &str, folder: &Folder, read_only: bool) -> Self {
        Self {
            folder: folder_name.to_string(),
            read_only,
            messages: folder
                .messages
                .iter()
                .map(|m| (m.uid, m.flags.clone()))
                .collect(),
        }
    }
}

/// `(\Seen \Deleted)`.
pub(crate) fn flag_list(flags: &BTreeSet<String>) -> String {
    let joined: Vec<&str> = flags.iter().map(String::as_str).collect();
    format!("({})", joined.join(" "))
}

impl Session {
    /// [`Session::sync`], with the updates placed before the tagged response the command
    /// just wrote (the last line of the pending output), where clients expect them.
    pub(crate) fn sync_before_tagged(&mut self, expunges: bool) {
        let end = self.out.len();
        let tagged_start = if end >= 2 {
            self.out[..end - 2]
                .windows(2)
                .rposition(|w| w == b"\r\n")
                .map_or(0, |i| i + 2)
        } else {
            0
        };
        let tagged = self.out.split_off(tagged_start);
        self.sync(expunges);
        self.out.extend_from_slice(&tagged);
    }

    /// Reports changes made by other sessions to the selected folder. EXPUNGE may only
    /// be sent when `expunges` (never during FETCH, STORE or SEARCH by sequence number,
    /// whose numbers the client is relying on).
    pub(crate) fn sync(&mut self, expunges: bool) {
        let State::Selected { account, view, .. } = &mut self.state else {
            return;
        };
        let mailbox = account.lock();
        let Some(folder) = mailbox.folders.get(&view.folder) else {
            // Deleted under us.
            untagged(&mut self.out, "BYE The selected folder was deleted");
            return;
        };
        if expunges {
            let mut seq = view.messages.len();
            while seq > 0 {
                let uid = view.messages[seq - 1].0;
                if !folder.messages.iter().any(|m| m.uid == uid) {
                    view.messages.remove(seq - 1);
                    untagged(&mut self.out, &format!("{seq} EXPUNGE"));
                }
                seq -= 1;
            }
        }
        let known_max = view.messages.iter().map(|(u, _)| *u).max().unwrap_or(0);
        let mut grew = false;
        for m in &folder.messages {
            if m.uid > known_max {
                view.messages.push((m.uid, m.flags.clone()));
                grew = true;
            }
        }
        if grew {
            untagged(&mut self.out, &format!("{} EXISTS", view.messages.len()));
        }
        for (i, (uid, flags)) in view.messages.iter_mut().enumerate() {
            if let Some(m) = folder.messages.iter().find(|m| m.uid == *uid) {
                if &m.flags != flags {
                    *flags = m.flags.clone();
                    untagged(
                        &mut self.out,
                        &format!("{} FETCH (UID {uid} FLAGS {})", i + 1, flag_list(flags)),
                    );
                }
            }
        }
    }
}
