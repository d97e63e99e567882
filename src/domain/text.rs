//! How long a post is, as each platform counts it.
//!
//! X counts "weighted" characters (twitter-text: most scripts weigh 2, Latin
//! 1, an emoji sequence 2, a URL 23 whatever its length); Mastodon counts
//! grapheme clusters, a URL as 23 and `@user@domain` as `@user`. Both are
//! checked against third-party conformance suites in `tests/`. Bluesky
//! counts every grapheme cluster, URLs whole (a link is a facet over the
//! text, not a shortened token), and also caps the UTF-8 bytes: a post holds
//! 300 graphemes and 3 000 bytes, a DM 1 000 and 10 000.

use unicode_segmentation::UnicodeSegmentation;

use crate::domain::Platform;

/// A platform's length rule: which counter, and the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthLimit {
    /// Which counter applies.
    pub platform: Platform,
    /// The most the counter may say.
    pub max: usize,
}

impl LengthLimit {
    /// The platform's default limit (a Mastodon instance may state another).
    pub fn of(platform: Platform) -> LengthLimit {
        match platform {
            Platform::X => LengthLimit::X,
            Platform::Mastodon => LengthLimit::MASTODON,
            Platform::Bluesky => LengthLimit::BLUESKY,
        }
    }

    /// X's limit for a post: 280 weighted characters.
    pub const X: LengthLimit = LengthLimit {
        platform: Platform::X,
        max: 280,
    };
    /// Mastodon's default limit (an instance may raise it).
    pub const MASTODON: LengthLimit = LengthLimit {
        platform: Platform::Mastodon,
        max: 500,
    };

    /// Bluesky's limit for a post (`app.bsky.feed.post`): 300 graphemes
    /// and 3 000 bytes, checked as one count (see [`bluesky_length`]).
    pub const BLUESKY: LengthLimit = LengthLimit {
        platform: Platform::Bluesky,
        max: 300,
    };
    /// Bluesky's limit for a direct message (`chat.bsky.convo.defs#messageInput`):
    /// 1 000 graphemes and 10 000 bytes.
    pub const BLUESKY_DM: LengthLimit = LengthLimit {
        platform: Platform::Bluesky,
        max: 1000,
    };

    /// The limit of a direct message on the same platform: Bluesky's DMs
    /// hold 1 000 graphemes where a post holds 300; elsewhere the post's
    /// limit stands (X's DMs are longer than any reply, Mastodon's DMs are
    /// posts).
    pub fn for_dm(self) -> LengthLimit {
        match self.platform {
            Platform::Bluesky => LengthLimit::BLUESKY_DM,
            Platform::X | Platform::Mastodon => self,
        }
    }

    /// Whether `text` surely fits, by a cheap upper bound: no character
    /// weighs more than 2 and each URL (which holds at least one `.`)
    /// counts at most 23. Loading 10 000 rules skips the exact counters
    /// for every reply that is plainly short.
    pub fn surely_fits(&self, text: &str) -> bool {
        let chars = text.chars().count();
        let dots = text.bytes().filter(|b| *b == b'.').count();
        match self.platform {
            Platform::X => 2 * chars + 23 * dots <= self.max,
            Platform::Mastodon => chars + 23 * dots <= self.max,
            // Graphemes never outnumber characters; bytes are checked as
            // tenths (see `bluesky_length`).
            Platform::Bluesky => chars <= self.max && text.len() <= 10 * self.max,
        }
    }

    /// The length of `text` as this platform counts it.
    pub fn count(&self, text: &str) -> usize {
        match self.platform {
            Platform::X => x_weighted_length(text),
            Platform::Mastodon => mastodon_length(text),
            Platform::Bluesky => bluesky_length(text),
        }
    }
}

/// Bluesky's length of `text` as one number against its limits: the
/// grapheme clusters, or a tenth of the UTF-8 bytes (rounded up) when that
/// is more. Both of Bluesky's pairs of limits have bytes at ten times the
/// graphemes (300 and 3 000 for a post, 1 000 and 10 000 for a DM), so
/// this count is within a limit exactly when both are. URLs count whole.
pub fn bluesky_length(text: &str) -> usize {
    let graphemes = text.graphemes(true).count();
    graphemes.max(text.len().div_ceil(10))
}

