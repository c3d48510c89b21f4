//! The ray columns: the default actor, a checkpointable one whose policy says
//! no, one with `max_reconstructions = 3`, and the synchronous caller.

use std::future::{Future, IntoFuture};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ray::prelude::*;

use crate::common::{Bench, Expect, Live, LiveToken, Sizes, Workload};

/// How many times the runtime asked [`CkptCounter`] whether to checkpoint.
static SHOULD_CHECKPOINT_CALLS: AtomicU64 = AtomicU64::new(0);

/// How many times the runtime called `should_checkpoint` so far.
pub fn should_checkpoint_calls() -> u64 {
    SHOULD_CHECKPOINT_CALLS.load(Ordering::Relaxed)
}

/// The default ray actor.
#[ray::actor]
pub struct Counter {
    value: u64,
    _live: LiveToken,
}

#[ray::actor]
impl Counter {
    pub fn new(live: Live) -> Self {
        Counter {
            value: 0,
            _live: live.token(),
        }
    }

    pub fn incr(&mut self, by: u64) -> u64 {
        self.value += by;
        self.value
    }
}

/// A checkpointable actor whose policy never asks for a checkpoint.
#[ray::actor(checkpointable)]
pub struct CkptCounter {
    value: u64,
    /// Times asked: counted here (a plain add, as a policy reading its own
    /// state would cost) and added to the global count when dropped.
    asked: u64,
    _live: LiveToken,
}

impl Drop for CkptCounter {
    fn drop(&mut self) {
        SHOULD_CHECKPOINT_CALLS.fetch_add(self.asked, Ordering::Relaxed);
    }
}

#[ray::actor]
impl CkptCounter {
    pub fn new(live: Live) -> Self {
        CkptCounter {
            value: 0,
            asked: 0,
            _live: live.token(),
        }
    }

    pub fn incr(&mut self, by: u64) -> u64 {
        self.value += by;
        self.value
    }
}

impl Checkpointable for CkptCounter {
    fn should_checkpoint(&mut self, _ctx: &CheckpointContext) -> bool {
        self.asked += 1;
        false
    }

    fn save_checkpoint(&mut self, _: ActorId, _: CheckpointId) -> Result<(), ray::BoxError> {
        Ok(())
    }

    fn load_checkpoint(
        &mut self,
        _: ActorId,
        _: &[Checkpoint],
    ) -> Result<Option<CheckpointId>, ray::BoxError> {
        Ok(None)
    }

    fn checkpoint_expired(&mut self, _: ActorId, _: CheckpointId) -> Result<(), ray::BoxError> {
        Ok(())
    }
}

/// An actor declared with `max_reconstructions = 3` (the replay log on).
#[ray::actor(max_reconstructions = 3)]
pub struct ReconCounter {
    value: u64,
    _live: LiveToken,
}

#[ray::actor]
impl ReconCounter {
    pub fn new(live: Live) -> Self {
        ReconCounter {
            value: 0,
            _live: live.token(),
        }
    }

    pub fn incr(&mut self, by: u64) -> u64 {
        self.value += by;
        self.value
    }
}

macro_rules! bench_for {
    ($handle:ty, $class:ident) => {
        impl Bench for $handle {
            async fn create(live: Live) -> Self {
                $class::remote(live).expect("creating a ray actor")
            }

            fn incr(&self, by: u64) -> impl Future<Output = u64> + Send + 'static {
                Expect(<$handle>::incr(self, by).into_future())
            }
        }
    };
}

bench_for!(CounterHandle, Counter);
bench_for!(CkptCounterHandle, CkptCounter);
bench_for!(ReconCounterHandle, ReconCounter);

/// The workloads for a caller in synchronous code, outside any runtime
/// (`get_blocking()`), on the thread that called `ray::init`.
pub fn measure_sync(w: Workload, s: Sizes) -> Duration {
    let live = Live::default();
    let create = || Counter::remote(live.clone()).expect("creating a ray actor");
    let elapsed = match w {
        Workload::W1 => {
            let h = create();
            assert_eq!(h.incr(0).get_blocking(), Ok(0));
            let t = Instant::now();
            for i in 1..=s.n {
                assert_eq!(h.incr(1).get_blocking(), Ok(i));
            }
            t.elapsed()
        }
        Workload::W2 => {
            let h = create();
            assert_eq!(h.incr(0).get_blocking(), Ok(0));
            let t = Instant::now();
            let replies: Vec<ObjectRef<u64>> = (0..s.m).map(|_| h.incr(1)).collect();
            for (i, r) in replies.iter().enumerate() {
                assert_eq!(r.get_blocking(), Ok(i as u64 + 1), "replies out of order");
            }
            t.elapsed()
        }
        Workload::W3 => {
            let h = create();
            assert_eq!(h.incr(0).get_blocking(), Ok(0));
            let t = Instant::now();
            let max = std::thread::scope(|scope| {
                let callers: Vec<_> = (0..s.callers)
                    .map(|_| {
                        let h = h.clone();
                        scope.spawn(move || {
                            let mut last = 0;
                            for _ in 0..s.k {
                                let v = h.incr(1).get_blocking().expect("a ray call failed");
                                assert!(v > last, "a caller saw {v} after {last}");
                                last = v;
                            }
                            last
                        })
                    })
                    .collect();
                callers
                    .into_iter()
                    .map(|c| c.join().expect("a caller thread panicked"))
                    .max()
            });
            let d = t.elapsed();
            assert_eq!(max, Some(s.callers * s.k));
            d
        }
        Workload::W4 => {
            let t = Instant::now();
            let actors: Vec<CounterHandle> = (0..s.a).map(|_| create()).collect();
            let replies: Vec<_> = actors.iter().map(|h| h.incr(1)).collect();
            for r in &replies {
                assert_eq!(r.get_blocking(), Ok(1));
            }
            drop(replies);
            drop(actors);
            live.all_dropped_blocking();
            t.elapsed()
        }
    };
    live.all_dropped_blocking();
    elapsed
}
