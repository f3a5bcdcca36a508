//! # nube-orders
//!
//! Event-sourced orders with a CQRS read model, written once with nube.
//!
//! Collections:
//! - [`EVENTS`] (`order-events`): the append-only stream, one [`OrderEvent`] per
//!   document, id `{orderId}-{version:06}` ([`event_id`]). Events are appended with
//!   `create`, so two writers of the same version conflict: optimistic concurrency
//!   per order.
//! - [`ORDERS`] (`orders`): the read model, one [`Order`] per order, id `{orderId}`.
//! - [`NOTIFICATIONS`] (`notifications`): messages for users, id
//!   `{orderId}-confirmed` ([`Notification`]).
//!
//! Functions:
//! - [`API_FUNCTION`] (`orders-api`, HTTP): `POST /orders`, `GET /orders/{id}`,
//!   `GET /users/{userId}/orders`.
//! - [`READ_MODEL_FUNCTION`] (`orders-read-model`, document created in
//!   `order-events`): replays the order's stream with [`fold`] into `orders`; for
//!   `OrderCreated` it also appends `OrderConfirmed` (version 2) with
//!   [`estimate_delivery`] and notifies the user.
//! - [`CLEANUP_FUNCTION`] (`cleanup-expired-orders`, timer `0 2 * * *`, daily at
//!   02:00 UTC): cancels orders still `PENDING` after
//!   [`OrdersConfig::pending_max_age`].
//!
//! Every handler is idempotent: delivering any event again leaves the same state.
//!
//! ```
//! let app = nube_orders::register(nube::App::new("my-app"));
//! assert!(app.validate().is_ok());
//! assert!(app.function("orders-read-model").is_some());
//! ```

mod model;

pub use model::{
    BASE_DELIVERY_MINUTES, MAX_DELIVERY_MINUTES, MAX_ITEMS, MAX_QTY, MINUTES_PER_UNIT, NewItem,
    NewOrder, Order, OrderEvent, OrderEventData, OrderItem, OrderStatus, ValidOrder, apply,
    estimate_delivery, event_id, fold, now, total,
};

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use nube::axum::http::StatusCode;
use nube::http::Path;
use nube::http::{Json, Routes};
use nube::store::{Direction, Query, StoreError};
use nube::{App, Collection, Context, DocumentCreated, Error, TimerTick};
use serde::{Deserialize, Serialize};

/// The event stream.
pub const EVENTS: &str = "order-events";
/// The read model.
pub const ORDERS: &str = "orders";
/// Notifications for users.
pub const NOTIFICATIONS: &str = "notifications";
/// The HTTP function.
pub const API_FUNCTION: &str = "orders-api";
/// The document-created function that keeps the read model.
pub const READ_MODEL_FUNCTION: &str = "orders-read-model";
/// The timer function that cancels stale pending orders.
pub const CLEANUP_FUNCTION: &str = "cleanup-expired-orders";
/// When [`CLEANUP_FUNCTION`] runs: daily at 02:00 UTC.
pub const CLEANUP_SCHEDULE: &str = "0 2 * * *";

/// A message for a user: document `notifications/{orderId}-confirmed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// Whom it is for.
    pub user_id: String,
    /// The order it is about.
    pub order_id: String,
    /// What it says.
    pub message: String,
    /// When it was raised (the time of the event it reports).
    #[serde(with = "nube::store::timestamp")]
    pub created_at: DateTime<Utc>,
}

/// Settings of the orders functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrdersConfig {
    /// Orders still `PENDING` this long after creation are cancelled by
    /// [`CLEANUP_FUNCTION`]. One hour unless set.
    pub pending_max_age: Duration,
}

impl Default for OrdersConfig {
    fn default() -> Self {
        Self {
            pending_max_age: Duration::from_secs(3600),
        }
    }
}

impl OrdersConfig {
    /// The variable [`OrdersConfig::from_env`] reads `pending_max_age` from, in
    /// whole seconds.
    pub const PENDING_MAX_AGE_VAR: &str = "ORDERS_PENDING_MAX_AGE_SECS";

    /// The settings from the environment (`ORDERS_PENDING_MAX_AGE_SECS`); defaults
    /// for what is unset. An unusable value is logged and the default kept.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The settings from `lookup` (a variable's value by name), as
    /// [`OrdersConfig::from_env`] does with the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let mut config = Self::default();
        if let Some(text) = lookup(Self::PENDING_MAX_AGE_VAR) {
            match text.trim().parse::<u64>() {
                Ok(secs) => config.pending_max_age = Duration::from_secs(secs),
                Err(e) => tracing::warn!(
                    variable = Self::PENDING_MAX_AGE_VAR,
                    value = text,
                    error = %e,
                    default_secs = config.pending_max_age.as_secs(),
                    "not a number of seconds; using the default"
                ),
            }
        }
        config
    }
}

