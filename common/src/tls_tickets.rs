//! TLS session tickets whose keys every process holding one secret derives alike, so a
//! ticket issued by one worker process resumes on any other, and on any proxy given the
//! same `--tls-ticket-key-file` behind one load balancer. rustls' `Ticketer` makes random
//! keys in each process: a ticket from one worker gave a full handshake on the next.
//!
//! The schedule: time is cut into periods of `rotation` seconds (period `p` = Unix time /
//! rotation, the same on every host with a sane clock). The key of period `p` is 48 bytes
//! of HKDF-SHA256 (empty salt, the secret as input) with info `"zproxy tls ticket"`, the
//! rotation and `p` (both big-endian u64): an AES-256-GCM key, then a 16-byte key name.
//! A ticket is `name ‖ nonce (12, random) ‖ sealed session ‖ tag (16)`, the name also
//! authenticated as associated data. Tickets are sealed under the current period's key
//! and opened under the current or the previous one, so a ticket lives between one and
//! two periods: what [`TicketKeys`] advertises as its lifetime (one period) always holds,
//! across a rotation too. A ticket whose name matches none of those keys is refused
//! before any decryption.
//!
//! What it costs: any past key can be derived again from the secret, so the secret, not
//! the period, bounds forward secrecy (as with nginx's `ssl_session_ticket_key`). A proxy
//! without a key file makes a new random secret at each start; a key file should be
//! replaced now and then (SIGHUP reads it again; tickets under the previous secret still
//! open for one more period).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use rustls::server::ProducesTickets;

/// How long a key seals tickets unless told otherwise: 12 hours (rustls' per-process
/// ticketer rotates every 6, keeping the last two keys).
pub const DEFAULT_ROTATION: Duration = Duration::from_secs(12 * 3600);

/// The longest rotation: a ticket's advertised lifetime is one period, and TLS 1.3 caps it
/// at 7 days (RFC 8446, 4.6.1).
pub const MAX_ROTATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The secret's length: 256 bits, given in a key file as 64 hex digits.
const SECRET_LEN: usize = 32;

const KEY_LEN: usize = 32;
const NAME_LEN: usize = 16;
const TAG_LEN: usize = 16;
const INFO: &[u8] = b"zproxy tls ticket";

/// Tickets longer than this are refused unopened (and never issued). A rustls session
/// without client certificates encodes to a few hundred bytes; the cap keeps an attacker's
/// long forgeries from costing decryption work.
const MAX_TICKET: usize = 2048;

/// Why a ticket secret could not be had. The message names the flag and the file, never
/// the secret.
#[derive(Debug, thiserror::Error)]
pub enum TicketKeyError {
    /// The key file could not be read.
    #[error("{flag} {path}: cannot read it")]
    Read {
        /// The flag that named the file, e.g. `--tls-ticket-key-file`.
        flag: &'static str,
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The key file does not hold 64 hex digits.
    #[error("{flag} {path}: {why}")]
    Content {
        /// The flag that named the file.
        flag: &'static str,
        /// The file.
        path: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The system's random number generator failed.
    #[error("cannot make a TLS ticket secret: the system random number generator failed")]
    Random,
}

impl From<TicketKeyError> for crate::exit::ConfigError {
    fn from(e: TicketKeyError) -> Self {
        Self(crate::exit::chain(&e))
    }
}

/// The secret every ticket key is derived from. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct TicketSecret([u8; SECRET_LEN]);

impl std::fmt::Debug for TicketSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TicketSecret(..)")
    }
}

impl TicketSecret {
    /// A new random secret.
    pub fn random() -> Result<Self, TicketKeyError> {
        let mut bytes = [0u8; SECRET_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| TicketKeyError::Random)?;
        Ok(Self(bytes))
    }

    /// The secret in `path` (named by `flag` in errors): 64 hex digits, as `openssl rand
    /// -hex 32` writes them; whitespace around them (the trailing newline) is ignored.
    /// Anything else is refused rather than stretched: a short passphrase would make
    /// guessable ticket keys.
    pub fn from_file(flag: &'static str, path: &Path) -> Result<Self, TicketKeyError> {
        let shown = path.display().to_string();
        let content = |why| TicketKeyError::Content {
            flag,
            path: shown.clone(),
            why,
        };
        let len = std::fs::metadata(path)
            .map_err(|source| TicketKeyError::Read {
                flag,
                path: shown.clone(),
                source,
            })?
            .len();
        // A key file is 65 bytes or so; refusing big ones early keeps a wrong path (a log
        // file) from being read whole.
        if len > 1024 {
            return Err(content("larger than 1 KiB; not a key file (64 hex digits)"));
        }
        let bytes = std::fs::read(path).map_err(|source| TicketKeyError::Read {
            flag,
            path: shown.clone(),
            source,
        })?;
        Self::from_hex(bytes.trim_ascii())
            .ok_or_else(|| content("not 64 hex digits (make one with `openssl rand -hex 32`)"))
    }

