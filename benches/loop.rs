//! The bot loop's hot path on SQLite and PostgreSQL: N inbound messages through routing,
//! the store transaction (message, decision, ticket, outbox row) and the
//! cursor, as the ingest task runs it after a poll.
//!
//! `cargo bench --bench loop` (or `bench/loop.sh`). Options after `--`:
//! `--messages N` (default 20000), `--batch B` (default 100, X's page size).
//! Prints messages per second and the p50/p99 latency of a message (from
//! the start of its batch to the commit that makes it durable), for the
//! group commit the bot uses and, as the baseline measured in the same run,
//! one transaction per message. `--postgres URL` (a server URL with a
//! database the bench may connect to, e.g.
//! `postgres://postgres@127.0.0.1:5432/test`) measures PostgreSQL too, each
//! run in a database of its own, created for it and dropped after.

#[path = "common/databases.rs"]
mod databases;

use std::sync::Arc;
use std::time::Instant;

use helpdesk::application::pipeline::{Context, Pipeline};
use helpdesk::domain::Stream;
use helpdesk::domain::clock::Clock;
use helpdesk::domain::{Channel, ConversationId, Handle, MessageId, Platform, UserId};
use helpdesk::platforms::{Account, Author, Batch, Event};
use helpdesk::rules::{LoadOptions, RuleSet};
use helpdesk::runtime::config::Config;
use helpdesk::storage::Store;

const TEXTS: &[&str] = &[
    "@lumio bonjour, je n'arrive plus à me connecter à mon espace client",
    "@lumio quels sont vos horaires le week-end ?",
    "@lumio No internet since this morning in Lyon 7e, what's going on?",
    "@lumio I was charged twice this month, I want a refund",
    "@lumio toujours pas reçu mon colis, commande passée il y a 10 jours",
    "@lumio FREE airdrop for your followers!!! 1000x crypto gains",
    "@lumio comment activer ma SIM ? Reçue hier",
    "@lumio le technicien n'est jamais venu, j'ai posé ma journée pour rien !!",
    "@lumio merci pour la réactivité hier, super service",
    "@lumio does my plan work abroad? Flying to Spain on Friday",
    "@lumio bonjour, j'ai une question sur mon contrat pro",
    "@lumio where is my order?? tracking says nothing since Monday",
];

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn events(n: usize, offset: usize, now: i64) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let k = offset + i;
            // 5 000 customers, each in their own thread: a realistic spread.
            let customer = (k * 7919) % 5000;
            Event {
                mentioned: Vec::new(),
                platform: Platform::X,
                channel: Channel::Mention,
                id: MessageId::new(format!("{}", 1_000_000 + k)),
                conversation: ConversationId::new(format!("{}", 1_000_000 + k)),
                author: Author {
                    id: UserId::new(format!("{}", 2_000_000 + customer)),
                    handle: Handle::new(format!("customer{customer}")),
                    name: format!("Customer {customer}"),
                },
                text: format!("{} ({k})", TEXTS[k % TEXTS.len()]),
                at: now,
                in_reply_to: None,
                is_repost: false,
                lang: None,
            }
        })
        .collect()
}

struct Run {
    per_sec: f64,
    p50_us: f64,
    p99_us: f64,
}

