//! Worker processes (`--workers N`): the first process binds the listeners with
//! SO_REUSEPORT, serves as worker 0 and starts N-1 copies of itself that bind the same
//! addresses, so the kernel spreads connections over them, as nginx's workers share its
//! listeners. Each worker is a whole proxy with its own open-files limit, caches and
//! connections; that is the point (two sockets per relayed session run into a per-process
//! file limit long before the cores are busy).
//!
//! Lifecycle: a worker's standard input is a pipe from worker 0. Worker 0 restarts a
//! worker that dies; when worker 0 shuts down it closes the pipes, each worker takes the
//! end of its input as its SIGTERM and drains, and worker 0 waits for them (grace period,
//! then SIGKILL). A worker whose parent dies sees the same end of input and stops too.
//!
//! The pipe also carries what every worker must share with worker 0, one line each: first
//! `tls-ticket-secret HEX`, the random secret the TLS ticket keys are derived from (see
//! `common::tls_tickets`), so a session ticket issued by one worker resumes on any other;
//! then `reload` for each SIGHUP worker 0 gets, so that `systemctl reload` (which signals
//! worker 0 alone) re-reads certificates and the ticket key file in every worker. The
//! secret takes the pipe rather than the environment or the command line, which `ps` and
//! /proc/PID/environ show (e2e/deploy.sh checks that no process of the stack has a secret
//! there), and rather than a file in a private temporary directory, which must be cleaned
//! up and outlives a worker 0 killed with SIGKILL: only the two processes hold the pipe, it
//! exists anyway, and a restarted worker gets the same secret on its new one.

use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::exit::ConfigError;
use common::tls_tickets::TicketSecret;

/// The environment variable that marks a worker process (its index, from 1).
pub const WORKER_ENV: &str = "PROXY_WORKER";

