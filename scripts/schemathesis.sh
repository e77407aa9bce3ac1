#!/usr/bin/env bash
# Schema-driven API fuzzing: schemathesis against the server's own
# /openapi.json, with the admin token, on loopback.
#
#   scripts/schemathesis.sh [extra schemathesis options]
#
# Installs schemathesis into .venv-fuzz/ (gitignored) on first use, builds
# the debug `ripcord` unless RIPCORD_BIN names one (a release build works
# too), serves the example policies from a fresh data dir on
# 127.0.0.1:$RIPCORD_FUZZ_PORT (default 7391) and runs every phase
# (examples, coverage, fuzzing, stateful) with the checks that matter here:
# no 5xx, and every response conforming to the documented status codes,
# content types and schemas. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv-fuzz
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'schemathesis>=4.3,<5'
fi

bin=${RIPCORD_BIN:-target/debug/ripcord}
if [ -z "${RIPCORD_BIN:-}" ]; then
  cargo build --quiet -p ripcord-cli
fi

port=${RIPCORD_FUZZ_PORT:-7391}
data=$(mktemp -d)
policies=$(mktemp -d)
cp examples/conversational-agent/policy.yaml "$policies/support-bot.yaml"
"$bin" serve --data-dir "$data" --listen "127.0.0.1:$port" --policies "$policies" \
  >"$data/serve.log" 2>&1 &
server=$!
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -rf "$data" "$policies"
}
trap cleanup EXIT

for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then break; fi
  sleep 0.1
done
token=$(cat "$data/admin.token")

"$venv/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "${RIPCORD_FUZZ_EXAMPLES:-50}" \
  --seed "${RIPCORD_FUZZ_SEED:-12}" \
  --suppress-health-check all \
  "$@"
