//! The Lambda handler driven without a Runtime API: every payload shape in
//! `tests/fixtures` (written for these tests) through `nube_aws::handle` /
//! `Dispatcher`, against a small app that records what it got.

#[path = "support/requests.rs"]
mod requests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use nube::axum::extract::{Query, RawQuery};
use nube::axum::routing::any;
use nube::http::Routes;
use nube::store::MemoryStore;
use nube::{App, BlobCreated, Context, DocumentCreated, Error, Resources, TimerTick};
use nube_aws::names::ResourceNames;
use nube_aws::{Dispatcher, HandlerError, handle};
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

async fn echo(
    ctx: Context,
    method: http::Method,
    uri: http::Uri,
    headers: http::HeaderMap,
    RawQuery(raw): RawQuery,
    Query(pairs): Query<Vec<(String, String)>>,
    body: bytes::Bytes,
) -> nube::http::Json<Value> {
    let header = |name: &str| {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or("?").to_owned())
            .collect::<Vec<_>>()
    };
    nube::http::Json(json!({
        "method": method.as_str(),
        "path": uri.path(),
        "raw_query": raw,
        "query": pairs,
        "body": String::from_utf8_lossy(&body),
        "body_base64": base64::engine::general_purpose::STANDARD.encode(&body),
        "cookie": header("cookie"),
        "host": header("host"),
        "x_tag": header("x-tag"),
        "invocation_id": ctx.invocation_id(),
        "lambda_request_id": ctx.provider().as_str(),
    }))
}

async fn cookies() -> impl nube::axum::response::IntoResponse {
    (
        nube::axum::response::AppendHeaders([
            (http::header::SET_COOKIE, "a=1; Path=/"),
            (http::header::SET_COOKIE, "b=2; HttpOnly"),
            (http::header::CONTENT_TYPE, "text/plain"),
        ]),
        "cookies set",
    )
}

async fn binary() -> impl nube::axum::response::IntoResponse {
    (
        [(http::header::CONTENT_TYPE, "image/png")],
        vec![0x89u8, b'P', b'N', b'G', 0x00, 0xff],
    )
}

async fn panics() -> &'static str {
    panic!("route exploded")
}

/// `megabytes` of text, or of bytes sent base64.
fn sized(megabytes: usize, content_type: &'static str) -> impl nube::axum::response::IntoResponse {
    (
        [(http::header::CONTENT_TYPE, content_type)],
        vec![b'a'; megabytes * 1_000_000],
    )
}

/// A 200 whose body never ends.
async fn endless() -> nube::axum::body::Body {
    let first = futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"["))]);
    nube::axum::body::Body::from_stream(futures::StreamExt::chain(
        first,
        futures::stream::pending(),
    ))
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(30)).await;
    "too late"
}

fn safe_id(s: &str) -> String {
    s.replace(['/', '\\', '?', '#'], "_")
}

async fn tick(t: TimerTick, ctx: Context) -> nube::Result<()> {
    ctx.collection::<Value>("seen")
        .put(
            &safe_id(&t.event_id),
            &json!({
                "schedule": t.schedule,
                "scheduled_time": t.scheduled_time,
                "past_due": t.past_due,
                "invocation_id": ctx.invocation_id(),
                "provider": ctx.provider().as_str(),
            }),
        )
        .await?;
    Ok(())
}

async fn thumbs(b: BlobCreated, ctx: Context) -> nube::Result<()> {
    if b.key.contains("video") {
        return Err(Error::internal(format!("cannot thumbnail {}", b.key)));
    }
    ctx.collection::<Value>("seen")
        .put(
            &safe_id(&b.event_id),
            &json!({"bucket": b.bucket, "key": b.key, "size": b.size, "etag": b.etag,
                    "time": b.time, "invocation_id": ctx.invocation_id()}),
        )
        .await?;
    Ok(())
}

async fn on_order(d: DocumentCreated<Value>, ctx: Context) -> nube::Result<()> {
    if d.document.get("reject") == Some(&json!(true)) {
        return Err(Error::bad_request(format!("order {} is malformed", d.id)));
    }
    if d.document.get("fail") == Some(&json!(true)) {
        return Err(Error::internal(format!("order {} refused", d.id)));
    }
    ctx.collection::<Value>("seen")
        .put(
            &safe_id(&d.event_id),
            &json!({"collection": d.collection, "id": d.id, "document": d.document}),
        )
        .await?;
    Ok(())
}

async fn boom(_t: TimerTick, _ctx: Context) -> nube::Result<()> {
    panic!("the timer exploded")
}

async fn sleepy(_t: TimerTick, _ctx: Context) -> nube::Result<()> {
    tokio::time::sleep(Duration::from_secs(30)).await;
    Ok(())
}