    /// The secret from exactly 64 hex digits.
    pub fn from_hex(hex: &[u8]) -> Option<Self> {
        if hex.len() != 2 * SECRET_LEN {
            return None;
        }
        let digit = |c: u8| {
            char::from(c)
                .to_digit(16)
                .and_then(|d| u8::try_from(d).ok())
        };
        let mut bytes = [0u8; SECRET_LEN];
        for (out, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
            *out = digit(pair[0])? << 4 | digit(pair[1])?;
        }
        Some(Self(bytes))
    }

    /// The secret as 64 hex digits: only for handing it to another worker process over a
    /// private pipe. Never log it.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// One period's key.
struct PeriodKey {
    name: [u8; NAME_LEN],
    key: LessSafeKey,
}

/// An HKDF output length.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

impl PeriodKey {
    fn derive(secret: &TicketSecret, rotation: u64, period: u64) -> Self {
        let mut okm = [0u8; KEY_LEN + NAME_LEN];
        hkdf::Salt::new(hkdf::HKDF_SHA256, &[])
            .extract(&secret.0)
            .expand(
                &[INFO, &rotation.to_be_bytes(), &period.to_be_bytes()],
                Len(okm.len()),
            )
            .and_then(|o| o.fill(&mut okm))
            .expect("48 bytes are well within HKDF-SHA256's output limit");
        let (key, name) = okm.split_at(KEY_LEN);
        Self {
            name: name.try_into().expect("NAME_LEN bytes"),
            key: LessSafeKey::new(
                UnboundKey::new(&AES_256_GCM, key).expect("KEY_LEN is AES-256's key length"),
            ),
        }
    }
}

/// The keys of one period: the one that seals, and every one that may open.
struct Keys {
    period: u64,
    seal: Arc<PeriodKey>,
    open: Vec<Arc<PeriodKey>>,
}

struct Secrets {
    current: TicketSecret,
    /// The secret a reload replaced, and the last period whose tickets it still opens, so
    /// tickets issued just before a new key file keep their advertised lifetime.
    retired: Option<(TicketSecret, u64)>,
}

impl Secrets {
    fn keys(&self, rotation: u64, period: u64) -> Keys {
        let seal = Arc::new(PeriodKey::derive(&self.current, rotation, period));
        let mut open = vec![Arc::clone(&seal)];
        let mut older = |secret: &TicketSecret, p: u64| {
            open.push(Arc::new(PeriodKey::derive(secret, rotation, p)));
        };
        if let Some(previous) = period.checked_sub(1) {
            older(&self.current, previous);
        }
        if let Some((secret, until)) = &self.retired {
            if period <= *until {
                older(secret, period);
                if let Some(previous) = period.checked_sub(1) {
                    older(secret, previous);
                }
            }
        }
        Keys { period, seal, open }
    }
}

struct State {
    secrets: Secrets,
    keys: Arc<Keys>,
}

/// The ticket keys of a server: rustls' [`ProducesTickets`] over the schedule above. One
/// value serves every server configuration of the process.
pub struct TicketKeys {
    /// Seconds per period.
    rotation: u64,
    /// The key file and its flag, read again by [`TicketKeys::reload`].
    file: Option<(&'static str, PathBuf)>,
    state: RwLock<State>,
    rng: SystemRandom,
}

impl std::fmt::Debug for TicketKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketKeys")
            .field("rotation", &self.rotation)
            .field("file", &self.file.as_ref().map(|(_, p)| p))
            .finish_non_exhaustive()
    }
}

