"""`magsync emulator`: a Magento-compatible SOAP API on loopback, to try the SOAP source."""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from magsync.flows.console import setup_logging
from magsync.flows.messages import EXIT_CONFIG, EXIT_OK

KEY_VARIABLE = "MAGSYNC_EMULATOR_API_KEY"


def add_parser(sub: Any) -> None:
    """The `emulator` subcommand's arguments."""
    p = sub.add_parser("emulator", help="serve a Magento-compatible SOAP v1 API on loopback, "
                                        "to try the SOAP source without a store")
    p.add_argument("--port", type=int, default=8080, help="TCP port (0: any free one)")
    data = p.add_mutually_exclusive_group()
    data.add_argument("--data", type=Path, help="a Magento CE customer export, or a folder "
                                                "of them (e.g. data/sample)")
    data.add_argument("--customers", type=int, default=1000,
                      help="generated customers when no --data (default 1000)")
    p.add_argument("--seed", type=int, default=42, help="seed of the generated data")
    p.add_argument("--namespace", choices=["urn:Magento", "urn:OpenMage"],
                   default="urn:OpenMage", help="the WSDL's namespace (default urn:OpenMage)")
    p.add_argument("--api-user", default="magsync", help="the API user (default magsync); "
                   f"its key comes from {KEY_VARIABLE}, else a random one is printed")
    p.add_argument("--log-level", default="INFO")


def run(args: argparse.Namespace) -> int:
    """Serves the SOAP emulator until interrupted."""
    if args.data is not None and not args.data.exists():
        print(f"magsync: emulator data not found: {args.data}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(args.log_level, "magsync.magento.emulator")
    from magsync.magento.emulator import serve

    # A throwaway loopback server: a random key is fine when none is given.
    api_key = os.environ.get(KEY_VARIABLE) or secrets.token_hex(16)
    shown = f"from {KEY_VARIABLE}" if os.environ.get(KEY_VARIABLE) else api_key

    def ready(url: str) -> None:
        print(f"magsync emulator: {url} (namespace {args.namespace})")
        print(f"API user {args.api_user}, API key {shown}")
        print(f"try: MAGSYNC_SOURCE__API_KEY=<key> magsync sync --source soap --url {url} "
              f"--api-user {args.api_user} --full", flush=True)

    # SIGINT or SIGTERM stops it, even where SIGINT came in ignored (a job started with
    # `&` by a script, a test runner's worker): `kill -INT` must not be lost on a server.
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        serve(args.port, args.data, customers=args.customers, seed=args.seed,
              namespace=args.namespace, api_user=args.api_user, api_key=api_key,
              on_ready=ready, stop=stop)
    except OSError as err:
        print(f"magsync: cannot serve on port {args.port}: {err.strerror or err}",
              file=sys.stderr)
        return EXIT_CONFIG
    return EXIT_OK