fn app() -> App {
    let app = App::new("aws-test")
        .http(
            "api",
            Routes::new()
                .get("/cookies", cookies)
                .get("/binary", binary)
                .get("/panic", panics)
                .get("/slow", slow)
                .get("/text-4mb", || async { sized(4, "text/plain") })
                .get("/text-7mb", || async { sized(7, "text/plain") })
                .get("/bytes-5mb", || async {
                    sized(5, "application/octet-stream")
                })
                .get("/endless", endless)
                .route("/", any(echo))
                .route("/{*path}", any(echo)),
        )
        .timer("tick", "0 2 * * *", tick)
        .timer("boom", "rate(1 hour)", boom)
        .timer("sleepy", "rate(1 hour)", sleepy)
        .on_blob_created("thumbs", "uploads", "original/", thumbs)
        .on_document_created("on-order", "orders", on_order)
        .collection("seen");
    app.validate().expect("the test app is valid");
    app
}

struct Harness {
    app: Arc<App>,
    store: Arc<MemoryStore>,
    resources: Resources,
}

impl Harness {
    fn new() -> Self {
        let store = Arc::new(MemoryStore::new());
        let resources = Resources::new(store.clone());
        Self {
            app: Arc::new(app()),
            store,
            resources,
        }
    }

    async fn call(&self, function: &str, payload: Value) -> Result<Value, HandlerError> {
        self.call_by(
            function,
            payload,
            Some(Instant::now() + Duration::from_secs(10)),
        )
        .await
    }

    /// The answer of [`handle`] (the payload as a `Value`); for a payload 2.0 request
    /// to the HTTP function, checked to be the answer `Dispatcher::handle_json` gives
    /// to the payload's text (what the bootstrap runs, straight from the text).
    async fn call_by(
        &self,
        function: &str,
        payload: Value,
        deadline: Option<Instant>,
    ) -> Result<Value, HandlerError> {
        let text = payload.to_string();
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let by_value = handle(
            &self.app,
            function,
            &self.resources,
            payload,
            "lambda-req-1",
            deadline,
        )
        .await;
        // Other payloads take the same `Value` path either way.
        if function == "api" && nube_aws::http::read_payload_v2(&text).is_some() {
            let mut lambda = lambda_runtime::Context::default();
            lambda.request_id = "lambda-req-1".into();
            let by_text = self
                .dispatcher(function)
                .handle_json(&text, lambda, left.map(|l| Instant::now() + l))
                .await
                .map(|raw| serde_json::from_str::<Value>(raw.get()).unwrap());
            match (&by_value, &by_text) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{text}"),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{text}"),
                _ => panic!("{text}: {by_value:?} from the Value, {by_text:?} from the text"),
            }
        }
        by_value
    }

    /// A dispatcher whose physical names map back to the app's logical ones.
    fn dispatcher(&self, function: &str) -> Dispatcher {
        let names = ResourceNames::new()
            .with_bucket("uploads", "aws-test-uploads-7f3a")
            .with_table("orders", "aws-test-orders-x1");
        Dispatcher::new(self.app.clone(), function, self.resources.clone(), names).unwrap()
    }

    async fn dispatch(&self, function: &str, payload: Value) -> Result<Value, HandlerError> {
        let mut lambda = lambda_runtime::Context::default();
        lambda.request_id = "lambda-req-2".into();
        self.dispatcher(function)
            .handle(
                payload,
                lambda,
                Some(Instant::now() + Duration::from_secs(10)),
            )
            .await
    }

    async fn seen(&self) -> Vec<Value> {
        use nube::DocumentStore;
        let page = self
            .store
            .query("seen", &nube::Query::new().limit(1000))
            .await
            .unwrap();
        page.documents.into_iter().map(|d| d.value).collect()
    }
}

/// Query pairs sorted by name, keeping the order of each name's values (lambda_http's
/// query map does not keep the order of different names).
fn by_name(pairs: &Value) -> Value {
    let mut pairs = pairs.as_array().unwrap().clone();
    pairs.sort_by_key(|p| p[0].as_str().unwrap().to_owned());
    Value::Array(pairs)
}

fn body_json(response: &Value) -> Value {
    assert_eq!(response["isBase64Encoded"], false, "{response}");
    serde_json::from_str(response["body"].as_str().expect("a text body")).unwrap()
}

