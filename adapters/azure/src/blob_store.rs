//! Blob containers as [`nube::Bucket`]s (feature `blob`), through `object_store`'s
//! Azure store. (The blob *trigger* is [`crate::blob`].)
//!
//! nube adds naming and the connection: the bucket `user-uploads` is the blob container
//! named by the setting `NUBE_BUCKET_USER_UPLOADS` ([`crate::names::bucket_setting`]),
//! or `user-uploads` without it, in the storage account of the function app's own
//! connection, `AzureWebJobsStorage` ([`crate::names::STORAGE_CONNECTION`]), which the
//! `blobTrigger` bindings use too:
//!
//! - a connection string: `DefaultEndpointsProtocol=https;AccountName=...;AccountKey=...;EndpointSuffix=core.windows.net`
//!   (or with `BlobEndpoint=...`, or `SharedAccessSignature=...` instead of the key);
//! - `UseDevelopmentStorage=true`: Azurite on `http://127.0.0.1:10000` with the
//!   well-known `devstoreaccount1` key;
//! - identity-based: no `AzureWebJobsStorage`, but `AzureWebJobsStorage__blobServiceUri`
//!   (or `AzureWebJobsStorage__accountName`); the credential is then whatever
//!   `object_store` finds (managed identity on Azure, `AZURE_*` variables, the CLI).
//!
//! A `BlobEndpoint` with a path (Azurite's `http://127.0.0.1:10000/devstoreaccount1`)
//! is path-style addressing, which `object_store` signs as Azurite expects; an
//! `http://` endpoint is allowed without further settings.

use std::sync::Arc;

use nube::Bucket;

use crate::names::STORAGE_CONNECTION;

/// `object_store`'s Azure builder, for [`bucket_with`].
pub use object_store::azure::MicrosoftAzureBuilder;

/// The account name of the storage emulators (Azurite).
pub const DEVELOPMENT_ACCOUNT: &str = "devstoreaccount1";

/// The well-known account key of the storage emulators (Azurite), public by design.
pub const DEVELOPMENT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The blob endpoint of `UseDevelopmentStorage=true`.
pub const DEVELOPMENT_BLOB_ENDPOINT: &str = "http://127.0.0.1:10000/devstoreaccount1";

/// A storage account connection, from a connection string.
#[derive(Clone, PartialEq, Eq)]
pub struct StorageConnection {
    /// The account name.
    pub account: String,
    /// The blob service endpoint (`https://<account>.blob.core.windows.net`).
    pub blob_endpoint: String,
    /// The account key, when the connection has one.
    pub key: Option<String>,
    /// The shared access signature (query string), when the connection has one.
    pub sas: Option<String>,
}

impl std::fmt::Debug for StorageConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageConnection")
            .field("account", &self.account)
            .field("blob_endpoint", &self.blob_endpoint)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("sas", &self.sas.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl StorageConnection {
    /// Parses a storage connection string (see the [module docs](self)). The message of
    /// an error never contains a secret.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = std::collections::HashMap::new();
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').ok_or_else(|| {
                format!(
                    "a part of the storage connection string has no '=': {:?}",
                    part.chars().take(20).collect::<String>()
                )
            })?;
            parts.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
        let get = |name: &str| parts.get(name).filter(|v| !v.is_empty()).cloned();
        if get("usedevelopmentstorage").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(Self {
                account: DEVELOPMENT_ACCOUNT.into(),
                blob_endpoint: DEVELOPMENT_BLOB_ENDPOINT.into(),
                key: Some(DEVELOPMENT_KEY.into()),
                sas: None,
            });
        }
        let endpoint = get("blobendpoint");
        let account = match (get("accountname"), &endpoint) {
            (Some(a), _) => a,
            (None, Some(e)) => account_of_endpoint(e).ok_or_else(|| {
                format!("the storage connection string has no AccountName, and its BlobEndpoint {e:?} does not name one")
            })?,
            (None, None) => {
                return Err(if text.trim().is_empty() {
                    "the storage connection string is empty".into()
                } else {
                    "the storage connection string has neither AccountName nor BlobEndpoint".into()
                });
            }
        };
        let blob_endpoint = match endpoint {
            Some(e) => e.trim_end_matches('/').to_owned(),
            None => format!(
                "{}://{account}.blob.{}",
                get("defaultendpointsprotocol").unwrap_or_else(|| "https".into()),
                get("endpointsuffix").unwrap_or_else(|| "core.windows.net".into())
            ),
        };
        let key = get("accountkey");
        let sas = get("sharedaccesssignature").map(|s| s.trim_start_matches('?').to_owned());
        if key.is_none() && sas.is_none() {
            return Err(
                "the storage connection string has neither AccountKey nor SharedAccessSignature"
                    .into(),
            );
        }
        Ok(Self {
            account,
            blob_endpoint,
            key,
            sas,
        })
    }

    /// A builder for this account (container not set yet).
    pub fn builder(&self) -> MicrosoftAzureBuilder {
        let mut builder = MicrosoftAzureBuilder::new()
            .with_account(&self.account)
            .with_endpoint(self.blob_endpoint.clone());
        if let Some(key) = &self.key {
            builder = builder.with_access_key(key);
        } else if let Some(sas) = &self.sas {
            builder = builder.with_config(object_store::azure::AzureConfigKey::SasKey, sas);
        }
        builder
    }
}

