//! The Lambda runtime: [`run`] (a bootstrap's `main`), [`Dispatcher`] (one nube
//! function behind one Lambda function) and [`handle`] (one payload, without a
//! Runtime API, for tests).
//!
//! **Which function.** Lambda's handler setting (`_HANDLER`) is the nube function's
//! name, exactly (`api`, `nightly`): every Lambda function of the app runs the same
//! `bootstrap` binary with a different handler. A missing or unknown handler fails
//! the init with a message listing the app's functions: in the log, and as the
//! invocation's error (`nube.InitError`, through the Runtime API's
//! `/runtime/init/error`).
//!
//! **One handler for every trigger.** The payload is decoded according to the
//! selected function's trigger:
//!
//! | trigger | payload | result |
//! |---|---|---|
//! | HTTP | API Gateway REST/HTTP API, Function URL, ALB ([`crate::http`]) | the HTTP response, in the request's shape |
//! | timer | EventBridge scheduled event ([`crate::timer`]) | `null`, or an error (EventBridge retries) |
//! | blob created | S3 notification ([`crate::blob`]); one invocation per record, in order | `null`, or an error naming every failed key (S3 invokes asynchronously, so Lambda retries the whole event) |
//! | document created | DynamoDB Streams batch ([`crate::document`]); `INSERT` records in order, the rest skipped | `{"batchItemFailures": [...]}` naming the first failed record's `SequenceNumber` (the stream retries from there); a record no retry mends (undecodable, or refused with a client-side error) is logged and skipped |
//!
//! A payload of another kind fails with `errorType` `nube.EventMismatch` and a
//! message saying what it is and what the function takes. Function failures fail
//! with `nube.<ErrorKind>` (`nube.Timeout`, `nube.Panic`...): the deadline is the
//! Lambda deadline less [`REPORT_MARGIN`], so an overrun is reported before Lambda
//! stops the sandbox, and the next invocation is served as usual.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use futures::FutureExt;
use lambda_runtime::LambdaEvent;
use nube::axum::Router;
use nube::store::{DocumentStore, NoDocumentStore};
use nube::{App, Context, Event, Function, FunctionScope, Provider, Resources, Trigger};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::blob::S3Record;
use crate::document::StreamRecord;
use crate::error::HandlerError;
use crate::names::ResourceNames;
use crate::payload::{PayloadLayer, RawPayload};
use crate::shape::{EventShape, classify};

/// Time kept back from the Lambda deadline so that a function running past it is
/// stopped, and its failure reported, before Lambda ends the invocation.
pub const REPORT_MARGIN: Duration = Duration::from_millis(100);

/// Why the runtime could not start; the message says what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitError(pub String);

impl std::fmt::Display for InitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InitError {}

fn function_list(app: &App) -> String {
    app.functions()
        .iter()
        .map(|f| format!("{} ({})", f.name(), f.trigger().kind()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The function named by the handler setting (`_HANDLER`): the nube function's name.
pub fn select_function<'a>(app: &'a App, handler: Option<&str>) -> Result<&'a Function, InitError> {
    let handler = handler.map(str::trim).filter(|h| !h.is_empty());
    let Some(name) = handler else {
        return Err(InitError(format!(
            "the Lambda handler (_HANDLER) is not set; set it to the nube function this Lambda function runs, one of: {}",
            function_list(app)
        )));
    };
    if let Some(f) = app.function(name) {
        return Ok(f);
    }
    let hint = name
        .rsplit_once('.')
        .filter(|(_, last)| app.function(last).is_some())
        .map(|(_, last)| {
            format!(" (the handler is the bare function name: did you mean {last:?}?)")
        })
        .unwrap_or_default();
    Err(InitError(format!(
        "the Lambda handler (_HANDLER) is {name:?}, and app {} has no such function{hint}; set it to one of: {}",
        app.name(),
        function_list(app)
    )))
}

/// The smallest `Lambda-Runtime-Deadline-Ms` taken as a time: 10^12 ms after the epoch
/// (September 2001), long before the Runtime API existed. Smaller values come from
/// emulators that send a duration instead (cargo-lambda's `cargo lambda watch` sends
/// `600000` on every invocation); read as a time, that deadline would have passed
/// decades ago and every invocation would time out at once.
pub const MIN_EPOCH_DEADLINE_MS: u64 = 1_000_000_000_000;

/// The Lambda deadline (epoch milliseconds, as the Runtime API gives it) as an
/// `Instant`, less [`REPORT_MARGIN`]. `None` for `0` and for any value below
/// [`MIN_EPOCH_DEADLINE_MS`] (no usable deadline: the function's own timeout still
/// applies); the latter is logged once per process.
pub fn deadline_from_epoch_ms(deadline_ms: u64) -> Option<Instant> {
    if deadline_ms == 0 {
        return None;
    }
    if deadline_ms < MIN_EPOCH_DEADLINE_MS {
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            tracing::warn!(
                deadline_ms,
                "the Runtime API's Lambda-Runtime-Deadline-Ms is not a time (epoch milliseconds); \
                 ignoring it, so only the functions' own timeouts apply (an emulator, not Lambda)"
            );
        });
        return None;
    }
    let deadline = SystemTime::UNIX_EPOCH + Duration::from_millis(deadline_ms);
    let left = deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .saturating_sub(REPORT_MARGIN);
    Some(Instant::now() + left)
}

