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
    /// Where the matcher must start its walks, one bit per byte of `text`,
    /// when the normaliser already knows (the ASCII path); `None`: the
    /// matcher finds them itself.
    pub(crate) walk_bits: Option<Vec<u64>>,
    /// The ASCII path's map back: `(output byte, original byte)` at every
    /// point where the offset between them changes.
    checkpoints: Vec<(u32, u32)>,
}

impl Normalized {
    /// Maps a byte range of the normalised text back to the original text.
    pub fn original_span(&self, start: usize, end: usize) -> (usize, usize) {
        if self.is_fast() {
            if start >= end || end > self.text.len() {
                return (0, 0);
            }
            let map = |o: usize| {
                let k = self.checkpoints.partition_point(|c| c.0 as usize <= o);
                let (co, ci) = self.checkpoints[k - 1];
                ci as usize + (o - co as usize)
            };
            return (map(start), map(end - 1) + 1);
        }
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
        if let Some(w) = &mut self.walk_bits {
            w.clear();
        }
    }

    /// Whether the original text was plain ASCII, normalised by the fast
    /// path (spans kept, walk starts listed).
    pub fn is_fast(&self) -> bool {
        self.walk_bits.is_some()
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
    out.walk_bits = None;
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

/// The same result as [`normalize_into`] with masking and spans, for a
/// text that is plain ASCII (the common case), in one pass that also marks
/// where the matcher's walks start: at a letter or digit after a non-word
/// byte, and at every other byte but the space (`#panne`, `?`). Equivalence
/// with the general path is a property test.
///
/// Eight bytes at a time when they hold nothing unusual (letters, digits,
/// punctuation, single spaces): lower-cased and classified with word-wide
/// arithmetic, no branch per byte. A byte at a time otherwise: white space
/// after white space, a control character, `@`, the backtick, or any text
/// that may hold a URL. Rather than a span per byte, a checkpoint marks
/// each place where the offset to the original changes.
pub fn normalize_ascii_into(src: &str, out: &mut Normalized) {
    debug_assert!(src.is_ascii());
    let bytes = src.as_bytes();
    let n = bytes.len();
    out.clear();
    out.with_spans = false;
    let mut bits = out.walk_bits.take().unwrap_or_default();
    bits.clear();
    // One bit per output byte, and a spare word for the chunk that straddles.
    bits.resize(n / 64 + 2, 0);
    let mut text = std::mem::take(&mut out.text).into_bytes();
    text.clear();
    text.resize(n + 8, 0);
    let cps = &mut out.checkpoints;
    cps.clear();
    cps.push((0, 0));
    let urls = may_hold_url(bytes);
    // Plain slices, so their lengths stay in registers in the loop.
    let (tx, wb) = (&mut text[..], &mut bits[..]);
    // Original index minus output index.
    let mut shift = 0usize;
    // The class of the last byte looked at; the start of the text counts
    // as white space (leading spaces go, a handle may start there).
    let mut prev = C_SPACE;
    let mut i = 0;
    while i < n {
        if !urls && i + 8 <= n {
            // The previous byte's flags, in byte 0's place.
            let mut prev_alnum: u64 = if prev == C_ALNUM || prev == C_HW {
                0x80
            } else {
                0
            };
            let mut prev_space: u64 = if prev == C_SPACE { 0x80 } else { 0 };
            let mut plain = 0;
            while i + 8 <= n {
                let x = u64::from_le_bytes(bytes[i..i + 8].try_into().expect("eight bytes"));
                // Bit 5 is the case bit of letters: set, every letter is lower case.
                let alpha = in_range(x | (0x20 * ONES), b'a', b'z');
                let alnum = alpha | in_range(x, b'0', b'9');
                let space = in_range(x, b' ', b' ');
                // Control characters; `@` and the backtick (0x40 and 0x60).
                let unusual = in_range(x, 0, 0x1f)
                    | in_range(x & !(0x20 * ONES), b'@', b'@')
                    | (space & (space << 8 | prev_space));
                if unusual != 0 {
                    break;
                }
                let o = i - shift;
                let walks = (alnum & !(alnum << 8 | prev_alnum)) | (!alnum & !space & HIGH);
                tx[o..o + 8].copy_from_slice(&(x | alpha >> 2).to_le_bytes());
                let m = ((walks >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u128;
                let m = m << (o & 63);
                wb[o >> 6] |= m as u64;
                wb[(o >> 6) + 1] |= (m >> 64) as u64;
                // No branch on the last byte's class: random text would
                // mispredict it.
                prev_alnum = alnum >> 56;
                prev_space = space >> 56;
                i += 8;
                plain += 1;
            }
            if plain > 0 {
                prev = if prev_alnum != 0 {
                    C_ALNUM
                } else if prev_space != 0 {
                    C_SPACE
                } else {
                    C_OTHER
                };
            }
            if i == n {
                break;
            }
        }
        let o = i - shift;
        let b = bytes[i];
        let c = if urls {
            ASCII_CLASS[b as usize]
        } else {
            ASCII_CLASS_NO_URL[b as usize]
        };
        let t = TRANSITION[(prev as usize) << 3 | c as usize];
        if t & UNUSUAL != 0 {
            if c == C_SPACE {
                // White space after white space: one space is enough.
                i += 1;
                shift += 1;
                cps.push(((i - shift) as u32, i as u32));
                continue;
            }
            if let Some(end) = masked_entity_end(src, i) {
                // A handle or URL becomes a space (none if one is there).
                if prev != C_SPACE {
                    tx[o] = b' ';
                    i += 1;
                    prev = C_SPACE;
                }
                shift += end - i;
                i = end;
                cps.push(((i - shift) as u32, i as u32));
                continue;
            }
        }
        tx[o] = ASCII_FOLD[b as usize];
        wb[o >> 6] |= ((t & WALK) as u64) << (o & 63);
        prev = c;
        i += 1;
    }
    let mut o = n - shift;
    if o > 0 && tx[o - 1] == b' ' {
        o -= 1;
    }
    text.truncate(o);
    out.text = String::from_utf8(text).expect("only ASCII bytes were written");
    out.walk_bits = Some(bits);
}

/// The high bit of each byte of `x`.
const HIGH: u64 = 0x8080_8080_8080_8080;
/// The low bit of each byte.
const ONES: u64 = 0x0101_0101_0101_0101;

/// The high bit of each byte of `x` set when that byte is in `lo..=hi`.
/// Every byte of `x` must be ASCII (below 0x80), so no subtraction borrows
/// from its neighbour.
#[inline]
fn in_range(x: u64, lo: u8, hi: u8) -> u64 {
    // 0x80 + hi - b keeps its high bit exactly when b <= hi.
    let le_hi = ((0x80 | hi) as u64 * ONES).wrapping_sub(x);
    // 0x80 + b - lo keeps its high bit exactly when b >= lo.
    let ge_lo = (x | HIGH).wrapping_sub(lo as u64 * ONES);
    le_hi & ge_lo & HIGH
}

/// Whether `b` may hold a URL the masking would remove (`http://`,
/// `https://` and `www.` in any case): without one, `h` and `w` are just
/// letters.
fn may_hold_url(b: &[u8]) -> bool {
    // Built once: a searcher's set-up costs more than a short search.
    static SCHEME: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"://"));
    SCHEME.find(b).is_some()
        || memchr::memchr_iter(b'.', b).any(|p| p >= 3 && b[p - 3..p].eq_ignore_ascii_case(b"www"))
}

/// [`ASCII_CLASS`]: a letter or digit that cannot begin a URL.
const C_ALNUM: u8 = 0;
/// [`ASCII_CLASS`]: `h` or `w`, which may begin a URL.
const C_HW: u8 = 1;
/// [`ASCII_CLASS`]: white space.
const C_SPACE: u8 = 2;
/// [`ASCII_CLASS`]: `@`, which may begin a handle.
const C_AT: u8 = 3;
/// [`ASCII_CLASS`]: any other byte.
const C_OTHER: u8 = 4;

/// The class of each ASCII byte.
static ASCII_CLASS: [u8; 256] = {
    let mut t = [C_OTHER; 256];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        t[b] = if matches!(c, b'h' | b'H' | b'w' | b'W') {
            C_HW
        } else if c.is_ascii_alphanumeric() {
            C_ALNUM
        } else if c.is_ascii_whitespace() {
            C_SPACE
        } else if c == b'@' {
            C_AT
        } else {
            C_OTHER
        };
        b += 1;
    }
    t
};

/// [`ASCII_CLASS`] for a text that holds no URL: `h` and `w` are letters.
static ASCII_CLASS_NO_URL: [u8; 256] = {
    let mut t = ASCII_CLASS;
    t[b'h' as usize] = C_ALNUM;
    t[b'H' as usize] = C_ALNUM;
    t[b'w' as usize] = C_ALNUM;
    t[b'W' as usize] = C_ALNUM;
    t
};

/// [`TRANSITION`]: a walk starts at this byte.
const WALK: u8 = 1;
/// [`TRANSITION`]: leave the tight loop (white space after white space, or
/// a handle or URL candidate after a non-word byte).
const UNUSUAL: u8 = 2;

/// What a byte of class `cur` after one of class `prev` means, at
/// `prev << 3 | cur`.
static TRANSITION: [u8; 64] = {
    let mut t = [0u8; 64];
    let mut prev = 0;
    while prev < 5 {
        let mut cur = 0;
        while cur < 5 {
            let prev_word = prev == C_ALNUM as usize || prev == C_HW as usize;
            let (c, word) = (cur as u8, cur == C_ALNUM as usize || cur == C_HW as usize);
            let mut v = 0;
            if (word && !prev_word) || (!word && c != C_SPACE) {
                v |= WALK;
            }
            if (c == C_SPACE && prev == C_SPACE as usize)
                || ((c == C_HW || c == C_AT) && !prev_word)
            {
                v |= UNUSUAL;
            }
            t[prev << 3 | cur] = v;
            cur += 1;
        }
        prev += 1;
    }
    t
};

/// What each ASCII byte normalises to: lower case, white space as a space,
/// the backtick as an apostrophe.
static ASCII_FOLD: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        t[b] = if c.is_ascii_whitespace() {
            b' '
        } else if c == b'`' {
            b'\''
        } else {
            c.to_ascii_lowercase()
        };
        b += 1;
    }
    t
};

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

    /// The ASCII path gives the general path's text and spans, whatever
    /// the input: white space runs, handles, URLs, controls, backticks.
    fn assert_same_as_general(src: &str) {
        let general = normalize(src, true);
        let mut fast = Normalized::default();
        normalize_ascii_into(src, &mut fast);
        assert_eq!(fast.text, general.text, "text of {src:?}");
        for (j, b) in fast.text.bytes().enumerate() {
            if b != b' ' {
                assert_eq!(
                    fast.original_span(j, j + 1),
                    general.original_span(j, j + 1),
                    "span of byte {j} of {:?} from {src:?}",
                    fast.text
                );
            }
        }
    }

    #[test]
    fn the_ascii_path_agrees_on_the_tricky_cases() {
        for src in [
            "",
            " ",
            "@acme",
            "@acme ",
            "  @acme   hello   World  ",
            "hi @bob@example.social, see https://X.com/a?b now\tor WWW.acme.fr.",
            "mail me@acme.fr or @ alone @@x `quoted` \r\n\x0b\x0c end",
            "Whatever when www http://x HTTPS://Y wWw.z",
            "exactly8 bytes!!x  12345678ABCDEFGH        ab",
            "#panne? ok-ok l'appli `x` a\u{7f}b",
        ] {
            assert_same_as_general(src);
        }
    }

    proptest::proptest! {
        #[test]
        fn the_ascii_path_agrees_with_the_general_one(
            src in proptest::string::string_regex("([a-zA-Z0-9]{1,9}| {1,3}|[ \t\n]{1,3}|@[a-z]{0,5}|https?://[a-z./]{0,6}|[wW]{3}[.][a-z]{0,3}|[#?!.,:`'@/_-]|[hHwW]){0,40}").unwrap()
        ) {
            assert_same_as_general(&src);
        }
    }
}
