//! The custom-handler server: [`run`] (an app's `main` on Azure), [`Runtime`] (the
//! axum service the host talks to, for tests and other hosts) and
//! [`resources_from_env`].
//!
//! | request | what happens |
//! |---|---|
//! | any method on `/<routePrefix>/...` | a forwarded HTTP request: the prefix is stripped and the app's Router serves it ([`crate::http`]) |
//! | `POST /<FunctionName>` | an invocation ([`crate::payload`]): decoded for the function's trigger and run; `200` with `{Outputs, Logs, ReturnValue}` |
//! | anything else | `404`, saying what the runtime serves |
//!
//! Invocation answers: a malformed payload, or one of another trigger than the
//! function's, gets `400` and a message saying what was expected and what came; a
//! failed function `400` (client-side errors) or `500` (the rest: errors, panics,
//! deadline overruns), so that the host's retry policy applies. Every answer carries
//! the invocation's log lines in `Logs` ([`crate::logging`]; the host reads them from
//! successful answers only, and every line also goes to stdout), and
//! `Metadata.RetryContext` becomes the context's attempt (`RetryCount + 1`; the host
//! sends it only under a retry policy: timers and Cosmos DB have one, while a blob
//! trigger cannot, so a blob's redeliveries, up to `poisonBlobThreshold`, all say
//! attempt 1). A panic
//! anywhere fails only its invocation; the next one is served as usual.
//!
//! **Cosmos DB batches.** The host sends a failed batch again whatever the status,
//! then moves past all of it. So a document that fails in a way no retry mends (a
//! client-side error: `400`-class kinds but `PreconditionFailed`) is logged as an error
//! and skipped, and the rest of the batch runs; any other failure fails the batch, to
//! be sent again whole (documents that ran run again: delivery is at least once). The
//! batch as a whole has the function's timeout, which the host's `functionTimeout`
//! covers: a batch that runs out fails before the host would restart the worker.
//!
//! `POST /<name>` where `<name>` is a function's name is an invocation, checked first:
//! when that path is also a forwarded path (a function named like the route prefix,
//! `api`, or an empty prefix), a body that is not `{Data, Metadata}` is forwarded.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use http::StatusCode;
use nube::store::{DocumentStore, NoDocumentStore};
use nube::{
    App, Context, Error, ErrorKind, Event, Function, FunctionScope, Provider, Resources, Trigger,
};
use serde_json::{Map, Value};
use tower::ServiceExt;

use crate::document::ChangedDocument;
use crate::error::DecodeError;
use crate::logging::Capture;
use crate::payload::{InvocationRequest, InvocationResponse};

/// The largest invocation payload read (blob contents arrive inline, as base64).
pub const MAX_INVOCATION_BYTES: usize = 512 * 1024 * 1024;

/// The environment variable holding the port to listen on.
pub const PORT_ENV: &str = "FUNCTIONS_CUSTOMHANDLER_PORT";

/// The legacy name of [`PORT_ENV`] (the `httpWorker` section), read when it is unset.
pub const LEGACY_PORT_ENV: &str = "FUNCTIONS_HTTPWORKER_PORT";

/// The environment variable naming the function app's root (where host.json is).
pub const APP_ROOT_ENV: &str = "FUNCTIONS_APP_ROOT_PATH";

/// Why the runtime could not start; the message says what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitError(pub String);

impl std::fmt::Display for InitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InitError {}

/// What an invocation payload is, told by its shape (for the messages of refusals).
pub fn describe(request: &InvocationRequest) -> &'static str {
    if request.data.values().any(crate::http::is_http_request) {
        "an httpTrigger invocation (Data.req)"
    } else if request.data.values().any(crate::timer::is_timer_info) {
        "a timerTrigger invocation"
    } else if crate::blob::is_blob(request) {
        "a blobTrigger invocation"
    } else if crate::document::is_document_batch(request) {
        "a cosmosDBTrigger invocation"
    } else if request.meta("DequeueCount").is_some() || request.meta("PopReceipt").is_some() {
        "a queueTrigger invocation"
    } else {
        "an invocation of a trigger nube does not take"
    }
}

