//! Document-created functions: `google.cloud.firestore.document.v1.created` to
//! [`DocumentCreated`].
//!
//! **Data.** Eventarc delivers Firestore events as protobuf
//! (`datacontenttype: application/protobuf`): the message `DocumentEventData` of
//! google-cloudevents' `google/events/cloud/firestore/v1/data.proto`, written out
//! below with prost's derive macros (same field numbers, so no `protoc` is needed).
//! The JSON form of the same message (proto3 JSON: `application/json`, as in the
//! legacy events and the samples) is read too. Bytes with no content type at all are
//! read as JSON when they are JSON, else as protobuf, as firebase-functions reads them.
//!
//! **Which document.** The document path comes from `value.name`
//! (`projects/<p>/databases/<db>/documents/<path>`), else the `document` extension
//! attribute, else `subject` (`documents/<path>`): in binary mode those two are `ce-*`
//! headers, which may arrive percent-encoded. Its last segment is the id; the
//! rest is the collection, mapped to the app's logical collection
//! ([`crate::names`]). `event_id` is the CloudEvent `id`.
//!
//! **Values** become plain JSON:
//!
//! | Firestore `Value` | JSON |
//! |---|---|
//! | `nullValue` | `null` |
//! | `booleanValue` | `true` / `false` |
//! | `integerValue` (int64; a string in proto3 JSON) | a number (integer) |
//! | `doubleValue` | a float (`5` reads as `5.0`, as the protobuf form does); NaN and ±Infinity, which JSON lacks, as the strings `"NaN"`, `"Infinity"`, `"-Infinity"` |
//! | `timestampValue` | an RFC 3339 string in UTC, `Z`, with as many fraction digits as needed (`2020-04-23T14:23:53.241Z`) |
//! | `stringValue` | a string |
//! | `bytesValue` | a string: the bytes in standard base64 |
//! | `referenceValue` | a string: the full resource name (`projects/p/databases/(default)/documents/a/b`) |
//! | `geoPointValue` | `{"latitude": ..., "longitude": ...}` |
//! | `arrayValue` | an array |
//! | `mapValue` | an object |
//! | a `Value` with no kind set | `null` |
//!
//! The document is its `fields` as such an object (name, create and update times are
//! metadata, kept in the raw event).

use std::collections::HashMap;

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use cloudevents::{AttributesReader, Data, Event};
use nube::{DocumentCreated, Provider, RawEvent};
use prost::Message;
use serde_json::{Map, Value as Json};

use crate::cloudevent::{Mode, attribute_text, data_json, extension, raw_payload};
use crate::error::DecodeError;
use crate::names::ResourceNames;

/// The CloudEvent type of a document created.
pub const CREATED: &str = "google.cloud.firestore.document.v1.created";

/// The same, for triggers that ask for the author (`authtype`, `authid` extensions).
pub const CREATED_WITH_AUTH_CONTEXT: &str =
    "google.cloud.firestore.document.v1.created.withAuthContext";

/// The data content type Eventarc uses for Firestore events.
pub const PROTOBUF_CONTENT_TYPE: &str = "application/protobuf";

/// The protobuf messages of `google/events/cloud/firestore/v1/data.proto`, with
/// `google.protobuf.Timestamp` and `google.type.LatLng`, written by hand.
pub mod proto {
    use std::collections::HashMap;

    /// The data within all Firestore document events.
    #[derive(Clone, PartialEq, ::prost::Message)]
    pub struct DocumentEventData {
        /// The document after the operation (not set for deletes).
        #[prost(message, optional, tag = "1")]
        pub value: Option<Document>,
        /// The document before the operation (updates and deletes).
        #[prost(message, optional, tag = "2")]
        pub old_value: Option<Document>,
        /// The changed fields (updates).
        #[prost(message, optional, tag = "3")]
        pub update_mask: Option<DocumentMask>,
    }

    /// A set of field paths on a document.
    #[derive(Clone, PartialEq, ::prost::Message)]
    pub struct DocumentMask {
        /// The field paths.
        #[prost(string, repeated, tag = "1")]
        pub field_paths: Vec<String>,
    }

