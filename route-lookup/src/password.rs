//! Password hashes: argon2id in PHC string form with the crate's default (OWASP) cost,
//! computed in caller-owned memory so that a worker reuses one block buffer for every
//! check instead of allocating ~19 MiB each time (see [`crate::password_checks`], which
//! bounds how many run at once).

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// The most argon2 memory one check may use, in KiB blocks (64 MiB). Our own hashes use
/// 19 MiB; a stored hash asking for more is refused rather than allowed to grow a worker's
/// buffer without bound.
pub const MAX_BLOCKS: usize = 64 * 1024;

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// argon2 refused (a password over its length limit, say).
    #[error("cannot hash the password: {0}")]
    Argon2(#[from] argon2::password_hash::Error),
    /// Too many password checks are running or waiting; try again shortly.
    #[error("password checks are busy")]
    Busy,
}

impl From<argon2::Error> for HashError {
    fn from(e: argon2::Error) -> Self {
        Self::Argon2(e.into())
    }
}

/// Why a stored hash could not be checked (the password never matches it).
#[derive(Debug, thiserror::Error)]
pub enum BadHash {
    /// Not a PHC string argon2 understands.
    #[error("unusable password hash: {0}")]
    Format(#[from] argon2::password_hash::Error),
    /// Its memory cost is over [`MAX_BLOCKS`].
    #[error("password hash asks for {0} KiB of memory, over the {MAX_BLOCKS} KiB bound")]
    TooCostly(usize),
}

impl From<argon2::Error> for BadHash {
    fn from(e: argon2::Error) -> Self {
        Self::Format(e.into())
    }
}

/// Grows `memory` to `blocks` (never shrinks it: the buffer is reused) and returns the
/// slice argon2 should fill.
fn blocks(memory: &mut Vec<Block>, blocks: usize) -> &mut [Block] {
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    &mut memory[..blocks]
}

/// Hashes `password` with a fresh random salt and the default cost, in `memory`.
pub fn hash_in(password: &[u8], memory: &mut Vec<Block>) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    let params = Params::default();
    let mut raw_salt = [0u8; 64];
    let raw_salt = salt.decode_b64(&mut raw_salt)?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(
            password,
            raw_salt,
            &mut out,
            blocks(memory, params.block_count()),
        )?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out)?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `hash`, computed in `memory`. The comparison
/// is constant-time ([`Output`]'s equality).
pub fn verify_in(hash: &str, password: &[u8], memory: &mut Vec<Block>) -> Result<bool, BadHash> {
    let parsed = PasswordHash::new(hash)?;
    let algorithm = Algorithm::try_from(parsed.algorithm)?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v)?,
        None => Version::default(),
    };
    let params = Params::try_from(&parsed)?;
    if params.block_count() > MAX_BLOCKS {
        return Err(BadHash::TooCostly(params.block_count()));
    }
    let expected = parsed.hash.ok_or(argon2::password_hash::Error::Password)?;
    let salt = parsed
        .salt
        .ok_or(argon2::password_hash::Error::SaltInvalid(
            argon2::password_hash::errors::InvalidValue::Malformed,
        ))?;
    let mut raw_salt = [0u8; 64];
    let raw_salt = salt.decode_b64(&mut raw_salt)?;
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params.clone()).hash_password_into_with_memory(
        password,
        raw_salt,
        &mut out,
        blocks(memory, params.block_count()),
    )?;
    Ok(Output::new(&out)? == expected)
}

/// [`hash_in`] with a buffer of its own (tests, tools).
pub fn hash(password: &[u8]) -> Result<String, HashError> {
    hash_in(password, &mut Vec::new())
}

/// [`verify_in`] with a buffer of its own; an unusable hash never matches.
pub fn verify(hash: &str, password: &[u8]) -> bool {
    verify_in(hash, password, &mut Vec::new()).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    #[test]
    fn hashes_verify_and_differ() {
        let a = hash("s3cret+ü".as_bytes()).unwrap();
        let b = hash("s3cret+ü".as_bytes()).unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "salts differ");
        assert!(verify(&a, "s3cret+ü".as_bytes()));
        assert!(!verify(&a, "s3cret ü".as_bytes()));
        assert!(!verify("not a hash", b"x"));
    }

    #[test]
    fn agrees_with_the_crates_own_hasher_both_ways() {
        // Hashes made before this module reused memory (by PasswordHasher) must verify,
        // and ours must verify with the crate's verifier.
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default()
            .hash_password(b"pw", &salt)
            .unwrap()
            .to_string();
        let mut memory = Vec::new();
        assert!(verify_in(&theirs, b"pw", &mut memory).unwrap());
        assert!(!verify_in(&theirs, b"pW", &mut memory).unwrap());
        let ours = hash_in(b"pw", &mut memory).unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password(b"pw", &parsed).is_ok());
        // Other parameters and argon2i/argon2d hashes verify too.
        let other = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x10,
            Params::new(64, 1, 1, Some(16)).unwrap(),
        )
        .hash_password(b"pw", &salt)
        .unwrap()
        .to_string();
        assert!(verify_in(&other, b"pw", &mut memory).unwrap());
    }

    #[test]
    fn the_buffer_is_reused_not_regrown() {
        let mut memory = Vec::new();
        let h = hash_in(b"pw", &mut memory).unwrap();
        let (len, ptr) = (memory.len(), memory.as_ptr());
        assert_eq!(len, Params::default().block_count());
        for _ in 0..3 {
            assert!(verify_in(&h, b"pw", &mut memory).unwrap());
        }
        assert_eq!((memory.len(), memory.as_ptr()), (len, ptr));
    }

    #[test]
    fn costly_and_malformed_hashes_are_refused_without_hashing() {
        let costly = "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAA";
        let mut memory = Vec::new();
        assert!(matches!(
            verify_in(costly, b"pw", &mut memory),
            Err(BadHash::TooCostly(4_194_304))
        ));
        assert!(memory.is_empty(), "nothing was allocated");
        for bad in [
            "",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0",
            "$scrypt$ln=1,r=1,p=1$c2FsdA$AAAA",
        ] {
            assert!(verify_in(bad, b"pw", &mut memory).is_err(), "{bad}");
        }
    }
}
