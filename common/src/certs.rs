//! Server certificates from one or more PEM pairs: the one whose names match the client's
//! SNI is used, the first pair otherwise (and for clients without SNI). On SIGHUP every pair
//! is read again; a broken file keeps the old certificates and logs one clear error, so a
//! renewal hook can never take TLS down. Sessions already open are untouched either way.
//! The store also holds the cipher suite policy, since whether a list fits depends on each
//! certificate's key type: a pair whose key no listed TLS 1.2 suite fits is refused at
//! start and at reload alike.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, DnsName, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ProducesTickets, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use thiserror::Error;

use crate::tls_ciphers::{CipherError, CipherPolicy};

/// One `--tls-cert` / `--tls-key` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPair {
    /// The PEM certificate chain, end entity first.
    pub cert: PathBuf,
    /// The PEM private key.
    pub key: PathBuf,
}

/// Why a pair could not be loaded.
#[derive(Debug, Error)]
pub enum CertError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds no usable PEM.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: String,
        /// What is wrong.
        what: String,
    },
    /// The key does not fit the certificate, or is of an unsupported type.
    #[error("{cert} and {key} do not make a usable pair: {source}")]
    Pair {
        /// The certificate file.
        cert: String,
        /// The key file.
        key: String,
        /// Why.
        source: rustls::Error,
    },
    /// The cipher suites offered cannot serve this certificate's key over TLS 1.2.
    #[error("{cert}: {source}")]
    Ciphers {
        /// The certificate file.
        cert: String,
        /// Why.
        source: CipherError,
    },
    /// No pair was given.
    #[error("no certificate given")]
    Empty,
}

/// A loaded pair.
#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
    path: String,
    not_after: Option<u64>,
}

/// The certificates in use, swapped whole on reload.
#[derive(Debug)]
pub struct CertStore {
    pairs: Vec<CertPair>,
    ciphers: CipherPolicy,
    loaded: RwLock<Arc<Vec<Loaded>>>,
    /// Reloads that took effect.
    pub reloads_ok: AtomicU64,
    /// Reloads refused for a broken file (the old certificates stayed).
    pub reloads_failed: AtomicU64,
}

/// TLS 1.2 sessions kept for resumption by session ID (about 200 bytes each).
const SESSION_CACHE: usize = 20_000;

fn load(pair: &CertPair, ciphers: &CipherPolicy) -> Result<Loaded, CertError> {
    let read = |p: &PathBuf| {
        std::fs::read(p).map_err(|source| CertError::Read {
            path: p.display().to_string(),
            source,
        })
    };
    let (cert_pem, key_pem) = (read(&pair.cert)?, read(&pair.key)?);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| CertError::Pem {
            path: pair.cert.display().to_string(),
            what: format!("bad certificate PEM: {}", pem_problem(&e)),
        })?;
    if certs.is_empty() {
        return Err(CertError::Pem {
            path: pair.cert.display().to_string(),
            what: "no certificate in the file".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| CertError::Pem {
        path: pair.key.display().to_string(),
        what: format!("bad private key PEM: {}", pem_problem(&e)),
    })?;
    let not_after = not_after(&certs[0]);
    let key = CertifiedKey::from_der(certs, key, &rustls::crypto::aws_lc_rs::default_provider())
        .map_err(|source| CertError::Pair {
            cert: pair.cert.display().to_string(),
            key: pair.key.display().to_string(),
            source,
        })?;
    ciphers
        .check_key(key.key.algorithm())
        .map_err(|source| CertError::Ciphers {
            cert: pair.cert.display().to_string(),
            source,
        })?;
    Ok(Loaded {
        key: Arc::new(key),
        path: pair.cert.display().to_string(),
        not_after,
    })
}

/// A PEM error in words (pki-types' own text prints the marker as a list of bytes).
fn pem_problem(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::MissingSectionEnd { .. } => "truncated: the END line is missing".into(),
        Error::IllegalSectionStart { .. } => "a BEGIN line is malformed".into(),
        Error::NoItemsFound => "no PEM section in the file".into(),
        other => other.to_string(),
    }
}

impl CertStore {
    /// Loads every pair, to be offered with the recommended cipher suites; any error
    /// refuses the whole set.
    pub fn load(pairs: Vec<CertPair>) -> Result<Arc<Self>, CertError> {
        Self::load_for(pairs, CipherPolicy::recommended())
    }

