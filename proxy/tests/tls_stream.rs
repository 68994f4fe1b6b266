//! The TLS stream (rustls' unbuffered API under our own buffers) against
//! tokio-rustls' client: handshakes and data through pipes that pass 1, 2, 7, 100, 1500
//! or 65536 bytes per call, TLS 1.2 and 1.3, both ends of a close, resumption, a key
//! update, a plaintext client refused with an alert, and no buffer kept while idle; the
//! client side (towards mailbox servers) against tokio-rustls' server and against one
//! driven by hand that splits a handshake message across records; a bad record leaves the
//! stream failed for good, and a record cut short by the end is an error.

use std::sync::Arc;
use std::time::Duration;

use proxy::tls::{accept, TlsServerStream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

struct Keys {
    server: Arc<rustls::ServerConfig>,
    cert: String,
}

fn keys() -> Keys {
    let (cert, key) = common::tls::self_signed(&["localhost"]).unwrap();
    let server = common::tls::server_config_from_pem(cert.as_bytes(), key.as_bytes(), &[]).unwrap();
    Keys { server, cert }
}

/// A client configuration trusting `keys`' certificate, for `versions` only.
fn client_config(
    keys: &Keys,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile_certs(&keys.cert) {
        roots.add(c).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}

fn connector(keys: &Keys, versions: &[&'static rustls::SupportedProtocolVersion]) -> TlsConnector {
    TlsConnector::from(client_config(keys, versions))
}

/// The name the test certificate is for.
fn localhost() -> rustls::pki_types::ServerName<'static> {
    rustls::pki_types::ServerName::try_from("localhost").unwrap()
}

fn rustls_pemfile_certs(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|c| c.unwrap())
        .collect()
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

async fn handshake<IO>(
    server_io: IO,
    client_io: IO,
    keys: &Keys,
    connector: &TlsConnector,
) -> (TlsServerStream<IO>, tokio_rustls::client::TlsStream<IO>)
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let server = accept(server_io, keys.server.clone());
    let client = connector.connect(localhost(), client_io);
    let (s, c) = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::join!(server, client)
    })
    .await
    .expect("handshake timed out");
    (s.expect("server handshake"), c.expect("client handshake"))
}

/// Writes `out` while reading as many bytes as `expect` has, both at once (neither side
/// may wait for the other to read); the stream's halves once both are done.
async fn both_ways<S>(
    stream: S,
    out: Vec<u8>,
    expect: &[u8],
    what: &str,
) -> (tokio::io::ReadHalf<S>, tokio::io::WriteHalf<S>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut r, mut w) = tokio::io::split(stream);
    let writer = tokio::spawn(async move {
        w.write_all(&out).await.unwrap();
        w.flush().await.unwrap();
        w
    });
    let mut got = vec![0u8; expect.len()];
    r.read_exact(&mut got).await.unwrap();
    assert!(got == expect, "{what} bytes differ");
    (r, writer.await.unwrap())
}

/// A login-sized exchange, a bulk one each way, then the client's close_notify seen as
/// the end by the server and the server's as a clean end by the client.
async fn exchange<IO>(
    mut server: TlsServerStream<IO>,
    client: tokio_rustls::client::TlsStream<IO>,
    bulk: usize,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let up = pattern(bulk, 1);
    let down = pattern(bulk, 2);
    let (up2, down2) = (up.clone(), down.clone());
    let client_side = tokio::spawn(async move {
        let mut client = client;
        client.write_all(b"a LOGIN ann secret\r\n").await.unwrap();
        client.flush().await.unwrap();
        let mut answer = [0u8; 16];
        client.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"a OK Logged in\r\n");
        let (mut r, mut w) = both_ways(client, up2, &down2, "server -> client").await;
        w.shutdown().await.unwrap();
        let mut rest = Vec::new();
        // The server's close_notify: a clean end, not an error.
        r.read_to_end(&mut rest)
            .await
            .expect("clean end from the server");
        assert!(rest.is_empty());
    });
    let mut line = [0u8; 20];
    server.read_exact(&mut line).await.unwrap();
    assert_eq!(&line, b"a LOGIN ann secret\r\n");
    server.write_all(b"a OK Logged in\r\n").await.unwrap();
    server.flush().await.unwrap();
    let (mut r, mut w) = both_ways(server, down, &up, "client -> server").await;
    let mut after = [0u8; 1];
    assert_eq!(
        r.read(&mut after).await.unwrap(),
        0,
        "client's close_notify is the end"
    );
    w.shutdown().await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), client_side)
        .await
        .expect("client side timed out")
        .unwrap();
}

