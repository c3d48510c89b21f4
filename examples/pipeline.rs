//! A pipeline of actors: refs flow from stage to stage without the driver
//! waiting in between.
//!
//! Three stage actors — `Reader` -> `Cleaner` -> `WordCounter` — each take
//! about 30 ms per batch. The driver submits every call for every batch at
//! once, passing the `ObjectRef` returned by one stage as the argument of the
//! next. Each actor starts a call as soon as its input is ready, so the stages
//! overlap like an assembly line: batch 2 is being read while batch 1 is
//! cleaned and batch 0 is counted.
//!
//! Run: `cargo run --example pipeline`

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ray::prelude::*;

const STAGE_TIME: Duration = Duration::from_millis(30);
const BATCHES: usize = 6;

const TEXT: [&str; BATCHES] = [
    "The quick brown fox jumps over the lazy dog.",
    "The dog sleeps; the fox runs!",
    "Actors run one call at a time, in order.",
    "Refs flow between actors without waiting.",
    "The fox, the dog, and the actor.",
    "Order per handle; overlap across actors.",
];

/// Milliseconds since the program started, for the log lines.
fn t() -> u128 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis()
}

/// Stage 1: "reads" a batch of raw text (pretend it is slow I/O).
#[ray::actor]
#[derive(Default)]
pub struct Reader {}

#[ray::actor]
impl Reader {
    pub async fn read(&self, batch: usize) -> String {
        println!("{:>4} ms  reader   starts batch {batch}", t());
        tokio::time::sleep(STAGE_TIME).await;
        TEXT[batch].to_string()
    }
}

/// Stage 2: lowercases and strips punctuation.
#[ray::actor]
#[derive(Default)]
pub struct Cleaner {}

#[ray::actor]
impl Cleaner {
    pub async fn clean(&self, batch: usize, raw: String) -> Vec<String> {
        println!(
            "{:>4} ms  cleaner  starts batch {batch} (its input is ready)",
            t()
        );
        tokio::time::sleep(STAGE_TIME).await;
        raw.split_whitespace()
            .map(|w| {
                w.chars()
                    .filter(|c| c.is_alphanumeric())
                    .collect::<String>()
                    .to_lowercase()
            })
            .filter(|w| !w.is_empty())
            .collect()
    }
}

/// Stage 3: keeps running word counts; its state persists across batches.
#[ray::actor]
#[derive(Default)]
pub struct WordCounter {
    counts: BTreeMap<String, u32>,
    batches: usize,
}

#[ray::actor]
impl WordCounter {
    /// Adds one batch and returns how many batches it has seen.
    pub async fn count(&mut self, batch: usize, words: Vec<String>) -> usize {
        println!("{:>4} ms  counter  starts batch {batch}", t());
        tokio::time::sleep(STAGE_TIME).await;
        for w in words {
            *self.counts.entry(w).or_default() += 1;
        }
        self.batches += 1;
        self.batches
    }

    /// The `n` most frequent words.
    pub fn top(&self, n: usize) -> Vec<(String, u32)> {
        let mut v: Vec<_> = self.counts.iter().map(|(w, c)| (w.clone(), *c)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }
}

#[tokio::main]
async fn main() -> ray::Result<()> {
    t();
    let ray = ray::init(Config::default())?;
    let reader = Reader::remote()?;
    let cleaner = Cleaner::remote()?;
    let counter = WordCounter::remote()?;

    println!("Submitting {BATCHES} batches x 3 stages; no call waits for another in the driver.");
    let submit_start = Instant::now();
    let mut ends: Vec<ObjectRef<usize>> = Vec::new();
    for batch in 0..BATCHES {
        let raw: ObjectRef<String> = reader.read(batch); // returns at once
        let words = cleaner.clean(batch, raw); // a ref as the argument: no waiting here
        ends.push(counter.count(batch, words)); // and again
    }
    println!(
        "{:>4} ms  driver   submitted {} calls in {:?}; now waiting on the last stage only",
        t(),
        BATCHES * 3,
        submit_start.elapsed()
    );

    // Wait for the first half of the batches to get through, then for all.
    let (done, pending) = ray::wait(&ends, BATCHES / 2, None).await;
    println!(
        "{:>4} ms  driver   ray::wait: {} batches through the pipeline, {} still in flight",
        t(),
        done.len(),
        pending.len()
    );
    let (done, _) = ray::wait(&ends, BATCHES, None).await;
    let seen = done.last().expect("one ref per batch").get().await?;
    let elapsed = t();
    println!("{elapsed:>4} ms  driver   all {seen} batches counted");

    let serial = STAGE_TIME.as_millis() * (BATCHES as u128) * 3;
    let ideal = STAGE_TIME.as_millis() * (BATCHES as u128 + 2);
    println!();
    println!(
        "Stages overlapped: ~{elapsed} ms in total, versus {serial} ms if each call waited for the \
         previous one (ideal pipeline: (batches + stages - 1) x 30 ms = {ideal} ms)."
    );
    println!(
        "Each actor still ran its own calls one at a time, in order: the counter saw the batches 0..{}.",
        BATCHES - 1
    );
    println!("Top words: {:?}", counter.top(3).await?);

    ray.shutdown().await;
    Ok(())
}
