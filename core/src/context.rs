//! [`Context`]: what a function knows about its invocation, and its handles to the
//! app's stores. Event handlers receive it as an argument; HTTP handlers extract it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use http::request::Parts;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::app::Uses;
use crate::blob::Bucket;
use crate::error::Error;
use crate::event::Provider;
use crate::store::{Collection, DocumentStore};

/// What an app's functions reach: one document store, the declared buckets, and what
/// the platform running them tells them ([`Resources::with_platform`]). Cheap to
/// clone: one shared count, which every invocation's [`Context`] takes.
#[derive(Clone, Debug)]
pub struct Resources {
    inner: Arc<Stores>,
    /// The function these are for and what it declared it uses, which
    /// [`Resources::collection`] and [`Resources::bucket`] check (a [`FunctionScope`]'s);
    /// `None` for the app as a whole and for a function that declared nothing.
    uses: Option<(Arc<str>, Arc<Uses>)>,
}

#[derive(Clone)]
struct Stores {
    documents: Arc<dyn DocumentStore>,
    buckets: HashMap<String, Bucket>,
    declared: Option<Arc<Declared>>,
    platform: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores")
            .field("documents", &self.documents)
            .field("buckets", &self.buckets)
            .field("declared", &self.declared)
            .field("platform", &self.platform.is_some())
            .finish()
    }
}

/// The collections an app declared, what each function that declared its own uses,
/// and what to do about others.
#[derive(Debug)]
struct Declared {
    collections: std::collections::BTreeSet<String>,
    /// Functions that declared what they use ([`crate::App::function_collections`]).
    uses: HashMap<String, Arc<Uses>>,
    strict: bool,
    /// Messages already logged, each once.
    warned: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Declared {
    /// Logs `message` once (panics instead when strict).
    fn refuse(&self, message: String) {
        if self.strict {
            panic!("{message}");
        }
        let mut warned = self.warned.lock().unwrap_or_else(|p| p.into_inner());
        if !warned.contains(&message) {
            tracing::warn!("{message}");
            warned.insert(message);
        }
    }
}

impl Resources {
    /// Resources backed by `documents`, with no buckets yet.
    pub fn new(documents: Arc<dyn DocumentStore>) -> Self {
        Self {
            inner: Arc::new(Stores {
                documents,
                buckets: HashMap::new(),
                declared: None,
                platform: None,
            }),
            uses: None,
        }
    }

    /// Checks [`Resources::collection`] against `app`'s declared collections, and a
    /// [`Context`]'s collections and buckets against what its function declared it
    /// uses ([`crate::App::function_collections`]): a collection the app did not
    /// declare would work here but not be provisioned on a cloud, and one its
    /// function did not declare would be refused there. `strict` panics (for tests);
    /// otherwise each is logged once. (A bucket either did not declare is an error
    /// anyway.)
    pub fn with_declarations(mut self, app: &crate::App, strict: bool) -> Self {
        let uses = app
            .functions()
            .iter()
            .filter_map(|f| Some((f.name().to_owned(), Arc::new(f.uses()?.clone()))))
            .collect();
        Arc::make_mut(&mut self.inner).declared = Some(Arc::new(Declared {
            collections: app.collections().map(str::to_owned).collect(),
            uses,
            strict,
            warned: Default::default(),
        }));
        self
    }

    /// Adds a bucket.
    pub fn with_bucket(mut self, bucket: Bucket) -> Self {
        Arc::make_mut(&mut self.inner)
            .buckets
            .insert(bucket.name().to_owned(), bucket);
        self
    }

    /// Sets what the platform tells every function, whatever it runs on (the Cloud Run
    /// revision, say): an adapter sets it, functions read it with
    /// [`Resources::platform`] or [`Context::platform`]. Replaces an earlier value.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// #[derive(Debug, PartialEq)]
    /// struct Region(&'static str);
    ///
    /// let store = Arc::new(nube::store::MemoryStore::new());
    /// let resources = nube::Resources::new(store).with_platform(Region("eu-west-1"));
    /// assert_eq!(resources.platform::<Region>(), Some(&Region("eu-west-1")));
    /// assert_eq!(resources.platform::<String>(), None);
    /// ```
    pub fn with_platform<T: std::any::Any + Send + Sync>(mut self, value: T) -> Self {
        Arc::make_mut(&mut self.inner).platform = Some(Arc::new(value));
        self
    }