enum Kind {
    Http(Router),
    Timer(String),
    Blob,
    /// The collection the function watches.
    Document(String),
}

/// One nube function behind one Lambda function: decodes each payload for its
/// trigger and runs it.
pub struct Dispatcher {
    app: Arc<App>,
    function: String,
    kind: Kind,
    /// The function's scope, made once: every event's Context is made in it.
    scope: Arc<FunctionScope>,
    names: ResourceNames,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("app", &self.app.name())
            .field("function", &self.function)
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// The dispatcher for `app`'s function `function`, using `resources` and mapping
    /// physical resource names back with `names`.
    pub fn new(
        app: Arc<App>,
        function: &str,
        resources: Resources,
        names: ResourceNames,
    ) -> Result<Self, InitError> {
        let f = select_function(&app, Some(function))?;
        let kind = match f.trigger() {
            Trigger::Http(_) => {
                Kind::Http(app.http_service_for(Some(function), Provider::Aws, resources.clone()))
            }
            Trigger::Timer(schedule) => Kind::Timer(schedule.to_string()),
            Trigger::BlobCreated { .. } => Kind::Blob,
            Trigger::DocumentCreated { collection } => Kind::Document(collection.clone()),
        };
        let function = f.name().to_owned();
        let scope = Arc::new(FunctionScope::new(
            function.as_str(),
            Provider::Aws,
            resources,
        ));
        Ok(Self {
            app,
            function,
            kind,
            scope,
            names,
        })
    }

    /// The nube function this dispatcher runs.
    pub fn function(&self) -> &str {
        &self.function
    }

    /// Handles one Lambda invocation, its payload as the Runtime API sent it.
    pub async fn handle_event(
        &self,
        event: LambdaEvent<RawPayload>,
    ) -> Result<Box<RawValue>, HandlerError> {
        let (RawPayload(payload), context) = event.into_parts();
        let deadline = deadline_from_epoch_ms(context.deadline);
        let payload = std::str::from_utf8(&payload).map_err(|e| {
            HandlerError::new(
                HandlerError::INVALID_EVENT,
                format!("the payload is not JSON nube can read: it is not UTF-8 text ({e})"),
            )
        })?;
        self.handle_json(payload, context, deadline).await
    }

    /// Handles one payload given as JSON text, as [`Dispatcher::handle`] does, and
    /// answers JSON text. An HTTP API or Function URL request to an HTTP function
    /// ([`crate::http::read_payload_v2`]) is decoded straight into its type; any other
    /// payload is read into a `Value` first.
    pub async fn handle_json(
        &self,
        payload: &str,
        lambda: lambda_runtime::Context,
        deadline: Option<Instant>,
    ) -> Result<Box<RawValue>, HandlerError> {
        if let Kind::Http(router) = &self.kind
            && let Some(request) = crate::http::read_payload_v2(payload)
        {
            return guarded(crate::http::serve_v2(router, request, lambda, deadline).map(Ok)).await;
        }
        let payload: Value = serde_json::from_str(payload).map_err(|e| {
            HandlerError::new(
                HandlerError::INVALID_EVENT,
                format!("the payload is not JSON nube can read: {e}"),
            )
        })?;
        let answer = self.handle(payload, lambda, deadline).await?;
        serde_json::value::to_raw_value(&answer).map_err(|e| {
            HandlerError::new(
                HandlerError::RUNTIME,
                format!("the answer could not be written as JSON: {e}"),
            )
        })
    }

