//! Resources and placement (SEMANTICS §6): Ray's resource tests in spirit,
//! with every wait bounded.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ray::prelude::*;

const BOUND: Duration = Duration::from_secs(10);

/// Counts how many method runs overlap, across actors.
#[derive(Default)]
pub struct Overlap {
    now: AtomicUsize,
    max: AtomicUsize,
}

#[ray::actor]
pub struct Plain {
    overlap: Arc<Overlap>,
}

#[ray::actor]
impl Plain {
    pub fn new(overlap: Arc<Overlap>) -> Self {
        Plain { overlap }
    }

    pub async fn work(&self, ms: u64) -> usize {
        let n = self.overlap.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.overlap.max.fetch_max(n, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.overlap.now.fetch_sub(1, Ordering::SeqCst);
        n
    }
}

#[ray::actor(num_gpus = 1)]
#[derive(Default)]
pub struct GpuWorker;

#[ray::actor]
impl GpuWorker {
    pub fn gpus(&self) -> Vec<usize> {
        ray::get_gpu_ids()
    }
}

#[ray::actor(num_cpus = 1)]
#[derive(Default)]
pub struct Holder;

#[ray::actor]
impl Holder {
    pub fn ping(&self) -> u8 {
        1
    }
}

#[ray::remote(num_gpus = 1)]
fn gpu_task() -> Vec<usize> {
    ray::get_gpu_ids()
}

async fn bounded<T: Clone>(r: ObjectRef<T>) -> ray::Result<T> {
    tokio::time::timeout(BOUND, r)
        .await
        .expect("a bounded wait")
}

/// On a 1-CPU node, the methods of many default actors never overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn default_actors_methods_never_overlap_on_one_cpu() {
    let _ray = ray::init(Config::default().num_cpus(1)).unwrap();
    let overlap = Arc::new(Overlap::default());
    let actors: Vec<_> = (0..4)
        .map(|_| Plain::remote(overlap.clone()).unwrap())
        .collect();
    let refs: Vec<_> = actors.iter().flat_map(|a| [a.work(5), a.work(5)]).collect();
    for r in refs {
        bounded(r).await.unwrap();
    }
    assert_eq!(overlap.max.load(Ordering::SeqCst), 1);
    // A default actor holds no CPU while idle.
    assert_eq!(ray::available_resources()["CPU"], 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_more_cpus_default_actors_run_in_parallel() {
    let _ray = ray::init(Config::default().num_cpus(4)).unwrap();
    let overlap = Arc::new(Overlap::default());
    let actors: Vec<_> = (0..4)
        .map(|_| Plain::remote(overlap.clone()).unwrap())
        .collect();
    let refs: Vec<_> = actors.iter().map(|a| a.work(100)).collect();
    for r in refs {
        bounded(r).await.unwrap();
    }
    assert!(overlap.max.load(Ordering::SeqCst) > 1);
}

/// An actor declared with resources holds them for life; its methods need nothing more.
#[tokio::test]
async fn lifetime_resources_are_held_until_the_actor_stops() {
    let _ray = ray::init(Config::default().num_cpus(2).resource("disk", 2)).unwrap();
    assert_eq!(ray::cluster_resources()["CPU"], 2.0);
    let h = Holder::remote().unwrap();
    bounded(h.ping()).await.unwrap();
    assert_eq!(ray::available_resources()["CPU"], 1.0);
    let d = Holder::options()
        .num_cpus(0)
        .resource("disk", 2)
        .remote()
        .unwrap();
    bounded(d.ping()).await.unwrap();
    // Like Ray, a resource fully in use disappears from the available map.
    assert_eq!(ray::available_resources().get("disk"), None);
    assert_eq!(ray::cluster_resources()["disk"], 2.0);
    ray::kill(&h, true);
    drop(d);
    tokio::time::timeout(BOUND, async {
        while ray::available_resources()["CPU"] != 2.0
            || ray::available_resources().get("disk") != Some(&2.0)
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("resources come back when the actors stop");
}

/// Creating more actors than resources: the extra one waits, its calls queue,
/// and it is placed when another stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creation_waits_for_resources_first_come_first_served() {
    let _ray = ray::init(Config::default().num_gpus(2)).unwrap();
    let a = GpuWorker::remote().unwrap();
    let b = GpuWorker::remote().unwrap();
    let c = GpuWorker::remote().unwrap(); // pending: no GPU left
    let d = GpuWorker::remote().unwrap(); // pending behind c
    let (ga, gb) = (
        bounded(a.gpus()).await.unwrap(),
        bounded(b.gpus()).await.unwrap(),
    );
    assert_eq!(ga.len(), 1);
    assert_eq!(gb.len(), 1);
    assert_ne!(ga, gb, "no two live actors share a GPU ID");
    let c_call = c.gpus();
    let d_call = d.gpus();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!c_call.is_ready(), "c waits for a GPU");
    ray::kill(&a, true);
    let gc = bounded(c_call).await.unwrap();
    assert_eq!(gc, ga, "c got a's freed GPU");
    assert!(!d_call.is_ready(), "d still waits");
    drop(b);
    assert_eq!(bounded(d_call).await.unwrap(), gb);
    // GPU IDs are stable for an actor's life.
    assert_eq!(bounded(c.gpus()).await.unwrap(), gc);
}

#[tokio::test]
async fn multi_gpu_packing_and_remote_functions() {
    // Each GPU actor also holds 1 CPU (the default once resources are given).
    let _ray = ray::init(Config::default().num_cpus(4).num_gpus(4)).unwrap();
    let two = GpuWorker::options().num_gpus(2).remote().unwrap();
    let g2 = bounded(two.gpus()).await.unwrap();
    assert_eq!(g2.len(), 2);
    let one = GpuWorker::remote().unwrap();
    let g1 = bounded(one.gpus()).await.unwrap();
    assert!(!g2.contains(&g1[0]));
    // A remote function holds its GPU while it runs.
    let gt = bounded(gpu_task::remote()).await.unwrap();
    assert_eq!(gt.len(), 1);
    assert!(!g2.contains(&gt[0]) && gt != g1);
    assert_eq!(
        ray::get_gpu_ids(),
        Vec::<usize>::new(),
        "the driver holds none"
    );
}

#[tokio::test]
async fn impossible_and_invalid_requests_are_clear_errors() {
    let _ray = ray::init(Config::default().num_cpus(2).num_gpus(1)).unwrap();
    let e = GpuWorker::options().num_gpus(2).remote().unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument(m) if m.contains("GPU")),
        "{e}"
    );
    let e = Holder::options().resource("tpu", 1).remote().unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument(m) if m.contains("tpu")),
        "{e}"
    );
    let e = Holder::options().num_cpus(1.5).remote().unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument(m) if m.contains("whole")),
        "{e}"
    );
    let e = Holder::options().resource("CPU", 1).remote().unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)));
    let e = bounded(gpu_task::options().num_gpus(3).remote())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)));
    let e = ray::init(Config::default().resource("GPU", 1)).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)));
    let e = ray::init(Config::default().num_cpus(0)).and_then(|_ray| Holder::remote().map(|_| ()));
    assert!(
        e.is_err(),
        "an actor needing a CPU on a node with none is refused"
    );
}

