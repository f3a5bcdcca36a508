//! The delivery app on Cloud Run, end to end: this package's binary (built with the
//! `gcp` feature) runs as the containers would, started with the variables Cloud Run
//! sets (`PORT`, `K_SERVICE`, `K_REVISION`, `K_CONFIGURATION`) and the app's settings,
//! as `cargo xtask package` deploys it: twice, since its HTTP is public, the HTTP
//! functions on `delivery-app` (`NUBE_SERVE=http`) and the event functions on
//! `delivery-app-events` (`NUBE_SERVE=events`),
//! and keeps its documents in Google's Cloud Firestore emulator and its objects in
//! gcp-storage-emulator, both real and unchanged.
//!
//! The test plays the Google services that sit between them: it is the HTTP client;
//! it is Eventarc, delivering `google.cloud.storage.object.v1.finalized` (binary mode,
//! `StorageObjectData` JSON made from the emulator's own metadata of the uploaded
//! object) and `google.cloud.firestore.document.v1.created` (protobuf
//! `DocumentEventData` made from the documents as the Firestore emulator holds them,
//! binary and structured mode, with the `document`/`database`/`namespace` extensions);
//! it is Cloud Scheduler's HTTP target; and it is Cloud Run stopping the instance
//! (SIGTERM).
//!
//! Between the app and gcp-storage-emulator sits [`gcs_xml_proxy`], which fills the
//! emulator's gaps in Cloud Storage's XML API (`HEAD`, `ETag`, `Last-Modified`).
//!
//! **The packaged executable instead.** With `NUBE_GCP_EXECUTABLE` naming the static
//! binary `cargo xtask package --target gcp` wrote (what the image runs), the test runs
//! that instead of this package's debug build:
//!
//! ```text
//! cargo xtask package --target gcp --app delivery-app
//! NUBE_GCP_EXECUTABLE=target/nube/gcp/delivery-app/delivery-app cargo test -p delivery-app --features gcp --test gcp_e2e
//! ```
//!
//! Needs `NUBE_FIRESTORE_EMULATOR` (or Debian's packaged emulator, with Java 17+) and
//! `NUBE_GCS_EMULATOR`: `cargo xtask test` sets both; by hand, `export $(cargo xtask
//! tools)`. Without them the test fails, saying so; it never skips.

#[path = "../../../adapters/gcp/tests/emulator/mod.rs"]
mod emulator;
#[path = "../../../adapters/gcp/tests/gcs_xml_proxy/mod.rs"]
mod gcs_xml_proxy;

use nube::testing::free_port;
use std::io::Cursor;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use nube_gcp::firestore::{CREATED, PROTOBUF_CONTENT_TYPE, document_from_json, proto};
use nube_gcp::names::{COLLECTION_PREFIX_ENV, bucket_env_var};
use nube_gcp::storage::FINALIZED;
use prost::Message;
use reqwest::StatusCode;
use serde_json::{Value, json};

use emulator::Emulator;
use gcs_xml_proxy::gcs_xml_proxy;

/// The Google Cloud project (the Firestore emulator keeps projects apart).
const PROJECT: &str = "nube-e2e";
/// Every collection is `e2e-<logical>` (`NUBE_COLLECTION_PREFIX`).
const COLLECTION_PREFIX: &str = "e2e-";
/// The bucket behind the logical bucket `uploads`. Letters and digits only: object_store
/// percent-encodes every other character of a bucket name in the path, and the emulator
/// matches bucket names in the raw path.
const BUCKET: &str = "deliveryappe2euploads";
/// The stand-in service account key that turns OAuth off in object_store (what
/// `nube_gcp::gcs` documents for emulators).
const EMULATOR_KEY: &str =
    r#"{"private_key": "", "private_key_id": "", "client_email": "", "disable_oauth": true}"#;
/// How long any one wait (the server's start, a request, the shutdown) may take.
const PATIENCE: Duration = Duration::from_secs(60);

// ---- the container --------------------------------------------------------------------

