//! The columns and where each one runs.
//!
//! - plain: the main thread.
//! - tokio, ray, ray variants declared on the class, kameo, ractor: one
//!   multi-threaded tokio runtime (one worker per core), with one ray runtime
//!   started inside it; each measurement is a task spawned on it.
//! - ray local mode: its own thread, with a current-thread tokio runtime and a
//!   ray runtime in local mode.
//! - ray sync caller: its own plain thread, which called `ray::init` outside
//!   any runtime (ray then starts its own tokio runtime).
//! - actix: its own thread running an actix `System`.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use ray::Config;

use crate::common::{measure, measure_plain, Bench, Sizes, Workload};
use crate::ray_cols::{measure_sync, CkptCounterHandle, CounterHandle, ReconCounterHandle};
use crate::tokio_floor::TokioCounter;

/// One column of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Col {
    Plain,
    Tokio,
    Ray,
    #[cfg(feature = "peers")]
    Kameo,
    #[cfg(feature = "peers")]
    Ractor,
    #[cfg(feature = "peers")]
    Actix,
    RayCkptNo,
    RayRecon3,
    RayLocal,
    RaySync,
}

impl Col {
    /// The columns, in table order.
    pub fn all() -> Vec<Col> {
        vec![
            Col::Plain,
            Col::Tokio,
            Col::Ray,
            #[cfg(feature = "peers")]
            Col::Kameo,
            #[cfg(feature = "peers")]
            Col::Ractor,
            #[cfg(feature = "peers")]
            Col::Actix,
            Col::RayCkptNo,
            Col::RayRecon3,
            Col::RayLocal,
            Col::RaySync,
        ]
    }

    pub fn label(self) -> &'static str {
        match self {
            Col::Plain => "plain",
            Col::Tokio => "tokio",
            Col::Ray => "ray",
            #[cfg(feature = "peers")]
            Col::Kameo => "kameo",
            #[cfg(feature = "peers")]
            Col::Ractor => "ractor",
            #[cfg(feature = "peers")]
            Col::Actix => "actix",
            Col::RayCkptNo => "ray ckpt-no",
            Col::RayRecon3 => "ray recon=3",
            Col::RayLocal => "ray local",
            Col::RaySync => "ray sync",
        }
    }
}

type Job = (Workload, Sizes);

/// A thread that owns a runtime of its own and runs measurements on request.
struct ThreadEnv {
    jobs: Option<mpsc::Sender<Job>>,
    done: mpsc::Receiver<Duration>,
    thread: Option<JoinHandle<()>>,
}

impl ThreadEnv {
    /// Starts the thread; `setup` runs on it and returns the measuring function.
    fn start<S, R>(name: &str, setup: S) -> Self
    where
        S: FnOnce() -> R + Send + 'static,
        R: FnMut(Workload, Sizes) -> Duration,
    {
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let (done_tx, done) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let mut run = setup();
                for (w, s) in job_rx {
                    if done_tx.send(run(w, s)).is_err() {
                        break;
                    }
                }
            })
            .expect("spawning a bench thread");
        ThreadEnv {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
        }
    }

    fn run(&self, w: Workload, s: Sizes) -> Duration {
        let name = || {
            self.thread
                .as_ref()
                .and_then(|t| t.thread().name().map(str::to_owned))
                .unwrap_or_default()
        };
        self.jobs
            .as_ref()
            .expect("the env is running")
            .send((w, s))
            .unwrap_or_else(|_| panic!("the {} thread is gone", name()));
        self.done
            .recv()
            .unwrap_or_else(|_| panic!("the {} thread panicked", name()))
    }
}

impl Drop for ThreadEnv {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Every runtime the columns need, started once and kept for all rounds.
pub struct Envs {
    rt: tokio::runtime::Runtime,
    ray: Option<ray::Ray>,
    local: ThreadEnv,
    sync: ThreadEnv,
    #[cfg(feature = "peers")]
    actix: ThreadEnv,
}

impl Envs {
    pub fn start() -> Self {
        let rt = main_runtime();
        let ray = rt
            .block_on(async { ray::init(Config::default()) })
            .expect("ray::init in the main runtime");
        let local = ThreadEnv::start("ray-local", || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a current-thread runtime");
            let ray = rt
                .block_on(async { ray::init(Config::default().local_mode(true)) })
                .expect("ray::init in local mode");
            move |w, s| {
                let _keep = &ray;
                rt.block_on(measure::<CounterHandle>(w, s))
            }
        });
        let sync = ThreadEnv::start("ray-sync", || {
            let ray = ray::init(Config::default()).expect("ray::init outside any runtime");
            move |w, s| {
                let _keep = &ray;
                measure_sync(w, s)
            }
        });
        #[cfg(feature = "peers")]
        let actix = ThreadEnv::start("actix", || {
            let sys = actix::System::new();
            move |w, s| sys.block_on(measure::<crate::peers::actix_col::ActixCounter>(w, s))
        });
        Envs {
            rt,
            ray: Some(ray),
            local,
            sync,
            #[cfg(feature = "peers")]
            actix,
        }
    }

    fn on_main<B: Bench>(&self, w: Workload, s: Sizes) -> Duration {
        self.rt.block_on(async {
            tokio::spawn(measure::<B>(w, s))
                .await
                .expect("a measurement panicked")
        })
    }

    /// Runs `f` as a task on the main runtime (where the ray runtime of the
    /// tokio-based columns lives) and returns its output.
    pub fn spawn_on_main<F>(&self, f: F) -> F::Output
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.rt
            .block_on(async { tokio::spawn(f).await.expect("a measurement panicked") })
    }

    /// Runs workload `w` once on column `c`.
    pub fn run(&self, c: Col, w: Workload, s: Sizes) -> Duration {
        match c {
            Col::Plain => measure_plain(w, s),
            Col::Tokio => self.on_main::<TokioCounter>(w, s),
            Col::Ray => self.on_main::<CounterHandle>(w, s),
            #[cfg(feature = "peers")]
            Col::Kameo => self.on_main::<crate::peers::kameo_col::KameoCounter>(w, s),
            #[cfg(feature = "peers")]
            Col::Ractor => self.on_main::<crate::peers::ractor_col::RactorCounter>(w, s),
            #[cfg(feature = "peers")]
            Col::Actix => self.actix.run(w, s),
            Col::RayCkptNo => self.on_main::<CkptCounterHandle>(w, s),
            Col::RayRecon3 => self.on_main::<ReconCounterHandle>(w, s),
            Col::RayLocal => self.local.run(w, s),
            Col::RaySync => self.sync.run(w, s),
        }
    }
}

impl Drop for Envs {
    fn drop(&mut self) {
        if let Some(ray) = self.ray.take() {
            self.rt.block_on(ray.shutdown());
        }
    }
}

/// The runtime the tokio-based columns share: multi-threaded, one worker per core.
pub fn main_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a multi-threaded tokio runtime")
}
