//! The X connector: the real recorded payloads replayed by the sandbox,
//! budget-aware polling over a simulated day, OAuth 2.0 refresh and login,
//! webhooks, and a chaos run against the sandbox.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use helpdesk::domain::Stream;
use helpdesk::domain::clock::Clock;
use helpdesk::domain::secret::Secret;
use helpdesk::domain::{MessageId, UserId};
use helpdesk::platforms::x::XClient;
use helpdesk::platforms::x::auth::{Credentials, TokenSet, read_token_file, write_token_file};
use helpdesk::platforms::x::config::XConfig;
use helpdesk::platforms::x::fake::{
    Endpoint, Replay, Sandbox, SandboxConfig, Window, parse_traffic,
};
use helpdesk::platforms::{ApiError, Connector, Outgoing, ReplyKind};
use sqlx::Row;

use crate::common::{self, Db, Setup, line, spawn};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/x-api-v2");

fn fixture(rel: &str) -> Option<String> {
    std::fs::read_to_string(format!("{FIXTURES}/{rel}")).ok()
}

/// The sandbox answering with the recorded files of X (the account, a
/// page of mentions, of search results, of DM events, a posted tweet and
/// DM), noting every query. `None` (the test skips) without the fixtures.
async fn recorded_x() -> Option<Sandbox> {
    let me = fixture("cassettes/tweepy-decoded/test_client_get_me.01.GET.users_me.200.json")?;
    let mentions = fixture(
        "cassettes/tweepy-decoded/test_client_get_users_mentions.01.GET.users_783214_mentions.200.json",
    )?;
    let search = fixture("docs-samples/sns-sdks-python-twitter/searches/search_tweets_query.json")?;
    let dms =
        fixture("docs-samples/sns-sdks-python-twitter/dm_events/events_by_conversation.json")?;
    let tweet = fixture(
        "cassettes/tweepy-decoded/test_client_create_and_delete_tweet.01.POST.tweets.201.json",
    )?;
    let dm = fixture(
        "cassettes/tweepy-decoded/test_manage_and_lookup_direct_messages.01.POST.dm_conversations_with_750362064426721281_messages.201.json",
    )?;
    let sandbox = Sandbox::start(Vec::new(), SandboxConfig::default(), Clock::new())
        .await
        .unwrap();
    sandbox.replay(Endpoint::Me, Replay::every(200, me));
    // A first read gets the recorded page; a following page or a read
    // after the cursor, nothing new.
    sandbox.replay(Endpoint::Mentions, Replay::first_page(mentions));
    sandbox.replay(Endpoint::Search, Replay::first_page(search));
    sandbox.replay(Endpoint::DmEvents, Replay::first_page(dms));
    sandbox.replay(Endpoint::PostTweet, Replay::every(201, tweet));
    sandbox.replay(Endpoint::PostDm, Replay::every(201, dm));
    Some(sandbox)
}

/// An X client of the sandbox, with its token.
fn client(sandbox: &Sandbox) -> XClient {
    let cfg = XConfig {
        base_url: sandbox.base_url(),
        ..XConfig::default()
    };
    XClient::new(&cfg, Secret::new(sandbox.token()), Clock::new())
}

