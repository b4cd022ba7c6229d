//! `dd-node demo`: what durable-dd is for, in one command.
//!
//! Starts three real `dd-node serve` processes on 127.0.0.1 (SQLite stores in a temporary
//! directory), updates a counter, a set, a map, a register and a flag from different replicas,
//! waits until all replicas agree, stops the whole cluster (SIGTERM), starts it again and shows
//! the values before and after the restart side by side. Exits non-zero if anything differs.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::local_cluster::{ClusterError, ClusterOptions, LocalCluster};

/// The flags of `dd-node demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Keep the stores and logs in this directory instead of a temporary one that is removed.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Write mode of the replicas (`sync` or `write-behind=<ms>`).
    #[arg(long, default_value = "sync", value_name = "MODE")]
    pub write_mode: String,
}

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// The cluster could not be run.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// An I/O error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// An HTTP request failed.
    #[error("{0}")]
    Http(String),
    /// The replicas did not agree in time.
    #[error("the replicas did not converge within {timeout:?}: {detail}")]
    NoConvergence {
        /// The bound.
        timeout: Duration,
        /// What differed last.
        detail: String,
    },
    /// Values differ after the restart.
    #[error("{0} value(s) differ after the restart (see the table)")]
    Differs(usize),
    /// Ctrl-C (SIGINT) or SIGTERM.
    #[error("interrupted; the cluster was stopped")]
    Interrupted,
    /// A bad flag.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// One key the demo writes.
struct DemoKey {
    data_type: &'static str,
    key: &'static str,
    what: &'static str,
    /// (replica index, operation body)
    writes: Vec<(usize, Value)>,
    expected: Value,
}

fn demo_keys() -> Vec<DemoKey> {
    vec![
        DemoKey {
            data_type: "pncounter",
            key: "visits",
            what: "counter",
            writes: vec![
                (0, json!({"op": "increment", "by": 5})),
                (1, json!({"op": "increment", "by": 3})),
                (2, json!({"op": "decrement", "by": 1})),
            ],
            expected: json!(7),
        },
        DemoKey {
            data_type: "orset",
            key: "tags",
            what: "set",
            writes: vec![
                (0, json!({"op": "add", "element": "rust"})),
                (1, json!({"op": "add", "element": "crdt"})),
                (
                    2,
                    json!([{"op": "add", "element": "durable"}, {"op": "add", "element": "tmp"}, {"op": "remove", "element": "tmp"}]),
                ),
            ],
            expected: json!(["crdt", "durable", "rust"]),
        },
        DemoKey {
            data_type: "lwwmap",
            key: "settings",
            what: "map",
            writes: vec![
                (0, json!({"op": "put", "key": "color", "value": "blue"})),
                (1, json!({"op": "put", "key": "size", "value": "large"})),
                (2, json!({"op": "put", "key": "mode", "value": "fast"})),
            ],
            expected: json!({"color": "blue", "mode": "fast", "size": "large"}),
        },
        DemoKey {
            data_type: "lwwregister",
            key: "motd",
            what: "register",
            writes: vec![(1, json!({"op": "set", "value": "hello from b"}))],
            expected: json!("hello from b"),
        },
        DemoKey {
            data_type: "flag",
            key: "launched",
            what: "flag",
            writes: vec![(2, json!({"op": "enable"}))],
            expected: json!(true),
        },
    ]
}

/// Progress output: a spinner per step on a terminal, plain lines otherwise.
struct Steps {
    started: Instant,
}

struct Step {
    bar: ProgressBar,
    message: String,
    started: Instant,
}

impl Steps {
    fn new() -> Self {
        Self {
            started: Instant::now(),
        }
    }

