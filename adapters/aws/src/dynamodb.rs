//! [`DynamoDbStore`]: nube's document store on Amazon DynamoDB (feature `dynamodb`).
//!
//! # Data model
//!
//! - **One table per collection.** The table of collection `order-events` is named by
//!   the environment variable `NUBE_TABLE_ORDER_EVENTS` (the collection name in upper
//!   case, `-` and `.` turned into `_`); without it, by a prefix (`NUBE_TABLE_PREFIX`,
//!   empty by default) followed by the collection name. See [`TableNaming`].
//! - **Partition key `id`** (type `S`): the document id. No sort key.
//! - **The document's top-level fields are the item's attributes**, in DynamoDB's own
//!   types, so that a DynamoDB Streams `NEW_IMAGE` carries the document: a string is `S`,
//!   a number `N` (its exact decimal text: integers beyond 2^53 are kept), a boolean
//!   `BOOL`, null `NULL`, an array `L`, an object `M`.
//! - **Metadata attributes start with `_nube`** (all of them `_nube_*`) and are stripped
//!   on read:
//!   `_nube_version` holds the document's version (a UUIDv7, new on every write, so a
//!   version read before a delete never matches a document created again under the same
//!   id).
//! - **A document field named `id` round-trips**: the item's `id` is always the key, so
//!   the document's own `id` field (any JSON type) is stored in `_nube_id` and put back
//!   on read. Typed documents that carry their id (`struct Todo { id, .. }`) work
//!   unchanged.
//! - **Top-level fields starting with `_nube` are refused** with
//!   [`StoreError::InvalidDocument`]: that prefix is the backend's (the Lambda runtime's
//!   stream decoder drops such attributes too). Nested objects may use
//!   any names. A top-level field with an empty name is refused too (DynamoDB has no
//!   empty attribute names).
//!
//! Reading an image written by this store elsewhere (a DynamoDB Streams record, an
//! export): drop the attribute `id`, drop every attribute starting with `_nube`, and put
//! `_nube_id` back as `id`; [`document_from_image`] does it on plain JSON.
//!
//! Numbers come back as DynamoDB returns them: it normalises decimal text, so a float
//! with an integral value (`2.0`) reads back as the integer `2` (queries compare numbers
//! by value, so they match either way), and an integer beyond the range of `u64`/`i64`
//! reads back as the nearest `f64`. DynamoDB refuses numbers beyond 38 significant digits
//! or outside 1e-130..1e126, and items over 400 KB: such writes fail with
//! [`StoreError::InvalidDocument`].
//!
//! Items without `_nube_version` (written by other tools) read with the version
//! [`UNVERSIONED`]; an `update` or `delete` at that version succeeds only while the item
//! still has no version, so tables written elsewhere can be adopted.
//!
//! # Writes
//!
//! Every write is one `PutItem` (or `DeleteItem`) with a condition, so it is atomic:
//! `create` requires `attribute_not_exists(id)` ([`StoreError::Conflict`] otherwise);
//! `update` and a versioned `delete` require `_nube_version = :expected` and ask for
//! the current item when the check fails (`ReturnValuesOnConditionCheckFailure =
//! ALL_OLD`): an item there means [`StoreError::PreconditionFailed`], none means
//! [`StoreError::NotFound`] (or `Ok(false)` for a delete). `get` reads with
//! `ConsistentRead`.
//!
//! The SDK sends a request again when its answer is lost (a 5xx, a timeout), and the
//! first may have been applied. A `create` or `update` refused against an item that
//! carries the very version it wrote is that write's success, and is reported so (not
//! as a conflict). A versioned `delete` cannot tell: after a lost answer it may report
//! `Ok(false)` for the document it deleted.
//!
//! # Queries scan
//!
//! [`DocumentStore::query`] validates the query, then **scans the whole table**
//! (consistently, page by page through `LastEvaluatedKey`), with the equality filters
//! that DynamoDB evaluates exactly like nube (strings, booleans, integers up to 2^53)
//! pushed into the scan's `FilterExpression`, and hands the items to
//! [`nube::store::evaluate`], which applies the reference semantics for everything:
//! filters, order, ranges, limit and cursors. Results are exactly those of every other
//! backend; the cost is a read of the whole table (in read capacity and time) per page,
//! which is fine for small collections and wrong for big ones.
//!
//! The way to make a query cheap is a global secondary index whose partition key is the
//! query's equality field and whose sort key is its order (or range) field: the portable
//! query rules (equalities, a range on one field only, which must be the order field)
//! are exactly what a DynamoDB `KeyConditionExpression` can express (`pk = :v AND sk
//! BETWEEN :a AND :b`). A `Query` on such an index returns items in sort-key order, so
//! `Limit` and `ExclusiveStartKey` would then do the paging. Using indexes belongs in
//! [`DynamoDbStore::query`], before the scan: pick an index whose keys match the query,
//! else scan. Nothing declares indexes yet.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ReturnValue,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, StreamSpecification, StreamViewType,
    TableStatus,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Number, Value};

