//! `dd-node serve --gossip-addr --seed` (issue 21 item 1, in part): replicas learn their members
//! through chitchat gossip at run time. Three processes on 127.0.0.1 join through the first; a
//! fourth started later with another seed is seen by every member, receives every value and
//! spreads its own writes; `dd-node members` lists the view; SIGTERM stops each cleanly. A
//! replica stopped by SIGTERM leaves at once (not after the failure detector and the one-hour
//! dead-node grace period); one killed by SIGKILL and removed with `dd-node remove` is pruned
//! (without and with the cluster secret).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod node_common;

use std::process::Stdio;

use node_common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

struct Node {
    name: &'static str,
    http: String,
    gossip: String,
    child: Child,
}

fn start(dir: &std::path::Path, name: &'static str, seeds: &[&Node]) -> Node {
    start_with(dir, name, seeds, None)
}

/// Starts `name`; with `secret`, a cluster secret file (TCP handshake and gossip datagrams).
fn start_with(
    dir: &std::path::Path,
    name: &'static str,
    seeds: &[&Node],
    secret: Option<&str>,
) -> Node {
    let ports = dd_node::local_cluster::free_ports(3).unwrap();
    let http = format!("127.0.0.1:{}", ports[0]);
    let gossip = format!("127.0.0.1:{}", ports[2]);
    // One file per replica, like the secret: rewriting a shared one while the replica started
    // before reads it can leave that replica with an empty file, so with the default intervals.
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        "[replicator]\ngossip_interval_ms = 300\ndelta_propagation_interval_ms = 50\n\
         pruning_interval_ms = 200\n",
    )
    .unwrap();
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let mut cmd = Command::new(exe());
    cmd.arg("serve")
        .args(["--replica", name, "--http-addr", &http])
        .args(["--cluster-addr", &format!("127.0.0.1:{}", ports[1])])
        .args(["--gossip-addr", &gossip])
        .args(["--config", config.to_str().unwrap()])
        .args(["--store", &format!("sqlite://{}/{name}.db", dir.display())]);
    for s in seeds {
        cmd.args(["--seed", &s.gossip]);
    }
    if let Some(secret) = secret {
        // One file per replica too.
        let path = dir.join(format!("{name}.secret"));
        std::fs::write(&path, secret).unwrap();
        cmd.args(["--cluster-secret-file", path.to_str().unwrap()]);
    }
    for var in ["DD_NODE_CONFIG", "DD_NODE_PEERS", "DD_NODE_SEEDS"] {
        cmd.env_remove(var);
    }
    // `DD_IT_NODE_LOG` sets the nodes' `RUST_LOG` (for example `info,dd_core=debug`).
    let log_filter = std::env::var("DD_IT_NODE_LOG").unwrap_or_else(|_| "info".to_owned());
    cmd.env("RUST_LOG", log_filter)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .kill_on_drop(true);
    Node {
        name,
        http: format!("http://{http}"),
        gossip,
        child: cmd.spawn().unwrap(),
    }
}

/// Waits until `node` serves, then checks that it runs with the intervals of the config file
/// `start_with` wrote for it (a node that read a file while the next one's start rewrote it
/// ran with the defaults: a pruning leader whose pruning interval is two minutes holds the
/// pruning of every removed replica up for that long).
async fn runs_with_test_settings(dir: &std::path::Path, node: &Node) {
    let log = dir.join(format!("{}.log", node.name));
    let serving = || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines()
            .find(|l| l.contains(" dd_node::serve: serving "))
            .map(str::to_owned)
    };
    poll_until(&format!("{} serves", node.name), || async {
        serving()
            .map(drop)
            .ok_or_else(|| "no `serving` line yet".to_owned())
    })
    .await;
    let line = serving().unwrap();
    for setting in [
        "gossip_interval=300ms",
        "delta_propagation_interval=50ms",
        "pruning_interval=200ms",
        // On by default in a node (member lists that disagree never prune twice).
        "pruning_quorum=true",
    ] {
        assert!(
            line.contains(setting),
            "{} runs without {setting}: {line}",
            node.name
        );
    }
}

async fn get(client: &reqwest::Client, url: String) -> Result<(StatusCode, Value), String> {
    let response = client.get(url).send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    Ok((status, body))
}

