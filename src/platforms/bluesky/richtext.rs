//! The pieces of a Bluesky post the bot writes itself: rich-text facets
//! (a mention of the customer, every link) with UTF-8 byte offsets, and
//! the record key (a TID) that makes a resend unable to post twice.

use serde_json::{Value, json};
use twitter_text::extractor::Extractor;

use crate::domain::clock::Millis;

/// The facets of `text`: a `#mention` of `did` wherever `@handle` stands
/// as a whole word (case-insensitive), and a `#link` for every URL a
/// linker sees (a URL without a scheme gets `https://`). Offsets are UTF-8
/// bytes, `byteStart` inclusive, `byteEnd` exclusive, as
/// `app.bsky.richtext.facet` says. No other account is ever mentioned: a
/// facet is the only thing that mentions on Bluesky.
pub fn facets(text: &str, handle: &str, did: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mentions = whole_words(text, &format!("@{handle}"));
    for (start, end) in &mentions {
        out.push(facet(
            *start,
            *end,
            json!({"$type": "app.bsky.richtext.facet#mention", "did": did}),
        ));
    }
    let mut taken = mentions;
    for (start, end) in links(text) {
        // A handle is a domain: a linker sees `eve.bsky.social` in the
        // mention, which stays a mention.
        if taken.iter().any(|(s, e)| start < *e && *s < end) {
            continue;
        }
        taken.push((start, end));
        let url = &text[start..end];
        let uri = if url.contains("://") {
            url.to_owned()
        } else {
            format!("https://{url}")
        };
        out.push(facet(
            start,
            end,
            json!({"$type": "app.bsky.richtext.facet#link", "uri": uri}),
        ));
    }
    out.sort_by_key(|f| f["index"]["byteStart"].as_u64());
    out
}

/// Byte ranges of the links in `text`, as Bluesky's apps detect them: any
/// `http(s)://` URL up to white space (less trailing punctuation and an
/// unbalanced `)`), whatever its host; and, without a scheme, what
/// twitter-text links (a domain with a known top-level domain).
fn links(text: &str) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    let lower = text.to_ascii_lowercase();
    for scheme in ["https://", "http://"] {
        let mut from = 0;
        while let Some(i) = lower[from..].find(scheme) {
            let start = from + i;
            from = start + scheme.len();
            let starts_word = text[..start]
                .chars()
                .next_back()
                .is_none_or(|c| c.is_whitespace() || c == '(');
            let mut end = text[start..]
                .find(char::is_whitespace)
                .map_or(text.len(), |n| start + n);
            loop {
                match text[..end].chars().next_back() {
                    Some(c) if ".,;:!?'\"".contains(c) => end -= c.len_utf8(),
                    Some(')')
                        if text[start..end].matches('(').count()
                            < text[start..end].matches(')').count() =>
                    {
                        end -= 1
                    }
                    _ => break,
                }
            }
            let overlaps = out.iter().any(|(s, e)| start < *e && *s < end);
            if starts_word && end > start + scheme.len() && !overlaps {
                out.push((start, end));
            }
        }
    }
    let mut from = 0;
    for url in Extractor::new().extract_urls(text) {
        let Some(at) = text[from..].find(url.as_str()) else {
            continue;
        };
        let (start, end) = (from + at, from + at + url.len());
        from = end;
        if !out.iter().any(|(s, e)| start < *e && *s < end) {
            out.push((start, end));
        }
    }
    out
}

fn facet(start: usize, end: usize, feature: Value) -> Value {
    json!({
        "index": {"byteStart": start, "byteEnd": end},
        "features": [feature],
    })
}

/// Byte ranges where `needle` stands in `text` as a whole word (ASCII
/// case-insensitive): not inside a longer handle or an e-mail address.
fn whole_words(text: &str, needle: &str) -> Vec<(usize, usize)> {
    let hay = text.to_ascii_lowercase();
    let needle = needle.to_ascii_lowercase();
    let handle_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@');
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = hay[from..].find(&needle) {
        let start = from + i;
        let end = start + needle.len();
        let before = text[..start].chars().next_back();
        let after = text[end..].chars().next();
        // A trailing `.` ends a sentence; a `.` followed by more of a
        // handle makes it another account.
        let after_ok = match after {
            None => true,
            Some('.') | Some('-') => text[end + 1..]
                .chars()
                .next()
                .is_none_or(|c| !c.is_ascii_alphanumeric()),
            Some(c) => !handle_char(c),
        };
        if before.is_none_or(|c| !handle_char(c)) && after_ok {
            out.push((start, end));
        }
        from = end;
    }
    out
}

