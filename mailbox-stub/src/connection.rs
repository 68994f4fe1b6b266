//! One client connection: a protocol's [`Session`] state machine on the shared
//! line-session driver, with what both protocols do around it (the greeting faults, the
//! PROXY-header prefill, STARTTLS).

use std::io;
use std::sync::Arc;

use common::line_session::{Dialect, Dispatch, Ended, LineSession};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::env::Env;
use crate::imap::Outcome;

/// What a protocol's session gives the shared connection.
pub trait Session {
    /// What every session shares.
    fn env(&self) -> &Arc<Env>;
    /// Writes the greeting.
    fn greet(&self, out: &mut Vec<u8>);
    /// Marks the stream as encrypted (after STARTTLS/STLS).
    fn set_tls(&mut self);
}

/// A session and its driver.
pub struct Connection<L, H> {
    pub(crate) session: H,
    io: LineSession<L>,
}

impl<L: Dialect, H: Session> Connection<L, H> {
    /// `session` speaking `dialect` on a driver with the session's bounds.
    pub(crate) fn with(session: H, dialect: L, bounds: common::line_session::Bounds) -> Self {
        let io = LineSession::new(dialect, bounds, session.env().shutdown.clone());
        Self { session, io }
    }

    /// Bytes that arrived before the session started (after a PROXY header).
    pub fn prefill(&mut self, bytes: &[u8]) {
        self.io.prefill(bytes);
    }

    /// Marks the stream as encrypted (after STARTTLS/STLS).
    pub fn set_tls(&mut self) {
        self.session.set_tls();
    }

    /// Serves the connection until it closes or asks for TLS. `greet` is false when
    /// resuming after STARTTLS.
    pub async fn run<S>(&mut self, stream: &mut S, greet: bool) -> io::Result<Outcome>
    where
        S: AsyncRead + AsyncWrite + Unpin,
        H: Dispatch<L, S, Done = std::convert::Infallible>,
    {
        if greet {
            let faults = self.session.env().faults();
            if faults.stall {
                self.session.env().shutdown.triggered().await;
                return Ok(Outcome::Close);
            }
            if let Some(d) = faults.greeting_delay {
                tokio::time::sleep(d).await;
            }
            self.session.greet(self.io.out());
            self.io.flush(stream).await?;
        }
        Ok(match self.io.drive(stream, &mut self.session).await? {
            Ended::StartTls => Outcome::StartTls,
            Ended::Closed => Outcome::Close,
            Ended::Done(never) => match never {},
        })
    }
}
