//! The runtime: `init`, the current-runtime lookup, shutdown, the error stream.
//!
//! There is no process-global runtime. A [`Ray`] guard owns one runtime; it is
//! *current* (what `X::remote()` and the free functions use) for the thread that
//! called [`init`], for every task of the tokio runtime it was started in, inside
//! every actor it hosts, and wherever [`Ray::enter`] is held. Runtimes started in
//! different threads or tokio runtimes do not see each other, so tests can run
//! in parallel threads.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::checkpoint::{Checkpoint, CheckpointStore, MemoryStore};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::ids::{ActorHandleId, ActorId, TaskId};

/// What kind of problem an [`ErrorInfo`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A checkpoint hook failed, or a checkpoint could not be restored.
    Checkpoint,
    /// An actor died (panic, kill, constructor failure).
    ActorDied,
    /// A fire-and-forget call (`num_returns = 0`) failed.
    TaskFailed,
}

/// One problem reported by the runtime (see [`error_info`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorInfo {
    /// What kind of problem.
    pub kind: ErrorKind,
    /// The actor concerned, if any.
    pub actor_id: Option<ActorId>,
    /// What happened.
    pub message: String,
}

pub(crate) trait ActorControl: Send + Sync {
    /// Stops the actor at once: queued and later calls fail with `cause`.
    fn stop(&self, cause: String);
    /// The actor class's name.
    fn class_name(&self) -> &'static str;
    /// For downcasting to the typed registration.
    fn as_any(&self) -> &dyn Any;
    /// What the actor's handles and task share (for the state API).
    fn info(&self) -> &Arc<crate::actor::ActorInfo>;
}

/// How many stopped actors the state API remembers.
const DEAD_ACTORS_KEPT: usize = 1000;

#[derive(Default)]
struct Registry {
    actors: HashMap<ActorId, Arc<dyn ActorControl>, crate::executor::IdBuildHasher>,
    names: HashMap<String, ActorId>,
    /// The most recently stopped actors, oldest first: summaries, so that
    /// an actor's info goes with the actor.
    dead: std::collections::VecDeque<crate::observe::Stopped>,
}

/// The call an actor task is running: who called, with which counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CallInfo {
    pub(crate) actor: ActorId,
    pub(crate) handle: ActorHandleId,
    pub(crate) counter: u64,
}

/// The record of the call running here, kept by its thread or task:
/// pointers to the call's actor ID and handle ID (in the actor's info and
/// in the call), not copies, so that setting and restoring the record on
/// every call moves three words instead of two 20-byte IDs. Read only
/// through [`current_call`], while the call runs.
#[derive(Clone, Copy)]
pub(crate) struct CallRecord {
    actor: std::ptr::NonNull<ActorId>,
    handle: std::ptr::NonNull<ActorHandleId>,
    counter: u64,
}

// SAFETY: the pointees are plain `Sync` data (IDs) that outlive the record
// (see `CallRecord::new`); a record moving with its task to another thread
// reads them there, which is as safe as reading them here.
unsafe impl Send for CallRecord {}

impl CallRecord {
    /// The record of a call by `handle`'s `counter` on actor `actor`.
    ///
    /// # Safety
    /// `actor` and `handle` must stay valid for as long as the record is
    /// set: set it only while the call runs, and put the previous record
    /// back before either goes (a guard that puts it back when dropped,
    /// such as `CallScope` or [`CallRecordGuard`], covers every way out).
    pub(crate) unsafe fn new(actor: &ActorId, handle: &ActorHandleId, counter: u64) -> Self {
        CallRecord {
            actor: actor.into(),
            handle: handle.into(),
            counter,
        }
    }

    fn info(&self) -> CallInfo {
        // SAFETY: valid while the record is set (the contract of `new`),
        // and it is: this reads it from where it is set.
        unsafe {
            CallInfo {
                actor: *self.actor.as_ptr(),
                handle: *self.handle.as_ptr(),
                counter: self.counter,
            }
        }
    }
}

