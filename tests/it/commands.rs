//! `helpdesk run` and `helpdesk demo` as processes, the way operators and
//! newcomers start them.

use std::process::Command;
use std::time::{Duration, Instant};

use helpdesk::domain::clock::Clock;
use helpdesk::platforms::x::fake::{Sandbox, SandboxConfig, parse_traffic};

use crate::common::{self, line};

const BIN: &str = env!("CARGO_BIN_EXE_helpdesk");

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_answers_stops_on_sigterm_and_resumes_from_its_cursor() {
    let clock = Clock::new();
    let traffic = [
        line("3001", "mention", "ana", "@lumio vos horaires ?"),
        line("3002", "mention", "tom", "@lumio I want a refund"),
    ]
    .join("\n");
    let sandbox = Sandbox::start(
        parse_traffic(&traffic, "t").unwrap(),
        SandboxConfig::default(),
        clock.clone(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("helpdesk.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"sqlite://{}\"\nrules = \"{}\"\n\n[x]\nbase_url = \"{}\"\naccess_token_env = \"HD_TEST_X_TOKEN\"\nmin_poll_interval_ms = 100\n",
            dir.path().join("bot.db").display(),
            common::repo_rules().display(),
            sandbox.base_url()
        ),
    )
    .unwrap();
    let log_path = dir.path().join("run.log");
    let start = || {
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(&config)
            .env("HD_TEST_X_TOKEN", sandbox.token())
            .env("RUST_LOG", "trace")
            .env("HELPDESK_ADMIN_LISTEN", "127.0.0.1:0")
            // A file, not a pipe: trace logs would fill a pipe nobody reads.
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap()
    };

    let mut child = start();
    wait_for("two replies", || sandbox.posted().len() == 2).await;
    common::terminate(&child);
    let status = child.wait().unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        !logs.contains(&sandbox.token()),
        "the token never reaches a log"
    );
    assert!(logs.contains("message routed"), "{logs}");

    // A new message while it was down: the restart answers it, and only it.
    sandbox
        .push(parse_traffic(&line("3003", "mention", "zoe", "@lumio code wifi ?"), "t").unwrap());
    let mut child = start();
    wait_for("the third reply", || sandbox.posted().len() == 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    common::terminate(&child);
    assert!(child.wait().unwrap().success());
    let posted = sandbox.posted();
    assert_eq!(posted.len(), 3, "{posted:?}");
    assert_eq!(posted[2].target, "3003");
}

#[test]
fn run_without_a_token_says_which_variable_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("helpdesk.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"sqlite://{}\"\nrules = \"{}\"\n[x]\nbase_url = \"http://127.0.0.1:9\"\naccess_token_env = \"HD_TEST_NO_SUCH_TOKEN\"\n",
            dir.path().join("bot.db").display(),
            common::repo_rules().display()
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("HD_TEST_NO_SUCH_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("HD_TEST_NO_SUCH_TOKEN"), "{err}");
}

/// Runs `helpdesk demo --json` with `args` in the repository: its summary
/// and its message lines.
fn demo_json(args: &[&str]) -> (serde_json::Value, Vec<serde_json::Value>) {
    let out = Command::new(BIN)
        .arg("demo")
        .args(args)
        .arg("--json")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary = lines.pop().expect("a summary line");
    (summary["summary"].clone(), lines)
}

#[test]
fn demo_json_prints_one_line_per_message_and_a_summary() {
    let (s, messages) = demo_json(&[]);
    let s = &s;
    assert_eq!(s["messages"].as_u64().unwrap() as usize, messages.len());
    for m in &messages {
        for k in ["id", "rule", "action", "reply_status", "ticket"] {
            assert!(m.get(k).is_some(), "{m} lacks {k}");
        }
    }
    // The angry burst shows the limiter: some replies wait.
    assert!(s["queued"].as_u64().unwrap() >= 1, "{s}");
    assert!(s["sent"].as_u64().unwrap() >= 20, "{s}");
    let ids: std::collections::HashSet<&str> =
        messages.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), messages.len(), "each message once");
}

