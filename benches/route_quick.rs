//! Routing cost per message: best and median of many short rounds.
//!
//! This machine's speed drifts by up to 2x from one minute to the next (a
//! shared virtual machine), which moves criterion's medians between runs;
//! the best of many short rounds is the stable figure. Each rule set runs
//! its rounds back to back (warm caches, as in a bot, which has one rule
//! set), and the whole sequence twice, so that a slow minute does not fall
//! on one rule count only.
//!
//! Run: `cargo bench --bench route_quick [-- RULE_COUNT...]`
//!
//! With `--mixed`, the mixed French and English corpus instead
//! (`generate::mixed`, 200 000 messages): its accented and plain ASCII
//! variants alternate round by round, and the ratio of their costs is
//! printed, accented ÷ ASCII. With `--mixed --normalize`, the same for
//! the normalisation alone (`normalize_fast_into`), the part of routing
//! the accents make dearer; the rest is the rule count's.
//!
//! With `--by-class`, where the mixed corpus's accented variant's extra cost
//! comes from: the normalisation alone over copies of it in which every
//! non-ASCII character but one class is replaced by as many `x` bytes (so
//! that the length stays), each class's cost per character of it.
//!
//! For counting instructions and branch misses under valgrind, which runs
//! some fifty times slower: `HELPDESK_BENCH_ROUNDS=1` runs one round of
//! each, and `HELPDESK_BENCH_ONLY=ascii` (or `accented`) one variant only
//! (the other is reported as 0 ns).

use std::hint::black_box;
use std::time::Instant;

use helpdesk::domain::Channel;
use helpdesk::rules::normalize::{Normalized, normalize_fast_into};

#[path = "common/generate.rs"]
mod generate;
use generate::{SIZES, accented, keywords, load, messages, mixed};

const ROUNDS: usize = 40;

/// One round over `msgs`: nanoseconds per message.
fn round(set: &helpdesk::rules::RuleSet, msgs: &[String]) -> f64 {
    let t = Instant::now();
    for m in msgs {
        black_box(set.route(m, Channel::Mention).rule_id());
    }
    t.elapsed().as_nanos() as f64 / msgs.len() as f64
}

/// One round of normalisation alone over `msgs`: nanoseconds per message.
fn normalize_round(msgs: &[String]) -> f64 {
    let mut out = Normalized::default();
    let t = Instant::now();
    for m in msgs {
        normalize_fast_into(m, &mut out);
        black_box(out.text.len());
    }
    t.elapsed().as_nanos() as f64 / msgs.len() as f64
}

/// Rounds of each variant over the mixed corpus.
const MIXED_ROUNDS: usize = 10;

