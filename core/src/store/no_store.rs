//! [`NoDocumentStore`]: what a runtime gives an app when it has no document store to
//! offer (the app declares no collections, or the adapter was built without its store
//! feature). Every call fails, saying what to change.

use async_trait::async_trait;
use serde_json::Value;

use super::Version;
use super::{Document, DocumentStore, Page, Query, StoreError};

/// A document store that refuses every call with a [`StoreError::Backend`] naming the
/// collection, how to declare it, and the adapter feature that brings a real store.
///
/// ```
/// use nube::store::{DocumentStore, NoDocumentStore};
/// # tokio_test_block(async {
/// let store = NoDocumentStore::new("nube-aws", "dynamodb");
/// let err = store.get("todos", "t1").await.unwrap_err();
/// assert!(err.to_string().contains("\"dynamodb\""));
/// # });
/// # fn tokio_test_block(f: impl std::future::Future<Output = ()>) {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct NoDocumentStore {
    adapter: &'static str,
    feature: &'static str,
}

impl NoDocumentStore {
    /// The store `adapter` (a crate name) gives when built without `feature`, or when
    /// the app declares no collections.
    pub fn new(adapter: &'static str, feature: &'static str) -> Self {
        Self { adapter, feature }
    }

    fn refuse(&self, collection: &str) -> StoreError {
        StoreError::Backend {
            backend: "none",
            message: format!(
                "collection {collection:?} has no store: either this app declares no collections (declare it with .collection({collection:?})) or {} was built without its {:?} feature",
                self.adapter, self.feature
            ),
            source: None,
        }
    }
}

#[async_trait]
impl DocumentStore for NoDocumentStore {
    fn backend(&self) -> &'static str {
        "none"
    }

    async fn get(&self, collection: &str, _id: &str) -> Result<Option<Document>, StoreError> {
        Err(self.refuse(collection))
    }

    async fn create(
        &self,
        collection: &str,
        _id: &str,
        _value: Value,
    ) -> Result<Document, StoreError> {
        Err(self.refuse(collection))
    }

    async fn put(
        &self,
        collection: &str,
        _id: &str,
        _value: Value,
    ) -> Result<Document, StoreError> {
        Err(self.refuse(collection))
    }

    async fn update(
        &self,
        collection: &str,
        _id: &str,
        _value: Value,
        _expected: &Version,
    ) -> Result<Document, StoreError> {
        Err(self.refuse(collection))
    }

    async fn delete(
        &self,
        collection: &str,
        _id: &str,
        _expected: Option<&Version>,
    ) -> Result<bool, StoreError> {
        Err(self.refuse(collection))
    }

    async fn query(&self, collection: &str, _query: &Query) -> Result<Page, StoreError> {
        Err(self.refuse(collection))
    }
}
