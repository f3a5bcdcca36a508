//! The contract every [`DocumentStore`] backend must pass, unchanged.
//!
//! Call [`run`] from the backend's own tests with a fresh or shared store; it works
//! in collections with a random suffix, so runs never see each other's data.
//!
//! ```no_run
//! # async fn demo() {
//! let store = std::sync::Arc::new(nube::store::MemoryStore::new());
//! nube::store::contract::run(store).await;
//! # }
//! ```

use std::sync::Arc;

use serde_json::{Value, json};

use super::{Direction, DocumentStore, Query, StoreError, Version};

/// Runs every check against `store`; panics with the failing check's name.
pub async fn run(store: Arc<dyn DocumentStore>) {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let c = |name: &str| format!("{name}-{}", &suffix[..12]);
    crud(&*store, &c("crud")).await;
    preconditions(&*store, &c("pre")).await;
    validation(&*store, &c("valid")).await;
    values_round_trip(&*store, &c("values")).await;
    queries(&*store, &c("query")).await;
    pagination(&*store, &c("pages")).await;
    concurrent_updates(store.clone(), &c("race")).await;
    collections_are_separate(&*store, &c("sep-a"), &c("sep-b")).await;
}

async fn crud(s: &dyn DocumentStore, c: &str) {
    assert!(
        s.get(c, "a").await.unwrap().is_none(),
        "crud: get of a missing id is None"
    );
    let created = s.create(c, "a", json!({"n": 1})).await.unwrap();
    assert_eq!(created.id, "a");
    assert_eq!(created.value, json!({"n": 1}));
    let got = s
        .get(c, "a")
        .await
        .unwrap()
        .expect("crud: created document is readable");
    assert_eq!(got.value, json!({"n": 1}));
    assert_eq!(
        got.version, created.version,
        "crud: get returns the version create gave"
    );
    match s.create(c, "a", json!({"n": 2})).await {
        Err(StoreError::Conflict { .. }) => {}
        other => panic!("crud: create of an existing id must be Conflict, got {other:?}"),
    }
    assert_eq!(
        s.get(c, "a").await.unwrap().unwrap().value,
        json!({"n": 1}),
        "crud: a refused create changes nothing"
    );
    let put = s.put(c, "a", json!({"n": 3})).await.unwrap();
    assert_ne!(
        put.version, created.version,
        "crud: put changes the version"
    );
    let put_new = s.put(c, "b", json!({"n": 4})).await.unwrap();
    assert_eq!(
        s.get(c, "b").await.unwrap().unwrap().version,
        put_new.version,
        "crud: put creates"
    );
    assert!(
        s.delete(c, "a", None).await.unwrap(),
        "crud: delete of an existing id is true"
    );
    assert!(
        !s.delete(c, "a", None).await.unwrap(),
        "crud: delete of a missing id is false"
    );
    assert!(
        s.get(c, "a").await.unwrap().is_none(),
        "crud: deleted is gone"
    );
    let again = s
        .create(c, "a", json!({"again": true}))
        .await
        .expect("crud: a deleted id can be created again");
    match s.update(c, "a", json!({"stale": true}), &put.version).await {
        Err(StoreError::PreconditionFailed { .. }) => {}
        other => panic!(
            "crud: a version from before a delete must not match the re-created document, got {other:?}"
        ),
    }
    assert_eq!(s.get(c, "a").await.unwrap().unwrap().version, again.version);
}

async fn preconditions(s: &dyn DocumentStore, c: &str) {
    let v1 = s.create(c, "p", json!({"n": 1})).await.unwrap().version;
    let v2 = s
        .update(c, "p", json!({"n": 2}), &v1)
        .await
        .expect("pre: update at the current version")
        .version;
    assert_ne!(v1, v2, "pre: update changes the version");
    match s.update(c, "p", json!({"n": 3}), &v1).await {
        Err(StoreError::PreconditionFailed { .. }) => {}
        other => panic!("pre: update at a stale version must be PreconditionFailed, got {other:?}"),
    }
    assert_eq!(
        s.get(c, "p").await.unwrap().unwrap().value,
        json!({"n": 2}),
        "pre: a refused update changes nothing"
    );
    let same = s
        .update(c, "p", json!({"n": 2}), &v2)
        .await
        .expect("pre: an update that writes the current value succeeds");
    assert_eq!(
        s.get(c, "p").await.unwrap().unwrap().version,
        same.version,
        "pre: an update that changes nothing returns the document's version"
    );
    let v2 = same.version;
    match s.update(c, "missing", json!({}), &v2).await {
        Err(StoreError::NotFound { .. }) => {}
        other => panic!("pre: update of a missing id must be NotFound, got {other:?}"),
    }
    match s.delete(c, "p", Some(&v1)).await {
        Err(StoreError::PreconditionFailed { .. }) => {}
        other => panic!("pre: delete at a stale version must be PreconditionFailed, got {other:?}"),
    }
    assert!(
        s.delete(c, "p", Some(&v2)).await.unwrap(),
        "pre: delete at the current version"
    );
    assert!(
        !s.delete(c, "p", Some(&Version::new("whatever")))
            .await
            .unwrap(),
        "pre: conditional delete of a missing id is false"
    );
    assert!(
        !s.delete(c, "p", Some(&v2)).await.unwrap(),
        "pre: conditional delete at the version of a deleted document is false"
    );
}