#[tokio::test]
async fn rest_api_request_with_multi_value_maps() {
    let h = Harness::new();
    let response = h
        .call("api", fixture("apigw-rest-multi-value.json"))
        .await
        .unwrap();
    assert_eq!(response["statusCode"], 200, "{response}");
    // One header map only: API Gateway would merge two and duplicate values.
    assert!(response.get("headers").is_none(), "{response}");
    assert_eq!(
        response["multiValueHeaders"]["x-nube-invocation-id"],
        json!(["lambda-req-1"])
    );
    let echo = body_json(&response);
    assert_eq!(echo["method"], "POST");
    // The path as sent, without the stage (`live`) lambda_http would put in front.
    assert_eq!(echo["path"], "/orders/42");
    assert_eq!(
        by_name(&echo["query"]),
        json!([["color", "red"], ["color", "blue"], ["size", "L"]])
    );
    assert_eq!(echo["x_tag"], json!(["first", "second"]));
    assert_eq!(echo["body"], "{\"qty\":3}");
    assert_eq!(echo["invocation_id"], "lambda-req-1");
    // No Host header in the request: the URI is relative and routing works anyway.
    assert_eq!(echo["host"], json!([]));
}

#[test]
fn only_payload_2_0_requests_are_read_straight_from_their_text() {
    let text = |name: &str| fixture(name).to_string();
    for v2 in [
        "apigw-http-cookies-base64.json",
        "apigw-http-get-hello.json",
        "function-url-path-with-space.json",
    ] {
        assert!(nube_aws::http::read_payload_v2(&text(v2)).is_some(), "{v2}");
    }
    for other in [
        "apigw-rest-multi-value.json",
        "alb-multi-value.json",
        "s3-object-created-plus-key.json",
        "eventbridge-scheduled.json",
        "sqs-mismatched.json",
    ] {
        assert!(
            nube_aws::http::read_payload_v2(&text(other)).is_none(),
            "{other}"
        );
    }
    // A key spelled with an escape could be `Records`: read as a Value instead.
    let escaped = text("apigw-http-get-hello.json").replacen("\"rawPath\"", "\"raw\\u0050ath\"", 1);
    assert!(nube_aws::http::read_payload_v2(&escaped).is_none());
    // A 2.0 request that does not decode is answered by the Value path (400).
    let mut broken = fixture("apigw-http-get-hello.json");
    broken["headers"] = json!(["not", "a", "map"]);
    assert!(nube_aws::http::read_payload_v2(&broken.to_string()).is_none());
}

/// nube-aws's own payload 2.0 conversion agrees with lambda_http's on every fixture,
/// and on variants on each side of what it converts without lambda_http: hosts and
/// paths a URL parser would rewrite, stages, schemes, queries, cookies, bodies.
#[test]
fn payload_2_0_converts_as_lambda_http_converts_it() {
    for name in [
        "apigw-http-cookies-base64.json",
        "apigw-http-get-hello.json",
        "function-url-path-with-space.json",
    ] {
        requests::assert_v2_conversions_agree(name, &fixture(name).to_string());
    }
    let base = fixture("apigw-http-get-hello.json");
    type Change = Box<dyn Fn(&mut Value)>;
    // Sets the member at `path` (keys from the top) to `value`.
    fn set(path: &'static [&'static str], value: Value) -> Change {
        Box::new(move |p| {
            let target = path.iter().fold(p, |v, key| &mut v[*key]);
            *target = value.clone();
        })
    }
    let variants: Vec<(&str, Change)> = vec![
        (
            "upper-case host",
            set(&["headers", "host"], json!("Api.Example.com")),
        ),
        (
            "host with a port",
            set(&["headers", "host"], json!("api.example.com:8443")),
        ),
        ("IPv4 host", set(&["headers", "host"], json!("10.0.0.7"))),
        (
            "numeric last label",
            set(&["headers", "host"], json!("a.b.1")),
        ),
        (
            "punycode host",
            set(&["headers", "host"], json!("xn--bcher-kva.example")),
        ),
        (
            "empty label",
            set(&["headers", "host"], json!("a..example")),
        ),
        (
            "no host header",
            Box::new(|p| {
                p["headers"].as_object_mut().unwrap().remove("host");
            }),
        ),
        (
            "no host at all",
            Box::new(|p| {
                p["headers"].as_object_mut().unwrap().remove("host");
                p["requestContext"]
                    .as_object_mut()
                    .unwrap()
                    .remove("domainName");
            }),
        ),
        (
            "http scheme",
            set(&["headers", "x-forwarded-proto"], json!("http")),
        ),
        (
            "odd scheme",
            set(&["headers", "x-forwarded-proto"], json!("HTTPS")),
        ),
        ("dot segments", set(&["rawPath"], json!("/a/./b/../hello"))),
        ("encoded dot", set(&["rawPath"], json!("/a/%2e%2E/hello"))),
        ("encoded space", set(&["rawPath"], json!("/files/a%20b"))),
        ("bad escape", set(&["rawPath"], json!("/files/a%zzb"))),
        ("space", set(&["rawPath"], json!("/files/a b"))),
        ("non-ASCII", set(&["rawPath"], json!("/files/é"))),
        ("backslash", set(&["rawPath"], json!("/files\\x"))),
        (
            "sub-delims",
            set(&["rawPath"], json!("/a;b=c/d@e:f/!$&'()*+,~")),
        ),
        ("no slash", set(&["rawPath"], json!("hello"))),
        ("empty path", set(&["rawPath"], json!(""))),
        ("stage", set(&["requestContext", "stage"], json!("prod"))),
        (
            "stage in path",
            Box::new(|p| {
                p["requestContext"]["stage"] = json!("prod");
                p["rawPath"] = json!("/prod/hello");
            }),
        ),
        (
            "query",
            set(&["rawQueryString"], json!("a=1&b=x%20y&a=2&c")),
        ),
        (
            "query with a space",
            set(&["rawQueryString"], json!("a=x y")),
        ),
        ("cookies", set(&["cookies"], json!(["a=1", "b=2"]))),
        (
            "base64 body",
            Box::new(|p| {
                p["body"] = json!("aGVsbG8=");
                p["isBase64Encoded"] = json!(true);
            }),
        ),
        ("text body", set(&["body"], json!("{\"a\":1}"))),
        (
            "path parameters",
            set(&["pathParameters"], json!({"id": "7"})),
        ),
        (
            "stage variables",
            set(&["stageVariables"], json!({"env": "test"})),
        ),
    ];
    for (name, change) in variants {
        let mut payload = base.clone();
        change(&mut payload);
        requests::assert_v2_conversions_agree(name, &payload.to_string());
    }
}

