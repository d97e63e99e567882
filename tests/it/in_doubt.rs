//! Sends whose outcome is unknown, against the sandbox X API behind a
//! fault proxy that lets the post happen and then loses or spoils the
//! answer: each customer gets exactly one copy, on SQLite and PostgreSQL.
//! Also: a page with an item that cannot be decoded does not stop its
//! stream, and messages of one customer are handled in the order written.

use std::time::Duration;

use helpdesk::platforms::x::fake::{Endpoint, Replay, Sandbox, SandboxConfig};
use sqlx::Row;

use crate::common::fault_proxy::Fault;
use crate::common::{self, App, Db, Setup, line};

on_both_databases!(
    a_public_reply_in_doubt_is_settled_not_resent,
    a_dm_in_doubt_is_settled_not_resent,
    a_failure_before_acting_is_resent_once,
    same_text_for_two_customers_in_doubt_never_varied,
    stop_then_a_question_in_the_same_second_is_not_answered,
    a_poisoned_page_skips_the_bad_item_and_moves_on,
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

async fn same_text_for_two_customers_in_doubt_never_varied(db: Db) {
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
    // Ana's reply was found on her timeline. Bob's own attempt was refused
    // as a duplicate of Ana's text, but the bot cannot know that: X's
    // "duplicate" would say the same if Bob's first copy had left. Never
    // varied (that could answer Bob twice): an agent decides, with a ticket.
    let posted = app.sandbox.posted();
    let targets: Vec<&str> = posted.iter().map(|p| p.target.as_str()).collect();
    assert_eq!(targets, ["4301"], "nobody answered twice: {posted:?}");
    assert_eq!(statuses(&app).await, ["sent", "needs_review"]);
    let note = app.text("SELECT note FROM tickets").await;
    assert!(note.contains("duplicate"), "{note}");
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

/// A mentions page as X sent one: a user whose name holds a lone UTF-16
/// surrogate, a tweet whose text is not a string, and good tweets around
/// them.
const POISONED_PAGE: &str = r#"{
  "data": [
    {"id": "1900000000000005003", "text": "@lumio code wifi ?", "author_id": "21", "created_at": "2026-11-30T08:00:03.000Z"},
    {"id": "1900000000000005002", "text": 12345, "author_id": "22", "created_at": "2026-11-30T08:00:02.000Z"},
    {"id": "1900000000000005001", "text": "@lumio code wifi ?", "author_id": "23", "created_at": "2026-11-30T08:00:01.000Z"}
  ],
  "includes": {"users": [
    {"id": "21", "username": "eve", "name": "Eve \ud83d"},
    {"id": "22", "username": "mal", "name": "Mal"},
    {"id": "23", "username": "ana", "name": "Ana"}
  ]},
  "meta": {"newest_id": "1900000000000005003", "oldest_id": "1900000000000005001", "result_count": 3}
}"#;

/// The sandbox replaying [`POISONED_PAGE`] once, then nothing new; or,
/// when `broken`, a mentions endpoint that always answers a cut page.
fn poison(sandbox: &Sandbox, broken: bool) {
    sandbox.replay(
        Endpoint::Mentions,
        if broken {
            Replay::every(200, "{\"data\": [")
        } else {
            Replay::first_page(POISONED_PAGE)
        },
    );
}

async fn a_poisoned_page_skips_the_bad_item_and_moves_on(db: Db) {
    use helpdesk::platforms::Connector;
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let Some(url) = common::fresh_db(db, dir.path()).await else {
        return;
    };
    let clock = helpdesk::domain::clock::Clock::new();
    let sandbox = Sandbox::start(Vec::new(), SandboxConfig::default(), clock.clone())
        .await
        .unwrap();
    // The account and the post as X answers them.
    sandbox.replay(
        Endpoint::Me,
        Replay::every(
            200,
            r#"{"data": {"id": "1", "username": "lumio", "name": "Lumio"}}"#,
        ),
    );
    sandbox.replay(
        Endpoint::PostTweet,
        Replay::every(
            201,
            r#"{"data": {"id": "1900000000000009999", "text": "ok"}}"#,
        ),
    );
    poison(&sandbox, false);
    let config = helpdesk::runtime::config::Config {
        database_url: url,
        rules: common::repo_rules(),
        answer_backlog: true,
        stream_failing_secs: 60,
        ..Default::default()
    };
    let x = helpdesk::platforms::x::config::XConfig {
        base_url: sandbox.base_url(),
        dms: false,
        search: false,
        ..Default::default()
    };
    let client: Arc<dyn Connector> = Arc::new(helpdesk::platforms::x::XClient::new(
        &x,
        helpdesk::domain::secret::Secret::new(sandbox.token()),
        clock.clone(),
    ));
    let rules = helpdesk::rules::RuleSet::load_dir(&config.rules, &Default::default()).unwrap();
    let store = helpdesk::storage::Store::open(&config.database_url)
        .await
        .unwrap();
    let bot = helpdesk::runtime::bot::Bot::new(
        &config,
        store,
        Arc::new(rules),
        vec![client.clone()],
        clock.clone(),
    )
    .await
    .unwrap();
    let mut sched = bot.schedule_for(client.as_ref());
    assert!(bot.poll_due(client.as_ref(), &mut sched).await);
    let ids: Vec<String> =
        sqlx::query("SELECT platform_message_id FROM messages ORDER BY platform_message_id")
            .fetch_all(bot.store().pool())
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get(0).unwrap())
            .collect();
    assert_eq!(
        ids,
        ["1900000000000005001", "1900000000000005003"],
        "the good items, the surrogate's author included"
    );
    let skipped: (String, String) = {
        let r = sqlx::query("SELECT item_id, error FROM skipped_items")
            .fetch_one(bot.store().pool())
            .await
            .unwrap();
        (r.try_get(0).unwrap(), r.try_get(1).unwrap())
    };
    assert_eq!(skipped.0, "1900000000000005002");
    assert!(
        !skipped.1.contains("12345"),
        "no content in the error: {}",
        skipped.1
    );
    assert_eq!(
        bot.store()
            .cursor(
                helpdesk::domain::Platform::X,
                helpdesk::domain::Stream::Mentions
            )
            .await
            .unwrap()
            .as_deref(),
        Some("1900000000000005003"),
        "the cursor moved past the page"
    );
    assert!(bot.failing_streams().is_empty());

    // A stream that keeps failing is named by /readyz once it has failed
    // for longer than stream_failing_secs, and forgotten once it recovers.
    poison(&sandbox, true);
    for _ in 0..3 {
        clock.advance(Duration::from_secs(40));
        sched = bot.schedule_for(client.as_ref());
        assert!(bot.poll_due(client.as_ref(), &mut sched).await);
    }
    assert_eq!(bot.failing_streams(), ["x:mentions"]);
    poison(&sandbox, false);
    sched = bot.schedule_for(client.as_ref());
    assert!(bot.poll_due(client.as_ref(), &mut sched).await);
    assert!(bot.failing_streams().is_empty());
}