/// A pipe end that moves at most `chunk` bytes per read or write call, so records and
/// handshake messages arrive in pieces of that size. (A pipe that holds only that many
/// bytes would instead deadlock any two TLS peers that both write a flight before
/// reading, which TCP's buffers never do.) While `writes_fail` is set its writes fail, as
/// a socket's do after the peer reset it, and what it already received can still be read.
struct Dribble {
    io: tokio::io::DuplexStream,
    chunk: usize,
    writes_fail: Arc<std::sync::atomic::AtomicBool>,
}

impl Dribble {
    fn new(io: tokio::io::DuplexStream, chunk: usize) -> Self {
        Dribble {
            io,
            chunk,
            writes_fail: Arc::default(),
        }
    }
}

impl AsyncRead for Dribble {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let n = buf.remaining().min(self.chunk);
        let mut part = tokio::io::ReadBuf::new(&mut buf.initialize_unfilled()[..n]);
        let polled = std::pin::Pin::new(&mut self.io).poll_read(cx, &mut part);
        let got = part.filled().len();
        buf.advance(got);
        polled
    }
}

impl AsyncWrite for Dribble {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.writes_fail.load(std::sync::atomic::Ordering::Relaxed) {
            return std::task::Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()));
        }
        let n = data.len().min(self.chunk);
        std::pin::Pin::new(&mut self.io).poll_write(cx, &data[..n])
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn handshake_and_data_in_pieces_of_every_size() {
    let keys = keys();
    for versions in [
        &[&rustls::version::TLS13][..],
        &[&rustls::version::TLS12][..],
    ] {
        let connector = connector(&keys, versions);
        for chunk in [1, 2, 7, 100, 1500, 65536] {
            let (a, b) = tokio::io::duplex(1 << 20);
            let (a, b) = (Dribble::new(a, chunk), Dribble::new(b, chunk));
            let (server, client) = handshake(a, b, &keys, &connector).await;
            assert_eq!(
                server.connection().protocol_version(),
                Some(versions[0].version),
                "chunk {chunk}"
            );
            let bulk = if chunk < 100 { 40_000 } else { 300_000 };
            exchange(server, client, bulk).await;
        }
    }
}

async fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    let b = l.accept().await.unwrap().0;
    (b, a)
}

#[tokio::test]
async fn over_tcp_moves_megabytes_and_keeps_no_buffer_when_idle() {
    let keys = keys();
    let connector = connector(&keys, &[&rustls::version::TLS13]);
    let (s, c) = pair().await;
    let (mut server, mut client) = handshake(s, c, &keys, &connector).await;
    assert_eq!(server.buffered_capacity(), 0, "after the handshake");
    client.write_all(b"a NOOP\r\n").await.unwrap();
    client.flush().await.unwrap();
    let mut line = [0u8; 8];
    server.read_exact(&mut line).await.unwrap();
    // 3 MiB in one write, read by the client as it comes.
    let big = pattern(3 << 20, 9);
    let expect = big.clone();
    let reader = tokio::spawn(async move {
        let mut got = vec![0u8; expect.len()];
        client.read_exact(&mut got).await.unwrap();
        assert!(got == expect);
        client
    });
    server.write_all(&big).await.unwrap();
    server.flush().await.unwrap();
    let mut client = reader.await.unwrap();
    assert_eq!(server.buffered_capacity(), 0, "after a bulk write, flushed");
    client.write_all(b"a LOGOUT\r\n").await.unwrap();
    client.flush().await.unwrap();
    let mut line = [0u8; 10];
    server.read_exact(&mut line).await.unwrap();
    assert_eq!(&line, b"a LOGOUT\r\n");
    assert_eq!(server.buffered_capacity(), 0, "after a read, all consumed");
}

