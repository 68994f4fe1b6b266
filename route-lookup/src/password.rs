//! Password hashes: argon2id in PHC string form with the crate's default (OWASP) cost.
//! Both functions are CPU-heavy on purpose; async callers run them on the blocking pool.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// Hashes `password` with a fresh random salt.
pub fn hash(password: &[u8]) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` matches the PHC string `hash`. A malformed hash never matches.
pub fn verify(hash: &str, password: &[u8]) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default().verify_password(password, &parsed).is_ok(),
        Err(_) => false,
    }
}

/// [`hash`] on the blocking pool.
pub async fn hash_async(password: Vec<u8>) -> Result<String, String> {
    tokio::task::spawn_blocking(move || hash(&password))
        .await
        .map_err(|e| format!("hashing task failed: {e}"))?
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