/// Sets a call's record and puts the previous one back, at [`restore`]
/// or when dropped, however the call ends (a panic of the runtime's own, or
/// an async call's future dropped with its task, whose drop still sees the
/// task): a record left behind would point into a call that may go first.
///
/// [`restore`]: CallRecordGuard::restore
pub(crate) struct CallRecordGuard {
    outer: Option<CallRecord>,
    /// Set on the thread (a synchronous method: it cannot move threads
    /// while it runs) rather than on the task (or, outside one, the thread).
    on_thread: bool,
    restored: Cell<bool>,
}

impl CallRecordGuard {
    #[inline(always)]
    pub(crate) fn set(record: CallRecord, on_thread: bool) -> Self {
        let outer = if on_thread {
            swap_thread_call(Some(record))
        } else {
            swap_current_call(Some(record))
        };
        CallRecordGuard {
            outer,
            on_thread,
            restored: Cell::new(false),
        }
    }

    /// Puts the previous record back (once).
    #[inline(always)]
    pub(crate) fn restore(&self) {
        if !self.restored.replace(true) {
            if self.on_thread {
                swap_thread_call(self.outer);
            } else {
                swap_current_call(self.outer);
            }
        }
    }
}

impl Drop for CallRecordGuard {
    #[inline(always)]
    fn drop(&mut self) {
        self.restore();
    }
}

impl CallInfo {
    /// The call's task ID: `sha1("ray-task" || actor || handle || counter as 8
    /// little-endian bytes)`. Deterministic, so a replayed call has the same ID.
    pub(crate) fn task_id(&self) -> TaskId {
        use sha1::{Digest, Sha1};
        let mut h = Sha1::new();
        h.update(b"ray-task");
        h.update(self.actor.as_bytes());
        h.update(self.handle.as_bytes());
        h.update(self.counter.to_le_bytes());
        TaskId::from_bytes(h.finalize().into())
    }
}

/// What an actor task knows about itself (a tokio task-local).
pub(crate) struct TaskCtx {
    rt: Arc<RuntimeInner>,
    call: Cell<Option<CallRecord>>,
    /// The GPU IDs the task's actor (or function call) holds.
    gpus: RefCell<Vec<usize>>,
}

pub(crate) struct RuntimeInner {
    pub(crate) config: Config,
    spawner: Option<tokio::runtime::Handle>,
    registry: Mutex<Registry>,
    errors: Mutex<Vec<ErrorInfo>>,
    /// The task ID of code running outside any actor (the driver).
    pub(crate) driver_task: TaskId,
    checkpoints: Arc<dyn CheckpointStore>,
    /// The node's resource pool.
    pub(crate) resources: Arc<crate::resources::ResourcePool>,
    /// Drives async bodies of local-mode calls (timers, I/O), built on first use.
    local_helper: Mutex<Option<Arc<tokio::runtime::Runtime>>>,
    shut_down: AtomicBool,
    live_tasks: AtomicUsize,
    idle: tokio::sync::Notify,
    /// The timeline recorder, when `Config::timeline(true)` or `RAY_TIMELINE=1`.
    pub(crate) timeline: Option<Arc<crate::observe::Timeline>>,
    /// Creation order of actors.
    next_actor_seq: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl RuntimeInner {
    /// Runs a local-mode call's future to completion on the caller's behalf.
    /// Outside a tokio runtime it runs on this thread; inside one (where
    /// blocking the thread would stall its timers), on a scoped helper thread.
    /// Either way a small helper runtime drives timers and I/O, so an `async`
    /// method that sleeps works in local mode too.
    pub(crate) fn block_local<F>(self: &Arc<Self>, fut: F) -> F::Output
    where
        F: std::future::Future + Send,
        F::Output: Send,
    {
        let helper = {
            let mut h = lock(&self.local_helper);
            match &*h {
                Some(rt) => rt.clone(),
                None => {
                    let rt = Arc::new(
                        tokio::runtime::Builder::new_multi_thread()
                            .worker_threads(1)
                            .thread_name("ray-local")
                            .enable_all()
                            .build()
                            .expect("the local-mode helper runtime starts"),
                    );
                    *h = Some(rt.clone());
                    rt
                }
            }
        };
        let run = || {
            let _current = enter(self);
            helper.block_on(fut)
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return run();
        }
        std::thread::scope(|s| match s.spawn(run).join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        })
    }

