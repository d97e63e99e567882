//! `helpdesk demo`: the whole product in a few seconds, against a fake
//! platform.
//!
//! It starts the X sandbox (or, with `--platform bluesky`, the fake PDS) on
//! a free port with a traffic file, runs the real bot (the same client,
//! pipeline, store and outbox as `helpdesk run`) until the traffic is
//! drained and the outbox holds only rows that a limit holds back, then
//! reports what happened to each message.

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
use crate::domain::Platform;
use crate::domain::clock::Clock;
use crate::domain::limits::Limits;
use crate::domain::money::Usd;
use crate::domain::secret::Secret;
use crate::platforms::Connector;
use crate::platforms::bluesky::BlueskyClient;
use crate::platforms::bluesky::config::BlueskyConfig;
use crate::platforms::bluesky::fake::{FakePds, PdsSetup};
use crate::platforms::bluesky::session::Sessions;
use crate::platforms::x::XClient;
use crate::platforms::x::config::{XConfig, XPrices};
use crate::platforms::x::fake::{Sandbox, SandboxConfig, TrafficLine, read_traffic};
use crate::rules::{LoadOptions, RuleSet};
use crate::runtime::bot::Bot;
use crate::runtime::config::Config;
use crate::storage::Store;
use crate::storage::oauth_tokens::bluesky::BlueskySession;
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
    /// Which fake platform serves the traffic: x (the X API sandbox) or
    /// bluesky (a fake PDS; mentions become posts that mention the brand).
    #[arg(long, default_value = "x", value_parser = demo_platform)]
    pub platform: Platform,
    /// How to print.
    #[command(flatten)]
    pub json: Json,
    /// A configuration whose settings the demo applies: [limits], [protection], [tickets], [replies], [language], [hours], [incidents] (its alert URL too), and [x]'s prices and daily budget (not its database, rules folder or accounts: the demo keeps its own)
    #[arg(long, value_name = "CONFIG")]
    pub config: Option<PathBuf>,
}

/// Runs the demo, its report on stdout; returns the exit code.
pub fn execute(args: &DemoArgs) -> Result<i32> {
    block_on(LogFormat::Text, "warn", async {
        let stdout = std::io::stdout();
        run(args, &mut stdout.lock()).await
    })?;
    Ok(0)
}

/// The platforms the demo has a fake of.
fn demo_platform(s: &str) -> Result<Platform, String> {
    match s.parse::<Platform>().map_err(|e| e.to_string())? {
        p @ (Platform::X | Platform::Bluesky) => Ok(p),
        p => Err(format!("the demo has no fake {p}: use x or bluesky")),
    }
}

/// A fake platform serving the traffic, as the demo drives it.
enum Fake {
    X(Sandbox),
    Bluesky(FakePds),
}

impl Fake {
    fn base_url(&self) -> String {
        match self {
            Fake::X(s) => s.base_url(),
            Fake::Bluesky(p) => p.base_url(),
        }
    }

    /// Traffic lines not yet visible.
    fn pending(&self) -> usize {
        match self {
            Fake::X(s) => s.pending(),
            Fake::Bluesky(p) => p.pending(),
        }
    }

