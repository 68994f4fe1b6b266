//! The relayed sessions of this process: listed on the admin listener (`GET /sessions`),
//! ended on demand (`POST /sessions/kick`, as Dovecot's `doveadm kick`) and when their
//! account changes (it moved to another mailbox server, was locked, closed or deleted:
//! route-lookup's account events). Zimbra's mailbox server ends an account's sessions
//! itself on a move; a proxy in front of servers that do not must.
//!
//! An ended IMAP session gets `* BYE` before both connections close (a kick during a
//! transfer may cut the response it interrupts); the client reconnects and is routed
//! afresh.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::oneshot;

use crate::relay::Meter;

/// Why a session is ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Its account moved, was locked, closed or deleted.
    AccountChanged,
    /// An administrator asked.
    Kicked,
}

/// What is known of a session when it starts relaying.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The account (the canonical name route-lookup answered).
    pub user: String,
    /// The client's address (after PROXY protocol).
    pub client: SocketAddr,
    /// Which listener (imap, imaps, pop3, pop3s).
    pub listener: &'static str,
    /// The mailbox server.
    pub backend: SocketAddr,
    /// The client side's TLS cipher suite (IANA name), or `None` for plaintext.
    pub tls: Option<&'static str>,
}

#[derive(Debug)]
struct Entry {
    info: SessionInfo,
    started: SystemTime,
    meter: Arc<Meter>,
    end: oneshot::Sender<End>,
}

/// Which sessions to end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// Every session of this account.
    User(String),
    /// Every session relayed to this mailbox server (an IP, or IP:port).
    Backend(String),
    /// One session, by the id `GET /sessions` shows.
    Id(u64),
}

/// The registry.
#[derive(Debug, Default)]
pub struct Sessions {
    by_account: Mutex<HashMap<String, HashMap<u64, Entry>>>,
    next: AtomicU64,
    /// Sessions ended because their account changed.
    pub ended: AtomicU64,
    /// Sessions ended by an administrator.
    pub kicked: AtomicU64,
}

/// A session's place in the registry; dropping it removes the session.
#[derive(Debug)]
pub struct Registered {
    sessions: Arc<Sessions>,
    account: String,
    id: u64,
    /// Resolves when the session must end, saying why.
    pub end: oneshot::Receiver<End>,
    /// Its byte counts, updated by the relay.
    pub meter: Arc<Meter>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut map = self.sessions.map();
        if let Some(ids) = map.get_mut(&self.account) {
            ids.remove(&self.id);
            if ids.is_empty() {
                map.remove(&self.account);
            }
        }
    }
}

type Map = HashMap<String, HashMap<u64, Entry>>;

impl Sessions {
    fn map(&self) -> std::sync::MutexGuard<'_, Map> {
        self.by_account
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a session.
    pub fn register(self: &Arc<Self>, info: SessionInfo) -> Registered {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = oneshot::channel();
        let account = info.user.to_lowercase();
        let meter = Arc::new(Meter::default());
        self.map().entry(account.clone()).or_default().insert(
            id,
            Entry {
                info,
                started: SystemTime::now(),
                meter: meter.clone(),
                end: tx,
            },
        );
        Registered {
            sessions: self.clone(),
            account,
            id,
            end: rx,
            meter,
        }
    }

