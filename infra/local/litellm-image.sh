#!/usr/bin/env bash
# Builds the LiteLLM proxy image of the llm-gateway stack (infra/aws/litellm/Dockerfile) here and
# prints LITELLM_IMAGE=<tag>. The test tests/api/deploy/litellm_image.rs runs it against the
# local stack.
#
# Where no image registry is reachable (these machines), the base image is Debian bookworm from
# Debian's packages (debootstrap: python3, python3-venv and nodejs, which the offline Prisma
# engine needs), cached in .state, and the build context's offline/ folder gets the offline
# stand-in of Prisma's engines (../shared/tools/prisma-engine-offline, installed by
# `install.sh litellm`) with the Prisma CLI cache it primed. Where Docker Hub is reachable the
# Dockerfile's own base (python:3.11-slim-bookworm) is used and nothing is added.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

DIR=$STATE_DIR/litellm-image
# The tag names the Dockerfile's folder by content: a change there builds a new image.
TAG=chat-backend/litellm-gateway:$LITELLM_VERSION-$(cd "$ROOT/infra/aws/litellm" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12)
HUB_BASE=python:3.11-slim-bookworm
LOCAL_BASE=chat-backend/debian-python:bookworm
mkdir -p "$DIR"

local_base() {
  docker image inspect "$LOCAL_BASE" >/dev/null 2>&1 && return 0
  local tar=$DIR/rootfs.tar
  debian_rootfs "$tar" "$(dpkg --print-architecture)" ca-certificates,python3,python3-venv,nodejs \
    "the LiteLLM image's base"
  docker import "$tar" "$LOCAL_BASE" >/dev/null || die "docker import of $LOCAL_BASE failed"
}

# The offline Prisma engine and CLI cache, with paths as the image has them.
offline_prisma() {
  local out=$1
  "$ROOT/infra/local/install.sh" litellm
  local engine=$STATE_DIR/prisma-engine
  [ -d "$engine/node_modules/@prisma/client" ] || die "no offline Prisma engine in $engine"
  mkdir -p "$out/prisma-engine/bin"
  cp -a "$engine/node_modules" "$engine/qe-shim.js" "$engine/package.json" "$out/prisma-engine/"
  cp -a "$engine/bin/schema-engine" "$out/prisma-engine/bin/"
  printf '#!/bin/sh\nexec node /opt/offline/prisma-engine/qe-shim.js "$@"\n' >"$out/prisma-engine/bin/query-engine"
  chmod +x "$out/prisma-engine/bin/query-engine"
  cp -a "$STATE_DIR/prisma-home" "$out/prisma-home"
}

# The CA bundle this machine's pip trusts (the network here re-signs TLS), for the build's pip:
# the Dockerfile deletes it after pip, though it stays in the COPY layer of these local builds
# (a public CA bundle, not a secret; production builds have none).
build_ca() {
  local bundle=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
  [ -f "$bundle" ] && cp "$bundle" "$1/ca-bundle.crt"
  true
}

ensure_docker
if docker image inspect "$TAG" >/dev/null 2>&1 && [ "${REBUILD:-}" != 1 ]; then
  echo "LITELLM_IMAGE=$TAG"
  exit 0
fi
context=$DIR/context
rm -rf "$context" && cp -a "$ROOT/infra/aws/litellm" "$context"
if docker image inspect "$HUB_BASE" >/dev/null 2>&1 || timeout 30 docker pull -q "$HUB_BASE" >/dev/null 2>&1; then
  base=$HUB_BASE
else
  local_base
  base=$LOCAL_BASE
  offline_prisma "$context/offline"
fi
build_ca "$context/offline"
say "building $TAG on $base (pip install litellm[proxy]==$LITELLM_VERSION; a few minutes)"
start=$(date +%s)
# The build's network is the host's: pip reaches the package registry as this machine does.
DOCKER_BUILDKIT=0 docker build --network host --build-arg "BASE_IMAGE=$base" \
  --build-arg "LITELLM_VERSION=$LITELLM_VERSION" --build-arg "PRISMA_PY_VERSION=$PRISMA_PY_VERSION" \
  -t "$TAG" "$context" >"$LOG_DIR/litellm-image.log" 2>&1 \
  || { tail -n 30 "$LOG_DIR/litellm-image.log" >&2; die "docker build of $TAG failed; see $LOG_DIR/litellm-image.log"; }
size=$(docker image inspect -f '{{.Size}}' "$TAG")
say "built $TAG in $(( $(date +%s) - start )) s: $(( size / 1000000 )) MB"
rm -rf "$context"
echo "LITELLM_IMAGE=$TAG"
