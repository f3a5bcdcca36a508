//! [`CosmosStore`]: nube's document store on Azure Cosmos DB for NoSQL (feature
//! `cosmos`), through the `azure_data_cosmos` SDK with key authentication.
//!
//! # Data model
//!
//! - **One container per collection**, all in one database. The container of collection
//!   `orders` is named by the setting `NUBE_COLLECTION_ORDERS`
//!   ([`crate::names::collection_setting`]), or `orders` without it; the database by
//!   `NUBE_COSMOS_DATABASE`.
//! - **Partition key `/id`** ([`PARTITION_KEY_PATH`]): the document id is both the item
//!   id and its partition key, so every point operation addresses one item in one
//!   logical partition, documents spread over all physical partitions, and no
//!   partition-key value has to be chosen by the app.
//! - **The document's top-level fields are the item's fields**, so that the change feed
//!   (the `cosmosDBTrigger`) carries the document. The document's own `id` field (any
//!   JSON type) is stored in `_nube_id`, since the item's `id` is the key.
//! - **Metadata fields start with `_nube`**: `_nube_version` (a new UUIDv7 on every
//!   write, as the other stores write), `_nube_created` (the `_nube_version` of the
//!   write that created the document; puts over an existing document keep it, updates
//!   write [`UNKNOWN_CREATE`]), and `_nube_numbers` (see below). The `cosmosDBTrigger` decoder tells creates
//!   from updates by `_nube_version == _nube_created` ([`crate::document`], which also
//!   says how the latest-version change feed can merge a create with a quick update).
//! - **Top-level fields starting with `_nube`, and Cosmos DB's system properties
//!   (`_rid`, `_self`, `_etag`, `_attachments`, `_ts`, `_lsn`), are refused** with
//!   [`StoreError::InvalidDocument`]. Nested objects may use any names.
//! - **Numbers.** Cosmos DB holds numbers as IEEE 754 doubles: an integer beyond 2^53
//!   would come back rounded, and a float with an integral value (`2.0`) as an integer.
//!   The store writes such numbers as they are (Cosmos DB keeps its approximation, which
//!   its own queries and other tools see) and also their exact text in `_nube_numbers`
//!   (a JSON Pointer → text map), from which reads put them back
//!   ([`crate::document::document_value`]), so every JSON value round-trips exactly.
//!
//! # Versions and writes
//!
//! A document's [`Version`] is the item's **ETag**, and conditional writes send it as
//! `If-Match`: Cosmos DB refuses the write (`412`) when the item changed since, so
//! `update` and a versioned `delete` are atomic. ETags are unique per write, so a
//! version read before a delete never matches a document created again under that id.
//!
//! - `create` is one `Create` ([`StoreError::Conflict`] on `409`);
//! - `update` is one `Replace` with `If-Match: <expected>` (`412` →
//!   [`StoreError::PreconditionFailed`], `404` → [`StoreError::NotFound`]), writing
//!   `_nube_created` as [`UNKNOWN_CREATE`]: an updated item is no longer "created".
//!   It reads nothing first, since a read may come from a replica behind the write that
//!   made the expected version (session consistency seen from another instance);
//! - `put` reads too, then creates (when absent) or replaces with `If-Match` on the ETag
//!   it read, starting again when another writer got in between: a plain upsert could
//!   not keep `_nube_created`;
//! - `delete` is one `Delete`, with `If-Match` when a version is given (`404` →
//!   `Ok(false)`);
//! - items written by other tools (no `_nube_*` fields) are read and updated like any
//!   other: their ETag is their version;
//! - the driver sends a write again when its answer is lost (a timeout, a dropped
//!   connection), and the first may have been applied: a `409` or `412` against an
//!   item carrying the very `_nube_version` this write wrote is that write's success,
//!   and is reported so when the read that checks it sees the write (see consistency
//!   below). A versioned `delete` cannot tell: after a lost answer it may
//!   report `Ok(false)` for the document it deleted.
//!
//! # Queries read the collection
//!
//! [`DocumentStore::query`] validates the query, then runs one cross-partition SQL query
//! over the container with the equalities that Cosmos DB evaluates exactly like nube
//! (strings, booleans, integers up to 2^53) as its `WHERE` clause, reads every page,
//! and hands the items to [`nube::store::evaluate`], which applies the reference
//! semantics for everything: filters, order, ranges, limit and cursors. Results are
//! exactly those of every other backend; the cost is reading every matching document
//! per page (request units grow with the collection), fine for small collections.
//! Pushing order, ranges and `TOP` into the SQL (with composite indexes) is the way to
//! make big collections cheap.
//!
//! # What real Cosmos DB needs that the test emulator does not check
//!
//! The tests run against `@vercel/cosmosdb-server`, which ignores or fakes some of what
//! a real account enforces:
//!
//! - **authentication**: the emulator accepts any key; a real account needs the
//!   account key of `NUBE_COSMOS` (`AccountEndpoint=...;AccountKey=...;`), and this
//!   store has no Entra ID (managed identity) support yet;
//! - **TLS**: the tests speak plain HTTP on loopback (the SDK allows `http://` only for
//!   emulator hosts); real accounts are `https://` with certificates checked by rustls;
//! - **throughput and throttling**: no `429`s, no request-unit limits; queries that read
//!   a big collection cost real request units;
//! - **limits**: items up to 2 MB, ids up to 255 bytes, the 20 GB logical partition
//!   limit (moot with `/id`), the container-per-database limits of shared throughput;
//! - **containers**: the emulator lets [`CosmosStore::create_missing_containers`]
//!   create containers freely; in production containers belong to the deployment (and
//!   the `cosmosDBTrigger` needs its lease container);
//! - **consistency and regions**: one in-memory replica. The store uses the account's
//!   default consistency; writes decide by `If-Match`, never by an earlier read. The
//!   check that a refused write was this write's own, sent again, reads the item, and
//!   under a consistency weaker than strong that read may miss it: then the refusal
//!   stands (best effort). Multi-region writes (conflict resolution) are untested;
//! - **the change feed**: the emulator has no real one (it answers change-feed requests
//!   with nothing new), so the `_nube_created` rule is checked on the items as stored
//!   ([`crate::document::is_created`] on what the store wrote), and the trigger side on
//!   recorded batches (`tests/runtime.rs`);
//! - **HTTP/2, binary JSON, query plans**: the tests turn HTTP/2 and binary encoding off
//!   and the SDK plans the store's simple queries locally; a real account serves all of
//!   them with the SDK's defaults.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use azure_data_cosmos::clients::ContainerClient;
use azure_data_cosmos::feed::FeedScope;
use azure_data_cosmos::models::ContainerProperties;
use azure_data_cosmos::options::{ItemWriteOptions, Precondition};
use azure_data_cosmos::{
    AccountEndpoint, AccountReference, CosmosClient, CosmosClientBuilder, CosmosError,
    RoutingStrategy,
};
use futures::TryStreamExt;
use serde_json::{Map, Value};

