# What the spec-driven proofs under sdk/ share, sourced by their run.sh: where the build goes, a
# temporary work directory, clean-up on every exit, a Python virtualenv kept while its requirements
# are unchanged, and a real wechat-mock and linli started on free ports.
#
#   . "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
#   sdk_begin TAG            # say/die print TAG; sets repo, target_dir, work; cd "$repo"
#   sdk_venv DIR REQUIREMENTS_TXT   # sets python (the venv's)
#   sdk_start_servers DB_NAME [LINLI_SETTING=VALUE ...]   # sets linli_bin, mock_url, linli_url, linli_env
#
# The servers are stopped and the work directory removed on exit; on failure the last lines of
# both servers' logs are printed.

sdk_begin() { # TAG
  sdk_tag=$1
  sdk_started=$(date +%s)
  repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  # A relative CARGO_TARGET_DIR means the caller's directory, as it does to cargo; pin it first.
  if [ -n "${CARGO_TARGET_DIR:-}" ]; then
    case "$CARGO_TARGET_DIR" in /*) ;; *) CARGO_TARGET_DIR="$PWD/$CARGO_TARGET_DIR" ;; esac
    export CARGO_TARGET_DIR
  fi
  cd "$repo"
  target_dir="${CARGO_TARGET_DIR:-$repo/target}"
  work="$(mktemp -d "${TMPDIR:-/tmp}/linli-$sdk_tag.XXXXXX")"
  sdk_pids=()
  trap sdk_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  sdk_python=""
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      sdk_python="$candidate"
      break
    fi
  done
  [ -n "$sdk_python" ] || die "Python 3.11 or newer is needed (python3.11 or python3)"
}

say() { printf -- '--> %s: %s\n' "$sdk_tag" "$*"; }
die() {
  printf '%s: %s\n' "$sdk_tag" "$*" >&2
  exit 1
}
die_with_log() { # LOG MESSAGE
  cat "$1" >&2
  die "$2"
}
sdk_done() { say "done in $(($(date +%s) - sdk_started))s"; }

sdk_stop() { # PID: SIGTERM, up to 10 s to finish, then SIGKILL
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

sdk_cleanup() {
  local status=$?
  for pid in "${sdk_pids[@]}"; do sdk_stop "$pid"; done
  if [ "$status" -ne 0 ]; then
    for log in "$work/wechat-mock.log" "$work/linli.log"; do
      [ -s "$log" ] || continue
      printf '\n--- last lines of %s\n' "$(basename "$log")" >&2
      tail -n 40 "$log" >&2
    done
  fi
  rm -rf "$work"
}

sdk_venv() { # DIR REQUIREMENTS_TXT: a virtualenv with exactly those requirements, reused while unchanged
  local venv=$1 requirements=$2
  if ! "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    say "creating the virtualenv $venv"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    "$sdk_python" -m venv "$venv"
  fi
  local stamp="$venv/.linli-requirements.sha256" want
  want="$(sha256sum "$requirements" | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing ${requirements#"$repo"/} into the virtualenv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    "$venv/bin/python" -m pip check --disable-pip-version-check >/dev/null ||
      die "${requirements#"$repo"/} does not pin everything it needs: $("$venv/bin/python" -m pip check)"
    echo "$want" >"$stamp"
  else
    say "reusing the virtualenv $venv"
  fi
  python="$venv/bin/python"
}

sdk_free_port() {
  "$sdk_python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# sdk_wait_ready URL PID SECONDS: 0 when URL answers 2xx; 1 when PID exits first; 2 at the deadline.
sdk_wait_ready() {
  "$sdk_python" - "$@" <<'PY'
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

# sdk_start NAME READY_PATH PORT_VAR COMMAND...: starts COMMAND in $work with $PORT_VAR set to a
# free port (the server reads its listen address from the environment), retrying on another port
# if it dies before answering READY_PATH (say, someone took the port in between). Sets
# sdk_started_port.
sdk_start() {
  local name=$1 ready_path=$2 port_var=$3
  shift 3
  local attempt port pid rc
  for attempt in 1 2 3; do
    port=$(sdk_free_port)
    (cd "$work" && exec env "$port_var=127.0.0.1:$port" "$@") >"$work/$name.log" 2>&1 &
    pid=$!
    sdk_pids+=("$pid")
    rc=0
    sdk_wait_ready "http://127.0.0.1:$port$ready_path" "$pid" 60 || rc=$?
    case $rc in
      0) sdk_started_port=$port; return 0 ;;
      2) die "$name did not answer $ready_path within 60 s" ;;
      *) wait "$pid" 2>/dev/null || true; say "$name exited before it was ready (attempt $attempt)" ;;
    esac
  done
  die "$name would not start"
}

# sdk_start_servers DB_NAME [SETTING=VALUE ...]: builds and starts wechat-mock and linli (on a new
# SQLite file in $work, as the mock's official account and mini-program), with the extra settings.
sdk_start_servers() {
  local db_name=$1
  shift
  say "cargo build --bin linli --bin wechat-mock"
  cargo build --quiet --bin linli --bin wechat-mock
  linli_bin="$target_dir/debug/linli"
  local mock_bin="$target_dir/debug/wechat-mock"
  [ -x "$linli_bin" ] && [ -x "$mock_bin" ] || die "no binaries in $target_dir/debug"

  sdk_start wechat-mock /__mock/clock WECHAT_MOCK_LISTEN "$mock_bin"
  mock_url="http://127.0.0.1:$sdk_started_port"
  say "wechat-mock on $mock_url"

  linli_env=(
    DATABASE_URL="sqlite://$work/$db_name"
    WECHAT_API_BASE="$mock_url"
    WECHAT_OA_APPID=wx_mock_oa_appid
    WECHAT_OA_SECRET=mock_oa_secret_0123456789abcdef
    WECHAT_OA_TOKEN=LinliMockOaToken2024
    WECHAT_OA_AES_KEY=LinliWechatMockEncodingAesKey0123456789abcE
    WECHAT_MP_APPID=wx_mock_mp_appid
    WECHAT_MP_SECRET=mock_mp_secret_0123456789abcdef
    "$@"
  )
  sdk_start linli /readyz LINLI_LISTEN env "${linli_env[@]}" "$linli_bin"
  linli_url="http://127.0.0.1:$sdk_started_port"
  say "linli on $linli_url"
}
