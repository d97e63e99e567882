//! The agents' console in a real browser: Debian's headless Chromium
//! driven through chromedriver (WebDriver) by fantoccini. An agent signs
//! in, sees a ticket arrive without reloading, opens it, claims it with a
//! key, watches the counter refuse an overlong reply, sees a colleague's
//! collision warning (a second browser session), replies over it after
//! confirming, solves it, and the survey leaves through the sandbox.
//!
//! Screenshots of the inbox and of the ticket are saved in
//! `target/console-screenshots/` (README shows copies from `docs/console/`).
//!
//! Without chromedriver the test says so and passes, unless
//! `HELPDESK_TEST_BROWSER=required` (as `.ci/run` sets after installing
//! `chromium` and `chromium-driver`), when a missing browser fails it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use helpdesk::platforms::x::fake::parse_traffic;
use helpdesk::runtime::console::ConsoleSettings;
use serde_json::json;

use crate::common::console::{self as console, PASSWORD};
use crate::common::{Db, Setup, line, spawn};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
    profiles: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts chromedriver, or `None` when it is not installed and not required.
async fn driver() -> Option<Driver> {
    let required = std::env::var("HELPDESK_TEST_BROWSER").is_ok_and(|v| v == "required");
    if !Path::new(CHROMEDRIVER).exists() || !Path::new(CHROMIUM).exists() {
        assert!(
            !required,
            "HELPDESK_TEST_BROWSER=required but {CHROMEDRIVER} or {CHROMIUM} is missing: apt-get install chromium chromium-driver"
        );
        eprintln!(
            "skip: browser test (apt-get install chromium chromium-driver, as .ci/run does, to run it)"
        );
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some(Driver {
        child,
        url,
        profiles: tempfile::tempdir().unwrap(),
    })
}

/// A new headless browser window with a profile of its own.
async fn browser(d: &Driver, name: &str) -> Client {
    let profile = d.profiles.path().join(name);
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-quic", "--no-first-run", "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&d.url)
        .await
        .expect("a WebDriver session in chromium")
}

