//! `cargo xtask manifest`: builds an example app and prints its manifest.

use crate::cargo;

/// Options of `cargo xtask manifest`.
#[derive(clap::Args)]
pub struct Args {
    /// The example app (a package under examples/).
    #[arg(long, default_value = "delivery-app")]
    pub app: String,
}

pub fn run(args: Args) -> Result<(), String> {
    check_app(&args.app)?;
    // The manifest is the result: it goes to stdout (`cargo xtask manifest > m.json`),
    // cargo's progress to stderr.
    crate::run_status(cargo().args(["run", "-p", &args.app, "--", "--nube-manifest"]))
}

/// Checks that `app` is a package under examples/; the error lists the ones there are.
pub fn check_app(app: &str) -> Result<(), String> {
    let examples = crate::root().join("examples");
    let mut known: Vec<String> = std::fs::read_dir(&examples)
        .map_err(|e| format!("cannot read {}: {e}", examples.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    known.sort();
    if known.iter().any(|k| k == app) {
        Ok(())
    } else {
        Err(format!(
            "no app {app:?} under examples/ (there is: {})",
            known.join(", ")
        ))
    }
}
