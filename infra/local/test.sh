#!/usr/bin/env bash
# `make test`: build, start the local stack (unless it is already up), run every test against
# the real services, and stop what this run started. Extra arguments go to the test binaries.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
cargo build --workspace --all-targets
"$ROOT/infra/local/install.sh" browser fuzz
# The functions in Lambda containers (tests/api/deploy/sam_local.rs): Docker (which brings
# iptables, for the rule that keeps DynamoDB Local to loopback), the base image
# and `sam build`'s arm64 output of template.yaml.
image=$("$ROOT/infra/local/sam.sh" image)   # an assignment, so a failure stops the run
eval "$image"
"$ROOT/infra/local/sam.sh" build
# The LiteLLM image of infra/aws/llm-gateway.yaml (tests/api/deploy/litellm_image.rs).
image=$("$ROOT/infra/local/litellm-image.sh")
eval "$image"
export SAM_INVOKE_IMAGE LOCAL_SAM=$DEPLOY_VENV/bin/sam LITELLM_IMAGE
services="$ROOT/infra/local/services.sh"
status=$("$services" status)
started=false
recorder=
cleanup() {
  [ -z "$recorder" ] || kill "$recorder" 2>/dev/null || true
  [ "$started" = false ] || "$services" down
}
trap cleanup EXIT
if grep -qv ' up$' <<<"$status"; then
  started=true
  "$services" up
else
  say "the local stack is already up; using it and leaving it up"
fi
set -a; source "$STATE_DIR/local.env"; set +a
# Every AWS request of the run goes through the recorder, which writes down each action with the
# function that made it; after the suite, a test compares them with the roles in template.yaml
# (DynamoDB Local enforces no IAM). The Secrets Manager stand-ins get a recorder of their own.
export AWS_CALLS_LOG="$CARGO_TARGET_DIR/aws-calls.jsonl"
rm -f "$AWS_CALLS_LOG"
start_recorder "$DYNAMODB_ENDPOINT" "$AWS_CALLS_LOG"
recorder=$RECORDER_PID
export DYNAMODB_ENDPOINT=$RECORDER_URL
# Every line the backend logs during the tests goes to this file (tests/api/run_log.rs); it and
# the services' logs are scanned for secrets after the run: any hit fails `make test`.
export API_TEST_LOG="$CARGO_TARGET_DIR/api-test-logs.jsonl"
rm -f "$API_TEST_LOG"
status=0
cargo test --workspace --no-fail-fast -- "$@" || status=$?
if [ $# -eq 0 ]; then
  # Only after the whole suite: it holds every function to the actions the run recorded.
  cargo test -p api-tests --test api -- --ignored --exact \
    deploy::permissions::each_role_grants_exactly_the_aws_actions_its_function_performed || status=1
fi
python3 "$ROOT/infra/local/scan-logs.py" "$API_TEST_LOG" "$STATE_DIR"/logs/*.log || status=1
exit "$status"
