//! The HTTP server: the Functions Framework contract on Cloud Run / Cloud Functions
//! (gen2), [`run`] (an app binary's `main`), [`Server`] (the axum service, for tests
//! with `tower::ServiceExt::oneshot`) and [`resources_from_env`].
//!
//! **Environment.**
//!
//! | variable | use |
//! |---|---|
//! | `PORT` | the port to listen on, on `0.0.0.0` (default 8080) |
//! | `FUNCTION_TARGET` | when set, the one nube function this service runs; otherwise every function of the app is served |
//! | `NUBE_SERVE` | `http`: only the HTTP functions; `events`: only the event functions; `all` (the default): both. `cargo xtask package` splits an app whose HTTP is public into a public service (`http`) and a private one for its events (`events`), so that no caller outside IAM can post an event |
//! | `K_SERVICE`, `K_REVISION`, `K_CONFIGURATION` | set by Cloud Run; they label every log line ([`crate::logging`]) and reach every function as [`Revision`] (an extractor, and `ctx.platform::<Revision>()`) |
//! | `GOOGLE_CLOUD_PROJECT` (else `GCP_PROJECT`, `GCLOUD_PROJECT`) | makes log traces `projects/<p>/traces/<id>` |
//!
//! **Paths.** With `FUNCTION_TARGET` naming an HTTP function, its Router serves every
//! path; naming an event function, a `POST` to any path is its event. Without
//! `FUNCTION_TARGET`, the HTTP functions' routes are served as declared (one Router,
//! [`nube::App::http_service`]), and each event function takes `POST /{function}`
//! (`POST /nightly`, `POST /thumbnails`), ahead of any HTTP route with that path.
//!
//! **Event requests** are decoded by the function's trigger:
//!
//! | trigger | takes |
//! |---|---|
//! | timer | `google.cloud.scheduler.job.v1.executed`, `google.cloud.pubsub.topic.v1.messagePublished`, or a plain `POST` (Pub/Sub's push envelope, else Cloud Scheduler's HTTP target) ([`crate::scheduler`]) |
//! | blob created | `google.cloud.storage.object.v1.finalized` ([`crate::storage`]) |
//! | document created | `google.cloud.firestore.document.v1.created`, protobuf or JSON data ([`crate::firestore`]) |
//!
//! CloudEvents come in binary or structured mode, or as legacy background events
//! ([`crate::cloudevent`]). The function runs through [`nube::App::invoke`] (trigger
//! checks, timeout, panic capture).
//!
//! **Answers.** `200` (empty body) when the function succeeded, and for an object
//! created in the function's bucket outside its prefix (Eventarc filters by bucket
//! only), which is acknowledged without running the function. `400` with nube's
//! error body and a reason when the request is not a valid CloudEvent, is a CloudEvent
//! of a type the function does not take, or is an event the function refuses (wrong
//! bucket, prefix, collection, document shape). A failing function answers its
//! error's status with a safe message and nothing internal (panic and internal
//! errors `500`, a run past its timeout `504`, a dependency down `503`); the detail
//! goes to the log. Eventarc and Pub/Sub redeliver on failures. A body over the
//! app's `max_body_bytes` is `413`. A panic anywhere in the adapter fails that
//! request only (`500`), and the next request is served as usual.
//!
//! **Shutdown.** On SIGTERM (Cloud Run sends it before stopping an instance) or
//! Ctrl-C, the server stops accepting connections, lets the requests in flight
//! finish (axum's graceful shutdown), then [`run`] returns.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::process::ExitCode;
use std::sync::Arc;

use futures::FutureExt;
use http::{HeaderMap, Method, StatusCode};
use nube::axum::Router;
use nube::axum::extract::Request;
use nube::axum::response::{IntoResponse, Response};
use nube::{
    App, Context, Error, ErrorKind, Event, Function, Provider, Resources, TraceContext, Trigger,
};
use tracing::Instrument;

use crate::cloudevent::{self, Incoming};
use crate::error::DecodeError;
use crate::logging::{CLOUD_TRACE, TRACEPARENT, trace_from};
use crate::names::ResourceNames;
use crate::resources::resources_from_env;

/// Why the server could not start; the message says what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitError(pub String);

impl std::fmt::Display for InitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InitError {}

/// The port served when `PORT` is not set.
pub const DEFAULT_PORT: u16 = 8080;

