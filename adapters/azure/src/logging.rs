//! Logs: readable lines on stdout (the host collects a custom handler's output), and
//! the lines of each invocation captured for the `Logs` of its answer.
//!
//! [`CaptureLayer`] is a `tracing` layer: while a [`Capture`] for an invocation id is
//! open, every event inside a span whose `invocation_id` field has that id (the span
//! nube's `Context` opens) is recorded as one line (`INFO message key=value ...`), and
//! [`Capture::finish`] returns them. [`init`] installs both; `RUST_LOG` filters (`info`
//! unless set).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber, span};
use tracing_subscriber::layer::{Context as LayerContext, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// Most lines kept per invocation (the rest are counted, and still reach stdout).
pub const MAX_LINES: usize = 1000;

/// The open captures, by invocation id, in shards: concurrent invocations mostly take
/// different locks, each on its own cache line, rather than all one.
struct Buffers {
    shards: [Shard; SHARDS],
}

const SHARDS: usize = 16;

#[repr(align(64))]
#[derive(Default)]
struct Shard(Mutex<HashMap<Box<str>, Vec<String>>>);

impl Buffers {
    fn shard(&self, id: &str) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Vec<String>>> {
        // Ids are GUIDs: their last characters spread them well enough.
        let hash = id.bytes().rev().take(8).fold(0usize, |h, b| {
            h.wrapping_mul(31).wrapping_add(usize::from(b))
        });
        self.shards[hash % SHARDS]
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

fn buffers() -> &'static Buffers {
    static BUFFERS: OnceLock<Buffers> = OnceLock::new();
    BUFFERS.get_or_init(|| Buffers {
        shards: Default::default(),
    })
}

/// An open capture of the log lines of one invocation.
#[derive(Debug)]
pub struct Capture {
    id: Box<str>,
    open: bool,
}

impl Capture {
    /// Starts capturing the lines of invocation `id`.
    pub fn start(id: &str) -> Self {
        let id: Box<str> = id.into();
        buffers().shard(&id).insert(id.clone(), Vec::new());
        Self { id, open: true }
    }

    /// Adds a line of the runtime's own (the failure of the invocation, say).
    pub fn push(&self, line: impl Into<String>) {
        if let Some(lines) = buffers().shard(&self.id).get_mut(&self.id) {
            lines.push(line.into());
        }
    }

    /// Stops capturing and returns the lines.
    pub fn finish(mut self) -> Vec<String> {
        self.close().unwrap_or_default()
    }

    fn close(&mut self) -> Option<Vec<String>> {
        if !std::mem::take(&mut self.open) {
            return None;
        }
        buffers().shard(&self.id).remove(&self.id)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.close();
    }
}

/// The invocation id a span carries (its `invocation_id` field).
struct InvocationTag(String);

#[derive(Default)]
struct Line {
    invocation_id: Option<String>,
    message: String,
    fields: String,
}

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "invocation_id" => self.invocation_id = Some(value.to_owned()),
            "message" => self.message = value.to_owned(),
            name => {
                let _ = write!(self.fields, " {name}={value}");
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "invocation_id" => self.invocation_id = Some(format!("{value:?}")),
            "message" => self.message = format!("{value:?}"),
            name => {
                let _ = write!(self.fields, " {name}={value:?}");
            }
        }
    }
}

/// Reads a span's `invocation_id` field and nothing else.
struct TagOf(Option<String>);

impl Visit for TagOf {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "invocation_id" {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "invocation_id" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

/// The layer that feeds open [`Capture`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct CaptureLayer;

impl<S> Layer<S> for CaptureLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: LayerContext<'_, S>) {
        if attrs.metadata().fields().field("invocation_id").is_none() {
            return;
        }
        let mut tag = TagOf(None);
        attrs.record(&mut tag);
        if let (Some(tag), Some(span)) = (tag.0, ctx.span(id)) {
            span.extensions_mut().insert(InvocationTag(tag));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) {
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        let Some(tag) = scope
            .into_iter()
            .find_map(|s| s.extensions().get::<InvocationTag>().map(|t| t.0.clone()))
        else {
            return;
        };
        let mut map = buffers().shard(&tag);
        let Some(lines) = map.get_mut(tag.as_str()) else {
            return;
        };
        if lines.len() >= MAX_LINES {
            return;
        }
        let mut line = Line::default();
        event.record(&mut line);
        lines.push(format!(
            "{} {}{}",
            event.metadata().level(),
            line.message,
            line.fields
        ));
    }
}

/// Installs stdout lines and the [`CaptureLayer`]; does nothing if a subscriber is set.
pub fn init() {
    let filter = nube::logging::LogFilter::from_env_or("info");
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .fmt_fields(nube::logging::TextFields)
                .with_ansi(false)
                .with_writer(std::io::stdout),
        )
        .with(CaptureLayer)
        .try_init();
}

pub use nube::logging::log_panics;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_the_invocation_are_captured() {
        let subscriber = tracing_subscriber::registry().with(CaptureLayer);
        tracing::subscriber::with_default(subscriber, || {
            let capture = Capture::start("inv-capture-1");
            let span = tracing::info_span!("invocation", invocation_id = "inv-capture-1");
            span.in_scope(|| {
                let inner = tracing::info_span!("work");
                inner.in_scope(|| tracing::info!(count = 2, "hello"));
            });
            tracing::info!("outside");
            let other = tracing::info_span!("invocation", invocation_id = "someone-else");
            other.in_scope(|| tracing::warn!("not mine"));
            capture.push("runtime line");
            let lines = capture.finish();
            assert_eq!(lines, vec!["INFO hello count=2", "runtime line"]);
        });
    }
}
