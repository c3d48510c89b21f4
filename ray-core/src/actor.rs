//! Actors: classes, options, handles, and the task that runs each actor.
//!
//! A handle owns a sender into the actor's mailbox. Submitting a call takes
//! the handle's next counter inside the mailbox's lock, as the call is
//! queued, so the calls of one handle reach the mailbox in counter order even
//! when many tasks share the handle. The actor task admits each call through its [`Frontier`](crate::executor::Frontier), runs
//! ready calls one at a time, and stops when the last handle is gone (after
//! the calls already queued), when killed, or when its runtime shuts down.

use std::any::Any;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::call::ArgTuple;
use crate::checkpoint::CheckpointPolicy;
use crate::config::{check_quantity, check_resource_name};
use crate::error::{Error, Result};
use crate::exec::{
    actor_main, ActorCore, CallBox, CallRefs, CtorBody, CtorCall, Driver, Envelope, MethodCall,
    Msg, Placement, TaskDriver,
};
pub use crate::exec::{Invoke, Method};
use crate::ids::{ActorHandleId, ActorId};
use crate::observe::ActorObs;
use crate::runtime::{self, ActorControl, ErrorKind, RuntimeInner};

/// Largest `max_reconstructions` (Ray's `INFINITE_RECONSTRUCTION`, 2^30).
pub const INFINITE_RECONSTRUCTION: u32 = 1 << 30;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An actor class: implemented by `#[ray::actor]` on a struct.
pub trait ActorClass: Sized + Send + 'static {
    /// The class name.
    const NAME: &'static str;
    /// `module_path!()` where the class is declared.
    const MODULE_PATH: &'static str;
    /// The generated typed handle.
    type Handle: ActorHandle<Actor = Self>;
    /// The options declared on the struct.
    fn declared_options() -> ActorOptions;
    /// How the class checkpoints (`None`: it does not).
    fn checkpoint_policy() -> Option<CheckpointPolicy<Self>> {
        None
    }
}

/// What every generated handle (`CounterHandle`) implements.
pub trait ActorHandle: Clone + Send + Sync + fmt::Display + fmt::Debug + 'static {
    /// The actor class.
    type Actor: ActorClass<Handle = Self>;
    /// The actor this handle calls.
    fn actor_id(&self) -> ActorId;
    /// This handle's ID (the original handle's is the nil ID; forks get new ones).
    fn handle_id(&self) -> ActorHandleId;
    #[doc(hidden)]
    fn __from_raw(raw: RawHandle<Self::Actor>) -> Self;
    #[doc(hidden)]
    fn __raw(&self) -> &RawHandle<Self::Actor>;
}

/// Options of one actor creation: what the struct declares, overridden by
/// `X::options()`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActorOptions {
    pub(crate) num_cpus: Option<f64>,
    pub(crate) num_gpus: Option<f64>,
    pub(crate) resources: BTreeMap<String, f64>,
    pub(crate) max_reconstructions: u64,
    pub(crate) name: Option<String>,
    pub(crate) checkpointable: bool,
}

impl ActorOptions {
    /// CPUs held for the actor's life.
    pub fn num_cpus(mut self, q: impl Into<f64>) -> Self {
        self.num_cpus = Some(q.into());
        self
    }

    /// GPUs held for the actor's life.
    pub fn num_gpus(mut self, q: impl Into<f64>) -> Self {
        self.num_gpus = Some(q.into());
        self
    }

    /// A custom resource held for the actor's life.
    pub fn resource(mut self, name: &str, q: impl Into<f64>) -> Self {
        self.resources.insert(name.to_owned(), q.into());
        self
    }

    /// How many times the actor is rebuilt after a death (`0..=2^30`).
    pub fn max_reconstructions(mut self, n: u32) -> Self {
        self.max_reconstructions = u64::from(n);
        self
    }

    /// Registers the actor under `name` (see `ray::get_actor`).
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    #[doc(hidden)]
    pub fn __checkpointable(mut self, on: bool) -> Self {
        self.checkpointable = on;
        self
    }

