//! Text a customer controls, made inert before the brand's account says it.
//!
//! A display name (and anything else a customer chose) goes into replies
//! through `{name}`. Said as received, a name like `Eve @AcmeFibre_CEO`
//! makes the brand mention its own CEO, `#scam` tags a post, a URL becomes
//! a link, and a right-to-left override turns text around. [`inert`] makes
//! such text plain words:
//!
//! 1. NFKC folds look-alikes onto their plain forms (fullwidth `＠ ＃ ＄`,
//!    small `﹫`, mathematical letters), so what follows catches them.
//! 2. Control, format (zero-width, bidi overrides and isolates, tags) and
//!    line-separator characters are removed; any white space becomes one
//!    space.
//! 3. The sigils `@`, `#` and `$` become spaces: no mention, hashtag or
//!    cashtag can start in customer text.
//! 4. Whatever X's own linker (twitter-text, which also links `acme.fr`
//!    without a scheme) sees as a URL is removed, so is any word with a
//!    scheme (`://`, which Mastodon links whatever the domain) or starting
//!    with `www.`, and a `.` between two letters or digits that is left
//!    gets a space after it (`Dr. Who`), so no linker can see a domain.
//!
//! [`foreign_mentions`] is the last line of defence, used by the outbox on
//! the final text of every post: the only account a reply may mention is
//! the customer it answers.

use twitter_text::extractor::Extractor;
use unicode_normalization::UnicodeNormalization;

use crate::domain::Platform;

/// The longest display name each platform allows, in characters: a name
/// is cut to it before it is used.
pub fn name_max(platform: Platform) -> usize {
    match platform {
        Platform::X => 50,
        Platform::Mastodon => 30,
        // app.bsky.actor.profile: displayName maxGraphemes 64.
        Platform::Bluesky => 64,
    }
}

/// `text` as plain words that cannot mention, tag or link anything.
pub fn inert(text: &str) -> String {
    let folded: String = text
        .nfkc()
        // A sigil becomes a space, so `a@b` does not join into `ab`; line
        // breaks and tabs are white space, not invisible characters.
        .map(|c| {
            if c.is_whitespace() || matches!(c, '@' | '#' | '$') {
                ' '
            } else {
                c
            }
        })
        .filter(|c| !is_invisible(*c))
        .collect();
    let mut out = folded;
    // Removing one link can join what is left into another: a few rounds.
    let extractor = Extractor::new();
    for _ in 0..4 {
        let urls = extractor.extract_urls(&out);
        if urls.is_empty() {
            break;
        }
        for u in urls {
            out = out.replace(&u, " ");
        }
    }
    // Mastodon links any scheme URL whatever its domain: drop those too.
    let words: Vec<&str> = out
        .split_whitespace()
        .filter(|w| {
            let w = w.to_ascii_lowercase();
            !w.contains("://") && !w.starts_with("www.")
        })
        .collect();
    let spaced = space_dots(&words.join(" "));
    spaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A customer's display name for a reply: inert, cut to `max` characters.
pub fn name(raw: &str, max: usize) -> String {
    let clean = inert(raw);
    let cut: String = clean.chars().take(max).collect();
    cut.trim_end().to_owned()
}

/// Whether `handle` is a plain handle (`eve_1`, or `eve@example.social` on
/// Mastodon) that can follow an `@` and mention exactly that account.
pub fn is_plain_handle(handle: &str) -> bool {
    let word = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let domain = |s: &str| {
        !s.is_empty()
            && s.contains('.')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            && !s.starts_with(['.', '-'])
            && !s.ends_with(['.', '-'])
    };
    match handle.split_once('@') {
        // A domain alone is a Bluesky handle (`eve.bsky.social`).
        None => word(handle) || domain(handle),
        Some((user, host)) => word(user) && domain(host),
    }
}

/// Characters that change how text displays without showing themselves.
fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}' | '\u{1160}'
            | '\u{17B4}' | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E007F}'
            | '\u{E0100}'..='\u{E01EF}')
}

/// A space after every `.` that sits between two letters or digits, and
/// after every `:` that something follows (`magnet:?xt=…`, `xmpp:a@b`:
/// Mastodon links such schemes too).
fn space_dots(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len() + 8);
    for (i, c) in chars.iter().enumerate() {
        out.push(*c);
        let next = chars.get(i + 1);
        let dot = *c == '.'
            && i > 0
            && chars[i - 1].is_alphanumeric()
            && next.is_some_and(|n| n.is_alphanumeric());
        let colon = *c == ':' && next.is_some_and(|n| !n.is_whitespace());
        if dot || colon {
            out.push(' ');
        }
    }
    out
}