    /// Handles one payload: `lambda` is the invocation's context (its request id is
    /// the invocation id), `deadline` when the function must be done. Panics anywhere
    /// become this invocation's error.
    pub async fn handle(
        &self,
        payload: Value,
        lambda: lambda_runtime::Context,
        deadline: Option<Instant>,
    ) -> Result<Value, HandlerError> {
        guarded(self.dispatch(payload, lambda, deadline)).await
    }

    async fn dispatch(
        &self,
        payload: Value,
        lambda: lambda_runtime::Context,
        deadline: Option<Instant>,
    ) -> Result<Value, HandlerError> {
        let request_id = lambda.request_id.clone();
        match &self.kind {
            Kind::Http(router) => crate::http::serve(router, payload, lambda, deadline)
                .await
                .map_err(|e| self.explain(e)),
            Kind::Timer(schedule) => {
                self.expect(&payload, EventShape::ScheduledEvent)?;
                let tick = crate::timer::decode(&payload, schedule)
                    .map_err(|e| HandlerError::invalid(&e))?;
                self.app
                    .invoke(Event::Timer(tick), self.context(&request_id, deadline))
                    .await
                    .map_err(|e| HandlerError::from_nube(&e))?;
                Ok(Value::Null)
            }
            Kind::Blob => self.blobs(&payload, &request_id, deadline).await,
            Kind::Document(collection) => {
                self.documents(collection, &payload, &request_id, deadline)
                    .await
            }
        }
    }

    fn explain(&self, mut e: HandlerError) -> HandlerError {
        if e.error_type == HandlerError::EVENT_MISMATCH {
            e.error_message = format!("function {:?}: {}", self.function, e.error_message);
        }
        e
    }

    fn expect(&self, payload: &Value, wanted: EventShape) -> Result<(), HandlerError> {
        let shape = classify(payload);
        if shape == wanted {
            return Ok(());
        }
        let takes = match self.kind {
            Kind::Http(_) => "HTTP requests (API Gateway, Function URL, ALB)",
            Kind::Timer(_) => "timer events (EventBridge scheduled events)",
            Kind::Blob => "blob-created events (S3 ObjectCreated notifications)",
            Kind::Document(_) => "document-created events (DynamoDB Streams batches)",
        };
        Err(HandlerError::mismatch(format!(
            "function {:?} takes {takes}, and the payload is {}; check the Lambda function's trigger and its handler setting",
            self.function,
            shape.describe()
        )))
    }

    fn context(&self, request_id: &str, deadline: Option<Instant>) -> Context {
        let mut builder = Context::builder_in(self.scope.clone());
        if !request_id.is_empty() {
            builder = builder.invocation_id(request_id);
        }
        if let Some(deadline) = deadline {
            builder = builder.deadline(deadline);
        }
        builder.build()
    }

    async fn blobs(
        &self,
        payload: &Value,
        request_id: &str,
        deadline: Option<Instant>,
    ) -> Result<Value, HandlerError> {
        if classify(payload) == EventShape::S3TestEvent {
            tracing::info!("S3 test event (s3:TestEvent) acknowledged");
            return Ok(Value::Null);
        }
        self.expect(payload, EventShape::S3)?;
        let records =
            crate::blob::decode(payload, &self.names).map_err(|e| HandlerError::invalid(&e))?;
        let total = records.len();
        let mut failures: Vec<(String, HandlerError)> = Vec::new();
        for record in records {
            match record {
                S3Record::Created(blob) => {
                    let key = format!("{}/{}", blob.bucket, blob.key);
                    let ctx = self.context(request_id, deadline);
                    if let Err(e) = self.app.invoke(Event::BlobCreated(blob), ctx).await {
                        failures.push((key, HandlerError::from_nube(&e)));
                    }
                }
                S3Record::Skipped { event_name, key } => {
                    tracing::info!(
                        event_name,
                        key,
                        "S3 record skipped: not an ObjectCreated event"
                    );
                }
                S3Record::Invalid { key, error } => {
                    tracing::error!(key, %error, "S3 record could not be decoded");
                    failures.push((key, HandlerError::invalid(&error)));
                }
            }
        }
        let Some((_, first)) = failures.first() else {
            return Ok(Value::Null);
        };
        let detail = failures
            .iter()
            .map(|(key, e)| format!("{key:?} ({e})"))
            .collect::<Vec<_>>()
            .join("; ");
        Err(HandlerError::new(
            first.error_type.clone(),
            format!("{} of {total} objects failed: {detail}", failures.len()),
        ))
    }

