//! [`EmbeddedStore`]: the document store of the local runtime, in SQLite. A write
//! that creates a document records a `DocumentCreated` event for every function
//! subscribed to the collection in the same transaction (the outbox).

use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};

use nube::store::{
    Document, DocumentStore, Op, Page, Query, StoreError, Version, evaluate, validate_key,
    validate_write,
};
use nube::{App, DocumentCreated, Event, Provider, RawEvent};

use crate::db::{Database, backend_err};
use crate::outbox::{Outbox, enqueue};

/// The embedded document store. Versions are UUIDv7 strings, unique for every write,
/// so a version read before a delete never matches a re-created document.
#[derive(Clone, Debug)]
pub struct EmbeddedStore {
    db: Database,
    triggers: Option<(Arc<App>, Outbox)>,
}

enum Rule {
    Create,
    Put,
    Update(Version),
}

fn current_version(
    c: &Connection,
    collection: &str,
    id: &str,
) -> Result<Option<String>, StoreError> {
    c.query_row(
        "SELECT version FROM documents WHERE collection = ?1 AND id = ?2",
        params![collection, id],
        |r| r.get(0),
    )
    .optional()
    .map_err(backend_err)
}

fn parse(
    collection: &str,
    id: String,
    version: String,
    text: &str,
) -> Result<Document, StoreError> {
    let value = serde_json::from_str(text).map_err(|e| {
        StoreError::backend(
            "embedded",
            format!("stored document {collection}/{id} is not JSON"),
            e,
        )
    })?;
    Ok(Document {
        id,
        version: Version::new(version),
        value,
    })
}

impl EmbeddedStore {
    /// A store in `db` that fires no functions.
    pub fn new(db: Database) -> Self {
        Self { db, triggers: None }
    }

    /// A store that records a `DocumentCreated` event in `outbox` for each function of
    /// `app` subscribed to a collection when a document is created in it.
    pub fn with_triggers(db: Database, app: Arc<App>, outbox: Outbox) -> Self {
        Self {
            db,
            triggers: Some((app, outbox)),
        }
    }

    async fn write(
        &self,
        collection: &str,
        id: &str,
        value: Value,
        rule: Rule,
    ) -> Result<Document, StoreError> {
        validate_write(collection, id, &value)?;
        let (collection, id) = (collection.to_owned(), id.to_owned());
        let app = self.triggers.as_ref().map(|(a, _)| a.clone());
        let (document, fired) = self
            .db
            .call(move |c| {
                let tx = c.transaction().map_err(backend_err)?;
                let current = current_version(&tx, &collection, &id)?;
                match (&rule, &current) {
                    (Rule::Create, Some(_)) => {
                        return Err(StoreError::Conflict { collection, id });
                    }
                    (Rule::Update(_), None) => return Err(StoreError::NotFound { collection, id }),
                    (Rule::Update(expected), Some(v)) if v != expected.as_str() => {
                        return Err(StoreError::PreconditionFailed { collection, id, expected: expected.to_string() });
                    }
                    _ => {}
                }
                let version = uuid::Uuid::now_v7().simple().to_string();
                let text = serde_json::to_string(&value).expect("JSON values serialise");
                tx.execute(
                    "INSERT INTO documents (collection, id, version, value) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (collection, id) DO UPDATE SET version = excluded.version, value = excluded.value",
                    params![collection, id, version, text],
                )
                .map_err(backend_err)?;
                let mut fired = false;
                if current.is_none()
                    && let Some(app) = &app
                {
                    let event = Event::DocumentCreated(DocumentCreated {
                        event_id: uuid::Uuid::now_v7().to_string(),
                        collection: collection.clone(),
                        id: id.clone(),
                        document: value.clone(),
                        raw: RawEvent::new(
                            Provider::Local,
                            json!({"source": "embedded", "collection": collection, "id": id, "version": version}),
                        ),
                    });
                    for f in app.subscribers(&event) {
                        enqueue(&tx, f.name(), &event).map_err(backend_err)?;
                        fired = true;
                    }
                }
                tx.commit().map_err(backend_err)?;
                Ok((Document { id, version: Version::new(version), value }, fired))
            })
            .await?;
        if fired && let Some((_, outbox)) = &self.triggers {
            outbox.wake();
        }
        Ok(document)
    }
}