use nube::store::{
    Document, DocumentStore, Op, Page, Query, StoreError, Version, evaluate,
    validate_collection_name, validate_key, validate_write,
};

use crate::document::{
    CREATED_FIELD, ID_FIELD, METADATA_PREFIX, NUMBERS_FIELD, SYSTEM_PROPERTIES, VERSION_FIELD,
    document_value,
};
use crate::names::{COSMOS_CONNECTION, COSMOS_DATABASE_SETTING};

/// The Azure SDK for Cosmos DB this store is built on, to build a [`CosmosClient`]
/// for [`CosmosStore::new`] with the same version.
pub use azure_data_cosmos as sdk;

const BACKEND: &str = "cosmos";

/// The partition key path of every container: the item id.
pub const PARTITION_KEY_PATH: &str = "/id";

/// The `_nube_created` an `update` writes (it reads nothing first), and a `put` over an
/// item that has none (written by another tool): the item is no longer "created".
pub const UNKNOWN_CREATE: &str = "unknown";

/// How often `put` starts again when other writers keep changing the document between
/// its read and its write.
const PUT_ATTEMPTS: usize = 16;

/// The largest integer magnitude a double holds exactly.
const EXACT_INTEGER: u64 = 1 << 53;

/// The parts of a Cosmos DB connection string (`AccountEndpoint=...;AccountKey=...;`),
/// the value of the `NUBE_COSMOS` setting.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionString {
    /// `AccountEndpoint`: `https://<account>.documents.azure.com:443/`.
    pub endpoint: String,
    /// `AccountKey`: the account's primary or secondary key.
    pub key: String,
}