    async fn documents(
        &self,
        watched: &str,
        payload: &Value,
        request_id: &str,
        deadline: Option<Instant>,
    ) -> Result<Value, HandlerError> {
        self.expect(payload, EventShape::DynamoDbStream)?;
        let records =
            crate::document::decode(payload, &self.names).map_err(|e| HandlerError::invalid(&e))?;
        // A record that fails in a way no retry mends is logged and skipped: reporting
        // it would send the stream back to it until Lambda's retries run out, and then
        // Lambda drops it with the records after it in the batch.
        let skip = |what: &str, sequence_number: Option<&str>, why: &str| {
            tracing::error!(
                sequence_number,
                error = why,
                "{what} skipped: sending it again would fail the same way"
            );
        };
        for record in records {
            let sequence_number = record.sequence_number().map(str::to_owned);
            let failure = match record {
                StreamRecord::Created { event, .. } => {
                    // A record of another collection is a deployment's mistake (a wrong
                    // or missing `NUBE_TABLE_*`), not the record's: the batch fails, to
                    // be retried and, failing, kept in the dead-letter queue.
                    if event.collection != watched {
                        return Err(HandlerError::mismatch(format!(
                            "the stream's table is collection {:?}, which this function does not watch; check the NUBE_TABLE_* setting that names its table",
                            event.collection
                        )));
                    }
                    let ctx = self.context(request_id, deadline);
                    let what = format!("{}/{} ({})", event.collection, event.id, event.event_id);
                    match self.app.invoke(Event::DocumentCreated(event), ctx).await {
                        Ok(()) => continue,
                        Err(e) if !e.is_retryable() => {
                            let error = HandlerError::from_nube(&e);
                            skip(&what, sequence_number.as_deref(), &error.error_message);
                            continue;
                        }
                        Err(e) => (what, HandlerError::from_nube(&e)),
                    }
                }
                StreamRecord::Skipped { event_name, .. } => {
                    tracing::debug!(
                        event_name,
                        sequence_number,
                        "stream record skipped: not an INSERT"
                    );
                    continue;
                }
                StreamRecord::Invalid {
                    event_id, error, ..
                } => {
                    let what = format!(
                        "record {}",
                        event_id.as_deref().unwrap_or("without eventID")
                    );
                    skip(&what, sequence_number.as_deref(), &error.to_string());
                    continue;
                }
            };
            let (what, error) = failure;
            let Some(sequence_number) = sequence_number else {
                return Err(HandlerError::new(
                    error.error_type,
                    format!(
                        "{what} failed and has no SequenceNumber to report as a batch item failure, so the whole batch fails: {}",
                        error.error_message
                    ),
                ));
            };
            tracing::error!(
                sequence_number,
                error.kind = error.error_type,
                error = error.error_message,
                "{what} failed; the stream resumes from this record"
            );
            let mut response = DynamoDbEventResponse::default();
            let mut item = DynamoDbBatchItemFailure::default();
            item.item_identifier = Some(sequence_number);
            response.batch_item_failures.push(item);
            return Ok(batch_response(&response));
        }
        Ok(batch_response(&DynamoDbEventResponse::default()))
    }
}

/// `work`, with a panic anywhere in it made the invocation's error.
async fn guarded<T>(
    work: impl Future<Output = Result<T, HandlerError>>,
) -> Result<T, HandlerError> {
    match AssertUnwindSafe(work).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => Err(HandlerError::new(
            HandlerError::RUNTIME,
            format!(
                "the nube-aws runtime panicked: {}",
                nube::panic_message(&*panic)
            ),
        )),
    }
}

fn batch_response(response: &DynamoDbEventResponse) -> Value {
    serde_json::to_value(response).expect("a batch response serialises")
}

/// Handles one Lambda payload for `app`'s function `function` without a Runtime API:
/// what [`run`] does per invocation, for tests and other hosts. `request_id` is the
/// invocation id; `deadline` the instant the function must be done by.
pub async fn handle(
    app: &App,
    function: &str,
    resources: &Resources,
    payload: Value,
    request_id: &str,
    deadline: Option<Instant>,
) -> Result<Value, HandlerError> {
    let dispatcher = Dispatcher::new(
        Arc::new(app.clone()),
        function,
        resources.clone(),
        ResourceNames::from_env(app),
    )
    .map_err(|e| HandlerError::new(HandlerError::RUNTIME, e.0))?;
    let mut lambda = lambda_runtime::Context::default();
    lambda.request_id = request_id.to_owned();
    dispatcher.handle(payload, lambda, deadline).await
}

