//! The actor task and what flows through it: type-erased calls (run, then
//! deliver), mailbox envelopes, the constructor call. The actor core that
//! runs calls in order, checkpoints and rebuilds lives in `core.rs`.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::actor::{ActorClass, ActorInfo};
use crate::block::{catch_unwind, panic_message};
use crate::call::{ArgTuple, BoxFuture, MethodDescriptor, Returns};
pub(crate) use crate::core::ActorCore;
use crate::error::{Error, Result};
use crate::ids::ActorHandleId;
use crate::observe::EventName;
use crate::runtime::ErrorKind;

/// What running a call's method did.
pub(crate) struct Outcome {
    /// Whether the method ran (a failed dependency skips it).
    pub(crate) ran: bool,
    /// The panic message, when the method panicked.
    pub(crate) panic: Option<String>,
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
    /// Runs the method. With `keep_args` the arguments are copied, not
    /// consumed, so the call can run again (retry after a kill, replay).
    fn run<'a>(
        &'a mut self,
        actor: &'a mut A,
        desc: &'static MethodDescriptor,
        keep_args: bool,
    ) -> Running<'a>;
    /// Delivers the result (once; later its results go nowhere). Returns an
    /// error no caller can see (fire and forget), and whether the arguments
    /// were kept, i.e. whether the call can run again as a replay entry.
    fn finish(&mut self) -> (Option<Error>, bool);
    /// Fails the call unrun; returns the error if no caller can see it.
    fn fail(&mut self, err: Error) -> Option<Error>;
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
    /// `None` for a replay entry: its results go nowhere.
    sink: Option<R::Sink>,
    invoke: Invoke<A, Args::Values, R::Payload>,
    /// Kept between `run` and `finish`; the error boxed to keep calls small.
    result: Option<std::result::Result<R::Payload, Box<Error>>>,
}

impl<A, Args: ArgTuple, R: Returns> MethodCall<A, Args, R> {
    pub(crate) fn new(
        args: Args,
        sink: R::Sink,
        invoke: Invoke<A, Args::Values, R::Payload>,
    ) -> Self {
        MethodCall {
            args: Some(args),
            sink: Some(sink),
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

    fn run<'a>(
        &'a mut self,
        actor: &'a mut A,
        desc: &'static MethodDescriptor,
        keep_args: bool,
    ) -> Running<'a> {
        let taken = if keep_args {
            self.args.as_ref().map(|a| a.duplicate().take())
        } else {
            self.args.take().map(ArgTuple::take)
        };
        let values = match taken {
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                self.result = Some(Err(Box::new(e)));
                return Running::Done(Outcome {
                    ran: false,
                    panic: None,
                });
            }
            None => {
                self.result = Some(Err(Box::new(Error::invalid(
                    "internal: a call ran twice (please report)",
                ))));
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
                self.result = Some(result.map_err(Box::new));
                Running::Done(outcome)
            }
            Invoke::Async(f) => Running::Pending(Box::pin(async move {
                let r = catch_unwind(f(actor, values)).await;
                let (result, outcome) = settle(desc, r);
                self.result = Some(result.map_err(Box::new));
                outcome
            })),
        }
    }

    fn finish(&mut self) -> (Option<Error>, bool) {
        let result = match self.result.take() {
            Some(r) => r.map_err(|e| *e),
            None => Err(Error::invalid(
                "internal: a call finished without running (please report)",
            )),
        };
        let unseen = match self.sink.take() {
            Some(sink) => R::deliver(sink, result),
            None => None,
        };
        (unseen, self.args.is_some())
    }

    fn fail(&mut self, err: Error) -> Option<Error> {
        self.sink.take().and_then(|sink| R::deliver(sink, Err(err)))
    }
}

/// One call: which handle sent it, its place in that handle's order, the
/// method, and its body, in one allocation.
pub(crate) struct CallBox<B: ?Sized> {
    pub(crate) handle: ActorHandleId,
    pub(crate) counter: u64,
    pub(crate) desc: &'static MethodDescriptor,
    pub(crate) body: B,
}

