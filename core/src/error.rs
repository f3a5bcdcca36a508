//! The one error type handlers and runtimes return.
//!
//! An [`Error`] carries two messages: the operator message (logged, never sent to a
//! client) and, for errors the caller caused, a client-safe message. Server-side
//! failures answer HTTP clients with a fixed text; the `x-nube-invocation-id` response
//! header names the invocation whose log lines hold the detail.

use std::fmt;

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

/// A `Result` whose error is [`nube::Error`](Error).
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`] is; decides the HTTP status and whether a
/// runtime retries the invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request or event was malformed or invalid (HTTP 400). Not retried.
    BadRequest,
    /// The caller may not do this (HTTP 403). Not retried.
    Forbidden,
    /// The addressed thing does not exist (HTTP 404). Not retried.
    NotFound,
    /// The thing already exists (HTTP 409). Not retried.
    Conflict,
    /// An optimistic-concurrency precondition did not hold (HTTP 412). Retried.
    PreconditionFailed,
    /// The path exists but not for this method (HTTP 405). Not retried.
    MethodNotAllowed,
    /// The body is larger than allowed (HTTP 413). Not retried.
    PayloadTooLarge,
    /// The media type is not accepted (HTTP 415). Not retried.
    UnsupportedMediaType,
    /// The handler ran past its invocation deadline (HTTP 504). Retried.
    Timeout,
    /// The handler panicked (HTTP 500). Retried.
    Panic,
    /// A store, network or other dependency failed (HTTP 503). Retried.
    Unavailable,
    /// Anything else that went wrong on the server side (HTTP 500). Retried.
    Internal,
}

impl ErrorKind {
    /// The HTTP status this kind maps to.
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Panic | Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A stable machine-readable code, sent to clients as `error.code`.
    pub fn code(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::PreconditionFailed => "precondition_failed",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Timeout => "timeout",
            Self::Panic | Self::Internal => "internal",
            Self::Unavailable => "unavailable",
        }
    }

    /// Whether running the same event again could succeed: server-side failures and
    /// lost optimistic-concurrency races.
    pub fn is_retryable(self) -> bool {
        !self.is_client_error() || self == Self::PreconditionFailed
    }

    /// Whether the caller caused the failure (a 4xx). Such messages are safe to show
    /// to the client, and delivering the same event again will not help.
    pub fn is_client_error(self) -> bool {
        self.status().is_client_error()
    }
}

/// A failure with a clear message for the operator and a safe one for the client.
///
/// ```
/// use nube::{Error, ErrorKind};
///
/// let e = Error::bad_request("title must not be empty");
/// assert_eq!(e.kind(), ErrorKind::BadRequest);
/// assert_eq!(e.client_message(), "title must not be empty");
///
/// let e = Error::internal("connection to table todos refused");
/// assert_eq!(e.client_message(), "internal error"); // the detail stays in the logs
/// ```
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// An error of `kind`. For client errors `message` is shown to the caller;
    /// for server errors it is only logged.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// A 400: the input is invalid; `message` tells the caller what to fix.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }

    /// A 404: `message` names what was not found.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// A 409: the thing already exists.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    /// A 500 whose `message` is for the operator only.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// Attaches the underlying cause (logged with the operator message).
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The full message for operators and logs, causes included.
    pub fn operator_message(&self) -> String {
        let mut text = self.message.clone();
        let mut cause: Option<&(dyn std::error::Error + 'static)> = self
            .source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static));
        while let Some(c) = cause {
            text.push_str(": ");
            text.push_str(&c.to_string());
            cause = c.source();
        }
        text
    }

    /// The message that may be shown to an HTTP client: the message itself for client
    /// errors, a fixed text for server errors.
    pub fn client_message(&self) -> &str {
        if self.kind.is_client_error() {
            &self.message
        } else {
            match self.kind {
                ErrorKind::Timeout => "the function did not finish in time",
                ErrorKind::Unavailable => "service temporarily unavailable",
                _ => "internal error",
            }
        }
    }

    /// Whether delivering the same event again could succeed: server-side failures,
    /// and lost optimistic-concurrency races ([`ErrorKind::PreconditionFailed`]).
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.operator_message())
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.operator_message())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl From<crate::store::StoreError> for Error {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError as S;
        let kind = match &e {
            S::NotFound { .. } => ErrorKind::NotFound,
            S::Conflict { .. } => ErrorKind::Conflict,
            S::PreconditionFailed { .. } => ErrorKind::PreconditionFailed,
            // Ids usually come from the request (a path segment).
            S::InvalidDocument(_) => ErrorKind::BadRequest,
            // A query the handler built, or stored data that no longer fits its type:
            // the server's fault, and not the client's business.
            S::InvalidQuery(_) | S::Decode(_) => ErrorKind::Internal,
            S::Backend { .. } => ErrorKind::Unavailable,
        };
        // Store messages name collections and ids; for client kinds they are safe.
        Error::new(kind, e.to_string())
    }
}

impl From<crate::blob::BlobError> for Error {
    fn from(e: crate::blob::BlobError) -> Self {
        let kind = match &e {
            crate::blob::BlobError::NotFound { .. } => ErrorKind::NotFound,
            crate::blob::BlobError::InvalidKey { .. } => ErrorKind::BadRequest,
            _ => ErrorKind::Unavailable,
        };
        Error::new(kind, e.to_string())
    }
}

/// JSON errors inside a handler are the server's (client input goes through the
/// [`Json`](crate::http::Json) extractor, which answers 400 itself).
impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::internal("JSON (de)serialisation failed").with_source(e)
    }
}

/// The JSON body every nube error response carries:
/// `{"error":{"code":"not_found","message":"..."}}`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    /// The error object.
    pub error: ErrorDetail,
}

/// The `error` object of an [`ErrorBody`].
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ErrorDetail {
    /// [`ErrorKind::code`].
    pub code: String,
    /// [`Error::client_message`].
    pub message: String,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if !self.kind.is_client_error() {
            tracing::error!(error.kind = self.kind.code(), error = %self.operator_message(), "request failed");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.kind.code().to_owned(),
                message: self.client_message().to_owned(),
            },
        };
        (self.kind.status(), Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_hide_their_detail() {
        let e = Error::internal("db password wrong").with_source(std::io::Error::other("eof"));
        assert_eq!(e.client_message(), "internal error");
        assert_eq!(e.operator_message(), "db password wrong: eof");
        assert!(e.is_retryable());
        assert!(!Error::bad_request("x").is_retryable());
    }

    #[tokio::test]
    async fn responses_carry_code_and_safe_message() {
        use http_body_util::BodyExt;
        let resp = Error::internal("secret").into_response();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("\"internal\""), "{text}");
    }
}
