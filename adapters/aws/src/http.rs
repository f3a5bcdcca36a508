//! HTTP functions: API Gateway REST (payload 1.0), HTTP API (payload 2.0),
//! Function URL and ALB requests to `http::Request`, and the Router's response back
//! in the shape its request came in.
//!
//! **Requests** are lambda_http's: its event types (from `aws_lambda_events`) and its
//! conversion to `http::Request` (multi-value maps read first (with a fix: lambda_http
//! would let the single-value `headers` replace them), v2 `cookies` joined
//! into a `cookie` header, ALB query values decoded, base64 bodies decoded, a
//! missing Host tolerated). The request also gets the Lambda request id as
//! [`nube::http::InvocationId`], the Lambda context as an extension, and the X-Ray
//! trace id as `x-amzn-trace-id`.
//!
//! **The path is the app's, on every stage.** The Router sees the path the app's routes
//! declare, without the API Gateway stage ([`routed_path`]): a REST API's `path` as
//! sent (lambda_http would put the stage in front of it), and a 2.0 request's `rawPath`
//! without the `/<stage>` it starts with when it came to a named stage through the
//! API's own `execute-api` endpoint (`/prod/orders/7` on stage `prod` is routed as
//! `/orders/7`). A custom domain maps a stage without putting it in the path, and
//! `$default` stages and Function URLs have none, so those paths are routed as sent.
//! The stage stays in the request context (`lambda_http::RequestExt::request_context`),
//! and the path as sent in `raw_http_path`; `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH`,
//! lambda_http's switch for this, changes nothing here. One exception, because a REST
//! payload cannot be told from an HTTP API's payload 1.0 by its type: an HTTP API on
//! a named stage must use payload 2.0 (API Gateway's default for HTTP APIs, which the
//! SAM template keeps).
//!
//! **Payload 2.0 from its text.** The bootstrap reads an HTTP API or Function URL
//! request straight from the payload's JSON text into its type ([`read_payload_v2`],
//! [`serve_v2`]) and writes its response straight to JSON text, rather than through a
//! `serde_json::Value` both ways ([`serve`], which every other payload takes): the
//! same checks and the same answer, without building the payload twice.
//!
//! **Responses** follow lambda_http's rules (its encoder is not public):
//!
//! | origin | headers | cookies | extra |
//! |---|---|---|---|
//! | REST API | `multiValueHeaders` only (API Gateway would merge and duplicate two maps) | `Set-Cookie` values in `multiValueHeaders` | |
//! | HTTP API, Function URL | `headers`, repeated headers joined with `, ` | `Set-Cookie` values in `cookies`, not in `headers` | |
//! | ALB | both maps (the target group setting decides which is read) | in both maps | `statusDescription` (`200 OK`) |
//!
//! Bodies are byte-exact: a body goes out as text only when its content type is
//! textual (`text/*`, JSON, XML, YAML, JavaScript, `+json`/`+xml`/`+yaml`, or
//! `x-lambda-http-content-encoding: text`) or absent, it has no `Content-Encoding`,
//! and it is valid UTF-8; anything else goes out base64 with `isBase64Encoded: true`.
//!
//! A request lambda_http cannot convert (a body marked base64 that is not, a method
//! that is not one) is answered 400 in its own shape; a handler running past the
//! Lambda deadline answers 504, and so does a response body still being read at it.
//! An API Gateway request's deadline is also at most [`API_GATEWAY_WAIT`] after API
//! Gateway received it, since API Gateway gives up at 30 s and answers the client
//! itself, with no invocation id, while the function runs on. A
//! response Lambda could not carry (over 6 MB as sent, base64 included; 1 MB behind a
//! load balancer) is answered 500: both with nube's error body and the invocation id,
//! where Lambda would give the client its own generic error.

use std::borrow::Cow;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use aws_lambda_events::alb::{AlbTargetGroupRequest, AlbTargetGroupResponse};
use aws_lambda_events::apigw::{
    ApiGatewayProxyRequest, ApiGatewayProxyResponse, ApiGatewayV2httpRequest,
    ApiGatewayV2httpRequestContext,
};
use aws_lambda_events::encodings::Body as LambdaBody;
use base64::Engine;
use futures::FutureExt;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, SET_COOKIE};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use lambda_http::RequestExt;
use lambda_http::aws_lambda_events::query_map::QueryMap;
use lambda_http::request::{LambdaRequest, RequestContext};
use nube::axum::Router;
use nube::axum::body::Body;
use nube::{Error, ErrorKind};
use serde_json::Value;
use serde_json::value::RawValue;
use tower::ServiceExt;

use crate::error::{DecodeError, HandlerError};
use crate::shape::{EventShape, classify};

/// Where an HTTP request came from; its response goes back in the same shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpOrigin {
    /// API Gateway REST API (payload format 1.0).
    RestApi,
    /// API Gateway HTTP API (payload format 2.0).
    HttpApi,
    /// Lambda Function URL (payload format 2.0).
    FunctionUrl,
    /// Application Load Balancer.
    Alb,
}

impl HttpOrigin {
    /// The origin of `payload`, when it is an HTTP request ([`crate::shape::classify`]).
    pub fn of(payload: &Value) -> Option<Self> {
        Self::from_shape(classify(payload))
    }

    /// The origin of an HTTP [`EventShape`].
    pub fn from_shape(shape: EventShape) -> Option<Self> {
        match shape {
            EventShape::ApiGatewayRest => Some(Self::RestApi),
            EventShape::ApiGatewayHttp => Some(Self::HttpApi),
            EventShape::FunctionUrl => Some(Self::FunctionUrl),
            EventShape::Alb => Some(Self::Alb),
            _ => None,
        }
    }
}

