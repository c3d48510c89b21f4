//! Reconstruction (SEMANTICS §8): restore + replay after a crash,
//! `max_reconstructions`, Ray's own tests in spirit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ray::prelude::*;
use ray::ErrorKind;

#[ray::actor(max_reconstructions = 3)]
pub struct Counter {
    value: i64,
    /// Side effects outside the actor: replay repeats them.
    effects: Arc<AtomicU64>,
}

#[ray::actor]
impl Counter {
    pub fn new(effects: Arc<AtomicU64>) -> Self {
        Counter { value: 0, effects }
    }

    pub fn incr(&mut self) -> i64 {
        self.effects.fetch_add(1, Ordering::SeqCst);
        self.value += 1;
        self.value
    }

    pub async fn slow_incr(&mut self, ms: u64) -> i64 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.value += 1;
        self.value
    }

    pub fn crash(&mut self) -> i64 {
        self.value += 1000;
        panic!("crash requested")
    }

    pub fn value(&self) -> i64 {
        self.value
    }
}

fn effects() -> Arc<AtomicU64> {
    Arc::new(AtomicU64::new(0))
}

/// Ray's test_actor_reconstruction: crash mid-call, then result 4 and next 5.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_in_flight_when_killed_is_retried_after_replay() {
    let _ray = ray::init(Config::default()).unwrap();
    let c = Counter::remote(effects()).unwrap();
    for i in 1..=3 {
        assert_eq!(c.incr().await.unwrap(), i);
    }
    let in_flight = c.slow_incr(300);
    tokio::time::sleep(Duration::from_millis(50)).await;
    ray::kill(&c, false);
    assert_eq!(in_flight.await.unwrap(), 4);
    assert_eq!(c.incr().await.unwrap(), 5);
    assert!(ray::error_info()
        .iter()
        .any(|e| e.kind == ErrorKind::ActorDied && e.message.contains("reconstructing")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_fails_only_its_call_and_queued_callers_see_no_error() {
    let _ray = ray::init(Config::default()).unwrap();
    let fx = effects();
    let c = Counter::remote(fx.clone()).unwrap();
    let before: Vec<_> = (0..50).map(|_| c.incr()).collect();
    let boom = c.clone().crash();
    let after: Vec<_> = (0..50).map(|_| c.incr()).collect();
    for (i, r) in before.into_iter().enumerate() {
        assert_eq!(r.await.unwrap(), i as i64 + 1);
    }
    let e = boom.await.unwrap_err();
    assert!(
        matches!(&e, Error::Task { message, .. } if message.contains("crash requested")),
        "{e:?}"
    );
    for (i, r) in after.into_iter().enumerate() {
        assert_eq!(
            r.await.unwrap(),
            51 + i as i64,
            "queued calls see the replayed state"
        );
    }
    // The panicking call's +1000 is gone (not replayed); side effects of the
    // 50 calls before the crash were repeated once by the replay.
    assert_eq!(c.value().await.unwrap(), 100);
    assert_eq!(fx.load(Ordering::SeqCst), 150);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_reconstructions_allows_exactly_k_restarts() {
    let _ray = ray::init(Config::default()).unwrap();
    let c = Counter::options()
        .max_reconstructions(2)
        .remote(effects())
        .unwrap();
    c.incr();
    for _ in 0..2 {
        assert!(matches!(c.crash().await, Err(Error::Task { .. })));
        assert_eq!(c.value().await.unwrap(), 1, "rebuilt by replay");
    }
    // The third death is final.
    assert!(matches!(c.crash().await, Err(Error::Task { .. })));
    match c.value().await.unwrap_err() {
        Error::ActorDied { cause, .. } => assert!(cause.contains("crash requested"), "{cause}"),
        other => panic!("expected ActorDied, got {other:?}"),
    }
    // kill(false) on a dead actor changes nothing.
    ray::kill(&c, false);
    assert!(matches!(c.incr().await, Err(Error::ActorDied { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_restarts_a_kill_with_restart_is_final() {
    let _ray = ray::init(Config::default()).unwrap();
    let c = Counter::options()
        .max_reconstructions(0)
        .remote(effects())
        .unwrap();
    c.incr().await.unwrap();
    ray::kill(&c, false);
    let e = tokio::time::timeout(Duration::from_secs(5), c.incr())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&e, Error::ActorDied { cause, .. } if cause.contains("no_restart = false")),
        "{e:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_actor_killed_with_restart_comes_back() {
    let _ray = ray::init(Config::default()).unwrap();
    let c = Counter::remote(effects()).unwrap();
    c.incr();
    c.incr().await.unwrap();
    ray::kill(&c, false);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(c.incr().await.unwrap(), 3);
}

/// Checkpointable account with external storage shared with the test.
#[ray::actor(checkpointable, max_reconstructions = 5)]
pub struct Account {
    value: i64,
    store: Arc<Mutex<HashMap<CheckpointId, i64>>>,
    fail_save: bool,
    fail_load: bool,
    loads: Arc<AtomicU64>,
}

#[ray::actor]
impl Account {
    pub fn new(
        store: Arc<Mutex<HashMap<CheckpointId, i64>>>,
        fail_save: bool,
        fail_load: bool,
        loads: Arc<AtomicU64>,
    ) -> Self {
        Account {
            value: 0,
            store,
            fail_save,
            fail_load,
            loads,
        }
    }

    pub fn incr(&mut self) -> i64 {
        self.value += 1;
        self.value
    }

    pub fn crash(&mut self) -> i64 {
        panic!("account crash")
    }

    pub fn value(&self) -> i64 {
        self.value
    }
}

impl ray::Checkpointable for Account {
    fn should_checkpoint(&mut self, _ctx: &CheckpointContext) -> bool {
        self.value > 0 && self.value % 3 == 0
    }
    fn save_checkpoint(&mut self, _a: ActorId, id: CheckpointId) -> Result<(), ray::BoxError> {
        if self.fail_save {
            return Err("save failed".into());
        }
        self.store.lock().unwrap().insert(id, self.value);
        Ok(())
    }
    fn load_checkpoint(
        &mut self,
        _a: ActorId,
        available: &[Checkpoint],
    ) -> Result<Option<CheckpointId>, ray::BoxError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        if self.fail_load {
            return Err("load failed".into());
        }
        let id = available[0].checkpoint_id;
        self.value = self.store.lock().unwrap()[&id];
        Ok(Some(id))
    }
    fn checkpoint_expired(&mut self, _a: ActorId, id: CheckpointId) -> Result<(), ray::BoxError> {
        self.store.lock().unwrap().remove(&id);
        Ok(())
    }
}

/// Ray's test_checkpointing: checkpoint at 3, crash, get 3, three more, crash, get 6.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_then_crash_then_restore() {
    for (fail_save, fail_load) in [(false, false), (true, false), (false, true)] {
        let _ray = ray::init(Config::default()).unwrap();
        let loads = Arc::new(AtomicU64::new(0));
        let a = Account::remote(Arc::default(), fail_save, fail_load, loads.clone()).unwrap();
        for _ in 0..3 {
            a.incr();
        }
        assert!(a.crash().await.is_err());
        assert_eq!(
            a.value().await.unwrap(),
            3,
            "save={fail_save} load={fail_load}"
        );
        for _ in 0..3 {
            a.incr();
        }
        assert!(a.crash().await.is_err());
        assert_eq!(
            a.value().await.unwrap(),
            6,
            "save={fail_save} load={fail_load}"
        );
        if !fail_save {
            assert!(
                loads.load(Ordering::SeqCst) >= 2,
                "restored from a checkpoint"
            );
        }
        if fail_save || fail_load {
            assert!(ray::error_info()
                .iter()
                .any(|e| e.kind == ErrorKind::Checkpoint));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_log_cap_a_plain_actor_restarts_from_its_constructor() {
    let _ray = ray::init(Config::default().max_replay_log(10)).unwrap();
    let c = Counter::remote(effects()).unwrap();
    for _ in 0..20 {
        c.incr();
    }
    assert!(c.crash().await.is_err());
    assert_eq!(
        c.value().await.unwrap(),
        0,
        "state lost, by design past the cap"
    );
    let errors = ray::error_info();
    assert!(errors.iter().any(|e| e.message.contains("stops logging")));
    assert!(errors.iter().any(|e| e.message.contains("state is lost")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_log_cap_a_checkpointable_actor_is_checkpointed() {
    let _ray = ray::init(Config::default().max_replay_log(4)).unwrap();
    let store: Arc<Mutex<HashMap<CheckpointId, i64>>> = Arc::default();
    let a = Account::remote(store.clone(), false, false, Arc::default()).unwrap();
    for _ in 0..20 {
        a.incr();
    }
    assert!(a.crash().await.is_err());
    assert_eq!(
        a.value().await.unwrap(),
        20,
        "restored and replayed exactly"
    );
}

#[test]
fn reconstruction_works_in_local_mode() {
    let _ray = ray::init(Config::default().local_mode(true)).unwrap();
    let c = Counter::remote(effects()).unwrap();
    c.incr();
    c.incr();
    assert!(c.crash().get_blocking().is_err());
    assert_eq!(c.value().get_blocking().unwrap(), 2);
    ray::kill(&c, false);
    assert_eq!(c.incr().get_blocking().unwrap(), 3);
}

/// A logged call whose result is plain data is kept in the replay log as it
/// is; one whose result owns memory is copied. Either way the callers read
/// their own results (not a replay's), an owned result can still be moved
/// out by its last ref, and replay rebuilds the state from both kinds.
#[ray::actor(max_reconstructions = 2)]
pub struct Journal {
    lines: Vec<String>,
}

#[ray::actor]
impl Journal {
    pub fn new(capacity: usize) -> Self {
        Journal {
            lines: Vec::with_capacity(capacity),
        }
    }

    /// Plain result (`usize`): the call is its own log entry.
    pub fn push(&mut self, line: String) -> usize {
        self.lines.push(line);
        self.lines.len()
    }

    /// Owned result (`String`): logged as a copy.
    pub fn push_echo(&mut self, line: String) -> String {
        self.lines.push(line.clone());
        format!("{}:{line}", self.lines.len())
    }

    pub fn all(&self) -> Vec<String> {
        self.lines.clone()
    }

    pub fn crash(&mut self) -> usize {
        panic!("crash requested")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logged_calls_replay_whether_kept_whole_or_copied() {
    let _ray = ray::init(Config::default()).unwrap();
    let j = Journal::remote(64).unwrap();
    // Refs held across the crash, read only after the rebuild.
    let mut plain = Vec::new();
    let mut owned = Vec::new();
    for i in 0..20 {
        plain.push(j.push(format!("p{i}")));
        owned.push(j.push_echo(format!("o{i}")));
    }
    // A second ref to one plain result: both read it.
    let shared = plain[3].clone();
    assert!(j.crash().await.is_err());
    // Replayed: the same 40 lines, in order, then more calls count on.
    let expected: Vec<String> = (0..20)
        .flat_map(|i| [format!("p{i}"), format!("o{i}")])
        .collect();
    assert_eq!(j.all().await.unwrap(), expected);
    assert_eq!(j.push("after").await.unwrap(), 41);
    for (i, r) in plain.into_iter().enumerate() {
        assert_eq!(r.await.unwrap(), 2 * i + 1, "plain result {i}");
    }
    assert_eq!(shared.await.unwrap(), 7);
    for (i, r) in owned.into_iter().enumerate() {
        assert_eq!(
            r.await.unwrap(),
            format!("{}:o{i}", 2 * i + 2),
            "owned result {i}"
        );
    }
    // A second crash replays the log again, entries kept whole included.
    assert!(j.crash().await.is_err());
    assert_eq!(j.all().await.unwrap().len(), 41);
}