    pub(crate) fn checkpoint_store(&self) -> Arc<dyn CheckpointStore> {
        self.checkpoints.clone()
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Acquire)
    }

    pub(crate) fn report(&self, kind: ErrorKind, actor_id: Option<ActorId>, message: String) {
        tracing::warn!(?kind, actor_id = ?actor_id, "{message}");
        lock(&self.errors).push(ErrorInfo {
            kind,
            actor_id,
            message,
        });
    }

    /// Registers an actor (and its name). A name may be reused once its actor
    /// is gone.
    pub(crate) fn register(
        &self,
        id: ActorId,
        name: Option<&str>,
        control: Arc<dyn ActorControl>,
    ) -> Result<()> {
        let mut reg = lock(&self.registry);
        if self.is_shut_down() {
            return Err(Error::NotInitialized);
        }
        if let Some(name) = name {
            if let Some(other) = reg.names.get(name).and_then(|id| reg.actors.get(id)) {
                return Err(Error::invalid(format!(
                    "an actor named \"{name}\" already exists (class {}): pick another name, or get it with ray::get_actor",
                    other.class_name()
                )));
            }
            reg.names.insert(name.to_owned(), id);
        }
        if reg.actors.contains_key(&id) {
            return Err(Error::invalid(format!("actor {id} is already registered")));
        }
        reg.actors.insert(id, control);
        Ok(())
    }

    pub(crate) fn unregister(&self, id: &ActorId) {
        let mut reg = lock(&self.registry);
        let Some(gone) = reg.actors.remove(id) else {
            return;
        };
        // Only the actor's own name, and only while it still points here.
        if let Some(name) = &gone.info().obs.name {
            if reg.names.get(name) == Some(id) {
                reg.names.remove(name);
            }
        }
        let evicted = if reg.dead.len() >= DEAD_ACTORS_KEPT {
            reg.dead.pop_front()
        } else {
            None
        };
        reg.dead.push_back(gone.info().stopped());
        // The registration (and the evicted summary's strings, if any) are
        // dropped outside the lock.
        drop(reg);
        drop(evicted);
        drop(gone);
    }

    /// The next actor's creation index.
    pub(crate) fn next_actor_seq(&self) -> u64 {
        self.next_actor_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// The state API: every live actor and the remembered stopped ones.
    pub(crate) fn actor_states(&self) -> Vec<crate::observe::ActorState> {
        let checkpoints = |checkpointable: bool, id: ActorId| {
            if checkpointable {
                self.checkpoints.list(id).map_or(0, |v| v.len())
            } else {
                0
            }
        };
        // The live actors' infos are read outside the lock; the stopped
        // actors' states are built under it (no store access there: the
        // checkpoint counts are filled in after).
        let (live, stopped): (Vec<Arc<crate::actor::ActorInfo>>, Vec<_>) = {
            let reg = lock(&self.registry);
            (
                reg.actors.values().map(|c| c.info().clone()).collect(),
                reg.dead
                    .iter()
                    .map(|s| (s.seq, s.checkpointable, s.state(0)))
                    .collect(),
            )
        };
        let mut states: Vec<(u64, crate::observe::ActorState)> = live
            .iter()
            .map(|info| {
                let n = checkpoints(info.obs.checkpointable, info.id);
                (info.obs.seq, info.state(n))
            })
            .chain(stopped.into_iter().map(|(seq, checkpointable, mut st)| {
                st.checkpoints = checkpoints(checkpointable, st.actor_id);
                (seq, st)
            }))
            .collect();
        states.sort_by_key(|(seq, _)| *seq);
        states.into_iter().map(|(_, st)| st).collect()
    }

    pub(crate) fn lookup(&self, id: &ActorId) -> Option<Arc<dyn ActorControl>> {
        lock(&self.registry).actors.get(id).cloned()
    }

    pub(crate) fn lookup_name(&self, name: &str) -> Option<Arc<dyn ActorControl>> {
        let reg = lock(&self.registry);
        reg.names
            .get(name)
            .and_then(|id| reg.actors.get(id))
            .cloned()
    }

    /// The tokio runtime actor tasks run on (not in local mode).
    pub(crate) fn tokio_handle(&self) -> &tokio::runtime::Handle {
        self.spawner
            .as_ref()
            .expect("a non-local runtime always has a spawner")
    }

    /// Spawns a task (an actor's, or a remote function call) that sees this
    /// runtime as current and that shutdown waits for.
    pub(crate) fn spawn<F>(self: &Arc<Self>, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let spawner = self.tokio_handle();
        self.live_tasks.fetch_add(1, Ordering::AcqRel);
        let done = TaskDone(Arc::downgrade(self));
        let ctx = TaskCtx {
            rt: self.clone(),
            call: Cell::new(None),
            gpus: RefCell::new(Vec::new()),
        };
        spawner.spawn(InTask::new(ctx, async move {
            let _done = done;
            fut.await;
        }));
    }

    fn begin_shutdown(&self) {
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return;
        }
        let actors: Vec<_> = {
            let mut reg = lock(&self.registry);
            reg.names.clear();
            reg.actors.drain().map(|(_, c)| c).collect()
        };
        for a in actors {
            a.stop("the runtime was shut down".to_owned());
        }
    }

    async fn wait_idle(&self) {
        loop {
            let mut n = pin!(self.idle.notified());
            n.as_mut().enable();
            if self.live_tasks.load(Ordering::Acquire) == 0 {
                return;
            }
            n.await;
        }
    }
}

