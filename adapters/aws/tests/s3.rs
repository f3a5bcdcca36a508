//! S3 buckets through `nube::Bucket` against moto: put, get, list, delete.
//!
//! Needs `NUBE_MOTO_SERVER` (`cargo xtask test` installs moto and sets it).

mod moto;

use nube::blob::BlobError;
use nube_aws::s3::{AmazonS3Builder, bucket_with};

use moto::{ACCESS_KEY, Moto, REGION, SECRET_KEY};

fn builder(moto: &Moto) -> AmazonS3Builder {
    AmazonS3Builder::new()
        .with_region(REGION)
        .with_access_key_id(ACCESS_KEY)
        .with_secret_access_key(SECRET_KEY)
        .with_endpoint(moto.endpoint())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_list_delete() {
    let moto = Moto::start();
    let status = moto.request("PUT", "/physical-uploads").unwrap();
    assert_eq!(status, 200, "moto creates the bucket");
    // The logical name is what the app sees; the physical one is what S3 has.
    let bucket = bucket_with("uploads", "physical-uploads", builder(&moto)).unwrap();
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
async fn a_missing_bucket_fails() {
    let moto = Moto::start();
    let bucket = bucket_with("uploads", "never-created", builder(&moto)).unwrap();
    // object_store reports S3's NoSuchBucket as NotFound, which `Bucket` passes on as
    // `BlobError::NotFound` for the key.
    match bucket.put("k", &b"x"[..]).await {
        Err(BlobError::NotFound { bucket, .. } | BlobError::Store { bucket, .. }) => {
            assert_eq!(bucket, "uploads")
        }
        other => panic!("writing to a missing bucket must fail, got {other:?}"),
    }
}