/// The accounts `post` would mention, other than `customer`, as the
/// platform would read them. Empty: the post may go out.
pub fn foreign_mentions(post: &str, customer: &str, platform: Platform) -> Vec<String> {
    let customer = customer.trim_start_matches('@').to_ascii_lowercase();
    let found: Vec<String> = match platform {
        Platform::X => Extractor::new()
            .extract_mentioned_screennames(post)
            .into_iter()
            .map(|m| m.to_ascii_lowercase())
            .collect(),
        Platform::Mastodon => mastodon_mentions(post),
        Platform::Bluesky => bluesky_mentions(post),
    };
    found
        .into_iter()
        .filter(|m| !same_account(m, &customer))
        .collect()
}

/// Whether mention `m` names `customer` (both lower case, no `@`): the same
/// acct, or the customer's local name when they are on the brand's
/// instance (an acct without a domain).
fn same_account(m: &str, customer: &str) -> bool {
    m == customer
        || (!customer.contains('@') && m.split('@').next() == Some(customer) && !m.contains('@'))
}

/// `@handle` mentions as Bluesky's apps detect them in text they facet
/// (the atproto rich-text detection): an `@` at the start or after white
/// space or `(`, then a handle of ASCII letters, digits, `.` and `-` with a
/// dot and an alphabetic last label. On Bluesky only a facet mentions, and
/// the connector facets the customer alone; this check still refuses a
/// text that an app would offer to link, lower-cased.
fn bluesky_mentions(post: &str) -> Vec<String> {
    let chars: Vec<char> = post.nfkc().collect();
    let handle_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-');
    let mut out = Vec::new();
    for i in 0..chars.len() {
        let starts =
            chars[i] == '@' && (i == 0 || chars[i - 1].is_whitespace() || chars[i - 1] == '(');
        if !starts {
            continue;
        }
        let handle: String = chars[i + 1..]
            .iter()
            .take_while(|c| handle_char(**c))
            .collect();
        let handle = handle.trim_end_matches(['.', '-']).to_ascii_lowercase();
        let labels: Vec<&str> = handle.split('.').collect();
        let valid = labels.len() >= 2
            && labels.iter().all(|l| !l.is_empty())
            && labels
                .last()
                .is_some_and(|t| t.len() >= 2 && t.chars().all(|c| c.is_ascii_alphabetic()));
        if valid {
            out.push(handle);
        }
    }
    out
}