/// A request that does not fit `origin`'s event type. The answer (a 400 to the
/// client) says which; serde's detail, which names aws_lambda_events' types, is logged.
fn decode_error(origin: &str, e: impl std::fmt::Display) -> DecodeError {
    tracing::warn!(origin, error = %e, "the request does not fit its event type");
    DecodeError::new(format!(
        "the {origin} request is malformed (the function's log has the detail)"
    ))
}

/// Deserialises `payload` as a request of `origin` with lambda_http's event types.
/// With `origin` `None`, lambda_http's own guess (REST, then 2.0, then ALB) decides.
pub fn parse_request(
    origin: Option<HttpOrigin>,
    payload: Value,
) -> Result<(HttpOrigin, LambdaRequest), DecodeError> {
    Ok(match origin {
        Some(HttpOrigin::RestApi) => (
            HttpOrigin::RestApi,
            LambdaRequest::ApiGatewayV1(
                serde_json::from_value::<ApiGatewayProxyRequest>(payload)
                    .map_err(|e| decode_error("API Gateway REST", e))?,
            ),
        ),
        Some(o @ (HttpOrigin::HttpApi | HttpOrigin::FunctionUrl)) => (
            o,
            LambdaRequest::ApiGatewayV2(
                serde_json::from_value::<ApiGatewayV2httpRequest>(payload)
                    .map_err(|e| decode_error("payload 2.0", e))?,
            ),
        ),
        Some(HttpOrigin::Alb) => (
            HttpOrigin::Alb,
            LambdaRequest::Alb(
                serde_json::from_value::<AlbTargetGroupRequest>(payload)
                    .map_err(|e| decode_error("ALB", e))?,
            ),
        ),
        None => {
            let text = payload.to_string();
            let request: LambdaRequest =
                serde_json::from_str(&text).map_err(|e| decode_error("HTTP", e))?;
            let origin = match &request {
                LambdaRequest::ApiGatewayV1(_) => HttpOrigin::RestApi,
                LambdaRequest::ApiGatewayV2(_) => HttpOrigin::HttpApi,
                LambdaRequest::Alb(_) => HttpOrigin::Alb,
                _ => {
                    return Err(DecodeError::new(
                        "lambda_http decoded a request kind nube does not serve",
                    ));
                }
            };
            (origin, request)
        }
    })
}

/// `payload` (a request of `origin`) as an `http::Request`, through lambda_http.
pub fn decode_request(
    origin: HttpOrigin,
    mut payload: Value,
) -> Result<http::Request<lambda_http::Body>, DecodeError> {
    check_base64_body(&payload)?;
    check_host(&payload)?;
    prefer_multi_value_headers(&mut payload);
    let (_, request) = parse_request(Some(origin), payload)?;
    into_http(request)
}

/// REST and ALB requests may carry a header in both `headers` (last value) and
/// `multiValueHeaders` (every value). lambda_http merges the two with
/// `HeaderMap::extend`, which replaces, so every repeated header would keep only its
/// last value; dropping the single-value copies first keeps them all.
fn prefer_multi_value_headers(payload: &mut Value) {
    let multi: std::collections::HashSet<String> =
        match payload.get("multiValueHeaders").and_then(Value::as_object) {
            Some(m) => m
                .iter()
                .filter(|(_, v)| v.as_array().is_some_and(|a| a.len() > 1))
                .map(|(k, _)| k.to_ascii_lowercase())
                .collect(),
            None => return,
        };
    if multi.is_empty() {
        return;
    }
    if let Some(single) = payload.get_mut("headers").and_then(Value::as_object_mut) {
        single.retain(|k, _| !multi.contains(&k.to_ascii_lowercase()));
    }
}

/// lambda_http builds the URI from the Host header (or `requestContext.domainName`)
/// and panics on a host its URL parser refuses; such a request is refused here first.
fn check_host(payload: &Value) -> Result<(), DecodeError> {
    let mut hosts: Vec<&str> = Vec::new();
    for map in ["headers", "multiValueHeaders"] {
        if let Some(headers) = payload.get(map).and_then(Value::as_object) {
            for (name, value) in headers {
                if name.eq_ignore_ascii_case("host") {
                    match value {
                        Value::String(h) => hosts.push(h),
                        Value::Array(hs) => hosts.extend(hs.iter().filter_map(Value::as_str)),
                        _ => {}
                    }
                }
            }
        }
    }
    if let Some(domain) = payload
        .pointer("/requestContext/domainName")
        .and_then(Value::as_str)
    {
        hosts.push(domain);
    }
    check_hosts(hosts)
}

fn check_hosts<'a>(hosts: impl IntoIterator<Item = &'a str>) -> Result<(), DecodeError> {
    let plausible = |host: &str| {
        let name = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
        // A name of only these bytes is an authority (what `parse` would say, without
        // its copy); a port or an IP literal is parsed.
        !host.is_empty()
            && host
                .bytes()
                .all(|b| name(b) || matches!(b, b':' | b'[' | b']'))
            && (host.bytes().all(name) && host.len() < usize::from(u16::MAX)
                || host.parse::<http::uri::Authority>().is_ok())
    };
    match hosts.into_iter().find(|h| !plausible(h)) {
        Some(bad) => Err(DecodeError::new(format!(
            "the request's host {bad:?} is not a valid host name"
        ))),
        None => Ok(()),
    }
}

fn check_base64_body(payload: &Value) -> Result<(), DecodeError> {
    check_base64(
        payload.get("isBase64Encoded").and_then(Value::as_bool) == Some(true),
        payload.get("body").and_then(Value::as_str),
    )
}

fn check_base64(is_base64_encoded: bool, body: Option<&str>) -> Result<(), DecodeError> {
    if is_base64_encoded
        && let Some(body) = body
        && base64::engine::general_purpose::STANDARD
            .decode(body)
            .is_err()
    {
        return Err(DecodeError::new(
            "isBase64Encoded is true but the body is not valid base64",
        ));
    }
    Ok(())
}

