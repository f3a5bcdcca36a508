//! Document-created functions: a `cosmosDBTrigger` invocation to one
//! [`DocumentCreated`] per created document.
//!
//! The binding's value (`Data.<name>`) is the batch of changed documents: a JSON array,
//! or a JSON-encoded string of one (a single object is taken as a batch of one).
//!
//! **Created or updated.** The Cosmos DB change feed (latest-version mode) sends the
//! document's current state and does not say whether a change created it. nube's
//! Cosmos DB store ([`crate::cosmos`], feature `cosmos`) writes two fields for this, as
//! every nube store writes versions: `_nube_version` ([`VERSION_FIELD`]), a new UUIDv7
//! on every write, and `_nube_created` ([`CREATED_FIELD`]), the version of the write
//! that created the document (a put over it keeps it; an update writes `unknown`).
//! The rule ([`is_created`]):
//! a document is *created* when `_nube_version == _nube_created`, and *updated*
//! otherwise, which is skipped (nube has no updated trigger). **A document without
//! both fields counts as created**: documents written by other tools fire the function
//! on every change.
//!
//! **Coalesced changes: a create can be missed.** In latest-version mode the change
//! feed keeps only the newest version of a document: when a document is created and
//! then updated before the host reads the feed (the trigger polls every few seconds),
//! the batch carries only the updated document, whose `_nube_version` is no longer its
//! `_nube_created`. That document is reported as an update and skipped: the function
//! does **not** run for that create (it is never run twice for it either). Nothing in
//! the latest-version feed can tell the two cases apart; apps that must see every
//! create should not update documents right after creating them, or should also
//! reconcile by querying (for example a timer over documents not processed yet).
//!
//! **The document.** As the store writes it: `id` is the document id and is left out of
//! the value; `_nube_id` holds the document's own `id` field and goes back to `id`;
//! numbers Cosmos DB cannot hold exactly are restored from `_nube_numbers`
//! ([`NUMBERS_FIELD`]); other `_nube*` fields are the store's, and Cosmos DB's system
//! properties (`_rid`, `_self`, `_etag`, `_attachments`, `_ts`, `_lsn`) are dropped.
//! [`document_value`] does all of it.
//!
//! **Event id.** `<collection>/<id>@<_nube_created>` (else `_etag`, `_lsn`, `_ts`):
//! the same when the host redelivers the batch, and when a tool other than nube's store
//! changes the document but keeps its `_nube_*` fields (which makes it look created
//! again), so that a function that remembers event ids runs once. Such tools should
//! drop `_nube_version` or `_nube_created` when they write.
//!
//! **Raw payload.** Each event's [`RawEvent`] is its own item as the feed sent it.

use nube::{DocumentCreated, Provider, RawEvent};
use serde_json::{Map, Value};

use crate::error::DecodeError;
use crate::payload::{InvocationRequest, json_value, kind_of};

/// The field holding the version nube's document store wrote.
pub const VERSION_FIELD: &str = "_nube_version";

/// The field holding the version of the write that created the document (kept by
/// updates): a document is created when it equals [`VERSION_FIELD`].
pub const CREATED_FIELD: &str = "_nube_created";

/// The field holding the document's own `id` field.
pub const ID_FIELD: &str = "_nube_id";

/// The field holding the exact text of the numbers Cosmos DB cannot store exactly
/// (integers beyond 2^53, floats with an integral value): a JSON object from a JSON
/// Pointer into the document (RFC 6901, as [`Value::pointer`] takes) to the number's
/// text.
pub const NUMBERS_FIELD: &str = "_nube_numbers";

/// Prefix of the store's metadata fields, dropped from documents.
pub const METADATA_PREFIX: &str = "_nube";

/// Cosmos DB's system properties, dropped from documents.
pub const SYSTEM_PROPERTIES: [&str; 6] = ["_rid", "_self", "_etag", "_attachments", "_ts", "_lsn"];

/// One document of a change-feed batch.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangedDocument {
    /// A created document: the event for the function.
    Created(DocumentCreated<Value>),
    /// An updated document (its `_nube_version` is not its `_nube_created`); nothing
    /// to run.
    Updated {
        /// The document id.
        id: String,
        /// Its version.
        version: Value,
    },
    /// An item that is not a document nube can read.
    Invalid {
        /// Its position in the batch.
        index: usize,
        /// What is wrong with it.
        error: DecodeError,
    },
}

