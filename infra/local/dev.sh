#!/usr/bin/env bash
# `make dev`: start the local stack, serve every function on http://127.0.0.1:$GATEWAY_PORT,
# and stop the stack when the gateway stops (Ctrl-C).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# Optional, git-ignored overrides (ports, a real provider's OPENAI_API_KEY, LETTA_MODEL, ...).
if [ -f "$ROOT/.env" ]; then set -a; source "$ROOT/.env"; set +a; fi
source "$ROOT/infra/local/lib.sh"
cd "$ROOT"
cargo build -p scripted-llm -p local-auth -p gateway
trap '"$ROOT/infra/local/services.sh" down' EXIT
"$ROOT/infra/local/services.sh" up
set -a; source "$STATE_DIR/local.env"; [ -f "$ROOT/.env" ] && source "$ROOT/.env"; set +a
say "serving the API on http://127.0.0.1:$GATEWAY_PORT (Ctrl-C stops it and the services)"
"$CARGO_TARGET_DIR/debug/gateway"
