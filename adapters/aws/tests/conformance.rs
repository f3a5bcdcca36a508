//! Every AWS payload sample in `$NUBE_CONFORMANCE_DIR/aws` (recursively, `*.json`)
//! through the runtime: HTTP requests through the HTTP path, S3, DynamoDB Streams and
//! EventBridge payloads through theirs, and everything nube does not take (SQS,
//! responses, docs, templates) refused with a clear message.
//!
//! Skipped, saying so, when `NUBE_CONFORMANCE_DIR` is not set. Run it with
//! `NUBE_CONFORMANCE_DIR=/path/to/conformance cargo test -p nube-aws --test conformance -- --nocapture`.

#[path = "support/requests.rs"]
mod requests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nube::axum::routing::any;
use nube::http::Routes;
use nube::store::MemoryStore;
use nube::{App, BlobCreated, Context, DocumentCreated, DocumentStore, Resources, TimerTick};
use nube_aws::blob::S3Record;
use nube_aws::document::StreamRecord;
use nube_aws::names::ResourceNames;
use nube_aws::shape::{EventShape, classify};
use nube_aws::{Dispatcher, HandlerError};
use serde_json::{Value, json};

async fn echo(method: http::Method, uri: http::Uri, body: bytes::Bytes) -> nube::http::Json<Value> {
    nube::http::Json(json!({
        "method": method.as_str(),
        "path": uri.path(),
        "len": body.len(),
    }))
}

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
        .http(
            "api",
            Routes::new()
                .route("/", any(echo))
                .route("/{*path}", any(echo)),
        )
        .timer(
            "tick",
            "rate(5 minutes)",
            |t: TimerTick, ctx: Context| async move {
                record(&ctx, &t.event_id, json!({"time": t.scheduled_time})).await
            },
        )
        .on_blob_created(
            "thumbs",
            "uploads",
            "",
            |b: BlobCreated, ctx: Context| async move {
                record(&ctx, &b.event_id, json!({"key": b.key})).await
            },
        )
        .on_document_created(
            "on-doc",
            "docs",
            |d: DocumentCreated<Value>, ctx: Context| async move {
                record(&ctx, &d.event_id, json!({"id": d.id})).await
            },
        )
        .collection("seen")
}

struct Runner {
    app: Arc<App>,
    store: Arc<MemoryStore>,
}

impl Runner {
    fn new() -> Self {
        Self {
            app: Arc::new(app()),
            store: Arc::new(MemoryStore::new()),
        }
    }

    /// The dispatcher for `function`, the invocation's Lambda context and deadline.
    fn invocation(
        &self,
        function: &str,
        names: ResourceNames,
    ) -> (Dispatcher, lambda_runtime::Context, Option<Instant>) {
        let resources = Resources::new(self.store.clone());
        let dispatcher = Dispatcher::new(self.app.clone(), function, resources, names).unwrap();
        let mut lambda = lambda_runtime::Context::default();
        lambda.request_id = "conformance-req".into();
        (
            dispatcher,
            lambda,
            Some(Instant::now() + Duration::from_secs(10)),
        )
    }

    async fn run(
        &self,
        function: &str,
        names: ResourceNames,
        payload: Value,
    ) -> Result<Value, HandlerError> {
        let (dispatcher, lambda, deadline) = self.invocation(function, names);
        dispatcher.handle(payload, lambda, deadline).await
    }

    /// As [`Runner::run`], from the payload's text (`Dispatcher::handle_json`).
    async fn run_text(&self, function: &str, payload: &str) -> Result<Value, HandlerError> {
        let (dispatcher, lambda, deadline) = self.invocation(function, ResourceNames::new());
        let answer = dispatcher.handle_json(payload, lambda, deadline).await?;
        Ok(serde_json::from_str(answer.get()).unwrap())
    }