/// Whether a document with these fields counts as created: `_nube_version` equals
/// `_nube_created`, or the document lacks one of them (see the module docs).
pub fn is_created(document: &Map<String, Value>) -> bool {
    match (document.get(VERSION_FIELD), document.get(CREATED_FIELD)) {
        (Some(version), Some(created)) if !version.is_null() && !created.is_null() => {
            version == created
        }
        _ => true,
    }
}

/// The document value stored in the Cosmos DB item `fields`, as nube's store wrote it:
/// without `id`, the `_nube*` fields and Cosmos DB's system properties; with
/// `_nube_id` back as `id` and the exact numbers of `_nube_numbers` put back.
///
/// A number is put back only where the item still holds a number that reads as the
/// same `f64` (so an item another tool changed since keeps that tool's value).
pub fn document_value(fields: Map<String, Value>) -> Value {
    let mut numbers = None;
    let mut document = Map::new();
    for (name, value) in fields {
        if name == ID_FIELD {
            document.insert("id".to_owned(), value);
        } else if name == NUMBERS_FIELD {
            numbers = Some(value);
        } else if name != "id"
            && !name.starts_with(METADATA_PREFIX)
            && !SYSTEM_PROPERTIES.contains(&name.as_str())
        {
            document.insert(name, value);
        }
    }
    let mut document = Value::Object(document);
    if let Some(Value::Object(numbers)) = numbers {
        for (pointer, text) in numbers {
            let Some(exact) = text
                .as_str()
                .and_then(|t| t.parse::<serde_json::Number>().ok())
            else {
                continue;
            };
            if let Some(Value::Number(stored)) = document.pointer_mut(&pointer)
                && stored.as_f64().is_some()
                && stored.as_f64() == exact.as_f64()
            {
                *stored = exact;
            }
        }
    }
    document
}

/// The batch in `request`'s `Data`: the first value that is an array of objects (or
/// encodes one).
pub fn batch(request: &InvocationRequest) -> Result<Vec<Value>, DecodeError> {
    let mut seen = Vec::new();
    for (name, value) in &request.data {
        match json_value(value) {
            Value::Array(items) => return Ok(items),
            Value::Object(o) if o.contains_key("id") => return Ok(vec![Value::Object(o)]),
            other => seen.push(format!("{name:?} ({})", kind_of(&other))),
        }
    }
    Err(DecodeError::new(format!(
        "no cosmosDBTrigger batch (an array of documents) in Data; got: {}",
        if seen.is_empty() {
            "nothing".to_owned()
        } else {
            seen.join(", ")
        }
    )))
}

/// Whether `request` looks like a Cosmos DB trigger's: a `Data` array of objects with
/// an `id`.
pub fn is_document_batch(request: &InvocationRequest) -> bool {
    batch(request).is_ok_and(|items| {
        !items.is_empty()
            && items
                .iter()
                .all(|i| i.get("id").is_some_and(Value::is_string))
    })
}