#[tokio::test]
async fn a_saved_session_resumes() {
    let keys = keys();
    for versions in [
        &[&rustls::version::TLS13][..],
        &[&rustls::version::TLS12][..],
    ] {
        let connector = connector(&keys, versions);
        let mut resumed = Vec::new();
        for _ in 0..3 {
            let (s, c) = pair().await;
            let (mut server, mut client) = handshake(s, c, &keys, &connector).await;
            // The client takes its ticket from the first records after the handshake.
            server.write_all(b"* OK ready\r\n").await.unwrap();
            server.flush().await.unwrap();
            let mut greeting = [0u8; 12];
            client.read_exact(&mut greeting).await.unwrap();
            resumed.push(server.resumed());
        }
        assert_eq!(resumed, [false, true, true], "{versions:?}");
    }
}

#[tokio::test]
async fn a_key_update_in_the_middle() {
    let keys = keys();
    let connector = connector(&keys, &[&rustls::version::TLS13]);
    let (s, c) = pair().await;
    let (mut server, mut client) = handshake(s, c, &keys, &connector).await;
    for round in 0..3u8 {
        client.get_mut().1.refresh_traffic_keys().unwrap();
        client.write_all(&[b'a' + round; 5]).await.unwrap();
        client.flush().await.unwrap();
        let mut got = [0u8; 5];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(got, [b'a' + round; 5]);
        server.write_all(&[b'A' + round; 5]).await.unwrap();
        server.flush().await.unwrap();
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(got, [b'A' + round; 5]);
    }
}

#[tokio::test]
async fn a_plaintext_client_is_refused_with_an_alert() {
    let keys = keys();
    let (s, mut c) = pair().await;
    let server = tokio::spawn({
        let config = keys.server.clone();
        async move { accept(s, config).await.map(|_| ()) }
    });
    c.write_all(b"a LOGIN ann secret\r\n").await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .expect_err("not TLS");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut reply))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.first(), Some(&21), "a TLS alert record: {reply:?}");
}

#[tokio::test]
async fn a_socket_closed_without_close_notify_is_the_end() {
    let keys = keys();
    let connector = connector(&keys, &[&rustls::version::TLS13]);
    let (s, c) = pair().await;
    let (mut server, mut client) = handshake(s, c, &keys, &connector).await;
    // The client reads first, so its socket holds nothing unread (the tickets) and its
    // close is a FIN, not a reset.
    server.write_all(b"* OK\r\n").await.unwrap();
    server.flush().await.unwrap();
    let mut greeting = [0u8; 6];
    client.read_exact(&mut greeting).await.unwrap();
    client.write_all(b"bye").await.unwrap();
    client.flush().await.unwrap();
    let (tcp, _) = client.into_inner();
    drop(tcp);
    let mut got = Vec::new();
    server.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"bye");
}

#[tokio::test]
async fn a_peer_gone_mid_handshake_is_an_error() {
    let keys = keys();
    let (s, mut c) = pair().await;
    // Half a ClientHello record header, then the end.
    c.write_all(&[22, 3, 1]).await.unwrap();
    drop(c);
    let err = accept(s, keys.server.clone())
        .await
        .map(|_| ())
        .expect_err("cut short");
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof, "{err}");
}

/// The client side (towards mailbox servers) against tokio-rustls' server, in pieces of
/// every size: handshake, both ways at once, each end's close_notify seen as a clean end,
/// and no buffer kept by the idle stream.
#[tokio::test]
async fn the_client_side_against_tokio_rustls() {
    let keys = keys();
    let acceptor = tokio_rustls::TlsAcceptor::from(keys.server.clone());
    for versions in [
        &[&rustls::version::TLS13][..],
        &[&rustls::version::TLS12][..],
    ] {
        let client_config = client_config(&keys, versions);
        for chunk in [1, 7, 1500, 65536] {
            let (a, b) = tokio::io::duplex(1 << 20);
            let (a, b) = (Dribble::new(a, chunk), Dribble::new(b, chunk));
            let (client, server) = tokio::time::timeout(Duration::from_secs(20), async {
                tokio::join!(
                    proxy::tls::connect(a, client_config.clone(), localhost()),
                    acceptor.accept(b)
                )
            })
            .await
            .expect("handshake timed out");
            let (client, server) = (client.expect("client handshake"), server.unwrap());
            assert_eq!(
                client.connection().protocol_version(),
                Some(versions[0].version),
                "chunk {chunk}"
            );
            assert_eq!(client.buffered_capacity(), 0, "idle after the handshake");
            let up = pattern(30_000, 3);
            let down = pattern(30_000, 4);
            let server_side = tokio::spawn({
                let (up, down) = (up.clone(), down.clone());
                async move {
                    let (mut r, mut w) = both_ways(server, down, &up, "client -> server").await;
                    let mut after = [0u8; 1];
                    assert_eq!(r.read(&mut after).await.unwrap(), 0, "the client's close");
                    w.shutdown().await.unwrap();
                }
            });
            let (mut r, mut w) = both_ways(client, up, &down, "server -> client").await;
            w.shutdown().await.unwrap();
            let mut rest = Vec::new();
            r.read_to_end(&mut rest)
                .await
                .expect("clean end from the server");
            assert!(rest.is_empty());
            tokio::time::timeout(Duration::from_secs(20), server_side)
                .await
                .expect("server side timed out")
                .unwrap();
        }
    }
}

