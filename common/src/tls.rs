//! TLS with rustls only (aws-lc-rs provider): server configurations from PEM files, TLS
//! 1.2 and 1.3 with the recommended cipher suites of [`crate::tls_ciphers`], client
//! configurations, and self-signed certificates for tests and demo setups.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use thiserror::Error;

/// Why a TLS configuration could not be made.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// PEM that does not parse.
    #[error("bad {what} PEM: {source}")]
    Pem {
        /// certificate, private key, CA.
        what: &'static str,
        /// The parser's complaint.
        source: rustls::pki_types::pem::Error,
    },
    /// A certificate PEM without a certificate.
    #[error("no certificate in the PEM")]
    NoCertificate,
    /// A CA certificate rustls refuses.
    #[error("bad CA certificate: {0}")]
    Ca(rustls::Error),
    /// The key does not fit the certificate (or is of an unsupported type).
    #[error("certificate and key do not match: {0}")]
    Pair(rustls::Error),
    /// The protocol versions cannot be set (the provider lacks them).
    #[error("TLS setup: {0}")]
    Setup(rustls::Error),
    /// rcgen could not make a certificate.
    #[error("cannot make a certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// The crypto provider every client configuration uses.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A server configuration from a PEM certificate chain and a PEM private key, offering
/// `alpn` protocols (empty: no ALPN).
pub fn server_config_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::Pem {
            what: "certificate",
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|source| TlsError::Pem {
        what: "private key",
        source,
    })?;
    let ciphers = crate::tls_ciphers::CipherPolicy::recommended();
    let mut config = ciphers
        .server_builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(TlsError::Pair)?;
    ciphers.apply(&mut config);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// [`server_config_from_pem`] from files.
pub fn server_config(
    cert: &Path,
    key: &Path,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, TlsError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsError::Read {
            path: p.display().to_string(),
            source,
        })
    };
    server_config_from_pem(&read(cert)?, &read(key)?, alpn)
}

/// A client configuration trusting the PEM certificates in `ca_pem` (for tests and for
/// connecting to mailbox servers with a private CA).
pub fn client_config_from_pem(ca_pem: &[u8]) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|source| TlsError::Pem { what: "CA", source })?;
        roots.add(cert).map_err(TlsError::Ca)?;
    }
    if roots.is_empty() {
        // An empty --ca would trust nothing and fail every handshake later, far from the
        // cause.
        return Err(TlsError::NoCertificate);
    }
    client_config_with_roots(roots)
}

/// Where distributions keep the bundle of the system's trusted CAs (Debian and Ubuntu,
/// Fedora and RHEL, openSUSE, Alpine), tried in order after `SSL_CERT_FILE`.
const SYSTEM_CA_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// A client configuration trusting the system's CAs: the bundle `SSL_CERT_FILE` names (as
/// OpenSSL and rustls-native-certs honour it), else the first distribution bundle that
/// exists. Certificates in it that rustls cannot use are skipped, as rustls-native-certs
/// does, rather than failing the whole bundle over one odd root.
pub fn system_client_config() -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let from_env = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
    let path = from_env.unwrap_or_else(|| {
        SYSTEM_CA_BUNDLES
            .iter()
            .map(std::path::PathBuf::from)
            .find(|p| p.exists())
            .unwrap_or_else(|| SYSTEM_CA_BUNDLES[0].into())
    });
    let pem = std::fs::read(&path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::Pem { what: "CA", source })?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _unusable) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(TlsError::NoCertificate);
    }
    client_config_with_roots(roots)
}

/// A client configuration trusting the CA certificates in the PEM file `ca` (a `--ca` flag),
/// else the system's.
pub fn client_config(ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    match ca {
        None => system_client_config(),
        Some(path) => {
            let pem = std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.display().to_string(),
                source,
            })?;
            client_config_from_pem(&pem)
        }
    }
}

fn client_config_with_roots(
    roots: rustls::RootCertStore,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Setup)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A self-signed certificate for `names`: (certificate PEM, private key PEM).
pub fn self_signed(names: &[&str]) -> Result<(String, String), TlsError> {
    let names: Vec<String> = names.iter().map(|n| (*n).to_string()).collect();
    let cert = rcgen::generate_simple_self_signed(names)?;
    Ok((cert.cert.pem(), cert.signing_key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_loads_and_mismatches_are_refused() {
        let (cert, key) = self_signed(&["localhost"]).unwrap();
        assert!(server_config_from_pem(cert.as_bytes(), key.as_bytes(), &[b"imap"]).is_ok());
        let (_, other_key) = self_signed(&["localhost"]).unwrap();
        assert!(server_config_from_pem(cert.as_bytes(), other_key.as_bytes(), &[]).is_err());
        assert!(server_config_from_pem(b"junk", key.as_bytes(), &[]).is_err());
        assert!(client_config_from_pem(cert.as_bytes()).is_ok());
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        assert!(matches!(
            client_config_from_pem(b""),
            Err(TlsError::NoCertificate)
        ));
        let e = client_config(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot read /nonexistent/ca.pem: "),
            "{e}"
        );
    }
}
