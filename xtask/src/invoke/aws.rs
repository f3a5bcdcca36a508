//! `--target aws`: the app's Lambda `bootstrap` (`_HANDLER` = the function) polling
//! cargo-lambda's Runtime API emulator, its tables and buckets in moto, as
//! `examples/delivery-app/tests/aws_e2e.rs` runs them (the launchers are that test's).
//! The event is POSTed to the emulator's Invoke API; its answer is Lambda's.

#[allow(missing_docs)]
#[path = "../../../adapters/aws/tests/lambda_emulator/mod.rs"]
mod lambda_emulator;
#[allow(missing_docs)]
#[path = "../../../adapters/aws/tests/moto/mod.rs"]
mod moto;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use nube::manifest::{Manifest, TriggerManifest};
use nube_aws::names::{bucket_env_var, table_env_var};
use serde_json::{Value, json};

use super::{Exchange, Invocation, Process, launch, print_json, wire};
use crate::samples::HttpRequest;
use crate::tools;
use lambda_emulator::Emulator;
use moto::{ACCESS_KEY, Moto, REGION, SECRET_KEY};

/// `NUBE_TABLE_*` and `NUBE_BUCKET_*` (what the SAM template gives every function):
/// `<app>-<logical>`.
pub(super) fn names(manifest: &Manifest) -> BTreeMap<String, String> {
    let physical = |logical: &str| format!("{}-{logical}", manifest.app);
    let mut names = BTreeMap::new();
    for collection in &manifest.collections {
        names.insert(table_env_var(collection), physical(collection));
    }
    for bucket in &manifest.buckets {
        names.insert(bucket_env_var(bucket), physical(bucket));
    }
    names
}

/// Runs the invocation of `event` through cargo-lambda's emulator.
pub(super) fn invoke(invocation: &Invocation, event: &Value) -> Result<Exchange, String> {
    let manifest = invocation.manifest;
    let function = &invocation.function.name;
    let venv = tools::ensure_python_tools()?;
    let program = tools::cargo_lambda(&venv).to_string_lossy().into_owned();
    let functions = vec![function.clone()];
    let emulator = launch("cargo-lambda's Lambda emulator", || {
        Emulator::start_program(&program, &functions)
    })?;
    let moto = if manifest.collections.is_empty() && manifest.buckets.is_empty() {
        None
    } else {
        let program = tools::moto_server(&venv).to_string_lossy().into_owned();
        let moto = launch("moto", || Moto::start_program(&program))?;
        create_resources(&moto, invocation)?;
        Some(moto)
    };

    let mut command = Command::new(invocation.build.executable());
    for var in [
        "FUNCTIONS_CUSTOMHANDLER_PORT",
        "FUNCTIONS_HTTPWORKER_PORT",
        "K_SERVICE",
        "NUBE_TARGET",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL_DYNAMODB",
    ] {
        command.env_remove(var);
    }
    command
        .env("AWS_LAMBDA_RUNTIME_API", emulator.runtime_api(function))
        .env("_HANDLER", function)
        .env("AWS_LAMBDA_FUNCTION_NAME", function)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", REGION)
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .envs(invocation.names);
    if let Some(moto) = &moto {
        command.env("AWS_ENDPOINT_URL", moto.endpoint());
    }
    let mut process = Process::start(&format!("{function} (Lambda bootstrap)"), &mut command)?;

    print_json(
        &format!("request: the event, POSTed to cargo-lambda's Invoke API for {function}"),
        event,
    );
    let request = HttpRequest {
        method: "POST".into(),
        path_and_query: format!("/2015-03-31/functions/{function}/invocations"),
        headers: vec![("content-type".into(), "application/json".into())],
        body: serde_json::to_vec(event).unwrap_or_default(),
    };
    let patience = Duration::from_secs_f64(invocation.function.timeout_seconds + 30.0);
    let response = match wire::send(emulator.port(), &request, patience) {
        Ok(r) => r,
        Err(e) => {
            process.print_log();
            eprintln!("---- cargo-lambda's log ----\n{}", emulator.log_text());
            process.check_alive()?;
            return Err(e);
        }
    };
    let answer: Value = serde_json::from_slice(&response.body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&response.body).into_owned()));
    print_json(
        &format!(
            "response: the Invoke API answered {} {}",
            response.status, response.reason
        ),
        &answer,
    );
    process.print_log();
    let is_http = matches!(invocation.function.trigger, TriggerManifest::Http { .. });
    let http_failed = is_http
        && answer["statusCode"]
            .as_u64()
            .is_some_and(|status| status >= 500);
    // A stream or queue batch whose items failed comes back as 200 with them listed.
    let batch_failed = answer["batchItemFailures"]
        .as_array()
        .is_some_and(|failures| !failures.is_empty());
    let failed = response.status != 200 || http_failed || batch_failed;
    if response.status != 200 && answer.get("errorType").is_none() {
        eprintln!("---- cargo-lambda's log ----\n{}", emulator.log_text());
    }
    Ok(Exchange {
        failed,
        status: response.status,
        body: response.body,
    })
}

/// What a deployment creates: one table per collection (key `id`, stream `NEW_IMAGE`,
/// as `nube_aws::dynamodb::DynamoDbStore::ensure_table` makes them) and one bucket per
/// bucket, named as [`names`] says.
fn create_resources(moto: &Moto, invocation: &Invocation) -> Result<(), String> {
    for collection in &invocation.manifest.collections {
        let table = &invocation.names[&table_env_var(collection)];
        let body = json!({
            "TableName": table,
            "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "BillingMode": "PAY_PER_REQUEST",
            "StreamSpecification": {"StreamEnabled": true, "StreamViewType": "NEW_IMAGE"},
        });
        let (status, text) = dynamodb_call(moto, "CreateTable", &body)
            .map_err(|e| format!("moto did not answer CreateTable {table}: {e}"))?;
        if status != 200 {
            return Err(format!(
                "moto did not create table {table} ({status}): {text}"
            ));
        }
    }
    for bucket in &invocation.manifest.buckets {
        let physical = &invocation.names[&bucket_env_var(bucket)];
        match moto.request("PUT", &format!("/{physical}")) {
            Ok(200) => {}
            Ok(status) => return Err(format!("moto did not create bucket {physical} ({status})")),
            Err(e) => return Err(format!("moto did not answer CreateBucket {physical}: {e}")),
        }
    }
    Ok(())
}

/// One DynamoDB JSON call to moto (which checks no signature: the Authorization header
/// only names the service and region).
fn dynamodb_call(moto: &Moto, action: &str, body: &Value) -> std::io::Result<(u16, String)> {
    let endpoint = moto.endpoint();
    let address = endpoint.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.to_string();
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: {address}\r\nX-Amz-Target: DynamoDB_20120810.{action}\r\n\
         Content-Type: application/x-amz-json-1.0\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20260101/{REGION}/dynamodb/aws4_request, \
         SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let response = wire::parse_response(&raw).map_err(std::io::Error::other)?;
    Ok((
        response.status,
        String::from_utf8_lossy(&response.body).into_owned(),
    ))
}
