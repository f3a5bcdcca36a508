//! [`DocumentCreated`]: a document was created in a collection.

use serde::{Deserialize, Serialize};

use super::RawEvent;

/// A document was created. `T` is the document type the handler asked for; the
/// runtime decodes the stored JSON into it (a mismatch fails the invocation with a
/// clear error and is not retried).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentCreated<T> {
    /// Stable across redelivery of the same change.
    pub event_id: String,
    /// The collection's logical name.
    pub collection: String,
    /// The document id.
    pub id: String,
    /// The document as created.
    pub document: T,
    /// The provider's payload.
    pub raw: RawEvent,
}

impl DocumentCreated<serde_json::Value> {
    /// Decodes the document into `T`.
    pub fn decode<T: serde::de::DeserializeOwned>(
        self,
    ) -> Result<DocumentCreated<T>, serde_json::Error> {
        Ok(DocumentCreated {
            document: serde_json::from_value(self.document)?,
            event_id: self.event_id,
            collection: self.collection,
            id: self.id,
            raw: self.raw,
        })
    }
}
