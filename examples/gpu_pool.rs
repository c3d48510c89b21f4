//! Placement with GPU IDs: a pool of GPU actors on a 4-GPU, 8-CPU node.
//!
//! `Trainer` is declared `#[ray::actor(num_gpus = 1)]`: each one holds one
//! GPU (and, since it names a resource, one CPU) for its whole life, and
//! `ray::get_gpu_ids()` inside a method says which GPU IDs it holds. One
//! trainer is created with `options().num_gpus(2)`.
//!
//! With 1 + 2 + 1 GPUs taken, the node is full, so a fourth trainer cannot be
//! placed. Its creation does not fail or block: the handle comes back at once
//! and its calls queue. When another trainer is killed, its GPU is released
//! and the waiting one is placed on it.
//!
//! Run: `cargo run --example gpu_pool`

use std::collections::BTreeMap;
use std::time::Duration;

use ray::prelude::*;

#[ray::actor(num_gpus = 1)]
pub struct Trainer {
    name: String,
}

#[ray::actor]
impl Trainer {
    pub fn new(name: String) -> Self {
        println!("    [{name}] placed and constructed");
        Trainer { name }
    }

    /// Which GPUs this actor holds, as the runtime assigned them.
    pub fn gpus(&self) -> (String, Vec<usize>) {
        (self.name.clone(), ray::get_gpu_ids())
    }
}

fn show(what: &str, r: &BTreeMap<String, f64>) {
    let items: Vec<String> = r.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("   {what}: {}", items.join(", "));
}

#[tokio::main]
async fn main() -> ray::Result<()> {
    let ray = ray::init(Config::default().num_gpus(4).num_cpus(8))?;
    show("cluster_resources  ", &ray::cluster_resources());
    show("available_resources", &ray::available_resources());

    println!();
    println!("1. Three trainers: a (1 GPU), b (options().num_gpus(2)), c (1 GPU).");
    let a = Trainer::remote("a".to_string())?;
    let b = Trainer::options().num_gpus(2).remote("b".to_string())?;
    let c = Trainer::remote("c".to_string())?;
    for t in [&a, &b, &c] {
        let (name, ids) = t.gpus().await?;
        println!("   {name} holds GPU IDs {ids:?}");
    }
    show("available_resources", &ray::available_resources());
    println!("   (each trainer also holds 1 CPU for its life)");

    println!();
    println!("2. A fourth trainer d (1 GPU): all 4 GPUs are taken.");
    let d = Trainer::remote("d".to_string())?;
    println!("   Trainer::remote returned a handle at once: {d}");
    let d_gpus = d.gpus(); // queues in d's mailbox
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!(
        "   after 300 ms, is d.gpus() ready? {} (d is waiting for a GPU)",
        d_gpus.is_ready()
    );
    assert!(!d_gpus.is_ready());

    println!();
    println!("3. Kill a (ray::kill(&a, true): no restart) to free its GPU.");
    ray::kill(&a, true);
    let (name, ids) = d_gpus.await?;
    println!("   {name} now holds GPU IDs {ids:?} (a's GPU, reused)");
    show("available_resources", &ray::available_resources());

    println!();
    println!("4. Drop every handle: the actors stop and give everything back.");
    drop((b, c, d));
    // Stopping is asynchronous; wait until the pool is whole again.
    for _ in 0..100 {
        if ray::available_resources() == ray::cluster_resources() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    show("available_resources", &ray::available_resources());
    assert_eq!(ray::available_resources(), ray::cluster_resources());

    ray.shutdown().await;
    Ok(())
}
