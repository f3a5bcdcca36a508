//! # nube-images
//!
//! Image uploads with thumbnails, written once with nube.
//!
//! - [`API_FUNCTION`] (`images-api`, HTTP):
//!   - `PUT /uploads/{name}`: stores the request body at `original/{name}` in
//!     bucket [`BUCKET`] (`uploads`), keeping its `Content-Type`; 202 `{"key"}`.
//!   - `GET /images/{name}`: the [`ImageRecord`] (404 until it is processed).
//!   - `GET /images/{name}/thumbnail`, `GET /images/{name}/medium`: the JPEG
//!     renditions (404 until they exist).
//! - [`THUMBNAIL_FUNCTION`] (`make-thumbnails`, blob created in `uploads` under
//!   `original/`): decodes the upload, writes `thumbnails/{name}` (a 200×200 cover
//!   crop) and `medium/{name}` (fit inside 800×800, never upscaled), then records
//!   the result in collection [`COLLECTION`] (`images`), document id `{name}`.
//!   Bytes that are not an image are recorded as `failed` with a reason rather than
//!   retried; processing the same event twice writes the same result.
//!
//! ```
//! let app = nube_images::register(nube::App::new("my-app"));
//! assert!(app.validate().is_ok());
//! assert!(app.buckets().any(|b| b == "uploads"));
//! ```

mod process;

pub use process::{
    MAX_DIMENSION, MEDIUM_MAX, MEDIUM_QUALITY, Processed, THUMBNAIL_QUALITY, THUMBNAIL_SIZE,
    format_name, process,
};

use chrono::{DateTime, SubsecRound, Utc};
use nube::axum::body::Bytes;
use nube::axum::extract::Path;
use nube::axum::extract::rejection::BytesRejection;
use nube::axum::http::{HeaderMap, StatusCode, header};
use nube::axum::response::{IntoResponse, Response};
use nube::http::{Json, Routes};
use nube::{App, BlobCreated, Bucket, Context, Error, ErrorKind};
use serde::{Deserialize, Serialize};

/// The bucket uploads, thumbnails and medium renditions live in.
pub const BUCKET: &str = "uploads";
/// The collection of [`ImageRecord`]s, one per upload name.
pub const COLLECTION: &str = "images";
/// The HTTP function.
pub const API_FUNCTION: &str = "images-api";
/// The blob-created function that makes the renditions.
pub const THUMBNAIL_FUNCTION: &str = "make-thumbnails";
/// Key prefix of uploads (the blob trigger's prefix).
pub const ORIGINAL_PREFIX: &str = "original/";
/// Key prefix of thumbnails.
pub const THUMBNAIL_PREFIX: &str = "thumbnails/";
/// Key prefix of medium renditions.
pub const MEDIUM_PREFIX: &str = "medium/";
/// The longest upload name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// Whether an upload was processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageStatus {
    /// The renditions exist.
    Ready,
    /// The upload could not be used; see [`ImageRecord::reason`].
    Failed,
}

/// What is known about one upload: document `images/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRecord {
    /// `original/{name}`.
    pub original_key: String,
    /// `thumbnails/{name}` when ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_key: Option<String>,
    /// `medium/{name}` when ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medium_key: Option<String>,
    /// Width of the original, in pixels, when ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Height of the original, in pixels, when ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// The original's format (`png`, `jpeg`, ...), when ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Size of the original, in bytes.
    pub size: u64,
    /// When the original was written (the blob event's time).
    #[serde(with = "nube::store::timestamp")]
    pub uploaded_at: DateTime<Utc>,
    /// `ready` or `failed`.
    pub status: ImageStatus,
    /// Why processing failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Adds bucket `uploads`, collection `images`, the HTTP function `images-api` and
/// the blob-created function `make-thumbnails` to `app`.
pub fn register(app: App) -> App {
    app.bucket(BUCKET)
        .collection(COLLECTION)
        .http(
            API_FUNCTION,
            Routes::new()
                .put("/uploads/{name}", upload)
                .get("/images/{name}", record)
                .get("/images/{name}/thumbnail", thumbnail)
                .get("/images/{name}/medium", medium),
        )
        .on_blob_created(THUMBNAIL_FUNCTION, BUCKET, ORIGINAL_PREFIX, make_thumbnails)
}

/// The image functions as an app of their own, called `images`.
pub fn app() -> App {
    register(App::new("images"))
}

/// Checks an upload name: one path segment of 1–[`MAX_NAME_CHARS`] characters, not
/// starting with `.`, without `/ \ ? #` or control characters (it becomes both an
/// object key segment and a document id).
pub fn validate_name(name: &str) -> nube::Result<()> {
    let problem = if name.is_empty() {
        "the name must not be empty".to_owned()
    } else if name.chars().count() > MAX_NAME_CHARS {
        format!("the name must be at most {MAX_NAME_CHARS} characters")
    } else if name.starts_with('.') {
        "the name must not start with '.'".to_owned()
    } else if name
        .chars()
        .any(|c| c.is_control() || matches!(c, '/' | '\\' | '?' | '#'))
    {
        "the name must be a single path segment without '/', '\\', '?', '#' or control characters"
            .to_owned()
    } else {
        return Ok(());
    };
    let shown: String = name.chars().take(60).collect();
    Err(Error::bad_request(format!(
        "invalid upload name {shown:?}: {problem}"
    )))
}

