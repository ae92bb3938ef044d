"""The suppression table: customers erased on request, which later syncs skip.

`magsync forget` keeps, per erased customer, an HMAC-SHA256 (hex) of its identity, never
the values: of (website_id, lower-cased email), and of its customer id where known. The
key is the PII key (`MAGSYNC_EXPORTS__PII_KEY`) when one is set, else a random secret the
target keeps in `magsync_suppression_key` (README, "Erasure"). Each row records which
key made it (`key_id`, a digest of the key, never the key). A sync applies `skip_suppressed`
to its raw batches before anything else reads them: a matching customer, and every address
of it, is counted `suppressed` (received, neither faulted nor created) and goes no further,
so it is never staged, faulted, listed, loaded, exported or deleted because of it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from magsync.load.tables import SUPPRESSION, SUPPRESSION_KEY
from magsync.transform.batch import CUST_EMAIL_COL, CUST_WEBSITE_COL, RawBatch

if TYPE_CHECKING:
    from magsync.load.run_context import RunContext
    from magsync.load.sql_store import SqlTarget

SUPPRESSED = "suppressed"
EMAIL, CUSTOMER_ID = "email", "customer_id"
KEY_NAME = "suppression"
_EMAIL_TAG, _ID_TAG = b"magsync.suppress.email\x1f", b"magsync.suppress.customer_id\x1f"


def key_id(key: bytes, origin: str) -> str:
    """Names a key without revealing it: `pii:` or `target:` and 16 hex digits."""
    return f"{origin}:" + hmac.new(key, b"magsync.suppress.key-id", hashlib.sha256
                                   ).hexdigest()[:16]


def email_digest(key: bytes, website_id: int, email: str) -> str:
    """The digest of (website_id, email); the email is trimmed, NFC and lower-cased."""
    text = f"{website_id}\x1f{clean_email(email)}".encode()
    return hmac.new(key, _EMAIL_TAG + text, hashlib.sha256).hexdigest()


def id_digest(key: bytes, customer_id: int) -> str:
    """The digest of a customer id."""
    return hmac.new(key, _ID_TAG + str(int(customer_id)).encode(), hashlib.sha256).hexdigest()


def clean_email(email: str) -> str:
    """An email as the pipeline stores it: trimmed, Unicode NFC, lower-case."""
    return unicodedata.normalize("NFC", email.strip()).lower()


def has_table(target: SqlTarget) -> bool:
    """Whether the target has the suppression tables (migrated past 0005)."""
    return target.is_initialised() and sa.inspect(target.engine).has_table(SUPPRESSION.name)


def target_secret(conn: Connection, *, create: bool) -> bytes | None:
    """The target's own suppression key (made on first use when `create`)."""
    row = conn.execute(sa.select(SUPPRESSION_KEY.c.secret).where(
        SUPPRESSION_KEY.c.name == KEY_NAME)).scalar_one_or_none()
    if row is None and create:
        row = secrets.token_hex(32)
        conn.execute(sa.insert(SUPPRESSION_KEY).values(
            name=KEY_NAME, secret=row, created_at=_now()))
    return None if row is None else bytes.fromhex(row)


def writing_key(conn: Connection, pii_key: bytes | None) -> tuple[bytes, str]:
    """The key new suppression rows are made with, and its id."""
    if pii_key:
        return pii_key, key_id(pii_key, "pii")
    secret = target_secret(conn, create=True)
    assert secret is not None
    return secret, key_id(secret, "target")


def suppress(conn: Connection, source: str, run_id: str, pii_key: bytes | None, *,
             emails: Iterable[tuple[int, str]], ids: Iterable[int]) -> int:
    """Adds the digests of these identities (in the caller's transaction); returns how
    many rows are new."""
    key, kid = writing_key(conn, pii_key)
    rows = {email_digest(key, w, e): EMAIL for w, e in emails}
    rows.update({id_digest(key, i): CUSTOMER_ID for i in ids})
    have: set[str] = set(conn.execute(sa.select(SUPPRESSION.c.digest).where(
        SUPPRESSION.c.source == source, SUPPRESSION.c.digest.in_(list(rows)))).scalars())
    new = [{"source": source, "digest": d, "kind": k, "key_id": kid, "run_id": run_id,
            "created_at": _now()} for d, k in rows.items() if d not in have]
    if new:
        conn.execute(sa.insert(SUPPRESSION), new)
    return len(new)


def _now() -> Any:
    from magsync.load.sql_store import utc_now

    return utc_now()