/// Decrements the live-task count when an actor task ends (or is dropped).
struct TaskDone(Weak<RuntimeInner>);

impl Drop for TaskDone {
    fn drop(&mut self) {
        if let Some(rt) = self.0.upgrade() {
            rt.live_tasks.fetch_sub(1, Ordering::AcqRel);
            rt.idle.notify_waiters();
        }
    }
}

thread_local! {
    /// The `TaskCtx` of the task being polled on this thread (null outside
    /// [`InTask::poll`]).
    static CURRENT_TASK: Cell<*const TaskCtx> = const { Cell::new(std::ptr::null()) };
}

/// Runs `f` with the context of the actor task (or remote function call)
/// being polled on this thread, if any.
#[inline]
fn with_task<R>(f: impl FnOnce(&TaskCtx) -> R) -> Option<R> {
    let p = CURRENT_TASK.with(Cell::get);
    // SAFETY: `p` is non-null only while an `InTask` is polled or dropped on
    // this thread, and it points at that `InTask`'s context, which is pinned
    // and alive for that whole time; `f` cannot keep the reference (its
    // result cannot borrow from it).
    (!p.is_null()).then(|| f(unsafe { &*p }))
}

/// `f` on the runtime `rt` points to, if the ray task polled on this thread
/// belongs to it: reached through the task's context, so the runtime's
/// reference count (a cache line every actor would write at exit) is not
/// touched, as upgrading a `Weak` would.
#[inline]
pub(crate) fn with_task_runtime<R>(
    rt: &Weak<RuntimeInner>,
    f: impl FnOnce(&RuntimeInner) -> R,
) -> Option<R> {
    with_task(|c| std::ptr::eq(Arc::as_ptr(&c.rt), rt.as_ptr()).then(|| f(&c.rt))).flatten()
}

/// Whether the ray task polled on this thread, if any, belongs to the
/// runtime at `rt` (a ray task of another runtime does not run its callee's
/// calls: inside them, tokio's context would be the caller's runtime).
#[inline]
pub(crate) fn task_runtime_is(rt: *const RuntimeInner) -> bool {
    with_task(|c| std::ptr::eq(Arc::as_ptr(&c.rt), rt)).unwrap_or(true)
}

