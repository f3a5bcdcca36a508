//! The DynamoDB document store against moto: the contract suite unchanged, the data
//! model as DynamoDB (and its stream) sees it, and the errors operators read.
//!
//! Needs `NUBE_MOTO_SERVER` (`cargo xtask test` installs moto and sets it).

mod moto;

use std::collections::HashMap;
use std::sync::Arc;

use nube::DocumentStore;
use nube::store::{Direction, Query, StoreError, Version};
use nube_aws::dynamodb::sdk::config::retry::RetryConfig;
use nube_aws::dynamodb::sdk::config::{BehaviorVersion, Credentials, Region};
use nube_aws::dynamodb::sdk::types::AttributeValue;
use nube_aws::dynamodb::{DynamoDbStore, TableNaming, UNVERSIONED};
use serde_json::json;

use moto::lost_answers::LostAnswers;
use moto::{ACCESS_KEY, Moto, REGION, SECRET_KEY};

fn client(moto: &Moto) -> nube_aws::dynamodb::sdk::Client {
    client_at(&moto.endpoint())
}

/// A client of the endpoint, retrying as the SDK's standard mode does (three attempts).
fn client_at(endpoint: &str) -> nube_aws::dynamodb::sdk::Client {
    let config = nube_aws::dynamodb::sdk::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "moto"))
        .endpoint_url(endpoint)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(std::time::Duration::from_millis(10)),
        )
        .build();
    nube_aws::dynamodb::sdk::Client::from_conf(config)
}

