//! Local buckets: one directory per bucket under `$NUBE_DATA_DIR/blobs/`, through
//! `object_store`'s local file system store. Writes through a [`Bucket`] fire
//! blob-created functions: an intent row is written before the object, and turned
//! into outbox events after it, so a crash in between is repaired at start-up.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use object_store::local::LocalFileSystem;
use rusqlite::params;
use serde_json::json;

use nube::blob::{BlobError, BlobEvents, BlobInfo};
use nube::{App, BlobCreated, Bucket, Event, Provider, RawEvent};

use crate::db::{Database, backend_err, now_ms};
use crate::outbox::{Outbox, enqueue};

/// The blob-write hook of the local runtime.
#[derive(Debug, Clone)]
pub struct LocalBlobEvents {
    db: Database,
    app: Arc<App>,
    outbox: Outbox,
}

fn event_for(bucket: &str, info: &BlobInfo) -> Event {
    let raw = RawEvent::new(
        Provider::Local,
        json!({"source": "local-fs", "bucket": bucket, "object": info}),
    );
    Event::BlobCreated(BlobCreated::written(bucket, info, raw))
}

impl LocalBlobEvents {
    /// The hook for `app`'s buckets.
    pub fn new(db: Database, app: Arc<App>, outbox: Outbox) -> Self {
        Self { db, app, outbox }
    }

