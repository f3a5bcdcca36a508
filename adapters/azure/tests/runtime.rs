//! The custom-handler server driven through its axum service (`tower::ServiceExt::oneshot`)
//! with the invocation payloads in `tests/fixtures` (written for these tests, shaped like
//! the host's), against a small app that records what it got.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use base64::Engine;
use http::{Request, StatusCode};
use nube::axum::extract::RawQuery;
use nube::axum::routing::any;
use nube::http::Routes;
use nube::store::MemoryStore;
use nube::{
    App, BlobCreated, Context, DocumentCreated, DocumentStore, Error, Resources, TimerTick,
};
use nube_azure::Runtime;
use serde_json::{Value, json};
use tower::ServiceExt;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

async fn echo(
    ctx: Context,
    method: http::Method,
    uri: http::Uri,
    headers: http::HeaderMap,
    RawQuery(raw): RawQuery,
    body: bytes::Bytes,
) -> nube::http::Json<Value> {
    tracing::info!(path = uri.path(), "echo called");
    nube::http::Json(json!({
        "method": method.as_str(),
        "path": uri.path(),
        "raw_query": raw,
        "x_tag": headers.get_all("x-tag").iter().map(|v| v.to_str().unwrap().to_owned()).collect::<Vec<_>>(),
        "body": String::from_utf8_lossy(&body),
        "body_base64": base64::engine::general_purpose::STANDARD.encode(&body),
        "invocation_id": ctx.invocation_id(),
        "function": ctx.function_name(),
        "provider": ctx.provider().as_str(),
    }))
}

async fn png() -> impl nube::axum::response::IntoResponse {
    (
        [(http::header::CONTENT_TYPE, "image/png")],
        vec![0x89u8, b'P', b'N', b'G', 0xff],
    )
}

/// A 200 whose body fails half way, with a secret in the error.
async fn broken() -> axum::body::Body {
    let parts: [Result<&'static [u8], std::io::Error>; 2] = [
        Ok(b"part of it"),
        Err(std::io::Error::other("disk secret gone")),
    ];
    axum::body::Body::from_stream(futures::stream::iter(parts))
}

async fn panics() -> &'static str {
    panic!("route exploded with secret detail")
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(30)).await;
    "too late"
}

fn safe_id(s: &str) -> String {
    s.replace(['/', '\\', '?', '#', ' '], "_")
}

async fn tick(t: TimerTick, ctx: Context) -> nube::Result<()> {
    tracing::info!(schedule = t.schedule, "tick handled");
    ctx.collection::<Value>("seen")
        .put(
            &safe_id(&t.event_id),
            &json!({
                "kind": "tick",
                "scheduled_time": t.scheduled_time,
                "past_due": t.past_due,
                "attempt": ctx.attempt(),
                "invocation_id": ctx.invocation_id(),
            }),
        )
        .await?;
    Ok(())
}

async fn thumbs(b: BlobCreated, ctx: Context) -> nube::Result<()> {
    ctx.collection::<Value>("seen")
        .put(
            &safe_id(&b.event_id),
            &json!({"kind": "blob", "bucket": b.bucket, "key": b.key, "size": b.size,
                    "content_type": b.content_type, "etag": b.etag, "time": b.time,
                    "content": b.content.as_deref().map(<[u8]>::to_vec)}),
        )
        .await?;
    Ok(())
}

async fn on_order(d: DocumentCreated<Value>, ctx: Context) -> nube::Result<()> {
    if d.document.get("reject") == Some(&json!(true)) {
        return Err(Error::bad_request(format!("order {} is malformed", d.id)));
    }
    if d.document.get("fail") == Some(&json!(true)) {
        tracing::warn!(id = d.id, "about to fail");
        return Err(Error::internal(format!("order {} refused", d.id)));
    }
    ctx.collection::<Value>("seen")
        .put(
            &safe_id(&d.event_id),
            &json!({"kind": "doc", "id": d.id, "document": d.document, "attempt": ctx.attempt()}),
        )
        .await?;
    Ok(())
}

