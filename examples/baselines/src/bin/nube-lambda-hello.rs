//! nube's side of `cargo xtask bench aws`: an app with one HTTP function, `hello`, on
//! `GET /hello`, served on Lambda by `nube_aws::run` (nube-aws without store
//! features, so HTTP only). The bare `lambda_runtime` function doing the same work is
//! `bare-lambda-http.rs`.

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
    nube_aws::run(app()).await
}
