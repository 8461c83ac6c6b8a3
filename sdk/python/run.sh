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
venv="$target_dir/sdk-venv"

say() { printf -- '--> sdk: %s\n' "$*"; }
die() { printf 'sdk: %s\n' "$*" >&2; exit 1; }
die_with_log() { # LOG MESSAGE
  cat "$1" >&2
  die "$2"
}

# --- clean-up: always stop both servers and remove the temporary directory -------------------------
work="$(mktemp -d "${TMPDIR:-/tmp}/linli-sdk.XXXXXX")"
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

# --- the virtualenv ------------------------------------------------------------------------------------
python=""
for candidate in python3.11 python3; do
  if command -v "$candidate" >/dev/null &&
    "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    python="$candidate"
    break
  fi
done
[ -n "$python" ] || die "Python 3.11 or newer is needed (python3.11 or python3)"

if ! "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  say "creating the virtualenv $venv"
  rm -rf "$venv"
  mkdir -p "$target_dir"
  "$python" -m venv "$venv"
fi
stamp="$venv/.linli-requirements.sha256"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing sdk/python/requirements.txt into the virtualenv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  echo "$want" >"$stamp"
else
  say "reusing the virtualenv $venv"
fi
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

# --- build and start wechat-mock and linli -------------------------------------------------------------
say "cargo build --bin linli --bin wechat-mock"
cargo build --quiet --bin linli --bin wechat-mock
linli_bin="$target_dir/debug/linli"
mock_bin="$target_dir/debug/wechat-mock"
[ -x "$linli_bin" ] && [ -x "$mock_bin" ] || die "no binaries in $target_dir/debug"

free_port() {
  "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
# wait_ready URL PID SECONDS: 0 when URL answers 2xx; 1 when PID exits first; 2 at the deadline.
wait_ready() {
  "$python" - "$@" <<'PY'
import sys, time, urllib.request

url, pid, deadline = sys.argv[1], int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
while True:
    try:
        with direct.open(url, timeout=1) as r:
            if 200 <= r.status < 300:
                sys.exit(0)
    except OSError:
        pass
    try:  # gone, or a zombie its parent (this script) has not reaped yet
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                sys.exit(1)
    except FileNotFoundError:
        sys.exit(1)
    if time.monotonic() > deadline:
        sys.exit(2)
    time.sleep(0.05)
PY
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
say "journey.py"
(cd "$work" && env "${linli_env[@]}" LINLI_URL="$linli_url" WECHAT_MOCK_URL="$mock_url" LINLI_BIN="$linli_bin" \
  "$venv/bin/python" "$here/journey.py")

say "done in $(($(date +%s) - started))s"
