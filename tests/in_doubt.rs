//! Sends whose outcome is unknown, against the sandbox X API behind a
//! fault proxy that lets the post happen and then loses or spoils the
//! answer: each customer gets exactly one copy, on SQLite and PostgreSQL.
//! Also: a page with an item that cannot be decoded does not stop its
//! stream, and messages of one customer are handled in the order written.

mod common;

use std::time::Duration;

use common::fault_proxy::Fault;
use common::{App, Db, Setup, line};
use sqlx::Row;

on_both_databases!(
    a_public_reply_in_doubt_is_settled_not_resent,
    a_dm_in_doubt_is_settled_not_resent,
    a_failure_before_acting_is_resent_once,
    same_text_for_two_customers_in_doubt_both_answered_once,
    stop_then_a_question_in_the_same_second_is_not_answered,
);

/// Polls, drains, and moves time past every backoff until the outbox is
/// empty of queued rows.
async fn settle_all(app: &App) {
    for _ in 0..12 {
        app.settle().await;
        if app
            .count("SELECT COUNT(*) FROM outbox WHERE status IN ('queued', 'sending')")
            .await
            == 0
        {
            return;
        }
        app.clock.advance(Duration::from_secs(16 * 60));
    }
    panic!("replies still queued after settling");
}

const CUT_AFTER_ACTING: [Fault; 4] = [
    Fault::CutBeforeHeaders,
    Fault::CutMidBody,
    Fault::BadGatewayAfterActing,
    Fault::GarbageAfterActing,
];

/// One customer per fault, each fault hitting the first attempt of their
/// reply; returns the app, settled.
async fn one_customer_per_fault(db: Db, channel: &str, path: &str) -> Option<App> {
    let traffic: Vec<String> = CUT_AFTER_ACTING
        .iter()
        .enumerate()
        .map(|(i, _)| {
            let text = if channel == "dm" {
                "code wifi ?"
            } else {
                "@lumio code wifi ?"
            };
            line(&format!("{}", 4100 + i), channel, &format!("cust{i}"), text)
        })
        .collect();
    let mut setup = Setup::new(db, &traffic.join("\n"));
    setup.proxy_seed = Some(7);
    let app = common::spawn(setup).await?;
    let proxy = app.proxy.clone().unwrap();
    proxy.script("POST", path, &CUT_AFTER_ACTING);
    settle_all(&app).await;
    Some(app)
}

fn assert_once_each(app: &App, kind: &str, targets: usize) {
    let posted = app.sandbox.posted();
    let mine: Vec<_> = posted.iter().filter(|p| p.kind == kind).collect();
    let mut by_target = std::collections::HashMap::<&str, usize>::new();
    for p in &mine {
        *by_target.entry(p.target.as_str()).or_default() += 1;
    }
    assert_eq!(
        by_target.len(),
        targets,
        "every customer answered: {mine:?}"
    );
    assert!(
        by_target.values().all(|n| *n == 1),
        "nobody answered twice: {mine:?}"
    );
    assert!(
        mine.iter()
            .all(|p| !p.text.contains("(#") && !p.text.contains("(T-")),
        "never varied: {mine:?}"
    );
}

async fn statuses(app: &App) -> Vec<String> {
    app.outbox().await.into_iter().map(|(s, _)| s).collect()
}

async fn a_public_reply_in_doubt_is_settled_not_resent(db: Db) {
    let Some(app) = one_customer_per_fault(db, "mention", "/2/tweets").await else {
        return;
    };
    assert_once_each(&app, "tweet", CUT_AFTER_ACTING.len());
    assert!(statuses(&app).await.iter().all(|s| s == "sent"));
    // Each was looked up on the brand's timeline, not guessed.
    let lookups = app
        .proxy
        .as_ref()
        .unwrap()
        .log()
        .iter()
        .filter(|(m, p, _)| m == "GET" && p.contains("/tweets?"))
        .count();
    assert!(lookups >= CUT_AFTER_ACTING.len(), "{lookups} look-ups");
    assert_eq!(app.proxy.as_ref().unwrap().faults(), CUT_AFTER_ACTING.len());
}

