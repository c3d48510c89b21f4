//! Checkpointing (SEMANTICS §7): Ray's checkpoint tests in spirit, through
//! the public API. Restarts here are re-creations of a named actor (same
//! actor ID); reconstruction after a crash has its own tests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ray::prelude::*;
use ray::ErrorKind;

/// Where the actor "persists" its checkpoints: shared with the test.
#[derive(Default, Debug)]
pub struct Storage {
    saved: HashMap<CheckpointId, i64>,
    expired: Vec<CheckpointId>,
    contexts: Vec<u64>,
    log: Vec<String>,
    loads: Vec<Vec<CheckpointId>>,
}

/// Behaviour switches, shared with the test.
#[derive(Default, Debug, Clone)]
pub struct Knobs {
    every: u64,
    fail_saves: u32,
    fail_load_of_newest: bool,
}

type Shared = Arc<Mutex<Storage>>;

#[ray::actor(checkpointable)]
pub struct Account {
    balance: i64,
    storage: Shared,
    knobs: Knobs,
    requested: bool,
}

#[ray::actor]
impl Account {
    pub fn new(storage: Shared, knobs: Knobs) -> Self {
        Account {
            balance: 0,
            storage,
            knobs,
            requested: false,
        }
    }

    pub fn deposit(&mut self, x: i64) -> i64 {
        self.balance += x;
        self.storage
            .lock()
            .unwrap()
            .log
            .push(format!("call {}", self.balance));
        self.balance
    }

    pub fn fail(&mut self) -> Result<i64, String> {
        Err("refused".into())
    }

    pub fn request_checkpoint(&mut self) {
        self.requested = true;
    }

    pub fn balance(&self) -> i64 {
        self.balance
    }
}

impl ray::Checkpointable for Account {
    fn should_checkpoint(&mut self, ctx: &CheckpointContext) -> bool {
        let mut s = self.storage.lock().unwrap();
        s.contexts.push(ctx.num_tasks_since_last_checkpoint);
        s.log.push(format!("hook {}", self.balance));
        let on_request = std::mem::take(&mut self.requested);
        on_request
            || (self.knobs.every > 0 && ctx.num_tasks_since_last_checkpoint >= self.knobs.every)
    }

    fn save_checkpoint(&mut self, _actor: ActorId, id: CheckpointId) -> Result<(), ray::BoxError> {
        if self.knobs.fail_saves > 0 {
            self.knobs.fail_saves -= 1;
            return Err("disk full".into());
        }
        self.storage.lock().unwrap().saved.insert(id, self.balance);
        Ok(())
    }

    fn load_checkpoint(
        &mut self,
        _actor: ActorId,
        available: &[Checkpoint],
    ) -> Result<Option<CheckpointId>, ray::BoxError> {
        let mut s = self.storage.lock().unwrap();
        s.loads
            .push(available.iter().map(|c| c.checkpoint_id).collect());
        if self.knobs.fail_load_of_newest && s.loads.len() == 1 {
            return Err("newest checkpoint is unreadable".into());
        }
        let first = &available[0];
        self.balance = s.saved[&first.checkpoint_id];
        Ok(Some(first.checkpoint_id))
    }

    fn checkpoint_expired(
        &mut self,
        _actor: ActorId,
        id: CheckpointId,
    ) -> Result<(), ray::BoxError> {
        let mut s = self.storage.lock().unwrap();
        s.saved.remove(&id);
        s.expired.push(id);
        Ok(())
    }
}

fn knobs(every: u64) -> Knobs {
    Knobs {
        every,
        ..Knobs::default()
    }
}

