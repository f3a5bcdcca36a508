//! [`FirestoreStore`]: nube's document store on Cloud Firestore (feature `firestore`),
//! through the `firestore` crate (gRPC, rustls).
//!
//! # Data model
//!
//! - **One Firestore collection per nube collection**, at the path
//!   [`crate::names::collection_path`] gives: `$NUBE_COLLECTION_<NAME>` when set (a path
//!   such as `tenants/t1/orders` names a subcollection), else `$NUBE_COLLECTION_PREFIX`
//!   followed by the collection name. See [`CollectionNaming`].
//! - **The document id is the Firestore document id**; the document's fields are the
//!   Firestore document's fields in Firestore's own types, so the console, other clients
//!   and Firestore triggers ([`crate::firestore`]) see the document as it is: a string is
//!   `stringValue`, an integer `integerValue` (int64: 9007199254740993 stays exact), any
//!   other number `doubleValue`, a boolean `booleanValue`, null `nullValue`, an array
//!   `arrayValue`, an object `mapValue`. Nothing else is written: a field named `id` is
//!   a field like any other, and no `_nube_*` metadata is needed.
//! - **The version is the document's update time** (RFC 3339, nanoseconds:
//!   `2026-01-02T03:04:05.123456000Z`). Firestore moves it forward on every write that
//!   changes the document (see *Writes*), so a version read before a delete never matches
//!   a document created again under the same id, and documents written by other tools
//!   have a version too.
//! - Firestore refuses what it cannot store, and so does this store, with
//!   [`StoreError::InvalidDocument`]: an array directly inside an array (wrap the inner
//!   one in an object), an integer above `i64::MAX`, field names Firestore reserves
//!   (`__name__`-like), ids of the form `__id__`, documents over 1 MiB.
//!
//! Values read back are Firestore values as plain JSON, with the decoder the Firestore
//! triggers use ([`crate::firestore::fields_to_json`]): timestamps written by other tools
//! come back as RFC 3339 text, bytes as base64, references as their path.
//!
//! # Writes
//!
//! `create` is one `CreateDocument` (`ALREADY_EXISTS` is [`StoreError::Conflict`]); `put`
//! one `UpdateDocument` without mask or precondition (an upsert that replaces every field);
//! an unversioned `delete` one `DeleteDocument` with the precondition `exists = true`, so
//! a missing document reads as `Ok(false)`. `update` and a versioned `delete` are one write
//! with the precondition `updateTime = version`, which Firestore checks atomically with the
//! write (sent again when Firestore aborts it for contention); when Firestore refuses it,
//! a read tells [`StoreError::NotFound`] from
//! [`StoreError::PreconditionFailed`].
//!
//! **A write that changes nothing keeps the version.** Firestore moves a document's update
//! time only when a write changes its fields, so an `update` (or `put`) that writes the
//! value the document already holds succeeds and returns the version it had, which stays
//! current: a later update at that version succeeds too. Among updates at one version,
//! at most one that changes the document wins. Where an update's success must be
//! exclusive (a worker claiming a job), make every competing write differ from the stored
//! value and from each other, for instance by writing the claimant's id and a claim time.
//! The core contract allows this ([`nube::store`]).
//!
//! # Queries
//!
//! [`DocumentStore::query`] validates the query and **pushes it down** when Firestore
//! evaluates it exactly as nube does: equalities on strings, booleans, null (as `IS_NULL`),
//! doubles and integers up to 2^53 in magnitude; a range (`<`, `<=`, `>`, `>=`) on strings
//! or such numbers (Firestore's ranges, like nube's, only match values of the operand's
//! type); the order field plus `__name__` in the same direction (nube breaks ties by id);
//! the page size (plus one, to know whether another page follows) and the cursor, as a
//! Firestore `startAfter` on `(order value, document)`. The page Firestore returns goes
//! through [`nube::store::evaluate`] anyway, which checks it and writes the next cursor.
//!
//! When a filter cannot be pushed down (a range on booleans or null, integers or doubles
//! beyond 2^53, strings over the 1,500 bytes Firestore compares) or a
//! range comes without an order (Firestore would order by the range field, nube by id),
//! the pushable filters still go to Firestore, and everything Firestore returns is
//! evaluated in memory: exact, at the cost of reading every matching document per page.
//!
//! One difference is left: ordering by a field that holds objects. Firestore orders maps
//! by their content, nube's reference treats them as equal (ties by id); pages of such a
//! query follow Firestore's order.
//!
//! **Indexes.** Firestore serves a query only from an index. Single-field indexes exist
//! by default, so these need nothing: equalities on any number of fields, an order and/or
//! a range on one field alone. **An equality combined with an order or a range on another
//! field needs a composite index**: the equality fields ascending, then the order field in
//! the query's direction (`__name__` is implied). Without it Firestore fails the query with
//! `FAILED_PRECONDITION` and a link that creates the index; the [`StoreError::Backend`]
//! this store returns carries that message. (The emulator needs no indexes.)
//!
//! # Connection
//!
//! [`FirestoreStore::from_env`]: the project from `GOOGLE_CLOUD_PROJECT` (or `GCP_PROJECT`,
//! `GCLOUD_PROJECT`), the database from `NUBE_FIRESTORE_DATABASE` (default `(default)`),
//! credentials from Application Default Credentials (on Cloud Run: the service's account)
//! and, when `FIRESTORE_EMULATOR_HOST` is set, the emulator at that address without
//! credentials.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SecondsFormat};
use firestore::errors::FirestoreError;
use firestore::gcloud_sdk::google::firestore::v1 as pb;
use firestore::{
    FirestoreDb, FirestoreDbOptions, FirestoreQueryCursor, FirestoreQueryDirection,
    FirestoreQueryFilter, FirestoreQueryFilterCompare, FirestoreQueryFilterComposite,
    FirestoreQueryFilterCompositeOperator, FirestoreQueryFilterUnary, FirestoreQueryOrder,
    FirestoreValue, FirestoreWritePrecondition,
};
use prost::Message;
use serde_json::{Map, Value};

