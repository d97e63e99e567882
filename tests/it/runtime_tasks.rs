//! The runtime's tasks as `helpdesk run` starts them (X's webhook served
//! as X's listener, everything stopped by one signal), and the migration
//! that turns the platform CHECKs into a `platforms` table, on a database
//! the old migrations made (SQLite, and PostgreSQL when
//! `HELPDESK_TEST_POSTGRES_URL` is set).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{self, Db, Setup, Wrap};
use helpdesk::domain::Platform;
use helpdesk::domain::secret::Secret;
use helpdesk::platforms::x::config::WebhookConfig;
use helpdesk::platforms::x::webhook::{WithWebhook, signature};
use helpdesk::runtime::shutdown::Shutdown;
use helpdesk::storage::Store;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor as _, Row};

async fn wait_until(what: &str, secs: u64, mut ok: impl AsyncFnMut() -> bool) {
    let t = Instant::now();
    while !ok().await {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "{what}: not within {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_x_webhook_is_served_while_the_bot_runs_and_stops_with_it() {
    let listen = format!("127.0.0.1:{}", common::free_port());
    let secret = Secret::new("test-consumer-secret");
    let hook = WebhookConfig {
        listen: listen.clone(),
        path: "/webhooks/x".into(),
        consumer_secret_env: "UNUSED".into(),
    };
    let wrap: Wrap = {
        let secret = secret.clone();
        Box::new(move |c| Arc::new(WithWebhook::new(c, &hook, &secret)))
    };
    let Some(app) = common::spawn_wrapped(Setup::new(Db::Sqlite, ""), wrap).await else {
        return;
    };
    let common::App {
        bot,
        store,
        sandbox,
        dir: _dir,
        ..
    } = app;
    let bot = Arc::new(bot);
    let me = bot.account(Platform::X).unwrap().id.clone();
    let shutdown = Shutdown::new();
    let running = tokio::spawn(
        bot.clone()
            .run(shutdown.clone(), Some(Duration::from_secs(10))),
    );
    wait_until("the endpoint", 10, async || {
        tokio::net::TcpStream::connect(&listen).await.is_ok()
    })
    .await;
    let body = serde_json::json!({
        "for_user_id": me.as_str(),
        "tweet_create_events": [{
            "id_str": "4101", "text": "@lumio code wifi ?",
            "user": {"id_str": "2000000009", "screen_name": "hookuser", "name": "Hook User"}
        }]
    })
    .to_string();
    let answer = helpdesk::platforms::http::http_client()
        .post(format!("http://{listen}/webhooks/x"))
        .header(
            "x-twitter-webhooks-signature",
            signature(&secret, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "answered once recorded");
    let messages: i64 = sqlx::query("SELECT COUNT(*) FROM messages")
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(messages, 1, "recorded before the 200");
    // The sender task, woken by the delivery, answers it.
    wait_until("the reply", 10, async || sandbox.posted().len() == 1).await;
    assert_eq!(sandbox.posted()[0].target, "4101");

    shutdown.stop();
    tokio::time::timeout(Duration::from_secs(15), running)
        .await
        .expect("run returns within the deadline")
        .unwrap()
        .unwrap();
    assert_eq!(shutdown.running(), 0, "no task outlives run");
    assert!(
        tokio::net::TcpStream::connect(&listen).await.is_err(),
        "the endpoint closed with the bot"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_webhook_address_stops_the_start_and_says_which() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let hook = WebhookConfig {
        listen: listen.clone(),
        path: "/webhooks/x".into(),
        consumer_secret_env: "UNUSED".into(),
    };
    let wrap: Wrap = Box::new(move |c| Arc::new(WithWebhook::new(c, &hook, &Secret::new("s"))));
    let Some(app) = common::spawn_wrapped(Setup::new(Db::Sqlite, ""), wrap).await else {
        return;
    };
    let shutdown = Shutdown::new();
    let run = Arc::new(app.bot).run(shutdown.clone(), Some(Duration::from_secs(10)));
    let e = tokio::time::timeout(Duration::from_secs(15), run)
        .await
        .expect("the start gives up at once")
        .unwrap_err();
    let said = e.to_string();
    assert!(
        said.contains(&listen) && said.contains("x webhook endpoint"),
        "{said}"
    );
    assert_eq!(shutdown.running(), 0, "what had started stopped");
}

// --- the platforms migration ----------------------------------------------

/// Every table the bot has, besides the migrations' own bookkeeping.
const TABLES: &[&str] = &[
    "bot_state",
    "cursors",
    "tickets",
    "messages",
    "outbox",
    "ticket_messages",
    "opt_outs",
    "ticket_events",
    "agent_actions",
    "oauth_tokens",
    "skipped_items",
];

/// A row in every table (the triggers add a `ticket_events` row per ticket
/// and a `ticket_messages` row for the message in a ticket), written the
/// same on both databases.
const ROWS: &[&str] = &[
    "INSERT INTO bot_state (key, value) VALUES ('first_start', '1')",
    "INSERT INTO cursors (platform, stream, cursor, updated_at) VALUES ('x', 'mentions', 'c1', 1), ('mastodon', 'dms', 'c2', 2)",
    "INSERT INTO tickets (queue, priority, platform, customer_id, customer_handle, conversation_id, created_at, updated_at) VALUES ('billing', 'normal', 'x', 'u1', 'ana', 'c1', 1, 1), ('billing', 'high', 'mastodon', 'u2', 'bo', 'c2', 1, 1)",
    "UPDATE tickets SET status = 'closed', closed_at = 9 WHERE id = 1002",
    "INSERT INTO messages (platform, platform_message_id, channel, conversation_id, author_id, author_handle, author_name, text, written_at, received_at, action, ticket_id, mentioned_ids) VALUES ('x', 'm1', 'mention', 'c1', 'u1', 'ana', 'Ana', 'help please', 1, 2, 'escalate', 1001, '7 8'), ('mastodon', 'm2', 'dm', 'c2', 'u2', 'bo', 'Bo', 'hours?', 1, 2, 'reply', NULL, NULL)",
    "INSERT INTO outbox (platform, kind, origin, message_id, customer_id, customer_handle, conversation_id, in_reply_to, text, created_at, next_attempt_at, updated_at, doubt_since) VALUES ('mastodon', 'dm', 'auto', 2, 'u2', 'bo', 'c2', 'm2', '9 to 5', 1, 1, 1, 5)",
    "INSERT INTO ticket_messages (ticket_id, direction, outbox_id, body, at) VALUES (1001, 'out', 1, 'on it', 3)",
    "INSERT INTO opt_outs (platform, customer_id, message_id, at) VALUES ('x', 'u1', 1, 5)",
    "INSERT INTO agent_actions (ticket_id, agent, action) VALUES (1001, 'carla', 'claim')",
    "INSERT INTO oauth_tokens (platform, key_id, nonce, sealed, expires_at, updated_at, refreshed_by) VALUES ('x', 'k', 'n', 's', 1, 1, 'host:1')",
    "INSERT INTO skipped_items (platform, stream, item_id, error, at) VALUES ('x', 'mentions', 'i', 'e', 1)",
];

/// A pool on `url` as the bot opens it (foreign keys on, on SQLite).
async fn pool(url: &str) -> AnyPool {
    sqlx::any::install_default_drivers();
    let sqlite = url.starts_with("sqlite:");
    AnyPoolOptions::new()
        .max_connections(1)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if sqlite {
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await
        .unwrap()
}

/// A database as the migrations before `first_new` left it, with rows.
async fn old_database(url: &str, folder: &str, first_new: i64) -> AnyPool {
    let old = tempfile::tempdir().unwrap();
    let all = Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
    for f in std::fs::read_dir(&all).unwrap() {
        let f = f.unwrap().path();
        let name = f.file_name().unwrap().to_str().unwrap().to_owned();
        let version: i64 = name.split('_').next().unwrap().parse().unwrap();
        if version < first_new {
            std::fs::copy(&f, old.path().join(&name)).unwrap();
        }
    }
    let pool = pool(url).await;
    let migrator = sqlx::migrate::Migrator::new(old.path()).await.unwrap();
    migrator.run(&pool).await.unwrap();
    for sql in ROWS {
        sqlx::query(sqlx::AssertSqlSafe(*sql))
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    pool
}

/// Every row of `table`, each column quoted, sorted: equal before and
/// after only if no row or value changed.
async fn rows_of(pool: &AnyPool, table: &str, sqlite: bool) -> Vec<String> {
    let columns_sql = if sqlite {
        format!("SELECT name FROM pragma_table_info('{table}') ORDER BY name")
    } else {
        format!(
            "SELECT column_name::text FROM information_schema.columns WHERE table_schema = 'public' AND table_name = '{table}' ORDER BY column_name"
        )
    };
    let columns: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(columns_sql))
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let quote = if sqlite { "quote" } else { "quote_nullable" };
    let row: Vec<String> = columns
        .iter()
        .map(|c| format!("COALESCE({quote}({c}), 'NULL')"))
        .collect();
    let sql = format!("SELECT {} FROM {table}", row.join(" || ',' || "));
    let mut rows: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| format!("{}: {}", columns.join(","), r.get::<String, _>(0)))
        .collect();
    rows.sort();
    rows
}

async fn strings(pool: &AnyPool, sql: &'static str) -> Vec<String> {
    sqlx::query(sql)
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Triggers and indexes, with their definitions.
async fn schema_objects(pool: &AnyPool, sqlite: bool) -> Vec<String> {
    if sqlite {
        strings(
            pool,
            "SELECT type || ' ' || name || ' ON ' || tbl_name || ': ' || COALESCE(sql, '(automatic)') \
             FROM sqlite_master WHERE type IN ('index', 'trigger') ORDER BY name",
        )
        .await
    } else {
        let mut out = strings(
            pool,
            "SELECT 'index ' || indexname || ': ' || indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname",
        )
        .await;
        out.extend(
            strings(
                pool,
                "SELECT 'trigger ' || tgname || ': ' || pg_get_triggerdef(oid) FROM pg_trigger \
                 WHERE NOT tgisinternal ORDER BY tgname",
            )
            .await,
        );
        out
    }
}

/// What must survive the migration: every row, trigger and index.
async fn snapshot(pool: &AnyPool, sqlite: bool) -> Vec<String> {
    let mut all = schema_objects(pool, sqlite).await;
    for t in TABLES {
        all.extend(rows_of(pool, t, sqlite).await);
    }
    if sqlite {
        all.extend(
            strings(
                pool,
                "SELECT name || ' ' || seq FROM sqlite_sequence ORDER BY name",
            )
            .await,
        );
    }
    all
}

async fn refused(pool: &AnyPool, sql: &str) -> String {
    match sqlx::query(sqlx::AssertSqlSafe(sql)).execute(pool).await {
        Ok(_) => panic!("accepted: {sql}"),
        Err(e) => e.to_string(),
    }
}

async fn count(pool: &AnyPool, sql: &'static str) -> i64 {
    sqlx::query(sql).fetch_one(pool).await.unwrap().get(0)
}

/// Tables created by migrations after the `platforms` one: `Store::open`
/// applies them too, and their indexes are not the migration's business.
const LATER_TABLES: &[&str] = &[
    "x_spend_days",
    "x_spend",
    "incidents",
    "incident_customers",
    "incident_alerts",
    "agents",
    "console_sessions",
    "console_presence",
    "console_reads",
];

/// Columns added by migrations after the `platforms` one (the customer's
/// language and the signals: 0010 and 0011 on SQLite, 0009 and 0010 on
/// PostgreSQL; the inbox's order: 0016 and 0015, which SQLite's
/// `table_info` does not list, being generated).
const LATER_COLUMNS: &[&str] = &["lang", "signals", "inbox_due"];

/// Indexes created by migrations after the `platforms` one (repeated
/// contact: 0012 on SQLite, 0011 on PostgreSQL; incidents: 0013 and
/// 0012; the console: 0015 and 0014, 0016 and 0015).
const LATER_INDEXES: &[&str] = &[
    "messages_by_author",
    "messages_by_rule",
    "tickets_inbox",
    "tickets_inbox_by_queue",
    "tickets_by_status_due",
    "tickets_inbox_by_assignee",
    "tickets_inbox_counts",
];

/// Triggers created by migrations after the `platforms` one (the inbox's
/// read marks: 0016 on SQLite, 0015 on PostgreSQL).
const LATER_TRIGGERS: &[&str] = &["tickets_changed_unread"];

/// A snapshot row (`col,col: value,value`) without [`LATER_COLUMNS`]; the
/// fixture's values hold no commas.
fn without_later_columns(row: &str) -> String {
    let Some((cols, values)) = row.split_once(": ") else {
        return row.to_owned();
    };
    let cols: Vec<&str> = cols.split(',').collect();
    let values: Vec<&str> = values.split(',').collect();
    if cols.len() != values.len() || !cols.iter().any(|c| LATER_COLUMNS.contains(c)) {
        return row.to_owned();
    }
    let (cols, values): (Vec<&str>, Vec<&str>) = cols
        .into_iter()
        .zip(values)
        .filter(|(c, _)| !LATER_COLUMNS.contains(c))
        .unzip();
    format!("{}: {}", cols.join(","), values.join(","))
}

/// After the migration: the same rows, triggers and indexes (plus the new
/// table's key), a platform no migration added is refused everywhere, and
/// the triggers still act.
async fn check_migrated(url: &str, before: Vec<String>, sqlite: bool) {
    let store = Store::open(url).await.expect("the new migration applies");
    let pool = store.pool();
    let mut after: Vec<String> = snapshot(pool, sqlite)
        .await
        .iter()
        .map(|r| without_later_columns(r))
        .collect();
    after.retain(|o| {
        !LATER_INDEXES
            .iter()
            .any(|i| o.contains(&format!("index {i}")))
            && !LATER_TRIGGERS
                .iter()
                .any(|t| o.contains(&format!("trigger {t}")))
    });
    // Tables that migrations after this one create bring their own keys.
    after.retain(|o| {
        !LATER_TABLES
            .iter()
            .any(|t| o.contains(&format!(" ON {t}:")) || o.contains(&format!(" ON public.{t} ")))
    });
    let key = if sqlite {
        "index sqlite_autoindex_platforms_1 ON platforms: (automatic)"
    } else {
        "index platforms_pkey: CREATE UNIQUE INDEX platforms_pkey ON public.platforms USING btree (name)"
    };
    let at = after
        .iter()
        .position(|o| o == key)
        .expect("the platforms key");
    after.remove(at);
    assert_eq!(after, before);
    assert_eq!(
        strings(pool, "SELECT name FROM platforms ORDER BY name").await,
        ["bluesky", "mastodon", "x"]
    );
    for sql in [
        "INSERT INTO cursors (platform, stream, cursor, updated_at) VALUES ('carrier-pigeon', 'dms', 'c', 1)",
        "INSERT INTO tickets (queue, priority, platform, customer_id, customer_handle, conversation_id, created_at, updated_at) VALUES ('q', 'low', 'carrier-pigeon', 'u', 'h', 'c', 1, 1)",
        "INSERT INTO messages (platform, platform_message_id, channel, conversation_id, author_id, author_handle, author_name, text, written_at, received_at, action) VALUES ('carrier-pigeon', 'm9', 'dm', 'c', 'u', 'h', 'n', 't', 1, 1, 'none')",
        "INSERT INTO outbox (platform, kind, origin, customer_id, customer_handle, conversation_id, in_reply_to, text, created_at, next_attempt_at, updated_at) VALUES ('carrier-pigeon', 'dm', 'agent', 'u', 'h', 'c', 'm', 't', 1, 1, 1)",
        "INSERT INTO opt_outs (platform, customer_id, at) VALUES ('carrier-pigeon', 'u', 1)",
        "INSERT INTO oauth_tokens (platform, key_id, nonce, sealed, updated_at, refreshed_by) VALUES ('carrier-pigeon', 'k', 'n', 's', 1, 'h')",
    ] {
        let e = refused(pool, sql).await.to_lowercase();
        assert!(e.contains("foreign key"), "{sql}: {e}");
    }
    // Triggers: a closed ticket stays closed; a new ticket gets its event
    // and its number after the last one ever given; a message in a
    // ticket joins its conversation.
    let e = refused(pool, "UPDATE tickets SET status = 'open' WHERE id = 1002").await;
    assert!(e.contains("closed tickets are final"), "{e}");
    let events = count(pool, "SELECT COUNT(*) FROM ticket_events").await;
    sqlx::query("INSERT INTO tickets (queue, priority, platform, customer_id, customer_handle, conversation_id, created_at, updated_at) VALUES ('q', 'low', 'x', 'u3', 'cy', 'c3', 1, 1)")
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(
        count(pool, "SELECT COUNT(*) FROM ticket_events").await,
        events + 1
    );
    let newest = count(pool, "SELECT MAX(id) FROM tickets").await;
    if sqlite {
        assert_eq!(newest, 5001);
    } else {
        // PostgreSQL's identity also spent a number on the refused ticket.
        assert!(newest > 1002, "{newest}");
    }
    let joined = count(pool, "SELECT COUNT(*) FROM ticket_messages").await;
    sqlx::query("INSERT INTO messages (platform, platform_message_id, channel, conversation_id, author_id, author_handle, author_name, text, written_at, received_at, action, ticket_id) VALUES ('x', 'm3', 'dm', 'c1', 'u1', 'ana', 'Ana', 'and?', 3, 4, 'escalate', 1001)")
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(
        count(pool, "SELECT COUNT(*) FROM ticket_messages").await,
        joined + 1
    );
    // Bluesky's own migration would be this one line.
    sqlx::query("INSERT INTO platforms (name) VALUES ('carrier-pigeon')")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO opt_outs (platform, customer_id, at) VALUES ('carrier-pigeon', 'u', 1)",
    )
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_the_platforms_migration_keeps_every_row_trigger_and_index() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("old.db");
    let url = format!("sqlite://{}", file.display());
    let old = old_database(&format!("{url}?mode=rwc"), "migrations/sqlite", 7).await;
    // A last ticket that was deleted: its number is never given again.
    sqlx::query("UPDATE sqlite_sequence SET seq = 5000 WHERE name = 'tickets'")
        .execute(&old)
        .await
        .unwrap();
    let before = snapshot(&old, true).await;
    old.close().await;
    check_migrated(&url, before, true).await;
    let store = Store::open(&url).await.unwrap();
    let pool = store.pool();
    assert!(
        strings(pool, "SELECT \"table\" FROM pragma_foreign_key_check")
            .await
            .is_empty()
    );
    assert_eq!(
        strings(pool, "SELECT integrity_check FROM pragma_integrity_check").await,
        ["ok"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_the_platforms_migration_keeps_every_row_trigger_and_index() {
    let Ok(base) = std::env::var("HELPDESK_TEST_POSTGRES_URL") else {
        eprintln!(
            "skip: PostgreSQL test (set HELPDESK_TEST_POSTGRES_URL, as .ci/run does, to run it)"
        );
        return;
    };
    // A name of our own: other test processes drop `helpdesk_t_*` databases
    // they did not create.
    let name = format!("helpdesk_rt_{}", std::process::id());
    let admin = pool(&base).await;
    let drop_it = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    sqlx::query(sqlx::AssertSqlSafe(drop_it.clone()))
        .execute(&admin)
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    let (prefix, _) = base.rsplit_once('/').expect("URL with a database");
    let url = format!("{prefix}/{name}");
    let old = old_database(&url, "migrations/postgres", 6).await;
    let before = snapshot(&old, false).await;
    old.close().await;
    check_migrated(&url, before, false).await;
    sqlx::query(sqlx::AssertSqlSafe(drop_it))
        .execute(&admin)
        .await
        .unwrap();
}