/// The routes an app declares match on every stage: the Router sees the path without
/// the stage, which stays in the request context.
#[test]
fn the_router_sees_the_path_without_the_stage() {
    use lambda_http::RequestExt;
    use lambda_http::request::RequestContext;
    use nube_aws::http::{HttpOrigin, decode_request, read_payload_v2, v2_into_http};
    let stage_of = |r: &http::Request<lambda_http::Body>| match r.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(c)) => c.stage.clone(),
        Some(RequestContext::ApiGatewayV2(c)) => c.stage.clone(),
        _ => None,
    };
    let rest = decode_request(HttpOrigin::RestApi, fixture("apigw-rest-multi-value.json")).unwrap();
    assert_eq!(rest.uri().path(), "/orders/42");
    assert_eq!(rest.raw_http_path(), "/orders/42");
    assert_eq!(stage_of(&rest).as_deref(), Some("live"));
    for (raw, routed, domain) in [
        ("/prod/orders/42", "/orders/42"),
        ("/prod", "/"),
        ("/prod/", "/"),
        ("/prod/a b", "/a%20b"),
        // Not the stage: a path that only starts with its letters, or none at all.
        ("/orders/42", "/orders/42"),
        ("/products/1", "/products/1"),
    ]
    .into_iter()
    .map(|(raw, routed)| {
        (
            raw,
            routed,
            "k7benchapi.execute-api.us-east-1.amazonaws.com",
        )
    })
    // A custom domain maps the stage without putting it in the path: a first segment
    // named like the stage is the app's.
    .chain([
        ("/prod/orders/42", "/prod/orders/42", "api.example.com"),
        ("/prod", "/prod", "api.example.com"),
    ]) {
        let mut payload = fixture("apigw-http-get-hello.json");
        payload["requestContext"]["stage"] = json!("prod");
        payload["requestContext"]["domainName"] = json!(domain);
        payload["headers"]["host"] = json!(domain);
        payload["rawPath"] = json!(raw);
        let text = payload.to_string();
        let fast = v2_into_http(read_payload_v2(&text).unwrap()).unwrap();
        let reference = decode_request(HttpOrigin::HttpApi, payload).unwrap();
        for (how, request) in [("fast", fast), ("lambda_http", reference)] {
            assert_eq!(request.uri().path(), routed, "{how}: {raw}");
            assert_eq!(request.raw_http_path(), raw, "{how}: {raw}");
            assert_eq!(stage_of(&request).as_deref(), Some("prod"), "{how}: {raw}");
        }
    }
}

#[tokio::test]
async fn a_named_stage_reaches_the_declared_route() {
    let h = Harness::new();
    let mut request = v2_get("/live/cookies");
    request["requestContext"]["stage"] = json!("live");
    let response = h.call("api", request).await.unwrap();
    assert_eq!(response["statusCode"], 200, "{response}");
    assert_eq!(response["body"], "cookies set");
}