/// A default actor that forwards to another default actor and awaits it.
#[ray::actor]
pub struct Relay {
    next: Option<RelayHandle>,
    delay_us: u64,
}

#[ray::actor]
impl Relay {
    pub fn new(next: Option<RelayHandle>, delay_us: u64) -> Self {
        Relay { next, delay_us }
    }

    /// Sleeps (holding the CPU), then awaits the next relay (not holding it).
    pub async fn hop(&self, x: u64) -> u64 {
        tokio::time::sleep(Duration::from_micros(self.delay_us)).await;
        match &self.next {
            Some(next) => next.hop(x).await.unwrap() + 1,
            None => x,
        }
    }
}

#[remote]
async fn through(relay: RelayHandle, x: u64) -> u64 {
    relay.hop(x).await.unwrap()
}

/// The deadlock Ray avoids by releasing a worker's CPU in `ray.get`: on a
/// 1-CPU node, async methods of default actors that await other default
/// actors give their CPU back while they wait, so every chain completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awaiting_another_default_actor_gives_the_cpu_back() {
    let _ray = ray::init(Config::default().num_cpus(1)).unwrap();
    let server = Relay::remote(None, 0).unwrap();
    let clients: Vec<_> = (0..4)
        .map(|_| Relay::remote(Some(server.clone()), 0).unwrap())
        .collect();
    let refs: Vec<_> = clients.iter().map(|c| c.hop(7)).collect();
    for r in refs {
        assert_eq!(bounded(r).await.unwrap(), 8);
    }
    // An async remote function (1 CPU) awaiting a default actor, too.
    let refs: Vec<_> = (0..4).map(|i| through::remote(server.clone(), i)).collect();
    for (i, r) in refs.into_iter().enumerate() {
        assert_eq!(bounded(r).await.unwrap(), i as u64);
    }
    assert_eq!(ray::available_resources()["CPU"], 1.0);
}

