//! `helpdesk report`: what reached the brand, what the bot did, how the
//! agents did, and what the rules miss, over a period.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Result;
use clap::Args;

use crate::application::report::{self, Report};
use crate::commands::args::{AgentArgs, Json};
use crate::commands::output::when;
use crate::commands::process::{LogFormat, block_on};
use crate::domain::clock::Clock;
use crate::domain::money::Usd;

/// `helpdesk report`: the period, and how to print.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Where the database is.
    #[command(flatten)]
    pub agent: AgentArgs,
    /// The period: 30m, 24h, 7d, 2w…
    #[arg(long, default_value = "7d")]
    pub since: String,
    /// How to print.
    #[command(flatten)]
    pub json: Json,
}

/// Runs `helpdesk report` on stdout; returns the exit code.
pub fn execute(args: &ReportArgs) -> Result<i32> {
    block_on(LogFormat::Text, "warn", async {
        let stdout = std::io::stdout();
        report(&args.agent, &args.since, args.json.on, &mut stdout.lock()).await
    })
}

/// Runs `helpdesk report`.
pub async fn report(
    agent: &AgentArgs,
    since: &str,
    json: bool,
    out: &mut dyn Write,
) -> Result<i32> {
    let period = report::parse_since(since).map_err(|e| anyhow::anyhow!(e))?;
    let (_, store) = agent.open_store().await?;
    let now = Clock::new().now_ms();
    let r = report::build(&store, now, period).await?;
    if json {
        serde_json::to_writer_pretty(&mut *out, &r)?;
        writeln!(out)?;
    } else {
        write_text(&r, out)?;
    }
    Ok(0)
}

/// The report for reading: one section per question it answers.
fn write_text(r: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "since {}", when(Some(r.since)))?;
    writeln!(out, "\nmessages")?;
    write_counts(&r.messages, out)?;
    writeln!(out, "\nwhat the bot did")?;
    write_counts(&r.by_action, out)?;
    write_row("replies sent", r.answered_automatically, out)?;
    writeln!(out, "\nper rule")?;
    write_counts(&r.by_rule, out)?;
    if !r.signals_per_day.is_empty() {
        writeln!(out, "\nsignals per day (messages)")?;
        for (day, per) in &r.signals_per_day {
            let counts: Vec<String> = per.iter().map(|(s, n)| format!("{s} {n}")).collect();
            write_row(day, counts.join(", "), out)?;
        }
    }
    writeln!(out, "\nper language (messages, tickets)")?;
    for (lang, n) in &r.by_language {
        let t = r.tickets_by_language.get(lang).copied().unwrap_or(0);
        write_row(lang, format!("{n}, {t}"), out)?;
    }
    write_tickets(r, out)?;
    write_x_cost(r, out)?;
    writeln!(
        out,
        "\nwhat the rules miss (top words of unmatched messages)"
    )?;
    writeln!(out, "  {}", missed_words(&r.unmatched_top_words))
}

fn write_tickets(r: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    let min = |m: Option<f64>| m.map(|v| format!("{v:.0} min")).unwrap_or("-".into());
    writeln!(out, "\ntickets")?;
    write_row("opened", r.tickets_opened, out)?;
    write_row("solved", r.tickets_solved, out)?;
    write_row("first reply, median", min(r.first_response_median_min), out)?;
    write_row("first reply, p90", min(r.first_response_p90_min), out)?;
    write_row("SLA breaches", r.sla_breaches, out)?;
    let satisfaction = r
        .csat_average
        .map(|a| format!("{a:.1}/5 ({} answers)", r.csat_answers))
        .unwrap_or("-".into());
    write_row("satisfaction", satisfaction, out)
}

/// What X charged, per endpoint and unit (nothing when X cost nothing).
fn write_x_cost(r: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    if r.x_cost.is_empty() {
        return Ok(());
    }
    writeln!(out, "\nX API cost (UTC days of the period)")?;
    let usd = |d: f64| Usd::from_dollars(d).unwrap_or_default();
    write_row("total", format!("${}", usd(r.x_cost_usd)), out)?;
    for (endpoint, units) in &r.x_cost {
        for (unit, c) in units {
            let label = format!("{endpoint} {unit}");
            write_row(&label, format!("${} ({} units)", usd(c.usd), c.units), out)?;
        }
    }
    Ok(())
}

fn write_counts(counts: &BTreeMap<String, i64>, out: &mut dyn Write) -> std::io::Result<()> {
    for (k, v) in counts {
        write_row(k, v, out)?;
    }
    Ok(())
}

/// One figure, its label in a column wide enough for every label.
fn write_row(
    label: &str,
    value: impl std::fmt::Display,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    writeln!(out, "  {label:<24} {value}")
}

/// `word (count), …`, or `-` when every message matched a rule.
fn missed_words(words: &[(String, i64)]) -> String {
    if words.is_empty() {
        return "-".into();
    }
    let shown: Vec<String> = words.iter().map(|(w, n)| format!("{w} ({n})")).collect();
    shown.join(", ")
}
