#!/usr/bin/env bash
# Bundles the React test page (test/page.js, with react, react-dom and @cmdbus/client) into one
# ES module at $1, for the Chromium test of the hooks. Installs the pinned dev dependencies
# first (only when package-lock.json changed since the last install).
set -euo pipefail
cd "$(dirname "$0")"
out=$(realpath -m "$1")
if ! cmp -s package-lock.json node_modules/.installed-lock.json 2>/dev/null; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.installed-lock.json
fi
node_modules/.bin/esbuild test/page.js --bundle --format=esm --target=es2022 --log-level=warning --minify \
  --define:process.env.NODE_ENV='"production"' --outfile="$out"
