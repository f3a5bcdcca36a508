//! # nube-aws
//!
//! Runs a [`nube::App`] on AWS Lambda. One `bootstrap` binary serves every function of
//! the app; the Lambda function's handler setting (`_HANDLER`) names the nube function
//! (the bare name: `api`, `nightly`).
//!
//! ```no_run
//! # fn app() -> nube::App { unimplemented!() }
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     nube_aws::run(app()).await
//! }
//! ```
//!
//! | AWS event | nube event | notes |
//! |---|---|---|
//! | API Gateway REST API proxy request (payload 1.0) | HTTP request to the function's Router | response in `multiValueHeaders` only |
//! | API Gateway HTTP API request (payload 2.0) | HTTP request | `Set-Cookie` in `cookies` |
//! | Lambda Function URL request | HTTP request | as HTTP API |
//! | ALB target group request | HTTP request | `statusDescription`, both header maps |
//! | EventBridge scheduled event (`detail-type: Scheduled Event`) | [`nube::TimerTick`] | `event_id` = EventBridge `id`, `scheduled_time` = `time` |
//! | S3 notification, `ObjectCreated:*` records | [`nube::BlobCreated`], one per record | other records skipped; keys decoded; logical bucket from `NUBE_BUCKET_*` |
//! | DynamoDB Streams batch, `INSERT` records | [`nube::DocumentCreated`], one per record | `MODIFY`/`REMOVE` skipped; partial batch failures; logical collection from `NUBE_TABLE_*` |
//! | anything else (SQS, SNS, other EventBridge events...) | none | refused: `errorType` `nube.EventMismatch` |
//!
//! Modules, one concern each:
//!
//! - [`dispatch`]: [`run`], [`Dispatcher`], [`handle`] (one payload without a Runtime
//!   API, for tests), [`resources_from_env`];
//! - [`http`]: API Gateway REST (v1) and HTTP API (v2), Function URL and ALB requests
//!   to `http::Request` and back, in the shape each request came in;
//! - [`timer`], [`blob`], [`document`]: EventBridge scheduled events, S3 notifications and
//!   DynamoDB Streams records to nube's events;
//! - [`payload`]: an invocation's payload handed from lambda_runtime as it came, without
//!   a JSON pass of lambda_runtime's;
//! - [`shape`]: what a payload is, told by its shape; [`names`]: logical and physical
//!   resource names; [`error`]: decode and invocation errors; [`logging`]: JSON log
//!   lines with the Lambda `requestId`;
//! - `dynamodb` (feature `dynamodb`) and `s3` (feature `s3`): the backends.

// Modules are declared by the engineers writing them.

#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "s3")]
pub mod s3;

pub mod blob;
pub mod dispatch;
pub mod document;
pub mod error;
pub mod http;
pub mod logging;
pub mod names;
pub mod payload;
pub mod shape;
pub mod timer;

pub use dispatch::{Dispatcher, InitError, handle, resources_from_env, run};
pub use error::{DecodeError, HandlerError};
