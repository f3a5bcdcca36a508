//! The delivery app on Azure Functions, end to end, with the test playing the Functions
//! host (which cannot run here) and everything else real: the custom handler is this
//! package's binary (built with the `azure` feature) in a function app laid out as
//! `cargo xtask package --target azure` lays it out (`host.json`, one
//! `<function>/function.json` per Azure function, from `nube_azure::descriptors` on the
//! app's manifest, and the executable under the name `host.json` gives). It is started
//! as the host starts it (in the app folder, `FUNCTIONS_CUSTOMHANDLER_PORT`,
//! `AzureWebJobsStorage` and the app settings `local.settings.json` lists), and its
//! documents and blobs live in the Cosmos DB emulator (`@vercel/cosmosdb-server`) and
//! Azurite.
//!
//! What the test does as the host: it forwards HTTP requests under `/api/` as they are
//! (`enableForwardingHttpRequest`), POSTs `{Data, Metadata}` invocations to
//! `/<function>` with the binding names of the generated function.json files, builds the
//! `blobTrigger` invocation from the blob as Azurite stores it (content and
//! properties), and the `cosmosDBTrigger` batch from the items as the emulator stores
//! them (system fields included), as the change feed would deliver them.
//!
//! Needs `NUBE_COSMOS_SERVER` and `NUBE_AZURITE_BLOB`: `cargo xtask test` installs both
//! into `.tools/npm` and sets them; by hand, `export $(cargo xtask tools)`. Without them
//! the test fails, saying so; it never skips.
//!
//! **The packaged app instead.** With `NUBE_AZURE_FUNCTION_APP` naming the folder
//! `cargo xtask package --target azure` wrote (`target/nube/azure/delivery-app`), the
//! test runs that function app, copied whole: its own `host.json`, `function.json`
//! files, `local.settings.json` and the cross-built executable. `.ci/run` does not set
//! it (the release build would double its time); to run it:
//!
//! ```text
//! cargo xtask package --target azure --app delivery-app
//! export $(cargo xtask tools)
//! NUBE_AZURE_FUNCTION_APP=target/nube/azure/delivery-app cargo test -p delivery-app --test azure_e2e
//! ```

#[path = "../../../adapters/azure/tests/azurite/mod.rs"]
mod azurite;
#[path = "../../../adapters/azure/tests/cosmos_emulator/mod.rs"]
mod cosmos_emulator;

use nube::testing::free_port;
use std::collections::HashMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use nube_azure::blob_store::{DEVELOPMENT_ACCOUNT, DEVELOPMENT_KEY};
use nube_azure::cosmos::PARTITION_KEY_PATH;
use nube_azure::cosmos::sdk::CosmosClient;
use nube_azure::cosmos::sdk::models::ContainerProperties;
use nube_azure::descriptors::{function_jsons, host_json, local_settings_json};
use nube_azure::names::{
    COSMOS_CONNECTION, COSMOS_DATABASE_SETTING, STORAGE_CONNECTION, bucket_setting,
    collection_setting,
};
use reqwest::StatusCode;
use serde_json::{Map, Value, json};

use azurite::Azurite;
use cosmos_emulator::CosmosEmulator;

/// Physical names: `e2e-<logical>` for containers (Cosmos DB and blob).
const PREFIX: &str = "e2e-";
/// How long any one wait (the handler's start, a request) may take.
const PATIENCE: Duration = Duration::from_secs(60);
/// The Functions host version the test claims to be, in the headers the host adds.
const HOST_VERSION: &str = "4.1037.0.0";

/// Unique enough for invocation ids and `sys.RandGuid`: a GUID-shaped clock reading.
fn guid() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let hex = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `Metadata.sys`, as the host adds it to every invocation.
fn sys(function: &str) -> Value {
    json!({
        "MethodName": function,
        "UtcNow": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "RandGuid": guid(),
    })
}

// ---- the function app, as `cargo xtask package --target azure` lays it out ----------

/// The function app folder: host.json, the function folders and the executable.
struct FunctionApp {
    dir: tempfile::TempDir,
    host: Value,
    /// Azure function name → function.json.
    functions: Vec<(String, Value)>,
    /// `local.settings.json`.
    settings: Value,
}

