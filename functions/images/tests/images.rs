//! Uploads, thumbnails and the image API through nube's test harness.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use nube::axum::body::Body;
use nube::axum::http::{Method, StatusCode};
use nube::testing::{Delivery, TestApp, TestResponse};
use nube::{BlobCreated, Event};
use nube_images::{ImageRecord, ImageStatus};
use serde_json::{Value, json};

fn png(width: u32, height: u32) -> Vec<u8> {
    let img = RgbImage::from_fn(width, height, |x, y| {
        Rgb([(x * 255 / width) as u8, (y * 255 / height) as u8, 90])
    });
    encode(DynamicImage::ImageRgb8(img), ImageFormat::Png)
}

fn encode(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn jpeg_dimensions(resp: &TestResponse) -> (u32, u32) {
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(resp.headers["content-type"], "image/jpeg");
    let img = image::load_from_memory_with_format(&resp.body, ImageFormat::Jpeg).unwrap();
    (img.width(), img.height())
}

async fn upload(
    t: &TestApp,
    name: &str,
    content_type: Option<&str>,
    bytes: Vec<u8>,
) -> TestResponse {
    t.send(
        Method::PUT,
        &format!("/uploads/{name}"),
        content_type,
        Body::from(bytes),
    )
    .await
}

/// Settles and returns the blob events `make-thumbnails` handled, all successful.
async fn settle(t: &TestApp) -> Vec<Delivery> {
    let runs: Vec<Delivery> = t
        .settle()
        .await
        .into_iter()
        .filter(|d| d.function == "make-thumbnails")
        .collect();
    for run in &runs {
        assert!(run.outcome.is_ok(), "{:?}", run.outcome);
    }
    runs
}

fn blob_event(delivery: &Delivery) -> BlobCreated {
    match &delivery.event {
        Event::BlobCreated(e) => e.clone(),
        other => panic!("not a blob event: {other:?}"),
    }
}

#[tokio::test]
async fn upload_makes_a_thumbnail_and_a_medium_image() {
    let t = TestApp::new(nube_images::app());
    let bytes = png(1000, 500);
    let resp = upload(&t, "wide.png", Some("image/png"), bytes.clone()).await;
    assert_eq!(resp.status, StatusCode::ACCEPTED, "{}", resp.text());
    assert_eq!(resp.json::<Value>(), json!({"key": "original/wide.png"}));
    assert_eq!(
        t.bucket("uploads").get("original/wide.png").await.unwrap(),
        bytes
    );

    // Nothing is there before the blob-created function ran.
    assert_eq!(
        t.get("/images/wide.png").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        t.get("/images/wide.png/thumbnail").await.status,
        StatusCode::NOT_FOUND
    );
    let resp = t.get("/images/wide.png/medium").await;
    assert_eq!(resp.status, StatusCode::NOT_FOUND);
    assert_eq!(resp.json::<Value>()["error"]["code"], "not_found");

    let runs = settle(&t).await;
    assert_eq!(runs.len(), 1);
    let event = blob_event(&runs[0]);
    assert_eq!(event.key, "original/wide.png");
    assert_eq!(event.content_type.as_deref(), Some("image/png"));

    let resp = t.get("/images/wide.png").await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    let doc: Value = resp.json();
    assert_eq!(doc["originalKey"], "original/wide.png");
    assert_eq!(doc["thumbnailKey"], "thumbnails/wide.png");
    assert_eq!(doc["mediumKey"], "medium/wide.png");
    assert_eq!(doc["width"], 1000);
    assert_eq!(doc["height"], 500);
    assert_eq!(doc["format"], "png");
    assert_eq!(doc["size"], bytes.len());
    assert_eq!(doc["status"], "ready");
    assert!(doc.get("reason").is_none());
    let uploaded =
        chrono::DateTime::parse_from_rfc3339(doc["uploadedAt"].as_str().unwrap()).unwrap();
    assert_eq!(
        uploaded.to_utc(),
        chrono::SubsecRound::trunc_subsecs(event.time, 6)
    );

    assert_eq!(
        jpeg_dimensions(&t.get("/images/wide.png/thumbnail").await),
        (200, 200)
    );
    assert_eq!(
        jpeg_dimensions(&t.get("/images/wide.png/medium").await),
        (800, 400)
    );
}

/// Bytes sent with the event (Azure's blobTrigger) are processed instead of a download
/// when they are the size the event gives; bytes of another size are not trusted to
/// be the event's version, and the object is downloaded.
#[tokio::test]
async fn bytes_sent_with_the_event_are_used_when_their_size_matches() {
    let t = TestApp::new(nube_images::app());
    let stored = png(300, 200);
    upload(&t, "sent.png", Some("image/png"), stored.clone()).await;
    let mut event = blob_event(&settle(&t).await[0]);
    async fn status(t: &TestApp) -> Value {
        t.get("/images/sent.png").await.json::<Value>()["status"].clone()
    }
    assert_eq!(status(&t).await, "ready");

    // Not an image, and the stored object's size: these bytes are what is processed.
    event.content = Some(vec![0u8; stored.len()].into());
    t.invoke(
        nube_images::THUMBNAIL_FUNCTION,
        Event::BlobCreated(event.clone()),
    )
    .await
    .unwrap();
    assert_eq!(status(&t).await, "failed");

    // Another size: the stored image is downloaded and processed.
    event.content = Some(vec![0u8; stored.len() + 1].into());
    t.invoke(nube_images::THUMBNAIL_FUNCTION, Event::BlobCreated(event))
        .await
        .unwrap();
    assert_eq!(status(&t).await, "ready");
}

#[tokio::test]
async fn small_images_are_not_upscaled() {
    let t = TestApp::new(nube_images::app());
    let resp = upload(&t, "small.png", Some("image/png"), png(100, 50)).await;
    assert_eq!(resp.status, StatusCode::ACCEPTED);
    settle(&t).await;
    assert_eq!(
        jpeg_dimensions(&t.get("/images/small.png/medium").await),
        (100, 50)
    );
    assert_eq!(
        jpeg_dimensions(&t.get("/images/small.png/thumbnail").await),
        (200, 200)
    );
    let doc: ImageRecord = t.get("/images/small.png").await.json();
    assert_eq!((doc.width, doc.height), (Some(100), Some(50)));
}

#[tokio::test]
async fn tall_images_fit_inside_the_medium_box() {
    let t = TestApp::new(nube_images::app());
    upload(&t, "tall.png", None, png(300, 1200)).await;
    settle(&t).await;
    assert_eq!(
        jpeg_dimensions(&t.get("/images/tall.png/medium").await),
        (200, 800)
    );
}

#[tokio::test]
async fn images_with_alpha_become_jpeg() {
    let t = TestApp::new(nube_images::app());
    let img = RgbaImage::from_fn(400, 300, |x, _| Rgba([0, 120, 255, (x % 256) as u8]));
    upload(
        &t,
        "alpha.png",
        Some("image/png"),
        encode(DynamicImage::ImageRgba8(img), ImageFormat::Png),
    )
    .await;
    settle(&t).await;
    let doc: ImageRecord = t.get("/images/alpha.png").await.json();
    assert_eq!(doc.status, ImageStatus::Ready);
    assert_eq!(
        jpeg_dimensions(&t.get("/images/alpha.png/thumbnail").await),
        (200, 200)
    );
}

#[tokio::test]
async fn processing_the_same_event_twice_writes_the_same_result() {
    let t = TestApp::new(nube_images::app());
    upload(&t, "again.png", Some("image/png"), png(1000, 500)).await;
    let runs = settle(&t).await;
    let images = t.collection::<Value>("images");
    let bucket = t.bucket("uploads");
    let first = images.get("again.png").await.unwrap().unwrap().value;
    let thumb = bucket.get("thumbnails/again.png").await.unwrap();
    let medium = bucket.get("medium/again.png").await.unwrap();

    t.invoke("make-thumbnails", runs[0].event.clone())
        .await
        .unwrap();
    assert_eq!(images.get("again.png").await.unwrap().unwrap().value, first);
    assert_eq!(bucket.get("thumbnails/again.png").await.unwrap(), thumb);
    assert_eq!(bucket.get("medium/again.png").await.unwrap(), medium);
    // Writing the renditions fired events nobody subscribes to, and nothing else.
    assert!(settle(&t).await.is_empty());
}

/// The record, thumbnail and medium image of `name`, as stored.
async fn stored_results(t: &TestApp, name: &str) -> (Value, Vec<u8>, Vec<u8>) {
    let bucket = t.bucket("uploads");
    (
        t.collection::<Value>("images")
            .get(name)
            .await
            .unwrap()
            .expect("a record")
            .value,
        bucket
            .get(&format!("thumbnails/{name}"))
            .await
            .unwrap()
            .to_vec(),
        bucket
            .get(&format!("medium/{name}"))
            .await
            .unwrap()
            .to_vec(),
    )
}

/// Checks that `name`'s record and renditions are still `before`.
async fn assert_unchanged(t: &TestApp, name: &str, before: &(Value, Vec<u8>, Vec<u8>)) {
    let now = stored_results(t, name).await;
    assert_eq!(now.0, before.0, "the record changed");
    assert!(now.1 == before.1, "the thumbnail changed");
    assert!(now.2 == before.2, "the medium image changed");
}

/// Checks that `doc` describes the upload of `bytes` that `event` announced.
fn assert_record_of(doc: &Value, bytes: &[u8], event: &BlobCreated, size: (u32, u32)) {
    assert_eq!(doc["status"], "ready", "{doc}");
    assert_eq!(doc["size"], bytes.len(), "{doc}");
    assert_eq!(
        (doc["width"].as_u64(), doc["height"].as_u64()),
        (Some(size.0.into()), Some(size.1.into())),
        "{doc}"
    );
    let uploaded =
        chrono::DateTime::parse_from_rfc3339(doc["uploadedAt"].as_str().unwrap()).unwrap();
    assert_eq!(
        uploaded.to_utc(),
        chrono::SubsecRound::trunc_subsecs(event.time, 6),
        "{doc}"
    );
}

#[tokio::test]
async fn an_older_upload_s_event_delivered_after_a_newer_one_changes_nothing() {
    let t = TestApp::new(nube_images::app());
    let (a, b) = (png(1000, 500), png(300, 600));
    assert_ne!(a.len(), b.len());
    upload(&t, "same.png", Some("image/png"), a.clone()).await;
    upload(&t, "same.png", Some("image/png"), b.clone()).await;
    // Both events are delivered after B is stored: A's finds B and leaves it alone.
    let runs = settle(&t).await;
    assert_eq!(runs.len(), 2);
    let (event_a, event_b) = (blob_event(&runs[0]), blob_event(&runs[1]));
    assert_eq!(event_a.size, a.len() as u64);
    assert_eq!(event_b.size, b.len() as u64);
    let before = stored_results(&t, "same.png").await;
    assert_record_of(&before.0, &b, &event_b, (300, 600));
    assert_eq!(
        jpeg_dimensions(&t.get("/images/same.png/medium").await),
        (300, 600)
    );

    // A's event again, after B's (a redelivery, or a queue that reordered them),
    // with and without an entity tag to go by: still B's results.
    let mut untagged = event_a.clone();
    untagged.etag = None;
    for event in [event_a, untagged] {
        t.invoke("make-thumbnails", Event::BlobCreated(event))
            .await
            .unwrap();
        assert_unchanged(&t, "same.png", &before).await;
    }
    // B's event again is idempotent, with or without its tag.
    let mut untagged = event_b.clone();
    untagged.etag = None;
    for event in [event_b, untagged] {
        t.invoke("make-thumbnails", Event::BlobCreated(event))
            .await
            .unwrap();
        assert_unchanged(&t, "same.png", &before).await;
    }
}

#[tokio::test]
async fn a_late_event_does_not_mix_into_the_newer_upload_s_record() {
    let t = TestApp::new(nube_images::app());
    let (a, b) = (png(1000, 500), png(300, 600));
    upload(&t, "late.png", Some("image/png"), a.clone()).await;
    let runs = settle(&t).await;
    let event_a = blob_event(&runs[0]);
    assert_record_of(
        &stored_results(&t, "late.png").await.0,
        &a,
        &event_a,
        (1000, 500),
    );

    upload(&t, "late.png", Some("image/png"), b.clone()).await;
    let runs = settle(&t).await;
    let event_b = blob_event(&runs[0]);
    let newer = stored_results(&t, "late.png").await;
    assert_record_of(&newer.0, &b, &event_b, (300, 600));

    // Processing B's bytes under A's event would record B's size with A's time.
    t.invoke("make-thumbnails", Event::BlobCreated(event_a))
        .await
        .unwrap();
    assert_unchanged(&t, "late.png", &newer).await;
}

#[tokio::test]
async fn a_stale_event_writes_nothing() {
    let t = TestApp::new(nube_images::app());
    let bucket = t.bucket("uploads");
    let a = png(40, 20);
    let info_a = bucket
        .put_with_content_type("original/new.png", a, Some("image/png"))
        .await
        .unwrap();
    bucket
        .put_with_content_type("original/new.png", b"not yet an image".to_vec(), None)
        .await
        .unwrap();
    let Event::BlobCreated(mut event_a) =
        nube::testing::blob_created("uploads", "original/new.png", info_a.size)
    else {
        unreachable!()
    };
    event_a.etag = info_a.etag;
    event_a.time = info_a.last_modified;
    t.invoke("make-thumbnails", Event::BlobCreated(event_a))
        .await
        .unwrap();
    assert!(
        t.collection::<Value>("images")
            .get("new.png")
            .await
            .unwrap()
            .is_none()
    );
    assert!(bucket.list("thumbnails/").await.unwrap().is_empty());
    assert!(bucket.list("medium/").await.unwrap().is_empty());
}

#[tokio::test]
async fn bytes_that_are_not_an_image_are_recorded_as_failed() {
    let t = TestApp::new(nube_images::app());
    let resp = upload(
        &t,
        "notes.png",
        Some("image/png"),
        b"this is not a picture".to_vec(),
    )
    .await;
    assert_eq!(resp.status, StatusCode::ACCEPTED);
    let runs = settle(&t).await;
    assert_eq!(runs.len(), 1);

    let resp = t.get("/images/notes.png").await;
    assert_eq!(resp.status, StatusCode::OK);
    let doc: Value = resp.json();
    assert_eq!(doc["status"], "failed");
    assert_eq!(doc["size"], 21);
    assert_eq!(doc["originalKey"], "original/notes.png");
    assert!(!doc["reason"].as_str().unwrap().is_empty(), "{doc}");
    assert!(doc.get("thumbnailKey").is_none());
    assert_eq!(
        t.get("/images/notes.png/thumbnail").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        t.get("/images/notes.png/medium").await.status,
        StatusCode::NOT_FOUND
    );

    // Again: the same failed record, still no error.
    t.invoke("make-thumbnails", runs[0].event.clone())
        .await
        .unwrap();
    assert_eq!(t.get("/images/notes.png").await.json::<Value>(), doc);
}

#[tokio::test]
async fn replacing_an_image_with_garbage_removes_its_renditions() {
    let t = TestApp::new(nube_images::app());
    upload(&t, "cat.png", None, png(50, 50)).await;
    settle(&t).await;
    assert_eq!(
        t.get("/images/cat.png/thumbnail").await.status,
        StatusCode::OK
    );
    upload(&t, "cat.png", None, b"GIF89a but not really".to_vec()).await;
    settle(&t).await;
    let doc: ImageRecord = t.get("/images/cat.png").await.json();
    assert_eq!(doc.status, ImageStatus::Failed);
    assert!(doc.reason.unwrap().contains("gif"));
    assert_eq!(
        t.get("/images/cat.png/thumbnail").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        t.get("/images/cat.png/medium").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_vanished_original_is_nothing_to_do() {
    let t = TestApp::new(nube_images::app());
    let event = nube::testing::blob_created("uploads", "original/gone.png", 123);
    t.invoke("make-thumbnails", event).await.unwrap();
    assert!(
        t.collection::<Value>("images")
            .get("gone.png")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        t.get("/images/gone.png").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn originals_in_sub_folders_are_skipped() {
    let t = TestApp::new(nube_images::app());
    t.bucket("uploads")
        .put("original/a/b.png", png(10, 10))
        .await
        .unwrap();
    t.bucket("uploads")
        .put("elsewhere/c.png", png(10, 10))
        .await
        .unwrap();
    let runs = settle(&t).await;
    assert_eq!(runs.len(), 1);
    assert!(
        t.bucket("uploads")
            .list("thumbnails/")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn upload_names_and_bodies_are_checked() {
    let t = TestApp::new(nube_images::app());
    let long = "x".repeat(201);
    for name in [
        ".hidden",
        "..",
        "a%2Fb",
        "a%5Cb",
        "a%23b",
        "a%3Fb",
        long.as_str(),
    ] {
        let resp = upload(&t, name, Some("image/png"), png(2, 2)).await;
        assert_eq!(
            resp.status,
            StatusCode::BAD_REQUEST,
            "{name}: {}",
            resp.text()
        );
        assert_eq!(resp.json::<Value>()["error"]["code"], "bad_request");
    }
    let resp = upload(&t, &"y".repeat(200), None, png(2, 2)).await;
    assert_eq!(resp.status, StatusCode::ACCEPTED);
    let resp = upload(&t, "red%20flower.png", None, png(2, 2)).await;
    assert_eq!(
        resp.json::<Value>(),
        json!({"key": "original/red flower.png"})
    );

    let resp = upload(&t, "empty.png", Some("image/png"), Vec::new()).await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    assert!(
        resp.json::<Value>()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("empty")
    );
    assert!(
        t.bucket("uploads")
            .try_get("original/empty.png")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        t.get("/images/.hidden").await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn uploads_over_the_body_limit_are_413() {
    let t = TestApp::new(nube_images::app().max_body_bytes(1024));
    let resp = upload(&t, "big.bin", None, vec![7; 4096]).await;
    assert_eq!(resp.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(resp.json::<Value>()["error"]["code"], "payload_too_large");
}

#[test]
fn declares_its_functions_and_resources() {
    let app = nube_images::app();
    assert!(app.validate().is_ok());
    assert!(app.function("images-api").is_some());
    assert!(app.function("make-thumbnails").is_some());
    assert!(app.collections().any(|c| c == "images"));
    assert!(app.buckets().any(|b| b == "uploads"));
}
