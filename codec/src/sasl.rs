//! SASL as IMAP AUTHENTICATE and POP3 AUTH carry it: one base64 line (`=` for an empty
//! response, `*` to cancel) holding the mechanism's message.
//!
//! - PLAIN (RFC 4616): `authzid NUL authcid NUL password`.
//! - XOAUTH2 (Google's): `user=NAME ^A auth=Bearer TOKEN ^A ^A`.
//! - OAUTHBEARER (RFC 7628): a GS2 header `n,a=NAME,` then `^A`-terminated `key=value`
//!   pairs, `auth=Bearer TOKEN` among them, and a final `^A`.
//!
//! A refused OAuth login is answered with an error challenge (base64 JSON) that the client
//! acknowledges before the final NO: [`oauth_error_challenge`] and [`is_oauth_ack`].

use base64::Engine;
use thiserror::Error;

/// A decoded PLAIN response.
#[derive(Clone, PartialEq, Eq)]
pub struct Plain {
    /// The authorization identity (empty: the same as `authcid`).
    pub authzid: Vec<u8>,
    /// The authentication identity (the login).
    pub authcid: Vec<u8>,
    /// The password.
    pub password: Vec<u8>,
}

impl std::fmt::Debug for Plain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plain")
            .field("authzid", &String::from_utf8_lossy(&self.authzid))
            .field("authcid", &String::from_utf8_lossy(&self.authcid))
            .field("password", &format_args!("<{} bytes>", self.password.len()))
            .finish()
    }
}

impl Plain {
    /// Whether the client asks to act as someone other than the identity it proves.
    pub fn other_authzid(&self) -> bool {
        !self.authzid.is_empty() && self.authzid != self.authcid
    }
}

/// Why a response is not a PLAIN response; the texts are fit for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SaslError {
    /// The client sent `*`.
    #[error("Authentication cancelled")]
    Cancelled,
    /// Not base64.
    #[error("Invalid base64")]
    Base64,
    /// Not three NUL-separated fields.
    #[error("Invalid PLAIN response")]
    Malformed,
    /// Not an XOAUTH2 / OAUTHBEARER client response with a user and a bearer token.
    #[error("Invalid OAuth response")]
    MalformedOAuth,
    /// An OAUTHBEARER response without `a=`: there is no user to route by.
    #[error("OAUTHBEARER needs the user name (a=) in its GS2 header")]
    NoOAuthUser,
    /// The token is longer than [`MAX_TOKEN`].
    #[error("OAuth token too long")]
    TokenTooLong,
}

/// The base64 payload of a response line: `=` is empty, `*` cancels.
fn decode_line(response: &[u8]) -> Result<Vec<u8>, SaslError> {
    match response {
        b"*" => Err(SaslError::Cancelled),
        b"=" => Ok(Vec::new()),
        _ => base64::engine::general_purpose::STANDARD
            .decode(response)
            .map_err(|_| SaslError::Base64),
    }
}

/// Decodes one PLAIN response line.
pub fn decode_plain(response: &[u8]) -> Result<Plain, SaslError> {
    let decoded = decode_line(response)?;
    let mut fields = decoded.split(|&b| b == 0);
    match (fields.next(), fields.next(), fields.next(), fields.next()) {
        (Some(authzid), Some(authcid), Some(password), None) => Ok(Plain {
            authzid: authzid.to_vec(),
            authcid: authcid.to_vec(),
            password: password.to_vec(),
        }),
        _ => Err(SaslError::Malformed),
    }
}

/// Longest bearer token accepted: real ones (JWTs with many claims) run to a few KiB.
pub const MAX_TOKEN: usize = 16 * 1024;

/// The two OAuth 2.0 SASL mechanisms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthMechanism {
    /// Google's and Microsoft's XOAUTH2.
    XOAuth2,
    /// RFC 7628 OAUTHBEARER.
    OAuthBearer,
}

