"""The shape that travels from a source to the pipeline: one entity, one bounded batch."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from magsync.transform.faults import Fault
from magsync.transform.schema import Entity

# Raw parts of an address's customer identity, for sources without customer ids.
CUST_WEBSITE_COL = "_customer_website_id"
CUST_EMAIL_COL = "_customer_email"


@dataclass
class RawBatch:
    """Raw string columns named as in the schema, plus lineage, plus read faults."""

    entity: Entity
    frame: pd.DataFrame
    faults: list[Fault] = field(default_factory=list)
    keyless_faults: int = 0  # faults with no key: delete detection must be skipped
    derived: bool = False  # made up from references (groups seen on customers)
    # Schema columns the source cannot deliver (SOAP v2): neither compared nor overwritten.
    unprovided: frozenset[str] = frozenset()
