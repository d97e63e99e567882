//! `helpdesk rules check` and `helpdesk rules test`: the commands that only
//! read rule files, for writing rules before the bot runs them.

use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use crate::commands::args::{Json, RulesFolder, Threads, adjust};
use crate::commands::output::escape_for_terminal;
use crate::commands::parallel;
use crate::domain::Channel;
use crate::domain::clock::{Clock, Millis, parse_rfc3339};
use crate::domain::hours::BusinessHours;
use crate::domain::language::{Lang, LocalizedText};
use crate::domain::money::Usd;
use crate::platforms::ReplyKind;
use crate::platforms::x::config::XPrices;
use crate::platforms::x::cost::{Unit, reply_price};
use crate::rules::language::{Detected, Detector};
use crate::rules::{
    Action, Decision, Escalation, LoadOptions, Localized, Loser, Outcome, Placeholder, Rule,
    RuleSet, SignalHit, Vars, Via,
};
use crate::runtime::config::Config;

/// `helpdesk rules …`
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Load every rule file, run every example; exit 1 with every error.
    Check {
        /// Where the rules are.
        #[command(flatten)]
        rules: RulesFolder,
        /// The settings of a configuration to apply (`--config`).
        #[command(flatten)]
        prices: WithConfig,
    },
    /// Show which rule a message routes to, and why the others lost.
    Test(TestArgs),
    /// Preview a rule change on recorded messages; exit 0 unchanged, 1 changed, 2 error.
    Replay(crate::commands::replay::ReplayArgs),
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
    /// The settings of a configuration to apply (`--config`).
    #[command(flatten)]
    pub prices: WithConfig,
    /// How many threads route `-`'s lines.
    #[command(flatten)]
    pub threads: Threads,
    /// Try the message at this moment (RFC 3339, such as 2026-12-05T23:00:00+01:00) instead of now: with --config's [hours], the closed-hours ack applies when the team is away
    #[arg(long, value_name = "TIME", value_parser = parse_at)]
    pub at: Option<Millis>,
}

/// `--at`'s value.
fn parse_at(s: &str) -> Result<Millis, String> {
    parse_rfc3339(s).ok_or_else(|| {
        format!("`{s}` is not an RFC 3339 time: write it as 2026-12-05T23:00:00+01:00 (or with Z for UTC)")
    })
}

/// `--config`: the configuration whose settings the rules commands apply:
/// `[x.prices]` to price X's replies (X's published prices without it),
/// `[replies] signature` at the end of every automatic reply,
/// `[language] default`, and `[hours]` for the closed-hours ack.
#[derive(Debug, Clone, Args)]
pub struct WithConfig {
    /// A configuration file whose [x.prices], [replies], [language] and [hours] apply (default: X's published prices, no signature, always open)
    #[arg(long = "config", value_name = "CONFIG")]
    pub config: Option<PathBuf>,
}

/// What a configuration changes for the rules commands.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// `[x.prices]`.
    pub prices: XPrices,
    /// `[replies] signature`.
    pub signature: Option<LocalizedText>,
    /// `[language] default`.
    pub default_lang: Option<Lang>,
    /// Whether each message's language is read: for one message, when a
    /// configuration is given, or when a text differs by language. Not
    /// for every line otherwise: reading a language costs some 0.1 ms, a
    /// hundred times routing.
    pub detect: bool,
    /// `[hours]`.
    pub hours: Option<BusinessHours>,
    /// When the team opens next, if it is away at the moment tried
    /// (`--at`, else now): the closed-hours ack applies.
    pub opens: Option<Millis>,
}

impl Applied {
    /// Tries the messages at `at`: with `[hours]`, the team may be away.
    pub fn at(&mut self, at: Millis) {
        self.opens = self.hours.as_ref().and_then(|h| h.opens_after(at));
    }

