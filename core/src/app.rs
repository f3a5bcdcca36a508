//! [`App`]: the one declaration of an app's functions and resources that runs,
//! that the local runtime fires, and that the packager renders.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::context::Context;
use crate::error::Result;
use crate::event::{BlobCreated, DocumentCreated, Event, TimerTick};
use crate::http::Routes;
use crate::schedule::{Schedule, ScheduleError};

/// The four kinds of trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TriggerKind {
    /// HTTP requests, routed by an axum Router.
    Http,
    /// A schedule.
    Timer,
    /// An object created in a bucket.
    BlobCreated,
    /// A document created in a collection.
    DocumentCreated,
}

impl fmt::Display for TriggerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Http => "http",
            Self::Timer => "timer",
            Self::BlobCreated => "blob-created",
            Self::DocumentCreated => "document-created",
        })
    }
}

pub(crate) type EventHandler =
    Arc<dyn Fn(Event, Context) -> BoxFuture<'static, Result<()>> + Send + Sync>;

/// What starts a function.
#[derive(Clone)]
pub enum Trigger {
    /// HTTP: the routes (and the Router that serves them).
    Http(Routes),
    /// A schedule.
    Timer(Schedule),
    /// Objects created in `bucket` whose key starts with `prefix`.
    BlobCreated {
        /// Logical bucket name.
        bucket: String,
        /// Key prefix (empty for every key).
        prefix: String,
    },
    /// Documents created in `collection`.
    DocumentCreated {
        /// Logical collection name.
        collection: String,
    },
}

impl Trigger {
    /// The kind of trigger.
    pub fn kind(&self) -> TriggerKind {
        match self {
            Self::Http(_) => TriggerKind::Http,
            Self::Timer(_) => TriggerKind::Timer,
            Self::BlobCreated { .. } => TriggerKind::BlobCreated,
            Self::DocumentCreated { .. } => TriggerKind::DocumentCreated,
        }
    }
}

impl fmt::Debug for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http(r) => f.debug_tuple("Http").field(&r.declared()).finish(),
            Self::Timer(s) => f.debug_tuple("Timer").field(&s.to_string()).finish(),
            Self::BlobCreated { bucket, prefix } => f
                .debug_struct("BlobCreated")
                .field("bucket", bucket)
                .field("prefix", prefix)
                .finish(),
            Self::DocumentCreated { collection } => f
                .debug_struct("DocumentCreated")
                .field("collection", collection)
                .finish(),
        }
    }
}

/// One declared function.
#[derive(Clone)]
pub struct Function {
    pub(crate) name: String,
    pub(crate) trigger: Trigger,
    pub(crate) timeout: Option<Duration>,
    pub(crate) handler: Option<EventHandler>,
    pub(crate) uses: Option<Uses>,
}

/// The collections and buckets one function declared it uses
/// ([`App::function_collections`], [`App::function_buckets`]), its trigger's own
/// collection or bucket included.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Uses {
    collections: BTreeSet<String>,
    buckets: BTreeSet<String>,
}

impl Uses {
    /// The collections, in name order.
    pub fn collections(&self) -> impl Iterator<Item = &str> {
        self.collections.iter().map(String::as_str)
    }

    /// The buckets, in name order.
    pub fn buckets(&self) -> impl Iterator<Item = &str> {
        self.buckets.iter().map(String::as_str)
    }

    /// Whether collection `name` is among them.
    pub fn has_collection(&self, name: &str) -> bool {
        self.collections.contains(name)
    }

    /// Whether bucket `name` is among them.
    pub fn has_bucket(&self, name: &str) -> bool {
        self.buckets.contains(name)
    }
}

impl Function {
    /// The function's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What starts it.
    pub fn trigger(&self) -> &Trigger {
        &self.trigger
    }

    /// Its timeout, if set for this function alone.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// What it declared it uses, its trigger's collection or bucket included; `None`
    /// when it declared nothing, and so reaches every collection and bucket of the app.
    pub fn uses(&self) -> Option<&Uses> {
        self.uses.as_ref()
    }

