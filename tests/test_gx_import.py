"""Great Expectations imported with scipy.stats deferred (transform/gx_import.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# In a fresh interpreter: the test process may hold scipy.stats already.
PROBE = """
import sys
from magsync.transform.gx_import import import_great_expectations
gx = import_great_expectations()
assert gx is sys.modules["great_expectations"]
assert "scipy.stats._stats_py" not in sys.modules, "scipy.stats ran at GX's import"
from scipy import stats
assert stats.norm.cdf(0.0) == 0.5  # the first use runs the real module
assert "scipy.stats._stats_py" in sys.modules
assert import_great_expectations() is gx
"""


def test_scipy_stats_runs_only_at_its_first_use() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