fn takes(trigger: &Trigger) -> &'static str {
    match trigger {
        Trigger::Http(_) => "httpTrigger invocations",
        Trigger::Timer(_) => "timerTrigger invocations",
        Trigger::BlobCreated { .. } => "blobTrigger invocations",
        Trigger::DocumentCreated { .. } => "cosmosDBTrigger invocations",
    }
}

/// A failed invocation: the status it answers and the message logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `400` or `500`.
    pub status: StatusCode,
    /// What went wrong.
    pub message: String,
}

impl Failure {
    fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn from_nube(error: &Error) -> Self {
        Self {
            status: if error.kind().is_client_error() {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            },
            message: format!("{}: {}", error.kind().code(), error.operator_message()),
        }
    }
}

impl From<DecodeError> for Failure {
    fn from(e: DecodeError) -> Self {
        Self::bad_request(e.0)
    }
}

/// The runtime: the app, its stores, and the Routers its HTTP functions are served by.
pub struct Runtime {
    app: Arc<App>,
    /// Each function's scope, shared by its invocations' Contexts.
    scopes: HashMap<String, Arc<FunctionScope>>,
    route_prefix: String,
    all: Router,
    each: HashMap<String, Router>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("app", &self.app.name())
            .field("route_prefix", &self.route_prefix)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// The runtime of `app` with `resources`, forwarded HTTP paths under
    /// `route_prefix` (host.json's `routePrefix`, `api` by default, without slashes).
    pub fn new(app: App, resources: Resources, route_prefix: &str) -> Self {
        let all = app.http_service(Provider::Azure, resources.clone());
        let each = app
            .functions()
            .iter()
            .filter(|f| matches!(f.trigger(), Trigger::Http(_)))
            .map(|f| {
                let router =
                    app.http_service_for(Some(f.name()), Provider::Azure, resources.clone());
                (f.name().to_owned(), router)
            })
            .collect();
        let scopes = app
            .functions()
            .iter()
            .map(|f| {
                let scope = FunctionScope::new(f.name(), Provider::Azure, resources.clone());
                (f.name().to_owned(), Arc::new(scope))
            })
            .collect();
        Self {
            app: Arc::new(app),
            scopes,
            route_prefix: route_prefix.trim_matches('/').to_owned(),
            all,
            each,
        }
    }

    /// The axum service the host calls, as a Router.
    pub fn into_router(self) -> Router {
        Router::new().fallback_service(self.into_service())
    }

    /// The service the host calls: what [`serve`] serves.
    pub fn into_service(self) -> RuntimeService {
        RuntimeService(Arc::new(self))
    }

    async fn forward(&self, req: Request, path: String) -> Response {
        let (mut parts, body) = req.into_parts();
        let uri = match parts.uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        match uri.parse() {
            Ok(u) => parts.uri = u,
            Err(_) => {
                return Error::bad_request("the request path is not a valid URI").into_response();
            }
        }
        if let Some(id) = invocation_id_header(&parts.headers) {
            parts.extensions.insert(nube::http::InvocationId(id));
        }
        let req = Request::from_parts(parts, body);
        match AssertUnwindSafe(self.all.clone().oneshot(req))
            .catch_unwind()
            .await
        {
            Ok(Ok(response)) => response,
            Ok(Err(infallible)) => match infallible {},
            Err(panic) => Error::new(
                ErrorKind::Panic,
                format!(
                    "the HTTP service panicked: {}",
                    nube::panic_message(&*panic)
                ),
            )
            .into_response(),
        }
    }

