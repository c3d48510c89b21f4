//! Observability (issue 9): the actor state API ([`actors`]), the timeline
//! ([`timeline`]) and what each actor counts about itself.
//!
//! Everything here is off the hot path or one relaxed atomic per call:
//!
//! - Each actor keeps an `ActorObs`: its phase, a submitted-calls counter
//!   (bumped by callers, on its own cache line) and a completed-calls counter
//!   (bumped by the actor task, on another), the resources it holds.
//!   [`actors`] reads them; nothing is collected unless asked.
//! - The timeline records only when the runtime was started with
//!   [`Config::timeline(true)`](crate::Config::timeline) (or `RAY_TIMELINE=1`):
//!   otherwise the per-call check is one `Option` test.
//! - `tracing` spans and events cost one level check each when no subscriber
//!   is installed (the benchmark's `ray` column runs with none).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::ids::ActorId;
use crate::resources::ResourceSet;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where an actor is in its life, as [`actors`] reports it (Ray's actor
/// states).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ActorStatus {
    /// Created, not running calls yet: waiting for the node to have its
    /// resources, for its constructor's arguments, or for its constructor
    /// to finish; its calls queue meanwhile.
    PendingPlacement,
    /// Running its calls.
    Alive,
    /// Being rebuilt after a crash: constructor, restore, replay.
    Restarting,
    /// Stopped for good; later calls fail with `cause`.
    Dead {
        /// Why: the error its calls get.
        cause: String,
    },
}

impl fmt::Display for ActorStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActorStatus::PendingPlacement => f.write_str("PENDING_PLACEMENT"),
            ActorStatus::Alive => f.write_str("ALIVE"),
            ActorStatus::Restarting => f.write_str("RESTARTING"),
            ActorStatus::Dead { cause } => write!(f, "DEAD ({cause})"),
        }
    }
}

/// One actor of the runtime, as [`actors`] sees it at the moment of the call.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ActorState {
    /// The actor's ID.
    pub actor_id: ActorId,
    /// Its class (`#[ray::actor]` struct name).
    pub class_name: String,
    /// Its name, for named actors.
    pub name: Option<String>,
    /// Where it is in its life.
    pub state: ActorStatus,
    /// Restarts used so far.
    pub restarts: u64,
    /// Restarts allowed (`max_reconstructions`).
    pub max_restarts: u64,
    /// Resources it holds now: `num_cpus`/`num_gpus`/custom for an actor
    /// declared with resources once placed; `{"CPU": 1}` for a default actor
    /// while one of its methods runs; empty otherwise.
    pub resources: BTreeMap<String, f64>,
    /// Calls submitted and not yet finished, not counting the one running.
    pub queued_calls: u64,
    /// Calls finished (successfully or not) by this actor, replays excluded.
    pub completed_calls: u64,
    /// Checkpoints kept in the store for it (0 for non-checkpointable classes).
    pub checkpoints: usize,
}

const PENDING: u8 = 0;
const ALIVE: u8 = 1;
const RESTARTING: u8 = 2;

/// A counter kept apart from the others (see [`ActorObs`]'s layout).
#[derive(Debug, Default)]
struct Padded<T>(T);

/// What one actor counts about itself for [`actors`] and the timeline.
///
/// `repr(C)` keeps the order below: `submitted` (written by callers) first,
/// the read-mostly fields in between, the actor task's counters last, so
/// callers and the actor task rarely write the same cache line. (Aligning
/// each counter to its own line was measured: the aligned allocation cost
/// actor creation about 1,000 instructions, more than it saved.)
#[derive(Debug)]
#[repr(C)]
pub(crate) struct ActorObs {
    submitted: Padded<AtomicU64>,
    /// Creation order in the runtime (sorts [`actors`], orders tracks).
    pub(crate) seq: u64,
    pub(crate) name: Option<String>,
    pub(crate) max_restarts: u64,
    /// Boxed: only actors declared with resources hold any, and every actor
    /// keeps room for this.
    lifetime: Mutex<Option<Box<ResourceSet>>>,
    /// The runtime's timeline, when it records.
    pub(crate) timeline: Option<Arc<Timeline>>,
    /// When the actor was created (timeline clock), for its placement wait.
    pub(crate) created_at: u64,
    pub(crate) checkpointable: bool,
    phase: AtomicU8,
    /// A default actor holds its per-call CPU now.
    pub(crate) cpu_held: AtomicBool,
    completed: Padded<(AtomicU64, AtomicBool)>,
}

