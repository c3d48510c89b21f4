//! Fault-injection suite (SEMANTICS §8): randomized, seeded schedules of
//! concurrent callers on several forks, with panics and kills at random
//! points, on plain and checkpointing actors.
//!
//! Invariants checked on every schedule: the final state equals applying every
//! non-panicking call exactly once; each handle's calls ran in its order; no
//! caller hangs (every wait is bounded); every error is the right variant.
//!
//! `cargo test --test fault_injection` runs 300 schedules. A longer run:
//! `RAY_FAULT_SCHEDULES=10000 cargo test --release --test fault_injection -- --nocapture`.
//! A failure prints its seed; rerun just that one with `RAY_FAULT_SEED=<seed>
//! RAY_FAULT_SCHEDULES=1`.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ray::prelude::*;

const BOUND: Duration = Duration::from_secs(10);

/// Ledger state shared by both actor kinds.
#[derive(Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct Entries {
    entries: Vec<(u32, u32)>,
}

#[ray::actor(max_reconstructions = 1000)]
#[derive(Default)]
pub struct Plain {
    s: Entries,
}

#[ray::actor(max_reconstructions = 1000, checkpoint(every_calls = 7, keep = 3))]
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct Durable {
    s: Entries,
}

/// The same four methods on both actor kinds (an `#[ray::actor]` impl
/// belongs to one class, so a macro writes it twice).
macro_rules! ledger_methods {
    ($actor:ident) => {
        #[ray::actor]
        impl $actor {
            pub fn add(&mut self, key: u32, seq: u32) -> usize {
                self.s.entries.push((key, seq));
                self.s.entries.len()
            }

            pub async fn add_slow(&mut self, key: u32, seq: u32, yields: u32) -> usize {
                for _ in 0..yields {
                    tokio::task::yield_now().await;
                }
                self.s.entries.push((key, seq));
                self.s.entries.len()
            }

            pub fn boom(&mut self, key: u32) -> usize {
                self.s.entries.push((key, u32::MAX));
                panic!("boom from {key}")
            }

            pub fn entries(&self) -> Vec<(u32, u32)> {
                self.s.entries.clone()
            }
        }
    };
}

ledger_methods!(Plain);
ledger_methods!(Durable);

/// What one schedule did.
#[derive(Default)]
struct Figures {
    calls: u64,
    panics: u64,
    kills: u64,
    lost: u64,
    duplicated: u64,
}

/// The operations a caller uses, for either actor kind.
trait Ledger: Clone + Send + Sync + 'static {
    fn add(&self, key: u32, seq: u32) -> ObjectRef<usize>;
    fn add_slow(&self, key: u32, seq: u32, yields: u32) -> ObjectRef<usize>;
    fn boom(&self, key: u32) -> ObjectRef<usize>;
    fn entries(&self) -> ObjectRef<Vec<(u32, u32)>>;
    fn kill(&self);
}

macro_rules! ledger {
    ($h:ty) => {
        impl Ledger for $h {
            fn add(&self, key: u32, seq: u32) -> ObjectRef<usize> {
                <$h>::add(self, key, seq)
            }
            fn add_slow(&self, key: u32, seq: u32, yields: u32) -> ObjectRef<usize> {
                <$h>::add_slow(self, key, seq, yields)
            }
            fn boom(&self, key: u32) -> ObjectRef<usize> {
                <$h>::boom(self, key)
            }
            fn entries(&self) -> ObjectRef<Vec<(u32, u32)>> {
                <$h>::entries(self)
            }
            fn kill(&self) {
                ray::kill(self, false);
            }
        }
    };
}
ledger!(PlainHandle);
ledger!(DurableHandle);

async fn bounded<T: Clone>(seed: u64, what: &str, r: ObjectRef<T>) -> ray::Result<T> {
    tokio::time::timeout(BOUND, r)
        .await
        .unwrap_or_else(|_| panic!("seed {seed}: {what} hung for {BOUND:?}"))
}

