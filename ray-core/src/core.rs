//! The actor core: one live actor's state, its frontier, its checkpoint
//! policy and its replay log, and what happens when it dies (SEMANTICS §7-8).
//!
//! Calls run one at a time in frontier order. After each completed call the
//! checkpoint policy runs, then the result is delivered, then (when the class
//! allows restarts) a copy of the call goes to the replay log. When the actor
//! dies with restarts left (a method panicked, or `kill(.., false)`), it is
//! rebuilt: the constructor runs again with the original arguments, a
//! checkpoint is restored (newest first, falling back to older ones), and the
//! logged calls completed after that checkpoint's frontier are replayed in
//! their original order without delivering results again.

use std::collections::{HashSet, VecDeque};

use crate::actor::{ActorClass, ActorInfo};
use crate::block::block_on;
use crate::call::MethodDescriptor;
use crate::checkpoint::{
    Checkpoint, CheckpointContext, CheckpointPolicy, CheckpointRecord, CheckpointStore, PolicyKind,
};
use crate::error::Error;
use crate::exec::{CtorBody, Envelope, Outcome, Running};
use crate::executor::{Frontier, FrontierSnapshot, Offer};
use crate::ids::{ActorHandleId, CheckpointId};
use crate::observe::EventName;
use crate::resources::HeldWhilePolled;
use crate::runtime::{CallRecord, CallRecordGuard, ErrorKind};
use crate::stopwatch::Stopwatch;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Whether `f` is at or past `floor` for every handle `floor` knows.
fn covers(f: &FrontierSnapshot, floor: &FrontierSnapshot) -> bool {
    floor.next.iter().all(|(h, n)| f.next_expected(h) >= *n)
}

/// The runtime's checkpoint store, looked up when needed: held by every
/// checkpointing actor, its reference count would be one more cache line
/// all of them write at creation and at exit.
fn store_of(info: &ActorInfo) -> Result<std::sync::Arc<dyn CheckpointStore>, String> {
    info.runtime()
        .map(|rt| rt.checkpoint_store())
        .ok_or_else(|| "the runtime is shut down".to_owned())
}

/// The checkpoint policy of one live actor.
struct Checkpointer<A> {
    policy: CheckpointPolicy<A>,
    keep: usize,
    /// What the policy sees, kept from call to call (the actor's ID is not
    /// copied in each time): the counter lives here.
    ctx: CheckpointContext,
    /// Since the last checkpoint (or the actor's start).
    last: Stopwatch,
    /// Checkpoints taken by this incarnation of the program.
    taken: HashSet<CheckpointId>,
}

impl<A> Checkpointer<A> {
    fn report(&self, info: &ActorInfo, msg: String) {
        info.report(ErrorKind::Checkpoint, msg);
    }

    /// Reports (once) every expired checkpoint, then forgets it.
    fn expire(&self, actor: &mut A, info: &ActorInfo) {
        let expired = store_of(info).and_then(|store| {
            let ids = store
                .expire(info.id, self.keep)
                .map_err(|e| e.to_string())?;
            Ok((store, ids))
        });
        let (store, expired) = match expired {
            Ok(v) => v,
            Err(e) => return self.report(info, format!("could not expire checkpoints: {e}")),
        };
        for id in expired {
            if let PolicyKind::Hooks { expired, .. } = &self.policy.kind {
                if let Err(e) = expired(actor, info.id, id) {
                    self.report(info, format!("checkpoint_expired({id}) failed: {e}"));
                }
            }
            if let Err(e) = store.forget(info.id, id) {
                self.report(
                    info,
                    format!("could not forget expired checkpoint {id}: {e}"),
                );
            }
        }
    }

    /// The policy's turn after one completed call: counts it, reads the
    /// clock, and asks the policy; `force` makes it due whatever the policy
    /// says. Inlined into the call path: it runs after every call and
    /// mostly says no, and what follows a yes is out of line
    /// ([`take_due`](Self::take_due)).
    #[inline(always)]
    fn due(&mut self, actor: &mut A, force: bool) -> bool {
        self.ctx.num_tasks_since_last_checkpoint += 1;
        self.ctx.time_elapsed_ms_since_last_checkpoint = self.last.elapsed_ms();
        let ctx = &self.ctx;
        let due = match &self.policy.kind {
            PolicyKind::Hooks { should, .. } => should(actor, ctx),
            PolicyKind::Auto {
                every_calls,
                every_ms,
                ..
            } => {
                every_calls.is_some_and(|n| ctx.num_tasks_since_last_checkpoint >= n)
                    || every_ms.is_some_and(|t| ctx.time_elapsed_ms_since_last_checkpoint >= t)
            }
        };
        due || force
    }

    /// A checkpoint is due: encodes the state (automatic policy), then
    /// takes it. Returns the new checkpoint, if one was saved.
    #[inline(never)]
    fn take_due(
        &mut self,
        actor: &mut A,
        info: &ActorInfo,
        frontier: FrontierSnapshot,
    ) -> Option<CheckpointRecord> {
        let state = match &self.policy.kind {
            PolicyKind::Hooks { .. } => None,
            PolicyKind::Auto { encode, .. } => match encode(actor) {
                Ok(bytes) => Some(bytes),
                Err(e) => {
                    self.report(info, format!("could not encode the actor's state: {e}"));
                    return None;
                }
            },
        };
        self.take(actor, info, state, frontier)
    }

