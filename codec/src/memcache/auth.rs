//! memcached's ASCII authentication (`memcached -Y FILE`, 1.5.15 and later): the server's
//! file of `user:password` lines, and the client's authenticating `set`.
//!
//! A connection to such a server is unauthenticated until it sends a `set` whose data block
//! is `user password`; the server ignores that `set`'s key, flags and exptime, answers
//! `STORED` when the pair is in its file and `CLIENT_ERROR authentication failure` when it
//! is not, and answers every other command with `CLIENT_ERROR unauthenticated`.
//!
//! The rules here are memcached 1.6's (`authfile.c`, `proto_text.c`): at most 8 entries of
//! at most 254 bytes, the user up to the first `:`, and data tokens split on single spaces,
//! so a user or password with a space or a control byte can never authenticate and is
//! refused when the file is read rather than failing every login later.

use thiserror::Error;

use super::request::{Request, StoreCommand};
use super::response::Response;

/// Most entries memcached reads from its file (`MAX_ENTRIES`); it ignores the rest.
pub const MAX_AUTH_ENTRIES: usize = 8;

/// Longest entry memcached reads whole (`fgets` into 256 bytes, newline included).
pub const MAX_AUTH_LINE: usize = 254;

/// The key of the authenticating `set`; an authenticating server ignores it.
const AUTH_KEY: &[u8] = b"auth";

/// The exptime of the authenticating `set`. A server without authentication stores it like
/// any other `set`, and an item with a negative exptime is expired at once: the credentials
/// are never readable from a node that does not check them.
const AUTH_EXPTIME: i64 = -1;

/// One `user:password` pair. Its `Debug` form never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    user: Vec<u8>,
    password: Vec<u8>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &String::from_utf8_lossy(&self.user))
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Why a `user:password` entry is refused; never quotes the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum CredentialsError {
    /// No `:` between user and password.
    #[error("not user:password (no ':')")]
    NoColon,
    /// Nothing before the `:`.
    #[error("the user name is empty")]
    EmptyUser,
    /// Nothing after the `:`.
    #[error("the password is empty")]
    EmptyPassword,
    /// A space or control byte, which memcached's authentication can never match.
    #[error("a space or control character in the user name or password (memcached could never match it)")]
    Unsendable,
    /// Over [`MAX_AUTH_LINE`] bytes.
    #[error("longer than {MAX_AUTH_LINE} bytes (memcached reads no more of an entry)")]
    TooLong,
}

/// Why an auth file is refused; names the line, never its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum AuthFileError {
    /// No entry at all.
    #[error("no user:password line")]
    Empty,
    /// A line that is no usable entry.
    #[error("line {line}: {why}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        why: CredentialsError,
    },
    /// More entries than memcached reads.
    #[error(
        "more than {MAX_AUTH_ENTRIES} entries (memcached reads only the first {MAX_AUTH_ENTRIES})"
    )]
    TooMany,
}

/// A byte that may appear in a user name or password: visible ASCII or any non-ASCII byte.
fn sendable(b: u8) -> bool {
    b > b' ' && b != 0x7f
}

/// Equality whose time depends on the lengths only, not on where the bytes differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Credentials {
    /// A pair, checked as [`Credentials::parse_line`] checks the two halves.
    pub fn new(user: &[u8], password: &[u8]) -> Result<Self, CredentialsError> {
        if user.len() + 1 + password.len() > MAX_AUTH_LINE {
            return Err(CredentialsError::TooLong);
        }
        if user.is_empty() {
            return Err(CredentialsError::EmptyUser);
        }
        if password.is_empty() {
            return Err(CredentialsError::EmptyPassword);
        }
        if !user.iter().chain(password).all(|&b| sendable(b)) {
            return Err(CredentialsError::Unsendable);
        }
        Ok(Self {
            user: user.to_vec(),
            password: password.to_vec(),
        })
    }

    /// One line of an auth file, `user:password` (a trailing CR is dropped): the user is
    /// everything before the first `:`, so a password may contain `:`.
    pub fn parse_line(line: &[u8]) -> Result<Self, CredentialsError> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > MAX_AUTH_LINE {
            return Err(CredentialsError::TooLong);
        }
        let colon = memchr::memchr(b':', line).ok_or(CredentialsError::NoColon)?;
        Self::new(&line[..colon], &line[colon + 1..])
    }

    /// The user name.
    pub fn user(&self) -> &[u8] {
        &self.user
    }

    /// Whether `user` and `password` are this pair. Both are always compared, each in a
    /// time that does not depend on where a byte differs.
    pub fn matches(&self, user: &[u8], password: &[u8]) -> bool {
        same(&self.user, user) & same(&self.password, password)
    }

    /// Appends the authenticating `set` (`set auth 0 -1 <n>\r\nuser password\r\n`).
    pub fn encode_request(&self, out: &mut Vec<u8>) {
        let mut data = Vec::with_capacity(self.user.len() + 1 + self.password.len());
        data.extend_from_slice(&self.user);
        data.push(b' ');
        data.extend_from_slice(&self.password);
        Request::Store {
            command: StoreCommand::Set,
            key: AUTH_KEY,
            flags: 0,
            exptime: AUTH_EXPTIME,
            data: &data,
            cas_unique: 0,
            noreply: false,
        }
        .encode(out);
    }
}

