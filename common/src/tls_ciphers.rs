//! Which cipher suites a TLS server offers, in its order of preference, and whether that
//! order or the client's picks the one a handshake uses.
//!
//! The recommended policy is the server's order with AES-128-GCM first (ChaCha20-Poly1305
//! first on a CPU without AES instructions), the order Go's crypto/tls starts from; unlike
//! Go it does not switch to ChaCha20 for a client that lists it first. Clients such as
//! OpenSSL's list AES-256-GCM with SHA-384 first, and aws-lc runs its vector SHA-512 code
//! only on Intel CPUs: on an AMD EPYC the server's CPU per handshake with SHA-256 was
//! 0.71× for a full P-256 one and 0.62–0.67× for a resumed one (bench/tls-providers),
//! and on an Intel Xeon with AVX-512 still 0.76× and 0.64×; about 1.0× for a full RSA
//! one, where the signature dominates. Every suite offered is an
//! AEAD with forward secrecy, so the order trades no security.

use std::sync::Arc;

use rustls::crypto::aws_lc_rs::cipher_suite as suite;
use rustls::crypto::CryptoProvider;
use rustls::{
    ConfigBuilder, ProtocolVersion, ServerConfig, SignatureAlgorithm, SupportedCipherSuite,
    WantsVerifier,
};
use thiserror::Error;

/// Why a cipher suite list was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CipherError {
    /// A name that is not one of the suites offered.
    #[error("unknown cipher suite {name:?}; known: {known}")]
    Unknown {
        /// The name as given.
        name: String,
        /// The names accepted: IANA's, with OpenSSL's in brackets where they differ.
        known: String,
    },
    /// The same suite twice (perhaps under its two names).
    #[error("cipher suite {0} is listed twice")]
    Twice(&'static str),
    /// TLS 1.3 is always on, so it needs a suite.
    #[error("the list needs at least one TLS 1.3 suite (TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256)")]
    NoTls13,
    /// TLS 1.2 is on but none of its suites listed can be signed with a certificate's key,
    /// so every TLS 1.2 client of that certificate would fail its handshake.
    #[error("no TLS 1.2 suite listed works with an {key} key; list one of {fits} too, or no TLS 1.2 suite at all to turn TLS 1.2 off")]
    NoTls12For {
        /// The key's algorithm.
        key: &'static str,
        /// The TLS 1.2 suites that would work with it, OpenSSL's names.
        fits: String,
    },
}

/// Each suite with its IANA name and OpenSSL's (the same for TLS 1.3).
const NAMES: [(SupportedCipherSuite, &str, &str); 9] = [
    (
        suite::TLS13_AES_128_GCM_SHA256,
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_128_GCM_SHA256",
    ),
    (
        suite::TLS13_CHACHA20_POLY1305_SHA256,
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS_CHACHA20_POLY1305_SHA256",
    ),
    (
        suite::TLS13_AES_256_GCM_SHA384,
        "TLS_AES_256_GCM_SHA384",
        "TLS_AES_256_GCM_SHA384",
    ),
    (
        suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
    ),
    (
        suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
    ),
    (
        suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
    ),
    (
        suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
    ),
    (
        suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ),
    (
        suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
    ),
];

/// How many suites there are: [`index`] is below it.
pub const SUITES: usize = NAMES.len();

/// Where `s` stands among every suite (for per-suite counters).
pub fn index(s: SupportedCipherSuite) -> Option<usize> {
    NAMES
        .iter()
        .position(|(known, _, _)| known.suite() == s.suite())
}

/// Every suite's protocol version and IANA name, in [`index`] order.
pub fn known() -> impl Iterator<Item = (&'static str, &'static str)> {
    NAMES.iter().map(|(s, iana, _)| {
        let version = if is_tls12(s) { "TLSv1.2" } else { "TLSv1.3" };
        (version, *iana)
    })
}

/// The IANA name of `s`.
pub fn name(s: SupportedCipherSuite) -> &'static str {
    index(s).map_or("unknown", name_at)
}

/// The IANA name of the suite at `i` in [`index`] order (below [`SUITES`]).
pub fn name_at(i: usize) -> &'static str {
    NAMES[i].1
}

fn is_tls12(s: &SupportedCipherSuite) -> bool {
    s.version().version == ProtocolVersion::TLSv1_2
}

