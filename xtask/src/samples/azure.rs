//! Azure Functions' invocations of a custom handler: forwarded HTTP requests, and
//! `POST /{function}` with `{Data, Metadata}` for timer, blob and Cosmos DB triggers.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use nube::manifest::FunctionManifest;
use serde_json::{Value, json};

use super::{HttpRequest, Native, Object, Sample, VERSION, percent_encode};

/// The storage account every sample names.
const ACCOUNT: &str = "nubeapp";

/// A request to an HTTP function, as the host forwards it (`enableForwardingHttpRequest`):
/// the original request on its `/api/...` path.
pub(super) fn http(request: HttpRequest) -> Sample {
    let mut headers = vec![("host".to_owned(), format!("{ACCOUNT}.azurewebsites.net"))];
    headers.extend(request.headers);
    headers.push(("x-forwarded-proto".into(), "https".into()));
    Sample {
        title: "HTTP request forwarded by the Functions host (enableForwardingHttpRequest)".into(),
        native: Native::Http(HttpRequest {
            path_and_query: format!(
                "/{}{}",
                nube_azure::descriptors::ROUTE_PREFIX,
                request.path_and_query
            ),
            headers,
            ..request
        }),
    }
}

/// A timerTrigger invocation.
pub(super) fn timer(function: &FunctionManifest, schedule: &str) -> Result<Sample, String> {
    let ncrontab = nube::Schedule::parse(schedule)
        .and_then(|s| s.to_azure())
        .map_err(|e| format!("timer function {:?}: {e}", function.name))?;
    let timer = json!({
        "Schedule": {"AdjustForDST": true},
        "ScheduleStatus": {
            "Last": "2026-11-22T02:00:00+00:00",
            "Next": "2026-11-23T02:00:00+00:00",
            "LastUpdated": "2026-11-22T02:00:00.0123456+00:00"
        },
        "IsPastDue": false
    });
    let body = invocation(
        function,
        json!({"timer": timer.to_string()}),
        json!({}),
        "9f0b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d",
    )?;
    Ok(Sample {
        title: format!("timerTrigger invocation (schedule {ncrontab})"),
        native: Native::Http(body),
    })
}

/// A blobTrigger invocation for an object created in `container`.
pub(super) fn blob(
    function: &FunctionManifest,
    container: &str,
    object: &Object,
) -> Result<Sample, String> {
    let properties = json!({
        "ContentLength": object.size,
        "ContentType": object.content_type,
        "ETag": "\"0x8DD0A1B2C3D4E5F\"",
        "ContentMD5": object.md5_base64,
        "LastModified": "2026-11-23T02:00:00+00:00",
        "CreatedOn": "2026-11-23T02:00:00+00:00"
    });
    let name = object
        .key
        .rsplit_once('/')
        .map_or(object.key.as_str(), |(_, n)| n);
    let body = invocation(
        function,
        json!({"blob": BASE64.encode(object.content)}),
        json!({
            "name": name,
            "Uri": format!(
                "https://{ACCOUNT}.blob.core.windows.net/{container}/{}",
                percent_encode(&object.key, "%20")
            ),
            "Properties": properties.to_string(),
            "Metadata": {}
        }),
        "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d",
    )?;
    Ok(Sample {
        title: "blobTrigger invocation (dataType binary: the content inline, base64)".into(),
        native: Native::Http(body),
    })
}

/// A cosmosDBTrigger invocation with the change feed's batch of one created document:
/// the fields nube's Cosmos DB store writes (`_nube_version` equal to `_nube_created`
/// marks a create) and Cosmos DB's own (`_rid`, `_etag`, `_ts`, `_lsn`).
pub(super) fn document(
    function: &FunctionManifest,
    (_, document): &(String, Value),
) -> Result<Sample, String> {
    let mut stored = document.clone();
    stored["_nube_version"] = VERSION.into();
    stored["_nube_created"] = VERSION.into();
    stored["_rid"] = "Wq1zAKc3Q2sBAAAAAAAAAA==".into();
    stored["_self"] = "dbs/Wq1zAA==/colls/Wq1zAKc3Q2s=/docs/Wq1zAKc3Q2sBAAAAAAAAAA==/".into();
    stored["_etag"] = "\"0a00c1d2-0000-0d00-0000-674137200000\"".into();
    stored["_attachments"] = "attachments/".into();
    stored["_ts"] = 1_795_399_200.into();
    stored["_lsn"] = 7.into();
    let body = invocation(
        function,
        json!({"documents": Value::Array(vec![stored]).to_string()}),
        json!({}),
        "2c3d4e5f-6071-4829-93a4-b5c6d7e8f90a",
    )?;
    Ok(Sample {
        title: "cosmosDBTrigger invocation (a change-feed batch, as a JSON string)".into(),
        native: Native::Http(body),
    })
}

/// `POST /{AzureFunctionName}` with `{Data, Metadata}`, as the host sends it to a
/// custom handler; `metadata` gets the host's `sys` entry.
fn invocation(
    function: &FunctionManifest,
    data: Value,
    mut metadata: Value,
    guid: &str,
) -> Result<HttpRequest, String> {
    let name = nube_azure::names::azure_function_name(&function.name)?;
    metadata["sys"] = json!({
        "MethodName": name,
        "UtcNow": "2026-11-23T02:00:00.0123456Z",
        "RandGuid": guid
    });
    let body = json!({"Data": data, "Metadata": metadata});
    Ok(HttpRequest {
        method: "POST".into(),
        path_and_query: format!("/{name}"),
        headers: vec![
            ("host".into(), "127.0.0.1".into()),
            (
                "content-type".into(),
                "application/json; charset=utf-8".into(),
            ),
            ("user-agent".into(), "Azure-Functions-Host/4".into()),
        ],
        body: serde_json::to_vec_pretty(&body).expect("JSON serialises"),
    })
}