    /// The acknowledgement an escalation sends at the moment tried.
    fn ack<'e>(&self, e: &'e Escalation) -> Option<&'e Localized> {
        e.ack_for(self.opens.is_some())
    }

    /// The rules' load options: the signature counts in the length check.
    fn load_options(&self) -> LoadOptions {
        LoadOptions {
            signature: self.signature.clone(),
            ..LoadOptions::default()
        }
    }

    /// The language of `message`, when it is read (see [`Applied::detect`]).
    fn hear(&self, message: &str, tag: Option<Lang>) -> Option<Detected> {
        self.detect.then(|| Detector::shared().detect(message, tag))
    }

    /// `text`, rendered into `out` (cleared first) in the language `lang`
    /// (else `[language] default`) and signed, as the bot sends an
    /// automatic reply; returns the language of the text chosen (`None`
    /// for a text that does not differ by language).
    fn render_into(
        &self,
        text: &Localized,
        vars: &Vars<'_>,
        lang: Option<Lang>,
        out: &mut String,
    ) -> Option<Lang> {
        out.clear();
        let (template, chosen) = text.pick(lang, self.default_lang);
        let closed = self.hours.as_ref().zip(self.opens);
        let opens = template.opens(closed, (chosen, lang, self.default_lang));
        let vars = Vars {
            opens: opens.as_deref(),
            ..*vars
        };
        template.render_into(&vars, out);
        if let Some(s) = &self.signature {
            out.push_str(s.pick(lang, self.default_lang));
        }
        chosen
    }

    /// [`Self::render_into`] into a new string.
    fn render(&self, text: &Localized, vars: &Vars<'_>, lang: Option<Lang>) -> String {
        let mut out = String::new();
        self.render_into(text, vars, lang, &mut out);
        out
    }

    /// Turns detection on when a text of `set` or the signature differs
    /// by language.
    fn listen_for(&mut self, set: &RuleSet) {
        self.detect |= set.has_language_tables()
            || self.signature.as_ref().is_some_and(LocalizedText::is_table);
    }
}

impl WithConfig {
    /// The configuration's settings, or the defaults without one.
    pub fn load(&self) -> Result<Applied> {
        let Some(path) = &self.config else {
            return Ok(Applied::default());
        };
        let config = Config::load(path, false)?;
        Ok(Applied {
            prices: config.x.map(|x| x.prices).unwrap_or_default(),
            signature: config.replies.signature,
            default_lang: config.language.default,
            detect: true,
            hours: config.hours,
            opens: None,
        })
    }
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
        RulesCommand::Check { rules, prices } => check(&rules.path, &prices.load()?),
        RulesCommand::Test(args) => test(&args),
        RulesCommand::Replay(args) => crate::commands::replay::execute(&args),
    }
}

/// The ticket reference shown in rendered acks when no ticket exists yet.
const SAMPLE_TICKET: &str = "T-1000";

