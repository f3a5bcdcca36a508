//! Orders end to end through nube's test harness: the API, the read model, the
//! confirmation, notifications, redelivery and the cleanup timer.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use nube::axum::http::{Method, StatusCode};
use nube::testing::TestApp;
use nube_orders::{
    Notification, Order, OrderEvent, OrderEventData, OrderItem, OrderStatus, OrdersConfig,
    event_id, fold,
};
use serde_json::{Value, json};

fn harness() -> TestApp {
    TestApp::new(nube_orders::register_with(
        nube::App::new("orders"),
        OrdersConfig::default(),
    ))
}

fn order_body(user: &str) -> Value {
    json!({
        "userId": user,
        "restaurantId": "pizza-palace",
        "items": [
            {"sku": "margherita", "qty": 2, "price": 8.5},
            {"sku": "cola", "qty": 1, "price": 2.25},
        ],
    })
}

async fn place(t: &TestApp, body: &Value) -> String {
    let resp = t.send_json(Method::POST, "/orders", body).await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
    let created: Value = resp.json();
    assert_eq!(created["status"], "PENDING");
    created["orderId"].as_str().unwrap().to_owned()
}

/// Every document of the collections the functions write, by id, values only.
async fn snapshot(t: &TestApp) -> Vec<(String, String, Value)> {
    let mut all = Vec::new();
    for name in ["order-events", "orders", "notifications"] {
        for doc in t
            .collection::<Value>(name)
            .query_all(&nube::Query::new())
            .await
            .unwrap()
        {
            all.push((name.to_owned(), doc.id, doc.value));
        }
    }
    all
}

#[tokio::test]
async fn an_order_is_confirmed_and_the_user_notified() {
    let t = harness();
    let id = place(&t, &order_body("u1")).await;

    // Before the read model has run, the stream answers.
    let resp = t.get(&format!("/orders/{id}")).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    let pending: Order = resp.json();
    assert_eq!(pending.status, OrderStatus::Pending);
    assert_eq!(pending.version, 1);
    assert_eq!(pending.total, 19.25);

    let first = t.settle().await;
    for run in &first {
        assert!(run.outcome.is_ok(), "{}: {:?}", run.function, run.outcome);
    }
    assert!(
        first.len() >= 2,
        "OrderCreated and OrderConfirmed were delivered"
    );

    let resp = t.get(&format!("/orders/{id}")).await;
    assert_eq!(resp.status, StatusCode::OK);
    let body: Value = resp.json();
    assert_eq!(body["status"], "CONFIRMED");
    assert_eq!(body["version"], 2);
    assert_eq!(body["orderId"], id.as_str());
    assert_eq!(body["userId"], "u1");
    assert_eq!(body["restaurantId"], "pizza-palace");
    assert_eq!(
        body["items"][0],
        json!({"sku": "margherita", "qty": 2, "price": 8.5})
    );
    let order: Order = serde_json::from_value(body).unwrap();
    // 20 minutes + 2 per unit (3 units).
    assert_eq!(
        order.estimated_delivery_at,
        Some(order.created_at + TimeDelta::minutes(26))
    );
    assert_eq!(order.created_at, pending.created_at);

    let events: Vec<OrderEvent> = t
        .collection::<OrderEvent>("order-events")
        .query_all(&nube::Query::new())
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.value)
        .collect();
    assert_eq!(events.len(), 2);
    let stored = t
        .collection::<Value>("order-events")
        .get(&event_id(&id, 2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.id, format!("{id}-000002"));
    assert_eq!(stored.value["type"], "OrderConfirmed");
    assert_eq!(stored.value["orderId"], id.as_str());
    assert!(stored.value["data"]["estimatedDeliveryAt"].is_string());
    assert_eq!(fold(&events).unwrap(), order);

    let note = t
        .collection::<Notification>("notifications")
        .get(&format!("{id}-confirmed"))
        .await
        .unwrap()
        .expect("a notification");
    assert_eq!(note.value.user_id, "u1");
    assert_eq!(note.value.order_id, id);
    assert!(note.value.message.contains(&id), "{}", note.value.message);

    // Delivering every event again changes nothing.
    let before = snapshot(&t).await;
    for run in &first {
        t.invoke(&run.function, run.event.clone()).await.unwrap();
    }
    // And in the opposite order, as a redelivery might.
    for run in first.iter().rev() {
        t.invoke(&run.function, run.event.clone()).await.unwrap();
    }
    assert!(t.settle().await.is_empty(), "replays created nothing new");
    assert_eq!(snapshot(&t).await, before);
}

