//! The Bluesky connector against the fake PDS
//! (`helpdesk::platforms::bluesky::fake`, built from the lexicons): the
//! whole bot, as `helpdesk run` builds it (the session kept in the
//! database), on both databases: mentions, replies, quotes and DMs answered
//! once with facets the PDS accepts; `via = "dm"` and customers who do not
//! take DMs; sessions across restarts, expiry and revocation; write points
//! and 429s; sends cut after the PDS acted, and a crash mid-send.

use std::sync::Arc;
use std::time::Duration;

use helpdesk::domain::clock::Clock;
use helpdesk::domain::secret::Secret;
use helpdesk::platforms::Connector;
use helpdesk::platforms::bluesky::BlueskyClient;
use helpdesk::platforms::bluesky::config::BlueskyConfig;
use helpdesk::platforms::bluesky::fake::{AllowIncoming, FakePds, Limit, PdsSetup};
use helpdesk::platforms::bluesky::session::Sessions;
use helpdesk::rules::{LoadOptions, RuleSet};
use helpdesk::runtime::bot::Bot;
use helpdesk::runtime::config::Config;
use helpdesk::storage::Store;
use helpdesk::storage::oauth_tokens::bluesky::BlueskySession;
use serde_json::Value;
use sqlx::Row;

use crate::common::{self, Db, fault_proxy};

const RULES: &str = r#"
[[rule]]
id = "password"
keywords = ["password"]
reply = "Hi {author}! Reset it here: https://help.acme.example/password — 👋"

[[rule]]
id = "invoice"
keywords = ["invoice"]
reply = "Your invoices are in your account: help.acme.com/invoices"
via = "dm"

[[rule]]
id = "refund"
keywords = ["refund"]
escalate = { queue = "billing", ack = "Thanks {author}, ticket {ticket}: an adviser answers within 24 h." }

[[rule]]
id = "contract"
keywords = ["contract"]
escalate = { queue = "sales", ack = "We'll write to you privately about your contract, {author} ({ticket})." }
via = "dm"
"#;

/// A fake PDS, a database and what it takes to build the bot on them, as
/// many times as a test restarts it.
struct Pds {
    fake: FakePds,
    clock: Clock,
    config: Config,
    /// Where the bot calls: the fake, or a fault proxy in front of it.
    service: String,
    proxy: Option<fault_proxy::FaultProxy>,
    _dir: tempfile::TempDir,
}

impl Pds {
    async fn start(db: Db, setup: PdsSetup, proxy_seed: Option<u64>) -> Option<Pds> {
        let dir = tempfile::tempdir().unwrap();
        let url = common::fresh_db(db, dir.path()).await?;
        let clock = Clock::new();
        let fake = FakePds::start(setup, clock.clone()).await.unwrap();
        let proxy = match proxy_seed {
            Some(seed) => Some(fault_proxy::FaultProxy::start(&fake.base_url(), seed).await),
            None => None,
        };
        let service = proxy
            .as_ref()
            .map_or_else(|| fake.base_url(), |p| p.base_url());
        let config = Config {
            database_url: url,
            rules: common::rules_dir(dir.path(), RULES),
            ..Config::default()
        };
        Some(Pds {
            fake,
            clock,
            config,
            service,
            proxy,
            _dir: dir,
        })
    }

    fn section(&self) -> BlueskyConfig {
        BlueskyConfig {
            service: self.service.clone(),
            identifier: Some(self.fake.brand_handle().try_into().unwrap()),
            min_poll_interval_ms: 0,
            ..BlueskyConfig::default()
        }
    }

    /// The connector as the registry builds it: the session in the database.
    async fn client(&self, password: &str) -> (Arc<dyn Connector>, Store) {
        let store = Store::open(&self.config.database_url).await.unwrap();
        let section = self.section();
        let password = Secret::new(password);
        let home = BlueskySession::new(
            store.clone(),
            &self.fake.brand_handle(),
            &password,
            self.clock.clone(),
        );
        let sessions = Sessions::new(Arc::new(home), self.clock.clone());
        let client = BlueskyClient::new(&section, password, sessions, self.clock.clone());
        (Arc::new(client), store)
    }

    /// A bot, as after a start or a restart.
    async fn bot(&self) -> Bot {
        self.bot_wrapped(|c| c).await
    }