async fn validation(s: &dyn DocumentStore, c: &str) {
    for id in ["", "a/b", "a?b", "a#b", "bad\nid", "__x__", "____"] {
        match s.put(c, id, json!({})).await {
            Err(StoreError::InvalidDocument(_)) => {}
            other => panic!("validation: id {id:?} must be InvalidDocument, got {other:?}"),
        }
    }
    for id in ["a#b", "", "__x__"] {
        match s.get(c, id).await {
            Err(StoreError::InvalidDocument(_)) => {}
            other => panic!("validation: get of id {id:?} must be InvalidDocument, got {other:?}"),
        }
        match s.delete(c, id, None).await {
            Err(StoreError::InvalidDocument(_)) => {}
            other => {
                panic!("validation: delete of id {id:?} must be InvalidDocument, got {other:?}")
            }
        }
    }
    match s.put(c, "x", json!([1, 2])).await {
        Err(StoreError::InvalidDocument(_)) => {}
        other => panic!("validation: a non-object value must be InvalidDocument, got {other:?}"),
    }
    match s.put(c, "x", json!({"a": [{"__x__": 1}]})).await {
        Err(StoreError::InvalidDocument(_)) => {}
        other => panic!("validation: a field named __x__ must be InvalidDocument, got {other:?}"),
    }
    match s.query(c, &Query::new().gt("a", 1).lt("b", 2)).await {
        Err(StoreError::InvalidQuery(_)) => {}
        other => panic!("validation: ranges on two fields must be InvalidQuery, got {other:?}"),
    }
    match s.query(c, &Query::new().after("garbage")).await {
        Err(StoreError::InvalidQuery(_)) => {}
        other => panic!("validation: a foreign cursor must be InvalidQuery, got {other:?}"),
    }
    s.put(c, "ünïcødé id 1", json!({}))
        .await
        .expect("validation: unicode ids with spaces are fine");
}

async fn values_round_trip(s: &dyn DocumentStore, c: &str) {
    let value = json!({
        "s": "text", "empty": "", "i": 9007199254740993i64, "neg": -42, "f": 0.1,
        "t": true, "null": null, "list": [1, "two", {"three": 3}], "map": {"nested": {"deep": [true]}}
    });
    s.put(c, "v", value.clone()).await.unwrap();
    let got = s.get(c, "v").await.unwrap().unwrap().value;
    assert_eq!(
        got, value,
        "values: every JSON type round-trips, integers beyond 2^53 included"
    );
}

async fn seed(s: &dyn DocumentStore, c: &str) {
    let rows = [
        (
            "o1",
            json!({"user": "ann", "total": 30, "status": "PENDING", "at": "2026-01-03"}),
        ),
        (
            "o2",
            json!({"user": "bob", "total": 12.5, "status": "CONFIRMED", "at": "2026-01-01"}),
        ),
        (
            "o3",
            json!({"user": "ann", "total": 7, "status": "CONFIRMED", "at": "2026-01-02"}),
        ),
        (
            "o4",
            json!({"user": "ann", "total": "n/a", "status": "PENDING", "at": "2026-01-05"}),
        ),
        (
            "o5",
            json!({"user": "cid", "status": "PENDING", "addr": {"city": "Oslo"}}),
        ),
    ];
    for (id, v) in rows {
        s.put(c, id, v).await.unwrap();
    }
}

fn ids(page: &super::Page) -> Vec<&str> {
    page.documents.iter().map(|d| d.id.as_str()).collect()
}

