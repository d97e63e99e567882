//! Rich text: the facets the official app attaches to a text it posts
//! (what the customers' posts and DMs carry here), and the checks this PDS
//! makes on the facets a client sends.
//!
//! Detection follows the app's `detectFacets` (`@atproto/api` RichText):
//! a mention, link or tag starts a word (a link or a mention may also
//! follow `(`); a mention is `@handle` of an account the server knows
//! (the app resolves the handle to its DID, an unknown one gets no facet);
//! a link is `http(s)://…` or a bare domain with a common top-level
//! domain, its trailing `.,;:!?` (and an unbalanced `)`) left out; a tag
//! is `#` and a word with a character that is neither a digit nor
//! punctuation, its trailing punctuation left out, at most 64 characters.
//! Offsets are UTF-8 bytes, `byteStart` inclusive, `byteEnd` exclusive.

use serde_json::{Value, json};
use unicode_segmentation::UnicodeSegmentation;

/// The facet's `$type`s and its features'.
pub(super) const FACET: &str = "app.bsky.richtext.facet";
pub(super) const MENTION: &str = "app.bsky.richtext.facet#mention";
pub(super) const LINK: &str = "app.bsky.richtext.facet#link";
pub(super) const TAG: &str = "app.bsky.richtext.facet#tag";

/// Top-level domains a bare domain (`example.com/x`) is linked with. The
/// app checks against the full TLD list; these are enough for test texts.
const TLDS: &[&str] = &[
    "com", "net", "org", "io", "dev", "app", "social", "fr", "de", "uk", "eu", "co", "info",
];

/// The words of `text` (split on white space) with their byte offsets.
fn words(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if let Some(s) = start.take() {
                out.push((s, &text[s..i]));
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push((s, &text[s..]));
    }
    out
}

/// Unicode punctuation (`\p{P}`) as far as texts here need it: ASCII's
/// (not its symbols `$+<=>^`|~`) and the common typographic marks.
fn is_punct(c: char) -> bool {
    matches!(
        c,
        '!' | '"'
            | '#'
            | '%'
            | '&'
            | '\''
            | '('
            | ')'
            | '*'
            | ','
            | '-'
            | '.'
            | '/'
            | ':'
            | ';'
            | '?'
            | '@'
            | '['
            | '\\'
            | ']'
            | '_'
            | '{'
            | '}'
            | '¡'
            | '¿'
            | '«'
            | '»'
            | '‘'
            | '’'
            | '“'
            | '”'
            | '…'
            | '、'
            | '。'
            | '！'
            | '？'
    )
}

/// The facets the app would attach to `text`, in text order. `did_of`
/// resolves a handle (lower case, no `@`) to a DID, when it is known.
pub(super) fn detect(text: &str, did_of: &dyn Fn(&str) -> Option<String>) -> Vec<Value> {
    let mut out = Vec::new();
    for (at, word) in words(text) {
        // A mention or a link may follow an opening parenthesis.
        let (at2, w2) = match word.strip_prefix('(') {
            Some(rest) => (at + 1, rest),
            None => (at, word),
        };
        if let Some(f) = mention(at2, w2, did_of) {
            out.push(f);
        } else if let Some(f) = link(at2, w2) {
            out.push(f);
        } else if let Some(f) = tag(at, word) {
            out.push(f);
        }
    }
    out
}

fn facet(start: usize, end: usize, feature: Value) -> Value {
    json!({
        "$type": FACET,
        "index": {"byteStart": start, "byteEnd": end},
        "features": [feature],
    })
}

fn mention(at: usize, word: &str, did_of: &dyn Fn(&str) -> Option<String>) -> Option<Value> {
    let rest = word.strip_prefix('@')?;
    let taken: &str = &rest[..rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
        .unwrap_or(rest.len())];
    // The app's pattern ends at a word boundary: no trailing dot or dash.
    let handle = taken.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    if !handle.contains('.') {
        return None;
    }
    let did = did_of(&handle.to_ascii_lowercase())?;
    Some(facet(
        at,
        at + 1 + handle.len(),
        json!({"$type": MENTION, "did": did}),
    ))
}

