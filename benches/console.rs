//! The agents' console rendered on the server, at 100 000 tickets: each
//! page through the console's own router (session check, queries, template),
//! as a signed-in agent's browser asks for it, without the network.
//!
//! `cargo bench --bench console` (or `bench/console.sh`, which also
//! prints the machine). Options after
//! `--`: `--tickets N` (default 100000), `--requests R` (default 200 a page),
//! `--postgres URL` to measure PostgreSQL too (a database of its own,
//! created and dropped), `--keep DIR` to leave the SQLite databases in
//! DIR. Prints, per page, the median and 95th percentile time and the
//! page's size, for the large database and, as the baseline
//! measured in the same run, for one of 100 tickets.
//!
//! The large database: N tickets, one in four being worked (new, open,
//! pending) in eight queues, the rest closed; the agent has opened the
//! even-numbered ones being worked (all new and pending, no open: 15 000 of
//! 25 000 at 100 000); the ticket shown has 40 messages and 10 events.

#[path = "common/databases.rs"]
mod databases;

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use axum::body::Body;
use axum::http::Request;
use helpdesk::application::{agents, console as app_console};
use helpdesk::domain::AgentName;
use helpdesk::domain::clock::Clock;
use helpdesk::domain::secret::Secret;
use helpdesk::rules::{LoadOptions, RuleSet};
use helpdesk::runtime::config::Config;
use helpdesk::runtime::console::{Console, router};
use helpdesk::storage::console::{self as store_console, InboxQuery};
use helpdesk::storage::{Backend, Store};
use tower::ServiceExt as _;

/// The pages measured: the inbox as it opens, filtered, deep in its pages,
/// its live part, and the busiest ticket.
fn pages(ticket: i64, tickets: i64) -> Vec<(&'static str, String)> {
    // Deep in the list: page 400 of the 500 at 100 000 tickets.
    let last_page = (tickets / 5 / 50).max(1);
    vec![
        ("inbox", "/".into()),
        ("inbox, one queue", "/?queue=q3".into()),
        ("inbox, overdue", "/?overdue=1".into()),
        ("inbox, deep page", format!("/?page={last_page}")),
        ("inbox, live part", "/inbox/live".into()),
        ("ticket", format!("/tickets/T-{ticket}")),
    ]
}

/// Fills the database: `n` tickets, the busy one's conversation, the
/// agent's read marks; returns the busy ticket's id.
async fn seed(store: &Store, n: i64, now: i64) -> i64 {
    let pool = store.pool();
    // One statement for both databases: a recursive counter.
    sqlx::query(
        "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < $1) \
         INSERT INTO tickets (queue, priority, status, platform, customer_id, customer_handle, \
                              conversation_id, rule_id, created_at, updated_at, first_response_due, \
                              first_response_at, signals) \
         SELECT 'q' || (i % 8), \
                CASE i % 4 WHEN 0 THEN 'urgent' WHEN 1 THEN 'high' WHEN 2 THEN 'normal' ELSE 'low' END, \
                CASE i % 10 WHEN 0 THEN 'new' WHEN 1 THEN 'open' ELSE CASE i % 20 WHEN 2 THEN 'pending' ELSE 'closed' END END, \
                'x', 'c' || i, 'customer' || i, 'conv' || i, 'refund', \
                $2 - ($1 - i) * 60000, $2 - ($1 - i) * 60000, $2 - ($1 - i) * 60000 + 14400000, \
                CASE WHEN i % 3 = 0 THEN $2 - ($1 - i) * 60000 + 600000 END, \
                CASE WHEN i % 17 = 0 THEN 'churn legal' END \
         FROM k",
    )
    .bind(n)
    .bind(now)
    .execute(pool)
    .await
    .unwrap();
    let busy: i64 = sqlx::Row::get(
        &sqlx::query("SELECT MAX(id) FROM tickets WHERE status = 'open'")
            .fetch_one(pool)
            .await
            .unwrap(),
        0,
    );
    for j in 0..50i64 {
        let (direction, body) = match j {
            0..40 if j % 2 == 0 => (
                "in",
                format!(
                    "Message {j} from the customer: still no refund, charged twice on my last bill, please look into it today"
                ),
            ),
            0..40 => (
                "out",
                format!(
                    "Reply {j}: we are on it, the billing team checks your account and writes back within the day"
                ),
            ),
            _ => ("event", format!("event {j}")),
        };
        sqlx::query(
            "INSERT INTO ticket_messages (ticket_id, direction, body, at) VALUES ($1, $2, $3, $4)",
        )
        .bind(busy)
        .bind(direction)
        .bind(body)
        .bind(now - (50 - j) * 60_000)
        .execute(pool)
        .await
        .unwrap();
    }
    sqlx::query(
        "INSERT INTO console_reads (agent, ticket_id, seen_at, queue, status) \
         SELECT 'alice', id, updated_at, queue, status FROM tickets \
         WHERE status <> 'closed' AND id % 2 = 0",
    )
    .execute(pool)
    .await
    .unwrap();
    // PostgreSQL's planner works from statistics, and its index-only scans
    // from the visibility map, both of which autovacuum keeps on a database
    // that grew over months; this one was filled in a second. SQLite is
    // told its indexes (storage::dialect::indexed_by).
    if store.backend() == Backend::Postgres {
        sqlx::query("VACUUM ANALYZE").execute(pool).await.unwrap();
    }
    busy
}

struct Measure {
    page: &'static str,
    p50_ms: f64,
    p95_ms: f64,
    bytes: usize,
}