use nube::store::{
    Direction, Document, DocumentStore, Op, Page, Query, StoreError, Version, evaluate,
    is_reserved_id, validate_collection_name, validate_key, validate_write,
};

/// The `firestore` crate this store is built on, to build a [`FirestoreDb`] for
/// [`FirestoreStore::new`] with the same version.
pub use firestore as client;

const BACKEND: &str = "firestore";

/// The variable naming the Firestore database (default `(default)`).
pub const DATABASE_ENV: &str = "NUBE_FIRESTORE_DATABASE";

/// The variables holding the project id, in the order they are read.
pub const PROJECT_ENVS: [&str; 3] = ["GOOGLE_CLOUD_PROJECT", "GCP_PROJECT", "GCLOUD_PROJECT"];

/// The largest integer magnitude Firestore and nube compare alike (beyond it nube
/// compares through `f64`).
const EXACT_INTEGER: u64 = 1 << 53;

/// How collection names map to Firestore collection paths.
///
/// In order: a path given with [`CollectionNaming::with_collection`]; the variable
/// `NUBE_COLLECTION_<NAME>` ([`crate::names::collection_env_var`]), read at each use; the
/// prefix followed by the collection name.
#[derive(Debug, Clone, Default)]
pub struct CollectionNaming {
    prefix: String,
    paths: HashMap<String, String>,
}

impl CollectionNaming {
    /// No prefix: a collection without a `NUBE_COLLECTION_*` variable uses its own name.
    pub fn new() -> Self {
        Self::default()
    }

    /// The prefix from `NUBE_COLLECTION_PREFIX` (none when unset).
    pub fn from_env() -> Self {
        Self::new()
            .with_prefix(std::env::var(crate::names::COLLECTION_PREFIX_ENV).unwrap_or_default())
    }

    /// Collections without a `NUBE_COLLECTION_*` variable are named `prefix` + name.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Collection `collection` lives at `path`, whatever the environment says.
    pub fn with_collection(
        mut self,
        collection: impl Into<String>,
        path: impl Into<String>,
    ) -> Self {
        self.paths.insert(collection.into(), path.into());
        self
    }

    /// The prefix in use.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The Firestore collection path of `collection` (not checked).
    pub fn resolve(&self, collection: &str) -> String {
        self.resolve_with(collection, |k| std::env::var(k).ok())
    }

    fn resolve_with(&self, collection: &str, env: impl Fn(&str) -> Option<String>) -> String {
        if let Some(path) = self.paths.get(collection) {
            return path.clone();
        }
        crate::names::collection_path(collection, |var| {
            if var == crate::names::COLLECTION_PREFIX_ENV {
                Some(self.prefix.clone())
            } else {
                env(var)
            }
        })
    }
}

/// Where a collection's documents live: `parent` (the database's documents path, or a
/// document's path for a subcollection) and the collection id.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Location {
    parent: String,
    collection_id: String,
}

impl Location {
    fn document_name(&self, id: &str) -> String {
        format!("{}/{}/{id}", self.parent, self.collection_id)
    }
}

/// The [`DocumentStore`] on Cloud Firestore; see the [module docs](self).
#[derive(Clone)]
pub struct FirestoreStore {
    db: FirestoreDb,
    naming: Arc<CollectionNaming>,
}

impl fmt::Debug for FirestoreStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FirestoreStore")
            .field("database", self.db.get_database_path())
            .field("naming", &self.naming)
            .finish_non_exhaustive()
    }
}

/// What a write requires of the current document.
#[derive(Clone, Copy)]
enum Rule<'a> {
    Create,
    Put,
    Update(&'a Version),
}

impl FirestoreStore {
    /// A store on `db`, with collections named by `naming`.
    pub fn new(db: FirestoreDb, naming: CollectionNaming) -> Self {
        Self {
            db,
            naming: Arc::new(naming),
        }
    }

