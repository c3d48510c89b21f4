//! What every column shares: the sizes, the workloads written once over the
//! [`Bench`] trait, the live-actor counter and the RSS reader.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The four workloads of issue 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Workload {
    /// One caller, `n` sequential awaited calls.
    W1,
    /// One caller, `m` pipelined calls, then await all in order.
    W2,
    /// `callers` callers x `k` sequential calls on one actor.
    W3,
    /// Create `a` actors, one call each, drop all (until their state is dropped).
    W4,
}

impl Workload {
    pub const ALL: [Workload; 4] = [Workload::W1, Workload::W2, Workload::W3, Workload::W4];

    pub fn name(self) -> &'static str {
        match self {
            Workload::W1 => "W1",
            Workload::W2 => "W2",
            Workload::W3 => "W3",
            Workload::W4 => "W4",
        }
    }

    /// How many operations one run performs (calls, or actors for W4).
    pub fn ops(self, s: &Sizes) -> u64 {
        match self {
            Workload::W1 => s.n,
            Workload::W2 => s.m,
            Workload::W3 => s.callers * s.k,
            Workload::W4 => s.a,
        }
    }
}

/// Workload sizes.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub n: u64,
    pub m: u64,
    pub k: u64,
    pub callers: u64,
    pub a: u64,
    /// Idle actors created for the bytes-per-actor figure.
    pub idle: u64,
    /// Calls before the RSS figure (0: skipped).
    pub rss_calls: u64,
}

impl Sizes {
    pub const FULL: Sizes = Sizes {
        n: 200_000,
        m: 1_000_000,
        k: 100_000,
        callers: 8,
        a: 10_000,
        idle: 10_000,
        rss_calls: 10_000_000,
    };

    /// The full sizes divided by 1000 (CI's smoke run, and the warm-up).
    pub const TINY: Sizes = Sizes {
        n: 200,
        m: 1_000,
        k: 100,
        callers: 8,
        a: 10,
        idle: 10,
        rss_calls: 0,
    };
}

/// Counts the actor states alive, so that W4 (and the end of every run) can
/// wait until each framework has really torn its actors down.
#[derive(Clone, Default)]
pub struct Live(Arc<AtomicUsize>);

impl Live {
    /// A token held by one actor's state: counts it alive until dropped.
    pub fn token(&self) -> LiveToken {
        self.0.fetch_add(1, Ordering::Relaxed);
        LiveToken(self.0.clone())
    }

    pub fn count(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }

    /// Waits (yielding to the runtime) until every actor state is dropped.
    pub async fn all_dropped(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.count() != 0 {
            assert!(
                Instant::now() < deadline,
                "{} actor states still alive after 60 s",
                self.count()
            );
            tokio::task::yield_now().await;
        }
    }

    /// Same, for a thread outside any runtime.
    pub fn all_dropped_blocking(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.count() != 0 {
            assert!(
                Instant::now() < deadline,
                "{} actor states still alive after 60 s",
                self.count()
            );
            std::thread::yield_now();
        }
    }
}

/// Held by an actor's state (see [`Live`]).
pub struct LiveToken(Arc<AtomicUsize>);

impl Drop for LiveToken {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Release);
    }
}

/// A reply future with its error turned into a panic: what every column's
/// `incr` returns.
///
/// A named future, not an `async move { fut.await.expect(..) }` block: such a
/// block keeps room for the future twice (the captured one and the one being
/// awaited), which doubles the size of W2's million pending replies. At 48
/// bytes a reply, ray's vector of them (48 MB) crossed glibc's largest mmap
/// threshold (32 MB), so every round mapped it afresh and paid ~12k page
/// faults (~30 ms on this VM) that had nothing to do with the framework.
/// This wrapper adds nothing to the framework's own future, for every column.
pub struct Expect<F>(pub F);

impl<F, T, E> Future for Expect<F>
where
    F: Future<Output = Result<T, E>>,
    E: std::fmt::Debug,
{
    type Output = T;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<T> {
        // SAFETY: structural pinning: the inner future is never moved out
        // (`Expect` has no `Drop` and no other access to it), and `Expect` is
        // `Unpin` only when it is.
        let fut = unsafe { self.map_unchecked_mut(|e| &mut e.0) };
        fut.poll(cx).map(|r| {
            r.unwrap_or_else(|e| panic!("a call failed ({}): {e:?}", std::any::type_name::<F>()))
        })
    }
}

/// One framework's counter actor: `incr(by)` adds `by` and returns the new value.
pub trait Bench: Clone + Send + Sync + 'static {
    /// Creates (starts) one counter actor at 0.
    fn create(live: Live) -> impl Future<Output = Self> + Send;

    /// Sends `incr(by)` now and returns the future of its reply (pipelining).
    fn incr(&self, by: u64) -> impl Future<Output = u64> + Send + 'static;

    /// One awaited call, in the framework's idiom for a sequential call
    /// (the same as `incr` unless the framework has a dedicated form).
    fn call(&self, by: u64) -> impl Future<Output = u64> + Send + '_ {
        self.incr(by)
    }

    /// Lets the actor go (a frameworks whose actors outlive their refs stops it here).
    fn retire(self) {}

    /// Spawns a caller task in the framework's runtime.
    fn spawn_task<F>(f: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        tokio::spawn(f)
    }
}

