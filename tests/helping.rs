//! A caller about to wait for the call it just made runs it itself when the
//! actor is idle (instead of parking until the actor task runs it). These
//! tests check that this happens, that such calls are still the actor's own
//! calls, and that order, exactly-once and one-call-at-a-time hold whoever
//! runs the calls, under random interleavings.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use ray::prelude::*;

#[ray::actor]
#[derive(Default)]
pub struct Probe {
    entries: Vec<(u32, u32)>,
    running: bool,
}

#[ray::actor]
impl Probe {
    /// The tokio task the method runs on, and the ray task (the call).
    pub fn whereami(&self) -> (Option<tokio::task::Id>, ray::TaskId) {
        (
            tokio::task::try_id(),
            ray::current_task_id().expect("a call has a task ID"),
        )
    }

    pub fn push(&mut self, key: u32, seq: u32) -> usize {
        assert!(!self.running, "two calls of one actor overlapped");
        self.entries.push((key, seq));
        self.entries.len()
    }

    pub async fn push_slowly(&mut self, key: u32, seq: u32, yields: u32) -> usize {
        assert!(!self.running, "two calls of one actor overlapped");
        self.running = true;
        for _ in 0..yields {
            tokio::task::yield_now().await;
        }
        self.entries.push((key, seq));
        self.running = false;
        self.entries.len()
    }

    /// `seq` arrives as a ref: the call may wait for it.
    pub fn push_after(&mut self, key: u32, seq: u32) -> usize {
        self.push(key, seq)
    }

    pub fn echo(&self, seq: u32) -> u32 {
        seq
    }

    /// Spawns a tokio task from a synchronous method: needs the runtime's
    /// context wherever the method runs.
    pub fn spawn_one(&self) -> bool {
        drop(tokio::spawn(async {}));
        tokio::runtime::Handle::try_current().is_ok()
    }

    /// The GPU IDs the method sees.
    pub fn gpus(&self) -> Vec<usize> {
        ray::get_gpu_ids()
    }

    /// Whether ray's APIs, inside the method, find this actor's runtime.
    pub fn sees_own_runtime(&self) -> bool {
        ray::actors().iter().any(|a| a.class_name == "Probe")
    }

    /// A synchronous method that keeps its thread busy.
    pub fn linger(&self, ms: u64) -> Option<tokio::task::Id> {
        std::thread::sleep(Duration::from_millis(ms));
        tokio::task::try_id()
    }

    pub fn entries(&self) -> Vec<(u32, u32)> {
        self.entries.clone()
    }
}

#[ray::actor]
pub struct Caller {
    probe: ProbeHandle,
}

#[ray::actor]
impl Caller {
    pub fn new(probe: ProbeHandle) -> Self {
        Caller { probe }
    }

    /// What the probe's method found (see `Probe::sees_own_runtime`).
    pub async fn ask(&mut self) -> bool {
        self.probe.sees_own_runtime().await.unwrap()
    }

    /// This call's task ID before and after awaiting a call to `Probe`, and
    /// the task ID the probe's call saw.
    pub async fn around(&mut self) -> (ray::TaskId, ray::TaskId, ray::TaskId) {
        let before = ray::current_task_id().unwrap();
        let (_, inner) = self.probe.whereami().await.unwrap();
        let after = ray::current_task_id().unwrap();
        (before, inner, after)
    }
}

/// On a current-thread runtime the actor task cannot run while the caller
/// does, so an awaited call is run by its caller: on the caller's tokio
/// task, yet as its own ray call.
#[tokio::test(flavor = "current_thread")]
async fn a_waiting_caller_runs_its_call_itself_when_the_actor_is_idle() {
    let _ray = ray::init(Config::default()).unwrap();
    let probe = Probe::remote().unwrap();
    // The first call waits for the actor to be built, by its task.
    probe.push(0, 0).await.unwrap();
    let me = tokio::task::try_id();
    let driver = ray::current_task_id().unwrap();
    let mut seen = std::collections::HashSet::new();
    let mut by_caller = 0;
    for i in 0..100 {
        let (task, call) = probe.whereami().await.unwrap();
        if task == me {
            by_caller += 1;
        } else {
            // Only a pause (a timed run was slow: a loaded machine) lets
            // the actor task run them; never the first.
            assert!(i > 0, "the first call ran on another task");
        }
        assert_ne!(call, driver, "a call ran as its caller");
        assert!(seen.insert(call), "two calls had one task ID");
    }
    assert!(by_caller > 0);
    assert_eq!(ray::current_task_id().unwrap(), driver);
}

