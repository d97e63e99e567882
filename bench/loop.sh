#!/bin/sh
# The bot loop benchmark (see BENCHMARKS.md). Usage: bench/loop.sh [MESSAGES] [BATCH]
set -eu
cd "$(dirname "$0")/.."
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(rustc --version)"
cargo bench --bench loop -- --messages "${1:-20000}" --batch "${2:-100}"
