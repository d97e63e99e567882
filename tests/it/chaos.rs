//! The chaos suite: `helpdesk run` as a process against the X sandbox behind
//! a fault proxy that fails 10–20 % of all calls in every way it knows,
//! while the process is killed with SIGKILL at random instants and started
//! again at once. At the end nothing may be lost, nothing answered twice,
//! nothing left queued, and no reply may mention anyone but its customer.
//!
//! Short version (default `cargo test`): 300 messages, 100 customers, 8
//! kills. Long version (ignored):
//!
//! ```text
//! HELPDESK_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo test --release --test it -- --ignored --nocapture --test-threads=1 chaos::
//! ```
//!
//! RELIABILITY.md says what is counted and the figures measured.
//!
//! Sizes and seed can be overridden: `CHAOS_MESSAGES`, `CHAOS_CUSTOMERS`,
//! `CHAOS_KILLS`, `CHAOS_SECS` (arrival span), `CHAOS_RATE` (fault rate),
//! `CHAOS_SEED`.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use helpdesk::domain::clock::Clock;
use helpdesk::platforms::x::fake::{Sandbox, SandboxConfig, Window, parse_traffic};
use helpdesk::storage::Store;
use rand::{Rng, SeedableRng};
use sqlx::Row;

use crate::common::fault_proxy::{Fault, FaultProxy};
use crate::common::{self, Db};

const BIN: &str = env!("CARGO_BIN_EXE_helpdesk");

on_both_databases!(chaos_short);

mod long {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "long: cargo test --release --test it -- --ignored --nocapture chaos::"]
    async fn sqlite() {
        super::chaos_long(super::common::Db::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "long: cargo test --release --test it -- --ignored --nocapture chaos::"]
    async fn postgres() {
        super::chaos_long(super::common::Db::Postgres).await;
    }
}

/// How big a run is.
#[derive(Debug, Clone, Copy)]
struct Size {
    messages: usize,
    customers: usize,
    kills: usize,
    /// Arrivals are spread over this many seconds.
    secs: f64,
    /// Share of calls that get a fault.
    rate: f64,
    seed: u64,
}

impl Size {
    /// `base`, with any `CHAOS_*` variable applied.
    fn from_env(base: Size) -> Size {
        fn var<T: std::str::FromStr>(k: &str, d: T) -> T {
            std::env::var(k)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(d)
        }
        Size {
            messages: var("CHAOS_MESSAGES", base.messages),
            customers: var("CHAOS_CUSTOMERS", base.customers),
            kills: var("CHAOS_KILLS", base.kills),
            secs: var("CHAOS_SECS", base.secs),
            rate: var("CHAOS_RATE", base.rate),
            seed: var("CHAOS_SEED", base.seed),
        }
    }
}

async fn chaos_short(db: Db) {
    let size = Size::from_env(Size {
        messages: 300,
        customers: 100,
        kills: 8,
        secs: 12.0,
        rate: 0.15,
        seed: 12,
    });
    if let Some(r) = run(db, size).await {
        r.assert_clean();
    }
}

async fn chaos_long(db: Db) {
    let size = Size::from_env(Size {
        messages: 5000,
        customers: 1000,
        kills: 100,
        secs: 150.0,
        rate: 0.15,
        seed: 1212,
    });
    if let Some(r) = run(db, size).await {
        r.assert_clean();
    }
}

/// What customers write. The first [`FAQ`] texts hit FAQ rules that reply;
/// the others escalate (a customer with an open ticket gets no more FAQ
/// replies) or are ignored, so they are drawn less often.
const FAQ: usize = 9;
const TEXTS: &[&str] = &[
    // FAQ rules that reply (most use {author}).
    "code wifi ?",
    "quels sont vos horaires ?",
    "je n'arrive plus à me connecter, mot de passe perdu",
    "toujours pas reçu mon colis",
    "comment activer ma carte sim ?",
    "mon forfait marche à l'étranger ?",
    "No internet since this morning",
    "merci pour votre aide !",
    "où trouver ma facture de mars ?",
    // Escalations, most with an acknowledgement.
    "je veux être remboursé",
    "le technicien n'est jamais venu",
    "débit très lent sur la fibre",
    "my lawyer will hear about this",
    "bonjour, une question sur mon contrat",
    // Ignored.
    "FREE bitcoin airdrop click now",
    "vous recrutez ? je cherche un stage",
];

