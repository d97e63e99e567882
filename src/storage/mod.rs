//! The database: connection, migrations and transactions; one module per
//! table below owns every statement that writes it.
//!
//! One code path serves SQLite and PostgreSQL: sqlx's `Any` driver with
//! runtime-checked queries written in the SQL both understand (`$1`
//! placeholders, `RETURNING`, `ON CONFLICT`). Times are Unix milliseconds in
//! 64-bit integers, so neither backend's date types leak into the code.
//! Each backend has its own migration folder because identity columns are
//! spelled differently; the tables are the same.

pub mod agent_actions;
pub mod agents;
pub mod bot_state;
pub mod console;
pub mod cursors;
pub mod dialect;
pub mod incidents;
pub mod locks;
pub mod messages;
pub mod oauth_tokens;
pub mod opt_outs;
pub mod outbox;
pub mod skipped_items;
#[cfg(test)]
mod spellings;
pub mod ticket_events;
pub mod ticket_messages;
pub mod tickets;
pub mod views;
pub mod x_spend;

pub use bot_state::length_limit;
pub use cursors::set_cursor;
pub use skipped_items::record_skipped;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, ConnectOptions, Executor, Transaction};

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: one file.
    Sqlite,
    /// The scale-out choice.
    Postgres,
}

/// Why the database cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading the SQLite file directly (the bulk read of `rules replay`)
    /// failed.
    #[error("cannot read the SQLite database {file}: {source}; check that the file is readable")]
    SqliteRead {
        /// The file.
        file: String,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A row of the SQLite file read directly holds what helpdesk never
    /// writes (a tool other than helpdesk wrote it).
    #[error(
        "row {row} of the messages table in {file}: {what}; mend or delete that row (helpdesk did not write it so)"
    )]
    BadRow {
        /// The file.
        file: String,
        /// The row's `id`.
        row: i64,
        /// What is wrong with it.
        what: String,
    },
    /// The URL is neither `sqlite:` nor `postgres:`.
    #[error(
        "unsupported database URL `{0}`: use sqlite://FILE (created on first start) or postgres://USER@HOST/DB"
    )]
    Url(String),
    /// Connecting failed.
    #[error("cannot open the database {url}: {source}; {hint}")]
    Connect {
        /// The URL with any password removed.
        url: String,
        /// The driver's error.
        source: sqlx::Error,
        /// What to check, for this kind of database.
        hint: &'static str,
    },
    /// The SQLite file exists but is not a database (or is damaged).
    #[error("{url} is not a SQLite database or is damaged ({source}); {hint}")]
    NotADatabase {
        /// The URL with any password removed.
        url: String,
        /// SQLite's error.
        source: sqlx::Error,
        /// What to do, for the way it was opened.
        hint: &'static str,
    },
    /// A database opened to be read as it is ([`Store::open_existing`])
    /// names a SQLite file that does not exist.
    #[error(
        "there is no SQLite database at {file}: check database_url (this reads the bot's database as it is and creates none)"
    )]
    NoSuchFile {
        /// The file.
        file: String,
    },
    /// Reading rows for a one-shot command failed (`rules replay`): unlike
    /// the bot's work, it is not retried.
    #[error(
        "cannot read the database: {0}; check that the server is up and that this user may read helpdesk's tables (SELECT is enough), then run the command again"
    )]
    Read(sqlx::Error),
    /// A database opened to be read as it is ([`Store::open_existing`]) is
    /// not at this helpdesk's schema version.
    #[error("{}", schema_mismatch(url, *.found, *.expected))]
    Schema {
        /// The URL with any password removed.
        url: String,
        /// Its last migration; `None`: it has no migration table.
        found: Option<i64>,
        /// This helpdesk's last migration.
        expected: i64,
    },
    /// Applying migrations failed.
    #[error("cannot migrate the database {url}: {source}; {}", migrate_hint(.source))]
    Migrate {
        /// The URL with any password removed.
        url: String,
        /// The migrator's error.
        source: sqlx::migrate::MigrateError,
    },
    /// A query failed (disk full, database gone, constraint violated…).
    #[error("{}", describe_query_error(.0))]
    Query(#[from] sqlx::Error),
    /// What was written does not match what was meant (a bug, not the
    /// database's fault); the transaction must be rolled back.
    #[error("internal error, nothing of it kept: {0}")]
    Inconsistent(&'static str),
}

/// What [`StoreError::Schema`] says, and what to do.
fn schema_mismatch(url: &str, found: Option<i64>, expected: i64) -> String {
    match found {
        None => format!(
            "{url} is not a helpdesk database (it has no migration table): check database_url; \
             the bot creates and migrates its database when it first starts"
        ),
        Some(v) if v < expected => format!(
            "{url} is at schema version {v}, this helpdesk's is {expected}: use the helpdesk \
             that runs on it, or start this version's bot once (it migrates; back the database up first)"
        ),
        Some(v) => format!(
            "{url} was migrated by a newer helpdesk (schema version {v}, this one knows {expected}): use that version"
        ),
    }
}

/// What to do about a failed migration: only a migration this version does
/// not know means the database is from a newer helpdesk.
fn migrate_hint(e: &sqlx::migrate::MigrateError) -> &'static str {
    use sqlx::migrate::MigrateError as M;
    match e {
        M::VersionMissing(_) => {
            "it was migrated by a newer helpdesk: run that version, or restore a backup made before the upgrade"
        }
        M::VersionMismatch(_) | M::VersionNotPresent(_) => {
            "its migration history differs from this helpdesk's: restore a backup, or start from a new database"
        }
        M::Dirty(_) => {
            "a migration was interrupted: restore a backup taken before it, then start helpdesk again"
        }
        _ => {
            "the database may be damaged, read-only or full: check its file or server, and restore a backup if needed"
        }
    }
}

