//! X's pay-per-use prices as a money budget (issue #15): the whole bot
//! against the sandbox over a simulated UTC day with a low
//! `max_usd_per_day`, on both databases. The spend recorded never exceeds
//! the cap, FAQ replies wait and leave after midnight, an escalation still
//! opens its ticket, and `report --json` says what the sandbox served,
//! priced. And two ledgers racing for the last cent on one database.

use std::process::Command as Process;
use std::time::Duration;

use helpdesk::domain::money::{Ask, Grant, Usd, day_start, utc_day};
use helpdesk::platforms::x::fake::{Endpoint, parse_traffic};
use helpdesk::storage::x_spend;
use sqlx::Row;

use crate::common::{App, Db, Setup, rules_dir, spawn};

on_both_databases!(
    a_day_on_a_money_budget_never_exceeds_it,
    two_instances_cannot_both_spend_the_last_cent,
);

const RULES: &str = r#"
[[rule]]
id = "hours"
keywords = ["horaires"]
reply = "Bonjour {author}, nos horaires : https://lumio.com/contact"

[[rule]]
id = "thanks"
keywords = ["merci"]
reply = "Avec plaisir {author} !"

[[rule]]
id = "refund"
keywords = ["rembours*"]
escalate = { queue = "billing", priority = "high" }
"#;

/// The cap: two link replies (0.20 each) and the reads fit, not three.
const CAP: f64 = 0.60;

fn mention(id: &str, author: &str, text: &str, at_secs: u64) -> String {
    serde_json::json!({"id": id, "channel": "mention", "author": author, "text": text, "at": at_secs})
        .to_string()
}

/// Every day's spend and reservations, held to the cap.
async fn assert_within_cap(app: &App) {
    let cap = (CAP * 1e6) as i64;
    let days = sqlx::query("SELECT day, spent, reserved FROM x_spend_days")
        .fetch_all(app.store.pool())
        .await
        .unwrap();
    for r in days {
        let (day, spent, reserved): (String, i64, i64) = (
            r.try_get(0).unwrap(),
            r.try_get(1).unwrap(),
            r.try_get(2).unwrap(),
        );
        assert!(
            spent + reserved <= cap,
            "{day}: {spent} + {reserved} µ$ over the cap"
        );
        let charged: i64 = sqlx::query(
            "SELECT CAST(COALESCE(SUM(usd_micros), 0) AS BIGINT) FROM x_spend WHERE day = $1",
        )
        .bind(&day)
        .fetch_one(app.store.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
        assert_eq!(charged, spent, "{day}: the breakdown adds up to the day");
    }
}

/// Polls what the schedule says is due and drains the outbox, moving the
/// clock in steps of at most ten minutes, until `until`; checks the cap
/// after every step. Returns the polls made.
async fn run_until(app: &App, until: i64) -> usize {
    let c = app.bot.connectors()[0].clone();
    let mut sched = app.bot.schedule_for(c.as_ref());
    let mut polls = 0;
    while app.clock.now_ms() < until {
        if app.bot.poll_due(c.as_ref(), &mut sched).await {
            polls += 1;
        }
        app.bot.drain_once().await.unwrap();
        assert_within_cap(app).await;
        let now = app.clock.now_ms();
        let wake = sched.next_due().unwrap_or(now + 600_000).min(now + 600_000);
        app.clock
            .advance(Duration::from_millis((wake - now).clamp(1, 600_000) as u64));
    }
    polls
}

async fn a_day_on_a_money_budget_never_exceeds_it(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let mut setup = Setup::new(db, "");
    setup.rules = Some(rules_dir(dir.path(), RULES));
    setup.x.dms = false;
    setup.x.search = false;
    setup.x.max_usd_per_day = Usd::from_dollars(CAP);
    // Replies wait for the next day's budget rather than expire.
    setup.config.limits.reply_max_age_secs = 3 * 24 * 3600;
    let Some(app) = spawn(setup).await else {
        return;
    };
    // Start the simulated day at 01:00 UTC of the next day.
    let next = day_start(utc_day(app.clock.now_ms()) + 1);
    let now = app.clock.now_ms();
    app.clock
        .advance(Duration::from_millis((next + 3_600_000 - now) as u64));
    let traffic = [
        mention("9001", "ana", "@lumio vos horaires ?", 0),
        mention("9002", "bob", "@lumio horaires du dimanche ?", 0),
        mention("9003", "cid", "@lumio quels horaires ?", 0),
        mention("9004", "dan", "@lumio merci !", 2 * 3600),
        mention("9005", "eve", "@lumio merci beaucoup", 2 * 3600),
        mention("9006", "tom", "@lumio remboursez-moi", 6 * 3600),
    ]
    .join("\n");
    app.sandbox.push(parse_traffic(&traffic, "t").unwrap());
    let midnight = next + 24 * 3_600_000;
    let polls = run_until(&app, midnight - 1).await;

    // Before midnight: two link replies and both thanks left, the third
    // link reply waits in the outbox; the refund opened its ticket.
    let posted = app.sandbox.posted();
    let links = posted
        .iter()
        .filter(|p| p.text.contains("https://"))
        .count();
    assert_eq!(links, 2, "{posted:?}");
    assert_eq!(posted.len(), 4, "{posted:?}");
    assert_eq!(app.count("SELECT COUNT(*) FROM tickets").await, 1);
    let waiting = app
        .text("SELECT reason FROM outbox WHERE status = 'queued'")
        .await;
    assert!(waiting.contains("money budget"), "{waiting}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE status NOT IN ('queued', 'sent')")
            .await,
        0,
        "nothing dropped or failed"
    );

    // After midnight the next day's budget opens and the reply leaves.
    run_until(&app, midnight + 3_600_000).await;
    assert_eq!(app.sandbox.posted().len(), 5);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE status <> 'sent'")
            .await,
        0
    );

    // The report prices what the sandbox served.
    let m = app.sandbox.served(Endpoint::Mentions);
    let me = app.sandbox.served(Endpoint::Me);
    let posts: u64 = app
        .sandbox
        .posted()
        .iter()
        .map(|p| {
            if p.text.contains("https://") {
                200_000
            } else {
                15_000
            }
        })
        .sum();
    let expected = m.items * 5_000 + (m.users + me.items) * 10_000 + posts;
    let r = report_json(&app);
    let got = (r["x_cost_usd"].as_f64().unwrap() * 1e6).round() as u64;
    assert_eq!(got, expected, "{r:#}");
    assert_eq!(
        r["x_cost"]["mentions"]["post_read"]["units"].as_u64(),
        Some(m.items)
    );
    assert_eq!(
        r["x_cost"]["post_tweet"]["content_create_with_url"]["units"].as_u64(),
        Some(3)
    );
    eprintln!(
        "money budget ${CAP}/day: {polls} mention polls in the day, {} posts and {} users read, report ${}",
        m.items, m.users, r["x_cost_usd"]
    );
}