impl FunctionApp {
    /// The packaged app `NUBE_AZURE_FUNCTION_APP` names, else one laid out here.
    fn new() -> FunctionApp {
        match std::env::var_os("NUBE_AZURE_FUNCTION_APP") {
            Some(folder) => FunctionApp::packaged(Path::new(&folder)),
            None => FunctionApp::lay_out(),
        }
    }

    /// A copy of the function app `cargo xtask package --target azure` wrote in
    /// `folder` (relative to the workspace, or absolute).
    fn packaged(folder: &Path) -> FunctionApp {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(folder);
        let read = |path: PathBuf| -> Value {
            let text =
                std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        };
        assert!(
            folder.join("host.json").is_file(),
            "{} holds no function app: package it first (cargo xtask package --target azure --app delivery-app)",
            folder.display()
        );
        let dir = tempfile::tempdir().expect("a folder for the function app");
        copy_folder(&folder, dir.path());
        let host = read(dir.path().join("host.json"));
        let settings = read(dir.path().join("local.settings.json"));
        let mut functions = Vec::new();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path().join("function.json");
            if path.is_file() {
                let name = path.parent().unwrap().file_name().unwrap();
                functions.push((name.to_string_lossy().into_owned(), read(path)));
            }
        }
        assert!(
            !functions.is_empty(),
            "no function.json in {}",
            folder.display()
        );
        FunctionApp {
            dir,
            host,
            functions,
            settings,
        }
    }

    fn lay_out() -> FunctionApp {
        let manifest = delivery_app::app().manifest();
        let binary = Path::new(env!("CARGO_BIN_EXE_delivery-app"));
        let executable = binary
            .file_name()
            .and_then(|n| n.to_str())
            .expect("the binary has a name");
        let host = host_json(&manifest, executable);
        let functions = function_jsons(&manifest).expect("the delivery app's function.json files");
        let settings = local_settings_json(&manifest);
        let dir = tempfile::tempdir().expect("a folder for the function app");
        let write = |path: PathBuf, value: &Value| {
            std::fs::write(&path, serde_json::to_vec_pretty(value).unwrap())
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()))
        };
        write(dir.path().join("host.json"), &host);
        for (name, descriptor) in &functions {
            std::fs::create_dir_all(dir.path().join(name)).unwrap();
            write(dir.path().join(name).join("function.json"), descriptor);
        }
        let app = FunctionApp {
            dir,
            host,
            functions,
            settings,
        };
        std::fs::copy(binary, app.executable()).unwrap_or_else(|e| {
            panic!(
                "copying {} into the function app as {}: {e}",
                binary.display(),
                app.executable().display()
            )
        });
        app
    }

    /// The executable host.json names (`customHandler.description.defaultExecutablePath`).
    fn executable(&self) -> PathBuf {
        let path = self
            .host
            .pointer("/customHandler/description/defaultExecutablePath")
            .and_then(Value::as_str)
            .expect("host.json names the executable");
        self.dir.path().join(path)
    }

    /// The working directory host.json asks for; the app folder by default.
    fn working_directory(&self) -> PathBuf {
        match self
            .host
            .pointer("/customHandler/description/workingDirectory")
            .and_then(Value::as_str)
        {
            Some(dir) => self.dir.path().join(dir),
            None => self.dir.path().to_owned(),
        }
    }

    /// The function.json of the Azure function `name`.
    fn function(&self, name: &str) -> &Value {
        self.functions
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, f)| f)
            .unwrap_or_else(|| panic!("no Azure function {name:?} in {:?}", self.names()))
    }

    fn names(&self) -> Vec<&str> {
        self.functions.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// The name of the trigger binding of the Azure function `name`: the key of its
    /// value in `Data`.
    fn trigger_binding(&self, name: &str, kind: &str) -> String {
        let bindings = self.function(name)["bindings"]
            .as_array()
            .expect("bindings");
        let trigger = bindings
            .iter()
            .find(|b| {
                b["direction"] == "in" && b["type"].as_str().is_some_and(|t| t.ends_with("Trigger"))
            })
            .unwrap_or_else(|| panic!("{name} has no trigger binding: {bindings:?}"));
        assert_eq!(trigger["type"], kind, "{name}'s trigger");
        trigger["name"].as_str().expect("a binding name").to_owned()
    }
}

