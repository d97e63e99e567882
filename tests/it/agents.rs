//! Agents working escalated tickets, on SQLite and on PostgreSQL: the CLI
//! as a process against the bot's database, the lifecycle, follow-ups,
//! SLA, CSAT, agent_actions, reports, and the schema refusing bad writes.

use std::process::Command as Process;
use std::time::Duration;

use helpdesk::application::tickets::{self, Command, Filter, TicketError};
use helpdesk::domain::TicketRef;
use helpdesk::platforms::x::fake::parse_traffic;
use sqlx::Row;

use crate::common::{App, Db, Setup, line, spawn};

on_both_databases!(
    an_agent_takes_a_ticket_from_list_to_solved_with_the_cli,
    follow_ups_join_the_ticket_and_pending_goes_back_to_open,
    solved_tickets_reopen_then_close_after_their_period,
    agent_actions_from_sql_tools_are_applied_by_the_bot,
    bad_external_writes_are_rejected_by_the_database,
    sla_overdue_and_too_long_replies,
    the_documented_insert_works_in_the_database_shells_and_bad_agent_names_are_refused,
    automatic_replies_end_with_the_signature_and_agents_replies_do_not,
    the_language_is_kept_for_the_survey_and_the_report,
    signals_raise_the_priority_note_the_words_and_are_listed,
    a_third_message_in_a_day_with_no_human_answer_is_a_signal,
    agent_accounts_are_added_listed_disabled_and_given_new_passwords,
);

fn cli(app: &App, args: &[&str]) -> (bool, String, String) {
    app.cli("alice", args)
}

async fn push(app: &App, l: String) {
    app.sandbox.push(parse_traffic(&l, "t").unwrap());
    app.settle().await;
}

