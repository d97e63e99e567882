//! One automaton for every keyword of every rule.
//!
//! Keywords are whole words, so a match can only begin where a word begins.
//! Rather than running an unanchored automaton over every byte (whose
//! transition table at 10 000 keywords no longer fits in cache), the matcher
//! runs *anchored* walks of a single aho-corasick automaton from each word
//! start. A walk dies after a few bytes when no keyword continues, and it
//! only ever touches the shallow, hot part of the automaton. The cost of a
//! message therefore depends on its number of words, not on the number of
//! rules.
//!
//! Even a short walk costs a cache miss or two once the automaton is large,
//! so a [`StartFilter`] (a 32 KiB bitset that stays in L1) first asks
//! whether any keyword begins with the next few bytes; most words are
//! skipped without touching the automaton at all.
//!
//! The automaton is aho-corasick's contiguous NFA rather than its DFA: with
//! anchored walks no failure transition is ever followed, so the two walk
//! at the same speed here (measured), and the NFA builds in two thirds of
//! the time and a fraction of the memory.

use aho_corasick::automaton::Automaton;
use aho_corasick::nfa::contiguous::NFA;
use aho_corasick::{Anchored, MatchKind};

use super::normalize::{Normalized, is_unspaced_script, is_word_char};
use unicode_normalization::char::is_combining_mark;

/// A keyword pattern found in a normalised text: `[start, end)` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawHit {
    /// Which pattern (index into the patterns given to [`Matcher::new`]).
    pub pattern: u32,
    /// Start byte in the normalised text.
    pub start: u32,
    /// End byte in the normalised text.
    pub end: u32,
    /// Whether the text has a word boundary right after the hit.
    pub ends_at_boundary: bool,
}

/// The compiled automaton.
#[derive(Debug, Clone)]
pub struct Matcher {
    automaton: NFA,
    filter: StartFilter,
}

/// log2 of the filter's size in bits: 2^18 bits = 32 KiB.
const FILTER_BITS: u32 = 18;

/// A necessary condition for a keyword to start at a position: the first
/// `min(len, 4)` bytes of every pattern, hashed into one bitset. A position
/// whose next 1, 2, 3 or 4 bytes hit no bit starts no keyword. False
/// positives only cost a walk; there are no false negatives.
#[derive(Debug, Clone)]
struct StartFilter {
    bits: Box<[u64]>,
    /// Bit `k - 1` set when some pattern's filter key is `k` bytes long.
    lengths: u8,
}

impl StartFilter {
    fn new<P: AsRef<[u8]>>(patterns: &[P]) -> StartFilter {
        let mut f = StartFilter {
            bits: vec![0u64; 1 << (FILTER_BITS - 6)].into_boxed_slice(),
            lengths: 0,
        };
        for p in patterns {
            let p = p.as_ref();
            let k = p.len().min(4);
            if k == 0 {
                continue;
            }
            let h = Self::hash(&p[..k]);
            f.bits[h >> 6] |= 1 << (h & 63);
            f.lengths |= 1 << (k - 1);
        }
        f
    }

    /// The filter key of `key` (1 to 4 bytes): its bytes and its length.
    fn hash(key: &[u8]) -> usize {
        let mut v = 0u64;
        for (i, b) in key.iter().enumerate() {
            v |= (*b as u64) << (8 * i);
        }
        Self::hash_word(v, key.len())
    }

    #[inline]
    fn hash_word(bytes: u64, len: usize) -> usize {
        let v = bytes | (len as u64) << 32;
        (v.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - FILTER_BITS)) as usize
    }

    /// Whether some pattern may start at `t[i..]`.
    #[inline]
    fn may_start(&self, t: &[u8], i: usize) -> bool {
        let rest = &t[i..];
        // The next four bytes (fewer at the end), read at once.
        let word = match rest.get(..4) {
            Some(four) => u32::from_le_bytes(four.try_into().expect("four bytes")) as u64,
            None => rest
                .iter()
                .enumerate()
                .fold(0u64, |v, (k, b)| v | (*b as u64) << (8 * k)),
        };
        let mut lengths = self.lengths;
        while lengths != 0 {
            let k = lengths.trailing_zeros() as usize + 1;
            lengths &= lengths - 1;
            if k > rest.len() {
                return false;
            }
            let h = Self::hash_word(word & (u64::MAX >> (64 - 8 * k)), k);
            if self.bits[h >> 6] & (1 << (h & 63)) != 0 {
                return true;
            }
        }
        false
    }
}