    /// Ends every session of `account` (its account changed); returns how many.
    pub fn end_account(&self, account: &str) -> usize {
        let ids = self
            .map()
            .remove(&account.to_lowercase())
            .unwrap_or_default();
        let n = ids.len();
        for (_, e) in ids {
            let _ = e.end.send(End::AccountChanged);
        }
        self.ended.fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    /// Ends the sessions `filter` names; returns how many.
    pub fn kick(&self, filter: &Filter) -> usize {
        let mut map = self.map();
        let mut ended = Vec::new();
        for ids in map.values_mut() {
            let chosen: Vec<u64> = ids
                .iter()
                .filter(|(id, e)| match filter {
                    Filter::User(u) => e.info.user.eq_ignore_ascii_case(u),
                    Filter::Backend(b) => {
                        e.info.backend.to_string() == *b || e.info.backend.ip().to_string() == *b
                    }
                    Filter::Id(want) => *id == want,
                })
                .map(|(id, _)| *id)
                .collect();
            for id in chosen {
                if let Some(e) = ids.remove(&id) {
                    ended.push(e);
                }
            }
        }
        map.retain(|_, ids| !ids.is_empty());
        drop(map);
        let n = ended.len();
        for e in ended {
            let _ = e.end.send(End::Kicked);
        }
        self.kicked.fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    /// Accounts with sessions now.
    pub fn accounts(&self) -> usize {
        self.map().len()
    }

    /// The sessions as JSON objects, one per line (`worker` names this process among a
    /// proxy's workers).
    pub fn json_lines(&self, worker: usize) -> String {
        let map = self.map();
        let mut out = String::new();
        for (id, e) in map.values().flat_map(|ids| ids.iter()) {
            let started = e
                .started
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let _ = writeln!(
                out,
                "{{\"id\":{id},\"worker\":{worker},\"user\":{},\"client\":\"{}\",\"listener\":\"{}\",\"backend\":\"{}\",\"tls\":{},\"tls_cipher\":{},\"started\":{started},\"bytes_up\":{},\"bytes_down\":{}}}",
                json_string(&e.info.user),
                e.info.client,
                e.info.listener,
                e.info.backend,
                e.info.tls.is_some(),
                e.info.tls.map_or_else(|| "null".to_string(), json_string),
                e.meter.up.load(Ordering::Relaxed),
                e.meter.down.load(Ordering::Relaxed),
            );
        }
        out
    }
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(user: &str, backend: &str) -> SessionInfo {
        SessionInfo {
            user: user.into(),
            client: "192.0.2.9:5000".parse().unwrap(),
            listener: "imaps",
            backend: backend.parse().unwrap(),
            tls: Some("TLS_AES_128_GCM_SHA256"),
        }
    }

    #[tokio::test]
    async fn ending_an_account_ends_its_sessions_only() {
        let s = Arc::new(Sessions::default());
        let mut a1 = s.register(info("Ann@example.com", "10.0.0.1:7143"));
        let mut a2 = s.register(info("ann@example.com", "10.0.0.1:7143"));
        let mut b = s.register(info("bob@example.com", "10.0.0.2:7143"));
        assert_eq!(s.accounts(), 2);
        assert_eq!(s.end_account("ANN@example.com"), 2);
        assert_eq!((&mut a1.end).await, Ok(End::AccountChanged));
        assert_eq!((&mut a2.end).await, Ok(End::AccountChanged));
        assert!(b.end.try_recv().is_err(), "bob's session goes on");
        drop((a1, a2));
        assert_eq!(s.accounts(), 1);
        drop(b);
        assert_eq!(s.accounts(), 0, "a session that ends leaves the registry");
        assert_eq!(s.end_account("bob@example.com"), 0);
        assert_eq!(s.ended.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn kicks_by_user_backend_or_id() {
        let s = Arc::new(Sessions::default());
        let mut ann = s.register(info("ann@example.com", "10.0.0.1:7143"));
        let mut bob = s.register(info("bob@example.com", "10.0.0.1:7993"));
        let mut carl = s.register(info("carl@example.com", "10.0.0.2:7143"));
        assert_eq!(s.kick(&Filter::User("ANN@example.com".into())), 1);
        assert_eq!((&mut ann.end).await, Ok(End::Kicked));
        assert_eq!(
            s.kick(&Filter::Backend("10.0.0.1".into())),
            1,
            "by IP, any port"
        );
        assert_eq!((&mut bob.end).await, Ok(End::Kicked));
        assert_eq!(s.kick(&Filter::Backend("10.0.0.2:7993".into())), 0);
        assert_eq!(s.kick(&Filter::Id(carl.id)), 1);
        assert_eq!((&mut carl.end).await, Ok(End::Kicked));
        assert_eq!(s.kicked.load(Ordering::Relaxed), 3);
        assert_eq!(s.accounts(), 0);
    }

    #[test]
    fn listed_as_json_lines_with_live_byte_counts() {
        let s = Arc::new(Sessions::default());
        let r = s.register(info("o\"hara\\@example.com", "10.0.0.1:7143"));
        r.meter.up.store(12, Ordering::Relaxed);
        r.meter.down.store(3400, Ordering::Relaxed);
        let line = s.json_lines(2);
        assert!(
            line.starts_with(&format!("{{\"id\":{},\"worker\":2,\"user\":\"o\\\"hara\\\\@example.com\",\"client\":\"192.0.2.9:5000\",\"listener\":\"imaps\",\"backend\":\"10.0.0.1:7143\",\"tls\":true,\"tls_cipher\":\"TLS_AES_128_GCM_SHA256\",\"started\":", r.id)),
            "{line}"
        );
        assert!(
            line.ends_with(",\"bytes_up\":12,\"bytes_down\":3400}\n"),
            "{line}"
        );
    }
}
