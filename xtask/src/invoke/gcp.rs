//! `--target gcp`: the app's container server started as Cloud Run starts it, serving
//! the one function (`FUNCTION_TARGET`), its collections in the Cloud Firestore emulator
//! and its buckets in gcp-storage-emulator behind the XML API proxy, as
//! `examples/delivery-app/tests/gcp_e2e.rs` runs them (the launchers are that test's).

#[allow(missing_docs)]
#[path = "../../../adapters/gcp/tests/emulator/mod.rs"]
mod emulator;
#[allow(missing_docs)]
#[path = "../../../adapters/gcp/tests/gcs_xml_proxy/mod.rs"]
mod gcs_xml_proxy;

use std::collections::BTreeMap;
use std::process::Command;

use nube::manifest::Manifest;
use nube_gcp::names::{bucket_env_var, collection_env_var};

use super::{Exchange, Invocation, Process, exchange_http, launch};
use crate::samples::HttpRequest;
use crate::tools;
use emulator::Emulator;

/// The Google Cloud project the emulators keep the data under.
const PROJECT: &str = "nube-invoke";

/// The stand-in service account key that turns OAuth off in object_store (what
/// `nube_gcp::gcs` documents for emulators).
const EMULATOR_KEY: &str =
    r#"{"private_key": "", "private_key_id": "", "client_email": "", "disable_oauth": true}"#;

/// `NUBE_COLLECTION_*` (the logical names) and `NUBE_BUCKET_*`: `<app><bucket>` in
/// letters and digits only (gcp-storage-emulator matches bucket names in the raw path,
/// which object_store percent-encodes).
pub(super) fn names(manifest: &Manifest) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for collection in &manifest.collections {
        names.insert(collection_env_var(collection), collection.clone());
    }
    for bucket in &manifest.buckets {
        let physical: String = format!("{}{bucket}", manifest.app)
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        names.insert(bucket_env_var(bucket), physical);
    }
    names
}

/// Runs the invocation of `request` on the Cloud Run server.
pub(super) fn invoke(invocation: &Invocation, request: &HttpRequest) -> Result<Exchange, String> {
    let manifest = invocation.manifest;
    let mut env: BTreeMap<String, String> = invocation.names.clone();
    let mut stand_ins = Vec::new();
    if !manifest.collections.is_empty() {
        let program = tools::firestore_emulator().ok_or(
            "the app has collections and the Cloud Firestore emulator is missing: install Debian's \
             google-cloud-cli-firestore-emulator package (with Java 17+), or set NUBE_FIRESTORE_EMULATOR",
        )?;
        let program = program.to_string_lossy().into_owned();
        let firestore = launch("the Cloud Firestore emulator", || {
            Emulator::firestore_at(&program)
        })?;
        env.insert("GOOGLE_CLOUD_PROJECT".into(), PROJECT.into());
        env.insert("FIRESTORE_EMULATOR_HOST".into(), firestore.host());
        stand_ins.push(firestore);
    }
    if !manifest.buckets.is_empty() {
        let program = tools::gcs_emulator(&tools::ensure_python_tools()?);
        let program = program.to_string_lossy().into_owned();
        let gcs = launch("gcp-storage-emulator", || Emulator::gcs_at(&program))?;
        for bucket in &manifest.buckets {
            let physical = &invocation.names[&bucket_env_var(bucket)];
            let body = serde_json::json!({ "name": physical }).to_string();
            match gcs.request("POST", &format!("/storage/v1/b?project={PROJECT}"), &body) {
                Ok((200, _)) => {}
                Ok((status, text)) => {
                    return Err(format!(
                        "gcp-storage-emulator did not create bucket {physical} ({status}): {text}"
                    ));
                }
                Err(e) => return Err(format!("gcp-storage-emulator did not answer: {e}")),
            }
        }
        env.insert(
            "GOOGLE_BASE_URL".into(),
            gcs_xml_proxy::gcs_xml_proxy(gcs.port()),
        );
        env.insert("GOOGLE_SERVICE_ACCOUNT_KEY".into(), EMULATOR_KEY.into());
        stand_ins.push(gcs);
    }
    let port = crate::bench::free_port();
    let mut command = Command::new(invocation.build.executable());
    // Nothing from this shell's environment decides where the stores are.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("GOOGLE_") || name.starts_with("NUBE_") {
            command.env_remove(&*name);
        }
    }
    for var in [
        "AWS_LAMBDA_RUNTIME_API",
        "FUNCTIONS_CUSTOMHANDLER_PORT",
        "FUNCTIONS_HTTPWORKER_PORT",
    ] {
        command.env_remove(var);
    }
    command
        .env("PORT", port.to_string())
        .env("K_SERVICE", &manifest.app)
        .env("K_REVISION", format!("{}-00001-inv", manifest.app))
        .env("K_CONFIGURATION", &manifest.app)
        .env("FUNCTION_TARGET", &invocation.function.name)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .envs(&env);
    let mut process = Process::start(&format!("{} (Cloud Run)", manifest.app), &mut command)?;
    process.wait_for_port(port)?;
    let exchange = exchange_http(&mut process, port, invocation, request);
    drop(process);
    drop(stand_ins);
    exchange
}
