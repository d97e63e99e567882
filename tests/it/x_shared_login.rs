//! One X login shared by several instances through the database
//! (`[x] token_store = "database"`): three instances refresh it past each
//! expiry and after a revocation, X sees one refresh each time and never a
//! spent refresh token; the row holds no plaintext; `helpdesk x login`
//! stores there; a wrong key is a clear error. On SQLite and PostgreSQL.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use helpdesk::domain::clock::Clock;
use helpdesk::platforms::Connector;
use helpdesk::platforms::x::XClient;
use helpdesk::platforms::x::auth::SharedLogin;
use helpdesk::platforms::x::auth::{AuthError, Credentials};
use helpdesk::platforms::x::config::XConfig;
use helpdesk::platforms::x::fake::{Sandbox, SandboxConfig, TokenCounts};
use helpdesk::storage::Store;
use helpdesk::storage::oauth_tokens::{SharedTokens, TokenKey};
use sqlx::Row;

use crate::common::{self, Db, fresh_db};

const KEY: [u8; 32] = [7; 32];

struct Shared {
    sandbox: Sandbox,
    clock: Clock,
    url: String,
    dir: tempfile::TempDir,
    token_url: String,
}

/// A sandbox, a fresh database and a login stored there, as `helpdesk x
/// login` would leave them.
async fn logged_in(db: Db) -> Option<Shared> {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_db(db, dir.path()).await?;
    let clock = Clock::new();
    let sandbox = Sandbox::start(vec![], SandboxConfig::default(), clock.clone())
        .await
        .unwrap();
    let token_url = format!("{}/2/oauth2/token", sandbox.base_url());
    common::login_in_database(&sandbox, &url, "HD_TEST_KEY", &KEY, &clock).await;
    Some(Shared {
        sandbox,
        clock,
        url,
        dir,
        token_url,
    })
}

/// An instance: its own pool on the database, its own X client.
async fn instance(s: &Shared) -> Arc<XClient> {
    let store = Store::open(&s.url).await.unwrap();
    let creds = Credentials::shared(
        SharedTokens::x(store, TokenKey::from_bytes("HD_TEST_KEY", &KEY)),
        "client-1".into(),
        None,
        s.token_url.clone(),
    )
    .await
    .unwrap();
    let cfg = XConfig {
        base_url: s.sandbox.base_url(),
        ..XConfig::default()
    };
    Arc::new(XClient::with_credentials(&cfg, creds, s.clock.clone()))
}

