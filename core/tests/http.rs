//! HTTP functions through `App::http_service`: typed rejections, panics, deadlines,
//! method and route errors, all answered with nube's JSON error body.

use std::time::Duration;

use axum::body::Body;
use http::{Method, StatusCode};
use nube::http::{Json, Path, Routes};
use nube::testing::TestApp;
use nube::{App, Context, ErrorKind};
use serde_json::{Value, json};

#[derive(serde::Deserialize)]
struct Item {
    name: String,
}

async fn create(Json(item): Json<Item>) -> String {
    item.name
}

async fn by_number(Path(n): Path<u32>) -> String {
    format!("#{n}")
}

/// Two parameters taken as one: the handler's bug, not the client's.
async fn two_as_one(Path(n): Path<u32>) -> String {
    format!("#{n}")
}

async fn boom() -> &'static str {
    panic!("secret detail")
}

/// A service that panics while it is called, before it has a future (not inside it).
fn panics_when_called(
    _req: axum::extract::Request,
) -> std::future::Ready<Result<axum::response::Response, std::convert::Infallible>> {
    panic!("secret detail from the call")
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(10)).await;
    "late"
}

async fn who(ctx: Context) -> String {
    ctx.invocation_id().to_owned()
}

fn app() -> TestApp {
    TestApp::new(
        App::new("t")
            .http(
                "api",
                Routes::new()
                    .post("/items", create)
                    .get("/n/{n}", by_number)
                    .get("/pair/{a}/{b}", two_as_one)
                    .get("/boom", boom)
                    .get("/slow", slow)
                    .get("/who", who)
                    .route(
                        "/call-boom",
                        axum::routing::get_service(tower::service_fn(panics_when_called)),
                    ),
            )
            .function_timeout("api", Duration::from_millis(200))
            .max_body_bytes(1024),
    )
}

fn code(r: &nube::testing::TestResponse) -> String {
    r.json::<Value>()["error"]["code"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn json_rejections_are_typed() {
    let t = app();
    let ok = t
        .send_json(Method::POST, "/items", &json!({"name": "a"}))
        .await;
    assert_eq!((ok.status, ok.text()), (StatusCode::OK, "a".to_owned()));
    let missing = t.send_json(Method::POST, "/items", &json!({})).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert!(missing.text().contains("name"), "{}", missing.text());
    // serde names the handler's type; the client is told the shape instead.
    let shape = t.send_json(Method::POST, "/items", &json!(1)).await;
    assert_eq!(shape.status, StatusCode::BAD_REQUEST);
    assert!(
        shape.text().contains("expected an object") && !shape.text().contains("Item"),
        "{}",
        shape.text()
    );
    let syntax = t
        .send(
            Method::POST,
            "/items",
            Some("application/json"),
            Body::from("{"),
        )
        .await;
    assert_eq!(code(&syntax), "bad_request");
    let text = t
        .send(Method::POST, "/items", Some("text/plain"), Body::from("{}"))
        .await;
    assert_eq!(text.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let big = format!("{{\"name\":\"{}\"}}", "x".repeat(2000));
    let big = t
        .send(
            Method::POST,
            "/items",
            Some("application/json"),
            Body::from(big),
        )
        .await;
    assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(code(&big), "payload_too_large");
}

#[tokio::test]
async fn path_method_and_route_errors_are_json() {
    let t = app();
    assert_eq!(t.get("/n/7").await.text(), "#7");
    let bad = t.get("/n/seven").await;
    assert_eq!(
        (bad.status, code(&bad)),
        (StatusCode::BAD_REQUEST, "bad_request".into())
    );
    let misuse = t.get("/pair/1/2").await;
    assert_eq!(
        (misuse.status, code(&misuse)),
        (StatusCode::INTERNAL_SERVER_ERROR, "internal".into()),
        "{}",
        misuse.text()
    );
    assert!(!misuse.text().contains("Path"), "{}", misuse.text());
    let nope = t.get("/nowhere").await;
    assert_eq!(
        (nope.status, code(&nope)),
        (StatusCode::NOT_FOUND, "not_found".into())
    );
    let wrong = t.delete("/items").await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(code(&wrong), "method_not_allowed");
    assert_eq!(wrong.headers[http::header::ALLOW], "POST");
}

#[tokio::test]
async fn panics_and_deadlines_fail_only_their_request() {
    let t = app();
    let r = t.get("/boom").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        !r.text().contains("secret"),
        "the panic text must not reach the client"
    );
    assert!(r.headers.contains_key("x-nube-invocation-id"));
    let r = t.get("/call-boom").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(code(&r), "internal");
    assert!(!r.text().contains("secret"), "{}", r.text());
    let r = t.get("/slow").await;
    assert_eq!(
        (r.status, code(&r)),
        (StatusCode::GATEWAY_TIMEOUT, "timeout".into())
    );
    let again = t.get("/n/1").await;
    assert_eq!(again.status, StatusCode::OK, "still serving");
}

#[tokio::test]
async fn the_invocation_id_comes_from_x_request_id_and_is_echoed() {
    let t = app();
    let req = http::Request::get("/who")
        .header("x-request-id", "req-42")
        .body(Body::empty())
        .unwrap();
    let r = t.request(req).await;
    assert_eq!(r.text(), "req-42");
    assert_eq!(r.headers["x-nube-invocation-id"], "req-42");
}

async fn a() -> &'static str {
    "a"
}

#[test]
fn route_mistakes_are_reported_by_validate() {
    let old_syntax = App::new("t").http("api", Routes::new().get("/items/:id", a));
    let e = old_syntax.validate().unwrap_err().to_string();
    assert!(e.contains("{name}"), "{e}");
    let reserved = App::new("t").http("api", Routes::new().get("/_nube/x", a));
    assert!(
        reserved
            .validate()
            .unwrap_err()
            .to_string()
            .contains("/_nube")
    );
    let twice = App::new("t")
        .http("one", Routes::new().get("/x", a))
        .http("two", Routes::new().get("/x", a));
    assert!(
        twice
            .validate()
            .unwrap_err()
            .to_string()
            .contains("declared by both")
    );
    let clash = App::new("t")
        .http("one", Routes::new().get("/x/{id}", a))
        .http("two", Routes::new().get("/x/{name}", a));
    assert!(
        clash
            .validate()
            .unwrap_err()
            .to_string()
            .contains("conflict")
    );
    let dup = App::new("t").http("api", Routes::new().get("/x", a).get("/x", a));
    assert!(dup.validate().is_err());
}

#[test]
fn retryability() {
    assert!(nube::Error::new(ErrorKind::PreconditionFailed, "race").is_retryable());
    assert!(!nube::Error::conflict("exists").is_retryable());
    assert!(nube::Error::internal("x").is_retryable());
}

#[tokio::test]
async fn a_runtime_deadline_shortens_the_function_timeout() {
    let t = app();
    let mut req = http::Request::get("/slow").body(Body::empty()).unwrap();
    let soon = std::time::Instant::now() + Duration::from_millis(50);
    req.extensions_mut().insert(nube::http::Deadline(soon));
    let started = std::time::Instant::now();
    let r = t.request(req).await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(
        started.elapsed() < Duration::from_millis(180),
        "the 50 ms deadline won over the 200 ms timeout"
    );
}
