//! The bot loop end to end, as a user runs it: the sandbox X API on
//! 127.0.0.1, the real X client over HTTP, a fresh database per test, on
//! SQLite and on PostgreSQL. Time moves with `Clock::advance`; no test
//! sleeps to wait for a limit.

use std::sync::Arc;
use std::time::Duration;

use helpdesk::domain::limits::Budget;
use helpdesk::platforms::x::fake::{Endpoint, Window};
use sqlx::Row;

use crate::common::{self, App, CrashAfterSend, Db, Setup, line, rules_dir, spawn, spawn_wrapped};

on_both_databases!(
    faq_reply_goes_out_once_in_the_thread,
    escalation_opens_one_ticket_and_sends_one_ack,
    follow_up_joins_the_ticket_without_a_second_ack,
    a_message_delivered_twice_is_answered_once,
    burst_from_one_customer_is_capped_and_fully_recorded,
    a_429_pauses_sending_until_the_reset,
    crash_after_the_post_left_never_posts_twice,
    crash_before_the_post_left_sends_it_once,
    crash_during_a_dm_is_settled_by_the_dm_list,
    crash_before_a_dm_left_sends_it_once,
    loop_protection,
    conversation_cap_escalates_instead_of_answering,
    held_reply_expires_and_its_ticket_says_so,
    transient_errors_are_retried_with_backoff,
    duplicate_content_is_varied_once,
    each_customer_is_answered_in_their_language,
    out_of_hours_escalations_say_when_the_team_opens,
    unauthorized_pauses_and_keeps_the_queue,
    other_client_errors_fail_with_the_reason,
    restart_continues_from_the_cursor,
);

async fn faq_reply_goes_out_once_in_the_thread(db: Db) {
    let traffic = [
        line("501", "mention", "ana", "@lumio quels sont vos horaires ?"),
        line("502", "dm", "bob", "I forgot my password"),
    ]
    .join("\n");
    let Some(app) = spawn(Setup::new(db, &traffic)).await else {
        return;
    };
    app.settle().await;
    let posted = app.sandbox.posted();
    assert_eq!(posted.len(), 2, "{posted:?}");
    let tweet = posted.iter().find(|p| p.kind == "tweet").unwrap();
    assert_eq!(
        tweet.target, "501",
        "a public reply threads under the mention"
    );
    assert!(tweet.text.contains("@ana") && tweet.text.contains("8h à 21h"));
    let dm = posted.iter().find(|p| p.kind == "dm").unwrap();
    assert!(dm.text.contains("To reset your password"), "{}", dm.text);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE status = 'sent' AND sent_id IS NOT NULL")
            .await,
        2
    );
    // Nothing more happens on later rounds.
    app.settle().await;
    assert_eq!(app.sandbox.posted().len(), 2);
}

async fn escalation_opens_one_ticket_and_sends_one_ack(db: Db) {
    let traffic = line(
        "601",
        "mention",
        "tom",
        "@lumio I was charged twice this month, I want a refund",
    );
    let Some(app) = spawn(Setup::new(db, &traffic)).await else {
        return;
    };
    app.settle().await;
    let row = sqlx::query("SELECT id, queue, priority, status, customer_handle FROM tickets")
        .fetch_all(app.store.pool())
        .await
        .unwrap();
    assert_eq!(row.len(), 1);
    let id: i64 = row[0].try_get(0).unwrap();
    assert_eq!(id, 1001, "references start at T-1001");
    assert_eq!(row[0].try_get::<String, _>(1).unwrap(), "billing");
    assert_eq!(row[0].try_get::<String, _>(2).unwrap(), "high");
    assert_eq!(row[0].try_get::<String, _>(3).unwrap(), "new");
    let posted = app.sandbox.posted();
    assert_eq!(posted.len(), 1);
    assert!(posted[0].text.contains("T-1001"), "{}", posted[0].text);
    // The ticket's conversation holds the message and the ack.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM ticket_messages WHERE direction = 'in'")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM ticket_messages WHERE direction = 'out'")
            .await,
        1
    );
}

