//! The rules engine: rule files in, routing decisions out.
//!
//! Support teams write `rules/*.toml` (the contract is `docs/rules.md`).
//! [`RuleSet::load_dir`] turns a folder into a checked, compiled rule set, or
//! into a [`RulesError`] that lists every problem with its file, line and
//! column. [`RuleSet::route`] decides what happens to one message; it does no
//! IO and cannot fail: every rule error surfaces at load.
//!
//! Layout:
//! - `normalize`: the text folding shared by keywords and messages;
//! - `matcher`: the one automaton over all keywords;
//! - `template`: reply templates and their placeholders;
//! - `load`: files → [`RuleSet`], with all the checks;
//! - `keys`: the keys a rule table accepts, read from its serde struct;
//! - `diagnostic`: errors that point into files.

mod diagnostic;
mod keys;
pub mod language;
mod load;
mod matcher;
pub mod normalize;
pub mod template;

use std::cell::RefCell;
use std::path::Path;

pub use diagnostic::{Diagnostic, RulesError, SourceFile, line_col};
pub use load::LoadOptions;
pub use template::{Localized, Placeholder, Template, Vars};

use crate::domain::{Channel, ChannelSet, Priority, Queue, RuleId};
use matcher::{Matcher, RawHit};
use normalize::Normalized;

/// One keyword entry as the rule file wrote it.
#[derive(Debug, Clone)]
pub struct Keyword {
    /// As written, without the trailing `*`.
    pub written: String,
    /// A trailing `*`: matches any word that starts with it.
    pub prefix: bool,
    /// The normalised form the automaton searches for.
    pattern: String,
    /// Whether a hit must be followed by a word boundary (false for
    /// prefixes and for keywords that end in punctuation or in a script
    /// written without spaces).
    needs_end_boundary: bool,
}

/// Whether a reply goes out in the same place as the message, or by DM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// Where the message was: a public reply to a mention, a DM to a DM.
    #[default]
    Same,
    /// Always by direct message.
    Dm,
}

/// An escalation to a human agent.
#[derive(Debug, Clone)]
pub struct Escalation {
    /// The queue the ticket lands in.
    pub queue: Queue,
    /// Its priority.
    pub priority: Priority,
    /// What the customer is told, if anything.
    pub ack: Option<Localized>,
    /// What the customer is told instead while the team is away
    /// (`[hours]`); without it, `ack` whatever the hour.
    pub ack_closed: Option<Localized>,
}

impl Escalation {
    /// The acknowledgement to send: `ack_closed` when the team is away and
    /// the rule has one, else `ack`.
    pub fn ack_for(&self, closed: bool) -> Option<&Localized> {
        match (&self.ack_closed, closed) {
            (Some(c), true) => Some(c),
            _ => self.ack.as_ref(),
        }
    }
}

/// What a rule does when it wins.
#[derive(Debug, Clone)]
pub enum Action {
    /// Answer automatically.
    Reply(Localized),
    /// Open (or add to) a ticket.
    Escalate(Escalation),
    /// Record the match and do nothing.
    Ignore,
}

impl Action {
    /// `reply`, `escalate` or `ignore`.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Reply(_) => "reply",
            Action::Escalate(_) => "escalate",
            Action::Ignore => "ignore",
        }
    }
}

/// One rule, checked and compiled.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Unique id.
    pub id: RuleId,
    /// What it is for, for people.
    pub description: String,
    /// Any of these triggers the rule.
    pub keywords: Vec<Keyword>,
    /// All of these must match too.
    pub require: Vec<Keyword>,
    /// At least one of these must match too, unless the list is empty.
    pub require_any: Vec<Keyword>,
    /// None of these may match.
    pub exclude: Vec<Keyword>,
    /// Where the rule applies.
    pub channels: ChannelSet,
    /// Higher wins.
    pub priority: i64,
    /// What it does.
    pub action: Action,
    /// Where a reply goes.
    pub via: Via,
    /// What its customers are told during an incident, and when it ends.
    pub incident: IncidentTexts,
    /// Messages that must route to this rule.
    pub examples: Vec<String>,
    /// Messages that must not.
    pub not_examples: Vec<String>,
    /// The file that defines it.
    pub file: String,
    /// Its line in that file.
    pub line: usize,
}

/// A rule's `incident_reply` and `incident_resolved`. A rule with either
/// is watched for surges (`application::incidents`); one with neither
/// never opens an incident.
#[derive(Debug, Clone, Default)]
pub struct IncidentTexts {
    /// Sent once to each customer who writes while the incident is open,
    /// instead of the rule's usual action.
    pub reply: Option<Localized>,
    /// Sent once to each customer of the incident when an agent closes it.
    pub resolved: Option<Localized>,
}

