//! `helpdesk rules check` and `helpdesk rules test`: the commands that only
//! read rule files, for writing rules before the bot runs them.

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::commands::args::{Json, RulesFolder, adjust};
use crate::domain::Channel;
use crate::rules::{Decision, LoadOptions, Outcome, RuleSet, Vars, Via};

/// `helpdesk rules …`
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Load every rule file, run every example; exit 1 with every error.
    Check {
        /// Where the rules are.
        #[command(flatten)]
        rules: RulesFolder,
    },
    /// Show which rule a message routes to, and why the others lost.
    Test(TestArgs),
}

/// `helpdesk rules test`: one message, or JSON lines from stdin.
#[derive(Debug, Args)]
#[command(mut_args(adjust("json", |a| a.help("One JSON object per message"))))]
pub struct TestArgs {
    /// Where the rules are.
    #[command(flatten)]
    pub rules: RulesFolder,
    /// The channel the message arrives on.
    #[arg(long, default_value = "mention")]
    pub channel: Channel,
    /// How to print.
    #[command(flatten)]
    pub json: Json,
    /// The customer's handle used to render replies.
    #[arg(long, default_value = "customer")]
    pub author: String,
    /// The customer's display name used to render replies.
    #[arg(long, default_value = "Customer")]
    pub name: String,
    /// The message; `-` reads JSON lines `{"text", "channel"}` from stdin.
    pub text: String,
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
pub fn execute(cmd: RulesCommand) -> Result<i32> {
    match cmd {
        RulesCommand::Check { rules } => check(&rules.path),
        RulesCommand::Test(args) => test(&args),
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

fn test(args: &TestArgs) -> Result<i32> {
    let set = match RuleSet::load_dir(&args.rules.path, &LoadOptions::default()) {
        Ok(set) => set,
        Err(e) => {
            eprint!("{}", e.render());
            return Ok(1);
        }
    };
    let vars = Vars {
        author: args.author.trim_start_matches('@'),
        name: &args.name,
        ticket: Some(SAMPLE_TICKET),
    };
    if args.text == "-" {
        return bulk(&set, &vars);
    }
    let d = set.route(&args.text, args.channel);
    // Written, not printed: `println!` panics on a closed pipe.
    let mut out = std::io::stdout().lock();
    if args.json.on {
        writeln!(out, "{}", decision_json(&d, &vars))?;
    } else {
        write!(out, "{}", explain(&d, &args.text, args.channel, &vars))?;
    }
    Ok(0)
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

/// The routing for a person: which rule won and on which words, what the
/// bot would do, and why each other candidate lost.
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
            if via == Via::Dm {
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

/// One line of `rules test -`: a message, and optionally who wrote it.
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

/// Routes every JSON line of stdin; a line that cannot be read gets an
/// error object in its place and the exit code 1, the others go on.
fn bulk(set: &RuleSet, vars: &Vars<'_>) -> Result<i32> {
    let stdin = std::io::stdin().lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut code = 0;
    for (n, line) in stdin.lines().enumerate() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        let value = route_line(set, vars, &line).unwrap_or_else(|e| {
            code = 1;
            json!({"error": format!("line {}: {e}; expected {{\"text\": \"…\", \"channel\": \"mention|dm|search\"}}", n + 1)})
        });
        serde_json::to_writer(&mut out, &value)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(code)
}

/// The routing of one bulk line, its own author and name replacing the
/// defaults in `vars`.
fn route_line(
    set: &RuleSet,
    vars: &Vars<'_>,
    line: &str,
) -> Result<serde_json::Value, serde_json::Error> {
    let m = serde_json::from_str::<BulkLine>(line)?;
    let author = m.author.as_deref().map(|a| a.trim_start_matches('@'));
    let v = Vars {
        author: author.unwrap_or(vars.author),
        name: m.name.as_deref().unwrap_or(vars.name),
        ticket: vars.ticket,
    };
    Ok(decision_json(
        &set.route(&m.text, m.channel.unwrap_or(Channel::Mention)),
        &v,
    ))
}
