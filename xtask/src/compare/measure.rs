//! `cargo xtask compare --measure`: each target's binary started here as its cloud
//! starts it, timed from exec to ready, and its idle memory.
//!
//! The clouds' binaries are the artifacts `cargo xtask package` writes (packaged first
//! when missing): the Lambda `bootstrap` out of `bootstrap.zip`, the Azure custom
//! handler in its function app folder, the static Cloud Run binary. The local one is
//! `cargo build --release`'s. No cloud is reached: stores that connect lazily (DynamoDB,
//! S3, Blob and Cloud Storage) get settings pointing at a closed port; the two that
//! connect at start-up (Cosmos DB reads its account's properties, Firestore opens its
//! gRPC channel) get a loopback stand-in ([`backend_stub`]).
//!
//! Ready means: AWS, the first `GET .../invocation/next` on a Runtime API emulated here
//! (`bench::aws::Driver`); Azure, `FUNCTIONS_CUSTOMHANDLER_PORT` accepts a connection;
//! GCP and local, `PORT` accepts a connection. Start-up is the median of [`STARTS`]
//! starts; idle memory is `VmRSS` one second after the last start was ready.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nube::manifest::Manifest;
use tempfile::TempDir;

use super::Target;
use super::model::{Row, artifact};
use crate::bench::aws::{Driver, NoPoll};
use crate::bench::{Unready, free_port, rss_kib, wait_ready};
use crate::package::aws::AppPackage;
use crate::{cargo, run_cmd};

/// Starts timed per target.
pub const STARTS: usize = 5;

/// How long a start may take before it counts as failed.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// A closed port on loopback: where the stores' settings point.
const NOWHERE: &str = "127.0.0.1:9";

/// What was measured for one target.
#[derive(Debug, Clone)]
pub struct Measured {
    /// The binary measured, relative to the workspace when inside it.
    pub binary: String,
    /// Exec to ready, median of [`STARTS`] starts, in milliseconds.
    pub start_ms: f64,
    /// Resident memory when idle, in KiB.
    pub rss_kib: u64,
}

/// The app rows `--measure` adds: start-up and idle memory (or why not measured).
pub fn rows(measured: &[(Target, Result<Measured, String>)]) -> Vec<Row> {
    let mut start = Row::new("start-up");
    let mut memory = Row::new("idle memory");
    for (target, result) in measured {
        match result {
            Ok(m) => {
                start.cells.push(vec![
                    format!("{:.1} ms (median of {STARTS})", m.start_ms),
                    format!("exec → {}", ready_means(*target)),
                    stores_note(*target).to_owned(),
                    format!("`{}`", m.binary),
                ]);
                memory
                    .cells
                    .push(vec![format!("{:.1} MiB RSS", m.rss_kib as f64 / 1024.0)]);
            }
            Err(e) => {
                let why = vec![format!("not measured: {e}")];
                start.cells.push(why.clone());
                memory.cells.push(why);
            }
        }
    }
    vec![start, memory]
}

/// What the stores met at start-up.
fn stores_note(target: Target) -> &'static str {
    match target {
        Target::Local => "a fresh `NUBE_DATA_DIR` (creates `nube.db`)",
        Target::Aws => "`_HANDLER` = the first function; DynamoDB and S3 connect lazily",
        Target::Azure => "reads the Cosmos DB account's properties from a loopback stand-in",
        Target::Gcp => "opens the Firestore channel to a loopback stand-in",
    }
}

fn ready_means(target: Target) -> &'static str {
    match target {
        Target::Aws => "first `GET /runtime/invocation/next`",
        Target::Azure => "`FUNCTIONS_CUSTOMHANDLER_PORT` accepts",
        Target::Gcp | Target::Local => "`PORT` accepts",
    }
}

