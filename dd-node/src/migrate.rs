//! `dd-node migrate`: copies every replica's durable records from one store to another, raw
//! (byte for byte, through [`DurableStateStore`]), then re-reads both sides and compares.
//!
//! 1. plan: every source record is looked up in the target: absent (to copy), identical (skip)
//!    or different (a conflict);
//! 2. conflicts stop the migration before anything is written, unless `--force`, which
//!    overwrites them (conditionally on the revision seen in step 1);
//! 3. copy, in batches of conditional writes;
//! 4. verify: every source record is read again from the target and compared byte for byte.
//!
//! The source is only read, never written or deleted from. Stop the nodes using the source
//! first: records written during a migration are caught by the verification, not copied.

use std::collections::HashMap;
use std::sync::Arc;

use clap::Args;
use dd_core::store::{
    DEFAULT_SCAN_PAGE_SIZE, DurableStateStore, Revision, StoreError, WriteOp, WriteOutcome,
};
use futures::TryStreamExt;
use indicatif::{ProgressBar, ProgressStyle};

use crate::store_url::{open_existing_store, open_state_store};

/// The flags of `dd-node migrate`.
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// The source store URL (only read).
    #[arg(long, value_name = "URL")]
    pub from: String,
    /// The target store URL.
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Only these replicas (repeatable; default: every replica of the source).
    #[arg(long, value_name = "NAME")]
    pub replica: Vec<String>,
    /// Overwrite target records that differ from the source.
    #[arg(long)]
    pub force: bool,
    /// Records per write batch.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
}

/// Why a migration failed. Nothing is ever deleted from the source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// A store could not be opened.
    #[error("opening {role} store {url}: {source}")]
    Open {
        /// `source` or `target`.
        role: &'static str,
        /// The URL.
        url: String,
        /// The error.
        #[source]
        source: dd_durable::OpenError,
    },
    /// Source and target are the same.
    #[error("source and target are the same store ({0})")]
    SameStore(String),
    /// A store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A replica asked for has no records in the source.
    #[error("replica '{0}' has no records in the source")]
    NoSuchReplica(String),
    /// The target has different data and `--force` was not given; nothing was written.
    #[error(
        "the target already holds different data for {count} record(s), e.g. {examples}; nothing was written (use --force to overwrite them)"
    )]
    Conflicts {
        /// How many records differ.
        count: usize,
        /// Some of them, as `replica/key`.
        examples: String,
    },
    /// A record of the target changed while migrating.
    #[error(
        "target record {replica}/{key} changed during the migration (revision now {actual}); run the migration again"
    )]
    Raced {
        /// The replica.
        replica: String,
        /// The key.
        key: String,
        /// The revision found.
        actual: String,
    },
    /// The verification found a difference.
    #[error("verification failed: {replica}/{key} {problem}")]
    Verify {
        /// The replica.
        replica: String,
        /// The key.
        key: String,
        /// What differs.
        problem: String,
    },
}

/// Counts of one replica's migration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaCounts {
    /// The replica.
    pub replica: String,
    /// Records in the source.
    pub records: usize,
    /// Records written to the target.
    pub copied: usize,
    /// Records the target already had, identical.
    pub identical: usize,
    /// Different target records overwritten (`--force`).
    pub overwritten: usize,
    /// Records verified identical after the copy.
    pub verified: usize,
}

/// What a migration did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Per replica, in name order.
    pub replicas: Vec<ReplicaCounts>,
}

impl MigrationReport {
    /// Records in the source, over all replicas.
    pub fn records(&self) -> usize {
        self.replicas.iter().map(|r| r.records).sum()
    }
}

/// What to do with one key of the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    Copy,
    Identical,
    Overwrite(Revision),
}

fn bar(total: u64, message: &str, hidden: bool) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(total);
    let style = ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} records ({eta})")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style);
    pb.set_message(message.to_owned());
    pb
}

