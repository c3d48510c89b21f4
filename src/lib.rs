#![doc = include_str!("../README.md")]
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub use ray_core::{
    actor, call, checkpoint, config, current_task_id, error, error_info, executor, function, get,
    get_actor, get_checkpoints_for_actor, ids, init, is_initialized, kill, object, put, runtime,
    sqlite, wait, ActorClass, ActorHandle, ActorHandleId, ActorId, ActorOptions, Arg, BoxError,
    Checkpoint, CheckpointContext, CheckpointId, CheckpointPolicy, CheckpointRecord,
    CheckpointStore, Checkpointable, Config, EnterGuard, Error, ErrorInfo, ErrorKind,
    FunctionDescriptor, IntoArg, MemoryStore, MethodDescriptor, ObjectId, ObjectRef, Ray, Receiver,
    Result, TaskId, TaskOptions, INFINITE_RECONSTRUCTION, MAX_NUM_RETURNS,
};
pub use ray_macros::{actor, method, remote};

/// Everything most programs need: `use ray::prelude::*;`.
pub mod prelude {
    pub use crate::{
        actor, method, remote, ActorHandle, ActorId, Checkpoint, CheckpointContext, CheckpointId,
        Checkpointable, Config, Error, ObjectRef, Result,
    };
}

#[doc(hidden)]
pub use ray_core::__private;

/// The book's pages, compiled and run as doctests so no snippet rots.
#[cfg(doctest)]
mod book {
    #[doc = include_str!("../book/src/handles.md")]
    struct Handles;
}
