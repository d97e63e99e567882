//! Every parser that reads outside input, fed generated and mutated input:
//! no panic, and every rejection is a clear error (said in a few words,
//! never echoing the input). The mutations start from valid seeds (X's
//! pages, a webhook payload, Mastodon's notifications and status HTML,
//! Bluesky's notifications and chat log, an SSE stream, a rule file, a
//! configuration, a traffic file) and flip,
//! insert, delete and splice bytes, and drop in tokens parsers trip on
//! (lone surrogates, huge numbers, unclosed brackets…).
//!
//! `cargo test --test it -- fuzz::` runs proptest's default 256 cases per
//! parser; `PROPTEST_CASES=1000000 cargo test --release --test it -- fuzz::`
//! is the long run (see RELIABILITY.md). The cases proptest has shrunk a
//! failure to are replayed first from `tests/proptest-regressions/fuzz.txt`,
//! where its default `SourceParallel` persistence puts them for this file
//! (a sibling of the `tests/it/` folder that holds the binary's `main.rs`).

use std::path::Path;

use helpdesk::domain::clock::Clock;
use proptest::prelude::*;

const TWEETS: &str = r#"{"data":[{"id":"1900000000000000101","text":"@lumio code wifi ?","author_id":"21","conversation_id":"1900000000000000101","created_at":"2026-11-30T08:00:03.000Z","referenced_tweets":[{"type":"replied_to","id":"1900000000000000100"}]}],"includes":{"users":[{"id":"21","username":"eve","name":"Eve \ud83d"}]},"meta":{"newest_id":"1900000000000000101","next_token":"pg1","result_count":1}}"#;
const DMS: &str = r#"{"data":[{"id":"1900000000000000201","text":"hello","event_type":"MessageCreate","dm_conversation_id":"21-1","created_at":"2026-11-30T08:00:03.000Z","sender_id":"21"}],"includes":{"users":[{"id":"21","username":"eve","name":"Eve"}]},"meta":{"result_count":1}}"#;
const WEBHOOK: &str = r#"{"for_user_id":"1","tweet_create_events":[{"id_str":"1900000000000000301","text":"@lumio hi","created_at":"Wed Oct 10 20:19:24 +0000 2018","in_reply_to_status_id_str":null,"user":{"id_str":"21","screen_name":"eve","name":"Eve"}}],"direct_message_events":[{"type":"message_create","id":"1900000000000000302","created_timestamp":"1700000000000","message_create":{"target":{"recipient_id":"1"},"sender_id":"21","message_data":{"text":"hello"}}}]}"#;
const NOTIFICATIONS: &str = r#"[{"id":"1001","type":"mention","account":{"id":"7","acct":"eve@example.social","display_name":"Eve"},"status":{"id":"1170205858770560001","created_at":"2026-11-30T08:00:03.000Z","in_reply_to_id":null,"visibility":"direct","content":"<p><span class=\"h-card\"><a href=\"https://example.social/@lumio\" class=\"u-url mention\">@<span>lumio</span></a></span> code wifi ?<br/>&amp; merci</p>","mentions":[{"url":"https://example.social/@lumio","acct":"lumio"}],"reblog":null}},{"id":"1002","type":"favourite","account":{"id":"8","acct":"bob"},"status":null}]"#;
const BSKY_NOTIFICATIONS: &str = r#"{"cursor":"1764489603000::7","notifications":[{"uri":"at://did:plc:eve/app.bsky.feed.post/3lbbbbbbbbb2a","cid":"bafyreiabc","author":{"did":"did:plc:eve","handle":"eve.test","displayName":"Eve \ud83d"},"reason":"mention","record":{"$type":"app.bsky.feed.post","text":"hé @brand.test 😀 code wifi ?","createdAt":"2026-11-30T08:00:03.000Z","facets":[{"index":{"byteStart":4,"byteEnd":15},"features":[{"$type":"app.bsky.richtext.facet#mention","did":"did:plc:brand"}]}],"reply":{"root":{"uri":"at://did:plc:brand/app.bsky.feed.post/3laaaaaaaaa2a","cid":"bafyroot"},"parent":{"uri":"at://did:plc:brand/app.bsky.feed.post/3laaaaaaaaa2a","cid":"bafyroot"}}},"isRead":false,"indexedAt":"2026-11-30T08:00:03.100Z"},{"uri":"at://did:plc:bob/app.bsky.feed.like/3lccccccccc2a","cid":"bafyx","author":{"did":"did:plc:bob","handle":"bob.test"},"reason":"like","record":{"$type":"app.bsky.feed.like"},"isRead":false,"indexedAt":"2026-11-30T08:00:04.000Z"}]}"#;
const BSKY_LOG: &str = r#"{"cursor":"3ldddddddd22a","logs":[{"$type":"chat.bsky.convo.defs#logBeginConvo","rev":"1","convoId":"c1"},{"$type":"chat.bsky.convo.defs#logCreateMessage","rev":"2","convoId":"c1","message":{"$type":"chat.bsky.convo.defs#messageView","id":"m1","rev":"2","text":"refund please","sender":{"did":"did:plc:eve"},"sentAt":"2026-11-30T08:00:05.000Z"}},{"$type":"chat.bsky.convo.defs#logAddReaction","rev":"3","convoId":"c1","message":{"id":"m1"},"reaction":{"value":"👍"}}]}"#;
const HTML: &str = r#"<p>Hi <a href="https://x.example/@eve" class="u-url mention">@<span>eve</span></a> &lt;3 &#x1F600; &amp;amp;<br>line<br/>two</p><p>para &quot;q&quot; &#999999999;</p>"#;
const SSE: &str = ":thump\n\nevent: notification\ndata: {\"id\":\"1\",\"type\":\"mention\"}\n\nevent: update\ndata: {\"a\":\ndata: 1}\nid: 7\nretry: 100\n\n";
const RULES: &str = r#"
[[rule]]
id = "wifi"
keywords = ["wifi", "code wifi", "mot de passe*"]
require = ["box"]
exclude = ["panne"]
channels = ["mention", "dm"]
priority = 2
reply = "{author} Configurer le wifi : https://aide.example/wifi"
examples = ["code wifi box ?"]

