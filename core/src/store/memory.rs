//! [`MemoryStore`]: a document store in process memory, for tests and the harness.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::broadcast;

use super::{
    Document, DocumentStore, Page, Query, StoreError, Version, evaluate, validate_key,
    validate_write,
};

/// A document was created in a [`MemoryStore`] (by `create`, or by `put` of a new id).
#[derive(Debug, Clone)]
pub struct DocumentWritten {
    /// The collection written to.
    pub collection: String,
    /// The new document.
    pub document: Document,
}

/// A [`DocumentStore`] held in memory: the reference implementation of the contract.
/// [`MemoryStore::subscribe`] reports every created document, which is how the test
/// harness fires document-created functions.
#[derive(Debug)]
pub struct MemoryStore {
    docs: Mutex<BTreeMap<(String, String), (u64, Value)>>,
    // One counter for the whole store, so a version read before a delete never
    // matches the document created again under the same id.
    versions: AtomicU64,
    created: broadcast::Sender<DocumentWritten>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            docs: Mutex::new(BTreeMap::new()),
            versions: AtomicU64::new(0),
            created: broadcast::channel(4096).0,
        }
    }

    /// Receives a [`DocumentWritten`] for each document created from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<DocumentWritten> {
        self.created.subscribe()
    }

    fn write(
        &self,
        collection: &str,
        id: &str,
        value: Value,
        rule: impl FnOnce(Option<u64>) -> Result<(), StoreError>,
    ) -> Result<Document, StoreError> {
        validate_write(collection, id, &value)?;
        let mut docs = self.docs.lock().expect("memory store poisoned");
        let key = (collection.to_owned(), id.to_owned());
        let current = docs.get(&key).map(|(v, _)| *v);
        rule(current)?;
        let version = self.versions.fetch_add(1, Ordering::Relaxed) + 1;
        docs.insert(key, (version, value.clone()));
        drop(docs);
        let document = Document {
            id: id.to_owned(),
            version: Version::new(version.to_string()),
            value,
        };
        if current.is_none() {
            // Nobody listening is fine.
            let _ = self.created.send(DocumentWritten {
                collection: collection.to_owned(),
                document: document.clone(),
            });
        }
        Ok(document)
    }
}

fn expect_version(
    collection: &str,
    id: &str,
    current: Option<u64>,
    expected: &Version,
) -> Result<(), StoreError> {
    match current {
        None => Err(StoreError::NotFound {
            collection: collection.into(),
            id: id.into(),
        }),
        Some(v) if v.to_string() == expected.as_str() => Ok(()),
        Some(_) => Err(StoreError::PreconditionFailed {
            collection: collection.into(),
            id: id.into(),
            expected: expected.to_string(),
        }),
    }
}

#[async_trait]
impl DocumentStore for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, collection: &str, id: &str) -> Result<Option<Document>, StoreError> {
        validate_key(collection, id)?;
        let docs = self.docs.lock().expect("memory store poisoned");
        Ok(docs
            .get(&(collection.to_owned(), id.to_owned()))
            .map(|(v, value)| Document {
                id: id.to_owned(),
                version: Version::new(v.to_string()),
                value: value.clone(),
            }))
    }

    async fn create(
        &self,
        collection: &str,
        id: &str,
        value: Value,
    ) -> Result<Document, StoreError> {
        self.write(collection, id, value, |current| match current {
            Some(_) => Err(StoreError::Conflict {
                collection: collection.into(),
                id: id.into(),
            }),
            None => Ok(()),
        })
    }

    async fn put(&self, collection: &str, id: &str, value: Value) -> Result<Document, StoreError> {
        self.write(collection, id, value, |_| Ok(()))
    }

    async fn update(
        &self,
        collection: &str,
        id: &str,
        value: Value,
        expected: &Version,
    ) -> Result<Document, StoreError> {
        self.write(collection, id, value, |current| {
            expect_version(collection, id, current, expected)
        })
    }

    async fn delete(
        &self,
        collection: &str,
        id: &str,
        expected: Option<&Version>,
    ) -> Result<bool, StoreError> {
        validate_key(collection, id)?;
        let mut docs = self.docs.lock().expect("memory store poisoned");
        let key = (collection.to_owned(), id.to_owned());
        let current = docs.get(&key).map(|(v, _)| *v);
        if current.is_none() {
            return Ok(false);
        }
        if let Some(expected) = expected {
            expect_version(collection, id, current, expected)?;
        }
        Ok(docs.remove(&key).is_some())
    }

    async fn query(&self, collection: &str, query: &Query) -> Result<Page, StoreError> {
        query.validate()?;
        let docs: Vec<Document> = {
            let docs = self.docs.lock().expect("memory store poisoned");
            docs.range((collection.to_owned(), String::new())..)
                .take_while(|((c, _), _)| c == collection)
                .map(|((_, id), (v, value))| Document {
                    id: id.clone(),
                    version: Version::new(v.to_string()),
                    value: value.clone(),
                })
                .collect()
        };
        evaluate(docs, query)
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    #[tokio::test]
    async fn memory_store_passes_the_contract() {
        super::super::contract::run(std::sync::Arc::new(super::MemoryStore::new())).await;
    }
}
