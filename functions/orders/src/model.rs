//! The order domain, free of any store: events, the state they fold into, request
//! validation and the delivery estimate. Everything here is pure.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The current time at the precision timestamps are stored with (microseconds).
pub fn now() -> DateTime<Utc> {
    nube::store::timestamp::now()
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderItem {
    /// Stock-keeping unit.
    pub sku: String,
    /// Quantity, at least 1.
    pub qty: u32,
    /// Unit price: at least 0, at most 1,000,000, in whole cents.
    pub price: f64,
}

/// What happened to an order: the `type` and `data` of an [`OrderEvent`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all_fields = "camelCase")]
pub enum OrderEventData {
    /// The order was placed (always version 1).
    OrderCreated {
        /// Who ordered.
        user_id: String,
        /// From where.
        restaurant_id: String,
        /// What.
        items: Vec<OrderItem>,
    },
    /// The restaurant accepted the order.
    OrderConfirmed {
        /// When it should arrive.
        #[serde(with = "nube::store::timestamp")]
        estimated_delivery_at: DateTime<Utc>,
    },
    /// The order was cancelled.
    OrderCancelled {
        /// Why.
        reason: String,
    },
}

impl OrderEventData {
    /// The event type's name (`OrderCreated`, ...), as stored in `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::OrderCreated { .. } => "OrderCreated",
            Self::OrderConfirmed { .. } => "OrderConfirmed",
            Self::OrderCancelled { .. } => "OrderCancelled",
        }
    }
}

/// One document of the `order-events` stream, id [`event_id`]`(order_id, version)`:
/// `{orderId, version, type, data, at}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderEvent {
    /// The order it belongs to.
    pub order_id: String,
    /// Its position in the order's stream: 1, 2, 3... without gaps.
    pub version: u32,
    /// `type` and `data`.
    #[serde(flatten)]
    pub data: OrderEventData,
    /// When it was recorded.
    #[serde(with = "nube::store::timestamp")]
    pub at: DateTime<Utc>,
}

/// The id of an order's event `version`: `{orderId}-{version:06}`. Appending with
/// `create` under this id makes two writers of the same version conflict.
pub fn event_id(order_id: &str, version: u32) -> String {
    format!("{order_id}-{version:06}")
}

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    /// Placed, not confirmed yet.
    Pending,
    /// Confirmed, with an estimated delivery time.
    Confirmed,
    /// Cancelled.
    Cancelled,
}

impl OrderStatus {
    /// `PENDING`, `CONFIRMED` or `CANCELLED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Confirmed => "CONFIRMED",
            Self::Cancelled => "CANCELLED",
        }
    }
}

/// An order's current state: the read model's document, and what [`fold`] returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// The order id.
    pub order_id: String,
    /// Who ordered.
    pub user_id: String,
    /// From where.
    pub restaurant_id: String,
    /// What.
    pub items: Vec<OrderItem>,
    /// Σ qty × price, rounded to cents.
    pub total: f64,
    /// Where it stands.
    pub status: OrderStatus,
    /// When it was placed.
    #[serde(with = "nube::store::timestamp")]
    pub created_at: DateTime<Utc>,
    /// When it should arrive, once confirmed.
    #[serde(
        default,
        with = "nube::store::timestamp::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub estimated_delivery_at: Option<DateTime<Utc>>,
    /// Why it was cancelled, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancellation_reason: Option<String>,
    /// The version of the last event applied.
    pub version: u32,
}

/// Σ qty × price, summed in whole cents so that no float error adds up (prices are
/// whole cents, as [`NewOrder::validate`] checks).
pub fn total(items: &[OrderItem]) -> f64 {
    let cents: i64 = items
        .iter()
        .map(|i| i64::from(i.qty) * cents(i.price))
        .sum();
    // n / 100 prints as the decimal it stands for (exact below 2^53 cents).
    cents as f64 / 100.0
}

/// `price` in cents, the nearest whole number.
fn cents(price: f64) -> i64 {
    (price * 100.0).round() as i64
}

