//! Spawns the whole bot as `helpdesk run` builds it: the sandbox X API on
//! 127.0.0.1, the real X client over HTTP, and a fresh database per test
//! (a SQLite file, or a new PostgreSQL database when
//! `HELPDESK_TEST_POSTGRES_URL` is set).

pub mod console;
pub mod fault_proxy;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use helpdesk::domain::clock::Clock;
use helpdesk::domain::secret::Secret;
use helpdesk::platforms::Connector;
use helpdesk::platforms::x::XClient;
use helpdesk::platforms::x::config::XConfig;
use helpdesk::platforms::x::fake::{Sandbox, SandboxConfig, parse_traffic};
use helpdesk::rules::{LoadOptions, RuleSet};
use helpdesk::runtime::bot::Bot;
use helpdesk::runtime::config::Config;
use helpdesk::storage::Store;
use sqlx::Row;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A running bot and everything around it.
pub struct App {
    pub sandbox: Sandbox,
    pub bot: Bot,
    pub store: Store,
    pub clock: Clock,
    pub config: Config,
    pub url: String,
    pub dir: tempfile::TempDir,
    /// The fault proxy between the bot and the sandbox, when asked for.
    pub proxy: Option<fault_proxy::FaultProxy>,
}

pub fn repo_rules() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")
}

/// A fresh database URL, or `None` (with a skip line) when PostgreSQL is
/// not configured for tests.
pub async fn fresh_db(db: Db, dir: &Path) -> Option<String> {
    match db {
        Db::Sqlite => Some(format!("sqlite://{}", dir.join("helpdesk.db").display())),
        Db::Postgres => {
            let Ok(base) = std::env::var("HELPDESK_TEST_POSTGRES_URL") else {
                eprintln!(
                    "skip: PostgreSQL test (set HELPDESK_TEST_POSTGRES_URL, as .ci/run does, to run it)"
                );
                return None;
            };
            static N: AtomicU32 = AtomicU32::new(0);
            let name = format!(
                "helpdesk_t_{}_{}_{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst),
                rand_suffix()
            );
            sqlx::any::install_default_drivers();
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&base)
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL at HELPDESK_TEST_POSTGRES_URL: {e}"));
            clean_up_earlier_runs(&mut conn).await;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .expect("create test database");
            let (prefix, _) = base.rsplit_once('/').expect("URL with a database");
            Some(format!("{prefix}/{name}"))
        }
    }
}

/// Drops the test databases of earlier test processes (once per process),
/// so repeated runs do not pile them up. A database whose process still
/// runs (this one, or a `cargo test` of another work tree on the same
/// server) is left alone: dropping it would fail that process's tests.
async fn clean_up_earlier_runs(conn: &mut sqlx::AnyConnection) {
    static DONE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    DONE.get_or_init(|| async {
        let names: Vec<String> =
            sqlx::query("SELECT datname FROM pg_database WHERE datname LIKE 'helpdesk_t_%'")
                .fetch_all(&mut *conn)
                .await
                .unwrap_or_default()
                .iter()
                .filter_map(|r| r.try_get::<String, _>(0).ok())
                .filter(|n| !created_by_a_running_process(n))
                .collect();
        for n in names {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {n} WITH (FORCE)"
            )))
            .execute(&mut *conn)
            .await;
        }
    })
    .await;
}

