#!/usr/bin/env bash
# The functions in Lambda containers: `sam build`'s output for template.yaml, run by
# `sam local invoke` against the running local stack.
#
#   sam.sh image                  Docker's daemon, arm64 emulation and the base image; prints
#                                 SAM_INVOKE_IMAGE=<image> (empty: SAM's own, from ECR Public)
#   sam.sh build                  sam build (SAM_BUILD_MODE=debug by default here) into .aws-sam/build
#   sam.sh invoke FUNCTION EVENT  one event through one function (both of the above when missing)
#
# The template's functions are arm64. On another machine the containers run under qemu-user
# (binfmt_misc), so what is invoked is the very build that deploys. Where ECR Public cannot be
# reached (no image registry is reachable on these machines) the base image is built from
# Debian's packages with debootstrap and passed as --invoke-image.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

SAM_DIR=$STATE_DIR/sam
mkdir -p "$SAM_DIR"
LOCAL_IMAGE=chat-backend/lambda-provided:al2023-arm64
ECR_IMAGE=public.ecr.aws/lambda/provided:al2023-arm64

# arm64 binaries on another processor: qemu-user, registered with binfmt_misc (flag F, so it
# works inside containers).
ensure_arm64() {
  [ "$(uname -m)" = aarch64 ] && return 0
  grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null && return 0
  as_root_or_say "running arm64 containers on $(uname -m)" "apt-get install -y qemu-user-static binfmt-support"
  [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  if ! dpkg -s qemu-user-static >/dev/null 2>&1; then
    say "installing qemu-user-static (arm64 emulation)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static binfmt-support >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static binfmt-support >/dev/null; }
  fi
  update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
  grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null \
    || die "qemu-aarch64 is not registered with binfmt_misc (see update-binfmts --display)"
}

# A root filesystem from Debian's packages, kept in .state so a new daemon imports it in seconds.
build_local_image() {
  local tar=$SAM_DIR/rootfs-arm64.tar
  debian_rootfs "$tar" arm64 ca-certificates "the arm64 base image"
  local ctx=$SAM_DIR/image-context
  rm -rf "$ctx" && mkdir -p "$ctx"
  ln "$tar" "$ctx/rootfs.tar" 2>/dev/null || cp "$tar" "$ctx/rootfs.tar"
  # Like the provided.al2023 image: the function's code in /var/task, SAM adds its emulator.
  printf 'FROM scratch\nADD rootfs.tar /\nWORKDIR /var/task\n' > "$ctx/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q --platform linux/arm64 -t "$LOCAL_IMAGE" "$ctx" >>"$LOG_DIR/docker-build.log" 2>&1 \
    || die "docker build of $LOCAL_IMAGE failed"
  rm -rf "$ctx"
}

cmd_image() {
  ensure_docker
  ensure_arm64
  local image=
  if docker image inspect "$ECR_IMAGE" >/dev/null 2>&1; then
    image=
  elif docker image inspect "$LOCAL_IMAGE" >/dev/null 2>&1; then
    image=$LOCAL_IMAGE
  elif timeout 30 docker pull -q "$ECR_IMAGE" >/dev/null 2>&1; then
    say "using SAM's own base image, $ECR_IMAGE"
  else
    build_local_image
    image=$LOCAL_IMAGE
  fi
  # The emulation works inside containers (a quick arm64 command in the base image).
  docker run --rm --platform linux/arm64 "${image:-$ECR_IMAGE}" /bin/sh -c true >/dev/null 2>&1 \
    || die "an arm64 container does not start: check binfmt_misc (update-binfmts --display qemu-aarch64)"
  echo "SAM_INVOKE_IMAGE=$image"
}

cmd_build() {
  "$ROOT/infra/local/install.sh" tools deploy
  export SAM_CLI_TELEMETRY=0 SAM_BUILD_MODE=${SAM_BUILD_MODE:-debug}
  # cargo-lambda finds Zig as `python3 -m ziglang`: its venv's python must come first on PATH.
  export PATH="$TOOLS_VENV/bin:$PATH:$DEPLOY_VENV/bin"
  say "sam build ($SAM_BUILD_MODE, arm64, cargo-lambda)"
  sam build --template-file template.yaml --build-dir "$ROOT/.aws-sam/build" >"$LOG_DIR/sam-build.log" 2>&1 \
    || { tail -n 30 "$LOG_DIR/sam-build.log" >&2; die "sam build failed; see $LOG_DIR/sam-build.log"; }
}

cmd_invoke() {
  [ $# -eq 2 ] || die "usage: make sam-invoke FUNCTION=AuthFunction EVENT=events/auth-health.json"
  if [ ! -f "$STATE_DIR/local.env" ] || "$ROOT/infra/local/services.sh" status | grep -qv ' up$'; then
    die "the local stack is not up: start it first (make services-up, or make dev in another shell)"
  fi
  local image
  image=$(cmd_image | sed -n 's/^SAM_INVOKE_IMAGE=//p')
  [ -f "$ROOT/.aws-sam/build/template.yaml" ] || cmd_build
  cargo build -q -p sam-local -p aws-recorder
  set -a; source "$STATE_DIR/local.env"; set +a
  SAM_INVOKE_IMAGE=$image LOCAL_SAM=$DEPLOY_VENV/bin/sam "$CARGO_TARGET_DIR/debug/sam-invoke" "$1" "$2"
}

case ${1:-} in
  image) cmd_image ;;
  build) cmd_build ;;
  invoke) shift; cmd_invoke "$@" ;;
  *) die "usage: sam.sh image | build | invoke FUNCTION EVENT" ;;
esac
