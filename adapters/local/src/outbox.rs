//! The outbox: events waiting for delivery, written in the same SQLite transaction
//! as the write that caused them, so a crash can delay an event but never lose it.
//! Events that keep failing move to `dead_letters`, where a person can see and
//! replay them (`GET /_nube/dead-letters`).

use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use tokio::sync::Notify;

use nube::Event;
use nube::store::StoreError;

use crate::db::{Database, backend_err, now_ms};

/// Records `event` for `function` inside the caller's transaction.
pub(crate) fn enqueue(conn: &Connection, function: &str, event: &Event) -> rusqlite::Result<()> {
    let text = serde_json::to_string(event).expect("events serialise");
    let now = now_ms();
    conn.execute(
        "INSERT INTO outbox (function, event_id, event, next_attempt_ms, created_ms) VALUES (?1, ?2, ?3, ?4, ?4)",
        params![function, event.event_id(), text, now],
    )?;
    Ok(())
}

/// Moves the outbox row `seq` to the dead letters, inside the caller's transaction.
fn move_to_dead_letters(
    conn: &Connection,
    seq: i64,
    attempts: u32,
    error: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO dead_letters (seq, function, event_id, event, attempts, last_error, failed_ms)
         SELECT seq, function, event_id, event, ?2, ?3, ?4 FROM outbox WHERE seq = ?1",
        params![seq, attempts, error, now_ms()],
    )?;
    conn.execute("DELETE FROM outbox WHERE seq = ?1", [seq])?;
    Ok(())
}

/// An event waiting for one function.
#[derive(Debug)]
pub struct Pending {
    /// Row id.
    pub seq: i64,
    /// The function to deliver to.
    pub function: String,
    /// The event, or why its stored text could not be read.
    pub event: Result<Event, String>,
    /// Deliveries tried before this one.
    pub attempts: u32,
}

/// A delivery that failed for good.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// Row id (pass to `POST /_nube/dead-letters/{seq}/retry`).
    pub seq: i64,
    /// The function that failed.
    pub function: String,
    /// The event's id.
    pub event_id: String,
    /// The event.
    pub event: serde_json::Value,
    /// Deliveries tried.
    pub attempts: u32,
    /// The last error (operator message).
    pub last_error: String,
    /// When it was given up on (RFC 3339).
    pub failed_at: String,
}

/// Counts for `GET /_nube/status`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Events waiting for delivery (including retries).
    pub pending: u64,
    /// Events given up on.
    pub dead_letters: u64,
}

/// The outbox and dead letters of one database.
#[derive(Clone, Debug)]
pub struct Outbox {
    db: Database,
    wake: Arc<Notify>,
}

impl Outbox {
    /// The outbox in `db`; `wake` is notified whenever an event is added.
    pub fn new(db: Database, wake: Arc<Notify>) -> Self {
        Self { db, wake }
    }

    /// Wakes the delivery loop.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Adds an event for `function` on its own.
    pub async fn enqueue(&self, function: String, event: Event) -> Result<(), StoreError> {
        self.db
            .call(move |c| enqueue(c, &function, &event).map_err(backend_err))
            .await?;
        self.wake();
        Ok(())
    }

    /// Claims up to `limit` events due now, oldest first: each is leased for `lease`
    /// (it is not handed out again meanwhile) until its outcome is recorded, and counted
    /// as an attempt at once, so an event whose function takes the process down (a stack
    /// overflow, an abort, the OOM killer) does not run again after every restart: once
    /// it has started `max_attempts` times without an outcome, it moves to the dead
    /// letters instead of being claimed.
    pub async fn claim(
        &self,
        limit: usize,
        lease: std::time::Duration,
        max_attempts: u32,
    ) -> Result<Vec<Pending>, StoreError> {
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        self.db
            .call(move |c| {
                let tx = c.transaction().map_err(backend_err)?;
                let now = now_ms();
                let max_attempts = max_attempts.max(1);
                let mut out = Vec::new();
                let mut unfinished = Vec::new();
                {
                    let mut stmt = tx
                        .prepare_cached(
                            "SELECT seq, function, event, attempts, claimed, last_error FROM outbox WHERE next_attempt_ms <= ?1 ORDER BY next_attempt_ms, seq LIMIT ?2",
                        )
                        .map_err(backend_err)?;
                    let rows = stmt
                        .query_map(params![now, limit as i64], |r| {
                            Ok((
                                r.get::<_, i64>(0)?,
                                r.get::<_, String>(1)?,
                                r.get::<_, String>(2)?,
                                r.get::<_, u32>(3)?,
                                r.get::<_, bool>(4)?,
                                r.get::<_, Option<String>>(5)?,
                            ))
                        })
                        .map_err(backend_err)?;
                    for row in rows {
                        let (seq, function, text, attempts, claimed, last_error) = row.map_err(backend_err)?;
                        // Only an attempt that started and never recorded its outcome
                        // (the row is still claimed) ends here; a retry waiting after
                        // max_attempts was lowered runs once more.
                        if claimed && attempts >= max_attempts {
                            unfinished.push((seq, function, attempts, last_error));
                            continue;
                        }
                        let event = serde_json::from_str(&text).map_err(|e| format!("stored event is unreadable: {e}"));
                        out.push(Pending { seq, function, event, attempts });
                    }
                }
                for p in &out {
                    tx.execute(
                        "UPDATE outbox SET claimed = 1, attempts = attempts + 1, next_attempt_ms = ?2 WHERE seq = ?1",
                        params![p.seq, now.saturating_add(lease_ms)],
                    )
                    .map_err(backend_err)?;
                }
                for (seq, function, attempts, last_error) in unfinished {
                    let mut error = format!(
                        "attempt {attempts} never finished: the process stopped while the function ran \
                         (it crashed or was killed)"
                    );
                    if let Some(last) = last_error {
                        error.push_str("; the attempt before failed with: ");
                        error.push_str(&last);
                    }
                    tracing::error!(
                        function,
                        attempts,
                        "an event's deliveries never finished; the event is in the dead letters (GET /_nube/dead-letters)"
                    );
                    move_to_dead_letters(&tx, seq, attempts, &error).map_err(backend_err)?;
                }
                tx.commit().map_err(backend_err)?;
                Ok(out)
            })
            .await
    }

