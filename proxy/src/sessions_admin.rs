//! `GET /sessions` and `POST /sessions/kick` on the proxy's admin listener, as Dovecot's
//! `doveadm who` and `doveadm kick`. Both need `Authorization: Bearer <--admin-token>`
//! (without a token configured they are off, and say so). With `--workers N`, worker 0
//! answers for every worker: it asks the others on their admin ports (its own + i) with
//! `local=1` and merges their answers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::sessions::{Filter, Sessions};

/// What the endpoints need.
#[derive(Debug)]
pub struct SessionsAdmin {
    /// This process's sessions.
    pub sessions: Arc<Sessions>,
    /// The bearer token callers must present; `None`: the endpoints are off.
    pub token: Option<String>,
    /// This worker's index.
    pub worker: usize,
    /// The other workers' admin addresses (worker 0 only).
    pub peers: Vec<SocketAddr>,
}

/// The routes.
pub fn router(admin: Arc<SessionsAdmin>) -> Router {
    Router::new()
        .route("/sessions", get(list))
        .route("/sessions/kick", post(kick))
        .with_state(admin)
}

/// Bound on asking another worker.
const PEER_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest answer read from another worker.
const MAX_PEER_ANSWER: u64 = 16 * 1024 * 1024;

fn refused(status: StatusCode, why: &str) -> Response {
    (status, format!("{{\"error\":\"{why}\"}}\n")).into_response()
}

/// Checks the bearer token (constant time); `Some` is the refusal to send.
fn refusal(admin: &SessionsAdmin, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = &admin.token else {
        return Some(refused(
            StatusCode::FORBIDDEN,
            "the sessions endpoints are off: start the proxy with --admin-token or --admin-token-file",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if common::secret::constant_time_eq(given.as_bytes(), token.as_bytes()) {
        None
    } else {
        Some(refused(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token",
        ))
    }
}

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn list(
    State(admin): State<Arc<SessionsAdmin>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = refusal(&admin, &headers) {
        return r;
    }
    let mut lines = admin.sessions.json_lines(admin.worker);
    if q.get("local").map(String::as_str) == Some("1") {
        return json(StatusCode::OK, lines);
    }
    let mut missing = Vec::new();
    for peer in &admin.peers {
        match ask(*peer, "GET", "/sessions?local=1", admin.token.as_deref()).await {
            Ok(more) => lines.push_str(&more),
            Err(e) => missing.push(format!("{peer}: {e}")),
        }
    }
    if !missing.is_empty() {
        tracing::warn!(workers = ?missing, "session list incomplete: a worker did not answer");
    }
    let body: Vec<&str> = lines.lines().filter(|l| !l.is_empty()).collect();
    json(StatusCode::OK, format!("[{}]\n", body.join(",\n")))
}

async fn kick(
    State(admin): State<Arc<SessionsAdmin>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = refusal(&admin, &headers) {
        return r;
    }
    let filter = match (q.get("user"), q.get("backend"), q.get("id")) {
        (Some(u), None, None) if !u.is_empty() => Filter::User(u.clone()),
        (None, Some(b), None) if !b.is_empty() => Filter::Backend(b.clone()),
        (None, None, Some(id)) => match id.parse() {
            Ok(id) => Filter::Id(id),
            Err(_) => return refused(StatusCode::BAD_REQUEST, "id must be a number"),
        },
        _ => {
            return refused(
                StatusCode::BAD_REQUEST,
                "give exactly one of user=, backend= or id= (with worker= for an id)",
            )
        }
    };
    // An id names a session of one worker.
    let worker: usize = match q.get("worker").map(|w| w.parse()) {
        None => admin.worker,
        Some(Ok(w)) => w,
        Some(Err(_)) => return refused(StatusCode::BAD_REQUEST, "worker must be a number"),
    };
    let local = q.get("local").map(String::as_str) == Some("1");
    let mut kicked = 0;
    if !matches!(filter, Filter::Id(_)) || worker == admin.worker {
        kicked += admin.sessions.kick(&filter);
    }
    if !local {
        for (i, peer) in admin.peers.iter().enumerate() {
            let peer_worker = admin.worker + i + 1;
            if matches!(filter, Filter::Id(_)) && peer_worker != worker {
                continue;
            }
            let query = match &filter {
                Filter::User(u) => format!("user={}", escape(u)),
                Filter::Backend(b) => format!("backend={}", escape(b)),
                Filter::Id(id) => format!("id={id}&worker={peer_worker}"),
            };
            let path = format!("/sessions/kick?local=1&{query}");
            match ask(*peer, "POST", &path, admin.token.as_deref()).await {
                Ok(body) => kicked += count_of(&body),
                Err(e) => {
                    tracing::warn!(worker = peer_worker, error = %e, "kick not passed on: a worker did not answer")
                }
            }
        }
    }
    tracing::info!(?filter, kicked, "sessions kicked");
    json(StatusCode::OK, format!("{{\"kicked\":{kicked}}}\n"))
}

/// `{"kicked":N}` → N.
fn count_of(body: &str) -> usize {
    body.trim()
        .strip_prefix("{\"kicked\":")
        .and_then(|r| r.strip_suffix('}'))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Percent-encodes a query value.
fn escape(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' | b':' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// One HTTP/1.0 request to another worker's admin listener; the body of a 200.
async fn ask(
    peer: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> Result<String, String> {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(peer)
            .await
            .map_err(|e| e.to_string())?;
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let req =
            format!("{method} {path} HTTP/1.0\r\nHost: {peer}\r\n{auth}Content-Length: 0\r\n\r\n");
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        s.take(MAX_PEER_ANSWER)
            .read_to_end(&mut out)
            .await
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out).into_owned();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| "no HTTP answer".to_string())?;
        if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
            return Err(head.lines().next().unwrap_or_default().to_string());
        }
        Ok(body.to_string())
    };
    tokio::time::timeout(PEER_TIMEOUT, exchange)
        .await
        .map_err(|_| "no answer within 2 s".to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(count_of("{\"kicked\":3}\n"), 3);
        assert_eq!(count_of("garbage"), 0);
        assert_eq!(escape("o'hara@example.com"), "o%27hara@example.com");
    }
}