    /// What the platform set with [`Resources::with_platform`], if it set a `T`.
    pub fn platform<T: std::any::Any>(&self) -> Option<&T> {
        self.inner.platform.as_deref()?.downcast_ref()
    }

    /// The document store itself: no check of declared collections or uses.
    pub fn documents(&self) -> &Arc<dyn DocumentStore> {
        &self.inner.documents
    }

    /// The typed collection `name`. Checked ([`Resources::with_declarations`]) against
    /// the app's collections and, for a function's resources (a [`Context`]'s), what
    /// the function declared it uses.
    pub fn collection<T: Serialize + DeserializeOwned>(&self, name: &str) -> Collection<T> {
        if let Some(d) = &self.inner.declared {
            if !d.collections.contains(name) {
                d.refuse(format!(
                    "collection {name:?} is not declared in this app, so no cloud will provision it; add .collection({name:?}) to the App"
                ));
            } else if let Some((function, uses)) = &self.uses
                && !uses.has_collection(name)
            {
                d.refuse(undeclared_use(
                    function,
                    "collection",
                    name,
                    "function_collections",
                ));
            }
        }
        Collection::new(name, self.inner.documents.clone())
    }

    /// These resources as `function` reaches them: [`Resources::collection`] and
    /// [`Resources::bucket`] check what it declared it uses (looked up here, once).
    fn for_function(&self, function: Arc<str>) -> Self {
        let uses = self
            .inner
            .declared
            .as_ref()
            .and_then(|d| d.uses.get(&*function).cloned())
            .map(|uses| (function, uses));
        Self {
            inner: self.inner.clone(),
            uses,
        }
    }

    /// The bucket `name`; an error if the app did not declare it, or if these are a
    /// function's resources and it declared what it uses, and not this bucket.
    pub fn bucket(&self, name: &str) -> Result<Bucket, Error> {
        let found = self.inner.buckets.get(name);
        if let Some((function, uses)) = &self.uses
            && !uses.has_bucket(name)
            && found.is_some()
        {
            return Err(Error::internal(undeclared_use(
                function,
                "bucket",
                name,
                "function_buckets",
            )));
        }
        found.cloned().ok_or_else(|| {
            let mut known: Vec<_> = self.inner.buckets.keys().map(String::as_str).collect();
            known.sort_unstable();
            Error::internal(format!(
                "bucket {name:?} is not declared in this app (declared: {}); add .bucket({name:?}) to the App",
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            ))
        })
    }
}

/// Why `function` may not use a resource it did not declare.
fn undeclared_use(function: &str, kind: &str, name: &str, method: &str) -> String {
    format!(
        "function {function:?} declared what it uses, and not {kind} {name:?}, so a cloud will refuse it access; add it with .{method}({function:?}, [{name:?}]) to the App"
    )
}

struct Inner {
    invocation_id: InvocationIdText,
    function: Arc<FunctionScope>,
    deadline: Option<Instant>,
    attempt: u32,
    trace: Option<TraceContext>,
    span: tracing::Span,
}

/// What every invocation of one function on one provider shares: one count for all
/// of it, which each invocation's [`Context`] takes, rather than one per part.
#[derive(Debug)]
pub struct FunctionScope {
    name: Arc<str>,
    provider: Provider,
    resources: Resources,
}

impl FunctionScope {
    /// The scope of `function`'s invocations on `provider`, reaching `resources`.
    pub fn new(function: impl Into<Arc<str>>, provider: Provider, resources: Resources) -> Self {
        let name = function.into();
        Self {
            resources: resources.for_function(name.clone()),
            name,
            provider,
        }
    }

    /// The function.
    pub fn function_name(&self) -> &str {
        &self.name
    }