async fn an_agent_takes_a_ticket_from_list_to_solved_with_the_cli(db: Db) {
    let traffic = line(
        "5001",
        "mention",
        "tom",
        "@lumio I want a refund, charged twice",
    );
    let Some(app) = spawn(Setup::new(db, &traffic)).await else {
        return;
    };
    app.settle().await;
    let (ok, list, err) = cli(&app, &["tickets", "list", "--json"]);
    assert!(ok, "{err}");
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["reference"], "T-1001");
    assert_eq!(list[0]["status"], "new");
    assert_eq!(list[0]["priority"], "high");

    let (ok, out, err) = cli(&app, &["tickets", "claim", "T-1001"]);
    assert!(ok, "{err}");
    assert!(out.contains("new → open"), "{out}");
    let (ok, _, err) = cli(
        &app,
        &[
            "tickets",
            "reply",
            "T-1001",
            "Refund issued, 12 € back on your card within 5 days.",
        ],
    );
    assert!(ok, "{err}");
    app.settle().await;
    let posted = app.sandbox.posted();
    assert_eq!(
        posted.len(),
        2,
        "the ack, then the agent's reply: {posted:?}"
    );
    assert_eq!(
        posted[1].text,
        "Refund issued, 12 € back on your card within 5 days."
    );
    assert_eq!(posted[1].kind, "tweet");
    assert_eq!(posted[1].target, "5001", "in the ticket's conversation");
    let last: Option<String> = sqlx::query("SELECT last_sent_id FROM tickets WHERE id = 1001")
        .fetch_one(app.store.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(last.as_deref(), Some(posted[1].id.as_str()));

    let (ok, out, err) = cli(&app, &["tickets", "solve", "T-1001"]);
    assert!(ok, "{err}");
    assert!(out.contains("survey queued"), "{out}");
    app.settle().await;
    let survey = &app.sandbox.posted()[2];
    assert_eq!(survey.kind, "dm", "the survey is never public");
    assert!(survey.text.contains("1 à 5") && survey.text.contains("T-1001"));

    // The customer answers by DM.
    push(&app, line("5002", "dm", "tom", "5, thanks!")).await;
    let csat: Option<i64> = sqlx::query("SELECT csat FROM tickets WHERE id = 1001")
        .fetch_one(app.store.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(csat, Some(5));
    assert_eq!(app.sandbox.posted().len(), 3, "no reply to a rating");

    let (ok, show, err) = cli(&app, &["tickets", "show", "T-1001"]);
    assert!(ok, "{err}");
    for want in [
        "@tom",
        "alice",
        "new → open",
        "open → solved",
        "Refund issued",
        "rated 5/5",
    ] {
        assert!(show.contains(want), "`{want}` missing from:\n{show}");
    }
    let (ok, report, err) = cli(&app, &["report", "--json"]);
    assert!(ok, "{err}");
    let r: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(r["tickets_solved"], 1);
    assert_eq!(r["csat_average"], 5.0);
    assert!(r["first_response_median_min"].as_f64().is_some());
    let (ok, text, _) = cli(&app, &["report"]);
    assert!(
        ok && text.contains("satisfaction") && text.contains("5.0/5"),
        "{text}"
    );
}

async fn follow_ups_join_the_ticket_and_pending_goes_back_to_open(db: Db) {
    let traffic = line("5101", "mention", "ana", "@lumio je veux être remboursé");
    let Some(app) = spawn(Setup::new(db, &traffic)).await else {
        return;
    };
    app.settle().await;
    let t = TicketRef(1001);
    let apply = |cmd: Command| {
        let (store, clock) = (app.store.clone(), app.clock.clone());
        async move {
            tickets::apply(
                &store,
                &Default::default(),
                &[],
                t,
                "bob",
                &cmd,
                clock.now_ms(),
            )
            .await
        }
    };
    apply(Command::Pending).await.unwrap();
    // An FAQ question while the ticket is pending: joins it, no FAQ answer.
    push(
        &app,
        line("5102", "mention", "ana", "@lumio et vos horaires ?"),
    )
    .await;
    assert_eq!(app.sandbox.posted().len(), 1, "only the ack");
    let (status, n): (String, i64) = {
        let r = sqlx::query(
            "SELECT status, (SELECT COUNT(*) FROM messages WHERE ticket_id = 1001) FROM tickets WHERE id = 1001",
        )
        .fetch_one(app.store.pool())
        .await
        .unwrap();
        (r.try_get(0).unwrap(), r.try_get(1).unwrap())
    };
    assert_eq!((status.as_str(), n), ("open", 2));
    let actor: String = sqlx::query(
        "SELECT actor FROM ticket_events WHERE kind = 'status' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(app.store.pool())
    .await
    .unwrap()
    .try_get(0)
    .unwrap();
    assert_eq!(actor, "customer");
}

async fn solved_tickets_reopen_then_close_after_their_period(db: Db) {
    let traffic = line("5201", "mention", "ana", "@lumio je veux être remboursé");
    let Some(app) = spawn(Setup::new(db, &traffic)).await else {
        return;
    };
    app.settle().await;
    let t = TicketRef(1001);
    let apply = |cmd: Command| {
        let (store, clock) = (app.store.clone(), app.clock.clone());
        async move {
            tickets::apply(
                &store,
                &Default::default(),
                &[],
                t,
                "bob",
                &cmd,
                clock.now_ms(),
            )
            .await
        }
    };
    apply(Command::Solve).await.unwrap();
    app.settle().await;
    // Not a rating: the customer is back; the ticket reopens.
    push(
        &app,
        line("5202", "mention", "ana", "@lumio toujours pas remboursée"),
    )
    .await;
    assert_eq!(app.count("SELECT COUNT(*) FROM tickets").await, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM tickets WHERE status = 'open' AND solved_at IS NULL")
            .await,
        1
    );
    let again = apply(Command::Solve).await.unwrap();
    assert_eq!(again.queued, None, "one survey per ticket");
    // After the solved period, it closes by itself; then a message opens a new ticket.
    app.clock.advance(Duration::from_secs(5 * 86_400));
    app.bot.maintain_once(true).await.unwrap();
    assert_eq!(
        app.count("SELECT COUNT(*) FROM tickets WHERE status = 'closed'")
            .await,
        1
    );
    let err = apply(Command::Reopen).await.unwrap_err();
    assert!(
        err.to_string().contains("closed tickets are final"),
        "{err}"
    );
    push(
        &app,
        line(
            "5203",
            "mention",
            "ana",
            "@lumio encore un problème de remboursement",
        ),
    )
    .await;
    assert_eq!(app.count("SELECT COUNT(*) FROM tickets").await, 2);
}

async fn agent_actions_from_sql_tools_are_applied_by_the_bot(db: Db) {
    let traffic = line("5301", "mention", "ana", "@lumio je veux être remboursé");
    let Some(app) = spawn(Setup::new(db, &traffic)).await else {
        return;
    };
    app.settle().await;
    // What an agent's SQL tool does: plain INSERTs, no times to compute.
    for (action, arg) in [
        ("claim", None),
        ("reply_dm", Some("Bonjour, c'est remboursé.")),
        ("close", None),
    ] {
        sqlx::query("INSERT INTO agent_actions (ticket_id, agent, action, argument) VALUES (1001, 'carla', $1, $2)")
            .bind(action)
            .bind(arg)
            .execute(app.store.pool())
            .await
            .unwrap();
    }
    assert_eq!(app.bot.maintain_once(false).await.unwrap(), 3);
    let rows: Vec<(String, String)> =
        sqlx::query("SELECT status, COALESCE(result, '') FROM agent_actions ORDER BY id")
            .fetch_all(app.store.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap()))
            .collect();
    assert_eq!(rows[0].0, "done");
    assert_eq!(rows[1].0, "done");
    assert_eq!(rows[2].0, "refused");
    assert!(rows[2].1.contains("solve it first"), "{}", rows[2].1);
    app.settle().await;
    let posted = app.sandbox.posted();
    assert_eq!(posted.last().unwrap().kind, "dm");
    assert_eq!(posted.last().unwrap().text, "Bonjour, c'est remboursé.");
}

async fn bad_external_writes_are_rejected_by_the_database(db: Db) {
    let traffic = line("5401", "mention", "ana", "@lumio je veux être remboursé");
    let Some(app) = spawn(Setup::new(db, &traffic)).await else {
        return;
    };
    app.settle().await;
    let pool = app.store.pool();
    for bad in [
        "UPDATE tickets SET status = 'done' WHERE id = 1001",
        "UPDATE tickets SET priority = 'asap' WHERE id = 1001",
        "UPDATE tickets SET csat = 7 WHERE id = 1001",
        "UPDATE tickets SET queue = NULL WHERE id = 1001",
        "INSERT INTO agent_actions (ticket_id, agent, action) VALUES (999999, 'x', 'claim')",
        "INSERT INTO agent_actions (ticket_id, agent, action) VALUES (1001, 'x', 'note')",
        "INSERT INTO agent_actions (ticket_id, agent, action) VALUES (1001, 'x', 'delete')",
        "INSERT INTO ticket_events (ticket_id, at, actor, kind) VALUES (1001, 0, '', 'note')",
        "INSERT INTO outbox (platform, kind, origin, customer_id, customer_handle, conversation_id, in_reply_to, text, created_at, next_attempt_at, updated_at) VALUES ('x', 'public', 'auto', '1', 'a', 'c', 'm', '', 0, 0, 0)",
        "UPDATE outbox SET status = 'sending', lease_until = NULL",
    ] {
        let r = sqlx::query(sqlx::AssertSqlSafe(bad)).execute(pool).await;
        assert!(r.is_err(), "accepted: {bad}");
    }
    sqlx::query("UPDATE tickets SET status = 'closed' WHERE id = 1001")
        .execute(pool)
        .await
        .unwrap();
    let e = sqlx::query("UPDATE tickets SET status = 'open' WHERE id = 1001")
        .execute(pool)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("closed tickets are final"), "{e}");
}

