//! Document-created functions: DynamoDB Streams records to [`DocumentCreated`].
//!
//! - only `INSERT` records become events; `MODIFY` and `REMOVE` are skipped (nube has
//!   no updated/deleted trigger), not failed;
//! - the stream must carry new images (`StreamViewType` `NEW_IMAGE` or
//!   `NEW_AND_OLD_IMAGES`); the image, in DynamoDB JSON, becomes plain JSON with
//!   [`image_to_document`];
//! - the collection is the app's logical name, mapped back from the table named in
//!   `eventSourceARN` (or `tableName`) through `NUBE_TABLE_<LOGICAL>`
//!   ([`crate::names`]);
//! - `event_id` is the record's `eventID`.
//!
//! ## The item convention
//!
//! The one the DynamoDB store (`nube_aws::dynamodb`, feature `dynamodb`) writes: an
//! item is one document; the key attribute `id` (a string, or a number's text) is the
//! document id and is not part of the document value; `_nube_id` holds the
//! document's own `id` field, if it has one, and goes back to `id`; every other
//! attribute whose name starts with `_nube` (such as `_nube_version`) is the store's
//! metadata and is dropped; the remaining attributes are the document's fields.
//! In tables nube did not write, the table's key attribute (from `Keys`, when it is one
//! attribute) is the id, and an `id` attribute that is not the key is a field; with a
//! composite key, the `id` attribute is the id.
//!
//! ## Numbers
//!
//! DynamoDB sends numbers as decimal text (`"N": "123.45"`). [`number_to_json`] makes
//! integers that fit 64 bits JSON integers, and other numbers JSON numbers when an
//! `f64` holds them exactly as written (`123.45`, `1e300`). A number an `f64` would
//! change (more than ~17 significant digits, integers beyond 64 bits) is kept as a
//! JSON string with its exact decimal text, so no digit is ever lost.

use nube::{DocumentCreated, Provider, RawEvent};
use serde_json::{Map, Value};

use crate::error::DecodeError;
use crate::names::ResourceNames;

/// Attribute-name prefix of the backend's metadata attributes, dropped from documents.
pub const METADATA_PREFIX: &str = "_nube";

/// The attribute that holds the document id.
pub const ID_ATTRIBUTE: &str = "id";

/// The attribute that holds the document's own `id` field.
pub const ID_FIELD_ATTRIBUTE: &str = "_nube_id";

/// One record of a DynamoDB Streams batch.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamRecord {
    /// An item was inserted: the event for the function.
    Created {
        /// `dynamodb.SequenceNumber` (what a partial batch failure names).
        sequence_number: Option<String>,
        /// The event.
        event: DocumentCreated<Value>,
    },
    /// A `MODIFY` or `REMOVE` record; nothing to run.
    Skipped {
        /// `dynamodb.SequenceNumber`.
        sequence_number: Option<String>,
        /// `eventName`.
        event_name: String,
    },
    /// A record that could not be decoded.
    Invalid {
        /// `dynamodb.SequenceNumber`.
        sequence_number: Option<String>,
        /// `eventID`, when there is one.
        event_id: Option<String>,
        /// What is wrong with it.
        error: DecodeError,
    },
}

impl StreamRecord {
    /// The record's `dynamodb.SequenceNumber`.
    pub fn sequence_number(&self) -> Option<&str> {
        match self {
            Self::Created {
                sequence_number, ..
            }
            | Self::Skipped {
                sequence_number, ..
            }
            | Self::Invalid {
                sequence_number, ..
            } => sequence_number.as_deref(),
        }
    }
}

/// Decodes a DynamoDB Streams batch's `Records`, one [`StreamRecord`] each, in order.
/// Fails only when the payload has no `Records` array.
pub fn decode(payload: &Value, names: &ResourceNames) -> Result<Vec<StreamRecord>, DecodeError> {
    let records = payload
        .get("Records")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            DecodeError::new(
                "a DynamoDB Streams batch has a \"Records\" array; this payload has none",
            )
        })?;
    Ok(records.iter().map(|r| decode_record(r, names)).collect())
}