/// Runs `f` with no task context current: the calls a waiting caller runs
/// for another actor are that actor's, not the caller's task's.
///
/// `rt` (the actor's) is the current runtime meanwhile, whatever runtime
/// the caller belongs to: the lookups of the context ([`try_current`],
/// [`get_gpu_ids`]) check it first, as they check the task context before
/// the thread's. (Swapping the thread's GPU IDs out instead cost ~75
/// instructions per call run so.)
#[inline]
pub(crate) fn outside_task<R>(rt: &Weak<RuntimeInner>, f: impl FnOnce() -> R) -> R {
    struct Restore(*const Weak<RuntimeInner>);
    impl Drop for Restore {
        fn drop(&mut self) {
            HELPED_RT.with(|c| c.set(self.0));
        }
    }
    let _outer = Current(CURRENT_TASK.with(|c| c.replace(std::ptr::null())));
    let _rt = Restore(HELPED_RT.with(|c| c.replace(rt)));
    f()
}

/// Makes `ctx` the thread's current task context until dropped.
struct Current(*const TaskCtx);

impl Current {
    #[inline]
    fn set(ctx: &TaskCtx) -> Self {
        Current(CURRENT_TASK.with(|c| c.replace(ctx)))
    }
}

impl Drop for Current {
    #[inline]
    fn drop(&mut self) {
        CURRENT_TASK.with(|c| c.set(self.0));
    }
}

/// A task whose `TaskCtx` is current while it is polled (and dropped): what
/// `tokio::task_local!` does, for one pointer swap per poll instead of moving
/// the context in and out of a `RefCell` (which showed in profiles).
struct InTask<F> {
    ctx: TaskCtx,
    fut: std::mem::ManuallyDrop<F>,
    _pinned: std::marker::PhantomPinned,
}

impl<F> InTask<F> {
    fn new(ctx: TaskCtx, fut: F) -> Self {
        InTask {
            ctx,
            fut: std::mem::ManuallyDrop::new(fut),
            _pinned: std::marker::PhantomPinned,
        }
    }
}

impl<F: std::future::Future> std::future::Future for InTask<F> {
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        // SAFETY: nothing is moved out of `self`; `fut` stays pinned with it.
        let this = unsafe { self.get_unchecked_mut() };
        let _current = Current::set(&this.ctx);
        // SAFETY: `fut` is structurally pinned: never moved, dropped in place.
        unsafe { std::pin::Pin::new_unchecked(&mut *this.fut) }.poll(cx)
    }
}

impl<F> Drop for InTask<F> {
    fn drop(&mut self) {
        // The future's own drop (an actor's state, its calls) still sees its
        // task, as under `tokio::task_local!`.
        let _current = Current::set(&self.ctx);
        // SAFETY: dropped exactly once, here, in place.
        unsafe { std::mem::ManuallyDrop::drop(&mut self.fut) };
    }
}

thread_local! {
    static ENTERED: RefCell<Vec<Weak<RuntimeInner>>> = const { RefCell::new(Vec::new()) };
    /// The runtime of the actor whose calls a waiting caller runs on this
    /// thread (see `outside_task`); null otherwise.
    static HELPED_RT: Cell<*const Weak<RuntimeInner>> = const { Cell::new(std::ptr::null()) };
    /// The call running synchronously on this thread (local mode).
    static LOCAL_CALL: Cell<Option<CallRecord>> = const { Cell::new(None) };
    /// GPU IDs held by the remote function running on this thread.
    static THREAD_GPUS: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    /// A task ID forced by a test (see `__private::with_task_id`).
    static TASK_OVERRIDE: Cell<Option<TaskId>> = const { Cell::new(None) };
}

