//! The tools the tests need: Python tools in `<workspace>/.tools/venv`, npm emulators in
//! `<workspace>/.tools/npm` (both git-ignored).
//!
//! - moto in server mode: the AWS adapter's DynamoDB and S3 backends are tested against
//!   it (`adapters/aws/tests`);
//! - cfn-lint and the SAM CLI (`sam validate`): the packager's SAM template is checked
//!   with both (`xtask/src/package`);
//! - zig (PyPI `ziglang`): the linker `cargo zigbuild` uses to build Lambda bootstraps
//!   against an old glibc (`cargo xtask package`);
//! - cargo-lambda (its PyPI package ships the binary): its Lambda emulator (`cargo lambda
//!   watch --only-lambda-apis`) is the Runtime API the delivery app's real `bootstrap` is
//!   driven through (`examples/delivery-app/tests/aws_e2e.rs`);
//! - gcp-storage-emulator: the GCP adapter's Cloud Storage buckets are tested against it
//!   (`adapters/gcp/tests/gcs.rs`, `NUBE_GCS_EMULATOR`).
//!
//! The Cloud Firestore emulator is not installed here: it comes from Debian's
//! `google-cloud-cli-firestore-emulator` package (Java 17+); [`firestore_emulator`] finds
//! it for `adapters/gcp/tests/firestore.rs` (`NUBE_FIRESTORE_EMULATOR`).
//!
//! The install is pinned and idempotent: a marker file in the venv records the
//! requirements installed, and a run whose requirements match it does nothing.
//! [`ensure_cargo_zigbuild`] does the same for `cargo-zigbuild` in `.tools/cargo`, and
//! [`ensure_npm_tools`] for the emulators from npm in `.tools/npm` (the Azure adapter's
//! backends are tested against them, `adapters/azure/tests`): the Cosmos DB emulator
//! `@vercel/cosmosdb-server` (`NUBE_COSMOS_SERVER`) and Azurite's blob service
//! (`NUBE_AZURITE_BLOB`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{root, run_cmd};

/// What goes into the venv. Change a pin here and the next `cargo xtask test`
/// reinstalls.
const REQUIREMENTS: &[&str] = &[
    "moto[server]==5.2.5",
    "cfn-lint==1.58.0",
    "aws-sam-cli==1.170.0",
    "ziglang==0.15.2",
    "cargo-lambda==1.9.2",
    "gcp-storage-emulator==2026.7.19",
];

/// Programs the requirements put in the venv's `bin/`; a venv missing one is reinstalled.
const PROGRAMS: &[&str] = &[
    "moto_server",
    "cfn-lint",
    "sam",
    "cargo-lambda",
    "gcp-storage-emulator",
];

/// The `cargo-zigbuild` version `cargo xtask package` installs into `.tools/cargo`.
const CARGO_ZIGBUILD_VERSION: &str = "0.24.1";

/// The file in the venv recording what was installed.
const MARKER: &str = "nube-requirements.txt";

/// The venv directory: `<workspace>/.tools/venv`.
pub fn venv_dir() -> PathBuf {
    root().join(".tools").join("venv")
}

/// A program installed in the venv (`bin/NAME`, or `Scripts\NAME.exe` on Windows).
pub fn venv_program(venv: &Path, name: &str) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join(format!("{name}.exe"))
    } else {
        venv.join("bin").join(name)
    }
}

/// The `moto_server` program inside `venv`.
pub fn moto_server(venv: &Path) -> PathBuf {
    venv_program(venv, "moto_server")
}

/// The `gcp-storage-emulator` program inside `venv` (`NUBE_GCS_EMULATOR`).
pub fn gcs_emulator(venv: &Path) -> PathBuf {
    venv_program(venv, "gcp-storage-emulator")
}

/// Where Debian's `google-cloud-cli-firestore-emulator` package installs the emulator.
const PACKAGED_FIRESTORE_EMULATOR: &str =
    "/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud_firestore_emulator";

/// The Cloud Firestore emulator's start script (`NUBE_FIRESTORE_EMULATOR`): the variable
/// when already set, else the Debian package's, else the one beside `gcloud` on the
/// `PATH` (`<sdk>/platform/cloud-firestore-emulator/`). `None` when there is none (the
/// Firestore tests then fail, saying what to install).
pub fn firestore_emulator() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NUBE_FIRESTORE_EMULATOR").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let packaged = PathBuf::from(PACKAGED_FIRESTORE_EMULATOR);
    if packaged.exists() {
        return Some(packaged);
    }
    let gcloud = std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("gcloud"))
        .find(|p| p.exists())?;
    let sdk = std::fs::canonicalize(gcloud)
        .ok()?
        .parent()?
        .parent()?
        .to_owned();
    Some(sdk.join("platform/cloud-firestore-emulator/cloud_firestore_emulator"))
        .filter(|p| p.exists())
}

