//! The server driven without a socket: every kind of request (fixtures in
//! `tests/fixtures`, written for these tests) through `Server::router()` with
//! `tower::ServiceExt::oneshot`, against a small app that records what it got.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, StatusCode};
use http_body_util::BodyExt;
use nube::axum::body::Body;
use nube::http::Routes;
use nube::store::MemoryStore;
use nube::{App, BlobCreated, Context, DocumentCreated, DocumentStore, Resources, TimerTick};
use nube_gcp::firestore::proto;
use nube_gcp::names::ResourceNames;
use nube_gcp::{Config, Revision, Server};
use prost::Message;
use serde_json::{Value, json};
use tower::ServiceExt;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
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

async fn hello(ctx: Context, revision: Revision) -> nube::http::Json<Value> {
    nube::http::Json(json!({
        "function": ctx.function_name(),
        "provider": ctx.provider().as_str(),
        "invocation_id": ctx.invocation_id(),
        "service": revision.service.as_deref(),
        "revision": revision.revision.as_deref(),
    }))
}

async fn explode() -> &'static str {
    panic!("route exploded with secret detail")
}

fn app() -> App {
    let app = App::new("shop")
        .http(
            "api",
            Routes::new()
                .get("/hello", hello)
                .get("/explode", explode),
        )
        .timer("nightly", "0 2 * * *", |t: TimerTick, ctx: Context| async move {
            record(
                &ctx,
                &t.event_id,
                json!({"kind": "tick", "schedule": t.schedule, "at": t.scheduled_time,
                       "invocation_id": ctx.invocation_id(), "provider": ctx.provider().as_str(),
                       "revision": ctx.platform::<Revision>().and_then(|r| r.revision.as_deref())}),
            )
            .await
        })
        .timer("boom", "rate(1 hour)", |_t: TimerTick, _ctx: Context| async move {
            if true {
                panic!("the timer exploded with secret detail");
            }
            Ok(())
        })
        .timer("sleepy", "rate(1 hour)", |_t: TimerTick, _ctx: Context| async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(())
        })
        .function_timeout("sleepy", Duration::from_millis(200))
        .on_blob_created("thumbs", "uploads", "original/", |b: BlobCreated, ctx: Context| async move {
            record(
                &ctx,
                &b.event_id,
                json!({"kind": "blob", "bucket": b.bucket, "key": b.key, "size": b.size,
                       "content_type": b.content_type, "time": b.time}),
            )
            .await
        })
        .on_document_created("on-order", "orders", |d: DocumentCreated<Value>, ctx: Context| async move {
            record(
                &ctx,
                &d.event_id,
                json!({"kind": "doc", "collection": d.collection, "id": d.id, "document": d.document}),
            )
            .await
        })
        .collection("seen");
    app.validate().expect("the test app is valid");
    app
}

struct Harness {
    store: Arc<MemoryStore>,
    server: Server,
}

impl Harness {
    fn new() -> Self {
        Self::with_config(Config {
            revision: Revision {
                service: Some("shop".into()),
                revision: Some("shop-00001-abc".into()),
                configuration: None,
            },
            project: Some("shop-proj".into()),
            ..Config::default()
        })
    }

    fn with_config(config: Config) -> Self {
        let store = Arc::new(MemoryStore::new());
        let server = Server::new(
            Arc::new(app()),
            config,
            Resources::new(store.clone()),
            ResourceNames::new().with_bucket("uploads", "shop-uploads-phys"),
        )
        .unwrap();
        Self { store, server }
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let response = self.server.router().oneshot(req).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::from(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, body)
    }

    async fn seen(&self, id: &str) -> Option<Value> {
        self.store
            .get("seen", &safe_id(id))
            .await
            .unwrap()
            .map(|d| d.value)
    }

    async fn seen_count(&self) -> usize {
        self.store
            .query("seen", &nube::Query::new().limit(1000))
            .await
            .unwrap()
            .documents
            .len()
    }
}

