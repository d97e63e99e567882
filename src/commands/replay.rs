//! `helpdesk rules replay`: what a rule change would change, measured on
//! recorded traffic. Every message of the database (or of a JSON-lines
//! file) is routed through the old and the new rules exactly as
//! `rules test` routes it; the messages whose rule or action changes are
//! grouped and counted, with the tickets and automatic replies the change
//! adds or removes per platform and day against the reply budget.
//!
//! Exit 0 when nothing changes, 1 when something does, 2 on an error (as
//! `diff`), so that a CI job can require a reviewed preview.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::commands::args::{Json, Threads, adjust};
use crate::commands::output::{escape_for_terminal, is_broken_pipe, is_unsafe_on_a_terminal};
use crate::commands::parallel::{self, Lines};
use crate::commands::process::{LogFormat, block_on_here};
use crate::domain::clock::{Clock, Millis, parse_rfc3339, rfc3339};
use crate::domain::hours::BusinessHours;
use crate::domain::limits::{Budget, Limits};
use crate::domain::{Channel, Platform};
use crate::platforms::registry::own_posting_budget;
use crate::rules::{Escalation, LoadOptions, Outcome, RuleSet};
use crate::runtime::config::Config;
use crate::storage::{Store, messages};

/// `helpdesk rules replay`: the rule sets, where the messages come from,
/// which of them, and how to print.
#[derive(Debug, Args)]
#[command(mut_args(adjust("json", |a| a.help(
    "One JSON line per changed message, then a last line {\"summary\": …}"))))]
pub struct ReplayArgs {
    /// The folder of the new rules, the ones to preview.
    #[arg(long = "rules", value_name = "NEW")]
    pub rules: PathBuf,
    /// The folder of the rules to compare with (default: the `rules` of the configuration).
    #[arg(long, value_name = "OLD")]
    pub against: Option<PathBuf>,
    /// Replay this JSON-lines file ({"id", "text", "channel"}, as `rules test -` reads) instead of the database.
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// The configuration: its database, its rules (the default OLD) and its [limits] global budget [default: helpdesk.toml].
    #[arg(long, value_name = "CONFIG", env = "HELPDESK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Only messages written within this period before now: 12h, 30d, 2w… (every line of a file then needs a `written_at`).
    #[arg(long, value_name = "PERIOD")]
    pub since: Option<Since>,
    /// Only messages on this channel (repeat for several).
    #[arg(long = "channel", value_name = "CHANNEL")]
    pub channels: Vec<Channel>,
    /// Sample messages shown per group of changes in the readable output.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub limit: usize,
    /// How to print.
    #[command(flatten)]
    pub json: Json,
    /// How many threads route the messages.
    #[command(flatten)]
    pub threads: Threads,
}

/// A period before now, as `--since` takes it: a number and a unit
/// (`m`, `h`, `d` or `w`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Since(pub Duration);

impl FromStr for Since {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let hint = "write for example 30d, 12h, 90m or 2w";
        let at = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (n, unit) = s.split_at(at);
        let n: u64 = n
            .parse()
            .map_err(|_| format!("`{s}` is not a period: {hint}"))?;
        let secs = match unit {
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            _ => return Err(format!("`{s}` has no known unit: {hint}")),
        };
        n.checked_mul(secs)
            .map(|s| Since(Duration::from_secs(s)))
            .ok_or_else(|| format!("`{s}` is too long a period"))
    }
}