    /// Runs one invocation of `function` with the payload `body`; `invocation_id` is
    /// the host's. Returns the status and the answer.
    pub async fn invoke(
        &self,
        function: &str,
        body: &[u8],
        invocation_id: &str,
    ) -> (StatusCode, InvocationResponse) {
        let capture = Capture::start();
        let run =
            AssertUnwindSafe(self.dispatch(function, body, invocation_id, &capture)).catch_unwind();
        let result = match run.await {
            Ok(result) => result,
            Err(panic) => Err(Failure {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: format!(
                    "the nube-azure runtime panicked: {}",
                    nube::panic_message(&*panic)
                ),
            }),
        };
        let (status, outputs) = match result {
            Ok(outputs) => (StatusCode::OK, outputs),
            Err(failure) => {
                tracing::error!(
                    function,
                    invocation_id,
                    status = failure.status.as_u16(),
                    error = %failure.message,
                    "invocation failed"
                );
                capture.push(format!("ERROR invocation failed: {}", failure.message));
                (failure.status, Map::new())
            }
        };
        let response = InvocationResponse {
            outputs,
            logs: capture.finish(),
            return_value: Value::Null,
        };
        (status, response)
    }

    /// The context of an invocation, until `deadline` when there is one (else the
    /// function's timeout), its lines captured by `capture`.
    fn context(
        &self,
        function: &Function,
        invocation_id: &str,
        attempt: u32,
        deadline: Option<Instant>,
        capture: &Capture,
    ) -> Context {
        // Every function of the app has its scope, made in `new`.
        let scope = self.scopes[function.name()].clone();
        let mut builder = Context::builder_in(scope)
            .invocation_id(invocation_id)
            .attempt(attempt);
        if let Some(deadline) = deadline {
            builder = builder.deadline(deadline);
        }
        let ctx = builder.build();
        capture.attach(ctx.span());
        ctx
    }

