//! The runtime: init inside and outside tokio, several runtimes at once,
//! shutdown, actor lifetime, kill.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ray::prelude::*;

#[ray::actor]
pub struct Cell {
    value: u64,
    drops: Arc<AtomicUsize>,
}

impl Drop for Cell {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

#[ray::actor]
impl Cell {
    pub fn new(drops: Arc<AtomicUsize>) -> Self {
        Cell { value: 0, drops }
    }

    pub fn set(&mut self, v: u64) -> u64 {
        std::mem::replace(&mut self.value, v)
    }

    pub async fn set_slowly(&mut self, v: u64, ms: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        std::mem::replace(&mut self.value, v)
    }

    pub fn get(&self) -> u64 {
        self.value
    }

    /// Creates another actor from inside a method: the runtime follows the call.
    pub fn spawn_child(&self) -> Result<u64, ray::Error> {
        let child = Cell::remote(self.drops.clone())?;
        child.set(41);
        Ok(child.set(42).get_blocking_in_place())
    }
}

trait BlockingInPlace<T> {
    fn get_blocking_in_place(self) -> T;
}

impl<T: Clone + Send + 'static> BlockingInPlace<T> for ObjectRef<T> {
    fn get_blocking_in_place(self) -> T {
        tokio::task::block_in_place(|| self.get_blocking().unwrap())
    }
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting until {what}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_actor_stops_after_its_last_handle_drops_and_queued_calls_finish() {
    let _ray = ray::init(Config::default()).unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let c = Cell::remote(drops.clone()).unwrap();
    let fork = c.clone();
    let r = c.set_slowly(5, 30);
    drop(c);
    // A fork keeps the actor alive (Ray killed it with the original handle).
    assert_eq!(fork.get().await.unwrap(), 5);
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    let queued = fork.set_slowly(6, 30);
    drop(fork);
    // The queued call still runs, then the actor stops and drops its state.
    assert_eq!(queued.await.unwrap(), 5);
    assert_eq!(r.await.unwrap(), 0);
    eventually("the state is dropped", || drops.load(Ordering::SeqCst) == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_stops_the_actor_and_queued_calls_fail_with_the_reason() {
    let _ray = ray::init(Config::default()).unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let c = Cell::remote(drops.clone()).unwrap();
    let running = c.set_slowly(1, 100);
    let queued: Vec<_> = (0..10).map(|i| c.set(i)).collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    ray::kill(&c, true);
    // The call in progress finishes; the queued ones fail.
    assert_eq!(running.await.unwrap(), 0);
    for q in queued {
        match q.await.unwrap_err() {
            Error::ActorDied {
                cause, actor_id, ..
            } => {
                assert!(cause.contains("ray::kill"), "{cause}");
                assert_eq!(actor_id, c.actor_id());
            }
            other => panic!("expected ActorDied, got {other:?}"),
        }
    }
    assert!(matches!(c.get().await, Err(Error::ActorDied { .. })));
    eventually("the killed actor's state is dropped", || {
        drops.load(Ordering::SeqCst) == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_every_actor_and_runs_their_drop() {
    let ray = ray::init(Config::default()).unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let cells: Vec<_> = (0..5)
        .map(|_| Cell::remote(drops.clone()).unwrap())
        .collect();
    for c in &cells {
        c.set(1).await.unwrap();
    }
    ray.shutdown().await;
    assert_eq!(drops.load(Ordering::SeqCst), 5);
    // Handles outlive the runtime: their calls fail, never hang.
    for c in &cells {
        let e = tokio::time::timeout(Duration::from_secs(5), c.get())
            .await
            .expect("a call after shutdown does not hang")
            .unwrap_err();
        assert!(matches!(e, Error::ActorDied { .. }), "{e:?}");
    }
    assert_eq!(
        Cell::remote(drops.clone()).unwrap_err(),
        Error::NotInitialized
    );
}

#[test]
fn runtimes_in_parallel_threads_do_not_see_each_other() {
    let threads: Vec<_> = (0..4u64)
        .map(|i| {
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let ray = ray::init(Config::default()).unwrap();
                    let drops = Arc::new(AtomicUsize::new(0));
                    let c = Cell::remote(drops.clone()).unwrap();
                    for v in 0..100 {
                        c.set(v * 10 + i);
                    }
                    assert_eq!(c.get().await.unwrap(), 990 + i);
                    // Spawned tasks of this tokio runtime see this ray runtime.
                    let d = drops.clone();
                    let other = tokio::spawn(async move { Cell::remote(d).map(|c| c.actor_id()) })
                        .await
                        .unwrap()
                        .unwrap();
                    assert_ne!(other, c.actor_id());
                    ray.shutdown().await;
                    assert_eq!(drops.load(Ordering::SeqCst), 2);
                });
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn init_outside_tokio_starts_its_own_runtime() {
    std::thread::spawn(|| {
        let ray = ray::init(Config::default().worker_threads(2)).unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        let c = Cell::remote(drops.clone()).unwrap();
        c.set(3);
        assert_eq!(c.get().get_blocking().unwrap(), 3);
        // Methods that create actors see the runtime too.
        assert_eq!(c.spawn_child().get_blocking().unwrap(), 41);
        // Another thread makes it current with enter().
        std::thread::scope(|s| {
            s.spawn(|| {
                assert!(matches!(
                    Cell::remote(drops.clone()),
                    Err(Error::NotInitialized)
                ));
                let _g = ray.enter();
                let c2 = Cell::remote(drops.clone()).unwrap();
                assert_eq!(c2.set(9).get_blocking().unwrap(), 0);
            });
        });
        drop(c);
        drop(ray);
    })
    .join()
    .unwrap();
}

#[tokio::test]
async fn handles_display_class_and_actor_id() {
    let _ray = ray::init(Config::default()).unwrap();
    let c = Cell::remote(Arc::new(AtomicUsize::new(0))).unwrap();
    let shown = c.to_string();
    assert_eq!(shown, format!("Actor(Cell, {})", c.actor_id().hex()));
    assert_eq!(format!("{c:?}"), shown);
    assert_eq!(c.actor_id().hex().len(), 40);
}

#[ray::actor]
#[derive(Default)]
pub struct Splitter;

#[ray::actor]
impl Splitter {
    pub fn one(&self, x: u64) -> u64 {
        x
    }

    #[method(num_returns = 2)]
    pub fn two(&self, x: u64) -> (u64, u64) {
        (x, x + 1)
    }
}

/// Calls still in a mailbox when their tokio runtime is dropped (and the
/// actor task with it) fail with `ObjectLost`: single results (kept inside
/// the call), multiple results, and a call waiting on another's result.
#[test]
fn calls_dropped_with_their_tokio_runtime_fail_as_lost() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (ray, ones, twos, chained) = rt.block_on(async {
        let ray = ray::init(Config::default()).unwrap();
        let s = Splitter::remote().unwrap();
        let ones: Vec<_> = (0..50).map(|x| s.one(x)).collect();
        let twos: Vec<_> = (0..50).map(|x| s.two(x)).collect();
        let chained = s.one(&ones[0]);
        (ray, ones, twos, chained)
    });
    // Nothing ran: the actor task was never polled.
    drop(rt);
    let lost = |r: &ObjectRef<u64>| match r.get_blocking() {
        Err(Error::ObjectLost(id)) => assert_eq!(id, r.id()),
        other => panic!("expected ObjectLost, got {other:?}"),
    };
    for r in ones.iter().chain([&chained]) {
        lost(r);
    }
    for (a, b) in &twos {
        lost(a);
        lost(b);
    }
    drop(ray);
}

/// The runtime current for a thread of the tokio runtime (not the thread that
/// called `init`) is the newest live one, also when that thread asked before
/// a newer one started, or after it stopped (the lookup keeps its last
/// answer per thread until the table changes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_of_the_tokio_runtime_finds_the_newest_live_ray_runtime() {
    // One thread with the tokio runtime entered answers every query, so its
    // last answer is there to go stale.
    let (ask, asked) = std::sync::mpsc::channel::<std::sync::mpsc::Sender<Option<f64>>>();
    let handle = tokio::runtime::Handle::current();
    let helper = std::thread::spawn(move || {
        let _entered = handle.enter();
        for reply in asked {
            reply
                .send(ray::cluster_resources().get("CPU").copied())
                .unwrap();
        }
    });
    let cpus = || {
        let (tx, rx) = std::sync::mpsc::channel();
        ask.send(tx).unwrap();
        rx.recv().unwrap()
    };
    assert_eq!(cpus(), None);
    let a = ray::init(Config::default().num_cpus(3)).unwrap();
    assert_eq!(cpus(), Some(3.0));
    assert_eq!(cpus(), Some(3.0));
    let b = ray::init(Config::default().num_cpus(5)).unwrap();
    assert_eq!(cpus(), Some(5.0), "the newer runtime, not the last answer");
    b.shutdown().await;
    assert_eq!(
        cpus(),
        Some(3.0),
        "the older one again once the newer stopped"
    );
    a.shutdown().await;
    assert_eq!(cpus(), None);
    drop(ask);
    helper.join().unwrap();
}

/// Counts its calls where another task can read them, and spins in each.
#[ray::actor]
pub struct Spinner {
    done: Arc<AtomicUsize>,
}

#[ray::actor]
impl Spinner {
    pub fn new(done: Arc<AtomicUsize>) -> Self {
        Spinner { done }
    }

    /// Busy for `us` microseconds (no await: the worker is held).
    pub fn spin(&mut self, us: u64) -> usize {
        let until = std::time::Instant::now() + Duration::from_micros(us);
        while std::time::Instant::now() < until {
            std::hint::spin_loop();
        }
        self.done.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// An actor with a backlog of calls does not keep its worker until the
/// backlog is gone: its task yields after a slice of time, so another task
/// of the same (single-threaded) runtime runs in between. Without the slice,
/// the other task would only run once all 400 calls (~8 ms) were done.
#[tokio::test(flavor = "current_thread")]
async fn an_actor_with_a_backlog_lets_other_tasks_run() {
    let _ray = ray::init(Config::default()).unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let s = Spinner::remote(done.clone()).unwrap();
    const CALLS: usize = 400;
    let refs: Vec<_> = (0..CALLS).map(|_| s.spin(20)).collect();
    // Queued behind the actor task (woken by the first call).
    let seen = tokio::spawn({
        let done = done.clone();
        async move { done.load(Ordering::SeqCst) }
    })
    .await
    .unwrap();
    assert!(
        seen > 0 && seen < CALLS,
        "another task ran when {seen} of {CALLS} calls were done (expected some, not all)"
    );
    for (i, r) in refs.into_iter().enumerate() {
        assert_eq!(r.await.unwrap(), i + 1);
    }
}

/// Reports, when its state is dropped, which task ID was current then.
#[ray::actor]
pub struct Stuck {
    started: std::sync::mpsc::Sender<ray::TaskId>,
    dropped: std::sync::mpsc::Sender<Option<ray::TaskId>>,
}

impl Drop for Stuck {
    fn drop(&mut self) {
        let _ = self.dropped.send(ray::current_task_id().ok());
    }
}

#[ray::actor]
impl Stuck {
    pub fn new(
        started: std::sync::mpsc::Sender<ray::TaskId>,
        dropped: std::sync::mpsc::Sender<Option<ray::TaskId>>,
    ) -> Self {
        Stuck { started, dropped }
    }

    /// Never returns: the call is still running when the runtime goes.
    pub async fn hang(&mut self) {
        let _ = self.started.send(ray::current_task_id().unwrap());
        std::future::pending::<()>().await;
    }
}

/// An actor whose task is dropped in the middle of an async call (its
/// runtime shut down) is dropped with no call current: the interrupted
/// call's record is put back as its future goes, so nothing reads into a
/// call that may be gone.
#[test]
fn an_actor_dropped_mid_call_sees_no_current_call() {
    let ray = ray::init(Config::default()).unwrap();
    let (started_tx, started) = std::sync::mpsc::channel();
    let (dropped_tx, dropped) = std::sync::mpsc::channel();
    let (s, call) = {
        let _entered = ray.enter();
        let s = Stuck::remote(started_tx, dropped_tx).unwrap();
        let call = s.hang();
        (s, call)
    };
    let hanging = started
        .recv_timeout(Duration::from_secs(10))
        .expect("the call started");
    drop(ray);
    let seen = dropped
        .recv_timeout(Duration::from_secs(10))
        .expect("the actor's state was dropped with its runtime");
    assert_ne!(
        seen,
        Some(hanging),
        "the actor's drop saw the interrupted call as current"
    );
    drop((s, call));
}