use nube::store::{
    Document, DocumentStore, Op, Page, Query, StoreError, Version, evaluate,
    validate_collection_name, validate_key, validate_write,
};

/// The AWS SDK for DynamoDB this store is built on, to build a [`Client`] for
/// [`DynamoDbStore::new`] with the same version.
pub use aws_sdk_dynamodb as sdk;

const BACKEND: &str = "dynamodb";

/// The partition key attribute: the document id, type `S`.
pub const KEY_ATTRIBUTE: &str = "id";
/// The prefix of the backend's own attributes, stripped on read and refused in
/// documents' top-level field names.
pub const METADATA_PREFIX: &str = "_nube";
/// The attribute holding the document's version.
pub const VERSION_ATTRIBUTE: &str = "_nube_version";
/// The attribute holding the document's own `id` field, when it has one.
pub const ID_FIELD_ATTRIBUTE: &str = "_nube_id";
/// The version of an item that has no `_nube_version` (written by another tool).
pub const UNVERSIONED: &str = "unversioned";

pub use crate::names::TABLE_PREFIX_ENV;

/// How collection names map to table names.
///
/// In order: a table given with [`TableNaming::with_table`]; the environment variable
/// [`TableNaming::env_var`] (`NUBE_TABLE_ORDER_EVENTS` for `order-events`), read at each
/// use; the prefix followed by the collection name.
#[derive(Debug, Clone, Default)]
pub struct TableNaming {
    prefix: String,
    tables: HashMap<String, String>,
}

impl TableNaming {
    /// No prefix: a collection without a `NUBE_TABLE_*` variable uses its own name.
    pub fn new() -> Self {
        Self::default()
    }

    /// The prefix from `NUBE_TABLE_PREFIX` (none when unset).
    pub fn from_env() -> Self {
        Self::new().with_prefix(std::env::var(TABLE_PREFIX_ENV).unwrap_or_default())
    }

    /// Tables without a `NUBE_TABLE_*` variable are named `prefix` + collection name.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Collection `collection` lives in table `table`, whatever the environment says.
    pub fn with_table(mut self, collection: impl Into<String>, table: impl Into<String>) -> Self {
        self.tables.insert(collection.into(), table.into());
        self
    }

    /// The prefix in use.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The environment variable naming the table of `collection`: `NUBE_TABLE_` and
    /// the name in upper case with `-` and `.` as `_` (`order-events` →
    /// `NUBE_TABLE_ORDER_EVENTS`).
    pub fn env_var(collection: &str) -> String {
        crate::names::table_env_var(collection)
    }

    /// The table name of `collection` (not checked; see [`DynamoDbStore::table_name`]).
    pub fn resolve(&self, collection: &str) -> String {
        self.resolve_with(collection, |k| std::env::var(k).ok())
    }

    fn resolve_with(&self, collection: &str, env: impl Fn(&str) -> Option<String>) -> String {
        if let Some(t) = self.tables.get(collection) {
            return t.clone();
        }
        match env(&Self::env_var(collection)) {
            Some(t) if !t.is_empty() => t,
            _ => format!("{}{collection}", self.prefix),
        }
    }
}

/// The [`DocumentStore`] on DynamoDB; see the [module docs](self) for the data model.
#[derive(Clone)]
pub struct DynamoDbStore {
    client: Client,
    naming: Arc<TableNaming>,
    create_missing_tables: bool,
    /// Collections whose table is known to exist (only tracked when creating tables).
    ready: Arc<Mutex<HashSet<String>>>,
}

impl fmt::Debug for DynamoDbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoDbStore")
            .field("naming", &self.naming)
            .field("create_missing_tables", &self.create_missing_tables)
            .finish_non_exhaustive()
    }
}

/// What a write requires of the current item.
enum Rule {
    Create,
    Put,
    Update(Version),
}