    async fn dispatch(
        &self,
        name: &str,
        body: &[u8],
        invocation_id: &str,
        capture: &Capture,
    ) -> Result<Map<String, Value>, Failure> {
        let function = crate::names::nube_function(&self.app, name).ok_or_else(|| {
            Failure::bad_request(format!("app {} has no function {name:?}", self.app.name()))
        })?;
        // The payload is not copied: a timer or blob event gets it back whole once
        // decoded (a Cosmos DB event carries only its own item).
        let (request, remainder) = InvocationRequest::parse_parts(body)?;
        let mismatch = |request: &InvocationRequest| {
            Failure::bad_request(format!(
                "function {:?} takes {}, and the payload is {}; check its function.json",
                function.name(),
                takes(function.trigger()),
                describe(request)
            ))
        };
        let attempt = request.attempt();
        match function.trigger() {
            Trigger::Http(_) => {
                let Some((_, req)) = request
                    .data
                    .iter()
                    .find(|(_, v)| crate::http::is_http_request(v))
                else {
                    return Err(mismatch(&request));
                };
                let mut http_request = crate::http::request_from_data(req, &self.route_prefix)?;
                http_request
                    .extensions_mut()
                    .insert(nube::http::InvocationId(invocation_id.to_owned()));
                let router = self.each[function.name()].clone();
                // The Router opens the invocation's span.
                let _awaiting = capture.attach_by_id(invocation_id);
                let response = match router.oneshot(http_request).await {
                    Ok(r) => r,
                    Err(infallible) => match infallible {},
                };
                let mut outputs = Map::new();
                outputs.insert("res".into(), crate::http::response_output(response).await);
                Ok(outputs)
            }
            Trigger::Timer(schedule) => {
                let Some(timer) = crate::timer::timer_info(&request) else {
                    return Err(mismatch(&request));
                };
                let tick = crate::timer::tick(
                    request,
                    remainder,
                    &timer,
                    function.name(),
                    schedule.to_string(),
                );
                let ctx = self.context(function, invocation_id, attempt, None, capture);
                self.app
                    .invoke(Event::Timer(tick), ctx)
                    .await
                    .map_err(|e| Failure::from_nube(&e))?;
                Ok(Map::new())
            }
            Trigger::BlobCreated { bucket, prefix } => {
                if !crate::blob::is_blob(&request) {
                    return Err(mismatch(&request));
                }
                let blob = crate::blob::decode(request, remainder, bucket, prefix)?;
                let ctx = self.context(function, invocation_id, attempt, None, capture);
                self.app
                    .invoke(Event::BlobCreated(blob), ctx)
                    .await
                    .map_err(|e| Failure::from_nube(&e))?;
                Ok(Map::new())
            }
            Trigger::DocumentCreated { collection } => {
                // Read once. A batch with no document at all is another trigger's
                // payload; a bad item among documents is skipped below, alone.
                let documents = match crate::document::decode(&request, collection) {
                    Ok(documents) if documents.is_empty() => return Ok(Map::new()),
                    Ok(documents)
                        if !documents
                            .iter()
                            .all(|d| matches!(d, ChangedDocument::Invalid { .. })) =>
                    {
                        documents
                    }
                    _ => return Err(mismatch(&request)),
                };
                let total = documents.len();
                // One deadline for the whole batch: the host's functionTimeout is the
                // function's timeout (and a second), and a host that times out restarts
                // the worker, with every invocation in flight.
                let timeout = self.app.timeout_of(function);
                let deadline = Instant::now() + timeout;
                // A document that fails in a way a retry cannot mend is logged and
                // skipped: the host sends a failed batch again whatever the status, and
                // after its retries moves past the whole batch, documents after it too.
                let skip = |what: &str, why: &str| {
                    let line = format!(
                        "document {what} skipped: {why}; sending the batch again would fail the same way"
                    );
                    tracing::error!(function = name, invocation_id, "{line}");
                    capture.push(format!("ERROR {line}"));
                };
                for (index, document) in documents.into_iter().enumerate() {
                    match document {
                        ChangedDocument::Created(event) => {
                            let what = format!("{}/{}", event.collection, event.id);
                            if Instant::now() >= deadline {
                                return Err(Failure {
                                    status: StatusCode::INTERNAL_SERVER_ERROR,
                                    message: format!(
                                        "the batch ran out of the function's {timeout:?} after {index} of {total} documents, so it fails (the host sends it again)"
                                    ),
                                });
                            }
                            let ctx = self.context(
                                function,
                                invocation_id,
                                attempt,
                                Some(deadline),
                                capture,
                            );
                            match self.app.invoke(Event::DocumentCreated(event), ctx).await {
                                Ok(()) => {}
                                Err(e) if !e.is_retryable() => {
                                    skip(&what, &Failure::from_nube(&e).message);
                                }
                                Err(e) => {
                                    let mut failure = Failure::from_nube(&e);
                                    failure.message = format!(
                                        "document {what} (item {index} of {total}) failed, so the batch fails: {}",
                                        failure.message
                                    );
                                    return Err(failure);
                                }
                            }
                        }
                        ChangedDocument::Updated { id, version } => {
                            tracing::debug!(
                                id,
                                %version,
                                "document skipped: an update (_nube_version is not _nube_created)"
                            );
                        }
                        ChangedDocument::Invalid { index, error } => {
                            skip(&format!("at item {index} of {total}"), &error.to_string());
                        }
                    }
                }
                Ok(Map::new())
            }
        }
    }
}

fn invocation_id_header(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get(&crate::http::INVOCATION_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
}

/// A [`Runtime`] as a `tower::Service` (cheap to clone): every request the host sends
/// goes through it.
#[derive(Clone)]
pub struct RuntimeService(Arc<Runtime>);

impl std::fmt::Debug for RuntimeService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RuntimeService").field(&self.0).finish()
    }
}

impl tower::Service<Request> for RuntimeService {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let runtime = self.0.clone();
        Box::pin(async move { Ok(entry(runtime, req).await) })
    }
}

