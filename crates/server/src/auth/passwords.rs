//! Password hashing (Argon2id, 19 MiB, t=2, p=1, as OWASP recommends) on a small fixed
//! pool of threads with a bounded queue, each thread hashing into one working buffer
//! it keeps while it is busy.
//!
//! Why it is shaped this way (issue 16): every hash needs 19 MiB of working memory.
//! Allocated and freed per hash, glibc's heap fragments and keeps it: 1,000 sign-ups
//! and 1,000 logins at 64 in flight left 360–417 MB resident for good, on only two
//! hashing threads (and more, 434 MB, with `MALLOC_ARENA_MAX=2`, so it is not the
//! number of arenas). Here a thread allocates its buffer once, reuses it for every
//! hash of a burst (no page faults, no allocator traffic: logins/s went from about 56
//! to about 95 on the 2-core machine), and frees it — and asks the allocator to give
//! the pages back — after [`RELEASE_AFTER_IDLE`] without work. Peak memory is
//! `threads × 19 MiB` above idle; 10 s after a burst it is within 5 MB of idle.
//! Measured with `chat-bench login`; the runs are in bench/README.md.
//!
//! The pool runs as many hashes as it has threads (one per core by default: a hash
//! is pure CPU, more threads only share the cores), holds at most `queue` more
//! waiting, and refuses the rest with [`HashError::Busy`] (503 with `Retry-After`)
//! rather than letting a burst make every login wait without bound.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// How long a hashing thread keeps its working buffer with nothing to do. Long enough
/// to span the gaps of a burst (hashes arrive tens of milliseconds apart), short
/// enough that memory is back to idle seconds after the burst ends.
pub const RELEASE_AFTER_IDLE: Duration = Duration::from_secs(2);

/// A hash's duration assumed before the first one is measured (a release build on
/// one core of the development machine takes about 25 ms).
const ASSUMED_HASH_TIME: Duration = Duration::from_millis(50);

/// Why a password could not be hashed or checked.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("the password-hashing threads have stopped")]
    Stopped,
    #[error("too many passwords are waiting to be checked; retry in {retry_after:?}")]
    Busy { retry_after: Duration },
    #[error("hashing a password: {0}")]
    Hashing(String),
    #[error("a stored password hash is unreadable: {0}")]
    StoredHash(String),
}

/// How the pool is sized, from the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolSize {
    /// Hashes that run at once (one thread each).
    pub threads: usize,
    /// Hashes that may wait for a thread; beyond that, requests are refused.
    pub queue: usize,
}

