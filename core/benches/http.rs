//! In-process cost of one HTTP request through nube's per-function pipeline
//! (`App::http_service`: context, span, deadline, panic capture, invocation-id header)
//! against the same handler on a bare axum `Router`, without sockets.
//!
//! `cargo bench -p nube --bench http` prints the median per request of both and the
//! difference; the socket-level comparisons are `cargo xtask bench gcp|azure|local`.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::Request;
use nube::http::Routes;
use nube::{App, Provider, Resources};
use tower::ServiceExt;

async fn hello() -> &'static str {
    "hello"
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let app = App::new("hello")
        .anonymous_http()
        .http("hello", Routes::new().get("/hello", hello));
    let resources = Resources::new(std::sync::Arc::new(nube::store::MemoryStore::new()));
    let nube = app.http_service(Provider::Gcp, resources);
    let bare: Router = Router::new().route("/hello", get(hello));
    let n = 50_000;
    let (mut with_nube, mut by_hand) = (Vec::with_capacity(n), Vec::with_capacity(n));
    runtime.block_on(async {
        for i in 0..2 * n {
            let request = || Request::get("/hello").body(Body::empty()).unwrap();
            let started = Instant::now();
            let response = nube.clone().oneshot(request()).await.unwrap();
            let body = axum::body::to_bytes(response.into_body(), 64)
                .await
                .unwrap();
            let took = started.elapsed();
            assert_eq!(&body[..], b"hello");
            let started = Instant::now();
            let response = bare.clone().oneshot(request()).await.unwrap();
            let body = axum::body::to_bytes(response.into_body(), 64)
                .await
                .unwrap();
            let bare_took = started.elapsed();
            assert_eq!(&body[..], b"hello");
            if i >= n {
                with_nube.push(took);
                by_hand.push(bare_took);
            }
        }
    });
    let (a, b) = (median(with_nube), median(by_hand));
    println!(
        "per request, median of {n}: nube App::http_service {:.2} µs, bare axum Router {:.2} µs, difference {:.2} µs",
        a.as_secs_f64() * 1e6,
        b.as_secs_f64() * 1e6,
        (a.as_secs_f64() - b.as_secs_f64()) * 1e6
    );
}
