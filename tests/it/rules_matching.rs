//! The matching contract of `docs/rules.md`, one line per case.

use helpdesk::domain::Channel;
use helpdesk::rules::{LoadOptions, RuleSet, SourceFile};
use proptest::prelude::*;

const RULES: &str = r##"
[[rule]]
id = "refund"
keywords = ["rembours*", "refund"]
priority = 10
escalate = { queue = "billing" }

[[rule]]
id = "password"
keywords = ["mot de passe", "password", "log"]
exclude = ["hiring"]
reply = "Reset: https://help.example/pw"

[[rule]]
id = "outage-hashtag"
keywords = ["#panne"]
priority = 3
reply = "Status: https://status.example"

[[rule]]
id = "outage-word"
keywords = ["panne", "outage"]
priority = 3
reply = "Status page: https://status.example"

[[rule]]
id = "app"
keywords = ["application", "appli"]
reply = "Get the app"

[[rule]]
id = "invoice"
keywords = ["facture"]
channels = ["dm"]
reply = "Invoices: https://example/factures"

[[rule]]
id = "roaming"
keywords = ["roaming"]
require = ["forfait", "data"]
reply = "Roaming info"

[[rule]]
id = "cancel"
keywords = ["résilier", "resiliation", "cancel"]
require_any = ["abonnement", "contrat", "subscription", "contract*", "box internet"]
escalate = { queue = "retention" }

[[rule]]
id = "cancel-order"
keywords = ["cancel"]
require = ["order"]
require_any = ["today", "now"]
exclude = ["don't"]
priority = 1
reply = "Orders: https://help.example/orders"

[[rule]]
id = "move"
keywords = ["déménagement", "moving"]
require_any = []
reply = "Moving: https://help.example/move"

[[rule]]
id = "japanese-refund"
keywords = ["払い戻し"]
reply = "返金について"

[[rule]]
id = "brand"
keywords = ["lumio"]
priority = -1
reply = "Hello from Lumio"
"##;

