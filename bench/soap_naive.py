"""Measured child: the naive SOAP client, timed on its first customers and extrapolated.

python -m bench.soap_naive --url URL --sample 2000 --result JSON     (key: $BENCH_SOAP_KEY)

A plain zeep client, as a first script against Magento's v1 API is written: `login`, one
`customer.list` of every customer, then one `customer_address.list` `call` per customer, in
order, one request at a time. Two concessions, neither of which is what makes it slow:
- zeep cannot decode the apache Map answers (no schema for xml.apache.org/xml-soap), so it
  runs with `raw_response=True` and the answers are decoded by `magento.codec`, the decoder
  magsync uses;
- this machine is offline, so the SOAP-encoding schema zeep fetches from schemas.xmlsoap.org
  comes from magento/resources.
Only the first `--sample` customers' addresses are fetched. The body (WSDL, login, the
list, the sample) and the per-customer rate give the time for every customer:
fixed + (sample time / sample) * customers. It writes nothing anywhere: a fetch only.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from bench.child import Clock, write_result

CLOCK = Clock()

import zeep  # noqa: E402  (timed: the imports are a column)

from magsync.magento import codec  # noqa: E402
from magsync.magento.transport import local_resource  # noqa: E402

CLOCK.imported()
KEY_ENV = "BENCH_SOAP_KEY"


class OfflineTransport(zeep.Transport):  # type: ignore[misc]
    """zeep's transport, with the SOAP-encoding schema served from a local copy."""

    def load(self, url: str) -> bytes:
        """The schema at `url`: the local copy of SOAP-ENC, else over HTTP."""
        if "schemas.xmlsoap.org/soap/encoding" in url:
            return local_resource("soap-encoding.xsd")
        data: bytes = super().load(url)
        return data


def answer(response: Any) -> Any:
    """The decoded return value of a raw SOAP response (a fault raises)."""
    root = codec.parse_xml(response.content)
    fault = codec.parse_fault(root)
    if fault is not None:
        raise RuntimeError(f"SOAP fault {fault.code}: {fault.message}")
    return codec.decode(codec.body_element(root)[0])


def run(url: str, user: str, key: str, sample: int) -> dict[str, Any]:
    """The naive fetch; returns its timings and counts."""
    started = time.perf_counter()
    client = zeep.Client(url.rstrip("/") + "/api/soap/?wsdl", transport=OfflineTransport(),
                         settings=zeep.Settings(raw_response=True))
    service = client.service
    session = answer(service.login(user, key))
    customers = answer(service.call(session, "customer.list", ""))
    listed = time.perf_counter()
    addresses = 0
    for customer in customers[:sample]:
        result = answer(service.call(session, "customer_address.list",
                                     customer["customer_id"]))
        addresses += len(result)
    done = time.perf_counter()
    answer(service.endSession(session))
    timed = min(sample, len(customers))
    per_customer = (done - listed) / timed if timed else 0.0
    return {"fixed_s": listed - started, "sample_s": done - listed, "timed_customers": timed,
            "customers": len(customers), "sample_addresses": addresses,
            "per_customer_s": per_customer,
            "estimated_s": (listed - started) + per_customer * len(customers)}


def main(argv: list[str] | None = None) -> None:
    """Runs the naive fetch and writes the measurements."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--user", default="bench")
    parser.add_argument("--sample", type=int, default=2000)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args(argv)
    CLOCK.begin()
    got = run(args.url, args.user, os.environ[KEY_ENV], args.sample)
    CLOCK.end()
    write_result(args.result, CLOCK, got["timed_customers"], **got)


if __name__ == "__main__":
    main()
