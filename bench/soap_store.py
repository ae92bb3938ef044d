"""The SOAP benchmark's store, served by the emulator in a process of its own.

python -m bench.soap_store --customers 20000 --seed 42 --per-request-ms 20 --per-call-ms 3
                           --max-concurrent 4          (API user "bench", key from $BENCH_SOAP_KEY)

Its own process, so the server's CPU work (XML in and out) never competes with the measured
client for one GIL. It prints `READY <url> <customers> <addresses>` once serving, then answers
each `stats` line on stdin with the server's statistics as one JSON line; `quit` or the end of
stdin stops it. `EmulatorProcess` is the parent's side of that conversation.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from magsync.magento.dataset import Address, Record, iter_customers

API_USER = "bench"
KEY_ENV = "BENCH_SOAP_KEY"
MAX_ADDRESSES = 3  # the most any generated customer has


def balanced_records(customers: int, seed: int = 42) -> list[Record]:
    """`customers` generated customers (magento.dataset: varied, seeded) holding exactly two
    addresses each on average. The generator's mean is 1.9, so customers drawn at random
    (seeded) get one more address from a second stream, or, if the first one overshoots,
    lose a non-default one."""
    records = list(iter_customers(customers, seed=seed))
    missing = 2 * customers - sum(len(addresses) for _, addresses in records)
    rng = random.Random(seed)
    order = list(range(customers))
    spare = _spare_addresses(customers, seed)
    changed = True
    while missing and changed:
        changed = False
        rng.shuffle(order)
        for index in order:
            if missing == 0:
                break
            step = _add_one(records[index], spare) if missing > 0 \
                else -_drop_one(records[index])
            missing -= step
            changed = changed or step != 0
    return records


def _add_one(record: Record, spare: Iterator[Address]) -> int:
    customer, addresses = record
    if len(addresses) >= MAX_ADDRESSES:
        return 0
    addresses.append(_moved(next(spare), customer))
    return 1


def _drop_one(record: Record) -> int:
    plain = [a for a in record[1] if not (a["is_default_billing"] or a["is_default_shipping"])]
    if len(record[1]) < 2 or not plain:
        return 0
    record[1].remove(plain[-1])
    return 1


def _spare_addresses(customers: int, seed: int) -> Iterator[Address]:
    """Addresses from a second stream (another seed) whose ids start past every id of the
    first (the generator gives customer n at most three, numbered from 3 * (n - 1) + 1)."""
    for _, addresses in iter_customers(2 * customers + 10, seed=seed + 1,
                                       start_id=customers + 1):
        yield from addresses


def _moved(address: Address, customer: dict[str, Any]) -> Address:
    """A spare address as one more (non-default) address of `customer`, added when the
    customer was last updated."""
    when = customer["updated_at"]
    return {**address, "created_at": when, "updated_at": when,
            "is_default_billing": False, "is_default_shipping": False}


def serve(args: argparse.Namespace) -> int:
    """Builds the store, serves it with the latency model, talks on stdin/stdout."""
    from magsync.magento.dataset import GROUPS, STORES
    from magsync.magento.emulator import EmulatorStore, Latency, run_emulator

    store = EmulatorStore(groups=GROUPS,
                          stores={s.store_id: (s.website_id, s.name) for s in STORES})
    store.load(balanced_records(args.customers, args.seed))
    latency = Latency(per_request=args.per_request_ms / 1e3, per_call=args.per_call_ms / 1e3,
                      max_concurrent=args.max_concurrent or None)
    with run_emulator(store, users={API_USER: os.environ[KEY_ENV]}, latency=latency,
                      wsi=args.wsi) as emu:
        customers, addresses = store.counts()
        print(f"READY {emu.url} {customers} {addresses}", flush=True)
        for line in sys.stdin:
            if line.strip() == "quit":
                break
            if line.strip() == "stats":
                print(json.dumps(asdict(emu.stats)), flush=True)
    return 0


class EmulatorProcess:
    """The parent's handle on a `python -m bench.soap_store` child."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = log.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.soap_store", *argv],
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log, text=True, bufsize=1)
        ready = self._line().split()
        if len(ready) != 4 or ready[0] != "READY":
            self.close()
            raise RuntimeError(f"the emulator did not start (log {log})")
        self.url, self.customers, self.addresses = ready[1], int(ready[2]), int(ready[3])

    def _pipes(self) -> tuple[IO[str], IO[str]]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        return self.proc.stdin, self.proc.stdout

    def _line(self) -> str:
        return self._pipes()[1].readline()

    def stats(self) -> dict[str, Any]:
        """The server's statistics now (requests, calls, operations, max_in_flight...)."""
        self._pipes()[0].write("stats\n")
        data: dict[str, Any] = json.loads(self._line())
        return data

    def close(self) -> None:
        """Stops the child and waits for it."""
        if self.proc.poll() is None:
            try:
                self._pipes()[0].write("quit\n")
                self._pipes()[0].close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def stats_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What the server saw between two `stats` answers (max_in_flight: the peak so far)."""
    ops = {name: n - before["operations"].get(name, 0)
           for name, n in after["operations"].items()
           if n - before["operations"].get(name, 0)}
    return {"requests": after["requests"] - before["requests"],
            "calls": after["calls"] - before["calls"], "operations": ops,
            "max_in_flight": after["max_in_flight"]}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the emulator child."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--per-request-ms", type=float, default=20.0)
    parser.add_argument("--per-call-ms", type=float, default=3.0)
    parser.add_argument("--max-concurrent", type=int, default=4, help="0: no cap")
    parser.add_argument("--wsi", action="store_true", help="serve WS-I at /api/v2_soap/")
    return serve(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
