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

started=$(date +%s)
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# A relative CARGO_TARGET_DIR means the caller's directory, as it does to cargo; pin it before leaving.
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
  case "$CARGO_TARGET_DIR" in /*) ;; *) CARGO_TARGET_DIR="$PWD/$CARGO_TARGET_DIR" ;; esac
  export CARGO_TARGET_DIR
fi
cd "$repo"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
deps="$target_dir/sdk-ts"

say() { printf -- '--> sdk-ts: %s\n' "$*"; }
die() { printf 'sdk-ts: %s\n' "$*" >&2; exit 1; }
die_with_log() { # LOG MESSAGE
  cat "$1" >&2
  die "$2"
}

# --- clean-up: always stop both servers and remove the temporary directory -------------------------
work="$(mktemp -d "${TMPDIR:-/tmp}/linli-sdk-ts.XXXXXX")"
pids=()
stop() { # pid: SIGTERM, up to 10 s to finish, then SIGKILL
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do stop "$pid"; done
  if [ "$status" -ne 0 ]; then
    for log in "$work/wechat-mock.log" "$work/linli.log"; do
      [ -s "$log" ] || continue
      printf '\n--- last lines of %s\n' "$(basename "$log")" >&2
      tail -n 40 "$log" >&2
    done
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

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

# --- build and start wechat-mock and linli -------------------------------------------------------------
say "cargo build --bin linli --bin wechat-mock"
cargo build --quiet --bin linli --bin wechat-mock
linli_bin="$target_dir/debug/linli"
mock_bin="$target_dir/debug/wechat-mock"
[ -x "$linli_bin" ] && [ -x "$mock_bin" ] || die "no binaries in $target_dir/debug"

free_port() {
  node -e 'const s = require("net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}
# wait_ready URL PID SECONDS: 0 when URL answers 2xx; 1 when PID exits first; 2 at the deadline.
wait_ready() {
  node - "$@" <<'JS'
const fs = require("fs");
const [url, pid, seconds] = process.argv.slice(2);
const deadline = Date.now() + Number(seconds) * 1000;
// Gone, or a zombie its parent (this script) has not reaped yet.
function gone() {
  try {
    const state = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(")").pop().trim().split(" ")[0];
    return state === "Z" || state === "X";
  } catch {
    return true;
  }
}
(async () => {
  for (;;) {
    try {
      // Node's fetch never goes through a proxy the environment names: loopback stays direct.
      const r = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (r.ok) process.exit(0);
    } catch {}
    if (gone()) process.exit(1);
    if (Date.now() > deadline) process.exit(2);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
})();
JS
}
# start NAME READY_PATH PORT_VAR COMMAND...: starts COMMAND in $work with $PORT_VAR set to a free
# port (the server reads its listen address from the environment), retrying on another port if it
# dies before answering READY_PATH (say, someone took the port in between).
start() {
  local name=$1 ready_path=$2 port_var=$3
  shift 3
  local attempt port pid rc
  for attempt in 1 2 3; do
    port=$(free_port)
    (cd "$work" && exec env "$port_var=127.0.0.1:$port" "$@") >"$work/$name.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    rc=0
    wait_ready "http://127.0.0.1:$port$ready_path" "$pid" 60 || rc=$?
    case $rc in
      0) started_port=$port; return 0 ;;
      2) die "$name did not answer $ready_path within 60 s" ;;
      *) wait "$pid" 2>/dev/null || true; say "$name exited before it was ready (attempt $attempt)" ;;
    esac
  done
  die "$name would not start"
}

start wechat-mock /__mock/clock WECHAT_MOCK_LISTEN "$mock_bin"
mock_url="http://127.0.0.1:$started_port"
say "wechat-mock on $mock_url"

database_url="sqlite://$work/sdk.db"
linli_env=(
  DATABASE_URL="$database_url"
  WECHAT_API_BASE="$mock_url"
  WECHAT_OA_APPID=wx_mock_oa_appid
  WECHAT_OA_SECRET=mock_oa_secret_0123456789abcdef
  WECHAT_OA_TOKEN=LinliMockOaToken2024
  WECHAT_OA_AES_KEY=LinliWechatMockEncodingAesKey0123456789abcE
  LINLI_OA_COMPANY_ID=2
  WECHAT_MP_APPID=wx_mock_mp_appid
  WECHAT_MP_SECRET=mock_mp_secret_0123456789abcdef
)
start linli /readyz LINLI_LISTEN env "${linli_env[@]}" "$linli_bin"
linli_url="http://127.0.0.1:$started_port"
say "linli on $linli_url"

# --- the journey ---------------------------------------------------------------------------------------
say "journey.ts"
(cd "$work" && env "${linli_env[@]}" LINLI_URL="$linli_url" WECHAT_MOCK_URL="$mock_url" LINLI_BIN="$linli_bin" \
  node "$ts/out/journey.js")

say "done in $(($(date +%s) - started))s"