    /// [`CertStore::load`] for the suites of `ciphers`, which must fit every pair's key
    /// (and every key of a later reload).
    pub fn load_for(pairs: Vec<CertPair>, ciphers: CipherPolicy) -> Result<Arc<Self>, CertError> {
        if pairs.is_empty() {
            return Err(CertError::Empty);
        }
        let loaded = pairs
            .iter()
            .map(|p| load(p, &ciphers))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Arc::new(Self {
            pairs,
            ciphers,
            loaded: RwLock::new(Arc::new(loaded)),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
        }))
    }

    fn current(&self) -> Arc<Vec<Loaded>> {
        self.loaded
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Reads every pair again; on any error the old set stays and the error is returned
    /// (and counted).
    pub fn reload(&self) -> Result<(), CertError> {
        match self
            .pairs
            .iter()
            .map(|p| load(p, &self.ciphers))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(loaded) => {
                *self
                    .loaded
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(loaded);
                self.reloads_ok.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.reloads_failed.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Reloads at every SIGHUP until the process ends, logging the outcome.
    pub fn follow_reloads(self: &Arc<Self>) {
        let store = Arc::clone(self);
        let mut hups = crate::reload::subscribe();
        tokio::spawn(async move {
            while hups.changed().await.is_ok() {
                match store.reload() {
                    Ok(()) => tracing::info!(pairs = store.pairs.len(), "certificates reloaded"),
                    Err(e @ CertError::Ciphers { .. }) => tracing::error!(
                        error = %crate::exit::chain(&e),
                        "certificate reload failed; still serving the previous certificates (the cipher suites are set at start: renew with a key of the old type, or restart with a list that fits)"
                    ),
                    Err(e) => {
                        tracing::error!(error = %crate::exit::chain(&e), "certificate reload failed; still serving the previous certificates")
                    }
                }
            }
        });
    }

    /// Each certificate file and its expiry (seconds since the epoch), for /metrics.
    pub fn expiries(&self) -> Vec<(String, u64)> {
        self.current()
            .iter()
            .filter_map(|l| Some((l.path.clone(), l.not_after?)))
            .collect()
    }

    /// The cipher suites offered with these certificates.
    pub fn ciphers(&self) -> &CipherPolicy {
        &self.ciphers
    }

    /// A server configuration (the store's cipher suites, TLS 1.3 and TLS 1.2 unless they
    /// leave it out) that picks from this store per handshake.
    ///
    /// Sessions resume from stateless tickets (aws-lc-rs' rotating ticket keys, in this
    /// process), so a client that opens several connections with one ticket, as mail
    /// clients do, resumes on each; rustls' default (stateful, single-use TLS 1.3 tickets)
    /// gave every connection after the first a full handshake. A bounded stateful cache
    /// serves TLS 1.2 session IDs.
    pub fn server_config(self: &Arc<Self>, alpn: &[&[u8]]) -> Arc<ServerConfig> {
        match rustls::crypto::aws_lc_rs::Ticketer::new() {
            Ok(ticketer) => self.server_config_with_tickets(alpn, ticketer),
            // Only a failing system RNG gets here; sessions then resume statefully.
            Err(e) => {
                tracing::warn!(error = %e, "TLS session tickets off");
                self.server_config_with_tickets(alpn, Arc::new(NoTickets))
            }
        }
    }

    /// [`CertStore::server_config`] with tickets from `ticketer`, for TLS 1.3 and TLS 1.2
    /// alike: [`crate::tls_tickets::TicketKeys`] makes tickets that every process holding
    /// its secret opens (the proxy's workers, proxies sharing a key file). Clients without
    /// tickets still resume TLS 1.2 by session ID from this process's bounded cache.
    pub fn server_config_with_tickets(
        self: &Arc<Self>,
        alpn: &[&[u8]],
        ticketer: Arc<dyn ProducesTickets>,
    ) -> Arc<ServerConfig> {
        let mut config = self
            .ciphers
            .server_builder()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(BySni(Arc::clone(self))));
        self.ciphers.apply(&mut config);
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config.ticketer = ticketer;
        config.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE);
        Arc::new(config)
    }

    /// The certificate for `sni`: the first whose names cover it, else the first pair's.
    fn choose(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let loaded = self.current();
        let name = sni.and_then(|n| DnsName::try_from(n.to_string()).ok());
        if let Some(name) = name {
            let name = ServerName::DnsName(name);
            let matching = loaded.iter().find(|l| {
                l.key.end_entity_cert().is_ok_and(|der| {
                    webpki::EndEntityCert::try_from(der)
                        .is_ok_and(|ee| ee.verify_is_valid_for_subject_name(&name).is_ok())
                })
            });
            if let Some(l) = matching {
                return Some(Arc::clone(&l.key));
            }
        }
        loaded.first().map(|l| Arc::clone(&l.key))
    }
}