/// `@user` and `@user@domain` mentions as Mastodon links them (its
/// `MENTION_RE`): an `@` not preceded by a word character or `/`, a user
/// name of letters, digits, `_`, `.` and `-` (not at its ends), and a
/// domain of anything but white space, `@` and `/`, with a dot.
fn mastodon_mentions(post: &str) -> Vec<String> {
    let chars: Vec<char> = post.nfkc().collect();
    let user_char = |c: char| c.is_alphanumeric() || matches!(c, '_' | '.' | '-');
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let starts = chars[i] == '@'
            && (i == 0 || !(chars[i - 1].is_alphanumeric() || matches!(chars[i - 1], '_' | '/')));
        if !starts {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < chars.len() && user_char(chars[j]) {
            j += 1;
        }
        let user: String = chars[i + 1..j].iter().collect();
        let user = user.trim_end_matches(['.', '-']).to_owned();
        if user.is_empty() {
            i += 1;
            continue;
        }
        let mut acct = user.clone();
        let mut end = i + 1 + user.chars().count();
        if chars.get(end) == Some(&'@') {
            let mut k = end + 1;
            while k < chars.len() && !chars[k].is_whitespace() && chars[k] != '@' && chars[k] != '/'
            {
                k += 1;
            }
            let host: String = chars[end + 1..k].iter().collect();
            let host = host.trim_end_matches(|c: char| !c.is_alphanumeric());
            if host.contains('.') {
                acct.push('@');
                acct.push_str(host);
                end += 1 + host.chars().count();
            }
        }
        out.push(acct.to_lowercase());
        i = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hostile names and what must be left of them.
    const HOSTILE: &[(&str, &str)] = &[
        (
            "@elonmusk @POTUS https://evil.example/phish #scam",
            "elonmusk POTUS scam",
        ),
        ("Eve @AcmeFibre_CEO", "Eve AcmeFibre_CEO"),
        (
            "Eve ＠AcmeFibre_CEO ＃deal ＄TSLA",
            "Eve AcmeFibre_CEO deal TSLA",
        ),
        ("Eve \u{FE6B}victim", "Eve victim"),
        ("Eve @\u{200B}victim", "Eve victim"),
        ("@victim@mastodon.social", "victim"),
        ("visit acme-fibre.fr now", "visit now"),
        ("www.evil.example", ""),
        ("Eve \u{202E}moc.live\u{202C}", "Eve"),
        ("Eve\nSupport\r\nTeam\t!", "Eve Support Team !"),
        ("Dr.Who", "Dr. Who"),
        ("Zoë Ångström 🙂", "Zoë Ångström 🙂"),
        ("$ 5 off", "5 off"),
        (
            "magnet:?xt=urn:btih:c12fe1c06b",
            "magnet: ?xt=urn: btih: c12fe1c06b",
        ),
        ("xmpp:a\u{1F642}.social", "xmpp: a\u{1F642}.social"),
        ("Eve\u{E0100}\u{2800}\u{FE0F}", "Eve"),
    ];

    #[test]
    fn hostile_names_become_plain_words() {
        for (raw, want) in HOSTILE {
            assert_eq!(inert(raw), *want, "{raw:?}");
            let out = inert(raw);
            let x = Extractor::new();
            assert!(x.extract_mentioned_screennames(&out).is_empty(), "{raw:?}");
            assert!(x.extract_hashtags(&out).is_empty(), "{raw:?}");
            assert!(x.extract_cashtags(&out).is_empty(), "{raw:?}");
            assert!(x.extract_urls(&out).is_empty(), "{raw:?}");
            assert!(mastodon_mentions(&out).is_empty(), "{raw:?}");
            assert!(bluesky_mentions(&out).is_empty(), "{raw:?}");
        }
    }

    #[test]
    fn names_are_cut_to_the_platform_maximum() {
        let long = "A".repeat(2000);
        assert_eq!(name(&long, name_max(Platform::X)).chars().count(), 50);
        assert_eq!(
            name(&long, name_max(Platform::Mastodon)).chars().count(),
            30
        );
        assert_eq!(name(&long, name_max(Platform::Bluesky)).chars().count(), 64);
    }

    #[test]
    fn only_plain_handles_follow_an_at_sign() {
        assert!(is_plain_handle("eve_1"));
        assert!(is_plain_handle("eve@example.social"));
        assert!(is_plain_handle("eve.bsky.social"));
        assert!(!is_plain_handle("eve.bsky.social."));
        assert!(!is_plain_handle(".eve.bsky.social"));
        assert!(!is_plain_handle("eve@@x"));
        assert!(!is_plain_handle("eve bob"));
        assert!(!is_plain_handle("eve@x"));
        assert!(!is_plain_handle(""));
    }

    #[test]
    fn the_last_check_finds_any_account_but_the_customer() {
        let x = Platform::X;
        assert!(foreign_mentions("@eve thanks!", "eve", x).is_empty());
        assert!(foreign_mentions("@EVE thanks!", "eve", x).is_empty());
        assert_eq!(foreign_mentions("@eve ask @ceo", "eve", x), ["ceo"]);
        assert_eq!(foreign_mentions("@eve ＠ceo", "eve", x), ["ceo"]);
        let m = Platform::Mastodon;
        assert!(foreign_mentions("@eve@a.social hi", "eve@a.social", m).is_empty());
        assert!(foreign_mentions("@eve hi", "eve", m).is_empty());
        assert_eq!(
            foreign_mentions("@eve hi @victim@mastodon.social", "eve", m),
            ["victim@mastodon.social"]
        );
        assert_eq!(
            foreign_mentions("@eve@evil.social hi", "eve", m),
            ["eve@evil.social"]
        );
        assert!(foreign_mentions("mail me: a@b.example", "eve", m).is_empty());
        // Mastodon's own pattern: `@@`, dots in names, Unicode domains.
        assert_eq!(
            foreign_mentions("@eve @@victim@mastodon.social", "eve", m),
            ["victim@mastodon.social"]
        );
        assert_eq!(
            foreign_mentions("@eve.x@evil.social hi", "eve", m),
            ["eve.x@evil.social"]
        );
        assert_eq!(
            foreign_mentions("@eve@évil.social hi", "eve", m),
            ["eve@évil.social"]
        );
        let b = Platform::Bluesky;
        assert!(foreign_mentions("@eve.bsky.social thanks!", "eve.bsky.social", b).is_empty());
        assert!(foreign_mentions("(@Eve.Bsky.Social) ok", "eve.bsky.social", b).is_empty());
        assert_eq!(
            foreign_mentions("@eve.bsky.social ask @ceo.acme.com.", "eve.bsky.social", b),
            ["ceo.acme.com"]
        );
        assert_eq!(
            foreign_mentions("@eve.bsky.social ＠ceo.acme.com", "eve.bsky.social", b),
            ["ceo.acme.com"]
        );
        // Not handles an app links: no dot, a numeric last label, inside a word.
        assert!(
            foreign_mentions("@team hi, v@1.2 and a@b.example", "eve.bsky.social", b).is_empty()
        );
    }
}