    async fn seen(&self) -> usize {
        self.store
            .query("seen", &nube::Query::new().limit(1000))
            .await
            .unwrap()
            .documents
            .len()
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Decoded,
    Acknowledged,
    Refused,
}

/// A refusal is clear when it names the function, says what the payload is, and
/// says what the function takes.
fn assert_clear_mismatch(file: &str, function: &str, shape: EventShape, e: &HandlerError) {
    assert_eq!(e.error_type, HandlerError::EVENT_MISMATCH, "{file}: {e}");
    assert!(
        e.error_message.contains(&format!("{function:?}")),
        "{file}: the refusal does not name the function: {e}"
    );
    assert!(
        e.error_message.contains(shape.describe()),
        "{file}: the refusal does not say what the payload is: {e}"
    );
}

async fn check_http(
    file: &str,
    runner: &Runner,
    payload: Value,
    shape: EventShape,
) -> (Outcome, String) {
    let method = payload
        .get("httpMethod")
        .or_else(|| payload.pointer("/requestContext/http/method"))
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_owned();
    // The path the app's routes see: a REST `path` as sent, a 2.0 `rawPath` without
    // the stage it starts with on the execute-api endpoint (ALB paths have no stage).
    // Only paths that need no percent-encoding are compared.
    let stage = payload
        .pointer("/requestContext/stage")
        .and_then(Value::as_str);
    let endpoint = payload
        .pointer("/requestContext/domainName")
        .and_then(Value::as_str)
        .is_none_or(|d| d.contains(".execute-api."));
    let routed = match shape {
        EventShape::ApiGatewayRest => payload["path"].as_str().map(str::to_owned),
        EventShape::ApiGatewayHttp | EventShape::FunctionUrl => {
            payload["rawPath"].as_str().map(|p| match endpoint {
                true => nube_aws::http::without_stage(stage, p).to_owned(),
                false => p.to_owned(),
            })
        }
        _ => None,
    };
    let text = payload.to_string();
    let response = runner
        .run("api", ResourceNames::new(), payload)
        .await
        .unwrap_or_else(|e| panic!("{file}: the HTTP request failed: {e}"));
    // The bootstrap reads a payload 2.0 request straight from its text into its
    // type: the same answer.
    if nube_aws::http::read_payload_v2(&text).is_some() {
        requests::assert_v2_conversions_agree(file, &text);
        let from_text = runner
            .run_text("api", &text)
            .await
            .unwrap_or_else(|e| panic!("{file}: the HTTP request failed from its text: {e}"));
        assert_eq!(response, from_text, "{file}");
    }
    match shape {
        EventShape::ApiGatewayRest => {
            assert!(response.get("headers").is_none(), "{file}: {response}");
            assert!(
                response["multiValueHeaders"].is_object(),
                "{file}: {response}"
            );
        }
        EventShape::ApiGatewayHttp | EventShape::FunctionUrl => {
            assert!(response["cookies"].is_array(), "{file}: {response}");
            assert!(
                response.get("multiValueHeaders").is_none(),
                "{file}: {response}"
            );
        }
        EventShape::Alb => {
            let status = response["statusCode"].to_string();
            assert!(
                response["statusDescription"]
                    .as_str()
                    .is_some_and(|d| d.starts_with(&format!("{status} "))),
                "{file}: {response}"
            );
        }
        _ => unreachable!(),
    }
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    if response["statusCode"] == 400 {
        // A request lambda_http cannot take (a body marked base64 that is not) is
        // answered 400, in its own shape, saying why.
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.len() > 20, "{file}: unclear 400: {response}");
        return (Outcome::Refused, format!("answered 400: {message}"));
    }
    assert_eq!(response["statusCode"], 200, "{file}: {response}");
    assert_eq!(body["method"], method, "{file}: {body}");
    let plain = |p: &String| {
        p.starts_with('/')
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/-_.~".contains(&b))
    };
    if let Some(routed) = routed.filter(plain) {
        assert_eq!(body["path"], routed, "{file}: the routed path");
    }
    (
        Outcome::Decoded,
        format!(
            "{} {} -> 200",
            body["method"].as_str().unwrap(),
            body["path"].as_str().unwrap()
        ),
    )
}

async fn check_s3(file: &str, runner: &Runner, payload: Value) -> String {
    let records = nube_aws::blob::decode(&payload, &ResourceNames::new())
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    let mut names = ResourceNames::new();
    let mut created = 0;
    let mut skipped = 0;
    let mut keys = Vec::new();
    for r in &records {
        match r {
            S3Record::Created(b) => {
                created += 1;
                keys.push(b.key.clone());
                names = names.with_bucket("uploads", b.bucket.clone());
                assert!(!b.key.contains('+'), "{file}: key not decoded: {}", b.key);
            }
            S3Record::Skipped { .. } => skipped += 1,
            S3Record::Invalid { key, error } => panic!("{file}: record {key}: {error}"),
        }
    }
    let before = runner.seen().await;
    let out = runner
        .run("thumbs", names, payload)
        .await
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(out, Value::Null, "{file}");
    assert_eq!(runner.seen().await - before, created, "{file}");
    format!("{created} created ({keys:?}), {skipped} skipped")
}

fn check_images(file: &str, record: &Value) -> usize {
    let mut attributes = 0;
    for which in ["NewImage", "OldImage", "Keys"] {
        if let Some(image) = record
            .pointer(&format!("/dynamodb/{which}"))
            .and_then(Value::as_object)
        {
            for (name, attribute) in image {
                nube_aws::document::attribute_to_json(attribute)
                    .unwrap_or_else(|e| panic!("{file}: {which}.{name}: {e}"));
                attributes += 1;
            }
        }
    }
    attributes
}

