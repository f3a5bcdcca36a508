//! Blob containers through `nube::Bucket` against Azurite: put, get, list, delete, from
//! an `AzureWebJobsStorage`-style connection string.
//!
//! Needs `NUBE_AZURITE_BLOB` (`cargo xtask test` installs Azurite and sets it).

mod azurite;

use nube::blob::BlobError;
use nube_azure::blob_store::{StorageConnection, bucket_with};

use azurite::Azurite;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_list_delete() {
    let azurite = Azurite::start();
    assert_eq!(azurite.create_container("physical-uploads"), 201);
    let connection = StorageConnection::parse(&azurite.connection_string()).unwrap();
    // The logical name is what the app sees; the physical one is what Azure has.
    let bucket = bucket_with("uploads", "physical-uploads", connection.builder()).unwrap();
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
    bucket.put("original/b.png", &b"png"[..]).await.unwrap();
    bucket.put("thumbs/b.png", &b"small"[..]).await.unwrap();

    assert_eq!(
        bucket.get("original/red flower.jpg").await.unwrap(),
        &b"jpeg bytes"[..]
    );
    assert_eq!(bucket.head("thumbs/b.png").await.unwrap().size, 5);
    let keys: Vec<String> = bucket
        .list("original/")
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.key)
        .collect();
    assert_eq!(keys, ["original/b.png", "original/red flower.jpg"]);
    assert_eq!(bucket.list("").await.unwrap().len(), 3);

    bucket.delete("original/b.png").await.unwrap();
    bucket.delete("original/b.png").await.unwrap();
    assert!(bucket.try_get("original/b.png").await.unwrap().is_none());
    assert!(matches!(
        bucket.get("nope").await,
        Err(BlobError::NotFound { .. })
    ));
    assert_eq!(bucket.list("original/").await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_container_fails() {
    let azurite = Azurite::start();
    let connection = StorageConnection::parse(&azurite.connection_string()).unwrap();
    let bucket = bucket_with("uploads", "never-created", connection.builder()).unwrap();
    match bucket.put("k", &b"x"[..]).await {
        Err(BlobError::NotFound { bucket, .. } | BlobError::Store { bucket, .. }) => {
            assert_eq!(bucket, "uploads")
        }
        other => panic!("writing to a missing container must fail, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_refused() {
    let azurite = Azurite::start();
    assert_eq!(azurite.create_container("keyed"), 201);
    let text = azurite.connection_string().replace(
        "AccountKey=Eby8",
        "AccountKey=AAAA", // still base64, not the account's key
    );
    let connection = StorageConnection::parse(&text).unwrap();
    let bucket = bucket_with("keyed", "keyed", connection.builder()).unwrap();
    assert!(
        bucket.put("k", &b"x"[..]).await.is_err(),
        "Azurite checks Shared Key signatures"
    );
}
