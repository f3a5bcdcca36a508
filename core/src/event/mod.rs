//! The normalised events event functions receive, one module per trigger.
//!
//! Every event has an `event_id` that stays the same when the provider delivers it
//! again (use it to make handlers idempotent) and keeps the provider's original
//! payload in [`RawEvent`].

mod blob;
mod document;
mod timer;

use serde::{Deserialize, Serialize};

pub use blob::BlobCreated;
pub use document::DocumentCreated;
pub use timer::TimerTick;

/// Where a function runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// The local runtime (`nube-local`).
    Local,
    /// AWS Lambda.
    Aws,
    /// Azure Functions.
    Azure,
    /// Google Cloud Run / Cloud Functions.
    Gcp,
    /// The test harness (`nube::testing`).
    Test,
}

impl Provider {
    /// The lowercase name (`aws`, `azure`, `gcp`, `local`, `test`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Aws => "aws",
            Self::Azure => "azure",
            Self::Gcp => "gcp",
            Self::Test => "test",
        }
    }

    /// Whether the platform itself records every request and invocation (Lambda's
    /// `START`/`REPORT` lines, the Functions host's `Executed` lines, Cloud Run's
    /// request logs). There, nube logs a served HTTP request or a successful
    /// invocation at `debug` rather than `info`, so it costs no extra log line (and no
    /// extra log ingestion) unless asked for (`RUST_LOG=nube=debug`); failures are
    /// logged at `error` everywhere.
    pub fn logs_requests(self) -> bool {
        matches!(self, Self::Aws | Self::Azure | Self::Gcp)
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The provider's payload an event was decoded from, as it arrived. Binary
/// payloads (protobuf) are kept as `{"contentType": ..., "base64": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawEvent {
    /// Who sent it.
    pub provider: Provider,
    /// The payload.
    pub payload: serde_json::Value,
}

impl RawEvent {
    /// A payload from `provider`.
    pub fn new(provider: Provider, payload: serde_json::Value) -> Self {
        Self { provider, payload }
    }
}

/// Any event, untyped: what runtimes queue, store and dispatch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "trigger", rename_all = "camelCase")]
pub enum Event {
    /// A timer fired.
    Timer(TimerTick),
    /// A blob was created.
    BlobCreated(BlobCreated),
    /// A document was created (its value as JSON).
    DocumentCreated(DocumentCreated<serde_json::Value>),
}

impl Event {
    /// The event's id, stable across redelivery.
    pub fn event_id(&self) -> &str {
        match self {
            Self::Timer(e) => &e.event_id,
            Self::BlobCreated(e) => &e.event_id,
            Self::DocumentCreated(e) => &e.event_id,
        }
    }

    /// The trigger kind this event belongs to.
    pub fn kind(&self) -> crate::app::TriggerKind {
        match self {
            Self::Timer(_) => crate::app::TriggerKind::Timer,
            Self::BlobCreated(_) => crate::app::TriggerKind::BlobCreated,
            Self::DocumentCreated(_) => crate::app::TriggerKind::DocumentCreated,
        }
    }
}
