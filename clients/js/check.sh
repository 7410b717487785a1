#!/usr/bin/env bash
# Checks the browser library @cmdbus/client and the React hooks @cmdbus/react: installs the pinned
# dev tools (`npm ci`, only when package-lock.json changed since the last install, so that it
# runs offline after the first time), type-checks the JSDoc-typed sources with tsc, and fails
# when a generated file is stale: src/wire.d.ts (from openapi.json, which the Rust test
# `library::tests` holds to the server), dist/client.js and dist/index.d.ts (the files the
# server serves). `--update` rewrites the generated files instead. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"

install() { # $1: a package directory with a package-lock.json
  if ! cmp -s "$1/package-lock.json" "$1/node_modules/.installed-lock.json" 2>/dev/null; then
    echo "installing the dev tools of $1"
    (cd "$1" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$1/package-lock.json" "$1/node_modules/.installed-lock.json"
  fi
}
install .
install ../react

if [ "${1:-}" = --update ]; then
  node build.mjs
else
  node build.mjs --check
fi
# build.mjs runs tsc over the sources (strict, JSDoc types checked) to emit the declarations.
node_modules/.bin/tsc -p test   # dist/index.d.ts as a TypeScript application uses it

# The React hooks: type-checked against the library's declarations while their own are emitted.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
../react/node_modules/.bin/tsc -p ../react --noEmit false --emitDeclarationOnly --outDir "$scratch"
if [ "${1:-}" = --update ]; then
  cp "$scratch/index.d.ts" ../react/dist/index.d.ts
elif ! cmp -s "$scratch/index.d.ts" ../react/dist/index.d.ts; then
  echo "stale: clients/react/dist/index.d.ts; run clients/js/check.sh --update and commit it" >&2
  exit 1
fi
echo "clients/js, clients/react: ok"
