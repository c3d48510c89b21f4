//! Checkpointing (SEMANTICS §7): Ray's `Checkpointable` hooks, automatic serde
//! state checkpoints, and the checkpoint store.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::{BoxError, Result};
use crate::executor::FrontierSnapshot;
use crate::ids::{ActorId, CheckpointId};

/// What `should_checkpoint` sees after each completed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointContext {
    /// The actor.
    pub actor_id: ActorId,
    /// Calls completed since the last checkpoint (the first call after creation sees 1).
    pub num_tasks_since_last_checkpoint: u64,
    /// Milliseconds since the last checkpoint (or creation).
    ///
    /// Exact for the first call in each tick of the kernel's coarse clock
    /// (1-4 ms on Linux), so after any pause; later calls in the same tick
    /// see that call's value again (behind by less than a tick, never
    /// ahead). This keeps the clock off the cost of every call.
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

/// One recorded checkpoint as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CheckpointRecord {
    /// Its ID.
    pub checkpoint_id: CheckpointId,
    /// Milliseconds since the Unix epoch.
    pub timestamp: u64,
    /// The actor's frontier when it was taken (including the call just finished).
    pub frontier: FrontierSnapshot,
    /// The actor's state, for automatic (serde) checkpoints.
    pub state: Option<Vec<u8>>,
}

impl CheckpointRecord {
    /// The public view.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            checkpoint_id: self.checkpoint_id,
            timestamp: self.timestamp,
        }
    }
}

/// Where checkpoint metadata (and automatic checkpoints' state) lives. The
/// store tracks each checkpoint's life: *pending* (recorded, save not yet
/// done), *committed* (usable), *expired* (dropped, expiry not yet reported).
/// Expiry is tracked across incarnations of an actor, so each dropped
/// checkpoint is reported exactly once.
pub trait CheckpointStore: Send + Sync + std::fmt::Debug {
    /// Records a pending checkpoint.
    fn begin(&self, actor: ActorId, record: &CheckpointRecord) -> Result<()>;
    /// Makes a pending checkpoint usable (its save succeeded).
    fn commit(&self, actor: ActorId, id: CheckpointId) -> Result<()>;
    /// Forgets a checkpoint without reporting it (its save failed), or an
    /// expired one after its expiry was reported.
    fn forget(&self, actor: ActorId, id: CheckpointId) -> Result<()>;
    /// Committed checkpoints, newest first. Corrupt records are skipped.
    fn list(&self, actor: ActorId) -> Result<Vec<CheckpointRecord>>;
    /// Marks committed checkpoints beyond the newest `keep` as expired, and
    /// returns every expired, not yet forgotten checkpoint, oldest first.
    fn expire(&self, actor: ActorId, keep: usize) -> Result<Vec<CheckpointId>>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    Pending,
    Committed,
    Expired,
}

/// The in-memory store: checkpoints outlive actor restarts, not the process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    /// Only actors with checkpoints recorded have an entry.
    actors: Mutex<HashMap<ActorId, Records, crate::executor::IdBuildHasher>>,
}

/// One actor's checkpoint records, oldest first.
type Records = Vec<(CheckpointRecord, Life)>;

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// `f` on `actor`'s records. An actor without any keeps no entry (every
    /// checkpointable actor lists and expires at start, most never save).
    fn with<R>(&self, actor: ActorId, f: impl FnOnce(&mut Records) -> R) -> R {
        let mut m = self.actors.lock().unwrap_or_else(|p| p.into_inner());
        let mut records = m.remove(&actor).unwrap_or_default();
        let r = f(&mut records);
        if !records.is_empty() {
            m.insert(actor, records);
        }
        r
    }
}

impl CheckpointStore for MemoryStore {
    fn begin(&self, actor: ActorId, record: &CheckpointRecord) -> Result<()> {
        self.with(actor, |v| v.push((record.clone(), Life::Pending)));
        Ok(())
    }

    fn commit(&self, actor: ActorId, id: CheckpointId) -> Result<()> {
        self.with(actor, |v| {
            for (r, life) in v.iter_mut() {
                if r.checkpoint_id == id && *life == Life::Pending {
                    *life = Life::Committed;
                }
            }
        });
        Ok(())
    }

    fn forget(&self, actor: ActorId, id: CheckpointId) -> Result<()> {
        self.with(actor, |v| v.retain(|(r, _)| r.checkpoint_id != id));
        Ok(())
    }

    fn list(&self, actor: ActorId) -> Result<Vec<CheckpointRecord>> {
        Ok(self.with(actor, |v| {
            v.iter()
                .rev()
                .filter(|(_, l)| *l == Life::Committed)
                .map(|(r, _)| r.clone())
                .collect()
        }))
    }