    async fn bot_wrapped(
        &self,
        wrap: impl FnOnce(Arc<dyn Connector>) -> Arc<dyn Connector>,
    ) -> Bot {
        let (client, store) = self.client(&self.fake.app_password()).await;
        let rules = RuleSet::load_dir(&self.config.rules, &LoadOptions::default())
            .unwrap_or_else(|e| panic!("{}", e.render()));
        Bot::new(
            &self.config,
            store,
            Arc::new(rules),
            vec![wrap(client)],
            self.clock.clone(),
        )
        .await
        .unwrap()
    }

    fn customer(&self, handle: &str, allow: AllowIncoming) -> String {
        self.fake.add_customer(handle, "", allow, false)
    }
}

/// Polls and drains until nothing moves, moving the clock past retry
/// pauses (in doubt, 429) when a round does nothing.
async fn settle(bot: &Bot, clock: &Clock) {
    let mut idle = 0;
    for _ in 0..5000 {
        // A failed poll is retried, as the running bot does.
        let fresh = bot
            .poll_once()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|p| !p.duplicate)
            .count();
        let r = bot.drain_once().await.unwrap();
        if fresh == 0 && !r.progressed() && r.sent == 0 {
            idle += 1;
            if idle > 12 {
                return;
            }
            clock.advance(Duration::from_secs(10));
        } else {
            idle = 0;
        }
    }
    panic!("the bot did not settle");
}

async fn rows(store: &Store, sql: &'static str) -> Vec<Vec<String>> {
    sqlx::query(sql)
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (0..r.len())
                .map(|i| {
                    r.try_get::<Option<String>, _>(i)
                        .ok()
                        .flatten()
                        .or_else(|| r.try_get::<i64, _>(i).ok().map(|n| n.to_string()))
                        .unwrap_or_default()
                })
                .collect()
        })
        .collect()
}

