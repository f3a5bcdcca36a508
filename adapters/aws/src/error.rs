//! The two errors of this crate: [`DecodeError`] (a payload is not the event it
//! should be) and [`HandlerError`] (what an invocation reports to Lambda as
//! `errorType` / `errorMessage`).

use std::fmt;

/// A payload, or one record of it, could not be turned into a nube event; the
/// message says which field is wrong and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl DecodeError {
    /// An error saying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

/// A failed invocation as Lambda records it: `{"errorType": ..., "errorMessage": ...}`.
///
/// `error_type` is one of the `HandlerError::*` constants, or `nube.<ErrorKind>`
/// (`nube.Timeout`, `nube.Panic`, `nube.Unavailable`...) when the function failed.
#[derive(Clone, PartialEq, Eq)]
pub struct HandlerError {
    /// Lambda's `errorType`.
    pub error_type: String,
    /// Lambda's `errorMessage`.
    pub error_message: String,
}

impl HandlerError {
    /// The payload is not the kind of event the selected function takes.
    pub const EVENT_MISMATCH: &'static str = "nube.EventMismatch";
    /// The payload is the right kind of event but malformed.
    pub const INVALID_EVENT: &'static str = "nube.InvalidEvent";
    /// The adapter itself failed (a bug, or a panic outside the function).
    pub const RUNTIME: &'static str = "nube.Runtime";
    /// The bootstrap could not start (reported to `/runtime/init/error`): an unknown
    /// `_HANDLER`, a missing `NUBE_TABLE_*`, a store that cannot be set up.
    pub const INIT: &'static str = "nube.InitError";

    /// An error of `error_type` saying `message`.
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error_type: error_type.into(),
            error_message: message.into(),
        }
    }

    /// The error of a failed function: `nube.<ErrorKind>` and the operator message.
    pub fn from_nube(error: &nube::Error) -> Self {
        Self::new(format!("nube.{:?}", error.kind()), error.operator_message())
    }

    /// The error a payload of the wrong kind gets.
    pub fn mismatch(message: impl Into<String>) -> Self {
        Self::new(Self::EVENT_MISMATCH, message)
    }

    /// The error a malformed payload gets.
    pub fn invalid(error: &DecodeError) -> Self {
        Self::new(Self::INVALID_EVENT, error.to_string())
    }
}

/// Like `Display` (lambda_runtime logs handler errors with `Debug`).
impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_type, self.error_message)
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_type, self.error_message)
    }
}

impl std::error::Error for HandlerError {}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(e: HandlerError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: e.error_type,
            error_message: e.error_message,
        }
    }
}