/// The mixed corpus at each rule count: accented and ASCII rounds in turn;
/// with `normalize_only`, rounds of [`normalize_round`].
fn run_mixed(sizes: &[usize], normalize_only: bool) {
    let measure = |set: &helpdesk::rules::RuleSet, msgs: &[String]| {
        if normalize_only {
            normalize_round(msgs)
        } else {
            round(set, msgs)
        }
    };
    println!(
        "| rules | ASCII best | ASCII median | accented best | accented median | accented ÷ ASCII (best, median) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for &n in sizes {
        let kws = keywords(n);
        let set = load(&kws);
        let (french, ascii) = mixed(&kws);
        let (mut a, mut f) = (Vec::new(), Vec::new());
        let rounds = std::env::var("HELPDESK_BENCH_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .filter(|r| *r > 0)
            .unwrap_or(MIXED_ROUNDS);
        let only = std::env::var("HELPDESK_BENCH_ONLY").unwrap_or_default();
        for _ in 0..rounds {
            a.push(if only != "accented" {
                measure(&set, &ascii)
            } else {
                0.0
            });
            f.push(if only != "ascii" {
                measure(&set, &french)
            } else {
                0.0
            });
        }
        a.sort_by(f64::total_cmp);
        f.sort_by(f64::total_cmp);
        let m = rounds / 2;
        let rate = |ns: f64| format!("{:.0} ns ({:.2} M/s)", ns, 1e3 / ns);
        println!(
            "| {n} | {} | {} | {} | {} | {:.2}, {:.2} |",
            rate(a[0]),
            rate(a[m]),
            rate(f[0]),
            rate(f[m]),
            f[0] / a[0],
            f[m] / a[m]
        );
    }
}

/// A class of characters: its name, and whether a character belongs.
type Class = (&'static str, fn(char) -> bool);

/// The classes of non-ASCII characters `--by-class` tells apart.
const CLASSES: [Class; 4] = [
    (
        "Latin-1 and Latin Extended-A (é, ç, «, no-break space)",
        |c| ('\u{80}'..='\u{17F}').contains(&c),
    ),
    (
        "General Punctuation (’, …, narrow no-break space)",
        |c| ('\u{2000}'..='\u{206F}').contains(&c),
    ),
    ("other characters of three bytes (✅, ❤, U+FE0F)", |c| {
        c.len_utf8() == 3 && !('\u{2000}'..='\u{206F}').contains(&c)
    }),
    ("characters of four bytes (emoji, flags)", |c| {
        c.len_utf8() == 4
    }),
];

/// `text` with every non-ASCII character for which `keep` is false
/// replaced by as many `x` bytes.
fn keep_only(text: &str, keep: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() || keep(c) {
            out.push(c);
        } else {
            out.extend(std::iter::repeat_n('x', c.len_utf8()));
        }
    }
    out
}

/// The normalisation's cost per message of the accented corpus, its ASCII
/// variant, the accented one with every non-ASCII character made `x`
/// bytes, and with one class kept at a time; best of the rounds, the
/// variants in turn within each round.
fn run_by_class() {
    let (french, ascii) = mixed(&keywords(10));
    let mut variants: Vec<(String, Vec<String>)> = vec![
        ("ASCII variant".into(), ascii),
        ("accented variant".into(), french.clone()),
        (
            "accented, every non-ASCII character as `x` bytes".into(),
            french.iter().map(|t| keep_only(t, |_| false)).collect(),
        ),
    ];
    for (name, is) in CLASSES {
        variants.push((
            format!("accented, only {name}"),
            french.iter().map(|t| keep_only(t, is)).collect(),
        ));
    }
    let mut best = vec![f64::INFINITY; variants.len()];
    for _ in 0..MIXED_ROUNDS {
        for (k, (_, msgs)) in variants.iter().enumerate() {
            best[k] = best[k].min(normalize_round(msgs));
        }
    }
    let per_message = |is: fn(char) -> bool| {
        french
            .iter()
            .map(|t| t.chars().filter(|c| is(*c)).count())
            .sum::<usize>() as f64
            / french.len() as f64
    };
    println!("| variant | ns a message | characters of the class a message | ns a character |");
    println!("|---|---:|---:|---:|");
    for (k, (name, _)) in variants.iter().enumerate() {
        match k.checked_sub(3) {
            Some(c) if per_message(CLASSES[c].1) > 0.0 => {
                let count = per_message(CLASSES[c].1);
                println!(
                    "| {name} | {:.0} | {count:.2} | {:.1} |",
                    best[k],
                    (best[k] - best[2]) / count
                );
            }
            _ => println!("| {name} | {:.0} | | |", best[k]),
        }
    }
}

fn main() {
    if std::env::args().any(|a| a == "--by-class") {
        run_by_class();
        return;
    }
    // Rule counts from the command line (`-- 10000`), else all of them.
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        SIZES.to_vec()
    } else {
        sizes
    };
    if std::env::args().any(|a| a == "--mixed") {
        run_mixed(&sizes, std::env::args().any(|a| a == "--normalize"));
        return;
    }
    let sets: Vec<_> = sizes
        .iter()
        .map(|&n| {
            let kws = keywords(n);
            let ascii = messages(&kws);
            let french = accented(&ascii);
            (n, load(&kws), ascii, french)
        })
        .collect();
    // ns per message, per (rule count, ASCII or accented), for every round.
    let mut times = vec![(Vec::new(), Vec::new()); sets.len()];
    for _pass in 0..2 {
        for (k, (_, set, ascii, french)) in sets.iter().enumerate() {
            let (a, f) = &mut times[k];
            for _ in 0..ROUNDS / 2 {
                a.push(round(set, ascii));
            }
            for _ in 0..ROUNDS / 2 {
                f.push(round(set, french));
            }
        }
    }
    println!("| rules | ASCII best | ASCII median | accented best | accented median |");
    println!("|---:|---:|---:|---:|---:|");
    for (k, (n, ..)) in sets.iter().enumerate() {
        let (a, f) = &mut times[k];
        a.sort_by(f64::total_cmp);
        f.sort_by(f64::total_cmp);
        let rate = |ns: f64| format!("{:.0} ns ({:.2} M/s)", ns, 1e3 / ns);
        println!(
            "| {n} | {} | {} | {} | {} |",
            rate(a[0]),
            rate(a[ROUNDS / 2]),
            rate(f[0]),
            rate(f[ROUNDS / 2])
        );
    }
}
