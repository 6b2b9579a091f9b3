#!/usr/bin/env bash
# Lints template.yaml and infra/aws/llm-gateway.yaml (cfn-lint, sam validate --lint) and runs
# `sam build` without a container:
# cargo-lambda (with Zig) cross-compiles the four functions and the reconciler to arm64 `bootstrap` files.
set -euo pipefail
source "$(dirname "$0")/../local/lib.sh"
cd "$ROOT"
"$ROOT/infra/local/install.sh" tools deploy
export SAM_CLI_TELEMETRY=0
# cargo-lambda finds Zig as `python3 -m ziglang`: its venv's python must come first on PATH.
export PATH="$TOOLS_VENV/bin:$PATH:$DEPLOY_VENV/bin"
say "cfn-lint"
cfn-lint template.yaml infra/aws/llm-gateway.yaml
say "sam validate --lint"
sam validate --lint --template-file template.yaml
sam validate --lint --template-file infra/aws/llm-gateway.yaml
say "sam build (arm64, cargo-lambda)"
sam build --template-file template.yaml --build-dir "$ROOT/.aws-sam/build"
for fn in AuthFunction ChatFunction UserFunction AgentFunction ReconcilerFunction; do
  bin="$ROOT/.aws-sam/build/$fn/bootstrap"
  [ -x "$bin" ] || die "$fn has no bootstrap"
  # ELF e_machine (bytes 18-19, little-endian) is 0x00b7 for AArch64.
  machine=$(od -An -t x1 -j 18 -N 2 "$bin" | tr -d ' \n')
  [ "$machine" = "b700" ] || die "$fn's bootstrap is not an arm64 binary (e_machine $machine)"
  # provided.al2023 has glibc 2.34; the Debian base image `sam local invoke` uses here has a
  # newer one, so the invoke test alone would not see a binary that needs more.
  glibc=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n1)
  [ "$(printf '%s\n2.34\n' "$glibc" | sort -V | tail -n1)" = 2.34 ] \
    || die "$fn's bootstrap needs glibc $glibc; provided.al2023 has 2.34"
  say "$fn: $(du -h "$bin" | cut -f1) arm64 bootstrap, glibc $glibc at most"
done
