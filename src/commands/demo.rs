//! `helpdesk demo`: the whole product in a few seconds, against the sandbox.
//!
//! It starts the sandbox on a free port with a traffic file, runs the real
//! bot (the same X client, pipeline, store and outbox as `helpdesk run`)
//! until the traffic is drained and the outbox holds only rows that a limit
//! holds back, then reports what happened to each message.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use serde_json::json;
use tempfile::TempDir;

use crate::commands::args::{Json, RulesFolder, adjust};
use crate::commands::process::{LogFormat, block_on};
use crate::domain::clock::Clock;
use crate::domain::limits::Limits;
use crate::domain::secret::Secret;
use crate::platforms::Connector;
use crate::platforms::x::XClient;
use crate::platforms::x::config::XConfig;
use crate::platforms::x::fake::{Sandbox, SandboxConfig, read_traffic};
use crate::rules::{LoadOptions, RuleSet};
use crate::runtime::bot::Bot;
use crate::runtime::config::Config;
use crate::storage::Store;
use crate::storage::views::{self, MessageOutcome};

/// `helpdesk demo`: which rules and traffic, and what to keep.
#[derive(Debug, Clone, Args)]
#[command(mut_args(adjust("json", |a| a.help("One JSON line per message, then a summary line"))))]
pub struct DemoArgs {
    /// Where the rules are.
    #[command(flatten)]
    pub rules: RulesFolder,
    /// The traffic file: one JSON message per line.
    #[arg(long, default_value = "demo/traffic.jsonl")]
    pub traffic: PathBuf,
    /// Keep the database in this SQLite file (default: a temporary one).
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// How to print.
    #[command(flatten)]
    pub json: Json,
}

/// Runs the demo, its report on stdout; returns the exit code.
pub fn execute(args: &DemoArgs) -> Result<i32> {
    block_on(LogFormat::Text, "warn", async {
        let stdout = std::io::stdout();
        run(args, &mut stdout.lock()).await
    })?;
    Ok(0)
}

/// Runs the demo and writes the report to `out`.
pub async fn run(opts: &DemoArgs, out: &mut dyn Write) -> Result<()> {
    let rules = RuleSet::load_dir(&opts.rules.path, &LoadOptions::default())
        .map_err(|e| anyhow::anyhow!("{}", e.render()))?;
    let traffic = read_traffic(&opts.traffic)?;
    let total = traffic.len();
    let clock = Clock::new();
    let sandbox = Sandbox::start(traffic, SandboxConfig::default(), clock.clone()).await?;
    let db = DemoDatabase::new(opts.db.as_deref())?;
    let x = XConfig {
        base_url: sandbox.base_url(),
        min_poll_interval_ms: 0,
        poll_interval_ms: 0,
        ..XConfig::default()
    };
    let config = demo_config(opts, &x, &db.path);
    let store = Store::open(&config.database_url).await?;
    let client: Arc<dyn Connector> = Arc::new(XClient::new(
        &x,
        Secret::new(sandbox.token()),
        clock.clone(),
    ));
    let bot = Bot::new(&config, store.clone(), Arc::new(rules), vec![client], clock).await?;
    settle(&bot, &sandbox).await?;

    let lines = views::message_outcomes(&store).await?;
    let summary = summarize(&lines, total, sandbox.posted().len());
    if opts.json.on {
        return write_json(&lines, &summary, out);
    }
    let header = header(total, &sandbox.base_url(), &config.limits);
    write_text(&header, &lines, &summary, opts.db.as_deref(), out)
}

/// The demo's SQLite file: the one asked for, or one in a temporary
/// folder that goes when the demo ends.
struct DemoDatabase {
    path: PathBuf,
    _tmp: Option<TempDir>,
}

impl DemoDatabase {
    fn new(keep: Option<&Path>) -> Result<DemoDatabase> {
        Ok(match keep {
            Some(p) => DemoDatabase {
                path: p.to_owned(),
                _tmp: None,
            },
            None => {
                let tmp = tempfile::tempdir()?;
                DemoDatabase {
                    path: tmp.path().join("demo.db"),
                    _tmp: Some(tmp),
                }
            }
        })
    }
}

/// `helpdesk run`'s defaults, but for X at the sandbox and the database
/// in `db`.
fn demo_config(opts: &DemoArgs, x: &XConfig, db: &Path) -> Config {
    Config {
        database_url: format!("sqlite://{}", db.display()),
        rules: opts.rules.path.clone(),
        x: Some(x.clone()),
        ..Config::default()
    }
}

