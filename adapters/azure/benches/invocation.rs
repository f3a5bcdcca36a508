//! In-process cost of one timer invocation through the nube-azure custom handler
//! (`Runtime::into_service`, what `nube_azure::serve` serves, with nube-azure's
//! subscriber layers installed, writing to a sink) against an axum handler written by
//! hand reading the same `{Data, Metadata}` payload (the baseline of
//! `cargo xtask bench azure`), without sockets: the user-space part of what that
//! bench measures under wrk, steadier on a noisy machine.
//!
//! `cargo bench -p nube-azure --bench invocation` prints, for each, the mean per
//! invocation over rounds of 20,000 (the median round), and the difference.
//!
//! `NUBE_BENCH_ROUNDS=n` sets the rounds (15); `NUBE_BENCH_ONLY=nube|bare` runs one
//! side only and prints nothing, for counting instructions, which stay the same however
//! busy the machine is: `valgrind --tool=callgrind` on rounds=2 minus rounds=1 is one
//! round of 20,000 invocations.

#[path = "../../../xtask/src/bench/knobs.rs"]
mod knobs;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::response::Response;
use axum::routing::post;
use http::Request;
use nube::{App, Context, Resources, TimerTick};
use tower::ServiceExt;
use tracing_subscriber::prelude::*;

/// The host's invocation of a timer function, as `post-timer.lua` sends it.
const PAYLOAD: &str = r#"{"Data":{"timer":"{\"Schedule\":{\"AdjustForDST\":true},\"ScheduleStatus\":{\"Last\":\"2026-11-23T09:55:00+00:00\",\"Next\":\"2026-11-23T10:00:00+00:00\",\"LastUpdated\":\"2026-11-23T09:55:00.0000000+00:00\"},\"IsPastDue\":false}"},"Metadata":{"sys":{"MethodName":"tick","UtcNow":"2026-11-23T10:00:00.0012345Z","RandGuid":"0f8fad5b-d9cb-469f-a165-70867728950e"}}}"#;

/// The baseline's handler, the very file `cargo xtask bench azure` builds.
#[path = "../../../examples/baselines/src/bin/bare-azure-tick.rs"]
#[allow(dead_code)]
mod bare;

async fn tick(_tick: TimerTick, _ctx: Context) -> Result<(), nube::Error> {
    Ok(())
}

const PER_ROUND: u32 = 20_000;

/// Mean time per invocation over one round of `PER_ROUND`.
async fn round<S>(service: &S) -> Duration
where
    S: tower::Service<Request<Body>, Response = Response, Error = Infallible> + Clone,
{
    let started = Instant::now();
    for i in 0..PER_ROUND {
        let request = Request::post("/tick")
            .header("content-type", "application/json")
            .header("x-azure-functions-invocationid", format!("inv-{i}"))
            .body(Body::from(PAYLOAD))
            .unwrap();
        let response = service.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        assert!(body.starts_with(b"{\""));
    }
    started.elapsed() / PER_ROUND
}

fn main() {
    tracing_subscriber::registry()
        .with(nube::logging::LogFilter::from_env_or("info"))
        .with(
            tracing_subscriber::fmt::layer()
                .fmt_fields(nube::logging::TextFields)
                .with_ansi(false)
                .with_writer(std::io::sink),
        )
        .with(nube_azure::logging::CaptureLayer)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let app = App::new("tick").timer("tick", "*/5 * * * *", tick);
    let resources = Resources::new(Arc::new(nube::store::MemoryStore::new()));
    let nube = nube_azure::Runtime::new(app, resources, "api").into_service();
    // As `axum::serve` finishes it (`into_make_service`).
    let bare: Router = Router::new()
        .route("/tick", post(bare::tick))
        .with_state(());
    let knobs = knobs::Knobs::from_env(15);
    let runs = |side: &str| knobs.runs(side);
    let (mut with_nube, mut by_hand) = (vec![], vec![]);
    runtime.block_on(async {
        for _ in 0..knobs.rounds {
            if runs("nube") {
                with_nube.push(round(&nube).await);
            }
            if runs("bare") {
                by_hand.push(round(&bare).await);
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
    let (n, b) = (median(with_nube), median(by_hand));
    println!(
        "per invocation, median of {} rounds of {PER_ROUND}: nube-azure {n:.2} µs, axum by hand {b:.2} µs; difference {:.2} µs",
        knobs.rounds,
        n - b
    );
}