impl OAuthMechanism {
    /// The mechanism named `name` (any case), if it is one of these.
    pub fn from_name(name: &[u8]) -> Option<Self> {
        if name.eq_ignore_ascii_case(b"XOAUTH2") {
            Some(Self::XOAuth2)
        } else if name.eq_ignore_ascii_case(b"OAUTHBEARER") {
            Some(Self::OAuthBearer)
        } else {
            None
        }
    }

    /// Its SASL name.
    pub fn name(self) -> &'static str {
        match self {
            Self::XOAuth2 => "XOAUTH2",
            Self::OAuthBearer => "OAUTHBEARER",
        }
    }

    /// Its word in logs and in the lookup's `Auth-Method`.
    pub fn method(self) -> &'static str {
        match self {
            Self::XOAuth2 => "xoauth2",
            Self::OAuthBearer => "oauthbearer",
        }
    }
}

/// A decoded XOAUTH2 or OAUTHBEARER client response.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuth {
    /// Which mechanism.
    pub mechanism: OAuthMechanism,
    /// The user the token is presented for (`user=` / `a=`, unescaped).
    pub user: Vec<u8>,
    /// The bearer token.
    pub token: Vec<u8>,
    /// The whole decoded message, to replay upstream as the client sent it.
    pub message: Vec<u8>,
}

impl std::fmt::Debug for OAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth")
            .field("mechanism", &self.mechanism)
            .field("user", &String::from_utf8_lossy(&self.user))
            .field("token", &format_args!("<{} bytes>", self.token.len()))
            .finish_non_exhaustive()
    }
}

impl OAuth {
    /// The message as a response line (base64), for replaying it.
    pub fn response(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.message)
    }

    /// The response line for logging in as `user` (the account an alias or another
    /// spelling of it resolved to), base64: the client's message with only its user
    /// replaced, so that a mailbox server that knows only account names takes it. The
    /// token and every other field stay as the client sent them.
    pub fn response_as(&self, user: &[u8]) -> String {
        if user == self.user {
            return self.response();
        }
        let mut message = Vec::with_capacity(self.message.len() + user.len());
        match self.mechanism {
            OAuthMechanism::XOAuth2 => {
                // Every pair but `user`, in order, after the new one.
                message.extend_from_slice(b"user=");
                message.extend_from_slice(user);
                message.push(1);
                for pair in self.message.split(|&b| b == 1) {
                    if !pair.is_empty() && !pair.starts_with(b"user=") {
                        message.extend_from_slice(pair);
                        message.push(1);
                    }
                }
                message.push(1);
            }
            OAuthMechanism::OAuthBearer => {
                // The GS2 header rebuilt, the pairs after it as they came.
                let flag = &self.message[..2];
                let pairs_at = self.message.iter().position(|&b| b == 1).unwrap_or(0);
                message.extend_from_slice(flag);
                message.extend_from_slice(b"a=");
                for &b in user {
                    match b {
                        b',' => message.extend_from_slice(b"=2C"),
                        b'=' => message.extend_from_slice(b"=3D"),
                        b => message.push(b),
                    }
                }
                message.push(b',');
                message.extend_from_slice(&self.message[pairs_at..]);
            }
        }
        base64::engine::general_purpose::STANDARD.encode(message)
    }
}

/// Decodes one XOAUTH2 or OAUTHBEARER response line.
pub fn decode_oauth(mechanism: OAuthMechanism, response: &[u8]) -> Result<OAuth, SaslError> {
    let message = decode_line(response)?;
    let (user, auth) = match mechanism {
        OAuthMechanism::XOAuth2 => xoauth2_fields(&message),
        OAuthMechanism::OAuthBearer => oauthbearer_fields(&message)?,
    }
    .ok_or(SaslError::MalformedOAuth)?;
    let token = bearer_token(auth).ok_or(SaslError::MalformedOAuth)?;
    if token.len() > MAX_TOKEN {
        return Err(SaslError::TokenTooLong);
    }
    if user.is_empty() {
        return Err(match mechanism {
            OAuthMechanism::XOAuth2 => SaslError::MalformedOAuth,
            OAuthMechanism::OAuthBearer => SaslError::NoOAuthUser,
        });
    }
    Ok(OAuth {
        mechanism,
        user,
        token: token.to_vec(),
        message,
    })
}

