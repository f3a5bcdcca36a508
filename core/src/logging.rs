//! What runtimes that write JSON log lines share: [`FieldsAsJson`], a tracing field
//! visitor that puts an event's (or a span's) fields into a JSON object.

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