/// The header the Functions Framework names an execution by; its value becomes the
/// invocation id when present.
pub const EXECUTION_ID_HEADER: &str = "function-execution-id";

/// What the server reads from the environment (the table in the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `PORT`.
    pub port: u16,
    /// `FUNCTION_TARGET`: the one function served, when set.
    pub function_target: Option<String>,
    /// `K_SERVICE`, `K_REVISION` and `K_CONFIGURATION`.
    pub revision: Revision,
    /// `GOOGLE_CLOUD_PROJECT` (or `GCP_PROJECT`, `GCLOUD_PROJECT`).
    pub project: Option<String>,
    /// `NUBE_SERVE`: which kinds of function are served.
    pub serve: Serve,
}

/// Which functions a server serves (`NUBE_SERVE`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Serve {
    /// HTTP and event functions (`all`).
    #[default]
    All,
    /// HTTP functions only (`http`): an event's path is an unknown route.
    Http,
    /// Event functions only (`events`): no HTTP route is served.
    Events,
}

impl Serve {
    /// Whether HTTP functions (`http`), else event functions, are served.
    pub fn serves(self, http: bool) -> bool {
        match self {
            Self::All => true,
            Self::Http => http,
            Self::Events => !http,
        }
    }

    /// The `NUBE_SERVE` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Http => "http",
            Self::Events => "events",
        }
    }
}

impl std::str::FromStr for Serve {
    type Err = InitError;

    fn from_str(s: &str) -> Result<Self, InitError> {
        match s {
            "all" => Ok(Self::All),
            "http" => Ok(Self::Http),
            "events" => Ok(Self::Events),
            other => Err(InitError(format!(
                "NUBE_SERVE is {other:?}, and must be `http`, `events` or `all`"
            ))),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            port: DEFAULT_PORT,
            function_target: None,
            revision: Revision::default(),
            project: None,
            serve: Serve::All,
        }
    }
}

impl Config {
    /// The configuration from the process environment.
    pub fn from_env() -> Result<Self, InitError> {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    /// The configuration, reading variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, InitError> {
        let get = |var: &str| {
            lookup(var)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let port = match get("PORT") {
            None => DEFAULT_PORT,
            Some(p) => p.parse().map_err(|_| {
                InitError(format!(
                    "PORT is {p:?}, and must be a port number (1-65535)"
                ))
            })?,
        };
        Ok(Self {
            port,
            function_target: get("FUNCTION_TARGET"),
            revision: Revision {
                service: get("K_SERVICE").map(Arc::from),
                revision: get("K_REVISION").map(Arc::from),
                configuration: get("K_CONFIGURATION").map(Arc::from),
            },
            project: get("GOOGLE_CLOUD_PROJECT")
                .or_else(|| get("GCP_PROJECT"))
                .or_else(|| get("GCLOUD_PROJECT")),
            serve: get("NUBE_SERVE").map_or(Ok(Serve::All), |s| s.parse())?,
        })
    }
}

/// The Cloud Run revision serving a request (`K_SERVICE`, `K_REVISION`,
/// `K_CONFIGURATION`). An HTTP handler takes it as an extractor; every function
/// reads it from its Context as `ctx.platform::<nube_gcp::Revision>()` (the server
/// sets it once, with [`nube::Resources::with_platform`], so requests copy nothing).
///
/// ```
/// async fn version(revision: nube_gcp::Revision) -> String {
///     revision.revision.as_deref().unwrap_or("local").to_owned()
/// }
/// # let _ = nube::http::Routes::new().get("/version", version);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revision {
    /// `K_SERVICE`: the Cloud Run service.
    pub service: Option<Arc<str>>,
    /// `K_REVISION`: the revision.
    pub revision: Option<Arc<str>>,
    /// `K_CONFIGURATION`: the configuration that made the revision.
    pub configuration: Option<Arc<str>>,
}

impl<S: Send + Sync> nube::axum::extract::FromRequestParts<S> for Revision {
    type Rejection = std::convert::Infallible;

    /// The revision of the server's Context; empty outside one (a Router served some
    /// other way).
    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Context>()
            .and_then(|ctx| ctx.platform::<Revision>())
            .cloned()
            .unwrap_or_default())
    }
}

