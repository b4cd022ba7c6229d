//! The revision rule, written once: a conditional write applies only if the record's current
//! revision is the one the writer expects. Every backend decides each write of a batch with
//! [`check`] (or [`check_put`] / [`check_delete`] where it handles puts and deletes apart).
//!
//! ```
//! use dd_store::revision::{check_delete, check_put};
//! use dd_store::{Revision, WriteOutcome};
//! // A put that expects no record creates revision 1; one that expects a stale revision conflicts.
//! assert_eq!(check_put(None, None), Ok(Revision::FIRST));
//! assert_eq!(check_put(Some(Revision(3)), Some(Revision(3))), Ok(Revision(4)));
//! assert_eq!(
//!     check_put(Some(Revision(3)), None),
//!     Err(WriteOutcome::Conflict { actual: Some(Revision(3)) })
//! );
//! // A delete removes the revision it expects, and conflicts on any other (or a missing record).
//! assert_eq!(check_delete(Some(Revision(2)), Revision(2)), Ok(Revision(2)));
//! assert_eq!(check_delete(None, Revision(2)), Err(WriteOutcome::Conflict { actual: None }));
//! ```

use crate::{Revision, WriteOp, WriteOutcome};

/// Decides a conditional put on a record whose current revision is `actual` (`None`: it does not
/// exist): `Ok` with the revision the record gets, or `Err` with the conflict to report.
pub fn check_put(
    actual: Option<Revision>,
    expected: Option<Revision>,
) -> Result<Revision, WriteOutcome> {
    if actual != expected {
        return Err(WriteOutcome::Conflict { actual });
    }
    Ok(actual.map_or(Revision::FIRST, Revision::next))
}

/// Decides a conditional delete of a record whose current revision is `actual`: `Ok` with the
/// revision that is removed, or `Err` with the conflict to report.
pub fn check_delete(
    actual: Option<Revision>,
    expected: Revision,
) -> Result<Revision, WriteOutcome> {
    if actual != Some(expected) {
        return Err(WriteOutcome::Conflict { actual });
    }
    Ok(expected)
}

/// Decides one write of a batch against the record's current revision `actual`: `Ok(revision)`
/// if it applies (for a put the record's new revision, for a delete the removed one; the
/// outcome to report is then [`WriteOutcome::Written`] of it), or `Err` with the conflict.
pub fn check(op: &WriteOp, actual: Option<Revision>) -> Result<Revision, WriteOutcome> {
    match op {
        WriteOp::Put { expected, .. } => check_put(actual, *expected),
        WriteOp::Delete { expected, .. } => check_delete(actual, *expected),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_and_delete_rules() {
        let r = Revision;
        assert_eq!(check_put(None, None), Ok(r(1)));
        assert_eq!(check_put(Some(r(1)), Some(r(1))), Ok(r(2)));
        assert_eq!(
            check_put(None, Some(r(1))),
            Err(WriteOutcome::Conflict { actual: None })
        );
        assert_eq!(
            check_put(Some(r(2)), Some(r(1))),
            Err(WriteOutcome::Conflict { actual: Some(r(2)) })
        );
        assert_eq!(check_delete(Some(r(5)), r(5)), Ok(r(5)));
        assert_eq!(
            check_delete(Some(r(6)), r(5)),
            Err(WriteOutcome::Conflict { actual: Some(r(6)) })
        );
        let put = WriteOp::Put {
            key: "k".into(),
            expected: None,
            value: "v".into(),
        };
        assert_eq!(check(&put, None), Ok(r(1)));
        let delete = WriteOp::Delete {
            key: "k".into(),
            expected: r(1),
        };
        assert_eq!(
            check(&delete, None),
            Err(WriteOutcome::Conflict { actual: None })
        );
    }
}
