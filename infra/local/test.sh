#!/usr/bin/env bash
# `make test`: build, start the local stack (unless it is already up), run every test against
# the real services, and stop what this run started. Extra arguments go to the test binaries.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
cargo build --workspace --all-targets
"$ROOT/infra/local/install.sh" browser fuzz
services="$ROOT/infra/local/services.sh"
status=$("$services" status)
if grep -qv ' up$' <<<"$status"; then
  trap '"$services" down' EXIT
  "$services" up
else
  say "the local stack is already up; using it and leaving it up"
fi
set -a; source "$STATE_DIR/local.env"; set +a
# Every line the backend logs during the tests goes to this file (tests/api/run_log.rs); it and
# the services' logs are scanned for secrets after the run: any hit fails `make test`.
export API_TEST_LOG="$CARGO_TARGET_DIR/api-test-logs.jsonl"
rm -f "$API_TEST_LOG"
status=0
cargo test --workspace --no-fail-fast -- "$@" || status=$?
python3 "$ROOT/infra/local/scan-logs.py" "$API_TEST_LOG" "$STATE_DIR"/logs/*.log || status=1
exit "$status"
