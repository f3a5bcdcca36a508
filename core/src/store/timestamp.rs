//! Timestamps that sort as text. Store queries compare strings byte by byte, and
//! chrono's default RFC 3339 output has a variable number of fraction digits
//! (`…:00.5Z` sorts before `…:00Z`). Use this module for any time a query orders or
//! ranges on: RFC 3339, UTC, always six fraction digits.
//!
//! ```
//! use chrono::{DateTime, Utc};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Todo {
//!     #[serde(with = "nube::store::timestamp")]
//!     created_at: DateTime<Utc>,
//! }
//! let t: DateTime<Utc> = "2026-01-02T03:04:05.5Z".parse().unwrap();
//! let json = serde_json::to_string(&Todo { created_at: t }).unwrap();
//! assert_eq!(json, r#"{"created_at":"2026-01-02T03:04:05.500000Z"}"#);
//! ```

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde::{Deserialize, Deserializer, Serializer};

/// `t` as fixed-width RFC 3339 text.
pub fn text(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The current time at the stored precision (microseconds), so a value read back
/// equals the value written.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Serde: writes [`text`].
pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&text(t))
}

/// Serde: reads any RFC 3339 time.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    DateTime::<Utc>::deserialize(d)
}

/// The same for `Option<DateTime<Utc>>`: `#[serde(with = "nube::store::timestamp::option")]`.
pub mod option {
    use super::*;

    /// Serde: writes [`text`] or null.
    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(&super::text(t)),
            None => s.serialize_none(),
        }
    }

    /// Serde: reads an RFC 3339 time or null.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<DateTime<Utc>>::deserialize(d)
    }
}
