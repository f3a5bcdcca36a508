//! `cargo xtask invoke`: runs one function of an app under one adapter on this machine,
//! as that cloud would start it (with the stand-ins for its stores the end-to-end tests
//! use), sends it one native payload and prints the native request and response.
//!
//! One file per target under `invoke/`; [`event_file`] reads `--event` files and
//! [`wire`] is the small HTTP/1.1 client that talks to the processes.

mod aws;
mod azure;
pub(crate) mod event_file;
mod gcp;
mod local;
mod wire;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use nube::manifest::{FunctionManifest, Manifest, TriggerManifest};
use serde_json::Value;

use crate::bench::{Unready, wait_ready};
use crate::samples::{self, HttpRequest, Kind, Native};
use crate::target::Target;
use crate::{cargo, describe};

/// The long help of `cargo xtask invoke`.
pub const LONG_ABOUT: &str = "\
Run one function of an app under a cloud's adapter (or the local runtime) on this machine,
send it one native payload, and print the native request and the native response: the
cross-cloud counterpart of `cargo lambda invoke`, on the harness the end-to-end tests use.

Steps: build the app for the host with the target's feature (`cargo build -p <APP>
--no-default-features --features <TARGET>`; `local`: the default features), read its
manifest (`<APP> --nube-manifest`), start the stand-ins for its stores when it declares
collections or buckets (the ones the end-to-end tests start, installed into .tools/ by
`cargo xtask tools`), start the app's process as that cloud starts it, send the payload,
print the request and the response on stdout and the process's log on stderr, and stop
everything. The exit status is non-zero when the invocation failed: a Lambda function
error or batch item failures, an event function answering non-2xx, or an HTTP function
answering 5xx. The build goes to the workspace's target dir as `cargo build` does, so
target/debug/<APP> is the one for that target afterwards.

  --target aws    the Lambda `bootstrap` (`_HANDLER` = the function) polling cargo-lambda's
                  Runtime API emulator (`cargo lambda watch --only-lambda-apis`); the
                  payload is POSTed to the emulator's Invoke API. Stores: moto (one table
                  per collection, key `id`; one bucket per bucket), NUBE_TABLE_* and
                  NUBE_BUCKET_* naming them `<APP>-<logical>`.
  --target azure  the custom handler in a function app laid out as `cargo xtask package
                  --target azure` lays it out, started as the Functions host starts it
                  (FUNCTIONS_CUSTOMHANDLER_PORT, the settings of local.settings.json), this
                  command playing the host. Stores: the Cosmos DB emulator
                  (@vercel/cosmosdb-server) and Azurite.
  --target gcp    the Cloud Run container (PORT, K_SERVICE, K_REVISION, FUNCTION_TARGET = the
                  function). Stores: the Cloud Firestore emulator and gcp-storage-emulator.
  --target local  the local runtime (PORT, NUBE_DATA_DIR in a fresh temporary folder): HTTP
                  functions get the request; event functions are fired through its admin
                  endpoint `POST /_nube/functions/<FUNCTION>`, whose request and answer are
                  the native ones here.

The payload: --sample KIND (http, timer, blob, document; it must be the function's own
trigger kind) sends the sample `cargo xtask events` shows for that cloud, fitted to the
function (its route, bucket and prefix, collection, with the physical names the process is
started with; the local runtime gets Cloud Run's HTTP request, a plain one, and its admin
endpoint's body for events). Without --sample or --event, the sample of the function's own
kind is sent.
A sample blob or document event names an object or document the fresh stores do not hold:
the function meets that as it would on the cloud (the local admin endpoint answers 404).

--event FILE (`-` for stdin) sends a payload of your own, as JSON:
  aws    a Lambda event, sent as is (API Gateway, S3, DynamoDB stream, EventBridge...).
  azure  an invocation `{\"Data\": {...}, \"Metadata\": {...}}`, POSTed to /<AzureFunction> as
         the host does (an HTTP function split by `cargo xtask package` into
         <function>-<segment> functions gets it at the first); or, for an HTTP function,
         an HTTP request (below), forwarded as the host forwards it, under the route
         prefix `/api` (added when the path does not start with it).
  gcp    an HTTP request (below), sent as is (FUNCTION_TARGET serves the function on every
         path); or a CloudEvent in structured mode (a JSON object with `specversion`), POSTed
         to / as `application/cloudevents+json`.
  local  HTTP functions: an HTTP request (below). Event functions: the admin endpoint's
         body: `{}` for a timer, `{\"key\": \"...\"}` for a blob (the object must exist),
         `{\"id\": \"...\"}` for a document (it must exist), or a whole nube event
         (`{\"trigger\": \"blobCreated\", ...}`, as dead letters show it).
An HTTP request: {\"method\": \"POST\", \"path\": \"/todos?x=1\", \"headers\": {\"name\": \"value\"},
\"body\": ...}: `method` defaults to GET; `headers` is an object or a list of [name, value]
pairs; `body` is a string sent as is, or any other JSON value sent as JSON (with
`content-type: application/json` unless the headers say otherwise); `bodyBase64` carries
bytes instead.

Examples:
  cargo xtask invoke --target local --function todos
  cargo xtask invoke --target gcp --function cleanup-expired-orders
  cargo xtask invoke --target aws --function orders-read-model --sample document
  cargo xtask invoke --target azure --function todos --event todo.json
  echo '{\"method\":\"POST\",\"path\":\"/todos\",\"body\":{\"title\":\"milk\"}}' \\
    | cargo xtask invoke --target gcp --function todos --event -";

/// Options of `cargo xtask invoke`.
#[derive(clap::Args)]
pub struct Args {
    /// Where to run the function.
    #[arg(long, value_parser = Target::parse)]
    pub target: Target,
    /// The function (a name from the app's manifest).
    #[arg(long)]
    pub function: String,
    /// A native payload of your own (JSON; `-` reads stdin); see the long help.
    #[arg(long, value_name = "FILE", conflicts_with = "sample")]
    pub event: Option<PathBuf>,
    /// Send the sample payload of this trigger kind (the function's own kind).
    #[arg(long, value_name = "KIND", value_parser = crate::events::parse_kind)]
    pub sample: Option<Kind>,
    /// The example app (a package under examples/).
    #[arg(long, default_value = "delivery-app")]
    pub app: String,
    /// Build the app with every feature instead of only the target's: the binary
    /// `cargo test --all-features` builds, which runs on any target (and is not
    /// rebuilt when that build is current).
    #[arg(long)]
    pub all_features: bool,
}

/// Runs `cargo xtask invoke`.
pub fn run(args: Args) -> Result<(), String> {
    let target = args.target;
    let exchange = invoke(&args)?;
    if exchange.failed {
        Err(format!(
            "{} failed on {}: {} (the response is above)",
            args.function,
            target.name(),
            exchange.summary()
        ))
    } else {
        Ok(())
    }
}

/// Builds, starts and invokes as [`run`] does; the outcome, whether it failed or not.
fn invoke(args: &Args) -> Result<Exchange, String> {
    crate::manifest::check_app(&args.app)?;
    let event = match &args.event {
        Some(path) => Some(read_event(path)?),
        None => None,
    };
    let build = AppBuild::build(&args.app, args.target, args.all_features)?;
    let manifest =
        crate::package::aws::run_manifest(Command::new(build.executable()).arg("--nube-manifest"))?;
    let function = crate::samples::find_function(&manifest, &args.function)?;
    let kind = crate::samples::kind_of(&function.trigger);
    if let Some(asked) = args.sample {
        check_sample_kind(function, kind, asked)?;
    }
    let names = physical_names(args.target, &manifest);
    let native = match &event {
        Some(text) => event_file::parse(args.target, function, text)?,
        None => sample(args.target, &manifest, function, kind, &names)?,
    };
    let invocation = Invocation {
        manifest: &manifest,
        function,
        names: &names,
        build: &build,
    };
    // An event file and a sample are in the target's own form: a Lambda event for aws,
    // an HTTP request to the process for the others.
    match (args.target, &native) {
        (Target::Aws, Native::Lambda(event)) => aws::invoke(&invocation, event),
        (Target::Azure, Native::Http(request)) => azure::invoke(&invocation, request),
        (Target::Gcp, Native::Http(request)) => gcp::invoke(&invocation, request),
        (Target::Local, Native::Http(request)) => local::invoke(&invocation, request),
        (target, _) => unreachable!("the payload for {} is in another form", target.name()),
    }
}

/// Everything a target needs for one invocation.
struct Invocation<'a> {
    manifest: &'a Manifest,
    function: &'a FunctionManifest,
    /// The physical names of the app's resources, as environment variables.
    names: &'a BTreeMap<String, String>,
    build: &'a AppBuild,
}

/// What a target reports (the request and the response are printed as they happen).
#[derive(Debug)]
struct Exchange {
    /// Whether the invocation failed.
    failed: bool,
    /// The native response's status: HTTP's, or the Lambda Invoke API's.
    status: u16,
    /// The native response's body (the Lambda answer for aws).
    body: Vec<u8>,
}

impl Exchange {
    /// The status and the error message the body carries (Lambda's `errorMessage`,
    /// nube's `error.message`, the last of an Azure invocation's `Logs`), for one line.
    fn summary(&self) -> String {
        let body: Value = serde_json::from_slice(&self.body).unwrap_or_default();
        let message = [
            body.pointer("/errorMessage"),
            body.pointer("/error/message"),
            body.pointer("/Logs").and_then(|l| l.as_array()?.last()),
        ]
        .into_iter()
        .flatten()
        .find_map(Value::as_str);
        let batch_failures = body["batchItemFailures"].as_array().map_or(0, Vec::len);
        match (message, body["statusCode"].as_u64()) {
            (Some(m), _) => format!("{} {m}", self.status),
            (None, _) if batch_failures > 0 => format!("{batch_failures} batch item failures"),
            (None, Some(lambda_http)) => format!("the Lambda answer's statusCode is {lambda_http}"),
            (None, None) => format!("status {}", self.status),
        }
    }
}

/// Checks that `--sample asked` fits `function`, whose trigger is of kind `own`; the
/// error says which kind it takes.
fn check_sample_kind(function: &FunctionManifest, own: Kind, asked: Kind) -> Result<(), String> {
    if own == asked {
        Ok(())
    } else {
        Err(format!(
            "{} is a{} {} function: it takes --sample {}, not --sample {}",
            function.name,
            if own == Kind::Http { "n" } else { "" },
            own.as_str(),
            own.as_str(),
            asked.as_str()
        ))
    }
}

/// The environment variables naming the app's resources on `target`: what the
/// process is started with, and what samples read physical names from.
fn physical_names(target: Target, manifest: &Manifest) -> BTreeMap<String, String> {
    match target {
        Target::Aws => aws::names(manifest),
        Target::Azure => azure::names(manifest),
        Target::Gcp => gcp::names(manifest),
        Target::Local => BTreeMap::new(),
    }
}

/// The sample payload of `kind` for `function` on `target`.
fn sample(
    target: Target,
    manifest: &Manifest,
    function: &FunctionManifest,
    kind: Kind,
    names: &BTreeMap<String, String>,
) -> Result<Native, String> {
    if target == Target::Local && kind != Kind::Http {
        return Ok(local::admin_request(
            function,
            &local::sample_body(function),
        ));
    }
    let sample = samples::sample(target.provider(), manifest, &function.name, names)
        .map_err(|e| format!("no {} sample for {}: {e}", kind.as_str(), function.name))?;
    if target == Target::Local {
        eprintln!(
            "    Sending the sample: {} (a plain HTTP request)",
            sample.title
        );
    } else {
        eprintln!("    Sending the sample: {}", sample.title);
    }
    Ok(sample.native)
}

/// The text of `--event` (a file, or stdin for `-`).
fn read_event(path: &Path) -> Result<String, String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read the event from stdin: {e}"))?;
        Ok(text)
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the event file {}: {e}", path.display()))
    }
}

