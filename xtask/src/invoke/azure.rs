//! `--target azure`: the app's custom handler in a function app laid out as `cargo xtask
//! package --target azure` lays it out, started as the Functions host starts it, this
//! command playing the host (as `examples/delivery-app/tests/azure_e2e.rs` does): HTTP
//! requests are forwarded as they came, events are POSTed to `/{AzureFunctionName}` as
//! `{Data, Metadata}`. Its collections live in the Cosmos DB emulator
//! (`@vercel/cosmosdb-server`, behind the tests' proxy for its gaps) and its buckets in
//! Azurite, started with the launchers the tests use.

#[allow(missing_docs)]
#[path = "../../../adapters/azure/tests/azurite/server.rs"]
mod azurite;
#[allow(missing_docs)]
#[path = "../../../adapters/azure/tests/cosmos_emulator/server.rs"]
mod cosmos_emulator;

use std::collections::BTreeMap;
use std::process::Command;

use nube::manifest::{FunctionManifest, Manifest, TriggerManifest};
use nube_azure::descriptors::{function_jsons, host_json, local_settings_json, split_names};
use nube_azure::http::DEFAULT_ROUTE_PREFIX;
use nube_azure::names::{
    COSMOS_CONNECTION, COSMOS_DATABASE_SETTING, STORAGE_CONNECTION, azure_function_name,
    bucket_setting, collection_setting,
};
use serde_json::Value;

use super::{Exchange, Invocation, Process, exchange_http, launch, wire};
use crate::samples::HttpRequest;
use crate::tools;
use azurite::Azurite;
use cosmos_emulator::CosmosEmulator;

/// Azurite's development account, which its launcher signs requests with (Microsoft's
/// well-known values, as `nube_azure::blob_store` has them behind its `blob` feature).
const DEVELOPMENT_ACCOUNT: &str = "devstoreaccount1";
/// The development account's key.
const DEVELOPMENT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The Functions host version this command claims to be, in the headers the host adds.
const HOST_VERSION: &str = "4.1037.0.0";

/// `NUBE_COLLECTION_*` and `NUBE_BUCKET_*` as `local.settings.json` has them (the
/// logical names).
pub(super) fn names(manifest: &Manifest) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for collection in &manifest.collections {
        names.insert(collection_setting(collection), collection.clone());
    }
    for bucket in &manifest.buckets {
        names.insert(bucket_setting(bucket), bucket.clone());
    }
    names
}

/// The Azure function an invocation of `function` goes to: its own name, or for an
/// HTTP function split by route, the first of its functions.
pub(super) fn first_azure_function(function: &FunctionManifest) -> Result<String, String> {
    match &function.trigger {
        TriggerManifest::Http { routes } => {
            let paths: Vec<&str> = routes.iter().map(|r| r.path.as_str()).collect();
            split_names(&function.name, &paths)
                .into_iter()
                .next()
                .ok_or_else(|| format!("{} has no Azure function", function.name))
        }
        _ => azure_function_name(&function.name),
    }
}

/// `path` as the host forwards it: under the route prefix nube's host.json keeps
/// (`/api`), added unless `path` has it already.
pub(super) fn forwarded_path(path: &str) -> String {
    let prefix = format!("/{DEFAULT_ROUTE_PREFIX}");
    let has_prefix = path
        .strip_prefix(&prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?']));
    if has_prefix {
        path.to_owned()
    } else {
        format!("{prefix}{path}")
    }
}

/// The host's invocation of the Azure function `name` with `payload` (`{Data, Metadata}`).
pub(super) fn invocation_request(name: &str, payload: &Value) -> HttpRequest {
    HttpRequest {
        method: "POST".into(),
        path_and_query: format!("/{name}"),
        headers: vec![("content-type".into(), "application/json".into())],
        body: serde_json::to_vec(payload).unwrap_or_default(),
    }
}

/// Runs the invocation of `request` on the custom handler.
pub(super) fn invoke(invocation: &Invocation, request: &HttpRequest) -> Result<Exchange, String> {
    let manifest = invocation.manifest;
    let mut request = request.clone();
    let mut app = FunctionApp::lay_out(invocation)?;
    let stores = Stores::start(invocation, &mut app.settings)?;
    let port = crate::bench::free_port();
    let mut command = Command::new(invocation.build.executable());
    // Only what the host gives a worker: its own variables and the app settings.
    command
        .current_dir(invocation.build.dir())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", invocation.build.dir())
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env(
            "FUNCTIONS_CUSTOMHANDLER_WORKER_ID",
            uuid::Uuid::new_v4().to_string(),
        )
        .env("FUNCTIONS_APP_ROOT_PATH", invocation.build.dir())
        .env("AzureWebJobsScriptRoot", invocation.build.dir())
        .env("FUNCTIONS_WORKER_RUNTIME", "Custom")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .envs(&app.settings);
    let mut process = Process::start(&format!("{} (custom handler)", manifest.app), &mut command)?;
    process.wait_for_port(port)?;
    for (name, value) in [
        (
            "x-azure-functions-invocationid",
            uuid::Uuid::new_v4().to_string(),
        ),
        ("x-azure-functions-hostversion", HOST_VERSION.to_owned()),
        ("user-agent", format!("Azure-Functions-Host/{HOST_VERSION}")),
    ] {
        if !request
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            request.headers.push((name.to_owned(), value));
        }
    }
    let exchange = exchange_http(&mut process, port, invocation, &request);
    drop(process);
    drop(stores);
    exchange
}

/// The stand-ins for the app's stores, stopped when dropped.
struct Stores {
    _cosmos: Option<CosmosEmulator>,
    _azurite: Option<Azurite>,
}