    /// Whether the options hold resources for the actor's life (Ray's second
    /// kind of actor) rather than 1 CPU per method run.
    pub fn holds_resources(&self) -> bool {
        self.num_cpus.is_some() || self.num_gpus.is_some() || !self.resources.is_empty()
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.max_reconstructions > u64::from(INFINITE_RECONSTRUCTION) {
            return Err(Error::invalid(format!(
                "max_reconstructions = {}: must be in 0..=1073741824 (INFINITE_RECONSTRUCTION)",
                self.max_reconstructions
            )));
        }
        if let Some(q) = self.num_cpus {
            check_quantity("num_cpus", q)?;
        }
        if let Some(q) = self.num_gpus {
            check_quantity("num_gpus", q)?;
        }
        for (name, q) in &self.resources {
            check_resource_name(name)?;
            check_quantity(&format!("resource `{name}`"), *q)?;
        }
        if let Some(name) = &self.name {
            if name.is_empty() {
                return Err(Error::invalid("actor names cannot be empty"));
            }
        }
        Ok(())
    }
}

/// The cause part of a death error, for the state API and the timeline.
fn death_cause(err: &Error) -> String {
    match err {
        Error::ActorDied { cause, .. } => cause.clone(),
        Error::ActorCreationFailed { message, .. } => format!("creation failed: {message}"),
        other => other.to_string(),
    }
}

/// Why calls fail once every handle of an actor was dropped.
const HANDLES_DROPPED: &str = "every handle to the actor was dropped";

/// How an actor died: its error, or the ordinary end, whose error is built
/// only if some call asks for it (most actors end this way, unobserved).
enum Died {
    /// Boxed: most actors end with their handles, and every actor keeps
    /// room for this.
    Error(Box<Error>),
    HandlesDropped,
}

/// Displays [`death_cause`] without building it unless a subscriber asks.
struct DeathCause<'a>(&'a Error);

impl fmt::Display for DeathCause<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&death_cause(self.0))
    }
}

/// Crash requests by `kill(.., no_restart = false)`: the cause of the
/// pending one, and a wake-up for an actor task waiting in an async method.
#[derive(Default)]
struct CrashRequests {
    cause: Mutex<Option<String>>,
    notify: tokio::sync::Notify,
}

/// Shared facts about one actor, seen by its handles and its task.
pub(crate) struct ActorInfo {
    pub(crate) id: ActorId,
    pub(crate) class: &'static str,
    runtime: Weak<RuntimeInner>,
    pub(crate) stop_requested: AtomicBool,
    death: Mutex<Option<Died>>,
    /// Handle IDs given out by deserialization, to refuse a second handle with
    /// the same ID (its counters would collide with the first one's). Boxed
    /// on first use, as the crash requests: most actors never see either,
    /// and every actor keeps room for them.
    #[allow(clippy::box_collection)]
    deserialized: Mutex<Option<Box<HashSet<ActorHandleId>>>>,
    /// Crash requests by `kill(.., no_restart = false)`.
    crash: std::sync::OnceLock<Box<CrashRequests>>,
    /// Whether `crash` holds a request (checked before locking, per call).
    crash_flag: AtomicBool,
    restarts: std::sync::atomic::AtomicU64,
    /// What the state API and the timeline see.
    pub(crate) obs: ActorObs,
}

