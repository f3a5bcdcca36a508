//! What runtimes' log formats share: [`FieldsAsJson`], a tracing field visitor that
//! puts an event's (or a span's) fields into a JSON object; (feature
//! `json-span-fields`) `JsonSpanFields`, which stores each span's fields as JSON for
//! `tracing_subscriber::fmt`, and `TextFields`, its field formatter for text lines;
//! `LogFilter`, the level filter the runtimes read from `RUST_LOG`; and [`log_panics`],
//! which sends panics through `tracing`.

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};

/// Records each visited field into the map as a JSON value: strings, integers, floats
/// and booleans as themselves, errors by their `Display`, anything else by its `Debug`.
/// An event formatter calls `event.record(&mut FieldsAsJson(&mut map))`.
pub struct FieldsAsJson<'a>(pub &'a mut Map<String, Value>);

impl Visit for FieldsAsJson<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().to_owned(), Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), Value::from(format!("{value:?}")));
    }
}

/// Whether the subscriber could take a debug line anywhere (its most verbose level):
/// the cheap check before entering a span to write one, where `enabled!` outside the
/// span would miss filters on the span's fields.
pub(crate) fn debug_possible() -> bool {
    tracing::level_filters::LevelFilter::current() >= tracing::level_filters::LevelFilter::DEBUG
}

/// Makes panics log one error event (the panic message, its location, and a
/// backtrace when `RUST_BACKTRACE` asks for one) through `tracing` instead of plain
/// text on stderr, so that a JSON log format writes it as one line carrying the fields
/// of the invocation that panicked.
pub fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let backtrace = std::backtrace::Backtrace::capture();
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = crate::panic_message(info.payload());
        if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
            tracing::error!(panic = message, location, backtrace = %backtrace, "panic");
        } else {
            tracing::error!(panic = message, location, "panic");
        }
    }));
}

#[cfg(feature = "json-span-fields")]
pub use span_fields::{JsonSpanFields, TextFields};

#[cfg(feature = "json-span-fields")]
mod filter;
#[cfg(feature = "json-span-fields")]
pub use filter::LogFilter;

#[cfg(feature = "json-span-fields")]
mod span_fields {
    use std::fmt::{self, Write};

    use serde_json::{Map, Value};
    use tracing::field::{Field, Visit};
    use tracing_subscriber::field::RecordFields;
    use tracing_subscriber::fmt::format::Writer;
    use tracing_subscriber::fmt::{FmtContext, FormatFields, FormattedFields};
    use tracing_subscriber::registry::LookupSpan;

    /// Span fields as one JSON object (`{"function":"todos","invocation_id":"…"}`),
    /// written straight into the span's buffer as they are visited: what
    /// `tracing_subscriber::fmt`'s `JsonFields` stores, without building a map of JSON
    /// values first, which is most of what a span costs under a JSON log format. Values
    /// are typed as in [`super::FieldsAsJson`]; a non-finite float is `null`. Fields
    /// recorded later (`span.record`) are appended to the object; an event formatter
    /// reads it back from `FormattedFields<JsonSpanFields>` with `serde_json`, where a
    /// field recorded twice keeps its last value.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct JsonSpanFields;

    impl JsonSpanFields {
        /// The fields of every span the event being formatted is in, outermost first
        /// (an inner span's field replaces an outer one's of the same name): where an
        /// event formatter starts its line.
        pub fn in_scope<S>(ctx: &FmtContext<'_, S, JsonSpanFields>) -> Map<String, Value>
        where
            S: tracing::Subscriber + for<'a> LookupSpan<'a>,
        {
            let mut fields = Map::new();
            for span in ctx.event_scope().into_iter().flat_map(|s| s.from_root()) {
                let extensions = span.extensions();
                if let Some(formatted) = extensions.get::<FormattedFields<JsonSpanFields>>()
                    && let Ok(Value::Object(span_fields)) =
                        serde_json::from_str::<Value>(&formatted.fields)
                {
                    fields.extend(span_fields);
                }
            }
            fields
        }
    }

    impl<'writer> FormatFields<'writer> for JsonSpanFields {
        fn format_fields<R: RecordFields>(
            &self,
            mut writer: Writer<'writer>,
            fields: R,
        ) -> fmt::Result {
            // Written into a buffer on the stack first, so that the span's `String`
            // is allocated once, at its size, rather than grown piece by piece.
            let mut object = StackBuffer::new();
            object.write_char('{')?;
            let mut members = Members::new(&mut object, true);
            fields.record(&mut members);
            members.0.result?;
            object.write_char('}')?;
            writer.write_str(object.as_str())
        }

