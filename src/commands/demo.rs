//! `helpdesk demo`: the whole product in a few seconds, against the sandbox.
//!
//! It starts the sandbox on a free port with a traffic file, runs the real
//! bot (the same X client, pipeline, store and outbox as `helpdesk run`)
//! until the traffic is drained and the outbox holds only rows that a limit
//! holds back, then reports what happened to each message.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::domain::clock::Clock;
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

/// What `helpdesk demo` was asked for.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The rules folder.
    pub rules: PathBuf,
    /// The traffic file.
    pub traffic: PathBuf,
    /// A database file to keep; a temporary one otherwise.
    pub db: Option<PathBuf>,
    /// One JSON line per message, then a summary line.
    pub json: bool,
}

/// One message's fate, as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Platform message id.
    pub id: String,
    /// Channel.
    pub channel: String,
    /// Author handle.
    pub author: String,
    /// Message text.
    pub text: String,
    /// Winning rule.
    pub rule: Option<String>,
    /// Action taken.
    pub action: String,
    /// sent, queued, suppressed, expired, failed, needs_review or none.
    pub reply_status: String,
    /// Ticket reference.
    pub ticket: Option<String>,
    /// Why, when there is something to explain.
    pub reason: Option<String>,
}

/// Runs the demo and writes the report to `out`.
pub async fn run(opts: &DemoOptions, out: &mut dyn Write) -> anyhow::Result<()> {
    let rules = RuleSet::load_dir(&opts.rules, &LoadOptions::default())
        .map_err(|e| anyhow::anyhow!("{}", e.render()))?;
    let traffic = read_traffic(&opts.traffic)?;
    let total = traffic.len();
    let clock = Clock::new();
    let sandbox = Sandbox::start(traffic, SandboxConfig::default(), clock.clone()).await?;

    let tmp;
    let db_path = match &opts.db {
        Some(p) => p.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().join("demo.db")
        }
    };
    let x = XConfig {
        base_url: sandbox.base_url(),
        min_poll_interval_ms: 0,
        poll_interval_ms: 0,
        ..XConfig::default()
    };
    let config = Config {
        database_url: format!("sqlite://{}", db_path.display()),
        rules: opts.rules.clone(),
        x: Some(x.clone()),
        ..Config::default()
    };
    let store = Store::open(&config.database_url).await?;
    let client: Arc<dyn Connector> = Arc::new(XClient::new(
        &x,
        Secret::new(sandbox.token()),
        clock.clone(),
    ));
    let bot = Bot::new(&config, store.clone(), Arc::new(rules), vec![client], clock).await?;

    // Drive the bot round by round until nothing more can happen now.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        let fresh = bot
            .poll_once()
            .await?
            .iter()
            .filter(|p| !p.duplicate)
            .count();
        let round = bot.drain_once().await?;
        let settled = fresh == 0 && !round.progressed() && round.sent == 0;
        if settled && sandbox.pending() == 0 {
            break;
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

    let lines = report(&store).await?;
    let l = &config.limits;
    if !opts.json {
        writeln!(
            out,
            "helpdesk demo: {total} traffic lines through the sandbox X API at {}",
            sandbox.base_url()
        )?;
        writeln!(
            out,
            "limits: {} replies per {} s in all, {} per customer per {} s, {} automatic replies per conversation (the configured defaults; nothing shortened)\n",
            l.global.replies,
            l.global.per_secs,
            l.per_customer.replies,
            l.per_customer.per_secs,
            l.per_conversation
        )?;
        print_table(&lines, out)?;
    } else {
        for x in &lines {
            let v = json!({
                "id": x.id,
                "rule": x.rule,
                "action": x.action,
                "reply_status": x.reply_status,
                "ticket": x.ticket,
            });
            writeln!(out, "{v}")?;
        }
    }
    let summary = summarize(&lines, total, sandbox.posted().len());
    if opts.json {
        writeln!(out, "{}", json!({ "summary": summary }))?;
    } else {
        writeln!(out)?;
        for (k, v) in summary.as_object().into_iter().flatten() {
            writeln!(out, "  {k:<20} {v}")?;
        }
        if let Some(p) = &opts.db {
            writeln!(out, "\nthe database is kept at {}", p.display())?;
        }
    }
    Ok(())
}

/// Every recorded message with its outcome, in arrival order.
pub async fn report(store: &Store) -> anyhow::Result<Vec<Line>> {
    Ok(views::message_outcomes(store)
        .await?
        .into_iter()
        .map(Line::from)
        .collect())
}

impl From<MessageOutcome> for Line {
    fn from(m: MessageOutcome) -> Line {
        Line {
            id: m.platform_message_id,
            channel: m.channel,
            author: m.author_handle,
            text: m.text,
            rule: m.rule_id,
            action: m.action,
            // The outbox knows what became of a reply the pipeline queued.
            reply_status: m.outbox_status.unwrap_or(m.auto_reply),
            ticket: m.ticket.map(|t| t.to_string()),
            reason: m.reason,
        }
    }
}

fn summarize(lines: &[Line], traffic: usize, posted: usize) -> serde_json::Value {
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_action: BTreeMap<&str, usize> = BTreeMap::new();
    let mut tickets = std::collections::BTreeSet::new();
    for l in lines {
        *by_status.entry(l.reply_status.as_str()).or_default() += 1;
        *by_action.entry(l.action.as_str()).or_default() += 1;
        if let Some(t) = &l.ticket {
            tickets.insert(t.clone());
        }
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

fn print_table(lines: &[Line], out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<6} {:<8} {:<14} {:<36} {:<20} {:<9} {:<11} {:<7} why",
        "id", "channel", "author", "message", "rule", "action", "reply", "ticket"
    )?;
    for l in lines {
        writeln!(
            out,
            "{:<6} {:<8} {:<14} {:<36} {:<20} {:<9} {:<11} {:<7} {}",
            clip(&l.id, 6),
            l.channel,
            clip(&format!("@{}", l.author), 14),
            clip(&l.text, 36),
            clip(l.rule.as_deref().unwrap_or("-"), 20),
            l.action,
            l.reply_status,
            l.ticket.as_deref().unwrap_or("-"),
            l.reason.as_deref().unwrap_or("")
        )?;
    }
    Ok(())
}