    /// Posts and DMs the platform received from the bot.
    fn posted(&self) -> usize {
        match self {
            Fake::X(s) => s.posted().len(),
            Fake::Bluesky(p) => p.brand_posts().len() + p.brand_dms().len(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Fake::X(_) => "the sandbox X API",
            Fake::Bluesky(_) => "a fake Bluesky PDS",
        }
    }
}

/// Runs the demo and writes the report to `out`.
pub async fn run(opts: &DemoArgs, out: &mut dyn Write) -> Result<()> {
    let settings = match &opts.config {
        Some(path) => Config::load(path, false)?,
        None => Config::default(),
    };
    let load = LoadOptions {
        signature: settings.replies.signature.clone(),
        ..LoadOptions::default()
    };
    let rules = RuleSet::load_dir(&opts.rules.path, &load)
        .map_err(|e| anyhow::anyhow!("{}", e.render()))?;
    let traffic = read_traffic(&opts.traffic)?;
    let total = traffic.len();
    let clock = Clock::new();
    let db = DemoDatabase::new(opts.db.as_deref())?;
    let x_spend = settings.x.as_ref().map(|x| (x.prices, x.max_usd_per_day));
    let mut config = Config {
        database_url: format!("sqlite://{}", db.path.display()),
        rules: opts.rules.path.clone(),
        x: None,
        mastodon: None,
        bluesky: None,
        ..settings
    };
    let store = Store::open(&config.database_url).await?;
    let (fake, client) = match opts.platform {
        Platform::Bluesky => bluesky(traffic, &mut config, &store, &clock).await?,
        _ => x(traffic, &mut config, x_spend, &clock).await?,
    };
    let bot = Bot::new(&config, store.clone(), Arc::new(rules), vec![client], clock).await?;
    settle(&bot, &fake).await?;

    let lines = views::message_outcomes(&store).await?;
    let incidents = crate::storage::incidents::list(&store, true).await?;
    let mut summary = summarize(&lines, total, fake.posted());
    summary["incidents"] = json!(incidents.len());
    if opts.json.on {
        return write_json(&lines, &summary, out);
    }
    let header = header(total, &fake, &config.limits);
    write_text(&header, &lines, &summary, opts.db.as_deref(), out)?;
    for i in &incidents {
        writeln!(
            out,
            "  incident {} ({}): rule {}, {} customers, {} messages, ticket {}{}",
            i.id,
            i.status,
            i.rule,
            i.customers,
            i.messages,
            i.ticket.map(|t| t.to_string()).unwrap_or_default(),
            match &config.incidents.alert_url_env {
                Some(v) => format!("; alerts posted to the URL in {v}"),
                None => String::new(),
            }
        )?;
    }
    Ok(())
}

/// The X sandbox with the traffic, and the X client to it.
/// `spend`: the configuration's `[x.prices]` and daily budget, if any.
async fn x(
    traffic: Vec<TrafficLine>,
    config: &mut Config,
    spend: Option<(XPrices, Option<Usd>)>,
    clock: &Clock,
) -> Result<(Fake, Arc<dyn Connector>)> {
    let sandbox = Sandbox::start(traffic, SandboxConfig::default(), clock.clone()).await?;
    let mut x = XConfig {
        base_url: sandbox.base_url(),
        min_poll_interval_ms: 0,
        poll_interval_ms: 0,
        ..XConfig::default()
    };
    if let Some((prices, budget)) = spend {
        x.prices = prices;
        x.max_usd_per_day = budget;
    }
    let client = XClient::new(&x, Secret::new(sandbox.token()), clock.clone());
    config.x = Some(x);
    Ok((Fake::X(sandbox), Arc::new(client)))
}

/// A fake PDS for the brand `lumio.bsky.social` with the traffic, and the
/// Bluesky client to it, its session kept in the demo's database.
async fn bluesky(
    traffic: Vec<TrafficLine>,
    config: &mut Config,
    store: &Store,
    clock: &Clock,
) -> Result<(Fake, Arc<dyn Connector>)> {
    let pds = FakePds::start(PdsSetup::brand("lumio.bsky.social"), clock.clone()).await?;
    pds.load_traffic(&traffic);
    let section = BlueskyConfig {
        service: pds.base_url(),
        identifier: Some(pds.brand_handle().try_into().map_err(anyhow::Error::msg)?),
        langs: vec!["fr".into(), "en".into()],
        min_poll_interval_ms: 0,
        poll_interval_ms: 0,
        ..BlueskyConfig::default()
    };
    let password = Secret::new(pds.app_password());
    let home = BlueskySession::new(store.clone(), &pds.brand_handle(), &password, clock.clone());
    let sessions = Sessions::new(Arc::new(home), clock.clone());
    let client = BlueskyClient::new(&section, password, sessions, clock.clone());
    config.bluesky = Some(section);
    Ok((Fake::Bluesky(pds), Arc::new(client)))
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

/// Drives the bot round by round until nothing more can happen now.
async fn settle(bot: &Bot, fake: &Fake) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        // Counted before the poll: a line that becomes visible during the
        // round is then polled by the next one instead of being missed.
        let unseen = fake.pending();
        let fresh = bot
            .poll_once()
            .await?
            .iter()
            .filter(|p| !p.duplicate)
            .count();
        let round = bot.drain_once().await?;
        bot.alert_once().await?;
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

/// What ran: the traffic, where the fake platform was, and the limits in force.
fn header(total: usize, fake: &Fake, l: &Limits) -> String {
    format!(
        "helpdesk demo: {total} traffic lines through {} at {}\n\
         limits: {} replies per {} s in all, {} per customer per {} s, {} automatic replies per conversation (the configured defaults; nothing shortened)\n",
        fake.name(),
        fake.base_url(),
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

/// An id short enough for the table: a Bluesky URI or DM id by the end of
/// its last part (record keys share their first characters, a time).
fn short_id(id: &str) -> &str {
    let last = id.rsplit('/').next().unwrap_or(id);
    match last.char_indices().rev().nth(5) {
        Some((i, _)) if id.contains('/') => &last[i..],
        _ => last,
    }
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
            clip(short_id(&l.platform_message_id), 6),
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