/// Runs `helpdesk rules replay`; returns the exit code.
pub fn execute(args: &ReplayArgs) -> Result<i32> {
    let config = match (&args.config, &args.against, &args.input) {
        (None, Some(_), Some(_)) => None,
        (path, ..) => {
            let path = path.clone().unwrap_or_else(|| "helpdesk.toml".into());
            let loaded = Config::load(&path, false);
            // A configuration given is the user's to mend, as its error
            // says; the default one was only looked for.
            Some(if args.config.is_some() {
                loaded?
            } else {
                loaded.with_context(|| {
                    format!(
                        "reading {}: give --config, or both --input and --against",
                        path.display()
                    )
                })?
            })
        }
    };
    let old_dir = match (&args.against, &config) {
        (Some(dir), _) => dir.clone(),
        (None, Some(c)) => c.rules.clone(),
        (None, None) => unreachable!("a configuration is read when --against is missing"),
    };
    let threads = std::num::NonZeroUsize::new(args.threads.get());
    let Some(new) = load_rules(&args.rules, "--rules (the new rules)", threads) else {
        return Ok(2);
    };
    let Some(old) = load_rules(&old_dir, "--against (the old rules)", threads) else {
        return Ok(2);
    };
    let limits = config.as_ref().map(|c| c.limits.clone());
    let since = args
        .since
        .map(|s| Clock::new().now_ms() - i64::try_from(s.0.as_millis()).unwrap_or(i64::MAX / 2));
    let hours = config.as_ref().and_then(|c| c.hours.as_ref());
    let settings = Settings::new((&old, &new), args, since, hours);
    let stdout = std::io::stdout();
    let mut replay = Replay::new(&settings, stdout.lock());
    let threads = args.threads.get();
    let replayed = match (&args.input, &config) {
        (Some(file), _) => replay_file(file, threads, &mut replay),
        (None, Some(c)) => replay_database(&c.database_url, since, threads, &mut replay),
        (None, None) => unreachable!("a configuration is read when --input is missing"),
    };
    match replayed {
        // The reader went away (`| head`): the exit code must still tell a
        // CI job whether something changes, and it can. A block's lines
        // are counted before they are written, so a pipe closed on them
        // has seen a change; one closed on the summary, the whole replay.
        Err(e) if is_broken_pipe(&e) => Ok(replay.exit_code()),
        Err(e) => Err(e),
        Ok(()) => {
            let code = replay.exit_code();
            match replay.finish(limits.as_ref()) {
                Err(e) if is_broken_pipe(&e) => Ok(code),
                done => done,
            }
        }
    }
}

/// Loads a rule set, or prints every error as `rules check` does and
/// returns `None`: nothing is replayed on broken rules. `threads`: the
/// replay's `--threads`, which a large file's check uses too.
fn load_rules(dir: &Path, which: &str, threads: Option<std::num::NonZeroUsize>) -> Option<RuleSet> {
    let opts = LoadOptions {
        threads,
        ..LoadOptions::default()
    };
    match RuleSet::load_dir(dir, &opts) {
        Ok(set) => Some(set),
        Err(e) => {
            eprint!("{}", e.render());
            eprintln!(
                "error: {} problem{} in {} ({which}); nothing was replayed: fix them and run again",
                e.diagnostics.len(),
                if e.diagnostics.len() == 1 { "" } else { "s" },
                dir.display()
            );
            None
        }
    }
}

/// One message to replay, borrowed from where it was read.
#[derive(Debug, Clone, Copy)]
struct Message<'a> {
    id: &'a str,
    text: &'a str,
    channel: Channel,
    platform: Option<Platform>,
    written_at: Option<Millis>,
}

/// The route a rule set gives a message: the winning rule (`None`:
/// unmatched) and the action's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
struct Route<'r> {
    rule: Option<&'r str>,
    action: &'static str,
}

/// One `--json` line: a message whose route changes.
#[derive(Serialize)]
struct ChangedLine<'a, 'r> {
    id: &'a str,
    text: &'a str,
    channel: Channel,
    before: Route<'r>,
    after: Route<'r>,
}

/// A group of messages that change the same way.
#[derive(Debug, Default)]
struct Group {
    count: u64,
    /// Up to `--limit` (id, text).
    samples: Vec<(String, String)>,
}

/// Tickets and automatic replies of one platform on one day, with the old
/// rules (`[0]`) and the new (`[1]`).
#[derive(Debug, Default, Clone, Copy)]
struct Cost {
    tickets: [u64; 2],
    replies: [u64; 2],
}

/// What a replay routes with and keeps: the two rule sets and the filters.
/// Shared by the routing threads.
struct Settings<'r> {
    old: &'r RuleSet,
    new: &'r RuleSet,
    channels: Vec<Channel>,
    since: Option<Millis>,
    limit: usize,
    json: bool,
    /// The configuration's `[hours]`: which acknowledgement an escalation
    /// sends, by the hour the message was written.
    hours: Option<&'r BusinessHours>,
}