fn check(dir: &Path, applied: &Applied) -> Result<i32> {
    Ok(match RuleSet::load_dir(dir, &applied.load_options()) {
        Ok(set) => {
            let s = set.stats();
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
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
            for line in set.rules().iter().flat_map(|r| x_cost_lines(r, applied)) {
                writeln!(out, "{line}")?;
            }
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
    let mut applied = args.prices.load()?;
    let opts = LoadOptions {
        // A large file's check takes as many threads as the routing.
        threads: std::num::NonZeroUsize::new(args.threads.get()),
        ..applied.load_options()
    };
    let set = match RuleSet::load_dir(&args.rules.path, &opts) {
        Ok(set) => set,
        Err(e) => {
            eprint!("{}", e.render());
            return Ok(1);
        }
    };
    applied.listen_for(&set);
    applied.detect |= args.text != "-";
    let vars = Vars {
        author: args.author.trim_start_matches('@'),
        name: &args.name,
        ticket: Some(SAMPLE_TICKET),
        opens: None,
    };
    applied.at(args.at.unwrap_or_else(|| Clock::new().now_ms()));
    if args.text == "-" {
        return bulk(&set, &vars, &applied, args.threads.get());
    }
    let d = set.route(&args.text, args.channel);
    // Written, not printed: `println!` panics on a closed pipe.
    let mut out = std::io::stdout().lock();
    let heard = applied.hear(&args.text, None);
    if args.json.on {
        let json = decision_json(&d, &vars, args.channel, &applied, heard);
        writeln!(out, "{json}")?;
    } else {
        write!(
            out,
            "{}",
            explain(&d, &args.text, args.channel, &vars, &applied, heard)
        )?;
        let lang = heard.and_then(|h| h.lang);
        if let Some(cost) = reply_cost(&d, &vars, args.channel, &applied, lang) {
            writeln!(out, "cost:    ${cost} on X")?;
        }
    }
    Ok(0)
}

/// The sample customer a rule's reply is rendered for when it is priced.
const SAMPLE: Vars<'static> = Vars {
    author: "customer",
    name: "Customer",
    ticket: Some(SAMPLE_TICKET),
    opens: None,
};

/// What a rule's reply (or acknowledgement) costs on X, where it leaves
/// publicly for a mention or a search hit, and the cheaper form when there
/// is one: a DM, or the reply without its link. One line per language of a
/// language table, since one may hold a link and another not.
fn x_cost_lines(rule: &Rule, applied: &Applied) -> Vec<String> {
    let prices = &applied.prices;
    // Each text the rule may send, named when it is not the usual one.
    let mut texts: Vec<(&Localized, Option<&str>)> = match &rule.action {
        Action::Reply(t) => vec![(t, None)],
        Action::Escalate(e) => [
            (e.ack.as_ref(), None),
            (e.ack_closed.as_ref(), Some("ack_closed")),
        ]
        .into_iter()
        .filter_map(|(t, which)| t.map(|t| (t, which)))
        .collect(),
        Action::Ignore => return Vec::new(),
    };
    let incident = [
        (rule.incident.reply.as_ref(), "incident_reply"),
        (rule.incident.resolved.as_ref(), "incident_resolved"),
    ];
    texts.extend(
        incident
            .into_iter()
            .filter_map(|(t, which)| Some((t?, Some(which)))),
    );
    let public = rule.via == Via::Same
        && (rule.channels.contains(Channel::Mention) || rule.channels.contains(Channel::Search));
    texts
        .into_iter()
        .flat_map(|(t, which)| t.variants().into_iter().map(move |v| (v, which)))
        .map(|((lang, template), which)| {
            let worst_opens;
            let sample = if template.uses(Placeholder::Opens) {
                worst_opens = BusinessHours::worst_description();
                Vars {
                    opens: Some(&worst_opens),
                    ..SAMPLE
                }
            } else {
                SAMPLE
            };
            let mut text = template.render(&sample);
            if let Some(s) = &applied.signature {
                text.push_str(s.pick(lang, applied.default_lang));
            }
            let what = match (lang, which) {
                (None, None) => String::new(),
                (Some(l), None) => format!(" ({l})"),
                (None, Some(w)) => format!(" ({w})"),
                (Some(l), Some(w)) => format!(" ({w}, {l})"),
            };
            let at = format!("{}:{}: {}{what}", rule.file, rule.line, rule.id);
            if !public {
                let dm = reply_price(prices, ReplyKind::Dm, &text);
                return format!("{at}: costs ${dm} per reply on X (a DM)");
            }
            let price = reply_price(prices, ReplyKind::Public, &text);
            let mut line = format!("{at}: costs ${price} per public reply on X");
            if Unit::of_reply(ReplyKind::Public, &text) == Unit::ContentCreateWithUrl {
                let dm = prices.dm_interaction_create;
                let plain = prices.content_create;
                line.push_str(&format!(
                    " (it has a link); cheaper: `via = \"dm\"` (${dm}), or the link left out (${plain})"
                ));
            }
            line
        })
        .collect()
}

/// What the reply of a routing costs on X (`None`: no reply): a DM when
/// the rule says so or the message was one, else a public post.
fn reply_cost(
    d: &Decision<'_>,
    vars: &Vars<'_>,
    channel: Channel,
    applied: &Applied,
    lang: Option<Lang>,
) -> Option<Usd> {
    let (text, via) = match d.outcome() {
        Outcome::Reply(t, via) => (applied.render(t, vars, lang), via),
        Outcome::Escalate(e, via) => (applied.render(applied.ack(e)?, vars, lang), via),
        Outcome::Ignore | Outcome::None => return None,
    };
    let kind = if via == Via::Dm || channel == Channel::Dm {
        ReplyKind::Dm
    } else {
        ReplyKind::Public
    };
    Some(reply_price(&applied.prices, kind, &text))
}

/// The JSON result of one routing, as `rules test --json` prints it, with
/// what its reply costs on X (`x_cost_usd`, `null` without a reply) and
/// the message's language as `heard` (`null`s when it was not read).
pub fn decision_json(
    d: &Decision<'_>,
    vars: &Vars<'_>,
    channel: Channel,
    applied: &Applied,
    heard: Option<Detected>,
) -> serde_json::Value {
    let mut reply = String::new();
    serde_json::to_value(Routed::new(d, vars, channel, applied, heard, &mut reply))
        .expect("a routing is plain strings and numbers")
}

/// One routing as JSON, borrowed from the decision and a reply buffer the
/// caller reuses: written straight to the output, no `serde_json::Value`
/// in between. The fields are in the order `serde_json::Value`'s sorted
/// map printed them, which the output of `rules test --json` keeps.
#[derive(serde::Serialize)]
struct Routed<'a> {
    action: &'static str,
    keyword: Option<&'a str>,
    /// The message's language, `null` when unsure (the default applies);
    /// absent when not read (see [`Applied::detect`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    language: Option<Option<Lang>>,
    /// The detector's confidence in its best guess, 0 to 1; absent when
    /// the language was not read.
    #[serde(skip_serializing_if = "Option::is_none")]
    language_confidence: Option<f64>,
    losers: Losers<'a>,
    priority: Option<&'a str>,
    queue: Option<&'a str>,
    reply: Option<&'a str>,
    /// The language of the text chosen from a language table; absent for
    /// a text that does not differ by language.
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_language: Option<Lang>,
    rule: Option<&'a str>,
    /// The `[signals]` the message carries; absent when none.
    #[serde(skip_serializing_if = "Signals::is_empty")]
    signals: Signals<'a>,
    span: Option<[usize; 2]>,
    via: Option<Via>,
    x_cost_usd: Option<f64>,
}

impl<'a> Routed<'a> {
    /// The routing `d`; its reply (or acknowledgement) is rendered into
    /// `reply`, cleared first, and priced on X once.
    fn new(
        d: &'a Decision<'a>,
        vars: &Vars<'_>,
        channel: Channel,
        applied: &Applied,
        heard: Option<Detected>,
        reply: &'a mut String,
    ) -> Self {
        reply.clear();
        let lang = heard.and_then(|h| h.lang);
        let mut reply_language = None;
        let outcome = d.outcome();
        let (template, via, queue, priority) = match outcome {
            Outcome::Reply(t, via) => (Some(t), Some(via), None, None),
            Outcome::Escalate(e, via) => (
                applied.ack(e),
                applied.ack(e).map(|_| via),
                Some(e.queue.as_str()),
                Some(d.priority_of(e).as_str()),
            ),
            Outcome::Ignore | Outcome::None => (None, None, None, None),
        };
        let mut cost = None;
        if let (Some(t), Some(via)) = (template, via) {
            reply_language = applied.render_into(t, vars, lang, reply);
            // As `reply_cost`: a DM when the rule says so or the message was one.
            let kind = if via == Via::Dm || channel == Channel::Dm {
                ReplyKind::Dm
            } else {
                ReplyKind::Public
            };
            cost = Some(reply_price(&applied.prices, kind, reply).dollars());
        }
        Routed {
            action: outcome.name(),
            keyword: d.winner.as_ref().map(|w| w.keyword.written.as_str()),
            language: heard.map(|h| h.lang),
            // Three decimals: more says nothing.
            language_confidence: heard.map(|h| (h.confidence * 1000.0).round() / 1000.0),
            losers: Losers(&d.losers),
            priority,
            queue,
            reply: template.map(|_| reply.as_str()),
            reply_language,
            rule: d.rule_id().map(|r| r.as_str()),
            signals: Signals(&d.signals),
            span: d.winner.as_ref().map(|w| [w.span.0, w.span.1]),
            via,
            x_cost_usd: cost,
        }
    }
}

impl Routed<'_> {
    /// Writes the routing as one JSON object, byte for byte as the derived
    /// `Serialize` does (every debug run checks it, in `route_line`), but
    /// with the keys written as they are and each plain string copied
    /// whole: serde_json escapes both a byte at a time, a sixth of a bulk
    /// run's instructions. Lists and languages still go through serde.
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"action\":");
        json_str(out, Some(self.action));
        out.extend_from_slice(b",\"keyword\":");
        json_str(out, self.keyword);
        if let Some(language) = &self.language {
            out.extend_from_slice(b",\"language\":");
            json_value(out, language);
        }
        if let Some(confidence) = &self.language_confidence {
            out.extend_from_slice(b",\"language_confidence\":");
            json_value(out, confidence);
        }
        out.extend_from_slice(b",\"losers\":");
        if self.losers.0.is_empty() {
            out.extend_from_slice(b"[]");
        } else {
            json_value(out, &self.losers);
        }
        out.extend_from_slice(b",\"priority\":");
        json_str(out, self.priority);
        out.extend_from_slice(b",\"queue\":");
        json_str(out, self.queue);
        out.extend_from_slice(b",\"reply\":");
        json_str(out, self.reply);
        if let Some(language) = &self.reply_language {
            out.extend_from_slice(b",\"reply_language\":");
            json_value(out, language);
        }
        out.extend_from_slice(b",\"rule\":");
        json_str(out, self.rule);
        if !self.signals.is_empty() {
            out.extend_from_slice(b",\"signals\":");
            json_value(out, &self.signals);
        }
        out.extend_from_slice(b",\"span\":");
        json_value(out, &self.span);
        out.extend_from_slice(b",\"via\":");
        json_value(out, &self.via);
        out.extend_from_slice(b",\"x_cost_usd\":");
        json_value(out, &self.x_cost_usd);
        out.push(b'}');
    }
}