fn function_list(app: &App) -> String {
    app.functions()
        .iter()
        .map(|f| format!("{} ({})", f.name(), f.trigger().kind()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The function `FUNCTION_TARGET` names, or an error listing the app's functions.
pub fn select_function<'a>(app: &'a App, target: &str) -> Result<&'a Function, InitError> {
    app.function(target).ok_or_else(|| {
        InitError(format!(
            "FUNCTION_TARGET is {target:?}, and app {} has no such function; set it to one of: {} (or unset it to serve them all)",
            app.name(),
            function_list(app)
        ))
    })
}

struct Inner {
    app: Arc<App>,
    /// With the revision as its platform details.
    resources: Resources,
    names: ResourceNames,
    /// The function every request goes to (`FUNCTION_TARGET`).
    target: Option<String>,
    /// Which kinds of function are served (`NUBE_SERVE`).
    serve: Serve,
}

/// The server's request handling: one axum service for the whole app (or the
/// `FUNCTION_TARGET` function, or the functions of the kind `NUBE_SERVE` names).
/// Cheap to clone.
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
    /// The HTTP functions' routes. Each clone of the server (one per connection) has
    /// its own handle, which `call` routes through without cloning it per request.
    http: Router,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("app", &self.inner.app.name())
            .field("target", &self.inner.target)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// The server for `app` with `config`, its functions using `resources`, mapping
    /// physical resource names back with `names`. The revision becomes `resources`'
    /// platform value ([`Resources::with_platform`], replacing one set before). Fails
    /// when `FUNCTION_TARGET` names no function of the app, or one of a kind
    /// `NUBE_SERVE` does not serve.
    pub fn new(
        app: Arc<App>,
        config: Config,
        resources: Resources,
        names: ResourceNames,
    ) -> Result<Self, InitError> {
        let target = match &config.function_target {
            Some(t) => {
                let f = select_function(&app, t)?;
                let http = matches!(f.trigger(), Trigger::Http(_));
                if !config.serve.serves(http) {
                    return Err(InitError(format!(
                        "FUNCTION_TARGET {t:?} is a{} function, and NUBE_SERVE={} serves none: unset one of them",
                        if http { "n HTTP" } else { "n event" },
                        config.serve.as_str()
                    )));
                }
                Some(f.name().to_owned())
            }
            None => None,
        };
        let resources = resources.with_platform(config.revision);
        let http = app.http_service_where(
            |f| config.serve.serves(true) && target.as_deref().is_none_or(|t| t == f.name()),
            Provider::Gcp,
            resources.clone(),
        );
        if target.is_none() && config.serve == Serve::All {
            warn_about_shadowed_routes(&app);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                app,
                resources,
                names,
                target,
                serve: config.serve,
            }),
            http,
        })
    }

    /// The app served.
    pub fn app(&self) -> &App {
        &self.inner.app
    }

    /// The axum service: every request of the service goes through it. (The server
    /// itself is that service, [`tower::Service`]; this wraps it in a Router for
    /// those who want one.)
    pub fn router(&self) -> Router {
        Router::new().fallback_service(self.clone())
    }

    /// The event function a request is for, if any: the target when it is an event
    /// function, else `POST /{function}` of an event function.
    fn event_function(&self, method: &Method, path: &str) -> Option<&Function> {
        let app = &self.inner.app;
        if !self.inner.serve.serves(false) {
            return None;
        }
        match &self.inner.target {
            Some(t) => app
                .function(t)
                .filter(|f| !matches!(f.trigger(), Trigger::Http(_))),
            None if method == Method::POST => path
                .strip_prefix('/')
                .map(|p| p.trim_end_matches('/'))
                .and_then(|name| app.function(name))
                .filter(|f| !matches!(f.trigger(), Trigger::Http(_))),
            None => None,
        }
    }

    /// Handles one request.
    pub async fn handle(&self, req: Request) -> Response {
        let mut server = self.clone();
        match tower::Service::call(&mut server, req).await {
            Ok(response) => response,
            Err(infallible) => match infallible {},
        }
    }

    /// Starts one request: an HTTP request is routed here and now, so that what is
    /// left to await is the route's own future.
    fn dispatch(&mut self, mut req: Request) -> ServerFuture {
        // The trace goes into the invocation's Context (and so its span and log
        // lines): no span of the server's own on the way.
        let (trace, execution_id) = read_headers(req.headers());
        let function = self
            .event_function(req.method(), req.uri().path())
            .map(|f| f.name().to_owned());
        if let Some(function) = function {
            // A span carrying the trace (in the invocation span's field names), so
            // that what is logged before the function's Context exists (a refused
            // event) joins the trace too.
            let span = match &trace {
                Some(t) => tracing::info_span!(
                    "request",
                    trace.id = t.trace_id.as_str(),
                    trace.span_id = t.span_id.as_deref(),
                    trace.sampled = t.sampled,
                ),
                None => tracing::Span::none(),
            };
            let server = self.clone();
            return ServerFuture::new(State::Event {
                future: Box::pin(async move {
                    let work = server
                        .event(&function, execution_id, trace, req)
                        .instrument(span);
                    Ok(AssertUnwindSafe(work)
                        .catch_unwind()
                        .await
                        .unwrap_or_else(|panic| panicked(&*panic)))
                }),
            });
        }
        // What only HTTP handlers read.
        let extensions = req.extensions_mut();
        if let Some(id) = execution_id {
            extensions.insert(nube::http::InvocationId(id));
        }
        if let Some(trace) = trace {
            extensions.insert(trace);
        }
        // axum's Router is always ready.
        ServerFuture::new(State::Http {
            route: tower::Service::call(&mut self.http, req),
        })
    }

    async fn event(
        &self,
        function: &str,
        execution_id: Option<String>,
        trace: Option<TraceContext>,
        req: Request,
    ) -> Response {
        if req.method() != Method::POST {
            let mut response = Error::new(
                ErrorKind::MethodNotAllowed,
                format!("function {function:?} takes events as POST requests"),
            )
            .into_response();
            response
                .headers_mut()
                .insert(http::header::ALLOW, http::HeaderValue::from_static("POST"));
            return response;
        }
        let (parts, body) = req.into_parts();
        let limit = self.inner.app.settings().max_body_bytes;
        let body = match nube::axum::body::to_bytes(body, limit).await {
            Ok(b) => b,
            Err(e) => {
                let e = e.into_inner();
                if e.is::<http_body_util::LengthLimitError>() {
                    return Error::new(
                        ErrorKind::PayloadTooLarge,
                        format!("the event is larger than this function accepts ({limit} bytes)"),
                    )
                    .into_response();
                }
                tracing::warn!(function, error = %e, "the event's body could not be read");
                return Error::bad_request("the event's body could not be read").into_response();
            }
        };
        let event = match self.decode(function, &parts.headers, &body) {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!(function, reason = %e, "event refused");
                return Error::bad_request(e.0).into_response();
            }
        };
        if let (Event::BlobCreated(blob), Some(Trigger::BlobCreated { bucket, prefix })) = (
            &event,
            self.inner.app.function(function).map(Function::trigger),
        ) && &blob.bucket == bucket
            && !blob.key.starts_with(prefix.as_str())
        {
            // Eventarc filters by bucket only; keys outside the prefix are not this
            // function's, and not an error either.
            tracing::info!(
                function,
                key = blob.key,
                prefix,
                "object outside the function's prefix: acknowledged, not run"
            );
            return StatusCode::OK.into_response();
        }
        let mut builder = Context::builder(
            function.to_owned(),
            Provider::Gcp,
            self.inner.resources.clone(),
        );
        if let Some(id) = execution_id {
            builder = builder.invocation_id(id);
        }
        if let Some(trace) = trace {
            builder = builder.trace(trace);
        }
        match self.inner.app.invoke(event, builder.build()).await {
            Ok(()) => StatusCode::OK.into_response(),
            Err(e) => e.into_response(),
        }
    }

    /// The nube event of an event request for `function`, or why there is none.
    pub fn decode(
        &self,
        function: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Event, DecodeError> {
        let f = self
            .inner
            .app
            .function(function)
            .ok_or_else(|| DecodeError::new(format!("no function {function:?}")))?;
        let names = &self.inner.names;
        let incoming = cloudevent::read(headers, body)?;
        match (f.trigger(), incoming) {
            (Trigger::Timer(schedule), None) => {
                crate::scheduler::from_http_target(headers, body, &schedule.to_string())
                    .map(Event::Timer)
            }
            (Trigger::Timer(schedule), Some(Incoming { event, mode }))
                if takes(f, cloudevents::AttributesReader::ty(&event)) =>
            {
                crate::scheduler::from_cloud_event(&event, mode, &schedule.to_string())
                    .map(Event::Timer)
            }
            (Trigger::BlobCreated { .. }, Some(Incoming { event, mode }))
                if takes(f, cloudevents::AttributesReader::ty(&event)) =>
            {
                crate::storage::decode(&event, mode, names).map(Event::BlobCreated)
            }
            (Trigger::DocumentCreated { .. }, Some(Incoming { event, mode }))
                if takes(f, cloudevents::AttributesReader::ty(&event)) =>
            {
                crate::firestore::decode(&event, mode, names).map(Event::DocumentCreated)
            }
            (_, Some(Incoming { event, mode })) => Err(DecodeError::new(format!(
                "function {function:?} takes {}, and this request is a {:?} CloudEvent ({} mode)",
                accepted(f),
                cloudevents::AttributesReader::ty(&event),
                mode.as_str()
            ))),
            (_, None) => Err(DecodeError::new(format!(
                "function {function:?} takes {}, and this request is not a CloudEvent: it has no ce-specversion header, is not application/cloudevents+json, and is not a legacy background event",
                accepted(f)
            ))),
        }
    }
}

