//! The database goes away under a running `helpdesk run`, then comes back:
//! `/readyz` says so while it is gone, nothing is lost or answered twice,
//! and the bot resumes by itself. And SQLite on a full disk.
//!
//! PostgreSQL: the bot's database refuses new connections
//! (`ALLOW_CONNECTIONS false`) and its sessions are terminated, for 30 s.
//! SQLite: another writer holds the file's lock for 30 s. Full disk: the
//! database lives on a 2 MiB tmpfs (skipped, saying so, where mounting is
//! not allowed).

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use helpdesk::domain::clock::Clock;
use helpdesk::platforms::x::fake::{Sandbox, SandboxConfig, Window, parse_traffic};
use sqlx::{Connection, Row};

use crate::common::{self, Db, line};

const BIN: &str = env!("CARGO_BIN_EXE_helpdesk");
const OUTAGE: Duration = Duration::from_secs(30);

on_both_databases!(the_database_gone_for_30_s_loses_nothing_and_resumes);

/// `customers` customers, two messages each: one now, one `later` seconds on.
fn traffic(customers: usize, later: f64) -> String {
    (0..customers)
        .flat_map(|i| {
            let first = line(
                &format!("{}", 7000 + i),
                "mention",
                &format!("c{i}"),
                "@lumio code wifi ?",
            );
            let mut second: serde_json::Value = serde_json::from_str(&line(
                &format!("{}", 8000 + i),
                "dm",
                &format!("c{i}"),
                "I need a copy of my invoice",
            ))
            .unwrap();
            second["at"] = serde_json::json!(later);
            [first, second.to_string()]
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A sandbox whose limits are not what this test measures.
fn roomy() -> SandboxConfig {
    let mut c = SandboxConfig::default();
    for w in c.limits.values_mut() {
        *w = Window {
            limit: 100_000,
            window: Duration::from_secs(900),
        };
    }
    c
}

fn write_config(
    dir: &std::path::Path,
    url: &str,
    sandbox: &Sandbox,
    admin: u16,
) -> std::path::PathBuf {
    let path = dir.join("helpdesk.toml");
    std::fs::write(
        &path,
        format!(
            r#"database_url = "{url}"
rules = "{rules}"
admin_listen = "127.0.0.1:{admin}"
answer_backlog = true

[limits]
global = {{ replies = 100000, per_secs = 60 }}
per_customer = {{ replies = 100, per_secs = 60 }}
lease_secs = 3

[x]
base_url = "{base}"
access_token_env = "HD_TEST_X_TOKEN"
min_poll_interval_ms = 200
poll_interval_ms = 500
search = false
"#,
            rules = common::repo_rules().display(),
            base = sandbox.base_url(),
        ),
    )
    .unwrap();
    path
}

fn start(config: &std::path::Path, sandbox: &Sandbox, log: &std::path::Path) -> Child {
    Command::new(BIN)
        .args(["run", "--config"])
        .arg(config)
        .env("HD_TEST_X_TOKEN", sandbox.token())
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

async fn ready(admin: u16) -> Option<bool> {
    let r = helpdesk::platforms::http::http_client()
        .get(format!("http://127.0.0.1:{admin}/readyz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    Some(r.status().is_success())
}

async fn wait_for(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every message recorded once, each customer's two replies posted once.
async fn assert_exactly_once(url: &str, sandbox: &Sandbox, customers: usize) {
    let posted = sandbox.posted();
    let tweets = posted.iter().filter(|p| p.kind == "tweet").count();
    let dms = posted.iter().filter(|p| p.kind == "dm").count();
    let mut targets: Vec<(&str, &str)> =
        posted.iter().map(|p| (p.kind, p.target.as_str())).collect();
    targets.sort();
    targets.dedup();
    assert_eq!(
        targets.len(),
        posted.len(),
        "nobody answered twice: {posted:?}"
    );
    assert_eq!((tweets, dms), (customers, customers), "everyone answered");
    let store = helpdesk::storage::Store::open(url).await.unwrap();
    let r = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM messages), \
         (SELECT COUNT(*) FROM outbox WHERE status <> 'sent')",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    let (messages, unsent): (i64, i64) = (r.try_get(0).unwrap(), r.try_get(1).unwrap());
    assert_eq!(messages as usize, 2 * customers, "every message recorded");
    assert_eq!(unsent, 0, "nothing left queued or in review");
}

/// Takes the database away for [`OUTAGE`]; returns once it is back.
async fn outage(db: Db, url: &str) {
    match db {
        Db::Postgres => {
            let base = std::env::var("HELPDESK_TEST_POSTGRES_URL").unwrap();
            let name = url.rsplit('/').next().unwrap().to_owned();
            let mut admin = sqlx::AnyConnection::connect(&base).await.unwrap();
            let kill = format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            );
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "ALTER DATABASE {name} ALLOW_CONNECTIONS false"
            )))
            .execute(&mut admin)
            .await
            .unwrap();
            let start = Instant::now();
            while start.elapsed() < OUTAGE {
                sqlx::query(sqlx::AssertSqlSafe(kill.clone()))
                    .execute(&mut admin)
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "ALTER DATABASE {name} ALLOW_CONNECTIONS true"
            )))
            .execute(&mut admin)
            .await
            .unwrap();
        }
        Db::Sqlite => {
            // Another writer (a backup tool, an agent's sqlite3 shell left
            // in a transaction) holds the write lock.
            let mut other = sqlx::AnyConnection::connect(url).await.unwrap();
            sqlx::query("BEGIN EXCLUSIVE")
                .execute(&mut other)
                .await
                .unwrap();
            tokio::time::sleep(OUTAGE).await;
            sqlx::query("COMMIT").execute(&mut other).await.unwrap();
        }
    }
}