impl DynamoDbStore {
    /// A store using `client`, with tables named by `naming`.
    pub fn new(client: Client, naming: TableNaming) -> Self {
        Self {
            client,
            naming: Arc::new(naming),
            create_missing_tables: false,
            ready: Arc::default(),
        }
    }

    /// A store configured from the environment: the AWS SDK's usual chain (region,
    /// credentials, and endpoint from `AWS_ENDPOINT_URL_DYNAMODB` or `AWS_ENDPOINT_URL`,
    /// which is how to point it at moto or DynamoDB Local) and [`TableNaming::from_env`].
    /// Fails when no region is configured.
    pub async fn from_env() -> Result<Self, StoreError> {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        if config.region().is_none() {
            return Err(StoreError::Backend {
                backend: BACKEND,
                message: "no AWS region is configured: set AWS_REGION (Lambda sets it), or a region in the AWS profile".into(),
                source: None,
            });
        }
        Ok(Self::new(Client::new(&config), TableNaming::from_env()))
    }

    /// When `true`, the first use of a collection creates its table if it does not
    /// exist (as [`DynamoDbStore::ensure_table`] does). For tests and local set-ups;
    /// in production, tables belong to the deployment.
    pub fn create_missing_tables(mut self, create: bool) -> Self {
        self.create_missing_tables = create;
        self
    }

    /// The DynamoDB client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// How collections map to tables.
    pub fn naming(&self) -> &TableNaming {
        &self.naming
    }

    /// The table of `collection`, checked against DynamoDB's rules for table names.
    pub fn table_name(&self, collection: &str) -> Result<String, StoreError> {
        validate_collection_name(collection)?;
        let table = self.naming.resolve(collection);
        let ok = (3..=255).contains(&table.len())
            && table
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if ok {
            Ok(table)
        } else {
            Err(StoreError::Backend {
                backend: BACKEND,
                message: format!(
                    "collection {collection:?} maps to the table name {table:?}, which DynamoDB does not accept \
                     (3-255 characters of letters, digits, '_', '-' and '.'): set {} to the table's name, or {TABLE_PREFIX_ENV}",
                    TableNaming::env_var(collection)
                ),
                source: None,
            })
        }
    }

    /// Creates the table of `collection` unless it exists (partition key `id` of type
    /// `S`, on-demand billing, a stream with `NEW_IMAGE`), enables the stream of an
    /// existing table that has none, and waits until the table is active. Returns the
    /// table's name. For tests and local set-ups.
    pub async fn ensure_table(&self, collection: &str) -> Result<String, StoreError> {
        let table = self.table_name(collection)?;
        let described = self.client.describe_table().table_name(&table).send().await;
        match described {
            Ok(out) => {
                let streams_on = out
                    .table
                    .as_ref()
                    .and_then(|t| t.stream_specification.as_ref())
                    .is_some_and(|s| s.stream_enabled);
                if !streams_on {
                    self.client
                        .update_table()
                        .table_name(&table)
                        .stream_specification(new_image_stream())
                        .send()
                        .await
                        .map_err(|e| self.sdk_error("UpdateTable", &table, collection, e))?;
                }
            }
            Err(e) if e.code() == Some("ResourceNotFoundException") => {
                let created = self
                    .client
                    .create_table()
                    .table_name(&table)
                    .attribute_definitions(
                        AttributeDefinition::builder()
                            .attribute_name(KEY_ATTRIBUTE)
                            .attribute_type(ScalarAttributeType::S)
                            .build()
                            .expect("attribute definition is complete"),
                    )
                    .key_schema(
                        KeySchemaElement::builder()
                            .attribute_name(KEY_ATTRIBUTE)
                            .key_type(KeyType::Hash)
                            .build()
                            .expect("key schema is complete"),
                    )
                    .billing_mode(BillingMode::PayPerRequest)
                    .stream_specification(new_image_stream())
                    .send()
                    .await;
                match created {
                    // Someone else created it meanwhile: fine.
                    Err(e) if e.code() == Some("ResourceInUseException") => {}
                    Err(e) => return Err(self.sdk_error("CreateTable", &table, collection, e)),
                    Ok(_) => tracing::info!(table, collection, "created DynamoDB table"),
                }
            }
            Err(e) => return Err(self.sdk_error("DescribeTable", &table, collection, e)),
        }
        self.wait_active(&table, collection).await?;
        Ok(table)
    }

