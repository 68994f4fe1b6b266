//! `mc-loadgen`: a closed-loop memcached load generator with exact percentiles.
//!
//! `--conns` connections on one client thread (so the client takes one core and leaves the
//! other to the server, as `memcaslap -T 1` does), each with one request in flight: a `get`
//! or a `set` of a random key from a fixed key space. `--load N` instead stores N distinct
//! items as fast as possible (pipelined `noreply` sets) and exits, for memory measurements.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use codec::memcache::{parse_response, Response, ResponseError};
use loadgen::latency::Latencies;
use loadgen::rng::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Closed-loop memcached load generator.
#[derive(Debug, Clone, Parser)]
#[command(version, about)]
struct Args {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:11211")]
    server: String,
    /// Concurrent connections (each with one request in flight).
    #[arg(long, default_value_t = 1)]
    conns: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Distinct keys.
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    /// Key length in bytes.
    #[arg(long, default_value_t = 32)]
    key_len: usize,
    /// Value length in bytes.
    #[arg(long, default_value_t = 64)]
    value_len: usize,
    /// Share of gets (the rest are sets).
    #[arg(long, default_value_t = 0.9)]
    get_ratio: f64,
    /// Store this many distinct items and exit (no timing).
    #[arg(long)]
    load: Option<u64>,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn key(args: &Args, i: u64) -> Vec<u8> {
    let mut k = format!("k{i:0width$}", width = args.key_len.saturating_sub(1)).into_bytes();
    k.truncate(args.key_len.max(1));
    k
}

/// Reads from `stream` until one whole response of the expected kind has arrived.
async fn read_reply(stream: &mut TcpStream, buf: &mut Vec<u8>, want_end: bool) -> Result<()> {
    loop {
        let mut at = 0;
        loop {
            match parse_response(&buf[at..]) {
                Ok((resp, used)) => {
                    at += used;
                    let done = match resp {
                        Response::Value { .. } if want_end => false,
                        Response::End if want_end => true,
                        Response::Stored if !want_end => true,
                        other => bail!("unexpected reply {other:?}"),
                    };
                    if done {
                        buf.drain(..at);
                        return Ok(());
                    }
                }
                Err(ResponseError::Incomplete) => break,
                Err(ResponseError::Malformed) => bail!("malformed reply"),
            }
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("server closed the connection");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn worker(args: &Args, id: usize, deadline: Instant) -> Result<Latencies> {
    let mut stream = TcpStream::connect(&args.server)
        .await
        .with_context(|| format!("connect {}", args.server))?;
    stream.set_nodelay(true)?;
    let mut rng = Rng::new(args.seed.wrapping_add(id as u64 * 7919));
    let value = vec![b'v'; args.value_len];
    let mut lat = Latencies::with_capacity(1 << 16);
    let mut req = Vec::with_capacity(256);
    let mut buf = Vec::with_capacity(4096);
    while Instant::now() < deadline {
        let k = key(args, rng.below(args.keys));
        req.clear();
        let is_get = rng.unit() < args.get_ratio;
        if is_get {
            req.extend_from_slice(b"get ");
            req.extend_from_slice(&k);
            req.extend_from_slice(b"\r\n");
        } else {
            req.extend_from_slice(
                format!(
                    "set {} 0 0 {}\r\n",
                    String::from_utf8_lossy(&k),
                    value.len()
                )
                .as_bytes(),
            );
            req.extend_from_slice(&value);
            req.extend_from_slice(b"\r\n");
        }
        let start = Instant::now();
        stream.write_all(&req).await?;
        read_reply(&mut stream, &mut buf, is_get).await?;
        lat.record(start.elapsed());
    }
    Ok(lat)
}

async fn load(args: &Args, count: u64) -> Result<()> {
    let mut stream = TcpStream::connect(&args.server).await?;
    let value = vec![b'v'; args.value_len];
    let mut batch = Vec::with_capacity(1 << 20);
    for i in 0..count {
        let k = key(args, i);
        batch.extend_from_slice(
            format!(
                "set {} 0 0 {} noreply\r\n",
                String::from_utf8_lossy(&k),
                value.len()
            )
            .as_bytes(),
        );
        batch.extend_from_slice(&value);
        batch.extend_from_slice(b"\r\n");
        if batch.len() > (1 << 20) - 512 || i + 1 == count {
            stream.write_all(&batch).await?;
            batch.clear();
        }
    }
    // A `version` round trip proves every noreply set before it has been processed.
    stream.write_all(b"version\r\n").await?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.ends_with(b"\r\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("server closed the connection during the load");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    if !buf.starts_with(b"VERSION") {
        bail!("load failed: {}", String::from_utf8_lossy(&buf).trim());
    }
    println!("loaded={count}");
    Ok(())
}

async fn run(args: Args) -> Result<()> {
    if let Some(count) = args.load {
        return load(&args, count).await;
    }
    // Fill the key space so gets hit.
    load(&args, args.keys).await?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(args.seconds);
    let args = &args;
    let results = run_workers(args, deadline).await;
    let elapsed = start.elapsed();
    let mut all = Latencies::default();
    for r in results {
        all.merge(r?);
    }
    println!("conns={} {}", args.conns, all.summary(elapsed));
    Ok(())
}

async fn run_workers(args: &Args, deadline: Instant) -> Vec<Result<Latencies>> {
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let mut handles = Vec::with_capacity(args.conns);
            for id in 0..args.conns {
                let a = args.clone();
                handles.push(tokio::task::spawn_local(async move {
                    worker(&a, id, deadline).await
                }));
            }
            let mut out = Vec::with_capacity(handles.len());
            for h in handles {
                out.push(
                    h.await
                        .unwrap_or_else(|e| Err(anyhow::anyhow!("worker panicked: {e}"))),
                );
            }
            out
        })
        .await
}

fn main() -> Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}
