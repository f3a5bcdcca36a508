//! HTTP functions, in both of the host's modes.
//!
//! **Forwarded** (`customHandler.enableForwardingHttpRequest` or the newer
//! `enableProxyingHttpRequest` in host.json; the host forwards only functions whose
//! bindings are an `httpTrigger` and an `http` output): the client's request arrives as
//! it was sent, on its own path (`/api/todos/7`). The route prefix (host.json's
//! `extensions.http.routePrefix`, `api` unless set: [`route_prefix`]) is stripped and the
//! request is served by the app's Router; the response goes back as it is.
//!
//! **`Data.req`** (every other case): the request is inside the invocation payload,
//! `Data.req = {Url, Method, Query, Headers, Params, Body}` ([`request_from_data`]).
//! `Body` is text, or base64 for `application/octet-stream` and `multipart/*`. The
//! response goes back as the `res` output ([`response_output`]): `{"statusCode": "201",
//! "status": "201", "headers": {...}, "body": "..."}`, every field present (some host
//! versions require all four), the status as text as the host reads it. The host
//! writes `body` as text: a body that is not UTF-8 cannot go through this mode, so it is
//! sent as base64 with `x-nube-body-encoding: base64` and a warning; apps that serve
//! binary responses should be packaged with forwarding (nube's descriptors enable it).

use axum::body::Body;
use base64::Engine;
use http::{HeaderName, HeaderValue, Request};
use serde_json::{Map, Value, json};

use crate::error::DecodeError;
use crate::payload::{decoded, field, field_str, json_value, kind_of};

/// host.json's default route prefix.
pub const DEFAULT_ROUTE_PREFIX: &str = "api";

/// The header the host sets to the invocation id on every call.
pub const INVOCATION_ID_HEADER: http::HeaderName =
    http::HeaderName::from_static("x-azure-functions-invocationid");

/// The header set on a `res` output whose body is base64 (see the module docs).
pub const BODY_ENCODING_HEADER: &str = "x-nube-body-encoding";

/// The route prefix host.json sets (`extensions.http.routePrefix`), without slashes;
/// [`DEFAULT_ROUTE_PREFIX`] when it is not set.
pub fn route_prefix(host_json: &Value) -> String {
    host_json
        .pointer("/extensions/http/routePrefix")
        .and_then(Value::as_str)
        .unwrap_or(DEFAULT_ROUTE_PREFIX)
        .trim_matches('/')
        .to_owned()
}

/// The path below `prefix` (`/api/todos` → `/todos`), or `None` when `path` is not
/// under it. An empty prefix keeps every path.
pub fn strip_route_prefix(path: &str, prefix: &str) -> Option<String> {
    if prefix.is_empty() {
        return Some(if path.is_empty() {
            "/".into()
        } else {
            path.into()
        });
    }
    let rest = path.strip_prefix('/')?.strip_prefix(prefix)?;
    if rest.is_empty() {
        Some("/".into())
    } else if rest.starts_with('/') {
        Some(rest.into())
    } else {
        None
    }
}

/// Whether `value` looks like an httpTrigger's `Data.req` (an object with `Url` and
/// `Method`).
pub fn is_http_request(value: &Value) -> bool {
    let v = decoded(value);
    field(&v, "Url").is_some() && field(&v, "Method").is_some()
}

fn is_binary(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        let ct = ct.to_ascii_lowercase();
        ct.starts_with("application/octet-stream") || ct.starts_with("multipart/")
    })
}

