//! [`LogFilter`]: which log lines a runtime writes, from `RUST_LOG`.

use tracing::span;
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// A runtime's log filter (a [`Layer`]): `RUST_LOG`'s directives, or a default such as
/// `info`.
///
/// **Invocation spans always pass.** The span every invocation runs in (`invocation`,
/// target `nube::context`, at `info`) is kept whatever the directives say, so that a
/// line a handler writes under `RUST_LOG=warn` still carries its function and
/// invocation id, and the runtimes that return an invocation's lines to the platform
/// (Azure's `Logs`) still find them. A runtime keeps a span of its own the same way
/// with [`LogFilter::with_target`].
///
/// Directives that only name targets and levels (`info`, `nube=debug,hyper=warn`) are
/// filtered by [`Targets`], which decides once per call site. Directives on spans or
/// fields (`[invocation{function=todos}]=debug`) need an [`EnvFilter`], which looks
/// up every span as it is entered, left and closed, behind a lock all threads share:
/// on a busy server that lock costs more than the rest of the filtering.
///
/// ```
/// use nube::logging::LogFilter;
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let subscriber = tracing_subscriber::registry()
///     .with(LogFilter::from_env_or("info"))
///     .with(tracing_subscriber::fmt::layer());
/// # let _ = subscriber;
/// ```
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per process
pub enum LogFilter {
    /// Target and level directives only.
    Targets(Targets),
    /// Directives on spans or fields.
    Env(EnvFilter),
}

impl LogFilter {
    /// The filter `RUST_LOG` sets; `default` when it is unset or not valid.
    pub fn from_env_or(default: &str) -> Self {
        std::env::var("RUST_LOG")
            .ok()
            .and_then(|directives| Self::parse(&directives))
            .unwrap_or_else(|| Self::new(default))
    }

    /// The filter for `directives` (`RUST_LOG`'s syntax); what is not valid in them
    /// is left out.
    pub fn new(directives: &str) -> Self {
        Self::parse(directives).unwrap_or_else(|| Self::Env(EnvFilter::new(directives)))
    }

    /// The filter, with `target`'s spans and events kept at `level` and below whatever
    /// the directives say of it (the AWS runtime keeps lambda_runtime's invocation span
    /// so, for the `requestId` it carries).
    pub fn with_target(self, target: &str, level: LevelFilter) -> Self {
        match self {
            Self::Targets(f) => Self::Targets(f.with_target(target, level)),
            Self::Env(f) => Self::Env(
                f.add_directive(
                    format!("{target}={level}")
                        .parse()
                        .expect("a target and a level make a directive"),
                ),
            ),
        }
    }

    fn parse(directives: &str) -> Option<Self> {
        // Span and field directives are the ones in brackets; `Targets` would take
        // them as (odd) target names.
        if !directives.contains('[')
            && let Ok(targets) = directives.parse::<Targets>()
        {
            return Some(Self::Targets(targets));
        }
        EnvFilter::try_new(directives).ok().map(Self::Env)
    }
}

