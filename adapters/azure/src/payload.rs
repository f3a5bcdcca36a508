//! The custom-handler invocation protocol: the host POSTs an [`InvocationRequest`]
//! (`{"Data": {...}, "Metadata": {...}}`) to `/{FunctionName}` and reads an
//! [`InvocationResponse`] (`{"Outputs": {...}, "Logs": [...], "ReturnValue": ...}`)
//! when the answer is 2xx; any other status fails the invocation (and the host's retry
//! policy applies).
//!
//! `Data` is keyed by binding name (the trigger's and inputs'), `Metadata` holds the
//! trigger's binding data (without keys ending in `Trigger`), `sys` and, under a retry
//! policy, `RetryContext`. The host serialises values that are not JSON objects as
//! JSON-encoded strings and bytes as base64: [`json_value`] and [`bytes_value`] accept
//! every form.

use std::borrow::Cow;

use base64::Engine;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::DecodeError;

/// One invocation as the host sends it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct InvocationRequest {
    /// Binding name → value (trigger and input bindings).
    #[serde(rename = "Data", default)]
    pub data: Map<String, Value>,
    /// Trigger metadata, `sys`, `RetryContext`.
    #[serde(rename = "Metadata", default)]
    pub metadata: Map<String, Value>,
}

impl InvocationRequest {
    /// Parses a request body; the error says what is wrong with it.
    pub fn parse(body: &[u8]) -> Result<Self, DecodeError> {
        Self::parse_parts(body).map(|(request, _)| request)
    }

    /// Parses a request body once, returning the request and the whole payload as
    /// JSON (what an event's [`nube::RawEvent`] carries).
    pub fn parse_with_payload(body: &[u8]) -> Result<(Self, Value), DecodeError> {
        let (request, remainder) = Self::parse_parts(body)?;
        let payload = remainder.payload(request.clone());
        Ok((request, payload))
    }

    /// Parses a request body without copying any of it: the request, and the
    /// [`Remainder`] that gives the whole payload back when the request is done with.
    pub fn parse_parts(body: &[u8]) -> Result<(Self, Remainder), DecodeError> {
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            DecodeError::new(format!("the invocation request is not valid JSON: {e}"))
        })?;
        let Value::Object(mut object) = value else {
            return Err(DecodeError::new(format!(
                "the invocation request must be a JSON object with \"Data\" and \"Metadata\", not {}",
                kind_of(&value)
            )));
        };
        let mut field = |name: &str| -> Result<(Map<String, Value>, Sent), DecodeError> {
            match object.remove(name) {
                None => Ok((Map::new(), Sent::Absent)),
                Some(Value::Object(m)) => Ok((m, Sent::Object)),
                Some(Value::Null) => Ok((Map::new(), Sent::Other(Value::Null))),
                Some(v) => match json_value(&v) {
                    Value::Object(m) => Ok((m, Sent::Other(v))),
                    other => Err(DecodeError::new(format!(
                        "the invocation request's \"{name}\" must be an object, not {}",
                        kind_of(&other)
                    ))),
                },
            }
        };
        let (data, data_sent) = field("Data")?;
        let (metadata, metadata_sent) = field("Metadata")?;
        if data.is_empty() && metadata.is_empty() {
            return Err(DecodeError::new(
                "the invocation request has no \"Data\" and no \"Metadata\": this is not a custom-handler invocation payload",
            ));
        }
        let remainder = Remainder {
            rest: object,
            data: data_sent,
            metadata: metadata_sent,
        };
        Ok((Self { data, metadata }, remainder))
    }

    /// The value of the `Data` binding `name` (case-insensitive), or of the only
    /// `Data` entry when no binding has that name.
    pub fn binding(&self, name: &str) -> Option<(&str, &Value)> {
        self.data
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .or_else(|| {
                (self.data.len() == 1)
                    .then(|| self.data.iter().next())
                    .flatten()
            })
            .map(|(k, v)| (k.as_str(), v))
    }

    /// The metadata entry `name` (case-insensitive), decoded as [`json_value`] does
    /// (borrowed unless a string had to be decoded).
    pub fn meta(&self, name: &str) -> Option<Cow<'_, Value>> {
        self.metadata
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| decoded(v))
            .filter(|v| !v.is_null())
    }

    /// `Metadata.RetryContext`, when the host sent one.
    pub fn retry_context(&self) -> Option<RetryContext> {
        let value = self.meta("RetryContext")?;
        Some(RetryContext {
            retry_count: field_u64(&value, "RetryCount").unwrap_or(0),
            max_retry_count: field_u64(&value, "MaxRetryCount"),
        })
    }

    /// The delivery attempt: `RetryContext.RetryCount + 1`, or 1.
    pub fn attempt(&self) -> u32 {
        self.retry_context().map_or(1, |r| {
            u32::try_from(r.retry_count.saturating_add(1)).unwrap_or(u32::MAX)
        })
    }
}

/// `Metadata.RetryContext`: how many times the host has retried this invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryContext {
    /// Retries so far (0 on the first attempt).
    pub retry_count: u64,
    /// The policy's maximum, when given.
    pub max_retry_count: Option<u64>,
}