    /// A Firestore document.
    #[derive(Clone, PartialEq, ::prost::Message)]
    pub struct Document {
        /// `projects/{project_id}/databases/{database_id}/documents/{document_path}`.
        #[prost(string, tag = "1")]
        pub name: String,
        /// The document's fields.
        #[prost(map = "string, message", tag = "2")]
        pub fields: HashMap<String, Value>,
        /// When the document was created.
        #[prost(message, optional, tag = "3")]
        pub create_time: Option<Timestamp>,
        /// When the document was last changed.
        #[prost(message, optional, tag = "4")]
        pub update_time: Option<Timestamp>,
    }

    /// A message that can hold any of the supported value types.
    #[derive(Clone, PartialEq, ::prost::Message)]
    pub struct Value {
        /// The value; `None` when no kind is set.
        #[prost(
            oneof = "value::ValueType",
            tags = "11, 1, 2, 3, 10, 17, 18, 5, 8, 9, 6"
        )]
        pub value_type: Option<value::ValueType>,
    }

    /// The oneof of [`Value`].
    pub mod value {
        /// The kinds of [`Value`](super::Value).
        #[derive(Clone, PartialEq, ::prost::Oneof)]
        pub enum ValueType {
            /// A null value (`google.protobuf.NullValue`, always 0).
            #[prost(enumeration = "super::NullValue", tag = "11")]
            NullValue(i32),
            /// A boolean.
            #[prost(bool, tag = "1")]
            BooleanValue(bool),
            /// A 64-bit integer.
            #[prost(int64, tag = "2")]
            IntegerValue(i64),
            /// A double.
            #[prost(double, tag = "3")]
            DoubleValue(f64),
            /// A timestamp.
            #[prost(message, tag = "10")]
            TimestampValue(super::Timestamp),
            /// A string.
            #[prost(string, tag = "17")]
            StringValue(String),
            /// Bytes.
            #[prost(bytes = "vec", tag = "18")]
            BytesValue(Vec<u8>),
            /// A reference to a document.
            #[prost(string, tag = "5")]
            ReferenceValue(String),
            /// A geo point.
            #[prost(message, tag = "8")]
            GeoPointValue(super::LatLng),
            /// An array (may not directly contain another array).
            #[prost(message, tag = "9")]
            ArrayValue(super::ArrayValue),
            /// A map.
            #[prost(message, tag = "6")]
            MapValue(super::MapValue),
        }
    }

    /// An array value.
    #[derive(Clone, PartialEq, ::prost::Message)]
    pub struct ArrayValue {
        /// Values in the array.
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<Value>,
    }

    /// A map value.
    #[derive(Clone, PartialEq, ::prost::Message)]
    pub struct MapValue {
        /// The map's fields.
        #[prost(map = "string, message", tag = "1")]
        pub fields: HashMap<String, Value>,
    }

    /// `google.protobuf.Timestamp`.
    #[derive(Clone, Copy, PartialEq, ::prost::Message)]
    pub struct Timestamp {
        /// Seconds since the Unix epoch.
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        /// Nanoseconds within the second (0–999,999,999).
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }

    /// `google.type.LatLng`.
    #[derive(Clone, Copy, PartialEq, ::prost::Message)]
    pub struct LatLng {
        /// Degrees latitude, -90 to 90.
        #[prost(double, tag = "1")]
        pub latitude: f64,
        /// Degrees longitude, -180 to 180.
        #[prost(double, tag = "2")]
        pub longitude: f64,
    }

    /// `google.protobuf.NullValue`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
    #[repr(i32)]
    pub enum NullValue {
        /// Null.
        NullValue = 0,
    }
}

fn double(d: f64) -> Json {
    serde_json::Number::from_f64(d).map_or_else(
        || {
            Json::from(if d.is_nan() {
                "NaN"
            } else if d > 0.0 {
                "Infinity"
            } else {
                "-Infinity"
            })
        },
        Json::Number,
    )
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn timestamp(t: &proto::Timestamp) -> Result<String, DecodeError> {
    u32::try_from(t.nanos)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(t.seconds, nanos))
        .map(rfc3339)
        .ok_or_else(|| {
            DecodeError::new(format!(
                "timestamp {{seconds: {}, nanos: {}}} is out of range",
                t.seconds, t.nanos
            ))
        })
}

