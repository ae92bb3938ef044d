"""Run-scoped staging on local disk: the rows a run will write, before any write.

Staging lets the guards (delete ratio, fault ratio) look at the whole run before the
target changes, while memory stays bounded: each batch goes to its own Parquet part.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from magsync.transform.schema import (
    EXTRA_COL,
    HASH_COL,
    KEY_COL,
    LINE_COL,
    RAW_DIGEST_COL,
    SOURCE_COL,
    Entity,
)

ACTION_COL = "_action"


def staged_schema(entity: Entity, *, with_secrets: bool) -> pa.Schema:
    """The Arrow schema of an entity's staged rows."""
    return pa.schema([
        pa.field(KEY_COL, pa.string()),
        pa.field(HASH_COL, pa.int64()),
        pa.field(ACTION_COL, pa.string()),
        *entity.arrow_schema(with_secrets=with_secrets),
        pa.field(EXTRA_COL, pa.string()),
        pa.field(SOURCE_COL, pa.string()),
        pa.field(LINE_COL, pa.int64()),
        pa.field(RAW_DIGEST_COL, pa.int64()),
    ])


# Rows found unchanged whose stored raw digest is missing or stale: not changes, so kept
# apart from the parts (which the merge, the exports and the history read as the run's
# changes); the merge sets their raw digest only.
DIGESTS_SCHEMA = pa.schema([pa.field(KEY_COL, pa.string()), pa.field(HASH_COL, pa.int64()),
                            pa.field(RAW_DIGEST_COL, pa.int64())])


class Staging:
    """Parquet parts per entity under one run's staging folder."""

    def __init__(self, root: Path, *, with_secrets: bool = False) -> None:
        self.root = root
        self.with_secrets = with_secrets
        self._parts: dict[str, int] = {}
        self.root.mkdir(parents=True, exist_ok=True)

    def add(self, entity: Entity, frame: pd.DataFrame, actions: pd.Series) -> None:
        """Stages rows to write, with their planned action."""
        if frame.empty:
            return
        schema = staged_schema(entity, with_secrets=self.with_secrets)
        out = frame.assign(**{ACTION_COL: actions.to_numpy()})
        for name in schema.names:
            if name not in out.columns:
                out[name] = None
        table = pa.Table.from_pandas(out[schema.names], schema=schema, preserve_index=False)
        n = self._parts.get(entity.name, 0) + 1
        self._parts[entity.name] = n
        folder = self.root / entity.name
        folder.mkdir(exist_ok=True)
        # LZ4: a part is written once and read two or three times (merge, export)
        pq.write_table(table, folder / f"part-{n:06d}.parquet", compression="lz4")

    def parts(self, entity: Entity, columns: list[str] | None = None) -> Iterator[pa.Table]:
        """The staged parts of `entity` (all columns, or the given ones), in staging
        order."""
        folder = self.root / entity.name
        for path in sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []:
            yield pq.read_table(path, columns=columns)

    def add_digests(self, entity: Entity, frame: pd.DataFrame) -> None:
        """Puts aside unchanged rows (record_key, row_hash, raw_digest) whose raw digest
        the target must learn."""
        if frame.empty:
            return
        table = pa.Table.from_pandas(frame[DIGESTS_SCHEMA.names], schema=DIGESTS_SCHEMA,
                                     preserve_index=False)
        name = f"{entity.name}.digests"
        n = self._parts.get(name, 0) + 1
        self._parts[name] = n
        folder = self.root / name
        folder.mkdir(exist_ok=True)
        pq.write_table(table, folder / f"part-{n:06d}.parquet", compression="lz4")

    def digests(self, entity: Entity) -> pa.Table:
        """Every row put aside by `add_digests` for `entity`, in staging order."""
        folder = self.root / f"{entity.name}.digests"
        paths = sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []
        return pa.concat_tables([pq.read_table(p) for p in paths]) if paths else \
            DIGESTS_SCHEMA.empty_table()

    def remove(self) -> None:
        """Deletes the staging folder."""
        shutil.rmtree(self.root, ignore_errors=True)
