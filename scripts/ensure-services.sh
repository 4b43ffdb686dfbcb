#!/usr/bin/env bash
# Make sure the PostgreSQL and Redis the tests use are up; start them if they are installed here but down.
# Exits non-zero (the test run fails, never skips) when either cannot be reached after that.
#   scripts/ensure-services.sh
set -u
PG_HOST=${SIMTRAIN_PG_HOST:-127.0.0.1}; PG_PORT=${SIMTRAIN_PG_PORT:-5432}
REDIS_HOST=${SIMTRAIN_REDIS_HOST:-127.0.0.1}; REDIS_PORT=${SIMTRAIN_REDIS_PORT:-6379}

pg_up() {
  if command -v pg_isready >/dev/null 2>&1; then pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; return; fi
  (exec 3<>"/dev/tcp/$PG_HOST/$PG_PORT") 2>/dev/null
}
redis_up() {
  if command -v redis-cli >/dev/null 2>&1; then [ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; return; fi
  (exec 3<>"/dev/tcp/$REDIS_HOST/$REDIS_PORT") 2>/dev/null
}

if ! pg_up && command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
if ! redis_up && command -v redis-server >/dev/null 2>&1; then
  echo "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
fi

for _ in $(seq 1 30); do
  if pg_up && redis_up; then echo "PostgreSQL and Redis are up"; exit 0; fi
  sleep 1
done
pg_up || echo "ERROR: PostgreSQL is not reachable at $PG_HOST:$PG_PORT" >&2
redis_up || echo "ERROR: Redis is not reachable at $REDIS_HOST:$REDIS_PORT" >&2
exit 1