impl IncidentTexts {
    /// Whether the rule is watched for surges.
    pub fn watched(&self) -> bool {
        self.reply.is_some() || self.resolved.is_some()
    }
}

/// What happens when no rule matches.
#[derive(Debug, Clone)]
pub enum DefaultAction {
    /// Open a ticket.
    Escalate(Escalation),
    /// Record and leave alone.
    Ignore,
}

/// Which list of a rule a keyword entry belongs to, or `Signal`: an
/// entry of a `[signals]` list (the use's `rule` is then the signal's
/// index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Keyword,
    Require,
    RequireAny,
    Exclude,
    Signal,
}

/// A `[signals]` list: words that say a customer is about to leave, or
/// worse, matched like keywords in the same automaton as the rules.
#[derive(Debug, Clone)]
pub struct Signal {
    /// Its name, as `tickets list --signal` and the ticket's note say it.
    pub name: crate::domain::SignalName,
    /// Its entries, with the keywords' semantics.
    pub keywords: Vec<Keyword>,
}

/// A signal a message carries: the first of its entries in the message.
#[derive(Debug, Clone)]
pub struct SignalHit<'r> {
    /// The signal.
    pub signal: &'r Signal,
    /// The entry that matched.
    pub keyword: &'r Keyword,
    /// Its byte span in the original message, `[start, end)`.
    pub span: (usize, usize),
}

/// One use of an automaton pattern by a rule.
#[derive(Debug, Clone, Copy)]
struct Use {
    rule: u32,
    role: Role,
    index: u16,
}

/// A checked, compiled rule set. Cheap to share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<Rule>,
    default: Option<DefaultAction>,
    signals: Vec<Signal>,
    /// Where a message that matches no rule but carries a signal goes
    /// when the `[default]` does not escalate: queue `signals`.
    signal_fallback: Escalation,
    matcher: Matcher,
    /// For each automaton pattern, the rule entries that use it.
    uses: Vec<Vec<Use>>,
    stats: Stats,
}

/// Counts for the one-line summary of `rules check`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Files read.
    pub files: usize,
    /// Rules loaded.
    pub rules: usize,
    /// Keyword entries (keywords, require, require_any and exclude).
    pub keywords: usize,
    /// Distinct patterns in the automaton.
    pub patterns: usize,
    /// Examples and not-examples checked.
    pub examples: usize,
}

/// Why a rule that matched a keyword did not win.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoseReason {
    /// The message came on a channel the rule does not serve.
    Channel {
        /// The message's channel.
        channel: Channel,
        /// The rule's channels.
        allowed: ChannelSet,
    },
    /// A `require` entry is missing from the message.
    MissingRequire(String),
    /// No `require_any` entry is in the message.
    NoneOfRequireAny(Vec<String>),
    /// An `exclude` entry is in the message.
    Excluded {
        /// The exclude entry.
        keyword: String,
        /// Where, in the original text.
        span: (usize, usize),
    },
    /// Another eligible rule has a higher priority.
    LowerPriority {
        /// The winner.
        winner: RuleId,
        /// This rule's priority.
        mine: i64,
        /// The winner's priority.
        theirs: i64,
    },
    /// Same priority as the winner, which comes earlier in file order.
    LaterInFileOrder {
        /// The winner.
        winner: RuleId,
    },
}

impl std::fmt::Display for LoseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoseReason::Channel { channel, allowed } => {
                write!(
                    f,
                    "channel {channel} is not one of its channels ({allowed})"
                )
            }
            LoseReason::MissingRequire(k) => write!(f, "required `{k}` is not in the message"),
            LoseReason::NoneOfRequireAny(entries) => {
                write!(f, "none of `require_any` matched (")?;
                for (i, k) in entries.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}`{k}`")?;
                }
                write!(f, ")")
            }
            LoseReason::Excluded { keyword, span } => {
                write!(f, "excluded by `{keyword}` at {}..{}", span.0, span.1)
            }
            LoseReason::LowerPriority {
                winner,
                mine,
                theirs,
            } => write!(f, "priority {mine} is lower than {theirs} of `{winner}`"),
            LoseReason::LaterInFileOrder { winner } => {
                write!(
                    f,
                    "same priority as `{winner}`, which comes first in file order"
                )
            }
        }
    }
}

