//! Native payloads: what each cloud sends a function's process for each trigger kind,
//! fitted to one function of an app's manifest (its route, schedule, bucket and
//! prefix, collection). `cargo xtask events` shows them beside the nube event they
//! decode to; `cargo xtask invoke --sample` sends them to a running function.

mod aws;
mod azure;
mod gcp;

use std::collections::BTreeMap;

use nube::manifest::{FunctionManifest, Manifest, TriggerManifest};
use serde_json::Value;

/// A cloud whose native payloads nube decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Provider {
    /// AWS Lambda.
    Aws,
    /// Azure Functions (custom handler).
    Azure,
    /// Google Cloud Run / Cloud Functions (gen2).
    Gcp,
}

impl Provider {
    /// Every provider, in the order the pages show them.
    pub const ALL: [Provider; 3] = [Provider::Aws, Provider::Azure, Provider::Gcp];

    /// The name `--provider` and `--target` take.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Aws => "aws",
            Provider::Azure => "azure",
            Provider::Gcp => "gcp",
        }
    }
}

/// A trigger kind, as `cargo xtask events` and `invoke --sample` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// An HTTP request to one of the function's routes.
    Http,
    /// A schedule firing.
    Timer,
    /// An object created in a bucket.
    Blob,
    /// A document created in a collection.
    Document,
}

impl Kind {
    /// Every kind, in the order the pages show them.
    pub const ALL: [Kind; 4] = [Kind::Http, Kind::Timer, Kind::Blob, Kind::Document];

    /// The name the command line takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Timer => "timer",
            Kind::Blob => "blob",
            Kind::Document => "document",
        }
    }
}

/// An HTTP request as it reaches the function's process.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path and query, as on the request line.
    pub path_and_query: String,
    /// The headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// What a cloud hands the function's process.
#[derive(Debug, Clone, PartialEq)]
pub enum Native {
    /// A Lambda event: the body the Runtime API's `/next` gives the bootstrap.
    Lambda(Value),
    /// An HTTP request to the function's process: the Functions host's invocation or
    /// forwarded request (Azure), the request Cloud Run delivers (Google Cloud).
    Http(HttpRequest),
}

/// One native payload and what it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// What sends it, in the cloud's words ("API Gateway HTTP API event, payload 2.0").
    pub title: String,
    /// The payload.
    pub native: Native,
}

/// The sample `provider` sends `function` of `manifest`, for the function's own
/// trigger. `env` is the environment the function's process runs with: physical
/// bucket and table names are read from it as the adapter reads them.
pub fn sample(
    provider: Provider,
    manifest: &Manifest,
    function: &str,
    env: &BTreeMap<String, String>,
) -> Result<Sample, String> {
    let f = find_function(manifest, function)?;
    let lookup = |var: &str| env.get(var).filter(|v| !v.is_empty()).cloned();
    Ok(match (&f.trigger, provider) {
        (TriggerManifest::Http { routes }, _) => {
            let route = routes
                .first()
                .ok_or_else(|| format!("HTTP function {function:?} declares no route"))?;
            let request = http_request(route);
            match provider {
                Provider::Aws => aws::http(&request, route),
                Provider::Azure => azure::http(request),
                Provider::Gcp => gcp::http(request),
            }
        }
        (TriggerManifest::Timer { .. }, Provider::Aws) => aws::timer(manifest, f),
        (TriggerManifest::Timer { schedule }, Provider::Azure) => azure::timer(f, schedule)?,
        (TriggerManifest::Timer { .. }, Provider::Gcp) => gcp::timer(manifest, f),
        (TriggerManifest::BlobCreated { bucket, prefix }, p) => {
            let object = Object::new(prefix);
            match p {
                Provider::Aws => {
                    let physical = lookup(&nube_aws::names::bucket_env_var(bucket))
                        .unwrap_or_else(|| bucket.clone());
                    aws::blob(&physical, &object)
                }
                Provider::Azure => {
                    let physical = lookup(&nube_azure::names::bucket_setting(bucket))
                        .unwrap_or_else(|| bucket.clone());
                    azure::blob(f, &physical, &object)?
                }
                Provider::Gcp => {
                    let physical = lookup(&nube_gcp::names::bucket_env_var(bucket))
                        .unwrap_or_else(|| bucket.clone());
                    gcp::blob(f, &physical, &object)
                }
            }
        }
        (TriggerManifest::DocumentCreated { collection }, p) => {
            let document = document();
            match p {
                Provider::Aws => {
                    let table = nube_aws::names::table_name(collection, lookup);
                    aws::document(&table, &document)
                }
                Provider::Azure => azure::document(f, &document)?,
                Provider::Gcp => {
                    let path = nube_gcp::names::collection_path(collection, lookup);
                    gcp::document(f, &path, &document)?
                }
            }
        }
    })
}

