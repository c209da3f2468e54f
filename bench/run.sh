#!/usr/bin/env bash
# Builds release binaries and prints DAARION's benchmark figures:
# start-up to healthy, idle RSS, access decisions and overhead, city WebSocket
# fan-out (embedded and NATS), messaging (posts/s, live delivery, history and
# search at a million messages, embedded and PostgreSQL; delivery to 1 000 clients), gateway vs nginx, LLM proxy vs LiteLLM,
# agent runs vs CrewAI, governance (votes/s with a live tally), the living map (snapshot at
# 10 000 entities, changes to 1 000 sockets), the fault suite (kill -9, a full disk:
# requests failed, time to recover, nothing acknowledged lost), memory (embedding throughput, the vector index at
# 10 000 and 100 000 vectors, embedded and on pgvector), and
# the web UI (JS for first paint, time to interactive, a 10 000-message room).
#
# `bench/run.sh --smoke` runs every benchmark for a moment on debug builds,
# with no figure worth reading: scripts/test.sh runs it so that a benchmark
# that stops working fails the build (LiteLLM and the soak are left out).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/daarion/target}"
smoke=0
[ "${1:-}" = "--smoke" ] && smoke=1

command -v wrk >/dev/null && command -v nginx >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx >/dev/null
}
ulimit -n "$(ulimit -Hn)"
nats_url="${NATS_URL:-nats://127.0.0.1:4222}"
nats_up() { (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; }
# The local embedding models (scripts/test.sh installs them there).
models="${DAARION_MODELS_DIR:-$HOME/.cache/daarion/models}"
# The web UI's benchmark drives Chromium with the UI's own playwright-core.
[ -d web/node_modules ] || (cd web && npm ci --no-audit --no-fund --loglevel=error)

if [ "$smoke" = 1 ]; then
  cargo build -q --locked -p daarion -p daarion-bench
  bin="$CARGO_TARGET_DIR/debug"
  "$bin/startup" --binary "$bin/daarion" --runs 1
  "$bin/access" --binary "$bin/daarion" --decisions 1000 --requests 50
  "$bin/fanout" --binary "$bin/daarion" --clients 5 --messages 10 --label embedded
  "$bin/messaging" --binary "$bin/daarion" --posts 20 --posters 2 --clients 3 --seed 500 --reads 5
  "$bin/messaging" --binary "$bin/daarion" --posts 20 --posters 2 --clients 3 --seed 500 --reads 5 --otlp
  nats_up && "$bin/fanout" --binary "$bin/daarion" --clients 5 --messages 10 --label nats --nats "$nats_url"
  if nats_up && (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
    "$bin/messaging" --binary "$bin/daarion" --posts 20 --posters 2 --clients 3 --seed 500 --reads 5 \
      --postgres "${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}" --nats "$nats_url"
  fi
  "$bin/gateway" --binary "$bin/daarion" --seconds 1 --repeat 1 --sockets 50 --connections 16
  "$bin/llm-proxy" --binary "$bin/daarion" --requests 20 --seconds 1 --repeat 1 --soak-seconds 0
  "$bin/agents" --binary "$bin/daarion" --runs 10 --concurrency 1,4
  "$bin/governance" --binary "$bin/daarion" --voters 3 --votes 30 --concurrency 2
  "$bin/living-map" --binary "$bin/daarion" --entities 500 --snapshots 2 --clients 5 --messages 10 --rate 20
  "$bin/faults" --binary "$bin/daarion" --settle 2 --kills 1 --full 2
  "$bin/faults" --binary "$bin/daarion" --distributed --settle 1 --down 1
  "$bin/memory" --models "$models" --vectors 5000 --queries 20 --encoder-chunks 4 \
    ${DAARION_PGVECTOR_URL:+--pgvector "$DAARION_PGVECTOR_URL"}
  node bench/web/ui.mjs --binary "$bin/daarion" --messages 200 --runs 1
  exit 0
fi

cargo build --release --locked -p daarion -p daarion-bench
bin="$CARGO_TARGET_DIR/release"
"$bin/startup" --binary "$bin/daarion" --runs "${RUNS:-10}"
"$bin/access" --binary "$bin/daarion"
for clients in 10 100 500; do
  "$bin/fanout" --binary "$bin/daarion" --clients "$clients" --messages "${MESSAGES:-500}" --label embedded
done
"$bin/messaging" --binary "$bin/daarion" --seed "${SEED:-1000000}"
# The same posting and delivery with traces sent to a (fake) collector.
"$bin/messaging" --binary "$bin/daarion" --seed 1000 --reads 10 --otlp
# Delivery to a thousand followers (posting paced, history barely seeded).
"$bin/messaging" --binary "$bin/daarion" --clients 1000 --posts 1000 --rate 50 --seed 1000 --reads 10
# Posting by 128 people at once: what group commit does with a crowd.
"$bin/messaging" --binary "$bin/daarion" --posters 128 --posts 8000 --clients 10 --seed 1000 --reads 10
if (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
  pg="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
  "$bin/messaging" --binary "$bin/daarion" --seed "${SEED:-1000000}" --postgres "$pg"
  "$bin/messaging" --binary "$bin/daarion" --posters 128 --posts 8000 --clients 10 --seed 1000 \
    --reads 10 --postgres "$pg"
  if nats_up; then
    # Distributed: a process per service, two messaging replicas, posters
    # and followers split between them (deliveries cross NATS).
    "$bin/messaging" --binary "$bin/daarion" --posts 2000 --clients 100 --rate 200 --seed 1000 \
      --reads 10 --postgres "$pg" --nats "$nats_url"
    "$bin/messaging" --binary "$bin/daarion" --posts 1000 --clients 1000 --rate 50 --seed 1000 \
      --reads 10 --postgres "$pg" --nats "$nats_url"
  fi
fi
"$bin/gateway" --binary "$bin/daarion" --seconds "${SECONDS_PER_RUN:-10}"
# Beside pgvector when scripts/test.sh's PostgreSQL with pgvector runs.
pgvector="${DAARION_PGVECTOR_URL:-postgres://postgres@127.0.0.1:5433/postgres}"
if (exec 3<>/dev/tcp/127.0.0.1/5433) 2>/dev/null || [ -n "${DAARION_PGVECTOR_URL:-}" ]; then
  "$bin/memory" --models "$models" --pgvector "$pgvector"
else
  "$bin/memory" --models "$models"
fi
node bench/web/ui.mjs --binary "$bin/daarion" --messages "${ROOM_MESSAGES:-10000}" --runs "${RUNS:-5}"
if nats_up; then
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
# CrewAI, from PyPI into a virtualenv of its own, as the agent runtime's peer.
crewai_venv="$HOME/.cache/daarion/crewai"
if ! "$crewai_venv/bin/python" -c "import crewai" >/dev/null 2>&1; then
  python3 -m venv "$crewai_venv"
  "$crewai_venv/bin/pip" install -q crewai
fi
"$bin/agents" --binary "$bin/daarion" --crewai "$crewai_venv/bin/python"
"$bin/governance" --binary "$bin/daarion"
"$bin/living-map" --binary "$bin/daarion"
"$bin/faults" --binary "$bin/daarion"
"$bin/faults" --binary "$bin/daarion" --distributed