/// Runs `f` as if inside task `task` (test hook for the handle ID vectors).
pub(crate) fn with_task_id<R>(task: TaskId, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<TaskId>);
    impl Drop for Restore {
        fn drop(&mut self) {
            TASK_OVERRIDE.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(TASK_OVERRIDE.with(|c| c.replace(Some(task))));
    f()
}

/// Records the GPU IDs held by the current actor task or function call.
pub(crate) fn set_gpu_ids(ids: &[usize]) {
    if with_task(|c| *c.gpus.borrow_mut() = ids.to_vec()).is_none() {
        THREAD_GPUS.with(|g| *g.borrow_mut() = ids.to_vec());
    }
}

/// The GPU IDs of the actor (or remote function call) running here: stable
/// for an actor's whole life; empty outside, and for actors and calls that
/// hold no GPU.
pub fn get_gpu_ids() -> Vec<usize> {
    // A call a waiting caller runs (see `outside_task`) is an actor's without
    // lifetime resources (only those are run so): no GPU, whatever the
    // thread holds.
    if !HELPED_RT.with(Cell::get).is_null() {
        return Vec::new();
    }
    with_task(|c| c.gpus.borrow().clone())
        .filter(|g| !g.is_empty())
        .unwrap_or_else(|| THREAD_GPUS.with(|g| g.borrow().clone()))
}

/// Resources of the current runtime's node not held right now, Ray's
/// `ray.available_resources()`: keys `CPU`, `GPU` and the custom names.
/// Empty without a runtime.
pub fn available_resources() -> std::collections::BTreeMap<String, f64> {
    try_current()
        .map(|rt| rt.resources.available().to_map())
        .unwrap_or_default()
}

/// All resources of the current runtime's node, Ray's
/// `ray.cluster_resources()`. Empty without a runtime.
pub fn cluster_resources() -> std::collections::BTreeMap<String, f64> {
    try_current()
        .map(|rt| rt.resources.total().to_map())
        .unwrap_or_default()
}

/// Sets the call running here (`None` between calls) and returns the previous
/// one: in an actor task its task-local, elsewhere (local mode) this thread's.
pub(crate) fn swap_current_call(call: Option<CallRecord>) -> Option<CallRecord> {
    with_task(|c| c.call.replace(call)).unwrap_or_else(|| LOCAL_CALL.with(|c| c.replace(call)))
}

/// Sets the call running synchronously on this thread (a synchronous
/// method on the actor task's fast path: it cannot move threads while it
/// runs) and returns the previous one.
#[inline]
pub(crate) fn swap_thread_call(call: Option<CallRecord>) -> Option<CallRecord> {
    LOCAL_CALL.with(|c| c.replace(call))
}

/// The call running here, if any.
pub(crate) fn current_call() -> Option<CallInfo> {
    with_task(|c| c.call.get())
        .flatten()
        .or_else(|| LOCAL_CALL.with(|c| c.get()))
        .map(|r| r.info())
}

/// The ID of the task running here: the current call's, or the driver's.
///
/// # Errors
///
/// [`Error::NotInitialized`] outside any call and without a current runtime.
pub fn current_task_id() -> Result<TaskId> {
    if let Some(task) = TASK_OVERRIDE.with(|c| c.get()) {
        return Ok(task);
    }
    match current_call() {
        Some(call) => Ok(call.task_id()),
        None => current().map(|rt| rt.driver_task),
    }
}

type TokioRegistry = Mutex<Vec<(tokio::runtime::Id, Weak<RuntimeInner>)>>;

/// Which ray runtime belongs to which tokio runtime: a lookup table, not a
/// runtime of its own.
static BY_TOKIO_RUNTIME: TokioRegistry = Mutex::new(Vec::new());

/// Bumped (under `BY_TOKIO_RUNTIME`'s lock) whenever the table changes.
static BY_TOKIO_GENERATION: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's last answer from `BY_TOKIO_RUNTIME`: the tokio runtime,
    /// the table's generation then, and the ray runtime found.
    static BY_TOKIO_LAST: RefCell<Option<(tokio::runtime::Id, u64, Weak<RuntimeInner>)>> =
        const { RefCell::new(None) };
}

/// Records a change of `BY_TOKIO_RUNTIME` (its lock held): every thread's
/// last answer is stale.
fn by_tokio_changed() {
    BY_TOKIO_GENERATION.fetch_add(1, Ordering::AcqRel);
}