impl ActorInfo {
    fn new(id: ActorId, class: &'static str, runtime: Weak<RuntimeInner>, obs: ActorObs) -> Self {
        ActorInfo {
            obs,
            id,
            class,
            runtime,
            stop_requested: AtomicBool::new(false),
            death: Mutex::new(None),
            deserialized: Mutex::new(None),
            crash: std::sync::OnceLock::new(),
            crash_flag: AtomicBool::new(false),
            restarts: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub(crate) fn died(&self, cause: impl Into<String>) -> Error {
        Error::ActorDied {
            class: self.class.to_owned(),
            actor_id: self.id,
            cause: cause.into(),
        }
    }

    /// The error for calls that reach a dead actor.
    pub(crate) fn death_error(&self) -> Error {
        match &*lock(&self.death) {
            Some(Died::Error(e)) => (**e).clone(),
            Some(Died::HandlesDropped) => self.died(HANDLES_DROPPED),
            None => self.died("the actor stopped"),
        }
    }

    /// Records the death (first cause wins) and returns the error calls get.
    pub(crate) fn set_dead(&self, err: Error) -> Error {
        self.mark_dead(err);
        self.death_error()
    }

    /// [`set_dead`](Self::set_dead) for callers that do not need the error.
    pub(crate) fn mark_dead(&self, err: Error) {
        let mut d = lock(&self.death);
        if d.is_none() {
            self.record_death(&DeathCause(&err));
            *d = Some(Died::Error(Box::new(err)));
        }
    }

    /// The ordinary end: every handle was dropped (no error is built unless
    /// a call asks for one).
    pub(crate) fn mark_handles_dropped(&self) {
        let mut d = lock(&self.death);
        if d.is_none() {
            self.record_death(&HANDLES_DROPPED);
            *d = Some(Died::HandlesDropped);
        }
    }

    /// Logs (and records on the timeline) the first death.
    fn record_death(&self, cause: &dyn fmt::Display) {
        tracing::info!(
            class = self.class,
            actor_id = %self.id,
            %cause,
            "ray: actor died"
        );
        if let Some(tl) = &self.obs.timeline {
            tl.instant(
                self.id,
                "died",
                "actor",
                vec![("cause", cause.to_string().into())],
            );
        }
    }

    /// The recorded death's cause, as the state API shows it (built only
    /// for an error death).
    fn death_text(&self) -> Option<Cow<'static, str>> {
        lock(&self.death).as_ref().map(|d| match d {
            Died::Error(e) => Cow::Owned(death_cause(e)),
            Died::HandlesDropped => Cow::Borrowed(HANDLES_DROPPED),
        })
    }

    /// The state API's view of this actor.
    pub(crate) fn state(&self, checkpoints: usize) -> crate::observe::ActorState {
        self.obs.state(
            self.id,
            self.class,
            self.death_text().map(Cow::into_owned),
            self.restarts.load(Ordering::Relaxed),
            checkpoints,
        )
    }

    /// What the state API remembers once the actor stopped (see
    /// [`Stopped`](crate::observe::Stopped)).
    pub(crate) fn stopped(&self) -> crate::observe::Stopped {
        let cause = self
            .death_text()
            .unwrap_or(Cow::Borrowed("the actor stopped"));
        crate::observe::Stopped {
            actor_id: self.id,
            checkpointable: self.obs.checkpointable,
            class: self.class,
            seq: self.obs.seq,
            restarts: self.restarts.load(Ordering::Relaxed),
            max_restarts: self.obs.max_restarts,
            completed: self.obs.completed_calls(),
            name: self.obs.name.as_deref().map(Box::from),
            cause,
        }
    }

    /// The crash request box, made on first use.
    fn crash_requests(&self) -> &CrashRequests {
        self.crash.get_or_init(Box::default)
    }

    /// Asks the actor to crash (and be rebuilt if it has restarts left).
    pub(crate) fn request_crash(&self, cause: String) {
        let c = self.crash_requests();
        *lock(&c.cause) = Some(cause);
        self.crash_flag.store(true, Ordering::Release);
        c.notify.notify_waiters();
    }

    /// Resolves once a crash is requested, with its cause (not taken).
    pub(crate) async fn crash_requested(&self) -> String {
        let c = self.crash_requests();
        loop {
            let mut n = std::pin::pin!(c.notify.notified());
            n.as_mut().enable();
            if let Some(cause) = lock(&c.cause).clone() {
                return cause;
            }
            n.await;
        }
    }

    /// Takes the pending crash request, if any.
    pub(crate) fn take_crash_request(&self) -> Option<String> {
        if !self.crash_pending() {
            return None;
        }
        // Set before the flag, so there whenever the flag is.
        let mut c = lock(&self.crash.get()?.cause);
        self.crash_flag.store(false, Ordering::Release);
        c.take()
    }

    /// Whether a crash is requested (cheap: no lock).
    #[inline]
    pub(crate) fn crash_pending(&self) -> bool {
        self.crash_flag.load(Ordering::Acquire)
    }

    /// Counts one restart.
    pub(crate) fn note_restart(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn stop_requested(&self) -> bool {
        self.stop_requested.load(Ordering::Acquire)
    }

    pub(crate) fn runtime(&self) -> Option<Arc<RuntimeInner>> {
        self.runtime.upgrade()
    }

    /// The runtime, weakly (to compare or make current without upgrading).
    #[inline]
    pub(crate) fn runtime_weak(&self) -> &Weak<RuntimeInner> {
        &self.runtime
    }

    pub(crate) fn report(&self, kind: ErrorKind, message: String) {
        if let Some(rt) = self.runtime.upgrade() {
            rt.report(kind, Some(self.id), message);
        }
    }
}

enum Mode<A: 'static> {
    /// The actor with its mailbox, between its task's async steps.
    Remote(Arc<Driver<A>>),
    Local(Box<Mutex<std::result::Result<ActorCore<A>, Error>>>),
    /// A deserialized handle whose actor this runtime does not know: every
    /// call fails at once with this error.
    Detached(Error),
}

/// What the handles of one actor share. Dropping the last one closes the
/// mailbox, and the actor stops after the calls already queued.
pub(crate) struct ActorShared<A: 'static> {
    info: Arc<ActorInfo>,
    mode: Mode<A>,
}