#[async_trait]
impl DocumentStore for EmbeddedStore {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    async fn get(&self, collection: &str, id: &str) -> Result<Option<Document>, StoreError> {
        validate_key(collection, id)?;
        let (collection, id) = (collection.to_owned(), id.to_owned());
        self.db
            .call(move |c| {
                let row: Option<(String, String)> = c
                    .prepare_cached(
                        "SELECT version, value FROM documents WHERE collection = ?1 AND id = ?2",
                    )
                    .map_err(backend_err)?
                    .query_row(params![collection, id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
                    .map_err(backend_err)?;
                row.map(|(v, text)| parse(&collection, id, v, &text))
                    .transpose()
            })
            .await
    }

    async fn create(
        &self,
        collection: &str,
        id: &str,
        value: Value,
    ) -> Result<Document, StoreError> {
        self.write(collection, id, value, Rule::Create).await
    }

    async fn put(&self, collection: &str, id: &str, value: Value) -> Result<Document, StoreError> {
        self.write(collection, id, value, Rule::Put).await
    }

    async fn update(
        &self,
        collection: &str,
        id: &str,
        value: Value,
        expected: &Version,
    ) -> Result<Document, StoreError> {
        self.write(collection, id, value, Rule::Update(expected.clone()))
            .await
    }

    async fn delete(
        &self,
        collection: &str,
        id: &str,
        expected: Option<&Version>,
    ) -> Result<bool, StoreError> {
        validate_key(collection, id)?;
        let (collection, id, expected) = (collection.to_owned(), id.to_owned(), expected.cloned());
        self.db
            .call(move |c| {
                let tx = c.transaction().map_err(backend_err)?;
                let Some(current) = current_version(&tx, &collection, &id)? else {
                    return Ok(false);
                };
                if let Some(expected) = expected
                    && expected.as_str() != current
                {
                    return Err(StoreError::PreconditionFailed {
                        collection,
                        id,
                        expected: expected.to_string(),
                    });
                }
                tx.execute(
                    "DELETE FROM documents WHERE collection = ?1 AND id = ?2",
                    params![collection, id],
                )
                .map_err(backend_err)?;
                tx.commit().map_err(backend_err)?;
                Ok(true)
            })
            .await
    }

    async fn query(&self, collection: &str, query: &Query) -> Result<Page, StoreError> {
        query.validate()?;
        // Equality on strings narrows the rows in SQL; `evaluate` then applies the
        // whole query with the reference semantics.
        let mut sql =
            String::from("SELECT id, version, value FROM documents WHERE collection = ?1");
        let mut args: Vec<String> = vec![collection.to_owned()];
        for f in &query.filters {
            if let (Op::Eq, Value::String(v)) = (f.op, &f.value)
                && f.field
                    .split('.')
                    .all(|k| !k.is_empty() && !k.contains('"'))
            {
                let path: String = f.field.split('.').map(|k| format!(".\"{k}\"")).collect();
                args.push(format!("${path}"));
                args.push(v.clone());
                sql.push_str(&format!(
                    " AND json_extract(value, ?{}) = ?{}",
                    args.len() - 1,
                    args.len()
                ));
            }
        }
        let collection = collection.to_owned();
        let docs = self
            .db
            .call(move |c| {
                let mut stmt = c.prepare_cached(&sql).map_err(backend_err)?;
                let rows = stmt
                    .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                        ))
                    })
                    .map_err(backend_err)?;
                let mut docs = Vec::new();
                for row in rows {
                    let (id, v, text) = row.map_err(backend_err)?;
                    docs.push(parse(&collection, id, v, &text)?);
                }
                Ok::<_, StoreError>(docs)
            })
            .await?;
        evaluate(docs, query)
    }
}
