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

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use nube::{Provider, RawEvent, TimerTick};
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use crate::payload::{InvocationRequest, Remainder, field_str};

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
    TimerInfo::of(value).is_some()
}

/// What a tick reads of the host's `TimerInfo`, read from the binding's value (an
/// object, or a JSON string holding one) without building a `Value` of it. Names match
/// case-insensitively; a `null` counts as absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimerInfo {
    /// `IsPastDue` (a boolean, or its text).
    pub is_past_due: Option<bool>,
    /// `ScheduleStatus.Next`, as the host wrote it.
    pub next: Option<String>,
}

impl TimerInfo {
    /// The `TimerInfo` in `value`, when it is one: it has `IsPastDue` or
    /// `ScheduleStatus`, or a `Schedule` key.
    pub fn of(value: &Value) -> Option<Self> {
        let read = match value {
            Value::Object(_) => TimerFields::deserialize(value).ok(),
            Value::String(text) if text.trim_start().starts_with('{') => {
                serde_json::from_str::<TimerFields>(text).ok()
            }
            _ => None,
        }?;
        read.is_timer.then_some(read.info)
    }
}

/// [`TimerInfo`] and whether the object had any of its marks.
struct TimerFields {
    info: TimerInfo,
    is_timer: bool,
}

impl<'de> Deserialize<'de> for TimerFields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(TimerVisitor)
    }
}

struct TimerVisitor;

impl<'de> Visitor<'de> for TimerVisitor {
    type Value = TimerFields;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a TimerInfo object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TimerFields, A::Error> {
        let mut fields = TimerFields {
            info: TimerInfo::default(),
            is_timer: false,
        };
        let (mut past_due_seen, mut status_seen) = (false, false);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if !past_due_seen && key.eq_ignore_ascii_case("IsPastDue") {
                let value = map.next_value::<Value>()?;
                if !value.is_null() {
                    (past_due_seen, fields.is_timer) = (true, true);
                    fields.info.is_past_due = match value {
                        Value::Bool(b) => Some(b),
                        Value::String(t) => t.trim().parse().ok(),
                        _ => None,
                    };
                }
            } else if !status_seen && key.eq_ignore_ascii_case("ScheduleStatus") {
                if let Some(status) = map.next_value::<Option<Status>>()? {
                    (status_seen, fields.is_timer) = (true, true);
                    fields.info.next = status.next;
                }
            } else {
                fields.is_timer |= key == "Schedule";
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(fields)
    }
}

/// `ScheduleStatus`: its `Next`, when that is a string.
struct Status {
    next: Option<String>,
}

impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StatusVisitor;
        impl<'de> Visitor<'de> for StatusVisitor {
            type Value = Status;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a ScheduleStatus object")
            }
            // Any other value is a `ScheduleStatus` without a `Next`.
            fn visit_bool<E>(self, _: bool) -> Result<Status, E> {
                Ok(Status { next: None })
            }
            fn visit_i64<E>(self, _: i64) -> Result<Status, E> {
                Ok(Status { next: None })
            }
            fn visit_u64<E>(self, _: u64) -> Result<Status, E> {
                Ok(Status { next: None })
            }
            fn visit_f64<E>(self, _: f64) -> Result<Status, E> {
                Ok(Status { next: None })
            }
            fn visit_str<E>(self, _: &str) -> Result<Status, E> {
                Ok(Status { next: None })
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Status, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Status { next: None })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Status, A::Error> {
                let mut next = None;
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    if next.is_none() && key.eq_ignore_ascii_case("Next") {
                        if let Value::String(t) = map.next_value::<Value>()? {
                            next = Some(t);
                        }
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Status { next })
            }
        }
        d.deserialize_any(StatusVisitor)
    }
}

/// The host's `TimerInfo` among `request`'s `Data` values ([`TimerInfo::of`]).
pub fn timer_info(request: &InvocationRequest) -> Option<TimerInfo> {
    request.data.values().find_map(TimerInfo::of)
}

/// The tick of `function` from `timer`, the `TimerInfo` [`timer_info`] found in
/// `request`; its raw payload is the whole invocation `request` and its `remainder`
/// make.
pub fn tick(
    request: InvocationRequest,
    remainder: Remainder,
    timer: &TimerInfo,
    function: &str,
    schedule: &str,
) -> TimerTick {
    let now = request
        .meta("sys")
        .and_then(|sys| time(field_str(&sys, "UtcNow")))
        .unwrap_or_else(Utc::now);
    let next = time(timer.next.as_deref());
    let scheduled_time = next.filter(|n| *n <= now + NEXT_SLACK).unwrap_or(now);
    let at = scheduled_time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut event_id = String::with_capacity(function.len() + 1 + at.len());
    event_id.push_str(function);
    event_id.push('@');
    event_id.push_str(&at);
    TimerTick {
        event_id,
        schedule: schedule.to_owned(),
        scheduled_time,
        past_due: timer.is_past_due.unwrap_or(false),
        raw: RawEvent::new(Provider::Azure, remainder.payload(request)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timer_info_from_an_object_or_its_json_text_with_any_case() {
        let text = r#"{"Schedule":{"AdjustForDST":true},"ScheduleStatus":{"Last":"2026-11-23T09:55:00+00:00","Next":"2026-11-23T10:00:00+00:00"},"IsPastDue":true}"#;
        let expected = TimerInfo {
            is_past_due: Some(true),
            next: Some("2026-11-23T10:00:00+00:00".into()),
        };
        assert_eq!(TimerInfo::of(&json!(text)), Some(expected.clone()));
        let object: Value = serde_json::from_str(text).unwrap();
        assert_eq!(TimerInfo::of(&object), Some(expected));
        assert_eq!(
            TimerInfo::of(&json!({"isPastDue": "false", "scheduleStatus": {"next": "x"}})),
            Some(TimerInfo {
                is_past_due: Some(false),
                next: Some("x".into()),
            })
        );
    }

    #[test]
    fn any_mark_makes_a_timer_info_and_null_is_absent() {
        let only_schedule = TimerInfo::of(&json!({"Schedule": null})).unwrap();
        assert_eq!(only_schedule, TimerInfo::default());
        let odd_status = TimerInfo::of(&json!({"ScheduleStatus": "soon"})).unwrap();
        assert_eq!(odd_status.next, None);
        assert_eq!(
            TimerInfo::of(&json!({"ScheduleStatus": null, "IsPastDue": false})),
            Some(TimerInfo {
                is_past_due: Some(false),
                next: None,
            })
        );
        for not_timer in [
            json!({"ScheduleStatus": null}),
            json!({"schedule": {}}),
            json!({"Url": "https://x", "Method": "GET"}),
            json!("{not json"),
            json!("plain text"),
            json!([1, 2]),
            json!(3),
        ] {
            assert_eq!(TimerInfo::of(&not_timer), None, "{not_timer}");
        }
    }
}
