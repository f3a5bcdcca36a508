//! A request's trace (`traceparent`, `X-Cloud-Trace-Context`) reaches the function's
//! `Context` and every line logged for it, in Cloud Logging's fields. In a test binary
//! of its own: it installs a subscriber, and tests running beside it on other threads
//! would race it for tracing's per-callsite interest.

use std::sync::Arc;

use http::{Request, StatusCode};
use http_body_util::BodyExt;
use nube::axum::body::Body;
use nube::http::Routes;
use nube::store::MemoryStore;
use nube::{App, BlobCreated, Context, Resources, TimerTick};
use nube_gcp::logging::CloudLoggingJson;
use nube_gcp::names::ResourceNames;
use nube_gcp::{Config, Server};
use serde_json::{Value, json};
use tower::ServiceExt;

async fn hello(ctx: Context) -> nube::http::Json<Value> {
    tracing::info!("hello served");
    nube::http::Json(json!({"trace": ctx.trace().map(|t| t.trace_id.clone())}))
}

fn server() -> Server {
    let app =
        App::new("shop")
            .http("api", Routes::new().get("/hello", hello))
            .timer(
                "boom",
                "rate(1 hour)",
                |_t: TimerTick, _ctx: Context| async move {
                    Err(nube::Error::internal("the timer failed"))
                },
            )
            .on_blob_created(
                "thumbs",
                "uploads",
                "",
                |_b: BlobCreated, _ctx: Context| async move { Ok(()) },
            )
            .bucket("uploads");
    Server::new(
        Arc::new(app),
        Config::default(),
        Resources::new(Arc::new(MemoryStore::new())),
        ResourceNames::new(),
    )
    .unwrap()
}

async fn send(server: &Server, req: Request<Body>) -> (StatusCode, Value) {
    let response = server.router().oneshot(req).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_request_s_trace_reaches_its_context_and_every_line_it_logs() {
    let lines = nube::testing::LogBuffer::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .fmt_fields(nube::logging::JsonSpanFields)
        .event_format(CloudLoggingJson::with_labels([]).with_project(Some("shop-proj".into())))
        .with_writer(move || writer.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);
    let server = server();
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let trace = "projects/shop-proj/traces/4bf92f3577b34da6a3ce929d0e0e4736";

    let (status, body) = send(
        &server,
        Request::get("/hello")
            .header("traceparent", traceparent)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["trace"], "4bf92f3577b34da6a3ce929d0e0e4736");
    // A failing event function, traced the other way, and a refused event.
    let (status, _) = send(
        &server,
        Request::post("/boom")
            .header(
                "x-cloud-trace-context",
                "105445aa7843bc8bf206b12000100000/1;o=1",
            )
            .header("x-cloudscheduler", "true")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let (status, _) = send(
        &server,
        Request::post("/thumbs")
            .header("traceparent", traceparent)
            .body(Body::from("not an event"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Without a trace header, no trace.
    let (_, body) = send(&server, Request::get("/hello").body(Body::empty()).unwrap()).await;
    assert_eq!(body["trace"], Value::Null);

    let lines: Vec<Value> = lines
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let line = |message: &str| {
        lines
            .iter()
            .find(|l| l["message"].as_str().is_some_and(|m| m.contains(message)))
            .unwrap_or_else(|| panic!("no line {message:?} in {lines:?}"))
    };
    let served: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "hello served")
        .collect();
    assert_eq!(served.len(), 2, "{lines:?}");
    assert_eq!(served[0]["logging.googleapis.com/trace"], trace);
    assert_eq!(
        served[0]["logging.googleapis.com/spanId"],
        "00f067aa0ba902b7"
    );
    assert_eq!(served[0]["logging.googleapis.com/trace_sampled"], true);
    assert_eq!(served[0]["function"], "api");
    assert!(served[0].get("trace.id").is_none(), "{}", served[0]);
    assert!(
        served[1].get("logging.googleapis.com/trace").is_none(),
        "{}",
        served[1]
    );
    let failed = line("invocation failed");
    assert_eq!(
        failed["logging.googleapis.com/trace"],
        "projects/shop-proj/traces/105445aa7843bc8bf206b12000100000"
    );
    // Sent as the decimal 1: written as Cloud Logging reads span ids.
    assert_eq!(failed["logging.googleapis.com/spanId"], "0000000000000001");
    assert_eq!(failed["logging.googleapis.com/trace_sampled"], true);
    assert_eq!(failed["function"], "boom");
    assert_eq!(line("event refused")["logging.googleapis.com/trace"], trace);
}