/// The rule that won, and the evidence.
#[derive(Debug, Clone)]
pub struct Winner<'r> {
    /// The rule.
    pub rule: &'r Rule,
    /// The keyword that triggered it (the earliest in the message).
    pub keyword: &'r Keyword,
    /// The keyword's byte span in the original message, `[start, end)`.
    pub span: (usize, usize),
}

/// A rule that matched a keyword but lost.
#[derive(Debug, Clone)]
pub struct Loser<'r> {
    /// The rule.
    pub rule: &'r Rule,
    /// Why.
    pub reason: LoseReason,
}

/// The routing of one message, explained.
#[derive(Debug, Clone)]
pub struct Decision<'r> {
    /// The winning rule, if any matched.
    pub winner: Option<Winner<'r>>,
    /// The `[default]`, when no rule won and there is one.
    pub default: Option<&'r DefaultAction>,
    /// Every other rule that matched a keyword, and why it lost.
    pub losers: Vec<Loser<'r>>,
    /// The `[signals]` the message carries, in the order of `[signals]`.
    pub signals: Vec<SignalHit<'r>>,
    /// When no rule won but the message carries a signal: the escalation
    /// it gets instead of the `[default]`'s action.
    pub signal_escalation: Option<&'r Escalation>,
    /// When no rule won: the escalation a signal would give it (the
    /// `[default]`'s, else queue `signals`), for the signals the caller
    /// finds itself (repeated contact).
    pub unmatched_escalation: Option<&'r Escalation>,
}

/// What a decision asks for, whichever rule or default produced it.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'r> {
    /// Reply with this text (one per language, perhaps).
    Reply(&'r Localized, Via),
    /// Escalate, with the ack's delivery route.
    Escalate(&'r Escalation, Via),
    /// Record only.
    Ignore,
    /// Nothing matched and there is no default.
    None,
}

impl Outcome<'_> {
    /// `reply`, `escalate`, `ignore` or `none`.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Reply(..) => "reply",
            Outcome::Escalate(..) => "escalate",
            Outcome::Ignore => "ignore",
            Outcome::None => "none",
        }
    }
}

impl<'r> Decision<'r> {
    /// The id of the winning rule.
    pub fn rule_id(&self) -> Option<&'r RuleId> {
        self.winner.as_ref().map(|w| &w.rule.id)
    }

    /// The priority of the ticket escalation `e` opens for this message:
    /// one step up when the message carries a signal.
    pub fn priority_of(&self, e: &Escalation) -> Priority {
        if self.signals.is_empty() {
            e.priority
        } else {
            e.priority.raised()
        }
    }

    /// What to do.
    pub fn outcome(&self) -> Outcome<'r> {
        if let Some(w) = &self.winner {
            return match &w.rule.action {
                Action::Reply(t) => Outcome::Reply(t, w.rule.via),
                Action::Escalate(e) => Outcome::Escalate(e, w.rule.via),
                Action::Ignore => Outcome::Ignore,
            };
        }
        if let Some(e) = self.signal_escalation {
            return Outcome::Escalate(e, Via::Same);
        }
        match self.default {
            Some(DefaultAction::Escalate(e)) => Outcome::Escalate(e, Via::Same),
            Some(DefaultAction::Ignore) => Outcome::Ignore,
            None => Outcome::None,
        }
    }
}

/// A signal's earliest entry in a message, while routing: (signal,
/// entry, start, end) in the normalised text.
type SignalSeen = (u32, u16, u32, u32);

/// Per-message state of one rule touched by a hit.
#[derive(Debug, Clone, Copy)]
struct Touched {
    rule: u32,
    keyword: Option<(u16, u32, u32)>,
    required: u64,
    /// Whether some `require_any` entry matched.
    any_required: bool,
    excluded: Option<(u16, u32, u32)>,
}

/// A routing's buffers: the normalised text, the automaton's hits, the
/// rules they touch and the signals they carry.
type Scratch = (Normalized, Vec<RawHit>, Vec<Touched>, Vec<SignalSeen>);

