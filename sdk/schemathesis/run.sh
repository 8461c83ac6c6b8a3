#!/usr/bin/env bash
# The API fuzzing proof: schemathesis (pinned in requirements.txt) sends generated and mutated
# requests to every operation of openapi/openapi.yaml, authenticated as the spec says, against a
# real linli and wechat-mock seeded with a company, a community, a merchant and a bound resident
# (seed.py). It fails on any 5xx and on any answer the spec does not describe: an undocumented
# status, a wrong content type, a body or header off its schema, a 405 without its `Allow`, an
# operation that ignores its authentication. Settings, and the checks left out with the reason
# why, are in schemathesis.toml.
#
#   bash sdk/schemathesis/run.sh    # from any directory; safe to run repeatedly
#
# Bounded and deterministic: a fixed number of examples per operation and a fixed seed, one
# worker, no example database. SCHEMATHESIS_MAX_EXAMPLES and SCHEMATHESIS_SEED override them for
# a longer or different search by hand.
#
# The virtualenv lives in "${CARGO_TARGET_DIR:-<repo>/target}/schemathesis-venv" and is reused
# while requirements.txt is unchanged. The only network it uses is PyPI, for a new or changed
# virtualenv.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
max_examples="${SCHEMATHESIS_MAX_EXAMPLES:-25}"
seed="${SCHEMATHESIS_SEED:-20240601}"
sdk_begin schemathesis
venv="$target_dir/schemathesis-venv"
sdk_venv "$venv" "$here/requirements.txt"

# --- start wechat-mock and linli ----------------------------------------------------------------------
# The abuse limits are off: the fuzzer is after the handlers, and a 429 in their place would hide
# them (the limits have their own tests in tests/api/limits.rs).
sdk_start_servers fuzz.db LINLI_RATE_RESIDENT_PER_SEC=0 LINLI_RATE_KEY_PER_SEC=0 LINLI_RATE_LOGIN_PER_IP_PER_SEC=0

# --- seed, then fuzz -----------------------------------------------------------------------------------
say "seed.py"
(cd "$work" && env "${linli_env[@]}" LINLI_URL="$linli_url" WECHAT_MOCK_URL="$mock_url" LINLI_BIN="$linli_bin" \
  "$venv/bin/python" "$here/seed.py") >"$work/seed.env" || die "seeding failed"
set -a
# shellcheck disable=SC1091 # written just above: NAME=quoted-value lines
. "$work/seed.env"
set +a

# These operations end their own caller's access or fixtures (a logout ends the session, a revoked
# key or an archived org stops the key): they are fuzzed in a second run, with credentials made
# to be lost (a spare company's admin key, a spare resident), so the main run keeps its own.
self_ending=(delete_session revoke_api_key archive_org)
exclude=()
include=()
for op in "${self_ending[@]}"; do
  exclude+=(--exclude-operation-id "$op")
  include+=(--include-operation-id "$op")
done

fuzz() { # LABEL ARGS...: one schemathesis run over openapi/openapi.yaml against linli
  local label=$1
  shift
  say "$label: schemathesis run, $max_examples examples per operation, seed $seed"
  (cd "$work" && NO_COLOR=1 "$venv/bin/schemathesis" --config-file "$here/schemathesis.toml" run \
    "$repo/openapi/openapi.yaml" --url "$linli_url" \
    --max-examples "$max_examples" --seed "$seed" --workers 1 \
    --generation-database none --no-color "$@")
}
fuzz "main run" "${exclude[@]}"
LINLI_FUZZ_ADMIN_KEY="$LINLI_FUZZ_SPARE_ADMIN_KEY" LINLI_FUZZ_RESIDENT_TOKEN="$LINLI_FUZZ_SPARE_RESIDENT_TOKEN" \
  fuzz "self-ending operations" "${include[@]}"

sdk_done