/// The app's binary built for one target, copied into a scratch folder (other builds
/// in the same target dir may replace the original while it runs).
struct AppBuild {
    dir: tempfile::TempDir,
    name: String,
}

impl AppBuild {
    /// Builds `app` for the host with `target`'s feature, or with every feature
    /// (cargo's progress on stderr).
    fn build(app: &str, target: Target, all_features: bool) -> Result<AppBuild, String> {
        // Another invoke building the app with other features replaces the binary cargo
        // puts in target/debug: hold the build and the copy under one lock.
        let _lock = BuildLock::take()?;
        let mut cmd = cargo();
        cmd.args([
            "build",
            "-p",
            app,
            "--message-format=json-render-diagnostics",
        ]);
        if all_features {
            cmd.arg("--all-features");
        } else if target != Target::Local {
            cmd.args(["--no-default-features", "--features", target.name()]);
        }
        eprintln!("    Running `{}`", describe(&cmd));
        let output = cmd
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("could not start `{}`: {e}", describe(&cmd)))?;
        if !output.status.success() {
            return Err(format!(
                "`{}` failed ({}); does {app} have a `{}` feature?",
                describe(&cmd),
                output.status,
                target.name()
            ));
        }
        let executable = built_executable(&String::from_utf8_lossy(&output.stdout), app)
            .ok_or_else(|| format!("`{}` built no executable of {app}", describe(&cmd)))?;
        let dir = tempfile::Builder::new()
            .prefix("nube-invoke-")
            .tempdir()
            .map_err(|e| format!("cannot create a scratch folder: {e}"))?;
        let name = Path::new(&executable)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| app.to_owned());
        std::fs::copy(&executable, dir.path().join(&name))
            .map_err(|e| format!("cannot copy {executable}: {e}"))?;
        Ok(AppBuild { dir, name })
    }

    /// The copied executable.
    fn executable(&self) -> PathBuf {
        self.dir.path().join(&self.name)
    }

    /// The executable's file name.
    fn file_name(&self) -> &str {
        &self.name
    }

    /// The scratch folder (the Azure function app is laid out in it).
    fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// An exclusive lock on `<target dir>/nube-invoke.lock`, released when dropped (with
