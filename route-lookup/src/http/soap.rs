//! `POST /service/admin/soap/`: the one admin SOAP call an MTA makes, Zimbra's
//! `AuthRequest` (what saslauthd's zimbra mechanism sends for SMTP AUTH).
//!
//! A right password for an active account gets an `AuthResponse` with an opaque token;
//! anything else a SOAP 1.2 fault with `account.AUTH_FAILED`, never the reason.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::password;
use crate::resolve::{check_status, MAX_PASS, MAX_USER};
use crate::store::normalize;

/// Largest request body we read.
const MAX_BODY: usize = 64 * 1024;

/// The handler.
pub(crate) async fn handle(State(state): State<Arc<AppState>>, body: Body) -> Response {
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
    let ok = authenticate(&state, &name, &password).await;
    state.metrics.record_soap(ok);
    if ok {
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

async fn authenticate(state: &AppState, name: &str, password: &str) -> bool {
    if name.len() > MAX_USER || password.len() > MAX_PASS || password.is_empty() {
        return false;
    }
    let dir = state.directory.get();
    let Ok(Some(account)) = state.store.resolve(&dir, &normalize(name), "").await else {
        return false;
    };
    if check_status(&account).is_err() {
        return false;
    }
    match account.password_hash {
        Some(hash) => password::verify_async(hash, password.as_bytes().to_vec()).await,
        None => false,
    }
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