/// Drives the bot round by round until nothing more can happen now.
async fn settle(bot: &Bot, sandbox: &Sandbox) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        // Counted before the poll: a line that becomes visible during the
        // round is then polled by the next one instead of being missed.
        let unseen = sandbox.pending();
        let fresh = bot
            .poll_once()
            .await?
            .iter()
            .filter(|p| !p.duplicate)
            .count();
        let round = bot.drain_once().await?;
        let settled = fresh == 0 && !round.progressed() && round.sent == 0;
        if settled && unseen == 0 {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!(
                "the demo did not settle within 5 minutes; is the traffic file's `at` too far?"
            );
        }
        if settled {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `--json`: a line per message, then the summary.
fn write_json(
    lines: &[MessageOutcome],
    summary: &serde_json::Value,
    out: &mut dyn Write,
) -> Result<()> {
    for x in lines {
        let v = json!({
            "id": x.platform_message_id,
            "rule": x.rule_id,
            "action": x.action,
            "reply_status": x.reply_status(),
            "ticket": ticket(x),
        });
        writeln!(out, "{v}")?;
    }
    writeln!(out, "{}", json!({ "summary": summary }))?;
    Ok(())
}

/// What ran: the traffic, where the sandbox was, and the limits in force.
fn header(total: usize, sandbox_url: &str, l: &Limits) -> String {
    format!(
        "helpdesk demo: {total} traffic lines through the sandbox X API at {sandbox_url}\n\
         limits: {} replies per {} s in all, {} per customer per {} s, {} automatic replies per conversation (the configured defaults; nothing shortened)\n",
        l.global.replies,
        l.global.per_secs,
        l.per_customer.replies,
        l.per_customer.per_secs,
        l.per_conversation
    )
}

/// For people: the header, a table of the messages, the summary, and where
/// the database was kept.
fn write_text(
    header: &str,
    lines: &[MessageOutcome],
    summary: &serde_json::Value,
    kept: Option<&Path>,
    out: &mut dyn Write,
) -> Result<()> {
    writeln!(out, "{header}")?;
    print_table(lines, out)?;
    writeln!(out)?;
    for (k, v) in summary.as_object().into_iter().flatten() {
        writeln!(out, "  {k:<20} {v}")?;
    }
    if let Some(p) = kept {
        writeln!(out, "\nthe database is kept at {}", p.display())?;
    }
    Ok(())
}

/// The message's ticket as agents write it (`T-1042`).
fn ticket(m: &MessageOutcome) -> Option<String> {
    m.ticket.map(|t| t.to_string())
}

fn summarize(lines: &[MessageOutcome], traffic: usize, posted: usize) -> serde_json::Value {
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_action: BTreeMap<&str, usize> = BTreeMap::new();
    let mut tickets = std::collections::BTreeSet::new();
    for l in lines {
        *by_status.entry(l.reply_status()).or_default() += 1;
        *by_action.entry(l.action.as_str()).or_default() += 1;
        tickets.extend(l.ticket);
    }
    let n = |m: &BTreeMap<&str, usize>, k: &str| m.get(k).copied().unwrap_or(0);
    json!({
        "traffic": traffic,
        "messages": lines.len(),
        "duplicates": traffic.saturating_sub(lines.len()),
        "replied": n(&by_action, "reply"),
        "escalated": n(&by_action, "escalate"),
        "ignored": n(&by_action, "ignore"),
        "unmatched": n(&by_action, "none"),
        "tickets": tickets.len(),
        "sent": n(&by_status, "sent"),
        "queued": n(&by_status, "queued"),
        "suppressed": n(&by_status, "suppressed"),
        "expired": n(&by_status, "expired"),
        "failed": n(&by_status, "failed"),
        "needs_review": n(&by_status, "needs_review"),
        "posted_to_platform": posted,
    })
}

fn clip(s: &str, n: usize) -> String {
    let one_line = s.replace(['\n', '\r'], " ");
    if one_line.chars().count() <= n {
        return one_line;
    }
    let mut c: String = one_line.chars().take(n - 1).collect();
    c.push('…');
    c
}

fn print_table(lines: &[MessageOutcome], out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<6} {:<8} {:<14} {:<36} {:<20} {:<9} {:<11} {:<7} why",
        "id", "channel", "author", "message", "rule", "action", "reply", "ticket"
    )?;
    for l in lines {
        writeln!(
            out,
            "{:<6} {:<8} {:<14} {:<36} {:<20} {:<9} {:<11} {:<7} {}",
            clip(&l.platform_message_id, 6),
            l.channel,
            clip(&format!("@{}", l.author_handle), 14),
            clip(&l.text, 36),
            clip(l.rule_id.as_deref().unwrap_or("-"), 20),
            l.action,
            l.reply_status(),
            ticket(l).as_deref().unwrap_or("-"),
            l.reason.as_deref().unwrap_or("")
        )?;
    }
    Ok(())
}
