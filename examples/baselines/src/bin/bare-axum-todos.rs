//! The baseline for `GET /todos` on the local runtime: plain axum and rusqlite doing
//! the same work as nube's todos function on the embedded store (JSON documents in
//! one SQLite table, read on the blocking pool, ordered by `createdAt`), without
//! nube. `PORT` and `NUBE_DATA_DIR` as for a nube app.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use rusqlite::Connection;
use serde_json::{Value, json};

type Db = Arc<Mutex<Connection>>;

async fn list(State(db): State<Db>) -> Result<Json<Vec<Value>>, StatusCode> {
    tokio::task::spawn_blocking(move || {
        let conn = db.lock().map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        let mut stmt = conn
            .prepare_cached("SELECT value FROM documents WHERE collection = 'todos'")
            .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        let mut todos: Vec<Value> = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?
            .filter_map(|t| t.ok().and_then(|t| serde_json::from_str(&t).ok()))
            .collect();
        todos.sort_by(|a, b| a["createdAt"].as_str().cmp(&b["createdAt"].as_str()));
        Ok(Json(todos))
    })
    .await
    .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?
}

async fn create(
    State(db): State<Db>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Value>), StatusCode> {
    let title = body["title"]
        .as_str()
        .filter(|t| !t.trim().is_empty())
        .ok_or(StatusCode::BAD_REQUEST)?;
    let id = uuid::Uuid::new_v4().to_string();
    let todo = json!({
        "id": id, "title": title, "description": body.get("description"),
        "completed": false, "createdAt": chrono::Utc::now().to_rfc3339(),
    });
    let text = todo.to_string();
    tokio::task::spawn_blocking(move || {
        let conn = db.lock().map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        conn.execute(
            "INSERT INTO documents (collection, id, version, value) VALUES ('todos', ?1, '1', ?2)",
            [&id, &text],
        )
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)
    })
    .await
    .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)??;
    Ok((StatusCode::CREATED, Json(todo)))
}

#[tokio::main]
async fn main() {
    let dir = std::env::var("NUBE_DATA_DIR").unwrap_or_else(|_| ".nube-bare".into());
    std::fs::create_dir_all(&dir).expect("data dir");
    let conn = Connection::open(std::path::Path::new(&dir).join("bare.db")).expect("open db");
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE IF NOT EXISTS documents (collection TEXT, id TEXT, version TEXT, value TEXT, PRIMARY KEY (collection, id)) WITHOUT ROWID;",
    )
    .expect("schema");
    let db: Db = Arc::new(Mutex::new(conn));
    let app = Router::new()
        .route("/todos", get(list).post(create))
        .with_state(db);
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3001);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