/// The function `name` of `manifest`, or a one-line error listing the functions.
pub fn find_function<'a>(
    manifest: &'a Manifest,
    name: &str,
) -> Result<&'a FunctionManifest, String> {
    manifest
        .functions
        .iter()
        .find(|f| f.name == name)
        .ok_or_else(|| {
            format!(
                "{} has no function {name:?} (there is: {})",
                manifest.app,
                manifest
                    .functions
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// The kind of a declared trigger.
pub fn kind_of(trigger: &TriggerManifest) -> Kind {
    match trigger {
        TriggerManifest::Http { .. } => Kind::Http,
        TriggerManifest::Timer { .. } => Kind::Timer,
        TriggerManifest::BlobCreated { .. } => Kind::Blob,
        TriggerManifest::DocumentCreated { .. } => Kind::Document,
    }
}

/// When every sample happened: fixed, so that pages made from them do not change.
const TIME: &str = "2026-11-23T02:00:00Z";
/// The same instant in milliseconds since the epoch.
const TIME_MS: i64 = 1_795_399_200_000;
/// The account, project and region every sample names.
const ACCOUNT: &str = "123456789012";
const REGION_AWS: &str = "eu-west-1";
const PROJECT: &str = "my-project";
const REGION_GCP: &str = "europe-west1";

/// The request a client makes to `route`: its parameters filled with examples, a JSON
/// body for methods that carry one.
fn http_request(route: &nube::http::Route) -> HttpRequest {
    let path = route
        .path
        .split('/')
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => example_parameter(name),
                None => segment.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/");
    let method = match route.method.as_str() {
        "ANY" => "GET".to_owned(),
        other => other.to_owned(),
    };
    let with_body = matches!(method.as_str(), "POST" | "PUT" | "PATCH");
    let body = if with_body {
        br#"{"title":"Buy oat milk"}"#.to_vec()
    } else {
        Vec::new()
    };
    let mut headers = vec![
        ("accept".to_owned(), "application/json".to_owned()),
        ("user-agent".to_owned(), "curl/8.5.0".to_owned()),
    ];
    if with_body {
        headers.push(("content-type".to_owned(), "application/json".to_owned()));
    }
    HttpRequest {
        method,
        path_and_query: path,
        headers,
        body,
    }
}

/// An example value of the path parameter `name`.
fn example_parameter(name: &str) -> String {
    match name.trim_end_matches('*') {
        "id" => "42".to_owned(),
        "name" | "key" | "file" => "photo.png".to_owned(),
        other => format!("example-{other}"),
    }
}

/// The object every blob sample reports: a 1×1 PNG.
struct Object {
    key: String,
    content: &'static [u8],
    size: u64,
    content_type: &'static str,
    md5_base64: &'static str,
    md5_hex: &'static str,
}

/// A 1×1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0x64, 0x60, 0xf8, 0x5f,
    0x0f, 0x00, 0x02, 0x87, 0x01, 0x80, 0xeb, 0x47, 0xba, 0x92, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

impl Object {
    fn new(prefix: &str) -> Self {
        Self {
            key: format!("{prefix}red flower.png"),
            content: PNG,
            size: PNG.len() as u64,
            content_type: "image/png",
            md5_base64: "s1ehnIdiTHxNExrutK5nfw==",
            md5_hex: "b357a19c87624c7c4d131aeeb4ae677f",
        }
    }
}

/// The document every document sample creates: `(id, fields)`.
fn document() -> (String, Value) {
    (
        "o-1001".to_owned(),
        serde_json::json!({
            "id": "o-1001",
            "customer": "Ada",
            "items": [{"sku": "margherita", "quantity": 2}],
            "total": 23.5,
            "paid": true,
            "note": null
        }),
    )
}

/// The version a nube document store writes on a create (the same in every sample).
const VERSION: &str = "019ab0c8-1a00-7000-8000-000000000001";

/// Percent-encodes `text` for a URL path segment or an S3 key in an event.
fn percent_encode(text: &str, space: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            b' ' => out.push_str(space),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}