/// A JSON string, or `null`: copied whole when nothing in it needs an
/// escape (what serde_json escapes: `"`, `\\` and control characters).
fn json_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.extend_from_slice(b"null"),
        Some(s) if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') => {
            out.push(b'"');
            out.extend_from_slice(s.as_bytes());
            out.push(b'"');
        }
        Some(s) => json_value(out, s),
    }
}

/// Any other value, as serde_json writes it.
fn json_value(out: &mut Vec<u8>, v: &(impl serde::Serialize + ?Sized)) {
    serde_json::to_writer(out, v).expect("writing to memory cannot fail");
}

/// The rules that lost, as `[{"reason", "rule"}]`, each reason written
/// from its `Display` without a `String` in between.
struct Losers<'a>(&'a [Loser<'a>]);

impl serde::Serialize for Losers<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeSeq, SerializeStruct};
        struct One<'a>(&'a Loser<'a>);
        impl serde::Serialize for One<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut o = s.serialize_struct("Loser", 2)?;
                o.serialize_field("reason", &Shown(&self.0.reason))?;
                o.serialize_field("rule", self.0.rule.id.as_str())?;
                o.end()
            }
        }
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for l in self.0 {
            seq.serialize_element(&One(l))?;
        }
        seq.end()
    }
}

/// The signals a message carries, as `[{"keyword", "signal", "span"}]`.
struct Signals<'a>(&'a [SignalHit<'a>]);

impl Signals<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl serde::Serialize for Signals<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeSeq, SerializeStruct};
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for h in self.0 {
            struct One<'a>(&'a SignalHit<'a>);
            impl serde::Serialize for One<'_> {
                fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                    let mut o = s.serialize_struct("Signal", 3)?;
                    o.serialize_field("keyword", &self.0.keyword.written)?;
                    o.serialize_field("signal", self.0.signal.name.as_str())?;
                    o.serialize_field("span", &[self.0.span.0, self.0.span.1])?;
                    o.end()
                }
            }
            seq.serialize_element(&One(h))?;
        }
        seq.end()
    }
}

