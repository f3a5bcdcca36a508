//! The portable query: equality filters, a range on one field, order by one field,
//! a limit and an opaque cursor.

use std::cmp::Ordering;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Document, StoreError};

/// The most documents one page may hold.
pub const MAX_LIMIT: usize = 1000;
/// The page size when a query sets none.
pub const DEFAULT_LIMIT: usize = 100;

/// A comparison in a [`Filter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// `==`
    Eq,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Op {
    /// Whether this is a range comparison (anything but `Eq`).
    pub fn is_range(self) -> bool {
        self != Op::Eq
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Smallest first.
    #[default]
    Asc,
    /// Largest first.
    Desc,
}

/// One condition: `field op value`. `field` is a top-level name or a dotted path
/// (`address.city`); `value` is a string, number, boolean or null.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Filter {
    /// Field name or dotted path.
    pub field: String,
    /// Comparison.
    pub op: Op,
    /// What to compare with.
    pub value: Value,
}

/// A query over one collection.
///
/// Rules every backend enforces (so a query that works locally works on every
/// cloud): range filters (`<`, `<=`, `>`, `>=`) on at most one field; when the query
/// is ordered and has a range filter, the range field is the order field; filter
/// values are scalars; `limit` is 1–1000 (default 100). Ordering by a field leaves out
/// documents that lack it; ties are broken by id, and an unordered query is ordered by
/// id. A range filter only matches values of the same JSON type as its operand.
///
/// Strings compare byte by byte: store times with [`timestamp`](super::timestamp)
/// so that their text order is their time order.
///
/// ```
/// use nube::store::{Direction, Query};
///
/// let q = Query::new()
///     .eq("userId", "u1")
///     .order_by("createdAt", Direction::Desc)
///     .limit(20);
/// assert!(q.validate().is_ok());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Query {
    /// The conditions, all of which must hold.
    pub filters: Vec<Filter>,
    /// Field and direction to order by.
    pub order_by: Option<(String, Direction)>,
    /// Page size.
    pub limit: Option<usize>,
    /// Where the previous page ended ([`Page::next_cursor`]).
    pub cursor: Option<String>,
}

impl Query {
    /// All documents, by id.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `field op value`.
    pub fn filter(mut self, field: impl Into<String>, op: Op, value: impl Into<Value>) -> Self {
        self.filters.push(Filter {
            field: field.into(),
            op,
            value: value.into(),
        });
        self
    }

    /// Adds `field == value`.
    pub fn eq(self, field: impl Into<String>, value: impl Into<Value>) -> Self {
        self.filter(field, Op::Eq, value)
    }

    /// Adds `field < value`.
    pub fn lt(self, field: impl Into<String>, value: impl Into<Value>) -> Self {
        self.filter(field, Op::Lt, value)
    }

    /// Adds `field <= value`.
    pub fn le(self, field: impl Into<String>, value: impl Into<Value>) -> Self {
        self.filter(field, Op::Le, value)
    }

    /// Adds `field > value`.
    pub fn gt(self, field: impl Into<String>, value: impl Into<Value>) -> Self {
        self.filter(field, Op::Gt, value)
    }

    /// Adds `field >= value`.
    pub fn ge(self, field: impl Into<String>, value: impl Into<Value>) -> Self {
        self.filter(field, Op::Ge, value)
    }

    /// Orders by `field`.
    pub fn order_by(mut self, field: impl Into<String>, direction: Direction) -> Self {
        self.order_by = Some((field.into(), direction));
        self
    }

    /// At most `n` documents per page.
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// Continues after the page that returned `cursor`.
    pub fn after(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Some(cursor.into());
        self
    }

