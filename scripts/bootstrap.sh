#!/usr/bin/env bash
# Installs what lakestream needs on a fresh Debian/Ubuntu machine: OS packages, pnpm and the
# project's dependencies (librdkafka is built from source against the system's libraries).
# Safe to re-run; each step is skipped when already done. The servers themselves are installed
# by `pnpm run stack:up` into ~/.cache/lakestream. Chromium is for the dashboard's browser tests,
# Prometheus for the test of the shipped scrape config and Grafana queries, wrk for bench:gateway,
# PostgreSQL for the product denylist when DENYLIST_STORE=postgres and the Iceberg catalog's state,
# PyIceberg and PySpark (in a venv in the cache) with the Iceberg Spark runtime jars for reading the
# lake from Python and Spark.
set -euo pipefail
cd "$(dirname "$0")/.."

PNPM_VERSION=10.34.9
PYICEBERG_VERSION=0.12.0
PYARROW_VERSION=26.0.1
# Spark 3.5 runs on the default Java 17; Iceberg's runtime for it and its AWS bundle (S3FileIO) are
# of one Iceberg version, downloaded once into the cache and checked against Maven Central's .sha1.
PYSPARK_VERSION=3.5.9
ICEBERG_VERSION=1.10.1
SPARK_JARS=("org.apache.iceberg:iceberg-spark-runtime-3.5_2.12:$ICEBERG_VERSION" "org.apache.iceberg:iceberg-aws-bundle:$ICEBERG_VERSION")
MAVEN_CENTRAL=https://repo1.maven.org/maven2
DEBIAN_PACKAGES=(zlib1g-dev libssl-dev libsasl2-dev libzstd-dev liblz4-dev redis-server redis-tools postgresql build-essential python3-pip python3-venv openssl curl chromium prometheus wrk)

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
CACHE_DIR="${LAKESTREAM_CACHE_DIR:-$HOME/.cache/lakestream}"
PYTHON_ENV="$CACHE_DIR/python"
if ! "$PYTHON_ENV/bin/python" -c "import pyiceberg, pyarrow, sys; sys.exit(0 if (pyiceberg.__version__, pyarrow.__version__) == ('$PYICEBERG_VERSION', '$PYARROW_VERSION') else 1)" 2>/dev/null; then
  step "installing PyIceberg $PYICEBERG_VERSION into $PYTHON_ENV"
  python3 -m venv "$PYTHON_ENV"
  "$PYTHON_ENV/bin/pip" install -q --disable-pip-version-check "pyiceberg[pyarrow]==$PYICEBERG_VERSION" "pyarrow==$PYARROW_VERSION"
fi

# PySpark, a second outside reader (scripts/spark-read.py), in the same venv (~320 MB: Spark's jars
# come inside the package).
if ! "$PYTHON_ENV/bin/python" -c "import pyspark, sys; sys.exit(0 if pyspark.__version__ == '$PYSPARK_VERSION' else 1)" 2>/dev/null; then
  step "installing PySpark $PYSPARK_VERSION into $PYTHON_ENV"
  "$PYTHON_ENV/bin/pip" install -q --disable-pip-version-check "pyspark==$PYSPARK_VERSION"
fi

# The Iceberg jars Spark loads with spark.jars (no Ivy resolution when a session starts). A jar whose
# .sha1 matches is kept; other versions are removed so the reader finds exactly these two.
SPARK_JAR_DIR="$CACHE_DIR/spark-jars"
mkdir -p "$SPARK_JAR_DIR"
wanted=()
for coordinate in "${SPARK_JARS[@]}"; do
  IFS=: read -r group artifact version <<<"$coordinate"
  jar="$artifact-$version.jar"
  wanted+=("$jar")
  if [ -f "$SPARK_JAR_DIR/$jar" ] && [ -f "$SPARK_JAR_DIR/$jar.sha1" ] && \
     [ "$(sha1sum "$SPARK_JAR_DIR/$jar" | cut -d' ' -f1)" = "$(cut -c1-40 "$SPARK_JAR_DIR/$jar.sha1")" ]; then
    continue
  fi
  step "downloading $coordinate from Maven Central into $SPARK_JAR_DIR"
  url="$MAVEN_CENTRAL/${group//.//}/$artifact/$version/$jar"
  curl -fsSL --retry 3 -o "$SPARK_JAR_DIR/$jar.part" "$url"
  expected="$(curl -fsSL --retry 3 "$url.sha1" | cut -c1-40)"
  actual="$(sha1sum "$SPARK_JAR_DIR/$jar.part" | cut -d' ' -f1)"
  if [ "$expected" != "$actual" ]; then
    rm -f "$SPARK_JAR_DIR/$jar.part"
    echo "bootstrap: $jar has SHA-1 $actual, Maven Central says $expected" >&2
    exit 1
  fi
  printf '%s\n' "$expected" >"$SPARK_JAR_DIR/$jar.sha1"
  mv "$SPARK_JAR_DIR/$jar.part" "$SPARK_JAR_DIR/$jar"
done
for file in "$SPARK_JAR_DIR"/*.jar; do
  [ -e "$file" ] || continue
  case " ${wanted[*]} " in *" $(basename "$file") "*) ;; *) rm -f "$file" "$file.sha1" ;; esac
done
