"""From a RawBatch to a typed, keyed, hashed frame ready for diffing."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from magsync.transform.batch import CUST_EMAIL_COL, CUST_WEBSITE_COL, RawBatch
from magsync.transform.codes import StoreCodes
from magsync.transform.faults import Fault, Stage
from magsync.transform.keys import customer_key, record_keys, row_hashes
from magsync.transform.normalise import clean_strings, normalise, to_int
from magsync.transform.schema import (
    CUSTOMER,
    HASH_COL,
    KEY_COL,
    KEY_MAX_LENGTH,
    LINE_COL,
    RAW_DIGEST_COL,
    SOURCE_COL,
    Entity,
)
from magsync.transform.storable import unstorable
from magsync.transform.values import is_missing, opt_int, opt_str


@dataclass
class Prepared:
    """Good rows (typed, keyed, hashed) and faulted rows (as faults, keys kept)."""

    entity: Entity
    frame: pd.DataFrame  # schema columns + extra + record_key + row_hash + lineage
    faults: list[Fault] = field(default_factory=list)
    faulted_keys: list[str] = field(default_factory=list)  # present, but not loadable
    keyless_faults: int = 0
    derived: bool = False
    # Records per entity: those the batch carried (rows and read faults) and those that
    # faulted here; a record with several faults counts once.
    received: Counter[str] = field(default_factory=Counter)
    faulted_records: Counter[str] = field(default_factory=Counter)


def _address_customer_keys(frame: pd.DataFrame, raw: pd.DataFrame) -> pd.Series:
    """The owning customer's record_key, from whatever the source gave."""
    by_id = ("[" + frame["customer_id"].astype("str") + "]").where(frame["customer_id"].notna())
    keys = frame["customer_key"].where(frame["customer_key"].notna(), by_id)
    if CUST_EMAIL_COL in raw.columns:
        website, _ = to_int(clean_strings(raw[CUST_WEBSITE_COL].astype("str")))
        email = clean_strings(raw[CUST_EMAIL_COL].astype("str")).str.lower()
        natural = customer_key(pd.Series(pd.NA, index=raw.index, dtype="Int64"),
                               website, email).where(website.notna() & email.notna())
        keys = keys.where(keys.notna(), natural)
    return keys.astype("str")


def prepare(batch: RawBatch, gender_labels: Mapping[str, int],
            codes: StoreCodes | None = None) -> Prepared:
    """Normalises, keys and hashes a batch; bad rows become faults that keep their key.

    Values no target can hold fault their record here (transform/storable.py), and so do
    customers whose website or store code is unknown or disagrees with its id (`codes`).
    """
    entity = batch.entity
    norm = normalise(entity, batch.frame, gender_labels)
    frame = norm.frame
    if entity.name == "address":
        frame["customer_key"] = _address_customer_keys(frame, batch.frame)
    keys = record_keys(entity, frame)
    frame[KEY_COL] = keys
    found = norm.faults
    _merge(found, unstorable(entity, frame))
    if codes is not None and entity is CUSTOMER:
        _merge(found, codes.check(frame))
    out = Prepared(entity, frame, list(batch.faults), keyless_faults=batch.keyless_faults,
                   derived=batch.derived)
    out.received[entity.name] += len(batch.frame)
    for fault in batch.faults:  # a read fault is one record, of the entity it names
        out.received[fault.entity] += 1
        out.faulted_records[fault.entity] += 1
    keyless = keys.isna().to_numpy()
    faulted = keyless | frame.index.isin(list(found))
    digests = frame[RAW_DIGEST_COL] if RAW_DIGEST_COL in frame.columns else None
    for label in frame.index[faulted]:
        out.faulted_records[entity.name] += 1
        key = keys.at[label]
        digest = None if digests is None else opt_int(digests.at[label])
        if is_missing(key):
            out.faults.extend(dataclasses.replace(f, raw_digest=digest) for f in
                              [_missing_key(entity, frame, label), *found.get(label, [])])
            out.keyless_faults += 1
        elif len(str(key)) > KEY_MAX_LENGTH:  # no stored record can have it: not keyless
            out.faults.extend(dataclasses.replace(f, raw_digest=digest) for f in found[label])
        else:
            out.faults.extend(dataclasses.replace(f, key=str(key), raw_digest=digest)
                              for f in found[label])
            out.faulted_keys.append(str(key))
    good = frame[~faulted].copy()
    good[HASH_COL] = row_hashes(entity, good)
    out.frame = good
    return out


def _merge(into: dict[object, list[Fault]], more: dict[object, list[Fault]]) -> None:
    for label, faults in more.items():
        into.setdefault(label, []).extend(faults)


def _missing_key(entity: Entity, frame: pd.DataFrame, label: object) -> Fault:
    parts = entity.natural_key if entity.name != "group" else entity.id_key
    line = frame.at[label, LINE_COL] if LINE_COL in frame.columns else None
    source = frame.at[label, SOURCE_COL] if SOURCE_COL in frame.columns else None
    return Fault(entity=entity.name, stage=Stage.NORMALISE, rule="missing_key",
                 message=f"no usable key: needs {' and '.join(parts)}",
                 column=parts[-1], source=opt_str(source), source_line=opt_int(line))
