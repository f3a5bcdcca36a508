//! Blob-created functions: a `blobTrigger` invocation to [`BlobCreated`].
//!
//! | nube | from |
//! |---|---|
//! | `bucket` | the function's declared bucket (one function watches one container) |
//! | `key` | `Metadata.BlobTrigger` (`<container>/<path>`) after the container; else the path of `Metadata.Uri` after the container, percent-decoded; else the declared prefix + `Metadata.name` (the `{name}` of the binding's path) |
//! | `size` | `Properties.ContentLength` (or `Length`); else the length of the content the binding sent |
//! | `content_type`, `etag`, `time` | `Properties.ContentType`, `ETag`, `LastModified` (or `CreatedOn`) |
//! | `event_id` | `<container>/<key>@<etag>`: the same when the host retries the blob |
//!
//! `Metadata.Properties` may arrive as an object or as a JSON-encoded string; the
//! content (`Data.<binding>`) as base64 (`dataType: binary` or the default for bytes)
//! or as text. The content the host sent becomes [`BlobCreated::content`], so that a
//! function need not read the blob again; it also stays in [`nube::RawEvent`].

use chrono::{DateTime, Utc};
use nube::{BlobCreated, Provider, RawEvent};
use serde_json::Value;

use crate::error::DecodeError;
use crate::payload::{InvocationRequest, Remainder, bytes_value, field, field_str, field_u64};

/// Whether `request` looks like a blob trigger's (a `Uri`, `BlobTrigger` or
/// `Properties` in `Metadata`).
pub fn is_blob(request: &InvocationRequest) -> bool {
    request.meta("Uri").is_some()
        || request.meta("Properties").is_some()
        || request.meta("BlobTrigger").is_some()
}

/// Percent-decodes `text` (`%20` → space); invalid escapes stay as they are.
pub fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// Whether an endpoint's host (`host[:port]`, `[v6]:port`) puts the account in the
/// path (`http://127.0.0.1:10000/<account>/...`: Azurite by IP, or a one-label name
/// such as `localhost` or a compose service's), rather than naming it itself (Azure's
/// `<account>.blob.core.windows.net`, a custom domain).
pub(crate) fn is_path_style_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    !name.contains('.') || name.parse::<std::net::IpAddr>().is_ok()
}

/// The container and key in a blob URI (`https://acct.blob.core.windows.net/c/a%20b.jpg`
/// → `("c", "a b.jpg")`; Azurite's `http://127.0.0.1:10000/account/c/k` too).
pub fn container_and_key(uri: &str) -> Option<(String, String)> {
    let after_scheme = uri.split_once("://").map_or(uri, |(_, rest)| rest);
    let (host, path) = after_scheme.split_once('/')?;
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let mut segments = path.splitn(2, '/');
    let mut container = segments.next()?;
    let mut key = segments.next()?;
    if is_path_style_host(host) {
        let (c, k) = key.split_once('/')?;
        container = c;
        key = k;
    }
    if container.is_empty() || key.is_empty() {
        return None;
    }
    Some((percent_decode(container), percent_decode(key)))
}