/// Runs workload `w` once on framework `B` and returns the time it took.
/// Every reply is checked. Actor creation is outside the timing for W1-W3
/// (each starts with one warm call), inside it for W4 (with the teardown).
pub async fn measure<B: Bench>(w: Workload, s: Sizes) -> Duration {
    let live = Live::default();
    let elapsed = match w {
        Workload::W1 => {
            let h = B::create(live.clone()).await;
            assert_eq!(h.call(0).await, 0);
            let t = Instant::now();
            for i in 1..=s.n {
                assert_eq!(h.call(1).await, i);
            }
            let d = t.elapsed();
            h.retire();
            d
        }
        Workload::W2 => {
            let h = B::create(live.clone()).await;
            assert_eq!(h.call(0).await, 0);
            let t = Instant::now();
            let replies: Vec<_> = (0..s.m).map(|_| h.incr(1)).collect();
            for (i, r) in replies.into_iter().enumerate() {
                assert_eq!(r.await, i as u64 + 1, "replies out of order");
            }
            let d = t.elapsed();
            h.retire();
            d
        }
        Workload::W3 => {
            let h = B::create(live.clone()).await;
            assert_eq!(h.call(0).await, 0);
            let t = Instant::now();
            let callers: Vec<_> = (0..s.callers)
                .map(|_| {
                    let h = h.clone();
                    B::spawn_task(async move {
                        let mut last = 0;
                        for _ in 0..s.k {
                            let v = h.call(1).await;
                            assert!(v > last, "a caller saw {v} after {last}");
                            last = v;
                        }
                        last
                    })
                })
                .collect();
            let mut max = 0;
            for c in callers {
                max = max.max(c.await.expect("a caller task failed"));
            }
            let d = t.elapsed();
            assert_eq!(max, s.callers * s.k);
            h.retire();
            d
        }
        Workload::W4 => {
            let t = Instant::now();
            let mut actors = Vec::with_capacity(s.a as usize);
            for _ in 0..s.a {
                actors.push(B::create(live.clone()).await);
            }
            let replies: Vec<_> = actors.iter().map(|h| h.incr(1)).collect();
            for r in replies {
                assert_eq!(r.await, 1);
            }
            for h in actors {
                h.retire();
            }
            live.all_dropped().await;
            t.elapsed()
        }
    };
    live.all_dropped().await;
    elapsed
}

/// The plain column: a struct and a direct `&mut` method call.
pub struct Plain {
    value: u64,
    _live: LiveToken,
}

impl Plain {
    #[inline(never)]
    pub fn incr(&mut self, by: u64) -> u64 {
        self.value += by;
        self.value
    }
}

/// The workloads on [`Plain`], on the calling thread (W3's callers take
/// turns: the reference without any concurrency).
pub fn measure_plain(w: Workload, s: Sizes) -> Duration {
    use std::hint::black_box;
    let live = Live::default();
    let new = || Plain {
        value: 0,
        _live: live.token(),
    };
    match w {
        Workload::W1 => {
            let mut p = black_box(new());
            let t = Instant::now();
            for i in 1..=s.n {
                assert_eq!(black_box(p.incr(black_box(1))), i);
            }
            t.elapsed()
        }
        Workload::W2 => {
            let mut p = black_box(new());
            let t = Instant::now();
            let replies: Vec<u64> = (0..s.m).map(|_| p.incr(black_box(1))).collect();
            for (i, r) in replies.into_iter().enumerate() {
                assert_eq!(r, i as u64 + 1);
            }
            t.elapsed()
        }
        Workload::W3 => {
            let mut p = black_box(new());
            let t = Instant::now();
            let mut last = vec![0u64; s.callers as usize];
            for _ in 0..s.k {
                for l in last.iter_mut() {
                    let v = black_box(p.incr(black_box(1)));
                    assert!(v > *l);
                    *l = v;
                }
            }
            assert_eq!(last.iter().max().copied(), Some(s.callers * s.k));
            t.elapsed()
        }
        Workload::W4 => {
            let t = Instant::now();
            let mut all: Vec<Box<Plain>> = (0..s.a).map(|_| Box::new(new())).collect();
            for p in all.iter_mut() {
                assert_eq!(black_box(p.incr(black_box(1))), 1);
            }
            drop(black_box(all));
            assert_eq!(live.count(), 0);
            t.elapsed()
        }
    }
}

/// Minor page faults of the whole process so far (`getrusage`).
pub fn minor_faults() -> u64 {
    // SAFETY: `getrusage` fills the zeroed struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return 0;
    }
    u64::try_from(u.ru_minflt).unwrap_or(0)
}

/// The resident set size now, in bytes (from `/proc/self/statm`).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}
