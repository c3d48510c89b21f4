//! The actor task: calls in the mailbox, the actor core that runs them one at
//! a time in frontier order, the checkpoint policy around each call, and the
//! restore at creation.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use crate::actor::{ActorClass, ActorInfo};
use crate::block::{block_on, catch_unwind, panic_message};
use crate::call::{ArgTuple, BoxFuture, MethodDescriptor, Returns};
use crate::checkpoint::{
    Checkpoint, CheckpointContext, CheckpointPolicy, CheckpointRecord, CheckpointStore, PolicyKind,
};
use crate::error::{Error, Result};
use crate::executor::{Frontier, Offer};
use crate::ids::{ActorHandleId, CheckpointId};
use crate::runtime::{self, CallInfo, ErrorKind};

/// What running a call's method did.
pub(crate) struct Outcome {
    /// Whether the method ran (a failed dependency skips it).
    ran: bool,
    /// The panic message, when the method panicked.
    panic: Option<String>,
}

pub(crate) enum Running<'a> {
    Done(Outcome),
    Pending(BoxFuture<'a, Outcome>),
}

/// A type-erased call on an actor of type `A`. `run` keeps the result;
/// `finish` delivers it, so results reach callers after the checkpoint hooks.
pub(crate) trait CallBody<A>: Send {
    fn is_ready(&self) -> bool;
    fn wait_ready(&self) -> BoxFuture<'static, ()>;
    fn run<'a>(&'a mut self, actor: &'a mut A, desc: &'static MethodDescriptor) -> Running<'a>;
    /// Delivers the result; returns an error no caller can see (fire and forget).
    fn finish(self: Box<Self>) -> Option<Error>;
    /// Fails the call unrun; returns the error if no caller can see it.
    fn fail(self: Box<Self>, err: Error) -> Option<Error>;
}

/// How a generated stub runs its method.
pub enum Invoke<A, V, P> {
    /// A synchronous method.
    Sync(fn(&mut A, V) -> std::result::Result<P, String>),
    /// An `async fn` method.
    Async(for<'a> fn(&'a mut A, V) -> BoxFuture<'a, std::result::Result<P, String>>),
}

impl<A, V, P> std::fmt::Debug for Invoke<A, V, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Invoke::Sync(_) => "Invoke::Sync",
            Invoke::Async(_) => "Invoke::Async",
        })
    }
}

pub(crate) struct MethodCall<A, Args: ArgTuple, R: Returns> {
    args: Option<Args>,
    sink: R::Sink,
    invoke: Invoke<A, Args::Values, R::Payload>,
    result: Option<Result<R::Payload>>,
}

impl<A, Args: ArgTuple, R: Returns> MethodCall<A, Args, R> {
    pub(crate) fn new(
        args: Args,
        sink: R::Sink,
        invoke: Invoke<A, Args::Values, R::Payload>,
    ) -> Self {
        MethodCall {
            args: Some(args),
            sink,
            invoke,
            result: None,
        }
    }
}

fn task_error(desc: &MethodDescriptor, message: String) -> Error {
    Error::Task {
        class: desc.class_name.to_owned(),
        method: desc.name.to_owned(),
        message,
    }
}

fn settle<P>(
    desc: &MethodDescriptor,
    r: std::result::Result<std::result::Result<P, String>, String>,
) -> (Result<P>, Outcome) {
    match r {
        Ok(Ok(v)) => (
            Ok(v),
            Outcome {
                ran: true,
                panic: None,
            },
        ),
        Ok(Err(m)) => (
            Err(task_error(desc, m)),
            Outcome {
                ran: true,
                panic: None,
            },
        ),
        Err(p) => (
            Err(task_error(desc, format!("panicked: {p}"))),
            Outcome {
                ran: true,
                panic: Some(p),
            },
        ),
    }
}