/// Whether `price` is a whole number of cents (up to float error in the text it was
/// read from: `0.1 + 0.2` is not, `0.30` is).
fn whole_cents(price: f64) -> bool {
    let scaled = price * 100.0;
    (scaled - scaled.round()).abs() < 1e-6
}

/// Applies one event to a state. Events must come in version order: the first
/// must be `OrderCreated` at version 1, and each next one must have the next
/// version; any other event is ignored (the state is returned unchanged), so a
/// replay never jumps over a gap.
pub fn apply(state: Option<Order>, event: &OrderEvent) -> Option<Order> {
    let Some(mut order) = state else {
        return match &event.data {
            OrderEventData::OrderCreated {
                user_id,
                restaurant_id,
                items,
            } if event.version == 1 => Some(Order {
                order_id: event.order_id.clone(),
                user_id: user_id.clone(),
                restaurant_id: restaurant_id.clone(),
                items: items.clone(),
                total: total(items),
                status: OrderStatus::Pending,
                created_at: event.at,
                estimated_delivery_at: None,
                cancellation_reason: None,
                version: 1,
            }),
            _ => None,
        };
    };
    if event.order_id != order.order_id || Some(event.version) != order.version.checked_add(1) {
        return Some(order);
    }
    match &event.data {
        // A second creation cannot happen (version 1 is taken); skip it.
        OrderEventData::OrderCreated { .. } => {}
        OrderEventData::OrderConfirmed {
            estimated_delivery_at,
        } => {
            if order.status == OrderStatus::Pending {
                order.status = OrderStatus::Confirmed;
                order.estimated_delivery_at = Some(*estimated_delivery_at);
            }
        }
        OrderEventData::OrderCancelled { reason } => {
            if order.status != OrderStatus::Cancelled {
                order.status = OrderStatus::Cancelled;
                order.cancellation_reason = Some(reason.clone());
            }
        }
    }
    order.version = event.version;
    Some(order)
}

/// An order's state from its events, in any order (they are replayed by version).
/// `None` when there is no `OrderCreated` at version 1.
pub fn fold<'a>(events: impl IntoIterator<Item = &'a OrderEvent>) -> Option<Order> {
    let mut events: Vec<&OrderEvent> = events.into_iter().collect();
    events.sort_by_key(|e| e.version);
    events.into_iter().fold(None, apply)
}

/// Base of the delivery estimate, in minutes.
pub const BASE_DELIVERY_MINUTES: i64 = 20;
/// Minutes added per unit ordered.
pub const MINUTES_PER_UNIT: i64 = 2;
/// The estimate never exceeds this many minutes.
pub const MAX_DELIVERY_MINUTES: i64 = 90;

/// When an order placed at `created_at` should arrive: 20 minutes plus 2 per unit
/// ordered, at most 90 minutes. A pure function of its inputs, so every replay
/// computes the same estimate.
pub fn estimate_delivery(created_at: DateTime<Utc>, items: &[OrderItem]) -> DateTime<Utc> {
    let units: i64 = items.iter().map(|i| i64::from(i.qty)).sum();
    let minutes = BASE_DELIVERY_MINUTES
        .saturating_add(units.saturating_mul(MINUTES_PER_UNIT))
        .min(MAX_DELIVERY_MINUTES);
    created_at + TimeDelta::minutes(minutes)
}

/// The body of `POST /orders`, before validation (fields are loose so that each
/// mistake gets its own message).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewOrder {
    /// Required, not blank.
    pub user_id: Option<String>,
    /// Required, not blank.
    pub restaurant_id: Option<String>,
    /// At least one.
    pub items: Option<Vec<NewItem>>,
}

/// One item of a [`NewOrder`], before validation.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NewItem {
    /// Required, not blank.
    pub sku: Option<String>,
    /// An integer, at least 1.
    pub qty: Option<Value>,
    /// A number, at least 0.
    pub price: Option<Value>,
}

/// The most items one order may have.
pub const MAX_ITEMS: usize = 100;
/// The largest quantity of one item.
pub const MAX_QTY: u64 = 1000;
/// The largest unit price.
pub const MAX_PRICE: f64 = 1_000_000.0;

