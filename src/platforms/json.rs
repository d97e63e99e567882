//! Decoding one item of a platform's page at a time, leniently.
//!
//! A page is split into raw items first (serde_json's `RawValue` checks the
//! syntax without decoding strings), then each item is decoded on its own:
//! one item that cannot be decoded is skipped and recorded, and the rest of
//! the page goes on. Before giving up on an item, lone UTF-16 surrogates
//! (`\ud83d` without its pair, which X has sent in display names) are
//! replaced by U+FFFD, as a browser would show them.

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

/// Decodes `raw`, repairing lone surrogate escapes if the first try fails.
pub fn decode_lenient<T: DeserializeOwned>(raw: &str) -> Result<T, serde_json::Error> {
    match serde_json::from_str(raw) {
        Ok(t) => Ok(t),
        Err(first) => match repair_surrogates(raw) {
            Some(fixed) => serde_json::from_str(&fixed).map_err(|_| first),
            None => Err(first),
        },
    }
}

/// The id of an item that could not be decoded, if even that can be read.
pub fn item_id(raw: &RawValue) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: serde_json::Value,
    }
    let v: IdOnly = decode_lenient(raw.get()).ok()?;
    match v.id {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `raw` with every `\uXXXX` escape of an unpaired surrogate replaced by
/// `\ufffd`; `None` when there was none to replace.
fn repair_surrogates(raw: &str) -> Option<String> {
    let b = raw.as_bytes();
    let hex = |i: usize| -> Option<u16> {
        let s = raw.get(i..i + 4)?;
        u16::from_str_radix(s, 16).ok()
    };
    // The code unit of a `\uXXXX` escape starting at byte i, if it is one.
    let escape_at = |i: usize| -> Option<u16> {
        (b.get(i) == Some(&b'\\') && b.get(i + 1) == Some(&b'u'))
            .then(|| hex(i + 2))
            .flatten()
    };
    let mut out = String::with_capacity(raw.len());
    let mut changed = false;
    let mut last = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        let Some(unit) = escape_at(i) else {
            // Any other escape (including `\\`) is two bytes long.
            i += 2;
            continue;
        };
        let high = (0xD800..0xDC00).contains(&unit);
        let low = (0xDC00..0xE000).contains(&unit);
        if high && escape_at(i + 6).is_some_and(|u| (0xDC00..0xE000).contains(&u)) {
            i += 12;
        } else if high || low {
            out.push_str(&raw[last..i]);
            out.push_str("\\ufffd");
            changed = true;
            i += 6;
            last = i;
        } else {
            i += 6;
        }
    }
    if !changed {
        return None;
    }
    out.push_str(&raw[last..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct Named {
        name: String,
    }

    #[test]
    fn a_lone_surrogate_becomes_a_replacement_character() {
        let raw = r#"{"name":"Eve \ud83d the customer"}"#;
        assert!(serde_json::from_str::<Named>(raw).is_err());
        let n: Named = decode_lenient(raw).unwrap();
        assert_eq!(n.name, "Eve \u{fffd} the customer");
        let low: Named = decode_lenient(r#"{"name":"\udc00x"}"#).unwrap();
        assert_eq!(low.name, "\u{fffd}x");
    }

    #[test]
    fn pairs_and_escaped_backslashes_are_left_alone() {
        let n: Named = decode_lenient(r#"{"name":"\ud83d\ude00 \\ud800"}"#).unwrap();
        assert_eq!(n.name, "\u{1f600} \\ud800");
        assert_eq!(repair_surrogates(r#"{"name":"\\ud800"}"#), None);
    }

    #[test]
    fn raw_items_keep_lone_surrogates_for_the_item_decoder() {
        let page = r#"[{"id":"1","name":"ok"},{"id":"2","name":"\ud800"},{"id":3,"name":7}]"#;
        let items: Vec<Box<RawValue>> = serde_json::from_str(page).unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(item_id(&items[1]).as_deref(), Some("2"));
        assert_eq!(item_id(&items[2]).as_deref(), Some("3"));
        assert!(decode_lenient::<Named>(items[2].get()).is_err());
    }
}
