//! Objects: put/get/wait, refs as arguments, failed dependencies, memory.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ray::prelude::*;

#[ray::actor]
#[derive(Default)]
pub struct Adder {
    total: i64,
    calls: u32,
}

#[ray::actor]
impl Adder {
    pub fn add(&mut self, x: i64) -> i64 {
        self.calls += 1;
        self.total += x;
        self.total
    }

    pub fn add_pair(&mut self, a: i64, b: i64) -> i64 {
        self.calls += 1;
        self.total += a + b;
        self.total
    }

    pub fn calls(&self) -> u32 {
        self.calls
    }

    pub async fn slow(&self, ms: u64, v: i64) -> i64 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        v
    }

    pub fn fail(&self) -> Result<i64, String> {
        Err("upstream failed".into())
    }

    pub fn echo(&self, t: Tracked) -> Tracked {
        t
    }

    pub fn echo_counted(&self, c: Counted) -> Counted {
        c
    }

    pub fn fail_counted(&self) -> Result<Counted, String> {
        Err("no value".into())
    }
}

/// A payload that counts how often it is copied.
#[derive(Debug)]
pub struct Counted(Arc<AtomicI64>, Vec<u8>);

impl Counted {
    fn new(clones: &Arc<AtomicI64>, v: u8) -> Self {
        Counted(clones.clone(), vec![v; 3])
    }
}

impl Clone for Counted {
    fn clone(&self) -> Self {
        self.0.fetch_add(1, Ordering::SeqCst);
        Counted(self.0.clone(), self.1.clone())
    }
}

/// A payload that counts live copies, to prove objects are freed.
#[derive(Debug)]
pub struct Tracked(Arc<AtomicI64>, #[allow(dead_code)] Vec<u8>);

impl Tracked {
    fn new(live: &Arc<AtomicI64>) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Tracked(live.clone(), vec![0; 64])
    }
}

