//! AWS Lambda's events: API Gateway HTTP API (payload 2.0), EventBridge Scheduler's
//! scheduled event, S3 event notifications, DynamoDB Streams records.

use nube::http::Route;
use nube::manifest::{FunctionManifest, Manifest};
use serde_json::{Map, Value, json};

use super::{
    ACCOUNT, HttpRequest, Native, Object, REGION_AWS, Sample, TIME, TIME_MS, VERSION,
    percent_encode,
};

/// The request as API Gateway's HTTP API hands it to a Lambda integration.
pub(super) fn http(request: &HttpRequest, route: &Route) -> Sample {
    let host = "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com";
    let (path, query) = request
        .path_and_query
        .split_once('?')
        .unwrap_or((&request.path_and_query, ""));
    let mut headers = Map::new();
    headers.insert("host".into(), host.into());
    for (name, value) in &request.headers {
        headers.insert(name.clone(), value.as_str().into());
    }
    headers.insert("x-forwarded-proto".into(), "https".into());
    let route_key = format!("{} {}", route.method, route.path);
    let parameters: Map<String, Value> = route
        .path
        .split('/')
        .zip(path.split('/'))
        .filter_map(|(template, actual)| {
            let name = template.strip_prefix('{')?.strip_suffix('}')?;
            Some((name.trim_end_matches('+').to_owned(), Value::from(actual)))
        })
        .collect();
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "a1b2c3d4e5",
            "domainName": host,
            "domainPrefix": "a1b2c3d4e5",
            "http": {
                "method": request.method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "198.51.100.23",
                "userAgent": "curl/8.5.0"
            },
            "requestId": "Jq3xLhnWDoEEJ4g=",
            "routeKey": route_key,
            "stage": "$default",
            "time": "23/Nov/2026:02:00:00 +0000",
            "timeEpoch": TIME_MS
        },
        "isBase64Encoded": false
    });
    if !parameters.is_empty() {
        event["pathParameters"] = Value::Object(parameters);
    }
    if !request.body.is_empty() {
        event["body"] = String::from_utf8_lossy(&request.body).into();
    }
    Sample {
        title: "API Gateway HTTP API request (payload format 2.0)".into(),
        native: Native::Lambda(event),
    }
}

/// The event an EventBridge schedule rule sends.
pub(super) fn timer(manifest: &Manifest, function: &FunctionManifest) -> Sample {
    Sample {
        title: "EventBridge scheduled event".into(),
        native: Native::Lambda(json!({
            "version": "0",
            "id": "0d8a4e2f-5b1c-4f8e-9a3d-7c6b5a4e3d21",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": ACCOUNT,
            "time": TIME,
            "region": REGION_AWS,
            "resources": [format!(
                "arn:aws:events:{REGION_AWS}:{ACCOUNT}:rule/{}-{}",
                manifest.app, function.name
            )],
            "detail": {}
        })),
    }
}

/// An S3 event notification of one object created in `bucket`.
pub(super) fn blob(bucket: &str, object: &Object) -> Sample {
    Sample {
        title: "S3 event notification (s3:ObjectCreated:Put)".into(),
        native: Native::Lambda(json!({
            "Records": [{
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": REGION_AWS,
                "eventTime": "2026-11-23T02:00:00.000Z",
                "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": "AWS:AIDAJDPLRKLG7UEXAMPLE"},
                "requestParameters": {"sourceIPAddress": "198.51.100.23"},
                "responseElements": {
                    "x-amz-request-id": "C3D13FE58DE4C810",
                    "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"
                },
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "nube-blob-created",
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                        "arn": format!("arn:aws:s3:::{bucket}")
                    },
                    "object": {
                        "key": percent_encode(&object.key, "+"),
                        "size": object.size,
                        "eTag": object.md5_hex,
                        "sequencer": "0066A1B2C3D4E5F601"
                    }
                }
            }]
        })),
    }
}

/// A DynamoDB Streams batch of one INSERT into `table` (stream view `NEW_IMAGE`).
pub(super) fn document(table: &str, (id, document): &(String, Value)) -> Sample {
    let mut image = match attribute(document) {
        Value::Object(mut m) => m.remove("M").unwrap_or_default(),
        other => other,
    };
    image["_nube_version"] = json!({"S": VERSION});
    Sample {
        title: "DynamoDB Streams record (INSERT), as the event source mapping batches it".into(),
        native: Native::Lambda(json!({
            "Records": [{
                "eventID": "c81e728d9d4c2f636f067f89cc14862c",
                "eventName": "INSERT",
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": REGION_AWS,
                "dynamodb": {
                    "ApproximateCreationDateTime": TIME_MS / 1000,
                    "Keys": {"id": {"S": id}},
                    "NewImage": image,
                    "SequenceNumber": "111100000000012345678901",
                    "SizeBytes": 142,
                    "StreamViewType": "NEW_IMAGE"
                },
                "eventSourceARN": format!(
                    "arn:aws:dynamodb:{REGION_AWS}:{ACCOUNT}:table/{table}/stream/2026-11-01T00:00:00.000"
                )
            }]
        })),
    }
}

/// `value` in DynamoDB's JSON (`{"S": ...}`, `{"N": "..."}`, `{"M": {...}}`, ...).
fn attribute(value: &Value) -> Value {
    match value {
        Value::Null => json!({"NULL": true}),
        Value::Bool(b) => json!({"BOOL": b}),
        Value::Number(n) => json!({"N": n.to_string()}),
        Value::String(s) => json!({"S": s}),
        Value::Array(items) => json!({"L": items.iter().map(attribute).collect::<Vec<_>>()}),
        Value::Object(fields) => json!({"M": fields
            .iter()
            .map(|(k, v)| (k.clone(), attribute(v)))
            .collect::<Map<_, _>>()}),
    }
}
