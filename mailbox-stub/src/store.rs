//! In-memory mail: per account a set of folders of messages with UIDs and flags, created
//! on first login with the generated INBOX, shared by all of the account's sessions.
//! Every change bumps the account's version, which IDLE and the next command of every
//! other session watch to report EXISTS / EXPUNGE / FETCH FLAGS.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::mail;

/// One message.
#[derive(Debug, Clone)]
pub struct Message {
    /// Its UID, unique and ascending within the folder.
    pub uid: u32,
    /// System and keyword flags (`\Seen`, `\Deleted`, …).
    pub flags: BTreeSet<String>,
    /// INTERNALDATE, Unix seconds.
    pub internal_date: i64,
    /// The RFC 5322 bytes (CRLF line ends).
    pub data: Arc<[u8]>,
}

/// One folder.
#[derive(Debug, Clone)]
pub struct Folder {
    /// UIDVALIDITY.
    pub uid_validity: u32,
    /// UIDNEXT.
    pub uid_next: u32,
    /// Messages in UID order.
    pub messages: Vec<Message>,
    /// Whether LSUB lists it.
    pub subscribed: bool,
}

impl Folder {
    fn new(uid_validity: u32) -> Self {
        Self {
            uid_validity,
            uid_next: 1,
            messages: Vec::new(),
            subscribed: true,
        }
    }

    /// Appends a message; returns its UID.
    pub fn append(&mut self, data: Arc<[u8]>, flags: BTreeSet<String>, internal_date: i64) -> u32 {
        let uid = self.uid_next;
        self.uid_next += 1;
        self.messages.push(Message {
            uid,
            flags,
            internal_date,
            data,
        });
        uid
    }
}

/// An account's folders.
#[derive(Debug, Clone, Default)]
pub struct Mailbox {
    /// Folder name → folder. `INBOX` is always spelled so.
    pub folders: BTreeMap<String, Folder>,
    next_validity: u32,
}

impl Mailbox {
    /// The canonical name of a folder: `INBOX` in any case is `INBOX`.
    pub fn canonical(name: &str) -> String {
        if name.eq_ignore_ascii_case("INBOX") {
            "INBOX".to_string()
        } else {
            name.to_string()
        }
    }

    /// Creates an empty folder; false if it exists.
    pub fn create(&mut self, name: &str) -> bool {
        let name = Self::canonical(name);
        if self.folders.contains_key(&name) {
            return false;
        }
        self.next_validity += 1;
        self.folders.insert(name, Folder::new(self.next_validity));
        true
    }
}

/// One account's mailbox with its change signal.
#[derive(Debug)]
pub struct Account {
    mailbox: Mutex<Mailbox>,
    changed: watch::Sender<u64>,
}

impl Account {
    /// Locks the mailbox for reading or changing.
    pub fn lock(&self) -> MutexGuard<'_, Mailbox> {
        self.mailbox
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Tells every session of the account that something changed.
    pub fn notify(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    /// A receiver that wakes on changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// All accounts of this server.
#[derive(Debug)]
pub struct Store {
    hostname: String,
    messages: usize,
    accounts: Mutex<HashMap<String, Arc<Account>>>,
}

impl Store {
    /// A store whose new accounts get `messages` generated messages naming `hostname`.
    pub fn new(hostname: &str, messages: usize) -> Self {
        Self {
            hostname: hostname.to_string(),
            messages,
            accounts: Mutex::new(HashMap::new()),
        }
    }

    /// The account's mailbox, created (INBOX with the generated mail, Sent, Trash) on
    /// first use.
    pub fn open(&self, account: &str) -> Arc<Account> {
        let mut accounts = self
            .accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        accounts
            .entry(account.to_string())
            .or_insert_with(|| {
                let mut mailbox = Mailbox::default();
                for name in ["INBOX", "Sent", "Trash"] {
                    mailbox.create(name);
                }
                let inbox = mailbox.folders.get_mut("INBOX").expect("just created");
                for n in 1..=self.messages {
                    let (data, date) = mail::generated(account, &self.hostname, n);
                    inbox.append(data.into(), BTreeSet::new(), date);
                }
                Arc::new(Account {
                    mailbox: Mutex::new(mailbox),
                    changed: watch::channel(0).0,
                })
            })
            .clone()
    }
}