    /// After a stop that cut the deliveries of rows `seqs` short: makes those still
    /// claimed (no outcome recorded) due again now and takes back the attempts their
    /// claims counted.
    pub async fn give_back_claims(&self, seqs: Vec<i64>) -> Result<usize, StoreError> {
        self.db
            .call(move |c| {
                let tx = c.transaction().map_err(backend_err)?;
                let mut given = 0;
                for seq in seqs {
                    given += tx
                        .execute(
                            "UPDATE outbox SET claimed = 0, attempts = MAX(attempts - 1, 0), next_attempt_ms = MIN(next_attempt_ms, ?2) WHERE seq = ?1 AND claimed = 1",
                            params![seq, now_ms()],
                        )
                        .map_err(backend_err)?;
                }
                tx.commit().map_err(backend_err)?;
                Ok(given)
            })
            .await
    }

    /// Makes events claimed by a process that is gone (crashed) due again now. They stay
    /// marked as claimed: their attempts started and recorded nothing, which `claim`
    /// counts.
    pub async fn release_claims(&self) -> Result<usize, StoreError> {
        self.db
            .call(|c| {
                c.execute(
                    "UPDATE outbox SET next_attempt_ms = MIN(next_attempt_ms, ?1) WHERE claimed = 1",
                    [now_ms()],
                )
                .map_err(backend_err)
            })
            .await
    }

    /// When the next event falls due (ms since the epoch), if any is waiting.
    pub async fn next_due_ms(&self) -> Result<Option<i64>, StoreError> {
        self.db
            .call(|c| {
                c.query_row("SELECT MIN(next_attempt_ms) FROM outbox", [], |r| r.get(0))
                    .map_err(backend_err)
            })
            .await
    }

    /// The event was delivered.
    pub async fn delivered(&self, seq: i64) -> Result<(), StoreError> {
        self.db
            .call(move |c| {
                c.execute("DELETE FROM outbox WHERE seq = ?1", [seq])
                    .map_err(backend_err)?;
                Ok(())
            })
            .await
    }

    /// The delivery failed; try again at `next_ms` (its attempt was counted when it
    /// was claimed).
    pub async fn retry_later(
        &self,
        seq: i64,
        next_ms: i64,
        error: String,
    ) -> Result<(), StoreError> {
        self.db
            .call(move |c| {
                c.execute(
                    "UPDATE outbox SET next_attempt_ms = ?2, last_error = ?3, claimed = 0 WHERE seq = ?1",
                    params![seq, next_ms, error],
                )
                .map_err(backend_err)?;
                Ok(())
            })
            .await
    }

    /// The delivery failed for good: move the event to the dead letters.
    pub async fn dead_letter(
        &self,
        seq: i64,
        attempts: u32,
        error: String,
    ) -> Result<(), StoreError> {
        self.db
            .call(move |c| {
                let tx = c.transaction().map_err(backend_err)?;
                move_to_dead_letters(&tx, seq, attempts, &error).map_err(backend_err)?;
                tx.commit().map_err(backend_err)
            })
            .await
    }

