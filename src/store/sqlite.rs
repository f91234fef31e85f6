//! The embedded default store: one SQLite file in WAL mode, `synchronous = FULL`.
//!
//! SQLite calls block, so each runs on Tokio's blocking pool, at most `MAX_CONCURRENT` at a
//! time; the proxy's async threads never wait on disk. Schema changes are numbered migrations
//! recorded in `PRAGMA user_version` and applied at start-up.

use super::{Namespace, Record, SecretKey, Store, StoreError, StoreResult};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// Blocking store calls in flight at once (one writer at a time is SQLite's rule anyway).
const MAX_CONCURRENT: usize = 4;

/// Each entry upgrades the schema by one version.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE records (
        namespace TEXT NOT NULL,
        key BLOB NOT NULL,
        value BLOB NOT NULL,
        expires_at_ms INTEGER,
        PRIMARY KEY (namespace, key)
    ) WITHOUT ROWID;
    CREATE INDEX records_expiry ON records (expires_at_ms) WHERE expires_at_ms IS NOT NULL;",
    // 2: the user a record belongs to, for "log out everywhere".
    "ALTER TABLE records ADD COLUMN owner BLOB;
    CREATE INDEX records_owner ON records (namespace, owner) WHERE owner IS NOT NULL;",
];

pub struct SqliteStore {
    connection: Arc<Mutex<Connection>>,
    permits: Semaphore,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub fn open(path: &Path) -> StoreResult<Self> {
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|error| {
                StoreError(format!("cannot create {}: {error}", parent.display()))
            })?;
        }
        let connection = Connection::open(path).map_err(sql)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;",
            )
            .map_err(sql)?;
        migrate(&connection)?;
        Ok(SqliteStore {
            connection: Arc::new(Mutex::new(connection)),
            permits: Semaphore::new(MAX_CONCURRENT),
        })
    }

    /// Runs `work` on the blocking pool with the connection.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError("store closed".into()))?;
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            let connection = connection
                .lock()
                .map_err(|_| StoreError("store lock poisoned".into()))?;
            work(&connection).map_err(sql)
        })
        .await
        .map_err(|error| StoreError(format!("blocking task failed: {error}")))?
    }
}

fn sql(error: rusqlite::Error) -> StoreError {
    StoreError(error.to_string())
}

