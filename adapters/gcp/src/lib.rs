//! # nube-gcp
//!
//! Runs a [`nube::App`] on Google Cloud Run or Cloud Functions (gen2): one container
//! image, one HTTP server on `0.0.0.0:$PORT` following the Functions Framework
//! contract. `FUNCTION_TARGET` picks one function; without it every function of the
//! app is served (or those of one kind, with `NUBE_SERVE`), HTTP functions on their
//! routes and event functions on `POST /{function}` ([`server`] has the details).
//!
//! ```no_run
//! # fn app() -> nube::App { unimplemented!() }
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     nube_gcp::run(app()).await
//! }
//! ```
//!
//! | Google Cloud request | nube event | notes |
//! |---|---|---|
//! | any HTTP request to an HTTP function | HTTP request to the app's Router, unchanged | [`nube::App::http_service_for`]; [`Revision`] as an extractor (and `ctx.platform::<Revision>()` for every function) |
//! | `google.cloud.storage.object.v1.finalized` | [`nube::BlobCreated`] | object name raw; int64 as string or number; logical bucket from `NUBE_BUCKET_*` |
//! | `google.cloud.firestore.document.v1.created` (protobuf or JSON `DocumentEventData`) | [`nube::DocumentCreated`] | Firestore values to plain JSON ([`firestore`]); logical collection from `NUBE_COLLECTION_*` |
//! | `google.cloud.scheduler.job.v1.executed`, `google.cloud.pubsub.topic.v1.messagePublished`, Pub/Sub's push envelope, a plain `POST` from Cloud Scheduler's HTTP target | [`nube::TimerTick`] | [`scheduler`] |
//! | legacy background events (nested or flat envelopes) | converted to CloudEvents first | [`legacy`] |
//! | anything else, or a CloudEvent of a type the function does not take | none | `400` with the reason |
//!
//! Modules, one concern each:
//!
//! - [`server`]: [`run`], [`Server`] (the axum service), [`Config`], graceful shutdown;
//! - [`cloudevent`]: the CloudEvent of a request (binary, structured, legacy), with
//!   `cloudevents-sdk`; [`legacy`]: background events to CloudEvents;
//! - [`storage`], [`firestore`], [`scheduler`]: CloudEvents to nube's events;
//! - [`names`]: logical and physical resource names; [`resources`]: the stores
//!   ([`firestore_store`] with the feature `firestore`, [`gcs`] with the feature `gcs`);
//!   [`error`]: decode errors; [`logging`]: Cloud Logging JSON lines with traces;
//! - [`descriptors`]: Cloud Run `service.yaml`, Eventarc triggers, Cloud Scheduler
//!   jobs (`deploy.sh` and YAML) and the `Dockerfile`, rendered from the manifest.

pub mod cloudevent;
pub mod descriptors;
pub mod error;
pub mod firestore;
#[cfg(feature = "firestore")]
pub mod firestore_store;
#[cfg(feature = "gcs")]
pub mod gcs;
pub mod legacy;
pub mod logging;
pub mod names;
pub mod resources;
pub mod scheduler;
pub mod server;
pub mod storage;

pub use error::DecodeError;
pub use resources::resources_from_env;
pub use server::{Config, InitError, Revision, Serve, Server, run, serve};
