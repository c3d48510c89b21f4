//! Runtime of the `ray` actor framework. Users depend on the `ray` facade
//! crate, which re-exports this crate and the `#[ray::actor]` macros.
//!
//! Modules follow the architecture: [`ids`] (20-byte IDs), [`runtime`] (init,
//! current runtime, shutdown, error stream), [`actor`] (classes, handles, the
//! actor task), [`executor`] (per-handle ordering), [`object`] (refs, put, get,
//! wait), [`call`] (arguments, return kinds, method metadata), [`checkpoint`].

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod actor;
mod block;
pub mod call;
pub mod checkpoint;
pub mod config;
mod core;
pub mod error;
mod exec;
pub mod executor;
pub(crate) mod flag;
pub mod function;
pub mod ids;
mod mailbox;
pub mod object;
pub mod observe;
mod queue;
pub mod resources;
pub mod runtime;
pub mod sqlite;
mod stopwatch;

#[doc(hidden)]
pub mod __private;

pub use actor::{get_actor, kill, ActorClass, ActorHandle, ActorOptions, INFINITE_RECONSTRUCTION};
pub use call::{Arg, IntoArg, MethodDescriptor, Receiver, MAX_NUM_RETURNS};
pub use checkpoint::{
    Checkpoint, CheckpointContext, CheckpointPolicy, CheckpointRecord, CheckpointStore,
    Checkpointable, MemoryStore,
};
pub use config::Config;
pub use error::{BoxError, Error, Result};
pub use function::{FunctionDescriptor, TaskOptions};
pub use ids::{ActorHandleId, ActorId, CheckpointId, ObjectId, TaskId};
pub use object::{get, put, wait, ObjectRef};
pub use observe::{actors, timeline, ActorState, ActorStatus};
pub use resources::ResourceSet;
pub use runtime::{
    available_resources, cluster_resources, current_task_id, error_info, get_checkpoints_for_actor,
    get_gpu_ids, init, is_initialized, EnterGuard, ErrorInfo, ErrorKind, Ray,
};