/// What a failed query means for the operator, and what to do. Nothing
/// is lost by it: the work's transaction rolled back and is retried.
fn describe_query_error(e: &sqlx::Error) -> String {
    let (code, message) = match e {
        sqlx::Error::Database(d) => (
            d.code().map(|c| c.into_owned()).unwrap_or_default(),
            d.message().to_owned(),
        ),
        _ => (String::new(), String::new()),
    };
    // SQLite's primary code is the low byte of its extended one.
    let sqlite = code.parse::<u32>().ok().map(|c| c & 0xff);
    // SQLITE_FULL (13) and PostgreSQL's disk_full (53100).
    if sqlite == Some(13) || code == "53100" || message.contains("disk is full") {
        return format!(
            "the disk holding the database is full ({e}): free some space or move the database; \
             nothing already recorded is lost and the work is retried"
        );
    }
    // SQLITE_READONLY (8) and PostgreSQL's read_only_sql_transaction (25006).
    if sqlite == Some(8) || code == "25006" {
        return format!(
            "the database is read-only ({e}): give the bot's user write access to the database \
             (for SQLite, the file and its folder) or point database_url at a writable one"
        );
    }
    format!("database error: {e}; the work is retried once the database answers")
}

#[cfg(test)]
mod query_error_tests {
    #[test]
    fn a_read_only_file_says_what_to_do() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("ro.db");
            let url = format!("sqlite://{}", path.display());
            super::Store::open(&url).await.unwrap();
            let ro = super::Store::open(&format!("{url}?mode=ro")).await.unwrap();
            let e = sqlx::query("INSERT INTO bot_state (key, value) VALUES ('k', 'v')")
                .execute(ro.pool())
                .await
                .map_err(super::StoreError::from)
                .unwrap_err();
            assert!(e.to_string().contains("read-only"), "{e}");
        });
    }
}

/// A connection pool plus what kind of database it is.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// The SQLite file, for the bulk read that goes around sqlx
    /// ([`messages::for_each_written_since`]); `None` on PostgreSQL and in
    /// memory.
    sqlite_file: Option<std::path::PathBuf>,
}

/// What replaces a credential in a printed URL.
const REDACTED: &str = "[redacted]";