/// Every name `parse` accepts: IANA's, with OpenSSL's in brackets where it differs.
fn known_names() -> String {
    NAMES
        .iter()
        .map(|(_, iana, openssl)| {
            if iana == openssl {
                (*iana).to_string()
            } else {
                format!("{iana} ({openssl})")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The name of a key algorithm as an operator knows it.
fn key_name(alg: SignatureAlgorithm) -> &'static str {
    match alg {
        SignatureAlgorithm::RSA => "RSA",
        SignatureAlgorithm::ECDSA => "ECDSA",
        SignatureAlgorithm::ED25519 => "Ed25519",
        SignatureAlgorithm::ED448 => "Ed448",
        _ => "unsupported",
    }
}

/// Whether this CPU has AES instructions (with carry-less multiply, for GCM).
fn aes_in_hardware() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// The suites a server offers and whose order decides.
#[derive(Debug, Clone)]
pub struct CipherPolicy {
    suites: Vec<SupportedCipherSuite>,
    server_order: bool,
}

impl CipherPolicy {
    /// Every suite, AES-128-GCM first where the CPU has AES instructions and
    /// ChaCha20-Poly1305 first where it has not, AES-256-GCM last; the server's order.
    pub fn recommended() -> Self {
        Self::recommended_for(aes_in_hardware())
    }

    fn recommended_for(aes: bool) -> Self {
        let mut suites: Vec<SupportedCipherSuite> = NAMES.iter().map(|(s, _, _)| *s).collect();
        if !aes {
            // NAMES holds each group as AES-128, ChaCha20, AES-256: swap the first two.
            for group in suites.chunks_mut(3) {
                group.swap(0, 1);
            }
        }
        Self {
            suites,
            server_order: true,
        }
    }

    /// The suites `list` names (IANA or OpenSSL names, case-insensitive, separated by
    /// commas, colons or spaces), in that order of preference.
    pub fn parse(list: &str, server_order: bool) -> Result<Self, CipherError> {
        let mut suites: Vec<SupportedCipherSuite> = Vec::new();
        for name in list
            .split([',', ':', ' '])
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            let (s, iana, _) = NAMES
                .iter()
                .find(|(_, iana, openssl)| {
                    iana.eq_ignore_ascii_case(name) || openssl.eq_ignore_ascii_case(name)
                })
                .ok_or_else(|| CipherError::Unknown {
                    name: name.to_string(),
                    known: known_names(),
                })?;
            if suites.iter().any(|have| have.suite() == s.suite()) {
                return Err(CipherError::Twice(iana));
            }
            suites.push(*s);
        }
        if !suites
            .iter()
            .any(|s| s.version().version == ProtocolVersion::TLSv1_3)
        {
            return Err(CipherError::NoTls13);
        }
        Ok(Self {
            suites,
            server_order,
        })
    }

    /// The same suites, with the client's order deciding (`server_order` false) or ours.
    pub fn with_server_order(mut self, server_order: bool) -> Self {
        self.server_order = server_order;
        self
    }

    /// The suites, most preferred first.
    pub fn suites(&self) -> &[SupportedCipherSuite] {
        &self.suites
    }

    /// Whether our order decides.
    pub fn server_order(&self) -> bool {
        self.server_order
    }

    /// The aws-lc-rs provider offering only these suites, in this order.
    pub fn provider(&self) -> Arc<CryptoProvider> {
        Arc::new(CryptoProvider {
            cipher_suites: self.suites.clone(),
            ..rustls::crypto::aws_lc_rs::default_provider()
        })
    }

    /// Whether TLS 1.2 is on: a TLS 1.2 suite is listed.
    pub fn tls12(&self) -> bool {
        self.suites.iter().any(is_tls12)
    }

    /// Refuses a certificate key that no TLS 1.2 suite offered can sign for while TLS 1.2
    /// is on: rustls would pick no suite and every TLS 1.2 client of it would fail.
    pub fn check_key(&self, key: SignatureAlgorithm) -> Result<(), CipherError> {
        let serves =
            |s: &SupportedCipherSuite| is_tls12(s) && s.usable_for_signature_algorithm(key);
        if !self.tls12() || self.suites.iter().any(serves) {
            return Ok(());
        }
        // Every key type a certificate can have here (RSA, ECDSA, Ed25519) has suites in
        // NAMES, so the list is never empty.
        let fits = NAMES
            .iter()
            .filter(|(s, _, _)| serves(s))
            .map(|(_, _, openssl)| *openssl)
            .collect::<Vec<_>>();
        Err(CipherError::NoTls12For {
            key: key_name(key),
            fits: fits.join(", "),
        })
    }

    /// A server configuration builder offering these suites over the versions they
    /// enable; [`CipherPolicy::apply`] the order rule to what it builds.
    pub fn server_builder(&self) -> ConfigBuilder<ServerConfig, WantsVerifier> {
        ServerConfig::builder_with_provider(self.provider())
            .with_protocol_versions(self.versions())
            .expect("a CipherPolicy holds a suite of each version it enables")
    }

    /// TLS 1.3, and TLS 1.2 when a TLS 1.2 suite is listed.
    pub fn versions(&self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        let tls12 = self.tls12();
        static BOTH: [&rustls::SupportedProtocolVersion; 2] =
            [&rustls::version::TLS13, &rustls::version::TLS12];
        if tls12 {
            &BOTH
        } else {
            &BOTH[..1]
        }
    }

    /// Applies the order rule to a configuration built on [`CipherPolicy::provider`].
    pub fn apply(&self, config: &mut ServerConfig) {
        config.ignore_client_order = self.server_order;
    }
}

impl std::fmt::Display for CipherPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.suites.iter().map(|s| name(*s)).collect();
        write!(
            f,
            "{} ({} order)",
            names.join(":"),
            if self.server_order {
                "server"
            } else {
                "client"
            }
        )
    }
}

#[cfg(test)]
mod tests;