/// `helpdesk report --json` as an operator runs it.
fn report_json(app: &App) -> serde_json::Value {
    let out = Process::new(env!("CARGO_BIN_EXE_helpdesk"))
        .args(["report", "--json"])
        .env("HELPDESK_DATABASE_URL", &app.url)
        .env("HELPDESK_CONFIG", app.dir.path().join("none.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn two_instances_cannot_both_spend_the_last_cent(db: Db) {
    let Some(app) = spawn(Setup::new(db, "")).await else {
        return;
    };
    // Two more connections to the same database, as two instances have.
    let a = helpdesk::storage::Store::open(&app.url).await.unwrap();
    let b = helpdesk::storage::Store::open(&app.url).await.unwrap();
    let cap = Usd::from_dollars(1.0).unwrap();
    let price = Usd::from_dollars(0.2).unwrap();
    // A day nothing was spent on yet.
    let now = day_start(utc_day(app.clock.now_ms()) + 2) + 1000;
    let race = |store: helpdesk::storage::Store| async move {
        let mut won = 0;
        for _ in 0..10 {
            let (g, _) = x_spend::reserve(&store, Ask::one(price), cap, now)
                .await
                .unwrap();
            if matches!(g, Grant::Units(1)) {
                won += 1;
            }
        }
        won
    };
    let (wa, wb) = tokio::join!(tokio::spawn(race(a)), tokio::spawn(race(b)));
    let (wa, wb) = (wa.unwrap(), wb.unwrap());
    assert_eq!(wa + wb, 5, "five replies of 0.20 fit in 1.00: {wa} + {wb}");
    let day = x_spend::day(&app.store, utc_day(now)).await.unwrap();
    assert_eq!(day.committed(), cap);
}