/// A `Display` value serialised as the string it shows.
struct Shown<'a, T: std::fmt::Display>(&'a T);

impl<T: std::fmt::Display> serde::Serialize for Shown<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self.0)
    }
}

/// The routing for a person: which rule won and on which words, what the
/// bot would do, and why each other candidate lost.
fn explain(
    d: &Decision<'_>,
    text: &str,
    channel: Channel,
    vars: &Vars<'_>,
    applied: &Applied,
    heard: Option<Detected>,
) -> String {
    let mut out = String::new();
    let lang = heard.and_then(|h| h.lang);
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
        None if d.signal_escalation.is_some() => out.push_str("rule:    none matched, but the message carries a signal: escalated\n"),
        None if d.default.is_some() => out.push_str("rule:    none matched; the [default] applies\n"),
        None => out.push_str("rule:    none matched, and there is no [default]: the message is recorded and left alone\n"),
    }
    for h in &d.signals {
        out.push_str(&format!(
            "signal:  {}: `{}` matched {:?} at bytes {}..{} (the ticket's priority goes one step up)\n",
            h.signal.name,
            h.keyword.written,
            &text[h.span.0..h.span.1],
            h.span.0,
            h.span.1
        ));
    }
    out.push_str(&format!("channel: {channel}\n"));
    if let Some(h) = heard {
        let confidence = format!("confidence {:.2}", h.confidence);
        out.push_str(&match (h.lang, applied.default_lang) {
            (Some(l), _) => format!("language: {l} ({confidence})\n"),
            (None, Some(d)) => {
                format!("language: unsure ({confidence}); the default, {d}, applies\n")
            }
            (None, None) => {
                format!("language: unsure ({confidence}); a table's first text applies\n")
            }
        });
    }
    out.push_str(&format!("action:  {}", d.outcome().name()));
    match d.outcome() {
        Outcome::Reply(t, via) => out.push_str(&format!(
            " ({})\nreply:   {}\n",
            if via == Via::Dm {
                "by DM"
            } else {
                "where the customer wrote"
            },
            applied.render(t, vars, lang)
        )),
        Outcome::Escalate(e, _) => {
            out.push_str(&format!(
                " to queue {} at priority {}\n",
                e.queue,
                d.priority_of(e)
            ));
            if let (Some(h), Some(at)) = (&applied.hours, applied.opens) {
                let which = match (&e.ack_closed, &e.ack) {
                    (Some(_), _) => "ack_closed applies",
                    (None, Some(_)) => "the rule has no ack_closed, so its ack applies",
                    (None, None) => "the rule sends no acknowledgement at any hour",
                };
                out.push_str(&format!(
                    "closed:  the team is away until {}: {which}\n",
                    h.describe(at, None)
                ));
            }
            if let Some(a) = applied.ack(e) {
                out.push_str(&format!("ack:     {}\n", applied.render(a, vars, lang)));
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
/// Borrowed from the line when it holds no escapes (the common case), so
/// reading a message allocates nothing; the name stays `BulkLine`, which
/// the error of a line that is not an object shows.
/// Any other key is an error: a misspelled `chanel` would otherwise test
/// the message on the wrong channel without a word.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkLine<'a> {
    #[serde(borrow)]
    text: Cow<'a, str>,
    #[serde(default)]
    channel: Option<Channel>,
    #[serde(default, borrow)]
    author: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    /// The platform's language tag (`fr`, `en-US`), a hint as in the bot.
    #[serde(default, borrow)]
    lang: Option<Cow<'a, str>>,
    /// The keys `rules replay` reads, accepted so that one file serves
    /// both commands.
    #[serde(default, rename = "id")]
    _id: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "platform")]
    _platform: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "written_at")]
    _written_at: Option<serde::de::IgnoredAny>,
}