/// The `cargo-lambda` program inside `venv` (run as `cargo-lambda lambda watch ...`).
pub fn cargo_lambda(venv: &Path) -> PathBuf {
    venv_program(venv, "cargo-lambda")
}

/// Makes sure the venv exists and holds exactly the pinned requirements; returns the
/// venv's directory. Uses `$NUBE_PYTHON` (default `python3`) to create the venv.
pub fn ensure_python_tools() -> Result<PathBuf, String> {
    let venv = venv_dir();
    let wanted = requirements_text();
    let python = venv_program(&venv, "python");
    let marker = venv.join(MARKER);
    if python.exists()
        && PROGRAMS.iter().all(|p| venv_program(&venv, p).exists())
        && std::fs::read_to_string(&marker).is_ok_and(|t| t == wanted)
    {
        eprintln!(
            "    Python tools up to date in {} ({})",
            venv.display(),
            REQUIREMENTS.join(", ")
        );
        return Ok(venv);
    }
    if !python.exists() {
        let base = std::env::var("NUBE_PYTHON").unwrap_or_else(|_| "python3".into());
        eprintln!("    Creating a Python venv in {}", venv.display());
        std::fs::create_dir_all(venv.parent().expect("the venv has a parent"))
            .map_err(|e| format!("could not create {}: {e}", venv.display()))?;
        run_cmd(
            Command::new(&base)
                .args(["-m", "venv", "--clear"])
                .arg(&venv),
        )
        .map_err(|e| {
            format!(
                "{e}\n  the tests need Python 3.9+ with the venv module (Debian: apt-get install python3-venv); \
                 set NUBE_PYTHON to use another interpreter"
            )
        })?;
    }
    // A stale marker must not survive a failed install.
    let _ = std::fs::remove_file(&marker);
    eprintln!("    Installing {} (from PyPI)", REQUIREMENTS.join(", "));
    run_cmd(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--progress-bar",
                "off",
            ])
            .args(REQUIREMENTS),
    )
    .map_err(|e| {
        format!(
            "{e}\n  pip could not install the test tools; check the network to PyPI and the free disk space (`df -h`), or delete {} and retry",
            venv.display()
        )
    })?;
    if let Some(missing) = PROGRAMS
        .iter()
        .map(|p| venv_program(&venv, p))
        .find(|p| !p.exists())
    {
        return Err(format!(
            "pip installed {} but {} is missing",
            REQUIREMENTS.join(", "),
            missing.display()
        ));
    }
    std::fs::write(&marker, wanted)
        .map_err(|e| format!("could not write {}: {e}", marker.display()))?;
    eprintln!("    Installed the Python tools in {}", venv.display());
    Ok(venv)
}

fn requirements_text() -> String {
    REQUIREMENTS.iter().map(|r| format!("{r}\n")).collect()
}

/// Makes sure `<workspace>/.tools/cargo/bin/cargo-zigbuild` is the pinned version,
/// installing it with `cargo install --locked` (a few minutes, once) when it is not;
/// returns its path. Zig itself comes from the venv ([`ensure_python_tools`]).
pub fn ensure_cargo_zigbuild() -> Result<PathBuf, String> {
    let install_root = root().join(".tools").join("cargo");
    let program = install_root
        .join("bin")
        .join(format!("cargo-zigbuild{}", std::env::consts::EXE_SUFFIX));
    let installed = Command::new(&program)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    if installed
        .as_deref()
        .is_some_and(|v| v.split_whitespace().any(|w| w == CARGO_ZIGBUILD_VERSION))
    {
        eprintln!(
            "    cargo-zigbuild {CARGO_ZIGBUILD_VERSION} up to date in {}",
            install_root.display()
        );
        return Ok(program);
    }
    eprintln!(
        "    Installing cargo-zigbuild {CARGO_ZIGBUILD_VERSION} into {} (from crates.io; compiles once, a few minutes)",
        install_root.display()
    );
    run_cmd(
        crate::cargo()
            .args([
                "install",
                "cargo-zigbuild",
                "--version",
                CARGO_ZIGBUILD_VERSION,
                "--locked",
                "--root",
            ])
            .arg(&install_root),
    )
    .map_err(|e| {
        format!("{e}\n  cargo could not install cargo-zigbuild; check the network to crates.io")
    })?;
    if !program.exists() {
        return Err(format!(
            "cargo install finished but {} is missing",
            program.display()
        ));
    }
    Ok(program)
}

/// Google's Node.js Functions Framework, which `cargo xtask bench gcp` measures nube
/// against (its program: `functions-framework`).
pub const FUNCTIONS_FRAMEWORK: &str = "@google-cloud/functions-framework@5.0.5";

/// The npm packages `.tools/npm` holds: the Azure emulators and the Functions
/// Framework. Change a pin here and the next `cargo xtask test` reinstalls.
const NPM_PACKAGES: &[&str] = &[
    "@vercel/cosmosdb-server@1.0.1",
    "azurite@3.37.0",
    FUNCTIONS_FRAMEWORK,
];