/// The entries of an auth file: one `user:password` per line, lines ending in LF (a CR
/// before it is dropped), no blank lines (memcached refuses them too), at most
/// [`MAX_AUTH_ENTRIES`].
pub fn parse_auth_file(content: &[u8]) -> Result<Vec<Credentials>, AuthFileError> {
    let content = content.strip_suffix(b"\n").unwrap_or(content);
    if content.is_empty() {
        return Err(AuthFileError::Empty);
    }
    let mut entries = Vec::new();
    for (i, line) in content.split(|&b| b == b'\n').enumerate() {
        if entries.len() == MAX_AUTH_ENTRIES {
            return Err(AuthFileError::TooMany);
        }
        let entry = Credentials::parse_line(line)
            .map_err(|why| AuthFileError::Line { line: i + 1, why })?;
        entries.push(entry);
    }
    Ok(entries)
}

/// What a server answered to the authenticating `set`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthReply {
    /// `STORED`: authenticated (or a server that does not authenticate stored it).
    Accepted,
    /// `CLIENT_ERROR authentication failure`: the pair is not in the server's file.
    WrongCredentials,
    /// Anything else: no memcached-style authentication answer.
    Other,
}

/// Classifies the reply to [`Credentials::encode_request`].
pub fn auth_reply(response: &Response<'_>) -> AuthReply {
    match response {
        Response::Stored => AuthReply::Accepted,
        Response::ClientError(b"authentication failure") => AuthReply::WrongCredentials,
        _ => AuthReply::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse_request, parse_response, Limits};
    use super::*;

    #[test]
    fn the_authenticating_set_is_memcacheds() {
        let c = Credentials::parse_line(b"alice:s3cr:et\r").unwrap();
        assert_eq!(c.user(), b"alice");
        let mut out = Vec::new();
        c.encode_request(&mut out);
        assert_eq!(out, b"set auth 0 -1 13\r\nalice s3cr:et\r\n");
        // Our own server parser reads it as the plain set a non-authenticating node
        // stores: already expired, so nothing readable is left behind.
        let parsed = parse_request(&out, &Limits::default()).unwrap();
        assert_eq!(parsed.consumed, out.len());
        match parsed.request {
            Request::Store {
                command: StoreCommand::Set,
                key,
                exptime,
                data,
                ..
            } => {
                assert_eq!(
                    (key, exptime, data),
                    (&b"auth"[..], -1, &b"alice s3cr:et"[..])
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn entries_that_could_never_authenticate_are_refused() {
        use CredentialsError::*;
        for (line, want) in [
            (&b"alice"[..], NoColon),
            (b"", NoColon),
            (b":pw", EmptyUser),
            (b"alice:", EmptyPassword),
            (b"alice:pw two", Unsendable),
            (b"al ice:pw", Unsendable),
            (b"alice:pw\ttab", Unsendable),
            (b"alice:pw\x00", Unsendable),
            (b"alice:pw\x7f", Unsendable),
        ] {
            assert_eq!(Credentials::parse_line(line), Err(want), "{line:?}");
        }
        let long = [b"u:".as_slice(), &[b'p'; MAX_AUTH_LINE - 1]].concat();
        assert_eq!(Credentials::parse_line(&long), Err(TooLong));
        assert!(Credentials::parse_line(&long[..MAX_AUTH_LINE]).is_ok());
        assert!(Credentials::parse_line("jürgen:pässwort".as_bytes()).is_ok());
    }

    #[test]
    fn auth_files_name_the_bad_line_never_its_content() {
        let two = parse_auth_file(b"alice:one\nbob:two\r\n").unwrap();
        assert_eq!(two.len(), 2);
        assert!(two[1].matches(b"bob", b"two"));
        assert_eq!(parse_auth_file(b""), Err(AuthFileError::Empty));
        assert_eq!(parse_auth_file(b"\n"), Err(AuthFileError::Empty));
        let e = parse_auth_file(b"alice:one\n\nbob:two\n").unwrap_err();
        assert_eq!(e.to_string(), "line 2: not user:password (no ':')");
        let e = parse_auth_file(b"alice:one\nbob:secret with space\n").unwrap_err();
        assert!(e.to_string().starts_with("line 2: a space"), "{e}");
        assert!(!e.to_string().contains("secret"));
        let nine: Vec<u8> = (0..9)
            .flat_map(|i| format!("u{i}:p\n").into_bytes())
            .collect();
        assert_eq!(parse_auth_file(&nine), Err(AuthFileError::TooMany));
        assert_eq!(parse_auth_file(&nine[..nine.len() - 5]).unwrap().len(), 8);
    }

    #[test]
    fn matching_is_exact() {
        let c = Credentials::new(b"alice", b"s3cret").unwrap();
        assert!(c.matches(b"alice", b"s3cret"));
        for (u, p) in [
            (&b"alice"[..], &b"s3cre"[..]),
            (b"alice", b"s3cret!"),
            (b"ALICE", b"s3cret"),
            (b"alice", b"S3cret"),
            (b"", b""),
        ] {
            assert!(!c.matches(u, p), "{u:?} {p:?}");
        }
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn replies_are_classified() {
        for (wire, want) in [
            (&b"STORED\r\n"[..], AuthReply::Accepted),
            (
                b"CLIENT_ERROR authentication failure\r\n",
                AuthReply::WrongCredentials,
            ),
            (
                b"CLIENT_ERROR bad authentication token format\r\n",
                AuthReply::Other,
            ),
            (b"ERROR\r\n", AuthReply::Other),
            (b"NOT_STORED\r\n", AuthReply::Other),
        ] {
            let (response, _) = parse_response(wire).unwrap();
            assert_eq!(auth_reply(&response), want, "{}", wire.escape_ascii());
        }
    }
}
