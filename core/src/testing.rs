//! A harness for testing an app's functions in a plain `#[tokio::test]`: in-memory
//! stores, HTTP requests without a server, synthetic events, and [`TestApp::settle`]
//! to deliver what writes triggered, the way a runtime would.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use nube::{App, Context, DocumentCreated, testing::TestApp, http::Routes};
//! use serde_json::{json, Value};
//!
//! async fn count(ev: DocumentCreated<Value>, ctx: Context) -> nube::Result<()> {
//!     ctx.collection::<Value>("counts").put(&ev.id, &json!({"seen": true})).await?;
//!     Ok(())
//! }
//! async fn ping() -> &'static str { "pong" }
//!
//! let t = TestApp::new(
//!     App::new("demo")
//!         .http("api", Routes::new().get("/ping", ping))
//!         .on_document_created("count", "items", count)
//!         .collection("counts"),
//! );
//! assert_eq!(t.get("/ping").await.text(), "pong");
//! t.collection::<Value>("items").create("a", &json!({})).await.unwrap();
//! let runs = t.settle().await;
//! assert_eq!(runs.len(), 1);
//! assert!(runs[0].outcome.is_ok());
//! assert!(t.collection::<Value>("counts").get("a").await.unwrap().is_some());
//! # });
//! ```

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use chrono::Utc;
use http::{HeaderMap, Method, Request, StatusCode};
use object_store::memory::InMemory;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tower::ServiceExt;

use crate::app::{App, Trigger};
use crate::blob::{BlobError, BlobEvents, BlobInfo, Bucket};
use crate::context::{Context, Resources};
use crate::error::Result;
use crate::event::{BlobCreated, DocumentCreated, Event, Provider, RawEvent, TimerTick};
use crate::store::{Collection, DocumentWritten, MemoryStore};

/// A synthetic timer tick due now.
pub fn timer_tick(schedule: &str) -> Event {
    Event::Timer(TimerTick {
        event_id: uuid::Uuid::now_v7().to_string(),
        schedule: schedule.to_owned(),
        scheduled_time: Utc::now(),
        past_due: false,
        raw: RawEvent::new(Provider::Test, json!({"synthetic": "timer"})),
    })
}

/// A synthetic blob-created event.
pub fn blob_created(bucket: &str, key: &str, size: u64) -> Event {
    Event::BlobCreated(BlobCreated {
        event_id: uuid::Uuid::now_v7().to_string(),
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        size,
        content_type: None,
        etag: None,
        time: Utc::now(),
        content: None,
        raw: RawEvent::new(Provider::Test, json!({"synthetic": "blob"})),
    })
}

/// A synthetic document-created event.
pub fn document_created(collection: &str, id: &str, document: Value) -> Event {
    Event::DocumentCreated(DocumentCreated {
        event_id: uuid::Uuid::now_v7().to_string(),
        collection: collection.to_owned(),
        id: id.to_owned(),
        document,
        raw: RawEvent::new(Provider::Test, json!({"synthetic": "document"})),
    })
}

#[derive(Debug, Default)]
struct BlobQueue(Mutex<VecDeque<BlobCreated>>);

#[async_trait]
impl BlobEvents for BlobQueue {
    async fn will_write(
        &self,
        _bucket: &str,
        _key: &str,
        _content_type: Option<&str>,
    ) -> Result<u64, BlobError> {
        Ok(0)
    }

    async fn abandoned(&self, _token: u64) -> Result<(), BlobError> {
        Ok(())
    }

    async fn written(&self, _token: u64, bucket: &str, info: &BlobInfo) -> Result<(), BlobError> {
        let raw = RawEvent::new(
            Provider::Test,
            serde_json::to_value(info).unwrap_or_default(),
        );
        self.0
            .lock()
            .expect("queue")
            .push_back(BlobCreated::written(bucket, info, raw));
        Ok(())
    }
}

/// One function run by [`TestApp::settle`].
#[derive(Debug)]
pub struct Delivery {
    /// The function that ran.
    pub function: String,
    /// The event it got.
    pub event: Event,
    /// What it returned.
    pub outcome: Result<()>,
}

/// An HTTP response, read whole.
#[derive(Debug, Clone)]
pub struct TestResponse {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Bytes,
}

impl TestResponse {
    /// The body as UTF-8 text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body decoded as JSON; panics with the body text when it is not.
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not the expected JSON ({e}): {}",
                self.text()
            )
        })
    }
}

/// An app on in-memory stores. See the module docs.
pub struct TestApp {
    app: App,
    resources: Resources,
    created: Mutex<broadcast::Receiver<DocumentWritten>>,
    blobs: Arc<BlobQueue>,
    router: Router,
}