    async fn wait_active(&self, table: &str, collection: &str) -> Result<(), StoreError> {
        let started = Instant::now();
        loop {
            let out = self
                .client
                .describe_table()
                .table_name(table)
                .send()
                .await
                .map_err(|e| self.sdk_error("DescribeTable", table, collection, e))?;
            let status = out.table.and_then(|t| t.table_status);
            if status == Some(TableStatus::Active) {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(300) {
                return Err(StoreError::Backend {
                    backend: BACKEND,
                    message: format!(
                        "table {table:?} is still {status:?} after 5 minutes; check it in the DynamoDB console"
                    ),
                    source: None,
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The table of `collection`, created first when asked to.
    async fn table(&self, collection: &str) -> Result<String, StoreError> {
        if !self.create_missing_tables {
            return self.table_name(collection);
        }
        if self
            .ready
            .lock()
            .expect("table cache poisoned")
            .contains(collection)
        {
            return self.table_name(collection);
        }
        let table = self.ensure_table(collection).await?;
        self.ready
            .lock()
            .expect("table cache poisoned")
            .insert(collection.to_owned());
        Ok(table)
    }

    /// A [`StoreError::Backend`] saying what failed and what to do about it.
    fn sdk_error<E, R>(
        &self,
        operation: &str,
        table: &str,
        collection: &str,
        err: SdkError<E, R>,
    ) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: fmt::Debug + Send + Sync + 'static,
    {
        let advice = match err.code() {
            Some("ResourceNotFoundException") => format!(
                "table {table:?} does not exist: create it (partition key `id` of type S), or set {} to the name of the table of collection {collection:?}",
                TableNaming::env_var(collection)
            ),
            Some(
                "AccessDeniedException"
                | "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "MissingAuthenticationTokenException"
                | "ExpiredTokenException"
                | "IncompleteSignature",
            ) => format!(
                "the credentials were refused: the function's role (or the AWS_* credentials) must allow dynamodb:{operation} on table {table:?}"
            ),
            Some(
                "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "RequestLimitExceeded",
            ) => format!(
                "DynamoDB throttled {operation} on table {table:?}: retry later, or raise the table's capacity (or use on-demand billing)"
            ),
            Some(code) => format!("{operation} on table {table:?} failed with {code}"),
            None => match &err {
                SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => format!(
                    "{operation} on table {table:?} could not reach DynamoDB: check the network, AWS_REGION, and AWS_ENDPOINT_URL_DYNAMODB / AWS_ENDPOINT_URL if set"
                ),
                SdkError::ConstructionFailure(_) => format!(
                    "{operation} on table {table:?} could not be sent: check AWS_REGION and the credentials"
                ),
                _ => format!("{operation} on table {table:?} failed"),
            },
        };
        let message = format!("{advice} ({})", DisplayErrorContext(&err));
        StoreError::backend(BACKEND, message, err)
    }

    /// Maps a failed write: what DynamoDB refuses in the document itself is the
    /// caller's fault, everything else the backend's.
    fn write_error<E, R>(
        &self,
        operation: &str,
        table: &str,
        collection: &str,
        id: &str,
        err: SdkError<E, R>,
    ) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: fmt::Debug + Send + Sync + 'static,
    {
        let message = err.message().unwrap_or_default();
        if err.code() == Some("ValidationException")
            && let Some(limit) = refused_for(message)
        {
            // DynamoDB's text names the table; it goes to the log, not to the client.
            tracing::warn!(
                table,
                document = id,
                error = message,
                "DynamoDB refused a document"
            );
            return StoreError::InvalidDocument(format!(
                "DynamoDB cannot store document {collection}/{id}: {limit}"
            ));
        }
        self.sdk_error(operation, table, collection, err)
    }

    async fn write(
        &self,
        collection: &str,
        id: &str,
        value: Value,
        rule: Rule,
    ) -> Result<Document, StoreError> {
        validate_write(collection, id, &value)?;
        let Value::Object(fields) = &value else {
            unreachable!("validate_write accepts objects only")
        };
        let version = uuid::Uuid::now_v7().simple().to_string();
        let item = to_item(id, fields, &version)?;
        let table = self.table(collection).await?;
        let mut request = self
            .client
            .put_item()
            .table_name(&table)
            .set_item(Some(item));
        match &rule {
            Rule::Create => {
                request = request
                    .condition_expression("attribute_not_exists(#key)")
                    .expression_attribute_names("#key", KEY_ATTRIBUTE)
                    .return_values_on_condition_check_failure(
                        ReturnValuesOnConditionCheckFailure::AllOld,
                    );
            }
            Rule::Put => {}
            Rule::Update(expected) => {
                let (condition, names, values) = version_condition(expected);
                request = request
                    .condition_expression(condition)
                    .set_expression_attribute_names(Some(names))
                    .set_expression_attribute_values(values)
                    .return_values_on_condition_check_failure(
                        ReturnValuesOnConditionCheckFailure::AllOld,
                    );
            }
        }
        let written = |value| Document {
            id: id.to_owned(),
            version: Version::new(version.clone()),
            value,
        };
        let err = match request.send().await {
            Ok(_) => return Ok(written(value)),
            Err(err) => err,
        };
        match (err.as_service_error(), rule) {
            // The SDK sends a PutItem again when its answer was lost (a 500, a timeout):
            // when the first one had been applied, the second one's condition fails
            // against the item it wrote, which carries this write's version.
            (Some(PutItemError::ConditionalCheckFailedException(c)), _)
                if matches!(
                    c.item().and_then(|i| i.get(VERSION_ATTRIBUTE)),
                    Some(AttributeValue::S(v)) if *v == version
                ) =>
            {
                Ok(written(value))
            }
            (Some(PutItemError::ConditionalCheckFailedException(_)), Rule::Create) => {
                Err(StoreError::Conflict {
                    collection: collection.to_owned(),
                    id: id.to_owned(),
                })
            }
            (Some(PutItemError::ConditionalCheckFailedException(c)), Rule::Update(expected)) => {
                Err(if c.item().is_some_and(|i| !i.is_empty()) {
                    StoreError::PreconditionFailed {
                        collection: collection.to_owned(),
                        id: id.to_owned(),
                        expected: expected.to_string(),
                    }
                } else {
                    StoreError::NotFound {
                        collection: collection.to_owned(),
                        id: id.to_owned(),
                    }
                })
            }
            _ => Err(self.write_error("PutItem", &table, collection, id, err)),
        }
    }
}

fn new_image_stream() -> StreamSpecification {
    StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(StreamViewType::NewImage)
        .build()
        .expect("stream specification is complete")
}

type Names = HashMap<String, String>;
type Values = HashMap<String, AttributeValue>;

/// The condition "the item is at version `expected`".
fn version_condition(expected: &Version) -> (&'static str, Names, Option<Values>) {
    let mut names = HashMap::from([("#version".to_owned(), VERSION_ATTRIBUTE.to_owned())]);
    if expected.as_str() == UNVERSIONED {
        names.insert("#key".into(), KEY_ATTRIBUTE.into());
        (
            "attribute_exists(#key) AND attribute_not_exists(#version)",
            names,
            None,
        )
    } else {
        let values = HashMap::from([(
            ":version".to_owned(),
            AttributeValue::S(expected.as_str().to_owned()),
        )]);
        ("#version = :version", names, Some(values))
    }
}

#[async_trait]
impl DocumentStore for DynamoDbStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn get(&self, collection: &str, id: &str) -> Result<Option<Document>, StoreError> {
        validate_key(collection, id)?;
        let table = self.table(collection).await?;
        let out = self
            .client
            .get_item()
            .table_name(&table)
            .key(KEY_ATTRIBUTE, AttributeValue::S(id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.sdk_error("GetItem", &table, collection, e))?;
        match out.item {
            Some(item) if !item.is_empty() => item_to_document(item)
                .map(Some)
                .map_err(|m| corrupt(&table, id, m)),
            _ => Ok(None),
        }
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
        let table = self.table(collection).await?;
        let mut request = self
            .client
            .delete_item()
            .table_name(&table)
            .key(KEY_ATTRIBUTE, AttributeValue::S(id.to_owned()))
            .return_values(ReturnValue::AllOld);
        if let Some(expected) = expected {
            let (condition, names, values) = version_condition(expected);
            request = request
                .condition_expression(condition)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(values)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                );
        }
        match request.send().await {
            Ok(out) => Ok(out.attributes.is_some_and(|a| !a.is_empty())),
            Err(err) => match (err.as_service_error(), expected) {
                (Some(DeleteItemError::ConditionalCheckFailedException(c)), Some(expected)) => {
                    if c.item().is_some_and(|i| !i.is_empty()) {
                        Err(StoreError::PreconditionFailed {
                            collection: collection.to_owned(),
                            id: id.to_owned(),
                            expected: expected.to_string(),
                        })
                    } else {
                        Ok(false)
                    }
                }
                _ => Err(self.sdk_error("DeleteItem", &table, collection, err)),
            },
        }
    }

    async fn query(&self, collection: &str, query: &Query) -> Result<Page, StoreError> {
        query.validate()?;
        let table = self.table(collection).await?;
        let filter = ScanFilter::for_query(query);
        let mut documents = Vec::new();
        let mut start = None;
        let mut scanned = 0usize;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&table)
                .consistent_read(true)
                .set_filter_expression(filter.expression.clone())
                .set_expression_attribute_names(filter.names.clone())
                .set_expression_attribute_values(filter.values.clone())
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.sdk_error("Scan", &table, collection, e))?;
            scanned += usize::try_from(out.scanned_count).unwrap_or(0);
            for item in out.items.unwrap_or_default() {
                let id = match item.get(KEY_ATTRIBUTE) {
                    Some(AttributeValue::S(id)) => id.clone(),
                    _ => String::from("?"),
                };
                documents.push(item_to_document(item).map_err(|m| corrupt(&table, &id, m))?);
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        tracing::debug!(
            table,
            scanned,
            matched = documents.len(),
            "query scanned the table"
        );
        evaluate(documents, query)
    }
}

/// The limit of DynamoDB's that a refused write broke, by DynamoDB's
/// `ValidationException` message ("Item size has exceeded the maximum allowed size",
/// "Attempting to store more than 38 significant digits in a Number", "Number
/// overflow…", "Nesting Levels have exceeded supported limits"); `None` for any other
/// refusal, which is the backend's fault rather than the document's.
fn refused_for(message: &str) -> Option<&'static str> {
    let message = message.to_ascii_lowercase();
    if message.contains("item size") {
        Some("an item is at most 400 KB")
    } else if message.contains("significant digits")
        || message.contains("number overflow")
        || message.contains("number underflow")
    {
        Some("a number has at most 38 significant digits, between 1e-130 and 1e126 in magnitude")
    } else if message.contains("nesting levels") {
        Some("maps and lists nest at most 32 deep")
    } else {
        None
    }
}

fn corrupt(table: &str, id: &str, message: String) -> StoreError {
    StoreError::Decode(format!(
        "item {id:?} of table {table:?} is not a nube document: {message}"
    ))
}

/// The part of a query DynamoDB can filter on while scanning, exactly as
/// [`nube::store::evaluate`] would: equalities on strings, booleans and integers whose
/// magnitude is at most 2^53 (where DynamoDB's exact decimal comparison and nube's
/// comparison agree). Everything else is left to `evaluate`, which re-checks these too.
#[derive(Debug, Default)]
struct ScanFilter {
    expression: Option<String>,
    names: Option<Names>,
    values: Option<Values>,
}

impl ScanFilter {
    fn for_query(query: &Query) -> Self {
        let mut names = Names::new();
        let mut values = Values::new();
        let mut conditions = Vec::new();
        for (i, f) in query.filters.iter().enumerate() {
            if f.op != Op::Eq {
                continue;
            }
            let Some(value) = pushable(&f.value) else {
                continue;
            };
            let mut segments: Vec<&str> = f.field.split('.').collect();
            match segments[0] {
                "id" => segments[0] = ID_FIELD_ATTRIBUTE,
                // No document has such a field; `evaluate` finds nothing.
                s if s.starts_with(METADATA_PREFIX) => continue,
                _ => {}
            }
            let path: Vec<String> = segments
                .iter()
                .enumerate()
                .map(|(j, s)| {
                    let name = format!("#f{i}_{j}");
                    names.insert(name.clone(), (*s).to_owned());
                    name
                })
                .collect();
            values.insert(format!(":v{i}"), value);
            conditions.push(format!("{} = :v{i}", path.join(".")));
        }
        if conditions.is_empty() {
            return Self::default();
        }
        Self {
            expression: Some(conditions.join(" AND ")),
            names: Some(names),
            values: Some(values),
        }
    }
}

fn pushable(value: &Value) -> Option<AttributeValue> {
    const EXACT: u64 = 1 << 53;
    match value {
        Value::String(s) => Some(AttributeValue::S(s.clone())),
        Value::Bool(b) => Some(AttributeValue::Bool(*b)),
        Value::Number(n)
            if n.as_i64().is_some_and(|i| i.unsigned_abs() <= EXACT)
                || n.as_u64().is_some_and(|u| u <= EXACT) =>
        {
            Some(AttributeValue::N(n.to_string()))
        }
        _ => None,
    }
}

/// The item storing document `id` with `fields` at `version`.
fn to_item(
    id: &str,
    fields: &Map<String, Value>,
    version: &str,
) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let mut item = HashMap::with_capacity(fields.len() + 2);
    for (name, value) in fields {
        if name.is_empty() {
            return Err(StoreError::InvalidDocument(format!(
                "document {id:?} has a field with an empty name, which DynamoDB cannot store"
            )));
        }
        if name.starts_with(METADATA_PREFIX) {
            return Err(StoreError::InvalidDocument(format!(
                "document {id:?} has the field {name:?}: top-level names starting with {METADATA_PREFIX:?} are reserved by the DynamoDB store; rename it or nest it in an object"
            )));
        }
        let attribute = if name == KEY_ATTRIBUTE {
            ID_FIELD_ATTRIBUTE.to_owned()
        } else {
            name.clone()
        };
        item.insert(attribute, to_attribute(value));
    }
    item.insert(KEY_ATTRIBUTE.into(), AttributeValue::S(id.to_owned()));
    item.insert(
        VERSION_ATTRIBUTE.into(),
        AttributeValue::S(version.to_owned()),
    );
    Ok(item)
}

/// A JSON value as a DynamoDB attribute value.
pub fn to_attribute(value: &Value) -> AttributeValue {
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::String(s) => AttributeValue::S(s.clone()),
        Value::Array(a) => AttributeValue::L(a.iter().map(to_attribute).collect()),
        Value::Object(o) => AttributeValue::M(
            o.iter()
                .map(|(k, v)| (k.clone(), to_attribute(v)))
                .collect(),
        ),
    }
}

/// A DynamoDB attribute value as JSON. Types nube never writes map to their closest
/// JSON: binary to base64 text, sets to arrays.
pub fn from_attribute(attribute: AttributeValue) -> Result<Value, String> {
    Ok(match attribute {
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::Bool(b) => Value::Bool(b),
        AttributeValue::N(n) => Value::Number(parse_number(&n)?),
        AttributeValue::S(s) => Value::String(s),
        AttributeValue::L(l) => Value::Array(
            l.into_iter()
                .map(from_attribute)
                .collect::<Result<_, _>>()?,
        ),
        AttributeValue::M(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| Ok((k, from_attribute(v)?)))
                .collect::<Result<_, String>>()?,
        ),
        AttributeValue::B(b) => Value::String(BASE64.encode(b.into_inner())),
        AttributeValue::Ss(s) => Value::Array(s.into_iter().map(Value::String).collect()),
        AttributeValue::Ns(n) => Value::Array(
            n.iter()
                .map(|n| parse_number(n).map(Value::Number))
                .collect::<Result<_, _>>()?,
        ),
        AttributeValue::Bs(b) => Value::Array(
            b.into_iter()
                .map(|b| Value::String(BASE64.encode(b.into_inner())))
                .collect(),
        ),
        other => return Err(format!("unsupported attribute type {other:?}")),
    })
}