#[derive(Debug)]
struct BySni(Arc<CertStore>);

/// rustls' own default ticketer (no tickets), which it does not export.
#[derive(Debug)]
struct NoTickets;

impl ProducesTickets for NoTickets {
    fn enabled(&self) -> bool {
        false
    }
    fn lifetime(&self) -> u32 {
        0
    }
    fn encrypt(&self, _: &[u8]) -> Option<Vec<u8>> {
        None
    }
    fn decrypt(&self, _: &[u8]) -> Option<Vec<u8>> {
        None
    }
}

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.choose(hello.server_name())
    }
}

/// One DER element at the start of `der`: (tag, contents, rest).
fn element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |a, &b| (a << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The certificate's notAfter, seconds since the epoch.
fn not_after(cert: &[u8]) -> Option<u64> {
    let (_, certificate, _) = element(cert)?;
    let (_, tbs, _) = element(certificate)?;
    let mut rest = tbs;
    let (tag, _, after) = element(rest)?;
    if tag == 0xa0 {
        rest = after; // explicit version
    }
    for _ in 0..3 {
        rest = element(rest)?.2; // serial, signature algorithm, issuer
    }
    let (_, validity, _) = element(rest)?;
    let (_, after_not_before) = element(validity).map(|(_, _, r)| ((), r))?;
    let (tag, time, _) = element(after_not_before)?;
    let time = std::str::from_utf8(time).ok()?;
    let (year, rest) = match tag {
        0x17 => {
            let yy: i64 = time.get(..2)?.parse().ok()?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, time.get(2..)?)
        }
        0x18 => (time.get(..4)?.parse().ok()?, time.get(4..)?),
        _ => return None,
    };
    let field = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
    let (month, day, hour, minute, second) =
        (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hour * 3600 + minute * 60 + second).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &std::path::Path, name: &str, hosts: &[&str]) -> CertPair {
        let (cert, key) = crate::tls::self_signed(hosts).unwrap();
        let pair = CertPair {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&pair.cert, cert).unwrap();
        std::fs::write(&pair.key, key).unwrap();
        pair
    }

    fn names(key: &CertifiedKey) -> Vec<u8> {
        key.end_entity_cert().unwrap().to_vec()
    }

    #[test]
    fn chosen_by_sni_first_by_default_and_reloaded_only_whole() {
        let dir = std::env::temp_dir().join(format!("certs-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = pair(&dir, "a", &["mail.example.com"]);
        let b = pair(&dir, "b", &["imap.example.net", "*.example.org"]);
        let store = CertStore::load(vec![a.clone(), b.clone()]).unwrap();
        let first = names(&store.choose(None).unwrap());
        let second = names(&store.choose(Some("imap.example.net")).unwrap());
        assert_ne!(first, second);
        assert_eq!(
            names(&store.choose(Some("mx.example.org")).unwrap()),
            second
        );
        assert_eq!(
            names(&store.choose(Some("mail.example.com")).unwrap()),
            first
        );
        assert_eq!(names(&store.choose(Some("other.test")).unwrap()), first);
        let expiries = store.expiries();
        assert_eq!(expiries.len(), 2);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(expiries.iter().all(|(_, t)| *t > now), "{expiries:?}");

        // A new certificate for b: taken at reload.
        let _ = pair(&dir, "b", &["imap.example.net"]);
        store.reload().unwrap();
        let renewed = names(&store.choose(Some("imap.example.net")).unwrap());
        assert_ne!(renewed, second);
        // A truncated key: the reload is refused and the old set stays.
        std::fs::write(&b.key, "-----BEGIN PRIVATE KEY-----\nMIIE\n").unwrap();
        let err = store.reload().unwrap_err().to_string();
        assert!(err.contains("b.key"), "{err}");
        assert_eq!(
            names(&store.choose(Some("imap.example.net")).unwrap()),
            renewed
        );
        assert_eq!(store.reloads_ok.load(Ordering::Relaxed), 1);
        assert_eq!(store.reloads_failed.load(Ordering::Relaxed), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// An RSA 2048 pair made by `openssl` (rcgen makes RSA keys only with aws-lc-rs).
    fn rsa_pair(dir: &std::path::Path, name: &str, host: &str) -> CertPair {
        let pair = CertPair {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        let status = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", &format!("/CN={host}")])
            .args(["-addext", &format!("subjectAltName=DNS:{host}")])
            .arg("-keyout")
            .arg(&pair.key)
            .arg("-out")
            .arg(&pair.cert)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl is installed (.ci/run installs it)");
        assert!(status.success());
        pair
    }

    #[test]
    fn a_key_the_tls12_suites_cannot_serve_is_refused_at_load_and_reload() {
        let dir = std::env::temp_dir().join(format!("certs-ciphers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ecdsa_only =
            CipherPolicy::parse("TLS_AES_128_GCM_SHA256:ECDHE-ECDSA-AES128-GCM-SHA256", true)
                .unwrap();
        let rsa = rsa_pair(&dir, "rsa", "rsa.test");
        match CertStore::load_for(vec![rsa.clone()], ecdsa_only.clone()) {
            Err(e @ CertError::Ciphers { .. }) => {
                let text = e.to_string();
                assert!(text.starts_with(&format!("{}: no TLS 1.2 suite listed works with an RSA key; list one of ECDHE-RSA-AES128-GCM-SHA256", rsa.cert.display())), "{text}");
            }
            other => panic!("{other:?}"),
        }
        // Ed25519 and P-384 keys sign for the ECDSA suites.
        for (name, alg) in [
            ("ed25519", &rcgen::PKCS_ED25519),
            ("p384", &rcgen::PKCS_ECDSA_P384_SHA384),
        ] {
            let key = rcgen::KeyPair::generate_for(alg).unwrap();
            let params = rcgen::CertificateParams::new(vec![format!("{name}.test")]).unwrap();
            let cert = params.self_signed(&key).unwrap();
            let pair = CertPair {
                cert: dir.join(format!("{name}.crt")),
                key: dir.join(format!("{name}.key")),
            };
            std::fs::write(&pair.cert, cert.pem()).unwrap();
            std::fs::write(&pair.key, key.serialize_pem()).unwrap();
            let store = CertStore::load_for(vec![pair], ecdsa_only.clone());
            assert!(store.is_ok(), "{name}: {:?}", store.err());
        }
        // The same RSA pair with the recommended suites, or TLS 1.3 only: fine.
        assert!(CertStore::load(vec![rsa.clone()]).is_ok());
        let tls13 = CipherPolicy::parse("TLS_AES_128_GCM_SHA256", true).unwrap();
        assert!(CertStore::load_for(vec![rsa.clone()], tls13).is_ok());

        // A renewal that swaps the ECDSA key for an RSA one is refused; the old pair stays.
        let ecdsa = pair(&dir, "ecdsa", &["mail.example.com"]);
        let store = CertStore::load_for(vec![ecdsa.clone()], ecdsa_only).unwrap();
        let before = names(&store.choose(None).unwrap());
        std::fs::copy(&rsa.cert, &ecdsa.cert).unwrap();
        std::fs::copy(&rsa.key, &ecdsa.key).unwrap();
        let err = store.reload().unwrap_err();
        assert!(matches!(err, CertError::Ciphers { .. }), "{err}");
        assert_eq!(names(&store.choose(None).unwrap()), before);
        assert_eq!(store.reloads_failed.load(Ordering::Relaxed), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn not_after_of_known_dates() {
        // rcgen's default validity ends 4096-01-01.
        let (cert, _) = crate::tls::self_signed(&["x.test"]).unwrap();
        let der = CertificateDer::pem_slice_iter(cert.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(
            not_after(&der),
            Some(67_090_118_400),
            "4096-01-01T00:00:00Z"
        );
        // Before 2050 the date is a UTCTime.
        let mut params = rcgen::CertificateParams::new(vec!["y.test".to_string()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2030, 6, 15);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            not_after(cert.der()),
            Some(1_907_712_000),
            "2030-06-15T00:00:00Z"
        );
    }
}