    /// Connects to the database `database` (`None`: `(default)`) of `project`, with
    /// Application Default Credentials, or to the emulator at `FIRESTORE_EMULATOR_HOST`
    /// when that is set.
    pub async fn connect(
        project: &str,
        database: Option<&str>,
        naming: CollectionNaming,
    ) -> Result<Self, StoreError> {
        let mut options = FirestoreDbOptions::new(project.to_owned());
        if let Some(database) = database.filter(|d| !d.is_empty()) {
            options = options.with_database_id(database.to_owned());
        }
        let db = FirestoreDb::with_options(options).await.map_err(|e| {
            StoreError::backend(
                BACKEND,
                format!(
                    "cannot connect to Firestore (project {project:?}): {e}; on Google Cloud the service account \
                     needs roles/datastore.user, elsewhere set GOOGLE_APPLICATION_CREDENTIALS, or \
                     FIRESTORE_EMULATOR_HOST for the emulator"
                ),
                e,
            )
        })?;
        Ok(Self::new(db, naming))
    }

    /// A store configured from the environment (see the [module docs](self#connection)).
    /// Fails when no project id is set.
    pub async fn from_env() -> Result<Self, StoreError> {
        let get = |var: &str| {
            std::env::var(var)
                .ok()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let Some(project) = PROJECT_ENVS.iter().find_map(|v| get(v)) else {
            return Err(StoreError::Backend {
                backend: BACKEND,
                message:
                    "no Google Cloud project is configured: set GOOGLE_CLOUD_PROJECT (Cloud Run \
                          services get it from their deployment)"
                        .into(),
                source: None,
            });
        };
        let database = get(DATABASE_ENV);
        Self::connect(&project, database.as_deref(), CollectionNaming::from_env()).await
    }

    /// The `firestore` crate's client.
    pub fn db(&self) -> &FirestoreDb {
        &self.db
    }

    /// How collections map to Firestore collection paths.
    pub fn naming(&self) -> &CollectionNaming {
        &self.naming
    }

    /// The full resource name of the Firestore collection of `collection`
    /// (`projects/p/databases/(default)/documents/orders`), checked.
    pub fn collection_name(&self, collection: &str) -> Result<String, StoreError> {
        let l = self.location(collection)?;
        Ok(format!("{}/{}", l.parent, l.collection_id))
    }

    fn location(&self, collection: &str) -> Result<Location, StoreError> {
        validate_collection_name(collection)?;
        let path = self.naming.resolve(collection);
        let Some(segments) = collection_path_segments(&path) else {
            return Err(StoreError::Backend {
                backend: BACKEND,
                message: format!(
                    "collection {collection:?} maps to the Firestore path {path:?}, which is not a collection path \
                     (collection ids separated by document ids: `orders` or `tenants/t1/orders`): set {} to the \
                     collection's path, or {}",
                    crate::names::collection_env_var(collection),
                    crate::names::COLLECTION_PREFIX_ENV
                ),
                source: None,
            });
        };
        let (collection_id, parents) = segments.split_last().expect("at least one segment");
        let mut parent = self.db.get_documents_path().clone();
        for s in parents {
            parent.push('/');
            parent.push_str(s);
        }
        Ok(Location {
            parent,
            collection_id: (*collection_id).to_owned(),
        })
    }

    async fn write(
        &self,
        collection: &str,
        id: &str,
        value: Value,
        rule: Rule<'_>,
    ) -> Result<Document, StoreError> {
        validate_write(collection, id, &value)?;
        let at = self.location(collection)?;
        let Value::Object(fields) = value else {
            unreachable!("validate_write checks that the value is an object")
        };
        let document = pb::Document {
            // CreateDocument names the document through its request, not the document.
            name: match rule {
                Rule::Create => String::new(),
                _ => at.document_name(id),
            },
            fields: to_fields(&fields)?,
            ..Default::default()
        };
        let written = match rule {
            Rule::Create => {
                self.db
                    .fluent()
                    .insert()
                    .into(at.collection_id.as_str())
                    .document_id(id)
                    .parent(at.parent.as_str())
                    .document(document)
                    .execute()
                    .await
            }
            Rule::Put => {
                self.db
                    .fluent()
                    .update()
                    .in_col(at.collection_id.as_str())
                    .document(document)
                    .execute()
                    .await
            }
            Rule::Update(expected) => {
                let version = self
                    .guarded(&at, collection, id, expected, Some(document))
                    .await?
                    .ok_or_else(|| no_update_time(&at, id))?;
                return Ok(Document {
                    id: id.to_owned(),
                    version,
                    value: Value::Object(fields),
                });
            }
        };
        match written {
            Ok(doc) => {
                let version = version_of(&doc).ok_or_else(|| no_update_time(&at, id))?;
                Ok(Document {
                    id: id.to_owned(),
                    version,
                    value: Value::Object(fields),
                })
            }
            Err(FirestoreError::DataConflictError(_)) if matches!(rule, Rule::Create) => {
                Err(StoreError::Conflict {
                    collection: collection.to_owned(),
                    id: id.to_owned(),
                })
            }
            Err(e) => Err(write_error("write", &at, id, e)),
        }
    }

    /// Replaces (`Some(document)`) or deletes (`None`) the document only while its version
    /// is `expected`: one write with the precondition `updateTime = expected`, which
    /// Firestore checks atomically with the write (sent again, up to five times, when
    /// Firestore aborts it for contention). When Firestore refuses it, a read tells
    /// [`StoreError::NotFound`] (the document is gone; `Ok(None)` for a delete, which the
    /// caller reads as nothing deleted) from [`StoreError::PreconditionFailed`]. Returns the
    /// new version of a replaced document.
    async fn guarded(
        &self,
        at: &Location,
        collection: &str,
        id: &str,
        expected: &Version,
        document: Option<pb::Document>,
    ) -> Result<Option<Version>, StoreError> {
        let refused = || async {
            match self.find(at, id).await {
                Ok(None) => StoreError::NotFound {
                    collection: collection.to_owned(),
                    id: id.to_owned(),
                },
                Ok(Some(_)) => StoreError::PreconditionFailed {
                    collection: collection.to_owned(),
                    id: id.to_owned(),
                    expected: expected.to_string(),
                },
                Err(e) => e,
            }
        };
        // Text this store did not write matches no update time.
        let Some(time) = parse_version(expected) else {
            return Err(refused().await);
        };
        let op = if document.is_some() {
            "update"
        } else {
            "delete"
        };
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let precondition = FirestoreWritePrecondition::UpdateTime(time);
            let written = match &document {
                Some(document) => self
                    .db
                    .fluent()
                    .update()
                    .in_col(at.collection_id.as_str())
                    .precondition(precondition)
                    .document(document.clone())
                    .execute()
                    .await
                    .map(|doc| version_of(&doc)),
                None => self
                    .db
                    .fluent()
                    .delete()
                    .from(at.collection_id.as_str())
                    .parent(at.parent.as_str())
                    .precondition(precondition)
                    .document_id(id)
                    .execute()
                    .await
                    .map(|()| None),
            };
            match written {
                Ok(version) => return Ok(version),
                Err(e) if matches!(code(&e), Some("FailedPrecondition" | "NotFound")) => {
                    return Err(refused().await);
                }
                // Contention: nothing was written, and a retry meets the precondition again.
                Err(e) if code(&e) == Some("Aborted") && attempt < 5 => {
                    tokio::time::sleep(std::time::Duration::from_millis(20 * u64::from(attempt)))
                        .await;
                }
                Err(e) if document.is_some() => return Err(write_error(op, at, id, e)),
                Err(e) => return Err(request_error(op, at, id, e)),
            }
        }
    }

