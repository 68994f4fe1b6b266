//! Password hashes: argon2id in PHC string form with the crate's default (OWASP) cost.
//! Both functions are CPU-heavy on purpose; async callers run them on the blocking pool.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// argon2 refused (a password over its length limit, say).
    #[error("cannot hash the password: {0}")]
    Argon2(argon2::password_hash::Error),
    /// The blocking task running the hash died.
    #[error("hashing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Hashes `password` with a fresh random salt.
pub fn hash(password: &[u8]) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(HashError::Argon2)
}

/// Whether `password` matches the PHC string `hash`. A malformed hash never matches.
pub fn verify(hash: &str, password: &[u8]) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default().verify_password(password, &parsed).is_ok(),
        Err(_) => false,
    }
}

/// [`hash`] on the blocking pool.
pub async fn hash_async(password: Vec<u8>) -> Result<String, HashError> {
    tokio::task::spawn_blocking(move || hash(&password)).await?
}

/// [`verify`] on the blocking pool.
pub async fn verify_async(hash: String, password: Vec<u8>) -> bool {
    tokio::task::spawn_blocking(move || verify(&hash, &password))
        .await
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ() {
        let a = hash("s3cret+ü".as_bytes()).unwrap();
        let b = hash("s3cret+ü".as_bytes()).unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "salts differ");
        assert!(verify(&a, "s3cret+ü".as_bytes()));
        assert!(!verify(&a, "s3cret ü".as_bytes()));
        assert!(!verify("not a hash", b"x"));
    }
}