fn into_http(mut request: LambdaRequest) -> Result<http::Request<lambda_http::Body>, DecodeError> {
    // Converted as if on the `$default` stage, so that lambda_http leaves the stage
    // out of the URI whatever `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH` says; the request
    // context gets the stage back afterwards.
    let default_stage = || Some("$default".to_owned());
    let (stage, raw_path) = match &mut request {
        LambdaRequest::ApiGatewayV1(r) => (
            std::mem::replace(&mut r.request_context.stage, default_stage()),
            None,
        ),
        LambdaRequest::ApiGatewayV2(r) => {
            let raw_path = r.raw_path.take();
            r.raw_path = raw_path
                .as_deref()
                .map(|path| routed_path(&r.request_context, path).to_owned());
            let stage = std::mem::replace(&mut r.request_context.stage, default_stage());
            (stage, raw_path)
        }
        _ => (None, None),
    };
    // lambda_http panics on what it cannot convert (a body that is not base64, a URI
    // that does not parse); that is the request's fault, not the process's.
    let mut converted = std::panic::catch_unwind(AssertUnwindSafe(|| http::Request::from(request)))
        .map_err(|p| unconvertible(&*p))?;
    match converted.extensions_mut().get_mut::<RequestContext>() {
        Some(RequestContext::ApiGatewayV1(context)) => context.stage = stage,
        Some(RequestContext::ApiGatewayV2(context)) => context.stage = stage,
        _ => {}
    }
    if let Some(raw_path) = raw_path {
        let extensions = std::mem::take(converted.extensions_mut());
        *converted.extensions_mut() = extensions.with_raw_http_path(raw_path);
    }
    Ok(converted)
}

/// The refusal of a request lambda_http panicked on: the panic's text is lambda_http's
/// own, for the log; the client (a 400) is told what is wrong in its terms.
fn unconvertible(panic: &(dyn std::any::Any + Send)) -> DecodeError {
    tracing::warn!(
        reason = nube::panic_message(panic),
        "lambda_http could not convert the request"
    );
    DecodeError::new("the request's method, URI, headers or body do not make an HTTP request")
}

/// The path a payload 2.0 request is routed by: its `raw_path` [`without_stage`] when
/// it came through the API's `execute-api` endpoint (or names no domain), as sent
/// when it came through a custom domain, whose paths carry no stage.
pub fn routed_path<'a>(context: &ApiGatewayV2httpRequestContext, raw_path: &'a str) -> &'a str {
    let through_endpoint = context
        .domain_name
        .as_deref()
        .is_none_or(|domain| domain.contains(".execute-api."));
    if through_endpoint {
        without_stage(context.stage.as_deref(), raw_path)
    } else {
        raw_path
    }
}

/// The path an API Gateway request is routed by: `path` without the `/<stage>` segment
/// it starts with, on a named stage (`/prod/orders/7` → `/orders/7`, `/prod` → `/`).
/// Other paths, and any path on the `$default` stage, are routed as they are.
///
/// ```
/// use nube_aws::http::without_stage;
///
/// assert_eq!(without_stage(Some("prod"), "/prod/orders/7"), "/orders/7");
/// assert_eq!(without_stage(Some("prod"), "/prod"), "/");
/// assert_eq!(without_stage(Some("prod"), "/products"), "/products");
/// assert_eq!(without_stage(Some("$default"), "/prod/orders"), "/prod/orders");
/// ```
pub fn without_stage<'a>(stage: Option<&str>, path: &'a str) -> &'a str {
    let Some(stage) = stage.filter(|s| !s.is_empty() && *s != "$default") else {
        return path;
    };
    match path.strip_prefix('/').and_then(|p| p.strip_prefix(stage)) {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => path,
    }
}

/// lambda_http's conversion of an HTTP API or Function URL request (its
/// `into_api_gateway_v2_request`: same method, headers, cookies, body and extensions;
/// the path [`routed_path`], as [`decode_request`] gives it),
/// without the URL round trip it builds the URI with (format, parse with the `url`
/// crate, print, parse again: a third of an invocation's work) when that round trip
/// would give back what it was given: a plain host and a path with nothing to
/// encode or resolve (`plain_uri`). Anything else goes through lambda_http itself.
/// Tests compare the two on every sample.
/// Refuses first what [`decode_request`] refuses (a body marked base64 that is not, a
/// host lambda_http could not parse).
pub fn v2_into_http(
    request: ApiGatewayV2httpRequest,
) -> Result<http::Request<lambda_http::Body>, DecodeError> {
    check_base64(request.is_base64_encoded, request.body.as_deref())?;
    check_hosts(
        request
            .headers
            .get_all(http::header::HOST)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .chain(request.request_context.domain_name.as_deref()),
    )?;
    let Some(uri) = plain_uri(&request) else {
        return into_http(LambdaRequest::ApiGatewayV2(request));
    };
    let ApiGatewayV2httpRequest {
        raw_path,
        raw_query_string,
        cookies,
        mut headers,
        query_string_parameters,
        path_parameters,
        stage_variables,
        body,
        is_base64_encoded,
        request_context,
        ..
    } = request;
    let query = match &raw_query_string {
        Some(query) => match query.parse::<QueryMap>() {
            Ok(map) => map,
            Err(never) => match never {},
        },
        None => query_string_parameters,
    };
    if let Some(cookies) = cookies
        && let Ok(value) = HeaderValue::from_str(&cookies.join("; "))
    {
        headers.insert(http::header::COOKIE, value);
    }
    // lambda_http panics on a body marked base64 that is not: refused the same way.
    let body = std::panic::catch_unwind(|| {
        body.as_deref()
            .map_or_else(lambda_http::Body::default, |b| {
                lambda_http::Body::from_maybe_encoded(is_base64_encoded, b)
            })
    })
    .map_err(|p| unconvertible(&*p))?;
    let method = request_context.http.method.clone();
    let mut converted = http::Request::new(body);
    *converted.uri_mut() = uri;
    *converted.method_mut() = method;
    *converted.headers_mut() = headers;
    *converted.extensions_mut() = http::Extensions::new()
        .with_raw_http_path(raw_path.unwrap_or_default())
        .with_query_string_parameters(query)
        .with_path_parameters(QueryMap::from(path_parameters))
        .with_stage_variables(QueryMap::from(stage_variables))
        .with_request_context(RequestContext::ApiGatewayV2(request_context));
    Ok(converted)
}

