//! nube's side of `cargo xtask bench gcp`: an app with one HTTP function, `hello`, on
//! `GET /hello`, served as Cloud Run serves it by `nube_gcp::run` (nube-gcp without
//! store features). The bare axum server doing the same work is `bare-axum-hello.rs`.

use nube::App;
use nube::http::Routes;

async fn hello() -> &'static str {
    "hello"
}

/// The app: `GET /hello` answers `hello`.
fn app() -> App {
    App::new("hello")
        .anonymous_http()
        .http("hello", Routes::new().get("/hello", hello))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    nube_gcp::run(app()).await
}