#[cfg(feature = "dynamodb")]
async fn document_store(
    app: &App,
    _names: &ResourceNames,
) -> Result<Arc<dyn DocumentStore>, InitError> {
    if app.collections().next().is_none() {
        return Ok(Arc::new(NoDocumentStore::new("nube-aws", "dynamodb")));
    }
    let store = crate::dynamodb::DynamoDbStore::from_env()
        .await
        .map_err(|e| InitError(format!("cannot set up the DynamoDB store: {e}")))?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "dynamodb"))]
async fn document_store(
    app: &App,
    _names: &ResourceNames,
) -> Result<Arc<dyn DocumentStore>, InitError> {
    let collections: Vec<&str> = app.collections().collect();
    if collections.is_empty() {
        return Ok(Arc::new(NoDocumentStore::new("nube-aws", "dynamodb")));
    }
    Err(InitError(format!(
        "app {} declares collections ({}), and this build of nube-aws has no document store: enable the \"dynamodb\" feature of nube-aws",
        app.name(),
        collections.join(", ")
    )))
}

#[cfg(feature = "s3")]
async fn add_buckets(
    app: &App,
    mut resources: Resources,
    _names: &ResourceNames,
) -> Result<Resources, InitError> {
    for logical in app.buckets() {
        let bucket = crate::s3::bucket(logical).map_err(|e| InitError(e.to_string()))?;
        resources = resources.with_bucket(bucket);
    }
    Ok(resources)
}

#[cfg(not(feature = "s3"))]
async fn add_buckets(
    app: &App,
    resources: Resources,
    _names: &ResourceNames,
) -> Result<Resources, InitError> {
    let buckets: Vec<&str> = app.buckets().collect();
    if buckets.is_empty() {
        return Ok(resources);
    }
    Err(InitError(format!(
        "app {} declares buckets ({}), and this build of nube-aws has no blob store: enable the \"s3\" feature of nube-aws",
        app.name(),
        buckets.join(", ")
    )))
}

/// The app's stores on AWS: DynamoDB tables for its collections (feature
/// `dynamodb`) and S3 buckets for its buckets (feature `s3`), named by
/// `NUBE_TABLE_*` / `NUBE_BUCKET_*` ([`crate::names`]). An app that declares
/// collections or buckets in a build without the matching feature fails here,
/// naming the feature; an app without collections gets a [`NoDocumentStore`].
pub async fn resources_from_env(app: &App) -> Result<Resources, InitError> {
    let names = ResourceNames::from_env(app);
    let documents = document_store(app, &names).await?;
    let resources = Resources::new(documents).with_declarations(app, false);
    add_buckets(app, resources, &names).await
}

/// Runs `app` on Lambda: the `main` of an app's `bootstrap`.
///
/// Prints the manifest instead when asked (`--nube-manifest`, `NUBE_MANIFEST=1`);
/// otherwise sets up logging ([`crate::logging`], panics included), checks the app, picks the
/// function named by `_HANDLER`, builds its resources ([`resources_from_env`]) and
/// serves invocations until the sandbox ends. Init failures are logged with what to
/// change, reported to the Runtime API (`/runtime/init/error`, errorType
/// `nube.InitError`, so that the invocation that started the sandbox answers with
/// the same message) and end the process with a failure code.
///
/// ```no_run
/// # fn app() -> nube::App { unimplemented!() }
/// #[tokio::main]
/// async fn main() -> std::process::ExitCode {
///     nube_aws::run(app()).await
/// }
/// ```
pub async fn run(app: App) -> ExitCode {
    if nube::manifest::print_if_requested(&app) {
        return ExitCode::SUCCESS;
    }
    crate::logging::init();
    crate::logging::log_panics();
    // A panic while starting (lambda_runtime's own, for a missing
    // `AWS_LAMBDA_FUNCTION_*` variable) is an init failure like the others.
    let started = AssertUnwindSafe(start(app)).catch_unwind().await;
    let started = started.unwrap_or_else(|panic| {
        Err(InitError(format!(
            "the runtime panicked while starting: {}",
            nube::panic_message(&*panic)
        )))
    });
    match started {
        Ok(serve) => match serve.await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "the Lambda runtime stopped");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            tracing::error!(error = %e, "nube-aws could not start");
            report_init_error(&e).await;
            ExitCode::FAILURE
        }
    }
}