/// The automaton could not be built (in practice: too many patterns for memory).
#[derive(Debug, thiserror::Error)]
#[error("cannot compile the keywords into one automaton: {0}")]
pub struct BuildError(#[from] aho_corasick::BuildError);

impl Matcher {
    /// Compiles normalised keyword patterns.
    pub fn new<P: AsRef<[u8]>>(patterns: &[P]) -> Result<Self, BuildError> {
        let automaton = NFA::builder()
            .match_kind(MatchKind::Standard)
            .byte_classes(true)
            .prefilter(false)
            .build(patterns)?;
        Ok(Matcher {
            automaton,
            filter: StartFilter::new(patterns),
        })
    }

    /// Bytes of heap the automaton uses.
    pub fn memory_usage(&self) -> usize {
        self.automaton.memory_usage() + self.filter.bits.len() * 8
    }

    /// Appends to `hits` every pattern occurrence that starts at a word start
    /// of `text`, in order of start then length.
    pub fn scan(&self, text: &Normalized, hits: &mut Vec<RawHit>) {
        let t = text.text.as_bytes();
        let start = self
            .automaton
            .start_state(Anchored::Yes)
            .expect("built with anchored starts");
        if let Some(bits) = &text.walk_bits {
            // The ASCII normaliser already marked them.
            for (w, &word) in bits.iter().enumerate() {
                let mut word = word;
                while word != 0 {
                    let i = w * 64 + word.trailing_zeros() as usize;
                    self.walk(start, t, &text.text, i, hits);
                    word &= word - 1;
                }
            }
            return;
        }
        let mut prev_word = false;
        let mut i = 0;
        while i < t.len() {
            let b = t[i];
            if b.is_ascii_alphanumeric() {
                // The common case: an ASCII word. One walk at its start, then
                // a tight skip over the rest of it.
                if !prev_word {
                    self.walk(start, t, &text.text, i, hits);
                }
                i += 1;
                while i < t.len() && t[i].is_ascii_alphanumeric() {
                    i += 1;
                }
                prev_word = true;
                continue;
            }
            if b == b' ' {
                prev_word = false;
                i += 1;
                continue;
            }
            let (c, len) = if b.is_ascii() {
                (b as char, 1)
            } else {
                let c = text.text[i..].chars().next().expect("char boundary");
                (c, c.len_utf8())
            };
            let word = is_word_char(c);
            // A walk starts at a word's first character, at every non-word
            // character but the space (`#panne`, `?`), and anywhere in a
            // script written without spaces.
            let walk = if word {
                !prev_word || is_unspaced_script(c)
            } else {
                b != b' '
            };
            if walk {
                self.walk(start, t, &text.text, i, hits);
            }
            prev_word = word;
            i += len;
        }
    }

    #[inline(always)]
    fn walk(
        &self,
        start: aho_corasick::automaton::StateID,
        t: &[u8],
        text: &str,
        from: usize,
        hits: &mut Vec<RawHit>,
    ) {
        // Inline, so the walks the filter rules out cost no call.
        if self.filter.may_start(t, from) {
            self.walk_from(start, t, text, from, hits);
        }
    }

    #[inline(never)]
    fn walk_from(
        &self,
        start: aho_corasick::automaton::StateID,
        t: &[u8],
        text: &str,
        from: usize,
        hits: &mut Vec<RawHit>,
    ) {
        let mut sid = start;
        for (j, &b) in t.iter().enumerate().skip(from) {
            sid = self.automaton.next_state(Anchored::Yes, sid, b);
            if self.automaton.is_special(sid) {
                if self.automaton.is_dead(sid) {
                    return;
                }
                if self.automaton.is_match(sid) {
                    let end = j + 1;
                    let next = text[end..].chars().next();
                    // A combining mark right after belongs to the hit's last
                    // character (`が` is `か` and a dakuten, kept because it
                    // changes the letter): the hit would cut a character.
                    if next.is_some_and(|c| !c.is_ascii() && is_combining_mark(c)) {
                        continue;
                    }
                    let ends_at_boundary = next.is_none_or(|c| !is_word_char(c));
                    for m in 0..self.automaton.match_len(sid) {
                        let pid = self.automaton.match_pattern(sid, m);
                        // A match state also lists the patterns that are
                        // suffixes of this one (failure links): only a pattern
                        // spanning the whole walk starts at a word start.
                        if self.automaton.pattern_len(pid) != end - from {
                            continue;
                        }
                        hits.push(RawHit {
                            pattern: pid.as_u32(),
                            start: from as u32,
                            end: end as u32,
                            ends_at_boundary,
                        });
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::normalize::normalize;
    use super::*;

    fn found(patterns: &[&str], text: &str) -> Vec<(u32, String, bool)> {
        let m = Matcher::new(patterns).unwrap();
        let n = normalize(text, true);
        let mut hits = Vec::new();
        m.scan(&n, &mut hits);
        hits.iter()
            .map(|h| {
                (
                    h.pattern,
                    n.text[h.start as usize..h.end as usize].to_owned(),
                    h.ends_at_boundary,
                )
            })
            .collect()
    }

    #[test]
    fn a_letter_emoji_ends_a_word() {
        assert_eq!(
            found(&["parking"], "parking🅿\u{fe0f}"),
            vec![(0, "parking".to_owned(), true)]
        );
    }

    #[test]
    fn walks_start_only_at_word_starts() {
        assert_eq!(found(&["log"], "my blog"), vec![]);
        assert_eq!(found(&["log"], "log in"), vec![(0, "log".into(), true)]);
        assert_eq!(found(&["log"], "login"), vec![(0, "log".into(), false)]);
        assert_eq!(
            found(&["#panne", "panne"], "grosse #panne"),
            vec![(0, "#panne".into(), true), (1, "panne".into(), true)]
        );
        assert_eq!(
            found(&["払い戻し"], "払い戻しをお願い"),
            vec![(0, "払い戻し".into(), false)]
        );
    }

    #[test]
    fn a_hit_never_ends_before_a_mark_of_its_last_character() {
        // `が` is `か` and a dakuten once decomposed; `はじ`, `はし` and one.
        assert_eq!(found(&["か", "はし"], "が はじ"), vec![]);
        assert_eq!(
            found(&["か", "はし"], "かが はし"),
            vec![(0, "か".into(), false), (1, "はし".into(), true)]
        );
        // Devanagari's vowel signs are marks too: `क` is not in `कि`.
        assert_eq!(found(&["क"], "कि"), vec![]);
    }

    /// The walks the fast paths mark find what the general scan finds.
    fn assert_same_hits(patterns: &[&str], src: &str) {
        let m = Matcher::new(patterns).unwrap();
        let general = normalize(src, true);
        let mut fast = Normalized::default();
        super::super::normalize::normalize_fast_into(src, &mut fast);
        assert!(fast.is_fast());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        m.scan(&general, &mut a);
        m.scan(&fast, &mut b);
        assert_eq!(a, b, "{src:?}");
    }

    #[test]
    fn ascii_walks_match_the_general_scan() {
        let p = [
            "log",
            "#panne",
            "panne",
            "a",
            "ab",
            "abc",
            "mot de passe",
            "?",
            "wifi",
        ];
        for src in [
            "log in, my blog #panne ?panne",
            "@acme mot   de\tpasse a ab abc abcd",
            "WiFi wifi-wifi www.wifi.fr http://wifi a",
            "Mot de passe oublié… l’appli «\u{a0}plante\u{a0}» 😡 #PANNE Log\u{200b}in",
        ] {
            assert_same_hits(&p, src);
        }
    }

    proptest::proptest! {
        #[test]
        fn ascii_walks_agree_with_the_general_scan(
            src in proptest::string::string_regex("([a-dA-D]{1,6}|[ \t]{1,2}|@[a-d]{0,3}|[#?!'.-]|https?://[a-d]{1,3}){0,30}").unwrap()
        ) {
            assert_same_hits(&["a", "ab", "abc", "abcd", "bad", "cab dab", "#a", "?", "d'a", "c-d"], &src);
        }

        /// On mixed text, a one-character pattern for every character of
        /// the normalised text: the hits are exactly the walk starts.
        #[test]
        fn fast_walks_agree_with_the_general_scan_on_mixed_text(
            src in proptest::string::string_regex(super::super::normalize::tests::MIXED).unwrap()
        ) {
            every_character_hits(&src);
        }

        /// The same on the text the Latin path takes whole.
        #[test]
        fn fast_walks_agree_with_the_general_scan_on_latin_text(
            src in proptest::string::string_regex(super::super::normalize::tests::LATIN).unwrap()
        ) {
            every_character_hits(&src);
        }
    }

    /// A one-character pattern for every character of the normalised text,
    /// and a few words: the fast path's walks find what the general scan
    /// finds.
    fn every_character_hits(src: &str) {
        let text = normalize(src, true).text;
        let mut patterns: Vec<String> = text
            .chars()
            .filter(|c| *c != ' ')
            .map(String::from)
            .collect();
        patterns.sort();
        patterns.dedup();
        patterns.extend(["rembourse", "l'appli", "mot de passe", "cafe"].map(String::from));
        let patterns: Vec<&str> = patterns.iter().map(String::as_str).collect();
        assert_same_hits(&patterns, src);
    }
}
