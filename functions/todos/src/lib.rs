//! # nube-todos
//!
//! A todo-list HTTP API written once with nube: one HTTP function, [`FUNCTION`]
//! (`todos`), over one document collection, [`COLLECTION`] (`todos`).
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /todos` | 200, every todo, oldest first |
//! | `POST /todos` `{title, description?}` | 201, the new [`Todo`]; 400 without a title |
//! | `GET /todos/{id}` | 200 or 404 |
//! | `PUT /todos/{id}` `{title?, completed?}` | 200, the updated todo; 400 when neither is set or the title is empty; 404 |
//! | `DELETE /todos/{id}` | 204 or 404 |
//!
//! Errors carry nube's JSON body `{"error":{"code","message"}}`; bodies that are not
//! JSON get 415, malformed JSON 400.
//!
//! ```
//! let app = nube_todos::register(nube::App::new("my-app"));
//! assert!(app.validate().is_ok());
//! assert!(app.function("todos").is_some());
//! ```

use chrono::{DateTime, Utc};
use nube::axum::http::StatusCode;
use nube::http::Path;
use nube::http::{Json, Routes};
use nube::store::{Direction, Query, StoreError};
use nube::{App, Context, Error};
use serde::{Deserialize, Serialize};

/// The name of the HTTP function.
pub const FUNCTION: &str = "todos";
/// The collection the todos live in.
pub const COLLECTION: &str = "todos";

/// The longest title accepted, in characters.
pub const MAX_TITLE_CHARS: usize = 500;

/// A todo, as stored and as returned (camelCase JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Todo {
    /// A UUID.
    pub id: String,
    /// What to do; never empty.
    pub title: String,
    /// Optional detail (`null` when not given).
    pub description: Option<String>,
    /// Whether it is done.
    pub completed: bool,
    /// When it was created (RFC 3339, UTC, fixed width so it sorts as text).
    #[serde(with = "nube::store::timestamp")]
    pub created_at: DateTime<Utc>,
}

/// The body of `POST /todos`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewTodo {
    /// Required, not blank.
    pub title: Option<String>,
    /// Optional.
    pub description: Option<String>,
}

/// The body of `PUT /todos/{id}`: at least one field must be set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TodoChange {
    /// A new title (not blank).
    pub title: Option<String>,
    /// The new completion state.
    pub completed: Option<bool>,
}

/// Adds the `todos` HTTP function and the `todos` collection to `app`.
pub fn register(app: App) -> App {
    app.collection(COLLECTION)
        .http(
            FUNCTION,
            Routes::new()
                .get("/todos", list)
                .post("/todos", create)
                .get("/todos/{id}", get)
                .put("/todos/{id}", update)
                .delete("/todos/{id}", delete),
        )
        .function_collections(FUNCTION, [COLLECTION])
}

/// The todo API as an app of its own, called `todos`.
pub fn app() -> App {
    register(App::new("todos"))
}

fn valid_title(title: &str) -> nube::Result<String> {
    let title = title.trim();
    if title.is_empty() {
        return Err(Error::bad_request("title must not be empty"));
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(Error::bad_request(format!(
            "title must be at most {MAX_TITLE_CHARS} characters"
        )));
    }
    Ok(title.to_owned())
}

fn not_found(id: &str) -> Error {
    Error::not_found(format!("todo {id:?} not found"))
}

async fn list(ctx: Context) -> nube::Result<Json<Vec<Todo>>> {
    let docs = ctx
        .collection::<Todo>(COLLECTION)
        .query_all(&Query::new().order_by("createdAt", Direction::Asc))
        .await?;
    Ok(Json(docs.into_iter().map(|d| d.value).collect()))
}

async fn create(ctx: Context, Json(body): Json<NewTodo>) -> nube::Result<(StatusCode, Json<Todo>)> {
    let title = valid_title(
        body.title
            .as_deref()
            .ok_or_else(|| Error::bad_request("title is required"))?,
    )?;
    let todo = Todo {
        id: uuid::Uuid::now_v7().to_string(),
        title,
        description: body.description,
        completed: false,
        created_at: Utc::now(),
    };
    ctx.collection::<Todo>(COLLECTION)
        .create(&todo.id, &todo)
        .await?;
    tracing::info!(id = todo.id, "todo created");
    Ok((StatusCode::CREATED, Json(todo)))
}

async fn get(ctx: Context, Path(id): Path<String>) -> nube::Result<Json<Todo>> {
    match ctx.collection::<Todo>(COLLECTION).get(&id).await? {
        Some(doc) => Ok(Json(doc.value)),
        None => Err(not_found(&id)),
    }
}

async fn update(
    ctx: Context,
    Path(id): Path<String>,
    Json(change): Json<TodoChange>,
) -> nube::Result<Json<Todo>> {
    if change.title.is_none() && change.completed.is_none() {
        return Err(Error::bad_request(
            "nothing to change: set title, completed or both",
        ));
    }
    let title = change.title.as_deref().map(valid_title).transpose()?;
    let result = ctx
        .collection::<Todo>(COLLECTION)
        .modify(&id, |todo| {
            if let Some(title) = &title {
                todo.title.clone_from(title);
            }
            if let Some(completed) = change.completed {
                todo.completed = completed;
            }
            Ok(())
        })
        .await;
    match result {
        Ok(doc) => Ok(Json(doc.value)),
        Err(StoreError::NotFound { .. }) => Err(not_found(&id)),
        Err(e) => Err(e.into()),
    }
}

async fn delete(ctx: Context, Path(id): Path<String>) -> nube::Result<StatusCode> {
    if ctx.collection::<Todo>(COLLECTION).delete(&id).await? {
        tracing::info!(id, "todo deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&id))
    }
}
