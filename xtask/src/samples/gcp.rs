//! What Cloud Run delivers to the service: the HTTP request itself, Cloud Scheduler's
//! HTTP-target `POST`, and Eventarc's CloudEvents in binary content mode (storage
//! `finalized` with JSON data, Firestore `created` with protobuf data).

use nube::manifest::{FunctionManifest, Manifest};
use nube_gcp::firestore::proto;
use prost::Message;
use serde_json::{Map, Value, json};

use super::{HttpRequest, Native, Object, PROJECT, REGION_GCP, Sample, TIME, percent_encode};

/// The trace Cloud Run's front end starts for every sample.
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// An HTTP request as Cloud Run's front end passes it on.
pub(super) fn http(request: HttpRequest) -> Sample {
    let mut headers = vec![(
        "host".to_owned(),
        "delivery-app-3xk2q5vvca-ew.a.run.app".to_owned(),
    )];
    headers.extend(request.headers);
    headers.extend([
        ("traceparent".to_owned(), TRACEPARENT.to_owned()),
        (
            "x-cloud-trace-context".to_owned(),
            "4bf92f3577b34da6a3ce929d0e0e4736/67667974448284343;o=1".to_owned(),
        ),
        ("x-forwarded-for".to_owned(), "198.51.100.23".to_owned()),
        ("x-forwarded-proto".to_owned(), "https".to_owned()),
    ]);
    Sample {
        title: "HTTP request through Cloud Run's front end".into(),
        native: Native::Http(HttpRequest { headers, ..request }),
    }
}

/// Cloud Scheduler's HTTP target: a `POST` to `/{function}` naming the job and the
/// run's scheduled time.
pub(super) fn timer(manifest: &Manifest, function: &FunctionManifest) -> Sample {
    let job = format!(
        "projects/{PROJECT}/locations/{REGION_GCP}/jobs/{}-{}",
        manifest.app, function.name
    );
    Sample {
        title: "Cloud Scheduler job run (HTTP target)".into(),
        native: Native::Http(HttpRequest {
            method: "POST".into(),
            path_and_query: format!("/{}", function.name),
            headers: vec![
                ("host".into(), "delivery-app-3xk2q5vvca-ew.a.run.app".into()),
                ("user-agent".into(), "Google-Cloud-Scheduler".into()),
                ("x-cloudscheduler".into(), "true".into()),
                (nube_gcp::scheduler::JOB_NAME_HEADER.into(), job),
                (
                    nube_gcp::scheduler::SCHEDULE_TIME_HEADER.into(),
                    TIME.into(),
                ),
                (
                    "authorization".into(),
                    "Bearer <OIDC token of the job's service account>".into(),
                ),
                ("traceparent".into(), TRACEPARENT.into()),
            ],
            body: Vec::new(),
        }),
    }
}

/// Eventarc's `google.cloud.storage.object.v1.finalized` for an object in `bucket`.
pub(super) fn blob(function: &FunctionManifest, bucket: &str, object: &Object) -> Sample {
    let generation = "1795399200000000";
    let data = json!({
        "kind": "storage#object",
        "id": format!("{bucket}/{}/{generation}", object.key),
        "selfLink": format!(
            "https://www.googleapis.com/storage/v1/b/{bucket}/o/{}",
            percent_encode(&object.key, "%20").replace('/', "%2F")
        ),
        "name": object.key,
        "bucket": bucket,
        "generation": generation,
        "metageneration": "1",
        "contentType": object.content_type,
        "timeCreated": "2026-11-23T02:00:00.000Z",
        "updated": "2026-11-23T02:00:00.000Z",
        "storageClass": "STANDARD",
        "timeStorageClassUpdated": "2026-11-23T02:00:00.000Z",
        "size": object.size.to_string(),
        "md5Hash": object.md5_base64,
        "crc32c": "yZRlqg==",
        "etag": "CIDq8+mG8YkDEAE="
    });
    let attributes = [
        ("id", "9461529374105238".to_owned()),
        (
            "source",
            format!("//storage.googleapis.com/projects/_/buckets/{bucket}"),
        ),
        (
            "type",
            "google.cloud.storage.object.v1.finalized".to_owned(),
        ),
        ("subject", format!("objects/{}", object.key)),
        ("time", "2026-11-23T02:00:00.000Z".to_owned()),
    ];
    Sample {
        title: "Eventarc CloudEvent google.cloud.storage.object.v1.finalized (binary mode)".into(),
        native: Native::Http(binary_mode(
            function,
            &attributes,
            "application/json",
            serde_json::to_vec_pretty(&data).expect("JSON serialises"),
        )),
    }
}