    /// The effective page size.
    pub fn page_size(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_LIMIT)
    }

    /// Checks the rules in the type's docs.
    pub fn validate(&self) -> Result<(), StoreError> {
        let bad = |m: String| Err(StoreError::InvalidQuery(m));
        if let Some(n) = self.limit
            && !(1..=MAX_LIMIT).contains(&n)
        {
            return bad(format!("limit {n} must be between 1 and {MAX_LIMIT}"));
        }
        let mut range_field: Option<&str> = None;
        for f in &self.filters {
            if f.field.is_empty() || f.field.split('.').any(str::is_empty) {
                return bad(format!("field path {:?} is empty or malformed", f.field));
            }
            if f.value.is_array() || f.value.is_object() {
                return bad(format!(
                    "filter on {:?} compares with an array or object; only strings, numbers, booleans and null can be compared",
                    f.field
                ));
            }
            if f.op.is_range() {
                match range_field {
                    Some(r) if r != f.field => {
                        return bad(format!(
                            "range filters on two fields ({r:?} and {:?}); every backend allows a range on one field only: filter the rest in code",
                            f.field
                        ));
                    }
                    _ => range_field = Some(&f.field),
                }
            }
        }
        if let (Some(r), Some((order, _))) = (range_field, &self.order_by)
            && r != order
        {
            return bad(format!(
                "range filter on {r:?} but order by {order:?}; a ranged query must be ordered by its range field"
            ));
        }
        if let Some((field, _)) = &self.order_by
            && (field.is_empty() || field.split('.').any(str::is_empty))
        {
            return bad(format!("order field {field:?} is empty or malformed"));
        }
        if let Some(c) = &self.cursor
            && Cursor::decode(c)?.ordering != self.ordering()
        {
            return bad(
                "the cursor belongs to a query with another order; pass next_cursor to the same query"
                    .into(),
            );
        }
        Ok(())
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T = Value> {
    /// The documents, in query order.
    pub documents: Vec<Document<T>>,
    /// Pass to [`Query::after`] for the next page; `None` when this page is the last.
    pub next_cursor: Option<String>,
}

/// The position after which a page continues: the last document's order value and id.
#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    #[serde(rename = "v", default, skip_serializing_if = "Option::is_none")]
    order_value: Option<Value>,
    #[serde(rename = "i")]
    id: String,
    /// The ordering the cursor belongs to, so a cursor is refused by another query.
    #[serde(rename = "o")]
    ordering: String,
}

impl Query {
    fn ordering(&self) -> String {
        match &self.order_by {
            Some((f, Direction::Asc)) => format!("{f}:asc"),
            Some((f, Direction::Desc)) => format!("{f}:desc"),
            None => String::new(),
        }
    }
}

impl Cursor {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("cursor serialises"))
    }

    fn decode(text: &str) -> Result<Self, StoreError> {
        URL_SAFE_NO_PAD
            .decode(text)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| {
                StoreError::InvalidQuery(
                    "the cursor is not one this store returned; pass next_cursor unchanged".into(),
                )
            })
    }
}

/// The value at a dotted `path` inside `doc`.
pub fn field<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(doc, |v, key| v.get(key))
}

fn type_rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

/// The total order queries use: null < booleans < numbers < strings < arrays <
/// objects; numbers compare by value, strings by bytes.
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y),
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Array(x), Value::Array(y)) => x
            .iter()
            .zip(y)
            .map(|(a, b)| compare_values(a, b))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| x.len().cmp(&y.len())),
        _ => type_rank(a).cmp(&type_rank(b)),
    }
}

fn compare_numbers(x: &serde_json::Number, y: &serde_json::Number) -> Ordering {
    match (x.as_i64(), y.as_i64()) {
        (Some(a), Some(b)) => a.cmp(&b),
        _ => match (x.as_u64(), y.as_u64()) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => {
                let (a, b) = (
                    x.as_f64().unwrap_or(f64::NAN),
                    y.as_f64().unwrap_or(f64::NAN),
                );
                a.partial_cmp(&b).unwrap_or(Ordering::Equal)
            }
        },
    }
}

fn matches(doc: &Value, f: &Filter) -> bool {
    let Some(v) = field(doc, &f.field) else {
        return false;
    };
    if type_rank(v) != type_rank(&f.value) {
        return false;
    }
    let o = compare_values(v, &f.value);
    match f.op {
        Op::Eq => o.is_eq(),
        Op::Lt => o.is_lt(),
        Op::Le => o.is_le(),
        Op::Gt => o.is_gt(),
        Op::Ge => o.is_ge(),
    }
}

