//! `cargo xtask events`: each cloud's native payload for a trigger kind beside the
//! nube event it decodes to.
//!
//! The payloads are [`crate::samples`], made for the functions of a small lesson app
//! ([`lesson_app`]); each one goes through the real adapter in this process (the
//! Lambda dispatcher, the Azure custom-handler router, the Cloud Run server), and the
//! page shows what the function received and what the adapter answered. A payload
//! the adapter refused would be an error here, and the tests run every one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use nube::axum::Json;
use nube::axum::body::Body;
use nube::axum::extract::Request;
use nube::http::Routes;
use nube::store::NoDocumentStore;
use nube::{App, BlobCreated, Context, DocumentCreated, Resources, TimerTick};
use serde_json::{Map, Value, json};
use tower::ServiceExt;

use crate::samples::{self, HttpRequest, Kind, Native, Provider, Sample};

/// The long help of `cargo xtask events`.
pub const LONG_ABOUT: &str = "\
Show, for one trigger kind, what each cloud sends the function's process (its native
payload) beside what the nube function receives (the normalised event, or for HTTP the
request the axum Router sees) and what nube answers the cloud.

Each payload is sent through the real adapter in this process (nube-aws's dispatcher,
nube-azure's custom-handler server, nube-gcp's Cloud Run server) to a function of a
small lesson app:

  api                 HTTP:      POST /orders/{id}
  nightly             timer:     0 2 * * * (every day at 02:00 UTC)
  thumbnails          blob:      bucket uploads, prefix original/
  orders-read-model   document:  collection orders

TRIGGER is one of: http, timer, blob, document.
--provider is one of: aws, azure, gcp (default: all three, in that order). The local
runtime has no native payload: it makes the nube event itself from the write to its
embedded store (`cargo xtask invoke --target local` shows its admin endpoint instead).

Examples:
  cargo xtask events blob
  cargo xtask events document --provider gcp
  cargo xtask events http --format markdown > http.md";

/// Options of `cargo xtask events`.
#[derive(clap::Args)]
pub struct Args {
    /// The trigger kind: http, timer, blob or document.
    #[arg(value_name = "TRIGGER")]
    pub trigger: String,
    /// Only this cloud: aws, azure or gcp.
    #[arg(long, value_name = "PROVIDER")]
    pub provider: Option<String>,
    /// `text` for a terminal, `markdown` for a page.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// How `cargo xtask events` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Headed sections for a terminal.
    Text,
    /// Markdown with JSON code blocks.
    Markdown,
}

