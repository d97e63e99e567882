//! The agents' console over HTTP, as a browser without JavaScript uses it,
//! on SQLite and PostgreSQL: sign-in, the guard on every route, CSRF, the
//! inbox, a ticket worked from arrival to survey with the CLI's refusals,
//! the collision warning, sessions that end, the sign-in limit, a trusted
//! proxy's header, and customers' words always shown as text.
//! (`browser.rs` drives the same console in a real Chromium.)

use helpdesk::runtime::console::ConsoleSettings;
use reqwest::StatusCode;

use crate::common::console::{self as console, Agent, PASSWORD, Page};
use crate::common::{Db, Setup, line, spawn};

on_both_databases!(
    an_agent_works_a_ticket_from_sign_in_to_survey_without_javascript,
    sessions_end_attempts_are_limited_and_customers_words_stay_text,
    the_inbox_lists_and_counts_what_the_tickets_say,
);

/// A free port on the loopback, for a process to listen on.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits up to 30 s for the console at `base` to answer its sign-in page.
async fn wait_for_console(base: &str) {
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(r) = http.get(format!("{base}/login")).send().await
            && r.status() == StatusCode::OK
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the console at {base} never answered");
}

/// `helpdesk run` serves the console with `[console] listen`, and
/// `helpdesk console` serves it alone on the same database (and refuses to
/// start without `listen`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_and_console_serve_it_as_processes() {
    use helpdesk::platforms::x::fake::{Sandbox, SandboxConfig, parse_traffic};
    use std::process::Command;
    const BIN: &str = env!("CARGO_BIN_EXE_helpdesk");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let traffic = line(
        "9001",
        "mention",
        "tom",
        "@lumio I want a refund, charged twice",
    );
    let sandbox = Sandbox::start(
        parse_traffic(&traffic, "t").unwrap(),
        SandboxConfig::default(),
        helpdesk::domain::clock::Clock::new(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("bot.db").display());
    let write_config = |name: &str, listen: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "database_url = \"{db}\"\nrules = \"{}\"\nadmin_listen = \"\"\n\n[console]\nlisten = \"{listen}\"\n\n[x]\nbase_url = \"{}\"\naccess_token_env = \"HD_TEST_X_TOKEN\"\nmin_poll_interval_ms = 100\n",
                crate::common::repo_rules().display(),
                sandbox.base_url()
            ),
        )
        .unwrap();
        path
    };
    let port = free_port();
    let config = write_config("run.toml", &format!("127.0.0.1:{port}"));
    let mut bot = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .env("HD_TEST_X_TOKEN", sandbox.token())
        .stderr(std::fs::File::create(dir.path().join("run.log")).unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_for_console(&base).await;
    let mut add = Command::new(BIN)
        .args(["agents", "--config"])
        .arg(&config)
        .args(["add", "alice", "--password-stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    writeln!(add.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    assert!(add.wait().unwrap().success());
    let mut alice = Agent::at(&base);
    assert_eq!(
        alice.sign_in("alice", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    let mut seen = false;
    for _ in 0..300 {
        if alice.get("/").await.body.contains("/tickets/T-1001") {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(seen, "the bot's ticket shows in its console");
    crate::common::terminate(&bot);
    assert!(bot.wait().unwrap().success());

    // The console alone: without `listen` it says what to set.
    let none = write_config("none.toml", "");
    let out = Command::new(BIN)
        .args(["console", "--config"])
        .arg(&none)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has no [console] listen"), "{err}");
    let port = free_port();
    let alone = write_config("console.toml", &format!("127.0.0.1:{port}"));
    let mut console = Command::new(BIN)
        .args(["console", "--config"])
        .arg(&alone)
        .stderr(std::fs::File::create(dir.path().join("console.log")).unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_for_console(&base).await;
    let mut alice = Agent::at(&base);
    assert_eq!(
        alice.sign_in("alice", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    let page = alice.get("/tickets/T-1001").await;
    assert!(page.body.contains("charged twice"), "{}", page.body);
    crate::common::terminate(&console);
    assert!(console.wait().unwrap().success());
}

/// Every page is under 100 KB and its links carry no ticket data in a
/// query string (only the inbox's filters, its page, a timeline's page).
fn check_page(p: &Page) {
    assert!(p.body.len() < 100_000, "{} bytes", p.body.len());
    for href in p.body.split("href=\"").skip(1) {
        let href = href.split('"').next().unwrap().replace("&amp;", "&");
        if let Some((_, query)) = href.split_once('?') {
            for pair in query.split('&') {
                let key = pair.split('=').next().unwrap();
                assert!(
                    ["queue", "status", "mine", "overdue", "page", "before"].contains(&key),
                    "{href}"
                );
            }
        }
    }
    let csp = p.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(!p.body.contains("<script>"), "no inline script");
    assert!(!p.body.contains("style=\""), "no inline style");
}

async fn an_agent_works_a_ticket_from_sign_in_to_survey_without_javascript(db: Db) {
    let traffic = line(
        "7001",
        "mention",
        "tom",
        "@lumio I want a refund, charged twice",
    );
    let Some(app) = spawn(Setup::new(db, &traffic)).await else {
        return;
    };
    app.settle().await;
    let server = console::start(&app, ConsoleSettings::default(), &["alice", "bob"]).await;
    let mut alice = Agent::new(&server);

    // Nothing but the sign-in form and the static files without a session.
    for path in [
        "/",
        "/tickets/T-1001",
        "/inbox/live",
        "/tickets/T-1001/live",
    ] {
        let p = alice.get(path).await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(p.location(), "/login");
    }
    let p = alice.post_raw("/tickets/T-1001/claim", &[], &[]).await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    assert_eq!(alice.get("/static/console.js").await.status, StatusCode::OK);
    assert_eq!(
        alice.get("/static/htmx-2.0.11.min.js").await.status,
        StatusCode::OK
    );

    // Wrong password and unknown name: one answer. A form without its token: refused.
    let wrong = alice.sign_in("alice", "not the password at all").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("The name or the password is wrong"));
    let unknown = alice.sign_in("mallory", PASSWORD).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert!(unknown.body.contains("The name or the password is wrong"));
    let forged = alice
        .post_raw("/login", &[("name", "alice"), ("password", PASSWORD)], &[])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    let ok = alice.sign_in("alice", PASSWORD).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    let cookie = ok
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("helpdesk_session="))
        .unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "no TLS configured: {cookie}");
    let token = alice.cookie("helpdesk_session").unwrap().to_owned();
    assert_eq!(
        app.count("SELECT COUNT(*) FROM console_sessions").await,
        1,
        "one session"
    );
    let stored = app.text("SELECT token_hash FROM console_sessions").await;
    assert_ne!(stored, token, "only the token's hash is stored");

    // The inbox: the ticket, unread, its queue counted.
    let inbox = alice.get("/").await;
    assert_eq!(inbox.status, StatusCode::OK);
    check_page(&inbox);
    assert!(inbox.body.contains("/tickets/T-1001"), "{}", inbox.body);
    assert!(inbox.body.contains("@tom"));
    assert!(inbox.body.contains("1 unread"), "{}", inbox.body);
    let live = alice.get("/inbox/live?queue=billing").await;
    assert!(live.body.contains("T-1001"));
    let other = alice.get("/?status=closed").await;
    assert!(!other.body.contains("/tickets/T-1001"));

    // The ticket: the conversation, the counter, and now read.
    let page = alice.get("/tickets/T-1001").await;
    assert_eq!(page.status, StatusCode::OK);
    check_page(&page);
    assert!(page.body.contains("I want a refund, charged twice"));
    assert!(page.body.contains("0 / 280"), "X counts 280");
    assert!(
        !alice.get("/").await.body.contains("1 unread"),
        "opened: read"
    );
    assert_eq!(
        alice.get("/tickets/T-99999").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        alice.get("/tickets/bogus").await.status,
        StatusCode::NOT_FOUND
    );

    // A POST without the session's token, or from another site: refused.
    let p = alice
        .post_raw("/tickets/T-1001/claim", &[("csrf", "forged")], &[])
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    let csrf = alice.csrf.clone();
    let p = alice
        .post_raw(
            "/tickets/T-1001/claim",
            &[("csrf", &csrf)],
            &[("origin", "http://evil.example")],
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM tickets WHERE assignee IS NOT NULL")
            .await,
        0
    );

    let p = alice.post("/tickets/T-1001/claim", &[]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_eq!(
        app.text("SELECT assignee FROM tickets WHERE id = 1001")
            .await,
        "alice"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM ticket_events WHERE actor = 'alice' AND kind = 'status' AND to_value = 'open'").await,
        1
    );
    // The same refusal, in the same words, as the CLI's.
    alice.get("/tickets/T-1001").await;
    let refused = alice.post("/tickets/T-1001/reopen", &[]).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    let (_, _, cli_err) = app.cli("alice", &["tickets", "reopen", "T-1001"]);
    let cli_msg = cli_err.trim().trim_start_matches("error: ");
    assert!(
        refused.body.contains(&html_escape(cli_msg)),
        "the CLI says {cli_msg:?}; the page: {}",
        refused.body
    );

    // The counter counts as X does, and refuses an overlong reply.
    let long = "a".repeat(281);
    let counter = alice
        .post("/tickets/T-1001/draft", &[("text", &long)])
        .await;
    assert!(counter.body.contains("281 / 280"), "{}", counter.body);
    assert!(counter.body.contains("disabled"));
    let emoji = alice
        .post("/tickets/T-1001/draft", &[("text", "👍👍")])
        .await;
    assert!(
        emoji.body.contains("4 / 280"),
        "X weighs an emoji 2: {}",
        emoji.body
    );
    let too_long = alice
        .post("/tickets/T-1001/reply", &[("text", &long)])
        .await;
    assert_eq!(too_long.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(too_long.body.contains("over its limit of 280: shorten it"));
    assert!(too_long.body.contains(&long), "the draft is kept");

    // A colleague's draft: shown live, and a reply over it asks first.
    let mut bob = Agent::new(&server);
    bob.sign_in("bob", PASSWORD).await;
    bob.get("/tickets/T-1001").await;
    let seen = alice
        .post("/tickets/T-1001/presence", &[("text", "")])
        .await;
    assert!(seen.body.contains("<b>bob</b> is viewing"), "{}", seen.body);
    bob.post("/tickets/T-1001/draft", &[("text", "Hi Tom, looking")])
        .await;
    let seen = alice
        .post("/tickets/T-1001/presence", &[("text", "")])
        .await;
    assert!(
        seen.body.contains("<b>bob</b> is replying"),
        "{}",
        seen.body
    );
    let answer = "Sorry Tom, the second charge is refunded today";
    let held = alice
        .post("/tickets/T-1001/reply", &[("text", answer)])
        .await;
    assert_eq!(held.status, StatusCode::CONFLICT);
    assert!(held.body.contains("has an unsent reply to this ticket too"));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE origin = 'agent'")
            .await,
        0
    );
    let sent = alice
        .post(
            "/tickets/T-1001/reply",
            &[("text", answer), ("confirm", "1")],
        )
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE origin = 'agent'")
            .await,
        1
    );

    // A note, a saved reply, then solved: the survey leaves through the sandbox.
    let p = alice
        .post("/tickets/T-1001/note", &[("text", "called the bank")])
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    let page = alice.get("/tickets/T-1001").await;
    assert!(page.body.contains("called the bank"));
    assert!(
        page.body.contains("data-text="),
        "saved replies are offered"
    );
    let p = alice.post("/tickets/T-1001/solve", &[]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    app.settle().await;
    let posted = app.sandbox.posted();
    assert!(
        posted
            .iter()
            .any(|p| p.text.contains("second charge is refunded"))
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

    // Signing out ends the session everywhere.
    let p = alice.post("/logout", &[]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(alice.get("/").await.location(), "/login");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM console_sessions WHERE agent = 'alice'")
            .await,
        0
    );
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&#38;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

async fn sessions_end_attempts_are_limited_and_customers_words_stay_text(db: Db) {
    let hostile = "<script>alert(1)</script> refund \"'><img src=x onerror=alert(2)> {{ me.csrf }}";
    let traffic = line("7101", "mention", "eve", &format!("@lumio {hostile}"));
    let Some(app) = spawn(Setup::new(db, &traffic)).await else {
        return;
    };
    app.settle().await;
    let settings = ConsoleSettings {
        login_attempts_per_min: 3,
        ..ConsoleSettings::default()
    };
    let server = console::start(&app, settings, &["alice", "bob"]).await;
    let mut alice = Agent::new(&server);
    assert_eq!(
        alice.sign_in("alice", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );

    // Customers' words are text, wherever they show.
    let page = alice.get("/tickets/T-1001").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("<script>alert"), "{}", page.body);
    assert!(!page.body.contains("<img src=x"));
    assert!(
        page.body.contains("&#60;script&#62;alert(1)"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("{{ me.csrf }}"),
        "no template runs a customer's text"
    );
    alice
        .post("/tickets/T-1001/note", &[("text", "<b onclick=x>bold</b>")])
        .await;
    let page = alice.get("/tickets/T-1001").await;
    assert!(page.body.contains("&#60;b onclick=x&#62;bold&#60;/b&#62;"));

    // An idle session ends; a disabled agent's session ends.
    sqlx::query("UPDATE console_sessions SET seen_at = 0")
        .execute(app.store.pool())
        .await
        .unwrap();
    assert_eq!(alice.get("/").await.location(), "/login");
    assert_eq!(app.count("SELECT COUNT(*) FROM console_sessions").await, 0);
    let mut bob = Agent::new(&server);
    assert_eq!(
        bob.sign_in("bob", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(bob.get("/").await.status, StatusCode::OK);
    let (ok, _, err) = app.cli("admin", &["agents", "disable", "bob"]);
    assert!(ok, "{err}");
    assert_eq!(bob.get("/").await.location(), "/login");
    assert_eq!(
        bob.sign_in("bob", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Sign-in attempts per name: the fourth in a minute waits, even right.
    let mut guess = Agent::new(&server);
    for _ in 0..2 {
        assert_eq!(
            guess.sign_in("alice", "wrong wrong wrong").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let limited = guess.sign_in("alice", PASSWORD).await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.body
    );
    assert!(limited.body.contains("Wait a minute"));

    // A trusted proxy's header signs in an existing agent; an unknown name,
    // or a console not configured for it, gets the sign-in form.
    let proxied = console::start(
        &app,
        ConsoleSettings {
            trusted_header: Some("X-Forwarded-User".into()),
            trusted_proxies: vec!["127.0.0.1".parse().unwrap()],
            ..ConsoleSettings::default()
        },
        &["carla"],
    )
    .await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |base: &str, user: &str| {
        http.get(format!("{base}/"))
            .header("X-Forwarded-User", user)
            .send()
    };
    let r = get(&proxied.base, "carla").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers().get("set-cookie").is_some(),
        "a session for its forms"
    );
    assert_eq!(
        get(&proxied.base, "mallory").await.unwrap().status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        get(&proxied.base, "bob").await.unwrap().status(),
        StatusCode::SEE_OTHER,
        "disabled"
    );
    assert_eq!(
        get(&server.base, "carla").await.unwrap().status(),
        StatusCode::SEE_OTHER
    );
    // The header twice (a client's, then the proxy's appended): believed neither.
    let twice = http
        .get(format!("{}/", proxied.base))
        .header("X-Forwarded-User", "alice")
        .header("X-Forwarded-User", "carla")
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), StatusCode::SEE_OTHER);

    // A new password ends the agent's sessions, and a form whose page is
    // older than the session gets its text back, unsent.
    let mut carla = Agent::new(&server);
    assert_eq!(
        carla.sign_in("carla", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    let page = carla.get("/tickets/T-1001").await;
    assert_eq!(page.status, StatusCode::OK);
    let mut passwd = std::process::Command::new(env!("CARGO_BIN_EXE_helpdesk"))
        .args(["agents", "passwd", "carla", "--password-stdin"])
        .env("HELPDESK_DATABASE_URL", &app.url)
        .env("HELPDESK_CONFIG", app.dir.path().join("none.toml"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    writeln!(passwd.stdin.take().unwrap(), "{PASSWORD} again").unwrap();
    assert!(passwd.wait().unwrap().success());
    assert_eq!(carla.get("/").await.location(), "/login");
    let old_csrf = carla.csrf.clone();
    let again = format!("{PASSWORD} again");
    assert_eq!(
        carla.sign_in("carla", &again).await.status,
        StatusCode::SEE_OTHER
    );
    let draft = "Hello Eve, your refund left this morning";
    let stale = carla
        .post_raw(
            "/tickets/T-1001/reply",
            &[("csrf", &old_csrf), ("text", draft)],
            &[],
        )
        .await;
    assert_eq!(stale.status, StatusCode::FORBIDDEN);
    assert!(
        stale.body.contains("This page had expired"),
        "{}",
        stale.body
    );
    assert!(stale.body.contains(draft), "the text is kept");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE origin = 'agent'")
            .await,
        0
    );
    // A browser's word that the form came from another site is final; a
    // same-origin one is believed whatever Host a proxy passed on.
    let csrf = carla.csrf.clone();
    let foreign = carla
        .post_raw(
            "/tickets/T-1001/claim",
            &[("csrf", &csrf)],
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    let same = carla
        .post_raw(
            "/tickets/T-1001/claim",
            &[("csrf", &csrf)],
            &[
                ("sec-fetch-site", "same-origin"),
                ("origin", "https://support.example.com"),
            ],
        )
        .await;
    assert_eq!(
        same.status,
        StatusCode::SEE_OTHER,
        "behind a proxy, Host differs"
    );

    // A long conversation full of characters that escaping grows: every
    // page under 100 KB, paged back and forth, earlier pages still.
    for i in 0..300 {
        let body = format!("{i} ").repeat(10) + &"<&>\"'".repeat(600);
        sqlx::query(
            "INSERT INTO ticket_messages (ticket_id, direction, body, at) VALUES (1001, 'in', $1, $2)",
        )
        .bind(body)
        .bind(i64::from(i))
        .execute(app.store.pool())
        .await
        .unwrap();
    }
    let mut path = "/tickets/T-1001".to_owned();
    let mut pages = 0;
    loop {
        let page = carla.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        check_page(&page);
        pages += 1;
        let Some(at) = page.body.find("\">Earlier entries") else {
            break;
        };
        let href = page.body[..at].rsplit("href=\"").next().unwrap();
        path = href.replace("&amp;", "&");
        let earlier = carla.get(&path).await;
        assert!(earlier.body.contains("Later entries"), "{path}");
        assert!(
            !earlier.body.contains("hx-get=\"/tickets/T-1001/live\""),
            "an earlier page stays put"
        );
    }
    assert!(pages > 3, "{pages} pages");
}

/// The inbox's reads against the tickets themselves: for every filter
/// (status, queue, mine, overdue, and their mixes), every page holds the
/// rows a plain reading of the tables gives, in order, with the right
/// total and unread marks; and the per-queue counts agree. Then the tickets
/// change (a customer's message, a new queue, a new status, solved and
/// reopened) and the marks of the changed ones stop counting as read; a
/// mark of a version no longer current is not written. Each SQLite read
/// names its index, which SQLite refuses to run if the filter cannot use
/// it: every combination runs here.
async fn the_inbox_lists_and_counts_what_the_tickets_say(db: Db) {
    use helpdesk::domain::states::TicketStatus;
    use helpdesk::domain::{TicketRef, clock::Millis};
    use helpdesk::storage::Store;
    use helpdesk::storage::console::{self as sc, InboxQuery};
    use sqlx::Row as _;

    let dir = tempfile::tempdir().unwrap();
    let Some(url) = crate::common::fresh_db(db, dir.path()).await else {
        return;
    };
    let store = Store::open(&url).await.unwrap();
    let now: Millis = 1_800_000_000_000;
    // 240 tickets in three queues, every status, some assigned, some past
    // due, some answered, from a fixed seed.
    let mut seed: u64 = 0x5eed;
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    for i in 0..240i64 {
        let status = TicketStatus::ALL[next(TicketStatus::ALL.len() as u64) as usize];
        let queue = ["billing", "tech", "vip"][next(3) as usize];
        let assignee = [None, Some("alice"), Some("bob")][next(3) as usize];
        // Due times repeat, so that the id breaks ties.
        let due = now + (next(9) as i64 - 4) * 3_600_000;
        let answered = (next(4) == 0).then_some(now - 1000);
        sqlx::query(
            "INSERT INTO tickets (queue, priority, status, platform, customer_id, customer_handle, \
                                  conversation_id, created_at, updated_at, first_response_due, \
                                  first_response_at, assignee) \
             VALUES ($1, 'normal', $2, 'x', $3, $3, $3, $4, $4, $5, $6, $7)",
        )
        .bind(queue)
        .bind(status.as_str())
        .bind(format!("c{i}"))
        .bind(now - 86_400_000 + i)
        .bind(due)
        .bind(answered)
        .bind(assignee)
        .execute(store.pool())
        .await
        .unwrap();
    }
    let ids: Vec<i64> = sqlx::query("SELECT id FROM tickets ORDER BY id")
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    // The version an agent is shown: the ticket's updated_at.
    let version = |id: i64| {
        let store = store.clone();
        async move {
            let v: i64 = sqlx::query("SELECT updated_at FROM tickets WHERE id = $1")
                .bind(id)
                .fetch_one(store.pool())
                .await
                .unwrap()
                .get(0);
            v
        }
    };
    // Alice opens one ticket in three, bob one in five.
    for (k, id) in ids.iter().enumerate() {
        if k % 3 == 0 {
            sc::mark_read(&store, "alice", TicketRef(*id), version(*id).await)
                .await
                .unwrap();
        }
        if k % 5 == 0 {
            sc::mark_read(&store, "bob", TicketRef(*id), version(*id).await)
                .await
                .unwrap();
        }
    }
    check_inbox(&store, now).await;

    // Changes: a customer's message arrives on some (the messages trigger
    // moves updated_at), others move queue or status, others are solved
    // and reopened.
    for (k, id) in ids.iter().enumerate().filter(|(k, _)| k % 4 == 0) {
        let sql = match k % 16 {
            0 => {
                "INSERT INTO messages (platform, platform_message_id, channel, conversation_id, \
                     author_id, author_handle, author_name, text, written_at, received_at, \
                     action, ticket_id) \
                 SELECT 'x', 'm' || id, 'dm', conversation_id, customer_id, customer_handle, \
                        'Customer', 'still waiting', updated_at + 5, updated_at + 5, 'escalate', id \
                 FROM tickets WHERE id = $1"
            }
            4 => "UPDATE tickets SET queue = 'tech' WHERE id = $1 AND queue <> 'tech'",
            8 => {
                "UPDATE tickets SET status = 'pending' WHERE id = $1 AND status IN ('new', 'open')"
            }
            _ => {
                "UPDATE tickets SET status = 'solved' WHERE id = $1 AND status IN ('new', 'open', 'pending')"
            }
        };
        sqlx::query(sql)
            .bind(id)
            .execute(store.pool())
            .await
            .unwrap();
        if k % 16 == 12 {
            sqlx::query("UPDATE tickets SET status = 'open' WHERE id = $1 AND status = 'solved'")
                .bind(id)
                .execute(store.pool())
                .await
                .unwrap();
        }
    }
    // Every mark left is of a ticket as it is: the changed ones lost theirs.
    let stale: i64 = sqlx::query(
        "SELECT COUNT(*) FROM console_reads r JOIN tickets t ON t.id = r.ticket_id \
         WHERE r.queue <> t.queue OR r.status <> t.status OR r.seen_at < t.updated_at",
    )
    .fetch_one(store.pool())
    .await
    .unwrap()
    .get(0);
    assert_eq!(stale, 0);
    let of_first: i64 = sqlx::query("SELECT COUNT(*) FROM console_reads WHERE ticket_id = $1")
        .bind(ids[0])
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        of_first, 0,
        "a message on the ticket makes it unread for everyone"
    );
    check_inbox(&store, now).await;
    // An unrelated column changing leaves the marks alone.
    let marks = |store: Store| async move {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM console_reads")
            .fetch_one(store.pool())
            .await
            .unwrap()
            .get(0);
        n
    };
    let before = marks(store.clone()).await;
    sqlx::query("UPDATE tickets SET priority = 'high'")
        .execute(store.pool())
        .await
        .unwrap();
    assert_eq!(marks(store.clone()).await, before);
    // Opening a changed ticket marks it read again; a page of a version
    // since changed marks nothing.
    for id in ids.iter().step_by(7) {
        sc::mark_read(&store, "alice", TicketRef(*id), version(*id).await)
            .await
            .unwrap();
    }
    sc::mark_read(
        &store,
        "carla",
        TicketRef(ids[0]),
        version(ids[0]).await - 5,
    )
    .await
    .unwrap();
    let carla: i64 = sqlx::query("SELECT COUNT(*) FROM console_reads WHERE agent = 'carla'")
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(carla, 0, "an older version is not the ticket as it is");
    check_inbox(&store, now).await;

    /// Every filter, paged by 7, against the tables read plainly.
    async fn check_inbox(store: &Store, now: Millis) {
        let tickets = sqlx::query(
            "SELECT id, status, queue, assignee, first_response_at, first_response_due, updated_at \
             FROM tickets",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        let reads = sqlx::query("SELECT agent, ticket_id, seen_at FROM console_reads")
            .fetch_all(store.pool())
            .await
            .unwrap();
        struct T {
            id: i64,
            status: TicketStatus,
            queue: String,
            assignee: Option<String>,
            key: i64,
            updated_at: i64,
        }
        let tickets: Vec<T> = tickets
            .iter()
            .map(|r| {
                let answered: Option<i64> = r.get(4);
                let due: Option<i64> = r.get(5);
                T {
                    id: r.get(0),
                    status: r.get::<String, _>(1).parse().unwrap(),
                    queue: r.get(2),
                    assignee: r.get(3),
                    key: if answered.is_none() { due } else { None }.unwrap_or(i64::MAX),
                    updated_at: r.get(6),
                }
            })
            .collect();
        let seen = |agent: &str, t: &T| {
            reads.iter().any(|r| {
                r.get::<String, _>(0) == agent
                    && r.get::<i64, _>(1) == t.id
                    && r.get::<i64, _>(2) >= t.updated_at
            })
        };
        for agent in ["alice", "bob", "carla"] {
            let statuses = std::iter::once(None).chain(TicketStatus::ALL.iter().copied().map(Some));
            for status in statuses {
                for queue in [None, Some("billing"), Some("vip")] {
                    for (mine, overdue) in
                        [(false, false), (true, false), (false, true), (true, true)]
                    {
                        let mut want: Vec<&T> = tickets
                            .iter()
                            .filter(|t| status.map_or(t.status.is_active(), |s| t.status == s))
                            .filter(|t| queue.is_none_or(|q| t.queue == q))
                            .filter(|t| !mine || t.assignee.as_deref() == Some(agent))
                            .filter(|t| !overdue || (t.status.is_active() && t.key < now))
                            .collect();
                        want.sort_by_key(|t| (t.key, t.id));
                        let mut got = Vec::new();
                        for offset in (0..want.len().max(1) as i64).step_by(7) {
                            let q = InboxQuery {
                                agent,
                                status,
                                queue,
                                mine,
                                overdue,
                                now,
                                limit: 7,
                                offset,
                            };
                            let rows = sc::inbox(store, &q).await.unwrap();
                            let total = sc::inbox_total(store, &q).await.unwrap();
                            assert_eq!(total, want.len() as i64, "{q:?}");
                            if sc::counts_say_total(&q) {
                                let counts = sc::queue_counts(store, agent, now).await.unwrap();
                                assert_eq!(sc::total_from_counts(&q, &counts), total, "{q:?}");
                            }
                            got.extend(rows.into_iter().map(|r| (r.id.0, r.unread)));
                        }
                        let want: Vec<(i64, bool)> =
                            want.iter().map(|t| (t.id, !seen(agent, t))).collect();
                        assert_eq!(
                            got, want,
                            "{agent} {status:?} {queue:?} mine {mine} overdue {overdue}"
                        );
                    }
                }
            }
            let mut want: Vec<sc::QueueCount> = Vec::new();
            for t in tickets.iter().filter(|t| t.status.is_active()) {
                let at = match want.iter().position(|c| c.queue == t.queue) {
                    Some(at) => at,
                    None => {
                        want.push(sc::QueueCount {
                            queue: t.queue.clone(),
                            total: 0,
                            unread: 0,
                            overdue: 0,
                        });
                        want.len() - 1
                    }
                };
                want[at].total += 1;
                want[at].unread += i64::from(!seen(agent, t));
                want[at].overdue += i64::from(t.key < now);
            }
            want.sort_by(|a, b| a.queue.cmp(&b.queue));
            assert_eq!(
                sc::queue_counts(store, agent, now).await.unwrap(),
                want,
                "{agent}"
            );
        }
    }
}
