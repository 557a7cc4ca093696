"""Reads one lake table with Apache Spark through the REST catalog and prints figures as JSON.

Used by test/sinks/outside-readers.test.ts as an outside reader of the tables lakestream writes: a
local Spark session (one core, no UI) with the Iceberg REST catalog `lake`, the Iceberg runtime and
AWS bundle jars from the cache (scripts/bootstrap.sh downloads them; no Ivy resolution at run time).
Usage: spark-read.py <namespace> <table>; settings from the same environment variables as lakestream.
Timings (session start, read) and the driver JVM's peak RSS go to stderr.
"""
import glob
import json
import os
import sys
import time

from pyspark.sql import SparkSession

namespace, name = sys.argv[1], sys.argv[2]
cache = os.environ.get("LAKESTREAM_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "lakestream")
jar_dir = os.environ.get("LAKESTREAM_SPARK_JARS", os.path.join(cache, "spark-jars"))
jars = sorted(glob.glob(os.path.join(jar_dir, "iceberg-spark-runtime-*.jar")) + glob.glob(os.path.join(jar_dir, "iceberg-aws-bundle-*.jar")))
if len(jars) != 2:
    sys.exit(f"spark-read: expected the Iceberg Spark runtime and AWS bundle jars in {jar_dir}, found {jars or 'none'}: run scripts/bootstrap.sh")

# The driver binds to the loopback only (Spark otherwise picks the first interface's address).
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
catalog = "spark.sql.catalog.lake"
started = time.monotonic()
spark = (
    SparkSession.builder.master("local[1]")
    .appName("lakestream-spark-read")
    .config("spark.driver.memory", os.environ.get("SPARK_DRIVER_MEMORY", "512m"))
    .config("spark.ui.enabled", "false")
    .config("spark.ui.showConsoleProgress", "false")
    # a short read: C1 only and the serial GC start the JVM and JIT the reader in about half the time
    .config("spark.driver.extraJavaOptions", os.environ.get("SPARK_DRIVER_JAVA_OPTIONS", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"))
    .config("spark.driver.host", "127.0.0.1")
    .config("spark.driver.bindAddress", "127.0.0.1")
    .config("spark.sql.shuffle.partitions", "1")
    .config("spark.jars", ",".join(jars))
    .config(catalog, "org.apache.iceberg.spark.SparkCatalog")
    .config(f"{catalog}.type", "rest")
    .config(f"{catalog}.uri", os.environ.get("ICEBERG_CATALOG_URL", "http://127.0.0.1:19120/iceberg"))
    .config(f"{catalog}.warehouse", os.environ.get("ICEBERG_WAREHOUSE", "lake"))
    .config(f"{catalog}.io-impl", "org.apache.iceberg.aws.s3.S3FileIO")
    .config(f"{catalog}.s3.endpoint", os.environ.get("S3_ENDPOINT", "http://127.0.0.1:9000"))
    .config(f"{catalog}.s3.path-style-access", "true")
    .config(f"{catalog}.s3.access-key-id", os.environ.get("S3_ACCESS_KEY_ID", "minioadmin"))
    .config(f"{catalog}.s3.secret-access-key", os.environ.get("S3_SECRET_ACCESS_KEY", "minioadmin"))
    .config(f"{catalog}.client.region", os.environ.get("S3_REGION", "us-east-1"))
    .getOrCreate()
)
spark.sparkContext.setLogLevel("ERROR")
session_seconds = time.monotonic() - started

started = time.monotonic()
quote = lambda part: "`" + part.replace("`", "``") + "`"
table = ".".join(["lake", *map(quote, namespace.split(".")), quote(name)])
frame = spark.table(table)
figures = frame.selectExpr(
    "count(*) AS rows",
    "coalesce(sum(user_id), 0) AS users",
    "coalesce(sum(amount), 0D) AS amount",
    "count(DISTINCT dt) AS days",
).first()
# the current snapshot: the newest made current among the current one's ancestors
snapshot = spark.sql(
    f"SELECT s.summary FROM {table}.snapshots s JOIN {table}.history h ON s.snapshot_id = h.snapshot_id"
    " WHERE h.is_current_ancestor ORDER BY h.made_current_at DESC LIMIT 1"
).first()
read_seconds = time.monotonic() - started
peak_rss = "?"
try:  # the driver JVM is the gateway process pyspark launched (spark-submit execs java)
    with open(f"/proc/{spark.sparkContext._gateway.proc.pid}/status") as status:
        peak_rss = f"{int(next(line.split()[1] for line in status if line.startswith('VmHWM:'))) // 1024} MiB"
except (AttributeError, OSError, StopIteration, ValueError):
    pass
print(
    json.dumps(
        {
            "rows": figures["rows"],
            "users": figures["users"],
            "amount": round(figures["amount"], 2),
            "days": figures["days"],
            "types": {field.name: field.dataType.simpleString() for field in frame.schema.fields},
            "offsets": ((snapshot["summary"] or {}) if snapshot else {}).get("lakestream.kafka.offsets", "{}"),
        }
    )
)
print(f"spark-read: session started in {session_seconds:.1f} s, read in {read_seconds:.1f} s, driver peak RSS {peak_rss}", file=sys.stderr)
spark.stop()