/// The delivery-app container: the binary serving on `PORT`, killed when dropped (and
/// its log printed when the test fails).
struct Container {
    child: Child,
    port: u16,
    log: tempfile::NamedTempFile,
}

impl Container {
    /// The container of Cloud Run service `service`, serving the functions `serve`
    /// names (`NUBE_SERVE`), as `cargo xtask package` deploys the app.
    fn start(firestore: &Emulator, gcs_endpoint: &str, service: &str, serve: &str) -> Container {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().expect("a temp file for the server's log");
        // Relative to the workspace, or absolute.
        let executable = match std::env::var_os("NUBE_GCP_EXECUTABLE") {
            Some(path) => std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../..")
                .join(path),
            None => env!("CARGO_BIN_EXE_delivery-app").into(),
        };
        let mut command = Command::new(executable);
        // Nothing from the test's environment decides where the stores are.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("GOOGLE_") || name.starts_with("NUBE_") {
                command.env_remove(&*name);
            }
        }
        for var in [
            "SERVICE_ACCOUNT",
            "FUNCTION_TARGET",
            "AWS_LAMBDA_RUNTIME_API",
            "FUNCTIONS_CUSTOMHANDLER_PORT",
            "FUNCTIONS_HTTPWORKER_PORT",
        ] {
            command.env_remove(var);
        }
        let child = command
            // What Cloud Run sets.
            .env("PORT", port.to_string())
            .env("K_SERVICE", service)
            .env("K_REVISION", format!("{service}-00001-e2e"))
            .env("K_CONFIGURATION", service)
            .env("NUBE_SERVE", serve)
            // The app's settings: Firestore (the emulator) and Cloud Storage (the emulator,
            // through the proxy, without OAuth), with object_store's documented variables.
            .env("GOOGLE_CLOUD_PROJECT", PROJECT)
            .env("FIRESTORE_EMULATOR_HOST", firestore.host())
            .env(COLLECTION_PREFIX_ENV, COLLECTION_PREFIX)
            .env(bucket_env_var(nube_images::BUCKET), BUCKET)
            .env("GOOGLE_BASE_URL", gcs_endpoint)
            .env("GOOGLE_SERVICE_ACCOUNT_KEY", EMULATOR_KEY)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("the delivery-app binary starts");
        Container { child, port, log }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Panics, with the log, unless the process is running.
    fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("the delivery-app exited ({status}):\n{}", self.log_text());
        }
    }

    /// Waits until `GET path` answers `expected`.
    async fn wait_until_serving(
        &mut self,
        http: &reqwest::Client,
        path: &str,
        expected: StatusCode,
    ) {
        let started = Instant::now();
        loop {
            self.check_alive();
            if let Ok(r) = http.get(self.url(path)).send().await
                && r.status() == expected
            {
                return;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "the delivery-app did not answer GET {path} with {expected} within {PATIENCE:?}:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything the test runs; when the test fails, dropping it prints the logs.
struct Stack {
    /// The public service: the HTTP functions (`NUBE_SERVE=http`).
    container: Container,
    /// The private service: the event functions (`NUBE_SERVE=events`), which Eventarc
    /// and Cloud Scheduler call.
    events: Container,
    firestore: Emulator,
    gcs: Emulator,
    http: reqwest::Client,
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- delivery-app ----\n{}\n---- delivery-app-events ----\n{}\n---- the Firestore emulator ----\n{}\n---- gcp-storage-emulator ----\n{}",
                self.container.log_text(),
                self.events.log_text(),
                tail(&self.firestore.log_text(), 60),
                tail(&self.gcs.log_text(), 60)
            );
        }
    }
}