async fn schedule<H: Ledger>(seed: u64, handle: H, rng: &mut StdRng) -> Figures {
    let mut figures = Figures::default();
    let forks = rng.random_range(2..=4u32);
    let mut tasks = Vec::new();
    for key in 0..forks {
        let h = handle.clone();
        let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(31).wrapping_add(u64::from(key)));
        tasks.push(tokio::spawn(async move {
            let ops = rng.random_range(5..30u32);
            let mut seq = 0u32;
            let mut pending = Vec::new();
            let mut panics = 0u64;
            for _ in 0..ops {
                if rng.random_bool(0.06) {
                    let e = bounded(seed, "a panicking call", h.boom(key))
                        .await
                        .unwrap_err();
                    assert!(
                        matches!(&e, Error::Task { message, .. } if message.contains("boom")),
                        "seed {seed}: a panicking call gave {e:?}"
                    );
                    panics += 1;
                    continue;
                }
                let r = if rng.random_bool(0.3) {
                    h.add_slow(key, seq, rng.random_range(0..4))
                } else {
                    h.add(key, seq)
                };
                seq += 1;
                pending.push(r);
                if rng.random_bool(0.3) {
                    for r in pending.drain(..) {
                        let v = bounded(seed, "a call", r).await;
                        assert!(
                            v.is_ok(),
                            "seed {seed}: a call failed while restarts remain: {v:?}"
                        );
                    }
                }
                if rng.random_bool(0.2) {
                    tokio::task::yield_now().await;
                }
            }
            for r in pending {
                let v = bounded(seed, "a call", r).await;
                assert!(
                    v.is_ok(),
                    "seed {seed}: a call failed while restarts remain: {v:?}"
                );
            }
            (key, seq, panics)
        }));
    }
    // The driver kills the actor (with restart) at random moments.
    let kills = rng.random_range(0..=3u32);
    for _ in 0..kills {
        tokio::time::sleep(Duration::from_micros(rng.random_range(0..300))).await;
        handle.kill();
    }
    let mut expected = Vec::new();
    for t in tasks {
        let (key, n, panics) = tokio::time::timeout(BOUND, t)
            .await
            .unwrap_or_else(|_| panic!("seed {seed}: a caller hung"))
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        expected.push((key, n));
        figures.calls += u64::from(n) + panics;
        figures.panics += panics;
    }
    figures.kills = u64::from(kills);
    let entries = bounded(seed, "reading the state", handle.entries())
        .await
        .unwrap_or_else(|e| panic!("seed {seed}: reading the state failed: {e}"));
    for (key, n) in expected {
        let seqs: Vec<u32> = entries.iter().filter(|e| e.0 == key).map(|e| e.1).collect();
        let want: Vec<u32> = (0..n).collect();
        figures.lost += want.iter().filter(|s| !seqs.contains(s)).count() as u64;
        figures.duplicated += seqs
            .len()
            .saturating_sub(seqs.iter().collect::<std::collections::HashSet<_>>().len())
            as u64;
        assert_eq!(
            seqs, want,
            "seed {seed}: handle {key}: every non-panicking call exactly once, in order"
        );
    }
    figures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_crash_schedules() {
    let n: u64 = std::env::var("RAY_FAULT_SCHEDULES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let base: u64 = std::env::var("RAY_FAULT_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed);
    let mut total = Figures::default();
    let started = std::time::Instant::now();
    for i in 0..n {
        let seed = base + i;
        let mut rng = StdRng::seed_from_u64(seed);
        let ray = ray::init(Config::default()).unwrap();
        let f = if rng.random_bool(0.5) {
            schedule(seed, Plain::remote().unwrap(), &mut rng).await
        } else {
            schedule(seed, Durable::remote().unwrap(), &mut rng).await
        };
        ray.shutdown().await;
        total.calls += f.calls;
        total.panics += f.panics;
        total.kills += f.kills;
        total.lost += f.lost;
        total.duplicated += f.duplicated;
    }
    println!(
        "fault injection: {n} schedules (seeds {base}..{}), {} calls checked, {} panics and {} kills injected, lost {}, duplicated {} ({:?})",
        base + n,
        total.calls,
        total.panics,
        total.kills,
        total.lost,
        total.duplicated,
        started.elapsed()
    );
    assert_eq!(total.lost, 0);
    assert_eq!(total.duplicated, 0);
}
