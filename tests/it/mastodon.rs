//! The Mastodon connector against the fake instance
//! (`helpdesk::platforms::mastodon::fake`) answering with the real
//! Mastodon.py recordings (a 4.6.4 server and mastodon.social), and the
//! idempotency key reused after a crash.

use std::sync::Arc;

use helpdesk::domain::Stream;
use helpdesk::domain::clock::Clock;
use helpdesk::domain::secret::Secret;
use helpdesk::domain::{Channel, Handle, MessageId, UserId};
use helpdesk::platforms::bluesky::BlueskyClient;
use helpdesk::platforms::bluesky::config::BlueskyConfig;
use helpdesk::platforms::bluesky::fake::{AllowIncoming, FakePds, PdsSetup};
use helpdesk::platforms::bluesky::session::{MemoryHome, Sessions};
use helpdesk::platforms::mastodon::MastodonClient;
use helpdesk::platforms::mastodon::config::MastodonConfig;
use helpdesk::platforms::mastodon::fake::{Answer, FakeMastodon, Setup};
use helpdesk::platforms::{ApiError, Connector, Outgoing, ReplyKind};

use crate::common;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/fixtures/mastodon/cassettes"
);

/// The interaction of a cassette whose request method and path match, as
/// the fake instance gives it back (only the `link` and `x-ratelimit-*`
/// headers kept).
fn recorded(file: &str, method: &str, path: &str) -> Option<Answer> {
    let text = std::fs::read_to_string(format!("{FIXTURES}/{file}")).ok()?;
    let doc: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
    for i in doc["interactions"].as_array()? {
        let uri = i["request"]["uri"].as_str()?;
        if i["request"]["method"] == method && uri.contains(path) {
            let r = &i["response"];
            let headers = r["headers"]
                .as_object()
                .map(|h| {
                    h.iter()
                        .filter(|(k, _)| {
                            let k = k.to_ascii_lowercase();
                            k == "link" || k.starts_with("x-ratelimit")
                        })
                        .filter_map(|(k, v)| Some((k.clone(), v[0].as_str()?.to_owned())))
                        .collect()
                })
                .unwrap_or_default();
            return Some(Answer {
                status: r["status"]["code"].as_u64()? as u16,
                headers,
                body: r["body"]["string"].as_str()?.to_owned(),
            });
        }
    }
    None
}

/// A recorded JSON body, parsed.
fn json_of(a: &Answer) -> serde_json::Value {
    serde_json::from_str(&a.body).unwrap()
}

/// The fake instance answering with the recordings: the account of a
/// 4.6.4 test server, mastodon.social's 40 notifications (39 of deleted
/// posts), a recorded status for every post, the recorded 404 for every
/// lookup. `None` (the test skips) without the fixtures.
async fn serve() -> Option<FakeMastodon> {
    let me = recorded(
        "local-test-server/test_status_reply.yaml",
        "GET",
        "/api/v1/accounts/verify_credentials",
    )?;
    let notes = recorded(
        "mastodon.social/test_entity_notification.yaml",
        "GET",
        "/api/v1/notifications",
    )?;
    let created = recorded(
        "local-test-server/test_status_post[None-direct].yaml",
        "POST",
        "/api/v1/statuses",
    )?;
    let missing = recorded(
        "local-test-server/test_status_missing.yaml",
        "GET",
        "/api/v1/statuses/0",
    )?;
    // The recorded 4.6.4 instance, raised to 1 000 characters as some
    // instances are: what the bot checks agents' replies against.
    let instance = recorded(
        "local-test-server/test_stream_user_direct.yaml",
        "GET",
        "/api/v2/instance",
    )?;
    let mut instance = json_of(&instance);
    instance["configuration"]["statuses"]["max_characters"] = serde_json::json!(1000);
    // Recorded newest first, as Mastodon pages them; the fake holds them
    // oldest first.
    let serde_json::Value::Array(mut notifications) = json_of(&notes) else {
        panic!("the recorded notifications are a list");
    };
    notifications.reverse();
    let fake = FakeMastodon::start(Setup {
        me,
        instance: Some(instance),
        notifications,
        page_headers: notes.headers,
        created: json_of(&created),
        lookup: missing,
        ..Setup::default()
    })
    .await
    .unwrap();
    Some(fake)
}

