//! Timers: each timer function fires on its schedule. A tick goes through the outbox
//! like any event (so it is retried), and the time of the last tick is stored: a
//! tick missed while the runtime was down is delivered once at start-up with
//! `past_due: true`, and so are ticks missed while the machine slept (the loop sleeps
//! in slices and reads the wall clock after each, since tokio's clock stops meanwhile).

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

/// Records the tick at `at` (its event, when there is one, and the time), retrying for
/// a minute; false when the database refused it all that time.
async fn record(
    db: &Database,
    outbox: &Outbox,
    function: &str,
    event: Option<Event>,
    at: DateTime<Utc>,
) -> bool {
    for attempt in 1..=60 {
        match record_once(db, function, event.clone(), at).await {
            Ok(()) => {
                outbox.wake();
                return true;
            }
            Err(e) => {
                tracing::error!(function, attempt, error = %e, "could not record a timer tick; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
    tracing::error!(function, scheduled = %at, "the database refused the timer tick for a minute; trying again");
    false
}

/// The time of the function's last tick, as stored; retried while the database
/// refuses to say (taking a failure for "never fired" would skip a missed tick).
async fn last_fired(db: &Database, function: &str) -> Option<i64> {
    loop {
        let f = function.to_owned();
        let read = db
            .call(move |c| {
                c.query_row(
                    "SELECT last_fired_ms FROM timers WHERE function = ?1",
                    [f],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend_err)
            })
            .await;
        match read {
            Ok(last) => return last,
            Err(e) => {
                tracing::error!(function, error = %e, "could not read the timer's last tick; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}

async fn record_once(
    db: &Database,
    function: &str,
    event: Option<Event>,
    at: DateTime<Utc>,
) -> Result<(), nube::store::StoreError> {
    let f = function.to_owned();
    db.call(move |c| {
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
    .await
}

/// The latest time the schedule fired in `(last, now]`, if any. A bisection on the
/// time `x` for which the schedule still fires in `(x, now]`: about 45 steps for decades
/// of downtime, however densely the schedule fires.
pub fn latest_missed(
    schedule: &Schedule,
    last: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let fires_after = |x| schedule.next_after(x).is_some_and(|n| n <= now);
    if !fires_after(last) {
        return None;
    }
    // Invariant: a tick falls in (lo, now], none in (hi, now].
    let (mut lo, mut hi) = (last, now);
    while hi - lo > chrono::TimeDelta::milliseconds(1) {
        let mid = lo + (hi - lo) / 2;
        if fires_after(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    schedule.next_after(lo)
}

/// Fires `function` on `schedule` until the process stops.
pub(crate) async fn run(db: Database, outbox: Outbox, function: String, schedule: Schedule) {
    let last = last_fired(&db, &function).await;
    let now = Utc::now();
    let mut last = match last.and_then(DateTime::from_timestamp_millis) {
        None => {
            record(&db, &outbox, &function, None, now).await;
            now
        }
        Some(last) => match latest_missed(&schedule, last, now) {
            Some(at) => {
                tracing::warn!(function, scheduled = %at, "a tick was missed while the runtime was down; delivering it now");
                let recorded = record(
                    &db,
                    &outbox,
                    &function,
                    Some(tick(&function, &schedule, at, true)),
                    at,
                )
                .await;
                // Not recorded: the loop below finds it due and tries again.
                if recorded { at } else { last }
            }
            None => last,
        },
    };
    'ticks: loop {
        let Some(next) = schedule.next_after(last) else {
            tracing::warn!(function, %schedule, "the schedule never fires again");
            return;
        };
        // In slices, reading the wall clock each time: tokio's clock stands still while
        // the machine sleeps, and the wall clock can be stepped either way.
        loop {
            let now = Utc::now();
            if now < last {
                // Set back: counting from the last tick would wait out the difference.
                tracing::warn!(
                    function,
                    "the clock went back; the schedule is counted from now"
                );
                last = now;
                continue 'ticks;
            }
            if now >= next {
                break;
            }
            let wait = (next - now).to_std().unwrap_or_default();
            tokio::time::sleep(wait.min(SLICE)).await;
        }
        // Ticks that fell due meanwhile (the machine slept, the database was slow) are
        // delivered as one, the latest, marked past due, as after a downtime.
        let now = Utc::now();
        let at = latest_missed(&schedule, next, now).unwrap_or(next);
        let past_due = now - at > LATE;
        if past_due {
            tracing::warn!(function, scheduled = %at, "a tick is late (the machine slept or the clock jumped); delivering it now");
        }
        // A tick the database refused is not passed over: the loop comes back to it.
        if record(
            &db,
            &outbox,
            &function,
            Some(tick(&function, &schedule, at, past_due)),
            at,
        )
        .await
        {
            last = at;
        }
    }
}

/// The longest single sleep before the wall clock is read again.
const SLICE: std::time::Duration = std::time::Duration::from_secs(15);

/// How late a tick may fire and still count as on time.
const LATE: chrono::TimeDelta = chrono::TimeDelta::seconds(5);

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn latest_missed_tick() {
        let daily = Schedule::cron("0 2 * * *").unwrap();
        assert_eq!(
            latest_missed(&daily, t("2026-01-01T03:00:00Z"), t("2026-01-05T01:00:00Z")),
            Some(t("2026-01-04T02:00:00Z"))
        );
        assert_eq!(
            latest_missed(&daily, t("2026-01-01T03:00:00Z"), t("2026-01-02T01:00:00Z")),
            None
        );
        let minutely = Schedule::cron("* * * * *").unwrap();
        assert_eq!(
            latest_missed(
                &minutely,
                t("2020-01-01T00:00:00Z"),
                t("2026-01-05T01:00:30Z")
            ),
            Some(t("2026-01-05T01:00:00Z")),
            "years of missed minutes cost a few steps"
        );
        let yearly = Schedule::cron("0 0 1 1 *").unwrap();
        assert_eq!(
            latest_missed(
                &yearly,
                t("2020-06-01T00:00:00Z"),
                t("2026-03-01T00:00:00Z")
            ),
            Some(t("2026-01-01T00:00:00Z"))
        );
        let january = Schedule::cron("* * * 1 *").unwrap();
        assert_eq!(
            latest_missed(
                &january,
                t("2026-01-01T00:00:30Z"),
                t("2026-03-10T12:00:00Z")
            ),
            Some(t("2026-01-31T23:59:00Z")),
            "a schedule dense in a rare period: the latest of its 44,640 ticks"
        );
        assert_eq!(
            latest_missed(
                &minutely,
                t("2026-01-05T01:00:00Z"),
                t("2026-01-05T01:00:00Z")
            ),
            None
        );
    }
}