/// Decodes one DynamoDB Streams record.
pub fn decode_record(record: &Value, names: &ResourceNames) -> StreamRecord {
    let sequence_number = record
        .pointer("/dynamodb/SequenceNumber")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let event_id = record
        .get("eventID")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let invalid = |message: String| StreamRecord::Invalid {
        sequence_number: sequence_number.clone(),
        event_id: event_id.clone(),
        error: DecodeError::new(message),
    };
    let Some(event_name) = record.get("eventName").and_then(Value::as_str) else {
        return invalid("the record has no eventName".to_owned());
    };
    if event_name != "INSERT" {
        return StreamRecord::Skipped {
            sequence_number,
            event_name: event_name.to_owned(),
        };
    }
    let Some(id) = event_id.clone() else {
        return invalid("the record has no eventID".to_owned());
    };
    let table = match table_name(record) {
        Ok(t) => t,
        Err(e) => return invalid(e.0),
    };
    let Some(image) = record
        .pointer("/dynamodb/NewImage")
        .and_then(Value::as_object)
    else {
        return invalid(format!(
            "the INSERT record of table {table} has no NewImage: set the stream's StreamViewType to NEW_IMAGE or NEW_AND_OLD_IMAGES"
        ));
    };
    // The table's own key when it is one attribute (nube's tables: `id`); else `id`.
    let single_key = record
        .pointer("/dynamodb/Keys")
        .and_then(Value::as_object)
        .filter(|k| k.len() == 1)
        .and_then(|k| k.keys().next());
    let key_attribute = match single_key {
        Some(k) => k.clone(),
        None if image.contains_key(ID_ATTRIBUTE) => ID_ATTRIBUTE.to_owned(),
        None => {
            return invalid(format!(
                "the item inserted in table {table} has no single key attribute and no \"{ID_ATTRIBUTE}\" attribute to use as document id"
            ));
        }
    };
    match split_image(image, &key_attribute) {
        Ok((doc_id, document)) => StreamRecord::Created {
            sequence_number,
            event: DocumentCreated {
                event_id: id,
                collection: names.logical_collection(&table).to_owned(),
                id: doc_id,
                document,
                raw: RawEvent::new(Provider::Aws, record.clone()),
            },
        },
        Err(e) => invalid(format!("the item inserted in table {table}: {e}")),
    }
}

/// The table a record comes from: from `eventSourceARN`
/// (`arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<time>`), else `tableName`.
pub fn table_name(record: &Value) -> Result<String, DecodeError> {
    let arn = record.get("eventSourceARN").and_then(Value::as_str);
    if let Some(name) = arn.and_then(|arn| {
        let resource = arn.splitn(6, ':').nth(5)?;
        let name = resource.strip_prefix("table/")?.split('/').next()?;
        (!name.is_empty()).then_some(name)
    }) {
        return Ok(name.to_owned());
    }
    if let Some(name) = record
        .get("tableName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        return Ok(name.to_owned());
    }
    Err(DecodeError::new(match arn {
        Some(arn) => format!(
            "the record's eventSourceARN {arn:?} does not name a DynamoDB table (arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<time>) and it has no tableName"
        ),
        None => "the record has neither eventSourceARN nor tableName".to_owned(),
    }))
}

/// An item image (DynamoDB JSON, `{"attr": {"S": "..."}, ...}`) as `(id, document)`
/// by the convention in the [module docs](self): `id` is the document id (a string,
/// or a number's text), `_nube_id` becomes the document's `id` field, other `_nube*`
/// attributes are dropped, the rest is the document.
pub fn image_to_document(image: &Map<String, Value>) -> Result<(String, Value), DecodeError> {
    split_image(image, ID_ATTRIBUTE)
}

fn split_image(image: &Map<String, Value>, key: &str) -> Result<(String, Value), DecodeError> {
    let mut id = None;
    let mut document = Map::new();
    for (name, attribute) in image {
        if name == key {
            // A number key as DynamoDB wrote it: through JSON, a key beyond `u64`
            // would turn into a float's text (`1e20`), which no read would find.
            if let Some(Value::String(number)) = attribute.get("N") {
                id = Some(number.clone());
                continue;
            }
            id = Some(match attribute_to_json(attribute) {
                Ok(Value::String(s)) => s,
                Ok(Value::Number(n)) => n.to_string(),
                Ok(other) => {
                    return Err(DecodeError::new(format!(
                        "its key attribute {key:?} is {other}, not a string or number"
                    )));
                }
                Err(e) => return Err(DecodeError::new(format!("attribute {name:?}: {e}"))),
            });
        } else if name == ID_FIELD_ATTRIBUTE || !name.starts_with(METADATA_PREFIX) {
            let value = attribute_to_json(attribute)
                .map_err(|e| DecodeError::new(format!("attribute {name:?}: {e}")))?;
            let field = if name == ID_FIELD_ATTRIBUTE {
                ID_ATTRIBUTE
            } else {
                name.as_str()
            };
            document.insert(field.to_owned(), value);
        }
    }
    let id = id.ok_or_else(|| DecodeError::new(format!("it has no {key:?} attribute")))?;
    Ok((id, Value::Object(document)))
}

