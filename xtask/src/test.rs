//! `cargo xtask test`: the one command that runs everything CI runs.

use std::time::Instant;

use crate::{cargo, run_cmd, tools};

/// Options of `cargo xtask test`.
#[derive(clap::Args)]
pub struct Args {
    /// Skip `cargo fmt --check`, clippy and rustdoc; run only the tests.
    #[arg(long)]
    pub no_lint: bool,
    /// Only run tests whose name contains this text (passed to the test harness).
    pub filter: Option<String>,
}

/// About what a first run takes on disk: the build in `target/` (every cloud SDK, in
/// the test and lint profiles) and the tools in `.tools/`.
const NEEDED_GIB: u64 = 10;

pub fn run(args: Args) -> Result<(), String> {
    let started = Instant::now();
    warn_if_disk_is_short();
    if !args.no_lint {
        run_cmd(cargo().args(["fmt", "--all", "--", "--check"]))
            .map_err(|e| format!("{e}\n  formatting differs: run `cargo fmt --all` and commit"))?;
        run_cmd(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ]))
        .map_err(|e| format!("{e}\n  fix the clippy findings above"))?;
        // Every public item documented, and every doc link resolving.
        run_cmd(
            cargo()
                .args([
                    "doc",
                    "--workspace",
                    "--no-deps",
                    "--all-features",
                    "--quiet",
                ])
                .env("RUSTDOCFLAGS", "-D warnings"),
        )
        .map_err(|e| format!("{e}\n  fix the rustdoc warnings above"))?;
    }
    // The AWS backends' tests run against moto, and the delivery app's Lambda end-to-end
    // test also against cargo-lambda's emulator; they fail (never skip) without them.
    let venv = tools::ensure_python_tools()?;
    // The Azure backends' tests run against emulators from npm; they fail (never skip)
    // without them.
    let npm = tools::ensure_npm_tools()?;
    let mut test = cargo();
    test.args(["test", "--workspace", "--all-features", "--no-fail-fast"]);
    test.env("NUBE_MOTO_SERVER", tools::moto_server(&venv));
    test.env("NUBE_CARGO_LAMBDA", tools::cargo_lambda(&venv));
    test.env("NUBE_COSMOS_SERVER", tools::cosmos_server(&npm));
    test.env("NUBE_AZURITE_BLOB", tools::azurite_blob(&npm));
    // The GCP backends' tests: gcp-storage-emulator (in the venv) and the Cloud Firestore
    // emulator (Debian's package); without them they fail, saying what is missing.
    test.env("NUBE_GCS_EMULATOR", tools::gcs_emulator(&venv));
    if let Some(firestore) = tools::firestore_emulator() {
        test.env("NUBE_FIRESTORE_EMULATOR", firestore);
    }
    // The compare page is checked in Debian's headless chromium; without it that test
    // fails, saying what to install.
    test.env("NUBE_CHROMIUM", tools::ensure_chromium()?);
    if let Some(f) = &args.filter {
        test.args(["--", f]);
    }
    run_cmd(&mut test).map_err(|e| format!("{e}\n  see the failing tests above"))?;
    eprintln!("    Finished the whole suite in {:.0?}", started.elapsed());
    Ok(())
}

/// Warns before the build when the workspace's filesystem has less room than a first
/// run takes, rather than failing half-way with "No space left on device".
fn warn_if_disk_is_short() {
    let root = crate::root();
    let Some(free_kib) = free_kib(&root) else {
        return;
    };
    let free_gib = free_kib / (1024 * 1024);
    if free_gib < NEEDED_GIB {
        eprintln!(
            "warning: {} has {free_gib} GiB free, and a first run of the suite takes about {NEEDED_GIB} GiB \
             (the build in target/, the tools in .tools/)\n  \
             free some space (`cargo clean` in old clones, `df -h` shows what is full), or this run may fail \
             with \"No space left on device\"",
            root.display()
        );
    }
}

/// The space left on the filesystem holding `dir`, from POSIX `df -Pk`.
fn free_kib(dir: &std::path::Path) -> Option<u64> {
    let out = std::process::Command::new("df")
        .arg("-Pk")
        .arg(dir)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // Filesystem 1024-blocks Used Available Capacity Mounted-on
    text.lines().nth(1)?.split_whitespace().nth(3)?.parse().ok()
}
