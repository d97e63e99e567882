//! Reply templates: `{author}`, `{name}`, `{ticket}` and `{opens}` placeholders.
//!
//! A template is parsed once at load, so rendering cannot fail and an unknown
//! placeholder is a load error, never a reply with a literal `{oops}` in it.

use std::fmt;

use crate::domain::language::Lang;

/// A value a template can insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// The customer's @handle, with the `@`.
    Author,
    /// The customer's display name.
    Name,
    /// The ticket reference (`T-1042`); only in an escalation's `ack`.
    Ticket,
    /// When the team next opens, in the customer's language; only in
    /// `ack_closed`.
    Opens,
}

/// Where a template is written, which decides the placeholders it may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// A `reply` (or any text that opens no ticket).
    Reply,
    /// An escalation's `ack`: `{ticket}` too.
    Ack,
    /// An escalation's `ack_closed`: `{ticket}` and `{opens}`.
    AckClosed,
}

impl Slot {
    fn allows(self, p: Placeholder) -> bool {
        match p {
            Placeholder::Author | Placeholder::Name => true,
            Placeholder::Ticket => self != Slot::Reply,
            Placeholder::Opens => self == Slot::AckClosed,
        }
    }

    fn known(self) -> &'static str {
        match self {
            Slot::Reply => "{author} or {name}",
            Slot::Ack => "{author}, {name} or {ticket}",
            Slot::AckClosed => "{author}, {name}, {ticket} or {opens}",
        }
    }
}

impl Placeholder {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "author" => Some(Placeholder::Author),
            "name" => Some(Placeholder::Name),
            "ticket" => Some(Placeholder::Ticket),
            "opens" => Some(Placeholder::Opens),
            _ => None,
        }
    }

    /// The placeholder `{name}` at `range` of a template, or why it cannot
    /// be there: unknown, or not in this `slot` (`{ticket}` where no ticket
    /// is opened, `{opens}` outside the closed-hours ack).
    fn in_template(
        name: &str,
        range: std::ops::Range<usize>,
        slot: Slot,
    ) -> Result<Self, TemplateError> {
        match Placeholder::parse(name) {
            Some(p) if slot.allows(p) => Ok(p),
            Some(Placeholder::Ticket) => Err(TemplateError {
                range,
                message: "`{ticket}` can only be used in an escalation's `ack` or `ack_closed`".into(),
                hint: "a plain reply opens no ticket: remove `{ticket}`, or make the rule `escalate = { queue = \"…\", ack = \"…{ticket}…\" }`".into(),
            }),
            Some(_) => Err(TemplateError {
                range,
                message: "`{opens}` can only be used in an escalation's `ack_closed`".into(),
                hint: "the next opening time is only known to be wanted when the team is away: write it in `ack_closed = \"… {opens} …\"` beside `ack`".into(),
            }),
            None => Err(TemplateError {
                range,
                message: format!("unknown placeholder `{{{name}}}`"),
                hint: format!("use {}; write `{{{{` for a literal brace", slot.known()),
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Text(String),
    Hole(Placeholder),
}

/// A parsed reply template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    segments: Vec<Segment>,
}

/// A reply or an acknowledgement: one text for every language, or one
/// per language (a table of ISO 639-1 codes), in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Localized {
    /// `reply = "…"`: the same text whatever the customer writes in.
    Any(Template),
    /// `reply = { fr = "…", en = "…" }`, never empty.
    ByLang(Vec<(Lang, Template)>),
}

impl Localized {
    /// The text for a customer who writes in `lang` (`None`: not known):
    /// that language's, else the `default` language's, else the first of
    /// the table; and the language chosen (`None` for a single text).
    pub fn pick(&self, lang: Option<Lang>, default: Option<Lang>) -> (&Template, Option<Lang>) {
        match self {
            Localized::Any(t) => (t, None),
            Localized::ByLang(table) => {
                let find = |l: Option<Lang>| table.iter().find(|(k, _)| Some(*k) == l);
                let (k, t) = find(lang).or_else(|| find(default)).unwrap_or(&table[0]);
                (t, Some(*k))
            }
        }
    }

    /// Whether the text differs by language, so that the customer's
    /// language must be known to pick it.
    pub fn is_table(&self) -> bool {
        matches!(self, Localized::ByLang(_))
    }

    /// Whether the customer's language changes the text sent: a table, or
    /// `{opens}`, which is written in their language.
    pub fn needs_language(&self) -> bool {
        self.is_table()
            || self
                .variants()
                .iter()
                .any(|(_, t)| t.uses(Placeholder::Opens))
    }

    /// Every text, with its language (`None` for a single text).
    pub fn variants(&self) -> Vec<(Option<Lang>, &Template)> {
        match self {
            Localized::Any(t) => vec![(None, t)],
            Localized::ByLang(table) => table.iter().map(|(k, t)| (Some(*k), t)).collect(),
        }
    }
}

/// What is wrong with a template, with the byte range inside the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// Byte range within the template text.
    pub range: std::ops::Range<usize>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

/// The values a template is rendered with.
#[derive(Debug, Clone, Copy, Default)]
pub struct Vars<'a> {
    /// The customer's handle, without `@`.
    pub author: &'a str,
    /// The customer's display name.
    pub name: &'a str,
    /// The ticket reference, when there is one.
    pub ticket: Option<&'a str>,
    /// The next opening, written for the customer, when the team is away.
    pub opens: Option<&'a str>,
}

