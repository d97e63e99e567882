//! Text normalisation for matching: the same function serves keywords and messages.
//!
//! The output is a lower-case, accent-free, compatibility-decomposed string in
//! which every white-space run is one space, invisible controls are gone and
//! typographic quotes are plain. Each output byte remembers the original
//! bytes it came from, so a keyword hit can be shown in the customer's own
//! text.
//!
//! Why NFKD and not NFKC: accent folding needs the decomposed form anyway
//! (`é` → `e` + U+0301, then the mark is dropped), and since keywords and
//! messages go through the same function the two forms match the same
//! things. Only the diacritic blocks are stripped: the marks of other
//! scripts (Japanese dakuten, Indic vowel signs) change meaning, so they are
//! kept and treated as part of the word.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// A normalised text and its map back to the original.
#[derive(Debug, Default, Clone)]
pub struct Normalized {
    /// The normalised text.
    pub text: String,
    /// For each byte of `text`, the original byte range `[start, end)` it
    /// came from; empty when normalised without spans.
    spans: Vec<(u32, u32)>,
    /// Whether `spans` is being kept.
    with_spans: bool,
}

impl Normalized {
    /// Maps a byte range of the normalised text back to the original text.
    pub fn original_span(&self, start: usize, end: usize) -> (usize, usize) {
        if start >= end || end > self.spans.len() {
            return (0, 0);
        }
        (self.spans[start].0 as usize, self.spans[end - 1].1 as usize)
    }

    /// The end of the word that contains byte `pos` (for prefix keywords,
    /// whose evidence is the whole word, not just the prefix).
    pub fn word_end(&self, pos: usize) -> usize {
        self.text[pos..]
            .char_indices()
            .find(|(_, c)| !is_word_char(*c))
            .map_or(self.text.len(), |(i, _)| pos + i)
    }

    fn clear(&mut self) {
        self.text.clear();
        self.spans.clear();
    }

    fn push_char(&mut self, c: char, from: (usize, usize)) {
        if c == ' ' {
            self.push_space(from);
            return;
        }
        self.text.push(c);
        if self.with_spans {
            for _ in 0..c.len_utf8() {
                self.spans.push((from.0 as u32, from.1 as u32));
            }
        }
    }

    fn push_space(&mut self, from: (usize, usize)) {
        if self.text.is_empty() || self.text.ends_with(' ') {
            return;
        }
        self.text.push(' ');
        if self.with_spans {
            self.spans.push((from.0 as u32, from.1 as u32));
        }
    }
}

/// Whether `c` belongs inside a word: letters and digits of any script, and
/// the marks that combine with them. Punctuation, emoji and apostrophes do not.
pub fn is_word_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric();
    }
    c.is_alphanumeric() || is_combining_mark(c)
}

/// Scripts written without spaces between words: a keyword in them matches
/// inside a run of text, since no word boundary exists to anchor it.
pub fn is_unspaced_script(c: char) -> bool {
    matches!(c as u32,
        0x0E00..=0x0EFF      // Thai, Lao
        | 0x1000..=0x109F    // Myanmar
        | 0x1780..=0x17FF    // Khmer
        | 0x3040..=0x30FF    // Hiragana, Katakana
        | 0x31F0..=0x31FF    // Katakana extensions
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0x20000..=0x3FFFF) // CJK extensions B and beyond
}

/// Invisible characters that only serve to hide a word from a filter:
/// zero-width spaces and joiners, bidi controls, the BOM and soft hyphens.
fn is_invisible(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180E
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F
        | 0xFE00..=0xFE0F | 0xFEFF | 0xE0000..=0xE007F)
}

/// Combining diacritics of Latin, Greek and Cyrillic: the "accents" to fold.
fn is_diacritic(c: char) -> bool {
    matches!(c as u32,
        0x0300..=0x036F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F)
}

/// Typographic apostrophes and quotes, mapped to their plain forms.
fn plain_quote(c: char) -> Option<char> {
    match c {
        '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' | '\u{2032}' | '\u{02BC}'
        | '\u{02B9}' | '\u{FF07}' | '`' | '\u{00B4}' => Some('\''),
        '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' | '\u{2033}' | '\u{00AB}'
        | '\u{00BB}' | '\u{FF02}' => Some('"'),
        _ => None,
    }
}

