//! The two relays (plain TCP, and the generic one used with TLS; neither holds a buffer
//! while idle) on
//! real loopback sockets: bytes both ways at once (the TCP one splicing bulk transfers),
//! half-close, the idle timeout.

use std::time::Duration;

use proxy::relay::{relay, relay_tcp, Relayed};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    let b = l.accept().await.unwrap().0;
    (a, b)
}

#[derive(Clone, Copy)]
enum Which {
    Tcp,
    Generic,
}

/// Returns (client end, backend end, the relay task).
async fn relayed(
    which: Which,
    idle: Duration,
) -> (TcpStream, TcpStream, tokio::task::JoinHandle<Relayed>) {
    let (client, proxy_client_side) = pair().await;
    let (proxy_backend_side, backend) = pair().await;
    let task = tokio::spawn(async move {
        let (mut c, mut b) = (proxy_client_side, proxy_backend_side);
        let meter = proxy::relay::Meter::default();
        let relayed = match which {
            Which::Tcp => relay_tcp(&mut c, &mut b, idle, &meter).await,
            Which::Generic => relay(&mut c, &mut b, idle, &meter).await,
        };
        // The live meter saw every byte the totals count.
        assert_eq!(
            (
                meter.up.load(std::sync::atomic::Ordering::Relaxed),
                meter.down.load(std::sync::atomic::Ordering::Relaxed)
            ),
            (relayed.up, relayed.down)
        );
        relayed
    });
    (client, backend, task)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

async fn both_ways_at_once(which: Which) {
    const LEN: usize = 8 * 1024 * 1024;
    let (client, backend, task) = relayed(which, Duration::from_secs(60)).await;
    let (mut cr, mut cw) = client.into_split();
    let (mut br, mut bw) = backend.into_split();
    // Both ends write everything before reading anything: a relay that stops reading one
    // side while it is blocked writing the other would deadlock here.
    let up = tokio::spawn(async move {
        cw.write_all(&pattern(LEN, 1)).await.unwrap();
        cw.shutdown().await.unwrap();
    });
    let down = tokio::spawn(async move {
        bw.write_all(&pattern(LEN, 2)).await.unwrap();
        bw.shutdown().await.unwrap();
    });
    let got_up = tokio::spawn(async move {
        let mut v = Vec::new();
        br.read_to_end(&mut v).await.unwrap();
        v
    });
    let mut got_down = Vec::new();
    cr.read_to_end(&mut got_down).await.unwrap();
    let got_up = got_up.await.unwrap();
    up.await.unwrap();
    down.await.unwrap();
    assert!(got_up == pattern(LEN, 1), "client → backend bytes differ");
    assert!(got_down == pattern(LEN, 2), "backend → client bytes differ");
    let moved = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((moved.up, moved.down), (LEN as u64, LEN as u64));
    match which {
        // A bulk transfer goes socket to socket through a pipe, apart from the reads
        // that notice it is one (each copies one buffer's worth first).
        Which::Tcp => assert!(
            moved.spliced > LEN as u64,
            "only {} of {} bytes spliced",
            moved.spliced,
            2 * LEN
        ),
        Which::Generic => assert_eq!(moved.spliced, 0),
    }
}

async fn half_close_lets_the_answer_through(which: Which) {
    let (mut client, mut backend, task) = relayed(which, Duration::from_secs(60)).await;
    client.write_all(b"a LOGOUT\r\n").await.unwrap();
    client.shutdown().await.unwrap();
    let mut got = Vec::new();
    backend.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"a LOGOUT\r\n");
    backend
        .write_all(b"* BYE\r\na OK LOGOUT\r\n")
        .await
        .unwrap();
    drop(backend);
    let mut answer = Vec::new();
    client.read_to_end(&mut answer).await.unwrap();
    assert_eq!(answer, b"* BYE\r\na OK LOGOUT\r\n");
    let moved = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        moved,
        Relayed {
            up: 10,
            down: 20,
            spliced: 0
        }
    );
}

async fn idle_timeout_ends_a_silent_session_only(which: Which) {
    let idle = Duration::from_millis(1500);
    let (mut client, mut backend, task) = relayed(which, idle).await;
    // Traffic every 100 ms, alternating directions, for well over the idle timeout.
    for i in 0..30 {
        if i % 2 == 0 {
            client.write_all(b"x").await.unwrap();
            let mut b = [0u8; 1];
            backend.read_exact(&mut b).await.unwrap();
        } else {
            backend.write_all(b"y").await.unwrap();
            let mut b = [0u8; 1];
            client.read_exact(&mut b).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !task.is_finished(),
        "the relay ended while bytes were moving"
    );
    // Then silence: the relay ends by itself and both ends see the close.
    let moved = tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        moved,
        Relayed {
            up: 15,
            down: 15,
            spliced: 0
        }
    );
    let mut rest = Vec::new();
    assert_eq!(client.read_to_end(&mut rest).await.unwrap_or(0), 0);
    assert_eq!(backend.read_to_end(&mut rest).await.unwrap_or(0), 0);
}

async fn closed_backend_ends_the_session(which: Which) {
    let (mut client, backend, task) = relayed(which, Duration::from_secs(60)).await;
    drop(backend);
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut rest))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_relay_moves_both_ways_at_once() {
    both_ways_at_once(Which::Tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_relay_moves_both_ways_at_once() {
    both_ways_at_once(Which::Generic).await;
}

#[tokio::test]
async fn tcp_relay_half_close() {
    half_close_lets_the_answer_through(Which::Tcp).await;
}

#[tokio::test]
async fn generic_relay_half_close() {
    half_close_lets_the_answer_through(Which::Generic).await;
}

#[tokio::test]
async fn tcp_relay_idle_timeout() {
    idle_timeout_ends_a_silent_session_only(Which::Tcp).await;
}

#[tokio::test]
async fn generic_relay_idle_timeout() {
    idle_timeout_ends_a_silent_session_only(Which::Generic).await;
}

#[tokio::test]
async fn tcp_relay_backend_close() {
    closed_backend_ends_the_session(Which::Tcp).await;
}

#[tokio::test]
async fn generic_relay_backend_close() {
    closed_backend_ends_the_session(Which::Generic).await;
}
