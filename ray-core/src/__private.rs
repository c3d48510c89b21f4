//! What generated code needs. Not public API: names here change without notice.

pub use crate::actor::{
    create_actor, ActorClass, ActorHandle, ActorOptions, Invoke, Method, RawHandle,
};
pub use crate::call::{
    Arg, ArgTuple, BoxFuture, IntoArg, Many, MethodDescriptor, One, Receiver, Returns, Zero,
};
pub use crate::checkpoint::{CheckpointPolicy, Checkpointable};
pub use crate::error::{Error, Result};
pub use crate::exec::{CallBox, CallRefs, MethodCall};
pub use crate::function::{submit as submit_function, FnInvoke, FunctionDescriptor, TaskOptions};
pub use crate::object::ObjectRef;
pub use ::core;
pub use ::serde;
pub use ::std::boxed::Box;
pub use ::std::string::String;

/// The `Display` text of a method's error.
pub fn error_message<E: ::core::fmt::Display + ?Sized>(e: &E) -> String {
    e.to_string()
}

/// Asserts at compile time that an actor's state can move between threads.
pub const fn assert_actor_state<T: Send + 'static>() {}

/// Compile-time check used when an actor has no constructor.
#[diagnostic::on_unimplemented(
    message = "actor `{Self}` has no constructor and does not implement `Default`",
    label = "no associated function returns `Self` here",
    note = "add an associated function returning `Self` (or `Result<Self, E>`) to the `#[ray::actor]` impl block, or derive `Default` for `{Self}`"
)]
pub trait DefaultConstructor: Sized {
    /// `Default::default()`.
    fn construct() -> Self;
}

impl<T: Default> DefaultConstructor for T {
    fn construct() -> Self {
        T::default()
    }
}

/// A handle to the same actor as `h` with handle ID `id`, made through the
/// real handle code path (test hook for the handle ID vectors).
pub fn handle_with_id<H: ActorHandle>(h: &H, id: crate::ActorHandleId) -> H {
    H::__from_raw(h.__raw().with_handle_id(id))
}

/// Runs `f` as if inside task `task`: a handle deserialized in `f` derives its
/// ID from `task` (test hook for the handle ID vectors).
pub fn with_task_id<R>(task: crate::TaskId, f: impl FnOnce() -> R) -> R {
    crate::runtime::with_task_id(task, f)
}

/// `CheckpointPolicy::hooks()` as a bounded function, so a missing
/// `Checkpointable` impl is reported with its own message.
pub fn checkpoint_hooks<A: Checkpointable>() -> CheckpointPolicy<A> {
    CheckpointPolicy::hooks()
}

/// `CheckpointPolicy::auto(..)` as a bounded function.
pub fn checkpoint_auto<A: ::serde::Serialize + ::serde::de::DeserializeOwned>(
    every_calls: Option<u64>,
    every_ms: Option<u64>,
    keep: Option<usize>,
) -> CheckpointPolicy<A> {
    CheckpointPolicy::auto(every_calls, every_ms, keep)
}
