//! `helpdesk incidents list` and `helpdesk incidents close I-n`: the
//! surges the bot turned into incidents, and their end.
//!
//! Closing goes through [`incidents::close`], the same code an agent's
//! `close` (or `solve`) on the incident's ticket runs, from the command
//! line or a row of `agent_actions`.

use std::io::Write;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::json;

use crate::application::incidents::{self, CloseError};
use crate::commands::args::{AgentArgs, Json, adjust};
use crate::commands::output::when;
use crate::commands::process::{LogFormat, block_on};
use crate::domain::IncidentRef;
use crate::domain::clock::{Clock, rfc3339};
use crate::storage::incidents::{Row, list};

/// `helpdesk incidents`: the agents' flags, then what to do.
#[derive(Debug, Args)]
pub struct IncidentsArgs {
    /// Where the database is, and who is acting.
    #[command(flatten)]
    pub agent: AgentArgs,
    /// What to do.
    #[command(subcommand)]
    pub cmd: IncidentsCommand,
}

/// `helpdesk incidents …`
#[derive(Debug, Subcommand)]
pub enum IncidentsCommand {
    /// The open incidents (with --all, the closed ones too), newest first.
    #[command(mut_args(adjust("json", |a| a.help("One JSON array of objects: id, rule, status, customers, messages, opened_at, first_message_at, last_message_at, rate_per_min, ticket, closed_at, closed_by"))))]
    List {
        /// The closed ones too.
        #[arg(long)]
        all: bool,
        /// How to print.
        #[command(flatten)]
        json: Json,
    },
    /// The incident is over: close it and its ticket, and send each of its customers the rule's incident_resolved (once, within the reply budgets).
    Close {
        /// The incident, such as I-3.
        incident: IncidentRef,
    },
}

/// Runs `helpdesk incidents …` on stdout; returns the exit code.
pub fn execute(args: IncidentsArgs) -> Result<i32> {
    block_on(LogFormat::Text, "warn", async {
        let stdout = std::io::stdout();
        incidents(&args.agent, args.cmd, &mut stdout.lock()).await
    })
}

/// Runs an `incidents` command; returns the exit code.
pub async fn incidents(
    agent: &AgentArgs,
    cmd: IncidentsCommand,
    out: &mut dyn Write,
) -> Result<i32> {
    let (config, store) = agent.open_store().await?;
    match cmd {
        IncidentsCommand::List { all, json } => {
            let rows = list(&store, all).await?;
            write_list(&rows, json.on, out)?;
            Ok(0)
        }
        IncidentsCommand::Close { incident } => {
            let who = agent.agent()?;
            let now = Clock::new().now_ms();
            let policy = (&config.limits, &config.incidents);
            match incidents::close(&store, incident, &who, policy, now).await {
                Ok(c) => {
                    writeln!(
                        out,
                        "{}: closed by {who}; {} closing notices queued (the bot sends them within the reply budgets)",
                        c.id, c.notices
                    )?;
                    Ok(0)
                }
                Err(CloseError::Store(e)) => Err(e.into()),
                Err(refused) => {
                    eprintln!("error: {refused}");
                    Ok(1)
                }
            }
        }
    }
}

/// One incident in a sentence, for `tickets show` on its ticket.
pub fn describe(r: &Row) -> String {
    format!(
        "incident {} ({}): rule {}, {} customers, {} messages, first {} UTC, latest {} UTC, {} customers/min; {}",
        r.id,
        r.status,
        r.rule,
        r.customers,
        r.messages,
        when(Some(r.first_message_at)),
        when(Some(r.last_message_at)),
        rate(r),
        match r.closed_by.as_deref() {
            Some(who) => format!("closed by {who} at {} UTC", when(r.closed_at)),
            None => format!(
                "`helpdesk incidents close {}` ends it and sends each customer the closing notice",
                r.id
            ),
        }
    )
}

/// Customers per minute from the first message to the latest.
fn rate(r: &Row) -> f64 {
    let minutes = ((r.last_message_at - r.first_message_at) as f64 / 60_000.0).max(1.0);
    (r.customers as f64 / minutes * 10.0).round() / 10.0
}

fn write_list(rows: &[Row], as_json: bool, out: &mut dyn Write) -> Result<()> {
    if as_json {
        let list: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "id": r.id.to_string(),
                    "rule": r.rule,
                    "status": r.status,
                    "customers": r.customers,
                    "messages": r.messages,
                    "opened_at": rfc3339(r.opened_at),
                    "first_message_at": rfc3339(r.first_message_at),
                    "last_message_at": rfc3339(r.last_message_at),
                    "rate_per_min": rate(r),
                    "window_customers": r.window_customers,
                    "baseline": (r.baseline * 10.0).round() / 10.0,
                    "ticket": r.ticket.map(|t| t.to_string()),
                    "closed_at": r.closed_at.map(rfc3339),
                    "closed_by": r.closed_by,
                })
            })
            .collect();
        serde_json::to_writer_pretty(&mut *out, &list)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<6} {:<7} {:<20} {:>9} {:>8} {:>8} {:<8} {:<16} {:<16} latest message (UTC)",
        "id",
        "status",
        "rule",
        "customers",
        "messages",
        "per min",
        "ticket",
        "opened (UTC)",
        "first message"
    )?;
    for r in rows {
        writeln!(
            out,
            "{:<6} {:<7} {:<20} {:>9} {:>8} {:>8} {:<8} {:<16} {:<16} {}",
            r.id.to_string(),
            r.status,
            r.rule,
            r.customers,
            r.messages,
            rate(r),
            r.ticket
                .map(|t| t.to_string())
                .unwrap_or_else(|| "-".into()),
            when(Some(r.opened_at)),
            when(Some(r.first_message_at)),
            when(Some(r.last_message_at)),
        )?;
    }
    let open = rows.iter().filter(|r| r.closed_at.is_none()).count();
    writeln!(out, "{} incidents, {open} open", rows.len())?;
    Ok(())
}
