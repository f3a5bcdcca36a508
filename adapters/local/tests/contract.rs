//! The embedded store passes the core document-store contract, in memory and on disk.

use std::sync::Arc;

use nube_local::EmbeddedStore;
use nube_local::db::Database;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_in_memory_passes_the_contract() {
    let store = EmbeddedStore::new(Database::in_memory().unwrap());
    nube::store::contract::run(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_on_disk_passes_the_contract_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nube.db");
    let store = EmbeddedStore::new(Database::open(&path).unwrap());
    nube::store::contract::run(Arc::new(store.clone())).await;
    use nube::DocumentStore;
    store
        .put("kept", "k", serde_json::json!({"a": 1}))
        .await
        .unwrap();
    drop(store);
    let reopened = EmbeddedStore::new(Database::open(&path).unwrap());
    let doc = reopened
        .get("kept", "k")
        .await
        .unwrap()
        .expect("survives a reopen");
    assert_eq!(doc.value, serde_json::json!({"a": 1}));
}