/// Runs `cargo xtask events`.
pub fn run(args: Args) -> Result<(), String> {
    let kind = parse_kind(&args.trigger)?;
    let providers = match &args.provider {
        Some(p) => vec![parse_provider(p)?],
        None => Provider::ALL.to_vec(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a tokio runtime: {e}"))?;
    let mut page = String::new();
    for provider in providers {
        let shown = runtime.block_on(show(provider, kind))?;
        page.push_str(&render(&shown, args.format));
    }
    print!("{page}");
    Ok(())
}

/// A trigger kind from the command line, or an error listing the kinds.
pub fn parse_kind(text: &str) -> Result<Kind, String> {
    crate::one_named("trigger", text, &Kind::ALL, Kind::as_str)
}

/// A provider from the command line, or an error listing the providers.
pub fn parse_provider(text: &str) -> Result<Provider, String> {
    if text.eq_ignore_ascii_case("local") {
        return Err(
            "the local runtime has no native payload: it makes the nube event from the write \
             to its embedded store (there is: aws, azure, gcp)"
                .into(),
        );
    }
    crate::one_named("provider", text, &Provider::ALL, Provider::as_str)
}

/// What the function of `kind` in the lesson app last received.
type Seen = Arc<Mutex<Option<Value>>>;

/// The lesson app: one function per trigger kind, each recording what it received
/// in `seen`.
pub fn lesson_app(seen: Seen) -> App {
    let on_http = seen.clone();
    let on_timer = seen.clone();
    let on_blob = seen.clone();
    let on_document = seen;
    App::new("lesson")
        .http(
            "api",
            Routes::new().post("/orders/{id}", move |request: Request| {
                let seen = on_http.clone();
                async move {
                    let received = received_request(request).await;
                    *seen.lock().expect("not poisoned") = Some(received.clone());
                    Json(json!({"accepted": true}))
                }
            }),
        )
        .timer(
            "nightly",
            "0 2 * * *",
            move |tick: TimerTick, ctx: Context| {
                let seen = on_timer.clone();
                async move {
                    record(&seen, serde_json::to_value(tick), &ctx);
                    Ok(())
                }
            },
        )
        .on_blob_created(
            "thumbnails",
            "uploads",
            "original/",
            move |blob: BlobCreated, ctx: Context| {
                let seen = on_blob.clone();
                async move {
                    record(&seen, serde_json::to_value(blob), &ctx);
                    Ok(())
                }
            },
        )
        .on_document_created(
            "orders-read-model",
            "orders",
            move |doc: DocumentCreated<Value>, ctx: Context| {
                let seen = on_document.clone();
                async move {
                    record(&seen, serde_json::to_value(doc), &ctx);
                    Ok(())
                }
            },
        )
}

/// The lesson app's function of `kind`.
pub fn lesson_function(kind: Kind) -> &'static str {
    match kind {
        Kind::Http => "api",
        Kind::Timer => "nightly",
        Kind::Blob => "thumbnails",
        Kind::Document => "orders-read-model",
    }
}

/// The environment the lesson app runs with on `provider`: the physical names of its
/// bucket and collection, as the packaged descriptors set them. (nube-azure reads its
/// settings from the process environment, so its names stay the logical ones here.)
pub fn lesson_env(provider: Provider) -> BTreeMap<String, String> {
    let pairs: &[(&str, &str)] = match provider {
        Provider::Aws => &[
            ("NUBE_BUCKET_UPLOADS", "lesson-uploads-7f3a9c"),
            ("NUBE_TABLE_ORDERS", "lesson-orders"),
        ],
        Provider::Azure => &[],
        Provider::Gcp => &[
            ("NUBE_BUCKET_UPLOADS", "my-project-lesson-uploads"),
            ("NUBE_COLLECTION_ORDERS", "lesson-orders"),
        ],
    };
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn record(seen: &Seen, event: serde_json::Result<Value>, ctx: &Context) {
    let mut event = event.expect("nube events serialise");
    if let Some(fields) = event.as_object_mut() {
        // The provider's payload, shown beside it already.
        fields.remove("raw");
    }
    let context = json!({
        "functionName": ctx.function_name(),
        "provider": ctx.provider().as_str(),
        "invocationId": ctx.invocation_id(),
        "attempt": ctx.attempt(),
    });
    *seen.lock().expect("not poisoned") = Some(json!({"event": event, "context": context}));
}

/// The request an HTTP handler received, as JSON.
async fn received_request(request: Request) -> Value {
    let (parts, body) = request.into_parts();
    let body = axum_body_bytes(body).await;
    let headers: Map<String, Value> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                Value::from(v.to_str().unwrap_or("<not text>")),
            )
        })
        .collect();
    json!({
        "method": parts.method.as_str(),
        "uri": parts.uri.to_string(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    })
}

async fn axum_body_bytes(body: Body) -> Vec<u8> {
    nube::axum::body::to_bytes(body, usize::MAX)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default()
}

/// One provider's payload, what the function received, and the adapter's answer.
#[derive(Debug)]
pub struct Shown {
    /// The cloud.
    pub provider: Provider,
    /// The trigger kind.
    pub kind: Kind,
    /// The native payload.
    pub sample: Sample,
    /// What the function received.
    pub received: Value,
    /// The adapter's answer, in the cloud's terms.
    pub answer: Answer,
}

/// What an adapter answered.
#[derive(Debug)]
pub enum Answer {
    /// The Lambda function's result.
    Lambda(Value),
    /// An HTTP response.
    Http {
        /// Status code.
        status: u16,
        /// Headers, in order.
        headers: Vec<(String, String)>,
        /// Body.
        body: Vec<u8>,
    },
}

