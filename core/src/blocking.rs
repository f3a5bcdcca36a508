//! [`run_blocking`]: CPU-heavy or blocking work off the async threads, so it does
//! not stall other invocations and the deadline can still fire.

use crate::error::{Error, ErrorKind};
use crate::invoke::panic_message;

/// Runs `work` on the blocking thread pool. A panic inside it becomes an
/// [`ErrorKind::Panic`] error instead of tearing down the invocation.
///
/// Blocking work cannot be interrupted: when the invocation's deadline passes, the
/// invocation fails but `work` runs to its end. Keep it bounded (size limits on
/// decoders, for instance).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let sum = nube::run_blocking(|| (1..=100u64).sum::<u64>()).await?;
/// assert_eq!(sum, 5050);
/// # Ok::<(), nube::Error>(())
/// # }).unwrap();
/// ```
pub async fn run_blocking<T, F>(work: F) -> Result<T, Error>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
        .await
        .map_err(|e| {
            if e.is_panic() {
                Error::new(
                    ErrorKind::Panic,
                    format!(
                        "blocking work panicked: {}",
                        panic_message(&*e.into_panic())
                    ),
                )
            } else {
                Error::internal("blocking work was cancelled")
            }
        })
}
