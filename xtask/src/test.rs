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

pub fn run(args: Args) -> Result<(), String> {
    let started = Instant::now();
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