/// A database URL with every credential removed, for logs and errors.
///
/// The URL is parsed (the `url` crate, as the drivers do), not cut at a
/// character: the password in the authority is replaced whatever it holds
/// (`@`, `:`, `%40`), and so is the value of every query parameter whose
/// name looks secret (`password`, `pass`, `sslpassword`, `passfile`,
/// anything with `secret`, `token`, `key`, `auth` or `pwd` in it). Other
/// parameters, such as a unix-socket `host=/run/postgresql`, are kept: they
/// help find the database. A URL that does not parse is shown as its scheme
/// alone (`postgres:[redacted]`), since where its password ends is unknown;
/// so is one without an authority (`//`), except `sqlite:`.
pub fn redact_url(raw: &str) -> String {
    // A password with an unescaped `?`, `/` or `#` ends a URL parser's
    // authority early (`postgres://hd:1?Hunter2@db/hd` parses as host `hd`,
    // port 1, query `Hunter2@db/hd`). Whatever stands between `user:` and
    // the last `@` is taken for a password, whatever a parser would say.
    if let Some((scheme, rest)) = raw.split_once("://")
        && let Some((userinfo, host)) = rest.rsplit_once('@')
        && let Some((user, _)) = userinfo.split_once(':')
        && !user.contains(['/', '?', '#'])
        && userinfo.contains(['/', '?', '#'])
    {
        return redact_url(&format!("{scheme}://{user}:x@{host}"));
    }
    // Without `//` a URL has no authority and anything may follow the
    // scheme (`hd:Hunter2@db`); only SQLite's `sqlite::memory:` and
    // `sqlite:FILE` are known to hold no secret there.
    let parsed = url::Url::parse(raw)
        .ok()
        .filter(|u| !u.cannot_be_a_base() || u.scheme() == "sqlite");
    let Some(u) = parsed else {
        return match raw.split_once(':') {
            Some((scheme, _))
                if !scheme.is_empty()
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
            {
                format!("{scheme}:{REDACTED}")
            }
            _ => REDACTED.to_owned(),
        };
    };
    use url::Position;
    let mut out = if u.password().is_some() {
        // Everything up to the user name, then everything from the host:
        // the password between them is never copied.
        format!(
            "{}:{REDACTED}@{}",
            &u[..Position::AfterUsername],
            &u[Position::BeforeHost..Position::AfterPath]
        )
    } else {
        u[..Position::AfterPath].to_owned()
    };
    if let Some(q) = u.query() {
        out.push('?');
        let pairs: Vec<String> = q
            .split('&')
            .map(|pair| {
                let name = pair.split_once('=').map_or(pair, |(n, _)| n);
                if secret_name(name) {
                    format!("{name}={REDACTED}")
                } else {
                    pair.to_owned()
                }
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    if u.fragment().is_some() {
        // No driver reads a fragment; whatever is there is not shown.
        out.push('#');
        out.push_str(REDACTED);
    }
    out
}

/// The query parameters the PostgreSQL driver reads; it ignores others,
/// logging their values, so a secret-looking one it would ignore
/// (`sslpassword`, `token`) is dropped before the driver sees it.
const POSTGRES_PARAMETERS: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

fn without_ignored_secrets(raw: &str) -> String {
    let Ok(mut u) = url::Url::parse(raw) else {
        return raw.to_owned(); // the driver refuses it, naming no part of it
    };
    if u.query().is_none() {
        return raw.to_owned();
    }
    let (kept, dropped): (Vec<_>, Vec<_>) = u
        .query_pairs()
        .into_owned()
        .partition(|(k, _)| POSTGRES_PARAMETERS.contains(&k.as_str()) || !secret_name(k));
    if dropped.is_empty() {
        return raw.to_owned();
    }
    for (k, _) in &dropped {
        tracing::warn!(parameter = %k, "database_url parameter not used by the PostgreSQL driver: ignored");
    }
    if kept.is_empty() {
        u.set_query(None);
    } else {
        u.query_pairs_mut().clear().extend_pairs(kept);
    }
    u.into()
}

/// Whether a query parameter's name (percent-encoded or not) names a secret.
fn secret_name(raw: &str) -> bool {
    let name: String = url::form_urlencoded::parse(raw.as_bytes())
        .next()
        .map(|(k, _)| k.to_ascii_lowercase())
        .unwrap_or_default();
    [
        "pass",
        "pwd",
        "secret",
        "token",
        "key",
        "auth",
        "credential",
    ]
    .iter()
    .any(|w| name.contains(w))
}

/// Whether a connection error means the server is not there yet (refused,
/// reset, timed out, starting up), as opposed to a configuration mistake
/// (wrong password, unknown database, bad URL) that waiting cannot fix.
fn server_not_up(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => true,
        // 57P03: the server is starting up or shutting down; 53300: too
        // many connections; 08xxx: connection exceptions.
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c == "57P03" || c == "53300" || c.starts_with("08")),
        _ => false,
    }
}

impl Store {
    /// [`Store::open`], waiting out a database server that is not up yet
    /// (PostgreSQL refusing connections while it starts, a restart of the
    /// server): retried with backoff, logged. A SQLite file that cannot be
    /// opened, a bad URL or a failed migration is a configuration problem
    /// and is returned at once.
    pub async fn open_patiently(url: &str) -> Result<Store, StoreError> {
        let mut wait = Duration::from_secs(1);
        loop {
            match Store::open(url).await {
                Err(StoreError::Connect {
                    url: shown, source, ..
                }) if url.starts_with("postgres") && server_not_up(&source) => {
                    tracing::warn!(database = %shown, error = %source, retry_in_secs = wait.as_secs(),
                        "the database is not reachable yet; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
                other => return other,
            }
        }
    }

    /// Opens (creating a SQLite file if needed) and migrates the database.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let store = Store::connect(url, Access::CreateAndMigrate).await?;
        migrator(store.backend)
            .run(&store.pool)
            .await
            .map_err(|source| StoreError::Migrate {
                url: redact_url(url),
                source,
            })?;
        Ok(store)
    }

    /// Opens a database the bot has created and migrated to this
    /// helpdesk's schema, read-only and changing nothing: for a preview
    /// (`rules replay`), which must neither create a mistyped database nor
    /// upgrade one another helpdesk still runs on, and which a read-only
    /// PostgreSQL role may run. A missing SQLite file, a database without
    /// helpdesk's tables or one at another schema version is an error that
    /// says which.
    pub async fn open_existing(url: &str) -> Result<Store, StoreError> {
        let store = Store::connect(url, Access::ReadExisting).await?;
        let expected = migrator(store.backend)
            .iter()
            .map(|m| m.version)
            .max()
            .expect("helpdesk has migrations");
        let found = store.schema_version().await?;
        if found != Some(expected) {
            return Err(StoreError::Schema {
                url: redact_url(url),
                found,
                expected,
            });
        }
        Ok(store)
    }

    /// The last migration applied, `None` when the database has no
    /// migration table (not a helpdesk database, or an empty one).
    async fn schema_version(&self) -> Result<Option<i64>, StoreError> {
        let has_table = match self.backend {
            Backend::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
            }
            // Found as the unqualified query below finds it (through the
            // search path), whatever the role may read.
            Backend::Postgres => {
                "SELECT COUNT(*) FROM (SELECT to_regclass('_sqlx_migrations') AS t) AS found \
                 WHERE t IS NOT NULL"
            }
        };
        let n: i64 = sqlx::query_scalar(has_table).fetch_one(&self.pool).await?;
        if n == 0 {
            return Ok(None);
        }
        let version: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await?;
        Ok(version)
    }

    /// Connects: the pool, and for SQLite a first check that the file is
    /// a database.
    async fn connect(url: &str, access: Access) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let shown = redact_url(url);
        let (backend, url) =
            driver_url(url, access).ok_or_else(|| StoreError::Url(shown.clone()))?;
        let hint = match (backend, access) {
            (Backend::Sqlite, Access::CreateAndMigrate) => {
                "check database_url, and that its folder exists and this user may write there"
            }
            (Backend::Sqlite, Access::ReadExisting) => {
                "check database_url (this reads the bot's database and creates none), and run as \
                 the bot's user or while the bot runs: SQLite writes a -shm file beside the database"
            }
            (Backend::Postgres, _) => "check database_url and that the server is up",
        };
        let connect_err = |source| StoreError::Connect {
            url: shown.clone(),
            source,
            hint,
        };
        if (backend, access) == (Backend::Sqlite, Access::ReadExisting)
            && let Some(file) = sqlite_file(&url)
            && file.try_exists().is_ok_and(|exists| !exists)
        {
            return Err(StoreError::NoSuchFile {
                file: file.display().to_string(),
            });
        }
        let opts = AnyConnectOptions::from_str(&url)
            .map_err(connect_err)?
            .disable_statement_logging();
        if backend == Backend::Sqlite {
            // One plain connection first: the pool would retry a file that
            // is not a database for its whole acquire timeout and then say
            // only "pool timed out".
            use sqlx::{ConnectOptions as _, Connection as _};
            let mut c = opts.connect().await.map_err(connect_err)?;
            if let Err(source) = sqlx::query("PRAGMA schema_version").execute(&mut c).await {
                // A read-only folder or file (SQLITE_READONLY and its
                // extended codes) is this user's rights, not damage.
                let read_only = source
                    .as_database_error()
                    .and_then(|d| d.code())
                    .and_then(|code| code.parse::<i32>().ok())
                    .is_some_and(|code| code & 0xff == 8);
                return Err(if read_only {
                    connect_err(source)
                } else {
                    StoreError::NotADatabase {
                        url: shown,
                        source,
                        hint: match access {
                            Access::CreateAndMigrate => {
                                "restore it from a backup, or point database_url at another file (a missing one is created)"
                            }
                            Access::ReadExisting => {
                                "check database_url: it must name the bot's database"
                            }
                        },
                    }
                });
            }
            let _ = c.close().await;
        }
        let pool = pool(backend, opts, access).await.map_err(connect_err)?;
        let sqlite_file = match backend {
            Backend::Sqlite => sqlite_file(&url),
            Backend::Postgres => None,
        };
        Ok(Store {
            pool,
            backend,
            sqlite_file,
        })
    }

    /// The SQLite file, if this is one on disk.
    pub fn sqlite_file(&self) -> Option<&std::path::Path> {
        self.sqlite_file.as_deref()
    }

    /// The pool, for read-only queries.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the database answers a trivial query (`/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Starts a write transaction. On SQLite it takes the write lock at
    /// once, so two writers queue on `busy_timeout` instead of failing
    /// when a reader upgrades.
    pub async fn begin(&self) -> Result<Transaction<'static, Any>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }
}