impl<A: Send + 'static, Args: ArgTuple, R: Returns> CallBody<A> for MethodCall<A, Args, R> {
    fn is_ready(&self) -> bool {
        self.args.as_ref().is_none_or(|a| a.is_ready())
    }

    fn wait_ready(&self) -> BoxFuture<'static, ()> {
        match &self.args {
            Some(a) => a.wait_ready(),
            None => Box::pin(async {}),
        }
    }

    fn run<'a>(&'a mut self, actor: &'a mut A, desc: &'static MethodDescriptor) -> Running<'a> {
        let values = match self.args.take().map(ArgTuple::take) {
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                self.result = Some(Err(e));
                return Running::Done(Outcome {
                    ran: false,
                    panic: None,
                });
            }
            None => {
                self.result = Some(Err(Error::invalid(
                    "internal: a call ran twice (please report)",
                )));
                return Running::Done(Outcome {
                    ran: false,
                    panic: None,
                });
            }
        };
        match self.invoke {
            Invoke::Sync(f) => {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(actor, values)))
                    .map_err(|p| panic_message(&*p));
                let (result, outcome) = settle(desc, r);
                self.result = Some(result);
                Running::Done(outcome)
            }
            Invoke::Async(f) => Running::Pending(Box::pin(async move {
                let r = catch_unwind(f(actor, values)).await;
                let (result, outcome) = settle(desc, r);
                self.result = Some(result);
                outcome
            })),
        }
    }

    fn finish(self: Box<Self>) -> Option<Error> {
        let result = self.result.unwrap_or_else(|| {
            Err(Error::invalid(
                "internal: a call finished without running (please report)",
            ))
        });
        R::deliver(self.sink, result)
    }

    fn fail(self: Box<Self>, err: Error) -> Option<Error> {
        R::deliver(self.sink, Err(err))
    }
}

/// One call in the mailbox. Dropped unrun (its actor task dropped with its
/// runtime), its results fail through their senders' drop (`Error::ObjectLost`).
pub(crate) struct Envelope<A: 'static> {
    pub(crate) handle: ActorHandleId,
    pub(crate) counter: u64,
    pub(crate) desc: &'static MethodDescriptor,
    pub(crate) body: Box<dyn CallBody<A>>,
}

impl<A> Envelope<A> {
    /// Fails the call with `err` (reporting it if no caller can see it).
    pub(crate) fn fail(self, err: Error, info: &ActorInfo) {
        if let Some(unseen) = self.body.fail(err) {
            info.report(
                ErrorKind::TaskFailed,
                format!(
                    "{}.{} was not run: {unseen}",
                    self.desc.class_name, self.desc.name
                ),
            );
        }
    }
}

pub(crate) enum Msg<A: 'static> {
    Call(Envelope<A>),
    /// Wakes the task to look at its stop flag.
    Wake,
}

/// The constructor call (counter 0 of the original handle). It can run more
/// than once: restore falls back to a fresh construction.
pub(crate) struct CtorCall<A, Args: ArgTuple> {
    pub(crate) args: Args,
    pub(crate) ctor: fn(Args::Values) -> std::result::Result<A, String>,
}

pub(crate) trait CtorBody<A>: Send {
    fn wait_ready(&self) -> Option<BoxFuture<'static, ()>>;
    fn construct(&self) -> std::result::Result<A, String>;
}

