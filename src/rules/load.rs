//! From rule files to a [`RuleSet`]: parse, check, compile, run the examples.
//!
//! Every check runs, and every problem is collected, so a support lead sees
//! the whole list at once rather than fixing one error per run.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue, ValueDeserializer};

use super::diagnostic::{Diagnostic, RulesError, SourceFile};
use super::keys::keys_of;
use super::matcher::Matcher;
use super::normalize::{is_unspaced_script, is_word_char, normalize};
use super::template::{Localized, Placeholder, Slot, Template, TemplateError, Vars};
use super::{
    Action, DefaultAction, Escalation, IncidentTexts, Keyword, Role, Rule, RuleSet, Signal, Stats,
    Use, Via,
};
use crate::domain::language::{Lang, LocalizedText};
use crate::domain::text::LengthLimit;
use crate::domain::{Channel, ChannelSet, Priority, Queue, RuleId, SignalName, TicketRef};

/// How to load: which platform limits replies must fit, whether to run examples.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Every reply and ack must fit each of these at its longest.
    pub limits: Vec<LengthLimit>,
    /// Run `examples` and `not_examples` (on by default; benchmarks turn it off).
    pub check_examples: bool,
    /// `[replies] signature`, which every automatic reply ends with: the
    /// length check counts its longest text.
    pub signature: Option<LocalizedText>,
    /// How many threads check a file of thousands of rules: `None`, one
    /// per core; the bulk commands pass their `--threads`.
    pub threads: Option<std::num::NonZeroUsize>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            limits: vec![LengthLimit::X, LengthLimit::MASTODON, LengthLimit::BLUESKY],
            check_examples: true,
            signature: None,
            threads: None,
        }
    }
}

/// The top-level keys: [`Loader::file`] matches on these names. A rule's
/// keys, and those of `[default]` and `escalate`, are the fields of
/// [`RawRule`], [`RawDefault`] and [`RawEscalate`], listed by [`keys_of`].
const TOP_KEYS: &[&str] = &["rule", "default", "signals"];

/// The longest values a template can be filled with, for the length check:
/// a 15-character handle and a 50-character name in a script X weighs 2.
const WORST_HANDLE: &str = "aaaaaaaaaaaaaaa";
const WORST_NAME: &str = "名名名名名名名名名名名名名名名名名名名名名名名名名名名名名名名名名名名名名名名名名名名名名名名名名名";
const WORST_VARS: Vars<'static> = Vars {
    author: WORST_HANDLE,
    name: WORST_NAME,
    ticket: Some(TicketRef::WORST_CASE),
    opens: None,
};

/// A `[[rule]]` as written: the one definition of the rule keys.
///
/// A field added here is a key accepted everywhere: the unknown-key check
/// lists the known keys from these fields ([`keys_of`]), in this order,
/// which is also the order of the "The keys are:" hint that
/// `docs/rules.md` shows (a unit test holds the two together). The
/// compiler's unused-field warning then points at [`Loader::check_rule`],
/// where the value is read. `deny_unknown_fields` stays as a backstop: the
/// check has already removed every unknown key by the time serde runs.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: Spanned<String>,
    #[serde(default)]
    description: String,
    keywords: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    require: Vec<Spanned<String>>,
    #[serde(default)]
    require_any: Vec<Spanned<String>>,
    #[serde(default)]
    exclude: Vec<Spanned<String>>,
    channels: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    priority: i64,
    reply: Option<Spanned<RawText>>,
    escalate: Option<Spanned<RawEscalate>>,
    ignore: Option<Spanned<bool>>,
    via: Option<Spanned<String>>,
    incident_reply: Option<Spanned<RawText>>,
    incident_resolved: Option<Spanned<RawText>>,
    #[serde(default)]
    examples: Vec<Spanned<String>>,
    #[serde(default)]
    not_examples: Vec<Spanned<String>>,
}

/// An `escalate = { … }` table, in a rule or in `[default]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEscalate {
    queue: Spanned<String>,
    priority: Option<Spanned<String>>,
    ack: Option<Spanned<RawText>>,
    ack_closed: Option<Spanned<RawText>>,
}

/// A `reply` or `ack` as written: one text (its span is the value's), or
/// a table of language codes to texts, each with its span.
enum RawText {
    One(String),
    ByLang(Vec<(Spanned<String>, Spanned<String>)>),
}

impl<'de> Deserialize<'de> for RawText {
    // By hand: a derived untagged enum buffers the value and loses the
    // spans that the errors point with.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> serde::de::Visitor<'de> for Text {
            type Value = RawText;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a text, or a table of texts by language such as { fr = \"…\", en = \"…\" }",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawText, E> {
                Ok(RawText::One(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawText, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    entries.push((key, map.next_value::<Spanned<String>>()?));
                }
                Ok(RawText::ByLang(entries))
            }
        }
        d.deserialize_any(Text)
    }
}

/// The `[default]` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefault {
    escalate: Option<Spanned<RawEscalate>>,
    ignore: Option<Spanned<bool>>,
}

/// Where a rule's examples are, for the example check after compiling.
struct ExampleSpans {
    examples: Vec<Range<usize>>,
    not_examples: Vec<Range<usize>>,
    file: usize,
}

