//! `--max-sessions-per-user N`: relayed sessions per account and client address, counted
//! across all of one proxy's workers, as Dovecot's `mail_max_userip_connections` counts
//! them. A login over the cap is refused before the mailbox server is asked.
//!
//! Worker 0 keeps the one [`Table`]. With more workers it listens on a Unix socket in a
//! private (0700) directory whose path the others get in [`SOCKET_ENV`]; each worker keeps
//! one connection to it and asks before every backend login. What a worker holds is
//! given back when its connection closes, so a worker that dies frees its users' places.
//!
//! The wire format is one line per message: `A <ip> <hex user>` (answered `Y` or `N`) and
//! `R <ip> <hex user>` (no answer). If worker 0 cannot be asked the login goes ahead: the
//! cap is a courtesy to the mailbox servers, not a security boundary, and a proxy whose
//! worker 0 is gone is shutting down anyway.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

/// The environment variable that gives a worker worker 0's socket.
pub const SOCKET_ENV: &str = "PROXY_SESSIONS_SOCKET";

/// Longest line on the socket: an IP, a 256-byte name in hex, and the rest.
const MAX_LINE: u64 = 1024;

/// How long a worker waits for worker 0's answer before letting the login through.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// Whose sessions are counted together: the account (lowercase) and the client address.
type Key = (String, IpAddr);

/// The counts, in worker 0.
#[derive(Debug, Default)]
pub struct Table {
    counts: Mutex<HashMap<Key, u32>>,
}

impl Table {
    /// Takes a place for `key` if fewer than `max` are taken.
    fn take(&self, key: &Key, max: u32) -> bool {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(key.clone()).or_insert(0);
        if *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    /// Gives `n` places of `key` back.
    fn give_back(&self, key: &Key, n: u32) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = counts.get_mut(key) {
            *c = c.saturating_sub(n);
            if *c == 0 {
                counts.remove(key);
            }
        }
    }

    /// Places taken, over all keys (for /metrics and tests).
    pub fn taken(&self) -> u64 {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.values().map(|&n| u64::from(n)).sum()
    }
}

/// Where the counts are.
#[derive(Debug)]
enum Counter {
    /// No cap.
    Off,
    /// In this process (worker 0).
    Local(Arc<Table>),
    /// In worker 0, asked through the socket.
    Remote(mpsc::UnboundedSender<Request>),
}

/// What a worker's connection task is asked to send.
#[derive(Debug)]
enum Request {
    Take(Key, oneshot::Sender<bool>),
    GiveBack(Key),
}

/// The cap, as one worker applies it.
#[derive(Debug)]
pub struct SessionLimit {
    max: u32,
    counter: Counter,
    /// Worker 0's socket directory, removed when the limit is dropped.
    dir: Option<PathBuf>,
}

/// A session's place under the cap, given back when dropped.
#[derive(Debug)]
pub struct Permit {
    key: Key,
    back: Back,
}

#[derive(Debug)]
enum Back {
    Local(Arc<Table>),
    Remote(mpsc::UnboundedSender<Request>),
}

impl Drop for Permit {
    fn drop(&mut self) {
        match &self.back {
            Back::Local(table) => table.give_back(&self.key, 1),
            Back::Remote(tx) => {
                let key = (std::mem::take(&mut self.key.0), self.key.1);
                let _ = tx.send(Request::GiveBack(key));
            }
        }
    }
}

impl SessionLimit {
    /// No cap.
    pub fn off() -> Self {
        Self {
            max: 0,
            counter: Counter::Off,
            dir: None,
        }
    }

    /// At most `max` sessions per account and address in this process alone (one worker).
    pub fn local(max: u32) -> Self {
        if max == 0 {
            return Self::off();
        }
        Self {
            max,
            counter: Counter::Local(Arc::default()),
            dir: None,
        }
    }

    /// Worker 0 of several: the counts, served to the others on a socket in a new private
    /// directory (see [`SessionLimit::socket`]).
    pub fn serve(max: u32) -> std::io::Result<Self> {
        if max == 0 {
            return Ok(Self::off());
        }
        let dir = private_dir()?;
        let path = dir.join("sessions.sock");
        let listener = UnixListener::bind(&path)?;
        let table = Arc::<Table>::default();
        tokio::spawn(accept(listener, table.clone(), max));
        Ok(Self {
            max,
            counter: Counter::Local(table),
            dir: Some(dir),
        })
    }