/// the file it is held through).
struct BuildLock {
    _file: std::fs::File,
}

impl BuildLock {
    fn take() -> Result<BuildLock, String> {
        let target_dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| crate::root().join("target"));
        std::fs::create_dir_all(&target_dir)
            .map_err(|e| format!("cannot create {}: {e}", target_dir.display()))?;
        let path = target_dir.join("nube-invoke.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        file.lock()
            .map_err(|e| format!("cannot lock {}: {e}", path.display()))?;
        Ok(BuildLock { _file: file })
    }
}

/// The executable of `app`'s binary among cargo's JSON messages.
fn built_executable(messages: &str, app: &str) -> Option<String> {
    let manifest_suffix = format!("{app}{}Cargo.toml", std::path::MAIN_SEPARATOR);
    messages
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| {
            m["manifest_path"]
                .as_str()
                .is_some_and(|p| p.ends_with(&manifest_suffix))
        })
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .find_map(|m| m["executable"].as_str().map(str::to_owned))
}

/// How long the function's process, or a stand-in, may take to start.
const START_PATIENCE: Duration = Duration::from_secs(60);

/// A process this command started, its output in a log file; killed when dropped.
struct Process {
    what: String,
    child: Child,
    log: tempfile::NamedTempFile,
}

impl Process {
    /// Starts `cmd` with its stdout and stderr in a log file.
    fn start(what: &str, cmd: &mut Command) -> Result<Process, String> {
        let log = tempfile::NamedTempFile::new()
            .map_err(|e| format!("cannot create a log file for {what}: {e}"))?;
        let out = log.reopen().map_err(|e| e.to_string())?;
        let err = log.reopen().map_err(|e| e.to_string())?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("could not start {what} (`{}`): {e}", describe(cmd)))?;
        Ok(Process {
            what: what.to_owned(),
            child,
            log,
        })
    }

    /// What the process printed so far.
    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// An error if the process has exited, with its log.
    fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(self.exited(status)),
            _ => Ok(()),
        }
    }

    /// That the process exited with `status`, and its log.
    fn exited(&self, status: ExitStatus) -> String {
        format!("{} exited ({status}):\n{}", self.what, self.log_text())
    }

    /// Waits until the process accepts connections on `port` of loopback.
    fn wait_for_port(&mut self, port: u16) -> Result<(), String> {
        match wait_ready(
            &mut self.child,
            START_PATIENCE,
            Duration::from_millis(20),
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        ) {
            Ok(_) => Ok(()),
            Err(Unready::Exited(status)) => Err(self.exited(status)),
            Err(Unready::TimedOut) => Err(format!(
                "{} did not listen on port {port} within {START_PATIENCE:?}:\n{}",
                self.what,
                self.log_text()
            )),
        }
    }

    /// Prints the process's log on stderr, under a heading.
    fn print_log(&self) {
        // Let the process finish the lines of the invocation it just answered.
        std::thread::sleep(Duration::from_millis(200));
        let text = self.log_text();
        eprintln!("---- {}'s log ----", self.what);
        eprint!("{text}");
        if !text.is_empty() && !text.ends_with('\n') {
            eprintln!();
        }
        eprintln!("---- end of {}'s log ----", self.what);
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `start` (a shared emulator launcher, which panics when it cannot start) and
/// turns a panic into an error naming `what`.
fn launch<T>(what: &str, start: impl FnOnce() -> T) -> Result<T, String> {
    eprintln!("    Starting {what}");
    // The launcher's panic is this error, not a crash: no panic message of its own.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(start));
    std::panic::set_hook(hook);
    started.map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        format!("could not start {what}: {message}")
    })
}

