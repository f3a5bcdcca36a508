//! Runs the delivery-app: on the local runtime (`cargo run -p delivery-app`), or, built
//! with the `aws` feature, as a Lambda `bootstrap` when Lambda starts it. The bootstrap
//! `cargo xtask package --target aws` builds has `aws` without `local` (a smaller zip),
//! and always serves Lambda invocations.

#[cfg(not(any(feature = "local", feature = "aws")))]
compile_error!(
    "delivery-app needs a runtime: enable the `local` feature (the default), `aws`, or both"
);

#[tokio::main]
async fn main() -> std::process::ExitCode {
    serve(delivery_app::app()).await
}

/// The local runtime, unless Lambda (or `NUBE_TARGET=aws`) started the binary and it
/// was built with `aws`.
#[cfg(feature = "local")]
async fn serve(app: nube::App) -> std::process::ExitCode {
    #[cfg(feature = "aws")]
    if on_aws() {
        return nube_aws::run(app).await;
    }
    nube_local::run(app).await
}

/// A Lambda-only build (`aws` without `local`): always the Lambda runtime.
#[cfg(not(feature = "local"))]
async fn serve(app: nube::App) -> std::process::ExitCode {
    nube_aws::run(app).await
}

/// Whether to serve Lambda invocations: Lambda sets `AWS_LAMBDA_RUNTIME_API` for every
/// custom runtime; `NUBE_TARGET=aws` asks for it elsewhere (an emulator, a test).
#[cfg(all(feature = "aws", feature = "local"))]
fn on_aws() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
        || std::env::var("NUBE_TARGET").is_ok_and(|t| t == "aws")
}
