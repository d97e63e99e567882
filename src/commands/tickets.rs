//! The agents' command line: `helpdesk tickets …` and `helpdesk report`.
//!
//! Readable tables by default, `--json` on every listing. Each command finds
//! its database the same way: `--config FILE` (default `helpdesk.toml`, if
//! present), overridden by `HELPDESK_DATABASE_URL`. Actions go through
//! [`tickets::apply`], the same code the bot uses for `agent_actions`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use crate::application::report;
use crate::application::tickets::{self, Command, Filter};
use crate::domain::clock::{Clock, Millis, rfc3339};
use crate::domain::states::TicketStatus as Status;
use crate::domain::{AgentName, TicketRef};
use crate::runtime::config::Config;
use crate::storage::Store;

/// Options every ticket command shares.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// The configuration file (its database_url; HELPDESK_DATABASE_URL wins).
    #[arg(
        long,
        global = true,
        default_value = "helpdesk.toml",
        env = "HELPDESK_CONFIG"
    )]
    pub config: PathBuf,
    /// Who is acting: 1 to 64 letters, digits, `.`, `_`, `-` or `@`.
    #[arg(long, global = true, env = "HELPDESK_AGENT")]
    pub agent: Option<AgentName>,
}

/// `helpdesk tickets …`
#[derive(Debug, Subcommand)]
pub enum TicketsCommand {
    /// The tickets being worked (new, open, pending), most urgent first.
    List {
        /// Only this queue.
        #[arg(long)]
        queue: Option<String>,
        /// Only this status.
        #[arg(long)]
        status: Option<String>,
        /// Only mine (`--agent`).
        #[arg(long)]
        mine: bool,
        /// Only those past their first-response time.
        #[arg(long)]
        overdue: bool,
        /// One JSON array.
        #[arg(long)]
        json: bool,
    },
    /// One ticket: its conversation and history, with times and who did what.
    Show {
        /// The ticket, such as T-1042.
        ticket: TicketRef,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Take a ticket.
    Claim {
        /// The ticket.
        ticket: TicketRef,
    },
    /// Give a ticket to an agent.
    Assign {
        /// The ticket.
        ticket: TicketRef,
        /// The agent: 1 to 64 letters, digits, `.`, `_`, `-` or `@`.
        to: AgentName,
    },
    /// An internal note (never sent).
    Note {
        /// The ticket.
        ticket: TicketRef,
        /// The note.
        text: String,
    },
    /// Answer the customer, in the ticket's thread or by DM.
    Reply {
        /// The ticket.
        ticket: TicketRef,
        /// The answer, sent as written.
        text: String,
        /// By direct message.
        #[arg(long)]
        dm: bool,
    },
    /// Waiting on the customer.
    Pending {
        /// The ticket.
        ticket: TicketRef,
    },
    /// Solved: the customer gets the satisfaction survey by DM.
    Solve {
        /// The ticket.
        ticket: TicketRef,
    },
    /// Close a solved ticket now.
    Close {
        /// The ticket.
        ticket: TicketRef,
    },
    /// Reopen a solved ticket.
    Reopen {
        /// The ticket.
        ticket: TicketRef,
    },
}

async fn open_store(common: &Common) -> Result<(Config, Store)> {
    let config = Config::load(&common.config, true)?;
    let store = Store::open(&config.database_url).await?;
    Ok((config, store))
}

fn agent(common: &Common) -> Result<String> {
    match &common.agent {
        Some(a) => Ok(a.as_str().to_owned()),
        None => bail!("who is acting? pass --agent NAME or set HELPDESK_AGENT"),
    }
}

fn when(ms: Option<Millis>) -> String {
    ms.map(|m| rfc3339(m)[..16].replace('T', " "))
        .unwrap_or_else(|| "-".into())
}

/// Runs a `tickets` command; returns the exit code.
pub async fn tickets(common: Common, cmd: TicketsCommand, out: &mut dyn Write) -> Result<i32> {
    let (config, store) = open_store(&common).await?;
    let now = Clock::new().now_ms();
    let action = match cmd {
        TicketsCommand::List {
            queue,
            status,
            mine,
            overdue,
            json,
        } => {
            let status: Option<Status> =
                status.map(|s| s.parse()).transpose().context("--status")?;
            let f = Filter {
                queue,
                status,
                assignee: if mine { Some(agent(&common)?) } else { None },
                overdue,
            };
            let list = tickets::list(&store, &f, now).await?;
            if json {
                serde_json::to_writer_pretty(&mut *out, &list)?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "{:<8} {:<8} {:<7} {:<10} {:<18} {:<12} first reply due",
                    "ticket", "status", "prio", "queue", "customer", "agent"
                )?;
                for t in &list {
                    writeln!(
                        out,
                        "{:<8} {:<8} {:<7} {:<10} {:<18} {:<12} {:<17} {}",
                        t.reference,
                        t.status,
                        t.priority,
                        t.queue,
                        format!("@{}", t.customer),
                        t.assignee.as_deref().unwrap_or("-"),
                        when(t.first_response_due),
                        if t.overdue { "OVERDUE" } else { "" }
                    )?;
                }
                let late = list.iter().filter(|t| t.overdue).count();
                writeln!(out, "{} tickets, {late} overdue", list.len())?;
            }
            return Ok(0);
        }
        TicketsCommand::Show { ticket, json } => {
            let (s, entries) = tickets::show(&store, ticket, now).await?;
            if json {
                serde_json::to_writer_pretty(
                    &mut *out,
                    &serde_json::json!({"ticket": s, "timeline": entries}),
                )?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "{}  {}  {} priority, queue {}, @{} on {}, agent {}",
                    s.reference,
                    s.status,
                    s.priority,
                    s.queue,
                    s.customer,
                    s.platform,
                    s.assignee.as_deref().unwrap_or("-")
                )?;
                writeln!(
                    out,
                    "first reply due {}{}, answered {}{}\n",
                    when(s.first_response_due),
                    if s.overdue { " (OVERDUE)" } else { "" },
                    when(s.first_response_at),
                    s.csat.map(|c| format!(", rated {c}/5")).unwrap_or_default()
                )?;
                for e in entries {
                    let change = match (&e.from, &e.to) {
                        (Some(f), Some(t)) => format!(" {f} → {t}"),
                        (None, Some(t)) => format!(" → {t}"),
                        _ => String::new(),
                    };
                    writeln!(
                        out,
                        "{}  {:<14} {:<8}{}{}",
                        when(Some(e.at)),
                        e.who,
                        e.kind,
                        change,
                        e.text.map(|t| format!("  {t}")).unwrap_or_default()
                    )?;
                }
            }
            return Ok(0);
        }
        TicketsCommand::Claim { ticket } => (ticket, Command::Claim),
        TicketsCommand::Assign { ticket, to } => (ticket, Command::Assign(to.as_str().to_owned())),
        TicketsCommand::Note { ticket, text } => (ticket, Command::Note(text)),
        TicketsCommand::Reply { ticket, text, dm } => (ticket, Command::Reply { text, dm }),
        TicketsCommand::Pending { ticket } => (ticket, Command::Pending),
        TicketsCommand::Solve { ticket } => (ticket, Command::Solve),
        TicketsCommand::Close { ticket } => (ticket, Command::Close),
        TicketsCommand::Reopen { ticket } => (ticket, Command::Reopen),
    };
    let who = agent(&common)?;
    let (ticket, cmd) = action;
    match tickets::apply(
        &store,
        &config.tickets,
        &config.protection.bots,
        ticket,
        &who,
        &cmd,
        now,
    )
    .await
    {
        Ok(a) => {
            let change = if a.from == a.to {
                a.to.to_string()
            } else {
                format!("{} → {}", a.from, a.to)
            };
            let extra = match (&cmd, a.queued) {
                (Command::Reply { .. }, Some(_)) => ", reply queued (the bot sends it)",
                (Command::Solve, Some(_)) => ", satisfaction survey queued",
                _ => "",
            };
            writeln!(
                out,
                "{}: {} by {who}: {change}{extra}",
                a.ticket,
                cmd.name()
            )?;
            Ok(0)
        }
        Err(tickets::TicketError::Store(e)) => Err(e.into()),
        Err(refused) => {
            eprintln!("error: {refused}");
            Ok(1)
        }
    }
}

