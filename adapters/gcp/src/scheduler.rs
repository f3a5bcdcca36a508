//! Timer functions: Cloud Scheduler, by any of its three routes, to [`TimerTick`].
//!
//! | route | request | `event_id` | `scheduled_time` |
//! |---|---|---|---|
//! | HTTP target | a plain `POST` (any body; `X-CloudScheduler-JobName`, `X-CloudScheduler-ScheduleTime` headers) | `<job>@<schedule time>` when both headers are set (the same on a retry), else a new id | `X-CloudScheduler-ScheduleTime`, else now |
//! | Pub/Sub target | `google.cloud.pubsub.topic.v1.messagePublished` (also a legacy `google.pubsub.topic.publish`) | `message.messageId` (or `message_id`), else the CloudEvent `id` | `message.publishTime` (or `publish_time`), else the CloudEvent `time` |
//! | Eventarc | `google.cloud.scheduler.job.v1.executed` (data `{"customData": <base64>}`) | the CloudEvent `id` | the CloudEvent `time` |
//! | Pub/Sub target through a push subscription (no Eventarc) | a plain `POST` of Pub/Sub's push envelope, `{"message": {...}, "subscription": "..."}` | `message.messageId` (the same on a redelivery) | `message.publishTime` |
//!
//! `schedule` is the schedule the app declared (the request names the job, not its
//! expression); Cloud Scheduler does not say whether a run is late, so `past_due` is
//! false.

use base64::Engine;
use chrono::{DateTime, Utc};
use cloudevents::{AttributesReader, Event};
use http::HeaderMap;
use nube::{Provider, RawEvent, TimerTick};
use serde_json::{Map, Value, json};

use crate::cloudevent::{Mode, data_json, raw_payload};
use crate::error::DecodeError;

/// The CloudEvent type of a Cloud Scheduler job run (through Eventarc).
pub const EXECUTED: &str = "google.cloud.scheduler.job.v1.executed";

/// The CloudEvent type of a Pub/Sub message (Cloud Scheduler's Pub/Sub target).
pub const MESSAGE_PUBLISHED: &str = "google.cloud.pubsub.topic.v1.messagePublished";

/// The header Cloud Scheduler names its job in.
pub const JOB_NAME_HEADER: &str = "x-cloudscheduler-jobname";

/// The header Cloud Scheduler puts the run's scheduled time in (RFC 3339).
pub const SCHEDULE_TIME_HEADER: &str = "x-cloudscheduler-scheduletime";

fn parse_time(what: &str, text: &str) -> Result<DateTime<Utc>, DecodeError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| DecodeError::new(format!("{what} {text:?} is not an RFC 3339 time: {e}")))
}