/// The `http::Request` in `Data.req`, its path below `prefix`.
pub fn request_from_data(req: &Value, prefix: &str) -> Result<Request<Body>, DecodeError> {
    let req = decoded(req);
    if !req.is_object() {
        return Err(DecodeError::new(format!(
            "Data.req must be an object with Url and Method, not {}",
            kind_of(&req)
        )));
    }
    let url = field_str(&req, "Url").ok_or_else(|| DecodeError::new("Data.req has no Url"))?;
    let method =
        field_str(&req, "Method").ok_or_else(|| DecodeError::new("Data.req has no Method"))?;
    let method = http::Method::from_bytes(method.as_bytes()).map_err(|_| {
        DecodeError::new(format!("Data.req.Method {method:?} is not an HTTP method"))
    })?;
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path_and_query = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let path = strip_route_prefix(path, prefix).unwrap_or_else(|| path.to_owned());
    let uri = match query {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path,
    };
    let mut builder = Request::builder().method(method).uri(&uri);
    let mut content_type = None;
    if let Some(headers) = field(&req, "Headers").map(json_value) {
        let Value::Object(headers) = headers else {
            return Err(DecodeError::new("Data.req.Headers must be an object"));
        };
        for (name, values) in headers {
            let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
                continue;
            };
            let values = match values {
                Value::Array(items) => items,
                other => vec![other],
            };
            for v in values {
                let text = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                if header == http::header::CONTENT_TYPE {
                    content_type = Some(text.clone());
                }
                if let Ok(value) = HeaderValue::from_str(&text) {
                    builder = builder.header(header.clone(), value);
                }
            }
        }
    }
    let body = match field(&req, "Body") {
        None => Vec::new(),
        Some(Value::String(s)) if is_binary(content_type.as_deref()) => {
            base64::engine::general_purpose::STANDARD
                .decode(s.as_bytes())
                .unwrap_or_else(|_| s.as_bytes().to_vec())
        }
        Some(Value::String(s)) => s.as_bytes().to_vec(),
        Some(other) => other.to_string().into_bytes(),
    };
    builder
        .body(Body::from(body))
        .map_err(|e| DecodeError::new(format!("Data.req is not a valid request ({uri}): {e}")))
}

/// The `res` output for `response`: status as text, headers as a map (repeated
/// headers joined with `, `; only the first `Set-Cookie`), body as text.
pub async fn response_output(response: axum::response::Response) -> Value {
    let (parts, body) = response.into_parts();
    let (parts, bytes) = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => (parts, bytes),
        // Its status and part of its body were the handler's; what the client gets
        // is a plain 500, and the reason goes to the log only (the error logs itself
        // as it becomes the response).
        Err(e) => {
            let error = nube::Error::internal(format!("the response body failed: {e}"));
            let (parts, body) =
                nube::axum::response::IntoResponse::into_response(error).into_parts();
            (
                parts,
                axum::body::to_bytes(body, usize::MAX)
                    .await
                    .unwrap_or_default(),
            )
        }
    };
    let mut headers = Map::new();
    for name in parts.headers.keys() {
        let values: Vec<&str> = parts
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.is_empty() {
            continue;
        }
        let joined = if name == http::header::SET_COOKIE {
            if values.len() > 1 {
                tracing::warn!(
                    "the response sets {} cookies, and Data.req mode passes only the first; package the function with forwarding to send all",
                    values.len()
                );
            }
            values[0].to_owned()
        } else {
            values.join(", ")
        };
        headers.insert(name.as_str().to_owned(), Value::String(joined));
    }
    let body = match String::from_utf8(bytes.to_vec()) {
        Ok(text) => text,
        Err(_) => {
            tracing::warn!(
                "the response body is not UTF-8 text, which Data.req mode cannot carry; sent as base64 with {BODY_ENCODING_HEADER}: base64 (package the function with forwarding to send bytes)"
            );
            headers.insert(BODY_ENCODING_HEADER.to_owned(), json!("base64"));
            base64::engine::general_purpose::STANDARD.encode(&bytes)
        }
    };
    let status = parts.status.as_u16().to_string();
    json!({
        "statusCode": status,
        "status": status,
        "headers": headers,
        "body": body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_stripped() {
        assert_eq!(route_prefix(&json!({})), "api");
        assert_eq!(
            route_prefix(&json!({"extensions": {"http": {"routePrefix": "/v1/"}}})),
            "v1"
        );
        assert_eq!(
            strip_route_prefix("/api/todos/1", "api").unwrap(),
            "/todos/1"
        );
        assert_eq!(strip_route_prefix("/api", "api").unwrap(), "/");
        assert_eq!(strip_route_prefix("/apix/todos", "api"), None);
        assert_eq!(strip_route_prefix("/todos", "").unwrap(), "/todos");
    }

    #[test]
    fn data_req_becomes_a_request() {
        let req = json!({
            "Url": "http://localhost:7071/api/order?x=1",
            "Method": "POST",
            "Query": "{}",
            "Headers": {"Content-Type": ["application/octet-stream"], "X-Tag": ["a", "b"]},
            "Params": {},
            "Body": "AAEC"
        });
        let r = request_from_data(&req, "api").unwrap();
        assert_eq!(r.uri(), "/order?x=1");
        assert_eq!(r.method(), http::Method::POST);
        assert_eq!(r.headers().get_all("x-tag").iter().count(), 2);
        assert!(request_from_data(&json!("nope"), "api").is_err());
        assert!(request_from_data(&json!({"Url": "http://h/api/x"}), "api").is_err());
    }
}
