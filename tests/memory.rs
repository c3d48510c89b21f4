//! Memory stays flat over a long run of calls: every object is freed when its
//! last ref drops. One test in this binary, so no other test disturbs RSS.

use std::time::Instant;

use ray::prelude::*;

#[ray::actor]
#[derive(Default)]
pub struct Sink {
    total: u64,
}

#[ray::actor]
impl Sink {
    pub fn add(&mut self, x: u64, payload: Vec<u8>) -> u64 {
        self.total += x + payload.len() as u64;
        self.total
    }
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

const CALLS: u64 = 1_000_000;
const BATCH: u64 = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rss_is_flat_over_a_million_calls() {
    let _ray = ray::init(Config::default()).unwrap();
    let sink = Sink::remote().unwrap();
    let start = Instant::now();
    let mut expected = 0u64;
    let mut baseline = 0;
    let mut peak = 0;
    for batch in 0..CALLS / BATCH {
        let refs: Vec<ObjectRef<u64>> = (0..BATCH)
            .map(|i| {
                expected += i + 16;
                sink.add(i, vec![0u8; 16])
            })
            .collect();
        assert_eq!(refs.last().unwrap().get().await.unwrap(), expected);
        drop(refs);
        if batch == 9 {
            baseline = rss_bytes();
        }
        if batch > 9 {
            peak = peak.max(rss_bytes());
        }
    }
    let growth = peak.saturating_sub(baseline);
    println!(
        "{CALLS} calls in {:?}; RSS after 100k calls {} KiB, peak after {} KiB, growth {} KiB",
        start.elapsed(),
        baseline / 1024,
        peak / 1024,
        growth / 1024
    );
    assert!(
        growth < 16 * 1024 * 1024,
        "RSS grew by {} KiB over {CALLS} calls",
        growth / 1024
    );
}
