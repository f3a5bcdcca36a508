//! Legacy background events (Cloud Functions gen1 envelopes) to CloudEvents, the way
//! the Functions Frameworks convert them (functions-framework-nodejs
//! `background_event_to_cloud_event.ts`; the Go framework has the same table).
//!
//! Two envelope forms are taken:
//!
//! - nested: `{"context": {"eventId", "timestamp", "eventType", "resource": {"service", "name", "type"}}, "data": ...}`
//! - flat: `{"eventId", "timestamp", "eventType", "resource": "<name>", "params"?, "data"}`
//!
//! | legacy `eventType` | CloudEvent `type` |
//! |---|---|
//! | `google.storage.object.finalize`, `providers/cloud.storage/eventTypes/object.change` | `google.cloud.storage.object.v1.finalized` |
//! | `google.storage.object.{delete,archive,metadataUpdate}` | `google.cloud.storage.object.v1.{deleted,archived,metadataUpdated}` |
//! | `providers/cloud.firestore/eventTypes/document.{create,update,delete,write}` | `google.cloud.firestore.document.v1.{created,updated,deleted,written}` |
//! | `google.pubsub.topic.publish`, `providers/cloud.pubsub/eventTypes/topic.publish` | `google.cloud.pubsub.topic.v1.messagePublished` |
//! | Firebase Auth, Realtime Database, Analytics types | their `google.firebase.*` types (converted, then refused by every nube function) |
//!
//! `id` = `eventId`, `time` = `timestamp`; the service (from `resource.service`, or
//! told by the event type's prefix) gives `source = //<service>/<resource prefix>` and
//! `subject = <rest>`, split per service: storage `projects/_/buckets/<b>` |
//! `objects/<name>`; Firestore `projects/<p>/databases/<db>` | `documents/<path>`.
//! Pub/Sub data is wrapped as `{"message": {...data}}`, its `messageId` and
//! `publishTime` filled from `eventId` and `timestamp` when missing or empty (as the
//! Node Functions Framework does; no `@type` is added).

use cloudevents::{Event, EventBuilder, EventBuilderV10};
use serde_json::{Map, Value, json};

use crate::error::DecodeError;

/// Storage's CloudEvents service name.
pub const STORAGE_SERVICE: &str = "storage.googleapis.com";
/// Firestore's CloudEvents service name.
pub const FIRESTORE_SERVICE: &str = "firestore.googleapis.com";
/// Pub/Sub's CloudEvents service name.
pub const PUBSUB_SERVICE: &str = "pubsub.googleapis.com";

/// The CloudEvent type of a legacy event type, when the Functions Frameworks know it.
pub fn cloud_event_type(legacy: &str) -> Option<&'static str> {
    Some(match legacy {
        "google.pubsub.topic.publish" | "providers/cloud.pubsub/eventTypes/topic.publish" => {
            "google.cloud.pubsub.topic.v1.messagePublished"
        }
        "google.storage.object.finalize" | "providers/cloud.storage/eventTypes/object.change" => {
            "google.cloud.storage.object.v1.finalized"
        }
        "google.storage.object.delete" => "google.cloud.storage.object.v1.deleted",
        "google.storage.object.archive" => "google.cloud.storage.object.v1.archived",
        "google.storage.object.metadataUpdate" => "google.cloud.storage.object.v1.metadataUpdated",
        "providers/cloud.firestore/eventTypes/document.write" => {
            "google.cloud.firestore.document.v1.written"
        }
        "providers/cloud.firestore/eventTypes/document.create" => {
            "google.cloud.firestore.document.v1.created"
        }
        "providers/cloud.firestore/eventTypes/document.update" => {
            "google.cloud.firestore.document.v1.updated"
        }
        "providers/cloud.firestore/eventTypes/document.delete" => {
            "google.cloud.firestore.document.v1.deleted"
        }
        "providers/firebase.auth/eventTypes/user.create" => "google.firebase.auth.user.v1.created",
        "providers/firebase.auth/eventTypes/user.delete" => "google.firebase.auth.user.v1.deleted",
        "providers/google.firebase.analytics/eventTypes/event.log" => {
            "google.firebase.analytics.log.v1.written"
        }
        "providers/google.firebase.database/eventTypes/ref.create" => {
            "google.firebase.database.ref.v1.created"
        }
        "providers/google.firebase.database/eventTypes/ref.write" => {
            "google.firebase.database.ref.v1.written"
        }
        "providers/google.firebase.database/eventTypes/ref.update" => {
            "google.firebase.database.ref.v1.updated"
        }
        "providers/google.firebase.database/eventTypes/ref.delete" => {
            "google.firebase.database.ref.v1.deleted"
        }
        _ => return None,
    })
}

