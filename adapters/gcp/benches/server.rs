//! In-process cost of one HTTP request through the nube-gcp server (`Server`, the service `nube_gcp::serve` serves, with
//! the Cloud Logging JSON subscriber installed, writing to a sink) against the same
//! handler on a bare axum `Router`, without sockets: the user-space part of what
//! `cargo xtask bench gcp` measures under wrk, steadier than a socket benchmark on a
//! noisy machine.
//!
//! `cargo bench -p nube-gcp --bench server` prints, for each, the mean per request
//! over rounds of 20,000 (the median round), and the difference.
//!
//! `NUBE_BENCH_ROUNDS=n` sets the rounds (15); `NUBE_BENCH_ONLY=nube|traced|bare` runs
//! one side only and prints nothing, for counting instructions, which stay the same
//! however busy the machine is: `valgrind --tool=callgrind` on rounds=2 minus rounds=1
//! is one round of 20,000 requests.

#[path = "../../../xtask/src/bench/knobs.rs"]
mod knobs;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::response::Response;
use axum::routing::get;
use http::Request;
use nube::http::Routes;
use nube::logging::JsonSpanFields;
use nube::{App, Resources};
use nube_gcp::logging::CloudLoggingJson;
use nube_gcp::{Config, Server};
use tower::ServiceExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

async fn hello() -> &'static str {
    "hello"
}

const PER_ROUND: u32 = 20_000;

/// Mean time per request over one round of `PER_ROUND` requests.
async fn round<S>(service: &S, traced: bool) -> Duration
where
    S: tower::Service<Request<Body>, Response = Response, Error = Infallible> + Clone,
{
    let started = Instant::now();
    for _ in 0..PER_ROUND {
        let mut request = Request::get("/hello");
        if traced {
            request = request.header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            );
        }
        let response = service
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let body = axum::body::to_bytes(response.into_body(), 64)
            .await
            .unwrap();
        assert_eq!(&body[..], b"hello");
    }
    started.elapsed() / PER_ROUND
}

fn main() {
    tracing_subscriber::registry()
        .with(nube_gcp::logging::filter())
        .with(
            tracing_subscriber::fmt::layer()
                .fmt_fields(JsonSpanFields)
                .event_format(CloudLoggingJson::with_labels([(
                    "k_service",
                    "hello".to_owned(),
                )]))
                .with_writer(std::io::sink),
        )
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let app = App::new("hello")
        .anonymous_http()
        .http("hello", Routes::new().get("/hello", hello));
    let resources = Resources::new(Arc::new(nube::store::MemoryStore::new()));
    let config = Config {
        revision: nube_gcp::Revision {
            service: Some("hello".into()),
            ..Default::default()
        },
        ..Config::default()
    };
    let server =
        Server::new(Arc::new(app), config, resources, Default::default()).expect("a server");
    // As `axum::serve` finishes it (`into_make_service`).
    let bare: Router = Router::new().route("/hello", get(hello)).with_state(());
    let knobs = knobs::Knobs::from_env(15);
    let runs = |side: &str| knobs.runs(side);
    let (mut nube, mut traced, mut by_hand) = (vec![], vec![], vec![]);
    runtime.block_on(async {
        for _ in 0..knobs.rounds {
            if runs("nube") {
                nube.push(round(&server, false).await);
            }
            if runs("traced") {
                traced.push(round(&server, true).await);
            }
            if runs("bare") {
                by_hand.push(round(&bare, false).await);
            }
        }
    });
    if knobs.only.is_some() {
        return;
    }
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1e6
    };
    let (n, t, b) = (median(nube), median(traced), median(by_hand));
    println!(
        "per request, median of {} rounds of {PER_ROUND}: nube-gcp Server {n:.2} µs ({t:.2} µs with a traceparent), bare axum Router {b:.2} µs; difference {:.2} µs ({:.2} µs traced)",
        knobs.rounds,
        n - b,
        t - b
    );
}
