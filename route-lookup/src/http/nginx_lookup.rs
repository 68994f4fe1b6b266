//! `GET /service/extension/nginx-lookup`: nginx's auth_http protocol.
//!
//! Whatever goes wrong, the answer carries `Auth-Status` (nginx ignores the HTTP status and
//! would turn a bare error page into "internal server error"), one of two generic texts,
//! and `Auth-Wait` only while `Auth-Login-Attempt` is within the cap, so nginx closes a
//! session that keeps failing instead of letting it retry forever.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use codec::auth_http::{self as ah, unescape};

use super::AppState;
use crate::resolve::{
    lookup, Credential, LookupRequest, Protocol, Reason, Route, MAX_PASS, MAX_TOKEN, MAX_USER,
};

/// The handler.
pub(crate) async fn handle(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let started = Instant::now();
    let attempt = attempt_of(&headers);
    let outcome = match parse(&state, &headers) {
        Ok(req) => lookup(
            &state.store,
            &state.directory.get(),
            &state.policy,
            &state.auth,
            &state.metrics,
            &req,
        )
        .await
        .map(|route| (route, req)),
        Err(reason) => Err(reason),
    };
    let (result, response) = match outcome {
        Ok((route, req)) => {
            tracing::debug!(user = %req.user, account = %route.user, server = %route.server, port = route.port, "lookup ok");
            (Ok(()), success(&route))
        }
        Err(reason) => {
            tracing::info!(
                reason = reason.label(),
                attempt,
                client = header_str(&headers, ah::CLIENT_IP).unwrap_or("-"),
                "lookup failed"
            );
            (Err(reason), failure(&state, reason, attempt))
        }
    };
    state.metrics.record(result, started.elapsed());
    response
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Auth-Login-Attempt; absent means the first attempt; garbage counts as over the cap.
fn attempt_of(headers: &HeaderMap) -> u32 {
    match headers.get(ah::AUTH_LOGIN_ATTEMPT) {
        None => 1,
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(u32::MAX),
    }
}

/// Reads and %XX-decodes one header, bounded: `max` bytes decoded, three times that raw
/// (every byte escaped).
fn decoded(headers: &HeaderMap, name: &str, max: usize) -> Result<Option<Vec<u8>>, Reason> {
    let Some(raw) = headers.get(name) else {
        return Ok(None);
    };
    let raw = raw.as_bytes();
    if raw.len() > 3 * max {
        return Err(Reason::BadRequest);
    }
    let value = unescape(raw).map_err(|_| Reason::BadRequest)?;
    if value.len() > max {
        return Err(Reason::BadRequest);
    }
    Ok(Some(value))
}

fn parse(state: &AppState, headers: &HeaderMap) -> Result<LookupRequest, Reason> {
    if let Some(secret) = &state.policy.secret {
        let given = headers
            .get(ah::X_LOOKUP_SECRET)
            .map(HeaderValue::as_bytes)
            .unwrap_or_default();
        if !common::secret::constant_time_eq(given, secret.as_bytes()) {
            return Err(Reason::Secret);
        }
    }
    let method = header_str(headers, ah::AUTH_METHOD).ok_or(Reason::BadRequest)?;
    let credential = match method.trim().to_ascii_lowercase().as_str() {
        "plain" | "passwd" | "username" | "other" => Credential::Password,
        // Our proxy's SASL XOAUTH2 / OAUTHBEARER: Auth-Pass is the bearer token.
        "xoauth2" | "oauthbearer" => Credential::BearerToken,
        // apop, cram-md5, external, gssapi, ...: we never know the cleartext password
        // nginx would need back in Auth-Pass.
        _ => return Err(Reason::Method),
    };
    let protocol = header_str(headers, ah::AUTH_PROTOCOL)
        .and_then(|p| Protocol::parse(p.trim()))
        .ok_or(Reason::BadRequest)?;
    let user = decoded(headers, ah::AUTH_USER, MAX_USER)?.ok_or(Reason::BadRequest)?;
    let user = String::from_utf8(user).map_err(|_| Reason::BadRequest)?;
    let max_pass = match credential {
        Credential::Password => MAX_PASS,
        Credential::BearerToken => MAX_TOKEN,
    };
    let pass = decoded(headers, ah::AUTH_PASS, max_pass)?.unwrap_or_default();
    let proxy_ip = match header_str(headers, ah::X_PROXY_IP) {
        Some(ip) => Some(
            ip.trim()
                .parse::<IpAddr>()
                .map_err(|_| Reason::BadRequest)?,
        ),
        None => None,
    };
    Ok(LookupRequest {
        user,
        pass,
        credential,
        protocol,
        proxy_ip,
    })
}

/// Header names go out lowercase (hyper writes them so); nginx matches them
/// case-insensitively.
fn header(name: &'static str) -> HeaderName {
    HeaderName::from_bytes(name.as_bytes()).expect("auth_http header names are valid")
}

fn success(route: &Route) -> Response {
    let mut h = HeaderMap::new();
    h.insert(
        header(ah::AUTH_STATUS),
        HeaderValue::from_static(ah::STATUS_OK),
    );
    h.insert(
        header(ah::AUTH_SERVER),
        HeaderValue::from_str(&route.server.to_string()).expect("an IP literal is a valid header"),
    );
    // Stock nginx ignores it; our proxy verifies the server's certificate against it.
    if let Ok(name) = HeaderValue::from_str(&route.server_name) {
        if !route.server_name.is_empty() {
            h.insert(header(ah::AUTH_SERVER_NAME), name);
        }
    }
    h.insert(header(ah::AUTH_PORT), HeaderValue::from(route.port));
    // Raw, not %-encoded: stock nginx copies it verbatim into the upstream LOGIN. Names
    // were checked free of controls at creation; anything else fails the lookup.
    match HeaderValue::from_str(&route.user) {
        Ok(v) => {
            h.insert(header(ah::AUTH_USER), v);
        }
        Err(_) => return Reason::BadRequest.status_text().into_response(),
    }
    h.insert(
        header(ah::AUTH_CACHE_ALIAS),
        HeaderValue::from_static(if route.cache_alias { "TRUE" } else { "FALSE" }),
    );
    (StatusCode::OK, h).into_response()
}

fn failure(state: &AppState, reason: Reason, attempt: u32) -> Response {
    let mut h = HeaderMap::new();
    h.insert(
        header(ah::AUTH_STATUS),
        HeaderValue::from_static(reason.status_text()),
    );
    // For our proxy's failed-login line (fail2ban tells typos from guesses by it); the
    // client only ever sees the generic status, and a caller without the lookup secret
    // learns nothing more than before.
    if reason != Reason::Secret {
        h.insert(
            header(ah::X_LOOKUP_REASON),
            HeaderValue::from_static(match reason {
                Reason::NotFound => "unknown_user",
                other => other.label(),
            }),
        );
    }
    if state.policy.auth_wait > 0 && attempt <= state.policy.auth_wait_max_attempts {
        h.insert(
            header(ah::AUTH_WAIT),
            HeaderValue::from(state.policy.auth_wait),
        );
    }
    (StatusCode::OK, h).into_response()
}