/// Creates the named actor again once its previous incarnation (whose
/// handles were all dropped) has finished and freed the name.
async fn recreate(name: &str, storage: &Shared, k: Knobs) -> AccountHandle {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match Account::options()
                .name(name)
                .remote(storage.clone(), k.clone())
            {
                Ok(h) => return h,
                Err(Error::InvalidArgument(_)) => {
                    tokio::time::sleep(Duration::from_millis(1)).await
                }
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await
    .expect("the previous incarnation stops once its handles are gone")
}

#[tokio::test]
async fn checkpoint_on_a_condition_with_context_counts() {
    let _ray = ray::init(Config::default()).unwrap();
    let storage = Shared::default();
    let a = Account::remote(storage.clone(), knobs(3)).unwrap();
    for i in 1..=7 {
        assert_eq!(a.deposit(1).await.unwrap(), i);
    }
    let s = storage.lock().unwrap();
    // The first call after creation sees 1; counters reset after each checkpoint.
    assert_eq!(s.contexts, vec![1, 2, 3, 1, 2, 3, 1]);
    assert_eq!(s.saved.len(), 2);
    let cps = ray::get_checkpoints_for_actor(a.actor_id()).unwrap();
    assert_eq!(cps.len(), 2);
    assert!(cps[0].timestamp >= cps[1].timestamp, "newest first");
    assert_eq!(s.saved[&cps[0].checkpoint_id], 6);
    assert_eq!(s.saved[&cps[1].checkpoint_id], 3);
}

#[tokio::test]
async fn checkpoint_on_request_and_after_failed_calls() {
    let _ray = ray::init(Config::default()).unwrap();
    let storage = Shared::default();
    let a = Account::remote(storage.clone(), knobs(0)).unwrap();
    a.deposit(5);
    assert!(a.fail().await.is_err());
    assert_eq!(
        ray::get_checkpoints_for_actor(a.actor_id()).unwrap().len(),
        0
    );
    a.request_checkpoint();
    a.deposit(1).await.unwrap();
    let cps = ray::get_checkpoints_for_actor(a.actor_id()).unwrap();
    assert_eq!(cps.len(), 1);
    let s = storage.lock().unwrap();
    assert_eq!(
        s.saved[&cps[0].checkpoint_id], 5,
        "taken right after request_checkpoint"
    );
    // The failed call counted too: deposit, fail, request, deposit.
    assert_eq!(s.contexts, vec![1, 2, 3, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_are_delivered_after_the_hooks_ran() {
    let _ray = ray::init(Config::default()).unwrap();
    let storage = Shared::default();
    let a = Account::remote(storage.clone(), knobs(1)).unwrap();
    for i in 1..=50 {
        let v = a.deposit(1).await.unwrap();
        assert_eq!(v, i);
        let s = storage.lock().unwrap();
        assert!(
            s.log.contains(&format!("hook {i}")),
            "the result of call {i} arrived before its hook ran"
        );
    }
}

#[tokio::test]
async fn a_failing_save_is_reported_not_offered_and_does_not_reset_counters() {
    let _ray = ray::init(Config::default()).unwrap();
    let storage = Shared::default();
    let k = Knobs {
        every: 2,
        fail_saves: 1,
        ..Knobs::default()
    };
    let a = Account::options()
        .name("flaky")
        .remote(storage.clone(), k)
        .unwrap();
    for _ in 0..4 {
        a.deposit(1).await.unwrap();
    }
    // Call 2 tried (and failed), call 3 tried again (succeeded), call 4: since = 1.
    assert_eq!(storage.lock().unwrap().contexts, vec![1, 2, 3, 1]);
    let errors = ray::error_info();
    let e = errors
        .iter()
        .find(|e| e.kind == ErrorKind::Checkpoint)
        .expect("the failed save is reported");
    assert_eq!(e.actor_id, Some(a.actor_id()));
    assert!(e.message.contains("disk full"), "{}", e.message);
    assert_eq!(format!("{:?}", e.kind), "Checkpoint");
    let cps = ray::get_checkpoints_for_actor(a.actor_id()).unwrap();
    assert_eq!(cps.len(), 1, "the failed one is not recorded");
    // On restart, only the saved checkpoint is offered.
    drop(a);
    let b = recreate("flaky", &storage, knobs(0)).await;
    assert_eq!(b.balance().await.unwrap(), 3);
    assert_eq!(
        storage.lock().unwrap().loads,
        vec![vec![cps[0].checkpoint_id]]
    );
}

#[tokio::test]
async fn keep_n_expires_the_oldest_exactly_once_across_restarts() {
    let _ray = ray::init(Config::default().num_actor_checkpoints_to_keep(2)).unwrap();
    let storage = Shared::default();
    let a = Account::options()
        .name("keeper")
        .remote(storage.clone(), knobs(1))
        .unwrap();
    for _ in 0..3 {
        a.deposit(1).await.unwrap();
    }
    let first_three: Vec<CheckpointId> = {
        let mut v = ray::get_checkpoints_for_actor(a.actor_id()).unwrap();
        v.reverse();
        v.iter().map(|c| c.checkpoint_id).collect()
    };
    assert_eq!(first_three.len(), 2);
    assert_eq!(storage.lock().unwrap().expired.len(), 1);
    drop(a);
    let b = recreate("keeper", &storage, knobs(1)).await;
    assert_eq!(b.balance().await.unwrap(), 3, "restored from the newest");
    for _ in 0..2 {
        b.deposit(1).await.unwrap();
    }
    let s = storage.lock().unwrap();
    // 3 + 1 (balance call) + 2 = 6 checkpoints, 2 kept, 4 expired, each once.
    let kept = ray::get_checkpoints_for_actor(b.actor_id()).unwrap();
    assert_eq!(kept.len(), 2);
    assert_eq!(s.expired.len(), 4);
    let mut unique = s.expired.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 4, "no checkpoint expired twice");
    assert!(first_three.iter().all(|id| s.expired.contains(id)));
    assert!(kept.iter().all(|c| !s.expired.contains(&c.checkpoint_id)));
}

#[tokio::test]
async fn a_failing_load_falls_back_to_older_checkpoints() {
    let _ray = ray::init(Config::default()).unwrap();
    let storage = Shared::default();
    let a = Account::options()
        .name("fallback")
        .remote(storage.clone(), knobs(1))
        .unwrap();
    a.deposit(10).await.unwrap();
    a.deposit(5).await.unwrap();
    let cps = ray::get_checkpoints_for_actor(a.actor_id()).unwrap();
    drop(a);
    let k = Knobs {
        fail_load_of_newest: true,
        ..Knobs::default()
    };
    let b = recreate("fallback", &storage, k).await;
    assert_eq!(
        b.balance().await.unwrap(),
        10,
        "the older checkpoint loaded"
    );
    let s = storage.lock().unwrap();
    assert_eq!(
        s.loads,
        vec![
            vec![cps[0].checkpoint_id, cps[1].checkpoint_id],
            vec![cps[1].checkpoint_id]
        ]
    );
    assert!(ray::error_info()
        .iter()
        .any(|e| e.kind == ErrorKind::Checkpoint && e.message.contains("unreadable")));
}

#[test]
fn local_mode_runs_the_hooks_too() {
    let _ray = ray::init(Config::default().local_mode(true)).unwrap();
    let storage = Shared::default();
    let a = Account::remote(storage.clone(), knobs(2)).unwrap();
    for _ in 0..4 {
        a.deposit(1);
    }
    assert_eq!(storage.lock().unwrap().contexts, vec![1, 2, 1, 2]);
    assert_eq!(
        ray::get_checkpoints_for_actor(a.actor_id()).unwrap().len(),
        2
    );
}

/// Automatic serde checkpoints: no hooks written by hand.
#[ray::actor(checkpoint(every_calls = 2, keep = 3))]
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct Tally {
    items: Vec<String>,
}

#[ray::actor]
impl Tally {
    pub fn add(&mut self, s: String) -> usize {
        self.items.push(s);
        self.items.len()
    }

    pub fn items(&self) -> Vec<String> {
        self.items.clone()
    }
}

#[test]
fn automatic_checkpoints_resume_a_named_actor_across_runtimes_with_a_checkpoint_dir() {
    let dir = std::env::temp_dir().join(format!("ray-ckpt-test-{}", ray::ActorId::random().hex()));
    let run = |adds: &[&str]| -> (Vec<String>, usize) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let ray = ray::init(Config::default().checkpoint_dir(&dir)).unwrap();
            let t = Tally::options().name("tally").remote().unwrap();
            for a in adds {
                t.add(*a).await.unwrap();
            }
            let items = t.items().await.unwrap();
            let kept = ray::get_checkpoints_for_actor(t.actor_id()).unwrap().len();
            assert!(ray::error_info().is_empty(), "{:?}", ray::error_info());
            ray.shutdown().await;
            (items, kept)
        })
    };
    let (first, kept) = run(&["a", "b", "c", "d", "e", "f", "g"]);
    assert_eq!(first.len(), 7);
    // 8 calls (7 adds + items): 4 checkpoints, 3 kept.
    assert_eq!(kept, 3);
    // The second program finds the state as of the last checkpoint (after
    // the 8th call: all seven items).
    let (second, _) = run(&["h"]);
    assert_eq!(second, vec!["a", "b", "c", "d", "e", "f", "g", "h"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Records the elapsed time each policy call sees; checkpoints from 30 ms on.
#[ray::actor(checkpointable)]
pub struct Timed {
    seen: Arc<Mutex<Vec<u64>>>,
}

#[ray::actor]
impl Timed {
    pub fn new(seen: Arc<Mutex<Vec<u64>>>) -> Self {
        Timed { seen }
    }

    pub fn tick(&mut self) {}
}

impl ray::Checkpointable for Timed {
    fn should_checkpoint(&mut self, ctx: &CheckpointContext) -> bool {
        let ms = ctx.time_elapsed_ms_since_last_checkpoint;
        self.seen.lock().unwrap().push(ms);
        ms >= 30
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

#[tokio::test]
async fn the_elapsed_time_counts_from_the_last_checkpoint_and_is_exact_after_a_pause() {
    let _ray = ray::init(Config::default()).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let created = std::time::Instant::now();
    let t = Timed::remote(seen.clone()).unwrap();
    // Calls in quick succession: never more than the time since creation.
    for _ in 0..100 {
        t.tick().await.unwrap();
    }
    let bound = created.elapsed().as_millis() as u64;
    let first: Vec<u64> = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(first.len(), 100);
    // Never backwards, except after a checkpoint (a stall of 30 ms or more).
    for w in first.windows(2) {
        assert!(w[1] >= w[0] || w[0] >= 30, "{first:?}");
    }
    assert!(first.iter().all(|&ms| ms <= bound), "{first:?} > {bound}");
    let taken = ray::get_checkpoints_for_actor(t.actor_id()).unwrap().len();
    // After a pause of 35 ms, the first call sees at least 35 ms: due.
    tokio::time::sleep(Duration::from_millis(35)).await;
    let since = std::time::Instant::now();
    t.tick().await.unwrap();
    t.tick().await.unwrap();
    let bound = since.elapsed().as_millis() as u64;
    let after = std::mem::take(&mut *seen.lock().unwrap());
    assert!(after[0] >= 35, "{after:?}");
    assert_eq!(
        ray::get_checkpoints_for_actor(t.actor_id()).unwrap().len(),
        taken + 1 + usize::from(after[1] >= 30)
    );
    // The next call counts from that checkpoint.
    assert!(after[1] <= bound, "{after:?} > {bound}");
}