/// The URI lambda_http would build for `request`, when building it takes no URL
/// parser: the scheme `https` or `http` (`X-Forwarded-Proto`), a host of lower-case
/// letters, digits, `-` and `.` that no URL parser would rewrite (no empty label,
/// no `xn--`, not ending in a number, which would read as IPv4), and a path
/// ([`routed_path`]) of characters a URL keeps as they are, with no dot segment and
/// no percent-encoded dot. `None` sends the request through lambda_http.
fn plain_uri(request: &ApiGatewayV2httpRequest) -> Option<http::Uri> {
    let headers = &request.headers;
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or(request.request_context.domain_name.as_deref())?;
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("https");
    let raw_path = request.raw_path.as_deref().unwrap_or_default();
    let path = routed_path(&request.request_context, raw_path);
    if !matches!(scheme, "https" | "http") || !plain_host(host) || !plain_path(path) {
        return None;
    }
    let query = request.raw_query_string.as_deref().unwrap_or_default();
    let mut uri =
        String::with_capacity(scheme.len() + 3 + host.len() + path.len() + 1 + query.len());
    uri.push_str(scheme);
    uri.push_str("://");
    uri.push_str(host);
    uri.push_str(path);
    if !query.is_empty() {
        uri.push('?');
        uri.push_str(query);
    }
    http::Uri::try_from(uri).ok()
}

fn plain_host(host: &str) -> bool {
    let labels_ok = host.split('.').all(|label| {
        !label.is_empty()
            && !label.starts_with("xn--")
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    });
    let last = host.rsplit('.').next().unwrap_or_default();
    labels_ok && last.bytes().any(|b| b.is_ascii_lowercase()) && !last.starts_with("0x")
}

fn plain_path(path: &str) -> bool {
    let bytes = path.as_bytes();
    let plain_bytes = bytes.iter().enumerate().all(|(i, &b)| match b {
        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => true,
        b'-' | b'.' | b'_' | b'~' | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+'
        | b',' | b';' | b'=' | b':' | b'@' | b'/' => true,
        b'%' => bytes.get(i + 1..i + 3).is_some_and(|hex| {
            hex.iter().all(u8::is_ascii_hexdigit) && !hex.eq_ignore_ascii_case(b"2e")
        }),
        _ => false,
    });
    plain_bytes
        && path.starts_with('/')
        && path
            .split('/')
            .all(|segment| segment != "." && segment != "..")
}

/// Serves one HTTP request payload through `router` and encodes its response for
/// the request's origin.
///
/// `lambda` is the invocation's Lambda context (its request id becomes the
/// invocation id; the context is put in the request's extensions). A request that is
/// not an HTTP event fails with [`HandlerError::EVENT_MISMATCH`]; a malformed one is
/// answered 400 in its own shape; past `deadline` the answer is 504.
pub async fn serve(
    router: &Router,
    payload: Value,
    lambda: lambda_runtime::Context,
    deadline: Option<Instant>,
) -> Result<Value, HandlerError> {
    let shape = classify(&payload);
    let origin = HttpOrigin::from_shape(shape);
    if origin.is_none() && !shape.is_http() && shape != EventShape::Unknown {
        return Err(HandlerError::mismatch(format!(
            "this is an HTTP function, and the payload is {}, not an API Gateway, Function URL or ALB request",
            shape.describe()
        )));
    }
    let mut payload = payload;
    prefer_multi_value_headers(&mut payload);
    let refused = check_base64_body(&payload)
        .and_then(|()| check_host(&payload))
        .err();
    let not_http = |e: DecodeError| {
        HandlerError::mismatch(format!(
            "this is an HTTP function, and the payload is not an API Gateway, Function URL or ALB request: {e}"
        ))
    };
    let (origin, request) = match (origin, refused) {
        (Some(origin), Some(e)) => (origin, Err(e)),
        (None, Some(e)) => return Err(not_http(e)),
        (known, None) => match parse_request(known, payload) {
            Ok((origin, request)) => (origin, into_http(request)),
            Err(e) => match known {
                Some(origin) => (origin, Err(e)),
                None => return Err(not_http(e)),
            },
        },
    };
    let request_id = lambda.request_id.clone();
    let response = respond(router, request, lambda, deadline).await;
    Ok(encode_response_until(origin, response, deadline, &request_id).await)
}

