"""Reads one lake table with PyIceberg through the REST catalog and prints figures as JSON.

Used by test/sinks/outside-readers.test.ts as an outside reader of the tables lakestream writes.
Usage: pyiceberg-read.py <namespace> <table>; settings from the same environment variables as lakestream.
"""
import json
import os
import sys

import pyarrow.compute as pc
from pyiceberg.catalog.rest import RestCatalog

namespace, name = sys.argv[1], sys.argv[2]
catalog = RestCatalog(
    "lake",
    uri=os.environ.get("ICEBERG_CATALOG_URL", "http://127.0.0.1:19120/iceberg"),
    warehouse=os.environ.get("ICEBERG_WAREHOUSE", "lake"),
    **{
        "s3.endpoint": os.environ.get("S3_ENDPOINT", "http://127.0.0.1:9000"),
        "s3.access-key-id": os.environ.get("S3_ACCESS_KEY_ID", "minioadmin"),
        "s3.secret-access-key": os.environ.get("S3_SECRET_ACCESS_KEY", "minioadmin"),
        "s3.region": os.environ.get("S3_REGION", "us-east-1"),
        "s3.path-style-access": "true",
    },
)
table = catalog.load_table((namespace, name))
data = table.scan().to_arrow()
snapshot = table.current_snapshot()
print(
    json.dumps(
        {
            "rows": data.num_rows,
            "users": pc.sum(data["user_id"]).as_py() or 0,
            "amount": round(pc.sum(data["amount"]).as_py() or 0.0, 2),
            "days": len(pc.unique(data["dt"])),
            "types": {field.name: str(field.field_type) for field in table.schema().fields},
            "offsets": (snapshot.summary.additional_properties if snapshot else {}).get("lakestream.kafka.offsets", "{}"),
        }
    )
)