impl<A: Send + 'static, Args: ArgTuple> CtorBody<A> for CtorCall<A, Args> {
    fn wait_ready(&self) -> Option<BoxFuture<'static, ()>> {
        (!self.args.is_ready()).then(|| self.args.wait_ready())
    }

    fn construct(&self) -> std::result::Result<A, String> {
        let values = self
            .args
            .duplicate()
            .take()
            .map_err(|e| format!("a constructor argument failed: {e}"))?;
        let ctor = self.ctor;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ctor(values))) {
            Ok(r) => r,
            Err(p) => Err(format!("the constructor panicked: {}", panic_message(&*p))),
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The checkpoint policy of one live actor.
struct Checkpointer<A> {
    policy: CheckpointPolicy<A>,
    store: Arc<dyn CheckpointStore>,
    keep: usize,
    since: u64,
    last: Instant,
}

impl<A> Checkpointer<A> {
    fn report(&self, info: &ActorInfo, msg: String) {
        info.report(ErrorKind::Checkpoint, msg);
    }

    /// Reports (once) every expired checkpoint, then forgets it.
    fn expire(&self, actor: &mut A, info: &ActorInfo) {
        let expired = match self.store.expire(info.id, self.keep) {
            Ok(v) => v,
            Err(e) => return self.report(info, format!("could not expire checkpoints: {e}")),
        };
        for id in expired {
            if let PolicyKind::Hooks { expired, .. } = &self.policy.kind {
                if let Err(e) = expired(actor, info.id, id) {
                    self.report(info, format!("checkpoint_expired({id}) failed: {e}"));
                }
            }
            if let Err(e) = self.store.forget(info.id, id) {
                self.report(
                    info,
                    format!("could not forget expired checkpoint {id}: {e}"),
                );
            }
        }
    }

    /// The policy after one completed call.
    fn after_call(
        &mut self,
        actor: &mut A,
        info: &ActorInfo,
        frontier: impl FnOnce() -> crate::executor::FrontierSnapshot,
    ) {
        self.since += 1;
        let ctx = CheckpointContext {
            actor_id: info.id,
            num_tasks_since_last_checkpoint: self.since,
            time_elapsed_ms_since_last_checkpoint: self.last.elapsed().as_millis() as u64,
        };
        let (take, state) = match &self.policy.kind {
            PolicyKind::Hooks { should, .. } => (should(actor, &ctx), None),
            PolicyKind::Auto {
                every_calls,
                every_ms,
                encode,
                ..
            } => {
                let due = every_calls.is_some_and(|n| ctx.num_tasks_since_last_checkpoint >= n)
                    || every_ms.is_some_and(|t| ctx.time_elapsed_ms_since_last_checkpoint >= t);
                if !due {
                    return;
                }
                match encode(actor) {
                    Ok(bytes) => (true, Some(bytes)),
                    Err(e) => {
                        self.report(info, format!("could not encode the actor's state: {e}"));
                        return;
                    }
                }
            }
        };
        if !take {
            return;
        }
        let record = CheckpointRecord {
            checkpoint_id: CheckpointId::random(),
            timestamp: now_ms(),
            frontier: frontier(),
            state,
        };
        let id = record.checkpoint_id;
        if let Err(e) = self.store.begin(info.id, &record) {
            return self.report(info, format!("could not record checkpoint {id}: {e}"));
        }
        let saved = match &self.policy.kind {
            PolicyKind::Hooks { save, .. } => save(actor, info.id, id).map_err(|e| e.to_string()),
            PolicyKind::Auto { .. } => Ok(()),
        };
        match saved.and_then(|()| self.store.commit(info.id, id).map_err(|e| e.to_string())) {
            Ok(()) => {
                self.expire(actor, info);
                self.since = 0;
                self.last = Instant::now();
            }
            Err(e) => {
                self.report(info, format!("save_checkpoint({id}) failed: {e}"));
                let _ = self.store.forget(info.id, id);
            }
        }
    }
}

/// A live actor: its state, its frontier and its checkpoint policy.
pub(crate) struct ActorCore<A: 'static> {
    pub(crate) actor: A,
    pub(crate) frontier: Frontier<Envelope<A>>,
    checkpointer: Option<Checkpointer<A>>,
}

impl<A: ActorClass> ActorCore<A> {
    /// Builds the actor: constructor, then (for checkpointing classes) restore
    /// from the newest checkpoint that loads, falling back to older ones and
    /// to a fresh construction. At creation every handle is new, so the
    /// restored state is kept and the frontier starts fresh.
    pub(crate) fn build(
        info: &ActorInfo,
        ctor: &dyn CtorBody<A>,
    ) -> std::result::Result<Self, String> {
        let mut actor = ctor.construct()?;
        let mut frontier = Frontier::new();
        frontier.advance_to(ActorHandleId::NIL, 0);
        let checkpointer = match (A::checkpoint_policy(), info.runtime()) {
            (Some(policy), Some(rt)) => {
                let keep = match &policy.kind {
                    PolicyKind::Auto { keep: Some(k), .. } => *k,
                    _ => rt.config.checkpoints_to_keep,
                };
                let c = Checkpointer {
                    policy,
                    store: rt.checkpoint_store(),
                    keep,
                    since: 0,
                    last: Instant::now(),
                };
                actor = restore(&c, info, ctor, actor)?;
                c.expire(&mut actor, info);
                Some(c)
            }
            _ => None,
        };
        Ok(ActorCore {
            actor,
            frontier,
            checkpointer,
        })
    }

    /// Runs one ready call: waits for its arguments, runs it, runs the
    /// checkpoint policy, then delivers the result. `Err` means the actor died
    /// (the method panicked); the call itself has its error.
    pub(crate) async fn execute(
        &mut self,
        info: &ActorInfo,
        env: Envelope<A>,
    ) -> std::result::Result<(), Error> {
        let Envelope {
            handle,
            counter,
            desc,
            mut body,
        } = env;
        if !body.is_ready() {
            body.wait_ready().await;
        }
        let outer = runtime::swap_current_call(Some(CallInfo {
            actor: info.id,
            handle,
            counter,
        }));
        let outcome = match body.run(&mut self.actor, desc) {
            Running::Done(o) => o,
            Running::Pending(f) => f.await,
        };
        runtime::swap_current_call(outer);
        if let Some(p) = &outcome.panic {
            let _ = body.finish();
            let err = info.set_dead(info.died(format!(
                "method {}.{} panicked: {p}",
                desc.class_name, desc.name
            )));
            info.report(ErrorKind::ActorDied, err.to_string());
            return Err(err);
        }
        if outcome.ran {
            if let Some(c) = &mut self.checkpointer {
                let frontier = &self.frontier;
                c.after_call(&mut self.actor, info, || {
                    // The frontier including the call just finished.
                    let mut snapshot = frontier.snapshot();
                    snapshot.next.insert(handle, counter + 1);
                    snapshot
                });
            }
        }
        if let Some(unseen) = body.finish() {
            info.report(
                ErrorKind::TaskFailed,
                format!(
                    "fire-and-forget call {}.{} failed: {unseen}",
                    desc.class_name, desc.name
                ),
            );
        }
        Ok(())
    }