/// A store on `moto` that creates each collection's table on first use (the contract
/// makes up its collection names).
fn store(moto: &Moto) -> DynamoDbStore {
    DynamoDbStore::new(client(moto), TableNaming::new().with_prefix("nube-test-"))
        .create_missing_tables(true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_contract() {
    let moto = Moto::start();
    nube::store::contract::run(Arc::new(store(&moto))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_hold_the_document_as_native_attributes() {
    let moto = Moto::start();
    let store = store(&moto);
    let written = store
        .create(
            "orders",
            "o1",
            json!({"id": "own id", "total": 12345678901234567u64, "f": 0.25, "ok": true,
                   "none": null, "tags": ["a", 1], "addr": {"city": "Oslo"}}),
        )
        .await
        .unwrap();
    let item = store
        .client()
        .get_item()
        .table_name("nube-test-orders")
        .key("id", AttributeValue::S("o1".into()))
        .send()
        .await
        .unwrap()
        .item
        .expect("the item is in the table named by the prefix");
    let expected: HashMap<String, AttributeValue> = HashMap::from([
        ("id".into(), AttributeValue::S("o1".into())),
        (
            "_nube_version".into(),
            AttributeValue::S(written.version.to_string()),
        ),
        ("_nube_id".into(), AttributeValue::S("own id".into())),
        (
            "total".into(),
            AttributeValue::N("12345678901234567".into()),
        ),
        ("f".into(), AttributeValue::N("0.25".into())),
        ("ok".into(), AttributeValue::Bool(true)),
        ("none".into(), AttributeValue::Null(true)),
        (
            "tags".into(),
            AttributeValue::L(vec![
                AttributeValue::S("a".into()),
                AttributeValue::N("1".into()),
            ]),
        ),
        (
            "addr".into(),
            AttributeValue::M(HashMap::from([(
                "city".into(),
                AttributeValue::S("Oslo".into()),
            )])),
        ),
    ]);
    assert_eq!(item, expected);
    let got = store.get("orders", "o1").await.unwrap().unwrap();
    assert_eq!(got.value, written.value, "the `id` field round-trips");
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
    match store
        .put("orders", "o2", json!({"_nube_version": "x"}))
        .await
    {
        Err(StoreError::InvalidDocument(m)) => assert!(m.contains("reserved"), "{m}"),
        other => panic!("a `_nube` field must be refused, got {other:?}"),
    }
    // DynamoDB's refusal names the table: the message (a 400's body) states the limit.
    match store
        .put("orders", "o3", json!({"blob": "x".repeat(410_000)}))
        .await
    {
        Err(StoreError::InvalidDocument(m)) => {
            assert!(m.contains("400 KB") && !m.contains("nube-test-"), "{m}")
        }
        other => panic!("an item over 400 KB must be refused, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_items_reach_the_stream_as_inserts_with_new_image() {
    use nube_aws_streams as streams;

    let moto = Moto::start();
    let store = store(&moto);
    let table = store.ensure_table("events").await.unwrap();
    assert_eq!(
        store.ensure_table("events").await.unwrap(),
        table,
        "ensure_table is idempotent"
    );
    let written = store
        .create(
            "events",
            "e1",
            json!({"kind": "signup", "n": 9007199254740993i64}),
        )
        .await
        .unwrap();

    let described = store
        .client()
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let spec = described.stream_specification.expect("the stream is on");
    assert!(spec.stream_enabled);
    assert_eq!(
        spec.stream_view_type.map(|v| v.as_str().to_owned()),
        Some("NEW_IMAGE".to_owned())
    );
    let arn = described.latest_stream_arn.expect("a stream ARN");

    let streams = streams::client(&moto);
    let stream = streams
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .unwrap()
        .stream_description
        .unwrap();
    let mut records = Vec::new();
    for shard in stream.shards.unwrap_or_default() {
        let iterator = streams
            .get_shard_iterator()
            .stream_arn(&arn)
            .shard_id(shard.shard_id.unwrap())
            .shard_iterator_type(streams::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator
            .unwrap();
        let got = streams
            .get_records()
            .shard_iterator(iterator)
            .send()
            .await
            .unwrap();
        records.extend(got.records.unwrap_or_default());
    }
    let insert = records
        .iter()
        .find(|r| r.event_name.as_ref().map(|e| e.as_str()) == Some("INSERT"))
        .unwrap_or_else(|| panic!("an INSERT record, got {records:?}"));
    let image = insert
        .dynamodb
        .as_ref()
        .and_then(|d| d.new_image.as_ref())
        .expect("the record carries NEW_IMAGE");
    use streams::AttributeValue as A;
    assert_eq!(image.get("id"), Some(&A::S("e1".into())));
    assert_eq!(image.get("kind"), Some(&A::S("signup".into())));
    assert_eq!(image.get("n"), Some(&A::N("9007199254740993".into())));
    assert_eq!(
        image.get("_nube_version"),
        Some(&A::S(written.version.to_string()))
    );
}

/// The streams SDK, which only this test uses.
mod nube_aws_streams {
    use aws_sdk_dynamodbstreams::config::{BehaviorVersion, Credentials, Region};
    pub use aws_sdk_dynamodbstreams::types::{AttributeValue, ShardIteratorType};

    pub fn client(moto: &super::Moto) -> aws_sdk_dynamodbstreams::Client {
        let config = aws_sdk_dynamodbstreams::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(super::REGION))
            .credentials_provider(Credentials::new(
                super::ACCESS_KEY,
                super::SECRET_KEY,
                None,
                None,
                "moto",
            ))
            .endpoint_url(moto.endpoint())
            .build();
        aws_sdk_dynamodbstreams::Client::from_conf(config)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_follow_last_evaluated_key() {
    let moto = Moto::start();
    let store = store(&moto);
    // 12 items of ~100 KB: more than the 1 MB one Scan response holds.
    let filler = "x".repeat(100_000);
    for i in 0..12 {
        store
            .put(
                "big",
                &format!("b{i:02}"),
                json!({"i": i, "kind": "big", "filler": filler}),
            )
            .await
            .unwrap();
    }
    let first = store
        .client()
        .scan()
        .table_name("nube-test-big")
        .send()
        .await
        .unwrap();
    assert!(
        first.last_evaluated_key.is_some(),
        "one Scan does not hold the table, so the query must page"
    );
    let page = store
        .query(
            "big",
            &Query::new()
                .eq("kind", "big")
                .order_by("i", Direction::Desc)
                .limit(1000),
        )
        .await
        .unwrap();
    let ids: Vec<_> = page.documents.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids.len(), 12, "every page of the scan is read");
    assert_eq!(ids[0], "b11");
}

/// A write the SDK sends again because its answer was lost (applied, then a 500) is
/// refused the second time against the item it wrote: still the write's success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_answer_was_lost_succeeds_once() {
    let moto = Moto::start();
    let proxy = LostAnswers::start(&moto.endpoint());
    let store = DynamoDbStore::new(
        client_at(&proxy.endpoint()),
        TableNaming::new().with_prefix("nube-test-"),
    )
    .create_missing_tables(true);
    store.ensure_table("retried").await.unwrap();

    proxy.lose_next("PutItem");
    let created = store
        .create("retried", "a", json!({"n": 1}))
        .await
        .expect("a create applied before its answer was lost is a success, not a conflict");
    assert_eq!(
        proxy.lost(),
        1,
        "the first answer was lost and the SDK sent it again"
    );
    let stored = store.get("retried", "a").await.unwrap().unwrap();
    assert_eq!(stored.version, created.version);

    proxy.lose_next("PutItem");
    let updated = store
        .update("retried", "a", json!({"n": 2}), &created.version)
        .await
        .expect("an update applied before its answer was lost is a success");
    assert_eq!(proxy.lost(), 2);
    let stored = store.get("retried", "a").await.unwrap().unwrap();
    assert_eq!(
        (stored.version, stored.value),
        (updated.version.clone(), json!({"n": 2}))
    );

    // Writes that really lost stay refused.
    assert!(matches!(
        store.create("retried", "a", json!({})).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(matches!(
        store
            .update("retried", "a", json!({}), &created.version)
            .await,
        Err(StoreError::PreconditionFailed { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_written_by_other_tools_are_readable_and_updatable() {
    let moto = Moto::start();
    let store = store(&moto);
    let table = store.ensure_table("legacy").await.unwrap();
    store
        .client()
        .put_item()
        .table_name(&table)
        .item("id", AttributeValue::S("l1".into()))
        .item("name", AttributeValue::S("old".into()))
        .item("tags", AttributeValue::Ss(vec!["a".into()]))
        .send()
        .await
        .unwrap();
    let got = store.get("legacy", "l1").await.unwrap().unwrap();
    assert_eq!(got.version.as_str(), UNVERSIONED);
    assert_eq!(got.value, json!({"name": "old", "tags": ["a"]}));
    let updated = store
        .update("legacy", "l1", json!({"name": "new"}), &got.version)
        .await
        .expect("an unversioned item updates at the UNVERSIONED version");
    match store
        .update("legacy", "l1", json!({"name": "newer"}), &got.version)
        .await
    {
        Err(StoreError::PreconditionFailed { .. }) => {}
        other => panic!("once versioned, UNVERSIONED is stale: got {other:?}"),
    }
    assert!(
        store
            .delete("legacy", "l1", Some(&updated.version))
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete("legacy", "l1", Some(&Version::new(UNVERSIONED)))
            .await
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_table_names_the_variable_to_set() {
    let moto = Moto::start();
    let store = DynamoDbStore::new(client(&moto), TableNaming::new());
    for result in [
        store.get("order-events", "x").await.map(|_| ()),
        store.put("order-events", "x", json!({})).await.map(|_| ()),
        store.query("order-events", &Query::new()).await.map(|_| ()),
    ] {
        match result {
            Err(e @ StoreError::Backend { .. }) => {
                let text = e.to_string();
                assert!(
                    text.contains("NUBE_TABLE_ORDER_EVENTS") && text.contains("does not exist"),
                    "{text}"
                );
            }
            other => panic!("a missing table is a backend error, got {other:?}"),
        }
    }
    let named = DynamoDbStore::new(
        client(&moto),
        TableNaming::new().with_table("order-events", "x"),
    );
    match named.get("order-events", "a").await {
        Err(e @ StoreError::Backend { .. }) => {
            assert!(e.to_string().contains("NUBE_TABLE_ORDER_EVENTS"), "{e}")
        }
        other => panic!("a table name DynamoDB refuses is a backend error, got {other:?}"),
    }
}
