//! Blob-created functions: `google.cloud.storage.object.v1.finalized` (data:
//! `StorageObjectData`, JSON) to [`BlobCreated`].
//!
//! | nube | from |
//! |---|---|
//! | `event_id` | the CloudEvent `id` (the same on a redelivery) |
//! | `bucket` | `data.bucket` (else the bucket in `source`), mapped to the app's logical bucket ([`crate::names`]) |
//! | `key` | `data.name` as it is: Google sends it raw, not URL-encoded (else `subject` less `objects/`, percent-decoded in binary mode) |
//! | `size` | `data.size`: int64 as proto3 JSON writes it (a string), or a number |
//! | `content_type`, `etag` | `data.contentType`; `data.md5Hash` as hex (the XML API's `ETag`, what `Bucket::head` reports; none for composite objects) |
//! | `time` | `data.timeCreated`, else `data.updated`, else the CloudEvent `time` |

use chrono::{DateTime, Utc};
use cloudevents::{AttributesReader, Event};
use nube::{BlobCreated, Provider, RawEvent};
use serde_json::Value;

use crate::cloudevent::{Mode, attribute_text, data_json, raw_payload};
use crate::error::DecodeError;
use crate::names::ResourceNames;

/// The CloudEvent type of an object written (created or overwritten).
pub const FINALIZED: &str = "google.cloud.storage.object.v1.finalized";

/// An int64 as proto3 JSON writes it (a decimal string) or as a JSON number.
pub fn int64_field(data: &Value, name: &str) -> Result<Option<i64>, DecodeError> {
    match data.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| DecodeError::new(format!("{name} {n} is not an integer"))),
        Some(Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|e| DecodeError::new(format!("{name} {s:?} is not an integer: {e}"))),
        Some(other) => Err(DecodeError::new(format!(
            "{name} is {other}, not an integer"
        ))),
    }
}

fn time_field(data: &Value, name: &str) -> Result<Option<DateTime<Utc>>, DecodeError> {
    match data.get(name).and_then(Value::as_str) {
        None => Ok(None),
        Some(t) => DateTime::parse_from_rfc3339(t)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| DecodeError::new(format!("{name} {t:?} is not an RFC 3339 time: {e}"))),
    }
}

/// Decodes a storage `finalized` CloudEvent.
pub fn decode(
    event: &Event,
    mode: Mode,
    names: &ResourceNames,
) -> Result<BlobCreated, DecodeError> {
    decode_data(event, mode, names).map_err(|e| e.within("Cloud Storage event"))
}

fn decode_data(
    event: &Event,
    mode: Mode,
    names: &ResourceNames,
) -> Result<BlobCreated, DecodeError> {
    if event.ty() != FINALIZED {
        return Err(DecodeError::new(format!(
            "type {:?} is not {FINALIZED:?}",
            event.ty()
        )));
    }
    let data = data_json(event)?;
    if !data.is_object() {
        return Err(DecodeError::new(format!(
            "the data is {data}, not a StorageObjectData object"
        )));
    }
    let text = |name: &str| {
        data.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let source_bucket = event
        .source()
        .split_once("/buckets/")
        .map(|(_, b)| b.split('/').next().unwrap_or(b));
    let physical = text("bucket").or(source_bucket).ok_or_else(|| {
        DecodeError::new("no bucket: data.bucket is missing and source names none")
    })?;
    let key = text("name")
        .map(str::to_owned)
        .or_else(|| {
            event
                .subject()
                .and_then(|s| s.strip_prefix("objects/"))
                .map(|k| attribute_text(k, mode))
        })
        .ok_or_else(|| DecodeError::new("no object name: data.name and subject are missing"))?;
    let size = int64_field(&data, "size")?.unwrap_or(0);
    let size =
        u64::try_from(size).map_err(|_| DecodeError::new(format!("size {size} is negative")))?;
    let time = match time_field(&data, "timeCreated")? {
        Some(t) => t,
        None => match time_field(&data, "updated")? {
            Some(t) => t,
            None => event.time().copied().unwrap_or_else(Utc::now),
        },
    };
    let bucket = names.logical_bucket(physical).to_owned();
    let content_type = text("contentType").map(str::to_owned);
    let etag = text("md5Hash").and_then(md5_hex);
    Ok(BlobCreated {
        event_id: event.id().to_owned(),
        bucket,
        key,
        size,
        content_type,
        etag,
        time,
        content: None,
        raw: RawEvent::new(Provider::Gcp, raw_payload(event, mode, Some(data))),
    })
}

/// The object's MD5 (`md5Hash`, base64) in lower-case hex: the `ETag` Cloud Storage's
/// XML API (and so object_store, and `Bucket::head`) reports for a non-composite
/// object. The event's own `etag` is the JSON API's, which never equals it, so it is
/// not used; composite objects have no MD5 and get no etag (consumers then compare
/// size and time).
fn md5_hex(md5_base64: &str) -> Option<String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(md5_base64)
        .ok()
        .filter(|b| b.len() == 16)?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_the_md5_in_hex_as_the_xml_api_reports_it() {
        // The same MD5 in the two encodings: the event's md5Hash and the XML API's ETag.
        assert_eq!(
            md5_hex("fM9z6ibZYoF6zHEA1/bMsw==").as_deref(),
            Some("7ccf73ea26d962817acc7100d7f6ccb3")
        );
        assert_eq!(md5_hex("not base64"), None);
        assert_eq!(md5_hex("AAE="), None);
    }
    use cloudevents::{EventBuilder, EventBuilderV10};
    use serde_json::json;

    fn event(data: Value) -> Event {
        EventBuilderV10::new()
            .id("e1")
            .ty(FINALIZED)
            .source("//storage.googleapis.com/projects/_/buckets/phys-bucket")
            .subject("objects/a b/c+d.txt")
            .time("2024-05-01T10:00:00Z")
            .data("application/json", data)
            .build()
            .unwrap()
    }

    #[test]
    fn sizes_as_strings_or_numbers_and_raw_names() {
        let names = ResourceNames::new().with_bucket("uploads", "phys-bucket");
        let b = decode(
            &event(json!({"bucket": "phys-bucket", "name": "a b/c+d.txt", "size": "352",
                          "contentType": "text/plain", "etag": "x", "timeCreated": "2020-04-23T07:38:57.230Z"})),
            Mode::Binary,
            &names,
        )
        .unwrap();
        assert_eq!(b.bucket, "uploads");
        assert_eq!(b.key, "a b/c+d.txt");
        assert_eq!(b.size, 352);
        assert_eq!(b.content_type.as_deref(), Some("text/plain"));
        assert_eq!(b.time.to_rfc3339(), "2020-04-23T07:38:57.230+00:00");
        let b = decode(&event(json!({"size": 7})), Mode::Structured, &names).unwrap();
        assert_eq!(
            (b.bucket.as_str(), b.key.as_str(), b.size),
            ("uploads", "a b/c+d.txt", 7)
        );
        assert_eq!(b.time.to_rfc3339(), "2024-05-01T10:00:00+00:00");
        let e = decode(&event(json!({"size": "many"})), Mode::Binary, &names).unwrap_err();
        assert!(e.0.contains("size \"many\""), "{e}");
    }
}