/// `^A`-terminated `key=value` pairs followed by one more `^A` (and nothing after it):
/// the value of `auth`, and of `user` when asked.
fn kv_pairs(mut rest: &[u8], user_key: bool) -> Option<(Option<&[u8]>, &[u8])> {
    let (mut user, mut auth) = (None, None);
    loop {
        let end = rest.iter().position(|&b| b == 1)?;
        let pair = &rest[..end];
        rest = &rest[end + 1..];
        if pair.is_empty() {
            // The closing ^A: the message ends here.
            return rest.is_empty().then_some((user, auth?));
        }
        let eq = pair.iter().position(|&b| b == b'=')?;
        let (key, value) = (&pair[..eq], &pair[eq + 1..]);
        if key.is_empty() || !key.iter().all(u8::is_ascii_alphabetic) {
            return None;
        }
        match key {
            b"auth" if auth.is_none() => auth = Some(value),
            b"user" if user_key && user.is_none() => user = Some(value),
            b"auth" | b"user" if user_key || key == b"auth" => return None,
            _ => {}
        }
    }
}

/// A message's user and its `auth` value.
type Fields<'a> = (Vec<u8>, &'a [u8]);

fn xoauth2_fields(message: &[u8]) -> Option<Fields<'_>> {
    let (user, auth) = kv_pairs(message, true)?;
    Some((user?.to_vec(), auth))
}

/// The GS2 header (`n,a=NAME,`; channel binding `y`/`p=` is not something a proxy can
/// pass on, so only `n` and `y` are taken), then the pairs.
fn oauthbearer_fields(message: &[u8]) -> Result<Option<Fields<'_>>, SaslError> {
    let Some(rest) = message
        .strip_prefix(b"n,")
        .or_else(|| message.strip_prefix(b"y,"))
    else {
        return Ok(None);
    };
    let Some(comma) = rest.iter().position(|&b| b == b',') else {
        return Ok(None);
    };
    let (authzid, rest) = (&rest[..comma], &rest[comma + 1..]);
    let user = match authzid {
        [] => Vec::new(),
        _ => match authzid.strip_prefix(b"a=").and_then(unescape_saslname) {
            Some(u) => u,
            None => return Ok(None),
        },
    };
    // The GS2 header is followed by ^A and the pairs.
    let Some(pairs) = rest.strip_prefix(&[1u8][..]) else {
        return Ok(None);
    };
    Ok(kv_pairs(pairs, false).map(|(_, auth)| (user, auth)))
}

