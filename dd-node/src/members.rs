//! `dd-node members --http ADDR`: a running replica's view of the cluster (`GET /members`), as a
//! table or as JSON; `dd-node remove --http ADDR NAME`: removes a replica that is gone for good
//! (`DELETE /members/{name}`).

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

/// The flags of `dd-node remove`.
#[derive(Debug, Clone, Args)]
pub struct RemoveArgs {
    /// The HTTP address (`HOST:PORT` or a URL) of any live replica.
    #[arg(long, value_name = "ADDR")]
    pub http: String,
    /// The name of the replica to remove.
    pub name: String,
    /// Remove it even if it is alive (it then refuses writes until it restarts).
    #[arg(long)]
    pub force: bool,
}

/// Why `dd-node members` or `dd-node remove` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MembersError {
    /// The request failed or its answer was not the expected JSON.
    #[error("{method} {url}: {reason}")]
    Http {
        /// The HTTP method.
        method: &'static str,
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

/// The URL of `DELETE /members/{name}` at `http`.
pub fn remove_url(http: &str, name: &str, force: bool) -> String {
    let mut url = members_url(http);
    url.push('/');
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            url.push(char::from(b));
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    if force {
        url.push_str("?force=true");
    }
    url
}

/// `last_heard_ms` as text: `-`, `850ms`, `12.3s`.
fn last_heard(v: &Value) -> String {
    match v.as_u64() {
        None => "-".to_owned(),
        Some(ms) if ms < 1000 => format!("{ms}ms"),
        Some(ms) => format!("{:.1}s", ms as f64 / 1000.0),
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
        "LAST HEARD".to_owned(),
    ]];
    for m in body["members"].as_array().into_iter().flatten() {
        rows.push([
            text(&m["name"]),
            text(&m["state"]),
            text(&m["incarnation"]),
            text(&m["address"]),
            last_heard(&m["last_heard_ms"]),
        ]);
    }
    let mut widths = [0usize; 5];
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

/// Sends `method url` and returns its JSON answer, or an error naming the request.
async fn request(method: &'static str, url: &str) -> Result<Value, MembersError> {
    let error = |reason: String| MembersError::Http {
        method,
        url: url.to_owned(),
        reason,
    };
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| error(e.to_string()))?;
    let builder = if method == "DELETE" {
        client.delete(url)
    } else {
        client.get(url)
    };
    let response = builder.send().await.map_err(|e| error(e.to_string()))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|e| error(format!("{status}, not JSON: {e}")))?;
    if !status.is_success() {
        return Err(error(format!(
            "{status}: {}",
            body["error"].as_str().unwrap_or("(no message)")
        )));
    }
    Ok(body)
}

/// Runs `dd-node members`.
pub async fn run(args: MembersArgs) -> Result<(), MembersError> {
    let body = request("GET", &members_url(&args.http)).await?;
    if args.json {
        println!("{body}");
    } else {
        print!("{}", table(&body));
    }
    Ok(())
}

/// Runs `dd-node remove`.
pub async fn run_remove(args: RemoveArgs) -> Result<(), MembersError> {
    let body = request("DELETE", &remove_url(&args.http, &args.name, args.force)).await?;
    println!(
        "removed {}; its entries are pruned",
        body["removed"].as_str().unwrap_or(&args.name)
    );
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
        assert_eq!(
            remove_url("127.0.0.1:8080", "b c", true),
            "http://127.0.0.1:8080/members/b%20c?force=true"
        );
        let body = json!({
            "members": [
                {"name": "a", "state": "self", "incarnation": "a#1", "address": "127.0.0.1:7000",
                 "last_heard_ms": null},
                {"name": "b", "state": "joining", "incarnation": null, "address": null},
                {"name": "d", "state": "up", "incarnation": "d#3", "address": "127.0.0.1:7003",
                 "last_heard_ms": 1250},
            ],
            "removed": ["c#2"],
        });
        assert_eq!(
            table(&body),
            "NAME  STATE    INCARNATION  ADDRESS         LAST HEARD\n\
             a     self     a#1          127.0.0.1:7000  -\n\
             b     joining  -            -               -\n\
             d     up       d#3          127.0.0.1:7003  1.2s\n\
             removed: c#2\n"
        );
    }
}
