//! Incidents, on SQLite and on PostgreSQL: a surge of one rule's matches
//! opens one incident at the threshold, each customer is answered once,
//! the team's chat gets one alert on open and one on close (after a
//! failed post is retried), the closing notice reaches each customer
//! once, a restart in the middle changes nothing; the same surge at the
//! usual rate opens nothing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use helpdesk::domain::limits::Budget;
use helpdesk::domain::secret::Secret;
use helpdesk::platforms::x::fake::parse_traffic;
use sqlx::Row;

use crate::common::{App, Db, Setup, build_bot, rules_dir, settle_bot, spawn};

on_both_databases!(
    a_surge_opens_one_incident_answers_each_customer_once_and_closes_with_one_notice,
    the_same_surge_at_the_usual_rate_opens_nothing,
    accounts_the_bot_never_answers_are_no_surge_and_get_no_notice,
);

const RULES: &str = r#"
[[rule]]
id = "outage"
keywords = ["panne", "outage", "no internet"]
reply = { fr = "{author} Vérifions votre ligne : https://aide.example.fr/diag", en = "{author} Let's check your line: https://help.example.com/diag" }
incident_reply = { fr = "{author} Un incident touche votre secteur, nos équipes sont dessus.", en = "{author} An outage hits your area; our teams are on it." }
incident_resolved = { fr = "{author} L'incident est résolu. Merci de votre patience !", en = "{author} The outage is fixed. Thank you for your patience!" }

[[rule]]
id = "billing"
keywords = ["facture", "invoice"]
escalate = { queue = "billing" }
"#;

/// A chat webhook that records what it is sent; its first answer is a
/// 503, so the bot must retry.
#[derive(Clone, Default)]
struct Chat {
    got: Arc<Mutex<Vec<serde_json::Value>>>,
    calls: Arc<Mutex<usize>>,
}

