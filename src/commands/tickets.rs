//! The agents' ticket commands: `helpdesk tickets list`, `show`, and the
//! actions (claim, assign, note, reply, pending, solve, close, reopen).
//!
//! Readable tables by default, `--json` on every listing. Each command finds
//! its database the same way: `--config FILE` (default `helpdesk.toml`, if
//! present), overridden by `HELPDESK_DATABASE_URL`. Actions go through
//! [`tickets::apply`], the same code the bot uses for `agent_actions`.

use std::io::Write;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use crate::application::tickets::{self, Applied, Command, Entry, Filter, Summary};
use crate::commands::args::{AgentArgs, Json, adjust};
use crate::commands::output::when;
use crate::commands::process::{LogFormat, block_on};
use crate::domain::clock::{Clock, Millis};
use crate::domain::hours::BusinessHours;
use crate::domain::states::TicketStatus;
use crate::domain::{AgentName, TicketRef};
use crate::runtime::config::Config;
use crate::storage::Store;

/// `helpdesk tickets`: the agents' flags, then what to do.
#[derive(Debug, Args)]
pub struct TicketsArgs {
    /// Where the database is, and who is acting.
    #[command(flatten)]
    pub agent: AgentArgs,
    /// What to do.
    #[command(subcommand)]
    pub cmd: TicketsCommand,
}

