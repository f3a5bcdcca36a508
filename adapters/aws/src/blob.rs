//! Blob-created functions: an S3 event notification to one [`BlobCreated`] per
//! record.
//!
//! - keys arrive form-URL-encoded (`red+flower.jpg`, `Happy%20Face.jpg`) and are
//!   decoded with [`decode_key`];
//! - only `ObjectCreated:*` records become events; other records (`ObjectRemoved:*`,
//!   `ObjectRestore:*`...) are skipped. `eventVersion` must have major version 2;
//! - the bucket is the app's logical name, mapped back from the physical one through
//!   `NUBE_BUCKET_<LOGICAL>` ([`crate::names`]);
//! - `event_id` is `<bucket>/<encoded key>@<sequencer>`: S3 gives every write of a key
//!   a new sequencer and repeats it when it repeats the notification. Without a
//!   sequencer, the request id (`responseElements.x-amz-request-id`) or else the event
//!   time takes its place.

use chrono::{DateTime, Utc};
use nube::{BlobCreated, Provider, RawEvent};
use serde_json::Value;

use crate::error::DecodeError;
use crate::names::ResourceNames;

/// One record of an S3 notification.
#[derive(Debug, Clone, PartialEq)]
pub enum S3Record {
    /// An object was created: the event for the function.
    Created(BlobCreated),
    /// A record that is not `ObjectCreated:*`; nube has nothing to run for it.
    Skipped {
        /// Its `eventName`.
        event_name: String,
        /// Its key, decoded.
        key: String,
    },
    /// A record that could not be decoded.
    Invalid {
        /// Its key as far as it could be read (`?` when it could not).
        key: String,
        /// What is wrong with it.
        error: DecodeError,
    },
}

/// Decodes an S3 notification's `Records`, one [`S3Record`] per record, in order.
/// Fails only when the payload has no `Records` array.
pub fn decode(payload: &Value, names: &ResourceNames) -> Result<Vec<S3Record>, DecodeError> {
    let records = payload
        .get("Records")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            DecodeError::new("an S3 notification has a \"Records\" array; this payload has none")
        })?;
    Ok(records.iter().map(|r| decode_record(r, names)).collect())
}

