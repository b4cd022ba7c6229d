//! Result tables, the machine description and `BENCHMARKS.md`.

use std::fmt::Write as _;
use std::path::Path;

use crate::error::{Context, Result};

/// Whether a row meets its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The target is met.
    Met,
    /// The target is missed (the analysis names what limits it).
    Missed,
    /// The row has no target (a baseline or a figure given for information).
    NoTarget,
    /// Measured against a test double: for information only, no target applies.
    TestDouble,
}

impl Verdict {
    /// `Met` when `ok`, else `Missed`.
    pub fn from_bool(ok: bool) -> Verdict {
        if ok { Verdict::Met } else { Verdict::Missed }
    }

    fn label(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::Missed => "**missed**",
            Verdict::NoTarget => "—",
            Verdict::TestDouble => "n/a (test double)",
        }
    }
}

/// One measured figure with what it is compared against.
#[derive(Debug, Clone)]
pub struct Row {
    /// What is measured (the candidate).
    pub what: String,
    /// The candidate's figure, with its unit.
    pub figure: String,
    /// The baseline's figure and what the baseline is, or `—`.
    pub baseline: String,
    /// The ratio and which side is the baseline, or `—`.
    pub ratio: String,
    /// The target, or `—`.
    pub target: String,
    /// Whether the target is met.
    pub met: Verdict,
}

impl Row {
    /// A row without baseline or target.
    pub fn info(what: impl Into<String>, figure: impl Into<String>) -> Row {
        Row {
            what: what.into(),
            figure: figure.into(),
            baseline: "—".into(),
            ratio: "—".into(),
            target: "—".into(),
            met: Verdict::NoTarget,
        }
    }
}

/// The results of one area.
#[derive(Debug, Clone)]
pub struct Table {
    /// The section title.
    pub title: String,
    /// How the area is measured (a paragraph).
    pub method: String,
    /// The rows.
    pub rows: Vec<Row>,
    /// Notes: skipped backends and why, details.
    pub notes: Vec<String>,
}

impl Table {
    /// An empty table.
    pub fn new(title: impl Into<String>, method: impl Into<String>) -> Table {
        Table {
            title: title.into(),
            method: method.into(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// The table as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "## {}\n\n{}\n", self.title, self.method);
        let _ = writeln!(
            out,
            "| what is measured | figure | baseline | ratio | target | met |\n|---|---|---|---|---|---|"
        );
        for r in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                r.what,
                r.figure,
                r.baseline,
                r.ratio,
                r.target,
                r.met.label()
            );
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for n in &self.notes {
                let _ = writeln!(out, "- {n}");
            }
        }
        out
    }

    /// The table for the terminal.
    pub fn plain(&self) -> String {
        let headers = ["what", "figure", "baseline", "ratio", "target", "met"];
        let cells: Vec<[String; 6]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.what.clone(),
                    r.figure.clone(),
                    r.baseline.clone(),
                    r.ratio.clone(),
                    r.target.clone(),
                    r.met.label().replace('*', ""),
                ]
            })
            .collect();
        let mut widths = headers.map(|h| h.chars().count());
        for row in &cells {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |cols: &[String]| {
            cols.iter()
                .zip(widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join(" | ")
        };
        let mut out = format!("== {}\n", self.title);
        out.push_str(&line(&headers.map(String::from)));
        out.push('\n');
        for row in &cells {
            out.push_str(&line(row));
            out.push('\n');
        }
        for n in &self.notes {
            let _ = writeln!(out, "  note: {n}");
        }
        out
    }
}

/// The machine and toolchain a run was made on.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Logical CPUs (`nproc`).
    pub cpus: usize,
    /// Total memory, from /proc/meminfo.
    pub memory: String,
    /// CPU model, from /proc/cpuinfo.
    pub cpu_model: String,
    /// `rustc --version`.
    pub rustc: String,
    /// The date of the run (UTC).
    pub date: String,
    /// Load average at the start of the run.
    pub load_at_start: String,
}

fn first_line_with(path: &str, prefix: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The load average (1, 5, 15 minutes) from /proc/loadavg.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

impl Machine {
    /// Describes this machine.
    pub fn detect() -> Machine {
        let memory = first_line_with("/proc/meminfo", "MemTotal")
            .and_then(|v| v.trim_end_matches(" kB").trim().parse::<f64>().ok())
            .map(|kib| format!("{:.1} GiB", kib / (1024.0 * 1024.0)))
            .unwrap_or_else(|| "unknown".into());
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory,
            cpu_model: first_line_with("/proc/cpuinfo", "model name")
                .unwrap_or_else(|| "unknown".into()),
            rustc: command_output("rustc", &["--version"]).unwrap_or_else(|| "unknown".into()),
            date: command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
                .unwrap_or_else(|| "unknown".into()),
            load_at_start: load_average(),
        }
    }
}

