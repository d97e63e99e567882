#!/bin/sh
# The bot loop benchmark (see BENCHMARKS.md). Usage: bench/loop.sh [MESSAGES] [BATCH]
# PostgreSQL is measured beside SQLite when HELPDESK_BENCH_POSTGRES_URL is
# set (a server URL with a database to connect to; each run creates and
# drops a database of its own), e.g. postgres://postgres@127.0.0.1:5432/test
set -eu
cd "$(dirname "$0")/.."
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(rustc --version)"
cargo bench --bench loop -- --messages "${1:-20000}" --batch "${2:-100}" --postgres "${HELPDESK_BENCH_POSTGRES_URL:-}"