/// The CloudEvent types `function` takes.
pub fn accepted_types(function: &Function) -> &'static [&'static str] {
    match function.trigger() {
        Trigger::Http(_) => &[],
        Trigger::Timer(_) => &[
            crate::scheduler::EXECUTED,
            crate::scheduler::MESSAGE_PUBLISHED,
        ],
        Trigger::BlobCreated { .. } => &[crate::storage::FINALIZED],
        Trigger::DocumentCreated { .. } => &[
            crate::firestore::CREATED,
            crate::firestore::CREATED_WITH_AUTH_CONTEXT,
        ],
    }
}

fn takes(function: &Function, ty: &str) -> bool {
    accepted_types(function).contains(&ty)
}

fn accepted(function: &Function) -> String {
    let types = accepted_types(function).join(", ");
    match function.trigger() {
        Trigger::Http(_) => "HTTP requests on its routes".to_owned(),
        Trigger::Timer(_) => format!(
            "timer events (CloudEvents of type {types}, or a plain POST from Cloud Scheduler's HTTP target)"
        ),
        Trigger::BlobCreated { .. } => format!("blob-created events (CloudEvents of type {types})"),
        Trigger::DocumentCreated { .. } => {
            format!("document-created events (CloudEvents of type {types})")
        }
    }
}