fn client(base: &str) -> MastodonClient {
    let cfg = MastodonConfig {
        base_url: base.to_owned(),
        ..MastodonConfig::default()
    };
    MastodonClient::new(&cfg, Secret::new("DUMMY"), Clock::new())
}

#[tokio::test]
async fn recorded_notifications_skip_deleted_posts_and_see_the_direct_one() {
    let Some(fake) = serve().await else {
        eprintln!("skip: Mastodon fixtures not found at {FIXTURES}");
        return;
    };
    let m = client(&fake.base_url());
    let me = m.whoami().await.unwrap();
    assert_eq!(
        (me.id.as_str(), me.handle.as_str()),
        ("117020565693913441", "admin")
    );
    let b = m.poll(Stream::Mentions, None).await.unwrap();
    // 40 mentions recorded on mastodon.social, 39 with a null status.
    assert_eq!(b.events.len(), 1);
    let e = &b.events[0];
    assert_eq!(e.channel, Channel::Dm, "visibility direct is a DM");
    assert_eq!(e.id.as_str(), "116275331587890092");
    assert_eq!(e.author.handle.as_str(), "latencyobs@icosahedron.website");
    assert!(
        e.text
            .starts_with("@halcy @halcy@glitch.social @halcy@hachyderm.io ____________LATENCYPING"),
        "{}",
        e.text
    );
    assert_eq!(
        b.cursor.as_deref(),
        Some("550622655"),
        "the newest notification id"
    );
    // Next poll: nothing new, cursor unchanged.
    let b2 = m.poll(Stream::Mentions, b.cursor.as_deref()).await.unwrap();
    assert!(b2.events.is_empty() && b2.cursor.is_none());
    // Reset is an ISO 8601 time here: the pause is computed from it.
    assert!(b.next_poll.is_some());
    // The instance states its own limit.
    assert_eq!(m.length_limit().await.max, 1000);
}

#[tokio::test]
async fn the_instance_sets_the_length_limit_and_500_is_the_fallback() {
    let fake = FakeMastodon::start(Setup {
        instance: Some(
            serde_json::json!({"configuration": {"statuses": {"max_characters": 1000}}}),
        ),
        ..Setup::default()
    })
    .await
    .unwrap();
    assert_eq!(client(&fake.base_url()).length_limit().await.max, 1000);
    // No such endpoint (an old server): Mastodon's default.
    let fake = FakeMastodon::start(Setup::default()).await.unwrap();
    assert_eq!(client(&fake.base_url()).length_limit().await.max, 500);
}

#[tokio::test]
async fn replies_carry_the_key_the_visibility_and_the_customer() {
    let Some(fake) = serve().await else {
        return;
    };
    let m = client(&fake.base_url());
    let out = |kind, key: &str| Outgoing {
        kind,
        text: "On regarde ça.".into(),
        in_reply_to: MessageId::new("116275331587890092"),
        recipient: UserId::new("109446733121874654"),
        recipient_handle: Handle::new("latencyobs@icosahedron.website"),
        idempotency_key: key.into(),
        row: 1,
        queued_at: 0,
        exclude_from_thread: Vec::new(),
    };
    let a = m
        .send(&out(ReplyKind::Dm, "helpdesk-outbox-7"))
        .await
        .unwrap();
    // The retry after a crash uses the same key: the same status comes back.
    let b = m
        .send(&out(ReplyKind::Dm, "helpdesk-outbox-7"))
        .await
        .unwrap();
    assert_eq!(a, b);
    let c = m
        .send(&out(ReplyKind::Public, "helpdesk-outbox-8"))
        .await
        .unwrap();
    assert_ne!(a, c);
    assert_eq!(fake.statuses(), 2, "two statuses for three calls");
    let posts = fake.posts();
    let (key, form) = (&posts[0].key, &posts[0].form);
    assert_eq!(key, "helpdesk-outbox-7");
    assert_eq!(form["visibility"], "direct");
    assert_eq!(
        form["status"],
        "@latencyobs@icosahedron.website On regarde ça."
    );
    assert_eq!(form["in_reply_to_id"], "116275331587890092");
    // The original could not be read (404): a public reply falls back to unlisted.
    assert_eq!(posts[2].form["visibility"], "unlisted");
}