        fn add_fields(
            &self,
            current: &'writer mut FormattedFields<Self>,
            fields: &tracing::span::Record<'_>,
        ) -> fmt::Result {
            if current.fields.is_empty() {
                return self.format_fields(current.as_writer(), fields);
            }
            current.fields.pop();
            let empty = current.fields.ends_with('{');
            let mut members = Members::new(&mut current.fields, empty);
            fields.record(&mut members);
            members.0.result?;
            current.fields.write_char('}')
        }
    }

    /// Fields as text, `name=value` separated by spaces, strings quoted and escaped as
    /// in JSON (`function="todos" attempt=1`), an event's `message` as it is: the
    /// layout of `tracing_subscriber::fmt`'s `DefaultFields`, written through one
    /// buffer rather than `Debug` formatting each value, which is most of what a span
    /// costs under a text log format. For `fmt().fmt_fields(TextFields)`.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct TextFields;

    impl<'writer> FormatFields<'writer> for TextFields {
        fn format_fields<R: RecordFields>(
            &self,
            mut writer: Writer<'writer>,
            fields: R,
        ) -> fmt::Result {
            let mut text = StackBuffer::new();
            let mut pairs = Pairs(Entries::new(&mut text, true));
            fields.record(&mut pairs);
            pairs.0.result?;
            writer.write_str(text.as_str())
        }

        fn add_fields(
            &self,
            current: &'writer mut FormattedFields<Self>,
            fields: &tracing::span::Record<'_>,
        ) -> fmt::Result {
            let first = current.fields.is_empty();
            let mut pairs = Pairs(Entries::new(&mut current.fields, first));
            fields.record(&mut pairs);
            pairs.0.result
        }
    }

    /// Where [`Members`] and [`Pairs`] write: the output, whether nothing has been
    /// written to it yet, and the first error (after which nothing more is written).
    struct Entries<'a, W: Write> {
        out: &'a mut W,
        first: bool,
        result: fmt::Result,
    }

    impl<'a, W: Write> Entries<'a, W> {
        fn new(out: &'a mut W, first: bool) -> Self {
            Self {
                out,
                first,
                result: Ok(()),
            }
        }

        /// Writes one entry: `separator` unless it is the first, then `entry`.
        fn entry(&mut self, separator: &str, entry: impl FnOnce(&mut W) -> fmt::Result) {
            if self.result.is_err() {
                return;
            }
            if !std::mem::take(&mut self.first) {
                self.result = self.out.write_str(separator);
            }
            if self.result.is_ok() {
                self.result = entry(&mut *self.out);
            }
        }
    }