/// One attribute value in DynamoDB JSON (`{"N": "1"}`, `{"L": [...]}`...) as plain
/// JSON: `S` a string, `N` a number ([`number_to_json`]), `B` its base64 text,
/// `BOOL` a boolean, `NULL` null, `L` an array, `M` an object, `SS`/`NS`/`BS` arrays
/// (empty sets are empty arrays).
pub fn attribute_to_json(attribute: &Value) -> Result<Value, DecodeError> {
    let Some(object) = attribute.as_object().filter(|o| o.len() == 1) else {
        return Err(DecodeError::new(format!(
            "{attribute} is not a DynamoDB attribute value (an object with one type key such as \"S\" or \"N\")"
        )));
    };
    let (tag, value) = object.iter().next().expect("one entry");
    let wrong = |what: &str| {
        DecodeError::new(format!(
            "a {tag:?} attribute holds {what}, but it holds {value}"
        ))
    };
    let strings = |what: &str| -> Result<Vec<&str>, DecodeError> {
        value
            .as_array()
            .ok_or_else(|| wrong(what))?
            .iter()
            .map(|v| v.as_str().ok_or_else(|| wrong(what)))
            .collect()
    };
    Ok(match tag.as_str() {
        "S" | "B" => Value::String(value.as_str().ok_or_else(|| wrong("a string"))?.to_owned()),
        "N" => number_to_json(value.as_str().ok_or_else(|| wrong("a number as text"))?)?,
        "BOOL" => match value {
            Value::Bool(b) => Value::Bool(*b),
            Value::String(s) if s == "true" || s == "false" => Value::Bool(s == "true"),
            _ => return Err(wrong("a boolean")),
        },
        "NULL" => Value::Null,
        "L" => Value::Array(
            value
                .as_array()
                .ok_or_else(|| wrong("an array"))?
                .iter()
                .map(attribute_to_json)
                .collect::<Result<_, _>>()?,
        ),
        "M" => Value::Object(
            value
                .as_object()
                .ok_or_else(|| wrong("an object"))?
                .iter()
                .map(|(k, v)| {
                    attribute_to_json(v)
                        .map(|v| (k.clone(), v))
                        .map_err(|e| DecodeError::new(format!("in map key {k:?}: {e}")))
                })
                .collect::<Result<_, _>>()?,
        ),
        "SS" | "BS" => Value::Array(
            strings("an array of strings")?
                .into_iter()
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        ),
        "NS" => Value::Array(
            strings("an array of numbers as text")?
                .into_iter()
                .map(number_to_json)
                .collect::<Result<_, _>>()?,
        ),
        other => {
            return Err(DecodeError::new(format!(
                "unknown DynamoDB attribute type {other:?} (expected S, N, B, BOOL, NULL, L, M, SS, NS or BS)"
            )));
        }
    })
}

/// A DynamoDB number (decimal text) as JSON without losing a digit: a JSON integer
/// when it fits `i64`/`u64`, a JSON number when an `f64` holds it exactly as
/// written, otherwise a JSON string of the text itself.
pub fn number_to_json(text: &str) -> Result<Value, DecodeError> {
    let text = text.trim();
    if let Ok(i) = text.parse::<i64>() {
        return Ok(Value::from(i));
    }
    if let Ok(u) = text.parse::<u64>() {
        return Ok(Value::from(u));
    }
    let Some(exact) = Decimal::parse(text) else {
        return Err(DecodeError::new(format!("{text:?} is not a number")));
    };
    if let Ok(f) = text.parse::<f64>()
        && f.is_finite()
        && Decimal::parse(&format!("{f:e}")).as_ref() == Some(&exact)
        && let Some(n) = serde_json::Number::from_f64(f)
    {
        return Ok(Value::Number(n));
    }
    Ok(Value::String(text.to_owned()))
}

/// A decimal as sign, significant digits and exponent (value = digits × 10^exp), with
/// no leading or trailing zeros in the digits; zero is `(false, "", 0)`.
#[derive(Debug, PartialEq, Eq)]
struct Decimal {
    negative: bool,
    digits: String,
    exponent: i64,
}

