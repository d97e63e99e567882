//! One automaton for every keyword of every rule.
//!
//! Keywords are whole words, so a match can only begin where a word begins.
//! Rather than running an unanchored automaton over every byte (whose
//! transition table at 10 000 keywords no longer fits in cache), the matcher
//! runs *anchored* walks of a single DFA from each word start. A walk dies
//! after a few bytes when no keyword continues, and it only ever touches the
//! shallow, hot part of the automaton. The cost of a message therefore
//! depends on its number of words, not on the number of rules.

use aho_corasick::automaton::Automaton;
use aho_corasick::dfa::DFA;
use aho_corasick::{Anchored, MatchKind, StartKind};

use super::normalize::{Normalized, is_unspaced_script, is_word_char};

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
    dfa: DFA,
}

/// The automaton could not be built (in practice: too many patterns for memory).
#[derive(Debug, thiserror::Error)]
#[error("cannot compile the keywords into one automaton: {0}")]
pub struct BuildError(#[from] aho_corasick::BuildError);

impl Matcher {
    /// Compiles normalised keyword patterns.
    pub fn new<P: AsRef<[u8]>>(patterns: &[P]) -> Result<Self, BuildError> {
        let dfa = DFA::builder()
            .match_kind(MatchKind::Standard)
            .start_kind(StartKind::Anchored)
            .byte_classes(true)
            .prefilter(false)
            .build(patterns)?;
        Ok(Matcher { dfa })
    }

    /// Bytes of heap the automaton uses.
    pub fn memory_usage(&self) -> usize {
        self.dfa.memory_usage()
    }

    /// Appends to `hits` every pattern occurrence that starts at a word start
    /// of `text`, in order of start then length.
    pub fn scan(&self, text: &Normalized, hits: &mut Vec<RawHit>) {
        let t = text.text.as_bytes();
        let start = self
            .dfa
            .start_state(Anchored::Yes)
            .expect("built with anchored starts");
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

    fn walk(
        &self,
        start: aho_corasick::automaton::StateID,
        t: &[u8],
        text: &str,
        from: usize,
        hits: &mut Vec<RawHit>,
    ) {
        let mut sid = start;
        for (j, &b) in t.iter().enumerate().skip(from) {
            sid = self.dfa.next_state(Anchored::Yes, sid, b);
            if self.dfa.is_special(sid) {
                if self.dfa.is_dead(sid) {
                    return;
                }
                if self.dfa.is_match(sid) {
                    let end = j + 1;
                    let ends_at_boundary =
                        text[end..].chars().next().is_none_or(|c| !is_word_char(c));
                    for m in 0..self.dfa.match_len(sid) {
                        let pid = self.dfa.match_pattern(sid, m);
                        // A match state also lists the patterns that are
                        // suffixes of this one (failure links): only a pattern
                        // spanning the whole walk starts at a word start.
                        if self.dfa.pattern_len(pid) != end - from {
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
}
