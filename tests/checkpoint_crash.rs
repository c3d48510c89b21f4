//! Crash safety of the SQLite checkpoint store: a child process writes
//! checkpoints in a loop and is killed with SIGKILL; every checkpoint it had
//! committed is intact afterwards, and nothing half-written is returned.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use ray::executor::FrontierSnapshot;
use ray::{ActorHandleId, ActorId, CheckpointId, CheckpointRecord, CheckpointStore};

const CHILD_ENV: &str = "RAY_CHECKPOINT_CRASH_CHILD_DIR";

fn actor() -> ActorId {
    ActorId::for_name("CrashTest", "writer")
}

/// The state of checkpoint number `n`: large enough to span several pages.
fn state_for(id: &CheckpointId, n: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(64 * 1024);
    while v.len() < 64 * 1024 {
        v.extend_from_slice(id.as_bytes());
        v.extend_from_slice(&n.to_le_bytes());
    }
    v
}

fn record(n: u64) -> CheckpointRecord {
    let id = CheckpointId::random();
    let mut frontier = FrontierSnapshot::default();
    frontier.next.insert(ActorHandleId::NIL, n + 1);
    CheckpointRecord {
        checkpoint_id: id,
        timestamp: n,
        frontier,
        state: Some(state_for(&id, n)),
    }
}

/// The child: begin + commit checkpoints forever, printing each committed ID.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // only does something when spawned by the parent test
    };
    let store = ray::sqlite::SqliteStore::open(dir).unwrap();
    let out = std::io::stdout();
    for n in 0.. {
        let r = record(n);
        store.begin(actor(), &r).unwrap();
        store.commit(actor(), r.checkpoint_id).unwrap();
        // A pending one is always in flight too, never to be committed.
        store.begin(actor(), &record(n)).unwrap();
        let mut o = out.lock();
        writeln!(o, "COMMITTED {} {}", n, r.checkpoint_id.hex()).unwrap();
        o.flush().unwrap();
    }
}

#[test]
fn committed_checkpoints_survive_sigkill() {
    let dir = std::env::temp_dir().join(format!("ray-crash-{}", ActorId::random().hex()));
    let mut committed = Vec::new();
    for round in 0..3 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let target = 30 + round * 17;
        let mut seen = 0;
        while seen < target {
            let line = lines.next().expect("the child writes").unwrap();
            if let Some(rest) = line.strip_prefix("COMMITTED ") {
                let mut parts = rest.split(' ');
                let n: u64 = parts.next().unwrap().parse().unwrap();
                let id = CheckpointId::from_hex(parts.next().unwrap()).unwrap();
                committed.push((n, id));
                seen += 1;
            }
        }
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        // Reopen after the crash: every committed checkpoint is intact.
        let store = ray::sqlite::SqliteStore::open(&dir).unwrap();
        let listed = store.list(actor()).unwrap();
        for (n, id) in &committed {
            let r = listed
                .iter()
                .find(|r| r.checkpoint_id == *id)
                .unwrap_or_else(|| panic!("committed checkpoint {id} is missing after SIGKILL"));
            assert_eq!(r.timestamp, *n);
            assert_eq!(r.state.as_deref(), Some(&state_for(id, *n)[..]));
            assert_eq!(r.frontier.next.get(&ActorHandleId::NIL), Some(&(n + 1)));
        }
        // Nothing pending (half-done) is ever listed: only committed ones, plus
        // possibly the one whose commit landed just before the kill.
        assert!(listed.len() <= committed.len() + round as usize + 1);
    }
    println!(
        "{} committed checkpoints survived 3 SIGKILLs",
        committed.len()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