fn app() -> App {
    App::new("shop")
        .http(
            "api",
            Routes::new()
                .route("/echo/{*rest}", any(echo))
                .get("/png", png)
                .get("/boom", panics)
                .get("/broken", broken)
                .get("/slow", slow),
        )
        .function_timeout("api", Duration::from_millis(200))
        .timer("nightly", "0 2 * * *", tick)
        .on_blob_created("thumbs", "uploads", "original/", thumbs)
        .on_blob_created("notes", "uploads", "notes/", thumbs)
        .on_document_created("on-order", "orders", on_order)
        .timer(
            "exploding",
            "@hourly",
            |_t: TimerTick, _c: Context| async move { panic!("timer exploded") },
        )
        .timer(
            "sleepy",
            "@hourly",
            |_t: TimerTick, _c: Context| async move {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(())
            },
        )
        .function_timeout("sleepy", Duration::from_millis(100))
        .on_document_created(
            "slow-orders",
            "orders",
            |d: DocumentCreated<Value>, ctx: Context| async move {
                tokio::time::sleep(Duration::from_millis(60)).await;
                on_order(d, ctx).await
            },
        )
        .function_timeout("slow-orders", Duration::from_millis(100))
        .collection("seen")
}

struct Harness {
    router: axum::Router,
    store: Arc<MemoryStore>,
}

impl Harness {
    fn new() -> Self {
        nube_azure::logging::init();
        let store = Arc::new(MemoryStore::new());
        let runtime = Runtime::new(app(), Resources::new(store.clone()), "api");
        Self {
            router: runtime.into_router(),
            store,
        }
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, http::HeaderMap, bytes::Bytes) {
        let response = self.router.clone().oneshot(req).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        (parts.status, parts.headers, bytes)
    }

    async fn invoke(&self, function: &str, body: &str, id: &str) -> (StatusCode, Value) {
        let req = Request::post(format!("/{function}"))
            .header("content-type", "application/json")
            .header("x-azure-functions-invocationid", id)
            .header("user-agent", "Azure-Functions-Host/4.0")
            .body(Body::from(body.to_owned()))
            .unwrap();
        let (status, _, bytes) = self.send(req).await;
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)));
        (status, value)
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

fn logs(answer: &Value) -> Vec<String> {
    answer["Logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn timer_ticks_are_past_due_with_their_scheduled_time() {
    let h = Harness::new();
    let (status, answer) = h
        .invoke("nightly", &fixture("timer-past-due.json"), "inv-timer-1")
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["Outputs"], json!({}));
    assert!(answer["ReturnValue"].is_null());
    let seen = h.seen().await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["past_due"], true);
    assert_eq!(seen[0]["scheduled_time"], "2026-03-01T02:00:00Z");
    assert_eq!(seen[0]["invocation_id"], "inv-timer-1");
    assert_eq!(seen[0]["attempt"], 1);
    let lines = logs(&answer);
    assert!(
        lines.iter().any(|l| l.contains("tick handled")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn retry_context_reaches_the_handler() {
    let h = Harness::new();
    let (status, answer) = h
        .invoke("nightly", &fixture("timer-retry.json"), "inv-timer-2")
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let seen = h.seen().await;
    assert_eq!(seen[0]["attempt"], 3);
    assert_eq!(seen[0]["past_due"], false);
    // No ScheduleStatus: the tick's time is the host's UtcNow.
    assert_eq!(seen[0]["scheduled_time"], "2026-03-02T02:00:00.001Z");
}

#[tokio::test]
async fn blobs_carry_key_size_type_and_etag() {
    let h = Harness::new();
    let (status, answer) = h
        .invoke("thumbs", &fixture("blob-created.json"), "inv-blob-1")
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = h
        .invoke("notes", &fixture("blob-no-uri.json"), "inv-blob-2")
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let mut seen = h.seen().await;
    seen.sort_by_key(|v| v["key"].as_str().unwrap().to_owned());
    assert_eq!(seen[0]["key"], "notes/todo.txt");
    assert_eq!(seen[0]["size"], 11);
    assert_eq!(seen[0]["bucket"], "uploads");
    // The bytes the host sent (base64) arrive with the event.
    assert_eq!(seen[0]["content"], json!(b"hello world"));
    assert!(seen[0]["etag"].is_null());
    assert_eq!(seen[1]["key"], "original/red flower.png");
    assert_eq!(seen[1]["size"], 8);
    assert_eq!(seen[1]["content_type"], "image/png");
    assert_eq!(seen[1]["etag"], "0x8DC3A1B2C3D4E5F");
    assert_eq!(seen[1]["time"], "2026-03-01T10:15:30Z");
    assert_eq!(seen[1]["content"], json!(b"\x89PNG\r\n\x1a\n"));
}

#[tokio::test]
async fn blobs_outside_the_prefix_are_refused() {
    let h = Harness::new();
    let (status, answer) = h
        .invoke("notes", &fixture("blob-created.json"), "inv-blob-3")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        logs(&answer).iter().any(|l| l.contains("notes/")),
        "{answer}"
    );
}

#[tokio::test]
async fn cosmos_batches_fire_once_per_created_document() {
    let h = Harness::new();
    let (status, answer) = h
        .invoke("on-order", &fixture("cosmos-batch.json"), "inv-doc-1")
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let mut seen = h.seen().await;
    seen.sort_by_key(|v| v["id"].as_str().unwrap().to_owned());
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0]["id"], "o-1");
    assert_eq!(seen[0]["document"], json!({"total": 12.5}));
    // No _nube_version: counted as created; _nube_id goes back to id.
    assert_eq!(seen[1]["id"], "o-3");
    assert_eq!(seen[1]["document"], json!({"id": "own-id", "total": 7}));
}