impl Clone for Tracked {
    fn clone(&self) -> Self {
        Tracked::new(&self.0)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An object's ID is drawn on first use: readers racing for it on many
/// threads all get the same one, and it stays.
#[test]
fn racing_readers_of_an_id_agree() {
    for _ in 0..200 {
        let r = ray::put(7u64);
        let ids: Vec<ray::ObjectId> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    let r = r.clone();
                    s.spawn(move || r.id())
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
        assert_eq!(r.id(), ids[0]);
    }
}

#[tokio::test]
async fn put_get_and_refs_read_many_times() {
    let _ray = ray::init(Config::default()).unwrap();
    let r = ray::put(String::from("hello"));
    assert!(r.is_ready());
    assert_eq!(ray::get(&r).await.unwrap(), "hello");
    assert_eq!(r.get().await.unwrap(), "hello");
    assert_eq!((&r).await.unwrap(), "hello");
    let r2 = r.clone();
    assert_eq!(r2.id(), r.id());
    assert_eq!(r2.await.unwrap(), "hello");
    assert_ne!(ray::put(1).id(), ray::put(1).id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refs_as_arguments_are_resolved_before_the_call_runs() {
    let _ray = ray::init(Config::default()).unwrap();
    let a = Adder::remote().unwrap();
    let b = Adder::remote().unwrap();
    // A ref produced by a slow call on another actor, passed without waiting.
    let slow = b.slow(50, 5);
    assert!(!slow.is_ready());
    let r = a.add(&slow);
    let r2 = a.add_pair(ray::put(1), slow.clone());
    assert_eq!(r.await.unwrap(), 5);
    assert_eq!(r2.await.unwrap(), 11);
    // Pipelines: refs flowing actor to actor.
    let mut x = a.add(0);
    for _ in 0..10 {
        x = b.slow(1, 0);
        x = a.add(x);
    }
    assert_eq!(x.await.unwrap(), 11);
}

#[tokio::test]
async fn a_failed_dependency_fails_the_call_without_running_it() {
    let _ray = ray::init(Config::default()).unwrap();
    let a = Adder::remote().unwrap();
    let bad = a.fail();
    let r = a.add(&bad);
    match r.await.unwrap_err() {
        Error::Task {
            method, message, ..
        } => {
            assert_eq!(method, "fail", "the dependency's error is passed on");
            assert_eq!(message, "upstream failed");
        }
        other => panic!("expected the dependency's Error::Task, got {other:?}"),
    }
    assert_eq!(a.calls().await.unwrap(), 0, "add never ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_keeps_input_order_and_honours_num_returns_and_timeout() {
    // Four default actors whose methods overlap: each method run needs 1 CPU.
    let _ray = ray::init(Config::default().num_cpus(4)).unwrap();
    let actors: Vec<_> = (0..4).map(|_| Adder::remote().unwrap()).collect();
    let refs = vec![
        actors[0].slow(400, 0),
        actors[1].slow(0, 1),
        actors[2].slow(400, 2),
        actors[3].slow(0, 3),
    ];
    let (ready, not_ready) = ray::wait(&refs, 2, None).await;
    let ids = |v: &[ObjectRef<i64>]| v.iter().map(|r| r.id()).collect::<Vec<_>>();
    assert_eq!(ids(&ready), vec![refs[1].id(), refs[3].id()]);
    assert_eq!(ids(&not_ready), vec![refs[0].id(), refs[2].id()]);

    let (ready, not_ready) = ray::wait(&refs, 4, Some(Duration::from_millis(10))).await;
    assert_eq!(ready.len(), 2, "timeout returns what is ready");
    assert_eq!(not_ready.len(), 2);

    // num_returns smaller than the number ready: the first ones in input order.
    let (ready, _) = ray::wait(&refs, 4, None).await;
    assert_eq!(ids(&ready), ids(&refs));
    let (ready, not_ready) = ray::wait(&refs, 1, None).await;
    assert_eq!(ids(&ready), vec![refs[0].id()]);
    assert_eq!(not_ready.len(), 3);
}

#[tokio::test]
#[should_panic(expected = "cannot be greater than the number of refs")]
async fn wait_for_more_than_given_panics_with_a_clear_message() {
    let refs = vec![ray::put(1)];
    let _ = ray::wait(&refs, 2, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_are_freed_when_the_last_ref_drops() {
    let _ray = ray::init(Config::default()).unwrap();
    let live = Arc::new(AtomicI64::new(0));
    let a = Adder::remote().unwrap();
    let mut refs = Vec::new();
    for _ in 0..10_000 {
        refs.push(a.echo(Tracked::new(&live)));
    }
    for r in &refs[..10] {
        r.get().await.unwrap();
    }
    refs.last().unwrap().get().await.unwrap();
    assert!(live.load(Ordering::SeqCst) >= 10_000);
    drop(refs);
    all_freed(&live, "every result was freed with its refs").await;

    // A ref passed as an argument is kept alive by the pending call only.
    let arg = ray::put(Tracked::new(&live));
    let out = a.echo(&arg);
    drop(arg);
    out.get().await.unwrap();
    drop(out);
    all_freed(&live, "the argument and the result were freed").await;
}

#[ray::actor(max_reconstructions = 2)]
#[derive(Default)]
pub struct Keeper {
    n: usize,
}

#[ray::actor]
impl Keeper {
    pub fn keep(&mut self, _t: Tracked) -> usize {
        self.n += 1;
        self.n
    }

    pub fn boom(&mut self) -> usize {
        panic!("boom after {}", self.n)
    }
}

/// With `max_reconstructions > 0` a call's arguments are kept (copied for
/// the run), moved into the replay log, copied again by a replay, or
/// dropped with calls that never ran: every copy is freed, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arguments_kept_for_replay_are_freed_exactly_once() {
    let _ray = ray::init(Config::default()).unwrap();
    let live = Arc::new(AtomicI64::new(0));
    {
        let k = Keeper::remote().unwrap();
        for i in 1..=20 {
            assert_eq!(k.keep(Tracked::new(&live)).await.unwrap(), i);
        }
        assert_eq!(
            live.load(Ordering::SeqCst),
            20,
            "the replay log keeps each argument"
        );
        k.boom().await.unwrap_err();
        // Rebuilt by replaying the 20 calls: the count goes on.
        assert_eq!(k.keep(Tracked::new(&live)).await.unwrap(), 21);
        assert_eq!(
            live.load(Ordering::SeqCst),
            21,
            "the replay copied, then freed"
        );
        // Calls that never run: queued when the actor is killed for good.
        let pending: Vec<_> = (0..50).map(|_| k.keep(Tracked::new(&live))).collect();
        ray::kill(&k, true);
        for r in pending {
            let _ = r.await;
        }
    }
    all_freed(&live, "every kept, replayed or unrun argument was freed").await;
}

/// Waits (briefly) until no `Tracked` is alive. A result can be read a moment
/// before the actor lets go of its call (which holds the result's slot), so
/// "freed" may come a few instructions after the last ref drops.
async fn all_freed(live: &AtomicI64, what: &str) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while live.load(Ordering::SeqCst) != 0 {
        assert!(
            std::time::Instant::now() < until,
            "{what}: {} still alive",
            live.load(Ordering::SeqCst)
        );
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_ref_moves_its_value_out_and_shared_refs_copy() {
    let _ray = ray::init(Config::default()).unwrap();
    let clones = Arc::new(AtomicI64::new(0));
    let copies = || clones.load(Ordering::SeqCst);
    let a = Adder::remote().unwrap();
    for i in 0..50u8 {
        let r = a.echo_counted(Counted::new(&clones, i));
        // Once a later call has answered, the actor has let go of `r`'s
        // call, so `r` is the value's only holder.
        a.calls().await.unwrap();
        let v = r.await.unwrap();
        assert_eq!(v.1, vec![i; 3]);
    }
    assert_eq!(copies(), 0, "the only ref to a result moves it out");

    // Two refs: the first read copies, the last one moves.
    let r = a.echo_counted(Counted::new(&clones, 7));
    let r2 = r.clone();
    a.calls().await.unwrap();
    assert_eq!(r.get().await.unwrap().1, vec![7; 3]);
    assert_eq!(copies(), 1);
    assert_eq!(r.await.unwrap().1, vec![7; 3]);
    assert_eq!(copies(), 2, "r2 is still alive, so r's read copied");
    assert_eq!(r2.await.unwrap().1, vec![7; 3]);
    assert_eq!(copies(), 2, "the last ref moved");

    // `put` objects too, and errors reach the last ref unchanged.
    assert_eq!(
        ray::put(Counted::new(&clones, 9)).await.unwrap().1,
        vec![9; 3]
    );
    assert_eq!(copies(), 2);
    let failed = a.fail_counted();
    a.calls().await.unwrap();
    let err = failed.await.unwrap_err();
    assert!(err.to_string().contains("no value"), "{err}");

    // Still pending when first polled: the reader waits, then gets the value.
    let pending = a.slow(50, 1);
    let r = a.echo_counted(Counted::new(&clones, 3));
    assert_eq!(r.await.unwrap().1, vec![3; 3]);
    pending.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owned_and_shared_reads_race_without_losing_values() {
    let _ray = ray::init(Config::default()).unwrap();
    let clones = Arc::new(AtomicI64::new(0));
    let a = Adder::remote().unwrap();
    // A fixed-seed LCG picks how many readers share each result and how
    // long each waits before reading, so reads land before, during and
    // after the actor lets go of the call.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    for round in 0..300u32 {
        let v = (round % 251) as u8;
        let r = a.echo_counted(Counted::new(&clones, v));
        let mut readers = Vec::new();
        for _ in 0..next(4) {
            let (r, delay, owned) = (r.clone(), next(3), next(2) == 0);
            readers.push(tokio::spawn(async move {
                for _ in 0..delay {
                    tokio::task::yield_now().await;
                }
                if owned {
                    r.await.unwrap().1
                } else {
                    r.get().await.unwrap().1
                }
            }));
        }
        if next(2) == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(r.await.unwrap().1, vec![v; 3]);
        for t in readers {
            assert_eq!(t.await.unwrap(), vec![v; 3]);
        }
    }
}
