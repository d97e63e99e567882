//! Headless operation: hot reload, the admin endpoint and JSON logs, a
//! SIGTERM in the middle of a burst, and three instances on one PostgreSQL
//! with the owner killed mid-run, with a static token and with one OAuth
//! 2.0 login shared through the database.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use helpdesk::domain::Channel;
use helpdesk::domain::clock::Clock;
use helpdesk::platforms::x::fake::{Endpoint, Sandbox, SandboxConfig, parse_traffic};

use crate::common::{self, Db, Setup, line, rules_dir, spawn};

const BIN: &str = env!("CARGO_BIN_EXE_helpdesk");

async fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const HOURS_RULE: &str = r#"
[[rule]]
id = "hours"
keywords = ["hours"]
reply = "{author} we answer 8am-9pm."
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_rule_routes_within_two_seconds_and_a_broken_one_is_not_taken() {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_dir(dir.path(), HOURS_RULE);
    let mut setup = Setup::new(Db::Sqlite, "");
    setup.rules = Some(rules.clone());
    let Some(app) = spawn(setup).await else {
        return;
    };
    let shutdown = helpdesk::runtime::shutdown::Shutdown::new();
    shutdown.spawn(helpdesk::runtime::reload::watch_rules(
        app.bot.rules(),
        rules.clone(),
        helpdesk::rules::LoadOptions::default(),
        app.clock.clone(),
        shutdown.clone(),
    ));
    let route = || {
        let set = app.bot.rules().load_full();
        set.route("what are your opening times?", Channel::Mention)
            .rule_id()
            .map(|r| r.as_str().to_owned())
    };
    assert_eq!(route(), None);
    tokio::time::sleep(Duration::from_millis(200)).await; // the watcher is up
    let edited = format!(
        "{HOURS_RULE}\n[[rule]]\nid = \"times\"\nkeywords = [\"opening times\"]\nreply = \"{{author}} 8am-9pm, every day.\"\n"
    );
    std::fs::write(rules.join("rules.toml"), &edited).unwrap();
    let t = Instant::now();
    wait_for("the new rule", 2, || route().as_deref() == Some("times")).await;
    eprintln!("new routing after {} ms", t.elapsed().as_millis());
    // A broken edit: the previous rules stay.
    std::fs::write(
        rules.join("rules.toml"),
        "[[rule]]\nid = \"times\"\nkeywords = []\n",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(route().as_deref(), Some("times"), "old routing kept");
    shutdown.stop();
}

struct Bot {
    child: Child,
    log: PathBuf,
}

impl Drop for Bot {
    /// A failing test must not leave a bot running behind it.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(dir: &Path, db_url: &str, sandbox: &Sandbox, extra: &str) -> PathBuf {
    let config = dir.join("helpdesk.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"{db_url}\"\nrules = \"{}\"\nshutdown_deadline_secs = 10\n{extra}\n\n[x]\nbase_url = \"{}\"\naccess_token_env = \"HD_TEST_X_TOKEN\"\nmin_poll_interval_ms = 50\ndms = false\nsearch = false\n",
            common::repo_rules().display(),
            sandbox.base_url()
        ),
    )
    .unwrap();
    config
}

fn start_bot(config: &Path, sandbox: &Sandbox, name: &str, admin: &str, json: bool) -> Bot {
    start_bot_with(config, sandbox, name, admin, json, &[])
}

fn start_bot_with(
    config: &Path,
    sandbox: &Sandbox,
    name: &str,
    admin: &str,
    json: bool,
    env: &[(&str, String)],
) -> Bot {
    let log = config.with_file_name(format!("{name}.log"));
    let mut cmd = Command::new(BIN);
    cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    cmd.args(["run", "--config"]).arg(config);
    if json {
        cmd.args(["--log-format", "json"]);
    }
    let child = cmd
        .env("HD_TEST_X_TOKEN", sandbox.token())
        .env("HELPDESK_ADMIN_LISTEN", admin)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Bot { child, log }
}