/// The current runtime, if any.
pub(crate) fn try_current() -> Option<Arc<RuntimeInner>> {
    // A call a waiting caller runs for an actor: the actor's runtime.
    let helped = HELPED_RT.with(|c| {
        let p = c.get();
        // SAFETY: set only while `outside_task` runs, to a `Weak` its
        // caller keeps alive for that time.
        (!p.is_null()).then(|| unsafe { &*p }.upgrade()).flatten()
    });
    if let Some(rt) = helped {
        if !rt.is_shut_down() {
            return Some(rt);
        }
    }
    if let Some(rt) = with_task(|c| c.rt.clone()) {
        if !rt.is_shut_down() {
            return Some(rt);
        }
    }
    let from_thread = ENTERED.with(|e| {
        e.borrow()
            .iter()
            .rev()
            .filter_map(Weak::upgrade)
            .find(|rt| !rt.is_shut_down())
    });
    if from_thread.is_some() {
        return from_thread;
    }
    let id = tokio::runtime::Handle::try_current().ok()?.id();
    // The table changes only as runtimes start and stop: this thread's last
    // answer serves while it has not changed, without the table's lock
    // (which every actor creation from a plain tokio task took).
    let generation = BY_TOKIO_GENERATION.load(Ordering::Acquire);
    // `try_with`: a thread being torn down (a destructor asking) just
    // misses.
    let last = BY_TOKIO_LAST
        .try_with(|c| match &*c.borrow() {
            Some((tid, g, w)) if *tid == id && *g == generation => w.upgrade(),
            _ => None,
        })
        .ok()
        .flatten();
    if let Some(rt) = last.filter(|rt| !rt.is_shut_down()) {
        return Some(rt);
    }
    let found = lock(&BY_TOKIO_RUNTIME)
        .iter()
        .rev()
        .filter(|(tid, _)| *tid == id)
        .filter_map(|(_, w)| w.upgrade())
        .find(|rt| !rt.is_shut_down());
    if let Some(rt) = &found {
        let _ = BY_TOKIO_LAST
            .try_with(|c| *c.borrow_mut() = Some((id, generation, Arc::downgrade(rt))));
    }
    found
}

/// The current runtime, or [`Error::NotInitialized`].
pub(crate) fn current() -> Result<Arc<RuntimeInner>> {
    try_current().ok_or(Error::NotInitialized)
}

/// A running runtime. Dropping it shuts the runtime down (like [`Ray::shutdown`],
/// without waiting).
pub struct Ray {
    inner: Arc<RuntimeInner>,
    tokio_id: Option<tokio::runtime::Id>,
    owned: Option<tokio::runtime::Runtime>,
}

impl fmt::Debug for Ray {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ray")
            .field("local_mode", &self.inner.config.local_mode)
            .field("num_cpus", &self.inner.config.get_num_cpus())
            .field("shut_down", &self.inner.is_shut_down())
            .finish()
    }
}