/// Adds the orders collections and functions to `app`, configured from the
/// environment ([`OrdersConfig::from_env`]).
pub fn register(app: App) -> App {
    register_with(app, OrdersConfig::from_env())
}

/// Adds the orders collections and functions to `app` with `config`.
pub fn register_with(app: App, config: OrdersConfig) -> App {
    app.collection(EVENTS)
        .collection(ORDERS)
        .collection(NOTIFICATIONS)
        .http(
            API_FUNCTION,
            Routes::new()
                .post("/orders", place_order)
                .get("/orders/{id}", get_order)
                .get("/users/{user_id}/orders", user_orders),
        )
        .on_document_created(READ_MODEL_FUNCTION, EVENTS, on_order_event)
        .timer(CLEANUP_FUNCTION, CLEANUP_SCHEDULE, move |tick, ctx| {
            cleanup_expired_orders(tick, ctx, config)
        })
        .function_collections(API_FUNCTION, [EVENTS, ORDERS])
        .function_collections(READ_MODEL_FUNCTION, [ORDERS, NOTIFICATIONS])
        .function_collections(CLEANUP_FUNCTION, [EVENTS, ORDERS])
}

/// The orders functions as an app of their own, called `orders`.
pub fn app() -> App {
    register(App::new("orders"))
}

fn events(ctx: &Context) -> Collection<OrderEvent> {
    ctx.collection(EVENTS)
}

fn orders(ctx: &Context) -> Collection<Order> {
    ctx.collection(ORDERS)
}

/// Appends `event` at its version; `Ok(false)` when that version is already taken.
async fn append(ctx: &Context, event: &OrderEvent) -> Result<bool, StoreError> {
    let id = event_id(&event.order_id, event.version);
    match events(ctx).create(&id, event).await {
        Ok(_) => {
            tracing::info!(
                order_id = event.order_id,
                version = event.version,
                r#type = event.data.type_name(),
                "event appended"
            );
            Ok(true)
        }
        Err(StoreError::Conflict { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Every event of an order, in version order.
async fn stream(ctx: &Context, order_id: &str) -> Result<Vec<OrderEvent>, StoreError> {
    let query = Query::new()
        .eq("orderId", order_id)
        .order_by("version", Direction::Asc);
    Ok(events(ctx)
        .query_all(&query)
        .await?
        .into_iter()
        .map(|d| d.value)
        .collect())
}

async fn place_order(
    ctx: Context,
    Json(body): Json<NewOrder>,
) -> nube::Result<(StatusCode, Json<serde_json::Value>)> {
    let order = body.validate().map_err(Error::bad_request)?;
    let order_id = uuid::Uuid::now_v7().to_string();
    let event = OrderEvent {
        order_id: order_id.clone(),
        version: 1,
        data: OrderEventData::OrderCreated {
            user_id: order.user_id,
            restaurant_id: order.restaurant_id,
            items: order.items,
        },
        at: now(),
    };
    if !append(&ctx, &event).await? {
        return Err(Error::conflict(format!("order {order_id} already exists")));
    }
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "orderId": order_id,
            "status": OrderStatus::Pending.as_str(),
        })),
    ))
}

async fn get_order(ctx: Context, Path(id): Path<String>) -> nube::Result<Json<Order>> {
    if let Some(doc) = orders(&ctx).get(&id).await? {
        return Ok(Json(doc.value));
    }
    // The read model has not caught up (or never will, if its function failed):
    // the stream is the truth.
    match fold(&stream(&ctx, &id).await?) {
        Some(order) => Ok(Json(order)),
        None => Err(Error::not_found(format!("order {id:?} not found"))),
    }
}

async fn user_orders(ctx: Context, Path(user_id): Path<String>) -> nube::Result<Json<Vec<Order>>> {
    let query = Query::new()
        .eq("userId", user_id)
        .order_by("createdAt", Direction::Desc);
    let docs = orders(&ctx).query_all(&query).await?;
    Ok(Json(docs.into_iter().map(|d| d.value).collect()))
}

/// The document-created handler of `order-events`.
async fn on_order_event(event: DocumentCreated<OrderEvent>, ctx: Context) -> nube::Result<()> {
    let event = event.document;
    if event.version == 1
        && let OrderEventData::OrderCreated { user_id, items, .. } = &event.data
    {
        confirm(&ctx, &event, user_id, items).await?;
    }
    project(&ctx, &event.order_id).await?;
    Ok(())
}

