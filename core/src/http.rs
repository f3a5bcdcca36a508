//! HTTP functions: [`Routes`] (an axum Router that remembers what it routes, for the
//! manifest and the packagers), the [`Json`] extractor with typed rejections, and
//! [`App::http_service`], the one Router every runtime serves.

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{
    DefaultBodyLimit, FromRequest, FromRequestParts, Request, rejection::JsonRejection,
};
use axum::handler::Handler;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use futures::FutureExt;
use futures::future::CatchUnwind;
use http::request::Parts;
use serde::{Deserialize, Serialize};

use crate::app::{App, Function, Trigger};
use crate::context::{Context, FunctionScope, Resources, TraceContext};
use crate::deadline::Within;
use crate::error::{Error, ErrorKind};
use crate::event::Provider;
use crate::invoke::panic_message;

/// A route as declared: method (`GET`, or `ANY`) and path (`/todos/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// HTTP method, upper case, or `ANY`.
    pub method: String,
    /// Path with `{param}` segments (the syntax axum, API Gateway and Azure share).
    pub path: String,
}

/// An axum [`Router`] that records the routes it serves.
///
/// ```
/// use nube::http::Routes;
///
/// async fn list() -> &'static str { "[]" }
/// async fn create() -> &'static str { "{}" }
///
/// let routes = Routes::new().get("/todos", list).post("/todos", create);
/// assert_eq!(routes.declared().len(), 2);
/// ```
#[derive(Clone, Default)]
pub struct Routes {
    router: Router,
    declared: Vec<Route>,
    problems: Vec<String>,
}

/// The path prefix runtimes keep for themselves (the local runtime's `/_nube/...`).
pub const RESERVED_PREFIX: &str = "/_nube";

fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("route {path:?} must start with '/'"));
    }
    if path == RESERVED_PREFIX || path.starts_with(&format!("{RESERVED_PREFIX}/")) {
        return Err(format!(
            "route {path:?} is under {RESERVED_PREFIX}/, which runtimes keep for themselves"
        ));
    }
    if let Some(seg) = path
        .split('/')
        .find(|s| s.starts_with(':') || s.starts_with('*'))
    {
        return Err(format!(
            "route {path:?}: segment {seg:?} uses the old syntax; write parameters as {{name}} and wildcards as {{*name}}"
        ));
    }
    Ok(())
}

macro_rules! method {
    ($fn:ident, $filter:ident, $name:literal) => {
        #[doc = concat!("Routes `", $name, " path` to `handler`.")]
        pub fn $fn<H, T>(self, path: &str, handler: H) -> Self
        where
            H: Handler<T, ()>,
            T: 'static,
        {
            self.add(path, $name, on(MethodFilter::$filter, handler))
        }
    };
}

impl Routes {
    /// No routes yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn add(mut self, path: &str, method: &str, router: MethodRouter) -> Self {
        if let Err(p) = check_path(path) {
            self.problems.push(p);
            return self;
        }
        // axum panics on a path it cannot route or a method routed twice; report that
        // through App::validate instead.
        let before = self.router.clone();
        match std::panic::catch_unwind(AssertUnwindSafe(move || before.route(path, router))) {
            Ok(router) => self.router = router,
            Err(panic) => {
                self.problems
                    .push(format!("route {method} {path}: {}", panic_message(&*panic)));
                return self;
            }
        }
        self.declared.push(Route {
            method: method.to_owned(),
            path: path.to_owned(),
        });
        self
    }

    method!(get, GET, "GET");
    method!(post, POST, "POST");
    method!(put, PUT, "PUT");
    method!(patch, PATCH, "PATCH");
    method!(delete, DELETE, "DELETE");

    /// Routes every method of `path` to an axum [`MethodRouter`] (declared as `ANY`).
    pub fn route(self, path: &str, method_router: MethodRouter) -> Self {
        self.add(path, "ANY", method_router)
    }

    /// Applies a tower layer to every route (as [`Router::layer`]).
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: tower::Layer<axum::routing::Route> + Clone + Send + Sync + 'static,
        L::Service: tower::Service<Request> + Clone + Send + Sync + 'static,
        <L::Service as tower::Service<Request>>::Response: IntoResponse + 'static,
        <L::Service as tower::Service<Request>>::Error: Into<std::convert::Infallible> + 'static,
        <L::Service as tower::Service<Request>>::Future: Send + 'static,
    {
        self.router = self.router.layer(layer);
        self
    }

    /// The routes, in declaration order.
    pub fn declared(&self) -> &[Route] {
        &self.declared
    }

    /// Problems found while adding routes (reported by [`App::validate`]).
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// The axum Router.
    pub fn router(&self) -> &Router {
        &self.router
    }
}

