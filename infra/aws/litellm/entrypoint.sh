#!/bin/sh
# Uses the offline Prisma engine stand-in when the image carries one (infra/local only).
if [ -x /opt/offline/prisma-engine/bin/query-engine ]; then
  export PRISMA_QUERY_ENGINE_BINARY=/opt/offline/prisma-engine/bin/query-engine
  export PRISMA_SCHEMA_ENGINE_BINARY=/opt/offline/prisma-engine/bin/schema-engine
fi
exec "$@"