fn link(at: usize, word: &str) -> Option<Value> {
    let lower = word.to_ascii_lowercase();
    let explicit = lower.starts_with("https://") || lower.starts_with("http://");
    let mut shown = word.trim_end_matches(['.', ',', ';', ':', '!', '?']);
    if shown.ends_with(')') && !shown.contains('(') {
        shown = &shown[..shown.len() - 1];
    }
    let uri = if explicit {
        if !shown.contains("://") || shown.ends_with("://") {
            return None;
        }
        shown.to_owned()
    } else {
        let domain = shown.split(['/', '?', '#']).next().unwrap_or("");
        let labels: Vec<&str> = domain.split('.').collect();
        let first_ok = domain.starts_with(|c: char| c.is_ascii_lowercase());
        let labels_ok = labels.len() >= 2
            && labels
                .iter()
                .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric()));
        let tld = labels
            .last()
            .map(|t| t.to_ascii_lowercase())
            .unwrap_or_default();
        if !(first_ok && labels_ok && TLDS.contains(&tld.as_str())) {
            return None;
        }
        format!("https://{shown}")
    };
    Some(facet(
        at,
        at + shown.len(),
        json!({"$type": LINK, "uri": uri}),
    ))
}

fn tag(at: usize, word: &str) -> Option<Value> {
    let hash = if word.starts_with('#') {
        '#'
    } else if word.starts_with('＃') {
        '＃'
    } else {
        return None;
    };
    let body = word[hash.len_utf8()..].trim_end_matches(is_punct);
    if body.is_empty()
        || body.starts_with('\u{fe0f}')
        || body.chars().count() > 64
        || body.chars().all(|c| c.is_ascii_digit() || is_punct(c))
    {
        return None;
    }
    Some(facet(
        at,
        at + hash.len_utf8() + body.len(),
        json!({"$type": TAG, "tag": body}),
    ))
}

/// Checks `facets` against `text` as this PDS does: an array of facets
/// whose byte range lies inside the text, on character boundaries, with
/// `byteStart < byteEnd`, each with features of a known `$type` and their
/// required fields; a mention's DID must be an account here (`did_exists`).
/// The error names the facet, by `path` (`Record/facets`).
pub(super) fn validate(
    text: &str,
    facets: &Value,
    path: &str,
    did_exists: &dyn Fn(&str) -> bool,
) -> Result<(), String> {
    let Some(list) = facets.as_array() else {
        return Err(format!("{path} must be an array"));
    };
    for (i, f) in list.iter().enumerate() {
        let p = format!("{path}/{i}");
        check_range(text, f, &p)?;
        let Some(features) = f.get("features").and_then(Value::as_array) else {
            return Err(format!(
                "{p} must have the property \"features\" (an array)"
            ));
        };
        for (j, feature) in features.iter().enumerate() {
            check_feature(feature, &format!("{p}/features/{j}"), did_exists)?;
        }
    }
    Ok(())
}

fn check_range(text: &str, f: &Value, p: &str) -> Result<(), String> {
    let Some(index) = f.get("index").filter(|i| i.is_object()) else {
        return Err(format!("{p} must have the property \"index\" (an object)"));
    };
    let bound = |k: &str| {
        index
            .get(k)
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("{p}/index/{k} must be an integer >= 0"))
    };
    let (start, end) = (bound("byteStart")?, bound("byteEnd")?);
    if start >= end {
        return Err(format!(
            "{p}/index: byteStart ({start}) must be less than byteEnd ({end})"
        ));
    }
    let len = text.len() as u64;
    if end > len {
        return Err(format!(
            "{p}/index: byteEnd ({end}) is past the end of the text ({len} bytes of UTF-8)"
        ));
    }
    for b in [start, end] {
        if !text.is_char_boundary(b as usize) {
            return Err(format!(
                "{p}/index: byte {b} is inside a UTF-8 character (offsets count UTF-8 bytes)"
            ));
        }
    }
    Ok(())
}