/// X's weighted length of `text`, URLs counted as 23.
pub fn x_weighted_length(text: &str) -> usize {
    twitter_text::parse(text, twitter_text_config::default(), true)
        .weighted_length
        .max(0) as usize
}

/// Whether X sees a link in `text`, found as X finds them (twitter-text's
/// URL extractor: `https://lumio.example` is not one, `lumio.com/help`
/// is): what makes a post "Content: Create with URL" on X's price list.
pub fn x_has_url(text: &str) -> bool {
    !twitter_text::extractor::Extractor::new()
        .extract_urls(text)
        .is_empty()
}

/// Mastodon's length of `text`: grapheme clusters, linkified URLs as 23,
/// remote mentions `@user@domain` as `@user`.
pub fn mastodon_length(text: &str) -> usize {
    const URL_WEIGHT: usize = 23;
    let mut total = 0;
    let mut i = 0;
    let mut plain_from = 0;
    let bytes = text.as_bytes();
    while i < bytes.len() {
        let prev = text[..i].chars().next_back();
        let after_boundary = prev.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        if after_boundary
            && (bytes[i] == b'h' || bytes[i] == b'H')
            && let Some(end) = mastodon_url_end(text, i)
        {
            total += text[plain_from..i].graphemes(true).count() + URL_WEIGHT;
            i = end;
            plain_from = end;
            continue;
        }
        if bytes[i] == b'@'
            && after_boundary
            && prev != Some('/')
            && let Some((local_end, end)) = remote_mention(text, i)
        {
            total += text[plain_from..local_end].graphemes(true).count();
            i = end;
            plain_from = end;
            continue;
        }
        i += text[i..].chars().next().map_or(1, char::len_utf8);
    }
    total + text[plain_from..].graphemes(true).count()
}

/// `@user@domain` at `i`: returns (end of `@user`, end of the whole mention).
fn remote_mention(text: &str, i: usize) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let mut j = i + 1;
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
        j += 1;
    }
    if j == i + 1 || b.get(j) != Some(&b'@') {
        return None;
    }
    let domain_start = j + 1;
    let mut k = domain_start;
    for (off, c) in text[domain_start..].char_indices() {
        if c.is_alphanumeric() || c == '_' || c == '.' || c == '-' {
            k = domain_start + off + c.len_utf8();
        } else {
            break;
        }
    }
    // The domain must end on a word character (a trailing `.` ends the sentence).
    while k > domain_start && matches!(b[k - 1], b'.' | b'-') {
        k -= 1;
    }
    (k > domain_start).then_some((j, k))
}