/// An HTTP API or Function URL request (payload format 2.0) read straight from its
/// JSON text, when the text shows it is one by the signs [`classify`] reads: a
/// `requestContext` without `elb`, no `Records`, and `rawPath` or `version: "2.0"`.
/// `None` means "read it as a `Value` and classify it": for any other payload, for a
/// 2.0 request that does not decode, and (to stay exact) for text with `\u` escapes,
/// which could spell a key.
pub fn read_payload_v2(json: &str) -> Option<ApiGatewayV2httpRequest> {
    // memchr's searchers (vectorised) rather than `str::contains`: the payload is
    // looked through four times.
    static KEYS: std::sync::LazyLock<[memchr::memmem::Finder<'static>; 4]> =
        std::sync::LazyLock::new(|| {
            ["\"requestContext\"", "\"Records\"", "\"elb\"", "\\u"].map(memchr::memmem::Finder::new)
        });
    let [context, records, elb, escape] = &*KEYS;
    let has = |key: &memchr::memmem::Finder<'_>| key.find(json.as_bytes()).is_some();
    if !has(context) || has(records) || has(elb) || has(escape) {
        return None;
    }
    let request: ApiGatewayV2httpRequest = serde_json::from_str(json).ok()?;
    (request.raw_path.is_some() || request.version.as_deref() == Some("2.0")).then_some(request)
}

/// Serves an HTTP API or Function URL request ([`read_payload_v2`]) and answers the
/// JSON of its response: what [`serve`] does for such a payload, with the same checks
/// and the same answer, without a `Value` either way.
pub async fn serve_v2(
    router: &Router,
    request: ApiGatewayV2httpRequest,
    lambda: lambda_runtime::Context,
    deadline: Option<Instant>,
) -> Box<RawValue> {
    let request = v2_into_http(request);
    let request_id = lambda.request_id.clone();
    let response = respond(router, request, lambda, deadline).await;
    // Not made UTF-8 first: a 2.0 response writes only visible-ASCII values anyway.
    let (status, headers, bytes) = response_bytes(response, deadline, &request_id).await;
    let raw = v2_raw(status, &headers, encode_body(&headers, bytes));
    if raw.get().len() <= MAX_LAMBDA_RESPONSE {
        return raw;
    }
    let failed = too_large(&headers, &request_id, raw.get().len());
    let (status, headers, bytes) = response_bytes(failed, None, &request_id).await;
    v2_raw(status, &headers, encode_body(&headers, bytes))
}

fn v2_raw(status: StatusCode, headers: &HeaderMap, body: LambdaBody) -> Box<RawValue> {
    serde_json::value::to_raw_value(&V2Response::new(status, headers, body))
        .expect("Lambda HTTP responses serialise (headers are UTF-8)")
}

/// Runs a decoded request through `router` (a request that could not be decoded
/// is answered 400).
async fn respond(
    router: &Router,
    request: Result<http::Request<lambda_http::Body>, DecodeError>,
    lambda: lambda_runtime::Context,
    deadline: Option<Instant>,
) -> Response<Body> {
    let request_id = lambda.request_id.clone();
    match request {
        Ok(request) => {
            let mut request = request.map(Body::new);
            request
                .extensions_mut()
                .insert(nube::http::InvocationId(request_id.clone()));
            let deadline = [deadline, api_gateway_deadline(&request)]
                .into_iter()
                .flatten()
                .min();
            if let Some(d) = deadline {
                request.extensions_mut().insert(nube::http::Deadline(d));
            }
            if let Some(trace) = lambda
                .xray_trace_id
                .as_deref()
                .and_then(|t| HeaderValue::from_str(t).ok())
            {
                request.headers_mut().insert("x-amzn-trace-id", trace);
            }
            request.extensions_mut().insert(lambda);
            call(router, request, deadline, &request_id).await
        }
        Err(e) => {
            tracing::warn!(error = %e, "malformed HTTP request answered 400");
            with_invocation_id(Error::bad_request(e.to_string()), &request_id)
        }
    }
}

/// How long nube lets a request API Gateway waits for run: API Gateway gives up after
/// 30 s (HTTP APIs; REST APIs 29 s unless raised) and answers the client itself, while
/// the function runs on. Half a second before that, nube answers 504.
pub const API_GATEWAY_WAIT: std::time::Duration = std::time::Duration::from_millis(28_500);

/// When API Gateway will give up on `request`: [`API_GATEWAY_WAIT`] after it received
/// it (its `requestTimeEpoch` / `timeEpoch`). `None` for a Function URL or a load
/// balancer (no such limit), and for a time in the future or long past (a payload
/// replayed later, a clock out of step), where the function's own timeout applies.
fn api_gateway_deadline<B>(request: &http::Request<B>) -> Option<Instant> {
    let received_ms = match request.extensions().get::<RequestContext>()? {
        RequestContext::ApiGatewayV2(c) => {
            if c.domain_name
                .as_deref()
                .is_some_and(crate::shape::is_function_url_domain)
            {
                return None;
            }
            c.time_epoch
        }
        RequestContext::ApiGatewayV1(c) => c.request_time_epoch,
        _ => return None,
    };
    let received =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(received_ms).ok()?);
    let waited = std::time::SystemTime::now().duration_since(received).ok()?;
    // Older than API Gateway ever waits (and a little): not a request it is waiting
    // for, but one replayed or written by hand.
    if waited > API_GATEWAY_WAIT + std::time::Duration::from_secs(5) {
        return None;
    }
    Some(Instant::now() + API_GATEWAY_WAIT.saturating_sub(waited))
}

fn with_invocation_id(error: Error, request_id: &str) -> Response<Body> {
    let mut response = nube::axum::response::IntoResponse::into_response(error);
    if let Ok(v) = HeaderValue::from_str(request_id) {
        response
            .headers_mut()
            .insert(nube::http::INVOCATION_ID_HEADER, v);
    }
    response
}

async fn call(
    router: &Router,
    request: http::Request<Body>,
    deadline: Option<Instant>,
    request_id: &str,
) -> Response<Body> {
    let run = AssertUnwindSafe(router.clone().oneshot(request)).catch_unwind();
    let outcome = match deadline {
        Some(d) => nube::deadline::within(d, run).await.ok(),
        None => Some(run.await),
    };
    match outcome {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(never))) => match never {},
        Some(Err(panic)) => with_invocation_id(
            Error::new(
                ErrorKind::Panic,
                format!(
                    "the HTTP service panicked: {}",
                    nube::panic_message(&*panic)
                ),
            ),
            request_id,
        ),
        None => {
            tracing::error!("the request ran past the Lambda deadline");
            with_invocation_id(
                Error::new(
                    ErrorKind::Timeout,
                    "the request ran past the Lambda invocation's deadline",
                ),
                request_id,
            )
        }
    }
}

