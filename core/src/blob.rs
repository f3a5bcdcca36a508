//! Blobs: a [`Bucket`] is an `object_store` store plus its logical name, key rules,
//! and the hook through which the local runtime fires blob-created functions.
//!
//! nube adds no storage client of its own: [`Bucket::object_store`] is the
//! `object_store` handle for anything the wrapper does not cover.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use object_store::path::Path;
use object_store::{Attribute, Attributes, ObjectStore, ObjectStoreExt, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

/// What a blob operation failed on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// No object at that key.
    #[error("blob {bucket}/{key} not found")]
    NotFound {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
    },
    /// The key is not usable on every provider.
    #[error("blob key {key:?} is invalid: {reason}")]
    InvalidKey {
        /// The key given.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The object store failed.
    #[error("bucket {bucket}: {source}")]
    Store {
        /// Bucket name.
        bucket: String,
        /// The `object_store` error.
        #[source]
        source: object_store::Error,
    },
    /// The runtime could not record the blob-created event.
    #[error("bucket {bucket}: could not record the blob-created event: {message}")]
    Events {
        /// Bucket name.
        bucket: String,
        /// What failed.
        message: String,
    },
}

/// What is known about a stored object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlobInfo {
    /// The key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Entity tag, when the store has one.
    pub etag: Option<String>,
    /// Last write time.
    pub last_modified: DateTime<Utc>,
    /// Content type given at write time, when known.
    pub content_type: Option<String>,
}

/// A runtime's hook around blob writes. The local runtime records an intent before
/// the write and arms the event after it, so a crash between the two loses nothing.
#[async_trait]
pub trait BlobEvents: Send + Sync + std::fmt::Debug + 'static {
    /// Called before an object is written; the returned token goes to `written` or
    /// `abandoned`.
    async fn will_write(
        &self,
        bucket: &str,
        key: &str,
        content_type: Option<&str>,
    ) -> Result<u64, BlobError>;
    /// Called after the object was written.
    async fn written(&self, token: u64, bucket: &str, info: &BlobInfo) -> Result<(), BlobError>;
    /// Called when the write failed: nothing was created.
    async fn abandoned(&self, token: u64) -> Result<(), BlobError>;
}

/// What a put wrote.
fn info(
    key: &str,
    size: u64,
    put: object_store::PutResult,
    content_type: Option<&str>,
) -> BlobInfo {
    BlobInfo {
        key: key.to_owned(),
        size,
        etag: put.e_tag,
        last_modified: Utc::now(),
        content_type: content_type.map(str::to_owned),
    }
}

/// A bucket of blobs, by its logical name.
#[derive(Clone, Debug)]
pub struct Bucket {
    name: Arc<str>,
    store: Arc<dyn ObjectStore>,
    events: Option<Arc<dyn BlobEvents>>,
}

/// Checks a bucket name: 3–63 characters of `a-z 0-9 -`, starting and ending with a
/// letter or digit, no `--` (the rules S3, Azure containers and GCS share).
pub fn validate_bucket_name(name: &str) -> Result<(), String> {
    let ok = (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "bucket name {name:?} must be 3-63 characters of lowercase letters, digits and single hyphens, starting and ending with a letter or digit"
        ))
    }
}

/// Checks an object key and turns it into an `object_store` path.
pub fn key_to_path(key: &str) -> Result<Path, BlobError> {
    let invalid = |reason: &str| BlobError::InvalidKey {
        key: key.to_owned(),
        reason: reason.to_owned(),
    };
    if key.is_empty() || key.len() > 1024 {
        return Err(invalid("a key is 1-1024 bytes"));
    }
    if key.chars().any(char::is_control) {
        return Err(invalid("control characters are not allowed"));
    }
    Path::parse(key).map_err(|e| invalid(&e.to_string()))
}

impl Bucket {
    /// The bucket `name` stored in `store`.
    pub fn new(name: impl Into<Arc<str>>, store: Arc<dyn ObjectStore>) -> Self {
        Self {
            name: name.into(),
            store,
            events: None,
        }
    }

    /// The same bucket, with a runtime's write hook.
    pub fn with_events(mut self, events: Arc<dyn BlobEvents>) -> Self {
        self.events = Some(events);
        self
    }

