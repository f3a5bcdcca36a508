//! Native payloads: what each cloud sends a function's process for each trigger kind,
//! fitted to one function of an app's manifest (its route, schedule, bucket and
//! prefix, collection). `cargo xtask events` shows them beside the nube event they
//! decode to; `cargo xtask invoke --sample` sends them to a running function.

use std::collections::BTreeMap;

use nube::manifest::Manifest;
use serde_json::Value;

/// A cloud whose native payloads nube decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
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
    let _ = (provider, manifest, function, env);
    Err("samples are being written".into())
}