/// Seconds since the epoch.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl TicketKeys {
    /// Keys from `secret`, a new one sealing every `rotation` (at least a second; at most
    /// [`MAX_ROTATION`]).
    pub fn new(secret: TicketSecret, rotation: Duration) -> Arc<Self> {
        Arc::new(Self::build(secret, rotation, None, unix_now()))
    }

    /// Keys from the secret in `path` (see [`TicketSecret::from_file`]), which
    /// [`TicketKeys::reload`] reads again.
    pub fn from_file(
        flag: &'static str,
        path: &Path,
        rotation: Duration,
    ) -> Result<Arc<Self>, TicketKeyError> {
        let secret = TicketSecret::from_file(flag, path)?;
        Ok(Arc::new(Self::build(
            secret,
            rotation,
            Some((flag, path.to_path_buf())),
            unix_now(),
        )))
    }

    fn build(
        secret: TicketSecret,
        rotation: Duration,
        file: Option<(&'static str, PathBuf)>,
        now: u64,
    ) -> Self {
        let rotation = rotation
            .clamp(Duration::from_secs(1), MAX_ROTATION)
            .as_secs();
        let secrets = Secrets {
            current: secret,
            retired: None,
        };
        let keys = Arc::new(secrets.keys(rotation, now / rotation));
        Self {
            rotation,
            file,
            state: RwLock::new(State { secrets, keys }),
            rng: SystemRandom::new(),
        }
    }

    /// The keys of the period `now` falls in.
    fn keys_at(&self, now: u64) -> Arc<Keys> {
        let period = now / self.rotation;
        {
            let state = self
                .state
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if state.keys.period == period {
                return Arc::clone(&state.keys);
            }
        }
        let mut state = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.keys.period != period {
            state.keys = Arc::new(state.secrets.keys(self.rotation, period));
        }
        Arc::clone(&state.keys)
    }

    /// Seals from `now` on with `secret`; tickets under the secret it replaces still open
    /// until the end of the next period. Returns whether the secret changed.
    fn replace_at(&self, secret: TicketSecret, now: u64) -> bool {
        let period = now / self.rotation;
        let mut state = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.secrets.current == secret {
            return false;
        }
        let old = std::mem::replace(&mut state.secrets.current, secret);
        state.secrets.retired = Some((old, period + 1));
        state.keys = Arc::new(state.secrets.keys(self.rotation, period));
        true
    }

    /// Reads the key file again (nothing to do without one). On an error the keys in use
    /// stay. Returns whether the secret changed.
    pub fn reload(&self) -> Result<bool, TicketKeyError> {
        let Some((flag, path)) = &self.file else {
            return Ok(false);
        };
        let secret = TicketSecret::from_file(flag, path)?;
        Ok(self.replace_at(secret, unix_now()))
    }

    /// Reads the key file again at every SIGHUP until the process ends, logging the
    /// outcome (the file, never the secret). Nothing to follow without a key file.
    pub fn follow_reloads(self: &Arc<Self>) {
        if self.file.is_none() {
            return;
        }
        let keys = Arc::clone(self);
        let mut hups = crate::reload::subscribe();
        tokio::spawn(async move {
            while hups.changed().await.is_ok() {
                match keys.reload() {
                    Ok(true) => tracing::info!("TLS ticket key file reloaded: a new secret"),
                    Ok(false) => tracing::debug!("TLS ticket key file unchanged"),
                    Err(e) => tracing::error!(
                        error = %crate::exit::chain(&e),
                        "TLS ticket key reload failed; still using the previous secret"
                    ),
                }
            }
        });
    }

    fn encrypt_at(&self, now: u64, plain: &[u8]) -> Option<Vec<u8>> {
        let keys = self.keys_at(now);
        // A random nonce: the processes sharing a key cannot share a counter. At 2^32
        // tickets per key (NIST's bound for random 96-bit nonces) a period would need ~100k
        // tickets a second, fleet-wide, for 12 hours.
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut ticket = Vec::with_capacity(NAME_LEN + NONCE_LEN + plain.len() + TAG_LEN);
        ticket.extend_from_slice(&keys.seal.name);
        ticket.extend_from_slice(&nonce);
        ticket.extend_from_slice(plain);
        let tag = keys
            .seal
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(keys.seal.name),
                &mut ticket[NAME_LEN + NONCE_LEN..],
            )
            .ok()?;
        ticket.extend_from_slice(tag.as_ref());
        (ticket.len() <= MAX_TICKET).then_some(ticket)
    }

    fn decrypt_at(&self, now: u64, ticket: &[u8]) -> Option<Vec<u8>> {
        if ticket.len() > MAX_TICKET || ticket.len() < NAME_LEN + NONCE_LEN + TAG_LEN {
            return None;
        }
        let (name, rest) = ticket.split_at(NAME_LEN);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let keys = self.keys_at(now);
        // The name picks the key; it is authenticated too (as the associated data), so a
        // forged name gains nothing but a cheap refusal.
        let key = keys
            .open
            .iter()
            .find(|k| crate::secret::constant_time_eq(&k.name, name))?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut out = sealed.to_vec();
        let len = key
            .key
            .open_in_place(nonce, Aad::from(&key.name), &mut out)
            .ok()?
            .len();
        out.truncate(len);
        Some(out)
    }
}

impl ProducesTickets for TicketKeys {
    fn enabled(&self) -> bool {
        true
    }

