//! Logs: readable lines on stdout (the host collects a custom handler's output), and
//! the lines of each invocation captured for the `Logs` of its answer.
//!
//! [`CaptureLayer`] is a `tracing` layer: every event inside a span a [`Capture`] is
//! attached to (the span of the invocation's `Context`, or one around an HTTP
//! invocation's Router), or inside any of that span's children, is recorded as one line
//! (`INFO message key=value ...`), and [`Capture::finish`] returns them. [`init`]
//! installs both; `RUST_LOG` filters (`info` unless set).

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Registry;
use tracing_subscriber::layer::{Context as LayerContext, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// Most lines kept per invocation (the rest are counted, and still reach stdout).
pub const MAX_LINES: usize = 1000;

/// The lines of one invocation, shared by its [`Capture`] and the spans it is attached
/// to; `None` once the capture has finished: later events are not kept.
#[derive(Debug, Clone)]
struct Lines(Arc<Mutex<Option<Vec<String>>>>);

impl Default for Lines {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(Some(Vec::new()))))
    }
}

impl Lines {
    fn lock(&self) -> MutexGuard<'_, Option<Vec<String>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// An open capture of the log lines of one invocation.
#[derive(Debug, Default)]
pub struct Capture {
    lines: Lines,
}

impl Capture {
    /// Starts a capture; it records nothing until [attached](Self::attach) to a span.
    pub fn start() -> Self {
        Self::default()
    }

    /// Records the lines of the events inside `span` and its children from now on.
    ///
    /// Only spans of a subscriber built on `tracing_subscriber`'s `Registry` with a
    /// [`CaptureLayer`] capture anything; with any other subscriber (or a disabled span)
    /// this does nothing.
    pub fn attach(&self, span: &tracing::Span) {
        span.with_subscriber(|(id, dispatch)| {
            if let Some(span) = dispatch
                .downcast_ref::<Registry>()
                .and_then(|registry| registry.span(id))
            {
                span.extensions_mut().replace(self.lines.clone());
            }
        });
    }

    /// Adds a line of the runtime's own (the failure of the invocation, say).
    pub fn push(&self, line: impl Into<String>) {
        if let Some(lines) = &mut *self.lines.lock() {
            lines.push(line.into());
        }
    }

    /// Stops capturing and returns the lines.
    pub fn finish(self) -> Vec<String> {
        self.lines.lock().take().unwrap_or_default()
    }
}

#[derive(Default)]
struct Line {
    message: String,
    fields: String,
}

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_owned(),
            name => {
                let _ = write!(self.fields, " {name}={value}");
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            name => {
                let _ = write!(self.fields, " {name}={value:?}");
            }
        }
    }
}

/// The layer that feeds [`Capture`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct CaptureLayer;

impl<S> Layer<S> for CaptureLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) {
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        let Some(lines) = scope
            .into_iter()
            .find_map(|s| s.extensions().get::<Lines>().cloned())
        else {
            return;
        };
        let mut line = Line::default();
        event.record(&mut line);
        if let Some(lines) = &mut *lines.lock()
            && lines.len() < MAX_LINES
        {
            lines.push(format!(
                "{} {}{}",
                event.metadata().level(),
                line.message,
                line.fields
            ));
        }
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
    fn lines_inside_the_attached_span_are_captured() {
        let subscriber = tracing_subscriber::registry().with(CaptureLayer);
        tracing::subscriber::with_default(subscriber, || {
            let capture = Capture::start();
            let span = tracing::info_span!("invocation", invocation_id = "inv-capture-1");
            capture.attach(&span);
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

    #[test]
    fn a_capture_keeps_at_most_max_lines_and_nothing_once_finished() {
        let capture = Capture::start();
        let subscriber = tracing_subscriber::registry().with(CaptureLayer);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("invocation");
            capture.attach(&span);
            span.in_scope(|| {
                for n in 0..MAX_LINES + 5 {
                    tracing::info!(n, "line");
                }
            });
            let lines = Capture {
                lines: capture.lines.clone(),
            }
            .finish();
            assert_eq!(lines.len(), MAX_LINES);
            assert_eq!(lines[0], "INFO line n=0");
            span.in_scope(|| tracing::info!("after the answer"));
            capture.push("late");
        });
        assert_eq!(capture.lines.lock().as_ref(), None);
    }
}
