"""The typing contexts a target's rows were typed under, and the records a run re-types.

A row's raw digest is taken under the run's context digest C (transform/rawdigest.py): a
new NORMALISE_VERSION, other gender labels or other website codes give another C. The
target remembers, per entity, every C its stored rows may have been typed under
(`magsync_typing`); a run under another C digests each record under those earlier ones
too, and a record whose digest under one of them is its stored row's raw digest (same key)
came in with its raw values unchanged (load/raw_skip.py, `mark_raw_before`). If its typed
values changed all the same, only the typing did: its new version is `retyped` in the
history, not `updated` (the run report keeps counting it `updated`).

A full run that detected deletes typed (or skipped as unchanged) every active row, so the
earlier contexts are forgotten then; a record that faulted in that run keeps its old raw
digest, and should its raw values come back unchanged later, its new version is `updated`.
Costs nothing while the context stays the same: no earlier context, no second digest.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from magsync.load.sql_store import SqlTarget
from magsync.load.tables import TYPING


def earlier_contexts(target: SqlTarget, context: str) -> dict[str, list[str]]:
    """Per entity, the contexts its stored rows may have been typed under, other than
    `context`; none where the store predates them (a dry run does not migrate, nor create
    a SQLite file: nothing is asked of a store that does not exist)."""
    if not target.is_initialised() or not sa.inspect(target.engine).has_table(TYPING.name):
        return {}
    query = sa.select(TYPING.c.entity, TYPING.c.context).where(
        TYPING.c.source == target.source, TYPING.c.context != context).order_by(
        TYPING.c.entity, TYPING.c.context)
    with target.engine.connect() as conn:
        found: dict[str, list[str]] = {}
        for entity, earlier in conn.execute(query):
            found.setdefault(str(entity), []).append(str(earlier))
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