async fn a_dm_in_doubt_is_settled_not_resent(db: Db) {
    let Some(app) = one_customer_per_fault(db, "dm", "/2/dm_conversations/").await else {
        return;
    };
    assert_once_each(&app, "dm", CUT_AFTER_ACTING.len());
    assert!(statuses(&app).await.iter().all(|s| s == "sent"));
}

async fn a_failure_before_acting_is_resent_once(db: Db) {
    let traffic = [
        line("4201", "mention", "ana", "@lumio code wifi ?"),
        line("4202", "dm", "bob", "code wifi ?"),
    ]
    .join("\n");
    let mut setup = Setup::new(db, &traffic);
    setup.proxy_seed = Some(8);
    let Some(app) = common::spawn(setup).await else {
        return;
    };
    let proxy = app.proxy.clone().unwrap();
    proxy.script(
        "POST",
        "/2/",
        &[Fault::Unavailable, Fault::Html500, Fault::TooMany],
    );
    settle_all(&app).await;
    assert_once_each(&app, "tweet", 1);
    assert_once_each(&app, "dm", 1);
    assert!(statuses(&app).await.iter().all(|s| s == "sent"));
}

async fn same_text_for_two_customers_in_doubt_both_answered_once(db: Db) {
    // A reply without the customer's handle: both customers get the same
    // text, so X's "duplicate content" for the second says nothing about
    // whether the second's own first attempt left.
    let dir = tempfile::tempdir().unwrap();
    let rules = common::rules_dir(
        dir.path(),
        r#"
[[rule]]
id = "hours"
keywords = ["hours"]
reply = "We are open 9-18, Monday to Friday."
"#,
    );
    let traffic = [
        line("4301", "mention", "ana", "@lumio hours ?"),
        line("4302", "mention", "bob", "@lumio hours ?"),
    ]
    .join("\n");
    let mut setup = Setup::new(db, &traffic);
    setup.rules = Some(rules);
    setup.proxy_seed = Some(9);
    let Some(app) = common::spawn(setup).await else {
        return;
    };
    let proxy = app.proxy.clone().unwrap();
    // Ana's post leaves and its answer is lost; Bob's is refused as a
    // duplicate of Ana's, and that answer is lost too.
    proxy.script(
        "POST",
        "/2/tweets",
        &[Fault::CutBeforeHeaders, Fault::BadGatewayAfterActing],
    );
    settle_all(&app).await;
    let posted = app.sandbox.posted();
    let mut targets: Vec<&str> = posted.iter().map(|p| p.target.as_str()).collect();
    targets.sort();
    let rows: Vec<(String, String, String)> =
        sqlx::query("SELECT status, text, COALESCE(reason, '') FROM outbox ORDER BY id")
            .fetch_all(app.store.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r.try_get(0).unwrap(),
                    r.try_get(1).unwrap(),
                    r.try_get(2).unwrap(),
                )
            })
            .collect();
    assert_eq!(targets, ["4301", "4302"], "each once: {posted:?} {rows:?}");
    assert!(statuses(&app).await.iter().all(|s| s == "sent"));
}

async fn stop_then_a_question_in_the_same_second_is_not_answered(db: Db) {
    // Written in this order within the same second: the opt-out comes first.
    let traffic = [
        line("1900000000000004401", "dm", "ana", "STOP"),
        line("1900000000000004402", "dm", "ana", "code wifi ?"),
    ]
    .join("\n");
    let Some(app) = common::spawn(Setup::new(db, &traffic)).await else {
        return;
    };
    settle_all(&app).await;
    assert!(
        app.sandbox
            .posted()
            .iter()
            .all(|p| !p.text.contains("wifi")),
        "no automatic answer after STOP: {:?}",
        app.sandbox.posted()
    );
    let reasons: Vec<String> = sqlx::query("SELECT COALESCE(reason, '') FROM messages ORDER BY id")
        .fetch_all(app.store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get(0).unwrap())
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[1].contains("opted out"), "{reasons:?}");
}