struct Report {
    /// The test's name, to run it again.
    test: String,
    db: Db,
    size: Size,
    seed: u64,
    lost: Vec<String>,
    twice: Vec<String>,
    queued: Vec<String>,
    foreign: Vec<String>,
    needs_review: Vec<String>,
    failed: Vec<String>,
    expired: usize,
    suppressed: HashMap<String, usize>,
    decisions: std::collections::BTreeMap<String, usize>,
    replies_sent: usize,
    posted: usize,
    faults: Vec<(Fault, usize)>,
    requests: usize,
    kills: usize,
    /// Set when the last process did not exit cleanly on SIGTERM.
    exit: Option<String>,
    /// Processes that exited on their own (not killed, not told to stop).
    exits: Vec<String>,
    wall: Duration,
    log: std::path::PathBuf,
}

impl Report {
    fn line(&self) -> String {
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|(f, n)| format!("{f:?}={n}"))
            .collect();
        format!(
            "chaos {:?} seed={}: messages={} customers={} kills={} exits_on_their_own={} requests={} faults[{}] posted={} replies_sent={} lost={} twice={} queued={} foreign_mentions={} needs_review={} failed={} expired={} decisions={:?} suppressed={:?} wall={:.1}s",
            self.db,
            self.seed,
            self.size.messages,
            self.size.customers,
            self.kills,
            self.exits.len(),
            self.requests,
            faults.join(" "),
            self.posted,
            self.replies_sent,
            self.lost.len(),
            self.twice.len(),
            self.queued.len(),
            self.foreign.len(),
            self.needs_review.len(),
            self.failed.len(),
            self.expired,
            self.decisions,
            self.suppressed,
            self.wall.as_secs_f64()
        )
    }

    fn bad(&self) -> bool {
        !self.lost.is_empty()
            || !self.twice.is_empty()
            || !self.queued.is_empty()
            || !self.foreign.is_empty()
            || self.exit.is_some()
            || !self.exits.is_empty()
    }

    fn assert_clean(&self) {
        let bad = self.bad();
        let sample = |v: &[String]| v.iter().take(10).cloned().collect::<Vec<_>>().join("\n  ");
        assert!(
            !bad,
            "{}\n{}\nexits on their own: {:?} (the bot log says why)\nreproduce: {}CHAOS_SEED={} CHAOS_MESSAGES={} CHAOS_CUSTOMERS={} CHAOS_KILLS={} CHAOS_SECS={} CHAOS_RATE={} cargo test --test it {} -- --include-ignored --nocapture (kill instants are wall-clock, so the interleaving differs from run to run)\nbot log: {}\nlost:\n  {}\ntwice:\n  {}\nqueued:\n  {}\nforeign mentions:\n  {}\nneeds_review:\n  {}\nfailed:\n  {}",
            self.line(),
            self.exit.as_deref().unwrap_or("clean exit on SIGTERM"),
            self.exits,
            if self.db == Db::Postgres {
                "HELPDESK_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test "
            } else {
                ""
            },
            self.size.seed,
            self.size.messages,
            self.size.customers,
            self.size.kills,
            self.size.secs,
            self.size.rate,
            self.test,
            self.log.display(),
            sample(&self.lost),
            sample(&self.twice),
            sample(&self.queued),
            sample(&self.foreign),
            sample(&self.needs_review),
            sample(&self.failed),
        );
    }
}

/// One traffic message, as the test remembers it.
struct Sent {
    id: String,
    handle: String,
}

/// The `@handles` in a text (lower case).
fn mentions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b: Vec<char> = text.chars().collect();
    for i in 0..b.len() {
        if b[i] != '@' || (i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_')) {
            continue;
        }
        let h: String = b[i + 1..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
            .collect();
        if !h.is_empty() {
            out.push(h.to_ascii_lowercase());
        }
    }
    out
}