/// Migrates `replicas` (all of the source when empty) from `source` to `target`.
pub async fn migrate(
    source: &Arc<dyn DurableStateStore>,
    target: &Arc<dyn DurableStateStore>,
    replicas: &[String],
    force: bool,
    batch_size: usize,
    quiet: bool,
) -> Result<MigrationReport, MigrateError> {
    let mut known = source.replicas().await?;
    known.sort();
    let selected = if replicas.is_empty() {
        known
    } else {
        for r in replicas {
            if !known.contains(r) {
                return Err(MigrateError::NoSuchReplica(r.clone()));
            }
        }
        replicas.to_vec()
    };

    // 1. plan
    let mut plans: Vec<(String, HashMap<String, Plan>)> = Vec::new();
    let mut conflicts = Vec::new();
    let planning = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new_spinner()
    };
    planning.set_message("comparing with the target");
    for replica in &selected {
        let mut plan = HashMap::new();
        let mut records = source.scan(replica, DEFAULT_SCAN_PAGE_SIZE);
        while let Some(record) = records.try_next().await? {
            let existing = target.get(replica, &record.key).await?;
            let p = match existing {
                None => Plan::Copy,
                Some(t) if t.value == record.value => Plan::Identical,
                Some(t) => {
                    conflicts.push(format!("{replica}/{}", record.key));
                    Plan::Overwrite(t.revision)
                }
            };
            plan.insert(record.key, p);
            planning.inc(1);
        }
        plans.push((replica.clone(), plan));
    }
    planning.finish_and_clear();
    if !conflicts.is_empty() && !force {
        let examples: Vec<&str> = conflicts.iter().take(5).map(String::as_str).collect();
        return Err(MigrateError::Conflicts {
            count: conflicts.len(),
            examples: examples.join(", "),
        });
    }

    // 2. copy
    let total: usize = plans.iter().map(|(_, p)| p.len()).sum();
    let copying = bar(total as u64, "copying", quiet);
    let mut report = MigrationReport::default();
    for (replica, plan) in &plans {
        let mut counts = ReplicaCounts {
            replica: replica.clone(),
            records: plan.len(),
            ..ReplicaCounts::default()
        };
        let mut batch: Vec<WriteOp> = Vec::new();
        let mut records = source.scan(replica, DEFAULT_SCAN_PAGE_SIZE);
        while let Some(record) = records.try_next().await? {
            let expected = match plan.get(&record.key) {
                Some(Plan::Identical) => {
                    counts.identical += 1;
                    copying.inc(1);
                    continue;
                }
                Some(Plan::Overwrite(rev)) => {
                    counts.overwritten += 1;
                    Some(*rev)
                }
                // A record that appeared since planning is copied if the target lacks it.
                Some(Plan::Copy) | None => None,
            };
            batch.push(WriteOp::Put {
                key: record.key,
                expected,
                value: record.value,
            });
            if batch.len() >= batch_size {
                counts.copied += write(target, replica, std::mem::take(&mut batch)).await?;
                copying.set_position(copying.position() + batch_size as u64);
            }
        }
        let rest = batch.len();
        counts.copied += write(target, replica, batch).await?;
        copying.inc(rest as u64);
        report.replicas.push(counts);
    }
    copying.finish_and_clear();

    // 3. verify
    let verifying = bar(total as u64, "verifying", quiet);
    for counts in &mut report.replicas {
        let replica = counts.replica.clone();
        let mut records = source.scan(&replica, DEFAULT_SCAN_PAGE_SIZE);
        while let Some(record) = records.try_next().await? {
            let problem = match target.get(&replica, &record.key).await? {
                None => Some("is missing in the target".to_owned()),
                Some(t) if t.value != record.value => Some(format!(
                    "differs: {} bytes in the source, {} in the target",
                    record.value.len(),
                    t.value.len()
                )),
                Some(_) => None,
            };
            if let Some(problem) = problem {
                return Err(MigrateError::Verify {
                    replica: replica.clone(),
                    key: record.key,
                    problem,
                });
            }
            counts.verified += 1;
            verifying.inc(1);
        }
    }
    verifying.finish_and_clear();
    Ok(report)
}

