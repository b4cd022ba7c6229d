//! `dd-node members --http ADDR`: a running replica's view of the cluster (`GET /members`), as a
//! table or as JSON.

use clap::Args;
use serde_json::Value;

/// The flags of `dd-node members`.
#[derive(Debug, Clone, Args)]
pub struct MembersArgs {
    /// The replica's HTTP address (`HOST:PORT` or a URL).
    #[arg(long, value_name = "ADDR")]
    pub http: String,
    /// Print the JSON answer instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Why `dd-node members` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MembersError {
    /// The request failed or its answer was not the expected JSON.
    #[error("GET {url}: {reason}")]
    Http {
        /// The URL asked.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

/// The URL of `/members` at `http` (a `HOST:PORT` or a base URL).
pub fn members_url(http: &str) -> String {
    let base = http.trim_end_matches('/');
    if base.starts_with("http://") || base.starts_with("https://") {
        format!("{base}/members")
    } else {
        format!("http://{base}/members")
    }
}

/// The members table: one line per member, then the removed incarnations.
pub fn table(body: &Value) -> String {
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let mut rows = vec![[
        "NAME".to_owned(),
        "STATE".to_owned(),
        "INCARNATION".to_owned(),
        "ADDRESS".to_owned(),
    ]];
    for m in body["members"].as_array().into_iter().flatten() {
        rows.push([
            text(&m["name"]),
            text(&m["state"]),
            text(&m["incarnation"]),
            text(&m["address"]),
        ]);
    }
    let mut widths = [0usize; 4];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    let removed: Vec<String> = body["removed"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    if !removed.is_empty() {
        out.push_str(&format!("removed: {}\n", removed.join(", ")));
    }
    out
}

/// Runs `dd-node members`.
pub async fn run(args: MembersArgs) -> Result<(), MembersError> {
    let url = members_url(&args.http);
    let error = |reason: String| MembersError::Http {
        url: url.clone(),
        reason,
    };
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| error(e.to_string()))?;
    let response = client
        .get(&url)
        .send()
        .await
        .map_err(|e| error(e.to_string()))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|e| error(format!("{status}, not JSON: {e}")))?;
    if !status.is_success() {
        return Err(error(format!("{status}: {}", body["error"])));
    }
    if args.json {
        println!("{body}");
    } else {
        print!("{}", table(&body));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn url_and_table() {
        assert_eq!(
            members_url("127.0.0.1:8080"),
            "http://127.0.0.1:8080/members"
        );
        assert_eq!(members_url("http://h:1/"), "http://h:1/members");
        let body = json!({
            "members": [
                {"name": "a", "state": "self", "incarnation": "a#1", "address": "127.0.0.1:7000"},
                {"name": "b", "state": "joining", "incarnation": null, "address": null},
            ],
            "removed": ["c#2"],
        });
        assert_eq!(
            table(&body),
            "NAME  STATE    INCARNATION  ADDRESS\n\
             a     self     a#1          127.0.0.1:7000\n\
             b     joining  -            -\n\
             removed: c#2\n"
        );
    }
}
