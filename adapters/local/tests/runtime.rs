//! The local runtime end to end, in process: triggers fire from writes, failures are
//! retried then dead-lettered, pending events survive a restart, timers fire.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use nube::http::Routes;
use nube::{App, BlobCreated, Context, DocumentCreated, Error, TimerTick};
use nube_local::{Config, RetryPolicy, Running};
use serde_json::{Value, json};

fn config(dir: &std::path::Path) -> Config {
    Config {
        port: 0,
        data_dir: dir.to_path_buf(),
        retry: RetryPolicy {
            base: Duration::from_millis(20),
            max: Duration::from_millis(100),
            max_attempts: 3,
        },
        concurrency: 4,
    }
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    // Long enough for a loaded CI machine whose disk flushes slowly (SQLite syncs).
    for _ in 0..800 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// `GET /_nube/{path}`, read as JSON.
async fn admin_get<T: serde::de::DeserializeOwned>(r: &Running, path: &str) -> T {
    reqwest::get(format!("{}/_nube/{path}", r.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn status(r: &Running) -> Value {
    admin_get(r, "status").await
}

async fn dead_letters(r: &Running) -> Vec<Value> {
    admin_get(r, "dead-letters").await
}

async fn copy_doc(ev: DocumentCreated<Value>, ctx: Context) -> nube::Result<()> {
    ctx.collection::<Value>("copies")
        .put(&ev.id, &ev.document)
        .await?;
    Ok(())
}

async fn note_blob(ev: BlobCreated, ctx: Context) -> nube::Result<()> {
    ctx.collection::<Value>("seen-blobs")
        .put(
            &ev.key.replace('/', "_"),
            &json!({"size": ev.size, "bucket": ev.bucket}),
        )
        .await?;
    Ok(())
}

async fn hello(ctx: Context) -> String {
    format!("hello from {}", ctx.function_name())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_fire_functions_and_http_is_served() {
    static COPIES: AtomicU32 = AtomicU32::new(0);
    let dir = tempfile::tempdir().unwrap();
    let app = App::new("t")
        .http("api", Routes::new().get("/hello", hello))
        .on_document_created("copy", "items", |ev, ctx| {
            COPIES.fetch_add(1, Ordering::SeqCst);
            copy_doc(ev, ctx)
        })
        .on_blob_created("note", "uploads", "in/", note_blob);
    let r = nube_local::start(app, config(dir.path())).await.unwrap();
    let body = reqwest::get(format!("{}/hello", r.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "hello from api");
    let missing = reqwest::get(format!("{}/nope", r.url())).await.unwrap();
    assert_eq!(missing.status(), 404);

    let items = r.resources().collection::<Value>("items");
    items.create("a", &json!({"n": 1})).await.unwrap();
    items.put("a", &json!({"n": 2})).await.unwrap(); // an update fires nothing
    let copies = r.resources().collection::<Value>("copies");
    eventually("the copy exists and nothing is pending", || async {
        copies.get("a").await.unwrap().is_some() && status(&r).await["pending"] == 0
    })
    .await;
    assert_eq!(
        copies.get("a").await.unwrap().unwrap().value,
        json!({"n": 1}),
        "the update fired nothing"
    );
    assert_eq!(COPIES.load(Ordering::SeqCst), 1, "one event: the create's");

    let bucket = r.resources().bucket("uploads").unwrap();
    bucket.put("in/x.bin", vec![1u8; 10]).await.unwrap();
    bucket.put("out/y.bin", vec![1u8; 5]).await.unwrap(); // outside the prefix
    let seen = r.resources().collection::<Value>("seen-blobs");
    eventually("the blob was seen", || async {
        seen.get("in_x.bin").await.unwrap().is_some()
    })
    .await;
    eventually("nothing pending", || async {
        status(&r).await["pending"] == 0
    })
    .await;
    assert!(seen.get("out_y.bin").await.unwrap().is_none());
    assert_eq!(
        seen.get("in_x.bin").await.unwrap().unwrap().value["size"],
        10
    );
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_then_dead_lettered_and_can_be_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let flaky_calls = calls.clone();
    static BOOMS: AtomicU32 = AtomicU32::new(0);
    let app = App::new("t")
        .on_document_created(
            "flaky",
            "jobs",
            move |ev: DocumentCreated<Value>, _ctx: Context| {
                let calls = flaky_calls.clone();
                async move {
                    let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                    if ev.document["fail"] == "always" || (ev.document["fail"] == "twice" && n <= 2)
                    {
                        Err(Error::internal(format!("attempt {n} failed")))
                    } else {
                        Ok(())
                    }
                }
            },
        )
        .on_document_created(
            "panics",
            "bombs",
            |_ev: DocumentCreated<Value>, _ctx: Context| async move {
                BOOMS.fetch_add(1, Ordering::SeqCst);
                panic!("boom");
            },
        );
    let r = nube_local::start(app, config(dir.path())).await.unwrap();
    let jobs = r.resources().collection::<Value>("jobs");
    jobs.create("j1", &json!({"fail": "twice"})).await.unwrap();
    eventually("j1 delivered after retries", || async {
        calls.load(Ordering::SeqCst) == 3 && status(&r).await["pending"] == 0
    })
    .await;
    assert_eq!(status(&r).await["deadLetters"], 0);

    r.resources()
        .collection::<Value>("bombs")
        .create("b1", &json!({}))
        .await
        .unwrap();
    eventually("the panicking event is dead-lettered", || async {
        status(&r).await["deadLetters"] == 1
    })
    .await;
    let dead = dead_letters(&r).await;
    assert_eq!(dead[0]["function"], "panics");
    assert_eq!(dead[0]["attempts"], 3);
    assert!(
        dead[0]["lastError"].as_str().unwrap().contains("boom"),
        "{dead:?}"
    );
    assert_eq!(dead[0]["event"]["trigger"], "documentCreated");

    // the process still serves; a replay of a dead letter goes through the outbox again
    assert_eq!(BOOMS.load(Ordering::SeqCst), 3);
    let seq = dead[0]["seq"].as_i64().unwrap();
    let replay = reqwest::Client::new()
        .post(format!("{}/_nube/dead-letters/{seq}/retry", r.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 202);
    eventually("run again and dead-lettered again", || async {
        let s = status(&r).await;
        BOOMS.load(Ordering::SeqCst) == 6 && s["deadLetters"] == 1 && s["pending"] == 0
    })
    .await;
    let again = dead_letters(&r).await;
    assert_ne!(again[0]["seq"], seq, "a replay is a new delivery");
    assert_eq!(again[0]["eventId"], dead[0]["eventId"], "of the same event");
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_events_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let slow = |_ev: DocumentCreated<Value>, _ctx: Context| async move {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(())
    };
    let r = nube_local::start(
        App::new("t").on_document_created("copy", "items", slow),
        config(dir.path()),
    )
    .await
    .unwrap();
    r.resources()
        .collection::<Value>("items")
        .create("a", &json!({"n": 1}))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(r); // mid-delivery
    let r = nube_local::start(
        App::new("t").on_document_created("copy", "items", copy_doc),
        config(dir.path()),
    )
    .await
    .unwrap();
    let copies = r.resources().collection::<Value>("copies");
    eventually("delivered after the restart", || async {
        copies.get("a").await.unwrap().is_some()
    })
    .await;
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_fire_on_schedule_and_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let ticks = Arc::new(AtomicU32::new(0));
    let t2 = ticks.clone();
    // (scheduled time, past due, when it ran) of every tick.
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let app = App::new("t").timer(
        "every-minute",
        "* * * * *",
        move |tick: TimerTick, _ctx: Context| {
            let ticks = t2.clone();
            let seen = s2.clone();
            async move {
                assert_eq!(tick.schedule, "* * * * *");
                seen.lock()
                    .unwrap()
                    .push((tick.scheduled_time, tick.past_due, chrono::Utc::now()));
                ticks.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        },
    );
    let r = nube_local::start(app, config(dir.path())).await.unwrap();
    let client = reqwest::Client::new();
    let fired: Value = client
        .post(format!("{}/_nube/functions/every-minute", r.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fired["outcome"], "succeeded");
    // (A scheduled tick may have come first, when the test starts just before a minute.)
    assert!(ticks.load(Ordering::SeqCst) >= 1);
    let unknown = client
        .post(format!("{}/_nube/functions/nope", r.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert!(
        unknown.text().await.unwrap().contains("every-minute"),
        "the error lists the functions"
    );
    // the scheduled tick comes at a whole minute (the fired one at its own time), on time
    let scheduled_tick = || {
        seen.lock()
            .unwrap()
            .iter()
            .copied()
            .find(|(at, _, _)| at.timestamp() % 60 == 0 && at.timestamp_subsec_nanos() == 0)
    };
    eventually_long("a scheduled tick", || scheduled_tick().is_some()).await;
    let (scheduled, past_due, ran) = scheduled_tick().unwrap();
    assert!(!past_due);
    assert!(ran >= scheduled, "not early: ran {ran}, due {scheduled}");
    assert!(
        ran - scheduled < chrono::TimeDelta::seconds(10),
        "on time: ran {ran}, due {scheduled}"
    );
    r.stop().await;
}

async fn eventually_long(what: &str, check: impl Fn() -> bool) {
    for _ in 0..130 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_writes_cut_short_by_a_crash_are_recovered_at_start() {
    let dir = tempfile::tempdir().unwrap();
    {
        // What a crash between the intent and the event leaves behind: one intent whose
        // object was written, one whose object never was.
        let db = nube_local::db::Database::open(&dir.path().join("nube.db")).unwrap();
        db.call(|c| {
            c.execute_batch(
                "INSERT INTO blob_intents (bucket, key, content_type, created_ms) VALUES ('uploads', 'in/done.bin', 'application/x-test', 0);
                 INSERT INTO blob_intents (bucket, key, content_type, created_ms) VALUES ('uploads', 'in/never.bin', NULL, 0);",
            )
            .map_err(|e| nube::store::StoreError::backend("embedded", "test", e))
        })
        .await
        .unwrap();
        let objects = dir.path().join("blobs/uploads/in");
        std::fs::create_dir_all(&objects).unwrap();
        std::fs::write(objects.join("done.bin"), [1, 2, 3]).unwrap();
    }
    let app = App::new("t").on_blob_created("note", "uploads", "in/", note_blob);
    let r = nube_local::start(app, config(dir.path())).await.unwrap();
    let seen = r.resources().collection::<Value>("seen-blobs");
    eventually("the interrupted write fired its function", || async {
        seen.get("in_done.bin").await.unwrap().is_some() && status(&r).await["pending"] == 0
    })
    .await;
    assert_eq!(
        seen.get("in_done.bin").await.unwrap().unwrap().value["size"],
        3
    );
    assert!(
        seen.get("in_never.bin").await.unwrap().is_none(),
        "no event for an object never written"
    );
    r.stop().await;
}

/// Stores `at_ms` as the time of `function`'s last tick in the data directory `dir`,
/// as a runtime that ran before would have.
async fn store_last_tick(dir: &std::path::Path, function: &'static str, at_ms: i64) {
    let db = nube_local::db::Database::open(&dir.join("nube.db")).unwrap();
    db.call(move |c| {
        c.execute(
            "INSERT INTO timers (function, last_fired_ms) VALUES (?1, ?2)",
            rusqlite::params![function, at_ms],
        )
        .map_err(|e| nube::store::StoreError::backend("embedded", "test", e))
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_missed_while_down_is_delivered_once_as_past_due() {
    let dir = tempfile::tempdir().unwrap();
    let three_days_ago = chrono::Utc::now().timestamp_millis() - 3 * 86_400_000;
    store_last_tick(dir.path(), "nightly", three_days_ago).await;
    let app = App::new("t").timer(
        "nightly",
        "0 2 * * *",
        |tick: TimerTick, ctx: Context| async move {
            ctx.collection::<Value>("ticks")
                .put(
                    &tick.event_id.replace([':', '+', '.'], "_"),
                    &json!({"pastDue": tick.past_due}),
                )
                .await?;
            Ok(())
        },
    );
    let r = nube_local::start(app, config(dir.path())).await.unwrap();
    let ticks = r.resources().collection::<Value>("ticks");
    eventually("the missed tick", || async {
        !ticks
            .query(&nube::Query::new())
            .await
            .unwrap()
            .documents
            .is_empty()
            && status(&r).await["pending"] == 0
    })
    .await;
    let all = ticks.query(&nube::Query::new()).await.unwrap().documents;
    assert_eq!(
        all.len(),
        1,
        "three missed nights give one catch-up tick: {all:?}"
    );
    assert_eq!(all[0].value["pastDue"], true);
    r.stop().await;
}

/// A last tick stored ahead of the clock (the clock was set back) does not hold the
/// timer until the clock catches up: it ticks at the next whole minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_tick_ahead_of_the_clock_does_not_stall_the_timer() {
    let dir = tempfile::tempdir().unwrap();
    let in_an_hour = chrono::Utc::now().timestamp_millis() + 3_600_000;
    store_last_tick(dir.path(), "every-minute", in_an_hour).await;
    let ticks = Arc::new(AtomicU32::new(0));
    let t2 = ticks.clone();
    let app = App::new("t").timer(
        "every-minute",
        "* * * * *",
        move |_tick: TimerTick, _ctx: Context| {
            let ticks = t2.clone();
            async move {
                ticks.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        },
    );
    let r = nube_local::start(app, config(dir.path())).await.unwrap();
    eventually_long("a tick within the minute", || {
        ticks.load(Ordering::SeqCst) >= 1
    })
    .await;
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_runtime_per_data_directory_and_admin_refuses_foreign_origins_and_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let app = || App::new("t").on_document_created("copy", "items", copy_doc);
    let r = nube_local::start(app(), config(dir.path())).await.unwrap();
    let second = nube_local::start(app(), config(dir.path())).await;
    let message = second
        .err()
        .expect("a second runtime on the same directory is refused")
        .to_string();
    assert!(message.contains("another nube-local"), "{message}");
    let foreign = reqwest::Client::new()
        .post(format!("{}/_nube/functions/copy", r.url()))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
    // A DNS name rebound to loopback is refused; local names in any spelling are not.
    for (host, status) in [
        ("evil.example", 403),
        ("LOCALHOST", 200),
        ("localhost.", 200),
        ("app.localhost", 200),
        ("127.0.0.1", 200),
    ] {
        let named = reqwest::Client::new()
            .get(format!("{}/_nube/dead-letters", r.url()))
            .header("host", format!("{host}:{}", r.addr().port()))
            .send()
            .await
            .unwrap();
        assert_eq!(named.status(), status, "{host}");
    }
    let local = reqwest::Client::new()
        .get(format!("{}/_nube/status", r.url()))
        .header("origin", &r.url())
        .send()
        .await
        .unwrap();
    assert_eq!(local.status(), 200);
    r.stop().await;
    nube_local::start(app(), config(dir.path()))
        .await
        .expect("free again after stop")
        .stop()
        .await;
}

/// Events beyond the concurrency limit wait for a slot: each runs once, never more at
/// a time than the limit. (Behaviour the runtime had before its delivery loop waited on
/// a slot instead of polling: this guards it; the polling itself shows in no outcome.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_beyond_the_concurrency_limit_wait_for_a_slot() {
    static RUNNING: AtomicU32 = AtomicU32::new(0);
    static MOST: AtomicU32 = AtomicU32::new(0);
    static RUNS: AtomicU32 = AtomicU32::new(0);
    async fn slow(_: DocumentCreated<Value>, _: Context) -> nube::Result<()> {
        let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
        MOST.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(200)).await;
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        RUNS.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    let dir = tempfile::tempdir().unwrap();
    let app = App::new("t").on_document_created("slow", "jobs", slow);
    let r = nube_local::start(
        app,
        Config {
            concurrency: 2,
            ..config(dir.path())
        },
    )
    .await
    .unwrap();
    let jobs = r.resources().collection::<Value>("jobs");
    for n in 0..7 {
        jobs.create(&format!("j{n}"), &json!({"n": n}))
            .await
            .unwrap();
    }
    eventually("every job ran", || async {
        RUNS.load(Ordering::SeqCst) == 7 && status(&r).await["pending"] == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(RUNS.load(Ordering::SeqCst), 7, "each event once");
    assert_eq!(
        MOST.load(Ordering::SeqCst),
        2,
        "never more than the limit at once"
    );
}

/// A put whose caller stops waiting (a client that hung up, a deadline) still fires
/// its event once the object is written, without waiting for a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_whose_caller_stops_waiting_still_fires_its_event() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::new("t").on_blob_created("note", "uploads", "", note_blob);
    let r = nube_local::start(app, config(dir.path())).await.unwrap();
    let bucket = r.resources().bucket("uploads").unwrap();
    for n in 0..40u64 {
        let key = format!("k{n}.bin");
        let put = bucket.put(&key, vec![7u8; 2 << 20]);
        let _ = tokio::time::timeout(Duration::from_micros(250 * n), put).await;
    }
    bucket.put("last.bin", vec![7u8; 16]).await.unwrap();
    let written = bucket.list("").await.unwrap();
    let seen = r.resources().collection::<Value>("seen-blobs");
    eventually("every written object's event ran", || async {
        for object in &written {
            if seen.get(&object.key).await.unwrap().is_none() {
                return false;
            }
        }
        status(&r).await["pending"] == 0
    })
    .await;
    r.stop().await;
}

/// A client error goes to the dead letters at once; a function past its deadline is
/// stopped and retried like any failure; a put that creates a document fires, and so
/// does a create after a delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_deadlines_and_re_creates() {
    static SLEEPS: AtomicU32 = AtomicU32::new(0);
    static CREATED: AtomicU32 = AtomicU32::new(0);
    let dir = tempfile::tempdir().unwrap();
    let app = App::new("t")
        .on_document_created(
            "picky",
            "orders",
            |_: DocumentCreated<Value>, _: Context| async move {
                Err::<(), _>(Error::bad_request("this order is not for this function"))
            },
        )
        .on_document_created(
            "sleepy",
            "naps",
            |_: DocumentCreated<Value>, _: Context| async move {
                SLEEPS.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(())
            },
        )
        .function_timeout("sleepy", Duration::from_millis(100))
        .on_document_created(
            "count",
            "things",
            |_: DocumentCreated<Value>, _: Context| async move {
                CREATED.fetch_add(1, Ordering::SeqCst);
                Ok(())
            },
        );
    let r = nube_local::start(app, config(dir.path())).await.unwrap();

    let orders = r.resources().collection::<Value>("orders");
    orders.create("o1", &json!({})).await.unwrap();
    eventually("the client error is dead-lettered", || async {
        !dead_letters(&r).await.is_empty()
    })
    .await;
    let dead = dead_letters(&r).await;
    assert_eq!(dead[0]["function"], "picky");
    assert_eq!(dead[0]["attempts"], 1, "a client error is not retried");

    let naps = r.resources().collection::<Value>("naps");
    naps.create("n1", &json!({})).await.unwrap();
    eventually("the sleeper is dead-lettered", || async {
        dead_letters(&r).await.len() == 2
    })
    .await;
    let dead = dead_letters(&r).await;
    let sleepy = dead.iter().find(|d| d["function"] == "sleepy").unwrap();
    assert_eq!(
        sleepy["attempts"], 3,
        "a deadline is a failure like any other"
    );
    assert_eq!(SLEEPS.load(Ordering::SeqCst), 3);
    assert!(
        sleepy["lastError"]
            .as_str()
            .unwrap()
            .contains("did not finish within"),
        "{sleepy}"
    );

    let things = r.resources().collection::<Value>("things");
    things.put("x", &json!({"n": 1})).await.unwrap();
    things.put("x", &json!({"n": 2})).await.unwrap();
    things.delete("x").await.unwrap();
    things.create("x", &json!({"n": 3})).await.unwrap();
    eventually("both creates fired", || async {
        CREATED.load(Ordering::SeqCst) == 2 && status(&r).await["pending"] == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        CREATED.load(Ordering::SeqCst),
        2,
        "the update fired nothing"
    );
    r.stop().await;
}

/// With one attempt allowed: a delivery cut short by a stop runs again at the next
/// start; one cut short by a crash (the runtime dropped) was its attempt, and goes to
/// the dead letters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_gives_back_the_attempt_a_crash_spends() {
    static STARTED: AtomicU32 = AtomicU32::new(0);
    let dir = tempfile::tempdir().unwrap();
    let once = || Config {
        retry: RetryPolicy {
            max_attempts: 1,
            ..config(dir.path()).retry
        },
        ..config(dir.path())
    };
    let slow = |_: DocumentCreated<Value>, _: Context| async move {
        STARTED.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(())
    };
    let slow_app = || App::new("t").on_document_created("copy", "items", slow);
    let r = nube_local::start(slow_app(), once()).await.unwrap();
    let items = r.resources().collection::<Value>("items");
    items.create("stopped", &json!({"n": 1})).await.unwrap();
    eventually("the delivery started", || async {
        STARTED.load(Ordering::SeqCst) == 1
    })
    .await;
    r.stop().await;

    let r = nube_local::start(slow_app(), once()).await.unwrap();
    eventually("it runs again after the stop", || async {
        STARTED.load(Ordering::SeqCst) == 2
    })
    .await;
    drop(r); // a crash, mid-delivery

    let r = nube_local::start(
        App::new("t").on_document_created("copy", "items", copy_doc),
        once(),
    )
    .await
    .unwrap();
    eventually("the crashed attempt is dead-lettered", || async {
        let s = status(&r).await;
        s["deadLetters"] == 1 && s["pending"] == 0
    })
    .await;
    let copies = r.resources().collection::<Value>("copies");
    assert!(copies.get("stopped").await.unwrap().is_none());
    r.stop().await;
}