fn check_feature(f: &Value, p: &str, did_exists: &dyn Fn(&str) -> bool) -> Result<(), String> {
    let field = |k: &str| {
        f.get(k)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{p} must have the property \"{k}\" (a string)"))
    };
    match field("$type")? {
        MENTION => {
            let did = field("did")?;
            if !did.starts_with("did:") {
                return Err(format!("{p}/did must be a valid did"));
            }
            if !did_exists(did) {
                return Err(format!("{p}/did: no account {did}"));
            }
        }
        LINK => {
            let uri = field("uri")?;
            let scheme = uri.split(':').next().unwrap_or("");
            let scheme_ok = !scheme.is_empty()
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
            if !scheme_ok || uri.len() <= scheme.len() + 1 || uri.contains(char::is_whitespace) {
                return Err(format!("{p}/uri must be a uri"));
            }
        }
        TAG => {
            let tag = field("tag")?;
            if tag.len() > 640 || tag.graphemes(true).count() > 64 {
                return Err(format!("{p}/tag must not be longer than 64 graphemes"));
            }
        }
        other => {
            return Err(format!(
                "{p}/$type: unknown feature {other:?} (expected {MENTION}, {LINK} or {TAG})"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(h: &str) -> Option<String> {
        (h == "brand.test").then(|| "did:plc:brand".to_owned())
    }

    fn range(f: &Value) -> (u64, u64) {
        (
            f["index"]["byteStart"].as_u64().unwrap(),
            f["index"]["byteEnd"].as_u64().unwrap(),
        )
    }

    #[test]
    fn facets_index_utf8_bytes_as_the_app_does() {
        let text =
            "Café ☕ @brand.test, voir https://ex.fr/a?b=1. (example.com) #Aidé! #42 @who.test";
        let f = detect(text, &known);
        assert_eq!(f.len(), 4, "{f:#?}");
        let slice = |f: &Value| {
            let (s, e) = range(f);
            &text[s as usize..e as usize]
        };
        assert_eq!(slice(&f[0]), "@brand.test");
        assert_eq!(f[0]["features"][0]["did"], "did:plc:brand");
        assert_eq!(slice(&f[1]), "https://ex.fr/a?b=1");
        assert_eq!(slice(&f[2]), "example.com");
        assert_eq!(f[2]["features"][0]["uri"], "https://example.com");
        assert_eq!(slice(&f[3]), "#Aidé");
        assert_eq!(f[3]["features"][0]["tag"], "Aidé");
        assert!(validate(text, &json!(f), "Record/facets", &|d| d == "did:plc:brand").is_ok());
    }

    #[test]
    fn bad_ranges_and_features_are_named() {
        let text = "é @brand.test";
        let ok = |v: Value| validate(text, &v, "Record/facets", &|d| d == "did:plc:b");
        let f = |s: u64, e: u64| {
            json!([{"index": {"byteStart": s, "byteEnd": e},
            "features": [{"$type": LINK, "uri": "https://x.fr"}]}])
        };
        assert!(ok(f(0, 2)).is_ok());
        assert!(
            ok(f(1, 3))
                .unwrap_err()
                .contains("inside a UTF-8 character")
        );
        assert!(ok(f(3, 3)).unwrap_err().contains("less than"));
        assert!(ok(f(3, 99)).unwrap_err().contains("past the end"));
        let m = json!([{"index": {"byteStart": 3, "byteEnd": 14},
            "features": [{"$type": MENTION, "did": "did:plc:nobody"}]}]);
        assert!(ok(m).unwrap_err().contains("no account"));
        let u = json!([{"index": {"byteStart": 0, "byteEnd": 2},
            "features": [{"$type": "app.bsky.richtext.facet#bold"}]}]);
        assert!(ok(u).unwrap_err().contains("unknown feature"));
    }
}
