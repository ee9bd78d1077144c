#!/usr/bin/env bash
# Install everything and run the whole test suite against real PostgreSQL, Redis,
# an S3 server (rclone serve s3, started by the tests) and real Celery worker processes.
set -euo pipefail
cd "$(dirname "$0")"
./install.sh

# Only the tests need a browser: the dashboard's end-to-end tests drive Debian's Chromium
# (Playwright never downloads one); without root or apt they are skipped, saying why.
if [ -f frontend/package.json ] && [ ! -x /usr/bin/chromium ] \
   && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 \
    || echo "note: could not install chromium; the dashboard's browser tests will be skipped"
fi

# PostgreSQL and Redis must be running; start them where this machine knows how.
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null && command -v pg_ctlcluster >/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi
if ! (redis-cli -h 127.0.0.1 ping 2>/dev/null | grep -q PONG) && command -v redis-server >/dev/null; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
fi

.venv/bin/ruff check .
# Layer contracts ([tool.importlinter] in pyproject.toml; docs/architecture.md).
.venv/bin/lint-imports
# Static types of contracts/ and workers/engine/ ([tool.mypy] in pyproject.toml).
.venv/bin/mypy
if [ -f frontend/package.json ] && command -v npm >/dev/null 2>&1; then
  (cd frontend && npm test --silent)
fi
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
