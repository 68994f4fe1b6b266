//! The TLS stream of relayed sessions, towards clients and towards mailbox servers, on
//! rustls' unbuffered API: our own buffers for ciphertext in, plaintext not yet read and
//! ciphertext not yet sent, each held only while it has bytes and freed when it empties.
//! rustls' buffered connection (and so tokio-rustls) keeps a 4 KiB read buffer for a
//! connection's whole life, a third of what an idle relayed IMAPS session costs; here an
//! idle session keeps only rustls' state (keys, the record layer) and its socket.
//!
//! [`accept`] (server side) and [`connect`] (client side) run the handshake; the stream is
//! then an `AsyncRead + AsyncWrite` like any other, and a [`crate::relay::ReadReady`] for
//! the relay. A failure of the TLS connection is final: every later read (once the bytes
//! decrypted before it are read) and write returns it, and after its alert the stream
//! sends nothing more but the socket's end. Socket errors are the socket's to report. A
//! peer that closes the socket without close_notify ends the stream, unless it stopped in
//! the middle of a record, which is `UnexpectedEof`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use std::ops::DerefMut;

use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::pki_types::ServerName;
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::UnbufferedConnectionCommon;
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, InsufficientSizeError, UnbufferedStatus,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// What one socket read asks for: a whole record of the largest size (16 KiB of
/// plaintext plus the TLS 1.2 worst case of padding, MAC and header).
const READ_CHUNK: usize = 16 * 1024 + 2048 + 5;

/// Ciphertext kept for processing at most: a handshake message may span records up to
/// 64 KiB (rustls refuses larger ones), plus a record being read. A peer sending more
/// without completing a message is refused rather than buffered.
const MAX_INCOMING: usize = 64 * 1024 + 2 * READ_CHUNK;

/// Plaintext encrypted per write call: four full records, one socket write.
const MAX_WRITE: usize = 64 * 1024;

/// Per record, what encryption adds at most (header, tag, content type, TLS 1.2
/// explicit nonce), so a write's buffer is sized right the first time.
const RECORD_OVERHEAD: usize = 64;

/// One side of rustls' unbuffered connection: the server's or the client's.
pub trait Side: DerefMut<Target = UnbufferedConnectionCommon<Self::Data>> + Unpin {
    /// rustls' per-side connection data.
    type Data;
    /// One turn of the state machine over `incoming`.
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self::Data>;
}

impl Side for UnbufferedServerConnection {
    type Data = ServerConnectionData;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self::Data> {
        self.process_tls_records(incoming)
    }
}

impl Side for UnbufferedClientConnection {
    type Data = ClientConnectionData;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self::Data> {
        self.process_tls_records(incoming)
    }
}

/// The stream towards a TLS client (IMAPS, POP3S, after STARTTLS).
pub type TlsServerStream<IO> = TlsStream<IO, UnbufferedServerConnection>;

/// The stream towards a TLS server (a mailbox server with `--upstream-tls`).
pub type TlsClientStream<IO> = TlsStream<IO, UnbufferedClientConnection>;

/// A TLS stream over `IO` (a `TcpStream` in the proxy), either side.
pub struct TlsStream<IO, C> {
    io: IO,
    conn: C,
    /// Ciphertext read but not yet processed. Empty (and unallocated) between records.
    incoming: Vec<u8>,
    /// Decrypted bytes not yet read: `plaintext[plain_at..]`.
    plaintext: Vec<u8>,
    plain_at: usize,
    /// Ciphertext not yet sent: `outgoing[out_at..]`.
    outgoing: Vec<u8>,
    out_at: usize,
    /// `incoming` may hold whole records not yet processed (a read stopped once its
    /// caller's buffer was full).
    records_waiting: bool,
    /// The peer sent close_notify or closed the socket: reads now return end-of-stream.
    peer_closed: bool,
    /// Our close_notify is queued.
    close_sent: bool,
    /// A read stopped on a full socket while sending a handshake message (a key update's
    /// answer): the next read must come back to send it, socket readable or not.
    read_blocked_on_send: bool,
    /// The first failure of the TLS connection itself (a record that failed to decrypt,
    /// an alert, too much or cut-short input). TLS does not recover from one: every later
    /// read and write returns it again, rather than encrypt more or repeat the alert.
    /// Socket errors are not kept here: the socket reports them itself, and a failed
    /// write must not hide what a read still has to give (a mailbox's last `* BYE`).
    failed: Option<(io::ErrorKind, String)>,
}

