//! The todo API through nube's test harness.

use nube::testing::TestApp;
use nube_todos::Todo;
use serde_json::{Value, json};

use nube::axum::body::Body;
use nube::axum::http::{Method, StatusCode};

fn harness() -> TestApp {
    TestApp::new(nube_todos::app())
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

async fn create(t: &TestApp, body: Value) -> Value {
    let resp = t.send_json(Method::POST, "/todos", &body).await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
    resp.json()
}

#[tokio::test]
async fn create_returns_the_new_todo() {
    let t = harness();
    let todo = create(
        &t,
        json!({"title": "  buy milk ", "description": "2 litres"}),
    )
    .await;
    assert_eq!(todo["title"], "buy milk");
    assert_eq!(todo["description"], "2 litres");
    assert_eq!(todo["completed"], false);
    let id = todo["id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    let created = todo["createdAt"].as_str().unwrap();
    assert!(created.ends_with('Z'), "{created}");
    chrono::DateTime::parse_from_rfc3339(created).unwrap();

    let stored = t
        .collection::<Todo>("todos")
        .get(id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(serde_json::to_value(&stored.value).unwrap(), todo);

    let resp = t.get(&format!("/todos/{id}")).await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.json::<Value>(), todo);
}

#[tokio::test]
async fn description_is_optional() {
    let t = harness();
    let todo = create(&t, json!({"title": "walk"})).await;
    assert_eq!(todo["description"], Value::Null);
}

#[tokio::test]
async fn create_rejects_missing_or_blank_titles() {
    let t = harness();
    for body in [
        json!({}),
        json!({"title": ""}),
        json!({"title": "   "}),
        json!({"description": "x"}),
    ] {
        let resp = t.send_json(Method::POST, "/todos", &body).await;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{body}");
        let err: Value = resp.json();
        assert_eq!(error_code(&err), "bad_request");
        assert!(
            err["error"]["message"].as_str().unwrap().contains("title"),
            "{err}"
        );
    }
    let resp = t
        .send_json(Method::POST, "/todos", &json!({"title": 42}))
        .await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    assert!(t.get("/todos").await.json::<Vec<Value>>().is_empty());
}

#[tokio::test]
async fn malformed_json_is_400_and_wrong_content_type_415() {
    let t = harness();
    let resp = t
        .send(
            Method::POST,
            "/todos",
            Some("application/json"),
            Body::from("{\"title\":"),
        )
        .await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&resp.json()), "bad_request");

    let resp = t
        .send(
            Method::POST,
            "/todos",
            Some("text/plain"),
            Body::from("{\"title\":\"x\"}"),
        )
        .await;
    assert_eq!(resp.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(error_code(&resp.json()), "unsupported_media_type");

    let resp = t
        .send(Method::PUT, "/todos/x", None, Body::from("{}"))
        .await;
    assert_eq!(resp.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn list_is_ordered_by_creation() {
    let t = harness();
    assert_eq!(
        t.get("/todos").await.json::<Vec<Value>>(),
        Vec::<Value>::new()
    );
    let mut ids = Vec::new();
    for i in 0..12 {
        let todo = create(&t, json!({"title": format!("todo {i}")})).await;
        ids.push(todo["id"].as_str().unwrap().to_owned());
    }
    let resp = t.get("/todos").await;
    assert_eq!(resp.status, StatusCode::OK);
    let listed: Vec<Todo> = resp.json();
    let listed_ids: Vec<_> = listed.iter().map(|t| t.id.clone()).collect();
    assert_eq!(listed_ids, ids);
    assert!(
        listed
            .windows(2)
            .all(|w| w[0].created_at <= w[1].created_at)
    );
}

#[tokio::test]
async fn list_orders_by_created_at_not_by_id() {
    let t = harness();
    let todos = t.collection::<Todo>("todos");
    let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
    // Ids in the opposite order of creation; one timestamp with a fraction, one without.
    for (id, created) in [
        ("a", "2024-01-01T00:00:01Z"),
        ("b", "2024-01-01T00:00:00.5Z"),
        ("c", "2024-01-01T00:00:00Z"),
    ] {
        let todo = Todo {
            id: id.into(),
            title: id.into(),
            description: None,
            completed: false,
            created_at: at(created),
        };
        todos.create(id, &todo).await.unwrap();
    }
    let listed: Vec<Todo> = t.get("/todos").await.json();
    let ids: Vec<_> = listed.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["c", "b", "a"]);
}

#[tokio::test]
async fn get_unknown_is_404() {
    let t = harness();
    let resp = t.get("/todos/does-not-exist").await;
    assert_eq!(resp.status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&resp.json()), "not_found");
}

#[tokio::test]
async fn update_changes_title_and_completion() {
    let t = harness();
    let todo = create(
        &t,
        json!({"title": "write tests", "description": "all of them"}),
    )
    .await;
    let path = format!("/todos/{}", todo["id"].as_str().unwrap());

    let resp = t
        .send_json(Method::PUT, &path, &json!({"completed": true}))
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    let updated: Value = resp.json();
    assert_eq!(updated["completed"], true);
    assert_eq!(updated["title"], "write tests");
    assert_eq!(updated["description"], "all of them");
    assert_eq!(updated["createdAt"], todo["createdAt"]);
    assert_eq!(updated["id"], todo["id"]);

    let resp = t
        .send_json(
            Method::PUT,
            &path,
            &json!({"title": "write more tests", "completed": false}),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK);
    let updated: Value = resp.json();
    assert_eq!(updated["title"], "write more tests");
    assert_eq!(updated["completed"], false);
    assert_eq!(t.get(&path).await.json::<Value>(), updated);
}

#[tokio::test]
async fn update_rejects_empty_changes_and_blank_titles() {
    let t = harness();
    let todo = create(&t, json!({"title": "x"})).await;
    let path = format!("/todos/{}", todo["id"].as_str().unwrap());
    for body in [
        json!({}),
        json!({"title": ""}),
        json!({"title": "  ", "completed": true}),
        json!({"description": "y"}),
    ] {
        let resp = t.send_json(Method::PUT, &path, &body).await;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error_code(&resp.json()), "bad_request");
    }
    // Nothing was changed by the rejected requests.
    assert_eq!(t.get(&path).await.json::<Value>(), todo);
}

#[tokio::test]
async fn update_unknown_is_404() {
    let t = harness();
    let resp = t
        .send_json(Method::PUT, "/todos/nope", &json!({"completed": true}))
        .await;
    assert_eq!(resp.status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&resp.json()), "not_found");
}

#[tokio::test]
async fn delete_then_404() {
    let t = harness();
    let todo = create(&t, json!({"title": "x"})).await;
    let path = format!("/todos/{}", todo["id"].as_str().unwrap());
    let resp = t.delete(&path).await;
    assert_eq!(resp.status, StatusCode::NO_CONTENT);
    assert!(resp.body.is_empty());
    assert_eq!(t.get(&path).await.status, StatusCode::NOT_FOUND);
    let resp = t.delete(&path).await;
    assert_eq!(resp.status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&resp.json()), "not_found");
}

#[test]
fn registers_into_another_app() {
    let app = nube_todos::register(nube::App::new("combined"));
    assert!(app.validate().is_ok());
    assert!(app.collections().any(|c| c == "todos"));
    assert_eq!(nube_todos::app().functions().len(), 1);
}