#[tokio::test]
async fn http_api_request_with_cookies_and_a_base64_body() {
    let h = Harness::new();
    let response = h
        .call("api", fixture("apigw-http-cookies-base64.json"))
        .await
        .unwrap();
    assert_eq!(response["statusCode"], 200, "{response}");
    assert!(response.get("multiValueHeaders").is_none(), "{response}");
    assert_eq!(response["cookies"], json!([]));
    let echo = body_json(&response);
    assert_eq!(echo["method"], "PUT");
    assert_eq!(echo["path"], "/upload");
    assert_eq!(echo["raw_query"], "tag=a&tag=b&mode=fast");
    assert_eq!(echo["body_base64"], "AAECA/8=");
    assert_eq!(echo["cookie"], json!(["session=abc123; theme=dark"]));
    assert_eq!(
        echo["host"],
        json!(["nubeapi002.execute-api.eu-central-1.amazonaws.com"])
    );
}

fn v2_get(path: &str) -> Value {
    let mut request = fixture("apigw-http-cookies-base64.json");
    request["rawPath"] = json!(path);
    request["requestContext"]["http"]["path"] = json!(path);
    request["requestContext"]["http"]["method"] = json!("GET");
    request["rawQueryString"] = json!("");
    request["body"] = Value::Null;
    request["isBase64Encoded"] = json!(false);
    request
}

#[tokio::test]
async fn http_api_responses_put_cookies_in_cookies_and_binary_in_base64() {
    let h = Harness::new();
    let response = h.call("api", v2_get("/cookies")).await.unwrap();
    assert_eq!(response["cookies"], json!(["a=1; Path=/", "b=2; HttpOnly"]));
    assert!(
        response["headers"].get("set-cookie").is_none(),
        "{response}"
    );
    assert_eq!(response["body"], "cookies set");
    let response = h.call("api", v2_get("/binary")).await.unwrap();
    assert_eq!(response["isBase64Encoded"], true, "{response}");
    assert_eq!(response["headers"]["content-type"], "image/png");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(response["body"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes, vec![0x89u8, b'P', b'N', b'G', 0x00, 0xff]);
}

#[tokio::test]
async fn rest_api_responses_keep_every_set_cookie() {
    let h = Harness::new();
    let mut request = fixture("apigw-rest-multi-value.json");
    request["path"] = json!("/cookies");
    request["httpMethod"] = json!("GET");
    request["requestContext"]["stage"] = json!("$default");
    let response = h.call("api", request).await.unwrap();
    assert_eq!(response["statusCode"], 200, "{response}");
    assert_eq!(
        response["multiValueHeaders"]["set-cookie"],
        json!(["a=1; Path=/", "b=2; HttpOnly"])
    );
}

#[tokio::test]
async fn function_url_request_with_a_space_in_the_path() {
    let h = Harness::new();
    let response = h
        .call("api", fixture("function-url-path-with-space.json"))
        .await
        .unwrap();
    assert_eq!(response["statusCode"], 200, "{response}");
    assert!(response.get("cookies").is_some(), "{response}");
    let echo = body_json(&response);
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["path"], "/files/annual%20report.pdf");
    assert_eq!(echo["body"], "");
}

#[tokio::test]
async fn alb_request_with_multi_value_maps_gets_a_status_description() {
    let h = Harness::new();
    let response = h
        .call("api", fixture("alb-multi-value.json"))
        .await
        .unwrap();
    assert_eq!(response["statusCode"], 200, "{response}");
    assert_eq!(response["statusDescription"], "200 OK");
    assert_eq!(response["headers"]["content-type"], "application/json");
    assert_eq!(
        response["multiValueHeaders"]["content-type"],
        json!(["application/json"])
    );
    let echo = body_json(&response);
    assert_eq!(echo["path"], "/search");
    // ALB sends query values as they were in the URL; lambda_http decodes them (its
    // map does not keep the order of different names).
    assert_eq!(
        by_name(&echo["query"]),
        json!([["page", "1"], ["page", "2"], ["q", "rust lambda"]])
    );
    assert_eq!(echo["cookie"], json!(["lang=en"]));
    assert_eq!(echo["host"], json!([]));

    let mut missing = fixture("alb-multi-value.json");
    missing["path"] = json!("/cookies");
    let response = h.call("api", missing).await.unwrap();
    assert_eq!(
        response["multiValueHeaders"]["set-cookie"],
        json!(["a=1; Path=/", "b=2; HttpOnly"])
    );
}