/// The counts of a replay, or of one block of it: each routing thread
/// counts its blocks, and the blocks' tallies are merged in input order.
#[derive(Default)]
struct Tally<'r> {
    messages: u64,
    changed: u64,
    per_rule: HashMap<Option<&'r str>, [u64; 2]>,
    groups: HashMap<(Route<'r>, Route<'r>), Group>,
    costs: BTreeMap<(&'static str, Option<i64>), Cost>,
}

/// A routed block: its counts, its `--json` lines, how many bytes of the
/// input it held (for the progress bar), and the error that stopped it
/// (what came before it in the block is counted and printed, as a run
/// one message at a time would have).
struct Block<'r> {
    tally: Tally<'r>,
    json: Vec<u8>,
    bytes: u64,
    failed: Option<anyhow::Error>,
}

impl<'r> Block<'r> {
    fn new() -> Self {
        Block {
            tally: Tally::default(),
            json: Vec::new(),
            bytes: 0,
            failed: None,
        }
    }
}

const DAY_MS: i64 = 86_400_000;

/// The times that name a day a person can read: 0001-01-01 to 9999-12-31.
const DATED: std::ops::RangeInclusive<Millis> = -62_135_596_800_000..=253_402_300_799_999;

/// Above this many rules, the readable table lists only the rules whose
/// count changes.
const MAX_RULE_ROWS: usize = 30;

/// Messages of the database handed to a routing thread at once.
const ROWS_PER_BLOCK: usize = 1024;

impl<'r> Settings<'r> {
    fn new(
        (old, new): (&'r RuleSet, &'r RuleSet),
        args: &ReplayArgs,
        since: Option<Millis>,
        hours: Option<&'r BusinessHours>,
    ) -> Self {
        Settings {
            old,
            new,
            channels: args.channels.clone(),
            since,
            limit: args.limit,
            json: args.json.on,
            hours,
        }
    }
}

impl<'r> Tally<'r> {
    /// Routes one message through both rule sets, as `rules test` does;
    /// a changed message's `--json` line goes to `json`.
    fn feed(&mut self, s: &Settings<'r>, m: Message<'_>, json: &mut Vec<u8>) {
        if !s.channels.is_empty() && !s.channels.contains(&m.channel) {
            return;
        }
        if let (Some(since), Some(at)) = (s.since, m.written_at)
            && at < since
        {
            return;
        }
        self.messages += 1;
        let (before, b_cost) = route(s.old, m, s.hours);
        let (after, a_cost) = route(s.new, m, s.hours);
        self.per_rule.entry(before.rule).or_default()[0] += 1;
        self.per_rule.entry(after.rule).or_default()[1] += 1;
        // A time outside the years 1 to 9999 names no day (a row written
        // by another tool): counted with the undated ones.
        let day = m
            .written_at
            .filter(|w| DATED.contains(w))
            .map(|w| w.div_euclid(DAY_MS));
        let platform = m.platform.map_or("-", Platform::as_str);
        let cost = self.costs.entry((platform, day)).or_default();
        cost.tickets[0] += u64::from(b_cost.0);
        cost.replies[0] += u64::from(b_cost.1);
        cost.tickets[1] += u64::from(a_cost.0);
        cost.replies[1] += u64::from(a_cost.1);
        if before == after {
            return;
        }
        self.changed += 1;
        let group = self.groups.entry((before, after)).or_default();
        group.count += 1;
        if group.samples.len() < s.limit {
            group.samples.push((m.id.to_owned(), m.text.to_owned()));
        }
        if s.json {
            let line = ChangedLine {
                id: m.id,
                text: m.text,
                channel: m.channel,
                before,
                after,
            };
            serde_json::to_writer(&mut *json, &line).expect("writing to memory cannot fail");
            json.push(b'\n');
        }
    }

    /// Adds the tally of the blocks that follow this one's; a group keeps
    /// its first `limit` samples in input order.
    fn merge(&mut self, later: Tally<'r>, limit: usize) {
        self.messages += later.messages;
        self.changed += later.changed;
        for (rule, [b, a]) in later.per_rule {
            let c = self.per_rule.entry(rule).or_default();
            c[0] += b;
            c[1] += a;
        }
        for (change, g) in later.groups {
            let mine = self.groups.entry(change).or_default();
            mine.count += g.count;
            let room = limit.saturating_sub(mine.samples.len());
            mine.samples.extend(g.samples.into_iter().take(room));
        }
        for (key, c) in later.costs {
            let mine = self.costs.entry(key).or_default();
            for k in 0..2 {
                mine.tickets[k] += c.tickets[k];
                mine.replies[k] += c.replies[k];
            }
        }
    }
}