/// A batch of `items` as the host sends it to `function`.
fn cosmos_batch(function: &str, items: Value) -> String {
    json!({
        "Data": {"documents": items.to_string()},
        "Metadata": {"sys": {"MethodName": function, "UtcNow": "2026-03-01T10:18:13Z", "RandGuid": "2c3d4e5f"}},
    })
    .to_string()
}

/// The host sends a failed batch again whatever the status, then moves past the whole
/// batch: a document no retry can mend is logged and skipped, and the rest runs.
#[tokio::test]
async fn a_document_no_retry_can_mend_is_skipped_and_the_batch_goes_on() {
    let h = Harness::new();
    // r-1 is refused by the function; the item after it is not a document at all.
    let items = json!([{"id": "r-1", "reject": true}, {"id": "r-2"}, 7, {"id": "r-3"}]);
    let (status, answer) = h
        .invoke("on-order", &cosmos_batch("on-order", items), "inv-doc-4")
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let mut ids: Vec<String> = h
        .seen()
        .await
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, ["r-2", "r-3"]);
    let lines = logs(&answer);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("ERROR") && l.contains("document orders/r-1 skipped")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("ERROR") && l.contains("document at item 2 of 4 skipped")),
        "{lines:?}"
    );
    // With no document in it, the batch is another trigger's payload.
    let (status, answer) = h
        .invoke(
            "on-order",
            &cosmos_batch("on-order", json!([7, "x"])),
            "inv-doc-5",
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
}

/// A batch has the function's timeout as a whole, inside the host's functionTimeout:
/// documents that each fit in it but together do not fail the batch, to be sent again.
#[tokio::test]
async fn a_batch_has_one_deadline() {
    let h = Harness::new();
    let items = json!([{"id": "s-1"}, {"id": "s-2"}, {"id": "s-3"}]);
    let (status, answer) = h
        .invoke(
            "slow-orders",
            &cosmos_batch("slow-orders", items),
            "inv-doc-5",
        )
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{answer}");
    // Cut at s-2, or before it when a slow machine ran s-1 past the deadline.
    assert!(
        logs(&answer)
            .iter()
            .any(|l| l.contains("s-2") && l.contains("timeout") || l.contains("ran out")),
        "{answer}"
    );
}

