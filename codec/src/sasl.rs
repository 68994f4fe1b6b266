//! SASL PLAIN (RFC 4616) as IMAP AUTHENTICATE and POP3 AUTH carry it: one base64 line
//! (`=` for an empty response, `*` to cancel) holding `authzid NUL authcid NUL password`.

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
}

/// Decodes one PLAIN response line.
pub fn decode_plain(response: &[u8]) -> Result<Plain, SaslError> {
    let decoded = match response {
        b"*" => return Err(SaslError::Cancelled),
        b"=" => Vec::new(),
        _ => base64::engine::general_purpose::STANDARD
            .decode(response)
            .map_err(|_| SaslError::Base64)?,
    };
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
}