/// Sends `provider`'s sample for `kind` through its adapter to the lesson app.
pub async fn show(provider: Provider, kind: Kind) -> Result<Shown, String> {
    let seen: Seen = Arc::default();
    let app = lesson_app(seen.clone());
    let function = lesson_function(kind);
    let env = lesson_env(provider);
    let sample = samples::sample(provider, &app.manifest(), function, &env)?;
    let resources = Resources::new(Arc::new(NoDocumentStore::new("xtask events", "none")));
    let answer = match (&sample.native, provider) {
        (Native::Lambda(event), Provider::Aws) => {
            let names = nube_aws::names::ResourceNames::from_lookup(&app, |v| env.get(v).cloned());
            let dispatcher = nube_aws::Dispatcher::new(Arc::new(app), function, resources, names)
                .map_err(|e| e.to_string())?;
            let mut lambda = lambda_runtime::Context::default();
            lambda.request_id = "8f5c1a2e-4b3d-4e6f-9a7b-1c2d3e4f5a6b".into();
            let result = dispatcher
                .handle(event.clone(), lambda, None)
                .await
                .map_err(|e| format!("nube-aws refused the {} sample: {e:?}", kind.as_str()))?;
            Answer::Lambda(result)
        }
        (Native::Http(request), Provider::Azure) => {
            let router =
                nube_azure::Runtime::new(app, resources, nube_azure::descriptors::ROUTE_PREFIX)
                    .into_router();
            send(router, request).await?
        }
        (Native::Http(request), Provider::Gcp) => {
            let names = nube_gcp::names::ResourceNames::from_lookup(&app, |v| env.get(v).cloned());
            let server =
                nube_gcp::Server::new(Arc::new(app), nube_gcp::Config::default(), resources, names)
                    .map_err(|e| e.to_string())?;
            send(server.router(), request).await?
        }
        (native, provider) => {
            return Err(format!(
                "a {} sample for {} is a {}",
                kind.as_str(),
                provider.as_str(),
                match native {
                    Native::Lambda(_) => "Lambda event",
                    Native::Http(_) => "HTTP request",
                }
            ));
        }
    };
    if let Answer::Http { status, body, .. } = &answer
        && !(200..300).contains(status)
    {
        return Err(format!(
            "{} answered the {} sample with {status}: {}",
            provider.as_str(),
            kind.as_str(),
            String::from_utf8_lossy(body)
        ));
    }
    let received = seen.lock().expect("not poisoned").take().ok_or_else(|| {
        format!(
            "the {} sample reached no function on {}",
            kind.as_str(),
            provider.as_str()
        )
    })?;
    Ok(Shown {
        provider,
        kind,
        sample,
        received,
        answer,
    })
}

/// Sends `request` to `router` and collects the response.
async fn send(router: nube::axum::Router, request: &HttpRequest) -> Result<Answer, String> {
    let mut builder = http::Request::builder()
        .method(request.method.as_str())
        .uri(request.path_and_query.as_str());
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    let request = builder
        .body(Body::from(request.body.clone()))
        .map_err(|e| format!("the sample is not a valid HTTP request: {e}"))?;
    let response = match router.oneshot(request).await {
        Ok(r) => r,
        Err(infallible) => match infallible {},
    };
    let (parts, body) = response.into_parts();
    Ok(Answer::Http {
        status: parts.status.as_u16(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or("<not text>").to_owned(),
                )
            })
            .collect(),
        body: axum_body_bytes(body).await,
    })
}

/// The cloud's name, as a heading says it.
fn cloud(provider: Provider) -> &'static str {
    match provider {
        Provider::Aws => "AWS Lambda",
        Provider::Azure => "Azure Functions",
        Provider::Gcp => "Google Cloud Run",
    }
}

/// `shown` as a page section.
pub fn render(shown: &Shown, format: Format) -> String {
    let native = native_text(&shown.sample.native);
    let received = pretty(&shown.received);
    let answer = answer_text(&shown.answer);
    let function = lesson_function(shown.kind);
    let what = if shown.kind == Kind::Http {
        "the request the function's axum Router receives"
    } else {
        "the nube event and Context the function receives"
    };
    match format {
        Format::Text => format!(
            "== {} · {} ({function})\n\n-- {}\n{native}\n\n-- {what}\n{received}\n\n-- what nube answers\n{answer}\n\n",
            cloud(shown.provider),
            shown.kind.as_str(),
            shown.sample.title,
        ),
        Format::Markdown => format!(
            "## {} · {}\n\n**{}** (to the lesson app's `{function}`):\n\n```text\n{native}\n```\n\n**{what}:**\n\n```json\n{received}\n```\n\n**What nube answers:**\n\n```text\n{answer}\n```\n\n",
            cloud(shown.provider),
            shown.kind.as_str(),
            shown.sample.title,
        ),
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).expect("JSON serialises")
}