/// A write while records the reader has not asked for are still waiting: the write step
/// decrypts them on its way (rustls needs every byte it was given) and keeps them, in
/// order, for the next read.
#[tokio::test]
async fn a_write_between_reads_keeps_the_records_it_passes() {
    let keys = keys();
    let connector = connector(&keys, &[&rustls::version::TLS13]);
    for chunk in [7, 1500, 65536] {
        let (a, b) = tokio::io::duplex(1 << 20);
        let (a, b) = (Dribble::new(a, chunk), Dribble::new(b, chunk));
        let (mut server, mut client) = handshake(a, b, &keys, &connector).await;
        let up = pattern(100_000, 5);
        client.write_all(&up).await.unwrap();
        client.flush().await.unwrap();
        let mut got = vec![0u8; 10];
        server.read_exact(&mut got).await.unwrap();
        for i in 0..5u8 {
            server.write_all(&[b'0' + i; 3]).await.unwrap();
            server.flush().await.unwrap();
            let mut more = vec![0u8; 1000];
            server.read_exact(&mut more).await.unwrap();
            got.extend_from_slice(&more);
        }
        let mut rest = vec![0u8; up.len() - got.len()];
        server.read_exact(&mut rest).await.unwrap();
        got.extend_from_slice(&rest);
        assert!(got == up, "chunk {chunk}: client -> server bytes differ");
        let mut answers = [0u8; 15];
        client.read_exact(&mut answers).await.unwrap();
        assert_eq!(&answers, b"000111222333444");
    }
}

/// The TLS records in `bytes`, whole, in order.
fn records(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        assert!(bytes.len() >= 5, "a record header cut short");
        let len = 5 + u16::from_be_bytes([bytes[3], bytes[4]]) as usize;
        out.push(bytes[..len].to_vec());
        bytes = &bytes[len..];
    }
    out
}

/// A server driven by hand (rustls' buffered connection) so that the test decides which of
/// its records reach our client stream, and when.
struct HandServer {
    conn: rustls::ServerConnection,
    io: tokio::io::DuplexStream,
}

impl HandServer {
    /// Reads what the client sent and feeds it to rustls.
    async fn take(&mut self) {
        let mut buf = vec![0u8; 65536];
        let n = self.io.read(&mut buf).await.unwrap();
        assert!(n > 0, "client closed");
        self.conn.read_tls(&mut &buf[..n]).unwrap();
        self.conn.process_new_packets().unwrap();
    }

    /// What rustls has queued to send, as records.
    fn queued(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while self.conn.wants_write() {
            self.conn.write_tls(&mut out).unwrap();
        }
        records(&out)
    }

    async fn send(&mut self, records: &[Vec<u8>]) {
        self.io.write_all(&records.concat()).await.unwrap();
    }
}