/// Every instance calls X a few times, all at once.
async fn all_at_once(xs: &[Arc<XClient>]) {
    let start = Arc::new(tokio::sync::Barrier::new(xs.len()));
    let tasks: Vec<_> = xs
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let (x, start) = (x.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                for call in 0..3 {
                    x.whoami()
                        .await
                        .unwrap_or_else(|e| panic!("instance {i}, call {call}: {e}"));
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

async fn stored_access_token(s: &Shared) -> String {
    let store = Store::open(&s.url).await.unwrap();
    SharedTokens::x(store, TokenKey::from_bytes("HD_TEST_KEY", &KEY))
        .load()
        .await
        .unwrap()
        .access_token
}

async fn three_instances_refresh_one_login_once_per_expiry(db: Db) {
    let Some(s) = logged_in(db).await else {
        return;
    };
    let xs = vec![instance(&s).await, instance(&s).await, instance(&s).await];
    all_at_once(&xs).await;
    assert_eq!(s.sandbox.token_counts(), TokenCounts::default());
    for expiry in 1..=3 {
        // Past the two-hour expiry: the sandbox refuses the old token, and
        // each instance finds its own near expiry at once.
        s.clock.advance(Duration::from_secs(7200 + 60));
        all_at_once(&xs).await;
        assert_eq!(
            s.sandbox.token_counts(),
            TokenCounts {
                refreshed: expiry,
                refused: 0
            },
            "one refresh for expiry {expiry}, no spent refresh token"
        );
    }
    // Revoked before expiry: three 401s, one refresh between them.
    let current = stored_access_token(&s).await;
    s.sandbox.revoke(&current);
    all_at_once(&xs).await;
    assert_eq!(
        s.sandbox.token_counts(),
        TokenCounts {
            refreshed: 4,
            refused: 0
        }
    );
    // And a restarted instance picks up the newest set.
    let late = instance(&s).await;
    late.whoami().await.unwrap();
    assert_eq!(s.sandbox.token_counts().refreshed, 4);
    assert_no_plaintext(&s, db).await;
}

/// The row, and on SQLite the database files themselves, hold no token.
async fn assert_no_plaintext(s: &Shared, db: Db) {
    use base64::Engine;
    let store = Store::open(&s.url).await.unwrap();
    let row = sqlx::query(
        "SELECT platform, key_id, nonce, sealed, refreshed_by FROM oauth_tokens WHERE platform = 'x'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    let raw: Vec<String> = (0..5).map(|i| row.try_get(i).unwrap()).collect();
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(&raw[3])
        .unwrap();
    let access = stored_access_token(s).await;
    let refresh = s.sandbox.refresh_token();
    for secret in [&access, &refresh] {
        for col in &raw {
            assert!(!col.contains(secret.as_str()), "a column holds {secret}");
        }
        assert!(!sealed.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }
    // Every token ever issued shares a prefix: none may be on disk.
    if db == Db::Sqlite {
        for f in ["helpdesk.db", "helpdesk.db-wal"] {
            let bytes = std::fs::read(s.dir.path().join(f)).unwrap_or_default();
            for needle in [&b"sandbox-token-"[..], &b"sandbox-refresh-"[..]] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "{f} holds a plaintext token"
                );
            }
        }
    }
}

async fn x_login_stores_the_login_in_the_database(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let Some(url) = fresh_db(db, dir.path()).await else {
        return;
    };
    let clock = Clock::new();
    let sandbox = Sandbox::start(vec![], SandboxConfig::default(), clock.clone())
        .await
        .unwrap();
    let config = dir.path().join("helpdesk.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"{url}\"\n[x]\nbase_url = \"{}\"\ntoken_store = \"database\"\ntoken_key_env = \"HD_TEST_KEY\"\nclient_id_env = \"HD_TEST_CLIENT_ID\"\n",
            sandbox.base_url()
        ),
    )
    .unwrap();
    use base64::Engine;
    let key_b64 = base64::engine::general_purpose::STANDARD.encode(KEY);
    let login = |key: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_helpdesk"));
        cmd.args(["x", "login", "--config"])
            .arg(&config)
            .env("HD_TEST_CLIENT_ID", "client-1")
            .env_remove("HELPDESK_DATABASE_URL")
            .stdin(Stdio::piped())
            .stderr(Stdio::piped());
        match key {
            Some(k) => cmd.env("HD_TEST_KEY", k),
            None => cmd.env_remove("HD_TEST_KEY"),
        };
        let mut child = cmd.spawn().unwrap();
        let _ = child.stdin.take().unwrap().write_all(b"sandbox-code\n");
        child.wait_with_output().unwrap()
    };
    // Without the key: refused before the operator is sent to X.
    let out = login(None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("HD_TEST_KEY") && err.contains("openssl rand -base64 32"),
        "{err}"
    );
    assert!(!err.contains("oauth2/authorize"), "{err}");
    let out = login(Some(&key_b64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("sealed with the key in HD_TEST_KEY"), "{err}");
    let store = Store::open(&url).await.unwrap();
    let t = SharedTokens::x(store.clone(), TokenKey::from_bytes("HD_TEST_KEY", &KEY))
        .load()
        .await
        .unwrap();
    assert!(t.access_token.starts_with("sandbox-token-"));
    assert!(!err.contains(&t.access_token), "the token is not printed");
    // An instance with another key is told so, and how to fix it.
    let e = Credentials::shared(
        SharedTokens::x(store.clone(), TokenKey::from_bytes("HD_OTHER", &[8; 32])),
        "client-1".into(),
        None,
        format!("{}/2/oauth2/token", sandbox.base_url()),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, AuthError::WrongKey { .. }));
    let m = e.to_string();
    assert!(m.contains("different key") && m.contains("HD_OTHER"), "{m}");
    // One with the right key works.
    let creds = Credentials::shared(
        SharedTokens::x(store, TokenKey::from_bytes("HD_TEST_KEY", &KEY)),
        "client-1".into(),
        None,
        format!("{}/2/oauth2/token", sandbox.base_url()),
    )
    .await
    .unwrap();
    let cfg = XConfig {
        base_url: sandbox.base_url(),
        ..XConfig::default()
    };
    XClient::with_credentials(&cfg, creds, clock)
        .whoami()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_table_says_to_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_db(Db::Sqlite, dir.path()).await.unwrap();
    let store = Store::open(&url).await.unwrap();
    let e = Credentials::shared(
        SharedTokens::x(store, TokenKey::from_bytes("K", &KEY)),
        "client-1".into(),
        None,
        "http://127.0.0.1:9/2/oauth2/token".into(),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("run `helpdesk x login`"), "{e}");
}

on_both_databases!(
    three_instances_refresh_one_login_once_per_expiry,
    x_login_stores_the_login_in_the_database,
);
