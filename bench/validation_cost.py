"""What validation costs inside a sync: the flow body with validation off, then on.

    python -m bench.validation_cost bench/out/1m/customers.csv \
        bench/out/1m/customers_changed.csv bench/out/validation

Each mode runs a first load then a 1%-changed re-sync into a fresh SQLite store, calling
the flow's steps without the Prefect API (`run_sync(orchestrated=False)`).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from magsync.flows.settings import load_settings
from magsync.flows.sync import run_sync


def measure(base: Path, changed: Path, work: Path, *, validation: bool) -> dict[str, object]:
    """Body seconds of a first load and a re-sync, and GX's own share of each."""
    shutil.rmtree(work, ignore_errors=True)
    out: dict[str, object] = {"validation": validation}
    for name, source in (("first", base), ("resync", changed)):
        settings = load_settings(source={"input": str(source)}, output_dir=str(work),
                                 full=True, allow_mass_delete=True, validation=validation)
        start = time.perf_counter()
        report = run_sync(settings, orchestrated=False)
        out[name] = round(time.perf_counter() - start, 2)
        out[f"{name}_validate_s"] = report["timings_s"].get("validate")
    return out


def main() -> None:
    """Prints one JSON line per mode."""
    base, changed, work = (Path(a) for a in sys.argv[1:4])
    for validation in (False, True):
        print(json.dumps(measure(base, changed, work / str(validation), validation=validation)))


if __name__ == "__main__":
    main()