fn parse_number(text: &str) -> Result<Number, String> {
    Number::from_str(text).map_err(|e| format!("number {text:?} does not parse: {e}"))
}

/// The document stored in `item` (an item this store wrote): its id, version and value
/// with the metadata attributes stripped.
pub fn item_to_document(item: HashMap<String, AttributeValue>) -> Result<Document, String> {
    let mut id = None;
    let mut version = None;
    let mut value = Map::new();
    for (name, attribute) in item {
        if name == KEY_ATTRIBUTE {
            match attribute {
                AttributeValue::S(s) => id = Some(s),
                other => return Err(format!("the key `id` is {other:?}, not a string")),
            }
        } else if name == VERSION_ATTRIBUTE {
            match attribute {
                AttributeValue::S(s) => version = Some(s),
                other => return Err(format!("`{VERSION_ATTRIBUTE}` is {other:?}, not a string")),
            }
        } else if name == ID_FIELD_ATTRIBUTE {
            value.insert(KEY_ATTRIBUTE.to_owned(), from_attribute(attribute)?);
        } else if !name.starts_with(METADATA_PREFIX) {
            value.insert(name, from_attribute(attribute)?);
        }
    }
    Ok(Document {
        id: id.ok_or("the item has no `id`")?,
        version: Version::new(version.unwrap_or_else(|| UNVERSIONED.to_owned())),
        value: Value::Object(value),
    })
}