    /// Settles intents left by a crash between recording an intent and finishing the
    /// write: an object written since its intent gets its events; a missing one, or one
    /// last written before its intent (the write never started; the object is an older
    /// one under the same key), is forgotten.
    pub async fn recover(&self, buckets: &[Bucket]) -> Result<usize, BlobError> {
        // File times may be as coarse as 2 s (FAT); an object within that of its intent
        // counts as written, since a stray event is better than a lost one.
        const CLOCK_GRAIN_MS: i64 = 2_000;
        let intents: Vec<(i64, String, String, Option<String>, i64)> = self
            .db
            .call(|c| {
                let mut stmt = c
                    .prepare(
                        "SELECT token, bucket, key, content_type, created_ms FROM blob_intents ORDER BY token",
                    )
                    .map_err(backend_err)?;
                let rows = stmt
                    .query_map([], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })
                    .map_err(backend_err)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(backend_err)
            })
            .await
            .map_err(|e| BlobError::Events {
                bucket: "*".into(),
                message: e.to_string(),
            })?;
        let mut recovered = 0;
        for (token, bucket_name, key, content_type, intended_ms) in intents {
            let info = match buckets.iter().find(|b| b.name() == bucket_name) {
                Some(b) => match b.head(&key).await {
                    Ok(info)
                        if info.last_modified.timestamp_millis() < intended_ms - CLOCK_GRAIN_MS =>
                    {
                        None
                    }
                    Ok(mut info) => {
                        info.content_type = content_type;
                        Some(info)
                    }
                    Err(BlobError::NotFound { .. }) => None,
                    Err(e) => return Err(e),
                },
                None => None,
            };
            if info.is_some() {
                recovered += 1;
            }
            self.finish(token, &bucket_name, info).await?;
        }
        Ok(recovered)
    }

    async fn finish(
        &self,
        token: i64,
        bucket: &str,
        info: Option<BlobInfo>,
    ) -> Result<(), BlobError> {
        let event = info.as_ref().map(|i| event_for(bucket, i));
        let targets: Vec<String> = event
            .as_ref()
            .map(|e| {
                self.app
                    .subscribers(e)
                    .map(|f| f.name().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        let fired = !targets.is_empty();
        self.db
            .call(move |c| {
                let tx = c.transaction().map_err(backend_err)?;
                if let Some(event) = &event {
                    for f in &targets {
                        enqueue(&tx, f, event).map_err(backend_err)?;
                    }
                }
                tx.execute("DELETE FROM blob_intents WHERE token = ?1", [token])
                    .map_err(backend_err)?;
                tx.commit().map_err(backend_err)
            })
            .await
            .map_err(|e| BlobError::Events {
                bucket: bucket.to_owned(),
                message: e.to_string(),
            })?;
        if fired {
            self.outbox.wake();
        }
        Ok(())
    }
}

#[async_trait]
impl BlobEvents for LocalBlobEvents {
    async fn will_write(
        &self,
        bucket: &str,
        key: &str,
        content_type: Option<&str>,
    ) -> Result<u64, BlobError> {
        let (b, k, ct) = (
            bucket.to_owned(),
            key.to_owned(),
            content_type.map(str::to_owned),
        );
        self.db
            .call(move |c| {
                c.execute(
                    "INSERT INTO blob_intents (bucket, key, content_type, created_ms) VALUES (?1, ?2, ?3, ?4)",
                    params![b, k, ct, now_ms()],
                )
                .map_err(backend_err)?;
                Ok(c.last_insert_rowid() as u64)
            })
            .await
            .map_err(|e: nube::store::StoreError| BlobError::Events {
                bucket: bucket.to_owned(),
                message: e.to_string(),
            })
    }

    async fn abandoned(&self, token: u64) -> Result<(), BlobError> {
        self.db
            .call(move |c| {
                c.execute("DELETE FROM blob_intents WHERE token = ?1", [token as i64])
                    .map_err(backend_err)?;
                Ok(())
            })
            .await
            .map_err(|e: nube::store::StoreError| BlobError::Events {
                bucket: "*".into(),
                message: e.to_string(),
            })
    }

    async fn written(&self, token: u64, bucket: &str, info: &BlobInfo) -> Result<(), BlobError> {
        self.finish(token as i64, bucket, Some(info.clone())).await
    }
}

/// Opens the bucket `name` in `root/<name>/` (creating the directory).
pub fn open_bucket(root: &Path, name: &str) -> std::io::Result<Bucket> {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir)?;
    let store = LocalFileSystem::new_with_prefix(&dir)
        .map_err(|e| std::io::Error::other(e.to_string()))?
        .with_automatic_cleanup(true);
    Ok(Bucket::new(name, Arc::new(store)))
}

#[cfg(test)]
mod tests {
    use tokio::sync::Notify;

    use super::*;

    /// Intents left by a crash: the object written since gets its event; an object
    /// older than its intent (the write never started) and a missing one get none.
    #[tokio::test]
    async fn recovery_fires_only_for_writes_that_happened() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::in_memory().unwrap();
        let outbox = Outbox::new(db.clone(), Arc::new(Notify::new()));
        let app = App::new("t").on_blob_created(
            "note",
            "uploads",
            "",
            |_: BlobCreated, _: nube::Context| async { Ok::<(), nube::Error>(()) },
        );
        let hook = LocalBlobEvents::new(db.clone(), Arc::new(app), outbox.clone());
        let bucket = open_bucket(dir.path(), "uploads").unwrap();
        bucket.put("written.bin", vec![1u8]).await.unwrap();
        bucket.put("older.bin", vec![2u8]).await.unwrap();
        let now = now_ms();
        db.call(move |c| {
            for (key, created) in [
                ("written.bin", now - 60_000),
                ("older.bin", now + 60_000),
                ("missing.bin", now - 60_000),
            ] {
                c.execute(
                    "INSERT INTO blob_intents (bucket, key, content_type, created_ms) VALUES ('uploads', ?1, NULL, ?2)",
                    params![key, created],
                )
                .map_err(backend_err)?;
            }
            Ok::<_, nube::store::StoreError>(())
        })
        .await
        .unwrap();
        assert_eq!(hook.recover(&[bucket]).await.unwrap(), 1);
        assert_eq!(outbox.stats().await.unwrap().pending, 1);
        let left: i64 = db
            .call(|c| {
                c.query_row("SELECT COUNT(*) FROM blob_intents", [], |r| r.get(0))
                    .map_err(backend_err)
            })
            .await
            .unwrap();
        assert_eq!(left, 0, "every intent is settled");
    }
}
