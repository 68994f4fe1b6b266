//! The one shutdown contract of every binary.
//!
//! 1. SIGTERM or SIGINT ([`Signals`], installed before any listener is bound) makes
//!    `main` call [`Shutdown::trigger`].
//! 2. Every listener holding a [`ShutdownWatch`] stops accepting; every session selects on
//!    [`ShutdownWatch::triggered`] and winds down at its next safe point.
//! 3. Each session holds a [`DrainGuard`]; `main` waits on [`Drain::wait`] until all guards
//!    are gone or the grace period runs out, logs which of the two happened, and exits.

use std::time::Duration;

use tokio::sync::{mpsc, watch};

/// The trigger side, owned by `main`.
#[derive(Debug)]
pub struct Shutdown {
    tx: watch::Sender<bool>,
}

/// The observing side, cloned into listeners and sessions.
#[derive(Debug, Clone)]
pub struct ShutdownWatch {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    /// A new, untriggered shutdown and a watch on it.
    pub fn new() -> (Self, ShutdownWatch) {
        let (tx, rx) = watch::channel(false);
        (Self { tx }, ShutdownWatch { rx })
    }

    /// Starts the shutdown; idempotent.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Another watch on this shutdown.
    pub fn watch(&self) -> ShutdownWatch {
        ShutdownWatch {
            rx: self.tx.subscribe(),
        }
    }
}

impl ShutdownWatch {
    /// Whether shutdown has begun.
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once shutdown has begun (or the trigger was dropped, which means the
    /// process is going away anyway). Cancel-safe, so it can sit in a `select!`.
    pub async fn triggered(&self) {
        let mut rx = self.rx.clone();
        let _ = rx.wait_for(|&down| down).await;
    }
}

/// SIGTERM and SIGINT handlers, installed when this is created. Create it before binding
/// any listener: a signal that arrives before the handlers exist kills the process with
/// the default action instead of starting a drain.
#[derive(Debug)]
pub struct Signals {
    #[cfg(unix)]
    handlers: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    /// Installs the handlers (inside a Tokio runtime), and SIGHUP's ([`crate::reload`]):
    /// from here on SIGHUP reloads and never ends the process.
    pub fn install() -> Self {
        crate::reload::install();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let handlers = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(term), Ok(int)) => Some((term, int)),
                _ => None,
            };
            Self { handlers }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// Waits for SIGTERM or SIGINT and returns the signal's name.
    pub async fn recv(mut self) -> &'static str {
        #[cfg(unix)]
        if let Some((term, int)) = self.handlers.as_mut() {
            return tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
        }
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}

/// Counts live sessions so that `main` can wait for them to finish.
#[derive(Debug)]
pub struct Drain {
    tx: mpsc::Sender<()>,
    rx: mpsc::Receiver<()>,
}

/// Held by a live session; dropping it tells the [`Drain`] the session is done.
#[derive(Debug, Clone)]
pub struct DrainGuard {
    _tx: mpsc::Sender<()>,
}

impl Default for Drain {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(1);
        Self { tx, rx }
    }
}

impl Drain {
    /// A drain with no sessions yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A guard for one more session (or a listener that hands out guards).
    pub fn guard(&self) -> DrainGuard {
        DrainGuard {
            _tx: self.tx.clone(),
        }
    }

    /// Waits until every guard is dropped, for at most `grace`. Returns `true` when the
    /// drain finished, `false` when the grace period cut it off.
    pub async fn wait(self, grace: Duration) -> bool {
        let Drain { tx, mut rx } = self;
        drop(tx);
        tokio::time::timeout(grace, async { while rx.recv().await.is_some() {} })
            .await
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn watch_sees_trigger() {
        let (shutdown, watch) = Shutdown::new();
        assert!(!watch.is_triggered());
        let w2 = watch.clone();
        let waiter = tokio::spawn(async move { w2.triggered().await });
        shutdown.trigger();
        waiter.await.unwrap();
        assert!(watch.is_triggered());
    }

    #[tokio::test]
    async fn drain_finishes_when_guards_drop() {
        let drain = Drain::new();
        let guard = drain.guard();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(guard);
        });
        assert!(drain.wait(Duration::from_secs(5)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn drain_is_cut_off_by_grace() {
        let drain = Drain::new();
        let _held = drain.guard();
        assert!(!drain.wait(Duration::from_secs(1)).await);
    }
}