impl ActorObs {
    pub(crate) fn new(
        seq: u64,
        name: Option<String>,
        max_restarts: u64,
        checkpointable: bool,
        timeline: Option<Arc<Timeline>>,
    ) -> Self {
        let created_at = timeline.as_ref().map_or(0, |t| t.now());
        ActorObs {
            seq,
            name,
            max_restarts,
            checkpointable,
            phase: AtomicU8::new(PENDING),
            submitted: Padded::default(),
            completed: Padded::default(),
            cpu_held: AtomicBool::new(false),
            lifetime: Mutex::new(None),
            timeline,
            created_at,
        }
    }

    /// For handles whose actor this runtime does not know.
    pub(crate) fn detached() -> Self {
        Self::new(0, None, 0, false, None)
    }

    pub(crate) fn set_alive(&self) {
        self.phase.store(ALIVE, Ordering::Release);
    }

    pub(crate) fn set_restarting(&self) {
        self.phase.store(RESTARTING, Ordering::Release);
    }

    /// One more call submitted by a handle. Only under the lock every
    /// submission to the actor takes (its mailbox's, or in local mode its
    /// state's): a load and a store, not a locked read-modify-write.
    #[inline]
    pub(crate) fn submitted_locked(&self) {
        let n = &self.submitted.0;
        n.store(n.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// A call starts (`true`) or finishes (`false`) running.
    #[inline]
    pub(crate) fn running(&self, on: bool) {
        let (done, running) = &self.completed.0;
        if !on {
            done.store(done.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
        running.store(on, Ordering::Relaxed);
    }

    /// Calls finished so far.
    pub(crate) fn completed_calls(&self) -> u64 {
        self.completed.0 .0.load(Ordering::Relaxed)
    }

    /// The actor was interrupted mid-call (it will run the call again).
    pub(crate) fn interrupted(&self) {
        self.completed.0 .1.store(false, Ordering::Relaxed);
    }

    /// The timeline's clock now, when the timeline records (else `None`,
    /// and [`event_since`](Self::event_since) records nothing).
    #[inline]
    pub(crate) fn clock(&self) -> Option<u64> {
        self.timeline.as_ref().map(|tl| tl.now())
    }

    /// A complete event on `actor`'s track from `t0` (a [`clock`](Self::clock)
    /// reading) to now; `args` is built only when the timeline records.
    #[inline]
    pub(crate) fn event_since(
        &self,
        actor: ActorId,
        t0: Option<u64>,
        name: EventName,
        cat: &'static str,
        args: impl FnOnce() -> Vec<(&'static str, Cow<'static, str>)>,
    ) {
        if let (Some(tl), Some(t0)) = (&self.timeline, t0) {
            tl.complete(actor, name, cat, t0, args());
        }
    }

    /// Whether a default actor holds its per-call CPU now.
    #[inline]
    pub(crate) fn set_cpu_held(&self, held: bool) {
        self.cpu_held.store(held, Ordering::Relaxed);
    }

    /// The resources held for the actor's life (`None`: given back).
    pub(crate) fn set_lifetime(&self, held: Option<ResourceSet>) {
        *lock(&self.lifetime) = held.map(Box::new);
    }

    /// The state API's view, given the death (if any) and restarts used.
    pub(crate) fn state(
        &self,
        actor_id: ActorId,
        class: &str,
        death: Option<String>,
        restarts: u64,
        checkpoints: usize,
    ) -> ActorState {
        let (state, dead) = match death {
            Some(cause) => (ActorStatus::Dead { cause }, true),
            None => (
                match self.phase.load(Ordering::Acquire) {
                    PENDING => ActorStatus::PendingPlacement,
                    RESTARTING => ActorStatus::Restarting,
                    _ => ActorStatus::Alive,
                },
                false,
            ),
        };
        let completed = self.completed.0 .0.load(Ordering::Relaxed);
        let running = u64::from(self.completed.0 .1.load(Ordering::Relaxed));
        let submitted = self.submitted.0.load(Ordering::Relaxed);
        let mut resources = BTreeMap::new();
        if !dead {
            if let Some(r) = &*lock(&self.lifetime) {
                resources = r.to_map();
            }
            if self.cpu_held.load(Ordering::Relaxed) {
                *resources.entry("CPU".to_owned()).or_insert(0.0) += 1.0;
            }
        }
        ActorState {
            actor_id,
            class_name: class.to_owned(),
            name: self.name.clone(),
            state,
            restarts,
            max_restarts: self.max_restarts,
            resources,
            queued_calls: if dead {
                0
            } else {
                submitted.saturating_sub(completed + running)
            },
            completed_calls: completed,
            checkpoints,
        }
    }
}

/// A stopped actor as the state API remembers it, copied from the actor's
/// info when the actor leaves the registry. The copy is made while the info
/// is hot (the actor task has just recorded the death), so the info goes
/// with the actor; forgetting the oldest summary later frees at most a name
/// or an error's cause, never an info last touched a thousand actors ago.
#[derive(Debug)]
pub(crate) struct Stopped {
    pub(crate) actor_id: ActorId,
    pub(crate) checkpointable: bool,
    pub(crate) class: &'static str,
    /// Creation order (sorts [`actors`]).
    pub(crate) seq: u64,
    pub(crate) restarts: u64,
    pub(crate) max_restarts: u64,
    pub(crate) completed: u64,
    pub(crate) name: Option<Box<str>>,
    /// The death's cause (borrowed for the ordinary ends).
    pub(crate) cause: Cow<'static, str>,
}

impl Stopped {
    /// The state API's view, with the checkpoints the store keeps for it.
    pub(crate) fn state(&self, checkpoints: usize) -> ActorState {
        ActorState {
            actor_id: self.actor_id,
            class_name: self.class.to_owned(),
            name: self.name.as_deref().map(str::to_owned),
            state: ActorStatus::Dead {
                cause: self.cause.clone().into_owned(),
            },
            restarts: self.restarts,
            max_restarts: self.max_restarts,
            resources: BTreeMap::new(),
            queued_calls: 0,
            completed_calls: self.completed,
            checkpoints,
        }
    }
}

/// Every actor of the current runtime (live ones, then up to the 1,000 most
/// recently stopped), in creation order: Ray's `ray.util.state.list_actors()`.
/// Empty without a runtime.
///
/// ```
/// let _ray = ray_core::init(ray_core::Config::default())?;
/// assert!(ray_core::actors().is_empty()); // none created yet
/// # Ok::<(), ray_core::Error>(())
/// ```
///
/// The book's *Observability* chapter lists actors of every state.
pub fn actors() -> Vec<ActorState> {
    crate::runtime::try_current()
        .map(|rt| rt.actor_states())
        .unwrap_or_default()
}

/// Writes everything the current runtime's timeline recorded — every method
/// execution, actor creation (and its wait for placement), checkpoint,
/// restart (with its restore and replay) and death — to `path` as Chrome
/// trace-event JSON, one track per actor: open it in <https://ui.perfetto.dev>
/// or `chrome://tracing`. Ray's `ray.timeline(filename)`. Returns the number
/// of events written.
///
/// # Errors
///
/// [`Error::InvalidArgument`] when the runtime does not record a timeline
/// (start it with [`Config::timeline(true)`](crate::Config::timeline) or the
/// environment variable `RAY_TIMELINE=1`); [`Error::NotInitialized`] without
/// a runtime; the I/O error, as [`Error::InvalidArgument`], if `path` cannot
/// be written.
pub fn timeline(path: impl AsRef<Path>) -> Result<usize> {
    let rt = crate::runtime::current()?;
    let tl = rt.timeline.as_ref().ok_or_else(|| {
        Error::invalid(
            "the timeline is not recorded: start the runtime with \
             Config::default().timeline(true), or set RAY_TIMELINE=1",
        )
    })?;
    let path = path.as_ref();
    let write = || -> std::io::Result<usize> {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        let n = tl.write_json(&mut out)?;
        out.flush()?;
        Ok(n)
    };
    write().map_err(|e| {
        Error::invalid(format!(
            "could not write the timeline to {}: {e}",
            path.display()
        ))
    })
}

/// A name of a timeline event, allocated only when needed.
#[derive(Debug, Clone)]
pub(crate) enum EventName {
    Static(&'static str),
    Method(&'static str, &'static str),
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventName::Static(s) => f.write_str(s),
            EventName::Method(class, method) => write!(f, "{class}.{method}"),
        }
    }
}

#[derive(Debug, Clone)]
struct Event {
    actor: ActorId,
    name: EventName,
    cat: &'static str,
    start_ns: u64,
    /// `None`: an instant event.
    dur_ns: Option<u64>,
    args: Vec<(&'static str, Cow<'static, str>)>,
}

#[derive(Debug)]
struct Track {
    seq: u64,
    label: String,
}

/// The runtime's event recorder (only when the timeline is on). A bounded
/// buffer: past its capacity the oldest events are dropped and counted.
#[derive(Debug)]
pub(crate) struct Timeline {
    start: Instant,
    cap: usize,
    events: Mutex<VecDeque<Event>>,
    tracks: Mutex<HashMap<ActorId, Track>>,
    dropped: AtomicU64,
}

impl Timeline {
    pub(crate) fn new(cap: usize) -> Self {
        Timeline {
            start: Instant::now(),
            cap: cap.max(1),
            events: Mutex::new(VecDeque::new()),
            tracks: Mutex::new(HashMap::new()),
            dropped: AtomicU64::new(0),
        }
    }

    /// Nanoseconds since the runtime started.
    pub(crate) fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Names the track of `actor`.
    pub(crate) fn track(&self, actor: ActorId, seq: u64, label: String) {
        lock(&self.tracks).insert(actor, Track { seq, label });
    }

    fn push(&self, e: Event) {
        let mut events = lock(&self.events);
        if events.len() >= self.cap {
            events.pop_front();
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        events.push_back(e);
    }

    /// A complete event on `actor`'s track, from `start_ns` to now.
    pub(crate) fn complete(
        &self,
        actor: ActorId,
        name: EventName,
        cat: &'static str,
        start_ns: u64,
        args: Vec<(&'static str, Cow<'static, str>)>,
    ) {
        let end = self.now();
        self.push(Event {
            actor,
            name,
            cat,
            start_ns,
            dur_ns: Some(end.saturating_sub(start_ns)),
            args,
        });
    }

    /// An instant event on `actor`'s track, now.
    pub(crate) fn instant(
        &self,
        actor: ActorId,
        name: &'static str,
        cat: &'static str,
        args: Vec<(&'static str, Cow<'static, str>)>,
    ) {
        let now = self.now();
        self.push(Event {
            actor,
            name: EventName::Static(name),
            cat,
            start_ns: now,
            dur_ns: None,
            args,
        });
    }

    /// Writes the Chrome trace-event JSON (object form, `traceEvents` plus
    /// metadata); returns the number of (non-metadata) events.
    fn write_json(&self, out: &mut impl Write) -> std::io::Result<usize> {
        let events: Vec<Event> = lock(&self.events).iter().cloned().collect();
        let mut tracks: Vec<(ActorId, u64, String)> = lock(&self.tracks)
            .iter()
            .map(|(id, t)| (*id, t.seq, t.label.clone()))
            .collect();
        tracks.sort_by_key(|t| t.1);
        let mut tid: HashMap<ActorId, usize> = HashMap::new();
        for (i, (id, _, _)) in tracks.iter().enumerate() {
            tid.insert(*id, i + 1);
        }
        let js = |s: &str| serde_json::to_string(s).expect("a string serializes");
        let us = |ns: u64| format!("{}.{:03}", ns / 1000, ns % 1000);
        writeln!(out, "{{\"traceEvents\":[")?;
        writeln!(
            out,
            "{{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":1,\"tid\":0,\"args\":{{\"name\":\"ray runtime\"}}}}"
        )?;
        for (i, (_, _, label)) in tracks.iter().enumerate() {
            let t = i + 1;
            writeln!(
                out,
                ",{{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":{t},\"args\":{{\"name\":{}}}}}",
                js(label)
            )?;
            writeln!(
                out,
                ",{{\"name\":\"thread_sort_index\",\"ph\":\"M\",\"pid\":1,\"tid\":{t},\"args\":{{\"sort_index\":{t}}}}}"
            )?;
        }
        let mut next_tid = tracks.len() + 1;
        for e in &events {
            let Event {
                actor,
                name,
                cat,
                start_ns: start,
                dur_ns: dur,
                args,
            } = e;
            let t = *tid.entry(*actor).or_insert_with(|| {
                next_tid += 1;
                next_tid - 1
            });
            write!(
                out,
                ",{{\"name\":{},\"cat\":\"{cat}\",\"pid\":1,\"tid\":{t},\"ts\":{}",
                js(&name.to_string()),
                us(*start)
            )?;
            match dur {
                Some(d) => write!(out, ",\"ph\":\"X\",\"dur\":{}", us(*d))?,
                None => write!(out, ",\"ph\":\"i\",\"s\":\"t\"")?,
            }
            write!(out, ",\"args\":{{\"actor_id\":\"{actor}\"")?;
            for (k, v) in args {
                write!(out, ",{}:{}", js(k), js(v))?;
            }
            writeln!(out, "}}}}")?;
        }
        writeln!(
            out,
            "],\"displayTimeUnit\":\"ms\",\"otherData\":{{\"dropped_events\":{}}}}}",
            self.dropped.load(Ordering::Relaxed)
        )?;
        Ok(events.len())
    }
}
