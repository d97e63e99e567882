//! Rules and messages for the routing benchmarks, generated from fixed
//! seeds so that runs compare.

use helpdesk::rules::{LoadOptions, RuleSet, SourceFile};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The rule counts every benchmark measures.
pub const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];
/// Messages per round.
pub const MESSAGES: usize = 1_000;

fn word(rng: &mut StdRng) -> String {
    let len = rng.random_range(4..10);
    (0..len)
        .map(|_| rng.random_range(b'a'..=b'z') as char)
        .collect()
}

/// `n` rules of one keyword each (one in ten a two-word phrase, one in ten a prefix).
pub fn keywords(n: usize) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(42);
    (0..n)
        .map(|i| match i % 10 {
            0 => format!("{} {}", word(&mut rng), word(&mut rng)),
            1 => format!("{}*", word(&mut rng)),
            _ => word(&mut rng),
        })
        .collect()
}

fn rules_toml(kws: &[String]) -> String {
    let mut s = String::with_capacity(kws.len() * 120);
    for (i, k) in kws.iter().enumerate() {
        s.push_str(&format!(
            "[[rule]]\nid = \"r{i}\"\nkeywords = [\"{k}\"]\npriority = {}\nreply = \"Hello {{author}}, see https://help.example/{i}\"\n\n",
            i % 7
        ));
    }
    s
}

/// 280-character messages of random words, one in four containing a keyword.
pub fn messages(kws: &[String]) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(7);
    (0..MESSAGES)
        .map(|i| {
            let mut m = String::from("@acme ");
            if i % 4 == 0 {
                let k = &kws[rng.random_range(0..kws.len())];
                m.push_str(k.trim_end_matches('*'));
                m.push(' ');
            }
            while m.len() < 280 {
                m.push_str(&word(&mut rng));
                m.push(' ');
            }
            m.truncate(280);
            m
        })
        .collect()
}

/// The rule set for `kws`, loaded as `rules check` would, examples aside.
pub fn load(kws: &[String]) -> RuleSet {
    let opts = LoadOptions {
        check_examples: false,
        ..LoadOptions::default()
    };
    RuleSet::load_sources(
        vec![SourceFile {
            name: "bench.toml".into(),
            text: rules_toml(kws),
        }],
        &opts,
    )
    .expect("generated rules load")
}

/// The same messages with three accented letters each (`é` for `e`), as
/// French customers write: they take the general, non-ASCII path.
#[allow(dead_code)] // route_quick only
pub fn accented(msgs: &[String]) -> Vec<String> {
    msgs.iter().map(|m| m.replacen('e', "é", 3)).collect()
}