#[tokio::test]
async fn invalid_orders_are_400() {
    let t = harness();
    let item = json!({"sku": "a", "qty": 1, "price": 1});
    let cases = [
        (json!({"restaurantId": "r", "items": [item]}), "userId"),
        (
            json!({"userId": "", "restaurantId": "r", "items": [item]}),
            "userId",
        ),
        (
            json!({"userId": "u", "restaurantId": "  ", "items": [item]}),
            "restaurantId",
        ),
        (
            json!({"userId": "u", "restaurantId": "r", "items": []}),
            "item",
        ),
        (json!({"userId": "u", "restaurantId": "r"}), "item"),
        (
            json!({"userId": "u", "restaurantId": "r", "items": [{"sku": "a", "qty": 0, "price": 1}]}),
            "qty",
        ),
        (
            json!({"userId": "u", "restaurantId": "r", "items": [{"sku": "a", "qty": 2.5, "price": 1}]}),
            "qty",
        ),
        (
            json!({"userId": "u", "restaurantId": "r", "items": [{"sku": "a", "qty": 1, "price": -1}]}),
            "price",
        ),
        (
            json!({"userId": "u", "restaurantId": "r", "items": [{"qty": 1, "price": 1}]}),
            "sku",
        ),
    ];
    for (body, mentions) in cases {
        let resp = t.send_json(Method::POST, "/orders", &body).await;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{body}");
        let err: Value = resp.json();
        assert_eq!(err["error"]["code"], "bad_request");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.contains(mentions), "{body}: {message}");
    }
    let resp = t
        .send_json(Method::POST, "/orders", &json!({"items": "lots"}))
        .await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    let resp = t
        .send(
            Method::POST,
            "/orders",
            Some("text/plain"),
            nube::axum::body::Body::from("{}"),
        )
        .await;
    assert_eq!(resp.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(snapshot(&t).await.is_empty(), "nothing was appended");
}

#[tokio::test]
async fn unknown_orders_are_404() {
    let t = harness();
    let resp = t.get("/orders/no-such-order").await;
    assert_eq!(resp.status, StatusCode::NOT_FOUND);
    assert_eq!(resp.json::<Value>()["error"]["code"], "not_found");
}

#[tokio::test]
async fn a_users_orders_are_listed_newest_first() {
    let t = harness();
    let mut mine = Vec::new();
    for _ in 0..3 {
        mine.push(place(&t, &order_body("alice")).await);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    place(&t, &order_body("bob")).await;
    assert!(
        t.get("/users/alice/orders")
            .await
            .json::<Vec<Value>>()
            .is_empty()
    );
    t.settle().await;

    let resp = t.get("/users/alice/orders").await;
    assert_eq!(resp.status, StatusCode::OK);
    let listed: Vec<Order> = resp.json();
    let ids: Vec<String> = listed.iter().map(|o| o.order_id.clone()).collect();
    mine.reverse();
    assert_eq!(ids, mine);
    assert!(
        listed
            .iter()
            .all(|o| o.user_id == "alice" && o.status == OrderStatus::Confirmed)
    );
    assert!(
        listed
            .windows(2)
            .all(|w| w[0].created_at >= w[1].created_at)
    );
    assert_eq!(
        t.get("/users/bob/orders").await.json::<Vec<Value>>().len(),
        1
    );
    assert!(
        t.get("/users/carol/orders")
            .await
            .json::<Vec<Value>>()
            .is_empty()
    );
}

fn created(order_id: &str, at: DateTime<Utc>) -> OrderEvent {
    OrderEvent {
        order_id: order_id.to_owned(),
        version: 1,
        data: OrderEventData::OrderCreated {
            user_id: "u1".into(),
            restaurant_id: "r1".into(),
            items: vec![OrderItem {
                sku: "soup".into(),
                qty: 1,
                price: 4.0,
            }],
        },
        at,
    }
}

fn confirmed(order_id: &str, at: DateTime<Utc>) -> OrderEvent {
    OrderEvent {
        order_id: order_id.to_owned(),
        version: 2,
        data: OrderEventData::OrderConfirmed {
            estimated_delivery_at: at + TimeDelta::minutes(22),
        },
        at,
    }
}

/// Writes `events` into the stream and their fold into the read model as
/// `read_model` says, without running any function.
async fn seed(t: &TestApp, events: &[OrderEvent], read_model: &[OrderEvent]) {
    let stream = t.collection::<OrderEvent>("order-events");
    for e in events {
        stream
            .create(&event_id(&e.order_id, e.version), e)
            .await
            .unwrap();
    }
    let order = fold(read_model).unwrap();
    t.collection::<Order>("orders")
        .put(&order.order_id.clone(), &order)
        .await
        .unwrap();
}

async fn stream_of(t: &TestApp, order_id: &str) -> Vec<OrderEvent> {
    let q = nube::Query::new()
        .eq("orderId", order_id)
        .order_by("version", nube::store::Direction::Asc);
    t.collection::<OrderEvent>("order-events")
        .query_all(&q)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.value)
        .collect()
}

