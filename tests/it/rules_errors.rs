//! Every load error the contract names, all reported in one run, each at
//! `FILE:LINE:COL` with a hint; and the `rules check` / `rules test` commands.

use std::process::Command;

use helpdesk::rules::{LoadOptions, RuleSet, SourceFile};

fn errors(files: &[(&str, &str)]) -> String {
    let files = files
        .iter()
        .map(|(n, t)| SourceFile {
            name: n.to_string(),
            text: t.to_string(),
        })
        .collect();
    match RuleSet::load_sources(files, &LoadOptions::default()) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.render(),
    }
}

/// A file of thousands of rules is checked on several threads, a run of
/// rules each; the errors are those one thread finds, in the same order: a
/// duplicate id in a later run points back at the first use, however many
/// uses there are, and comes before another error at the same place.
#[test]
fn a_large_file_checked_on_several_threads_reports_as_one_thread_would() {
    let mut text = String::new();
    for i in 0..4_000 {
        let id = match i {
            3_500 | 3_700 => "r3".to_owned(),
            3_800 => "r5".to_owned(),
            3_900 => "r3600".to_owned(),
            _ => format!("r{i}"),
        };
        let keywords = match i {
            2_100 => "keywords = []".to_owned(),
            3_800 => "# no keywords".to_owned(),
            _ => format!("keywords = [\"kw{i}\"]"),
        };
        text.push_str(&format!(
            "[[rule]]\nid = \"{id}\"\n{keywords}\nreply = \"hi\"\n\n"
        ));
    }
    let render = |threads: usize| {
        let files = vec![SourceFile {
            name: "big.toml".into(),
            text: text.clone(),
        }];
        let opts = LoadOptions {
            threads: std::num::NonZeroUsize::new(threads),
            ..LoadOptions::default()
        };
        match RuleSet::load_sources(files, &opts) {
            Ok(_) => panic!("expected errors"),
            Err(e) => e.render(),
        }
    };
    let err = render(4);
    assert_eq!(err, render(1), "four threads against one");
    let line_of = |i: usize| 5 * i + 2;
    let found: Vec<&str> = err.lines().filter(|l| l.starts_with("big.toml:")).collect();
    assert_eq!(
        found,
        vec![
            format!(
                "big.toml:{}:12: error: rule `r2100` has an empty `keywords` list",
                line_of(2_100) + 1
            ),
            format!(
                "big.toml:{}:6: error: duplicate rule id `r3`",
                line_of(3_500)
            ),
            format!(
                "big.toml:{}:6: error: duplicate rule id `r3`",
                line_of(3_700)
            ),
            format!(
                "big.toml:{}:6: error: duplicate rule id `r5`",
                line_of(3_800)
            ),
            format!(
                "big.toml:{}:6: error: rule `r5` has no `keywords`",
                line_of(3_800)
            ),
            format!(
                "big.toml:{}:6: error: duplicate rule id `r3600`",
                line_of(3_900)
            ),
        ],
        "{err}"
    );
    // Both later uses of `r3` point back at the first, not at each other.
    let first_r3 = format!("{} │ id = \"r3\"", line_of(3));
    assert_eq!(err.matches(&first_r3).count(), 2, "{err}");
}

/// A bad id is reported once, as a bad id: not also as a duplicate of
/// another bad one, nor of a rule whose id happens to be `invalid`.
#[test]
fn bad_ids_are_not_duplicates_of_each_other() {
    let text = "[[rule]]\nid = \"Foo\"\nkeywords = [\"a\"]\nignore = true\n\n\
                [[rule]]\nid = \"Bar\"\nkeywords = [\"b\"]\nignore = true\n\n\
                [[rule]]\nid = \"invalid\"\nkeywords = [\"c\"]\nignore = true\n";
    let err = errors(&[("a.toml", text)]);
    let found: Vec<&str> = err.lines().filter(|l| l.starts_with("a.toml:")).collect();
    assert_eq!(found.len(), 2, "{err}");
    assert!(
        found
            .iter()
            .all(|l| l.contains(":6: error:") && !l.contains("duplicate")),
        "{err}"
    );
    assert!(
        found[0].starts_with("a.toml:2:6:") && found[1].starts_with("a.toml:7:6:"),
        "{err}"
    );
}