/// The file a SQLite driver URL names, unless it is in memory.
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    sqlx::sqlite::SqliteConnectOptions::from_str(url)
        .ok()
        .map(|o| o.get_filename().to_owned())
        .filter(|f| f.as_os_str() != ":memory:")
}

/// How [`Store::connect`] opens a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// The bot and the commands that write: a missing SQLite file is
    /// created, and the migrations run.
    CreateAndMigrate,
    /// A preview: an existing database, read-only (SQLite), unchanged.
    ReadExisting,
}

/// This helpdesk's migrations for `backend`, embedded at build time.
fn migrator(backend: Backend) -> sqlx::migrate::Migrator {
    match backend {
        Backend::Sqlite => sqlx::migrate!("migrations/sqlite"),
        Backend::Postgres => sqlx::migrate!("migrations/postgres"),
    }
}

/// The backend of `url` and the URL its driver gets: a SQLite file is
/// created on first start (opened read-only for [`Access::ReadExisting`]);
/// secrets PostgreSQL's driver would ignore (and log) are dropped. `None`
/// for any other scheme.
fn driver_url(url: &str, access: Access) -> Option<(Backend, String)> {
    if url.starts_with("sqlite:") {
        let sep = if url.contains('?') { '&' } else { '?' };
        let u = match access {
            _ if url.contains(":memory:") => url.to_owned(),
            Access::CreateAndMigrate if url.contains("mode=") => url.to_owned(),
            Access::CreateAndMigrate => format!("{url}{sep}mode=rwc"),
            // Read-only whatever mode the URL asks for.
            Access::ReadExisting => {
                let (path, query) = url.split_once('?').unwrap_or((url, ""));
                let kept: Vec<&str> = query
                    .split('&')
                    .filter(|p| !p.is_empty() && !p.starts_with("mode="))
                    .chain(["mode=ro"])
                    .collect();
                format!("{path}?{}", kept.join("&"))
            }
        };
        Some((Backend::Sqlite, u))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Some((Backend::Postgres, without_ignored_secrets(url)))
    } else {
        None
    }
}