/// Programs the npm packages put in `node_modules/.bin`; a folder missing one is
/// reinstalled.
const NPM_PROGRAMS: &[&str] = &["cosmosdb-server", "azurite-blob", "functions-framework"];

/// The file in `.tools/npm` recording what was installed.
const NPM_MARKER: &str = "nube-npm-packages.txt";

/// The npm folder: `<workspace>/.tools/npm`.
pub fn npm_dir() -> PathBuf {
    root().join(".tools").join("npm")
}

/// A program an npm package installed in `dir` (`node_modules/.bin/NAME`, `NAME.cmd`
/// on Windows).
pub fn npm_program(dir: &Path, name: &str) -> PathBuf {
    let bin = dir.join("node_modules").join(".bin");
    if cfg!(windows) {
        bin.join(format!("{name}.cmd"))
    } else {
        bin.join(name)
    }
}

/// The Cosmos DB emulator (`cosmosdb-server`) inside `dir`: `NUBE_COSMOS_SERVER`.
pub fn cosmos_server(dir: &Path) -> PathBuf {
    npm_program(dir, "cosmosdb-server")
}

/// Azurite's blob service (`azurite-blob`) inside `dir`: `NUBE_AZURITE_BLOB`.
pub fn azurite_blob(dir: &Path) -> PathBuf {
    npm_program(dir, "azurite-blob")
}

/// Makes sure `.tools/npm` holds exactly the pinned npm packages, installing them with
/// `npm install --prefix .tools/npm` when it does not; returns the folder. Uses
/// `$NUBE_NPM` (default `npm`); the emulators need Node.js 20 or newer.
pub fn ensure_npm_tools() -> Result<PathBuf, String> {
    let dir = npm_dir();
    let wanted: String = NPM_PACKAGES.iter().map(|p| format!("{p}\n")).collect();
    let marker = dir.join(NPM_MARKER);
    if NPM_PROGRAMS.iter().all(|p| npm_program(&dir, p).exists())
        && std::fs::read_to_string(&marker).is_ok_and(|t| t == wanted)
    {
        eprintln!(
            "    npm tools up to date in {} ({})",
            dir.display(),
            NPM_PACKAGES.join(", ")
        );
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("could not create {}: {e}", dir.display()))?;
    // A stale marker must not survive a failed install.
    let _ = std::fs::remove_file(&marker);
    let npm = std::env::var("NUBE_NPM").unwrap_or_else(|_| "npm".into());
    eprintln!("    Installing {} (from npm)", NPM_PACKAGES.join(", "));
    run_cmd(
        Command::new(&npm)
            .arg("install")
            .arg("--prefix")
            .arg(&dir)
            .args([
                "--no-save",
                "--no-audit",
                "--no-fund",
                "--loglevel",
                "error",
            ])
            .args(NPM_PACKAGES),
    )
    .map_err(|e| {
        format!(
            "{e}\n  npm could not install the emulators; the Azure tests need Node.js 20+ with npm \
             (Debian: apt-get install nodejs npm; set NUBE_NPM to use another npm), and the network \
             to the npm registry; or delete {} and retry",
            dir.display()
        )
    })?;
    if let Some(missing) = NPM_PROGRAMS
        .iter()
        .map(|p| npm_program(&dir, p))
        .find(|p| !p.exists())
    {
        return Err(format!(
            "npm installed {} but {} is missing",
            NPM_PACKAGES.join(", "),
            missing.display()
        ));
    }
    std::fs::write(&marker, wanted)
        .map_err(|e| format!("could not write {}: {e}", marker.display()))?;
    eprintln!("    Installed the npm tools in {}", dir.display());
    Ok(dir)
}

/// Debian's chromium: the headless browser `cargo xtask compare`'s page is checked in
/// (`NUBE_CHROMIUM`).
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The headless browser: `$NUBE_CHROMIUM` when already set (as the compare page's test
/// reads it), else Debian's chromium, installed when [`CHROMIUM`] is missing (`apt-get
/// install chromium`; needs root and Debian's package archive); returns its path.
pub fn ensure_chromium() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("NUBE_CHROMIUM").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let chromium = PathBuf::from(CHROMIUM);
    if chromium.is_file() {
        eprintln!("    chromium is installed ({CHROMIUM})");
        return Ok(chromium);
    }
    let how = "install Debian's chromium (`sudo apt-get install --no-install-recommends chromium`) and retry, \
               or set NUBE_CHROMIUM to a Chromium or Chrome you have";
    eprintln!("    Installing chromium (Debian's package, for the compare page's test)");
    for args in [
        &["update", "-qq"][..],
        &[
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "chromium",
        ][..],
    ] {
        run_cmd(
            Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
        .map_err(|e| format!("{e}\n  {how}"))?;
    }
    if chromium.is_file() {
        Ok(chromium)
    } else {
        Err(format!(
            "apt-get installed chromium, but {CHROMIUM} is missing; {how}"
        ))
    }
}