/// Where a URL that Mastodon would linkify (and count as 23) ends.
///
/// Like Mastodon's twitter-text based linkifier: http(s) only, a domain name
/// host (no user info, no IP literal), a path of letters of any script and
/// URL punctuation, an ASCII query, and no trailing sentence punctuation.
fn mastodon_url_end(text: &str, i: usize) -> Option<usize> {
    let rest = &text[i..];
    let scheme_len = ["https://", "http://"]
        .iter()
        .find(|s| rest.len() >= s.len() && rest[..s.len()].eq_ignore_ascii_case(s))?
        .len();
    let host_start = i + scheme_len;
    let authority_end = text[host_start..]
        .find(|c: char| !(c.is_alphanumeric() || "-.:@[]_%".contains(c)))
        .map_or(text.len(), |n| host_start + n);
    let authority = &text[host_start..authority_end];
    if authority.contains('@') || authority.starts_with('[') {
        return None;
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    if port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let host = host.trim_end_matches('.');
    let labels: Vec<&str> = host.split('.').collect();
    if labels.len() < 2
        || labels
            .iter()
            .any(|l| l.is_empty() || !l.chars().all(|c| c.is_alphanumeric() || c == '-'))
        || host.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        || !labels.last()?.chars().all(char::is_alphabetic)
    {
        return None;
    }
    let host_end = host_start + host.len() + port.map_or(0, |p| p.len() + 1);
    let mut end = host_end;
    if authority.len() != host_end - host_start {
        // A trailing dot after the host: not part of the URL.
        return Some(end);
    }
    // Path: letters of any script and URL punctuation.
    let path_char = |c: char| c.is_alphanumeric() || "/!*';:=+,.$%#[]-_~|&@()".contains(c);
    if text[end..].starts_with('/') {
        let path_end = text[end..]
            .find(|c: char| !path_char(c))
            .map_or(text.len(), |n| end + n);
        end = path_end;
    }
    // Query: ASCII only, as twitter-text's query character class.
    if text[end..].starts_with('?') {
        let q = &text[end + 1..];
        let qlen = q
            .find(|c: char| !(c.is_ascii_alphanumeric() || "!?*'();:&=+$/%#[]-_.,~|@".contains(c)))
            .unwrap_or(q.len());
        if qlen > 0 {
            end = end + 1 + qlen;
        }
    }
    // Trailing punctuation ends a sentence, not the URL; an unbalanced `)` too.
    loop {
        let last = text[host_end..end].chars().next_back();
        match last {
            Some(c) if ".,;:!?'\"*".contains(c) => end -= c.len_utf8(),
            Some(')') if text[i..end].matches('(').count() < text[i..end].matches(')').count() => {
                end -= 1
            }
            _ => break,
        }
    }
    Some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_found_as_x_finds_them() {
        #[rustfmt::skip]
        let cases: &[(&str, bool)] = &[
            ("Reset it here: https://help.lumio.com/wifi", true),
            ("See lumio.com/help for more", true),
            ("Write to help@lumio.com", false),
            ("No link, just http talk and https talk", false),
            ("Reset your box, then wait 2 min.", false),
            ("http://localhost is not a link to X", false),
            ("A dot.at.the end", true),
        ];
        for (text, want) in cases {
            assert_eq!(x_has_url(text), *want, "{text}");
        }
    }

    #[test]
    fn counts_simple_cases() {
        assert_eq!(mastodon_length("hello"), 5);
        assert_eq!(mastodon_length("see https://example.com/a."), 4 + 23 + 1);
        assert_eq!(x_weighted_length("hello"), 5);
        assert_eq!(x_weighted_length("日本"), 4);
    }

    #[test]
    fn bluesky_counts_graphemes_and_tenths_of_bytes() {
        let fits = |t: &str| bluesky_length(t) <= LengthLimit::BLUESKY.max;
        // (text, count): graphemes rule when bytes are few.
        let cases: &[(&str, usize)] = &[
            ("", 0),
            ("hello", 5),
            // A URL counts whole: no shortening on Bluesky.
            ("see https://example.com/a.", 26),
            // One family emoji: one grapheme, 25 bytes (3 tenths).
            ("👨‍👩‍👧‍👦", 3),
            // e + combining acute: one grapheme, 3 bytes.
            ("e\u{301}", 1),
            // Flags: two regional indicators, one grapheme each pair.
            ("🇫🇷🇬🇧", 2),
            ("日本語", 3),
            ("\r\n", 1),
        ];
        for (t, n) in cases {
            assert_eq!(bluesky_length(t), *n, "{t:?}");
        }
        assert!(fits(&"a".repeat(300)));
        assert!(!fits(&"a".repeat(301)));
        // 300 graphemes of 4 bytes each: 1 200 bytes, fits.
        assert!(fits(&"😀".repeat(300)));
        // 120 family emoji: 120 graphemes but 3 000 bytes: fits, one more does not.
        assert!(fits(&"👨‍👩‍👧‍👦".repeat(120)));
        assert!(!fits(&"👨‍👩‍👧‍👦".repeat(121)));
        assert_eq!("👨‍👩‍👧‍👦".repeat(121).len(), 3025);
        // A DM holds 1 000 graphemes.
        assert!(bluesky_length(&"é".repeat(1000)) <= LengthLimit::BLUESKY_DM.max);
        assert!(bluesky_length(&"é".repeat(1001)) > LengthLimit::BLUESKY_DM.max);
        // The cheap bound never lets through what the exact count refuses.
        let family = "👨‍👩‍👧‍👦".repeat(121);
        assert!(!LengthLimit::BLUESKY.surely_fits(&family));
        assert!(LengthLimit::BLUESKY.surely_fits(&"😀".repeat(300)));
    }
}
