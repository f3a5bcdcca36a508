//! `cargo xtask package --target aws`: the app as one Lambda `bootstrap` and a SAM
//! template, in `target/nube/aws/<app>/`.
//!
//! The bootstrap is cross-built with `cargo zigbuild` against glibc 2.34, the glibc of
//! Amazon Linux 2023 (`provided.al2023`): a plain `cargo build` on a newer host links
//! symbols (`GLIBC_2.35`+) that Lambda's loader refuses at start-up. The check after
//! the build reads the ELF's version needs, so a regression fails here, not on AWS.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use nube::manifest::Manifest;
use serde_json::Value;

use super::Arch;
use super::elf::{self, GlibcVersion};
use super::sam::{self, Options};
use crate::{cargo, describe, root, run_cmd, tools};

/// The newest glibc on Amazon Linux 2023, the OS of `provided.al2023`.
pub const MAX_GLIBC: GlibcVersion = GlibcVersion(2, 34, 0);

/// The cargo profile of the bootstrap (size-optimised; see the workspace Cargo.toml).
pub(crate) const PROFILE: &str = "release-small";

/// The cargo feature an app enables to run on Lambda.
pub(crate) const FEATURE: &str = "aws";

const STEPS: usize = 7;

fn step(n: usize, what: impl std::fmt::Display) {
    eprintln!("[{n}/{STEPS}] {what}");
}

/// What `cargo metadata` says about the app.
pub(crate) struct AppPackage {
    /// Its package name (`-p`).
    pub name: String,
    /// Its binary's name.
    pub bin: String,
    /// Cargo's target directory.
    pub target_dir: PathBuf,
}

/// Packages `app` for AWS Lambda.
pub fn package(app: &str, arch: Arch, memory_mb: u32) -> Result<(), String> {
    let started = Instant::now();
    let package = app_package(
        app,
        FEATURE,
        "add `aws = [\"dep:nube-aws\", \"nube-aws/dynamodb\", \"nube-aws/s3\"]` and call `nube_aws::run` in its main",
    )?;

    step(
        1,
        format_args!("Reading {app}'s manifest (`{app} --nube-manifest`, host build)"),
    );
    let manifest = host_manifest(&package.name, &package.bin)?;

    step(2, "Rendering the SAM template");
    let options = Options {
        arch,
        memory_mb,
        ..Options::default()
    };
    let template = sam::render_sam(&manifest, &options)?;
    for warning in sam::warnings(&manifest) {
        eprintln!("warning: {warning}");
    }

    step(
        3,
        "Checking the build tools (Rust std for the target, zig, cargo-zigbuild)",
    );
    let build_tools = ensure_build_tools(arch.triple())?;

    let zig_target = format!("{}.{}.{}", arch.triple(), MAX_GLIBC.0, MAX_GLIBC.1);
    step(
        4,
        format_args!(
            "Building the bootstrap: {app} with feature `{FEATURE}` (no default features), profile {PROFILE}, target {zig_target}"
        ),
    );
    let (binary, bytes) = cross_build(&build_tools, &package, FEATURE, arch.triple(), &zig_target)?;

    step(5, "Checking the bootstrap runs on provided.al2023");
    let max_glibc = check_bootstrap(&bytes, arch)?;
    eprintln!(
        "      {}: {}, needs {} at most (Amazon Linux 2023 has {MAX_GLIBC})",
        binary.display(),
        arch.lambda(),
        max_glibc.map_or("no glibc".to_owned(), |v| v.to_string()),
    );
    check_declares(&binary, arch, &manifest, app, &package)?;

    let out = super::out_dir(&package.target_dir, "aws", app);
    step(6, format_args!("Writing {}", out.display()));
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let zip_path = super::artifact(&package.target_dir, "aws", app, &package.bin);
    write_bootstrap_zip(&zip_path, &bytes)?;
    let template_path = out.join("template.yaml");
    write(&template_path, &pretty(&template))?;
    // Not `manifest.json`: the SAM CLI takes a directory holding one for a CDK app.
    write(
        &out.join("nube-manifest.json"),
        &pretty(&serde_json::to_value(&manifest).expect("a manifest is JSON")),
    )?;

    step(
        7,
        "Checking the template with cfn-lint, as written and as SAM transforms it",
    );
    // Beside the app's directory, so that `sam deploy` there never sees it.
    let transformed = out.with_file_name(format!("{app}.transformed.json"));
    eprintln!(
        "    Running SAM's transform (samtranslator, offline) into {}",
        transformed.display()
    );
    let status = Command::new(tools::venv_program(&build_tools.0, "python"))
        .args(["-c", sam::TRANSFORM_PY])
        .arg(&template_path)
        .arg(&transformed)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .status()
        .map_err(|e| format!("could not run the venv's python: {e}"))?;
    if !status.success() {
        return Err(format!(
            "SAM's transform refused the template ({status}); see its message above"
        ));
    }
    run_cmd(
        Command::new(tools::venv_program(&build_tools.0, "cfn-lint"))
            .arg("--")
            .arg(&template_path)
            .arg(&transformed),
    )
    .map_err(|e| format!("{e}\n  cfn-lint found problems in the template (above)"))?;

    let zip_size = std::fs::metadata(&zip_path).map(|m| m.len()).unwrap_or(0);
    let relative = out.strip_prefix(root()).unwrap_or(&out).to_path_buf();
    let secs = started.elapsed().as_secs();
    eprintln!(
        "    Finished packaging {app} for AWS Lambda ({}) in {}m {:02}s",
        arch.lambda(),
        secs / 60,
        secs % 60
    );
    eprintln!(
        "      {}  {zip_size} bytes (bootstrap {} bytes)",
        relative.join(&options.code_uri).display(),
        bytes.len()
    );
    eprintln!(
        "      {}  {}, {}, {}",
        relative.join("template.yaml").display(),
        count(manifest.functions.len(), "function"),
        count(manifest.collections.len(), "table"),
        count(manifest.buckets.len(), "bucket"),
    );
    eprintln!(
        "    Deploy with the SAM CLI (also in .tools/venv/bin/sam):\n      cd {} && sam deploy --guided",
        relative.display()
    );
    Ok(())
}