    /// Whether it may use collection `name` (any, when it declared nothing).
    pub fn may_use_collection(&self, name: &str) -> bool {
        self.uses.as_ref().is_none_or(|u| u.has_collection(name))
    }

    /// Whether it may use bucket `name` (any, when it declared nothing).
    pub fn may_use_bucket(&self, name: &str) -> bool {
        self.uses.as_ref().is_none_or(|u| u.has_bucket(name))
    }

    /// Whether `event` is one this function takes (trigger kind, bucket and prefix,
    /// collection).
    pub fn accepts(&self, event: &Event) -> bool {
        match (&self.trigger, event) {
            (Trigger::Timer(_), Event::Timer(_)) => true,
            (Trigger::BlobCreated { bucket, prefix }, Event::BlobCreated(e)) => {
                &e.bucket == bucket && e.key.starts_with(prefix.as_str())
            }
            (Trigger::DocumentCreated { collection }, Event::DocumentCreated(e)) => {
                &e.collection == collection
            }
            _ => false,
        }
    }
}

impl fmt::Debug for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Function")
            .field("name", &self.name)
            .field("trigger", &self.trigger)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Everything wrong with an app's declaration, each problem on its own line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppError {
    /// The problems found.
    pub problems: Vec<String>,
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the app declaration is invalid:")?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for AppError {}

impl From<ScheduleError> for AppError {
    fn from(e: ScheduleError) -> Self {
        Self {
            problems: vec![e.to_string()],
        }
    }
}

impl From<std::convert::Infallible> for AppError {
    fn from(e: std::convert::Infallible) -> Self {
        match e {}
    }
}

/// App-wide settings the runtimes and packager read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// Default invocation timeout.
    #[serde(with = "secs")]
    pub timeout: Duration,
    /// Largest HTTP request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// HTTP functions need no key on clouds that ask for one (Azure `authLevel`).
    pub anonymous_http: bool,
    /// Deliveries of a failing event before it is dead-lettered (local runtime).
    pub max_attempts: u32,
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs_f64(f64::deserialize(d)?))
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_body_bytes: 6 * 1024 * 1024,
            anonymous_http: false,
            max_attempts: 5,
        }
    }
}

/// An app: its functions and the resources they use.
///
/// ```
/// use nube::{App, Context, TimerTick, BlobCreated, DocumentCreated, http::Routes};
///
/// async fn hello() -> &'static str { "hello" }
/// async fn nightly(_t: TimerTick, _ctx: Context) -> nube::Result<()> { Ok(()) }
/// async fn thumbnail(_b: BlobCreated, _ctx: Context) -> nube::Result<()> { Ok(()) }
/// async fn notify(_d: DocumentCreated<serde_json::Value>, _ctx: Context) -> nube::Result<()> { Ok(()) }
///
/// let app = App::new("demo")
///     .http("api", Routes::new().get("/hello", hello))
///     .timer("nightly", "0 2 * * *", nightly)
///     .on_blob_created("thumbnails", "uploads", "original/", thumbnail)
///     .on_document_created("notify", "orders", notify);
/// assert!(app.validate().is_ok());
/// assert_eq!(app.functions().len(), 4);
/// ```
#[derive(Clone)]
pub struct App {
    name: String,
    functions: Vec<Function>,
    collections: BTreeSet<String>,
    buckets: BTreeSet<String>,
    settings: Settings,
    problems: Vec<String>,
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("name", &self.name)
            .field("functions", &self.functions)
            .field("collections", &self.collections)
            .field("buckets", &self.buckets)
            .finish()
    }
}

/// Checks a function or app name: 1–32 characters of `a-z 0-9 -`, starting with a
/// letter, not ending with `-` (what Lambda, Azure Functions, Cloud Run and
/// Eventarc all accept).
pub fn validate_name(what: &str, name: &str) -> std::result::Result<(), String> {
    let ok = (1..=32).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} name {name:?} must be 1-32 characters of lowercase letters, digits and '-', starting with a letter and not ending with '-'"
        ))
    }
}