/// The error object a broken line gets in its place.
#[derive(serde::Serialize)]
struct LineError {
    error: String,
}

/// Written in large blocks: a bulk run is millions of short lines.
const BULK_BUFFER: usize = 1 << 20;

/// Routes every JSON line of stdin; a line that cannot be read gets an
/// error object in its place and the exit code 1, the others go on. It
/// streams: stdin is read in blocks of whole lines that `threads` workers
/// route (each with one reply buffer, reused), and the results are
/// written in input order through one output buffer, flushed after each
/// block (a program that writes a line and waits for its answer gets it).
fn bulk(set: &RuleSet, vars: &Vars<'_>, applied: &Applied, threads: usize) -> Result<i32> {
    let mut out = std::io::BufWriter::with_capacity(BULK_BUFFER, std::io::stdout().lock());
    let mut failed = false;
    parallel::ordered(
        threads,
        |sink| parallel::read_lines(std::io::stdin(), sink, |_| {}).context("reading stdin"),
        |lines| route_block(set, vars, applied, &lines),
        |(routed, bad)| {
            failed |= bad;
            // Flushed block by block, so that a program that writes a line
            // and waits gets its answer; a block is some 64 KiB of input,
            // so this costs one write for hundreds of lines.
            // stdout failed (a closed pipe): nothing more can be said there.
            out.write_all(&routed)
                .and_then(|()| out.flush())
                .context("writing stdout")
        },
    )?;
    out.flush().context("writing stdout")?;
    Ok(i32::from(failed))
}