    /// The logical name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The underlying `object_store` handle (keys are paths relative to the bucket).
    /// Writes through it do not fire blob-created functions locally.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    fn store_err(&self, key: &str, e: object_store::Error) -> BlobError {
        match e {
            object_store::Error::NotFound { .. } => BlobError::NotFound {
                bucket: self.name.to_string(),
                key: key.to_owned(),
            },
            source => BlobError::Store {
                bucket: self.name.to_string(),
                source,
            },
        }
    }

    /// Writes `bytes` at `key` (replacing what was there).
    pub async fn put(&self, key: &str, bytes: impl Into<Bytes>) -> Result<BlobInfo, BlobError> {
        self.put_with_content_type(key, bytes, None).await
    }

    /// Writes `bytes` at `key` with a content type. Stores that cannot keep
    /// attributes (the local file system) still pass it to blob-created events.
    ///
    /// Where puts fire blob-created functions (the local runtime), the write and the
    /// recording of its event run on a task of their own: dropping this future does not
    /// leave a written object without its event.
    pub async fn put_with_content_type(
        &self,
        key: &str,
        bytes: impl Into<Bytes>,
        content_type: Option<&str>,
    ) -> Result<BlobInfo, BlobError> {
        let path = key_to_path(key)?;
        let bytes: Bytes = bytes.into();
        let Some(events) = self.events.clone() else {
            let size = bytes.len() as u64;
            let put = self.write(&path, key, bytes, content_type).await?;
            return Ok(info(key, size, put, content_type));
        };
        // The intent, the write and the recording of its event run on a task of their
        // own: a caller that stops waiting (a client that hung up, a deadline) must not
        // leave an intent without its write, or a written object whose event waits for
        // the next start.
        let (bucket, key, content_type) = (
            self.clone(),
            key.to_owned(),
            content_type.map(str::to_owned),
        );
        let write = async move {
            let token = events
                .will_write(&bucket.name, &key, content_type.as_deref())
                .await?;
            bucket
                .write_then_record(&*events, token, path, &key, bytes, content_type.as_deref())
                .await
        };
        tokio::spawn(tracing::Instrument::in_current_span(write))
            .await
            .unwrap_or_else(|e| {
                Err(BlobError::Events {
                    bucket: self.name.to_string(),
                    message: format!("the write stopped: {e}"),
                })
            })
    }

    /// The write of a put whose intent `token` is recorded, then its outcome.
    async fn write_then_record(
        &self,
        events: &dyn BlobEvents,
        token: u64,
        path: Path,
        key: &str,
        bytes: Bytes,
        content_type: Option<&str>,
    ) -> Result<BlobInfo, BlobError> {
        let size = bytes.len() as u64;
        let put = match self.write(&path, key, bytes, content_type).await {
            Ok(put) => put,
            Err(e) => {
                if let Err(abandon) = events.abandoned(token).await {
                    tracing::warn!(error = %abandon, "could not clear a blob-write intent");
                }
                return Err(e);
            }
        };
        let info = info(key, size, put, content_type);
        events.written(token, &self.name, &info).await?;
        Ok(info)
    }

    async fn write(
        &self,
        path: &Path,
        key: &str,
        bytes: Bytes,
        content_type: Option<&str>,
    ) -> Result<object_store::PutResult, BlobError> {
        let payload = PutPayload::from(bytes);
        if let Some(ct) = content_type {
            let mut attributes = Attributes::new();
            attributes.insert(Attribute::ContentType, ct.to_owned().into());
            let opts = PutOptions {
                attributes,
                ..Default::default()
            };
            match self.store.put_opts(path, payload.clone(), opts).await {
                Ok(r) => return Ok(r),
                // Stores without attributes (the local file system) still take the bytes.
                Err(object_store::Error::NotImplemented { .. }) => {}
                Err(e) => return Err(self.store_err(key, e)),
            }
        }
        self.store
            .put(path, payload)
            .await
            .map_err(|e| self.store_err(key, e))
    }

    /// The bytes at `key`; [`BlobError::NotFound`] when there are none.
    pub async fn get(&self, key: &str) -> Result<Bytes, BlobError> {
        let path = key_to_path(key)?;
        let got = self
            .store
            .get(&path)
            .await
            .map_err(|e| self.store_err(key, e))?;
        got.bytes().await.map_err(|e| self.store_err(key, e))
    }

    /// The bytes at `key`, or `None`.
    pub async fn try_get(&self, key: &str) -> Result<Option<Bytes>, BlobError> {
        match self.get(key).await {
            Ok(b) => Ok(Some(b)),
            Err(BlobError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// What is stored at `key`.
    pub async fn head(&self, key: &str) -> Result<BlobInfo, BlobError> {
        let path = key_to_path(key)?;
        let meta = self
            .store
            .head(&path)
            .await
            .map_err(|e| self.store_err(key, e))?;
        Ok(BlobInfo {
            key: key.to_owned(),
            size: meta.size,
            etag: meta.e_tag,
            last_modified: meta.last_modified,
            content_type: None,
        })
    }

    /// Deletes `key`; deleting a missing key succeeds.
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        let path = key_to_path(key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.store_err(key, e)),
        }
    }

    /// Every object whose key starts with `prefix` (a whole path segment, such as
    /// `original/`), in key order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<BlobInfo>, BlobError> {
        use futures::TryStreamExt;
        let trimmed = prefix.trim_end_matches('/');
        let path = if trimmed.is_empty() {
            None
        } else {
            Some(key_to_path(trimmed)?)
        };
        let mut items: Vec<BlobInfo> = self
            .store
            .list(path.as_ref())
            .map_ok(|m| BlobInfo {
                key: m.location.to_string(),
                size: m.size,
                etag: m.e_tag,
                last_modified: m.last_modified,
                content_type: None,
            })
            .try_collect()
            .await
            .map_err(|e| self.store_err(prefix, e))?;
        items.retain(|i| i.key.starts_with(prefix));
        items.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[test]
    fn bucket_names() {
        assert!(validate_bucket_name("uploads").is_ok());
        assert!(validate_bucket_name("Up").is_err());
        assert!(validate_bucket_name("a--b").is_err());
    }

    #[tokio::test]
    async fn put_get_list_delete() {
        let b = Bucket::new("uploads", Arc::new(InMemory::new()));
        b.put_with_content_type("original/red flower.jpg", &b"abc"[..], Some("image/jpeg"))
            .await
            .unwrap();
        b.put("other/x", &b"1"[..]).await.unwrap();
        assert_eq!(b.get("original/red flower.jpg").await.unwrap(), &b"abc"[..]);
        let listed = b.list("original/").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].key, "original/red flower.jpg");
        assert!(matches!(
            b.get("nope").await,
            Err(BlobError::NotFound { .. })
        ));
        assert!(matches!(
            b.put("../x", &b""[..]).await,
            Err(BlobError::InvalidKey { .. })
        ));
        b.delete("other/x").await.unwrap();
        b.delete("other/x").await.unwrap();
        assert!(b.try_get("other/x").await.unwrap().is_none());
    }
}
