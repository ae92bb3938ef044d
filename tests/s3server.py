"""An S3-compatible server on loopback for the remote-output tests: moto's server mode."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# What a worker would have in its environment; moto takes any credentials.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
               "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    """A port nothing listens on now, on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def moto_s3(bucket: str) -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 with one bucket, the credentials in this process's
    environment meanwhile; yields the endpoint URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    saved = {k: os.environ.get(k) for k in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        s3(endpoint).mkdir(bucket)
        yield endpoint
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()


def s3(endpoint: str) -> Any:
    """A reader's own S3 file system (no listings cached from earlier reads)."""
    import s3fs

    return s3fs.S3FileSystem(endpoint_url=endpoint, key=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                             secret=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                             skip_instance_cache=True)


def storage_options(endpoint: str) -> dict[str, str]:
    """pandas' storage_options for the server."""
    return {"endpoint_url": endpoint, "key": CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "secret": CREDENTIALS["AWS_SECRET_ACCESS_KEY"]}


def duckdb_rows(endpoint: str, url: str, table: str) -> dict[str, int]:
    """Rows per store of every store's export of a table under an output URL, as DuckDB
    reads them through s3fs (its httpfs extension would need a download)."""
    import duckdb

    con = duckdb.connect()
    con.register_filesystem(s3(endpoint))
    rows = con.sql(f"SELECT source, count(*) FROM read_parquet('{url}/exports/source=*/"
                   f"{table}.parquet', hive_partitioning = true) GROUP BY source").fetchall()
    con.close()
    return dict(rows)