    /// One period: a ticket opens until the end of the period after the one it was sealed
    /// in, so never less than this.
    fn lifetime(&self) -> u32 {
        u32::try_from(self.rotation).unwrap_or(u32::MAX)
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.encrypt_at(unix_now(), plain)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.decrypt_at(unix_now(), cipher)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3600;
    /// A moment in period 1000 of a one-hour rotation, 10 minutes in.
    const T: u64 = 1000 * HOUR + 600;

    fn secret(byte: u8) -> TicketSecret {
        TicketSecret([byte; SECRET_LEN])
    }

    fn keys(byte: u8) -> TicketKeys {
        TicketKeys::build(secret(byte), Duration::from_secs(HOUR), None, T)
    }

    const SESSION: &[u8] = b"a serialized rustls session, opaque to the ticketer";

    #[test]
    fn a_ticket_opens_to_what_was_sealed() {
        let k = keys(1);
        let ticket = k.encrypt_at(T, SESSION).unwrap();
        assert_eq!(ticket.len(), NAME_LEN + NONCE_LEN + SESSION.len() + TAG_LEN);
        assert!(!ticket
            .windows(8)
            .any(|w| SESSION.windows(8).any(|s| s == w)));
        assert_eq!(k.decrypt_at(T, &ticket).unwrap(), SESSION);
        // Random nonces: the same session seals differently each time.
        assert_ne!(k.encrypt_at(T, SESSION).unwrap(), ticket);
        assert!(k.enabled());
        assert_eq!(k.lifetime(), 3600);
    }

    #[test]
    fn two_holders_of_one_secret_open_each_others_tickets() {
        let (a, b, other) = (keys(7), keys(7), keys(8));
        let ticket = a.encrypt_at(T, SESSION).unwrap();
        assert_eq!(b.decrypt_at(T + 5, &ticket).unwrap(), SESSION);
        assert_eq!(other.decrypt_at(T, &ticket), None, "another secret");
        // The rotation is part of the key: a proxy with another period shares nothing.
        let two_hourly = TicketKeys::build(secret(7), Duration::from_secs(2 * HOUR), None, T);
        assert_eq!(two_hourly.decrypt_at(T, &ticket), None);
    }

    #[test]
    fn an_unknown_key_name_or_a_tampered_ticket_is_refused() {
        let k = keys(1);
        let ticket = k.encrypt_at(T, SESSION).unwrap();
        for i in [
            0,
            NAME_LEN - 1,
            NAME_LEN,
            NAME_LEN + NONCE_LEN,
            ticket.len() - 1,
        ] {
            let mut bad = ticket.clone();
            bad[i] ^= 0x01;
            assert_eq!(k.decrypt_at(T, &bad), None, "byte {i} flipped");
        }
        assert_eq!(k.decrypt_at(T, &ticket[..ticket.len() - 1]), None);
        for len in [0, 1, NAME_LEN, NAME_LEN + NONCE_LEN + TAG_LEN - 1] {
            assert_eq!(k.decrypt_at(T, &ticket[..len]), None, "{len} bytes");
        }
        assert_eq!(k.decrypt_at(T, &vec![0u8; MAX_TICKET + 1]), None);
        let mut long = ticket.clone();
        long.resize(MAX_TICKET + 1, 0);
        assert_eq!(k.decrypt_at(T, &long), None);
        // A name right, the rest another secret's: refused by the tag.
        let mut spliced = keys(2).encrypt_at(T, SESSION).unwrap();
        spliced[..NAME_LEN].copy_from_slice(&ticket[..NAME_LEN]);
        assert_eq!(k.decrypt_at(T, &spliced), None);
        assert!(
            k.encrypt_at(T, &vec![0u8; MAX_TICKET]).is_none(),
            "too long"
        );
    }

    #[test]
    fn a_ticket_opens_in_its_period_and_the_next_never_after() {
        let k = keys(3);
        let end_of_period = (T / HOUR + 1) * HOUR - 1;
        let ticket = k.encrypt_at(end_of_period, SESSION).unwrap();
        assert_eq!(k.decrypt_at(end_of_period + 1, &ticket).unwrap(), SESSION);
        assert_eq!(
            k.decrypt_at(end_of_period + HOUR, &ticket).unwrap(),
            SESSION,
            "the last second of the next period"
        );
        assert_eq!(k.decrypt_at(end_of_period + HOUR + 1, &ticket), None);
        assert_eq!(k.decrypt_at(end_of_period + 10 * HOUR, &ticket), None);
        // Sealed under the new period's key after the boundary, with a new name.
        let after = k.encrypt_at(end_of_period + 1, SESSION).unwrap();
        assert_ne!(after[..NAME_LEN], ticket[..NAME_LEN]);
        // A ticket from a period that has not begun here is not opened either.
        assert_eq!(k.decrypt_at(end_of_period, &after), None);
        // Keys are derived, not remembered: a fresh holder at the later time agrees.
        let fresh = TicketKeys::build(
            secret(3),
            Duration::from_secs(HOUR),
            None,
            end_of_period + 2,
        );
        assert_eq!(
            fresh.decrypt_at(end_of_period + 2, &ticket).unwrap(),
            SESSION
        );
    }

    #[test]
    fn a_new_secret_seals_and_the_old_one_opens_for_one_more_period() {
        let k = keys(4);
        let old = k.encrypt_at(T, SESSION).unwrap();
        assert!(
            !k.replace_at(secret(4), T),
            "the same secret changes nothing"
        );
        assert!(k.replace_at(secret(5), T + 1));
        let new = k.encrypt_at(T + 2, SESSION).unwrap();
        assert_eq!(keys(5).decrypt_at(T + 2, &new).unwrap(), SESSION);
        assert_eq!(keys(4).decrypt_at(T + 2, &new), None);
        assert_eq!(k.decrypt_at(T + 2, &old).unwrap(), SESSION);
        assert_eq!(k.decrypt_at(T + HOUR, &old).unwrap(), SESSION);
        assert_eq!(k.decrypt_at(T + 2 * HOUR, &old), None);
    }

    #[test]
    fn key_files_hold_64_hex_digits_and_errors_never_show_them() {
        let dir = std::env::temp_dir().join(format!("tls-tickets-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key");
        let hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
        for content in [hex.to_string(), format!("{hex}\n"), format!("  {hex}\r\n")] {
            std::fs::write(&path, content).unwrap();
            let s = TicketSecret::from_file("--tls-ticket-key-file", &path).unwrap();
            assert_eq!(s.to_hex(), hex.to_ascii_lowercase());
            assert_eq!(format!("{s:?}"), "TicketSecret(..)");
        }
        let shown = path.display().to_string();
        for content in [
            "",
            "\n",
            &hex[..62],
            &format!("{hex}00"),
            &format!("{}zz", &hex[..62]),
            "correct horse battery staple correct horse battery staple 12345",
            &format!("{hex}\n{hex}\n"),
        ] {
            std::fs::write(&path, content).unwrap();
            let e = crate::exit::chain(
                &TicketSecret::from_file("--tls-ticket-key-file", &path).unwrap_err(),
            );
            assert_eq!(
                e,
                format!("--tls-ticket-key-file {shown}: not 64 hex digits (make one with `openssl rand -hex 32`)")
            );
        }
        std::fs::write(&path, vec![b'a'; 2000]).unwrap();
        let e = TicketSecret::from_file("--tls-ticket-key-file", &path).unwrap_err();
        assert!(e.to_string().contains("larger than 1 KiB"), "{e}");
        let e = crate::exit::chain(
            &TicketSecret::from_file("--tls-ticket-key-file", Path::new("/nonexistent/k"))
                .unwrap_err(),
        );
        assert!(
            e.starts_with("--tls-ticket-key-file /nonexistent/k: cannot read it: "),
            "{e}"
        );

        // Reload: the file is read again; a broken file keeps the keys in use.
        std::fs::write(&path, format!("{hex}\n")).unwrap();
        let k = TicketKeys::from_file("--tls-ticket-key-file", &path, DEFAULT_ROTATION).unwrap();
        let before = k.encrypt(SESSION).unwrap();
        assert!(!k.reload().unwrap(), "unchanged");
        std::fs::write(&path, "not a key").unwrap();
        assert!(k.reload().is_err());
        assert_eq!(k.decrypt(&before).unwrap(), SESSION);
        std::fs::write(&path, "ff".repeat(32)).unwrap();
        assert!(k.reload().unwrap());
        assert_ne!(k.encrypt(SESSION).unwrap()[..NAME_LEN], before[..NAME_LEN]);
        assert_eq!(
            k.decrypt(&before).unwrap(),
            SESSION,
            "the old secret still opens"
        );
        assert!(!format!("{k:?}").contains("ffff"), "{k:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn random_secrets_differ_and_survive_the_hex_round_trip() {
        let (a, b) = (
            TicketSecret::random().unwrap(),
            TicketSecret::random().unwrap(),
        );
        assert_ne!(a, b);
        assert_eq!(TicketSecret::from_hex(a.to_hex().as_bytes()), Some(a));
        assert_eq!(TicketSecret::from_hex(b"00"), None);
    }
}
