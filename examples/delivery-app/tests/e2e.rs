//! The README's curl session against the real `delivery-app` binary on the local
//! runtime, then a crash: SIGKILL while uploads and orders are being processed, a
//! restart on the same data directory, and a check that nothing was lost or done
//! twice.

use nube::testing::free_port;
use std::io::Cursor;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

struct App {
    child: Child,
    base: String,
}

impl App {
    fn start(dir: &Path, port: u16) -> App {
        let child = Command::new(env!("CARGO_BIN_EXE_delivery-app"))
            .env("PORT", port.to_string())
            .env("NUBE_DATA_DIR", dir)
            .env("NUBE_RETRY_BASE_MS", "50")
            .env("NUBE_LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the delivery-app binary starts");
        App {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn ready(&self, client: &reqwest::Client) {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(20) {
            if let Ok(r) = client.get(self.url("/todos")).send().await
                && r.status() == StatusCode::OK
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("delivery-app did not become ready");
    }

    fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().unwrap();
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

async fn poll(
    client: &reqwest::Client,
    url: &str,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(30) {
        if let Ok(r) = client.get(url).send().await
            && r.status() == StatusCode::OK
        {
            let v: Value = r.json().await.unwrap();
            if ok(&v) {
                return v;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what} at {url}");
}

async fn curl_session(app: &App, c: &reqwest::Client) {
    // todos
    let created = c
        .post(app.url("/todos"))
        .json(&json!({"title": "buy milk"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let todo: Value = created.json().await.unwrap();
    assert_eq!(todo["completed"], false);
    assert!(todo["createdAt"].is_string());
    let id = todo["id"].as_str().unwrap();
    let bad = c
        .post(app.url("/todos"))
        .json(&json!({"title": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(bad.json::<Value>().await.unwrap()["error"]["message"].is_string());
    let not_json = c
        .post(app.url("/todos"))
        .header("content-type", "text/plain")
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let updated = c
        .put(app.url(&format!("/todos/{id}")))
        .json(&json!({"completed": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(updated.status(), StatusCode::OK);
    assert_eq!(updated.json::<Value>().await.unwrap()["completed"], true);
    let list: Value = get_json(c, &app.url("/todos")).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(
        c.delete(app.url(&format!("/todos/{id}")))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        c.delete(app.url(&format!("/todos/{id}")))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );

    // an image upload through to its thumbnail
    let up = c
        .put(app.url("/uploads/beach.png"))
        .header("content-type", "image/png")
        .body(png(1200, 600))
        .send()
        .await
        .unwrap();
    assert_eq!(up.status(), StatusCode::ACCEPTED);
    let doc = poll(
        c,
        &app.url("/images/beach.png"),
        "the image document",
        |v| v["status"] == "ready",
    )
    .await;
    assert_eq!(
        (doc["width"].as_u64(), doc["height"].as_u64()),
        (Some(1200), Some(600))
    );
    let thumb = c
        .get(app.url("/images/beach.png/thumbnail"))
        .send()
        .await
        .unwrap();
    assert_eq!(thumb.status(), StatusCode::OK);
    assert_eq!(thumb.headers()["content-type"], "image/jpeg");
    let thumb = image::load_from_memory(&thumb.bytes().await.unwrap()).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (200, 200));
    let medium = image::load_from_memory(
        &c.get(app.url("/images/beach.png/medium"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!((medium.width(), medium.height()), (800, 400));

    // an order through to CONFIRMED
    let order = c
        .post(app.url("/orders"))
        .json(&json!({"userId": "ana", "restaurantId": "r1", "items": [{"sku": "pizza", "qty": 2, "price": 9.5}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(order.status(), StatusCode::CREATED);
    let order: Value = order.json().await.unwrap();
    assert_eq!(order["status"], "PENDING");
    let oid = order["orderId"].as_str().unwrap();
    let state = poll(
        c,
        &app.url(&format!("/orders/{oid}")),
        "the order to be confirmed",
        |v| v["status"] == "CONFIRMED",
    )
    .await;
    assert!(state["estimatedDeliveryAt"].is_string());
    // The user's list is the read model, which the projection writes just after
    // the stream shows the confirmation: eventually consistent, as CQRS is.
    let mine = poll(c, &app.url("/users/ana/orders"), "the read model", |v| {
        v[0]["orderId"] == oid && v[0]["status"] == "CONFIRMED"
    })
    .await;
    assert_eq!(mine.as_array().unwrap().len(), 1);
    let invalid = c
        .post(app.url("/orders"))
        .json(&json!({"userId": "ana", "restaurantId": "r1", "items": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), StatusCode::BAD_REQUEST);
}

async fn get_json(c: &reqwest::Client, url: &str) -> Value {
    c.get(url).send().await.unwrap().json().await.unwrap()
}

fn count(db: &rusqlite::Connection, sql: &str) -> i64 {
    db.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_session_then_crash_and_restart_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let c = reqwest::Client::new();
    let app = App::start(dir.path(), port);
    app.ready(&c).await;
    curl_session(&app, &c).await;

    // Load it up, then SIGKILL while the events are being processed.
    const ORDERS: usize = 25;
    const IMAGES: usize = 6;
    let mut order_ids = Vec::new();
    for i in 0..ORDERS {
        let r: Value = c
            .post(app.url("/orders"))
            .json(&json!({"userId": format!("u{}", i % 3), "restaurantId": "r1", "items": [{"sku": "x", "qty": 1, "price": 1.0}]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        order_ids.push(r["orderId"].as_str().unwrap().to_owned());
    }
    for i in 0..IMAGES {
        let r = c
            .put(app.url(&format!("/uploads/p{i}.png")))
            .body(png(900, 700))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    let pending_at_kill: Value = get_json(&c, &app.url("/_nube/status")).await;
    app.kill9();
    assert!(
        pending_at_kill["pending"].as_u64().unwrap() > 0,
        "the kill must land while events are still being processed: {pending_at_kill}"
    );

    let app = App::start(dir.path(), port);
    app.ready(&c).await;
    let t0 = Instant::now();
    loop {
        let s: Value = get_json(&c, &app.url("/_nube/status")).await;
        if s["pending"] == 0 {
            assert_eq!(s["deadLetters"], 0, "nothing failed for good: {s}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "events still pending after restart: {s}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in &order_ids {
        let state: Value = get_json(&c, &app.url(&format!("/orders/{id}"))).await;
        assert_eq!(
            state["status"], "CONFIRMED",
            "order {id} after the crash: {state}"
        );
        assert_eq!(
            state["version"], 2,
            "order {id} has exactly two events: {state}"
        );
    }
    for i in 0..IMAGES {
        let doc: Value = get_json(&c, &app.url(&format!("/images/p{i}.png"))).await;
        assert_eq!(doc["status"], "ready", "image p{i}: {doc}");
    }
    drop(app);

    let db = rusqlite::Connection::open(dir.path().join("nube.db")).unwrap();
    let orders = ORDERS as i64 + 1;
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM documents WHERE collection = 'order-events'"
        ),
        2 * orders,
        "one OrderCreated and one OrderConfirmed per order"
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM documents WHERE collection = 'notifications'"
        ),
        orders,
        "one notification per order"
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM documents WHERE collection = 'images'"
        ),
        IMAGES as i64 + 1
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM outbox"), 0);
    // The read model itself (GET /orders/{id} could fall back to replaying the stream).
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM documents WHERE collection = 'orders' AND json_extract(value, '$.status') = 'CONFIRMED' AND json_extract(value, '$.version') = 2"
        ),
        orders,
        "every order's read model is CONFIRMED at version 2"
    );
    for i in 0..IMAGES {
        for folder in ["original", "thumbnails", "medium"] {
            let path = dir.path().join(format!("blobs/uploads/{folder}/p{i}.png"));
            assert!(path.exists(), "{} exists", path.display());
        }
    }
}