/// JSON request bodies with nube's typed rejections: 415 without a JSON content
/// type, 413 over the app's body limit, 400 (with serde's explanation) for bad JSON.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(Error::new(
                ErrorKind::UnsupportedMediaType,
                "expected a body with Content-Type: application/json",
            )),
            Err(JsonRejection::JsonDataError(e)) => Err(Error::bad_request(format!(
                "the JSON body does not have the expected shape: {}",
                without_type_names(
                    &std::error::Error::source(&e)
                        .map(ToString::to_string)
                        .unwrap_or_default()
                )
            ))),
            Err(JsonRejection::JsonSyntaxError(e)) => Err(Error::bad_request(format!(
                "the body is not valid JSON: {}",
                std::error::Error::source(&e)
                    .map(ToString::to_string)
                    .unwrap_or_default()
            ))),
            Err(JsonRejection::BytesRejection(e)) if e.status() == 413 => Err(Error::new(
                ErrorKind::PayloadTooLarge,
                "the request body is larger than this function accepts",
            )),
            // The body stream's own error (the connection's) is the operator's.
            Err(e) => Err(Error::bad_request("the request body could not be read").with_source(e)),
        }
    }
}

/// serde's explanation of a body that does not fit the handler's type, without the
/// Rust type names it quotes: `expected struct NewTodo` becomes `expected an object`.
pub(crate) fn without_type_names(message: &str) -> String {
    // Longer phrases first: `struct variant` before `struct`.
    const NAMED: [(&str, &str); 11] = [
        ("expected struct variant ", "expected an object"),
        ("expected tuple variant ", "expected an array"),
        ("expected newtype variant ", "expected a value"),
        ("expected unit variant ", "expected a name"),
        (
            "expected internally tagged enum ",
            "expected an object with its tag",
        ),
        (
            "expected adjacently tagged enum ",
            "expected an object with its tag and content",
        ),
        ("expected struct ", "expected an object"),
        ("expected tuple struct ", "expected an array"),
        ("expected unit struct ", "expected null"),
        ("expected enum ", "expected one of the accepted values"),
        ("of untagged enum ", "of the accepted shapes"),
    ];
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    'scan: while let Some(c) = rest.chars().next() {
        for (named, plain) in NAMED {
            if let Some(after) = rest.strip_prefix(named) {
                out.push_str(plain);
                let name_len = after
                    .find(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | ':' | '<' | '>')))
                    .unwrap_or(after.len());
                rest = &after[name_len..];
                continue 'scan;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Path parameters with nube's error body: a segment that does not parse as `T`
/// answers 400 `{"error":{"code":"bad_request","message":...}}`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|e| {
                // A handler whose `Path` type does not fit its route is the server's bug.
                if e.status().is_server_error() {
                    Error::internal(e.body_text())
                } else {
                    Error::bad_request(e.body_text())
                }
            })
    }
}

/// What each request to one HTTP function's routes is run with. (axum clones a
/// route's service for each request: this is one shared count and a number.)
#[derive(Clone)]
struct Invocation {
    function: Arc<FunctionScope>,
    timeout: Duration,
}

/// Runs every request to a function's routes through [`InvocationFuture`].
#[derive(Clone)]
struct InvocationLayer(Invocation);

impl<S> tower::Layer<S> for InvocationLayer {
    type Service = InvocationService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InvocationService {
            invocation: self.0.clone(),
            inner,
        }
    }
}

/// A function's route, run by [`invocation`].
#[derive(Clone)]
struct InvocationService<S> {
    invocation: Invocation,
    inner: S,
}

impl<S> tower::Service<Request> for InvocationService<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = InvocationFuture<S>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        InvocationFuture::start(&self.invocation, req, &mut self.inner)
    }
}

/// The header whose value becomes the invocation id of an HTTP request, when set.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The response header naming the invocation (find its log lines by this id).
pub const INVOCATION_ID_HEADER: &str = "x-nube-invocation-id";

// Parsed once rather than on every request.
const REQUEST_ID: http::HeaderName = http::HeaderName::from_static(REQUEST_ID_HEADER);
const INVOCATION_ID: http::HeaderName = http::HeaderName::from_static(INVOCATION_ID_HEADER);

