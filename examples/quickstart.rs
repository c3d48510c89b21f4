//! The README demo: a typed counter actor on the embedded runtime.
//!
//! Run: `cargo run --example quickstart`

use ray::prelude::*;

/// A counter whose state lives inside an actor.
#[ray::actor]
pub struct Counter {
    value: i64,
}

#[ray::actor]
impl Counter {
    /// The constructor: `Counter::remote(10)` calls it inside the actor.
    pub fn new(start: i64) -> Self {
        Counter { value: start }
    }

    /// Adds `by` and returns the new value.
    pub fn incr(&mut self, by: i64) -> i64 {
        self.value += by;
        self.value
    }

    /// The value and its text, as two refs.
    #[method(num_returns = 2)]
    pub fn split(&self) -> (i64, String) {
        (self.value, format!("value is {}", self.value))
    }

    /// Fire and forget: returns nothing, still ordered.
    #[method(num_returns = 0)]
    pub fn reset(&mut self) {
        self.value = 0;
    }

    /// Fails on purpose: the caller gets `Error::Task`, the actor goes on.
    pub fn divide(&mut self, by: i64) -> Result<i64, String> {
        if by == 0 {
            return Err("division by zero".into());
        }
        self.value /= by;
        Ok(self.value)
    }
}

#[tokio::main]
async fn main() -> ray::Result<()> {
    let ray = ray::init(Config::default())?;
    println!("runtime started: {ray:?}");

    let counter = Counter::remote(10)?;
    println!("created {counter}");

    // Calls return refs at once; they run in order, one at a time.
    let refs: Vec<ObjectRef<i64>> = (1..=5).map(|i| counter.incr(i)).collect();
    for r in &refs {
        print!("{} ", r.get().await?);
    }
    println!("<- five increments, in submission order");

    let (value, text) = counter.split();
    println!("split: {} / {:?}", value.await?, text.await?);

    // A ref can be an argument: the call waits for it.
    let seven = ray::put(7);
    println!("incr(put(7)) = {}", counter.incr(&seven).await?);

    match counter.divide(0).await {
        Err(e) => println!("divide(0) failed as expected: {e}"),
        Ok(v) => println!("unexpected: {v}"),
    }

    counter.reset();
    println!("after reset(): incr(1) = {}", counter.incr(1).await?);

    // A fork is a new handle with its own ordered stream of calls.
    let fork = counter.clone();
    println!("fork {} has handle id {}", fork, fork.handle_id());
    println!("fork.incr(1) = {}", fork.incr(1).await?);

    println!(
        "methods: {:?}",
        Counter::METHODS.iter().map(|m| m.name).collect::<Vec<_>>()
    );
    ray.shutdown().await;
    println!("shut down cleanly");
    Ok(())
}