#[tokio::test]
async fn http_failures_answer_in_the_request_shape() {
    let h = Harness::new();
    let mut request = fixture("alb-multi-value.json");
    request["path"] = json!("/panic");
    let response = h.call("api", request).await.unwrap();
    assert_eq!(response["statusCode"], 500, "{response}");
    assert_eq!(response["statusDescription"], "500 Internal Server Error");
    assert!(!response["body"].as_str().unwrap().contains("exploded"));

    let mut request = v2_get("/slow");
    request["isBase64Encoded"] = json!(false);
    let started = Instant::now();
    let response = h
        .call_by(
            "api",
            request,
            Some(Instant::now() + Duration::from_millis(200)),
        )
        .await
        .unwrap();
    assert_eq!(response["statusCode"], 504, "{response}");
    assert!(started.elapsed() < Duration::from_secs(5));

    let mut bad = fixture("apigw-http-cookies-base64.json");
    bad["body"] = json!("not base64!!");
    let response = h.call("api", bad).await.unwrap();
    assert_eq!(response["statusCode"], 400, "{response}");
    assert!(
        response["body"].as_str().unwrap().contains("base64"),
        "{response}"
    );

    let mut bad = fixture("apigw-rest-multi-value.json");
    bad["httpMethod"] = json!("NOT A METHOD");
    let response = h.call("api", bad).await.unwrap();
    assert_eq!(response["statusCode"], 400, "{response}");
    assert!(response.get("multiValueHeaders").is_some(), "{response}");

    // The next request is served as usual.
    let response = h.call("api", v2_get("/hello")).await.unwrap();
    assert_eq!(response["statusCode"], 200, "{response}");
}

#[tokio::test]
async fn scheduled_event_reaches_the_timer_function() {
    let h = Harness::new();
    let out = h
        .call("tick", fixture("eventbridge-scheduled.json"))
        .await
        .unwrap();
    assert_eq!(out, Value::Null);
    let seen = h.seen().await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["schedule"], "0 2 * * *");
    assert_eq!(seen[0]["scheduled_time"], "2024-05-01T02:00:00Z");
    assert_eq!(seen[0]["past_due"], false);
    assert_eq!(seen[0]["invocation_id"], "lambda-req-1");
    assert_eq!(seen[0]["provider"], "aws");
}

#[tokio::test]
async fn s3_records_become_one_invocation_each_and_failures_name_their_keys() {
    let h = Harness::new();
    let err = h
        .dispatch("thumbs", fixture("s3-object-created-plus-key.json"))
        .await
        .unwrap_err();
    assert_eq!(err.error_type, "nube.Internal", "{err}");
    assert!(err.error_message.contains("1 of 3 objects failed"), "{err}");
    assert!(
        err.error_message
            .contains("uploads/original/video clip.mp4"),
        "{err}"
    );
    let seen = h.seen().await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["bucket"], "uploads");
    assert_eq!(seen[0]["key"], "original/red floweré +1.jpg");
    assert_eq!(seen[0]["size"], 52431);
    assert_eq!(seen[0]["etag"], "9b2cf535f27731c974343645a3985328");
    assert_eq!(seen[0]["time"], "2024-05-01T09:30:00.250Z");
    assert_eq!(seen[0]["invocation_id"], "lambda-req-2");

    // Without the bucket mapping, the physical name is taken as the logical one, and
    // the function refuses a bucket it does not watch.
    let err = h
        .call("thumbs", fixture("s3-object-created-plus-key.json"))
        .await
        .unwrap_err();
    assert_eq!(err.error_type, "nube.BadRequest", "{err}");
    assert!(err.error_message.contains("2 of 3 objects failed"), "{err}");
}

#[tokio::test]
async fn s3_records_all_succeeding_return_null() {
    let h = Harness::new();
    let mut event = fixture("s3-object-created-plus-key.json");
    event["Records"].as_array_mut().unwrap().truncate(2);
    assert_eq!(h.dispatch("thumbs", event).await.unwrap(), Value::Null);
    assert_eq!(h.seen().await.len(), 1);
}

#[tokio::test]
async fn dynamodb_inserts_become_documents_and_the_rest_is_skipped() {
    let h = Harness::new();
    let out = h
        .dispatch(
            "on-order",
            fixture("dynamodb-stream-insert-modify-remove.json"),
        )
        .await
        .unwrap();
    assert_eq!(out, json!({"batchItemFailures": []}));
    let mut seen = h.seen().await;
    seen.sort_by_key(|v| v["id"].as_str().unwrap().to_owned());
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0]["collection"], "orders");
    assert_eq!(seen[0]["id"], "order-1");
    let doc = &seen[0]["document"];
    assert_eq!(
        *doc,
        json!({
            "id": "own-id-1",
            "customer": "Ada",
            "qty": 3,
            "big": "123456789012345678901234567890",
            "u64max": 18446744073709551615u64,
            "price": 19.99,
            "ratio": -0.000125,
            "photo": "iVBORw0KGgo=",
            "paid": true,
            "note": null,
            "lines": [{"sku": "A-1", "n": 2}, "gift"],
            "address": {"city": "Oslo", "zip": 150},
            "tags": ["new", "vip"],
            "scores": [1, 2.5, 1e23],
            "blobs": ["AAE=", "AgM="],
            "empty": []
        })
    );
    assert_eq!(doc["price"].to_string(), "19.99");
    assert_eq!(seen[1]["id"], "order-2");
}