/// The replay's output: the merged counts, and the `--json` lines as the
/// blocks come back.
struct Replay<'r, W: Write> {
    settings: &'r Settings<'r>,
    tally: Tally<'r>,
    out: std::io::BufWriter<W>,
}

impl<'r, W: Write> Replay<'r, W> {
    fn new(settings: &'r Settings<'r>, out: W) -> Self {
        Replay {
            settings,
            tally: Tally::default(),
            out: std::io::BufWriter::with_capacity(1 << 16, out),
        }
    }

    /// Takes a routed block, the next in input order; its error, if any,
    /// once what came before it is counted and written.
    fn take(&mut self, block: Block<'r>) -> Result<()> {
        self.tally.merge(block.tally, self.settings.limit);
        // Flushed block by block: a reader of a pipe gets each block's lines
        // as they come, not when the buffer fills.
        let written = self
            .out
            .write_all(&block.json)
            .and_then(|()| self.out.flush())
            .context("writing stdout");
        match (written, block.failed) {
            // A full disk is said first; a bad line before a closed pipe,
            // so that the exit code is 2 whatever the timing.
            (Err(e), _) if !is_broken_pipe(&e) => Err(e),
            (_, Some(e)) => Err(e),
            (written, None) => written,
        }
    }

    /// The exit code for what has been replayed: 1 when something changed.
    fn exit_code(&self) -> i32 {
        i32::from(self.tally.changed > 0)
    }

    /// Prints the summary (readable, or the last `--json` line); returns
    /// [`Self::exit_code`].
    fn finish(mut self, limits: Option<&Limits>) -> Result<i32> {
        if self.settings.json {
            self.write_summary_json()?;
        } else {
            self.write_readable(limits)?;
        }
        self.out.flush().context("writing stdout")?;
        Ok(self.exit_code())
    }
}

/// The route `set` gives `m`, and whether it opens a ticket and sends an
/// automatic reply (an escalation's acknowledgement counts as one, as the
/// bot would send it under `hours`).
fn route<'r>(
    set: &'r RuleSet,
    m: Message<'_>,
    hours: Option<&BusinessHours>,
) -> (Route<'r>, (bool, bool)) {
    let d = set.route(m.text, m.channel);
    let outcome = d.outcome();
    let cost = match outcome {
        Outcome::Reply(..) => (false, true),
        Outcome::Escalate(e, _) => (true, acknowledges(e, hours, m.written_at)),
        Outcome::Ignore | Outcome::None => (false, false),
    };
    let r = Route {
        rule: d.rule_id().map(|r| r.as_str()),
        action: outcome.name(),
    };
    (r, cost)
}

/// Whether escalation `e` sends an acknowledgement for a message written
/// at `at`: `ack_closed` only counts under `[hours]`, while the team is
/// away, as the bot sends it; a message of unknown date under `[hours]`
/// counts when either would answer it (the budget's worst case).
fn acknowledges(e: &Escalation, hours: Option<&BusinessHours>, at: Option<Millis>) -> bool {
    match (hours, at) {
        (None, _) => e.ack.is_some(),
        (Some(h), Some(at)) => e.ack_for(h.opens_after(at).is_some()).is_some(),
        (Some(_), None) => e.ack.is_some() || e.ack_closed.is_some(),
    }
}

/// How a change is named: `refund → billing-late` when the rule changes
/// (with the actions when they change too), `refund: reply → escalate`
/// when only the action does; `(unmatched)`, which no rule id can be,
/// stands for no rule.
fn change_label(before: Route<'_>, after: Route<'_>) -> String {
    let name = |r: Route<'_>| rule_key(r.rule).to_owned();
    if before.rule != after.rule {
        let mut s = format!("{} → {}", name(before), name(after));
        if before.action != after.action {
            s.push_str(&format!(" ({} → {})", before.action, after.action));
        }
        s
    } else {
        format!("{}: {} → {}", name(before), before.action, after.action)
    }
}

/// The key of a rule in the per-rule counts.
fn rule_key(rule: Option<&str>) -> &str {
    rule.unwrap_or("(unmatched)")
}