/// The text a facet covers, and its feature.
fn faceted(record: &Value) -> Vec<(String, Value)> {
    let text = record["text"].as_str().unwrap();
    record["facets"]
        .as_array()
        .map(|fs| {
            fs.iter()
                .map(|f| {
                    let s = f["index"]["byteStart"].as_u64().unwrap() as usize;
                    let e = f["index"]["byteEnd"].as_u64().unwrap() as usize;
                    (text[s..e].to_owned(), f["features"][0].clone())
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn mentions_replies_quotes_and_dms_are_answered_once_with_facets(db: Db) {
    let Some(p) = Pds::start(db, PdsSetup::default(), None).await else {
        return;
    };
    let ana = p.customer("ana.test", AllowIncoming::All);
    let bob = p.customer("bob.test", AllowIncoming::All);
    let carl = p.customer("carl.test", AllowIncoming::All);
    p.customer("dan.test", AllowIncoming::All);
    let announcement = p.fake.seed_brand_post("Our new plans are out!");
    let m = p
        .fake
        .mention("ana.test", "@brand.test I forgot my password 😭");
    let r = p
        .fake
        .reply_to("bob.test", &announcement, "I want a refund for last month");
    let q = p
        .fake
        .quote("carl.test", &announcement, "how do I change my password?");
    p.fake.notify("dan.test", "like", Some(&announcement));
    p.fake.notify("dan.test", "repost", Some(&announcement));
    p.fake.notify("dan.test", "follow", None);
    p.fake.dm("ana.test", "and a refund please");

    let bot = p.bot().await;
    settle(&bot, &p.clock).await;

    let posts = p.fake.brand_posts();
    assert_eq!(posts.len(), 3, "{posts:#?}\n{:?}", p.fake.rejected());
    let reply_to = |parent: &str| {
        posts
            .iter()
            .find(|c| c.record["reply"]["parent"]["uri"] == parent)
            .unwrap_or_else(|| panic!("no reply to {parent}: {posts:#?}"))
    };
    // Ana's mention: the reply threads under it (it is its own root), and
    // facets name her DID and the link, in bytes after an emoji.
    let to_ana = reply_to(&m.uri);
    assert_eq!(to_ana.record["reply"]["root"]["uri"], m.uri.as_str());
    assert_eq!(to_ana.record["reply"]["parent"]["cid"], m.cid.as_str());
    assert_eq!(to_ana.record["langs"], serde_json::json!(["en"]));
    let f = faceted(&to_ana.record);
    assert_eq!(f.len(), 2, "{f:?}");
    assert_eq!(f[0].0, "@ana.test");
    assert_eq!(f[0].1["did"], ana.as_str());
    assert_eq!(f[1].0, "https://help.acme.example/password");
    assert_eq!(f[1].1["uri"], "https://help.acme.example/password");
    // Bob replied to the brand's post: the ack's root is that post.
    let to_bob = reply_to(&r.uri);
    assert_eq!(
        to_bob.record["reply"]["root"]["uri"],
        announcement.uri.as_str()
    );
    assert!(
        to_bob.record["text"].as_str().unwrap().contains("T-"),
        "{to_bob:?}"
    );
    assert_eq!(faceted(&to_bob.record)[0].1["did"], bob.as_str());
    let to_carl = reply_to(&q.uri);
    assert_eq!(faceted(&to_carl.record)[0].1["did"], carl.as_str());
    for post in &posts {
        assert_eq!(post.rkey.len(), 13, "a TID: {}", post.rkey);
    }
    // Ana's DM: an escalation, acknowledged in her conversation.
    let dms = p.fake.brand_dms();
    assert_eq!(dms.len(), 1, "{dms:?}");
    assert_eq!(dms[0].to_did, ana);
    assert!(dms[0].text.contains("T-"), "{}", dms[0].text);

    let store = bot.store().clone();
    let got = rows(
        &store,
        "SELECT channel, rule_id, action FROM messages ORDER BY id",
    )
    .await;
    assert_eq!(
        got.len(),
        4,
        "likes, reposts, follows and the brand's post are no messages: {got:?}"
    );
    assert_eq!(p.fake.session_creates(), 1);

    // A restart reuses the stored session and answers nobody twice.
    drop(bot);
    let again = p.bot().await;
    // (Bob has a ticket open: his next message joins it, unanswered.)
    p.customer("eve.test", AllowIncoming::All);
    p.fake.mention("eve.test", "@brand.test and my password?");
    settle(&again, &p.clock).await;
    assert_eq!(p.fake.brand_posts().len(), 4);
    assert_eq!(p.fake.brand_dms().len(), 1);
    assert_eq!(p.fake.session_creates(), 1, "the restart signed in again");
    let sent = rows(&store, "SELECT status FROM outbox WHERE status <> 'sent'").await;
    assert!(sent.is_empty(), "{sent:?}");
}

async fn via_dm_reaches_the_inbox_or_the_thread_when_closed(db: Db) {
    let Some(p) = Pds::start(db, PdsSetup::default(), None).await else {
        return;
    };
    let ana = p.customer("ana.test", AllowIncoming::All);
    p.customer("bob.test", AllowIncoming::None);
    p.customer("carl.test", AllowIncoming::Following);
    p.fake
        .mention("ana.test", "@brand.test where is my invoice?");
    let bob_asks = p.fake.mention("bob.test", "@brand.test invoice please");
    p.fake
        .mention("carl.test", "@brand.test about my contract renewal");
    let bot = p.bot().await;
    settle(&bot, &p.clock).await;

    // Ana takes DMs: the FAQ answer is private.
    let dms = p.fake.brand_dms();
    assert_eq!(dms.len(), 1, "{dms:?}");
    assert_eq!(dms[0].to_did, ana);
    assert!(dms[0].text.contains("help.acme.com/invoices"));
    assert_eq!(
        dms[0].facets[0]["features"][0]["uri"],
        "https://help.acme.com/invoices"
    );
    // Bob does not: the same answer in his thread.
    let posts = p.fake.brand_posts();
    assert_eq!(posts.len(), 1, "{posts:#?}");
    assert_eq!(
        posts[0].record["reply"]["parent"]["uri"],
        bob_asks.uri.as_str()
    );
    assert!(
        posts[0].record["text"]
            .as_str()
            .unwrap()
            .contains("invoices")
    );
    // Carl's contract is a private matter: no public ack; his ticket says
    // that he does not take DMs.
    let store = bot.store().clone();
    let notes = rows(
        &store,
        "SELECT e.body FROM ticket_events e JOIN tickets t ON t.id = e.ticket_id \
         WHERE t.customer_handle = 'carl.test' AND e.body IS NOT NULL",
    )
    .await;
    assert!(
        notes
            .iter()
            .any(|n| n[0].contains("cannot reach the customer")),
        "{notes:?}"
    );
    let outbox = rows(
        &store,
        "SELECT customer_handle, kind, status FROM outbox ORDER BY customer_handle",
    )
    .await;
    let want: Vec<Vec<String>> = [
        ["ana.test", "dm", "sent"],
        ["bob.test", "public", "sent"],
        ["carl.test", "dm", "failed"],
    ]
    .iter()
    .map(|r| r.iter().map(|s| s.to_string()).collect())
    .collect();
    assert_eq!(outbox, want);
}

async fn sessions_survive_restarts_expiry_and_a_revoked_refresh(db: Db) {
    let Some(p) = Pds::start(db, PdsSetup::default(), None).await else {
        return;
    };
    p.customer("ana.test", AllowIncoming::All);
    let bot = p.bot().await;
    settle(&bot, &p.clock).await;
    assert_eq!(p.fake.session_creates(), 1);
    drop(bot);
    // A restart loop (systemd restarting a crashing bot) never signs in again.
    for _ in 0..40 {
        let b = p.bot().await;
        b.poll_once().await.unwrap();
    }
    assert_eq!(p.fake.session_creates(), 1, "restarts created sessions");
    // The PDS expires the token early: one refresh, the mention answered.
    let bot = p.bot().await;
    p.fake.expire_access_tokens();
    p.fake.mention("ana.test", "@brand.test password?");
    settle(&bot, &p.clock).await;
    assert_eq!(p.fake.refreshes(), 1);
    assert_eq!(p.fake.brand_posts().len(), 1);
    // Three hours on: renewed before it expires, without a refusal first.
    p.clock.advance(Duration::from_secs(3 * 3600));
    let before = p.fake.rejected().len();
    p.customer("bea.test", AllowIncoming::All);
    p.fake.mention("bea.test", "@brand.test password?");
    settle(&bot, &p.clock).await;
    assert_eq!(p.fake.refreshes(), 2);
    assert_eq!(p.fake.rejected().len(), before, "{:?}", p.fake.rejected());
    assert_eq!(p.fake.brand_posts().len(), 2);
    assert_eq!(p.fake.session_creates(), 1);
    // The stored row is sealed: no token in the clear.
    let store = bot.store().clone();
    let sealed = rows(
        &store,
        "SELECT sealed FROM oauth_tokens WHERE platform = 'bluesky'",
    )
    .await;
    assert!(!sealed[0][0].contains("eyJ"), "a JWT in the clear");
    // A wrong app password is refused at start with what to do.
    let (client, _) = p.client("wrong-pass-word-xxxx").await;
    sqlx::query("DELETE FROM oauth_tokens")
        .execute(store.pool())
        .await
        .unwrap();
    let e = client.whoami().await.unwrap_err().to_string();
    assert!(e.contains("app password"), "{e}");
    // Restarted in a loop with it (each start a new client on the same
    // database): the tries themselves are counted, and stop at ten per
    // five minutes, far from the 30 that lock the account out.
    let before = p.fake.calls("com.atproto.server.createSession");
    for _ in 0..30 {
        let (client, _) = p.client("wrong-pass-word-xxxx").await;
        let _ = client.whoami().await;
        p.clock.advance(Duration::from_secs(5));
    }
    let tried = p.fake.calls("com.atproto.server.createSession") - before;
    assert_eq!(
        tried, 9,
        "one try before the loop, nine in it: ten in five minutes"
    );
}

async fn write_points_and_429s_hold_replies_until_the_reset(db: Db) {
    let mut setup = PdsSetup::default();
    // Room for three posts in ten minutes.
    setup.limits.writes_hourly = Limit::new(9, 600);
    let Some(p) = Pds::start(db, setup, None).await else {
        return;
    };
    for i in 0..5 {
        let h = format!("c{i}.test");
        p.customer(&h, AllowIncoming::All);
        p.fake.mention(&h, "@brand.test password reset?");
    }
    let bot = p.bot().await;
    for _ in 0..6 {
        bot.poll_once().await.unwrap();
        bot.drain_once().await.unwrap();
    }
    assert_eq!(p.fake.brand_posts().len(), 3);
    let store = bot.store().clone();
    let held = rows(&store, "SELECT status FROM outbox WHERE status <> 'sent'").await;
    assert_eq!(held.len(), 2, "{held:?}");
    assert!(
        held.iter().all(|r| r[0] == "queued"),
        "held, not failed: {held:?}"
    );
    p.clock.advance(Duration::from_secs(601));
    settle(&bot, &p.clock).await;
    let posts = p.fake.brand_posts();
    assert_eq!(posts.len(), 5);
    let mut parents: Vec<&str> = posts
        .iter()
        .map(|c| c.record["reply"]["parent"]["uri"].as_str().unwrap())
        .collect();
    parents.sort_unstable();
    parents.dedup();
    assert_eq!(parents.len(), 5, "someone was answered twice");
}

async fn sends_cut_after_the_pds_acted_are_not_posted_twice(db: Db) {
    use fault_proxy::Fault::*;
    let Some(p) = Pds::start(db, PdsSetup::default(), Some(7)).await else {
        return;
    };
    let proxy = p.proxy.as_ref().unwrap();
    proxy.script(
        "POST",
        "/xrpc/com.atproto.repo.createRecord",
        &[
            TooMany,
            CutBeforeHeaders,
            CutMidBody,
            BadGatewayAfterActing,
            GarbageAfterActing,
        ],
    );
    proxy.script(
        "POST",
        "/xrpc/chat.bsky.convo.sendMessage",
        &[CutBeforeHeaders, GarbageAfterActing],
    );
    proxy.script(
        "GET",
        "/xrpc/app.bsky.notification.listNotifications",
        &[Html500, Unavailable],
    );
    for i in 0..4 {
        let h = format!("c{i}.test");
        p.customer(&h, AllowIncoming::All);
        p.fake.mention(&h, "@brand.test password reset?");
    }
    p.customer("d.test", AllowIncoming::All);
    p.fake.dm("d.test", "refund!");
    p.customer("f.test", AllowIncoming::All);
    p.fake.dm("f.test", "my invoice?");
    let bot = p.bot().await;
    settle(&bot, &p.clock).await;
    let posts = p.fake.brand_posts();
    assert_eq!(posts.len(), 4, "{posts:#?}");
    let dms = p.fake.brand_dms();
    assert_eq!(dms.len(), 2, "{dms:#?}");
    let store = bot.store().clone();
    let left = rows(
        &store,
        "SELECT status, reason FROM outbox WHERE status <> 'sent'",
    )
    .await;
    assert!(left.is_empty(), "{left:?}");
    // A 429, four creates and two DMs spoilt after acting, two polls refused.
    assert!(proxy.faults() >= 9, "{:?}", proxy.log());
    // Public posts in doubt were looked up in the repo itself.
    assert!(p.fake.calls("com.atproto.repo.getRecord") >= 4);

    // A crash after the post left and before it was recorded: the restart
    // settles it without a second post.
    p.customer("e.test", AllowIncoming::All);
    p.fake.mention("e.test", "@brand.test password?");
    let crashing = p
        .bot_wrapped(|c| Arc::new(common::CrashAfterSend(c, true)) as Arc<dyn Connector>)
        .await;
    crashing.poll_once().await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(2), crashing.drain_once()).await;
    drop(crashing);
    assert_eq!(p.fake.brand_posts().len(), 5);
    p.clock.advance(Duration::from_secs(600));
    let bot = p.bot().await;
    settle(&bot, &p.clock).await;
    assert_eq!(
        p.fake.brand_posts().len(),
        5,
        "posted twice after the crash"
    );
    let left = rows(
        &store,
        "SELECT status, reason FROM outbox WHERE status <> 'sent'",
    )
    .await;
    assert!(left.is_empty(), "{left:?}");
}

async fn stop_and_a_burst_past_one_page(db: Db) {
    let Some(p) = Pds::start(db, PdsSetup::default(), None).await else {
        return;
    };
    let bot = p.bot().await;
    settle(&bot, &p.clock).await;
    // 250 mentions between two polls: three pages back to the position.
    for i in 0..250 {
        let h = format!("burst{i}.test");
        p.customer(&h, AllowIncoming::All);
        p.fake.mention(&h, "@brand.test where is my refund");
    }
    p.customer("quiet.test", AllowIncoming::All);
    p.fake.dm("quiet.test", "STOP");
    settle(&bot, &p.clock).await;
    p.fake.mention("quiet.test", "@brand.test password?");
    settle(&bot, &p.clock).await;
    let store = bot.store().clone();
    let n = rows(&store, "SELECT COUNT(*) FROM messages").await;
    assert_eq!(n[0][0], "252");
    let tickets = rows(&store, "SELECT COUNT(DISTINCT customer_id) FROM tickets").await;
    assert_eq!(tickets[0][0], "250");
    let quiet = rows(
        &store,
        "SELECT COUNT(*) FROM outbox WHERE customer_handle = 'quiet.test'",
    )
    .await;
    assert_eq!(quiet[0][0], "0", "answered after STOP");
    let twice = rows(
        &store,
        "SELECT COUNT(*) FROM (SELECT message_id FROM outbox GROUP BY message_id HAVING COUNT(*) > 1) d",
    )
    .await;
    assert_eq!(twice[0][0], "0");
    assert!(p.fake.calls("app.bsky.notification.listNotifications") >= 3);
}

async fn two_instances_share_one_session_and_renew_it_once(db: Db) {
    let Some(p) = Pds::start(db, PdsSetup::default(), None).await else {
        return;
    };
    let (a, _) = p.client(&p.fake.app_password()).await;
    let (b, _) = p.client(&p.fake.app_password()).await;
    a.whoami().await.unwrap();
    b.whoami().await.unwrap();
    assert_eq!(
        p.fake.session_creates(),
        1,
        "the second instance signed in again"
    );
    // Both find the token refused at once: one refresh, under the row's
    // lock; the other takes its result (a second refresh with the same,
    // now revoked, token would fail and sign in again).
    for round in 1..=3 {
        p.fake.expire_access_tokens();
        let (ra, rb) = tokio::join!(a.whoami(), b.whoami());
        ra.unwrap();
        rb.unwrap();
        assert_eq!(p.fake.refreshes(), round, "{:?}", p.fake.rejected());
        assert_eq!(p.fake.session_creates(), 1, "{:?}", p.fake.rejected());
    }
}

/// Waits up to 30 s for `what` to hold.
async fn until(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..300 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helpdesk_run_serves_a_bluesky_account_as_a_process() {
    let fake = FakePds::start(PdsSetup::brand("acme.bsky.social"), Clock::new())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rules = common::rules_dir(dir.path(), RULES);
    let config = dir.path().join("helpdesk.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"sqlite://{}\"\nrules = \"{}\"\n\n[bluesky]\nservice = \"{}\"\nidentifier = \"acme.bsky.social\"\napp_password_env = \"HD_TEST_BSKY_PASSWORD\"\n",
            dir.path().join("bot.db").display(),
            rules.display(),
            fake.base_url(),
        ),
    )
    .unwrap();
    let run = |log: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_helpdesk"))
            .args(["run", "--config"])
            .arg(&config)
            .env("HD_TEST_BSKY_PASSWORD", fake.app_password())
            .env("RUST_LOG", "debug")
            .env("HELPDESK_ADMIN_LISTEN", "")
            .stderr(std::fs::File::create(dir.path().join(log)).unwrap())
            .spawn()
            .unwrap()
    };
    fake.add_customer("ana.test", "Ana", AllowIncoming::All, false);
    fake.add_customer("bob.test", "Bob", AllowIncoming::All, false);
    let child = run("run1.log");
    // Give it time to take its first look, then write.
    until("the first poll", || {
        fake.calls("app.bsky.notification.listNotifications") > 0
    })
    .await;
    fake.mention("ana.test", "@acme.bsky.social I lost my password");
    fake.dm("bob.test", "I want a refund");
    until("the reply and the DM", || {
        fake.brand_posts().len() == 1 && fake.brand_dms().len() == 1
    })
    .await;
    common::terminate(&child);
    let mut child = child;
    assert!(child.wait().unwrap().success(), "clean exit on SIGTERM");
    // Restarted: the same session, nobody answered twice, a new mention answered.
    let mut child = run("run2.log");
    fake.add_customer("carl.test", "Carl", AllowIncoming::All, false);
    fake.mention("carl.test", "@acme.bsky.social password help");
    until("the reply to the new mention", || {
        fake.brand_posts().len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    common::terminate(&child);
    assert!(child.wait().unwrap().success());
    assert_eq!(fake.brand_posts().len(), 2);
    assert_eq!(fake.brand_dms().len(), 1);
    assert_eq!(fake.session_creates(), 1, "the restart signed in again");
    for log in ["run1.log", "run2.log"] {
        let text = std::fs::read_to_string(dir.path().join(log)).unwrap();
        assert!(
            !text.contains(&fake.app_password()),
            "the app password in {log}"
        );
        assert!(!text.contains("eyJ"), "a token in {log}");
        assert!(
            !text.contains("lost my password"),
            "a customer's words in {log}"
        );
    }
}

on_both_databases!(
    two_instances_share_one_session_and_renew_it_once,
    mentions_replies_quotes_and_dms_are_answered_once_with_facets,
    via_dm_reaches_the_inbox_or_the_thread_when_closed,
    sessions_survive_restarts_expiry_and_a_revoked_refresh,
    write_points_and_429s_hold_replies_until_the_reset,
    sends_cut_after_the_pds_acted_are_not_posted_twice,
    stop_and_a_burst_past_one_page,
);
