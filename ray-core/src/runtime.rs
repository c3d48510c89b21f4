//! The runtime: `init`, the current-runtime lookup, shutdown, the error stream.
//!
//! There is no process-global runtime. A [`Ray`] guard owns one runtime; it is
//! *current* (what `X::remote()` and the free functions use) for the thread that
//! called [`init`], for every task of the tokio runtime it was started in, inside
//! every actor it hosts, and wherever [`Ray::enter`] is held. Runtimes started in
//! different threads or tokio runtimes do not see each other, so tests can run
//! in parallel threads.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::ids::ActorId;

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
}

pub(crate) struct RuntimeInner {
    pub(crate) config: Config,
    spawner: Option<tokio::runtime::Handle>,
    actors: Mutex<HashMap<ActorId, Arc<dyn ActorControl>>>,
    errors: Mutex<Vec<ErrorInfo>>,
    shut_down: AtomicBool,
    live_tasks: AtomicUsize,
    idle: tokio::sync::Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl RuntimeInner {
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

    pub(crate) fn register(&self, id: ActorId, control: Arc<dyn ActorControl>) -> Result<()> {
        let mut actors = lock(&self.actors);
        if self.is_shut_down() {
            return Err(Error::NotInitialized);
        }
        actors.insert(id, control);
        Ok(())
    }

    pub(crate) fn unregister(&self, id: &ActorId) {
        lock(&self.actors).remove(id);
    }

    /// Spawns an actor task that sees this runtime as current.
    pub(crate) fn spawn_actor<F>(self: &Arc<Self>, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let spawner = self
            .spawner
            .as_ref()
            .expect("a non-local runtime always has a spawner");
        self.live_tasks.fetch_add(1, Ordering::AcqRel);
        let done = TaskDone(Arc::downgrade(self));
        let rt = self.clone();
        spawner.spawn(CURRENT_TASK_RUNTIME.scope(rt, async move {
            let _done = done;
            fut.await;
        }));
    }

    fn begin_shutdown(&self) {
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return;
        }
        let actors: Vec<_> = lock(&self.actors).drain().map(|(_, c)| c).collect();
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

tokio::task_local! {
    static CURRENT_TASK_RUNTIME: Arc<RuntimeInner>;
}

thread_local! {
    static ENTERED: RefCell<Vec<Weak<RuntimeInner>>> = const { RefCell::new(Vec::new()) };
}

type TokioRegistry = Mutex<Vec<(tokio::runtime::Id, Weak<RuntimeInner>)>>;

/// Which ray runtime belongs to which tokio runtime: a lookup table, not a
/// runtime of its own.
static BY_TOKIO_RUNTIME: TokioRegistry = Mutex::new(Vec::new());

/// The current runtime, if any.
pub(crate) fn try_current() -> Option<Arc<RuntimeInner>> {
    if let Ok(rt) = CURRENT_TASK_RUNTIME.try_with(|rt| rt.clone()) {
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
    let reg = lock(&BY_TOKIO_RUNTIME);
    reg.iter()
        .rev()
        .filter(|(tid, _)| *tid == id)
        .filter_map(|(_, w)| w.upgrade())
        .find(|rt| !rt.is_shut_down())
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
    let inner = Arc::new(RuntimeInner {
        config,
        spawner: Some(spawner),
        actors: Mutex::new(HashMap::new()),
        errors: Mutex::new(Vec::new()),
        shut_down: AtomicBool::new(false),
        live_tasks: AtomicUsize::new(0),
        idle: tokio::sync::Notify::new(),
    });
    {
        let mut reg = lock(&BY_TOKIO_RUNTIME);
        reg.retain(|(_, w)| w.strong_count() > 0);
        reg.push((tokio_id, Arc::downgrade(&inner)));
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
        ENTERED.with(|e| e.borrow_mut().push(Arc::downgrade(&self.inner)));
        EnterGuard {
            _not_send: std::marker::PhantomData,
        }
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
        if let Some(id) = self.tokio_id.take() {
            let me = Arc::downgrade(&self.inner);
            lock(&BY_TOKIO_RUNTIME).retain(|(tid, w)| !(*tid == id && w.ptr_eq(&me)));
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
