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
use serde::de::{Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
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
        let key = |k: &str| {
            if k.eq_ignore_ascii_case("IsPastDue") {
                TimerKey::IsPastDue
            } else if k.eq_ignore_ascii_case("ScheduleStatus") {
                TimerKey::ScheduleStatus
            } else {
                TimerKey::Other {
                    schedule: k == "Schedule",
                }
            }
        };
        while let Some(key) = map.next_key_seed(Classify(key))? {
            if !past_due_seen && key == TimerKey::IsPastDue {
                let value = map.next_value::<Value>()?;
                if !value.is_null() {
                    (past_due_seen, fields.is_timer) = (true, true);
                    fields.info.is_past_due = match value {
                        Value::Bool(b) => Some(b),
                        Value::String(t) => t.trim().parse().ok(),
                        _ => None,
                    };
                }
            } else if !status_seen && key == TimerKey::ScheduleStatus {
                if let Some(status) = map.next_value::<Option<Status>>()? {
                    (status_seen, fields.is_timer) = (true, true);
                    fields.info.next = status.next;
                }
            } else {
                fields.is_timer |= key == TimerKey::Other { schedule: true };
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(fields)
    }
}

/// A key of a `TimerInfo` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimerKey {
    IsPastDue,
    ScheduleStatus,
    /// Any other; `schedule` when it is `Schedule` (case-sensitive).
    Other {
        schedule: bool,
    },
}

/// Reads a map key as what its function makes of it, without copying the key.
struct Classify<K>(fn(&str) -> K);

impl<'de, K> DeserializeSeed<'de> for Classify<K> {
    type Value = K;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<K, D::Error> {
        d.deserialize_str(self)
    }
}

impl<K> Visitor<'_> for Classify<K> {
    type Value = K;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E>(self, key: &str) -> Result<K, E> {
        Ok((self.0)(key))
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
                let is_next = |k: &str| k.eq_ignore_ascii_case("Next");
                while let Some(key_is_next) = map.next_key_seed(Classify(is_next))? {
                    if next.is_none() && key_is_next {
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
    schedule: String,
) -> TimerTick {
    let now = request
        .meta("sys")
        .and_then(|sys| time(field_str(&sys, "UtcNow")))
        .unwrap_or_else(Utc::now);
    let next = time(timer.next.as_deref());
    let scheduled_time = next.filter(|n| *n <= now + NEXT_SLACK).unwrap_or(now);
    let mut event_id = String::with_capacity(function.len() + 1 + MILLIS_TEXT_LEN);
    event_id.push_str(function);
    event_id.push('@');
    push_rfc3339_millis(&mut event_id, scheduled_time);
    TimerTick {
        event_id,
        schedule,
        scheduled_time,
        past_due: timer.is_past_due.unwrap_or(false),
        raw: RawEvent::new(Provider::Azure, remainder.payload(request)),
    }
}

/// How long [`push_rfc3339_millis`]'s text is for years 0 to 9999.
const MILLIS_TEXT_LEN: usize = "2026-11-23T10:00:00.000Z".len();

/// Appends `time` in RFC 3339 with milliseconds and `Z`, the text chrono's
/// `to_rfc3339_opts(SecondsFormat::Millis, true)` gives, written digit by digit: chrono
/// goes through its general formatter, a third of a tick's decoding. Years outside 0 to
/// 9999 and leap seconds are left to chrono.
fn push_rfc3339_millis(out: &mut String, time: DateTime<Utc>) {
    use chrono::{Datelike, Timelike};
    let (year, nanos) = (time.year(), time.nanosecond());
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        out.push_str(&time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        return;
    }
    let mut text = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut n: u32| {
        for digit in text[at..at + width].iter_mut().rev() {
            *digit = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, year.unsigned_abs());
    put(5, 2, time.month());
    put(8, 2, time.day());
    put(11, 2, time.hour());
    put(14, 2, time.minute());
    put(17, 2, time.second());
    put(20, 3, nanos / 1_000_000);
    out.push_str(std::str::from_utf8(&text).expect("ASCII digits"));
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
    fn event_id_times_are_chrono_s_rfc3339_with_millis() {
        let texts = [
            "2026-11-23T10:00:00Z",
            "0000-01-01T00:00:00Z",
            "0999-12-31T23:59:59.999999999Z",
            "2024-02-29T07:08:09.010Z",
            "9999-12-31T23:59:59.5Z",
            "2015-06-30T23:59:60.250Z",
        ];
        let mut times: Vec<DateTime<Utc>> = texts.iter().map(|t| time(Some(t)).unwrap()).collect();
        times.push(DateTime::<Utc>::MIN_UTC);
        times.push(DateTime::<Utc>::MAX_UTC);
        times.push(Utc::now());
        for t in times {
            let mut ours = String::from("x@");
            push_rfc3339_millis(&mut ours, t);
            let chrono = t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            assert_eq!(ours, format!("x@{chrono}"), "{t:?}");
        }
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
