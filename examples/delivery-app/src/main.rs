//! Runs the delivery-app: on the local runtime (`cargo run -p delivery-app`), or, built
//! with the `aws` feature, as a Lambda `bootstrap` when Lambda starts it
//! (`cargo xtask package --target aws`).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    #[cfg(feature = "aws")]
    if on_aws() {
        return nube_aws::run(delivery_app::app()).await;
    }
    nube_local::run(delivery_app::app()).await
}

/// Whether to serve Lambda invocations: Lambda sets `AWS_LAMBDA_RUNTIME_API` for every
/// custom runtime; `NUBE_TARGET=aws` asks for it elsewhere (an emulator, a test).
#[cfg(feature = "aws")]
fn on_aws() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
        || std::env::var("NUBE_TARGET").is_ok_and(|t| t == "aws")
}