/// Whether the process whose id a test database's name carries
/// (`helpdesk_t_PID_N_SUFFIX`) is still running on this machine.
fn created_by_a_running_process(name: &str) -> bool {
    let pid = name
        .strip_prefix("helpdesk_t_")
        .and_then(|rest| rest.split('_').next())
        .and_then(|pid| pid.parse::<u32>().ok());
    match pid {
        Some(pid) if pid == std::process::id() => true,
        Some(pid) => Path::new(&format!("/proc/{pid}")).exists(),
        None => false,
    }
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

/// Options for [`spawn`].
pub struct Setup {
    pub db: Db,
    pub traffic: String,
    pub rules: Option<PathBuf>,
    pub config: Config,
    pub x: XConfig,
    pub sandbox: SandboxConfig,
    /// Put a [`fault_proxy::FaultProxy`] (with this seed) between the bot
    /// and the sandbox.
    pub proxy_seed: Option<u64>,
}

impl Setup {
    pub fn new(db: Db, traffic: &str) -> Setup {
        Setup {
            db,
            traffic: traffic.to_owned(),
            rules: None,
            config: Config::default(),
            x: XConfig {
                min_poll_interval_ms: 0,
                ..XConfig::default()
            },
            sandbox: SandboxConfig::default(),
            proxy_seed: None,
        }
    }
}

/// Wraps a connector, e.g. to crash in the middle of a send.
pub type Wrap = Box<dyn FnOnce(Arc<dyn Connector>) -> Arc<dyn Connector>>;

pub async fn spawn(setup: Setup) -> Option<App> {
    spawn_wrapped(setup, Box::new(|c| c)).await
}

pub async fn spawn_wrapped(setup: Setup, wrap: Wrap) -> Option<App> {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_db(setup.db, dir.path()).await?;
    let clock = Clock::new();
    let traffic = parse_traffic(&setup.traffic, "test traffic").unwrap();
    let sandbox = Sandbox::start(traffic, setup.sandbox, clock.clone())
        .await
        .unwrap();
    let mut config = setup.config;
    config.database_url = url.clone();
    config.rules = setup.rules.unwrap_or_else(repo_rules);
    let proxy = match setup.proxy_seed {
        Some(seed) => Some(fault_proxy::FaultProxy::start(&sandbox.base_url(), seed).await),
        None => None,
    };
    config.x = Some(XConfig {
        base_url: proxy
            .as_ref()
            .map_or_else(|| sandbox.base_url(), |p| p.base_url()),
        ..setup.x
    });
    let bot = build_bot(&config, &sandbox, &clock, wrap).await;
    let store = bot.store().clone();
    Some(App {
        sandbox,
        bot,
        store,
        clock,
        config,
        url,
        dir,
        proxy,
    })
}

/// Builds a bot on `config` (as after a restart: same database, same sandbox).
pub async fn build_bot(config: &Config, sandbox: &Sandbox, clock: &Clock, wrap: Wrap) -> Bot {
    let rules = RuleSet::load_dir(&config.rules, &LoadOptions::default())
        .unwrap_or_else(|e| panic!("{}", e.render()));
    let store = Store::open(&config.database_url).await.unwrap();
    let x = config.x.as_ref().unwrap();
    let client: Arc<dyn Connector> =
        Arc::new(XClient::new(x, Secret::new(sandbox.token()), clock.clone()));
    Bot::new(
        config,
        store,
        Arc::new(rules),
        vec![wrap(client)],
        clock.clone(),
    )
    .await
    .unwrap()
}

impl App {
    /// Polls and drains until nothing moves.
    pub async fn settle(&self) {
        assert!(settle_bot(&self.bot, 50).await, "the bot did not settle");
    }

    /// Runs `helpdesk ARGS` on this app's database as agent `agent`:
    /// (success, stdout, stderr).
    pub fn cli(&self, agent: &str, args: &[&str]) -> (bool, String, String) {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_helpdesk"))
            .args(args)
            .env("HELPDESK_DATABASE_URL", &self.url)
            .env("HELPDESK_AGENT", agent)
            .env("HELPDESK_CONFIG", self.dir.path().join("none.toml"))
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The first column of the first row of `sql`, as text.
    pub async fn text(&self, sql: &'static str) -> String {
        sqlx::query(sql)
            .fetch_one(self.store.pool())
            .await
            .unwrap()
            .try_get::<String, _>(0)
            .unwrap()
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query(sql)
            .fetch_one(self.store.pool())
            .await
            .unwrap()
            .try_get::<i64, _>(0)
            .unwrap()
    }

    /// (status, text) of the outbox rows, in id order.
    pub async fn outbox(&self) -> Vec<(String, String)> {
        sqlx::query("SELECT status, text FROM outbox ORDER BY id")
            .fetch_all(self.store.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap()))
            .collect()
    }
}

/// Polls and drains `bot` until nothing moves, at most `rounds` times;
/// whether it settled.
pub async fn settle_bot(bot: &Bot, rounds: usize) -> bool {
    for _ in 0..rounds {
        let fresh = bot
            .poll_once()
            .await
            .unwrap()
            .iter()
            .filter(|p| !p.duplicate)
            .count();
        let r = bot.drain_once().await.unwrap();
        if fresh == 0 && !r.progressed() && r.sent == 0 {
            return true;
        }
    }
    false
}

/// A traffic line.
pub fn line(id: &str, channel: &str, author: &str, text: &str) -> String {
    serde_json::json!({"id": id, "channel": channel, "author": author, "text": text}).to_string()
}

/// Writes a rules folder with one file.
pub fn rules_dir(dir: &Path, toml: &str) -> PathBuf {
    let d = dir.join("rules");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("rules.toml"), toml).unwrap();
    d
}