/// A caller running a call is busy until it returns: after a run that took
/// over a millisecond, the actor's callers leave the next calls to the
/// actor task for a while, then run them again.
#[tokio::test(flavor = "current_thread")]
async fn callers_pause_running_the_calls_of_a_slow_actor() {
    let _ray = ray::init(Config::default()).unwrap();
    let probe = Probe::remote().unwrap();
    probe.push(0, 0).await.unwrap();
    let me = tokio::task::try_id();
    assert_eq!(
        probe.linger(0).await.unwrap(),
        me,
        "a quick call is run by its caller"
    );
    // Run by its caller (then too slow) or, if a pause already began, by
    // the actor task: either way a pause follows.
    probe.linger(5).await.unwrap();
    for _ in 0..100 {
        assert_ne!(
            probe.linger(0).await.unwrap(),
            me,
            "a call ran in its caller during a pause"
        );
    }
    // The pause ends: quick calls are run by their callers again.
    let mut by_caller = 0;
    for _ in 0..400 {
        if probe.linger(0).await.unwrap() == me {
            by_caller += 1;
        }
    }
    assert!(by_caller > 0, "the pause never ended");
}

/// A plain thread waiting with `get_blocking` runs its calls too, inside
/// the actor's runtime (a method can spawn tasks there).
#[test]
fn a_plain_thread_runs_its_calls_inside_the_actors_runtime() {
    std::thread::spawn(|| {
        let _ray = ray::init(Config::default()).unwrap();
        let probe = Probe::remote().unwrap();
        probe.push(0, 0).get_blocking().unwrap();
        let mut by_caller = 0;
        for i in 0..200u32 {
            assert!(probe.spawn_one().get_blocking().unwrap());
            // Run here (no tokio task) or by the actor task, in order.
            let (task, _) = probe.whereami().get_blocking().unwrap();
            by_caller += u32::from(task.is_none());
            assert_eq!(probe.push(1, i).get_blocking().unwrap(), i as usize + 2);
        }
        assert!(by_caller > 0, "no call ran on the waiting thread");
    })
    .join()
    .unwrap();
}

/// Calls not awaited at once are run by the actor task as before.
#[tokio::test(flavor = "current_thread")]
async fn calls_awaited_later_are_run_by_the_actor_task() {
    let _ray = ray::init(Config::default()).unwrap();
    let probe = Probe::remote().unwrap();
    probe.push(0, 0).await.unwrap();
    let me = tokio::task::try_id();
    let refs: Vec<_> = (0..10).map(|_| probe.whereami()).collect();
    // Yielding lets the actor task run them.
    tokio::task::yield_now().await;
    for r in refs {
        let (task, _) = r.await.unwrap();
        assert_ne!(task, me);
    }
}

/// An actor's async method awaiting another actor's call may run that call
/// on its own task: the callee still sees its own call, and the caller's
/// call is current again afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_run_inside_another_actors_method_is_its_own_call() {
    let _ray = ray::init(Config::default()).unwrap();
    let probe = Probe::remote().unwrap();
    let caller = Caller::remote(probe).unwrap();
    for _ in 0..50 {
        let (before, inner, after) = caller.around().await.unwrap();
        assert_eq!(before, after, "the caller's call was not restored");
        assert_ne!(before, inner, "the callee ran as its caller's call");
    }
}

/// A call of an actor of another runtime sees its actor's runtime through
/// ray's APIs: run by a plain caller of this runtime (which makes the
/// actor's runtime current meanwhile), or left to its actor by an actor of
/// this one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_of_another_runtimes_actor_see_that_runtime() {
    let _ray = ray::init(Config::default()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let other = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let _ray = ray::init(Config::default()).unwrap();
            tx.send(Probe::remote().unwrap()).unwrap();
            tokio::task::spawn_blocking(move || stopped.recv())
                .await
                .unwrap()
                .ok();
        });
    });
    let probe = rx.recv().unwrap();
    assert!(probe.sees_own_runtime().await.unwrap());
    let caller = Caller::remote(probe).unwrap();
    for _ in 0..20 {
        assert!(
            caller.ask().await.unwrap(),
            "a call ran in its caller's runtime"
        );
    }
    drop(caller);
    stop.send(()).unwrap();
    other.join().unwrap();
}

