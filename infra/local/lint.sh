#!/usr/bin/env bash
# `make lint`: formatting, clippy with warnings denied, and cargo-deny (licenses, banned crates,
# sources; advisories need GitHub, which these machines cannot reach).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
"$ROOT/infra/local/install.sh" deny
"$CARGO_TOOLS/bin/cargo-deny" --workspace check licenses bans sources