impl fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionString")
            .field("endpoint", &self.endpoint)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl ConnectionString {
    /// Parses `AccountEndpoint=...;AccountKey=...;` (names case-insensitive, any order,
    /// other parts ignored). The message of an error never contains the key.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut endpoint = None;
        let mut key = None;
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((name, value)) = part.split_once('=') else {
                return Err(format!(
                    "a part of the Cosmos DB connection string has no '=' (expected AccountEndpoint=...;AccountKey=...;): {:?}",
                    part.chars().take(20).collect::<String>()
                ));
            };
            match name.trim().to_ascii_lowercase().as_str() {
                "accountendpoint" => endpoint = Some(value.trim().to_owned()),
                // Keys are base64 and may end with '='.
                "accountkey" => key = Some(value.trim().to_owned()),
                _ => {}
            }
        }
        if text.trim().is_empty() {
            return Err("the Cosmos DB connection string is empty".into());
        }
        let endpoint = endpoint
            .filter(|e| !e.is_empty())
            .ok_or("the Cosmos DB connection string has no AccountEndpoint")?;
        let key = key.filter(|k| !k.is_empty()).ok_or(
            "the Cosmos DB connection string has no AccountKey (nube's store does not support identity-based connections yet)",
        )?;
        Ok(Self { endpoint, key })
    }
}

/// The [`DocumentStore`] on Cosmos DB; see the [module docs](self) for the data model.
#[derive(Clone)]
pub struct CosmosStore {
    client: CosmosClient,
    database: String,
    create_missing_containers: bool,
    containers: Arc<Mutex<HashMap<String, Container>>>,
}

impl fmt::Debug for CosmosStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CosmosStore")
            .field("endpoint", &self.client.endpoint().as_str())
            .field("database", &self.database)
            .field("create_missing_containers", &self.create_missing_containers)
            .finish_non_exhaustive()
    }
}

/// A collection's container: its name and client.
#[derive(Clone)]
struct Container {
    name: String,
    client: ContainerClient,
}

/// What a write requires of the current item.
enum Write<'a> {
    Create,
    Replace { etag: &'a str, created: String },
}

impl CosmosStore {
    /// A store using `client`, with every collection's container in `database`.
    pub fn new(client: CosmosClient, database: impl Into<String>) -> Self {
        Self {
            client,
            database: database.into(),
            create_missing_containers: false,
            containers: Arc::default(),
        }
    }

    /// A store configured from the app settings: the connection string in `NUBE_COSMOS`
    /// and the database in `NUBE_COSMOS_DATABASE`. The SDK's own `AZURE_COSMOS_*`
    /// environment variables apply too; `REGION_NAME` (set by Azure Functions), when
    /// present, routes to the account's nearest region.
    pub async fn from_env() -> Result<Self, StoreError> {
        let setting = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let text = setting(COSMOS_CONNECTION).ok_or_else(|| {
            config_error(format!(
                "{COSMOS_CONNECTION} is not set: it holds the Cosmos DB connection string (AccountEndpoint=...;AccountKey=...;)"
            ))
        })?;
        let connection = ConnectionString::parse(&text)
            .map_err(|m| config_error(format!("{COSMOS_CONNECTION}: {m}")))?;
        let database = setting(COSMOS_DATABASE_SETTING).ok_or_else(|| {
            config_error(format!(
                "{COSMOS_DATABASE_SETTING} is not set: it names the Cosmos DB database holding the app's containers"
            ))
        })?;
        let routing = match setting("REGION_NAME") {
            Some(region) => RoutingStrategy::ProximityTo(region.into()),
            None => RoutingStrategy::PreferredRegions(Vec::new()),
        };
        let client = connect(&connection, CosmosClient::builder(), routing).await?;
        Ok(Self::new(client, database))
    }

    /// When `true`, the first use of a collection creates its database and container
    /// if they do not exist (as [`CosmosStore::ensure_container`] does). For tests and
    /// local set-ups; in production, containers belong to the deployment.
    pub fn create_missing_containers(mut self, create: bool) -> Self {
        self.create_missing_containers = create;
        self
    }

    /// The Cosmos DB client.
    pub fn client(&self) -> &CosmosClient {
        &self.client
    }

    /// The database holding the containers.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The container of `collection`: the value of `NUBE_COLLECTION_<NAME>`, or the
    /// collection's own name. Checked against Cosmos DB's rules for ids.
    pub fn container_name(&self, collection: &str) -> Result<String, StoreError> {
        validate_collection_name(collection)?;
        let setting = crate::names::collection_setting(collection);
        let name = crate::names::physical(&setting, collection);
        let ok = !name.is_empty()
            && name.len() <= 255
            && !name.ends_with(' ')
            && !name.contains(['/', '\\', '?', '#']);
        if ok {
            Ok(name)
        } else {
            Err(config_error(format!(
                "collection {collection:?} maps to the container name {name:?}, which Cosmos DB does not accept \
                 (1-255 characters without '/', '\\', '?' or '#'): set {setting} to the container's name"
            )))
        }
    }