@dataclass
class Matcher:
    """The suppressed digests of one source, under every key this run can compute."""

    keys: list[bytes]
    digests: set[str]
    unmatched: int  # rows made under a key this run does not have (a rotated PII key)

    @classmethod
    def load(cls, target: SqlTarget, pii_key: bytes | None) -> Matcher | None:
        """The matcher of `target`'s source; None when nothing is suppressed."""
        if not has_table(target):
            return None
        with target.engine.connect() as conn:
            rows = conn.execute(sa.select(SUPPRESSION.c.digest, SUPPRESSION.c.key_id).where(
                SUPPRESSION.c.source == target.source)).all()
            if not rows:
                return None
            keys = {key_id(pii_key, "pii"): pii_key} if pii_key else {}
            secret = target_secret(conn, create=False)
            if secret is not None:
                keys[key_id(secret, "target")] = secret
        usable = [str(d) for d, k in rows if k in keys]
        return cls(list(keys.values()), set(usable), len(rows) - len(usable))

    def __post_init__(self) -> None:
        self._pads = [_pads(k) for k in self.keys]
        self._raw = {bytes.fromhex(d) for d in self.digests}

    def _matches(self, message: bytes) -> bool:
        """Whether HMAC-SHA256(key, message) is a suppressed digest under any key: RFC
        2104 over the precomputed pads (twice as fast as `hmac.digest` per message)."""
        for inner, outer in self._pads:
            i, o = inner.copy(), outer.copy()
            i.update(message)
            o.update(i.digest())
            if o.digest() in self._raw:
                return True
        return False

    def hit_ids(self, ids: pd.Series) -> np.ndarray:
        """Whether each customer id (raw text or int, null allowed) is suppressed."""
        found: dict[object, bool] = {}
        out = np.zeros(len(ids), bool)
        for i, value in enumerate(ids.tolist()):
            if value not in found:
                number = _as_int(value)
                found[value] = number is not None and self._matches(
                    _ID_TAG + str(number).encode())
            out[i] = found[value]
        return out

    def hit_emails(self, websites: pd.Series, emails: pd.Series) -> np.ndarray:
        """Whether each (website id, email) pair (raw text) is suppressed: one HMAC per
        row (the emails of a batch are mostly distinct)."""
        webs: dict[object, int | None] = {}
        out = np.zeros(len(emails), bool)
        for i, (web, email) in enumerate(zip(websites.tolist(), emails.tolist(),
                                             strict=True)):
            if web not in webs:
                webs[web] = _as_int(web)
            website = webs[web]
            if website is None or not isinstance(email, str) or not email:
                continue
            text = email.strip().lower() if email.isascii() else clean_email(email)
            out[i] = self._matches(_EMAIL_TAG + f"{website}\x1f{text}".encode())
        return out

    def hits(self, raw: RawBatch) -> np.ndarray:
        """Per row of a raw customer or address batch, whether it is suppressed."""
        frame = raw.frame
        hit = np.zeros(len(frame), bool)
        if raw.entity.name == "customer":
            if "customer_id" in frame.columns:
                hit |= self.hit_ids(frame["customer_id"])
            if {"website_id", "email"} <= set(frame.columns):
                hit |= self.hit_emails(frame["website_id"], frame["email"])
        elif raw.entity.name == "address":
            if "customer_id" in frame.columns:
                hit |= self.hit_ids(frame["customer_id"])
            if "customer_key" in frame.columns:
                hit |= self._hit_keys(frame["customer_key"])
            if {CUST_WEBSITE_COL, CUST_EMAIL_COL} <= set(frame.columns):
                hit |= self.hit_emails(frame[CUST_WEBSITE_COL], frame[CUST_EMAIL_COL])
        return hit

    def _hit_keys(self, keys: pd.Series) -> np.ndarray:
        """Whether each customer record key (`[id]` or `[website_id,"email"]`) is."""
        parsed = [_parse_key(k) for k in keys.tolist()]
        ids = pd.Series([p[0] if len(p) == 1 else None for p in parsed], dtype=object)
        webs = pd.Series([p[0] if len(p) == 2 else None for p in parsed], dtype=object)
        mails = pd.Series([p[1] if len(p) == 2 else None for p in parsed], dtype=object)
        hit: np.ndarray = self.hit_ids(ids) | self.hit_emails(webs, mails)
        return hit


def _pads(key: bytes) -> tuple[Any, Any]:
    """SHA-256 states after the HMAC inner and outer key pads (RFC 2104)."""
    block = 64
    key = (hashlib.sha256(key).digest() if len(key) > block else key).ljust(block, b"\0")
    return (hashlib.sha256(bytes(b ^ 0x36 for b in key)),
            hashlib.sha256(bytes(b ^ 0x5C for b in key)))


def _as_int(value: Any) -> int | None:
    try:
        return None if value is None or pd.isna(value) else int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _parse_key(value: Any) -> tuple[Any, ...]:
    try:
        parsed = json.loads(str(value))
    except (TypeError, ValueError):
        return ()
    return tuple(parsed) if isinstance(parsed, list) and len(parsed) in (1, 2) else ()


def skip_suppressed(ctx: RunContext, batches: Iterable[RawBatch]) -> Iterator[RawBatch]:
    """`batches` without the records of suppressed customers (and their addresses), each
    counted `suppressed` as it is dropped; one note at the end."""
    matcher = Matcher.load(ctx.target, ctx.pii_key)
    if matcher is None:
        yield from batches
        return
    dropped: Counter[str] = Counter()
    for batch in batches:
        hit = matcher.hits(batch) if len(batch.frame) else np.zeros(0, bool)
        if not hit.any():
            yield batch
            continue
        n, entity = int(hit.sum()), batch.entity.name
        ctx.report.receive(entity, n)
        ctx.report.count(entity, SUPPRESSED, n)
        dropped[entity] += n
        yield replace(batch, frame=batch.frame[~hit])
    for entity, n in sorted(dropped.items()):
        ctx.report.notes.append(f"{entity}: {n} record(s) suppressed (erased on request)")
    if matcher.unmatched:
        ctx.report.notes.append(
            f"{matcher.unmatched} suppression row(s) were made under another PII key and "
            "cannot be matched: run `magsync forget` again for those customers")
