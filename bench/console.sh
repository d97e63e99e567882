#!/bin/sh
# The console's render benchmark (see BENCHMARKS.md). Usage: bench/console.sh [TICKETS] [REQUESTS]
# PostgreSQL is measured beside SQLite when HELPDESK_BENCH_POSTGRES_URL is
# set (a server URL with a database to connect to; each run creates and
# drops databases of its own), e.g. postgres://postgres@127.0.0.1:5432/test
set -eu
cd "$(dirname "$0")/.."
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(rustc --version)"
cargo bench --bench console -- --tickets "${1:-100000}" --requests "${2:-200}" --postgres "${HELPDESK_BENCH_POSTGRES_URL:-}"