impl Stores {
    /// Starts what the app needs: the Cosmos DB emulator with the database and one
    /// container per collection (partition key `/id`), Azurite with one blob container
    /// per bucket (and for the host's own storage, which every non-HTTP trigger needs);
    /// adds their connection settings to `settings`.
    fn start(
        invocation: &Invocation,
        settings: &mut BTreeMap<String, String>,
    ) -> Result<Stores, String> {
        let manifest = invocation.manifest;
        let needs_storage = !manifest.buckets.is_empty()
            || manifest
                .functions
                .iter()
                .any(|f| !matches!(f.trigger, TriggerManifest::Http { .. }));
        if manifest.collections.is_empty() && !needs_storage {
            return Ok(Stores {
                _cosmos: None,
                _azurite: None,
            });
        }
        let npm = tools::ensure_npm_tools()?;
        let cosmos = if manifest.collections.is_empty() {
            None
        } else {
            let program = tools::cosmos_server(&npm).to_string_lossy().into_owned();
            let cosmos = launch("the Cosmos DB emulator", || {
                CosmosEmulator::start_program(&program)
            })?;
            let database = settings
                .get(COSMOS_DATABASE_SETTING)
                .cloned()
                .unwrap_or_else(|| manifest.app.clone());
            create_cosmos(
                &cosmos,
                &database,
                "dbs",
                serde_json::json!({"id": database}),
            )?;
            for collection in &manifest.collections {
                let container = &invocation.names[&collection_setting(collection)];
                create_cosmos(
                    &cosmos,
                    container,
                    &format!("dbs/{database}/colls"),
                    serde_json::json!({
                        "id": container,
                        "partitionKey": {"paths": ["/id"], "kind": "Hash"},
                    }),
                )?;
            }
            settings.insert(COSMOS_CONNECTION.into(), cosmos.connection_string());
            settings.insert(COSMOS_DATABASE_SETTING.into(), database);
            // The emulator speaks neither HTTP/2 nor Cosmos binary JSON: the SDK's own
            // settings.
            settings.insert(
                "AZURE_COSMOS_CONNECTION_POOL_IS_HTTP2_ALLOWED".into(),
                "false".into(),
            );
            settings.insert(
                "AZURE_COSMOS_BINARY_ENCODING_ENABLED".into(),
                "false".into(),
            );
            Some(cosmos)
        };
        let azurite = if needs_storage {
            let program = tools::azurite_blob(&npm).to_string_lossy().into_owned();
            let azurite = launch("Azurite", || Azurite::start_program(&program))?;
            for bucket in &manifest.buckets {
                let container = &invocation.names[&bucket_setting(bucket)];
                let status = launch(&format!("blob container {container}"), || {
                    azurite.create_container(container)
                })?;
                if status != 201 {
                    return Err(format!(
                        "Azurite did not create blob container {container} ({status})"
                    ));
                }
            }
            settings.insert(STORAGE_CONNECTION.into(), azurite.connection_string());
            Some(azurite)
        } else {
            None
        };
        Ok(Stores {
            _cosmos: cosmos,
            _azurite: azurite,
        })
    }
}

/// Creates a Cosmos DB resource (`POST /<path>` with `body`) on the emulator, which
/// checks no signature.
fn create_cosmos(
    cosmos: &CosmosEmulator,
    name: &str,
    path: &str,
    body: Value,
) -> Result<(), String> {
    let endpoint = cosmos.endpoint();
    let port: u16 = endpoint
        .trim_start_matches("http://127.0.0.1:")
        .trim_end_matches('/')
        .parse()
        .map_err(|_| format!("the Cosmos DB emulator's endpoint is {endpoint}"))?;
    let request = HttpRequest {
        method: "POST".into(),
        path_and_query: format!("/{path}"),
        headers: vec![("content-type".into(), "application/json".into())],
        body: serde_json::to_vec(&body).unwrap_or_default(),
    };
    let response = wire::send(port, &request, std::time::Duration::from_secs(30))?;
    if response.status == 201 {
        Ok(())
    } else {
        Err(format!(
            "the Cosmos DB emulator did not create {name} ({}): {}\n{}",
            response.status,
            String::from_utf8_lossy(&response.body),
            cosmos.diagnostics()
        ))
    }
}

/// The function app folder (the build's scratch folder): host.json and one
/// `<function>/function.json` per Azure function, beside the executable.
struct FunctionApp {
    /// The app settings the host passes to the worker (local.settings.json's `Values`).
    settings: BTreeMap<String, String>,
}

impl FunctionApp {
    fn lay_out(invocation: &Invocation) -> Result<FunctionApp, String> {
        let manifest = invocation.manifest;
        let dir = invocation.build.dir();
        let write = |path: std::path::PathBuf, value: &Value| {
            std::fs::write(&path, serde_json::to_vec_pretty(value).unwrap_or_default())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))
        };
        write(
            dir.join("host.json"),
            &host_json(manifest, invocation.build.file_name()),
        )?;
        let functions = function_jsons(manifest).map_err(|e| e.to_string())?;
        for (name, descriptor) in &functions {
            std::fs::create_dir_all(dir.join(name))
                .map_err(|e| format!("cannot create {}: {e}", dir.join(name).display()))?;
            write(dir.join(name).join("function.json"), descriptor)?;
        }
        let settings = local_settings_json(manifest)["Values"]
            .as_object()
            .map(|values| {
                values
                    .iter()
                    .filter(|(k, _)| *k != COSMOS_CONNECTION && *k != STORAGE_CONNECTION)
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        Ok(FunctionApp { settings })
    }
}
