//! `--event FILE`: a native payload of the user's own, as JSON. Which forms a target
//! takes is in [`super::LONG_ABOUT`]; this reads them into a [`Native`].

use nube::manifest::{FunctionManifest, TriggerManifest};
use serde_json::{Map, Value};

use super::{Target, azure, local};
use crate::samples::{HttpRequest, Native};

/// Reads `text` (an `--event` file) as the payload `target` sends `function`.
pub fn parse(target: Target, function: &FunctionManifest, text: &str) -> Result<Native, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("the event file is not JSON: {e}"))?;
    let is_http = matches!(function.trigger, TriggerManifest::Http { .. });
    match target {
        Target::Aws => Ok(Native::Lambda(value)),
        Target::Azure if value.get("Data").is_some() => {
            let name = azure::first_azure_function(function)?;
            Ok(Native::Http(azure::invocation_request(&name, &value)))
        }
        Target::Azure if is_http => {
            let mut request = http_request(&value)?;
            request.path_and_query = azure::forwarded_path(&request.path_and_query);
            Ok(Native::Http(request))
        }
        Target::Azure => Err(format!(
            "{} is an event function: on azure its event is an invocation {{\"Data\": ..., \"Metadata\": ...}}",
            function.name
        )),
        Target::Gcp if value.get("specversion").is_some() => {
            Ok(Native::Http(structured_cloud_event(&value)))
        }
        Target::Gcp => http_request(&value).map_err(|e| {
            format!("{e}; on gcp an event is an HTTP request or a CloudEvent in structured mode (with \"specversion\")")
        }).map(Native::Http),
        Target::Local if is_http => http_request(&value).map(Native::Http),
        Target::Local => Ok(local::admin_request(function, &value)),
    }
}

/// A CloudEvent in structured mode, POSTed to `/` as `application/cloudevents+json`.
pub fn structured_cloud_event(event: &Value) -> HttpRequest {
    HttpRequest {
        method: "POST".into(),
        path_and_query: "/".into(),
        headers: vec![(
            "content-type".into(),
            "application/cloudevents+json; charset=utf-8".into(),
        )],
        body: serde_json::to_vec(event).unwrap_or_default(),
    }
}

/// An HTTP request from its JSON form: `{"method", "path", "headers", "body" |
/// "bodyBase64"}`.
pub fn http_request(value: &Value) -> Result<HttpRequest, String> {
    let object = value
        .as_object()
        .ok_or("an HTTP request is a JSON object {\"method\", \"path\", \"headers\", \"body\"}")?;
    const FIELDS: [&str; 5] = ["method", "path", "headers", "body", "bodyBase64"];
    if let Some(unknown) = object.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!(
            "an HTTP request has no field {unknown:?} (it has: {})",
            FIELDS.join(", ")
        ));
    }
    let method = match object.get("method") {
        None => "GET".to_owned(),
        Some(Value::String(m)) if !m.is_empty() => m.to_ascii_uppercase(),
        Some(other) => return Err(format!("\"method\" is not a method name: {other}")),
    };
    let path = match object.get("path") {
        Some(Value::String(p)) if p.starts_with('/') => p.clone(),
        Some(other) => {
            return Err(format!(
                "\"path\" must be a string starting with /: {other}"
            ));
        }
        None => return Err("an HTTP request needs a \"path\" (\"/todos\")".into()),
    };
    let mut headers = headers(object)?;
    let has_content_type = headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
    let body = match (object.get("body"), object.get("bodyBase64")) {
        (Some(_), Some(_)) => return Err("give \"body\" or \"bodyBase64\", not both".into()),
        (None, None) | (Some(Value::Null), None) => Vec::new(),
        (Some(Value::String(text)), None) => text.clone().into_bytes(),
        (Some(json), None) => {
            if !has_content_type {
                headers.push(("content-type".into(), "application/json".into()));
            }
            serde_json::to_vec(json).unwrap_or_default()
        }
        (None, Some(Value::String(b64))) => base64_decode(b64)?,
        (None, Some(other)) => return Err(format!("\"bodyBase64\" is not a string: {other}")),
    };
    Ok(HttpRequest {
        method,
        path_and_query: path,
        headers,
        body,
    })
}