/// A Pub/Sub message's id and publish time, under either spelling of each field
/// (`messageId` / `message_id`, `publishTime` / `publish_time`); `what` names the
/// message in an error.
fn id_and_time<'a>(
    message: &'a Value,
    what: &str,
) -> Result<(Option<&'a str>, Option<DateTime<Utc>>), DecodeError> {
    let text = |a: &str, b: &str| {
        message
            .get(a)
            .or_else(|| message.get(b))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let time = text("publishTime", "publish_time")
        .map(|t| parse_time(&format!("{what}: message.publishTime"), t))
        .transpose()?;
    Ok((text("messageId", "message_id"), time))
}

/// A tick from a CloudEvent: a Cloud Scheduler run or a Pub/Sub message.
pub fn from_cloud_event(
    event: &Event,
    mode: Mode,
    schedule: &str,
) -> Result<TimerTick, DecodeError> {
    let (event_id, scheduled_time, parsed) = match event.ty() {
        EXECUTED => (
            event.id().to_owned(),
            event.time().copied().unwrap_or_else(Utc::now),
            None,
        ),
        MESSAGE_PUBLISHED => {
            let data = data_json(event).map_err(|e| e.within("Pub/Sub event"))?;
            let message = data.get("message").ok_or_else(|| {
                DecodeError::new("Pub/Sub event: the data has no message (MessagePublishedData)")
            })?;
            let (id, time) = id_and_time(message, "Pub/Sub event")?;
            let id = id.unwrap_or(event.id());
            let time = time.unwrap_or_else(|| event.time().copied().unwrap_or_else(Utc::now));
            let id = id.to_owned();
            (id, time, Some(data))
        }
        other => {
            return Err(DecodeError::new(format!(
                "type {other:?} is neither {EXECUTED:?} nor {MESSAGE_PUBLISHED:?}"
            )));
        }
    };
    Ok(TimerTick {
        event_id,
        schedule: schedule.to_owned(),
        scheduled_time,
        past_due: false,
        raw: RawEvent::new(Provider::Gcp, raw_payload(event, mode, parsed)),
    })
}

/// A tick from a plain `POST` that is no CloudEvent: Pub/Sub's push envelope, else
/// Cloud Scheduler's HTTP target.
pub fn from_http_target(
    headers: &HeaderMap,
    body: &[u8],
    schedule: &str,
) -> Result<TimerTick, DecodeError> {
    if let Some(tick) = from_push(body, schedule)? {
        return Ok(tick);
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let job = header(JOB_NAME_HEADER);
    let at = header(SCHEDULE_TIME_HEADER);
    let scheduled_time = match at {
        Some(t) => parse_time("X-CloudScheduler-ScheduleTime", t)?,
        None => Utc::now(),
    };
    let event_id = match (job, at) {
        (Some(job), Some(at)) => format!("{job}@{at}"),
        _ => uuid::Uuid::now_v7().to_string(),
    };
    let mut scheduler = Map::new();
    for (name, value) in headers {
        if name.as_str().starts_with("x-cloudscheduler")
            && let Ok(v) = value.to_str()
        {
            scheduler.insert(name.as_str().to_owned(), Value::from(v));
        }
    }
    let body = match std::str::from_utf8(body) {
        Ok(text) => Value::from(text),
        Err(_) => json!({"base64": base64::engine::general_purpose::STANDARD.encode(body)}),
    };
    Ok(TimerTick {
        event_id,
        schedule: schedule.to_owned(),
        scheduled_time,
        past_due: false,
        raw: RawEvent::new(
            Provider::Gcp,
            json!({"cloudScheduler": scheduler, "body": body, "nubeMode": "http-target"}),
        ),
    })
}

/// A tick from Pub/Sub's push envelope (`{"message": {"messageId", "publishTime",
/// ...}, "subscription": "projects/.../subscriptions/..."}`), when `body` is one.
fn from_push(body: &[u8], schedule: &str) -> Result<Option<TimerTick>, DecodeError> {
    let Ok(Value::Object(envelope)) = serde_json::from_slice::<Value>(body) else {
        return Ok(None);
    };
    let (Some(message @ Value::Object(_)), Some(Value::String(_))) =
        (envelope.get("message"), envelope.get("subscription"))
    else {
        return Ok(None);
    };
    let (id, time) = id_and_time(message, "Pub/Sub push")?;
    let event_id = id
        .ok_or_else(|| DecodeError::new("Pub/Sub push: the message has no messageId"))?
        .to_owned();
    let scheduled_time = time.unwrap_or_else(Utc::now);
    let mut payload = Value::Object(envelope);
    payload["nubeMode"] = Value::from("pubsub-push");
    Ok(Some(TimerTick {
        event_id,
        schedule: schedule.to_owned(),
        scheduled_time,
        past_due: false,
        raw: RawEvent::new(Provider::Gcp, payload),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudevents::{EventBuilder, EventBuilderV10};

    #[test]
    fn pubsub_push_envelopes_keep_the_message_id_across_redeliveries() {
        let body = br#"{"message": {"data": "e30=", "messageId": "2070443601311540",
            "publishTime": "2021-02-26T19:13:55.749Z", "attributes": {}},
            "subscription": "projects/p/subscriptions/nightly-push", "deliveryAttempt": 2}"#;
        let t = from_http_target(&HeaderMap::new(), body, "0 2 * * *").unwrap();
        assert_eq!(t.event_id, "2070443601311540");
        assert_eq!(
            t.scheduled_time.to_rfc3339(),
            "2021-02-26T19:13:55.749+00:00"
        );
        assert_eq!(
            t.raw.payload["subscription"],
            "projects/p/subscriptions/nightly-push"
        );
        assert_eq!(t.raw.payload["nubeMode"], "pubsub-push");
        let again = from_http_target(&HeaderMap::new(), body, "0 2 * * *").unwrap();
        assert_eq!(again.event_id, t.event_id, "a redelivery is the same event");
        // An envelope without an id is refused; other JSON bodies stay HTTP-target ticks.
        let e = from_http_target(
            &HeaderMap::new(),
            br#"{"message": {}, "subscription": "projects/p/subscriptions/s"}"#,
            "@daily",
        )
        .unwrap_err();
        assert!(e.0.contains("messageId"), "{e}");
        let plain = from_http_target(&HeaderMap::new(), br#"{"message": "hi"}"#, "@daily").unwrap();
        assert_eq!(plain.raw.payload["nubeMode"], "http-target");
    }

    #[test]
    fn http_target_ids_are_stable_per_run() {
        let mut h = HeaderMap::new();
        h.insert(JOB_NAME_HEADER, "nightly".parse().unwrap());
        h.insert(
            SCHEDULE_TIME_HEADER,
            "2024-05-01T02:00:00Z".parse().unwrap(),
        );
        let t = from_http_target(&h, b"{}", "0 2 * * *").unwrap();
        assert_eq!(t.event_id, "nightly@2024-05-01T02:00:00Z");
        assert_eq!(t.scheduled_time.to_rfc3339(), "2024-05-01T02:00:00+00:00");
        assert_eq!(
            t.raw.payload["cloudScheduler"]["x-cloudscheduler-jobname"],
            "nightly"
        );
        let t = from_http_target(&HeaderMap::new(), b"", "@daily").unwrap();
        assert!(!t.event_id.is_empty());
    }

    #[test]
    fn pubsub_ids_and_times_from_the_message() {
        let e = EventBuilderV10::new()
            .id("ce-1")
            .ty(MESSAGE_PUBLISHED)
            .source("//pubsub.googleapis.com/projects/p/topics/t")
            .data(
                "application/json",
                json!({"message": {"message_id": "m-1", "publish_time": "2021-02-05T04:06:14.109Z", "data": "AQ=="}}),
            )
            .build()
            .unwrap();
        let t = from_cloud_event(&e, Mode::Binary, "@hourly").unwrap();
        assert_eq!(t.event_id, "m-1");
        assert_eq!(
            t.scheduled_time.to_rfc3339(),
            "2021-02-05T04:06:14.109+00:00"
        );
    }
}
