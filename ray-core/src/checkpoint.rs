//! Checkpointing types (SEMANTICS §7). The policy's run-time effect comes with
//! the checkpointing issue; the trait is here so `#[actor(checkpointable)]`
//! can be checked at compile time.

use crate::error::BoxError;
use crate::ids::{ActorId, CheckpointId};

/// What `should_checkpoint` sees after each completed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointContext {
    /// The actor.
    pub actor_id: ActorId,
    /// Calls completed since the last checkpoint (the first call after creation sees 1).
    pub num_tasks_since_last_checkpoint: u64,
    /// Milliseconds since the last checkpoint (or creation).
    pub time_elapsed_ms_since_last_checkpoint: u64,
}

/// A recorded checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// Its ID.
    pub checkpoint_id: CheckpointId,
    /// When it was taken, in milliseconds since the Unix epoch.
    pub timestamp: u64,
}

/// Ray's checkpoint policy for an actor declared `#[ray::actor(checkpointable)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is declared `checkpointable` but does not implement `ray::Checkpointable`",
    label = "declared checkpointable here",
    note = "implement `ray::Checkpointable` for `{Self}` (should_checkpoint, save_checkpoint, load_checkpoint, checkpoint_expired), or remove `checkpointable`"
)]
pub trait Checkpointable {
    /// Called after every completed call: should a checkpoint be taken now?
    fn should_checkpoint(&mut self, ctx: &CheckpointContext) -> bool;
    /// Saves the actor's state under `checkpoint_id`.
    fn save_checkpoint(
        &mut self,
        actor_id: ActorId,
        checkpoint_id: CheckpointId,
    ) -> Result<(), BoxError>;
    /// Restores from one of `available` (newest first); `None` starts fresh.
    fn load_checkpoint(
        &mut self,
        actor_id: ActorId,
        available: &[Checkpoint],
    ) -> Result<Option<CheckpointId>, BoxError>;
    /// A checkpoint was removed; drop its saved state.
    fn checkpoint_expired(
        &mut self,
        actor_id: ActorId,
        checkpoint_id: CheckpointId,
    ) -> Result<(), BoxError>;
}