/// The connection pool, with SQLite's settings on every connection (a
/// read-only one leaves the journal as the bot set it).
async fn pool(
    backend: Backend,
    opts: AnyConnectOptions,
    access: Access,
) -> Result<AnyPool, sqlx::Error> {
    AnyPoolOptions::new()
        .max_connections(if backend == Backend::Sqlite { 4 } else { 8 })
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if backend == Backend::Sqlite && access == Access::ReadExisting {
                    conn.execute("PRAGMA busy_timeout = 10000; PRAGMA temp_store = MEMORY;")
                        .await?;
                } else if backend == Backend::Sqlite {
                    // WAL lets readers work while the bot writes; NORMAL
                    // keeps commits fast and durable across process crashes
                    // (the outbox's promise). A page cache and
                    // memory-mapped reads keep the hot indexes out of
                    // read() system calls.
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                         PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; \
                         PRAGMA cache_size = -32768; PRAGMA mmap_size = 268435456; \
                         PRAGMA temp_store = MEMORY;",
                    )
                    .await?;
                }
                Ok(())
            })
        })
        .connect_with(opts)
        .await
}

/// Parses a name read from the database into its enum: a name the code
/// does not know is a decode error (a newer version wrote it, or a tool
/// bypassed the CHECK constraints), never a silent default.
pub(crate) fn decode<T>(s: String) -> Result<T, StoreError>
where
    T: std::str::FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    s.parse()
        .map_err(|e: T::Err| StoreError::Query(sqlx::Error::Decode(Box::new(e))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unknown_migration_blames_a_newer_helpdesk() {
        use sqlx::migrate::MigrateError as M;
        assert!(migrate_hint(&M::VersionMissing(9)).contains("newer helpdesk"));
        for e in [
            M::Dirty(3),
            M::VersionMismatch(2),
            M::Execute(sqlx::Error::Protocol("file is not a database".into())),
        ] {
            assert!(!migrate_hint(&e).contains("newer"), "{e}");
        }
    }

    #[test]
    fn a_preview_opens_sqlite_read_only_whatever_the_url_asks() {
        let url = |u, access| driver_url(u, access).unwrap().1;
        let read = Access::ReadExisting;
        assert_eq!(url("sqlite://a.db", read), "sqlite://a.db?mode=ro");
        assert_eq!(url("sqlite://a.db?mode=rwc", read), "sqlite://a.db?mode=ro");
        assert_eq!(
            url("sqlite://a.db?cache=shared&mode=rw", read),
            "sqlite://a.db?cache=shared&mode=ro"
        );
        let write = Access::CreateAndMigrate;
        assert_eq!(url("sqlite://a.db", write), "sqlite://a.db?mode=rwc");
        assert_eq!(url("sqlite://a.db?mode=ro", write), "sqlite://a.db?mode=ro");
    }

    /// Checks each (url, redacted) pair, and that no secret survives.
    fn assert_redacted(table: &[(&str, String)]) {
        for (url, want) in table {
            let got = redact_url(url);
            assert_eq!(&got, want, "for {url}");
            assert!(!got.contains("Hunter") && !got.contains("s3cret"), "{got}");
        }
    }

    #[test]
    fn every_password_is_redacted_whatever_it_holds() {
        let r = REDACTED;
        assert_redacted(&[
            (
                "postgres://bot:s3cret@db:5432/helpdesk",
                format!("postgres://bot:{r}@db:5432/helpdesk"),
            ),
            // `@` in the password: the last `@` ends the authority.
            (
                "postgres://helpdesk:p@ssHunter2@db/hd",
                format!("postgres://helpdesk:{r}@db/hd"),
            ),
            // `?`, `/` or `#` in the password would end a parser's authority.
            (
                "postgres://hd:1?Hunter2@db/hd",
                format!("postgres://hd:{r}@db/hd"),
            ),
            (
                "postgres://hd:8/Kq9x@db/hd",
                format!("postgres://hd:{r}@db/hd"),
            ),
            (
                "postgres://hd:12#Kq9x@db:5432/hd?sslmode=require",
                format!("postgres://hd:{r}@db:5432/hd?sslmode=require"),
            ),
            (
                "postgres://helpdesk:p%40ss:Hunter2@db/hd",
                format!("postgres://helpdesk:{r}@db/hd"),
            ),
            (
                "postgresql://u:a:b:c@db:5433/hd?sslmode=require",
                format!("postgresql://u:{r}@db:5433/hd?sslmode=require"),
            ),
        ]);
    }

    #[test]
    fn secret_parameters_and_fragments_are_redacted_and_the_rest_kept() {
        let r = REDACTED;
        assert_redacted(&[
            (
                "postgres://helpdesk@db/hd?password=Hunter2&application_name=hd",
                format!("postgres://helpdesk@db/hd?password={r}&application_name=hd"),
            ),
            (
                "postgres://db/hd?user=hd&pass=Hunter2&sslpassword=Hunter3&sslmode=verify-full",
                format!("postgres://db/hd?user=hd&pass={r}&sslpassword={r}&sslmode=verify-full"),
            ),
            (
                "postgres://db/hd?api_token=Hunter2&client_secret=Hunter3&Pass%77ord=Hunter4",
                format!("postgres://db/hd?api_token={r}&client_secret={r}&Pass%77ord={r}"),
            ),
            (
                "postgres:///hd?host=/run/postgresql&password=Hunter2",
                format!("postgres:///hd?host=/run/postgresql&password={r}"),
            ),
            (
                "postgres://hd:Hunter2@%2Frun%2Fpostgresql/hd",
                format!("postgres://hd:{r}@%2Frun%2Fpostgresql/hd"),
            ),
            (
                "postgres://:Hunter2@db/hd",
                format!("postgres://:{r}@db/hd"),
            ),
            (
                "postgres://hd:Hunter2@db/hd#Hunter3",
                format!("postgres://hd:{r}@db/hd#{r}"),
            ),
        ]);
    }

    #[test]
    fn an_unparsable_url_shows_its_scheme_alone_and_sqlite_urls_stay() {
        let r = REDACTED;
        assert_redacted(&[
            // Does not parse (a bad port, an unclosed IPv6 host): the
            // scheme alone, since where the password ends is unknown.
            (
                "postgres://hd:Hunter2@db:99999999/hd",
                format!("postgres:{r}"),
            ),
            ("postgres://hd:Hunter2@[db/hd", format!("postgres:{r}")),
            ("hd:Hunter2@db", format!("hd:{r}")),
            ("Hunter2 no scheme", r.to_owned()),
            ("sqlite://helpdesk.db", "sqlite://helpdesk.db".to_owned()),
            (
                "sqlite:///var/lib/helpdesk/helpdesk.db?mode=rwc",
                "sqlite:///var/lib/helpdesk/helpdesk.db?mode=rwc".to_owned(),
            ),
            ("sqlite::memory:", "sqlite::memory:".to_owned()),
        ]);
    }
}
