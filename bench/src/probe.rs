//! The memory figures, each measured in a fresh child process (this binary
//! with `--probe ...`) so that no column inherits another's freed heap.

use std::process::Command;

use crate::common::{rss_bytes, Bench, Live, Sizes};
use crate::envs::main_runtime;
use crate::ray_cols::CounterHandle;
use crate::tokio_floor::TokioCounter;

/// The memory rows, for the tokio floor and ray.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    /// Bytes of RSS per idle actor: `[tokio, ray]`.
    pub idle_bytes: [f64; 2],
    /// RSS before and after the calls, in bytes: `[tokio, ray]` (None: skipped).
    pub rss: Option<[(u64, u64); 2]>,
}

pub fn measure_all(s: &Sizes) -> Memory {
    let idle = |col: &str| -> f64 {
        let out = run_child(&["idle", col, &s.idle.to_string()]);
        out.parse()
            .unwrap_or_else(|_| panic!("probe output `{out}`"))
    };
    let rss = |col: &str| -> (u64, u64) {
        let out = run_child(&["rss", col, &s.rss_calls.to_string()]);
        let mut it = out.split_whitespace().map(|x| x.parse::<u64>());
        match (it.next(), it.next()) {
            (Some(Ok(a)), Some(Ok(b))) => (a, b),
            _ => panic!("probe output `{out}`"),
        }
    };
    Memory {
        idle_bytes: [idle("tokio"), idle("ray")],
        rss: (s.rss_calls > 0).then(|| [rss("tokio"), rss("ray")]),
    }
}

fn run_child(args: &[&str]) -> String {
    let exe = std::env::current_exe().expect("the bench's own path");
    let out = Command::new(exe)
        .arg("--probe")
        .args(args)
        .output()
        .expect("running a memory probe");
    assert!(
        out.status.success(),
        "memory probe {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `--probe idle|rss tokio|ray COUNT`: prints the figure on stdout.
pub fn child_main(args: &[String]) {
    let [what, col, count] = args else {
        panic!("usage: --probe idle|rss tokio|ray COUNT");
    };
    let count: u64 = count.parse().expect("COUNT");
    let rt = main_runtime();
    let _ray = rt
        .block_on(async { ray::init(ray::Config::default()) })
        .expect("ray::init");
    let line = rt.block_on(async move {
        let task = match (what.as_str(), col.as_str()) {
            ("idle", "tokio") => tokio::spawn(async move { idle::<TokioCounter>(count).await }),
            ("idle", "ray") => tokio::spawn(async move { idle::<CounterHandle>(count).await }),
            ("rss", "tokio") => tokio::spawn(async move { rss::<TokioCounter>(count).await }),
            ("rss", "ray") => tokio::spawn(async move { rss::<CounterHandle>(count).await }),
            other => panic!("unknown probe {other:?}"),
        };
        task.await.expect("the probe panicked")
    });
    println!("{line}");
}

/// Creates `count` actors, makes one call on each so that each has started,
/// and returns the RSS growth per actor.
async fn idle<B: Bench>(count: u64) -> String {
    let live = Live::default();
    // Warm the allocator, thread-locals and the runtime's structures first.
    let warm: Vec<B> = {
        let mut v = Vec::new();
        for _ in 0..100 {
            v.push(B::create(live.clone()).await);
        }
        v
    };
    for h in &warm {
        assert_eq!(h.call(1).await, 1);
    }
    warm.into_iter().for_each(B::retire);
    live.all_dropped().await;

    let mut actors: Vec<B> = Vec::with_capacity(count as usize);
    let before = rss_bytes();
    for _ in 0..count {
        actors.push(B::create(live.clone()).await);
    }
    for h in &actors {
        assert_eq!(h.call(1).await, 1);
    }
    let after = rss_bytes();
    assert_eq!(live.count() as u64, count);
    let per_actor = (after as f64 - before as f64) / count.max(1) as f64;
    format!("{per_actor}")
}

/// Makes `calls` calls on one actor (pipelined in batches of 1000, every
/// reply checked) and returns the RSS before and after.
async fn rss<B: Bench>(calls: u64) -> String {
    const BATCH: u64 = 1000;
    let h = B::create(Live::default()).await;
    let mut expected = 0;
    let mut before = None;
    let mut done = 0;
    // The first batch warms up; the RSS is read after it.
    while done < calls + BATCH {
        let n = BATCH.min(calls + BATCH - done);
        let batch: Vec<_> = (0..n).map(|_| h.incr(1)).collect();
        for r in batch {
            expected += 1;
            assert_eq!(r.await, expected);
        }
        done += n;
        before.get_or_insert_with(rss_bytes);
    }
    let before = before.unwrap_or(0);
    let after = rss_bytes();
    format!("{before} {after}")
}
