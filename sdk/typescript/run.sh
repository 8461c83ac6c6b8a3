#!/usr/bin/env bash
# The TypeScript SDK proof: types generated from openapi/openapi.yaml by openapi-typescript drive an
# openapi-fetch client (all pinned in package.json and package-lock.json) through the resident
# journey (journey.ts) — an operator's set-up, log in, profile, binding by roster match and by
# review, check-in, a coupon, a red packet, the wallet and typed refusals — against a real linli and
# wechat-mock.
#
#   bash sdk/typescript/run.sh      # from any directory; safe to run repeatedly
#
# node_modules lives in "${CARGO_TARGET_DIR:-<repo>/target}/sdk-ts" and is reused while
# package.json and package-lock.json are unchanged (`npm ci` otherwise). The types are generated
# into a temporary directory each run and never committed; journey.ts is type-checked against them
# with `tsc --noEmit` (strict), so a spec change that breaks the client fails here before anything
# runs. The only network it uses is the npm registry, for a new or changed node_modules.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
sdk_begin sdk-ts
deps="$target_dir/sdk-ts"

# --- node_modules ----------------------------------------------------------------------------------------
command -v node >/dev/null && command -v npm >/dev/null || die "Node.js 20 or newer (node and npm) is needed"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
  die "Node.js 20 or newer is needed, this is $(node --version)"

stamp="$deps/.linli-lock.sha256"
want="$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || [ ! -d "$deps/node_modules" ]; then
  say "npm ci into $deps (package-lock.json is new or changed)"
  rm -rf "$deps"
  mkdir -p "$deps"
  cp "$here/package.json" "$here/package-lock.json" "$deps/"
  # No install scripts: none of the pinned packages needs one, and none should run unasked.
  (cd "$deps" && npm ci --ignore-scripts --no-audit --no-fund) >"$work/npm.log" 2>&1 ||
    die_with_log "$work/npm.log" "npm ci failed"
  echo "$want" >"$stamp"
else
  say "reusing node_modules in $deps"
fi
bin="$deps/node_modules/.bin"

# --- generate the types and type-check the journey against them ----------------------------------------
# The journey compiles in a work copy: journey.ts and tsconfig.json beside the generated schema.ts,
# with the cached node_modules linked in (Node finds packages from the compiled file's directory up).
ts="$work/ts"
mkdir -p "$ts"
cp "$here/journey.ts" "$here/tsconfig.json" "$here/package.json" "$ts/"
ln -s "$deps/node_modules" "$ts/node_modules"

say "generating schema.ts from openapi/openapi.yaml with openapi-typescript $(node -p "require('$deps/node_modules/openapi-typescript/package.json').version")"
# --default-non-nullable=false: a field with a default is optional to send, as the server treats it.
"$bin/openapi-typescript" "$repo/openapi/openapi.yaml" --output "$ts/schema.ts" --default-non-nullable=false \
  >"$work/generate.log" 2>&1 || die_with_log "$work/generate.log" "openapi-typescript failed"
# Every operation in the spec must have come out as a typed operation.
missing=()
while read -r id; do
  grep -q "^    $id: {\$" "$ts/schema.ts" || missing+=("$id")
done < <(sed -n 's/^ *operationId: *\([A-Za-z0-9_]*\) *$/\1/p' "$repo/openapi/openapi.yaml")
[ "${#missing[@]}" -eq 0 ] || die "the generated types lack ${#missing[@]} operation(s): ${missing[*]}"
operations=$(grep -c "^ *operationId:" "$repo/openapi/openapi.yaml" || true)
[ "$operations" -gt 0 ] || die "no operationId in openapi/openapi.yaml"
say "all $operations operations typed"

say "tsc --noEmit (strict): journey.ts against the generated types"
(cd "$ts" && "$bin/tsc" -p tsconfig.json --noEmit) >"$work/tsc.log" 2>&1 ||
  die_with_log "$work/tsc.log" "journey.ts does not type-check against openapi/openapi.yaml"
# Checked above; now only strip the types (--noCheck) to get JavaScript Node 20 can run.
(cd "$ts" && "$bin/tsc" -p tsconfig.json --noCheck) >"$work/emit.log" 2>&1 ||
  die_with_log "$work/emit.log" "compiling journey.ts failed"

# --- start wechat-mock and linli ----------------------------------------------------------------------
sdk_start_servers sdk.db LINLI_OA_COMPANY_ID=2

# --- the journey ---------------------------------------------------------------------------------------
say "journey.ts"
(cd "$work" && env "${linli_env[@]}" LINLI_URL="$linli_url" WECHAT_MOCK_URL="$mock_url" LINLI_BIN="$linli_bin" \
  node "$ts/out/journey.js")

sdk_done
