//! A second baseline of `cargo xtask bench gcp`: the bare axum server of
//! `bare-axum-hello.rs` with, from tower-http, what nube gives every request: a span per
//! request at `info` (`TraceLayer`), an id per request echoed in the response
//! (`x-request-id`, a UUID), a time limit (`TimeoutLayer`) and a panic answered as a
//! 500 (`CatchPanicLayer`); logs as JSON lines on stdout, as Cloud Run reads them, at
//! `info` unless `RUST_LOG` says otherwise.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultMakeSpan, TraceLayer};
use tracing::Level;

#[tokio::main]
async fn main() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .init();
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    let app = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .layer(
            tower::ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(DefaultMakeSpan::new().level(Level::INFO)),
                )
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(CatchPanicLayer::new())
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Duration::from_secs(300),
                )),
        );
    let listener = tokio::net::TcpListener::bind(format!("0.0.0.0:{port}"))
        .await
        .expect("the port is free");
    axum::serve(listener, app).await.expect("the server runs");
}