/// Waits (up to 15 s) until the element `css` holds `text`.
async fn wait_text(c: &Client, css: &str, text: &str) {
    for _ in 0..150 {
        if let Ok(e) = c.find(Locator::Css(css)).await
            && e.text().await.is_ok_and(|t| t.contains(text))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let page = c.source().await.unwrap_or_default();
    panic!("{css} never showed {text:?}; the page:\n{page}");
}

async fn sign_in(c: &Client, base: &str, name: &str) {
    c.goto(&format!("{base}/login")).await.unwrap();
    c.find(Locator::Id("name"))
        .await
        .unwrap()
        .send_keys(name)
        .await
        .unwrap();
    c.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    c.find(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(c, "header .me", name).await;
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_works_a_ticket_in_chromium_and_sees_a_colleague() {
    let Some(d) = driver().await else {
        return;
    };
    let app = spawn(Setup::new(Db::Sqlite, "")).await.unwrap();
    let settings = ConsoleSettings {
        refresh_secs: 1,
        ..ConsoleSettings::default()
    };
    let server = console::start(&app, settings, &["alice", "bob"]).await;
    let base = server.base.clone();

    let alice = browser(&d, "alice").await;
    sign_in(&alice, &base, "alice").await;
    wait_text(&alice, "#live", "No tickets here").await;
    let scripts: serde_json::Value = alice.execute("return typeof htmx;", vec![]).await.unwrap();
    assert_eq!(scripts, "object", "htmx loads under the CSP");

    // A ticket arrives: the inbox shows it without a reload.
    let hostile = "@lumio refund please, charged twice <img src=x onerror=alert(1)>";
    let traffic = [
        line("8001", "mention", "tom", hostile),
        line(
            "8002",
            "dm",
            "ana_b",
            "Bonjour, erreur de facturation sur ma facture de novembre",
        ),
        line(
            "8003",
            "mention",
            "li.chen",
            "@lumio router is dead since this morning, need a technician",
        ),
        line(
            "8004",
            "mention",
            "sam",
            "@lumio third time I write: my lawyer will hear about this",
        ),
        line(
            "8005",
            "dm",
            "marie",
            "Débit très lent le soir, speed test à 2 Mb/s",
        ),
    ];
    app.sandbox
        .push(parse_traffic(&traffic.join("\n"), "t").unwrap());
    app.settle().await;
    wait_text(&alice, "#live", "5 unread").await;
    // sam's first reply is two days late and his messages carried signals:
    // the inbox turns red and tags them at its next refresh.
    sqlx::query(
        "UPDATE tickets SET first_response_due = first_response_due - 172800000, \
         signals = 'legal repeated' WHERE customer_handle = 'sam'",
    )
    .execute(app.store.pool())
    .await
    .unwrap();
    wait_text(&alice, "tr.overdue", "@sam").await;
    wait_text(&alice, "tr.overdue", "legal").await;
    std::fs::write(
        screenshots().join("inbox.png"),
        alice.screenshot().await.unwrap(),
    )
    .unwrap();

    // Open tom's; `c` claims it.
    let link = alice
        .find(Locator::XPath("//tr[td[contains(., '@tom')]]//a"))
        .await
        .unwrap();
    let path = link.attr("href").await.unwrap().unwrap();
    link.click().await.unwrap();
    wait_text(&alice, "#timeline", "charged twice <img src=x").await;
    alice
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .send_keys("c")
        .await
        .unwrap();
    wait_text(&alice, "h1 .status", "open").await;

    // The counter counts as X does and refuses an overlong reply.
    let reply = alice.find(Locator::Id("reply-text")).await.unwrap();
    reply.send_keys(&"a".repeat(281)).await.unwrap();
    wait_text(&alice, "#counter", "281 / 280").await;
    let send = alice.find(Locator::Id("send")).await.unwrap();
    assert!(
        !send.is_enabled().await.unwrap(),
        "send is off past the limit"
    );
    reply.clear().await.unwrap();
    reply
        .send_keys("Sorry Tom, the second charge is refunded today 👍")
        .await
        .unwrap();
    // 47 characters and an emoji, which X weighs 2.
    wait_text(&alice, "#counter", "49 / 280").await;

    // A saved reply fills the box (and is counted); alice keeps her own.
    let mine = reply.prop("value").await.unwrap().unwrap_or_default();
    alice
        .find(Locator::Css("#saved option[value='opening-hours']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let saved = reply.prop("value").await.unwrap().unwrap_or_default();
    assert!(saved.contains("@tom") || saved.contains("tom"), "{saved}");
    assert_ne!(saved, mine);
    reply.clear().await.unwrap();
    reply.send_keys(&mine).await.unwrap();
    wait_text(&alice, "#counter", "49 / 280").await;

    // A colleague opens the ticket and starts a reply: alice sees it.
    let bob = browser(&d, "bob").await;
    sign_in(&bob, &base, "bob").await;
    bob.goto(&format!("{base}{path}")).await.unwrap();
    wait_text(&alice, "#presence", "bob is viewing").await;
    bob.find(Locator::Id("reply-text"))
        .await
        .unwrap()
        .send_keys("Hi Tom, looking into it")
        .await
        .unwrap();
    wait_text(&alice, "#presence", "bob is replying").await;
    wait_text(&bob, "#presence", "alice is replying").await;
    std::fs::write(
        screenshots().join("ticket.png"),
        alice.screenshot().await.unwrap(),
    )
    .unwrap();

    // Sending over bob's draft asks first; confirming sends it.
    alice
        .find(Locator::Id("send"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(
        &alice,
        "#reply-form",
        "has an unsent reply to this ticket too",
    )
    .await;
    alice
        .find(Locator::Id("send"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&alice, "#timeline", "second charge is refunded today").await;

    // Solved: the survey leaves through the sandbox.
    alice
        .find(Locator::Id("do-solve"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&alice, "h1 .status", "solved").await;
    app.settle().await;
    let posted = app.sandbox.posted();
    assert!(
        posted
            .iter()
            .any(|p| p.text.contains("second charge is refunded today"))
    );
    assert!(
        posted.iter().any(|p| p.kind == "dm"),
        "the survey went out by DM"
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM ticket_events WHERE actor = 'alice' AND to_value = 'solved'"
        )
        .await,
        1
    );
    // On a phone: the inbox in one column.
    alice.set_window_size(390, 844).await.unwrap();
    alice.goto(&base).await.unwrap();
    wait_text(&alice, "#live", "@sam").await;
    std::fs::write(
        screenshots().join("inbox-phone.png"),
        alice.screenshot().await.unwrap(),
    )
    .unwrap();
    bob.close().await.unwrap();
    alice.close().await.unwrap();
}