/// One call in the mailbox, the reorder buffer or the replay log: a single
/// pointer, so a mailbox slot stays small. Dropped unrun (its actor task
/// dropped with its runtime), its results fail through their senders' drop
/// (`Error::ObjectLost`).
pub(crate) type Envelope<A> = Box<CallBox<dyn CallBody<A>>>;

/// A new envelope for `body`, sent by `handle` (its counter set at the send).
pub(crate) fn envelope<A, B: CallBody<A> + 'static>(
    handle: ActorHandleId,
    desc: &'static MethodDescriptor,
    body: B,
) -> Envelope<A> {
    Box::new(CallBox {
        handle,
        counter: 0,
        desc,
        body,
    })
}

impl<A> CallBox<dyn CallBody<A>> {
    /// Fails the call with `err` (reporting it if no caller can see it). It
    /// takes the envelope, which ends here.
    #[allow(clippy::boxed_local)]
    pub(crate) fn fail(mut self: Box<Self>, err: Error, info: &ActorInfo) {
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

/// Where an actor's resources come from (SEMANTICS §6).
pub(crate) enum Placement {
    /// Local mode: resources are not modelled.
    None,
    /// Declared with resource options: held for the actor's life, once placed.
    Lifetime(crate::resources::Acquire),
    /// Declared without: 1 CPU from the node for each method run.
    PerCall(Arc<crate::resources::ResourcePool>),
}

/// Waits until the actor is placed, keeping the calls that arrive meanwhile.
/// `None`: the actor was stopped (or lost every handle) before placement.
async fn place<A>(
    info: &ActorInfo,
    rx: &mut mpsc::UnboundedReceiver<Msg<A>>,
    mut acquire: crate::resources::Acquire,
    early: &mut Vec<Envelope<A>>,
) -> Option<(crate::resources::Allocation, bool)> {
    let waited = acquire.is_waiting();
    if waited {
        tracing::info!(
            class = info.class,
            actor_id = %info.id,
            "ray: actor waits for resources to be placed"
        );
    }
    loop {
        tokio::select! {
            allocation = &mut acquire => return Some((allocation, waited)),
            msg = rx.recv() => match msg {
                None => {
                    info.mark_dead(info.died("every handle to the actor was dropped before it was placed"));
                    return None;
                }
                Some(Msg::Wake) if info.stop_requested() => return None,
                // Nothing to crash before the actor exists.
                Some(Msg::Wake) => drop(info.take_crash_request()),
                Some(Msg::Call(env)) => early.push(env),
            },
        }
    }
}

/// The actor task: wait for placement, build, run calls until every handle
/// is gone, a stop is requested or the actor dies, then fail whatever is left.
/// The actor task: build, run calls until every handle is gone, a stop is
/// requested or a method panics, then fail whatever is left.
///
/// Its future is boxed into the task, so its size is memory per actor: the
/// rare phases (waiting for placement, rebuilding) are boxed futures of their
/// own, and one loop ([`run_calls`]) runs both the calls that arrived before
/// placement and the rest.
pub(crate) async fn actor_main<A: ActorClass>(
    info: Arc<ActorInfo>,
    mut rx: mpsc::UnboundedReceiver<Msg<A>>,
    ctor: Box<dyn CtorBody<A>>,
    max_reconstructions: u64,
    placement: Placement,
) {
    let mut leftovers = Vec::new();
    let mut early = Vec::new();
    let mut per_call = None;
    let allocation = match placement {
        Placement::Lifetime(acquire) => {
            match Box::pin(place(&info, &mut rx, acquire, &mut early)).await {
                Some((a, waited)) => {
                    if waited {
                        let since = Some(info.obs.created_at);
                        let name = EventName::Static("pending placement");
                        info.obs
                            .event_since(info.id, since, name, "actor", Vec::new);
                    }
                    crate::runtime::set_gpu_ids(a.gpu_ids());
                    info.obs.set_lifetime(Some(a.resources().clone()));
                    Some(a)
                }
                None => {
                    finish(&info, rx, early).await;
                    return;
                }
            }
        }
        Placement::PerCall(pool) => {
            per_call = Some(pool);
            None
        }
        Placement::None => None,
    };
    if let Some(wait) = ctor.wait_ready() {
        wait.await;
    }
    let t0 = info.obs.clock();
    let built = ActorCore::build(&info, ctor, max_reconstructions);
    info.obs
        .event_since(info.id, t0, EventName::Static("create"), "actor", || {
            let outcome = if built.is_ok() { "ok" } else { "failed" };
            vec![("outcome", outcome.into())]
        });
    match built {
        Ok(mut core) => {
            info.obs.set_alive();
            tracing::debug!(class = A::NAME, actor_id = %info.id, "ray: actor alive");
            core.cpu_per_call = per_call;
            run_calls(&info, &mut core, &mut rx, &mut early).await;
            leftovers.append(&mut early);
            leftovers.extend(core.frontier.drain());
            drop(core);
        }
        Err(message) => {
            let err = info.set_dead(Error::ActorCreationFailed {
                class: A::NAME.to_owned(),
                actor_id: info.id,
                message,
            });
            info.report(ErrorKind::ActorDied, err.to_string());
            leftovers.append(&mut early);
        }
    }
    finish(&info, rx, leftovers).await;
    // The actor's resources go back to the node last.
    drop(allocation);
    info.obs.set_lifetime(None);
}

/// Fails every call left over or still arriving, then leaves the registry.
async fn finish<A>(
    info: &ActorInfo,
    mut rx: mpsc::UnboundedReceiver<Msg<A>>,
    leftovers: Vec<Envelope<A>>,
) {
    rx.close();
    // Built only if some call is left to fail with it.
    let mut err = None;
    let mut fail = |env: Envelope<A>| {
        let e = err.get_or_insert_with(|| info.death_error()).clone();
        env.fail(e, info);
    };
    for env in leftovers {
        fail(env);
    }
    while let Some(msg) = rx.recv().await {
        if let Msg::Call(env) = msg {
            fail(env);
        }
    }
    if let Some(rt) = info.runtime() {
        rt.unregister(&info.id);
    }
}

/// Runs the calls that arrived before placement (`early`), then every call
/// from the mailbox, until the actor dies or every handle is gone. Calls of
/// `early` not run are left in it.
async fn run_calls<A: ActorClass>(
    info: &ActorInfo,
    core: &mut ActorCore<A>,
    rx: &mut mpsc::UnboundedReceiver<Msg<A>>,
    early: &mut Vec<Envelope<A>>,
) {
    let mut queued = std::mem::take(early).into_iter();
    loop {
        let msg = match queued.next() {
            Some(env) => Msg::Call(env),
            // A CPU kept between calls goes back before the task idles.
            None if core.keeps_cpu() => match rx.try_recv() {
                Ok(msg) => msg,
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    core.give_back_kept_cpu(info);
                    match rx.recv().await {
                        Some(msg) => msg,
                        None => break,
                    }
                }
            },
            None => match rx.recv().await {
                Some(msg) => msg,
                None => break,
            },
        };
        core.more_queued = queued.len() != 0 || !rx.is_empty();
        let stop = info.stop_requested();
        let env = match msg {
            Msg::Call(env) if stop => {
                env.fail(info.death_error(), info);
                early.extend(queued);
                return;
            }
            Msg::Call(env) => env,
            Msg::Wake if stop => return,
            Msg::Wake => {
                // A crash requested by `kill(.., no_restart = false)` while idle.
                if core.crash_if_requested(info).await.is_err() {
                    return;
                }
                continue;
            }
        };
        // Admitted in two steps: the common case (a ready synchronous call)
        // runs without building a future, and only waits, async methods and
        // deaths take the async path. One `async fn` doing both cost about
        // 110 instructions more per call (W1, callgrind).
        let admitted = match core.admit_now(info, env) {
            Ok(None) => Ok(()),
            Ok(Some(step)) => core.resume(info, step).await,
            Err(e) => Err(e),
        };
        if admitted.is_err() {
            early.extend(queued);
            return;
        }
    }
    if !info.stop_requested() {
        info.mark_handles_dropped();
    }
}