#[test]
fn demo_runs_the_same_traffic_on_bluesky() {
    let root = env!("CARGO_MANIFEST_DIR");
    let (s, messages) = demo_json(&["--platform", "bluesky"]);
    let s = &s;
    assert_eq!(s["messages"].as_u64().unwrap() as usize, messages.len());
    assert!(s["sent"].as_u64().unwrap() >= 20, "{s}");
    assert_eq!(s["posted_to_platform"], s["sent"], "{s}");
    assert_eq!(s["failed"], 0, "{s}");
    assert!(
        messages
            .iter()
            .all(|m| m["id"].as_str().unwrap().starts_with("at://")
                || m["id"].as_str().unwrap().contains('/')),
        "Bluesky ids: post URIs and convo/message ids"
    );
    let refused = Command::new(BIN)
        .args(["demo", "--platform", "mastodon"])
        .current_dir(root)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("use x or bluesky"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_waits_out_a_platform_that_fails_at_start() {
    let clock = Clock::new();
    let sandbox = Sandbox::start(
        parse_traffic(&line("3101", "mention", "ana", "@lumio code wifi ?"), "t").unwrap(),
        SandboxConfig::default(),
        clock.clone(),
    )
    .await
    .unwrap();
    // X is having a bad minute: the first two "who am I" calls fail.
    sandbox.fail_next(helpdesk::platforms::x::fake::Endpoint::Me, &[503, 500]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("helpdesk.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"sqlite://{}\"\nrules = \"{}\"\nadmin_listen = \"\"\n\n[x]\nbase_url = \"{}\"\naccess_token_env = \"HD_TEST_X_TOKEN\"\nmin_poll_interval_ms = 100\n",
            dir.path().join("bot.db").display(),
            common::repo_rules().display(),
            sandbox.base_url()
        ),
    )
    .unwrap();
    let log_path = dir.path().join("run.log");
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .env("HD_TEST_X_TOKEN", sandbox.token())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    wait_for("the reply after the retries", || {
        sandbox.posted().len() == 1
    })
    .await;
    common::terminate(&child);
    assert!(child.wait().unwrap().success());
    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(logs.contains("retrying (a temporary failure)"), "{logs}");
}

#[test]
fn no_database_password_is_printed_by_config_check_or_tickets() {
    let dir = tempfile::tempdir().unwrap();
    // `sslmode=bogus` makes the driver refuse the URL at once, so the error
    // path is taken without waiting for a server.
    for url in [
        "postgres://helpdesk:p@ssHunter2@127.0.0.1:1/hd?sslmode=bogus",
        "postgres://helpdesk@127.0.0.1:1/hd?password=Hunter2&sslmode=bogus",
        "postgres://helpdesk:p%40ss:Hunter2@127.0.0.1:1/hd?sslpassword=Hunter2&sslmode=bogus",
        "postgres:///hd?host=/nonexistent&pass=Hunter2&sslmode=bogus",
        "postgres://helpdesk:Hunter2@[127.0.0.1/hd",
    ] {
        for args in [&["config", "check"][..], &["tickets", "list"][..]] {
            let out = Command::new(BIN)
                .args(args)
                .current_dir(dir.path())
                .env("HELPDESK_DATABASE_URL", url)
                .output()
                .unwrap();
            let all = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(!all.contains("Hunter2"), "{args:?} with {url}:\n{all}");
            assert!(all.contains("[redacted]"), "{args:?} with {url}:\n{all}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_pipe_ends_tickets_list_quietly() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("big.db").display());
    {
        let store = helpdesk::storage::Store::open(&url).await.unwrap();
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) \
             INSERT INTO tickets (queue, priority, platform, customer_id, customer_handle, conversation_id, created_at, updated_at) \
             SELECT 'general', 'normal', 'x', i, 'cust' || i, 'c' || i, 0, 0 FROM n",
        )
        .execute(store.pool())
        .await
        .unwrap();
    }
    for json in [true, false] {
        let mut args = vec!["tickets", "list"];
        if json {
            args.push("--json");
        }
        // `helpdesk tickets list --json | head -1`
        let mut child = Command::new(BIN)
            .args(&args)
            .current_dir(dir.path())
            .env("HELPDESK_DATABASE_URL", &url)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        // The reader is gone.
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!first.is_empty());
        assert_eq!(out.status.code(), Some(0), "json {json}: {err}");
        assert!(err.is_empty(), "json {json}: {err}");
    }
}

#[test]
fn a_file_that_is_not_a_database_is_named_as_such_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notes.db");
    std::fs::write(&file, "these are my notes, not a database\n".repeat(200)).unwrap();
    let t = Instant::now();
    let out = Command::new(BIN)
        .args(["tickets", "list"])
        .current_dir(dir.path())
        .env(
            "HELPDESK_DATABASE_URL",
            format!("sqlite://{}", file.display()),
        )
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(t.elapsed() < Duration::from_secs(5), "no pool timeout");
    assert!(err.contains("is not a SQLite database"), "{err}");
    assert!(!err.contains("newer helpdesk"), "{err}");
    assert_eq!(err.matches("file is not a database").count(), 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn config_check_refuses_a_bad_override_by_its_variable_name() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value, says) in [
        (
            "HELPDESK_SHUTDOWN_DEADLINE_SECS",
            "soon",
            "`soon` is not a whole number of seconds",
        ),
        (
            "HELPDESK_X_BASE_URL",
            "ftp://api.example",
            "must start with http:// or https://",
        ),
    ] {
        let out = Command::new(BIN)
            .args(["config", "check"])
            .current_dir(dir.path())
            .env(var, value)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {err}");
        assert!(
            err.contains(&format!("environment variable {var}: ")) && err.contains(says),
            "{var}={value}: {err}"
        );
    }
}

#[test]
fn config_check_passes_a_mastodon_only_configuration_and_names_its_secret() {
    let dir = tempfile::tempdir().unwrap();
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    std::fs::write(
        dir.path().join("helpdesk.toml"),
        format!(
            "rules = {:?}\n[mastodon]\nbase_url = \"https://mastodon.example\"\naccess_token_env = \"HD_TEST_MASTODON_TOKEN\"\n",
            rules.display().to_string()
        ),
    )
    .unwrap();
    let check = |token: Option<&str>| {
        let mut c = Command::new(BIN);
        c.args(["config", "check", "--config", "helpdesk.toml"])
            .current_dir(dir.path())
            .env_remove("HD_TEST_MASTODON_TOKEN");
        if let Some(t) = token {
            c.env("HD_TEST_MASTODON_TOKEN", t);
        }
        c.output().unwrap()
    };
    let ok = check(Some("token"));
    let out = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{out}");
    assert!(
        out.contains("# secret HD_TEST_MASTODON_TOKEN: set"),
        "{out}"
    );
    assert!(!out.contains("no platform to serve"), "{out}");
    let missing = check(None);
    let out = String::from_utf8_lossy(&missing.stdout);
    assert_eq!(missing.status.code(), Some(1), "{out}");
    assert!(
        out.contains("# secret HD_TEST_MASTODON_TOKEN: NOT SET"),
        "{out}"
    );
}