/// The tools a cross-build for `triple` needs: Rust's std for it (installed with
/// rustup when missing), zig (in the venv) and cargo-zigbuild; returns the venv and
/// the cargo-zigbuild program.
pub(super) fn ensure_build_tools(triple: &str) -> Result<(PathBuf, PathBuf), String> {
    ensure_std_installed(triple)?;
    let venv = tools::ensure_python_tools()?;
    let zigbuild = tools::ensure_cargo_zigbuild()?;
    Ok((venv, zigbuild))
}

/// Cross-builds the app's binary with `feature` (no default features, profile
/// [`PROFILE`]) by `cargo zigbuild --target zig_target` (a triple, with a glibc suffix
/// for gnu targets); returns its path (under `triple`) and its bytes.
pub(super) fn cross_build(
    (venv, zigbuild): &(PathBuf, PathBuf),
    package: &AppPackage,
    feature: &str,
    triple: &str,
    zig_target: &str,
) -> Result<(PathBuf, Vec<u8>), String> {
    let mut build = Command::new(zigbuild);
    build.current_dir(root()).arg("zigbuild");
    run_cmd(
        build_args(&mut build, &package.name, &[&package.bin], &[feature])
            .args(["--target", zig_target])
            // cargo-zigbuild runs zig as `python -m ziglang`: the venv's.
            .env(
                "CARGO_ZIGBUILD_PYTHON_PATH",
                tools::venv_program(venv, "python"),
            ),
    )
    .map_err(|e| format!("{e}\n  the binary did not build; see cargo's messages above"))?;
    let binary = package
        .target_dir
        .join(triple)
        .join(PROFILE)
        .join(&package.bin);
    let bytes = std::fs::read(&binary)
        .map_err(|e| format!("cannot read the built binary {}: {e}", binary.display()))?;
    Ok((binary, bytes))
}

/// Runs the built `binary` (for `arch`) with `--nube-manifest` when this machine can:
/// it must start and declare the same app as the host build of `app`.
pub(super) fn check_declares(
    binary: &Path,
    arch: super::Arch,
    manifest: &Manifest,
    app: &str,
    package: &AppPackage,
) -> Result<(), String> {
    if !arch.is_host() {
        eprintln!(
            "      (not started here: this machine cannot run an {} Linux binary)",
            arch.lambda()
        );
        return Ok(());
    }
    let built = run_manifest(Command::new(binary).arg("--nube-manifest"))?;
    if &built != manifest {
        return Err(format!(
            "{} declares a different app than the host build of {app}; run `cargo clean -p {}` and retry",
            binary.display(),
            package.name
        ));
    }
    eprintln!("      it starts, and declares the same app as the host build");
    Ok(())
}

/// Adds what selects a bootstrap build to `cmd` (`cargo build` or `cargo zigbuild`):
/// the bootstrap's profile, the package, its binaries, and `features` instead of the
/// default ones: an app keeps what only its local runtime needs behind a default
/// feature (the delivery-app's `local`), and the bootstrap leaves it out.
pub(super) fn build_args<'a>(
    cmd: &'a mut Command,
    package: &str,
    bins: &[&str],
    features: &[&str],
) -> &'a mut Command {
    cmd.args(["--profile", PROFILE, "-p", package]);
    for bin in bins {
        cmd.args(["--bin", bin]);
    }
    cmd.arg("--no-default-features");
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    cmd
}