fn time(value: Option<&Value>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value?.as_str()?.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The event for the function watching `bucket` (keys starting `prefix`), its raw
/// payload the whole invocation `request` and its `remainder` make.
pub fn decode(
    request: InvocationRequest,
    remainder: Remainder,
    bucket: &str,
    prefix: &str,
) -> Result<BlobCreated, DecodeError> {
    let properties = request.meta("Properties").unwrap_or_default();
    if !properties.is_null() && !properties.is_object() {
        return Err(DecodeError::new(
            "Metadata.Properties is neither an object nor a JSON-encoded object",
        ));
    }
    // `BlobTrigger` is the blob's own path (`<container>/<name>`, not encoded); a URI's
    // host only suggests where its path starts.
    let from_trigger = request
        .meta("BlobTrigger")
        .as_ref()
        .and_then(|path| path.as_str())
        .and_then(|path| path.split_once('/'))
        .filter(|(c, k)| !c.is_empty() && !k.is_empty())
        .map(|(c, k)| (c.to_owned(), k.to_owned()));
    let from_uri = || {
        request
            .meta("Uri")
            .as_ref()
            .and_then(|uri| uri.as_str())
            .and_then(container_and_key)
    };
    let (container, key) = match from_trigger.or_else(from_uri) {
        Some(pair) => pair,
        None => {
            let name = request
                .meta("name")
                .and_then(|n| n.as_str().map(str::to_owned))
                .ok_or_else(|| {
                    DecodeError::new(
                        "the blob trigger's Metadata has no BlobTrigger path, Uri or name: cannot tell which blob was created",
                    )
                })?;
            (bucket.to_owned(), format!("{prefix}{name}"))
        }
    };
    let content = request
        .data
        .values()
        .next()
        .and_then(bytes_value)
        .map(bytes::Bytes::from);
    let size = field_u64(&properties, "ContentLength")
        .or_else(|| field_u64(&properties, "Length"))
        .or_else(|| content.as_ref().map(|b| b.len() as u64))
        .unwrap_or(0);
    let etag = field_str(&properties, "ETag").map(|e| e.trim_matches('"').to_owned());
    let time = time(field(&properties, "LastModified"))
        .or_else(|| time(field(&properties, "CreatedOn")))
        .or_else(|| time(field(&properties, "Created")))
        .or_else(|| request.meta("sys").and_then(|s| time(field(&s, "UtcNow"))))
        .unwrap_or_else(Utc::now);
    let version = etag
        .clone()
        .unwrap_or_else(|| time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
    let content_type = field_str(&properties, "ContentType").map(str::to_owned);
    drop(properties);
    Ok(BlobCreated {
        event_id: format!("{container}/{key}@{version}"),
        bucket: bucket.to_owned(),
        key,
        size,
        content_type,
        etag,
        time,
        content,
        raw: RawEvent::new(Provider::Azure, remainder.payload(request)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_give_container_and_decoded_key() {
        assert_eq!(
            container_and_key(
                "https://acct.blob.core.windows.net/uploads/original/red%20flower.jpg"
            ),
            Some(("uploads".into(), "original/red flower.jpg".into()))
        );
        assert_eq!(
            container_and_key("http://127.0.0.1:10000/devstoreaccount1/uploads/a+b.png"),
            Some(("uploads".into(), "a+b.png".into()))
        );
        assert_eq!(
            container_and_key("https://acct.blob.core.windows.net/uploads"),
            None
        );
        assert_eq!(
            container_and_key("https://acct.blob.core.windows.net:443/uploads/original/a.png"),
            Some(("uploads".into(), "original/a.png".into()))
        );
        assert_eq!(
            container_and_key("https://files.example.com/uploads/original/a.png"),
            Some(("uploads".into(), "original/a.png".into()))
        );
        for azurite in [
            "http://127.0.0.1:10000/devstoreaccount1/uploads/a.png",
            "http://azurite:10000/devstoreaccount1/uploads/a.png",
            "http://localhost:10000/devstoreaccount1/uploads/a.png",
            "http://[::1]:10000/devstoreaccount1/uploads/a.png",
        ] {
            assert_eq!(
                container_and_key(azurite),
                Some(("uploads".into(), "a.png".into())),
                "{azurite}"
            );
        }
        assert_eq!(percent_decode("a%2Fb%zz%"), "a/b%zz%");
    }

    #[test]
    fn the_blob_trigger_path_wins_over_a_guess_from_the_uri() {
        // A dotted Azurite host reads as an account host: the URI alone would make
        // the account a container.
        let as_json_string = |s: &str| Value::from(Value::from(s).to_string());
        let body = serde_json::json!({"Data": {}, "Metadata": {
            "Uri": as_json_string("http://host.docker.internal:10000/devstoreaccount1/uploads/original/a%20b.png"),
            "BlobTrigger": as_json_string("uploads/original/a b.png"),
            "name": as_json_string("a b.png"),
            "Properties": {"ContentLength": 3, "ETag": "\"0x1\""}
        }})
        .to_string();
        let (request, remainder) = InvocationRequest::parse_parts(body.as_bytes()).unwrap();
        let blob = decode(request, remainder, "uploads", "original/").unwrap();
        assert_eq!(blob.key, "original/a b.png");
        assert_eq!(blob.event_id, "uploads/original/a b.png@0x1");
    }
}
