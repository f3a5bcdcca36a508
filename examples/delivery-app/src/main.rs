//! Runs the delivery-app on the local runtime (`cargo run -p delivery-app`).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    nube_local::run(delivery_app::app()).await
}
