//! The app's stores on Google Cloud ([`resources_from_env`]): Firestore behind the
//! feature `firestore`, Cloud Storage behind the feature `gcs`. Without a feature, its
//! resources are missing: functions get a [`NoDocumentStore`] and no buckets. Triggers
//! work without them, so event functions that only react to events, and HTTP functions
//! that touch no store, run as they are; a call to a store fails that invocation with a
//! message saying why.

use std::sync::Arc;

use nube::store::{DocumentStore, NoDocumentStore};
use nube::{App, Resources};

use crate::server::InitError;

/// The app's stores on Google Cloud: Firestore for its collections (feature
/// `firestore`, [`crate::firestore_store`]) and Cloud Storage for its buckets (feature
/// `gcs`, [`crate::gcs`]), named through [`crate::names`].
///
/// An app without collections gets a [`NoDocumentStore`]. In a build without the matching
/// feature, declared collections get a [`NoDocumentStore`] and buckets none, with a
/// warning naming the feature: their triggers still work, reading or writing them fails.
/// A backend that cannot be set up (no project id, bad credentials, a bucket name
/// object_store refuses) fails here, saying what to set.
pub async fn resources_from_env(app: &App) -> Result<Resources, InitError> {
    let documents = document_store(app).await?;
    let resources = Resources::new(documents).with_declarations(app, false);
    add_buckets(app, resources)
}

#[cfg(feature = "firestore")]
async fn document_store(app: &App) -> Result<Arc<dyn DocumentStore>, InitError> {
    if app.collections().next().is_none() {
        return Ok(Arc::new(NoDocumentStore::new("nube-gcp", "firestore")));
    }
    let store = crate::firestore_store::FirestoreStore::from_env()
        .await
        .map_err(|e| InitError(format!("the Firestore document store: {e}")))?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "firestore"))]
async fn document_store(app: &App) -> Result<Arc<dyn DocumentStore>, InitError> {
    let collections: Vec<&str> = app.collections().collect();
    if !collections.is_empty() {
        tracing::warn!(
            collections = collections.join(", "),
            "this build of nube-gcp has no document store (enable its \"firestore\" feature): these collections' triggers work, reading or writing them fails"
        );
    }
    Ok(Arc::new(NoDocumentStore::new("nube-gcp", "firestore")))
}

#[cfg(feature = "gcs")]
fn add_buckets(app: &App, mut resources: Resources) -> Result<Resources, InitError> {
    for logical in app.buckets() {
        let bucket = crate::gcs::bucket(logical).map_err(|e| InitError(e.to_string()))?;
        resources = resources.with_bucket(bucket);
    }
    Ok(resources)
}

#[cfg(not(feature = "gcs"))]
fn add_buckets(app: &App, resources: Resources) -> Result<Resources, InitError> {
    let buckets: Vec<&str> = app.buckets().collect();
    if !buckets.is_empty() {
        tracing::warn!(
            buckets = buckets.join(", "),
            "this build of nube-gcp has no blob store (enable its \"gcs\" feature): these buckets' triggers work, reading or writing them fails"
        );
    }
    Ok(resources)
}
