//! Documents: the [`DocumentStore`] trait every backend implements, the typed
//! [`Collection`] handlers use, and the [`Query`] language they share.
//!
//! The contract, which `nube::store::contract` checks for any backend:
//! - a document is a JSON object stored under `(collection, id)` with an opaque
//!   [`Version`] that changes on every write that changes the document; among updates
//!   at one version, at most one that changes the document succeeds. A backend may keep
//!   the version when a write stores exactly the value the document holds (Firestore
//!   does), and then that version stays current: where an update's success must be
//!   exclusive, make each competing write differ from the stored value and from the
//!   others (the claimant's id and a time, say);
//! - `create` fails with [`StoreError::Conflict`] when the id exists, `update` with
//!   [`StoreError::PreconditionFailed`] when the version is no longer current and with
//!   [`StoreError::NotFound`] when the document is gone;
//! - `query` filters by equality and by a range on one field, orders by one field
//!   (ties broken by id), pages with an opaque cursor; see [`Query`];
//! - ids and collection names follow [`validate_key`] in reads as in writes.

mod collection;
#[cfg(feature = "testing")]
pub mod contract;
mod memory;
mod no_store;
mod query;
pub mod timestamp;

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use collection::Collection;
pub use memory::{DocumentWritten, MemoryStore};
pub use no_store::NoDocumentStore;
pub use query::{Direction, Filter, Op, Page, Query, compare_values, evaluate, field};

/// An opaque version of a stored document (a counter, an ETag, an update time):
/// pass it back to [`DocumentStore::update`] to write only if nobody changed the document
/// since.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Version(String);

impl Version {
    /// Wraps a backend's version text.
    pub fn new(v: impl Into<String>) -> Self {
        Self(v.into())
    }

    /// The backend's version text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stored document: its id, current version and value (`T` = JSON by default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document<T = Value> {
    /// The id, unique within its collection.
    pub id: String,
    /// The version to pass to [`Collection::update`] for a conditional write.
    pub version: Version,
    /// The document itself.
    pub value: T,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The document does not exist.
    #[error("document {collection}/{id} not found")]
    NotFound {
        /// Collection name.
        collection: String,
        /// Document id.
        id: String,
    },
    /// `create` found a document with that id already.
    #[error("document {collection}/{id} already exists")]
    Conflict {
        /// Collection name.
        collection: String,
        /// Document id.
        id: String,
    },
    /// The document changed since the version the caller read; read it again and retry.
    #[error(
        "document {collection}/{id} changed since version {expected} was read; read it again and retry"
    )]
    PreconditionFailed {
        /// Collection name.
        collection: String,
        /// Document id.
        id: String,
        /// The version the caller expected.
        expected: String,
    },
    /// The query breaks a rule every backend enforces (see [`Query`]).
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// The id, collection name or value is not storable.
    #[error("invalid document: {0}")]
    InvalidDocument(String),
    /// A stored document does not match the type it is read as, a stored item is not
    /// a document at all (written by another tool), or a value cannot be serialised: a
    /// server-side fault in the data, not an outage of the backend.
    #[error("{0}")]
    Decode(String),
    /// The backend itself failed (network, permissions, throttling).
    #[error("{backend} store failed: {message}")]
    Backend {
        /// The backend's name (`embedded`, `dynamodb`, ...).
        backend: &'static str,
        /// What failed, for operators.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl StoreError {
    /// A [`StoreError::Backend`] from any error.
    pub fn backend(
        backend: &'static str,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Backend {
            backend,
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

/// A document database: what DynamoDB, Cosmos DB, Firestore and the embedded store
/// have in common. Values are JSON objects; typed access goes through [`Collection`].
#[async_trait]
pub trait DocumentStore: Send + Sync + fmt::Debug + 'static {
    /// The backend's short name, for logs and errors.
    fn backend(&self) -> &'static str;

    /// The document, or `None` when there is none.
    async fn get(&self, collection: &str, id: &str) -> Result<Option<Document>, StoreError>;

    /// Stores a new document; [`StoreError::Conflict`] if the id exists.
    async fn create(
        &self,
        collection: &str,
        id: &str,
        value: Value,
    ) -> Result<Document, StoreError>;

    /// Creates or replaces a document unconditionally.
    async fn put(&self, collection: &str, id: &str, value: Value) -> Result<Document, StoreError>;

    /// Replaces a document only if its version is still `expected`.
    async fn update(
        &self,
        collection: &str,
        id: &str,
        value: Value,
        expected: &Version,
    ) -> Result<Document, StoreError>;

    /// Deletes a document (only if its version is `expected`, when given). `Ok(false)`
    /// when there was nothing to delete.
    async fn delete(
        &self,
        collection: &str,
        id: &str,
        expected: Option<&Version>,
    ) -> Result<bool, StoreError>;

    /// One page of the documents matching `query`.
    async fn query(&self, collection: &str, query: &Query) -> Result<Page, StoreError>;
}

/// Checks a collection name: 1–64 characters of `a-z A-Z 0-9 - _ .`, starting with a
/// letter (what DynamoDB tables, Cosmos containers and Firestore collections all take).
pub fn validate_collection_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidDocument(format!(
            "collection name {name:?} must be 1-64 characters of letters, digits, '-', '_' or '.', starting with a letter"
        )))
    }
}