/// A validated order request.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidOrder {
    /// Who ordered (trimmed).
    pub user_id: String,
    /// From where (trimmed).
    pub restaurant_id: String,
    /// What.
    pub items: Vec<OrderItem>,
}

fn required(value: Option<&str>, name: &str) -> Result<String, String> {
    match value.map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v.to_owned()),
        _ => Err(format!("{name} is required and must not be empty")),
    }
}

impl NewOrder {
    /// Checks the request; the error says what to fix.
    pub fn validate(&self) -> Result<ValidOrder, String> {
        let user_id = required(self.user_id.as_deref(), "userId")?;
        let restaurant_id = required(self.restaurant_id.as_deref(), "restaurantId")?;
        let items = match self.items.as_deref() {
            None | Some([]) => return Err("an order needs at least one item in items".into()),
            Some(items) if items.len() > MAX_ITEMS => {
                return Err(format!("an order has at most {MAX_ITEMS} items"));
            }
            Some(items) => items,
        };
        let items = items
            .iter()
            .enumerate()
            .map(|(n, item)| {
                let sku = required(item.sku.as_deref(), &format!("items[{n}].sku"))?;
                let qty = item
                    .qty
                    .as_ref()
                    .and_then(Value::as_u64)
                    .filter(|q| (1..=MAX_QTY).contains(q))
                    .and_then(|q| u32::try_from(q).ok())
                    .ok_or_else(|| {
                        format!("items[{n}].qty must be an integer from 1 to {MAX_QTY}")
                    })?;
                let price = item
                    .price
                    .as_ref()
                    .and_then(Value::as_f64)
                    .filter(|p| (0.0..=MAX_PRICE).contains(p) && whole_cents(*p))
                    .ok_or_else(|| {
                        format!(
                            "items[{n}].price must be a number from 0 to {MAX_PRICE} with at most two decimals"
                        )
                    })?;
                Ok(OrderItem { sku, qty, price })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(ValidOrder {
            user_id,
            restaurant_id,
            items,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn items() -> Vec<OrderItem> {
        vec![
            OrderItem {
                sku: "pizza".into(),
                qty: 2,
                price: 9.99,
            },
            OrderItem {
                sku: "cola".into(),
                qty: 3,
                price: 1.5,
            },
        ]
    }

    fn event(version: u32, data: OrderEventData) -> OrderEvent {
        OrderEvent {
            order_id: "o1".into(),
            version,
            data,
            at: at("2025-01-01T12:00:00Z") + TimeDelta::minutes(i64::from(version)),
        }
    }

    fn created() -> OrderEvent {
        event(
            1,
            OrderEventData::OrderCreated {
                user_id: "u1".into(),
                restaurant_id: "r1".into(),
                items: items(),
            },
        )
    }

    fn confirmed(version: u32) -> OrderEvent {
        event(
            version,
            OrderEventData::OrderConfirmed {
                estimated_delivery_at: at("2025-01-01T12:30:00Z"),
            },
        )
    }

    fn cancelled(version: u32) -> OrderEvent {
        event(
            version,
            OrderEventData::OrderCancelled {
                reason: "too slow".into(),
            },
        )
    }

    #[test]
    fn prices_are_whole_cents_and_totals_their_exact_sum() {
        let item = |qty, price| OrderItem {
            sku: "s".into(),
            qty,
            price,
        };
        // Summed as floats these would be 0.30000000000000004 and 70.00000000000001.
        assert_eq!(total(&[item(1, 0.1), item(1, 0.2)]), 0.3);
        assert_eq!(total(&[item(1000, 0.07)]), 70.0);
        assert_eq!(
            serde_json::to_string(&total(&[item(3, 19.99), item(1000, 999_999.99)])).unwrap(),
            "1000000049.97"
        );
        let validated = |price: Value| {
            validate(
                json!({"userId": "u", "restaurantId": "r", "items": [{"sku": "b", "qty": 1, "price": price}]}),
            )
        };
        assert!(validated(json!(0.1)).is_ok() && validated(json!(19.99)).is_ok());
        assert!(validated(json!(0.30)).is_ok() && validated(json!(1_000_000)).is_ok());
        assert!(validated(json!(0.001)).is_err() && validated(json!(1_000_000.01)).is_err());
    }

    #[test]
    fn created_folds_into_a_pending_order() {
        let order = fold(&[created()]).unwrap();
        assert_eq!(order.status, OrderStatus::Pending);
        assert_eq!(order.version, 1);
        assert_eq!(order.total, 24.48);
        assert_eq!(order.created_at, at("2025-01-01T12:01:00Z"));
        assert_eq!(order.estimated_delivery_at, None);
        assert_eq!(
            (order.user_id.as_str(), order.restaurant_id.as_str()),
            ("u1", "r1")
        );
    }

    #[test]
    fn confirmation_sets_the_estimate() {
        let order = fold(&[created(), confirmed(2)]).unwrap();
        assert_eq!(order.status, OrderStatus::Confirmed);
        assert_eq!(order.version, 2);
        assert_eq!(
            order.estimated_delivery_at,
            Some(at("2025-01-01T12:30:00Z"))
        );
    }

    #[test]
    fn events_are_replayed_in_version_order() {
        let order = fold(&[cancelled(3), created(), confirmed(2)]).unwrap();
        assert_eq!(order.status, OrderStatus::Cancelled);
        assert_eq!(order.version, 3);
        assert_eq!(order.cancellation_reason.as_deref(), Some("too slow"));
        // The estimate of the earlier confirmation is kept.
        assert!(order.estimated_delivery_at.is_some());
    }

    #[test]
    fn a_cancelled_order_stays_cancelled() {
        let order = fold(&[created(), cancelled(2), confirmed(3)]).unwrap();
        assert_eq!(order.status, OrderStatus::Cancelled);
        assert_eq!(order.version, 3);
        assert_eq!(order.estimated_delivery_at, None);
    }

    #[test]
    fn streams_without_a_creation_fold_to_nothing() {
        assert_eq!(fold(std::iter::empty()), None);
        assert_eq!(fold(&[confirmed(2)]), None);
        let mut late_creation = created();
        late_creation.version = 2;
        assert_eq!(fold(&[late_creation]), None);
    }

    #[test]
    fn gaps_duplicates_and_foreign_events_are_skipped() {
        // Version 3 without 2: the replay stops at the gap.
        assert_eq!(fold(&[created(), cancelled(3)]).unwrap().version, 1);
        // The same event twice applies once.
        let twice = fold(&[created(), confirmed(2), confirmed(2)]).unwrap();
        assert_eq!(twice, fold(&[created(), confirmed(2)]).unwrap());
        // Another order's event does not apply.
        let mut other = cancelled(2);
        other.order_id = "o2".into();
        assert_eq!(
            fold(&[created(), other]).unwrap().status,
            OrderStatus::Pending
        );
    }

    #[test]
    fn folding_is_apply_step_by_step() {
        let events = [created(), confirmed(2), cancelled(3)];
        let mut state = None;
        for e in &events {
            state = apply(state, e);
        }
        assert_eq!(state, fold(&events));
    }

    #[test]
    fn estimate_is_20_minutes_plus_2_per_unit_capped() {
        let t0 = at("2025-01-01T12:00:00Z");
        assert_eq!(estimate_delivery(t0, &items()), at("2025-01-01T12:30:00Z"));
        let many = vec![OrderItem {
            sku: "x".into(),
            qty: 1000,
            price: 1.0,
        }];
        assert_eq!(estimate_delivery(t0, &many), at("2025-01-01T13:30:00Z"));
        assert_eq!(
            estimate_delivery(t0, &items()),
            estimate_delivery(t0, &items())
        );
    }

    #[test]
    fn events_are_stored_as_type_and_data() {
        let value = serde_json::to_value(confirmed(2)).unwrap();
        assert_eq!(
            value,
            json!({
                "orderId": "o1",
                "version": 2,
                "type": "OrderConfirmed",
                "data": {"estimatedDeliveryAt": "2025-01-01T12:30:00.000000Z"},
                "at": "2025-01-01T12:02:00.000000Z",
            })
        );
        let back: OrderEvent = serde_json::from_value(value).unwrap();
        assert_eq!(back, confirmed(2));
        let value = serde_json::to_value(created()).unwrap();
        assert_eq!(value["type"], "OrderCreated");
        assert_eq!(value["data"]["userId"], "u1");
        assert_eq!(
            value["data"]["items"][0],
            json!({"sku": "pizza", "qty": 2, "price": 9.99})
        );
        assert_eq!(
            serde_json::from_value::<OrderEvent>(value).unwrap(),
            created()
        );
        assert_eq!(event_id("o1", 2), "o1-000002");
    }

    #[test]
    fn orders_serialise_in_camel_case() {
        let order = fold(&[created()]).unwrap();
        let value = serde_json::to_value(&order).unwrap();
        assert_eq!(value["status"], "PENDING");
        assert_eq!(value["createdAt"], "2025-01-01T12:01:00.000000Z");
        assert!(value.get("estimatedDeliveryAt").is_none());
        assert_eq!(serde_json::from_value::<Order>(value).unwrap(), order);
    }

    fn validate(body: Value) -> Result<ValidOrder, String> {
        serde_json::from_value::<NewOrder>(body).unwrap().validate()
    }

    #[test]
    fn validation_accepts_a_good_order() {
        let ok = validate(json!({
            "userId": " u1 ", "restaurantId": "r1",
            "items": [{"sku": "a", "qty": 1, "price": 0}, {"sku": "b", "qty": 3, "price": 2.5}]
        }))
        .unwrap();
        assert_eq!(ok.user_id, "u1");
        assert_eq!(
            ok.items[1],
            OrderItem {
                sku: "b".into(),
                qty: 3,
                price: 2.5
            }
        );
    }

    #[test]
    fn validation_names_the_problem() {
        let item = json!({"sku": "a", "qty": 1, "price": 1});
        let cases = [
            (json!({"restaurantId": "r", "items": [item]}), "userId"),
            (
                json!({"userId": " ", "restaurantId": "r", "items": [item]}),
                "userId",
            ),
            (json!({"userId": "u", "items": [item]}), "restaurantId"),
            (
                json!({"userId": "u", "restaurantId": "r"}),
                "at least one item",
            ),
            (
                json!({"userId": "u", "restaurantId": "r", "items": []}),
                "at least one item",
            ),
            (
                json!({"userId": "u", "restaurantId": "r", "items": [{"qty": 1, "price": 1}]}),
                "items[0].sku",
            ),
            (
                json!({"userId": "u", "restaurantId": "r", "items": [item, {"sku": "b", "qty": 0, "price": 1}]}),
                "items[1].qty",
            ),
            (
                json!({"userId": "u", "restaurantId": "r", "items": [{"sku": "b", "qty": 1.5, "price": 1}]}),
                "items[0].qty",
            ),
            (
                json!({"userId": "u", "restaurantId": "r", "items": [{"sku": "b", "qty": -1, "price": 1}]}),
                "items[0].qty",
            ),
            (
                json!({"userId": "u", "restaurantId": "r", "items": [{"sku": "b", "qty": "2", "price": 1}]}),
                "items[0].qty",
            ),
            (
                json!({"userId": "u", "restaurantId": "r", "items": [{"sku": "b", "qty": 1, "price": -0.01}]}),
                "items[0].price",
            ),
            (
                json!({"userId": "u", "restaurantId": "r", "items": [{"sku": "b", "qty": 1}]}),
                "items[0].price",
            ),
            (
                json!({"userId": "u", "restaurantId": "r", "items": [{"sku": "b", "qty": 1, "price": 9.999}]}),
                "at most two decimals",
            ),
            (
                json!({"userId": "u", "restaurantId": "r", "items": [{"sku": "b", "qty": 1, "price": 1e7}]}),
                "items[0].price",
            ),
        ];
        for (body, expected) in cases {
            let why = validate(body.clone()).unwrap_err();
            assert!(why.contains(expected), "{body}: {why}");
        }
    }
}