pin_project_lite::pin_project! {
    /// One request to a function's route: the route runs inside the invocation's span,
    /// against its deadline, with panics caught; the answer gets the invocation id
    /// header and, when it is worth a line, a log line.
    struct InvocationFuture<S>
    where
        S: tower::Service<Request>,
    {
        #[pin]
        run: Within<CatchUnwind<AssertUnwindSafe<Started<S::Future>>>>,
        // Its span is entered around each poll of `run`.
        ctx: Context,
        started: Instant,
        method: http::Method,
        path: Option<http::uri::PathAndQuery>,
        logs_requests: bool,
    }
}

impl<S> InvocationFuture<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    /// Sets up the request's Context, span and deadline, puts the Context in the
    /// request's extensions for handlers to extract, and calls the route (ready, as
    /// the service's `poll_ready` said), catching a panic in the call.
    fn start(inv: &Invocation, mut req: Request, route: &mut S) -> Self {
        let started = Instant::now();
        let by_timeout = started + inv.timeout;
        let deadline = match req.extensions().get::<Deadline>() {
            Some(Deadline(d)) => by_timeout.min(*d),
            None => by_timeout,
        };
        let mut builder = Context::builder_in(inv.function.clone()).deadline(deadline);
        if let Some(id) = req
            .extensions()
            .get::<InvocationId>()
            .map(|i| i.0.clone())
            .or_else(|| {
                req.headers()
                    .get(REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .filter(|v| !v.is_empty() && v.len() <= 128)
                    .map(str::to_owned)
            })
        {
            builder = builder.invocation_id(id);
        }
        // Moved into the Context (`Context::trace`), not copied.
        if let Some(trace) = req.extensions_mut().remove::<TraceContext>() {
            builder = builder.trace(trace);
        }
        let ctx = builder.build();
        let (method, path) = (req.method().clone(), req.uri().path_and_query().cloned());
        req.extensions_mut().insert(ctx.clone());
        // In the invocation's span: a layer's `call` (tower-http's TraceLayer making its
        // span, say) belongs to the invocation too.
        let call = || std::panic::catch_unwind(AssertUnwindSafe(|| route.call(req)));
        let started_route = match ctx.span().in_scope(call) {
            Ok(future) => Started::Future { future },
            Err(panic) => Started::Panicked { panic: Some(panic) },
        };
        Self {
            run: crate::deadline::within(deadline, AssertUnwindSafe(started_route).catch_unwind()),
            ctx,
            started,
            method,
            path,
            logs_requests: inv.function.provider().logs_requests(),
        }
    }
}

pin_project_lite::pin_project! {
    /// A route's future, or the panic of the call that was to make it (resumed when
    /// polled, so that it is caught and answered like a panic in the future).
    #[project = StartedProj]
    enum Started<F> {
        Future { #[pin] future: F },
        Panicked { panic: Option<Box<dyn std::any::Any + Send>> },
    }
}

impl<F: Future> Future for Started<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<F::Output> {
        match self.project() {
            StartedProj::Future { future } => future.poll(cx),
            StartedProj::Panicked { panic } => match panic.take() {
                Some(panic) => std::panic::resume_unwind(panic),
                None => Poll::Pending,
            },
        }
    }
}

impl<S> Future for InvocationFuture<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let outcome = {
            let _entered = this.ctx.span().enter();
            std::task::ready!(this.run.poll(cx))
        };
        let mut response = match outcome {
            Ok(Ok(Ok(response))) => response,
            Ok(Ok(Err(infallible))) => match infallible {},
            Ok(Err(panic)) => Error::new(
                ErrorKind::Panic,
                format!("the handler panicked: {}", panic_message(&*panic)),
            )
            .into_response(),
            Err(_) => {
                // The Context's deadline is the one `run` was given.
                let limit = this
                    .ctx
                    .deadline()
                    .map(|d| d.saturating_duration_since(*this.started))
                    .unwrap_or_default();
                Error::new(
                    ErrorKind::Timeout,
                    format!("the handler did not finish within {limit:?}"),
                )
                .into_response()
            }
        };
        if let Ok(id) = http::HeaderValue::from_str(this.ctx.invocation_id()) {
            response.headers_mut().insert(INVOCATION_ID, id);
        }
        let status = response.status().as_u16();
        let logs_requests = *this.logs_requests;
        // The span is entered (and the clock read) only for a line that could be
        // written. The level is checked against the subscriber's most verbose level,
        // not `enabled!` out here: a filter on the span's fields decides inside it.
        if status >= 500 || !logs_requests || crate::logging::debug_possible() {
            let elapsed_ms = this.started.elapsed().as_secs_f64() * 1000.0;
            let method = &*this.method;
            let path = this.path.as_ref().map_or("/", |p| p.path());
            this.ctx.span().in_scope(|| {
                if status >= 500 {
                    tracing::error!(%method, path, status, elapsed_ms, "request failed");
                } else if logs_requests {
                    tracing::debug!(%method, path, status, elapsed_ms, "request served");
                } else {
                    tracing::info!(%method, path, status, elapsed_ms, "request served");
                }
            });
        }
        Poll::Ready(Ok(response))
    }
}

