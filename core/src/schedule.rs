//! Provider-neutral schedules for timer functions.
//!
//! A [`Schedule`] is written once, either as a standard 5-field unix cron
//! expression (`"0 2 * * *"`, `"*/15 * * * *"`, `"@daily"`) or as a fixed
//! rate (`"rate(5 minutes)"`, `"every 2h"`), and rendered into the syntax
//! each cloud expects:
//!
//! | target | method | `"0 9 * * 1-5"` becomes |
//! |---|---|---|
//! | AWS EventBridge | [`Schedule::to_aws`] | `cron(0 9 ? * 2-6 *)` |
//! | Azure Functions (NCRONTAB) | [`Schedule::to_azure`] | `0 0 9 * * 1-5` |
//! | Google Cloud Scheduler (unix cron) | [`Schedule::to_unix_cron`] | `0 9 * * 1-5` |
//!
//! All times are UTC. When a target cannot express a schedule with the same
//! meaning, rendering fails with a [`ScheduleError`] that says why and what to
//! do instead; nothing is silently changed.
//!
//! # Day-of-month and day-of-week
//!
//! The two day fields combine as in Vixie cron, the cron of most Linux
//! systems, which Google Cloud Scheduler's documentation follows. A day field
//! whose text begins with `*` is *star-flagged*: `*`, but also `*/2`.
//!
//! * When either day field is star-flagged, a day matches if **both** match.
//!   `"0 0 13 * *"` fires on every 13th (`*` matches every weekday), and
//!   `"0 0 */2 * 1"` fires only on odd-numbered days that are Mondays, because
//!   `*/2` still restricts by its own values.
//! * Only when neither day field begins with `*` does a day match if
//!   **either** matches: `"0 0 1 * 1"` fires on the 1st of every month and on
//!   every Monday.
//!
//! AWS EventBridge needs `?` in one of the two day fields, so it takes a
//! schedule only when one of them is exactly `*`. It refuses both kinds of
//! schedule that restrict both fields: "either" ones such as `"0 0 1 * 1"`
//! and "both" ones such as `"0 0 */2 * 1"`. Azure's NCRONTAB requires
//! **both** fields to match, so it takes "both" schedules as they are but
//! refuses "either" ones. Both targets make one exception: a restricting
//! field that covers every day anyway (`0-6`, `1-31`) is treated like `*`.
//! With "either" the schedule is then daily, and with "both" the other field
//! alone decides.
//!
//! ```
//! use nube::Schedule;
//!
//! let s: Schedule = "0 9 * * MON-FRI".parse()?;
//! assert_eq!(s.to_aws()?, "cron(0 9 ? * 2-6 *)");
//! assert_eq!(s.to_azure()?, "0 0 9 * * 1-5");
//! assert_eq!(s.to_unix_cron()?, "0 9 * * 1-5");
//!
//! let r = Schedule::parse("every 15m")?;
//! assert_eq!(r.to_string(), "rate(15 minutes)");
//! assert_eq!(r.to_azure()?, "0 */15 * * * *");
//! # Ok::<(), nube::ScheduleError>(())
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, TimeZone, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How many years ahead [`Schedule::next_after`] searches. Eight years is the
/// longest gap between two February 29ths (2096 to 2104).
const SEARCH_YEARS: i32 = 9;

/// How many years ahead [`Schedule::next_after`] searches when day-of-month
/// and day-of-week both restrict and must both match. A date can fall on a
/// given weekday as rarely as once in 40 years (February 29th). After the
/// 400 years of the Gregorian cycle the calendar repeats, so a schedule that
/// has not fired by then never will.
const CYCLE_YEARS: i32 = 400;

/// The accepted macros and their 5-field expansions.
const MACROS: [(&str, &str); 7] = [
    ("@hourly", "0 * * * *"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@weekly", "0 0 * * 0"),
    ("@monthly", "0 0 1 * *"),
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
];

const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// The longest each month can be (February in a leap year).
const MAX_MONTH_LEN: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

const AWS: &str = "aws";
const AZURE: &str = "azure";
const GCP: &str = "gcp";

/// When a timer function fires: a unix cron expression or a fixed rate.
///
/// Build one with [`Schedule::cron`], [`Schedule::every`] or
/// [`Schedule::parse`] (also available through [`FromStr`], [`TryFrom`] and
/// serde, all of which take the same text). The payloads are opaque so that
/// every `Schedule` in existence has been validated.
///
/// Equality compares the canonical text (see the [`Display`](fmt::Display)
/// implementation), so `"@daily"` and `"0 0 * * *"` are different values
/// even though they fire at the same times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// A standard 5-field unix cron expression, evaluated in UTC.
    Cron(CronExpr),
    /// A fixed rate of a whole number of minutes.
    Rate(Rate),
}

/// A parsed, validated 5-field unix cron expression (the payload of
/// [`Schedule::Cron`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronExpr {
    text: String,
    minute: Field,
    hour: Field,
    dom: Field,
    month: Field,
    dow: Field,
}

/// A validated fixed rate (the payload of [`Schedule::Rate`]): a whole number
/// of minutes, at least one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rate {
    minutes: u64,
}

/// Why a schedule could not be parsed, or could not be rendered for a target.
///
/// The message names the offending input, says what was wrong and what is
/// accepted or what to do instead. [`ScheduleError::target`] tells rendering
/// errors (`Some("aws")`, `Some("azure")`, `Some("gcp")`) from parse errors
/// (`None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleError {
    message: String,
    target: Option<&'static str>,
}

impl ScheduleError {
    fn parse(message: impl Into<String>) -> Self {
        ScheduleError {
            message: message.into(),
            target: None,
        }
    }

    fn render(target: &'static str, message: String) -> Self {
        ScheduleError {
            message,
            target: Some(target),
        }
    }

    /// The target the schedule was being rendered for: `"aws"`, `"azure"` or
    /// `"gcp"`; `None` when the text itself could not be parsed.
    pub fn target(&self) -> Option<&'static str> {
        self.target
    }

    /// The full, human-readable message (the same text as `Display`).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ScheduleError {}

impl Schedule {
    /// Parses a standard 5-field unix cron expression:
    /// `minute hour day-of-month month day-of-week`, in UTC.
    ///
    /// Each field takes `*`, a value, a list `a,b`, a range `a-b`, or a step
    /// `*/n`, `a-b/n` (and `a/n`, read as `a-MAX/n`). Months take `JAN`-`DEC`
    /// and weekdays `SUN`-`SAT` (case-insensitive) as well as numbers;
    /// day-of-week is 0-7 where both 0 and 7 are Sunday. The macros
    /// `@hourly`, `@daily`, `@midnight`, `@weekly`, `@monthly`, `@yearly` and
    /// `@annually` stand for their usual expansions.
    ///
    /// Refused: 6- or 7-field expressions (seconds or year fields), values
    /// out of range, empty list elements, step 0, reversed ranges, and the
    /// non-standard `?`, `L`, `W` and `#`.
    pub fn cron(expr: &str) -> Result<Schedule, ScheduleError> {
        CronExpr::parse(expr).map(Schedule::Cron)
    }

    /// A fixed rate: the function fires every `period`, at the multiples of
    /// `period` counted from the Unix epoch (for the targets that let the
    /// alignment be chosen).
    ///
    /// `period` must be a whole number of minutes, at least one minute.
    pub fn every(period: Duration) -> Result<Schedule, ScheduleError> {
        Rate::new(period).map(Schedule::Rate)
    }