/// The last `--json` line.
#[derive(Serialize)]
struct SummaryLine<'a> {
    summary: Summary<'a>,
}

#[derive(Serialize)]
struct Summary<'a> {
    messages: u64,
    changed: u64,
    by_change: BTreeMap<String, u64>,
    per_rule: BTreeMap<&'a str, PerRule>,
}

#[derive(Serialize)]
struct PerRule {
    before: u64,
    after: u64,
}

impl<W: Write> Replay<'_, W> {
    fn write_summary_json(&mut self) -> Result<()> {
        let line = SummaryLine {
            summary: Summary {
                messages: self.tally.messages,
                changed: self.tally.changed,
                by_change: self
                    .tally
                    .groups
                    .iter()
                    .map(|((b, a), g)| (change_label(*b, *a), g.count))
                    .collect(),
                per_rule: self
                    .tally
                    .per_rule
                    .iter()
                    .map(|(r, [b, a])| {
                        (
                            rule_key(*r),
                            PerRule {
                                before: *b,
                                after: *a,
                            },
                        )
                    })
                    .collect(),
            },
        };
        serde_json::to_writer(&mut self.out, &line)?;
        self.out.write_all(b"\n")?;
        Ok(())
    }

    fn write_readable(&mut self, limits: Option<&Limits>) -> Result<()> {
        let out = &mut self.out;
        writeln!(
            out,
            "replayed {} message{}: {} would be routed differently",
            self.tally.messages,
            if self.tally.messages == 1 { "" } else { "s" },
            self.tally.changed
        )?;
        let mut rules: Vec<_> = self
            .tally
            .per_rule
            .iter()
            .map(|(r, c)| (rule_key(*r), *c))
            .collect();
        rules.sort();
        let width = rules
            .iter()
            .map(|(r, _)| r.chars().count())
            .max()
            .unwrap_or(4)
            .max(4);
        writeln!(
            out,
            "\n  {:width$}  {:>8}  {:>8}",
            "rule", "before", "after"
        )?;
        // A large rule set shows only the rules whose count changes.
        let all = rules.len() <= MAX_RULE_ROWS;
        for (rule, [b, a]) in &rules {
            let mark = if b == a { "" } else { "  *" };
            if all || b != a {
                writeln!(out, "  {rule:width$}  {b:>8}  {a:>8}{mark}")?;
            }
        }
        let same = rules.iter().filter(|(_, [b, a])| b == a).count();
        if !all && same > 0 {
            writeln!(out, "  … and {same} rules whose count does not change")?;
        }
        let mut groups: Vec<_> = self.tally.groups.iter().collect();
        groups.sort_by(|x, y| y.1.count.cmp(&x.1.count).then_with(|| x.0.cmp(y.0)));
        if !groups.is_empty() {
            writeln!(out, "\nchanges:")?;
        }
        for ((b, a), g) in groups {
            writeln!(out, "  {}: {}", change_label(*b, *a), g.count)?;
            for (id, text) in &g.samples {
                writeln!(out, "      {}: {}", excerpt(id), excerpt(text))?;
            }
        }
        write_costs(out, &self.tally.costs, limits)?;
        Ok(())
    }
}