/// Declares one test per database for an `async fn(Db)` scenario, as
/// `MODULE::sqlite::NAME` and `MODULE::postgres::NAME`.
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Db::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Db::Postgres).await;
                }
            )*
        }
    };
}

/// A connector that "dies" in the middle of a send: it sends for real when
/// `post_leaves` (the post left, the bot did not record it), then never
/// returns, so the round is abandoned as a crash would.
pub struct CrashAfterSend(pub Arc<dyn Connector>, pub bool);

#[async_trait::async_trait]
impl Connector for CrashAfterSend {
    fn platform(&self) -> helpdesk::domain::Platform {
        self.0.platform()
    }
    fn streams(&self) -> Vec<helpdesk::domain::Stream> {
        self.0.streams()
    }
    async fn whoami(&self) -> Result<helpdesk::platforms::Account, helpdesk::platforms::ApiError> {
        self.0.whoami().await
    }
    async fn poll(
        &self,
        s: helpdesk::domain::Stream,
        c: Option<&str>,
    ) -> Result<helpdesk::platforms::Batch, helpdesk::platforms::ApiError> {
        self.0.poll(s, c).await
    }
    async fn find_sent(
        &self,
        out: &helpdesk::platforms::Outgoing,
        since: helpdesk::domain::clock::Millis,
    ) -> Result<helpdesk::platforms::Lookup, helpdesk::platforms::ApiError> {
        self.0.find_sent(out, since).await
    }
    async fn send(
        &self,
        out: &helpdesk::platforms::Outgoing,
    ) -> Result<helpdesk::platforms::Sent, helpdesk::platforms::ApiError> {
        if self.1 {
            let _ = self.0.send(out).await;
        }
        std::future::pending().await
    }
    fn resend_is_safe_within(
        &self,
        kind: helpdesk::platforms::ReplyKind,
    ) -> Option<std::time::Duration> {
        self.0.resend_is_safe_within(kind)
    }
}

/// Sends `sig` (`-TERM`, `-KILL`, `-HUP`) to a running `helpdesk`.
pub fn signal(child: &std::process::Child, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

/// Sends SIGTERM to a running `helpdesk`, as systemd would.
pub fn terminate(child: &std::process::Child) {
    signal(child, "-TERM");
}

/// Logs in to the sandbox with OAuth 2.0 and stores the login in the
/// database at `url`, sealed with `key` under the variable name `key_var`,
/// as `helpdesk x login` with `token_store = "database"` leaves it.
pub async fn login_in_database(
    sandbox: &Sandbox,
    url: &str,
    key_var: &str,
    key: &[u8; 32],
    clock: &Clock,
) {
    use helpdesk::storage::oauth_tokens::{SharedTokens, TokenKey};
    let token_url = format!("{}/2/oauth2/token", sandbox.base_url());
    let tokens = helpdesk::platforms::x::auth::token_request(
        &helpdesk::platforms::http::http_client(),
        &token_url,
        "client-1",
        None,
        &[
            ("grant_type", "authorization_code"),
            ("code", "sandbox-code"),
            ("code_verifier", &"v".repeat(43)),
        ],
        clock.now_ms(),
    )
    .await
    .unwrap();
    let store = Store::open(url).await.unwrap();
    SharedTokens::x(store, TokenKey::from_bytes(key_var, key))
        .save(&tokens, clock.now_ms())
        .await
        .unwrap();
}

/// A port free on 127.0.0.1 right now, for a process the test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