    /// Another worker: asks worker 0 on `path`.
    pub async fn connect(max: u32, path: &Path) -> std::io::Result<Self> {
        if max == 0 {
            return Ok(Self::off());
        }
        let stream = UnixStream::connect(path).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(ask(stream, rx));
        Ok(Self {
            max,
            counter: Counter::Remote(tx),
            dir: None,
        })
    }

    /// The socket the other workers ask, when this process serves one.
    pub fn socket(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join("sessions.sock"))
    }

    /// Whether there is a cap.
    pub fn enabled(&self) -> bool {
        self.max > 0
    }

    /// A place for a session of `user` from `client`; `None` when the cap is reached.
    /// With no cap, a permit that holds nothing.
    pub async fn acquire(&self, user: &str, client: IpAddr) -> Option<Option<Permit>> {
        let key = (user.to_lowercase(), client);
        match &self.counter {
            Counter::Off => Some(None),
            Counter::Local(table) => table.take(&key, self.max).then(|| {
                Some(Permit {
                    key,
                    back: Back::Local(table.clone()),
                })
            }),
            Counter::Remote(tx) => {
                let (answer, rx) = oneshot::channel();
                if tx.send(Request::Take(key.clone(), answer)).is_err() {
                    return Some(None);
                }
                match tokio::time::timeout(ANSWER_TIMEOUT, rx).await {
                    Ok(Ok(true)) => Some(Some(Permit {
                        key,
                        back: Back::Remote(tx.clone()),
                    })),
                    Ok(Ok(false)) => None,
                    // Worker 0 did not answer: let the login through, holding nothing.
                    _ => Some(None),
                }
            }
        }
    }
}

impl Drop for SessionLimit {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A new directory only we can enter, for the socket.
fn private_dir() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::temp_dir();
    for n in 0..100u32 {
        let dir = base.join(format!("zproxy-{}-{n}", std::process::id()));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other(
        "no free directory name for the sessions socket",
    ))
}

fn encode(out: &mut Vec<u8>, verb: u8, key: &Key) {
    use std::fmt::Write as _;
    let mut line = String::with_capacity(key.0.len() * 2 + 48);
    let _ = write!(line, "{} {} ", verb as char, key.1);
    for b in key.0.bytes() {
        let _ = write!(line, "{b:02x}");
    }
    line.push('\n');
    out.extend_from_slice(line.as_bytes());
}

fn decode(line: &str) -> Option<(u8, Key)> {
    let mut words = line.split(' ');
    let verb = match words.next()? {
        "A" => b'A',
        "R" => b'R',
        _ => return None,
    };
    let ip: IpAddr = words.next()?.parse().ok()?;
    let hex = words.next()?;
    if words.next().is_some() || hex.len() % 2 != 0 {
        return None;
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some((verb, (String::from_utf8(bytes).ok()?, ip)))
}

/// Worker 0: serves each worker's connection.
async fn accept(listener: UnixListener, table: Arc<Table>, max: u32) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve_worker(stream, table.clone(), max));
            }
            Err(e) => {
                tracing::warn!(error = %e, "sessions socket: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One worker's questions; what it holds is given back when it goes.
async fn serve_worker(stream: UnixStream, table: Arc<Table>, max: u32) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mut held: HashMap<Key, u32> = HashMap::new();
    let mut line = String::new();
    loop {
        line.clear();
        match (&mut lines).take(MAX_LINE).read_line(&mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) if !line.ends_with('\n') => break,
            Ok(_) => {}
        }
        let Some((verb, key)) = decode(line.trim_end()) else {
            tracing::warn!("sessions socket: malformed line from a worker; closing it");
            break;
        };
        if verb == b'A' {
            let granted = table.take(&key, max);
            if granted {
                *held.entry(key).or_insert(0) += 1;
            }
            if write
                .write_all(if granted { b"Y\n" } else { b"N\n" })
                .await
                .is_err()
            {
                break;
            }
        } else if let Some(n) = held.get_mut(&key) {
            *n -= 1;
            table.give_back(&key, 1);
            if *n == 0 {
                held.remove(&key);
            }
        }
    }
    for (key, n) in held {
        table.give_back(&key, n);
    }
}

