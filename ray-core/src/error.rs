//! The one public error type.

use crate::ids::ActorId;

/// A boxed error, as returned by the fallible [`Checkpointable`](crate::Checkpointable) hooks.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the framework.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An actor was created (or a runtime looked up) with no runtime current.
    #[error(
        "Actors cannot be created before ray::init() has been called: call \
         `ray::init(Config::default())` first, or make a runtime current with `Ray::enter()`"
    )]
    NotInitialized,

    /// A method (or remote function) returned `Err` or panicked. The actor goes on
    /// after an `Err`.
    #[error("{class}.{method} failed: {message}")]
    Task {
        /// The actor class, or for a remote function the module it is declared in.
        class: String,
        /// The method or function name.
        method: String,
        /// The error's `Display` text, or `panicked: <panic message>`.
        message: String,
    },

    /// The actor is dead: killed, stopped, or out of restarts.
    #[error("actor {class}({actor_id}) died: {cause}")]
    ActorDied {
        /// The actor class.
        class: String,
        /// The actor.
        actor_id: ActorId,
        /// Why it died.
        cause: String,
    },

    /// The actor's constructor returned `Err` or panicked; every call fails with this.
    #[error("actor {class}({actor_id}) could not be created: {message}")]
    ActorCreationFailed {
        /// The actor class.
        class: String,
        /// The actor.
        actor_id: ActorId,
        /// The constructor's error message.
        message: String,
    },

    /// No such actor here: a name not registered, or a deserialized handle whose
    /// actor this runtime does not know.
    #[error("actor not found: {0}")]
    ActorNotFound(String),

    /// A value given to the framework is out of range or malformed; the message says what is allowed.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A checkpoint could not be saved, loaded or expired.
    #[error("checkpoint error: {0}")]
    Checkpoint(String),

    /// The producer of an object went away without producing it (its call was
    /// dropped, e.g. because its runtime shut down).
    #[error("object {0} was lost: its producer went away before producing it")]
    ObjectLost(crate::ids::ObjectId),

    /// A wait ran out of time.
    #[error("timed out")]
    Timeout,
}

impl Error {
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }
}
