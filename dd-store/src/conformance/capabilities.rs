//! What each check needs of a backend, and the macro that expands one `#[tokio::test]` per check.

use std::fmt;

/// A capability a check needs of a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Writes conditional on the stored revision (create-if-absent, replace/delete-if-revision).
    ConditionalWrites,
    /// Scans in ascending key order, page by page.
    OrderedScans,
    /// Values of several MiB (and empty ones).
    LargeValues,
    /// A new handle on the same location sees what an earlier one wrote.
    Reopen,
    /// Handles racing on one key stay consistent (the conditional write is atomic on the server).
    ConcurrentHandles,
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Capability::ConditionalWrites => "conditional writes",
            Capability::OrderedScans => "ordered scans",
            Capability::LargeValues => "large values",
            Capability::Reopen => "reopening the same location",
            Capability::ConcurrentHandles => "atomic conditional writes from racing handles",
        };
        f.write_str(name)
    }
}

/// The capabilities of a backend under test; a check needing one it lacks is skipped with a
/// printed reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// See [`Capability::ConditionalWrites`].
    pub conditional_writes: bool,
    /// See [`Capability::OrderedScans`].
    pub ordered_scans: bool,
    /// See [`Capability::LargeValues`].
    pub large_values: bool,
    /// See [`Capability::Reopen`].
    pub reopen: bool,
    /// See [`Capability::ConcurrentHandles`].
    pub concurrent_handles: bool,
}

impl Capabilities {
    /// Every capability (every backend of durable-dd has them all).
    pub const ALL: Capabilities = Capabilities {
        conditional_writes: true,
        ordered_scans: true,
        large_values: true,
        reopen: true,
        concurrent_handles: true,
    };

    /// Whether the backend has `capability`.
    pub fn has(&self, capability: Capability) -> bool {
        match capability {
            Capability::ConditionalWrites => self.conditional_writes,
            Capability::OrderedScans => self.ordered_scans,
            Capability::LargeValues => self.large_values,
            Capability::Reopen => self.reopen,
            Capability::ConcurrentHandles => self.concurrent_handles,
        }
    }
}

/// Every check of the suite with the capabilities it needs, in the order [`run_all`](super::run_all)
/// runs them.
pub const CHECKS: &[(&str, &[Capability])] = &[
    ("get_missing", &[]),
    ("put_create_and_replace", &[Capability::ConditionalWrites]),
    ("put_conflicts", &[Capability::ConditionalWrites]),
    ("conditional_delete", &[Capability::ConditionalWrites]),
    ("batch_mixed_outcomes", &[Capability::ConditionalWrites]),
    ("batch_same_key_twice", &[Capability::ConditionalWrites]),
    ("empty_batch", &[]),
    ("scan_empty_replica", &[Capability::OrderedScans]),
    ("scan_many_keys", &[Capability::OrderedScans]),
    ("scan_small_replica_page_one", &[Capability::OrderedScans]),
    ("replicas_isolated", &[]),
    ("replicas_listed", &[]),
    ("odd_keys_round_trip", &[]),
    ("odd_replica_names_round_trip", &[]),
    ("large_and_empty_values", &[Capability::LargeValues]),
    ("survives_reopen", &[Capability::Reopen]),
    (
        "concurrent_conditional_writers",
        &[Capability::ConditionalWrites, Capability::ConcurrentHandles],
    ),
];

/// Why `check` is skipped on a backend with `capabilities`, or `None` if it runs. An unknown
/// check name is a reason too (so that a typo cannot pass silently).
///
/// ```
/// use dd_store::conformance::{Capabilities, skip_reason};
/// assert_eq!(skip_reason("scan_many_keys", &Capabilities::ALL), None);
/// let no_scans = Capabilities { ordered_scans: false, ..Capabilities::ALL };
/// assert_eq!(
///     skip_reason("scan_many_keys", &no_scans).as_deref(),
///     Some("the backend lacks ordered scans")
/// );
/// ```
pub fn skip_reason(check: &str, capabilities: &Capabilities) -> Option<String> {
    let Some((_, needs)) = CHECKS.iter().find(|(name, _)| *name == check) else {
        return Some(format!("'{check}' is not a check of the conformance suite"));
    };
    let missing: Vec<String> = needs
        .iter()
        .filter(|c| !capabilities.has(**c))
        .map(ToString::to_string)
        .collect();
    (!missing.is_empty()).then(|| format!("the backend lacks {}", missing.join(", ")))
}

/// Prints why `check` is skipped and returns `true`, or returns `false` if it runs (what the
/// tests of [`conformance_tests!`](crate::conformance_tests) call first).
pub fn skip(check: &str, capabilities: &Capabilities) -> bool {
    match skip_reason(check, capabilities) {
        Some(reason) => {
            println!("conformance check {check} skipped: {reason}");
            true
        }
        None => false,
    }
}

/// Expands one `#[tokio::test]` (multi-threaded, 2 workers) per conformance check, named after
/// the check, so that `cargo test` lists and reports every check on its own.
///
/// `open` is an expression evaluated at the start of every test (it may `.await` and may
/// `return` to skip the test when the backend is not available) giving the opener: a closure
/// returning a future of a new handle on one location of that test. `open_racing`, if given,
/// is the opener of `concurrent_conditional_writers` (S3 runs it through a proxy).
///
/// ```text
/// dd_store::conformance_tests! {
///     capabilities: dd_store::conformance::Capabilities::ALL,
///     open: {
///         let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
///         move || {
///             let dir = dir.clone();
///             async move { dd_store_fs::open(dd_store_fs::FsOptions::new(dir.path())).await }
///         }
///     },
/// }
/// ```
#[macro_export]
macro_rules! conformance_tests {
    (capabilities: $caps:expr, open: $open:expr $(,)?) => {
        $crate::conformance_tests!(capabilities: $caps, open: $open, open_racing: $open);
    };
    (capabilities: $caps:expr, open: $open:expr, open_racing: $race:expr $(,)?) => {
        $crate::conformance_tests!(@each $caps, $open;
            get_missing,
            put_create_and_replace,
            put_conflicts,
            conditional_delete,
            batch_mixed_outcomes,
            batch_same_key_twice,
            empty_batch,
            scan_empty_replica,
            scan_many_keys,
            scan_small_replica_page_one,
            replicas_isolated,
            replicas_listed,
            odd_keys_round_trip,
            odd_replica_names_round_trip,
            large_and_empty_values,
            survives_reopen
        );
        $crate::conformance_tests!(@each $caps, $race; concurrent_conditional_writers);
    };
    (@each $caps:expr, $open:expr; $($check:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                if $crate::conformance::skip(stringify!($check), &$caps) {
                    return;
                }
                let open = $open;
                $crate::conformance::$check(&open).await;
            }
        )*
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_check_is_listed_once_and_skips_name_the_missing_capability() {
        let mut names: Vec<&str> = CHECKS.iter().map(|(n, _)| *n).collect();
        assert_eq!(names.len(), 17);
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 17);
        for (name, _) in CHECKS {
            assert_eq!(skip_reason(name, &Capabilities::ALL), None, "{name}");
        }
        let none = Capabilities {
            conditional_writes: false,
            ordered_scans: false,
            large_values: false,
            reopen: false,
            concurrent_handles: false,
        };
        assert_eq!(skip_reason("get_missing", &none), None);
        assert_eq!(
            skip_reason("concurrent_conditional_writers", &none).as_deref(),
            Some(
                "the backend lacks conditional writes, atomic conditional writes from racing \
                 handles"
            )
        );
        assert!(skip_reason("no_such_check", &Capabilities::ALL).is_some());
    }
}
