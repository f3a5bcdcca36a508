//! Reading the CloudEvent a request carries, in any of the three ways Google sends
//! one:
//!
//! | mode | how it is told apart | read by |
//! |---|---|---|
//! | binary | a `ce-specversion` header (attributes in `ce-*` headers, `Content-Type` = `datacontenttype`, body = data) | `cloudevents-sdk` ([`cloudevents::binding::http::to_event`]) |
//! | structured | `Content-Type: application/cloudevents+json` (body = the whole envelope) | `cloudevents-sdk` |
//! | legacy background event | a JSON body with `context.eventType` (nested) or `eventType` + `eventId` (flat) | [`crate::legacy`], converted as the Functions Frameworks convert it |
//!
//! `cloudevents-sdk`'s axum extractor answers its rejections itself (a plain-text
//! body); nube wants its own 400 with a reason, so the request is read here with the
//! SDK's protocol-neutral HTTP binding (feature `http-binding`, http 1.x headers)
//! instead. Anything else is not a CloudEvent: [`read`] returns `None` and the
//! caller decides (a timer function takes it as Pub/Sub's push envelope or a Cloud
//! Scheduler HTTP-target POST; the others refuse it).

use base64::Engine;
use cloudevents::{AttributesReader, Data, Event};
use http::HeaderMap;
use serde_json::{Map, Value, json};

use crate::error::DecodeError;

/// How a CloudEvent arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Binary content mode: attributes in `ce-*` headers.
    Binary,
    /// Structured content mode: `application/cloudevents+json`.
    Structured,
    /// A legacy background-event envelope, converted to a CloudEvent.
    Legacy,
}

impl Mode {
    /// A short name for logs (`binary`, `structured`, `legacy`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Binary => "binary",
            Self::Structured => "structured",
            Self::Legacy => "legacy",
        }
    }
}

/// A CloudEvent read from a request.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The event (legacy envelopes converted).
    pub event: Event,
    /// How it arrived.
    pub mode: Mode,
}

/// The `Content-Type` of structured-mode CloudEvents.
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json";

/// The `Content-Type` of CloudEvent batches (not taken: Google does not send them).
pub const BATCH_CONTENT_TYPE: &str = "application/cloudevents-batch+json";

/// A structured-mode event that cloudevents-sdk refused only because its
/// `datacontenttype` is not in lower case (`Application/JSON`: media types ignore
/// case, the SDK's comparison does not), read again with it lowered.
fn structured_with_lowercase_data_type(body: &[u8]) -> Option<cloudevents::Event> {
    let mut event: Map<String, Value> = serde_json::from_slice(body).ok()?;
    let lowered = match event.get("datacontenttype")? {
        Value::String(ct) if ct.chars().any(|c| c.is_ascii_uppercase()) => ct.to_ascii_lowercase(),
        _ => return None,
    };
    event.insert("datacontenttype".into(), Value::String(lowered));
    serde_json::from_value(Value::Object(event)).ok()
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

/// Whether `content_type` (a media type, parameters allowed) is JSON.
pub fn is_json_media_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence == "text/json" || essence.ends_with("+json")
}