/// `helpdesk tickets …`
#[derive(Debug, Subcommand)]
pub enum TicketsCommand {
    /// The tickets being worked (new, open, pending), most urgent first.
    List(ListArgs),
    /// One ticket: its conversation and history, with times and who did what.
    Show {
        /// The ticket, such as T-1042.
        ticket: TicketRef,
        /// How to print.
        #[command(flatten)]
        json: Json,
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

/// `helpdesk tickets list`: which tickets to show, and how.
#[derive(Debug, Args)]
#[command(mut_args(adjust("json", |a| a.help("One JSON array"))))]
pub struct ListArgs {
    /// Only this queue.
    #[arg(long)]
    pub queue: Option<String>,
    /// Only this status.
    #[arg(long)]
    pub status: Option<String>,
    /// Only mine (`--agent`).
    #[arg(long)]
    pub mine: bool,
    /// Only those past their first-response time.
    #[arg(long)]
    pub overdue: bool,
    /// Only those whose messages carried this signal (a [signals] name, `repeated`, or `any`)
    #[arg(long, value_name = "SIGNAL")]
    pub signal: Option<String>,
    /// The order: `priority` (default: most urgent, then oldest) or `signals` (the tickets with the most signals first)
    #[arg(long, value_name = "ORDER", default_value = "priority", value_parser = ["priority", "signals"])]
    pub sort: String,
    /// How to print.
    #[command(flatten)]
    pub json: Json,
}

impl ListArgs {
    /// The filter the flags ask for; `--mine` needs to know who is asking.
    fn filter(&self, agent: &AgentArgs) -> Result<Filter> {
        let status: Option<TicketStatus> = self
            .status
            .as_deref()
            .map(str::parse)
            .transpose()
            .context("--status")?;
        Ok(Filter {
            queue: self.queue.clone(),
            status,
            assignee: if self.mine {
                Some(agent.agent()?)
            } else {
                None
            },
            overdue: self.overdue,
            signal: self.signal.clone(),
            by_signals: self.sort == "signals",
        })
    }
}

/// Runs `helpdesk tickets …` on stdout; returns the exit code.
pub fn execute(args: TicketsArgs) -> Result<i32> {
    block_on(LogFormat::Text, "warn", async {
        let stdout = std::io::stdout();
        tickets(&args.agent, args.cmd, &mut stdout.lock()).await
    })
}

/// Runs a `tickets` command; returns the exit code.
pub async fn tickets(agent: &AgentArgs, cmd: TicketsCommand, out: &mut dyn Write) -> Result<i32> {
    let (config, store) = agent.open_store().await?;
    let now = Clock::new().now_ms();
    let (ticket, command) = match cmd {
        TicketsCommand::List(list) => {
            let found = tickets::list(&store, &list.filter(agent)?, now).await?;
            write_list(&found, list.json.on, config.hours.as_ref(), out)?;
            return Ok(0);
        }
        TicketsCommand::Show { ticket, json } => {
            let (summary, timeline) = tickets::show(&store, ticket, now).await?;
            write_ticket(&summary, timeline, json.on, config.hours.as_ref(), out)?;
            if !json.on
                && let Some(i) = crate::storage::incidents::of_ticket_row(&store, ticket).await?
            {
                writeln!(out, "\n{}", crate::commands::incidents::describe(&i))?;
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
    let action = Action {
        ticket,
        command,
        who: agent.agent()?,
        now,
    };
    act(&config, &store, &action, out).await
}

/// An agent's action on a ticket, as the command line gave it.
struct Action {
    ticket: TicketRef,
    command: Command,
    who: String,
    now: Millis,
}

/// Applies the action; a refusal (the ticket's status does not allow it,
/// the reply is too long…) is the agent's to fix: exit code 1, not an error.
async fn act(config: &Config, store: &Store, a: &Action, out: &mut dyn Write) -> Result<i32> {
    let result = tickets::apply(
        store,
        &config.ticket_policy(),
        &config.protection.bots,
        a.ticket,
        &a.who,
        &a.command,
        a.now,
    )
    .await;
    match result {
        Ok(applied) => {
            writeln!(out, "{}", done(&applied, &a.command, &a.who))?;
            Ok(0)
        }
        Err(tickets::TicketError::Store(e)) => Err(e.into()),
        Err(refused) => {
            eprintln!("error: {refused}");
            Ok(1)
        }
    }
}

/// What an applied action did, in one line: the status change and what
/// was queued for the customer.
fn done(a: &Applied, cmd: &Command, who: &str) -> String {
    let change = if a.from == a.to {
        a.to.to_string()
    } else {
        format!("{} → {}", a.from, a.to)
    };
    let extra = match (cmd, a.queued) {
        (Command::Reply { .. }, Some(_)) => ", reply queued (the bot sends it)",
        (Command::Solve, Some(_)) => ", satisfaction survey queued",
        _ => "",
    };
    format!("{}: {} by {who}: {change}{extra}", a.ticket, cmd.name())
}

/// A due time for agents: on the brand's wall clock with `[hours]` (the
/// SLA counts its open hours), else in UTC.
fn due(ms: Option<Millis>, hours: Option<&BusinessHours>) -> String {
    match (ms, hours) {
        (Some(ms), Some(h)) => h.local(ms),
        _ => when(ms),
    }
}

/// `tickets list`: one JSON array, or a table with a count at the end.
fn write_list(
    list: &[Summary],
    json: bool,
    hours: Option<&BusinessHours>,
    out: &mut dyn Write,
) -> Result<()> {
    if json {
        serde_json::to_writer_pretty(&mut *out, list)?;
        writeln!(out)?;
        return Ok(());
    }
    let due_title = match hours {
        Some(h) => format!("first reply due (open hours, {})", h.timezone()),
        None => "first reply due (UTC)".to_owned(),
    };
    writeln!(
        out,
        "{:<8} {:<8} {:<7} {:<10} {:<18} {:<12} {:<14} {due_title}",
        "ticket", "status", "prio", "queue", "customer", "agent", "signals"
    )?;
    for t in list {
        writeln!(
            out,
            "{:<8} {:<8} {:<7} {:<10} {:<18} {:<12} {:<14} {:<21} {}",
            t.reference,
            t.status,
            t.priority,
            t.queue,
            format!("@{}", t.customer),
            t.assignee.as_deref().unwrap_or("-"),
            if t.signals.is_empty() {
                "-".to_owned()
            } else {
                t.signals.join(",")
            },
            due(t.first_response_due, hours),
            if t.overdue { "OVERDUE" } else { "" }
        )?;
    }
    let late = list.iter().filter(|t| t.overdue).count();
    writeln!(out, "{} tickets, {late} overdue", list.len())?;
    Ok(())
}

/// `tickets show`: the ticket and its timeline, as JSON or for reading.
fn write_ticket(
    s: &Summary,
    timeline: Vec<Entry>,
    json: bool,
    hours: Option<&BusinessHours>,
    out: &mut dyn Write,
) -> Result<()> {
    if json {
        serde_json::to_writer_pretty(
            &mut *out,
            &serde_json::json!({"ticket": s, "timeline": timeline}),
        )?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{}  {}  {} priority, queue {}, @{} on {}{}, agent {}",
        s.reference,
        s.status,
        s.priority,
        s.queue,
        s.customer,
        s.platform,
        s.lang
            .as_deref()
            .map(|l| format!(" in {l}"))
            .unwrap_or_default(),
        s.assignee.as_deref().unwrap_or("-")
    )?;
    writeln!(
        out,
        "first reply due {}{}, answered {}{}\n",
        due(s.first_response_due, hours),
        if s.overdue { " (OVERDUE)" } else { "" },
        when(s.first_response_at),
        s.csat.map(|c| format!(", rated {c}/5")).unwrap_or_default()
    )?;
    for e in timeline {
        writeln!(out, "{}", timeline_line(e))?;
    }
    Ok(())
}

/// One event of a ticket's history: when, who, what, and the change or text.
fn timeline_line(e: Entry) -> String {
    let change = match (&e.from, &e.to) {
        (Some(f), Some(t)) => format!(" {f} → {t}"),
        (None, Some(t)) => format!(" → {t}"),
        _ => String::new(),
    };
    format!(
        "{}  {:<14} {:<8}{}{}",
        when(Some(e.at)),
        e.who,
        e.kind,
        change,
        e.text.map(|t| format!("  {t}")).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_action_says_what_changed_and_what_was_queued() {
        let a = Applied {
            ticket: TicketRef(1042),
            from: TicketStatus::Pending,
            to: TicketStatus::Solved,
            queued: Some(7),
        };
        assert_eq!(
            done(&a, &Command::Solve, "carla"),
            "T-1042: solve by carla: pending → solved, satisfaction survey queued"
        );
        let same = Applied {
            from: TicketStatus::Open,
            to: TicketStatus::Open,
            ..a
        };
        let reply = Command::Reply {
            text: "hi".into(),
            dm: true,
        };
        assert_eq!(
            done(&same, &reply, "bob"),
            "T-1042: reply_dm by bob: open, reply queued (the bot sends it)"
        );
    }

    #[test]
    fn mine_needs_an_agent_and_a_status_must_exist() {
        let nobody = AgentArgs {
            config: crate::commands::args::ConfigFile {
                path: "helpdesk.toml".into(),
            },
            agent: None,
        };
        let list = |status: Option<&str>, mine| ListArgs {
            queue: None,
            status: status.map(str::to_owned),
            mine,
            overdue: false,
            signal: None,
            sort: "priority".into(),
            json: Json { on: false },
        };
        assert!(list(None, true).filter(&nobody).is_err());
        assert!(list(Some("bogus"), false).filter(&nobody).is_err());
        let f = list(Some("open"), false).filter(&nobody).unwrap();
        assert_eq!(f.status, Some(TicketStatus::Open));
        assert_eq!(f.assignee, None);
    }
}