thread_local! {
    /// Buffers reused across messages so routing allocates little.
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

impl RuleSet {
    /// Loads every `.toml` file of `dir`, in name order.
    pub fn load_dir(dir: &Path, opts: &LoadOptions) -> Result<RuleSet, RulesError> {
        load::load_dir(dir, opts)
    }

    /// Loads rule files given in memory (name, text), in the given order.
    pub fn load_sources(files: Vec<SourceFile>, opts: &LoadOptions) -> Result<RuleSet, RulesError> {
        load::load_sources(files, opts)
    }

    /// The rules, in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The `[default]`, if any.
    pub fn default_action(&self) -> Option<&DefaultAction> {
        self.default.as_ref()
    }

    /// Whether a text the set sends (a rule's reply or ack, the
    /// `[default]`'s ack) differs by language, so that the customer's
    /// language must be read. `{opens}` counts: the opening time is
    /// written in the customer's language.
    pub fn has_language_tables(&self) -> bool {
        let ack = |e: &Escalation| {
            e.ack.as_ref().is_some_and(Localized::is_table)
                || e.ack_closed.as_ref().is_some_and(Localized::needs_language)
        };
        self.rules.iter().any(|r| match &r.action {
            Action::Reply(t) => t.is_table(),
            Action::Escalate(e) => ack(e),
            Action::Ignore => false,
        }) || matches!(&self.default, Some(DefaultAction::Escalate(e)) if ack(e))
    }

    /// Counts for summaries.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Bytes of heap used by the automaton.
    pub fn automaton_bytes(&self) -> usize {
        self.matcher.memory_usage()
    }

    /// Routes one message that arrived on `channel`. Deterministic: the same
    /// rules and message always give the same decision.
    pub fn route(&self, text: &str, channel: Channel) -> Decision<'_> {
        SCRATCH.with(|s| {
            let (norm, hits, touched, signals) = &mut *s.borrow_mut();
            // Keeps its map back to the original text as it goes, for the
            // evidence of the decision.
            normalize::normalize_fast_into(text, norm);
            hits.clear();
            touched.clear();
            signals.clear();
            self.matcher.scan(norm, hits);
            self.collect(hits, touched, signals);
            let mut d = self.decide(norm, touched, channel);
            d.signals = self.signal_hits(norm, signals);
            if d.winner.is_none() {
                // Escalated for a signal, as the contract says: as the
                // `[default]` escalates when it does (its queue, its ack),
                // else into queue `signals` with no ack (no rule wrote one).
                d.unmatched_escalation = Some(match self.default.as_ref() {
                    Some(DefaultAction::Escalate(e)) => e,
                    _ => &self.signal_fallback,
                });
                if !d.signals.is_empty() {
                    d.signal_escalation = d.unmatched_escalation;
                }
            }
            d
        })
    }

    fn collect(&self, hits: &[RawHit], touched: &mut Vec<Touched>, signals: &mut Vec<SignalSeen>) {
        for h in hits {
            for u in &self.uses[h.pattern as usize] {
                if u.role == Role::Signal {
                    let entry = &self.signals[u.rule as usize].keywords[u.index as usize];
                    let seen = signals.iter().any(|s| s.0 == u.rule);
                    if !seen && (!entry.needs_end_boundary || h.ends_at_boundary) {
                        signals.push((u.rule, u.index, h.start, h.end));
                    }
                    continue;
                }
                let rule = &self.rules[u.rule as usize];
                let entry = match u.role {
                    Role::Keyword => &rule.keywords[u.index as usize],
                    Role::Require => &rule.require[u.index as usize],
                    Role::RequireAny => &rule.require_any[u.index as usize],
                    Role::Exclude => &rule.exclude[u.index as usize],
                    Role::Signal => unreachable!("signals are taken above"),
                };
                if entry.needs_end_boundary && !h.ends_at_boundary {
                    continue;
                }
                let t = match touched.iter_mut().find(|t| t.rule == u.rule) {
                    Some(t) => t,
                    None => {
                        touched.push(Touched {
                            rule: u.rule,
                            keyword: None,
                            required: 0,
                            any_required: false,
                            excluded: None,
                        });
                        touched.last_mut().expect("just pushed")
                    }
                };
                let at = Some((u.index, h.start, h.end));
                match u.role {
                    Role::Keyword => t.keyword = t.keyword.or(at),
                    Role::Require => t.required |= 1 << u.index,
                    Role::RequireAny => t.any_required = true,
                    Role::Exclude => t.excluded = t.excluded.or(at),
                    Role::Signal => {}
                }
            }
        }
    }

    /// Picks the winner among the touched rules and says why each other
    /// matched rule lost.
    fn decide<'r>(
        &'r self,
        norm: &Normalized,
        touched: &[Touched],
        channel: Channel,
    ) -> Decision<'r> {
        let mut eligible: Vec<(&Touched, &Rule)> = Vec::new();
        let mut losers = Vec::new();
        let mut matched: Vec<&Touched> = touched.iter().filter(|t| t.keyword.is_some()).collect();
        matched.sort_by_key(|t| t.rule);
        for t in matched {
            let rule = &self.rules[t.rule as usize];
            match rule.ineligible(t, channel, norm) {
                Some(reason) => losers.push((t.rule, Loser { rule, reason })),
                None => eligible.push((t, rule)),
            }
        }
        // Highest priority wins, then file order (rules are stored in file order).
        let best = eligible
            .iter()
            .copied()
            .max_by(|(ta, a), (tb, b)| a.priority.cmp(&b.priority).then(tb.rule.cmp(&ta.rule)));
        let winner = best.map(|(t, rule)| Winner::of(rule, t, norm));
        if let Some(w) = &winner {
            losers.extend(outranked(&eligible, w));
        }
        losers.sort_by_key(|(index, _)| *index);
        Decision {
            default: if winner.is_none() {
                self.default.as_ref()
            } else {
                None
            },
            winner,
            losers: losers.into_iter().map(|(_, l)| l).collect(),
            signals: Vec::new(),
            signal_escalation: None,
            unmatched_escalation: None,
        }
    }

    /// The signals seen, in `[signals]` order, each with its span in the
    /// original message (a prefix entry's stretched to the word's end).
    fn signal_hits<'r>(&'r self, norm: &Normalized, seen: &mut [SignalSeen]) -> Vec<SignalHit<'r>> {
        seen.sort_unstable_by_key(|s| s.0);
        seen.iter()
            .map(|&(s, k, start, end)| {
                let signal = &self.signals[s as usize];
                let keyword = &signal.keywords[k as usize];
                SignalHit {
                    signal,
                    keyword,
                    span: keyword.span_in(norm, start, end),
                }
            })
            .collect()
    }

    /// The `[signals]` lists, in file order.
    pub fn signals(&self) -> &[Signal] {
        &self.signals
    }
}