#[test]
fn a_rule_with_a_bad_id_is_named_as_written() {
    let err = errors(&[("a.toml", "[[rule]]\nid = \"Bad\"\nreply = \"x\"\n")]);
    assert!(err.contains("rule `Bad` has no `keywords`"), "{err}");
    assert!(!err.contains("`invalid`"), "{err}");
}

#[test]
fn every_error_kind_is_reported_with_its_place_and_a_hint() {
    let a = r#"[[rule]]
id = "one"
keywrods = ["x"]
keywords = ["refund"]
reply = "hi {user}"

[[rule]]
id = "two"
keywords = []
reply = "a"
ignore = true

[[rule]]
id = "one"
keywords = ["   ", "*"]
reply = "see {ticket}"

[[rule]]
id = "four"
keywords = ["help"]
escalate = { queue = "billing", priority = "asap", ack = "ok {ticket}" }

[[rule]]
id = "five"
keywords = ["long"]
reply = "{name} {name} {name} {name} {name} {name}"

[[rule]]
id = "six"
keywords = ["hello"]

[[rule]]
id = "seven"
keywords = ["price"]
reply = "see our prices"
examples = ["how much is it"]
not_examples = ["what is the price"]

[default]
ignore = true
"#;
    let b = "[default]\nignore = true\n\n[[rule]]\nid = \"broken\nkeywords = [\n";
    let c = "[default]\nescalate = { queue = \"tech\" }\n";
    let out = errors(&[("a.toml", a), ("b.toml", b), ("c.toml", c)]);
    let expect = [
        "a.toml:3:1: error: unknown key `keywrods` in rule `one`",
        "did you mean `keywords`?",
        "a.toml:5:13: error: in `reply`: unknown placeholder `{user}`",
        "a.toml:9:12: error: rule `two` has an empty `keywords` list",
        "rule `two` has more than one action: reply and ignore",
        "a.toml:14:6: error: duplicate rule id `one`",
        "first defined here",
        "is empty once normalised",
        "`{ticket}` can only be used in an escalation's `ack`",
        "error: ticket unknown priority `asap`",
        "a.toml:26:9: error: `reply` is too long for x: 605 of 280 weighted characters",
        "with {name} as a 50-character name",
        "rule `six` has no action",
        "b.toml:5:13: error: TOML syntax",
        "c.toml:1:1: error: more than one [default]",
        "help:",
    ];
    let missing: Vec<_> = expect.iter().filter(|e| !out.contains(*e)).collect();
    assert!(missing.is_empty(), "missing {missing:?} in:\n{out}");
    // The caret line under the offending text.
    assert!(out.contains("^^^^^^^^"), "{out}");
}

#[test]
fn examples_are_checked_once_the_rest_loads() {
    let a = r#"[[rule]]
id = "price"
keywords = ["price"]
reply = "see our prices"
examples = ["how much is it"]
not_examples = ["what is the price"]
"#;
    let out = errors(&[("a.toml", a)]);
    assert!(out.contains("a.toml:5:13: error: example \"how much is it\" of rule `price` does not route to it on mention: no rule matched it"), "{out}");
    assert!(out.contains("a.toml:6:17: error: not_example \"what is the price\" routes to rule `price` on mention (keyword `price` at 12..17)"), "{out}");
}

