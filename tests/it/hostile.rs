//! Hostile customers: display names built to make the brand's account
//! mention, tag or link someone, through the real pipeline to what the
//! platform receives; and the outbox's last check refusing a post that
//! would mention anyone but the customer, or that no longer fits.

use helpdesk::domain::Platform;
use helpdesk::domain::inert::foreign_mentions;
use helpdesk::domain::text::LengthLimit;
use twitter_text::extractor::Extractor;

use crate::common::{self, Db, Setup, rules_dir};

on_both_databases!(
    hostile_names_never_steer_a_post,
    a_post_mentioning_someone_else_goes_to_an_agent,
    a_reply_that_no_longer_fits_goes_to_an_agent,
    a_reply_leaves_whoever_the_customer_named_out_of_its_thread,
);

/// Names a customer can choose, each meant to make the brand's post
/// mention, tag or link something.
fn hostile_names() -> Vec<String> {
    vec![
        "@elonmusk @POTUS https://evil.example/phish #scam".into(),
        "Eve @AcmeFibre_CEO".into(),
        "Eve ＠AcmeFibre_CEO ＃deal ＄TSLA".into(),
        "Eve @\u{200B}AcmeFibre_CEO".into(),
        "Eve \u{FE6B}victim".into(),
        "@victim@mastodon.social".into(),
        "Eve visit acme-fibre.fr".into(),
        "www.evil.example/login".into(),
        "Eve \u{202E}moc.live\u{202C}".into(),
        "$TSLA to the moon".into(),
        "Eve\nSupport team: DM @lumio_help".into(),
        "x".repeat(2000),
        "\u{200B}\u{200D}\u{2066}".into(),
    ]
}

const HELLO: &str = r#"
[[rule]]
id = "hello"
keywords = ["hello"]
reply = "Hi {name}, thanks for writing {author}!"
"#;

fn traffic_line(id: usize, channel: &str, handle: &str, name: &str) -> String {
    let text = if channel == "dm" {
        "hello"
    } else {
        "@lumio hello"
    };
    serde_json::json!({"id": id.to_string(), "channel": channel, "author": handle, "name": name, "text": text})
        .to_string()
}

async fn hostile_names_never_steer_a_post(db: Db) {
    let names = hostile_names();
    let mut lines = Vec::new();
    for (i, n) in names.iter().enumerate() {
        lines.push(traffic_line(5000 + i, "mention", &format!("pub{i}"), n));
        lines.push(traffic_line(6000 + i, "dm", &format!("dm{i}"), n));
    }
    let dir = tempfile::tempdir().unwrap();
    let mut setup = Setup::new(db, &lines.join("\n"));
    setup.rules = Some(rules_dir(dir.path(), HELLO));
    setup.config.limits.global = helpdesk::domain::limits::Budget {
        replies: 1000,
        per_secs: 60,
    };
    let Some(app) = common::spawn(setup).await else {
        return;
    };
    app.settle().await;
    let posted = app.sandbox.posted();
    assert_eq!(
        posted.len(),
        2 * names.len(),
        "everyone answered: {posted:#?}"
    );
    let x = Extractor::new();
    for p in &posted {
        let handle = p
            .text
            .split("thanks for writing @")
            .nth(1)
            .and_then(|r| r.strip_suffix('!'))
            .unwrap_or_else(|| panic!("the template's shape: {}", p.text));
        assert_eq!(
            x.extract_mentioned_screennames(&p.text),
            [handle],
            "{}",
            p.text
        );
        assert!(x.extract_hashtags(&p.text).is_empty(), "{}", p.text);
        assert!(x.extract_cashtags(&p.text).is_empty(), "{}", p.text);
        assert!(x.extract_urls(&p.text).is_empty(), "{}", p.text);
        assert!(!p.text.contains("://"), "{}", p.text);
        for (platform, max) in [(Platform::X, 280), (Platform::Mastodon, 500)] {
            assert!(
                foreign_mentions(&p.text, handle, platform).is_empty(),
                "{platform}: {}",
                p.text
            );
            assert!(LengthLimit { platform, max }.count(&p.text) <= max);
        }
        let invisible = |c: char| {
            c.is_control()
                || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
        };
        assert!(!p.text.chars().any(invisible), "{:?}", p.text);
    }
}

async fn a_post_mentioning_someone_else_goes_to_an_agent(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_dir(
        dir.path(),
        r#"
[[rule]]
id = "boss"
keywords = ["manager"]
reply = "{author} our manager @lumio_ceo will call you"
"#,
    );
    let mut setup = Setup::new(db, &traffic_line(7001, "mention", "ana", "Ana"));
    setup.traffic = setup
        .traffic
        .replace("@lumio hello", "@lumio manager please");
    setup.rules = Some(rules);
    let Some(app) = common::spawn(setup).await else {
        return;
    };
    app.settle().await;
    assert!(app.sandbox.posted().is_empty(), "never sent");
    assert_eq!(app.outbox().await[0].0, "needs_review");
    let note = app.text("SELECT note FROM tickets").await;
    assert!(note.contains("@lumio_ceo"), "the ticket says why: {note}");
}

async fn a_reply_that_no_longer_fits_goes_to_an_agent(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let mut setup = Setup::new(db, &traffic_line(7101, "mention", "ana", "Ana"));
    setup.rules = Some(rules_dir(dir.path(), HELLO));
    let Some(app) = common::spawn(setup).await else {
        return;
    };
    // The platform's limit dropped since the rules were checked.
    app.store
        .set_length_limit(LengthLimit {
            platform: Platform::X,
            max: 20,
        })
        .await
        .unwrap();
    app.settle().await;
    assert!(app.sandbox.posted().is_empty());
    assert_eq!(app.outbox().await[0].0, "needs_review");
    let reason = app.text("SELECT reason FROM outbox").await;
    assert!(reason.contains("where x allows 20"), "{reason}");
    let tickets = app.count("SELECT COUNT(*) FROM tickets").await;
    assert_eq!(tickets, 1, "a ticket, not a silent failure");
}

async fn a_reply_leaves_whoever_the_customer_named_out_of_its_thread(db: Db) {
    // X puts the accounts a tweet mentions in the thread of a reply to it:
    // the brand's answer would notify the CEO and a stranger.
    let dir = tempfile::tempdir().unwrap();
    let mut setup = Setup::new(db, &traffic_line(7201, "mention", "ana", "Ana"));
    setup.traffic = setup
        .traffic
        .replace("@lumio hello", "@lumio @acme_ceo @stranger hello");
    setup.rules = Some(rules_dir(dir.path(), HELLO));
    let Some(app) = common::spawn(setup).await else {
        return;
    };
    app.settle().await;
    let posted = app.sandbox.posted();
    assert_eq!(posted.len(), 1);
    let mut want = vec![
        app.sandbox.user_id("acme_ceo").unwrap(),
        app.sandbox.user_id("stranger").unwrap(),
    ];
    want.sort();
    let mut got = posted[0].excluded.clone();
    got.sort();
    assert_eq!(
        got, want,
        "the customer and the brand stay, the others are left out"
    );
}
