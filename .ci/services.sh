#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer on 127.0.0.1 and Chromium is installed, installing (apt, as
# root) and starting them where needed, so `make test` passes on a fresh Debian machine too.
set -euo pipefail

PG_HOST=127.0.0.1
PG_PORT=5432
REDIS_PORT=6379

log() { printf 'services: %s\n' "$*"; }

apt_install() {
    if [ "$(id -u)" != 0 ]; then
        log "cannot install $* without root; install it and run again" >&2
        exit 1
    fi
    if [ -z "${KAIROS_APT_UPDATED:-}" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        export KAIROS_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

pg_ready() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" 2>/dev/null; }
pg_trusts() { psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; }

ensure_postgres() {
    if ! command -v pg_ctlcluster >/dev/null 2>&1; then
        log "installing PostgreSQL"
        apt_install postgresql postgresql-client
    fi
    if ! pg_ready; then
        version=$(ls /etc/postgresql | sort -V | tail -n 1)
        log "starting PostgreSQL $version"
        pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
        for _ in $(seq 1 30); do pg_ready && break; sleep 1; done
    fi
    pg_ready || { log "PostgreSQL does not answer on $PG_HOST:$PG_PORT" >&2; exit 1; }
    if ! pg_trusts; then
        # A fresh Debian cluster asks for passwords over TCP; the test database trusts loopback only.
        version=$(ls /etc/postgresql | sort -V | tail -n 1)
        hba=/etc/postgresql/$version/main/pg_hba.conf
        log "trusting loopback connections in $hba"
        sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
        pg_ctlcluster --skip-systemctl-redirect "$version" main reload
        sleep 1
    fi
    pg_trusts || { log "cannot connect to PostgreSQL as postgres on $PG_HOST" >&2; exit 1; }
    if [ "$(psql -h "$PG_HOST" -U postgres -d postgres -Atqc "select 1 from pg_database where datname = 'test'")" != 1 ]; then
        psql -h "$PG_HOST" -U postgres -d postgres -qc 'create database test'
    fi
}

redis_ready() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }

ensure_redis() {
    if ! command -v redis-server >/dev/null 2>&1; then
        log "installing Redis"
        apt_install redis-server
    fi
    if ! redis_ready; then
        log "starting Redis"
        redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no
        for _ in $(seq 1 30); do redis_ready && break; sleep 0.5; done
    fi
    redis_ready || { log "Redis does not answer on 127.0.0.1:$REDIS_PORT" >&2; exit 1; }
}

ensure_chromium() {
    # The admin's browser tests drive Debian's Chromium; nothing downloads a browser at run time.
    if [ ! -x /usr/bin/chromium ]; then
        log "installing Chromium"
        apt_install chromium
    fi
}

# Arguments name what is needed (default: everything the test suite uses).
wanted=${*:-postgres redis chromium}
for service in $wanted; do
    case "$service" in
        postgres) ensure_postgres ;;
        redis) ensure_redis ;;
        chromium) ensure_chromium ;;
        *) log "unknown service $service" >&2; exit 2 ;;
    esac
done
log "ready: $wanted"