fn helpdesk(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_helpdesk"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run helpdesk");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn rules_check_passes_on_the_shipped_rules() {
    let (code, out, err) = helpdesk(&["rules", "check"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("ok: "), "{out}");
    assert!(out.contains("examples passed"), "{out}");
}

#[test]
fn rules_check_fails_with_every_error_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.toml"),
        "[[rule]]\nid = \"x\"\nkeywords = [\"a\"]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.toml"),
        "[[rule]]\nid = \"x\"\nkeywords = [\"b\"]\nignore = true\n",
    )
    .unwrap();
    let (code, out, err) = helpdesk(&["rules", "check", "--rules", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(
        err.contains("a.toml:1:1: error: rule `x` has no action"),
        "{err}"
    );
    assert!(
        err.contains("b.toml:2:6: error: duplicate rule id `x`"),
        "{err}"
    );
}

#[test]
fn rules_test_json_has_the_documented_shape() {
    let (code, out, _) = helpdesk(&["rules", "test", "--json", "@lumio je veux être REMBOURSÉ"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["rule"], "refund");
    assert_eq!(v["action"], "escalate");
    assert_eq!(v["keyword"], "rembours*");
    assert_eq!(v["span"], serde_json::json!([21, 31]));
    assert!(v["losers"].is_array());
    assert!(v["reply"].as_str().unwrap().contains("T-"));
    let (_, out, _) = helpdesk(&["rules", "test", "--json", "--channel", "dm", "zzz"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["rule"], serde_json::Value::Null);
    assert_eq!(v["action"], "escalate"); // the shipped [default]
}

#[test]
fn unknown_keys_of_escalate_and_default_list_their_own_keys() {
    let a = "[[rule]]\nid = \"x\"\nkeywords = [\"a\"]\nescalate = { queue = \"q\", priorty = \"high\" }\n\n[default]\nignore = true\nescalte = { queue = \"q\" }\n";
    let out = errors(&[("a.toml", a)]);
    for expect in [
        "a.toml:4:27: error: unknown key `priorty` in the escalate table of rule `x`",
        "did you mean `priority`? The keys are: queue, priority, ack",
        "a.toml:8:1: error: unknown key `escalte` in [default]",
        "did you mean `escalate`? The keys are: escalate, ignore",
    ] {
        assert!(out.contains(expect), "missing {expect:?} in:\n{out}");
    }
}

#[test]
fn rules_commands_price_replies_on_x_and_suggest_the_cheaper_form() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.toml"),
        r#"
[[rule]]
id = "hours"
keywords = ["horaires"]
reply = "Nos horaires : https://lumio.com/contact"

[[rule]]
id = "thanks"
keywords = ["merci"]
reply = "Avec plaisir !"

[[rule]]
id = "invoice"
keywords = ["facture"]
via = "dm"
reply = "Votre facture : https://lumio.com/facture"

[[rule]]
id = "outage"
keywords = ["panne"]
reply = { fr = "Nous vérifions votre ligne : https://lumio.com/diag", en = "We are on it." }
"#,
    )
    .unwrap();
    let rules = dir.path().to_str().unwrap();
    let (code, out, err) = helpdesk(&["rules", "check", "--rules", rules]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(
            "a.toml:2: hours: costs $0.20 per public reply on X (it has a link); cheaper: `via = \"dm\"` ($0.015), or the link left out ($0.015)"
        ),
        "{out}"
    );
    assert!(
        out.contains("a.toml:7: thanks: costs $0.015 per public reply on X\n"),
        "{out}"
    );
    // Each text of a language table on its own line: one has a link.
    assert!(
        out.contains("a.toml:18: outage (fr): costs $0.20 per public reply on X (it has a link)"),
        "{out}"
    );
    assert!(
        out.contains("a.toml:18: outage (en): costs $0.015 per public reply on X\n"),
        "{out}"
    );
    assert!(
        out.contains("a.toml:12: invoice: costs $0.015 per reply on X (a DM)"),
        "{out}"
    );
    let (_, out, _) = helpdesk(&["rules", "test", "--rules", rules, "vos horaires ?"]);
    assert!(out.contains("cost:    $0.20 on X"), "{out}");
    let json = |args: &[&str]| -> serde_json::Value {
        let (code, out, err) = helpdesk(args);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(out.trim()).unwrap()
    };
    let v = json(&[
        "rules",
        "test",
        "--json",
        "--rules",
        rules,
        "vos horaires ?",
    ]);
    assert_eq!(v["x_cost_usd"], 0.2);
    // By DM the same reply costs a DM.
    let v = json(&[
        "rules",
        "test",
        "--json",
        "--channel",
        "dm",
        "--rules",
        rules,
        "horaires",
    ]);
    assert_eq!(v["x_cost_usd"], 0.015);
    // The configuration's prices win over the published ones.
    let elsewhere = tempfile::tempdir().unwrap();
    let config = elsewhere.path().join("helpdesk.toml");
    std::fs::write(&config, "[x.prices]\ncontent_create_with_url = 0.25\n").unwrap();
    let config = config.to_str().unwrap();
    let v = json(&[
        "rules",
        "test",
        "--json",
        "--config",
        config,
        "--rules",
        rules,
        "vos horaires ?",
    ]);
    assert_eq!(v["x_cost_usd"], 0.25);
    let v = json(&["rules", "test", "--json", "--rules", rules, "zzz"]);
    assert_eq!(v["x_cost_usd"], serde_json::Value::Null);
}

#[test]
fn language_tables_are_checked_text_by_text() {
    let a = r#"[[rule]]
id = "cancel"
keywords = ["cancel"]
escalate = { queue = "retention", ack = { fr = "{author} dossier {ticket}", EN = "{author} case {ticket}", fra = "x" } }

[[rule]]
id = "outage"
keywords = ["panne"]
reply = { fr = "{author} Nous vérifions {ticket}", en = "{author} {name} {name} {name} {name} {name} {name}" }

[[rule]]
id = "empty"
keywords = ["vide"]
reply = {}

[[rule]]
id = "number"
keywords = ["nombre"]
reply = { fr = 3 }

[[rule]]
id = "twice"
keywords = ["deux"]
reply = { fr = "un", en = "one", FR = "deux" }
"#;
    let out = errors(&[("a.toml", a)]);
    for want in [
        // A bad code at the code; `EN` is `en`.
        "a.toml:4:108: error: in `ack`: `fra` is not a language code: write two letters of ISO 639-1, such as fr, en or es",
        // Each text's placeholders and length, at that text.
        "a.toml:9:41: error: in `reply.fr`: `{ticket}` can only be used in an escalation's `ack`",
        "a.toml:9:57: error: `reply.en` is too long for x: 622 of 280",
        "a.toml:14:9: error: `reply` is an empty table",
        "a.toml:19:16: error: invalid type: integer `3`, expected a string",
        // `FR` is `fr`: the second would never be sent.
        "a.toml:24:",
        "in `reply`: `fr` is given twice",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
}

#[test]
fn a_language_table_loads_in_file_order() {
    let set = RuleSet::load_sources(
        vec![SourceFile {
            name: "a.toml".into(),
            text: r#"[[rule]]
id = "hello"
keywords = ["hello"]
reply = { fr = "Bonjour {author}", en = "Hello {author}", es = "Hola {author}" }
"#
            .into(),
        }],
        &LoadOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{}", e.render()));
    let rule = &set.rules()[0];
    let helpdesk::rules::Action::Reply(text) = &rule.action else {
        panic!("a reply")
    };
    let langs: Vec<String> = text
        .variants()
        .iter()
        .map(|(l, _)| l.unwrap().to_string())
        .collect();
    // Not in key order (en, es, fr): the first in the file is the fallback.
    assert_eq!(langs, ["fr", "en", "es"]);
    assert_eq!(text.pick(None, None).0.source(), "Bonjour {author}");
}

#[test]
fn the_signature_of_the_configuration_counts_and_shows() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    // 250 characters and {author} (16 at most, with the `@`, and a space):
    // fits X alone, not with a 30-character signature.
    let long = "a".repeat(250);
    std::fs::write(
        rules.join("a.toml"),
        format!("[[rule]]\nid = \"long\"\nkeywords = [\"long\"]\nreply = \"{{author}} {long}\"\n\n[[rule]]\nid = \"short\"\nkeywords = [\"short\"]\nreply = {{ fr = \"Bonjour\", en = \"Hello\" }}\n"),
    )
    .unwrap();
    let config = dir.path().join("helpdesk.toml");
    std::fs::write(
        &config,
        "[replies]\nsignature = { fr = \" · réponse automatique, merci\", en = \" · automated reply\" }\n",
    )
    .unwrap();
    let rules = rules.to_str().unwrap();
    let config = config.to_str().unwrap();
    let (code, out, err) = helpdesk(&["rules", "check", "--rules", rules]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = helpdesk(&["rules", "check", "--rules", rules, "--config", config]);
    assert_eq!(code, 1);
    assert!(
        err.contains("`reply` is too long for x: 296 of 280") && err.contains("signature included"),
        "{err}"
    );
    std::fs::write(
        std::path::Path::new(rules).join("a.toml"),
        "[[rule]]\nid = \"short\"\nkeywords = [\"short\"]\nreply = { fr = \"Bonjour\", en = \"Hello\" }\n",
    )
    .unwrap();
    let (code, out, err) = helpdesk(&[
        "rules", "test", "--rules", rules, "--config", config, "--json", "short",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // "short" reads as English: the English text and signature.
    assert_eq!(v["language"], "en", "{out}");
    assert_eq!(v["reply_language"], "en", "{out}");
    assert_eq!(v["reply"], "Hello · automated reply");
    let (_, out, _) = helpdesk(&["rules", "test", "--rules", rules, "short"]);
    assert!(
        out.contains("reply:   Hello\n") && out.contains("language: en (confidence"),
        "no --config, no signature: {out}"
    );
}

/// `rules test -` reads the languages when only the `[default]`'s ack is
/// a language table, as the bot does: an unmatched French line gets the
/// French ack, with its language.
#[test]
fn bulk_reads_languages_for_a_default_ack_table() {
    let dir = tempfile::tempdir().unwrap();
    let rules = crate::common::rules_dir(
        dir.path(),
        "[[rule]]\nid = \"hours\"\nkeywords = [\"hours\"]\nreply = \"8-21\"\n\n[default]\nescalate = { queue = \"general\", ack = { en = \"We will write to you.\", fr = \"Nous vous écrivons.\" } }\n",
    );
    let line = concat!(
        "{\"text\": \"Bonjour, ma commande n'est jamais arrivée et personne ne répond\"}\n",
        // Too short to tell; the platform's tag decides, as in the bot.
        "{\"text\": \"refund\", \"lang\": \"fr-CA\"}\n",
    );
    let (out, code) = crate::rules_bulk::bulk_with(&rules, line.as_bytes().to_vec(), &["--json"]);
    assert_eq!(code, 0);
    for line in String::from_utf8(out).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["language"], "fr", "{v}");
        assert_eq!(v["reply_language"], "fr", "{v}");
        assert_eq!(v["reply"], "Nous vous écrivons.");
    }
}

#[test]
fn opens_is_only_for_ack_closed_and_counted_at_its_longest() {
    let a = r#"[[rule]]
id = "one"
keywords = ["refund"]
reply = "back {opens}"

[[rule]]
id = "two"
keywords = ["broken"]
escalate = { queue = "repairs", ack = "back {opens}" }

[[rule]]
id = "three"
keywords = ["cancel"]
escalate = { queue = "retention", ack = "ok", ack_closed = { en = "{name} {name} {name} {name} we open {opens} ({ticket})" } }
"#;
    let out = errors(&[("a.toml", a)]);
    let expect = [
        "a.toml:4:15: error: in `reply`: `{opens}` can only be used in an escalation's `ack_closed`",
        "a.toml:9:45: error: in `ack`: `{opens}` can only be used in an escalation's `ack_closed`",
        "error: `ack_closed.en` is too long for x",
        "{opens} as the longest opening time in any language",
    ];
    let missing: Vec<_> = expect.iter().filter(|e| !out.contains(*e)).collect();
    assert!(missing.is_empty(), "missing {missing:?} in:\n{out}");
}

/// `rules test --config --at`: the closed-hours ack with the next opening
/// on the brand's wall clock, across a daylight-saving change and a
/// holiday, in the customer's language; the usual ack while open.
#[test]
fn rules_test_tries_a_message_at_a_given_moment() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("a.toml"),
        r#"[[rule]]
id = "cancel"
keywords = ["cancel", "résilier"]
escalate = { queue = "retention", ack = "On it ({ticket}).", ack_closed = { fr = "Fermé : réponse {opens} ({ticket}).", en = "Closed: an answer {opens} ({ticket})." } }
"#,
    )
    .unwrap();
    let config = dir.path().join("helpdesk.toml");
    std::fs::write(
        &config,
        r#"[hours]
timezone = "Europe/Paris"
mon = "09:00-18:00"
tue = "09:00-18:00"
fri = "09:00-12:30"
holidays = ["2026-04-06"]
"#,
    )
    .unwrap();
    let reply = |text: &str, at: &str| {
        let (code, out, err) = helpdesk(&[
            "rules",
            "test",
            "--rules",
            rules.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--at",
            at,
            "--json",
            text,
        ]);
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["reply"].as_str().unwrap().to_owned()
    };
    let fr = "Je voudrais résilier mon abonnement, merci de me rappeler";
    let en = "I would like to cancel my subscription, please call me back";
    // Saturday 28 March 2026; Paris moves to summer time on the 29th.
    assert_eq!(
        reply(fr, "2026-03-28T10:00:00Z"),
        "Fermé : réponse lundi 30 mars à 09:00 (CEST) (T-1000)."
    );
    // Friday 3 April after 12:30; Monday the 6th is a holiday.
    assert_eq!(
        reply(en, "2026-04-03T11:00:00Z"),
        "Closed: an answer Tuesday 7 April at 09:00 (CEST) (T-1000)."
    );
    // The same instant seen from New York is still Friday morning there,
    // but the team's hours are Paris's.
    assert_eq!(
        reply(en, "2026-04-03T06:00:00-05:00"),
        "Closed: an answer Tuesday 7 April at 09:00 (CEST) (T-1000)."
    );
    // Monday 30 March at 07:00 UTC is 09:00 in Paris: open.
    assert_eq!(reply(en, "2026-03-30T07:00:00Z"), "On it (T-1000).");
    let (code, out, _) = helpdesk(&[
        "rules",
        "test",
        "--rules",
        rules.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--at",
        "2026-03-28T10:00:00Z",
        en,
    ]);
    assert_eq!(code, 0);
    assert!(
        out.contains(
            "closed:  the team is away until Monday 30 March at 09:00 (CEST): ack_closed applies"
        ),
        "{out}"
    );
}

#[test]
fn signals_are_checked_like_keywords_and_named_once() {
    let a = r#"[[rule]]
id = "refund"
keywords = ["refund"]
reply = "ok"

[signals]
churn = ["switching to", "je pars chez"]
repeated = ["again"]
Legal = ["lawyer"]
empty = []
bad = ["@lumio"]
"#;
    let b = "[signals]\nother = [\"x\"]\n";
    let out = errors(&[("a.toml", a), ("b.toml", b)]);
    let expect = [
        "a.toml:8:1: error: `repeated` is the bot's own signal for repeated contact",
        "a.toml:9:1: error: signal name `Legal` must be lower-case letters, digits, `-` or `_`",
        "a.toml:10:9: error: signal `empty` is an empty list",
        "the signals.bad entry `@lumio` is an @handle or a URL",
        "b.toml:1:1: error: more than one [signals]",
        "the first [signals] is here",
    ];
    let missing: Vec<_> = expect.iter().filter(|e| !out.contains(*e)).collect();
    assert!(missing.is_empty(), "missing {missing:?} in:\n{out}");
}

/// A signal in French or English: same matching as keywords (accents,
/// case, prefixes), its span in the original text, the ticket one step
/// more urgent, and a message no rule matches escalated because of it.
#[test]
fn signals_raise_the_priority_and_escalate_what_no_rule_matches() {
    let files = vec![SourceFile {
        name: "a.toml".into(),
        text: r#"[[rule]]
id = "refund"
keywords = ["rembours*", "refund"]
escalate = { queue = "billing", priority = "high" }

[[rule]]
id = "hours"
keywords = ["horaires", "opening hours"]
reply = "9-5"

[signals]
churn = ["je pars chez", "changer d'opérateur", "switching to", "résili*"]
legal = ["avocat", "lawyer"]
"#
        .into(),
    }];
    let set = RuleSet::load_sources(files, &LoadOptions::default()).unwrap();
    let cases: [(&str, &[&str], &str); 5] = [
        (
            "Remboursez-moi ou JE PARS CHEZ Free",
            &["churn"],
            "escalate urgent billing",
        ),
        (
            "refund now, my LAWYER is ready",
            &["legal"],
            "escalate urgent billing",
        ),
        ("Vos horaires ? sinon je change d’opérateur", &[], "reply"),
        (
            "Je veux changer d’opérateur, je résilie",
            &["churn"],
            "escalate high signals",
        ),
        (
            "Switching to a competitor, call my lawyer",
            &["churn", "legal"],
            "escalate high signals",
        ),
    ];
    for (text, want_signals, want) in cases {
        let d = set.route(text, helpdesk::domain::Channel::Mention);
        let names: Vec<&str> = d.signals.iter().map(|h| h.signal.name.as_str()).collect();
        assert_eq!(names, want_signals, "{text}");
        for h in &d.signals {
            assert!(!text[h.span.0..h.span.1].is_empty(), "{text}");
        }
        let got = match d.outcome() {
            helpdesk::rules::Outcome::Escalate(e, _) => {
                format!("escalate {} {}", d.priority_of(e), e.queue)
            }
            helpdesk::rules::Outcome::Reply(..) => "reply".into(),
            o => o.name().into(),
        };
        assert_eq!(got, want, "{text}");
    }
    // The typographic apostrophe is folded as a keyword's would be.
    let d = set.route("je vais changer d’opérateur", helpdesk::domain::Channel::Dm);
    assert_eq!(d.signals.len(), 1);
    assert_eq!(
        &"je vais changer d’opérateur"[d.signals[0].span.0..d.signals[0].span.1],
        "changer d’opérateur"
    );
}

/// `incident_reply` and `incident_resolved` are checked as replies: their
/// placeholders, their length, their language tables; an `ignore` rule may
/// have neither.
#[test]
fn incident_texts_are_checked_as_replies() {
    let a = r#"[[rule]]
id = "outage"
keywords = ["panne"]
reply = "ok"
incident_reply = { fr = "{author} incident en cours ({ticket})", french = "non" }
incident_resolved = "{author} fixed {opens}"

[[rule]]
id = "noise"
keywords = ["lol"]
ignore = true
incident_reply = "hello"
"#;
    let out = errors(&[("a.toml", a)]);
    let expect = [
        "in `incident_reply.fr`: `{ticket}`",
        "in `incident_reply`: ",
        "in `incident_resolved`: `{opens}` can only be used in an escalation's `ack_closed`",
        "`incident_reply` on a rule that ignores its messages",
    ];
    let missing: Vec<_> = expect.iter().filter(|e| !out.contains(*e)).collect();
    assert!(missing.is_empty(), "missing {missing:?} in:\n{out}");
}