impl<A: 'static> Drop for ActorShared<A> {
    /// A local-mode actor stops with its last handle; a remote one's
    /// mailbox closes (its task notices and stops after the queued calls).
    fn drop(&mut self) {
        match &self.mode {
            Mode::Local(_) => {
                self.info.mark_handles_dropped();
                if let Some(rt) = self.info.runtime() {
                    rt.unregister(&self.info.id);
                }
            }
            Mode::Remote(driver) => driver.close_mailbox(),
            Mode::Detached(_) => {}
        }
    }
}

/// The untyped-by-method core of a generated handle. Not public API.
#[doc(hidden)]
pub struct RawHandle<A: 'static> {
    shared: Arc<ActorShared<A>>,
    id: ActorHandleId,
    /// The counter of this handle's next call. Taken under the mailbox's
    /// lock as the call is queued (in local mode, the state's), so the
    /// counters go in mailbox order; only under that lock, so a load and a
    /// store rather than a locked read-modify-write.
    next_counter: AtomicU64,
    /// How many forks this handle made.
    num_forks: AtomicU64,
}

impl<A: ActorClass> RawHandle<A> {
    /// The actor's ID.
    pub fn actor_id(&self) -> ActorId {
        self.shared.info.id
    }

    /// This handle's ID.
    pub fn handle_id(&self) -> ActorHandleId {
        self.id
    }