async fn members_are(client: &reqwest::Client, node: &Node, names: &[&str]) {
    poll_until(&format!("{} sees members {names:?}", node.name), || async {
        let (status, body) = get(client, format!("{}/health", node.http)).await?;
        let members: Vec<&str> = body["members"]
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let with_addresses = body["members"]
            .as_object()
            .is_some_and(|m| m.values().all(|a| a.is_string()));
        if status == StatusCode::OK && members == names && with_addresses {
            Ok(())
        } else {
            Err(format!("{status} {body}"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_join_by_seed_and_a_late_one_gets_every_value() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let a = start(dir.path(), "a", &[]);
    let b = start(dir.path(), "b", &[&a]);
    let c = start(dir.path(), "c", &[&a]);
    for n in [&a, &b, &c] {
        members_are(&client, n, &["a", "b", "c"]).await;
    }
    let writes = [
        (
            &a,
            "gcounter",
            "hits",
            json!({"op": "increment", "by": 3}),
            json!(3),
        ),
        (
            &b,
            "orset",
            "tags",
            json!({"op": "add", "element": "x"}),
            json!(["x"]),
        ),
        (
            &c,
            "lwwregister",
            "motd",
            json!({"op": "set", "value": "hi"}),
            json!("hi"),
        ),
    ];
    for (node, t, key, body, _) in &writes {
        let (status, answer) = send(
            client
                .post(format!("{}/keys/{t}/{key}", node.http))
                .json(body),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }

    // A fourth replica, seeded by b only, joins at run time: every member sees it and it gets
    // every value without any restart.
    let d = start(dir.path(), "d", &[&b]);
    for n in [&a, &b, &c, &d] {
        members_are(&client, n, &["a", "b", "c", "d"]).await;
    }
    // `dd-node members` lists d's view: itself and the three others it heard from.
    let out = run_cli(&["members", "--http", d.http.trim_start_matches("http://")]).await;
    assert!(out.success, "{}", out.stdout);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("NAME  STATE"), "{}", out.stdout);
    for name in ["a", "b", "c"] {
        poll_until(&format!("d has heard from {name}"), || async {
            let (_, body) = get(&client, format!("{}/members", d.http)).await?;
            let up = body["members"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|m| m["name"] == json!(name) && m["state"] == json!("up"));
            if up { Ok(()) } else { Err(body.to_string()) }
        })
        .await;
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("d ") && l.contains("self")),
        "{}",
        out.stdout
    );
    for (_, t, key, _, expected) in &writes {
        poll_until(&format!("d has {t} {key}"), || async {
            let (status, body) = get(&client, format!("{}/keys/{t}/{key}", d.http)).await?;
            if status == StatusCode::OK && body["value"] == *expected {
                Ok(())
            } else {
                Err(format!("{status} {body}"))
            }
        })
        .await;
    }
    // And what it writes reaches the first replica.
    let (status, _) = send(
        client
            .post(format!("{}/keys/gcounter/hits", d.http))
            .json(&json!({"op": "increment", "by": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    poll_until("a sees d's increment", || async {
        let (status, body) = get(&client, format!("{}/keys/gcounter/hits", a.http)).await?;
        if status == StatusCode::OK && body["value"] == json!(4) {
            Ok(())
        } else {
            Err(format!("{status} {body}"))
        }
    })
    .await;

    // SIGTERM stops a gossip member cleanly (exit 0).
    for mut n in [d, c, b, a] {
        let pid = nix::unistd::Pid::from_raw(n.child.id().unwrap() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let status = tokio::time::timeout(BOUND, n.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "{}: {status}", n.name);
    }
}

fn signal(node: &Node, signal: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(node.child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, signal).unwrap();
}

async fn counter_is(client: &reqwest::Client, node: &Node, expected: u64) {
    poll_until(&format!("{} has hits = {expected}", node.name), || async {
        let (status, body) = get(client, format!("{}/keys/gcounter/hits", node.http)).await?;
        if status == StatusCode::OK && body["value"] == json!(expected) {
            Ok(())
        } else {
            Err(format!("{status} {body}"))
        }
    })
    .await;
}

/// Whether `node`'s values hold entries of `incarnation`.
async fn in_data(client: &reqwest::Client, node: &Node, incarnation: &Value) -> bool {
    let (_, body) = get(client, format!("{}/members", node.http)).await.unwrap();
    body["in_data"].as_array().unwrap().contains(incarnation)
}

/// Waits until `node`'s values hold no entries of `incarnation` (its pruning is complete there)
/// and none of any removed incarnation.
async fn pruned(client: &reqwest::Client, node: &Node, incarnation: &Value) {
    poll_until(&format!("{} pruned {incarnation}", node.name), || async {
        let (_, body) = get(client, format!("{}/members", node.http)).await?;
        let gone = !body["in_data"]
            .as_array()
            .is_some_and(|r| r.contains(incarnation));
        if gone && body["awaiting_pruning"] == json!(0) {
            Ok(())
        } else {
            Err(body.to_string())
        }
    })
    .await;
}

async fn member(client: &reqwest::Client, node: &Node, name: &str) -> Value {
    let (_, body) = get(client, format!("{}/members", node.http)).await.unwrap();
    body["members"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["name"] == json!(name))
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_replica_leaves_at_once_and_a_killed_one_removed_is_pruned() {
    leave_and_remove(None).await;
}

/// The same with a cluster secret: the TCP handshakes and every gossip datagram authenticated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_cluster_secret_a_stopped_replica_leaves_and_a_removed_one_is_pruned() {
    leave_and_remove(Some("the cluster secret of node_membership")).await;
}

/// Four replicas; d leaves by SIGTERM and is pruned, c is killed, removed and pruned.
async fn leave_and_remove(secret: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let a = start_with(dir.path(), "a", &[], secret);
    let b = start_with(dir.path(), "b", &[&a], secret);
    let c = start_with(dir.path(), "c", &[&a], secret);
    let d = start_with(dir.path(), "d", &[&b], secret);
    for n in [&a, &b, &c, &d] {
        runs_with_test_settings(dir.path(), n).await;
        members_are(&client, n, &["a", "b", "c", "d"]).await;
    }
    // Each replica counts its own entry of the counter: 1 + 2 + 3 + 4.
    for (by, n) in [&a, &b, &c, &d].into_iter().enumerate() {
        let (status, answer) = send(
            client
                .post(format!("{}/keys/gcounter/hits", n.http))
                .json(&json!({"op": "increment", "by": by + 1})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    for n in [&a, &b, &c, &d] {
        counter_is(&client, n, 10).await;
    }
    // Every member was heard from recently, with its incarnation and gossip address.
    for name in ["b", "c", "d"] {
        poll_until(&format!("a heard from {name}"), || async {
            let m = member(&client, &a, name).await;
            let recent = m["last_heard_ms"].as_u64().is_some_and(|ms| ms < 30_000);
            if m["state"] == json!("up") && recent && m["gossip_address"].is_string() {
                Ok(())
            } else {
                Err(m.to_string())
            }
        })
        .await;
    }
    let d_incarnation = member(&client, &a, "d").await["incarnation"].clone();
    let c_incarnation = member(&client, &a, "c").await["incarnation"].clone();
    for n in [&a, &b, &c] {
        assert!(in_data(&client, n, &d_incarnation).await, "{}", n.name);
        assert!(in_data(&client, n, &c_incarnation).await, "{}", n.name);
    }

    // SIGTERM: d flushes, announces its leave and exits 0; the others drop it well before the
    // failure detector and the one-hour dead-node grace period would, and prune its entry
    // while the counter keeps its value.
    let mut d = d;
    signal(&d, nix::sys::signal::Signal::SIGTERM);
    let status = tokio::time::timeout(BOUND, d.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "d: {status}");
    for n in [&a, &b, &c] {
        members_are(&client, n, &["a", "b", "c"]).await;
        pruned(&client, n, &d_incarnation).await;
        counter_is(&client, n, 10).await;
    }

    // SIGKILL: c is gone without a word. Removing it is refused while the failure detector
    // still hears from it; removing this replica itself, an unknown one or a live one is
    // refused at any time.
    let mut c = c;
    signal(&c, nix::sys::signal::Signal::SIGKILL);
    c.child.wait().await.unwrap();
    let a_http = a.http.trim_start_matches("http://").to_owned();
    let out = run_cli(&["remove", "--http", &a_http, "a"]).await;
    assert!(
        !out.success && out.stderr.contains("is this replica"),
        "{}",
        out.stderr
    );
    let out = run_cli(&["remove", "--http", &a_http, "zz"]).await;
    assert!(
        !out.success && out.stderr.contains("not a known member"),
        "{}",
        out.stderr
    );
    let out = run_cli(&["remove", "--http", &a_http, "b"]).await;
    assert!(
        !out.success && out.stderr.contains("is alive"),
        "{}",
        out.stderr
    );
    poll_until("a sees c unreachable", || async {
        let m = member(&client, &a, "c").await;
        if m["state"] == json!("unreachable") {
            Ok(())
        } else {
            Err(m.to_string())
        }
    })
    .await;
    // Still a member: without `remove` it would stay one for the grace period (one hour).
    members_are(&client, &b, &["a", "b", "c"]).await;
    let out = run_cli(&["remove", "--http", &a_http, "c"]).await;
    assert!(out.success, "{}", out.stderr);
    assert!(
        out.stdout
            .contains(&format!("removed {}", c_incarnation.as_str().unwrap())),
        "{}",
        out.stdout
    );
    // The removal spreads to b (asked nothing), both prune c's entry, the value stays right.
    for n in [&a, &b] {
        members_are(&client, n, &["a", "b"]).await;
        pruned(&client, n, &c_incarnation).await;
        counter_is(&client, n, 10).await;
    }
    // And the counter still counts: pruned entries were collapsed, not dropped.
    let (status, _) = send(
        client
            .post(format!("{}/keys/gcounter/hits", b.http))
            .json(&json!({"op": "increment", "by": 5})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    counter_is(&client, &a, 15).await;

    for mut n in [b, a] {
        signal(&n, nix::sys::signal::Signal::SIGTERM);
        let status = tokio::time::timeout(BOUND, n.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "{}: {status}", n.name);
    }
}