    fn begin(&self, message: &str) -> Step {
        let bar = ProgressBar::new_spinner();
        if bar.is_hidden() {
            println!("  .. {message}");
        } else {
            let style = ProgressStyle::with_template("  {spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            bar.set_style(style);
            bar.set_message(message.to_owned());
            bar.enable_steady_tick(Duration::from_millis(80));
        }
        Step {
            bar,
            message: message.to_owned(),
            started: Instant::now(),
        }
    }

    fn total(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Step {
    fn done(self, detail: &str) {
        let line = format!(
            "  ✓ {}{} ({:.1}s)",
            self.message,
            if detail.is_empty() {
                String::new()
            } else {
                format!(": {detail}")
            },
            self.started.elapsed().as_secs_f64()
        );
        if self.bar.is_hidden() {
            println!("{line}");
        } else {
            self.bar.finish_and_clear();
            println!("{line}");
        }
    }

    fn fail(self) {
        self.bar.finish_and_clear();
        println!("  ✗ {}", self.message);
    }
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> Result<Value, DemoError> {
    let response = client
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|e| DemoError::Http(format!("POST {url}: {e}")))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|e| DemoError::Http(format!("POST {url}: reading the answer: {e}")))?;
    if !status.is_success() {
        return Err(DemoError::Http(format!("POST {url}: {status}: {body}")));
    }
    Ok(body)
}

/// Reads a key's value from one node (`None` while it has none).
async fn read(
    client: &reqwest::Client,
    base: &str,
    k: &DemoKey,
) -> Result<Option<Value>, DemoError> {
    let url = format!("{base}/keys/{}/{}", k.data_type, k.key);
    let response = client
        .get(&url)
        .send()
        .await
        .map_err(|e| DemoError::Http(format!("GET {url}: {e}")))?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let body: Value = response
        .json()
        .await
        .map_err(|e| DemoError::Http(format!("GET {url}: reading the answer: {e}")))?;
    if !status.is_success() {
        return Err(DemoError::Http(format!("GET {url}: {status}: {body}")));
    }
    Ok(Some(body["value"].clone()))
}

/// Every key's value on every node: `values[key][node]`.
async fn read_all(
    client: &reqwest::Client,
    bases: &[String],
    keys: &[DemoKey],
) -> Result<Vec<Vec<Option<Value>>>, DemoError> {
    let mut all = Vec::new();
    for k in keys {
        let mut per_node = Vec::new();
        for base in bases {
            per_node.push(read(client, base, k).await?);
        }
        all.push(per_node);
    }
    Ok(all)
}

fn show(v: &Option<Value>) -> String {
    v.as_ref()
        .map_or_else(|| "(none)".to_owned(), Value::to_string)
}

/// Polls (bounded) until every node has `expected[k]` for every key `k`; returns the last
/// reading, and whether it matched.
async fn converge(
    client: &reqwest::Client,
    bases: &[String],
    names: &[String],
    keys: &[DemoKey],
    expected: &[Option<Value>],
    timeout: Duration,
) -> Result<(Vec<Vec<Option<Value>>>, Option<String>), DemoError> {
    let deadline = Instant::now() + timeout;
    loop {
        let values = read_all(client, bases, keys).await?;
        let mut detail = None;
        for ((k, per_node), want) in keys.iter().zip(&values).zip(expected) {
            for (name, v) in names.iter().zip(per_node) {
                if v != want && detail.is_none() {
                    detail = Some(format!(
                        "{} on replica {name} is {}, expected {}",
                        k.key,
                        show(v),
                        show(want)
                    ));
                }
            }
        }
        if detail.is_none() || Instant::now() >= deadline {
            return Ok((values, detail));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn table(
    names: &[String],
    keys: &[DemoKey],
    before: &[Vec<Option<Value>>],
    after: &[Vec<Option<Value>>],
) -> (String, usize) {
    let mut rows = vec![vec![
        "KEY".to_owned(),
        "TYPE".to_owned(),
        "BEFORE RESTART".to_owned(),
        format!("AFTER RESTART ({})", names.join(" / ")),
        String::new(),
    ]];
    let mut differing = 0;
    for (i, k) in keys.iter().enumerate() {
        let b = &before[i][0];
        let same_everywhere = after[i].iter().all(|v| v == b) && before[i].iter().all(|v| v == b);
        let after_text = if after[i].iter().all(|v| v == &after[i][0]) {
            format!("{} (all)", show(&after[i][0]))
        } else {
            after[i].iter().map(show).collect::<Vec<_>>().join(" / ")
        };
        if !same_everywhere {
            differing += 1;
        }
        rows.push(vec![
            k.key.to_owned(),
            format!("{} ({})", k.data_type, k.what),
            show(b),
            after_text,
            if same_everywhere {
                "✓ same".to_owned()
            } else {
                "✗ DIFFERENT".to_owned()
            },
        ]);
    }
    let mut widths = [0usize; 5];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for (n, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(&format!("  {}\n", cells.join("  ").trim_end()));
        if n == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            out.push_str(&format!("  {}\n", rule.join("  ").trim_end()));
        }
    }
    (out, differing)
}

/// Runs the demo; the cluster is stopped (and its processes killed if need be) on every path.
pub async fn run(args: DemoArgs) -> Result<(), DemoError> {
    crate::config::parse_write_mode(&args.write_mode)?;
    let exe = std::env::current_exe().map_err(|source| DemoError::Io {
        context: "locating the dd-node executable".into(),
        source,
    })?;
    let (dir, _temp) = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|source| DemoError::Io {
                context: format!("creating {}", d.display()),
                source,
            })?;
            (d.clone(), None)
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("dd-node-demo-")
                .tempdir()
                .map_err(|source| DemoError::Io {
                    context: "creating a temporary directory".into(),
                    source,
                })?;
            (t.path().to_owned(), Some(t))
        }
    };
    let mut options = ClusterOptions::new(exe, dir.clone());
    options.write_mode = args.write_mode.clone();
    let mut cluster = LocalCluster::new(options)?;
    let interrupted = tokio_util::sync::CancellationToken::new();
    crate::serve::cancel_on_signals(interrupted.clone()).map_err(|e| DemoError::Io {
        context: "installing signal handlers".into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let result = tokio::select! {
        r = demo(&mut cluster, &dir) => r,
        _ = interrupted.cancelled() => Err(DemoError::Interrupted),
    };
    if result.is_err() {
        // Best effort: a graceful stop, then the drop of `cluster` kills whatever still runs.
        let _ = tokio::time::timeout(Duration::from_secs(10), cluster.stop()).await;
        if !matches!(result, Err(DemoError::Interrupted | DemoError::Differs(_))) {
            eprintln!(
                "\nlast log lines of the replicas:\n{}",
                cluster.log_tails(15)
            );
        }
    }
    result
}

async fn demo(cluster: &mut LocalCluster, dir: &std::path::Path) -> Result<(), DemoError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| DemoError::Http(format!("building the HTTP client: {e}")))?;
    let names: Vec<String> = cluster.nodes().iter().map(|n| n.name.clone()).collect();
    let bases: Vec<String> = cluster.nodes().iter().map(|n| n.url()).collect();
    let keys = demo_keys();
    let steps = Steps::new();

    println!(
        "durable-dd demo: 3 replicas on 127.0.0.1, SQLite stores in {}\n",
        dir.display()
    );
    for n in cluster.nodes() {
        println!(
            "  replica {}: http {}  dashboard {}/  store {}",
            n.name,
            n.url(),
            n.url(),
            n.store
        );
    }
    println!();

    let s = steps.begin("starting replicas a, b, c (dd-node serve)");
    cluster.start()?;
    guard(
        cluster.wait_healthy(&client).await.map_err(DemoError::from),
        s,
        "all healthy",
    )?;

    let s = steps
        .begin("updating a counter, a set, a map, a register and a flag from different replicas");
    let mut writes = 0;
    let result: Result<(), DemoError> = async {
        for k in &keys {
            for (node, body) in &k.writes {
                let url = format!("{}/keys/{}/{}", bases[*node], k.data_type, k.key);
                post(&client, &url, body).await?;
                writes += 1;
            }
        }
        Ok(())
    }
    .await;
    guard(result, s, &format!("{writes} requests"))?;

    let s = steps.begin("waiting until every replica has every value");
    let expected: Vec<Option<Value>> = keys.iter().map(|k| Some(k.expected.clone())).collect();
    let timeout = Duration::from_secs(20);
    let converged = converge(&client, &bases, &names, &keys, &expected, timeout)
        .await
        .and_then(|(values, differs)| match differs {
            None => Ok(values),
            Some(detail) => Err(DemoError::NoConvergence { timeout, detail }),
        });
    let before = guard(converged, s, "converged")?;

    let s = steps.begin("stopping the whole cluster (SIGTERM)");
    guard(
        cluster.stop().await.map_err(DemoError::from),
        s,
        "all stopped",
    )?;

    let s = steps.begin("starting the cluster again from its SQLite stores");
    cluster.start()?;
    guard(
        cluster.wait_healthy(&client).await.map_err(DemoError::from),
        s,
        "all healthy",
    )?;

    // Every replica loaded its own store; gossip would repair a replica that missed something,
    // so wait (bounded) for agreement and show whatever is there at the end.
    let s = steps.begin("reading every value on every replica");
    let wanted: Vec<Option<Value>> = before.iter().map(|per_node| per_node[0].clone()).collect();
    let after = guard(
        converge(
            &client,
            &bases,
            &names,
            &keys,
            &wanted,
            Duration::from_secs(10),
        )
        .await
        .map(|(values, _)| values),
        s,
        "",
    )?;

    let s = steps.begin("stopping the cluster");
    guard(cluster.stop().await.map_err(DemoError::from), s, "")?;

    let (text, differing) = table(&names, &keys, &before, &after);
    println!("\n{text}");
    if differing > 0 {
        println!("✗ {differing} value(s) differ after the restart");
        return Err(DemoError::Differs(differing));
    }
    println!(
        "✓ every value survived a full cluster restart on every replica ({:.1}s)",
        steps.total().as_secs_f64()
    );
    Ok(())
}

/// Finishes `step` as done (with `detail`) or failed.
fn guard<T>(result: Result<T, DemoError>, step: Step, detail: &str) -> Result<T, DemoError> {
    match result {
        Ok(v) => {
            step.done(detail);
            Ok(v)
        }
        Err(e) => {
            step.fail();
            Err(e)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn table_marks_differences() {
        let keys = demo_keys();
        let names = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let before: Vec<Vec<Option<Value>>> = keys
            .iter()
            .map(|k| vec![Some(k.expected.clone()); 3])
            .collect();
        let (text, differing) = table(&names, &keys, &before, &before);
        assert_eq!(differing, 0);
        assert!(text.contains("visits") && text.contains("✓ same"), "{text}");
        let mut after = before.clone();
        after[0][2] = None;
        let (text, differing) = table(&names, &keys, &before, &after);
        assert_eq!(differing, 1);
        assert!(
            text.contains("7 / 7 / (none)") && text.contains("✗ DIFFERENT"),
            "{text}"
        );
    }
}