    /// Submits a call; never blocks (except in local mode, where it runs now).
    pub fn call<Args: ArgTuple, R: CallRefs<A, Args>>(
        &self,
        method: &'static Method<A, Args::Values, R::Payload>,
        args: Args,
    ) -> R::Refs {
        // One allocation: the call, with its result slot inline.
        let (made, sink, inline) = R::call_channel();
        let call = CallBox::method(
            self.id,
            method,
            MethodCall::<A, Args, R>::new(inline, args, sink),
        );
        let refs = R::refs(made, &call);
        let info = &self.shared.info;
        match &self.shared.mode {
            Mode::Remote(driver) => {
                crate::exec::note_call(driver, Arc::as_ptr(&call) as *const () as usize);
                let sent = driver.send_with(|queued| {
                    // A call to a closed mailbox fails unnumbered, uncounted.
                    let counter = if queued {
                        info.obs.submitted_locked();
                        self.take_counter()
                    } else {
                        0
                    };
                    Msg::Call(Envelope::new(call, counter))
                });
                if let Err(Msg::Call(env)) = sent {
                    env.fail(info.death_error(), info);
                }
            }
            Mode::Local(state) => {
                let mut state = lock(state);
                // Under the state's lock: the counters go in admission order.
                info.obs.submitted_locked();
                let env = Envelope::new(call, self.take_counter());
                match &mut *state {
                    Ok(core) => {
                        if let Err(e) = core.admit_blocking(info, env) {
                            *state = Err(e);
                        }
                    }
                    Err(e) => env.fail(e.clone(), info),
                }
            }
            Mode::Detached(err) => {
                let _ = Envelope::new(call, 0).fail_unseen(err.clone());
            }
        }
        refs
    }

    /// This handle's next counter (see `next_counter`: only under the lock
    /// its submissions take).
    #[inline]
    fn take_counter(&self) -> u64 {
        let n = self.next_counter.load(Ordering::Relaxed);
        self.next_counter.store(n + 1, Ordering::Relaxed);
        n
    }

    /// A fork: a new handle ID derived from this one and its fork count.
    pub fn fork(&self) -> Self {
        let n = self.num_forks.fetch_add(1, Ordering::Relaxed);
        Self::with_id(self.shared.clone(), ActorHandleId::forked(&self.id, n))
    }

    /// Kills the actor (see `ray::kill`): `restart` makes it a crash, rebuilt
    /// when the actor has restarts left.
    pub fn kill(&self, cause: String, restart: bool) {
        let info = &self.shared.info;
        match &self.shared.mode {
            Mode::Remote(driver) => {
                if restart {
                    info.request_crash(cause);
                } else {
                    request_stop(info, cause);
                }
                let _ = driver.send(Msg::Wake);
            }
            Mode::Local(state) => {
                let mut state = lock(state);
                if restart {
                    info.request_crash(cause);
                    if let (Ok(core), Some(rt)) = (&mut *state, info.runtime()) {
                        if let Err(e) = rt.block_local(core.crash_if_requested(info)) {
                            *state = Err(e);
                        }
                    }
                } else {
                    let err = info.set_dead(info.died(cause));
                    *state = Err(err);
                }
            }
            Mode::Detached(_) => {}
        }
    }

    /// A new handle to the same actor with the given ID (test hook).
    pub fn with_handle_id(&self, id: ActorHandleId) -> Self {
        Self::with_id(self.shared.clone(), id)
    }

    fn with_id(shared: Arc<ActorShared<A>>, id: ActorHandleId) -> Self {
        RawHandle {
            shared,
            id,
            next_counter: AtomicU64::new(0),
            num_forks: AtomicU64::new(0),
        }
    }

    fn detached(actor_id: ActorId, id: ActorHandleId, err: Error) -> Self {
        let info = Arc::new(ActorInfo::new(
            actor_id,
            A::NAME,
            Weak::new(),
            ActorObs::detached(),
        ));
        Self::with_id(
            Arc::new(ActorShared {
                info,
                mode: Mode::Detached(err),
            }),
            id,
        )
    }
}

/// A live actor of class `A` in `rt`, or why not.
fn find_actor<A: ActorClass>(
    rt: &RuntimeInner,
    control: Option<Arc<dyn ActorControl>>,
    what: &str,
) -> Result<Arc<ActorShared<A>>> {
    let control = control
        .ok_or_else(|| Error::ActorNotFound(format!("{what}: no such actor in this runtime")))?;
    let any = control.as_any();
    let shared = match (
        any.downcast_ref::<Driver<A>>(),
        any.downcast_ref::<Registered<A>>(),
    ) {
        (Some(driver), _) => driver.shared(),
        (None, Some(reg)) => &reg.shared,
        (None, None) => {
            return Err(Error::ActorNotFound(format!(
                "{what} is an actor of class {}, not {}",
                control.class_name(),
                A::NAME
            )))
        }
    };
    let _ = rt;
    shared
        .upgrade()
        .ok_or_else(|| Error::ActorNotFound(format!("{what} has stopped")))
}