async fn entry(runtime: Arc<Runtime>, req: Request) -> Response {
    let path = req.uri().path();
    let name = path.trim_start_matches('/');
    let is_invocation = req.method() == http::Method::POST
        && !name.is_empty()
        && !name.contains('/')
        && crate::names::nube_function(&runtime.app, name).is_some();
    let forwarded = |path: &str| {
        if runtime.route_prefix.is_empty() {
            None
        } else {
            crate::http::strip_route_prefix(path, &runtime.route_prefix)
        }
    };
    if !is_invocation {
        let path = path.to_owned();
        return match forwarded(&path) {
            Some(rest) => runtime.forward(req, rest).await,
            None if runtime.route_prefix.is_empty() => runtime.forward(req, path).await,
            None => not_served(&runtime),
        };
    }
    let invocation_id =
        invocation_id_header(req.headers()).unwrap_or_else(nube::context::new_invocation_id);
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_INVOCATION_BYTES).await {
        Ok(b) => b,
        Err(e) => {
            return invocation_answer(
                StatusCode::BAD_REQUEST,
                &InvocationResponse {
                    logs: vec![format!(
                        "ERROR the invocation request could not be read: {e}"
                    )],
                    ..Default::default()
                },
            );
        }
    };
    let path = parts.uri.path();
    let name = path.trim_start_matches('/');
    // `POST /api` is both an invocation of a function named like the route prefix and
    // a forwarded request to the prefix's root: only the former is {Data, Metadata}.
    let forwarded = forwarded(path);
    let ambiguous = forwarded.is_some() || runtime.route_prefix.is_empty();
    if ambiguous && InvocationRequest::parse(&body).is_err() {
        let rest = forwarded.unwrap_or_else(|| path.to_owned());
        return runtime
            .forward(Request::from_parts(parts, Body::from(body)), rest)
            .await;
    }
    let (status, response) = runtime.invoke(name, &body, &invocation_id).await;
    invocation_answer(status, &response)
}

fn not_served(runtime: &Runtime) -> Response {
    let names: Vec<&str> = runtime.app.functions().iter().map(Function::name).collect();
    Error::not_found(format!(
        "this custom handler serves POST /<function> invocations ({}) and HTTP requests under /{}/",
        names.join(", "),
        runtime.route_prefix
    ))
    .into_response()
}

/// What most invocations answer: no outputs, no log lines, no return value.
const EMPTY_ANSWER: &[u8] = br#"{"Outputs":{},"Logs":[],"ReturnValue":null}"#;

fn invocation_answer(status: StatusCode, response: &InvocationResponse) -> Response {
    let body = if response.outputs.is_empty()
        && response.logs.is_empty()
        && response.return_value.is_null()
    {
        Body::from(EMPTY_ANSWER)
    } else {
        Body::from(serde_json::to_vec(response).unwrap_or_else(|_| b"{}".to_vec()))
    };
    let mut answer = Response::new(body);
    *answer.status_mut() = status;
    answer.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    answer
}

#[cfg(feature = "cosmos")]
async fn document_store(app: &App) -> Result<Arc<dyn DocumentStore>, InitError> {
    if app.collections().next().is_none() {
        return Ok(Arc::new(NoDocumentStore::new("nube-azure", "cosmos")));
    }
    let store = crate::cosmos::CosmosStore::from_env()
        .await
        .map_err(|e| InitError(e.to_string()))?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "cosmos"))]
async fn document_store(app: &App) -> Result<Arc<dyn DocumentStore>, InitError> {
    let collections: Vec<&str> = app.collections().collect();
    if collections.is_empty() {
        return Ok(Arc::new(NoDocumentStore::new("nube-azure", "cosmos")));
    }
    Err(InitError(format!(
        "app {} declares collections ({}), and this build of nube-azure has no document store: enable its \"cosmos\" feature",
        app.name(),
        collections.join(", ")
    )))
}

#[cfg(feature = "blob")]
fn add_buckets(app: &App, mut resources: Resources) -> Result<Resources, InitError> {
    for logical in app.buckets() {
        let bucket = crate::blob_store::bucket(logical).map_err(|e| InitError(e.to_string()))?;
        resources = resources.with_bucket(bucket);
    }
    Ok(resources)
}

