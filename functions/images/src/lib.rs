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
//!   retried; processing the same event twice writes the same result. An event
//!   whose upload has since been replaced (a late or reordered delivery) writes
//!   nothing: the replacement's own event does the work.
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
use nube::axum::extract::rejection::BytesRejection;
use nube::axum::http::{HeaderMap, StatusCode, header};
use nube::axum::response::{IntoResponse, Response};
use nube::blob::{BlobError, BlobInfo};
use nube::http::Path;
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
        .function_collections(API_FUNCTION, [COLLECTION])
        .function_buckets(API_FUNCTION, [BUCKET])
        .function_collections(THUMBNAIL_FUNCTION, [COLLECTION])
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
            Error::bad_request("the upload could not be read").with_source(e)
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
/// that cannot be used (recorded as failed), for originals that are gone and for
/// events describing an upload that has since been replaced, so that only store
/// failures are retried.
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
    // Before the download: a stale event is not worth reading the bytes for.
    if !is_still_the_event_version(&bucket, &event).await? {
        return Ok(());
    }
    // Azure sends the bytes with the event; elsewhere (or when they are not the size
    // the event gives, so not surely its version) they are downloaded.
    let original = match &event.content {
        Some(bytes) if bytes.len() as u64 == event.size => bytes.clone(),
        _ => match bucket.try_get(&event.key).await? {
            Some(bytes) => bytes,
            None => {
                tracing::info!(key = event.key, "the upload is gone; nothing to do");
                return Ok(());
            }
        },
    };
    // Size and time both describe the version these bytes are (checked again below).
    let size = original.len() as u64;
    let uploaded_at = event.time.trunc_subsecs(6);
    // The reason is stored and served (`GET /images/{name}`): a failure of the work
    // itself (a panic in a decoder) is logged, and the record says only that.
    let outcome = nube::run_blocking(move || process(&original))
        .await
        .unwrap_or_else(|e| {
            tracing::error!(
                key = event.key,
                error = e.operator_message(),
                "processing the upload failed"
            );
            Err("the image could not be processed".to_owned())
        });
    // The upload may have been replaced between the check above and the read, or
    // while it was processed: then the bytes may not be the event's, and writing
    // would put an older upload's results over (or mixed with) the newer one's.
    if !is_still_the_event_version(&bucket, &event).await? {
        return Ok(());
    }
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
                uploaded_at,
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
                uploaded_at,
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

/// Whether the object at `event.key` is still the version `event` describes; logs
/// (at info) why not when it is gone or was replaced since.
async fn is_still_the_event_version(bucket: &Bucket, event: &BlobCreated) -> nube::Result<bool> {
    let stored = match bucket.head(&event.key).await {
        Ok(info) => info,
        Err(BlobError::NotFound { .. }) => {
            tracing::info!(key = event.key, "the upload is gone; nothing to do");
            return Ok(false);
        }
        Err(e) => return Err(e.into()),
    };
    if describes(event, &stored) {
        return Ok(true);
    }
    tracing::info!(
        key = event.key,
        event_id = event.event_id,
        event_etag = event.etag,
        event_size = event.size,
        event_time = %event.time,
        stored_etag = stored.etag,
        stored_size = stored.size,
        stored_last_modified = %stored.last_modified,
        "the upload was replaced after this event; skipping it (the newer upload's event does the work)"
    );
    Ok(false)
}

/// Whether `stored` (what the bucket holds now) is the version `event` describes.
///
/// Entity tags decide when both sides have one. Otherwise the sizes must agree and
/// the stored object must not be newer than the event. Anything else is an object
/// written after the event's (buckets read their own writes), so the event is
/// stale.
fn describes(event: &BlobCreated, stored: &BlobInfo) -> bool {
    match (
        event.etag.as_deref().and_then(bare_etag),
        stored.etag.as_deref().and_then(bare_etag),
    ) {
        (Some(ours), Some(theirs)) => ours == theirs,
        _ => stored.size == event.size && stored.last_modified <= event.time,
    }
}

/// An entity tag without the weak prefix and the quotes, which providers give or
/// leave off differently in events and in metadata; `None` when empty.
fn bare_etag(tag: &str) -> Option<&str> {
    let tag = tag.trim();
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    let tag = tag
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(tag);
    (!tag.is_empty()).then_some(tag)
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;
    use nube::{Provider, RawEvent};

    fn event(etag: Option<&str>, size: u64, time: DateTime<Utc>) -> BlobCreated {
        BlobCreated {
            event_id: "e".into(),
            bucket: BUCKET.into(),
            key: original_key("a.png"),
            size,
            content_type: None,
            etag: etag.map(str::to_owned),
            time,
            content: None,
            raw: RawEvent::new(Provider::Test, serde_json::json!({})),
        }
    }

    fn stored(etag: Option<&str>, size: u64, last_modified: DateTime<Utc>) -> BlobInfo {
        BlobInfo {
            key: original_key("a.png"),
            size,
            etag: etag.map(str::to_owned),
            last_modified,
            content_type: None,
        }
    }

    #[test]
    fn etags_decide_when_both_sides_have_one() {
        let t = Utc::now();
        let later = t + TimeDelta::seconds(5);
        // Same tag, quoted on one side only: the same version, whatever the times say.
        assert!(describes(
            &event(Some("abc-2"), 10, t),
            &stored(Some("\"abc-2\""), 10, later)
        ));
        assert!(describes(
            &event(Some("W/\"x\""), 10, t),
            &stored(Some("x"), 10, t)
        ));
        // Another tag: replaced, even with the same size and an older time.
        assert!(!describes(
            &event(Some("\"1\""), 10, later),
            &stored(Some("\"2\""), 10, t)
        ));
    }

    #[test]
    fn without_etags_size_and_time_decide() {
        let t = Utc::now();
        let later = t + TimeDelta::milliseconds(1);
        for (ev_tag, st_tag) in [
            (None, None),
            (Some("1"), None),
            (None, Some("1")),
            (Some("\"\""), Some("1")),
        ] {
            // The event is written up after the store stamps the object.
            assert!(describes(&event(ev_tag, 10, later), &stored(st_tag, 10, t)));
            assert!(describes(&event(ev_tag, 10, t), &stored(st_tag, 10, t)));
            // A newer object of the same size.
            assert!(!describes(
                &event(ev_tag, 10, t),
                &stored(st_tag, 10, later)
            ));
            // Another size: another object.
            assert!(!describes(
                &event(ev_tag, 10, later),
                &stored(st_tag, 11, t)
            ));
        }
    }
}