impl TestApp {
    /// Wraps `app`; panics (with every problem listed) when the declaration is invalid.
    pub fn new(app: App) -> Self {
        if let Err(e) = app.validate() {
            panic!("{e}");
        }
        let store = Arc::new(MemoryStore::new());
        let created = Mutex::new(store.subscribe());
        let blobs = Arc::new(BlobQueue::default());
        let mut resources = Resources::new(store).with_declarations(&app, true);
        for name in app.buckets() {
            resources = resources.with_bucket(
                Bucket::new(name, Arc::new(InMemory::new())).with_events(blobs.clone()),
            );
        }
        let router = app.http_service(Provider::Test, resources.clone());
        Self {
            app,
            resources,
            created,
            blobs,
            router,
        }
    }

    /// The app under test.
    pub fn app(&self) -> &App {
        &self.app
    }

    /// The stores the functions see.
    pub fn resources(&self) -> &Resources {
        &self.resources
    }

    /// A typed collection of the in-memory store (writes through it fire
    /// document-created functions at the next [`TestApp::settle`]).
    pub fn collection<T: Serialize + DeserializeOwned>(&self, name: &str) -> Collection<T> {
        self.resources.collection(name)
    }

    /// A declared bucket (writes through it fire blob-created functions at the next
    /// [`TestApp::settle`]); panics if the app did not declare it.
    pub fn bucket(&self, name: &str) -> Bucket {
        self.resources
            .bucket(name)
            .unwrap_or_else(|e| panic!("{}", e.operator_message()))
    }

    /// A context for invoking `function` directly.
    pub fn context(&self, function: &str) -> Context {
        Context::builder(function, Provider::Test, self.resources.clone()).build()
    }

    /// Sends `request` to the app's HTTP functions.
    pub async fn request(&self, request: Request<Body>) -> TestResponse {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("response body readable");
        TestResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> TestResponse {
        self.send(Method::GET, path, None, Body::empty()).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> TestResponse {
        self.send(Method::DELETE, path, None, Body::empty()).await
    }

    /// `method path` with a JSON body.
    pub async fn send_json(&self, method: Method, path: &str, body: &Value) -> TestResponse {
        self.send(
            method,
            path,
            Some("application/json"),
            Body::from(body.to_string()),
        )
        .await
    }

    /// `method path` with raw bytes and an optional content type.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Body,
    ) -> TestResponse {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(ct) = content_type {
            req = req.header(http::header::CONTENT_TYPE, ct);
        }
        self.request(req.body(body).expect("valid request")).await
    }

    /// Invokes the event function `function` with `event` right now.
    pub async fn invoke(&self, function: &str, event: Event) -> Result<()> {
        self.app.invoke(event, self.context(function)).await
    }

    /// Fires the timer function `function` now.
    pub async fn fire_timer(&self, function: &str) -> Result<()> {
        let schedule = match self.app.function(function).map(|f| f.trigger()) {
            Some(Trigger::Timer(s)) => s.to_string(),
            _ => String::new(),
        };
        self.invoke(function, timer_tick(&schedule)).await
    }

    /// Delivers every document-created and blob-created event that writes so far
    /// have triggered (and those the deliveries trigger in turn) to the functions
    /// that take them, once each; returns what ran.
    pub async fn settle(&self) -> Vec<Delivery> {
        let mut runs = Vec::new();
        for _ in 0..1000 {
            let mut events: Vec<Event> = Vec::new();
            {
                let mut rx = self.created.lock().expect("receiver");
                loop {
                    let w = match rx.try_recv() {
                        Ok(w) => w,
                        Err(broadcast::error::TryRecvError::Lagged(n)) => panic!(
                            "settle: {n} document-created events were dropped; call settle() at least every 4096 creations"
                        ),
                        Err(_) => break,
                    };
                    events.push(Event::DocumentCreated(DocumentCreated {
                        event_id: format!(
                            "{}/{}@{}",
                            w.collection, w.document.id, w.document.version
                        ),
                        collection: w.collection,
                        id: w.document.id,
                        document: w.document.value,
                        raw: RawEvent::new(Provider::Test, json!({"synthetic": "document"})),
                    }));
                }
            }
            events.extend(
                self.blobs
                    .0
                    .lock()
                    .expect("queue")
                    .drain(..)
                    .map(Event::BlobCreated),
            );
            if events.is_empty() {
                return runs;
            }
            for event in events {
                let targets: Vec<String> = self
                    .app
                    .subscribers(&event)
                    .map(|f| f.name().to_owned())
                    .collect();
                for function in targets {
                    let outcome = self.invoke(&function, event.clone()).await;
                    runs.push(Delivery {
                        function,
                        event: event.clone(),
                        outcome,
                    });
                }
            }
        }
        panic!("settle: events kept triggering more events after 1000 rounds (a loop?)");
    }
}

/// Log lines kept in memory, for tests of log formats: give a subscriber
/// `.with_writer(move || buffer.clone())` and read what it wrote with
/// [`LogBuffer::text`].
#[derive(Debug, Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    /// Everything written so far, as UTF-8 text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("not poisoned")).into_owned()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (the OS picked it): for a test's
/// stand-in server or the process under test. Another process may take it in between;
/// the stand-ins' launchers fail with what they saw if so.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