#[tokio::test]
async fn a_failing_document_stops_the_batch_at_its_sequence_number() {
    let h = Harness::new();
    let mut event = fixture("dynamodb-stream-insert-modify-remove.json");
    event["Records"][0]["dynamodb"]["NewImage"]["fail"] = json!({"BOOL": true});
    let out = h.dispatch("on-order", event).await.unwrap();
    assert_eq!(
        out,
        json!({"batchItemFailures": [{"itemIdentifier": "100000000000000000001"}]})
    );
    // Records after the failed one are not run: the stream delivers them again.
    assert!(h.seen().await.is_empty());

    let mut event = fixture("dynamodb-stream-insert-modify-remove.json");
    event["Records"][3]["dynamodb"]["NewImage"]["fail"] = json!({"BOOL": true});
    let out = h.dispatch("on-order", event).await.unwrap();
    assert_eq!(
        out,
        json!({"batchItemFailures": [{"itemIdentifier": "100000000000000000004"}]})
    );
    assert_eq!(h.seen().await.len(), 1);
}

/// A record of a table the function does not watch is a deployment's mistake (its
/// `NUBE_TABLE_*`), not the record's: the batch fails, to be retried and kept.
#[tokio::test]
async fn a_table_the_function_does_not_watch_fails_the_batch() {
    let h = Harness::new();
    let mut event = fixture("dynamodb-stream-insert-modify-remove.json");
    for record in event["Records"].as_array_mut().unwrap() {
        record["eventSourceARN"] = json!(
            "arn:aws:dynamodb:eu-west-1:210987654321:table/someone-else/stream/2024-05-01T00:00:00.000"
        );
    }
    let err = h.dispatch("on-order", event).await.unwrap_err();
    assert_eq!(err.error_type, "nube.EventMismatch", "{err}");
    assert!(err.error_message.contains("NUBE_TABLE_"), "{err}");
    assert!(h.seen().await.is_empty());
}

/// A record no retry can mend (one that does not decode, or that its function refuses
/// as a client error) is logged and skipped: reported, it would hold the shard until
/// Lambda drops it with the records after it.
#[tokio::test]
async fn a_record_no_retry_can_mend_is_skipped_and_the_batch_goes_on() {
    let h = Harness::new();
    let mut event = fixture("dynamodb-stream-insert-modify-remove.json");
    event["Records"][0]["dynamodb"]
        .as_object_mut()
        .unwrap()
        .remove("NewImage");
    let out = h.dispatch("on-order", event).await.unwrap();
    assert_eq!(out, json!({"batchItemFailures": []}));
    assert_eq!(h.seen().await.len(), 1, "the record after it ran");

    let h = Harness::new();
    let mut event = fixture("dynamodb-stream-insert-modify-remove.json");
    event["Records"][0]["dynamodb"]["NewImage"]["reject"] = json!({"BOOL": true});
    let out = h.dispatch("on-order", event).await.unwrap();
    assert_eq!(out, json!({"batchItemFailures": []}));
    assert_eq!(h.seen().await.len(), 1, "the record after it ran");
}

#[tokio::test]
async fn events_a_function_does_not_take_are_refused_clearly() {
    let h = Harness::new();
    let sqs = fixture("sqs-mismatched.json");
    for function in ["api", "tick", "thumbs", "on-order"] {
        let err = h.call(function, sqs.clone()).await.unwrap_err();
        assert_eq!(err.error_type, "nube.EventMismatch", "{function}: {err}");
        assert!(
            err.error_message.contains("an SQS message batch"),
            "{function}: {err}"
        );
        assert!(
            err.error_message.contains(&format!("{function:?}")),
            "{function}: {err}"
        );
    }
    let err = h
        .call("tick", fixture("apigw-rest-multi-value.json"))
        .await
        .unwrap_err();
    assert_eq!(err.error_type, "nube.EventMismatch");
    assert!(err.error_message.contains("timer events"), "{err}");
    let err = h
        .call("api", fixture("eventbridge-scheduled.json"))
        .await
        .unwrap_err();
    assert_eq!(err.error_type, "nube.EventMismatch");
    assert!(
        err.error_message.contains("EventBridge scheduled event"),
        "{err}"
    );
    let err = h.call("nope", json!({})).await.unwrap_err();
    assert!(err.error_message.contains("no such function"), "{err}");
    assert!(err.error_message.contains("api (http)"), "{err}");
}