/// Copies the files and folders of `from` into `to`, keeping the executable bits.
fn copy_folder(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_folder(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("copying {}: {e}", entry.path().display()));
        }
    }
}

// ---- the custom handler process -----------------------------------------------------

/// The custom handler, started as the host starts it; killed when dropped, printing
/// its log when the test failed.
struct Handler {
    child: Child,
    port: u16,
    /// Its stdout, where the host collects a custom handler's log lines.
    log: tempfile::NamedTempFile,
    stderr: tempfile::NamedTempFile,
}

impl Drop for Handler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- the custom handler's stdout ----\n{}\n---- its stderr ----\n{}",
                self.stdout(),
                self.stderr()
            );
        }
    }
}

impl Handler {
    fn start(app: &FunctionApp, settings: &[(String, String)]) -> Handler {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().expect("a temp file for the handler's log");
        let stderr = tempfile::NamedTempFile::new().expect("a temp file for the handler's stderr");
        let arguments: Vec<String> = app
            .host
            .pointer("/customHandler/description/arguments")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        // Only what the host gives a worker: its own variables and the app settings
        // (nothing of this test's environment, NUBE_TARGET included, leaks in).
        let child = Command::new(app.executable())
            .args(arguments)
            .current_dir(app.working_directory())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", app.dir.path())
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .env("FUNCTIONS_CUSTOMHANDLER_WORKER_ID", guid())
            .env("FUNCTIONS_APP_ROOT_PATH", app.dir.path())
            .env("AzureWebJobsScriptRoot", app.dir.path())
            .env("FUNCTIONS_WORKER_RUNTIME", "Custom")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("RUST_LOG", "info")
            .envs(settings.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.reopen().unwrap())
            .stderr(stderr.reopen().unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", app.executable().display()));
        let mut handler = Handler {
            child,
            port,
            log,
            stderr,
        };
        handler.wait_until_listening();
        handler
    }

    /// What the handler has written to stdout so far.
    fn stdout(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// What the handler has written to stderr so far.
    fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr.path()).unwrap_or_default()
    }

    /// Waits, as the host does, until the handler accepts connections.
    fn wait_until_listening(&mut self) {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the custom handler exited ({status}) before listening:\n{}{}",
                    self.stdout(),
                    self.stderr()
                );
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "the custom handler did not listen on port {} within {PATIENCE:?}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("the custom handler exited: {status}");
        }
    }
}

/// What the handler answered.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "a JSON body, got {} {:?}: {e}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// The test as the Functions host: it talks to the handler over HTTP.
struct Host {
    app: FunctionApp,
    handler: Handler,
    http: reqwest::Client,
}

impl Host {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.handler.port)
    }

    async fn send(&mut self, request: reqwest::RequestBuilder, what: &str) -> Answer {
        let sent = request
            .header("x-azure-functions-invocationid", guid())
            .header("x-azure-functions-hostversion", HOST_VERSION)
            .header("user-agent", format!("Azure-Functions-Host/{HOST_VERSION}"))
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                self.handler.check_alive();
                panic!("{what}: {e}");
            }
        };
        Answer {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.bytes().await.expect("the answer's body").to_vec(),
        }
    }

    /// A client's request, forwarded as it came (`enableForwardingHttpRequest`).
    async fn forward(&mut self, method: &str, path: &str, body: Option<(&str, Vec<u8>)>) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method.clone(), self.url(path));
        if let Some((content_type, bytes)) = body {
            request = request.header("content-type", content_type).body(bytes);
        }
        self.send(request, &format!("forwarding {method} {path}"))
            .await
    }

    /// An invocation: `POST /<function>` with `payload` as the body.
    async fn invoke_raw(&mut self, function: &str, payload: Vec<u8>) -> (StatusCode, Value) {
        let request = self
            .http
            .post(self.url(&format!("/{function}")))
            .header("content-type", "application/json")
            .body(payload);
        let answer = self.send(request, &format!("invoking {function}")).await;
        let status = answer.status;
        (status, answer.json())
    }

    async fn invoke(&mut self, function: &str, payload: &Value) -> (StatusCode, Value) {
        self.invoke_raw(function, serde_json::to_vec(payload).unwrap())
            .await
    }

    /// An invocation that must succeed: 200 with `{Outputs, Logs, ReturnValue}`.
    async fn invoke_ok(&mut self, function: &str, payload: &Value) -> Value {
        let (status, answer) = self.invoke(function, payload).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "invoking {function} with {payload} answered {answer}"
        );
        assert!(
            answer["Outputs"].is_object() && answer["Logs"].is_array(),
            "the answer is {{Outputs, Logs, ReturnValue}}: {answer}"
        );
        assert!(
            answer.as_object().unwrap().contains_key("ReturnValue"),
            "{answer}"
        );
        answer
    }
}