    /// Takes a checkpoint the policy asked for.
    #[inline(never)]
    fn take(
        &mut self,
        actor: &mut A,
        info: &ActorInfo,
        state: Option<Vec<u8>>,
        frontier: FrontierSnapshot,
    ) -> Option<CheckpointRecord> {
        let record = CheckpointRecord {
            checkpoint_id: CheckpointId::random(),
            timestamp: now_ms(),
            frontier,
            state,
        };
        let id = record.checkpoint_id;
        let t0 = info.obs.clock();
        let saved = self.save(actor, info, record);
        info.obs.event_since(
            info.id,
            t0,
            EventName::Static("checkpoint"),
            "checkpoint",
            || {
                let outcome = if saved.is_some() { "saved" } else { "failed" };
                vec![
                    ("checkpoint_id", id.to_string().into()),
                    ("outcome", outcome.into()),
                ]
            },
        );
        if saved.is_some() {
            tracing::debug!(class = info.class, actor_id = %info.id, checkpoint_id = %id, "ray: checkpoint saved");
        }
        saved
    }

    /// Records, saves and commits one checkpoint; expires old ones.
    fn save(
        &mut self,
        actor: &mut A,
        info: &ActorInfo,
        record: CheckpointRecord,
    ) -> Option<CheckpointRecord> {
        let id = record.checkpoint_id;
        let begun = store_of(info).and_then(|store| {
            store.begin(info.id, &record).map_err(|e| e.to_string())?;
            Ok(store)
        });
        let store = match begun {
            Ok(store) => store,
            Err(e) => {
                self.report(info, format!("could not record checkpoint {id}: {e}"));
                return None;
            }
        };
        let saved = match &self.policy.kind {
            PolicyKind::Hooks { save, .. } => save(actor, info.id, id).map_err(|e| e.to_string()),
            PolicyKind::Auto { .. } => Ok(()),
        };
        match saved.and_then(|()| store.commit(info.id, id).map_err(|e| e.to_string())) {
            Ok(()) => {
                self.expire(actor, info);
                self.ctx.num_tasks_since_last_checkpoint = 0;
                self.last.restart();
                Some(record)
            }
            Err(e) => {
                self.report(info, format!("save_checkpoint({id}) failed: {e}"));
                let _ = store.forget(info.id, id);
                None
            }
        }
    }

    /// Restore (SEMANTICS §7): offer the `available` checkpoints newest first;
    /// on an error, or an ID not in the list, report it, construct afresh and
    /// offer the list without its newest entry, until one loads or none is
    /// left. Returns the actor and the checkpoint it was restored from.
    fn restore(
        &self,
        info: &ActorInfo,
        ctor: &dyn CtorBody<A>,
        mut actor: A,
        mut available: Vec<CheckpointRecord>,
    ) -> Result<(A, Option<CheckpointRecord>), String> {
        while !available.is_empty() {
            let public: Vec<Checkpoint> =
                available.iter().map(CheckpointRecord::checkpoint).collect();
            let loaded: Result<Option<CheckpointId>, String> = match &self.policy.kind {
                PolicyKind::Hooks { load, .. } => {
                    load(&mut actor, info.id, &public).map_err(|e| e.to_string())
                }
                PolicyKind::Auto { decode, .. } => {
                    let newest = &available[0];
                    match newest.state.as_deref().map(decode) {
                        Some(Ok(state)) => {
                            actor = state;
                            Ok(Some(newest.checkpoint_id))
                        }
                        Some(Err(e)) => Err(format!(
                            "state of checkpoint {} does not decode: {e}",
                            newest.checkpoint_id
                        )),
                        None => Err(format!("checkpoint {} has no state", newest.checkpoint_id)),
                    }
                }
            };
            match loaded {
                Ok(None) => return Ok((actor, None)),
                Ok(Some(id)) => {
                    if let Some(pos) = available.iter().position(|r| r.checkpoint_id == id) {
                        return Ok((actor, Some(available.swap_remove(pos))));
                    }
                    self.report(
                        info,
                        format!("load_checkpoint returned {id}, which is not one of the available checkpoints"),
                    );
                }
                Err(e) => self.report(info, format!("load_checkpoint failed: {e}")),
            }
            available.remove(0);
            actor = ctor.construct()?;
        }
        Ok((actor, None))
    }
}

/// The replay log (SEMANTICS §8): completed calls in execution order. While
/// under its cap it reaches back to creation, so every kept checkpoint can be
/// restored and replayed from, and replay from creation recovers the state
/// even when no checkpoint loads. Cost per logged call: 16 bytes in the
/// deque, and the call itself when its result holds no memory of its own
/// (a `u64`: the call's 144-byte allocation stays until the entry goes),
/// else a copy of its arguments in a new entry (the result, which may be
/// large, stays with the callers; see `CallBody::serves_as_entry`).
struct ReplayLog<A: 'static> {
    entries: VecDeque<Envelope<A>>,
    /// `None`: the log reaches back to creation. `Some(f)`: calls below `f`
    /// were dropped, so only checkpoints at or past `f` can be replayed from.
    floor: Option<FrontierSnapshot>,
    /// Past the cap a non-checkpointable actor stops logging.
    enabled: bool,
    cap: usize,
}

