//! The delivery loop: takes due events from the outbox, runs their functions, and
//! deletes, reschedules (exponential backoff with jitter) or dead-letters them.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};

use nube::{App, Context, Provider, Resources};

use crate::db::now_ms;
use crate::outbox::{Outbox, Pending};

/// How failed deliveries are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Delay before the second attempt; doubles each time.
    pub base: Duration,
    /// Longest delay between attempts.
    pub max: Duration,
    /// Attempts before an event is dead-lettered.
    pub max_attempts: u32,
}

impl RetryPolicy {
    /// The delay after `attempts` failed attempts, with ±20 % jitter.
    pub fn delay(&self, attempts: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
        let d = exp.min(self.max);
        let jitter = (uuid::Uuid::new_v4().as_u128() % 401) as f64 / 1000.0 - 0.2;
        d.mul_f64(1.0 + jitter)
    }
}

/// Runs until the process stops.
pub(crate) async fn run(
    app: Arc<App>,
    resources: Resources,
    outbox: Outbox,
    wake: Arc<Notify>,
    policy: RetryPolicy,
    concurrency: usize,
) {
    let in_flight: Arc<Mutex<HashSet<i64>>> = Arc::default();
    let permits = Arc::new(Semaphore::new(concurrency));
    loop {
        let skip: Vec<i64> = in_flight
            .lock()
            .expect("in-flight set")
            .iter()
            .copied()
            .collect();
        let free = permits.available_permits();
        let due = if free == 0 {
            Vec::new()
        } else {
            match outbox.due(free, skip).await {
                Ok(due) => due,
                Err(e) => {
                    tracing::error!(error = %e, "could not read the outbox; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
        };
        for pending in due {
            let permit = permits
                .clone()
                .acquire_owned()
                .await
                .expect("semaphore open");
            in_flight.lock().expect("in-flight set").insert(pending.seq);
            let (app, resources, outbox, in_flight, wake) = (
                app.clone(),
                resources.clone(),
                outbox.clone(),
                in_flight.clone(),
                wake.clone(),
            );
            tokio::spawn(async move {
                let seq = pending.seq;
                deliver(&app, resources, &outbox, pending, policy).await;
                in_flight.lock().expect("in-flight set").remove(&seq);
                drop(permit);
                wake.notify_one();
            });
        }
        let wait = match outbox.next_due_ms().await {
            Ok(Some(ms)) => Duration::from_millis((ms - now_ms()).clamp(5, 1000) as u64),
            _ => Duration::from_secs(1),
        };
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn deliver(
    app: &App,
    resources: Resources,
    outbox: &Outbox,
    pending: Pending,
    policy: RetryPolicy,
) {
    let attempt = pending.attempts + 1;
    let outcome = match pending.event {
        Ok(event) => {
            let ctx = Context::builder(pending.function.clone(), Provider::Local, resources)
                .attempt(attempt)
                .build();
            app.invoke(event, ctx)
                .await
                .map_err(|e| (e.is_retryable(), e.operator_message()))
        }
        Err(unreadable) => Err((false, unreadable)),
    };
    let result = match outcome {
        Ok(()) => outbox.delivered(pending.seq).await,
        Err((retryable, error)) if retryable && attempt < policy.max_attempts => {
            let delay = policy.delay(attempt);
            tracing::warn!(
                function = pending.function,
                attempt,
                retry_in_ms = delay.as_millis() as u64,
                "delivery failed; will retry"
            );
            outbox
                .retry_later(
                    pending.seq,
                    attempt,
                    now_ms() + delay.as_millis() as i64,
                    error,
                )
                .await
        }
        Err((_, error)) => {
            tracing::error!(
                function = pending.function,
                attempt,
                error,
                "delivery failed for good; the event is in the dead letters (GET /_nube/dead-letters)"
            );
            outbox.dead_letter(pending.seq, attempt, error).await
        }
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "could not record the delivery outcome; the event will be delivered again");
    }
}