/// Reads every `.toml` file of `dir` in name order, then loads them.
pub fn load_dir(dir: &Path, opts: &LoadOptions) -> Result<RuleSet, RulesError> {
    let fail = |d: Diagnostic| RulesError {
        files: Vec::new(),
        diagnostics: vec![d],
    };
    let entries = std::fs::read_dir(dir).map_err(|e| {
        fail(Diagnostic::global(format!("cannot read the rules folder {}: {e}", dir.display()))
            .hint("pass the folder that holds your rule files with --rules DIR, or create it with `helpdesk init`"))
    })?;
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    paths.sort();
    let mut files = Vec::new();
    let mut diagnostics = Vec::new();
    for p in paths {
        match std::fs::read_to_string(&p) {
            Ok(text) => files.push(SourceFile {
                name: p.display().to_string(),
                text,
            }),
            Err(e) => diagnostics.push(
                Diagnostic::global(format!("cannot read {}: {e}", p.display()))
                    .hint("check the file's permissions and that it is UTF-8 text"),
            ),
        }
    }
    if files.is_empty() && diagnostics.is_empty() {
        diagnostics.push(
            Diagnostic::global(format!("no .toml rule file in {}", dir.display()))
                .hint("add a file such as rules/faq.toml with at least one [[rule]]"),
        );
    }
    if !diagnostics.is_empty() {
        return Err(RulesError { files, diagnostics });
    }
    load_sources(files, opts)
}

/// Loads rule files given in memory, in order.
pub fn load_sources(files: Vec<SourceFile>, opts: &LoadOptions) -> Result<RuleSet, RulesError> {
    let line_starts: Vec<Vec<usize>> = files
        .iter()
        .map(|f| {
            std::iter::once(0)
                .chain(f.text.match_indices('\n').map(|(i, _)| i + 1))
                .collect()
        })
        .collect();
    let mut cx = Loader::new(&files, &line_starts, opts);
    for (f, file) in files.iter().enumerate() {
        cx.file(f, &file.text, &file.name);
    }
    let default = cx.default.take();
    let signals = cx.signals.take().map(|s| s.0).unwrap_or_default();
    let Loader {
        mut diags,
        rules,
        examples,
        ..
    } = cx;
    if !diags.is_empty() {
        diags.sort_by_key(|d| (d.file, d.span.as_ref().map(|s| s.start)));
        return Err(RulesError {
            files,
            diagnostics: diags,
        });
    }
    let mut set =
        compile(rules, default.map(|d| d.0), signals, files.len()).map_err(|d| RulesError {
            files: files.clone(),
            diagnostics: vec![d],
        })?;
    if opts.check_examples {
        set.stats.examples = check_examples(&set, &examples, &mut diags);
    }
    if diags.is_empty() {
        Ok(set)
    } else {
        Err(RulesError {
            files,
            diagnostics: diags,
        })
    }
}

struct Loader<'o> {
    files: &'o [SourceFile],
    /// Byte offset of each line start, per file: rule lines by binary search.
    line_starts: &'o [Vec<usize>],
    diags: Vec<Diagnostic>,
    rules: Vec<Rule>,
    examples: Vec<ExampleSpans>,
    ids: HashMap<String, (usize, Range<usize>)>,
    default: Option<(DefaultAction, usize, Range<usize>)>,
    /// `[signals]`, and where it was written (at most one across files).
    signals: Option<(Vec<Signal>, usize, Range<usize>)>,
    opts: &'o LoadOptions,
    /// In a [`fork`](Loader::fork): each rule id in file order, claimed
    /// by `merge`.
    later_ids: Option<Vec<LaterId>>,
}

/// A rule id a [`fork`](Loader::fork) found and left for `merge` to claim.
struct LaterId {
    id: RuleId,
    file: usize,
    span: Range<usize>,
    /// How many diagnostics the fork had found before it: a duplicate is
    /// reported among them there.
    after: usize,
}

fn suggest(key: &str, known: &[&str]) -> String {
    let best = known
        .iter()
        .map(|k| (strsim::levenshtein(key, k), *k))
        .min()
        .filter(|(d, _)| *d <= 3);
    match best {
        Some((_, k)) => format!("did you mean `{k}`? The keys are: {}", known.join(", ")),
        None => format!("the keys are: {}", known.join(", ")),
    }
}

impl<'o> Loader<'o> {
    /// A loader that has found nothing yet.
    fn new(files: &'o [SourceFile], line_starts: &'o [Vec<usize>], opts: &'o LoadOptions) -> Self {
        Loader {
            files,
            line_starts,
            diags: Vec::new(),
            rules: Vec::new(),
            examples: Vec::new(),
            ids: HashMap::new(),
            default: None,
            signals: None,
            opts,
            later_ids: None,
        }
    }

    fn err(
        &mut self,
        file: usize,
        span: Range<usize>,
        msg: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.diags.push(Diagnostic::at(file, span, msg).hint(hint));
    }

    /// Reports and removes the keys of `table` that are not in `known`.
    fn strip_unknown(&mut self, f: usize, table: &mut DeTable<'_>, known: &[&str], what: &str) {
        let unknown: Vec<_> = table
            .keys()
            .filter(|k| !known.contains(&k.get_ref().as_ref()))
            .cloned()
            .collect();
        for k in unknown {
            let name = k.get_ref().to_string();
            self.err(
                f,
                k.span(),
                format!("unknown key `{name}` in {what}"),
                suggest(&name, known),
            );
            table.remove(&k);
        }
    }