#[tokio::test]
async fn cleanup_cancels_only_old_pending_orders() {
    let t = harness();
    let now = nube_orders::now();
    let old = now - TimeDelta::hours(3);
    let recent = now - TimeDelta::minutes(10);

    // Old and pending: cancelled.
    seed(
        &t,
        &[created("old-pending", old)],
        &[created("old-pending", old)],
    )
    .await;
    // Recent and pending: kept.
    seed(
        &t,
        &[created("new-pending", recent)],
        &[created("new-pending", recent)],
    )
    .await;
    // Old and confirmed: kept.
    let both = [
        created("old-confirmed", old),
        confirmed("old-confirmed", old),
    ];
    seed(&t, &both, &both).await;
    // The read model says pending, but the stream moved on: kept.
    let stale = [created("stale", old), confirmed("stale", old)];
    seed(&t, &stale, &stale[..1]).await;

    t.fire_timer("cleanup-expired-orders").await.unwrap();

    let cancelled = stream_of(&t, "old-pending").await;
    assert_eq!(cancelled.len(), 2);
    assert_eq!(cancelled[1].version, 2);
    assert!(matches!(
        cancelled[1].data,
        OrderEventData::OrderCancelled { .. }
    ));
    assert_eq!(stream_of(&t, "new-pending").await.len(), 1);
    assert_eq!(stream_of(&t, "old-confirmed").await.len(), 2);
    assert_eq!(stream_of(&t, "stale").await.len(), 2);

    // A second run finds nothing more to do.
    t.fire_timer("cleanup-expired-orders").await.unwrap();
    assert_eq!(stream_of(&t, "old-pending").await.len(), 2);

    // The read model catches up; the late OrderCreated delivery of the cancelled
    // order does not confirm it or notify anyone.
    for run in t.settle().await {
        assert!(run.outcome.is_ok(), "{}: {:?}", run.function, run.outcome);
    }
    let get = |id: &'static str| {
        let t = &t;
        async move { t.get(&format!("/orders/{id}")).await.json::<Order>() }
    };
    let old_pending = get("old-pending").await;
    assert_eq!(old_pending.status, OrderStatus::Cancelled);
    assert_eq!(old_pending.version, 2);
    assert!(old_pending.cancellation_reason.unwrap().contains("3600"));
    assert!(
        t.collection::<Value>("notifications")
            .get("old-pending-confirmed")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(get("stale").await.status, OrderStatus::Confirmed);
    assert_eq!(get("old-confirmed").await.status, OrderStatus::Confirmed);
    // The recent one was still pending, so its delivery confirmed it.
    assert_eq!(get("new-pending").await.status, OrderStatus::Confirmed);
}

#[tokio::test]
async fn cleanup_age_is_configurable() {
    let t = TestApp::new(nube_orders::register_with(
        nube::App::new("orders"),
        OrdersConfig {
            pending_max_age: Duration::from_secs(60),
        },
    ));
    let recent = nube_orders::now() - TimeDelta::minutes(10);
    seed(
        &t,
        &[created("ten-minutes", recent)],
        &[created("ten-minutes", recent)],
    )
    .await;
    t.fire_timer("cleanup-expired-orders").await.unwrap();
    assert_eq!(stream_of(&t, "ten-minutes").await.len(), 2);
}

#[test]
fn config_comes_from_the_environment() {
    assert_eq!(
        OrdersConfig::default().pending_max_age,
        Duration::from_secs(3600)
    );
    let from = |value: Option<&str>| {
        OrdersConfig::from_lookup(|name| {
            assert_eq!(name, "ORDERS_PENDING_MAX_AGE_SECS");
            value.map(str::to_owned)
        })
    };
    assert_eq!(from(None), OrdersConfig::default());
    assert_eq!(from(Some("120")).pending_max_age, Duration::from_secs(120));
    assert_eq!(
        from(Some(" 7200 ")).pending_max_age,
        Duration::from_secs(7200)
    );
    assert_eq!(from(Some("soon")), OrdersConfig::default());
    assert_eq!(from(Some("-5")), OrdersConfig::default());
}

#[test]
fn declares_its_functions_and_collections() {
    let app = nube_orders::app();
    assert!(app.validate().is_ok());
    for f in ["orders-api", "orders-read-model", "cleanup-expired-orders"] {
        assert!(app.function(f).is_some(), "{f}");
    }
    let collections: Vec<&str> = app.collections().collect();
    assert_eq!(collections, ["notifications", "order-events", "orders"]);
}

#[tokio::test]
async fn two_writers_of_the_same_version_conflict() {
    let t = harness();
    let stream = t.collection::<OrderEvent>("order-events");
    let at = nube_orders::now();
    stream
        .create(&event_id("o", 1), &created("o", at))
        .await
        .unwrap();
    let again = stream.create(&event_id("o", 1), &created("o", at)).await;
    assert!(matches!(
        again,
        Err(nube::store::StoreError::Conflict { .. })
    ));
}
