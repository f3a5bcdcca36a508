//! [`DecodeError`]: a request is not the event its function takes. Every decode
//! failure is the caller's: the server answers `400` with the message, in nube's
//! error body (`{"error":{"code":"bad_request","message":...}}`).

use std::fmt;

/// A request, or its event data, could not be turned into a nube event; the message
/// says what was expected and what came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl DecodeError {
    /// An error saying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    /// The same error with `context` in front (`"storage event: ..."`).
    pub fn within(self, context: &str) -> Self {
        Self(format!("{context}: {}", self.0))
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

impl From<DecodeError> for nube::Error {
    fn from(e: DecodeError) -> Self {
        nube::Error::bad_request(e.0)
    }
}
