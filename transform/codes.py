"""Website and store codes: each must name a known website or store, and agree with the
id beside it.

A CSV export names a customer's website and store twice, by code (`_website`, `_store`)
and by id (`website_id`, `store_id`). The source fills a missing id from the code; here
the two are checked against each other, so a mistyped or foreign code is a fault instead
of a customer stored under a website the store does not have.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from magsync.transform.faults import Fault, Stage
from magsync.transform.integrity import row_faults
from magsync.transform.schema import CUSTOMER

ADMIN_STORE = {"admin": 0}  # Magento's fixed admin store (and website) code


@dataclass
class CodeMap:
    """Codes of one kind (websites or stores) and their ids, one id per code and one code
    per id: given by the settings, or learned from the input's own first code/id pair."""

    kind: str  # "website" or "store"
    ids: dict[str, int] = field(default_factory=dict)
    learning: bool = True  # False: a batch already learned from (see StoreCodes.learned)

    def learn(self, codes: pd.Series, ids: pd.Series) -> pd.Series:
        """Learns, in input order, each new code whose id no other code holds yet;
        returns the id each code stands for (null for an unknown or missing code)."""
        index, uniques = pd.factorize(codes)  # codes are few: work on them, not on rows
        id_values = ids.to_numpy(dtype="int64", na_value=-1)
        paired = np.flatnonzero((index >= 0) & (id_values >= 0))
        _, first = np.unique(index[paired], return_index=True)  # each code's first pair
        owned = set(self.ids.values())
        for at in sorted(paired[first]) if self.learning else []:
            code, id_ = str(uniques[index[at]]), int(id_values[at])
            if code not in self.ids and id_ not in owned:
                self.ids[code] = id_
                owned.add(id_)
        table = pd.array([self.ids.get(str(u)) for u in uniques] + [None], dtype="Int64")
        return pd.Series(table[index], index=codes.index)  # index -1 (no code): the null

    def faults(self, frame: pd.DataFrame) -> list[tuple[object, Fault]]:
        """(row label, fault) of the rows whose code is unknown or names another id."""
        code_col, id_col = f"{self.kind}_code", f"{self.kind}_id"
        codes, ids = frame[code_col], frame[id_col]
        expected = self.learn(codes, ids)
        unknown = (codes.notna() & expected.isna()).fillna(False).to_numpy(dtype=bool)
        mismatch = (codes.notna() & expected.notna() & ids.notna()
                    & (expected != ids)).fillna(False).to_numpy(dtype=bool)
        owner = {v: k for k, v in self.ids.items()}
        unknown_faults = row_faults(
            CUSTOMER, Stage.INTEGRITY, frame[unknown], rule=f"unknown_{self.kind}_code",
            column=code_col,
            message=[f"{code_col} {c!r} names no {self.kind} known to this run"
                     + (f" ({id_col} {i} belongs to {owner[i]!r})" if i in owner else "")
                     for c, i in zip(codes[unknown], ids[unknown].astype(object), strict=True)])
        mismatch_faults = row_faults(
            CUSTOMER, Stage.INTEGRITY, frame[mismatch], rule=f"{self.kind}_mismatch",
            column=code_col,
            message=[f"{code_col} {c!r} is {id_col} {e}, but the record says {i}"
                     for c, e, i in zip(codes[mismatch], expected[mismatch],
                                        ids[mismatch], strict=True)])
        return [*zip(frame.index[unknown], unknown_faults, strict=True),
                *zip(frame.index[mismatch], mismatch_faults, strict=True)]


@dataclass
class StoreCodes:
    """The website and store codes of one run, learned across its batches."""

    websites: CodeMap
    stores: CodeMap

    @classmethod
    def given(cls, website_codes: Mapping[str, int]) -> StoreCodes:
        """Codes from the settings' `website_codes`; store codes are learned, but for
        Magento's fixed `admin` store."""
        return cls(CodeMap("website", dict(website_codes)), CodeMap("store", dict(ADMIN_STORE)))

    def learned(self) -> StoreCodes:
        """A copy that checks against the codes known now and learns none: for the rest
        of a batch whose every record these codes have already learned from (a re-sync
        checks the codes of every record, then types only the changed ones)."""
        return StoreCodes(CodeMap("website", dict(self.websites.ids), learning=False),
                          CodeMap("store", dict(self.stores.ids), learning=False))

    def check(self, frame: pd.DataFrame) -> dict[object, list[Fault]]:
        """Faults, by row label, of customers whose website or store code is unknown or
        disagrees with their website_id or store_id."""
        out: dict[object, list[Fault]] = {}
        for codes in (self.websites, self.stores):
            if f"{codes.kind}_code" not in frame.columns or not frame[
                    f"{codes.kind}_code"].notna().any():
                continue
            for label, fault in codes.faults(frame):
                out.setdefault(label, []).append(fault)
        return out