impl Decimal {
    fn parse(text: &str) -> Option<Self> {
        let (negative, rest) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().ok()?),
            None => (rest, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if int.is_empty() && frac.is_empty()
            || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let mut digits: String = int.chars().chain(frac.chars()).collect();
        let exponent = exponent.checked_sub(i64::try_from(frac.len()).ok()?)?;
        let trimmed = digits.trim_end_matches('0').len();
        let exponent = exponent.checked_add(i64::try_from(digits.len() - trimmed).ok()?)?;
        digits.truncate(trimmed);
        let digits = digits.trim_start_matches('0').to_owned();
        if digits.is_empty() {
            return Some(Self {
                negative: false,
                digits,
                exponent: 0,
            });
        }
        Some(Self {
            negative,
            digits,
            exponent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_keep_every_digit() {
        assert_eq!(number_to_json("42").unwrap(), json!(42));
        assert_eq!(number_to_json("-7").unwrap(), json!(-7));
        assert_eq!(
            number_to_json("18446744073709551615").unwrap(),
            json!(18446744073709551615u64)
        );
        assert_eq!(number_to_json("123.45").unwrap(), json!(123.45));
        assert_eq!(number_to_json("123.45").unwrap().to_string(), "123.45");
        assert_eq!(number_to_json("1E+300").unwrap(), json!(1e300));
        assert_eq!(number_to_json("0.1").unwrap().to_string(), "0.1");
        assert_eq!(number_to_json("-0.000").unwrap(), json!(0.0));
        assert_eq!(
            number_to_json("123456789012345678901234567890").unwrap(),
            json!("123456789012345678901234567890")
        );
        assert_eq!(
            number_to_json("3.14159265358979323846264338327950288").unwrap(),
            json!("3.14159265358979323846264338327950288")
        );
        assert!(number_to_json("12a").is_err());
        assert!(number_to_json("").is_err());
        assert!(number_to_json(".").is_err());
        // An exponent at the edge of i64 is refused, not overflowed.
        assert!(Decimal::parse("10e9223372036854775807").is_none());
    }

    #[test]
    fn number_keys_keep_their_text() {
        let image = json!({"pk": {"N": "100000000000000000000"}, "a": {"N": "1"}});
        let (id, doc) = split_image(image.as_object().unwrap(), "pk").unwrap();
        assert_eq!(id, "100000000000000000000");
        assert_eq!(doc, json!({"a": 1}));
    }

    #[test]
    fn every_type_tag() {
        let image = json!({
            "id": {"S": "doc-1"},
            "_nube_version": {"S": "v1"},
            "_nube_id": {"N": "7"},
            "s": {"S": "text"}, "n": {"N": "5"}, "b": {"B": "AAEC"},
            "t": {"BOOL": true}, "z": {"NULL": true},
            "l": {"L": [{"N": "1"}, {"S": "x"}]},
            "m": {"M": {"k": {"N": "2.5"}}},
            "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2.5"]}, "bs": {"BS": ["AA=="]},
            "es": {"SS": []}
        });
        let (id, doc) = image_to_document(image.as_object().unwrap()).unwrap();
        assert_eq!(id, "doc-1");
        assert_eq!(
            doc,
            json!({
                "id": 7, "s": "text", "n": 5, "b": "AAEC", "t": true, "z": null,
                "l": [1, "x"], "m": {"k": 2.5}, "ss": ["a", "b"], "ns": [1, 2.5],
                "bs": ["AA=="], "es": []
            })
        );
        let err = attribute_to_json(&json!({"X": 1})).unwrap_err();
        assert!(err.0.contains("unknown DynamoDB attribute type"), "{err}");
        let err = image_to_document(json!({"a": {"S": "x"}}).as_object().unwrap()).unwrap_err();
        assert!(err.0.contains("\"id\""), "{err}");
    }

    #[test]
    fn the_document_id_is_the_tables_key() {
        let record = |keys: Value| {
            json!({
                "eventID": "e1",
                "eventName": "INSERT",
                "eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/things/stream/2015-06-27T00:48:05.899",
                "dynamodb": {
                    "Keys": keys,
                    "NewImage": {"pk": {"S": "k1"}, "id": {"S": "own"}, "a": {"N": "1"}},
                    "SequenceNumber": "1"
                }
            })
        };
        let names = ResourceNames::new();
        let id_of = |r: &Value| match decode_record(r, &names) {
            StreamRecord::Created { event, .. } => (event.id, event.document),
            other => panic!("{other:?}"),
        };
        let (id, doc) = id_of(&record(json!({"pk": {"S": "k1"}})));
        assert_eq!(id, "k1");
        assert_eq!(
            doc,
            json!({"id": "own", "a": 1}),
            "an `id` attribute that is not the key is a field"
        );
        let (id, _) = id_of(&record(json!({"pk": {"S": "k1"}, "sk": {"S": "s"}})));
        assert_eq!(id, "own", "a composite key: the `id` attribute");
    }

    #[test]
    fn table_names() {
        let r = json!({"eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/orders-abc/stream/2015-06-27T00:48:05.899"});
        assert_eq!(table_name(&r).unwrap(), "orders-abc");
        let r = json!({"eventSourceARN": "x", "tableName": "t"});
        assert_eq!(table_name(&r).unwrap(), "t");
        assert!(table_name(&json!({"eventSourceARN": "x"})).is_err());
    }
}