impl PoolSize {
    /// `threads` 0 means one per core; `queue` `None` means 64 per thread.
    pub fn resolve(threads: usize, queue: Option<usize>) -> Self {
        let threads = match threads {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        Self {
            threads,
            queue: queue.unwrap_or(64 * threads),
        }
    }
}

type Job = Box<dyn FnOnce(&mut Workspace) + Send>;

/// The jobs waiting for a thread, and how many threads wait for a job. A condition
/// variable rather than a channel, so every idle thread can time out on its own and
/// release its buffer.
struct Queue {
    state: Mutex<QueueState>,
    job_ready: Condvar,
}

struct QueueState {
    jobs: VecDeque<Job>,
    idle_threads: usize,
    closed: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // A job runs outside the lock, so a poisoned lock means only that a thread
        // died between two lines here; the queue itself is still consistent.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The password hasher: a fixed pool of threads behind a bounded queue. Cheap to
/// share (`Arc`); dropping the last handle stops the threads once the queue is empty.
pub struct PasswordHasher {
    queue: Arc<Queue>,
    size: PoolSize,
    /// The last hash's duration in microseconds, for the `Retry-After` estimate.
    last_hash_us: Arc<AtomicU64>,
    /// A hash to verify against when the username does not exist, so a login for an
    /// unknown user costs what one with a wrong password does. Made on first use.
    dummy: tokio::sync::OnceCell<String>,
}

impl PasswordHasher {
    /// Starts the threads. A thread that cannot be started is logged and left out.
    pub fn start(size: PoolSize) -> Self {
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState {
                jobs: VecDeque::new(),
                idle_threads: 0,
                closed: false,
            }),
            job_ready: Condvar::new(),
        });
        let last_hash_us = Arc::new(AtomicU64::new(ASSUMED_HASH_TIME.as_micros() as u64));
        for n in 0..size.threads {
            let (queue, last_hash_us) = (queue.clone(), last_hash_us.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || run_hashing_thread(&queue, &last_hash_us));
            if let Err(error) = spawned {
                tracing::error!(%error, "could not start a password-hashing thread");
            }
        }
        Self {
            queue,
            size,
            last_hash_us,
            dummy: tokio::sync::OnceCell::new(),
        }
    }

    pub fn size(&self) -> PoolSize {
        self.size
    }

    /// Hashes a password with Argon2id and a random salt into a PHC string.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        self.run(move |workspace| hash_into(workspace, password.as_bytes()))
            .await?
    }

    /// Checks a password against a stored PHC string.
    pub async fn verify(&self, password: String, stored: String) -> Result<bool, HashError> {
        self.run(move |workspace| verify_into(workspace, password.as_bytes(), &stored))
            .await?
    }

    /// Checks a password against a hash of nothing anyone knows: what a login for an
    /// unknown username does, so it takes as long as a wrong password. Always false.
    pub async fn verify_dummy(&self, password: String) -> Result<bool, HashError> {
        let dummy = self
            .dummy
            .get_or_try_init(|| self.hash("not a real password".into()))
            .await?;
        self.verify(password, dummy.clone()).await.map(|_| false)
    }

    /// Queues `work` for a hashing thread, or refuses it when the queue is full.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Workspace) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let (answer, result) = tokio::sync::oneshot::channel();
        {
            let mut state = self.queue.lock();
            if state.closed {
                return Err(HashError::Stopped);
            }
            if state.jobs.len() >= state.idle_threads + self.size.queue {
                let last_hash = Duration::from_micros(self.last_hash_us.load(Ordering::Relaxed));
                let retry_after = retry_after(state.jobs.len(), self.size.threads, last_hash);
                drop(state);
                metrics::counter!("chat_password_hashes_refused_total").increment(1);
                return Err(HashError::Busy { retry_after });
            }
            state
                .jobs
                .push_back(Box::new(move |workspace: &mut Workspace| {
                    let _ = answer.send(work(workspace));
                }));
        }
        self.queue.job_ready.notify_one();
        result.await.map_err(|_| HashError::Stopped)
    }
}

impl Drop for PasswordHasher {
    fn drop(&mut self) {
        self.queue.lock().closed = true;
        self.queue.job_ready.notify_all();
    }
}

/// When a refused caller should try again: once the jobs ahead of it have drained,
/// at the pace the threads run, in whole seconds, at least 1 and at most 60.
pub fn retry_after(waiting: usize, threads: usize, hash_time: Duration) -> Duration {
    let rounds = (waiting + threads) as f64 / threads.max(1) as f64;
    let seconds = (hash_time.as_secs_f64() * rounds).ceil();
    Duration::from_secs(seconds.clamp(1.0, 60.0) as u64)
}

/// One thread of the pool: takes jobs until the hasher is dropped, keeping its
/// working buffer while jobs keep coming and releasing it after an idle spell.
fn run_hashing_thread(queue: &Queue, last_hash_us: &AtomicU64) {
    let mut workspace = Workspace::default();
    let mut state = queue.lock();
    loop {
        if let Some(job) = state.jobs.pop_front() {
            drop(state);
            let started = Instant::now();
            job(&mut workspace);
            last_hash_us.store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            state = queue.lock();
            continue;
        }
        if state.closed {
            return;
        }
        state.idle_threads += 1;
        if workspace.holds_memory() {
            let (woken, timeout) = queue
                .job_ready
                .wait_timeout(state, RELEASE_AFTER_IDLE)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            state = woken;
            state.idle_threads -= 1;
            if timeout.timed_out() && state.jobs.is_empty() {
                drop(state);
                workspace.release();
                state = queue.lock();
            }
        } else {
            state = queue
                .job_ready
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            state.idle_threads -= 1;
        }
    }
}

