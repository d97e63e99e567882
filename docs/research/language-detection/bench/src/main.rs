//! langbench: run one detector configuration over a `lang<TAB>text` file.
//! usage: langbench <config> <input.tsv> <predictions.tsv|-> [timing_runs]
//! configs: BASE[@MIN_RELATIVE_DISTANCE][+clean]
//!   BASE: whatlang3 | whatlang6 | whatlang-all | lingua3 | lingua6 | lingua3-low | lingua6-low
//!   @D (lingua only): LanguageDetectorBuilder::with_minimum_relative_distance(D)
//!   +clean: drop @mentions, #hashtags and URLs before detection (see `clean`)
//! Prints one prediction line per message to <predictions.tsv>:
//!   idx gold pred conf1 pred2 conf2 reliable
//! and to stderr a summary with load time and best-of-N µs/message.
use std::io::Write;
use std::time::Instant;

use lingua::{Language, LanguageDetector, LanguageDetectorBuilder};
use whatlang::{Detector, Lang};

struct Pred {
    lang: String,
    conf: f64,
    lang2: String,
    conf2: f64,
    reliable: bool,
}

fn wl_code(l: Lang) -> String {
    match l {
        Lang::Eng => "en".into(),
        Lang::Fra => "fr".into(),
        Lang::Spa => "es".into(),
        Lang::Deu => "de".into(),
        Lang::Ita => "it".into(),
        Lang::Por => "pt".into(),
        other => other.code().to_string(),
    }
}

fn li_code(l: Language) -> String {
    l.iso_code_639_1().to_string()
}

enum Det {
    W(Detector),
    L(LanguageDetector),
}

impl Det {
    fn detect_only(&self, text: &str) -> Option<String> {
        match self {
            Det::W(d) => d.detect_lang(text).map(wl_code),
            Det::L(d) => d.detect_language_of(text).map(li_code),
        }
    }
    fn detect_full(&self, text: &str) -> Pred {
        match self {
            Det::W(d) => match d.detect(text) {
                Some(info) => Pred {
                    lang: wl_code(info.lang()),
                    conf: info.confidence(),
                    lang2: "-".into(),
                    conf2: 0.0,
                    reliable: info.is_reliable(),
                },
                None => Pred { lang: "none".into(), conf: 0.0, lang2: "-".into(), conf2: 0.0, reliable: false },
            },
            Det::L(d) => {
                let vals = d.compute_language_confidence_values(text);
                let chosen = d.detect_language_of(text);
                let (l1, c1) = vals.first().map(|(l, c)| (li_code(*l), *c)).unwrap_or(("none".into(), 0.0));
                let (l2, c2) = vals.get(1).map(|(l, c)| (li_code(*l), *c)).unwrap_or(("-".into(), 0.0));
                Pred {
                    lang: chosen.map(li_code).unwrap_or_else(|| "none".into()),
                    conf: c1,
                    lang2: if chosen.is_some() { l2 } else { format!("{l1}|{l2}") },
                    conf2: c2,
                    reliable: chosen.is_some(),
                }
            }
        }
    }
}

/// Social-post clean-up before detection: drop whitespace-separated tokens that are
/// @mentions, #hashtags or URLs. Emoji are left alone (both detectors ignore non-letters).
fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for tok in text.split_whitespace() {
        let t = tok.trim_start_matches(|c: char| "([\"'¡¿".contains(c));
        let skip = t.starts_with('@')
            || t.starts_with('#')
            || t.starts_with("http://")
            || t.starts_with("https://")
            || t.starts_with("www.");
        if !skip {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(tok);
        }
    }
    out
}

fn build(config: &str) -> Det {
    let (config, mrd) = match config.split_once('@') {
        Some((c, d)) => (c, d.parse::<f64>().expect("minimum relative distance")),
        None => (config, 0.0),
    };
    let wl3 = vec![Lang::Eng, Lang::Fra, Lang::Spa];
    let wl6 = vec![Lang::Eng, Lang::Fra, Lang::Spa, Lang::Deu, Lang::Ita, Lang::Por];
    let li3 = [Language::English, Language::French, Language::Spanish];
    let li6 = [
        Language::English,
        Language::French,
        Language::Spanish,
        Language::German,
        Language::Italian,
        Language::Portuguese,
    ];
    match config {
        "whatlang3" => Det::W(Detector::with_allowlist(wl3)),
        "whatlang6" => Det::W(Detector::with_allowlist(wl6)),
        "whatlang-all" => Det::W(Detector::new()),
        "lingua3" => Det::L(LanguageDetectorBuilder::from_languages(&li3).with_minimum_relative_distance(mrd).with_preloaded_language_models().build()),
        "lingua6" => Det::L(LanguageDetectorBuilder::from_languages(&li6).with_minimum_relative_distance(mrd).with_preloaded_language_models().build()),
        "lingua3-low" => Det::L(
            LanguageDetectorBuilder::from_languages(&li3)
                .with_preloaded_language_models()
                .with_low_accuracy_mode()
                .build(),
        ),
        "lingua6-low" => Det::L(
            LanguageDetectorBuilder::from_languages(&li6)
                .with_preloaded_language_models()
                .with_low_accuracy_mode()
                .build(),
        ),
        other => {
            eprintln!("unknown config {other}");
            std::process::exit(2)
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: langbench <config> <input.tsv> <predictions.tsv|-> [timing_runs]");
        std::process::exit(2);
    }
    let (config, do_clean) = match args[1].strip_suffix("+clean") {
        Some(c) => (c, true),
        None => (args[1].as_str(), false),
    };
    let runs: usize = args.get(4).map(|s| s.parse().unwrap()).unwrap_or(3);
    let data = std::fs::read_to_string(&args[2]).expect("read input");
    let rows: Vec<(&str, &str)> = data
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split_once('\t').expect("lang<TAB>text"))
        .collect();
    let cleaned: Vec<String> = rows.iter().map(|(_, t)| clean(t)).collect();

    let t0 = Instant::now();
    let det = build(config);
    let load = t0.elapsed();

    // Timing: the plain detection call a production caller would make, whole set, best of N.
    let mut best = f64::INFINITY;
    let mut sink = 0usize;
    for _ in 0..runs {
        let t = Instant::now();
        for (_, text) in &rows {
            let c;
            let text: &str = if do_clean {
                c = clean(text);
                &c
            } else {
                text
            };
            if let Some(l) = det.detect_only(text) {
                sink += l.len();
            }
        }
        let us = t.elapsed().as_secs_f64() * 1e6 / rows.len() as f64;
        best = best.min(us);
    }

    if args[3] != "-" {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&args[3]).expect("create"));
        writeln!(out, "idx\tgold\tpred\tconf1\tpred2\tconf2\treliable").unwrap();
        for (i, (gold, text)) in rows.iter().enumerate() {
            let p = det.detect_full(if do_clean { &cleaned[i] } else { text });
            writeln!(out, "{i}\t{gold}\t{}\t{:.4}\t{}\t{:.4}\t{}", p.lang, p.conf, p.lang2, p.conf2, p.reliable).unwrap();
        }
    }
    eprintln!(
        "config={} n={} load_ms={:.1} best_us_per_msg={:.2} runs={runs} sink={sink}",
        args[1],
        rows.len(),
        load.as_secs_f64() * 1e3,
        best
    );
}

/// Compile-time check quoted in REPORT.md: one detector can be shared across tokio tasks.
#[allow(dead_code)]
fn _detectors_are_send_sync() {
    fn f<T: Send + Sync>() {}
    f::<LanguageDetector>();
    f::<Detector>();
}
