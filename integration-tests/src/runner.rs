//! Running one test body on one backend: skip (with the reason printed) when the backend is not
//! available here, and bound the whole test in time.

use std::future::Future;
use std::time::Duration;

use crate::backend::{BackendKind, Needs};

/// The longest any one test may run before it fails (generous: a loaded 2-core machine).
pub const TEST_BOUND: Duration = Duration::from_secs(300);

/// What [`run_on_backend`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The body ran to its end.
    Ran,
    /// The backend is not available here; the reason was printed.
    Skipped(String),
}

/// Runs `body(kind)` unless `kind` cannot serve what the test `needs` here (then prints why and
/// returns [`Outcome::Skipped`]); an error when the body takes longer than [`TEST_BOUND`].
pub async fn run_on_backend<F, Fut>(
    kind: BackendKind,
    needs: Needs,
    test: &str,
    body: F,
) -> Result<Outcome, String>
where
    F: FnOnce(BackendKind) -> Fut,
    Fut: Future<Output = ()>,
{
    if let Err(reason) = kind.availability_for(needs) {
        eprintln!("skipped {test} on {kind}: {reason}");
        return Ok(Outcome::Skipped(reason));
    }
    tokio::time::timeout(TEST_BOUND, body(kind))
        .await
        .map_err(|_| format!("{test} on {kind} did not finish within {TEST_BOUND:?}"))?;
    Ok(Outcome::Ran)
}

/// Generates, for each backend, a module named after it with one `#[tokio::test]` per given
/// test function. Each function is `async fn name(backend: BackendKind)` in the calling file;
/// the generated test `<backend>::<name>` runs it through [`run_on_backend`].
///
/// `backend_tests!(a, b)` instantiates the tests on every backend; `backend_tests!(crash: a, b)`
/// on the backends another process can open by URL (all but memory), run only where the backend
/// survives the kill of a writer ([`Needs::SurvivesWriterKill`]).
///
/// ```
/// use integration_tests::BackendKind;
/// async fn values_survive(backend: BackendKind) {
///     let _location = backend.fresh_location("doc").await.unwrap();
/// }
/// integration_tests::backend_tests!(values_survive);
/// // generates the tests memory::values_survive, fs::values_survive, sqlite::values_survive...
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! backend_tests {
    (crash: $($test:ident),+ $(,)?) => {
        $crate::backend_tests!(@list SurvivesWriterKill [fs Fs, sqlite Sqlite, s3 S3, cassandra Cassandra] $($test),+);
    };
    ($($test:ident),+ $(,)?) => {
        $crate::backend_tests!(
            @list Store [memory Memory, fs Fs, sqlite Sqlite, s3 S3, cassandra Cassandra] $($test),+
        );
    };
    (@list $needs:ident [] $($test:ident),+) => {};
    (@list $needs:ident [$module:ident $kind:ident $(, $rest_module:ident $rest_kind:ident)*] $($test:ident),+) => {
        $crate::backend_tests!(@backend $needs $module, $kind; $($test),+);
        $crate::backend_tests!(@list $needs [$($rest_module $rest_kind),*] $($test),+);
    };
    (@backend $needs:ident $module:ident, $kind:ident; $($test:ident),+) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let outcome = $crate::run_on_backend(
                        $crate::BackendKind::$kind,
                        $crate::Needs::$needs,
                        stringify!($test),
                        super::$test,
                    )
                    .await;
                    if let Err(message) = outcome {
                        panic!("{message}");
                    }
                }
            )+
        }
    };
}