/// A body as text: pretty JSON, text, or a hex dump of binary data.
fn body_text(content_type: Option<&str>, body: &[u8]) -> String {
    if body.is_empty() {
        return String::new();
    }
    if let Ok(value) = serde_json::from_slice::<Value>(body)
        && content_type.is_none_or(|c| c.contains("json"))
    {
        return pretty(&value);
    }
    match std::str::from_utf8(body) {
        Ok(text) if !text.contains('\0') => text.to_owned(),
        _ => {
            let mut dump = format!(
                "<{} bytes of {}>\n",
                body.len(),
                content_type.unwrap_or("binary data")
            );
            for chunk in body.chunks(16) {
                let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
                let text: String = chunk
                    .iter()
                    .map(|&b| {
                        if b.is_ascii_graphic() || b == b' ' {
                            b as char
                        } else {
                            '.'
                        }
                    })
                    .collect();
                dump.push_str(&format!("{:<48}  {text}\n", hex.join(" ")));
            }
            dump.trim_end().to_owned()
        }
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn native_text(native: &Native) -> String {
    match native {
        Native::Lambda(event) => pretty(event),
        Native::Http(request) => {
            let mut text = format!("{} {} HTTP/1.1\n", request.method, request.path_and_query);
            for (name, value) in &request.headers {
                text.push_str(&format!("{name}: {value}\n"));
            }
            let body = body_text(header(&request.headers, "content-type"), &request.body);
            if !body.is_empty() {
                text.push('\n');
                text.push_str(&body);
            }
            text.trim_end().to_owned()
        }
    }
}

fn answer_text(answer: &Answer) -> String {
    match answer {
        Answer::Lambda(value) => pretty(value),
        Answer::Http {
            status,
            headers,
            body,
        } => {
            let reason = http::StatusCode::from_u16(*status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("");
            let mut text = format!("HTTP/1.1 {status} {reason}\n");
            for (name, value) in headers {
                text.push_str(&format!("{name}: {value}\n"));
            }
            let body = body_text(header(headers, "content-type"), body);
            if !body.is_empty() {
                text.push('\n');
                text.push_str(&body);
            }
            text.trim_end().to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every sample of every kind, on every cloud, reaches its function through the
    /// real adapter, normalised as nube promises.
    #[tokio::test]
    async fn every_sample_decodes_on_every_cloud() {
        for provider in Provider::ALL {
            for kind in Kind::ALL {
                let shown = show(provider, kind)
                    .await
                    .unwrap_or_else(|e| panic!("{provider:?} {kind:?}: {e}"));
                let got = &shown.received;
                match kind {
                    Kind::Http => {
                        assert_eq!(got["method"], "POST", "{provider:?}");
                        let path = got["uri"]
                            .as_str()
                            .and_then(|u| u.parse::<http::Uri>().ok())
                            .map(|u| u.path().to_owned());
                        assert_eq!(path.as_deref(), Some("/orders/42"), "{provider:?}: {got}");
                        assert_eq!(got["body"], r#"{"title":"Buy oat milk"}"#, "{provider:?}");
                    }
                    Kind::Timer => {
                        assert_eq!(got["event"]["schedule"], "0 2 * * *", "{provider:?}: {got}");
                        assert_eq!(got["context"]["functionName"], "nightly");
                    }
                    Kind::Blob => {
                        assert_eq!(got["event"]["bucket"], "uploads", "{provider:?}: {got}");
                        assert_eq!(
                            got["event"]["key"], "original/red flower.png",
                            "{provider:?}: {got}"
                        );
                        assert_eq!(got["event"]["size"], 70, "{provider:?}: {got}");
                    }
                    Kind::Document => {
                        assert_eq!(got["event"]["collection"], "orders", "{provider:?}: {got}");
                        assert_eq!(got["event"]["id"], "o-1001", "{provider:?}: {got}");
                        assert_eq!(
                            got["event"]["document"]["customer"], "Ada",
                            "{provider:?}: {got}"
                        );
                        assert_eq!(
                            got["event"]["document"]["items"][0]["quantity"], 2,
                            "{provider:?}: {got}"
                        );
                        assert_eq!(
                            got["event"]["document"]["total"], 23.5,
                            "{provider:?}: {got}"
                        );
                    }
                }
                if kind != Kind::Http {
                    assert_eq!(got["context"]["provider"], provider.as_str(), "{got}");
                }
                let page = render(&shown, Format::Markdown);
                assert!(page.contains(&shown.sample.title), "{page}");
            }
        }
    }

    #[test]
    fn unknown_names_list_what_exists() {
        assert_eq!(
            parse_kind("queue").unwrap_err(),
            "unknown trigger \"queue\" (there is: http, timer, blob, document)"
        );
        assert_eq!(
            parse_provider("oracle").unwrap_err(),
            "unknown provider \"oracle\" (there is: aws, azure, gcp)"
        );
        assert_eq!(parse_kind("Blob").unwrap(), Kind::Blob);
    }

    #[test]
    fn binary_bodies_show_as_hex() {
        let text = body_text(Some("application/protobuf"), &[0x0a, 0x02, b'h', b'i', 0]);
        assert_eq!(
            text,
            "<5 bytes of application/protobuf>\n0a 02 68 69 00                                    ..hi."
        );
    }
}
