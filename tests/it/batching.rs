//! Group commit decides a whole batch before writing it and opens the
//! batch's new tickets in one statement. These tests hold it to the
//! reference: the same messages processed one at a time, each in its own
//! batch, must leave exactly the same rows (tickets and their ids,
//! ticket_messages, ticket_events, messages, outbox, opt-outs), on SQLite
//! and on PostgreSQL.

use helpdesk::application::pipeline::{Context, Pipeline, Processed};
use helpdesk::domain::clock::Clock;
use helpdesk::domain::{Channel, ConversationId, Handle, MessageId, Platform, Stream, UserId};
use helpdesk::platforms::{Account, Author, Batch, Event};
use helpdesk::rules::{LoadOptions, RuleSet};
use helpdesk::runtime::config::Config;
use helpdesk::storage::Store;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::Row;
use tracing::instrument::WithSubscriber;

use crate::common::{self, Db};

on_both_databases!(
    one_batch_leaves_the_rows_of_one_message_at_a_time,
    a_batch_cut_into_several_statements_leaves_the_same_rows,
    signals_of_one_batch_raise_tickets_as_one_message_at_a_time,
);

/// A mention (or a DM, for `dm`) from `customer`, in a thread of its own
/// unless `thread` names one.
fn event(id: u32, customer: &str, text: &str, thread: Option<u32>, now: i64) -> Event {
    Event {
        mentioned: Vec::new(),
        platform: Platform::X,
        channel: Channel::Mention,
        id: MessageId::new(id.to_string()),
        conversation: ConversationId::new(thread.unwrap_or(id).to_string()),
        author: Author {
            id: UserId::new(format!("u-{customer}")),
            handle: Handle::new(customer),
            name: customer.to_owned(),
        },
        text: format!("@lumio {text}"),
        at: now,
        in_reply_to: None,
        is_repost: false,
        lang: None,
    }
}

/// Every row the pipeline writes, as text, without the times (the two
/// runs do not happen in the same millisecond) and in an order both runs
/// share.
async fn rows(store: &Store) -> Vec<(&'static str, Vec<Vec<Option<String>>>)> {
    const DUMPS: &[(&str, &str)] = &[
        (
            "tickets",
            "SELECT id, queue, priority, status, platform, customer_id, customer_handle, \
             conversation_id, rule_id, note, assignee, signals, \
             first_response_due - created_at FROM tickets ORDER BY id",
        ),
        (
            "ticket_messages",
            "SELECT tm.id, tm.ticket_id, tm.direction, m.platform_message_id, tm.outbox_id, tm.body \
             FROM ticket_messages tm LEFT JOIN messages m ON m.id = tm.message_id ORDER BY tm.id",
        ),
        (
            "ticket_events",
            "SELECT ticket_id, actor, kind, from_value, to_value, body FROM ticket_events \
             ORDER BY ticket_id, id",
        ),
        (
            "messages",
            "SELECT id, platform_message_id, conversation_id, author_id, rule_id, keyword, action, \
             auto_reply, reason, ticket_id FROM messages ORDER BY id",
        ),
        (
            "outbox",
            "SELECT o.id, o.kind, o.origin, m.platform_message_id, o.ticket_id, o.customer_id, \
             o.conversation_id, o.in_reply_to, o.text, o.status \
             FROM outbox o LEFT JOIN messages m ON m.id = o.message_id ORDER BY o.id",
        ),
        (
            "opt_outs",
            "SELECT o.customer_id, m.platform_message_id FROM opt_outs o \
             LEFT JOIN messages m ON m.id = o.message_id ORDER BY o.customer_id",
        ),
    ];
    let mut out = Vec::new();
    for (table, sql) in DUMPS {
        let found = sqlx::query(*sql).fetch_all(store.pool()).await.unwrap();
        let table_rows = found
            .iter()
            .map(|r| (0..r.len()).map(|i| text_of(r, i)).collect())
            .collect();
        out.push((*table, table_rows));
    }
    out
}

/// A column as text, whatever its type (the Any driver decodes by type).
fn text_of(r: &sqlx::any::AnyRow, i: usize) -> Option<String> {
    if let Ok(v) = r.try_get::<Option<i64>, _>(i) {
        return v.map(|v| v.to_string());
    }
    r.try_get::<Option<String>, _>(i).unwrap()
}

