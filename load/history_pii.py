"""The PII policy over history files already written: each file records the policy it was
written under (its rules, never the key: a digest of key and rules), and a changed policy
is applied to the files written before, once, where it can be."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from magsync.transform.pii import PiiPolicy
from magsync.transform.schema import Entity

PII_POLICY = b"magsync.pii_policy"  # Parquet metadata: the policy's fingerprint
PII_RULES = b"magsync.pii_rules"  # Parquet metadata: the rules the values went through


def pii_metadata(entity: Entity, policy: PiiPolicy) -> dict[bytes, bytes]:
    """What a history file written under `policy` records of it."""
    return {PII_POLICY: policy.fingerprint(entity.name).encode(),
            PII_RULES: json.dumps(policy.active(entity.name), sort_keys=True).encode()}


def reapply(files: list[Path], entity: Entity, policy: PiiPolicy) -> tuple[int, int]:
    """Rewrites the history `files` written under another policy: a column they keep raw
    gets its new rule now; a column an earlier policy hashed, masked or dropped (or hashed
    under another key) cannot be restored and stays as it is. Returns (files rewritten,
    files left with values of an earlier policy)."""
    want = policy.fingerprint(entity.name)
    rewritten = stale = 0
    for path in files:
        meta = pq.read_schema(path).metadata or {}
        if meta.get(PII_POLICY, b"").decode() == want:
            continue
        old: dict[str, str] = json.loads(meta.get(PII_RULES, b"{}"))
        new = policy.active(entity.name)
        todo = {c: r for c, r in new.items() if c not in old}
        kept = {c: r for c, r in new.items() if c in old}
        stale += bool(set(old) - set(new) or kept != {c: old[c] for c in kept}
                      or (kept and not todo and old == new))  # same rules: another key
        table = PiiPolicy({entity.name: todo}, policy.key).apply(entity.name,
                                                                 pq.read_table(path))
        effective = json.dumps({**old, **todo}, sort_keys=True).encode()
        metadata = {**meta, PII_POLICY: want.encode(), PII_RULES: effective}
        tmp = path.with_name(f".{path.name}.tmp")
        pq.write_table(table.replace_schema_metadata(metadata), tmp, compression="zstd")
        tmp.replace(path)
        rewritten += 1
    return rewritten, stale
