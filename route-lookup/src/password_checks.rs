//! The bound on password hashing: at most N argon2 computations at once, each in one of
//! N reused block buffers, with a bounded queue in front.
//!
//! Unbounded, a wrong-password flood started one ~19 MiB hash per request on the blocking
//! pool: dozens at once grew the process to gigabytes it never gave back, and real logins
//! starved. Here memory is N buffers whatever the load, and a check that cannot start
//! within the wait (or finds the queue full) fails at once as *busy*, which callers
//! report as a temporary failure, so a flood slows logins down but cannot stop them or
//! grow memory.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::Block;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::password::{self, HashError};

/// How many checks run, how many may wait, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChecksConfig {
    /// Checks computed at once (one buffer each).
    pub workers: usize,
    /// Checks waiting for a worker beyond which new ones are refused at once.
    pub queue: usize,
    /// How long a check may wait for a worker.
    pub wait: Duration,
}

impl ChecksConfig {
    /// One worker per core, a queue of 64 per worker, 3 s of waiting.
    pub fn for_this_machine() -> Self {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            workers,
            queue: 64 * workers,
            wait: Duration::from_secs(3),
        }
    }
}

/// The checks could not start in time; the caller answers "temporarily unavailable".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("password checks are busy (every worker taken and the wait or queue bound reached)")]
pub struct Busy;

impl From<Busy> for HashError {
    fn from(_: Busy) -> Self {
        HashError::Busy
    }
}

/// Counters for /metrics.
#[derive(Debug, Default)]
pub struct ChecksStats {
    /// Checks computed.
    pub computed: AtomicU64,
    /// Checks refused as busy.
    pub busy: AtomicU64,
    /// Stored hashes that could not be checked.
    pub bad_hashes: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    permits: Arc<Semaphore>,
    buffers: Mutex<Vec<Vec<Block>>>,
    waiting: AtomicUsize,
    config: ChecksConfig,
    stats: ChecksStats,
}

/// The shared bound; cheap to clone.
#[derive(Debug, Clone)]
pub struct PasswordChecks {
    inner: Arc<Inner>,
}

impl PasswordChecks {
    /// A bound of `config` (zero workers or queue are raised to one).
    pub fn new(config: ChecksConfig) -> Self {
        let config = ChecksConfig {
            workers: config.workers.max(1),
            queue: config.queue.max(1),
            wait: config.wait,
        };
        Self {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(config.workers)),
                buffers: Mutex::new(Vec::new()),
                waiting: AtomicUsize::new(0),
                config,
                stats: ChecksStats::default(),
            }),
        }
    }

    /// The bound in force.
    pub fn config(&self) -> ChecksConfig {
        self.inner.config
    }

    /// The counters.
    pub fn stats(&self) -> &ChecksStats {
        &self.inner.stats
    }

    /// Checks waiting for a worker now.
    pub fn waiting(&self) -> usize {
        self.inner.waiting.load(Ordering::Relaxed)
    }

    /// Whether `password` matches `hash`. An unusable stored hash never matches (and is
    /// logged, without the hash).
    pub async fn verify(&self, hash: String, password: Vec<u8>) -> Result<bool, Busy> {
        let result = self
            .run(move |memory| password::verify_in(&hash, &password, memory))
            .await?;
        match result {
            Ok(matched) => Ok(matched),
            Err(e) => {
                self.inner.stats.bad_hashes.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "stored password hash cannot be checked; refusing the login");
                Ok(false)
            }
        }
    }

    /// A new hash of `password`.
    pub async fn hash(&self, password: Vec<u8>) -> Result<String, HashError> {
        self.run(move |memory| password::hash_in(&password, memory))
            .await?
    }

    async fn permit(&self) -> Result<OwnedSemaphorePermit, Busy> {
        let inner = &self.inner;
        if let Ok(permit) = inner.permits.clone().try_acquire_owned() {
            return Ok(permit);
        }
        if inner.waiting.fetch_add(1, Ordering::AcqRel) >= inner.config.queue {
            inner.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        let acquired =
            tokio::time::timeout(inner.config.wait, inner.permits.clone().acquire_owned()).await;
        inner.waiting.fetch_sub(1, Ordering::AcqRel);
        match acquired {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Busy),
        }
    }

    /// Runs `work` on the blocking pool with a worker's buffer. The permit and the buffer
    /// travel into the blocking task and are given back there, so a caller that goes away
    /// mid-hash (a client hanging up) cannot let a further hash start beside it.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let permit = match self.permit().await {
            Ok(p) => p,
            Err(Busy) => {
                self.inner.stats.busy.fetch_add(1, Ordering::Relaxed);
                return Err(Busy);
            }
        };
        let inner = self.inner.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut memory = inner
                .buffers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pop()
                .unwrap_or_default();
            let out = work(&mut memory);
            inner
                .buffers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(memory);
            inner.stats.computed.fetch_add(1, Ordering::Relaxed);
            drop(permit);
            out
        });
        // A panic inside argon2 (it has none we know of) is reported as busy: the buffer
        // it held is dropped and the next check allocates a fresh one, still within N.
        task.await.map_err(|_| Busy)
    }

    /// How many buffers exist (never more than the workers).
    pub fn buffers(&self) -> usize {
        self.inner
            .buffers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}

