//! One cache node: a few persistent connections (authenticated first when credentials are
//! set), requests bounded by the fetch timeout, ejection after a failure.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use codec::memcache::{parse_response, Credentials, Request, Response, StoreCommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::CacheConfig;
use crate::ejection::Ejection;
use common::memcached_auth::{self, AuthError};

/// Why a fresh connection to a node could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No TCP connection.
    #[error("cannot connect")]
    Connect(#[source] std::io::Error),
    /// Connected, but the node did not accept the credentials.
    #[error(transparent)]
    Auth(#[from] AuthError),
}

/// Counters of one node, for metrics and tests.
#[derive(Debug, Default)]
pub struct NodeStats {
    /// Gets that found a value.
    pub hits: AtomicU64,
    /// Gets that did not (ejected nodes and errors included).
    pub misses: AtomicU64,
    /// Requests that failed or timed out (each ejects the node).
    pub errors: AtomicU64,
    /// Fresh connections whose credentials the node refused (among the errors).
    pub auth_failures: AtomicU64,
}

/// One node.
#[derive(Debug)]
pub struct Node {
    addr: String,
    config: CacheConfig,
    conns: Vec<tokio::sync::Mutex<Option<TcpStream>>>,
    next: AtomicUsize,
    ejection: Ejection,
    credentials: Option<Arc<Credentials>>,
    /// Counters.
    pub stats: NodeStats,
}

/// What a request produced, owned.
enum Reply {
    /// The `VALUE` blocks of a get, as (key, data), in the order they came.
    Values(Vec<(Vec<u8>, Vec<u8>)>),
    Stored,
    NotStored,
    Deleted,
    NotFound,
    Number(u64),
}

impl Node {
    pub(super) fn new(
        addr: &str,
        config: CacheConfig,
        credentials: Option<Arc<Credentials>>,
    ) -> Self {
        Self {
            addr: addr.to_string(),
            config,
            conns: (0..config.connections_per_node.max(1))
                .map(|_| tokio::sync::Mutex::new(None))
                .collect(),
            next: AtomicUsize::new(0),
            ejection: Ejection::new(config.probe_interval, config.retry_interval),
            credentials,
            stats: NodeStats::default(),
        }
    }

    /// `host:port`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether the node is being skipped after a failure.
    pub fn is_ejected(&self) -> bool {
        self.ejection.is_out()
    }

    fn eject(&self, why: &str) {
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        let (retry_in, newly) = self.ejection.fail();
        if newly {
            tracing::warn!(node = %self.addr, why, ?retry_in, "cache node ejected");
        }
    }

    /// A new connection, authenticated when the node needs credentials.
    async fn connect(&self) -> Result<TcpStream, ConnectError> {
        let mut s = TcpStream::connect(&self.addr)
            .await
            .map_err(ConnectError::Connect)?;
        s.set_nodelay(true).map_err(ConnectError::Connect)?;
        if let Some(credentials) = &self.credentials {
            if let Err(e) = memcached_auth::authenticate(&mut s, credentials).await {
                if matches!(e, AuthError::WrongCredentials) {
                    self.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
                }
                return Err(e.into());
            }
        }
        Ok(s)
    }

    /// Sends one request and reads its reply on one of the node's connections, all within
    /// the fetch timeout (connecting and authenticating included).
    async fn call(&self, request: Request<'_>) -> Option<Reply> {
        if self.is_ejected() {
            return None;
        }
        let mut wire = Vec::with_capacity(128);
        request.encode(&mut wire);
        let slot = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        let mut conn = self.conns[slot].lock().await;
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.config.fetch_timeout;
        // A kept-open connection may have died with a node restart: one more try on a
        // fresh connection before the node counts as failed.
        for attempt in 0..2 {
            let reused = conn.is_some();
            if !reused {
                match tokio::time::timeout_at(deadline, self.connect()).await {
                    Ok(Ok(s)) => *conn = Some(s),
                    Ok(Err(e)) => {
                        self.eject(&common::exit::chain(&e));
                        return None;
                    }
                    Err(_) => {
                        let why = if self.credentials.is_some() {
                            "no answer to connecting and authenticating within the fetch timeout"
                        } else {
                            "no answer to connecting within the fetch timeout"
                        };
                        self.eject(why);
                        return None;
                    }
                }
            }
            let stream = conn.as_mut().expect("connected above");
            let result = tokio::time::timeout_at(deadline, async {
                stream.write_all(&wire).await?;
                read_reply(stream).await
            })
            .await;
            match result {
                Ok(Ok(reply)) => {
                    self.ejection.succeed(started);
                    return Some(reply);
                }
                Ok(Err(e)) => {
                    *conn = None;
                    if reused && attempt == 0 {
                        continue;
                    }
                    self.eject(&e.to_string());
                    return None;
                }
                Err(_) => {
                    // A late reply would be read as the answer to the next request: drop
                    // the connection.
                    *conn = None;
                    self.eject("fetch timeout");
                    return None;
                }
            }
        }
        None
    }

    pub(super) async fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.get_many(&[key]).await.pop().flatten()
    }

    /// The values of `keys` (valid memcached keys) in one request and one round trip;
    /// each `None` on a miss, an ejected node or an error.
    pub(super) async fn get_many(&self, keys: &[&str]) -> Vec<Option<Vec<u8>>> {
        let run = keys.join(" ");
        let mut found = match self
            .call(Request::Get {
                keys: codec::memcache::Keys::new(run.as_bytes()),
                with_cas: false,
            })
            .await
        {
            Some(Reply::Values(v)) => v,
            _ => Vec::new(),
        };
        keys.iter()
            .map(|k| {
                let value = found
                    .iter()
                    .position(|(key, _)| key == k.as_bytes())
                    .map(|i| found.swap_remove(i).1);
                let counter = if value.is_some() {
                    &self.stats.hits
                } else {
                    &self.stats.misses
                };
                counter.fetch_add(1, Ordering::Relaxed);
                value
            })
            .collect()
    }

    pub(super) async fn add(&self, key: &str, value: &[u8], ttl: u32) -> bool {
        let request = Request::Store {
            command: StoreCommand::Add,
            key: key.as_bytes(),
            flags: 0,
            exptime: i64::from(ttl),
            data: value,
            cas_unique: 0,
            noreply: false,
        };
        matches!(self.call(request).await, Some(Reply::Stored))
    }

    pub(super) async fn delete(&self, key: &str) -> bool {
        let request = Request::Delete {
            key: key.as_bytes(),
            noreply: false,
        };
        matches!(self.call(request).await, Some(Reply::Deleted))
    }

    pub(super) async fn incr_or_add(&self, key: &str, ttl: u32) -> Option<u64> {
        let incr = || Request::Arithmetic {
            key: key.as_bytes(),
            delta: 1,
            decrement: false,
            noreply: false,
        };
        match self.call(incr()).await? {
            Reply::Number(n) => return Some(n),
            Reply::NotFound => {}
            _ => return None,
        }
        if self.add(key, b"1", ttl).await {
            return Some(1);
        }
        // Someone else created it between our incr and add.
        match self.call(incr()).await? {
            Reply::Number(n) => Some(n),
            _ => None,
        }
    }
}