async fn follow_up_joins_the_ticket_without_a_second_ack(db: Db) {
    let traffic = [
        line("701", "mention", "tom", "@lumio je veux être remboursé"),
        line(
            "702",
            "mention",
            "tom",
            "@lumio remboursement toujours pas reçu",
        ),
        line("703", "dm", "tom", "vous m'avez oublié ? remboursez-moi"),
    ]
    .join("\n");
    let Some(app) = spawn(Setup::new(db, &traffic)).await else {
        return;
    };
    app.settle().await;
    assert_eq!(app.count("SELECT COUNT(*) FROM tickets").await, 1);
    assert_eq!(app.sandbox.posted().len(), 1, "one ack only");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM messages WHERE ticket_id = 1001")
            .await,
        3
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM ticket_messages WHERE ticket_id = 1001 AND direction = 'in'"
        )
        .await,
        3
    );
}

async fn a_message_delivered_twice_is_answered_once(db: Db) {
    let m = line("801", "mention", "ana", "@lumio where is my order?");
    let traffic = [m.clone(), m].join("\n");
    let Some(app) = spawn(Setup::new(db, &traffic)).await else {
        return;
    };
    app.settle().await;
    assert_eq!(app.count("SELECT COUNT(*) FROM messages").await, 1);
    assert_eq!(app.sandbox.posted().len(), 1);
    // The platform replays everything (a lost cursor): still answered once.
    sqlx::query("DELETE FROM cursors")
        .execute(app.store.pool())
        .await
        .unwrap();
    app.settle().await;
    assert_eq!(app.count("SELECT COUNT(*) FROM messages").await, 1);
    assert_eq!(app.sandbox.posted().len(), 1);
}

async fn burst_from_one_customer_is_capped_and_fully_recorded(db: Db) {
    // 100 messages from one customer, cycling through every reply rule so
    // that each would get its own, different answer.
    let asks = [
        "mot de passe oublié",
        "vos horaires ?",
        "no internet at all",
        "where is my order",
        "activer ma sim",
        "code wifi ?",
        "mon forfait marche à l'étranger ?",
        "thanks!",
    ];
    let traffic: Vec<String> = (0..100)
        .map(|i| {
            line(
                &format!("{}", 10_000 + i),
                "mention",
                "furious",
                &format!("@lumio {} ({i})", asks[i % asks.len()]),
            )
        })
        .collect();
    let mut setup = Setup::new(db, &traffic.join("\n"));
    setup.config.limits.per_customer = Budget {
        replies: 3,
        per_secs: 3600,
    };
    let Some(app) = spawn(setup).await else {
        return;
    };
    app.settle().await;
    assert_eq!(app.count("SELECT COUNT(*) FROM messages").await, 100);
    let posted = app.sandbox.posted();
    assert_eq!(posted.len(), 3, "at most the per-customer cap");
    // The rest wait, with the reason; nothing was dropped.
    let held = app
        .count(
            "SELECT COUNT(*) FROM outbox WHERE status = 'queued' AND reason LIKE '%per-customer%'",
        )
        .await;
    let suppressed = app
        .count("SELECT COUNT(*) FROM messages WHERE auto_reply = 'suppressed'")
        .await;
    assert_eq!(held, 5, "8 distinct replies, 3 sent");
    assert_eq!(held + 3 + suppressed, 100);
}

async fn a_429_pauses_sending_until_the_reset(db: Db) {
    let traffic: Vec<String> = ["a1", "a2", "a3", "a4"]
        .iter()
        .enumerate()
        .map(|(i, who)| line(&format!("90{i}"), "mention", who, "@lumio vos horaires ?"))
        .collect();
    let mut setup = Setup::new(db, &traffic.join("\n"));
    setup.sandbox.limits.insert(
        Endpoint::PostTweet,
        Window {
            limit: 2,
            window: Duration::from_secs(900),
        },
    );
    let Some(app) = spawn(setup).await else {
        return;
    };
    app.settle().await;
    assert_eq!(app.sandbox.posted().len(), 2);
    assert_eq!(
        app.sandbox.requests(Endpoint::PostTweet),
        3,
        "one 429, then silence"
    );
    // Rounds before the reset do not touch the endpoint.
    app.clock.advance(Duration::from_secs(600));
    app.settle().await;
    assert_eq!(app.sandbox.requests(Endpoint::PostTweet), 3);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE status = 'queued'")
            .await,
        2
    );
    // After the reset (+1 s), the rest leaves.
    app.clock.advance(Duration::from_secs(302));
    app.settle().await;
    assert_eq!(app.sandbox.posted().len(), 4);
    assert_eq!(app.sandbox.requests(Endpoint::PostTweet), 5);
}

