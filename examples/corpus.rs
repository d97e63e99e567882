//! The corpus of `bench/rules_test.sh`: generated rule sets and JSON lines
//! of French and English customer messages, from fixed seeds so that runs
//! and machines compare.
//!
//! `cargo run --release --example corpus -- rules N DIR` writes `N` rules to
//! `DIR/bench.toml` (one keyword each, one in ten a two-word phrase, one in
//! ten a `*` prefix, priorities 0 to 6, a reply with the author and a link,
//! as `benches/common/generate.rs` does) and the same keywords to
//! `DIR/keywords.tsv` (`id`, priority, keyword) for the Python peer.
//!
//! `cargo run --release --example corpus -- messages M N VARIANT` prints `M`
//! lines `{"id", "text", "channel"}` to stdout, one in four containing a
//! keyword of the `N`-rule set. `VARIANT` is `accented` (accents, `’`,
//! guillemets and emoji, as customers write) or `ascii` (the very same
//! messages folded to ASCII, emoji dropped).

use std::io::Write;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const FRENCH: &[&str] = &[
    "bonjour",
    "je",
    "n’arrive",
    "pas",
    "à",
    "me",
    "connecter",
    "depuis",
    "hier",
    "soir",
    "ma",
    "box",
    "ne",
    "marche",
    "plus",
    "j’ai",
    "été",
    "prélevé",
    "deux",
    "fois",
    "ce",
    "mois",
    "où",
    "est",
    "mon",
    "colis",
    "ça",
    "fait",
    "une",
    "semaine",
    "réseau",
    "très",
    "lent",
    "chez",
    "moi",
    "à",
    "Lyon",
    "numéro",
    "client",
    "merci",
    "d’avance",
    "s’il",
    "vous",
    "plaît",
    "déçu",
    "du",
    "service",
    "après-vente",
    "problème",
    "réglé",
    "rapidement",
    "fibre",
    "coupée",
    "équipe",
    "technique",
    "rendez-vous",
    "annulé",
    "forfait",
    "mobile",
    "à",
    "l’étranger",
    "facturé",
    "trop",
    "cher",
    "résilier",
    "abonnement",
    "reçu",
    "aucune",
    "réponse",
    "délai",
    "inadmissible",
    "«",
    "»",
    "François",
    "Hélène",
    "Noël",
    "garçon",
];

const ENGLISH: &[&str] = &[
    "hello", "my", "internet", "has", "been", "down", "since", "this", "morning", "please", "help",
    "I", "was", "charged", "twice", "where", "is", "order", "the", "app", "keeps", "crashing",
    "when", "open", "it", "can", "you", "check", "account", "thanks", "for", "quick", "reply",
    "still", "waiting", "on", "refund", "router", "not", "working", "after", "update", "what",
    "are", "your", "opening", "hours", "weekend", "it’s", "don’t", "can’t", "customer", "support",
    "never", "answered", "email",
];

const EMOJI: &[&str] = &[
    "🙏", "😡", "👍", "😂", "🇫🇷", "📦", "💸", "🤬", "❤️", "🔥", "😭", "✅",
];

/// What the ASCII variant writes for a character the accented one has
/// (`None`: dropped, as emoji are).
fn fold(c: char) -> Option<&'static str> {
    Some(match c {
        'à' | 'â' | 'ä' => "a",
        'é' | 'è' | 'ê' | 'ë' => "e",
        'î' | 'ï' => "i",
        'ô' | 'ö' => "o",
        'ù' | 'û' | 'ü' => "u",
        'ç' => "c",
        'É' => "E",
        'À' => "A",
        '’' => "'",
        '«' | '»' => "\"",
        c if c.is_ascii() => return None,
        _ => "",
    })
}

