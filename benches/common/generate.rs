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

/// Messages in the mixed French and English corpus.
#[allow(dead_code)] // route_quick only
pub const MIXED_MESSAGES: usize = 200_000;

/// Words of the mixed corpus, each as a French or English customer writes
/// it and as the same customer would type it on a plain ASCII keyboard.
#[allow(dead_code)] // route_quick only
const MIXED_WORDS: [(&str, &str); 48] = [
    ("bonjour", "bonjour"),
    ("problème", "probleme"),
    ("remboursé", "rembourse"),
    ("très", "tres"),
    ("déjà", "deja"),
    ("été", "ete"),
    ("reçu", "recu"),
    ("commandé", "commande"),
    ("à", "a"),
    ("où", "ou"),
    ("fenêtre", "fenetre"),
    ("prêt", "pret"),
    ("l’appli", "l'appli"),
    ("j’ai", "j'ai"),
    ("c’est", "c'est"),
    ("n’arrive", "n'arrive"),
    ("qu’il", "qu'il"),
    ("«\u{a0}urgent\u{a0}»", "\"urgent\""),
    ("merci\u{202f}!", "merci !"),
    ("pourquoi\u{202f}?", "pourquoi ?"),
    ("hier…", "hier..."),
    ("😡", ":("),
    ("🙏", ":)"),
    ("👍🏽", "+1"),
    ("❤️", "<3"),
    ("la", "la"),
    ("commande", "commande"),
    ("livraison", "livraison"),
    ("mot", "mot"),
    ("de", "de"),
    ("passe", "passe"),
    ("compte", "compte"),
    ("the", "the"),
    ("order", "order"),
    ("refund", "refund"),
    ("still", "still"),
    ("hasn’t", "hasn't"),
    ("arrived", "arrived"),
    ("please", "please"),
    ("help", "help"),
    ("my", "my"),
    ("account", "account"),
    ("“broken”", "\"broken\""),
    ("it’s", "it's"),
    ("and", "and"),
    ("since", "since"),
    ("Monday", "Monday"),
    ("now", "now"),
];

/// The mixed French and English corpus, [`MIXED_MESSAGES`] messages of
/// about 280 bytes from a fixed seed: accented letters, typographic
/// apostrophes and quotes, French spaces, ellipses and emoji as customers
/// write them, after an `@acme` handle, one in four with a keyword (its
/// first `e` written `é` in the accented variant). Returns the accented
/// messages and the same messages typed in plain ASCII, word for word.
#[allow(dead_code)] // route_quick only
pub fn mixed(kws: &[String]) -> (Vec<String>, Vec<String>) {
    let mut rng = StdRng::seed_from_u64(2026);
    (0..MIXED_MESSAGES)
        .map(|i| {
            let mut accented = String::from("@acme ");
            let mut ascii = accented.clone();
            if i % 4 == 0 {
                let k = kws[rng.random_range(0..kws.len())].trim_end_matches('*');
                accented.push_str(&k.replacen('e', "é", 1));
                ascii.push_str(k);
                accented.push(' ');
                ascii.push(' ');
            }
            while ascii.len() < 270 {
                let (a, plain) = MIXED_WORDS[rng.random_range(0..MIXED_WORDS.len())];
                accented.push_str(a);
                ascii.push_str(plain);
                accented.push(' ');
                ascii.push(' ');
            }
            (accented, ascii)
        })
        .unzip()
}
