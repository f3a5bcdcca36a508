//! The Cosmos DB document store against the `@vercel/cosmosdb-server` emulator: the
//! contract suite unchanged, versions as ETags with `If-Match`, the items as Cosmos DB
//! (and its change feed) sees them, and the `_nube_created` rule the trigger applies.
//!
//! Needs `NUBE_COSMOS_SERVER` (`cargo xtask test` installs the emulator and sets it).

mod cosmos_emulator;

use std::sync::Arc;

use nube::DocumentStore;
use nube::store::{Query, StoreError, Version};
use nube_azure::cosmos::sdk::options::{ItemWriteOptions, Precondition};
use nube_azure::cosmos::{CosmosStore, UNKNOWN_CREATE};
use nube_azure::document::{document_value, is_created};
use serde_json::{Map, Value, json};

use cosmos_emulator::CosmosEmulator;

/// The item as stored, read through the SDK (no nube mapping).
async fn raw_item(store: &CosmosStore, container: &str, id: &str) -> Map<String, Value> {
    store
        .client()
        .database_client(store.database())
        .container_client(container, None)
        .await
        .unwrap()
        .read_item(id.to_owned(), id, None)
        .await
        .unwrap()
        .into_model()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_contract() {
    let emulator = CosmosEmulator::start();
    let store = emulator.store("nube-contract").await;
    let run = tokio::spawn(nube::store::contract::run(Arc::new(store)));
    if let Err(e) = run.await {
        panic!("{e}\nrequests:\n{}", emulator.diagnostics());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_are_etags_and_writes_send_if_match() {
    let emulator = CosmosEmulator::start();
    let store = emulator.store("nube-etags").await;
    let created = store.create("orders", "o1", json!({"n": 1})).await.unwrap();
    let item = raw_item(&store, "orders", "o1").await;
    assert_eq!(
        item["_etag"].as_str(),
        Some(created.version.as_str()),
        "the version is the item's ETag"
    );

    // Someone else writes through the SDK: the ETag changes, nube's version is stale.
    let container = store
        .client()
        .database_client(store.database())
        .container_client("orders", None)
        .await
        .unwrap();
    let mut changed = item.clone();
    changed.insert("n".into(), json!(99));
    let other = container
        .replace_item(
            "o1".to_owned(),
            "o1",
            &changed,
            Some(
                ItemWriteOptions::default()
                    .with_precondition(Precondition::if_match(created.version.as_str())),
            ),
        )
        .await
        .expect("If-Match with the current ETag succeeds");
    let other_etag = other.headers().etag().unwrap().to_string();
    assert_ne!(other_etag, created.version.as_str());
    match store
        .update("orders", "o1", json!({"n": 2}), &created.version)
        .await
    {
        Err(StoreError::PreconditionFailed { expected, .. }) => {
            assert_eq!(expected, created.version.as_str())
        }
        other => panic!("a stale ETag must be PreconditionFailed, got {other:?}"),
    }
    match store.delete("orders", "o1", Some(&created.version)).await {
        Err(StoreError::PreconditionFailed { .. }) => {}
        other => panic!("a stale ETag must not delete, got {other:?}"),
    }
    let got = store.get("orders", "o1").await.unwrap().unwrap();
    assert_eq!(got.version.as_str(), other_etag);
    assert_eq!(got.value, json!({"n": 99}));
    let updated = store
        .update("orders", "o1", json!({"n": 3}), &got.version)
        .await
        .expect("the current ETag updates");
    assert!(
        store
            .delete("orders", "o1", Some(&updated.version))
            .await
            .unwrap()
    );
    match store
        .update("orders", "o1", json!({}), &Version::new("\"nope\""))
        .await
    {
        Err(StoreError::NotFound { .. }) => {}
        other => panic!("an update of a deleted id is NotFound, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_holds_while_the_version_is_the_created_version() {
    let emulator = CosmosEmulator::start();
    let store = emulator.store("nube-created").await;

    // create: version == created, so the trigger reports a create.
    store.create("events", "e1", json!({"k": 1})).await.unwrap();
    let first = raw_item(&store, "events", "e1").await;
    let created = first["_nube_created"].clone();
    assert!(created.is_string(), "{first:?}");
    assert_eq!(first["_nube_version"], created);
    assert!(is_created(&first), "a created item counts as created");

    // put keeps _nube_created and changes _nube_version: an update.
    store.put("events", "e1", json!({"k": 2})).await.unwrap();
    let second = raw_item(&store, "events", "e1").await;
    assert_eq!(
        second["_nube_created"], created,
        "put over a document keeps it"
    );
    assert_ne!(second["_nube_version"], first["_nube_version"]);
    assert!(!is_created(&second), "an item put over is no create");
    // update writes without reading first, so it cannot keep it: still no create.
    let current = store.get("events", "e1").await.unwrap().unwrap();
    store
        .update("events", "e1", json!({"k": 3}), &current.version)
        .await
        .unwrap();
    let third = raw_item(&store, "events", "e1").await;
    assert_eq!(third["_nube_created"], UNKNOWN_CREATE);
    assert!(!is_created(&third), "an updated item is no create");

    // put of a new id creates; delete and create again is a new create.
    store.put("events", "e2", json!({})).await.unwrap();
    assert!(is_created(&raw_item(&store, "events", "e2").await));
    assert!(store.delete("events", "e1", None).await.unwrap());
    store.create("events", "e1", json!({"k": 4})).await.unwrap();
    let again = raw_item(&store, "events", "e1").await;
    assert!(is_created(&again));
    assert_ne!(again["_nube_created"], created);
}

/// A write the driver sends again because its answer was lost (applied, then the
/// connection dropped) is refused the second time against the item it wrote: still
/// the write's success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_answer_was_lost_succeeds_once() {
    let emulator = CosmosEmulator::start();
    let store = emulator.store("nube-lost").await;
    store.get("lost", "warm-up").await.unwrap();

    emulator.lose_next_answer("POST");
    let created = store
        .create("lost", "a", json!({"n": 1}))
        .await
        .expect("a create applied before its answer was lost is a success, not a conflict");
    assert_eq!(emulator.lost_answers(), 1, "the first answer was lost");
    let stored = store.get("lost", "a").await.unwrap().unwrap();
    assert_eq!(stored.version, created.version);

    emulator.lose_next_answer("PUT");
    let updated = store
        .update("lost", "a", json!({"n": 2}), &created.version)
        .await
        .expect("an update applied before its answer was lost is a success");
    assert_eq!(emulator.lost_answers(), 2);
    let stored = store.get("lost", "a").await.unwrap().unwrap();
    assert_eq!(
        (stored.version, stored.value),
        (updated.version.clone(), json!({"n": 2}))
    );

    // Writes that really lost stay refused.
    assert!(matches!(
        store.create("lost", "a", json!({})).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(matches!(
        store.update("lost", "a", json!({}), &created.version).await,
        Err(StoreError::PreconditionFailed { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_hold_the_document_and_exact_numbers() {
    let emulator = CosmosEmulator::start();
    let store = emulator.store("nube-items").await;
    let value = json!({"id": "own id", "big": 9007199254740993u64, "two": 2.0, "f": 0.25,
                       "addr": {"city": "Oslo"}, "none": null});
    store.create("orders", "o1", value.clone()).await.unwrap();
    let item = raw_item(&store, "orders", "o1").await;
    assert_eq!(item["id"], "o1");
    assert_eq!(item["_nube_id"], "own id");
    assert_eq!(item["addr"], json!({"city": "Oslo"}));
    assert_eq!(
        item["_nube_numbers"],
        json!({"/big": "9007199254740993", "/two": "2.0"})
    );
    assert_eq!(
        store.get("orders", "o1").await.unwrap().unwrap().value,
        value
    );
    assert_eq!(
        document_value(item.clone()),
        value,
        "the trigger's decoder reads the stored item as the store does"
    );
    let page = store
        .query("orders", &Query::new().eq("id", "own id"))
        .await
        .unwrap();
    assert_eq!(page.documents.len(), 1, "equality on the `id` field");
    assert!(
        store
            .query("orders", &Query::new().eq("id", "o1"))
            .await
            .unwrap()
            .documents
            .is_empty(),
        "the key is not the document's `id` field"
    );
    for bad in [json!({"_nube_version": "x"}), json!({"_etag": "x"})] {
        match store.put("orders", "o2", bad).await {
            Err(StoreError::InvalidDocument(m)) => assert!(m.contains("reserved"), "{m}"),
            other => panic!("a reserved field must be refused, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_container_names_the_setting() {
    let emulator = CosmosEmulator::start();
    let store = CosmosStore::new(emulator.client().await, "nube-missing");
    match store.get("order-events", "x").await {
        Err(e @ StoreError::Backend { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("NUBE_COLLECTION_ORDER_EVENTS") && text.contains("does not exist"),
                "{text}"
            );
        }
        other => panic!("a missing container is a backend error, got {other:?}"),
    }
}
