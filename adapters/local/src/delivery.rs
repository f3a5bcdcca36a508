//! The delivery loop: takes due events from the outbox, runs their functions, and
//! deletes, reschedules (exponential backoff with jitter) or dead-letters them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::{Id, JoinError, JoinSet};

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
    /// The delay after `attempts` failed attempts, with ±20 % jitter, at most `max`.
    pub fn delay(&self, attempts: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
        let d = exp.min(self.max);
        let jitter = (uuid::Uuid::new_v4().as_u128() % 401) as f64 / 1000.0 - 0.2;
        Duration::try_from_secs_f64(d.as_secs_f64() * (1.0 + jitter))
            .unwrap_or(self.max)
            .min(self.max)
    }
}

/// Runs until `stop` says so, then cuts the deliveries in flight short and returns the
/// outbox rows of those that ended without recording an outcome, for
/// [`Outbox::give_back_claims`]. (Aborting it instead, as a crash would, leaves their
/// attempts counted.)
pub(crate) async fn run(
    app: Arc<App>,
    resources: Resources,
    outbox: Outbox,
    wake: Arc<Notify>,
    policy: RetryPolicy,
    concurrency: usize,
    mut stop: watch::Receiver<bool>,
) -> Vec<i64> {
    // A claimed event is not handed out again before its lease ends: longer than any
    // function may run, so only a crashed process's claims ever expire.
    let lease = app
        .functions()
        .iter()
        .map(|f| app.timeout_of(f))
        .max()
        .unwrap_or_default()
        .saturating_add(Duration::from_secs(30));
    let concurrency = concurrency.max(1);
    let mut deliveries = JoinSet::new();
    // The outbox row of each delivery in flight.
    let mut rows = HashMap::new();
    while !*stop.borrow() {
        while let Some(done) = deliveries.try_join_next_with_id() {
            ended(&mut rows, &done);
        }
        let free = concurrency.saturating_sub(deliveries.len());
        if free > 0 {
            match outbox.claim(free, lease, policy.max_attempts).await {
                Ok(due) => {
                    for pending in due {
                        let seq = pending.seq;
                        let (app, resources, outbox, wake) =
                            (app.clone(), resources.clone(), outbox.clone(), wake.clone());
                        let task = deliveries.spawn(async move {
                            deliver(&app, resources, &outbox, pending, policy).await;
                            wake.notify_one();
                        });
                        rows.insert(task.id(), seq);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not read the outbox; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
        }
        if deliveries.len() >= concurrency {
            // Every slot is busy: wait for one to free up, not for what is due.
            tokio::select! {
                Some(done) = deliveries.join_next_with_id() => {
                    ended(&mut rows, &done);
                }
                _ = stop.changed() => {}
            }
            continue;
        }
        // Claimed rows are leased into the future, so this is the next retry or new event.
        let wait = match outbox.next_due_ms().await {
            Ok(Some(ms)) => Duration::from_millis((ms - now_ms()).clamp(1, 1000) as u64),
            _ => Duration::from_secs(1),
        };
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
    }
    // Cut short what is in flight. A function blocking its thread cannot be cut short:
    // after a while it is left running, and its attempt stays counted, as in a crash.
    deliveries.abort_all();
    let mut cut_short = Vec::new();
    let give_up = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Some(done)) =
        tokio::time::timeout_at(give_up, deliveries.join_next_with_id()).await
    {
        let seq = rows.remove(&task_of(&done));
        if matches!(&done, Err(e) if e.is_cancelled()) {
            cut_short.extend(seq);
        }
    }
    cut_short
}

/// Forgets the row of a delivery that ended. One that panicked (outside the function,
/// whose panics are its invocation's failure) recorded no outcome: its row is handed
/// out again when its lease ends.
fn ended(rows: &mut HashMap<Id, i64>, done: &Result<(Id, ()), JoinError>) {
    let seq = rows.remove(&task_of(done));
    if let Err(e) = done
        && e.is_panic()
    {
        tracing::error!(
            outbox_seq = seq,
            "a delivery panicked before recording its outcome; the event is delivered again when its lease ends"
        );
    }
}

/// The task of a delivery that ended, however it ended.
fn task_of(done: &Result<(Id, ()), JoinError>) -> Id {
    match done {
        Ok((id, ())) => *id,
        Err(e) => e.id(),
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
    let mut builder =
        Context::builder(pending.function.clone(), Provider::Local, resources).attempt(attempt);
    if let Some(f) = app.function(&pending.function) {
        builder = builder.timeout(app.timeout_of(f));
    }
    let ctx = builder.build();
    let span = ctx.span().clone();
    let outcome = match pending.event {
        Ok(event) => app
            .invoke(event, ctx)
            .await
            .map_err(|e| (e.is_retryable(), e.operator_message())),
        Err(unreadable) => Err((false, unreadable)),
    };
    let result = match outcome {
        Ok(()) => outbox.delivered(pending.seq).await,
        Err((retryable, error)) if retryable && attempt < policy.max_attempts => {
            let delay = policy.delay(attempt);
            span.in_scope(|| {
                tracing::warn!(
                    attempt,
                    retry_in_ms = delay.as_millis() as u64,
                    "delivery failed; will retry"
                )
            });
            outbox
                .retry_later(pending.seq, now_ms() + delay.as_millis() as i64, error)
                .await
        }
        Err((_, error)) => {
            span.in_scope(|| {
                tracing::error!(
                    attempt,
                    error,
                    "delivery failed for good; the event is in the dead letters (GET /_nube/dead-letters)"
                )
            });
            outbox.dead_letter(pending.seq, attempt, error).await
        }
    };
    if let Err(e) = result {
        span.in_scope(|| {
            tracing::error!(error = %e, "could not record the delivery outcome; the event will be delivered again")
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_with_jitter_and_never_pass_the_maximum() {
        let policy = RetryPolicy {
            base: Duration::from_millis(500),
            max: Duration::from_secs(60),
            max_attempts: 10,
        };
        for _ in 0..200 {
            let first = policy.delay(1);
            assert!(first >= Duration::from_millis(400) && first <= Duration::from_millis(600));
            assert!(
                policy.delay(30) <= policy.max,
                "jitter stays under the maximum"
            );
        }
        // Jitter on a delay near Duration::MAX would overflow (mul_f64 panics).
        let huge = RetryPolicy {
            base: Duration::MAX,
            max: Duration::MAX,
            ..policy
        };
        for _ in 0..20 {
            let _ = huge.delay(3); // must not panic
        }
    }
}
