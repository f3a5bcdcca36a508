//! `/_nube/...`: the local runtime's own endpoints (never served on a cloud).
//!
//! - `POST /_nube/functions/{name}`: run an event function now and answer with the
//!   outcome. A timer gets a tick; a blob function takes `{"key": "..."}` (the object
//!   must exist) and a document function `{"id": "..."}` (the document must exist);
//!   any function also takes a whole nube event (`{"trigger": "blobCreated", ...}`),
//!   as shown in dead letters.
//! - `GET /_nube/status`: functions, pending events, dead letters.
//! - `GET /_nube/dead-letters`, `POST /_nube/dead-letters/{seq}/retry`.

use std::sync::Arc;

use axum::body::Bytes as Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde_json::{Value, json};

use nube::{
    App, BlobCreated, Context, DocumentCreated, Error, Event, Provider, RawEvent, Resources,
    Trigger,
};

use crate::outbox::Outbox;
use crate::timers::tick;

#[derive(Clone)]
struct Admin {
    app: Arc<App>,
    resources: Resources,
    outbox: Outbox,
}

/// The admin routes.
pub(crate) fn router(app: Arc<App>, resources: Resources, outbox: Outbox) -> Router {
    Router::new()
        .route("/_nube/functions/{name}", post(fire))
        .route("/_nube/status", get(status))
        .route("/_nube/dead-letters", get(dead_letters))
        .route("/_nube/dead-letters/{seq}/retry", post(retry))
        .layer(axum::middleware::from_fn(same_machine_only))
        .with_state(Admin {
            app,
            resources,
            outbox,
        })
}

/// Web pages from other origins could otherwise reach these endpoints through a
/// browser on this machine: requests whose `Origin` is not local are refused (a
/// cross-site POST), and so are requests whose `Host` is not (a page on a DNS name
/// rebound to 127.0.0.1 reading events and errors).
async fn same_machine_only(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let local = |authority: &str| {
        let host = match authority.rsplit_once(':') {
            Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
            _ => authority,
        };
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        // `*.localhost` never resolves through DNS (RFC 6761), so it cannot be rebound.
        matches!(
            host.as_str(),
            "localhost" | "127.0.0.1" | "[::1]" | "0.0.0.0"
        ) || host.ends_with(".localhost")
    };
    let allowed = {
        let header = |name| req.headers().get(name).map(|v| v.to_str().unwrap_or(""));
        header(axum::http::header::ORIGIN)
            .is_none_or(|origin| local(origin.split("://").nth(1).unwrap_or("")))
            && header(axum::http::header::HOST).is_none_or(local)
    };
    if allowed {
        next.run(req).await
    } else {
        Error::new(
            nube::ErrorKind::Forbidden,
            "the /_nube endpoints only answer requests from this machine",
        )
        .into_response()
    }
}

fn field<'a>(body: &'a Value, name: &str) -> Result<&'a str, Error> {
    body.get(name).and_then(Value::as_str).ok_or_else(|| {
        Error::bad_request(format!(
            "send a JSON body with a {name:?} string, or a whole nube event"
        ))
    })
}

async fn event_for(admin: &Admin, name: &str, body: &[u8]) -> Result<Event, Error> {
    let function = admin.app.require_function(name)?;
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| Error::bad_request(format!("the body is not JSON: {e}")))?
    };
    if body.get("trigger").is_some() {
        return serde_json::from_value(body)
            .map_err(|e| Error::bad_request(format!("not a nube event: {e}")));
    }
    let raw = RawEvent::new(Provider::Local, json!({"source": "admin", "request": body}));
    match function.trigger() {
        Trigger::Http(_) => Err(Error::bad_request(format!(
            "{name:?} is an HTTP function; call it on its routes"
        ))),
        Trigger::Timer(schedule) => Ok(tick(name, schedule, Utc::now(), false)),
        Trigger::BlobCreated { bucket, .. } => {
            let key = field(&body, "key")?;
            let info = admin.resources.bucket(bucket)?.head(key).await?;
            Ok(Event::BlobCreated(BlobCreated {
                event_id: uuid::Uuid::now_v7().to_string(),
                bucket: bucket.clone(),
                key: info.key,
                size: info.size,
                content_type: None,
                etag: info.etag,
                time: info.last_modified,
                content: None,
                raw,
            }))
        }
        Trigger::DocumentCreated { collection } => {
            let id = field(&body, "id")?;
            let doc = admin
                .resources
                .documents()
                .get(collection, id)
                .await?
                .ok_or_else(|| Error::not_found(format!("no document {collection}/{id}")))?;
            Ok(Event::DocumentCreated(DocumentCreated {
                event_id: uuid::Uuid::now_v7().to_string(),
                collection: collection.clone(),
                id: doc.id,
                document: doc.value,
                raw,
            }))
        }
    }
}

async fn fire(
    State(admin): State<Admin>,
    Path(name): Path<String>,
    body: Body,
) -> Result<impl IntoResponse, Error> {
    let event = event_for(&admin, &name, &body).await?;
    let ctx = Context::builder(name.clone(), Provider::Local, admin.resources.clone()).build();
    let invocation_id = ctx.invocation_id().to_owned();
    let event_id = event.event_id().to_owned();
    match admin.app.invoke(event, ctx).await {
        Ok(()) => Ok((
            StatusCode::OK,
            Json(
                json!({"function": name, "invocationId": invocation_id, "eventId": event_id, "outcome": "succeeded"}),
            ),
        )),
        Err(e) => Ok((
            e.kind().status(),
            Json(json!({
                "function": name, "invocationId": invocation_id, "eventId": event_id, "outcome": "failed",
                "error": {"code": e.kind().code(), "message": e.client_message()},
            })),
        )),
    }
}

async fn status(State(admin): State<Admin>) -> Result<impl IntoResponse, Error> {
    let stats = admin.outbox.stats().await?;
    let functions: Vec<Value> = admin
        .app
        .functions()
        .iter()
        .map(|f| json!({"name": f.name(), "trigger": f.trigger().kind()}))
        .collect();
    Ok(Json(json!({
        "app": admin.app.name(),
        "functions": functions,
        "pending": stats.pending,
        "deadLetters": stats.dead_letters,
    })))
}

async fn dead_letters(State(admin): State<Admin>) -> Result<impl IntoResponse, Error> {
    Ok(Json(admin.outbox.dead_letters().await?))
}

async fn retry(
    State(admin): State<Admin>,
    Path(seq): Path<i64>,
) -> Result<impl IntoResponse, Error> {
    if admin.outbox.requeue(seq).await? {
        Ok((StatusCode::ACCEPTED, Json(json!({"requeued": seq}))))
    } else {
        Err(Error::not_found(format!("no dead letter {seq}")))
    }
}