#[tokio::test]
async fn recorded_errors_become_clear_errors() {
    // 401 {"error":"The access token is invalid"}, 422 localised, 404.
    let unauth = recorded(
        "local-test-server/test_unauthed_home_tl_throws.yaml",
        "GET",
        "/api/v1/timelines/home",
    );
    let empty = recorded(
        "local-test-server/test_status_empty.yaml",
        "POST",
        "/api/v1/statuses",
    );
    let (Some(unauth), Some(empty)) = (unauth, empty) else {
        return;
    };
    let fake = FakeMastodon::start(Setup {
        me: unauth,
        refuse_statuses: Some(empty),
        ..Setup::default()
    })
    .await
    .unwrap();
    let m = client(&fake.base_url());
    assert_eq!(m.whoami().await.unwrap_err(), ApiError::Unauthorized);
    let err = m
        .send(&Outgoing {
            kind: ReplyKind::Dm,
            text: String::new(),
            in_reply_to: MessageId::new("1"),
            recipient: UserId::new("2"),
            recipient_handle: Handle::new("ana"),
            idempotency_key: "k".into(),
            row: 1,
            queued_at: 0,
            exclude_from_thread: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ApiError::Rejected {
            status: 422,
            detail: "バリデーションに失敗しました: Textを入力してください".into()
        }
    );
}

use std::time::Duration;

use helpdesk::platforms::x::XClient;
use helpdesk::platforms::x::config::XConfig;
use helpdesk::platforms::x::fake::{Sandbox, SandboxConfig, parse_traffic};
use helpdesk::rules::{LoadOptions, RuleSet};
use helpdesk::runtime::bot::Bot;
use helpdesk::runtime::config::Config;
use helpdesk::storage::Store;
use sqlx::Row;

const PING_RULE: &str = r#"
[[rule]]
id = "ping"
keywords = ["latencyping", "wifi"]
reply = "{author} pong"
"#;

/// A configuration on a fresh SQLite file in `dir` with `rules`; the
/// recordings are months old, so backlog is answered.
fn config_in(dir: &tempfile::TempDir, rules: &str) -> Config {
    Config {
        database_url: format!("sqlite://{}", dir.path().join("b.db").display()),
        rules: common::rules_dir(dir.path(), rules),
        answer_backlog: true,
        ..Config::default()
    }
}

async fn bot(config: &Config, connectors: Vec<Arc<dyn Connector>>, clock: &Clock) -> Bot {
    let rules = RuleSet::load_dir(&config.rules, &LoadOptions::default()).unwrap();
    let store = Store::open(&config.database_url).await.unwrap();
    Bot::new(config, store, Arc::new(rules), connectors, clock.clone())
        .await
        .unwrap()
}

async fn settle(b: &Bot) {
    crate::common::settle_bot(b, 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_mastodon_and_bluesky_in_one_bot_each_with_its_own_budget() {
    let Some(fake) = serve().await else {
        return;
    };
    let clock = Clock::new();
    let traffic = (0..3)
        .map(|i| {
            format!(
                r#"{{"id":"{}","channel":"mention","author":"x{i}","text":"@lumio wifi ?"}}"#,
                70 + i
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    let sandbox = Sandbox::start(
        parse_traffic(&traffic, "t").unwrap(),
        SandboxConfig::default(),
        clock.clone(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_in(&dir, PING_RULE);
    // A global budget of 2 per platform: X's three customers wait for the
    // third, Mastodon's one is not held back by X's.
    config.limits.global = helpdesk::domain::limits::Budget {
        replies: 2,
        per_secs: 3600,
    };
    let x = XConfig {
        base_url: sandbox.base_url(),
        search: false,
        dms: false,
        ..XConfig::default()
    };
    // Bluesky: three customers too, held to their own budget of 2.
    let pds = FakePds::start(PdsSetup::default(), clock.clone())
        .await
        .unwrap();
    for i in 0..3 {
        let h = format!("b{i}.test");
        pds.add_customer(&h, "", AllowIncoming::All, false);
        pds.mention(&h, "@brand.test wifi ?");
    }
    let bluesky = BlueskyConfig {
        service: pds.base_url(),
        identifier: Some(pds.brand_handle().try_into().unwrap()),
        ..BlueskyConfig::default()
    };
    let sessions = Sessions::new(Arc::new(MemoryHome::default()), clock.clone());
    let connectors: Vec<Arc<dyn Connector>> = vec![
        Arc::new(XClient::new(
            &x,
            Secret::new(sandbox.token()),
            clock.clone(),
        )),
        Arc::new(client(&fake.base_url())),
        Arc::new(BlueskyClient::new(
            &bluesky,
            Secret::new(pds.app_password()),
            sessions,
            clock.clone(),
        )),
    ];
    let b = bot(&config, connectors, &clock).await;
    settle(&b).await;
    assert_eq!(sandbox.posted().len(), 2, "X: its own budget of 2");
    assert_eq!(fake.statuses(), 1, "Mastodon: answered");
    assert_eq!(pds.brand_posts().len(), 2, "Bluesky: its own budget of 2");
    let platforms: Vec<String> =
        sqlx::query("SELECT DISTINCT platform FROM messages ORDER BY platform")
            .fetch_all(b.store().pool())
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get(0).unwrap())
            .collect();
    assert_eq!(platforms, ["bluesky", "mastodon", "x"]);
}

/// Runs a bot that dies while sending its one reply, moves time by
/// `down_for`, and restarts it on the same database. Returns the fake
/// instance and the restarted bot, settled; `None` without fixtures.
async fn crash_and_restart(down_for: Duration) -> Option<(FakeMastodon, Bot, tempfile::TempDir)> {
    let fake = serve().await?;
    let base = fake.base_url();
    let clock = Clock::new();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_in(&dir, PING_RULE);
    config.limits.reply_max_age_secs = 4 * 3600;
    let first = bot(
        &config,
        vec![Arc::new(common::CrashAfterSend(
            Arc::new(client(&base)),
            true,
        ))],
        &clock,
    )
    .await;
    first.poll_once().await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), first.drain_once())
            .await
            .is_err()
    );
    drop(first);
    clock.advance(down_for);
    let second = bot(&config, vec![Arc::new(client(&base))], &clock).await;
    settle(&second).await;
    Some((fake, second, dir))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_sending_and_recording_reuses_the_key() {
    // Down long enough for the lease to run out, well within the key's hour.
    let Some((fake, second, _dir)) = crash_and_restart(Duration::from_secs(180)).await else {
        return;
    };
    let posts = fake.posts();
    assert_eq!(posts.len(), 2, "sent before the crash, resent after");
    assert_eq!(posts[0].key, posts[1].key, "with the same Idempotency-Key");
    assert_eq!(fake.statuses(), 1, "so Mastodon made one status");
    let status: String = sqlx::query("SELECT status FROM outbox")
        .fetch_one(second.store().pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(status, "sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_interrupted_longer_than_the_key_lives_goes_to_an_agent() {
    // Mastodon keeps an Idempotency-Key for about an hour: after that a
    // resend could post twice, so the row is handed to an agent instead.
    let Some((fake, second, _dir)) = crash_and_restart(Duration::from_secs(2 * 3600)).await else {
        return;
    };
    assert_eq!(fake.posts().len(), 1, "never resent blindly");
    let (status, note): (String, String) = {
        let r = sqlx::query("SELECT (SELECT status FROM outbox), (SELECT note FROM tickets)")
            .fetch_one(second.store().pool())
            .await
            .unwrap();
        (r.try_get(0).unwrap(), r.try_get(1).unwrap())
    };
    assert_eq!(status, "needs_review");
    assert!(note.contains("may or may not have gone out"), "{note}");
}

// ---------------------------------------------------------------------------
// The streaming API, with polling taking over while it is down.

use helpdesk::platforms::sse::SseParser;

/// The events of the recorded `/api/v1/streaming/user` body (a 4.6.4
/// server's streaming API), as `(event, data)`.
fn recorded_stream() -> Option<Vec<(String, serde_json::Value)>> {
    let r = recorded(
        "local-test-server/test_stream_user_direct.yaml",
        "GET",
        "/api/v1/streaming/user",
    )?;
    let events = SseParser::default().feed(r.body.as_bytes());
    Some(
        events
            .into_iter()
            .map(|e| {
                let data = serde_json::from_str(&e.data).unwrap_or(serde_json::json!(e.data));
                (e.event, data)
            })
            .collect(),
    )
}

/// A recorded notification with new ids and another customer, as a later
/// mention from someone else would look.
fn another(n: &serde_json::Value, id: u32) -> serde_json::Value {
    let mut n = n.clone();
    n["id"] = serde_json::json!(id.to_string());
    n["status"]["id"] = serde_json::json!(format!("1170242370000000{id:02}"));
    n["account"]["id"] = serde_json::json!(format!("9000{id}"));
    n["account"]["acct"] = serde_json::json!(format!("customer{id}"));
    n["status"]["account"] = n["account"].clone();
    n
}

/// The fake instance as the test drives it: the account `me`, the
/// `notifications` there at start (oldest first), a recorded status for
/// every post, statuses that cannot be read (404), a stream that accepts
/// connections when `streaming`.
async fn serve_live(
    me: serde_json::Value,
    notifications: Vec<serde_json::Value>,
    streaming: bool,
) -> FakeMastodon {
    let created = recorded(
        "local-test-server/test_status_post[None-direct].yaml",
        "POST",
        "/api/v1/statuses",
    )
    .unwrap();
    FakeMastodon::start(Setup {
        me: Answer::json(&me),
        notifications,
        created: json_of(&created),
        streaming,
        ..Setup::default()
    })
    .await
    .unwrap()
}

/// Waits up to 15 s for `cond` on the fake instance.
async fn until(fake: &FakeMastodon, what: &str, cond: impl Fn(&FakeMastodon) -> bool) {
    for _ in 0..300 {
        if cond(fake) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "timed out waiting for {what}: {} polls, {} connections, {} posts",
        fake.polls(),
        fake.connections(),
        fake.posts().len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_brings_mentions_and_polling_covers_its_outages() {
    let Some(recorded) = recorded_stream() else {
        return;
    };
    // The recorded user stream: update, notification (admin: "beep beep
    // I'm a jeep"), update, notification (a direct "pssssst!"),
    // status.update, delete. The account streaming is mastodonpy_test.
    let kinds: Vec<&str> = recorded.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "update",
            "notification",
            "update",
            "notification",
            "status.update",
            "delete"
        ]
    );
    let me = recorded[0].1["account"].clone();
    assert_eq!(me["acct"], "mastodonpy_test");
    let jeep = recorded[1].1.clone();
    let psst = recorded[3].1.clone();
    assert_eq!(psst["status"]["visibility"], "direct");

    let live = serve_live(me, Vec::new(), true).await;
    let base = live.base_url();
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(
        &dir,
        r#"
[[rule]]
id = "noted"
keywords = ["jeep", "pssssst"]
reply = "{author} noted, we are on it"
"#,
    );
    // Polling alone would take ten minutes: whatever arrives sooner came
    // through the stream or the poll that covers a switch.
    let m = MastodonConfig {
        base_url: base.clone(),
        streaming_url: Some(base.clone()),
        poll_interval_ms: 600_000,
        stream_poll_interval_ms: 600_000,
        stream_idle_timeout_ms: 1_000,
        ..MastodonConfig::default()
    };
    let clock = Clock::new();
    let client = MastodonClient::new(&m, Secret::new("DUMMY"), clock.clone());
    let bot = Arc::new(bot(&config, vec![Arc::new(client)], &clock).await);
    let shutdown = helpdesk::runtime::shutdown::Shutdown::new();
    let running = tokio::spawn(bot.clone().run(shutdown.clone(), None));
    let push = |n: &serde_json::Value| assert!(live.stream(n), "a stream is open");

    // 1. Live: a mention pushed on the stream is answered at once.
    until(&live, "the stream", |l| l.connections() == 1).await;
    until(&live, "the poll covering the connection", |l| {
        l.polls() >= 2
    })
    .await;
    live.push(jeep.clone());
    push(&jeep);
    until(&live, "the streamed mention's reply", |l| {
        l.posts().len() == 1
    })
    .await;
    let polls_while_live = live.polls();
    assert!(
        polls_while_live <= 3,
        "{polls_while_live} polls: the stream did the work"
    );

    // 2. The stream goes silent (no heartbeat) and the server refuses to
    // reconnect; a DM written meanwhile comes by polling.
    live.set_streaming(false);
    live.set_heartbeat(false);
    live.push(psst.clone());
    until(&live, "the DM found by polling", |l| l.posts().len() == 2).await;
    {
        let posts = live.posts();
        assert_eq!(posts[1].form["visibility"], "direct");
        assert!(posts[1].form["status"].starts_with("@mastodonpy_test_2 "));
    }

    // 3. A mention written while the stream is down, then the stream is
    // back: the poll covering the reconnection finds it.
    let third = another(&jeep, 18);
    live.push(third.clone());
    live.set_streaming(true);
    until(&live, "the reconnection", |l| l.connections() == 2).await;
    until(&live, "the mention written during the outage", |l| {
        l.posts().len() == 3
    })
    .await;

    // 4. Live again; the stream also redelivers the first mention.
    let fourth = another(&psst, 20);
    live.push(fourth.clone());
    push(&jeep);
    push(&fourth);
    until(&live, "the fourth reply", |l| l.posts().len() == 4).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    shutdown.stop();
    running.await.unwrap().unwrap();
    let mut answered: Vec<String> = live
        .posts()
        .iter()
        .map(|p| p.form["in_reply_to_id"].clone())
        .collect();
    answered.sort();
    let mut expected: Vec<&str> = [&jeep, &psst, &third, &fourth]
        .iter()
        .map(|n| n["status"]["id"].as_str().unwrap())
        .collect();
    expected.sort();
    assert_eq!(answered, expected, "every mention answered, none twice");
    let stored: i64 = sqlx::query("SELECT COUNT(*) FROM messages")
        .fetch_one(bot.store().pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(stored, 4, "each message recorded once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_replies_are_checked_against_the_instance_limit() {
    use helpdesk::application::tickets::{self, Command, TicketError};
    use helpdesk::domain::TicketRef;
    let Some(fake) = serve().await else {
        return;
    };
    let clock = Clock::new();
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(
        &dir,
        r#"
[[rule]]
id = "latency"
keywords = ["latencyping"]
escalate = { queue = "tech" }
"#,
    );
    let b = bot(&config, vec![Arc::new(client(&fake.base_url()))], &clock).await;
    settle(&b).await;
    let reply = |n: usize| Command::Reply {
        text: "é".repeat(n),
        dm: true,
    };
    let store = b.store().clone();
    let apply = |cmd: Command| {
        let store = store.clone();
        let now = clock.now_ms();
        async move {
            tickets::apply(
                &store,
                &Default::default(),
                &[],
                TicketRef(1001),
                "ana",
                &cmd,
                now,
            )
            .await
        }
    };
    // 700 characters: over Mastodon's default, within this instance's 1 000.
    apply(reply(700)).await.unwrap();
    let err = apply(reply(1001)).await.unwrap_err();
    assert!(
        matches!(
            err,
            TicketError::TooLong {
                count: 1001,
                max: 1000,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helpdesk_run_serves_a_mastodon_account_as_a_process() {
    let (Some(stream), Some(social)) = (
        recorded_stream(),
        recorded(
            "mastodon.social/test_entity_notification.yaml",
            "GET",
            "/api/v1/notifications",
        ),
    ) else {
        return;
    };
    // mastodon.social's 40 notifications (39 of deleted posts) are there
    // before the bot starts; a mention comes live once it runs.
    let notes: Vec<serde_json::Value> = serde_json::from_str(&social.body).unwrap();
    let live = serve_live(
        stream[0].1["account"].clone(),
        notes.into_iter().rev().collect(),
        true,
    )
    .await;
    let base = live.base_url();
    let dir = tempfile::tempdir().unwrap();
    let rules = common::rules_dir(
        dir.path(),
        r#"
[[rule]]
id = "ping"
keywords = ["latencyping"]
reply = "pong"

[[rule]]
id = "private"
keywords = ["jeep"]
reply = "{author} we will follow up in private"
via = "dm"
"#,
    );
    let config = dir.path().join("helpdesk.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"sqlite://{}\"\nrules = \"{}\"\n\n[mastodon]\nbase_url = \"{base}\"\naccess_token_env = \"HD_TEST_MASTODON_TOKEN\"\n",
            dir.path().join("bot.db").display(),
            rules.display(),
        ),
    )
    .unwrap();
    let log_path = dir.path().join("run.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_helpdesk"))
        .args(["run", "--answer-backlog", "--config"])
        .arg(&config)
        .env("HD_TEST_MASTODON_TOKEN", "sekrit-mastodon-token")
        .env("RUST_LOG", "debug")
        .env("HELPDESK_ADMIN_LISTEN", "")
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    until(&live, "the reply to the one live status", |l| {
        l.posts().len() == 1
    })
    .await;
    // The instance names no streaming URL here: the stream is on base_url.
    until(&live, "the stream", |l| l.connections() == 1).await;
    let jeep = another(&stream[1].1, 550622700);
    live.push(jeep.clone());
    assert!(live.stream(&jeep), "a stream is open");
    until(&live, "the reply by DM", |l| l.posts().len() == 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    common::terminate(&child);
    assert!(child.wait().unwrap().success(), "clean exit on SIGTERM");

    let posts = live.posts();
    assert_eq!(posts.len(), 2, "every mention answered once");
    assert_eq!(posts[0].form["in_reply_to_id"], "116275331587890092");
    assert_eq!(
        posts[0].form["visibility"], "direct",
        "a DM is answered by DM"
    );
    assert_eq!(
        posts[0].form["status"],
        "@latencyobs@icosahedron.website pong"
    );
    assert_eq!(posts[1].form["visibility"], "direct", "the rule says dm");
    assert!(
        posts[1].form["status"].starts_with("@customer550622700 "),
        "{}",
        posts[1].form["status"]
    );
    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(!logs.contains("sekrit-mastodon-token"), "no token in logs");
    assert!(logs.contains("stream connected"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_whose_answer_is_lost_is_posted_once() {
    use crate::common::fault_proxy::{Fault, FaultProxy};
    // The instance makes the status, then the answer is lost or spoilt on
    // the way back: the resend carries the same Idempotency-Key, and
    // Mastodon gives back the status it made.
    for fault in [
        Fault::CutBeforeHeaders,
        Fault::CutMidBody,
        Fault::BadGatewayAfterActing,
        Fault::GarbageAfterActing,
    ] {
        let Some(fake) = serve().await else {
            return;
        };
        let proxy = FaultProxy::start(&fake.base_url(), 3).await;
        proxy.script("POST", "/api/v1/statuses", &[fault]);
        let clock = Clock::new();
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(&dir, PING_RULE);
        let b = bot(&config, vec![Arc::new(client(&proxy.base_url()))], &clock).await;
        for _ in 0..4 {
            settle(&b).await;
            clock.advance(Duration::from_secs(60));
        }
        let posts = fake.posts();
        assert_eq!(posts.len(), 2, "{fault:?}: sent, then resent once");
        assert_eq!(posts[0].key, posts[1].key, "{fault:?}: with the same key");
        assert_eq!(fake.statuses(), 1, "{fault:?}: one status");
        let status: String = sqlx::query("SELECT status FROM outbox")
            .fetch_one(b.store().pool())
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        assert_eq!(status, "sent", "{fault:?}");
        assert_eq!(proxy.faults(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_display_names_never_steer_a_status() {
    let Some(recorded) = recorded_stream() else {
        return;
    };
    let me = recorded[0].1["account"].clone();
    let (jeep, psst) = (recorded[1].1.clone(), recorded[3].1.clone());
    let names = [
        "@victim@mastodon.social",
        "Eve @AcmeFibre_CEO https://evil.example/phish #scam",
        "Eve ＠victim＠mastodon.social",
        "Eve @\u{200B}victim",
        "\u{202E}moc.live\u{202C} www.evil.example",
        "x",
    ];
    let mut notes = Vec::new();
    for (i, name) in names.iter().enumerate() {
        // A public mention and a direct one from each hostile customer.
        for (k, base) in [&jeep, &psst].into_iter().enumerate() {
            let id = 10 + 2 * i as u32 + k as u32;
            let mut n = another(base, id);
            n["account"]["display_name"] = serde_json::json!(name);
            n["status"]["account"] = n["account"].clone();
            notes.push(n);
        }
    }
    notes.last_mut().unwrap()["account"]["display_name"] = serde_json::json!("y".repeat(2000));
    let live = serve_live(me, notes.clone(), false).await;
    let base = live.base_url();
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(
        &dir,
        r#"
[[rule]]
id = "noted"
keywords = ["jeep", "pssssst"]
reply = "Hi {name}, noted {author}!"
"#,
    );
    // The recorded direct mentions share one conversation: no cap here.
    let mut config = config;
    config.limits.per_conversation = 100;
    let clock = Clock::new();
    let b = bot(&config, vec![Arc::new(client(&base))], &clock).await;
    settle(&b).await;
    let posts: Vec<_> = live.posts().into_iter().map(|p| p.form).collect();
    let reasons: Vec<String> = sqlx::query(
        "SELECT author_handle || ' ' || action || ' ' || auto_reply || ' ' || COALESCE(reason, '') FROM messages",
    )
    .fetch_all(b.store().pool())
    .await
    .unwrap()
    .iter()
    .map(|r| r.try_get(0).unwrap())
    .collect();
    assert_eq!(posts.len(), notes.len(), "everyone answered: {reasons:#?}");
    for (p, n) in posts.iter().zip(&notes) {
        let text = &p["status"];
        let acct = n["account"]["acct"].as_str().unwrap();
        assert!(
            helpdesk::domain::inert::foreign_mentions(
                text,
                acct,
                helpdesk::domain::Platform::Mastodon
            )
            .is_empty(),
            "{text}"
        );
        assert!(text.starts_with(&format!("@{acct} ")), "{text}");
        assert!(!text.contains("://") && !text.contains('#'), "{text}");
        assert!(
            !text.contains('\u{202E}') && !text.contains('\u{200B}'),
            "{text}"
        );
        assert!(text.chars().count() < 120, "the name is cut to 30: {text}");
    }
    let direct = posts.iter().filter(|p| p["visibility"] == "direct").count();
    assert_eq!(
        direct,
        names.len(),
        "each direct mention answered in private"
    );
}