impl Chat {
    async fn start(&self) -> String {
        let me = self.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: String| {
                let me = me.clone();
                async move {
                    let n = {
                        let mut c = me.calls.lock().unwrap();
                        *c += 1;
                        *c
                    };
                    if n == 1 {
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    me.got
                        .lock()
                        .unwrap()
                        .push(serde_json::from_str(&body).expect("the alert is JSON"));
                    axum::http::StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/hook")
    }

    fn events(&self) -> Vec<String> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|d| d["incident"]["event"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// Customer `n`'s message about the outage, `at` seconds after the start.
fn outage(n: usize, at: u64, again: bool) -> String {
    let (text, lang) = match (n.is_multiple_of(2), again) {
        (true, false) => (
            format!("@lumio panne internet depuis ce matin à Lyon ({n})"),
            "fr",
        ),
        (true, true) => (format!("@lumio toujours en panne, c'est long ({n})"), "fr"),
        (false, false) => (
            format!("@lumio no internet since this morning in Lyon ({n})"),
            "en",
        ),
        (false, true) => (format!("@lumio still an outage here ({n})"), "en"),
    };
    serde_json::json!({
        "id": format!("{}{n:03}", if again { 9 } else { 8 }),
        "channel": "mention",
        "author": format!("cust{n:03}"),
        "text": text,
        "lang": lang,
        "at": at,
    })
    .to_string()
}

fn setup(db: Db, dir: &std::path::Path, traffic: &str, alert: Option<String>) -> Setup {
    let mut s = Setup::new(db, traffic);
    s.rules = Some(rules_dir(dir, RULES));
    s.config.incidents.min_customers = 20;
    s.config.incidents.window_mins = 10;
    if let Some(url) = alert {
        s.config.incidents.alert_url_env = Some("HELPDESK_TEST_ALERT_URL".into());
        s.config.incidents.alert_url = Some(Secret::new(url));
    }
    // Budgets that let every answer out in the test's minutes.
    s.config.limits.global = Budget {
        replies: 1000,
        per_secs: 60,
    };
    s.config.limits.per_customer = Budget {
        replies: 10,
        per_secs: 3600,
    };
    s
}

/// Moves the clock 10 s at a time, polling, sending and alerting.
async fn run_for(app: &App, bot: &helpdesk::runtime::bot::Bot, steps: usize) {
    for _ in 0..steps {
        app.clock.advance(Duration::from_secs(10));
        settle_bot(bot, 50).await;
        bot.alert_once().await.unwrap();
    }
}

/// How many outbox rows have a text containing any of `needles`, and to
/// how many distinct customers.
async fn texts(app: &App, needles: &[&str]) -> (usize, usize) {
    let rows = sqlx::query("SELECT customer_id, text FROM outbox")
        .fetch_all(app.store.pool())
        .await
        .unwrap();
    let hits: Vec<String> = rows
        .iter()
        .filter(|r| needles.iter().any(|n| r.get::<String, _>(1).contains(n)))
        .map(|r| r.get::<String, _>(0))
        .collect();
    let distinct: std::collections::HashSet<_> = hits.iter().collect();
    (hits.len(), distinct.len())
}

/// 60 customers in 10 minutes over a quiet history (one message on the
/// rule a week ago): the incident opens at the 20th, the 19 before got
/// the usual answer and nothing more, the 41 after get the incident reply
/// once (a second message gets nothing), no per-customer ticket; the bot
/// restarts halfway; one alert on open (after a 503, retried), one 15
/// minutes later as it grew, one on close; each of the 60 gets the closing
/// notice once.
async fn a_surge_opens_one_incident_answers_each_customer_once_and_closes_with_one_notice(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let chat = Chat::default();
    let url = chat.start().await;
    let mut first_half: Vec<String> = (0..30)
        .map(|n| outage(n, 10 * n as u64 + 5, false))
        .collect();
    // Two of the early ones write again before the threshold, one after.
    first_half.push(outage(2, 100, true));
    first_half.push(outage(5, 250, true));
    first_half.push(r#"{"id":"7001","channel":"mention","author":"paul","text":"@lumio ma facture est fausse","at":50}"#.into());
    let setup = setup(db, dir.path(), &first_half.join("\n"), Some(url));
    let Some(app) = spawn(setup).await else {
        return;
    };
    run_for(&app, &app.bot, 32).await;
    let incidents = app.count("SELECT COUNT(*) FROM incidents").await;
    assert_eq!(incidents, 1);

    // A restart in the middle of the incident.
    let bot = build_bot(&app.config, &app.sandbox, &app.clock, Box::new(|c| c)).await;
    // Offsets from now: the surge goes on where it was.
    let second_half: Vec<_> = (30..60)
        .map(|n| outage(n, 10 * (n as u64 - 30) + 5, false))
        .chain([outage(40, 230, true), outage(3, 240, true)])
        .collect();
    app.sandbox
        .push(parse_traffic(&second_half.join("\n"), "t").unwrap());
    run_for(&app, &bot, 32).await;

    assert_eq!(app.count("SELECT COUNT(*) FROM incidents").await, 1);
    let usual = texts(&app, &["Vérifions", "check your line"]).await;
    let incident = texts(&app, &["Un incident touche", "An outage hits"]).await;
    assert_eq!(usual, (19, 19), "the usual answer before the threshold");
    assert_eq!(
        incident,
        (41, 41),
        "the incident reply, once each, from the 20th"
    );
    // The 20th customer (cust019) is the first one told of the incident.
    let first_told = app
        .text("SELECT customer_handle FROM outbox WHERE text LIKE '%incident touche%' OR text LIKE '%outage hits%' ORDER BY id LIMIT 1")
        .await;
    assert_eq!(first_told, "cust019");
    // French customers in French, English ones in English.
    assert_eq!(texts(&app, &["Un incident touche"]).await.0, 20);
    // One ticket for the outage, in queue `incidents`; billing keeps its own.
    let tickets: Vec<(String, String)> =
        sqlx::query("SELECT queue, customer_handle FROM tickets ORDER BY id")
            .fetch_all(app.store.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
    assert_eq!(
        tickets,
        [
            ("billing".to_owned(), "paul".to_owned()),
            ("incidents".to_owned(), "I-1".to_owned())
        ]
    );
    let joined = app
        .count("SELECT COUNT(*) FROM messages m JOIN incidents i ON i.ticket_id = m.ticket_id")
        .await;
    assert_eq!(
        joined,
        41 + 3,
        "the messages from the 20th on, the later repeats too"
    );

    let (ok, list, err) = app.cli("carla", &["incidents", "list", "--json"]);
    assert!(ok, "{err}");
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["id"], "I-1");
    assert_eq!(list[0]["rule"], "outage");
    assert_eq!(list[0]["status"], "open");
    assert_eq!(list[0]["customers"], 60);
    assert_eq!(list[0]["messages"], 64);

    let (ok, show, err) = app.cli("carla", &["tickets", "show", "T-1002"]);
    assert!(ok, "{err}");
    assert!(
        show.contains("incident I-1 (open): rule outage, 60 customers, 64 messages"),
        "{show}"
    );
    let (ok, _, err) = app.cli("carla", &["tickets", "reply", "T-1002", "Hello"]);
    assert!(!ok && err.contains("is incident I-1's ticket"), "{err}");

    // The opening alert: one, after the first post failed.
    assert_eq!(chat.events(), ["opened"]);
    let opened = chat.got.lock().unwrap()[0].clone();
    assert_eq!(opened["incident"]["rule"], "outage");
    assert_eq!(opened["incident"]["customers"], 20);
    assert_eq!(opened["incident"]["ticket"], "T-1002");
    assert!(opened["text"].as_str().unwrap().contains("I-1 opened"));
    assert!(opened["attachments"][0]["fields"].is_array());

    // Fifteen minutes after the first alert, it has grown: one more.
    run_for(&app, &bot, 50).await;
    assert_eq!(chat.events(), ["opened", "growing"]);
    assert_eq!(chat.got.lock().unwrap()[1]["incident"]["customers"], 60);
    run_for(&app, &bot, 100).await;
    assert_eq!(
        chat.events(),
        ["opened", "growing"],
        "not again: it did not grow"
    );

    // An agent closes the incident's ticket through `agent_actions`.
    sqlx::query(
        "INSERT INTO agent_actions (ticket_id, agent, action) VALUES (1002, 'carla', 'close')",
    )
    .execute(app.store.pool())
    .await
    .unwrap();
    bot.maintain_once(false).await.unwrap();
    let result = app
        .text("SELECT status || ': ' || result FROM agent_actions")
        .await;
    assert!(result.starts_with("done"), "{result}");
    let (ok, _, err) = app.cli("carla", &["incidents", "close", "I-1"]);
    assert!(!ok && err.contains("closed already"), "{err}");
    for _ in 0..100 {
        run_for(&app, &bot, 1).await;
        if app
            .count("SELECT COUNT(*) FROM outbox WHERE status = 'queued'")
            .await
            == 0
        {
            break;
        }
    }

    assert_eq!(chat.events(), ["opened", "growing", "closed"]);
    let notices = texts(&app, &["est résolu", "outage is fixed"]).await;
    assert_eq!(notices, (60, 60), "one closing notice per customer");
    let unsent = app
        .count("SELECT COUNT(*) FROM outbox WHERE status <> 'sent'")
        .await;
    assert_eq!(unsent, 0);
    let status = app
        .text("SELECT status FROM tickets WHERE queue = 'incidents'")
        .await;
    assert_eq!(status, "closed");
    // After the incident, the rule answers as usual again.
    app.sandbox
        .push(parse_traffic(&outage(77, 0, false), "t").unwrap());
    run_for(&app, &bot, 1).await;
    assert_eq!(texts(&app, &["Vérifions", "check your line"]).await.0, 20);
    assert_eq!(app.count("SELECT COUNT(*) FROM incidents").await, 1);
}

/// Four weeks in which 60 customers wrote about the outage at this time
/// of the week: the same surge now is the usual, and opens nothing.
async fn the_same_surge_at_the_usual_rate_opens_nothing(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let traffic: Vec<String> = (0..60)
        .map(|n| outage(n, 10 * n as u64 + 5, false))
        .collect();
    let setup = setup(db, dir.path(), &traffic.join("\n"), None);
    let Some(app) = spawn(setup).await else {
        return;
    };
    let start = app.clock.now_ms();
    for week in 1..=4i64 {
        for n in 0..60i64 {
            let at = start - week * 7 * 86_400_000 + 10_000 * n;
            sqlx::query(
                "INSERT INTO messages (platform, platform_message_id, channel, conversation_id, \
                 author_id, author_handle, author_name, text, written_at, received_at, rule_id, \
                 action) VALUES ('x', $1, 'mention', $1, $2, $2, '', 'panne', $3, $3, 'outage', 'reply')",
            )
            .bind(format!("old-{week}-{n}"))
            .bind(format!("old{n}"))
            .bind(at)
            .execute(app.store.pool())
            .await
            .unwrap();
        }
    }
    run_for(&app, &app.bot, 62).await;
    assert_eq!(app.count("SELECT COUNT(*) FROM incidents").await, 0);
    assert_eq!(
        texts(&app, &["Vérifions", "check your line"]).await,
        (60, 60)
    );
}

/// Listed bots write like customers but are never answered: they do not
/// count towards a surge, and are not among the incident's customers.
async fn accounts_the_bot_never_answers_are_no_surge_and_get_no_notice(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let traffic: Vec<String> = (0..25)
        .map(|n| outage(n, 5 * n as u64 + 5, false))
        .collect();
    let mut setup = setup(db, dir.path(), &traffic.join("\n"), None);
    setup.config.protection.bots = (0..10).map(|n| format!("cust{n:03}")).collect();
    let Some(app) = spawn(setup).await else {
        return;
    };
    run_for(&app, &app.bot, 15).await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM incidents").await,
        0,
        "15 customers and 10 bots"
    );
    let more: Vec<String> = (25..30).map(|n| outage(n, 1, false)).collect();
    app.sandbox
        .push(parse_traffic(&more.join("\n"), "t").unwrap());
    run_for(&app, &app.bot, 2).await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM incidents").await,
        1,
        "20 customers"
    );
    let bots = app
        .count("SELECT COUNT(*) FROM incident_customers WHERE customer_handle < 'cust010'")
        .await;
    assert_eq!(bots, 0);
    assert_eq!(app.count("SELECT customers FROM incidents").await, 20);
}
