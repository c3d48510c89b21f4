//! Ray's classic parameter server, with typed actors.
//!
//! One `ParameterServer` actor holds the model's weights (a `Vec<f64>`).
//! Several `Worker` actors each loop: pull the current weights, compute a
//! gradient on their own (fake) data shard, push it back. The server applies
//! updates one at a time, in arrival order, so no update is lost even though
//! the workers run concurrently and never coordinate with each other.
//!
//! The "model" is a vector that should converge to `TRUE_WEIGHTS`; each worker
//! sees a noisy view of it, so the average of their gradients points the
//! right way.
//!
//! Run: `cargo run --example parameter_server`

use std::time::{Duration, Instant};

use ray::prelude::*;

const TRUE_WEIGHTS: [f64; 4] = [1.0, -2.0, 3.0, 0.5];
const WORKERS: usize = 4;
const STEPS: u32 = 15;
const LEARNING_RATE: f64 = 0.2;

/// The parameter server: owns the weights, applies gradients in order.
#[ray::actor]
pub struct ParameterServer {
    weights: Vec<f64>,
    version: u64,
}

#[ray::actor]
impl ParameterServer {
    pub fn new(dim: usize) -> Self {
        ParameterServer {
            weights: vec![0.0; dim],
            version: 0,
        }
    }

    /// The weights and their version, as two refs.
    #[method(num_returns = 2)]
    pub fn pull(&self) -> (u64, Vec<f64>) {
        (self.version, self.weights.clone())
    }

    /// Applies one gradient step; returns the new version.
    pub fn push(&mut self, gradient: Vec<f64>) -> Result<u64, String> {
        if gradient.len() != self.weights.len() {
            return Err(format!(
                "gradient has {} entries, the model has {}",
                gradient.len(),
                self.weights.len()
            ));
        }
        for (w, g) in self.weights.iter_mut().zip(gradient) {
            *w -= LEARNING_RATE * g;
        }
        self.version += 1;
        Ok(self.version)
    }

    pub fn weights(&self) -> Vec<f64> {
        self.weights.clone()
    }
}

/// A worker: a data shard (here, a noisy copy of the true weights) and a
/// handle to the server.
#[ray::actor]
pub struct Worker {
    id: usize,
    shard: Vec<f64>,
    server: ParameterServerHandle,
}

#[ray::actor]
impl Worker {
    pub fn new(id: usize, server: ParameterServerHandle) -> Self {
        // Deterministic "noise": every run trains on the same data.
        let shard = TRUE_WEIGHTS
            .iter()
            .enumerate()
            .map(|(i, w)| w + 0.3 * (((id * 7 + i * 3) % 5) as f64 - 2.0) / 2.0)
            .collect();
        Worker { id, shard, server }
    }

    /// Runs `steps` rounds of pull -> compute -> push; returns the last
    /// version it produced.
    pub async fn train(&mut self, steps: u32) -> Result<u64, ray::Error> {
        let mut last = 0;
        for step in 1..=steps {
            // Pull: two refs; we only need the weights, the version is for the log.
            let (version, weights) = self.server.pull();
            let weights = weights.await?;
            // "Compute": the gradient of 1/2 |w - shard|^2, and a little work.
            tokio::time::sleep(Duration::from_millis(5)).await;
            let gradient: Vec<f64> = weights
                .iter()
                .zip(&self.shard)
                .map(|(w, s)| w - s)
                .collect();
            let loss: f64 = gradient.iter().map(|g| g * g).sum::<f64>() / 2.0;
            // Push, and learn the version it produced. Pushes from all workers
            // queue at the server and are applied one at a time.
            last = self.server.push(gradient).await?;
            if step == 1 || step % 5 == 0 {
                println!(
                    "  worker {} step {step:>2}: pulled v{:<3} local loss {loss:7.4} -> pushed, server now at v{last}",
                    self.id,
                    version.await?,
                );
            }
        }
        Ok(last)
    }
}

fn distance(w: &[f64]) -> f64 {
    w.iter()
        .zip(TRUE_WEIGHTS)
        .map(|(a, b)| (a - b) * (a - b))
        .sum::<f64>()
        .sqrt()
}

#[tokio::main]
async fn main() -> ray::Result<()> {
    let start = Instant::now();
    // Two CPUs are enough for any number of workers: a worker's `train`
    // gives its CPU back while it awaits the server (as Ray's `ray.get` does).
    let ray = ray::init(Config::default().num_cpus(2))?;

    let server = ParameterServer::remote(TRUE_WEIGHTS.len())?;
    println!(
        "Parameter server {server} starts at weights {:?}",
        server.weights().await?
    );

    // Each worker gets its own fork of the server's handle (clone = fork).
    let workers: Vec<WorkerHandle> = (0..WORKERS)
        .map(|id| Worker::remote(id, server.clone()))
        .collect::<ray::Result<_>>()?;
    println!("{WORKERS} workers, {STEPS} steps each, all training at once:");

    let runs: Vec<ObjectRef<u64>> = workers.iter().map(|w| w.train(STEPS)).collect();
    let (finished, _) = ray::wait(&runs, runs.len(), None).await;
    for r in &finished {
        r.get().await?;
    }

    let (version, weights) = server.pull();
    let (version, weights) = (version.await?, weights.await?);
    println!(
        "(Local losses level off above 0: each shard is a noisy view of the truth, and the \
         server's weights settle on their average.)"
    );
    println!();
    println!(
        "Done in {:?}: {version} updates applied (= {WORKERS} workers x {STEPS} steps, none lost).",
        start.elapsed()
    );
    println!(
        "Final weights {:?}",
        weights
            .iter()
            .map(|w| (w * 1000.0).round() / 1000.0)
            .collect::<Vec<_>>()
    );
    println!("True weights  {TRUE_WEIGHTS:?}");
    println!(
        "Distance to the truth: {:.4} (it started at {:.4}).",
        distance(&weights),
        distance(&[0.0; 4])
    );

    // A malformed update fails that call only; the server goes on.
    match server.push(vec![1.0]).await {
        Err(e) => println!("A bad push is refused and the server lives on: {e}"),
        Ok(v) => println!("unexpected: v{v}"),
    }
    assert_eq!(server.pull().0.await?, version);

    ray.shutdown().await;
    Ok(())
}
