//! An actor declared through a renamed facade crate. In this package `::ray`
//! does not exist, so it only compiles if every generated path honors
//! `crate = "my_ray"`.

/// Shadows the usual name with something that is not the framework, so a
/// relative `ray::` path in generated code would not resolve to it either.
#[allow(dead_code)]
mod ray {}

/// A counter actor.
#[my_ray::actor(crate = "my_ray", num_cpus = 1, max_reconstructions = 2)]
pub struct Counter {
    value: i64,
}

#[my_ray::actor(crate = "my_ray")]
impl Counter {
    /// Starts at `start`.
    pub fn new(start: i64) -> Result<Self, String> {
        Ok(Counter { value: start })
    }
    /// Adds `by`.
    pub fn incr(&mut self, by: i64) -> i64 {
        self.value += by;
        self.value
    }
    /// The value and its text.
    #[my_ray::method(num_returns = 2)]
    pub fn split(&self) -> (i64, String) {
        (self.value, self.value.to_string())
    }
    /// Back to zero.
    #[method(num_returns = 0)]
    pub fn reset(&mut self) {
        self.value = 0;
    }
    /// The value, asynchronously.
    pub async fn slow_get(&self) -> Result<i64, String> {
        Ok(self.value)
    }
}

/// An actor built from `Default`, with a checkpoint hook.
#[my_ray::actor(crate = "my_ray", checkpointable)]
#[derive(Default)]
pub struct Tally {
    count: u64,
}

impl my_ray::Checkpointable for Tally {
    fn should_checkpoint(&mut self, _ctx: &my_ray::CheckpointContext) -> bool {
        false
    }
    fn save_checkpoint(
        &mut self,
        _actor_id: my_ray::ActorId,
        _id: my_ray::CheckpointId,
    ) -> Result<(), my_ray::BoxError> {
        Ok(())
    }
    fn load_checkpoint(
        &mut self,
        _actor_id: my_ray::ActorId,
        _available: &[my_ray::Checkpoint],
    ) -> Result<Option<my_ray::CheckpointId>, my_ray::BoxError> {
        Ok(None)
    }
    fn checkpoint_expired(
        &mut self,
        _actor_id: my_ray::ActorId,
        _id: my_ray::CheckpointId,
    ) -> Result<(), my_ray::BoxError> {
        Ok(())
    }
}

#[my_ray::actor(crate = "my_ray")]
impl Tally {
    /// Adds one.
    pub fn tick(&mut self) -> u64 {
        self.count += 1;
        self.count
    }
}