/// A worker: sends the requests in order and matches each `A` with its answer.
async fn ask(stream: UnixStream, mut rx: mpsc::UnboundedReceiver<Request>) {
    let (read, mut write) = stream.into_split();
    let mut answers = BufReader::new(read);
    let mut out = Vec::new();
    let mut answer = String::new();
    let mut broken = false;
    while let Some(request) = rx.recv().await {
        out.clear();
        match request {
            Request::GiveBack(key) => {
                encode(&mut out, b'R', &key);
                if !broken && write.write_all(&out).await.is_err() {
                    broken = true;
                }
            }
            Request::Take(key, reply) => {
                if broken {
                    let _ = reply.send(true);
                    continue;
                }
                encode(&mut out, b'A', &key);
                answer.clear();
                let asked = async {
                    write.write_all(&out).await?;
                    (&mut answers).take(16).read_line(&mut answer).await
                };
                match tokio::time::timeout(ANSWER_TIMEOUT, asked).await {
                    Ok(Ok(n)) if n > 0 => {
                        let _ = reply.send(answer.trim_end() == "Y");
                    }
                    _ => {
                        tracing::warn!("worker 0 no longer answers on the sessions socket: --max-sessions-per-user is not applied by this worker");
                        broken = true;
                        let _ = reply.send(true);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    /// Waits (a bounded while) for the places taken to come to `n`, then checks.
    async fn settle(table: &Table, n: u64) {
        for _ in 0..200 {
            if table.taken() == n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(table.taken(), n);
    }

    #[test]
    fn lines_round_trip_and_odd_ones_are_refused() {
        let key = ("ann b@example.com".to_string(), A);
        let mut out = Vec::new();
        encode(&mut out, b'A', &key);
        let line = String::from_utf8(out).unwrap();
        assert_eq!(decode(line.trim_end()), Some((b'A', key)));
        for bad in [
            "",
            "A",
            "A 192.0.2.1",
            "X 192.0.2.1 61",
            "A nope 61",
            "A 192.0.2.1 6",
            "A 192.0.2.1 zz",
            "A 192.0.2.1 61 62",
        ] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn local_cap_per_user_and_address() {
        let limit = SessionLimit::local(2);
        let one = limit.acquire("Ann@example.com", A).await.unwrap();
        let two = limit.acquire("ann@example.com", A).await.unwrap();
        assert!(one.is_some() && two.is_some());
        assert!(
            limit.acquire("ANN@example.com", A).await.is_none(),
            "the third from one address"
        );
        assert!(
            limit.acquire("ann@example.com", B).await.is_some(),
            "another address"
        );
        assert!(
            limit.acquire("bob@example.com", A).await.is_some(),
            "another user"
        );
        drop(one);
        assert!(
            limit.acquire("ann@example.com", A).await.is_some(),
            "a place freed"
        );
        assert!(SessionLimit::local(0)
            .acquire("x", A)
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn workers_share_worker_0s_counts_and_a_gone_worker_frees_its_places() {
        let zero = SessionLimit::serve(2).unwrap();
        let path = zero.socket().unwrap();
        let mode = std::fs::metadata(path.parent().unwrap()).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o700
        );
        let one = SessionLimit::connect(2, &path).await.unwrap();
        let two = SessionLimit::connect(2, &path).await.unwrap();
        let p0 = zero.acquire("ann", A).await.unwrap();
        let p1 = one.acquire("ann", A).await.unwrap();
        assert!(p0.is_some() && p1.is_some());
        assert!(
            two.acquire("ann", A).await.is_none(),
            "two taken in two workers"
        );
        assert!(two.acquire("ann", B).await.unwrap().is_some());
        let table = match &zero.counter {
            Counter::Local(t) => t.clone(),
            _ => unreachable!(),
        };
        drop(p1);
        // Worker 1's give-back travels on its own socket: wait for it.
        settle(&table, 1).await;
        let p2 = two.acquire("ann", A).await;
        assert!(
            p2.as_ref().is_some_and(Option::is_some),
            "worker 1's place came back"
        );
        drop(p2);
        settle(&table, 1).await;
        // A worker that dies holding a place (here: a raw connection speaking the
        // protocol) frees it.
        let mut raw = UnixStream::connect(&path).await.unwrap();
        let mut line = Vec::new();
        encode(&mut line, b'A', &("carol".to_string(), A));
        raw.write_all(&line).await.unwrap();
        let mut answer = [0u8; 2];
        raw.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"Y\n");
        assert_eq!(table.taken(), 2, "ann's in worker 0 and carol's");
        drop(raw);
        settle(&table, 1).await;
        drop(p0);
        assert_eq!(table.taken(), 0);
        drop(zero);
        assert!(!path.exists(), "the socket's directory is removed");
    }
}
