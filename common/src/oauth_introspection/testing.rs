//! A token endpoint for tests: an HTTP server on `127.0.0.1:0` that answers introspection
//! requests from a table of tokens (unknown ones are inactive), counts the requests,
//! records the last one, and can be made slow or made to answer with any status and body.
//! route-lookup's and mailbox-stub's tests use it as much as this module's own.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use hyper_util::rt::TokioIo;

/// The path the endpoint answers on.
pub const PATH: &str = "/oauth2/introspect";

/// What the endpoint answers for one token.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: String,
}

impl Reply {
    /// `{"active":true,"username":USER}` expiring in an hour.
    pub fn active(user: &str) -> Self {
        Self::json(serde_json::json!({
            "active": true,
            "username": user,
            "exp": now() + 3600,
            "token_type": "Bearer",
        }))
    }

    /// `{"active":false}`.
    pub fn inactive() -> Self {
        Self::json(serde_json::json!({ "active": false }))
    }

    /// 200 with `body` (JSON text, or anything) as the body.
    pub fn ok(body: &str) -> Self {
        Self {
            status: 200,
            body: body.to_string(),
        }
    }

    /// 200 with `value` as the body.
    pub fn json(value: serde_json::Value) -> Self {
        Self {
            status: 200,
            body: value.to_string(),
        }
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// One request as the endpoint saw it.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Authorization`.
    pub authorization: Option<String>,
    /// The body, raw.
    pub body: String,
    /// The `token` form field, decoded.
    pub token: Option<String>,
}

#[derive(Default)]
struct Shared {
    tokens: HashMap<String, Reply>,
    /// Answer every request with this instead, when set.
    all: Option<Reply>,
    delay: Duration,
    calls: usize,
    last: Option<Seen>,
}

/// A running endpoint; it stops when dropped.
#[derive(Debug)]
pub struct TokenEndpoint {
    /// Where it listens.
    pub addr: SocketAddr,
    tls: bool,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("calls", &self.calls)
            .finish()
    }
}

impl Drop for TokenEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TokenEndpoint {
    /// Starts an endpoint that knows no token yet.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Starts one over TLS with `config` (its URL is then `https://localhost:PORT/…`).
    pub async fn start_tls(config: Arc<rustls::ServerConfig>) -> Self {
        Self::start_with(Some(tokio_rustls::TlsAcceptor::from(config))).await
    }

    async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let app = Router::new()
            .route(PATH, post(answer))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the token endpoint");
        let addr = listener.local_addr().expect("its address");
        let tls_on = tls.is_some();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let service = hyper_util::service::TowerToHyperService::new(app.clone());
                let tls = tls.clone();
                tokio::spawn(async move {
                    let http = hyper::server::conn::http1::Builder::new();
                    let _ = match tls {
                        None => http.serve_connection(TokioIo::new(tcp), service).await,
                        Some(acceptor) => match acceptor.accept(tcp).await {
                            Ok(stream) => {
                                http.serve_connection(TokioIo::new(stream), service).await
                            }
                            Err(_) => return,
                        },
                    };
                });
            }
        });
        Self {
            addr,
            tls: tls_on,
            shared,
            task,
        }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        match self.tls {
            true => format!("https://localhost:{}{PATH}", self.addr.port()),
            false => format!("http://{}{PATH}", self.addr),
        }
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Answers `reply` for `token` from now on.
    pub fn token(&self, token: &str, reply: Reply) {
        self.shared().tokens.insert(token.to_string(), reply);
    }

    /// Answers every request with `reply` (`None`: per token again).
    pub fn answer_all(&self, reply: Option<Reply>) {
        self.shared().all = reply;
    }

    /// Waits this long before each answer.
    pub fn delay(&self, delay: Duration) {
        self.shared().delay = delay;
    }

    /// Requests answered or being answered.
    pub fn calls(&self) -> usize {
        self.shared().calls
    }

    /// The last request.
    pub fn last(&self) -> Option<Seen> {
        self.shared().last.clone()
    }
}

async fn answer(
    State(shared): State<Arc<Mutex<Shared>>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    let body = String::from_utf8_lossy(&body).into_owned();
    let token = form_field(&body, "token");
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (reply, delay) = {
        let mut s = shared.lock().unwrap_or_else(PoisonError::into_inner);
        s.calls += 1;
        s.last = Some(Seen {
            content_type: header("content-type"),
            authorization: header("authorization"),
            body,
            token: token.clone(),
        });
        let reply = s.all.clone().unwrap_or_else(|| {
            token
                .as_deref()
                .and_then(|t| s.tokens.get(t).cloned())
                .unwrap_or_else(Reply::inactive)
        });
        (reply, s.delay)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [("content-type", "application/json")], reply.body)
}

/// A field of a form-encoded body, decoded (`+` is a space, `%XX` a byte).
fn form_field(body: &str, name: &str) -> Option<String> {
    body.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| decode(v))
    })
}

fn decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
