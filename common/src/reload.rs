//! SIGHUP means "reload", never "exit": what `systemctl reload`, `kill -HUP` and every
//! certificate-renewal hook send. [`crate::shutdown::Signals::install`] installs the
//! handler in every binary, so SIGHUP can no longer kill one with the default action;
//! parts that can reload something (certificates) follow [`subscribe`].

use std::sync::OnceLock;

use tokio::sync::watch;

/// Counts SIGHUPs received; subscribers see each change.
fn reloads() -> &'static watch::Sender<u64> {
    static RELOADS: OnceLock<watch::Sender<u64>> = OnceLock::new();
    RELOADS.get_or_init(|| watch::channel(0).0)
}

/// A watch that changes at every SIGHUP.
pub fn subscribe() -> watch::Receiver<u64> {
    reloads().subscribe()
}

/// Announces a reload (what the SIGHUP handler calls; tests call it instead of signalling).
pub fn announce() {
    let tx = reloads();
    tx.send_modify(|n| *n += 1);
    if tx.receiver_count() == 0 {
        tracing::info!("SIGHUP: nothing to reload in this program");
    }
}

/// Installs the SIGHUP handler (inside a Tokio runtime); idempotent.
pub(crate) fn install() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::hangup()) {
                Ok(mut hup) => {
                    tokio::spawn(async move {
                        while hup.recv().await.is_some() {
                            tracing::info!("SIGHUP: reloading");
                            announce();
                        }
                    });
                }
                Err(e) => tracing::warn!(error = %e, "cannot handle SIGHUP"),
            }
        }
    });
}