/// Our client stream connected to a [`HandServer`] whose records are at most 32 bytes
/// before encryption (27 bytes of a message each); the server's session tickets, which
/// follow the handshake, are returned unsent, as records.
async fn hand_handshake(
    keys: &Keys,
    client_config: Arc<rustls::ClientConfig>,
) -> (
    HandServer,
    proxy::tls::TlsClientStream<tokio::io::DuplexStream>,
    Vec<Vec<u8>>,
) {
    let mut config = (*keys.server).clone();
    config.max_fragment_size = Some(32);
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    let mut server = HandServer {
        conn: rustls::ServerConnection::new(Arc::new(config)).unwrap(),
        io: server_io,
    };
    let connecting = tokio::spawn(proxy::tls::connect(client_io, client_config, localhost()));
    let mut tickets = Vec::new();
    while server.conn.is_handshaking() {
        server.take().await;
        let queued = server.queued();
        if server.conn.is_handshaking() {
            server.send(&queued).await;
        } else {
            // The client's Finished came: what follows are the session tickets.
            tickets = queued;
        }
    }
    let client = tokio::time::timeout(Duration::from_secs(20), connecting)
        .await
        .expect("handshake timed out")
        .unwrap()
        .expect("client handshake");
    assert!(
        tickets.len() >= 4,
        "tickets in {} records: not split",
        tickets.len()
    );
    (server, client, tickets)
}

/// A post-handshake message spread over many records (the server's session tickets, in
/// records of 27 bytes of message each) of which only the first has come when the client
/// writes:
/// rustls keeps the message's first part in the stream's incoming buffer and needs it on
/// the write step too. The write goes through, the rest completes the tickets, and the
/// next connection resumes with one: the message was put back together whole.
#[tokio::test]
async fn a_handshake_message_split_across_records_when_the_client_writes() {
    let keys = keys();
    let client_config = client_config(&keys, &[&rustls::version::TLS13]);
    let (mut server, mut client, tickets) = hand_handshake(&keys, client_config.clone()).await;
    server.send(&tickets[..1]).await;
    let mut buf = [0u8; 64];
    // The read takes the record and waits for more; nothing of it is data.
    tokio::time::timeout(Duration::from_millis(200), client.read(&mut buf))
        .await
        .expect_err("nothing to read yet");
    client.write_all(b"a NOOP\r\n").await.unwrap();
    client.flush().await.unwrap();
    server.take().await;
    let mut got = [0u8; 8];
    std::io::Read::read_exact(&mut server.conn.reader(), &mut got).unwrap();
    assert_eq!(&got, b"a NOOP\r\n");
    server.send(&tickets[1..]).await;
    std::io::Write::write_all(&mut server.conn.writer(), b"a OK\r\n").unwrap();
    let answer = server.queued();
    server.send(&answer).await;
    let mut got = [0u8; 6];
    client.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"a OK\r\n");

    // The next connection resumes with a ticket from those records.
    let (a, b) = tokio::io::duplex(1 << 20);
    let acceptor = tokio_rustls::TlsAcceptor::from(keys.server.clone());
    let (again, _server) = tokio::join!(
        proxy::tls::connect(a, client_config, localhost()),
        acceptor.accept(b)
    );
    assert!(again.unwrap().resumed(), "the split ticket was not kept");
}

/// After a record that fails to decrypt: one alert, then nothing more goes out. Later
/// reads and writes return the first error instead of repeating the alert or encrypting
/// more, and the end of the stream is the socket's alone.
#[tokio::test]
async fn after_a_bad_record_the_stream_stays_failed() {
    let keys = keys();
    for versions in [
        &[&rustls::version::TLS13][..],
        &[&rustls::version::TLS12][..],
    ] {
        let connector = connector(&keys, versions);
        let (s, c) = pair().await;
        let (mut server, mut client) = handshake(s, c, &keys, &connector).await;
        // A round trip first, so the client has taken the session tickets.
        server.write_all(b"* OK\r\n").await.unwrap();
        server.flush().await.unwrap();
        let mut greeting = [0u8; 6];
        client.read_exact(&mut greeting).await.unwrap();
        // A good record, then one whose 40 bytes are no valid encryption, read at once:
        // the good record's bytes come first, the failure with the next read.
        client.write_all(b"hello").await.unwrap();
        client.flush().await.unwrap();
        let (mut raw, _) = client.into_inner();
        let mut bad = vec![23, 3, 3, 0, 40];
        bad.extend_from_slice(&[0x5a; 40]);
        raw.write_all(&bad).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut buf = [0u8; 16];
        let n = server.read(&mut buf).await.expect("the good record");
        assert_eq!(&buf[..n], b"hello");
        let first = server.read(&mut buf).await.expect_err("bad record");
        assert_eq!(first.kind(), std::io::ErrorKind::InvalidData, "{first}");
        let again = server.read(&mut buf).await.expect_err("still failed");
        assert_eq!(again.kind(), first.kind());
        assert_eq!(again.to_string(), first.to_string());
        let write = server.write(b"more").await.expect_err("no writes after");
        assert_eq!(write.to_string(), first.to_string());
        assert!(server.flush().await.is_err());
        server.shutdown().await.expect("the socket's end");
        let mut after = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), raw.read_to_end(&mut after))
            .await
            .expect("the server's end")
            .unwrap();
        let sent = records(&after);
        assert_eq!(
            sent.len(),
            1,
            "{versions:?}: one alert and nothing else, got {} records",
            sent.len()
        );
    }
}