/// This process's worker index: 0 for the first process.
pub fn index() -> usize {
    std::env::var(WORKER_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The first line on a worker's input, before the secret's 64 hex digits.
const SECRET_LINE: &str = "tls-ticket-secret ";

/// A line on a worker's input: worker 0 got SIGHUP.
const RELOAD_LINE: &[u8] = b"reload";

/// The secret the TLS ticket keys of every worker are derived from when no
/// `--tls-ticket-key-file` is given: worker 0 makes it at random, the others read it from
/// the first line of their input (so this must run before [`parent_gone`] reads the rest).
pub fn ticket_secret() -> Result<TicketSecret, ConfigError> {
    static SECRET: Mutex<Option<TicketSecret>> = Mutex::new(None);
    let mut secret = SECRET
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(s) = &*secret {
        return Ok(s.clone());
    }
    let made = if index() == 0 {
        TicketSecret::random()?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the TLS ticket secret from worker 0: {e}"))?;
        line.trim_end()
            .strip_prefix(SECRET_LINE)
            .and_then(|hex| TicketSecret::from_hex(hex.as_bytes()))
            .ok_or("worker 0 sent no TLS ticket secret on standard input")?
    };
    Ok(secret.insert(made).clone())
}

/// In a worker: resolves when worker 0 closes our input (or dies). Meanwhile each `reload`
/// line is a SIGHUP worker 0 passes on.
pub fn parent_gone() -> tokio::sync::oneshot::Receiver<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().split(b'\n') {
            match line {
                Ok(l) if l == RELOAD_LINE => {
                    tracing::info!("SIGHUP passed on by worker 0: reloading");
                    common::reload::announce();
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let _ = tx.send(());
    });
    rx
}

/// What worker 0 starts the others with.
#[derive(Debug, Clone)]
pub struct Plan {
    /// How many workers in all (worker 0 included).
    pub workers: usize,
    /// The concrete listener addresses, as `--imap-listen ADDR` style flag pairs.
    pub listen_flags: Vec<(&'static str, SocketAddr)>,
    /// Worker 0's admin address: worker i uses its port + i (port 0 stays 0).
    pub admin: Option<SocketAddr>,
    /// The TLS ticket secret, the first line of every worker's input.
    pub ticket_secret: TicketSecret,
    /// Worker 0's socket for `--max-sessions-per-user`, when the cap is on.
    pub sessions_socket: Option<std::path::PathBuf>,
}

struct Slot {
    index: usize,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    restart_at: Option<Instant>,
}

/// Worker 0's handle on the others.
pub struct Supervisor {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<Slot>>>,
}

impl Supervisor {
    /// Starts workers 1..N and a thread that restarts any that exits.
    pub fn start(plan: Plan) -> std::io::Result<Self> {
        let exe = std::env::current_exe()?;
        let base: Vec<OsString> = std::env::args_os().skip(1).collect();
        let secret_line = format!("{SECRET_LINE}{}\n", plan.ticket_secret.to_hex());
        let sessions_socket = plan.sessions_socket.clone();
        let args = move |i: usize| -> Vec<OsString> {
            let mut a = base.clone();
            for (flag, addr) in &plan.listen_flags {
                a.push((*flag).into());
                a.push(addr.to_string().into());
            }
            a.push("--admin-listen".into());
            a.push(match plan.admin {
                None => "off".into(),
                Some(adm) if adm.port() == 0 => adm.to_string().into(),
                Some(adm) => {
                    let port = usize::from(adm.port()) + i;
                    SocketAddr::new(adm.ip(), u16::try_from(port).unwrap_or(0))
                        .to_string()
                        .into()
                }
            });
            a.push("--workers".into());
            a.push("1".into());
            a
        };
        let spawn = move |i: usize| -> std::io::Result<(Child, ChildStdin)> {
            let mut command = Command::new(&exe);
            if let Some(path) = &sessions_socket {
                command.env(crate::session_limit::SOCKET_ENV, path);
            }
            let mut child = command
                .args(args(i))
                .env(WORKER_ENV, i.to_string())
                .stdin(Stdio::piped())
                .spawn()?;
            let mut stdin = child
                .stdin
                .take()
                .ok_or_else(|| std::io::Error::other("no stdin pipe"))?;
            // Before anything else: the worker reads it first, at start.
            stdin.write_all(secret_line.as_bytes())?;
            tracing::info!(worker = i, pid = child.id(), "worker started");
            Ok((child, stdin))
        };
        let mut slots = Vec::new();
        for i in 1..plan.workers {
            let (child, stdin) = spawn(i)?;
            slots.push(Slot {
                index: i,
                child: Some(child),
                stdin: Some(stdin),
                restart_at: None,
            });
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        // SIGHUPs counted here are passed on by the supervising thread.
        let hups = Arc::new(AtomicU64::new(0));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let mut reloads = common::reload::subscribe();
            let count = hups.clone();
            runtime.spawn(async move {
                while reloads.changed().await.is_ok() {
                    count.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        let thread = std::thread::spawn(move || supervise(slots, &flag, &hups, spawn));
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Closes every worker's input (their signal to drain) and waits for them to exit,
    /// killing any still running after `grace`.
    pub fn shutdown(mut self, grace: Duration) {
        self.stop.store(true, Ordering::SeqCst);
        let Some(thread) = self.thread.take() else {
            return;
        };
        let Ok(mut slots) = thread.join() else {
            return;
        };
        let deadline = Instant::now() + grace;
        loop {
            let mut running = 0;
            for slot in &mut slots {
                if let Some(child) = &mut slot.child {
                    match child.try_wait() {
                        Ok(Some(status)) => {
                            tracing::info!(worker = slot.index, %status, "worker exited");
                            slot.child = None;
                        }
                        Ok(None) => running += 1,
                        Err(_) => slot.child = None,
                    }
                }
            }
            if running == 0 {
                return;
            }
            if Instant::now() >= deadline {
                for slot in &mut slots {
                    if let Some(child) = &mut slot.child {
                        tracing::warn!(
                            worker = slot.index,
                            "worker still running after the grace period; killing it"
                        );
                        let _ = child.kill();
                        let _ = child.wait();
                    }
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn supervise<F>(mut slots: Vec<Slot>, stop: &AtomicBool, hups: &AtomicU64, spawn: F) -> Vec<Slot>
where
    F: Fn(usize) -> std::io::Result<(Child, ChildStdin)>,
{
    let mut passed_on = 0;
    while !stop.load(Ordering::SeqCst) {
        let seen = hups.load(Ordering::SeqCst);
        if seen != passed_on {
            passed_on = seen;
            for slot in &mut slots {
                if let Some(stdin) = &mut slot.stdin {
                    // A worker that died meanwhile is restarted below and reads every file
                    // at its start anyway.
                    let _ = stdin.write_all(&[RELOAD_LINE, b"\n"].concat());
                }
            }
        }
        for slot in &mut slots {
            if let Some(child) = &mut slot.child {
                if let Ok(Some(status)) = child.try_wait() {
                    tracing::error!(worker = slot.index, %status, "worker exited; restarting it");
                    slot.child = None;
                    slot.stdin = None;
                    slot.restart_at = Some(Instant::now() + Duration::from_secs(1));
                }
            }
            if slot.child.is_none() && slot.restart_at.is_some_and(|t| Instant::now() >= t) {
                match spawn(slot.index) {
                    Ok((child, stdin)) => {
                        slot.child = Some(child);
                        slot.stdin = Some(stdin);
                        slot.restart_at = None;
                    }
                    Err(e) => {
                        tracing::error!(worker = slot.index, error = %e, "cannot restart worker");
                        slot.restart_at = Some(Instant::now() + Duration::from_secs(5));
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // Closing the pipes tells every worker to drain.
    for slot in &mut slots {
        slot.stdin = None;
    }
    slots
}

/// The runtime of one worker process: `threads` threads, by default the CPUs divided among
/// the workers; one thread is a single-threaded event loop (no work stealing), nginx's
/// model with `--workers N --threads 1`.
pub fn runtime(threads: Option<usize>, workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let threads = threads.unwrap_or_else(|| {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cpus / workers.max(1)).max(1)
    });
    if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}

/// In worker 0 of several: starts the others on `proxy`'s concrete addresses.
pub fn start_others(proxy: &crate::Proxy, workers: usize) -> std::io::Result<Option<Supervisor>> {
    if workers <= 1 || index() > 0 {
        return Ok(None);
    }
    let plan = Plan {
        workers,
        listen_flags: crate::server::Kind::ALL
            .into_iter()
            .filter_map(|k| Some((k.flag(), proxy.local_addr(k)?)))
            .collect(),
        admin: proxy.admin_addr(),
        ticket_secret: ticket_secret().map_err(|e| std::io::Error::other(e.0))?,
        sessions_socket: proxy.sessions_socket(),
    };
    Supervisor::start(plan).map(Some)
}

/// What ends this worker: a signal, or, in workers 1 and up, worker 0 closing our input.
pub async fn stop_reason(signals: common::shutdown::Signals) -> &'static str {
    if index() == 0 {
        return signals.recv().await;
    }
    tokio::select! {
        name = signals.recv() => name,
        _ = parent_gone() => "worker 0 closed our input",
    }
}
