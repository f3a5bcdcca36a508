//! Cloud Storage buckets as [`nube::Bucket`]s (feature `gcs`), through `object_store`'s
//! GCS store.
//!
//! nube adds naming only: the bucket `user-uploads` is the Cloud Storage bucket named by
//! `NUBE_BUCKET_USER_UPLOADS` ([`crate::names::bucket_env_var`]), or `user-uploads`
//! without it. Everything else is [`GoogleCloudStorageBuilder::from_env`]: credentials from
//! `GOOGLE_SERVICE_ACCOUNT` / `GOOGLE_SERVICE_ACCOUNT_KEY` /
//! `GOOGLE_APPLICATION_CREDENTIALS`, else the metadata server (on Cloud Run: the
//! service's account), and the endpoint from `GOOGLE_BASE_URL` (default
//! `https://storage.googleapis.com`). An emulator or a fake server is reached with
//! `GOOGLE_BASE_URL=http://127.0.0.1:PORT` and a stand-in key that turns OAuth off,
//! `GOOGLE_SERVICE_ACCOUNT_KEY={"private_key": "", "private_key_id": "", "client_email": "",
//! "disable_oauth": true}` (object_store 0.14's `GOOGLE_SKIP_SIGNATURE` still fetches a
//! token for uploads), or with the same settings on the builder given to [`bucket_with`].

use std::sync::Arc;

/// `object_store`'s Cloud Storage builder, for [`bucket_with`].
pub use object_store::gcp::GoogleCloudStorageBuilder;
/// The settings of [`GoogleCloudStorageBuilder::with_config`].
pub use object_store::gcp::GoogleConfigKey;

/// The Cloud Storage bucket name of the logical bucket `logical`: the value of
/// [`crate::names::bucket_env_var`], or `logical` when that is unset or empty.
pub fn bucket_name(logical: &str) -> String {
    std::env::var(crate::names::bucket_env_var(logical))
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| logical.to_owned())
}

/// Why a bucket could not be set up.
#[derive(Debug)]
pub struct GcsError {
    logical: String,
    message: String,
    source: Option<object_store::Error>,
}

impl std::fmt::Display for GcsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Cloud Storage bucket {:?}: {}",
            self.logical, self.message
        )
    }
}

impl std::error::Error for GcsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The logical bucket `logical`, stored in the Cloud Storage bucket [`bucket_name`], with
/// the configuration in the environment ([`GoogleCloudStorageBuilder::from_env`]).
pub fn bucket(logical: &str) -> Result<nube::Bucket, GcsError> {
    bucket_with(
        logical,
        &bucket_name(logical),
        GoogleCloudStorageBuilder::from_env(),
    )
}

/// The logical bucket `logical`, stored in the Cloud Storage bucket `physical`, with the
/// configuration in `builder` (whose bucket name is replaced by `physical`).
pub fn bucket_with(
    logical: &str,
    physical: &str,
    builder: GoogleCloudStorageBuilder,
) -> Result<nube::Bucket, GcsError> {
    let fail = |message: String, source: Option<object_store::Error>| GcsError {
        logical: logical.to_owned(),
        message,
        source,
    };
    nube::blob::validate_bucket_name(logical).map_err(|m| fail(m, None))?;
    let store = builder.with_bucket_name(physical).build().map_err(|e| {
        fail(
            format!(
                "cannot configure Cloud Storage bucket {physical:?} (set {} to the bucket's name; credentials \
                 and endpoint come from GOOGLE_APPLICATION_CREDENTIALS or the metadata server, and \
                 GOOGLE_BASE_URL): {e}",
                crate::names::bucket_env_var(logical)
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
        assert_eq!(
            bucket_name("nube-test-bucket-without-variable"),
            "nube-test-bucket-without-variable"
        );
    }

    #[test]
    fn builds_without_network_and_checks_names() {
        let builder = || {
            GoogleCloudStorageBuilder::new()
                .with_base_url("http://127.0.0.1:1")
                .with_service_account_key(
                    r#"{"private_key": "", "private_key_id": "", "client_email": "", "disable_oauth": true}"#,
                )
        };
        let b = bucket_with("uploads", "physical-uploads", builder()).unwrap();
        assert_eq!(b.name(), "uploads");
        assert!(bucket_with("Not_Valid", "x", builder()).is_err());
    }
}