/// The typed handle of the actor registered under `name` in the current
/// runtime. The new handle has a fresh random handle ID.
///
/// # Errors
///
/// [`Error::ActorNotFound`] when no live actor has that name, or it belongs to
/// another class; [`Error::NotInitialized`] without a runtime.
pub fn get_actor<A: ActorClass>(name: &str) -> Result<A::Handle> {
    let rt = runtime::current()?;
    let shared = find_actor::<A>(
        &rt,
        rt.lookup_name(name),
        &format!("the actor named \"{name}\""),
    )?;
    Ok(A::Handle::__from_raw(RawHandle::with_id(
        shared,
        ActorHandleId::random(),
    )))
}

/// The serialized form of a handle.
#[derive(serde::Serialize, serde::Deserialize)]
struct SerializedHandle {
    class: String,
    actor_id: ActorId,
    handle_id: ActorHandleId,
}

impl<A: ActorClass> serde::Serialize for RawHandle<A> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        SerializedHandle {
            class: A::NAME.to_owned(),
            actor_id: self.shared.info.id,
            handle_id: self.id,
        }
        .serialize(s)
    }
}

impl<'de, A: ActorClass> serde::Deserialize<'de> for RawHandle<A> {
    /// A handle deserialized inside a running call gets the ID
    /// `sha1(serialized handle ID || current task ID)` (outside any call, the
    /// driver's task ID). When the current runtime does not know the actor, the
    /// handle still deserializes and every call fails with
    /// [`Error::ActorNotFound`]. Deserializing the same handle twice in one task
    /// is refused: both copies would have the same ID and counters.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let ser = SerializedHandle::deserialize(d)?;
        if ser.class != A::NAME {
            return Err(D::Error::custom(format!(
                "this serialized handle is for an actor of class {}, not {}",
                ser.class,
                A::NAME
            )));
        }
        let what = format!("actor {} ({})", ser.actor_id, A::NAME);
        let found = runtime::current().and_then(|rt| {
            let task = runtime::current_task_id()?;
            let shared = find_actor::<A>(&rt, rt.lookup(&ser.actor_id), &what)?;
            Ok((shared, task))
        });
        match found {
            Ok((shared, task)) => {
                let id = ActorHandleId::deserialized(&ser.handle_id, &task);
                if !lock(&shared.info.deserialized)
                    .get_or_insert_with(Box::default)
                    .insert(id)
                {
                    return Err(D::Error::custom(format!(
                        "handle {} of {what} was already deserialized in task {task}: \
                         deserialize it once and clone that handle instead",
                        ser.handle_id
                    )));
                }
                Ok(RawHandle::with_id(shared, id))
            }
            Err(e) => {
                let err = Error::ActorNotFound(format!(
                    "a handle to {what} was deserialized where its runtime does not know the actor ({e})"
                ));
                Ok(RawHandle::detached(ser.actor_id, ser.handle_id, err))
            }
        }
    }
}

impl<A: ActorClass> fmt::Display for RawHandle<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Actor({}, {})", A::NAME, self.shared.info.id)
    }
}

impl<A: ActorClass> fmt::Debug for RawHandle<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn request_stop(info: &ActorInfo, cause: String) {
    info.mark_dead(info.died(cause));
    info.stop_requested.store(true, Ordering::Release);
}

/// A local-mode actor as the runtime's registry sees it: enough to stop it,
/// and to hand out new handles while any handle keeps it alive. (An actor
/// with a task is registered through its `Driver`.)
struct Registered<A: 'static> {
    info: Arc<ActorInfo>,
    shared: Weak<ActorShared<A>>,
}

