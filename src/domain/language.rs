//! Languages, as ISO 639-1 codes: the keys of a rule's language table and
//! of `[replies] signature`, and what a platform tags a post with.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};

/// A language: two lower-case ISO 639-1 letters (`fr`, `en`, `es`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize, serde::Serialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Lang([u8; 2]);

impl TryFrom<String> for Lang {
    type Error = NotALang;
    fn try_from(s: String) -> Result<Lang, NotALang> {
        Lang::parse(&s)
    }
}

impl From<Lang> for String {
    fn from(l: Lang) -> String {
        l.as_str().to_owned()
    }
}

/// Why a text is not a language code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a language code: write two letters of ISO 639-1, such as fr, en or es")]
pub struct NotALang(pub String);

impl Lang {
    /// A rule file's or the configuration's code: two ASCII letters, in
    /// any case (`FR` is `fr`).
    pub fn parse(s: &str) -> Result<Lang, NotALang> {
        match s.as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Ok(Lang([a.to_ascii_lowercase(), b.to_ascii_lowercase()]))
            }
            _ => Err(NotALang(s.to_owned())),
        }
    }

    /// The language of a platform's tag (BCP 47: `fr`, `fr-FR`, `en_US`),
    /// or `None` for a tag without one (`und`, `zxx`, X's `qme`, three-letter
    /// codes).
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag.split(['-', '_']).next()?;
        Lang::parse(primary).ok()
    }

    /// The code, `fr`.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("two ASCII letters")
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A plain text of the configuration, one for every language or one per
/// language (`signature = " · automated reply"`, or `{ fr = "…", en = "…" }`),
/// the table in the order written, since its first text is the last resort.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalizedText(Vec<(Option<Lang>, String)>);

impl LocalizedText {
    /// One text for every language.
    pub fn any(text: impl Into<String>) -> Self {
        LocalizedText(vec![(None, text.into())])
    }

    /// The text for a customer who writes in `lang`: that language's, else
    /// the `default` language's, else the first.
    pub fn pick(&self, lang: Option<Lang>, default: Option<Lang>) -> &str {
        let find = |l: Option<Lang>| self.0.iter().find(|(k, _)| l.is_some() && *k == l);
        let (_, text) = find(lang).or_else(|| find(default)).unwrap_or(&self.0[0]);
        text
    }

    /// Whether the text differs by language, so that the customer's
    /// language must be known to pick it.
    pub fn is_table(&self) -> bool {
        self.0.iter().any(|(l, _)| l.is_some())
    }

    /// Every text, with its language (`None` for a single text).
    pub fn variants(&self) -> impl Iterator<Item = (Option<Lang>, &str)> {
        self.0.iter().map(|(l, t)| (*l, t.as_str()))
    }
}

impl<'de> serde::Deserialize<'de> for LocalizedText {
    // By hand: a map read into a `BTreeMap` would lose the order written.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> Visitor<'de> for Text {
            type Value = LocalizedText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a text, or a table of texts by language such as { fr = \"…\", en = \"…\" }",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<LocalizedText, E> {
                Ok(LocalizedText::any(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LocalizedText, A::Error> {
                let mut entries = Vec::new();
                while let Some(code) = map.next_key::<String>()? {
                    let lang = Lang::parse(&code).map_err(de::Error::custom)?;
                    if entries.iter().any(|(l, _)| *l == Some(lang)) {
                        return Err(de::Error::custom(format!(
                            "`{lang}` is given twice: keep one text per language"
                        )));
                    }
                    entries.push((Some(lang), map.next_value::<String>()?));
                }
                if entries.is_empty() {
                    return Err(de::Error::custom(
                        "an empty table: give a text, or one per language",
                    ));
                }
                Ok(LocalizedText(entries))
            }
        }
        d.deserialize_any(Text)
    }
}

impl serde::Serialize for LocalizedText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [(None, text)] => s.serialize_str(text),
            entries => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (lang, text) in entries {
                    let code = lang.map(|l| l.to_string()).unwrap_or_default();
                    map.serialize_entry(&code, text)?;
                }
                map.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_two_letters_in_any_case() {
        assert_eq!(Lang::parse("fr").unwrap().as_str(), "fr");
        assert_eq!(Lang::parse("EN").unwrap().as_str(), "en");
        for bad in ["", "f", "fra", "f1", "é", "fr-FR", " fr"] {
            assert!(Lang::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn platform_tags_give_their_primary_language() {
        assert_eq!(Lang::from_tag("fr-FR").unwrap().as_str(), "fr");
        assert_eq!(Lang::from_tag("en_US").unwrap().as_str(), "en");
        assert_eq!(Lang::from_tag("es").unwrap().as_str(), "es");
        for none in ["und", "zxx", "qme", "", "-"] {
            assert_eq!(Lang::from_tag(none), None, "{none:?}");
        }
    }

    #[test]
    fn a_text_table_keeps_its_order_and_falls_back() {
        let t: LocalizedText =
            toml::from_str::<toml::Table>("s = { fr = \" · réponse auto\", en = \" · auto\" }")
                .unwrap()["s"]
                .clone()
                .try_into()
                .unwrap();
        let fr = Lang::parse("fr").ok();
        let en = Lang::parse("en").ok();
        let de = Lang::parse("de").ok();
        assert_eq!(t.pick(en, fr), " · auto");
        assert_eq!(t.pick(de, en), " · auto");
        assert_eq!(t.pick(de, None), " · réponse auto");
        assert_eq!(t.pick(None, None), " · réponse auto");
        let one = LocalizedText::any(" · bot");
        assert_eq!(one.pick(fr, en), " · bot");
        for bad in [
            "s = { fra = \"x\" }",
            "s = {}",
            "s = 3",
            "s = { fr = \"a\", FR = \"b\" }",
        ] {
            let table = toml::from_str::<toml::Table>(bad).unwrap();
            assert!(
                table["s"].clone().try_into::<LocalizedText>().is_err(),
                "{bad}"
            );
        }
    }
}
