//! Logs: readable lines on stdout (the host collects a custom handler's output), and
//! the lines of each invocation captured for the `Logs` of its answer.
//!
//! [`CaptureLayer`] is a `tracing` layer: every event inside a span a [`Capture`] is
//! attached to, or inside any of that span's children, is recorded as one line
//! (`INFO message key=value ...`), and [`Capture::finish`] returns them. An event
//! invocation's capture is attached to its `Context`'s span; an HTTP invocation's
//! Router opens its span out of reach, so its capture waits for the span whose
//! `invocation_id` field is the invocation's ([`Capture::attach_by_id`]). [`init`]
//! installs both; `RUST_LOG` filters (`info` unless set).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber, span};
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

    /// Records the lines of the events inside the next span opened with an
    /// `invocation_id` field of `invocation_id` (and its children), until the returned
    /// guard is dropped: for a span made where [`attach`](Self::attach) cannot reach it.
    pub fn attach_by_id(&self, invocation_id: &str) -> AwaitingSpan {
        let id: Box<str> = invocation_id.into();
        let mut awaiting = awaiting();
        awaiting.insert(id.clone(), self.lines.clone());
        AWAITING.store(awaiting.len(), Ordering::Release);
        AwaitingSpan(id)
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

impl Drop for Capture {
    /// A capture dropped unfinished (its invocation cancelled) keeps nothing more.
    fn drop(&mut self) {
        self.lines.lock().take();
    }
}

/// How many captures wait for a span by invocation id: the layer looks at new spans'
/// fields only when some do.
static AWAITING: AtomicUsize = AtomicUsize::new(0);

/// The captures waiting for a span, by invocation id, locked.
fn awaiting() -> MutexGuard<'static, HashMap<Box<str>, Lines>> {
    static CAPTURES: std::sync::LazyLock<Mutex<HashMap<Box<str>, Lines>>> =
        std::sync::LazyLock::new(Mutex::default);
    CAPTURES.lock().unwrap_or_else(|p| p.into_inner())
}

/// A capture waiting for its span ([`Capture::attach_by_id`]); it stops waiting when
/// dropped.
#[derive(Debug)]
pub struct AwaitingSpan(Box<str>);

impl Drop for AwaitingSpan {
    fn drop(&mut self) {
        let mut awaiting = awaiting();
        awaiting.remove(&self.0);
        AWAITING.store(awaiting.len(), Ordering::Release);
    }
}

/// Reads a span's `invocation_id` field and nothing else.
struct InvocationIdOf(Option<String>);

impl Visit for InvocationIdOf {
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
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: LayerContext<'_, S>) {
        if AWAITING.load(Ordering::Acquire) == 0
            || attrs.metadata().fields().field("invocation_id").is_none()
        {
            return;
        }
        let mut invocation_id = InvocationIdOf(None);
        attrs.record(&mut invocation_id);
        let Some(invocation_id) = invocation_id.0 else {
            return;
        };
        let lines = awaiting().get(invocation_id.as_str()).cloned();
        if let (Some(lines), Some(span)) = (lines, ctx.span(id)) {
            span.extensions_mut().replace(lines);
        }
    }

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
        if lines.lock().as_ref().is_none_or(|l| l.len() >= MAX_LINES) {
            return;
        }
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

    /// `RUST_LOG=warn` leaves the invocation spans on, so a handler's warning is
    /// still captured for `Logs`.
    #[test]
    fn a_warn_filter_still_captures_warnings() {
        let subscriber = tracing_subscriber::registry()
            .with(nube::logging::LogFilter::new("warn"))
            .with(CaptureLayer);
        tracing::subscriber::with_default(subscriber, || {
            let capture = Capture::start();
            let span = tracing::info_span!(target: "nube::context", "invocation", invocation_id = "inv-warn-1");
            capture.attach(&span);
            span.in_scope(|| {
                tracing::info!("filtered out");
                tracing::warn!("kept");
            });
            assert_eq!(capture.finish(), vec!["WARN kept"]);
        });
    }

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
    fn a_capture_by_id_takes_the_span_with_that_invocation_id_while_it_waits() {
        // As `RUST_LOG` may have it: only the invocation's span is on below `warn`.
        let subscriber = tracing_subscriber::registry()
            .with(nube::logging::LogFilter::new("warn,[invocation]=info"))
            .with(CaptureLayer);
        tracing::subscriber::with_default(subscriber, || {
            let capture = Capture::start();
            let waiting = capture.attach_by_id("inv-http-1");
            let other = tracing::info_span!("invocation", invocation_id = "inv-http-2");
            other.in_scope(|| tracing::info!("not mine"));
            let span = tracing::info_span!("invocation", invocation_id = "inv-http-1");
            span.in_scope(|| {
                tracing::info!(path = "/echo", "echo called");
                tracing::info_span!("work").in_scope(|| tracing::warn!("inner"));
            });
            drop(waiting);
            let later = tracing::info_span!("invocation", invocation_id = "inv-http-1");
            later.in_scope(|| tracing::info!("after it stopped waiting"));
            assert_eq!(
                capture.finish(),
                vec!["INFO echo called path=/echo", "WARN inner"]
            );
        });
        assert_eq!(AWAITING.load(Ordering::Acquire), 0);
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
