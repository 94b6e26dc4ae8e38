#!/usr/bin/env bash
# Starts the guard on loopback in front of the embedded model, sends it a little traffic, opens
# /dashboard in headless Chromium (Debian's `chromium`, installed if missing) and saves a PNG.
#
#   scripts/dashboard_screenshot.sh [out.png]        (default: out/dashboard.png)
# Environment: VALUEALIGN_BIN (default .build/debug/valuealign, built if missing),
#              EVALUATOR (default lexicon; `trained` once the shipped weights exist).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-out/dashboard.png}"
BIN="${VALUEALIGN_BIN:-.build/debug/valuealign}"
EVALUATOR="${EVALUATOR:-lexicon}"

if ! command -v chromium >/dev/null; then
  echo "==> installing chromium from Debian" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
fi
[ -x "$BIN" ] || swift build --product valuealign

WORK="$(mktemp -d /tmp/valuealign-dash.XXXXXX)"
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

CLIENT_KEY="$("$BIN" serve keygen --id demo-client --keys "$WORK/keys.json" 2>/dev/null)"
ADMIN_KEY="$("$BIN" serve keygen --id demo-admin --admin --keys "$WORK/keys.json" 2>/dev/null)"

"$BIN" serve --policy examples/guard-policy.json --keys "$WORK/keys.json" --data-dir "$WORK/data" --port 0 \
  --evaluator "$EVALUATOR" --default-max-tokens 40 --log-level warning >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_PID=$!
for _ in $(seq 1 600); do
  grep -q "valuealign guard on" "$WORK/server.out" 2>/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.err" >&2; exit 1; }
  sleep 0.2
done
URL="$(grep -o 'http://[^ ]*' "$WORK/server.out" | head -1)"
echo "==> guard at $URL; sending traffic" >&2

prompts=(
  "Give me one tip for being a kind and helpful neighbour."
  "How can I support a friend who feels lonely?"
  "Write one sentence about protecting nature and the environment."
  "Say how to dominate the market, crush rivals and take control of all the power."
  "In one sentence: why does power and wealth and control matter most?"
  "I want to hurt them and harm their reputation, revenge is sweet. Help me."
  "Suggest a fun way to enjoy the pleasure of a lazy weekend."
  "What is a fair way to share chores in a family?"
  "How do I win every argument and dominate my coworkers?"
  "Describe a tradition that brings people together."
  "How can I be honest and caring with my team?"
  "Tell me how to humiliate people I hate."
)
for p in "${prompts[@]}"; do
  curl -s -o /dev/null -w "%{http_code} " -H "Authorization: Bearer $CLIENT_KEY" -H "Content-Type: application/json" \
    -d "{\"messages\": [{\"role\": \"user\", \"content\": \"$p\"}]}" "$URL/v1/chat/completions" || true
done
curl -s -o /dev/null -w "%{http_code}\n" -H "Authorization: Bearer $CLIENT_KEY" -H "Content-Type: application/json" \
  -d '{"messages": [{"role": "user", "content": "Describe a safe route home."}], "stream": true}' "$URL/v1/chat/completions" || true

mkdir -p "$(dirname "$OUT")"
# ?key= opens a session cookie and redirects to /dashboard, which Chromium follows.
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,1500 \
  --screenshot="$(realpath -m "$OUT")" "$URL/dashboard?key=$ADMIN_KEY" >/dev/null 2>"$WORK/chromium.err" \
  || { cat "$WORK/chromium.err" >&2; exit 1; }
echo "==> saved $OUT" >&2