/// Sends `request` to the process listening on `port`, printing the request and the
/// response; the invocation failed when an HTTP function answers 5xx or an event
/// function anything but 2xx.
fn exchange_http(
    process: &mut Process,
    port: u16,
    invocation: &Invocation,
    request: &HttpRequest,
) -> Result<Exchange, String> {
    print_request(&format!("to {}", process.what), request);
    let patience = Duration::from_secs_f64(invocation.function.timeout_seconds + 30.0);
    let sent = wire::send(port, request, patience);
    let response = match sent {
        Ok(r) => r,
        Err(e) => {
            process.print_log();
            process.check_alive()?;
            return Err(e);
        }
    };
    print_response(&format!("from {}", process.what), &response);
    process.print_log();
    let is_http = matches!(invocation.function.trigger, TriggerManifest::Http { .. });
    let failed = if is_http {
        response.status >= 500
    } else {
        !(200..300).contains(&response.status)
    };
    Ok(Exchange {
        failed,
        status: response.status,
        body: response.body,
    })
}

/// Prints the request as sent, on stdout.
fn print_request(heading: &str, request: &HttpRequest) {
    println!("=== request: {heading} ===");
    println!("{} {} HTTP/1.1", request.method, request.path_and_query);
    for (name, value) in &request.headers {
        println!("{name}: {value}");
    }
    println!();
    print_body(&request.body, content_type(&request.headers));
}