/// What a run was: profile, build, machine.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// `small` or `full`.
    pub profile: String,
    /// `release` or `debug`.
    pub build: &'static str,
    /// The machine.
    pub machine: Machine,
    /// Load average at the end of the run.
    pub load_at_end: String,
    /// Wall time of the whole run.
    pub duration: String,
}

/// The line after which `BENCHMARKS.md` is hand-written and kept across runs.
pub const ANALYSIS_MARKER: &str =
    "<!-- Everything below this line is written by hand and kept by dd-bench across runs. -->";

const ANALYSIS_PLACEHOLDER: &str = "## Analysis\n\nWrite the analysis of this run here: for every \
missed target, what limits it.\n";

/// The generated part of `BENCHMARKS.md`.
pub fn markdown(info: &RunInfo, tables: &[Table]) -> String {
    let m = &info.machine;
    let mut out = String::from("# durable-dd benchmarks\n\n");
    let _ = writeln!(
        out,
        "Generated by `dd-bench` (`scripts/bench.sh {}`); see `dd-bench/README.md` for what each \
         area measures and how. Speed is always a ratio against a baseline measured in the same \
         run (alternating baseline and candidate, median of the repetitions); every ratio names \
         its baseline.\n",
        info.profile
    );
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| date | {} |", m.date);
    let _ = writeln!(out, "| profile | {} ({} build) |", info.profile, info.build);
    let _ = writeln!(out, "| CPUs (`nproc`) | {} |", m.cpus);
    let _ = writeln!(out, "| CPU model | {} |", m.cpu_model);
    let _ = writeln!(out, "| memory | {} |", m.memory);
    let _ = writeln!(out, "| rustc | {} |", m.rustc);
    let _ = writeln!(
        out,
        "| load average (1/5/15 min) | start: {}; end: {} |",
        m.load_at_start, info.load_at_end
    );
    let _ = writeln!(out, "| run time | {} |", info.duration);
    let _ = writeln!(
        out,
        "\nThe machine is shared with other jobs (compilers of other work in progress); the \
         load averages above show how busy it was. Ratios are more robust to that than absolute \
         figures, because baseline and candidate alternate.\n"
    );
    for t in tables {
        out.push_str(&t.markdown());
        out.push('\n');
    }
    out
}

/// Writes `path`: the generated part, then the hand-written part of the existing file (everything
/// after [`ANALYSIS_MARKER`]) or, for a new file, a heading for it.
pub fn write_file(path: &Path, generated: &str) -> Result<()> {
    let kept = match std::fs::read_to_string(path) {
        Ok(old) => old
            .split_once(ANALYSIS_MARKER)
            .map(|(_, rest)| rest.trim_start_matches('\n').to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).context(|| format!("reading {}", path.display())),
    };
    let hand_written = kept.unwrap_or_else(|| ANALYSIS_PLACEHOLDER.to_owned());
    let text = format!("{generated}\n{ANALYSIS_MARKER}\n\n{hand_written}");
    std::fs::write(path, text).context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hand_written_part_survives_a_rewrite() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("B.md");
        write_file(&path, "first run\n").unwrap_or_else(|e| panic!("{e}"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(text.contains("## Analysis"));
        let edited = text.replace("Write the analysis", "My analysis");
        std::fs::write(&path, edited).unwrap_or_else(|e| panic!("{e}"));
        write_file(&path, "second run\n").unwrap_or_else(|e| panic!("{e}"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(text.starts_with("second run"));
        assert!(!text.contains("first run"));
        assert!(text.contains("My analysis"));
        assert_eq!(text.matches(ANALYSIS_MARKER).count(), 1);
    }

    #[test]
    fn tables_render_every_row() {
        let mut t = Table::new("Area", "How.");
        t.rows.push(Row::info("thing", "1 s"));
        t.notes.push("skipped x".into());
        let md = t.markdown();
        assert!(md.contains("| thing | 1 s | — | — | — | — |"));
        assert!(md.contains("- skipped x"));
        assert!(t.plain().contains("thing"));
    }
}