async fn queries(s: &dyn DocumentStore, c: &str) {
    seed(s, c).await;
    let q = |q: Query| async move { s.query(c, &q).await.unwrap() };
    assert_eq!(
        ids(&q(Query::new()).await),
        ["o1", "o2", "o3", "o4", "o5"],
        "query: unordered is by id"
    );
    assert_eq!(
        ids(&q(Query::new().eq("user", "ann")).await),
        ["o1", "o3", "o4"],
        "query: equality"
    );
    assert_eq!(
        ids(&q(Query::new().eq("user", "ann").eq("status", "PENDING")).await),
        ["o1", "o4"],
        "query: two equalities"
    );
    assert_eq!(
        ids(&q(Query::new().eq("addr.city", "Oslo")).await),
        ["o5"],
        "query: dotted path"
    );
    assert_eq!(
        ids(&q(Query::new().gt("total", 10)).await),
        ["o1", "o2"],
        "query: numeric range skips strings and missing fields"
    );
    assert_eq!(
        ids(&q(Query::new().ge("total", 7).le("total", 12.5)).await),
        ["o2", "o3"],
        "query: closed range"
    );
    assert_eq!(
        ids(&q(Query::new().order_by("at", Direction::Desc)).await),
        ["o4", "o1", "o3", "o2"],
        "query: order desc leaves out documents without the field"
    );
    assert_eq!(
        ids(&q(Query::new()
            .eq("user", "ann")
            .order_by("at", Direction::Asc)
            .limit(2))
        .await),
        ["o3", "o1"],
        "query: equality + order + limit"
    );
    assert_eq!(
        ids(&q(Query::new()
            .eq("status", "PENDING")
            .lt("at", "2026-01-04")
            .order_by("at", Direction::Asc))
        .await),
        ["o1"],
        "query: equality + range on the order field"
    );
    assert!(
        q(Query::new().eq("user", "nobody"))
            .await
            .documents
            .is_empty(),
        "query: no match"
    );
    assert!(
        q(Query::new().eq("total", "30")).await.documents.is_empty(),
        "query: a string never equals a number"
    );
}

async fn pagination(s: &dyn DocumentStore, c: &str) {
    for i in 0..23 {
        s.put(c, &format!("d{i:02}"), json!({"rank": i % 4, "i": i}))
            .await
            .unwrap();
    }
    for (query, label) in [
        (Query::new().limit(5), "by id"),
        (
            Query::new().order_by("rank", Direction::Asc).limit(4),
            "ordered with ties",
        ),
        (
            Query::new().order_by("rank", Direction::Desc).limit(6),
            "descending",
        ),
        (
            Query::new()
                .gt("rank", 0)
                .order_by("rank", Direction::Asc)
                .limit(3),
            "ranged",
        ),
    ] {
        let expected: Vec<String> = {
            let all = s
                .query(
                    c,
                    &Query {
                        limit: Some(1000),
                        cursor: None,
                        ..query.clone()
                    },
                )
                .await
                .unwrap();
            all.documents.into_iter().map(|d| d.id).collect()
        };
        let mut seen = Vec::new();
        let mut q = query.clone();
        for _ in 0..100 {
            let page = s.query(c, &q).await.unwrap();
            assert!(
                page.documents.len() <= query.limit.unwrap(),
                "pages ({label}): never more than the limit"
            );
            seen.extend(page.documents.into_iter().map(|d| d.id));
            match page.next_cursor {
                Some(cur) => q = q.after(cur),
                None => break,
            }
        }
        assert_eq!(
            seen, expected,
            "pages ({label}): every document once, in order"
        );
    }
}

async fn concurrent_updates(s: Arc<dyn DocumentStore>, c: &str) {
    let v = s.create(c, "r", json!({"n": 0})).await.unwrap().version;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (s, c, v) = (s.clone(), c.to_owned(), v.clone());
            tokio::spawn(async move { s.update(&c, "r", json!({"n": i + 1}), &v).await })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(StoreError::PreconditionFailed { .. }) => {}
            Err(e) => panic!("race: unexpected error {e}"),
        }
    }
    assert_eq!(
        wins, 1,
        "race: exactly one of eight updates (each changing the document) at the same version wins"
    );
}

async fn collections_are_separate(s: &dyn DocumentStore, a: &str, b: &str) {
    s.put(a, "same", json!({"in": "a"})).await.unwrap();
    s.put(b, "same", json!({"in": "b"})).await.unwrap();
    assert_eq!(
        s.get(a, "same").await.unwrap().unwrap().value,
        json!({"in": "a"})
    );
    let page = s.query(b, &Query::new()).await.unwrap();
    assert_eq!(
        page.documents.len(),
        1,
        "collections: a query sees its own collection only"
    );
    let _: Value = page.documents[0].value.clone();
}
