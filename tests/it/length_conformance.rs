//! The two reply-length counters against third-party conformance suites,
//! read straight from `../shared/fixtures/` (never copied, never edited).

use std::path::PathBuf;

use helpdesk::domain::text::mastodon_length;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures")
}

#[derive(serde::Deserialize)]
struct Expected {
    #[serde(rename = "weightedLength")]
    weighted_length: i32,
    valid: bool,
    permillage: i32,
    #[serde(rename = "displayRangeStart")]
    display_start: i32,
    #[serde(rename = "displayRangeEnd")]
    display_end: i32,
    #[serde(rename = "validRangeStart")]
    valid_start: i32,
    #[serde(rename = "validRangeEnd")]
    valid_end: i32,
}

#[derive(serde::Deserialize)]
struct Case {
    description: String,
    text: String,
    expected: Expected,
}

#[derive(serde::Deserialize)]
struct Suite {
    tests: std::collections::HashMap<String, serde_yaml_ng::Value>,
}

fn section(name: &str) -> Vec<Case> {
    let path = fixtures().join("twitter-text/conformance/validate.yml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let suite: Suite = serde_yaml_ng::from_str(&text).expect("validate.yml parses");
    serde_yaml_ng::from_value(suite.tests[name].clone()).expect("section has the weighted shape")
}

fn config(file: &str) -> twitter_text_config::Configuration {
    let path = fixtures().join("twitter-text/config").join(file);
    twitter_text_config::Configuration::configuration_from_path(&path)
}

fn run_x_section(name: &str, config: &twitter_text_config::Configuration) -> usize {
    let cases = section(name);
    assert!(!cases.is_empty(), "section {name} is empty");
    let mut failures = Vec::new();
    for c in &cases {
        let r = twitter_text::parse(&c.text, config, true);
        let got = (
            r.weighted_length,
            r.is_valid,
            r.permillage,
            r.display_text_range.start(),
            r.display_text_range.end(),
            r.valid_text_range.start(),
            r.valid_text_range.end(),
        );
        let e = &c.expected;
        let want = (
            e.weighted_length,
            e.valid,
            e.permillage,
            e.display_start,
            e.display_end,
            e.valid_start,
            e.valid_end,
        );
        if got != want {
            failures.push(format!("{}: got {got:?}, want {want:?}", c.description));
        }
    }
    assert!(failures.is_empty(), "{name}:\n{}", failures.join("\n"));
    cases.len()
}

#[test]
fn x_weighted_length_v2() {
    assert_eq!(
        run_x_section("WeightedTweetsCounterTest", &config("v2.json")),
        20
    );
}

#[test]
fn x_weighted_length_v3_discounted_emoji() {
    assert_eq!(
        run_x_section(
            "WeightedTweetsWithDiscountedEmojiCounterTest",
            &config("v3.json")
        ),
        22
    );
}

#[test]
fn x_weighted_length_directional_markers_default_config() {
    assert_eq!(
        run_x_section(
            "UnicodeDirectionalMarkerCounterTest",
            twitter_text_config::default()
        ),
        2
    );
}

#[test]
fn the_bots_counter_is_the_v3_default() {
    // What the rules loader uses must agree with the v3 suite.
    for c in section("WeightedTweetsWithDiscountedEmojiCounterTest") {
        assert_eq!(
            helpdesk::domain::text::x_weighted_length(&c.text) as i32,
            c.expected.weighted_length,
            "{}",
            c.description
        );
    }
}

#[derive(serde::Deserialize)]
struct MastodonCases {
    cases: Vec<MastodonCase>,
}

#[derive(serde::Deserialize)]
struct MastodonCase {
    text: String,
    expected_length: usize,
}

#[test]
fn mastodon_status_length() {
    let path = fixtures().join("mastodon/status-length/status_length_cases.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let suite: MastodonCases = serde_json::from_str(&text).expect("cases parse");
    assert!(suite.cases.len() >= 30);
    let failures: Vec<String> = suite
        .cases
        .iter()
        .filter(|c| mastodon_length(&c.text) != c.expected_length)
        .map(|c| {
            format!(
                "{:?}: got {}, want {}",
                c.text,
                mastodon_length(&c.text),
                c.expected_length
            )
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