/// Normalises `src` into `out` (reusing its buffers). With `mask`, @handles
/// and URLs are replaced by a space, so their words are never searched.
/// With `with_spans`, `out` also maps back to the original text; matching
/// does without, and only the evidence for a decision pays for it.
pub fn normalize_into(src: &str, mask: bool, with_spans: bool, out: &mut Normalized) {
    out.clear();
    out.with_spans = with_spans;
    out.text.reserve(src.len());
    if with_spans {
        out.spans.reserve(src.len());
    }
    let bytes = src.as_bytes();
    let mut i = 0;
    // Whether the previous original character was a word character: handles
    // and URLs only start after a non-word character (`me@acme.fr` is an
    // e-mail address, not a mention).
    let mut prev_word = false;
    while i < bytes.len() {
        if mask
            && !prev_word
            && let Some(end) = masked_entity_end(src, i)
        {
            out.push_space((i, end));
            i = end;
            prev_word = false;
            continue;
        }
        let b = bytes[i];
        if b.is_ascii_alphanumeric() {
            // The fast path for the common case, a run of ASCII letters and
            // digits: copied and lower-cased in bulk, one span per byte.
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
                i += 1;
            }
            let at = out.text.len();
            out.text.push_str(&src[start..i]);
            out.text[at..].make_ascii_lowercase();
            if with_spans {
                out.spans
                    .extend((start as u32..i as u32).map(|k| (k, k + 1)));
            }
            prev_word = true;
            continue;
        }
        if b.is_ascii() {
            // The fast path: most messages are mostly ASCII, and NFKD,
            // case mapping and the invisible-character check are trivial here.
            let from = (i, i + 1);
            if b.is_ascii_whitespace() {
                out.push_space(from);
            } else if b == b'`' {
                out.push_char('\'', from);
            } else {
                out.push_char(b.to_ascii_lowercase() as char, from);
            }
            prev_word = b.is_ascii_alphanumeric();
            i += 1;
            continue;
        }
        let c = src[i..].chars().next().expect("i is on a char boundary");
        let from = (i, i + c.len_utf8());
        prev_word = is_word_char(c);
        i = from.1;
        push_folded(c, from, out);
    }
    if out.text.ends_with(' ') {
        out.text.pop();
        if with_spans {
            out.spans.pop();
        }
    }
}

fn push_folded(c: char, from: (usize, usize), out: &mut Normalized) {
    if is_invisible(c) {
        return;
    }
    if c.is_whitespace() {
        out.push_space(from);
        return;
    }
    if let Some(q) = plain_quote(c) {
        out.push_char(q, from);
        return;
    }
    for d in c.nfkd() {
        for l in d.to_lowercase() {
            match l {
                _ if is_diacritic(l) || is_invisible(l) => {}
                'ß' => {
                    out.push_char('s', from);
                    out.push_char('s', from);
                }
                'ς' => out.push_char('σ', from),
                _ if l.is_whitespace() => out.push_space(from),
                _ => out.push_char(plain_quote(l).unwrap_or(l), from),
            }
        }
    }
}

/// If an @handle or a URL starts at byte `i`, where it ends.
fn masked_entity_end(src: &str, i: usize) -> Option<usize> {
    let bytes = src.as_bytes();
    let rest = &bytes[i..];
    let is_handle_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    if rest.first() == Some(&b'@') && rest.get(1).is_some_and(|b| is_handle_byte(*b)) {
        let mut j = 1;
        while j < rest.len() && is_handle_byte(rest[j]) {
            j += 1;
        }
        // Mastodon's remote accounts: @user@domain.tld
        if rest.get(j) == Some(&b'@') {
            let mut k = j + 1;
            while k < rest.len()
                && (rest[k].is_ascii_alphanumeric() || rest[k] == b'.' || rest[k] == b'-')
            {
                k += 1;
            }
            while k > j + 1 && rest[k - 1] == b'.' {
                k -= 1;
            }
            if k > j + 1 {
                j = k;
            }
        }
        return Some(i + j);
    }
    let starts = |p: &[u8]| rest.len() >= p.len() && rest[..p.len()].eq_ignore_ascii_case(p);
    if starts(b"http://") || starts(b"https://") || starts(b"www.") {
        let end = src[i..]
            .find(|c: char| c.is_whitespace())
            .map_or(src.len(), |n| i + n);
        return Some(end);
    }
    None
}

/// Normalises into a fresh value; see [`normalize_into`].
pub fn normalize(src: &str, mask: bool) -> Normalized {
    let mut out = Normalized::default();
    normalize_into(src, mask, true, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_case_accents_width_and_quotes() {
        let gakkou: String = "がっこう".nfkd().collect();
        let cases = [
            ("Éé", "ee"),
            ("REMBOURSÉ", "rembourse"),
            ("re\u{200b}fund", "refund"),
            ("ｒｅｆｕｎｄ", "refund"),
            ("l’appli", "l'appli"),
            ("mot   de\n\tpasse", "mot de passe"),
            ("Straße", "strasse"),
            ("  padded  ", "padded"),
            ("\u{202e}drawkcab", "drawkcab"),
            ("がっこう", gakkou.as_str()),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input, false).text, want, "input {input:?}");
        }
    }

    #[test]
    fn masks_handles_and_urls() {
        let n = normalize("@acme see https://x.com/refund now", true);
        assert_eq!(n.text, "see now");
        let n = normalize("@bob@example.social hi", true);
        assert_eq!(n.text, "hi");
        let n = normalize("mail me@acme.fr", true);
        assert_eq!(n.text, "mail me@acme.fr");
    }

    #[test]
    fn spans_map_back_to_the_original() {
        let src = "Je veux être REMBOURSÉ";
        let n = normalize(src, true);
        let start = n.text.find("rembourse").unwrap();
        let (s, e) = n.original_span(start, start + "rembourse".len());
        assert_eq!(&src[s..e], "REMBOURSÉ");
    }
}