/// A synchronous remote function holding a GPU runs a default actor's call
/// while it waits for it: the call sees the actor's GPU IDs (none), not the
/// function's.
#[ray::remote(num_gpus = 1)]
fn gpus_here_and_in_a_call(p: ProbeHandle) -> (Vec<usize>, Vec<usize>) {
    let mine = ray::get_gpu_ids();
    let theirs = p.gpus().get_blocking().unwrap();
    (mine, theirs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_run_by_a_gpu_holder_sees_no_gpu() {
    let _ray = ray::init(Config::default().num_gpus(1)).unwrap();
    let probe = Probe::remote().unwrap();
    assert!(probe.gpus().await.unwrap().is_empty());
    for _ in 0..10 {
        let (mine, theirs) = gpus_here_and_in_a_call::remote(probe.clone())
            .await
            .unwrap();
        assert_eq!(mine.len(), 1);
        assert!(
            theirs.is_empty(),
            "the call saw its caller's GPUs: {theirs:?}"
        );
    }
}

/// What the synchronous path cannot run (async methods, calls waiting for an
/// argument) goes to the actor task; results stay in order either way.
#[tokio::test(flavor = "current_thread")]
async fn calls_that_need_the_actor_task_are_handed_to_it() {
    let _ray = ray::init(Config::default()).unwrap();
    let probe = Probe::remote().unwrap();
    let other = Probe::remote().unwrap();
    let mut n = 0;
    for seq in 0..60u32 {
        n += 1;
        let got = match seq % 3 {
            0 => probe.push(0, seq).await,
            1 => probe.push_slowly(0, seq, seq % 4).await,
            // The argument is another actor's result, not ready yet.
            _ => probe.push_after(0, other.echo(seq)).await,
        };
        assert_eq!(got.unwrap(), n);
    }
    let seqs: Vec<u32> = probe
        .entries()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.1)
        .collect();
    assert_eq!(seqs, (0..60).collect::<Vec<_>>());
}

/// Seeded schedules: callers on forks and on one shared handle make sync,
/// async and ref-argument calls, await some at once (so they may run them)
/// and some later, and yield or sleep at random. Each handle's calls run in
/// its order, each exactly once, never two at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_and_exactly_once_hold_whoever_runs_the_calls() {
    let _ray = ray::init(Config::default()).unwrap();
    for seed in 0..40u64 {
        let probe = Probe::remote().unwrap();
        let shared = Arc::new(Probe::remote().unwrap());
        let source = Probe::remote().unwrap();
        let mut tasks = Vec::new();
        for key in 0..6u32 {
            // Keys 0-3 call through their own fork of `probe`, keys 4-5
            // through one `Arc`-shared handle of `shared`.
            let own = (key < 4).then(|| probe.clone());
            let shared = shared.clone();
            let source = source.clone();
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed * 100 + u64::from(key));
            tasks.push(tokio::spawn(async move {
                let t: &ProbeHandle = own.as_ref().unwrap_or(&shared);
                let mut later = Vec::new();
                let n = rng.random_range(10..40u32);
                for seq in 0..n {
                    let r = match rng.random_range(0..4) {
                        0 => t.push_slowly(key, seq, rng.random_range(0..3)),
                        // The argument may not be ready when the call is.
                        1 => t.push_after(key, source.echo(seq)),
                        _ => t.push(key, seq),
                    };
                    if rng.random_bool(0.5) {
                        r.await.unwrap();
                    } else {
                        later.push(r);
                    }
                    match rng.random_range(0..10) {
                        0 => {
                            let us = rng.random_range(0..200);
                            tokio::time::sleep(Duration::from_micros(us)).await
                        }
                        1..=3 => tokio::task::yield_now().await,
                        _ => {}
                    }
                }
                for r in later {
                    r.await.unwrap();
                }
                (key, n)
            }));
        }
        let mut expected = HashMap::new();
        for t in tasks {
            let (key, n) = tokio::time::timeout(Duration::from_secs(20), t)
                .await
                .unwrap_or_else(|_| panic!("seed {seed}: a caller hung"))
                .unwrap();
            expected.insert(key, n);
        }
        let mut got: HashMap<u32, Vec<u32>> = HashMap::new();
        for e in probe
            .entries()
            .await
            .unwrap()
            .into_iter()
            .chain(shared.entries().await.unwrap())
        {
            got.entry(e.0).or_default().push(e.1);
        }
        for (key, n) in expected {
            // Each caller's calls in the order made, each exactly once.
            let seqs = got.remove(&key).unwrap_or_default();
            assert_eq!(seqs, (0..n).collect::<Vec<_>>(), "seed {seed}: key {key}");
        }
    }
}

/// Callers on OS threads (`get_blocking`) and on tokio tasks run calls of
/// one actor while its task runs others: the actor task, finding the actor
/// taken, must always be woken to take over (no call may wait forever).
#[test]
fn threads_and_tasks_running_calls_never_strand_one() {
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    );
    let ray = rt.block_on(async { ray::init(Config::default()) }).unwrap();
    let probe = rt.block_on(async { Probe::remote() }).unwrap();
    let (done, finished) = std::sync::mpsc::channel();
    for key in 0..6u32 {
        let p = probe.clone();
        let rt = rt.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            if key < 3 {
                // A plain thread: runs calls inside the actor's runtime.
                for seq in 0..2000u32 {
                    let r = match seq % 7 {
                        0 => p.push_slowly(key, seq, 1),
                        _ => p.push(key, seq),
                    };
                    r.get_blocking().unwrap();
                }
            } else {
                rt.block_on(async move {
                    tokio::spawn(async move {
                        for seq in 0..2000u32 {
                            let r = p.push(key, seq);
                            if seq % 5 == 0 {
                                // The actor task may get to it first.
                                tokio::task::yield_now().await;
                            }
                            r.await.unwrap();
                        }
                    })
                    .await
                    .unwrap()
                });
            }
            done.send(key).unwrap();
        });
    }
    for _ in 0..6 {
        finished
            .recv_timeout(Duration::from_secs(30))
            .expect("a caller's calls hung");
    }
    let entries = rt.block_on(probe.entries().into_future()).unwrap();
    let mut per_key: HashMap<u32, Vec<u32>> = HashMap::new();
    for (k, s) in entries {
        per_key.entry(k).or_default().push(s);
    }
    for key in 0..6u32 {
        assert_eq!(per_key[&key], (0..2000).collect::<Vec<_>>(), "key {key}");
    }
    drop(probe);
    rt.block_on(ray.shutdown());
}