/// Eventarc's `google.cloud.firestore.document.v1.created` for a document created at
/// `collection` (its path), with `DocumentEventData` in protobuf.
pub(super) fn document(
    function: &FunctionManifest,
    collection: &str,
    (id, document): &(String, Value),
) -> Result<Sample, String> {
    let path = format!("{collection}/{id}");
    let fields: Map<String, Value> = document
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), firestore_value(v)))
                .collect()
        })
        .unwrap_or_default();
    let rest = json!({
        "name": format!("projects/{PROJECT}/databases/(default)/documents/{path}"),
        "fields": fields,
        "createTime": "2026-11-23T02:00:00.000000Z",
        "updateTime": "2026-11-23T02:00:00.000000Z"
    });
    let value = nube_gcp::firestore::document_from_json(&rest).map_err(|e| e.to_string())?;
    let data = proto::DocumentEventData {
        value: Some(value),
        old_value: None,
        update_mask: None,
    }
    .encode_to_vec();
    let attributes = [
        ("id", "7b3c2e0a-1f4d-4c5e-9a8b-0c1d2e3f4a5b".to_owned()),
        ("source", format!("//firestore.googleapis.com/projects/{PROJECT}/databases/(default)")),
        ("type", "google.cloud.firestore.document.v1.created".to_owned()),
        ("subject", format!("documents/{path}")),
        ("time", "2026-11-23T02:00:00.000000Z".to_owned()),
        ("dataschema", "https://github.com/googleapis/google-cloudevents/blob/main/proto/google/events/cloud/firestore/v1/data.proto".to_owned()),
        ("location", REGION_GCP.to_owned()),
        ("project", PROJECT.to_owned()),
        ("database", "(default)".to_owned()),
        ("namespace", "(default)".to_owned()),
        ("document", path),
    ];
    Ok(Sample {
        title: "Eventarc CloudEvent google.cloud.firestore.document.v1.created (binary mode, protobuf data)".into(),
        native: Native::Http(binary_mode(
            function,
            &attributes,
            nube_gcp::firestore::PROTOBUF_CONTENT_TYPE,
            data,
        )),
    })
}

/// A CloudEvent in binary content mode, as Eventarc pushes it to `/{function}`: the
/// attributes in `ce-*` headers, the data as the body.
fn binary_mode(
    function: &FunctionManifest,
    attributes: &[(&str, String)],
    content_type: &str,
    data: Vec<u8>,
) -> HttpRequest {
    let mut headers = vec![
        (
            "host".to_owned(),
            "delivery-app-3xk2q5vvca-ew.a.run.app".to_owned(),
        ),
        ("content-type".to_owned(), content_type.to_owned()),
        ("ce-specversion".to_owned(), "1.0".to_owned()),
    ];
    headers.extend(
        attributes
            .iter()
            .map(|(n, v)| (format!("ce-{n}"), v.clone())),
    );
    headers.extend([
        (
            "authorization".to_owned(),
            "Bearer <OIDC token of the trigger's service account>".to_owned(),
        ),
        ("traceparent".to_owned(), TRACEPARENT.to_owned()),
        (
            "user-agent".to_owned(),
            "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)".to_owned(),
        ),
    ]);
    HttpRequest {
        method: "POST".into(),
        path_and_query: format!("/{}", function.name),
        headers,
        body: data,
    }
}

/// `value` as a Firestore REST `Value` (`{"stringValue": ...}`, `{"integerValue": "2"}`, ...).
fn firestore_value(value: &Value) -> Value {
    match value {
        Value::Null => json!({"nullValue": null}),
        Value::Bool(b) => json!({"booleanValue": b}),
        Value::Number(n) if n.is_i64() || n.is_u64() => json!({"integerValue": n.to_string()}),
        Value::Number(n) => json!({"doubleValue": n.as_f64()}),
        Value::String(s) => json!({"stringValue": s}),
        Value::Array(items) => {
            json!({"arrayValue": {"values": items.iter().map(firestore_value).collect::<Vec<_>>()}})
        }
        Value::Object(fields) => json!({"mapValue": {"fields": fields
            .iter()
            .map(|(k, v)| (k.clone(), firestore_value(v)))
            .collect::<Map<_, _>>()}}),
    }
}
