#!/usr/bin/env python3
"""Reads the dataset table (DESIGN.md section 10) with the Delta Lake reader and pyarrow
from PyPI, independently of the server's own code, and prints what it found as JSON:
the table version, the log-offset markers, every data file's compression and schema
version, the columns and their types, counts per kind, and the rows.

    python scripts/read_dataset.py DATASET_DIR [--no-rows]

It exits non-zero when the table does not look as the server promises: a column
missing, a file not ZSTD, a file without `chat.schema_version`, an event id twice.
The integration test runs it (CHAT_TEST_PYTHON) and checks its rows; scripts/test
installs `deltalake` and `pyarrow` into a virtual environment for it.
"""

import collections
import json
import os
import sys

import pyarrow.parquet as pq
from deltalake import DeltaTable

COLUMNS = [
    "event_id", "kind", "message_id", "conversation", "author", "key_id", "time",
    "body", "reply_to", "mentions", "conversation_kind", "conversation_size", "day",
]
SCHEMA_VERSION_KEY = b"chat.schema_version"
MAX_LOG_PARTITIONS = 256


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    path = os.path.abspath(argv[1])
    with_rows = "--no-rows" not in argv
    dt = DeltaTable(path)
    table = dt.to_pyarrow_table()
    problems = []

    names = table.schema.names
    for column in COLUMNS:
        if column not in names:
            problems.append(f"column {column} is missing")

    files = []
    for relative in dt.file_uris():
        file_path = relative.removeprefix("file://")
        if not os.path.isabs(file_path):
            file_path = os.path.join(path, file_path)
        meta = pq.read_metadata(file_path)
        version = (meta.metadata or {}).get(SCHEMA_VERSION_KEY)
        codecs = sorted({
            meta.row_group(g).column(c).compression
            for g in range(meta.num_row_groups)
            for c in range(meta.num_columns)
        })
        if version is None:
            problems.append(f"{file_path} has no {SCHEMA_VERSION_KEY.decode()}")
        if codecs and codecs != ["ZSTD"]:
            problems.append(f"{file_path} is compressed with {codecs}, not ZSTD")
        files.append({
            "path": os.path.relpath(file_path, path),
            "rows": meta.num_rows,
            "codecs": codecs,
            "schema_version": version.decode() if version else None,
        })

    # The log offsets each commit stored, per log partition (the reader asks by app id;
    # no deployment has more than MAX_LOG_PARTITIONS partitions).
    markers = {}
    for partition in range(MAX_LOG_PARTITIONS):
        app_id = f"chat.messages-{partition}"
        offset = dt.transaction_version(app_id)
        if offset is not None:
            markers[app_id] = offset

    rows = table.to_pylist()
    ids = collections.Counter(row["event_id"] for row in rows)
    twice = sorted(i for i, n in ids.items() if n > 1)
    if twice:
        problems.append(f"event ids more than once: {twice[:10]}")

    out = {
        "version": dt.version(),
        "partition_columns": dt.metadata().partition_columns,
        "markers": markers,
        "files": files,
        "columns": {field.name: str(field.type) for field in table.schema},
        "count": table.num_rows,
        "kinds": dict(collections.Counter(row["kind"] for row in rows)),
        "problems": problems,
    }
    if with_rows:
        out["rows"] = [
            {key: (value.isoformat() if hasattr(value, "isoformat") else value)
             for key, value in row.items()}
            for row in sorted(rows, key=lambda r: r["event_id"])
        ]
    json.dump(out, sys.stdout, indent=1, default=str)
    print()
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