    /// Creates the database and the container of `collection` unless they exist
    /// (partition key [`PARTITION_KEY_PATH`]); returns the container's name. For tests
    /// and local set-ups.
    pub async fn ensure_container(&self, collection: &str) -> Result<String, StoreError> {
        let name = self.container_name(collection)?;
        match self.client.create_database(&self.database, None).await {
            Ok(_) => tracing::info!(database = self.database, "created Cosmos DB database"),
            Err(e) if status(&e) == 409 => {}
            Err(e) => {
                return Err(self.cosmos_error("create the database", collection, &name, e));
            }
        }
        let properties = ContainerProperties::new(name.clone(), PARTITION_KEY_PATH.into());
        match self
            .client
            .database_client(self.database.as_str())
            .create_container(properties, None)
            .await
        {
            Ok(_) => tracing::info!(container = name, collection, "created Cosmos DB container"),
            Err(e) if status(&e) == 409 => {}
            Err(e) => return Err(self.cosmos_error("create the container", collection, &name, e)),
        }
        Ok(name)
    }

    async fn container(&self, collection: &str) -> Result<Container, StoreError> {
        let name = self.container_name(collection)?;
        if let Some(c) = self.containers.lock().expect("poisoned").get(&name) {
            return Ok(c.clone());
        }
        if self.create_missing_containers {
            self.ensure_container(collection).await?;
        }
        let client = self
            .client
            .database_client(self.database.as_str())
            .container_client(name.as_str(), None)
            .await
            .map_err(|e| {
                if status(&e) == 404 {
                    config_error(format!(
                        "the container {name:?} of collection {collection:?} does not exist in database {:?}: \
                         create it (partition key {PARTITION_KEY_PATH}), or set {} to its name",
                        self.database,
                        crate::names::collection_setting(collection)
                    ))
                } else {
                    self.cosmos_error("open the container", collection, &name, e)
                }
            })?;
        let container = Container { name, client };
        self.containers
            .lock()
            .expect("poisoned")
            .insert(container.name.clone(), container.clone());
        Ok(container)
    }

    fn cosmos_error(
        &self,
        what: &str,
        collection: &str,
        container: &str,
        error: CosmosError,
    ) -> StoreError {
        StoreError::backend(
            BACKEND,
            format!(
                "could not {what} (container {container:?} of collection {collection:?}, database {:?}): {error}",
                self.database
            ),
            error,
        )
    }

    /// The item `id` with its ETag, or `None`.
    async fn read(
        &self,
        container: &Container,
        collection: &str,
        id: &str,
    ) -> Result<Option<(String, Map<String, Value>)>, StoreError> {
        match container.client.read_item(id.to_owned(), id, None).await {
            Ok(response) => {
                let header = response.headers().etag().map(|e| e.to_string());
                let item: Map<String, Value> = response.into_model().map_err(|e| {
                    corrupt(
                        collection,
                        id,
                        format!("the item is not a JSON object: {e}"),
                    )
                })?;
                let etag = item
                    .get("_etag")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .or(header)
                    .ok_or_else(|| corrupt(collection, id, "the item has no _etag".into()))?;
                Ok(Some((etag, item)))
            }
            Err(e) if status(&e) == 404 => Ok(None),
            Err(e) => Err(self.cosmos_error("read an item", collection, &container.name, e)),
        }
    }

