//! The one error type of the bench binary: what failed, in which step.

/// A benchmark step that failed. Missed targets are not errors; only failures to measure are.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A step failed because of an underlying error.
    #[error("{context}")]
    Step {
        /// What was being done.
        context: String,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A step failed for a reason the bench found itself.
    #[error("{0}")]
    Failed(String),
}

/// The result type of the bench.
pub type Result<T> = std::result::Result<T, BenchError>;

/// Adds the step being done to any error.
pub trait Context<T> {
    /// Wraps the error with `context`.
    fn context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E> Context<T> for std::result::Result<T, E>
where
    E: std::error::Error + Send + Sync + 'static,
{
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| BenchError::Step {
            context: context(),
            source: Box::new(e),
        })
    }
}
