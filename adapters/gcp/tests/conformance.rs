//! Every Google Cloud sample in `$NUBE_CONFORMANCE_DIR/gcp` (recursively, `*.json`)
//! through the server: event data samples (`examples/binary/*`, `testdata/*`) as
//! binary-mode CloudEvents of their type, structured samples (`examples/structured/*`)
//! as they are, and anything that is no event (the JSON schemas) refused with a
//! clear 400 by the functions that need a CloudEvent. Skipped (passing) when
//! `NUBE_CONFORMANCE_DIR` is not set. Run it with
//! `NUBE_CONFORMANCE_DIR=/path/to/conformance cargo test -p nube-gcp --test conformance -- --nocapture`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::{Request, StatusCode};
use http_body_util::BodyExt;
use nube::axum::body::Body;
use nube::store::MemoryStore;
use nube::{App, BlobCreated, Context, DocumentCreated, DocumentStore, Resources, TimerTick};
use nube_gcp::names::ResourceNames;
use nube_gcp::{Config, Server};
use serde_json::{Value, json};
use tower::ServiceExt;

fn safe_id(s: &str) -> String {
    s.replace(['/', '\\', '?', '#'], "_")
}

async fn record(ctx: &Context, id: &str, value: Value) -> nube::Result<()> {
    ctx.collection::<Value>("seen")
        .put(&safe_id(id), &value)
        .await?;
    Ok(())
}

fn app() -> App {
    App::new("conformance")
        .timer(
            "tick",
            "rate(5 minutes)",
            |t: TimerTick, ctx: Context| async move {
                record(&ctx, &t.event_id, json!({"at": t.scheduled_time})).await
            },
        )
        .on_blob_created(
            "thumbs",
            "uploads",
            "",
            |b: BlobCreated, ctx: Context| async move {
                record(&ctx, &b.event_id, json!({"key": b.key, "size": b.size})).await
            },
        )
        .on_document_created(
            "on-doc",
            "docs",
            |d: DocumentCreated<Value>, ctx: Context| async move {
                record(
                    &ctx,
                    &d.event_id,
                    json!({"id": d.id, "document": d.document}),
                )
                .await
            },
        )
        .collection("seen")
}

struct Runner {
    store: Arc<MemoryStore>,
    server: Server,
}