/// Runs `query` over all documents of a collection in memory: the reference
/// semantics, used by the in-memory and embedded stores.
pub fn evaluate(
    documents: impl IntoIterator<Item = Document>,
    query: &Query,
) -> Result<Page, StoreError> {
    query.validate()?;
    let order_field = query.order_by.as_ref().map(|(f, _)| f.as_str());
    let direction = query.order_by.as_ref().map(|(_, d)| *d).unwrap_or_default();
    let key = |d: &Document| order_field.and_then(|f| field(&d.value, f)).cloned();
    let cmp = |a: &(Option<Value>, String), b: &(Option<Value>, String)| {
        let o = match (&a.0, &b.0) {
            (Some(x), Some(y)) => compare_values(x, y),
            _ => Ordering::Equal,
        }
        .then_with(|| a.1.cmp(&b.1));
        match direction {
            Direction::Asc => o,
            Direction::Desc => o.reverse(),
        }
    };
    let mut rows: Vec<((Option<Value>, String), Document)> = documents
        .into_iter()
        .filter(|d| query.filters.iter().all(|f| matches(&d.value, f)))
        .filter(|d| order_field.is_none_or(|f| field(&d.value, f).is_some()))
        .map(|d| ((key(&d), d.id.clone()), d))
        .collect();
    rows.sort_by(|a, b| cmp(&a.0, &b.0));
    if let Some(c) = &query.cursor {
        let c = Cursor::decode(c)?;
        let after = (c.order_value, c.id);
        rows.retain(|(k, _)| cmp(k, &after).is_gt());
    }
    let size = query.page_size();
    let more = rows.len() > size;
    rows.truncate(size);
    let next_cursor = if more {
        rows.last().map(|((v, id), _)| {
            Cursor {
                order_value: v.clone(),
                id: id.clone(),
                ordering: query.ordering(),
            }
            .encode()
        })
    } else {
        None
    };
    Ok(Page {
        documents: rows.into_iter().map(|(_, d)| d).collect(),
        next_cursor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Version;
    use serde_json::json;

    fn doc(id: &str, v: Value) -> Document {
        Document {
            id: id.into(),
            version: Version::new("1"),
            value: v,
        }
    }

    #[test]
    fn validation_rules() {
        assert!(Query::new().gt("a", 1).lt("a", 5).validate().is_ok());
        assert!(Query::new().gt("a", 1).lt("b", 5).validate().is_err());
        assert!(
            Query::new()
                .gt("a", 1)
                .order_by("b", Direction::Asc)
                .validate()
                .is_err()
        );
        assert!(Query::new().limit(0).validate().is_err());
        assert!(Query::new().eq("a", json!([1])).validate().is_err());
        assert!(Query::new().after("not a cursor!").validate().is_err());
    }

    #[test]
    fn numbers_compare_by_value_and_types_do_not_mix() {
        assert_eq!(compare_values(&json!(2), &json!(10)), Ordering::Less);
        assert_eq!(compare_values(&json!(2.5), &json!(2)), Ordering::Greater);
        let docs = vec![doc("a", json!({"n": 1})), doc("b", json!({"n": "2"}))];
        let page = evaluate(docs, &Query::new().ge("n", 0)).unwrap();
        assert_eq!(page.documents.len(), 1);
    }

    #[test]
    fn pages_cover_everything_once() {
        let docs: Vec<_> = (0..25)
            .map(|i| doc(&format!("d{i:02}"), json!({"n": i % 5})))
            .collect();
        let mut seen = vec![];
        let mut q = Query::new().order_by("n", Direction::Desc).limit(7);
        loop {
            let page = evaluate(docs.clone(), &q).unwrap();
            seen.extend(page.documents.iter().map(|d| d.id.clone()));
            match page.next_cursor {
                Some(c) => q = q.after(c),
                None => break,
            }
        }
        assert_eq!(seen.len(), 25);
        assert_eq!(&seen[..5], &["d24", "d19", "d14", "d09", "d04"]);
    }
}

#[cfg(test)]
mod cursor_tests {
    use super::*;

    #[test]
    fn a_cursor_only_fits_its_own_ordering() {
        let docs: Vec<Document> = (0..5)
            .map(|i| Document {
                id: format!("d{i}"),
                version: crate::store::Version::new("1"),
                value: serde_json::json!({"n": i}),
            })
            .collect();
        let page = evaluate(
            docs.clone(),
            &Query::new().order_by("n", Direction::Asc).limit(2),
        )
        .unwrap();
        let cursor = page.next_cursor.unwrap();
        assert!(
            evaluate(
                docs.clone(),
                &Query::new()
                    .order_by("n", Direction::Asc)
                    .limit(2)
                    .after(cursor.clone())
            )
            .is_ok()
        );
        assert!(matches!(
            evaluate(
                docs,
                &Query::new().order_by("n", Direction::Desc).after(cursor)
            ),
            Err(StoreError::InvalidQuery(_))
        ));
    }
}