/// What the handler answers.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct InvocationResponse {
    /// Output binding name → value.
    #[serde(rename = "Outputs")]
    pub outputs: Map<String, Value>,
    /// Lines for the invocation log.
    #[serde(rename = "Logs")]
    pub logs: Vec<String>,
    /// The `$return` binding's value.
    #[serde(rename = "ReturnValue")]
    pub return_value: Value,
}

/// What [`InvocationRequest::parse_parts`] leaves of a payload: its other members, and
/// how `Data` and `Metadata` came (objects, or text the request decoded).
#[derive(Debug)]
pub struct Remainder {
    rest: Map<String, Value>,
    data: Sent,
    metadata: Sent,
}

#[derive(Debug)]
enum Sent {
    Absent,
    Object,
    Other(Value),
}

impl Remainder {
    /// The whole payload, as the host sent it, from the request it was parsed into.
    pub fn payload(self, request: InvocationRequest) -> Value {
        let mut object = self.rest;
        for (name, sent, map) in [
            ("Data", self.data, request.data),
            ("Metadata", self.metadata, request.metadata),
        ] {
            match sent {
                Sent::Absent => {}
                Sent::Object => {
                    object.insert(name.to_owned(), Value::Object(map));
                }
                Sent::Other(value) => {
                    object.insert(name.to_owned(), value);
                }
            }
        }
        Value::Object(object)
    }
}

/// A value as the host sends it: an object or array as it is, a string that holds
/// JSON decoded, any other string kept as a string.
pub fn json_value(value: &Value) -> Value {
    decoded(value).into_owned()
}

/// [`json_value`] without a copy: borrowed unless a string had to be decoded.
pub fn decoded(value: &Value) -> Cow<'_, Value> {
    match value {
        Value::String(s) => {
            let t = s.trim_start();
            if t.starts_with('{') || t.starts_with('[') || t.starts_with('"') {
                serde_json::from_str(s).map_or(Cow::Borrowed(value), Cow::Owned)
            } else {
                Cow::Borrowed(value)
            }
        }
        other => Cow::Borrowed(other),
    }
}

/// Bytes as the host sends them: base64 text (the default for `byte[]`), an array of
/// numbers (`dataType: binary`), or text taken as UTF-8 when it is not base64.
pub fn bytes_value(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::String(s) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(s.as_bytes())
                .unwrap_or_else(|_| s.as_bytes().to_vec()),
        ),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_u64().and_then(|n| u8::try_from(n).ok()))
            .collect(),
        Value::Null => None,
        other => Some(other.to_string().into_bytes()),
    }
}

/// A field of an object, case-insensitive.
pub fn field<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    value
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .filter(|v| !v.is_null())
}

/// A string field (case-insensitive).
pub fn field_str<'a>(value: &'a Value, name: &str) -> Option<&'a str> {
    field(value, name).and_then(Value::as_str)
}

/// An unsigned field given as a number or as its text.
pub fn field_u64(value: &Value, name: &str) -> Option<u64> {
    match field(value, name)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A boolean field given as a boolean or as its text.
pub fn field_bool(value: &Value, name: &str) -> Option<bool> {
    match field(value, name)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// "an object", "a string"...: for messages.
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_remainder_gives_the_payload_back_as_sent() {
        for payload in [
            json!({"Data": {"timer": "{\"IsPastDue\":false}"}, "Metadata": {"sys": {"MethodName": "tick"}}}),
            json!({"Data": "{\"req\":{\"Url\":\"http://x\"}}", "Metadata": null}),
            json!({"Data": {"b": 1}, "Other": [1, 2]}),
        ] {
            let body = serde_json::to_vec(&payload).unwrap();
            let (request, remainder) = InvocationRequest::parse_parts(&body).unwrap();
            assert!(!request.data.is_empty());
            assert_eq!(remainder.payload(request), payload);
            let (_, whole) = InvocationRequest::parse_with_payload(&body).unwrap();
            assert_eq!(whole, payload);
        }
    }

    #[test]
    fn values_arrive_as_objects_or_encoded_strings() {
        assert_eq!(json_value(&json!("{\"a\":1}")), json!({"a": 1}));
        assert_eq!(json_value(&json!({"a": 1})), json!({"a": 1}));
        assert_eq!(json_value(&json!("[1,2]")), json!([1, 2]));
        assert_eq!(json_value(&json!("plain")), json!("plain"));
        assert_eq!(json_value(&json!("{ not json")), json!("{ not json"));
        assert_eq!(bytes_value(&json!("aGk=")).unwrap(), b"hi");
        assert_eq!(bytes_value(&json!([104, 105])).unwrap(), b"hi");
        assert_eq!(bytes_value(&json!("not base64!")).unwrap(), b"not base64!");
    }

    #[test]
    fn requests_parse_with_retry_context() {
        let r = InvocationRequest::parse(
            br#"{"Data":{"t":"{}"},"Metadata":{"RetryContext":"{\"RetryCount\":2,\"MaxRetryCount\":4}"}}"#,
        )
        .unwrap();
        assert_eq!(r.attempt(), 3);
        assert_eq!(r.retry_context().unwrap().max_retry_count, Some(4));
        assert!(InvocationRequest::parse(b"{").is_err());
        assert!(InvocationRequest::parse(b"[]").is_err());
        assert!(InvocationRequest::parse(b"{}").is_err());
        let e = InvocationRequest::parse(br#"{"Data": 3}"#).unwrap_err();
        assert!(e.0.contains("\"Data\" must be an object"), "{e}");
    }
}