    /// The document as Firestore holds it, undecoded.
    async fn find(&self, at: &Location, id: &str) -> Result<Option<pb::Document>, StoreError> {
        self.db
            .fluent()
            .select()
            .by_id_in(at.collection_id.as_str())
            .parent(at.parent.as_str())
            .one(id)
            .await
            .map_err(|e| request_error("read", at, id, e))
    }

    async fn read(&self, at: &Location, id: &str) -> Result<Option<Document>, StoreError> {
        self.find(at, id)
            .await?
            .map(|doc| to_document(at, doc))
            .transpose()
    }
}

#[async_trait]
impl DocumentStore for FirestoreStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn get(&self, collection: &str, id: &str) -> Result<Option<Document>, StoreError> {
        validate_key(collection, id)?;
        let at = self.location(collection)?;
        self.read(&at, id).await
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
        self.write(collection, id, value, Rule::Update(expected))
            .await
    }

    async fn delete(
        &self,
        collection: &str,
        id: &str,
        expected: Option<&Version>,
    ) -> Result<bool, StoreError> {
        validate_key(collection, id)?;
        let at = self.location(collection)?;
        if let Some(expected) = expected {
            return match self.guarded(&at, collection, id, expected, None).await {
                Ok(_) => Ok(true),
                Err(StoreError::NotFound { .. }) => Ok(false),
                Err(e) => Err(e),
            };
        }
        let deleted = self
            .db
            .fluent()
            .delete()
            .from(at.collection_id.as_str())
            .parent(at.parent.as_str())
            .precondition(FirestoreWritePrecondition::Exists(true))
            .document_id(id)
            .execute()
            .await;
        match deleted {
            Ok(()) => Ok(true),
            Err(FirestoreError::DataNotFoundError(_)) => Ok(false),
            Err(e) => Err(request_error("delete", &at, id, e)),
        }
    }

    async fn query(&self, collection: &str, query: &Query) -> Result<Page, StoreError> {
        query.validate()?;
        let at = self.location(collection)?;
        let plan = Plan::for_query(query, &at);
        let mut select = self
            .db
            .fluent()
            .select()
            .from(at.collection_id.as_str())
            .parent(at.parent.as_str());
        if let Some(filter) = plan.filter.clone() {
            select = select.filter(move |_| Some(filter.clone()));
        }
        if !plan.order.is_empty() {
            let order = plan.order.clone();
            select = select.order(move |_| order.clone());
        }
        if let Some(cursor) = plan.start_after.clone() {
            select = select.start_at(cursor);
        }
        if let Some(limit) = plan.limit {
            select = select.limit(limit);
        }
        let found = select.query().await.map_err(|e| query_error(&at, e))?;
        let read = found.len();
        let documents = found
            .into_iter()
            .map(|doc| to_document(&at, doc))
            .collect::<Result<Vec<_>, _>>()?;
        tracing::debug!(
            collection = at.collection_id,
            pushed_down = plan.limit.is_some(),
            read,
            "Firestore query"
        );
        evaluate(documents, query)
    }
}