async fn crash_then_restart(db: Db, traffic: &str, post_leaves: bool) -> Option<App> {
    let app = spawn_wrapped(
        Setup::new(db, traffic),
        Box::new(move |c| Arc::new(CrashAfterSend(c, post_leaves))),
    )
    .await?;
    app.bot.poll_once().await.unwrap();
    // The "crash": the send never completes and the round is abandoned.
    let r = tokio::time::timeout(Duration::from_millis(300), app.bot.drain_once()).await;
    assert!(r.is_err(), "the send hangs");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE status = 'sending'")
            .await,
        1
    );
    // Restart on the same database, once the lease has run out.
    app.clock.advance(Duration::from_secs(180));
    let bot = common::build_bot(&app.config, &app.sandbox, &app.clock, Box::new(|c| c)).await;
    let App {
        sandbox,
        store,
        clock,
        config,
        url,
        dir,
        proxy,
        ..
    } = app;
    let app = App {
        sandbox,
        bot,
        store,
        clock,
        config,
        url,
        dir,
        proxy,
    };
    app.settle().await;
    Some(app)
}

async fn crash_after_the_post_left_never_posts_twice(db: Db) {
    let traffic = line("1101", "mention", "ana", "@lumio code wifi ?");
    let Some(app) = crash_then_restart(db, &traffic, true).await else {
        return;
    };
    assert_eq!(app.sandbox.posted().len(), 1, "posted exactly once");
    let (status, _) = &app.outbox().await[0];
    assert_eq!(
        status, "sent",
        "X's duplicate answer proves the first copy left"
    );
}

async fn crash_before_the_post_left_sends_it_once(db: Db) {
    let traffic = line("1201", "mention", "ana", "@lumio code wifi ?");
    let Some(app) = crash_then_restart(db, &traffic, false).await else {
        return;
    };
    assert_eq!(app.sandbox.posted().len(), 1);
    assert_eq!(app.outbox().await[0].0, "sent");
}

async fn crash_during_a_dm_is_settled_by_the_dm_list(db: Db) {
    let traffic = line("1301", "dm", "ana", "code wifi ?");
    let Some(app) = crash_then_restart(db, &traffic, true).await else {
        return;
    };
    assert_eq!(app.sandbox.posted().len(), 1, "never resent blindly");
    assert_eq!(
        app.outbox().await[0].0,
        "sent",
        "the DM list shows the copy that left"
    );
    let reason = app.text("SELECT reason FROM outbox").await;
    assert!(reason.contains("found on the platform"), "{reason}");
}

async fn crash_before_a_dm_left_sends_it_once(db: Db) {
    let traffic = line("1302", "dm", "ana", "code wifi ?");
    let Some(app) = crash_then_restart(db, &traffic, false).await else {
        return;
    };
    assert_eq!(app.sandbox.posted().len(), 1);
    assert_eq!(app.outbox().await[0].0, "sent");
}

async fn loop_protection(db: Db) {
    let old = serde_json::json!({"id": "1405", "channel": "mention", "author": "old",
        "text": "@lumio code wifi ?", "at": "2025-01-01T00:00:00Z"})
    .to_string();
    let traffic = [
        line(
            "1401",
            "mention",
            "lumio",
            "@lumio code wifi ? (our own post)",
        ),
        line("1402", "mention", "otherbot", "@lumio code wifi ?"),
        line("1403", "mention", "julie", "STOP !"),
        line("1404", "mention", "julie", "@lumio code wifi ?"),
        old,
        line("1406", "mention", "max", "@lumio code wifi ?"),
        line("1407", "mention", "max", "@lumio le code wifi svp ?"),
    ]
    .join("\n");
    let mut setup = Setup::new(db, &traffic);
    setup.config.protection.bots = vec!["@OtherBot".into()];
    let Some(app) = spawn(setup).await else {
        return;
    };
    app.settle().await;
    let posted = app.sandbox.posted();
    assert_eq!(posted.len(), 1, "{posted:?}");
    assert_eq!(posted[0].target, "1406");
    let reasons: Vec<(String, String)> = sqlx::query(
        "SELECT platform_message_id, COALESCE(reason, '') FROM messages ORDER BY platform_message_id",
    )
    .fetch_all(app.store.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap()))
    .collect();
    let why = |id: &str| reasons.iter().find(|(i, _)| i == id).unwrap().1.clone();
    assert!(why("1401").contains("own account"));
    assert!(why("1402").contains("bot list"));
    assert!(why("1403").contains("stop"));
    assert!(why("1404").contains("opted out"));
    assert!(why("1405").contains("first start"));
    assert!(why("1407").contains("within 24 h"));
    assert_eq!(reasons.len(), 7, "everything is recorded");
}