/// What one call of rustls' state machine came to.
enum Step {
    /// Something was done (a record decrypted, a handshake message encoded or sent):
    /// ask again.
    Progress,
    /// Nothing more without bytes from the peer.
    NeedInput,
    /// The caller's bytes (this many) or close_notify were encrypted into `outgoing`.
    Wrote(usize),
    /// Both sides have sent close_notify.
    Closed,
}

/// What the caller wants of a step.
enum Mode<'a, 'b> {
    /// Decrypted bytes go to the caller's buffer first, the rest to `plaintext`.
    Read(Option<&'a mut ReadBuf<'b>>),
    /// Encrypt these bytes.
    Write(&'a [u8]),
    /// Encrypt a close_notify.
    Close,
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Runs the server side of a TLS handshake on `io` and returns the stream, ready for
/// application data. The caller bounds it with a timeout.
pub async fn accept<IO>(
    io: IO,
    config: Arc<rustls::ServerConfig>,
) -> io::Result<TlsServerStream<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let conn = UnbufferedServerConnection::new(config).map_err(tls_error)?;
    handshake(io, conn).await
}

/// Runs the client side of a TLS handshake with `name` on `io` and returns the stream,
/// ready for application data. The caller bounds it with a timeout.
pub async fn connect<IO>(
    io: IO,
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
) -> io::Result<TlsClientStream<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let conn = UnbufferedClientConnection::new(config, name).map_err(tls_error)?;
    handshake(io, conn).await
}

async fn handshake<IO, C>(io: IO, conn: C) -> io::Result<TlsStream<IO, C>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    C: Side,
{
    let mut stream = TlsStream {
        io,
        conn,
        incoming: Vec::new(),
        plaintext: Vec::new(),
        plain_at: 0,
        outgoing: Vec::new(),
        out_at: 0,
        records_waiting: false,
        peer_closed: false,
        close_sent: false,
        read_blocked_on_send: false,
        failed: None,
    };
    std::future::poll_fn(|cx| stream.poll_handshake(cx)).await?;
    Ok(stream)
}

impl<IO, C: Side> TlsStream<IO, C> {
    /// Whether the handshake resumed an earlier session.
    pub fn resumed(&self) -> bool {
        self.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }

    /// The rustls connection (protocol version, cipher suite, SNI).
    pub fn connection(&self) -> &C {
        &self.conn
    }

    /// The transport underneath.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    /// Bytes of buffer this stream holds now, beyond rustls' own state: zero for an idle
    /// stream.
    pub fn buffered_capacity(&self) -> usize {
        self.incoming.capacity() + self.plaintext.capacity() + self.outgoing.capacity()
    }

    /// Decrypted bytes are waiting, or something will answer a read without the socket.
    fn read_answers_without_io(&self) -> bool {
        self.plain_at < self.plaintext.len()
            || self.records_waiting
            || self.peer_closed
            || self.read_blocked_on_send
            || self.failed.is_some()
    }

    /// The error the stream failed with earlier, again.
    fn failure(&self) -> Option<io::Error> {
        self.failed
            .as_ref()
            .map(|(kind, msg)| io::Error::new(*kind, msg.clone()))
    }