/// Chains of default actors three deep, many concurrent calls, random
/// delays, on 1 and 2 CPUs: every call completes, the CPU count comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chains_of_default_actors_never_deadlock() {
    use rand::{Rng, SeedableRng};
    for seed in 0..6u64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let cpus = 1 + seed % 2;
        let _ray = ray::init(Config::default().num_cpus(cpus as f64)).unwrap();
        let tail = Relay::remote(None, rng.random_range(0..300)).unwrap();
        let mids: Vec<_> = (0..3)
            .map(|_| Relay::remote(Some(tail.clone()), rng.random_range(0..300)).unwrap())
            .collect();
        let heads: Vec<_> = (0..6)
            .map(|i| {
                let next = mids[i % mids.len()].clone();
                Relay::remote(Some(next), rng.random_range(0..300)).unwrap()
            })
            .collect();
        let mut refs = Vec::new();
        for i in 0..60u64 {
            refs.push((i, heads[rng.random_range(0..heads.len())].hop(i)));
            if rng.random_bool(0.2) {
                tokio::time::sleep(Duration::from_micros(rng.random_range(0..200))).await;
            }
        }
        for (i, r) in refs {
            assert_eq!(bounded(r).await.unwrap(), i + 2, "seed {seed}");
        }
        assert_eq!(
            ray::available_resources()["CPU"],
            cpus as f64,
            "seed {seed}"
        );
    }
}

