"""Settings layering, the report object and report pruning."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from magsync.flows.settings import load_settings
from magsync.load.report import RunReport, prune_reports
from magsync.load.sql_store import masked_url


def test_layers_defaults_toml_env_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "magsync.toml"
    config.write_text('batch_size = 10\nmax_fault_ratio = 0.2\n[source]\nname = "toml"\n'
                      'input = "a.csv"\n')
    monkeypatch.setenv("MAGSYNC_MAX_FAULT_RATIO", "0.3")
    monkeypatch.setenv("MAGSYNC_SOURCE__API_KEY", "from-env")
    settings = load_settings(config, source={"input": "cli.csv"})
    assert settings.batch_size == 10  # TOML over default
    assert settings.max_fault_ratio == 0.3  # environment over TOML
    assert str(settings.source.input) == "cli.csv"  # CLI over all
    assert settings.source.name == "toml"  # nested values merge across layers
    assert settings.source.api_key is not None
    assert settings.source.api_key.get_secret_value() == "from-env"
    assert "from-env" not in repr(settings)
    assert settings.keep_reports_days == 30  # default


def test_target_password_is_masked() -> None:
    masked = masked_url("postgresql+psycopg://etl:s3cret@db.example/warehouse")
    assert "s3cret" not in masked and "etl" in masked


def test_report_summary_and_table(tmp_path: Path) -> None:
    report = RunReport(run_id="r1", source="default", input="x.csv", target="sqlite:///t",
                       version="0.1.0", mode="full", dry_run=False,
                       started_at=datetime(2026, 1, 1, tzinfo=UTC))
    report.count("customer", "created", 3)
    report.count("customer", "faulted")
    with report.timed("stage"):
        pass
    path = report.write_summary(tmp_path)
    text = path.read_text()
    assert '"created": 3' in text and '"stage"' in text
    assert report.faulted == 1
    assert "customer" in report.table()


def test_old_reports_are_pruned(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    past = time.time() - 40 * 86400
    os.utime(old, (past, past))
    assert prune_reports(tmp_path, keep_days=30) == 1
    assert not old.exists() and new.exists()


def test_records_read_must_balance_with_records_accounted_for(tmp_path: Path) -> None:
    from magsync.flows.pipeline import check_guards, finish, open_run
    from magsync.transform.errors import ConservationError

    settings = load_settings(output_dir=tmp_path, dry_run=True, validation=False)
    run = open_run(settings, "test input")
    report = run.report
    report.receive("customer", 3)
    report.count("customer", "created", 2)
    report.count("customer", "faulted")
    report.count("customer", "deleted", 5)  # stored records: not part of the balance
    report.receive("address", 2)
    report.count("address", "unchanged")
    with pytest.raises(ConservationError) as caught:
        check_guards(run)
    assert "address: 2 read, 1 accounted for" in str(caught.value)
    assert "customer" not in str(caught.value)
    assert caught.value.exit_code == 1
    summary = finish(run, "failed", str(caught.value)).to_dict()
    assert summary["received"] == {"address": 2, "customer": 3}
    assert summary["conservation"].startswith("address: 2 read, 1 accounted for (created 0")
    report.count("address", "faulted")
    assert report.unbalanced() == []