/// The tickets and automatic replies per platform and day that the change
/// adds or removes, and the days whose automatic replies exceed the
/// `[limits] global` budget under the new rules (or the platform's own
/// posting limit where slower, as the sender holds it).
fn write_costs(
    out: &mut dyn Write,
    costs: &BTreeMap<(&'static str, Option<i64>), Cost>,
    limits: Option<&Limits>,
) -> std::io::Result<()> {
    let default = Limits::default();
    let budget = limits.unwrap_or(&default).global;
    let per_day = daily(budget);
    writeln!(
        out,
        "\ntickets and automatic replies per platform and day (before → after); reply budget {} per {} s{} = at most {per_day} a day per platform (Mastodon and Bluesky: their own posting limit where slower):",
        budget.replies,
        budget.per_secs,
        if limits.is_some() {
            ""
        } else {
            " (the default; give --config for yours)"
        }
    )?;
    let mut shown = 0;
    for ((platform, day), c) in costs {
        // Undated messages (a file's lines without `written_at`) may span
        // any number of days: a daily budget says nothing of them.
        let per_day = platform
            .parse::<Platform>()
            .ok()
            .and_then(own_posting_budget)
            .map_or(per_day, |own| daily(budget.slower(own)));
        let over = day.is_some() && c.replies[1] > per_day;
        if c.tickets[0] == c.tickets[1] && c.replies[0] == c.replies[1] && !over {
            continue;
        }
        shown += 1;
        let day = day.map_or_else(
            || "undated (not compared with the daily budget)".to_owned(),
            |d| rfc3339(d * DAY_MS)[..10].to_owned(),
        );
        write!(
            out,
            "  {platform:8} {day:10}  tickets {} → {} ({:+}), replies {} → {} ({:+})",
            c.tickets[0],
            c.tickets[1],
            c.tickets[1] as i64 - c.tickets[0] as i64,
            c.replies[0],
            c.replies[1],
            c.replies[1] as i64 - c.replies[0] as i64,
        )?;
        if over {
            let was = if c.replies[0] > per_day {
                ", as before"
            } else {
                ""
            };
            write!(out, "  OVER BUDGET ({per_day}){was}")?;
        }
        writeln!(out)?;
    }
    if shown == 0 {
        writeln!(out, "  no change, and no day over budget")?;
    }
    Ok(())
}

/// The most replies a budget lets through in one day: `replies` at once,
/// then one more every `per_secs / replies` (README, `[limits]`) strictly
/// within the day. A day above it is over budget whatever the day before
/// left in the bucket.
fn daily(b: Budget) -> u64 {
    let n = u64::from(b.replies);
    // At most 2^32 * 86 400: no overflow in u64.
    n + (n * 86_400).div_ceil(b.per_secs.max(1)).saturating_sub(1)
}

/// A sample text (or id) on one line, cut at 100 characters, that cannot
/// drive the terminal: control characters (escape sequences, line breaks),
/// the bidi controls that reorder what follows them (a reversed text
/// would show the reviewer another message) and the invisible characters
/// that can hide text ([`is_unsafe_on_a_terminal`]) become spaces.
fn excerpt(text: &str) -> String {
    let one_line: String = text
        .chars()
        .take(100)
        .map(|c| if is_unsafe_on_a_terminal(c) { ' ' } else { c })
        .collect();
    let cut = if text.chars().nth(100).is_some() {
        "…"
    } else {
        ""
    };
    format!("{one_line}{cut}")
}

/// A progress bar on stderr when it is a terminal (none when piped), over
/// `len` bytes of a file, or a counter of messages when `len` is unknown.
fn progress(len: Option<u64>) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = match len {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg} ({eta} left)")
                .ok()?,
        ),
        None => ProgressBar::new_spinner()
            .with_style(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").ok()?),
    };
    Some(bar)
}

/// One line of an `--input` file: the `rules test -` format, with an
/// optional `platform` and `written_at` (RFC 3339 or Unix ms). Any other
/// key is an error: a misspelled `chanel` would otherwise replay the
/// message on the wrong channel without a word.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLine<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    text: Cow<'a, str>,
    #[serde(default)]
    channel: Option<Channel>,
    #[serde(default)]
    platform: Option<Platform>,
    #[serde(borrow, default)]
    written_at: Option<&'a RawValue>,
    /// The keys only `rules test` reads, accepted so that one file serves
    /// both commands, and held to the types `rules test` holds them to.
    #[serde(default, borrow, rename = "author")]
    _author: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "name")]
    _name: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "lang")]
    _lang: Option<Cow<'a, str>>,
}

/// Replays a JSON-lines file: read in blocks of whole lines, which
/// `threads` workers route; the text is borrowed from the block unless it
/// has escapes.
fn replay_file<W: Write>(path: &Path, threads: usize, replay: &mut Replay<'_, W>) -> Result<()> {
    let file = std::fs::File::open(path).with_context(|| {
        format!(
            "cannot open {}: check the path given to --input",
            path.display()
        )
    })?;
    let bar = progress(file.metadata().ok().map(|m| m.len()));
    let settings = replay.settings;
    let mut read = 0u64;
    parallel::ordered(
        threads,
        |sink| {
            parallel::read_lines(file, sink, |_| {})
                .with_context(|| format!("reading {}", path.display()))
        },
        |lines| replay_lines(settings, path, &lines),
        |block: Block<'_>| {
            read += block.bytes;
            replay.take(block)?;
            if let Some(bar) = &bar {
                bar.set_position(read);
                bar.set_message(format!("{} messages", replay.tally.messages));
            }
            Ok(())
        },
    )?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(())
}

