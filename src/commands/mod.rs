//! The command line: clap definitions and the commands that only read rules.
//!
//! Commands print for people by default and JSON with `--json`; they return
//! an exit code rather than calling `exit`, so `main` stays the only place
//! that ends the process.

pub mod demo;
pub mod run;
pub mod setup;
pub mod tickets;

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde_json::json;

use crate::domain::Channel;
use crate::rules::{Decision, LoadOptions, Outcome, RuleSet, Vars};

/// helpdesk: answers customers on X and Mastodon from rule files, escalates the rest to agents.
#[derive(Debug, Parser)]
#[command(name = "helpdesk", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check or try the rule files.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Run the whole bot against a local sandbox X API and show what it did.
    Demo {
        /// The folder of rule files.
        #[arg(long, default_value = "rules")]
        rules: PathBuf,
        /// The traffic file: one JSON message per line.
        #[arg(long, default_value = "demo/traffic.jsonl")]
        traffic: PathBuf,
        /// Keep the database in this SQLite file (default: a temporary one).
        #[arg(long)]
        db: Option<PathBuf>,
        /// One JSON line per message, then a summary line.
        #[arg(long)]
        json: bool,
    },
    /// Work escalated tickets (agents).
    Tickets {
        /// Where the database is, and who is acting.
        #[command(flatten)]
        common: crate::commands::tickets::Common,
        /// What to do.
        #[command(subcommand)]
        cmd: crate::commands::tickets::TicketsCommand,
    },
    /// What reached the brand, what the bot did, how the agents did.
    Report {
        /// Where the database is.
        #[command(flatten)]
        common: crate::commands::tickets::Common,
        /// The period: 30m, 24h, 7d, 2w…
        #[arg(long, default_value = "7d")]
        since: String,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// X account set-up.
    #[command(subcommand)]
    X(XCommand),
    /// Write a commented helpdesk.toml and starter rules into DIR.
    Init {
        /// Where (created if needed).
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Check the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print shell completions.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Run the bot until Ctrl-C or SIGTERM.
    Run {
        /// The configuration file (missing: every default).
        #[arg(long, default_value = "helpdesk.toml", env = "HELPDESK_CONFIG")]
        config: PathBuf,
        /// Also answer messages written before the bot's first start.
        #[arg(long)]
        answer_backlog: bool,
        /// Log format.
        #[arg(long, value_enum, default_value = "text")]
        log_format: LogFormat,
    },
}

/// `helpdesk config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate everything (the rules and their examples included) and print
    /// the effective configuration, secrets redacted; exit 1 on a problem.
    Check {
        /// The configuration file.
        #[arg(long, default_value = "helpdesk.toml", env = "HELPDESK_CONFIG")]
        config: PathBuf,
    },
}

/// `helpdesk x …`
#[derive(Debug, Subcommand)]
pub enum XCommand {
    /// Authorise the bot on the brand's X account (OAuth 2.0 with PKCE) and
    /// save the tokens to the `token_file` of `[x]`, or to the database
    /// (sealed) with `token_store = "database"`.
    Login {
        /// The configuration file: `[x]` gives base_url, client_id_env and
        /// token_file (or token_store and token_key_env, with database_url).
        #[arg(long, default_value = "helpdesk.toml", env = "HELPDESK_CONFIG")]
        config: PathBuf,
        /// The callback URL registered for the app in the X developer portal.
        #[arg(long, default_value = "http://127.0.0.1:8976/callback")]
        redirect_uri: String,
        /// Where X's consent page is.
        #[arg(long, default_value = "https://x.com/i/oauth2/authorize")]
        authorize_url: String,
    },
}

/// How logs are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people at a terminal.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Sends tracing output to stderr; `RUST_LOG` overrides `default`.
pub fn init_logging(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => b.try_init(),
        LogFormat::Json => b.json().try_init(),
    };
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// `helpdesk rules …`
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Load every rule file, run every example; exit 1 with every error.
    Check {
        /// The folder of rule files.
        #[arg(long, default_value = "rules")]
        rules: PathBuf,
    },
    /// Show which rule a message routes to, and why the others lost.
    Test {
        /// The folder of rule files.
        #[arg(long, default_value = "rules")]
        rules: PathBuf,
        /// The channel the message arrives on.
        #[arg(long, default_value = "mention")]
        channel: Channel,
        /// One JSON object per message.
        #[arg(long)]
        json: bool,
        /// The customer's handle used to render replies.
        #[arg(long, default_value = "customer")]
        author: String,
        /// The customer's display name used to render replies.
        #[arg(long, default_value = "Customer")]
        name: String,
        /// The message; `-` reads JSON lines `{"text", "channel"}` from stdin.
        text: String,
    },
}