#[tokio::test]
async fn recorded_payloads_become_exact_events_and_cursors() {
    let Some(sandbox) = recorded_x().await else {
        eprintln!("skip: fixtures not found at {FIXTURES}");
        return;
    };
    let x = client(&sandbox);
    let me = x.whoami().await.unwrap();
    assert_eq!(
        (me.id.as_str(), me.handle.as_str()),
        ("1072250532645998596", "TweepyDev")
    );

    let b = x.poll(Stream::Mentions, None).await.unwrap();
    let ids: Vec<&str> = b.events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), 10);
    assert_eq!(ids[0], "1578516107798884353", "oldest first");
    assert_eq!(ids[9], "1578516295611748353");
    assert_eq!(
        b.events[9].text,
        "@Twitter @TwitterSupport this is my ENTIRE feed, why do you think i want this. respond to my ticket. https://t.co/W5GxALkkZd"
    );
    assert_eq!(b.cursor.as_deref(), Some("1578516295611748353"));
    // The recorded next_token was followed, with the fields the bot needs.
    let q = sandbox.queries(Endpoint::Mentions);
    assert!(
        q.iter()
            .any(|s| s.contains("pagination_token=7140dibdnow9c7btw423i3sy3u5zupmkcpofxcsmxj48j")),
        "{q:?}"
    );
    assert!(q[0].contains("expansions=author_id"));
    assert!(q[0].contains("max_results=100"));
    assert!(
        q[0].contains(
            "tweet.fields=created_at,conversation_id,in_reply_to_user_id,referenced_tweets"
        )
    );

    let b = x.poll(Stream::Search, None).await.unwrap();
    let got: Vec<(&str, &str)> = b
        .events
        .iter()
        .map(|e| (e.id.as_str(), e.author.handle.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("1275653067283759104", "snowman"),
            ("1275763727908798470", "jellybeanjones"),
            ("1275882613572583424", "snowman"),
            ("1276035977375477760", "happycamper"),
        ]
    );
    assert_eq!(b.cursor.as_deref(), Some("1276035977375477760"));
    let q = sandbox.queries(Endpoint::Search);
    assert!(
        q.iter()
            .any(|s| s.contains("query=TweepyDev -from:TweepyDev -is:retweet")),
        "{q:?}"
    );

    let b = x.poll(Stream::Dms, None).await.unwrap();
    assert_eq!(b.events.len(), 1);
    let e = &b.events[0];
    assert_eq!(e.id.as_str(), "1585321444547837956");
    assert_eq!(e.author.id.as_str(), "906948460078698496");
    assert_eq!(e.conversation.as_str(), "1585094756761149440");
    assert_eq!(e.text, "Another photo https://t.co/J5KotyeIyd");
    assert_eq!(b.cursor.as_deref(), Some("1585321444547837956"));

    let out = |kind| Outgoing {
        kind,
        text: "Test Tweet".into(),
        in_reply_to: MessageId::new("1578516295611748353"),
        recipient: UserId::new("750362064426721281"),
        recipient_handle: helpdesk::domain::Handle::new("someone"),
        idempotency_key: "k".into(),
        row: 1,
        queued_at: 0,
        exclude_from_thread: Vec::new(),
    };
    assert_eq!(
        x.send(&out(ReplyKind::Public)).await.unwrap().id,
        "1456012973835788293"
    );
    assert_eq!(
        x.send(&out(ReplyKind::Dm)).await.unwrap().id,
        "1585800613253812228"
    );
    let usage = x.usage();
    assert_eq!(usage.requests["mentions"], 2);
    assert_eq!(usage.requests["post_tweet"], 1);
}

