"""The typing contexts a target's rows were typed under, and the records a run re-types.

A row's raw digest is taken under the run's context digest C (transform/rawdigest.py): a
new NORMALISE_VERSION, other gender labels or other website codes give another C. The
target remembers, per entity, every C its stored rows may have been typed under
(`magsync_typing`); a run under another C digests each record under those earlier ones
too, and a stored row whose raw digest is one of them received its raw values unchanged.
If its typed values changed all the same, only the typing did: its new version is
`retyped` in the history, not `updated` (the run report keeps counting it `updated`).

A full run that detected deletes typed (or skipped as unchanged) every active row, so the
earlier contexts are forgotten then; a record that faulted in that run keeps its old raw
digest, and should its raw values come back unchanged later, its new version is `updated`.
Costs nothing while the context stays the same: no earlier context, no second digest.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from magsync.load.sql_store import SqlTarget
from magsync.load.tables import TYPING
from magsync.transform.diff import KeyIndex


def earlier_contexts(target: SqlTarget, context: str) -> dict[str, list[str]]:
    """Per entity, the contexts its stored rows may have been typed under, other than
    `context`; none where the store predates them (a dry run does not migrate)."""
    if not sa.inspect(target.engine).has_table(TYPING.name):
        return {}
    query = sa.select(TYPING.c.entity, TYPING.c.context).where(
        TYPING.c.source == target.source, TYPING.c.context != context).order_by(
        TYPING.c.entity, TYPING.c.context)
    with target.engine.connect() as conn:
        found: dict[str, list[str]] = {}
        for entity, earlier in conn.execute(query):
            found.setdefault(entity, []).append(earlier)
    return found


def save_context(conn: Connection, source: str, entity: str, context: str, run_id: str,
                 now: datetime, *, forget_earlier: bool) -> None:
    """Records that `entity`'s rows are typed under `context` from this run on (in the
    merge's last transaction); `forget_earlier` when every active row was typed again."""
    mine = (TYPING.c.source == source) & (TYPING.c.entity == entity)
    gone = mine if forget_earlier else mine & (TYPING.c.context == context)
    conn.execute(sa.delete(TYPING).where(gone))
    conn.execute(sa.insert(TYPING).values(source=source, entity=entity, context=context,
                                          run_id=run_id, updated_at=now))


class RawLookup:
    """The stored rows of one entity by raw digest, for finding records received again
    with raw values unchanged under an earlier context."""

    def __init__(self, index: KeyIndex) -> None:
        known = np.flatnonzero(index.raw_known)
        self.order = known[np.argsort(index.raw[known], kind="stable")]
        self.sorted = index.raw[self.order]

    def positions(self, digests: np.ndarray) -> np.ndarray:
        """The stored row with each raw digest, or -1."""
        pos = np.full(len(digests), -1, np.int64)
        if not len(self.sorted) or not len(digests):
            return pos
        at = np.minimum(np.searchsorted(self.sorted, digests), len(self.sorted) - 1)
        hit = self.sorted[at] == digests
        pos[hit] = self.order[at[hit]]
        return pos