/// The CloudEvent in a request, if it carries one.
///
/// `Ok(None)`: no `ce-*` attributes, not `application/cloudevents+json`, and not a
/// legacy envelope. `Err`: the request says it is a CloudEvent (or a legacy event)
/// and is not a valid one; the message says why.
pub fn read(headers: &HeaderMap, body: &[u8]) -> Result<Option<Incoming>, DecodeError> {
    let ct = content_type(headers)
        .unwrap_or_default()
        .to_ascii_lowercase();
    if ct.starts_with(BATCH_CONTENT_TYPE) {
        return Err(DecodeError::new(
            "CloudEvent batches (application/cloudevents-batch+json) are not taken: send one event per request",
        ));
    }
    if ct.starts_with(STRUCTURED_CONTENT_TYPE) {
        // The whole event is the JSON body (what cloudevents-sdk reads in structured
        // mode, where it would also compare the media type case-sensitively).
        let event = serde_json::from_slice::<cloudevents::Event>(body)
            .or_else(|e| structured_with_lowercase_data_type(body).ok_or(e))
            .map_err(|e| {
                DecodeError::new(format!(
                    "the body is not a valid structured-mode CloudEvent (application/cloudevents+json): {e}"
                ))
            })?;
        return Ok(Some(Incoming {
            event,
            mode: Mode::Structured,
        }));
    }
    if headers.contains_key("ce-specversion") {
        let event = cloudevents::binding::http::to_event(headers, body.to_vec()).map_err(|e| {
            DecodeError::new(format!(
                "the request is not a valid binary-mode CloudEvent (it needs the headers ce-specversion, ce-id, ce-source and ce-type): {e}"
            ))
        })?;
        return Ok(Some(Incoming {
            event,
            mode: Mode::Binary,
        }));
    }
    let partial: Vec<&str> = ["ce-id", "ce-source", "ce-type"]
        .into_iter()
        .filter(|h| headers.contains_key(*h))
        .collect();
    if !partial.is_empty() {
        return Err(DecodeError::new(format!(
            "the request has CloudEvent headers ({}) but no ce-specversion: a binary-mode CloudEvent needs ce-specversion, ce-id, ce-source and ce-type",
            partial.join(", ")
        )));
    }
    if (ct.is_empty() || is_json_media_type(&ct))
        && let Ok(Value::Object(envelope)) = serde_json::from_slice::<Value>(body)
        && crate::legacy::is_background_event(&envelope)
    {
        let event = crate::legacy::to_cloud_event(&envelope)?;
        return Ok(Some(Incoming {
            event,
            mode: Mode::Legacy,
        }));
    }
    Ok(None)
}

/// The event's data as JSON: JSON data as it is; text or bytes parsed as JSON when
/// the data content type is JSON or absent.
pub fn data_json(event: &Event) -> Result<Value, DecodeError> {
    let ct = event.datacontenttype().unwrap_or("application/json");
    match event.data() {
        None => Err(DecodeError::new(format!(
            "the {} event {:?} has no data",
            event.ty(),
            event.id()
        ))),
        Some(Data::Json(v)) => Ok(v.clone()),
        Some(Data::String(text)) if is_json_media_type(ct) => serde_json::from_str(text)
            .map_err(|e| DecodeError::new(format!("the event data is not valid JSON: {e}"))),
        Some(Data::Binary(bytes)) if is_json_media_type(ct) => serde_json::from_slice(bytes)
            .map_err(|e| DecodeError::new(format!("the event data is not valid JSON: {e}"))),
        Some(_) => Err(DecodeError::new(format!(
            "the event data is {ct}, and this event's data must be JSON (application/json)"
        ))),
    }
}

/// A string extension attribute (`database`, `document`...), when set.
pub fn extension(event: &Event, name: &str) -> Option<String> {
    event.extension(name).map(|v| v.to_string())
}

/// A string attribute's value as the sender meant it. In binary mode it came in a
/// `ce-*` header, where the CloudEvents HTTP binding percent-encodes what a header
/// cannot carry (a space, `"`, `%`, anything outside ASCII): decoded here (kept as
/// it is when the decoded bytes are not UTF-8). In the other modes, as it is.
pub fn attribute_text(value: &str, mode: Mode) -> String {
    match mode {
        Mode::Binary => percent_encoding::percent_decode_str(value)
            .decode_utf8()
            .map_or_else(|_| value.to_owned(), |v| v.into_owned()),
        _ => value.to_owned(),
    }
}