fn set() -> RuleSet {
    RuleSet::load_sources(
        vec![SourceFile {
            name: "t.toml".into(),
            text: RULES.into(),
        }],
        &LoadOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{}", e.render()))
}

#[test]
fn matching_contract_table() {
    use Channel::*;
    let set = set();
    let cases: &[(&str, Channel, Option<&str>)] = &[
        // Case and accents.
        ("@acme je veux être REMBOURSÉ", Mention, Some("refund")),
        ("je veux etre rembourse", Mention, Some("refund")),
        ("ＲＥＦＵＮＤ please", Mention, Some("refund")), // fullwidth
        ("re\u{200b}fund now", Mention, Some("refund")),  // zero-width space
        ("re\u{202e}fund now", Mention, Some("refund")),  // bidi control
        // Whole words.
        ("my blog is great", Mention, None),
        ("I can't log in", Mention, Some("password")),
        ("refunds please", Mention, None), // `refund` is not a prefix
        ("remboursement svp", Mention, Some("refund")), // `rembours*` is
        // Phrases across white space.
        ("mon mot   de\npasse", Mention, Some("password")),
        ("mon mot de passage", Mention, None),
        // Exclude.
        ("we're hiring a password engineer", Mention, None),
        // Apostrophes: typographic = plain, and they end a word.
        ("l’application plante", Mention, Some("app")),
        ("l'appli plante", Mention, Some("app")),
        // Hashtags: `#panne` only the hashtag; `panne` the word and the hashtag.
        ("grosse #panne", Mention, Some("outage-hashtag")),
        ("grosse panne", Mention, Some("outage-word")),
        // Handles and URLs are not searched.
        ("@refund hello", Mention, None),
        ("see https://example.com/refund", Mention, None),
        ("see www.example.com/refund", Mention, None),
        ("@bob@refund.social hi", Mention, None),
        // Channels.
        ("ma facture svp", Dm, Some("invoice")),
        ("ma facture svp", Mention, None),
        // Require: every entry.
        ("roaming forfait data", Mention, Some("roaming")),
        ("roaming forfait", Mention, None),
        // Require_any: at least one entry, with keywords' matching.
        ("je veux résilier mon abonnement", Mention, Some("cancel")),
        ("RESILIER le CONTRAT", Mention, Some("cancel")),
        ("cancel my subscription", Mention, Some("cancel")),
        ("cancel the contracts", Mention, Some("cancel")), // `contract*` is a prefix
        (
            "je veux résilier ma box   internet",
            Mention,
            Some("cancel"),
        ), // a phrase
        ("je veux résilier", Mention, None),
        ("cancel", Mention, None),
        ("cancel my contrat-cadre", Mention, Some("cancel")),
        ("cancel https://example.com/subscription", Mention, None), // URLs are not searched
        ("résilier @abonnement", Mention, None),                    // nor handles
        // Require and require_any together, with priority.
        ("cancel my order now", Mention, Some("cancel-order")),
        ("cancel my order", Mention, None),
        ("cancel my order subscription", Mention, Some("cancel")),
        (
            "cancel my order now subscription",
            Mention,
            Some("cancel-order"),
        ),
        ("don't cancel my order now", Mention, None),
        // An empty require_any asks for nothing.
        ("moving next week", Mention, Some("move")),
        // Priority, then file order.
        ("panne et remboursement", Mention, Some("refund")),
        ("#panne outage", Mention, Some("outage-hashtag")),
        // Scripts without spaces match inside a run of text.
        ("払い戻しをお願いします", Mention, Some("japanese-refund")),
        // Lower priority loses to any other rule.
        ("lumio refund", Mention, Some("refund")),
        ("lumio", Mention, Some("brand")),
    ];
    let mut failures = Vec::new();
    for (text, channel, want) in cases {
        let d = set.route(text, *channel);
        let got = d.rule_id().map(|r| r.as_str());
        if got != *want {
            failures.push(format!("{text:?} on {channel}: got {got:?}, want {want:?}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn explains_the_winner_and_the_losers() {
    let set = set();
    let text = "Grosse panne, je veux être REMBOURSÉ";
    let d = set.route(text, Channel::Mention);
    let w = d.winner.as_ref().expect("a winner");
    assert_eq!(w.rule.id.as_str(), "refund");
    assert_eq!(&text[w.span.0..w.span.1], "REMBOURSÉ");
    assert_eq!(d.losers.len(), 1);
    assert_eq!(d.losers[0].rule.id.as_str(), "outage-word");
    assert_eq!(
        d.losers[0].reason.to_string(),
        "priority 3 is lower than 10 of `refund`"
    );
    let d = set.route("#panne outage", Channel::Mention);
    assert_eq!(
        d.losers[0].reason.to_string(),
        "same priority as `outage-hashtag`, which comes first in file order"
    );
    let d = set.route("ma facture", Channel::Mention);
    assert!(d.losers[0].reason.to_string().contains("channel mention"));
}

#[test]
fn routing_is_deterministic() {
    let set = set();
    let a = format!(
        "{:?}",
        set.route("panne #panne refund remboursé", Channel::Mention)
            .losers
    );
    for _ in 0..10 {
        let b = format!(
            "{:?}",
            set.route("panne #panne refund remboursé", Channel::Mention)
                .losers
        );
        assert_eq!(a, b);
    }
}

proptest! {
    #[test]
    fn matching_never_panics_on_arbitrary_unicode(text in "\\PC*", any_text in any::<String>()) {
        let set = set();
        for t in [&text, &any_text] {
            for c in Channel::ALL {
                let d = set.route(t, c);
                if let Some(w) = d.winner {
                    prop_assert!(w.span.0 <= w.span.1 && w.span.1 <= t.len());
                    prop_assert!(t.is_char_boundary(w.span.0) && t.is_char_boundary(w.span.1));
                }
            }
        }
    }

    #[test]
    fn a_rule_whose_keywords_do_not_occur_never_changes_the_winner(
        text in "[a-zé #@']{0,60}",
        kw in "[q-z]{6,10}",
        priority in -100i64..100,
    ) {
        prop_assume!(!text.contains(&kw));
        let before = set();
        let extra = format!("{RULES}\n[[rule]]\nid = \"extra\"\nkeywords = [\"{kw}\"]\npriority = {priority}\nreply = \"x\"\n");
        let after = RuleSet::load_sources(vec![SourceFile { name: "t.toml".into(), text: extra }], &LoadOptions::default()).unwrap();
        let a = before.route(&text, Channel::Mention).rule_id().cloned();
        let b = after.route(&text, Channel::Mention).rule_id().cloned();
        prop_assert_eq!(a, b);
    }
}

#[test]
fn sixty_four_require_entries_are_all_needed() {
    let words: Vec<String> = (0..64).map(|i| format!("w{i}x")).collect();
    let list = words
        .iter()
        .map(|w| format!("\"{w}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let text = format!(
        "[[rule]]\nid = \"many\"\nkeywords = [\"go\"]\nrequire = [{list}]\nreply = \"ok\"\n"
    );
    let set = RuleSet::load_sources(
        vec![SourceFile {
            name: "m.toml".into(),
            text,
        }],
        &LoadOptions::default(),
    )
    .unwrap();
    let all = format!("go {}", words.join(" "));
    assert_eq!(
        set.route(&all, Channel::Mention)
            .rule_id()
            .map(|r| r.as_str()),
        Some("many")
    );
    let most = format!("go {}", words[1..].join(" "));
    assert_eq!(set.route(&most, Channel::Mention).rule_id(), None);
}

#[test]
fn a_rule_without_any_require_any_entry_says_so() {
    let set = set();
    let d = set.route("je veux résilier, c'est tout", Channel::Mention);
    assert_eq!(d.rule_id(), None);
    let lost: Vec<String> = d
        .losers
        .iter()
        .map(|l| format!("{}: {}", l.rule.id, l.reason))
        .collect();
    assert_eq!(
        lost,
        vec![
            "cancel: none of `require_any` matched (`abonnement`, `contrat`, `subscription`, `contract*`, `box internet`)"
        ]
    );
    // A missing `require` is said before require_any; an exclude before both.
    let d = set.route("cancel", Channel::Mention);
    let lost: Vec<String> = d.losers.iter().map(|l| l.reason.to_string()).collect();
    assert_eq!(
        lost,
        vec![
            "none of `require_any` matched (`abonnement`, `contrat`, `subscription`, `contract*`, `box internet`)".to_owned(),
            "required `order` is not in the message".to_owned()
        ]
    );
    let d = set.route("don't cancel", Channel::Mention);
    assert!(
        d.losers[1]
            .reason
            .to_string()
            .starts_with("excluded by `don't`"),
        "{:?}",
        d.losers
    );
}