/// `Data.req` of an httpTrigger invocation (not forwarded), shaped like the vendor's
/// `http-trigger-with-bindings.request.json`.
fn data_req(function: &str, method: &str, path_and_query: &str, body: Option<&Value>) -> Value {
    let query = path_and_query.split_once('?').map_or("", |(_, q)| q);
    let query: Map<String, Value> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_owned(), json!(v))
        })
        .collect();
    let mut headers = json!({
        "Host": ["localhost:7071"],
        "User-Agent": ["curl/8.5.0"],
        "Accept": ["*/*"],
    });
    let mut req = json!({
        "Url": format!("http://localhost:7071{path_and_query}"),
        "Method": method,
        "Query": query,
        "Params": {},
        "Identities": [],
    });
    if let Some(body) = body {
        headers["Content-Type"] = json!(["application/json"]);
        req["Body"] = json!(body.to_string());
    }
    req["Headers"] = headers.clone();
    json!({
        "Data": {"req": req},
        "Metadata": {"Headers": headers, "Query": query, "sys": sys(function)},
    })
}

/// The `res` output of a `Data.req` invocation: its status (sent as text) and body.
fn res(answer: &Value) -> (u16, Value) {
    let res = &answer["Outputs"]["res"];
    let status = res["statusCode"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("Outputs.res has a statusCode as text: {answer}"));
    assert_eq!(res["status"], res["statusCode"], "{res}");
    assert!(res["headers"].is_object(), "{res}");
    let body = res["body"].as_str().expect("Outputs.res.body is text");
    let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("a JSON body: {e}: {body}"));
    (status, body)
}

// ---- Azurite: the blob as the blob trigger sees it ----------------------------------

/// A blob as Azurite stores it: content and the properties the host puts in
/// `Metadata.Properties`.
struct StoredBlob {
    content: Vec<u8>,
    headers: reqwest::header::HeaderMap,
    uri: String,
}

impl StoredBlob {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("Azurite sent no {name}: {:?}", self.headers))
    }

    fn time(&self, name: &str) -> String {
        chrono::DateTime::parse_from_rfc2822(self.header(name))
            .unwrap_or_else(|e| panic!("{name} is an HTTP date: {e}"))
            .to_rfc3339()
    }

    /// `BlobProperties` as the host serialises it into `Metadata.Properties`.
    fn properties(&self) -> Value {
        json!({
            "LastModified": self.time("last-modified"),
            "CreatedOn": self.time("x-ms-creation-time"),
            "Metadata": {},
            "BlobType": "Block",
            "ContentLength": self.header("content-length").parse::<u64>().expect("a length"),
            "ContentType": self.header("content-type"),
            "ETag": self.header("etag"),
            "ContentHash": self.headers.get("content-md5").and_then(|v| v.to_str().ok()),
            "AccessTier": "Hot",
            "AccessTierInferred": true,
            "LeaseState": "Available",
            "LeaseStatus": "Unlocked",
            "IsServerEncrypted": true,
        })
    }
}

