//! Timer functions: an EventBridge scheduled event (a rule's `schedule(...)` target,
//! or EventBridge Scheduler's event envelope) to a [`TimerTick`].
//!
//! `event_id` is the EventBridge event `id` (the same on a retried delivery),
//! `scheduled_time` its `time`, and `schedule` the schedule the app declared (the
//! payload names the rule, not the expression). EventBridge does not say whether a
//! delivery is late, so `past_due` is false.

use chrono::{DateTime, Utc};
use nube::{Provider, RawEvent, TimerTick};
use serde_json::Value;

use crate::error::DecodeError;

/// Decodes an EventBridge scheduled event for a function declared with `schedule`.
pub fn decode(payload: &Value, schedule: &str) -> Result<TimerTick, DecodeError> {
    let field = |name: &str| payload.get(name).and_then(Value::as_str);
    let detail_type = field("detail-type").or_else(|| field("detailType"));
    if detail_type != Some("Scheduled Event") {
        return Err(DecodeError::new(format!(
            "not a scheduled event: \"detail-type\" is {}, not \"Scheduled Event\"",
            detail_type.map_or("missing".to_owned(), |d| format!("{d:?}"))
        )));
    }
    let id = field("id")
        .filter(|id| !id.is_empty())
        .ok_or_else(|| DecodeError::new("the scheduled event has no \"id\""))?;
    let time =
        field("time").ok_or_else(|| DecodeError::new("the scheduled event has no \"time\""))?;
    let scheduled_time = DateTime::parse_from_rfc3339(time)
        .map_err(|e| {
            DecodeError::new(format!(
                "the scheduled event's \"time\" {time:?} is not an RFC 3339 time: {e}"
            ))
        })?
        .with_timezone(&Utc);
    Ok(TimerTick {
        event_id: id.to_owned(),
        schedule: schedule.to_owned(),
        scheduled_time,
        past_due: false,
        raw: RawEvent::new(Provider::Aws, payload.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scheduled_events() {
        let tick = decode(
            &json!({
                "id": "ev-1", "detail-type": "Scheduled Event", "source": "aws.events",
                "time": "2024-05-01T02:00:00Z", "resources": ["arn:aws:events:eu-west-1:1:rule/r"],
                "detail": {}
            }),
            "0 2 * * *",
        )
        .unwrap();
        assert_eq!(tick.event_id, "ev-1");
        assert_eq!(tick.schedule, "0 2 * * *");
        assert_eq!(
            tick.scheduled_time.to_rfc3339(),
            "2024-05-01T02:00:00+00:00"
        );
        let err = decode(
            &json!({"id": "x", "detail-type": "Scheduled Event", "time": "yesterday"}),
            "@daily",
        )
        .unwrap_err();
        assert!(err.0.contains("RFC 3339"), "{err}");
        let err = decode(&json!({"detail-type": "EC2 thing"}), "@daily").unwrap_err();
        assert!(err.0.contains("not a scheduled event"), "{err}");
    }
}
