#![doc = include_str!("../README.md")]
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub use ray_core::{
    actor, actors, available_resources, call, checkpoint, cluster_resources, config,
    current_task_id, error, error_info, executor, function, get, get_actor,
    get_checkpoints_for_actor, get_gpu_ids, ids, init, is_initialized, kill, object, observe, put,
    resources, runtime, sqlite, timeline, wait, ActorClass, ActorHandle, ActorHandleId, ActorId,
    ActorOptions, ActorState, ActorStatus, Arg, BoxError, Checkpoint, CheckpointContext,
    CheckpointId, CheckpointPolicy, CheckpointRecord, CheckpointStore, Checkpointable, Config,
    EnterGuard, Error, ErrorInfo, ErrorKind, FunctionDescriptor, IntoArg, MemoryStore,
    MethodDescriptor, ObjectId, ObjectRef, Ray, Receiver, ResourceSet, Result, TaskId, TaskOptions,
    INFINITE_RECONSTRUCTION, MAX_NUM_RETURNS,
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
    #[doc = include_str!("../book/src/introduction.md")]
    struct Introduction;
    #[doc = include_str!("../book/src/quickstart.md")]
    struct Quickstart;
    #[doc = include_str!("../book/src/actors.md")]
    struct Actors;
    #[doc = include_str!("../book/src/handles.md")]
    struct Handles;
    #[doc = include_str!("../book/src/returns.md")]
    struct Returns;
    #[doc = include_str!("../book/src/objects.md")]
    struct Objects;
    #[doc = include_str!("../book/src/remote_functions.md")]
    struct RemoteFunctions;
    #[doc = include_str!("../book/src/local_mode.md")]
    struct LocalMode;
    #[doc = include_str!("../book/src/named.md")]
    struct Named;
    #[doc = include_str!("../book/src/resources.md")]
    struct Resources;
    #[doc = include_str!("../book/src/checkpointing.md")]
    struct Checkpointing;
    #[doc = include_str!("../book/src/fault_tolerance.md")]
    struct FaultTolerance;
    #[doc = include_str!("../book/src/coming_from_ray.md")]
    struct ComingFromRay;
    #[doc = include_str!("../book/src/macro_reference.md")]
    struct MacroReference;
    #[doc = include_str!("../book/src/observability.md")]
    struct Observability;
    #[doc = include_str!("../book/src/architecture.md")]
    struct Architecture;
    #[doc = include_str!("../book/src/performance.md")]
    struct Performance;
}
