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
