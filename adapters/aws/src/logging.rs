//! Logs as JSON lines on stdout, one object per event, the shape CloudWatch Logs
//! Insights reads without parsing rules:
//!
//! ```json
//! {"timestamp":"2024-05-01T10:00:00.123Z","level":"INFO","target":"nube::invoke",
//!  "message":"invocation succeeded","requestId":"8f5c...","function":"nightly",
//!  "invocation_id":"8f5c...","event_id":"...","elapsed_ms":3.2}
//! ```
//!
//! `requestId` is the Lambda request id (from lambda_runtime's invocation span, or
//! nube's invocation id); the fields of every enclosing span and of the event are
//! flattened into the object. `RUST_LOG` filters as usual; without it Lambda's
//! `AWS_LAMBDA_LOG_LEVEL` (advanced logging controls) applies, else `info`.
//! [`log_panics`] sends panic messages the same way.

use nube::logging::LogFilter;
use nube::logging::{FieldsAsJson, JsonSpanFields};
use serde_json::{Map, Value};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// The event format: one JSON object per line with `requestId` at the top level.
/// Use it with [`JsonSpanFields`] as the field formatter (as [`init`] does).
#[derive(Debug, Clone, Copy, Default)]
pub struct LambdaJson;

impl<S> FormatEvent<S, JsonSpanFields> for LambdaJson
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
        line.insert(
            "timestamp".into(),
            Value::from(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        );
        line.insert("level".into(), Value::from(meta.level().as_str()));
        line.insert("target".into(), Value::from(meta.target()));
        let mut fields = JsonSpanFields::in_scope(ctx);
        event.record(&mut FieldsAsJson(&mut fields));
        if let Some(message) = fields.remove("message") {
            line.insert("message".into(), message);
        }
        let request_id = fields
            .remove("requestId")
            .or_else(|| fields.get("invocation_id").cloned());
        if let Some(id) = request_id {
            line.insert("requestId".into(), id);
        }
        for (k, v) in fields {
            line.entry(k).or_insert(v);
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// The filter: `RUST_LOG`, else `AWS_LAMBDA_LOG_LEVEL`, else `info`.
pub fn filter() -> LogFilter {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .map(|l| match l.to_ascii_uppercase().as_str() {
            "TRACE" => "trace",
            "DEBUG" => "debug",
            "WARN" => "warn",
            "ERROR" | "FATAL" => "error",
            _ => "info",
        })
        .unwrap_or("info");
    keeping_request_id(LogFilter::from_env_or(level))
}

/// `filter` keeping lambda_runtime's span around each invocation at any level: it
/// carries the `requestId`, also of the lines an adapter writes outside nube's span.
fn keeping_request_id(filter: LogFilter) -> LogFilter {
    filter.with_target("lambda_runtime::layers::trace", LevelFilter::INFO)
}

pub use nube::logging::log_panics;

/// Installs the JSON-lines subscriber on stdout; does nothing if one is installed.
pub fn init() {
    let _ = tracing_subscriber::registry()
        .with(filter())
        .with(
            tracing_subscriber::fmt::layer()
                .fmt_fields(JsonSpanFields)
                .event_format(LambdaJson)
                .with_writer(std::io::stdout),
        )
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use nube::testing::LogBuffer;

    #[test]
    fn lines_carry_the_request_id() {
        let buffer = LogBuffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(JsonSpanFields)
            .event_format(LambdaJson)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("Lambda runtime invoke", requestId = "req-1");
            let _g = span.enter();
            let inner = tracing::info_span!("invocation", function = "f", invocation_id = "req-1");
            let _g2 = inner.enter();
            tracing::info!(count = 3, "hello");
            drop(_g2);
            drop(_g);
            let alone = tracing::info_span!("invocation", invocation_id = "req-2");
            alone.in_scope(|| tracing::warn!("second"));
        });
        let text = buffer.text();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["requestId"], "req-1");
        assert_eq!(lines[0]["message"], "hello");
        assert_eq!(lines[0]["level"], "INFO");
        assert_eq!(lines[0]["function"], "f");
        assert_eq!(lines[0]["count"], 3);
        assert_eq!(lines[1]["requestId"], "req-2");
        assert_eq!(lines[1]["level"], "WARN");
    }

    /// Under `AWS_LAMBDA_LOG_LEVEL=WARN`, an error the adapter logs outside nube's
    /// span still carries lambda_runtime's `requestId`.
    #[test]
    fn a_warn_level_keeps_the_request_id() {
        let buffer = LogBuffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::registry()
            .with(keeping_request_id(LogFilter::new("warn")))
            .with(
                tracing_subscriber::fmt::layer()
                    .fmt_fields(JsonSpanFields)
                    .event_format(LambdaJson)
                    .with_writer(move || writer.clone()),
            );
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                target: "lambda_runtime::layers::trace",
                "Lambda runtime invoke",
                requestId = "req-9"
            );
            span.in_scope(|| {
                tracing::info!("dropped");
                tracing::error!("stream record failed");
            });
        });
        let text = buffer.text();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert_eq!(lines[0]["requestId"], "req-9", "{text}");
    }
}