/// What of a nube query goes to Firestore.
#[derive(Debug, Clone, Default)]
struct Plan {
    filter: Option<FirestoreQueryFilter>,
    order: Vec<FirestoreQueryOrder>,
    start_after: Option<FirestoreQueryCursor>,
    /// Set when Firestore's answer is exactly nube's (so paging can be pushed down too).
    limit: Option<u32>,
}

impl Plan {
    fn for_query(query: &Query, at: &Location) -> Self {
        let mut filters = Vec::new();
        let mut exact = true;
        for f in &query.filters {
            match pushed_filter(&f.field, f.op, &f.value) {
                Some(filter) => filters.push(filter),
                None => exact = false,
            }
        }
        let ranged = query.filters.iter().any(|f| f.op.is_range());
        let filter = match filters.len() {
            0 => None,
            1 => filters.pop(),
            _ => Some(FirestoreQueryFilter::Composite(
                FirestoreQueryFilterComposite::new(
                    filters,
                    FirestoreQueryFilterCompositeOperator::And,
                ),
            )),
        };
        // A range without an order: Firestore would order by the range field, nube by id.
        if !exact || (ranged && query.order_by.is_none()) {
            return Self {
                filter,
                ..Self::default()
            };
        }
        let direction = match query.order_by.as_ref().map(|(_, d)| *d).unwrap_or_default() {
            Direction::Asc => FirestoreQueryDirection::Ascending,
            Direction::Desc => FirestoreQueryDirection::Descending,
        };
        let mut order = Vec::new();
        if let Some((field, _)) = &query.order_by {
            order.push(FirestoreQueryOrder::new(
                field_path(field),
                direction.clone(),
            ));
        }
        order.push(FirestoreQueryOrder::new("__name__".into(), direction));
        let mut plan = Self {
            filter,
            order,
            start_after: None,
            limit: Some(u32::try_from(query.page_size() + 1).unwrap_or(u32::MAX)),
        };
        if let Some(cursor) = &query.cursor {
            match cursor_values(cursor, query.order_by.is_some(), at) {
                Some(values) => plan.start_after = Some(FirestoreQueryCursor::AfterValue(values)),
                // A cursor this store cannot read as a position: read everything and let
                // `evaluate` apply it.
                None => {
                    plan.limit = None;
                }
            }
        }
        plan
    }
}

/// The Firestore filter for `field op value` when Firestore evaluates it exactly as
/// nube does.
fn pushed_filter(field: &str, op: Op, value: &Value) -> Option<FirestoreQueryFilter> {
    let path = field_path(field);
    if value.is_null() {
        return (op == Op::Eq).then_some(FirestoreQueryFilter::Unary(
            FirestoreQueryFilterUnary::IsNull(path),
        ));
    }
    let pushable = match value {
        // Firestore compares strings by their first 1,500 bytes only.
        Value::String(text) => text.len() < MAX_COMPARED_STRING,
        Value::Bool(_) => op == Op::Eq,
        Value::Number(n) => exact_number(n),
        _ => false,
    };
    if !pushable {
        return None;
    }
    let v = FirestoreValue::from(to_value(value, false).ok()?);
    let compare = match op {
        Op::Eq => FirestoreQueryFilterCompare::Equal(path, v),
        Op::Lt => FirestoreQueryFilterCompare::LessThan(path, v),
        Op::Le => FirestoreQueryFilterCompare::LessThanOrEqual(path, v),
        Op::Gt => FirestoreQueryFilterCompare::GreaterThan(path, v),
        Op::Ge => FirestoreQueryFilterCompare::GreaterThanOrEqual(path, v),
    };
    Some(FirestoreQueryFilter::Compare(Some(compare)))
}

/// Whether Firestore and nube compare `n` with stored numbers alike.
fn exact_number(n: &serde_json::Number) -> bool {
    if let Some(i) = n.as_i64() {
        i.unsigned_abs() <= EXACT_INTEGER
    } else if n.is_u64() {
        false
    } else {
        // A double beyond 2^53 equals integers nube tells apart from it.
        n.as_f64()
            .is_some_and(|f| f.is_finite() && f.abs() <= EXACT_INTEGER as f64)
    }
}