/// Measures `target`'s binary of the app.
pub fn measure(
    target: Target,
    app: &str,
    package: &AppPackage,
    manifest: &Manifest,
) -> Result<Measured, String> {
    let scratch = package.target_dir.join("nube/compare").join(target.name());
    std::fs::create_dir_all(&scratch)
        .map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
    let binary = binary(target, app, package, &scratch)?;
    eprintln!("    Measuring {} ({})", target.title(), binary.display());
    // One stand-in serves every start.
    let backend = backend_stub()?;
    let mut starts = Vec::new();
    let mut rss = 0;
    for i in 0..STARTS {
        let (mut child, took, guard) = start(target, &binary, &scratch, manifest, backend)?;
        starts.push(took.as_secs_f64() * 1000.0);
        if i + 1 == STARTS {
            std::thread::sleep(Duration::from_secs(1));
            rss = rss_kib(child.id());
        }
        let _ = child.kill();
        let _ = child.wait();
        drop(guard);
    }
    let start_ms = crate::bench::median(&mut starts);
    let root = crate::root();
    Ok(Measured {
        binary: binary
            .strip_prefix(&root)
            .unwrap_or(&binary)
            .display()
            .to_string(),
        start_ms,
        rss_kib: rss,
    })
}

/// The binary of `target` for `app` (its directory under examples/): built (local) or
/// taken out of the package, packaging first when there is none; the Lambda bootstrap is
/// unpacked into `scratch`.
fn binary(
    target: Target,
    app: &str,
    package: &AppPackage,
    scratch: &Path,
) -> Result<PathBuf, String> {
    if target == Target::Local {
        run_cmd(cargo().args([
            "build",
            "--release",
            "-p",
            &package.name,
            "--bin",
            &package.bin,
        ]))?;
        return Ok(package.target_dir.join("release").join(&package.bin));
    }
    let artifact_path = package.target_dir.join(artifact(target, app, &package.bin));
    if !artifact_path.exists() {
        eprintln!(
            "    {} is not built: packaging {app} for {} first",
            artifact_path.display(),
            target.name()
        );
        crate::package::run(crate::package::Args {
            target: target.name().to_owned(),
            app: app.to_owned(),
            arch: crate::package::Arch::X86_64,
            memory_mb: crate::package::DEFAULT_MEMORY_MB,
            project: crate::package::DEFAULT_PROJECT.to_owned(),
            region: crate::package::DEFAULT_REGION.to_owned(),
            service_account: None,
        })?;
    }
    match target {
        Target::Aws => {
            // The bootstrap as Lambda unpacks it.
            let out = scratch.join("bootstrap");
            let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", artifact_path.display());
            let file = std::fs::File::open(&artifact_path).map_err(|e| fail(&e))?;
            let mut zip = zip::ZipArchive::new(file).map_err(|e| fail(&e))?;
            let mut entry = zip.by_name("bootstrap").map_err(|e| fail(&e))?;
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).map_err(|e| fail(&e))?;
            std::fs::write(&out, bytes)
                .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| format!("cannot make {} executable: {e}", out.display()))?;
            Ok(out)
        }
        // The executable inside the function app folder (beside host.json).
        Target::Azure => {
            Ok(crate::package::out_dir(&package.target_dir, "azure", app).join(&package.bin))
        }
        _ => Ok(artifact_path),
    }
}

/// A backend stand-in on loopback for the stores that connect at start-up: it answers
/// an HTTP/1.1 request with the account properties a Cosmos DB account returns at its
/// root (nube-azure reads them before serving), and holds any other connection (the
/// Firestore client's gRPC channel) open without answering. It lives as long as the
/// process; [`measure`] starts one per target, for all its starts.
fn backend_stub() -> Result<u16, String> {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let endpoint = format!("http://127.0.0.1:{port}/");
    let account = serde_json::json!({
        "id": "nube-compare", "_rid": "nube-compare", "_self": "", "media": "//media/",
        "addresses": "//addresses/", "_dbs": "//dbs/",
        "writableLocations": [{"name": "Local", "databaseAccountEndpoint": endpoint}],
        "readableLocations": [{"name": "Local", "databaseAccountEndpoint": endpoint}],
        "enableMultipleWriteLocations": false,
        "userConsistencyPolicy": {"defaultConsistencyLevel": "Session"},
        "userReplicationPolicy": {"asyncReplication": false, "minReplicaSetSize": 1, "maxReplicasetSize": 4},
        "systemReplicationPolicy": {"minReplicaSetSize": 1, "maxReplicasetSize": 4},
        "readPolicy": {"primaryReadCoefficient": 1, "secondaryReadCoefficient": 1},
        "queryEngineConfiguration": "{}",
    })
    .to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let account = account.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    if buf[..n].starts_with(b"GET ") {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{account}",
                            account.len()
                        );
                    }
                }
            });
        }
    });
    Ok(port)
}