impl Runner {
    fn new(names: ResourceNames) -> Self {
        let store = Arc::new(MemoryStore::new());
        let server = Server::new(
            Arc::new(app()),
            Config::default(),
            Resources::new(store.clone()),
            names,
        )
        .unwrap();
        Self { store, server }
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let response = self.server.router().oneshot(req).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn seen(&self) -> Vec<Value> {
        self.store
            .query("seen", &nube::Query::new().limit(1000))
            .await
            .unwrap()
            .documents
            .into_iter()
            .map(|d| d.value)
            .collect()
    }
}

fn samples(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            samples(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Decoded,
    Refused,
}

/// The function, CloudEvent type and resource-name mapping for a data sample, by
/// the message its file is named after.
fn route_of(
    file: &str,
    data: &Value,
) -> Option<(&'static str, &'static str, ResourceNames, String)> {
    let stem = file.rsplit('/').next().unwrap_or(file);
    if stem.starts_with("StorageObjectData") {
        let bucket = data["bucket"]
            .as_str()
            .unwrap_or("sample-bucket")
            .to_owned();
        let source = format!("//storage.googleapis.com/projects/_/buckets/{bucket}");
        Some((
            "thumbs",
            "google.cloud.storage.object.v1.finalized",
            ResourceNames::new().with_bucket("uploads", bucket),
            source,
        ))
    } else if stem.starts_with("DocumentEventData") {
        let name = data
            .pointer("/value/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let path = name
            .split_once("/documents/")
            .map(|(_, p)| p)
            .unwrap_or("docs/x");
        let collection = path
            .rsplit_once('/')
            .map(|(c, _)| c)
            .unwrap_or("docs")
            .to_owned();
        Some((
            "on-doc",
            "google.cloud.firestore.document.v1.created",
            ResourceNames::new().with_collection("docs", collection),
            "//firestore.googleapis.com/projects/project-id/databases/(default)".to_owned(),
        ))
    } else if stem.starts_with("MessagePublishedData") {
        Some((
            "tick",
            "google.cloud.pubsub.topic.v1.messagePublished",
            ResourceNames::new(),
            "//pubsub.googleapis.com/projects/p/topics/t".to_owned(),
        ))
    } else if stem.starts_with("SchedulerJobData") {
        Some((
            "tick",
            "google.cloud.scheduler.job.v1.executed",
            ResourceNames::new(),
            "//cloudscheduler.googleapis.com/projects/p/locations/l/jobs/j".to_owned(),
        ))
    } else {
        None
    }
}

async fn check_data(file: &str, data: Value, text: String) -> (Outcome, String) {
    let Some((function, ty, names, source)) = route_of(file, &data) else {
        return check_not_an_event(file, text).await;
    };
    let runner = Runner::new(names);
    let subject = data
        .pointer("/value/name")
        .and_then(Value::as_str)
        .and_then(|n| n.split_once("/documents/"))
        .map(|(_, p)| format!("documents/{p}"))
        .or_else(|| data["name"].as_str().map(|n| format!("objects/{n}")));
    let mut req = Request::post(format!("/{function}"))
        .header("ce-specversion", "1.0")
        .header("ce-id", format!("conformance-{}", safe_id(file)))
        .header("ce-source", source)
        .header("ce-type", ty)
        .header("ce-time", "2024-05-01T00:00:00Z")
        .header("content-type", "application/json");
    if let Some(subject) = subject {
        req = req.header("ce-subject", subject);
    }
    let (status, body) = runner
        .send(req.body(Body::from(text.clone())).unwrap())
        .await;
    assert_eq!(status, StatusCode::OK, "{file}: {body}");
    let seen = runner.seen().await;
    assert_eq!(seen.len(), 1, "{file}: the function did not run once");
    if ty == "google.cloud.pubsub.topic.v1.messagePublished" {
        check_push(file, &data, text).await;
    }
    (Outcome::Decoded, format!("{ty} -> {function}: {}", seen[0]))
}

/// A `MessagePublishedData` is also what a Pub/Sub push subscription posts, without
/// Eventarc: the timer runs once, as the message's id.
async fn check_push(file: &str, data: &Value, text: String) {
    let message = &data["message"];
    let id = message["messageId"]
        .as_str()
        .or(message["message_id"].as_str())
        .unwrap_or_else(|| panic!("{file}: no message id"));
    let runner = Runner::new(ResourceNames::new());
    let req = Request::post("/tick")
        .header("content-type", "application/json")
        .body(Body::from(text))
        .unwrap();
    let (status, body) = runner.send(req).await;
    assert_eq!(status, StatusCode::OK, "{file} pushed: {body}");
    let ran = runner.store.get("seen", &safe_id(id)).await.unwrap();
    assert!(ran.is_some(), "{file} pushed: no tick {id:?}");
}

async fn check_structured(file: &str, envelope: Value, text: String) -> (Outcome, String) {
    let ty = envelope["type"].as_str().unwrap_or_default().to_owned();
    let data = envelope.get("data").cloned().unwrap_or(Value::Null);
    let (function, names) = match route_of(
        match ty.as_str() {
            "google.cloud.storage.object.v1.finalized" => "StorageObjectData",
            "google.cloud.pubsub.topic.v1.messagePublished" => "MessagePublishedData",
            "google.cloud.firestore.document.v1.created" => "DocumentEventData",
            _ => "",
        },
        &data,
    ) {
        Some((f, _, names, _)) => (f, names),
        None => return check_not_an_event(file, text).await,
    };
    let runner = Runner::new(names);
    let req = Request::post(format!("/{function}"))
        .header("content-type", "application/cloudevents+json")
        .body(Body::from(text))
        .unwrap();
    let (status, body) = runner.send(req).await;
    assert_eq!(status, StatusCode::OK, "{file}: {body}");
    let seen = runner.seen().await;
    assert_eq!(seen.len(), 1, "{file}");
    (
        Outcome::Decoded,
        format!("structured {ty} -> {function}: {}", seen[0]),
    )
}

/// Not an event: the functions that need a CloudEvent refuse it with a 400 that
/// names the function and says what it takes.
async fn check_not_an_event(file: &str, text: String) -> (Outcome, String) {
    let runner = Runner::new(ResourceNames::new());
    let mut reason = String::new();
    for function in ["thumbs", "on-doc"] {
        let req = Request::post(format!("/{function}"))
            .header("content-type", "application/json")
            .body(Body::from(text.clone()))
            .unwrap();
        let (status, body) = runner.send(req).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{file}: {function}: {body}"
        );
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            message.contains(&format!("{function:?}")),
            "{file}: {message}"
        );
        assert!(message.contains("not a CloudEvent"), "{file}: {message}");
        reason = message;
    }
    assert!(runner.seen().await.is_empty(), "{file}");
    (Outcome::Refused, reason)
}

#[tokio::test]
async fn every_gcp_sample_decodes_or_is_refused_clearly() {
    let Some(dir) = std::env::var_os("NUBE_CONFORMANCE_DIR") else {
        println!("skipped: NUBE_CONFORMANCE_DIR is not set");
        return;
    };
    let root = PathBuf::from(dir).join("gcp");
    let mut files = Vec::new();
    samples(&root, &mut files);
    assert!(
        !files.is_empty(),
        "no *.json samples under {}",
        root.display()
    );
    let mut results = Vec::new();
    for path in &files {
        let file = path.strip_prefix(&root).unwrap().display().to_string();
        let text = std::fs::read_to_string(path).unwrap();
        let value: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                results.push((file, Outcome::Refused, format!("not JSON: {e}")));
                continue;
            }
        };
        let (outcome, note) = if file.contains("jsonschema/") {
            check_not_an_event(&file, text).await
        } else if file.contains("structured/") {
            check_structured(&file, value, text).await
        } else {
            check_data(&file, value, text).await
        };
        results.push((file, outcome, note));
    }
    let count = |o: Outcome| results.iter().filter(|r| r.1 == o).count();
    println!("GCP conformance samples under {}:", root.display());
    for (file, outcome, note) in &results {
        println!("  {outcome:<8?} {file}: {note}");
    }
    let (decoded, refused) = (count(Outcome::Decoded), count(Outcome::Refused));
    println!(
        "{} samples: {decoded} decoded, {refused} refused",
        results.len()
    );
    // Every event sample decodes; only what is no event (the JSON schemas) is refused.
    let schemas = results
        .iter()
        .filter(|r| r.0.contains("jsonschema/"))
        .count();
    assert_eq!(refused, schemas, "{results:#?}");
    assert!(decoded > 0);
}
