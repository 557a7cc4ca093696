#!/usr/bin/env bash
# Installs what lakestream needs on a fresh Debian/Ubuntu machine: OS packages, pnpm and the
# project's dependencies (librdkafka is built from source against the system's libraries).
# Safe to re-run; each step is skipped when already done. The servers themselves are installed
# by `pnpm run stack:up` into ~/.cache/lakestream. Chromium is for the dashboard's browser tests,
# Prometheus for the test of the shipped scrape config and Grafana queries, wrk for bench:gateway,
# PostgreSQL for the product denylist when DENYLIST_STORE=postgres and the Iceberg catalog's state,
# PyIceberg (in a venv in the cache) for reading the lake from Python.
set -euo pipefail
cd "$(dirname "$0")/.."

PNPM_VERSION=10.34.9
PYICEBERG_VERSION=0.12.0
PYARROW_VERSION=26.0.1
DEBIAN_PACKAGES=(zlib1g-dev libssl-dev libsasl2-dev libzstd-dev liblz4-dev redis-server redis-tools postgresql build-essential python3-pip python3-venv openssl chromium prometheus wrk)

step() { printf '\n==> %s\n' "$*"; }

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

for tool in node java mvn go python3; do
  command -v "$tool" >/dev/null || { echo "bootstrap: $tool is required (Node 20+, Java 17+ with Maven, Go 1.24+, Python 3)" >&2; exit 1; }
done

if [ "$(pnpm --version 2>/dev/null || true)" != "$PNPM_VERSION" ]; then
  step "installing pnpm $PNPM_VERSION"
  npm install -g "pnpm@$PNPM_VERSION" >/dev/null
fi

step "installing node dependencies (first run builds librdkafka, ~2-3 min)"
# The Kafka client cannot download its prebuilt binary here; it links librdkafka dynamically
# against the Debian libraries above. node-gyp uses the installed Node headers.
export CKJS_LINKING=dynamic
[ -d /usr/include/node ] && export npm_config_nodedir=/usr
pnpm install --frozen-lockfile --reporter=append-only

# PyIceberg, an outside reader of the lake's Iceberg tables (tests and users' Python), in a venv of
# its own in the cache so the system's Python stays as it is.
PYTHON_ENV="${LAKESTREAM_CACHE_DIR:-$HOME/.cache/lakestream}/python"
if ! "$PYTHON_ENV/bin/python" -c "import pyiceberg, pyarrow, sys; sys.exit(0 if (pyiceberg.__version__, pyarrow.__version__) == ('$PYICEBERG_VERSION', '$PYARROW_VERSION') else 1)" 2>/dev/null; then
  step "installing PyIceberg $PYICEBERG_VERSION into $PYTHON_ENV"
  python3 -m venv "$PYTHON_ENV"
  "$PYTHON_ENV/bin/pip" install -q --disable-pip-version-check "pyiceberg[pyarrow]==$PYICEBERG_VERSION" "pyarrow==$PYARROW_VERSION"
fi
