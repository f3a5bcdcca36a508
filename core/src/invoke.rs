//! Running one event function: trigger checks, deadline, panic capture and logs.
//! Every runtime calls [`App::invoke`], so these rules hold on every provider.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use futures::FutureExt;

use crate::app::{App, Trigger};
use crate::context::Context;
use crate::error::{Error, ErrorKind, Result};
use crate::event::Event;

/// The text of a caught panic.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-text payload".to_owned()
    }
}

impl App {
    /// Runs the event function `ctx.function_name()` with `event`.
    ///
    /// Fails with [`ErrorKind::BadRequest`] when the function does not exist, is an
    /// HTTP function, or does not take this event (wrong kind, bucket, prefix or
    /// collection); with [`ErrorKind::Timeout`] when it runs past the context's
    /// deadline (or the function's timeout); with [`ErrorKind::Panic`] when it
    /// panics. The process goes on in every case.
    pub async fn invoke(&self, event: Event, ctx: Context) -> Result<()> {
        let name = ctx.function_name();
        let function = self
            .require_function(name)
            .map_err(|e| Error::bad_request(e.client_message().to_owned()))?;
        if !function.accepts(&event) {
            let wanted = match function.trigger() {
                Trigger::Http(_) => {
                    return Err(Error::bad_request(format!(
                        "function {name:?} is an HTTP function; call it through its routes"
                    )));
                }
                Trigger::Timer(_) => "timer events".to_owned(),
                Trigger::BlobCreated { bucket, prefix } => {
                    format!(
                        "blob-created events in bucket {bucket:?} with keys starting {prefix:?}"
                    )
                }
                Trigger::DocumentCreated { collection } => {
                    format!("document-created events in collection {collection:?}")
                }
            };
            return Err(Error::bad_request(format!(
                "function {name:?} takes {wanted}; got a {} event that does not match",
                event.kind()
            )));
        }
        let handler = self
            .handler_of(function)
            .expect("event functions always have a handler")
            .clone();
        let limit = match ctx.remaining() {
            Some(left) => left.min(self.timeout_of(function)),
            None => self.timeout_of(function),
        };
        // The invocation's span, entered around each poll below: a clone of the
        // Context (one count) rather than of its span.
        let invocation = ctx.clone();
        let span = invocation.span();
        let platform_logs = ctx.provider().logs_requests();
        let event_id = event.event_id().to_owned();
        let started = Instant::now();
        // The handler is called inside the async block so that a panic while it builds
        // its future is caught too.
        let run = AssertUnwindSafe(async move { handler(event, ctx).await }).catch_unwind();
        let mut run = std::pin::pin!(crate::deadline::within(started + limit, run));
        let outcome = match std::future::poll_fn(|cx| span.in_scope(|| run.as_mut().poll(cx))).await
        {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => Err(Error::new(
                ErrorKind::Panic,
                format!("the handler panicked: {}", panic_message(&*panic)),
            )),
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!("the handler did not finish within {limit:?}"),
            )),
        };
        // The span is entered (and the clock read) only for a line that could be
        // written (see `logging::debug_possible`).
        if outcome.is_ok() && platform_logs && !crate::logging::debug_possible() {
            return outcome;
        }
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        span.in_scope(|| match &outcome {
            Ok(()) if platform_logs => {
                tracing::debug!(event_id, elapsed_ms, "invocation succeeded")
            }
            Ok(()) => tracing::info!(event_id, elapsed_ms, "invocation succeeded"),
            Err(e) => tracing::error!(
                event_id,
                elapsed_ms,
                error.kind = e.kind().code(),
                error = %e.operator_message(),
                "invocation failed"
            ),
        });
        outcome
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::document_created;
    use crate::{App, Context, DocumentCreated, ErrorKind};

    #[derive(serde::Deserialize)]
    struct Typed {
        #[allow(dead_code)]
        n: u32,
    }

    #[tokio::test]
    async fn panics_while_building_the_future_are_caught() {
        let app = App::new("t").on_document_created(
            "f",
            "c",
            |_e: DocumentCreated<serde_json::Value>,
             _c: Context|
             -> std::future::Ready<crate::Result<()>> { panic!("before any await") },
        );
        let t = crate::testing::TestApp::new(app);
        let e = t
            .invoke("f", document_created("c", "1", serde_json::json!({})))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Panic);
    }

    #[tokio::test]
    async fn events_a_function_does_not_take_are_refused() {
        let app = App::new("t").on_document_created(
            "f",
            "c",
            |_e: DocumentCreated<Typed>, _c: Context| async { Ok(()) },
        );
        let t = crate::testing::TestApp::new(app);
        let wrong_collection = t
            .invoke(
                "f",
                document_created("other", "1", serde_json::json!({"n": 1})),
            )
            .await;
        assert_eq!(wrong_collection.unwrap_err().kind(), ErrorKind::BadRequest);
        let wrong_shape = t
            .invoke("f", document_created("c", "1", serde_json::json!(1)))
            .await;
        let wrong_shape = wrong_shape.unwrap_err();
        assert_eq!(wrong_shape.kind(), ErrorKind::BadRequest);
        // The message reaches the platform's caller: the shape, not the Rust type.
        let message = wrong_shape.client_message();
        assert!(
            message.contains("c/1") && !message.contains("Typed"),
            "{message}"
        );
        let timer = t.invoke("f", crate::testing::timer_tick("@daily")).await;
        assert_eq!(timer.unwrap_err().kind(), ErrorKind::BadRequest);
        assert!(
            t.invoke("f", document_created("c", "1", serde_json::json!({"n": 1})))
                .await
                .is_ok()
        );
    }
}