/// Whether `id` has the form Firestore keeps for itself, `__.*__`: at least four
/// characters, two underscores at each end (`__` and `___` are ordinary ids).
pub fn is_reserved_id(id: &str) -> bool {
    id.len() >= 4 && id.starts_with("__") && id.ends_with("__")
}

/// Checks a document id: 1–255 bytes, no `/ \ ? #` and no control characters
/// (Cosmos DB and Firestore refuse those), not `.` or `..`, and not `__…__` (which
/// Firestore keeps for itself, [`is_reserved_id`]).
pub fn validate_id(id: &str) -> Result<(), StoreError> {
    let reserved = is_reserved_id(id);
    let ok = !id.is_empty()
        && id.len() <= 255
        && id != "."
        && id != ".."
        && !reserved
        && !id
            .chars()
            .any(|c| c.is_control() || matches!(c, '/' | '\\' | '?' | '#'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidDocument(format!(
            "document id {id:?} must be 1-255 bytes without '/', '\\', '?', '#' or control characters, and neither '.', '..' nor '__…__'"
        )))
    }
}

/// Checks the collection name and id of a read or delete: the same rules as writes,
/// so a request no backend could store fails the same way everywhere.
pub fn validate_key(collection: &str, id: &str) -> Result<(), StoreError> {
    validate_collection_name(collection)?;
    validate_id(id)
}

/// Checks that a value is storable as a document on every backend: a JSON object with
/// no field name, at any depth, of the form `__…__`.
pub fn validate_value(value: &Value) -> Result<(), StoreError> {
    if value.is_object() {
        match reserved_field_name(value) {
            Some(name) => Err(StoreError::InvalidDocument(format!(
                "field name {name:?} has the form __…__, which Firestore keeps for itself; rename it"
            ))),
            None => Ok(()),
        }
    } else {
        Err(StoreError::InvalidDocument(format!(
            "a document must be a JSON object, not {}",
            match value {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::String(_) => "a string",
                Value::Array(_) => "an array",
                Value::Object(_) => "an object",
            }
        )))
    }
}

/// The first field name, at any depth, of the form Firestore keeps for itself
/// ([`is_reserved_id`]): refused on every backend, so that a document stored on one
/// can be stored on any.
fn reserved_field_name(value: &Value) -> Option<&str> {
    match value {
        Value::Object(map) => map.iter().find_map(|(name, v)| {
            if is_reserved_id(name) {
                Some(name.as_str())
            } else {
                reserved_field_name(v)
            }
        }),
        Value::Array(items) => items.iter().find_map(reserved_field_name),
        _ => None,
    }
}

/// Runs all three checks; backends call this first in every write.
pub fn validate_write(collection: &str, id: &str, value: &Value) -> Result<(), StoreError> {
    validate_key(collection, id)?;
    validate_value(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids() {
        assert!(validate_collection_name("order-events").is_ok());
        assert!(validate_collection_name("9lives").is_err());
        assert!(validate_collection_name("a/b").is_err());
        assert!(validate_id("order 1").is_ok());
        assert!(validate_id("a/b").is_err());
        assert!(validate_id("").is_err());
        assert!(validate_id("..").is_err());
        for ordinary in ["__", "___", "__x", "x__"] {
            assert!(validate_id(ordinary).is_ok(), "{ordinary}");
        }
        for reserved in ["____", "__x__"] {
            assert!(validate_id(reserved).is_err(), "{reserved}");
        }
        assert!(validate_value(&serde_json::json!([1])).is_err());
        assert!(validate_value(&serde_json::json!({"__x__": 1})).is_err());
        assert!(validate_value(&serde_json::json!({"a": [{"b": {"____": 1}}]})).is_err());
        assert!(validate_value(&serde_json::json!({"__": 1, "_a_": {"__b": 2}})).is_ok());
    }
}
