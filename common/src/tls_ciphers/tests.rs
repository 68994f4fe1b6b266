//! The cipher policy against real rustls handshakes in memory: whose order wins, what a
//! narrowed list still offers, how lists are read and refused, and the key-type rule.

use std::sync::Arc;

use rustls::crypto::aws_lc_rs::cipher_suite as suite;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, ServerConnection};

use super::*;

/// A server under `policy` and a client offering `offer` in that order over `version`;
/// the suite the handshake settles on.
fn negotiate(
    policy: &CipherPolicy,
    offer: &[SupportedCipherSuite],
    version: &'static rustls::SupportedProtocolVersion,
) -> Result<SupportedCipherSuite, rustls::Error> {
    let (cert_pem, key_pem) = crate::tls::self_signed(&["localhost"]).unwrap();
    let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let mut server = policy
        .server_builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    policy.apply(&mut server);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client_provider = CryptoProvider {
        cipher_suites: offer.to_vec(),
        ..rustls::crypto::aws_lc_rs::default_provider()
    };
    let client = ClientConfig::builder_with_provider(Arc::new(client_provider))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    let mut c = ClientConnection::new(Arc::new(client), name).unwrap();
    let mut s = ServerConnection::new(Arc::new(server)).unwrap();
    for _ in 0..10 {
        let mut wire = Vec::new();
        c.write_tls(&mut wire).unwrap();
        s.read_tls(&mut wire.as_slice()).unwrap();
        s.process_new_packets()?;
        wire.clear();
        s.write_tls(&mut wire).unwrap();
        c.read_tls(&mut wire.as_slice()).unwrap();
        c.process_new_packets()?;
        if !c.is_handshaking() && !s.is_handshaking() {
            let ours = s.negotiated_cipher_suite().unwrap();
            assert_eq!(c.negotiated_cipher_suite().unwrap().suite(), ours.suite());
            return Ok(ours);
        }
    }
    panic!("the handshake did not finish");
}

const OPENSSL_TLS13_ORDER: [SupportedCipherSuite; 3] = [
    suite::TLS13_AES_256_GCM_SHA384,
    suite::TLS13_CHACHA20_POLY1305_SHA256,
    suite::TLS13_AES_128_GCM_SHA256,
];

const ECDSA_TLS12_AES256_FIRST: [SupportedCipherSuite; 3] = [
    suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
];

#[test]
fn the_server_order_wins_over_a_client_that_lists_aes_256_first() {
    for aes in [true, false] {
        let policy = CipherPolicy::recommended_for(aes);
        let (tls13, tls12) = if aes {
            (
                suite::TLS13_AES_128_GCM_SHA256,
                suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            )
        } else {
            (
                suite::TLS13_CHACHA20_POLY1305_SHA256,
                suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            )
        };
        let got = negotiate(&policy, &OPENSSL_TLS13_ORDER, &rustls::version::TLS13).unwrap();
        assert_eq!(name(got), name(tls13), "aes in hardware: {aes}");
        let got = negotiate(&policy, &ECDSA_TLS12_AES256_FIRST, &rustls::version::TLS12).unwrap();
        assert_eq!(name(got), name(tls12), "aes in hardware: {aes}");
    }
}

#[test]
fn with_client_order_the_clients_first_choice_wins() {
    let policy = CipherPolicy::recommended().with_server_order(false);
    let got = negotiate(&policy, &OPENSSL_TLS13_ORDER, &rustls::version::TLS13).unwrap();
    assert_eq!(name(got), "TLS_AES_256_GCM_SHA384");
    let got = negotiate(&policy, &ECDSA_TLS12_AES256_FIRST, &rustls::version::TLS12).unwrap();
    assert_eq!(name(got), "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384");
}

#[test]
fn a_listed_order_is_the_servers_and_unlisted_suites_are_not_offered() {
    let policy =
        CipherPolicy::parse("TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384", true).unwrap();
    let got = negotiate(&policy, &OPENSSL_TLS13_ORDER, &rustls::version::TLS13).unwrap();
    assert_eq!(name(got), "TLS_CHACHA20_POLY1305_SHA256");
    // Only AES-128 offered: nothing in common.
    let refused = negotiate(
        &policy,
        &[suite::TLS13_AES_128_GCM_SHA256],
        &rustls::version::TLS13,
    );
    assert!(refused.is_err(), "{refused:?}");
    // No TLS 1.2 suite listed: TLS 1.2 is off.
    let refused = negotiate(&policy, &ECDSA_TLS12_AES256_FIRST, &rustls::version::TLS12);
    assert!(refused.is_err(), "{refused:?}");
}