/// The event as the provider payload nube keeps ([`nube::RawEvent`]): its
/// attributes and extensions as JSON fields, and `data` as JSON when it is JSON, else
/// `{"contentType": ..., "base64": ...}`. `parsed` is the data as JSON when the
/// decoder already parsed it (so that it is not parsed again).
pub fn raw_payload(event: &Event, mode: Mode, parsed: Option<Value>) -> Value {
    let mut out = Map::new();
    for (name, value) in event.iter() {
        out.insert(name.to_owned(), Value::from(value.to_string()));
    }
    let data = match (parsed, event.data()) {
        (Some(parsed), _) => parsed,
        (None, None) => Value::Null,
        (None, Some(Data::Json(v))) => v.clone(),
        (None, Some(other)) => match data_json(event) {
            Ok(v) => v,
            Err(_) => {
                let bytes = match other {
                    Data::Binary(b) => b.clone(),
                    Data::String(s) => s.clone().into_bytes(),
                    Data::Json(_) => unreachable!("JSON data is matched above"),
                };
                json!({
                    "contentType": event.datacontenttype().unwrap_or("application/octet-stream"),
                    "base64": base64::engine::general_purpose::STANDARD.encode(bytes),
                })
            }
        },
    };
    out.insert("data".into(), data);
    out.insert("nubeMode".into(), Value::from(mode.as_str()));
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn binary_structured_and_nothing() {
        let b = read(
            &headers(&[
                ("ce-specversion", "1.0"),
                ("ce-id", "1"),
                ("ce-source", "//storage.googleapis.com/projects/_/buckets/b"),
                ("ce-type", "google.cloud.storage.object.v1.finalized"),
                ("content-type", "application/json"),
            ]),
            br#"{"name":"a"}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(b.mode, Mode::Binary);
        assert_eq!(data_json(&b.event).unwrap()["name"], "a");

        let s = read(
            &headers(&[("content-type", "application/cloudevents+json")]),
            br#"{"specversion":"1.0","id":"2","source":"//x","type":"t","datacontenttype":"application/json","data":{"k":1}}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.mode, Mode::Structured);
        assert_eq!(data_json(&s.event).unwrap()["k"], 1);
        let upper = read(
            &headers(&[(
                "content-type",
                "Application/CloudEvents+JSON; charset=UTF-8",
            )]),
            br#"{"specversion":"1.0","id":"3","source":"//x","type":"t","data":{"k":2}}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(upper.mode, Mode::Structured, "media types ignore case");
        assert_eq!(data_json(&upper.event).unwrap()["k"], 2);
        let upper_data = read(
            &headers(&[("content-type", "application/cloudevents+json")]),
            br#"{"specversion":"1.0","id":"4","source":"//x","type":"t","datacontenttype":"Application/JSON","data":{"k":3}}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            data_json(&upper_data.event).unwrap()["k"],
            3,
            "the data's media type too"
        );

        assert!(
            read(&headers(&[("content-type", "text/plain")]), b"hi")
                .unwrap()
                .is_none()
        );
        assert!(read(&HeaderMap::new(), b"").unwrap().is_none());
    }

    #[test]
    fn binary_mode_attributes_are_percent_decoded() {
        let b = read(
            &headers(&[
                ("ce-specversion", "1.0"),
                ("ce-id", "1"),
                ("ce-source", "//storage.googleapis.com/projects/_/buckets/b"),
                ("ce-type", "google.cloud.storage.object.v1.finalized"),
                ("ce-subject", "objects/a%20b/50%25%E2%82%AC.txt"),
                ("content-type", "application/json"),
            ]),
            br#"{"bucket":"b","size":"1"}"#,
        )
        .unwrap()
        .unwrap();
        let names = crate::names::ResourceNames::new().with_bucket("uploads", "b");
        let blob = crate::storage::decode(&b.event, b.mode, &names).unwrap();
        assert_eq!(blob.key, "a b/50%€.txt");
        assert_eq!(attribute_text("50%25", Mode::Structured), "50%25");
        assert_eq!(
            attribute_text("%FF", Mode::Binary),
            "%FF",
            "not UTF-8: as sent"
        );
    }

    #[test]
    fn broken_cloud_events_say_why() {
        let e = read(&headers(&[("ce-specversion", "1.0"), ("ce-id", "1")]), b"").unwrap_err();
        assert!(e.0.contains("binary-mode"), "{e}");
        let e = read(&headers(&[("ce-type", "t")]), b"").unwrap_err();
        assert!(e.0.contains("no ce-specversion"), "{e}");
        let e = read(
            &headers(&[("content-type", "application/cloudevents+json")]),
            b"{not json",
        )
        .unwrap_err();
        assert!(e.0.contains("structured-mode"), "{e}");
    }
}
