//! memcached's ASCII authentication (`memcached -Y FILE`) on the server side: the file of
//! `user:password` entries, read at start and again at every SIGHUP, and the dialogue of a
//! connection that has not authenticated yet ([`dialogue`]).
//!
//! The file's format and bounds are memcached's (see [`codec::memcache::parse_auth_file`]);
//! it is refused, naming the file and the line but never a secret, when it cannot be read,
//! is over [`MAX_AUTH_FILE`], or has no usable entry. A reload that fails keeps the entries
//! in use, as memcached does.

pub mod dialogue;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use codec::memcache::{parse_auth_file, AuthFileError, Credentials};

/// The largest auth file read (memcached reads at most 8 entries of 254 bytes; anything
/// much larger is the wrong file).
pub const MAX_AUTH_FILE: u64 = 64 * 1024;

/// Why the auth file was refused. Names the file, never its content.
#[derive(Debug, thiserror::Error)]
pub enum AuthFileLoadError {
    /// The file could not be opened or read.
    #[error("--auth-file {path}: cannot read it")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Over [`MAX_AUTH_FILE`].
    #[error("--auth-file {path}: larger than 64 KiB; not an auth file")]
    TooLarge {
        /// The file.
        path: String,
    },
    /// Empty, or a line that is no usable `user:password` entry.
    #[error("--auth-file {path}: {why}")]
    Content {
        /// The file.
        path: String,
        /// What is wrong with it.
        #[source]
        why: AuthFileError,
    },
}

impl From<AuthFileLoadError> for common::exit::ConfigError {
    fn from(e: AuthFileLoadError) -> Self {
        Self(common::exit::chain(&e))
    }
}

/// The entries in force and where they come from.
pub struct Auth {
    path: PathBuf,
    entries: RwLock<Arc<Vec<Credentials>>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("path", &self.path)
            .field("entries", &self.entries().len())
            .finish()
    }
}

impl Auth {
    /// Reads `path`; refuses an unreadable, oversized, empty or malformed file.
    pub fn load(path: &Path) -> Result<Self, AuthFileLoadError> {
        let entries = read(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            entries: RwLock::new(Arc::new(entries)),
        })
    }

    /// Reads the file again; on success its entries replace the ones in force (connections
    /// already authenticated stay so), on failure nothing changes. Returns the entry count.
    pub fn reload(&self) -> Result<usize, AuthFileLoadError> {
        let entries = read(&self.path)?;
        let count = entries.len();
        *self
            .entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(entries);
        Ok(count)
    }

    fn entries(&self) -> Arc<Vec<Credentials>> {
        // Only ever replaced whole: a panic elsewhere cannot leave it half-written.
        self.entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Whether `user password` is an entry. Every entry is compared, so the time taken does
    /// not tell which one (or how much of one) matched.
    pub fn check(&self, user: &[u8], password: &[u8]) -> bool {
        self.entries()
            .iter()
            .fold(false, |found, e| found | e.matches(user, password))
    }

    /// The file, for `stats settings` and logs.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn read(path: &Path) -> Result<Vec<Credentials>, AuthFileLoadError> {
    let shown = || path.display().to_string();
    let read_err = |source| AuthFileLoadError::Read {
        path: shown(),
        source,
    };
    let mut content = Vec::new();
    // Bounded however large the file is, or grows while it is read.
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_AUTH_FILE + 1).read_to_end(&mut content))
        .map_err(read_err)?;
    if content.len() as u64 > MAX_AUTH_FILE {
        return Err(AuthFileLoadError::TooLarge { path: shown() });
    }
    parse_auth_file(&content).map_err(|why| AuthFileLoadError::Content { path: shown(), why })
}

#[cfg(test)]
mod tests {
    use super::*;

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
            "cache-node-auth-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, content).unwrap();
        Scratch(path)
    }

    #[test]
    fn refusals_name_the_file_and_line_never_a_secret() {
        let missing = Auth::load(Path::new("/nonexistent/auth")).unwrap_err();
        assert_eq!(
            common::exit::chain(&missing),
            "--auth-file /nonexistent/auth: cannot read it: No such file or directory (os error 2)"
        );
        let empty = file(b"");
        let e = Auth::load(&empty.0).unwrap_err().to_string();
        assert_eq!(
            e,
            format!("--auth-file {}: no user:password line", empty.0.display())
        );
        let bad = file(b"alice:hunter2\nbob hunter3\n");
        let e = common::exit::chain(&Auth::load(&bad.0).unwrap_err());
        assert_eq!(
            e,
            format!(
                "--auth-file {}: line 2: not user:password (no ':')",
                bad.0.display()
            )
        );
        assert!(!e.contains("hunter"));
        let big = file(&vec![b'a'; 65 * 1024]);
        assert!(matches!(
            Auth::load(&big.0),
            Err(AuthFileLoadError::TooLarge { .. })
        ));
        let auth = Auth::load(&file(b"alice:hunter2\n").0).unwrap();
        assert!(!format!("{auth:?}").contains("hunter2"));
    }

    #[test]
    fn a_reload_replaces_the_entries_and_a_failed_one_keeps_them() {
        let f = file(b"alice:one\n");
        let auth = Auth::load(&f.0).unwrap();
        assert!(auth.check(b"alice", b"one"));
        std::fs::write(&f.0, b"alice:two\nbob:three\n").unwrap();
        assert_eq!(auth.reload().unwrap(), 2);
        assert!(!auth.check(b"alice", b"one"));
        assert!(auth.check(b"alice", b"two") && auth.check(b"bob", b"three"));
        std::fs::write(&f.0, b"garbage\n").unwrap();
        assert!(auth.reload().is_err());
        assert!(auth.check(b"bob", b"three"), "the entries in force stay");
        std::fs::remove_file(&f.0).unwrap();
        assert!(matches!(auth.reload(), Err(AuthFileLoadError::Read { .. })));
        assert!(auth.check(b"alice", b"two"));
    }
}