/// A protobuf Firestore value as plain JSON (the table in the module docs).
pub fn value_to_json(value: &proto::Value) -> Result<Json, DecodeError> {
    use proto::value::ValueType as V;
    Ok(match &value.value_type {
        None | Some(V::NullValue(_)) => Json::Null,
        Some(V::BooleanValue(b)) => Json::from(*b),
        Some(V::IntegerValue(i)) => Json::from(*i),
        Some(V::DoubleValue(d)) => double(*d),
        Some(V::TimestampValue(t)) => Json::from(timestamp(t)?),
        Some(V::StringValue(s) | V::ReferenceValue(s)) => Json::from(s.as_str()),
        Some(V::BytesValue(b)) => Json::from(base64::engine::general_purpose::STANDARD.encode(b)),
        Some(V::GeoPointValue(p)) => {
            serde_json::json!({"latitude": double(p.latitude), "longitude": double(p.longitude)})
        }
        Some(V::ArrayValue(a)) => Json::Array(
            a.values
                .iter()
                .map(value_to_json)
                .collect::<Result<_, _>>()?,
        ),
        Some(V::MapValue(m)) => Json::Object(fields_to_json(&m.fields)?),
    })
}

/// Protobuf fields as a JSON object, keys sorted.
pub fn fields_to_json(
    fields: &HashMap<String, proto::Value>,
) -> Result<Map<String, Json>, DecodeError> {
    let mut names: Vec<&String> = fields.keys().collect();
    names.sort();
    names
        .into_iter()
        .map(|k| {
            value_to_json(&fields[k])
                .map(|v| (k.clone(), v))
                .map_err(|e| e.within(&format!("field {k:?}")))
        })
        .collect()
}

/// A Firestore value in proto3 JSON (`{"integerValue": "5"}`) as plain JSON (the
/// table in the module docs).
pub fn json_value_to_json(value: &Json) -> Result<Json, DecodeError> {
    let Some(object) = value.as_object() else {
        return Err(DecodeError::new(format!(
            "{value} is not a Firestore value (an object such as {{\"stringValue\": \"x\"}})"
        )));
    };
    let Some((kind, inner)) = object.iter().find(|(k, _)| k.ends_with("Value")) else {
        return if object.is_empty() {
            Ok(Json::Null)
        } else {
            Err(DecodeError::new(format!(
                "{value} is not a Firestore value: no *Value field"
            )))
        };
    };
    let wrong = |what: &str| DecodeError::new(format!("{kind} is {inner}, not {what}"));
    Ok(match kind.as_str() {
        "nullValue" => Json::Null,
        "booleanValue" => Json::from(inner.as_bool().ok_or_else(|| wrong("a boolean"))?),
        "integerValue" => match inner {
            Json::String(s) => Json::from(
                s.trim()
                    .parse::<i64>()
                    .map_err(|_| wrong("an int64 (a decimal string)"))?,
            ),
            Json::Number(n) if n.is_i64() => inner.clone(),
            _ => return Err(wrong("an int64")),
        },
        "doubleValue" => match inner {
            // A float, as the protobuf form gives it (`5`, in JSON, is the double 5.0).
            Json::Number(n) => double(n.as_f64().ok_or_else(|| wrong("a double"))?),
            Json::String(s) => match s.as_str() {
                "NaN" | "Infinity" | "-Infinity" => inner.clone(),
                other => double(other.parse::<f64>().map_err(|_| wrong("a double"))?),
            },
            _ => return Err(wrong("a double")),
        },
        "timestampValue" => {
            let text = inner.as_str().ok_or_else(|| wrong("an RFC 3339 time"))?;
            let t = DateTime::parse_from_rfc3339(text).map_err(|_| wrong("an RFC 3339 time"))?;
            Json::from(rfc3339(t.with_timezone(&Utc)))
        }
        "stringValue" | "referenceValue" => {
            Json::from(inner.as_str().ok_or_else(|| wrong("a string"))?)
        }
        "bytesValue" => {
            let text = inner.as_str().ok_or_else(|| wrong("base64 text"))?;
            // proto3 JSON accepts standard and URL-safe base64; nube writes standard.
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text))
                .map_err(|_| wrong("base64 text"))?;
            Json::from(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
        "geoPointValue" => {
            let coordinate = |name: &str| inner.get(name).and_then(Json::as_f64).unwrap_or(0.0);
            if !inner.is_object() {
                return Err(wrong("a {latitude, longitude} object"));
            }
            serde_json::json!({"latitude": double(coordinate("latitude")), "longitude": double(coordinate("longitude"))})
        }
        "arrayValue" => {
            let values = match inner.get("values") {
                None | Some(Json::Null) => Vec::new(),
                Some(Json::Array(values)) => values.clone(),
                Some(_) => return Err(wrong("an {values: [...]} object")),
            };
            Json::Array(
                values
                    .iter()
                    .map(json_value_to_json)
                    .collect::<Result<_, _>>()?,
            )
        }
        "mapValue" => Json::Object(json_fields_to_json(inner.get("fields"))?),
        other => {
            return Err(DecodeError::new(format!(
                "{other} is not a Firestore value kind nube knows"
            )));
        }
    })
}

