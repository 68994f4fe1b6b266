//! `POST /service/admin/soap/`: the one admin SOAP call an MTA makes, Zimbra's
//! `AuthRequest` (what saslauthd's zimbra mechanism sends for SMTP AUTH).
//!
//! A right password for an active account gets an `AuthResponse` with an opaque token;
//! anything else a SOAP 1.2 fault with `account.AUTH_FAILED`, never the reason. Requests
//! are limited per client address (Zimbra's DoS filter: over the rate, HTTP 429 before
//! the body is read), and a password check that cannot start in time is a
//! `service.TEMPORARILY_UNAVAILABLE` fault, not a failure.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::authenticate::Verdict;
use crate::resolve::{check_status, MAX_PASS, MAX_USER};
use crate::store::normalize;

/// Largest request body we read.
const MAX_BODY: usize = 64 * 1024;

/// The handler.
pub(crate) async fn handle(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Body,
) -> Response {
    if !state.soap_throttle.allow(peer.ip()) {
        state.metrics.record_soap(SoapOutcome::Throttled);
        tracing::debug!(client = %peer.ip(), "soap request over the per-address rate");
        return throttled();
    }
    let bytes = match tokio::time::timeout(state.http_timeout, axum::body::to_bytes(body, MAX_BODY))
        .await
    {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            return fault(
                "soap:Sender",
                "request too large or malformed",
                "service.INVALID_REQUEST",
            )
        }
        Err(_) => {
            return fault(
                "soap:Sender",
                "request body timed out",
                "service.INVALID_REQUEST",
            )
        }
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return fault(
            "soap:Sender",
            "request is not UTF-8",
            "service.INVALID_REQUEST",
        );
    };
    let Some(auth) = element(text, "AuthRequest") else {
        return fault(
            "soap:Sender",
            "unknown document",
            "service.UNKNOWN_DOCUMENT",
        );
    };
    let name = element(auth, "account").or_else(|| element(auth, "name"));
    let password = element(auth, "password");
    let (Some(name), Some(password)) = (name.map(unescape_xml), password.map(unescape_xml)) else {
        return fault(
            "soap:Sender",
            "invalid request: missing account or password",
            "service.INVALID_REQUEST",
        );
    };
    let outcome = authenticate(&state, &name, &password).await;
    state.metrics.record_soap(outcome);
    if outcome == SoapOutcome::Temporary {
        return fault(
            "soap:Receiver",
            "service temporarily unavailable",
            "service.TEMPORARILY_UNAVAILABLE",
        );
    }
    if outcome == SoapOutcome::Ok {
        tracing::info!(account = %name, "soap auth ok");
        let token = token();
        let body = format!(
            "<soap:Envelope xmlns:soap=\"http://www.w3.org/2003/05/soap-envelope\"><soap:Header>\
             <context xmlns=\"urn:zimbra\"/></soap:Header><soap:Body>\
             <AuthResponse xmlns=\"urn:zimbraAdmin\"><authToken>{token}</authToken>\
             <lifetime>43200000</lifetime></AuthResponse></soap:Body></soap:Envelope>"
        );
        (
            [(header::CONTENT_TYPE, "application/soap+xml; charset=utf-8")],
            body,
        )
            .into_response()
    } else {
        tracing::info!(account = %name, "soap auth failed");
        fault(
            "soap:Sender",
            "authentication failed",
            "account.AUTH_FAILED",
        )
    }
}

async fn authenticate(state: &AppState, name: &str, password: &str) -> SoapOutcome {
    if name.len() > MAX_USER || password.len() > MAX_PASS || password.is_empty() {
        return SoapOutcome::Failed;
    }
    let dir = state.directory.get();
    let account = match state.store.resolve(&dir, &normalize(name), "").await {
        Ok(Some(account)) => account,
        Ok(None) => return SoapOutcome::Failed,
        Err(e) => {
            tracing::warn!(error = %common::exit::chain(&e), "soap auth: cannot resolve the account");
            return SoapOutcome::Temporary;
        }
    };
    // A lockout may have run out: the password check decides.
    if account.status != "lockout" && check_status(&account).is_err() {
        return SoapOutcome::Failed;
    }
    match state.auth.check(&account, password.as_bytes()).await {
        Ok(Verdict::Accepted) => SoapOutcome::Ok,
        Ok(Verdict::Rejected | Verdict::LockedOut) => SoapOutcome::Failed,
        Err(e) => {
            tracing::warn!(error = %common::exit::chain(&e), "soap auth: cannot check the password now");
            SoapOutcome::Temporary
        }
    }
}