impl<S> Layer<S> for LogFilter
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        // The inner filter sees every call site first: an `EnvFilter` learns here the
        // spans its directives name (`[invocation]=debug` among them).
        let interest = match self {
            Self::Targets(f) => Layer::<S>::register_callsite(f, metadata),
            Self::Env(f) => Layer::<S>::register_callsite(f, metadata),
        };
        if is_invocation_span(metadata) {
            Interest::always()
        } else {
            interest
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        if is_invocation_span(metadata) {
            return true;
        }
        match self {
            Self::Targets(f) => Layer::<S>::enabled(f, metadata, ctx),
            Self::Env(f) => Layer::<S>::enabled(f, metadata, ctx),
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        let hint = match self {
            Self::Targets(f) => Layer::<S>::max_level_hint(f),
            Self::Env(f) => Layer::<S>::max_level_hint(f),
        };
        // The invocation spans are `info`: below that, their macro would not even ask.
        hint.map(|h| h.max(LevelFilter::INFO))
    }

    fn event_enabled(&self, event: &Event<'_>, ctx: Context<'_, S>) -> bool {
        match self {
            Self::Targets(f) => Layer::<S>::event_enabled(f, event, ctx),
            Self::Env(f) => Layer::<S>::event_enabled(f, event, ctx),
        }
    }

    // Only an `EnvFilter` follows spans.
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        if let Self::Env(f) = self {
            f.on_new_span(attrs, id, ctx);
        }
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        if let Self::Env(f) = self {
            f.on_record(id, values, ctx);
        }
    }

    fn on_enter(&self, id: &span::Id, ctx: Context<'_, S>) {
        if let Self::Env(f) = self {
            f.on_enter(id, ctx);
        }
    }

    fn on_exit(&self, id: &span::Id, ctx: Context<'_, S>) {
        if let Self::Env(f) = self {
            f.on_exit(id, ctx);
        }
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        if let Self::Env(f) = self {
            f.on_close(id, ctx);
        }
    }
}

/// The span [`crate::Context`] runs an invocation in.
fn is_invocation_span(metadata: &Metadata<'_>) -> bool {
    metadata.is_span()
        && metadata.target() == crate::context::INVOCATION_TARGET
        && metadata.name() == crate::context::INVOCATION_SPAN
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::LogBuffer;
    use tracing_subscriber::layer::SubscriberExt;

    /// The text lines `log` writes under `filter`, inside an invocation span made as
    /// `Context` makes it.
    fn lines_of(filter: LogFilter, log: impl FnOnce()) -> String {
        let lines = LogBuffer::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::registry().with(filter).with(
            tracing_subscriber::fmt::layer()
                .without_time()
                .with_ansi(false)
                .with_writer(move || writer.clone()),
        );
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(target: crate::context::INVOCATION_TARGET, crate::context::INVOCATION_SPAN, function = "todos");
            span.in_scope(log);
        });
        lines.text()
    }

    fn lines_with(filter: LogFilter) -> String {
        lines_of(filter, || {
            tracing::debug!(target: "nube::store", "store debug");
            tracing::debug!(target: "other", "other debug");
            tracing::info!(target: "other", "other info");
        })
    }

    #[test]
    fn target_directives_filter_without_following_spans() {
        let filter = LogFilter::new("info,nube=debug");
        assert!(matches!(filter, LogFilter::Targets(_)));
        let out = lines_with(filter);
        assert!(out.contains("store debug"), "{out}");
        assert!(!out.contains("other debug"), "{out}");
        assert!(out.contains("other info"), "{out}");
    }

    #[test]
    fn span_directives_need_an_env_filter() {
        let filter = LogFilter::new("info,[invocation]=debug");
        assert!(matches!(filter, LogFilter::Env(_)));
        let out = lines_with(filter);
        // Inside the span named by the directive, debug lines of every target pass.
        assert!(out.contains("other debug"), "{out}");
        assert!(out.contains("store debug"), "{out}");
    }

    /// Under `warn`, a handler's warning still names its invocation; other `info` spans
    /// stay off.
    #[test]
    fn invocation_spans_pass_any_directives() {
        for directives in ["warn", "warn,[other]=debug"] {
            let out = lines_of(LogFilter::new(directives), || {
                let other = tracing::info_span!("helper", step = 2);
                let _inner = other.enter();
                tracing::warn!(target: "app", "handler warning");
                tracing::info!(target: "app", "handler info");
            });
            assert!(
                out.contains("invocation{function=\"todos\"}") && out.contains("handler warning"),
                "{directives}: {out}"
            );
            assert!(
                !out.contains("helper") && !out.contains("handler info"),
                "{directives}: {out}"
            );
        }
    }

    #[test]
    fn directives_that_do_not_parse_give_no_filter() {
        assert!(matches!(LogFilter::new("warn"), LogFilter::Targets(_)));
        assert!(LogFilter::parse("=[nonsense").is_none());
    }
}
