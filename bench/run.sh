#!/usr/bin/env bash
# Builds release binaries and prints DAARION's benchmark figures:
# start-up to healthy, idle RSS, access decisions and overhead, city WebSocket
# fan-out (embedded and NATS), gateway vs nginx, LLM proxy vs LiteLLM.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/daarion/target}"
cargo build --release --locked -p daarion -p daarion-bench
bin="$CARGO_TARGET_DIR/release"
"$bin/startup" --binary "$bin/daarion" --runs "${RUNS:-10}"
"$bin/access" --binary "$bin/daarion"
for clients in 10 100 500; do
  "$bin/fanout" --binary "$bin/daarion" --clients "$clients" --messages "${MESSAGES:-500}" --label embedded
done
command -v wrk >/dev/null && command -v nginx >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx >/dev/null
}
ulimit -n "$(ulimit -Hn)"
"$bin/gateway" --binary "$bin/daarion" --seconds "${SECONDS_PER_RUN:-10}"
nats_url="${NATS_URL:-nats://127.0.0.1:4222}"
if (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; then
  for clients in 10 100 500; do
    "$bin/fanout" --binary "$bin/daarion" --clients "$clients" --messages "${MESSAGES:-500}" --label nats --nats "$nats_url"
  done
else
  echo "NATS is not running on 127.0.0.1:4222: skipped the NATS fan-out (scripts/test.sh starts it)"
fi
# LiteLLM's proxy, from PyPI into a virtualenv of its own, as the LLM proxy's
# peer. SOAK_SECONDS=0 leaves the 10-minute soak out.
litellm_venv="$HOME/.cache/daarion/litellm-venv"
if ! LITELLM_LOCAL_MODEL_COST_MAP=True "$litellm_venv/bin/litellm" --version >/dev/null 2>&1; then
  python3 -m venv "$litellm_venv" 2>/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$litellm_venv"
  }
  "$litellm_venv/bin/pip" install -q 'litellm[proxy]'
fi
"$bin/llm-proxy" --binary "$bin/daarion" --litellm "$litellm_venv/bin/litellm" \
  --seconds "${SECONDS_PER_RUN:-10}" --soak-seconds "${SOAK_SECONDS:-600}"