    fn expire(&self, actor: ActorId, keep: usize) -> Result<Vec<CheckpointId>> {
        Ok(self.with(actor, |v| {
            let committed = v.iter().filter(|(_, l)| *l == Life::Committed).count();
            let mut excess = committed.saturating_sub(keep);
            for (_, life) in v.iter_mut() {
                if excess == 0 {
                    break;
                }
                if *life == Life::Committed {
                    *life = Life::Expired;
                    excess -= 1;
                }
            }
            v.iter()
                .filter(|(_, l)| *l == Life::Expired)
                .map(|(r, _)| r.checkpoint_id)
                .collect()
        }))
    }
}

/// `Checkpointable::load_checkpoint` as a function pointer.
type LoadHook<A> =
    fn(&mut A, ActorId, &[Checkpoint]) -> std::result::Result<Option<CheckpointId>, BoxError>;
type Encode<A> = fn(&A) -> std::result::Result<Vec<u8>, String>;
type Decode<A> = fn(&[u8]) -> std::result::Result<A, String>;

/// How an actor class checkpoints. Generated by `#[ray::actor(checkpointable)]`
/// (Ray's hooks) or `#[ray::actor(checkpoint(..))]` (automatic serde state).
pub struct CheckpointPolicy<A> {
    pub(crate) kind: PolicyKind<A>,
}

impl<A> std::fmt::Debug for CheckpointPolicy<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            PolicyKind::Hooks { .. } => f.write_str("CheckpointPolicy::Hooks"),
            PolicyKind::Auto {
                every_calls,
                every_ms,
                keep,
                ..
            } => f
                .debug_struct("CheckpointPolicy::Auto")
                .field("every_calls", every_calls)
                .field("every_ms", every_ms)
                .field("keep", keep)
                .finish(),
        }
    }
}

pub(crate) enum PolicyKind<A> {
    Hooks {
        should: fn(&mut A, &CheckpointContext) -> bool,
        save: fn(&mut A, ActorId, CheckpointId) -> std::result::Result<(), BoxError>,
        load: LoadHook<A>,
        expired: fn(&mut A, ActorId, CheckpointId) -> std::result::Result<(), BoxError>,
    },
    Auto {
        every_calls: Option<u64>,
        every_ms: Option<u64>,
        keep: Option<usize>,
        encode: Encode<A>,
        decode: Decode<A>,
    },
}

impl<A: Checkpointable> CheckpointPolicy<A> {
    /// Ray's policy: the four [`Checkpointable`] hooks.
    pub fn hooks() -> Self {
        CheckpointPolicy {
            kind: PolicyKind::Hooks {
                should: A::should_checkpoint,
                save: A::save_checkpoint,
                load: A::load_checkpoint,
                expired: A::checkpoint_expired,
            },
        }
    }
}

impl<A: serde::Serialize + serde::de::DeserializeOwned> CheckpointPolicy<A> {
    /// Automatic state checkpoints every `every_calls` calls and/or every
    /// `every_ms` milliseconds, keeping `keep` (default: the runtime's setting).
    /// The state is encoded with postcard.
    pub fn auto(every_calls: Option<u64>, every_ms: Option<u64>, keep: Option<usize>) -> Self {
        CheckpointPolicy {
            kind: PolicyKind::Auto {
                every_calls,
                every_ms,
                keep,
                encode: |a| postcard::to_allocvec(a).map_err(|e| e.to_string()),
                decode: |b| postcard::from_bytes(b).map_err(|e| e.to_string()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> CheckpointRecord {
        CheckpointRecord {
            checkpoint_id: CheckpointId::random(),
            timestamp: 1,
            frontier: FrontierSnapshot::default(),
            state: None,
        }
    }

    #[test]
    fn the_memory_store_keeps_no_entry_for_actors_without_checkpoints() {
        let store = MemoryStore::new();
        let entries = || store.actors.lock().unwrap().len();
        for _ in 0..100 {
            let a = ActorId::random();
            assert!(store.list(a).unwrap().is_empty());
            assert!(store.expire(a, 20).unwrap().is_empty());
        }
        assert_eq!(entries(), 0, "listing and expiring record nothing");
        let a = ActorId::random();
        let (r1, r2) = (record(), record());
        store.begin(a, &r1).unwrap();
        store.commit(a, r1.checkpoint_id).unwrap();
        store.begin(a, &r2).unwrap();
        store.commit(a, r2.checkpoint_id).unwrap();
        assert_eq!(entries(), 1);
        assert_eq!(store.expire(a, 1).unwrap(), vec![r1.checkpoint_id]);
        store.forget(a, r1.checkpoint_id).unwrap();
        let listed: Vec<_> = store
            .list(a)
            .unwrap()
            .iter()
            .map(|r| r.checkpoint_id)
            .collect();
        assert_eq!(listed, vec![r2.checkpoint_id]);
        store.forget(a, r2.checkpoint_id).unwrap();
        assert_eq!(
            entries(),
            0,
            "the last checkpoint forgotten, the entry goes"
        );
    }
}
