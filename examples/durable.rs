//! A durable named actor: it resumes across runs of the program.
//!
//! `Guestbook` checkpoints its whole (serde) state automatically after every
//! call (`#[ray::actor(checkpoint(every_calls = 1))]`), and the runtime keeps
//! checkpoints in a SQLite database in `Config::checkpoint_dir(dir)`. A named
//! actor's ID is derived from its class and name, so the next run of the
//! program, creating the same named actor on the same directory, finds its
//! checkpoints and restores the newest one.
//!
//! Each run: create the actor, print what it resumed with, sign the book
//! once, exit. Run it twice and the second run shows the first run's entry.
//!
//! Run: `cargo run --example durable -- [--fresh] [DIR]`
//!
//! - `DIR` defaults to `ray-durable-example` under the system temp dir;
//! - `--fresh` deletes `DIR` first, so the run starts from nothing.

use std::path::PathBuf;

use ray::prelude::*;

#[ray::actor(checkpoint(every_calls = 1))]
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct Guestbook {
    entries: Vec<String>,
}

#[ray::actor]
impl Guestbook {
    /// Adds an entry; returns how many there are now.
    pub fn sign(&mut self, entry: String) -> usize {
        self.entries.push(entry);
        self.entries.len()
    }

    pub fn entries(&self) -> Vec<String> {
        self.entries.clone()
    }
}

#[tokio::main]
async fn main() -> ray::Result<()> {
    let mut fresh = false;
    let mut dir = None;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--fresh" => fresh = true,
            "-h" | "--help" => {
                println!("usage: durable [--fresh] [DIR]");
                return Ok(());
            }
            _ => dir = Some(PathBuf::from(arg)),
        }
    }
    let dir = dir.unwrap_or_else(|| std::env::temp_dir().join("ray-durable-example"));

    if fresh {
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => println!("--fresh: deleted {}", dir.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                println!("--fresh: {} did not exist", dir.display())
            }
            Err(e) => panic!("cannot delete {}: {e}", dir.display()),
        }
    }
    println!("checkpoint dir: {}", dir.display());

    let ray = ray::init(Config::default().checkpoint_dir(&dir))?;

    // The ID is the same in every run, so we can look before creating it.
    let id = ActorId::for_name("Guestbook", "guestbook");
    let found = ray::get_checkpoints_for_actor(id)?;
    println!(
        "actor {} has {} checkpoint(s) in the store",
        &id.hex()[..8],
        found.len()
    );

    let book = Guestbook::options().name("guestbook").remote()?;
    assert_eq!(book.actor_id(), id);
    let entries = book.entries().await?;
    if entries.is_empty() {
        println!("the guestbook is empty: a first run (nothing to resume)");
    } else {
        println!(
            "resumed from the previous run with {} entr{}:",
            entries.len(),
            if entries.len() == 1 { "y" } else { "ies" }
        );
        for e in &entries {
            println!("  - {e}");
        }
    }

    let entry = format!("run {} (pid {})", entries.len() + 1, std::process::id());
    let n = book.sign(entry.clone()).await?;
    // The checkpoint is written before `sign`'s result is delivered, so the
    // entry is on disk now.
    println!(
        "signed {entry:?}: {n} entr{} saved",
        if n == 1 { "y" } else { "ies" }
    );

    let problems = ray::error_info();
    assert!(problems.is_empty(), "{problems:?}");
    ray.shutdown().await;
    println!("run the program again to see it resume");
    Ok(())
}
