//! A checkpointable bank account: crash it, watch it recover.
//!
//! `Account` is declared `checkpointable` with `max_reconstructions = 3`. It
//! implements Ray's four checkpoint hooks and saves its balance into a "disk"
//! (a shared in-memory map, standing in for a file or a database) every
//! `CHECKPOINT_EVERY` completed calls.
//!
//! The program deposits money, then kills the actor twice — once with a
//! method that panics, once with `ray::kill(&h, false)` — and each time the
//! runtime rebuilds it: the constructor runs again, `load_checkpoint`
//! restores the newest checkpoint, and the calls completed after that
//! checkpoint are *replayed*. The balance comes back exactly.
//!
//! Replay repeats side effects outside the actor. Each deposit also bumps a
//! shared counter (think "send a receipt e-mail"); the program prints how
//! often it was bumped, so you can see the replayed deposits.
//!
//! Finally it uses up the restarts: the fourth death is final.
//!
//! Run: `cargo run --example bank`

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ray::prelude::*;

/// Checkpoint after this many completed calls.
const CHECKPOINT_EVERY: u64 = 5;

/// The "disk": checkpoint ID -> balance, shared with `main` to show it.
type Disk = Arc<Mutex<HashMap<CheckpointId, i64>>>;

/// A side effect outside the actor: one "receipt" per deposit applied,
/// replays included.
static RECEIPTS_SENT: AtomicU64 = AtomicU64::new(0);

#[ray::actor(checkpointable, max_reconstructions = 3)]
pub struct Account {
    balance: i64,
    disk: Disk,
}

#[ray::actor]
impl Account {
    pub fn new(disk: Disk) -> Self {
        println!("    [actor] constructor runs (balance 0)");
        Account { balance: 0, disk }
    }

    /// Adds `amount`; returns the new balance. Sends a "receipt" (a side
    /// effect outside the actor, repeated when the call is replayed).
    pub fn deposit(&mut self, amount: i64) -> i64 {
        self.balance += amount;
        RECEIPTS_SENT.fetch_add(1, Ordering::SeqCst);
        self.balance
    }

    pub fn balance(&self) -> i64 {
        self.balance
    }

    /// A bug: panics. The actor dies; this call fails and is not replayed.
    pub fn audit(&mut self) -> i64 {
        panic!("audit found a bug")
    }
}

impl ray::Checkpointable for Account {
    fn should_checkpoint(&mut self, ctx: &CheckpointContext) -> bool {
        ctx.num_tasks_since_last_checkpoint >= CHECKPOINT_EVERY
    }

    fn save_checkpoint(&mut self, _: ActorId, id: CheckpointId) -> Result<(), ray::BoxError> {
        println!(
            "    [actor] save_checkpoint {}: balance {}",
            short(&id.hex()),
            self.balance
        );
        self.disk.lock().unwrap().insert(id, self.balance);
        Ok(())
    }

    fn load_checkpoint(
        &mut self,
        _: ActorId,
        available: &[Checkpoint],
    ) -> Result<Option<CheckpointId>, ray::BoxError> {
        let disk = self.disk.lock().unwrap();
        for c in available {
            // newest first
            if let Some(balance) = disk.get(&c.checkpoint_id) {
                println!(
                    "    [actor] load_checkpoint: {} offered, restoring {} (balance {balance})",
                    available.len(),
                    short(&c.checkpoint_id.hex())
                );
                self.balance = *balance;
                return Ok(Some(c.checkpoint_id));
            }
        }
        println!("    [actor] load_checkpoint: nothing usable, starting fresh");
        Ok(None)
    }

    fn checkpoint_expired(&mut self, _: ActorId, id: CheckpointId) -> Result<(), ray::BoxError> {
        println!("    [actor] checkpoint_expired {}", short(&id.hex()));
        self.disk.lock().unwrap().remove(&id);
        Ok(())
    }
}

fn short(hex: &str) -> &str {
    &hex[..8]
}

fn receipts() -> u64 {
    RECEIPTS_SENT.load(Ordering::SeqCst)
}

#[tokio::main]
async fn main() -> ray::Result<()> {
    // Keep at most 2 checkpoints: older ones expire (and leave the disk).
    // Panics in this demo are on purpose: print one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .copied()
            .unwrap_or("(non-text panic)");
        println!("    [actor] panicked: {msg}");
    }));

    let ray = ray::init(Config::default().num_actor_checkpoints_to_keep(2))?;
    let disk = Disk::default();

    println!("1. Open an account and make 12 deposits of 10.");
    println!(
        "   A checkpoint is taken every {CHECKPOINT_EVERY} completed calls; the newest 2 are kept."
    );
    let account = Account::remote(disk.clone())?;
    let mut last = account.deposit(10);
    for _ in 1..12 {
        last = account.deposit(10);
    }
    let before = last.await?;
    println!(
        "   balance {before}; receipts sent: {}; checkpoints on disk: {}",
        receipts(),
        disk.lock().unwrap().len()
    );

    println!();
    println!("2. Call a method that panics: the actor dies and is rebuilt.");
    let sent_before = receipts();
    match account.audit().await {
        Err(e) => println!("   audit() failed: {e}"),
        Ok(v) => println!("   unexpected: audit() returned {v}"),
    }
    // The next call waits for the rebuild (constructor, restore, replay).
    let after = account.balance().await?;
    let replayed = receipts() - sent_before;
    println!("   balance before the crash {before}, after the rebuild {after}");
    println!(
        "   {replayed} deposits were replayed (those after the newest checkpoint): \
         their receipts were sent again, total now {}",
        receipts()
    );
    assert_eq!(before, after);

    println!();
    println!("3. Three more deposits, then ray::kill(&account, false) (restart allowed).");
    for _ in 0..3 {
        account.deposit(5);
    }
    let before = account.balance().await?;
    let sent_before = receipts();
    ray::kill(&account, false);
    let after = account.balance().await?;
    let replayed = receipts() - sent_before;
    println!("   balance before the kill {before}, after the rebuild {after}; {replayed} deposit(s) replayed");
    assert_eq!(before, after);

    println!();
    let kept = ray::get_checkpoints_for_actor(account.actor_id())?;
    println!(
        "ray::get_checkpoints_for_actor: {} kept (newest first):",
        kept.len()
    );
    for c in &kept {
        let balance = disk.lock().unwrap().get(&c.checkpoint_id).copied();
        println!(
            "   {} taken at {} ms since the epoch, balance on disk {balance:?}",
            short(&c.checkpoint_id.hex()),
            c.timestamp
        );
    }

    println!();
    println!("4. max_reconstructions = 3: two restarts used, two more deaths end it.");
    for death in 3..=4 {
        let _ = account.audit().await;
        match account.balance().await {
            Ok(b) => println!("   death {death}: rebuilt, balance {b}"),
            Err(e) => println!("   death {death}: no restarts left, calls fail: {e}"),
        }
    }
    assert!(matches!(
        account.balance().await,
        Err(Error::ActorDied { .. })
    ));

    println!();
    println!("ray::error_info() — what the runtime reported:");
    for info in ray::error_info() {
        println!("   {:?}: {}", info.kind, info.message);
    }

    ray.shutdown().await;
    Ok(())
}