/// proto3-JSON `fields` (absent or an object of values) as a JSON object.
pub fn json_fields_to_json(fields: Option<&Json>) -> Result<Map<String, Json>, DecodeError> {
    match fields {
        None | Some(Json::Null) => Ok(Map::new()),
        Some(Json::Object(fields)) => fields
            .iter()
            .map(|(k, v)| {
                json_value_to_json(v)
                    .map(|v| (k.clone(), v))
                    .map_err(|e| e.within(&format!("field {k:?}")))
            })
            .collect(),
        Some(other) => Err(DecodeError::new(format!(
            "fields is {other}, not an object"
        ))),
    }
}

/// A Firestore value in proto3 JSON (`{"integerValue": "5"}`, what the Firestore REST
/// API and the emulator return) as the protobuf [`proto::Value`] Eventarc sends: the
/// reverse of reading `DocumentEventData`, for building events from stored documents.
pub fn json_value_to_proto(value: &Json) -> Result<proto::Value, DecodeError> {
    use proto::value::ValueType as V;
    let Some((kind, inner)) = value
        .as_object()
        .and_then(|o| o.iter().find(|(k, _)| k.ends_with("Value")))
    else {
        return Err(DecodeError::new(format!(
            "{value} is not a Firestore value (an object such as {{\"stringValue\": \"x\"}})"
        )));
    };
    let wrong = |what: &str| DecodeError::new(format!("{kind} is {inner}, not {what}"));
    let timestamp = |text: &str| -> Result<proto::Timestamp, DecodeError> {
        let t = DateTime::parse_from_rfc3339(text).map_err(|_| wrong("an RFC 3339 time"))?;
        Ok(proto::Timestamp {
            seconds: t.timestamp(),
            nanos: t.timestamp_subsec_nanos() as i32,
        })
    };
    let kind_value = match kind.as_str() {
        "nullValue" => V::NullValue(0),
        "booleanValue" => V::BooleanValue(inner.as_bool().ok_or_else(|| wrong("a boolean"))?),
        "integerValue" => V::IntegerValue(match inner {
            Json::String(s) => s.parse().map_err(|_| wrong("an int64"))?,
            other => other.as_i64().ok_or_else(|| wrong("an int64"))?,
        }),
        "doubleValue" => V::DoubleValue(match inner {
            Json::String(s) => s.parse().map_err(|_| wrong("a double"))?,
            other => other.as_f64().ok_or_else(|| wrong("a double"))?,
        }),
        "timestampValue" => {
            V::TimestampValue(timestamp(inner.as_str().ok_or_else(|| wrong("a time"))?)?)
        }
        "stringValue" => V::StringValue(inner.as_str().ok_or_else(|| wrong("a string"))?.into()),
        "referenceValue" => {
            V::ReferenceValue(inner.as_str().ok_or_else(|| wrong("a string"))?.into())
        }
        "bytesValue" => V::BytesValue(
            base64::engine::general_purpose::STANDARD
                .decode(inner.as_str().ok_or_else(|| wrong("base64 text"))?)
                .map_err(|_| wrong("base64 text"))?,
        ),
        "geoPointValue" => V::GeoPointValue(proto::LatLng {
            latitude: inner.get("latitude").and_then(Json::as_f64).unwrap_or(0.0),
            longitude: inner.get("longitude").and_then(Json::as_f64).unwrap_or(0.0),
        }),
        "arrayValue" => V::ArrayValue(proto::ArrayValue {
            values: inner
                .get("values")
                .and_then(Json::as_array)
                .map(|vs| vs.iter().map(json_value_to_proto).collect())
                .transpose()?
                .unwrap_or_default(),
        }),
        "mapValue" => V::MapValue(proto::MapValue {
            fields: json_fields_to_proto(inner.get("fields"))?,
        }),
        other => {
            return Err(DecodeError::new(format!(
                "{other} is not a Firestore value kind nube knows"
            )));
        }
    };
    Ok(proto::Value {
        value_type: Some(kind_value),
    })
}