/// Starts a runtime and makes it current (see [`Ray`]). Works inside a tokio
/// runtime (actors then run on it) or outside one (the framework starts its own
/// multi-threaded tokio runtime).
///
/// ```
/// let ray = ray_core::init(ray_core::Config::default().num_cpus(2))?;
/// drop(ray); // shuts down
/// # Ok::<(), ray_core::Error>(())
/// ```
pub fn init(config: Config) -> Result<Ray> {
    config.validate()?;
    let resources = Arc::new(crate::resources::ResourcePool::from_config(&config)?);
    let (spawner, owned) = match tokio::runtime::Handle::try_current() {
        Ok(h) => (h, None),
        Err(_) => {
            let threads = config
                .worker_threads
                .unwrap_or_else(crate::config::machine_cores);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("ray-worker")
                .enable_all()
                .build()
                .map_err(|e| Error::invalid(format!("could not start a tokio runtime: {e}")))?;
            (rt.handle().clone(), Some(rt))
        }
    };
    let tokio_id = spawner.id();
    let record_timeline = config.timeline
        || std::env::var("RAY_TIMELINE").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
    let timeline =
        record_timeline.then(|| Arc::new(crate::observe::Timeline::new(config.timeline_capacity)));
    let checkpoints: Arc<dyn CheckpointStore> = match &config.checkpoint_dir {
        Some(dir) => Arc::new(crate::sqlite::SqliteStore::open(dir)?),
        None => Arc::new(MemoryStore::new()),
    };
    let inner = Arc::new(RuntimeInner {
        config,
        spawner: Some(spawner),
        registry: Mutex::new(Registry::default()),
        errors: Mutex::new(Vec::new()),
        driver_task: TaskId::random(),
        checkpoints,
        resources,
        local_helper: Mutex::new(None),
        shut_down: AtomicBool::new(false),
        live_tasks: AtomicUsize::new(0),
        idle: tokio::sync::Notify::new(),
        timeline,
        next_actor_seq: AtomicU64::new(0),
    });
    {
        let mut reg = lock(&BY_TOKIO_RUNTIME);
        reg.retain(|(_, w)| w.strong_count() > 0);
        reg.push((tokio_id, Arc::downgrade(&inner)));
        by_tokio_changed();
    }
    ENTERED.with(|e| {
        let mut e = e.borrow_mut();
        e.retain(|w| w.strong_count() > 0);
        e.push(Arc::downgrade(&inner));
    });
    Ok(Ray {
        inner,
        tokio_id: Some(tokio_id),
        owned,
    })
}

impl Ray {
    /// Makes this runtime current on this thread until the guard drops (like
    /// tokio's `Handle::enter`).
    pub fn enter(&self) -> EnterGuard {
        enter(&self.inner)
    }

    /// The runtime's configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Stops every actor (each finishes the call it is running; queued calls fail
    /// with [`Error::ActorDied`]), runs their `Drop`, and waits for them.
    pub async fn shutdown(mut self) {
        self.inner.begin_shutdown();
        self.inner.wait_idle().await;
        self.finish();
    }

    fn finish(&mut self) {
        self.inner.begin_shutdown();
        if let Some(helper) = lock(&self.inner.local_helper).take() {
            if let Ok(rt) = Arc::try_unwrap(helper) {
                rt.shutdown_background();
            }
        }
        if let Some(id) = self.tokio_id.take() {
            let me = Arc::downgrade(&self.inner);
            let mut reg = lock(&BY_TOKIO_RUNTIME);
            reg.retain(|(tid, w)| !(*tid == id && w.ptr_eq(&me)));
            by_tokio_changed();
        }
        if let Some(rt) = self.owned.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for Ray {
    fn drop(&mut self) {
        self.finish();
    }
}

pub(crate) fn enter(rt: &Arc<RuntimeInner>) -> EnterGuard {
    ENTERED.with(|e| e.borrow_mut().push(Arc::downgrade(rt)));
    EnterGuard {
        _not_send: std::marker::PhantomData,
    }
}

/// Guard returned by [`Ray::enter`].
#[derive(Debug)]
pub struct EnterGuard {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        ENTERED.with(|e| {
            e.borrow_mut().pop();
        });
    }
}

/// Errors the current runtime has reported so far: failed checkpoint hooks,
/// actor deaths, failed fire-and-forget calls. Empty without a runtime.
pub fn error_info() -> Vec<ErrorInfo> {
    try_current()
        .map(|rt| lock(&rt.errors).clone())
        .unwrap_or_default()
}

/// Whether a runtime is current here.
pub fn is_initialized() -> bool {
    try_current().is_some()
}

/// The usable checkpoints of an actor in the current runtime's store, newest
/// first.
///
/// # Errors
///
/// [`Error::NotInitialized`] without a runtime; the store's error if it fails.
pub fn get_checkpoints_for_actor(actor_id: ActorId) -> Result<Vec<Checkpoint>> {
    let rt = current()?;
    Ok(rt
        .checkpoints
        .list(actor_id)?
        .iter()
        .map(|r| r.checkpoint())
        .collect())
}