    /// Parses any accepted schedule text:
    ///
    /// * a cron expression, as for [`Schedule::cron`];
    /// * an AWS-style rate, `rate(5 minutes)`, `rate(1 hour)`, `rate(2 days)`
    ///   (singular or plural unit);
    /// * `every 5m`, `every 2h`, `every 1d` (also `every 5 minutes`,
    ///   `every hour`, ...).
    pub fn parse(text: &str) -> Result<Schedule, ScheduleError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(ScheduleError::parse(
                "empty schedule: write a 5-field unix cron expression such as \"0 2 * * *\", \
                 or a rate such as \"rate(5 minutes)\" or \"every 5m\"",
            ));
        }
        let lower = trimmed.to_ascii_lowercase();
        let first_word = lower.split_whitespace().next().unwrap_or("");
        if lower.starts_with("rate(") || first_word == "rate" {
            return parse_rate_text(trimmed);
        }
        if first_word == "every" {
            return parse_every_text(trimmed);
        }
        if lower.starts_with("cron(") {
            return Err(ScheduleError::parse(format!(
                "schedule \"{trimmed}\": AWS-style cron(...) expressions are not accepted; \
                 write the standard 5-field unix form (minute hour day-of-month month \
                 day-of-week) without the year field and with * instead of ?, \
                 e.g. \"0 2 * * *\" for cron(0 2 * * ? *)"
            )));
        }
        Schedule::cron(trimmed)
    }

    /// Renders for AWS EventBridge: `cron(min hour dom month dow year)` or
    /// `rate(N unit)`.
    ///
    /// Exactly one of day-of-month and day-of-week becomes `?`. Day-of-week
    /// is converted to AWS numbering (1-7 = SUN-SAT), names become numbers,
    /// `*/n` becomes `0/n` (or `1/n` for day-of-month and month), and steps
    /// AWS cannot write (stepped day-of-week, `a-b/n` short of the field's
    /// end) are spelled out as lists. Fails when both day fields restrict,
    /// which AWS cannot express. That covers both unix cron cases: either
    /// field may match (neither begins with `*`, as in `"0 0 1 * 1"`), or both
    /// must match (one begins with `*` but is not exactly `*`, as in
    /// `"0 0 */2 * 1"`). See the [module documentation](crate::schedule).
    ///
    /// Note that AWS starts a `rate(...)` from the moment the rule is
    /// created, not from the epoch.
    pub fn to_aws(&self) -> Result<String, ScheduleError> {
        match self {
            Schedule::Rate(rate) => Ok(rate.to_string()),
            Schedule::Cron(c) => {
                let (dom, dow) = match c.day_mode() {
                    DayMode::Every => ("*".to_string(), "?".to_string()),
                    DayMode::DomOnly => (render_aws(FieldKind::DayOfMonth, &c.dom), "?".into()),
                    DayMode::DowOnly => ("?".into(), render_aws(FieldKind::DayOfWeek, &c.dow)),
                    DayMode::Both => {
                        let (name, field) = if c.dom.star_flagged() {
                            ("day-of-month", render_std(FieldKind::DayOfMonth, &c.dom))
                        } else {
                            ("day-of-week", render_std(FieldKind::DayOfWeek, &c.dow))
                        };
                        return Err(ScheduleError::render(
                            AWS,
                            format!(
                                "cron \"{}\": AWS EventBridge cannot express a schedule that \
                                 restricts both day-of-month and day-of-week and needs both to \
                                 match (unix cron requires both when either day field begins \
                                 with *, as {name} \"{field}\" does); AWS takes a restriction in \
                                 only one of the two, so restrict just one day field and check \
                                 the other inside the function",
                                c.text
                            ),
                        ));
                    }
                    DayMode::Either => {
                        return Err(ScheduleError::render(
                            AWS,
                            format!(
                                "cron \"{}\": AWS EventBridge cannot express a schedule that \
                                 restricts both day-of-month and day-of-week (unix cron fires \
                                 when either matches); split it into two timer functions, one \
                                 restricting day-of-month and one restricting day-of-week",
                                c.text
                            ),
                        ));
                    }
                };
                Ok(format!(
                    "cron({} {} {} {} {} *)",
                    render_aws(FieldKind::Minute, &c.minute),
                    render_aws(FieldKind::Hour, &c.hour),
                    dom,
                    render_aws(FieldKind::Month, &c.month),
                    dow
                ))
            }
        }
    }

    /// Renders for Azure Functions as a 6-field NCRONTAB expression
    /// `{second} {minute} {hour} {day} {month} {day-of-week}` with second 0
    /// and day-of-week 0-6 (Sunday = 0).
    ///
    /// A rate renders only when cron steps keep it fixed: N minutes where N
    /// divides 60 (`0 */N * * * *`), N hours where N divides 24
    /// (`0 0 */N * * *`), or exactly one day (`0 0 0 * * *`). NCRONTAB
    /// requires day-of-month **and** day-of-week to match. Unix cron does the
    /// same when either day field begins with `*`, so such schedules map
    /// directly (`"0 0 */2 * 1"` becomes `0 0 0 */2 * 1`). A cron where neither
    /// begins with `*` and both restrict means "either" and is refused.
    pub fn to_azure(&self) -> Result<String, ScheduleError> {
        match self {
            Schedule::Rate(rate) => match rate.as_cron() {
                Some(fields) => Ok(format!("0 {fields}")),
                None => Err(rate.not_fixed_error(AZURE)),
            },
            Schedule::Cron(c) => {
                let (dom, dow) = match c.day_mode() {
                    DayMode::Every => ("*".to_string(), "*".to_string()),
                    DayMode::DomOnly => (render_std(FieldKind::DayOfMonth, &c.dom), "*".into()),
                    DayMode::DowOnly => ("*".into(), render_std(FieldKind::DayOfWeek, &c.dow)),
                    DayMode::Both => (
                        render_std(FieldKind::DayOfMonth, &c.dom),
                        render_std(FieldKind::DayOfWeek, &c.dow),
                    ),
                    DayMode::Either => {
                        return Err(ScheduleError::render(
                            AZURE,
                            format!(
                                "cron \"{}\": Azure Functions NCRONTAB fires only when \
                                 day-of-month and day-of-week both match, but unix cron fires \
                                 when either matches; split it into two timer functions, one \
                                 restricting day-of-month and one restricting day-of-week",
                                c.text
                            ),
                        ));
                    }
                };
                Ok(format!(
                    "0 {} {} {} {} {}",
                    render_std(FieldKind::Minute, &c.minute),
                    render_std(FieldKind::Hour, &c.hour),
                    dom,
                    render_std(FieldKind::Month, &c.month),
                    dow
                ))
            }
        }
    }

    /// Renders as a normalised 5-field unix cron expression, as Google Cloud
    /// Scheduler takes it (with the time zone set to UTC).
    ///
    /// Macros are expanded, names become numbers, weekday 7 becomes 0 and
    /// `a/n` becomes `a-MAX/n`; lists, ranges and steps otherwise keep their
    /// shape. A rate follows the same rule as [`Schedule::to_azure`]:
    /// `*/N * * * *`, `0 */N * * *` or `0 0 * * *`.
    pub fn to_unix_cron(&self) -> Result<String, ScheduleError> {
        match self {
            Schedule::Rate(rate) => rate.as_cron().ok_or_else(|| rate.not_fixed_error(GCP)),
            Schedule::Cron(c) => Ok(format!(
                "{} {} {} {} {}",
                render_std(FieldKind::Minute, &c.minute),
                render_std(FieldKind::Hour, &c.hour),
                render_std(FieldKind::DayOfMonth, &c.dom),
                render_std(FieldKind::Month, &c.month),
                render_std(FieldKind::DayOfWeek, &c.dow)
            )),
        }
    }

    /// The first fire time strictly after `after`.
    ///
    /// Cron schedules fire on whole minutes, with Vixie cron day semantics
    /// (see the [module documentation](crate::schedule)). The search looks
    /// about nine years ahead, enough to reach any February 29th, and returns
    /// `None` for a date that never occurs, such as `"0 0 30 2 *"`. When both
    /// day fields restrict and must both match (`"0 0 29 2 */6"`, February
    /// 29th on a weekend), it looks through a whole 400-year Gregorian cycle
    /// instead, as such a day can come only once in 40 years. Rates fire at
    /// the multiples of the period counted from the Unix epoch.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Cron(c) => c.next_after(after),
            Schedule::Rate(r) => r.next_after(after),
        }
    }

    /// Whether this is a fixed rate.
    pub fn is_rate(&self) -> bool {
        matches!(self, Schedule::Rate(_))
    }

    /// Whether this is a cron expression.
    pub fn is_cron(&self) -> bool {
        matches!(self, Schedule::Cron(_))
    }

    /// The period of a fixed rate; `None` for a cron expression.
    pub fn period(&self) -> Option<Duration> {
        match self {
            Schedule::Rate(r) => Some(r.period()),
            Schedule::Cron(_) => None,
        }
    }
}

impl fmt::Display for Schedule {
    /// The canonical text: the cron expression as given (trimmed, single
    /// spaces, macros in lower case) or `rate(N unit)` in the largest whole
    /// unit. Parsing it gives back an equal `Schedule`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Cron(c) => fmt::Display::fmt(c, f),
            Schedule::Rate(r) => fmt::Display::fmt(r, f),
        }
    }
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    /// Same as [`Schedule::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Schedule::parse(s)
    }
}

impl TryFrom<&str> for Schedule {
    type Error = ScheduleError;

    /// Same as [`Schedule::parse`].
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Schedule::parse(s)
    }
}

impl TryFrom<String> for Schedule {
    type Error = ScheduleError;

    /// Same as [`Schedule::parse`].
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Schedule::parse(&s)
    }
}

impl Serialize for Schedule {
    /// Serialises as the canonical text (see `Display`).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Schedule {
    /// Deserialises from a string accepted by [`Schedule::parse`].
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Schedule::parse(&text).map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------
// Rates

impl Rate {
    fn new(period: Duration) -> Result<Rate, ScheduleError> {
        let secs = period.as_secs();
        if period.subsec_nanos() != 0 || !secs.is_multiple_of(60) || secs == 0 {
            return Err(ScheduleError::parse(format!(
                "rate of {period:?}: a rate must be a whole number of minutes and at least \
                 1 minute (cloud timers fire at minute resolution)"
            )));
        }
        if i64::try_from(secs).is_err() {
            return Err(ScheduleError::parse(format!(
                "rate of {period:?}: the period is too long to schedule"
            )));
        }
        Ok(Rate { minutes: secs / 60 })
    }

    /// The period between two firings.
    pub fn period(&self) -> Duration {
        Duration::from_secs(self.minutes * 60)
    }

    /// The period in whole minutes.
    pub fn minutes(&self) -> u64 {
        self.minutes
    }

    /// The period in its largest whole unit: `(n, "minute" | "hour" | "day")`.
    fn in_largest_unit(&self) -> (u64, &'static str) {
        if self.minutes.is_multiple_of(1440) {
            (self.minutes / 1440, "day")
        } else if self.minutes.is_multiple_of(60) {
            (self.minutes / 60, "hour")
        } else {
            (self.minutes, "minute")
        }
    }

    /// "7 minutes", "1 hour".
    fn describe(&self) -> String {
        let (n, unit) = self.in_largest_unit();
        let plural = if n == 1 { "" } else { "s" };
        format!("{n} {unit}{plural}")
    }

    /// The 5-field unix cron for this rate, when cron steps keep it fixed.
    fn as_cron(&self) -> Option<String> {
        let m = self.minutes;
        if m == 1 {
            Some("* * * * *".into())
        } else if m < 60 && 60u64.is_multiple_of(m) {
            Some(format!("*/{m} * * * *"))
        } else if m == 60 {
            Some("0 * * * *".into())
        } else if m.is_multiple_of(60) && m / 60 < 24 && 24u64.is_multiple_of(m / 60) {
            Some(format!("0 */{} * * *", m / 60))
        } else if m == 1440 {
            Some("0 0 * * *".into())
        } else {
            None
        }
    }

    fn not_fixed_error(&self, target: &'static str) -> ScheduleError {
        let (name, extra) = if target == AZURE {
            (
                "Azure Functions NCRONTAB",
                "; Azure's TimeSpan schedule form (hh:mm:ss) could express it but only works \
                 on App Service plans, so nube does not emit it",
            )
        } else {
            ("Google Cloud Scheduler (unix cron)", "")
        };
        let what = self.describe();
        ScheduleError::render(
            target,
            format!(
                "{self}: {name} cannot express a fixed rate of {what}: a cron step restarts at \
                 every hour or day boundary, so a step that does not divide the hour or the day \
                 would not be a fixed rate; use a period that divides an hour (1, 2, 3, 4, 5, 6, \
                 10, 12, 15, 20 or 30 minutes), one that divides a day (1, 2, 3, 4, 6, 8 or 12 \
                 hours), or exactly 1 day{extra}"
            ),
        )
    }

    fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let period = i64::try_from(self.minutes.checked_mul(60)?).ok()?;
        let k = after.timestamp().div_euclid(period).checked_add(1)?;
        DateTime::from_timestamp(k.checked_mul(period)?, 0)
    }
}

impl fmt::Display for Rate {
    /// `rate(N unit)` in the largest whole unit, singular for 1.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rate({})", self.describe())
    }
}

/// Minutes in one `unit` (case-insensitive), for `rate(...)` and `every ...`.
fn unit_minutes(unit: &str, short_forms: bool) -> Option<u64> {
    match unit.to_ascii_lowercase().as_str() {
        "minute" | "minutes" => Some(1),
        "hour" | "hours" => Some(60),
        "day" | "days" => Some(1440),
        "m" | "min" | "mins" if short_forms => Some(1),
        "h" | "hr" | "hrs" if short_forms => Some(60),
        "d" if short_forms => Some(1440),
        _ => None,
    }
}

fn rate_from_parts(
    text: &str,
    count: u64,
    unit_minutes: u64,
    example: &str,
) -> Result<Schedule, ScheduleError> {
    if count == 0 {
        return Err(ScheduleError::parse(format!(
            "schedule \"{text}\": a rate must be at least 1, e.g. {example}"
        )));
    }
    let secs = count
        .checked_mul(unit_minutes)
        .and_then(|m| m.checked_mul(60))
        .ok_or_else(|| {
            ScheduleError::parse(format!(
                "schedule \"{text}\": the period is too long to schedule"
            ))
        })?;
    Schedule::every(Duration::from_secs(secs))
}

fn parse_count(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // All digits: the only failure left is overflow, reported as too long.
    Some(text.parse().unwrap_or(u64::MAX))
}

/// `rate(5 minutes)`; `text` is trimmed and starts with "rate" in any case.
fn parse_rate_text(text: &str) -> Result<Schedule, ScheduleError> {
    let err = || {
        ScheduleError::parse(format!(
            "schedule \"{text}\": expected rate(N unit) with a whole number N >= 1 and unit \
             minute(s), hour(s) or day(s), e.g. rate(5 minutes), rate(1 hour), rate(2 days)"
        ))
    };
    let inner = text[4..]
        .trim_start()
        .strip_prefix('(')
        .and_then(|rest| rest.strip_suffix(')'))
        .ok_or_else(err)?;
    let mut parts = inner.split_whitespace();
    let (Some(count), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(err());
    };
    let count = parse_count(count).ok_or_else(err)?;
    let unit = unit_minutes(unit, false).ok_or_else(err)?;
    rate_from_parts(text, count, unit, "rate(1 minute)")
}

/// `every 5m`; `text` is trimmed and its first word is "every" in any case.
fn parse_every_text(text: &str) -> Result<Schedule, ScheduleError> {
    let err = || {
        ScheduleError::parse(format!(
            "schedule \"{text}\": expected \"every N unit\" with a whole number N >= 1 and unit \
             m, h or d (or minutes, hours, days), e.g. every 5m, every 2h, every 1d"
        ))
    };
    let rest = text[5..].trim();
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let (count, unit) = rest.split_at(digits);
    let count = if count.is_empty() {
        1 // "every hour"
    } else {
        parse_count(count).ok_or_else(err)?
    };
    let unit = unit_minutes(unit.trim(), true).ok_or_else(err)?;
    rate_from_parts(text, count, unit, "every 1m")
}

// ---------------------------------------------------------------------------
// Cron fields

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FieldKind {
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl FieldKind {
    const ALL: [FieldKind; 5] = [
        FieldKind::Minute,
        FieldKind::Hour,
        FieldKind::DayOfMonth,
        FieldKind::Month,
        FieldKind::DayOfWeek,
    ];

    fn name(self) -> &'static str {
        match self {
            FieldKind::Minute => "minute",
            FieldKind::Hour => "hour",
            FieldKind::DayOfMonth => "day-of-month",
            FieldKind::Month => "month",
            FieldKind::DayOfWeek => "day-of-week",
        }
    }

    /// Smallest accepted value.
    fn min(self) -> u32 {
        match self {
            FieldKind::DayOfMonth | FieldKind::Month => 1,
            _ => 0,
        }
    }

    /// Largest accepted value (7 for day-of-week, an alias of Sunday).
    fn max(self) -> u32 {
        match self {
            FieldKind::Minute => 59,
            FieldKind::Hour => 23,
            FieldKind::DayOfMonth => 31,
            FieldKind::Month => 12,
            FieldKind::DayOfWeek => 7,
        }
    }

    /// The end of `*` (and of `a/n`): day-of-week `*` is 0-6.
    fn star_max(self) -> u32 {
        match self {
            FieldKind::DayOfWeek => 6,
            other => other.max(),
        }
    }

    /// Names accepted for the values `min()..`, if any.
    fn names(self) -> &'static [&'static str] {
        match self {
            FieldKind::Month => &MONTH_NAMES,
            FieldKind::DayOfWeek => &WEEKDAY_NAMES,
            _ => &[],
        }
    }

    fn accepts(self) -> &'static str {
        match self {
            FieldKind::Minute => "0-59",
            FieldKind::Hour => "0-23",
            FieldKind::DayOfMonth => "1-31",
            FieldKind::Month => "1-12 or JAN-DEC",
            FieldKind::DayOfWeek => "0-7 (0 and 7 are both Sunday) or SUN-SAT",
        }
    }
}

/// One element of a field's comma-separated list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Item {
    /// `*` (step 1) or `*/step`.
    Star { step: u32 },
    /// `v` (lo == hi, step 1), `lo-hi`, `lo-hi/step`, or `lo/step` (hi is
    /// the field's `star_max`).
    Range { lo: u32, hi: u32, step: u32 },
}

impl Item {
    fn bounds(self, kind: FieldKind) -> (u32, u32, u32) {
        match self {
            Item::Star { step } => (kind.min(), kind.star_max(), step),
            Item::Range { lo, hi, step } => (lo, hi, step),
        }
    }

    fn values(self, kind: FieldKind) -> impl Iterator<Item = u32> {
        let (lo, hi, step) = self.bounds(kind);
        (lo..=hi).step_by(step as usize)
    }
}

/// A parsed field: its items (kept for rendering) and the set of values as
/// a bit mask (day-of-week 7 folded into 0).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Field {
    items: Vec<Item>,
    mask: u64,
}

impl Field {
    /// Exactly `*`: the field does not restrict anything.
    fn is_star(&self) -> bool {
        self.items == [Item::Star { step: 1 }]
    }

    /// Whether the field's text begins with `*` (`*`, `*/2`, `*,5`). This is
    /// Vixie cron's DOM_STAR/DOW_STAR flag, which decides how the two day
    /// fields combine. A valid field begins with `*` exactly when its first
    /// item is a star.
    fn star_flagged(&self) -> bool {
        matches!(self.items.first(), Some(Item::Star { .. }))
    }

    fn contains(&self, value: u32) -> bool {
        value < 64 && self.mask & (1 << value) != 0
    }

    /// Whether every value `min..=star_max` is selected.
    fn is_full(&self, kind: FieldKind) -> bool {
        (kind.min()..=kind.star_max()).all(|v| self.contains(v))
    }

    /// The smallest selected value `>= from`.
    fn next_from(&self, from: u32) -> Option<u32> {
        if from >= 64 {
            return None;
        }
        let rest = self.mask >> from;
        (rest != 0).then(|| from + rest.trailing_zeros())
    }
}

fn field_error(kind: FieldKind, text: &str, problem: &str) -> String {
    format!(
        "{name} field \"{text}\": {problem}; {name} accepts {accepts}, written as *, a value, \
         a list a,b, a range a-b, or a step */n or a-b/n",
        name = kind.name(),
        accepts = kind.accepts()
    )
}

fn parse_field(kind: FieldKind, text: &str) -> Result<Field, String> {
    let mut items = Vec::new();
    for part in text.split(',') {
        if part.is_empty() {
            return Err(field_error(
                kind,
                text,
                "the list has an empty element (check for a stray or doubled comma)",
            ));
        }
        items.push(parse_item(kind, text, part)?);
    }
    let mut mask = 0u64;
    for item in &items {
        for v in item.values(kind) {
            mask |= 1 << v;
        }
    }
    if kind == FieldKind::DayOfWeek && mask & (1 << 7) != 0 {
        mask = (mask & !(1 << 7)) | 1;
    }
    Ok(Field { items, mask })
}

fn parse_item(kind: FieldKind, field: &str, part: &str) -> Result<Item, String> {
    let (base, step) = match part.split_once('/') {
        None => (part, None),
        Some((base, step)) => (base, Some(parse_step(kind, field, step)?)),
    };
    if base == "*" {
        return Ok(Item::Star {
            step: step.unwrap_or(1),
        });
    }
    if base.is_empty() {
        return Err(field_error(
            kind,
            field,
            &format!("\"{part}\" has no value or * before the '/'"),
        ));
    }
    let (lo, hi) = match base.split_once('-') {
        Some((a, b)) => {
            let lo = parse_value(kind, field, a)?;
            let hi = parse_value(kind, field, b)?;
            if lo > hi {
                let min = kind.min();
                let top = kind.star_max().max(lo);
                let first = if lo == top {
                    lo.to_string()
                } else {
                    format!("{lo}-{top}")
                };
                let second = if hi == min {
                    min.to_string()
                } else {
                    format!("{min}-{hi}")
                };
                return Err(field_error(
                    kind,
                    field,
                    &format!(
                        "the range {base} is reversed and cron ranges do not wrap around; \
                         write it as a list, {first},{second}"
                    ),
                ));
            }
            (lo, hi)
        }
        None => {
            let v = parse_value(kind, field, base)?;
            match step {
                Some(_) => (v, kind.star_max().max(v)),
                None => (v, v),
            }
        }
    };
    Ok(Item::Range {
        lo,
        hi,
        step: step.unwrap_or(1),
    })
}

