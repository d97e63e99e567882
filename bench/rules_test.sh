#!/bin/sh
# The bulk routing benchmark (see BENCHMARKS.md): the whole
# `helpdesk rules test --json -` process against a Python loop around
# pyahocorasick doing the same routing, in the same run, alternating.
# Usage: bench/rules_test.sh [MESSAGES] [ROUNDS]; HELPDESK_BASELINE=BINARY adds
# a helpdesk built from another commit to the same rounds (its output must
# be identical).
set -eu
cd "$(dirname "$0")/.."
messages="${1:-200000}"
rounds="${2:-3}"
target="${CARGO_TARGET_DIR:-target}"
work="$target/bench-rules-test"
mkdir -p "$work"
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(rustc --version), $(python3 --version)"
cargo build --release --quiet --bin helpdesk --example corpus
venv="$target/bench-venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet pyahocorasick
fi
echo "pyahocorasick $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("pyahocorasick"))')"
corpus="$target/release/examples/corpus"
for n in 10 1000 10000; do
    "$corpus" rules "$n" "$work/rules-$n"
    for variant in ascii accented; do
        "$corpus" messages "$messages" "$n" "$variant" > "$work/corpus-$n-$variant.jsonl"
    done
done
echo "messages: $messages a corpus, rounds: $rounds"
"$venv/bin/python" bench/rules_test_driver.py "$target/release/helpdesk" "$venv/bin/python" "$work" "$rounds" "$messages" "${HELPDESK_BASELINE:-}"