    fn file(&mut self, f: usize, text: &str, name: &str) {
        let (root, errors) = DeTable::parse_recoverable(text);
        if !errors.is_empty() {
            for e in errors {
                let span = e.span().unwrap_or(0..0);
                self.err(f, span, format!("TOML syntax: {}", e.message().trim()),
                    "check quotes, brackets and commas on this line; each rule starts with [[rule]] and each value is key = \"text\"");
            }
            return;
        }
        let mut root = root.into_inner();
        self.strip_unknown(f, &mut root, TOP_KEYS, &format!("{name} (top level)"));
        for (key, value) in root {
            let span = value.span();
            match (key.get_ref().as_ref(), value.into_inner()) {
                ("rule", DeValue::Array(items)) => self.rules_in(f, items),
                ("rule", _) => self.err(
                    f,
                    span,
                    "`rule` must be a list of tables",
                    "write each rule as a [[rule]] section (two brackets)",
                ),
                ("default", DeValue::Table(t)) => self.default(f, t, span),
                ("default", _) => self.err(
                    f,
                    span,
                    "`default` must be a table",
                    "write it as a [default] section",
                ),
                ("signals", DeValue::Table(t)) => self.signals(f, t, span),
                ("signals", _) => self.err(
                    f,
                    span,
                    "`signals` must be a table",
                    "write it as a [signals] section: name = [\"word\", \"phrase\"]",
                ),
                _ => {}
            }
        }
    }

    fn deserialize<T: for<'de> Deserialize<'de>>(
        &mut self,
        f: usize,
        table: DeTable<'_>,
        span: Range<usize>,
        what: &str,
    ) -> Option<T> {
        let de = ValueDeserializer::from(Spanned::new(span.clone(), DeValue::Table(table)));
        match T::deserialize(de) {
            Ok(v) => Some(v),
            Err(e) => {
                let msg = e.message().trim().to_owned();
                let hint = if msg.contains("missing field `id`") {
                    "give every rule an id, such as id = \"refund-delay\"".to_owned()
                } else if msg.contains("missing field `queue`") {
                    "an escalation needs a queue, such as escalate = { queue = \"billing\" }"
                        .to_owned()
                } else {
                    format!(
                        "check the value's type in {what}: texts in quotes, lists in [ ], numbers bare, true/false bare"
                    )
                };
                self.err(f, e.span().unwrap_or(span), msg, hint);
                None
            }
        }
    }

    /// Reports and removes the keys of `table` that `T` does not have, and
    /// those of its `escalate` table. `what` names the table in messages.
    fn strip_unknown_keys<T: DeserializeOwned>(
        &mut self,
        f: usize,
        table: &mut DeTable<'_>,
        what: &str,
    ) {
        self.strip_unknown(f, table, keys_of::<T>(), what);
        if let Some(esc) = table.get_mut("escalate")
            && let DeValue::Table(t) = esc.get_mut()
        {
            self.strip_unknown(
                f,
                t,
                keys_of::<RawEscalate>(),
                &format!("the escalate table of {what}"),
            );
        }
    }