    /// Where it runs.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// The app's stores, as this function reaches them (checked against what it
    /// declared it uses).
    pub fn resources(&self) -> &Resources {
        &self.resources
    }
}

/// The distributed trace an invocation belongs to, as its provider passed it (W3C
/// `traceparent`, Cloud Trace's `X-Cloud-Trace-Context`...). A runtime sets it with
/// [`ContextBuilder::trace`], or on an HTTP request as an extension; the invocation's
/// span carries it as the fields `trace.id`, `trace.span_id` and `trace.sampled`, which
/// a provider's log format turns into its own (Cloud Logging's
/// `logging.googleapis.com/trace`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace id (32 hex digits for W3C and Cloud Trace).
    pub trace_id: String,
    /// The caller's span id, when given (nube-gcp writes it as 16 hex digits, as W3C does).
    pub span_id: Option<String>,
    /// Whether the caller sampled the trace.
    pub sampled: bool,
}

/// One invocation's context: invocation id, function name, provider, deadline,
/// tracing span and the app's stores. Cheap to clone.
///
/// In an HTTP handler, take it as an extractor:
///
/// ```
/// use axum::Json;
/// use nube::Context;
///
/// async fn whoami(ctx: Context) -> Json<serde_json::Value> {
///     Json(serde_json::json!({
///         "function": ctx.function_name(),
///         "invocation": ctx.invocation_id(),
///         "provider": ctx.provider().as_str(),
///     }))
/// }
/// ```
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("invocation_id", &self.inner.invocation_id.as_str())
            .field("function", &self.inner.function.name)
            .field("provider", &self.inner.function.provider)
            .field("attempt", &self.inner.attempt)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Context`]; runtimes and the test harness use it.
#[derive(Debug)]
pub struct ContextBuilder {
    invocation_id: Option<String>,
    function: Arc<FunctionScope>,
    deadline: Option<Instant>,
    attempt: u32,
    trace: Option<TraceContext>,
}

/// The target of the `invocation` span a [`Context`] makes (the log filter keeps it).
pub(crate) const INVOCATION_TARGET: &str = "nube::context";

/// The name of that span.
pub(crate) const INVOCATION_SPAN: &str = "invocation";

impl ContextBuilder {
    /// The provider's invocation or request id (a UUID v7 is generated otherwise).
    pub fn invocation_id(mut self, id: impl Into<String>) -> Self {
        self.invocation_id = Some(id.into());
        self
    }

    /// The invocation must finish within `d` from now.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.deadline = Some(Instant::now() + d);
        self
    }

    /// The invocation must finish by `deadline`.
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Which delivery attempt this is (1 for the first).
    pub fn attempt(mut self, n: u32) -> Self {
        self.attempt = n;
        self
    }

    /// The trace the invocation belongs to.
    pub fn trace(mut self, trace: TraceContext) -> Self {
        self.trace = Some(trace);
        self
    }

    /// The finished context, with its tracing span.
    pub fn build(self) -> Context {
        let invocation_id = match self.invocation_id {
            Some(id) => InvocationIdText::Given(id),
            None => InvocationIdText::Generated(new_uuid_text()),
        };
        let trace = self.trace.as_ref();
        let span = tracing::info_span!(
            target: INVOCATION_TARGET,
            INVOCATION_SPAN,
            function = &*self.function.name,
            invocation_id = invocation_id.as_str(),
            trace.id = trace.map(|t| t.trace_id.as_str()),
            trace.span_id = trace.and_then(|t| t.span_id.as_deref()),
            trace.sampled = trace.map(|t| t.sampled),
        );
        Context {
            inner: Arc::new(Inner {
                invocation_id,
                function: self.function,
                deadline: self.deadline,
                attempt: self.attempt,
                trace: self.trace,
                span,
            }),
        }
    }
}

/// A new UUIDv7 as text: what an invocation is called when its provider gives it no id.
///
/// Drawn from a context per thread rather than uuid's process-wide one, a `Mutex` that
/// every worker thread would take for every invocation. Ids from one thread are in
/// order; ids from different threads within the same millisecond are unique (random
/// bits) but not ordered.
pub fn new_invocation_id() -> String {
    new_uuid_text().to_string()
}

/// [`new_invocation_id`]'s text, kept on the stack.
fn new_uuid_text() -> arrayvec::ArrayString<{ uuid::fmt::Hyphenated::LENGTH }> {
    use uuid::timestamp::context::{ContextV7, ThreadLocalContext};
    thread_local! {
        static CONTEXT: ContextV7 = const { ContextV7::new() };
    }
    let uuid = uuid::Uuid::new_v7(uuid::Timestamp::now(ThreadLocalContext::new(&CONTEXT)));
    let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
    let mut id = arrayvec::ArrayString::new();
    // Exactly the capacity: the push cannot fail.
    let _ = id.try_push_str(uuid.hyphenated().encode_lower(&mut text));
    id
}

/// An invocation id: the provider's, or one generated here, whose 36 characters are
/// kept inline rather than in a `String` of their own.
enum InvocationIdText {
    Given(String),
    Generated(arrayvec::ArrayString<{ uuid::fmt::Hyphenated::LENGTH }>),
}

impl InvocationIdText {
    fn as_str(&self) -> &str {
        match self {
            Self::Given(id) => id,
            Self::Generated(id) => id,
        }
    }
}

impl Context {
    /// Starts a context for `function` on `provider`.
    pub fn builder(
        function: impl Into<Arc<str>>,
        provider: Provider,
        resources: Resources,
    ) -> ContextBuilder {
        Self::builder_in(Arc::new(FunctionScope::new(function, provider, resources)))
    }

    /// Starts a context for an invocation in `function`'s scope, which a runtime
    /// makes once per function rather than once per invocation.
    pub fn builder_in(function: Arc<FunctionScope>) -> ContextBuilder {
        ContextBuilder {
            invocation_id: None,
            function,
            deadline: None,
            attempt: 1,
            trace: None,
        }
    }

    /// The provider's id for this invocation (Lambda request id, Azure invocation id...).
    pub fn invocation_id(&self) -> &str {
        self.inner.invocation_id.as_str()
    }

    /// The nube function being invoked.
    pub fn function_name(&self) -> &str {
        &self.inner.function.name
    }

    /// Where this runs.
    pub fn provider(&self) -> Provider {
        self.inner.function.provider
    }

    /// When the invocation must be finished, if the provider set a limit.
    pub fn deadline(&self) -> Option<Instant> {
        self.inner.deadline
    }

    /// Time left before the deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.inner
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Delivery attempt, 1 for the first.
    pub fn attempt(&self) -> u32 {
        self.inner.attempt
    }

    /// The trace the invocation belongs to, when its provider passed one.
    pub fn trace(&self) -> Option<&TraceContext> {
        self.inner.trace.as_ref()
    }

    /// The invocation's tracing span (function and invocation id as fields).
    pub fn span(&self) -> &tracing::Span {
        &self.inner.span
    }

    /// What the platform running the function tells it, if it tells a `T` (for
    /// example `nube_gcp::Revision` on Cloud Run): [`Resources::platform`].
    pub fn platform<T: std::any::Any>(&self) -> Option<&T> {
        self.inner.function.resources.platform()
    }

    /// The app's stores, as this function reaches them (checked against what it
    /// declared it uses).
    pub fn resources(&self) -> &Resources {
        &self.inner.function.resources
    }

    /// The typed collection `name` of the app's document store.
    pub fn collection<T: Serialize + DeserializeOwned>(&self, name: &str) -> Collection<T> {
        self.inner.function.resources.collection(name)
    }

    /// The bucket `name`; an error if the app did not declare it, or if this function
    /// declared what it uses and not this bucket.
    pub fn bucket(&self, name: &str) -> Result<Bucket, Error> {
        self.inner.function.resources.bucket(name)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Context {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Context>().cloned().ok_or_else(|| {
            Error::internal(
                "no nube Context on this request: serve the router through a nube runtime (App::http_service) or nube::testing",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::new_invocation_id;

    #[test]
    fn invocation_ids_are_uuid_v7_unique_across_threads_and_ordered_within_one() {
        let per_thread: Vec<Vec<String>> = (0..4)
            .map(|_| std::thread::spawn(|| (0..2000).map(|_| new_invocation_id()).collect()))
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let mut all = std::collections::HashSet::new();
        for ids in &per_thread {
            assert!(
                ids.windows(2).all(|w| w[0] < w[1]),
                "not in order within a thread"
            );
            for id in ids {
                let uuid = uuid::Uuid::parse_str(id).unwrap();
                assert_eq!(uuid.get_version_num(), 7, "{id}");
                assert_eq!(id, &uuid.hyphenated().to_string());
                assert!(all.insert(id.clone()), "{id} twice");
            }
        }
        assert_eq!(all.len(), 8000);
    }
}