#[tokio::test]
async fn garbage_answers_are_clear_errors_not_panics() {
    for body in [
        "<html>oops</html>",
        r#"{"data":[{"id":5}]}"#,
        "",
        r#"{"data":{"id":"1"}}"#,
    ] {
        let sandbox = Sandbox::start(Vec::new(), SandboxConfig::default(), Clock::new())
            .await
            .unwrap();
        sandbox.replay(Endpoint::Me, Replay::every(200, body));
        let err = client(&sandbox).whoami().await.unwrap_err();
        assert!(
            matches!(err, ApiError::Malformed(_)),
            "{body:?} gave {err:?}"
        );
        assert!(err.to_string().contains("malformed"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_day_stays_within_10_mention_reads_per_15_minutes() {
    // Basic tier: 10 mention reads per 15 minutes. 150 mentions arrive over
    // a day; the scheduler must see every one without a single 429.
    let mut setup = Setup::new(Db::Sqlite, "");
    setup.sandbox.limits.insert(
        Endpoint::Mentions,
        Window {
            limit: 10,
            window: Duration::from_secs(900),
        },
    );
    setup.x.dms = false;
    setup.x.search = false;
    let Some(app) = spawn(setup).await else {
        return;
    };
    let c = app.bot.connectors()[0].clone();
    let mut sched = app.bot.schedule_for(c.as_ref());
    let start = app.clock.now_ms();
    let day = 24 * 3600 * 1000;
    let arrivals: Vec<i64> = (0..150).map(|i| start + 60_000 + i * 570_000).collect();
    let mut next_arrival = 0;
    let mut pushed_at = HashMap::new();
    loop {
        let now = app.clock.now_ms();
        if now > start + day {
            break;
        }
        while next_arrival < arrivals.len() && arrivals[next_arrival] <= now {
            let id = format!("{}", 50_000 + next_arrival);
            app.sandbox.push(
                parse_traffic(
                    &line(
                        &id,
                        "mention",
                        &format!("c{next_arrival}"),
                        "@lumio code wifi ?",
                    ),
                    "t",
                )
                .unwrap(),
            );
            pushed_at.insert(id, now);
            next_arrival += 1;
        }
        if !app.bot.poll_due(c.as_ref(), &mut sched).await {
            let wake = sched
                .next_due()
                .unwrap()
                .min(arrivals.get(next_arrival).copied().unwrap_or(i64::MAX));
            app.clock
                .advance(Duration::from_millis((wake - now).max(1) as u64));
        }
    }
    let log = app.sandbox.request_log(Endpoint::Mentions);
    assert!(log.iter().all(|(_, s)| *s == 200), "no 429 in a whole day");
    // Any 15 minutes hold at most 10 reads.
    for (i, (t, _)) in log.iter().enumerate() {
        let in_window = log[i..]
            .iter()
            .take_while(|(u, _)| *u < t + 900_000)
            .count();
        assert!(
            in_window <= 10,
            "{in_window} reads within 15 minutes from {t}"
        );
    }
    // Every mention was picked up, within two polling intervals.
    let rows = sqlx::query("SELECT platform_message_id, received_at FROM messages")
        .fetch_all(app.store.pool())
        .await
        .unwrap();
    assert_eq!(rows.len(), 150);
    let mut worst = 0;
    for r in rows {
        let id: String = r.try_get(0).unwrap();
        let at: i64 = r.try_get(1).unwrap();
        let lag = at - pushed_at[&id];
        worst = worst.max(lag);
        assert!(lag <= 200_000, "mention {id} seen {lag} ms late");
    }
    eprintln!(
        "simulated day: {} mention reads, 0 429s, worst pickup delay {:.0} s",
        log.len(),
        worst as f64 / 1000.0
    );
    assert!(
        log.len() >= 90,
        "the budget is used, not hoarded: {} reads",
        log.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_tokens_refresh_before_expiry_and_once_after_a_401() {
    let traffic = line("4001", "mention", "ana", "@lumio code wifi ?");
    let Some(app) = spawn(Setup::new(Db::Sqlite, &traffic)).await else {
        return;
    };
    let file = app.dir.path().join("x-token.json");
    // An access token that expires in a minute: refreshed before first use.
    write_token_file(
        &file,
        &TokenSet {
            access_token: app.sandbox.token(),
            refresh_token: Some(app.sandbox.refresh_token()),
            expires_at: Some(app.clock.now_ms() + 60_000),
        },
    )
    .unwrap();
    let cfg = XConfig {
        base_url: app.sandbox.base_url(),
        ..XConfig::default()
    };
    let creds = Credentials::refreshing(
        file.clone(),
        "client-1".into(),
        None,
        format!("{}/2/oauth2/token", app.sandbox.base_url()),
    )
    .unwrap();
    let x = XClient::with_credentials(&cfg, creds, app.clock.clone());
    x.whoami().await.unwrap();
    let t1 = read_token_file(&file).unwrap();
    assert_ne!(
        t1.access_token,
        app.sandbox.token(),
        "refreshed before expiry"
    );
    assert_eq!(
        t1.refresh_token.as_deref(),
        Some(app.sandbox.refresh_token().as_str())
    );
    // The token is revoked behind our back: one 401, one refresh, success.
    app.sandbox.revoke(&t1.access_token);
    x.whoami().await.unwrap();
    let t2 = read_token_file(&file).unwrap();
    assert_ne!(t2.access_token, t1.access_token);
    assert_eq!(x.usage().requests["users_me"], 3, "two calls, one retried");
    // Nothing left to refresh with: a clear 401, no loop.
    app.sandbox.revoke(&t2.access_token);
    let mut t3 = t2.clone();
    t3.refresh_token = Some("stale".into());
    write_token_file(&file, &t3).unwrap();
    let x = XClient::with_credentials(
        &cfg,
        Credentials::refreshing(
            file,
            "client-1".into(),
            None,
            format!("{}/2/oauth2/token", app.sandbox.base_url()),
        )
        .unwrap(),
        app.clock.clone(),
    );
    assert_eq!(x.whoami().await.unwrap_err(), ApiError::Unauthorized);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_login_walks_the_pkce_flow_and_saves_a_private_token_file() {
    let Some(app) = spawn(Setup::new(Db::Sqlite, "")).await else {
        return;
    };
    let config = app.dir.path().join("helpdesk.toml");
    std::fs::write(
        &config,
        format!(
            "[x]\nbase_url = \"{}\"\ntoken_file = \"x-token.json\"\nclient_id_env = \"HD_TEST_CLIENT_ID\"\n",
            app.sandbox.base_url()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_helpdesk"))
        .args(["x", "login", "--config"])
        .arg(&config)
        .env("HD_TEST_CLIENT_ID", "client-1")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The operator pastes the redirect, without the state (only the code).
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"sandbox-code\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("code_challenge_method=S256"), "{err}");
    assert!(err.contains("offline.access"), "{err}");
    let file = app.dir.path().join("x-token.json");
    let t = read_token_file(&file).unwrap();
    assert!(t.access_token.starts_with("sandbox-token-"));
    assert!(!err.contains(&t.access_token), "the token is not printed");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_answer_crc_refuse_forgeries_and_feed_the_pipeline() {
    use helpdesk::platforms::x::webhook::{router, signature};
    let Some(app) = spawn(Setup::new(Db::Sqlite, "")).await else {
        return;
    };
    let secret = Secret::new("test-consumer-secret");
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/x", listener.local_addr().unwrap());
    let me = app
        .bot
        .account(helpdesk::domain::Platform::X)
        .unwrap()
        .id
        .clone();
    let shutdown = helpdesk::runtime::shutdown::Shutdown::new();
    helpdesk::runtime::serve::serve_until(
        listener,
        router("/webhooks/x", &secret, me, tx),
        helpdesk::runtime::config::HttpLimits::default(),
        "webhook",
        &shutdown,
    );
    let app = Arc::new(app);
    {
        let app = app.clone();
        tokio::spawn(async move {
            while let Some((events, ack)) = rx.recv().await {
                let r = app
                    .bot
                    .ingest_events(helpdesk::domain::Platform::X, events)
                    .await;
                let _: Result<(), _> = ack.send(r.map(|_| ()).map_err(|e| e.to_string()));
            }
        });
    }
    let http = helpdesk::platforms::http::http_client();
    // CRC: the expected value was computed with Python's hmac module.
    let crc: serde_json::Value = http
        .get(format!("{url}?crc_token=challenge-123"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        crc["response_token"],
        "sha256=tkNEg0seEcYQ8M3405Unns/xCXZPr0AfN2Yx77Yg+c8="
    );
    let body = serde_json::json!({
        "for_user_id": "1000000000000000001",
        "tweet_create_events": [{
            "id_str": "4101", "text": "@lumio code wifi ?",
            "in_reply_to_status_id_str": null,
            "user": {"id_str": "2000000009", "screen_name": "hookuser", "name": "Hook User"}
        }]
    })
    .to_string();
    let post = |sig: Option<String>, body: String| {
        let mut r = http.post(&url).body(body);
        if let Some(s) = sig {
            r = r.header("x-twitter-webhooks-signature", s);
        }
        r.send()
    };
    let forged = signature(&Secret::new("wrong"), body.as_bytes());
    assert_eq!(
        post(Some(forged), body.clone()).await.unwrap().status(),
        401
    );
    assert_eq!(post(None, body.clone()).await.unwrap().status(), 401);
    // Signed, but for another account subscribed to the same X app.
    let other = body.replace("1000000000000000001", "1000000000000000777");
    let signed = signature(&Secret::new("test-consumer-secret"), other.as_bytes());
    assert_eq!(post(Some(signed), other).await.unwrap().status(), 403);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM messages").await,
        0,
        "nothing stored"
    );
    app.bot.drain_once().await.unwrap();
    assert!(app.sandbox.posted().is_empty(), "nothing answered");
    let good = signature(&Secret::new("test-consumer-secret"), body.as_bytes());
    assert_eq!(
        post(Some(good.clone()), body.clone())
            .await
            .unwrap()
            .status(),
        200
    );
    // Delivered twice (webhook retry, or the same mention polled): once.
    assert_eq!(post(Some(good), body).await.unwrap().status(), 200);
    app.bot.drain_once().await.unwrap();
    assert_eq!(app.count("SELECT COUNT(*) FROM messages").await, 1);
    let posted = app.sandbox.posted();
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].target, "4101");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_limits_429s_duplicates_and_5xx_still_answer_every_message_once() {
    // 40 customers ask FAQ questions; the server limits reads and posts,
    // throws 5xx at both, and refuses a duplicate; every message that
    // should be answered is answered exactly once.
    let asks = [
        "code wifi ?",
        "vos horaires ?",
        "activer ma sim",
        "where is my order",
    ];
    let traffic: Vec<String> = (0..40)
        .map(|i| {
            line(
                &format!("{}", 60_000 + i),
                "mention",
                &format!("k{i}"),
                &format!("@lumio {}", asks[i % 4]),
            )
        })
        .collect();
    let mut setup = Setup::new(Db::Sqlite, &traffic.join("\n"));
    // One answer without {author}: X refuses the second copy as duplicate.
    let rules = tempfile::tempdir().unwrap();
    setup.rules = Some(common::rules_dir(
        rules.path(),
        r#"
[[rule]]
id = "hours"
keywords = ["horaires"]
reply = "Nous répondons de 8h à 21h, 7j/7."

[[rule]]
id = "other"
keywords = ["wifi", "sim", "order"]
reply = "{author} voici l'aide : https://aide.lumio.example"
"#,
    ));
    setup.x.dms = false;
    setup.x.search = false;
    setup.sandbox.limits.insert(
        Endpoint::Mentions,
        Window {
            limit: 3,
            window: Duration::from_secs(900),
        },
    );
    setup.sandbox.limits.insert(
        Endpoint::PostTweet,
        Window {
            limit: 7,
            window: Duration::from_secs(900),
        },
    );
    // 40 replies at 7 per 15 minutes take 90 minutes: keep them that long.
    setup.config.limits.reply_max_age_secs = 4 * 3600;
    let Some(app) = spawn(setup).await else {
        return;
    };
    app.sandbox.fail_next(Endpoint::Mentions, &[503, 500]);
    app.sandbox
        .fail_next(Endpoint::PostTweet, &[502, 503, 500, 503]);
    let c = app.bot.connectors()[0].clone();
    let mut sched = app.bot.schedule_for(c.as_ref());
    let review = || async {
        app.count("SELECT COUNT(*) FROM outbox WHERE status = 'needs_review'")
            .await as usize
    };
    for _ in 0..2000 {
        while app.bot.poll_due(c.as_ref(), &mut sched).await {}
        app.bot.drain_once().await.unwrap();
        if app.sandbox.posted().len() + review().await == 40 {
            break;
        }
        app.clock.advance(Duration::from_secs(20));
    }
    let posted = app.sandbox.posted();
    let targets: HashSet<&str> = posted.iter().map(|p| p.target.as_str()).collect();
    // A 5xx from the post endpoint leaves a reply in doubt. One whose text
    // nine other replies share cannot be settled by X's "duplicate" answer:
    // an agent gets it, with a ticket, rather than a risk of a second copy.
    let in_review: Vec<String> =
        sqlx::query("SELECT text FROM outbox WHERE status = 'needs_review'")
            .fetch_all(app.store.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get(0).unwrap())
            .collect();
    assert!(
        in_review.iter().all(|t| t.contains("8h à 21h")),
        "only replies with a shared text: {in_review:?}"
    );
    assert_eq!(
        posted.len() + in_review.len(),
        40,
        "every message answered or with an agent"
    );
    assert_eq!(targets.len(), posted.len(), "none twice");
    let log = app.sandbox.request_log(Endpoint::PostTweet);
    assert!(log.iter().any(|(_, s)| *s == 429));
    let varied = posted
        .iter()
        .filter(|p| p.text.starts_with("@k") && p.text.contains("8h à 21h"))
        .count();
    assert_eq!(
        varied + in_review.len(),
        9,
        "10 identical answers: the first as is, the others varied after a 403 (never in doubt) or with an agent"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE status NOT IN ('sent', 'needs_review')")
            .await,
        0
    );
}