async fn conversation_cap_escalates_instead_of_answering(db: Db) {
    let mut lines = vec![line("1500", "mention", "ana", "@lumio code wifi ?")];
    let asks = ["mot de passe ?", "horaires ?", "activer ma sim ?"];
    for (i, a) in asks.iter().enumerate() {
        lines.push(
            serde_json::json!({"id": format!("150{}", i + 1), "channel": "mention",
                "author": "ana", "text": format!("@lumio {a}"), "conversation": "1500"})
            .to_string(),
        );
    }
    let Some(app) = spawn(Setup::new(db, &lines.join("\n"))).await else {
        return;
    };
    app.settle().await;
    assert_eq!(
        app.sandbox.posted().len(),
        3,
        "the cap is 3 per conversation"
    );
    let (action, reason, ticket): (String, String, Option<i64>) = {
        let r = sqlx::query(
            "SELECT action, reason, ticket_id FROM messages WHERE platform_message_id = '1503'",
        )
        .fetch_one(app.store.pool())
        .await
        .unwrap();
        (
            r.try_get(0).unwrap(),
            r.try_get(1).unwrap(),
            r.try_get(2).unwrap(),
        )
    };
    assert_eq!(action, "escalate");
    assert!(reason.contains("escalated instead"), "{reason}");
    assert!(ticket.is_some());
}

async fn held_reply_expires_and_its_ticket_says_so(db: Db) {
    let traffic = [
        line("1601", "mention", "ana", "@lumio code wifi ?"),
        line("1602", "mention", "ana", "@lumio je veux être remboursé"),
    ]
    .join("\n");
    let mut setup = Setup::new(db, &traffic);
    setup.config.limits.per_customer = Budget {
        replies: 1,
        per_secs: 7200,
    };
    let Some(app) = spawn(setup).await else {
        return;
    };
    app.settle().await;
    assert_eq!(app.sandbox.posted().len(), 1);
    app.clock.advance(Duration::from_secs(3601));
    app.settle().await;
    assert_eq!(app.sandbox.posted().len(), 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE status = 'expired'")
            .await,
        1
    );
    let note = app.text("SELECT note FROM tickets").await;
    assert!(note.contains("expired"), "{note}");
}

async fn transient_errors_are_retried_with_backoff(db: Db) {
    let traffic = line("1701", "mention", "ana", "@lumio code wifi ?");
    let Some(app) = spawn(Setup::new(db, &traffic)).await else {
        return;
    };
    app.sandbox.fail_next(Endpoint::PostTweet, &[503, 500]);
    app.settle().await;
    assert_eq!(app.sandbox.posted().len(), 0);
    app.clock.advance(Duration::from_secs(3));
    app.settle().await;
    assert_eq!(app.sandbox.posted().len(), 0, "second failure");
    // A 5xx from the post endpoint may come after the post was made: the
    // reply is in doubt, and "not found" on the timeline is believed only
    // once the attempt is 30 s old. Then it is resent, once.
    app.clock.advance(Duration::from_secs(6));
    app.settle().await;
    assert_eq!(app.sandbox.posted().len(), 0, "not resent while in doubt");
    app.clock.advance(Duration::from_secs(60));
    app.settle().await;
    assert_eq!(
        app.sandbox.posted().len(),
        0,
        "the resend met the second 5xx"
    );
    app.clock.advance(Duration::from_secs(60));
    app.settle().await;
    assert_eq!(app.sandbox.posted().len(), 1);
    assert!(app.count("SELECT attempts FROM outbox").await >= 3);
}