    /// Writes `value` as document `id` under `rule`; `Err(Ok(status))` for the statuses
    /// the callers turn into store errors (404, 409, 412).
    async fn write(
        &self,
        container: &Container,
        collection: &str,
        id: &str,
        value: &Value,
        rule: Write<'_>,
    ) -> Result<Result<Document, u16>, StoreError> {
        let version = uuid::Uuid::now_v7().to_string();
        let (created, precondition) = match &rule {
            Write::Create => (version.clone(), None),
            Write::Replace { etag, created } => {
                (created.clone(), Some(Precondition::if_match(*etag)))
            }
        };
        let item = to_item(id, value, &version, &created)?;
        let options = precondition.map(|p| ItemWriteOptions::default().with_precondition(p));
        let result = match rule {
            Write::Create => {
                container
                    .client
                    .create_item(id.to_owned(), id, &item, options)
                    .await
            }
            Write::Replace { .. } => {
                container
                    .client
                    .replace_item(id.to_owned(), id, &item, options)
                    .await
            }
        };
        let etag = match result {
            Ok(response) => response
                .headers()
                .etag()
                .map(|e| e.to_string())
                .ok_or_else(|| StoreError::Backend {
                    backend: BACKEND,
                    message: format!(
                        "writing item {id:?} of collection {collection:?}: the response has no ETag"
                    ),
                    source: None,
                })?,
            // The driver sends a write again when its answer was lost (a timeout, a
            // dropped connection), and the first may have been applied: a 409 or 412
            // against an item carrying this write's version is this write's success.
            Err(e) if matches!(status(&e), 409 | 412) => {
                // Best effort: a failed read leaves the refusal as it was.
                match self.read(container, collection, id).await.ok().flatten() {
                    Some((etag, item))
                        if item.get(VERSION_FIELD).and_then(Value::as_str)
                            == Some(version.as_str()) =>
                    {
                        etag
                    }
                    _ => return Ok(Err(status(&e))),
                }
            }
            Err(e) if status(&e) == 404 => return Ok(Err(404)),
            Err(e) if matches!(status(&e), 400 | 413) => {
                // Cosmos DB's text names the account's container: the log has it.
                tracing::warn!(container = %container.name, document = id, error = %e, "Cosmos DB refused a document");
                let limit = if status(&e) == 413 {
                    "an item is at most 2 MB"
                } else {
                    "Cosmos DB refused it as malformed (the function's log has its reason)"
                };
                return Err(StoreError::InvalidDocument(format!(
                    "Cosmos DB cannot store document {collection}/{id}: {limit}"
                )));
            }
            Err(e) => {
                return Err(self.cosmos_error("write an item", collection, &container.name, e));
            }
        };
        Ok(Ok(Document {
            id: id.to_owned(),
            version: Version::new(etag),
            value: value.clone(),
        }))
    }
}

/// A [`CosmosClient`] for the account of `connection`, built by `builder` (where
/// runtime, connection pool and encoding options go) with `routing`.
pub async fn connect(
    connection: &ConnectionString,
    builder: CosmosClientBuilder,
    routing: RoutingStrategy,
) -> Result<CosmosClient, StoreError> {
    let endpoint: AccountEndpoint = connection.endpoint.parse().map_err(|e: CosmosError| {
        config_error(format!(
            "the AccountEndpoint {:?} is not a URL: {e}",
            connection.endpoint
        ))
    })?;
    let account = AccountReference::with_authentication_key(endpoint, connection.key.clone());
    builder.build(account, routing).await.map_err(|e| {
        StoreError::backend(
            BACKEND,
            format!(
                "could not connect to the Cosmos DB account at {}: {e}",
                connection.endpoint
            ),
            e,
        )
    })
}

fn config_error(message: String) -> StoreError {
    StoreError::Backend {
        backend: BACKEND,
        message,
        source: None,
    }
}

fn corrupt(collection: &str, id: &str, message: String) -> StoreError {
    StoreError::Decode(format!(
        "item {id:?} of collection {collection:?} is not a nube document: {message}"
    ))
}

fn status(error: &CosmosError) -> u16 {
    u16::from(error.status().status_code())
}

/// The item storing document `id` with `value` (a JSON object) at `version`, created at
/// `created`.
fn to_item(
    id: &str,
    value: &Value,
    version: &str,
    created: &str,
) -> Result<Map<String, Value>, StoreError> {
    let Value::Object(fields) = value else {
        return Err(StoreError::InvalidDocument(format!(
            "document {id:?} is not a JSON object"
        )));
    };
    let mut item = Map::with_capacity(fields.len() + 5);
    for (name, v) in fields {
        if name.starts_with(METADATA_PREFIX) || SYSTEM_PROPERTIES.contains(&name.as_str()) {
            return Err(StoreError::InvalidDocument(format!(
                "document {id:?} has the field {name:?}: top-level names starting with {METADATA_PREFIX:?} and Cosmos DB's \
                 system properties ({}) are reserved by the Cosmos DB store; rename it or nest it in an object",
                SYSTEM_PROPERTIES.join(", ")
            )));
        }
        let name = if name == "id" {
            ID_FIELD
        } else {
            name.as_str()
        };
        item.insert(name.to_owned(), v.clone());
    }
    let mut numbers = Map::new();
    inexact_numbers(value, &mut String::new(), &mut numbers);
    item.insert("id".into(), Value::String(id.to_owned()));
    item.insert(VERSION_FIELD.into(), Value::String(version.to_owned()));
    item.insert(CREATED_FIELD.into(), Value::String(created.to_owned()));
    if !numbers.is_empty() {
        item.insert(NUMBERS_FIELD.into(), Value::Object(numbers));
    }
    Ok(item)
}

