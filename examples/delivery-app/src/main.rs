//! Runs the delivery-app: on the local runtime (`cargo run -p delivery-app`), or, built
//! with a cloud's feature (`aws`, `azure`, `gcp`), as that cloud's runtime when that
//! cloud starts it. The binaries `cargo xtask package` builds have their cloud's feature
//! without `local` (smaller), and always serve that cloud.

#[cfg(not(any(feature = "local", feature = "aws", feature = "azure", feature = "gcp")))]
compile_error!(
    "delivery-app needs a runtime: enable the `local` feature (the default), `aws`, `azure` or `gcp`"
);

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let app = delivery_app::app();
    match target() {
        Ok(target) => serve(target, app).await,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The runtimes this binary was built with, in the order they are tried.
const BUILT: &[(&str, bool)] = &[
    ("aws", cfg!(feature = "aws")),
    ("azure", cfg!(feature = "azure")),
    ("gcp", cfg!(feature = "gcp")),
    ("local", cfg!(feature = "local")),
];

/// Which runtime to serve: `NUBE_TARGET` when set; otherwise the cloud whose variables
/// are set (Lambda's `AWS_LAMBDA_RUNTIME_API`, the Functions host's
/// `FUNCTIONS_CUSTOMHANDLER_PORT`, Cloud Run's `K_SERVICE`) among those built in;
/// otherwise `local` when built in, else the one cloud built in.
fn target() -> Result<&'static str, String> {
    let built: Vec<&'static str> = BUILT.iter().filter(|t| t.1).map(|t| t.0).collect();
    if let Ok(asked) = std::env::var("NUBE_TARGET") {
        return built.iter().find(|t| **t == asked).copied().ok_or_else(|| {
            format!(
                "NUBE_TARGET is {asked:?}, and this delivery-app was built with: {} \
                     (build it with `--features {asked}` to run there)",
                built.join(", ")
            )
        });
    }
    let set = |var: &str| std::env::var_os(var).is_some();
    let detected = [
        ("aws", set("AWS_LAMBDA_RUNTIME_API")),
        (
            "azure",
            set("FUNCTIONS_CUSTOMHANDLER_PORT") || set("FUNCTIONS_HTTPWORKER_PORT"),
        ),
        ("gcp", set("K_SERVICE")),
    ];
    if let Some((name, _)) = detected
        .iter()
        .find(|(name, on)| *on && built.contains(name))
    {
        return Ok(name);
    }
    if built.contains(&"local") {
        return Ok("local");
    }
    match built.as_slice() {
        [only] => Ok(only),
        several => Err(format!(
            "no cloud started this delivery-app (built with {}): set NUBE_TARGET to one of them",
            several.join(", ")
        )),
    }
}

async fn serve(target: &str, app: nube::App) -> std::process::ExitCode {
    match target {
        #[cfg(feature = "aws")]
        "aws" => nube_aws::run(app).await,
        #[cfg(feature = "azure")]
        "azure" => nube_azure::run(app).await,
        #[cfg(feature = "gcp")]
        "gcp" => nube_gcp::run(app).await,
        #[cfg(feature = "local")]
        "local" => nube_local::run(app).await,
        other => unreachable!("{other} is not built in: target() only picks built-in runtimes"),
    }
}