/// A request extension a runtime sets to give an HTTP request the provider's
/// invocation id (Lambda request id, Azure invocation id).
#[derive(Debug, Clone)]
pub struct InvocationId(pub String);

/// A request extension a runtime sets when the provider gives the invocation a
/// deadline (Lambda): the request's [`Context`] deadline is the earlier of this and
/// the function's timeout.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(pub std::time::Instant);

async fn method_not_allowed() -> Error {
    Error::new(
        ErrorKind::MethodNotAllowed,
        "this path does not take that method",
    )
}

async fn not_found() -> Error {
    Error::not_found("no route matches this path")
}

impl App {
    /// One Router serving every HTTP function of the app: each request gets a
    /// [`Context`] (invocation id from the runtime or `x-request-id`; the trace from a
    /// [`TraceContext`] request extension a runtime sets), the function's
    /// timeout (504), panic capture (500 with no detail), the body limit (413), and
    /// a JSON 404 for unknown paths.
    pub fn http_service(&self, provider: Provider, resources: Resources) -> Router {
        self.http_service_for(None, provider, resources)
    }

    /// Like [`App::http_service`], for one function only when `only` is set.
    pub fn http_service_for(
        &self,
        only: Option<&str>,
        provider: Provider,
        resources: Resources,
    ) -> Router {
        self.http_service_where(|f| only.is_none_or(|o| o == f.name()), provider, resources)
    }

    /// Like [`App::http_service`], for the HTTP functions `keep` keeps (none: a Router
    /// that answers every request with its JSON 404 or 405).
    pub fn http_service_where(
        &self,
        keep: impl Fn(&Function) -> bool,
        provider: Provider,
        resources: Resources,
    ) -> Router {
        let mut router = Router::new();
        for f in self.functions() {
            let Trigger::Http(routes) = f.trigger() else {
                continue;
            };
            if !keep(f) {
                continue;
            }
            let inv = InvocationLayer(Invocation {
                function: Arc::new(FunctionScope::new(f.name(), provider, resources.clone())),
                timeout: self.timeout_of(f),
            });
            // One layer for both, so a request passes one boxed route, not two (the
            // fallbacks below read no body, and need no limit).
            let layers = tower::ServiceBuilder::new()
                .layer(inv)
                .layer(DefaultBodyLimit::max(self.settings().max_body_bytes));
            router = router.merge(routes.router().clone().route_layer(layers));
        }
        // A fallback on each route's methods (axum adds the `Allow` header to its
        // answer), rather than a layer looking at every response.
        router
            .method_not_allowed_fallback(method_not_allowed)
            .fallback(not_found)
            // Turns every handler into its route now, as `into_make_service` does;
            // without it axum boxes and layers each handler again on every request.
            .with_state(())
    }
}

#[cfg(test)]
mod tests {
    use super::without_type_names;

    #[test]
    fn serde_messages_lose_the_type_names_they_quote() {
        let cases = [
            (
                "items[0]: invalid type: integer `1`, expected struct NewItem at line 1 column 11",
                "items[0]: invalid type: integer `1`, expected an object at line 1 column 11",
            ),
            (
                "status: invalid type: map, expected enum Status",
                "status: invalid type: map, expected one of the accepted values",
            ),
            (
                "data did not match any variant of untagged enum Change",
                "data did not match any variant of the accepted shapes",
            ),
            ("missing field `name`", "missing field `name`"),
            (
                "ünïcode, expected tuple struct Pair",
                "ünïcode, expected an array",
            ),
            (
                "invalid type: string \"x\", expected struct variant Change::Moved",
                "invalid type: string \"x\", expected an object",
            ),
            (
                "invalid type: integer `1`, expected internally tagged enum Command",
                "invalid type: integer `1`, expected an object with its tag",
            ),
            (
                "invalid type: map, expected tuple variant Shape::Pair",
                "invalid type: map, expected an array",
            ),
        ];
        for (serde, client) in cases {
            assert_eq!(without_type_names(serde), client);
        }
    }
}