/// The service a legacy event type belongs to, told by its prefix.
fn service_of_type(event_type: &str) -> Option<&'static str> {
    [
        ("providers/cloud.firestore/", FIRESTORE_SERVICE),
        (
            "providers/google.firebase.analytics/",
            "firebase.googleapis.com",
        ),
        ("providers/firebase.auth/", "firebaseauth.googleapis.com"),
        (
            "providers/google.firebase.database/",
            "firebasedatabase.googleapis.com",
        ),
        ("providers/cloud.pubsub/", PUBSUB_SERVICE),
        ("providers/cloud.storage/", STORAGE_SERVICE),
        ("google.pubsub", PUBSUB_SERVICE),
        ("google.storage", STORAGE_SERVICE),
    ]
    .into_iter()
    .find(|(prefix, _)| event_type.starts_with(prefix))
    .map(|(_, service)| service)
}

/// Whether a JSON body is a legacy background event: `context.eventType` (nested) or
/// `eventType` and `eventId` (flat).
pub fn is_background_event(body: &Map<String, Value>) -> bool {
    match body.get("context") {
        Some(Value::Object(ctx)) => ctx.get("eventType").is_some_and(Value::is_string),
        _ => {
            body.get("eventType").is_some_and(Value::is_string)
                && body.get("eventId").is_some_and(Value::is_string)
        }
    }
}

/// Splits a resource name into the CloudEvent `source` path and `subject`, per service.
fn split_resource(service: &str, resource: &str) -> Result<(String, Option<String>), DecodeError> {
    let split_at = |kind: &str, marker: &str| -> Option<(String, Option<String>)> {
        crate::names::split_resource_name(resource, kind, marker)
            .map(|(prefix, rest)| (prefix.to_owned(), Some(format!("{marker}/{rest}"))))
    };
    let parts = match service {
        STORAGE_SERVICE => split_at("buckets", "objects"),
        FIRESTORE_SERVICE => split_at("databases", "documents"),
        _ => return Ok((resource.to_owned(), None)),
    };
    parts.ok_or_else(|| {
        DecodeError::new(format!(
            "the legacy event's resource {resource:?} is not a {service} resource name (projects/.../{})",
            if service == STORAGE_SERVICE {
                "buckets/<bucket>/objects/<name>"
            } else {
                "databases/<database>/documents/<path>"
            }
        ))
    })
}

