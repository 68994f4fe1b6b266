//! Route-cache purge: when an account's mail host or status changes, or it is deleted, its
//! cached routes are deleted on every cache node (as Zimbra's zmproxypurge does), so no
//! proxy keeps sending the user to the old mailbox server for the rest of the TTL.
//!
//! Best effort and bounded: a node that is down or slow is skipped (its entries expire by
//! TTL, and a proxy deletes a route whose backend refuses the login).
//!
//! With `--memcached-auth-file` every connection authenticates first (the nodes'
//! `--auth-file`); a node that refuses the credentials counts as failed, and says why.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use codec::memcache::{parse_response, Credentials, Request, Response};
use codec::route_key::{route_key, PROTOCOLS};
use common::memcached_auth::AuthError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::store::Store;

/// The credentials purges authenticate with. One per process: purges start in the gRPC
/// services, which are built from the store alone, and a process has one configuration.
static CREDENTIALS: RwLock<Option<Arc<Credentials>>> = RwLock::new(None);

/// Makes every later purge of this process authenticate with the first line of `path`
/// (`--memcached-auth-file`); `None` leaves it as it is. A file that is no usable
/// `user:password` is refused, naming the flag and the file.
pub fn authenticate_with(path: Option<&Path>) -> Result<(), common::secret::SecretError> {
    if let Some(path) = path {
        let credentials = common::secret::memcached_credentials(path)?;
        // Only ever replaced whole: a panic elsewhere cannot leave it half-written.
        *CREDENTIALS
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(credentials));
    }
    Ok(())
}

fn credentials() -> Option<Arc<Credentials>> {
    CREDENTIALS
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// Why a node's routes could not be purged.
#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    /// No connection.
    #[error("cannot connect")]
    Connect(#[source] std::io::Error),
    /// The node did not accept the credentials.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The connection failed or the node's answers made no sense.
    #[error("the deletes failed")]
    Io(#[source] std::io::Error),
}

/// Bound on talking to one node.
const NODE_TIMEOUT: Duration = Duration::from_secs(2);

/// What a purge did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PurgeReport {
    /// Nodes that answered.
    pub nodes_ok: usize,
    /// Nodes that did not.
    pub nodes_failed: usize,
    /// Keys a node reported deleted.
    pub deleted: usize,
}

/// Deletes the route keys of `names` (every protocol) on every cache node.
pub async fn purge_routes(store: &Store, names: &[String]) -> PurgeReport {
    let nodes = match store.memcached_addresses().await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %common::exit::chain(&e), "route purge skipped: cannot list cache nodes");
            return PurgeReport::default();
        }
    };
    let keys: Vec<String> = names
        .iter()
        .flat_map(|n| {
            PROTOCOLS
                .iter()
                .map(move |p| route_key(p, n).wire().to_string())
        })
        .collect();
    let credentials = credentials();
    let mut tasks = tokio::task::JoinSet::new();
    for node in nodes {
        let keys = keys.clone();
        let credentials = credentials.clone();
        tasks.spawn(async move {
            let r = tokio::time::timeout(
                NODE_TIMEOUT,
                delete_on(&node, &keys, credentials.as_deref()),
            )
            .await;
            (node, r)
        });
    }
    let mut report = PurgeReport::default();
    while let Some(joined) = tasks.join_next().await {
        let Ok((node, result)) = joined else { continue };
        match result {
            Ok(Ok(deleted)) => {
                report.nodes_ok += 1;
                report.deleted += deleted;
            }
            Ok(Err(e)) => {
                report.nodes_failed += 1;
                tracing::warn!(%node, error = %common::exit::chain(&e), "route purge failed on a cache node");
            }
            Err(_) => {
                report.nodes_failed += 1;
                tracing::warn!(%node, "route purge timed out on a cache node");
            }
        }
    }
    tracing::info!(names = ?names, nodes_ok = report.nodes_ok, nodes_failed = report.nodes_failed, deleted = report.deleted, "purged cached routes");
    report
}

/// Authenticates when there are credentials, then sends every delete in one write and
/// counts the `DELETED` replies.
async fn delete_on(
    node: &str,
    keys: &[String],
    credentials: Option<&Credentials>,
) -> Result<usize, PurgeError> {
    let mut stream = TcpStream::connect(node)
        .await
        .map_err(PurgeError::Connect)?;
    if let Some(credentials) = credentials {
        common::memcached_auth::authenticate(&mut stream, credentials).await?;
    }
    deletes(&mut stream, keys).await.map_err(PurgeError::Io)
}

async fn deletes(stream: &mut TcpStream, keys: &[String]) -> std::io::Result<usize> {
    let mut out = Vec::new();
    for key in keys {
        Request::Delete {
            key: key.as_bytes(),
            noreply: false,
        }
        .encode(&mut out);
    }
    stream.write_all(&out).await?;
    let mut buf = Vec::with_capacity(512);
    let (mut replies, mut deleted) = (0, 0);
    while replies < keys.len() {
        match parse_response(&buf) {
            Ok((response, used)) => {
                if matches!(response, Response::Deleted) {
                    deleted += 1;
                }
                replies += 1;
                buf.drain(..used);
            }
            Err(codec::memcache::ResponseError::Incomplete) => {
                if buf.len() > 64 * 1024 || stream.read_buf(&mut buf).await? == 0 {
                    return Err(std::io::Error::other("connection closed mid-reply"));
                }
            }
            Err(e) => return Err(std::io::Error::other(e)),
        }
    }
    Ok(deleted)
}
