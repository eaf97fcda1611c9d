#!/usr/bin/env bash
# Build Kith's wheel, install it (not editable) into a fresh virtualenv, start `kith serve`
# in an empty directory, and fetch a page, its CSS and /readyz: proves the static files,
# templates and migrations ship inside the package. Run by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

quiet() { "$@" >"$work/pip.log" 2>&1 || { cat "$work/pip.log" >&2; exit 1; }; }
quiet python3 -m pip wheel --no-deps --wheel-dir "$work/dist" .
python3 -m venv "$work/venv"
quiet "$work/venv/bin/python" -m pip install "$work"/dist/kith-*.whl

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
mkdir "$work/empty" && cd "$work/empty"
KITH_DOMAIN="localhost:$port" KITH_DATABASE_URL="sqlite:///$work/empty/kith.db" \
  "$work/venv/bin/kith" serve --host 127.0.0.1 --port "$port" >"$work/serve.log" 2>&1 &
server_pid=$!

base="http://127.0.0.1:$port"
for _ in $(seq 1 60); do curl -fsS "$base/healthz" >/dev/null 2>&1 && break; sleep 0.5; done
fail() { echo "wheel check: $1" >&2; cat "$work/serve.log" >&2; exit 1; }
curl -fsS "$base/readyz" | grep -q '"ready"' || fail "/readyz is not ready"
curl -fsS -H 'Accept: text/html' "$base/" | grep -q '/static/kith.css' || fail "the home page does not link its CSS"
css_type="$(curl -fsS -o "$work/kith.css" -w '%{content_type}' "$base/static/kith.css")" || fail "/static/kith.css failed"
case "$css_type" in text/css*) ;; *) fail "/static/kith.css answered $css_type" ;; esac
cmp -s "$work/kith.css" "$OLDPWD/static/kith.css" || fail "the installed CSS differs from static/kith.css"
echo "wheel check: installed wheel serves /, /static/kith.css and /readyz from an empty directory"