fn parse_step(kind: FieldKind, field: &str, text: &str) -> Result<u32, String> {
    let largest = kind.star_max() - kind.min();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(field_error(
            kind,
            field,
            &format!("the step \"{text}\" is not a whole number (a step is */n or a-b/n)"),
        ));
    }
    let step: u32 = text.parse().unwrap_or(u32::MAX);
    if step == 0 {
        return Err(field_error(
            kind,
            field,
            "a step of 0 never advances; use a step of 1 or more",
        ));
    }
    if step > largest {
        return Err(field_error(
            kind,
            field,
            &format!(
                "the step {text} is larger than the field's range, so it would select a \
                 single value; write that value instead (steps go up to {largest})"
            ),
        ));
    }
    Ok(step)
}

fn parse_value(kind: FieldKind, field: &str, token: &str) -> Result<u32, String> {
    if token.is_empty() {
        return Err(field_error(kind, field, "a value is missing around '-'"));
    }
    if token.bytes().all(|b| b.is_ascii_digit()) {
        let v: u32 = token.parse().unwrap_or(u32::MAX);
        if v < kind.min() || v > kind.max() {
            return Err(field_error(
                kind,
                field,
                &format!("the value {token} is out of range"),
            ));
        }
        return Ok(v);
    }
    let upper = token.to_ascii_uppercase();
    if let Some(i) = kind.names().iter().position(|n| *n == upper) {
        return Ok(kind.min() + i as u32);
    }
    let problem = if token == "?" {
        "'?' is AWS/Quartz syntax, not unix cron; use * instead".to_string()
    } else if token.contains('#')
        || upper == "L"
        || upper == "LW"
        || (token.len() > 1
            && (upper.ends_with('L') || upper.ends_with('W'))
            && token[..token.len() - 1].bytes().all(|b| b.is_ascii_digit()))
    {
        format!(
            "\"{token}\" uses the Quartz/AWS extensions L, W or #, which standard unix cron \
             (and so nube) does not support"
        )
    } else if kind.names().is_empty() {
        format!("\"{token}\" is not a number")
    } else {
        format!(
            "\"{token}\" is neither a number nor one of the names {}",
            kind.names().join(",")
        )
    };
    Err(field_error(kind, field, &problem))
}

// ---------------------------------------------------------------------------
// Cron expressions

/// How the two day fields combine, for rendering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DayMode {
    /// Every day matches. Either both fields are exactly `*`, or a day may
    /// match either field and one of them covers every day.
    Every,
    /// Only day-of-month restricts (day-of-week matches every day).
    DomOnly,
    /// Only day-of-week restricts (day-of-month matches every day).
    DowOnly,
    /// Both restrict and a day must match both. One field begins with `*`
    /// without being exactly `*` (`*/2`), and neither covers every day.
    Both,
    /// Both restrict and a day matches if either matches. Neither field
    /// begins with `*`, and neither covers every day.
    Either,
}

impl CronExpr {
    fn parse(expr: &str) -> Result<CronExpr, ScheduleError> {
        let tokens: Vec<&str> = expr.split_whitespace().collect();
        let text = tokens.join(" ");
        let err = |detail: &str| ScheduleError::parse(format!("cron \"{text}\": {detail}"));
        let fields: Vec<&str> = match tokens.as_slice() {
            [] => {
                return Err(ScheduleError::parse(
                    "empty cron expression: expected 5 fields, minute hour day-of-month month \
                     day-of-week, e.g. \"0 2 * * *\"",
                ));
            }
            [single] if single.starts_with('@') => {
                let lower = single.to_ascii_lowercase();
                if lower == "@reboot" {
                    return Err(err(
                        "@reboot means \"at machine start-up\", which a serverless timer does \
                         not have; use a time-based schedule such as @daily",
                    ));
                }
                let Some((name, expansion)) = MACROS.iter().find(|(name, _)| *name == lower) else {
                    return Err(err(
                        "unknown macro; use one of @hourly, @daily, @midnight, @weekly, \
                         @monthly, @yearly, @annually, or 5 fields",
                    ));
                };
                return CronExpr::from_fields(name.to_string(), expansion.split(' ').collect())
                    .map_err(|detail| err(&detail));
            }
            [first, ..] if first.starts_with('@') => {
                return Err(err(
                    "a macro such as @daily must stand alone, without other fields",
                ));
            }
            [_, _, _, _, _] => tokens.clone(),
            [_, _, _, _, _, _] => {
                return Err(err(
                    "has 6 fields, but nube takes standard 5-field unix cron (minute hour \
                     day-of-month month day-of-week); drop the leading seconds field \
                     (Azure/Quartz style) or the trailing year field (AWS style)",
                ));
            }
            [_, _, _, _, _, _, _] => {
                return Err(err(
                    "has 7 fields (Quartz style, with seconds and year), but nube takes \
                     standard 5-field unix cron (minute hour day-of-month month day-of-week); \
                     drop the seconds and year fields",
                ));
            }
            other => {
                return Err(err(&format!(
                    "has {} field{}, but a cron expression has exactly 5: minute hour \
                     day-of-month month day-of-week, e.g. \"0 2 * * *\"",
                    other.len(),
                    if other.len() == 1 { "" } else { "s" }
                )));
            }
        };
        CronExpr::from_fields(text.clone(), fields).map_err(|detail| err(&detail))
    }

    fn from_fields(text: String, fields: Vec<&str>) -> Result<CronExpr, String> {
        let mut parsed = FieldKind::ALL
            .iter()
            .zip(fields)
            .map(|(&kind, field)| parse_field(kind, field))
            .collect::<Result<Vec<Field>, String>>()?
            .into_iter();
        let mut next = || parsed.next().expect("five fields");
        Ok(CronExpr {
            text,
            minute: next(),
            hour: next(),
            dom: next(),
            month: next(),
            dow: next(),
        })
    }

    /// The expression as given (trimmed, single spaces; macros lower-cased).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Vixie cron: when either day field begins with `*`, a day must match
    /// both fields; when neither does, it may match either.
    fn days_must_both_match(&self) -> bool {
        self.dom.star_flagged() || self.dow.star_flagged()
    }