impl Measure {
    /// The median and 95th percentile of `times` (milliseconds).
    fn of(page: &'static str, mut times: Vec<f64>, bytes: usize) -> Measure {
        times.sort_by(|a, b| a.total_cmp(b));
        Measure {
            page,
            p50_ms: times[times.len() / 2],
            p95_ms: times[(times.len() * 95 / 100).min(times.len() - 1)],
            bytes,
        }
    }
}

async fn measure(url: &str, tickets: i64, requests: usize) -> Vec<Measure> {
    let store = Store::open(url).await.unwrap();
    let clock = Clock::new();
    let now = clock.now_ms();
    let busy = seed(&store, tickets, now).await;
    let alice = AgentName::parse("alice").unwrap();
    agents::add(&store, &alice, &Secret::new("benchmark password"), now)
        .await
        .unwrap();
    let config = Config::default();
    let session = app_console::open(&store, "alice", config.console.sessions(), now)
        .await
        .unwrap();
    let rules = RuleSet::load_dir(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/rules")),
        &LoadOptions::default(),
    )
    .unwrap();
    let console = Arc::new(Console::new(
        &config,
        store.clone(),
        Arc::new(ArcSwap::from_pointee(rules)),
        clock,
    ));
    let app = router(console);
    let cookie = format!("helpdesk_session={}", session.token.expose());
    let mut out = Vec::new();
    for (name, path) in pages(busy, tickets) {
        let mut times = Vec::with_capacity(requests);
        let mut bytes = 0;
        for i in 0..requests + 20 {
            let req = Request::get(&path)
                .header("cookie", &cookie)
                .body(Body::empty())
                .unwrap();
            let t = Instant::now();
            let resp = app.clone().oneshot(req).await.unwrap();
            assert!(resp.status().is_success(), "{path}: {}", resp.status());
            let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap();
            let ms = t.elapsed().as_secs_f64() * 1e3;
            bytes = body.len();
            if i >= 20 {
                times.push(ms);
            }
        }
        out.push(Measure::of(name, times, bytes));
    }
    // The store's reads alone, without the router and the template: where
    // a page's time goes.
    let now = Clock::new().now_ms();
    let plain = InboxQuery {
        agent: "alice",
        now,
        limit: 50,
        ..InboxQuery::default()
    };
    out.push(
        time("store: inbox rows", requests, async || {
            store_console::inbox(&store, &plain).await.unwrap();
        })
        .await,
    );
    out.push(
        time("store: queue counts", requests, async || {
            store_console::queue_counts(&store, "alice", now)
                .await
                .unwrap();
        })
        .await,
    );
    store.pool().close().await;
    out
}

/// The median and 95th percentile of `requests` runs of `f`, after 20
/// unmeasured ones.
async fn time(page: &'static str, requests: usize, f: impl AsyncFn()) -> Measure {
    let mut times = Vec::with_capacity(requests);
    for i in 0..requests + 20 {
        let t = Instant::now();
        f().await;
        if i >= 20 {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    Measure::of(page, times, 0)
}

fn arg(name: &str) -> Option<String> {
    std::env::args().skip_while(|a| a != name).nth(1)
}

async fn compare(
    label: &str,
    url_for: impl AsyncFn(i64) -> (String, Option<String>),
    tickets: i64,
    requests: usize,
    postgres: Option<&str>,
) {
    let (small_url, small_pg) = url_for(100).await;
    let small = measure(&small_url, 100, requests).await;
    let (large_url, large_pg) = url_for(tickets).await;
    let large = measure(&large_url, tickets, requests).await;
    if let Some(base) = postgres {
        for name in [small_pg, large_pg].into_iter().flatten() {
            databases::drop_postgres(base, &name).await;
        }
    }
    println!(
        "\n{label}: {tickets} tickets against 100 (the baseline, same run), {requests} requests a page"
    );
    println!(
        "{:<18} {:>10} {:>10} {:>10} {:>12} {:>9}",
        "page", "p50 ms", "p95 ms", "base p50", "ratio p50", "KB"
    );
    for (l, s) in large.iter().zip(&small) {
        println!(
            "{:<18} {:>10.2} {:>10.2} {:>10.2} {:>11.1}× {:>9.1}",
            l.page,
            l.p50_ms,
            l.p95_ms,
            s.p50_ms,
            l.p50_ms / s.p50_ms,
            l.bytes as f64 / 1024.0
        );
    }
}

fn main() {
    let tickets: i64 = arg("--tickets").map_or(100_000, |v| v.parse().unwrap());
    let requests: usize = arg("--requests").map_or(200, |v| v.parse().unwrap());
    let postgres = arg("--postgres").filter(|u| !u.is_empty());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // `--keep DIR` leaves the SQLite databases there, to look into.
        let dir = tempfile::tempdir().unwrap();
        let at = arg("--keep").map_or_else(|| dir.path().to_owned(), Into::into);
        let sqlite = async |n: i64| {
            let db = at.join(format!("console-{n}.db"));
            let _ = std::fs::remove_file(&db);
            (format!("sqlite://{}", db.display()), None)
        };
        compare("SQLite", sqlite, tickets, requests, None).await;
        if let Some(base) = postgres.as_deref() {
            let pg = async |_n: i64| {
                let (url, name) = databases::fresh_postgres(base, "helpdesk_console_bench").await;
                (url, Some(name))
            };
            compare("PostgreSQL", pg, tickets, requests, Some(base)).await;
        }
    });
}
