"""magsync installs under one name: `magsync.load`, never a bare `load` that could collide
with another distribution's, and its wheel carries only `magsync/` (no test support)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
USER_FOLDERS = ("flows", "extract", "transform", "load", "magento")


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                          text=True, timeout=120, check=False)


def test_installed_venv_imports_magsync_and_no_bare_folder(tmp_path: Path) -> None:
    """Run from outside the checkout, where the current folder cannot lend `load`."""
    done = run_python("import magsync.flows.cli, magsync.load.sql_store as s; print(s.__file__)",
                      tmp_path)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == ROOT / "load" / "sql_store.py"
    for name in USER_FOLDERS:
        bare = run_python(f"import {name}", tmp_path)
        assert bare.returncode != 0 and "ModuleNotFoundError" in bare.stderr, name


@pytest.mark.slow
def test_wheel_holds_only_magsync_and_runs_from_it(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300, check=False)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("magsync-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    dist_info = wheel.name.split("-py")[0] + ".dist-info"
    assert {n.split("/")[0] for n in names} == {"magsync", dist_info}
    assert not [n for n in names if "csv_export" in n or "/tests/" in n]
    for data in ("magsync/expectations/customer.json", "magsync/load/migrations/script.py.mako",
                 "magsync/magento/resources/v2.wsdl.xml"):
        assert data in names
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    # Import from the unpacked wheel alone: drop the editable finder of this checkout.
    code = (
        "import sys\n"
        "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f)]\n"
        f"sys.path.insert(0, {str(unpacked)!r})\n"
        "import magsync.flows.cli\n"
        "from magsync.transform.validate import BUNDLED_SUITES\n"
        "from magsync.load.sql_store import MIGRATIONS\n"
        "assert magsync.flows.cli.__file__.startswith(sys.path[0]), magsync.flows.cli.__file__\n"
        "assert (BUNDLED_SUITES / 'customer.json').is_file(), BUNDLED_SUITES\n"
        "assert (MIGRATIONS / 'env.py').is_file(), MIGRATIONS\n"
    )
    done = run_python(code, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