/// The account named by the first label of an endpoint's host
/// (`https://acct.blob.core.windows.net`) or, for path-style endpoints
/// (`http://127.0.0.1:10000/acct`), by its first path segment.
fn account_of_endpoint(endpoint: &str) -> Option<String> {
    let rest = endpoint.split_once("://").map_or(endpoint, |(_, r)| r);
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    if crate::blob::is_path_style_host(host) {
        path.split('/').find(|s| !s.is_empty()).map(str::to_owned)
    } else {
        host.split([':', '.']).next().map(str::to_owned)
    }
}

/// Why a bucket could not be set up.
#[derive(Debug)]
pub struct BlobStoreError {
    logical: String,
    message: String,
    source: Option<object_store::Error>,
}

impl std::fmt::Display for BlobStoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "blob bucket {:?}: {}", self.logical, self.message)
    }
}

impl std::error::Error for BlobStoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The blob container of the bucket `logical`: the value of `NUBE_BUCKET_<NAME>`, or
/// `logical` when that is unset or empty.
pub fn container_name(logical: &str) -> String {
    crate::names::physical(&crate::names::bucket_setting(logical), logical)
}

/// The builder for the function app's storage account, from `AzureWebJobsStorage` (or
/// its identity-based `__blobServiceUri` / `__accountName` settings).
pub fn builder_from_env() -> Result<MicrosoftAzureBuilder, String> {
    let setting = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    if let Some(text) = setting(STORAGE_CONNECTION) {
        return StorageConnection::parse(&text)
            .map(|c| c.builder())
            .map_err(|m| format!("{STORAGE_CONNECTION}: {m}"));
    }
    let uri = setting(&format!("{STORAGE_CONNECTION}__blobServiceUri"));
    let account = setting(&format!("{STORAGE_CONNECTION}__accountName"))
        .or_else(|| uri.as_deref().and_then(account_of_endpoint));
    match (account, uri) {
        (Some(account), uri) => {
            let mut builder = MicrosoftAzureBuilder::from_env().with_account(account);
            if let Some(uri) = uri {
                builder = builder.with_endpoint(uri.trim_end_matches('/').to_owned());
            }
            Ok(builder)
        }
        (None, _) => Err(format!(
            "{STORAGE_CONNECTION} is not set: it holds the storage account's connection string \
             (or set {STORAGE_CONNECTION}__blobServiceUri for an identity-based connection)"
        )),
    }
}

/// The logical bucket `logical`, stored in the container [`container_name`] of the
/// account in the environment ([`builder_from_env`]).
pub fn bucket(logical: &str) -> Result<Bucket, BlobStoreError> {
    let builder = builder_from_env().map_err(|message| BlobStoreError {
        logical: logical.to_owned(),
        message,
        source: None,
    })?;
    bucket_with(logical, &container_name(logical), builder)
}