/// How long telling Lambda why init failed may take before the bootstrap exits anyway.
const INIT_ERROR_PATIENCE: Duration = Duration::from_secs(2);

/// Tells the Runtime API why init failed (`POST /runtime/init/error`, errorType
/// [`HandlerError::INIT`]), so that the invocation waiting on this sandbox answers
/// with nube's message instead of Lambda's bare `Runtime.ExitError`. Best effort:
/// without `AWS_LAMBDA_RUNTIME_API`, or when the call fails, the reason is only in
/// the log line already written.
async fn report_init_error(error: &InitError) {
    let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API") else {
        return;
    };
    let outcome = tokio::time::timeout(INIT_ERROR_PATIENCE, post_init_error(&api, error)).await;
    let failure = match outcome {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e,
        Err(_) => format!("no answer within {INIT_ERROR_PATIENCE:?}"),
    };
    tracing::warn!(
        runtime_api = api,
        reason = failure,
        "could not report the init error to the Lambda Runtime API; Lambda will report Runtime.ExitError"
    );
}

async fn post_init_error(api: &str, error: &InitError) -> Result<(), String> {
    // `host:port` as Lambda sets it, or a URL; the client supplies the `http` scheme.
    let base: http::Uri = api
        .parse()
        .ok()
        .filter(|u: &http::Uri| u.authority().is_some())
        .ok_or_else(|| format!("AWS_LAMBDA_RUNTIME_API {api:?} is not a host:port or a URL"))?;
    let diagnostic =
        lambda_runtime::Diagnostic::from(HandlerError::new(HandlerError::INIT, error.to_string()));
    let body = serde_json::to_vec(&diagnostic).map_err(|e| e.to_string())?;
    let request = lambda_runtime_api_client::build_request()
        .method(http::Method::POST)
        .uri("/2018-06-01/runtime/init/error")
        .header("lambda-runtime-function-error-type", HandlerError::INIT)
        .header(
            http::header::CONTENT_TYPE,
            "application/vnd.aws.lambda.error+json",
        )
        .body(body.into())
        .map_err(|e| e.to_string())?;
    let client = lambda_runtime_api_client::PooledClient::builder()
        .with_endpoint(base)
        .build();
    let response = client.call(request).await.map_err(|e| e.to_string())?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("the Runtime API answered {}", response.status()))
    }
}

/// Everything up to serving: the runtime, ready to poll for invocations.
async fn start(
    app: App,
) -> Result<impl Future<Output = Result<(), lambda_runtime::Error>>, InitError> {
    app.validate().map_err(|e| InitError(e.to_string()))?;
    let handler = std::env::var("_HANDLER").ok();
    let function = select_function(&app, handler.as_deref())?.name().to_owned();
    let resources = resources_from_env(&app).await?;
    let names = ResourceNames::from_env(&app);
    let dispatcher = Arc::new(Dispatcher::new(Arc::new(app), &function, resources, names)?);
    let service = lambda_runtime::service_fn(move |event: LambdaEvent<RawPayload>| {
        let dispatcher = dispatcher.clone();
        async move { dispatcher.handle_event(event).await }
    });
    // As `lambda_runtime::run`, with the payload handed over as it came.
    let runtime = lambda_runtime::Runtime::new(service)
        .layer(lambda_runtime::layers::TracingLayer::new())
        .layer(PayloadLayer);
    tracing::info!(function, "nube-aws is serving");
    Ok(runtime.run())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_keep_a_margin() {
        assert_eq!(deadline_from_epoch_ms(0), None);
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let left = deadline_from_epoch_ms(now_ms + 1_000)
            .unwrap()
            .saturating_duration_since(Instant::now());
        assert!(left <= Duration::from_millis(900), "{left:?}");
        assert!(left >= Duration::from_millis(700), "{left:?}");
        let past = deadline_from_epoch_ms(now_ms - 5_000).unwrap();
        assert!(past <= Instant::now());
        // cargo-lambda's emulator sends a duration (600000), not a time.
        assert_eq!(deadline_from_epoch_ms(600_000), None);
        assert_eq!(deadline_from_epoch_ms(MIN_EPOCH_DEADLINE_MS - 1), None);
    }
}