    fn day_mode(&self) -> DayMode {
        let dom_full = self.dom.is_full(FieldKind::DayOfMonth);
        let dow_full = self.dow.is_full(FieldKind::DayOfWeek);
        if !self.days_must_both_match() {
            return if dom_full || dow_full {
                DayMode::Every
            } else {
                DayMode::Either
            };
        }
        match (self.dom.is_star(), self.dow.is_star()) {
            (true, true) => DayMode::Every,
            (false, true) => DayMode::DomOnly,
            (true, false) => DayMode::DowOnly,
            // One begins with `*` but is not exactly `*` ("*/2"). A field that
            // covers every day leaves the other to decide alone.
            (false, false) => match (dom_full, dow_full) {
                (true, true) => DayMode::Every,
                (false, true) => DayMode::DomOnly,
                (true, false) => DayMode::DowOnly,
                (false, false) => DayMode::Both,
            },
        }
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        let dom = self.dom.contains(date.day());
        let dow = self.dow.contains(date.weekday().num_days_from_sunday());
        if self.days_must_both_match() {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// Day-of-month must match and no selected month is long enough for any
    /// selected day ("0 0 30 2 *", "0 0 31 4 */2").
    fn never_fires(&self) -> bool {
        if !self.days_must_both_match() {
            return false;
        }
        let first_day = self.dom.mask.trailing_zeros();
        (1..=12u32)
            .filter(|&m| self.month.contains(m))
            .all(|m| first_day > MAX_MONTH_LEN[m as usize - 1])
    }

    /// The next day after `date` that could match.
    fn next_day(&self, date: NaiveDate) -> Option<NaiveDate> {
        if self.days_must_both_match() {
            // Day-of-month must match: jump straight to the next selected day.
            if let Some(day) = self.dom.next_from(date.day() + 1)
                && let Some(next) = date.with_day(day)
            {
                return Some(next);
            }
            return first_of_next_month(date);
        }
        date.succ_opt()
    }

    fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.never_fires() {
            return None;
        }
        let start = after
            .with_nanosecond(0)?
            .with_second(0)?
            .checked_add_signed(TimeDelta::minutes(1))?;
        let years = if self.day_mode() == DayMode::Both {
            CYCLE_YEARS
        } else {
            SEARCH_YEARS
        };
        let last_year = start.year().checked_add(years)?;
        let mut date = start.date_naive();
        let mut hour = start.hour();
        let mut minute = start.minute();
        loop {
            if date.year() > last_year {
                return None;
            }
            if !self.month.contains(date.month()) {
                date = first_of_next_month(date)?;
                (hour, minute) = (0, 0);
                continue;
            }
            if !self.day_matches(date) {
                date = self.next_day(date)?;
                (hour, minute) = (0, 0);
                continue;
            }
            if let Some(h) = self.hour.next_from(hour) {
                let from = if h == hour { minute } else { 0 };
                if let Some(m) = self.minute.next_from(from) {
                    return Some(Utc.from_utc_datetime(&date.and_hms_opt(h, m, 0)?));
                }
                if h < 23 {
                    (hour, minute) = (h + 1, 0);
                    continue;
                }
            }
            date = date.succ_opt()?;
            (hour, minute) = (0, 0);
        }
    }
}

impl fmt::Display for CronExpr {
    /// The expression as given (trimmed, single spaces; macros lower-cased).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn first_of_next_month(date: NaiveDate) -> Option<NaiveDate> {
    if date.month() == 12 {
        NaiveDate::from_ymd_opt(date.year().checked_add(1)?, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(date.year(), date.month() + 1, 1)
    }
}

// ---------------------------------------------------------------------------
// Rendering

/// `lo`, `lo-hi` or `lo-hi/step`, whichever is the shortest exact form.
fn range_text(lo: u32, hi: u32, step: u32) -> String {
    if lo == hi || lo + step > hi {
        lo.to_string()
    } else if step == 1 {
        format!("{lo}-{hi}")
    } else {
        format!("{lo}-{hi}/{step}")
    }
}

fn join_unique(tokens: Vec<String>) -> String {
    let mut seen: Vec<String> = Vec::with_capacity(tokens.len());
    for token in tokens {
        if !seen.contains(&token) {
            seen.push(token);
        }
    }
    seen.join(",")
}

/// Unix cron / NCRONTAB form of a field: numbers only, weekday 7 as 0,
/// `a/n` as `a-MAX/n`.
fn render_std(kind: FieldKind, field: &Field) -> String {
    let mut tokens = Vec::new();
    for &item in &field.items {
        match item {
            Item::Star { step: 1 } => tokens.push("*".to_string()),
            Item::Star { step } => tokens.push(format!("*/{step}")),
            Item::Range { lo, hi, step } if kind == FieldKind::DayOfWeek && hi == 7 => {
                // Sunday as 7 is not accepted everywhere (NCRONTAB takes 0-6).
                if lo <= 6 {
                    tokens.push(range_text(lo, 6, step));
                }
                if (7 - lo) % step == 0 && lo != 0 {
                    tokens.push("0".to_string());
                }
            }
            Item::Range { lo, hi, step } => tokens.push(range_text(lo, hi, step)),
        }
    }
    join_unique(tokens)
}

/// AWS EventBridge form of a field (day-of-week in AWS numbering 1-7 =
/// SUN-SAT; no `/` in day-of-week; `a-b/n` only as `a/n` up to the end).
fn render_aws(kind: FieldKind, field: &Field) -> String {
    let mut tokens = Vec::new();
    for &item in &field.items {
        if kind == FieldKind::DayOfWeek {
            match item {
                Item::Star { step: 1 } => tokens.push("*".to_string()),
                Item::Range { lo, hi, step: 1 } if hi <= 6 => {
                    tokens.push(range_text(lo + 1, hi + 1, 1));
                }
                Item::Range { lo, hi: 7, step: 1 } => {
                    if lo <= 6 {
                        tokens.push(range_text(lo + 1, 7, 1));
                    }
                    if lo != 0 {
                        tokens.push("1".to_string());
                    }
                }
                stepped => {
                    tokens.extend(stepped.values(kind).map(|v| (v % 7 + 1).to_string()));
                }
            }
            continue;
        }
        match item {
            Item::Star { step: 1 } => tokens.push("*".to_string()),
            Item::Star { step } => tokens.push(format!("{}/{step}", kind.min())),
            Item::Range { lo, hi, step } if step == 1 || lo + step > hi => {
                tokens.push(range_text(lo, hi, step));
            }
            Item::Range { lo, hi, step } if hi == kind.star_max() => {
                tokens.push(format!("{lo}/{step}"));
            }
            stepped => tokens.extend(stepped.values(kind).map(|v| v.to_string())),
        }
    }
    join_unique(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Schedule {
        Schedule::parse(text).unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
    }

    fn aws(text: &str) -> String {
        s(text)
            .to_aws()
            .unwrap_or_else(|e| panic!("{text:?} aws: {e}"))
    }

    fn azure(text: &str) -> String {
        s(text)
            .to_azure()
            .unwrap_or_else(|e| panic!("{text:?} azure: {e}"))
    }

    fn unix(text: &str) -> String {
        s(text)
            .to_unix_cron()
            .unwrap_or_else(|e| panic!("{text:?} unix: {e}"))
    }

    fn parse_err(text: &str) -> String {
        match Schedule::parse(text) {
            Ok(s) => panic!("{text:?} should not parse, got {s:?}"),
            Err(e) => {
                assert_eq!(e.target(), None, "{e}");
                e.to_string()
            }
        }
    }

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn next(text: &str, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        s(text).next_after(after)
    }

    fn rate(minutes: u64) -> Schedule {
        Schedule::every(Duration::from_secs(minutes * 60)).unwrap()
    }

    // --- translations -----------------------------------------------------

    #[test]
    fn daily_at_two() {
        assert_eq!(aws("0 2 * * *"), "cron(0 2 * * ? *)");
        assert_eq!(azure("0 2 * * *"), "0 0 2 * * *");
        assert_eq!(unix("0 2 * * *"), "0 2 * * *");
    }

    #[test]
    fn every_fifteen_minutes() {
        assert_eq!(aws("*/15 * * * *"), "cron(0/15 * * * ? *)");
        assert_eq!(azure("*/15 * * * *"), "0 */15 * * * *");
        assert_eq!(unix("*/15 * * * *"), "*/15 * * * *");
        assert_eq!(aws("0 */6 * * *"), "cron(0 0/6 * * ? *)");
        assert_eq!(aws("0 0 */2 */3 *"), "cron(0 0 1/2 1/3 ? *)");
    }

    #[test]
    fn weekdays() {
        assert_eq!(aws("0 9 * * 1-5"), "cron(0 9 ? * 2-6 *)");
        assert_eq!(azure("0 9 * * 1-5"), "0 0 9 * * 1-5");
        assert_eq!(unix("0 9 * * 1-5"), "0 9 * * 1-5");
        assert_eq!(aws("0 9 * * mon-fri"), "cron(0 9 ? * 2-6 *)");
        assert_eq!(azure("0 9 * * MON-FRI"), "0 0 9 * * 1-5");
        assert_eq!(unix("0 9 * * Mon-Fri"), "0 9 * * 1-5");
    }

    #[test]
    fn day_of_month_only() {
        assert_eq!(aws("30 8 1 * *"), "cron(30 8 1 * ? *)");
        assert_eq!(azure("30 8 1 * *"), "0 30 8 1 * *");
        assert_eq!(unix("30 8 1 * *"), "30 8 1 * *");
        assert_eq!(aws("0 0 1,15 * *"), "cron(0 0 1,15 * ? *)");
    }

    #[test]
    fn both_day_fields_restricted() {
        let sched = s("0 0 1 * MON");
        let err = sched.to_aws().unwrap_err();
        assert_eq!(err.target(), Some("aws"));
        assert_eq!(
            err.to_string(),
            "cron \"0 0 1 * MON\": AWS EventBridge cannot express a schedule that restricts \
             both day-of-month and day-of-week (unix cron fires when either matches); split it \
             into two timer functions, one restricting day-of-month and one restricting \
             day-of-week"
        );
        // NCRONTAB would AND the two fields, a different schedule: refused.
        let err = sched.to_azure().unwrap_err();
        assert_eq!(err.target(), Some("azure"));
        assert!(err.to_string().contains("either matches"), "{err}");
        assert!(err.to_string().contains("split it"), "{err}");
        // Unix cron has the same OR semantics: passes through.
        assert_eq!(sched.to_unix_cron().unwrap(), "0 0 1 * 1");
        assert!(s("0 0 1 * 1").to_aws().is_err());
        assert!(s("0 0 1-15 * 1,3").to_azure().is_err());
    }

    #[test]
    fn star_flagged_day_field_needs_both() {
        // "*/2" begins with *, so the two day fields are ANDed: odd days that
        // are Mondays. AWS cannot express that.
        let sched = s("0 0 */2 * 1");
        let err = sched.to_aws().unwrap_err();
        assert_eq!(err.target(), Some("aws"));
        assert_eq!(
            err.to_string(),
            "cron \"0 0 */2 * 1\": AWS EventBridge cannot express a schedule that restricts \
             both day-of-month and day-of-week and needs both to match (unix cron requires both \
             when either day field begins with *, as day-of-month \"*/2\" does); AWS takes a \
             restriction in only one of the two, so restrict just one day field and check the \
             other inside the function"
        );
        // NCRONTAB ANDs the fields too: maps directly.
        assert_eq!(sched.to_azure().unwrap(), "0 0 0 */2 * 1");
        assert_eq!(sched.to_unix_cron().unwrap(), "0 0 */2 * 1");

        // The same with day-of-week star-flagged.
        let e = s("0 0 1 * */2").to_aws().unwrap_err();
        assert!(e.to_string().contains("as day-of-week \"*/2\" does"), "{e}");
        assert_eq!(azure("0 0 1 * */2"), "0 0 0 1 * */2");
        assert_eq!(azure("0 0 1-7 * */3"), "0 0 0 1-7 * */3");
        assert!(s("0 0 */2 * */3").to_aws().is_err());
        assert_eq!(azure("0 0 */2 * */3"), "0 0 0 */2 * */3");
        assert_eq!(azure("0 0 */10 JAN MON-FRI"), "0 0 0 */10 1 1-5");

        // Exactly * becomes ? for AWS.
        assert_eq!(aws("0 0 */2 * *"), "cron(0 0 1/2 * ? *)");
        assert_eq!(azure("0 0 */2 * *"), "0 0 0 */2 * *");
        assert_eq!(aws("0 0 * * */2"), "cron(0 0 ? * 1,3,5,7 *)");

        // A restricting field that covers every day leaves the other alone
        // (with AND, not OR: "1-31" and "*/2" is every other weekday).
        assert_eq!(aws("0 0 */2 * 0-6"), "cron(0 0 1/2 * ? *)");
        assert_eq!(azure("0 0 */2 * 0-7"), "0 0 0 */2 * *");
        assert_eq!(aws("0 0 1-31 * */2"), "cron(0 0 ? * 1,3,5,7 *)");
        assert_eq!(azure("0 0 1-31 * */2"), "0 0 0 * * */2");
        assert_eq!(aws("0 0 *,15 * 1"), "cron(0 0 ? * 2 *)");
        assert_eq!(azure("0 0 *,15 * 1"), "0 0 0 * * 1");
    }

    #[test]
    fn both_restricted_but_one_covers_every_day() {
        assert_eq!(aws("0 0 1 * 0-6"), "cron(0 0 * * ? *)");
        assert_eq!(azure("0 0 1 * 0-7"), "0 0 0 * * *");
        assert_eq!(aws("0 0 1-31 * 1"), "cron(0 0 * * ? *)");
        assert_eq!(unix("0 0 1 * 0-6"), "0 0 1 * 0-6");
    }

    #[test]
    fn sunday_as_seven_and_names() {
        assert_eq!(unix("0 0 * * 7"), "0 0 * * 0");
        assert_eq!(azure("0 0 * * 7"), "0 0 0 * * 0");
        assert_eq!(aws("0 0 * * 7"), "cron(0 0 ? * 1 *)");
        assert_eq!(aws("0 0 * * SUN"), "cron(0 0 ? * 1 *)");
        assert_eq!(aws("0 0 * * SAT"), "cron(0 0 ? * 7 *)");
        assert_eq!(unix("0 0 * * 0,7"), "0 0 * * 0");
        assert_eq!(unix("0 0 * * 5-7"), "0 0 * * 5-6,0");
        assert_eq!(azure("0 0 * * 5-7"), "0 0 0 * * 5-6,0");
        assert_eq!(aws("0 0 * * 5-7"), "cron(0 0 ? * 6-7,1 *)");
        assert_eq!(unix("0 0 * * 6-7"), "0 0 * * 6,0");
        assert_eq!(unix("0 0 * * 0-7"), "0 0 * * 0-6");
        assert_eq!(aws("0 0 * * 0-7"), "cron(0 0 ? * 1-7 *)");
        assert_eq!(unix("0 0 * * 1-7/2"), "0 0 * * 1-6/2,0");
        assert_eq!(unix("0 0 * * FRI,sat"), "0 0 * * 5,6");
        assert_eq!(unix("0 0 1 jan-MAR,dec *"), "0 0 1 1-3,12 *");
        assert_eq!(aws("0 0 1 JAN-MAR,DEC *"), "cron(0 0 1 1-3,12 ? *)");
        assert_eq!(azure("0 0 1 Jun *"), "0 0 0 1 6 *");
    }

    #[test]
    fn steps_aws_cannot_write_are_listed() {
        // AWS has no '/' in day-of-week.
        assert_eq!(aws("0 0 * * */2"), "cron(0 0 ? * 1,3,5,7 *)");
        assert_eq!(aws("0 0 * * 1-5/2"), "cron(0 0 ? * 2,4,6 *)");
        assert_eq!(unix("0 0 * * */2"), "0 0 * * */2");
        // a-b/n short of the field's end.
        assert_eq!(aws("10-30/10 * * * *"), "cron(10,20,30 * * * ? *)");
        // a-MAX/n is a/n.
        assert_eq!(aws("5-59/20 * * * *"), "cron(5/20 * * * ? *)");
        assert_eq!(unix("5-59/20 * * * *"), "5-59/20 * * * *");
        // a/n (an extension) is written a-MAX/n outside AWS.
        assert_eq!(aws("5/20 * * * *"), "cron(5/20 * * * ? *)");
        assert_eq!(unix("5/20 * * * *"), "5-59/20 * * * *");
        assert_eq!(azure("5/20 * * * *"), "0 5-59/20 * * * *");
        assert_eq!(unix("0 0 * * 1/2"), "0 0 * * 1-6/2");
    }

    #[test]
    fn lists_ranges_keep_their_shape() {
        assert_eq!(unix("0,30 8-18 * * 1-5"), "0,30 8-18 * * 1-5");
        assert_eq!(aws("0,30 8-18 * * 1-5"), "cron(0,30 8-18 ? * 2-6 *)");
        assert_eq!(azure("0,30 8-18 * * 1-5"), "0 0,30 8-18 * * 1-5");
        assert_eq!(unix("  0   2  *   *  * "), "0 2 * * *");
    }

    #[test]
    fn macros() {
        assert_eq!(s("@daily").to_string(), "@daily");
        assert_eq!(s("@DAILY").to_string(), "@daily");
        assert_eq!(aws("@daily"), "cron(0 0 * * ? *)");
        assert_eq!(azure("@daily"), "0 0 0 * * *");
        assert_eq!(unix("@midnight"), "0 0 * * *");
        assert_eq!(unix("@hourly"), "0 * * * *");
        assert_eq!(unix("@weekly"), "0 0 * * 0");
        assert_eq!(aws("@weekly"), "cron(0 0 ? * 1 *)");
        assert_eq!(unix("@monthly"), "0 0 1 * *");
        assert_eq!(unix("@yearly"), "0 0 1 1 *");
        assert_eq!(unix("@annually"), "0 0 1 1 *");
        assert!(parse_err("@reboot").contains("start-up"));
        assert!(parse_err("@fortnightly").contains("unknown macro"));
        assert!(parse_err("@daily 5").contains("stand alone"));
    }

    // --- rates --------------------------------------------------------------

    #[test]
    fn rate_rendering() {
        assert_eq!(rate(1).to_aws().unwrap(), "rate(1 minute)");
        assert_eq!(rate(1).to_azure().unwrap(), "0 * * * * *");
        assert_eq!(rate(1).to_unix_cron().unwrap(), "* * * * *");

        assert_eq!(rate(5).to_aws().unwrap(), "rate(5 minutes)");
        assert_eq!(rate(5).to_azure().unwrap(), "0 */5 * * * *");
        assert_eq!(rate(5).to_unix_cron().unwrap(), "*/5 * * * *");

        assert_eq!(rate(7).to_aws().unwrap(), "rate(7 minutes)");
        let e = rate(7).to_azure().unwrap_err();
        assert_eq!(e.target(), Some("azure"));
        assert!(e.to_string().starts_with("rate(7 minutes): Azure"), "{e}");
        assert!(e.to_string().contains("App Service"), "{e}");
        let e = rate(7).to_unix_cron().unwrap_err();
        assert_eq!(e.target(), Some("gcp"));
        assert!(e.to_string().contains("divides an hour"), "{e}");

        assert_eq!(rate(60).to_aws().unwrap(), "rate(1 hour)");
        assert_eq!(rate(60).to_azure().unwrap(), "0 0 * * * *");
        assert_eq!(rate(60).to_unix_cron().unwrap(), "0 * * * *");

        assert_eq!(rate(120).to_aws().unwrap(), "rate(2 hours)");
        assert_eq!(rate(120).to_azure().unwrap(), "0 0 */2 * * *");
        assert_eq!(rate(120).to_unix_cron().unwrap(), "0 */2 * * *");

        assert_eq!(rate(90).to_aws().unwrap(), "rate(90 minutes)");
        assert!(rate(90).to_azure().is_err());
        assert!(rate(90).to_unix_cron().is_err());
        assert!(rate(5 * 60).to_azure().is_err());

        assert_eq!(rate(1440).to_aws().unwrap(), "rate(1 day)");
        assert_eq!(rate(1440).to_azure().unwrap(), "0 0 0 * * *");
        assert_eq!(rate(1440).to_unix_cron().unwrap(), "0 0 * * *");

        assert_eq!(rate(3 * 1440).to_aws().unwrap(), "rate(3 days)");
        assert_eq!(
            rate(3 * 1440).to_azure().unwrap_err().target(),
            Some("azure")
        );
        assert_eq!(
            rate(3 * 1440).to_unix_cron().unwrap_err().target(),
            Some("gcp")
        );
    }

    #[test]
    fn rate_parsing() {
        assert_eq!(s("rate(5 minutes)"), rate(5));
        assert_eq!(s("rate(1 minute)"), rate(1));
        assert_eq!(s("rate(1 hour)"), rate(60));
        assert_eq!(s("rate(2 hours)"), rate(120));
        assert_eq!(s("rate(2 days)"), rate(2880));
        assert_eq!(s("RATE(1 Minutes)"), rate(1));
        assert_eq!(s(" rate( 5  minutes ) "), rate(5));
        assert_eq!(s("rate(60 minutes)").to_string(), "rate(1 hour)");
        assert_eq!(s("every 5m"), rate(5));
        assert_eq!(s("every 2h"), rate(120));
        assert_eq!(s("every 1d"), rate(1440));
        assert_eq!(s("every 10 minutes"), rate(10));
        assert_eq!(s("Every hour"), rate(60));
        assert_eq!(s("every 90 min"), rate(90));

        assert!(parse_err("rate(0 minutes)").contains("at least 1"));
        assert!(parse_err("rate(5 fortnights)").contains("minute(s), hour(s) or day(s)"));
        assert!(parse_err("rate(5minutes)").contains("rate(N unit)"));
        assert!(parse_err("rate(5 minutes").contains("rate(N unit)"));
        assert!(parse_err("rate(-5 minutes)").contains("rate(N unit)"));
        assert!(parse_err("rate(1.5 hours)").contains("rate(N unit)"));
        assert!(parse_err("every 5s").contains("every N unit"));
        assert!(parse_err("every").contains("every N unit"));
        assert!(parse_err("every 0m").contains("at least 1"));
        assert!(parse_err("rate(99999999999999999999 days)").contains("too long"));
    }

    #[test]
    fn every_validates_period() {
        assert_eq!(
            Schedule::every(Duration::from_secs(300)).unwrap().period(),
            Some(Duration::from_secs(300))
        );
        for bad in [
            Duration::ZERO,
            Duration::from_secs(30),
            Duration::from_secs(90),
            Duration::from_millis(60_500),
        ] {
            let e = Schedule::every(bad).unwrap_err();
            assert_eq!(e.target(), None);
            assert!(e.to_string().contains("whole number of minutes"), "{e}");
        }
        assert!(Schedule::every(Duration::from_secs(u64::MAX / 60 * 60)).is_err());
    }

    #[test]
    fn accessors() {
        assert!(rate(5).is_rate());
        assert!(!rate(5).is_cron());
        assert_eq!(rate(5).period(), Some(Duration::from_secs(300)));
        let c = s("0 2 * * *");
        assert!(!c.is_rate());
        assert!(c.is_cron());
        assert_eq!(c.period(), None);
        match rate(5) {
            Schedule::Rate(r) => assert_eq!(r.minutes(), 5),
            Schedule::Cron(_) => unreachable!(),
        }
        match c {
            Schedule::Cron(expr) => assert_eq!(expr.as_str(), "0 2 * * *"),
            Schedule::Rate(_) => unreachable!(),
        }
    }

    // --- parse errors -----------------------------------------------------

    #[test]
    fn field_count_errors() {
        assert!(parse_err("0 0 2 * * *").contains("6 fields"));
        assert!(parse_err("0 0 2 * * ? *").contains("7 fields"));
        assert!(parse_err("0 2 * *").contains("has 4 fields"));
        assert!(parse_err("").contains("empty schedule"));
        assert!(parse_err("   ").contains("empty schedule"));
        assert!(
            Schedule::cron("")
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        assert!(parse_err("cron(0 2 * * ? *)").contains("AWS-style"));
    }

    #[test]
    fn value_errors_name_field_and_accepted_range() {
        let e = parse_err("60 * * * *");
        assert!(
            e.starts_with("cron \"60 * * * *\": minute field \"60\""),
            "{e}"
        );
        assert!(e.contains("out of range"), "{e}");
        assert!(e.contains("0-59"), "{e}");
        let e = parse_err("0 24 * * *");
        assert!(e.contains("hour field") && e.contains("0-23"), "{e}");
        let e = parse_err("0 0 0 * *");
        assert!(
            e.contains("day-of-month field") && e.contains("1-31"),
            "{e}"
        );
        let e = parse_err("0 0 32 * *");
        assert!(e.contains("day-of-month field"), "{e}");
        let e = parse_err("0 0 1 13 *");
        assert!(e.contains("month field") && e.contains("JAN-DEC"), "{e}");
        let e = parse_err("0 0 * * 8");
        assert!(
            e.contains("day-of-week field") && e.contains("SUN-SAT"),
            "{e}"
        );
        let e = parse_err("0 0 * * FOO");
        assert!(e.contains("SUN,MON,TUE"), "{e}");
        let e = parse_err("0 0 * JANUARY *");
        assert!(e.contains("month field"), "{e}");
        let e = parse_err("0 MON * * *");
        assert!(
            e.contains("hour field") && e.contains("not a number"),
            "{e}"
        );
        let e = parse_err("99999999999 * * * *");
        assert!(e.contains("out of range"), "{e}");
    }

    #[test]
    fn structural_errors() {
        assert!(parse_err("0,,5 * * * *").contains("empty element"));
        assert!(parse_err("0, * * * *").contains("empty element"));
        assert!(parse_err("*/0 * * * *").contains("step of 0"));
        assert!(parse_err("*/x * * * *").contains("not a whole number"));
        assert!(parse_err("*/ * * * *").contains("not a whole number"));
        assert!(parse_err("*/60 * * * *").contains("larger than"));
        assert!(parse_err("0 */24 * * *").contains("larger than"));
        let e = parse_err("0 22-2 * * *");
        assert!(e.contains("reversed") && e.contains("22-23,0-2"), "{e}");
        let e = parse_err("0 0 * * FRI-MON");
        assert!(e.contains("reversed") && e.contains("5-6,0-1"), "{e}");
        assert!(parse_err("0-/5 * * * *").contains("missing"));
        assert!(parse_err("/5 * * * *").contains("before the '/'"));
        assert!(parse_err("*/5/2 * * * *").contains("not a whole number"));
        assert!(parse_err("0 0 ? * 1").contains("use * instead"));
        assert!(parse_err("0 0 L * *").contains("L, W or #"));
        assert!(parse_err("0 0 15W * *").contains("L, W or #"));
        assert!(parse_err("0 0 * * 1#2").contains("L, W or #"));
        assert!(parse_err("0 0 * * 5L").contains("L, W or #"));
        assert!(parse_err("-1 * * * *").contains("minute field"));
    }

    #[test]
    fn from_str_try_from_display() {
        let a: Schedule = "0  2 * *   *".parse().unwrap();
        assert_eq!(a.to_string(), "0 2 * * *");
        assert_eq!(Schedule::try_from("0 2 * * *").unwrap(), a);
        assert_eq!(Schedule::try_from(String::from(" 0 2 * * * ")).unwrap(), a);
        assert_eq!(s("0 9 * * mon-fri").to_string(), "0 9 * * mon-fri");
        assert_eq!(rate(2880).to_string(), "rate(2 days)");
        assert_eq!(s("every 1d").to_string(), "rate(1 day)");
        for text in [
            "0 9 * * mon-fri",
            "@weekly",
            "rate(90 minutes)",
            "rate(1 day)",
        ] {
            let once = s(text);
            assert_eq!(s(&once.to_string()), once);
        }
        assert!("bogus".parse::<Schedule>().is_err());
    }

    #[test]
    fn serde_round_trip() {
        let sched = s("*/15 * * * *");
        let json = serde_json::to_string(&sched).unwrap();
        assert_eq!(json, "\"*/15 * * * *\"");
        assert_eq!(serde_json::from_str::<Schedule>(&json).unwrap(), sched);

        let r = rate(120);
        assert_eq!(serde_json::to_string(&r).unwrap(), "\"rate(2 hours)\"");
        assert_eq!(serde_json::from_str::<Schedule>("\"every 2h\"").unwrap(), r);

        let err = serde_json::from_str::<Schedule>("\"0 0 32 * *\"").unwrap_err();
        assert!(err.to_string().contains("day-of-month"), "{err}");
        assert!(serde_json::from_str::<Schedule>("5").is_err());
    }

    #[test]
    fn error_is_std_error() {
        fn takes(_: &dyn std::error::Error) {}
        let e = parse_err_value("0 0 32 * *");
        takes(&e);
        assert_eq!(e.clone(), e);
        assert_eq!(e.message(), e.to_string());
    }

    fn parse_err_value(text: &str) -> ScheduleError {
        Schedule::parse(text).unwrap_err()
    }

    // --- next_after ---------------------------------------------------------

    #[test]
    fn next_daily() {
        assert_eq!(
            next("0 2 * * *", at(2024, 5, 10, 1, 59)),
            Some(at(2024, 5, 10, 2, 0))
        );
        // Strictly after.
        assert_eq!(
            next("0 2 * * *", at(2024, 5, 10, 2, 0)),
            Some(at(2024, 5, 11, 2, 0))
        );
        let half_past = Utc.with_ymd_and_hms(2024, 5, 10, 1, 59, 30).unwrap();
        assert_eq!(next("0 2 * * *", half_past), Some(at(2024, 5, 10, 2, 0)));
        // Year end.
        assert_eq!(
            next("0 2 * * *", at(2024, 12, 31, 3, 0)),
            Some(at(2025, 1, 1, 2, 0))
        );
        assert_eq!(
            next("@daily", at(2024, 5, 10, 0, 0)),
            Some(at(2024, 5, 11, 0, 0))
        );
    }

    #[test]
    fn next_every_minute_and_steps() {
        assert_eq!(
            next("* * * * *", at(2024, 5, 10, 23, 59)),
            Some(at(2024, 5, 11, 0, 0))
        );
        assert_eq!(
            next("*/15 * * * *", at(2024, 5, 10, 10, 7)),
            Some(at(2024, 5, 10, 10, 15))
        );
        assert_eq!(
            next("*/15 * * * *", at(2024, 5, 10, 10, 45)),
            Some(at(2024, 5, 10, 11, 0))
        );
        assert_eq!(
            next("30 9-17 * * *", at(2024, 5, 10, 17, 30)),
            Some(at(2024, 5, 11, 9, 30))
        );
        assert_eq!(
            next("5,45 10 * * *", at(2024, 5, 10, 10, 6)),
            Some(at(2024, 5, 10, 10, 45))
        );
    }

    #[test]
    fn next_weekdays() {
        // 2024-05-10 is a Friday.
        assert_eq!(
            next("0 9 * * 1-5", at(2024, 5, 10, 9, 0)),
            Some(at(2024, 5, 13, 9, 0))
        );
        assert_eq!(
            next("0 9 * * MON-FRI", at(2024, 5, 10, 8, 0)),
            Some(at(2024, 5, 10, 9, 0))
        );
        assert_eq!(
            next("0 0 * * 7", at(2024, 5, 10, 0, 0)),
            Some(at(2024, 5, 12, 0, 0))
        );
        assert_eq!(
            next("0 0 * * 0", at(2024, 5, 10, 0, 0)),
            Some(at(2024, 5, 12, 0, 0))
        );
    }

    #[test]
    fn next_dom_or_dow() {
        // The 1st of the month or any Monday. 2024-05-10 is a Friday; the next
        // Monday is the 13th, before June 1st.
        assert_eq!(
            next("0 0 1 * 1", at(2024, 5, 10, 0, 0)),
            Some(at(2024, 5, 13, 0, 0))
        );
        // 2024-05-28 is a Tuesday: June 1st (Saturday) comes before Monday June 3rd.
        assert_eq!(
            next("0 0 1 * 1", at(2024, 5, 28, 0, 0)),
            Some(at(2024, 6, 1, 0, 0))
        );
        // Friday the 13th style with OR: the 13th or any Friday.
        assert_eq!(
            next("0 0 13 * 5", at(2024, 5, 10, 0, 0)),
            Some(at(2024, 5, 13, 0, 0))
        );
        // Restricted dom with * dow: only dom counts.
        assert_eq!(
            next("0 0 13 * *", at(2024, 5, 13, 0, 0)),
            Some(at(2024, 6, 13, 0, 0))
        );
        // Neither day field begins with *, even when one is a step.
        assert_eq!(
            next("0 0 1-31/2 * 1", at(2024, 5, 5, 0, 0)),
            Some(at(2024, 5, 6, 0, 0))
        );
    }

    #[test]
    fn next_star_flagged_dom_and_dow() {
        // */2 in dom (odd days) begins with *, so both must match: odd days
        // that are Mondays. Monday the 6th is even and does not match.
        let odd_mondays = [
            at(2024, 5, 13, 0, 0),
            at(2024, 5, 27, 0, 0),
            at(2024, 6, 3, 0, 0),
            at(2024, 6, 17, 0, 0),
            at(2024, 7, 1, 0, 0),
        ];
        let mut t = at(2024, 5, 5, 0, 0);
        for expected in odd_mondays {
            t = next("0 0 */2 * 1", t).unwrap();
            assert_eq!(t, expected);
        }
        // The 1st of the month when it is a Sunday, Tuesday, Thursday or
        // Saturday: June 1st 2024 is a Saturday, July 1st a Monday.
        assert_eq!(
            next("0 0 1 * */2", at(2024, 5, 10, 0, 0)),
            Some(at(2024, 6, 1, 0, 0))
        );
        assert_eq!(
            next("0 0 1 * */2", at(2024, 6, 1, 0, 0)),
            Some(at(2024, 8, 1, 0, 0))
        );
        // "1-31" covers every day but ANDs with "*/2": not daily. 2024-05-10
        // is a Friday.
        assert_eq!(
            next("0 0 1-31 * */2", at(2024, 5, 10, 0, 0)),
            Some(at(2024, 5, 11, 0, 0))
        );
        assert_eq!(
            next("0 0 1-31 * */2", at(2024, 5, 12, 0, 0)),
            Some(at(2024, 5, 14, 0, 0))
        );
        // "*,15" begins with *: every Monday, not also the 15th.
        assert_eq!(
            next("0 0 *,15 * 1", at(2024, 5, 13, 0, 0)),
            Some(at(2024, 5, 20, 0, 0))
        );
    }

    #[test]
    fn next_star_flagged_rare_days() {
        // February 29th on a Saturday or Sunday: 2032, then 16 years later.
        assert_eq!(
            next("0 0 29 2 */6", at(2024, 3, 1, 0, 0)),
            Some(at(2032, 2, 29, 0, 0))
        );
        assert_eq!(
            next("0 0 29 2 */6", at(2032, 2, 29, 0, 0)),
            Some(at(2048, 2, 29, 0, 0))
        );
        // "*/30" is the 1st and 31st: February 1st on a Monday, 11 years on.
        assert_eq!(
            next("0 0 */30 2 1", at(2027, 2, 1, 0, 0)),
            Some(at(2038, 2, 1, 0, 0))
        );
        // Rare days across the 40-year gaps around 2100, against a day-by-day
        // reference: February 29th on a Sunday, Wednesday or Saturday; on a
        // Saturday or Sunday; and February 1st or 29th on a Sunday or Thursday.
        let fires_on = |expr: &str, d: NaiveDate| {
            let weekday = d.weekday().num_days_from_sunday();
            d.month() == 2
                && match expr {
                    "0 0 29 2 */3" => d.day() == 29 && [0, 3, 6].contains(&weekday),
                    "0 0 29 2 */6" => d.day() == 29 && [0, 6].contains(&weekday),
                    _ => [1, 29].contains(&d.day()) && [0, 4].contains(&weekday),
                }
        };
        for expr in ["0 0 29 2 */3", "0 0 29 2 */6", "0 0 */28 2 */4"] {
            let sched = s(expr);
            let mut t = at(2060, 1, 1, 0, 0);
            for _ in 0..10 {
                let mut day = t.date_naive().succ_opt().unwrap();
                while !fires_on(expr, day) {
                    assert!(day.year() < 2500, "{expr}");
                    day = day.succ_opt().unwrap();
                }
                let expected = Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).unwrap());
                assert_eq!(sched.next_after(t), Some(expected), "{expr} after {t}");
                t = expected;
            }
        }
    }

    #[test]
    fn next_leap_day_and_month_end() {
        assert_eq!(
            next("0 12 29 2 *", at(2023, 3, 1, 0, 0)),
            Some(at(2024, 2, 29, 12, 0))
        );
        assert_eq!(
            next("0 12 29 2 *", at(2024, 2, 29, 12, 0)),
            Some(at(2028, 2, 29, 12, 0))
        );
        // 2100 is not a leap year: eight years between leap days.
        assert_eq!(
            next("0 0 29 2 *", at(2096, 3, 1, 0, 0)),
            Some(at(2104, 2, 29, 0, 0))
        );
        // The 31st skips short months.
        assert_eq!(
            next("0 0 31 * *", at(2024, 3, 31, 0, 0)),
            Some(at(2024, 5, 31, 0, 0))
        );
        assert_eq!(
            next("59 23 30,31 * *", at(2024, 2, 1, 0, 0)),
            Some(at(2024, 3, 30, 23, 59))
        );
        assert_eq!(
            next("0 0 1 * *", at(2024, 1, 31, 23, 59)),
            Some(at(2024, 2, 1, 0, 0))
        );
        assert_eq!(
            next("0 0 1 1 *", at(2024, 1, 1, 0, 0)),
            Some(at(2025, 1, 1, 0, 0))
        );
    }

    #[test]
    fn next_impossible_dates() {
        assert_eq!(next("0 0 30 2 *", at(2024, 1, 1, 0, 0)), None);
        assert_eq!(next("0 0 31 4,6,9,11 *", at(2024, 1, 1, 0, 0)), None);
        // With day-of-week restricted too, the OR makes it possible.
        assert_eq!(
            next("0 0 30 2 1", at(2024, 1, 31, 0, 0)),
            Some(at(2024, 2, 5, 0, 0))
        );
        // But not when day-of-week begins with *: then both must match.
        assert_eq!(next("0 0 30 2 */2", at(2024, 1, 31, 0, 0)), None);
        assert_eq!(next("0 0 31 4,6 */3", at(2024, 1, 1, 0, 0)), None);
    }

    #[test]
    fn next_rate_alignment() {
        assert_eq!(
            rate(5).next_after(at(2024, 5, 10, 10, 7)),
            Some(at(2024, 5, 10, 10, 10))
        );
        assert_eq!(
            rate(5).next_after(at(2024, 5, 10, 10, 10)),
            Some(at(2024, 5, 10, 10, 15))
        );
        let just_after = Utc.with_ymd_and_hms(2024, 5, 10, 10, 10, 1).unwrap();
        assert_eq!(
            rate(5).next_after(just_after),
            Some(at(2024, 5, 10, 10, 15))
        );
        assert_eq!(
            rate(120).next_after(at(2024, 5, 10, 3, 0)),
            Some(at(2024, 5, 10, 4, 0))
        );
        assert_eq!(
            rate(1440).next_after(at(2024, 5, 10, 3, 0)),
            Some(at(2024, 5, 11, 0, 0))
        );
        // 7 minutes from the epoch: 2024-05-10T10:00Z is minute 28_588_920,
        // 28_588_920 = 7 * 4_084_131 + 3, so the next multiple is 10:04.
        assert_eq!(
            rate(7).next_after(at(2024, 5, 10, 10, 0)),
            Some(at(2024, 5, 10, 10, 4))
        );
        // Before the epoch.
        assert_eq!(
            rate(60).next_after(at(1969, 12, 31, 22, 30)),
            Some(at(1969, 12, 31, 23, 0))
        );
    }

    #[test]
    fn next_rate_matches_rendered_cron() {
        // A rate and its rendered cron fire at the same instants.
        for minutes in [1, 5, 15, 30, 60, 120, 360, 1440] {
            let r = rate(minutes);
            let c = s(&r.to_unix_cron().unwrap());
            let mut t = at(2024, 2, 28, 22, 13);
            for _ in 0..50 {
                let a = r.next_after(t).unwrap();
                assert_eq!(Some(a), c.next_after(t), "{r} vs {c} after {t}");
                t = a;
            }
        }
    }

    /// Minute-by-minute reference implementation of Vixie cron matching: the
    /// day fields are ANDed when either one's text begins with '*' (taken
    /// from the expression text, not from the parsed fields) and ORed
    /// otherwise.
    fn brute_next(c: &CronExpr, after: DateTime<Utc>, limit: u32) -> Option<DateTime<Utc>> {
        let text = MACROS
            .iter()
            .find(|(name, _)| *name == c.text)
            .map_or(c.text.as_str(), |(_, expansion)| expansion);
        let fields: Vec<&str> = text.split(' ').collect();
        let star_flagged = fields[2].starts_with('*') || fields[4].starts_with('*');
        let mut t = after.with_second(0).unwrap().with_nanosecond(0).unwrap();
        for _ in 0..limit {
            t += TimeDelta::minutes(1);
            let date = t.date_naive();
            let dom_ok = c.dom.contains(date.day());
            let dow_ok = c.dow.contains(date.weekday().num_days_from_sunday());
            let day_ok = if star_flagged {
                dom_ok && dow_ok
            } else {
                dom_ok || dow_ok
            };
            if day_ok
                && c.minute.contains(t.minute())
                && c.hour.contains(t.hour())
                && c.month.contains(t.month())
            {
                return Some(t);
            }
        }
        None
    }

    #[test]
    fn next_agrees_with_brute_force() {
        let exprs = [
            "* * * * *",
            "*/7 * * * *",
            "5-50/15 3,9-11 * * *",
            "0 2 * * *",
            "0 9 * * 1-5",
            "30 23 * * 6,7",
            "0 0 1 * 1",
            "15 12 13 * FRI",
            "0 0 */3 * *",
            "59 23 31 * *",
            "0 0 29,30 2 *",
            "0 0 30 2 0",
            "0 */4 * JAN,JUL *",
            "10 10 1-7 * 2",
            "0 0 * * */2",
            "0 0 */2 * 1",
            "0 0 1 * */2",
            "0 0 */3 * MON-FRI",
            "0 12 1-7 * */3",
            "0 0 */2 * */2",
            "0 0 */2 * 0-6",
            "0 0 1-31 * */2",
            "0 0 *,15 * 1",
            "0 0 1-31/2 * 1",
            "0 0 31 * */4",
            "0 0 29 2 */6",
            "@weekly",
            "@monthly",
        ];
        let starts = [
            at(2024, 1, 30, 23, 59),
            at(2023, 12, 31, 23, 0),
            Utc.with_ymd_and_hms(2024, 2, 28, 11, 59, 59).unwrap(),
            at(2025, 6, 15, 12, 12),
        ];
        for expr in exprs {
            let Schedule::Cron(c) = s(expr) else {
                unreachable!()
            };
            for &start in &starts {
                let mut t = start;
                for _ in 0..5 {
                    let fast = c.next_after(t);
                    let limit = 400 * 24 * 60;
                    let slow = brute_next(&c, t, limit);
                    if slow.is_none() {
                        // Beyond the reference's horizon (or never).
                        let horizon = t + TimeDelta::minutes(i64::from(limit));
                        assert!(fast.is_none_or(|f| f > horizon), "{expr} after {t}");
                        break;
                    }
                    assert_eq!(fast, slow, "{expr} after {t}");
                    match fast {
                        Some(next) => t = next,
                        None => break,
                    }
                }
            }
        }
    }

    #[test]
    fn next_is_fast_for_sparse_schedules() {
        // Would be millions of iterations if stepped minute by minute.
        let sched = s("0 0 29 2 *");
        let mut t = at(2000, 1, 1, 0, 0);
        for _ in 0..100 {
            t = sched.next_after(t).unwrap();
            assert_eq!((t.month(), t.day()), (2, 29));
        }
        assert!(t.year() > 2390);
    }
}
