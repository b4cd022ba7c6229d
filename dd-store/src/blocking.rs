//! Running a blocking backend call (file I/O, an SQLite connection) on tokio's blocking pool.

/// A blocking call did not finish: its task panicked or was cancelled. The message is tokio's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BlockingTaskError(pub String);

/// Runs `f` on tokio's blocking pool (`spawn_blocking`) and waits for it. A panic inside `f` is a
/// [`BlockingTaskError`] (each backend converts it into its own error, naming its location).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let sum = dd_store::blocking::run(|| 2 + 3).await;
/// assert_eq!(sum, Ok(5));
/// # });
/// ```
pub async fn run<T, F>(f: F) -> Result<T, BlockingTaskError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BlockingTaskError(e.to_string()))
}