/// RFC 5801's saslname: `=2C` is a comma, `=3D` an equals sign, and no other `=`.
fn unescape_saslname(name: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(name.len());
    let mut i = 0;
    while i < name.len() {
        match name[i] {
            b'=' => {
                match name.get(i + 1..i + 3)? {
                    b"2C" | b"2c" => out.push(b','),
                    b"3D" | b"3d" => out.push(b'='),
                    _ => return None,
                }
                i += 3;
            }
            b',' => return None,
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// `Bearer TOKEN` (the scheme in any case, one or more spaces): the token.
fn bearer_token(auth: &[u8]) -> Option<&[u8]> {
    let scheme = auth.get(..6)?;
    if !scheme.eq_ignore_ascii_case(b"Bearer") {
        return None;
    }
    let rest = &auth[6..];
    let token_at = rest.iter().position(|&b| b != b' ')?;
    if token_at == 0 {
        return None;
    }
    let token = &rest[token_at..];
    // b64token (RFC 6750): no spaces or controls inside.
    token.iter().all(|b| b.is_ascii_graphic()).then_some(token)
}

/// The error challenge for a refused OAuth login (RFC 7628 section 3.2.2; Google's
/// XOAUTH2 sends the same JSON), base64, for a `+ ` line.
pub fn oauth_error_challenge() -> String {
    base64::engine::general_purpose::STANDARD
        .encode(br#"{"status":"invalid_token","schemes":"bearer"}"#)
}

/// Whether a line is what a client sends to acknowledge an error challenge: an empty
/// response, or OAUTHBEARER's single ^A (`AQ==`).
pub fn is_oauth_ack(response: &[u8]) -> bool {
    matches!(response, b"" | b"=" | b"AQ==")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_responses() {
        let p = decode_plain(b"AGFubkBleGFtcGxlLmNvbQBzZWNyZXQ=").unwrap();
        assert_eq!(
            (&p.authzid[..], &p.authcid[..], &p.password[..]),
            (&b""[..], &b"ann@example.com"[..], &b"secret"[..])
        );
        assert!(!p.other_authzid());
        assert!(!format!("{p:?}").contains("secret"));
        let other = base64::engine::general_purpose::STANDARD.encode(b"boss\0ann\0pw");
        assert!(decode_plain(other.as_bytes()).unwrap().other_authzid());
        assert_eq!(decode_plain(b"*"), Err(SaslError::Cancelled));
        assert_eq!(decode_plain(b"=="), Err(SaslError::Base64));
        assert_eq!(decode_plain(b"="), Err(SaslError::Malformed));
        let two = base64::engine::general_purpose::STANDARD.encode(b"ann\0pw");
        assert_eq!(decode_plain(two.as_bytes()), Err(SaslError::Malformed));
        let four = base64::engine::general_purpose::STANDARD.encode(b"a\0b\0c\0d");
        assert_eq!(decode_plain(four.as_bytes()), Err(SaslError::Malformed));
    }

    fn b64(raw: &[u8]) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .encode(raw)
            .into_bytes()
    }

    #[test]
    fn xoauth2_responses() {
        let raw = b"user=ann@example.com\x01auth=Bearer ya29.tok-en_1\x01\x01";
        let o = decode_oauth(OAuthMechanism::XOAuth2, &b64(raw)).unwrap();
        assert_eq!(o.user, b"ann@example.com");
        assert_eq!(o.token, b"ya29.tok-en_1");
        assert_eq!(o.message, raw);
        assert_eq!(o.response().into_bytes(), b64(raw), "replayed as sent");
        assert!(
            !format!("{o:?}").contains("ya29"),
            "the token stays out of Debug"
        );
        let lower = b"user=ann\x01auth=bearer  t\x01\x01";
        assert_eq!(
            decode_oauth(OAuthMechanism::XOAuth2, &b64(lower))
                .unwrap()
                .token,
            b"t"
        );
        for bad in [
            &b"user=ann\x01auth=Bearer t\x01"[..],
            b"user=ann\x01auth=Bearer t\x01\x01x",
            b"auth=Bearer t\x01\x01",
            b"user=\x01auth=Bearer t\x01\x01",
            b"user=ann\x01auth=Basic t\x01\x01",
            b"user=ann\x01auth=Bearert\x01\x01",
            b"user=ann\x01auth=Bearer \x01\x01",
            b"user=ann\x01auth=Bearer a b\x01\x01",
            b"user=ann\x01user=bob\x01auth=Bearer t\x01\x01",
            b"user=ann\x01auth=Bearer t\x01auth=Bearer u\x01\x01",
            b"",
        ] {
            assert!(
                decode_oauth(OAuthMechanism::XOAuth2, &b64(bad)).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            decode_oauth(OAuthMechanism::XOAuth2, b"*"),
            Err(SaslError::Cancelled)
        );
        let long = [
            b"user=a\x01auth=Bearer ".to_vec(),
            vec![b'x'; MAX_TOKEN + 1],
            b"\x01\x01".to_vec(),
        ]
        .concat();
        assert_eq!(
            decode_oauth(OAuthMechanism::XOAuth2, &b64(&long)),
            Err(SaslError::TokenTooLong)
        );
    }

    #[test]
    fn oauthbearer_responses() {
        // RFC 7628 section 4.1's example.
        let raw = b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01";
        let o = decode_oauth(OAuthMechanism::OAuthBearer, &b64(raw)).unwrap();
        assert_eq!(o.user, b"user@example.com");
        assert_eq!(o.token, b"vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==");
        let escaped = b"n,a=we=2Cird=3Dname,\x01auth=Bearer t\x01\x01";
        let o = decode_oauth(OAuthMechanism::OAuthBearer, &b64(escaped)).unwrap();
        assert_eq!(o.user, b"we,ird=name");
        assert_eq!(
            decode_oauth(
                OAuthMechanism::OAuthBearer,
                &b64(b"n,,\x01auth=Bearer t\x01\x01")
            ),
            Err(SaslError::NoOAuthUser)
        );
        for bad in [
            &b"a=ann,\x01auth=Bearer t\x01\x01"[..],
            b"p=tls-unique,a=ann,\x01auth=Bearer t\x01\x01",
            b"n,a=ann,auth=Bearer t\x01\x01",
            b"n,a=a=2Xb,\x01auth=Bearer t\x01\x01",
            b"n,a=ann,\x01host=x\x01\x01",
            b"n,a=ann,\x01auth=Bearer t\x01",
            b"\x01",
        ] {
            assert!(
                decode_oauth(OAuthMechanism::OAuthBearer, &b64(bad)).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn the_user_is_replaced_and_nothing_else() {
        let raw = b"user=annie@example.com\x01auth=Bearer t0k\x01\x01";
        let o = decode_oauth(OAuthMechanism::XOAuth2, &b64(raw)).unwrap();
        let again = decode_oauth(
            OAuthMechanism::XOAuth2,
            o.response_as(b"ann@example.com").as_bytes(),
        )
        .unwrap();
        assert_eq!(again.user, b"ann@example.com");
        assert_eq!(again.token, b"t0k");
        assert_eq!(o.response_as(b"annie@example.com"), o.response());
        let raw = b"n,a=annie@example.com,\x01host=h\x01port=143\x01auth=Bearer t0k\x01\x01";
        let o = decode_oauth(OAuthMechanism::OAuthBearer, &b64(raw)).unwrap();
        let line = o.response_as(b"we,ird=ann");
        let again = decode_oauth(OAuthMechanism::OAuthBearer, line.as_bytes()).unwrap();
        assert_eq!(again.user, b"we,ird=ann");
        assert_eq!(again.token, b"t0k");
        assert_eq!(
            again.message,
            b"n,a=we=2Cird=3Dann,\x01host=h\x01port=143\x01auth=Bearer t0k\x01\x01"
        );
    }

    #[test]
    fn error_challenge_and_acknowledgement() {
        let json = base64::engine::general_purpose::STANDARD
            .decode(oauth_error_challenge())
            .unwrap();
        assert!(String::from_utf8(json)
            .unwrap()
            .contains("\"status\":\"invalid_token\""));
        assert!(is_oauth_ack(b""));
        assert!(is_oauth_ack(b"AQ=="));
        assert!(!is_oauth_ack(b"*"));
        assert_eq!(
            OAuthMechanism::from_name(b"xoauth2"),
            Some(OAuthMechanism::XOAuth2)
        );
        assert_eq!(
            OAuthMechanism::from_name(b"OAuthBearer").map(OAuthMechanism::method),
            Some("oauthbearer")
        );
        assert_eq!(OAuthMechanism::from_name(b"PLAIN"), None);
    }
}