const TEXT_PREFIXES: [&str; 5] = [
    "text",
    "application/json",
    "application/javascript",
    "application/xml",
    "application/yaml",
];
const TEXT_SUFFIXES: [&str; 3] = ["+xml", "+yaml", "+json"];

/// Whether a body with these headers goes out as text (lambda_http's rule), given
/// that it is valid UTF-8.
pub fn is_text(headers: &HeaderMap) -> bool {
    if headers.contains_key(CONTENT_ENCODING) {
        return false;
    }
    let Some(content_type) = headers.get(CONTENT_TYPE) else {
        return true;
    };
    let content_type = content_type.to_str().unwrap_or_default().trim();
    let mime = content_type.split(';').next().unwrap_or_default().trim();
    TEXT_PREFIXES.iter().any(|p| content_type.starts_with(p))
        || TEXT_SUFFIXES.iter().any(|s| mime.ends_with(s))
        || headers
            .get("x-lambda-http-content-encoding")
            .is_some_and(|v| v == "text")
}

/// The body as Lambda carries it: text, or bytes (sent base64).
pub fn encode_body(headers: &HeaderMap, bytes: Vec<u8>) -> LambdaBody {
    if is_text(headers) {
        match String::from_utf8(bytes) {
            Ok(text) => LambdaBody::Text(text),
            Err(e) => LambdaBody::Binary(e.into_bytes()),
        }
    } else {
        LambdaBody::Binary(bytes)
    }
}

fn utf8_headers(headers: HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in &headers {
        let value = if value.to_str().is_ok() {
            value.clone()
        } else {
            match HeaderValue::from_str(&String::from_utf8_lossy(value.as_bytes())) {
                Ok(v) => v,
                Err(_) => continue,
            }
        };
        out.append(name.clone(), value);
    }
    out
}

/// Repeated headers joined with `, ` (one value per name), `Set-Cookie` left out.
fn joined_headers(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.keys_len());
    for (name, value) in joined(headers) {
        if let Ok(v) = HeaderValue::from_str(&value) {
            out.insert(name.clone(), v);
        }
    }
    out
}

/// One value per header name, `Set-Cookie` left out, of the values that are text
/// (visible ASCII): a header's only value as it is (left out when it is not text),
/// repeated ones joined with `, `.
fn joined(headers: &HeaderMap) -> impl Iterator<Item = (&HeaderName, Cow<'_, str>)> {
    headers
        .keys()
        .filter(|name| *name != SET_COOKIE)
        .filter_map(|name| {
            let mut all = headers.get_all(name).iter();
            match (all.next(), all.next()) {
                (Some(only), None) => Some((name, Cow::Borrowed(only.to_str().ok()?))),
                _ => {
                    let values: Vec<&str> = headers
                        .get_all(name)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .collect();
                    Some((name, Cow::Owned(values.join(", "))))
                }
            }
        })
}

/// The largest response Lambda takes from a function (6 MB), in bytes of JSON.
pub const MAX_LAMBDA_RESPONSE: usize = 6_291_556;

/// The largest response an Application Load Balancer takes from a Lambda target.
pub const MAX_ALB_RESPONSE: usize = 1_048_576;

/// The largest response, in bytes of JSON, that a request of `origin` can be answered
/// with.
fn response_limit(origin: HttpOrigin) -> usize {
    match origin {
        HttpOrigin::Alb => MAX_ALB_RESPONSE,
        _ => MAX_LAMBDA_RESPONSE,
    }
}

/// Whether a response with a body of `len` bytes fits `origin`'s limit whatever its
/// encoding (JSON escapes make a byte at most six), so that it need not be measured.
fn surely_fits(origin: HttpOrigin, len: usize) -> bool {
    len.saturating_mul(6).saturating_add(16 * 1024) <= response_limit(origin)
}

