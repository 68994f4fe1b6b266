//! The relay with TLS on the client side (as for IMAPS, POP3S and after STARTTLS) on real
//! loopback sockets: 8 MiB each way at once through rustls, the end of one side passed
//! on (close_notify, then the other direction finishes), and no copy buffer held by
//! sessions that are open but idle, even right after a bulk transfer. One test in its
//! own binary, since it reads the process-wide buffer gauge.

use std::sync::atomic::Ordering;
use std::time::Duration;

use proxy::relay::{relay, Meter, BUFFERS_HELD};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

async fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    let b = l.accept().await.unwrap().0;
    (a, b)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A TLS client, the relay (TLS towards the client, plain towards the backend) in a
/// task, and the backend's end.
async fn session(
    server: &std::sync::Arc<rustls::ServerConfig>,
    connector: &TlsConnector,
) -> (
    tokio_rustls::client::TlsStream<TcpStream>,
    TcpStream,
    tokio::task::JoinHandle<(u64, u64)>,
) {
    let (client_tcp, proxy_client_side) = pair().await;
    let (proxy_backend_side, backend) = pair().await;
    let accept = proxy::tls::accept(proxy_client_side, server.clone());
    let connect = connector.connect("localhost".try_into().unwrap(), client_tcp);
    let (server_tls, client_tls) = tokio::join!(accept, connect);
    let mut server_tls = server_tls.unwrap();
    let task = tokio::spawn(async move {
        let mut b = proxy_backend_side;
        let meter = Meter::default();
        let r = relay(&mut server_tls, &mut b, Duration::from_secs(60), &meter).await;
        (r.up, r.down)
    });
    (client_tls.unwrap(), backend, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_relay_moves_both_ways_and_holds_no_buffer_while_idle() {
    let (cert, key) = common::tls::self_signed(&["localhost"]).unwrap();
    let server = common::tls::server_config_from_pem(cert.as_bytes(), key.as_bytes(), &[]).unwrap();
    let connector =
        TlsConnector::from(common::tls::client_config_from_pem(cert.as_bytes()).unwrap());

    // 8 MiB each way at once.
    const LEN: usize = 8 * 1024 * 1024;
    let (client, backend, task) = session(&server, &connector).await;
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut br, mut bw) = backend.into_split();
    let up = pattern(LEN, 1);
    let down = pattern(LEN, 2);
    let (up2, down2) = (up.clone(), down.clone());
    let writer_c = tokio::spawn(async move {
        cw.write_all(&up2).await.unwrap();
        cw.flush().await.unwrap();
        cw
    });
    let writer_b = tokio::spawn(async move {
        bw.write_all(&down2).await.unwrap();
        bw
    });
    // The gauge sees the buffers while bytes move (so its zero below means something).
    let sampler = tokio::spawn(async {
        let mut most = 0;
        for _ in 0..2000 {
            most = most.max(BUFFERS_HELD.load(Ordering::Relaxed));
            if most > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        most
    });
    let mut got_up = vec![0u8; LEN];
    let mut got_down = vec![0u8; LEN];
    let (r1, r2) = tokio::join!(br.read_exact(&mut got_up), cr.read_exact(&mut got_down));
    r1.unwrap();
    r2.unwrap();
    assert!(got_up == up, "client -> backend bytes differ");
    assert!(got_down == down, "backend -> client bytes differ");
    assert!(
        sampler.await.unwrap() > 0,
        "no buffer seen during the transfer"
    );
    let mut cw = writer_c.await.unwrap();
    let bw = writer_b.await.unwrap();

    // Ten more sessions, each with one small exchange, then all idle.
    let mut idle = Vec::new();
    for _ in 0..10 {
        let (mut c, mut b, t) = session(&server, &connector).await;
        c.write_all(b"a NOOP\r\n").await.unwrap();
        c.flush().await.unwrap();
        let mut line = [0u8; 8];
        b.read_exact(&mut line).await.unwrap();
        b.write_all(b"a OK\r\n").await.unwrap();
        let mut answer = [0u8; 6];
        c.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"a OK\r\n");
        idle.push((c, b, t));
    }
    // Eleven sessions open and quiet: none holds a copy buffer.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while BUFFERS_HELD.load(Ordering::Relaxed) != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} buffers held by idle sessions",
            BUFFERS_HELD.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The client's close_notify ends its direction; the backend's answer still arrives,
    // then the backend's end finishes the session.
    cw.shutdown().await.unwrap();
    let mut rest = Vec::new();
    br.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
    let mut bw = bw;
    bw.write_all(b"* BYE\r\n").await.unwrap();
    drop(bw);
    let mut tail = Vec::new();
    cr.read_to_end(&mut tail).await.unwrap();
    assert_eq!(tail, b"* BYE\r\n");
    let (up_n, down_n) = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the relay ends")
        .unwrap();
    assert_eq!((up_n, down_n), (LEN as u64, LEN as u64 + 7));
    drop(idle);
}