/// What tells this create apart: `_nube_created` when the document is a create of
/// nube's store (`_nube_version` equal to it; then another tool's update that keeps
/// both fields repeats the event id rather than making a new one), else Cosmos DB's
/// own stamps.
fn stamp(document: &Map<String, Value>) -> Option<String> {
    let nube_create = document
        .get(CREATED_FIELD)
        .filter(|c| c.is_string() && document.get(VERSION_FIELD) == Some(c));
    nube_create
        .into_iter()
        .chain(
            ["_etag", "_lsn", "_ts"]
                .iter()
                .filter_map(|k| document.get(*k)),
        )
        .find_map(|value| match value {
            Value::String(s) => Some(s.trim_matches('"').to_owned()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
}

/// The documents of the batch in `request`, for the function watching `collection`.
/// Each event's raw payload is its own item, as the change feed sent it (not the
/// whole batch, which would be copied once per document).
pub fn decode(
    request: &InvocationRequest,
    collection: &str,
) -> Result<Vec<ChangedDocument>, DecodeError> {
    let items = batch(request)?;
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let Value::Object(fields) = json_value(&item) else {
                return ChangedDocument::Invalid {
                    index,
                    error: DecodeError::new(format!(
                        "item {index} of the batch is {}, not a document",
                        kind_of(&item)
                    )),
                };
            };
            let Some(id) = fields.get("id").and_then(Value::as_str).map(str::to_owned) else {
                return ChangedDocument::Invalid {
                    index,
                    error: DecodeError::new(format!(
                        "item {index} of the batch has no string \"id\""
                    )),
                };
            };
            if !is_created(&fields) {
                return ChangedDocument::Updated {
                    id,
                    version: fields[VERSION_FIELD].clone(),
                };
            }
            let event_id = match stamp(&fields) {
                Some(s) => format!("{collection}/{id}@{s}"),
                None => format!("{collection}/{id}@1"),
            };
            let raw = RawEvent::new(Provider::Azure, Value::Object(fields.clone()));
            ChangedDocument::Created(DocumentCreated {
                event_id,
                collection: collection.to_owned(),
                id,
                document: document_value(fields),
                raw,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn created_when_the_version_is_the_created_version_or_either_is_missing() {
        let doc = |v: Value| v.as_object().unwrap().clone();
        assert!(is_created(&doc(json!({"id": "a"}))));
        assert!(is_created(&doc(
            json!({"id": "a", "_nube_version": "v1", "_nube_created": "v1"})
        )));
        assert!(!is_created(&doc(
            json!({"id": "a", "_nube_version": "v2", "_nube_created": "v1"})
        )));
        // Written by something that knows one field only: counted as created.
        assert!(is_created(&doc(json!({"id": "a", "_nube_version": "v2"}))));
        assert!(is_created(&doc(json!({"id": "a", "_nube_created": "v1"}))));
        assert!(is_created(&doc(
            json!({"id": "a", "_nube_version": null, "_nube_created": "v1"})
        )));
    }

    #[test]
    fn exact_numbers_come_back_where_the_item_still_holds_them() {
        let item = json!({
            "id": "k", "big": 9007199254740992u64, "f": 2, "nested": {"a/b": [1, 18446744073709551615u64]},
            "changed": 5, "gone": 1,
            "_nube_numbers": {
                "/big": "9007199254740993", "/f": "2.0", "/nested/a~1b/1": "18446744073709551615",
                "/changed": "9007199254740993", "/missing": "1", "/gone": "not a number"
            }
        });
        let value = document_value(item.as_object().unwrap().clone());
        assert_eq!(value["big"].as_u64(), Some(9007199254740993));
        assert!(value["f"].is_f64(), "{value}");
        assert_eq!(value["nested"]["a/b"][1].as_u64(), Some(u64::MAX));
        assert_eq!(
            value["changed"],
            json!(5),
            "a value changed elsewhere stays"
        );
        assert_eq!(value["gone"], json!(1));
        assert!(value.get("_nube_numbers").is_none() && value.get("id").is_none());
    }

    #[test]
    fn documents_lose_system_fields_and_keep_their_own_id() {
        let request = InvocationRequest {
            data: json!({"documents": json!([
                {"id": "o1", "_nube_id": 7, "_nube_version": "v1", "_nube_created": "v1", "total": 3, "_rid": "r", "_etag": "\"e1\"", "_ts": 5, "_lsn": 9},
                {"id": "o2", "_nube_version": "v2", "_nube_created": "v1"}
            ]).to_string()})
            .as_object()
            .unwrap()
            .clone(),
            metadata: Map::new(),
        };
        let docs = decode(&request, "orders").unwrap();
        let ChangedDocument::Created(first) = &docs[0] else {
            panic!("{docs:?}")
        };
        assert_eq!(first.document, json!({"id": 7, "total": 3}));
        // Named by the create it is, and carrying only its own item.
        assert_eq!(first.event_id, "orders/o1@v1");
        assert_eq!(first.raw.payload["_etag"], "\"e1\"");
        assert!(first.raw.payload.get("documents").is_none());
        assert!(matches!(&docs[1], ChangedDocument::Updated { id, .. } if id == "o2"));
    }

    #[test]
    fn documents_of_other_tools_are_named_by_their_etag() {
        let request = InvocationRequest {
            // A `_nube_created` without its `_nube_version` names no create of nube's.
            data: json!({"documents": [{"id": "o3", "_nube_created": "v1", "_etag": "\"e3\"", "_ts": 5}]})
                .as_object()
                .unwrap()
                .clone(),
            metadata: Map::new(),
        };
        let docs = decode(&request, "orders").unwrap();
        let ChangedDocument::Created(event) = &docs[0] else {
            panic!("{docs:?}")
        };
        assert_eq!(event.event_id, "orders/o3@e3");
    }
}