/// Counts the warnings of the code it watches: a batch that fails is
/// retried one message per transaction, which leaves the same rows (on
/// SQLite even the same ticket ids), so only its warning tells that the
/// batch itself did not go through. Set for one future only
/// (`with_subscriber`): no global is installed.
#[derive(Clone, Default)]
struct Warnings(Arc<AtomicUsize>);

impl tracing::Subscriber for Warnings {
    fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
        *m.level() <= tracing::Level::WARN
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, e: &tracing::Event<'_>) {
        if *e.metadata().level() <= tracing::Level::WARN {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// A store with the history both runs start from: ana's ticket (from an
/// earlier batch) and eve's, solved a moment ago.
async fn store_with_history(
    db: Db,
    dir: &std::path::Path,
    pipeline: &Pipeline,
    rules: &RuleSet,
    ctx: &Context<'_>,
    now: i64,
) -> Option<Store> {
    let url = common::fresh_db(db, dir).await?;
    let store = Store::open(&url).await.unwrap();
    let earlier = vec![
        event(1, "ana", "I was charged twice this month", None, now),
        event(2, "eve", "le technicien n'est jamais venu", None, now),
    ];
    ingest(pipeline, &store, rules, ctx, earlier).await;
    let solved = format!(
        "UPDATE tickets SET status = 'solved', solved_at = {now} WHERE customer_id = 'u-eve'"
    );
    sqlx::query(sqlx::AssertSqlSafe(solved))
        .execute(store.pool())
        .await
        .unwrap();
    Some(store)
}

async fn ingest(
    pipeline: &Pipeline,
    store: &Store,
    rules: &RuleSet,
    ctx: &Context<'_>,
    events: Vec<Event>,
) -> Vec<Processed> {
    let batch = Batch {
        cursor: events.last().map(|e| e.id.as_str().to_owned()),
        events,
        next_poll: None,
        skipped: Vec::new(),
    };
    pipeline
        .ingest(store, rules, ctx, Stream::Mentions, &batch)
        .await
        .unwrap()
}

/// The starter rules of `rules/`.
fn repo_rules() -> RuleSet {
    RuleSet::load_dir(&common::repo_rules(), &LoadOptions::default()).unwrap()
}

/// The rows `batch` (made at the given time) leaves when ingested as one
/// batch, checked against one message at a time on the same history: what
/// the pipeline answered and the rows of the batch's store. `None`: no
/// PostgreSQL for tests.
async fn batch_against_one_at_a_time(
    db: Db,
    rules: &RuleSet,
    make: impl Fn(i64) -> Vec<Event>,
) -> Option<(
    Vec<Processed>,
    Vec<(&'static str, Vec<Vec<Option<String>>>)>,
    Store,
)> {
    let config = Config::default();
    let clock = Clock::new();
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
    let now = clock.now_ms();
    let ctx = Context {
        me: &me,
        first_start: now,
        platform: Platform::X,
    };
    let batch = make(now);
    let dir = tempfile::tempdir().unwrap();
    let (one, many) = (dir.path().join("batch"), dir.path().join("single"));
    std::fs::create_dir_all(&one).unwrap();
    std::fs::create_dir_all(&many).unwrap();
    let batched = store_with_history(db, &one, &pipeline, rules, &ctx, now).await?;
    let single = store_with_history(db, &many, &pipeline, rules, &ctx, now)
        .await
        .unwrap();

    let warnings = Warnings::default();
    let got = ingest(&pipeline, &batched, rules, &ctx, batch.clone())
        .with_subscriber(warnings.clone())
        .await;
    assert_eq!(
        warnings.0.load(Ordering::SeqCst),
        0,
        "the batch went through in one transaction, not retried message by message"
    );
    let mut want = Vec::new();
    for e in batch {
        want.extend(ingest(&pipeline, &single, rules, &ctx, vec![e]).await);
    }
    assert_eq!(got, want, "what the pipeline answers for each message");
    let (got_rows, want_rows) = (rows(&batched).await, rows(&single).await);
    for ((table, got), (_, want)) in got_rows.iter().zip(&want_rows) {
        assert_eq!(
            got, want,
            "{table}: one batch against one message at a time"
        );
    }
    single.pool().close().await;
    Some((got, got_rows, batched))
}

async fn one_batch_leaves_the_rows_of_one_message_at_a_time(db: Db) {
    let batch = |now| {
        vec![
            // bob opens a ticket (with an ack), then writes twice more: both join it.
            event(10, "bob", "I want a refund, charged twice", None, now),
            event(11, "bob", "still waiting for my refund", None, now),
            // cleo gets an FAQ answer, then opens a ticket in the same thread,
            // then follows it up.
            event(12, "cleo", "quels sont vos horaires ?", None, now),
            event(13, "cleo", "le technicien n'est jamais venu", Some(12), now),
            event(14, "bob", "vous m'avez oublié ?", None, now),
            // ana joins the ticket she opened in an earlier batch.
            event(15, "ana", "any news on my refund?", None, now),
            // dan opens a ticket with no rule (the default), then stops the
            // automatic replies and asks an FAQ question: it joins his ticket.
            event(
                16,
                "dan",
                "bonjour, une question sur mon contrat pro",
                None,
                now,
            ),
            event(17, "cleo", "toujours rien", Some(12), now),
            event(18, "dan", "stop", None, now),
            // eve's solved ticket is reopened, then followed up.
            event(19, "eve", "il n'est toujours pas venu", None, now),
            event(20, "eve", "allô ?", None, now),
            // fay opens a ticket with an ack like bob's.
            event(21, "fay", "refund please, I was overcharged", None, now),
            // A message delivered twice in one batch is recorded once.
            event(22, "gus", "mot de passe oublié", None, now),
            event(22, "gus", "mot de passe oublié", None, now),
            event(23, "dan", "mot de passe oublié", None, now),
            event(24, "fay", "and the invoice is wrong too", None, now),
            // jo asks an FAQ, another, then the first again: the repeat is
            // not answered twice (from the database when one at a time).
            event(25, "jo", "quels sont vos horaires ?", None, now),
            event(26, "jo", "mot de passe oublié", None, now),
            event(27, "jo", "et vos horaires le samedi ?", None, now),
        ]
    };
    let Some((got, got_rows, batched)) =
        batch_against_one_at_a_time(db, &repo_rules(), batch).await
    else {
        return;
    };
    // The scenario does what it says (the comparison is not of empty tables).
    let count = |table: &str| {
        got_rows
            .iter()
            .find(|(t, _)| *t == table)
            .map(|(_, r)| r.len())
            .unwrap()
    };
    assert_eq!(count("tickets"), 6, "ana, eve, then bob, cleo, dan, fay");
    assert_eq!(count("messages"), 2 + 18, "the duplicate is recorded once");
    let jo = sqlx::query(
        "SELECT platform_message_id, COALESCE(reason, '') FROM messages \
         WHERE author_id = 'u-jo' ORDER BY id",
    )
    .fetch_all(batched.pool())
    .await
    .unwrap();
    let jo: Vec<(String, String)> = jo.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert!(jo[0].1.is_empty() && jo[1].1.is_empty(), "{jo:?}");
    assert!(jo[2].1.contains("same reply"), "{jo:?}");
    assert_eq!(count("opt_outs"), 1);
    let opened: Vec<_> = got.iter().filter_map(|p| p.ticket).collect();
    assert_eq!(opened.iter().filter(|t| t.0 == opened[0].0).count(), 3);
    let eve = sqlx::query("SELECT status FROM tickets WHERE customer_id = 'u-eve'")
        .fetch_one(batched.pool())
        .await
        .unwrap();
    assert_eq!(eve.try_get::<String, _>(0).unwrap(), "open", "reopened");
    batched.pool().close().await;
}

/// A bot's full page of long messages: on PostgreSQL its rows take several
/// statements each (`dialect::statement_bytes`), and the rows that point
/// at its messages must still find them.
async fn a_batch_cut_into_several_statements_leaves_the_same_rows(db: Db) {
    const TEXTS: &[&str] = &[
        "I was charged twice this month and I want a refund now",
        "quels sont vos horaires ce week-end ?",
        "le technicien n'est jamais venu, j'ai posé ma journée",
        "mot de passe oublié, je n'arrive plus à me connecter",
        "stop",
    ];
    let batch = |now| {
        (0..100u32)
            .map(|i| {
                let customer = format!("customer{}", i % 30);
                let text = match TEXTS[i as usize % TEXTS.len()] {
                    "stop" => "stop".to_owned(),
                    t => format!("{t} {}", "é".repeat(100)),
                };
                event(1000 + i, &customer, &text, Some(1000 + i % 40), now)
            })
            .collect()
    };
    let Some((_, got_rows, batched)) = batch_against_one_at_a_time(db, &repo_rules(), batch).await
    else {
        return;
    };
    let count = |table: &str| {
        got_rows
            .iter()
            .find(|(t, _)| *t == table)
            .map(|(_, r)| r.len())
            .unwrap()
    };
    assert_eq!(count("messages"), 2 + 100);
    assert!(count("outbox") > 20, "{}", count("outbox"));
    assert!(count("opt_outs") > 5, "{}", count("opt_outs"));
    batched.pool().close().await;
}

/// Signals written for a whole batch at once (a read, an update, the
/// events) leave what one message at a time leaves: a ticket raised by
/// several messages of the batch goes up once per message, its signals
/// gather, its deadline follows its priority, and its history keeps the
/// messages' order around a reopen written on the spot.
async fn signals_of_one_batch_raise_tickets_as_one_message_at_a_time(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let rules = common::rules_dir(
        dir.path(),
        r#"
[[rule]]
id = "refund"
keywords = ["refund", "charged twice"]
escalate = { queue = "billing", priority = "low" }

[[rule]]
id = "visit"
keywords = ["technicien"]
escalate = { queue = "field", priority = "normal" }

[signals]
churn = ["switching to", "je pars chez"]
legal = ["lawyer", "avocat"]
"#,
    );
    let rules = RuleSet::load_dir(&rules, &LoadOptions::default()).unwrap();
    let batch = |now| {
        vec![
            // hal opens a low ticket raised by its signal (normal), then
            // raises it twice (high, urgent) with new and known signals;
            // his third message is repeated contact too.
            event(
                30,
                "hal",
                "refund now or I am switching to Orange",
                None,
                now,
            ),
            event(31, "hal", "my lawyer says refund", None, now),
            event(32, "hal", "switching to Free, refund please", None, now),
            // ana's ticket from an earlier batch is raised (low → normal).
            event(33, "ana", "refund, or my lawyer calls", None, now),
            // eve's solved ticket: a signal, then a reopen written on the
            // spot, then another signal (her third message of the day).
            event(34, "eve", "le technicien ? je pars chez Free", None, now),
            event(35, "eve", "mon avocat vous écrira", None, now),
            event(36, "ivy", "nothing to see here", None, now),
        ]
    };
    let Some((_, _, batched)) = batch_against_one_at_a_time(db, &rules, batch).await else {
        return;
    };
    let hal = sqlx::query("SELECT priority, signals FROM tickets WHERE customer_id = 'u-hal'")
        .fetch_one(batched.pool())
        .await
        .unwrap();
    assert_eq!(
        (hal.get::<String, _>(0), hal.get::<String, _>(1)),
        ("urgent".to_owned(), "churn legal repeated".to_owned())
    );
    // eve's history in the order it was written: within her first
    // message, its signal, then the reopen (as when each was written on
    // the spot).
    let eve = sqlx::query(
        "SELECT e.kind, e.to_value, e.body FROM ticket_events e \
         JOIN tickets t ON t.id = e.ticket_id WHERE t.customer_id = 'u-eve' ORDER BY e.id",
    )
    .fetch_all(batched.pool())
    .await
    .unwrap();
    let eve: Vec<(String, Option<String>)> = eve
        .iter()
        .map(|r| {
            let body: Option<String> = r.get(2);
            let what = body.map(|b| b.split(':').next().unwrap_or_default().to_owned());
            (r.get::<String, _>(0), what.or(r.get(1)))
        })
        .collect();
    let s = |k: &str, v: &str| (k.to_owned(), Some(v.to_owned()));
    assert_eq!(
        eve[eve.len() - 3..],
        [
            s("system", "signal churn"),
            s("status", "open"),
            s("system", "signal legal"),
        ],
        "{eve:?}"
    );
    batched.pool().close().await;
}