fn json_fields_to_proto(
    fields: Option<&Json>,
) -> Result<HashMap<String, proto::Value>, DecodeError> {
    fields
        .and_then(Json::as_object)
        .map(|o| {
            o.iter()
                .map(|(k, v)| json_value_to_proto(v).map(|v| (k.clone(), v)))
                .collect()
        })
        .unwrap_or_else(|| Ok(HashMap::new()))
}

/// A document as the Firestore REST API returns it (`{name, fields, createTime,
/// updateTime}`) as the protobuf [`proto::Document`].
pub fn document_from_json(document: &Json) -> Result<proto::Document, DecodeError> {
    let time = |field: &str| -> Result<Option<proto::Timestamp>, DecodeError> {
        document
            .get(field)
            .and_then(Json::as_str)
            .map(|t| {
                let t = DateTime::parse_from_rfc3339(t).map_err(|_| {
                    DecodeError::new(format!("{field} {t:?} is not an RFC 3339 time"))
                })?;
                Ok(proto::Timestamp {
                    seconds: t.timestamp(),
                    nanos: t.timestamp_subsec_nanos() as i32,
                })
            })
            .transpose()
    };
    Ok(proto::Document {
        name: document
            .get("name")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned(),
        fields: json_fields_to_proto(document.get("fields"))?,
        create_time: time("createTime")?,
        update_time: time("updateTime")?,
    })
}

/// The created document, from either form of `DocumentEventData`.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedDocument {
    /// `value.name` (empty when not set).
    pub name: String,
    /// `value.fields` as plain JSON.
    pub fields: Map<String, Json>,
}

/// Decodes protobuf `DocumentEventData`.
pub fn decode_protobuf(bytes: &[u8]) -> Result<CreatedDocument, DecodeError> {
    let data = proto::DocumentEventData::decode(bytes).map_err(|e| {
        DecodeError::new(format!("the data is not a protobuf DocumentEventData: {e}"))
    })?;
    let value = data
        .value
        .ok_or_else(|| DecodeError::new("DocumentEventData has no value (the created document)"))?;
    Ok(CreatedDocument {
        fields: fields_to_json(&value.fields)?,
        name: value.name,
    })
}

/// Decodes proto3-JSON `DocumentEventData`.
pub fn decode_json(data: &Json) -> Result<CreatedDocument, DecodeError> {
    let value = data
        .get("value")
        .filter(|v| v.as_object().is_some_and(|o| !o.is_empty()))
        .ok_or_else(|| DecodeError::new("DocumentEventData has no value (the created document)"))?;
    Ok(CreatedDocument {
        name: value
            .get("name")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned(),
        fields: json_fields_to_json(value.get("fields"))?,
    })
}

/// The document path (`orders/o-1`) of a document resource name
/// (`projects/<project>/databases/<database>/documents/orders/o-1`), read by position:
/// a project or database named `documents` does not end the prefix.
pub fn path_of_name(name: &str) -> Option<&str> {
    crate::names::split_resource_name(name, "databases", "documents").map(|(_, path)| path)
}

/// Protobuf data: said so by the content type, or bytes that are not JSON with no
/// content type at all (as firebase-functions reads them).
fn is_protobuf(event: &Event) -> bool {
    match (event.datacontenttype(), event.data()) {
        (Some(ct), _) => ct.to_ascii_lowercase().contains("protobuf"),
        (None, Some(Data::Binary(bytes))) => {
            serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err()
        }
        (None, _) => false,
    }
}

/// Decodes a Firestore `created` CloudEvent.
pub fn decode(
    event: &Event,
    mode: Mode,
    names: &ResourceNames,
) -> Result<DocumentCreated<Json>, DecodeError> {
    decode_event(event, mode, names).map_err(|e| e.within("Firestore event"))
}