/// Records in `out` (JSON Pointer → text) every number under `value` that a double
/// does not hold as it is written: integers beyond 2^53 and floats with an integral
/// value (which JavaScript-style JSON writes back as integers).
fn inexact_numbers(value: &Value, pointer: &mut String, out: &mut Map<String, Value>) {
    match value {
        Value::Number(n) => {
            let inexact = if let Some(i) = n.as_i64() {
                i.unsigned_abs() > EXACT_INTEGER
            } else if let Some(u) = n.as_u64() {
                u > EXACT_INTEGER
            } else {
                n.as_f64()
                    .is_some_and(|f| f.is_finite() && f.fract() == 0.0)
            };
            if inexact {
                out.insert(pointer.clone(), Value::String(n.to_string()));
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&i.to_string());
                inexact_numbers(item, pointer, out);
                pointer.truncate(len);
            }
        }
        Value::Object(fields) => {
            for (name, field) in fields {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&name.replace('~', "~0").replace('/', "~1"));
                inexact_numbers(field, pointer, out);
                pointer.truncate(len);
            }
        }
        _ => {}
    }
}

/// The document stored in `item` with ETag `etag`.
fn to_document(etag: String, item: Map<String, Value>) -> Result<Document, String> {
    let id = match item.get("id") {
        Some(Value::String(id)) => id.clone(),
        other => return Err(format!("the item's id is {other:?}, not a string")),
    };
    Ok(Document {
        id,
        version: Version::new(etag),
        value: document_value(item),
    })
}

/// The SQL query reading the items a query can match: the equalities Cosmos DB
/// evaluates exactly like nube (strings, booleans, integers up to 2^53). `evaluate`
/// re-checks them and applies everything else.
fn select(query: &Query) -> Result<azure_data_cosmos::Query, String> {
    let mut conditions = Vec::new();
    let mut parameters = Vec::new();
    for (i, f) in query.filters.iter().enumerate() {
        if f.op != Op::Eq {
            continue;
        }
        let pushable = match &f.value {
            Value::String(_) | Value::Bool(_) => true,
            Value::Number(n) => {
                n.as_i64()
                    .is_some_and(|i| i.unsigned_abs() <= EXACT_INTEGER)
                    || n.as_u64().is_some_and(|u| u <= EXACT_INTEGER)
            }
            _ => false,
        };
        if !pushable {
            continue;
        }
        let mut segments: Vec<&str> = f.field.split('.').collect();
        match segments[0] {
            "id" => segments[0] = ID_FIELD,
            // No document has such a field; `evaluate` finds nothing.
            s if s.starts_with(METADATA_PREFIX) => continue,
            _ => {}
        }
        let path: String = segments
            .iter()
            .map(|s| format!("[{}]", Value::String((*s).to_owned())))
            .collect();
        conditions.push(format!("c{path} = @v{i}"));
        parameters.push((format!("@v{i}"), f.value.clone()));
    }
    let mut text = String::from("SELECT * FROM c");
    if !conditions.is_empty() {
        text.push_str(" WHERE ");
        text.push_str(&conditions.join(" AND "));
    }
    let mut sql = azure_data_cosmos::Query::from(text);
    for (name, value) in parameters {
        sql = sql
            .with_parameter(name, value)
            .map_err(|e| format!("query parameter: {e}"))?;
    }
    Ok(sql)
}