#[tokio::test]
async fn a_panicking_function_fails_its_invocation_and_the_next_is_served() {
    let h = Harness::new();
    let err = h
        .call("boom", fixture("eventbridge-scheduled.json"))
        .await
        .unwrap_err();
    assert_eq!(err.error_type, "nube.Panic", "{err}");
    assert!(err.error_message.contains("the timer exploded"), "{err}");
    h.call("tick", fixture("eventbridge-scheduled.json"))
        .await
        .unwrap();
    assert_eq!(h.seen().await.len(), 1);
}

/// Lambda takes responses up to 6 MB and drops bigger ones with a generic error; a
/// body still being read at the deadline would run into Lambda's hard stop. nube
/// answers both itself, with its error body and the invocation id.
#[tokio::test]
async fn responses_lambda_cannot_carry_or_still_running_are_answered_by_nube() {
    let h = Harness::new();
    let fits = h.call("api", v2_get("/text-4mb")).await.unwrap();
    assert_eq!(fits["statusCode"], 200);
    assert_eq!(fits["body"].as_str().map(str::len), Some(4_000_000));
    // 7 MB of text, and 5 MB of bytes (6.7 MB once base64).
    for path in ["/text-7mb", "/bytes-5mb"] {
        let response = h.call("api", v2_get(path)).await.unwrap();
        assert_eq!(response["statusCode"], 500, "{path}");
        assert_eq!(
            response["headers"]["x-nube-invocation-id"], "lambda-req-1",
            "{path}"
        );
        assert!(response.to_string().len() < 10_000, "{path}");
    }
    let response = h
        .call_by(
            "api",
            v2_get("/endless"),
            Some(Instant::now() + Duration::from_millis(300)),
        )
        .await
        .unwrap();
    assert_eq!(response["statusCode"], 504, "{response}");
    assert_eq!(response["headers"]["x-nube-invocation-id"], "lambda-req-1");
}

/// API Gateway gives up 30 s after it received a request and answers the client
/// itself (no invocation id) while the function runs on: nube answers 504 just before,
/// whatever the function's own timeout (30 s here).
#[tokio::test]
async fn api_gateway_requests_end_before_api_gateway_gives_up() {
    let h = Harness::new();
    let mut request = v2_get("/slow");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    request["requestContext"]["timeEpoch"] = json!(now_ms - 28_300);
    let started = Instant::now();
    let response = h.call("api", request).await.unwrap();
    assert_eq!(response["statusCode"], 504, "{response}");
    assert_eq!(response["headers"]["x-nube-invocation-id"], "lambda-req-1");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cut at API Gateway's wait, not at the 10 s Lambda deadline"
    );
}

#[tokio::test]
async fn a_slow_function_fails_at_the_deadline() {
    let h = Harness::new();
    let started = Instant::now();
    let err = h
        .call_by(
            "sleepy",
            fixture("eventbridge-scheduled.json"),
            Some(Instant::now() + Duration::from_millis(200)),
        )
        .await
        .unwrap_err();
    assert_eq!(err.error_type, "nube.Timeout", "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn the_handler_setting_picks_the_function() {
    let app = app();
    assert_eq!(
        nube_aws::dispatch::select_function(&app, Some("tick"))
            .unwrap()
            .name(),
        "tick"
    );
    let err = nube_aws::dispatch::select_function(&app, None).unwrap_err();
    assert!(err.0.contains("_HANDLER"), "{err}");
    assert!(err.0.contains("tick (timer)"), "{err}");
    let err = nube_aws::dispatch::select_function(&app, Some("bootstrap.tick")).unwrap_err();
    assert!(err.0.contains("did you mean \"tick\""), "{err}");
}

#[tokio::test]
async fn resources_need_the_backend_features() {
    let with_collections = App::new("c")
        .timer("t", "rate(1 hour)", |_t: TimerTick, _c: Context| async {
            Ok(())
        })
        .collection("orders");
    let without = App::new("n").timer("t", "rate(1 hour)", |_t: TimerTick, _c: Context| async {
        Ok(())
    });
    #[cfg(not(feature = "dynamodb"))]
    {
        let err = nube_aws::resources_from_env(&with_collections)
            .await
            .unwrap_err();
        assert!(err.0.contains("\"dynamodb\" feature"), "{err}");
    }
    let _ = &with_collections;
    let resources = nube_aws::resources_from_env(&without).await.unwrap();
    let err = resources
        .collection::<Value>("orders")
        .get("x")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("declares no collections"), "{err}");
}