[[rule]]
id = "refund"
keywords = ["refund", "rembourse*"]
escalate = { queue = "billing", priority = "high", ack = "{name}, ticket {ticket}." }
"#;
const CONFIG: &str = r#"
database_url = "sqlite://helpdesk.db"
rules = "rules"
admin_listen = "127.0.0.1:9898"
shutdown_deadline_secs = 20

[limits]
global = { replies = 60, per_secs = 900 }
per_customer = { replies = 3, per_secs = 3600 }

[x]
base_url = "https://api.x.com"
access_token_env = "HELPDESK_X_TOKEN"
priority = ["dms", "mentions", "search"]

[mastodon]
base_url = "https://example.social"
access_token_env = "HELPDESK_MASTODON_TOKEN"
"#;
const TRAFFIC: &str = "{\"id\":\"1\",\"channel\":\"mention\",\"author\":\"eve\",\"name\":\"Eve\",\"text\":\"@lumio hi\",\"at\":1.5}\n// a comment\n{\"id\":\"2\",\"channel\":\"dm\",\"author\":\"bob\",\"text\":\"hello\",\"at\":\"2026-11-30T08:00:00Z\"}\n";

/// Tokens that parsers trip on, dropped in at random places.
const TOKENS: &[&str] = &[
    "\\ud800",
    "\\udc00",
    "\\u0000",
    "\"",
    "\\",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "null",
    "true",
    "1e999",
    "-0",
    "18446744073709551616",
    "\u{202E}",
    "\u{200B}",
    "\n",
    "\r\n",
    "\t",
    "\0",
    "@",
    "#",
    "$",
    "&#x110000;",
    "&#0;",
    "<a href=",
    "</p>",
    "[[rule]]",
    "=",
    "'''",
    "\"\"\"",
    "data:",
    "event:",
    "\\ud83d\\ude00",
];

/// A seed with a handful of mutations.
fn mutated(seeds: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    let op = (0u8..5, any::<usize>(), any::<u8>());
    (0..seeds.len(), prop::collection::vec(op, 0..10)).prop_map(move |(i, ops)| {
        let mut b = seeds[i].as_bytes().to_vec();
        for (kind, pos, byte) in ops {
            let n = b.len();
            match kind {
                0 if n > 0 => b[pos % n] = byte,
                1 => b.insert(pos % (n + 1), byte),
                2 if n > 0 => {
                    b.remove(pos % n);
                }
                3 if n > 0 => {
                    // Splice: a copy of some tail somewhere else.
                    let from = pos % n;
                    let tail = b[from..(from + (byte as usize) + 1).min(n)].to_vec();
                    let at = (pos / 7) % (n + 1);
                    b.splice(at..at, tail);
                }
                _ => {
                    let t = TOKENS[byte as usize % TOKENS.len()].as_bytes();
                    let at = pos % (n + 1);
                    b.splice(at..at, t.iter().copied());
                }
            }
        }
        b
    })
}