#[cfg(not(feature = "blob"))]
fn add_buckets(app: &App, resources: Resources) -> Result<Resources, InitError> {
    let buckets: Vec<&str> = app.buckets().collect();
    if buckets.is_empty() {
        return Ok(resources);
    }
    Err(InitError(format!(
        "app {} declares buckets ({}), and this build of nube-azure has no blob store: enable its \"blob\" feature",
        app.name(),
        buckets.join(", ")
    )))
}

/// The app's stores on Azure: Cosmos DB containers for its collections (feature
/// `cosmos`, [`crate::cosmos::CosmosStore::from_env`]: `NUBE_COSMOS`,
/// `NUBE_COSMOS_DATABASE`, `NUBE_COLLECTION_*`) and blob containers for its buckets
/// (feature `blob`, [`crate::blob_store::bucket`]: `AzureWebJobsStorage`,
/// `NUBE_BUCKET_*`). An app that declares collections or buckets in a build without
/// the matching feature fails here, naming the feature; an app without collections
/// gets a [`NoDocumentStore`]. A missing container shows on first use, naming its
/// setting.
pub async fn resources_from_env(app: &App) -> Result<Resources, InitError> {
    let documents = document_store(app).await?;
    let resources = Resources::new(documents).with_declarations(app, false);
    add_buckets(app, resources)
}

/// The route prefix of the function app's host.json (in `FUNCTIONS_APP_ROOT_PATH`, else
/// the working directory); `api` when there is none or it does not say.
pub fn route_prefix_from_env() -> String {
    let root = std::env::var(APP_ROOT_ENV).unwrap_or_else(|_| ".".into());
    let path = std::path::Path::new(&root).join("host.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => match serde_json::from_str::<Value>(&text) {
            Ok(host) => crate::http::route_prefix(&host),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "host.json is not JSON; using the route prefix \"api\"");
                crate::http::DEFAULT_ROUTE_PREFIX.to_owned()
            }
        },
        Err(_) => crate::http::DEFAULT_ROUTE_PREFIX.to_owned(),
    }
}

/// The port the host asks for: [`PORT_ENV`], else [`LEGACY_PORT_ENV`].
pub fn port_from_env() -> Result<u16, InitError> {
    port_from_lookup(|var| std::env::var(var).ok())
}

/// [`port_from_env`], reading variables through `lookup`.
fn port_from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<u16, InitError> {
    let (var, value) = [PORT_ENV, LEGACY_PORT_ENV]
        .iter()
        .find_map(|v| lookup(v).map(|value| (*v, value)))
        .ok_or_else(|| {
            InitError(format!(
                "{PORT_ENV} is not set: nube-azure runs under the Azure Functions host, which sets it (run `func start` in the function app folder)"
            ))
        })?;
    value
        .trim()
        .parse()
        .map_err(|_| InitError(format!("{var}={value:?} is not a port number")))
}

/// Serves `runtime` on `listener` until the process is asked to stop.
pub async fn serve(runtime: Runtime, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    axum::serve(
        listener,
        axum::ServiceExt::<Request>::into_make_service(runtime.into_service()),
    )
    .with_graceful_shutdown(shutdown())
    .await
}

async fn shutdown() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs `app` as an Azure Functions custom handler: the `main` of the app's executable.
///
/// Prints the manifest instead when asked (`--nube-manifest`, `NUBE_MANIFEST=1`);
/// otherwise sets up logging ([`crate::logging`]), checks the app, builds its stores
/// ([`resources_from_env`]), reads the route prefix from host.json and serves on
/// `127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT` (or the legacy
/// `FUNCTIONS_HTTPWORKER_PORT`) until stopped. Startup problems are logged with what to
/// change and end the process with a failure code.
///
/// ```no_run
/// # fn app() -> nube::App { unimplemented!() }
/// #[tokio::main]
/// async fn main() -> std::process::ExitCode {
///     nube_azure::run(app()).await
/// }
/// ```
pub async fn run(app: App) -> ExitCode {
    if nube::manifest::print_if_requested(&app) {
        return ExitCode::SUCCESS;
    }
    crate::logging::init();
    crate::logging::log_panics();
    match start(app).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "nube-azure stopped");
            ExitCode::FAILURE
        }
    }
}

