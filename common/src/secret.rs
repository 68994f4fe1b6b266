//! Secrets given as files (`--admin-token-file`, `--lookup-secret-file`, ...) beside the
//! plain flags, so that a token need not sit on a command line (visible in `ps`) or in an
//! environment: compose secrets, systemd credentials and 0600 files hold them instead.
//!
//! [`memcached_credentials`] reads the cache credentials (`--memcached-auth-file`) the same
//! way. A secret file holds the secret on its first line; a trailing newline (and CR) is not
//! part of it. The file is read once, at start.

use std::path::Path;

/// The largest secret file read.
pub const MAX_SECRET_FILE: u64 = 64 * 1024;

/// Why a secret could not be had; the message names the flag and the file, never the
/// secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Both the plain flag and its file twin were given.
    #[error("{flag} and {flag}-file exclude each other")]
    Both {
        /// The plain flag, e.g. `--admin-token`.
        flag: &'static str,
    },
    /// The file could not be read.
    #[error("{flag}-file {path}: cannot read it")]
    Read {
        /// The plain flag.
        flag: &'static str,
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is over [`MAX_SECRET_FILE`], or its first line is empty or not UTF-8.
    #[error("{flag}-file {path}: {why}")]
    Content {
        /// The plain flag.
        flag: &'static str,
        /// The file.
        path: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The plain flag was given an empty value.
    #[error("{flag} is empty")]
    Empty {
        /// The plain flag.
        flag: &'static str,
    },
    /// A credentials file whose first line is no usable `user:password`.
    #[error("{flag}-file {path}: {why}")]
    Credentials {
        /// The plain flag's name, e.g. `--memcached-auth`.
        flag: &'static str,
        /// The file.
        path: String,
        /// What is wrong with its first line.
        #[source]
        why: codec::memcache::CredentialsError,
    },
}

/// Compares secrets without an early exit that would time the matching prefix.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl From<SecretError> for crate::exit::ConfigError {
    fn from(e: SecretError) -> Self {
        Self(crate::exit::chain(&e))
    }
}

/// The secret from `inline` (the flag `flag`) or from `file` (the flag `flag-file`): at
/// most one of them, never empty. `None` when neither was given.
pub fn inline_or_file(
    flag: &'static str,
    inline: Option<&str>,
    file: Option<&Path>,
) -> Result<Option<String>, SecretError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(SecretError::Both { flag }),
        (Some(s), None) if s.trim().is_empty() => Err(SecretError::Empty { flag }),
        (Some(s), None) => Ok(Some(s.to_string())),
        (None, Some(path)) => read(flag, path).map(Some),
        (None, None) => Ok(None),
    }
}

/// The cache credentials in `path` (`--memcached-auth-file`): its first line,
/// `user:password` in memcached's `-Y` format, checked so that a pair memcached could
/// never accept stops the start instead of failing every connection later.
pub fn memcached_credentials(path: &Path) -> Result<codec::memcache::Credentials, SecretError> {
    const FLAG: &str = "--memcached-auth";
    let line = read(FLAG, path)?;
    codec::memcache::Credentials::parse_line(line.as_bytes()).map_err(|why| {
        SecretError::Credentials {
            flag: FLAG,
            path: path.display().to_string(),
            why,
        }
    })
}

fn read(flag: &'static str, path: &Path) -> Result<String, SecretError> {
    let shown = path.display().to_string();
    let read_err = |source| SecretError::Read {
        flag,
        path: shown.clone(),
        source,
    };
    let content_err = |why| SecretError::Content {
        flag,
        path: shown.clone(),
        why,
    };
    let len = std::fs::metadata(path).map_err(read_err)?.len();
    if len > MAX_SECRET_FILE {
        return Err(content_err("larger than 64 KiB; not a secret file"));
    }
    let bytes = std::fs::read(path).map_err(read_err)?;
    let text = String::from_utf8(bytes).map_err(|_| content_err("not UTF-8"))?;
    let first = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if first.trim().is_empty() {
        return Err(content_err("its first line is empty"));
    }
    Ok(first.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A scratch file, removed on drop.
    struct Scratch(PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn file(content: &[u8]) -> Scratch {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "secret-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, content).unwrap();
        Scratch(path)
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }

    #[test]
    fn the_first_line_without_its_newline_is_the_secret() {
        for (content, want) in [
            (&b"s3cret\n"[..], "s3cret"),
            (b"s3cret\r\n", "s3cret"),
            (b"s3cret", "s3cret"),
            (b"with space \nsecond line ignored\n", "with space "),
        ] {
            let f = file(content);
            assert_eq!(
                inline_or_file("--admin-token", None, Some(&f.0)).unwrap(),
                Some(want.to_string())
            );
        }
    }

    #[test]
    fn errors_name_the_flag_and_file_never_the_secret() {
        let f = file(b"tok");
        let e = inline_or_file("--admin-token", Some("tok"), Some(&f.0)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--admin-token and --admin-token-file exclude each other"
        );
        for content in [&b""[..], b"\n", b"  \nx\n", b"\xff\xfe"] {
            let f = file(content);
            let e = inline_or_file("--lookup-secret", None, Some(&f.0)).unwrap_err();
            assert!(e.to_string().starts_with("--lookup-secret-file "), "{e}");
        }
        let big = file(&vec![b'a'; 70 * 1024]);
        let e = inline_or_file("--admin-token", None, Some(&big.0)).unwrap_err();
        assert!(e.to_string().contains("larger than 64 KiB"), "{e}");
        let e =
            inline_or_file("--admin-token", None, Some(Path::new("/nonexistent/t"))).unwrap_err();
        assert_eq!(
            crate::exit::chain(&e),
            "--admin-token-file /nonexistent/t: cannot read it: No such file or directory (os error 2)"
        );
        assert!(matches!(
            inline_or_file("--admin-token", Some(" "), None),
            Err(SecretError::Empty { .. })
        ));
        assert_eq!(inline_or_file("--admin-token", None, None).unwrap(), None);
    }

    #[test]
    fn memcached_credentials_are_the_first_line() {
        let f = file(b"proxy:s3cr:et\nignored:line\n");
        let c = memcached_credentials(&f.0).unwrap();
        assert!(c.matches(b"proxy", b"s3cr:et"));
        for (content, why) in [
            (&b"proxy s3cret\n"[..], "not user:password (no ':')"),
            (b"proxy:\n", "the password is empty"),
            (b"", "its first line is empty"),
        ] {
            let f = file(content);
            let e = memcached_credentials(&f.0).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("--memcached-auth-file {}: {why}", f.0.display())
            );
        }
        let f = file(b"proxy:pass word\n");
        let e = crate::exit::chain(&memcached_credentials(&f.0).unwrap_err());
        assert!(!e.contains("pass word"), "{e}");
    }
}
