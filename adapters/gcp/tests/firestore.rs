//! The Firestore document store against Google's Cloud Firestore emulator, which each
//! test starts on a free loopback port: the contract suite unchanged, preconditions
//! against writes by other clients, and the documents as Firestore itself holds them.
//!
//! Needs the emulator (Debian's `google-cloud-cli-firestore-emulator`, Java 17+);
//! `cargo xtask test` sets `NUBE_FIRESTORE_EMULATOR`. Without it the tests fail.

mod emulator;

use std::sync::Arc;

use nube::DocumentStore;
use nube::store::{Direction, Query, StoreError, Version};
use nube_gcp::firestore_store::client::gcloud_sdk::google_cloud_auth::credentials::anonymous;
use nube_gcp::firestore_store::client::{FirestoreDb, FirestoreDbOptions};
use nube_gcp::firestore_store::{CollectionNaming, FirestoreStore};
use serde_json::{Value, json};

use emulator::Emulator;

/// A store on the emulator, in its own project (the emulator keeps projects apart).
/// The client is pointed at the emulator here, in the test set-up: in production
/// `FirestoreStore::from_env` reads `FIRESTORE_EMULATOR_HOST` the same way.
async fn store(emulator: &Emulator, project: &str, naming: CollectionNaming) -> FirestoreStore {
    let options =
        FirestoreDbOptions::new(project.to_owned()).with_firebase_api_url(emulator.endpoint());
    let db = FirestoreDb::with_options_auth(options, anonymous::Builder::new().build())
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the emulator: {e}"));
    FirestoreStore::new(db, naming)
}