/// How long the start may spend connecting to the app's stores.
const STORES_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(40);

async fn start(app: App) -> Result<(), InitError> {
    app.validate().map_err(|e| InitError(e.to_string()))?;
    for f in app.functions() {
        crate::names::azure_function_name(f.name()).map_err(InitError)?;
    }
    let port = port_from_env()?;
    // The host gives a custom handler 60 s to listen; a store that cannot be reached
    // must fail the start with its reason before then, not hang it.
    let resources = tokio::time::timeout(STORES_TIMEOUT, resources_from_env(&app))
        .await
        .map_err(|_| {
            InitError(format!(
                "connecting to the app's stores took over {} s (the Functions host gives a custom handler 60 s to start): \
                 check NUBE_COSMOS and that the Cosmos DB account is reachable from the function app",
                STORES_TIMEOUT.as_secs()
            ))
        })??;
    let prefix = route_prefix_from_env();
    crate::names::check_invocation_paths(
        app.functions()
            .iter()
            .map(|f| (f.name(), matches!(f.trigger(), Trigger::Http(_)))),
        &prefix,
    )
    .map_err(InitError)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| InitError(format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
    tracing::info!(
        port,
        route_prefix = prefix,
        app = app.name(),
        "nube-azure is serving"
    );
    serve(Runtime::new(app, resources, &prefix), listener)
        .await
        .map_err(|e| InitError(format!("the server failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_is_the_custom_handler_port_else_the_legacy_one() {
        let port = |vars: &[(&str, &str)]| {
            let vars: Vec<(String, String)> = vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            port_from_lookup(|var| vars.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone()))
        };
        assert_eq!(port(&[(PORT_ENV, "7071")]), Ok(7071));
        assert_eq!(port(&[(LEGACY_PORT_ENV, " 7072 ")]), Ok(7072));
        assert_eq!(
            port(&[(LEGACY_PORT_ENV, "7072"), (PORT_ENV, "7071")]),
            Ok(7071)
        );
        let missing = port(&[]).unwrap_err().0;
        assert!(
            missing.contains(PORT_ENV) && missing.contains("func start"),
            "{missing}"
        );
        let bad = port(&[(LEGACY_PORT_ENV, "http")]).unwrap_err().0;
        assert!(
            bad.contains(LEGACY_PORT_ENV) && bad.contains("\"http\""),
            "{bad}"
        );
    }

    #[test]
    fn the_empty_answer_is_what_serde_writes_for_an_empty_response() {
        let written = serde_json::to_vec(&InvocationResponse::default()).unwrap();
        assert_eq!(written, EMPTY_ANSWER);
    }

    #[tokio::test]
    async fn resources_name_the_missing_feature_or_setting() {
        let app = App::new("t").collection("orders");
        let e = resources_from_env(&app).await.unwrap_err().0;
        if cfg!(feature = "cosmos") {
            assert!(e.contains("NUBE_COSMOS"), "{e}");
        } else {
            assert!(
                e.contains("\"cosmos\" feature") && e.contains("orders"),
                "{e}"
            );
        }
        let app = App::new("t").bucket("uploads");
        let e = resources_from_env(&app).await.unwrap_err().0;
        if cfg!(feature = "blob") {
            assert!(e.contains("AzureWebJobsStorage"), "{e}");
        } else {
            assert!(
                e.contains("\"blob\" feature") && e.contains("uploads"),
                "{e}"
            );
        }
        let resources = resources_from_env(&App::new("t")).await.unwrap();
        assert!(matches!(
            resources.documents().get("x", "y").await,
            Err(nube::store::StoreError::Backend {
                backend: "none",
                ..
            })
        ));
    }
}