#[test]
fn lists_take_iana_and_openssl_names_in_any_case_and_separator() {
    let policy = CipherPolicy::parse(
        "tls_aes_256_gcm_sha384, ECDHE-RSA-AES128-GCM-SHA256:TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        false,
    )
    .unwrap();
    let names: Vec<&str> = policy.suites().iter().map(|s| name(*s)).collect();
    assert_eq!(
        names,
        [
            "TLS_AES_256_GCM_SHA384",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
        ]
    );
    assert!(!policy.server_order());
    assert_eq!(policy.versions().len(), 2);
    assert_eq!(
        policy.to_string(),
        "TLS_AES_256_GCM_SHA384:TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256:TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 (client order)"
    );
}

#[test]
fn bad_lists_are_refused_with_their_cause() {
    match CipherPolicy::parse("TLS_AES_128_GCM_SHA256:AES128-SHA", true) {
        Err(CipherError::Unknown { name, known }) => {
            assert_eq!(name, "AES128-SHA");
            assert!(
                known.contains(
                    "TLS_AES_128_GCM_SHA256, TLS_CHACHA20_POLY1305_SHA256, TLS_AES_256_GCM_SHA384, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 (ECDHE-ECDSA-AES128-GCM-SHA256), "
                ),
                "{known}"
            );
            assert!(
                known.ends_with(
                    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 (ECDHE-RSA-AES256-GCM-SHA384)"
                ),
                "{known}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        CipherPolicy::parse("TLS_AES_128_GCM_SHA256,tls_aes_128_gcm_sha256", true).unwrap_err(),
        CipherError::Twice("TLS_AES_128_GCM_SHA256")
    );
    assert_eq!(
        CipherPolicy::parse("ECDHE-RSA-AES128-GCM-SHA256", true).unwrap_err(),
        CipherError::NoTls13
    );
    assert_eq!(
        CipherPolicy::parse(" , ", true).unwrap_err(),
        CipherError::NoTls13
    );
}

#[test]
fn the_recommended_list_offers_every_suite_once_in_order() {
    let expected = |aes: bool| {
        let (first, second) = if aes {
            ("AES_128_GCM_SHA256", "CHACHA20_POLY1305_SHA256")
        } else {
            ("CHACHA20_POLY1305_SHA256", "AES_128_GCM_SHA256")
        };
        let mut all = Vec::new();
        for prefix in ["TLS_", "TLS_ECDHE_ECDSA_WITH_", "TLS_ECDHE_RSA_WITH_"] {
            for middle in [first, second, "AES_256_GCM_SHA384"] {
                all.push(format!("{prefix}{middle}"));
            }
        }
        all
    };
    for aes in [true, false] {
        let policy = CipherPolicy::recommended_for(aes);
        let names: Vec<&str> = policy.suites().iter().map(|s| name(*s)).collect();
        assert_eq!(names, expected(aes), "aes in hardware: {aes}");
        assert!(policy.server_order());
        // The round trip through the printed list gives the same policy.
        let printed = policy.to_string();
        let list = printed.split(' ').next().unwrap();
        let again = CipherPolicy::parse(list, true).unwrap();
        assert_eq!(again.to_string(), printed);
    }
}

#[test]
fn a_key_needs_a_tls12_suite_it_can_sign_while_tls12_is_on() {
    use rustls::SignatureAlgorithm::{ECDSA, ED25519, RSA};
    let all = CipherPolicy::recommended();
    for key in [RSA, ECDSA, ED25519] {
        assert_eq!(all.check_key(key), Ok(()), "{key:?}");
    }
    // TLS 1.3 only: any key type will do.
    let tls13 = CipherPolicy::parse("TLS_AES_128_GCM_SHA256", true).unwrap();
    assert!(!tls13.tls12());
    assert_eq!(tls13.check_key(RSA), Ok(()));
    let ecdsa_only =
        CipherPolicy::parse("TLS_AES_128_GCM_SHA256:ECDHE-ECDSA-AES128-GCM-SHA256", true).unwrap();
    assert_eq!(ecdsa_only.check_key(ECDSA), Ok(()));
    // Ed25519 signs for the ECDSA suites in TLS 1.2.
    assert_eq!(ecdsa_only.check_key(ED25519), Ok(()));
    let err = ecdsa_only.check_key(RSA).unwrap_err();
    assert_eq!(
        err,
        CipherError::NoTls12For {
            key: "RSA",
            fits: "ECDHE-RSA-AES128-GCM-SHA256, ECDHE-RSA-CHACHA20-POLY1305, ECDHE-RSA-AES256-GCM-SHA384".into()
        }
    );
    assert!(
        err.to_string().starts_with("no TLS 1.2 suite listed works with an RSA key; list one of ECDHE-RSA-AES128-GCM-SHA256, "),
        "{err}"
    );
    let rsa_only =
        CipherPolicy::parse("TLS_AES_128_GCM_SHA256:ECDHE-RSA-AES256-GCM-SHA384", true).unwrap();
    assert_eq!(rsa_only.check_key(RSA), Ok(()));
    assert!(matches!(
        rsa_only.check_key(ECDSA),
        Err(CipherError::NoTls12For { key: "ECDSA", .. })
    ));
}