/// Routes a block of an `--input` file; the first line that is not a
/// message stops it, naming the line.
fn replay_lines<'r>(settings: &Settings<'r>, path: &Path, lines: &Lines) -> Block<'r> {
    let mut block = Block::new();
    block.bytes = lines.bytes.len() as u64;
    for (n, line) in lines.iter() {
        if let Err(e) = replay_line(settings, path, n, line, &mut block) {
            block.failed = Some(e);
            break;
        }
    }
    block
}

/// Routes line `n` of an `--input` file into `block`.
fn replay_line<'r>(
    settings: &Settings<'r>,
    path: &Path,
    n: u64,
    line: &[u8],
    block: &mut Block<'r>,
) -> Result<()> {
    let not_a_message = || {
        format!(
            "{}: line {n} is not a message: expected {{\"id\": …, \"text\": \"…\", \"channel\": \"mention|dm|search\"}}",
            path.display()
        )
    };
    let line = simdutf8::basic::from_utf8(line)
        .map_err(|_| anyhow!("the line is not UTF-8 text"))
        .with_context(not_a_message)?;
    if line.trim().is_empty() {
        return Ok(());
    }
    let m: FileLine<'_> = parallel::object_line(line).with_context(not_a_message)?;
    let id =
        m.id.map_or_else(|| Cow::Owned(format!("line {n}")), raw_text);
    let written_at = match m.written_at {
        Some(raw) => Some(time_of(raw).ok_or_else(|| {
            anyhow!(
                "{}: line {n}: written_at must be RFC 3339 or Unix milliseconds",
                path.display()
            )
        })?),
        // Left out, it would be a message of unknown age counted or
        // dropped without a word; kept, the preview would not be of the
        // period asked for.
        None if settings.since.is_some() => bail!(
            "{}: line {n} has no written_at, which --since needs to tell its age: add one (RFC 3339 or Unix milliseconds) to every line, or drop --since",
            path.display()
        ),
        None => None,
    };
    let message = Message {
        id: &id,
        text: &m.text,
        channel: m.channel.unwrap_or(Channel::Mention),
        platform: m.platform,
        written_at,
    };
    block.tally.feed(settings, message, &mut block.json);
    Ok(())
}

/// A JSON value as text: a string without its quotes (borrowed when it has
/// no escapes), anything else (a number id) as written.
fn raw_text(raw: &RawValue) -> Cow<'_, str> {
    let s = raw.get();
    match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) if !inner.contains('\\') => Cow::Borrowed(inner),
        Some(_) => serde_json::from_str::<String>(s).map_or(Cow::Borrowed(s), Cow::Owned),
        None => Cow::Borrowed(s),
    }
}

/// `written_at` of a file line: RFC 3339 text or Unix milliseconds.
fn time_of(raw: &RawValue) -> Option<Millis> {
    if raw.get().starts_with('"') {
        parse_rfc3339(&raw_text(raw))
    } else {
        raw.get().parse().ok()
    }
}

/// A message of the database, as read, for a routing thread.
struct Row {
    id: String,
    text: String,
    channel: String,
    platform: String,
    written_at: Millis,
}

/// Replays the configured database's `messages` table, streamed: one
/// thread reads it with a cursor, `threads` workers route blocks of rows.
fn replay_database<W: Write>(
    url: &str,
    since: Option<Millis>,
    threads: usize,
    replay: &mut Replay<'_, W>,
) -> Result<()> {
    let bar = progress(None);
    let settings = replay.settings;
    parallel::ordered(
        threads,
        |sink| read_database(url, since, sink),
        |rows| replay_rows(settings, rows),
        |block: Block<'_>| {
            replay.take(block)?;
            if let Some(bar) = &bar {
                bar.set_message(format!("{} messages", replay.tally.messages));
                bar.tick();
            }
            Ok(())
        },
    )?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(())
}