/// `cargo build` of `bins` of `package` as bootstraps (the same profile and features
/// as [`package`]) for the host, with the host toolchain and linker: what
/// `cargo xtask bench aws` runs and measures. The binaries land in
/// `target/release-small/`.
pub(crate) fn host_build(package: &str, bins: &[&str], features: &[&str]) -> Command {
    let mut cmd = cargo();
    cmd.arg("build");
    build_args(&mut cmd, package, bins, features);
    cmd
}

/// The app's binary name and cargo's target directory, from `cargo metadata`; fails
/// when the app has no `feature` (the cargo feature that builds it for a cloud), saying
/// `how` to add it.
pub(crate) fn app_package(app: &str, feature: &str, how: &str) -> Result<AppPackage, String> {
    let mut cmd = cargo();
    cmd.args(["metadata", "--format-version", "1", "--no-deps"]);
    let output = cmd
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("could not start `{}`: {e}", describe(&cmd)))?;
    if !output.status.success() {
        return Err(format!("`{}` failed ({})", describe(&cmd), output.status));
    }
    let metadata: Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("`{}` printed no JSON: {e}", describe(&cmd)))?;
    let manifest_path = root().join("examples").join(app).join("Cargo.toml");
    let package = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["manifest_path"].as_str().map(Path::new) == Some(&manifest_path))
        .ok_or_else(|| {
            format!("examples/{app} is not a package of the workspace (Cargo.toml members)")
        })?;
    let name = package["name"].as_str().unwrap_or(app).to_owned();
    if package["features"].get(feature).is_none() {
        return Err(format!(
            "{name} (examples/{app}) has no `{feature}` feature, so it cannot be packaged for that cloud: {how} \
             (see examples/delivery-app)"
        ));
    }
    let bins: Vec<&str> = package["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .filter_map(|t| t["name"].as_str())
        .collect();
    let bin = match bins.as_slice() {
        [one] => one.to_string(),
        _ if bins.contains(&name.as_str()) => name.clone(),
        _ => {
            return Err(format!(
                "{name} has {} binaries ({}); the bootstrap is the one named {name}",
                bins.len(),
                bins.join(", ")
            ));
        }
    };
    let target_dir = metadata["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .ok_or_else(|| "cargo metadata names no target directory".to_owned())?;
    Ok(AppPackage {
        name,
        bin,
        target_dir,
    })
}

/// Builds the app for the host (default features) and runs it with `--nube-manifest`.
pub(crate) fn host_manifest(package: &str, bin: &str) -> Result<Manifest, String> {
    let mut cmd = cargo();
    cmd.args(["run", "-p", package, "--bin", bin, "--", "--nube-manifest"]);
    run_manifest(&mut cmd)
}

/// Runs `cmd` (an app binary asked for its manifest; stderr streams) and parses what it
/// prints.
pub(crate) fn run_manifest(cmd: &mut Command) -> Result<Manifest, String> {
    eprintln!("    Running `{}`", describe(cmd));
    let output = cmd
        // Whatever this shell has, the binary must take the local path, which prints.
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env_remove("FUNCTIONS_CUSTOMHANDLER_PORT")
        .env_remove("FUNCTIONS_HTTPWORKER_PORT")
        .env_remove("K_SERVICE")
        .env_remove("NUBE_TARGET")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("could not start `{}`: {e}", describe(cmd)))?;
    if !output.status.success() {
        return Err(format!("`{}` failed ({})", describe(cmd), output.status));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| {
        format!(
            "`{}` did not print a manifest ({e}); does its main call nube_local::run or a cloud's run?",
            describe(cmd)
        )
    })
}

/// Makes sure the toolchain has the Rust standard library for `arch` (zig links, but
/// rustc still compiles against that std): when it lacks it and the toolchain is
/// rustup's, runs `rustup target add` (once; later runs find it installed); otherwise
/// fails saying how to get it.
pub(super) fn ensure_std_installed(triple: &str) -> Result<(), String> {
    let sysroot = sysroot()?;
    let Err(missing) = check_std_in(&sysroot, triple) else {
        return Ok(());
    };
    if std::env::var_os("RUSTUP_TOOLCHAIN").is_none() {
        return Err(missing);
    }
    eprintln!("  Installing the Rust standard library for {triple} (`rustup target add {triple}`)");
    let status = Command::new("rustup")
        .current_dir(root())
        .args(["target", "add", triple])
        .status();
    match status {
        Ok(s) if s.success() => check_std_in(&sysroot, triple),
        Ok(s) => Err(format!(
            "`rustup target add {triple}` failed ({s}); {missing}"
        )),
        Err(e) => Err(format!("could not run rustup ({e}); {missing}")),
    }
}