/// Mutated seeds most of the time, arbitrary bytes the rest.
fn input(seeds: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => mutated(seeds),
        1 => prop::collection::vec(any::<u8>(), 0..512),
    ]
}

/// A rejection that says something.
fn said(e: &str) {
    assert!(!e.trim().is_empty(), "an empty error");
}

/// A rejection of a platform's answer: said, and not an echo of the input
/// (it holds customers' words). Files the operator wrote (rules, the
/// configuration) are quoted on purpose, to point at the line.
fn clear(e: &str, input: &[u8]) {
    said(e);
    let text = String::from_utf8_lossy(input);
    if text.len() > 60 {
        assert!(!e.contains(&*text), "the error echoes the whole input");
    }
}

proptest! {
    #[test]
    fn x_mention_pages(b in input(&[TWEETS])) {
        match helpdesk::platforms::x::decode_tweet_page(&b, &Clock::new()) {
            Ok((events, skipped)) => {
                for s in skipped {
                    prop_assert!(!s.error.is_empty());
                }
                drop(events);
            }
            Err(e) => clear(&e.to_string(), &b),
        }
    }

    #[test]
    fn x_dm_pages(b in input(&[DMS])) {
        if let Err(e) = helpdesk::platforms::x::decode_dm_page(&b, &Clock::new()) {
            clear(&e.to_string(), &b);
        }
    }

    #[test]
    fn x_webhook_bodies(b in input(&[WEBHOOK])) {
        match serde_json::from_slice::<helpdesk::platforms::x::webhook::Payload>(&b) {
            Ok(p) => {
                let _ = p.into_events();
            }
            Err(e) => clear(&e.to_string(), &b),
        }
    }

    #[test]
    fn mastodon_notification_pages(b in input(&[NOTIFICATIONS])) {
        if let Err(e) = helpdesk::platforms::mastodon::decode_notifications(&b, &Clock::new()) {
            clear(&e.to_string(), &b);
        }
    }

    #[test]
    fn bluesky_notification_pages(b in input(&[BSKY_NOTIFICATIONS])) {
        let r = helpdesk::platforms::bluesky::decode_notifications(&b, "did:plc:brand", "brand.test", &Clock::new());
        if let Err(e) = r {
            said(&e.to_string());
            clear(&e.to_string(), &b);
        }
    }

    #[test]
    fn bluesky_chat_logs(b in input(&[BSKY_LOG])) {
        if let Err(e) = helpdesk::platforms::bluesky::decode_log(&b, "did:plc:brand", &Clock::new()) {
            said(&e.to_string());
            clear(&e.to_string(), &b);
        }
    }

    #[test]
    fn mastodon_status_html(b in input(&[HTML])) {
        let html = String::from_utf8_lossy(&b);
        let _ = helpdesk::platforms::mastodon::html_to_text(&html, &[]);
    }

    #[test]
    fn sse_framing_in_any_chunks(b in input(&[SSE]), cuts in prop::collection::vec(any::<usize>(), 0..6)) {
        let mut p = helpdesk::platforms::sse::SseParser::default();
        let mut at = 0;
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (b.len() + 1)).collect();
        points.sort_unstable();
        for c in points.into_iter().chain([b.len()]) {
            let _ = p.feed(&b[at..c.max(at)]);
            at = c.max(at);
        }
    }

    #[test]
    fn rule_files(b in input(&[RULES])) {
        let file = helpdesk::rules::SourceFile {
            name: "fuzz.toml".into(),
            text: String::from_utf8_lossy(&b).into_owned(),
        };
        if let Err(e) = helpdesk::rules::RuleSet::load_sources(vec![file], &Default::default()) {
            said(&e.render());
        }
    }

    #[test]
    fn configuration_files(b in input(&[CONFIG])) {
        let src = String::from_utf8_lossy(&b);
        if let Err(e) = helpdesk::runtime::config::Config::parse(&src, Path::new("helpdesk.toml")) {
            said(&e.to_string());
        }
    }

    #[test]
    fn traffic_files(b in input(&[TRAFFIC])) {
        let src = String::from_utf8_lossy(&b);
        if let Err(e) = helpdesk::platforms::x::fake::parse_traffic(&src, "fuzz.jsonl") {
            said(&e.to_string());
        }
    }
}