/// The alphabet of TIDs: base32, sortable.
const TID_ALPHABET: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";

/// The record key of an outbox row's post: a TID (13 characters of the
/// sortable base32 alphabet, as `app.bsky.feed.post` requires) made of the
/// row's queueing time in microseconds and its id, so that the same row
/// always gets the same key (the PDS refuses a second record under it) and
/// two rows never share one.
pub fn row_tid(queued_at: Millis, row: i64) -> String {
    let row = row.max(0) as u64;
    let micros = (queued_at.max(0) as u64) * 1000 + row % 1000;
    let clock_id = (row / 1000) % 1024;
    let n = ((micros & ((1 << 53) - 1)) << 10) | clock_id;
    (0..13)
        .rev()
        .map(|i| TID_ALPHABET[((n >> (i * 5)) & 31) as usize] as char)
        .collect()
}

/// Whether `s` is a TID (what the PDS accepts as a post's record key).
pub fn is_tid(s: &str) -> bool {
    s.len() == 13
        && s.bytes().all(|b| TID_ALPHABET.contains(&b))
        && b"234567abcdefghij".contains(&s.as_bytes()[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(text: &str) -> Vec<(String, String)> {
        facets(text, "eve.bsky.social", "did:plc:eve")
            .iter()
            .map(|f| {
                let s = f["index"]["byteStart"].as_u64().unwrap() as usize;
                let e = f["index"]["byteEnd"].as_u64().unwrap() as usize;
                let kind = f["features"][0]["$type"]
                    .as_str()
                    .unwrap()
                    .rsplit('#')
                    .next()
                    .unwrap()
                    .to_owned();
                (kind, text[s..e].to_owned())
            })
            .collect()
    }

    #[test]
    fn facets_cover_the_customer_and_links_in_bytes() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            (
                "Bonjour @eve.bsky.social !",
                &[("mention", "@eve.bsky.social")],
            ),
            (
                "Hé @Eve.Bsky.Social, voir https://aide.example.fr/mdp — merci",
                &[
                    ("mention", "@Eve.Bsky.Social"),
                    ("link", "https://aide.example.fr/mdp"),
                ],
            ),
            // Emoji before: byte offsets, not characters.
            ("😀😀 @eve.bsky.social.", &[("mention", "@eve.bsky.social")]),
            // Not the customer: a longer handle, an e-mail, another account.
            ("@eve.bsky.social.evil x@eve.bsky.social @bob.test", &[]),
            ("see aide.example.fr", &[("link", "aide.example.fr")]),
            // A scheme links any host, up to white space less punctuation.
            (
                "go https://help.acme.example/a?b=1). or (http://x.test/p_(1))",
                &[
                    ("link", "https://help.acme.example/a?b=1"),
                    ("link", "http://x.test/p_(1)"),
                ],
            ),
        ];
        for (text, want) in cases {
            let want: Vec<(String, String)> = want
                .iter()
                .map(|(k, t)| (k.to_string(), t.to_string()))
                .collect();
            assert_eq!(ranges(text), want, "{text}");
        }
        let f = facets("see aide.example.fr", "eve.bsky.social", "did:plc:eve");
        assert_eq!(f[0]["features"][0]["uri"], "https://aide.example.fr");
    }

    #[test]
    fn a_handle_that_looks_like_a_domain_stays_one_mention() {
        let f = facets("Hi @evil.com, see acme.fr", "evil.com", "did:plc:eve");
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(
            f[0]["features"][0]["$type"],
            "app.bsky.richtext.facet#mention"
        );
        assert_eq!(f[1]["features"][0]["uri"], "https://acme.fr");
    }

    #[test]
    fn a_row_always_gets_the_same_tid_and_rows_never_share_one() {
        let t = row_tid(1_764_500_000_000, 42);
        assert!(is_tid(&t), "{t}");
        assert_eq!(t, row_tid(1_764_500_000_000, 42));
        let mut seen = std::collections::HashSet::new();
        for row in 0..5000 {
            assert!(seen.insert(row_tid(1_764_500_000_000, row)));
        }
        assert!(!is_tid("3jzfcijpj2z2"));
        assert!(!is_tid("zzzzzzzzzzzzz"));
        assert!(is_tid("3jzfcijpj2z2a"));
    }
}
