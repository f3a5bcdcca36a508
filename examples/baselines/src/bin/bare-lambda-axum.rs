//! A second baseline of `cargo xtask bench aws --baseline lambda-http-axum`: an axum
//! Router answering `GET /hello` with `hello`, run on Lambda the usual way without nube
//! (`lambda_http::run`, which converts each API Gateway or Function URL event to an
//! `http::Request` and the response back).

use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let app = Router::new().route("/hello", get(|| async { "hello" }));
    lambda_http::run(app).await
}
