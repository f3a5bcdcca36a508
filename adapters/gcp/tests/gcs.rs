//! Cloud Storage buckets through `nube::Bucket` against gcp-storage-emulator (in
//! memory, on a free loopback port): put, get, head, list, delete.
//!
//! Needs `NUBE_GCS_EMULATOR` (`cargo xtask test` installs gcp-storage-emulator into
//! .tools/venv and sets it). Without it the tests fail.

mod emulator;
mod gcs_xml_proxy;

use nube::blob::BlobError;
use nube_gcp::gcs::{GoogleCloudStorageBuilder, bucket_with};

use emulator::Emulator;

/// The emulator needs no credentials: point object_store at it with a stand-in service
/// account key whose `disable_oauth` makes object_store send no token (and never ask a
/// metadata server for one; `with_skip_signature` alone still does for uploads). This is
/// test set-up only.
const EMULATOR_KEY: &str =
    r#"{"private_key": "", "private_key_id": "", "client_email": "", "disable_oauth": true}"#;

/// Through [`gcs_xml_proxy`]: the emulator sends no ETag on uploads.
fn builder(emulator: &Emulator) -> GoogleCloudStorageBuilder {
    GoogleCloudStorageBuilder::new()
        .with_service_account_key(EMULATOR_KEY)
        .with_base_url(&gcs_xml_proxy::gcs_xml_proxy(emulator.port()))
}

fn create_bucket(emulator: &Emulator, name: &str) {
    let (status, body) = emulator
        .request(
            "POST",
            "/storage/v1/b?project=nube-test",
            &format!(r#"{{"name": "{name}"}}"#),
        )
        .unwrap();
    assert_eq!(status, 200, "the emulator creates the bucket: {body}");
}

/// What gcp-storage-emulator's XML API serves: uploads and downloads. It answers `HEAD`,
/// `DELETE` and the XML listing object_store's GCS store sends with `501 Not
/// Implemented`, so `head`, `list` and `delete` are not covered here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_and_get() {
    let emulator = Emulator::gcs();
    // Letters and digits only: object_store percent-encodes every other character of the
    // bucket name in the URL path (`-` as `%2D`), and the emulator matches bucket names
    // in the raw path, so `physical-uploads` would not reach its upload handler.
    create_bucket(&emulator, "physicaluploads");
    // The logical name is what the app sees; the physical one is what Cloud Storage has.
    let bucket = bucket_with("uploads", "physicaluploads", builder(&emulator)).unwrap();
    assert_eq!(bucket.name(), "uploads");

    let info = bucket
        .put_with_content_type(
            "original/red flower.jpg",
            &b"jpeg bytes"[..],
            Some("image/jpeg"),
        )
        .await
        .unwrap();
    assert_eq!(info.size, 10);
    bucket.put("thumbs/b.png", &b"small"[..]).await.unwrap();
    assert_eq!(
        bucket.get("original/red flower.jpg").await.unwrap(),
        &b"jpeg bytes"[..]
    );
    assert_eq!(bucket.get("thumbs/b.png").await.unwrap(), &b"small"[..]);
    let (status, body) = emulator
        .request("GET", "/storage/v1/b/physicaluploads/o", "")
        .unwrap();
    assert_eq!(status, 200);
    assert!(
        body.contains("original/red flower.jpg") && body.contains("image/jpeg"),
        "the objects are in the physical bucket under their keys: {body}"
    );
    assert!(bucket.try_get("nope").await.unwrap().is_none());
    assert!(matches!(
        bucket.get("nope").await,
        Err(BlobError::NotFound { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_fails() {
    let emulator = Emulator::gcs();
    let bucket = bucket_with("uploads", "nevercreated", builder(&emulator)).unwrap();
    match bucket.put("k", &b"x"[..]).await {
        Err(BlobError::NotFound { bucket, .. } | BlobError::Store { bucket, .. }) => {
            assert_eq!(bucket, "uploads")
        }
        other => panic!("writing to a missing bucket must fail, got {other:?}"),
    }
}