fn faq_traffic(n: usize, first: usize) -> String {
    let asks = [
        "code wifi ?",
        "vos horaires ?",
        "activer ma sim",
        "where is my order",
    ];
    (0..n)
        .map(|i| {
            line(
                &format!("{}", first + i),
                "mention",
                &format!("cust{}", first + i),
                &format!("@lumio {}", asks[i % 4]),
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_health_readiness_and_json_logs() {
    let clock = Clock::new();
    let sandbox = Sandbox::start(
        parse_traffic(&faq_traffic(5, 7000), "t").unwrap(),
        SandboxConfig::default(),
        clock,
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("bot.db").display());
    let config = write_config(dir.path(), &db, &sandbox, "");
    let port = common::free_port();
    let mut bot = start_bot(&config, &sandbox, "obs", &format!("127.0.0.1:{port}"), true);
    wait_for("five replies", 20, || sandbox.posted().len() == 5).await;
    let base = format!("http://127.0.0.1:{port}");
    let http = helpdesk::platforms::http::http_client();
    let get = |p: &str| http.get(format!("{base}{p}")).send();
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    let ready = get("/readyz").await.unwrap();
    assert_eq!(ready.status(), 200);
    let r: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(r["database"], true);
    assert_eq!(r["rules_loaded"], true);
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    for want in [
        "helpdesk_inbound_total{platform=\"x\",channel=\"mention\"} 5",
        "helpdesk_routed_total{",
        "helpdesk_replies_total{status=\"sent\"} 5",
        "helpdesk_api_requests_total{platform=\"x\",endpoint=\"mentions\"",
        "helpdesk_outbox_depth 0",
        "helpdesk_outbox_oldest_age_seconds",
        "helpdesk_sla_breaches",
        "helpdesk_rules_loaded 17",
    ] {
        assert!(metrics.contains(want), "`{want}` missing from:\n{metrics}");
    }
    common::signal(&bot.child, "-TERM");
    assert!(bot.child.wait().unwrap().success());
    let logs = std::fs::read_to_string(&bot.log).unwrap();
    let routed: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "message routed")
        .collect();
    assert_eq!(routed.len(), 5, "{logs}");
    let span = &routed[0]["span"];
    assert_eq!(span["name"], "message");
    assert!(
        span["id"].is_string() && span["rule"].is_string() && span["action"] == "reply",
        "{span}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_burst_then_restart_processes_everything_once() {
    let clock = Clock::new();
    let n = 120;
    let sandbox = Sandbox::start(
        parse_traffic(&faq_traffic(n, 8000), "t").unwrap(),
        SandboxConfig::default(),
        clock,
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("bot.db").display());
    let config = write_config(
        dir.path(),
        &db,
        &sandbox,
        "[limits]\nglobal = { replies = 1000, per_secs = 60 }\n",
    );
    let mut bot = start_bot(&config, &sandbox, "a", "127.0.0.1:0", false);
    wait_for("the burst to start", 20, || sandbox.posted().len() >= 5).await;
    common::signal(&bot.child, "-TERM");
    assert!(bot.child.wait().unwrap().success(), "clean stop");
    let at_stop = sandbox.posted().len();
    let mut bot = start_bot(&config, &sandbox, "b", "127.0.0.1:0", false);
    wait_for("every reply", 30, || sandbox.posted().len() >= n).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    common::signal(&bot.child, "-TERM");
    assert!(bot.child.wait().unwrap().success());
    let posted = sandbox.posted();
    let targets: HashSet<&str> = posted.iter().map(|p| p.target.as_str()).collect();
    eprintln!(
        "{at_stop} replies before SIGTERM, {} after the restart",
        posted.len() - at_stop
    );
    assert_eq!(posted.len(), n, "no reply twice");
    assert_eq!(targets.len(), n, "every message answered");
    let store = helpdesk::storage::Store::open(&db).await.unwrap();
    let (count, distinct): (i64, i64) = {
        use sqlx::Row;
        let r = sqlx::query("SELECT COUNT(*), COUNT(DISTINCT platform_message_id) FROM messages")
            .fetch_one(store.pool())
            .await
            .unwrap();
        (r.try_get(0).unwrap(), r.try_get(1).unwrap())
    };
    assert_eq!(
        (count, distinct),
        (n as i64, n as i64),
        "each message processed once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_on_postgres_survive_the_owner_dying() {
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = common::fresh_db(Db::Postgres, dir.path()).await else {
        return;
    };
    let clock = Clock::new();
    let n = 90;
    let sandbox = Sandbox::start(
        parse_traffic(&faq_traffic(n, 9000), "t").unwrap(),
        SandboxConfig::default(),
        clock,
    )
    .await
    .unwrap();
    // The global budget is the limit under test: 40 replies per 20 s.
    let config = write_config(
        dir.path(),
        &db,
        &sandbox,
        "[limits]\nglobal = { replies = 40, per_secs = 20 }\nlease_secs = 2\n",
    );
    let mut a = start_bot(&config, &sandbox, "a", "127.0.0.1:0", false);
    wait_for("the first owner to reply", 30, || {
        sandbox.posted().len() >= 10
    })
    .await;
    let mut b = start_bot(&config, &sandbox, "b", "127.0.0.1:0", false);
    let mut c = start_bot(&config, &sandbox, "c", "127.0.0.1:0", false);
    tokio::time::sleep(Duration::from_millis(800)).await;
    common::signal(&a.child, "-KILL");
    let _ = a.child.wait();
    let killed_at = sandbox.posted().len();
    let t = Instant::now();
    while sandbox.posted().len() < n && t.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if sandbox.posted().len() < n {
        for x in [&a, &b, &c] {
            let l = std::fs::read_to_string(&x.log).unwrap();
            let tail: Vec<&str> = l.lines().rev().take(15).collect();
            eprintln!("== {}\n{}", x.log.display(), tail.join("\n"));
        }
        panic!("only {} of {n} replies", sandbox.posted().len());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for bot in [&mut b, &mut c] {
        common::signal(&bot.child, "-TERM");
        assert!(bot.child.wait().unwrap().success());
    }
    let posted = sandbox.posted();
    let targets: HashSet<&str> = posted.iter().map(|p| p.target.as_str()).collect();
    eprintln!(
        "{killed_at} replies before the kill, {} after",
        posted.len() - killed_at
    );
    assert_eq!(targets.len(), n, "every message answered");
    assert_eq!(posted.len(), n, "no reply twice");
    // The budget held across instances: the replies of all instances
    // together pass the one budget (a bucket of 40, one more every 0.5 s),
    // as if a single bot had sent them (50 ms of slack for timestamps).
    let (period, burst) = (500i64, 40i64);
    let mut tat = 0i64;
    for p in &posted {
        tat = tat.max(p.at) + period;
        assert!(
            tat - p.at <= burst * period + 50,
            "reply at {} exceeds the global budget",
            p.at
        );
    }
    assert!(
        sandbox
            .request_log(Endpoint::PostTweet)
            .iter()
            .all(|(_, s)| *s == 200),
        "no 429"
    );
    let logs: String = [&a, &b, &c]
        .iter()
        .map(|x| std::fs::read_to_string(&x.log).unwrap())
        .collect();
    assert!(logs.contains("now owns the role"), "{logs}");
    let store = helpdesk::storage::Store::open(&db).await.unwrap();
    use sqlx::Row;
    let r = sqlx::query("SELECT COUNT(*), COUNT(DISTINCT platform_message_id) FROM messages")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(r.try_get::<i64, _>(0).unwrap(), n as i64);
    assert_eq!(r.try_get::<i64, _>(1).unwrap(), n as i64);
}

/// Among the instances still running, the one holding the most roles,
/// from their logs.
fn owner(bots: &[Bot], alive: &[bool]) -> usize {
    (0..bots.len())
        .filter(|i| alive[*i])
        .max_by_key(|i| {
            std::fs::read_to_string(&bots[*i].log)
                .unwrap_or_default()
                .matches("now owns the role")
                .count()
        })
        .expect("an instance still running")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_one_x_login_while_owners_die_in_turn() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = common::fresh_db(Db::Postgres, dir.path()).await else {
        return;
    };
    let clock = Clock::new();
    // Tokens live 310 s and are refreshed 300 s before they expire: one
    // expiry every 10 s of the run.
    let lifetime = 310u64;
    let cycle = Duration::from_secs(lifetime - 300);
    let sandbox = Sandbox::start(
        Vec::new(),
        SandboxConfig {
            token_lifetime: Duration::from_secs(lifetime),
            ..SandboxConfig::default()
        },
        clock.clone(),
    )
    .await
    .unwrap();
    // The login, as `helpdesk x login` leaves it in the database.
    let key = [9u8; 32];
    common::login_in_database(&sandbox, &db, "HD_TEST_KEY", &key, &clock).await;
    let config = write_config(
        dir.path(),
        &db,
        &sandbox,
        "[limits]\nglobal = { replies = 1000, per_secs = 60 }\nlease_secs = 2\n",
    );
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "access_token_env = \"HD_TEST_X_TOKEN\"",
        "token_store = \"database\"\ntoken_key_env = \"HD_TEST_KEY\"\nclient_id_env = \"HD_TEST_CLIENT_ID\"",
    );
    std::fs::write(&config, text).unwrap();
    let env = [
        (
            "HD_TEST_KEY",
            base64::engine::general_purpose::STANDARD.encode(key),
        ),
        ("HD_TEST_CLIENT_ID", "client-1".to_owned()),
    ];
    let start = |name: &str| start_bot_with(&config, &sandbox, name, "127.0.0.1:0", false, &env);
    let began = Instant::now();
    let (per_wave, waves) = (30usize, 3usize);
    let mut bots = vec![start("a"), start("b"), start("c")];
    let mut alive = [true; 3];
    let mut killed = 0;
    for wave in 0..waves {
        sandbox.push(parse_traffic(&faq_traffic(per_wave, 9600 + wave * per_wave), "t").unwrap());
        let want = (wave + 1) * per_wave;
        let t = Instant::now();
        while sandbox.posted().len() < want && t.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if sandbox.posted().len() < want {
            for b in &bots {
                let l = std::fs::read_to_string(&b.log).unwrap();
                let tail: Vec<&str> = l.lines().rev().take(12).collect();
                eprintln!("== {}\n{}", b.log.display(), tail.join("\n"));
            }
            panic!(
                "wave {wave}: only {} of {want} replies",
                sandbox.posted().len()
            );
        }
        // Past at least one expiry before the owner dies.
        tokio::time::sleep(cycle + Duration::from_secs(1)).await;
        if wave + 1 < waves {
            let o = owner(&bots, &alive);
            common::signal(&bots[o].child, "-KILL");
            let _ = bots[o].child.wait();
            alive[o] = false;
            killed += 1;
        }
    }
    let elapsed = began.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (bot, _) in bots.iter_mut().zip(alive).filter(|(_, up)| *up) {
        common::signal(&bot.child, "-TERM");
        assert!(bot.child.wait().unwrap().success());
    }
    let posted = sandbox.posted();
    let targets: HashSet<&str> = posted.iter().map(|p| p.target.as_str()).collect();
    assert_eq!(targets.len(), per_wave * waves, "every message answered");
    assert_eq!(posted.len(), per_wave * waves, "no reply twice");
    let counts = sandbox.token_counts();
    let expiries = (elapsed.as_secs_f64() / cycle.as_secs_f64()).ceil() as u64;
    eprintln!(
        "{killed} owners killed over {:.0} s: {} refreshes for {expiries} expiries, {} refused",
        elapsed.as_secs_f64(),
        counts.refreshed,
        counts.refused
    );
    assert_eq!(counts.refused, 0, "no instance used a spent refresh token");
    assert!(
        counts.refreshed >= 1,
        "the token did expire and was refreshed"
    );
    assert!(
        counts.refreshed <= expiries + 1,
        "refreshed once per expiry: {} refreshes for {expiries} expiries",
        counts.refreshed
    );
}

/// A bot with the admin endpoint and X webhooks on known ports, started
/// with `ulimit -n 1024` so that a flood that took its descriptors would
/// show as failed polls.
struct Exposed {
    bot: Bot,
    admin: String,
    webhook: String,
    _dir: tempfile::TempDir,
}

fn start_exposed(sandbox: &Sandbox, http: &str) -> Exposed {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("bot.db").display());
    let config = write_config(dir.path(), &db, sandbox, http);
    let (admin, webhook) = (
        format!("127.0.0.1:{}", common::free_port()),
        format!("127.0.0.1:{}", common::free_port()),
    );
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[x.webhook]\nlisten = \"{webhook}\"\nconsumer_secret_env = \"HD_TEST_CONSUMER_SECRET\"\n"
    ));
    std::fs::write(&config, text).unwrap();
    let log = config.with_file_name("exposed.log");
    let child = Command::new("sh")
        .args([
            "-c",
            "ulimit -n 1024 && exec \"$0\" \"$@\"",
            BIN,
            "run",
            "--config",
        ])
        .arg(&config)
        .env("HD_TEST_X_TOKEN", sandbox.token())
        .env("HD_TEST_CONSUMER_SECRET", "test-consumer-secret")
        .env("HELPDESK_ADMIN_LISTEN", &admin)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Exposed {
        bot: Bot { child, log },
        admin,
        webhook,
        _dir: dir,
    }
}

/// `GET /healthz` on a fresh connection; how long the answer took.
async fn healthz(admin: &str) -> Duration {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(5), async {
        let mut s = tokio::net::TcpStream::connect(admin).await?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await?;
        Ok::<_, std::io::Error>(out)
    })
    .await
    .expect("/healthz answered within 5 s")
    .unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    t.elapsed()
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_silent_connections_leave_healthz_and_polling_alone() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sandbox = Sandbox::start(
        parse_traffic(&faq_traffic(3, 9000), "t").unwrap(),
        SandboxConfig::default(),
        Clock::new(),
    )
    .await
    .unwrap();
    let e = start_exposed(&sandbox, "[http]\nheader_timeout_ms = 3000\n");
    wait_for("three replies", 20, || sandbox.posted().len() == 3).await;
    let quiet = healthz(&e.admin).await;
    // 300 on each endpoint: half say nothing, half send half a header.
    let mut held = Vec::new();
    for i in 0..600 {
        let to = if i % 2 == 0 { &e.admin } else { &e.webhook };
        let mut s = tokio::net::TcpStream::connect(to).await.unwrap();
        if i % 4 < 2 {
            s.write_all(b"POST /webhooks/x HTTP/1.1\r\nHost: x\r\nContent-Le")
                .await
                .unwrap();
        }
        held.push(s);
    }
    let mut worst = Duration::ZERO;
    for _ in 0..5 {
        worst = worst.max(healthz(&e.admin).await);
    }
    eprintln!(
        "/healthz: {} ms alone, at worst {} ms beside 600 silent connections",
        quiet.as_millis(),
        worst.as_millis()
    );
    assert!(worst < Duration::from_secs(1), "{worst:?}");
    // Polling and sending still have their descriptors.
    sandbox.push(parse_traffic(&faq_traffic(3, 9100), "more").unwrap());
    wait_for("three more replies beside the flood", 20, || {
        sandbox.posted().len() == 6
    })
    .await;
    // The header timeout closes them all (idle or half a header).
    let t = Instant::now();
    for s in held.iter_mut() {
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(Duration::from_secs(6), s.read(&mut buf)).await;
        assert!(
            matches!(n, Ok(Ok(_)) | Ok(Err(_))),
            "a silent connection still open after {:?}",
            t.elapsed()
        );
    }
    eprintln!(
        "all 600 closed by the server within {} ms",
        t.elapsed().as_millis()
    );
    let logs = std::fs::read_to_string(&e.bot.log).unwrap();
    assert!(!logs.contains("Too many open files"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_unsigned_or_forged_bodies_are_refused_without_filling_memory() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sandbox = Sandbox::start(Vec::new(), SandboxConfig::default(), Clock::new())
        .await
        .unwrap();
    let e = start_exposed(&sandbox, "");
    wait_for("the endpoints", 20, || {
        std::net::TcpStream::connect(&e.webhook).is_ok()
            && std::net::TcpStream::connect(&e.admin).is_ok()
    })
    .await;
    healthz(&e.admin).await;
    let pid = e.bot.child.id();
    let before = rss_kb(pid);
    let body = vec![b'{'; 2 * 1024 * 1024];
    let mut tasks = Vec::new();
    for i in 0..150 {
        let to = e.webhook.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = tokio::net::TcpStream::connect(&to).await.unwrap();
            // Unsigned with a length; unsigned chunked; forged and chunked.
            let head = match i % 3 {
                0 => format!(
                    "POST /webhooks/x HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                ),
                1 => "POST /webhooks/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    .to_owned(),
                _ => "POST /webhooks/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nx-twitter-webhooks-signature: sha256=AAAA\r\n\r\n".to_owned(),
            };
            let _ = s.write_all(head.as_bytes()).await;
            for part in body.chunks(64 * 1024) {
                let sent = if i % 3 == 0 {
                    s.write_all(part).await
                } else {
                    let mut c = format!("{:x}\r\n", part.len()).into_bytes();
                    c.extend_from_slice(part);
                    c.extend_from_slice(b"\r\n");
                    s.write_all(&c).await
                };
                if sent.is_err() {
                    break; // the server closed it: refused
                }
            }
            let mut out = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
            String::from_utf8_lossy(&out).lines().next().unwrap_or("").to_owned()
        }));
    }
    let mut statuses = std::collections::BTreeMap::new();
    for t in tasks {
        *statuses.entry(t.await.unwrap()).or_insert(0) += 1;
    }
    let after = rss_kb(pid);
    eprintln!(
        "RSS {before} kB before, {after} kB after 150 bodies of 2 MiB (+{} kB); answers: {statuses:?}",
        after.saturating_sub(before)
    );
    assert!(
        statuses
            .keys()
            .all(|s| s.is_empty() || s.contains(" 401 ") || s.contains(" 413 ")),
        "{statuses:?}"
    );
    assert!(
        after < before + 8 * 1024,
        "RSS grew from {before} kB to {after} kB"
    );
    // Still serving.
    assert!(healthz(&e.admin).await < Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn above_the_connection_cap_a_connection_is_closed_at_once_and_slots_come_back() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let shutdown = helpdesk::runtime::shutdown::Shutdown::new();
    let limits = helpdesk::runtime::config::HttpLimits {
        max_connections: 10,
        header_timeout_ms: 800,
        ..Default::default()
    };
    let app = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok\n" }));
    helpdesk::runtime::serve::serve_until(listener, app, limits, "test", &shutdown);
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The eleventh: accepted and closed at once, not left waiting.
    let t = Instant::now();
    let mut extra = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(1), extra.read(&mut buf))
        .await
        .expect("closed at once");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    eprintln!("over the cap: closed after {} ms", t.elapsed().as_millis());
    // The silent ones time out and free their slots.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(healthz(&addr).await < Duration::from_secs(1));
    drop(held);
    // A keep-alive connection left idle after its answer is closed too.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 256];
    let n = idle.read(&mut answer).await.unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
    let t = Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(3), idle.read(&mut answer))
        .await
        .expect("an idle keep-alive connection is closed");
    assert!(matches!(end, Ok(0) | Err(_)), "{end:?}");
    eprintln!(
        "idle keep-alive closed after {} ms",
        t.elapsed().as_millis()
    );
}