fn warn_about_shadowed_routes(app: &App) {
    for f in app.functions() {
        let Trigger::Http(routes) = f.trigger() else {
            continue;
        };
        for route in routes.declared() {
            let name = route.path.trim_start_matches('/');
            if (route.method == "POST" || route.method == "ANY")
                && app
                    .function(name)
                    .is_some_and(|e| !matches!(e.trigger(), Trigger::Http(_)))
            {
                tracing::warn!(
                    http_function = f.name(),
                    route = %format!("{} {}", route.method, route.path),
                    "POST {} is the event path of function {name:?}, which takes it first; set FUNCTION_TARGET or rename the route",
                    route.path
                );
            }
        }
    }
}

/// The trace and the execution id of a request, read in one pass over its headers
/// rather than a lookup (a hash of the name) for each of the three.
fn read_headers(headers: &HeaderMap) -> (Option<TraceContext>, Option<String>) {
    let (mut traceparent, mut cloud_trace, mut execution_id) = (None, None, None);
    for (name, value) in headers {
        let slot = match name.as_str() {
            TRACEPARENT => &mut traceparent,
            CLOUD_TRACE => &mut cloud_trace,
            EXECUTION_ID_HEADER => &mut execution_id,
            _ => continue,
        };
        // The first of repeated headers, as `HeaderMap::get` gives.
        if slot.is_none() {
            *slot = Some(value.to_str().ok());
        }
    }
    let execution_id = execution_id
        .flatten()
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned);
    (
        trace_from(traceparent.flatten(), cloud_trace.flatten()),
        execution_id,
    )
}

/// The answer to a request during which the adapter itself panicked.
fn panicked(panic: &(dyn std::any::Any + Send)) -> Response {
    Error::new(
        ErrorKind::Panic,
        format!(
            "the nube-gcp server panicked: {}",
            nube::panic_message(panic)
        ),
    )
    .into_response()
}

