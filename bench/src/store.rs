//! Checkpoints per second into the checkpoint stores (issue 4's benchmark):
//! one checkpoint = record (pending) + commit, with a 1 KiB state, the way the
//! runtime writes an automatic checkpoint.

use std::time::Instant;

use ray::executor::FrontierSnapshot;
use ray::{ActorHandleId, ActorId, CheckpointId, CheckpointRecord, CheckpointStore};

fn rate(store: &dyn CheckpointStore, n: usize) -> f64 {
    let actor = ActorId::random();
    let mut frontier = FrontierSnapshot::default();
    frontier.next.insert(ActorHandleId::NIL, 1);
    let started = Instant::now();
    for i in 0..n {
        let record = CheckpointRecord {
            checkpoint_id: CheckpointId::random(),
            timestamp: i as u64,
            frontier: frontier.clone(),
            state: Some(vec![7u8; 1024]),
        };
        store.begin(actor, &record).expect("record");
        store.commit(actor, record.checkpoint_id).expect("commit");
        store.expire(actor, 20).expect("expire");
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// Prints the checkpoint-store rates.
pub fn print(n: usize) {
    let dir = std::env::temp_dir().join(format!("ray-bench-store-{}", ActorId::random().hex()));
    let sqlite = ray::sqlite::SqliteStore::open(&dir).expect("open the SQLite store");
    let disk = rate(&sqlite, n);
    let memory = rate(&ray::MemoryStore::new(), n);
    let _ = std::fs::remove_dir_all(&dir);
    println!();
    println!(
        "checkpoint store ({n} checkpoints of 1 KiB, keep 20): SQLite (WAL, synchronous=FULL) {disk:.0}/s, in memory {memory:.0}/s"
    );
}