/// Most bytes one reply may carry (all of a multi-get's values together), like each line.
const MAX_REPLY: usize = 64 * 1024;

/// Reads one reply (a `VALUE … END` run counts as one), bounded in size.
async fn read_reply(stream: &mut TcpStream) -> std::io::Result<Reply> {
    let mut buf = Vec::with_capacity(256);
    let mut values = Vec::new();
    let mut kept = 0;
    loop {
        match parse_response(&buf) {
            Ok((response, used)) => {
                let reply = match response {
                    Response::Value { key, data, .. } => {
                        kept += key.len() + data.len();
                        if kept > MAX_REPLY {
                            return Err(std::io::Error::other("reply too large"));
                        }
                        values.push((key.to_vec(), data.to_vec()));
                        None
                    }
                    Response::End => Some(Reply::Values(std::mem::take(&mut values))),
                    Response::Stored => Some(Reply::Stored),
                    Response::NotStored | Response::Exists => Some(Reply::NotStored),
                    Response::Deleted => Some(Reply::Deleted),
                    Response::NotFound => Some(Reply::NotFound),
                    Response::Number(n) => Some(Reply::Number(n)),
                    other => {
                        return Err(std::io::Error::other(format!("unexpected reply {other:?}")));
                    }
                };
                buf.drain(..used);
                if let Some(r) = reply {
                    return Ok(r);
                }
            }
            Err(codec::memcache::ResponseError::Incomplete) => {
                if buf.len() > MAX_REPLY {
                    return Err(std::io::Error::other("reply too large"));
                }
                if stream.read_buf(&mut buf).await? == 0 {
                    return Err(std::io::Error::other("connection closed"));
                }
            }
            Err(e) => return Err(std::io::Error::other(e)),
        }
    }
}