#[async_trait]
impl DocumentStore for CosmosStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn get(&self, collection: &str, id: &str) -> Result<Option<Document>, StoreError> {
        validate_key(collection, id)?;
        let container = self.container(collection).await?;
        match self.read(&container, collection, id).await? {
            Some((etag, item)) => to_document(etag, item)
                .map(Some)
                .map_err(|m| corrupt(collection, id, m)),
            None => Ok(None),
        }
    }

    async fn create(
        &self,
        collection: &str,
        id: &str,
        value: Value,
    ) -> Result<Document, StoreError> {
        validate_write(collection, id, &value)?;
        let container = self.container(collection).await?;
        match self
            .write(&container, collection, id, &value, Write::Create)
            .await?
        {
            Ok(d) => Ok(d),
            Err(409) => Err(StoreError::Conflict {
                collection: collection.to_owned(),
                id: id.to_owned(),
            }),
            Err(code) => Err(config_error(format!(
                "creating {collection}/{id} answered {code}"
            ))),
        }
    }

    async fn put(&self, collection: &str, id: &str, value: Value) -> Result<Document, StoreError> {
        validate_write(collection, id, &value)?;
        let container = self.container(collection).await?;
        for _ in 0..PUT_ATTEMPTS {
            let rule = match self.read(&container, collection, id).await? {
                None => Write::Create,
                Some((etag, item)) => {
                    let created = created_of(&item);
                    let outcome = self
                        .write(
                            &container,
                            collection,
                            id,
                            &value,
                            Write::Replace {
                                etag: &etag,
                                created,
                            },
                        )
                        .await?;
                    match outcome {
                        Ok(d) => return Ok(d),
                        // Changed or deleted since the read: read again.
                        Err(_) => continue,
                    }
                }
            };
            if let Ok(d) = self.write(&container, collection, id, &value, rule).await? {
                return Ok(d);
            }
        }
        Err(config_error(format!(
            "put of {collection}/{id} lost the race against other writers {PUT_ATTEMPTS} times in a row"
        )))
    }

    async fn update(
        &self,
        collection: &str,
        id: &str,
        value: Value,
        expected: &Version,
    ) -> Result<Document, StoreError> {
        validate_write(collection, id, &value)?;
        let container = self.container(collection).await?;
        let not_found = || StoreError::NotFound {
            collection: collection.to_owned(),
            id: id.to_owned(),
        };
        let stale = || StoreError::PreconditionFailed {
            collection: collection.to_owned(),
            id: id.to_owned(),
            expected: expected.to_string(),
        };
        // No read first: a read may come from a replica behind the write that made
        // `expected` (session consistency, another instance), and answer 404 or an
        // older ETag. The `If-Match` write decides. The item stops being "created"
        // whatever `_nube_created` says, since its new `_nube_version` differs.
        let rule = Write::Replace {
            etag: expected.as_str(),
            created: UNKNOWN_CREATE.to_owned(),
        };
        match self.write(&container, collection, id, &value, rule).await? {
            Ok(d) => Ok(d),
            Err(404) => Err(not_found()),
            Err(_) => Err(stale()),
        }
    }

    async fn delete(
        &self,
        collection: &str,
        id: &str,
        expected: Option<&Version>,
    ) -> Result<bool, StoreError> {
        validate_key(collection, id)?;
        let container = self.container(collection).await?;
        let options = expected.map(|v| {
            ItemWriteOptions::default().with_precondition(Precondition::if_match(v.as_str()))
        });
        match container
            .client
            .delete_item(id.to_owned(), id, options)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if status(&e) == 404 => Ok(false),
            Err(e) if status(&e) == 412 => Err(StoreError::PreconditionFailed {
                collection: collection.to_owned(),
                id: id.to_owned(),
                expected: expected.map(Version::to_string).unwrap_or_default(),
            }),
            Err(e) => Err(self.cosmos_error("delete an item", collection, &container.name, e)),
        }
    }

    async fn query(&self, collection: &str, query: &Query) -> Result<Page, StoreError> {
        query.validate()?;
        let container = self.container(collection).await?;
        let sql = select(query).map_err(StoreError::InvalidQuery)?;
        let fail = |e: CosmosError| self.cosmos_error("query", collection, &container.name, e);
        let mut items = container
            .client
            .query_items::<Map<String, Value>>(sql, FeedScope::full_container(), None)
            .await
            .map_err(fail)?;
        let mut documents = Vec::new();
        while let Some(item) = items.try_next().await.map_err(fail)? {
            let id = item
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned();
            let etag = item
                .get("_etag")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| corrupt(collection, &id, "the item has no _etag".into()))?;
            documents.push(to_document(etag, item).map_err(|m| corrupt(collection, &id, m))?);
        }
        tracing::debug!(
            collection,
            matched = documents.len(),
            "query read the container"
        );
        evaluate(documents, query)
    }
}