impl<A> ReplayLog<A> {
    /// Logs the finished call `env` (nothing if a checkpoint already
    /// `covered` it). Gives the envelope back, unless the call is kept in
    /// the log as it is: when its result holds no memory of its own (its
    /// refs then read it under the slot's lock; a rerun delivers nothing);
    /// otherwise the log takes a copy of its arguments, its results going
    /// nowhere, since the call's result slot belongs to the callers.
    fn record(&mut self, mut env: Envelope<A>, covered: bool) -> Option<Envelope<A>> {
        if covered {
            return Some(env);
        }
        if env.serves_as_entry() {
            self.entries.push_back(env);
            return None;
        }
        if let Some(entry) = env.replay_entry() {
            self.entries.push_back(entry);
        }
        Some(env)
    }

    /// Drops the calls at or below `f`, which becomes the new floor.
    fn truncate_to(&mut self, f: FrontierSnapshot) {
        self.entries
            .retain(|e| e.counter() >= f.next_expected(&e.handle()));
        self.floor = Some(f);
    }
}

/// Why a call did not complete normally.
pub(crate) enum Death<A: 'static> {
    /// The method panicked (the call has its error already).
    Panic(String),
    /// `kill(.., no_restart = false)` interrupted the call: run it again once
    /// the actor is back.
    Killed(Envelope<A>, String),
}

/// Where the async path takes over from [`ActorCore::admit_now`].
pub(crate) enum Step<A: 'static> {
    /// A ready call that needs the async path (it waits, or it is `async`).
    Run(Envelope<A>),
    /// The call of this handle died: rebuild, then go on.
    Died(ActorHandleId, Death<A>),
}

/// What a running call set up, undone by [`ActorCore::finish_call`].
struct CallScope {
    /// Timeline clock at the start (when the timeline records).
    t0: Option<u64>,
    /// The call's record, set on the thread (synchronous fast path) or on
    /// the actor task; the previous one is back at `restore` or drop.
    record: CallRecordGuard,
}

impl CallScope {
    // Forced: left to the compiler it stayed a call of its own.
    #[inline(always)]
    fn begin(
        info: &ActorInfo,
        cpu: bool,
        handle: &ActorHandleId,
        counter: u64,
        on_thread: bool,
    ) -> Self {
        let obs = &info.obs;
        if cpu {
            obs.set_cpu_held(true);
        }
        obs.running(true);
        // SAFETY: the info and the call (where `handle` lives) outlast the
        // scope, whose guard puts the previous record back before either
        // goes (`finish_call` and the plain path in `execute_now` do, first).
        let call = unsafe { CallRecord::new(&info.id, handle, counter) };
        CallScope {
            t0: obs.clock(),
            record: CallRecordGuard::set(call, on_thread),
        }
    }

    /// The `ray.call` span of `env`'s call (disabled unless a subscriber
    /// records DEBUG).
    #[inline(always)]
    fn span<A: 'static>(info: &ActorInfo, env: &Envelope<A>) -> tracing::Span {
        let desc = env.desc();
        tracing::debug_span!(
            "ray.call",
            class = desc.class_name,
            method = desc.name,
            actor_id = %info.id,
            handle_id = %env.handle_ref(),
            counter = env.counter(),
        )
    }

    /// [`begin`](Self::begin) for `env`'s call.
    #[inline(always)]
    fn of<A: 'static>(info: &ActorInfo, cpu: bool, env: &Envelope<A>, on_thread: bool) -> Self {
        Self::begin(info, cpu, env.handle_ref(), env.counter(), on_thread)
    }

    /// Puts the previous call's record back.
    #[inline(always)]
    fn restore(&self) {
        self.record.restore();
    }
}

/// A live actor: its state, its frontier, its checkpoint policy and its
/// replay log.
pub(crate) struct ActorCore<A: 'static> {
    pub(crate) actor: A,
    pub(crate) frontier: Frontier<Envelope<A>>,
    /// Boxed, as the log: most actors have neither, and the core is moved
    /// whole on its way into the driver.
    checkpointer: Option<Box<Checkpointer<A>>>,
    /// The constructor call, kept only while the actor can be rebuilt
    /// (restarts allowed): boxed then, and most actors never pay for it.
    ctor: Option<Box<dyn CtorBody<A>>>,
    restarts_left: u64,
    log: Option<Box<ReplayLog<A>>>,
    /// The checkpoint restored at creation (its frontier belongs to handles
    /// of an earlier program, so it is replayed from the start of the log).
    creation_checkpoint: Option<CheckpointId>,
    /// For actors declared without resources: the pool each method run takes
    /// 1 CPU from.
    pub(crate) cpu_per_call: Option<std::sync::Arc<crate::resources::ResourcePool>>,
    /// Whether this actor keeps the CPU of its last method run for the next
    /// one (see [`execute_now`](Self::execute_now)).
    cpu_kept: bool,
    /// Set by the actor task before each admission: whether more calls
    /// wait in the mailbox, so that a CPU is worth keeping.
    pub(crate) more_queued: bool,
}

