#!/usr/bin/env bash
# What every node of an lmgan Ray cluster runs, in one place: cluster.yaml (AWS) and
# cluster/onprem.yaml (your own machines over SSH) call it from their setup and start commands.
#
#   node.sh setup          every node: the project installed, ~/.lmgan/env.sh written, sourced by ~/.bashrc
#   node.sh head-setup     the head: a PostgreSQL cluster for MLflow, MLflow's basic-auth config
#   node.sh start-head     the head: Ray (token auth, dashboard on loopback), then PostgreSQL + MLflow
#   node.sh start-worker   a worker: Ray, joined to the head at $RAY_HEAD_IP
#
# The files it reads arrive through the cluster file's file_mounts: the project at ~/lmgan, the
# Ray token at ~/ray_auth_token, ~/.lmgan-cluster/cluster.env (MLFLOW_TRACKING_USERNAME/PASSWORD
# and the optional settings below). Nothing here needs root: PostgreSQL and MLflow run as the
# cluster's user, with their data in ~/.lmgan. Optional settings in cluster.env:
#   LMGAN_ENV=PATH      the Python environment lmgan runs in, at the same path on every node
#                       (created with `python3 -m venv` where missing); default: the python on PATH
#   LMGAN_INSTALL=0     LMGAN_ENV already has lmgan and its dependencies: install nothing
#   LMGAN_CACHE=PATH    lmgan's cache (pretrained weights, real-data statistics); on a shared disk
#                       every node finds what one node fetched
#   LMGAN_ARTIFACTS=URI where the MLflow server keeps artifacts (s3://BUCKET/mlflow; default ~/.lmgan/mlartifacts)
set -euo pipefail

PROJECT=$HOME/lmgan
STATE=$HOME/.lmgan
SECRETS=$HOME/.lmgan-cluster/cluster.env
TOKEN=$HOME/ray_auth_token
PGDATA=$STATE/postgres
PGSOCK=$STATE/pg                     # PostgreSQL listens on this Unix socket only, no TCP port
MLFLOW_PORT=5000

die() { echo "lmgan node.sh: $*" >&2; exit 1; }

load_settings() {
    [ -r "$SECRETS" ] || die "$SECRETS is missing: write ~/.lmgan/cluster/cluster.env on your machine (docs/cluster.md)"
    set -a; . "$SECRETS"; set +a
}

# The address this node was reached at: the one the cluster file names (head_ip / worker_ips) when
# `ray up` or the autoscaler came in over SSH, which is the address Ray must use on a machine with
# several; else (a container on AWS, entered with `docker exec`) the machine's first address.
ssh_ip() { set -- ${SSH_CONNECTION:-}; echo "${3:-}"; }
node_ip() { local ip; ip=$(ssh_ip); echo "${ip:-$(hostname -I | awk '{print $1}')}"; }
ip_option() { local ip; ip=$(ssh_ip); [ -z "$ip" ] || echo "--node-ip-address=$ip"; }

# Whether an address belongs to this machine: a worker on the head's own machine must not run
# `ray stop`, which ends every Ray process of the user, the head's included.
is_local() {
    case "$1" in 127.*|localhost) return 0 ;; esac
    hostname -I | tr ' ' '\n' | grep -qxF "$1"
}

pg_bin() {
    local found
    found=$(command -v initdb || ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)
    [ -n "$found" ] && dirname "$(readlink -f "$found")"    # the folder that has psql and pg_ctl too
}