    /// Offers a call to the frontier and runs it, and every buffered call it
    /// unblocks, in order. `Err` means the actor died.
    pub(crate) async fn admit(
        &mut self,
        info: &ActorInfo,
        env: Envelope<A>,
    ) -> std::result::Result<(), Error> {
        let mut next = match self.frontier.offer(env.handle, env.counter, env) {
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
            let handle = env.handle;
            self.execute(info, env).await?;
            next = self.frontier.complete(&handle);
        }
        Ok(())
    }

    /// Runs a call synchronously (local mode).
    pub(crate) fn admit_blocking(
        &mut self,
        info: &ActorInfo,
        env: Envelope<A>,
    ) -> std::result::Result<(), Error> {
        block_on(self.admit(info, env))
    }
}

/// Restore (SEMANTICS §7): offer the usable checkpoints newest first; on an
/// error, or an ID not in the list, report it, construct afresh and offer the
/// list without its newest entry, until one loads or none is left.
fn restore<A: ActorClass>(
    c: &Checkpointer<A>,
    info: &ActorInfo,
    ctor: &dyn CtorBody<A>,
    mut actor: A,
) -> std::result::Result<A, String> {
    let mut available = match c.store.list(info.id) {
        Ok(v) => v,
        Err(e) => {
            c.report(info, format!("could not list checkpoints: {e}"));
            return Ok(actor);
        }
    };
    while !available.is_empty() {
        let public: Vec<Checkpoint> = available.iter().map(CheckpointRecord::checkpoint).collect();
        let loaded: std::result::Result<Option<CheckpointId>, String> = match &c.policy.kind {
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
            Ok(None) => return Ok(actor),
            Ok(Some(id)) if available.iter().any(|r| r.checkpoint_id == id) => return Ok(actor),
            Ok(Some(id)) => c.report(
                info,
                format!(
                    "load_checkpoint returned {id}, which is not one of the available checkpoints"
                ),
            ),
            Err(e) => c.report(info, format!("load_checkpoint failed: {e}")),
        }
        available.remove(0);
        actor = ctor.construct()?;
    }
    Ok(actor)
}

/// The actor task: build, run calls until every handle is gone, a stop is
/// requested or a method panics, then fail whatever is left.
pub(crate) async fn actor_main<A: ActorClass>(
    info: Arc<ActorInfo>,
    mut rx: mpsc::UnboundedReceiver<Msg<A>>,
    ctor: Box<dyn CtorBody<A>>,
) {
    if let Some(wait) = ctor.wait_ready() {
        wait.await;
    }
    let mut leftovers = Vec::new();
    match ActorCore::build(&info, &*ctor) {
        Ok(mut core) => {
            run_calls(&info, &mut core, &mut rx).await;
            leftovers = core.frontier.drain();
            drop(core);
        }
        Err(message) => {
            let err = info.set_dead(Error::ActorCreationFailed {
                class: A::NAME.to_owned(),
                actor_id: info.id,
                message,
            });
            info.report(ErrorKind::ActorDied, err.to_string());
        }
    }
    rx.close();
    let err = info.death_error();
    for env in leftovers {
        env.fail(err.clone(), &info);
    }
    while let Some(msg) = rx.recv().await {
        if let Msg::Call(env) = msg {
            env.fail(err.clone(), &info);
        }
    }
    if let Some(rt) = info.runtime() {
        rt.unregister(&info.id);
    }
}

async fn run_calls<A: ActorClass>(
    info: &ActorInfo,
    core: &mut ActorCore<A>,
    rx: &mut mpsc::UnboundedReceiver<Msg<A>>,
) {
    while let Some(msg) = rx.recv().await {
        let stop = info.stop_requested();
        let env = match msg {
            Msg::Call(env) if stop => {
                env.fail(info.death_error(), info);
                return;
            }
            Msg::Call(env) => env,
            Msg::Wake if stop => return,
            Msg::Wake => continue,
        };
        if core.admit(info, env).await.is_err() {
            return;
        }
    }
    if !info.stop_requested() {
        info.set_dead(info.died("every handle to the actor was dropped"));
    }
}