/// The document value in an item image given as plain JSON (for example a DynamoDB
/// Streams `NEW_IMAGE` after decoding its typed attributes): the key `id` and the
/// `_nube*` attributes are dropped, and `_nube_id` goes back to `id`.
pub fn document_from_image(image: Map<String, Value>) -> Value {
    let mut value = Map::new();
    for (name, v) in image {
        if name == ID_FIELD_ATTRIBUTE {
            value.insert(KEY_ATTRIBUTE.to_owned(), v);
        } else if name != KEY_ATTRIBUTE && !name.starts_with(METADATA_PREFIX) {
            value.insert(name, v);
        }
    }
    Value::Object(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_names() {
        assert_eq!(
            TableNaming::env_var("order-events"),
            "NUBE_TABLE_ORDER_EVENTS"
        );
        assert_eq!(TableNaming::env_var("a.b_c"), "NUBE_TABLE_A_B_C");
        let naming = TableNaming::new()
            .with_prefix("prod-")
            .with_table("pinned", "Pinned");
        let env = |k: &str| (k == "NUBE_TABLE_ORDER_EVENTS").then(|| "OrdersTable".to_owned());
        assert_eq!(naming.resolve_with("order-events", env), "OrdersTable");
        assert_eq!(naming.resolve_with("todos", env), "prod-todos");
        assert_eq!(naming.resolve_with("pinned", env), "Pinned");
        assert_eq!(
            TableNaming::new().resolve_with("todos", |_| Some(String::new())),
            "todos"
        );
    }

    #[test]
    fn documents_round_trip_through_items() {
        let value = json!({
            "id": 7, "s": "x", "big": 9007199254740993i64, "neg": -1, "f": 0.1, "t": true,
            "n": null, "l": [1, "two", {"three": [3]}], "m": {"_nube_ok": {"id": "nested"}}
        });
        let item = to_item("doc", value.as_object().unwrap(), "v1").unwrap();
        assert_eq!(item["id"], AttributeValue::S("doc".into()));
        assert_eq!(item["_nube_id"], AttributeValue::N("7".into()));
        assert_eq!(item["big"], AttributeValue::N("9007199254740993".into()));
        assert_eq!(item["_nube_version"], AttributeValue::S("v1".into()));
        let doc = item_to_document(item).unwrap();
        assert_eq!(doc.id, "doc");
        assert_eq!(doc.version.as_str(), "v1");
        assert_eq!(doc.value, value);
    }

    #[test]
    fn reserved_and_empty_names_are_refused() {
        for bad in [json!({"_nube_x": 1}), json!({"_nubes": 1}), json!({"": 1})] {
            assert!(matches!(
                to_item("d", bad.as_object().unwrap(), "v"),
                Err(StoreError::InvalidDocument(_))
            ));
        }
    }

    #[test]
    fn images_and_foreign_items() {
        let image = json!({"id": "k", "_nube_version": "v", "_nube_id": "own", "a": 1});
        assert_eq!(
            document_from_image(image.as_object().unwrap().clone()),
            json!({"id": "own", "a": 1})
        );
        let foreign = HashMap::from([
            ("id".to_owned(), AttributeValue::S("k".into())),
            (
                "tags".to_owned(),
                AttributeValue::Ss(vec!["a".into(), "b".into()]),
            ),
            ("n".to_owned(), AttributeValue::N("1E+3".into())),
        ]);
        let doc = item_to_document(foreign).unwrap();
        assert_eq!(doc.version.as_str(), UNVERSIONED);
        assert_eq!(doc.value["tags"], json!(["a", "b"]));
        assert_eq!(doc.value["n"].as_f64(), Some(1000.0));
    }

    #[test]
    fn only_exact_equalities_are_pushed_down() {
        let q = Query::new()
            .eq("user", "ann")
            .eq("id", "x")
            .eq("addr.city", "Oslo")
            .eq("f", 0.5)
            .eq("big", 1u64 << 60)
            .eq("n", 3)
            .eq("_nube_version", "v")
            .gt("n", 1);
        let f = ScanFilter::for_query(&q);
        assert_eq!(
            f.expression.as_deref(),
            Some("#f0_0 = :v0 AND #f1_0 = :v1 AND #f2_0.#f2_1 = :v2 AND #f5_0 = :v5")
        );
        let names = f.names.unwrap();
        assert_eq!(names["#f1_0"], "_nube_id");
        assert_eq!(names["#f2_1"], "city");
        assert_eq!(f.values.unwrap()[":v5"], AttributeValue::N("3".into()));
        assert!(ScanFilter::for_query(&Query::new()).expression.is_none());
    }
}
