//! [`TimerTick`]: a schedule fired.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::RawEvent;

/// A timer function's schedule fired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimerTick {
    /// Stable across redelivery of the same tick.
    pub event_id: String,
    /// The schedule as declared (`0 2 * * *`, `rate(5 minutes)`).
    pub schedule: String,
    /// When the tick was due.
    pub scheduled_time: DateTime<Utc>,
    /// True when the tick is delivered late (the runtime was down at its time, or the
    /// provider says so).
    pub past_due: bool,
    /// The provider's payload.
    pub raw: RawEvent,
}