/// A hashing thread's working memory, kept between the hashes of a burst.
#[derive(Default)]
struct Workspace {
    blocks: Vec<Block>,
}

impl Workspace {
    /// At least `count` blocks. Argon2 overwrites every block before it reads it, so
    /// what the last hash left in them does not matter.
    fn blocks(&mut self, count: usize) -> &mut [Block] {
        if self.blocks.len() < count {
            self.blocks = Vec::new(); // free the old one before allocating the new
            self.blocks = vec![Block::default(); count];
        }
        &mut self.blocks
    }

    fn holds_memory(&self) -> bool {
        !self.blocks.is_empty()
    }

    fn release(&mut self) {
        self.blocks = Vec::new();
        give_free_memory_back();
    }
}

/// The first 19 MiB buffer comes from `mmap` and its free unmaps it, but that free
/// raises glibc's mmap threshold past 19 MiB, so from the second burst on the buffers
/// come from the heap and a free keeps them resident. `malloc_trim` returns the free
/// pages of every arena. Measured: without it the second burst left 58 MB resident,
/// with it 19.5 MB (idle 13.5 MB). Other allocators return large blocks on free.
fn give_free_memory_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes a plain integer and only touches the allocator's own
    // state, under the allocator's locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Argon2id with the crate's defaults: m = 19 MiB, t = 2, p = 1, version 0x13, a
/// 32-byte output: the same PHC strings `Argon2::default().hash_password` makes.
fn hash_into(workspace: &mut Workspace, password: &[u8]) -> Result<String, HashError> {
    let failed = |e: argon2::password_hash::Error| HashError::Hashing(e.to_string());
    let argon2 = Argon2::default();
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.as_salt().decode_b64(&mut salt_bytes).map_err(failed)?;
    let blocks = workspace.blocks(argon2.params().block_count());
    let output = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
        Ok(argon2.hash_password_into_with_memory(password, salt_bytes, out, &mut *blocks)?)
    })
    .map_err(failed)?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon2.params()).map_err(failed)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