/// Reads the messages written since `since`, in the order they were
/// stored, and hands them on in blocks.
fn read_database(
    url: &str,
    since: Option<Millis>,
    sink: &mut dyn FnMut(Vec<Row>) -> bool,
) -> Result<()> {
    block_on_here(LogFormat::Text, "warn", async {
        let store = Store::open_existing(url).await?;
        let mut rows = Vec::with_capacity(ROWS_PER_BLOCK);
        let mut open = true;
        messages::for_each_written_since(&store, since.unwrap_or(i64::MIN), |r| {
            if r.text_was_not_utf8 {
                eprintln!(
                    "warning: message {} ({}): its stored text is not UTF-8; replayed with U+FFFD in place of the bytes that are not",
                    escape_for_terminal(r.id),
                    escape_for_terminal(r.platform)
                );
            }
            rows.push(Row {
                id: r.id.to_owned(),
                text: r.text.to_owned(),
                channel: r.channel.to_owned(),
                platform: r.platform.to_owned(),
                written_at: r.written_at,
            });
            if rows.len() == ROWS_PER_BLOCK {
                open = sink(std::mem::replace(
                    &mut rows,
                    Vec::with_capacity(ROWS_PER_BLOCK),
                ));
            }
            open
        })
        .await?;
        if open && !rows.is_empty() {
            sink(rows);
        }
        Ok(())
    })
}

/// Routes a block of the database's messages; a row whose channel is
/// unknown stops it.
fn replay_rows<'r>(settings: &Settings<'r>, rows: Vec<Row>) -> Block<'r> {
    let mut block = Block::new();
    for r in &rows {
        let channel = match r.channel.parse::<Channel>() {
            Ok(channel) => channel,
            Err(e) => {
                block.failed = Some(anyhow!("message {}: {e}", r.id));
                break;
            }
        };
        let message = Message {
            id: &r.id,
            text: &r.text,
            channel,
            platform: r.platform.parse().ok(),
            written_at: Some(r.written_at),
        };
        block.tally.feed(settings, message, &mut block.json);
    }
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_into_durations() {
        assert_eq!("30d".parse(), Ok(Since(Duration::from_secs(30 * 86_400))));
        assert_eq!("12h".parse(), Ok(Since(Duration::from_secs(12 * 3_600))));
        assert_eq!("2w".parse(), Ok(Since(Duration::from_secs(14 * 86_400))));
        assert!("soon".parse::<Since>().is_err());
        assert!("3y".parse::<Since>().is_err());
    }

    #[test]
    fn a_day_holds_the_burst_and_what_refills() {
        let b = |replies, per_secs| Budget { replies, per_secs };
        // 60 at 00:00:00, then one every 15 s from 00:00:15 to 23:59:45.
        assert_eq!(daily(b(60, 900)), 60 + 5_759);
        assert_eq!(daily(b(1, 86_401)), 1, "one reply is always within");
        assert_eq!(daily(b(1, 86_400)), 1, "the next one is the next day's");
        assert_eq!(daily(b(72, 86_400)), 72 + 71);
        assert_eq!(daily(b(7, 1_000)), 7 + 604);
        assert_eq!(daily(b(0, 900)), 0);
        assert_eq!(daily(b(u32::MAX, 1)), u64::from(u32::MAX) * 86_401 - 1);
    }

    #[test]
    fn changes_are_named_by_rule_then_action() {
        let r = |rule, action| Route { rule, action };
        assert_eq!(
            change_label(r(Some("refund"), "reply"), r(Some("billing-late"), "reply")),
            "refund → billing-late"
        );
        assert_eq!(
            change_label(r(Some("refund"), "reply"), r(Some("refund"), "escalate")),
            "refund: reply → escalate"
        );
        assert_eq!(
            change_label(r(Some("refund"), "reply"), r(None, "none")),
            "refund → (unmatched) (reply → none)"
        );
    }

    #[test]
    fn ids_and_times_are_read_from_raw_json() {
        fn raw(s: &str) -> &RawValue {
            serde_json::from_str(s).unwrap()
        }
        assert_eq!(raw_text(raw("\"a1\"")), "a1");
        assert_eq!(raw_text(raw("42")), "42");
        assert_eq!(raw_text(raw("\"a\\\"b\"")), "a\"b");
        assert_eq!(time_of(raw("1000")), Some(1000));
        assert_eq!(time_of(raw("\"1970-01-01T00:00:01Z\"")), Some(1000));
    }
}