fn ascii(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match fold(c) {
            Some(s) => out.push_str(s),
            None => out.push(c),
        }
    }
    // An emoji dropped between two spaces leaves two: one is enough.
    let mut squeezed = String::with_capacity(out.len());
    for w in out.split(' ').filter(|w| !w.is_empty()) {
        if !squeezed.is_empty() {
            squeezed.push(' ');
        }
        squeezed.push_str(w);
    }
    squeezed
}

fn word(rng: &mut StdRng) -> String {
    let len = rng.random_range(4..10);
    (0..len)
        .map(|_| rng.random_range(b'a'..=b'z') as char)
        .collect()
}

/// `n` keywords, one in ten a two-word phrase and one in ten a prefix.
fn keywords(n: usize) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(42);
    (0..n)
        .map(|i| match i % 10 {
            0 => format!("{} {}", word(&mut rng), word(&mut rng)),
            1 => format!("{}*", word(&mut rng)),
            _ => word(&mut rng),
        })
        .collect()
}

fn write_rules(n: usize, dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut toml = String::with_capacity(n * 120);
    let mut tsv = String::with_capacity(n * 24);
    for (i, k) in keywords(n).iter().enumerate() {
        toml.push_str(&format!(
            "[[rule]]\nid = \"r{i}\"\nkeywords = [\"{k}\"]\npriority = {}\nreply = \"Hello {{author}}, see https://help.example/{i}\"\n\n",
            i % 7
        ));
        tsv.push_str(&format!("r{i}\t{}\t{k}\n", i % 7));
    }
    std::fs::write(dir.join("bench.toml"), toml)?;
    std::fs::write(dir.join("keywords.tsv"), tsv)
}

/// One message of 40 to 280 bytes: French, English or both, a keyword in
/// one in four, an emoji in most.
fn message(rng: &mut StdRng, kws: &[String], i: usize) -> String {
    let target = rng.random_range(40..280);
    let mut m = String::from("@acme ");
    let lang = rng.random_range(0..3);
    let hit = i.is_multiple_of(4).then(|| rng.random_range(0..target));
    let mut inserted = false;
    while m.len() < target {
        if !inserted && hit.is_some_and(|at| m.len() >= at) {
            m.push_str(kws[rng.random_range(0..kws.len())].trim_end_matches('*'));
            m.push(' ');
            inserted = true;
        }
        let list = match lang {
            0 => FRENCH,
            1 => ENGLISH,
            _ if rng.random_bool(0.5) => FRENCH,
            _ => ENGLISH,
        };
        if rng.random_ratio(1, 12) {
            m.push_str(EMOJI[rng.random_range(0..EMOJI.len())]);
        } else {
            m.push_str(list[rng.random_range(0..list.len())]);
        }
        m.push(' ');
    }
    if !inserted && hit.is_some() {
        m.push_str(kws[rng.random_range(0..kws.len())].trim_end_matches('*'));
    }
    m.trim_end().to_owned()
}

fn write_messages(count: usize, rules: usize, accented: bool) -> std::io::Result<()> {
    let kws = keywords(rules);
    let mut rng = StdRng::seed_from_u64(16);
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    for i in 0..count {
        let text = message(&mut rng, &kws, i);
        let text = if accented { text } else { ascii(&text) };
        let channel = match i % 10 {
            0 => "dm",
            1 => "search",
            _ => "mention",
        };
        let line = serde_json::json!({"id": (1_000_000 + i).to_string(), "text": text, "channel": channel});
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize| -> usize {
        args.get(i)
            .and_then(|a| a.parse().ok())
            .expect("usage: corpus rules N DIR | corpus messages M N ascii|accented")
    };
    match args.first().map(String::as_str) {
        Some("rules") => write_rules(num(1), std::path::Path::new(&args[2])),
        Some("messages") => write_messages(
            num(1),
            num(2),
            args.get(3).map(String::as_str) != Some("ascii"),
        ),
        _ => {
            eprintln!("usage: corpus rules N DIR | corpus messages M N ascii|accented");
            std::process::exit(2)
        }
    }
}