async fn run(db: Db, size: Size) -> Option<Report> {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let url = common::fresh_db(db, dir.path()).await?;
    // The seed depends on the database too, so the two runs differ.
    let seed = size.seed ^ if db == Db::Postgres { 0xbeef } else { 0 };
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    // Traffic: every customer writes at least once; ids grow with arrival.
    let mut traffic = Vec::new();
    let mut sent: Vec<Sent> = Vec::new();
    for i in 0..size.messages {
        let c = if i < size.customers {
            i
        } else {
            rng.random_range(0..size.customers)
        };
        let handle = format!("cust{c}");
        let dm = rng.random_bool(0.4);
        let text = if rng.random_bool(0.85) {
            TEXTS[rng.random_range(0..FAQ)]
        } else {
            TEXTS[rng.random_range(FAQ..TEXTS.len())]
        };
        let text = if dm {
            text.to_owned()
        } else {
            format!("@lumio {text}")
        };
        let id = (1_000_000 + i).to_string();
        let at = size.secs * i as f64 / size.messages as f64;
        traffic.push(
            serde_json::json!({
                "id": id,
                "channel": if dm { "dm" } else { "mention" },
                "author": handle,
                "text": text,
                "at": at,
            })
            .to_string(),
        );
        sent.push(Sent { id, handle });
    }

    let clock = Clock::new();
    let mut sandbox_config = SandboxConfig::default();
    for w in sandbox_config.limits.values_mut() {
        *w = Window {
            limit: 1_000_000,
            window: Duration::from_secs(900),
        };
    }
    let sandbox = Sandbox::start(
        parse_traffic(&traffic.join("\n"), "chaos").unwrap(),
        sandbox_config,
        clock.clone(),
    )
    .await
    .unwrap();
    let proxy = FaultProxy::start(&sandbox.base_url(), seed).await;
    proxy.random(size.rate, &[]);

    // The database exists (and is migrated) before the first start, so the
    // test can read it while the bot runs.
    let store = Store::open(&url).await.unwrap();

    let config = dir.path().join("helpdesk.toml");
    std::fs::write(
        &config,
        format!(
            r#"database_url = "{url}"
rules = "{rules}"
answer_backlog = true

[limits]
global = {{ replies = 1000000, per_secs = 900 }}
per_customer = {{ replies = 100000, per_secs = 3600 }}
lease_secs = 2
max_attempts = 8
reply_max_age_secs = 3600

[x]
base_url = "{base}"
access_token_env = "HD_TEST_X_TOKEN"
min_poll_interval_ms = 200
poll_interval_ms = 500
dms = true
"#,
            rules = common::repo_rules().display(),
            base = proxy.base_url(),
        ),
    )
    .unwrap();
    let log_path = dir.path().join("run.log");
    let start = || -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(&config)
            .env("HD_TEST_X_TOKEN", sandbox.token())
            .env("RUST_LOG", "info")
            .env("HELPDESK_ADMIN_LISTEN", "127.0.0.1:0")
            .stderr(log)
            .spawn()
            .unwrap()
    };

    // Kill instants, spread over the arrivals and a little after.
    let span = size.secs + 3.0;
    let mut kills: Vec<f64> = (0..size.kills)
        .map(|_| rng.random_range(0.2..span))
        .collect();
    kills.sort_by(|a, b| a.partial_cmp(b).unwrap());

    let t0 = Instant::now();
    let mut child = start();
    let mut killed = 0;
    // A process that exits on its own is started again (as systemd's
    // Restart= would), and counted: that is a failure of its own.
    let mut exits: Vec<String> = Vec::new();
    let restart_if_dead = |child: &mut Child, exits: &mut Vec<String>| {
        if let Some(status) = child.try_wait().unwrap() {
            exits.push(format!("{status} at {:.1}s", t0.elapsed().as_secs_f64()));
            *child = start();
        }
    };
    for at in &kills {
        let due = t0 + Duration::from_secs_f64(*at);
        while let Some(wait) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait.min(Duration::from_millis(100))).await;
            restart_if_dead(&mut child, &mut exits);
        }
        child.kill().unwrap();
        child.wait().unwrap();
        killed += 1;
        child = start();
    }

    // All traffic visible; run until quiet. Faults go on meanwhile, so a
    // reply in doubt may need two or three settling cycles (a look-up is
    // believed 30 s after the attempt, a resend can land in doubt again):
    // the deadline leaves room for that on a loaded machine, and a run
    // that is quiet sooner stops sooner.
    let quiet_deadline = Instant::now() + Duration::from_secs((150.0 + size.secs) as u64);
    loop {
        let visible = sandbox.pending() == 0;
        let recorded = count(&store, "SELECT COUNT(*) FROM messages").await;
        let busy = count(
            &store,
            "SELECT COUNT(*) FROM outbox WHERE status IN ('queued', 'sending')",
        )
        .await;
        if visible && recorded as usize >= size.messages && busy == 0 {
            break;
        }
        restart_if_dead(&mut child, &mut exits);
        if Instant::now() > quiet_deadline {
            eprintln!("not quiet: {recorded} recorded, {busy} queued or sending");
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    common::terminate(&child);
    let status = child.wait().unwrap();
    let exit = (!status.success()).then(|| format!("exit on SIGTERM: {status}"));

    // Count.
    let posted = sandbox.posted();
    let messages: HashMap<String, (i64, String, String, String, String)> = sqlx::query(
        "SELECT platform_message_id, id, author_id, action, auto_reply, COALESCE(reason, '') FROM messages",
    )
    .fetch_all(store.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            r.try_get::<String, _>(0).unwrap(),
            (
                r.try_get::<i64, _>(1).unwrap(),
                r.try_get::<String, _>(2).unwrap(),
                r.try_get::<String, _>(3).unwrap(),
                r.try_get::<String, _>(4).unwrap(),
                r.try_get::<String, _>(5).unwrap(),
            ),
        )
    })
    .collect();
    // (message_id, status, sent_id, reason, kind, customer_handle, text)
    type Row7 = (Option<i64>, String, String, String, String, String, String);
    let outbox: Vec<Row7> = sqlx::query(
        "SELECT message_id, status, COALESCE(sent_id, ''), COALESCE(reason, ''), kind, customer_handle, text FROM outbox ORDER BY id",
    )
    .fetch_all(store.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            r.try_get::<Option<i64>, _>(0).unwrap(),
            r.try_get::<String, _>(1).unwrap(),
            r.try_get::<String, _>(2).unwrap(),
            r.try_get::<String, _>(3).unwrap(),
            r.try_get::<String, _>(4).unwrap(),
            r.try_get::<String, _>(5).unwrap(),
            r.try_get::<String, _>(6).unwrap(),
        )
    })
    .collect();
    let mut by_message: HashMap<i64, Vec<usize>> = HashMap::new();
    for (i, o) in outbox.iter().enumerate() {
        if let Some(m) = o.0 {
            by_message.entry(m).or_default().push(i);
        }
    }
    let posted_ids: HashSet<&str> = posted.iter().map(|p| p.id.as_str()).collect();

    let mut lost = Vec::new();
    let mut suppressed: HashMap<String, usize> = HashMap::new();
    let mut decisions = std::collections::BTreeMap::new();
    let mut handle_of_user: HashMap<String, String> = HashMap::new();
    let handle_of_message: HashMap<&str, &str> = sent
        .iter()
        .map(|s| (s.id.as_str(), s.handle.as_str()))
        .collect();
    for s in &sent {
        let Some((mid, author_id, action, auto_reply, reason)) = messages.get(&s.id) else {
            lost.push(format!("{} (@{}): never recorded", s.id, s.handle));
            continue;
        };
        handle_of_user.insert(author_id.clone(), s.handle.clone());
        *decisions
            .entry(format!("{action}/{auto_reply}"))
            .or_insert(0usize) += 1;
        match auto_reply.as_str() {
            "queued" => {
                let rows = by_message.get(mid).cloned().unwrap_or_default();
                let ok = rows.iter().any(|&i| {
                    let (_, st, sid, ..) = &outbox[i];
                    (st == "sent" && posted_ids.contains(sid.as_str()))
                        // Settled as sent by a "duplicate" answer, with no
                        // id: the post must be there all the same.
                        || (st == "sent"
                            && sid.is_empty()
                            && posted.iter().any(|p| {
                                if p.kind == "tweet" {
                                    p.target == s.id
                                } else {
                                    p.target == *author_id && p.text == outbox[i].6
                                }
                            }))
                        || st == "needs_review"
                        || st == "failed"
                        || st == "queued"
                        || st == "sending"
                });
                if !ok {
                    let what: Vec<String> = rows
                        .iter()
                        .map(|&i| format!("{}:{}:{}", outbox[i].1, outbox[i].2, outbox[i].3))
                        .collect();
                    lost.push(format!(
                        "{} (@{}): a reply was decided, outbox {:?}",
                        s.id, s.handle, what
                    ));
                }
            }
            "suppressed" => {
                let key = reason.split(':').next().unwrap_or("").to_owned();
                *suppressed.entry(key).or_default() += 1;
            }
            _ => {}
        }
    }

    let mut twice = Vec::new();
    let mut per_target: HashMap<(&str, &str), Vec<&str>> = HashMap::new();
    for p in &posted {
        let key = if p.kind == "tweet" {
            (p.target.as_str(), "")
        } else {
            (p.target.as_str(), p.text.as_str())
        };
        per_target.entry(key).or_default().push(p.id.as_str());
    }
    for ((target, text), ids) in &per_target {
        if ids.len() > 1 {
            twice.push(format!("{} posts to {target} {text:?}: {ids:?}", ids.len()));
        }
    }
    for (m, rows) in &by_message {
        let n = rows.iter().filter(|&&i| outbox[i].1 == "sent").count();
        if n > 1 {
            twice.push(format!("message row {m}: {n} sent outbox rows"));
        }
    }

    let mut foreign = Vec::new();
    for p in &posted {
        let customer = if p.kind == "tweet" {
            handle_of_message
                .get(p.target.as_str())
                .map(|h| h.to_string())
        } else {
            handle_of_user.get(&p.target).cloned()
        };
        let Some(customer) = customer else {
            foreign.push(format!(
                "post {} to unknown {}: {:?}",
                p.id, p.target, p.text
            ));
            continue;
        };
        for h in mentions(&p.text) {
            if h != customer.to_ascii_lowercase() {
                foreign.push(format!(
                    "post {} for @{customer} mentions @{h}: {:?}",
                    p.id, p.text
                ));
            }
        }
    }

    let pick = |st: &str| -> Vec<String> {
        outbox
            .iter()
            .filter(|o| o.1 == st)
            .map(|o| format!("message row {:?} ({} to @{}): {}", o.0, o.4, o.5, o.3))
            .collect()
    };
    let queued: Vec<String> = [pick("queued"), pick("sending")].concat();
    let needs_review = pick("needs_review");
    let failed = pick("failed");
    let expired = pick("expired").len();
    let replies_sent = outbox.iter().filter(|o| o.1 == "sent").count();

    let log = proxy.log();
    let faults: Vec<(Fault, usize)> = Fault::MIX
        .iter()
        .map(|f| (*f, log.iter().filter(|(_, _, g)| g == f).count()))
        .collect();

    let report = Report {
        test: std::thread::current().name().unwrap_or("chaos").to_owned(),
        db,
        size,
        seed,
        lost,
        twice,
        queued,
        foreign,
        needs_review,
        failed,
        expired,
        suppressed,
        decisions,
        replies_sent,
        posted: posted.len(),
        faults,
        requests: log.len(),
        kills: killed,
        exit,
        exits,
        wall: started.elapsed(),
        log: dir.path().join("run.log"),
    };
    println!("{}", report.line());
    eprintln!("{}", report.line());
    if report.bad() {
        // Keep the folder (log, SQLite file) for diagnosis.
        let kept = dir.keep();
        eprintln!("kept {}", kept.display());
    }
    Some(report)
}

async fn count(store: &Store, sql: &'static str) -> i64 {
    sqlx::query(sql)
        .fetch_one(store.pool())
        .await
        .unwrap()
        .try_get::<i64, _>(0)
        .unwrap()
}