impl Rule {
    /// Why this rule, which matched a keyword, cannot win on `channel`:
    /// the channel, then an exclude entry, then a missing require entry,
    /// then no require_any entry.
    fn ineligible(&self, t: &Touched, channel: Channel, norm: &Normalized) -> Option<LoseReason> {
        let all_required = 1u64
            .checked_shl(self.require.len() as u32)
            .unwrap_or(0)
            .wrapping_sub(1);
        if !self.channels.contains(channel) {
            Some(LoseReason::Channel {
                channel,
                allowed: self.channels,
            })
        } else if let Some((i, s, e)) = t.excluded {
            Some(LoseReason::Excluded {
                keyword: self.exclude[i as usize].written.clone(),
                span: norm.original_span(s as usize, e as usize),
            })
        } else if t.required & all_required != all_required {
            let missing = (0..self.require.len())
                .find(|i| t.required & (1 << i) == 0)
                .expect("some require is missing");
            Some(LoseReason::MissingRequire(
                self.require[missing].written.clone(),
            ))
        } else if !self.require_any.is_empty() && !t.any_required {
            Some(LoseReason::NoneOfRequireAny(
                self.require_any.iter().map(|k| k.written.clone()).collect(),
            ))
        } else {
            None
        }
    }
}

impl Keyword {
    /// The span in the original message of this keyword's hit at
    /// `start..end` of the normalised text: a prefix keyword's stretches to
    /// the end of the word it begins.
    fn span_in(&self, norm: &Normalized, start: u32, end: u32) -> (usize, usize) {
        let end = if self.prefix {
            norm.word_end(end as usize)
        } else {
            end as usize
        };
        norm.original_span(start as usize, end)
    }
}

impl<'r> Winner<'r> {
    /// The evidence for `rule`: its earliest keyword, whose span a prefix
    /// keyword stretches to the end of the word it begins.
    fn of(rule: &'r Rule, t: &Touched, norm: &Normalized) -> Self {
        let (k, s, e) = t.keyword.expect("eligible rules matched a keyword");
        let keyword = &rule.keywords[k as usize];
        Winner {
            rule,
            keyword,
            span: keyword.span_in(norm, s, e),
        }
    }
}

/// The eligible rules other than the winner, each with why it lost to it.
fn outranked<'r>(
    eligible: &[(&Touched, &'r Rule)],
    w: &Winner<'r>,
) -> impl Iterator<Item = (u32, Loser<'r>)> {
    eligible
        .iter()
        .filter(|(_, r)| r.id != w.rule.id)
        .map(|(t, rule)| {
            let reason = if rule.priority < w.rule.priority {
                LoseReason::LowerPriority {
                    winner: w.rule.id.clone(),
                    mine: rule.priority,
                    theirs: w.rule.priority,
                }
            } else {
                LoseReason::LaterInFileOrder {
                    winner: w.rule.id.clone(),
                }
            };
            (t.rule, Loser { rule, reason })
        })
}