/// How one SOAP AuthRequest ended, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoapOutcome {
    /// Authenticated.
    Ok,
    /// Wrong name, password, or an inactive account.
    Failed,
    /// The check could not be made now.
    Temporary,
    /// Over the per-address rate.
    Throttled,
}

impl SoapOutcome {
    /// Every outcome, for metrics.
    pub const ALL: [SoapOutcome; 4] = [Self::Ok, Self::Failed, Self::Temporary, Self::Throttled];

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::Temporary => "temporary",
            Self::Throttled => "throttled",
        }
    }
}

/// HTTP 429 with a SOAP fault, as Zimbra's DoS filter answers over its rate.
fn throttled() -> Response {
    let mut response = fault(
        "soap:Receiver",
        "too many requests from this address",
        "service.TEMPORARILY_UNAVAILABLE",
    );
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    response
}

fn token() -> String {
    use argon2::password_hash::rand_core::{OsRng, RngCore};
    let mut bytes = [0u8; 24];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn fault(code: &str, reason: &str, zimbra_code: &str) -> Response {
    let body = format!(
        "<soap:Envelope xmlns:soap=\"http://www.w3.org/2003/05/soap-envelope\"><soap:Body>\
         <soap:Fault><soap:Code><soap:Value>{code}</soap:Value></soap:Code>\
         <soap:Reason><soap:Text>{reason}</soap:Text></soap:Reason><soap:Detail>\
         <Error xmlns=\"urn:zimbra\"><Code>{zimbra_code}</Code></Error></soap:Detail>\
         </soap:Fault></soap:Body></soap:Envelope>"
    );
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "application/soap+xml; charset=utf-8")],
        body,
    )
        .into_response()
}

/// The text inside the first `<tag …>…</tag>` (any namespace prefix), if any.
fn element<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(pos) = xml[from..].find('<') {
        let start = from + pos + 1;
        let rest = &xml[start..];
        let name_end = rest.find(|c: char| c.is_whitespace() || c == '>' || c == '/')?;
        let qname = &rest[..name_end];
        let local = qname.rsplit(':').next().unwrap_or(qname);
        if local == tag {
            let open_end = start + rest.find('>')?;
            if xml[..open_end].ends_with('/') {
                return Some("");
            }
            let content_start = open_end + 1;
            let close = format!("</{qname}>");
            let content_len = xml[content_start..].find(&close)?;
            return Some(&xml[content_start..content_start + content_len]);
        }
        from = start;
    }
    None
}

/// Decodes XML's five entities and numeric character references; CDATA is kept as is.
fn unescape_xml(text: &str) -> String {
    if let Some(inner) = text
        .trim()
        .strip_prefix("<![CDATA[")
        .and_then(|t| t.strip_suffix("]]>"))
    {
        return inner.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let Some(semi) = after.find(';').filter(|&s| s <= 10) else {
            out.push('&');
            rest = after;
            continue;
        };
        let entity = &after[..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &after[semi + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_elements_in_any_namespace() {
        let doc = r#"<soap:Envelope xmlns:soap="x"><soap:Body><AuthRequest xmlns="urn:zimbraAdmin"><account by="name">a@b.c</account><password>p&amp;w&#x21;</password></AuthRequest></soap:Body></soap:Envelope>"#;
        let auth = element(doc, "AuthRequest").unwrap();
        assert_eq!(element(auth, "account"), Some("a@b.c"));
        assert_eq!(unescape_xml(element(auth, "password").unwrap()), "p&w!");
        assert_eq!(element(auth, "name"), None);
        assert_eq!(element("<a:name>x</a:name>", "name"), Some("x"));
        assert_eq!(element("<name/>", "name"), Some(""));
        assert_eq!(element("<name>unterminated", "name"), None);
    }

    #[test]
    fn entities() {
        assert_eq!(
            unescape_xml("a&lt;b&gt;&quot;&apos;&#65;&bogus;&"),
            "a<b>\"'A&bogus;&"
        );
        assert_eq!(unescape_xml("<![CDATA[x&amp;]]>"), "x&amp;");
    }
}