/// The bytes of a string Firestore compares in a query; past them, strings that differ
/// compare equal, so a filter on a longer string is left to nube.
const MAX_COMPARED_STRING: usize = 1500;

/// A dotted nube field path as a Firestore field path: each segment back-quoted unless
/// it is a simple name (`[A-Za-z_][A-Za-z0-9_]*`).
fn field_path(dotted: &str) -> String {
    dotted
        .split('.')
        .map(|segment| {
            let simple = segment
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if simple {
                segment.to_owned()
            } else {
                format!("`{}`", segment.replace('\\', "\\\\").replace('`', "\\`"))
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// The position in a nube cursor (the last document's order value and id, as
/// [`nube::store::evaluate`] writes it) as Firestore cursor values, or `None` when it
/// cannot be read or its value is not one Firestore orders as nube does.
fn cursor_values(cursor: &str, ordered: bool, at: &Location) -> Option<Vec<FirestoreValue>> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let position: Value = serde_json::from_slice(&bytes).ok()?;
    let id = position.get("i")?.as_str()?;
    let mut values = Vec::new();
    if ordered {
        let v = position.get("v")?;
        let scalar = match v {
            Value::Null | Value::Bool(_) | Value::String(_) => true,
            Value::Number(n) => exact_number(n),
            _ => false,
        };
        if !scalar {
            return None;
        }
        values.push(FirestoreValue::from(to_value(v, false).ok()?));
    }
    values.push(FirestoreValue::from(pb::Value {
        value_type: Some(pb::value::ValueType::ReferenceValue(at.document_name(id))),
    }));
    Some(values)
}

/// Document fields as Firestore fields.
fn to_fields(fields: &Map<String, Value>) -> Result<HashMap<String, pb::Value>, StoreError> {
    fields
        .iter()
        .map(|(k, v)| {
            to_value(v, false)
                .map(|v| (k.clone(), v))
                .map_err(|m| StoreError::InvalidDocument(format!("field {k:?}: {m}")))
        })
        .collect()
}

/// A JSON value as a Firestore value (the table in the module docs).
fn to_value(value: &Value, in_array: bool) -> Result<pb::Value, String> {
    use pb::value::ValueType as V;
    let kind = match value {
        Value::Null => V::NullValue(0),
        Value::Bool(b) => V::BooleanValue(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                V::IntegerValue(i)
            } else if n.is_u64() {
                return Err(format!(
                    "the integer {n} is above the largest Firestore integer (2^63 - 1); store it as a string"
                ));
            } else {
                V::DoubleValue(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => V::StringValue(s.clone()),
        Value::Array(items) => {
            if in_array {
                return Err(
                    "Firestore cannot store an array directly inside an array; wrap the inner array in an object"
                        .into(),
                );
            }
            V::ArrayValue(pb::ArrayValue {
                values: items
                    .iter()
                    .map(|v| to_value(v, true))
                    .collect::<Result<_, _>>()?,
            })
        }
        Value::Object(map) => V::MapValue(pb::MapValue {
            fields: map
                .iter()
                .map(|(k, v)| to_value(v, false).map(|v| (k.clone(), v)))
                .collect::<Result<_, _>>()?,
        }),
    };
    Ok(pb::Value {
        value_type: Some(kind),
    })
}

/// A Firestore document as a nube document. The fields are decoded by the Firestore
/// trigger decoder (the same protobuf message, re-read), so reads and triggers agree.
fn to_document(at: &Location, doc: pb::Document) -> Result<Document, StoreError> {
    let id = doc.name.rsplit('/').next().unwrap_or_default().to_owned();
    let version = version_of(&doc)
        .ok_or_else(|| corrupt(at, &id, "the document has no update time".into()))?;
    let same = crate::firestore::proto::Document::decode(doc.encode_to_vec().as_slice())
        .map_err(|e| corrupt(at, &id, format!("cannot re-read the document: {e}")))?;
    let fields = crate::firestore::fields_to_json(&same.fields)
        .map_err(|e| corrupt(at, &id, e.to_string()))?;
    Ok(Document {
        id,
        version,
        value: Value::Object(fields),
    })
}

/// The version of a document: its update time, RFC 3339 with nanoseconds.
fn version_of(doc: &pb::Document) -> Option<Version> {
    let t = doc.update_time.as_ref()?;
    let time = DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?)?;
    Some(Version::new(
        time.to_rfc3339_opts(SecondsFormat::Nanos, true),
    ))
}

/// The update time a version stands for; `None` for text this store did not write
/// (Firestore's update times are whole microseconds).
fn parse_version(version: &Version) -> Option<firestore::FirestoreInstant> {
    let time = DateTime::parse_from_rfc3339(version.as_str()).ok()?;
    if time.timestamp_subsec_nanos() % 1000 != 0 {
        return None;
    }
    firestore::FirestoreInstant::new(
        time.timestamp(),
        i32::try_from(time.timestamp_subsec_nanos()).ok()?,
    )
    .ok()
}

/// The gRPC status name of a database error (`FailedPrecondition`, `InvalidArgument`...).
fn code(e: &FirestoreError) -> Option<&str> {
    match e {
        FirestoreError::DatabaseError(d) => Some(d.public.code.as_str()),
        FirestoreError::DataNotFoundError(d) => Some(d.public.code.as_str()),
        FirestoreError::DataConflictError(d) => Some(d.public.code.as_str()),
        _ => None,
    }
}

/// A write Firestore answered without the document's update time: the backend's fault.
fn no_update_time(at: &Location, id: &str) -> StoreError {
    StoreError::Backend {
        backend: BACKEND,
        message: format!(
            "writing document {id:?} of {}/{}: Firestore returned no update time",
            at.parent, at.collection_id
        ),
        source: None,
    }
}

fn corrupt(at: &Location, id: &str, message: String) -> StoreError {
    StoreError::Decode(format!(
        "document {id:?} of {}/{} is not a nube document: {message}",
        at.parent, at.collection_id
    ))
}

/// A failed write: what Firestore refuses to store is the caller's
/// [`StoreError::InvalidDocument`]; the rest is the backend's.
/// Firestore's own text (which names the project and the database) goes to the log,
/// not into the error, whose message reaches HTTP clients as a 400.
fn write_error(op: &str, at: &Location, id: &str, e: FirestoreError) -> StoreError {
    match (&e, code(&e)) {
        (FirestoreError::InvalidParametersError(_), _) | (_, Some("InvalidArgument")) => {
            tracing::warn!(
                collection = %at.collection_id,
                document = id,
                error = %e,
                "Firestore refused a document"
            );
            StoreError::InvalidDocument(format!(
                "Firestore refused to store document {id:?} (its limits include 1 MiB per \
                 document and maps and arrays nested 20 deep; the function's log has its reason)"
            ))
        }
        _ => request_error(op, at, id, e),
    }
}

fn request_error(op: &str, at: &Location, id: &str, e: FirestoreError) -> StoreError {
    if let FirestoreError::InvalidParametersError(_) = e {
        tracing::warn!(collection = %at.collection_id, document = id, error = %e, "Firestore refused an id");
        return StoreError::InvalidDocument(format!(
            "Firestore cannot take the document id {id:?} (the function's log has Firestore's reason)"
        ));
    }
    StoreError::backend(
        BACKEND,
        format!(
            "{op} of document {id:?} in {}/{} failed: {e}",
            at.parent, at.collection_id
        ),
        e,
    )
}

fn query_error(at: &Location, e: FirestoreError) -> StoreError {
    let hint = match code(&e) {
        Some("FailedPrecondition") => {
            " (the query needs a composite index: create the one the message links to, or see the \
             nube_gcp::firestore_store docs)"
        }
        Some("InvalidArgument") => {
            return StoreError::InvalidQuery(format!("Firestore refused the query: {e}"));
        }
        _ => "",
    };
    StoreError::backend(
        BACKEND,
        format!(
            "query of {}/{} failed: {e}{hint}",
            at.parent, at.collection_id
        ),
        e,
    )
}

/// The segments of `path` when it names a Firestore collection: an odd number of
/// `/`-separated segments (collection ids between document ids), none empty, `.`,
/// `..`, longer than 1,500 bytes, or of the reserved form `__…__`.
fn collection_path_segments(path: &str) -> Option<Vec<&str>> {
    let segments: Vec<&str> = path.split('/').collect();
    let valid = segments.len() % 2 == 1
        && segments.iter().all(|s| {
            !s.is_empty() && *s != "." && *s != ".." && !is_reserved_id(s) && s.len() <= 1500
        });
    valid.then_some(segments)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at() -> Location {
        Location {
            parent: "projects/p/databases/(default)/documents".into(),
            collection_id: "orders".into(),
        }
    }

    #[test]
    fn collection_paths_follow_firestore_rules() {
        for ok in ["orders", "tenants/t1/orders", "__", "___", "t/__/o", "_x_"] {
            assert!(collection_path_segments(ok).is_some(), "{ok}");
        }
        for bad in [
            "", "a/b", "/orders", "orders/", "__x__", "____", "t/./o", "t/../o", "..",
        ] {
            assert!(collection_path_segments(bad).is_none(), "{bad}");
        }
        assert!(collection_path_segments(&"x".repeat(1501)).is_none());
    }

    #[test]
    fn collection_paths() {
        let naming = CollectionNaming::new()
            .with_prefix("prod-")
            .with_collection("pinned", "tenants/t1/pinned");
        let env = |k: &str| (k == "NUBE_COLLECTION_ORDER_EVENTS").then(|| "events".to_owned());
        assert_eq!(naming.resolve_with("order-events", env), "events");
        assert_eq!(naming.resolve_with("todos", env), "prod-todos");
        assert_eq!(naming.resolve_with("pinned", env), "tenants/t1/pinned");
    }

    #[test]
    fn values_convert_and_refuse_what_firestore_cannot_store() {
        let v = to_value(
            &json!({"i": 9007199254740993i64, "f": 0.5, "l": [1, {"x": [2]}]}),
            false,
        )
        .unwrap();
        let fields = match v.value_type {
            Some(pb::value::ValueType::MapValue(m)) => m.fields,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            fields["i"].value_type,
            Some(pb::value::ValueType::IntegerValue(9007199254740993))
        );
        assert_eq!(
            fields["f"].value_type,
            Some(pb::value::ValueType::DoubleValue(0.5))
        );
        assert!(to_value(&json!([[1]]), false).is_err());
        assert!(to_value(&json!(u64::MAX), false).is_err());
    }

    #[test]
    fn documents_round_trip_through_protobuf() {
        let value = json!({"id": 7, "s": "x", "n": null, "t": true, "l": [1, "two"], "m": {"a": {"b": 0.25}}});
        let doc = pb::Document {
            name: at().document_name("d1"),
            fields: to_fields(value.as_object().unwrap()).unwrap(),
            update_time: Some(firestore::gcloud_sdk::prost_types::Timestamp {
                seconds: 1_767_225_600,
                nanos: 123_456_000,
            }),
            ..Default::default()
        };
        let read = to_document(&at(), doc).unwrap();
        assert_eq!(read.id, "d1");
        assert_eq!(read.value, value);
        assert_eq!(read.version.as_str(), "2026-01-01T00:00:00.123456000Z");
        let t = parse_version(&read.version).unwrap();
        assert_eq!(t.subsec_nanosecond(), 123_456_000);
        assert!(parse_version(&Version::new("whatever")).is_none());
        assert!(
            parse_version(&Version::new("2026-01-01T00:00:00.123456789Z")).is_none(),
            "no Firestore update time has digits below the microsecond"
        );
    }

    #[test]
    fn field_paths_are_quoted_when_needed() {
        assert_eq!(field_path("addr.city"), "addr.city");
        assert_eq!(field_path("order-id.a b"), "`order-id`.`a b`");
        assert_eq!(field_path("9x"), "`9x`");
        assert_eq!(field_path("a`b"), "`a\\`b`");
    }

    #[test]
    fn what_is_pushed_down() {
        let exact = Plan::for_query(
            &Query::new()
                .eq("user", "ann")
                .lt("at", "2026")
                .order_by("at", Direction::Desc)
                .limit(10),
            &at(),
        );
        assert_eq!(exact.limit, Some(11));
        assert_eq!(exact.order.len(), 2);
        assert!(matches!(
            exact.filter,
            Some(FirestoreQueryFilter::Composite(_))
        ));
        let huge = Plan::for_query(&Query::new().eq("n", 1u64 << 60), &at());
        assert!(huge.filter.is_none() && huge.limit.is_none());
        // A double past 2^53 and a string past the 1,500 bytes Firestore compares are
        // left to nube, and so is paging.
        for query in [
            Query::new().eq("n", 9_007_199_254_740_992.0 * 2.0),
            Query::new().eq("s", "x".repeat(1500)),
        ] {
            let plan = Plan::for_query(&query, &at());
            assert!(plan.filter.is_none() && plan.limit.is_none(), "{query:?}");
        }
        assert!(
            Plan::for_query(&Query::new().eq("s", "x".repeat(1499)), &at())
                .limit
                .is_some()
        );
        let bool_range = Plan::for_query(&Query::new().eq("a", 1).gt("b", true), &at());
        assert!(bool_range.limit.is_none() && bool_range.filter.is_some());
        let unordered_range = Plan::for_query(&Query::new().gt("n", 1), &at());
        assert!(unordered_range.limit.is_none() && unordered_range.filter.is_some());
        assert!(matches!(
            Plan::for_query(&Query::new().eq("x", Value::Null), &at()).filter,
            Some(FirestoreQueryFilter::Unary(_))
        ));
    }

    #[test]
    fn cursors_become_start_after_positions() {
        let docs: Vec<Document> = (0..3)
            .map(|i| Document {
                id: format!("d{i}"),
                version: Version::new("v"),
                value: json!({"rank": i}),
            })
            .collect();
        let q = Query::new().order_by("rank", Direction::Asc).limit(1);
        let cursor = evaluate(docs, &q).unwrap().next_cursor.unwrap();
        let values = cursor_values(&cursor, true, &at()).expect("a readable cursor");
        assert_eq!(
            values[0].value.value_type,
            Some(pb::value::ValueType::IntegerValue(0))
        );
        assert_eq!(
            values[1].value.value_type,
            Some(pb::value::ValueType::ReferenceValue(
                at().document_name("d0")
            ))
        );
        let plan = Plan::for_query(&q.clone().after(cursor), &at());
        assert!(plan.start_after.is_some() && plan.limit == Some(2));
        assert!(cursor_values("garbage", true, &at()).is_none());
    }
}
