//! How an invocation's payload reaches nube: its bytes as the Runtime API sent them,
//! with no JSON pass of lambda_runtime's.
//!
//! lambda_runtime deserializes every payload into the handler's event type before the
//! handler runs. nube reads each payload by its shape, so the natural type is
//! `Box<RawValue>`; but that is a whole pass over the JSON (validating it, to find where
//! it ends) and a copy, about a sixth of what an HTTP invocation costs nube
//! (`cargo xtask bench instructions`, side `raw-value`).
//!
//! Instead [`PayloadLayer`], a layer of the runtime's (`Runtime::layer`), sees each
//! invocation as the Runtime API client received it (`LambdaInvocation`, body as
//! `Bytes`) and hands the body to [`RawPayload`]'s `Deserialize` through a thread-local,
//! for exactly the duration of its inner service's `call`, in which lambda_runtime
//! deserializes the event (synchronously, on that thread). `RawPayload` takes the bytes
//! and leaves the deserializer unread: lambda_runtime does not check for trailing input.
//! Without a hand-over (the type deserialized anywhere else) `RawPayload` reads the
//! value through `Box<RawValue>` as usual, so it is always the payload's JSON; if a
//! future lambda_runtime checked for trailing input, every invocation would fail with
//! its deserialization error, which the end-to-end tests (the real bootstrap under
//! cargo-lambda's Runtime API) would show at once.

use std::cell::RefCell;
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use lambda_runtime::LambdaInvocation;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

thread_local! {
    /// The body [`PayloadLayer`] is handing over, during its inner service's `call`.
    static HANDED_OVER: RefCell<Option<Bytes>> = const { RefCell::new(None) };
}

/// An invocation's payload: the bytes of its JSON, not yet read (or checked to be JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawPayload(pub Bytes);

impl<'de> Deserialize<'de> for RawPayload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if let Some(body) = HANDED_OVER.with_borrow_mut(Option::take) {
            return Ok(Self(body));
        }
        let raw = Box::<RawValue>::deserialize(d)?;
        Ok(Self(Bytes::from(String::from(Box::<str>::from(raw)))))
    }
}

/// The runtime layer that hands each invocation's body to [`RawPayload`] (module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct PayloadLayer;

impl<S> tower::Layer<S> for PayloadLayer {
    type Service = PayloadService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PayloadService(inner)
    }
}

/// [`PayloadLayer`]'s service.
#[derive(Debug, Clone)]
pub struct PayloadService<S>(S);

impl<S: tower::Service<LambdaInvocation>> tower::Service<LambdaInvocation> for PayloadService<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, invocation: LambdaInvocation) -> S::Future {
        HANDED_OVER.set(Some(invocation.body.clone()));
        // Not taken when lambda_runtime refused the invocation before reading it.
        let _clear = HandOverEnds;
        self.0.call(invocation)
    }
}

/// Ends a hand-over when dropped, even by a panic.
struct HandOverEnds;

impl Drop for HandOverEnds {
    fn drop(&mut self) {
        HANDED_OVER.set(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_hand_over_the_payload_is_read_as_json() {
        let payload: RawPayload = serde_json::from_str(r#" {"a": [1, 2]} "#).unwrap();
        assert_eq!(payload.0, Bytes::from_static(br#"{"a": [1, 2]}"#));
        assert!(serde_json::from_str::<RawPayload>("{not json").is_err());
    }

    #[test]
    fn a_handed_over_body_is_taken_once_and_the_input_left_unread() {
        HANDED_OVER.set(Some(Bytes::from_static(b"{\"handed\":true}")));
        let mut input = serde_json::Deserializer::from_str("[\"unread\"]");
        let payload = RawPayload::deserialize(&mut input).unwrap();
        assert_eq!(payload.0, Bytes::from_static(b"{\"handed\":true}"));
        let next = RawPayload::deserialize(&mut input).unwrap();
        assert_eq!(next.0, Bytes::from_static(b"[\"unread\"]"));
    }
}
