//! Languages, as ISO 639-1 codes: the keys of a rule's language table, the
//! `[language] default` of the configuration, and what a platform tags a
//! post with.

use std::fmt;

/// A language: two lower-case ISO 639-1 letters (`fr`, `en`, `es`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Lang([u8; 2]);

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
}
