//! Measures how long the local runtime takes from a write to the start of the
//! function it fires: a blob written through a bucket, and a document created through
//! a collection. Prints one JSON object with p50/p99 in milliseconds.
//!
//! `cargo run --release -p nube-local --example trigger_latency [-- ROUNDS]`
//! (`cargo xtask bench local` runs it.)

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nube::{App, BlobCreated, Context, DocumentCreated};
use nube_local::{Config, RetryPolicy};
use serde_json::{Value, json};
use tokio::sync::mpsc;

type Started = Arc<Mutex<Option<mpsc::UnboundedSender<Instant>>>>;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn summary(mut v: Vec<f64>) -> Value {
    v.sort_by(f64::total_cmp);
    json!({"rounds": v.len(), "p50_ms": percentile(&v, 0.5), "p99_ms": percentile(&v, 0.99), "max_ms": v[v.len() - 1]})
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let started: Started = Arc::default();
    let (s1, s2) = (started.clone(), started.clone());
    let app = App::new("latency")
        .on_blob_created(
            "on-blob",
            "bench",
            "in/",
            move |_ev: BlobCreated, _ctx: Context| {
                let now = Instant::now();
                let s = s1.clone();
                async move {
                    if let Some(tx) = s.lock().unwrap().as_ref() {
                        let _ = tx.send(now);
                    }
                    Ok(())
                }
            },
        )
        .on_document_created(
            "on-doc",
            "bench-docs",
            move |_ev: DocumentCreated<Value>, _ctx: Context| {
                let now = Instant::now();
                let s = s2.clone();
                async move {
                    if let Some(tx) = s.lock().unwrap().as_ref() {
                        let _ = tx.send(now);
                    }
                    Ok(())
                }
            },
        );
    let dir = std::env::temp_dir().join(format!("nube-latency-{}", std::process::id()));
    let config = Config {
        port: 0,
        data_dir: dir.clone(),
        retry: RetryPolicy {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
            max_attempts: 3,
        },
        concurrency: 16,
    };
    let running = nube_local::start(app, config)
        .await
        .expect("runtime starts");
    let (tx, mut rx) = mpsc::unbounded_channel();
    *started.lock().unwrap() = Some(tx);
    let bucket = running.resources().bucket("bench").unwrap();
    let docs = running.resources().collection::<Value>("bench-docs");
    let payload = vec![7u8; 64 * 1024];
    let (mut blob_ms, mut doc_ms) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        let t0 = Instant::now();
        bucket
            .put(&format!("in/{i}.bin"), payload.clone())
            .await
            .unwrap();
        let fired = rx.recv().await.unwrap();
        blob_ms.push((fired - t0).as_secs_f64() * 1000.0);
        let t0 = Instant::now();
        docs.create(&format!("d{i}"), &json!({"i": i}))
            .await
            .unwrap();
        let fired = rx.recv().await.unwrap();
        doc_ms.push((fired - t0).as_secs_f64() * 1000.0);
    }
    println!(
        "{}",
        json!({"blob_write_to_function_start": summary(blob_ms), "document_create_to_function_start": summary(doc_ms)})
    );
    running.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
