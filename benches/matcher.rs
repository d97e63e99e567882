//! Matching throughput and load cost at 10, 100, 1 000 and 10 000 rules.
//!
//! Baseline, measured in the same run: one compiled `regex::Regex` per rule,
//! tried in turn, the way Errbot and Hubot handlers route a message.
//! Rules and messages are generated from a fixed seed, so runs compare.
//!
//! Run: `cargo bench --bench matcher`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use helpdesk::domain::Channel;

#[path = "common/generate.rs"]
mod generate;
use generate::{MESSAGES, SIZES, keywords, load, messages};

fn regex_baseline(kws: &[String]) -> Vec<regex::Regex> {
    kws.iter()
        .map(|k| {
            let body = regex::escape(k.trim_end_matches('*'));
            let tail = if k.ends_with('*') { r"\w*" } else { r"\b" };
            regex::Regex::new(&format!(r"(?i)\b{body}{tail}")).unwrap()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("route_280_char_messages");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    g.throughput(Throughput::Elements(MESSAGES as u64));
    for n in SIZES {
        let kws = keywords(n);
        let msgs = messages(&kws);
        let set = load(&kws);
        g.bench_with_input(BenchmarkId::new("helpdesk", n), &msgs, |b, msgs| {
            b.iter(|| {
                for m in msgs {
                    black_box(set.route(m, Channel::Mention).rule_id());
                }
            })
        });
        if n <= 1_000 {
            let regexes = regex_baseline(&kws);
            g.bench_with_input(BenchmarkId::new("regex_per_rule", n), &msgs, |b, msgs| {
                b.iter(|| {
                    for m in msgs {
                        // Every handler is tried; the best priority wins.
                        let best = regexes
                            .iter()
                            .enumerate()
                            .filter(|(_, r)| r.is_match(m))
                            .max_by_key(|(i, _)| (i % 7, std::cmp::Reverse(*i)));
                        black_box(best);
                    }
                })
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("load_and_compile");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    for n in [1_000, 10_000] {
        let kws = keywords(n);
        g.bench_with_input(BenchmarkId::new("rules", n), &kws, |b, kws| {
            b.iter(|| black_box(load(kws)))
        });
    }
    g.finish();

    let kws = keywords(10_000);
    let t = Instant::now();
    let set = load(&kws);
    println!(
        "load 10000 rules: {:?}, automaton {} KiB, {} distinct patterns",
        t.elapsed(),
        set.automaton_bytes() / 1024,
        set.stats().patterns
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