    /// Checks the `[[rule]]` entries of file `f`. Checking a rule (its
    /// keywords, its texts against every platform's limits) costs more
    /// than parsing it, so a file of thousands of rules is checked on
    /// several threads, a run of rules each, and the results are put back
    /// in file order: the same rules and diagnostics, in the same order,
    /// as one thread gives.
    fn rules_in(&mut self, f: usize, items: DeArray<'_>) {
        // Below this many rules a thread's start costs more than it saves.
        const PER_THREAD: usize = 1_000;
        let threads = self.opts.threads.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            |n| n.get(),
        );
        let threads = threads.min(items.len() / PER_THREAD).max(1);
        let mut items = items.into_iter();
        let run = items.len().div_ceil(threads);
        let first: Vec<_> = items.by_ref().take(run).collect();
        // Each later run in a slot, taken by whichever thread checks it.
        let slots: Vec<_> = (1..threads)
            .map(|_| {
                let run: Vec<_> = items.by_ref().take(run).collect();
                std::sync::Mutex::new(Some((self.fork(), run)))
            })
            .collect();
        let check = |slot: &std::sync::Mutex<Option<(Loader<'o>, Vec<_>)>>| {
            let (mut cx, run) = slot.lock().ok()?.take()?;
            for item in run {
                cx.rule_item(f, item);
            }
            Some(cx)
        };
        std::thread::scope(|scope| {
            let handles: Vec<_> = slots
                .iter()
                .map(|slot| {
                    std::thread::Builder::new()
                        .name("rules-check".into())
                        .spawn_scoped(scope, || check(slot))
                        .ok()
                })
                .collect();
            for item in first {
                self.rule_item(f, item);
            }
            for (slot, handle) in slots.iter().zip(handles) {
                let done = handle.and_then(|h| h.join().expect("checking a rule does not panic"));
                // A thread the system refused (a container's limit on
                // threads): its run is checked here.
                let cx = done
                    .or_else(|| check(slot))
                    .expect("every run is checked once");
                self.merge(cx);
            }
        });
    }

    /// A loader for a run of rules on another thread: the same files and
    /// options, nothing found yet, and its rule ids kept for
    /// [`merge`](Self::merge) to claim rather than claimed: whether an id
    /// is taken depends on the runs before.
    fn fork(&self) -> Self {
        Loader {
            later_ids: Some(Vec::new()),
            ..Loader::new(self.files, self.line_starts, self.opts)
        }
    }

    /// Takes in what a [`fork`](Self::fork) found in the rules that come
    /// after this loader's, in file order: each of its ids claimed where
    /// its rule was checked (a duplicate reported there, pointing at the
    /// first), its diagnostics and rules after this loader's.
    fn merge(&mut self, later: Self) {
        let mut ids = later.later_ids.unwrap_or_default().into_iter().peekable();
        for (k, d) in later.diags.into_iter().enumerate() {
            while let Some(l) = ids.next_if(|l| l.after <= k) {
                self.claim_id(l.id, l.file, l.span);
            }
            self.diags.push(d);
        }
        for l in ids {
            self.claim_id(l.id, l.file, l.span);
        }
        self.rules.extend(later.rules);
        self.examples.extend(later.examples);
    }

    /// One entry of a `[[rule]]` list: a rule's table, else an error.
    fn rule_item(&mut self, f: usize, item: Spanned<DeValue<'_>>) {
        let span = item.span();
        match item.into_inner() {
            DeValue::Table(t) => self.rule(f, t, span),
            _ => self.err(
                f,
                span,
                "a rule must be a table",
                "write each rule as a [[rule]] section",
            ),
        }
    }

    /// Checks one `[[rule]]` and keeps it when it has no error.
    fn rule(&mut self, f: usize, mut table: DeTable<'_>, span: Range<usize>) {
        let what = match table.get("id").map(|v| v.get_ref()) {
            Some(DeValue::String(s)) => format!("rule `{s}`"),
            _ => "a rule".to_owned(),
        };
        self.strip_unknown_keys::<RawRule>(f, &mut table, &what);
        let Some(raw) = self.deserialize::<RawRule>(f, table, span.clone(), &what) else {
            return;
        };
        if let Some((rule, examples)) = self.check_rule(f, raw, span, &what) {
            self.examples.push(examples);
            self.rules.push(rule);
        }
    }

    /// Checks every value of a parsed rule, reporting each problem; the
    /// rule and where its examples are, or `None` when anything was wrong.
    /// `what` names the rule in messages as written, even when its id is
    /// not valid.
    fn check_rule(
        &mut self,
        f: usize,
        raw: RawRule,
        span: Range<usize>,
        what: &str,
    ) -> Option<(Rule, ExampleSpans)> {
        let n_errors = self.diags.len();
        let id = self.rule_id(f, &raw.id);
        let keywords = self.trigger_keywords(f, what, &raw);
        let require = self.keywords(f, &raw.require, "require");
        let require_any = self.keywords(f, &raw.require_any, "require_any");
        let exclude = self.keywords(f, &raw.exclude, "exclude");
        if require.len() > 64 {
            self.err(
                f,
                raw.require[64].span(),
                "more than 64 `require` entries",
                "a message must contain every required entry: split this rule instead",
            );
        }
        let channels = self.channels(f, raw.channels.as_ref());
        let via = self.via(f, raw.via.as_ref());
        let action = self.action(
            f,
            &raw.reply,
            &raw.escalate,
            &raw.ignore,
            span.clone(),
            what,
        );
        let incident = self.incident_texts(f, &raw, action.as_ref());
        if self.diags.len() != n_errors {
            return None;
        }
        let examples = ExampleSpans {
            examples: raw.examples.iter().map(|e| e.span()).collect(),
            not_examples: raw.not_examples.iter().map(|e| e.span()).collect(),
            file: f,
        };
        let unspan =
            |list: Vec<Spanned<String>>| list.into_iter().map(Spanned::into_inner).collect();
        let rule = Rule {
            id,
            description: raw.description,
            keywords,
            require,
            require_any,
            exclude,
            channels,
            priority: raw.priority,
            action: action?,
            via,
            incident: incident?,
            examples: unspan(raw.examples),
            not_examples: unspan(raw.not_examples),
            file: self.files[f].name.clone(),
            line: self.line_starts[f].partition_point(|&start| start <= span.start),
        };
        Some((rule, examples))
    }

    /// The rule's id, checked and claimed: a second rule with the same id is
    /// reported at its own id, pointing back at the first.
    fn rule_id(&mut self, f: usize, raw: &Spanned<String>) -> RuleId {
        let id = match RuleId::parse(raw.get_ref()) {
            Ok(id) => id,
            Err(e) => {
                self.err(
                    f,
                    raw.span(),
                    e,
                    "ids are lower-case words joined by dashes, such as `reset-password`",
                );
                // A stand-in that claims nothing: two bad ids, or a bad
                // one and a real `invalid`, are not duplicates.
                return RuleId::parse("invalid").expect("valid id");
            }
        };
        match &mut self.later_ids {
            Some(later) => later.push(LaterId {
                id: id.clone(),
                file: f,
                span: raw.span(),
                after: self.diags.len(),
            }),
            None => self.claim_id(id.clone(), f, raw.span()),
        }
        id
    }

    /// Claims rule id `id`, written at `span` of file `f`: a second rule
    /// with the same id is reported at its own id, pointing back at the
    /// first.
    fn claim_id(&mut self, id: RuleId, f: usize, span: Range<usize>) {
        if let Some((first_file, first_span)) = self.ids.get(id.as_str()).cloned() {
            self.diags.push(
                Diagnostic::at(f, span, format!("duplicate rule id `{id}`"))
                    .related(first_file, first_span, "first defined here")
                    .hint("every rule id must be unique across all rule files: rename one of them"),
            );
        } else {
            self.ids.insert(id.to_string(), (f, span));
        }
    }

    /// The `keywords` list, which a rule must have and must not leave empty.
    /// `what` names the rule in messages.
    fn trigger_keywords(&mut self, f: usize, what: &str, raw: &RawRule) -> Vec<Keyword> {
        match &raw.keywords {
            None => {
                self.err(
                    f,
                    raw.id.span(),
                    format!("{what} has no `keywords`"),
                    "add keywords = [\"…\"]: the words that trigger this rule",
                );
                Vec::new()
            }
            Some(k) if k.get_ref().is_empty() => {
                self.err(
                    f,
                    k.span(),
                    format!("{what} has an empty `keywords` list"),
                    "add at least one keyword, or remove the rule",
                );
                Vec::new()
            }
            Some(k) => self.keywords(f, k.get_ref(), "keywords"),
        }
    }

    /// The `channels` set: every channel when the key is absent.
    fn channels(&mut self, f: usize, raw: Option<&Spanned<Vec<Spanned<String>>>>) -> ChannelSet {
        let Some(list) = raw else {
            return ChannelSet::ALL;
        };
        let mut set = ChannelSet::default();
        for c in list.get_ref() {
            match c.get_ref().parse::<Channel>() {
                Ok(c) => set.insert(c),
                Err(e) => self.err(f, c.span(), e.to_string(), "channels are \"mention\" (public @mentions), \"dm\" (direct messages) and \"search\" (brand-keyword search)"),
            }
        }
        if list.get_ref().is_empty() {
            self.err(
                f,
                list.span(),
                "`channels` is empty: the rule could never match",
                "remove the key to allow every channel, or list some of mention, dm, search",
            );
        }
        set
    }

    /// The `via` of a reply: where the customer wrote, unless it says `dm`.
    fn via(&mut self, f: usize, raw: Option<&Spanned<String>>) -> Via {
        let Some(v) = raw else {
            return Via::Same;
        };
        match v.get_ref().as_str() {
            "same" => Via::Same,
            "dm" => Via::Dm,
            other => {
                self.err(f, v.span(), format!("unknown via `{other}`"), "via is \"same\" (answer where the customer wrote) or \"dm\" (answer by direct message)");
                Via::Same
            }
        }
    }

    fn keywords(&mut self, f: usize, list: &[Spanned<String>], key: &str) -> Vec<Keyword> {
        let mut out = Vec::new();
        for k in list {
            let raw = k.get_ref().trim();
            let (body, prefix) = match raw.strip_suffix('*') {
                Some(b) => (b.trim_end(), true),
                None => (raw, false),
            };
            if body.contains('*') {
                self.err(
                    f,
                    k.span(),
                    format!("`*` inside the {key} entry `{raw}`"),
                    "a `*` is only allowed at the end, to match word beginnings: `rembours*`",
                );
                continue;
            }
            if body.starts_with('@') || body.contains("://") || body.starts_with("www.") {
                self.err(f, k.span(), format!("the {key} entry `{raw}` is an @handle or a URL, and those are never searched"), "use the words customers write; handles and links are masked before matching");
                continue;
            }
            let norm = normalize(body, false).text;
            if norm.is_empty() {
                self.err(f, k.span(), format!("the {key} entry `{raw}` is empty once normalised"), "write a word or a phrase: spaces, invisible characters and a lone `*` match nothing");
                continue;
            }
            let last = norm.chars().next_back().expect("non-empty");
            let needs_end_boundary = !prefix && is_word_char(last) && !is_unspaced_script(last);
            out.push(Keyword {
                written: raw.to_owned(),
                prefix,
                pattern: norm,
                needs_end_boundary,
            });
        }
        out
    }

    fn escalation(&mut self, f: usize, raw: &RawEscalate) -> Option<Escalation> {
        let queue = match Queue::parse(raw.queue.get_ref()) {
            Ok(q) => Some(q),
            Err(e) => {
                self.err(f, raw.queue.span(), e, "name the queue with lower-case letters, digits, `-` or `_`, such as \"billing\"");
                None
            }
        };
        let priority = match &raw.priority {
            None => Some(Priority::Normal),
            Some(p) => match p.get_ref().parse::<Priority>() {
                Ok(p) => Some(p),
                Err(e) => {
                    self.err(
                        f,
                        p.span(),
                        format!("ticket {e}"),
                        "write priority = \"low\", \"normal\", \"high\" or \"urgent\"",
                    );
                    None
                }
            },
        };
        let ack = match &raw.ack {
            None => Some(None),
            Some(a) => self.localized(f, a, Slot::Ack, "ack").map(Some),
        };
        let ack_closed = match &raw.ack_closed {
            None => Some(None),
            Some(a) => self
                .localized(f, a, Slot::AckClosed, "ack_closed")
                .map(Some),
        };
        Some(Escalation {
            queue: queue?,
            priority: priority?,
            ack: ack?,
            ack_closed: ack_closed?,
        })
    }

    /// A reply or ack, one text or a language table, each text parsed and
    /// checked as [`Self::template`] does; `None` once its problems are
    /// reported.
    fn localized(
        &mut self,
        f: usize,
        t: &Spanned<RawText>,
        slot: Slot,
        key: &str,
    ) -> Option<Localized> {
        let mut entries = match t.get_ref() {
            RawText::One(text) => {
                let text = Spanned::new(t.span(), text.clone());
                return self.template(f, &text, slot, key).map(Localized::Any);
            }
            RawText::ByLang(entries) => entries.iter().collect::<Vec<_>>(),
        };
        if entries.is_empty() {
            self.err(f, t.span(), format!("`{key}` is an empty table"), format!("give the text, {key} = \"…\", or one per language: {key} = {{ fr = \"…\", en = \"…\" }}"));
            return None;
        }
        // A TOML table is read in key order; the first in the file is the
        // last resort, so the file's order counts.
        entries.sort_by_key(|(_, text)| text.span().start);
        let n_errors = self.diags.len();
        let mut table = Vec::with_capacity(entries.len());
        for (code, text) in entries {
            let lang = match Lang::parse(code.get_ref()) {
                Ok(lang) if table.iter().any(|(l, _)| *l == lang) => {
                    // `FR` and `fr` are one language: the second text would never be sent.
                    self.err(
                        f,
                        code.span(),
                        format!("in `{key}`: `{lang}` is given twice"),
                        "keep one text per language",
                    );
                    None
                }
                Ok(lang) => Some(lang),
                Err(e) => {
                    self.err(
                        f,
                        code.span(),
                        format!("in `{key}`: {e}"),
                        "a language table's keys are ISO 639-1 codes: fr, en, es, de…",
                    );
                    None
                }
            };
            let tpl = self.template(f, text, slot, &format!("{key}.{}", code.get_ref()));
            if let (Some(lang), Some(tpl)) = (lang, tpl) {
                table.push((lang, tpl));
            }
        }
        (self.diags.len() == n_errors).then_some(Localized::ByLang(table))
    }

    /// A reply or ack template, parsed and checked against every platform's
    /// length limit; `None` once its problems are reported.
    fn template(
        &mut self,
        f: usize,
        t: &Spanned<String>,
        slot: Slot,
        key: &str,
    ) -> Option<Template> {
        match Template::parse(t.get_ref(), slot) {
            Ok(tpl) => self.fits_every_limit(f, t, key, &tpl).then_some(tpl),
            Err(errors) => {
                self.template_errors(f, t, key, errors);
                None
            }
        }
    }

    /// Reports a template's errors at their place inside the file's value.
    fn template_errors(
        &mut self,
        f: usize,
        t: &Spanned<String>,
        key: &str,
        errors: Vec<TemplateError>,
    ) {
        // The value's span includes its quotes; a basic string's inner text
        // starts one byte in (escapes may shift positions slightly).
        let base = t.span().start + 1;
        for TemplateError {
            range,
            message,
            hint,
        } in errors
        {
            let span = (base + range.start).min(t.span().end)..(base + range.end).min(t.span().end);
            self.err(f, span, format!("in `{key}`: {message}"), hint);
        }
    }

    /// Whether `tpl`, filled with the longest values a customer can bring
    /// and followed by the longest text of `[replies] signature`, fits
    /// every platform's limit; each limit it exceeds is reported.
    fn fits_every_limit(
        &mut self,
        f: usize,
        t: &Spanned<String>,
        key: &str,
        tpl: &Template,
    ) -> bool {
        let worst_opens;
        let rendered = if tpl.uses(Placeholder::Opens) {
            worst_opens = crate::domain::hours::BusinessHours::worst_description();
            tpl.render(&Vars {
                opens: Some(&worst_opens),
                ..WORST_VARS
            })
        } else {
            tpl.render(&WORST_VARS)
        };
        // Each signed text once, whatever the number of platforms.
        let signed: Vec<String> = match &self.opts.signature {
            Some(s) => s
                .variants()
                .map(|(_, sig)| format!("{rendered}{sig}"))
                .collect(),
            None => vec![rendered],
        };
        let mut ok = true;
        for limit in &self.opts.limits {
            // The signature that makes it longest on this platform.
            let n = signed
                .iter()
                .map(|text| {
                    if limit.surely_fits(text) {
                        0
                    } else {
                        limit.count(text)
                    }
                })
                .max()
                .unwrap_or(0);
            if n > limit.max {
                let mut message = too_long(key, limit, n, tpl);
                if self.opts.signature.is_some() {
                    message.push_str(", signature included");
                }
                self.err(f, t.span(), message,
                    format!("shorten it by {} or more, or link to a help page instead of spelling everything out", n - limit.max));
                ok = false;
            }
        }
        ok
    }

    fn action(
        &mut self,
        f: usize,
        reply: &Option<Spanned<RawText>>,
        escalate: &Option<Spanned<RawEscalate>>,
        ignore: &Option<Spanned<bool>>,
        span: Range<usize>,
        what: &str,
    ) -> Option<Action> {
        let given = [
            reply.as_ref().map(|r| ("reply", r.span())),
            escalate.as_ref().map(|e| ("escalate", e.span())),
            ignore.as_ref().map(|i| ("ignore", i.span())),
        ];
        let given: Vec<_> = given.into_iter().flatten().collect();
        match given.len() {
            0 => {
                self.err(f, span.start..span.start + 8.min(span.len()), format!("{what} has no action"), "give it exactly one of: reply = \"…\", escalate = { queue = \"…\" }, ignore = true");
                return None;
            }
            1 => {}
            _ => {
                let names: Vec<_> = given.iter().map(|g| g.0).collect();
                self.err(f, given[1].1.clone(), format!("{what} has more than one action: {}", names.join(" and ")), "keep exactly one of reply, escalate and ignore (an escalation can still answer with ack = \"…\")");
                return None;
            }
        }
        if let Some(r) = reply {
            return self
                .localized(f, r, Slot::Reply, "reply")
                .map(Action::Reply);
        }
        if let Some(e) = escalate {
            return self.escalation(f, e.get_ref()).map(Action::Escalate);
        }
        match ignore {
            Some(i) if *i.get_ref() => Some(Action::Ignore),
            Some(i) => {
                self.err(
                    f,
                    i.span(),
                    "`ignore = false` does nothing",
                    "write ignore = true to ignore matching messages, or use reply or escalate",
                );
                None
            }
            None => None,
        }
    }

    /// `incident_reply` and `incident_resolved`, written and checked as a
    /// reply (an ignored rule never answers, so it may have neither).
    fn incident_texts(
        &mut self,
        f: usize,
        raw: &RawRule,
        action: Option<&Action>,
    ) -> Option<IncidentTexts> {
        let n_errors = self.diags.len();
        let mut text = |t: &Option<Spanned<RawText>>, key: &str| match t {
            Some(t) if matches!(action, Some(Action::Ignore)) => {
                self.err(f, t.span(), format!("`{key}` on a rule that ignores its messages"), "an ignored rule never answers and never opens an incident: remove the key, or give the rule a reply or an escalation");
                None
            }
            Some(t) => self.localized(f, t, Slot::Reply, key),
            None => None,
        };
        let texts = IncidentTexts {
            reply: text(&raw.incident_reply, "incident_reply"),
            resolved: text(&raw.incident_resolved, "incident_resolved"),
        };
        (self.diags.len() == n_errors).then_some(texts)
    }

    /// `[signals]`: each key a signal's name, each value a list of
    /// entries with the keywords' semantics.
    fn signals(&mut self, f: usize, table: DeTable<'_>, span: Range<usize>) {
        if let Some((_, first_file, first_span)) = &self.signals {
            let (ff, fs) = (*first_file, first_span.clone());
            self.diags.push(
                Diagnostic::at(f, span.start..span.start + 1, "more than one [signals]")
                    .related(ff, fs, "the first [signals] is here")
                    .hint(
                        "keep one [signals] table across all rule files, with every signal in it",
                    ),
            );
            return;
        }
        let mut signals = Vec::new();
        for (key, value) in table {
            let name_span = key.span();
            let name = key.get_ref().to_string();
            let parsed = match SignalName::parse(&name) {
                Ok(n) if n.as_str() == SignalName::REPEATED => {
                    self.err(f, name_span, format!("`{name}` is the bot's own signal for repeated contact"), "give this list another name: `repeated` is raised by the bot for a third message in 24 h with no human answer");
                    None
                }
                Ok(n) => Some(n),
                Err(e) => {
                    self.err(
                        f,
                        name_span,
                        e,
                        "name signals like `churn` or `legal`: a-z, 0-9, `-` and `_`",
                    );
                    None
                }
            };
            let value_span = value.span();
            let de = ValueDeserializer::from(value);
            let list = match Vec::<Spanned<String>>::deserialize(de) {
                Ok(list) => list,
                Err(e) => {
                    self.err(f, e.span().unwrap_or(value_span), format!("signal `{name}`: {}", e.message().trim()), "a signal is a list of words or phrases: churn = [\"switching to\", \"je pars chez\"]");
                    continue;
                }
            };
            if list.is_empty() {
                self.err(
                    f,
                    value_span,
                    format!("signal `{name}` is an empty list"),
                    "give it the words customers write, or remove it",
                );
                continue;
            }
            let keywords = self.keywords(f, &list, &format!("signals.{name}"));
            if let Some(name) = parsed {
                signals.push(Signal { name, keywords });
            }
        }
        self.signals = Some((signals, f, span));
    }

    fn default(&mut self, f: usize, mut table: DeTable<'_>, span: Range<usize>) {
        self.strip_unknown_keys::<RawDefault>(f, &mut table, "[default]");
        if let Some((_, first_file, first_span)) = &self.default {
            let (ff, fs) = (*first_file, first_span.clone());
            self.diags.push(
                Diagnostic::at(f, span.start..span.start + 1, "more than one [default]")
                    .related(ff, fs, "the first [default] is here")
                    .hint("keep one [default] across all rule files: it says what happens when no rule matches"),
            );
            return;
        }
        let Some(raw) = self.deserialize::<RawDefault>(f, table, span.clone(), "[default]") else {
            return;
        };
        let action = match self.action(
            f,
            &None,
            &raw.escalate,
            &raw.ignore,
            span.clone(),
            "[default]",
        ) {
            Some(Action::Escalate(e)) => DefaultAction::Escalate(e),
            Some(Action::Ignore) => DefaultAction::Ignore,
            _ => return,
        };
        self.default = Some((action, f, span));
    }
}

