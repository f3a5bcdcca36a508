//! Logs as JSON lines on stdout, the structured form Cloud Logging reads from Cloud
//! Run and Cloud Functions:
//!
//! ```json
//! {"severity":"INFO","message":"invocation succeeded","time":"2024-05-01T10:00:00.123Z",
//!  "logging.googleapis.com/trace":"projects/my-project/traces/4bf92f3577b34da6a3ce929d0e0e4736",
//!  "logging.googleapis.com/spanId":"00f067aa0ba902b7",
//!  "logging.googleapis.com/sourceLocation":{"file":"core/src/invoke.rs","line":"95"},
//!  "logging.googleapis.com/labels":{"k_service":"orders","k_revision":"orders-00002-abc"},
//!  "target":"nube::invoke","function":"nightly","invocation_id":"...","event_id":"..."}
//! ```
//!
//! `severity` is the level (`ERROR`, `WARNING`, `INFO`, `DEBUG`; trace is `DEBUG`).
//! The trace fields come from the invocation's span: the server reads a request's trace
//! ([`trace_of`]: `traceparent`, else `X-Cloud-Trace-Context`; Cloud Run adds one to
//! every request) into its `nube::Context` (`nube::TraceContext`), so every line of a
//! request joins its trace in Cloud Trace; the project is `GOOGLE_CLOUD_PROJECT`
//! (the bare trace id without it). `K_SERVICE` and `K_REVISION` go in the labels.
//! The fields of every enclosing span and of the event are flattened into the
//! object. `RUST_LOG` filters (default `info`). [`log_panics`] sends panic messages
//! the same way.

use nube::TraceContext;
use nube::logging::LogFilter;
use nube::logging::{FieldsAsJson, JsonSpanFields};
use serde_json::{Map, Value};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// The span field holding the trace (`projects/<p>/traces/<id>`), as Cloud Logging
/// names it.
pub const TRACE_FIELD: &str = "logging.googleapis.com/trace";

/// The span field holding the span id.
pub const SPAN_ID_FIELD: &str = "logging.googleapis.com/spanId";

/// The span field saying whether the trace is sampled.
pub const TRACE_SAMPLED_FIELD: &str = "logging.googleapis.com/trace_sampled";

/// The value of [`TRACE_FIELD`] for `trace_id`: `projects/<project>/traces/<id>`, or the
/// bare id when the project is not known.
pub fn trace_resource(trace_id: &str, project: Option<&str>) -> String {
    match project.filter(|p| !p.is_empty()) {
        Some(p) => format!("projects/{p}/traces/{trace_id}"),
        None => trace_id.to_owned(),
    }
}

/// The trace of a request: W3C `traceparent` (`00-<trace>-<span>-<flags>`), else
/// `X-Cloud-Trace-Context` (`<trace>/<span>;o=<0|1>`). The span id is 16 hex digits
/// either way: as sent in `traceparent`, converted from `X-Cloud-Trace-Context`'s
/// decimal (what Cloud Logging's `spanId` expects).
pub fn trace_of(headers: &http::HeaderMap) -> Option<TraceContext> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    trace_from(header(TRACEPARENT), header(CLOUD_TRACE))
}

/// The W3C trace context header.
pub(crate) const TRACEPARENT: &str = "traceparent";
/// Cloud Trace's own header.
pub(crate) const CLOUD_TRACE: &str = "x-cloud-trace-context";