    /// Keeps `e` as the connection's failure for every later call, and returns it.
    fn fail(&mut self, e: io::Error) -> io::Error {
        if self.failed.is_none() {
            self.failed = Some((e.kind(), e.to_string()));
        }
        e
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin, C: Side> TlsStream<IO, C> {
    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let peer_gone = match ready!(self.step(cx, Mode::Read(None)))? {
                Step::Progress => false,
                Step::NeedInput if !self.conn.is_handshaking() => {
                    // Done; what rustls queued last (the session tickets) goes out now.
                    ready!(self.poll_send(cx))?;
                    self.records_waiting = !self.incoming.is_empty();
                    return Poll::Ready(Ok(()));
                }
                Step::NeedInput => ready!(self.poll_fill(cx))? == 0,
                Step::Wrote(_) | Step::Closed => true,
            };
            if peer_gone {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "peer closed the connection during the TLS handshake",
                )));
            }
        }
    }

    /// Sends `outgoing`; frees it once sent.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.out_at < self.outgoing.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.outgoing[self.out_at..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_at += n;
        }
        self.outgoing = Vec::new();
        self.out_at = 0;
        Poll::Ready(Ok(()))
    }

    /// Reads what the socket has into `incoming`; `Ok(0)` at its end.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.incoming.len() >= MAX_INCOMING {
            return Poll::Ready(Err(self.fail(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("TLS peer sent {MAX_INCOMING} bytes without a whole message"),
            ))));
        }
        self.incoming.reserve(READ_CHUNK);
        // read_buf, not a bare read: it fills the Vec's spare capacity without zeroing it,
        // and a short read clears the socket's readiness, so the next poll waits.
        let read = std::pin::pin!(self.io.read_buf(&mut self.incoming)).poll(cx);
        if read.is_pending() && self.incoming.is_empty() {
            self.incoming = Vec::new();
        }
        read
    }

    /// Best effort, once rustls failed: the alert it queued, after what `outgoing`
    /// already holds, without waiting for the socket.
    fn send_alert(&mut self, cx: &mut Context<'_>) {
        let status = self.conn.process(&mut self.incoming);
        let discard = status.discard;
        if let Ok(ConnectionState::EncodeTlsData(mut e)) = status.state {
            let len = self.outgoing.len();
            self.outgoing.resize(len + RECORD_OVERHEAD, 0);
            let n = e.encode(&mut self.outgoing[len..]).unwrap_or(0);
            self.outgoing.truncate(len + n);
        }
        self.incoming.drain(..discard);
        let _ = self.poll_send(cx);
    }

    /// One turn of rustls' state machine, always on `incoming`: rustls may hold part of a
    /// handshake message that spans records, and expects its bytes there on every call. A
    /// write or close that decrypts records keeps their bytes for the next read.
    fn step(&mut self, cx: &mut Context<'_>, mode: Mode<'_, '_>) -> Poll<io::Result<Step>> {
        let reading = matches!(mode, Mode::Read(_));
        let Self {
            io,
            conn,
            incoming,
            plaintext,
            plain_at,
            outgoing,
            out_at,
            peer_closed,
            close_sent,
            read_blocked_on_send,
            ..
        } = self;
        let status = conn.process(incoming);
        let mut discard = status.discard;
        // A failed socket write is the socket's error, not the TLS connection's.
        let mut socket_error = false;
        let step = match status.state {
            Err(e) => Err(tls_error(e)),
            Ok(ConnectionState::ReadTraffic(mut records)) => {
                let mut out = match mode {
                    Mode::Read(out) => out,
                    _ => None,
                };
                let mut failed = None;
                while let Some(record) = records.next_record() {
                    match record {
                        Ok(record) => {
                            discard += record.discard;
                            let mut payload = record.payload;
                            if let Some(out) = out.as_deref_mut() {
                                let n = payload.len().min(out.remaining());
                                out.put_slice(&payload[..n]);
                                payload = &payload[n..];
                            }
                            if *plain_at == plaintext.len() {
                                plaintext.clear();
                                *plain_at = 0;
                            }
                            plaintext.extend_from_slice(payload);
                        }
                        Err(e) => {
                            failed = Some(tls_error(e));
                            break;
                        }
                    }
                }
                match failed {
                    Some(e) => Err(e),
                    None => Ok(Step::Progress),
                }
            }
            Ok(ConnectionState::EncodeTlsData(mut e)) => {
                let mut result = Ok(Step::Progress);
                let mut want = 4096;
                loop {
                    let len = outgoing.len();
                    outgoing.resize(len + want, 0);
                    match e.encode(&mut outgoing[len..]) {
                        Ok(n) => {
                            outgoing.truncate(len + n);
                            break;
                        }
                        Err(EncodeError::InsufficientSize(InsufficientSizeError {
                            required_size,
                        })) => {
                            outgoing.truncate(len);
                            want = required_size;
                        }
                        Err(EncodeError::AlreadyEncoded) => {
                            outgoing.truncate(len);
                            result = Err(io::Error::other("TLS record encoded twice"));
                            break;
                        }
                    }
                }
                result
            }
            Ok(ConnectionState::TransmitTlsData(transmit)) => {
                let mut sent = Poll::Ready(Ok(()));
                while *out_at < outgoing.len() {
                    match Pin::new(&mut *io).poll_write(cx, &outgoing[*out_at..]) {
                        Poll::Ready(Ok(0)) => {
                            sent = Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                            break;
                        }
                        Poll::Ready(Ok(n)) => *out_at += n,
                        Poll::Ready(Err(e)) => {
                            sent = Poll::Ready(Err(e));
                            break;
                        }
                        Poll::Pending => {
                            sent = Poll::Pending;
                            break;
                        }
                    }
                }
                *read_blocked_on_send = reading && sent.is_pending();
                match sent {
                    Poll::Ready(Ok(())) => {
                        *outgoing = Vec::new();
                        *out_at = 0;
                        transmit.done();
                        Ok(Step::Progress)
                    }
                    Poll::Ready(Err(e)) => {
                        socket_error = true;
                        Err(e)
                    }
                    Poll::Pending => {
                        // The discard still applies: rustls has consumed those bytes.
                        incoming.drain(..discard);
                        if incoming.is_empty() {
                            *incoming = Vec::new();
                        }
                        return Poll::Pending;
                    }
                }
            }
            Ok(ConnectionState::BlockedHandshake) => match mode {
                Mode::Read(_) | Mode::Close => Ok(Step::NeedInput),
                Mode::Write(_) => Err(io::Error::other("TLS handshake not complete")),
            },
            Ok(ConnectionState::WriteTraffic(mut traffic)) => match mode {
                Mode::Read(_) => Ok(Step::NeedInput),
                Mode::Write(data) => {
                    let data = &data[..data.len().min(MAX_WRITE)];
                    let mut want = data.len() + (data.len() / 16384 + 1) * RECORD_OVERHEAD;
                    loop {
                        let len = outgoing.len();
                        outgoing.resize(len + want, 0);
                        match traffic.encrypt(data, &mut outgoing[len..]) {
                            Ok(n) => {
                                outgoing.truncate(len + n);
                                break Ok(Step::Wrote(data.len()));
                            }
                            Err(EncryptError::InsufficientSize(InsufficientSizeError {
                                required_size,
                            })) => {
                                outgoing.truncate(len);
                                want = required_size;
                            }
                            Err(e) => {
                                outgoing.truncate(len);
                                break Err(io::Error::other(e));
                            }
                        }
                    }
                }
                Mode::Close => {
                    // Room for the alert, and for whatever rustls sends before it (a key
                    // update's answer): it says how much when that is more.
                    let mut want = RECORD_OVERHEAD;
                    loop {
                        let len = outgoing.len();
                        outgoing.resize(len + want, 0);
                        match traffic.queue_close_notify(&mut outgoing[len..]) {
                            Ok(n) => {
                                outgoing.truncate(len + n);
                                *close_sent = true;
                                break Ok(Step::Wrote(0));
                            }
                            Err(EncryptError::InsufficientSize(InsufficientSizeError {
                                required_size,
                            })) if required_size > want => {
                                outgoing.truncate(len);
                                want = required_size;
                            }
                            Err(e) => {
                                outgoing.truncate(len);
                                break Err(io::Error::other(e));
                            }
                        }
                    }
                }
            },
            Ok(ConnectionState::PeerClosed) => {
                *peer_closed = true;
                Ok(Step::Progress)
            }
            Ok(ConnectionState::Closed) => {
                *peer_closed = true;
                Ok(Step::Closed)
            }
            // Early data is never offered (max_early_data_size is 0); any state a later
            // rustls adds is refused rather than guessed at.
            Ok(other) => Err(io::Error::other(format!("unexpected TLS state {other:?}"))),
        };
        incoming.drain(..discard);
        if incoming.is_empty() {
            *incoming = Vec::new();
        }
        match step {
            Err(e) if !socket_error => {
                let e = self.fail(e);
                self.send_alert(cx);
                Poll::Ready(Err(e))
            }
            step => Poll::Ready(step),
        }
    }

    /// `AsyncRead::poll_read` of a stream that has not failed.
    fn poll_read_plaintext(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        loop {
            if self.plain_at < self.plaintext.len() {
                let n = (self.plaintext.len() - self.plain_at).min(buf.remaining());
                buf.put_slice(&self.plaintext[self.plain_at..self.plain_at + n]);
                self.plain_at += n;
                if self.plain_at == self.plaintext.len() {
                    self.plaintext = Vec::new();
                    self.plain_at = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if self.peer_closed || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            let step = match self.step(cx, Mode::Read(Some(&mut *buf))) {
                // Bytes already given to the caller are theirs, whatever blocks now (a
                // handshake message waiting for a full socket): rustls will not give
                // them again.
                Poll::Pending if buf.filled().len() > before => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
                Poll::Ready(step) => step,
            };
            let step = match step {
                // The connection failed after some records gave bytes to the caller:
                // those first; the next read returns the failure, which is kept.
                Err(_) if buf.filled().len() > before && self.failed.is_some() => {
                    return Poll::Ready(Ok(()))
                }
                step => step?,
            };
            match step {
                Step::Progress => {
                    if buf.remaining() == 0 {
                        self.records_waiting = !self.incoming.is_empty();
                        return Poll::Ready(Ok(()));
                    }
                }
                Step::NeedInput => {
                    self.records_waiting = false;
                    if buf.filled().len() > before {
                        return Poll::Ready(Ok(()));
                    }
                    // A peer that closes the socket without close_notify is taken at
                    // its word: IMAP and POP3 frame their own data, and clients do it.
                    // Not in the middle of a record, though: that is a cut connection.
                    if ready!(self.poll_fill(cx))? == 0 {
                        if !self.incoming.is_empty() {
                            return Poll::Ready(Err(self.fail(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "TLS peer closed the connection in the middle of a record \
                                 or handshake message",
                            ))));
                        }
                        self.peer_closed = true;
                    }
                }
                Step::Closed | Step::Wrote(_) => return Poll::Ready(Ok(())),
            }
        }
    }

    /// `AsyncWrite::poll_write` of a stream that has not failed.
    fn poll_write_plaintext(
        &mut self,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        // What was encrypted before goes first: the backpressure of the socket.
        ready!(self.poll_send(cx))?;
        loop {
            match ready!(self.step(cx, Mode::Write(data)))? {
                Step::Progress => {}
                Step::Wrote(n) => {
                    // Sent now if the socket takes it, else by the next write or flush.
                    if let Poll::Ready(Err(e)) = self.poll_send(cx) {
                        return Poll::Ready(Err(e));
                    }
                    return Poll::Ready(Ok(n));
                }
                Step::NeedInput | Step::Closed => {
                    return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()))
                }
            }
        }
    }

    /// Our close_notify, then the socket's end.
    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_send(cx))?;
        while !self.close_sent {
            match ready!(self.step(cx, Mode::Close))? {
                Step::Progress => {}
                // Not yet or no longer able to send: the socket's end will do.
                Step::NeedInput | Step::Closed => break,
                Step::Wrote(_) => ready!(self.poll_send(cx))?,
            }
        }
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin, C: Side> AsyncRead for TlsStream<IO, C> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // Bytes decrypted before a failure are authentic and go out first.
        if this.plain_at == this.plaintext.len() {
            if let Some(e) = this.failure() {
                return Poll::Ready(Err(e));
            }
        }
        this.poll_read_plaintext(cx, buf)
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin, C: Side> AsyncWrite for TlsStream<IO, C> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(e) = this.failure() {
            return Poll::Ready(Err(e));
        }
        this.poll_write_plaintext(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(e) = this.failure() {
            return Poll::Ready(Err(e));
        }
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.failed.is_some() {
            // No close_notify after a fatal alert, only the socket's end: one more try
            // at the alert if the socket was full when it was queued, without waiting.
            let _ = this.poll_send(cx);
            this.outgoing = Vec::new();
            this.out_at = 0;
            return Pin::new(&mut this.io).poll_shutdown(cx);
        }
        this.poll_close(cx)
    }
}

impl<IO, C> std::fmt::Debug for TlsStream<IO, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream")
            .field("incoming", &self.incoming.len())
            .field("plaintext", &(self.plaintext.len() - self.plain_at))
            .field("outgoing", &(self.outgoing.len() - self.out_at))
            .field("peer_closed", &self.peer_closed)
            .finish_non_exhaustive()
    }
}

impl<C: Side> crate::relay::ReadReady for TlsStream<tokio::net::TcpStream, C> {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.read_answers_without_io() {
            return Poll::Ready(Ok(()));
        }
        self.io.poll_read_ready(cx)
    }
}