impl App {
    /// An app called `name` with no functions yet.
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        let problems = validate_name("app", &name).err().into_iter().collect();
        Self {
            name,
            functions: Vec::new(),
            collections: BTreeSet::new(),
            buckets: BTreeSet::new(),
            settings: Settings::default(),
            problems,
        }
    }

    fn add(mut self, name: &str, trigger: Trigger, handler: Option<EventHandler>) -> Self {
        if let Err(p) = validate_name("function", name) {
            self.problems.push(p);
        }
        if self.functions.iter().any(|f| f.name == name) {
            self.problems
                .push(format!("function name {name:?} is declared twice"));
        }
        self.functions.push(Function {
            name: name.to_owned(),
            trigger,
            timeout: None,
            handler,
            uses: None,
        });
        self
    }

    /// An HTTP function serving `routes`.
    pub fn http(self, name: &str, routes: Routes) -> Self {
        self.add(name, Trigger::Http(routes), None)
    }

    /// A timer function. `schedule` is a [`Schedule`] or its text (`"0 2 * * *"`,
    /// `"rate(5 minutes)"`); an invalid schedule is reported by [`App::validate`].
    pub fn timer<S, F, Fut>(mut self, name: &str, schedule: S, handler: F) -> Self
    where
        S: TryInto<Schedule>,
        S::Error: Into<AppError>,
        F: Fn(TimerTick, Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let schedule = match schedule.try_into() {
            Ok(s) => s,
            Err(e) => {
                self.problems.extend(
                    e.into()
                        .problems
                        .into_iter()
                        .map(|p| format!("timer {name:?}: {p}")),
                );
                Schedule::every(Duration::from_secs(86_400)).expect("one day is a valid rate")
            }
        };
        let handler: EventHandler = Arc::new(move |event, ctx| match event {
            Event::Timer(tick) => Box::pin(handler(tick, ctx)),
            other => Box::pin(wrong_kind(TriggerKind::Timer, other)),
        });
        self.add(name, Trigger::Timer(schedule), Some(handler))
    }

    /// A function fired for every object created in `bucket` whose key starts with
    /// `prefix` (`""` for all).
    pub fn on_blob_created<F, Fut>(
        mut self,
        name: &str,
        bucket: &str,
        prefix: &str,
        handler: F,
    ) -> Self
    where
        F: Fn(BlobCreated, Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        self = self.bucket(bucket);
        let handler: EventHandler = Arc::new(move |event, ctx| match event {
            Event::BlobCreated(blob) => Box::pin(handler(blob, ctx)),
            other => Box::pin(wrong_kind(TriggerKind::BlobCreated, other)),
        });
        let trigger = Trigger::BlobCreated {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        };
        self.add(name, trigger, Some(handler))
    }

    /// A function fired for every document created in `collection`, decoded as `T`.
    pub fn on_document_created<T, F, Fut>(
        mut self,
        name: &str,
        collection: &str,
        handler: F,
    ) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(DocumentCreated<T>, Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        self = self.collection(collection);
        let handler = Arc::new(handler);
        let handler: EventHandler = Arc::new(move |event, ctx| match event {
            Event::DocumentCreated(doc) => {
                let id = format!("{}/{}", doc.collection, doc.id);
                match doc.decode::<T>() {
                    Ok(typed) => Box::pin(handler(typed, ctx)),
                    Err(e) => Box::pin(async move {
                        tracing::warn!(
                            document = id,
                            handler_type = std::any::type_name::<T>(),
                            error = %e,
                            "a created document does not match the handler's type"
                        );
                        Err(crate::Error::bad_request(format!(
                            "document {id} does not match the handler's type: {}",
                            crate::http::without_type_names(&e.to_string())
                        )))
                    }),
                }
            }
            other => Box::pin(wrong_kind(TriggerKind::DocumentCreated, other)),
        });
        let trigger = Trigger::DocumentCreated {
            collection: collection.to_owned(),
        };
        self.add(name, trigger, Some(handler))
    }

    /// Declares a document collection the app uses.
    pub fn collection(mut self, name: &str) -> Self {
        if let Err(e) = crate::store::validate_collection_name(name) {
            self.problems.push(e.to_string());
        }
        self.collections.insert(name.to_owned());
        self
    }

    /// Declares a blob bucket the app uses.
    pub fn bucket(mut self, name: &str) -> Self {
        if let Err(p) = crate::blob::validate_bucket_name(name) {
            self.problems.push(p);
        }
        self.buckets.insert(name.to_owned());
        self
    }

    /// Sets the timeout of the function `name` (declare the function first).
    pub fn function_timeout(mut self, name: &str, timeout: Duration) -> Self {
        match self.functions.iter_mut().find(|f| f.name == name) {
            Some(f) => f.timeout = Some(timeout),
            None => self.problems.push(format!(
                "function_timeout({name:?}): no such function is declared before it"
            )),
        }
        self
    }

    /// Declares the collections the function `name` uses (declare the function first).
    ///
    /// A function that declares what it uses (collections, buckets or both; an empty
    /// list declares none) reaches only those and its trigger's own collection or
    /// bucket. On AWS, its Lambda function gets policies on those and no others. At
    /// run time, everywhere, any other is refused as AWS would refuse it: a bucket is
    /// an error, a collection is logged (and panics under [`crate::testing`]), so that
    /// a missing declaration shows in a local run or a test rather than as an access
    /// denied once deployed. (On Azure and Google Cloud an app's functions share one
    /// identity, the Function App's or the Cloud Run services' account, so there it is this
    /// run-time check only.) A function that declares nothing reaches every collection
    /// and bucket of the app.
    ///
    /// ```
    /// use nube::App;
    /// # use nube::{Context, DocumentCreated, Result};
    /// # async fn project(_: DocumentCreated<serde_json::Value>, _: Context) -> Result<()> { Ok(()) }
    ///
    /// let app = App::new("shop")
    ///     .collection("order-events")
    ///     .collection("orders")
    ///     .collection("payments")
    ///     .on_document_created("orders-read-model", "order-events", project)
    ///     .function_collections("orders-read-model", ["orders"]);
    /// let f = app.function("orders-read-model").unwrap();
    /// assert!(f.may_use_collection("orders") && f.may_use_collection("order-events"));
    /// assert!(!f.may_use_collection("payments"));
    /// ```
    pub fn function_collections<'a>(
        self,
        name: &str,
        collections: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        self.declare_uses("function_collections", name, |uses| {
            uses.collections
                .extend(collections.into_iter().map(str::to_owned));
        })
    }

    /// Declares the buckets the function `name` uses (declare the function first); see
    /// [`App::function_collections`] for what declaring changes.
    pub fn function_buckets<'a>(
        self,
        name: &str,
        buckets: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        self.declare_uses("function_buckets", name, |uses| {
            uses.buckets.extend(buckets.into_iter().map(str::to_owned));
        })
    }

    fn declare_uses(mut self, method: &str, name: &str, add: impl FnOnce(&mut Uses)) -> Self {
        let Some(f) = self.functions.iter_mut().find(|f| f.name == name) else {
            self.problems.push(format!(
                "{method}({name:?}): no such function is declared before it"
            ));
            return self;
        };
        let uses = f.uses.get_or_insert_with(|| {
            let mut uses = Uses::default();
            match &f.trigger {
                Trigger::BlobCreated { bucket, .. } => {
                    uses.buckets.insert(bucket.clone());
                }
                Trigger::DocumentCreated { collection } => {
                    uses.collections.insert(collection.clone());
                }
                Trigger::Http(_) | Trigger::Timer(_) => {}
            }
            uses
        });
        add(uses);
        self
    }

    /// Sets the default timeout of every function (30 s unless set).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.settings.timeout = timeout;
        self
    }

    /// Sets the largest accepted HTTP request body (6 MiB unless set, Lambda's limit).
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.settings.max_body_bytes = bytes;
        self
    }

    /// HTTP functions need no function key where a cloud asks for one.
    pub fn anonymous_http(mut self) -> Self {
        self.settings.anonymous_http = true;
        self
    }

    /// Deliveries of a failing event before it is dead-lettered (5 unless set).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.settings.max_attempts = n.max(1);
        self
    }

    /// The app's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The declared functions, in declaration order.
    pub fn functions(&self) -> &[Function] {
        &self.functions
    }

    /// The function called `name`.
    pub fn function(&self, name: &str) -> Option<&Function> {
        self.functions.iter().find(|f| f.name == name)
    }

    /// The function called `name`, or an error that lists the functions there are.
    pub fn require_function(&self, name: &str) -> Result<&Function> {
        self.function(name).ok_or_else(|| {
            let names: Vec<&str> = self.functions.iter().map(|f| f.name.as_str()).collect();
            crate::Error::not_found(format!(
                "app {} has no function {name:?} (it has: {})",
                self.name,
                names.join(", ")
            ))
        })
    }

    /// The declared collections.
    pub fn collections(&self) -> impl Iterator<Item = &str> {
        self.collections.iter().map(String::as_str)
    }

    /// The declared buckets.
    pub fn buckets(&self) -> impl Iterator<Item = &str> {
        self.buckets.iter().map(String::as_str)
    }

    /// App-wide settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The timeout that applies to `function`.
    pub fn timeout_of(&self, function: &Function) -> Duration {
        function.timeout.unwrap_or(self.settings.timeout)
    }

    /// The functions an event fires (by trigger kind, bucket and prefix, collection).
    pub fn subscribers<'a>(&'a self, event: &'a Event) -> impl Iterator<Item = &'a Function> + 'a {
        self.functions.iter().filter(move |f| f.accepts(event))
    }

    /// Every problem with the declaration: bad or duplicate names, invalid schedules,
    /// routes declared by two functions, no functions at all.
    pub fn validate(&self) -> std::result::Result<(), AppError> {
        let mut problems = self.problems.clone();
        if self.functions.is_empty() {
            problems.push(format!("app {} declares no functions", self.name));
        }
        let mut owners: BTreeMap<(String, String), &str> = BTreeMap::new();
        for f in &self.functions {
            if let Trigger::Http(routes) = &f.trigger {
                problems.extend(
                    routes
                        .problems()
                        .iter()
                        .map(|p| format!("HTTP function {:?}: {p}", f.name)),
                );
                if routes.declared().is_empty() && routes.problems().is_empty() {
                    problems.push(format!("HTTP function {:?} has no routes", f.name));
                }
                for r in routes.declared() {
                    let key = (r.method.clone(), r.path.clone());
                    if let Some(other) = owners.insert(key, &f.name)
                        && other != f.name
                    {
                        problems.push(format!(
                            "route {} {} is declared by both {other:?} and {:?}",
                            r.method, r.path, f.name
                        ));
                    }
                }
            }
        }
        for f in &self.functions {
            let Some(uses) = &f.uses else { continue };
            for c in uses
                .collections()
                .filter(|c| !self.collections.contains(*c))
            {
                problems.push(format!(
                    "function {:?} uses collection {c:?}, which the app does not declare; add .collection({c:?})",
                    f.name
                ));
            }
            for b in uses.buckets().filter(|b| !self.buckets.contains(*b)) {
                problems.push(format!(
                    "function {:?} uses bucket {b:?}, which the app does not declare; add .bucket({b:?})",
                    f.name
                ));
            }
        }
        if problems.is_empty() {
            // Whatever else axum refuses when the functions' routers are merged (a
            // path two functions route differently, ANY beside GET...).
            let resources =
                crate::Resources::new(std::sync::Arc::new(crate::store::MemoryStore::new()));
            let merge = std::panic::AssertUnwindSafe(|| {
                self.http_service(crate::Provider::Test, resources)
            });
            if let Err(panic) = std::panic::catch_unwind(merge) {
                problems.push(format!(
                    "the HTTP functions' routes conflict: {}",
                    crate::panic_message(&*panic)
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(AppError { problems })
        }
    }

    pub(crate) fn handler_of<'a>(&self, f: &'a Function) -> Option<&'a EventHandler> {
        f.handler.as_ref()
    }
}

async fn wrong_kind(expected: TriggerKind, got: Event) -> Result<()> {
    Err(crate::Error::bad_request(format!(
        "this function takes {expected} events, not {} events",
        got.kind()
    )))
}
