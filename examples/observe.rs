//! Looking at a running program: the actor table, the error stream and a
//! timeline to open in Perfetto.
//!
//! A small shop runs on a 4-CPU, 1-GPU node: three `Stage` actors pass
//! batches down a pipeline, a checkpointed `Ledger` totals them (and is
//! crashed once on purpose, so it restarts: restore + replay), and two
//! `Renderer` actors each want the node's only GPU, so the second waits for
//! placement until the first is killed. Then it prints `ray::actors()` and
//! `ray::error_info()` and writes the timeline.
//!
//! Run: `cargo run --example observe -- [timeline.json]`, then open the file
//! in <https://ui.perfetto.dev> (or `chrome://tracing`): one track per actor,
//! every method execution a slice, checkpoints nested in the calls that took
//! them, the restart holding its restore and replay.

use std::time::Duration;

use ray::prelude::*;

/// One pipeline stage: takes ~`ms` per batch, adds its mark.
#[ray::actor]
pub struct Stage {
    mark: char,
    ms: u64,
}

#[ray::actor]
impl Stage {
    pub fn new(mark: char, ms: u64) -> Self {
        Stage { mark, ms }
    }

    pub async fn process(&self, batch: String) -> String {
        tokio::time::sleep(Duration::from_millis(self.ms)).await;
        format!("{batch}{}", self.mark)
    }
}

/// Totals what the pipeline produces; checkpoints every 2 calls.
#[ray::actor(checkpoint(every_calls = 2, keep = 2), max_reconstructions = 3)]
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct Ledger {
    entries: Vec<String>,
}

#[ray::actor]
impl Ledger {
    pub fn record(&mut self, batch: String) -> usize {
        std::thread::sleep(Duration::from_millis(2));
        self.entries.push(batch);
        self.entries.len()
    }
}

/// Wants the whole GPU for its life.
#[ray::actor(num_gpus = 1)]
#[derive(Default)]
pub struct Renderer;

#[ray::actor]
impl Renderer {
    pub fn render(&self, frame: u32) -> Vec<usize> {
        std::thread::sleep(Duration::from_millis(5 + u64::from(frame % 3)));
        ray::get_gpu_ids()
    }
}

#[tokio::main]
async fn main() -> ray::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/timeline.json".to_owned());
    let ray = ray::init(Config::default().num_cpus(4).num_gpus(1).timeline(true))?;

    let read = Stage::options().name("read").remote('r', 6)?;
    let clean = Stage::options().name("clean").remote('c', 9)?;
    let tag = Stage::options().name("tag").remote('t', 4)?;
    let ledger = Ledger::options().name("ledger").remote()?;
    let first = Renderer::remote()?;
    let second = Renderer::remote()?; // waits: the only GPU is first's

    let mut totals = Vec::new();
    for batch in 0..8 {
        let raw = read.process(format!("batch{batch}:"));
        let cleaned = clean.process(raw);
        let tagged = tag.process(cleaned);
        totals.push(ledger.record(tagged));
        if batch == 4 {
            // A crash between calls: the ledger restarts from its newest
            // checkpoint and replays the calls after it.
            ray::kill(&ledger, false);
        }
    }
    for frame in 0..4 {
        first.render(frame).await?;
    }
    let waiting = second.render(0);
    ray::kill(&first, true); // frees the GPU: second is placed now
    println!("second renderer got GPU {:?}", waiting.await?);
    let mut last = 0;
    for t in totals {
        last = t.await?;
    }
    assert_eq!(last, 8, "no batch lost across the crash");

    println!("\nray::actors():");
    println!(
        "{:<9} {:<8} {:<17} {:>8} {:>5} {:>6} {:>5}  resources",
        "class", "name", "state", "restarts", "queue", "done", "ckpts"
    );
    let mut causes = Vec::new();
    for a in ray::actors() {
        let state = match &a.state {
            ray::ActorStatus::Dead { cause } => {
                causes.push(format!("{} {}: {cause}", a.class_name, a.actor_id));
                "DEAD".to_owned()
            }
            other => other.to_string(),
        };
        println!(
            "{:<9} {:<8} {:<17} {:>5}/{:<2} {:>5} {:>6} {:>5}  {:?}",
            a.class_name,
            a.name.as_deref().unwrap_or("-"),
            state,
            a.restarts,
            a.max_restarts,
            a.queued_calls,
            a.completed_calls,
            a.checkpoints,
            a.resources
        );
    }
    for c in causes {
        println!("  dead: {c}");
    }
    println!("\nray::error_info():");
    for e in ray::error_info() {
        println!("  {:?} {:?}: {}", e.kind, e.actor_id, e.message);
    }
    let n = ray::timeline(&path)?;
    println!("\nwrote {n} timeline events to {path}: open it in https://ui.perfetto.dev");
    ray.shutdown().await;
    Ok(())
}
