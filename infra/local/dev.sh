#!/usr/bin/env bash
# `make dev`: start the local stack (unless it is already up), serve every function on
# http://127.0.0.1:$GATEWAY_PORT, and when the gateway stops (Ctrl-C) stop what this run started.
# A second `make dev` beside a running one says so and leaves that one and its stack alone.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# Optional, git-ignored overrides (ports, a real provider's OPENAI_API_KEY, LETTA_MODEL, ...).
if [ -f "$ROOT/.env" ]; then set -a; source "$ROOT/.env"; set +a; fi
source "$ROOT/infra/local/lib.sh"
cd "$ROOT"
if (exec 3<>"/dev/tcp/127.0.0.1/$GATEWAY_PORT") 2>/dev/null; then
  say "http://127.0.0.1:$GATEWAY_PORT is already served (another make dev?): leaving it and the stack alone"
  say "stop that one first, or set GATEWAY_PORT to serve a second gateway"
  exit 0
fi
cargo build -p scripted-llm -p local-auth -p gateway
services="$ROOT/infra/local/services.sh"
started=false
trap '[ "$started" = false ] || "$services" down' EXIT
if "$services" status | grep -qv ' up$'; then
  started=true
  "$services" up
else
  say "the local stack is already up: serving it, and leaving it up afterwards"
fi
set -a; source "$STATE_DIR/local.env"; [ -f "$ROOT/.env" ] && source "$ROOT/.env"; set +a
if [ "$started" = true ]; then
  say "serving the API on http://127.0.0.1:$GATEWAY_PORT (Ctrl-C stops it and the services)"
else
  say "serving the API on http://127.0.0.1:$GATEWAY_PORT (Ctrl-C stops it)"
fi
"$CARGO_TARGET_DIR/debug/gateway"
