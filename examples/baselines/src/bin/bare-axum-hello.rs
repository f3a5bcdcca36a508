//! The baseline of `cargo xtask bench gcp`: a bare axum server, as one writes it by
//! hand for Cloud Run, answering `GET /hello` with `hello` on `0.0.0.0:$PORT`. The nube
//! app doing the same work is `nube-gcp-hello.rs`.

use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() {
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    let app = Router::new().route("/hello", get(|| async { "hello" }));
    let listener = tokio::net::TcpListener::bind(format!("0.0.0.0:{port}"))
        .await
        .expect("the port is free");
    axum::serve(listener, app).await.expect("the server runs");
}