/// Reads a blob from Azurite with a Shared Key signed `Get Blob`.
async fn get_blob(
    http: &reqwest::Client,
    azurite: &Azurite,
    container: &str,
    key: &str,
) -> StoredBlob {
    let version = "2021-08-06";
    let date = chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let uri = format!("{}/{container}/{key}", azurite.blob_endpoint());
    let path = format!("/{DEVELOPMENT_ACCOUNT}/{container}/{key}");
    let string_to_sign = format!(
        "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{DEVELOPMENT_ACCOUNT}{path}"
    );
    let secret = BASE64.decode(DEVELOPMENT_KEY).expect("the key is base64");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&secret).expect("any key length");
    mac.update(string_to_sign.as_bytes());
    let signature = BASE64.encode(mac.finalize().into_bytes());
    let response = http
        .get(&uri)
        .header("x-ms-date", &date)
        .header("x-ms-version", version)
        .header(
            "authorization",
            format!("SharedKey {DEVELOPMENT_ACCOUNT}:{signature}"),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {uri}: {e}"));
    let status = response.status();
    let headers = response.headers().clone();
    let content = response.bytes().await.unwrap().to_vec();
    assert_eq!(
        status,
        StatusCode::OK,
        "Azurite has {container}/{key}: {}",
        String::from_utf8_lossy(&content)
    );
    StoredBlob {
        content,
        headers,
        uri,
    }
}

// ---- the Cosmos DB emulator: items as the change feed carries them -----------------

/// The item `id` of `container` as stored, system fields included.
async fn raw_item(client: &CosmosClient, database: &str, container: &str, id: &str) -> Value {
    let container_client = client
        .database_client(database)
        .container_client(container, None)
        .await
        .unwrap_or_else(|e| panic!("container {container}: {e}"));
    let started = Instant::now();
    loop {
        match container_client.read_item(id.to_owned(), id, None).await {
            Ok(response) => {
                return response
                    .into_model::<Value>()
                    .unwrap_or_else(|e| panic!("item {container}/{id}: {e}"));
            }
            Err(e)
                if started.elapsed() < PATIENCE && u16::from(e.status().status_code()) == 404 =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("reading item {container}/{id}: {e}"),
        }
    }
}

