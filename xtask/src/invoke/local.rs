//! `--target local`: the local runtime with its embedded stores in a fresh data folder;
//! HTTP functions get the request, event functions are fired through the admin endpoint
//! `POST /_nube/functions/{name}`.

use std::process::Command;

use nube::manifest::{FunctionManifest, TriggerManifest};
use serde_json::{Value, json};

use super::{Exchange, Invocation, Process, exchange_http};
use crate::samples::{HttpRequest, Native};

/// Runs the invocation of `request` on the local runtime.
pub(super) fn invoke(invocation: &Invocation, request: &HttpRequest) -> Result<Exchange, String> {
    let data = tempfile::Builder::new()
        .prefix("nube-invoke-data-")
        .tempdir()
        .map_err(|e| format!("cannot create a data folder: {e}"))?;
    let port = crate::bench::free_port();
    let mut process = Process::start(
        &format!("{} (local runtime)", invocation.manifest.app),
        Command::new(invocation.build.executable())
            .env_remove("AWS_LAMBDA_RUNTIME_API")
            .env_remove("FUNCTIONS_CUSTOMHANDLER_PORT")
            .env_remove("K_SERVICE")
            .env("NUBE_TARGET", "local")
            .env("PORT", port.to_string())
            .env("NUBE_DATA_DIR", data.path())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1"),
    )?;
    process.wait_for_port(port)?;
    exchange_http(&mut process, port, invocation, request)
}

/// The admin endpoint's request firing `function` with `body`.
pub(super) fn admin_request(function: &FunctionManifest, body: &Value) -> Native {
    Native::Http(HttpRequest {
        method: "POST".into(),
        path_and_query: format!("/_nube/functions/{}", function.name),
        headers: vec![("content-type".into(), "application/json".into())],
        body: serde_json::to_vec(body).unwrap_or_default(),
    })
}

/// The admin endpoint's body for `function`'s sample: a timer takes none; a blob or
/// document function names an object (under its prefix) or a document.
pub(super) fn sample_body(function: &FunctionManifest) -> Value {
    match &function.trigger {
        TriggerManifest::BlobCreated { prefix, .. } => {
            json!({"key": format!("{prefix}sample.png")})
        }
        TriggerManifest::DocumentCreated { .. } => json!({"id": "sample"}),
        TriggerManifest::Http { .. } | TriggerManifest::Timer { .. } => json!({}),
    }
}