/// `postgres`: the server's URL, `None` for SQLite in a temporary folder.
async fn run(n: usize, batch: usize, rules: &RuleSet, postgres: Option<&str>) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let (url, pg_name) = match postgres {
        Some(base) => {
            let (url, name) = databases::fresh_postgres(base, "helpdesk_bench").await;
            (url, Some(name))
        }
        None => (
            format!("sqlite://{}", dir.path().join("bench.db").display()),
            None,
        ),
    };
    let store = Store::open(&url).await.unwrap();
    let clock = Clock::new();
    let config = Config::default();
    let pipeline = Pipeline::new(
        &config.limits,
        &config.protection,
        &config.tickets,
        config.answer_backlog,
        clock.clone(),
    );
    let me = Account {
        id: UserId::new("1"),
        handle: Handle::new("lumio"),
    };
    let ctx = Context {
        me: &me,
        first_start: clock.now_ms(),
        platform: Platform::X,
    };
    let all = events(n, 0, clock.now_ms());
    let mut latencies = Vec::with_capacity(n);
    let start = Instant::now();
    for chunk in all.chunks(batch) {
        let b = Batch {
            cursor: Some(chunk.last().unwrap().id.as_str().to_owned()),
            events: chunk.to_vec(),
            next_poll: None,
            skipped: Vec::new(),
        };
        let t = Instant::now();
        let out = pipeline
            .ingest(&store, rules, &ctx, Stream::Mentions, &b)
            .await
            .unwrap();
        assert_eq!(out.len(), chunk.len());
        let us = t.elapsed().as_secs_f64() * 1e6;
        latencies.extend(std::iter::repeat_n(us, chunk.len()));
    }
    let secs = start.elapsed().as_secs_f64();
    store.pool().close().await;
    if let (Some(base), Some(name)) = (postgres, pg_name) {
        databases::drop_postgres(base, &name).await;
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    Run {
        per_sec: n as f64 / secs,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` too, with no
    // wish to wait: keep that run tiny.
    let quick = std::env::args().any(|a| a == "--test");
    let n = if quick {
        200
    } else {
        arg("--messages", 20_000)
    };
    let batch = arg("--batch", 100);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let load = |dir: std::path::PathBuf| {
        Arc::new(RuleSet::load_dir(&dir, &LoadOptions::default()).unwrap())
    };
    // The starter rules answer from language tables, so each message's
    // language is read; the same rules with one text per answer (as
    // recorded for the bulk tests) read none: the cost of reading it.
    let rules = load(root.join("rules"));
    let one_text = load(root.join("tests/it/data/bulk_rules"));
    let rt = if std::env::args().any(|a| a == "--current-thread") {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    }
    .enable_all()
    .build()
    .unwrap();
    if std::env::args().any(|a| a == "--ping") {
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(&format!("sqlite://{}", dir.path().join("p.db").display()))
                .await
                .unwrap();
            let mut tx = store.begin().await.unwrap();
            let t = Instant::now();
            for _ in 0..20_000 {
                sqlx::query("SELECT 1").execute(&mut *tx).await.unwrap();
            }
            println!(
                "SELECT 1 round trip: {:.1} us",
                t.elapsed().as_secs_f64() * 1e6 / 20_000.0
            );
        });
        return;
    }
    let postgres = std::env::args()
        .skip_while(|a| a != "--postgres")
        .nth(1)
        .filter(|u| !u.is_empty());
    let mut backends = vec![("SQLite", None)];
    if let Some(url) = postgres.as_deref() {
        backends.push(("PostgreSQL", Some(url)));
    }
    println!("bot loop: route + one store transaction per batch + outbox enqueue");
    println!(
        "messages: {n}, batch: {batch}, rules: {}",
        rules.rules().len()
    );
    println!(
        "| database | mode | messages/s | p50 latency | p99 latency |\n|---|---|---:|---:|---:|"
    );
    for (label, url) in backends {
        let grouped = rt.block_on(run(n, batch, &rules, url));
        let single = rt.block_on(run((n / 4).max(100), 1, &rules, url));
        println!(
            "| {label} | group commit ({batch} per transaction) | {:.0} | {:.2} ms | {:.2} ms |\n| {label} | baseline: one transaction per message | {:.0} | {:.2} ms | {:.2} ms |",
            grouped.per_sec,
            grouped.p50_us / 1000.0,
            grouped.p99_us / 1000.0,
            single.per_sec,
            single.p50_us / 1000.0,
            single.p99_us / 1000.0
        );
        println!(
            "{label}: group commit {:.1}x the baseline",
            grouped.per_sec / single.per_sec
        );
        {
            let plain = rt.block_on(run(n, batch, &one_text, url));
            println!(
                "{label}: group commit, rules with one text per answer (no language read): {:.0} messages/s; reading each language costs {:.0} % of the loop's throughput",
                plain.per_sec,
                (1.0 - grouped.per_sec / plain.per_sec) * 100.0
            );
        }
    }
}
