//! # nube
//!
//! Write serverless functions once against four triggers (HTTP, timer, blob created,
//! document created) and run them on AWS Lambda, Azure Functions, Google Cloud, or
//! locally. This crate is the provider-neutral core: the [`App`] declaration, the
//! events, [`Context`], [`Schedule`], the [`store`] and [`blob`] APIs and the
//! manifest. It depends on no cloud SDK; adapters (`nube-local`, and the cloud
//! adapters) turn an [`App`] into something that runs.
//!
//! ```
//! use nube::{App, Context, DocumentCreated, http::{Json, Routes}};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Todo { title: String }
//!
//! async fn create(ctx: Context, Json(todo): Json<Todo>) -> nube::Result<Json<Todo>> {
//!     let id = uuid::Uuid::new_v4().to_string();
//!     ctx.collection::<Todo>("todos").create(&id, &todo).await?;
//!     Ok(Json(todo))
//! }
//!
//! async fn created(event: DocumentCreated<Todo>, ctx: Context) -> nube::Result<()> {
//!     tracing::info!(id = event.id, title = event.document.title, "new todo");
//!     Ok(())
//! }
//!
//! pub fn app() -> App {
//!     App::new("todo-api")
//!         .http("api", Routes::new().post("/todos", create))
//!         .on_document_created("announce", "todos", created)
//! }
//! # assert!(app().validate().is_ok());
//! ```

pub mod app;
pub mod blob;
mod blocking;
pub mod context;
pub mod deadline;
pub mod error;
pub mod event;
pub mod http;
mod invoke;
pub mod logging;
pub mod manifest;
pub mod schedule;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use app::{App, AppError, Function, Trigger, TriggerKind, Uses};
pub use blob::Bucket;
pub use blocking::run_blocking;
pub use context::{Context, FunctionScope, Resources, TraceContext};
pub use error::{Error, ErrorKind, Result};
pub use event::{BlobCreated, DocumentCreated, Event, Provider, RawEvent, TimerTick};
pub use invoke::panic_message;
pub use schedule::{Schedule, ScheduleError};
pub use store::{Collection, Document, DocumentStore, Query, Version};

/// axum, re-exported: HTTP functions are axum handlers, and function crates can use
/// its extractors (`nube::axum::extract::Path`) without a dependency of their own.
pub use axum;
