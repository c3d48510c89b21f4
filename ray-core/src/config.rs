//! Runtime configuration.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Default number of checkpoints kept per actor.
pub const DEFAULT_CHECKPOINTS_TO_KEEP: usize = 20;

/// Configuration of one runtime, passed to [`init`](crate::init). A builder:
///
/// ```
/// let config = ray_core::Config::default().num_cpus(4).num_gpus(0.5).resource("disk", 2);
/// assert_eq!(config.get_num_cpus(), 4.0);
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) num_cpus: Option<f64>,
    pub(crate) num_gpus: f64,
    pub(crate) resources: BTreeMap<String, f64>,
    pub(crate) local_mode: bool,
    pub(crate) checkpoint_dir: Option<PathBuf>,
    pub(crate) checkpoints_to_keep: usize,
    pub(crate) worker_threads: Option<usize>,
    pub(crate) max_replay_log: usize,
    pub(crate) timeline: bool,
    pub(crate) timeline_capacity: usize,
}

/// Default capacity of the timeline, in events.
pub const DEFAULT_TIMELINE_CAPACITY: usize = 1_000_000;

/// Default cap of an actor's replay log, in calls.
pub const DEFAULT_MAX_REPLAY_LOG: usize = 100_000;

impl Default for Config {
    fn default() -> Self {
        Config {
            num_cpus: None,
            num_gpus: 0.0,
            resources: BTreeMap::new(),
            local_mode: false,
            checkpoint_dir: None,
            checkpoints_to_keep: DEFAULT_CHECKPOINTS_TO_KEEP,
            worker_threads: None,
            max_replay_log: DEFAULT_MAX_REPLAY_LOG,
            timeline: false,
            timeline_capacity: DEFAULT_TIMELINE_CAPACITY,
        }
    }
}

impl Config {
    /// Records a timeline of every method execution, creation, checkpoint,
    /// restart and death, for [`ray::timeline`](crate::observe::timeline)
    /// (default off; the environment variable `RAY_TIMELINE=1` turns it on
    /// too). Off, it costs nothing; on, about two clock reads and one short
    /// lock per call.
    pub fn timeline(mut self, on: bool) -> Self {
        self.timeline = on;
        self
    }

    /// How many timeline events are kept (default
    /// [`DEFAULT_TIMELINE_CAPACITY`]); past it the oldest are dropped (the
    /// JSON's `otherData.dropped_events` counts them).
    pub fn timeline_capacity(mut self, events: usize) -> Self {
        self.timeline_capacity = events;
        self
    }

    /// CPUs of the node (default: the machine's cores).
    pub fn num_cpus(mut self, q: impl Into<f64>) -> Self {
        self.num_cpus = Some(q.into());
        self
    }

    /// GPUs of the node (default 0).
    pub fn num_gpus(mut self, q: impl Into<f64>) -> Self {
        self.num_gpus = q.into();
        self
    }

    /// A named custom resource of the node. `CPU` and `GPU` are not allowed as names.
    pub fn resource(mut self, name: &str, q: impl Into<f64>) -> Self {
        self.resources.insert(name.to_owned(), q.into());
        self
    }

    /// Local mode: every call runs synchronously in the caller at submission.
    pub fn local_mode(mut self, on: bool) -> Self {
        self.local_mode = on;
        self
    }

    /// Directory of the persistent checkpoint store (default: in memory).
    pub fn checkpoint_dir(mut self, path: impl Into<PathBuf>) -> Self {
        self.checkpoint_dir = Some(path.into());
        self
    }

    /// Checkpoints kept per actor (default 20); older ones expire.
    pub fn num_actor_checkpoints_to_keep(mut self, n: usize) -> Self {
        self.checkpoints_to_keep = n;
        self
    }

    /// Worker threads of the tokio runtime the framework starts when
    /// [`init`](crate::init) is called outside any tokio runtime (default: the
    /// machine's cores). Ignored inside a tokio runtime, whose workers are used.
    pub fn worker_threads(mut self, n: usize) -> Self {
        self.worker_threads = Some(n);
        self
    }

    /// Cap of each actor's replay log, in calls (default 100 000). Past it, a
    /// checkpointable actor is checkpointed at once and its log restarts from
    /// there; any other actor stops logging (after a crash it restarts from its
    /// constructor alone), and the error stream says so.
    pub fn max_replay_log(mut self, calls: usize) -> Self {
        self.max_replay_log = calls.max(1);
        self
    }

    /// The configured CPUs (the machine's cores when not set).
    pub fn get_num_cpus(&self) -> f64 {
        self.num_cpus.unwrap_or_else(|| machine_cores() as f64)
    }

    /// Whether local mode is on.
    pub fn is_local_mode(&self) -> bool {
        self.local_mode
    }
}

pub(crate) fn machine_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Checks one resource quantity: non-negative and finite; above 1 it must be whole.
pub(crate) fn check_quantity(what: &str, q: f64) -> crate::Result<()> {
    if !q.is_finite() || q < 0.0 {
        return Err(crate::Error::invalid(format!(
            "{what} must be a non-negative number, got {q}"
        )));
    }
    if q > 1.0 && q.fract() != 0.0 {
        return Err(crate::Error::invalid(format!(
            "{what} = {q}: quantities above 1 must be whole numbers (fractions are allowed only below 1)"
        )));
    }
    Ok(())
}

pub(crate) fn check_resource_name(name: &str) -> crate::Result<()> {
    if name == "CPU" || name == "GPU" {
        return Err(crate::Error::invalid(format!(
            "`{name}` cannot be used as a custom resource name: use num_cpus / num_gpus instead"
        )));
    }
    if name.is_empty() {
        return Err(crate::Error::invalid(
            "custom resource names cannot be empty",
        ));
    }
    Ok(())
}

impl Config {
    pub(crate) fn validate(&self) -> crate::Result<()> {
        if let Some(c) = self.num_cpus {
            check_quantity("num_cpus", c)?;
        }
        check_quantity("num_gpus", self.num_gpus)?;
        for (name, q) in &self.resources {
            check_resource_name(name)?;
            check_quantity(&format!("resource `{name}`"), *q)?;
        }
        if self.worker_threads == Some(0) {
            return Err(crate::Error::invalid("worker_threads must be at least 1"));
        }
        if self.timeline_capacity == 0 {
            return Err(crate::Error::invalid(
                "timeline_capacity must be at least 1 (turn the timeline off with timeline(false))",
            ));
        }
        Ok(())
    }
}
