#!/usr/bin/env bash
# Vendors the web page's two libraries from npm into web/vendor/ (no CDN, no build step):
# marked (Markdown to HTML) and DOMPurify (HTML sanitizer), at the versions pinned here, with
# their licences. Run it to upgrade them, then commit web/vendor/.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
MARKED_VERSION=18.3.0
DOMPURIFY_VERSION=3.5.0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "marked@$MARKED_VERSION" "dompurify@$DOMPURIFY_VERSION" >/dev/null)
for pkg in "marked-$MARKED_VERSION" "dompurify-$DOMPURIFY_VERSION"; do
  mkdir -p "$work/$pkg" && tar -xzf "$work/$pkg.tgz" -C "$work/$pkg"
done
out=$ROOT/web/vendor
mkdir -p "$out"
# The ES module builds, without their source-map comments (the maps are not vendored).
sed '/^\/\/# sourceMappingURL=/d' "$work/marked-$MARKED_VERSION/package/lib/marked.esm.js" > "$out/marked.esm.js"
sed '/^\/\/# sourceMappingURL=/d' "$work/dompurify-$DOMPURIFY_VERSION/package/dist/purify.es.mjs" > "$out/purify.es.js"
cp "$work/marked-$MARKED_VERSION/package/LICENSE" "$out/marked.LICENSE"
cp "$work/dompurify-$DOMPURIFY_VERSION/package/LICENSE" "$out/dompurify.LICENSE"
cp "$work/dompurify-$DOMPURIFY_VERSION/package/LICENSE-MPL" "$out/dompurify.LICENSE-MPL"
printf 'marked %s\ndompurify %s\n' "$MARKED_VERSION" "$DOMPURIFY_VERSION" > "$out/VERSIONS"
say "vendored marked $MARKED_VERSION and DOMPurify $DOMPURIFY_VERSION into web/vendor/"