    /// Every dead letter, newest first.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.db
            .call(|c| {
                let mut stmt = c
                    .prepare("SELECT seq, function, event_id, event, attempts, last_error, failed_ms FROM dead_letters ORDER BY failed_ms DESC, seq DESC")
                    .map_err(backend_err)?;
                let rows = stmt
                    .query_map([], |r| {
                        let text: String = r.get(3)?;
                        let failed: i64 = r.get(6)?;
                        Ok(DeadLetter {
                            seq: r.get(0)?,
                            function: r.get(1)?,
                            event_id: r.get(2)?,
                            event: serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
                            attempts: r.get(4)?,
                            last_error: r.get(5)?,
                            failed_at: chrono::DateTime::from_timestamp_millis(failed)
                                .map(|t| t.to_rfc3339())
                                .unwrap_or_default(),
                        })
                    })
                    .map_err(backend_err)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(backend_err)
            })
            .await
    }

    /// Moves the dead letter `seq` back into the outbox with a fresh attempt count;
    /// false when there is no such dead letter.
    pub async fn requeue(&self, seq: i64) -> Result<bool, StoreError> {
        let moved = self
            .db
            .call(move |c| {
                let tx = c.transaction().map_err(backend_err)?;
                let row: Option<(String, String, String)> = tx
                    .query_row(
                        "SELECT function, event_id, event FROM dead_letters WHERE seq = ?1",
                        [seq],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .optional()
                    .map_err(backend_err)?;
                let Some((function, event_id, event)) = row else {
                    return Ok(false);
                };
                tx.execute(
                    "INSERT INTO outbox (function, event_id, event, next_attempt_ms, created_ms) VALUES (?1, ?2, ?3, ?4, ?4)",
                    params![function, event_id, event, now_ms()],
                )
                .map_err(backend_err)?;
                tx.execute("DELETE FROM dead_letters WHERE seq = ?1", [seq]).map_err(backend_err)?;
                tx.commit().map_err(backend_err)?;
                Ok(true)
            })
            .await?;
        if moved {
            self.wake();
        }
        Ok(moved)
    }

    /// How many events wait and how many are dead.
    pub async fn stats(&self) -> Result<Stats, StoreError> {
        self.db
            .call(|c| {
                let pending: i64 = c
                    .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))
                    .map_err(backend_err)?;
                let dead_letters: i64 = c
                    .query_row("SELECT COUNT(*) FROM dead_letters", [], |r| r.get(0))
                    .map_err(backend_err)?;
                Ok(Stats {
                    pending: pending as u64,
                    dead_letters: dead_letters as u64,
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// An in-memory outbox holding one timer tick.
    async fn one_tick() -> Outbox {
        let outbox = Outbox::new(Database::in_memory().unwrap(), Arc::new(Notify::new()));
        let at = chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap();
        let schedule: nube::Schedule = "rate(1 minute)".parse().unwrap();
        let tick = crate::timers::tick("tick", &schedule, at, false);
        outbox.enqueue("tick".into(), tick).await.unwrap();
        outbox
    }

    /// A process that dies during a delivery records no outcome: the claim itself
    /// counts the attempt, so after `max_attempts` such starts the event is dead.
    #[tokio::test]
    async fn deliveries_that_never_finish_end_in_the_dead_letters() {
        let outbox = one_tick().await;
        let lease = Duration::from_secs(60);
        for before in 0..2 {
            let claimed = outbox.claim(10, lease, 2).await.unwrap();
            assert_eq!(claimed.len(), 1);
            assert_eq!(claimed[0].attempts, before);
            assert!(
                outbox.claim(10, lease, 2).await.unwrap().is_empty(),
                "a claimed event is leased"
            );
            // The process "crashes": the next start releases its claims.
            assert_eq!(outbox.release_claims().await.unwrap(), 1);
        }
        assert!(outbox.claim(10, lease, 2).await.unwrap().is_empty());
        let dead = outbox.dead_letters().await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].attempts, 2);
        assert!(
            dead[0].last_error.contains("never finished"),
            "{}",
            dead[0].last_error
        );
        let stats = outbox.stats().await.unwrap();
        assert_eq!((stats.pending, stats.dead_letters), (0, 1));
    }

    /// A stop that cuts a delivery short takes back the attempt its claim counted.
    #[tokio::test]
    async fn a_stop_gives_back_the_attempts_it_cut_short() {
        let outbox = one_tick().await;
        let lease = Duration::from_secs(60);
        for _ in 0..3 {
            let claimed = outbox.claim(10, lease, 1).await.unwrap();
            assert_eq!(claimed.len(), 1);
            assert_eq!(claimed[0].attempts, 0);
            assert_eq!(
                outbox.give_back_claims(vec![claimed[0].seq]).await.unwrap(),
                1
            );
        }
        assert!(outbox.dead_letters().await.unwrap().is_empty());
    }
}