/// Stops the actor (see [`ActorControl::stop`]).
fn stop_actor<A: ActorClass>(info: &ActorInfo, shared: &Weak<ActorShared<A>>, cause: String) {
    request_stop(info, cause);
    if let Some(shared) = shared.upgrade() {
        match &shared.mode {
            Mode::Remote(driver) => {
                let _ = driver.send(Msg::Wake);
            }
            Mode::Local(state) => {
                *lock(state) = Err(info.death_error());
            }
            Mode::Detached(_) => {}
        }
    }
}

impl<A: ActorClass> ActorControl for Registered<A> {
    fn stop(&self, cause: String) {
        stop_actor(&self.info, &self.shared, cause);
    }

    fn class_name(&self) -> &'static str {
        A::NAME
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn info(&self) -> &Arc<ActorInfo> {
        &self.info
    }
}

/// An actor with a task is registered through its driver (one allocation
/// fewer per actor than a `Registered` of its own).
impl<A: ActorClass> ActorControl for Driver<A> {
    fn stop(&self, cause: String) {
        stop_actor(self.info(), self.shared(), cause);
    }

    fn class_name(&self) -> &'static str {
        A::NAME
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn info(&self) -> &Arc<ActorInfo> {
        Driver::info(self)
    }
}

/// Checks an actor's resource request against the node and joins the
/// placement queue (SEMANTICS §6).
fn placement(rt: &Arc<RuntimeInner>, options: &ActorOptions) -> Result<crate::exec::Placement> {
    use crate::exec::Placement;
    use crate::resources::ResourceSet;
    if rt.config.local_mode {
        return Ok(Placement::None);
    }
    if options.holds_resources() {
        let req = ResourceSet::from_parts(
            options.num_cpus.unwrap_or(1.0),
            options.num_gpus.unwrap_or(0.0),
            &options.resources,
        )?;
        rt.resources.check_feasible(&req)?;
        Ok(Placement::Lifetime(Box::new(rt.resources.acquire(req))))
    } else {
        // The common case, without building a request: the node has a CPU.
        if rt.resources.has_a_whole_cpu() {
            return Ok(Placement::PerCall(rt.resources.clone()));
        }
        rt.resources
            .check_feasible(&ResourceSet::one_cpu())
            .map_err(|e| {
                Error::invalid(format!(
                    "an actor declared without resources needs 1 CPU for each method run: {e}"
                ))
            })?;
        Ok(Placement::PerCall(rt.resources.clone()))
    }
}