/// Prints a JSON payload (a Lambda event or answer), on stdout.
fn print_json(heading: &str, value: &Value) {
    println!("=== {heading} ===");
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// Prints a response, on stdout.
fn print_response(heading: &str, response: &wire::Response) {
    println!("=== response: {heading} ===");
    println!("HTTP/1.1 {} {}", response.status, response.reason);
    for (name, value) in &response.headers {
        println!("{name}: {value}");
    }
    println!();
    print_body(&response.body, content_type(&response.headers));
}

fn content_type(headers: &[(String, String)]) -> Option<&str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.as_str())
}

/// Prints a body: JSON pretty-printed, text as it is, bytes as their size.
fn print_body(body: &[u8], content_type: Option<&str>) {
    if body.is_empty() {
        return;
    }
    if let Ok(json) = serde_json::from_slice::<Value>(body) {
        println!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        );
    } else if let Ok(text) = std::str::from_utf8(body) {
        println!("{text}");
    } else {
        println!(
            "<{} bytes of {}>",
            body.len(),
            content_type.unwrap_or("binary data")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery_app() -> Manifest {
        delivery_app::app().manifest()
    }

    #[test]
    fn an_unknown_function_lists_the_functions() {
        let manifest = delivery_app();
        assert_eq!(
            crate::samples::find_function(&manifest, "todo").unwrap_err(),
            "delivery-app has no function \"todo\" (there is: todos, images-api, make-thumbnails, \
             orders-api, orders-read-model, cleanup-expired-orders)"
        );
    }

    #[test]
    fn a_sample_of_another_kind_says_which_kind_the_function_takes() {
        let manifest = delivery_app();
        // As `invoke` checks it: against the kind of the function's trigger.
        let check = |function: &FunctionManifest, asked| {
            check_sample_kind(function, samples::kind_of(&function.trigger), asked)
        };
        let thumbnails = crate::samples::find_function(&manifest, "make-thumbnails").unwrap();
        assert_eq!(
            check(thumbnails, Kind::Http).unwrap_err(),
            "make-thumbnails is a blob function: it takes --sample blob, not --sample http"
        );
        let todos = crate::samples::find_function(&manifest, "todos").unwrap();
        assert_eq!(
            check(todos, Kind::Timer).unwrap_err(),
            "todos is an http function: it takes --sample http, not --sample timer"
        );
        assert!(check(todos, Kind::Http).is_ok());
    }

    #[test]
    fn cargo_messages_name_the_app_executable() {
        let messages = r#"{"reason":"compiler-artifact","manifest_path":"/w/core/Cargo.toml","target":{"kind":["lib"]},"executable":null}
{"reason":"compiler-artifact","manifest_path":"/w/examples/delivery-app/Cargo.toml","target":{"kind":["lib"]},"executable":null}
{"reason":"compiler-artifact","manifest_path":"/w/examples/delivery-app/Cargo.toml","target":{"kind":["bin"]},"executable":"/w/target/debug/delivery-app"}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            built_executable(messages, "delivery-app").as_deref(),
            Some("/w/target/debug/delivery-app")
        );
        assert_eq!(built_executable(messages, "baselines"), None);
    }

    /// An `--event` file holding `json`.
    fn event_file(json: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), json).unwrap();
        file
    }

    fn args(target: Target, function: &str, event: Option<&Path>, sample: Option<Kind>) -> Args {
        Args {
            target,
            function: function.into(),
            event: event.map(Path::to_path_buf),
            sample,
            app: "delivery-app".into(),
            // The binary `cargo test --all-features` builds, as the end-to-end tests
            // use it: a build with other features would replace it under them.
            all_features: true,
        }
    }

    fn json(exchange: &Exchange) -> Value {
        serde_json::from_slice(&exchange.body)
            .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&exchange.body)))
    }

    const NEW_TODO: &str = r#"{"method": "POST", "path": "/todos", "body": {"title": "milk"}}"#;

    #[test]
    fn local_serves_a_request_and_fires_event_functions_through_its_admin_endpoint() {
        let todo = event_file(NEW_TODO);
        let created = invoke(&args(Target::Local, "todos", Some(todo.path()), None)).unwrap();
        assert_eq!(created.status, 201, "{created:?}");
        assert!(!created.failed);
        assert_eq!(json(&created)["title"], "milk");

        // No payload: the sample of the function's own kind (a timer: the admin endpoint's
        // empty body).
        let ticked = invoke(&args(Target::Local, "cleanup-expired-orders", None, None)).unwrap();
        assert_eq!(ticked.status, 200, "{ticked:?}");
        assert_eq!(json(&ticked)["outcome"], "succeeded");

        // The sample document does not exist in a fresh data folder: the invocation fails.
        let missing = invoke(&args(
            Target::Local,
            "orders-read-model",
            None,
            Some(Kind::Document),
        ))
        .unwrap();
        assert!(missing.failed, "{missing:?}");
        assert_eq!(missing.status, 404);
    }

    #[test]
    fn selection_errors_say_what_exists() {
        let error = invoke(&args(Target::Local, "nope", None, None)).unwrap_err();
        assert!(
            error.starts_with("delivery-app has no function \"nope\" (there is: todos, "),
            "{error}"
        );
        let error = invoke(&args(Target::Local, "todos", None, Some(Kind::Blob))).unwrap_err();
        assert_eq!(
            error,
            "todos is an http function: it takes --sample http, not --sample blob"
        );
        let mut unknown_app = args(Target::Local, "todos", None, None);
        unknown_app.app = "shop".into();
        assert!(
            invoke(&unknown_app)
                .unwrap_err()
                .starts_with("no app \"shop\" under examples/")
        );
    }

    #[test]
    fn gcp_serves_the_function_as_cloud_run_and_cloud_scheduler_call_it() {
        let todo = event_file(NEW_TODO);
        let created = invoke(&args(Target::Gcp, "todos", Some(todo.path()), None)).unwrap();
        assert_eq!(created.status, 201, "{created:?}");
        assert_eq!(json(&created)["title"], "milk");

        // Cloud Scheduler's HTTP target: a POST to the service.
        let scheduler = event_file(
            r#"{"method": "POST", "path": "/", "headers": {"user-agent": "Google-Cloud-Scheduler"}}"#,
        );
        let ticked = invoke(&args(
            Target::Gcp,
            "cleanup-expired-orders",
            Some(scheduler.path()),
            None,
        ))
        .unwrap();
        assert!(!ticked.failed && ticked.status == 200, "{ticked:?}");
    }

    #[test]
    fn aws_runs_the_bootstrap_behind_cargo_lambdas_emulator() {
        // The sample: an API Gateway HTTP API request for the function's first route.
        let listed = invoke(&args(Target::Aws, "todos", None, Some(Kind::Http))).unwrap();
        assert_eq!(listed.status, 200, "{listed:?}");
        assert_eq!(json(&listed)["statusCode"], 200);

        // A payload the function does not take: Lambda's function error.
        let wrong = event_file(r#"{"hello": "world"}"#);
        let refused = invoke(&args(
            Target::Aws,
            "cleanup-expired-orders",
            Some(wrong.path()),
            None,
        ))
        .unwrap();
        assert!(refused.failed, "{refused:?}");
        assert_eq!(json(&refused)["errorType"], "nube.EventMismatch");
    }

    #[test]
    fn azure_plays_the_functions_host_for_the_custom_handler() {
        // Forwarded under the route prefix, which the file leaves out.
        let todo = event_file(NEW_TODO);
        let created = invoke(&args(Target::Azure, "todos", Some(todo.path()), None)).unwrap();
        assert_eq!(created.status, 201, "{created:?}");
        assert_eq!(json(&created)["title"], "milk");

        // The sample timerTrigger invocation.
        let ticked = invoke(&args(Target::Azure, "cleanup-expired-orders", None, None)).unwrap();
        assert!(!ticked.failed && ticked.status == 200, "{ticked:?}");
        assert!(json(&ticked)["Logs"].is_array());
    }

    #[test]
    fn the_help_shows_every_target_and_example() {
        for target in [
            "--target aws",
            "--target azure",
            "--target gcp",
            "--target local",
        ] {
            assert!(LONG_ABOUT.contains(target), "{target}");
        }
    }
}