impl Template {
    /// Parses a template written in `slot`.
    pub fn parse(source: &str, slot: Slot) -> Result<Self, Vec<TemplateError>> {
        let mut segments = Vec::new();
        let mut errors = Vec::new();
        let mut text = String::new();
        let bytes = source.as_bytes();
        let mut i = 0;
        // Text is copied a run at a time, up to the next brace: loading
        // 10 000 rules parses 10 000 templates.
        while let Some(at) = memchr::memchr2(b'{', b'}', &bytes[i..]).map(|n| i + n) {
            text.push_str(&source[i..at]);
            let brace = bytes[at];
            if bytes.get(at + 1) == Some(&brace) {
                // `{{` or `}}`: a literal brace.
                text.push(brace as char);
                i = at + 2;
                continue;
            }
            if brace == b'}' {
                errors.push(TemplateError {
                    range: at..at + 1,
                    message: "`}` without a matching `{`".into(),
                    hint: "write `}}` for a literal brace".into(),
                });
                i = at + 1;
                continue;
            }
            let Some(close) = memchr::memchr(b'}', &bytes[at..]).map(|n| at + n) else {
                errors.push(TemplateError {
                    range: at..source.len(),
                    message: "`{` is never closed".into(),
                    hint: "close the placeholder with `}`, or write `{{` for a literal brace"
                        .into(),
                });
                i = source.len();
                break;
            };
            match Placeholder::in_template(&source[at + 1..close], at..close + 1, slot) {
                Ok(p) => {
                    end_text(&mut segments, &mut text);
                    segments.push(Segment::Hole(p));
                }
                Err(e) => errors.push(e),
            }
            i = close + 1;
        }
        text.push_str(&source[i..]);
        end_text(&mut segments, &mut text);
        if errors.is_empty() {
            Ok(Template {
                source: source.to_owned(),
                segments,
            })
        } else {
            Err(errors)
        }
    }