#[tokio::test]
async fn handler_errors_answer_500_with_logs() {
    let h = Harness::new();
    let (status, answer) = h
        .invoke("on-order", &fixture("cosmos-failing.json"), "inv-doc-2")
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{answer}");
    let lines = logs(&answer);
    assert!(
        lines.iter().any(|l| l.contains("about to fail")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("order o-9 refused") && l.starts_with("ERROR")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn panics_fail_only_their_invocation() {
    let h = Harness::new();
    let tick = fixture("timer-retry.json");
    let (status, answer) = h.invoke("exploding", &tick, "inv-panic-1").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{answer}");
    assert!(
        logs(&answer).iter().any(|l| l.contains("timer exploded")),
        "{answer}"
    );
    let (status, answer) = h.invoke("nightly", &tick, "inv-panic-2").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test]
async fn deadline_overruns_fail_their_invocation() {
    let h = Harness::new();
    let (status, answer) = h
        .invoke("sleepy", &fixture("timer-retry.json"), "inv-slow-1")
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{answer}");
    assert!(
        logs(&answer).iter().any(|l| l.contains("timeout")),
        "{answer}"
    );
}

#[tokio::test]
async fn malformed_payloads_get_400_with_a_reason() {
    let h = Harness::new();
    let (status, answer) = h.invoke("nightly", "{\"Data\": {", "inv-bad-1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        logs(&answer).iter().any(|l| l.contains("not valid JSON")),
        "{answer}"
    );
    let (status, answer) = h.invoke("nightly", "[1, 2]", "inv-bad-2").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        logs(&answer)
            .iter()
            .any(|l| l.contains("must be a JSON object")),
        "{answer}"
    );
    let (status, answer) = h
        .invoke(
            "on-order",
            r#"{"Data": {"documents": [3]}, "Metadata": {}}"#,
            "inv-bad-3",
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
}

#[tokio::test]
async fn wrong_triggers_get_400_naming_both() {
    let h = Harness::new();
    let (status, answer) = h
        .invoke("nightly", &fixture("queue-message.json"), "inv-wrong-1")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let text = logs(&answer).join("\n");
    assert!(text.contains("\"nightly\""), "{text}");
    assert!(text.contains("timerTrigger"), "{text}");
    assert!(text.contains("a queueTrigger invocation"), "{text}");
    let (status, answer) = h
        .invoke("on-order", &fixture("blob-created.json"), "inv-wrong-2")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        logs(&answer)
            .join("\n")
            .contains("a blobTrigger invocation"),
        "{answer}"
    );
    let (status, answer) = h
        .invoke("api", &fixture("timer-past-due.json"), "inv-wrong-3")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(logs(&answer).join("\n").contains("httpTrigger"), "{answer}");
}

#[tokio::test]
async fn forwarded_requests_are_served_by_the_router() {
    let h = Harness::new();
    let req = Request::post("/api/echo/7?color=black")
        .header("x-azure-functions-invocationid", "inv-fwd-1")
        .header("x-tag", "one")
        .body(Body::from("hello"))
        .unwrap();
    let (status, headers, body) = h.send(req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-nube-invocation-id"], "inv-fwd-1");
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["path"], "/echo/7");
    assert_eq!(v["raw_query"], "color=black");
    assert_eq!(v["body"], "hello");
    assert_eq!(v["function"], "api");
    assert_eq!(v["provider"], "azure");
    // Binary responses go through as bytes.
    let (status, headers, body) = h
        .send(Request::get("/api/png").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(&body[..], &[0x89, b'P', b'N', b'G', 0xff]);
    // Unknown paths under the prefix get nube's JSON 404; others the runtime's.
    let (status, _, _) = h
        .send(Request::get("/api/nope").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, body) = h
        .send(Request::get("/elsewhere").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(String::from_utf8_lossy(&body).contains("/api/"));
}

#[tokio::test]
async fn forwarded_panics_and_timeouts_leak_nothing() {
    let h = Harness::new();
    let (status, _, body) = h
        .send(Request::get("/api/boom").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let text = String::from_utf8_lossy(&body);
    assert!(!text.contains("secret"), "{text}");
    let (status, _, _) = h
        .send(Request::get("/api/slow").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    let (status, _, _) = h
        .send(Request::get("/api/png").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn data_req_requests_answer_through_outputs_res() {
    let h = Harness::new();
    let (status, answer) = h
        .invoke("api", &fixture("http-data-req.json"), "inv-req-1")
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let res = &answer["Outputs"]["res"];
    assert_eq!(res["statusCode"], "200");
    assert_eq!(res["status"], "200");
    assert_eq!(res["headers"]["content-type"], "application/json");
    assert_eq!(res["headers"]["x-nube-invocation-id"], "inv-req-1");
    let body: Value = serde_json::from_str(res["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["path"], "/echo/7");
    assert_eq!(body["method"], "POST");
    assert_eq!(body["raw_query"], "color=black&size=2");
    assert_eq!(body["x_tag"], json!(["first", "second"]));
    assert_eq!(body["body"], "{\"id\":1005,\"quantity\":2}");
    assert_eq!(body["invocation_id"], "inv-req-1");
    assert!(
        logs(&answer).iter().any(|l| l.contains("echo called")),
        "{answer}"
    );
    // application/octet-stream bodies arrive as base64.
    let (status, answer) = h
        .invoke("api", &fixture("http-data-req-octet.json"), "inv-req-2")
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let body: Value =
        serde_json::from_str(answer["Outputs"]["res"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["body_base64"], "AAEC/w==");
    assert_eq!(body["method"], "PUT");
}

#[tokio::test]
async fn data_req_panics_and_binary_bodies() {
    let h = Harness::new();
    let req = |path: &str| {
        json!({"Data": {"req": {"Url": format!("http://localhost:7071/api{path}"), "Method": "GET",
               "Query": "{}", "Headers": {}, "Params": {}}}, "Metadata": {}})
        .to_string()
    };
    let (status, answer) = h.invoke("api", &req("/boom"), "inv-req-3").await;
    // The invocation succeeds; the HTTP response is the 500, with no detail.
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["Outputs"]["res"]["statusCode"], "500");
    assert!(
        !answer["Outputs"]["res"]["body"]
            .as_str()
            .unwrap()
            .contains("secret")
    );
    // A body that fails while it is read: a 500 without its reason, not a 200.
    let (status, answer) = h.invoke("api", &req("/broken"), "inv-req-5").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["Outputs"]["res"]["statusCode"], "500", "{answer}");
    assert!(
        !answer["Outputs"]["res"]["body"]
            .to_string()
            .contains("secret"),
        "{answer}"
    );
    let (status, answer) = h.invoke("api", &req("/png"), "inv-req-4").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let res = &answer["Outputs"]["res"];
    assert_eq!(res["headers"]["x-nube-body-encoding"], "base64");
    assert_eq!(
        res["body"],
        base64::engine::general_purpose::STANDARD.encode([0x89u8, b'P', b'N', b'G', 0xff])
    );
}

#[tokio::test]
async fn invocations_of_unknown_functions_are_not_found() {
    let h = Harness::new();
    let req = Request::post("/missing").body(Body::from("{}")).unwrap();
    let (status, _, _) = h.send(req).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Function names are case-insensitive, as on Azure.
    let (status, answer) = h
        .invoke("Nightly", &fixture("timer-retry.json"), "inv-case-1")
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test]
async fn a_real_loopback_server_answers() {
    nube_azure::logging::init();
    let store = Arc::new(MemoryStore::new());
    let runtime = Runtime::new(app(), Resources::new(store), "api");
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(axum::serve(listener, runtime.into_router()).into_future());
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = fixture("timer-retry.json");
    let request = format!(
        "POST /nightly HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"Outputs\""), "{answer}");
    server.abort();
}

#[tokio::test]
async fn an_empty_route_prefix_serves_every_other_path() {
    nube_azure::logging::init();
    let runtime = Runtime::new(app(), Resources::new(Arc::new(MemoryStore::new())), "");
    let router = runtime.into_router();
    let send = |req: Request<Body>| {
        let router = router.clone();
        async move {
            let r = router.oneshot(req).await.unwrap();
            let status = r.status();
            let body = axum::body::to_bytes(r.into_body(), usize::MAX)
                .await
                .unwrap();
            (
                status,
                serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null),
            )
        }
    };
    let (status, v) = send(Request::get("/echo/1").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["path"], "/echo/1");
    let (status, v) = send(
        Request::post("/nightly")
            .body(Body::from(fixture("timer-retry.json")))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(v["Outputs"].is_object(), "{v}");
}

#[tokio::test]
async fn a_post_to_the_prefix_root_that_is_no_invocation_is_forwarded() {
    let h = Harness::new();
    // The function is called `api`, like the route prefix: `POST /api` with a body that
    // is not {Data, Metadata} is a client's request to the prefix's root.
    let (status, _, body) = h
        .send(
            Request::post("/api")
                .body(Body::from("plain text"))
                .unwrap(),
        )
        .await;
    // The app routes nothing at `/`: nube's JSON 404, not an invocation answer.
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(String::from_utf8_lossy(&body).contains("no route matches"));
}