/// The message for a template too long for `limit`: `n` counted, and the
/// worst-case values it was filled with, so the count can be reproduced.
fn too_long(key: &str, limit: &LengthLimit, n: usize, tpl: &Template) -> String {
    let mut filled = Vec::new();
    if tpl.uses(Placeholder::Author) {
        filled.push("{author} as a 15-character handle");
    }
    if tpl.uses(Placeholder::Name) {
        filled.push("{name} as a 50-character name");
    }
    if tpl.uses(Placeholder::Ticket) {
        filled.push("{ticket} as the longest reference");
    }
    if tpl.uses(Placeholder::Opens) {
        filled.push("{opens} as the longest opening time in any language");
    }
    let at = if filled.is_empty() {
        String::new()
    } else {
        format!(" with {}", filled.join(", "))
    };
    let unit = match limit.platform {
        crate::domain::Platform::X => {
            "weighted characters (URLs count 23, most non-Latin characters and emoji 2)"
        }
        crate::domain::Platform::Mastodon => "characters",
        crate::domain::Platform::Bluesky => {
            "graphemes (URLs count whole; 3 000 UTF-8 bytes at most, counted here as tenths)"
        }
    };
    format!(
        "`{key}` is too long for {}: {n} of {} {unit}{at}",
        limit.platform, limit.max
    )
}