raise_open_files() { ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"; }

setup() {
    load_settings
    local py=python
    if [ -n "${LMGAN_ENV:-}" ]; then
        [ -x "$LMGAN_ENV/bin/python" ] || python3 -m venv "$LMGAN_ENV"
        py=$LMGAN_ENV/bin/python
    fi
    if [ "${LMGAN_INSTALL:-1}" != 0 ]; then
        # pyproject.toml is the one place dependencies are declared (torch, ray[tune], mlflow[auth],
        # psycopg, optuna, ...)
        "$py" -m pip install -q -e "$PROJECT"
    fi
    "$py" -c "import lmgan" 2>/dev/null || die "lmgan does not import with $py (LMGAN_ENV=${LMGAN_ENV:-unset}, LMGAN_INSTALL=${LMGAN_INSTALL:-1})"
    mkdir -p "$STATE"
    # Ray sources ~/.bashrc before every command it runs (setup, start, `ray exec`), so this file
    # is how the environment reaches `ray start` and, through it, every trial.
    {
        echo "export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=$TOKEN"
        # Ray's sockets and logs per user: a machine other people also run Ray on keeps them apart
        echo "export RAY_TMPDIR=/tmp/ray-$(id -un)"
        echo "export LMGAN_DATA=$PROJECT/data"
        [ -n "${LMGAN_ENV:-}" ] && echo "export PATH=$LMGAN_ENV/bin:\$PATH"
        echo "set -a; . $SECRETS; set +a"
    } > "$STATE/env.sh.tmp"
    # the head's tracking URI, written by head-setup, survives a re-run of setup
    grep -s '^export LMGAN_TRACKING_URI=' "$STATE/env.sh" >> "$STATE/env.sh.tmp" || true
    mv "$STATE/env.sh.tmp" "$STATE/env.sh"
    grep -qs 'lmgan/env.sh' "$HOME/.bashrc" || echo ". $STATE/env.sh" >> "$HOME/.bashrc"
}

head_setup() {
    load_settings
    local bin
    bin=$(pg_bin) || true
    if [ -z "$bin" ]; then
        if command -v apt-get >/dev/null && sudo -n true 2>/dev/null; then
            sudo apt-get update -qq
            sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql > /dev/null
            bin=$(pg_bin) || true
        fi
        [ -n "$bin" ] || die "PostgreSQL's server programs (initdb) are not on the head: install PostgreSQL (Debian/Ubuntu: apt-get install postgresql)"
    fi
    # A database cluster of the cluster's own user: peer authentication on a private socket
    # folder, no TCP, no password exists.
    mkdir -p -m 700 "$PGSOCK"
    [ -f "$PGDATA/PG_VERSION" ] || "$bin/initdb" -D "$PGDATA" -U "$(id -un)" -E UTF8 --locale=C --auth-local=peer --auth-host=reject > "$STATE/initdb.log"
    start_postgres "$bin"
    for db in mlflow mlflow_auth; do
        "$bin/psql" -h "$PGSOCK" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$db'" | grep -q 1 \
            || "$bin/createdb" -h "$PGSOCK" "$db"
    done
    # MLflow's basic-auth app keeps its users in PostgreSQL too; the admin's name and password come
    # from cluster.env when the server first starts.
    printf '%s\n' '[mlflow]' 'default_permission = READ' \
        "database_uri = postgresql+psycopg://$(id -un)@/mlflow_auth?host=$PGSOCK" \
        'authorization_function = mlflow.server.auth:authenticate_request_basic_auth' > "$STATE/basic_auth.ini"
    # The key Flask signs the auth app's CSRF tokens with: made once, on the head, never copied.
    [ -s "$STATE/flask_secret" ] || (umask 077; python3 -c "import secrets; print(secrets.token_hex(32))" > "$STATE/flask_secret")
    # The sweep driver runs here and passes this URI to the trials (--tracking-uri).
    sed -i '/^export LMGAN_TRACKING_URI=/d' "$STATE/env.sh"
    echo "export LMGAN_TRACKING_URI=http://$(node_ip):$MLFLOW_PORT" >> "$STATE/env.sh"
}

start_postgres() {
    local bin=$1
    "$bin/pg_ctl" -D "$PGDATA" status > /dev/null 2>&1 && return 0
    "$bin/pg_ctl" -D "$PGDATA" -l "$STATE/postgres.log" -w -o "-k $PGSOCK -c listen_addresses=''" start > /dev/null
}

# MLflow on PostgreSQL, for as long as this node's Ray head runs: a watcher stops both when the
# head's GCS is gone (`ray stop`, which `ray down` runs), so nothing outlives the cluster.
start_mlflow() {
    local bin pg
    bin=$(pg_bin) || die "PostgreSQL is not installed on the head (run node.sh head-setup)"
    if [ -f "$STATE/mlflow.pgid" ]; then   # a previous `ray up`'s server: replaced
        pg=$(cat "$STATE/mlflow.pgid")
        kill -- "-$pg" 2>/dev/null || true
        for _ in $(seq 30); do kill -0 -- "-$pg" 2>/dev/null || break; sleep 1; done
    fi
    start_postgres "$bin"
    setsid -f bash -c '
        echo $$ > "$0/mlflow.pgid"; cd "$0"
        MLFLOW_AUTH_CONFIG_PATH=$0/basic_auth.ini \
        MLFLOW_AUTH_ADMIN_USERNAME="$MLFLOW_TRACKING_USERNAME" \
        MLFLOW_AUTH_ADMIN_PASSWORD="$MLFLOW_TRACKING_PASSWORD" \
        MLFLOW_FLASK_SERVER_SECRET_KEY="$(cat "$0/flask_secret")" \
        mlflow server --app-name basic-auth \
            --backend-store-uri "postgresql+psycopg://$(id -un)@/mlflow?host=$1" \
            --serve-artifacts --artifacts-destination "${LMGAN_ARTIFACTS:-$0/mlartifacts}" \
            --host 0.0.0.0 --port "$2" >> "$0/mlflow.log" 2>&1 < /dev/null &
        server=$!
        while kill -0 $server 2>/dev/null && pgrep -u "$(id -u)" -x gcs_server > /dev/null; do sleep 2; done
        trap "" TERM; kill -TERM -- -$$ 2>/dev/null     # the server and its workers, not this watcher
        "$3/pg_ctl" -D "$0/postgres" -m fast stop > /dev/null 2>&1; rm -f "$0/mlflow.pgid"
    ' "$STATE" "$PGSOCK" "$MLFLOW_PORT" "$bin"
    for _ in $(seq 90); do
        python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$MLFLOW_PORT/health', timeout=2)" 2>/dev/null && return 0
        sleep 2
    done
    echo "MLflow did not start; $STATE/mlflow.log:" >&2; tail -n 40 "$STATE/mlflow.log" >&2; exit 1
}

start_head() {
    ray stop > /dev/null
    raise_open_files
    ray start --head --port=6379 $(ip_option) \
        --autoscaling-config="$HOME/ray_bootstrap_config.yaml" \
        --dashboard-host=127.0.0.1 --disable-usage-stats "$@"
    start_mlflow
}

start_worker() {
    [ -n "${RAY_HEAD_IP:-}" ] || die "RAY_HEAD_IP is not set (Ray sets it for worker_start_ray_commands)"
    is_local "$RAY_HEAD_IP" || ray stop > /dev/null
    raise_open_files
    # exported before `ray start`, so that every trial process inherits it
    export LMGAN_TRACKING_URI=http://$RAY_HEAD_IP:$MLFLOW_PORT
    ray start --address="$RAY_HEAD_IP:6379" $(ip_option) --disable-usage-stats "$@"
}

case "${1:-}" in
    setup) setup ;;
    head-setup) head_setup ;;
    start-head) shift; load_settings; start_head "$@" ;;
    start-worker) shift; load_settings; start_worker "$@" ;;
    *) die "usage: node.sh setup | head-setup | start-head [RAY START OPTIONS] | start-worker [RAY START OPTIONS]" ;;
esac
