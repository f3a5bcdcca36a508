//! Running a future against an invocation's deadline, with a timer armed only when
//! the future first waits.
//!
//! `tokio::time::timeout` registers nothing for a future that finishes at once, but it
//! still builds its timer, and dropping a tokio timer takes the time driver's lock, a
//! lock every worker thread shares. An invocation that answers without waiting (most
//! HTTP handlers that do no I/O) would take that lock once per request for nothing.
//! [`within`] polls the future first and builds the timer only if it is pending.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use pin_project_lite::pin_project;
use tokio::time::Sleep;

/// The future did not finish by its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(());

impl std::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

/// Runs `future` until `deadline`: its output, or [`Elapsed`] if the deadline passes
/// first. Like `tokio::time::timeout_at`, the future is polled before the deadline is
/// looked at, so a future that is ready at once always succeeds.
///
/// ```
/// use std::time::{Duration, Instant};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let soon = Instant::now() + Duration::from_millis(10);
/// assert_eq!(nube::deadline::within(soon, async { 7 }).await, Ok(7));
/// let never = std::future::pending::<()>();
/// assert!(nube::deadline::within(soon, never).await.is_err());
/// # }
/// ```
///
/// Needs a tokio runtime with its time driver, once the future waits.
pub fn within<F: Future>(deadline: Instant, future: F) -> Within<F> {
    Within {
        future,
        deadline,
        timer: None,
    }
}

pin_project! {
    /// The future returned by [`within`].
    #[must_use = "futures do nothing unless polled"]
    pub struct Within<F> {
        #[pin]
        future: F,
        deadline: Instant,
        // Boxed: a timer is large, and this future is moved whole (into a box, say)
        // before it is first polled, when most never need one.
        timer: Option<Pin<Box<Sleep>>>,
    }
}

impl<F> std::fmt::Debug for Within<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Within")
            .field("deadline", &self.deadline)
            .field("armed", &self.timer.is_some())
            .finish_non_exhaustive()
    }
}

impl<F: Future> Future for Within<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let had_budget = tokio::task::coop::has_budget_remaining();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        let deadline = *this.deadline;
        let timer = this.timer.get_or_insert_with(|| {
            // On tokio's clock (which tests may pause), as far ahead as is left now.
            let left = deadline.saturating_duration_since(Instant::now());
            Box::pin(tokio::time::sleep_until(tokio::time::Instant::now() + left))
        });
        // A future that used up the task's budget would keep the timer from ever
        // being polled for real: poll it outside the budget then, as tokio's
        // `timeout` does.
        let timer = if had_budget && !tokio::task::coop::has_budget_remaining() {
            std::pin::pin!(tokio::task::coop::unconstrained(timer.as_mut())).poll(cx)
        } else {
            timer.as_mut().poll(cx)
        };
        match timer {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed(()))),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_ready_future_arms_no_timer_even_past_its_deadline() {
        let past = Instant::now();
        let mut run = std::pin::pin!(within(past, async { 1 }));
        let waker = futures::task::noop_waker();
        let polled = run.as_mut().poll(&mut Context::from_waker(&waker));
        assert_eq!(polled, Poll::Ready(Ok(1)));
        assert!(run.timer.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_future_is_stopped_at_its_deadline() {
        let deadline = Instant::now() + Duration::from_secs(5);
        let slow = tokio::time::sleep(Duration::from_secs(6));
        assert_eq!(within(deadline, slow).await, Err(Elapsed(())));
    }

    /// A future that is always ready again but spends the task's budget (and so
    /// yields now and then) still meets its deadline.
    #[tokio::test]
    async fn a_future_spending_its_budget_is_stopped_at_its_deadline() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let busy = async move {
            loop {
                tx.send(()).unwrap();
                rx.recv().await;
            }
        };
        let deadline = Instant::now() + Duration::from_millis(50);
        let outcome = tokio::time::timeout(Duration::from_secs(10), within(deadline, busy)).await;
        assert_eq!(outcome, Ok(Err(Elapsed(()))), "the deadline was not kept");
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_future_that_finishes_in_time_gives_its_output() {
        let deadline = Instant::now() + Duration::from_secs(5);
        let quick = async {
            tokio::time::sleep(Duration::from_secs(4)).await;
            "done"
        };
        let mut run = std::pin::pin!(within(deadline, quick));
        let waker = futures::task::noop_waker();
        assert!(
            run.as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        assert!(run.timer.is_some(), "a pending future arms the timer");
        assert_eq!(run.await, Ok("done"));
    }
}