/// Decodes one S3 notification record.
pub fn decode_record(record: &Value, names: &ResourceNames) -> S3Record {
    let raw_key = record.pointer("/s3/object/key").and_then(Value::as_str);
    let key = match raw_key.map(decode_key) {
        Some(Ok(key)) => key,
        Some(Err(error)) => {
            return S3Record::Invalid {
                key: raw_key.unwrap_or("?").to_owned(),
                error,
            };
        }
        None => {
            return S3Record::Invalid {
                key: "?".to_owned(),
                error: DecodeError::new("the record has no s3.object.key"),
            };
        }
    };
    let invalid = |message: String| S3Record::Invalid {
        key: key.clone(),
        error: DecodeError::new(message),
    };
    let str_field = |name: &str| record.get(name).and_then(Value::as_str);
    if let Some(version) = str_field("eventVersion")
        && version.split('.').next() != Some("2")
    {
        return invalid(format!(
            "S3 notification eventVersion {version:?} is not supported (nube reads major version 2)"
        ));
    }
    let Some(event_name) = str_field("eventName") else {
        return invalid("the record has no eventName".to_owned());
    };
    let event_name_bare = event_name.strip_prefix("s3:").unwrap_or(event_name);
    if !event_name_bare.starts_with("ObjectCreated:") {
        return S3Record::Skipped {
            event_name: event_name.to_owned(),
            key,
        };
    }
    let Some(physical_bucket) = record.pointer("/s3/bucket/name").and_then(Value::as_str) else {
        return invalid("the record has no s3.bucket.name".to_owned());
    };
    let size = match record.pointer("/s3/object/size") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    let Some(size) = size else {
        return invalid("the record has no s3.object.size (a number of bytes)".to_owned());
    };
    let Some(event_time) = str_field("eventTime") else {
        return invalid("the record has no eventTime".to_owned());
    };
    let time = match DateTime::parse_from_rfc3339(event_time) {
        Ok(t) => t.with_timezone(&Utc),
        Err(e) => {
            return invalid(format!(
                "the record's eventTime {event_time:?} is not an RFC 3339 time: {e}"
            ));
        }
    };
    let etag = record
        .pointer("/s3/object/eTag")
        .and_then(Value::as_str)
        .filter(|e| !e.is_empty())
        .map(str::to_owned);
    let raw_key = raw_key.unwrap_or_default();
    let sequencer = record
        .pointer("/s3/object/sequencer")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let request_id = record.get("responseElements").and_then(|r| {
        r.get("x-amz-request-id")
            .or_else(|| r.get("xAmzRequestId"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    });
    let event_id = match (sequencer, request_id) {
        (Some(seq), _) => format!("{physical_bucket}/{raw_key}@{seq}"),
        (None, Some(req)) => format!("{physical_bucket}/{raw_key}@{req}"),
        (None, None) => format!("{physical_bucket}/{raw_key}@{event_time}"),
    };
    S3Record::Created(BlobCreated {
        event_id,
        bucket: names.logical_bucket(physical_bucket).to_owned(),
        key,
        size,
        content_type: None,
        etag,
        time,
        content: None,
        raw: RawEvent::new(Provider::Aws, record.clone()),
    })
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes an S3 notification key: `+` is a space, then `%XX` escapes are bytes of
/// UTF-8 (`red+flower%C3%A9.jpg` → `red floweré.jpg`; a literal `+` arrives as `%2B`).
/// A `%` not followed by two hex digits is kept as it is.
pub fn decode_key(encoded: &str) -> Result<String, DecodeError> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| {
        DecodeError::new(format!(
            "the object key {encoded:?} does not decode to UTF-8 text"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys() {
        assert_eq!(decode_key("red+flower.jpg").unwrap(), "red flower.jpg");
        assert_eq!(decode_key("Happy%20Face.jpg").unwrap(), "Happy Face.jpg");
        assert_eq!(decode_key("a%2Bb+c").unwrap(), "a+b c");
        assert_eq!(decode_key("caf%C3%A9").unwrap(), "café");
        assert_eq!(decode_key("100%").unwrap(), "100%");
        assert_eq!(decode_key("x%2").unwrap(), "x%2");
        assert_eq!(decode_key("%zz").unwrap(), "%zz");
        assert!(decode_key("%FF").is_err());
    }

    fn record(name: &str, version: &str) -> Value {
        json!({
            "eventVersion": version, "eventSource": "aws:s3", "eventName": name,
            "eventTime": "2024-05-01T10:00:00.000Z",
            "responseElements": {"x-amz-request-id": "REQ1"},
            "s3": {"bucket": {"name": "phys-uploads"},
                   "object": {"key": "original/red+flower.jpg", "size": 12, "eTag": "abc", "sequencer": "00AB"}}
        })
    }

    #[test]
    fn records() {
        let names = ResourceNames::new().with_bucket("uploads", "phys-uploads");
        let S3Record::Created(b) = decode_record(&record("ObjectCreated:Put", "2.1"), &names)
        else {
            panic!()
        };
        assert_eq!(b.bucket, "uploads");
        assert_eq!(b.key, "original/red flower.jpg");
        assert_eq!(b.size, 12);
        assert_eq!(b.etag.as_deref(), Some("abc"));
        assert_eq!(b.event_id, "phys-uploads/original/red+flower.jpg@00AB");
        assert!(matches!(
            decode_record(&record("ObjectRemoved:Delete", "2.1"), &names),
            S3Record::Skipped { .. }
        ));
        let S3Record::Invalid { error, .. } =
            decode_record(&record("ObjectCreated:Put", "3.0"), &names)
        else {
            panic!()
        };
        assert!(error.0.contains("eventVersion"), "{error}");
    }
}