async fn the_database_gone_for_30_s_loses_nothing_and_resumes(db: Db) {
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().unwrap();
    let Some(url) = common::fresh_db(db, dir.path()).await else {
        return;
    };
    let customers = 20;
    // The second message of each customer arrives during the outage.
    let sandbox = Sandbox::start(
        parse_traffic(&traffic(customers, 12.0), "t").unwrap(),
        roomy(),
        Clock::new(),
    )
    .await
    .unwrap();
    let admin = common::free_port();
    let config = write_config(dir.path(), &url, &sandbox, admin);
    let log = dir.path().join("run.log");
    let mut child = start(&config, &sandbox, &log);
    wait_for("the first replies", Duration::from_secs(60), async || {
        sandbox.posted().len() >= customers
    })
    .await;
    assert_eq!(ready(admin).await, Some(true), "ready before the outage");

    let gone = tokio::spawn({
        let url = url.clone();
        async move { outage(db, &url).await }
    });
    // While it is gone, /readyz says so (a write or a probe fails within
    // the pool's and SQLite's 10 s timeouts).
    wait_for(
        "/readyz to report the database",
        Duration::from_secs(28),
        async || ready(admin).await == Some(false),
    )
    .await;
    gone.await.unwrap();
    let back = Instant::now();
    wait_for(
        "/readyz after the database came back",
        Duration::from_secs(40),
        async || ready(admin).await == Some(true),
    )
    .await;
    let all_sent = async || sandbox.posted().len() >= 2 * customers;
    let start = Instant::now();
    while !all_sent().await && start.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if !all_sent().await {
        let store = helpdesk::storage::Store::open(&url).await.unwrap();
        let rows: Vec<String> = sqlx::query(
            "SELECT platform_message_id || ' ' || action || ' ' || auto_reply || ' ' || COALESCE(reason, '') FROM messages ORDER BY id",
        )
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get(0).unwrap())
        .collect();
        let out: Vec<String> =
            sqlx::query("SELECT status || ' ' || COALESCE(reason, '') FROM outbox ORDER BY id")
                .fetch_all(store.pool())
                .await
                .unwrap()
                .iter()
                .map(|r| r.try_get(0).unwrap())
                .collect();
        panic!(
            "not every reply was sent: {} posted\nmessages: {rows:#?}\noutbox: {out:#?}\nlog: {}",
            sandbox.posted().len(),
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .rev()
                .take(15)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let resumed = back.elapsed();
    // Let any duplicate show itself before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    common::terminate(&child);
    assert!(child.wait().unwrap().success());
    assert_exactly_once(&url, &sandbox, customers).await;
    eprintln!(
        "{db:?}: database gone for {} s; ready and every reply sent {:.1} s after it came back",
        OUTAGE.as_secs(),
        resumed.as_secs_f64()
    );
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(
        !logs.contains("code wifi") && !logs.contains("copy of my invoice"),
        "no message text in the logs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_on_a_full_disk_loses_nothing_acknowledged() {
    let mnt = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(mnt.path())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!(
            "skip: cannot mount a small tmpfs here (needs root); the full-disk case was not run"
        );
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.path().to_owned());
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", mnt.path().join("bot.db").display());
    // Long texts fill the 2 MiB quickly.
    let customers = 400;
    let padding = "x".repeat(3000);
    let lines: Vec<String> = (0..customers)
        .map(|i| {
            line(
                &format!("{}", 9000 + i),
                "mention",
                &format!("f{i}"),
                &format!("@lumio code wifi ? {padding}"),
            )
        })
        .collect();
    let sandbox = Sandbox::start(
        parse_traffic(&lines.join("\n"), "t").unwrap(),
        roomy(),
        Clock::new(),
    )
    .await
    .unwrap();
    let admin = common::free_port();
    let config = write_config(dir.path(), &url, &sandbox, admin);
    let log = dir.path().join("run.log");
    let mut child = start(&config, &sandbox, &log);
    wait_for("the disk to fill", Duration::from_secs(60), async || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("full")
    })
    .await;
    wait_for(
        "/readyz to report it",
        Duration::from_secs(30),
        async || ready(admin).await == Some(false),
    )
    .await;
    // Every reply that went out belongs to a message the database holds:
    // nothing the bot acknowledged (a cursor moved, a reply sent) is lost.
    common::terminate(&child);
    let _ = child.wait();
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(
        logs.contains("free some space"),
        "the error says what to do: {}",
        logs.lines()
            .filter(|l| l.contains("full"))
            .take(3)
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Make room, start again: everyone is answered exactly once.
    Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(mnt.path())
        .status()
        .unwrap();
    let mut child = start(&config, &sandbox, &log);
    wait_for(
        "every reply after making room",
        Duration::from_secs(90),
        async || sandbox.posted().len() >= customers,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    common::terminate(&child);
    assert!(child.wait().unwrap().success());
    let posted = sandbox.posted();
    let mut targets: Vec<&str> = posted.iter().map(|p| p.target.as_str()).collect();
    targets.sort();
    targets.dedup();
    assert_eq!(targets.len(), posted.len(), "nobody answered twice");
    assert_eq!(posted.len(), customers);
}