/// Recomputes the stored hash's output with its own algorithm, version, parameters
/// and salt, and compares the two in constant time (`Output`'s `PartialEq`).
fn verify_into(
    workspace: &mut Workspace,
    password: &[u8],
    stored: &str,
) -> Result<bool, HashError> {
    let unreadable = |e: argon2::password_hash::Error| HashError::StoredHash(e.to_string());
    let parsed = PasswordHash::new(stored).map_err(unreadable)?;
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(unreadable)?;
    let version = match parsed.version {
        Some(version) => Version::try_from(version).map_err(|e| unreadable(e.into()))?,
        None => Version::default(),
    };
    let params = Params::try_from(&parsed).map_err(unreadable)?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(HashError::StoredHash("no salt or no hash".into()));
    };
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(unreadable)?;
    let argon2 = Argon2::new(algorithm, version, params);
    let blocks = workspace.blocks(argon2.params().block_count());
    let computed = Output::init_with(expected.len(), |out| {
        Ok(argon2.hash_password_into_with_memory(password, salt_bytes, out, &mut *blocks)?)
    });
    match computed {
        Ok(computed) => Ok(computed == expected),
        // A password argon2 will not take (longer than 4 GiB) matches nothing.
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(error) => Err(HashError::Hashing(error.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};

    use super::*;

    /// Made by the code before the pool (`Argon2::default().hash_password`), for
    /// "correct horse": hashes already stored must keep verifying.
    const EARLIER_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$xZ/AK6UHkERcOAQqnT+I7Q$I9eQIYn3ykBuj8hADdO38Y+gihnC70aJH96Fiwc62h0";

    fn hasher(threads: usize, queue: usize) -> PasswordHasher {
        PasswordHasher::start(PoolSize { threads, queue })
    }

    #[tokio::test]
    async fn passwords_verify_only_against_their_hash() {
        let hasher = hasher(1, 4);
        let hash = hasher.hash("correct horse".into()).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(
            hasher
                .verify("correct horse".into(), hash.clone())
                .await
                .unwrap()
        );
        assert!(!hasher.verify("wrong horse".into(), hash).await.unwrap());
        assert!(!hasher.verify_dummy("correct horse".into()).await.unwrap());
    }

    #[tokio::test]
    async fn hashes_are_interchangeable_with_the_argon2_crates_own() {
        let hasher = hasher(1, 4);
        assert!(
            hasher
                .verify("correct horse".into(), EARLIER_HASH.into())
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("wrong horse".into(), EARLIER_HASH.into())
                .await
                .unwrap()
        );

        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default()
            .hash_password(b"battery staple", &salt)
            .unwrap();
        assert!(
            hasher
                .verify("battery staple".into(), theirs.to_string())
                .await
                .unwrap()
        );

        let ours = hasher.hash("battery staple".into()).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"battery staple", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"battery stable", &parsed)
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_hash_with_other_parameters_verifies_too() {
        let hasher = hasher(1, 4);
        let params = Params::new(8 * 1024, 3, 1, None).unwrap();
        let salt = SaltString::generate(&mut OsRng);
        let small = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"pw", &salt)
            .unwrap()
            .to_string();
        assert!(hasher.verify("pw".into(), small.clone()).await.unwrap());
        assert!(!hasher.verify("px".into(), small).await.unwrap());
    }

    #[tokio::test]
    async fn an_unreadable_stored_hash_is_an_error_not_a_match() {
        let hasher = hasher(1, 4);
        for stored in ["", "plain text", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA"] {
            assert!(matches!(
                hasher.verify("pw".into(), stored.into()).await,
                Err(HashError::StoredHash(_))
            ));
        }
    }

    #[tokio::test]
    async fn beyond_the_queue_a_hash_is_refused_with_a_retry_time() {
        let hasher = Arc::new(hasher(1, 1));
        let burst: Vec<_> = (0..8)
            .map(|_| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.hash("pw".into()).await })
            })
            .collect();
        let (mut done, mut refused) = (0, 0);
        for outcome in burst {
            match outcome.await.unwrap() {
                Ok(_) => done += 1,
                Err(HashError::Busy { retry_after }) => {
                    assert!(retry_after >= Duration::from_secs(1));
                    refused += 1;
                }
                Err(error) => panic!("{error}"),
            }
        }
        // One runs and one waits; the rest arrive while both are taken.
        assert!((1..=3).contains(&done), "{done} done");
        assert_eq!(done + refused, 8);
        // Once the burst has drained, the pool takes work again.
        assert!(hasher.hash("pw".into()).await.is_ok());
    }

    #[test]
    fn retry_after_grows_with_the_queue_and_stays_within_bounds() {
        let hash = Duration::from_millis(40);
        assert_eq!(retry_after(0, 2, hash), Duration::from_secs(1));
        assert_eq!(retry_after(98, 2, hash), Duration::from_secs(2));
        assert_eq!(retry_after(500, 2, hash), Duration::from_secs(11));
        assert_eq!(retry_after(1_000_000, 1, hash), Duration::from_secs(60));
        assert_eq!(retry_after(3, 0, hash), Duration::from_secs(1));
    }

    #[test]
    fn pool_sizes_default_to_the_cores_and_64_waiting_per_thread() {
        let auto = PoolSize::resolve(0, None);
        assert!(auto.threads >= 1);
        assert_eq!(auto.queue, 64 * auto.threads);
        assert_eq!(
            PoolSize::resolve(3, Some(0)),
            PoolSize {
                threads: 3,
                queue: 0
            }
        );
    }

    #[test]
    fn a_workspace_grows_to_the_largest_hash_and_releases_to_nothing() {
        let mut workspace = Workspace::default();
        assert!(!workspace.holds_memory());
        assert_eq!(workspace.blocks(8).len(), 8);
        assert_eq!(workspace.blocks(4).len(), 8);
        assert_eq!(workspace.blocks(16).len(), 16);
        workspace.release();
        assert!(!workspace.holds_memory());
    }
}