impl<A: 'static> ActorCore<A> {
    /// Returns the CPU kept from the last method run to the pool, if any;
    /// says whether there was one.
    fn return_kept_cpu(&mut self) -> bool {
        if !std::mem::take(&mut self.cpu_kept) {
            return false;
        }
        if let Some(pool) = &self.cpu_per_call {
            pool.give_one_cpu();
        }
        true
    }
}

impl<A: 'static> Drop for ActorCore<A> {
    fn drop(&mut self) {
        self.return_kept_cpu();
    }
}

impl<A: ActorClass> ActorCore<A> {
    /// Builds the actor: constructor, then (for checkpointing classes) restore
    /// from the newest checkpoint that loads. At creation every handle is new,
    /// so the restored state is kept and the frontier starts fresh.
    pub(crate) fn build<C: CtorBody<A> + 'static>(
        info: &ActorInfo,
        ctor: C,
        max_reconstructions: u64,
    ) -> Result<Self, String> {
        let mut actor = ctor.construct()?;
        let mut frontier = Frontier::new();
        frontier.advance_to(ActorHandleId::NIL, 0);
        // The runtime only for a checkpointing or replaying actor: upgrading
        // writes its reference count, a cache line every actor would share.
        let policy = A::checkpoint_policy();
        let rt = if policy.is_some() || max_reconstructions > 0 {
            info.runtime()
        } else {
            None
        };
        let mut creation_checkpoint = None;
        let checkpointer = match (policy, &rt) {
            (Some(policy), Some(rt)) => {
                let keep = match &policy.kind {
                    PolicyKind::Auto { keep: Some(k), .. } => *k,
                    _ => rt.config.checkpoints_to_keep,
                };
                let c = Checkpointer {
                    policy,
                    keep,
                    ctx: CheckpointContext {
                        actor_id: info.id,
                        num_tasks_since_last_checkpoint: 0,
                        time_elapsed_ms_since_last_checkpoint: 0,
                    },
                    last: Stopwatch::started(),
                    taken: HashSet::new(),
                };
                // Only a named actor's ID can have checkpoints already (from
                // an earlier incarnation); an unnamed one's is fresh and
                // random, so the store (a lock shared by every actor) is not
                // asked.
                if info.obs.name.is_some() {
                    let available = rt.checkpoint_store().list(info.id).unwrap_or_else(|e| {
                        c.report(info, format!("could not list checkpoints: {e}"));
                        Vec::new()
                    });
                    let (restored, loaded) = c.restore(info, &ctor, actor, available)?;
                    actor = restored;
                    creation_checkpoint = loaded.map(|r| r.checkpoint_id);
                    c.expire(&mut actor, info);
                }
                Some(Box::new(c))
            }
            _ => None,
        };
        let log = (max_reconstructions > 0).then(|| {
            Box::new(ReplayLog {
                entries: VecDeque::new(),
                floor: None,
                enabled: true,
                cap: rt
                    .as_ref()
                    .map_or(usize::MAX, |rt| rt.config.max_replay_log),
            })
        });
        Ok(ActorCore {
            actor,
            frontier,
            checkpointer,
            ctor: (max_reconstructions > 0).then(|| Box::new(ctor) as Box<dyn CtorBody<A>>),
            restarts_left: max_reconstructions,
            log,
            creation_checkpoint,
            cpu_per_call: None,
            cpu_kept: false,
            more_queued: false,
        })
    }

    fn logging(&self) -> bool {
        self.log.as_ref().is_some_and(|l| l.enabled)
    }

    /// Runs one ready call: waits for its arguments (and its CPU), runs it,
    /// then [`finish_call`](Self::finish_call).
    pub(crate) async fn execute(
        &mut self,
        info: &ActorInfo,
        env: Envelope<A>,
    ) -> Result<(), Death<A>> {
        let mut env = env;
        if !env.is_ready() {
            env.wait_ready().await;
        }
        // A default actor's method run needs 1 CPU from the node.
        let cpu = match &self.cpu_per_call {
            Some(pool) => {
                let one = crate::resources::ResourceSet::one_cpu();
                Some(match pool.try_acquire(&one) {
                    Some(a) => a,
                    None => pool.acquire(one).await,
                })
            }
            None => None,
        };
        let keep_args = self.logging();
        let scope = CallScope::of(info, cpu.is_some(), &env, false);
        let span = CallScope::span(info, &env);
        let obs = &info.obs;
        let actor = &mut self.actor;
        let outcome = match span.in_scope(|| env.run(actor, keep_args)) {
            Running::Done(o) => {
                if let Some(cpu) = cpu {
                    drop(cpu);
                    obs.set_cpu_held(false);
                }
                Ok(o)
            }
            Running::Pending(f) => {
                // While the method awaits an object (say, another default
                // actor's result) its CPU goes back to the node, as in Ray's
                // `ray.get`; it is taken again before the method resumes.
                let f = HeldWhilePolled::new(f, cpu).tracking(&obs.cpu_held);
                let f = tracing::Instrument::instrument(f, span.clone());
                // An async call can be interrupted by a crash request.
                tokio::select! {
                    biased;
                    o = f => Ok(o),
                    cause = info.crash_requested() => {
                        let _ = info.take_crash_request();
                        Err(cause)
                    }
                }
            }
        };
        self.finish_call(info, env, outcome, keep_args, &scope)
    }

    /// The fast path of [`execute`](Self::execute), with no future at all: a
    /// synchronous method whose arguments are ready, whose CPU (if it needs
    /// one) is free now, with no crash pending, runs right here. Anything
    /// else is handed back for the async path.
    ///
    /// Inlined (into [`admit_now`](Self::admit_now)'s loop): as a call of
    /// its own, its prologue and the moves of the envelope through memory
    /// cost ~30 instructions per call (W1-W3, callgrind).
    #[inline(always)]
    fn execute_now(
        &mut self,
        info: &ActorInfo,
        env: Envelope<A>,
    ) -> Result<Result<(), Death<A>>, Envelope<A>> {
        let mut env = env;
        if env.desc().is_async || !env.is_ready() || info.crash_pending() {
            self.give_back_kept_cpu(info);
            return Err(env);
        }
        // A default actor's method run needs 1 CPU (no panic can skip the
        // give-back: the method's panics are caught). The CPU kept from the
        // previous run, if any, serves.
        let cpu = self.cpu_per_call.as_deref();
        if !std::mem::take(&mut self.cpu_kept) && cpu.is_some_and(|pool| !pool.try_take_one_cpu()) {
            return Err(env);
        }
        let keep_args = self.logging();
        let scope = CallScope::of(info, cpu.is_some(), &env, true);
        let actor = &mut self.actor;
        // The span only when it records: a disabled one still cost its
        // moves and its drop, ~54 instructions per call (W1-W3, callgrind).
        let outcome = match if tracing::enabled!(tracing::Level::DEBUG) {
            CallScope::span(info, &env).in_scope(|| env.run(actor, keep_args))
        } else {
            env.run(actor, keep_args)
        } {
            Running::Done(o) => o,
            Running::Pending(_) => unreachable!("a synchronous method ran asynchronously"),
        };
        if let Some(pool) = cpu {
            // Back-to-back calls: while more calls wait in the mailbox and
            // nobody waits for a CPU, the next run keeps this one instead of
            // giving it back and taking it again (two atomic operations on the
            // pool). Otherwise it goes back before the result is
            // delivered, so a caller that sees the result sees the CPU free.
            if self.more_queued && outcome.panic.is_none() && !pool.has_waiters() {
                self.cpu_kept = true;
            } else {
                pool.give_one_cpu();
                info.obs.set_cpu_held(false);
            }
        }
        // The plain case, which is most calls: it ran (or failed on its
        // own), no replay log or timeline to serve (a checkpoint policy gets
        // its turn here, taking a checkpoint out of line). The same steps
        // as `finish_call`'s, without its branches: ~50 instructions fewer
        // per call (callgrind, W1-W3). A log that passed its cap without a
        // checkpoint policy logs nothing more (`keep_args` is false), so
        // its actor's calls are plain from then on.
        if outcome.panic.is_none() && scope.t0.is_none() && !keep_args {
            scope.restore();
            if outcome.ran && self.checkpointer.is_some() {
                // Not logging, so not over a cap. The IDs are read here
                // (the handle's by reference, copied only for a checkpoint)
                // rather than kept from above: kept, they cost the calls of
                // actors without a policy ~20 instructions each.
                self.checkpoint_after_call(info, false, env.handle_ref(), env.counter());
            }
            // Counted before the caller can see the result.
            info.obs.running(false);
            let desc = env.desc();
            let (unseen, wake) = env.finish_last();
            if let Some(unseen) = unseen {
                report_unseen(info, desc, unseen);
            }
            drop(wake);
            return Ok(Ok(()));
        }
        Ok(self.finish_call(info, env, Ok(outcome), keep_args, &scope))
    }

    /// Gives back the CPU kept from the last method run, if any: before the
    /// actor task waits for anything (an empty mailbox, an argument, an
    /// async method, a rebuild), so that no CPU is held while idle.
    #[inline]
    pub(crate) fn give_back_kept_cpu(&mut self, info: &ActorInfo) {
        if self.return_kept_cpu() {
            info.obs.set_cpu_held(false);
        }
    }

    /// After a call ran (or was interrupted with `Err(cause)`): counters,
    /// timeline, checkpoint policy, result delivery, replay log.
    ///
    /// Inlined, with the scope borrowed: as a call of its own taking the
    /// scope it moved the scope, the outcome and the envelope through
    /// memory, ~140 instructions per call (W1, callgrind).
    #[inline]
    fn finish_call(
        &mut self,
        info: &ActorInfo,
        env: Envelope<A>,
        outcome: Result<Outcome, String>,
        keep_args: bool,
        scope: &CallScope,
    ) -> Result<(), Death<A>> {
        let mut env = env;
        let (handle, counter, desc) = (env.handle(), env.counter(), env.desc());
        let t0 = scope.t0;
        scope.restore();
        let obs = &info.obs;
        let outcome = match outcome {
            Ok(o) => o,
            Err(cause) if keep_args => {
                obs.interrupted();
                return Err(Death::Killed(env, cause));
            }
            Err(cause) => {
                // Without restarts there is nothing to retry on.
                obs.running(false);
                self.record_call(info, desc, t0, handle, counter, "killed");
                let _ = env.fail_unseen(info.died(cause.clone()));
                return Err(Death::Panic(cause));
            }
        };
        if let Some(p) = outcome.panic {
            obs.running(false);
            self.record_call(info, desc, t0, handle, counter, "panicked");
            let _ = env.finish();
            return Err(Death::Panic(format!(
                "method {}.{} panicked: {p}",
                desc.class_name, desc.name
            )));
        }
        let over_cap = self
            .log
            .as_ref()
            .is_some_and(|l| l.enabled && l.entries.len() >= l.cap);
        if outcome.ran && self.checkpointer.is_some() {
            self.checkpoint_after_call(info, over_cap, &handle, counter);
        }
        // Counted before the caller can see the result.
        obs.running(false);
        self.record_call(info, desc, t0, handle, counter, "ok");
        let (unseen, wake) = env.finish();
        if let Some(unseen) = unseen {
            report_unseen(info, desc, unseen);
        }
        let env = match &mut self.log {
            Some(log) if log.enabled => {
                // A checkpoint taken for this call already covers it.
                let covered = log
                    .floor
                    .as_ref()
                    .is_some_and(|f| counter < f.next_expected(&handle));
                let env = log.record(env, covered);
                if log.entries.len() > log.cap && self.checkpointer.is_none() {
                    log.enabled = false;
                    log.entries.clear();
                    log.floor = Some(self.frontier.snapshot());
                    info.report(
                        ErrorKind::ActorDied,
                        format!(
                            "the replay log passed its cap of {} calls: this actor stops logging and, if it crashes, restarts from its constructor alone",
                            log.cap
                        ),
                    );
                }
                env
            }
            _ => Some(env),
        };
        // The caller's wake-up last, once this side let go of the call: a
        // caller dropping its ref frees the call and its result at once.
        drop(env);
        drop(wake);
        Ok(())
    }

    /// The checkpoint policy's turn after a call that ran (`over_cap`: the
    /// replay log is full, which forces a checkpoint). The policy's check is
    /// inlined here; taking a checkpoint is out of line.
    #[inline(always)]
    fn checkpoint_after_call(
        &mut self,
        info: &ActorInfo,
        over_cap: bool,
        handle: &ActorHandleId,
        counter: u64,
    ) {
        if let Some(c) = &mut self.checkpointer {
            if c.due(&mut self.actor, over_cap) {
                self.checkpoint_now(info, *handle, counter);
            }
        }
    }

    /// Takes the checkpoint the policy found due.
    #[inline(never)]
    fn checkpoint_now(&mut self, info: &ActorInfo, handle: ActorHandleId, counter: u64) {
        if let Some(c) = &mut self.checkpointer {
            // The frontier including the call just finished.
            let mut frontier = self.frontier.snapshot();
            frontier.next.insert(handle, counter + 1);
            if let Some(record) = c.take_due(&mut self.actor, info, frontier) {
                c.taken.insert(record.checkpoint_id);
                self.after_checkpoint(record);
            }
        }
    }

    /// The timeline event of one method execution that started at `t0`.
    #[inline]
    fn record_call(
        &self,
        info: &ActorInfo,
        desc: &'static MethodDescriptor,
        t0: Option<u64>,
        handle: ActorHandleId,
        counter: u64,
        outcome: &'static str,
    ) {
        // `t0` is set only while the timeline records: nothing else to do
        // (not even copying the IDs) without it.
        if t0.is_none() {
            return;
        }
        let name = EventName::Method(desc.class_name, desc.name);
        info.obs.event_since(info.id, t0, name, "method", || {
            vec![
                ("handle_id", handle.to_string().into()),
                ("counter", counter.to_string().into()),
                ("outcome", outcome.into()),
            ]
        });
    }

    /// After a checkpoint. The log keeps reaching back to creation while it
    /// is under its cap (so even when no checkpoint loads, replay from
    /// creation recovers the state); past the cap, the checkpoint just taken
    /// (a forced one) becomes its floor.
    fn after_checkpoint(&mut self, record: CheckpointRecord) {
        if let Some(log) = &mut self.log {
            if log.entries.len() >= log.cap {
                log.truncate_to(record.frontier);
            }
        }
    }

    /// Handles a crash requested while idle (`kill(.., false)`).
    pub(crate) async fn crash_if_requested(&mut self, info: &ActorInfo) -> Result<(), Error> {
        match info.take_crash_request() {
            // Boxed: rebuilding is rare and its future large, and this one
            // is awaited inside every actor task's loop.
            Some(cause) => {
                self.give_back_kept_cpu(info);
                Box::pin(self.rebuild_or_die(info, cause)).await
            }
            None => Ok(()),
        }
    }

    /// Offers a call to the frontier and runs it, and every buffered call it
    /// unblocks, in order, without a future for as long as calls take the
    /// synchronous fast path ([`execute_now`](Self::execute_now)). `Some`:
    /// where the async path ([`resume`](Self::resume)) must take over; `Err`
    /// means the actor is dead.
    pub(crate) fn admit_now(
        &mut self,
        info: &ActorInfo,
        env: Envelope<A>,
    ) -> Result<Option<Step<A>>, Error> {
        // The lane is found once per call: its key stands for the handle's
        // ID from the offer to the completion.
        let lane = self.frontier.lane_key(env.handle_ref());
        let mut next = match self.frontier.offer_in(&lane, env.counter(), env) {
            Offer::Ready(env) => Some(env),
            Offer::Buffered => None,
            // A duplicate never runs twice; dropping it drops only its own
            // result senders.
            Offer::Duplicate(_) => None,
        };
        while let Some(env) = next {
            if info.stop_requested() {
                env.fail(info.death_error(), info);
                return Err(info.death_error());
            }
            match self.execute_now(info, env) {
                Err(env) => return Ok(Some(Step::Run(env))),
                Ok(Ok(())) => next = self.frontier.complete_in(&lane),
                Ok(Err(death)) => {
                    return Ok(Some(Step::Died(self.frontier.handle_of(&lane), death)))
                }
            }
        }
        Ok(None)
    }

    /// Continues from `step` (a ready call the fast path declined, or a
    /// call's death) through every call it unblocks. `Err` means the actor
    /// is dead.
    pub(crate) async fn resume(&mut self, info: &ActorInfo, step: Step<A>) -> Result<(), Error> {
        self.give_back_kept_cpu(info);
        let mut step = step;
        // `execute_now` already declined the call `step` carries.
        let mut declined = true;
        loop {
            let (handle, result) = match step {
                Step::Died(handle, death) => (handle, Err(death)),
                Step::Run(env) => {
                    if info.stop_requested() {
                        env.fail(info.death_error(), info);
                        return Err(info.death_error());
                    }
                    if info.crash_pending() {
                        self.crash_if_requested(info).await?;
                    }
                    let handle = env.handle();
                    let r = if declined {
                        self.execute(info, env).await
                    } else {
                        match self.execute_now(info, env) {
                            Ok(r) => r,
                            Err(env) => self.execute(info, env).await,
                        }
                    };
                    (handle, r)
                }
            };
            let next = match result {
                Ok(()) => self.frontier.complete(&handle),
                Err(Death::Panic(cause)) => {
                    Box::pin(self.rebuild_or_die(info, cause)).await?;
                    // The panicking call failed and is not replayed.
                    self.frontier.complete(&handle)
                }
                Err(Death::Killed(env, cause)) => {
                    match Box::pin(self.rebuild_or_die(info, cause)).await {
                        // The interrupted call runs again on the rebuilt actor.
                        Ok(()) => Some(env),
                        Err(e) => {
                            env.fail(e.clone(), info);
                            return Err(e);
                        }
                    }
                }
            };
            match next {
                Some(env) => step = Step::Run(env),
                None => return Ok(()),
            }
            declined = false;
        }
    }

    /// Runs a call synchronously (local mode). A synchronous method with its
    /// arguments at hand runs right here; an `async` one is driven by the
    /// runtime's local-mode helper, which also drives its timers.
    pub(crate) fn admit_blocking(
        &mut self,
        info: &ActorInfo,
        env: Envelope<A>,
    ) -> Result<(), Error> {
        let Some(step) = self.admit_now(info, env)? else {
            return Ok(());
        };
        match info.runtime() {
            Some(rt) => rt.block_local(self.resume(info, step)),
            None => block_on(self.resume(info, step)),
        }
    }

    /// The actor died of `cause`: rebuild it if it has restarts left,
    /// otherwise record the death (`Err`: every later call gets it).
    async fn rebuild_or_die(&mut self, info: &ActorInfo, cause: String) -> Result<(), Error> {
        let mut cause = cause;
        loop {
            if self.restarts_left == 0 {
                let err = info.set_dead(info.died(cause));
                info.report(ErrorKind::ActorDied, err.to_string());
                return Err(err);
            }
            self.restarts_left -= 1;
            info.report(
                ErrorKind::ActorDied,
                format!(
                    "actor {}({}) crashed ({cause}); reconstructing it, {} restart(s) left after this one",
                    A::NAME,
                    info.id,
                    self.restarts_left
                ),
            );
            info.note_restart();
            info.obs.set_restarting();
            tracing::warn!(
                class = A::NAME,
                actor_id = %info.id,
                %cause,
                restarts_left = self.restarts_left,
                "ray: actor restarting"
            );
            let t0 = info.obs.clock();
            let rebuilt = self.rebuild(info).await;
            info.obs
                .event_since(info.id, t0, EventName::Static("restart"), "restart", || {
                    let outcome = match &rebuilt {
                        Ok(()) => "ok".into(),
                        Err(e) => format!("failed: {e}").into(),
                    };
                    vec![("cause", cause.clone().into()), ("outcome", outcome)]
                });
            match rebuilt {
                Ok(()) => {
                    info.obs.set_alive();
                    return Ok(());
                }
                Err(again) => cause = again,
            }
        }
    }

    /// Constructor, restore, replay. `Err(cause)` when the rebuild itself
    /// failed (constructor error, a replayed call panicking).
    async fn rebuild(&mut self, info: &ActorInfo) -> Result<(), String> {
        let t0 = info.obs.clock();
        // Kept whenever restarts are allowed, which is when this runs.
        let ctor = self
            .ctor
            .as_deref()
            .ok_or("internal: no constructor kept to rebuild the actor with (please report)")?;
        let fresh = ctor.construct()?;
        let mut restored = None;
        let actor = match &self.checkpointer {
            Some(c) => {
                let available: Vec<CheckpointRecord> = store_of(info)
                    .and_then(|s| s.list(info.id).map_err(|e| e.to_string()))
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|r| self.replayable_from(r))
                    .collect();
                let (actor, loaded) = c.restore(info, ctor, fresh, available)?;
                restored = loaded;
                actor
            }
            None => fresh,
        };
        self.actor = actor;
        info.obs
            .event_since(info.id, t0, EventName::Static("restore"), "restart", || {
                let from = match &restored {
                    Some(r) => r.checkpoint_id.to_string().into(),
                    None => "constructor".into(),
                };
                vec![("from", from)]
            });
        let from_start = match &restored {
            Some(r) => Some(r.checkpoint_id) == self.creation_checkpoint,
            None => self.creation_checkpoint.is_none(),
        };
        let Some(log) = &mut self.log else {
            return Ok(());
        };
        let reaches = log.enabled && log.floor.is_none();
        if restored.is_none() && !(from_start && reaches) {
            info.report(
                ErrorKind::ActorDied,
                format!(
                    "actor {}({}) restarted from its constructor alone: no checkpoint loaded and the replay log no longer reaches back to creation, so its earlier state is lost",
                    A::NAME,
                    info.id
                ),
            );
            log.entries.clear();
            log.floor = Some(self.frontier.snapshot());
            return Ok(());
        }
        let after = match (&restored, from_start) {
            (Some(r), false) => Some(r.frontier.clone()),
            _ => None,
        };
        let entries = std::mem::take(&mut log.entries);
        let t1 = info.obs.clock();
        let mut replayed = 0u64;
        let mut kept = VecDeque::with_capacity(entries.len());
        for mut e in entries {
            let replay = after
                .as_ref()
                .is_none_or(|f| e.counter() >= f.next_expected(&e.handle()));
            if replay {
                // SAFETY: `info` and the entry outlast the replayed call,
                // after which (or when this future is dropped) the guard
                // puts the previous record back.
                let record = unsafe { CallRecord::new(&info.id, e.handle_ref(), e.counter()) };
                let guard = CallRecordGuard::set(record, false);
                let outcome = match e.run(&mut self.actor, true) {
                    Running::Done(o) => o,
                    Running::Pending(f) => f.await,
                };
                drop(guard);
                replayed += 1;
                if let Some(p) = outcome.panic {
                    return Err(format!(
                        "replaying {}.{} panicked: {p}",
                        e.desc().class_name,
                        e.desc().name
                    ));
                }
                drop(e.finish());
                if !e.has_args() {
                    continue;
                }
            }
            kept.push_back(e);
        }
        if let Some(log) = &mut self.log {
            log.entries = kept;
        }
        info.obs
            .event_since(info.id, t1, EventName::Static("replay"), "restart", || {
                vec![("calls", replayed.to_string().into())]
            });
        Ok(())
    }

    /// Whether the log can rebuild the state from checkpoint `r`.
    fn replayable_from(&self, r: &CheckpointRecord) -> bool {
        let Some(log) = &self.log else {
            // Without a log, any checkpoint is as good as it gets.
            return true;
        };
        if Some(r.checkpoint_id) == self.creation_checkpoint {
            return log.enabled && log.floor.is_none();
        }
        self.checkpointer
            .as_ref()
            .is_some_and(|c| c.taken.contains(&r.checkpoint_id))
            && log.enabled
            && log.floor.as_ref().is_none_or(|f| covers(&r.frontier, f))
    }
}

/// Reports the error of a call whose results nobody can see (fire and
/// forget), which would otherwise be lost.
#[cold]
#[inline(never)]
fn report_unseen(info: &ActorInfo, desc: &MethodDescriptor, unseen: Box<Error>) {
    info.report(
        ErrorKind::TaskFailed,
        format!(
            "fire-and-forget call {}.{} failed: {unseen}",
            desc.class_name, desc.name
        ),
    );
}