impl Default for PasswordChecks {
    fn default() -> Self {
        Self::new(ChecksConfig::for_this_machine())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checks(workers: usize, queue: usize, wait_ms: u64) -> PasswordChecks {
        PasswordChecks::new(ChecksConfig {
            workers,
            queue,
            wait: Duration::from_millis(wait_ms),
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_concurrent_checks_share_the_workers_buffers() {
        let c = checks(2, 100, 60_000);
        let h = c.hash(b"right".to_vec()).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..12 {
            let (c, h) = (c.clone(), h.clone());
            let pw = if i % 3 == 0 { "right" } else { "wrong" };
            tasks.push(tokio::spawn(async move {
                (pw, c.verify(h, pw.as_bytes().to_vec()).await)
            }));
        }
        for t in tasks {
            let (pw, r) = t.await.unwrap();
            assert_eq!(r, Ok(pw == "right"));
        }
        assert!(c.buffers() <= 2, "{} buffers", c.buffers());
        assert_eq!(c.stats().computed.load(Ordering::Relaxed), 13);
        assert_eq!(c.waiting(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_or_a_long_wait_is_busy_at_once() {
        let h = password::hash(b"pw").unwrap();
        // One worker, one waiting place: of three at once, the third is refused at once.
        let c = checks(1, 1, 60_000);
        let first = tokio::spawn({
            let (c, h) = (c.clone(), h.clone());
            async move { c.verify(h, b"pw".to_vec()).await }
        });
        tokio::task::yield_now().await;
        while c.inner.permits.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let second = tokio::spawn({
            let (c, h) = (c.clone(), h.clone());
            async move { c.verify(h, b"pw".to_vec()).await }
        });
        while c.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(c.verify(h.clone(), b"pw".to_vec()).await, Err(Busy));
        assert_eq!(first.await.unwrap(), Ok(true));
        assert_eq!(second.await.unwrap(), Ok(true));
        assert_eq!(c.stats().busy.load(Ordering::Relaxed), 1);

        // A zero wait: whoever finds the worker taken is busy.
        let c = checks(1, 10, 0);
        let hold = c.inner.permits.clone().try_acquire_owned().unwrap();
        assert_eq!(c.verify(h.clone(), b"pw".to_vec()).await, Err(Busy));
        drop(hold);
        assert_eq!(c.verify(h, b"pw".to_vec()).await, Ok(true));
    }

    #[tokio::test]
    async fn a_caller_that_goes_away_keeps_its_worker_until_the_hash_ends() {
        let c = checks(1, 10, 60_000);
        let h = password::hash(b"pw").unwrap();
        let abandoned = tokio::spawn({
            let (c, h) = (c.clone(), h.clone());
            async move { c.verify(h, b"pw".to_vec()).await }
        });
        while c.inner.permits.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        abandoned.abort();
        // The hash still runs: the permit is not back until it ends.
        assert_eq!(c.inner.permits.available_permits(), 0);
        assert_eq!(c.verify(h, b"pw".to_vec()).await, Ok(true));
        assert_eq!(c.buffers(), 1);
    }

    #[tokio::test]
    async fn an_unusable_hash_never_matches() {
        let c = checks(1, 1, 1000);
        assert_eq!(c.verify("garbage".into(), b"pw".to_vec()).await, Ok(false));
        assert_eq!(c.stats().bad_hashes.load(Ordering::Relaxed), 1);
    }
}