impl clap::ValueEnum for Channel {
    fn value_variants<'a>() -> &'a [Self] {
        &Channel::ALL
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

/// Runs a `rules` command; returns the process exit code.
pub fn rules_command(cmd: RulesCommand) -> Result<i32> {
    match cmd {
        RulesCommand::Check { rules } => check(&rules),
        RulesCommand::Test {
            rules,
            channel,
            json,
            author,
            name,
            text,
        } => {
            let set = match RuleSet::load_dir(&rules, &LoadOptions::default()) {
                Ok(set) => set,
                Err(e) => {
                    eprint!("{}", e.render());
                    return Ok(1);
                }
            };
            let vars = Vars {
                author: author.trim_start_matches('@'),
                name: &name,
                ticket: Some(SAMPLE_TICKET),
            };
            if text == "-" {
                bulk(&set, &vars)
            } else {
                let d = set.route(&text, channel);
                // Written, not printed: `println!` panics on a closed pipe.
                let mut out = std::io::stdout().lock();
                if json {
                    writeln!(out, "{}", decision_json(&d, &vars))?;
                } else {
                    write!(out, "{}", explain(&d, &text, channel, &vars))?;
                }
                Ok(0)
            }
        }
    }
}

/// The ticket reference shown in rendered acks when no ticket exists yet.
const SAMPLE_TICKET: &str = "T-1000";

fn check(dir: &Path) -> Result<i32> {
    Ok(match RuleSet::load_dir(dir, &LoadOptions::default()) {
        Ok(set) => {
            let s = set.stats();
            writeln!(
                std::io::stdout().lock(),
                "ok: {} rules in {} files, {} keywords ({} distinct), {} examples passed{}",
                s.rules,
                s.files,
                s.keywords,
                s.patterns,
                s.examples,
                if set.default_action().is_some() {
                    ", with a [default]"
                } else {
                    ""
                }
            )?;
            0
        }
        Err(e) => {
            eprint!("{}", e.render());
            eprintln!(
                "error: {} problem{} in {}; nothing was changed",
                e.diagnostics.len(),
                if e.diagnostics.len() == 1 { "" } else { "s" },
                dir.display()
            );
            1
        }
    })
}

/// The JSON result of one routing, as `rules test --json` prints it.
pub fn decision_json(d: &Decision<'_>, vars: &Vars<'_>) -> serde_json::Value {
    let outcome = d.outcome();
    let (reply, via, queue, priority) = match outcome {
        Outcome::Reply(t, via) => (Some(t.render(vars)), Some(via), None, None),
        Outcome::Escalate(e, via) => (
            e.ack.as_ref().map(|a| a.render(vars)),
            e.ack.as_ref().map(|_| via),
            Some(e.queue.as_str()),
            Some(e.priority.as_str()),
        ),
        Outcome::Ignore | Outcome::None => (None, None, None, None),
    };
    let losers: Vec<_> = d
        .losers
        .iter()
        .map(|l| json!({"rule": l.rule.id.as_str(), "reason": l.reason.to_string()}))
        .collect();
    json!({
        "rule": d.rule_id().map(|r| r.as_str()),
        "action": outcome.name(),
        "reply": reply,
        "keyword": d.winner.as_ref().map(|w| w.keyword.written.as_str()),
        "span": d.winner.as_ref().map(|w| [w.span.0, w.span.1]),
        "losers": losers,
        "via": via,
        "queue": queue,
        "priority": priority,
    })
}

fn explain(d: &Decision<'_>, text: &str, channel: Channel, vars: &Vars<'_>) -> String {
    let mut out = String::new();
    match &d.winner {
        Some(w) => {
            out.push_str(&format!(
                "rule:    {} ({}:{})\nkeyword: `{}` matched {:?} at bytes {}..{}\n",
                w.rule.id,
                w.rule.file,
                w.rule.line,
                w.keyword.written,
                &text[w.span.0..w.span.1],
                w.span.0,
                w.span.1
            ));
        }
        None if d.default.is_some() => out.push_str("rule:    none matched; the [default] applies\n"),
        None => out.push_str("rule:    none matched, and there is no [default]: the message is recorded and left alone\n"),
    }
    out.push_str(&format!(
        "channel: {channel}\naction:  {}",
        d.outcome().name()
    ));
    match d.outcome() {
        Outcome::Reply(t, via) => out.push_str(&format!(
            " ({})\nreply:   {}\n",
            if via == crate::rules::Via::Dm {
                "by DM"
            } else {
                "where the customer wrote"
            },
            t.render(vars)
        )),
        Outcome::Escalate(e, _) => {
            out.push_str(&format!(
                " to queue {} at priority {}\n",
                e.queue, e.priority
            ));
            if let Some(a) = &e.ack {
                out.push_str(&format!("ack:     {}\n", a.render(vars)));
            }
        }
        _ => out.push('\n'),
    }
    for l in &d.losers {
        out.push_str(&format!("lost:    {}: {}\n", l.rule.id, l.reason));
    }
    out
}

#[derive(serde::Deserialize)]
struct BulkLine {
    text: String,
    #[serde(default)]
    channel: Option<Channel>,
    #[serde(default)]
    author: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

fn bulk(set: &RuleSet, vars: &Vars<'_>) -> Result<i32> {
    let stdin = std::io::stdin().lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut code = 0;
    for (n, line) in stdin.lines().enumerate() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        let value = match serde_json::from_str::<BulkLine>(&line) {
            Ok(m) => {
                let author = m.author.as_deref().map(|a| a.trim_start_matches('@'));
                let v = Vars {
                    author: author.unwrap_or(vars.author),
                    name: m.name.as_deref().unwrap_or(vars.name),
                    ticket: vars.ticket,
                };
                decision_json(
                    &set.route(&m.text, m.channel.unwrap_or(Channel::Mention)),
                    &v,
                )
            }
            Err(e) => {
                code = 1;
                json!({"error": format!("line {}: {e}; expected {{\"text\": \"…\", \"channel\": \"mention|dm|search\"}}", n + 1)})
            }
        };
        serde_json::to_writer(&mut out, &value)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(code)
}

/// Runs a parsed command line; returns the process exit code.
pub fn dispatch(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Rules(cmd) => rules_command(cmd),
        Command::Demo {
            rules,
            traffic,
            db,
            json,
        } => {
            init_logging(LogFormat::Text, "warn");
            let opts = crate::commands::demo::DemoOptions {
                rules,
                traffic,
                db,
                json,
            };
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            runtime()?.block_on(crate::commands::demo::run(&opts, &mut out))?;
            Ok(0)
        }
        Command::Init { dir } => {
            let stdout = std::io::stdout();
            crate::commands::setup::init(&dir, &mut stdout.lock())?;
            Ok(0)
        }
        Command::Config(ConfigCommand::Check { config }) => {
            let stdout = std::io::stdout();
            crate::commands::setup::check(&config, &mut stdout.lock())
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            // Into memory first: clap_complete panics when a write fails
            // (a closed pipe); ours returns the error.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "helpdesk", &mut script);
            std::io::stdout().lock().write_all(&script)?;
            Ok(0)
        }
        Command::Tickets { common, cmd } => {
            init_logging(LogFormat::Text, "warn");
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            runtime()?.block_on(crate::commands::tickets::tickets(common, cmd, &mut out))
        }
        Command::Report {
            common,
            since,
            json,
        } => {
            init_logging(LogFormat::Text, "warn");
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            runtime()?.block_on(crate::commands::tickets::report(
                common, &since, json, &mut out,
            ))
        }
        Command::X(XCommand::Login {
            config,
            redirect_uri,
            authorize_url,
        }) => {
            init_logging(LogFormat::Text, "warn");
            runtime()?.block_on(x_login(&config, &redirect_uri, &authorize_url))?;
            Ok(0)
        }
        Command::Run {
            config,
            answer_backlog,
            log_format,
        } => {
            init_logging(log_format, "info");
            runtime()?.block_on(crate::commands::run::run(&config, answer_backlog))?;
            Ok(0)
        }
    }
}

/// The PKCE login: print the consent URL, read back the redirect, exchange
/// the code, save the tokens (a 0600 file, or sealed in the database).
async fn x_login(config: &Path, redirect_uri: &str, authorize_base: &str) -> Result<()> {
    use crate::platforms::x::auth;
    use crate::platforms::x::config::TokenStore;
    use crate::storage::oauth_tokens::{SharedTokens, TokenKey};
    let cfg = crate::runtime::config::Config::load(config, true)?;
    let Some(x) = cfg.x else {
        anyhow::bail!(
            "{} has no [x] section: add one with base_url, client_id_env and token_file",
            config.display()
        );
    };
    // Where the tokens go is settled before the operator is sent to X, so
    // a missing key or an unreachable database never wastes a consent.
    enum Target {
        File(PathBuf),
        Database(SharedTokens),
    }
    let target = match (x.token_store, x.token_file.clone()) {
        (TokenStore::Database, _) => {
            let key = TokenKey::from_env(&x.token_key_env)?;
            let store = crate::storage::Store::open(&cfg.database_url).await?;
            Target::Database(SharedTokens::x(store, key))
        }
        // Config::load already made a relative token_file relative to the config.
        (TokenStore::File, Some(f)) => Target::File(f),
        (TokenStore::File, None) => anyhow::bail!(
            "[x] in {} has no token_file: add for example token_file = \"x-token.json\" (or token_store = \"database\" to share the login between instances)",
            config.display()
        ),
    };
    let client_id = crate::domain::secret::Secret::from_env(&x.client_id_env)?;
    let client_secret = x
        .client_secret_env
        .as_deref()
        .map(crate::domain::secret::Secret::from_env)
        .transpose()?;
    let (verifier, challenge) = auth::pkce_pair();
    let state = auth::pkce_pair().0;
    let url = auth::authorize_url(
        authorize_base,
        client_id.expose(),
        redirect_uri,
        &state,
        &challenge,
    );
    let mut err = std::io::stderr();
    writeln!(
        err,
        "1. Open this URL while signed in as the brand's account, and allow the app:\n\n{url}\n\n2. Your browser then goes to {redirect_uri}?…&code=…; paste that whole address (or only the code) here and press Enter:"
    )?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let code = auth::code_from_paste(&line, &state).map_err(|e| anyhow::anyhow!(e))?;
    let clock = crate::domain::clock::Clock::new();
    let tokens = auth::token_request(
        &crate::platforms::http::http_client(),
        &format!("{}/2/oauth2/token", x.base_url.trim_end_matches('/')),
        client_id.expose(),
        client_secret.as_ref(),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", &verifier),
        ],
        clock.now_ms(),
    )
    .await?;
    match target {
        Target::File(path) => {
            auth::write_token_file(&path, &tokens)?;
            writeln!(
                err,
                "Saved the tokens to {} (readable by you only). `helpdesk run` refreshes them from now on.",
                path.display()
            )?;
        }
        Target::Database(shared) => {
            shared.save(&tokens, clock.now_ms()).await?;
            writeln!(
                err,
                "Saved the tokens in the database {}, sealed with the key in {}. Every instance with that key shares this login; one of them refreshes it at a time.",
                crate::storage::redact_url(&cfg.database_url),
                x.token_key_env
            )?;
        }
    }
    Ok(())
}

/// The error as one line: each cause of its chain once, outermost first.
///
/// Our errors often name their source in their own message (so a log line
/// that shows only `{e}` still has the cause) and also return it as
/// `source()`: printing the chain as is would repeat it two to four times.
pub fn render_error(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        // Some drivers repeat a prefix inside one message
        // ("error with configuration: error with configuration: …").
        let mut segments: Vec<&str> = Vec::new();
        let text = cause.to_string();
        for seg in text.split(": ") {
            if segments.last() != Some(&seg) {
                segments.push(seg);
            }
        }
        let msg = segments.join(": ");
        if !parts.iter().any(|p| p.contains(&msg)) {
            parts.push(msg);
        }
    }
    parts.join(": ")
}

/// Whether the error is a closed standard output (the reader of a pipe went
/// away, as with `| head`): the command then stops quietly with status 0,
/// as other Unix tools do.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
    })
}

#[cfg(test)]
mod error_tests {
    use super::*;

    #[test]
    fn a_chain_is_printed_once_and_a_closed_pipe_is_recognised() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot open the database x: {0}; check it")]
        struct Outer(#[source] std::io::Error);
        let io = std::io::Error::other("cfg: cfg: bad value");
        let e = anyhow::Error::new(Outer(io)).context("the bot could not start");
        assert_eq!(
            render_error(&e),
            "the bot could not start: cannot open the database x: cfg: bad value; check it"
        );
        assert!(!is_broken_pipe(&e));
        let pipe = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            .context("writing the list");
        assert!(is_broken_pipe(&pipe));
    }
}
