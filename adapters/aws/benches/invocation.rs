//! In-process cost of one HTTP invocation: `Dispatcher::handle_event` on an API Gateway
//! HTTP API (payload 2.0) `GET /hello` event, from its bytes as lambda_runtime hands
//! them over (`nube_aws::payload`) to the response's JSON text,
//! against the same work done by hand on `aws_lambda_events` types (what the bare
//! `lambda_runtime` baseline of `cargo xtask bench aws` does), without a Runtime API
//! around either.
//!
//! `cargo bench -p nube-aws --bench invocation` prints (on stderr) the median per call of both and
//! their difference; `cargo xtask bench aws` measures the whole bootstrap.
//!
//! `NUBE_BENCH_ONLY=nube|bare|raw-value` runs one side only, `NUBE_BENCH_ROUNDS` times
//! 20,000 calls, and prints nothing, for counting instructions, which stay the same
//! however busy the machine is (`raw-value` is the payload read as a `Box<RawValue>`,
//! the pass lambda_runtime made before nube read it until `nube_aws::payload` took the
//! bytes instead): `valgrind --tool=callgrind` on rounds=2 minus rounds=1 is
//! 20,000 calls.

#[path = "../../../xtask/src/bench/knobs.rs"]
mod knobs;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use bytes::Bytes;
use nube::App;
use nube::http::Routes;
use nube_aws::Dispatcher;
use nube_aws::names::ResourceNames;
use nube_aws::payload::RawPayload;
use serde_json::Value;

const EVENT: &str = include_str!("../tests/fixtures/apigw-http-get-hello.json");

/// The baseline's function, the very file `cargo xtask bench aws` builds.
#[path = "../../../examples/baselines/src/bin/bare-lambda-http.rs"]
#[allow(dead_code)]
mod baseline;

/// What `lambda_runtime` does around the baseline's function: the event from its
/// text, the function, the response to text.
async fn bare(event: &str) -> String {
    let request: ApiGatewayV2httpRequest = serde_json::from_str(event).unwrap();
    let event = lambda_runtime::LambdaEvent::new(request, lambda_runtime::Context::default());
    let response = baseline::handler(event).await.unwrap();
    serde_json::to_string(&response).unwrap()
}

/// The invocation as lambda_runtime hands it to nube's bootstrap.
fn event() -> lambda_runtime::LambdaEvent<RawPayload> {
    let mut ctx = lambda_runtime::Context::default();
    ctx.request_id = "8f1e5d2c-bench".into();
    lambda_runtime::LambdaEvent::new(RawPayload(Bytes::from_static(EVENT.as_bytes())), ctx)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    // Logs as the bootstrap does (run it with stdout to /dev/null).
    nube_aws::logging::init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let app = App::new("hello")
        .anonymous_http()
        .http("hello", Routes::new().get("/hello", || async { "hello" }));
    let names = ResourceNames::from_env(&app);
    let resources = runtime
        .block_on(nube_aws::resources_from_env(&app))
        .unwrap();
    let dispatcher = Arc::new(Dispatcher::new(Arc::new(app), "hello", resources, names).unwrap());
    let n = 20_000;
    let knobs = knobs::Knobs::from_env(1);
    if let Some(only) = &knobs.only {
        runtime.block_on(async {
            for _ in 0..knobs.rounds * n {
                if only == "raw-value" {
                    let raw: Box<serde_json::value::RawValue> =
                        serde_json::from_slice(black_box(EVENT.as_bytes())).unwrap();
                    black_box(raw);
                } else if only == "nube" {
                    black_box(dispatcher.handle_event(event()).await.unwrap());
                } else {
                    black_box(bare(EVENT).await);
                }
            }
        });
        return;
    }
    let (mut nube, mut plain) = (Vec::with_capacity(n), Vec::with_capacity(n));
    runtime.block_on(async {
        for i in 0..2 * n {
            let event = event();
            let started = Instant::now();
            let out = dispatcher.handle_event(event).await.unwrap();
            let took = started.elapsed();
            let out: Value = serde_json::from_str(out.get()).unwrap();
            assert_eq!(out["statusCode"], 200);
            if i >= n {
                nube.push(took);
            }
            let started = Instant::now();
            black_box(bare(EVENT).await);
            if i >= n {
                plain.push(started.elapsed());
            }
        }
    });
    let (nube, plain) = (median(nube), median(plain));
    eprintln!(
        "per call, median of {n}: nube Dispatcher::handle_event {:.1} µs, by hand {:.1} µs, difference {:.1} µs",
        nube.as_secs_f64() * 1e6,
        plain.as_secs_f64() * 1e6,
        (nube.as_secs_f64() - plain.as_secs_f64()) * 1e6
    );
}