/// The error answered in place of a response that cannot be sent: nube's error body,
/// the request's invocation id, and the headers a browser needs to read it (CORS).
fn failed_response(error: Error, original: &HeaderMap, request_id: &str) -> Response<Body> {
    let mut response = with_invocation_id(error, request_id);
    for (name, value) in original {
        if name.as_str().starts_with("access-control-") || name == http::header::VARY {
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
    response
}

fn too_large(original: &HeaderMap, request_id: &str, size: usize) -> Response<Body> {
    tracing::error!(
        bytes = size,
        "the response is larger than Lambda (or the load balancer) takes; answered 500"
    );
    failed_response(
        Error::new(ErrorKind::Internal, "the response is too large"),
        original,
        request_id,
    )
}

/// The status, headers and body bytes of the Router's response, read until
/// `deadline`. A body that fails is answered 500, one larger than any Lambda response
/// 500 too, and one still being read at the deadline 504 ([`failed_response`]; the
/// reason goes to the log only).
async fn response_bytes(
    response: Response<Body>,
    deadline: Option<Instant>,
    request_id: &str,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let (parts, body) = response.into_parts();
    let read =
        http_body_util::BodyExt::collect(http_body_util::Limited::new(body, MAX_LAMBDA_RESPONSE));
    let read = match deadline {
        Some(deadline) => nube::deadline::within(deadline, read).await.ok(),
        None => Some(read.await),
    };
    let failed = match read {
        Some(Ok(collected)) => {
            return (parts.status, parts.headers, Vec::from(collected.to_bytes()));
        }
        Some(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            too_large(&parts.headers, request_id, MAX_LAMBDA_RESPONSE)
        }
        Some(Err(e)) => {
            tracing::error!(error = %e, "the response body failed; answered 500");
            failed_response(
                Error::new(
                    ErrorKind::Internal,
                    format!("the response body failed: {e}"),
                ),
                &parts.headers,
                request_id,
            )
        }
        None => {
            tracing::error!(
                "the response body was still being read at the Lambda deadline; answered 504"
            );
            failed_response(
                Error::new(
                    ErrorKind::Timeout,
                    "the response body ran past the Lambda invocation's deadline",
                ),
                &parts.headers,
                request_id,
            )
        }
    };
    let (failed, body) = failed.into_parts();
    let bytes = nube::axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    (failed.status, failed.headers, bytes.to_vec())
}

/// The status, UTF-8 headers and Lambda body of the Router's response.
async fn response_parts(
    response: Response<Body>,
    deadline: Option<Instant>,
    request_id: &str,
) -> (StatusCode, HeaderMap, LambdaBody) {
    let (status, headers, bytes) = response_bytes(response, deadline, request_id).await;
    let headers = utf8_headers(headers);
    let body = encode_body(&headers, bytes);
    (status, headers, body)
}

/// An HTTP API / Function URL response (payload format 2.0) as Lambda reads it:
/// `aws_lambda_events`' `ApiGatewayV2httpResponse` without the `multiValueHeaders`
/// that type always writes and payload 2.0 does not have. Written from the response's
/// own headers: `headers` one value per name ([`joined_headers`]' rule), `cookies`
/// the `Set-Cookie` values, each as text when it is visible ASCII and left out when
/// not (so a header map made UTF-8 first, [`utf8_headers`], writes the same).
struct V2Response<'a> {
    status: StatusCode,
    headers: &'a HeaderMap,
    body: LambdaBody,
}

impl<'a> V2Response<'a> {
    fn new(status: StatusCode, headers: &'a HeaderMap, body: LambdaBody) -> Self {
        Self {
            status,
            headers,
            body,
        }
    }
}

impl serde::Serialize for V2Response<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        /// [`joined`], written as it is read rather than into a map first.
        struct Joined<'a>(&'a HeaderMap);
        impl serde::Serialize for Joined<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_map(joined(self.0).map(|(name, value)| (name.as_str(), value)))
            }
        }
        struct Cookies<'a>(&'a HeaderMap);
        impl serde::Serialize for Cookies<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(
                    self.0
                        .get_all(SET_COOKIE)
                        .iter()
                        .filter_map(|v| v.to_str().ok()),
                )
            }
        }
        let mut response = s.serialize_struct("V2Response", 5)?;
        response.serialize_field("statusCode", &self.status.as_u16())?;
        response.serialize_field("headers", &Joined(self.headers))?;
        response.serialize_field("body", &self.body)?;
        response.serialize_field(
            "isBase64Encoded",
            &matches!(self.body, LambdaBody::Binary(_)),
        )?;
        response.serialize_field("cookies", &Cookies(self.headers))?;
        response.end()
    }
}

/// The Router's response as the Lambda response for a request of `origin`.
pub async fn encode_response(origin: HttpOrigin, response: Response<Body>) -> Value {
    encode_response_until(origin, response, None, "").await
}

/// [`encode_response`], its body read until `deadline` (a 504 past it); a response
/// larger than `origin` takes is answered 500 instead, with `request_id`.
pub async fn encode_response_until(
    origin: HttpOrigin,
    response: Response<Body>,
    deadline: Option<Instant>,
    request_id: &str,
) -> Value {
    let (status, headers, body) = response_parts(response, deadline, request_id).await;
    let body_len = match &body {
        LambdaBody::Text(text) => text.len(),
        LambdaBody::Binary(bytes) => bytes.len().div_ceil(3) * 4,
        _ => 0,
    };
    // Kept only for a body that may not fit: what a failure answer carries over.
    let original = (!surely_fits(origin, body_len)).then(|| headers.clone());
    let value = encode_parts(origin, status, headers, body);
    if let Some(original) = original {
        let size = json_len(&value);
        if size > response_limit(origin) {
            let failed = too_large(&original, request_id, size);
            let (status, headers, body) = response_parts(failed, None, request_id).await;
            return encode_parts(origin, status, headers, body);
        }
    }
    value
}

/// The length of `value` as JSON text, counted as it is written rather than kept.
fn json_len(value: &Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => counter.0,
        Err(_) => usize::MAX,
    }
}