/// [`trace_of`], from the two headers' values.
pub(crate) fn trace_from(traceparent: Option<&str>, cloud: Option<&str>) -> Option<TraceContext> {
    if let Some(tp) = traceparent {
        let parts: Vec<&str> = tp.trim().split('-').collect();
        if parts.len() >= 4
            && parts[1].len() == 32
            && parts[1].bytes().all(|b| b.is_ascii_hexdigit())
            && parts[1].bytes().any(|b| b != b'0')
        {
            return Some(TraceContext {
                trace_id: parts[1].to_ascii_lowercase(),
                span_id: Some(parts[2].to_ascii_lowercase()).filter(|s| s.len() == 16),
                sampled: u8::from_str_radix(parts[3], 16).is_ok_and(|f| f & 1 == 1),
            });
        }
    }
    let cloud = cloud?;
    let (ids, options) = cloud.split_once(';').unwrap_or((cloud, ""));
    let (trace_id, span_id) = ids.split_once('/').unwrap_or((ids, ""));
    let trace_id = trace_id.trim();
    if trace_id.is_empty() || !trace_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(TraceContext {
        trace_id: trace_id.to_ascii_lowercase(),
        // Sent as a decimal number; Cloud Logging and W3C write the 8 bytes as 16 hex digits.
        span_id: span_id
            .trim()
            .parse::<u64>()
            .ok()
            .map(|id| format!("{id:016x}")),
        sampled: options.trim() == "o=1",
    })
}

/// The Cloud Logging severity of a tracing level.
pub fn severity(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        _ => "DEBUG",
    }
}

/// The event format: one Cloud Logging JSON object per line. Use it with
/// [`JsonSpanFields`] as the field formatter (as [`init`] does).
#[derive(Debug, Clone, Default)]
pub struct CloudLoggingJson {
    labels: Map<String, Value>,
    project: Option<String>,
}

impl CloudLoggingJson {
    /// A format adding `labels` to every line as `logging.googleapis.com/labels`
    /// (none when empty).
    pub fn with_labels<'a>(labels: impl IntoIterator<Item = (&'a str, String)>) -> Self {
        Self {
            labels: labels
                .into_iter()
                .map(|(k, v)| (k.to_owned(), Value::from(v)))
                .collect(),
            project: None,
        }
    }

    /// The project trace ids belong to ([`trace_resource`]).
    pub fn with_project(mut self, project: Option<String>) -> Self {
        self.project = project.filter(|p| !p.is_empty());
        self
    }

    /// The labels of a Cloud Run revision (`k_service` and `k_revision` from
    /// `K_SERVICE` and `K_REVISION`, when set) and the project of
    /// [`crate::server::Config`].
    pub fn from_env() -> Self {
        let project = crate::server::Config::from_env()
            .ok()
            .and_then(|c| c.project);
        Self::with_labels(
            [("k_service", "K_SERVICE"), ("k_revision", "K_REVISION")]
                .into_iter()
                .filter_map(|(label, var)| {
                    std::env::var(var)
                        .ok()
                        .filter(|v| !v.is_empty())
                        .map(|v| (label, v))
                }),
        )
        .with_project(project)
    }
}