/// Keeps the thread busy for about `us` microseconds (a CPU-bound method).
fn busy_for(us: u64) {
    let until = std::time::Instant::now() + Duration::from_micros(us);
    while std::time::Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// Waits (bounded) until the node has all its `cpus` free again.
async fn all_cpus_back(cpus: f64, seed: u64) {
    let deadline = std::time::Instant::now() + BOUND;
    while ray::available_resources()["CPU"] != cpus {
        assert!(
            std::time::Instant::now() < deadline,
            "seed {seed}: a CPU was not given back"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A default actor with synchronous methods (the fast path, which keeps its
/// CPU across back-to-back calls while its mailbox is not empty).
#[ray::actor]
pub struct Spinner {
    overlap: Arc<Overlap>,
    done: u64,
}

#[ray::actor]
impl Spinner {
    pub fn new(overlap: Arc<Overlap>) -> Self {
        Spinner { overlap, done: 0 }
    }

    /// Busy for about `us` microseconds; returns how many calls it finished.
    pub fn spin(&mut self, us: u64) -> u64 {
        let n = self.overlap.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.overlap.max.fetch_max(n, Ordering::SeqCst);
        busy_for(us);
        self.overlap.now.fetch_sub(1, Ordering::SeqCst);
        self.done += 1;
        self.done
    }

    /// Adds a value that may come from another actor (an argument ref).
    pub fn add(&mut self, x: u64) -> u64 {
        self.done += x;
        self.done
    }

    pub async fn later(&mut self, us: u64) -> u64 {
        tokio::time::sleep(Duration::from_micros(us)).await;
        self.done += 1;
        self.done
    }
}

/// Sync methods on 1 and 2 CPUs, pipelined so mailboxes stay full, mixed
/// with async methods and ref arguments (the paths that must give a kept CPU
/// back first), random sizes and delays: never more runs at once than CPUs,
/// every call completes, and the CPUs all come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn back_to_back_sync_calls_respect_the_cpu_count() {
    use rand::{Rng, SeedableRng};
    for seed in 0..8u64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let cpus = 1 + seed % 2;
        let _ray = ray::init(Config::default().num_cpus(cpus as f64)).unwrap();
        let overlap = Arc::new(Overlap::default());
        let actors: Vec<_> = (0..3)
            .map(|_| Spinner::remote(overlap.clone()).unwrap())
            .collect();
        let mut last = Vec::new();
        for (i, a) in actors.iter().enumerate() {
            let mut r = None;
            for _ in 0..rng.random_range(20..200) {
                r = Some(match rng.random_range(0..10) {
                    0 => a.later(rng.random_range(0..100)),
                    1 => {
                        // An argument produced by another actor.
                        let other = &actors[(i + 1) % actors.len()];
                        a.add(other.spin(rng.random_range(0..20)))
                    }
                    _ => a.spin(rng.random_range(0..20)),
                });
            }
            last.push(r.unwrap());
            if rng.random_bool(0.5) {
                tokio::time::sleep(Duration::from_micros(rng.random_range(0..300))).await;
            }
        }
        for r in last {
            bounded(r).await.unwrap();
        }
        assert!(
            overlap.max.load(Ordering::SeqCst) <= cpus as usize,
            "seed {seed}: {} runs at once on {cpus} CPU",
            overlap.max.load(Ordering::SeqCst)
        );
        // Every actor is idle now: no CPU stays kept.
        all_cpus_back(cpus as f64, seed).await;
    }
}

/// An actor with a long queue of synchronous calls does not keep the only
/// CPU from another actor that asks for it: the other's call runs long
/// before the queue is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_busy_actor_hands_its_cpu_to_one_waiting() {
    let _ray = ray::init(Config::default().num_cpus(1)).unwrap();
    let overlap = Arc::new(Overlap::default());
    let busy = Spinner::remote(overlap.clone()).unwrap();
    let other = Spinner::remote(overlap.clone()).unwrap();
    let queue: Vec<_> = (0..2000).map(|_| busy.spin(50)).collect();
    // Wait until the busy actor is well into its queue.
    bounded(queue[10].clone()).await.unwrap();
    let theirs = bounded(other.spin(0)).await.unwrap();
    assert_eq!(theirs, 1);
    // About 100 ms of work is left in the busy actor's queue.
    let done_then = busy.spin(0);
    assert!(
        !queue.last().unwrap().is_ready(),
        "the other actor waited for the whole queue"
    );
    for r in queue {
        bounded(r).await.unwrap();
    }
    assert_eq!(bounded(done_then).await.unwrap(), 2001);
    assert_eq!(overlap.max.load(Ordering::SeqCst), 1);
    assert_eq!(ray::available_resources()["CPU"], 1.0);
}

/// A default actor that can be rebuilt (the replay log on).
#[ray::actor(max_reconstructions = 2)]
#[derive(Default)]
pub struct Phoenix {
    done: u64,
}

#[ray::actor]
impl Phoenix {
    pub fn step(&mut self, us: u64) -> u64 {
        busy_for(us);
        self.done += 1;
        self.done
    }
}

/// Kills (with and without restart) land while default actors stream
/// back-to-back calls on one CPU: nothing hangs, the other actor finishes,
/// and the CPU comes back whether the killed actor was rebuilt or died.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kills_during_back_to_back_calls_give_the_cpu_back() {
    use rand::{Rng, SeedableRng};
    for seed in 0..6u64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let _ray = ray::init(Config::default().num_cpus(1)).unwrap();
        let victim = Phoenix::remote().unwrap();
        let bystander = Phoenix::remote().unwrap();
        // The victim streams alone (so it keeps its CPU between calls)
        // when the kill lands; the bystander asks for the CPU afterwards.
        let theirs: Vec<_> = (0..300)
            .map(|_| victim.step(rng.random_range(0..30)))
            .collect();
        bounded(theirs[rng.random_range(0..20)].clone())
            .await
            .unwrap();
        let restart = seed % 2 == 0;
        ray::kill(&victim, !restart);
        let ours: Vec<_> = (0..300)
            .map(|_| bystander.step(rng.random_range(0..30)))
            .collect();
        for (i, r) in ours.into_iter().enumerate() {
            assert_eq!(bounded(r).await.unwrap(), i as u64 + 1, "seed {seed}");
        }
        for r in theirs {
            // Rebuilt: every call completes (replayed or retried); killed
            // for good: the rest fail. Never a hang.
            let got = bounded(r).await;
            if restart {
                got.unwrap();
            }
        }
        all_cpus_back(1.0, seed).await;
    }
}