/// The logical bucket `logical`, stored in the blob container `container` of the
/// account configured in `builder` (whose container name is replaced).
pub fn bucket_with(
    logical: &str,
    container: &str,
    builder: MicrosoftAzureBuilder,
) -> Result<Bucket, BlobStoreError> {
    let fail = |message: String, source: Option<object_store::Error>| BlobStoreError {
        logical: logical.to_owned(),
        message,
        source,
    };
    nube::blob::validate_bucket_name(logical).map_err(|m| fail(m, None))?;
    let setting = crate::names::bucket_setting(logical);
    nube::blob::validate_bucket_name(container).map_err(|m| {
        fail(
            format!("the container name is not one Azure accepts ({m}): set {setting} to the container's name"),
            None,
        )
    })?;
    let mut builder = builder.with_container_name(container);
    let endpoint = builder.get_config_value(&object_store::azure::AzureConfigKey::Endpoint);
    if endpoint.is_some_and(|e| e.starts_with("http://")) {
        builder = builder.with_allow_http(true);
    }
    let store = builder.build().map_err(|e| {
        fail(
            format!(
                "cannot configure the blob container {container:?} (set {setting} to its name; the account comes \
                 from {STORAGE_CONNECTION}): {e}"
            ),
            Some(e),
        )
    })?;
    Ok(Bucket::new(logical, Arc::new(store)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings() {
        let c = StorageConnection::parse(
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net",
        )
        .unwrap();
        assert_eq!(c.account, "acct");
        assert_eq!(c.blob_endpoint, "https://acct.blob.core.windows.net");
        assert_eq!(c.key.as_deref(), Some("a2V5"));
        assert!(!format!("{c:?}").contains("a2V5"));

        let dev = StorageConnection::parse("UseDevelopmentStorage=true").unwrap();
        assert_eq!(dev.account, DEVELOPMENT_ACCOUNT);
        assert_eq!(dev.blob_endpoint, DEVELOPMENT_BLOB_ENDPOINT);

        let azurite = StorageConnection::parse(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=k;BlobEndpoint=http://127.0.0.1:4321/devstoreaccount1/;",
        )
        .unwrap();
        assert_eq!(
            azurite.blob_endpoint,
            "http://127.0.0.1:4321/devstoreaccount1"
        );

        let sas = StorageConnection::parse(
            "BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=?sv=1&sig=x",
        )
        .unwrap();
        assert_eq!(sas.account, "acct");
        assert_eq!(sas.sas.as_deref(), Some("sv=1&sig=x"));

        for bad in ["", "AccountName=a", "AccountKey=k", "junk"] {
            assert!(StorageConnection::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn endpoints_name_their_account() {
        assert_eq!(
            account_of_endpoint("https://acct.blob.core.windows.net").as_deref(),
            Some("acct")
        );
        assert_eq!(
            account_of_endpoint("http://127.0.0.1:10000/devstoreaccount1").as_deref(),
            Some("devstoreaccount1")
        );
        assert_eq!(account_of_endpoint("http://127.0.0.1:10000/"), None);
        // The same host rule as the blob trigger's URIs.
        for path_style in [
            "http://[::1]:10000/devstoreaccount1",
            "http://azurite:10000/devstoreaccount1",
        ] {
            assert_eq!(
                account_of_endpoint(path_style).as_deref(),
                Some("devstoreaccount1"),
                "{path_style}"
            );
        }
    }

    #[test]
    fn builds_without_network_and_checks_names() {
        let c = StorageConnection::parse("UseDevelopmentStorage=true").unwrap();
        let b = bucket_with("uploads", "physical-uploads", c.builder()).unwrap();
        assert_eq!(b.name(), "uploads");
        assert!(bucket_with("Not_Valid", "x", c.builder()).is_err());
        let e = bucket_with("uploads", "ab", c.builder()).unwrap_err();
        assert!(e.to_string().contains("NUBE_BUCKET_UPLOADS"), "{e}");
        assert_eq!(
            container_name("nube-test-no-setting"),
            "nube-test-no-setting"
        );
    }
}