async fn check_dynamodb(file: &str, runner: &Runner, payload: Value) -> (Outcome, String) {
    let records: Vec<Value> = payload["Records"].as_array().unwrap().clone();
    let attributes: usize = records.iter().map(|r| check_images(file, r)).sum();
    let decoded = nube_aws::document::decode(&payload, &ResourceNames::new())
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    let mut created = 0;
    let mut skipped = 0;
    let mut names = ResourceNames::new();
    let mut invalid = Vec::new();
    for r in &decoded {
        match r {
            StreamRecord::Created { event, .. } => {
                created += 1;
                names = names.with_table("docs", event.collection.clone());
            }
            StreamRecord::Skipped { .. } => skipped += 1,
            StreamRecord::Invalid { error, .. } => invalid.push(error.to_string()),
        }
    }
    let before = runner.seen().await;
    let out = runner
        .run("on-doc", names, payload)
        .await
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    // Records nube cannot take are logged with a clear reason and skipped (a retry
    // would not mend them); the rest of the batch runs.
    assert_eq!(out, json!({"batchItemFailures": []}), "{file}");
    assert_eq!(runner.seen().await - before, created, "{file}");
    if invalid.is_empty() {
        (
            Outcome::Decoded,
            format!("{created} inserts, {skipped} skipped, {attributes} attributes converted"),
        )
    } else {
        for e in &invalid {
            assert!(e.len() > 30, "{file}: unclear refusal {e:?}");
        }
        (
            Outcome::Refused,
            format!(
                "{attributes} attributes converted; record refused: {}",
                invalid[0]
            ),
        )
    }
}

#[tokio::test]
async fn every_aws_sample_decodes_or_is_refused_clearly() {
    let Some(dir) = std::env::var_os("NUBE_CONFORMANCE_DIR") else {
        println!("skipped: NUBE_CONFORMANCE_DIR is not set");
        return;
    };
    let root = PathBuf::from(dir).join("aws");
    let mut files = Vec::new();
    samples(&root, &mut files);
    assert!(
        !files.is_empty(),
        "no *.json samples under {}",
        root.display()
    );
    let mut results = Vec::new();
    for path in &files {
        let runner = Runner::new();
        let file = path.strip_prefix(&root).unwrap().display().to_string();
        let text = std::fs::read_to_string(path).unwrap();
        let payload: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                results.push((file, Outcome::Refused, format!("not JSON: {e}")));
                continue;
            }
        };
        let shape = classify(&payload);
        let (outcome, note) = match shape {
            s if s.is_http() => check_http(&file, &runner, payload, s).await,
            EventShape::S3 => (Outcome::Decoded, check_s3(&file, &runner, payload).await),
            EventShape::DynamoDbStream => check_dynamodb(&file, &runner, payload).await,
            EventShape::DynamoDbRecord => {
                let attributes = check_images(&file, &payload);
                match nube_aws::document::decode_record(&payload, &ResourceNames::new()) {
                    StreamRecord::Created { event, .. } => (
                        Outcome::Decoded,
                        format!(
                            "record alone: {}/{} ({attributes} attributes); as a payload: {}",
                            event.collection,
                            event.id,
                            {
                                let e = runner
                                    .run("on-doc", ResourceNames::new(), payload.clone())
                                    .await
                                    .unwrap_err();
                                assert_clear_mismatch(&file, "on-doc", shape, &e);
                                "refused (not wrapped in Records)"
                            }
                        ),
                    ),
                    other => panic!("{file}: {other:?}"),
                }
            }
            EventShape::ScheduledEvent => {
                let tick = nube_aws::timer::decode(&payload, "rate(5 minutes)")
                    .unwrap_or_else(|e| panic!("{file}: {e}"));
                let out = runner
                    .run("tick", ResourceNames::new(), payload)
                    .await
                    .unwrap_or_else(|e| panic!("{file}: {e}"));
                assert_eq!(out, Value::Null);
                (
                    Outcome::Decoded,
                    format!("tick {} at {}", tick.event_id, tick.scheduled_time),
                )
            }
            EventShape::S3TestEvent => {
                let out = runner
                    .run("thumbs", ResourceNames::new(), payload)
                    .await
                    .unwrap_or_else(|e| panic!("{file}: {e}"));
                assert_eq!(out, Value::Null);
                (
                    Outcome::Acknowledged,
                    "s3:TestEvent acknowledged, nothing run".into(),
                )
            }
            other => {
                // Not a trigger nube supports: every kind of function refuses it.
                let mut message = String::new();
                for function in ["api", "tick", "thumbs", "on-doc"] {
                    let e = runner
                        .run(function, ResourceNames::new(), payload.clone())
                        .await
                        .expect_err(&format!("{file}: {function} took {other:?}"));
                    if other == EventShape::Unknown && function == "api" {
                        // The HTTP path also tries lambda_http's own guess.
                        assert_eq!(e.error_type, HandlerError::EVENT_MISMATCH, "{file}: {e}");
                        assert!(e.error_message.contains("\"api\""), "{file}: {e}");
                    } else {
                        assert_clear_mismatch(&file, function, other, &e);
                    }
                    if function == "tick" {
                        message = e.error_message;
                    }
                }
                (Outcome::Refused, message)
            }
        };
        results.push((file, outcome, note));
    }
    let count = |o: Outcome| results.iter().filter(|r| r.1 == o).count();
    println!("AWS conformance samples under {}:", root.display());
    for (file, outcome, note) in &results {
        println!("  {outcome:<12?} {file}: {note}");
    }
    println!(
        "{} samples: {} decoded, {} acknowledged, {} refused",
        results.len(),
        count(Outcome::Decoded),
        count(Outcome::Acknowledged),
        count(Outcome::Refused)
    );
}
