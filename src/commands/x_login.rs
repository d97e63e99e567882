//! `helpdesk x login`: the OAuth 2.0 login (with PKCE) that lets the bot
//! act as the brand's X account, its tokens saved where `helpdesk run`
//! will look for them.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::{Args, Subcommand};

use crate::commands::args::{ConfigFile, adjust};
use crate::commands::process::{LogFormat, block_on};
use crate::domain::clock::{Clock, Millis};
use crate::domain::secret::Secret;
use crate::platforms::x::auth::{self, TokenSet};
use crate::platforms::x::config::{TokenStore, XConfig};
use crate::runtime::config::Config;
use crate::storage::oauth_tokens::{SharedTokens, TokenKey};
use crate::storage::{Store, redact_url};

/// `helpdesk x …`
#[derive(Debug, Subcommand)]
pub enum XCommand {
    /// Authorise the bot on the brand's X account (OAuth 2.0 with PKCE) and
    /// save the tokens to the `token_file` of `[x]`, or to the database
    /// (sealed) with `token_store = "database"`.
    Login(LoginArgs),
}

/// `helpdesk x login`: where the app is registered and where X asks.
#[derive(Debug, Args)]
#[command(mut_args(adjust("config", |a| a.help(
    "The configuration file: `[x]` gives base_url, client_id_env and token_file \
     (or token_store and token_key_env, with database_url)"
))))]
pub struct LoginArgs {
    /// Which file.
    #[command(flatten)]
    pub config: ConfigFile,
    /// The callback URL registered for the app in the X developer portal.
    #[arg(long, default_value = "http://127.0.0.1:8976/callback")]
    pub redirect_uri: String,
    /// Where X's consent page is.
    #[arg(long, default_value = "https://x.com/i/oauth2/authorize")]
    pub authorize_url: String,
}

/// Runs an `x` command; returns the exit code.
pub fn execute(cmd: XCommand) -> Result<i32> {
    match cmd {
        XCommand::Login(args) => block_on(LogFormat::Text, "warn", x_login(&args))?,
    }
    Ok(0)
}

/// The PKCE login: print the consent URL, read back the redirect, exchange
/// the code, save the tokens (a 0600 file, or sealed in the database).
async fn x_login(args: &LoginArgs) -> Result<()> {
    let path = &args.config.path;
    let cfg = Config::load(path, true)?;
    let Some(x) = &cfg.x else {
        bail!(
            "{} has no [x] section: add one with base_url, client_id_env and token_file",
            path.display()
        );
    };
    let target = token_target(&cfg, x, path).await?;
    let client = AppClient::from_env(x)?;
    let grant = ask_consent(args, client.id.expose())?;
    let clock = Clock::new();
    let tokens = exchange(x, &client, &args.redirect_uri, &grant, clock.now_ms()).await?;
    save(target, &tokens, clock.now_ms(), &cfg.database_url, x).await
}

/// Where the tokens go.
enum Target {
    /// A file only this user can read, for a single instance.
    File(PathBuf),
    /// Sealed in the database, shared by every instance with the key.
    Database(SharedTokens),
}

/// Where the tokens will go, settled before the operator is sent to X so
/// that a missing key or an unreachable database never wastes a consent.
async fn token_target(cfg: &Config, x: &XConfig, config: &Path) -> Result<Target> {
    Ok(match (x.token_store, x.token_file.clone()) {
        (TokenStore::Database, _) => {
            let key = TokenKey::from_env(&x.token_key_env)?;
            let store = Store::open(&cfg.database_url).await?;
            Target::Database(SharedTokens::x(store, key))
        }
        // Config::load already made a relative token_file relative to the config.
        (TokenStore::File, Some(f)) => Target::File(f),
        (TokenStore::File, None) => bail!(
            "[x] in {} has no token_file: add for example token_file = \"x-token.json\" (or token_store = \"database\" to share the login between instances)",
            config.display()
        ),
    })
}

/// The app registered in the X developer portal, as X knows it.
struct AppClient {
    id: Secret,
    /// Confidential clients only.
    secret: Option<Secret>,
}

impl AppClient {
    fn from_env(x: &XConfig) -> Result<AppClient> {
        Ok(AppClient {
            id: Secret::from_env(&x.client_id_env)?,
            secret: x
                .client_secret_env
                .as_deref()
                .map(Secret::from_env)
                .transpose()?,
        })
    }
}

/// What the operator's consent yields: the code, and the verifier that
/// proves this process asked for it.
struct Grant {
    code: String,
    verifier: String,
}

/// Sends the operator to X's consent page (on stderr, stdout staying
/// clean) and reads back the address X redirected to, or its code.
fn ask_consent(args: &LoginArgs, client_id: &str) -> Result<Grant> {
    let (verifier, challenge) = auth::pkce_pair();
    let state = auth::pkce_pair().0;
    let redirect_uri = &args.redirect_uri;
    let url = auth::authorize_url(
        &args.authorize_url,
        client_id,
        redirect_uri,
        &state,
        &challenge,
    );
    writeln!(
        std::io::stderr(),
        "1. Open this URL while signed in as the brand's account, and allow the app:\n\n{url}\n\n2. Your browser then goes to {redirect_uri}?…&code=…; paste that whole address (or only the code) here and press Enter:"
    )?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let code = auth::code_from_paste(&line, &state).map_err(|e| anyhow::anyhow!(e))?;
    Ok(Grant { code, verifier })
}

/// Trades the code for the tokens at X's token endpoint.
async fn exchange(
    x: &XConfig,
    client: &AppClient,
    redirect_uri: &str,
    grant: &Grant,
    now: Millis,
) -> Result<TokenSet> {
    Ok(auth::token_request(
        &crate::platforms::http::http_client(),
        &format!("{}/2/oauth2/token", x.base_url.trim_end_matches('/')),
        client.id.expose(),
        client.secret.as_ref(),
        &[
            ("grant_type", "authorization_code"),
            ("code", &grant.code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", &grant.verifier),
        ],
        now,
    )
    .await?)
}

/// Saves the tokens and tells the operator where, and what happens next.
async fn save(
    target: Target,
    tokens: &TokenSet,
    now: Millis,
    database_url: &str,
    x: &XConfig,
) -> Result<()> {
    let mut err = std::io::stderr();
    match target {
        Target::File(path) => {
            auth::write_token_file(&path, tokens)?;
            writeln!(
                err,
                "Saved the tokens to {} (readable by you only). `helpdesk run` refreshes them from now on.",
                path.display()
            )?;
        }
        Target::Database(shared) => {
            shared.save(tokens, now).await?;
            writeln!(
                err,
                "Saved the tokens in the database {}, sealed with the key in {}. Every instance with that key shares this login; one of them refreshes it at a time.",
                redact_url(database_url),
                x.token_key_env
            )?;
        }
    }
    Ok(())
}