/// Language tables: the FAQ answer, the acknowledgement and the signature
/// in the customer's language; a message too short to tell gets
/// `[language] default`; a language the table lacks, the default too.
async fn each_customer_is_answered_in_their_language(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_dir(
        dir.path(),
        r#"
[[rule]]
id = "refund"
keywords = ["refund", "remboursement", "reembolso"]
reply = { en = "Here is how to get a refund.", fr = "Voici comment obtenir un remboursement.", es = "Así se pide un reembolso." }

[[rule]]
id = "broken"
keywords = ["broken", "cassé", "roto"]
escalate = { queue = "repairs", ack = { fr = "Un conseiller vous écrit ({ticket}).", en = "An adviser will write to you ({ticket})." } }
"#,
    );
    let traffic = [
        line(
            "1901",
            "mention",
            "ana",
            "@lumio Je voudrais un remboursement, ma commande n'est jamais arrivée",
        ),
        line(
            "1902",
            "mention",
            "bob",
            "@lumio I would like a refund, my order never arrived",
        ),
        line(
            "1903",
            "mention",
            "eva",
            "@lumio Quiero un reembolso, mi pedido nunca llegó",
        ),
        line("1904", "mention", "kim", "@lumio refund"),
        // Too short for the text, but X tags it Spanish: the tag decides.
        serde_json::json!({"id": "1907", "channel": "mention", "author": "zoe", "text": "@lumio refund", "lang": "es"}).to_string(),
        line(
            "1905",
            "mention",
            "lea",
            "@lumio Mon téléphone est cassé depuis hier, il ne s'allume plus",
        ),
        line(
            "1906",
            "mention",
            "sam",
            "@lumio Mi teléfono está roto desde ayer y no enciende",
        ),
    ]
    .join("\n");
    let mut setup = Setup::new(db, &traffic);
    setup.rules = Some(rules);
    setup.config.language.default = Some(helpdesk::domain::language::Lang::parse("fr").unwrap());
    setup.config.replies.signature = Some(
        toml::from_str::<toml::Table>(r#"s = { en = " · automated", fr = " · automatique" }"#)
            .unwrap()["s"]
            .clone()
            .try_into()
            .unwrap(),
    );
    let Some(app) = spawn(setup).await else {
        return;
    };
    app.settle().await;
    let mut texts: Vec<String> = app.sandbox.posted().into_iter().map(|p| p.text).collect();
    texts.sort();
    let mut want = vec![
        "Voici comment obtenir un remboursement. · automatique".to_owned(),
        "Here is how to get a refund. · automated".to_owned(),
        // Spanish has a text; the signature has none: the default's.
        "Así se pide un reembolso. · automatique".to_owned(),
        // Too short to tell: the default (the same text as ana's, so
        // varied with the handle, as any repeated reply is).
        "@kim Voici comment obtenir un remboursement. · automatique".to_owned(),
        "Un conseiller vous écrit (T-1001). · automatique".to_owned(),
        // The same text as eva's, so varied with the handle.
        "@zoe Así se pide un reembolso. · automatique".to_owned(),
        // No Spanish ack: the default's.
        "Un conseiller vous écrit (T-1002). · automatique".to_owned(),
    ];
    want.sort();
    assert_eq!(texts, want);
}

/// `[hours]`: while the team is away, an escalation is acknowledged with
/// `ack_closed`, `{opens}` written in the customer's language, and its SLA
/// counts open hours only; an FAQ answer goes out as at any hour.
async fn out_of_hours_escalations_say_when_the_team_opens(db: Db) {
    use helpdesk::domain::hours::BusinessHours;
    use helpdesk::domain::language::Lang;
    // Open one hour a week, on the weekday two days from now in New York:
    // the team is away now, whatever the hour this test runs.
    let ny_day = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::get("America/New_York").unwrap())
        .weekday()
        .to_monday_zero_offset();
    let day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][(ny_day as usize + 2) % 7];
    let hours: BusinessHours = toml::from_str(&format!(
        "timezone = \"America/New_York\"\n{day} = \"09:00-10:00\""
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_dir(
        dir.path(),
        r#"
[[rule]]
id = "broken"
keywords = ["broken", "cassé"]
escalate = { queue = "repairs", ack = "Un conseiller vous écrit ({ticket}).", ack_closed = { fr = "Nous sommes fermés ; réponse {opens} ({ticket}).", en = "We're closed; an answer {opens} ({ticket})." } }

[[rule]]
id = "refund"
keywords = ["refund"]
reply = "Here is how to get a refund."
"#,
    );
    let traffic = [
        line(
            "2001",
            "mention",
            "lea",
            "@lumio Mon téléphone est cassé depuis hier, il ne s'allume plus du tout",
        ),
        line(
            "2002",
            "mention",
            "tom",
            "@lumio My phone has been broken since yesterday and will not turn on",
        ),
        line(
            "2003",
            "mention",
            "bob",
            "@lumio how do I get a refund for my order?",
        ),
    ]
    .join("\n");
    let mut setup = Setup::new(db, &traffic);
    setup.rules = Some(rules);
    setup.config.hours = Some(hours.clone());
    let Some(app) = spawn(setup).await else {
        return;
    };
    app.settle().await;
    let opens = hours
        .opens_after(jiff::Timestamp::now().as_millisecond())
        .expect("closed now");
    let fr = hours.describe(opens, Some(Lang::parse("fr").unwrap()));
    let en = hours.describe(opens, Some(Lang::parse("en").unwrap()));
    assert!(fr != en && fr.contains("à 09:00"), "{fr}");
    let mut texts: Vec<String> = app.sandbox.posted().into_iter().map(|p| p.text).collect();
    texts.sort();
    let mut want = vec![
        format!("Nous sommes fermés ; réponse {fr} (T-1001)."),
        format!("We're closed; an answer {en} (T-1002)."),
        "Here is how to get a refund.".to_owned(),
    ];
    want.sort();
    assert_eq!(texts, want);
    // Normal priority: 24 h of open time, one hour a week, so 24 weeks on.
    let rows = sqlx::query("SELECT created_at, first_response_due FROM tickets")
        .fetch_all(app.store.pool())
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    for r in rows {
        let created: i64 = r.try_get(0).unwrap();
        let due: i64 = r.try_get(1).unwrap();
        assert_eq!(due, hours.add_open(created, 24 * 3_600_000));
        let weeks = (due - created) / (7 * 86_400_000);
        assert!((23..=24).contains(&weeks), "{weeks} weeks");
    }
}

async fn duplicate_content_is_varied_once(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_dir(
        dir.path(),
        r#"
[[rule]]
id = "hours"
keywords = ["hours"]
reply = "We answer 8am-9pm, every day."
"#,
    );
    let traffic = [
        line("1801", "mention", "ana", "@lumio hours?"),
        line("1802", "mention", "bob", "@lumio hours?"),
    ]
    .join("\n");
    let mut setup = Setup::new(db, &traffic);
    setup.rules = Some(rules);
    let Some(app) = spawn(setup).await else {
        return;
    };
    app.settle().await;
    let texts: Vec<String> = app.sandbox.posted().into_iter().map(|p| p.text).collect();
    assert_eq!(
        texts,
        [
            "We answer 8am-9pm, every day.",
            "@bob We answer 8am-9pm, every day."
        ]
    );
}

async fn unauthorized_pauses_and_keeps_the_queue(db: Db) {
    let traffic = line("1901", "mention", "ana", "@lumio code wifi ?");
    let Some(app) = spawn(Setup::new(db, &traffic)).await else {
        return;
    };
    app.sandbox.fail_next(Endpoint::PostTweet, &[401]);
    app.settle().await;
    assert_eq!(app.sandbox.posted().len(), 0);
    assert_eq!(app.outbox().await[0].0, "queued");
    app.clock.advance(Duration::from_secs(61));
    app.settle().await;
    assert_eq!(app.sandbox.posted().len(), 1);
}

async fn other_client_errors_fail_with_the_reason(db: Db) {
    let traffic = line("2001", "mention", "ana", "@lumio code wifi ?");
    let Some(app) = spawn(Setup::new(db, &traffic)).await else {
        return;
    };
    app.sandbox.fail_next(Endpoint::PostTweet, &[400]);
    app.settle().await;
    let reason = app
        .text("SELECT reason FROM outbox WHERE status = 'failed'")
        .await;
    assert!(reason.contains("400"), "{reason}");
    app.clock.advance(Duration::from_secs(3600));
    app.settle().await;
    assert_eq!(
        app.sandbox.requests(Endpoint::PostTweet),
        1,
        "never retried"
    );
}

async fn restart_continues_from_the_cursor(db: Db) {
    let traffic = line("2101", "mention", "ana", "@lumio code wifi ?");
    let Some(app) = spawn(Setup::new(db, &traffic)).await else {
        return;
    };
    app.settle().await;
    app.sandbox.push(
        helpdesk::platforms::x::fake::parse_traffic(
            &line("2102", "mention", "bob", "@lumio vos horaires ?"),
            "t",
        )
        .unwrap(),
    );
    let bot = common::build_bot(&app.config, &app.sandbox, &app.clock, Box::new(|c| c)).await;
    bot.poll_once().await.unwrap();
    bot.drain_once().await.unwrap();
    assert_eq!(app.count("SELECT COUNT(*) FROM messages").await, 2);
    assert_eq!(app.sandbox.posted().len(), 2);
    let cursor = app
        .text("SELECT cursor FROM cursors WHERE stream = 'mentions'")
        .await;
    assert_eq!(cursor, "2102");
}