impl<S> FormatEvent<S, JsonSpanFields> for CloudLoggingJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonSpanFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert("severity".into(), Value::from(severity(meta.level())));
        let mut fields = JsonSpanFields::in_scope(ctx);
        event.record(&mut FieldsAsJson(&mut fields));
        line.insert(
            "message".into(),
            fields.remove("message").unwrap_or_else(|| Value::from("")),
        );
        line.insert(
            "time".into(),
            Value::from(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        );
        for name in [TRACE_FIELD, SPAN_ID_FIELD, TRACE_SAMPLED_FIELD] {
            if let Some(v) = fields.remove(name) {
                line.insert(name.into(), v);
            }
        }
        // The trace of nube's invocation span (`nube::TraceContext`), in Cloud
        // Logging's names.
        if let Some(Value::String(id)) = fields.remove("trace.id") {
            line.entry(TRACE_FIELD)
                .or_insert_with(|| Value::from(trace_resource(&id, self.project.as_deref())));
        }
        for (ours, theirs) in [
            ("trace.span_id", SPAN_ID_FIELD),
            ("trace.sampled", TRACE_SAMPLED_FIELD),
        ] {
            if let Some(v) = fields.remove(ours) {
                line.entry(theirs).or_insert(v);
            }
        }
        if let (Some(file), Some(l)) = (meta.file(), meta.line()) {
            line.insert(
                "logging.googleapis.com/sourceLocation".into(),
                serde_json::json!({"file": file, "line": l.to_string()}),
            );
        }
        if !self.labels.is_empty() {
            line.insert(
                "logging.googleapis.com/labels".into(),
                Value::Object(self.labels.clone()),
            );
        }
        line.insert("target".into(), Value::from(meta.target()));
        for (k, v) in fields {
            line.entry(k).or_insert(v);
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// The filter: `RUST_LOG`, else `info`.
pub fn filter() -> LogFilter {
    LogFilter::from_env_or("info")
}

pub use nube::logging::log_panics;

/// Installs the JSON-lines subscriber on stdout; does nothing if one is installed.
pub fn init() {
    let _ = tracing_subscriber::registry()
        .with(filter())
        .with(
            tracing_subscriber::fmt::layer()
                .fmt_fields(JsonSpanFields)
                .event_format(CloudLoggingJson::from_env())
                .with_writer(std::io::stdout),
        )
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use nube::testing::LogBuffer;

    #[test]
    fn traces_from_either_header() {
        let mut h = http::HeaderMap::new();
        h.insert(
            "x-cloud-trace-context",
            "105445aa7843bc8bf206b12000100000/1;o=1".parse().unwrap(),
        );
        let t = trace_of(&h).unwrap();
        assert_eq!(t.trace_id, "105445aa7843bc8bf206b12000100000");
        assert_eq!(t.span_id.as_deref(), Some("0000000000000001"));
        assert!(t.sampled);
        h.insert(
            "x-cloud-trace-context",
            "105445aa7843bc8bf206b12000100000/18446744073709551615"
                .parse()
                .unwrap(),
        );
        let t = trace_of(&h).unwrap();
        assert_eq!(t.span_id.as_deref(), Some("ffffffffffffffff"));
        assert!(!t.sampled);
        h.insert(
            "x-cloud-trace-context",
            "105445aa7843bc8bf206b12000100000/not-a-number;o=1"
                .parse()
                .unwrap(),
        );
        assert_eq!(trace_of(&h).unwrap().span_id, None);
        assert_eq!(
            trace_resource(&t.trace_id, Some("p")),
            "projects/p/traces/105445aa7843bc8bf206b12000100000"
        );
        assert_eq!(
            trace_resource(&t.trace_id, None),
            "105445aa7843bc8bf206b12000100000"
        );
        h.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
                .parse()
                .unwrap(),
        );
        let t = trace_of(&h).unwrap();
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.span_id.as_deref(), Some("00f067aa0ba902b7"));
        assert!(!t.sampled);
        assert_eq!(trace_of(&http::HeaderMap::new()), None);
    }

    #[test]
    fn lines_have_severity_message_trace_and_labels() {
        let buffer = LogBuffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(JsonSpanFields)
            .event_format(CloudLoggingJson::with_labels([(
                "k_service",
                "svc".to_owned(),
            )]))
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "request",
                "logging.googleapis.com/trace" = "projects/p/traces/abc",
            );
            let _g = span.enter();
            let inner = tracing::info_span!("invocation", function = "f", invocation_id = "i-1");
            let _g2 = inner.enter();
            tracing::warn!(count = 3, "hello");
            drop(_g2);
            drop(_g);
            tracing::error!("alone");
        });
        let text = buffer.text();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["severity"], "WARNING");
        assert_eq!(lines[0]["message"], "hello");
        assert_eq!(lines[0][TRACE_FIELD], "projects/p/traces/abc");
        assert_eq!(lines[0]["function"], "f");
        assert_eq!(lines[0]["count"], 3);
        assert_eq!(
            lines[0]["logging.googleapis.com/labels"]["k_service"],
            "svc"
        );
        assert_eq!(lines[1]["severity"], "ERROR");
        assert!(lines[1].get(TRACE_FIELD).is_none());
    }
}
