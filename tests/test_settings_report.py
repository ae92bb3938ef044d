"""Settings layering, the report object and report pruning."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from magsync.flows.console import print_report
from magsync.flows.secret_url import SecretUrl
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


@pytest.mark.parametrize("given", ["cli", "env"])
def test_target_url_password_shows_nowhere_but_where_it_connects(
        given: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.encoders import jsonable_encoder  # how Prefect records flow parameters

    url = "postgresql+psycopg://etl:s3cret@db.example:5432/warehouse"
    masked = "postgresql+psycopg://etl:***@db.example:5432/warehouse"
    overrides: dict[str, object] = {}
    if given == "env":
        monkeypatch.setenv("MAGSYNC_TARGET__URL", url)
    else:
        overrides = {"target": {"url": SecretUrl(url)}}
    settings = load_settings(**overrides)
    assert settings.target_url == url  # what SqlTarget connects with
    assert str(settings.target.url) == masked
    assert masked in repr(settings) and "s3cret" not in repr(settings)
    assert json.loads(settings.model_dump_json())["target"]["url"] == masked
    assert "s3cret" not in str(settings.model_dump())
    assert jsonable_encoder(overrides or {"target": {"url": settings.target.url}}) == {
        "target": {"url": masked}}
    assert str(SecretUrl("not a url: s3cret")) == "**********"


def test_report_summary_and_the_table_the_cli_prints(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = RunReport(run_id="r1", source="default", input="x.csv", target="sqlite:///t",
                       version="0.1.0", mode="full", dry_run=False,
                       started_at=datetime(2026, 1, 1, tzinfo=UTC), output_dir=str(tmp_path))
    report.count("customer", "created", 3)
    report.count("customer", "faulted")
    report.count("address", "updated", 2)
    report.notes.append("address: vat_id not provided by the source: kept as stored")
    with report.timed("stage"):
        pass
    path = report.write_summary(tmp_path)
    summary = json.loads(path.read_text())
    assert summary["counts"] == {"customer": {"created": 3, "faulted": 1},
                                 "address": {"updated": 2}}
    assert "stage" in summary["timings_s"]
    assert report.faulted == 1
    print_report(summary)  # what `magsync sync` and `magsync report` print
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "run r1: running"
    assert lines[1].split() == ["entity", "created", "updated", "restored", "deleted",
                                "unchanged", "faulted"]
    assert [line.split() for line in lines[2:5]] == [
        ["group", "0", "0", "0", "0", "0", "0"],
        ["customer", "3", "0", "0", "0", "0", "1"],
        ["address", "0", "2", "0", "0", "0", "0"]]
    assert lines[5:] == ["note: address: vat_id not provided by the source: kept as stored",
                         f"report: {tmp_path / 'reports' / 'source=default' / 'r1'}"]


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
