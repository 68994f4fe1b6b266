//! TLS for the load clients: the client configuration each simulated mail client uses,
//! and a tally of how each handshake went.
//!
//! A mail client such as Thunderbird keeps a TLS session cache and offers the session (or
//! TLS 1.3 ticket) its previous connection to the same server left there. With `resume`
//! each simulated client gets such a cache of its own (rustls' in-memory session store), so
//! a load of 50 concurrent connections behaves as 50 clients that each resume their own
//! session, not as one client sharing a handful of tickets among 50 connections. Without
//! it nothing is stored or offered, so every handshake is a full one. The tally counts
//! what the server actually granted, read off each connection, so a benchmark can show
//! resumption really happened rather than assume it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, CommonState, HandshakeKind, ProtocolVersion, RootCertStore};

/// Servers whose sessions one simulated client remembers (a run talks to one).
const CLIENT_SESSIONS: usize = 4;

/// The TLS side of a run: what every simulated client trusts, and whether it resumes.
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// Trust and protocol settings, without a session store.
    base: Arc<ClientConfig>,
    resume: bool,
}

impl ClientTls {
    /// Clients that trust the PEM certificates in `ca_pem` and offer TLS 1.3 and 1.2
    /// (rustls' defaults, as the ring provider orders them); with `resume` each keeps the
    /// sessions and tickets servers hand it and offers them on its next connections.
    pub fn new(ca_pem: &[u8], resume: bool) -> Result<Self> {
        Ok(Self {
            base: client_config(ca_pem)?,
            resume,
        })
    }

    /// The configuration of one simulated client: with `resume`, with a session cache of
    /// its own (every connection made with it shares that cache).
    pub fn client(&self) -> Arc<ClientConfig> {
        if !self.resume {
            return self.base.clone();
        }
        let mut config = (*self.base).clone();
        config.resumption = Resumption::in_memory_sessions(CLIENT_SESSIONS);
        Arc::new(config)
    }

    /// Whether clients resume.
    pub fn resumes(&self) -> bool {
        self.resume
    }
}

/// A client configuration that trusts the PEM certificates in `ca_pem` and neither stores
/// nor offers sessions.
fn client_config(ca_pem: &[u8]) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots
            .add(cert.context("CA PEM")?)
            .context("CA certificate")?;
    }
    if roots.is_empty() {
        // An empty trust store would fail every handshake later, far from the cause.
        bail!("no certificate in the CA PEM");
    }
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

/// How the handshakes of a run went, counted as they complete (shared by its tasks).
#[derive(Debug, Default)]
pub struct Handshakes {
    full: AtomicU64,
    resumed: AtomicU64,
    tls13: AtomicU64,
    tls12: AtomicU64,
    /// The last negotiated cipher suite, so the output says what was measured (0: none).
    suite: AtomicU64,
}

/// A snapshot of [`Handshakes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HandshakeCounts {
    /// Full handshakes (a HelloRetryRequest included).
    pub full: u64,
    /// Resumed ones (TLS 1.3 PSK from a ticket, or a TLS 1.2 session ID or ticket).
    pub resumed: u64,
    /// Handshakes that negotiated TLS 1.3.
    pub tls13: u64,
    /// Handshakes that negotiated TLS 1.2.
    pub tls12: u64,
}

impl Handshakes {
    /// Counts one completed handshake.
    pub fn record(&self, conn: &CommonState) {
        match conn.handshake_kind() {
            Some(HandshakeKind::Resumed) => self.resumed.fetch_add(1, Ordering::Relaxed),
            Some(HandshakeKind::Full | HandshakeKind::FullWithHelloRetryRequest) => {
                self.full.fetch_add(1, Ordering::Relaxed)
            }
            None => return,
        };
        match conn.protocol_version() {
            Some(ProtocolVersion::TLSv1_3) => self.tls13.fetch_add(1, Ordering::Relaxed),
            Some(ProtocolVersion::TLSv1_2) => self.tls12.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        if let Some(suite) = conn.negotiated_cipher_suite() {
            self.suite
                .store(u64::from(u16::from(suite.suite())), Ordering::Relaxed);
        }
    }

    /// The counts so far.
    pub fn counts(&self) -> HandshakeCounts {
        HandshakeCounts {
            full: self.full.load(Ordering::Relaxed),
            resumed: self.resumed.load(Ordering::Relaxed),
            tls13: self.tls13.load(Ordering::Relaxed),
            tls12: self.tls12.load(Ordering::Relaxed),
        }
    }

    /// The name of the last negotiated cipher suite (empty before any handshake).
    pub fn suite(&self) -> String {
        match self.suite.load(Ordering::Relaxed) {
            0 => String::new(),
            n => format!("{:?}", rustls::CipherSuite::from(n as u16)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_pem_must_hold_a_certificate() {
        assert!(ClientTls::new(b"", false).is_err());
        assert!(ClientTls::new(b"-----BEGIN CERTIFICATE-----\nnot base64\n", true).is_err());
    }

    #[test]
    fn an_unused_tally_is_empty() {
        let h = Handshakes::default();
        assert_eq!(h.counts(), HandshakeCounts::default());
        assert_eq!(h.suite(), "");
    }
}