/// A cosmosDBTrigger invocation of `items`: the batch as a JSON-encoded array (the host
/// sends values that are not JSON objects as strings).
fn cosmos_batch(binding: &str, function: &str, items: &[Value]) -> Value {
    json!({
        "Data": {binding: serde_json::to_string(items).unwrap()},
        "Metadata": {"sys": sys(function)},
    })
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 200])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// The deployment: emulators, containers, settings, and the handler started.
async fn start() -> (Host, CosmosEmulator, Azurite, HashMap<String, String>) {
    let azurite = Azurite::start();
    let cosmos = CosmosEmulator::start();
    let app = FunctionApp::new();
    let declared = delivery_app::app();

    // What a deployment creates: the database and one container per collection
    // (partition key /id, as the store expects), one blob container per bucket.
    let database = app.settings["Values"][COSMOS_DATABASE_SETTING]
        .as_str()
        .expect("local.settings.json names the database")
        .to_owned();
    let client = cosmos.client().await;
    match client.create_database(&database, None).await {
        Ok(_) => {}
        Err(e) => panic!(
            "creating database {database}: {e}\n{}",
            cosmos.diagnostics()
        ),
    }
    let mut physical = HashMap::new();
    let mut settings: Vec<(String, String)> = Vec::new();
    for collection in declared.collections() {
        let container = format!("{PREFIX}{collection}");
        client
            .database_client(&database)
            .create_container(
                ContainerProperties::new(container.clone(), PARTITION_KEY_PATH.into()),
                None,
            )
            .await
            .unwrap_or_else(|e| panic!("creating container {container}: {e}"));
        settings.push((collection_setting(collection), container.clone()));
        physical.insert(collection.to_owned(), container);
    }
    for bucket in declared.buckets() {
        let container = format!("{PREFIX}{bucket}");
        assert_eq!(
            azurite.create_container(&container),
            201,
            "blob container {container}"
        );
        settings.push((bucket_setting(bucket), container.clone()));
        physical.insert(bucket.to_owned(), container);
    }
    settings.push((COSMOS_CONNECTION.to_owned(), cosmos.connection_string()));
    settings.push((COSMOS_DATABASE_SETTING.to_owned(), database));
    settings.push((STORAGE_CONNECTION.to_owned(), azurite.connection_string()));
    // The emulator speaks neither HTTP/2 nor Cosmos binary JSON: the SDK's own settings.
    settings.push((
        "AZURE_COSMOS_CONNECTION_POOL_IS_HTTP2_ALLOWED".to_owned(),
        "false".to_owned(),
    ));
    settings.push((
        "AZURE_COSMOS_BINARY_ENCODING_ENABLED".to_owned(),
        "false".to_owned(),
    ));

    // Every setting local.settings.json lists gets a value (the host passes app
    // settings as environment variables).
    let listed = app.settings["Values"]
        .as_object()
        .expect("local.settings.json has Values");
    for (name, value) in listed {
        if !settings.iter().any(|(n, _)| n == name) {
            settings.push((name.clone(), value.as_str().unwrap_or_default().to_owned()));
        }
    }
    for needed in [
        COSMOS_CONNECTION,
        COSMOS_DATABASE_SETTING,
        STORAGE_CONNECTION,
    ] {
        assert!(
            listed.contains_key(needed),
            "local.settings.json lists {needed}: {listed:?}"
        );
    }

    let handler = Handler::start(&app, &settings);
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(PATIENCE)
        .build()
        .unwrap();
    (Host { app, handler, http }, cosmos, azurite, physical)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_custom_handler_serves_every_trigger_as_the_functions_host_calls_it() {
    let started = Instant::now();
    let (mut host, cosmos, azurite, physical) = start().await;

    // The function app: host.json forwards HTTP, one folder per Azure function.
    assert_eq!(
        host.app.host["customHandler"]["enableForwardingHttpRequest"],
        true
    );
    let mut names = host.app.names();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "cleanup-expired-orders",
            "images-api-images",
            "images-api-uploads",
            "make-thumbnails",
            "orders-api-orders",
            "orders-api-users",
            "orders-read-model",
            "todos",
        ],
        "one Azure function per route group and per event function"
    );

    // ---- HTTP, forwarded ----
    let created = host
        .forward(
            "POST",
            "/api/todos",
            Some(("application/json", br#"{"title":"buy milk"}"#.to_vec())),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    assert!(created.content_type().starts_with("application/json"));
    let todo = created.json();
    assert_eq!(todo["title"], "buy milk");
    assert_eq!(todo["completed"], false);
    let todo_id = todo["id"].as_str().expect("a todo id").to_owned();
    let listed = host.forward("GET", "/api/todos", None).await;
    assert_eq!(listed.status, 200, "{listed:?}");
    let list = listed.json();
    assert!(
        list.as_array()
            .is_some_and(|l| l.iter().any(|t| t["id"] == todo_id.as_str())),
        "GET /api/todos lists the new todo: {list}"
    );
    let missing = host.forward("GET", "/api/todos/no-such", None).await;
    assert_eq!(missing.status, 404, "{missing:?}");
    assert!(missing.content_type().starts_with("application/json"));
    assert!(
        missing.json()["error"]["message"].is_string(),
        "{missing:?}"
    );

    // ---- HTTP in Data.req (a host that does not forward) ----
    let binding = host.app.trigger_binding("todos", "httpTrigger");
    assert_eq!(binding, "req");
    let answer = host
        .invoke_ok(
            "todos",
            &data_req(
                "todos",
                "POST",
                "/api/todos",
                Some(&json!({"title": "walk the dog"})),
            ),
        )
        .await;
    let (status, body) = res(&answer);
    assert_eq!(status, 201, "{answer}");
    assert_eq!(body["title"], "walk the dog");
    let second_id = body["id"].as_str().expect("a todo id").to_owned();
    let answer = host
        .invoke_ok(
            "todos",
            &data_req("todos", "GET", &format!("/api/todos/{second_id}"), None),
        )
        .await;
    let (status, body) = res(&answer);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(body["id"], second_id.as_str());
    let answer = host
        .invoke_ok(
            "todos",
            &data_req("todos", "GET", "/api/todos/no-such", None),
        )
        .await;
    let (status, body) = res(&answer);
    assert_eq!(status, 404, "{answer}");
    assert!(body["error"]["message"].is_string(), "{body}");
    // Both modes reach the same store.
    let listed = host.forward("GET", "/api/todos", None).await.json();
    assert!(
        listed
            .as_array()
            .is_some_and(|l| l.iter().any(|t| t["id"] == second_id.as_str())),
        "{listed}"
    );

    // ---- an upload, then the blob trigger ----
    let original = png(320, 240);
    let uploaded = host
        .forward(
            "PUT",
            "/api/uploads/cat.png",
            Some(("image/png", original.clone())),
        )
        .await;
    assert_eq!(uploaded.status, 202, "{uploaded:?}");
    assert_eq!(uploaded.json(), json!({"key": "original/cat.png"}));
    let not_yet = host.forward("GET", "/api/images/cat.png", None).await;
    assert_eq!(not_yet.status, 404, "no record before make-thumbnails ran");

    let container = &physical[nube_images::BUCKET];
    let blob = get_blob(&host.http, &azurite, container, "original/cat.png").await;
    assert_eq!(blob.content, original, "Azurite holds the upload");
    assert_eq!(blob.header("content-type"), "image/png");
    let binding = host
        .app
        .trigger_binding(nube_images::THUMBNAIL_FUNCTION, "blobTrigger");
    assert_eq!(
        host.app.function(nube_images::THUMBNAIL_FUNCTION)["bindings"][0]["path"],
        format!(
            "%{}%/{}{{name}}",
            bucket_setting(nube_images::BUCKET),
            nube_images::ORIGINAL_PREFIX
        )
    );
    let blob_invocation = json!({
        "Data": {binding: BASE64.encode(&blob.content)},
        "Metadata": {
            "name": "cat.png",
            "Uri": blob.uri,
            "Properties": blob.properties().to_string(),
            "Metadata": {},
            "sys": sys(nube_images::THUMBNAIL_FUNCTION),
        },
    });
    let answer = host
        .invoke_ok(nube_images::THUMBNAIL_FUNCTION, &blob_invocation)
        .await;
    assert_eq!(answer["Outputs"], json!({}), "{answer}");

    let image = host.forward("GET", "/api/images/cat.png", None).await;
    assert_eq!(image.status, 200, "{image:?}");
    let image = image.json();
    assert_eq!(image["status"], "ready", "{image}");
    assert_eq!(image["width"], 320);
    assert_eq!(image["height"], 240);
    assert_eq!(image["format"], "png");
    assert_eq!(image["size"], original.len());
    assert_eq!(image["thumbnailKey"], "thumbnails/cat.png");
    let thumbnail = host
        .forward("GET", "/api/images/cat.png/thumbnail", None)
        .await;
    assert_eq!(thumbnail.status, 200, "{:?}", thumbnail.status);
    assert_eq!(thumbnail.content_type(), "image/jpeg");
    let decoded = image::load_from_memory_with_format(&thumbnail.body, image::ImageFormat::Jpeg)
        .expect("the thumbnail is a JPEG");
    assert_eq!(
        (decoded.width(), decoded.height()),
        (nube_images::THUMBNAIL_SIZE, nube_images::THUMBNAIL_SIZE)
    );
    let stored = get_blob(&host.http, &azurite, container, "thumbnails/cat.png").await;
    assert_eq!(
        stored.content, thumbnail.body,
        "the thumbnail is in Azurite"
    );

    // ---- orders: the change feed's items to the cosmosDBTrigger ----
    let placed = host
        .forward(
            "POST",
            "/api/orders",
            Some((
                "application/json",
                serde_json::to_vec(&json!({
                    "userId": "u1",
                    "restaurantId": "r1",
                    "items": [{"sku": "pizza", "qty": 2, "price": 9.5}],
                }))
                .unwrap(),
            )),
        )
        .await;
    assert_eq!(placed.status, 201, "{placed:?}");
    let placed = placed.json();
    assert_eq!(placed["status"], "PENDING");
    let order_id = placed["orderId"].as_str().expect("an orderId").to_owned();

    let client = cosmos.client().await;
    let database = host.app.settings["Values"][COSMOS_DATABASE_SETTING]
        .as_str()
        .unwrap()
        .to_owned();
    let events = &physical[nube_orders::EVENTS];
    let created = raw_item(&client, &database, events, &format!("{order_id}-000001")).await;
    for system in ["_rid", "_self", "_etag", "_ts"] {
        assert!(
            created.get(system).is_some(),
            "the item has {system}: {created}"
        );
    }
    assert_eq!(created["orderId"], order_id.as_str(), "{created}");
    assert_eq!(
        created["_nube_version"], created["_nube_created"],
        "a created item: {created}"
    );
    let binding = host
        .app
        .trigger_binding(nube_orders::READ_MODEL_FUNCTION, "cosmosDBTrigger");
    let trigger = &host.app.function(nube_orders::READ_MODEL_FUNCTION)["bindings"][0];
    assert_eq!(
        trigger["containerName"],
        format!("%{}%", collection_setting(nube_orders::EVENTS))
    );
    let answer = host
        .invoke_ok(
            nube_orders::READ_MODEL_FUNCTION,
            &cosmos_batch(&binding, nube_orders::READ_MODEL_FUNCTION, &[created]),
        )
        .await;
    assert_eq!(answer["Outputs"], json!({}), "{answer}");

    // The read model appended OrderConfirmed: the feed's next item, delivered too.
    let confirmed = raw_item(&client, &database, events, &format!("{order_id}-000002")).await;
    assert_eq!(confirmed["version"], 2, "{confirmed}");
    host.invoke_ok(
        nube_orders::READ_MODEL_FUNCTION,
        &cosmos_batch(&binding, nube_orders::READ_MODEL_FUNCTION, &[confirmed]),
    )
    .await;
    let order = host
        .forward("GET", &format!("/api/orders/{order_id}"), None)
        .await;
    assert_eq!(order.status, 200, "{order:?}");
    let order = order.json();
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    assert_eq!(order["version"], 2);
    assert_eq!(order["total"], 19.0);
    assert!(order["estimatedDeliveryAt"].is_string(), "{order}");

    // ---- the timer ----
    let binding = host
        .app
        .trigger_binding(nube_orders::CLEANUP_FUNCTION, "timerTrigger");
    let now = chrono::Utc::now();
    let tick = json!({
        "Data": {binding: {
            "Schedule": {"AdjustForDST": true},
            "ScheduleStatus": {
                "Last": (now - chrono::Duration::days(1)).to_rfc3339(),
                "Next": now.to_rfc3339(),
                "LastUpdated": (now - chrono::Duration::days(1)).to_rfc3339(),
            },
            "IsPastDue": false,
        }},
        "Metadata": {"sys": sys(nube_orders::CLEANUP_FUNCTION)},
    });
    let answer = host.invoke_ok(nube_orders::CLEANUP_FUNCTION, &tick).await;
    let logs = answer["Logs"].to_string();
    assert!(
        logs.contains("expired pending orders cleaned up"),
        "the cleanup ran to its end, and its log lines came back in Logs: {answer}"
    );
    // ... and went to stdout too, where the host's own log collection reads them.
    assert!(
        host.handler
            .stdout()
            .contains("expired pending orders cleaned up"),
        "the handler's log lines are on its stdout as well"
    );
    let order = host
        .forward("GET", &format!("/api/orders/{order_id}"), None)
        .await
        .json();
    assert_eq!(
        order["status"], "CONFIRMED",
        "a confirmed order stays: {order}"
    );

    // ---- malformed and mismatched payloads: 400 with the reason; it serves on ----
    let (status, answer) = host
        .invoke_raw(nube_images::THUMBNAIL_FUNCTION, b"{\"Data\": ".to_vec())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let logs = answer["Logs"].to_string();
    assert!(
        logs.contains("not valid JSON"),
        "the answer's Logs say what is wrong: {answer}"
    );
    let (status, answer) = host.invoke(nube_orders::READ_MODEL_FUNCTION, &tick).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let logs = answer["Logs"].to_string();
    assert!(
        logs.contains("cosmosDBTrigger") && logs.contains("timerTrigger"),
        "the answer's Logs say what was expected and what came: {answer}"
    );
    let again = host.forward("GET", "/api/todos", None).await;
    assert_eq!(again.status, 200, "the handler serves after refusals");
    host.invoke_ok(nube_orders::CLEANUP_FUNCTION, &tick).await;

    host.handler.check_alive();
    eprintln!(
        "the delivery app's custom handler served every trigger in {:.1?}",
        started.elapsed()
    );
}
