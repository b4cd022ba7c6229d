//! Bounded polling: wait until a condition holds, or fail after a bound.

use std::future::Future;
use std::time::Duration;

use crate::error::HarnessError;

/// The bound for convergence and other waits: generous, for a loaded 2-core machine.
pub const CONVERGENCE_BOUND: Duration = Duration::from_secs(60);

/// How often [`eventually`] checks.
pub const POLL_EVERY: Duration = Duration::from_millis(50);

/// Polls `check` every [`POLL_EVERY`] until it returns true; [`HarnessError::NotReached`]
/// naming `what` after `bound`.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// let mut calls = 0;
/// integration_tests::eventually("third call", Duration::from_secs(5), || {
///     calls += 1;
///     let done = calls >= 3;
///     async move { done }
/// })
/// .await
/// .unwrap();
/// assert_eq!(calls, 3);
/// let never = integration_tests::eventually("never", Duration::from_millis(60), || async { false });
/// assert!(never.await.unwrap_err().to_string().contains("never"));
/// # });
/// ```
pub async fn eventually<F, Fut>(
    what: &str,
    bound: Duration,
    mut check: F,
) -> Result<(), HarnessError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        if check().await {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(HarnessError::NotReached {
                what: what.to_owned(),
                bound,
            });
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}
