"""Parquet exports for analysts: one file per entity, replaced atomically."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from transform.schema import EXTRA_COL, Entity


def export_schema(entity: Entity) -> pa.Schema:
    """The exported columns: public attributes plus `extra`; never secrets."""
    return entity.arrow_schema().append(pa.field(EXTRA_COL, pa.string()))


def write_export(entity: Entity, batches: Iterable[pa.RecordBatch], exports_dir: Path,
                 before_rename: Callable[[], None] | None = None) -> Path:
    """Streams batches to `<exports_dir>/<table>.parquet` via a temporary file and rename."""
    exports_dir.mkdir(parents=True, exist_ok=True)
    final = exports_dir / f"{entity.table}.parquet"
    tmp = exports_dir / f".{entity.table}.parquet.tmp"
    schema = export_schema(entity)
    with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for batch in batches:
            writer.write_batch(batch)
    with tmp.open("rb") as fh:
        os.fsync(fh.fileno())
    if before_rename is not None:
        before_rename()
    tmp.replace(final)
    return final