async fn sla_overdue_and_too_long_replies(db: Db) {
    let traffic = line("5501", "mention", "ana", "@lumio je veux être remboursé");
    let Some(app) = spawn(Setup::new(db, &traffic)).await else {
        return;
    };
    app.settle().await;
    let now = app.clock.now_ms();
    let overdue = Filter {
        overdue: true,
        ..Filter::default()
    };
    assert!(
        tickets::list(&app.store, &overdue, now)
            .await
            .unwrap()
            .is_empty()
    );
    // High priority: first reply due within 4 h.
    let later = now + 4 * 3_600_000 + 1;
    let late = tickets::list(&app.store, &overdue, later).await.unwrap();
    assert_eq!(late.len(), 1);
    assert!(late[0].overdue);
    let long = "é".repeat(281);
    let err = tickets::apply(
        &app.store,
        &Default::default(),
        &[],
        TicketRef(1001),
        "bob",
        &Command::Reply {
            text: long,
            dm: false,
        },
        now,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            TicketError::TooLong {
                count: 281,
                max: 280,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE origin = 'agent'")
            .await,
        0,
        "refused before it is queued"
    );
    let (ok, _, err) = cli(&app, &["tickets", "close", "T-1001"]);
    assert!(!ok);
    assert!(
        err.contains("cannot close: the ticket is new; solve it first"),
        "{err}"
    );
}

/// The `agent_actions` INSERT exactly as docs/schema.md shows it, aimed at
/// `ticket`.
fn documented_insert(ticket: &str) -> String {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/schema.md")).unwrap();
    let at = doc.find("## `agent_actions`").unwrap();
    let block = &doc[at..];
    let start = block.find("```sql\n").unwrap() + "```sql\n".len();
    let end = start + block[start..].find("```").unwrap();
    let sql = &block[start..end];
    assert!(sql.contains("1042"), "{sql}");
    sql.replace("1042", ticket)
}

async fn the_documented_insert_works_in_the_database_shells_and_bad_agent_names_are_refused(
    db: Db,
) {
    let traffic = line("5501", "mention", "ana", "@lumio je veux être remboursé");
    let Some(app) = spawn(Setup::new(db, &traffic)).await else {
        return;
    };
    app.settle().await;
    // The shell agents use: Debian 12's sqlite3 is 3.40, without
    // unixepoch('subsec').
    let (shell, args): (&str, Vec<String>) = match db {
        Db::Sqlite => (
            "sqlite3",
            vec![
                app.url.trim_start_matches("sqlite://").to_owned(),
                documented_insert("1001"),
            ],
        ),
        Db::Postgres => (
            "psql",
            vec![
                app.url.clone(),
                "-v".into(),
                "ON_ERROR_STOP=1".into(),
                "-c".into(),
                documented_insert("1001"),
            ],
        ),
    };
    match Process::new(shell).args(&args).output() {
        Ok(out) => assert!(
            out.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("skip: {shell} is not installed ({e})"),
    }
    // Names that would forge or flood histories and logs.
    let long = "x".repeat(100_000);
    for agent in ["carla\nINFO forged line", long.as_str(), "carla\u{202e}"] {
        sqlx::query(
            "INSERT INTO agent_actions (ticket_id, agent, action, argument) VALUES (1001, $1, 'note', 'n')",
        )
        .bind(agent)
        .execute(app.store.pool())
        .await
        .unwrap();
    }
    sqlx::query(
        "INSERT INTO agent_actions (ticket_id, agent, action, argument) VALUES (1001, 'carla', 'assign', 'bob smith')",
    )
    .execute(app.store.pool())
    .await
    .unwrap();
    app.bot.maintain_once(false).await.unwrap();
    let rows: Vec<(String, String, i64)> = sqlx::query(
        "SELECT status, COALESCE(result, ''), created_at FROM agent_actions ORDER BY id",
    )
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
    let shelled = usize::from(rows.len() == 5);
    if shelled == 1 {
        assert_eq!(rows[0].0, "done", "{rows:?}");
        // created_at filled itself, in milliseconds of now.
        let now = app.clock.now_ms();
        assert!((now - rows[0].2).abs() < 600_000, "{} vs {now}", rows[0].2);
    }
    for (status, result, _) in &rows[shelled..] {
        assert_eq!(status, "refused");
        assert!(result.contains("invalid agent name"), "{result}");
        assert!(result.len() < 300 && !result.contains('\n'), "{result}");
    }
    // The CLI refuses them too, before touching the database.
    let out = Process::new(env!("CARGO_BIN_EXE_helpdesk"))
        .args(["tickets", "claim", "T-1001", "--agent", "a\nb"])
        .env("HELPDESK_DATABASE_URL", &app.url)
        .env("HELPDESK_CONFIG", app.dir.path().join("none.toml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("invalid agent name"), "{err}");
}

/// `[replies] signature`: the FAQ answer, the acknowledgement and the
/// survey end with it; an agent's reply, from the CLI or `agent_actions`,
/// does not.
async fn automatic_replies_end_with_the_signature_and_agents_replies_do_not(db: Db) {
    let traffic = [
        line("5401", "mention", "ana", "@lumio quels sont vos horaires ?"),
        line(
            "5402",
            "mention",
            "tom",
            "@lumio I want a refund, charged twice",
        ),
    ]
    .join("\n");
    let mut setup = Setup::new(db, &traffic);
    let signature = " · réponse automatique";
    setup.config.replies.signature =
        Some(helpdesk::domain::language::LocalizedText::any(signature));
    let Some(app) = spawn(setup).await else {
        return;
    };
    app.settle().await;
    let posted = app.sandbox.posted();
    assert_eq!(posted.len(), 2, "{posted:?}");
    for p in &posted {
        assert!(
            p.text.ends_with(signature),
            "automatic, so signed: {:?}",
            p.text
        );
        assert_eq!(p.text.matches(signature).count(), 1, "{:?}", p.text);
    }
    let policy = app.config.ticket_policy();
    let t = TicketRef(1001);
    let apply = |cmd: Command| {
        let (store, clock, policy) = (app.store.clone(), app.clock.clone(), policy.clone());
        async move {
            tickets::apply(&store, &policy, &[], t, "bob", &cmd, clock.now_ms())
                .await
                .unwrap()
        }
    };
    apply(Command::Claim).await;
    apply(Command::Reply {
        text: "Refund issued.".into(),
        dm: false,
    })
    .await;
    apply(Command::Solve).await;
    app.settle().await;
    let posted = app.sandbox.posted();
    assert_eq!(posted.len(), 4, "{posted:?}");
    assert_eq!(
        posted[2].text, "Refund issued.",
        "an agent's reply is not signed"
    );
    assert!(posted[3].text.contains("T-1001"), "{:?}", posted[3].text);
    assert!(
        posted[3].text.ends_with(signature),
        "the survey is: {:?}",
        posted[3].text
    );
}

/// The customer's language is recorded on the message and its ticket; the
/// survey, sent days later, is in it; `report` counts by language.
async fn the_language_is_kept_for_the_survey_and_the_report(db: Db) {
    let traffic = [
        line(
            "5801",
            "mention",
            "lea",
            "@lumio On m'a facturé deux fois ce mois-ci, je veux être remboursée",
        ),
        line(
            "5802",
            "mention",
            "tom",
            "@lumio I was charged twice this month and I want a refund",
        ),
        line("5803", "mention", "kim", "@lumio 👍👍"),
    ]
    .join("\n");
    let mut setup = Setup::new(db, &traffic);
    setup.config.language.default = Some(helpdesk::domain::language::Lang::parse("fr").unwrap());
    setup.config.tickets.survey = toml::from_str::<toml::Table>(
        r#"s = { en = "How did we do? 1 to 5.", fr = "Votre avis ? De 1 à 5." }"#,
    )
    .unwrap()["s"]
        .clone()
        .try_into()
        .unwrap();
    let Some(app) = spawn(setup).await else {
        return;
    };
    app.settle().await;
    let langs = sqlx::query(
        "SELECT m.author_handle, m.lang, t.lang FROM messages m LEFT JOIN tickets t ON t.id = m.ticket_id ORDER BY m.platform_message_id",
    )
    .fetch_all(app.store.pool())
    .await
    .unwrap();
    let langs: Vec<(String, Option<String>, Option<String>)> = langs
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(
        langs,
        [
            ("lea".into(), s("fr"), s("fr")),
            ("tom".into(), s("en"), s("en")),
            // Too short to tell, and X did not tag it: not known.
            ("kim".into(), None, None),
        ]
    );
    let policy = app.config.ticket_policy();
    for t in [TicketRef(1001), TicketRef(1002)] {
        for cmd in [Command::Claim, Command::Solve] {
            tickets::apply(&app.store, &policy, &[], t, "bob", &cmd, app.clock.now_ms())
                .await
                .unwrap();
        }
    }
    app.settle().await;
    let surveys: Vec<String> = app
        .sandbox
        .posted()
        .into_iter()
        .filter(|p| p.kind == "dm")
        .map(|p| p.text)
        .collect();
    assert_eq!(
        surveys,
        [
            "Votre avis ? De 1 à 5. (T-1001)",
            "How did we do? 1 to 5. (T-1002)"
        ]
    );
    let (ok, report, err) = cli(&app, &["report", "--json"]);
    assert!(ok, "{err}");
    let r: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(
        r["by_language"],
        serde_json::json!({"en": 1, "fr": 1, "unknown": 1})
    );
    assert_eq!(
        r["tickets_by_language"],
        serde_json::json!({"en": 1, "fr": 1, "unknown": 1})
    );
    let (ok, text, _) = cli(&app, &["report"]);
    assert!(ok && text.contains("per language"), "{text}");
}

/// `[signals]` in French and English: a new ticket opens one step more
/// urgent, a message on an open ticket raises it, a message no rule matches
/// is escalated for its signal; the ticket says which signal and which
/// words; `tickets list --signal` and `--sort signals`, and `report`.
async fn signals_raise_the_priority_note_the_words_and_are_listed(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let rules = crate::common::rules_dir(
        dir.path(),
        r#"
[[rule]]
id = "refund"
keywords = ["rembours*", "refund"]
escalate = { queue = "billing", priority = "normal" }

[[rule]]
id = "hours"
keywords = ["horaires", "opening hours"]
reply = "9-5"

[signals]
churn = ["je pars chez", "switching to"]
legal = ["avocat", "lawyer"]
"#,
    );
    let traffic = [
        // A new ticket, raised one step: normal → high.
        line(
            "6001",
            "mention",
            "lea",
            "@lumio Remboursez-moi ou je pars chez Free",
        ),
        // No signal: normal.
        line("6002", "mention", "tom", "@lumio I want a refund please"),
        // No rule matches: escalated for the signal, into `signals`.
        line(
            "6003",
            "mention",
            "kim",
            "@lumio my lawyer will hear about this",
        ),
    ]
    .join("\n");
    let mut setup = Setup::new(db, &traffic);
    setup.rules = Some(rules);
    let Some(app) = spawn(setup).await else {
        return;
    };
    app.settle().await;
    // tom writes again on his open ticket, with a signal: it goes up.
    app.sandbox.push(
        parse_traffic(
            &line(
                "6004",
                "mention",
                "tom",
                "@lumio still nothing, I'm switching to Orange",
            ),
            "t",
        )
        .unwrap(),
    );
    app.settle().await;
    let rows =
        sqlx::query("SELECT customer_handle, queue, priority, signals FROM tickets ORDER BY id")
            .fetch_all(app.store.pool())
            .await
            .unwrap();
    let got: Vec<(String, String, String, Option<String>)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let s = |v: &str| v.to_owned();
    assert_eq!(
        got,
        [
            (s("lea"), s("billing"), s("high"), Some(s("churn"))),
            (s("tom"), s("billing"), s("high"), Some(s("churn"))),
            (s("kim"), s("signals"), s("high"), Some(s("legal"))),
        ]
    );
    let (ok, show, err) = cli(&app, &["tickets", "show", "T-1002"]);
    assert!(ok, "{err}");
    assert!(show.contains("signal churn: \"switching to\""), "{show}");
    // Raised from normal to high before any agent answered: due in 4 h of
    // its opening, as a high ticket is, no longer in 24.
    let r = sqlx::query("SELECT first_response_due - created_at FROM tickets WHERE id = 1002")
        .fetch_one(app.store.pool())
        .await
        .unwrap();
    assert_eq!(r.get::<i64, _>(0), 4 * 3_600_000);
    let (ok, list, err) = cli(&app, &["tickets", "list", "--signal", "legal", "--json"]);
    assert!(ok, "{err}");
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["reference"], "T-1003");
    assert_eq!(list[0]["signals"], serde_json::json!(["legal"]));
    let (ok, text, _) = cli(
        &app,
        &["tickets", "list", "--signal", "any", "--sort", "signals"],
    );
    assert!(
        ok && text.contains("churn") && text.contains("3 tickets"),
        "{text}"
    );
    let (ok, report, err) = cli(&app, &["report", "--json"]);
    assert!(ok, "{err}");
    let r: serde_json::Value = serde_json::from_str(&report).unwrap();
    let days = r["signals_per_day"].as_object().unwrap();
    let total = |name: &str| -> i64 { days.values().map(|d| d[name].as_i64().unwrap_or(0)).sum() };
    assert_eq!((total("churn"), total("legal")), (2, 1), "{report}");
}

/// Repeated contact: a customer's third message within 24 h with no
/// human answer is the `repeated` signal. One no rule matches (and no
/// `[default]`) is escalated into `signals`; on a ticket it raises it; an
/// agent's answer starts the count again.
async fn a_third_message_in_a_day_with_no_human_answer_is_a_signal(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let rules = crate::common::rules_dir(
        dir.path(),
        r#"
[[rule]]
id = "refund"
keywords = ["refund"]
escalate = { queue = "billing", priority = "low" }
"#,
    );
    let traffic = [
        // ana: three messages no rule matches, no [default].
        line("7001", "mention", "ana", "@lumio hello?"),
        line("7002", "mention", "ana", "@lumio anyone there?"),
        line("7003", "mention", "ana", "@lumio hello???"),
        // bob: a ticket, then two follow-ups: the third raises it.
        line("7011", "mention", "bob", "@lumio I want a refund"),
        line("7012", "mention", "bob", "@lumio any news?"),
    ]
    .join("\n");
    let mut setup = Setup::new(db, &traffic);
    setup.rules = Some(rules);
    let Some(app) = spawn(setup).await else {
        return;
    };
    app.settle().await;
    let ticket = |who: &'static str| {
        let pool = app.store.pool().clone();
        async move {
            sqlx::query(
                "SELECT id, queue, priority, signals FROM tickets WHERE customer_handle = $1",
            )
            .bind(who)
            .fetch_all(&pool)
            .await
            .unwrap()
            .iter()
            .map(|r| {
                let (id, q, p, s): (i64, String, String, Option<String>) =
                    (r.get(0), r.get(1), r.get(2), r.get(3));
                (id, q, p, s)
            })
            .collect::<Vec<_>>()
        }
    };
    let ana = ticket("ana").await;
    assert_eq!(ana.len(), 1, "{ana:?}");
    assert_eq!((ana[0].1.as_str(), ana[0].2.as_str()), ("signals", "high"));
    assert_eq!(ana[0].3.as_deref(), Some("repeated"));
    let bob = ticket("bob").await;
    assert_eq!(
        (bob[0].2.as_str(), bob[0].3.as_deref()),
        ("low", None),
        "two messages: no signal yet"
    );
    // An agent answers bob: his next two messages start a new count.
    let policy = app.config.ticket_policy();
    let t = TicketRef(bob[0].0);
    tickets::apply(
        &app.store,
        &policy,
        &[],
        t,
        "carla",
        &Command::Reply {
            text: "On it.".into(),
            dm: false,
        },
        app.clock.now_ms(),
    )
    .await
    .unwrap();
    for (id, text) in [
        ("7013", "@lumio thanks, and?"),
        ("7014", "@lumio still waiting"),
    ] {
        app.sandbox
            .push(parse_traffic(&line(id, "mention", "bob", text), "t").unwrap());
        app.settle().await;
    }
    let bob = ticket("bob").await;
    assert_eq!(
        bob[0].2, "low",
        "answered by a human: the count starts again"
    );
    app.sandbox
        .push(parse_traffic(&line("7015", "mention", "bob", "@lumio hello??"), "t").unwrap());
    app.settle().await;
    let bob = ticket("bob").await;
    assert_eq!(
        (bob[0].2.as_str(), bob[0].3.as_deref()),
        ("normal", Some("repeated"))
    );
    let (ok, show, err) = cli(&app, &["tickets", "show", &format!("T-{}", bob[0].0)]);
    assert!(ok, "{err}");
    assert!(
        show.contains("signal repeated: the third message within 24 h"),
        "{show}"
    ); // Once per run: a fourth message does not raise it again.
    app.sandbox
        .push(parse_traffic(&line("7016", "mention", "bob", "@lumio ???"), "t").unwrap());
    app.settle().await;
    assert_eq!(ticket("bob").await[0].2, "normal");
}

/// Runs `helpdesk ARGS` with `stdin` on the app's database.
fn cli_with_input(app: &App, args: &[&str], stdin: &str) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Process::new(env!("CARGO_BIN_EXE_helpdesk"))
        .args(args)
        .env("HELPDESK_DATABASE_URL", &app.url)
        .env("HELPDESK_CONFIG", app.dir.path().join("none.toml"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `helpdesk agents`: an account with a password from standard input
/// (hashed with Argon2id, never stored), a name taken or a short password
/// refused, the list, a disabled agent who can no longer sign in, and a
/// made password that enables them again.
async fn agent_accounts_are_added_listed_disabled_and_given_new_passwords(db: Db) {
    use helpdesk::application::agents::check;
    use helpdesk::domain::AgentName;
    use helpdesk::domain::secret::Secret;
    let Some(app) = spawn(Setup::new(db, &line("1", "mention", "ana", "@lumio hi"))).await else {
        return;
    };
    let pw = "correct horse battery staple";
    let (ok, out, err) = cli_with_input(
        &app,
        &["agents", "add", "carla", "--password-stdin"],
        &format!("{pw}\n"),
    );
    assert!(ok && out.contains("carla: added"), "{out}{err}");
    assert!(!out.contains(pw));
    let (ok, _, err) = cli_with_input(&app, &["agents", "add", "carla", "--password-stdin"], pw);
    assert!(!ok && err.contains("exists already"), "{err}");
    let (ok, _, err) = cli_with_input(
        &app,
        &["agents", "add", "bob", "--password-stdin"],
        "short\n",
    );
    assert!(!ok && err.contains("at least 12"), "{err}");
    let (ok, _, err) = cli_with_input(&app, &["agents", "add", "bad name", "--password-stdin"], pw);
    assert!(!ok && err.contains("invalid agent name"), "{err}");
    let hash = app
        .text("SELECT password_hash FROM agents WHERE name = 'carla'")
        .await;
    assert!(
        hash.starts_with("$argon2id$") && !hash.contains(pw),
        "{hash}"
    );
    let carla = AgentName::parse("carla").unwrap();
    assert!(check(&app.store, &carla, &Secret::new(pw)).await.unwrap());
    assert!(
        !check(
            &app.store,
            &carla,
            &Secret::new("correct horse battery stapler")
        )
        .await
        .unwrap()
    );
    assert!(
        !check(
            &app.store,
            &AgentName::parse("nobody").unwrap(),
            &Secret::new(pw)
        )
        .await
        .unwrap()
    );

    let (ok, list, err) = cli_with_input(&app, &["agents", "list", "--json"], "");
    assert!(ok, "{err}");
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["name"], "carla");
    assert!(list[0]["disabled_at"].is_null());

    let (ok, _, err) = cli_with_input(&app, &["agents", "disable", "carla"], "");
    assert!(ok, "{err}");
    assert!(
        !check(&app.store, &carla, &Secret::new(pw)).await.unwrap(),
        "disabled"
    );
    let (ok, text, _) = cli_with_input(&app, &["agents", "list"], "");
    assert!(ok && text.contains("disabled"), "{text}");
    let (ok, _, err) = cli_with_input(&app, &["agents", "disable", "nobody"], "");
    assert!(!ok && err.contains("no agent nobody"), "{err}");

    // A made password, shown once, enables her again.
    let (ok, out, err) = cli_with_input(&app, &["agents", "passwd", "carla"], "");
    assert!(ok, "{err}");
    let made = out.trim().rsplit(' ').next().unwrap();
    assert_eq!(made.len(), 20, "{out}");
    assert!(check(&app.store, &carla, &Secret::new(made)).await.unwrap());
    assert!(!check(&app.store, &carla, &Secret::new(pw)).await.unwrap());
}
