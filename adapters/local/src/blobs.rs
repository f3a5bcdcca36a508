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
    /// write: an object that exists gets its events, a missing one is forgotten.
    pub async fn recover(&self, buckets: &[Bucket]) -> Result<usize, BlobError> {
        let intents: Vec<(i64, String, String, Option<String>)> = self
            .db
            .call(|c| {
                let mut stmt = c
                    .prepare(
                        "SELECT token, bucket, key, content_type FROM blob_intents ORDER BY token",
                    )
                    .map_err(backend_err)?;
                let rows = stmt
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                    .map_err(backend_err)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(backend_err)
            })
            .await
            .map_err(|e| BlobError::Events {
                bucket: "*".into(),
                message: e.to_string(),
            })?;
        let mut recovered = 0;
        for (token, bucket_name, key, content_type) in intents {
            let info = match buckets.iter().find(|b| b.name() == bucket_name) {
                Some(b) => match b.head(&key).await {
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