/// A started process, the time it took to be ready, and what must live as long as it:
/// the Runtime API (AWS) and its data directory (local).
type Started = (Child, Duration, (Option<Driver>, Option<TempDir>));

/// Starts `binary` as `target`'s cloud does and waits until it is ready; `backend` is
/// the port of the [`backend_stub`].
fn start(
    target: Target,
    binary: &Path,
    scratch: &Path,
    manifest: &Manifest,
    backend: u16,
) -> Result<Started, String> {
    let mut cmd = Command::new(binary);
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null());
    let log_path = scratch.join("output.log");
    let log = std::fs::File::create(&log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let log_out = log
        .try_clone()
        .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
    cmd.stdout(log_out).stderr(log);
    let port = free_port();
    let mut driver = None;
    let mut data = None;
    match target {
        Target::Local => {
            let dir = tempfile::Builder::new()
                .prefix("data-")
                .tempdir_in(scratch)
                .map_err(|e| format!("cannot create a directory in {}: {e}", scratch.display()))?;
            cmd.env("PORT", port.to_string())
                .env("NUBE_DATA_DIR", dir.path());
            data = Some(dir);
        }
        Target::Aws => {
            let d = Driver::start()?;
            let function = manifest
                .functions
                .first()
                .map(|f| f.name.clone())
                .unwrap_or_default();
            cmd.env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{}", d.port))
                .env("_HANDLER", function)
                .env(
                    "AWS_LAMBDA_FUNCTION_NAME",
                    format!("{}-compare", manifest.app),
                )
                .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
                .env(
                    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                    crate::package::DEFAULT_MEMORY_MB.to_string(),
                )
                .env("AWS_REGION", "us-east-1")
                .env("AWS_DEFAULT_REGION", "us-east-1")
                .env("AWS_ACCESS_KEY_ID", "compare")
                .env("AWS_SECRET_ACCESS_KEY", "compare")
                .env("AWS_ENDPOINT_URL", format!("http://{NOWHERE}"))
                .env("TZ", ":UTC");
            driver = Some(d);
        }
        Target::Azure => {
            let app_root = binary.parent().unwrap_or(Path::new("."));
            cmd.current_dir(app_root)
                .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
                .env("FUNCTIONS_APP_ROOT_PATH", app_root)
                // The storage emulator's well-known account, and a Cosmos DB account at
                // a closed port: enough to build the stores, which connect lazily.
                .env(
                    nube_azure::names::STORAGE_CONNECTION,
                    "UseDevelopmentStorage=true",
                )
                .env(
                    nube_azure::names::COSMOS_CONNECTION,
                    format!("AccountEndpoint=http://127.0.0.1:{backend}/;AccountKey=C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==;"),
                )
                .env(nube_azure::names::COSMOS_DATABASE_SETTING, &manifest.app)
                // The stand-in speaks HTTP/1.1 and JSON.
                .env("AZURE_COSMOS_CONNECTION_POOL_IS_HTTP2_ALLOWED", "false")
                .env("AZURE_COSMOS_BINARY_ENCODING_ENABLED", "false");
        }
        Target::Gcp => {
            cmd.env("PORT", port.to_string())
                .env("K_SERVICE", &manifest.app)
                .env("K_REVISION", format!("{}-00001-cmp", manifest.app))
                .env("GOOGLE_CLOUD_PROJECT", crate::package::DEFAULT_PROJECT)
                .env("FIRESTORE_EMULATOR_HOST", format!("127.0.0.1:{backend}"))
                .env("STORAGE_EMULATOR_HOST", format!("http://{NOWHERE}"));
        }
    }
    let t0 = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let ready = match &driver {
        Some(d) => d.time_to_first_poll(&mut child, t0, READY_WITHIN),
        None => wait_ready(&mut child, READY_WITHIN, Duration::from_micros(200), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        })
        .map(|_| t0.elapsed())
        .map_err(NoPoll::Unready),
    };
    match ready {
        Ok(took) => Ok((child, took, (driver, data))),
        Err(NoPoll::Unready(Unready::Exited(status))) => {
            let output = std::fs::read_to_string(&log_path).unwrap_or_default();
            let last = output
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            Err(format!("it exited at start-up ({status}): {}", last.trim()))
        }
        Err(why) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(match why {
                NoPoll::InitError(e) => format!("init error: {e}"),
                NoPoll::Unready(_) => format!("not ready within {READY_WITHIN:?}"),
            })
        }
    }
}