/// The document at `path` (below `documents/`) as the emulator's REST API shows it.
fn rest_get(emulator: &Emulator, project: &str, path: &str) -> (u16, Value) {
    let (status, body) = emulator
        .request(
            "GET",
            &format!("/v1/projects/{project}/databases/(default)/documents/{path}"),
            "",
        )
        .unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Writes `fields` (Firestore REST values) at `path` as another client would.
fn rest_patch(emulator: &Emulator, project: &str, path: &str, fields: Value) -> Value {
    let (status, body) = emulator
        .request(
            "PATCH",
            &format!("/v1/projects/{project}/databases/(default)/documents/{path}"),
            &json!({ "fields": fields }).to_string(),
        )
        .unwrap();
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_contract() {
    let emulator = Emulator::firestore();
    let store = store(
        &emulator,
        "nube-contract",
        CollectionNaming::new().with_prefix("nube-test-"),
    )
    .await;
    nube::store::contract::run(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preconditions_hold_against_other_writers() {
    let emulator = Emulator::firestore();
    let project = "nube-pre";
    let store = store(&emulator, project, CollectionNaming::new()).await;

    let created = store.create("orders", "o1", json!({"n": 1})).await.unwrap();
    let (_, raw) = rest_get(&emulator, project, "orders/o1");
    let update_time = raw["updateTime"].as_str().unwrap();
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(update_time).unwrap(),
        chrono::DateTime::parse_from_rfc3339(created.version.as_str()).unwrap(),
        "the version is the document's update time"
    );

    // Another client writes: the version read before is stale.
    rest_patch(
        &emulator,
        project,
        "orders/o1",
        json!({"n": {"integerValue": "5"}}),
    );
    match store
        .update("orders", "o1", json!({"n": 2}), &created.version)
        .await
    {
        Err(StoreError::PreconditionFailed { expected, .. }) => {
            assert_eq!(expected, created.version.to_string())
        }
        other => panic!("an update after another client's write must fail, got {other:?}"),
    }
    match store.delete("orders", "o1", Some(&created.version)).await {
        Err(StoreError::PreconditionFailed { .. }) => {}
        other => panic!("a delete after another client's write must fail, got {other:?}"),
    }
    let current = store.get("orders", "o1").await.unwrap().unwrap();
    assert_eq!(current.value, json!({"n": 5}), "the other write stands");
    assert_ne!(current.version, created.version);
    let updated = store
        .update("orders", "o1", json!({"n": 6}), &current.version)
        .await
        .expect("an update at the current version");
    assert!(updated.version.as_str() > current.version.as_str());

    // A version this store did not write never matches.
    match store
        .update("orders", "o1", json!({}), &Version::new("v1"))
        .await
    {
        Err(StoreError::PreconditionFailed { .. }) => {}
        other => panic!("a foreign version is stale, got {other:?}"),
    }
    match store
        .update("orders", "gone", json!({}), &updated.version)
        .await
    {
        Err(StoreError::NotFound { .. }) => {}
        other => panic!("an update of a missing document is NotFound, got {other:?}"),
    }
    assert!(
        store
            .delete("orders", "o1", Some(&updated.version))
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete("orders", "o1", Some(&updated.version))
            .await
            .unwrap()
    );
    assert_eq!(rest_get(&emulator, project, "orders/o1").0, 404);

    // Documents written by other tools have versions too.
    rest_patch(
        &emulator,
        project,
        "orders/foreign",
        json!({"when": {"timestampValue": "2026-01-02T03:04:05.5Z"}, "b": {"bytesValue": "AQI="}}),
    );
    let foreign = store.get("orders", "foreign").await.unwrap().unwrap();
    assert_eq!(
        foreign.value,
        json!({"when": "2026-01-02T03:04:05.500Z", "b": "AQI="})
    );
    store
        .update(
            "orders",
            "foreign",
            json!({"adopted": true}),
            &foreign.version,
        )
        .await
        .expect("a foreign document updates at its version");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_are_native_firestore_documents() {
    let emulator = Emulator::firestore();
    let project = "nube-model";
    let store = store(
        &emulator,
        project,
        CollectionNaming::new()
            .with_prefix("prod-")
            .with_collection("pinned", "tenants/t1/pinned"),
    )
    .await;
    let value = json!({"id": "own id", "big": 9007199254740993i64, "f": 0.25, "ok": true,
                       "none": null, "tags": ["a", 1], "addr": {"city": "Oslo"}});
    store.put("orders", "o1", value.clone()).await.unwrap();
    let (status, raw) = rest_get(&emulator, project, "prod-orders/o1");
    assert_eq!(
        status, 200,
        "the collection is named with the prefix: {raw}"
    );
    assert_eq!(
        raw["fields"],
        json!({
            "id": {"stringValue": "own id"},
            "big": {"integerValue": "9007199254740993"},
            "f": {"doubleValue": 0.25},
            "ok": {"booleanValue": true},
            "none": {"nullValue": null},
            "tags": {"arrayValue": {"values": [{"stringValue": "a"}, {"integerValue": "1"}]}},
            "addr": {"mapValue": {"fields": {"city": {"stringValue": "Oslo"}}}},
        }),
        "fields in Firestore's own types, nothing else"
    );
    assert_eq!(
        store.get("orders", "o1").await.unwrap().unwrap().value,
        value
    );
    assert_eq!(
        store.collection_name("orders").unwrap(),
        format!("projects/{project}/databases/(default)/documents/prod-orders")
    );

    store.put("pinned", "p1", json!({"x": 1})).await.unwrap();
    assert_eq!(
        rest_get(&emulator, project, "tenants/t1/pinned/p1").0,
        200,
        "a collection path names a subcollection"
    );
    assert_eq!(
        store
            .query("pinned", &Query::new())
            .await
            .unwrap()
            .documents
            .len(),
        1
    );

    match store.put("orders", "bad", json!({"grid": [[1, 2]]})).await {
        Err(StoreError::InvalidDocument(m)) => assert!(m.contains("array"), "{m}"),
        other => panic!("an array in an array is refused, got {other:?}"),
    }
    match store.put("orders", "__reserved__", json!({})).await {
        Err(StoreError::InvalidDocument(_)) => {}
        other => panic!("an id Firestore reserves is refused, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_page_through_firestore_cursors() {
    let emulator = Emulator::firestore();
    let store = store(&emulator, "nube-query", CollectionNaming::new()).await;
    for i in 0..30 {
        store
            .put(
                "events",
                &format!("e{i:02}"),
                json!({"kind": if i % 3 == 0 { "a" } else { "b" }, "at": format!("2026-01-{:02}", 30 - i), "order-no": i, "maybe": if i < 5 { Value::Null } else { json!(i) }}),
            )
            .await
            .unwrap();
    }
    // Equality + order + range on the order field: everything pushed down.
    let q = Query::new()
        .eq("kind", "b")
        .gt("at", "2026-01-05")
        .order_by("at", Direction::Desc)
        .limit(4);
    let mut seen = Vec::new();
    let mut next = q.clone();
    loop {
        let page = store.query("events", &next).await.unwrap();
        assert!(page.documents.len() <= 4);
        seen.extend(page.documents.into_iter().map(|d| d.id));
        match page.next_cursor {
            Some(c) => next = q.clone().after(c),
            None => break,
        }
    }
    let expected: Vec<String> = (0..30)
        .filter(|i| i % 3 != 0 && 30 - i > 5)
        .map(|i| format!("e{i:02}"))
        .collect();
    assert_eq!(seen, expected, "every matching document once, newest first");

    // A field name that needs quoting in a Firestore field path.
    let page = store
        .query(
            "events",
            &Query::new()
                .ge("order-no", 28)
                .order_by("order-no", Direction::Asc),
        )
        .await
        .unwrap();
    let ids: Vec<&str> = page.documents.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["e28", "e29"]);

    // Equality on null is IS_NULL.
    let page = store
        .query("events", &Query::new().eq("maybe", Value::Null).limit(2))
        .await
        .unwrap();
    assert_eq!(page.documents.len(), 2);
    assert!(page.next_cursor.is_some());
}

/// Firestore moves the update time only when a write changes the document, so an update
/// that writes the current value keeps the version and does not stop a second update at
/// that version (the core contract allows it; the module docs tell users).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_changes_nothing_keeps_the_version() {
    let emulator = Emulator::firestore();
    let store = store(&emulator, "nube-same", CollectionNaming::new()).await;
    let created = store
        .create("jobs", "j1", json!({"state": "open"}))
        .await
        .unwrap();
    let same = store
        .update("jobs", "j1", json!({"state": "open"}), &created.version)
        .await
        .unwrap();
    assert_eq!(same.version, created.version);
    let claimed = store
        .update(
            "jobs",
            "j1",
            json!({"state": "claimed", "by": "w1"}),
            &created.version,
        )
        .await
        .expect("the version is still current");
    assert_ne!(claimed.version, created.version);
    match store
        .update(
            "jobs",
            "j1",
            json!({"state": "claimed", "by": "w2"}),
            &created.version,
        )
        .await
    {
        Err(StoreError::PreconditionFailed { .. }) => {}
        other => panic!("a changing write moved the version, got {other:?}"),
    }
}

/// What Firestore refuses is the caller's `InvalidDocument`, whose message (a 400's
/// body) says what the limits are without Firestore's own text, which names the project
/// and the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_documents_say_why_without_firestore_internals() {
    let emulator = Emulator::firestore();
    let project = "nube-refused";
    let store = store(&emulator, project, CollectionNaming::new()).await;
    let mut deep = json!("bottom");
    for _ in 0..25 {
        deep = json!({ "in": deep });
    }
    for (what, value) in [
        ("over 1 MiB", json!({"blob": "x".repeat(1_100_000)})),
        ("nested 25 deep", json!({ "deep": deep })),
    ] {
        match store.put("things", "t1", value).await {
            Err(StoreError::InvalidDocument(message)) => {
                for internal in [project, "projects/", "Database", "code:"] {
                    assert!(
                        !message.contains(internal),
                        "{what}: the message shows {internal:?}: {message}"
                    );
                }
            }
            other => panic!("{what}: expected InvalidDocument, got {other:?}"),
        }
    }
    assert_eq!(rest_get(&emulator, project, "things/t1").0, 404);
}