impl tower::Service<Request> for Server {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = ServerFuture;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // A panic anywhere in the adapter fails this request only.
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.dispatch(req))) {
            Ok(future) => future,
            Err(panic) => ServerFuture::new(State::Answered {
                response: Some(panicked(&*panic)),
            }),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of one request to the [`Server`]: an HTTP route's own future (not
    /// boxed again), an event function's, or an answer already made.
    pub struct ServerFuture {
        #[pin]
        state: State,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State {
        Http { #[pin] route: nube::axum::routing::future::RouteFuture<std::convert::Infallible> },
        Event { future: futures::future::BoxFuture<'static, Result<Response, std::convert::Infallible>> },
        Answered { response: Option<Response> },
    }
}

impl ServerFuture {
    fn new(state: State) -> Self {
        Self { state }
    }
}

impl std::fmt::Debug for ServerFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerFuture").finish_non_exhaustive()
    }
}

impl Future for ServerFuture {
    type Output = Result<Response, std::convert::Infallible>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        match self.project().state.project() {
            // Handler panics are caught by the function's invocation; this catches
            // the rest of the way (routing, fallbacks) so that it fails this request only.
            StateProj::Http { route } => {
                match std::panic::catch_unwind(AssertUnwindSafe(|| route.poll(cx))) {
                    Ok(poll) => poll,
                    Err(panic) => std::task::Poll::Ready(Ok(panicked(&*panic))),
                }
            }
            StateProj::Event { future } => future.as_mut().poll(cx),
            StateProj::Answered { response } => std::task::Poll::Ready(Ok(response
                .take()
                .expect("a ServerFuture is not polled after it is ready"))),
        }
    }
}

/// Serves `server` on `listener` until `shutdown` completes, then lets the requests
/// in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    server: Server,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    nube::axum::serve(listener, nube::axum::ServiceExt::into_make_service(server))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Completes on SIGTERM (what Cloud Run sends before stopping an instance) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C: draining requests in flight, then stopping"),
        () = terminate => tracing::info!("SIGTERM: draining requests in flight, then stopping"),
    }
}

/// Runs `app` as a Cloud Run service / Cloud Function: the `main` of an app's
/// container.
///
/// Prints the manifest instead when asked (`--nube-manifest`, `NUBE_MANIFEST=1`);
/// otherwise sets up logging ([`crate::logging`], panics included), checks the app,
/// reads [`Config`], builds the resources ([`resources_from_env`]) and serves on
/// `0.0.0.0:$PORT` until SIGTERM, draining requests in flight. Start-up failures
/// are logged with what to change and end the process with a failure code.
///
/// ```no_run
/// # fn app() -> nube::App { unimplemented!() }
/// #[tokio::main]
/// async fn main() -> std::process::ExitCode {
///     nube_gcp::run(app()).await
/// }
/// ```
pub async fn run(app: App) -> ExitCode {
    if nube::manifest::print_if_requested(&app) {
        return ExitCode::SUCCESS;
    }
    crate::logging::init();
    crate::logging::log_panics();
    match start(app).await {
        Ok(()) => {
            tracing::info!("nube-gcp stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "nube-gcp could not start or stopped on an error");
            ExitCode::FAILURE
        }
    }
}

async fn start(app: App) -> Result<(), InitError> {
    app.validate().map_err(|e| InitError(e.to_string()))?;
    let config = Config::from_env()?;
    let resources = resources_from_env(&app).await?;
    let names = ResourceNames::from_env(&app);
    let port = config.port;
    let server = Server::new(Arc::new(app), config, resources, names)?;
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
        .await
        .map_err(|e| InitError(format!("cannot listen on 0.0.0.0:{port}: {e}")))?;
    tracing::info!(
        port,
        app = server.app().name(),
        function_target = server.inner.target.as_deref(),
        "nube-gcp is serving"
    );
    serve(listener, server, shutdown_signal())
        .await
        .map_err(|e| InitError(format!("the server failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_the_environment() {
        let c = Config::from_lookup(|v| match v {
            "PORT" => Some("9090".into()),
            "FUNCTION_TARGET" => Some("nightly".into()),
            "K_SERVICE" => Some("svc".into()),
            "GCP_PROJECT" => Some("p".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.port, 9090);
        assert_eq!(c.function_target.as_deref(), Some("nightly"));
        assert_eq!(c.revision.service.as_deref(), Some("svc"));
        assert_eq!(c.project.as_deref(), Some("p"));
        assert_eq!(Config::from_lookup(|_| None).unwrap(), Config::default());
        let e = Config::from_lookup(|v| (v == "PORT").then(|| "http".into())).unwrap_err();
        assert!(e.0.contains("PORT"), "{e}");
    }
}
