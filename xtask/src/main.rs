//! `cargo xtask`: the project's own commands, run with `cargo xtask <verb>`.

mod bench;
mod compare;
mod events;
mod invoke;
mod manifest;
mod package;
mod samples;
mod target;
mod test;
mod tools;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// nube's project commands.
#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "nube's project commands",
    long_about = "nube's project commands.\n\nRun the whole test suite with `cargo xtask test` (what CI runs), \
                  measure nube against bare baselines with `cargo xtask bench local|aws|azure|gcp`, print an \
                  app's declaration with `cargo xtask manifest`, build an app for a cloud with `cargo xtask \
                  package --target aws|azure|gcp|all`, and see how the clouds differ: `cargo xtask compare` \
                  (each function on every target, side by side), `cargo xtask events blob` (each cloud's \
                  payload beside the nube event it becomes), `cargo xtask invoke --target gcp --function \
                  todos` (one function run here under a cloud's adapter). `cargo xtask <verb> --help` \
                  explains each verb."
)]
struct Cli {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// Run every check CI runs: formatting, clippy, rustdoc, and the whole test suite.
    #[command(
        long_about = "Run every check CI runs, in order: `cargo fmt --check`, `cargo clippy \
        --workspace --all-targets --all-features -D warnings`, rustdoc with warnings as errors, and \
        the whole test suite with every feature on (unit, contract and end-to-end tests, against the \
        stand-ins it installs itself: moto, cargo-lambda and gcp-storage-emulator into .tools/venv, \
        Azurite and a Cosmos DB emulator into .tools/npm, Debian's chromium with apt-get when missing; \
        Google's Firestore emulator must be installed, see the README). \
        Give a filter to run only the tests whose name contains it, and --no-lint to skip fmt, \
        clippy and rustdoc."
    )]
    Test(test::Args),
    /// Measure nube against bare baselines: `local` (the local runtime), `aws` (the Lambda
    /// bootstrap), `azure` (the custom handler), `gcp` (the Cloud Run server);
    /// `instructions` counts the in-process benches' instructions per request.
    Bench(bench::Args),
    /// Print an example app's manifest (its functions, triggers and resources) as JSON.
    Manifest(manifest::Args),
    /// Build an app for a cloud: `--target aws|azure|gcp|all` writes what that cloud deploys.
    #[command(long_about = package::LONG_ABOUT)]
    Package(package::Args),
    /// Show what each function of an app becomes on every cloud, side by side.
    #[command(long_about = compare::LONG_ABOUT)]
    Compare(compare::Args),
    /// Show each cloud's native payload for a trigger beside the nube event it decodes to.
    #[command(long_about = events::LONG_ABOUT)]
    Events(events::Args),
    /// Run one function of an app under a cloud's adapter on this machine and show the
    /// native request and response.
    #[command(long_about = invoke::LONG_ABOUT)]
    Invoke(invoke::Args),
    /// Install the test tools (moto, cfn-lint, sam, zig, cargo-lambda, gcp-storage-emulator into
    /// .tools/venv; the Azure emulators into .tools/npm; chromium) and print their variables.
    #[command(
        long_about = "Install the Python tools the tests need (moto in server mode, cfn-lint, the SAM \
        CLI, zig for `cargo xtask package`, cargo-lambda for its Lambda emulator, and \
        gcp-storage-emulator; pinned) into .tools/venv, the Azure emulators from npm \
        (@vercel/cosmosdb-server, azurite; pinned) into .tools/npm, and Debian's chromium (apt-get, \
        as root) unless NUBE_CHROMIUM names one, unless they are there already. Then print, once \
        all are there, `NUBE_MOTO_SERVER`, `NUBE_CARGO_LAMBDA`, `NUBE_COSMOS_SERVER`, \
        `NUBE_AZURITE_BLOB`, `NUBE_GCS_EMULATOR`, `NUBE_FIRESTORE_EMULATOR` (when Google's emulator \
        is installed) and `NUBE_CHROMIUM` as `NAME=<path>` lines, for running the tests by hand: `export $(cargo xtask tools)` then `cargo test -p nube-aws \
        --features dynamodb,s3`, `cargo test -p nube-azure --features cosmos,blob` or \
        `cargo test -p delivery-app --features aws --test aws_e2e`. `cargo xtask test` does this by itself."
    )]
    Tools,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.verb {
        Verb::Test(a) => test::run(a),
        Verb::Bench(a) => bench::run(a),
        Verb::Manifest(a) => manifest::run(a),
        Verb::Package(a) => package::run(a),
        Verb::Compare(a) => compare::run(a),
        Verb::Events(a) => events::run(a),
        Verb::Invoke(a) => invoke::run(a),
        Verb::Tools => tools::ensure_python_tools().and_then(|venv| {
            let npm = tools::ensure_npm_tools()?;
            // Only the comparison page's test needs it: without it, the rest is printed.
            let chromium = tools::ensure_chromium()
                .inspect_err(|e| eprintln!("warning: {e}\n  NUBE_CHROMIUM is left out"))
                .ok();
            // Printed only once everything is there: `export $(cargo xtask tools)`
            // cannot see a failure, and must not export half the set.
            println!("NUBE_MOTO_SERVER={}", tools::moto_server(&venv).display());
            println!("NUBE_CARGO_LAMBDA={}", tools::cargo_lambda(&venv).display());
            println!(
                "NUBE_COSMOS_SERVER={}",
                tools::cosmos_server(&npm).display()
            );
            println!("NUBE_AZURITE_BLOB={}", tools::azurite_blob(&npm).display());
            println!("NUBE_GCS_EMULATOR={}", tools::gcs_emulator(&venv).display());
            if let Some(firestore) = tools::firestore_emulator() {
                println!("NUBE_FIRESTORE_EMULATOR={}", firestore.display());
            }
            if let Some(chromium) = chromium {
                println!("NUBE_CHROMIUM={}", chromium.display());
            }
            Ok(())
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `cmd`, echoing it; an error names the command and its exit status.
pub(crate) fn run_cmd(cmd: &mut std::process::Command) -> Result<(), String> {
    // xtask's stdout carries its results (`cargo xtask tools`' variables, reports);
    // what the programs it runs print goes to stderr, with its progress.
    run_status(cmd.stdout(std::io::stderr()))
}

/// [`run_cmd`] for a command whose stdout is xtask's result, left where it goes.
pub(crate) fn run_status(cmd: &mut std::process::Command) -> Result<(), String> {
    eprintln!("    Running `{}`", describe(cmd));
    let status = cmd
        .status()
        .map_err(|e| format!("could not start `{}`: {e}", describe(cmd)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed ({status})", describe(cmd)))
    }
}

pub(crate) fn describe(cmd: &std::process::Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The workspace root (the parent of this crate's directory).
pub(crate) fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

pub(crate) fn cargo() -> std::process::Command {
    let mut c =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// The one of `all` whose `name` is `text` (in any case), or a one-line error naming
/// what was asked for (`what`) and listing the names there are: how the command line's
/// targets, providers and trigger kinds are read.
pub(crate) fn one_named<T: Copy>(
    what: &str,
    text: &str,
    all: &[T],
    name: impl Fn(T) -> &'static str,
) -> Result<T, String> {
    all.iter()
        .copied()
        .find(|t| name(*t).eq_ignore_ascii_case(text))
        .ok_or_else(|| {
            let names: Vec<_> = all.iter().map(|t| name(*t)).collect();
            format!("unknown {what} {text:?} (there is: {})", names.join(", "))
        })
}