fn headers(object: &Map<String, Value>) -> Result<Vec<(String, String)>, String> {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    match object.get("headers") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(n, v)| {
                text(v)
                    .map(|v| (n.clone(), v))
                    .ok_or_else(|| format!("header {n:?} is not a string: {v}"))
            })
            .collect(),
        Some(Value::Array(pairs)) => pairs
            .iter()
            .map(|pair| match pair.as_array().map(Vec::as_slice) {
                Some([Value::String(n), v]) => text(v)
                    .map(|v| (n.clone(), v))
                    .ok_or_else(|| format!("header {n:?} is not a string: {v}")),
                _ => Err(format!("a header is a [name, value] pair, not {pair}")),
            })
            .collect(),
        Some(other) => Err(format!(
            "\"headers\" is an object or a list of [name, value] pairs, not {other}"
        )),
    }
}

/// Standard base64 (padding optional, whitespace ignored), for `bodyBase64`.
fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const STANDARD_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD_ANY_PADDING
        .decode(compact)
        .map_err(|e| format!("\"bodyBase64\" is not base64 ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn function(name: &str) -> FunctionManifest {
        delivery_app::app()
            .manifest()
            .functions
            .into_iter()
            .find(|f| f.name == name)
            .unwrap()
    }

    fn http(value: Value) -> Result<HttpRequest, String> {
        http_request(&value)
    }

    #[test]
    fn an_http_request_takes_defaults_and_json_bodies() {
        let r = http(json!({"path": "/todos"})).unwrap();
        assert_eq!(
            (r.method.as_str(), r.path_and_query.as_str()),
            ("GET", "/todos")
        );
        assert!(r.headers.is_empty() && r.body.is_empty());

        let r = http(json!({"method": "post", "path": "/todos?x=1", "body": {"title": "milk"}}))
            .unwrap();
        assert_eq!(r.method, "POST");
        assert_eq!(r.path_and_query, "/todos?x=1");
        assert_eq!(
            r.headers,
            [("content-type".to_owned(), "application/json".to_owned())]
        );
        assert_eq!(r.body, br#"{"title":"milk"}"#);

        let r = http(json!({"path": "/u", "headers": [["content-type", "text/plain"], ["x-n", 3]], "body": "hi"}))
            .unwrap();
        assert_eq!(r.headers[1], ("x-n".to_owned(), "3".to_owned()));
        assert_eq!(r.body, b"hi");

        let r = http(json!({"method": "PUT", "path": "/uploads/a.png", "headers": {"content-type": "image/png"}, "bodyBase64": "iVBORw0KGgo="}))
            .unwrap();
        assert_eq!(r.body, [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a]);
    }

    #[test]
    fn a_bad_http_request_says_what_is_wrong() {
        assert_eq!(
            http(json!({"method": "GET"})).unwrap_err(),
            "an HTTP request needs a \"path\" (\"/todos\")"
        );
        assert_eq!(
            http(json!({"path": "todos"})).unwrap_err(),
            "\"path\" must be a string starting with /: \"todos\""
        );
        assert_eq!(
            http(json!({"path": "/", "url": "/x"})).unwrap_err(),
            "an HTTP request has no field \"url\" (it has: method, path, headers, body, bodyBase64)"
        );
        assert!(http(json!({"path": "/", "bodyBase64": "*"})).is_err());
        assert!(http(json!({"path": "/", "headers": [["a"]]})).is_err());
    }

    #[test]
    fn each_target_reads_its_own_forms() {
        let todos = function("todos");
        let timer = function("cleanup-expired-orders");
        let lambda = json!({"version": "2.0", "rawPath": "/todos"});
        assert_eq!(
            parse(Target::Aws, &todos, &lambda.to_string()).unwrap(),
            Native::Lambda(lambda)
        );
        let Native::Http(r) = parse(
            Target::Gcp,
            &timer,
            r#"{"specversion": "1.0", "type": "t"}"#,
        )
        .unwrap() else {
            panic!("an HTTP request")
        };
        assert_eq!(r.path_and_query, "/");
        assert!(r.headers[0].1.starts_with("application/cloudevents+json"));

        let Native::Http(r) =
            parse(Target::Azure, &timer, r#"{"Data": {}, "Metadata": {}}"#).unwrap()
        else {
            panic!("an HTTP request")
        };
        assert_eq!(
            (r.method.as_str(), r.path_and_query.as_str()),
            ("POST", "/cleanup-expired-orders")
        );
        assert!(
            parse(Target::Azure, &timer, r#"{"path": "/x"}"#)
                .unwrap_err()
                .contains("invocation")
        );

        let Native::Http(r) = parse(Target::Local, &timer, "{}").unwrap() else {
            panic!("an HTTP request")
        };
        assert_eq!(r.path_and_query, "/_nube/functions/cleanup-expired-orders");
        assert!(
            parse(Target::Gcp, &todos, "not json")
                .unwrap_err()
                .starts_with("the event file is not JSON")
        );
    }
}