/// Routes a block of bulk lines into their JSON lines, blank lines
/// skipped; says whether some line could not be read.
fn route_block(
    set: &RuleSet,
    vars: &Vars<'_>,
    applied: &Applied,
    lines: &parallel::Lines,
) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(lines.bytes.len() * 2);
    let mut reply = String::new();
    let mut failed = false;
    for (n, line) in lines.iter() {
        let line = match simdutf8::basic::from_utf8(line) {
            Ok(line) if line.trim().is_empty() => continue,
            Ok(line) => route_line(set, vars, line, applied, &mut reply, &mut out)
                .map_err(|e| e.to_string()),
            Err(_) => Err("not UTF-8 text".to_owned()),
        };
        if let Err(e) = line {
            failed = true;
            // The decoder's message may quote the line's own text.
            let error = format!(
                "line {n}: {}; expected {{\"text\": \"…\", \"channel\": \"mention|dm|search\"}}",
                escape_for_terminal(&e)
            );
            serde_json::to_writer(&mut out, &LineError { error })
                .expect("writing to memory cannot fail");
        }
        out.push(b'\n');
    }
    (out, failed)
}

/// Routes one bulk line, its own author and name replacing the defaults
/// in `vars`, and writes its JSON to `out` (nothing when the line does not
/// decode: the caller writes the error in its place).
fn route_line(
    set: &RuleSet,
    vars: &Vars<'_>,
    line: &str,
    applied: &Applied,
    reply: &mut String,
    out: &mut Vec<u8>,
) -> Result<(), serde_json::Error> {
    let m = parallel::object_line::<BulkLine<'_>>(line)?;
    let author = m.author.as_deref().map(|a| a.trim_start_matches('@'));
    let v = Vars {
        author: author.unwrap_or(vars.author),
        name: m.name.as_deref().unwrap_or(vars.name),
        ticket: vars.ticket,
        opens: None,
    };
    let channel = m.channel.unwrap_or(Channel::Mention);
    let d = set.route(&m.text, channel);
    let tag = m.lang.as_deref().and_then(Lang::from_tag);
    let heard = applied.hear(&m.text, tag);
    let routed = Routed::new(&d, &v, channel, applied, heard, reply);
    let at = out.len();
    routed.write_json(out);
    // Every debug run (the tests) holds the two writers together.
    debug_assert_eq!(
        &out[at..],
        serde_json::to_vec(&routed).expect("plain strings and numbers"),
        "Routed::write_json and the derived Serialize disagree"
    );
    Ok(())
}