/// The `_nube_created` to keep when replacing `item`.
fn created_of(item: &Map<String, Value>) -> String {
    match item.get(CREATED_FIELD) {
        Some(Value::String(s)) => s.clone(),
        _ => UNKNOWN_CREATE.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::is_created;
    use serde_json::json;

    #[test]
    fn connection_strings() {
        let c = ConnectionString::parse(
            "AccountEndpoint=https://acct.documents.azure.com:443/;AccountKey=c2VjcmV0==;",
        )
        .unwrap();
        assert_eq!(c.endpoint, "https://acct.documents.azure.com:443/");
        assert_eq!(c.key, "c2VjcmV0==");
        assert!(
            !format!("{c:?}").contains("c2VjcmV0"),
            "the key is redacted"
        );
        let c = ConnectionString::parse(" accountkey=k ; ACCOUNTENDPOINT=http://127.0.0.1:1/ ")
            .unwrap();
        assert_eq!(c.endpoint, "http://127.0.0.1:1/");
        for bad in ["", "AccountEndpoint=https://x/", "AccountKey=k", "junk"] {
            let e = ConnectionString::parse(bad).unwrap_err();
            assert!(!e.is_empty());
        }
        assert!(
            ConnectionString::parse("AccountEndpoint=https://x/")
                .unwrap_err()
                .contains("AccountKey")
        );
    }

    #[test]
    fn items_carry_the_metadata_and_round_trip() {
        let value = json!({
            "id": 7, "s": "x", "big": 9007199254740993i64, "neg": -9007199254740993i64, "f": 0.1,
            "two": 2.0, "small": 42, "l": [1, {"x/y~z": 18446744073709551615u64}], "m": {"_nube_ok": true}
        });
        let item = to_item("doc", &value, "v2", "v1").unwrap();
        assert_eq!(item["id"], "doc");
        assert_eq!(item["_nube_id"], 7);
        assert_eq!(item["_nube_version"], "v2");
        assert_eq!(item["_nube_created"], "v1");
        assert_eq!(
            item["_nube_numbers"],
            json!({"/big": "9007199254740993", "/neg": "-9007199254740993", "/two": "2.0",
                   "/l/1/x~1y~0z": "18446744073709551615"})
        );
        assert!(!is_created(&item));
        // What a double-based store gives back: the approximations.
        let mut stored = item.clone();
        stored["big"] = json!(9007199254740992u64);
        stored["neg"] = json!(-9007199254740992i64);
        stored["two"] = json!(2);
        stored["l"][1]["x/y~z"] = json!(18446744073709551615.0f64);
        stored.insert("_etag".into(), json!("\"e\""));
        stored.insert("_ts".into(), json!(1));
        let doc = to_document("\"e\"".into(), stored).unwrap();
        assert_eq!(doc.id, "doc");
        assert_eq!(doc.version.as_str(), "\"e\"");
        assert_eq!(doc.value, value);
        let fresh = to_item("n", &json!({"a": 1}), "v", "v").unwrap();
        assert!(is_created(&fresh));
        assert!(fresh.get("_nube_numbers").is_none());
    }

    #[test]
    fn reserved_names_are_refused() {
        for bad in [
            json!({"_nube_x": 1}),
            json!({"_nubes": 1}),
            json!({"_etag": "x"}),
            json!({"_ts": 1}),
        ] {
            assert!(matches!(
                to_item("d", &bad, "v", "v"),
                Err(StoreError::InvalidDocument(_))
            ));
        }
        assert!(to_item("d", &json!({"_other": 1, "ttl2": 1}), "v", "v").is_ok());
    }

    #[test]
    fn only_exact_equalities_go_into_the_sql() {
        let q = Query::new()
            .eq("user", "ann")
            .eq("id", "x")
            .eq("addr.city", "Oslo")
            .eq("f", 0.5)
            .eq("big", 1u64 << 60)
            .eq("n", 3)
            .eq("_nube_version", "v")
            .eq("we\"ird", true)
            .gt("n", 1);
        let sql = serde_json::to_value(select(&q).unwrap()).unwrap();
        assert_eq!(
            sql["query"],
            "SELECT * FROM c WHERE c[\"user\"] = @v0 AND c[\"_nube_id\"] = @v1 AND c[\"addr\"][\"city\"] = @v2 \
             AND c[\"n\"] = @v5 AND c[\"we\\\"ird\"] = @v7"
        );
        assert_eq!(sql["parameters"][3], json!({"name": "@v5", "value": 3}));
        let all = serde_json::to_value(select(&Query::new()).unwrap()).unwrap();
        assert_eq!(all["query"], "SELECT * FROM c");
    }

    #[test]
    fn created_of_items_from_other_tools_is_unknown() {
        assert_eq!(created_of(&Map::new()), UNKNOWN_CREATE);
        let item = to_item("d", &json!({}), "v9", "v1").unwrap();
        assert_eq!(created_of(&item), "v1");
    }
}