/// Builds the one automaton: identical normalised patterns are shared.
fn compile(
    rules: Vec<Rule>,
    default: Option<DefaultAction>,
    signals: Vec<Signal>,
    files: usize,
) -> Result<RuleSet, Diagnostic> {
    let mut index: HashMap<String, u32> = HashMap::new();
    let mut patterns: Vec<String> = Vec::new();
    let mut uses: Vec<Vec<Use>> = Vec::new();
    let mut keywords = 0;
    // Every list of every rule, then every `[signals]` list (whose uses
    // name the signal where a rule's name the rule).
    let rule_lists = rules.iter().enumerate().flat_map(|(r, rule)| {
        [
            (r, Role::Keyword, &rule.keywords),
            (r, Role::Require, &rule.require),
            (r, Role::RequireAny, &rule.require_any),
            (r, Role::Exclude, &rule.exclude),
        ]
    });
    let signal_lists = signals
        .iter()
        .enumerate()
        .map(|(s, signal)| (s, Role::Signal, &signal.keywords));
    for (owner, role, list) in rule_lists.chain(signal_lists) {
        for (i, k) in list.iter().enumerate() {
            keywords += 1;
            let next = patterns.len() as u32;
            let p = *index.entry(k.pattern.clone()).or_insert_with(|| {
                patterns.push(k.pattern.clone());
                uses.push(Vec::new());
                next
            });
            uses[p as usize].push(Use {
                rule: owner as u32,
                role,
                index: i as u16,
            });
        }
    }
    let matcher = Matcher::new(&patterns).map_err(|e| {
        Diagnostic::global(e.to_string()).hint("split the rules into fewer, broader keywords")
    })?;
    let stats = Stats {
        files,
        rules: rules.len(),
        keywords,
        patterns: patterns.len(),
        examples: 0,
    };
    Ok(RuleSet {
        rules,
        default,
        signals,
        signal_fallback: Escalation {
            queue: Queue::parse("signals").expect("a valid queue name"),
            priority: Priority::Normal,
            ack: None,
            ack_closed: None,
        },
        matcher,
        uses,
        stats,
    })
}

