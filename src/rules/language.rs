//! The customer's language, read from what they wrote.
//!
//! lingua (three models: English, French, Spanish) was chosen over whatlang
//! on a labelled set of short, informal posts (98.5 % against 90.7 %; the
//! comparison, with its data, is `docs/research/language-detection/`).
//! Handles, hashtags and URLs say nothing of a language and are left out
//! first. Below [`SURE`] the detector is unsure, and the platform's own tag
//! (X `lang`, Mastodon `language`, Bluesky `langs`), which comes from an
//! account's or a client's settings rather than from the text, decides if
//! it names one of the languages; else the language stays unknown and the
//! caller's default applies.

use lingua::{Language, LanguageDetector, LanguageDetectorBuilder};

use crate::domain::language::Lang;

/// The confidence from which the detector's answer is taken (chosen on the
/// development half of the labelled set: 5 % unsure, 99.7 % right when
/// sure, on the held-apart half).
pub const SURE: f64 = 0.6;

/// The bytes of a message the detector reads, at most.
const MAX_READ: usize = 2_000;

/// The languages the detector tells apart.
const LANGUAGES: [Language; 3] = [Language::English, Language::French, Language::Spanish];

/// A language detector, built once and shared (it is `Sync`).
pub struct Detector {
    inner: LanguageDetector,
}

/// What the detector made of a message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detected {
    /// The language, when the text or the platform's tag says it.
    pub lang: Option<Lang>,
    /// The detector's confidence in its best guess, 0 to 1 (0 for a text
    /// with no words).
    pub confidence: f64,
    /// Where `lang` comes from.
    pub source: Source,
}

/// Where a detected language comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The text, with a confidence of at least [`SURE`].
    Text,
    /// The platform's tag, the text being unsure.
    Tag,
    /// Neither: the caller's default applies.
    Unknown,
}

impl Default for Detector {
    fn default() -> Self {
        Detector::new()
    }
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Detector(en, fr, es)")
    }
}

impl Detector {
    /// The process's one detector, built on first use: its models take
    /// some 18 MiB and a noticeable time to load, so a bot whose rules have
    /// no language table never loads them.
    pub fn shared() -> &'static Detector {
        static SHARED: std::sync::OnceLock<Detector> = std::sync::OnceLock::new();
        SHARED.get_or_init(Detector::new)
    }

    /// Builds [`Self::shared`] now if `set` (or the signature of `opts`)
    /// will need it, so that its models do not load on the first message
    /// while a batch holds the database. Blocks: call it off the runtime.
    pub fn warm_for(set: &super::RuleSet, opts: &super::LoadOptions) {
        let signed_by_lang = opts.signature.as_ref().is_some_and(|s| s.is_table());
        if set.has_language_tables() || signed_by_lang {
            Detector::shared();
        }
    }

    /// The detector, its models loaded on first use.
    pub fn new() -> Self {
        Detector {
            inner: LanguageDetectorBuilder::from_languages(&LANGUAGES).build(),
        }
    }

    /// The language of `text`; `tag` is the platform's, if any.
    pub fn detect(&self, text: &str, tag: Option<Lang>) -> Detected {
        // A language shows in its first sentences; a 100 000-character DM
        // must not cost a hundred times more than a post.
        let text = &text[..text.floor_char_boundary(MAX_READ.min(text.len()))];
        let words = without_handles_tags_and_links(text);
        let best = if words.is_empty() {
            None
        } else {
            self.inner
                .compute_language_confidence_values(&words)
                .into_iter()
                .next()
        };
        let confidence = best.map_or(0.0, |(_, c)| c);
        match best {
            Some((language, c)) if c >= SURE => Detected {
                lang: Lang::parse(language.iso_code_639_1().to_string().as_str()).ok(),
                confidence,
                source: Source::Text,
            },
            _ => match tag.filter(|t| supported(*t)) {
                Some(t) => Detected {
                    lang: Some(t),
                    confidence,
                    source: Source::Tag,
                },
                None => Detected {
                    lang: None,
                    confidence,
                    source: Source::Unknown,
                },
            },
        }
    }
}

/// Whether the detector knows `lang`.
fn supported(lang: Lang) -> bool {
    LANGUAGES
        .iter()
        .any(|l| l.iso_code_639_1().to_string() == lang.as_str())
}

/// `text` without its @handles, #hashtags and URLs (a word that starts
/// with one, after an opening bracket or quote).
fn without_handles_tags_and_links(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        let bare = word.trim_start_matches(['(', '[', '"', '\'', '¡', '¿', '«', '“']);
        let noise = bare.starts_with(['@', '#'])
            || ["http://", "https://", "www."].iter().any(|p| {
                bare.as_bytes()
                    .get(..p.len())
                    .is_some_and(|b| b.eq_ignore_ascii_case(p.as_bytes()))
            });
        if !noise {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(word);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lang(code: &str) -> Option<Lang> {
        Lang::parse(code).ok()
    }

    #[test]
    fn handles_tags_and_links_are_left_out() {
        assert_eq!(
            without_handles_tags_and_links(
                "@acme (https://x.co/a) ma #box HTTP://A.b «@bob» www.x.fr ne marche plus"
            ),
            "ma ne marche plus"
        );
        // A word shorter than a scheme, or cut inside a character by one.
        assert_eq!(without_handles_tags_and_links("🤔🤔🤔 ht é"), "🤔🤔🤔 ht é");
    }

    #[test]
    fn clear_text_is_read_and_unsure_text_takes_the_tag_or_nothing() {
        let d = Detector::new();
        let fr = d.detect(
            "@acme bonjour, ma box ne marche plus depuis hier soir",
            None,
        );
        assert_eq!((fr.lang, fr.source), (lang("fr"), Source::Text));
        let en = d.detect(
            "my internet has been down since yesterday, please help",
            lang("fr"),
        );
        assert_eq!(
            (en.lang, en.source),
            (lang("en"), Source::Text),
            "the text wins over the tag"
        );
        let es = d.detect("hola, mi factura es demasiado alta este mes", None);
        assert_eq!(es.lang, lang("es"));
        // Nothing to read: the tag if the detector knows it, else unknown.
        let empty = d.detect("@acme 👍 https://x.co/a", lang("en"));
        assert_eq!((empty.lang, empty.source), (lang("en"), Source::Tag));
        let unknown = d.detect("@acme 👍", lang("de"));
        assert_eq!((unknown.lang, unknown.source), (None, Source::Unknown));
        assert_eq!(d.detect("", None).confidence, 0.0);
    }
}