/// Creates an actor with a constructor. Called by generated `remote()`.
#[doc(hidden)]
pub fn create_actor<A: ActorClass, Args: ArgTuple>(
    options: ActorOptions,
    args: Args,
    ctor: fn(Args::Values) -> std::result::Result<A, String>,
) -> Result<A::Handle> {
    let rt = runtime::current()?;
    options.validate()?;
    let placement = placement(&rt, &options)?;
    let id = match &options.name {
        Some(name) => ActorId::for_name(A::NAME, name),
        None => ActorId::random(),
    };
    let seq = rt.next_actor_seq();
    let obs = ActorObs::new(
        seq,
        options.name.clone(),
        options.max_reconstructions,
        A::checkpoint_policy().is_some(),
        rt.timeline.clone(),
    );
    if let Some(tl) = &rt.timeline {
        let short = &id.to_string()[..8];
        let label = match &options.name {
            Some(name) => format!("{} \"{name}\" {short}", A::NAME),
            None => format!("{} {short}", A::NAME),
        };
        tl.track(id, seq, label);
    }
    tracing::debug!(class = A::NAME, actor_id = %id, name = options.name.as_deref(), "ray: actor created");
    let info = Arc::new(ActorInfo::new(id, A::NAME, Arc::downgrade(&rt), obs));
    let creation_failed = |message: String| Error::ActorCreationFailed {
        class: A::NAME.to_owned(),
        actor_id: id,
        message,
    };
    // Not boxed: the actor task keeps it until the actor is built (and the
    // core boxes it only if the actor may be rebuilt).
    let ctor = CtorCall { args, ctor };
    let shared = if rt.config.local_mode {
        if let Some(wait) = ctor.wait_ready() {
            rt.block_local(wait);
        }
        let state = ActorCore::build(&info, ctor, options.max_reconstructions).map_err(|m| {
            let err = info.set_dead(creation_failed(m));
            info.report(ErrorKind::ActorDied, err.to_string());
            err
        });
        info.obs.set_alive();
        let shared = Arc::new(ActorShared {
            info: info.clone(),
            mode: Mode::Local(Box::new(Mutex::new(state))),
        });
        rt.register(
            id,
            options.name.as_deref(),
            Arc::new(Registered {
                info,
                shared: Arc::downgrade(&shared),
            }),
        )?;
        shared
    } else {
        // Callers may run the calls of actors without lifetime resources.
        let helpable = !matches!(placement, Placement::Lifetime(_));
        // The driver is also the actor's registry entry: it links back to
        // the handles' shared part weakly (to hand out new handles).
        let shared = Arc::new_cyclic(|weak: &Weak<ActorShared<A>>| ActorShared {
            info: info.clone(),
            mode: Mode::Remote(Arc::new(Driver::new(info.clone(), helpable, weak.clone()))),
        });
        let Mode::Remote(driver) = &shared.mode else {
            unreachable!("made remote above")
        };
        let driver = driver.clone();
        rt.register(id, options.name.as_deref(), driver.clone())?;
        // Boxed: the actor task's future is large (every path of an actor's
        // life), and unboxed it was copied several times on the way into the
        // task (a fifth of actor creation's instructions). Made in place in
        // its box: `Box::pin(fut)` still copied it three times.
        rt.spawn(boxed_in_place(|| {
            actor_main(
                info,
                TaskDriver(driver),
                ctor,
                options.max_reconstructions,
                placement,
            )
        }));
        shared
    };
    Ok(A::Handle::__from_raw(RawHandle {
        shared,
        id: ActorHandleId::NIL,
        next_counter: AtomicU64::new(1),
        num_forks: AtomicU64::new(0),
    }))
}

/// `make()`'s value, written straight into a new box (a large future is not
/// first built on the stack and copied).
#[inline(always)]
fn boxed_in_place<F>(make: impl FnOnce() -> F) -> std::pin::Pin<Box<F>> {
    let mut b = Box::<F>::new_uninit();
    b.write(make());
    // SAFETY: written just above.
    Box::into_pin(unsafe { b.assume_init() })
}

/// Kills the actor behind `handle` at once: the running call finishes, queued
/// and later calls fail with [`Error::ActorDied`]. With `no_restart = false` it
/// is a crash (reconstruction rebuilds the actor when it has restarts left).
pub fn kill<H: ActorHandle>(handle: &H, no_restart: bool) {
    let cause = if no_restart {
        "killed by ray::kill (no_restart = true)"
    } else {
        "killed by ray::kill (no_restart = false)"
    };
    handle.__raw().kill(cause.to_owned(), !no_restart);
}

#[cfg(all(test, target_pointer_width = "64"))]
mod size {
    use super::*;

    /// Every actor keeps its info for life: what most actors never use (an error
    /// death, crash requests, deserialized handles, lifetime resources) is
    /// boxed on first use.
    #[test]
    fn an_actors_info_keeps_no_room_for_rare_events() {
        assert!(
            std::mem::size_of::<ActorInfo>() <= 216,
            "the actor's info grew to {} bytes",
            std::mem::size_of::<ActorInfo>()
        );
    }

    /// The state API remembers the last 1,000 stopped actors as summaries,
    /// each smaller than the info it replaces.
    #[test]
    fn a_stopped_actors_summary_is_small() {
        let size = std::mem::size_of::<crate::observe::Stopped>();
        assert!(
            size <= 112,
            "the stopped actor's summary grew to {size} bytes"
        );
    }
}
