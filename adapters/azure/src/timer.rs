//! Timer functions: a `timerTrigger` invocation to [`TimerTick`].
//!
//! The binding's value (`Data.<name>`, an object or a JSON-encoded string) is the
//! host's `TimerInfo`: `{"Schedule": {...}, "ScheduleStatus": {"Last", "Next",
//! "LastUpdated"} | null, "IsPastDue": bool}`. During an invocation `ScheduleStatus.Next`
//! is the occurrence being run (the previous run computed it), so it is the tick's
//! `scheduled_time` unless it lies in the future (a run on startup); then, or when the
//! status is missing, `Metadata.sys.UtcNow` is, else the current time. `past_due` is
//! `IsPastDue`. The `event_id` is `<function>@<scheduled_time>`, the same when the host
//! retries the tick.

use chrono::{DateTime, Utc};
use nube::{Provider, RawEvent, TimerTick};
use serde_json::Value;

use crate::payload::{InvocationRequest, decoded, field, field_bool, field_str};

/// How far in the future `ScheduleStatus.Next` may be and still be this tick's time
/// (clock skew between the host's schedule monitor and `sys.UtcNow`).
const NEXT_SLACK: chrono::Duration = chrono::Duration::seconds(60);

fn time(text: Option<&str>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text?.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Whether `value` looks like the host's `TimerInfo`.
pub fn is_timer_info(value: &Value) -> bool {
    looks_like_timer_info(&decoded(value))
}

fn looks_like_timer_info(v: &Value) -> bool {
    field(v, "IsPastDue").is_some()
        || field(v, "ScheduleStatus").is_some()
        || v.get("Schedule").is_some()
}

/// The host's `TimerInfo` among `request`'s `Data` values, decoded once (it comes as
/// an object or as a JSON string holding one).
pub fn timer_info(request: &InvocationRequest) -> Option<Value> {
    request
        .data
        .values()
        .map(decoded)
        .find(|v| looks_like_timer_info(v))
        .map(std::borrow::Cow::into_owned)
}

/// The tick of `function` from `timer`, the `TimerInfo` [`timer_info`] found in
/// `request`.
pub fn tick(
    request: &InvocationRequest,
    timer: &Value,
    function: &str,
    schedule: &str,
    raw: Value,
) -> TimerTick {
    let now = request
        .meta("sys")
        .and_then(|sys| time(field_str(&sys, "UtcNow")))
        .unwrap_or_else(Utc::now);
    let next = field(timer, "ScheduleStatus").and_then(|s| time(field_str(s, "Next")));
    let scheduled_time = next.filter(|n| *n <= now + NEXT_SLACK).unwrap_or(now);
    TimerTick {
        event_id: format!(
            "{function}@{}",
            scheduled_time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        ),
        schedule: schedule.to_owned(),
        scheduled_time,
        past_due: field_bool(timer, "IsPastDue").unwrap_or(false),
        raw: RawEvent::new(Provider::Azure, raw),
    }
}