/// `original/{name}`.
pub fn original_key(name: &str) -> String {
    format!("{ORIGINAL_PREFIX}{name}")
}

/// `thumbnails/{name}`.
pub fn thumbnail_key(name: &str) -> String {
    format!("{THUMBNAIL_PREFIX}{name}")
}

/// `medium/{name}`.
pub fn medium_key(name: &str) -> String {
    format!("{MEDIUM_PREFIX}{name}")
}

async fn upload(
    ctx: Context,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> nube::Result<(StatusCode, Json<serde_json::Value>)> {
    validate_name(&name)?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Error::new(
                ErrorKind::PayloadTooLarge,
                "the upload is larger than this function accepts",
            )
        } else {
            Error::bad_request(format!("could not read the upload: {}", e.body_text()))
        }
    })?;
    if body.is_empty() {
        return Err(Error::bad_request("the upload is empty"));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty());
    let key = original_key(&name);
    let size = body.len();
    ctx.bucket(BUCKET)?
        .put_with_content_type(&key, body, content_type)
        .await?;
    tracing::info!(key, size, content_type, "upload stored");
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "key": key })),
    ))
}

async fn record(ctx: Context, Path(name): Path<String>) -> nube::Result<Json<ImageRecord>> {
    validate_name(&name)?;
    match ctx.collection::<ImageRecord>(COLLECTION).get(&name).await? {
        Some(doc) => Ok(Json(doc.value)),
        None => Err(Error::not_found(format!(
            "image {name:?} not found (not uploaded, or not processed yet)"
        ))),
    }
}

async fn rendition(ctx: &Context, name: &str, key: &str, what: &str) -> nube::Result<Response> {
    validate_name(name)?;
    match ctx.bucket(BUCKET)?.try_get(key).await? {
        Some(bytes) => Ok(([(header::CONTENT_TYPE, "image/jpeg")], bytes).into_response()),
        None => Err(Error::not_found(format!(
            "no {what} for image {name:?} (not uploaded, not processed yet, or not an image)"
        ))),
    }
}

async fn thumbnail(ctx: Context, Path(name): Path<String>) -> nube::Result<Response> {
    rendition(&ctx, &name, &thumbnail_key(&name), "thumbnail").await
}

async fn medium(ctx: Context, Path(name): Path<String>) -> nube::Result<Response> {
    rendition(&ctx, &name, &medium_key(&name), "medium image").await
}

/// The blob-created handler: renders, stores, records. Returns `Ok` for uploads
/// that cannot be used (recorded as failed) and for originals that are gone, so
/// that only store failures are retried.
async fn make_thumbnails(event: BlobCreated, ctx: Context) -> nube::Result<()> {
    let Some(name) = event.key_after(ORIGINAL_PREFIX).map(str::to_owned) else {
        return Ok(());
    };
    if let Err(e) = validate_name(&name) {
        tracing::warn!(
            key = event.key,
            reason = e.client_message(),
            "skipping an upload whose name cannot be an image id"
        );
        return Ok(());
    }
    let bucket = ctx.bucket(BUCKET)?;
    let Some(original) = bucket.try_get(&event.key).await? else {
        tracing::info!(key = event.key, "the upload is gone; nothing to do");
        return Ok(());
    };
    let size = original.len() as u64;
    let outcome = nube::run_blocking(move || process(&original))
        .await
        .unwrap_or_else(|e| {
            Err(format!(
                "the image could not be processed: {}",
                e.operator_message()
            ))
        });
    let record = match outcome {
        Ok(done) => {
            write_renditions(&bucket, &name, &done).await?;
            tracing::info!(key = event.key, width = done.width, height = done.height, format = %done.format, "renditions written");
            ImageRecord {
                original_key: event.key.clone(),
                thumbnail_key: Some(thumbnail_key(&name)),
                medium_key: Some(medium_key(&name)),
                width: Some(done.width),
                height: Some(done.height),
                format: Some(done.format),
                size,
                uploaded_at: event.time.trunc_subsecs(6),
                status: ImageStatus::Ready,
                reason: None,
            }
        }
        Err(reason) => {
            tracing::warn!(key = event.key, reason, "the upload is not a usable image");
            // A re-upload that is not an image must not leave the old renditions.
            bucket.delete(&thumbnail_key(&name)).await?;
            bucket.delete(&medium_key(&name)).await?;
            ImageRecord {
                original_key: event.key.clone(),
                thumbnail_key: None,
                medium_key: None,
                width: None,
                height: None,
                format: None,
                size,
                uploaded_at: event.time.trunc_subsecs(6),
                status: ImageStatus::Failed,
                reason: Some(reason),
            }
        }
    };
    ctx.collection::<ImageRecord>(COLLECTION)
        .put(&name, &record)
        .await?;
    Ok(())
}

async fn write_renditions(bucket: &Bucket, name: &str, done: &Processed) -> nube::Result<()> {
    bucket
        .put_with_content_type(
            &thumbnail_key(name),
            done.thumbnail.clone(),
            Some("image/jpeg"),
        )
        .await?;
    bucket
        .put_with_content_type(&medium_key(name), done.medium.clone(), Some("image/jpeg"))
        .await?;
    Ok(())
}