fn binary(
    path: &str,
    attributes: &[(&str, &str)],
    content_type: &str,
    body: Vec<u8>,
) -> Request<Body> {
    let mut b = Request::post(path)
        .header("ce-specversion", "1.0")
        .header("content-type", content_type);
    for (k, v) in attributes {
        b = b.header(format!("ce-{k}"), *v);
    }
    b.body(Body::from(body)).unwrap()
}

fn structured(path: &str, body: String) -> Request<Body> {
    Request::post(path)
        .header(
            "content-type",
            "application/cloudevents+json; charset=utf-8",
        )
        .body(Body::from(body))
        .unwrap()
}

fn plain_json(path: &str, body: String) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap()
}

fn storage_attributes(id: &str, name: &str) -> Vec<(&'static str, String)> {
    vec![
        ("id", id.to_owned()),
        (
            "source",
            "//storage.googleapis.com/projects/_/buckets/shop-uploads-phys".to_owned(),
        ),
        (
            "type",
            "google.cloud.storage.object.v1.finalized".to_owned(),
        ),
        ("subject", format!("objects/{name}")),
        ("time", "2024-05-01T10:00:00.123Z".to_owned()),
    ]
}

fn attrs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[tokio::test]
async fn http_functions_get_the_router_unchanged_with_context_and_revision() {
    let h = Harness::new();
    let (status, body) = h
        .send(
            Request::get("/hello")
                .header("function-execution-id", "exec-42")
                .header(
                    "x-cloud-trace-context",
                    "105445aa7843bc8bf206b12000100000/1;o=1",
                )
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["function"], "api");
    assert_eq!(body["provider"], "gcp");
    assert_eq!(body["invocation_id"], "exec-42");
    assert_eq!(body["service"], "shop");
    assert_eq!(body["revision"], "shop-00001-abc");
    let (status, body) = h
        .send(Request::get("/nope").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    // GET on an event path is not an event: the HTTP router answers it.
    let (status, _) = h
        .send(Request::get("/nightly").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn http_panics_answer_500_without_detail_and_the_next_request_is_served() {
    let h = Harness::new();
    let (status, body) = h
        .send(Request::get("/explode").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!body.to_string().contains("secret"), "{body}");
    let (status, _) = h
        .send(Request::get("/hello").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn storage_binary_mode() {
    let h = Harness::new();
    let a = storage_attributes("st-1", "original/red flower+1.jpg");
    let (status, body) = h
        .send(binary(
            "/thumbs",
            &attrs(&a),
            "application/json",
            fixture("storage-finalized-data.json").into_bytes(),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let seen = h.seen("st-1").await.expect("the function ran");
    assert_eq!(seen["bucket"], "uploads");
    assert_eq!(seen["key"], "original/red flower+1.jpg");
    assert_eq!(seen["size"], 48213);
    assert_eq!(seen["content_type"], "image/jpeg");
    assert_eq!(seen["time"], "2024-05-01T10:00:00.123Z");
}

#[tokio::test]
async fn storage_structured_mode() {
    let h = Harness::new();
    let (status, body) = h
        .send(structured(
            "/thumbs",
            fixture("storage-finalized-structured.json"),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let seen = h.seen("8210396385313981").await.expect("the function ran");
    assert_eq!(seen["key"], "original/cat.png");
    assert_eq!(seen["size"], 1024);
}

#[tokio::test]
async fn storage_keys_outside_the_prefix_are_acknowledged_without_running() {
    let h = Harness::new();
    let body = fixture("storage-finalized-data.json").replace("original/", "thumbs/");
    let a = storage_attributes("st-2", "thumbs/red flower+1.jpg");
    let (status, _) = h
        .send(binary(
            "/thumbs",
            &attrs(&a),
            "application/json",
            body.into_bytes(),
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h.seen_count().await, 0);
}

fn firestore_value(kind: proto::value::ValueType) -> proto::Value {
    proto::Value {
        value_type: Some(kind),
    }
}

/// The source of the Firestore events below.
const SHOP_DATABASE: &str = "//firestore.googleapis.com/projects/shop-proj/databases/(default)";

/// The data of a `created` event for the document at `path` with `fields`.
fn created_data(path: &str, fields: HashMap<String, proto::Value>) -> proto::DocumentEventData {
    proto::DocumentEventData {
        value: Some(proto::Document {
            name: format!("projects/shop-proj/databases/(default)/documents/{path}"),
            fields,
            create_time: None,
            update_time: None,
        }),
        old_value: None,
        update_mask: None,
    }
}

#[tokio::test]
async fn firestore_protobuf() {
    use proto::value::ValueType as V;
    let h = Harness::new();
    let mut address = HashMap::new();
    address.insert(
        "city".to_owned(),
        firestore_value(V::StringValue("Lyon".into())),
    );
    let mut fields = HashMap::new();
    fields.insert(
        "customer".to_owned(),
        firestore_value(V::StringValue("ada".into())),
    );
    fields.insert("items".to_owned(), firestore_value(V::IntegerValue(3)));
    fields.insert("total".to_owned(), firestore_value(V::DoubleValue(41.5)));
    fields.insert(
        "placedAt".to_owned(),
        firestore_value(V::TimestampValue(proto::Timestamp {
            seconds: 1_714_564_798,
            nanos: 250_000_000,
        })),
    );
    fields.insert(
        "shipTo".to_owned(),
        firestore_value(V::MapValue(proto::MapValue { fields: address })),
    );
    fields.insert(
        "tags".to_owned(),
        firestore_value(V::ArrayValue(proto::ArrayValue {
            values: vec![firestore_value(V::StringValue("gift".into()))],
        })),
    );
    let mut data = created_data("orders/o-1001", fields);
    data.value.as_mut().unwrap().create_time = Some(proto::Timestamp {
        seconds: 1_714_564_800,
        nanos: 0,
    });
    let (status, body) = h
        .send(binary(
            "/on-order",
            &[
                ("id", "fs-1"),
                ("source", SHOP_DATABASE),
                ("type", "google.cloud.firestore.document.v1.created"),
                ("subject", "documents/orders/o-1001"),
                ("database", "(default)"),
                ("document", "orders/o-1001"),
                ("dataschema", "https://github.com/googleapis/google-cloudevents/blob/main/proto/google/events/cloud/firestore/v1/data.proto"),
            ],
            "application/protobuf",
            data.encode_to_vec(),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let seen = h.seen("fs-1").await.expect("the function ran");
    assert_eq!(seen["collection"], "orders");
    assert_eq!(seen["id"], "o-1001");
    assert_eq!(
        seen["document"],
        json!({"customer": "ada", "items": 3, "total": 41.5, "placedAt": "2024-05-01T11:59:58.250Z",
               "shipTo": {"city": "Lyon"}, "tags": ["gift"]})
    );
}

/// In binary mode the `document` extension and the subject are `ce-*` headers, which
/// may come percent-encoded; the id is the document's own, from `value.name`.
#[tokio::test]
async fn firestore_ids_come_from_the_document_name_not_the_headers() {
    let h = Harness::new();
    let data = created_data("orders/o 1002 é", HashMap::new());
    let (status, body) = h
        .send(binary(
            "/on-order",
            &[
                ("id", "fs-encoded"),
                ("source", SHOP_DATABASE),
                ("type", "google.cloud.firestore.document.v1.created"),
                ("subject", "documents/orders/o%201002%20%C3%A9"),
                ("document", "orders/o%201002%20%C3%A9"),
            ],
            "application/protobuf",
            data.encode_to_vec(),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let seen = h.seen("fs-encoded").await.expect("the function ran");
    assert_eq!(seen["collection"], "orders");
    assert_eq!(seen["id"], "o 1002 é");
}

/// Bytes with no content type are read as protobuf, as firebase-functions reads them.
#[tokio::test]
async fn firestore_protobuf_without_a_content_type() {
    use base64::Engine;
    let h = Harness::new();
    let mut fields = HashMap::new();
    fields.insert(
        "items".to_owned(),
        firestore_value(proto::value::ValueType::IntegerValue(2)),
    );
    let data = created_data("orders/o-9", fields);
    let event = json!({
        "specversion": "1.0",
        "id": "fs-b64",
        "source": SHOP_DATABASE,
        "type": "google.cloud.firestore.document.v1.created",
        "subject": "documents/orders/o-9",
        "data_base64": base64::engine::general_purpose::STANDARD.encode(data.encode_to_vec()),
    });
    let (status, body) = h.send(structured("/on-order", event.to_string())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let seen = h.seen("fs-b64").await.expect("the function ran");
    assert_eq!(seen["id"], "o-9");
    assert_eq!(seen["document"], json!({"items": 2}));

    // JSON bytes with no content type stay JSON.
    let mut request = binary(
        "/on-order",
        &[
            ("id", "fs-json-untyped"),
            ("source", SHOP_DATABASE),
            ("type", "google.cloud.firestore.document.v1.created"),
        ],
        "",
        json!({"value": {
            "name": "projects/shop-proj/databases/(default)/documents/orders/o-10",
            "fields": {"items": {"integerValue": "4"}}
        }})
        .to_string()
        .into_bytes(),
    );
    request.headers_mut().remove("content-type");
    let (status, body) = h.send(request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let seen = h.seen("fs-json-untyped").await.expect("the function ran");
    assert_eq!(seen["id"], "o-10");
    assert_eq!(seen["document"], json!({"items": 4}));
}

#[tokio::test]
async fn firestore_json() {
    let h = Harness::new();
    let (status, body) = h
        .send(binary(
            "/on-order",
            &[
                ("id", "fs-2"),
                ("source", SHOP_DATABASE),
                ("type", "google.cloud.firestore.document.v1.created"),
                ("subject", "documents/orders/o-1001"),
            ],
            "application/json",
            fixture("firestore-created-data.json").into_bytes(),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let seen = h.seen("fs-2").await.expect("the function ran");
    assert_eq!(seen["id"], "o-1001");
    assert_eq!(
        seen["document"],
        json!({
            "customer": "ada", "total": 41.5, "items": 3, "paid": false, "note": null,
            "placedAt": "2024-05-01T11:59:58.250Z",
            "shipTo": {"city": "Lyon", "geo": {"latitude": 45.76, "longitude": 4.84}},
            "tags": ["gift", 7],
            "customerRef": "projects/shop-proj/databases/(default)/documents/customers/ada",
            "token": "AAEC"
        })
    );
}

#[tokio::test]
async fn scheduler_http_target_eventarc_and_pubsub() {
    let h = Harness::new();
    let (status, body) = h
        .send(
            Request::post("/nightly")
                .header("x-cloudscheduler", "true")
                .header("x-cloudscheduler-jobname", "shop-nightly")
                .header("x-cloudscheduler-scheduletime", "2024-05-01T02:00:00Z")
                .header("user-agent", "Google-Cloud-Scheduler")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let tick = h.seen("shop-nightly@2024-05-01T02:00:00Z").await.unwrap();
    assert_eq!(tick["schedule"], "0 2 * * *");
    assert_eq!(tick["at"], "2024-05-01T02:00:00Z");
    assert_eq!(tick["provider"], "gcp");
    assert_eq!(
        tick["revision"], "shop-00001-abc",
        "event functions see the revision too"
    );

    let (status, body) = h
        .send(binary(
            "/nightly",
            &[
                ("id", "sched-7"),
                ("source", "//cloudscheduler.googleapis.com/projects/shop-proj/locations/europe-west1/jobs/shop-nightly"),
                ("type", "google.cloud.scheduler.job.v1.executed"),
                ("time", "2024-05-02T02:00:00Z"),
            ],
            "application/json",
            fixture("scheduler-executed-data.json").into_bytes(),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        h.seen("sched-7").await.unwrap()["at"],
        "2024-05-02T02:00:00Z"
    );

    let (status, body) = h
        .send(structured(
            "/nightly",
            fixture("pubsub-message-published-structured.json"),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        h.seen("9102736455").await.unwrap()["at"],
        "2024-05-01T02:00:00.200Z"
    );
}

#[tokio::test]
async fn legacy_envelopes_nested_and_flat() {
    let h = Harness::new();
    let (status, body) = h
        .send(plain_json("/thumbs", fixture("legacy-storage-nested.json")))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let blob = h.seen("5512304879811").await.unwrap();
    assert_eq!(
        (blob["bucket"].as_str(), blob["key"].as_str()),
        (Some("uploads"), Some("original/legacy.gif"))
    );

    let (status, body) = h
        .send(plain_json(
            "/on-order",
            fixture("legacy-firestore-flat.json"),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let doc = h
        .seen("c1f0a3e2-7d44-4d6e-9d1a-0b7f2e1d0c55-0")
        .await
        .unwrap();
    assert_eq!(doc["id"], "o-2002");
    assert_eq!(doc["document"], json!({"customer": "grace", "items": 1}));

    let (status, body) = h
        .send(plain_json("/nightly", fixture("legacy-pubsub-flat.json")))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        h.seen("3344556677").await.unwrap()["at"],
        "2024-05-01T02:00:00Z"
    );
}

#[tokio::test]
async fn not_a_cloud_event_is_400_with_the_reason() {
    let h = Harness::new();
    let (status, body) = h
        .send(plain_json("/thumbs", r#"{"hello": "world"}"#.to_owned()))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("\"thumbs\"") && message.contains("not a CloudEvent"),
        "{message}"
    );
    assert!(
        message.contains("google.cloud.storage.object.v1.finalized"),
        "{message}"
    );
    // Claims to be a CloudEvent and is not one.
    let (status, body) = h
        .send(binary(
            "/thumbs",
            &[("id", "x")],
            "application/json",
            b"{}".to_vec(),
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("binary-mode"),
        "{body}"
    );
    let (status, body) = h.send(structured("/nightly", "{broken".to_owned())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("structured-mode"),
        "{body}"
    );
    assert_eq!(h.seen_count().await, 0);
}

#[tokio::test]
async fn an_event_too_large_is_413_and_one_whose_body_fails_400() {
    let h = Harness::new();
    let big = vec![b' '; 7 * 1024 * 1024];
    let (status, body) = h
        .send(binary("/thumbs", &[], "application/json", big))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let broken = futures::stream::iter([
        Ok(bytes::Bytes::from_static(b"{")),
        Err(std::io::Error::other("connection reset by the secret peer")),
    ]);
    let request = Request::post("/thumbs")
        .header("content-type", "application/json")
        .body(Body::from_stream(broken))
        .unwrap();
    let (status, body) = h.send(request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("could not be read"), "{message}");
    assert!(!body.to_string().contains("secret"), "{body}");
    assert_eq!(h.seen_count().await, 0);
}

#[tokio::test]
async fn a_type_the_function_does_not_take_is_400() {
    let h = Harness::new();
    let a = storage_attributes("st-3", "original/x.jpg");
    let (status, body) = h
        .send(binary(
            "/on-order",
            &attrs(&a),
            "application/json",
            fixture("storage-finalized-data.json").into_bytes(),
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("\"on-order\""), "{message}");
    assert!(
        message.contains("google.cloud.firestore.document.v1.created"),
        "{message}"
    );
    assert!(
        message.contains("google.cloud.storage.object.v1.finalized"),
        "{message}"
    );
    // A storage event of another kind.
    let mut deleted = storage_attributes("st-4", "original/x.jpg");
    deleted[2].1 = "google.cloud.storage.object.v1.deleted".into();
    let (status, _) = h
        .send(binary(
            "/thumbs",
            &attrs(&deleted),
            "application/json",
            b"{}".to_vec(),
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The right type for an unknown bucket: the function refuses it.
    let body = fixture("storage-finalized-data.json").replace("shop-uploads-phys", "someone-else");
    let (status, body) = h
        .send(binary(
            "/thumbs",
            &attrs(&a),
            "application/json",
            body.into_bytes(),
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(h.seen_count().await, 0);
}

#[tokio::test]
async fn handler_panics_and_overruns_fail_only_that_request() {
    let h = Harness::new();
    let (status, body) = h
        .send(Request::post("/boom").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"]["message"], "internal error");
    assert!(!body.to_string().contains("secret"), "{body}");
    let (status, body) = h
        .send(Request::post("/sleepy").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(body["error"]["code"], "timeout");
    let (status, _) = h
        .send(
            Request::post("/nightly")
                .header("x-cloudscheduler-jobname", "j")
                .header("x-cloudscheduler-scheduletime", "2024-05-03T02:00:00Z")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(h.seen("j@2024-05-03T02:00:00Z").await.is_some());
}

#[tokio::test]
async fn function_target_serves_one_function_on_every_path() {
    let h = Harness::with_config(Config {
        function_target: Some("thumbs".into()),
        ..Config::default()
    });
    let (status, body) = h
        .send(structured(
            "/",
            fixture("storage-finalized-structured.json"),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(h.seen_count().await, 1);
    let (status, _) = h
        .send(Request::get("/hello").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);

    let api = Harness::with_config(Config {
        function_target: Some("api".into()),
        ..Config::default()
    });
    let (status, _) = api
        .send(Request::get("/hello").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api
        .send(Request::post("/nightly").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "only the target is served");

    let e = Server::new(
        Arc::new(app()),
        Config {
            function_target: Some("nope".into()),
            ..Config::default()
        },
        Resources::new(Arc::new(MemoryStore::new())),
        ResourceNames::new(),
    )
    .unwrap_err();
    assert!(
        e.0.contains("FUNCTION_TARGET") && e.0.contains("thumbs (blob-created)"),
        "{e}"
    );
}

/// `NUBE_SERVE`: the public half of a split app serves no event (anyone could post
/// one there), the private half no HTTP route.
#[tokio::test]
async fn nube_serve_splits_http_from_events() {
    let http = Harness::with_config(Config {
        serve: nube_gcp::Serve::Http,
        ..Config::default()
    });
    let (status, _) = http
        .send(Request::get("/hello").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = http
        .send(structured(
            "/thumbs",
            fixture("storage-finalized-structured.json"),
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(http.seen_count().await, 0);

    let events = Harness::with_config(Config {
        serve: nube_gcp::Serve::Events,
        ..Config::default()
    });
    let (status, body) = events
        .send(structured(
            "/thumbs",
            fixture("storage-finalized-structured.json"),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(events.seen_count().await, 1);
    let (status, _) = events
        .send(Request::get("/hello").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let read = |v: &str| {
        Config::from_lookup(|var| (var == "NUBE_SERVE").then(|| v.to_owned())).map(|c| c.serve)
    };
    assert_eq!(read("events"), Ok(nube_gcp::Serve::Events));
    assert_eq!(read("http"), Ok(nube_gcp::Serve::Http));
    assert_eq!(read("all"), Ok(nube_gcp::Serve::All));
    let e = read("both").unwrap_err();
    assert!(
        e.0.contains("NUBE_SERVE") && e.0.contains("`events`"),
        "{e}"
    );

    // A target the serve setting leaves out would answer nothing but 404s.
    let e = Server::new(
        Arc::new(app()),
        Config {
            function_target: Some("thumbs".into()),
            serve: nube_gcp::Serve::Http,
            ..Config::default()
        },
        Resources::new(Arc::new(MemoryStore::new())),
        ResourceNames::new(),
    )
    .unwrap_err();
    assert!(
        e.0.contains("FUNCTION_TARGET \"thumbs\" is an event function")
            && e.0.contains("NUBE_SERVE=http"),
        "{e}"
    );
}

#[tokio::test]
async fn sigterm_style_shutdown_drains_requests_in_flight() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = App::new("drain").timer(
        "slow",
        "rate(1 hour)",
        |_t: TimerTick, _c: Context| async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(())
        },
    );
    let server = Server::new(
        Arc::new(app),
        Config::default(),
        Resources::new(Arc::new(MemoryStore::new())),
        ResourceNames::new(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(nube_gcp::serve(listener, server, async move {
        let _ = stopped.await;
    }));
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"POST /slow HTTP/1.1\r\nhost: localhost\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.send(()).unwrap();
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response))
        .await
        .expect("the request in flight finished")
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    tokio::time::timeout(Duration::from_secs(5), serving)
        .await
        .expect("the server stopped after draining")
        .unwrap()
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no new connections"
    );
}
