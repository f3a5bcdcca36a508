//! S3 buckets as [`nube::Bucket`]s (feature `s3`), through `object_store`'s S3 store.
//!
//! nube adds naming only: the bucket `user-uploads` is the S3 bucket named by the
//! environment variable `NUBE_BUCKET_USER_UPLOADS` (the logical name in upper case, `-`
//! as `_`), or `user-uploads` without it. Everything else is `object_store`'s
//! [`AmazonS3Builder::from_env`]: region (`AWS_REGION`, `AWS_DEFAULT_REGION`),
//! credentials (`AWS_ACCESS_KEY_ID`... as Lambda sets them, web identity, ECS, IMDS),
//! and the endpoint (`AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`), requested path
//! style unless `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true`. An `http://` endpoint (moto,
//! MinIO, LocalStack) is allowed without setting `AWS_ALLOW_HTTP` as well.

use std::sync::Arc;

use object_store::aws::AmazonS3ConfigKey;

/// `object_store`'s S3 builder, for [`bucket_with`].
pub use object_store::aws::AmazonS3Builder;

/// The environment variable naming the S3 bucket of the logical bucket `logical`:
/// `NUBE_BUCKET_` and the name in upper case, every character other than a letter or
/// digit as `_` (`user-uploads` → `NUBE_BUCKET_USER_UPLOADS`).
pub fn bucket_env_var(logical: &str) -> String {
    crate::names::bucket_env_var(logical)
}

/// The S3 bucket name of the logical bucket `logical`: the value of
/// [`bucket_env_var`], or `logical` when that is unset or empty.
pub fn bucket_name(logical: &str) -> String {
    std::env::var(bucket_env_var(logical))
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| logical.to_owned())
}

/// Why a bucket could not be set up.
#[derive(Debug)]
pub struct S3Error {
    logical: String,
    message: String,
    source: Option<object_store::Error>,
}

impl std::fmt::Display for S3Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3 bucket {:?}: {}", self.logical, self.message)
    }
}

impl std::error::Error for S3Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The logical bucket `logical`, stored in the S3 bucket [`bucket_name`] with the
/// configuration in the environment ([`AmazonS3Builder::from_env`]).
pub fn bucket(logical: &str) -> Result<nube::Bucket, S3Error> {
    bucket_with(logical, &bucket_name(logical), AmazonS3Builder::from_env())
}

/// The logical bucket `logical`, stored in the S3 bucket `physical`, with the
/// configuration in `builder` (whose bucket name is replaced by `physical`).
pub fn bucket_with(
    logical: &str,
    physical: &str,
    builder: AmazonS3Builder,
) -> Result<nube::Bucket, S3Error> {
    let fail = |message: String, source: Option<object_store::Error>| S3Error {
        logical: logical.to_owned(),
        message,
        source,
    };
    nube::blob::validate_bucket_name(logical).map_err(|m| fail(m, None))?;
    let endpoint = builder
        .get_config_value(&AmazonS3ConfigKey::S3Endpoint)
        .or_else(|| builder.get_config_value(&AmazonS3ConfigKey::Endpoint));
    let mut builder = builder.with_bucket_name(physical);
    if endpoint.is_some_and(|e| e.starts_with("http://")) {
        builder = builder.with_allow_http(true);
    }
    let store = builder.build().map_err(|e| {
        fail(
            format!(
                "cannot configure S3 bucket {physical:?} (set {} to the bucket's name; region, credentials \
                 and endpoint come from AWS_REGION, AWS_ACCESS_KEY_ID..., AWS_ENDPOINT_URL_S3): {e}",
                bucket_env_var(logical)
            ),
            Some(e),
        )
    })?;
    Ok(nube::Bucket::new(logical, Arc::new(store)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(bucket_env_var("user-uploads"), "NUBE_BUCKET_USER_UPLOADS");
        assert_eq!(
            bucket_name("nube-test-bucket-without-variable"),
            "nube-test-bucket-without-variable"
        );
    }

    #[test]
    fn builds_without_network_and_checks_names() {
        let builder = || {
            AmazonS3Builder::new()
                .with_region("us-east-1")
                .with_endpoint("http://127.0.0.1:1")
        };
        let b = bucket_with("uploads", "physical-uploads", builder()).unwrap();
        assert_eq!(b.name(), "uploads");
        assert!(bucket_with("Not_Valid", "x", builder()).is_err());
    }
}
