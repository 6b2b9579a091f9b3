#!/usr/bin/env bash
# `make bench`: release builds (the bench, and the four functions as host binaries and as arm64
# Lambda zips), the bench venv (the seed's Python stack for the start-up comparison, matplotlib
# for the plot), the local stack (unless it is up), then the run; it writes docs/benchmarks.md
# and docs/bench-latency.png. Arguments go to the bench (`--turns N --users N --load-turns N`).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
"$ROOT/infra/local/install.sh" tools bench
cargo build --release -p bench -p auth -p chat -p user -p agent
say "arm64 Lambda zips (cargo-lambda with Zig)"
PATH="$TOOLS_VENV/bin:$PATH" cargo lambda build --release --arm64 --output-format zip \
  -p auth -p chat -p user -p agent >&2
services="$ROOT/infra/local/services.sh"
if grep -qv ' up$' <<<"$("$services" status)"; then
  trap '"$services" down' EXIT
  "$services" up
fi
set -a; source "$STATE_DIR/local.env"; set +a
BENCH_PYTHON="$BENCH_VENV/bin/python" "$CARGO_TARGET_DIR/release/bench" --write-docs "$@"