/// Converts a legacy background event (nested or flat) to a CloudEvent.
pub fn to_cloud_event(body: &Map<String, Value>) -> Result<Event, DecodeError> {
    let context = match body.get("context") {
        Some(Value::Object(ctx)) => ctx,
        _ => body,
    };
    let text = |name: &str| context.get(name).and_then(Value::as_str);
    let event_type = text("eventType").unwrap_or_default();
    let ce_type = cloud_event_type(event_type).ok_or_else(|| {
        DecodeError::new(format!(
            "the legacy event type {event_type:?} has no CloudEvent equivalent that nube knows"
        ))
    })?;
    let event_id = text("eventId")
        .filter(|id| !id.is_empty())
        .ok_or_else(|| DecodeError::new("the legacy event has no eventId"))?;
    let (resource, declared_service) = match context.get("resource") {
        Some(Value::String(r)) => (r.clone(), None),
        Some(Value::Object(r)) => (
            r.get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            r.get("service")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty()),
        ),
        _ => (String::new(), None),
    };
    let service = declared_service
        .or_else(|| service_of_type(event_type))
        .ok_or_else(|| {
            DecodeError::new(format!(
                "cannot tell the service of the legacy event type {event_type:?}"
            ))
        })?;
    let (source_path, subject) = split_resource(service, &resource)?;
    let mut data = body.get("data").cloned().unwrap_or(Value::Null);
    if service == PUBSUB_SERVICE {
        let mut message = match data {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            other => {
                return Err(DecodeError::new(format!(
                    "the legacy Pub/Sub event's data is {other}, not a message object"
                )));
            }
        };
        // As the Functions Framework: filled from the envelope when missing or empty.
        let missing = |v: Option<&Value>| {
            v.is_none_or(|v| v.is_null() || v.as_str() == Some("") || v == &Value::Bool(false))
        };
        if missing(message.get("messageId")) {
            message.insert("messageId".into(), Value::from(event_id));
        }
        if missing(message.get("publishTime"))
            && let Some(ts) = text("timestamp")
        {
            message.insert("publishTime".into(), Value::from(ts));
        }
        data = json!({ "message": message });
    }
    let mut builder = EventBuilderV10::new()
        .id(event_id)
        .ty(ce_type)
        .source(format!("//{service}/{source_path}"))
        .data("application/json", data);
    if let Some(subject) = subject {
        builder = builder.subject(subject);
    }
    if let Some(ts) = text("timestamp") {
        builder = builder.time(ts);
    }
    builder.build().map_err(|e| {
        DecodeError::new(format!(
            "the legacy event cannot be converted to a CloudEvent: {e}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudevents::AttributesReader;

    fn object(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn nested_storage() {
        let e = to_cloud_event(&object(json!({
            "context": {
                "eventId": "1147091835525187", "timestamp": "2020-04-23T07:38:57.772Z",
                "eventType": "google.storage.object.finalize",
                "resource": {"service": "storage.googleapis.com",
                    "name": "projects/_/buckets/some-bucket/objects/folder/Test.cs",
                    "type": "storage#object"}
            },
            "data": {"bucket": "some-bucket", "name": "folder/Test.cs"}
        })))
        .unwrap();
        assert_eq!(e.ty(), "google.cloud.storage.object.v1.finalized");
        assert_eq!(
            e.source(),
            "//storage.googleapis.com/projects/_/buckets/some-bucket"
        );
        assert_eq!(e.subject(), Some("objects/folder/Test.cs"));
        assert_eq!(e.id(), "1147091835525187");
        assert!(e.time().is_some());
    }

    #[test]
    fn flat_firestore_and_pubsub() {
        let e = to_cloud_event(&object(json!({
            "eventId": "7b8f1804-d38b-4b68-b37d-e2fb5d12d5a0-0",
            "timestamp": "2020-09-29T11:32:00.000Z",
            "eventType": "providers/cloud.firestore/eventTypes/document.write",
            "resource": "projects/project-id/databases/(default)/documents/gcf-test/2Vm2mI1d0wIaK2Waj5to",
            "params": {"doc": "2Vm2mI1d0wIaK2Waj5to"},
            "data": {"value": {}}
        })))
        .unwrap();
        assert_eq!(e.ty(), "google.cloud.firestore.document.v1.written");
        assert_eq!(
            e.source(),
            "//firestore.googleapis.com/projects/project-id/databases/(default)"
        );
        assert_eq!(e.subject(), Some("documents/gcf-test/2Vm2mI1d0wIaK2Waj5to"));

        let p = to_cloud_event(&object(json!({
            "eventId": "aaaaaa-1111-bbbb-2222-cccccccccccc",
            "timestamp": "2020-09-29T11:32:00.000Z",
            "eventType": "providers/cloud.pubsub/eventTypes/topic.publish",
            "resource": "projects/sample-project/topics/gcf-test",
            "data": {"@type": "type.googleapis.com/google.pubsub.v1.PubsubMessage",
                     "attributes": {"attribute1": "value1"}, "data": "VGhpcyBpcyBhIHNhbXBsZSBtZXNzYWdl"}
        })))
        .unwrap();
        assert_eq!(p.ty(), "google.cloud.pubsub.topic.v1.messagePublished");
        assert_eq!(
            p.source(),
            "//pubsub.googleapis.com/projects/sample-project/topics/gcf-test"
        );
        let data = crate::cloudevent::data_json(&p).unwrap();
        assert_eq!(
            data["message"]["messageId"],
            "aaaaaa-1111-bbbb-2222-cccccccccccc"
        );
        assert_eq!(data["message"]["publishTime"], "2020-09-29T11:32:00.000Z");
        assert_eq!(data["message"]["attributes"]["attribute1"], "value1");

        // The message's own id and time stay; no `@type` is added.
        let own = to_cloud_event(&object(json!({
            "eventId": "envelope-id",
            "timestamp": "2020-09-29T11:32:00.000Z",
            "eventType": "google.pubsub.topic.publish",
            "resource": "projects/sample-project/topics/gcf-test",
            "data": {"messageId": "message-id", "publishTime": "2020-09-29T11:31:59.000Z", "data": ""}
        })))
        .unwrap();
        let data = crate::cloudevent::data_json(&own).unwrap();
        assert_eq!(data["message"]["messageId"], "message-id");
        assert_eq!(data["message"]["publishTime"], "2020-09-29T11:31:59.000Z");
        assert!(data["message"].get("@type").is_none(), "{data}");
    }

    #[test]
    fn unknown_types_and_resources_are_refused() {
        let e = to_cloud_event(&object(json!({
            "eventId": "1", "eventType": "com.example.thing", "resource": "x", "data": {}
        })))
        .unwrap_err();
        assert!(e.0.contains("com.example.thing"), "{e}");
        let e = to_cloud_event(&object(json!({
            "eventId": "1", "eventType": "google.storage.object.finalize",
            "resource": "buckets/b", "data": {}
        })))
        .unwrap_err();
        assert!(e.0.contains("not a storage.googleapis.com resource"), "{e}");
        // Read by position: a bucket named `objects` is a bucket.
        assert_eq!(
            split_resource(
                STORAGE_SERVICE,
                "projects/_/buckets/objects/objects/a/b.txt"
            )
            .unwrap(),
            (
                "projects/_/buckets/objects".to_owned(),
                Some("objects/a/b.txt".to_owned())
            )
        );
        assert_eq!(
            split_resource(
                FIRESTORE_SERVICE,
                "projects/p/databases/documents/documents/o/1"
            )
            .unwrap()
            .1
            .as_deref(),
            Some("documents/o/1")
        );
        assert!(split_resource(STORAGE_SERVICE, "projects/_/buckets/b/objects/").is_err());
        assert!(!is_background_event(&object(json!({"eventType": "x"}))));
        assert!(is_background_event(&object(
            json!({"context": {"eventType": "x"}})
        )));
    }
}