/// The last `n` lines of an emulator's log, without Java stack frames.
fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| !l.trim_start().starts_with("at ") && !l.trim().is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// An answer: status, content type and body.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    content_type: String,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} with a body that is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Stack {
    async fn send(&mut self, what: &str, request: reqwest::RequestBuilder) -> Answer {
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                self.container.check_alive();
                self.events.check_alive();
                panic!("{what} failed: {e}");
            }
        };
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response.bytes().await.expect("a body").to_vec();
        Answer {
            status,
            content_type,
            body,
        }
    }

    async fn get(&mut self, path: &str) -> Answer {
        let request = self.http.get(self.container.url(path));
        self.send(&format!("GET {path}"), request).await
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(self.container.url(path))
    }

    /// A `POST` to event function `function`, on the events' service.
    fn post_event(&self, function: &str) -> reqwest::RequestBuilder {
        self.http.post(self.events.url(&format!("/{function}")))
    }

    /// The documents of the Firestore collection `collection` (physical), as the
    /// emulator's REST API lists them.
    fn documents(&self, collection: &str) -> Vec<Value> {
        let (status, body) = self
            .firestore
            .request(
                "GET",
                &format!(
                    "/v1/projects/{PROJECT}/databases/(default)/documents/{collection}?pageSize=300"
                ),
                "",
            )
            .unwrap_or_else(|e| panic!("listing {collection} in the Firestore emulator: {e}"));
        assert_eq!(status, 200, "listing {collection}: {body}");
        let list: Value = serde_json::from_str(&body).expect("a JSON document list");
        list["documents"].as_array().cloned().unwrap_or_default()
    }

    /// The document at `path` (below `documents/`), if any.
    fn document(&self, path: &str) -> Option<Value> {
        let (status, body) = self
            .firestore
            .request(
                "GET",
                &format!("/v1/projects/{PROJECT}/databases/(default)/documents/{path}"),
                "",
            )
            .unwrap_or_else(|e| panic!("reading {path} from the Firestore emulator: {e}"));
        match status {
            200 => Some(serde_json::from_str(&body).expect("a JSON document")),
            404 => None,
            other => panic!("reading {path}: {other} {body}"),
        }
    }

    /// The event of `order_id` at `version` in the order-events collection, waiting for
    /// it to be there.
    async fn order_event(&self, order_id: &str, version: u32) -> Value {
        let collection = format!("{COLLECTION_PREFIX}{}", nube_orders::EVENTS);
        let started = Instant::now();
        loop {
            let found = self.documents(&collection).into_iter().find(|d| {
                d["fields"]["orderId"]["stringValue"] == order_id
                    && d["fields"]["version"]["integerValue"]
                        .as_str()
                        .and_then(|v| v.parse::<u32>().ok())
                        == Some(version)
            });
            if let Some(d) = found {
                return d;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "{collection} has no event {version} of order {order_id}: {:?}",
                self.documents(&collection)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

// ---- the events, as Google sends them ----------------------------------------------------

/// The document path (`e2e-order-events/<id>`) of a REST document's `name`.
fn document_path(document: &Value) -> String {
    let name = document["name"].as_str().expect("a document name");
    nube_gcp::firestore::path_of_name(name)
        .unwrap_or_else(|| panic!("{name} names no document path"))
        .to_owned()
}

/// The `created` event of `document` (as the REST API returns it): its attributes,
/// extensions included, and its protobuf `DocumentEventData`.
fn firestore_created(document: &Value, event_id: &str) -> (Vec<(&'static str, String)>, Vec<u8>) {
    let path = document_path(document);
    let value = document_from_json(document)
        .unwrap_or_else(|e| panic!("{document} as a protobuf Document: {e}"));
    let data = proto::DocumentEventData {
        value: Some(value),
        old_value: None,
        update_mask: None,
    }
    .encode_to_vec();
    let attributes = vec![
        ("specversion", "1.0".to_owned()),
        ("id", event_id.to_owned()),
        (
            "source",
            format!("//firestore.googleapis.com/projects/{PROJECT}/databases/(default)"),
        ),
        ("type", CREATED.to_owned()),
        ("subject", format!("documents/{path}")),
        (
            "time",
            document["createTime"]
                .as_str()
                .expect("a createTime")
                .to_owned(),
        ),
        (
            "dataschema",
            "https://github.com/googleapis/google-cloudevents/blob/main/proto/google/events/cloud/firestore/v1/data.proto"
                .to_owned(),
        ),
        ("datacontenttype", PROTOBUF_CONTENT_TYPE.to_owned()),
        ("location", "us-central1".to_owned()),
        ("project", PROJECT.to_owned()),
        ("database", "(default)".to_owned()),
        ("namespace", "(default)".to_owned()),
        ("document", path),
    ];
    (attributes, data)
}

/// `request` with the CloudEvent in binary mode: attributes in `ce-*` headers (the data
/// content type in `Content-Type`), the data as the body.
fn binary_mode(
    request: reqwest::RequestBuilder,
    attributes: &[(&str, String)],
    data: Vec<u8>,
) -> reqwest::RequestBuilder {
    let mut request = request;
    for (name, value) in attributes {
        request = if *name == "datacontenttype" {
            request.header("content-type", value)
        } else {
            request.header(format!("ce-{name}"), value)
        };
    }
    request.body(data)
}

/// `request` with the CloudEvent in structured mode: the whole event as
/// `application/cloudevents+json`, binary data in `data_base64`.
fn structured_mode(
    request: reqwest::RequestBuilder,
    attributes: &[(&str, String)],
    data: &[u8],
) -> reqwest::RequestBuilder {
    let mut envelope = serde_json::Map::new();
    for (name, value) in attributes {
        envelope.insert((*name).to_owned(), Value::from(value.as_str()));
    }
    envelope.insert("data_base64".into(), Value::from(BASE64.encode(data)));
    request
        .header("content-type", "application/cloudevents+json")
        .body(Value::Object(envelope).to_string())
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 200])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

// ---- the test -----------------------------------------------------------------------

async fn start() -> Stack {
    let gcs = Emulator::gcs();
    let (status, body) = gcs
        .request(
            "POST",
            &format!("/storage/v1/b?project={PROJECT}"),
            &json!({ "name": BUCKET }).to_string(),
        )
        .expect("gcp-storage-emulator answers");
    assert_eq!(status, 200, "the emulator creates the bucket: {body}");
    let firestore = Emulator::firestore();
    let proxy = gcs_xml_proxy(gcs.port());
    let mut container = Container::start(&firestore, &proxy, "delivery-app", "http");
    let mut events = Container::start(&firestore, &proxy, "delivery-app-events", "events");
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(PATIENCE)
        .build()
        .unwrap();
    container
        .wait_until_serving(&http, "/todos", StatusCode::OK)
        .await;
    // No HTTP route there: any answer is a 404.
    events
        .wait_until_serving(&http, "/todos", StatusCode::NOT_FOUND)
        .await;
    Stack {
        container,
        events,
        firestore,
        gcs,
        http,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_container_serves_every_trigger_as_cloud_run_and_eventarc_drive_it() {
    let started = Instant::now();
    let mut stack = start().await;

    // ---- HTTP: todos ----
    let request = stack.post("/todos").json(&json!({"title": "buy milk"}));
    let created = stack.send("POST /todos", request).await;
    assert_eq!(created.status, 201, "{}", created.text());
    assert!(created.content_type.starts_with("application/json"));
    let todo = created.json();
    assert_eq!(todo["title"], "buy milk");
    assert_eq!(todo["completed"], false);
    let todo_id = todo["id"].as_str().expect("a todo id").to_owned();
    let listed = stack.get("/todos").await;
    assert_eq!(listed.status, 200);
    let list = listed.json();
    assert!(
        list.as_array()
            .is_some_and(|l| l.iter().any(|t| t["id"] == todo_id.as_str())),
        "GET /todos lists the new todo: {list}"
    );
    assert!(
        stack
            .document(&format!(
                "{COLLECTION_PREFIX}{}/{todo_id}",
                nube_todos::COLLECTION
            ))
            .is_some(),
        "the todo is a document of the Firestore collection {COLLECTION_PREFIX}todos"
    );
    let missing = stack.get("/todos/no-such").await;
    assert_eq!(missing.status, 404);
    assert!(missing.content_type.starts_with("application/json"));
    let error = missing.json();
    assert_eq!(error["error"]["code"], "not_found", "{error}");
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{error}");
    for internal in ["firestore", "Firestore", "projects/", "grpc", "panicked"] {
        assert!(
            !message.contains(internal),
            "the 404 says nothing internal: {error}"
        );
    }

    // ---- HTTP with a binary body, then Eventarc's storage event → make-thumbnails ----
    let original = png(320, 240);
    let request = stack
        .http
        .put(stack.container.url("/uploads/cat.png"))
        .header("content-type", "image/png")
        .body(original.clone());
    let uploaded = stack.send("PUT /uploads/cat.png", request).await;
    assert_eq!(uploaded.status, 202, "{}", uploaded.text());
    assert_eq!(uploaded.json(), json!({"key": "original/cat.png"}));
    let not_yet = stack.get("/images/cat.png").await;
    assert_eq!(not_yet.status, 404, "no record before make-thumbnails ran");

    // The object as the emulator stores it; Eventarc's data is that metadata
    // (StorageObjectData: int64 fields as strings).
    let (status, meta) = stack
        .gcs
        .request(
            "GET",
            &format!("/storage/v1/b/{BUCKET}/o/original%2Fcat.png"),
            "",
        )
        .expect("gcp-storage-emulator answers");
    assert_eq!(
        status, 200,
        "the upload is in the emulator's bucket: {meta}"
    );
    let mut object: Value = serde_json::from_str(&meta).expect("object metadata");
    assert_eq!(object["name"], "original/cat.png");
    assert_eq!(object["bucket"], BUCKET);
    assert_eq!(object["size"], original.len().to_string());
    assert_eq!(object["contentType"], "image/png");
    object.as_object_mut().expect("an object").remove("acl");
    let generation = object["generation"]
        .as_str()
        .expect("a generation")
        .to_owned();
    let updated = object["updated"].as_str().expect("updated").to_owned();
    let attributes = [
        ("specversion", "1.0".to_owned()),
        ("id", format!("{generation}-e2e")),
        (
            "source",
            format!("//storage.googleapis.com/projects/_/buckets/{BUCKET}"),
        ),
        ("type", FINALIZED.to_owned()),
        ("subject", "objects/original/cat.png".to_owned()),
        ("time", updated),
        ("datacontenttype", "application/json".to_owned()),
        ("bucket", BUCKET.to_owned()),
    ];
    let request = binary_mode(
        stack.post_event(nube_images::THUMBNAIL_FUNCTION),
        &attributes,
        object.to_string().into_bytes(),
    );
    let done = stack.send("the storage event", request).await;
    assert!(
        done.status.is_success(),
        "make-thumbnails takes the finalized event: {} {}",
        done.status,
        done.text()
    );

    let image = stack.get("/images/cat.png").await;
    if image.status == StatusCode::NOT_FOUND
        && stack
            .container
            .log_text()
            .contains("the upload was replaced after this event")
    {
        panic!(
            "make-thumbnails took the event for a stale one and skipped it: the event's etag is \
             StorageObjectData.etag ({:?}, the JSON API's entity tag), the bucket's is the XML \
             API's ETag that object_store's head returns (for this non-composite object its MD5 \
             in hex), and Cloud Storage documents that the two differ for the same object. \
             nube-gcp's storage decoder must give BlobCreated an etag in the XML API's form \
             (the hex of data.md5Hash), or none",
            object["etag"]
        );
    }
    assert_eq!(
        image.status,
        200,
        "make-thumbnails recorded the image: {}",
        image.text()
    );
    let image = image.json();
    assert_eq!(image["status"], "ready", "{image}");
    assert_eq!(image["width"], 320);
    assert_eq!(image["height"], 240);
    assert_eq!(image["format"], "png");
    assert_eq!(image["size"], original.len());
    assert_eq!(image["thumbnailKey"], "thumbnails/cat.png");
    let thumbnail = stack.get("/images/cat.png/thumbnail").await;
    assert_eq!(thumbnail.status, 200, "{}", thumbnail.text());
    assert_eq!(thumbnail.content_type, "image/jpeg");
    let decoded = image::load_from_memory_with_format(&thumbnail.body, image::ImageFormat::Jpeg)
        .expect("the thumbnail is a JPEG");
    assert_eq!(
        (decoded.width(), decoded.height()),
        (nube_images::THUMBNAIL_SIZE, nube_images::THUMBNAIL_SIZE)
    );
    let (status, _) = stack
        .gcs
        .request(
            "GET",
            &format!("/storage/v1/b/{BUCKET}/o/thumbnails%2Fcat.png"),
            "",
        )
        .expect("gcp-storage-emulator answers");
    assert_eq!(status, 200, "the thumbnail is an object of the bucket");

    // ---- orders: Firestore created events, protobuf data ----
    let request = stack.post("/orders").json(&json!({
        "userId": "u1",
        "restaurantId": "r1",
        "items": [{"sku": "pizza", "qty": 2, "price": 9.5}],
    }));
    let placed = stack.send("POST /orders", request).await;
    assert_eq!(placed.status, 201, "{}", placed.text());
    let placed = placed.json();
    assert_eq!(placed["status"], "PENDING");
    let order_id = placed["orderId"].as_str().expect("an orderId").to_owned();

    // OrderCreated, as Eventarc delivers it: binary mode, protobuf data.
    let created = stack.order_event(&order_id, 1).await;
    assert_eq!(
        document_path(&created),
        format!(
            "{COLLECTION_PREFIX}{}/{order_id}-000001",
            nube_orders::EVENTS
        ),
        "the event is in the prefixed collection, under its id"
    );
    let (attributes, data) = firestore_created(&created, "e2e-order-created");
    let request = binary_mode(
        stack.post_event(nube_orders::READ_MODEL_FUNCTION),
        &attributes,
        data.clone(),
    );
    let answer = stack.send("the OrderCreated event", request).await;
    assert!(
        answer.status.is_success(),
        "orders-read-model takes OrderCreated: {} {}",
        answer.status,
        answer.text()
    );

    // The read model appended OrderConfirmed: delivered too, in structured mode.
    let confirmed = stack.order_event(&order_id, 2).await;
    assert_eq!(
        confirmed["fields"]["type"]["stringValue"], "OrderConfirmed",
        "{confirmed}"
    );
    let (attributes2, data2) = firestore_created(&confirmed, "e2e-order-confirmed");
    let request = structured_mode(
        stack.post_event(nube_orders::READ_MODEL_FUNCTION),
        &attributes2,
        &data2,
    );
    let answer = stack.send("the OrderConfirmed event", request).await;
    assert!(
        answer.status.is_success(),
        "orders-read-model takes OrderConfirmed in structured mode: {} {}",
        answer.status,
        answer.text()
    );
    // A redelivery (same id) changes nothing: still two events.
    let request = binary_mode(
        stack.post_event(nube_orders::READ_MODEL_FUNCTION),
        &attributes,
        data,
    );
    let again = stack.send("OrderCreated again", request).await;
    assert!(
        again.status.is_success(),
        "{} {}",
        again.status,
        again.text()
    );
    let events = stack.documents(&format!("{COLLECTION_PREFIX}{}", nube_orders::EVENTS));
    let of_order = events
        .iter()
        .filter(|d| d["fields"]["orderId"]["stringValue"] == order_id.as_str())
        .count();
    assert_eq!(of_order, 2, "a redelivery appends nothing: {events:?}");

    let order = stack.get(&format!("/orders/{order_id}")).await;
    assert_eq!(order.status, 200, "{}", order.text());
    let order = order.json();
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    assert_eq!(order["version"], 2);
    assert_eq!(order["total"], 19.0);
    assert!(order["estimatedDeliveryAt"].is_string(), "{order}");
    let projected = stack
        .document(&format!(
            "{COLLECTION_PREFIX}{}/{order_id}",
            nube_orders::ORDERS
        ))
        .expect("the read model wrote the order");
    assert_eq!(
        projected["fields"]["status"]["stringValue"], "CONFIRMED",
        "{projected}"
    );
    assert!(
        stack
            .document(&format!(
                "{COLLECTION_PREFIX}{}/{order_id}-confirmed",
                nube_orders::NOTIFICATIONS
            ))
            .is_some(),
        "the user was notified"
    );

    // ---- the timer: Cloud Scheduler's HTTP target ----
    let request = stack
        .post_event(nube_orders::CLEANUP_FUNCTION)
        .header("X-CloudScheduler", "true")
        .header(
            "X-CloudScheduler-JobName",
            "delivery-app-cleanup-expired-orders",
        )
        .header("X-CloudScheduler-ScheduleTime", "2026-05-01T02:00:00Z")
        .header("User-Agent", "Google-Cloud-Scheduler");
    let tick = stack.send("the Cloud Scheduler run", request).await;
    assert!(
        tick.status.is_success(),
        "cleanup-expired-orders runs: {} {}",
        tick.status,
        tick.text()
    );
    assert!(
        stack
            .events
            .log_text()
            .contains("expired pending orders cleaned up"),
        "the cleanup ran its query:\n{}",
        stack.events.log_text()
    );

    // ---- the public service takes no event: anyone on the internet may call it ----
    let request = stack
        .post(&format!("/{}", nube_orders::CLEANUP_FUNCTION))
        .header("X-CloudScheduler-JobName", "forged")
        .header("X-CloudScheduler-ScheduleTime", "2026-05-02T02:00:00Z");
    let forged = stack
        .send("a timer posted to the public service", request)
        .await;
    assert_eq!(forged.status, 404, "{}", forged.text());
    assert!(
        !stack.container.log_text().contains("cleaned up"),
        "{}",
        stack.container.log_text()
    );

    // ---- not a CloudEvent, or the wrong one: 400 with the reason, and it serves on ----
    let request = stack
        .post_event(nube_images::THUMBNAIL_FUNCTION)
        .json(&json!({"name": "original/cat.png"}));
    let refused = stack.send("a plain POST to make-thumbnails", request).await;
    assert_eq!(refused.status, 400, "{}", refused.text());
    let reason = refused.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        reason.contains("not a CloudEvent") && reason.contains("make-thumbnails"),
        "the 400 says why: {reason}"
    );
    let storage_event = [
        ("specversion", "1.0".to_owned()),
        ("id", "e2e-wrong-type".to_owned()),
        (
            "source",
            format!("//storage.googleapis.com/projects/_/buckets/{BUCKET}"),
        ),
        ("type", FINALIZED.to_owned()),
        ("datacontenttype", "application/json".to_owned()),
    ];
    let request = binary_mode(
        stack.post_event(nube_orders::READ_MODEL_FUNCTION),
        &storage_event,
        object.to_string().into_bytes(),
    );
    let refused = stack
        .send("a storage event to orders-read-model", request)
        .await;
    assert_eq!(refused.status, 400, "{}", refused.text());
    let reason = refused.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        reason.contains(FINALIZED) && reason.contains("document-created"),
        "the 400 names the type sent and the types taken: {reason}"
    );
    let served = stack.get("/todos").await;
    assert_eq!(served.status, 200, "the server serves on after refusing");
    stack.container.check_alive();
    stack.events.check_alive();

    // ---- SIGTERM: Cloud Run stopping the instance ----
    let pid = stack.container.child.id().to_string();
    let signalled = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(signalled.success(), "SIGTERM sent to {pid}");
    let stopping = Instant::now();
    let status = loop {
        if let Some(status) = stack.container.child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            stopping.elapsed() < PATIENCE,
            "the delivery-app did not stop within {PATIENCE:?} of SIGTERM:\n{}",
            stack.container.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let log = stack.container.log_text();
    assert!(
        status.success(),
        "the delivery-app exits cleanly on SIGTERM ({status}):\n{log}"
    );
    assert!(
        log.contains("SIGTERM") && log.contains("nube-gcp stopped"),
        "it drained and stopped:\n{log}"
    );
    assert!(
        stack
            .http
            .get(stack.container.url("/todos"))
            .send()
            .await
            .is_err(),
        "nothing serves on the port after the shutdown"
    );

    eprintln!(
        "the delivery-app container served every trigger against the emulators in {:.1?}",
        started.elapsed()
    );
}