/// Reading `stream` to its end fails with `UnexpectedEof`.
async fn assert_cut_short<S: AsyncRead + Unpin>(stream: &mut S) {
    let mut rest = Vec::new();
    let err = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut rest))
        .await
        .expect("the end")
        .expect_err("cut short");
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof, "{err}");
}

/// A TLS server that ends the connection in the middle of a record: the client side (the
/// one lookups over HTTPS run on) says the connection was cut, not that the stream ended.
#[tokio::test]
async fn a_record_cut_short_by_the_end_is_an_error() {
    let keys = keys();
    let client_config = client_config(&keys, &[&rustls::version::TLS13]);
    let (s, c) = pair().await;
    let (client, server) = tokio::join!(
        proxy::tls::connect(c, client_config, localhost()),
        accept(s, keys.server.clone())
    );
    let (mut client, mut server) = (client.unwrap(), server.unwrap());
    server.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
    server.flush().await.unwrap();
    let mut line = [0u8; 17];
    client.read_exact(&mut line).await.unwrap();
    // Eight bytes of a record that says it has 50.
    let raw = server.get_ref();
    raw.writable().await.unwrap();
    assert_eq!(raw.try_write(&[23, 3, 3, 0, 50, 1, 2, 3]).unwrap(), 8);
    drop(server);
    assert_cut_short(&mut client).await;
}

/// The session tickets cut off by the end after their first record: a handshake message
/// cut short is `UnexpectedEof` too, not the end of the stream.
#[tokio::test]
async fn a_handshake_message_cut_short_by_the_end_is_an_error() {
    let keys = keys();
    let client_config = client_config(&keys, &[&rustls::version::TLS13]);
    let (mut server, mut client, tickets) = hand_handshake(&keys, client_config).await;
    server.send(&tickets[..1]).await;
    drop(server);
    assert_cut_short(&mut client).await;
}

/// A socket write that fails is the socket's error, not the TLS connection's: what the
/// peer sent before (a mailbox's `* BYE`) is still read, and the stream is not failed for
/// good (no alert, the write error comes from the socket each time).
#[tokio::test]
async fn a_failed_socket_write_does_not_stop_reads() {
    let keys = keys();
    let connector = connector(&keys, &[&rustls::version::TLS13]);
    let (a, b) = tokio::io::duplex(1 << 20);
    let server_io = Dribble::new(a, usize::MAX);
    let broken = server_io.writes_fail.clone();
    let server = accept(server_io, keys.server.clone());
    let client = connector.connect(localhost(), b);
    let (server, client) = tokio::join!(server, client);
    let (mut server, mut client) = (server.unwrap(), client.unwrap());
    client.write_all(b"* BYE shutting down\r\n").await.unwrap();
    client.flush().await.unwrap();
    broken.store(true, std::sync::atomic::Ordering::Relaxed);
    let err = async {
        server.write_all(b"a LOGOUT\r\n").await?;
        server.flush().await
    }
    .await
    .expect_err("the socket refuses writes");
    assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe, "{err}");
    let mut bye = [0u8; 21];
    server
        .read_exact(&mut bye)
        .await
        .expect("read after a failed write");
    assert_eq!(&bye, b"* BYE shutting down\r\n");
    broken.store(false, std::sync::atomic::Ordering::Relaxed);
    server
        .write_all(b"a LOGOUT\r\n")
        .await
        .expect("the socket works again");
    server.flush().await.unwrap();
    let mut got = [0u8; 10];
    client.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"a LOGOUT\r\n");
}
