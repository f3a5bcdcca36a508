//! [`BlobCreated`]: an object landed in a bucket.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::RawEvent;

/// An object was created (or overwritten) in a bucket.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlobCreated {
    /// Stable across redelivery of the same notification.
    pub event_id: String,
    /// The bucket's logical name, as declared in the app.
    pub bucket: String,
    /// The object key, decoded (`original/red flower.jpg`).
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// The content type, when the provider reports one.
    pub content_type: Option<String>,
    /// The entity tag, when the provider reports one.
    pub etag: Option<String>,
    /// When the object was written.
    pub time: DateTime<Utc>,
    /// The object's bytes, when the provider delivered them with the event (Azure's
    /// `blobTrigger` does); `None` otherwise, and then the object is read through the
    /// bucket. Not serialised: an event's JSON describes the object, it does not carry it.
    #[serde(skip)]
    pub content: Option<bytes::Bytes>,
    /// The provider's payload.
    pub raw: RawEvent,
}

/// The content shows as its length: a log line should not hold the object.
impl std::fmt::Debug for BlobCreated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobCreated")
            .field("event_id", &self.event_id)
            .field("bucket", &self.bucket)
            .field("key", &self.key)
            .field("size", &self.size)
            .field("content_type", &self.content_type)
            .field("etag", &self.etag)
            .field("time", &self.time)
            .field(
                "content",
                &self.content.as_ref().map(|c| format!("{} bytes", c.len())),
            )
            .field("raw", &self.raw)
            .finish()
    }
}

impl BlobCreated {
    /// The event for an object a runtime just wrote through a [`Bucket`](crate::Bucket),
    /// with a new event id.
    pub fn written(bucket: &str, info: &crate::blob::BlobInfo, raw: RawEvent) -> Self {
        Self {
            event_id: uuid::Uuid::now_v7().to_string(),
            bucket: bucket.to_owned(),
            key: info.key.clone(),
            size: info.size,
            content_type: info.content_type.clone(),
            etag: info.etag.clone(),
            time: info.last_modified,
            content: None,
            raw,
        }
    }

    /// The key's last path segment (`red flower.jpg` for `original/red flower.jpg`).
    pub fn file_name(&self) -> &str {
        self.key.rsplit('/').next().unwrap_or(&self.key)
    }

    /// The key without `prefix`, when it starts with it.
    pub fn key_after<'a>(&'a self, prefix: &str) -> Option<&'a str> {
        self.key.strip_prefix(prefix)
    }
}