async fn write(
    target: &Arc<dyn DurableStateStore>,
    replica: &str,
    batch: Vec<WriteOp>,
) -> Result<usize, MigrateError> {
    if batch.is_empty() {
        return Ok(0);
    }
    let keys: Vec<String> = batch.iter().map(|op| op.key().to_owned()).collect();
    let outcomes = target.write_batch(replica, batch).await?;
    for (key, outcome) in keys.iter().zip(&outcomes) {
        if let WriteOutcome::Conflict { actual } = outcome {
            return Err(MigrateError::Raced {
                replica: replica.to_owned(),
                key: key.clone(),
                actual: actual.map_or_else(|| "none".to_owned(), |r| r.to_string()),
            });
        }
    }
    Ok(outcomes.len())
}

/// The report as text.
pub fn render_report(report: &MigrationReport, from: &str, to: &str) -> String {
    let mut out = format!("migrated {from} -> {to}\n");
    out.push_str(&format!(
        "  {:<20} {:>8} {:>8} {:>10} {:>12} {:>9}\n",
        "REPLICA", "RECORDS", "COPIED", "IDENTICAL", "OVERWRITTEN", "VERIFIED"
    ));
    for r in &report.replicas {
        out.push_str(&format!(
            "  {:<20} {:>8} {:>8} {:>10} {:>12} {:>9}\n",
            r.replica, r.records, r.copied, r.identical, r.overwritten, r.verified
        ));
    }
    out.push_str(&format!(
        "{} replica(s), {} record(s), all verified byte for byte\n",
        report.replicas.len(),
        report.records()
    ));
    out
}

/// Runs `dd-node migrate`.
pub async fn run(args: MigrateArgs) -> Result<(), MigrateError> {
    if args.from == args.to {
        return Err(MigrateError::SameStore(args.from));
    }
    let source = open_existing_store(&args.from)
        .await
        .map_err(|source| MigrateError::Open {
            role: "source",
            url: args.from.clone(),
            source,
        })?;
    let target = open_state_store(&args.to)
        .await
        .map_err(|source| MigrateError::Open {
            role: "target",
            url: args.to.clone(),
            source,
        })?;
    let report = migrate(
        &source,
        &target,
        &args.replica,
        args.force,
        args.batch_size as usize,
        false,
    )
    .await?;
    print!(
        "{}",
        render_report(&report, &source.describe(), &target.describe())
    );
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use dd_core::store::memory::MemoryStore;

    async fn store_with(records: &[(&str, &str, &str)]) -> Arc<dyn DurableStateStore> {
        let s: Arc<dyn DurableStateStore> = Arc::new(MemoryStore::new());
        for (r, k, v) in records {
            s.put(r, k, None, Bytes::from(v.to_string())).await.unwrap();
        }
        s
    }

    #[tokio::test]
    async fn copies_verifies_and_refuses_to_overwrite() {
        let source = store_with(&[("a", "k1", "1"), ("a", "k2", "2"), ("b", "k1", "3")]).await;
        let target = store_with(&[("a", "k1", "1")]).await;
        let report = migrate(&source, &target, &[], false, 1, true)
            .await
            .unwrap();
        assert_eq!(report.records(), 3);
        assert_eq!(report.replicas[0].identical, 1);
        assert_eq!(report.replicas[0].copied, 1);
        assert_eq!(report.replicas[1].verified, 1);
        assert_eq!(
            target.get("b", "k1").await.unwrap().unwrap().value,
            Bytes::from("3")
        );

        let other = store_with(&[("a", "k2", "different")]).await;
        let err = migrate(&source, &other, &[], false, 10, true)
            .await
            .unwrap_err();
        assert!(
            matches!(err, MigrateError::Conflicts { count: 1, .. }),
            "{err}"
        );
        // nothing was written
        assert!(other.get("a", "k1").await.unwrap().is_none());
        let report = migrate(&source, &other, &["a".to_owned()], true, 10, true)
            .await
            .unwrap();
        assert_eq!(report.replicas[0].overwritten, 1);
        assert_eq!(
            other.get("a", "k2").await.unwrap().unwrap().value,
            Bytes::from("2")
        );
        // the source is untouched
        assert_eq!(
            source.get("a", "k2").await.unwrap().unwrap().revision,
            Revision::FIRST
        );
        assert!(matches!(
            migrate(&source, &other, &["zz".to_owned()], false, 10, true).await,
            Err(MigrateError::NoSuchReplica(_))
        ));
    }
}