/// Runs `helpdesk report`.
pub async fn report(common: Common, since: &str, json: bool, out: &mut dyn Write) -> Result<i32> {
    let period = report::parse_since(since).map_err(|e| anyhow::anyhow!(e))?;
    let (_, store) = open_store(&common).await?;
    let now = Clock::new().now_ms();
    let r = report::build(&store, now, period).await?;
    if json {
        serde_json::to_writer_pretty(&mut *out, &r)?;
        writeln!(out)?;
        return Ok(0);
    }
    writeln!(out, "since {}", when(Some(r.since)))?;
    writeln!(out, "\nmessages")?;
    for (k, v) in &r.messages {
        writeln!(out, "  {k:<24} {v}")?;
    }
    writeln!(out, "\nwhat the bot did")?;
    for (k, v) in &r.by_action {
        writeln!(out, "  {k:<24} {v}")?;
    }
    writeln!(out, "  {:<24} {}", "replies sent", r.answered_automatically)?;
    writeln!(out, "\nper rule")?;
    for (k, v) in &r.by_rule {
        writeln!(out, "  {k:<24} {v}")?;
    }
    let min = |m: Option<f64>| m.map(|v| format!("{v:.0} min")).unwrap_or("-".into());
    writeln!(out, "\ntickets")?;
    writeln!(out, "  {:<24} {}", "opened", r.tickets_opened)?;
    writeln!(out, "  {:<24} {}", "solved", r.tickets_solved)?;
    writeln!(
        out,
        "  {:<24} {}",
        "first reply, median",
        min(r.first_response_median_min)
    )?;
    writeln!(
        out,
        "  {:<24} {}",
        "first reply, p90",
        min(r.first_response_p90_min)
    )?;
    writeln!(out, "  {:<24} {}", "SLA breaches", r.sla_breaches)?;
    writeln!(
        out,
        "  {:<24} {}",
        "satisfaction",
        r.csat_average
            .map(|a| format!("{a:.1}/5 ({} answers)", r.csat_answers))
            .unwrap_or("-".into())
    )?;
    writeln!(
        out,
        "\nwhat the rules miss (top words of unmatched messages)"
    )?;
    let words: Vec<String> = r
        .unmatched_top_words
        .iter()
        .map(|(w, n)| format!("{w} ({n})"))
        .collect();
    writeln!(
        out,
        "  {}",
        if words.is_empty() {
            "-".into()
        } else {
            words.join(", ")
        }
    )?;
    Ok(0)
}
