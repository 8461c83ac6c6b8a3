#!/usr/bin/env bash
# The SDK proof: a Python client generated from openapi/openapi.yaml by a standard generator
# (openapi-python-client, pinned in requirements.txt) logs a simulated resident in, binds them to
# their home and reads it back (journey.py), against a real linli and wechat-mock.
#
#   bash sdk/python/run.sh          # from any directory; safe to run repeatedly
#
# The virtualenv lives in "${CARGO_TARGET_DIR:-<repo>/target}/sdk-venv" and is reused while
# requirements.txt is unchanged; the client is generated into a temporary directory each run and
# never committed. The only network it uses is PyPI, for a new or changed virtualenv.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
sdk_begin sdk
venv="$target_dir/sdk-venv"
sdk_venv "$venv" "$here/requirements.txt"
export PATH="$venv/bin:$PATH" # the generator runs ruff, which it installed, on what it writes

# --- generate the client and install it --------------------------------------------------------------
say "generating a client from openapi/openapi.yaml with $(openapi-python-client --version)"
(cd "$work" && openapi-python-client generate --path "$repo/openapi/openapi.yaml" --meta pdm \
  --config "$here/generator.yaml" --output-path "$work/client") >"$work/generate.log" 2>&1 ||
  die_with_log "$work/generate.log" "openapi-python-client failed"
# The generator exits 0 even when it drops a schema or an operation, so read what it said. The one
# warning allowed is for the CSV variant of the import bodies: it does not do text/csv bodies.
warnings=$(grep -c '^WARNING' "$work/generate.log" || true)
csv=$(grep -c '^Unsupported content type text/csv$' "$work/generate.log" || true)
if [ "$warnings" != "$csv" ] || grep -q '^Unable to process' "$work/generate.log"; then
  die_with_log "$work/generate.log" "openapi-python-client could not use part of the spec: make it cleaner in src/api/"
fi
# Every operation in the spec must have come out as a module.
"$venv/bin/python" - "$repo/openapi/openapi.yaml" "$work/client/linli_client" <<'PY'
import pathlib
import sys

from ruamel.yaml import YAML

spec = YAML(typ="safe").load(pathlib.Path(sys.argv[1]).read_text(encoding="utf-8"))
ids = {
    op["operationId"]
    for item in spec["paths"].values()
    for op in item.values()
    if isinstance(op, dict) and "operationId" in op
}
made = {p.stem for p in pathlib.Path(sys.argv[2]).glob("api/*/*.py")}
missing = sorted(ids - made)
if missing:
    sys.exit(f"sdk: the generated client lacks {len(missing)} operation(s): {', '.join(missing)}")
print(f"--> sdk: all {len(ids)} operations generated")
PY
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-index --no-build-isolation \
  --no-deps --force-reinstall "$work/client" >"$work/install.log" 2>&1 ||
  die_with_log "$work/install.log" "installing the generated client failed"
"$venv/bin/python" -m pip check --disable-pip-version-check >/dev/null ||
  die "the generated client's dependencies are not met by requirements.txt: $("$venv/bin/python" -m pip check)"

# --- start wechat-mock and linli ----------------------------------------------------------------------
sdk_start_servers sdk.db LINLI_OA_COMPANY_ID=2

# --- the journey ---------------------------------------------------------------------------------------
say "journey.py"
(cd "$work" && env "${linli_env[@]}" LINLI_URL="$linli_url" WECHAT_MOCK_URL="$mock_url" LINLI_BIN="$linli_bin" \
  "$venv/bin/python" "$here/journey.py")

sdk_done