fn migrate(connection: &Connection) -> StoreResult<()> {
    let version: usize = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(sql)?;
    if version > MIGRATIONS.len() {
        return Err(StoreError(format!(
            "database schema version {version} is newer than this keyway ({})",
            MIGRATIONS.len()
        )));
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(version) {
        let next = index + 1;
        connection
            .execute_batch(&format!(
                "BEGIN; {migration}; PRAGMA user_version = {next}; COMMIT;"
            ))
            .map_err(sql)?;
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn put(
        &self,
        namespace: Namespace,
        key: &SecretKey,
        record: &Record,
        owner: Option<&SecretKey>,
    ) -> StoreResult<()> {
        let (key, record) = (*key.as_bytes(), record.clone());
        let owner = owner.map(|owner| owner.as_bytes().to_vec());
        self.run(move |connection| {
            connection
                .execute(
                    "INSERT INTO records (namespace, key, value, expires_at_ms, owner) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![namespace.as_str(), &key[..], record.value, record.expires_at_ms, owner],
                )
                .map(drop)
        })
        .await
    }

    async fn get(&self, namespace: Namespace, key: &SecretKey) -> StoreResult<Option<Record>> {
        let key = *key.as_bytes();
        let now = super::now_ms();
        self.run(move |connection| {
            connection
                .query_row(
                    "SELECT value, expires_at_ms FROM records
                     WHERE namespace = ?1 AND key = ?2 AND (expires_at_ms IS NULL OR expires_at_ms > ?3)",
                    params![namespace.as_str(), &key[..], now],
                    |row| {
                        Ok(Record {
                            value: row.get(0)?,
                            expires_at_ms: row.get(1)?,
                        })
                    },
                )
                .optional()
        })
        .await
    }

    async fn remove(&self, namespace: Namespace, key: &SecretKey) -> StoreResult<bool> {
        let key = *key.as_bytes();
        let now = super::now_ms();
        self.run(move |connection| {
            connection
                .execute(
                    "DELETE FROM records WHERE namespace = ?1 AND key = ?2
                     AND (expires_at_ms IS NULL OR expires_at_ms > ?3)",
                    params![namespace.as_str(), &key[..], now],
                )
                .map(|deleted| deleted > 0)
        })
        .await
    }

    async fn remove_owned_by(
        &self,
        namespace: Namespace,
        owner: &SecretKey,
    ) -> StoreResult<Vec<SecretKey>> {
        let owner = *owner.as_bytes();
        let now = super::now_ms();
        self.run(move |connection| {
            let mut statement = connection.prepare(
                "DELETE FROM records WHERE namespace = ?1 AND owner = ?2
                 AND (expires_at_ms IS NULL OR expires_at_ms > ?3) RETURNING key",
            )?;
            let keys = statement
                .query_map(params![namespace.as_str(), &owner[..], now], |row| {
                    row.get::<_, Vec<u8>>(0)
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(keys
                .iter()
                .filter_map(|key| <[u8; 32]>::try_from(key.as_slice()).ok())
                .map(SecretKey::from_bytes)
                .collect())
        })
        .await
    }

    async fn set_expiry(
        &self,
        namespace: Namespace,
        key: &SecretKey,
        expires_at_ms: Option<i64>,
    ) -> StoreResult<bool> {
        let key = *key.as_bytes();
        let now = super::now_ms();
        self.run(move |connection| {
            connection
                .execute(
                    "UPDATE records SET expires_at_ms = ?3 WHERE namespace = ?1 AND key = ?2
                     AND (expires_at_ms IS NULL OR expires_at_ms > ?4)",
                    params![namespace.as_str(), &key[..], expires_at_ms, now],
                )
                .map(|updated| updated > 0)
        })
        .await
    }

    async fn purge_expired(&self, now_ms: i64) -> StoreResult<u64> {
        self.run(move |connection| {
            connection
                .execute(
                    "DELETE FROM records WHERE expires_at_ms <= ?1",
                    params![now_ms],
                )
                .map(|deleted| deleted as u64)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::now_ms;

    #[tokio::test]
    async fn records_round_trip_expire_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/keyway.db");
        let store = SqliteStore::open(&path).unwrap();
        let (live, old) = (SecretKey::of(b"live"), SecretKey::of(b"old"));
        let record = Record {
            value: b"v".to_vec(),
            expires_at_ms: None,
        };
        store
            .put(Namespace::ConverseToken, &live, &record, None)
            .await
            .unwrap();
        let expired = Record {
            value: b"x".to_vec(),
            expires_at_ms: Some(now_ms() - 1),
        };
        store
            .put(Namespace::ConverseToken, &old, &expired, None)
            .await
            .unwrap();
        assert_eq!(
            store.get(Namespace::ConverseToken, &live).await.unwrap(),
            Some(record.clone())
        );
        assert_eq!(
            store.get(Namespace::ConverseToken, &old).await.unwrap(),
            None
        );
        assert!(!store.remove(Namespace::ConverseToken, &old).await.unwrap());
        assert_eq!(store.purge_expired(now_ms()).await.unwrap(), 1);
        drop(store);

        let reopened = SqliteStore::open(&path).unwrap();
        assert_eq!(
            reopened.get(Namespace::ConverseToken, &live).await.unwrap(),
            Some(record)
        );
        assert!(
            reopened
                .set_expiry(Namespace::ConverseToken, &live, Some(now_ms() + 60_000))
                .await
                .unwrap()
        );
        assert!(
            reopened
                .remove(Namespace::ConverseToken, &live)
                .await
                .unwrap()
        );
        assert_eq!(
            reopened.get(Namespace::ConverseToken, &live).await.unwrap(),
            None
        );
    }
}
