//! Timers: each timer function fires on its schedule. A tick goes through the outbox
//! like any event (so it is retried), and the time of the last tick is stored: a
//! tick missed while the runtime was down is delivered once at start-up with
//! `past_due: true`.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde_json::json;

use nube::{Event, Provider, RawEvent, Schedule, TimerTick};

use crate::db::{Database, backend_err};
use crate::outbox::{Outbox, enqueue};

/// The tick of `function` due at `at`.
pub fn tick(function: &str, schedule: &Schedule, at: DateTime<Utc>, past_due: bool) -> Event {
    Event::Timer(TimerTick {
        event_id: format!("{function}@{}", at.to_rfc3339()),
        schedule: schedule.to_string(),
        scheduled_time: at,
        past_due,
        raw: RawEvent::new(
            Provider::Local,
            json!({"source": "local-scheduler", "function": function, "scheduledTime": at.to_rfc3339(), "pastDue": past_due}),
        ),
    })
}

async fn record(
    db: &Database,
    outbox: &Outbox,
    function: &str,
    event: Option<Event>,
    at: DateTime<Utc>,
) {
    let f = function.to_owned();
    let result = db
        .call(move |c| {
            let tx = c.transaction().map_err(backend_err)?;
            if let Some(event) = &event {
                enqueue(&tx, &f, event).map_err(backend_err)?;
            }
            tx.execute(
                "INSERT INTO timers (function, last_fired_ms) VALUES (?1, ?2)
                 ON CONFLICT (function) DO UPDATE SET last_fired_ms = excluded.last_fired_ms",
                params![f, at.timestamp_millis()],
            )
            .map_err(backend_err)?;
            tx.commit().map_err(backend_err)
        })
        .await;
    match result {
        Ok(()) => outbox.wake(),
        Err(e) => tracing::error!(function, error = %e, "could not record a timer tick"),
    }
}

/// Fires `function` on `schedule` until the process stops.
pub(crate) async fn run(db: Database, outbox: Outbox, function: String, schedule: Schedule) {
    let f = function.clone();
    let last: Option<i64> = db
        .call(move |c| {
            c.query_row(
                "SELECT last_fired_ms FROM timers WHERE function = ?1",
                [f],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend_err)
        })
        .await
        .unwrap_or(None);
    let now = Utc::now();
    let mut last = match last.and_then(DateTime::from_timestamp_millis) {
        None => {
            record(&db, &outbox, &function, None, now).await;
            now
        }
        Some(last) => {
            // Find the latest tick missed while down, if any.
            let mut missed = None;
            let mut t = last;
            for _ in 0..100_000 {
                match schedule.next_after(t) {
                    Some(n) if n <= now => {
                        missed = Some(n);
                        t = n;
                    }
                    _ => break,
                }
            }
            if let Some(at) = missed {
                tracing::warn!(function, scheduled = %at, "a tick was missed while the runtime was down; delivering it now");
                record(
                    &db,
                    &outbox,
                    &function,
                    Some(tick(&function, &schedule, at, true)),
                    at,
                )
                .await;
                at
            } else {
                last
            }
        }
    };
    loop {
        let Some(next) = schedule.next_after(last.max(Utc::now())) else {
            tracing::warn!(function, %schedule, "the schedule never fires again");
            return;
        };
        let wait = (next - Utc::now()).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
        record(
            &db,
            &outbox,
            &function,
            Some(tick(&function, &schedule, next, false)),
            next,
        )
        .await;
        last = next;
    }
}
