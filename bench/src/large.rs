//! Large results: the actor builds a `Vec<u8>` and one caller awaits each
//! call's result by value, against the floor (a tokio actor that moves the
//! `Vec` through its `oneshot`). Shows what a result costs beyond the round
//! trip: a copy per read would cost as much as building it again.

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::envs::Envs;

/// The ray side: builds a result of the requested length.
#[ray::actor]
pub struct Maker {
    made: u64,
}

#[ray::actor]
impl Maker {
    pub fn new() -> Self {
        Maker { made: 0 }
    }

    pub fn make(&mut self, len: usize) -> Vec<u8> {
        self.made += 1;
        vec![self.made as u8; len]
    }
}

/// The floor: a spawned task over an unbounded `mpsc` of `(len, oneshot)`.
fn tokio_maker() -> mpsc::UnboundedSender<(usize, oneshot::Sender<Vec<u8>>)> {
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, oneshot::Sender<Vec<u8>>)>();
    tokio::spawn(async move {
        let mut made = 0u64;
        while let Some((len, reply)) = rx.recv().await {
            made += 1;
            let _ = reply.send(vec![made as u8; len]);
        }
    });
    tx
}

/// Time per call of `calls` sequential calls, each result checked.
async fn run_tokio(len: usize, calls: usize) -> Duration {
    let tx = tokio_maker();
    let started = Instant::now();
    for i in 1..=calls {
        let (reply, rx) = oneshot::channel();
        tx.send((len, reply)).expect("the tokio actor stopped");
        let v = rx.await.expect("the tokio actor dropped the reply");
        assert!(v.len() == len && v[len - 1] == i as u8, "a wrong result");
    }
    started.elapsed() / calls as u32
}

async fn run_ray(len: usize, calls: usize) -> Duration {
    let m = Maker::remote().expect("creating a ray actor");
    let started = Instant::now();
    for i in 1..=calls {
        let v = m.make(len).await.expect("a ray call failed");
        assert!(v.len() == len && v[len - 1] == i as u8, "a wrong result");
    }
    started.elapsed() / calls as u32
}

/// Measures both columns for each result size and returns the line to print:
/// the medians of `rounds` rounds, the columns alternating which goes first.
pub fn measure(envs: &Envs, rounds: usize, tiny: bool) -> String {
    let mut parts = Vec::new();
    for (label, len, calls) in [("64 KiB", 64 << 10, 2_000), ("1 MiB", 1 << 20, 200)] {
        let calls = if tiny { calls / 100 } else { calls };
        let (mut floor, mut ray) = (Vec::new(), Vec::new());
        for round in 0..rounds.max(1) {
            if round % 2 == 0 {
                floor.push(envs.spawn_on_main(run_tokio(len, calls)));
                ray.push(envs.spawn_on_main(run_ray(len, calls)));
            } else {
                ray.push(envs.spawn_on_main(run_ray(len, calls)));
                floor.push(envs.spawn_on_main(run_tokio(len, calls)));
            }
        }
        let (f, r) = (median(floor), median(ray));
        parts.push(format!(
            "{label}: tokio {:.1} µs, ray {:.1} µs ({:.2}x)",
            f.as_secs_f64() * 1e6,
            r.as_secs_f64() * 1e6,
            r.as_secs_f64() / f.as_secs_f64()
        ));
    }
    format!(
        "large results (a Vec<u8> built by the actor, awaited by value, time per call; median of {} round(s)): {}",
        rounds.max(1),
        parts.join("; ")
    )
}

fn median(mut ds: Vec<Duration>) -> Duration {
    ds.sort();
    ds[ds.len() / 2]
}