    /// Writes each visited field as ` name=value` ([`TextFields`]).
    struct Pairs<'a, W: Write>(Entries<'a, W>);

    impl<W: Write> Pairs<'_, W> {
        fn pair(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
            self.0.entry(" ", |out| {
                if field.name() != "message" {
                    out.write_str(field.name())?;
                    out.write_str("=")?;
                }
                value(out)
            });
        }
    }

    impl<W: Write> Visit for Pairs<'_, W> {
        fn record_str(&mut self, field: &Field, value: &str) {
            if field.name() == "message" {
                return self.pair(field, |out| out.write_str(value));
            }
            self.pair(field, |out| {
                out.write_str("\"")?;
                Escaped(&mut *out).write_str(value)?;
                out.write_str("\"")
            });
        }
        fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
            self.pair(field, |out| write!(out, "{value}"));
        }
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            self.pair(field, |out| write!(out, "{value:?}"));
        }
    }

    /// Writes each visited field as a `"name":value` member of a JSON object.
    struct Members<'a, W: Write>(Entries<'a, W>);

    impl<'a, W: Write> Members<'a, W> {
        fn new(out: &'a mut W, first: bool) -> Self {
            Self(Entries::new(out, first))
        }

        fn member(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
            self.0.entry(",", |out| {
                out.write_str("\"")?;
                Escaped(&mut *out).write_str(field.name())?;
                out.write_str("\":")?;
                value(out)
            });
        }

        fn string(&mut self, field: &Field, value: impl fmt::Display) {
            self.member(field, |out| {
                out.write_char('"')?;
                write!(Escaped(&mut *out), "{value}")?;
                out.write_char('"')
            });
        }
    }

    impl<W: Write> Visit for Members<'_, W> {
        fn record_str(&mut self, field: &Field, value: &str) {
            // Not through `string`: `write!` costs more than the escaping.
            self.member(field, |out| {
                out.write_str("\"")?;
                Escaped(&mut *out).write_str(value)?;
                out.write_str("\"")
            });
        }
        fn record_i64(&mut self, field: &Field, value: i64) {
            self.member(field, |out| write!(out, "{value}"));
        }
        fn record_u64(&mut self, field: &Field, value: u64) {
            self.member(field, |out| write!(out, "{value}"));
        }
        fn record_f64(&mut self, field: &Field, value: f64) {
            if value.is_finite() {
                self.member(field, |out| write!(out, "{value}"));
            } else {
                self.member(field, |out| out.write_str("null"));
            }
        }
        fn record_bool(&mut self, field: &Field, value: bool) {
            self.member(field, |out| write!(out, "{value}"));
        }
        fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
            self.string(field, value);
        }
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            self.string(field, format_args!("{value:?}"));
        }
    }

    /// A `fmt::Write` target that keeps its first 256 bytes on the stack and moves to
    /// the heap only beyond that.
    struct StackBuffer {
        inline: arrayvec::ArrayString<256>,
        spilled: Option<String>,
    }

    impl StackBuffer {
        fn new() -> Self {
            Self {
                inline: arrayvec::ArrayString::new(),
                spilled: None,
            }
        }

        fn as_str(&self) -> &str {
            self.spilled.as_deref().unwrap_or(&self.inline)
        }

        /// Moves to the heap, then appends `s`.
        #[cold]
        #[inline(never)]
        fn spill(&mut self, s: &str) {
            let spilled = self.spilled.get_or_insert_with(|| {
                let mut spilled = String::with_capacity(2 * (self.inline.len() + s.len()));
                spilled.push_str(&self.inline);
                spilled
            });
            spilled.push_str(s);
        }
    }

    impl Write for StackBuffer {
        // Small enough to inline, so that the many short constant pieces of a JSON
        // member are copied without a call.
        #[inline(always)]
        fn write_str(&mut self, s: &str) -> fmt::Result {
            if self.spilled.is_some() || self.inline.try_push_str(s).is_err() {
                self.spill(s);
            }
            Ok(())
        }
    }

    /// Escapes what is written through it as the inside of a JSON string.
    struct Escaped<'a, W: Write>(&'a mut W);

    impl<W: Write> Write for Escaped<'_, W> {
        #[inline]
        fn write_str(&mut self, s: &str) -> fmt::Result {
            if !needs_escaping(s.as_bytes()) {
                return self.0.write_str(s);
            }
            let mut start = 0;
            for (i, b) in s.bytes().enumerate() {
                let escape = match b {
                    b'"' => "\\\"",
                    b'\\' => "\\\\",
                    b'\n' => "\\n",
                    b'\r' => "\\r",
                    b'\t' => "\\t",
                    0..=0x1f => "",
                    _ => continue,
                };
                self.0.write_str(&s[start..i])?;
                if escape.is_empty() {
                    write!(self.0, "\\u{b:04x}")?;
                } else {
                    self.0.write_str(escape)?;
                }
                start = i + 1;
            }
            self.0.write_str(&s[start..])
        }
    }

    /// Whether `bytes` has a control character, `"` or `\`: nearly all text has none,
    /// so it is looked at eight bytes at a time (each test is exact for "any byte").
    fn needs_escaping(bytes: &[u8]) -> bool {
        const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
        const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
        // The high bit of each byte of `x` below `n` (n <= 0x80), and maybe others
        // above one that is: exact as to whether there is any.
        let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS;
        let equal = |x: u64, b: u8| below(x ^ (ONES * u64::from(b)), 1);
        // No early exit: a branch per chunk costs more than the rare escape saves.
        let mut found = 0;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in chunks.by_ref() {
            let x = u64::from_ne_bytes(chunk.try_into().unwrap_or_default());
            found |= below(x, 0x20) | equal(x, b'"') | equal(x, b'\\');
        }
        let mut tail = false;
        for &b in chunks.remainder() {
            tail |= (b < 0x20) | (b == b'"') | (b == b'\\');
        }
        found != 0 || tail
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use serde_json::json;
        use tracing_subscriber::fmt::format::FormatEvent;

        #[test]
        fn needs_escaping_finds_every_special_byte_wherever_it_is() {
            for len in 0..20 {
                let plain: Vec<u8> = (0..len).map(|i| b"aZ09 ~-\x7f\xc3\xa9"[i % 9]).collect();
                assert!(!needs_escaping(&plain), "{plain:?}");
                for at in 0..len {
                    for special in [0u8, 0x1f, b'\n', b'"', b'\\'] {
                        let mut text = plain.clone();
                        text[at] = special;
                        assert!(needs_escaping(&text), "{text:?}");
                    }
                    // Neighbours of the special bytes are plain.
                    for near in [0x20u8, b'!', b'#', b'[', b']', 0x80, 0xff] {
                        let mut text = plain.clone();
                        text[at] = near;
                        assert!(!needs_escaping(&text), "{text:?}");
                    }
                }
            }
        }

        /// Writes each event as the JSON its span's stored fields parse to.
        struct SpanFieldsOnly;

        impl<S> FormatEvent<S, JsonSpanFields> for SpanFieldsOnly
        where
            S: tracing::Subscriber + for<'a> LookupSpan<'a>,
        {
            fn format_event(
                &self,
                ctx: &FmtContext<'_, S, JsonSpanFields>,
                mut writer: Writer<'_>,
                _event: &tracing::Event<'_>,
            ) -> fmt::Result {
                let span = ctx.lookup_current().expect("the event is in a span");
                let extensions = span.extensions();
                let fields = extensions
                    .get::<FormattedFields<JsonSpanFields>>()
                    .expect("the span's fields were formatted");
                writeln!(writer, "{}", fields.fields)
            }
        }

        #[derive(Debug)]
        struct Odd;

        /// The lines `fmt` writes (no time, no colour) with `fields` as its field
        /// formatter, for the same spans and events.
        fn text_lines<N>(fields: N) -> String
        where
            N: for<'w> tracing_subscriber::fmt::FormatFields<'w> + Send + Sync + 'static,
        {
            let lines = crate::testing::LogBuffer::default();
            let writer = lines.clone();
            let subscriber = tracing_subscriber::fmt()
                .fmt_fields(fields)
                .without_time()
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::with_default(subscriber, || {
                let span = tracing::info_span!(
                    "invocation",
                    function = "todos",
                    n = -3i64,
                    ok = true,
                    odd = ?Odd,
                    later = tracing::field::Empty,
                );
                span.in_scope(|| tracing::info!(key = "v", count = 2u64, "one thing"));
                span.record("later", "set");
                span.in_scope(|| tracing::warn!("two"));
                tracing::info!(text = "a b", "outside");
            });
            lines.text()
        }

        #[test]
        fn text_fields_lay_out_lines_as_default_fields_does() {
            let ours = text_lines(TextFields);
            assert_eq!(
                ours,
                text_lines(tracing_subscriber::fmt::format::DefaultFields::new())
            );
            assert!(
                ours.contains(r#"invocation{function="todos" n=-3 ok=true odd=Odd later="set"}"#),
                "{ours}"
            );
        }

        #[test]
        fn span_fields_are_one_json_object_typed_and_escaped() {
            let lines = crate::testing::LogBuffer::default();
            let writer = lines.clone();
            let subscriber = tracing_subscriber::fmt()
                .fmt_fields(JsonSpanFields)
                .event_format(SpanFieldsOnly)
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::with_default(subscriber, || {
                let span = tracing::info_span!(
                    "invocation",
                    function = "todos",
                    quote = "a \"b\"\n\\ \u{1}",
                    n = -3i64,
                    big = u64::MAX,
                    ratio = 0.5f64,
                    nan = f64::NAN,
                    ok = true,
                    odd = ?Odd,
                    later = tracing::field::Empty,
                );
                span.in_scope(|| tracing::info!("one"));
                span.record("later", "set");
                span.in_scope(|| tracing::info!("two"));
                let long = "é\"".repeat(100);
                tracing::info_span!("long", function = "todos", long = long.as_str())
                    .in_scope(|| tracing::info!("past the stack buffer"));
                let empty = tracing::info_span!("empty", later = tracing::field::Empty);
                empty.record("later", 7u64);
                empty.in_scope(|| tracing::info!("three"));
            });
            let text = lines.text();
            let parsed: Vec<Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
                .collect();
            let first = json!({
                "function": "todos",
                "quote": "a \"b\"\n\\ \u{1}",
                "n": -3,
                "big": u64::MAX,
                "ratio": 0.5,
                "nan": null,
                "ok": true,
                "odd": "Odd",
            });
            assert_eq!(parsed[0], first);
            let mut second = first.clone();
            second["later"] = json!("set");
            assert_eq!(parsed[1], second);
            assert_eq!(
                parsed[2],
                json!({"function": "todos", "long": "é\"".repeat(100)})
            );
            assert_eq!(parsed[3], json!({"later": 7}));
        }
    }
}
