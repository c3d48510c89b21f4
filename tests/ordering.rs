//! Ordered execution through the public API: many concurrent callers sharing
//! one handle, forks, random yields and delays.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use ray::prelude::*;

#[ray::actor]
#[derive(Default)]
pub struct Log {
    entries: Vec<(u32, u32)>,
    running: bool,
}

#[ray::actor]
impl Log {
    pub fn push(&mut self, key: u32, seq: u32) -> usize {
        self.entries.push((key, seq));
        self.entries.len()
    }

    pub async fn push_slowly(&mut self, key: u32, seq: u32, yields: u32) -> usize {
        assert!(!self.running, "two calls of one actor overlapped");
        self.running = true;
        for _ in 0..yields {
            tokio::task::yield_now().await;
        }
        self.entries.push((key, seq));
        self.running = false;
        self.entries.len()
    }

    pub fn entries(&self) -> Vec<(u32, u32)> {
        self.entries.clone()
    }
}

fn per_key(entries: &[(u32, u32)]) -> HashMap<u32, Vec<u32>> {
    let mut m: HashMap<u32, Vec<u32>> = HashMap::new();
    for &(k, s) in entries {
        m.entry(k).or_default().push(s);
    }
    m
}

/// Many tasks share one handle through an `Arc`: every task's calls run in
/// the order it made them, and every call runs exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn callers_sharing_one_handle_get_a_total_order() {
    let _ray = ray::init(Config::default()).unwrap();
    let log = Arc::new(Log::remote().unwrap());
    let mut tasks = Vec::new();
    for key in 0..16u32 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(key));
            let mut refs = Vec::new();
            for seq in 0..200u32 {
                refs.push(log.push(key, seq));
                if rng.random_bool(0.2) {
                    tokio::task::yield_now().await;
                }
            }
            for r in refs {
                r.await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let entries = log.entries().await.unwrap();
    assert_eq!(entries.len(), 16 * 200);
    for (key, seqs) in per_key(&entries) {
        assert_eq!(seqs, (0..200).collect::<Vec<_>>(), "key {key} out of order");
    }
}

/// Ray's fork-consistency test in spirit: 10 forks x 100 calls, with random
/// yields inside async methods; per-key order is exact, calls never overlap,
/// and each fork's calls run after the parent's calls made before the fork.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forks_keep_their_own_order_and_follow_the_parent() {
    let _ray = ray::init(Config::default()).unwrap();
    let log = Log::remote().unwrap();
    // The parent's calls before forking.
    for seq in 0..50 {
        log.push(1000, seq);
    }
    let mut tasks = Vec::new();
    for key in 0..10u32 {
        let fork = log.clone();
        assert_ne!(fork.handle_id(), log.handle_id());
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(key) + 99);
            let mut last = None;
            for seq in 0..100u32 {
                let yields = rng.random_range(0..3);
                last = Some(fork.push_slowly(key, seq, yields));
                if rng.random_bool(0.1) {
                    tokio::time::sleep(Duration::from_micros(rng.random_range(0..200))).await;
                }
            }
            last.unwrap().await.unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let entries = log.entries().await.unwrap();
    assert_eq!(entries.len(), 50 + 10 * 100);
    // The parent's 50 pre-fork calls come before any fork's call.
    assert!(entries[..50].iter().all(|e| e.0 == 1000));
    for (key, seqs) in per_key(&entries) {
        let n = if key == 1000 { 50 } else { 100 };
        assert_eq!(seqs, (0..n).collect::<Vec<_>>(), "key {key} out of order");
    }
}

/// Forks of forks get distinct IDs and still run in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_forks() {
    let _ray = ray::init(Config::default()).unwrap();
    let log = Log::remote().unwrap();
    let f1 = log.clone();
    let f2 = f1.clone();
    let f3 = f2.clone();
    let ids = [
        log.handle_id(),
        f1.handle_id(),
        f2.handle_id(),
        f3.handle_id(),
    ];
    for i in 0..ids.len() {
        for j in i + 1..ids.len() {
            assert_ne!(ids[i], ids[j]);
        }
    }
    assert!(log.handle_id().is_nil());
    let handles = [log, f1, f2, f3];
    let mut last = Vec::new();
    for seq in 0..50 {
        last.clear();
        for (k, h) in handles.iter().enumerate() {
            last.push(h.push(k as u32, seq));
        }
    }
    for r in last {
        r.await.unwrap();
    }
    let entries = handles[3].entries().await.unwrap();
    for (key, seqs) in per_key(&entries) {
        assert_eq!(
            seqs,
            (0..50).collect::<Vec<_>>(),
            "handle {key} out of order"
        );
    }
}