/// A response's parts as the Lambda response for a request of `origin`.
fn encode_parts(
    origin: HttpOrigin,
    status: StatusCode,
    headers: HeaderMap,
    body: LambdaBody,
) -> Value {
    let is_base64_encoded = matches!(body, LambdaBody::Binary(_));
    let status_code = i64::from(status.as_u16());
    let value = match origin {
        HttpOrigin::RestApi => {
            let mut r = ApiGatewayProxyResponse::default();
            r.status_code = status_code;
            r.multi_value_headers = headers;
            r.body = Some(body);
            r.is_base64_encoded = is_base64_encoded;
            serde_json::to_value(r).map(|mut v| {
                // Only the multi-value map: API Gateway would merge and duplicate two.
                if let Some(obj) = v.as_object_mut() {
                    obj.remove("headers");
                }
                v
            })
        }
        HttpOrigin::HttpApi | HttpOrigin::FunctionUrl => {
            serde_json::to_value(V2Response::new(status, &headers, body))
        }
        HttpOrigin::Alb => {
            let mut r = AlbTargetGroupResponse::default();
            r.status_code = status_code;
            r.status_description = Some(match status.canonical_reason() {
                Some(reason) => format!("{} {reason}", status.as_u16()),
                None => status.as_u16().to_string(),
            });
            let mut single = joined_headers(&headers);
            if let Some(cookie) = headers.get(SET_COOKIE) {
                single.insert(SET_COOKIE, cookie.clone());
            }
            r.headers = single;
            r.multi_value_headers = headers;
            r.body = Some(body);
            r.is_base64_encoded = is_base64_encoded;
            serde_json::to_value(r)
        }
    };
    value.expect("Lambda HTTP responses serialise (headers are UTF-8)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    /// A 2.0 response written from the response's own headers says what it said when
    /// the headers were made UTF-8 and joined into a map first.
    #[test]
    fn v2_headers_and_cookies_as_from_utf8_joined_maps() {
        let mut h = HeaderMap::new();
        h.append("content-type", HeaderValue::from_static("text/plain"));
        h.append("vary", HeaderValue::from_static("accept"));
        h.append("vary", HeaderValue::from_static("origin"));
        h.append("x-tab", HeaderValue::from_static("a\tb"));
        h.append("x-utf8", HeaderValue::from_bytes("é".as_bytes()).unwrap());
        h.append("x-bytes", HeaderValue::from_bytes(b"a\xffb").unwrap());
        h.append("x-mixed", HeaderValue::from_bytes("é".as_bytes()).unwrap());
        h.append("x-mixed", HeaderValue::from_static("ok"));
        h.append("x-none", HeaderValue::from_bytes("é".as_bytes()).unwrap());
        h.append("x-none", HeaderValue::from_bytes(b"\xff").unwrap());
        h.append("set-cookie", HeaderValue::from_static("a=1"));
        h.append(
            "set-cookie",
            HeaderValue::from_bytes("b=é".as_bytes()).unwrap(),
        );
        h.append("set-cookie", HeaderValue::from_static("c=3"));
        let written =
            serde_json::to_value(V2Response::new(StatusCode::OK, &h, LambdaBody::Empty)).unwrap();
        let utf8 = utf8_headers(h.clone());
        let joined = joined_headers(&utf8);
        let headers: serde_json::Map<String, Value> = joined
            .iter()
            .filter_map(|(n, v)| Some((n.to_string(), Value::from(v.to_str().ok()?))))
            .collect();
        let cookies: Vec<&str> = utf8
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        assert_eq!(written["headers"], Value::Object(headers));
        assert_eq!(written["cookies"], serde_json::json!(cookies));
        assert_eq!(written["headers"]["vary"], "accept, origin");
        assert_eq!(written["cookies"], serde_json::json!(["a=1", "c=3"]));
    }

    #[test]
    fn hosts_lambda_http_could_not_parse_are_refused() {
        for good in [
            "example.com",
            "api_1.example.com",
            "localhost:3000",
            "10.0.0.1",
            "[::1]:8080",
        ] {
            assert!(check_hosts([good]).is_ok(), "{good}");
        }
        for bad in ["", "bad host", "a/b", "é.example", "[::1"] {
            assert!(check_hosts([bad]).is_err(), "{bad}");
        }
        assert!(
            check_hosts(["example.com", "x y"]).is_err(),
            "every host is looked at"
        );
    }

    #[test]
    fn text_or_binary() {
        assert!(is_text(&headers(&[])));
        assert!(is_text(&headers(&[("content-type", "application/json")])));
        assert!(is_text(&headers(&[(
            "content-type",
            "application/problem+json; charset=utf-8"
        )])));
        assert!(!is_text(&headers(&[("content-type", "image/png")])));
        assert!(!is_text(&headers(&[
            ("content-type", "text/plain"),
            ("content-encoding", "gzip")
        ])));
        assert!(matches!(
            encode_body(
                &headers(&[("content-type", "text/plain")]),
                vec![0xff, 0xfe]
            ),
            LambdaBody::Binary(_)
        ));
        assert!(matches!(
            encode_body(&headers(&[]), vec![0xff]),
            LambdaBody::Binary(_)
        ));
    }

    #[test]
    fn a_request_that_does_not_fit_its_type_says_which_without_serde_detail() {
        let e = parse_request(
            Some(HttpOrigin::RestApi),
            serde_json::json!({"httpMethod": "GET", "headers": 5}),
        )
        .unwrap_err();
        assert!(
            e.0.contains("API Gateway REST") && !e.0.contains("expected"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn response_shapes() {
        let response = || {
            Response::builder()
                .status(201)
                .header("content-type", "application/json")
                .header("set-cookie", "a=1")
                .header("set-cookie", "b=2")
                .header("vary", "accept")
                .header("vary", "origin")
                .body(Body::from("{}"))
                .unwrap()
        };
        let v1 = encode_response(HttpOrigin::RestApi, response()).await;
        assert!(v1.get("headers").is_none(), "{v1}");
        assert_eq!(
            v1["multiValueHeaders"]["set-cookie"],
            serde_json::json!(["a=1", "b=2"])
        );
        assert_eq!(v1["statusCode"], 201);
        let v2 = encode_response(HttpOrigin::HttpApi, response()).await;
        assert_eq!(v2["cookies"], serde_json::json!(["a=1", "b=2"]));
        assert!(v2["headers"].get("set-cookie").is_none(), "{v2}");
        assert_eq!(v2["headers"]["vary"], "accept, origin");
        assert!(v2.get("multiValueHeaders").is_none(), "{v2}");
        let alb = encode_response(HttpOrigin::Alb, response()).await;
        assert_eq!(alb["statusDescription"], "201 Created");
        assert_eq!(
            alb["multiValueHeaders"]["vary"],
            serde_json::json!(["accept", "origin"])
        );
        assert_eq!(alb["headers"]["vary"], "accept, origin");
        let unnamed = Response::builder().status(299).body(Body::empty()).unwrap();
        let alb = encode_response(HttpOrigin::Alb, unnamed).await;
        assert_eq!(
            alb["statusDescription"], "299",
            "no reason phrase, no trailing space"
        );
    }
}
