//! [`Collection<T>`]: typed access to one collection of a [`DocumentStore`].

use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Document, DocumentStore, Page, Query, StoreError, Version};

/// One collection of documents of type `T`, bound to the app's store.
///
/// Get one from [`Context::collection`](crate::Context::collection) in a handler, or
/// [`Collection::new`] with any store.
///
/// ```
/// # tokio_test_block(async {
/// use nube::store::{Collection, MemoryStore};
/// use serde::{Deserialize, Serialize};
/// use std::sync::Arc;
///
/// #[derive(Serialize, Deserialize, Debug, PartialEq)]
/// struct Todo { title: String }
///
/// let todos: Collection<Todo> = Collection::new("todos", Arc::new(MemoryStore::new()));
/// let created = todos.create("t1", &Todo { title: "milk".into() }).await?;
/// let got = todos.get("t1").await?.unwrap();
/// assert_eq!(got.value.title, "milk");
/// assert_eq!(got.version, created.version);
/// # Ok::<(), nube::store::StoreError>(())
/// # });
/// # fn tokio_test_block<F: std::future::Future<Output = Result<(), nube::store::StoreError>>>(f: F) {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f).unwrap()
/// # }
/// ```
pub struct Collection<T> {
    name: Arc<str>,
    store: Arc<dyn DocumentStore>,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for Collection<T> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            store: self.store.clone(),
            _type: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Collection<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collection")
            .field("name", &self.name)
            .field("backend", &self.store.backend())
            .finish()
    }
}

fn decode<T: DeserializeOwned>(collection: &str, d: Document) -> Result<Document<T>, StoreError> {
    let value = serde_json::from_value(d.value).map_err(|e| {
        StoreError::Decode(format!(
            "document {collection}/{} does not match the expected type: {e}",
            d.id
        ))
    })?;
    Ok(Document {
        id: d.id,
        version: d.version,
        value,
    })
}

impl<T: Serialize + DeserializeOwned> Collection<T> {
    /// The collection `name` in `store`.
    pub fn new(name: impl Into<Arc<str>>, store: Arc<dyn DocumentStore>) -> Self {
        Self {
            name: name.into(),
            store,
            _type: PhantomData,
        }
    }

    /// The collection's logical name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The untyped store behind this collection.
    pub fn store(&self) -> &Arc<dyn DocumentStore> {
        &self.store
    }

    fn encode(&self, value: &T) -> Result<Value, StoreError> {
        serde_json::to_value(value)
            .map_err(|e| StoreError::Decode(format!("cannot serialise into {}: {e}", self.name)))
    }

    /// The document with `id`, or `None`.
    pub async fn get(&self, id: &str) -> Result<Option<Document<T>>, StoreError> {
        match self.store.get(&self.name, id).await? {
            Some(d) => decode(&self.name, d).map(Some),
            None => Ok(None),
        }
    }

    /// Stores a new document; [`StoreError::Conflict`] if `id` exists.
    pub async fn create(&self, id: &str, value: &T) -> Result<Document<T>, StoreError> {
        let d = self
            .store
            .create(&self.name, id, self.encode(value)?)
            .await?;
        decode(&self.name, d)
    }

    /// Creates or replaces the document `id`.
    pub async fn put(&self, id: &str, value: &T) -> Result<Document<T>, StoreError> {
        let d = self.store.put(&self.name, id, self.encode(value)?).await?;
        decode(&self.name, d)
    }

    /// Replaces the document only if it is still at `expected`.
    pub async fn update(
        &self,
        id: &str,
        value: &T,
        expected: &Version,
    ) -> Result<Document<T>, StoreError> {
        let d = self
            .store
            .update(&self.name, id, self.encode(value)?, expected)
            .await?;
        decode(&self.name, d)
    }

    /// Reads, changes and writes back with a version check, retrying (up to 10
    /// times) when someone else wrote in between. `change` may be called more than
    /// once and may fail with any error that a [`StoreError`] converts into (such as
    /// [`nube::Error`](crate::Error)); [`StoreError::NotFound`] if there is no such
    /// document.
    pub async fn modify<E: From<StoreError>>(
        &self,
        id: &str,
        mut change: impl FnMut(&mut T) -> Result<(), E>,
    ) -> Result<Document<T>, E> {
        let mut attempts = 0;
        loop {
            let Some(mut doc) = self.get(id).await? else {
                return Err(StoreError::NotFound {
                    collection: self.name.to_string(),
                    id: id.to_owned(),
                }
                .into());
            };
            change(&mut doc.value)?;
            match self.update(id, &doc.value, &doc.version).await {
                Err(StoreError::PreconditionFailed { .. }) if attempts < 10 => attempts += 1,
                other => return other.map_err(E::from),
            }
        }
    }

    /// Deletes the document; `Ok(false)` when there was none.
    pub async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        self.store.delete(&self.name, id, None).await
    }

    /// Deletes the document only if it is still at `expected`.
    pub async fn delete_if(&self, id: &str, expected: &Version) -> Result<bool, StoreError> {
        self.store.delete(&self.name, id, Some(expected)).await
    }

    /// One page of the documents matching `query`.
    pub async fn query(&self, query: &Query) -> Result<Page<T>, StoreError> {
        let page = self.store.query(&self.name, query).await?;
        Ok(Page {
            documents: page
                .documents
                .into_iter()
                .map(|d| decode(&self.name, d))
                .collect::<Result<_, _>>()?,
            next_cursor: page.next_cursor,
        })
    }

    /// Every document matching `query`, following cursors page by page.
    pub async fn query_all(&self, query: &Query) -> Result<Vec<Document<T>>, StoreError> {
        let mut q = query.clone();
        let mut all = Vec::new();
        loop {
            let page = self.query(&q).await?;
            all.extend(page.documents);
            match page.next_cursor {
                Some(c) => q.cursor = Some(c),
                None => return Ok(all),
            }
        }
    }
}