/// Runs every example; returns how many were checked.
fn check_examples(set: &RuleSet, spans: &[ExampleSpans], diags: &mut Vec<Diagnostic>) -> usize {
    let mut checked = 0;
    for (rule, spans) in set.rules.iter().zip(spans) {
        let channel = rule.channels.iter().next().unwrap_or(Channel::Mention);
        for (text, span) in rule.examples.iter().zip(&spans.examples) {
            checked += 1;
            let d = set.route(text, channel);
            if d.rule_id() == Some(&rule.id) {
                continue;
            }
            let why = match (&d.winner, d.losers.iter().find(|l| l.rule.id == rule.id)) {
                (_, Some(l)) => format!("`{}` matched but lost: {}", rule.id, l.reason),
                (Some(w), None) => format!(
                    "it routed to `{}` (keyword `{}`) instead",
                    w.rule.id, w.keyword.written
                ),
                (None, None) => "no rule matched it".to_owned(),
            };
            diags.push(Diagnostic::at(spans.file, span.clone(), format!("example {text:?} of rule `{}` does not route to it on {channel}: {why}", rule.id))
                .hint("add a keyword this example contains, adjust require/require_any/exclude/priority, or fix the example"));
        }
        for (text, span) in rule.not_examples.iter().zip(&spans.not_examples) {
            checked += 1;
            let d = set.route(text, channel);
            if let Some(w) = d.winner.as_ref().filter(|w| w.rule.id == rule.id) {
                diags.push(Diagnostic::at(spans.file, span.clone(), format!("not_example {text:?} routes to rule `{}` on {channel} (keyword `{}` at {}..{})", rule.id, w.keyword.written, w.span.0, w.span.1))
                    .hint("add an `exclude` entry for what tells this message apart, or a rule with a higher priority that should win"));
            }
        }
    }
    checked
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether serde alone, with no unknown-key check before it, refuses
    /// the one-key table `key = value` as a `T` because `key` is unknown.
    fn serde_calls_unknown<T: DeserializeOwned>(key: &str, value: &str) -> bool {
        let toml = format!("{key} = {value}");
        let (root, errors) = DeTable::parse_recoverable(&toml);
        assert!(errors.is_empty(), "{toml}");
        let de = ValueDeserializer::from(Spanned::new(
            0..toml.len(),
            DeValue::Table(root.into_inner()),
        ));
        match T::deserialize(de) {
            Ok(_) => false,
            Err(e) => e.message().contains(&format!("unknown field `{key}`")),
        }
    }

    /// Every listed key is one serde takes, and serde takes no other: the
    /// list and the struct cannot disagree.
    fn keys_are_the_fields<T: DeserializeOwned>() {
        let keys = keys_of::<T>();
        assert!(!keys.is_empty());
        for key in keys {
            // A date fits no field: serde fails on the type, if not the name.
            assert!(
                !serde_calls_unknown::<T>(key, "1979-05-27"),
                "`{key}` is listed but not a field"
            );
        }
        assert!(serde_calls_unknown::<T>("surely_not_a_key", "1979-05-27"));
    }

    #[test]
    fn each_key_list_is_its_struct() {
        keys_are_the_fields::<RawRule>();
        keys_are_the_fields::<RawEscalate>();
        keys_are_the_fields::<RawDefault>();
    }

    #[test]
    fn the_documented_rule_keys_are_the_struct_in_its_order() {
        let docs = include_str!("../../docs/rules.md");
        let listed = format!("The keys are: {}\n", keys_of::<RawRule>().join(", "));
        assert!(docs.contains(&listed), "docs/rules.md should say: {listed}");
    }
}