fn decode_event(
    event: &Event,
    mode: Mode,
    names: &ResourceNames,
) -> Result<DocumentCreated<Json>, DecodeError> {
    if event.ty() != CREATED && event.ty() != CREATED_WITH_AUTH_CONTEXT {
        return Err(DecodeError::new(format!(
            "type {:?} is not {CREATED:?}",
            event.ty()
        )));
    }
    let (document, parsed) = if is_protobuf(event) {
        let document = match event.data() {
            Some(Data::Binary(bytes)) => decode_protobuf(bytes)?,
            Some(Data::String(text)) => decode_protobuf(text.as_bytes())?,
            _ => {
                return Err(DecodeError::new(
                    "the data content type is application/protobuf, and the data is missing or JSON",
                ));
            }
        };
        (document, None)
    } else {
        let data = data_json(event)?;
        (decode_json(&data)?, Some(data))
    };
    // The document's own name first; in binary mode the `document` extension and the
    // subject come from `ce-*` headers, percent-encoded where a header needs it.
    let path = path_of_name(&document.name)
        .map(str::to_owned)
        .or_else(|| {
            extension(event, "document")
                .filter(|d| !d.is_empty())
                .map(|d| attribute_text(&d, mode))
        })
        .or_else(|| {
            event
                .subject()
                .and_then(|s| s.strip_prefix("documents/"))
                .map(|p| attribute_text(p, mode))
        })
        .ok_or_else(|| {
            DecodeError::new(
                "no document path: value.name, the document extension and the subject are all missing",
            )
        })?;
    let (collection, id) = path
        .rsplit_once('/')
        .filter(|(c, id)| !c.is_empty() && !id.is_empty())
        .ok_or_else(|| {
            DecodeError::new(format!("document path {path:?} is not <collection>/<id>"))
        })?;
    Ok(DocumentCreated {
        event_id: event.id().to_owned(),
        collection: names.logical_collection(collection).to_owned(),
        id: id.to_owned(),
        document: Json::Object(document.fields),
        raw: RawEvent::new(Provider::Gcp, raw_payload(event, mode, parsed)),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn rest_documents_become_the_protobuf_eventarc_sends() {
        let rest = serde_json::json!({
            "name": "projects/p/databases/(default)/documents/orders/o-1",
            "fields": {
                "n": {"integerValue": "9007199254740993"},
                "x": {"doubleValue": 2.5},
                "at": {"timestampValue": "2026-11-23T10:00:00.123456Z"},
                "tags": {"arrayValue": {"values": [{"stringValue": "a"}, {"nullValue": null}]}},
                "m": {"mapValue": {"fields": {"ok": {"booleanValue": true}}}},
                "raw": {"bytesValue": "AAE="},
                "here": {"geoPointValue": {"latitude": 1.5, "longitude": -2.0}},
                "ref": {"referenceValue": "projects/p/databases/(default)/documents/users/u1"}
            },
            "createTime": "2026-11-23T10:00:01Z",
            "updateTime": "2026-11-23T10:00:01Z"
        });
        let document = super::document_from_json(&rest).unwrap();
        let bytes = prost::Message::encode_to_vec(&super::proto::DocumentEventData {
            value: Some(document),
            old_value: None,
            update_mask: None,
        });
        let from_protobuf = super::decode_protobuf(&bytes).unwrap();
        let from_json = super::decode_json(&serde_json::json!({"value": rest})).unwrap();
        assert_eq!(from_protobuf, from_json);
        assert_eq!(
            from_protobuf.fields["n"],
            serde_json::json!(9007199254740993_i64)
        );
    }

    use super::proto::value::ValueType as V;
    use super::*;
    use serde_json::json;

    fn v(kind: V) -> proto::Value {
        proto::Value {
            value_type: Some(kind),
        }
    }

    #[test]
    fn protobuf_values_to_json() {
        let mut inner = HashMap::new();
        inner.insert("n".to_owned(), v(V::IntegerValue(-3)));
        let mut fields = HashMap::new();
        fields.insert("null".to_owned(), v(V::NullValue(0)));
        fields.insert("unset".to_owned(), proto::Value { value_type: None });
        fields.insert("flag".to_owned(), v(V::BooleanValue(true)));
        fields.insert("big".to_owned(), v(V::IntegerValue(9_007_199_254_740_993)));
        fields.insert("pi".to_owned(), v(V::DoubleValue(3.5)));
        fields.insert("nan".to_owned(), v(V::DoubleValue(f64::NAN)));
        fields.insert("inf".to_owned(), v(V::DoubleValue(f64::NEG_INFINITY)));
        fields.insert(
            "at".to_owned(),
            v(V::TimestampValue(proto::Timestamp {
                seconds: 1_587_651_833,
                nanos: 241_000_000,
            })),
        );
        fields.insert("bytes".to_owned(), v(V::BytesValue(vec![1, 2, 3])));
        fields.insert(
            "ref".to_owned(),
            v(V::ReferenceValue(
                "projects/p/databases/(default)/documents/a/b".into(),
            )),
        );
        fields.insert(
            "geo".to_owned(),
            v(V::GeoPointValue(proto::LatLng {
                latitude: 51.5,
                longitude: -0.25,
            })),
        );
        fields.insert(
            "list".to_owned(),
            v(V::ArrayValue(proto::ArrayValue {
                values: vec![v(V::StringValue("x".into())), v(V::IntegerValue(1))],
            })),
        );
        fields.insert(
            "map".to_owned(),
            v(V::MapValue(proto::MapValue { fields: inner })),
        );
        let json = Json::Object(fields_to_json(&fields).unwrap());
        assert_eq!(
            json,
            json!({
                "null": null, "unset": null, "flag": true, "big": 9_007_199_254_740_993_i64,
                "pi": 3.5, "nan": "NaN", "inf": "-Infinity", "at": "2020-04-23T14:23:53.241Z",
                "bytes": "AQID", "ref": "projects/p/databases/(default)/documents/a/b",
                "geo": {"latitude": 51.5, "longitude": -0.25},
                "list": ["x", 1], "map": {"n": -3}
            })
        );
    }

    #[test]
    fn json_values_match_protobuf_values() {
        let fields = json!({
            "null": {"nullValue": null}, "flag": {"booleanValue": true},
            "big": {"integerValue": "9007199254740993"}, "pi": {"doubleValue": 3.5},
            "nan": {"doubleValue": "NaN"}, "at": {"timestampValue": "2020-04-23T14:23:53.241000Z"},
            "bytes": {"bytesValue": "AQID"},
            "ref": {"referenceValue": "projects/p/databases/(default)/documents/a/b"},
            "geo": {"geoPointValue": {"latitude": 51.5, "longitude": -0.25}},
            "list": {"arrayValue": {"values": [{"stringValue": "x"}, {"integerValue": "1"}]}},
            "empty": {"arrayValue": {}},
            "map": {"mapValue": {"fields": {"n": {"integerValue": "-3"}}}}
        });
        let json = Json::Object(json_fields_to_json(Some(&fields)).unwrap());
        assert_eq!(
            json,
            json!({
                "null": null, "flag": true, "big": 9_007_199_254_740_993_i64,
                "pi": 3.5, "nan": "NaN", "at": "2020-04-23T14:23:53.241Z",
                "bytes": "AQID", "ref": "projects/p/databases/(default)/documents/a/b",
                "geo": {"latitude": 51.5, "longitude": -0.25},
                "list": ["x", 1], "empty": [], "map": {"n": -3}
            })
        );
        let e = json_fields_to_json(Some(&json!({"n": {"integerValue": "x"}}))).unwrap_err();
        assert!(e.0.contains("field \"n\"") && e.0.contains("int64"), "{e}");
        // A whole double is still a float, as its protobuf form reads.
        let whole = json_fields_to_json(Some(&json!({"d": {"doubleValue": 5}}))).unwrap();
        let proto =
            fields_to_json(&HashMap::from([("d".to_owned(), v(V::DoubleValue(5.0)))])).unwrap();
        assert_eq!(whole, proto);
        assert!(whole["d"].is_f64(), "{whole:?}");
    }

    #[test]
    fn protobuf_round_trip_through_prost() {
        let mut fields = HashMap::new();
        fields.insert("title".to_owned(), v(V::StringValue("milk".into())));
        let data = proto::DocumentEventData {
            value: Some(proto::Document {
                name: "projects/p/databases/(default)/documents/todos/t1".into(),
                fields,
                create_time: None,
                update_time: None,
            }),
            old_value: None,
            update_mask: None,
        };
        let doc = decode_protobuf(&data.encode_to_vec()).unwrap();
        assert_eq!(path_of_name(&doc.name), Some("todos/t1"));
        assert_eq!(
            path_of_name("projects/p/databases/documents/documents/orders/o1"),
            Some("orders/o1")
        );
        assert_eq!(path_of_name("projects/p/databases/d/documents/"), None);
        assert_eq!(path_of_name("orders/o1"), None);
        assert_eq!(Json::Object(doc.fields), json!({"title": "milk"}));
        assert!(decode_protobuf(b"\xff\xff\xff").is_err());
    }
}
