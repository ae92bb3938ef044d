"""Reading back what a file holds, decoded: Parquet and Arrow compress their pages, so a
byte scan alone would miss a value in them (the PII and erasure tests)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def decoded_texts(path: Path) -> list[str]:
    """Every value, key-value metadata entry and column statistic of a Parquet or Arrow
    file, as text; nothing for other files."""
    texts: list[str] = []
    if path.suffix == ".parquet":
        meta = pq.read_metadata(path)
        texts += [repr(meta.metadata), repr(pq.read_schema(path).metadata)]
        for g in range(meta.num_row_groups):
            for c in range(meta.num_columns):
                stats = meta.row_group(g).column(c).statistics
                if stats is not None and stats.has_min_max:
                    texts += [str(stats.min), str(stats.max)]
        table = pq.read_table(path)
    elif path.suffix == ".arrow":
        with pa.memory_map(str(path)) as source:
            table = pa.ipc.open_file(source).read_all()
    else:
        return texts
    texts.append(repr(table.schema.metadata))
    texts += [str(v) for column in table.columns for v in column.to_pylist()]
    return texts
