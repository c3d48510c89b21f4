//! Observability (issue 9): the state API, the error stream, the timeline and
//! the tracing spans, all through the public API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ray::prelude::*;
use ray::{ActorStatus, ErrorKind};

const BOUND: Duration = Duration::from_secs(10);

async fn bounded<T: Clone>(r: ObjectRef<T>) -> ray::Result<T> {
    tokio::time::timeout(BOUND, r)
        .await
        .expect("a bounded wait")
}

/// Waits until `f` holds for the state of actor `id`.
async fn until_state(id: ActorId, what: &str, f: impl Fn(&ray::ActorState) -> bool) {
    tokio::time::timeout(BOUND, async {
        loop {
            if ray::actors().iter().any(|a| a.actor_id == id && f(a)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("actor {id} never {what}: {:#?}", ray::actors()));
}

fn state_of(id: ActorId) -> ray::ActorState {
    ray::actors()
        .into_iter()
        .find(|a| a.actor_id == id)
        .unwrap_or_else(|| panic!("actor {id} is not listed"))
}

#[ray::actor(checkpoint(every_calls = 1, keep = 3), max_reconstructions = 2)]
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct Tally {
    n: u64,
}

#[ray::actor]
impl Tally {
    pub fn add(&mut self, k: u64) -> u64 {
        self.n += k;
        self.n
    }

    pub fn boom(&mut self) -> u64 {
        panic!("boom at {}", self.n)
    }

    /// Holds its CPU (a timer is not an object) for `ms`.
    pub async fn slow(&mut self, ms: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.n
    }

    #[method(num_returns = 0)]
    pub fn fire(&mut self, fail: bool) -> Result<(), String> {
        if fail {
            Err("nobody reads this".into())
        } else {
            Ok(())
        }
    }
}

#[ray::actor(num_gpus = 1)]
#[derive(Default)]
pub struct Gpu;

#[ray::actor]
impl Gpu {
    pub fn ids(&self) -> Vec<usize> {
        ray::get_gpu_ids()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actors_lists_every_actor_with_its_state() {
    let _ray = ray::init(Config::default().num_cpus(2).num_gpus(1)).unwrap();
    assert!(ray::actors().is_empty());

    // Alive, named, a default actor: holds a CPU only while a method runs.
    let t = Tally::options().name("tally").remote().unwrap();
    for k in 1..=5 {
        assert_eq!(bounded(t.add(k)).await.unwrap(), k * (k + 1) / 2);
    }
    let s = state_of(t.actor_id());
    assert_eq!(s.class_name, "Tally");
    assert_eq!(s.name.as_deref(), Some("tally"));
    assert_eq!(s.state, ActorStatus::Alive);
    assert_eq!((s.restarts, s.max_restarts), (0, 2));
    assert_eq!(s.completed_calls, 5);
    assert_eq!(s.queued_calls, 0);
    assert_eq!(s.checkpoints, 3, "keep = 3");
    assert!(s.resources.is_empty(), "idle: {:?}", s.resources);

    // A running call holds 1 CPU; the calls behind it are queued.
    let slow = t.slow(300);
    let behind: Vec<_> = (0..4).map(|_| t.add(0)).collect();
    until_state(t.actor_id(), "ran its slow call", |a| {
        a.resources.get("CPU") == Some(&1.0)
    })
    .await;
    let s = state_of(t.actor_id());
    assert_eq!(s.queued_calls, 4, "{s:?}");
    assert_eq!(s.completed_calls, 5);
    bounded(slow).await.unwrap();
    for r in behind {
        bounded(r).await.unwrap();
    }
    let s = state_of(t.actor_id());
    assert_eq!((s.completed_calls, s.queued_calls), (10, 0));

    // Pending placement: the node's only GPU is taken.
    let g1 = Gpu::remote().unwrap();
    assert_eq!(bounded(g1.ids()).await.unwrap(), vec![0]);
    let g2 = Gpu::remote().unwrap();
    let waiting = g2.ids();
    let s = state_of(g1.actor_id());
    assert_eq!(s.state, ActorStatus::Alive);
    assert_eq!(s.resources.get("GPU"), Some(&1.0));
    assert_eq!(s.resources.get("CPU"), Some(&1.0));
    until_state(g2.actor_id(), "waited for placement", |a| {
        a.state == ActorStatus::PendingPlacement && a.queued_calls == 1
    })
    .await;
    assert!(state_of(g2.actor_id()).resources.is_empty());

    // A restart is counted; killing for good makes it dead with the cause,
    // and frees the GPU for the pending actor.
    let e = bounded(t.boom()).await.unwrap_err();
    assert!(e.to_string().contains("boom"), "{e}");
    assert_eq!(bounded(t.add(0)).await.unwrap(), 15, "restored");
    let s = state_of(t.actor_id());
    assert_eq!((s.state, s.restarts), (ActorStatus::Alive, 1));
    ray::kill(&g1, true);
    assert_eq!(bounded(waiting).await.unwrap(), vec![0]);
    until_state(g1.actor_id(), "died", |a| {
        matches!(&a.state, ActorStatus::Dead { cause } if cause.contains("ray::kill"))
            && a.resources.is_empty()
    })
    .await;
    assert_eq!(state_of(g2.actor_id()).state, ActorStatus::Alive);

    // Listed in creation order.
    let order: Vec<_> = ray::actors().iter().map(|a| a.actor_id).collect();
    assert_eq!(order, vec![t.actor_id(), g1.actor_id(), g2.actor_id()]);

    // Dropping every handle stops an actor; it stays listed as dead.
    let id = g2.actor_id();
    drop(g2);
    until_state(
        id,
        "stopped with its handles",
        |a| matches!(&a.state, ActorStatus::Dead { cause } if cause.contains("dropped")),
    )
    .await;
    assert_eq!(format!("{}", ActorStatus::Alive), "ALIVE");
}

#[tokio::test]
async fn local_mode_actors_are_listed_too() {
    let _ray = ray::init(Config::default().local_mode(true)).unwrap();
    let t = Tally::remote().unwrap();
    t.add(2).get_blocking().unwrap();
    let s = state_of(t.actor_id());
    assert_eq!(
        (s.state.clone(), s.completed_calls),
        (ActorStatus::Alive, 1)
    );
    let id = t.actor_id();
    drop(t);
    assert!(matches!(state_of(id).state, ActorStatus::Dead { .. }));
}

#[ray::actor]
#[derive(Default)]
pub struct Blank;

#[ray::actor]
impl Blank {
    pub fn ping(&self) -> u8 {
        1
    }
}

/// Once an actor has left the registry (its name is free again), the state
/// API still shows it as it ended: name, restarts, calls, checkpoints, the
/// cause. Only the 1,000 most recently stopped actors are kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_actor_is_listed_as_it_ended_until_a_thousand_newer_ones_stop() {
    let _ray = ray::init(Config::default().num_cpus(2)).unwrap();
    let t = Tally::options().name("gone").remote().unwrap();
    assert_eq!(bounded(t.add(2)).await.unwrap(), 2);
    bounded(t.boom()).await.unwrap_err();
    assert_eq!(bounded(t.add(3)).await.unwrap(), 5, "restored");
    let id = t.actor_id();
    let before = state_of(id);
    assert_eq!(before.restarts, 1, "{before:?}");
    assert!(before.completed_calls >= 2, "{before:?}");
    assert!(before.checkpoints > 0, "{before:?}");
    drop(t);
    // The name can be taken again once the stopped actor left the registry
    // (by another class: a named actor's ID comes from its class and name).
    let successor = tokio::time::timeout(BOUND, async {
        loop {
            match Blank::options().name("gone").remote() {
                Ok(h) => return h,
                Err(_) => tokio::time::sleep(Duration::from_millis(2)).await,
            }
        }
    })
    .await
    .expect("the stopped actor's name is freed");
    let after = state_of(id);
    assert_eq!(
        after.state,
        ActorStatus::Dead {
            cause: "every handle to the actor was dropped".into()
        }
    );
    assert_eq!(after.name.as_deref(), Some("gone"));
    assert_eq!(after.class_name, "Tally");
    assert_eq!((after.restarts, after.max_restarts), (1, 2));
    assert_eq!(after.completed_calls, before.completed_calls);
    assert_eq!(after.checkpoints, before.checkpoints);
    assert_eq!(after.queued_calls, 0);
    assert!(after.resources.is_empty(), "{after:?}");

    // A thousand newer actors stop: the oldest stopped one is forgotten.
    let blanks: Vec<_> = (0..1000).map(|_| Blank::remote().unwrap()).collect();
    for b in &blanks {
        assert_eq!(bounded(b.ping()).await.unwrap(), 1);
    }
    let ids: std::collections::HashSet<_> = blanks.iter().map(|b| b.actor_id()).collect();
    drop(blanks);
    tokio::time::timeout(BOUND, async {
        loop {
            let all = ray::actors();
            if all.iter().all(|a| a.actor_id != id) {
                let (live, stopped): (Vec<_>, Vec<_>) =
                    all.iter().partition(|a| a.actor_id == successor.actor_id());
                assert_eq!(live.len(), 1);
                assert_eq!(stopped.len(), 1000, "the thousand newest stopped actors");
                assert!(stopped.iter().all(|a| ids.contains(&a.actor_id)
                    && matches!(a.state, ActorStatus::Dead { .. })
                    && a.completed_calls == 1));
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("the oldest stopped actor is forgotten");
}

#[ray::actor(checkpointable)]
#[derive(Default)]
pub struct Flaky;

#[ray::actor]
impl Flaky {
    pub fn ping(&self) -> u8 {
        1
    }
}

impl Checkpointable for Flaky {
    fn should_checkpoint(&mut self, _ctx: &CheckpointContext) -> bool {
        true
    }
    fn save_checkpoint(&mut self, _actor: ActorId, _id: CheckpointId) -> Result<(), ray::BoxError> {
        Err("the disk is full".into())
    }
    fn load_checkpoint(
        &mut self,
        _actor: ActorId,
        _available: &[Checkpoint],
    ) -> Result<Option<CheckpointId>, ray::BoxError> {
        Ok(None)
    }
    fn checkpoint_expired(
        &mut self,
        _actor: ActorId,
        _id: CheckpointId,
    ) -> Result<(), ray::BoxError> {
        Ok(())
    }
}

/// The three kinds of the error stream, each with its actor ID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_error_stream_names_the_actor_of_each_error() {
    let _ray = ray::init(Config::default()).unwrap();
    let f = Flaky::remote().unwrap();
    assert_eq!(bounded(f.ping()).await.unwrap(), 1);
    let t = Tally::options().max_reconstructions(0).remote().unwrap();
    t.fire(true);
    bounded(t.add(1)).await.unwrap();
    let _ = bounded(t.boom()).await;
    let find = |kind: ErrorKind, id: ActorId, text: &str| {
        ray::error_info()
            .iter()
            .any(|e| e.kind == kind && e.actor_id == Some(id) && e.message.contains(text))
    };
    assert!(find(
        ErrorKind::Checkpoint,
        f.actor_id(),
        "the disk is full"
    ));
    assert!(find(
        ErrorKind::TaskFailed,
        t.actor_id(),
        "nobody reads this"
    ));
    // The panicking call's error reaches its caller first; the death is
    // reported as the actor task winds down.
    tokio::time::timeout(BOUND, async {
        while !find(ErrorKind::ActorDied, t.actor_id(), "boom") {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no death reported: {:#?}", ray::error_info()));
    assert!(matches!(
        state_of(t.actor_id()).state,
        ActorStatus::Dead { .. }
    ));
}

/// A Chrome trace event, as read back.
#[derive(Debug, Clone, serde::Deserialize)]
struct TraceEvent {
    name: String,
    ph: String,
    tid: u64,
    #[serde(default)]
    ts: f64,
    #[serde(default)]
    dur: f64,
    #[serde(default)]
    cat: String,
    #[serde(default)]
    args: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, serde::Deserialize)]
struct Trace {
    #[serde(rename = "traceEvents")]
    trace_events: Vec<TraceEvent>,
}

fn contains(outer: &TraceEvent, inner: &TraceEvent) -> bool {
    outer.tid == inner.tid
        && outer.ts <= inner.ts
        && inner.ts + inner.dur <= outer.ts + outer.dur + 0.001
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeline_is_chrome_trace_json_with_one_track_per_actor() {
    let dir = std::env::temp_dir().join(format!("ray-timeline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("timeline.json");
    {
        let _ray = ray::init(Config::default().num_cpus(2).timeline(true)).unwrap();
        let a = Tally::options().name("a").remote().unwrap();
        let b = Tally::remote().unwrap();
        for k in 0..4 {
            bounded(a.add(k)).await.unwrap();
            bounded(b.add(k)).await.unwrap();
        }
        // A crash: restart = restore + replay, then the call that follows.
        let _ = bounded(a.boom()).await;
        assert_eq!(bounded(a.add(0)).await.unwrap(), 6);
        ray::kill(&b, true);
        let _ = bounded(b.add(0)).await;
        let written = ray::timeline(&path).unwrap();
        assert!(written >= 12, "{written} events");
    }
    let trace: Trace = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let ev = &trace.trace_events;
    let tracks: HashMap<u64, String> = ev
        .iter()
        .filter(|e| e.ph == "M" && e.name == "thread_name")
        .map(|e| (e.tid, e.args["name"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(tracks.len(), 2, "{tracks:?}");
    let tid_a = *tracks
        .iter()
        .find(|(_, n)| n.starts_with("Tally \"a\""))
        .expect("a's track is labelled with its name")
        .0;
    let tid_b = *tracks.keys().find(|t| **t != tid_a).unwrap();
    let on = |tid: u64, name: &str| -> Vec<TraceEvent> {
        ev.iter()
            .filter(|e| e.tid == tid && e.name == name)
            .cloned()
            .collect()
    };
    // Every execution is an X event; a's five adds + the boom, b's four.
    assert_eq!(on(tid_a, "Tally.add").len(), 5);
    assert_eq!(on(tid_b, "Tally.add").len(), 4);
    let boom = &on(tid_a, "Tally.boom")[0];
    assert_eq!(boom.args["outcome"], "panicked");
    assert!(on(tid_a, "Tally.add")
        .iter()
        .all(|e| e.ph == "X" && e.cat == "method"));
    // Each actor was created once, before its first call.
    for tid in [tid_a, tid_b] {
        let create = on(tid, "create");
        assert_eq!(create.len(), 1);
        let first = on(tid, "Tally.add")
            .iter()
            .map(|e| e.ts)
            .fold(f64::INFINITY, f64::min);
        assert!(create[0].ts + create[0].dur <= first + 0.001);
    }
    // Checkpoints (every call) nest inside the method execution that took them.
    let adds = on(tid_a, "Tally.add");
    let checkpoints = on(tid_a, "checkpoint");
    assert_eq!(checkpoints.len(), 5, "one per completed add");
    for c in &checkpoints {
        assert!(adds.iter().any(|m| contains(m, c)), "{c:?} nests in a call");
    }
    // The restart holds its restore and its replay, after the boom.
    let restart = &on(tid_a, "restart")[0];
    assert!(restart.ts >= boom.ts + boom.dur - 0.001);
    assert!(restart.args["cause"].as_str().unwrap().contains("boom"));
    let restore = &on(tid_a, "restore")[0];
    let replay = &on(tid_a, "replay")[0];
    assert!(contains(restart, restore) && contains(restart, replay));
    assert!(restore.ts <= replay.ts);
    // b's death is an instant event with its cause.
    let died = &on(tid_b, "died")[0];
    assert_eq!(died.ph, "i");
    assert!(died.args["cause"].as_str().unwrap().contains("ray::kill"));
    // Events on one track never overlap unless nested (a valid flame chart).
    for tid in [tid_a, tid_b] {
        let mut xs: Vec<_> = ev.iter().filter(|e| e.tid == tid && e.ph == "X").collect();
        xs.sort_by(|x, y| x.ts.total_cmp(&y.ts));
        for (i, x) in xs.iter().enumerate() {
            for y in &xs[i + 1..] {
                let disjoint = x.ts + x.dur <= y.ts + 0.001;
                assert!(disjoint || contains(x, y), "{x:?} and {y:?} overlap");
            }
        }
    }
}

#[tokio::test]
async fn the_timeline_is_off_by_default_and_says_how_to_turn_it_on() {
    let _ray = ray::init(Config::default()).unwrap();
    let e = ray::timeline(std::env::temp_dir().join("never-written.json")).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument(m) if m.contains("timeline(true)")),
        "{e}"
    );
}

/// A subscriber recording span fields and event messages.
#[derive(Default, Clone)]
struct Recorder {
    spans: Arc<Mutex<Vec<HashMap<String, String>>>>,
    events: Arc<Mutex<Vec<String>>>,
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").trim_matches('"').to_owned(),
        );
    }
}

impl tracing::Subscriber for Recorder {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut fields = HashMap::new();
        fields.insert("span".to_owned(), span.metadata().name().to_owned());
        span.record(&mut Fields(&mut fields));
        let mut spans = self.spans.lock().unwrap();
        spans.push(fields);
        tracing::span::Id::from_u64(spans.len() as u64)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = HashMap::new();
        event.record(&mut Fields(&mut fields));
        let msg = fields.remove("message").unwrap_or_default();
        self.events.lock().unwrap().push(msg);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// A span per call with class, method, actor, handle and counter; events for
/// creation, checkpoints, restarts, deaths. On a current-thread runtime the
/// actor tasks run on this thread, under this thread's subscriber.
#[tokio::test]
async fn tracing_has_a_span_per_call_and_lifecycle_events() {
    let rec = Recorder::default();
    let _guard = tracing::subscriber::set_default(rec.clone());
    let _ray = ray::init(Config::default().num_cpus(1)).unwrap();
    let t = Tally::remote().unwrap();
    bounded(t.add(1)).await.unwrap();
    bounded(t.add(2)).await.unwrap();
    let _ = bounded(t.boom()).await;
    bounded(t.add(3)).await.unwrap();
    ray::kill(&t, true);
    let _ = bounded(t.add(0)).await;
    let spans = rec.spans.lock().unwrap().clone();
    let calls: Vec<_> = spans.iter().filter(|s| s["span"] == "ray.call").collect();
    assert_eq!(calls.len(), 4, "{spans:#?}");
    let second = calls[1];
    assert_eq!(second["class"], "Tally");
    assert_eq!(second["method"], "add");
    assert_eq!(second["actor_id"], t.actor_id().to_string());
    assert_eq!(second["handle_id"], t.handle_id().to_string());
    assert_eq!(second["counter"], "2");
    let events = rec.events.lock().unwrap().clone();
    for expected in [
        "ray: actor created",
        "ray: checkpoint saved",
        "ray: actor restarting",
        "ray: actor died",
    ] {
        assert!(
            events.iter().any(|e| e == expected),
            "{expected}: {events:#?}"
        );
    }
}

/// The state API's counters under concurrency: many callers (forked
/// handles) with random delays, a poller reading `ray::actors()` meanwhile.
/// Completed calls never go down, never pass what was submitted, and the
/// totals add up at the end; the CPU shows as held only while calls run.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_counters_stay_consistent_under_concurrent_callers() {
    use rand::{Rng, SeedableRng};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    for seed in 0..4u64 {
        let _ray = ray::init(Config::default().num_cpus(2)).unwrap();
        let t = Tally::options().max_reconstructions(0).remote().unwrap();
        let id = t.actor_id();
        let submitted = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let poller = {
            let (submitted, done) = (submitted.clone(), done.clone());
            tokio::spawn(async move {
                let mut last = 0;
                let mut polls = 0u32;
                while !done.load(Ordering::SeqCst) {
                    // Every call completed by now was counted before it was
                    // submitted, so the count read afterwards bounds it.
                    let s = state_of(id);
                    let bound = submitted.load(Ordering::SeqCst);
                    assert!(s.completed_calls <= bound, "{s:?} > {bound}");
                    assert!(s.completed_calls >= last, "completed went down");
                    // Placed and built shortly after creation, never restarted.
                    assert!(
                        matches!(s.state, ActorStatus::Alive | ActorStatus::PendingPlacement),
                        "{s:?}"
                    );
                    last = s.completed_calls;
                    polls += 1;
                    tokio::task::yield_now().await;
                }
                polls
            })
        };
        let callers: Vec<_> = (0..6u64)
            .map(|c| {
                let h = t.clone();
                let submitted = submitted.clone();
                tokio::spawn(async move {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(seed * 100 + c);
                    let mut pending = Vec::new();
                    for _ in 0..50 {
                        submitted.fetch_add(1, Ordering::SeqCst);
                        pending.push(h.add(1));
                        if rng.random_bool(0.3) {
                            let r = pending.remove(0);
                            bounded(r).await.unwrap();
                        }
                        if rng.random_bool(0.2) {
                            let us = rng.random_range(0..300);
                            tokio::time::sleep(Duration::from_micros(us)).await;
                        }
                    }
                    for r in pending {
                        bounded(r).await.unwrap();
                    }
                })
            })
            .collect();
        for c in callers {
            c.await.unwrap();
        }
        done.store(true, Ordering::SeqCst);
        assert!(poller.await.unwrap() > 0);
        let s = state_of(id);
        assert_eq!(s.completed_calls, 300, "seed {seed}: {s:?}");
        assert_eq!(s.queued_calls, 0, "seed {seed}: {s:?}");
        assert!(s.resources.is_empty(), "seed {seed}: {s:?}");
        assert_eq!(bounded(t.add(0)).await.unwrap(), 300);
    }
}
