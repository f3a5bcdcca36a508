//! # nube-azure
//!
//! Runs a [`nube::App`] on Azure Functions as a custom handler: one executable serves
//! every function of the app, over HTTP on `127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT`.
//!
//! ```no_run
//! # fn app() -> nube::App { unimplemented!() }
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     nube_azure::run(app()).await
//! }
//! ```
//!
//! | Azure binding | nube event | notes |
//! |---|---|---|
//! | `httpTrigger`, forwarded (`enableForwardingHttpRequest` / `enableProxyingHttpRequest`) | HTTP request to the app's Router | route prefix (`api`) stripped; response as it is |
//! | `httpTrigger`, `Data.req` | HTTP request to the function's Router | response in `Outputs.res` |
//! | `timerTrigger` | [`nube::TimerTick`] | `IsPastDue`, `ScheduleStatus.Next` |
//! | `blobTrigger` | [`nube::BlobCreated`] | key from `Metadata.Uri`, size/type/etag from `Properties` |
//! | `cosmosDBTrigger` | [`nube::DocumentCreated`], one per created document | created = `_nube_version` equals `_nube_created` (or either is missing) |
//! | anything else (queues...) | none | refused with `400` and the reason |
//!
//! Modules, one concern each:
//!
//! - [`dispatch`]: [`run`], [`Runtime`] (the axum service), [`resources_from_env`];
//! - [`payload`]: the `{Data, Metadata}` / `{Outputs, Logs, ReturnValue}` protocol;
//! - [`http`]: both HTTP modes; [`timer`], [`blob`], [`document`]: the triggers' values
//!   to nube's events;
//! - [`names`]: function names and resource settings; [`logging`]: stdout lines and
//!   the per-invocation `Logs`; [`error`]: decode errors;
//! - [`descriptors`]: host.json, function.json and local.settings.json from the
//!   app's manifest, for the packager;
//! - `cosmos` (feature `cosmos`): the Cosmos DB document store; `blob_store` (feature
//!   `blob`): blob containers as buckets.

pub mod blob;
#[cfg(feature = "blob")]
pub mod blob_store;
#[cfg(feature = "cosmos")]
pub mod cosmos;
pub mod descriptors;
pub mod dispatch;
pub mod document;
pub mod error;
pub mod http;
pub mod logging;
pub mod names;
pub mod payload;
pub mod timer;

pub use dispatch::{InitError, Runtime, resources_from_env, run, serve};
pub use error::DecodeError;