/// Appends `OrderConfirmed` as version 2 (a redelivery finds it there already) and
/// notifies the user, unless version 2 turned out to be something else (the order
/// was cancelled first).
async fn confirm(
    ctx: &Context,
    created: &OrderEvent,
    user_id: &str,
    items: &[OrderItem],
) -> nube::Result<()> {
    let order_id = &created.order_id;
    let confirmation = OrderEvent {
        order_id: order_id.clone(),
        version: 2,
        data: OrderEventData::OrderConfirmed {
            estimated_delivery_at: estimate_delivery(created.at, items),
        },
        at: now(),
    };
    let second = if append(ctx, &confirmation).await? {
        confirmation
    } else {
        let id = event_id(order_id, 2);
        events(ctx)
            .get(&id)
            .await?
            .ok_or_else(|| {
                Error::internal(format!(
                    "{EVENTS}/{id} conflicted on create but is not there"
                ))
            })?
            .value
    };
    let OrderEventData::OrderConfirmed {
        estimated_delivery_at,
    } = second.data
    else {
        tracing::info!(
            order_id,
            r#type = second.data.type_name(),
            "version 2 is not a confirmation; not confirming"
        );
        return Ok(());
    };
    let notification = Notification {
        user_id: user_id.to_owned(),
        order_id: order_id.clone(),
        message: format!(
            "Your order {order_id} is confirmed. Estimated delivery at {} UTC.",
            estimated_delivery_at.format("%H:%M")
        ),
        created_at: second.at,
    };
    ctx.collection::<Notification>(NOTIFICATIONS)
        .put(&format!("{order_id}-confirmed"), &notification)
        .await?;
    Ok(())
}

/// Rebuilds an order from its stream and writes it to the read model, unless the
/// read model already holds that version or a later one (so that a slow delivery
/// of an old event never moves it backwards).
async fn project(ctx: &Context, order_id: &str) -> nube::Result<()> {
    let orders = orders(ctx);
    for _ in 0..10 {
        let Some(state) = fold(&stream(ctx, order_id).await?) else {
            tracing::warn!(
                order_id,
                "the stream has no OrderCreated at version 1; nothing to project"
            );
            return Ok(());
        };
        let written = match orders.get(order_id).await? {
            Some(current) if current.value.version >= state.version => return Ok(()),
            Some(current) => orders.update(order_id, &state, &current.version).await,
            None => orders.create(order_id, &state).await,
        };
        match written {
            Ok(_) => {
                tracing::info!(
                    order_id,
                    version = state.version,
                    status = state.status.as_str(),
                    "read model updated"
                );
                return Ok(());
            }
            // Someone else wrote the read model in between: look again.
            Err(StoreError::Conflict { .. } | StoreError::PreconditionFailed { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::internal(format!(
        "the read model of order {order_id} kept changing; giving up for this delivery"
    )))
}

/// The timer handler: cancels every order still `PENDING` (in the stream, not only
/// in the read model) that was created longer than `pending_max_age` before the
/// tick. A version conflict means someone else moved the order on: skipped.
async fn cleanup_expired_orders(
    tick: TimerTick,
    ctx: Context,
    config: OrdersConfig,
) -> nube::Result<()> {
    let max_age = TimeDelta::from_std(config.pending_max_age).unwrap_or(TimeDelta::MAX);
    let Some(cutoff) = tick.scheduled_time.checked_sub_signed(max_age) else {
        return Ok(());
    };
    let query = Query::new()
        .eq("status", OrderStatus::Pending.as_str())
        .lt("createdAt", nube::store::timestamp::text(&cutoff))
        .order_by("createdAt", Direction::Asc);
    let candidates = orders(&ctx).query_all(&query).await?;
    let reason = format!(
        "not confirmed within {} seconds",
        config.pending_max_age.as_secs()
    );
    let (mut cancelled, mut skipped) = (0_u32, 0_u32);
    let mut failure = None;
    for doc in candidates {
        match cancel_if_pending(&ctx, &doc.id, cutoff, &reason).await {
            Ok(true) => cancelled += 1,
            Ok(false) => skipped += 1,
            Err(e) => {
                tracing::error!(order_id = doc.id, error = %e, "could not cancel the order");
                failure = Some(e);
            }
        }
    }
    tracing::info!(cancelled, skipped, cutoff = %nube::store::timestamp::text(&cutoff), "expired pending orders cleaned up");
    // The other orders were handled; the next run (or a retry) picks this one up.
    failure.map_or(Ok(()), Err)
}

async fn cancel_if_pending(
    ctx: &Context,
    order_id: &str,
    cutoff: DateTime<Utc>,
    reason: &str,
) -> nube::Result<bool> {
    let Some(state) = fold(&stream(ctx, order_id).await?) else {
        return Ok(false);
    };
    if state.status != OrderStatus::Pending || state.created_at >= cutoff {
        return Ok(false);
    }
    let cancellation = OrderEvent {
        order_id: order_id.to_owned(),
        version: state.version + 1,
        data: OrderEventData::OrderCancelled {
            reason: reason.to_owned(),
        },
        at: now(),
    };
    let appended = append(ctx, &cancellation).await?;
    if !appended {
        tracing::info!(
            order_id,
            version = cancellation.version,
            "the order changed meanwhile; not cancelling"
        );
    }
    Ok(appended)
}
