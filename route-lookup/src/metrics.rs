//! Counters and the latency histogram of the lookup endpoint, rendered for Prometheus.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::metrics::{Histogram, PromWriter};

use crate::http::SoapOutcome;
use crate::oauth::Outcome as OAuthOutcome;
use crate::password_checks::PasswordChecks;
use crate::resolve::Reason;
use crate::store::PoolState;

/// Lookup counters; shared by all requests.
#[derive(Debug, Default)]
pub struct LookupMetrics {
    ok: AtomicU64,
    failed: [AtomicU64; Reason::ALL.len()],
    latency: Histogram,
    soap: [AtomicU64; SoapOutcome::ALL.len()],
    oauth: [AtomicU64; OAuthOutcome::ALL.len()],
}

impl LookupMetrics {
    /// Records one lookup.
    pub fn record(&self, outcome: Result<(), Reason>, took: Duration) {
        match outcome {
            Ok(()) => self.ok.fetch_add(1, Ordering::Relaxed),
            Err(r) => {
                let i = Reason::ALL.iter().position(|&x| x == r).unwrap_or(0);
                self.failed[i].fetch_add(1, Ordering::Relaxed)
            }
        };
        self.latency.record(took);
    }

    /// Records one SOAP AuthRequest.
    pub fn record_soap(&self, outcome: SoapOutcome) {
        let i = SoapOutcome::ALL
            .iter()
            .position(|&x| x == outcome)
            .unwrap_or(0);
        self.soap[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Records one bearer-token check.
    pub fn record_oauth(&self, outcome: OAuthOutcome) {
        let i = OAuthOutcome::ALL
            .iter()
            .position(|&x| x == outcome)
            .unwrap_or(0);
        self.oauth[i].fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus page, with the password-check bound's counters and, when TLS is on,
    /// the certificates' reloads and expiry.
    pub fn render(
        &self,
        pool: PoolState,
        checks: &PasswordChecks,
        certs: Option<&common::certs::CertStore>,
    ) -> String {
        let mut w = PromWriter::new();
        w.header(
            "route_lookup_lookups_total",
            "counter",
            "nginx-lookup requests by outcome",
        );
        w.sample(
            "route_lookup_lookups_total",
            &[("outcome", "ok")],
            self.ok.load(Ordering::Relaxed),
        );
        for (r, c) in Reason::ALL.iter().zip(&self.failed) {
            w.sample(
                "route_lookup_lookups_total",
                &[("outcome", r.label())],
                c.load(Ordering::Relaxed),
            );
        }
        w.histogram(
            "route_lookup_lookup_duration_seconds",
            "nginx-lookup latency",
            &self.latency,
        );
        w.header(
            "route_lookup_soap_auth_total",
            "counter",
            "admin SOAP AuthRequests (MTA auth) by outcome",
        );
        for (o, c) in SoapOutcome::ALL.iter().zip(&self.soap) {
            w.sample(
                "route_lookup_soap_auth_total",
                &[("outcome", o.label())],
                c.load(Ordering::Relaxed),
            );
        }
        w.header(
            "route_lookup_oauth_introspections_total",
            "counter",
            "bearer-token checks of xoauth2/oauthbearer lookups by outcome (cached: an active answer reused)",
        );
        for (o, c) in OAuthOutcome::ALL.iter().zip(&self.oauth) {
            w.sample(
                "route_lookup_oauth_introspections_total",
                &[("outcome", o.label())],
                c.load(Ordering::Relaxed),
            );
        }
        let stats = checks.stats();
        w.header(
            "route_lookup_password_checks_total",
            "counter",
            "argon2 password checks by outcome (busy: refused, every worker taken)",
        );
        for (outcome, n) in [
            ("computed", &stats.computed),
            ("busy", &stats.busy),
            ("bad_hash", &stats.bad_hashes),
        ] {
            w.sample(
                "route_lookup_password_checks_total",
                &[("outcome", outcome)],
                n.load(Ordering::Relaxed),
            );
        }
        w.single(
            "route_lookup_password_checks_waiting",
            "gauge",
            "password checks waiting for a worker",
            checks.waiting(),
        );
        w.single(
            "route_lookup_password_check_workers",
            "gauge",
            "password checks computed at once (--password-checks)",
            checks.config().workers,
        );
        w.single(
            "route_lookup_db_pool_connections",
            "gauge",
            "database connections open",
            pool.size,
        );
        w.single(
            "route_lookup_db_pool_idle",
            "gauge",
            "database connections idle in the pool",
            pool.available,
        );
        w.single(
            "route_lookup_db_pool_waiting",
            "gauge",
            "requests waiting for a database connection",
            pool.waiting,
        );
        w.single(
            "route_lookup_db_pool_max",
            "gauge",
            "configured pool size",
            pool.max_size,
        );
        if let Some(certs) = certs {
            w.header(
                "route_lookup_tls_reloads_total",
                "counter",
                "certificate reloads on SIGHUP, by result (failed: the previous certificates stayed)",
            );
            for (result, v) in [("ok", &certs.reloads_ok), ("failed", &certs.reloads_failed)] {
                w.sample(
                    "route_lookup_tls_reloads_total",
                    &[("result", result)],
                    v.load(Ordering::Relaxed),
                );
            }
            w.header(
                "route_lookup_tls_certificate_expiry_seconds",
                "gauge",
                "when each certificate in use expires (notAfter), seconds since the epoch",
            );
            for (cert, at) in certs.expiries() {
                w.sample(
                    "route_lookup_tls_certificate_expiry_seconds",
                    &[("cert", &cert)],
                    at,
                );
            }
        }
        w.finish()
    }
}