/// The active toolchain's sysroot (`rustc --print sysroot`).
fn sysroot() -> Result<PathBuf, String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let output = Command::new(&rustc)
        .current_dir(root())
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("could not run `{rustc} --print sysroot`: {e}"))?;
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim(),
    ))
}

/// Whether the toolchain at `sysroot` has the standard library for `arch`; the error
/// says how to get it.
fn check_std_in(sysroot: &Path, triple: &str) -> Result<(), String> {
    let lib = sysroot.join("lib").join("rustlib").join(triple).join("lib");
    let has_std = std::fs::read_dir(&lib).is_ok_and(|entries| {
        entries
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().starts_with("libstd-"))
    });
    if has_std {
        Ok(())
    } else {
        Err(format!(
            "building for {triple} needs the Rust standard library for it, which this toolchain does \
             not have (no {}): install it with `rustup target add {triple}` (on a machine that \
             reaches static.rust-lang.org)",
            lib.display(),
        ))
    }
}

/// Checks that the bootstrap is an ELF for `arch` needing glibc [`MAX_GLIBC`] at most;
/// returns the newest glibc version it needs.
fn check_bootstrap(bytes: &[u8], arch: Arch) -> Result<Option<GlibcVersion>, String> {
    let needs = elf::needs(bytes).map_err(|e| format!("the bootstrap is {e}"))?;
    if needs.architecture != arch.elf_machine() {
        return Err(format!(
            "the bootstrap is built for {}, not {}",
            needs.architecture,
            arch.lambda()
        ));
    }
    let max = needs.max_glibc();
    if let Some(max) = max.filter(|&m| m > MAX_GLIBC) {
        let too_new: Vec<String> = needs
            .glibc
            .iter()
            .filter(|&&v| v > MAX_GLIBC)
            .map(ToString::to_string)
            .collect();
        return Err(format!(
            "the bootstrap needs {max} ({}), but provided.al2023 has {MAX_GLIBC}: Lambda would refuse \
             to start it; was it linked by zig with the `.{}.{}` target suffix?",
            too_new.join(", "),
            MAX_GLIBC.0,
            MAX_GLIBC.1
        ));
    }
    Ok(max)
}

/// Writes `bootstrap.zip`: one entry `bootstrap`, executable (Lambda runs it as is),
/// deflated at level 9, with a fixed date so that the same binary gives the same zip.
///
/// Level 9 makes the delivery-app's zip about 3.5% smaller than the default (6) for
/// well under a second; zopfli (levels 10+) would save 1% more and take tens of seconds.
pub fn write_bootstrap_zip(path: &Path, bootstrap: &[u8]) -> Result<(), String> {
    super::write_zip(path, [("bootstrap", bootstrap, true)])
}

/// `1 bucket`, `2 buckets`.
pub(super) fn count(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

pub(super) fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("JSON values serialise");
    text.push('\n');
    text
}

pub(super) fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_zip_holds_an_executable_bootstrap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bootstrap.zip");
        let content = b"\x7fELF pretend".repeat(1000);
        write_bootstrap_zip(&path, &content).unwrap();
        let mut archive = zip::ZipArchive::new(std::fs::File::open(&path).unwrap()).unwrap();
        assert_eq!(archive.len(), 1);
        let mut entry = archive.by_name("bootstrap").unwrap();
        assert_eq!(entry.unix_mode().map(|m| m & 0o777), Some(0o755));
        assert_eq!(entry.compression(), zip::CompressionMethod::Deflated);
        let mut back = Vec::new();
        entry.read_to_end(&mut back).unwrap();
        assert_eq!(back, content);
        drop(entry);
        // The same binary gives the same bytes: no timestamps inside.
        let first = std::fs::read(&path).unwrap();
        write_bootstrap_zip(&path, &content).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), first);
    }

    #[test]
    fn a_missing_std_says_how_to_get_it() {
        let sysroot = tempfile::tempdir().unwrap();
        let err = check_std_in(sysroot.path(), "aarch64-unknown-linux-gnu").unwrap_err();
        assert!(
            err.contains("`rustup target add aarch64-unknown-linux-gnu`"),
            "{err}"
        );
        let lib = sysroot
            .path()
            .join("lib/rustlib/aarch64-unknown-linux-gnu/lib");
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::write(lib.join("libstd-0123abcd.rlib"), b"").unwrap();
        check_std_in(sysroot.path(), "aarch64-unknown-linux-gnu").unwrap();
    }

    #[test]
    fn a_bootstrap_for_another_cpu_is_refused() {
        let this = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let other = if cfg!(target_arch = "x86_64") {
            Arch::Arm64
        } else {
            Arch::X86_64
        };
        let err = check_bootstrap(&this, other).unwrap_err();
        assert!(err.contains("built for"), "{err}");
    }
}