    /// What `{opens}` says in this template while the team is away
    /// (`closed`: the hours and the next opening): the opening written in
    /// the language of the text chosen from its table (`chosen`), else the
    /// customer's, else the default. `None` when open or unused.
    pub fn opens(
        &self,
        closed: Option<(
            &crate::domain::hours::BusinessHours,
            crate::domain::clock::Millis,
        )>,
        (chosen, lang, default): (Option<Lang>, Option<Lang>, Option<Lang>),
    ) -> Option<String> {
        closed
            .filter(|_| self.uses(Placeholder::Opens))
            .map(|(h, at)| h.describe(at, chosen.or(lang).or(default)))
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the template uses `placeholder`.
    pub fn uses(&self, placeholder: Placeholder) -> bool {
        self.segments.contains(&Segment::Hole(placeholder))
    }

    /// Renders the template. What a customer controls is made inert here,
    /// whoever calls ([`crate::domain::inert`]): a handle follows an `@` only if it
    /// is a plain handle, and a name is plain words; an empty name falls
    /// back to the handle's words.
    pub fn render(&self, vars: &Vars<'_>) -> String {
        let mut out = String::with_capacity(self.source.len() + 32);
        self.render_into(vars, &mut out);
        out
    }

    /// [`Template::render`] appended to `out`: a bulk caller reuses one
    /// buffer instead of allocating a reply per message.
    pub fn render_into(&self, vars: &Vars<'_>, out: &mut String) {
        for s in &self.segments {
            match s {
                Segment::Text(t) => out.push_str(t),
                Segment::Hole(Placeholder::Author) => {
                    if crate::domain::inert::is_plain_handle(vars.author) {
                        out.push('@');
                        out.push_str(vars.author);
                    } else {
                        out.push_str(&crate::domain::inert::inert(vars.author));
                    }
                }
                Segment::Hole(Placeholder::Name) => {
                    let name = crate::domain::inert::inert(vars.name);
                    if name.is_empty() {
                        out.push_str(&crate::domain::inert::inert(vars.author));
                    } else {
                        out.push_str(&name);
                    }
                }
                Segment::Hole(Placeholder::Ticket) => out.push_str(vars.ticket.unwrap_or("")),
                Segment::Hole(Placeholder::Opens) => out.push_str(vars.opens.unwrap_or("")),
            }
        }
    }
}

/// Ends the text segment being gathered, if any.
fn end_text(segments: &mut Vec<Segment>, text: &mut String) {
    if !text.is_empty() {
        segments.push(Segment::Text(std::mem::take(text)));
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parser as it was, a character at a time: the run-at-a-time one
    /// must give the same segments, or errors at the same places.
    fn parse_by_char(
        source: &str,
        slot: Slot,
    ) -> Result<Vec<Segment>, Vec<std::ops::Range<usize>>> {
        let (mut segments, mut errors, mut text) = (Vec::new(), Vec::new(), String::new());
        let mut rest = source.char_indices().peekable();
        while let Some((i, c)) = rest.next() {
            let doubled = rest.peek().map(|p| p.1) == Some(c);
            match c {
                '{' | '}' if doubled => {
                    rest.next();
                    text.push(c);
                }
                '{' => {
                    let Some(close) = source[i..].find('}').map(|n| i + n) else {
                        errors.push(i..source.len());
                        break;
                    };
                    match Placeholder::in_template(&source[i + 1..close], i..close + 1, slot) {
                        Ok(p) => {
                            end_text(&mut segments, &mut text);
                            segments.push(Segment::Hole(p));
                        }
                        Err(e) => errors.push(e.range),
                    }
                    while rest.peek().is_some_and(|p| p.0 <= close) {
                        rest.next();
                    }
                }
                '}' => errors.push(i..i + 1),
                _ => text.push(c),
            }
        }
        end_text(&mut segments, &mut text);
        if errors.is_empty() {
            Ok(segments)
        } else {
            Err(errors)
        }
    }

    proptest::proptest! {
        #[test]
        fn parses_as_the_character_parser_did(
            src in proptest::string::string_regex("([{}]|\\{author\\}|\\{name\\}|\\{ticket\\}|\\{opens\\}|[a é€]){0,12}").unwrap()
        ) {
            for slot in [Slot::Reply, Slot::Ack, Slot::AckClosed] {
                let got = Template::parse(&src, slot)
                    .map(|t| t.segments)
                    .map_err(|es| es.into_iter().map(|e| e.range).collect::<Vec<_>>());
                let want = parse_by_char(&src, slot);
                proptest::prop_assert_eq!(got, want, "{:?}", src);
            }
        }
    }

    #[test]
    fn renders_placeholders_and_escapes() {
        let t = Template::parse("Hi {author} ({name}) {{x}} {ticket}", Slot::Ack).unwrap();
        let v = Vars {
            author: "bob",
            name: "Bob",
            ticket: Some("T-1"),
            opens: None,
        };
        assert_eq!(t.render(&v), "Hi @bob (Bob) {x} T-1");
    }

    #[test]
    fn customer_values_are_inert() {
        let t = Template::parse("Hi {name}, thanks {author}!", Slot::Reply).unwrap();
        let v = Vars {
            author: "eve1",
            name: "@elonmusk @POTUS https://evil.example/phish #scam",
            ticket: None,
            opens: None,
        };
        assert_eq!(t.render(&v), "Hi elonmusk POTUS scam, thanks @eve1!");
        let odd = Vars {
            author: "eve @ceo",
            name: "\u{200B}",
            ticket: None,
            opens: None,
        };
        assert_eq!(t.render(&odd), "Hi eve ceo, thanks eve ceo!");
    }

    #[test]
    fn rejects_unknown_and_misplaced_placeholders() {
        let e = Template::parse("Hi {user}", Slot::Reply).unwrap_err();
        assert_eq!(e[0].range, 3..9);
        assert!(Template::parse("see {ticket}", Slot::Reply).is_err());
        assert!(Template::parse("see {ticket}", Slot::Ack).is_ok());
        let e = Template::parse("back {opens}", Slot::Ack).unwrap_err();
        assert!(e[0].message.contains("ack_closed"), "{}", e[0].message);
        assert!(Template::parse("back {opens} ({ticket})", Slot::AckClosed).is_ok());
        assert!(Template::parse("open {author", Slot::Reply).is_err());
        assert!(Template::parse("stray }", Slot::Reply).is_err());
    }
}

#[cfg(test)]
mod localized_tests {
    use super::*;

    fn table(entries: &[(&str, &str)]) -> Localized {
        Localized::ByLang(
            entries
                .iter()
                .map(|(l, t)| {
                    (
                        Lang::parse(l).unwrap(),
                        Template::parse(t, Slot::Reply).unwrap(),
                    )
                })
                .collect(),
        )
    }

    fn picked(
        l: &Localized,
        lang: Option<&str>,
        default: Option<&str>,
    ) -> (String, Option<String>) {
        let lang = lang.map(|c| Lang::parse(c).unwrap());
        let default = default.map(|c| Lang::parse(c).unwrap());
        let (t, k) = l.pick(lang, default);
        (t.source().to_owned(), k.map(|k| k.to_string()))
    }

    #[test]
    fn the_customers_language_then_the_default_then_the_first() {
        let l = table(&[("fr", "Bonjour"), ("en", "Hello"), ("es", "Hola")]);
        let cases = [
            (Some("en"), Some("fr"), "Hello", "en"),
            (Some("es"), None, "Hola", "es"),
            (Some("de"), Some("en"), "Hello", "en"),
            (Some("de"), Some("it"), "Bonjour", "fr"),
            (None, Some("es"), "Hola", "es"),
            (None, None, "Bonjour", "fr"),
        ];
        for (lang, default, text, chosen) in cases {
            assert_eq!(
                picked(&l, lang, default),
                (text.to_owned(), Some(chosen.to_owned())),
                "{lang:?} {default:?}"
            );
        }
        let one = Localized::Any(Template::parse("Hi", Slot::Reply).unwrap());
        assert_eq!(
            picked(&one, Some("fr"), Some("en")),
            ("Hi".to_owned(), None)
        );
    }
}
