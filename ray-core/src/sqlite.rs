//! The embedded persistent checkpoint store: one SQLite database (WAL
//! journal, `synchronous = FULL`) in `Config::checkpoint_dir`. Every record
//! carries a SHA-1 checksum of its contents; a record that does not match is
//! skipped (and logged), never loaded. A transaction either commits whole or
//! not at all, so a crash never leaves a half-written checkpoint behind.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use sha1::{Digest, Sha1};

use crate::checkpoint::{CheckpointRecord, CheckpointStore};
use crate::error::{Error, Result};
use crate::executor::FrontierSnapshot;
use crate::ids::{ActorId, CheckpointId};

const PENDING: i64 = 0;
const COMMITTED: i64 = 1;
const EXPIRED: i64 = 2;

/// The SQLite checkpoint store.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

fn db_err(e: impl std::fmt::Display) -> Error {
    Error::Checkpoint(format!("checkpoint store: {e}"))
}

fn checksum(actor: &ActorId, r: &CheckpointRecord, frontier: &[u8]) -> Vec<u8> {
    let mut h = Sha1::new();
    h.update(actor.as_bytes());
    h.update(r.checkpoint_id.as_bytes());
    h.update(r.timestamp.to_le_bytes());
    h.update((frontier.len() as u64).to_le_bytes());
    h.update(frontier);
    match &r.state {
        Some(s) => {
            h.update([1]);
            h.update(s);
        }
        None => h.update([0]),
    }
    h.finalize().to_vec()
}

impl SqliteStore {
    /// Opens (or creates) the store in directory `dir`.
    ///
    /// # Errors
    ///
    /// [`Error::Checkpoint`] when the directory or database cannot be opened.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir)
            .map_err(|e| db_err(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join("checkpoints.sqlite3");
        let conn = Connection::open(&path).map_err(db_err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA busy_timeout = 5000;
             CREATE TABLE IF NOT EXISTS checkpoints (
                 seq       INTEGER PRIMARY KEY AUTOINCREMENT,
                 actor     BLOB NOT NULL,
                 id        BLOB NOT NULL,
                 timestamp INTEGER NOT NULL,
                 frontier  BLOB NOT NULL,
                 state     BLOB,
                 life      INTEGER NOT NULL,
                 checksum  BLOB NOT NULL,
                 UNIQUE (actor, id)
             );
             CREATE INDEX IF NOT EXISTS checkpoints_by_actor ON checkpoints (actor, seq);",
        )
        .map_err(db_err)?;
        Ok(SqliteStore {
            path,
            conn: Mutex::new(conn),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_life(&self, actor: ActorId, id: CheckpointId, from: i64, to: i64) -> Result<()> {
        self.conn()
            .execute(
                "UPDATE checkpoints SET life = ?1 WHERE actor = ?2 AND id = ?3 AND life = ?4",
                params![to, actor.as_bytes(), id.as_bytes(), from],
            )
            .map_err(db_err)?;
        Ok(())
    }
}

fn id_from(bytes: Vec<u8>) -> Option<[u8; 20]> {
    bytes.try_into().ok()
}

impl CheckpointStore for SqliteStore {
    fn begin(&self, actor: ActorId, r: &CheckpointRecord) -> Result<()> {
        let frontier = postcard::to_allocvec(&r.frontier).map_err(db_err)?;
        let sum = checksum(&actor, r, &frontier);
        self.conn()
            .execute(
                "INSERT INTO checkpoints (actor, id, timestamp, frontier, state, life, checksum)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    actor.as_bytes(),
                    r.checkpoint_id.as_bytes(),
                    r.timestamp as i64,
                    frontier,
                    r.state,
                    PENDING,
                    sum
                ],
            )
            .map_err(db_err)?;
        Ok(())
    }

    fn commit(&self, actor: ActorId, id: CheckpointId) -> Result<()> {
        self.set_life(actor, id, PENDING, COMMITTED)
    }

    fn forget(&self, actor: ActorId, id: CheckpointId) -> Result<()> {
        self.conn()
            .execute(
                "DELETE FROM checkpoints WHERE actor = ?1 AND id = ?2",
                params![actor.as_bytes(), id.as_bytes()],
            )
            .map_err(db_err)?;
        Ok(())
    }

    fn list(&self, actor: ActorId) -> Result<Vec<CheckpointRecord>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, timestamp, frontier, state, checksum FROM checkpoints
                 WHERE actor = ?1 AND life = ?2 ORDER BY seq DESC",
            )
            .map_err(db_err)?;
        let rows = stmt
            .query_map(params![actor.as_bytes(), COMMITTED], |row| {
                Ok((
                    row.get::<_, Vec<u8>>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, Vec<u8>>(2)?,
                    row.get::<_, Option<Vec<u8>>>(3)?,
                    row.get::<_, Vec<u8>>(4)?,
                ))
            })
            .map_err(db_err)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, timestamp, frontier_bytes, state, sum) = row.map_err(db_err)?;
            let Some(id) = id_from(id) else {
                tracing::warn!(%actor, "skipping a checkpoint record with a malformed ID");
                continue;
            };
            let frontier: FrontierSnapshot = match postcard::from_bytes(&frontier_bytes) {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(%actor, "skipping checkpoint with an unreadable frontier: {e}");
                    continue;
                }
            };
            let record = CheckpointRecord {
                checkpoint_id: CheckpointId::from_bytes(id),
                timestamp: timestamp as u64,
                frontier,
                state,
            };
            if checksum(&actor, &record, &frontier_bytes) != sum {
                tracing::warn!(%actor, checkpoint = %record.checkpoint_id, "skipping a corrupt checkpoint record");
                continue;
            }
            out.push(record);
        }
        Ok(out)
    }

    fn expire(&self, actor: ActorId, keep: usize) -> Result<Vec<CheckpointId>> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(db_err)?;
        tx.execute(
            "UPDATE checkpoints SET life = ?1 WHERE actor = ?2 AND life = ?3 AND seq NOT IN (
                 SELECT seq FROM checkpoints WHERE actor = ?2 AND life = ?3 ORDER BY seq DESC LIMIT ?4)",
            params![EXPIRED, actor.as_bytes(), COMMITTED, keep as i64],
        )
        .map_err(db_err)?;
        let ids = {
            let mut stmt = tx
                .prepare(
                    "SELECT id FROM checkpoints WHERE actor = ?1 AND life = ?2 ORDER BY seq ASC",
                )
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![actor.as_bytes(), EXPIRED], |row| {
                    row.get::<_, Vec<u8>>(0)
                })
                .map_err(db_err)?;
            let mut ids = Vec::new();
            for r in rows {
                if let Some(id) = id_from(r.map_err(db_err)?) {
                    ids.push(CheckpointId::from_bytes(id));
                }
            }
            ids
        };
        tx.commit().map_err(db_err)?;
        Ok(ids)
    }
}

impl SqliteStore {
    /// Whether a checkpoint is recorded in any state (for tests and tools).
    pub fn contains(&self, actor: ActorId, id: CheckpointId) -> Result<bool> {
        self.conn()
            .query_row(
                "SELECT 1 FROM checkpoints WHERE actor = ?1 AND id = ?2",
                params![actor.as_bytes(), id.as_bytes()],
                |_| Ok(()),
            )
            .optional()
            .map(|r| r.is_some())
            .map_err(db_err)
    }
}
